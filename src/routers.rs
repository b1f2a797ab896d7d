//! Which router: the closed set a2a-bench can start — the thread-per-core router and its two tokio
//! baselines — as one [`RouterKind`] with one [`RouterKind::start`], used by `compare`, the
//! benches and the tests alike. Sits above `router`, `baseline` and `loadgen`: it is where the load
//! generator's [`RouterProbe`] meets each router.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::baseline::{Baseline, BaselineConfig, BaselineHandle, Mode};
use crate::loadgen::RouterProbe;
use crate::placement::Slot;
use crate::route::ShardConfig;
use crate::router::{Router, RouterConfig, RouterHandle};
use crate::wire::ShardStats;

/// A router a2a-bench can start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouterKind {
    /// The thread-per-core router on glommio (io_uring): the system under test.
    Glommio,
    /// The tokio multi-thread baseline with shared state.
    TokioShared,
    /// The tokio baseline sharded like the router: one pinned current-thread runtime per core.
    TokioPerCore,
}

impl RouterKind {
    /// Every kind, the router under test first.
    pub const ALL: [RouterKind; 3] =
        [RouterKind::Glommio, RouterKind::TokioShared, RouterKind::TokioPerCore];

    /// The name in reports and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            RouterKind::Glommio => "glommio",
            RouterKind::TokioShared => Mode::Shared.name(),
            RouterKind::TokioPerCore => Mode::PerCore.name(),
        }
    }

    /// Whether it runs one shard per core (and so reports one stats entry per shard).
    pub fn sharded(self) -> bool {
        self != RouterKind::TokioShared
    }

    /// Starts one on 127.0.0.1 or wherever `spec` says; returns once it accepts connections.
    pub fn start(self, spec: RouterSpec) -> io::Result<AnyRouter> {
        let RouterSpec { listen, slots, shard, spin_before_park, io, poll } = spec;
        Ok(match self {
            RouterKind::Glommio => {
                let mut rc = RouterConfig::new(listen, slots);
                rc.shard = shard;
                rc.spin_before_park = spin_before_park;
                rc.io = io;
                rc.poll = poll;
                AnyRouter::Glommio(Router::start(rc)?)
            }
            RouterKind::TokioShared | RouterKind::TokioPerCore => {
                let mode =
                    if self == RouterKind::TokioShared { Mode::Shared } else { Mode::PerCore };
                AnyRouter::Baseline(Baseline::start(BaselineConfig { listen, slots, mode, shard })?)
            }
        })
    }
}

impl fmt::Display for RouterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for RouterKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RouterKind::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| {
            format!("unknown router '{s}' (expected glommio, tokio-shared or tokio-per-core)")
        })
    }
}

/// What any router needs to start.
#[derive(Debug, Clone)]
pub struct RouterSpec {
    /// Address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// One shard (or worker thread) per slot.
    pub slots: Vec<Slot>,
    /// Router settings every kind shares.
    pub shard: ShardConfig,
    /// Latency mode of glommio's executors (the tokio kinds ignore it).
    pub spin_before_park: Option<Duration>,
    /// Socket I/O of glommio's shards (the tokio kinds keep their epoll design).
    pub io: crate::transport::Io,
    /// Latency mode of glommio's shards (`--poll`; the tokio kinds ignore it).
    pub poll: bool,
}

impl RouterSpec {
    /// Defaults on 127.0.0.1, a free port, one shard per slot.
    pub fn local(slots: Vec<Slot>) -> RouterSpec {
        RouterSpec {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            slots,
            shard: ShardConfig::new(0, 1),
            spin_before_park: None,
            io: crate::transport::Io::Glommio,
            poll: false,
        }
    }
}

/// A running router of any kind.
pub enum AnyRouter {
    /// The thread-per-core router.
    Glommio(RouterHandle),
    /// A tokio baseline.
    Baseline(BaselineHandle),
}

impl AnyRouter {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        match self {
            AnyRouter::Glommio(r) => r.local_addr(),
            AnyRouter::Baseline(r) => r.local_addr(),
        }
    }

    /// Every shard's counters.
    pub fn stats(&self) -> Vec<ShardStats> {
        match self {
            AnyRouter::Glommio(r) => r.stats(),
            AnyRouter::Baseline(r) => r.stats(),
        }
    }

    /// Blocks every shard's (or worker's) thread for `d` (fault injection).
    pub fn stall(&self, d: std::time::Duration) {
        match self {
            AnyRouter::Glommio(r) => r.stall(d),
            AnyRouter::Baseline(r) => r.stall(d),
        }
    }

    /// Stops it; returns its final counters.
    pub fn stop(self) -> Vec<ShardStats> {
        match self {
            AnyRouter::Glommio(r) => r.stop(),
            AnyRouter::Baseline(r) => r.stop(),
        }
    }
}

impl RouterProbe for AnyRouter {
    fn stats(&self) -> Vec<ShardStats> {
        AnyRouter::stats(self)
    }

    fn cpu_ns(&self) -> Vec<u64> {
        match self {
            AnyRouter::Glommio(r) => RouterProbe::cpu_ns(r),
            AnyRouter::Baseline(r) => r.cpu_ns(),
        }
    }

    fn cpu_watch_ns(&self) -> (Vec<u64>, Vec<u64>) {
        match self {
            AnyRouter::Glommio(r) => RouterProbe::cpu_watch_ns(r),
            AnyRouter::Baseline(r) => r.cpu_watch_ns(),
        }
    }
}

impl RouterProbe for RouterHandle {
    fn stats(&self) -> Vec<ShardStats> {
        RouterHandle::stats(self)
    }
}

impl RouterProbe for BaselineHandle {
    fn stats(&self) -> Vec<ShardStats> {
        BaselineHandle::stats(self)
    }

    fn cpu_ns(&self) -> Vec<u64> {
        BaselineHandle::cpu_ns(self)
    }

    fn cpu_watch_ns(&self) -> (Vec<u64>, Vec<u64>) {
        // The tokio routers wait in epoll: they never watch.
        let cpu = BaselineHandle::cpu_ns(self);
        let none = vec![0; cpu.len()];
        (cpu, none)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        // Proves every kind parses back from its own name, and an unknown name is refused.
        for k in RouterKind::ALL {
            assert_eq!(k.name().parse::<RouterKind>(), Ok(k));
        }
        assert!("nats".parse::<RouterKind>().is_err());
    }

    #[test]
    fn a_connection_s_tasks_keep_small_states() {
        // Proves the size of the two tasks' states every native connection holds for its
        // whole life, on the socket ring and on tokio-per-core (the same code): the writer's
        // was 264 bytes while a write was written as nested futures (`or` of the write and
        // the cut-off, `write_all` inside), 176 since; the reader's 160, 136 once its reads'
        // closures kept one reference each. The stream they share (in an `Rc`, 16 bytes
        // more) was 64 bytes on the ring while its replay of the first bytes was kept inline,
        // 40 since it is boxed: a 64-byte block instead of a 96-byte one.
        let ring = crate::route::shell::task_states::<crate::router::GlommioUring>();
        let tokio = crate::route::shell::task_states::<crate::baseline::per_core::TokioPerCore>();
        for (router, (reader, writer, stream)) in [("ring", ring), ("tokio-per-core", tokio)] {
            eprintln!("{router}: reader {reader} bytes of state, writer {writer}, stream {stream}");
            assert!(reader <= 136, "{router}: the reader keeps {reader} bytes of state");
            assert!(writer <= 176, "{router}: the writer keeps {writer} bytes of state");
        }
        assert!(ring.2 <= 40, "the ring's native stream takes {} bytes", ring.2);
    }
}
