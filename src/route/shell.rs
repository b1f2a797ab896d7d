//! The async shell around [`Shard`]s, generic over the runtime, and the server lifecycle.
//!
//! Per shard: a command loop (new connections, stats, stall, stop), a reader and a writer task
//! per connection, a sender and a receiver task per peer shard, and a ticker. The shard's state
//! sits in an `Rc<RefCell<_>>`: tasks run on one thread and borrow it only between awaits, so
//! there is no lock anywhere. Sockets are shared the same way, borrowed only inside a poll.
//!
//! Connections are accepted by one thread and handed to the shard with the fewest connections
//! (SO_REUSEPORT lets the kernel put few connections all on one shard; see ARCHITECTURE.md).
//! Shards talk over bounded flume channels carrying whole batches.
//!
//! A [`Runtime`] supplies what differs between runtimes: spawning, timers, adopting a
//! socket, and starting a pinned executor thread. Nothing else here knows which runtime runs it.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use futures_lite::future::yield_now;
use futures_lite::io::{AsyncRead, AsyncWrite};

use super::peer::PeerMsg;
use super::{ConnId, Shard, ShardConfig, Source};
use crate::clock;
use crate::placement::Slot;
use crate::transport::{is_http_upgrade, write_all, ws, Rewind};
use crate::wire::ShardStats;

/// Messages in flight on one shard-to-shard channel; each is a batch or a control event.
pub const PEER_CHANNEL_CAPACITY: usize = 64;
/// How often a shard settles lock leases and liveness.
pub const TICK: Duration = Duration::from_millis(10);
/// First read buffer of a connection; it grows to 64 KiB once a read fills it.
const READ_BUF_SMALL: usize = 8 << 10;
const READ_BUF_LARGE: usize = 64 << 10;

/// A boxed future, built on its executor's thread.
pub type LocalFuture<T> = Pin<Box<dyn Future<Output = T>>>;
/// Builds a shard's main future once its thread is running (the future itself is not `Send`).
pub type ShardMain = Box<dyn FnOnce() -> LocalFuture<ShardStats> + Send>;
/// Waits for an executor thread and returns what its main future returned.
pub type Joiner = Box<dyn FnOnce() -> Option<ShardStats> + Send>;

/// What a runtime must provide to host shards.
pub trait Runtime: 'static {
    /// Its TCP stream type.
    type Stream: AsyncRead + AsyncWrite + Unpin + 'static;
    /// A short name for logs and reports.
    const NAME: &'static str;
    /// Runs `fut` as a detached task on the current executor.
    fn spawn(fut: impl Future<Output = ()> + 'static);
    /// Completes after `d`.
    fn sleep(d: Duration) -> impl Future<Output = ()>;
    /// Turns an accepted socket (already non-blocking) into this runtime's stream.
    fn adopt(stream: TcpStream) -> io::Result<Self::Stream>;
    /// Starts a thread running one executor, pinned to `slot`, that runs `main` to completion.
    fn launch(name: String, slot: Slot, main: ShardMain) -> io::Result<Joiner>;
}

/// Requests from outside a shard's thread.
#[derive(Debug)]
pub enum Command {
    /// A freshly accepted connection to serve.
    Conn(TcpStream),
    /// Report counters.
    Stats(flume::Sender<ShardStats>),
    /// Block the shard's thread (fault injection: a stalled router).
    Stall(Duration),
    /// Finish.
    Stop,
}

/// A shard's channels.
pub struct Links {
    commands: flume::Receiver<Command>,
    to_peers: Vec<Option<flume::Sender<PeerMsg>>>,
    from_peers: Vec<Option<flume::Receiver<PeerMsg>>>,
    /// This shard's open connections: added by the acceptor, subtracted here.
    live: Arc<AtomicUsize>,
}

/// Shutdown handles (a second descriptor) of a shard's open sockets, by connection number.
type Sockets = Rc<RefCell<rustc_hash::FxHashMap<u64, TcpStream>>>;

/// Serves one shard until [`Command::Stop`]; returns its final counters.
pub async fn run_shard<R: Runtime>(
    shard: Shard,
    links: Links,
    ready: flume::Sender<()>,
) -> ShardStats {
    let shard = Rc::new(RefCell::new(shard));
    let sockets: Sockets = Rc::default();
    let mut next_socket = 0u64;
    let Links { commands, to_peers, from_peers, live } = links;
    for (p, tx) in to_peers.into_iter().enumerate() {
        if let Some(tx) = tx {
            R::spawn(peer_sender(shard.clone(), p as u16, tx));
        }
    }
    for (p, rx) in from_peers.into_iter().enumerate() {
        if let Some(rx) = rx {
            R::spawn(peer_receiver(shard.clone(), p as u16, rx));
        }
    }
    R::spawn(ticker::<R>(shard.clone()));
    let _ = ready.send(());
    while let Ok(cmd) = commands.recv_async().await {
        match cmd {
            Command::Conn(stream) => {
                next_socket += 1;
                spawn_conn::<R>(&shard, stream, &live, &sockets, next_socket);
            }
            Command::Stats(reply) => {
                let _ = reply.send(shard.borrow().stats());
            }
            Command::Stall(d) => std::thread::sleep(d),
            Command::Stop => break,
        }
    }
    let stats = shard.borrow().stats();
    // Wake every parked task, and fail every blocked read or write (a client that stopped
    // reading would otherwise keep its writer blocked forever).
    shard.borrow_mut().shutdown();
    for socket in sockets.borrow().values() {
        let _ = socket.shutdown(Shutdown::Both);
    }
    // Every task holds the shard; wait (bounded) until they have all finished, so that the
    // sockets are closed rather than leaked with tasks parked in a waker cycle.
    let deadline = clock::now_ns() + 2_000_000_000;
    while Rc::strong_count(&shard) > 1 && clock::now_ns() < deadline {
        R::sleep(Duration::from_millis(1)).await;
    }
    stats
}

fn spawn_conn<R: Runtime>(
    shard: &Rc<RefCell<Shard>>,
    stream: TcpStream,
    live: &Arc<AtomicUsize>,
    sockets: &Sockets,
    number: u64,
) {
    let _ = stream.set_nodelay(true);
    let adopted = match (stream.set_nonblocking(true), stream.try_clone()) {
        (Ok(()), Ok(control)) => R::adopt(stream).map(|s| (s, control)),
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    let Ok((stream, control)) = adopted else {
        live.fetch_sub(1, Ordering::Relaxed);
        return;
    };
    if let Ok(handle) = control.try_clone() {
        sockets.borrow_mut().insert(number, handle);
    }
    let done = Finished { sockets: sockets.clone(), number };
    R::spawn(session::<R>(shard.clone(), stream, control, live.clone(), done));
}

/// Tells what a new connection speaks from its first bytes, completes a WebSocket handshake if
/// there is one, and serves it.
async fn session<R: Runtime>(
    shard: Rc<RefCell<Shard>>,
    mut stream: R::Stream,
    control: TcpStream,
    live: Arc<AtomicUsize>,
    done: Finished,
) {
    let mut first = vec![0u8; 512];
    let read = poll_fn(|cx| Pin::new(&mut stream).poll_read(cx, &mut first)).await;
    let n = match read {
        Ok(n) if n > 0 => n,
        _ => return gone(&live),
    };
    first.truncate(n);
    let upgrade = is_http_upgrade(first[0]);
    let stream = Rewind::new(first, stream);
    if !upgrade {
        return serve_native::<R, _>(shard, stream, control, live, done);
    }
    let Ok((mut ws, protocol)) = ws::accept(stream).await else {
        ws::refuse_upgrade(&control);
        return gone(&live);
    };
    let first_message = match protocol {
        Some(_) => None,
        // No subprotocol: the first message decides (binary = native, text = JSON).
        None => match futures_lite::StreamExt::next(&mut ws).await {
            Some(Ok(ws::Message::Binary(b))) => Some(b),
            Some(Ok(ws::Message::Text(t))) => {
                return super::json::serve::<R, _>(
                    shard,
                    ws,
                    Some(t.to_string()),
                    control,
                    live,
                    done,
                )
            }
            _ => return gone(&live),
        },
    };
    if protocol == Some(ws::SUBPROTOCOL_JSON) {
        return super::json::serve::<R, _>(shard, ws, None, control, live, done);
    }
    serve_native::<R, _>(shard, ws::WsBytes::new(ws, first_message), control, live, done);
}

/// A connection that ended before it was served.
fn gone(live: &AtomicUsize) {
    live.fetch_sub(1, Ordering::Relaxed);
}

/// Serves native frames on `stream` (TCP, or binary WebSocket messages).
fn serve_native<R: Runtime, S: AsyncRead + AsyncWrite + Unpin + 'static>(
    shard: Rc<RefCell<Shard>>,
    stream: S,
    control: TcpStream,
    live: Arc<AtomicUsize>,
    done: Finished,
) {
    let stream = Rc::new(RefCell::new(stream));
    let id = shard.borrow_mut().open_conn();
    R::spawn(reader(shard.clone(), stream.clone(), id, live.clone()));
    R::spawn(writer(shard, stream, id, control, live, done));
}

/// Drops a connection's shutdown handle when its writer finishes.
pub(super) struct Finished {
    sockets: Sockets,
    number: u64,
}

impl Drop for Finished {
    fn drop(&mut self) {
        self.sockets.borrow_mut().remove(&self.number);
    }
}

async fn reader<S: AsyncRead + Unpin>(
    shard: Rc<RefCell<Shard>>,
    stream: Rc<RefCell<S>>,
    id: ConnId,
    live: Arc<AtomicUsize>,
) {
    let mut buf = shard.borrow_mut().pool().get(READ_BUF_SMALL);
    buf.resize(buf.capacity(), 0);
    let mut filled = 0;
    let mut failed = false;
    let mut paused = false;
    loop {
        poll_fn(|cx| shard.borrow_mut().poll_gate(Source::Conn(id), cx)).await;
        let mut n = 0;
        if !paused {
            if filled == buf.len() {
                buf.resize(buf.len() * 2, 0);
            }
            let read =
                poll_fn(|cx| Pin::new(&mut *stream.borrow_mut()).poll_read(cx, &mut buf[filled..]))
                    .await;
            n = match read {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
        }
        let space = buf.len() - filled;
        filled += n;
        let input = shard.borrow_mut().on_input(id, &buf[..filled]);
        buf.copy_within(input.consumed..filled, 0);
        filled -= input.consumed;
        paused = input.paused;
        if input.close {
            failed = true;
            break;
        }
        if input.frame_len > buf.len() {
            buf.resize(input.frame_len, 0);
        } else if n == space && buf.len() < READ_BUF_LARGE {
            buf.resize(READ_BUF_LARGE, 0);
        }
        yield_now().await;
    }
    let mut s = shard.borrow_mut();
    if !failed {
        s.close_conn(id);
    }
    s.pool().put(buf);
    release_conn(&mut s, id, &live);
}

async fn writer<S: AsyncWrite + Unpin>(
    shard: Rc<RefCell<Shard>>,
    stream: Rc<RefCell<S>>,
    id: ConnId,
    control: TcpStream,
    live: Arc<AtomicUsize>,
    _done: Finished,
) {
    while let Some(frame) = poll_fn(|cx| shard.borrow_mut().poll_output(id, cx)).await {
        let written = match write_all(&stream, &frame).await {
            // A WebSocket write is queued until flushed; a TCP flush does nothing.
            Ok(()) => poll_fn(|cx| Pin::new(&mut *stream.borrow_mut()).poll_flush(cx)).await,
            Err(e) => Err(e),
        };
        let mut s = shard.borrow_mut();
        s.output_done(frame);
        if written.is_err() {
            s.close_conn(id);
            break;
        }
    }
    // A WebSocket close frame, or the end of the TCP write side.
    let _ = poll_fn(|cx| Pin::new(&mut *stream.borrow_mut()).poll_close(cx)).await;
    // Wakes the reader if it is parked in a read.
    let _ = control.shutdown(Shutdown::Both);
    release_conn(&mut shard.borrow_mut(), id, &live);
}

/// One of a connection's tasks is done; the last one frees the slot and the load count.
pub(super) fn release_conn(shard: &mut Shard, id: ConnId, live: &AtomicUsize) {
    let before = shard.connections();
    shard.release_conn(id);
    if shard.connections() < before {
        live.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn peer_sender(shard: Rc<RefCell<Shard>>, to: u16, tx: flume::Sender<PeerMsg>) {
    while let Some(msg) = poll_fn(|cx| shard.borrow_mut().poll_peer_output(to, cx)).await {
        if tx.send_async(msg).await.is_err() {
            return;
        }
    }
}

async fn peer_receiver(shard: Rc<RefCell<Shard>>, from: u16, rx: flume::Receiver<PeerMsg>) {
    // Ends when the peer's sender is dropped (the peer shut down).
    while let Ok(msg) = rx.recv_async().await {
        if shard.borrow().is_stopped() {
            return;
        }
        shard.borrow_mut().on_peer(from, msg);
        // Take what else already arrived, a bounded number, before letting writers run; stop at
        // once if a destination went past its bound.
        for _ in 0..16 {
            if shard.borrow().peer_paused(from) {
                break;
            }
            match rx.try_recv() {
                Ok(msg) => shard.borrow_mut().on_peer(from, msg),
                Err(_) => break,
            }
        }
        yield_now().await;
        poll_fn(|cx| shard.borrow_mut().poll_gate(Source::Peer(from), cx)).await;
    }
}

async fn ticker<R: Runtime>(shard: Rc<RefCell<Shard>>) {
    while !shard.borrow().is_stopped() {
        R::sleep(TICK).await;
        shard.borrow_mut().tick(clock::now_ns());
    }
}

/// Stalls a server's shards from any thread (fault injection).
#[derive(Clone)]
pub struct Staller(Vec<flume::Sender<Command>>);

impl Staller {
    /// Blocks every shard's thread for `d`.
    pub fn stall(&self, d: Duration) {
        for s in &self.0 {
            let _ = s.send(Command::Stall(d));
        }
    }
}

/// A running set of shards behind one listening address.
pub struct Server {
    addr: SocketAddr,
    shards: Vec<ShardHandle>,
    acceptor: Option<JoinHandle<()>>,
    stopping: Arc<AtomicBool>,
    runtime: &'static str,
}

struct ShardHandle {
    commands: flume::Sender<Command>,
    join: Option<Joiner>,
}

impl Server {
    /// Binds `listen`, starts one shard per slot (pinned), waits until every shard is ready,
    /// then starts accepting. `configure(i)` gives shard `i`'s configuration.
    pub fn start<R: Runtime>(
        listen: SocketAddr,
        slots: &[Slot],
        configure: impl Fn(u16) -> ShardConfig,
    ) -> io::Result<Server> {
        if slots.is_empty() || slots.len() > 64 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "1 to 64 router cores"));
        }
        let listener = TcpListener::bind(listen)?;
        let addr = listener.local_addr()?;
        let n = slots.len();
        let mut to: Vec<Vec<Option<flume::Sender<PeerMsg>>>> =
            (0..n).map(|_| vec![None; n]).collect();
        let mut from: Vec<Vec<Option<flume::Receiver<PeerMsg>>>> =
            (0..n).map(|_| (0..n).map(|_| None).collect()).collect();
        for a in 0..n {
            for b in (0..n).filter(|&b| b != a) {
                let (tx, rx) = flume::bounded(PEER_CHANNEL_CAPACITY);
                to[a][b] = Some(tx);
                from[b][a] = Some(rx);
            }
        }
        let (ready_tx, ready_rx) = flume::unbounded();
        let mut shards = Vec::with_capacity(n);
        let mut loads = Vec::with_capacity(n);
        for (i, (to_peers, from_peers)) in to.into_iter().zip(from).enumerate() {
            let (cmd_tx, cmd_rx) = flume::unbounded();
            let live = Arc::new(AtomicUsize::new(0));
            loads.push(live.clone());
            let links = Links { commands: cmd_rx, to_peers, from_peers, live };
            let mut cfg = configure(i as u16);
            cfg.core = slots[i].core as u32;
            cfg.numa_node = slots[i].node;
            let ready = ready_tx.clone();
            let main: ShardMain =
                Box::new(move || Box::pin(run_shard::<R>(Shard::new(cfg), links, ready)));
            let join = R::launch(format!("{}-shard-{i}", R::NAME), slots[i], main)?;
            shards.push(ShardHandle { commands: cmd_tx, join: Some(join) });
        }
        drop(ready_tx);
        for _ in 0..n {
            if ready_rx.recv().is_err() {
                return Err(io::Error::other("a router shard failed to start"));
            }
        }
        let stopping = Arc::new(AtomicBool::new(false));
        let senders: Vec<_> = shards.iter().map(|s| s.commands.clone()).collect();
        let stop = stopping.clone();
        let acceptor = std::thread::Builder::new()
            .name(format!("{}-accept", R::NAME))
            .spawn(move || accept_loop(listener, senders, loads, stop))?;
        Ok(Server { addr, shards, acceptor: Some(acceptor), stopping, runtime: R::NAME })
    }

    /// The address it listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Which runtime serves it.
    pub fn runtime(&self) -> &'static str {
        self.runtime
    }

    /// Counters of every shard, by shard index.
    pub fn stats(&self) -> Vec<ShardStats> {
        let replies: Vec<_> = self
            .shards
            .iter()
            .map(|s| {
                let (tx, rx) = flume::bounded(1);
                let _ = s.commands.send(Command::Stats(tx));
                rx
            })
            .collect();
        replies.into_iter().filter_map(|rx| rx.recv_timeout(Duration::from_secs(5)).ok()).collect()
    }

    /// Blocks every shard's thread for `d` (fault injection for tests and demonstrations).
    pub fn stall(&self, d: Duration) {
        self.staller().stall(d)
    }

    /// A handle that can stall the shards from another thread.
    pub fn staller(&self) -> Staller {
        Staller(self.shards.iter().map(|s| s.commands.clone()).collect())
    }

    /// Stops accepting, stops every shard, and returns their final counters.
    pub fn stop(mut self) -> Vec<ShardStats> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Vec<ShardStats> {
        self.stopping.store(true, Ordering::SeqCst);
        // Unblock the acceptor's accept() with a connection of our own.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        for s in &self.shards {
            let _ = s.commands.send(Command::Stop);
        }
        self.shards.iter_mut().filter_map(|s| s.join.take()).filter_map(|join| join()).collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.acceptor.is_some() {
            self.shutdown();
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    shards: Vec<flume::Sender<Command>>,
    loads: Vec<Arc<AtomicUsize>>,
    stopping: Arc<AtomicBool>,
) {
    let mut next = 0usize;
    for stream in listener.incoming() {
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        // Least connections first; ties go round-robin so equal shards alternate.
        let n = shards.len();
        let pick = (0..n)
            .map(|k| (next + k) % n)
            .min_by_key(|&i| loads[i].load(Ordering::Relaxed))
            .unwrap_or(0);
        next = (pick + 1) % n;
        // Counted here, so a burst of accepts spreads before any shard has adopted them; the
        // shard subtracts when the connection ends.
        loads[pick].fetch_add(1, Ordering::Relaxed);
        if shards[pick].send(Command::Conn(stream)).is_err() {
            loads[pick].fetch_sub(1, Ordering::Relaxed);
        }
    }
}
