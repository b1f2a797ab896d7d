//! The glommio shell around the agent loop: one pinned executor per agent core, generic over the
//! protocol adapter, so both protocols share every wait, timeout and the end of a run.
//!
//! Per core: connect and register (before the clock starts, bounded), report ready, wait for the
//! common schedule, then run a reader and a writer task per connection and, in open loop, a
//! pacer that sleeps until the next due send; sample the thread's CPU time over the measured
//! window; drain; meet the other cores at the stop barrier (no core closes its agents while
//! another may still send to them); report.

use std::cell::RefCell;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures_lite::future::{or, yield_now};
use futures_lite::io::{AsyncRead, AsyncWrite};
use glommio::{LocalExecutorBuilder, Placement};

use super::group::{Adapter, GaveUp, Group, GroupConfig, GroupCounters, Schedule, Seats};
use super::http::Http;
use super::json::Json;
use super::link::{connect, within, AgentStream};
use super::native::Native;
use super::workload::{Completed, Coord, CoordStats};
use super::{Hooks, Interrupt, Interval, Outcome, Pacing, Protocol, Scenario, Stop};
use crate::clock;
use crate::metrics::Latencies;
use crate::placement;
use crate::transport::kick::Beat;
use crate::transport::uring;
use crate::transport::{write_all, Transport};
use crate::transport::{Guarded, Lend, SocketHandle};
use crate::wire::Home;

mod cores;
mod gather;
mod last_word;
mod sampler;
mod spawn;
mod tasks;
#[cfg(test)]
mod tests;

use cores::*;
use gather::*;
use last_word::*;
use sampler::*;
use spawn::*;
use tasks::*;

pub use spawn::connections_opened;

/// How long registering a core's agents may take (100,000 agents take a few seconds here).
const REGISTER_TIMEOUT: Duration = Duration::from_secs(30);

/// Threads per agent core that dial connections to a server not on loopback.
const DIALLERS: usize = 4;

/// How often the monitor looks at the interrupt flag and the stall timer.
const MONITOR_NS: u64 = 20_000_000;

/// A reader on a socket ring hands the group at most this much input at once (more when one
/// message is bigger); what it produced is submitted before the rest is handled. A connection
/// carrying many agents used to have its whole round (≈ 170 KB for 100 agents with 16 requests
/// each in flight) handled before any of its output left, then waited while the router did the
/// same with the answer: the two sides took turns (`docs/BENCHMARKS.md`, "One connection's two
/// sides taking turns"). Two 64 KiB frames.
const INPUT_CHUNK: usize = 128 << 10;

/// What an agent core tells the coordinating thread.
enum CoreMsg {
    /// Its part of one interval of the time series.
    Interval(usize, Sample),
    /// It (its index) drained its own requests and waits at the stop barrier.
    Drained(usize),
    /// Its result, once it is done.
    Done(Box<CoreResult>),
    /// It (its index) ended without its result: why ([`LastWord`]).
    Died(usize, String),
}

thread_local! {
    /// This thread's agent core, said to have died if the thread ends before the core does.
    static LAST_WORD: RefCell<Option<LastWord>> = const { RefCell::new(None) };
}

/// What one agent core hands back.
struct CoreResult {
    counters: GroupCounters,
    latencies: Latencies,
    /// Busy share over the measured window, and the share of it spent watching.
    cpu_busy: (f64, f64),
    in_flight: u64,
    drain_timed_out: bool,
    conns: usize,
    conns_lost: usize,
    /// When sending stopped (earlier than scheduled after an interrupt).
    end_ns: u64,
    failures: Vec<String>,
    breakdown: Vec<super::http::PatternStats>,
    sizes: Vec<super::mix::SizeStats>,
    /// `pipeline`: each hop's one-way latency by the stage it reached.
    hops: Vec<hdrhistogram::Histogram<u64>>,
    coordination: Option<CoordStats>,
}

/// What every core of a run shares.
#[derive(Clone)]
struct Shared {
    addr: SocketAddr,
    transport: Transport,
    protocol: Protocol,
    io: crate::transport::Io,
    poll: bool,
    homing: bool,
    drain_timeout: Duration,
    /// Raised by the coordinating thread once every core drained and `before_leave` returned.
    leave: Arc<AtomicBool>,
    cores: usize,
    interrupt: Option<Interrupt>,
    interval: Option<Duration>,
    http: Option<Arc<super::http::Plan>>,
    keepalive: Option<Duration>,
}

impl Shared {
    /// What the agents talk to, in messages.
    fn peer(&self) -> &'static str {
        if self.protocol == Protocol::Http {
            "server"
        } else {
            "router"
        }
    }
}

/// One run: start the agent cores, wait until each is set up, send them the common schedule,
/// gather them while the run lasts, and merge what they hand back.
pub(super) fn run(scenario: &Scenario, addr: SocketAddr, hooks: Hooks<'_>) -> Outcome {
    let Hooks {
        probe,
        at_measure_start,
        interrupt,
        on_interval,
        before_start,
        before_leave,
        target_pids,
    } = hooks;
    let spans = spans(scenario);
    let shared = Shared {
        addr,
        transport: scenario.transport,
        protocol: scenario.protocol,
        io: scenario.io,
        poll: scenario.poll,
        homing: scenario.homing,
        drain_timeout: scenario.drain_timeout,
        leave: Arc::new(AtomicBool::new(false)),
        cores: spans.iter().filter(|s| s.count > 0).count(),
        interrupt,
        interval: scenario.interval,
        http: scenario.http.clone(),
        keepalive: scenario.keepalive,
    };
    let mut started = start_cores(scenario, &spans, &shared);
    if let Err(failures) = started.ready(before_start) {
        return Outcome::failed_setup(failures);
    }
    let schedule = started.go(scenario);
    let hooks = WaitHooks { probe, at_measure_start, on_interval, before_leave, target_pids };
    let gathered = wait(&started, &shared, schedule, hooks);
    for j in started.joins.drain(..) {
        let _ = j.join();
    }
    outcome(scenario, &shared, &started, schedule, gathered, probe)
}

/// The same failure from several connections or cores, said once with a count.
fn dedupe(failures: Vec<String>) -> Vec<String> {
    let mut seen: Vec<(String, usize)> = Vec::new();
    for f in failures {
        match seen.iter_mut().find(|(s, _)| *s == f) {
            Some((_, n)) => *n += 1,
            None => seen.push((f, 1)),
        }
    }
    seen.into_iter().map(|(f, n)| if n > 1 { format!("{f} (×{n})") } else { f }).collect()
}

/// When the router was probed, and its threads' CPU and watch times then.
type Probe = Option<(u64, Vec<u64>, Vec<u64>)>;

/// The router's threads' CPU and watch times now (`RouterProbe::cpu_watch_ns`), with the time.
fn read_probe(p: &dyn super::RouterProbe) -> (u64, Vec<u64>, Vec<u64>) {
    let (cpu, watch) = p.cpu_watch_ns();
    (clock::now_ns(), cpu, watch)
}

/// Each router thread's busy share between two probes, and the share of it spent watching.
fn router_cpu(before: Probe, after: Probe) -> Option<(Vec<f64>, Vec<f64>)> {
    let ((t0, c0, w0), (t1, c1, w1)) = (before?, after?);
    if c0.is_empty() || c0.len() != c1.len() || c1.iter().all(|&c| c == 0) {
        return None;
    }
    let wall = t1.saturating_sub(t0).max(1) as f64;
    let share = |a: &[u64], b: &[u64]| -> Vec<f64> {
        a.iter().zip(b).map(|(a, b)| b.saturating_sub(*a) as f64 / wall).collect()
    };
    let watch = if w0.len() == c0.len() && w1.len() == c1.len() {
        share(&w0, &w1)
    } else {
        vec![0.0; c0.len()]
    };
    Some((share(&c0, &c1), watch))
}

/// This thread's CPU time and, of it, its time watching (ns).
fn thread_times() -> (u64, u64) {
    (clock::thread_cpu_ns(), clock::thread_watch_ns())
}

/// Busy and watching shares of this thread since `t0` ([`thread_times`]), over `wall` ns. One
/// thread: more than 1 is a clock-granularity artefact.
fn thread_shares(t0: (u64, u64), wall: u64) -> (f64, f64) {
    let (cpu, watch) = thread_times();
    let wall = wall.max(1) as f64;
    let busy = (cpu.saturating_sub(t0.0) as f64 / wall).min(1.0);
    (busy, (watch.saturating_sub(t0.1) as f64 / wall).min(busy))
}

/// Waits until `done` holds for the group (true) or `until_ns` passes (false); the group wakes
/// the wait when something it may depend on happens.
async fn wait_for<A: Adapter>(
    group: &Rc<RefCell<Group<A>>>,
    until_ns: u64,
    done: impl Fn(&Group<A>) -> bool,
) -> bool {
    let watch = poll_fn(|cx| {
        let mut g = group.borrow_mut();
        if done(&g) {
            return Poll::Ready(true);
        }
        g.watch(cx);
        Poll::Pending
    });
    or(watch, async {
        uring::sleep_until(until_ns).await;
        false
    })
    .await
}
