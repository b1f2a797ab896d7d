//! The shared-state baseline: how a competent engineer writes an A2A router on tokio.
//!
//! A multi-thread runtime; a reader and a writer task per connection; one registry shared by all
//! threads (a concurrent map); a byte-bounded queue per connection; and writes batched the same
//! way as the thread-per-core router. Each reader routes a whole input pass into per-destination chunks,
//! then hands each chunk over once. Each writer coalesces what its queue holds into one frame and
//! one write. The codec is the same `wire` code; counters are added to shared atomics once per
//! pass. Locks and barriers use the same state machines behind a mutex.
//!
//! `io.rs`: a connection's input and output (TCP or WebSocket) and its writer task; `conn.rs`: a
//! connection's reader and the data path; `control.rs`: registration, discovery, locks, barriers.

mod conn;
mod control;
mod io;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use rustc_hash::FxBuildHasher;
use tokio::sync::{mpsc, Semaphore};

use crate::clock;
use crate::route::coord::{BarrierTable, LockTable};
use crate::route::ShardConfig;
use crate::wire::control::LockGranted;
use crate::wire::{AgentId, Control, ErrorCode, ShardStats, TopicId};

use conn::Conn;
use io::{writer, Input, Output};

type FxDashMap<K, V> = DashMap<K, V, FxBuildHasher>;

/// Largest frame a writer builds.
const FRAME_BYTES: usize = 64 << 10;

/// A registered agent.
struct Agent {
    conn: u64,
    agent_type: u32,
    name: String,
    capabilities: Vec<String>,
    topics: Vec<TopicId>,
    last_seen_ns: u64,
    /// Its connection's last input, shared with the connection.
    conn_seen_ns: Arc<AtomicU64>,
}

/// Encoded messages for one connection, handed over in one piece.
struct Chunk {
    buf: Vec<u8>,
    count: u32,
    high: bool,
}

/// How other tasks reach a connection's writer.
#[derive(Clone)]
struct ConnHandle {
    tx: mpsc::UnboundedSender<Chunk>,
    /// Bytes the queue may still take: the bound.
    budget: Arc<Semaphore>,
}

/// Router-wide counters (added once per input pass).
#[derive(Default)]
struct Counters {
    msgs_in: AtomicU64,
    msgs_out: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    batches_in: AtomicU64,
    batches_out: AtomicU64,
    errors: [AtomicU64; ErrorCode::ALL.len()],
    conn_queue_bytes_hwm: AtomicUsize,
    /// Connections refused past `--max-connections`.
    refused: AtomicU64,
}

/// Everything the tasks share.
pub(super) struct State {
    cfg: ShardConfig,
    agents: FxDashMap<AgentId, Agent>,
    conns: FxDashMap<u64, ConnHandle>,
    topics: FxDashMap<TopicId, Vec<AgentId>>,
    locks: Mutex<LockTable>,
    barriers: Mutex<BarrierTable>,
    counters: Counters,
    next_conn: AtomicU64,
    /// Connections accepted and not yet closed (`--max-connections` counts these).
    open: AtomicUsize,
}

impl State {
    pub(super) fn new(cfg: ShardConfig) -> State {
        State {
            locks: Mutex::new(LockTable::new(cfg.lock_lease_ms)),
            cfg,
            agents: FxDashMap::default(),
            conns: FxDashMap::default(),
            topics: FxDashMap::default(),
            barriers: Mutex::new(BarrierTable::default()),
            counters: Counters::default(),
            next_conn: AtomicU64::new(1),
            open: AtomicUsize::new(0),
        }
    }

    /// The router's counters, as one entry.
    pub(super) fn stats(&self, cpu_ns: u64) -> ShardStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ShardStats {
            shard: 0,
            core: self.cfg.core,
            numa_node: self.cfg.numa_node,
            connections: self.conns.len() as u32,
            agents: self.agents.len() as u32,
            msgs_in: get(&c.msgs_in),
            msgs_out: get(&c.msgs_out),
            bytes_in: get(&c.bytes_in),
            bytes_out: get(&c.bytes_out),
            batches_in: get(&c.batches_in),
            batches_out: get(&c.batches_out),
            errors: ErrorCode::ALL
                .iter()
                .zip(&c.errors)
                .map(|(code, n)| (code.code(), get(n)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            conn_queue_bytes_hwm: c.conn_queue_bytes_hwm.load(Ordering::Relaxed) as u64,
            connections_refused: get(&c.refused),
            cpu_ns,
            ..ShardStats::default()
        }
    }

    /// Runs `f` on the lock table (a poisoned mutex is recovered: the table stays consistent
    /// because every operation on it is a single call).
    fn with_locks<T>(&self, f: impl FnOnce(&mut LockTable) -> T) -> T {
        f(&mut self.locks.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Runs `f` on the barrier table.
    fn with_barriers<T>(&self, f: impl FnOnce(&mut BarrierTable) -> T) -> T {
        f(&mut self.barriers.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn online(&self, a: &Agent, now_ns: u64) -> bool {
        let seen = a.last_seen_ns.max(a.conn_seen_ns.load(Ordering::Relaxed));
        now_ns.saturating_sub(seen) <= self.cfg.heartbeat_timeout_ns()
    }
}

/// Serves one accepted connection until it closes: native frames on TCP, or in WebSocket
/// binary messages (the first byte tells an HTTP upgrade from a frame).
pub(super) async fn serve(state: Arc<State>, stream: tokio::net::TcpStream) {
    let _ = stream.set_nodelay(true);
    let open = Open::count(&state.open);
    let max = state.cfg.max_connections;
    if max > 0 && open.0 > max {
        state.counters.refused.fetch_add(1, Ordering::Relaxed);
        if let Some(i) = ErrorCode::ALL.iter().position(|&c| c == ErrorCode::ResourceExhausted) {
            state.counters.errors[i].fetch_add(1, Ordering::Relaxed);
        }
        return refuse(stream, state.cfg.handshake_timeout).await;
    }
    let mut first = [0u8; 1];
    if !matches!(stream.peek(&mut first).await, Ok(n) if n > 0) {
        return;
    }
    let (input, output) = if crate::transport::is_http_upgrade(first[0]) {
        // A second descriptor, to answer a failed handshake with 400.
        let dup = stream.into_std().and_then(|s| Ok((s.try_clone()?, s)));
        let Ok((control, std)) = dup else { return };
        let Ok(stream) = tokio::net::TcpStream::from_std(std) else { return };
        // The signature is tungstenite's `Callback`; its error type is not ours to shrink.
        #[allow(clippy::result_large_err)]
        let callback = |req: &tungstenite::handshake::server::Request,
                        mut resp: tungstenite::handshake::server::Response| {
            let native = crate::transport::ws::SUBPROTOCOL_NATIVE;
            let offered = req
                .headers()
                .get_all("Sec-WebSocket-Protocol")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| v.split(',').any(|p| p.trim() == native));
            if offered {
                resp.headers_mut().insert(
                    "Sec-WebSocket-Protocol",
                    tungstenite::http::HeaderValue::from_static(native),
                );
            }
            Ok(resp)
        };
        let config = Some(crate::transport::ws::config(crate::transport::ws::READ_FROM_SOCKET));
        match tokio_tungstenite::accept_hdr_async_with_config(stream, callback, config).await {
            Ok(ws) => {
                let (sink, stream) = futures_util::StreamExt::split(ws);
                (Input::Ws { stream, pending: Default::default() }, Output::Ws(sink))
            }
            Err(_) => {
                let _ = std::io::Write::write_all(&mut &control, crate::transport::ws::REFUSAL);
                return;
            }
        }
    } else {
        let (read, write) = stream.into_split();
        (Input::Tcp(read), Output::Tcp(write))
    };
    let id = state.next_conn.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = mpsc::unbounded_channel();
    let budget = Arc::new(Semaphore::new(state.cfg.conn_queue_bytes_max));
    state.conns.insert(id, ConnHandle { tx, budget: budget.clone() });
    let writer = tokio::spawn(writer(state.clone(), output, rx, budget.clone()));
    let mut conn = Conn::new(state.clone(), id);
    conn.read_loop(input).await;
    conn.close().await;
    state.conns.remove(&id);
    // Readers waiting for queue space on this connection get an error instead of waiting forever.
    budget.close();
    let _ = writer.await;
}

/// One open connection, counted while it lives: `.0` is the count with it.
struct Open<'a>(usize, &'a AtomicUsize);

impl Open<'_> {
    fn count(open: &AtomicUsize) -> Open<'_> {
        Open(open.fetch_add(1, Ordering::Relaxed) + 1, open)
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.1.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Refuses a connection past the limit as the thread-per-core router does: once its first
/// bytes show its protocol (within `timeout`), `resource_exhausted` (an error frame, or HTTP
/// 503 to a WebSocket upgrade), then close.
async fn refuse(mut stream: tokio::net::TcpStream, timeout: Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut first = [0u8; 512];
    let Ok(Ok(n)) = tokio::time::timeout(timeout, stream.read(&mut first)).await else { return };
    let http = n > 0 && crate::transport::is_http_upgrade(first[0]);
    let reply = crate::route::shell::refusal(http, crate::route::shell::TOO_MANY_CONNECTIONS);
    let _ = tokio::time::timeout(timeout, stream.write_all(&reply)).await;
    let _ = stream.shutdown().await;
}

/// Settles lock leases every 10 ms, like a shard's tick.
pub(super) async fn lease_ticker(state: Arc<State>) {
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let mut grants = Vec::new();
        state.with_locks(|t| t.expire(clock::now_ns(), &mut grants));
        for g in grants {
            let Some(conn) = state.agents.get(&g.waiter.agent).map(|a| a.conn) else { continue };
            let Some(handle) = state.conns.get(&conn).map(|h| h.clone()) else { continue };
            let granted = Control::LockGranted(LockGranted {
                request_id: g.waiter.request_id,
                agent_id: g.waiter.agent,
                lock_id: g.lock,
                lease_ms: g.lease_ms,
            });
            let mut buf = Vec::new();
            granted.encode(&mut buf);
            let _ = handle.tx.send(Chunk { buf, count: 1, high: true });
        }
    }
}

/// Accepts connections forever.
pub(super) async fn accept_loop(state: Arc<State>, listener: tokio::net::TcpListener) {
    loop {
        if let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(state.clone(), stream));
        }
    }
}
