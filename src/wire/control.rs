//! Control messages: registration, discovery, subscriptions, locks, barriers, stats, acks and
//! errors. Off the hot path, so they go through `rmp-serde` with derived structs.
//!
//! Wire form: `[kind, body]`, where `body` is an array of the struct's fields in declaration
//! order (rmp-serde's compact struct encoding). Names and strings travel only here.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::{AgentId, BarrierId, LockId, TopicId};

/// Protocol error codes, carried by [`Error::code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u16)]
pub enum ErrorCode {
    /// The frame or a message in it does not follow the protocol; the connection closes.
    MalformedFrame = 1,
    /// The frame is over the router's size limit; the connection closes.
    FrameTooLarge = 2,
    /// The frame's version byte is not 1; the connection closes.
    UnsupportedVersion = 3,
    /// The LZ4 body is corrupt; the connection closes.
    CorruptCompression = 4,
    /// The frame carries more messages than the router's batch limit; the connection closes.
    BatchTooLarge = 5,
    /// No agent with that id is registered.
    UnknownRecipient = 10,
    /// The recipient missed its heartbeat deadline.
    RecipientOffline = 11,
    /// The message outlived its ttl inside the router and was dropped.
    Expired = 12,
    /// The recipient's queue was full and the router's policy is to drop.
    QueueFull = 13,
    /// The `sender` of a data message is not registered on this connection.
    SenderNotRegistered = 14,
    /// Registration of an id that is already live.
    DuplicateAgent = 20,
    /// Registration without the router's token.
    Unauthorized = 21,
    /// Release of a lock the agent does not hold.
    NotLockHolder = 22,
    /// Release of a lock nobody holds.
    LockNotFound = 23,
    /// The agent named in a request is not registered on this connection.
    UnknownAgent = 24,
    /// A request whose fields are out of range (e.g. a barrier expecting 0 agents).
    InvalidRequest = 25,
    /// A client sent a message only the router may send.
    UnexpectedMessage = 26,
    /// The router is shutting down.
    ShuttingDown = 27,
    /// A forced release of a barrier nobody waits at.
    BarrierNotFound = 28,
    /// A connection with no agent stayed silent, or a frame did not complete, past the router's
    /// timeout.
    Timeout = 29,
    /// The connection's queue stayed past its bound for the slow-consumer time: it is closed.
    SlowConsumer = 30,
    /// Refused for lack of resources: the connection limit or the shard's memory budget.
    ResourceExhausted = 31,
}

impl ErrorCode {
    /// Every code, in numeric order.
    pub const ALL: [ErrorCode; 22] = [
        ErrorCode::MalformedFrame,
        ErrorCode::FrameTooLarge,
        ErrorCode::UnsupportedVersion,
        ErrorCode::CorruptCompression,
        ErrorCode::BatchTooLarge,
        ErrorCode::UnknownRecipient,
        ErrorCode::RecipientOffline,
        ErrorCode::Expired,
        ErrorCode::QueueFull,
        ErrorCode::SenderNotRegistered,
        ErrorCode::DuplicateAgent,
        ErrorCode::Unauthorized,
        ErrorCode::NotLockHolder,
        ErrorCode::LockNotFound,
        ErrorCode::UnknownAgent,
        ErrorCode::InvalidRequest,
        ErrorCode::UnexpectedMessage,
        ErrorCode::ShuttingDown,
        ErrorCode::BarrierNotFound,
        ErrorCode::Timeout,
        ErrorCode::SlowConsumer,
        ErrorCode::ResourceExhausted,
    ];

    /// The numeric code on the wire.
    pub fn code(self) -> u16 {
        self as u16
    }

    /// The code with this number, if this version knows it.
    pub fn from_code(code: u16) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.code() == code)
    }

    /// The snake_case name used in reports and docs.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::MalformedFrame => "malformed_frame",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::CorruptCompression => "corrupt_compression",
            ErrorCode::BatchTooLarge => "batch_too_large",
            ErrorCode::UnknownRecipient => "unknown_recipient",
            ErrorCode::RecipientOffline => "recipient_offline",
            ErrorCode::Expired => "expired",
            ErrorCode::QueueFull => "queue_full",
            ErrorCode::SenderNotRegistered => "sender_not_registered",
            ErrorCode::DuplicateAgent => "duplicate_agent",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::NotLockHolder => "not_lock_holder",
            ErrorCode::LockNotFound => "lock_not_found",
            ErrorCode::UnknownAgent => "unknown_agent",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::UnexpectedMessage => "unexpected_message",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::BarrierNotFound => "barrier_not_found",
            ErrorCode::Timeout => "timeout",
            ErrorCode::SlowConsumer => "slow_consumer",
            ErrorCode::ResourceExhausted => "resource_exhausted",
        }
    }

    /// Whether the router closes the connection after sending this error.
    pub fn is_fatal(self) -> bool {
        matches!(
            self,
            ErrorCode::MalformedFrame
                | ErrorCode::FrameTooLarge
                | ErrorCode::UnsupportedVersion
                | ErrorCode::CorruptCompression
                | ErrorCode::BatchTooLarge
                | ErrorCode::UnexpectedMessage
                | ErrorCode::ShuttingDown
        )
    }
}

/// Registers an agent on the sending connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Register {
    /// Echoed in the reply.
    pub request_id: u64,
    /// The compact id every data message will use; must not be live already.
    pub agent_id: AgentId,
    /// Application agent type, the key for typed broadcast and discovery (0 = untyped).
    pub agent_type: u32,
    /// Human-readable name (for discovery and reports only).
    pub name: String,
    /// Capabilities, for discovery.
    pub capabilities: Vec<String>,
    /// Topics to subscribe to at once.
    pub topics: Vec<TopicId>,
    /// Must match the router's token when one is configured.
    pub token: Option<String>,
}

/// Removes an agent registered on the sending connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unregister {
    /// Echoed in the reply.
    pub request_id: u64,
    /// The agent to remove.
    pub agent_id: AgentId,
}

/// Tells the router the agent is alive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Echoed in the reply.
    pub request_id: u64,
    /// The agent that is alive.
    pub agent_id: AgentId,
}

/// Lists registered agents by type and/or capability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discover {
    /// Echoed in the reply.
    pub request_id: u64,
    /// Only agents of this type (0 = any type).
    pub agent_type: u32,
    /// Only agents declaring this capability.
    pub capability: Option<String>,
    /// Skip this many matches (matches are ordered by agent id).
    pub offset: u32,
    /// Return at most this many (the router caps it at 1,000).
    pub limit: u32,
    /// Ids, types and names only: the reply leaves each agent's capabilities out (what a JSON
    /// broadcast's ack needs, at a third of the copies). Absent in older encodings: false.
    #[serde(default)]
    pub names_only: bool,
}

/// Subscribes an agent to a topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscribe {
    /// Echoed in the reply.
    pub request_id: u64,
    /// The subscribing agent, registered on this connection.
    pub agent_id: AgentId,
    /// The topic.
    pub topic: TopicId,
}

/// Cancels a subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unsubscribe {
    /// Echoed in the reply.
    pub request_id: u64,
    /// The agent, registered on this connection.
    pub agent_id: AgentId,
    /// The topic.
    pub topic: TopicId,
}

/// Asks for a lock; granted at once, or queued FIFO behind the holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRequest {
    /// Echoed in the [`LockGranted`] or [`LockQueued`] reply.
    pub request_id: u64,
    /// The agent asking, registered on this connection.
    pub agent_id: AgentId,
    /// The lock.
    pub lock_id: LockId,
    /// Lease: the lock is taken back this many ms after it is granted (0 = the router default).
    pub lease_ms: u32,
}

/// Releases a held lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRelease {
    /// Echoed in the reply.
    pub request_id: u64,
    /// The holder, registered on this connection.
    pub agent_id: AgentId,
    /// The lock.
    pub lock_id: LockId,
}

/// Arrives at a barrier; everyone is released together when `expected` agents have arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BarrierEnter {
    /// Echoed in the [`BarrierWait`] and [`BarrierRelease`] replies.
    pub request_id: u64,
    /// The arriving agent, registered on this connection.
    pub agent_id: AgentId,
    /// The barrier.
    pub barrier_id: BarrierId,
    /// How many agents it waits for; the first arrival's value is the one that counts.
    pub expected: u32,
}

/// Releases everyone waiting at a barrier now, whatever the count (the seed's `barrier_release`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BarrierForce {
    /// Echoed in the reply.
    pub request_id: u64,
    /// The agent asking, registered on this connection.
    pub agent_id: AgentId,
    /// The barrier.
    pub barrier_id: BarrierId,
}

/// Where a connection should live on a sharded router; sent as the connection's first frame,
/// alone. The router reads it before it places the connection: on shard `key × shards / 2³²`
/// (connections with nearby keys share a shard, so agents that talk to each other can be
/// placed together). Never answered; a router with one shard, or a connection over WebSocket,
/// ignores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Home {
    /// The connection's place in `0..2³²`.
    pub key: u32,
}

impl Home {
    /// The key of a connection whose first agent is number `first` of `total`.
    pub fn key_for(first: u32, total: u32) -> u32 {
        ((u64::from(first) << 32) / u64::from(total.max(1))).min(u64::from(u32::MAX)) as u32
    }

    /// The shard of `shards` this key places a connection on.
    pub fn shard(self, shards: usize) -> usize {
        ((u64::from(self.key) * shards as u64) >> 32) as usize
    }
}

/// Asks for every shard's counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsRequest {
    /// Echoed in the [`StatsReply`].
    pub request_id: u64,
}

/// The client has threads pinned to these cores of the router's own machine (a benchmark run
/// on the router's host, sharing its cores): for `lease_ms`, the router's shards there stop
/// watching their sockets between turns, since a watching shard holds the core the client
/// needs to answer. Answered with [`Ack`]; the client renews it while its run lasts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareCores {
    /// Echoed in the [`Ack`].
    pub request_id: u64,
    /// Core numbers of the router's machine.
    pub cores: Vec<u32>,
    /// How long it holds, in milliseconds (at most 60,000).
    pub lease_ms: u32,
}

/// A request succeeded (register, unregister, heartbeat, subscribe, unsubscribe, lock release).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The request's id.
    pub request_id: u64,
}

/// Something failed; see [`ErrorCode`] for what each code means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Error {
    /// The numeric [`ErrorCode`]; unknown codes must be treated as errors all the same.
    pub code: u16,
    /// The failed request's id, or 0 when a data message failed.
    pub request_id: u64,
    /// The failed data message's id, or 0 when a request failed.
    pub message_id: u64,
    /// The agent this error is for (the sender of what failed), or 0 for frame errors.
    pub agent_id: AgentId,
    /// Human-readable detail.
    pub detail: Cow<'static, str>,
}

impl Error {
    /// The code as an [`ErrorCode`], if this version knows it.
    pub fn error_code(&self) -> Option<ErrorCode> {
        ErrorCode::from_code(self.code)
    }
}

/// One agent in a [`DiscoverReply`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    /// Its id.
    pub agent_id: AgentId,
    /// Its type.
    pub agent_type: u32,
    /// Its name.
    pub name: String,
    /// Its capabilities.
    pub capabilities: Vec<String>,
    /// False once it has missed its heartbeat deadline.
    pub online: bool,
    /// The router shard it is homed on.
    pub shard: u16,
}

/// The answer to [`Discover`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoverReply {
    /// The request's id.
    pub request_id: u64,
    /// How many agents matched in all (the page may hold fewer).
    pub total: u32,
    /// The requested page of matches, by agent id.
    pub agents: Vec<AgentInfo>,
}

/// The lock is now held by the agent, at once or after waiting in the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockGranted {
    /// The id of the [`LockRequest`] this grant answers.
    pub request_id: u64,
    /// The new holder.
    pub agent_id: AgentId,
    /// The lock.
    pub lock_id: LockId,
    /// The lease in force, in ms.
    pub lease_ms: u32,
}

/// The lock is held by another agent; this one waits in the FIFO queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockQueued {
    /// The [`LockRequest`]'s id (a [`LockGranted`] with the same id follows later).
    pub request_id: u64,
    /// The waiting agent.
    pub agent_id: AgentId,
    /// The lock.
    pub lock_id: LockId,
    /// 1-based place in the queue.
    pub position: u32,
}

/// Arrived at a barrier that is not full yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BarrierWait {
    /// The [`BarrierEnter`]'s id (a [`BarrierRelease`] with the same id follows).
    pub request_id: u64,
    /// The waiting agent.
    pub agent_id: AgentId,
    /// The barrier.
    pub barrier_id: BarrierId,
    /// Arrivals so far, this one included.
    pub arrived: u32,
    /// Arrivals needed.
    pub expected: u32,
}

/// The barrier is full: every arrived agent gets one of these, at the same time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BarrierRelease {
    /// The id of this agent's [`BarrierEnter`].
    pub request_id: u64,
    /// The released agent.
    pub agent_id: AgentId,
    /// The barrier.
    pub barrier_id: BarrierId,
    /// How many agents arrived.
    pub arrived: u32,
}

/// One router shard's counters since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardStats {
    /// Shard index.
    pub shard: u16,
    /// The CPU core it is pinned to.
    pub core: u32,
    /// The NUMA node of that core.
    pub numa_node: u32,
    /// Open connections.
    pub connections: u32,
    /// Agents homed here.
    pub agents: u32,
    /// Data messages received from clients.
    pub msgs_in: u64,
    /// Messages (data and control) written to clients.
    pub msgs_out: u64,
    /// Bytes read from clients.
    pub bytes_in: u64,
    /// Bytes written to clients.
    pub bytes_out: u64,
    /// Frames read from clients.
    pub batches_in: u64,
    /// Frames written to clients.
    pub batches_out: u64,
    /// Messages handed to other shards.
    pub cross_shard_out: u64,
    /// Messages received from other shards.
    pub cross_shard_in: u64,
    /// Error replies sent, by code: `[code, count]` pairs.
    pub errors: Vec<(u16, u64)>,
    /// Buffer pool: requests served from a free list.
    pub pool_hits: u64,
    /// Buffer pool: requests that allocated.
    pub pool_misses: u64,
    /// Buffer pool: buffers given back and kept.
    pub pool_returns: u64,
    /// Buffer pool: buffers given back and freed (tier full or oversize).
    pub pool_discards: u64,
    /// Highest bytes queued for one connection.
    pub conn_queue_bytes_hwm: u64,
    /// Highest bytes queued for one peer shard.
    pub peer_queue_bytes_hwm: u64,
    /// CPU time the shard's thread has used, in ns (0 if unknown).
    pub cpu_ns: u64,
    /// Connections closed as slow consumers.
    #[serde(default)]
    pub slow_consumers: u64,
    /// Connections refused (connection limit, memory budget).
    #[serde(default)]
    pub connections_refused: u64,
    /// Bytes held now in queues and grown read buffers (the memory budget's measure).
    #[serde(default)]
    pub memory_bytes: u64,
    /// Times the router's watchdog saw this shard's loop not turn for a second or more.
    #[serde(default)]
    pub loop_stalls: u64,
    /// Of `cpu_ns`, the time the shard spent watching for input that had not come (ns).
    #[serde(default)]
    pub watch_ns: u64,
}

/// The answer to [`StatsRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsReply {
    /// The request's id.
    pub request_id: u64,
    /// One entry per shard, by shard index.
    pub shards: Vec<ShardStats>,
    /// The router's heartbeat timeout in ms: an agent heard from neither by data nor by a
    /// heartbeat for this long is offline. A client keeping quiet agents online sends
    /// heartbeats well within it. Absent in older encodings: 0 (not said).
    #[serde(default)]
    pub heartbeat_timeout_ms: u64,
}

macro_rules! control_messages {
    ($( $(#[$doc:meta])* $code:literal => $name:ident, $label:literal, $dir:ident; )*) => {
        /// Every control message, by kind code.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Control {
            $( $(#[$doc])* $name($name), )*
        }

        impl Control {
            /// The kind code, the first element of the message array.
            pub fn code(&self) -> u8 {
                match self { $( Control::$name(_) => $code, )* }
            }

            /// The snake_case name used in docs.
            pub fn name(&self) -> &'static str {
                match self { $( Control::$name(_) => $label, )* }
            }

            /// Whether clients send this kind (the router sends the others).
            pub fn is_request(&self) -> bool {
                match self { $( Control::$name(_) => control_messages!(@dir $dir), )* }
            }

            /// Whether `code` is a control kind.
            pub fn is_control_code(code: u8) -> bool {
                matches!(code, $( $code )|*)
            }

            /// `(code, name, sent by client)` for every control kind, for docs and tests.
            pub const KINDS: &'static [(u8, &'static str, bool)] =
                &[ $( ($code, $label, control_messages!(@dir $dir)), )* ];

            fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), rmp_serde::encode::Error> {
                match self { $( Control::$name(body) => rmp_serde::encode::write(out, body), )* }
            }

            fn decode_body(code: u8, rd: &mut &[u8]) -> Result<Control, &'static str> {
                // The body is taken whole first, and read from a borrowed slice: a deserializer
                // over `io::Read` would allocate its scratch buffer per message.
                let body = super::msgpack::take_value(rd);
                match code {
                    $( $code => body
                        .and_then(|b| {
                            $name::deserialize(&mut rmp_serde::Deserializer::from_read_ref(b)).ok()
                        })
                        .map(Control::$name)
                        .ok_or(concat!($label, " body does not match its schema")), )*
                    _ => Err("unknown message kind"),
                }
            }
        }
    };
    (@dir request) => { true };
    (@dir reply) => { false };
}

control_messages! {
    /// See [`Register`].
    16 => Register, "register", request;
    /// See [`Unregister`].
    17 => Unregister, "unregister", request;
    /// See [`Heartbeat`].
    18 => Heartbeat, "heartbeat", request;
    /// See [`Discover`].
    19 => Discover, "discover", request;
    /// See [`Subscribe`].
    20 => Subscribe, "subscribe", request;
    /// See [`Unsubscribe`].
    21 => Unsubscribe, "unsubscribe", request;
    /// See [`LockRequest`].
    22 => LockRequest, "lock_request", request;
    /// See [`LockRelease`].
    23 => LockRelease, "lock_release", request;
    /// See [`BarrierEnter`].
    24 => BarrierEnter, "barrier_enter", request;
    /// See [`StatsRequest`].
    25 => StatsRequest, "stats_request", request;
    /// See [`BarrierForce`].
    26 => BarrierForce, "barrier_force", request;
    /// See [`Home`].
    27 => Home, "home", request;
    /// See [`ShareCores`].
    28 => ShareCores, "share_cores", request;
    /// See [`Ack`].
    32 => Ack, "ack", reply;
    /// See [`Error`].
    33 => Error, "error", reply;
    /// See [`DiscoverReply`].
    34 => DiscoverReply, "discover_reply", reply;
    /// See [`LockGranted`].
    35 => LockGranted, "lock_granted", reply;
    /// See [`LockQueued`].
    36 => LockQueued, "lock_queued", reply;
    /// See [`BarrierWait`].
    37 => BarrierWait, "barrier_wait", reply;
    /// See [`BarrierRelease`].
    38 => BarrierRelease, "barrier_release", reply;
    /// See [`StatsReply`].
    39 => StatsReply, "stats_reply", reply;
}

impl Control {
    /// Appends this message's encoding (`[kind, body]`) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(0x92); // fixarray of 2
        out.push(self.code()); // kind codes are below 128: a positive fixint
                               // Writing serde-derived structs of plain fields into a Vec cannot fail.
        if let Err(e) = self.encode_body(out) {
            unreachable!("encoding a control message into a Vec failed: {e}");
        }
    }

    /// Decodes the body of a control message whose kind was already read; `rd` is left just
    /// past the message. Allocates for strings and lists (this is the control path).
    pub(crate) fn decode(code: u8, rd: &mut &[u8]) -> Result<Control, &'static str> {
        Control::decode_body(code, rd)
    }

    /// The agent a reply is addressed to, for routers delivering it; `None` for requests.
    pub fn addressee(&self) -> Option<AgentId> {
        match self {
            Control::Error(m) => Some(m.agent_id),
            Control::LockGranted(m) => Some(m.agent_id),
            Control::LockQueued(m) => Some(m.agent_id),
            Control::BarrierWait(m) => Some(m.agent_id),
            Control::BarrierRelease(m) => Some(m.agent_id),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_round_trip_and_have_unique_names() {
        // Proves every error code maps back from its number and names are distinct.
        let mut names = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_code(code.code()), Some(code));
            assert!(names.insert(code.name()));
        }
        assert_eq!(ErrorCode::from_code(9999), None);
    }

    #[test]
    fn a_discover_written_before_names_only_reads_as_asking_for_everything() {
        // Proves the field added last is optional on the wire: the five fields an older
        // client writes decode, `names_only` false; the six written now round-trip.
        let mut old = Vec::new();
        rmp_serde::encode::write(&mut old, &(7u64, 3u32, Some("cap"), 10u32, 20u32)).unwrap();
        let d = Control::decode(19, &mut old.as_slice()).expect("an older discover");
        let want = Discover {
            request_id: 7,
            agent_type: 3,
            capability: Some("cap".into()),
            offset: 10,
            limit: 20,
            names_only: false,
        };
        assert_eq!(d, Control::Discover(want.clone()));
        let now = Control::Discover(Discover { names_only: true, ..want });
        let mut out = Vec::new();
        now.encode(&mut out);
        assert_eq!(Control::decode(19, &mut &out[2..]).expect("a discover"), now);
    }

    #[test]
    fn control_kind_codes_are_unique_and_outside_data_range() {
        // Proves no control kind collides with another or with the data kinds 1..=5.
        let mut seen = std::collections::HashSet::new();
        for &(code, _, _) in Control::KINDS {
            assert!(code > 5 && code < 128);
            assert!(seen.insert(code));
        }
    }
}
