//! The server lifecycle: bind, start one shard per slot (pinned), wait until all serve, accept
//! connections and hand each to a shard (`accept`: the one its `home` names, else the one with
//! the fewest); stats, stalls and stop from outside.
//!
//! Connections are accepted by one thread rather than spread with SO_REUSEPORT, which put both of
//! two connections on one listener half the time (see ARCHITECTURE.md).

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::accept::Acceptor;
use super::peer::Returns;
use super::shell::{
    run_shard, Command, ExecutorOptions, Joiner, Links, PeerRx, PeerTx, Runtime, ShardMain,
    PEER_CHANNEL_CAPACITY,
};
use super::{Shard, ShardConfig};
use crate::placement::Slot;
use crate::transport::doorbell::Doorbell;
use crate::transport::kick::Beat;
use crate::wire::ShardStats;

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

/// A shard whose loop has not turned (its ticker has not run) for this long is reported.
pub const WATCHDOG_STALL: Duration = Duration::from_secs(1);
/// How often the watchdog looks.
const WATCHDOG_EVERY: Duration = Duration::from_millis(100);

/// A running set of shards behind one listening address.
pub struct Server {
    addr: SocketAddr,
    shards: Vec<ShardHandle>,
    acceptor: Option<JoinHandle<()>>,
    /// The listening socket, shared with the acceptor: shut down to end its wait at stop.
    listener: TcpListener,
    stopping: Arc<AtomicBool>,
    runtime: &'static str,
    watchdog: Option<JoinHandle<()>>,
    /// Times each shard was seen stalled by the watchdog.
    stalls: Arc<Vec<AtomicU64>>,
}

/// Every [`WATCHDOG_EVERY`], checks that each shard's ticker ran within [`WATCHDOG_STALL`];
/// says so on stderr, once per stall, and when the shard turns again, and counts it; with `kick`,
/// interrupts a stalled shard's wait every look until it turns (`transport::kick`).
fn watchdog(
    runtime: &'static str,
    kick: bool,
    slots: Vec<Slot>,
    beats: Vec<Arc<Beat>>,
    stalls: Arc<Vec<AtomicU64>>,
    stopping: Arc<AtomicBool>,
) {
    let limit = WATCHDOG_STALL.as_nanos() as u64;
    let mut since: Vec<Option<u64>> = vec![None; beats.len()];
    while !stopping.load(Ordering::Acquire) {
        std::thread::park_timeout(WATCHDOG_EVERY);
        let now = crate::clock::now_ns();
        for (i, beat) in beats.iter().enumerate() {
            // Not started yet, or ended.
            let Some(last) = beat.last() else { continue };
            let late = now.saturating_sub(last);
            if late > limit && kick {
                // A lost wake-up (`transport::kick`): interrupt its wait. Runtimes that never
                // lost one here are left alone.
                beat.kick();
            }
            match since[i] {
                None if late > limit => {
                    since[i] = Some(last);
                    stalls[i].fetch_add(1, Ordering::Relaxed);
                    eprintln!(
                        "watchdog: {runtime} router shard {i} (core {}) has not turned its loop for {:.1} s",
                        slots[i].core,
                        late as f64 / 1e9
                    );
                }
                Some(from) if late <= limit => {
                    since[i] = None;
                    eprintln!(
                        "watchdog: {runtime} router shard {i} turns again after {:.1} s",
                        last.saturating_sub(from) as f64 / 1e9
                    );
                }
                _ => {}
            }
        }
    }
}

struct ShardHandle {
    commands: flume::Sender<Command>,
    join: Option<Joiner>,
}

/// The bounded channels between every pair of shards, and each shard's doorbell.
struct Mesh {
    /// `to[a][b]`: shard `a`'s sending end towards shard `b` (`None` where `a == b`).
    to: Vec<Vec<Option<PeerTx>>>,
    /// `from[b][a]`: shard `b`'s receiving end of what shard `a` sends.
    from: Vec<Vec<Option<PeerRx>>>,
    /// Per shard: set by a peer after it sends on a control lane to it ([`Links::ctl_waiting`]).
    ctl_waiting: Vec<Arc<AtomicBool>>,
    /// Per shard: what its peers ring once they have sent it something.
    bells: Vec<Arc<Doorbell>>,
}

impl Mesh {
    fn new(n: usize) -> io::Result<Mesh> {
        let mut to: Vec<Vec<Option<PeerTx>>> =
            (0..n).map(|_| (0..n).map(|_| None).collect()).collect();
        let mut from: Vec<Vec<Option<PeerRx>>> =
            (0..n).map(|_| (0..n).map(|_| None).collect()).collect();
        let ctl_waiting: Vec<Arc<AtomicBool>> = (0..n).map(|_| Arc::default()).collect();
        let bells = (0..n).map(|_| Doorbell::new()).collect::<io::Result<Vec<_>>>()?;
        // The return lanes, one per pair: each side's end travels with its `PeerTx`; the
        // second side's waits here until its turn.
        let mut second: Vec<Vec<Option<Returns>>> =
            (0..n).map(|_| (0..n).map(|_| None).collect()).collect();
        for a in 0..n {
            for b in (0..n).filter(|&b| b != a) {
                // Two lanes: data, and control (which never waits behind data).
                let (data, data_rx) = flume::bounded(PEER_CHANNEL_CAPACITY);
                let (ctl, ctl_rx) = flume::bounded(PEER_CHANNEL_CAPACITY);
                let (ctl_waiting, bell) = (ctl_waiting[b].clone(), bells[b].clone());
                let returns = second[a][b].take().unwrap_or_else(|| {
                    let (ours, theirs) = Returns::pair();
                    second[b][a] = Some(theirs);
                    ours
                });
                to[a][b] = Some(PeerTx { data, ctl, ctl_waiting, bell, returns });
                from[b][a] = Some(PeerRx { data: data_rx, ctl: ctl_rx });
            }
        }
        Ok(Mesh { to, from, ctl_waiting, bells })
    }
}

impl Server {
    /// Binds `listen`, starts one shard per slot (pinned), waits until every shard is ready,
    /// then starts accepting. `configure(i)` gives shard `i`'s configuration.
    pub fn start<R: Runtime>(
        listen: SocketAddr,
        slots: &[Slot],
        opts: ExecutorOptions,
        configure: impl Fn(u16) -> ShardConfig,
    ) -> io::Result<Server> {
        if slots.is_empty() || slots.len() > 64 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "1 to 64 router cores"));
        }
        let listener = TcpListener::bind(listen)?;
        let addr = listener.local_addr()?;
        let n = slots.len();
        let Mesh { to, from, ctl_waiting, bells } = Mesh::new(n)?;
        let max_connections = configure(0).max_connections;
        let (ready_tx, ready_rx) = flume::unbounded();
        let mut shards = Vec::with_capacity(n);
        let mut loads = Vec::with_capacity(n);
        let beats: Vec<Arc<Beat>> = (0..n).map(|_| Beat::new()).collect();
        for (i, (to_peers, from_peers)) in to.into_iter().zip(from).enumerate() {
            let (cmd_tx, cmd_rx) = flume::unbounded();
            let live = Arc::new(AtomicUsize::new(0));
            loads.push(live.clone());
            let ctl_waiting = ctl_waiting[i].clone();
            let beat = beats[i].clone();
            let bell = bells[i].clone();
            let links =
                Links { commands: cmd_rx, to_peers, from_peers, ctl_waiting, bell, live, beat };
            let mut cfg = configure(i as u16);
            cfg.core = slots[i].core as u32;
            cfg.numa_node = slots[i].node;
            let ready = ready_tx.clone();
            let main: ShardMain =
                Box::new(move || Box::pin(run_shard::<R>(Shard::new(cfg), links, ready)));
            let join = R::launch(format!("{}-shard-{i}", R::NAME), slots[i], opts, main)?;
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
        let accepting = listener.try_clone()?;
        let acceptor =
            std::thread::Builder::new().name(format!("{}-accept", R::NAME)).spawn(move || {
                let listener = accepting;
                Acceptor { listener, shards: senders, loads, max_connections, stopping: stop }.run()
            })?;
        let stalls: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
        let (counts, stop, slots) = (stalls.clone(), stopping.clone(), slots.to_vec());
        let watchdog = std::thread::Builder::new()
            .name(format!("{}-watchdog", R::NAME))
            .spawn(move || watchdog(R::NAME, R::MAY_SLEEP_THROUGH, slots, beats, counts, stop))?;
        Ok(Server {
            addr,
            shards,
            acceptor: Some(acceptor),
            listener,
            stopping,
            runtime: R::NAME,
            watchdog: Some(watchdog),
            stalls,
        })
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
        let stats =
            replies.into_iter().filter_map(|rx| rx.recv_timeout(Duration::from_secs(5)).ok());
        stats.map(|s| self.with_stalls(s)).collect()
    }

    /// `s` with the watchdog's count of its shard's stalls.
    fn with_stalls(&self, mut s: ShardStats) -> ShardStats {
        if let Some(n) = self.stalls.get(usize::from(s.shard)) {
            s.loop_stalls = n.load(Ordering::Relaxed);
        }
        s
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
        if let Some(w) = self.watchdog.take() {
            w.thread().unpark();
            let _ = w.join();
        }
        // End the acceptor's wait (`poll` or `accept`): a listening socket shut down wakes both,
        // at once and for good. A connection of our own, the way this used to be done, could
        // miss: accepted in a burst begun before `stopping` was set, or not connected within
        // its second on a starved machine, it left the acceptor in a `poll` with no timeout (a
        // test's stop hung so, with two test suites running at once). It stays the fallback.
        if nix::sys::socket::shutdown(self.listener.as_raw_fd(), nix::sys::socket::Shutdown::Both)
            .is_err()
        {
            let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        }
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        for s in &self.shards {
            let _ = s.commands.send(Command::Stop);
        }
        let finals: Vec<ShardStats> = self
            .shards
            .iter_mut()
            .filter_map(|s| s.join.take())
            .filter_map(|join| join())
            .collect();
        finals.into_iter().map(|s| self.with_stalls(s)).collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.acceptor.is_some() {
            self.shutdown();
        }
    }
}
