//! Frames: a 16-byte header and a body carrying a batch of messages.
//!
//! ```text
//! 0      2    3      4          8           12          16
//! | "A2" | v1 | flags | count u32 | body_len u32 | raw_len u32 | body (body_len bytes) ...
//! ```
//! Integers are big-endian. `flags` bit 0 marks an LZ4 block body; `raw_len` is the body's size
//! once decompressed (equal to `body_len` otherwise). The raw body is `count` messages back to
//! back, each a msgpack array `[kind, fields]`.

use super::control::Control;
use super::envelope::{DataKind, Envelope};
use super::pool::BufferPool;
use super::{
    Compression, DecodeError, Limits, FLAG_LZ4, HEADER_LEN, LZ4_KEEP_PERCENT, LZ4_MIN_BYTES, MAGIC,
    VERSION,
};

/// A validated frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The body is an LZ4 block.
    pub compressed: bool,
    /// Messages in the body.
    pub count: u32,
    /// Body bytes on the wire.
    pub body_len: u32,
    /// Body bytes once decompressed.
    pub raw_len: u32,
}

impl FrameHeader {
    /// Validates the header at the start of `buf`. `Ok(None)` means more bytes are needed.
    /// Each field is checked as soon as its bytes are present, so garbage is refused early.
    pub fn parse(buf: &[u8], limits: &Limits) -> Result<Option<FrameHeader>, DecodeError> {
        if buf.len() >= 2 && buf[..2] != MAGIC {
            return Err(DecodeError::BadMagic(u16::from_be_bytes([buf[0], buf[1]])));
        }
        if buf.len() >= 3 && buf[2] != VERSION {
            return Err(DecodeError::UnsupportedVersion(buf[2]));
        }
        if buf.len() >= 4 && buf[3] & !FLAG_LZ4 != 0 {
            return Err(DecodeError::ReservedFlags(buf[3]));
        }
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let word = |at: usize| u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
        let header = FrameHeader {
            compressed: buf[3] & FLAG_LZ4 != 0,
            count: word(4),
            body_len: word(8),
            raw_len: word(12),
        };
        header.validate(limits)?;
        Ok(Some(header))
    }

    fn validate(&self, limits: &Limits) -> Result<(), DecodeError> {
        let max = limits.frame_bytes_max;
        for body in [self.body_len, self.raw_len] {
            let bytes = HEADER_LEN as u64 + u64::from(body);
            if bytes > u64::from(max) {
                return Err(DecodeError::FrameTooLarge { bytes, max });
            }
        }
        if self.count == 0 {
            return Err(DecodeError::EmptyBatch);
        }
        if self.count > limits.batch_messages_max {
            return Err(DecodeError::BatchTooLarge {
                count: self.count,
                max: limits.batch_messages_max,
            });
        }
        if !self.compressed && self.body_len != self.raw_len {
            return Err(DecodeError::LengthMismatch { body: self.body_len, raw: self.raw_len });
        }
        Ok(())
    }

    /// Header plus body, in bytes on the wire.
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + self.body_len as usize
    }

    /// The 16 header bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..2].copy_from_slice(&MAGIC);
        out[2] = VERSION;
        out[3] = if self.compressed { FLAG_LZ4 } else { 0 };
        out[4..8].copy_from_slice(&self.count.to_be_bytes());
        out[8..12].copy_from_slice(&self.body_len.to_be_bytes());
        out[12..16].copy_from_slice(&self.raw_len.to_be_bytes());
        out
    }
}

/// One decoded message: a data envelope borrowing the frame, or an owned control message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message<'a> {
    /// A data message.
    Data(Envelope<'a>),
    /// A control message.
    Control(Control),
}

impl Message<'_> {
    /// Appends this message's encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Message::Data(env) => env.encode(out),
            Message::Control(ctl) => ctl.encode(out),
        }
    }
}

/// Decodes one message from the front of `rd`, leaving `rd` just past it.
#[inline]
pub fn decode_message<'a>(rd: &mut &'a [u8]) -> Result<Message<'a>, &'static str> {
    use super::msgpack::{read_array_len, read_uint};
    if let Some(env) = Envelope::decode_usual(rd) {
        return Ok(Message::Data(env));
    }
    match read_array_len(rd) {
        Some(2) => {}
        Some(_) => return Err("message must be a 2-element array"),
        None => return Err("message must be an array"),
    }
    let code =
        read_uint(rd).and_then(|c| u8::try_from(c).ok()).ok_or("kind must be an integer 0-255")?;
    if let Some(kind) = DataKind::from_code(code) {
        Envelope::decode_fields(kind, rd).map(Message::Data)
    } else if Control::is_control_code(code) {
        Control::decode(code, rd).map(Message::Control)
    } else {
        Err("unknown message kind")
    }
}

/// The messages of one frame, decoded lazily. Yields each message with its exact raw bytes,
/// then checks that the body holds nothing more.
#[derive(Debug, Clone)]
pub struct Batch<'a> {
    rest: &'a [u8],
    count: u32,
    index: u32,
    failed: bool,
}

impl<'a> Batch<'a> {
    /// A batch over a raw (decompressed) body announced to hold `count` messages.
    pub fn new(body: &'a [u8], count: u32) -> Batch<'a> {
        Batch { rest: body, count, index: 0, failed: false }
    }

    /// Messages announced by the header.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The next message and its raw encoding when it is a data message in the usual form (what
    /// every encoder here writes, with at least 64 bytes of body left from it). `None` says
    /// nothing about the rest: [`Batch::next_message`] then takes the next message, whatever
    /// it is, or names the error. The routers' and agents' loops try this first: it hands over
    /// the envelope without the [`Message`] around it.
    #[inline(always)]
    pub fn next_usual(&mut self) -> Option<(Envelope<'a>, &'a [u8])> {
        if self.index == self.count || self.failed {
            return None;
        }
        let start = self.rest;
        let env = Envelope::decode_usual(&mut self.rest)?;
        self.index += 1;
        Some((env, &start[..start.len() - self.rest.len()]))
    }

    /// The next message and its raw encoding, `Ok(None)` at the end of a well-formed body.
    #[inline]
    pub fn next_message(&mut self) -> Result<Option<(Message<'a>, &'a [u8])>, DecodeError> {
        if self.failed {
            return Ok(None);
        }
        let index = self.index;
        if index == self.count {
            if self.rest.is_empty() {
                return Ok(None);
            }
            self.failed = true;
            return Err(DecodeError::Malformed { index, what: "bytes after the last message" });
        }
        let start = self.rest;
        match decode_message(&mut self.rest) {
            Ok(msg) => {
                self.index += 1;
                let raw = &start[..start.len() - self.rest.len()];
                Ok(Some((msg, raw)))
            }
            Err(what) => {
                self.failed = true;
                Err(DecodeError::Malformed { index, what })
            }
        }
    }
}

impl<'a> Iterator for Batch<'a> {
    type Item = Result<(Message<'a>, &'a [u8]), DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_message().transpose()
    }
}

/// Decodes the frame at the start of `buf`.
///
/// Returns `Ok(None)` while `buf` holds only part of a frame, else the frame's length on the wire
/// and its batch. A compressed body is inflated into `scratch`, never past the header's
/// `raw_len` (itself bounded by [`Limits::frame_bytes_max`]).
pub fn decode_frame<'a>(
    buf: &'a [u8],
    limits: &Limits,
    scratch: &'a mut Vec<u8>,
) -> Result<Option<(usize, Batch<'a>)>, DecodeError> {
    let Some(header) = FrameHeader::parse(buf, limits)? else {
        return Ok(None);
    };
    let frame_len = header.frame_len();
    if buf.len() < frame_len {
        return Ok(None);
    }
    let body = &buf[HEADER_LEN..frame_len];
    let raw = if header.compressed { inflate(body, header.raw_len, scratch)? } else { body };
    Ok(Some((frame_len, Batch::new(raw, header.count))))
}

/// The length on the wire of the frame whose header starts `buf`, once its 16 bytes are
/// there; `None` before. Not validated: for a reader sizing its wait for a partial frame that
/// [`decode_frame`] already took the header of.
pub fn announced_len(buf: &[u8]) -> Option<usize> {
    let body = buf.get(8..12)?;
    (buf.len() >= HEADER_LEN)
        .then(|| HEADER_LEN + u32::from_be_bytes([body[0], body[1], body[2], body[3]]) as usize)
}

fn inflate<'a>(
    body: &[u8],
    raw_len: u32,
    scratch: &'a mut Vec<u8>,
) -> Result<&'a [u8], DecodeError> {
    scratch.clear();
    scratch.resize(raw_len as usize, 0);
    match lz4_flex::block::decompress_into(body, scratch) {
        Ok(n) if n == raw_len as usize => Ok(&scratch[..]),
        _ => Err(DecodeError::CorruptLz4),
    }
}

/// Most frames [`Compression::Auto`] sends without trying LZ4 after attempts that did not pay.
pub const PROBE_SKIP_MAX: u32 = 64;

/// Bytes an outbound frame of a quiet connection starts with (the pool's smallest tier).
pub const QUIET_FRAME: usize = 1 << 10;
/// Frames in a row that fitted [`QUIET_FRAME`] after which a connection is quiet.
pub const QUIET_AFTER: u8 = 8;

/// Which buffer a connection's next outbound frame starts in. A busy connection's frames start
/// in its large buffer, so that they fill without growing; a quiet one's (its last
/// [`QUIET_AFTER`] frames fitted [`QUIET_FRAME`]: acknowledgements, one request at a time)
/// start in a [`QUIET_FRAME`] buffer, which grows if a burst comes. A 64 KiB buffer for every
/// acknowledgement of 19,000 connections broke glibc's heap up until a router grew session
/// after session (`docs/BENCHMARKS.md`, "Where an own connection's bytes go"). A new
/// connection starts quiet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quiet(u8);

impl Default for Quiet {
    fn default() -> Self {
        Quiet(QUIET_AFTER)
    }
}

impl Quiet {
    /// The least capacity the next frame starts with: [`QUIET_FRAME`], or `busy`.
    #[inline]
    pub fn least(self, busy: usize) -> usize {
        if self.0 >= QUIET_AFTER {
            QUIET_FRAME
        } else {
            busy
        }
    }

    /// A frame of `len` bytes was taken to be sent.
    #[inline]
    pub fn sent(&mut self, len: usize) {
        self.0 = if len <= QUIET_FRAME { self.0.saturating_add(1) } else { 0 };
    }
}

/// [`Compression::Auto`]'s memory, per stream, of whether LZ4 paid there: after an attempt that
/// did not shrink a body below [`LZ4_KEEP_PERCENT`], the next 2 frames go without one, after a
/// second such attempt the next 4, and so on up to [`PROBE_SKIP_MAX`]; an attempt that pays
/// ends the skipping. A stream of incompressible payloads stops paying for compression it never
/// keeps; one that turns compressible is compressed again within [`PROBE_SKIP_MAX`] frames.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Frames still to send without an attempt.
    skip: u32,
    /// Attempts in a row that did not pay (capped where the skip reaches its most).
    misses: u32,
    /// LZ4 attempts made (saturating: a connection's memory, kept small).
    pub tried: u32,
    /// Frames sent without an attempt while skipping (saturating).
    pub skipped: u32,
}

impl Probe {
    /// Whether this frame gets an attempt.
    fn tries(&mut self) -> bool {
        if self.skip > 0 {
            self.skip -= 1;
            self.skipped = self.skipped.saturating_add(1);
            return false;
        }
        self.tried = self.tried.saturating_add(1);
        true
    }

    /// The attempt's outcome.
    fn paid(&mut self, pays: bool) {
        if pays {
            (self.skip, self.misses) = (0, 0);
        } else {
            self.misses = (self.misses + 1).min(PROBE_SKIP_MAX.trailing_zeros());
            self.skip = 1 << self.misses;
        }
    }
}

/// An outbound frame being filled: header space, then messages appended one by one.
///
/// Lives across many routing passes (a connection's open batch), then [`FrameBuf::finish`]
/// writes the header and applies compression.
#[derive(Debug)]
pub struct FrameBuf {
    buf: Vec<u8>,
    count: u32,
}

impl FrameBuf {
    /// Starts a frame in `buf` (its old contents are discarded, its capacity kept).
    pub fn new(mut buf: Vec<u8>) -> FrameBuf {
        buf.clear();
        buf.extend_from_slice(&[0u8; HEADER_LEN]);
        FrameBuf { buf, count: 0 }
    }

    /// Appends a data message.
    #[inline]
    pub fn push_envelope(&mut self, env: &Envelope<'_>) {
        env.encode(&mut self.buf);
        self.count += 1;
    }

    /// Appends a control message.
    pub fn push_control(&mut self, ctl: &Control) {
        ctl.encode(&mut self.buf);
        self.count += 1;
    }

    /// Appends a message that is already encoded (as yielded by [`Batch`]).
    #[inline]
    pub fn push_raw(&mut self, raw: &[u8]) {
        self.buf.extend_from_slice(raw);
        self.count += 1;
    }

    /// Appends `count` messages that are already encoded back to back in `raw`.
    pub fn push_raw_many(&mut self, raw: &[u8], count: u32) {
        self.buf.extend_from_slice(raw);
        self.count += count;
    }

    /// Messages appended so far.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Bytes so far, header included.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether no message was appended.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Spare capacity before the buffer must grow.
    pub fn spare(&self) -> usize {
        self.buf.capacity() - self.buf.len()
    }

    /// Writes the header, compresses per `compression`, and returns the finished frame.
    /// A compressed copy comes from `pool`; the buffer it replaces goes back there.
    pub fn finish(self, compression: Compression, pool: &mut BufferPool) -> Vec<u8> {
        self.finish_probed(compression, &mut Probe::default(), pool)
    }

    /// [`FrameBuf::finish`] for one of a stream's frames: in [`Compression::Auto`], `probe`
    /// remembers whether LZ4 paid on the stream's last attempts and skips attempts while it
    /// did not.
    pub fn finish_probed(
        self,
        compression: Compression,
        probe: &mut Probe,
        pool: &mut BufferPool,
    ) -> Vec<u8> {
        let FrameBuf { mut buf, count } = self;
        let body_len = buf.len() - HEADER_LEN;
        let try_lz4 = match compression {
            Compression::None => false,
            Compression::Lz4 => true,
            Compression::Auto => body_len > LZ4_MIN_BYTES && probe.tries(),
        };
        if try_lz4 {
            let mut out = pool.get(HEADER_LEN + lz4_flex::block::get_maximum_output_size(body_len));
            out.resize(out.capacity(), 0);
            let n = lz4_flex::block::compress_into(&buf[HEADER_LEN..], &mut out[HEADER_LEN..]);
            let pays = n.as_ref().is_ok_and(|&n| n * 100 < body_len * LZ4_KEEP_PERCENT);
            if compression == Compression::Auto {
                probe.paid(pays);
            }
            match n {
                Ok(n) if compression == Compression::Lz4 || pays => {
                    out.truncate(HEADER_LEN + n);
                    let header = FrameHeader {
                        compressed: true,
                        count,
                        body_len: n as u32,
                        raw_len: body_len as u32,
                    };
                    out[..HEADER_LEN].copy_from_slice(&header.to_bytes());
                    pool.put(buf);
                    return out;
                }
                _ => pool.put(out),
            }
        }
        let header = FrameHeader {
            compressed: false,
            count,
            body_len: body_len as u32,
            raw_len: body_len as u32,
        };
        buf[..HEADER_LEN].copy_from_slice(&header.to_bytes());
        buf
    }

    /// Gives the buffer back without finishing the frame.
    pub fn into_inner(self) -> Vec<u8> {
        self.buf
    }
}

/// One uncompressed frame holding a connection-level error (agent 0, no request): what the
/// router sends before it closes a connection it refuses.
pub fn error_frame(code: super::ErrorCode, detail: &str) -> Vec<u8> {
    let err = Control::Error(super::control::Error {
        code: code.code(),
        request_id: 0,
        message_id: 0,
        agent_id: super::AgentId(0),
        detail: detail.to_string().into(),
    });
    encode_frame(&[Message::Control(err)], Compression::None, &mut BufferPool::default())
}

/// The frame a connection opens with to be placed by `home` (alone, uncompressed).
pub fn home_frame(home: super::Home) -> Vec<u8> {
    let msg = Message::Control(Control::Home(home));
    encode_frame(&[msg], Compression::None, &mut BufferPool::default())
}

/// The `home` hint a connection's first bytes open with: `Some` only for a whole uncompressed
/// frame whose one message is a `home` (as [`home_frame`] writes it).
pub fn read_home(first: &[u8]) -> Option<super::Home> {
    let header = FrameHeader::parse(first, &super::Limits::DEFAULT).ok()??;
    if header.compressed || header.count != 1 || first.len() < header.frame_len() {
        return None;
    }
    let mut body = &first[HEADER_LEN..header.frame_len()];
    match decode_message(&mut body) {
        Ok(Message::Control(Control::Home(h))) if body.is_empty() => Some(h),
        _ => None,
    }
}

/// Encodes `messages` as one frame: a convenience for clients and tests.
pub fn encode_frame(
    messages: &[Message<'_>],
    compression: Compression,
    pool: &mut BufferPool,
) -> Vec<u8> {
    encode_frame_probed(messages, compression, &mut Probe::default(), pool)
}

/// [`encode_frame`] for one of a stream's frames ([`FrameBuf::finish_probed`]).
pub fn encode_frame_probed(
    messages: &[Message<'_>],
    compression: Compression,
    probe: &mut Probe,
    pool: &mut BufferPool,
) -> Vec<u8> {
    let mut frame = FrameBuf::new(pool.get(4096));
    for msg in messages {
        match msg {
            Message::Data(env) => frame.push_envelope(env),
            Message::Control(ctl) => frame.push_control(ctl),
        }
    }
    frame.finish_probed(compression, probe, pool)
}
