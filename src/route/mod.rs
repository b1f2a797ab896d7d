//! The routing core: one shard's state and every routing decision, with no runtime and no I/O.
//!
//! A [`Shard`] owns the connections homed on it, the agents registered on those, its copy of the
//! agent directory (every agent → its home shard), the topics, locks and barriers it owns, and a
//! bounded outbox per connection and per peer shard. Shells feed it bytes ([`Shard::on_input`]),
//! peer messages ([`Shard::on_peer`]) and time ([`Shard::tick`]), and drain what it queues
//! ([`Shard::poll_output`], [`Shard::poll_peer_output`]). The thread-per-core router and
//! the per-core baseline run this same code through [`shell`], so they differ only in the runtime.
//!
//! Invariants: nothing here locks, blocks or allocates per data message (buffers come from the
//! shard's pool); every queue has a byte bound, and an input that pushes a destination past its
//! bound is paused ([`Shard::poll_gate`]) until it drains to half; every data message is
//! delivered or answered with an error.

mod accept;
mod conn;
mod control;
pub use control::token_matches;
pub mod coord;
mod dispatch;
pub mod fuzz;
pub mod json;
mod output;
pub mod peer;
pub mod server;
pub mod shell;
#[cfg(test)]
mod tests;

use std::task::{Context, Poll, Waker};
use std::time::Duration;

use rustc_hash::FxHashMap;
use slab::Slab;

use crate::clock;
use crate::wire::{
    decode_frame, AgentId, BufferPool, Compression, ErrorCode, Limits, Message, ShardStats, TopicId,
};
use conn::{Closing, Conn, LANE_HIGH};
use coord::{BarrierTable, Grant, LockTable};
use peer::{Lane, PeerMsg, PeerOut};

/// What a shard does with a data message whose recipient's queue is over its bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FullPolicy {
    /// Stop reading from the sender until the queue drains (TCP pushes back to the client).
    #[default]
    Backpressure,
    /// Drop the message and answer the sender with `queue_full`.
    Drop,
}

impl std::fmt::Display for FullPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FullPolicy::Backpressure => "backpressure",
            FullPolicy::Drop => "drop",
        })
    }
}

impl std::str::FromStr for FullPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "backpressure" => Ok(FullPolicy::Backpressure),
            "drop" => Ok(FullPolicy::Drop),
            other => Err(format!("unknown policy '{other}' (expected backpressure or drop)")),
        }
    }
}

/// One shard's settings; shells build one per shard from the router's configuration.
#[derive(Debug, Clone)]
pub struct ShardConfig {
    /// This shard's index.
    pub shard: u16,
    /// How many shards the router has (1 ..= 64).
    pub shards: u16,
    /// The CPU core the shard runs on (reported in stats).
    pub core: u32,
    /// That core's NUMA node (reported in stats).
    pub numa_node: u32,
    /// Frame limits for input.
    pub limits: Limits,
    /// Compression of frames the router writes.
    pub compression: Compression,
    /// What to do when a recipient's queue is full.
    pub on_full: FullPolicy,
    /// Bound on bytes queued for one connection.
    pub conn_queue_bytes_max: usize,
    /// Bound on bytes queued for one peer shard.
    pub peer_queue_bytes_max: usize,
    /// An agent silent this long is offline.
    pub heartbeat_timeout: Duration,
    /// Lease for lock requests that ask for 0.
    pub lock_lease_ms: u32,
    /// Registration token; `None` accepts every registration.
    pub token: Option<String>,
    /// A new connection must show its protocol (first bytes, WebSocket handshake) within this.
    pub handshake_timeout: Duration,
    /// A connection with no agent registered and no input for this long is closed (`timeout`).
    pub idle_timeout: Duration,
    /// A frame whose first bytes arrived must complete within this (`timeout`).
    pub frame_timeout: Duration,
    /// A connection whose queue stays past its bound this long is a slow consumer: counted,
    /// sent `slow_consumer`, and disconnected.
    pub slow_consumer: Duration,
    /// Bytes this shard may hold in queues and grown read buffers; past it, new connections and
    /// frames larger than 64 KiB are refused with `resource_exhausted`.
    pub memory_max: usize,
    /// Connections open at once, router-wide (0 = no limit): the acceptor refuses the rest with
    /// `resource_exhausted`. Read from shard 0's configuration.
    pub max_connections: usize,
}

impl ShardConfig {
    /// [`ShardConfig::heartbeat_timeout`] in the clock's nanoseconds.
    pub fn heartbeat_timeout_ns(&self) -> u64 {
        self.heartbeat_timeout.as_nanos() as u64
    }

    /// Defaults for shard `shard` of `shards`.
    pub fn new(shard: u16, shards: u16) -> ShardConfig {
        ShardConfig {
            shard,
            shards,
            core: 0,
            numa_node: 0,
            limits: Limits::DEFAULT,
            compression: Compression::Auto,
            on_full: FullPolicy::Backpressure,
            conn_queue_bytes_max: 2 << 20,
            peer_queue_bytes_max: 8 << 20,
            heartbeat_timeout: Duration::from_secs(30),
            lock_lease_ms: 30_000,
            token: None,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            frame_timeout: Duration::from_secs(30),
            slow_consumer: Duration::from_secs(10),
            memory_max: 1 << 30,
            max_connections: 0,
        }
    }
}

/// A connection's handle within its shard: the slab slot plus a generation, so a reused slot
/// never receives what was meant for its previous occupant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnId {
    idx: u32,
    gen: u32,
}

/// Something whose queue can fill: a connection (by slot), a peer shard's data lane, an agent
/// on another shard whose connection is past its bound, or any such agent on a peer (fan-out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dest {
    Conn(u32),
    Peer(u16),
    Remote(AgentId),
    RemoteFan(u16),
}

/// Something that feeds the shard input and can be paused by backpressure: a client
/// connection's reader. (A peer's channels are never paused: see [`PeerMsg::Congested`].)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A client connection's reader.
    Conn(ConnId),
}

/// What a shard knows of an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Homed on this shard.
    Local {
        /// Within its heartbeat deadline.
        online: bool,
    },
    /// Homed on another shard (whose view of its liveness this shard does not have).
    Remote {
        /// That shard.
        shard: u16,
    },
}

/// Where an agent lives, as this shard knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// Homed here: index into `Shard::local`.
    Local(u32),
    /// Homed on that shard.
    Remote(u16),
}

// One per registered agent on its home shard (`Conn`'s size in `route::conn` says why).
#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<LocalAgent>() <= 88);

/// Whether agent `a` or its connection was heard from within `timeout_ns` of `now_ns`: what
/// makes an agent online, for the liveness pass and for a message to an agent it marked offline.
fn heard(a: &LocalAgent, conns: &Slab<Conn>, now_ns: u64, timeout_ns: u64) -> bool {
    let conn_seen = conns.get(a.conn as usize).map_or(0, |c| c.last_frame_ns);
    now_ns.saturating_sub(a.last_seen_ns.max(conn_seen)) <= timeout_ns
}

/// An agent homed on this shard.
#[derive(Debug)]
struct LocalAgent {
    id: AgentId,
    agent_type: u32,
    /// Slot of the connection it registered on.
    conn: u32,
    /// Inline up to 24 bytes (`agent-123456` is 12): no block of its own, 32 bytes less per agent.
    name: compact_str::CompactString,
    capabilities: Box<[String]>,
    topics: Vec<TopicId>,
    /// Registration or last heartbeat.
    last_seen_ns: u64,
    online: bool,
}

/// Who wants a topic: local subscribers (indices into `Shard::local`) and peers with some.
#[derive(Debug, Default)]
struct Topic {
    subs: Vec<u32>,
    /// Bit `s` set: shard `s` has local subscribers.
    remote: u64,
}

/// Counters behind [`ShardStats`].
#[derive(Debug, Default)]
struct Counters {
    msgs_in: u64,
    msgs_out: u64,
    bytes_in: u64,
    bytes_out: u64,
    batches_in: u64,
    batches_out: u64,
    cross_out: u64,
    cross_in: u64,
    errors: [u64; ErrorCode::ALL.len()],
    conn_queue_bytes_hwm: usize,
    slow_consumers: u64,
    connections_refused: u64,
}

/// What [`Shard::on_input`] made of the bytes it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Input {
    /// Bytes of complete frames consumed; the rest is the start of a frame.
    pub consumed: usize,
    /// Stop reading: the connection failed (its error is queued) or is closed.
    pub close: bool,
    /// Routing stopped early because a destination went past its bound: complete frames remain
    /// after `consumed`. Wait for [`Shard::poll_gate`], then call again before reading more.
    pub paused: bool,
}

/// One shard of the router. See the module documentation.
#[derive(Debug)]
pub struct Shard {
    cfg: ShardConfig,
    conns: Slab<Conn>,
    next_gen: u32,
    /// Every registered agent, local or not.
    directory: FxHashMap<AgentId, Route>,
    local: Slab<LocalAgent>,
    /// Ids this shard arbitrates (`id % shards == shard`) and their home shard.
    owned: FxHashMap<AgentId, u16>,
    topics: FxHashMap<TopicId, Topic>,
    locks: LockTable,
    barriers: BarrierTable,
    peers: Vec<PeerOut>,
    /// Agents on other shards whose connection is past its bound (backpressure policy), each
    /// with the `congestion_mark` under which an input last noted it (`note_congested`).
    remote_full: FxHashMap<AgentId, u64>,
    /// Per peer: how many of its agents are in `remote_full`.
    remote_full_per_peer: Vec<u32>,
    /// Inputs paused on a remote destination; woken when any of them drains.
    remote_waiting: Vec<Waker>,
    /// Bytes queued on all connections, and held by read buffers grown past the large tier.
    conn_bytes: usize,
    read_bytes: usize,
    pending: FxHashMap<u64, control::Pending>,
    next_token: u64,
    pool: BufferPool,
    /// LZ4 inflation target for input frames.
    inflate: Vec<u8>,
    /// Encoding space for router-made control messages.
    ctl_buf: Vec<u8>,
    /// Connection slots collected during a fan-out.
    fan: Vec<u32>,
    /// Lock grants collected during an operation.
    grants: Vec<Grant>,
    /// Registrations whose id is still held, retried each tick until their deadline (at most
    /// `control::DEFERRED_MAX`).
    deferred: Vec<(ConnId, crate::wire::control::Register, u64)>,
    fan_mark: u64,
    /// How widely inputs spread: see [`Spread`].
    spread: Spread,
    now_ns: u64,
    next_liveness_ns: u64,
    /// When connections are next checked against the idle and frame timeouts.
    next_timeouts_ns: u64,
    /// The first destination pushed past its bound during the current input.
    congested: Option<Dest>,
    /// Every other destination pushed past its bound during the current input, once each.
    congested_more: Vec<Dest>,
    /// Stamps one input's noting of destinations (`note_congested`); changes when its record
    /// is taken or cleared.
    congestion_mark: u64,
    /// Set when peers were just told a connection is full: whoever is draining peer lanes stops
    /// and lets the control senders run ([`Shard::take_peers_told`]).
    peers_told: bool,
    counters: Counters,
    /// Set by [`Shard::shutdown`]: every task should finish.
    stopped: bool,
}

/// How many connections an input's messages go to, on average over a tick: where it is
/// [`SPREAD_WIDE`] or more (a mesh: each agent's frame goes to a dozen others), every pass of
/// the shard leaves a little for each of many connections, and the sends stay small however
/// much comes in; a writer may then hold a small frame back to gather more
/// ([`Shard::output_to_gather`]). Where inputs go to one or two connections (a ring, a star's
/// spokes, request and reply), frames grow with the input, and holding them only slows the
/// pipeline: measured, a ring of 100 agents lost 10-35 % when its writers gathered.
#[derive(Debug, Default)]
struct Spread {
    /// Inputs handled this tick.
    inputs: u64,
    /// Connections pushed to that were not among the last four of the same input.
    reached: u64,
    /// The connections this input pushed to last, most recent first.
    recent: [u32; 4],
    /// The last tick's inputs spread wide.
    wide: bool,
}

/// Connections per input from which a shard's inputs count as spreading wide ([`Spread`]).
const SPREAD_WIDE: u64 = 4;

/// Room a connection keeps for the destinations its input waits on after the gate opens
/// (entries); a list that grew past it (a broadcast to many slow receivers) is let go.
const BLOCKED_KEPT: usize = 16;
/// Entries a transient table (requests waiting for peers, a peer's queues) keeps once a burst
/// has passed: one with more than four times this room and at most a quarter of it in use
/// gives the rest back at the next tick. A registration burst of 19,000 agents on two shards
/// left ≈ 0.9 MB of claims' room and 0.5 MB of peer queues, 70 bytes per connection, held
/// for the router's life.
const TRANSIENT_KEEP: usize = 256;

/// Whether a transient table with room for `capacity` entries and `len` in use holds room a
/// burst left ([`TRANSIENT_KEEP`]).
fn burst_passed(capacity: usize, len: usize) -> bool {
    capacity > 4 * TRANSIENT_KEEP && len <= TRANSIENT_KEEP / 4
}

/// Shrinks `map` to [`TRANSIENT_KEEP`] entries' room once a burst that grew it has passed;
/// whether it did.
fn ebb_map<K: Eq + std::hash::Hash, V>(map: &mut FxHashMap<K, V>) -> bool {
    let passed = burst_passed(map.capacity(), map.len());
    if passed {
        map.shrink_to(TRANSIENT_KEEP);
    }
    passed
}

/// How long after the last shard let a burst's room go the process gives its free heap back.
const HEAP_TRIM_AFTER_NS: u64 = 200_000_000;

/// When the process gives the heap's free pages back to the system, once for every burst that
/// all shards let go of. The allocator keeps what a burst freed (a registration burst of 19,000
/// own connections on eight shards: ≈ 190 bytes a connection, in the middle of the shards'
/// heaps where only a trim returns it); trimming costs ≈ 0.3 ms of one shard's loop for a
/// 40 MB heap, once, [`HEAP_TRIM_AFTER_NS`] after the last shard's ebb, whichever shard's tick
/// comes first.
struct HeapTrim {
    /// 0: none due.
    due_ns: std::sync::atomic::AtomicU64,
}

impl HeapTrim {
    const fn new() -> HeapTrim {
        HeapTrim { due_ns: std::sync::atomic::AtomicU64::new(0) }
    }

    /// A shard let a burst's room go at `now_ns`: the trim waits for any other shard's.
    fn ebbed(&self, now_ns: u64) {
        self.due_ns.fetch_max(now_ns + HEAP_TRIM_AFTER_NS, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the caller is to trim now (one caller per trim due).
    fn take_due(&self, now_ns: u64) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let due = self.due_ns.load(Relaxed);
        due != 0 && now_ns >= due && self.due_ns.compare_exchange(due, 0, Relaxed, Relaxed).is_ok()
    }
}

static HEAP_TRIM: HeapTrim = HeapTrim::new();

/// Gives the heap's free pages back to the system (glibc's `malloc_trim`; elsewhere nothing).
#[allow(unsafe_code)]
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes the allocator's own locks and releases only free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}

impl Spread {
    #[inline]
    fn input(&mut self) {
        self.inputs += 1;
        self.recent = [u32::MAX; 4];
    }

    #[inline]
    fn push(&mut self, idx: u32) {
        if self.recent[0] != idx && !self.recent.contains(&idx) {
            self.recent.rotate_right(1);
            self.recent[0] = idx;
            self.reached += 1;
        }
    }

    fn settle(&mut self) {
        self.wide = self.inputs > 0 && self.reached >= SPREAD_WIDE * self.inputs;
        self.inputs = 0;
        self.reached = 0;
    }
}

impl Shard {
    /// A shard with no connections.
    pub fn new(cfg: ShardConfig) -> Shard {
        assert!(cfg.shards >= 1 && cfg.shards <= 64, "1 to 64 shards");
        assert!(cfg.shard < cfg.shards, "shard index within the shard count");
        let peers = (0..cfg.shards).map(|_| PeerOut::default()).collect();
        Shard {
            locks: LockTable::new(cfg.lock_lease_ms),
            remote_full: Default::default(),
            remote_full_per_peer: vec![0; usize::from(cfg.shards)],
            remote_waiting: Vec::new(),
            conn_bytes: 0,
            read_bytes: 0,
            peers,
            cfg,
            conns: Slab::new(),
            next_gen: 0,
            directory: FxHashMap::default(),
            local: Slab::new(),
            owned: FxHashMap::default(),
            topics: FxHashMap::default(),
            barriers: BarrierTable::default(),
            pending: FxHashMap::default(),
            next_token: 1,
            pool: BufferPool::default(),
            inflate: Vec::new(),
            ctl_buf: Vec::new(),
            fan: Vec::new(),
            grants: Vec::new(),
            deferred: Vec::new(),
            fan_mark: 0,
            spread: Spread::default(),
            now_ns: clock::now_ns(),
            next_liveness_ns: 0,
            next_timeouts_ns: 0,
            congested: None,
            congested_more: Vec::new(),
            congestion_mark: 1,
            peers_told: false,
            counters: Counters::default(),
            stopped: false,
        }
    }

    /// Its settings.
    pub fn config(&self) -> &ShardConfig {
        &self.cfg
    }

    /// Closes every connection and wakes every parked task so that each one finishes: writers
    /// and peer senders see the end, gates open, readers hit the closed sockets.
    pub fn shutdown(&mut self) {
        self.stopped = true;
        let ids: Vec<ConnId> =
            self.conns.iter().map(|(i, c)| ConnId { idx: i as u32, gen: c.gen }).collect();
        for id in ids {
            self.close_conn(id);
        }
        for p in &mut self.peers {
            p.wake_senders();
            p.waiting.drain(..).for_each(Waker::wake);
        }
        self.remote_waiting.drain(..).for_each(Waker::wake);
        self.pending.clear();
    }

    /// Whether [`Shard::shutdown`] was called.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Whether peers were told a connection is full since the last call. A loop applying peer
    /// messages stops then, so that the notice leaves before more of the senders' traffic is
    /// taken in: the senders keep sending until they hear it, and a drain that went on would
    /// take in what they refill meanwhile, past every bound.
    pub fn take_peers_told(&mut self) -> bool {
        std::mem::take(&mut self.peers_told)
    }

    /// This shard's index.
    pub fn id(&self) -> u16 {
        self.cfg.shard
    }

    /// The number of shards.
    pub fn shards(&self) -> u16 {
        self.cfg.shards
    }

    /// Open connections.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Agents homed here.
    pub fn local_agents(&self) -> usize {
        self.local.len()
    }

    /// Where agent `id` is and, if homed here, whether it is online.
    pub fn presence(&self, id: AgentId) -> Option<Presence> {
        match self.directory.get(&id)? {
            Route::Local(li) => {
                self.local.get(*li as usize).map(|a| Presence::Local { online: a.online })
            }
            Route::Remote(shard) => Some(Presence::Remote { shard: *shard }),
        }
    }

    /// Agents known to this shard's directory (all shards').
    pub fn known_agents(&self) -> usize {
        self.directory.len()
    }

    /// The shard's buffer pool, for its shell's read buffers.
    pub fn pool(&mut self) -> &mut BufferPool {
        &mut self.pool
    }

    /// Wires the return lane with shard `peer` ([`peer::Returns`]).
    pub fn set_returns(&mut self, peer: u16, returns: peer::Returns) {
        self.peers[usize::from(peer)].returns = Some(returns);
    }

    /// Registers a new connection. Its reader and writer each call [`Shard::release_conn`]
    /// when they finish.
    pub fn open_conn(&mut self) -> ConnId {
        self.next_gen = self.next_gen.wrapping_add(1);
        let gen = self.next_gen;
        let idx = self.conns.insert(Conn::new(gen, self.now_ns)) as u32;
        ConnId { idx, gen }
    }

    fn conn_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.conns.get_mut(id.idx as usize).filter(|c| c.gen == id.gen)
    }

    /// Routes every complete frame at the start of `buf` (bytes read from connection `id`).
    pub fn on_input(&mut self, id: ConnId, buf: &[u8]) -> Input {
        self.now_ns = clock::now_ns();
        self.spread.input();
        let closed = Input { consumed: buf.len(), close: true, paused: false };
        let now_ns = self.now_ns;
        match self.conn_mut(id) {
            Some(c) if c.closing == Closing::No => c.last_frame_ns = now_ns,
            _ => return closed,
        }
        let mut inflate = std::mem::take(&mut self.inflate);
        let mut consumed = 0;
        let mut result = Input { consumed: 0, close: false, paused: false };
        while consumed < buf.len() {
            let rest = &buf[consumed..];
            match decode_frame(rest, &self.cfg.limits, &mut inflate) {
                Ok(Some((len, mut batch))) => {
                    self.counters.batches_in += 1;
                    let mut failed = None;
                    loop {
                        if let Some((env, raw)) = batch.next_usual() {
                            self.on_data(id.idx, &env, raw);
                            continue;
                        }
                        match batch.next_message() {
                            Ok(None) => break,
                            Ok(Some((Message::Data(env), raw))) => self.on_data(id.idx, &env, raw),
                            Ok(Some((Message::Control(ctl), _))) => {
                                if let Err(code) = self.on_control(id, ctl) {
                                    failed = Some((code, "a client may not send this kind".into()));
                                    break;
                                }
                            }
                            Err(e) => {
                                failed = Some((e.code(), e.to_string()));
                                break;
                            }
                        }
                    }
                    consumed += len;
                    if let Some((code, detail)) = failed {
                        self.fail_conn(id, code, detail);
                        result.close = true;
                        break;
                    }
                    if self.congested.is_some() {
                        // Overshoot the bound by at most this one frame.
                        result.paused = consumed < buf.len();
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    self.fail_conn(id, e.code(), e.to_string());
                    result.close = true;
                    consumed = buf.len();
                    break;
                }
            }
        }
        self.inflate = inflate;
        self.counters.bytes_in += consumed as u64;
        result.consumed = consumed;
        // A frame left incomplete starts (or keeps) the frame timeout's clock.
        let partial = !result.close && !result.paused && consumed < buf.len();
        if let Some(c) = self.conn_mut(id) {
            c.partial_since_ns = if partial { c.partial_since_ns.or(Some(now_ns)) } else { None };
        }
        let congested = self.congested.take();
        let mut more = std::mem::take(&mut self.congested_more);
        self.congestion_mark += 1;
        if let Some(c) = self.conn_mut(id) {
            c.blocked_on = congested;
            if !more.is_empty() || c.cold.is_some() {
                let k = c.cold();
                k.blocked_more.clear();
                k.blocked_more.append(&mut more);
            }
        }
        more.clear();
        self.congested_more = more;
        result
    }

    /// Refuses the frame arriving on `id` for lack of memory: `resource_exhausted`, then close.
    pub fn refuse_frame(&mut self, id: ConnId, why: &str) {
        self.fail_conn(id, ErrorCode::ResourceExhausted, why.into());
    }

    /// Queues a fatal error for `id`, drops its agents, and closes it once the error is written.
    fn fail_conn(&mut self, id: ConnId, code: ErrorCode, detail: String) {
        let err = crate::wire::control::Error {
            code: code.code(),
            request_id: 0,
            message_id: 0,
            agent_id: AgentId(0),
            detail: detail.into(),
        };
        self.reply_conn(id.idx, &crate::wire::Control::Error(err));
        self.count_error(code);
        self.close_after_flush(id);
    }

    /// A reader wants its buffer to grow by `extra` bytes past the large tier (a frame over
    /// 64 KiB is arriving): false, and nothing reserved, when the memory budget would be passed.
    pub fn reserve_read(&mut self, extra: usize) -> bool {
        if self.memory_bytes() + extra > self.cfg.memory_max {
            return false;
        }
        self.read_bytes += extra;
        true
    }

    /// A reader gave back `bytes` it had reserved.
    pub fn release_read(&mut self, bytes: usize) {
        self.read_bytes = self.read_bytes.saturating_sub(bytes);
    }

    /// Bytes held in connection and peer queues and in grown read buffers.
    pub fn memory_bytes(&self) -> usize {
        self.conn_bytes + self.read_bytes + self.peers.iter().map(PeerOut::bytes).sum::<usize>()
    }

    /// Whether a new connection should be refused: the memory budget is spent.
    pub fn over_memory(&self) -> bool {
        self.memory_bytes() >= self.cfg.memory_max
    }

    /// A connection was refused (connection limit, memory budget) before it was served.
    pub fn count_refused(&mut self) {
        self.counters.connections_refused += 1;
        self.count_error(ErrorCode::ResourceExhausted);
    }

    /// The connection's peer went away or its socket failed: drop its agents and its queue.
    pub fn close_conn(&mut self, id: ConnId) {
        let Some(c) = self.conn_mut(id) else { return };
        if c.closing == Closing::Now {
            return;
        }
        c.closing = Closing::Now;
        let announced = std::mem::take(&mut c.announced).then(|| c.agents.to_vec());
        if let Some(agents) = announced {
            self.tell_all_peers(|| PeerMsg::Congested { agents: agents.clone(), on: false });
        }
        self.drop_agents_of(id.idx);
        if let Some(c) = self.conns.get_mut(id.idx as usize) {
            self.conn_bytes = self.conn_bytes.saturating_sub(c.queued_bytes);
            c.discard_output(&mut self.pool);
            for w in [c.writer.take(), c.closer.take()].into_iter().flatten() {
                w.wake();
            }
            c.wake_waiting();
        }
    }

    /// One of the connection's two tasks is done with it; the slot is freed after both.
    pub fn release_conn(&mut self, id: ConnId) {
        let Some(c) = self.conn_mut(id) else { return };
        c.users = c.users.saturating_sub(1);
        if c.users == 0 {
            self.close_conn(id);
            self.conns.remove(id.idx as usize);
        }
    }

    /// The next message for peer shard `to` on `lane`; pending (waker kept) while there is
    /// none; `Ready(None)` once the shard is shut down.
    pub fn poll_peer_output(
        &mut self,
        to: u16,
        lane: Lane,
        cx: &mut Context<'_>,
    ) -> Poll<Option<PeerMsg>> {
        if self.stopped {
            return Poll::Ready(None);
        }
        let low = self.cfg.peer_queue_bytes_max / 2;
        let out = &mut self.peers[usize::from(to)];
        match out.poll_take(lane, cx) {
            Some(msg) => {
                if out.queued_bytes <= low {
                    out.waiting.drain(..).for_each(Waker::wake);
                }
                Poll::Ready(Some(msg))
            }
            None => Poll::Pending,
        }
    }

    /// Settles expired lock leases and, periodically, agent liveness.
    pub fn tick(&mut self, now_ns: u64) {
        self.now_ns = now_ns;
        self.spread.settle();
        let mut grants = std::mem::take(&mut self.grants);
        self.locks.expire(now_ns, &mut grants);
        self.deliver_grants(&mut grants);
        self.grants = grants;
        let mut ebbed = ebb_map(&mut self.pending);
        ebbed |= ebb_map(&mut self.remote_full);
        for p in &mut self.peers {
            ebbed |= p.ebb();
        }
        if ebbed {
            HEAP_TRIM.ebbed(now_ns);
        }
        if HEAP_TRIM.take_due(now_ns) {
            trim_heap();
        }
        for (id, r, deadline) in std::mem::take(&mut self.deferred) {
            if self.conn_mut(id).is_some() {
                self.register(id, r, deadline);
            }
        }
        if now_ns >= self.next_timeouts_ns {
            let shortest = self.cfg.idle_timeout.min(self.cfg.frame_timeout);
            let check = shortest.min(self.cfg.slow_consumer).as_nanos() as u64 / 4;
            self.next_timeouts_ns = now_ns + check.clamp(1_000_000, 1_000_000_000);
            self.close_timed_out(now_ns);
        }
        if now_ns >= self.next_liveness_ns {
            let timeout = self.cfg.heartbeat_timeout_ns();
            self.next_liveness_ns = now_ns + (timeout / 4).clamp(1_000_000, 1_000_000_000);
            for (_, a) in self.local.iter_mut() {
                a.online = heard(a, &self.conns, now_ns, timeout);
            }
        }
    }

    /// Closes, with a `timeout` error, every connection with no agent that has been silent past
    /// the idle timeout and every one holding a frame incomplete past the frame timeout; with
    /// `slow_consumer`, every one whose queue stayed past its bound past the slow-consumer time;
    /// and cuts off every one that did not finish flushing before closing in its grace time.
    fn close_timed_out(&mut self, now_ns: u64) {
        let idle = self.cfg.idle_timeout.as_nanos() as u64;
        let frame = self.cfg.frame_timeout.as_nanos() as u64;
        let slow = self.cfg.slow_consumer.as_nanos() as u64;
        let mut cut_off = Vec::new();
        let expired: Vec<(ConnId, ErrorCode, &'static str)> = self
            .conns
            .iter()
            .filter_map(|(i, c)| {
                let id = ConnId { idx: i as u32, gen: c.gen };
                let elapsed = |t: u64| now_ns.saturating_sub(t);
                let cold = c.cold.as_deref();
                if c.closing == Closing::AfterFlush && cold.is_some_and(|k| now_ns > k.give_up_ns) {
                    cut_off.push(id);
                    return None;
                }
                if c.closing != Closing::No {
                    None
                } else if cold.and_then(|k| k.full_since_ns).is_some_and(|t| elapsed(t) > slow) {
                    Some((id, ErrorCode::SlowConsumer, "queue past its bound for too long"))
                } else if c.partial_since_ns.is_some_and(|t| elapsed(t) > frame) {
                    let why = "a frame did not complete within the frame timeout";
                    Some((id, ErrorCode::Timeout, why))
                } else if c.agents.is_empty() && elapsed(c.last_frame_ns) > idle {
                    let why = "no agent registered and no input within the idle timeout";
                    Some((id, ErrorCode::Timeout, why))
                } else {
                    None
                }
            })
            .collect();
        for (id, code, why) in expired {
            if code == ErrorCode::SlowConsumer {
                // What is queued will never be read in time: drop it, so the error goes first.
                self.counters.slow_consumers += 1;
                if let Some(c) = self.conns.get_mut(id.idx as usize) {
                    self.conn_bytes = self.conn_bytes.saturating_sub(c.queued_bytes);
                    c.discard_output(&mut self.pool);
                    c.wake_waiting();
                }
            }
            self.fail_conn(id, code, why.into());
        }
        for id in cut_off {
            self.close_conn(id);
        }
    }

    /// This shard's counters.
    pub fn stats(&self) -> ShardStats {
        let pool = self.pool.stats();
        let errors = ErrorCode::ALL
            .iter()
            .zip(self.counters.errors)
            .filter(|(_, n)| *n > 0)
            .map(|(c, n)| (c.code(), n))
            .collect();
        let c = &self.counters;
        ShardStats {
            shard: self.cfg.shard,
            core: self.cfg.core,
            numa_node: self.cfg.numa_node,
            connections: self.conns.len() as u32,
            agents: self.local.len() as u32,
            msgs_in: c.msgs_in,
            msgs_out: c.msgs_out,
            bytes_in: c.bytes_in,
            bytes_out: c.bytes_out,
            batches_in: c.batches_in,
            batches_out: c.batches_out,
            cross_shard_out: c.cross_out,
            cross_shard_in: c.cross_in,
            errors,
            pool_hits: pool.hits,
            pool_misses: pool.misses,
            pool_returns: pool.returns,
            pool_discards: pool.discards,
            conn_queue_bytes_hwm: c.conn_queue_bytes_hwm as u64,
            slow_consumers: c.slow_consumers,
            connections_refused: c.connections_refused,
            memory_bytes: self.memory_bytes() as u64,
            // Counted by the watchdog outside the shard.
            loop_stalls: 0,
            peer_queue_bytes_hwm: self.peers.iter().map(|p| p.queued_bytes_hwm).max().unwrap_or(0)
                as u64,
            // stats() runs on the shard's own thread (command loop or peer request).
            cpu_ns: clock::thread_cpu_ns(),
            watch_ns: clock::thread_watch_ns(),
        }
    }

    fn count_error(&mut self, code: ErrorCode) {
        if let Some(i) = ErrorCode::ALL.iter().position(|&c| c == code) {
            self.counters.errors[i] += 1;
        }
    }

    /// Queues an encoded router → client control message on connection slot `idx`, high lane.
    /// Never dropped; a connection whose replies pile up pauses its own input instead.
    fn reply_conn(&mut self, idx: u32, ctl: &crate::wire::Control) {
        let mut buf = std::mem::take(&mut self.ctl_buf);
        buf.clear();
        ctl.encode(&mut buf);
        self.push_conn_raw(idx, LANE_HIGH, &buf);
        self.ctl_buf = buf;
    }

    fn peer_push_msg(&mut self, to: u16, msg: PeerMsg) {
        self.peers[usize::from(to)].push_msg(msg);
    }

    /// Sends `make()` to every other shard.
    fn tell_all_peers(&mut self, make: impl Fn() -> PeerMsg) {
        for p in 0..self.cfg.shards {
            if p != self.cfg.shard {
                self.peer_push_msg(p, make());
            }
        }
    }

    fn owner_of(&self, key: u64) -> u16 {
        (key % u64::from(self.cfg.shards)) as u16
    }

    fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }
}
