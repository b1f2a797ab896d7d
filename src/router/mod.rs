//! The router under test: thread-per-core on glommio (io_uring).
//!
//! One glommio executor per listed core, pinned, each running one [`Shard`] through the generic
//! shell ([`crate::route::shell`]). This module only binds that shell to glommio: spawning,
//! timers, sockets, executor threads. Shards share nothing; they talk over bounded channels.
//!
//! `Router::start` returns once every shard is serving: that return is the readiness signal.
//!
//! [`Shard`]: crate::route::Shard

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use std::rc::Rc;

use glommio::{LocalExecutorBuilder, Placement};

use crate::placement::{self, Slot};
use crate::route::server::{Server, Staller};
use crate::route::shell::{ExecutorOptions, Joiner, Runtime, ShardMain};
use crate::route::ShardConfig;
use crate::transport::doorbell::Doorbell;
use crate::transport::uring::{Ring, UringStream};
use crate::transport::Io;
use crate::wire::ShardStats;

/// glommio's per-executor registered I/O memory: we do no file DMA, so the minimum (64 KiB)
/// keeps many executors under a small RLIMIT_MEMLOCK.
const IO_MEMORY: usize = 64 << 10;

/// A shard's doorbell and what drains its peers' lanes (`Runtime::watch_peers`).
type Peers = (std::sync::Arc<Doorbell>, Box<dyn Fn() -> bool>);

/// Binds the shell to glommio.
pub struct Glommio;

impl Runtime for Glommio {
    type Stream = glommio::net::TcpStream;
    const NAME: &'static str = "glommio";
    const MAY_SLEEP_THROUGH: bool = true;

    fn spawn(fut: impl Future<Output = ()> + 'static) {
        glommio::spawn_local(fut).detach();
    }

    fn sleep(d: Duration) -> impl Future<Output = ()> {
        glommio::timer::sleep(d)
    }

    fn adopt(stream: TcpStream) -> io::Result<Self::Stream> {
        Ok(glommio::net::TcpStream::from(socket2::Socket::from(stream)))
    }

    fn launch(
        name: String,
        slot: Slot,
        opts: ExecutorOptions,
        main: ShardMain,
    ) -> io::Result<Joiner> {
        // `--poll` on glommio's streams: glommio's own spin is all there is. Its shard ticker
        // wakes it every tick, which starts a new spin: the core never sleeps while the
        // router runs.
        launch(name, slot, opts.poll_for(), None, main)
    }
}

/// A glommio executor for a shard: `spin` before parking (glommio spins only on an executor
/// it placed itself: Unbound drops the setting), `ring_poll` for the shard's socket ring.
fn launch(
    name: String,
    slot: Slot,
    spin: Option<Duration>,
    ring_poll: Option<Duration>,
    main: ShardMain,
) -> io::Result<Joiner> {
    let placement = match spin {
        Some(_) => Placement::Fixed(slot.core),
        None => Placement::Unbound,
    };
    let mut builder = LocalExecutorBuilder::new(placement).name(&name).io_memory(IO_MEMORY);
    if let Some(spin) = spin {
        builder = builder.spin_before_park(spin);
    }
    let handle = builder
        .spawn(move || async move {
            POLL.with(|p| p.set(ring_poll));
            if let Some(warning) = placement::pin_current_thread(slot) {
                eprintln!("warning: {warning}");
            }
            main().await
        })
        .map_err(|e| io::Error::other(format!("starting a glommio executor: {e}")))?;
    Ok(Box::new(move || handle.join().ok()))
}

/// The shell on glommio with the shards' sockets on a second io_uring per shard
/// (`--router-io uring`, [`crate::transport::uring`]); the rest is [`Glommio`]'s.
pub struct GlommioUring;

thread_local! {
    /// The shard thread's socket ring and its reaper task, made at the first connection.
    static RING: std::cell::RefCell<Option<(Rc<Ring>, glommio::Task<()>)>> =
        const { std::cell::RefCell::new(None) };
    /// How long this shard's ring polls past its last completion (`--poll`, `--spin-us`).
    static POLL: std::cell::Cell<Option<Duration>> = const { std::cell::Cell::new(None) };
    /// The shard's peers, for its ring (`Runtime::watch_peers`), until the ring is made.
    static PEERS: std::cell::RefCell<Option<Peers>> =
        const { std::cell::RefCell::new(None) };
}

impl Runtime for GlommioUring {
    type Stream = UringStream;
    const NAME: &'static str = "glommio";
    const MAY_SLEEP_THROUGH: bool = true;

    fn spawn(fut: impl Future<Output = ()> + 'static) {
        Glommio::spawn(fut)
    }

    fn sleep(d: Duration) -> impl Future<Output = ()> {
        crate::transport::uring::sleep_until(crate::clock::now_ns() + d.as_nanos() as u64)
    }

    fn adopt(stream: TcpStream) -> io::Result<Self::Stream> {
        RING.with(|r| {
            let mut r = r.borrow_mut();
            if r.is_none() {
                let ring = Ring::new()?;
                ring.set_poll(POLL.with(std::cell::Cell::get));
                ring.set_doze(true);
                if let Some((bell, drain)) = PEERS.with(|p| p.borrow_mut().take()) {
                    ring.set_peers(bell, drain);
                }
                ring.set_early_send(Some(crate::transport::uring::EARLY_SEND));
                let reaper = ring.spawn_reaper();
                *r = Some((ring, reaper));
            }
            match r.as_ref() {
                Some((ring, _)) => Ok(ring.stream(stream.into())),
                None => Err(io::Error::other("no socket ring")),
            }
        })
    }

    fn watch_peers(bell: std::sync::Arc<Doorbell>, drain: Box<dyn Fn() -> bool>) {
        PEERS.with(|p| *p.borrow_mut() = Some((bell, drain)));
    }

    async fn finish() {
        if let Some((ring, reaper)) = RING.with(|r| r.borrow_mut().take()) {
            ring.stop();
            // The reaper ends once no operation is in flight, or 2 s after the stop.
            reaper.await;
        }
    }

    fn launch(
        name: String,
        slot: Slot,
        opts: ExecutorOptions,
        main: ShardMain,
    ) -> io::Result<Joiner> {
        // `--poll`: the ring's reaper polls (and so keeps glommio from parking) until 1 s
        // passes without a completion, then the shard sleeps as usual. `--spin-us`: glommio
        // spins that long before parking, and the reaper polls as long.
        launch(name, slot, opts.spin_before_park, opts.poll_for(), main)
    }
}

/// Everything the router needs to start.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// One shard per slot.
    pub slots: Vec<Slot>,
    /// Settings every shard shares (`shard`, `shards`, `core`, `numa_node` are filled in).
    pub shard: ShardConfig,
    /// Latency mode: spin this long before parking an idle executor (costs CPU).
    pub spin_before_park: Option<Duration>,
    /// Whose socket I/O the shards use: glommio's streams, or a second ring per shard.
    pub io: Io,
    /// Latency mode for dedicated cores: shards poll instead of sleeping while traffic lasts.
    pub poll: bool,
}

impl RouterConfig {
    /// Defaults on `listen` with one shard per slot.
    pub fn new(listen: SocketAddr, slots: Vec<Slot>) -> RouterConfig {
        RouterConfig {
            listen,
            slots,
            shard: ShardConfig::new(0, 1),
            spin_before_park: None,
            io: Io::Glommio,
            poll: false,
        }
    }
}

/// The glommio router.
pub struct Router;

impl Router {
    /// Starts the shards and the acceptor; returns once all shards serve.
    pub fn start(config: RouterConfig) -> io::Result<RouterHandle> {
        let shards = config.slots.len() as u16;
        let template = config.shard.clone();
        let opts = ExecutorOptions { spin_before_park: config.spin_before_park, poll: config.poll };
        let each = |i| ShardConfig { shard: i, shards, ..template.clone() };
        let server = match config.io {
            Io::Glommio => Server::start::<Glommio>(config.listen, &config.slots, opts, each),
            Io::Uring => Server::start::<GlommioUring>(config.listen, &config.slots, opts, each),
        };
        Ok(RouterHandle { server: server? })
    }
}

/// A running router.
pub struct RouterHandle {
    server: Server,
}

impl RouterHandle {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Every shard's counters.
    pub fn stats(&self) -> Vec<ShardStats> {
        self.server.stats()
    }

    /// Blocks every shard for `d` (fault injection: a stalled router).
    pub fn stall(&self, d: Duration) {
        self.server.stall(d)
    }

    /// A handle that can stall the shards from another thread.
    pub fn staller(&self) -> Staller {
        self.server.staller()
    }

    /// Stops the router; returns every shard's final counters.
    pub fn stop(self) -> Vec<ShardStats> {
        self.server.stop()
    }
}
