//! The baseline routers the thread-per-core router is compared with; they speak the same
//! protocol through the same `wire` code. This module never names the io_uring runtime.
//!
//! - [`Mode::Shared`]: a tokio multi-thread runtime with shared state, as a competent engineer
//!   writes it (`shared.rs`).
//! - [`Mode::PerCore`]: the sharded design on tokio — pinned `current_thread` runtimes running the
//!   very same shards as the thread-per-core router (`per_core.rs`), to separate what the runtime buys
//!   from what the architecture buys.

pub mod per_core;
mod shared;

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::placement::Slot;
use crate::route::server::Server;
use crate::route::shell::ExecutorOptions;
use crate::route::ShardConfig;
use crate::wire::ShardStats;

/// Which baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// tokio multi-thread, shared registry.
    #[default]
    Shared,
    /// One pinned tokio `current_thread` runtime per core, sharded like the thread-per-core router.
    PerCore,
}

impl Mode {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Shared => "tokio-shared",
            Mode::PerCore => "tokio-per-core",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "shared" | "multi-thread" => Ok(Mode::Shared),
            "per-core" => Ok(Mode::PerCore),
            other => Err(format!("unknown mode '{other}' (expected shared or per-core)")),
        }
    }
}

/// Everything a baseline needs to start.
#[derive(Debug, Clone)]
pub struct BaselineConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Shared: the cores its worker threads may run on (one thread per core).
    /// Per-core: one shard per core.
    pub slots: Vec<Slot>,
    /// Which baseline.
    pub mode: Mode,
    /// Router settings (the same as the thread-per-core router's).
    pub shard: ShardConfig,
}

/// Starts baselines.
pub struct Baseline;

impl Baseline {
    /// Starts the baseline; returns once it accepts connections.
    pub fn start(cfg: BaselineConfig) -> io::Result<BaselineHandle> {
        if cfg.slots.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "at least one core"));
        }
        match cfg.mode {
            Mode::PerCore => {
                let shards = cfg.slots.len() as u16;
                let template = cfg.shard.clone();
                let opts = ExecutorOptions::default();
                let server =
                    Server::start::<per_core::TokioPerCore>(cfg.listen, &cfg.slots, opts, |i| {
                        ShardConfig { shard: i, shards, ..template.clone() }
                    })?;
                Ok(BaselineHandle { inner: Inner::PerCore(server) })
            }
            Mode::Shared => start_shared(cfg),
        }
    }
}

fn start_shared(cfg: BaselineConfig) -> io::Result<BaselineHandle> {
    let listener = std::net::TcpListener::bind(cfg.listen)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let mut cpus = nix::sched::CpuSet::new();
    for s in &cfg.slots {
        cpus.set(s.core).map_err(io::Error::other)?;
    }
    let tids = Arc::new(Mutex::new(Vec::new()));
    let tids_on_start = tids.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cfg.slots.len())
        .thread_name("tokio-shared")
        .enable_all()
        .on_thread_start(move || {
            // Confined to the router cores (the same cores the other routers get), not pinned
            // one-to-one: the runtime's scheduler balances its workers, as deployed.
            let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &cpus);
            if let Ok(mut t) = tids_on_start.lock() {
                t.push(nix::unistd::gettid().as_raw());
            }
        })
        .build()?;
    let mut shard = cfg.shard.clone();
    shard.core = cfg.slots[0].core as u32;
    shard.numa_node = cfg.slots[0].node;
    let state = Arc::new(shared::State::new(shard));
    let accept_state = state.clone();
    runtime.spawn(async move {
        if let Ok(listener) = tokio::net::TcpListener::from_std(listener) {
            shared::accept_loop(accept_state, listener).await;
        }
    });
    runtime.spawn(shared::lease_ticker(state.clone()));
    Ok(BaselineHandle {
        inner: Inner::Shared {
            addr,
            runtime: Some(runtime),
            state,
            tids,
            threads: cfg.slots.len(),
        },
    })
}

enum Inner {
    Shared {
        addr: SocketAddr,
        runtime: Option<tokio::runtime::Runtime>,
        state: Arc<shared::State>,
        tids: Arc<Mutex<Vec<i32>>>,
        threads: usize,
    },
    PerCore(Server),
}

/// A running baseline.
pub struct BaselineHandle {
    inner: Inner,
}

/// CPU time of thread `tid` of this process, in ns, from /proc (clock-tick resolution).
fn thread_cpu_ns(tid: i32) -> u64 {
    // /proc reports clock ticks of USER_HZ, fixed at 100 on Linux.
    crate::host::process_ticks(&format!("self/task/{tid}")).unwrap_or(0) * 10_000_000
}

impl BaselineHandle {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        match &self.inner {
            Inner::Shared { addr, .. } => *addr,
            Inner::PerCore(server) => server.local_addr(),
        }
    }

    /// CPU time used by each router thread so far (ns).
    pub fn cpu_ns(&self) -> Vec<u64> {
        match &self.inner {
            Inner::Shared { tids, .. } => tids
                .lock()
                .map(|t| t.iter().map(|&tid| thread_cpu_ns(tid)).collect())
                .unwrap_or_default(),
            Inner::PerCore(server) => server.stats().iter().map(|s| s.cpu_ns).collect(),
        }
    }

    /// Counters: one entry for the shared router, one per shard for per-core.
    pub fn stats(&self) -> Vec<ShardStats> {
        match &self.inner {
            Inner::Shared { state, .. } => vec![state.stats(self.cpu_ns().iter().sum())],
            Inner::PerCore(server) => server.stats(),
        }
    }

    /// Blocks the router's threads for `d` (fault injection). For the shared runtime this
    /// blocks as many workers as it has, which the scheduler usually spreads over all of them.
    pub fn stall(&self, d: Duration) {
        match &self.inner {
            Inner::Shared { runtime: Some(rt), threads, .. } => {
                for _ in 0..*threads {
                    rt.spawn(async move { std::thread::sleep(d) });
                }
            }
            Inner::Shared { .. } => {}
            Inner::PerCore(server) => server.stall(d),
        }
    }

    /// Stops it; returns its final counters.
    pub fn stop(self) -> Vec<ShardStats> {
        let stats = self.stats();
        match self.inner {
            Inner::Shared { runtime, .. } => {
                if let Some(rt) = runtime {
                    rt.shutdown_timeout(Duration::from_secs(2));
                }
                stats
            }
            Inner::PerCore(server) => server.stop(),
        }
    }
}
