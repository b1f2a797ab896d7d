//! The async shell around [`Shard`]s, generic over the runtime: the tasks of one shard.
//!
//! Per shard: a command loop (new connections, stats, stall, stop), a reader and a writer task
//! per connection, a sender and a receiver task per peer shard, and a ticker. The shard's state
//! sits in an `Rc<RefCell<_>>`: tasks run on one thread and borrow it only between awaits, so
//! there is no lock anywhere. Sockets are shared the same way, borrowed only inside a poll.
//!
//! Shards talk over bounded flume channels carrying whole batches; `server` starts them, accepts
//! connections and hands them over.
//!
//! A [`Runtime`] supplies what differs between runtimes: spawning, timers, adopting a
//! socket, and starting a pinned executor thread. Nothing else here knows which runtime runs it.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::io;
use std::net::TcpStream;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures_lite::future::yield_now;
use futures_lite::io::{AsyncRead, AsyncWrite};

use super::peer::{Lane, PeerMsg, Returns};
use super::{ConnId, Shard, Source};
use crate::clock;
use crate::placement::Slot;
use crate::transport::doorbell::Doorbell;
use crate::transport::kick::Beat;
use crate::transport::{
    is_http_upgrade, uring, write_all, ws, Guarded, Lend, Rewind, Shared, SocketHandle,
};
use crate::wire::ShardStats;

/// Messages in flight on one shard-to-shard channel; each is a batch or a control event.
pub const PEER_CHANNEL_CAPACITY: usize = 64;
/// How often a shard settles lock leases and liveness.
pub const TICK: Duration = Duration::from_millis(10);
/// First read buffer of a connection; it grows to 64 KiB once a read fills it.
const READ_BUF_SMALL: usize = 8 << 10;
const READ_BUF_LARGE: usize = 64 << 10;

thread_local! {
    /// A shard thread's buffer for reads on connections with no partial frame in.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_BUF_LARGE]);
}

/// A boxed future, built on its executor's thread.
pub type LocalFuture<T> = Pin<Box<dyn Future<Output = T>>>;
/// Builds a shard's main future once its thread is running (the future itself is not `Send`).
pub type ShardMain = Box<dyn FnOnce() -> LocalFuture<ShardStats> + Send>;
/// Waits for an executor thread and returns what its main future returned.
pub type Joiner = Box<dyn FnOnce() -> Option<ShardStats> + Send>;

/// What a runtime must provide to host shards.
pub trait Runtime: 'static {
    /// Its TCP stream type.
    type Stream: AsyncRead + AsyncWrite + crate::transport::Lend + Unpin + 'static;
    /// A short name for logs and reports.
    const NAME: &'static str;
    /// Whether a thread of this runtime may sleep through its own wake-up, so that the
    /// watchdog wakes a shard that stands still (`transport::kick`).
    const MAY_SLEEP_THROUGH: bool = false;
    /// Runs `fut` as a detached task on the current executor.
    fn spawn(fut: impl Future<Output = ()> + 'static);
    /// Completes after `d`.
    fn sleep(d: Duration) -> impl Future<Output = ()>;
    /// Turns an accepted socket (already non-blocking) into this runtime's stream.
    fn adopt(stream: TcpStream) -> io::Result<Self::Stream>;
    /// A shard that other shards feed (a router of several): they ring `bell` after each
    /// send, and `drain` applies what their channels hold (true when it applied anything). A
    /// runtime whose executor notices other threads' wakes on its own ignores both.
    fn watch_peers(bell: Arc<Doorbell>, drain: Box<dyn Fn() -> bool>) {
        let _ = (bell, drain);
    }
    /// Ends what the runtime keeps per shard thread, once every connection of the shard has
    /// closed (a socket ring's operations); nothing by default.
    fn finish() -> impl Future<Output = ()> {
        async {}
    }
    /// Starts a thread running one executor, pinned to `slot`, that runs `main` to completion.
    fn launch(
        name: String,
        slot: Slot,
        opts: ExecutorOptions,
        main: ShardMain,
    ) -> io::Result<Joiner>;
}

/// How shard executors run, beyond what every runtime shares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExecutorOptions {
    /// Latency mode: spin this long before parking an idle executor (costs CPU); a runtime
    /// whose executors cannot spin ignores it.
    pub spin_before_park: Option<Duration>,
    /// Latency mode for dedicated cores (`--poll`): sockets are polled on every pass instead of
    /// parking; a runtime without such a mode ignores it.
    pub poll: bool,
}

impl ExecutorOptions {
    /// How long to poll past the last traffic before sleeping: `--spin-us`, else 1 s for
    /// `--poll` ([`crate::transport::POLL_IDLE`]), else none.
    pub fn poll_for(&self) -> Option<Duration> {
        self.spin_before_park.or(self.poll.then_some(crate::transport::POLL_IDLE))
    }
}

/// Requests from outside a shard's thread.
#[derive(Debug)]
pub enum Command {
    /// A freshly accepted connection to serve.
    Conn(TcpStream),
    /// A freshly accepted connection to refuse (`resource_exhausted`): the connection limit.
    Refuse(TcpStream),
    /// Report counters.
    Stats(flume::Sender<ShardStats>),
    /// Block the shard's thread (fault injection: a stalled router).
    Stall(Duration),
    /// Finish.
    Stop,
}

/// The two channels (data lane, control lane) from one shard to another, and the flag that
/// tells the receiving shard control is waiting.
pub(super) struct PeerTx {
    pub data: flume::Sender<PeerMsg>,
    pub ctl: flume::Sender<PeerMsg>,
    /// The receiving shard's [`Links::ctl_waiting`].
    pub ctl_waiting: Arc<AtomicBool>,
    /// The receiving shard's [`Links::bell`].
    pub bell: Arc<Doorbell>,
    /// This shard's end of the return lane with that shard.
    pub returns: Returns,
}

/// The receiving ends of [`PeerTx`].
pub(super) struct PeerRx {
    pub data: flume::Receiver<PeerMsg>,
    pub ctl: flume::Receiver<PeerMsg>,
}

/// Control-lane receivers a busy shard drains between input passes. An executor busy with
/// socket input may notice wakes from other threads only now and then (the io_uring runtime:
/// when its 100 ms preemption timer fires, in which a shard routed ~40 MB before it heard "that
/// connection is full"), so readers look at one flag per pass, set by the peers after each
/// control send.
pub(super) struct Inbox {
    waiting: Arc<AtomicBool>,
    ctl: Vec<(u16, flume::Receiver<PeerMsg>)>,
}

impl Inbox {
    /// Applies what the control lanes hold, if a peer said something since the last look.
    fn hear(&self, shard: &RefCell<Shard>) {
        if !self.waiting.load(Ordering::Relaxed) || !self.waiting.swap(false, Ordering::Acquire) {
            return;
        }
        for (p, rx) in &self.ctl {
            while let Ok(msg) = rx.try_recv() {
                shard.borrow_mut().on_peer(*p, msg);
            }
        }
    }
}

/// A shard's channels.
pub struct Links {
    /// Requests from outside the shard's thread.
    pub(super) commands: flume::Receiver<Command>,
    /// Channels to every other shard (`None` at this shard's own index).
    pub(super) to_peers: Vec<Option<PeerTx>>,
    /// Channels from every other shard.
    pub(super) from_peers: Vec<Option<PeerRx>>,
    /// Set by a peer after it sends on a control lane to this shard.
    pub(super) ctl_waiting: Arc<AtomicBool>,
    /// Rung by a peer after each send to this shard (ends a doze: [`Runtime::watch_peers`]).
    pub(super) bell: Arc<Doorbell>,
    /// This shard's open connections: added by the acceptor, subtracted here.
    pub(super) live: Arc<AtomicUsize>,
    /// When the shard's ticker last ran, and the shard's thread: the watchdog reads it, and
    /// wakes a shard that stands still where its runtime may lose wake-ups (`transport::kick`).
    pub(super) beat: Arc<Beat>,
}

/// Shutdown handles of a shard's open sockets, by connection number.
type Sockets = Rc<RefCell<rustc_hash::FxHashMap<u64, Rc<SocketHandle>>>>;

/// Serves one shard until [`Command::Stop`]; returns its final counters.
pub async fn run_shard<R: Runtime>(
    shard: Shard,
    links: Links,
    ready: flume::Sender<()>,
) -> ShardStats {
    let shard = Rc::new(RefCell::new(shard));
    let sockets: Sockets = Rc::default();
    let mut next_socket = 0u64;
    let Links { commands, to_peers, from_peers, ctl_waiting, bell, live, beat } = links;
    beat.start();
    for (p, link) in to_peers.into_iter().enumerate() {
        let Some(PeerTx { data, ctl, ctl_waiting, bell, returns }) = link else { continue };
        let p = p as u16;
        shard.borrow_mut().set_returns(p, returns);
        R::spawn(peer_sender(shard.clone(), p, Lane::Data, data, None, bell.clone()));
        R::spawn(peer_sender(shard.clone(), p, Lane::Control, ctl, Some(ctl_waiting), bell));
    }
    let mut inbox = Inbox { waiting: ctl_waiting, ctl: Vec::new() };
    let mut lanes = Vec::new();
    for (p, link) in from_peers.into_iter().enumerate() {
        let Some(PeerRx { data, ctl }) = link else { continue };
        inbox.ctl.push((p as u16, ctl.clone()));
        lanes.push((p as u16, ctl.clone()));
        lanes.push((p as u16, data.clone()));
        R::spawn(peer_receiver(shard.clone(), p as u16, data));
        R::spawn(peer_receiver(shard.clone(), p as u16, ctl));
    }
    if !lanes.is_empty() {
        // Weak: the shard's stop waits until it holds the last reference to its state.
        let (shard, lanes) = (Rc::downgrade(&shard), lanes.clone());
        R::watch_peers(
            bell,
            Box::new(move || {
                shard.upgrade().is_some_and(|s| !s.borrow().is_stopped() && apply_lanes(&s, &lanes))
            }),
        );
    }
    let inbox = Rc::new(inbox);
    R::spawn(ticker::<R>(shard.clone(), beat.clone(), lanes));
    let _ = ready.send(());
    while let Ok(cmd) = commands.recv_async().await {
        match cmd {
            Command::Conn(stream) => {
                next_socket += 1;
                spawn_conn::<R>(&shard, stream, &live, &sockets, next_socket, &inbox);
            }
            Command::Refuse(stream) => {
                shard.borrow_mut().count_refused();
                R::spawn(refuse::<R>(shard.clone(), stream, live.clone(), TOO_MANY_CONNECTIONS));
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
        socket.shutdown();
    }
    // Every task holds the shard; wait (bounded) until they have all finished, so that the
    // sockets are closed rather than leaked with tasks parked in a waker cycle.
    let deadline = clock::now_ns() + 2_000_000_000;
    while Rc::strong_count(&shard) > 1 && clock::now_ns() < deadline {
        R::sleep(Duration::from_millis(1)).await;
    }
    R::finish().await;
    beat.end();
    stats
}

fn spawn_conn<R: Runtime>(
    shard: &Rc<RefCell<Shard>>,
    stream: TcpStream,
    live: &Arc<AtomicUsize>,
    sockets: &Sockets,
    number: u64,
    inbox: &Rc<Inbox>,
) {
    let _ = stream.set_nodelay(true);
    let Ok((stream, control)) = adopt::<R>(stream) else {
        live.fetch_sub(1, Ordering::Relaxed);
        return;
    };
    sockets.borrow_mut().insert(number, control.clone());
    let done = Finished { sockets: sockets.clone(), number };
    R::spawn(session::<R>(shard.clone(), stream, control, live.clone(), done, inbox.clone()));
}

/// The runtime's stream for an accepted socket, and the handle that shuts it down: one
/// descriptor per connection at most (none on a socket ring, once the socket is in its table).
fn adopt<R: Runtime>(stream: TcpStream) -> io::Result<(Guarded<R::Stream>, Rc<SocketHandle>)> {
    let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
    stream.set_nonblocking(true)?;
    Ok(Guarded::adopting(R::adopt(stream)?, fd))
}

/// Tells what a new connection speaks from its first bytes, completes a WebSocket handshake if
/// there is one, and serves it.
/// `fut`'s output, or `None` once `deadline_ns` has passed.
async fn before<R: Runtime, T>(deadline_ns: u64, fut: impl Future<Output = T>) -> Option<T> {
    let wait = Duration::from_nanos(deadline_ns.saturating_sub(clock::now_ns()));
    futures_lite::future::or(async { Some(fut.await) }, async {
        R::sleep(wait).await;
        None
    })
    .await
}

/// How long a closing connection may take to send what its writer wrote.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

pub(crate) const TOO_MANY_CONNECTIONS: &str =
    "the router's connection limit (--max-connections) is reached";

/// What a refused connection is told (`resource_exhausted`, `why`): HTTP 503 to a WebSocket
/// upgrade (`http`), an error frame to native frames.
pub(crate) fn refusal(http: bool, why: &str) -> Vec<u8> {
    if http {
        format!(
            "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: {}\r\n\r\nresource_exhausted: {why}\n",
            why.len() + 21
        )
        .into_bytes()
    } else {
        crate::wire::frame::error_frame(crate::wire::ErrorCode::ResourceExhausted, why)
    }
}
const OUT_OF_MEMORY: &str = "the shard's memory budget (--memory-max) is spent";

/// Refuses a connection with `resource_exhausted`: once its first bytes show its protocol, an
/// error frame (native) or HTTP 503 (WebSocket upgrade), then closes it.
async fn refuse<R: Runtime>(
    shard: Rc<RefCell<Shard>>,
    stream: TcpStream,
    live: Arc<AtomicUsize>,
    why: &'static str,
) {
    let deadline = clock::now_ns() + shard.borrow().config().handshake_timeout.as_nanos() as u64;
    drop(shard);
    let Ok((stream, control)) = adopt::<R>(stream) else { return gone(&live) };
    refuse_adopted::<R, _>(deadline, stream, control, live, why).await;
}

/// [`refuse`], on a stream already adopted.
async fn refuse_adopted<R: Runtime, S: AsyncRead + AsyncWrite + Unpin>(
    deadline: u64,
    mut stream: S,
    control: Rc<SocketHandle>,
    live: Arc<AtomicUsize>,
    why: &'static str,
) {
    let mut first = [0u8; 512];
    let read =
        before::<R, _>(deadline, poll_fn(|cx| Pin::new(&mut stream).poll_read(cx, &mut first)));
    if let Some(Ok(n)) = read.await {
        let reply = refusal(n > 0 && is_http_upgrade(first[0]), why);
        let _ = before::<R, _>(deadline, write_all(&RefCell::new(&mut stream), &reply)).await;
    }
    control.shutdown();
    gone(&live);
}

async fn session<R: Runtime>(
    shard: Rc<RefCell<Shard>>,
    mut stream: Guarded<R::Stream>,
    control: Rc<SocketHandle>,
    live: Arc<AtomicUsize>,
    done: Finished,
    inbox: Rc<Inbox>,
) {
    // The protocol must show itself (first bytes, WebSocket handshake, first message) in time.
    let timeout = shard.borrow().config().handshake_timeout;
    let deadline = clock::now_ns() + timeout.as_nanos() as u64;
    if shard.borrow().over_memory() {
        shard.borrow_mut().count_refused();
        drop(shard);
        let refused = refuse_adopted::<R, _>(deadline, stream, control, live, OUT_OF_MEMORY);
        return Box::pin(refused).await;
    }
    let mut first = vec![0u8; 512];
    let read =
        before::<R, _>(deadline, poll_fn(|cx| Pin::new(&mut stream).poll_read(cx, &mut first)));
    let n = match read.await {
        Some(Ok(n)) if n > 0 => n,
        _ => return gone(&live),
    };
    first.truncate(n);
    let upgrade = is_http_upgrade(first[0]);
    let stream = Rewind::new(first, stream);
    if !upgrade {
        return serve_native::<R, _>(shard, stream, control, live, done, inbox);
    }
    // Boxed: a WebSocket handshake's state is ≈ 4 KB, which every connection waiting for its
    // first bytes would otherwise hold (20,000 connecting at once: 80 MB).
    let ws = serve_upgrade::<R>(shard, stream, control, live, done, inbox, deadline);
    Box::pin(ws).await;
}

/// [`session`] for a connection whose first bytes are an HTTP upgrade: the WebSocket handshake
/// by `deadline_ns`, then native frames or JSON texts over it.
async fn serve_upgrade<R: Runtime>(
    shard: Rc<RefCell<Shard>>,
    stream: Rewind<Guarded<R::Stream>>,
    control: Rc<SocketHandle>,
    live: Arc<AtomicUsize>,
    done: Finished,
    inbox: Rc<Inbox>,
    deadline: u64,
) {
    // A handshake that fails consumes its stream: a second handle keeps the socket for the reply.
    let read_size = ws::read_size(&stream);
    let stream = Shared::new(stream);
    let accepted = before::<R, _>(deadline, ws::accept(stream.clone(), read_size)).await;
    let Some(Ok((mut ws, protocol))) = accepted else {
        ws::refuse_upgrade(&control);
        return gone(&live);
    };
    drop(stream);
    let first_message = match protocol {
        Some(_) => None,
        // No subprotocol: the first message decides (binary = native, text = JSON).
        None => match before::<R, _>(deadline, futures_lite::StreamExt::next(&mut ws)).await {
            Some(Some(Ok(ws::Message::Binary(b)))) => Some(b),
            Some(Some(Ok(ws::Message::Text(t)))) => {
                return super::json::serve::<R, _>(shard, ws, Some(t), control, live, done)
            }
            _ => return gone(&live),
        },
    };
    if protocol == Some(ws::SUBPROTOCOL_JSON) {
        return super::json::serve::<R, _>(shard, ws, None, control, live, done);
    }
    let stream = ws::WsBytes::new(ws, first_message);
    serve_native::<R, _>(shard, stream, control, live, done, inbox);
}

/// A connection that ended before it was served.
fn gone(live: &AtomicUsize) {
    live.fetch_sub(1, Ordering::Relaxed);
}

/// Serves native frames on `stream` (TCP, or binary WebSocket messages).
fn serve_native<R: Runtime, S: AsyncRead + AsyncWrite + Lend + Unpin + 'static>(
    shard: Rc<RefCell<Shard>>,
    stream: S,
    control: Rc<SocketHandle>,
    live: Arc<AtomicUsize>,
    done: Finished,
    inbox: Rc<Inbox>,
) {
    let stream = Rc::new(RefCell::new(stream));
    let id = shard.borrow_mut().open_conn();
    R::spawn(reader(shard.clone(), stream.clone(), id, live.clone(), inbox));
    R::spawn(writer::<R, _>(shard, stream, id, control, live, done));
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

/// A connection's reader task. A plain `fn` around an `async move` block: an `async fn` keeps
/// its arguments twice in its state (as arguments and as locals), and this state lives as long
/// as the connection (`docs/BENCHMARKS.md`, "Memory per virtual agent"). The block captures the
/// `Reader` built here, not its parts: captured parts stay in the state beside the `Reader`
/// made of them.
#[allow(clippy::manual_async_fn)] // an `async fn` is what keeps the arguments twice
fn reader<S: AsyncRead + Lend + Unpin>(
    shard: Rc<RefCell<Shard>>,
    stream: Rc<RefCell<S>>,
    id: ConnId,
    live: Arc<AtomicUsize>,
    inbox: Rc<Inbox>,
) -> impl Future<Output = ()> {
    // A connection holds a read buffer only while a frame is partly in: a read that finds it
    // empty goes into the thread's scratch buffer (the buffer is only used while the read is
    // polled, never held across a wait), whole frames are routed from there, and a partial
    // frame's bytes move to a buffer of its own. An idle connection holds none.
    //
    // On a socket ring the bytes are routed where the ring received them (`Lend`), and a
    // partial frame waits there for the rest, however big (`Reader::hold_frame`).
    let mut r = Reader { shard, stream, id, inbox, buf: Vec::new(), filled: 0, paused: false };
    async move {
        let failed = loop {
            poll_fn(|cx| r.shard.borrow_mut().poll_gate(Source::Conn(r.id), cx)).await;
            let lent = if r.filled == 0 { r.lend().await } else { None };
            let next = match lent {
                Some(next) => next,
                None => {
                    if r.filled == 0 && !r.paused {
                        r.read_scratch().await
                    } else {
                        r.read_own().await
                    }
                }
            };
            match next {
                Next::Go => yield_now().await,
                Next::End => break false,
                Next::Failed => break true,
            }
        };
        let held = r.stream.borrow().lender().map_or(0, uring::UringStream::bound);
        let Reader { shard, buf, id, .. } = r;
        let mut s = shard.borrow_mut();
        if !failed {
            s.close_conn(id);
        }
        s.release_read(buf.len().saturating_sub(READ_BUF_LARGE));
        s.release_read(held.saturating_sub(uring::RECV_MAX));
        if buf.capacity() > 0 {
            s.pool().put(buf);
        }
        release_conn(&mut s, id, &live);
    }
}

/// A connection's reader: where its bytes are routed from, and what it keeps between reads.
struct Reader<S> {
    shard: Rc<RefCell<Shard>>,
    stream: Rc<RefCell<S>>,
    id: ConnId,
    inbox: Rc<Inbox>,
    /// A partial frame's bytes, in a buffer of its own (no capacity while none waits).
    buf: Vec<u8>,
    /// How much of `buf` holds bytes.
    filled: usize,
    /// The shard paused this connection's input (a recipient's queue is past its bound).
    paused: bool,
}

/// What a reader does after one read.
enum Next {
    /// Reads on.
    Go,
    /// The connection ended (closed by the peer, or an error reading).
    End,
    /// The shard refused its input and closed it.
    Failed,
}

impl<S: AsyncRead + Lend + Unpin> Reader<S> {
    /// On a socket ring: routes the bytes where the ring received them. `None` on a stream
    /// that does not lend.
    async fn lend(&mut self) -> Option<Next> {
        // A `move` closure over one reference: the state keeps 8 bytes for it, where one
        // borrowing each field (or locals made of them) kept one reference per field.
        let this = &*self;
        let lent = poll_fn(move |cx| {
            let stream = this.stream.borrow();
            let Some(ring) = stream.lender() else { return std::task::Poll::Ready(None) };
            ring.poll_lend(cx, this.paused, |bytes| {
                this.inbox.hear(&this.shard);
                let input = this.shard.borrow_mut().on_input(this.id, bytes);
                let rest = &bytes[input.consumed.min(bytes.len())..];
                let frame = crate::wire::announced_len(rest).unwrap_or(0);
                (input.consumed, (input, rest.len(), frame))
            })
            .map(Some)
        })
        .await?;
        let (input, unread, frame) = match lent {
            Ok(Some(lent)) => lent,
            Ok(None) | Err(_) => return Some(Next::End),
        };
        self.paused = input.paused;
        if input.close {
            return Some(Next::Failed);
        }
        if !self.paused && !self.hold_frame(unread, frame) {
            return Some(Next::Failed);
        }
        Some(Next::Go)
    }

    /// On a socket ring, with `unread` bytes of a frame of `frame` bytes waiting there: a
    /// frame past `uring::LEND_MAX` waits there whole, its connection's bound on unread bytes
    /// raised as its bytes come, to twice them (never to the length announced, which 16 bytes
    /// can claim), each raise past `uring::RECV_MAX` reserved in the shard's memory budget;
    /// the bound goes back down once the frame is through. False: the budget is spent, and the
    /// connection refused (as a reader's growing buffer would be).
    fn hold_frame(&mut self, unread: usize, frame: usize) -> bool {
        let stream = self.stream.borrow();
        let Some(ring) = stream.lender() else { return true };
        let held = ring.bound();
        let want = ring.bound_wanted(unread, frame);
        if want > held {
            let more = want - held.max(uring::RECV_MAX);
            let mut s = self.shard.borrow_mut();
            if !s.reserve_read(more) {
                s.refuse_frame(self.id, OUT_OF_MEMORY);
                return false;
            }
        } else if want == 0 && held > 0 {
            self.shard.borrow_mut().release_read(held - uring::RECV_MAX);
        } else if want == 0 {
            return true;
        }
        // Asked even when unchanged: a connection that paused past the bound resumes here.
        ring.set_bound(want);
        true
    }

    /// With no partial frame waiting: reads into the thread's scratch buffer and routes the
    /// whole frames from there; a partial frame's bytes move to a buffer of their own.
    async fn read_scratch(&mut self) -> Next {
        let stream = &self.stream;
        let read = poll_fn(move |cx| {
            SCRATCH.with(|scratch| {
                let mut scratch = scratch.borrow_mut();
                Pin::new(&mut *stream.borrow_mut()).poll_read(cx, &mut scratch[..])
            })
        })
        .await;
        let n = match read {
            Ok(0) | Err(_) => return Next::End,
            Ok(n) => n,
        };
        self.inbox.hear(&self.shard);
        let input = SCRATCH.with(|scratch| {
            let scratch = scratch.borrow();
            let input = self.shard.borrow_mut().on_input(self.id, &scratch[..n]);
            let rest = &scratch[input.consumed..n];
            if !rest.is_empty() {
                let mut s = self.shard.borrow_mut();
                self.buf = s.pool().get(READ_BUF_SMALL.max(rest.len() * 2));
                self.buf.resize(self.buf.capacity(), 0);
                self.buf[..rest.len()].copy_from_slice(rest);
                self.filled = rest.len();
            }
            input
        });
        self.paused = input.paused;
        if input.close {
            return Next::Failed;
        }
        Next::Go
    }

    /// With a partial frame waiting in the connection's own buffer (or input paused): reads
    /// after it and routes what is whole; the buffer grows with what arrives and shrinks back
    /// once the frame is through.
    async fn read_own(&mut self) -> Next {
        let mut n = 0;
        if !self.paused {
            if self.filled == self.buf.len() {
                self.rebuffer((self.buf.len() * 2).max(READ_BUF_SMALL));
            }
            let (stream, buf, filled) = (&self.stream, &mut self.buf, self.filled);
            let read = poll_fn(move |cx| {
                Pin::new(&mut *stream.borrow_mut()).poll_read(cx, &mut buf[filled..])
            })
            .await;
            n = match read {
                Ok(0) | Err(_) => return Next::End,
                Ok(n) => n,
            };
        }
        let space = self.buf.len() - self.filled;
        self.filled += n;
        self.inbox.hear(&self.shard);
        let input = self.shard.borrow_mut().on_input(self.id, &self.buf[..self.filled]);
        self.buf.copy_within(input.consumed..self.filled, 0);
        self.filled -= input.consumed;
        self.paused = input.paused;
        if input.close {
            return Next::Failed;
        }
        // The buffer grows with the bytes that arrive (doubling when a read fills it, above),
        // never with the length a header announces: 16 bytes must not pin 10 MB. A buffer grown
        // past the large tier for one big frame goes back down once that frame is consumed.
        if n > 0 && n == space && self.buf.len() < READ_BUF_LARGE {
            self.rebuffer(READ_BUF_LARGE);
        } else if self.buf.len() > READ_BUF_LARGE && self.filled <= READ_BUF_LARGE / 2 {
            // Back to the large tier: the big buffer goes to the pool, which keeps a few for
            // the next big frame (shrunk in place and grown again, it was mapped anew and
            // faulted in by the kernel for every frame: 110 k page faults a second with
            // 200 KiB messages).
            self.shard.borrow_mut().release_read(self.buf.len() - READ_BUF_LARGE);
            self.rebuffer(READ_BUF_LARGE);
        } else if self.filled == self.buf.len() && !self.paused {
            // A frame over the large tier is arriving: its growth counts against the budget.
            let mut s = self.shard.borrow_mut();
            if !s.reserve_read(self.buf.len()) {
                s.refuse_frame(self.id, OUT_OF_MEMORY);
                return Next::Failed;
            }
        }
        if self.filled == 0 && self.buf.capacity() > 0 && self.buf.len() <= READ_BUF_LARGE {
            // The partial frame is through: back to reading into the scratch buffer.
            let done = std::mem::take(&mut self.buf);
            self.shard.borrow_mut().pool().put(done);
        }
        Next::Go
    }

    /// Gives the partial frame a buffer of `len` bytes from the shard's pool (the filled part
    /// copied over), and the one it had back to the pool: `Vec::resize` on a buffer past
    /// glibc's mmap threshold moved it to new pages with `mremap` every time.
    fn rebuffer(&mut self, len: usize) {
        let mut s = self.shard.borrow_mut();
        let mut next = s.pool().get(len);
        next.extend_from_slice(&self.buf[..self.filled]);
        next.resize(len, 0);
        let before = std::mem::replace(&mut self.buf, next);
        if before.capacity() > 0 {
            s.pool().put(before);
        }
    }
}

/// A connection's writer task (a plain `fn`, as [`reader`]).
#[allow(clippy::manual_async_fn)] // an `async fn` is what keeps the arguments twice
fn writer<R: Runtime, S: AsyncWrite + Lend + Unpin>(
    shard: Rc<RefCell<Shard>>,
    stream: Rc<RefCell<S>>,
    id: ConnId,
    control: Rc<SocketHandle>,
    live: Arc<AtomicUsize>,
    done: Finished,
) -> impl Future<Output = ()> {
    async move {
        // Passes of a socket ring this writer has waited to gather more (`Spread`).
        let mut waited = 0u32;
        while let Some(mut frame) = poll_fn(|cx| {
            let queued = shard.borrow().output_to_gather(id);
            if queued > 0 {
                if let Some(ring) = stream.borrow().lender() {
                    if ring.poll_gather(cx, queued, &mut waited).is_pending() {
                        return Poll::Pending;
                    }
                }
            }
            shard.borrow_mut().poll_output(id, cx)
        })
        .await
        {
            waited = 0;
            let len = frame.len();
            // One hand-written poll for the whole write: a socket ring takes the frame itself
            // (no copy) once what it holds is on its way, and what it leaves in its place goes
            // back to the pool below; any other stream is written (and a WebSocket flushed).
            // A client that stops reading leaves the write pending; it is abandoned when the
            // shard cuts the connection off (slow consumer, or an error that could not be
            // flushed). Written as nested futures (`or` of the write and the cut-off, the
            // write's `write_all`) this took 88 bytes more of the writer's state, which lives
            // as long as the connection.
            let mut step = Step::Lend;
            let written = poll_fn(|cx| {
                loop {
                    match step {
                        Step::Lend => match stream.borrow().lender() {
                            Some(ring) => match ring.poll_send_owned(cx, &mut frame) {
                                Poll::Ready(true) => return Poll::Ready(Ok(true)),
                                Poll::Ready(false) => step = Step::Write(0),
                                Poll::Pending => break,
                            },
                            None => step = Step::Write(0),
                        },
                        Step::Write(at) if at == frame.len() => step = Step::Flush,
                        Step::Write(at) => {
                            let mut s = stream.borrow_mut();
                            match Pin::new(&mut *s).poll_write(cx, &frame[at..]) {
                                Poll::Ready(Ok(0)) => {
                                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()))
                                }
                                Poll::Ready(Ok(n)) => step = Step::Write(at + n),
                                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                                Poll::Pending => break,
                            }
                        }
                        // A WebSocket write is queued until flushed; a TCP flush does nothing.
                        Step::Flush => match Pin::new(&mut *stream.borrow_mut()).poll_flush(cx) {
                            Poll::Ready(r) => return Poll::Ready(r.map(|()| false)),
                            Poll::Pending => break,
                        },
                    }
                }
                match shard.borrow_mut().poll_closed(id, cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::other("cut off"))),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await;
            let mut s = shard.borrow_mut();
            match written {
                Ok(true) => s.output_taken(len, frame),
                _ => s.output_done(frame),
            }
            if written.is_err() {
                s.close_conn(id);
                break;
            }
        }
        // A WebSocket close frame, or the end of the TCP write side; on a socket ring, what was
        // written still goes out first. Bounded: a client that stopped reading never lets it end.
        // Boxed: once per connection, and the timer would otherwise take room in the writer's
        // state for all its life.
        let close = poll_fn(|cx| Pin::new(&mut *stream.borrow_mut()).poll_close(cx));
        let _ =
            Box::pin(before::<R, _>(clock::now_ns() + CLOSE_GRACE.as_nanos() as u64, close)).await;
        // Wakes the reader if it is parked in a read.
        control.shutdown();
        release_conn(&mut shard.borrow_mut(), id, &live);
        drop(done);
    }
}

/// Where a writer's write of one frame stands.
#[derive(Clone, Copy)]
enum Step {
    /// Offering the frame to a socket ring.
    Lend,
    /// Written up to here.
    Write(usize),
    /// Written; flushing.
    Flush,
}

/// One of a connection's tasks is done; the last one frees the slot and the load count.
pub(super) fn release_conn(shard: &mut Shard, id: ConnId, live: &AtomicUsize) {
    let before = shard.connections();
    shard.release_conn(id);
    if shard.connections() < before {
        live.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn peer_sender(
    shard: Rc<RefCell<Shard>>,
    to: u16,
    lane: Lane,
    tx: flume::Sender<PeerMsg>,
    flag: Option<Arc<AtomicBool>>,
    bell: Arc<Doorbell>,
) {
    while let Some(msg) = poll_fn(|cx| shard.borrow_mut().poll_peer_output(to, lane, cx)).await {
        if tx.send_async(msg).await.is_err() {
            return;
        }
        if let Some(f) = &flag {
            f.store(true, Ordering::Release);
        }
        bell.ring();
    }
}

/// Delivers what one lane of a peer sends. Never paused: a full local connection is announced
/// to the senders' shards instead (`PeerMsg::Congested`), so other traffic on the lane flows.
async fn peer_receiver(shard: Rc<RefCell<Shard>>, from: u16, rx: flume::Receiver<PeerMsg>) {
    // Ends when the peer's sender is dropped (the peer shut down).
    while let Ok(msg) = rx.recv_async().await {
        if shard.borrow().is_stopped() {
            return;
        }
        shard.borrow_mut().on_peer(from, msg);
        // Take what else already arrived, a bounded number, before letting writers run; stop
        // early once a connection filled up, so that the peers hear it first.
        for _ in 0..16 {
            if shard.borrow_mut().take_peers_told() {
                break;
            }
            match rx.try_recv() {
                Ok(msg) => shard.borrow_mut().on_peer(from, msg),
                Err(_) => break,
            }
        }
        yield_now().await;
    }
}

/// Most messages of one peer lane the ticker applies per tick.
const TICK_LANE_MAX: usize = 256;

/// Expires what is due every [`TICK`], shows the watchdog the loop turns, and applies what the
/// peers' lanes hold: a wake from another thread can be lost on the io_uring runtime (an idle
/// shard then slept on a barrier's last arrival while the message sat in its lane — seen about
/// once in 450 runs under CPU contention), so no peer message waits longer than a tick.
async fn ticker<R: Runtime>(
    shard: Rc<RefCell<Shard>>,
    beat: Arc<Beat>,
    lanes: Vec<(u16, flume::Receiver<PeerMsg>)>,
) {
    while !shard.borrow().is_stopped() {
        R::sleep(TICK).await;
        let now = clock::now_ns();
        beat.beat();
        shard.borrow_mut().tick(now);
        apply_lanes(&shard, &lanes);
    }
}

/// Applies what the peers' lanes hold, up to [`TICK_LANE_MAX`] messages per lane, and none
/// after a message that filled a connection (its notice to the peers goes first: the rest
/// waits for the lanes' own tasks or the next tick); whether there was anything.
fn apply_lanes(shard: &RefCell<Shard>, lanes: &[(u16, flume::Receiver<PeerMsg>)]) -> bool {
    let mut any = false;
    for (p, rx) in lanes {
        for _ in 0..TICK_LANE_MAX {
            match rx.try_recv() {
                Ok(msg) => {
                    any = true;
                    let mut s = shard.borrow_mut();
                    s.on_peer(*p, msg);
                    if s.take_peers_told() {
                        return true;
                    }
                }
                Err(_) => break,
            }
        }
    }
    any
}

/// The bytes of state a native connection's reader and writer tasks keep on runtime `R` for
/// the connection's whole life, and of the stream they share (`docs/BENCHMARKS.md`, "Memory
/// per virtual agent").
#[cfg(test)]
pub(crate) fn task_states<R: Runtime>() -> (usize, usize, usize) {
    /// The size of what `f` returns: a task's state, for an `fn` that returns its future.
    fn state5<A, B, C, D, E, T>(_: fn(A, B, C, D, E) -> T) -> usize {
        std::mem::size_of::<T>()
    }
    fn state6<A, B, C, D, E, F, T>(_: fn(A, B, C, D, E, F) -> T) -> usize {
        std::mem::size_of::<T>()
    }
    type Native<R> = Rewind<Guarded<<R as Runtime>::Stream>>;
    let shared = std::mem::size_of::<RefCell<Native<R>>>();
    (state5(reader::<Native<R>>), state6(writer::<R, Native<R>>), shared)
}
