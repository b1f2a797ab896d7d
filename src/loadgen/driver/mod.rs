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

use super::group::{Adapter, GaveUp, Group, GroupConfig, GroupCounters, Schedule};
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
mod last_word;
mod sampler;
mod tasks;
#[cfg(test)]
mod tests;

use cores::*;
use last_word::*;
use sampler::*;
use tasks::*;

/// How long registering a core's agents may take (100,000 agents take a few seconds here).
const REGISTER_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a core waits for the answers to its farewells (MCP session `DELETE`s).
const FAREWELL_TIMEOUT: Duration = Duration::from_secs(2);

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

pub(super) fn run(scenario: &Scenario, addr: SocketAddr, hooks: Hooks<'_>) -> Outcome {
    let Hooks { probe, at_measure_start, interrupt, mut on_interval, before_start, before_leave } =
        hooks;
    let n = scenario.agents;
    let (base, mine) = scenario.slice.unwrap_or((0, n));
    let slots: Vec<_> = scenario.agent_cores.iter().copied().enumerate().collect();
    let cores = slots.len().max(1);
    let spans: Vec<(u32, u32)> = (0..cores)
        .map(|i| {
            let first = (i as u64 * u64::from(mine) / cores as u64) as u32;
            let end = ((i as u64 + 1) * u64::from(mine) / cores as u64) as u32;
            (base + first, end - first)
        })
        .collect();
    let shared = Shared {
        addr,
        transport: scenario.transport,
        protocol: scenario.protocol,
        io: scenario.io,
        poll: scenario.poll,
        homing: scenario.homing,
        drain_timeout: scenario.drain_timeout,
        leave: Arc::new(AtomicBool::new(false)),
        cores: spans.iter().filter(|(_, count)| *count > 0).count(),
        interrupt: interrupt.clone(),
        interval: scenario.interval,
        http: scenario.http.clone(),
    };
    // Locks and barriers: one operation at a time per agent; fan-outs: at most the board's
    // slots.
    let pacing = scenario.effective_pacing();
    let window = match pacing {
        Pacing::Closed { window } | Pacing::Open { window, .. } => window,
    };
    let (coord, mut side_rx) = if scenario.workload.uses_topology() {
        (None, Vec::new())
    } else {
        let (c, rx) = Coord::new(scenario.workload, n, spans.clone(), window);
        (Some(Arc::new(c)), rx.into_iter().map(Some).collect())
    };
    let (ready_tx, ready_rx) = flume::unbounded::<Result<(), String>>();
    // Bounded: at most a few intervals per core wait while the coordinator reads.
    let (result_tx, result_rx) = flume::bounded::<CoreMsg>(cores * 8 + 8);
    let (mut starts, mut joins, mut failures) = (Vec::new(), Vec::new(), Vec::new());
    // Each core's heartbeat, watched while the run lasts (`CoreWatch`).
    let mut beats: Vec<(usize, Arc<Beat>)> = Vec::new();
    for ((i, slot), (first, count)) in slots.into_iter().zip(spans) {
        let side = side_rx.get_mut(i).and_then(Option::take);
        if count == 0 {
            continue;
        }
        let cfg = GroupConfig {
            topology: scenario.topology,
            agents_total: n,
            first,
            count,
            id_base: scenario.id_base,
            agents_per_conn: scenario.agents_per_conn.max(1),
            pacing,
            stop: scenario.stop,
            payload_bytes: scenario.payload_bytes,
            batch_max: scenario.batch_max.max(1),
            compression: scenario.compression,
            late_after_ns: scenario.late_after.as_nanos() as u64,
            priority: scenario.priority,
            workload: scenario.workload,
        };
        let (start_tx, start_rx) = flume::bounded::<Option<Schedule>>(1);
        let index = starts.len();
        let (ready, result, shared) = (ready_tx.clone(), result_tx.clone(), shared.clone());
        let coord = coord.clone();
        let beat = Beat::new();
        let core_beat = beat.clone();
        // Polling on glommio's streams: glommio's spin (only on an executor it placed itself);
        // a ring's reaper polls instead.
        let builder = match scenario.poll && scenario.io == crate::transport::Io::Glommio {
            true => LocalExecutorBuilder::new(Placement::Fixed(slot.core))
                .spin_before_park(crate::transport::POLL_IDLE),
            false => LocalExecutorBuilder::new(Placement::Unbound),
        }
        // Connects to a remote server run there (`link::connect`), several at a time.
        .blocking_thread_pool_placement(glommio::PoolPlacement::Unbound(DIALLERS));
        let spawned =
            builder.name(&format!("agents-{i}")).io_memory(64 << 10).spawn(move || async move {
                LastWord::arm(index, &ready, &result);
                core_beat.start();
                // Cancelled (dropped) when the core ends: a task left pending is never freed.
                let heart = glommio::spawn_local(heartbeat(core_beat.clone()));
                if let Some(w) = placement::pin_current_thread(slot) {
                    eprintln!("warning: {w}");
                }
                let bell = coord.as_ref().and_then(|c| c.bell(i));
                let core = Core { index, shared, start: start_rx, ready, result, side, bell };
                // Hold timers and returns (one operation at a time) wake the core's side task.
                let poke =
                    coord.as_ref().filter(|c| c.workload().one_at_a_time()).and_then(|c| c.poke(i));
                match (core.shared.protocol, coord) {
                    (Protocol::Native, Some(coord)) => {
                        let native = Native::with_coord(&cfg, coord, poke);
                        core.run(Group::new(cfg.clone(), native)).await
                    }
                    (Protocol::Native, None) => {
                        core.run(Group::new(cfg.clone(), Native::new(&cfg))).await
                    }
                    (Protocol::Json, Some(coord)) => {
                        let json = Json::with_coord(&cfg, coord, poke);
                        core.run(Group::new(cfg.clone(), json)).await
                    }
                    (Protocol::Json, None) => {
                        core.run(Group::new(cfg.clone(), Json::new(&cfg))).await
                    }
                    (Protocol::Http, _) => {
                        let plan = core.shared.http.clone().unwrap_or_default();
                        core.run(Group::new(cfg.clone(), Http::new(&cfg, plan))).await
                    }
                }
                drop(heart);
                core_beat.end();
                LastWord::disarm();
            });
        match spawned {
            Ok(handle) => {
                starts.push(start_tx);
                joins.push(handle);
                beats.push((slot.core, beat));
            }
            Err(e) => failures.push(format!("starting agent core {}: {e}", slot.core)),
        }
    }
    drop((ready_tx, result_tx));
    for _ in 0..starts.len() {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(e),
            Err(_) => failures.push("an agent core stopped during set-up".into()),
        }
    }
    if failures.is_empty() {
        if let Some(Err(e)) = before_start.map(|f| f()) {
            failures.push(e);
        }
    }
    if !failures.is_empty() {
        for s in &starts {
            let _ = s.send(None);
        }
        for j in joins {
            let _ = j.join();
        }
        failures.dedup();
        return Outcome::failed_setup(failures);
    }

    let start_ns = clock::now_ns() + 20_000_000;
    let measure_ns = start_ns + scenario.warmup.as_nanos() as u64;
    let end_ns = match scenario.stop {
        Stop::Duration(d) => measure_ns + d.as_nanos() as u64,
        Stop::Count { .. } => u64::MAX,
    };
    for s in &starts {
        let _ = s.send(Some(Schedule { start_ns, measure_ns, end_ns }));
    }
    // Wait for the cores, reading the router's counters at the window's edges meanwhile; a core
    // that ends early (every connection lost) ends the wait early.
    let (mut results, mut router_before, mut router_after) = (Vec::new(), None, None);
    let (mut counts_before, mut counts_after) = (None, None);
    let mut series =
        Series { cores: shared.cores, open: Default::default(), done: Vec::new(), router: None };
    let mut hook = at_measure_start;
    let (mut drained, mut leave_hook) = (vec![false; starts.len()], before_leave);
    let (mut leave_failure, mut died) = (None, Vec::new());
    let mut watch = CoreWatch::new(beats.len(), CORE_STALL);
    while results.len() + died.len() < starts.len() {
        watch.look(&beats, shared.peer());
        let now = clock::now_ns();
        if router_before.is_none() && now >= measure_ns {
            router_before = Some(probe.map(read_probe));
            counts_before = probe.map(|p| p.window_counts());
            series.router = router_before.clone().flatten();
            if let Some(h) = hook.take() {
                h();
            }
        }
        if router_after.is_none() && end_ns != u64::MAX && now >= end_ns {
            router_after = Some(probe.map(read_probe));
            counts_after = probe.map(|p| p.window_counts());
        }
        let next = if router_before.is_none() {
            measure_ns
        } else if router_after.is_none() && end_ns != u64::MAX {
            end_ns
        } else {
            u64::MAX
        };
        let wait = Duration::from_nanos(next.saturating_sub(now)).min(WATCH_EVERY);
        let got = result_rx.recv_timeout(wait);
        // A core that died waits at no barrier: the others need not wait for it.
        let mut gone = |core: usize| {
            if let Some(d) = drained.get_mut(core) {
                *d = true;
            }
            if drained.iter().all(|&d| d) && !shared.leave.load(Ordering::Acquire) {
                leave_failure = leave_hook.take().and_then(|f| f());
                shared.leave.store(true, Ordering::Release);
            }
        };
        match got {
            Ok(CoreMsg::Drained(core)) => gone(core),
            Ok(CoreMsg::Died(core, why)) => {
                gone(core);
                died.push(why);
            }
            Ok(CoreMsg::Done(r)) => results.push(*r),
            Ok(CoreMsg::Interval(core, sample)) => {
                if let Some(index) = series.add(core, sample) {
                    if let (Some(iv), Some(f)) = (series.finish(index, probe), on_interval.as_mut())
                    {
                        f(iv);
                    }
                }
            }
            Err(flume::RecvTimeoutError::Timeout) => {}
            Err(flume::RecvTimeoutError::Disconnected) => break,
        }
    }
    if router_after.is_none() {
        counts_after = probe.map(|p| p.window_counts());
    }
    let router_after = router_after.flatten().or_else(|| probe.map(read_probe));
    for j in joins {
        let _ = j.join();
    }
    let mut o = Outcome::empty();
    let (mut conns, mut lost, mut failures) = (0, 0, Vec::new());
    let end_ns = results.iter().map(|r| r.end_ns).fold(end_ns, u64::min);
    for r in &results {
        for b in &r.breakdown {
            match o.breakdown.iter_mut().find(|x| x.pattern == b.pattern) {
                Some(x) => x.merge(b),
                None => o.breakdown.push(b.clone()),
            }
        }
        if let Some(c) = &r.coordination {
            o.coordination.get_or_insert_with(Default::default).merge(c);
        }
        o.counters.merge(&r.counters);
        o.latencies.merge(&r.latencies);
        o.in_flight_at_end += r.in_flight;
        o.drain_timed_out |= r.drain_timed_out;
        o.agent_cpu.push(r.cpu_busy.0);
        o.agent_watch.push(r.cpu_busy.1);
        (conns, lost) = (conns + r.conns, lost + r.conns_lost);
        failures.extend(r.failures.iter().cloned());
    }
    if lost > 0 {
        let peer = shared.peer();
        failures.push(format!("the {peer} closed {lost} of {conns} agent connections"));
    }
    if results.len() + died.len() < starts.len() {
        failures.push("an agent core stopped without reporting".into());
    }
    failures.extend(died);
    failures.extend(leave_failure);
    failures.extend(watch.finish(&beats, shared.peer()));
    o.failures = dedupe(failures);
    o.all_connections_lost = conns > 0 && lost == conns;
    o.interrupted = interrupt.is_some_and(|i| i.is_raised());
    o.partial = scenario.slice.is_some_and(|(_, count)| count < n);
    o.fan = scenario.workload.deliveries_per_op(n);
    let last = o.counters.last_measured_delivery_ns;
    o.window_ns = match end_ns {
        u64::MAX => last.saturating_sub(measure_ns),
        // A run cut short by lost connections measured until its last delivery.
        end if o.all_connections_lost => last.min(end).saturating_sub(measure_ns),
        end => end.saturating_sub(measure_ns),
    };
    (o.router_cpu, o.router_watch) = router_cpu(router_before.flatten(), router_after).unzip();
    if let (Some(before), Some(after)) = (counts_before, counts_after) {
        (o.cross_shard_share, o.router_msgs_per_frame) = before.window(after);
    }
    // Intervals not every core reported (a core ended earlier, or was lost) close as they are.
    let left: Vec<u32> = series.open.keys().copied().collect();
    for index in left {
        series.finish(index, probe);
    }
    o.intervals = series.done;
    o
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
