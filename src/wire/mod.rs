//! Wire protocol v1, sans-IO: frames, message envelopes, control messages, LZ4, buffer pool.
//!
//! Nothing here touches a socket, so the glommio router, the tokio baseline and the load
//! generator pay exactly the same codec cost, and every rule tests without I/O.
//! `docs/PROTOCOL.md` is the normative description; this module is its implementation.
//!
//! - [`frame`]: the 16-byte header, batch building ([`FrameBuf`]) and batch reading ([`Batch`]).
//! - [`envelope`]: data messages (direct, request, reply, broadcast, publish), encoded with `rmp`'s
//!   low-level calls so the router can route and forward them without copying or re-encoding.
//! - [`control`]: register, discover, locks, barriers, stats, acks and errors, via `rmp-serde`.
//! - [`pool`]: per-core 1 KiB / 8 KiB / 64 KiB buffer tiers.
//!
//! Invariants: the decoder validates the header before it touches the body, never panics on any
//! input, and never allocates more than the header allows; "need more bytes" is `Ok(None)`.

pub mod control;
pub mod envelope;
pub mod frame;
pub mod gzip;
mod msgpack;
pub mod pool;

use serde::{Deserialize, Serialize};

pub use control::{AgentInfo, Control, ErrorCode, Home, ShardStats};
pub use envelope::{DataKind, Envelope};
pub use frame::{announced_len, decode_frame, Batch, FrameBuf, FrameHeader, Message, Probe, Quiet};
pub use pool::{BufferPool, PoolStats};

/// The two magic bytes that open every frame: ASCII `A2`.
pub const MAGIC: [u8; 2] = *b"A2";
/// The protocol version this code speaks.
pub const VERSION: u8 = 1;
/// Bytes in a frame header.
pub const HEADER_LEN: usize = 16;
/// Header flag bit: the body is an LZ4 block.
pub const FLAG_LZ4: u8 = 0b0000_0001;
/// Bodies at or below this many bytes are never compressed in [`Compression::Auto`] mode.
pub const LZ4_MIN_BYTES: usize = 1024;
/// [`Compression::Auto`] keeps the compressed body only when it is below this share (in percent)
/// of the raw body.
pub const LZ4_KEEP_PERCENT: usize = 90;
/// The highest message priority.
pub const PRIORITY_MAX: u8 = 10;

/// An agent's compact id, chosen by the agent at registration; names travel only then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AgentId(pub u32);

/// A topic's compact id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TopicId(pub u32);

/// A lock's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LockId(pub u64);

/// A barrier's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BarrierId(pub u64);

/// Size limits a decoder enforces before it reads a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame accepted, header included, both as sent and once decompressed.
    pub frame_bytes_max: u32,
    /// Most messages one frame may carry.
    pub batch_messages_max: u32,
}

impl Limits {
    /// 10 MiB frames (the seed's `max_message_size`), 8,192 messages per batch.
    pub const DEFAULT: Limits = Limits { frame_bytes_max: 10 << 20, batch_messages_max: 8192 };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// When a frame body is LZ4-compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Compress bodies over [`LZ4_MIN_BYTES`] and keep the result only if it is below
    /// [`LZ4_KEEP_PERCENT`] of the raw size (the seed's rule).
    #[default]
    Auto,
    /// Always compress.
    Lz4,
    /// Never compress.
    None,
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Compression::Auto => "auto",
            Compression::Lz4 => "lz4",
            Compression::None => "none",
        })
    }
}

impl std::str::FromStr for Compression {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Compression::Auto),
            "lz4" => Ok(Compression::Lz4),
            "none" => Ok(Compression::None),
            other => Err(format!("unknown compression '{other}' (expected auto, lz4 or none)")),
        }
    }
}

/// Why a frame could not be decoded. Small and `Copy`: decoding never allocates for an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The first two bytes are not [`MAGIC`].
    #[error("bad magic bytes {0:#06x}")]
    BadMagic(u16),
    /// The version byte is not [`VERSION`].
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u8),
    /// Flag bits other than [`FLAG_LZ4`] are set.
    #[error("reserved flag bits set: {0:#04x}")]
    ReservedFlags(u8),
    /// The frame, as sent or decompressed, is over [`Limits::frame_bytes_max`].
    #[error("frame of {bytes} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// The size the header announced.
        bytes: u64,
        /// The limit in force.
        max: u32,
    },
    /// The message count is over [`Limits::batch_messages_max`].
    #[error("batch of {count} messages exceeds the limit of {max}")]
    BatchTooLarge {
        /// The count the header announced.
        count: u32,
        /// The limit in force.
        max: u32,
    },
    /// The header announces zero messages.
    #[error("frame carries no messages")]
    EmptyBatch,
    /// An uncompressed frame whose raw length differs from its body length.
    #[error("uncompressed frame with body length {body} but raw length {raw}")]
    LengthMismatch {
        /// Body bytes on the wire.
        body: u32,
        /// Raw body bytes announced.
        raw: u32,
    },
    /// The LZ4 block is corrupt or does not inflate to the announced raw length.
    #[error("corrupt lz4 body")]
    CorruptLz4,
    /// A message inside the body is not what the protocol allows.
    #[error("malformed message {index}: {what}")]
    Malformed {
        /// Zero-based position of the message in its batch.
        index: u32,
        /// What was wrong, for the error reply.
        what: &'static str,
    },
}

impl DecodeError {
    /// The protocol error code sent back for this decode failure.
    pub fn code(self) -> ErrorCode {
        match self {
            DecodeError::BadMagic(_)
            | DecodeError::ReservedFlags(_)
            | DecodeError::EmptyBatch
            | DecodeError::LengthMismatch { .. }
            | DecodeError::Malformed { .. } => ErrorCode::MalformedFrame,
            DecodeError::UnsupportedVersion(_) => ErrorCode::UnsupportedVersion,
            DecodeError::FrameTooLarge { .. } => ErrorCode::FrameTooLarge,
            DecodeError::BatchTooLarge { .. } => ErrorCode::BatchTooLarge,
            DecodeError::CorruptLz4 => ErrorCode::CorruptCompression,
        }
    }
}
