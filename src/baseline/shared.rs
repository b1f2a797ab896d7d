//! The shared-state baseline: how a competent engineer writes an A2A router on tokio.
//!
//! A multi-thread runtime; a reader and a writer task per connection; one registry shared by all
//! threads (a concurrent map); a byte-bounded queue per connection; and writes batched the same
//! way as the thread-per-core router. Each reader routes a whole input pass into per-destination chunks,
//! then hands each chunk over once. Each writer coalesces what its queue holds into one frame and
//! one write. The codec is the same `wire` code; counters are added to shared atomics once per
//! pass. Locks and barriers use the same state machines behind a mutex.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use rustc_hash::FxBuildHasher;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, Semaphore};

use crate::clock;
use crate::route::coord::{
    self, BarrierOutcome, BarrierTable, Grant, LockOutcome, LockTable, Waiter,
};
use crate::route::{FullPolicy, ShardConfig};
use crate::wire::control::{
    Ack, AgentInfo, BarrierWait, DiscoverReply, Error as ErrorMsg, LockGranted, LockQueued,
    StatsReply,
};
use crate::wire::frame::decode_message;
use crate::wire::{
    decode_frame, AgentId, BufferPool, Control, DataKind, Envelope, ErrorCode, FrameBuf, Message,
    ShardStats, TopicId,
};

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
        now_ns.saturating_sub(seen) <= self.cfg.heartbeat_timeout.as_nanos() as u64
    }
}

/// Serves one accepted connection until it closes: native frames on TCP, or in WebSocket
/// binary messages (the first byte tells an HTTP upgrade from a frame).
pub(super) async fn serve(state: Arc<State>, stream: tokio::net::TcpStream) {
    let _ = stream.set_nodelay(true);
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
        let config = Some(crate::transport::ws::config());
        match tokio_tungstenite::accept_hdr_async_with_config(stream, callback, config).await {
            Ok(ws) => {
                let (sink, stream) = futures_util::StreamExt::split(ws);
                (Input::Ws { stream, pending: Default::default() }, Output::Ws(sink))
            }
            Err(_) => {
                crate::transport::ws::refuse_upgrade(&control);
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

type WsStream = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Where a connection's bytes come from.
enum Input {
    Tcp(OwnedReadHalf),
    Ws {
        stream: futures_util::stream::SplitStream<WsStream>,
        /// Unread rest of the last binary message.
        pending: tungstenite::Bytes,
    },
}

impl Input {
    /// Reads into `buf`; 0 at the end. Over WebSocket it gathers every binary message already
    /// available, so one routing pass sees a batch of frames as it does over TCP.
    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use futures_util::{FutureExt, StreamExt};
        match self {
            Input::Tcp(r) => r.read(buf).await,
            Input::Ws { stream, pending } => {
                let mut filled = 0;
                loop {
                    if !pending.is_empty() {
                        let n = (buf.len() - filled).min(pending.len());
                        buf[filled..filled + n].copy_from_slice(&pending.split_to(n));
                        filled += n;
                        if filled == buf.len() {
                            return Ok(filled);
                        }
                    }
                    let next = if filled == 0 {
                        stream.next().await
                    } else {
                        match stream.next().now_or_never() {
                            Some(next) => next,
                            None => return Ok(filled),
                        }
                    };
                    match next {
                        Some(Ok(tungstenite::Message::Binary(b))) => *pending = b,
                        Some(Ok(tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_))) => {
                        }
                        Some(Ok(tungstenite::Message::Text(_))) if filled == 0 => {
                            return Err(std::io::Error::new(
                                std::io::ErrorKind::InvalidData,
                                "text on a native connection",
                            ))
                        }
                        _ => return Ok(filled),
                    }
                }
            }
        }
    }
}

/// Where a connection's frames go.
enum Output {
    Tcp(OwnedWriteHalf),
    Ws(futures_util::stream::SplitSink<WsStream, tungstenite::Message>),
}

impl Output {
    async fn write_frame(&mut self, frame: &[u8]) -> std::io::Result<()> {
        match self {
            Output::Tcp(w) => w.write_all(frame).await,
            Output::Ws(sink) => futures_util::SinkExt::send(
                sink,
                tungstenite::Message::Binary(tungstenite::Bytes::copy_from_slice(frame)),
            )
            .await
            .map_err(std::io::Error::other),
        }
    }

    async fn close(&mut self) {
        match self {
            Output::Tcp(w) => drop(w.shutdown().await),
            Output::Ws(sink) => drop(futures_util::SinkExt::close(sink).await),
        }
    }
}

async fn writer(
    state: Arc<State>,
    mut write: Output,
    mut rx: mpsc::UnboundedReceiver<Chunk>,
    budget: Arc<Semaphore>,
) {
    let compression = state.cfg.compression;
    let max = state.cfg.conn_queue_bytes_max;
    let mut pool = BufferPool::default();
    // Lane 0 is high priority, lane 1 normal; one frame per write, high lane first.
    let mut lanes: [VecDeque<Chunk>; 2] = [VecDeque::new(), VecDeque::new()];
    loop {
        if lanes.iter().all(VecDeque::is_empty) {
            match rx.recv().await {
                Some(c) => lanes[usize::from(!c.high)].push_back(c),
                None => break,
            }
        }
        while let Ok(c) = rx.try_recv() {
            lanes[usize::from(!c.high)].push_back(c);
        }
        let lane = if lanes[0].is_empty() { &mut lanes[1] } else { &mut lanes[0] };
        let mut frame = FrameBuf::new(pool.get(FRAME_BYTES));
        let mut bytes = 0;
        while let Some(c) = lane.front() {
            if !frame.is_empty() && frame.len() + c.buf.len() > FRAME_BYTES {
                break;
            }
            let Some(c) = lane.pop_front() else { break };
            bytes += c.buf.len().min(max); // exactly what the sender acquired for this chunk
            frame.push_raw_many(&c.buf, c.count);
            pool.put(c.buf);
        }
        let frame = frame.finish(compression, &mut pool);
        state.counters.batches_out.fetch_add(1, Ordering::Relaxed);
        state.counters.bytes_out.fetch_add(frame.len() as u64, Ordering::Relaxed);
        let written = write.write_frame(&frame).await;
        pool.put(frame);
        budget.add_permits(bytes);
        if written.is_err() {
            budget.close();
            return;
        }
    }
    write.close().await;
}

/// Per-pass counts, added to the shared atomics once per pass.
#[derive(Default)]
struct PassCounts {
    msgs_in: u64,
    msgs_out: u64,
    bytes_in: u64,
    batches_in: u64,
}

/// A connection's reader and the routing it does.
struct Conn {
    state: Arc<State>,
    id: u64,
    /// Agents registered on this connection.
    agents: Vec<AgentId>,
    /// Chunks being filled this pass: (destination connection, chunk).
    pending: Vec<(u64, Chunk)>,
    pool: BufferPool,
    inflate: Vec<u8>,
    fan: Vec<u64>,
    counts: PassCounts,
    errors: Vec<ErrorCode>,
    seen_ns: Arc<AtomicU64>,
    now_ns: u64,
    /// A fatal error was queued: stop reading after this pass.
    failed: bool,
}

impl Conn {
    fn new(state: Arc<State>, id: u64) -> Conn {
        Conn {
            state,
            id,
            agents: Vec::new(),
            pending: Vec::new(),
            pool: BufferPool::default(),
            inflate: Vec::new(),
            fan: Vec::new(),
            counts: PassCounts::default(),
            errors: Vec::new(),
            seen_ns: Arc::new(AtomicU64::new(clock::now_ns())),
            now_ns: 0,
            failed: false,
        }
    }

    async fn read_loop(&mut self, mut read: Input) {
        let mut buf = vec![0u8; 8 << 10];
        let mut filled = 0;
        while !self.failed {
            if filled == buf.len() {
                buf.resize(buf.len() * 2, 0);
            }
            let n = match read.read(&mut buf[filled..]).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            filled += n;
            self.now_ns = clock::now_ns();
            self.seen_ns.store(self.now_ns, Ordering::Relaxed);
            let (used, need) = self.route_pass(&buf[..filled]);
            buf.copy_within(used..filled, 0);
            filled -= used;
            if need > buf.len() {
                buf.resize(need, 0);
            }
            self.flush().await;
        }
    }

    /// Routes every complete frame at the start of `input`; returns bytes used and the length
    /// of a partial frame whose header is known.
    fn route_pass(&mut self, input: &[u8]) -> (usize, usize) {
        let limits = self.state.cfg.limits;
        let mut inflate = std::mem::take(&mut self.inflate);
        let mut used = 0;
        let mut need = 0;
        loop {
            match decode_frame(&input[used..], &limits, &mut inflate) {
                Ok(Some((len, batch))) => {
                    self.counts.batches_in += 1;
                    for item in batch {
                        match item {
                            Ok((Message::Data(env), raw)) => self.on_data(&env, raw),
                            Ok((Message::Control(ctl), _)) => {
                                if !ctl.is_request() {
                                    self.fail(
                                        ErrorCode::UnexpectedMessage,
                                        "a client may not send this kind".into(),
                                    );
                                    break;
                                }
                                self.on_control(ctl);
                            }
                            Err(e) => {
                                self.fail(e.code(), e.to_string());
                                break;
                            }
                        }
                    }
                    used += len;
                    if self.failed {
                        break;
                    }
                }
                Ok(None) => {
                    if let Ok(Some(h)) = crate::wire::FrameHeader::parse(&input[used..], &limits) {
                        need = h.frame_len();
                    }
                    break;
                }
                Err(e) => {
                    self.fail(e.code(), e.to_string());
                    used = input.len();
                    break;
                }
            }
        }
        self.inflate = inflate;
        self.counts.bytes_in += used as u64;
        (used, need)
    }

    fn fail(&mut self, code: ErrorCode, detail: String) {
        let err = Control::Error(ErrorMsg {
            code: code.code(),
            request_id: 0,
            message_id: 0,
            agent_id: AgentId(0),
            detail: detail.into(),
        });
        self.errors.push(code);
        self.queue_control(self.id, &err);
        self.failed = true;
    }

    fn on_data(&mut self, env: &Envelope<'_>, raw: &[u8]) {
        self.counts.msgs_in += 1;
        if !self.owns(env.sender) {
            return self.data_error(
                env,
                ErrorCode::SenderNotRegistered,
                "sender is not registered on this connection",
            );
        }
        if env.expired_at(self.now_ns) {
            return self.data_error(env, ErrorCode::Expired, "ttl passed on arrival");
        }
        let high = env.priority > 5;
        match env.kind {
            DataKind::Direct | DataKind::Request | DataKind::Reply => {
                let target = self
                    .state
                    .agents
                    .get(&AgentId(env.to))
                    .map(|a| (a.conn, self.state.online(&a, self.now_ns)));
                match target {
                    None => self.data_error(env, ErrorCode::UnknownRecipient, "no such agent"),
                    Some((_, false)) => self.data_error(
                        env,
                        ErrorCode::RecipientOffline,
                        "recipient missed its heartbeat deadline",
                    ),
                    Some((conn, true)) => self.queue(conn, raw, high),
                }
            }
            DataKind::Broadcast => {
                self.fan.clear();
                for a in self.state.agents.iter() {
                    let typed = env.to == 0 || a.agent_type == env.to;
                    if typed && *a.key() != env.sender && self.state.online(&a, self.now_ns) {
                        self.fan.push(a.conn);
                    }
                }
                self.deliver_fan(raw, high);
            }
            DataKind::Publish => {
                self.fan.clear();
                if let Some(subs) = self.state.topics.get(&TopicId(env.to)) {
                    for agent in subs.iter().filter(|&&a| a != env.sender) {
                        if let Some(a) = self.state.agents.get(agent) {
                            if self.state.online(&a, self.now_ns) {
                                self.fan.push(a.conn);
                            }
                        }
                    }
                }
                self.deliver_fan(raw, high);
            }
        }
    }

    /// One copy per distinct connection in `self.fan`.
    fn deliver_fan(&mut self, raw: &[u8], high: bool) {
        let mut fan = std::mem::take(&mut self.fan);
        fan.sort_unstable();
        fan.dedup();
        for &conn in &fan {
            self.queue(conn, raw, high);
        }
        self.fan = fan;
    }

    fn owns(&self, agent: AgentId) -> bool {
        if self.agents.len() <= 4 {
            return self.agents.contains(&agent);
        }
        self.state.agents.get(&agent).is_some_and(|a| a.conn == self.id)
    }

    /// Appends an encoded message to this pass's chunk for connection `conn`.
    fn queue(&mut self, conn: u64, raw: &[u8], high: bool) {
        self.counts.msgs_out += 1;
        let i = match self.pending.iter().position(|(c, ch)| *c == conn && ch.high == high) {
            Some(i) => i,
            None => {
                self.pending.push((
                    conn,
                    Chunk { buf: self.pool.get(raw.len().max(4096)), count: 0, high },
                ));
                self.pending.len() - 1
            }
        };
        let chunk = &mut self.pending[i].1;
        chunk.buf.extend_from_slice(raw);
        chunk.count += 1;
    }

    fn queue_control(&mut self, conn: u64, ctl: &Control) {
        let mut buf = Vec::new();
        ctl.encode(&mut buf);
        self.queue(conn, &buf, true);
    }

    fn data_error(&mut self, env: &Envelope<'_>, code: ErrorCode, detail: &'static str) {
        self.errors.push(code);
        let err = Control::Error(ErrorMsg {
            code: code.code(),
            request_id: 0,
            message_id: env.message_id,
            agent_id: env.sender,
            detail: Cow::Borrowed(detail),
        });
        self.queue_control(self.id, &err);
    }

    fn request_error(
        &mut self,
        request_id: u64,
        agent: AgentId,
        code: ErrorCode,
        detail: &'static str,
    ) {
        self.errors.push(code);
        let err = Control::Error(ErrorMsg {
            code: code.code(),
            request_id,
            message_id: 0,
            agent_id: agent,
            detail: Cow::Borrowed(detail),
        });
        self.queue_control(self.id, &err);
    }

    /// Hands this pass's chunks to their connections: waits for queue space (backpressure) or,
    /// under the drop policy, drops what does not fit and reports `queue_full` — those reports
    /// go to this connection and wait for its own queue space like any reply.
    async fn flush(&mut self) {
        let max = self.state.cfg.conn_queue_bytes_max;
        while !self.pending.is_empty() {
            for (conn, chunk) in std::mem::take(&mut self.pending) {
                let Some(handle) = self.state.conns.get(&conn).map(|h| h.clone()) else { continue };
                let want = chunk.buf.len().min(max) as u32;
                let permit = if self.state.cfg.on_full == FullPolicy::Drop && conn != self.id {
                    handle.budget.clone().try_acquire_many_owned(want).ok()
                } else {
                    handle.budget.clone().acquire_many_owned(want).await.ok()
                };
                let Some(permit) = permit else {
                    if conn != self.id {
                        self.report_dropped(&chunk);
                    }
                    continue;
                };
                permit.forget();
                let queued = max - handle.budget.available_permits();
                self.state.counters.conn_queue_bytes_hwm.fetch_max(queued, Ordering::Relaxed);
                let _ = handle.tx.send(chunk);
            }
        }
        self.add_counts();
    }

    /// Answers every message of a dropped chunk with `queue_full` to its sender, which is on
    /// this connection (chunks are built from this connection's input).
    fn report_dropped(&mut self, chunk: &Chunk) {
        let mut rest = &chunk.buf[..];
        while let Ok(Message::Data(env)) = decode_message(&mut rest) {
            self.errors.push(ErrorCode::QueueFull);
            let err = Control::Error(ErrorMsg {
                code: ErrorCode::QueueFull.code(),
                request_id: 0,
                message_id: env.message_id,
                agent_id: env.sender,
                detail: Cow::Borrowed("recipient queue full"),
            });
            self.queue_control(self.id, &err);
        }
    }

    fn add_counts(&mut self) {
        let c = &self.state.counters;
        let p = std::mem::take(&mut self.counts);
        c.msgs_in.fetch_add(p.msgs_in, Ordering::Relaxed);
        c.msgs_out.fetch_add(p.msgs_out, Ordering::Relaxed);
        c.bytes_in.fetch_add(p.bytes_in, Ordering::Relaxed);
        c.batches_in.fetch_add(p.batches_in, Ordering::Relaxed);
        for code in self.errors.drain(..) {
            if let Some(i) = ErrorCode::ALL.iter().position(|&c| c == code) {
                c.errors[i].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn on_control(&mut self, ctl: Control) {
        // Requests about an agent must come from the connection it is registered on.
        if let Some((agent, request_id)) = agent_scope(&ctl) {
            if !self.mine(agent, request_id) {
                return;
            }
        }
        match ctl {
            Control::Register(r) => {
                if let Some(token) = &self.state.cfg.token {
                    if r.token.as_deref() != Some(token.as_str()) {
                        return self.request_error(
                            r.request_id,
                            r.agent_id,
                            ErrorCode::Unauthorized,
                            "registration token missing or wrong",
                        );
                    }
                }
                let inserted = match self.state.agents.entry(r.agent_id) {
                    dashmap::Entry::Occupied(_) => false,
                    dashmap::Entry::Vacant(v) => {
                        v.insert(Agent {
                            conn: self.id,
                            agent_type: r.agent_type,
                            name: r.name,
                            capabilities: r.capabilities,
                            topics: r.topics.clone(),
                            last_seen_ns: self.now_ns,
                            conn_seen_ns: self.seen_ns.clone(),
                        });
                        true
                    }
                };
                if !inserted {
                    return self.request_error(
                        r.request_id,
                        r.agent_id,
                        ErrorCode::DuplicateAgent,
                        "agent id is already registered",
                    );
                }
                self.agents.push(r.agent_id);
                for t in r.topics {
                    self.state.topics.entry(t).or_default().push(r.agent_id);
                }
                self.queue_control(self.id, &Control::Ack(Ack { request_id: r.request_id }));
            }
            Control::Unregister(u) => {
                self.remove_agent(u.agent_id);
                self.queue_control(self.id, &Control::Ack(Ack { request_id: u.request_id }));
            }
            Control::Heartbeat(h) => {
                if let Some(mut a) = self.state.agents.get_mut(&h.agent_id) {
                    a.last_seen_ns = self.now_ns;
                }
                self.queue_control(self.id, &Control::Ack(Ack { request_id: h.request_id }));
            }
            Control::Discover(d) => {
                let mut found: Vec<AgentInfo> = self
                    .state
                    .agents
                    .iter()
                    .filter(|a| d.agent_type == 0 || a.agent_type == d.agent_type)
                    .filter(|a| d.capability.as_ref().is_none_or(|c| a.capabilities.contains(c)))
                    .map(|a| AgentInfo {
                        agent_id: *a.key(),
                        agent_type: a.agent_type,
                        name: a.name.clone(),
                        capabilities: a.capabilities.clone(),
                        online: self.state.online(&a, self.now_ns),
                        shard: 0,
                    })
                    .collect();
                found.sort_by_key(|a| a.agent_id);
                let total = found.len() as u32;
                let limit = if d.limit == 0 { 1000 } else { d.limit.min(1000) } as usize;
                let agents = found.into_iter().skip(d.offset as usize).take(limit).collect();
                let reply = Control::DiscoverReply(DiscoverReply {
                    request_id: d.request_id,
                    total,
                    agents,
                });
                self.queue_control(self.id, &reply);
            }
            Control::Subscribe(s) => {
                let mut fresh = false;
                if let Some(mut a) = self.state.agents.get_mut(&s.agent_id) {
                    if !a.topics.contains(&s.topic) {
                        a.topics.push(s.topic);
                        fresh = true;
                    }
                }
                if fresh {
                    self.state.topics.entry(s.topic).or_default().push(s.agent_id);
                }
                self.queue_control(self.id, &Control::Ack(Ack { request_id: s.request_id }));
            }
            Control::Unsubscribe(u) => {
                if let Some(mut a) = self.state.agents.get_mut(&u.agent_id) {
                    a.topics.retain(|&t| t != u.topic);
                }
                if let Some(mut subs) = self.state.topics.get_mut(&u.topic) {
                    subs.retain(|&a| a != u.agent_id);
                }
                self.queue_control(self.id, &Control::Ack(Ack { request_id: u.request_id }));
            }
            Control::LockRequest(l) => {
                let waiter = Waiter { agent: l.agent_id, request_id: l.request_id, home: 0 };
                let mut grants = Vec::new();
                let now = self.now_ns;
                let outcome = self
                    .state
                    .with_locks(|t| t.request(waiter, l.lock_id, l.lease_ms, now, &mut grants));
                self.deliver_grants(grants);
                let reply = match outcome {
                    LockOutcome::Granted { lease_ms } => Control::LockGranted(LockGranted {
                        request_id: l.request_id,
                        agent_id: l.agent_id,
                        lock_id: l.lock_id,
                        lease_ms,
                    }),
                    LockOutcome::Queued { position } => Control::LockQueued(LockQueued {
                        request_id: l.request_id,
                        agent_id: l.agent_id,
                        lock_id: l.lock_id,
                        position,
                    }),
                };
                self.queue_control(self.id, &reply);
            }
            Control::LockRelease(l) => {
                let mut grants = Vec::new();
                let now = self.now_ns;
                match self.state.with_locks(|t| t.release(l.agent_id, l.lock_id, now, &mut grants))
                {
                    Ok(()) => {
                        self.queue_control(self.id, &Control::Ack(Ack { request_id: l.request_id }))
                    }
                    Err(code) => {
                        self.request_error(l.request_id, l.agent_id, code, "lock release refused")
                    }
                }
                self.deliver_grants(grants);
            }
            Control::BarrierEnter(b) => {
                let waiter = Waiter { agent: b.agent_id, request_id: b.request_id, home: 0 };
                match self.state.with_barriers(|t| t.enter(waiter, b.barrier_id, b.expected)) {
                    Ok(BarrierOutcome::Waiting { arrived, expected }) => {
                        let reply = Control::BarrierWait(BarrierWait {
                            request_id: b.request_id,
                            agent_id: b.agent_id,
                            barrier_id: b.barrier_id,
                            arrived,
                            expected,
                        });
                        self.queue_control(self.id, &reply);
                    }
                    Ok(BarrierOutcome::Released(all)) => {
                        for (w, release) in coord::releases(b.barrier_id, all) {
                            self.control_to_agent(w.agent, &release);
                        }
                    }
                    Err(code) => self.request_error(
                        b.request_id,
                        b.agent_id,
                        code,
                        "barrier expected count must be at least 1",
                    ),
                }
            }
            Control::BarrierForce(b) => match self.state.with_barriers(|t| t.force(b.barrier_id)) {
                Some(all) => {
                    for (w, release) in coord::releases(b.barrier_id, all) {
                        self.control_to_agent(w.agent, &release);
                    }
                    self.queue_control(self.id, &Control::Ack(Ack { request_id: b.request_id }));
                }
                None => self.request_error(
                    b.request_id,
                    b.agent_id,
                    ErrorCode::BarrierNotFound,
                    "nobody waits at that barrier",
                ),
            },
            Control::StatsRequest(s) => {
                let stats = self.state.stats(0);
                let reply = Control::StatsReply(StatsReply {
                    request_id: s.request_id,
                    shards: vec![stats],
                });
                self.queue_control(self.id, &reply);
            }
            _ => {}
        }
    }

    /// Whether `agent` is registered on this connection; answers `unknown_agent` if not.
    fn mine(&mut self, agent: AgentId, request_id: u64) -> bool {
        if self.agents.contains(&agent) {
            return true;
        }
        self.request_error(
            request_id,
            agent,
            ErrorCode::UnknownAgent,
            "agent is not registered on this connection",
        );
        false
    }

    fn control_to_agent(&mut self, agent: AgentId, ctl: &Control) {
        if let Some(conn) = self.state.agents.get(&agent).map(|a| a.conn) {
            self.queue_control(conn, ctl);
        }
    }

    fn deliver_grants(&mut self, grants: Vec<Grant>) {
        for g in grants {
            self.control_to_agent(g.waiter.agent, &g.message());
        }
    }

    fn remove_agent(&mut self, agent: AgentId) {
        self.agents.retain(|&a| a != agent);
        if let Some((_, a)) = self.state.agents.remove(&agent) {
            for t in a.topics {
                if let Some(mut subs) = self.state.topics.get_mut(&t) {
                    subs.retain(|&x| x != agent);
                }
            }
        }
        let mut grants = Vec::new();
        let now = self.now_ns;
        self.state.with_locks(|t| t.remove_agent(agent, now, &mut grants));
        self.state.with_barriers(|t| t.remove_agent(agent));
        self.deliver_grants(grants);
    }

    /// The connection ended: drop its agents (handing their locks on) and flush what that
    /// produced for others.
    async fn close(&mut self) {
        self.now_ns = clock::now_ns();
        for agent in std::mem::take(&mut self.agents) {
            self.remove_agent(agent);
        }
        self.flush().await;
    }
}

/// The agent and request id of a request that acts for one agent.
fn agent_scope(ctl: &Control) -> Option<(AgentId, u64)> {
    match ctl {
        Control::Unregister(m) => Some((m.agent_id, m.request_id)),
        Control::Heartbeat(m) => Some((m.agent_id, m.request_id)),
        Control::Subscribe(m) => Some((m.agent_id, m.request_id)),
        Control::Unsubscribe(m) => Some((m.agent_id, m.request_id)),
        Control::LockRequest(m) => Some((m.agent_id, m.request_id)),
        Control::LockRelease(m) => Some((m.agent_id, m.request_id)),
        Control::BarrierEnter(m) => Some((m.agent_id, m.request_id)),
        Control::BarrierForce(m) => Some((m.agent_id, m.request_id)),
        _ => None,
    }
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
