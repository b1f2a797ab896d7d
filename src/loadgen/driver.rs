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

/// Tells the coordinating thread that an agent core's thread ended without the core's result.
/// It is kept in a thread-local, whose destructor runs however the thread ends: a panic in any
/// of the core's tasks unwinds glommio's executor and leaks the core's state, its senders
/// included, so that without it the coordinator (and the command) would wait forever.
struct LastWord {
    index: usize,
    ready: flume::Sender<Result<(), String>>,
    result: flume::Sender<CoreMsg>,
    /// What the thread panicked with, if it did ([`note_panics`]).
    panic: Option<String>,
    /// Cleared once the core ended as it should.
    armed: bool,
}

impl LastWord {
    /// Arms this thread's last word for agent core `index`.
    fn arm(
        index: usize,
        ready: &flume::Sender<Result<(), String>>,
        result: &flume::Sender<CoreMsg>,
    ) {
        note_panics();
        let (ready, result) = (ready.clone(), result.clone());
        let word = LastWord { index, ready, result, panic: None, armed: true };
        LAST_WORD.with(|w| *w.borrow_mut() = Some(word));
    }

    /// This thread's core ended as it should: nothing to say.
    fn disarm() {
        LAST_WORD.with(|w| {
            if let Some(mut word) = w.borrow_mut().take() {
                word.armed = false;
            }
        });
    }
}

impl Drop for LastWord {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let why = self.panic.take().unwrap_or_else(|| "its thread ended without a result".into());
        let why = format!("agent core {} stopped: {why}", self.index);
        // Whichever the coordinator waits on: the set-up's answers, or the results.
        let _ = self.ready.try_send(Err(why.clone()));
        let _ = self.result.try_send(CoreMsg::Died(self.index, why));
    }
}

/// Keeps what a thread with a [`LastWord`] panicked with, for it to say; the panic is then
/// reported as before (the hook that was there is called).
fn note_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let before = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = LAST_WORD.try_with(|w| {
                if let Some(word) = w.try_borrow_mut().ok().as_deref_mut().and_then(Option::as_mut)
                {
                    let payload = info.payload();
                    let what = payload
                        .downcast_ref::<&str>()
                        .copied()
                        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                        .unwrap_or("(no message)");
                    let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line()));
                    word.panic.get_or_insert(format!("panicked{}: {what}", at.unwrap_or_default()));
                }
            });
            before(info);
        }));
    });
}

/// One core's part of one interval.
struct Sample {
    index: u32,
    start_ns: u64,
    end_ns: u64,
    deliveries: u64,
    requests_sent: u64,
    round_trips: u64,
    errors: u64,
    cpu_busy: f64,
    /// Of `cpu_busy`, the share spent watching for input that had not come.
    cpu_watch: f64,
    rtt: hdrhistogram::Histogram<u64>,
}

/// Cuts one core's measured window into intervals: at each boundary, what changed since the
/// last one (counters, the round-trip histogram, the thread's CPU time).
struct Sampler {
    every_ns: u64,
    index: u32,
    start_ns: u64,
    measure_ns: u64,
    counters: [u64; 4],
    rtt: hdrhistogram::Histogram<u64>,
    cpu_ns: u64,
    watch_ns: u64,
}

fn counts(c: &GroupCounters) -> [u64; 4] {
    [c.window_deliveries, c.requests_sent_in_window, c.round_trips_measured, c.error_total()]
}

impl Sampler {
    fn new<A: Adapter>(every: Duration, measure_ns: u64, g: &Group<A>) -> Sampler {
        Sampler {
            every_ns: (every.as_nanos() as u64).max(1_000_000),
            index: 0,
            start_ns: measure_ns,
            measure_ns,
            // What counts for the window is counted only from its start (deliveries, requests
            // sent) or only for requests meant to leave in it (round trips): none belongs to
            // the warm-up, though some may be in already if this task woke late. Errors count
            // from the first send: those before now were the warm-up's.
            counters: [0, 0, 0, g.counters().error_total()],
            rtt: {
                let mut none = g.latencies().rtt.clone();
                none.reset();
                none
            },
            cpu_ns: clock::thread_cpu_ns(),
            watch_ns: clock::thread_watch_ns(),
        }
    }

    /// When the current interval ends.
    fn due_ns(&self) -> u64 {
        self.start_ns + self.every_ns
    }

    /// Closes the current interval at `now`.
    fn take<A: Adapter>(&mut self, g: &Group<A>, now: u64) -> Sample {
        let c = counts(g.counters());
        let mut rtt = g.latencies().rtt.clone();
        // The cumulative histogram only grows: the difference is this interval's samples.
        let _ = rtt.subtract(&self.rtt);
        let _ = self.rtt.add(&rtt);
        let (cpu, watch) = thread_times();
        let wall = now.saturating_sub(self.start_ns).max(1);
        let busy = (cpu.saturating_sub(self.cpu_ns) as f64 / wall as f64).min(1.0);
        let d = |i: usize| c[i].saturating_sub(self.counters[i]);
        let sample = Sample {
            index: self.index,
            start_ns: self.start_ns - self.measure_ns,
            end_ns: now.max(self.start_ns) - self.measure_ns,
            deliveries: d(0),
            requests_sent: d(1),
            round_trips: d(2),
            errors: d(3),
            cpu_busy: busy,
            cpu_watch: (watch.saturating_sub(self.watch_ns) as f64 / wall as f64).min(busy),
            rtt,
        };
        self.index += 1;
        self.start_ns = now.max(self.start_ns);
        self.counters = c;
        self.cpu_ns = cpu;
        self.watch_ns = watch;
        sample
    }
}

/// The coordinating thread's merge of the cores' samples into intervals.
struct Series {
    cores: usize,
    open: std::collections::BTreeMap<u32, (usize, Interval)>,
    done: Vec<Interval>,
    router: Probe,
}

impl Series {
    fn add(&mut self, core: usize, s: Sample) -> Option<u32> {
        let cores = self.cores;
        let (seen, iv) = self.open.entry(s.index).or_insert_with(|| {
            (
                0,
                Interval {
                    index: s.index,
                    start_ns: s.start_ns,
                    end_ns: s.end_ns,
                    deliveries: 0,
                    requests_sent: 0,
                    round_trips: 0,
                    errors: 0,
                    rtt: crate::metrics::Latencies::default().rtt,
                    agent_cpu: vec![0.0; cores],
                    agent_watch: vec![0.0; cores],
                    router_cpu: None,
                    router_watch: None,
                },
            )
        });
        *seen += 1;
        let counts = [s.deliveries, s.requests_sent, s.round_trips, s.errors];
        iv.absorb((s.start_ns, s.end_ns), counts, &s.rtt);
        if let (Some(busy), Some(watch)) =
            (iv.agent_cpu.get_mut(core), iv.agent_watch.get_mut(core))
        {
            (*busy, *watch) = (s.cpu_busy, s.cpu_watch);
        }
        (*seen == cores).then_some(s.index)
    }

    /// Moves interval `index` to the finished list, with the router's CPU use since the last.
    fn finish(&mut self, index: u32, probe: Option<&dyn super::RouterProbe>) -> Option<&Interval> {
        let (_, mut iv) = self.open.remove(&index)?;
        if let Some(p) = probe {
            let now = read_probe(p);
            (iv.router_cpu, iv.router_watch) =
                router_cpu(self.router.take(), Some(now.clone())).unzip();
            self.router = Some(now);
        }
        self.done.push(iv);
        self.done.last()
    }
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

/// One agent core: its channels to the coordinating thread and what all cores share.
struct Core {
    /// Its place among the run's agent cores.
    index: usize,
    shared: Shared,
    start: flume::Receiver<Option<Schedule>>,
    ready: flume::Sender<Result<(), String>>,
    result: flume::Sender<CoreMsg>,
    /// Coordination workloads: this core's messages from other cores (and its own pokes).
    side: Option<flume::Receiver<Completed>>,
    /// Rung by the other cores after they send on `side`: it ends the ring's doze.
    bell: Option<Arc<uring::Doorbell>>,
}

/// The side task's waker while it waits, for the ring's doze: a message from another core
/// wakes the task through glommio's queue of foreign wakes, which its loop reads only when it
/// turns, while the ring may be dozing; the doorbell ends the doze, and the ring wakes the task
/// on this thread ([`side`], [`Core::run`]).
type SideWaker = Rc<std::cell::Cell<Option<std::task::Waker>>>;

/// How often the coordinating thread looks at the agent cores' heartbeats.
const WATCH_EVERY: Duration = Duration::from_millis(100);
/// How often an agent core's heartbeat task runs.
const BEAT_EVERY: Duration = Duration::from_millis(100);
/// An agent core whose heartbeat is older than this stood still: reported and kicked.
pub(super) const CORE_STALL: Duration = Duration::from_secs(1);

/// Shows the coordinating thread that the core's loop turns: a glommio timer that runs every
/// [`BEAT_EVERY`] (the timers are what a lost wake-up stops; `transport::kick`).
async fn heartbeat(beat: Arc<Beat>) {
    loop {
        glommio::timer::sleep(BEAT_EVERY).await;
        beat.beat();
    }
}

/// The coordinating thread's watch over the agent cores: a core whose loop stands still for
/// [`CORE_STALL`] is said on stderr and kicked (`transport::kick`) until it turns again, and
/// the run fails with what happened: for that time the generator, not the router, held the
/// traffic back, so its figures do not measure the router.
struct CoreWatch {
    /// Per core: since when (ns) it stands still, while it does.
    since: Vec<Option<u64>>,
    /// What happened, for the run's failures.
    said: Vec<String>,
    /// [`CORE_STALL`], in ns.
    limit_ns: u64,
}

impl CoreWatch {
    fn new(cores: usize, limit: Duration) -> CoreWatch {
        CoreWatch { since: vec![None; cores], said: Vec::new(), limit_ns: limit.as_nanos() as u64 }
    }

    fn look(&mut self, beats: &[(usize, Arc<Beat>)], peer: &str) {
        let (now, limit) = (clock::now_ns(), self.limit_ns);
        for (i, (core, beat)) in beats.iter().enumerate() {
            let Some(last) = beat.last() else {
                self.turned(i, *core, None, peer);
                continue;
            };
            let late = now.saturating_sub(last);
            if late > limit {
                if self.since[i].is_none() {
                    self.since[i] = Some(last);
                    eprintln!(
                        "watchdog: agent core {i} (core {core}) has not turned its loop for {:.1} s: waking it",
                        late as f64 / 1e9
                    );
                }
                beat.kick();
            } else {
                self.turned(i, *core, Some(last), peer);
            }
        }
    }

    /// Core `i` turns again as of `at` (None: it ended).
    fn turned(&mut self, i: usize, core: usize, at: Option<u64>, peer: &str) {
        if let Some(from) = self.since[i].take() {
            let secs = at.unwrap_or_else(clock::now_ns).saturating_sub(from) as f64 / 1e9;
            eprintln!("watchdog: agent core {i} (core {core}) turns again after {secs:.1} s");
            self.said.push(format!(
                "agent core {i} (core {core}) stood still for {secs:.1} s (its timers did not run: a lost wake-up, or the machine took the core away; woken by a signal): for that time the generator, not the {peer}, held the traffic back"
            ));
        }
    }

    /// What the run must say; a core still standing still is said too.
    fn finish(mut self, beats: &[(usize, Arc<Beat>)], peer: &str) -> Vec<String> {
        for (i, (since, (core, _))) in self.since.iter().zip(beats).enumerate() {
            if let Some(from) = since {
                let secs = clock::now_ns().saturating_sub(*from) as f64 / 1e9;
                self.said.push(format!(
                    "agent core {i} (core {core}) stood still for {secs:.1} s until the run ended (its timers did not run): for that time the generator, not the {peer}, held the traffic back"
                ));
            }
        }
        self.said
    }
}

impl Core {
    async fn run<A: Adapter + 'static>(mut self, group: Group<A>) {
        let conns = group.connections();
        let group = Rc::new(RefCell::new(group));
        let failures = Rc::new(RefCell::new(Vec::<String>::new()));
        let controls = Rc::new(RefCell::new(Vec::new()));
        let mut tasks = Vec::new();
        // Set-up: connect, register, wait for every acknowledgement (bounded).
        let mut setup = Ok(());
        let mut ring = None;
        let side_waker = SideWaker::default();
        if self.shared.io == crate::transport::Io::Uring {
            match uring::Ring::new() {
                Ok(r) => {
                    r.set_poll(self.shared.poll.then_some(crate::transport::POLL_IDLE));
                    // Other cores reach this one through a channel only in coordination
                    // workloads (`side`): they ring its doorbell, which ends a doze, and the
                    // ring wakes the side task; without a doorbell a doze would hold their
                    // messages back, so the ring does not doze.
                    match (&self.side, &self.bell) {
                        (None, _) => r.set_doze(true),
                        (Some(rx), Some(bell)) => {
                            r.set_doze(true);
                            r.set_peers(bell.clone(), side_drain(rx.clone(), side_waker.clone()));
                        }
                        (Some(_), None) => r.set_doze(false),
                    }
                    ring = Some(r);
                }
                Err(e) => setup = Err(format!("--agent-io uring: making an io_uring: {e}")),
            }
        }
        let reaper = ring.as_ref().map(uring::Ring::spawn_reaper);
        // The run's connections before this core's (about): where its source addresses start.
        let (before, first, per, total) = {
            let g = group.borrow();
            let cfg = g.book().config();
            let per = cfg.agents_per_conn.max(1);
            ((cfg.first / per) as usize, cfg.first, per, cfg.agents_total)
        };
        for c in (0..conns).take_while(|_| setup.is_ok()) {
            let (addr, transport, protocol) =
                (self.shared.addr, self.shared.transport, self.shared.protocol);
            let source = super::link::source_for(addr, before + c);
            let home = (self.shared.homing && protocol == Protocol::Native)
                .then(|| Home { key: Home::key_for(first + c as u32 * per, total) });
            match connect(addr, source, transport, protocol, ring.as_ref(), home).await {
                Ok((stream, control)) => {
                    let stream = Rc::new(RefCell::new(stream));
                    controls.borrow_mut().push(control);
                    group.borrow_mut().register(c);
                    let (g, f) = (group.clone(), failures.clone());
                    // HTTP connections are replaced when the server closes them.
                    let link = (self.shared.protocol == Protocol::Http).then(|| Link {
                        addr,
                        source,
                        ring: ring.clone(),
                        controls: controls.clone(),
                    });
                    tasks.push(glommio::spawn_local(reader(g, stream.clone(), c, f, link)));
                    tasks.push(glommio::spawn_local(writer(group.clone(), stream, c, 0)));
                    // Let it register now: a router closes a connection that stays silent past
                    // its handshake timeout, and thousands of connects can take longer.
                    glommio::executor().yield_task_queue_now().await;
                }
                Err(e) => {
                    setup = Err(e);
                    break;
                }
            }
        }
        if setup.is_ok() {
            let deadline = clock::now_ns() + REGISTER_TIMEOUT.as_nanos() as u64;
            let done = |g: &Group<A>| g.registered() != Ok(false) || g.connections_lost() > 0;
            let answered = wait_for(&group, deadline, done).await;
            setup = match group.borrow().registered() {
                _ if !failures.borrow().is_empty() => Err(failures.borrow()[0].clone()),
                Err(why) => Err(why),
                Ok(true) => Ok(()),
                Ok(false) if answered => {
                    Err("the router closed the connection during registration".into())
                }
                Ok(false) => Err(format!(
                    "no answer to registration within {} s",
                    REGISTER_TIMEOUT.as_secs()
                )),
            };
        }
        let schedule = match setup {
            Ok(()) => {
                let _ = self.ready.send(Ok(()));
                self.start.recv_async().await.ok().flatten()
            }
            Err(e) => {
                let _ = self.ready.send(Err(e));
                None
            }
        };
        let Some(schedule) = schedule else {
            let controls = controls.borrow().clone();
            return close(&group, &controls, tasks, ring.zip(reaper)).await;
        };
        let open = matches!(group.borrow().book().config().pacing, Pacing::Open { .. });
        group.borrow_mut().set_schedule(schedule);
        uring::sleep_until(schedule.start_ns).await;
        if let Some(rx) = self.side.take() {
            tasks.push(glommio::spawn_local(side(group.clone(), rx, side_waker)));
        }
        if open {
            tasks.push(glommio::spawn_local(pacer(group.clone())));
        } else {
            group.borrow_mut().start(clock::now_ns());
        }
        // The warm-up: only request timeouts to watch.
        loop {
            let now = clock::now_ns();
            if now >= schedule.measure_ns {
                break;
            }
            let next = expire(&mut group.borrow_mut(), now, &controls.borrow());
            watch_or_sleep(&mut group.borrow_mut(), ring.as_deref());
            uring::sleep_until(next.min(schedule.measure_ns).min(now + MONITOR_NS)).await;
        }
        let mut sampler = self
            .shared
            .interval
            .map(|every| Sampler::new(every, schedule.measure_ns, &group.borrow()));
        let (cpu_busy, drain_timed_out) = self
            .measure(&group, &failures, &controls, schedule, sampler.as_mut(), ring.as_deref())
            .await;
        self.stop_barrier(&group).await;
        let farewell = group.borrow_mut().farewell();
        if farewell {
            let deadline = clock::now_ns() + FAREWELL_TIMEOUT.as_nanos() as u64;
            wait_for(&group, deadline, Group::farewell_done).await;
        }
        let breakdown = group.borrow().breakdown();
        let coordination = group.borrow().coordination();
        let (counters, latencies, in_flight, conns_lost, end_ns, last) = {
            let mut g = group.borrow_mut();
            if g.in_flight() > 0 {
                g.give_up(GaveUp::Aborted);
            }
            g.stop();
            let end_ns = g.book().schedule().end_ns;
            // The rest of the run, up to now, taken with the totals and without an await in
            // between (a reader could record one more answer): the intervals add up to the whole.
            let last = sampler.as_mut().map(|s| s.take(&g, clock::now_ns()));
            (
                g.counters().clone(),
                g.latencies().clone(),
                g.in_flight(),
                g.connections_lost(),
                end_ns,
                last,
            )
        };
        if let Some(last) = last {
            let _ = self.result.send_async(CoreMsg::Interval(self.index, last)).await;
        }
        let controls = controls.borrow().clone();
        close(&group, &controls, tasks, ring.zip(reaper)).await;
        let failures = failures.borrow().clone();
        let result = CoreResult {
            counters,
            latencies,
            cpu_busy,
            in_flight,
            drain_timed_out,
            conns,
            conns_lost,
            end_ns,
            failures,
            breakdown,
            coordination,
        };
        let _ = self.result.send_async(CoreMsg::Done(Box::new(result))).await;
    }

    /// The measured window and the drain: returns the core's busy share until sending ended,
    /// and whether answers stopped coming (stall or drain timeout).
    async fn measure<A: Adapter>(
        &self,
        group: &Rc<RefCell<Group<A>>>,
        failures: &Rc<RefCell<Vec<String>>>,
        controls: &RefCell<Vec<Rc<SocketHandle>>>,
        schedule: Schedule,
        mut sampler: Option<&mut Sampler>,
        ring: Option<&uring::Ring>,
    ) -> ((f64, f64), bool) {
        let mut watch = Watch {
            cpu0: thread_times(),
            cpu_busy: None,
            progress: (clock::now_ns(), u64::MAX),
            measure_ns: schedule.measure_ns,
        };
        loop {
            if let Some(s) = sampler.as_deref_mut().filter(|s| clock::now_ns() >= s.due_ns()) {
                let sample = s.take(&group.borrow(), clock::now_ns());
                let _ = self.result.send_async(CoreMsg::Interval(self.index, sample)).await;
            }
            let step = self.check(&mut group.borrow_mut(), &mut watch, failures, controls);
            watch_or_sleep(&mut group.borrow_mut(), ring);
            let due = sampler.as_deref().map_or(u64::MAX, Sampler::due_ns);
            match step {
                Step::Done(timed_out) => {
                    // Sending never ended (every connection lost, a stall): busy until now.
                    let wall = clock::now_ns().saturating_sub(watch.measure_ns);
                    let busy = watch.cpu_busy.unwrap_or_else(|| thread_shares(watch.cpu0, wall));
                    return (busy, timed_out);
                }
                Step::Wait(until) => wait_for(group, until.min(due), drained).await,
            };
        }
    }

    /// One look at the group: is the run over, and if not, until when to wait.
    fn check<A: Adapter>(
        &self,
        g: &mut Group<A>,
        w: &mut Watch,
        failures: &Rc<RefCell<Vec<String>>>,
        controls: &RefCell<Vec<Rc<SocketHandle>>>,
    ) -> Step {
        let now = clock::now_ns();
        let timeout_ns = self.shared.drain_timeout.as_nanos() as u64;
        g.refresh(now);
        let next_timeout = expire(g, now, &controls.borrow());
        if self.shared.interrupt.as_ref().is_some_and(Interrupt::is_raised) {
            g.end_sending(now);
        }
        if g.finished() && w.cpu_busy.is_none() {
            w.cpu_busy = Some(thread_shares(w.cpu0, now.saturating_sub(w.measure_ns)));
        }
        if drained(g) {
            return Step::Done(false);
        }
        let c = g.counters();
        let answered = c.replies_delivered + c.request_error_total() + c.unanswered_total();
        if answered != w.progress.1 {
            w.progress = (now, answered);
        }
        // Drain timeout once sending stopped; stall timeout (no answer at all) before.
        if g.in_flight() > 0 && now.saturating_sub(w.progress.0) > timeout_ns {
            let since = w.progress.0 as f64 / 1e9 - w.measure_ns as f64 / 1e9;
            let when = if since >= 0.0 {
                format!("{since:.2} s into the measured window")
            } else {
                format!("{:.2} s before the measured window (in the warm-up)", -since)
            };
            failures.borrow_mut().push(format!(
                "the {} stalled: no reply or error for {:.1} s from {when} on (what was in flight is counted as drain_timeout)",
                self.shared.peer(),
                self.shared.drain_timeout.as_secs_f64()
            ));
            g.give_up(GaveUp::DrainTimeout);
            return Step::Done(true);
        }
        let mut until = (now + MONITOR_NS).min(w.progress.0 + timeout_ns + 1).min(next_timeout);
        if !g.finished() {
            until = until.min(g.book().schedule().end_ns);
        }
        Step::Wait(until)
    }

    /// Keeps answering other cores' requests until every core has drained its own, so that
    /// no agent leaves while another core may still send to it (bounded by the drain timeout).
    async fn stop_barrier<A: Adapter>(&self, group: &Rc<RefCell<Group<A>>>) {
        let _ = self.result.send_async(CoreMsg::Drained(self.index)).await;
        // Other workers may still be draining: allow them their drain timeout too.
        let deadline = clock::now_ns() + 2 * self.shared.drain_timeout.as_nanos() as u64;
        while !self.shared.leave.load(Ordering::Acquire) && clock::now_ns() < deadline {
            if group.borrow().connections_lost() == group.borrow().connections() {
                return;
            }
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// Whether this core's ring watches for answers before it sleeps, by the round trips since the
/// last look: only while most are short ([`uring::SPIN_RTT_MAX`]). No answer since: as it was.
fn watch_or_sleep<A: Adapter>(g: &mut Group<A>, ring: Option<&uring::Ring>) {
    if let (Some(ring), Some(short)) = (ring, g.short_round_trips()) {
        ring.set_watch(short);
    }
}

/// Requests past `--timeout` as of `now_ns`: an HTTP/1.1 connection holding one is shut down
/// (its reader replaces it). Returns when the next timeout is due.
fn expire<A: Adapter>(g: &mut Group<A>, now_ns: u64, controls: &[Rc<SocketHandle>]) -> u64 {
    let mut close = Vec::new();
    let next = g.expire(now_ns, &mut close);
    for c in close {
        controls[c].shutdown();
    }
    next
}

/// What the monitor keeps between looks.
struct Watch {
    /// The thread's CPU and watch times when the window began ([`thread_times`]).
    cpu0: (u64, u64),
    cpu_busy: Option<(f64, f64)>,
    /// When the count of answers last moved, and that count.
    progress: (u64, u64),
    measure_ns: u64,
}

/// What the monitor does next.
enum Step {
    /// Wait until this time, or until the group wakes the monitor.
    Wait(u64),
    /// The run is over; `true` when answers stopped coming.
    Done(bool),
}

/// Every request answered after sending ended, or every connection gone.
fn drained<A: Adapter>(g: &Group<A>) -> bool {
    (g.finished() && g.in_flight() == 0) || g.connections_lost() == g.connections()
}

/// Shuts every connection down and waits (bounded) for its tasks to see it and finish.
/// Then, with `--agent-io uring`, stops the ring once its operations ended (bounded too).
async fn close<A: Adapter>(
    group: &Rc<RefCell<Group<A>>>,
    controls: &[Rc<SocketHandle>],
    tasks: Vec<glommio::Task<()>>,
    ring: Option<(Rc<uring::Ring>, glommio::Task<()>)>,
) {
    group.borrow_mut().stop();
    for c in controls {
        c.shutdown();
    }
    let deadline = Duration::from_secs(2);
    for t in tasks {
        if within(deadline, t).await.is_none() {
            break;
        }
    }
    if let Some((ring, reaper)) = ring {
        ring.stop();
        let _ = within(Duration::from_secs(3), reaper).await;
    }
}

/// What a reader needs to replace its connection (HTTP).
struct Link {
    addr: SocketAddr,
    source: Option<std::net::IpAddr>,
    ring: Option<Rc<uring::Ring>>,
    /// Every connection's handle, for shutting it down (the replacement's takes its place).
    controls: Rc<RefCell<Vec<Rc<SocketHandle>>>>,
}

/// Replaces connection `c` that ended under the run: what was on its wire is resolved, a new
/// connection from the same source takes its place, with a new writer. `None` when it is not to
/// be replaced (the run stopped; a connection that never answered) or cannot be (the reason is
/// a failure of the run): the caller then counts it lost.
async fn reopen<A: Adapter + 'static>(
    group: &Rc<RefCell<Group<A>>>,
    c: usize,
    failures: &RefCell<Vec<String>>,
    link: Option<&Link>,
) -> Option<Rc<RefCell<Guarded<AgentStream>>>> {
    let link = link?;
    link.controls.borrow()[c].shutdown();
    let generation = group.borrow_mut().reset_connection(c)?;
    let ring = link.ring.as_ref();
    match connect(link.addr, link.source, Transport::Tcp, Protocol::Http, ring, None).await {
        Ok((stream, control)) => {
            link.controls.borrow_mut()[c] = control;
            let stream = Rc::new(RefCell::new(stream));
            glommio::spawn_local(writer(group.clone(), stream.clone(), c, generation)).detach();
            group.borrow_mut().reopened(c);
            Some(stream)
        }
        Err(e) => {
            failures.borrow_mut().push(format!("the server closed a connection, and {e}"));
            None
        }
    }
}

/// Why input that the adapter refused (`e`) ends its connection, for the report.
fn failure(http: bool, e: String, input: &[u8]) -> String {
    if http {
        e
    } else if input.starts_with(b"HTTP/") {
        "the peer speaks HTTP, not a2a-bench frames (a WebSocket router takes ws://)".to_string()
    } else {
        format!("undecodable input from the router: {e}")
    }
}

/// Hands the first part of `all` to `handle`: its first `chunk` bytes (`handle` takes the whole
/// messages there and says how many bytes they were), or all of it when they hold no whole
/// message. Returns how many bytes were offered, and what `handle` said; the caller offers the
/// rest once what this part produced is on its way ([`INPUT_CHUNK`]).
fn in_parts<E>(
    all: &[u8],
    chunk: usize,
    mut handle: impl FnMut(&[u8]) -> Result<usize, E>,
) -> (usize, Result<usize, E>) {
    if all.len() > chunk {
        match handle(&all[..chunk]) {
            Ok(0) => {}
            done => return (chunk, done),
        }
    }
    (all.len(), handle(all))
}

async fn reader<A: Adapter + 'static>(
    group: Rc<RefCell<Group<A>>>,
    mut stream: Rc<RefCell<Guarded<AgentStream>>>,
    c: usize,
    failures: Rc<RefCell<Vec<String>>>,
    link: Option<Link>,
) {
    let http = link.is_some();
    let mut buf = vec![0u8; 64 << 10];
    let mut filled = 0;
    // On a socket ring the input is handled where the ring received it (no copy); a partial
    // message waits there unless it grows past `uring::LEND_MAX`, then it moves to `buf`.
    let mut move_out = false;
    // The input was cut at `INPUT_CHUNK`: the rest is lent again at once.
    let mut cut = false;
    loop {
        if filled == 0 && !move_out {
            let again = std::mem::take(&mut cut);
            let lent = poll_fn(|cx| {
                let stream = stream.borrow();
                let Some(ring) = stream.lender() else { return Poll::Ready(None) };
                ring.poll_lend(cx, again, |all| {
                    let mut g = group.borrow_mut();
                    let now = clock::now_ns();
                    let chunk = if http { usize::MAX } else { INPUT_CHUNK };
                    let (bytes, handled) =
                        in_parts(all, chunk, |bytes| g.on_input_quiet(c, bytes, now));
                    cut = bytes < all.len();
                    match handled {
                        Ok(used) => (used, Ok(())),
                        Err(e) => (0, Err(failure(http, e, &all[..bytes]))),
                    }
                })
                .map(Some)
            })
            .await;
            if let Some(lent) = lent {
                match lent {
                    Ok(Some(Ok(()))) => {}
                    Ok(Some(Err(why))) => {
                        failures.borrow_mut().push(why);
                        return group.borrow_mut().connection_lost(c);
                    }
                    Ok(None) | Err(_) => match reopen(&group, c, &failures, link.as_ref()).await {
                        Some(s) => {
                            stream = s;
                            continue;
                        }
                        None => return group.borrow_mut().connection_lost(c),
                    },
                }
                if http && group.borrow().must_reopen(c) {
                    match reopen(&group, c, &failures, link.as_ref()).await {
                        Some(s) => stream = s,
                        None => return group.borrow_mut().connection_lost(c),
                    }
                } else {
                    // What the input produced goes out now, with no writer task to run.
                    let stream = stream.borrow();
                    let ring = stream.lender();
                    group.borrow_mut().send_now(c, |buf| ring.is_some_and(|r| r.send_owned(buf)));
                    if cut {
                        // The peer starts on this while the rest is handled.
                        if let Some(r) = ring {
                            r.submit_now();
                        }
                    }
                    move_out = !cut && ring.is_some_and(|r| r.unread() >= uring::LEND_MAX);
                }
                // The next lend waits for the ring's next pass (only the reaper adds input):
                // no yield is needed for other tasks to run, and none costs a task run.
                if move_out {
                    yield_now().await;
                }
                continue;
            }
        }
        move_out = false;
        if filled == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        let read =
            poll_fn(|cx| Pin::new(&mut *stream.borrow_mut()).poll_read(cx, &mut buf[filled..]))
                .await;
        let n = match read {
            Ok(n) if n > 0 => n,
            _ => match reopen(&group, c, &failures, link.as_ref()).await {
                Some(s) => {
                    (stream, filled) = (s, 0);
                    continue;
                }
                None => return group.borrow_mut().connection_lost(c),
            },
        };
        filled += n;
        let used = group.borrow_mut().on_input(c, &buf[..filled], clock::now_ns());
        match used {
            Ok(used) => {
                buf.copy_within(used..filled, 0);
                filled -= used;
                // The server said it closes this connection: replace it now.
                if http && group.borrow().must_reopen(c) {
                    match reopen(&group, c, &failures, link.as_ref()).await {
                        Some(s) => (stream, filled) = (s, 0),
                        None => return group.borrow_mut().connection_lost(c),
                    }
                }
            }
            Err(e) => {
                failures.borrow_mut().push(failure(http, e, &buf[..filled]));
                return group.borrow_mut().connection_lost(c);
            }
        }
        yield_now().await;
    }
}

/// Writes what connection `c` (its generation `generation`) has to send, until the run stops or
/// the connection is replaced.
async fn writer<A: Adapter>(
    group: Rc<RefCell<Group<A>>>,
    stream: Rc<RefCell<Guarded<AgentStream>>>,
    c: usize,
    generation: u32,
) {
    while let Some(mut buf) = poll_fn(|cx| group.borrow_mut().poll_output(c, generation, cx)).await
    {
        // A socket ring takes the buffer itself (no copy), once what it holds is on its way.
        let owned = poll_fn(|cx| match stream.borrow().lender() {
            Some(ring) => ring.poll_send_owned(cx, &mut buf),
            None => Poll::Ready(false),
        })
        .await;
        let written = match owned {
            true => Ok(()),
            false => match write_all(&stream, &buf).await {
                Ok(()) => poll_fn(|cx| Pin::new(&mut *stream.borrow_mut()).poll_flush(cx)).await,
                Err(e) => Err(e),
            },
        };
        group.borrow_mut().output_done(buf);
        if written.is_err() {
            return;
        }
    }
}

/// Coordination workloads: completions from other cores and the adapter's timers (lock holds
/// ending), handled as they come; looks at the stop flag at least every `MONITOR_NS`.
async fn side<A: Adapter>(
    group: Rc<RefCell<Group<A>>>,
    rx: flume::Receiver<Completed>,
    waker: SideWaker,
) {
    loop {
        let until = {
            let g = group.borrow();
            if g.is_stopped() {
                return;
            }
            g.next_timer_ns().unwrap_or(u64::MAX).min(clock::now_ns() + MONITOR_NS)
        };
        let msg = side_wait(&rx, until, &waker).await;
        let mut g = group.borrow_mut();
        let now = clock::now_ns();
        g.on_side(msg, now);
        while let Ok(m) = rx.try_recv() {
            g.on_side(Some(m), now);
        }
    }
}

/// The next message on the side channel, or None at `until`; while it waits, the task's
/// waker is in `waker` for [`side_drain`].
async fn side_wait(
    rx: &flume::Receiver<Completed>,
    until: u64,
    waker: &SideWaker,
) -> Option<Completed> {
    let mut wait = std::pin::pin!(or(async { rx.recv_async().await.ok() }, async {
        uring::sleep_until(until).await;
        None
    }));
    poll_fn(|cx| {
        let out = std::future::Future::poll(wait.as_mut(), cx);
        waker.set(out.is_pending().then(|| cx.waker().clone()));
        out
    })
    .await
}

/// What the ring runs when a doorbell ended its doze ([`uring::Ring::set_peers`]): wakes the
/// waiting side task on this thread when its channel holds anything (it then runs at the
/// reaper's next yield); true when it did.
fn side_drain(rx: flume::Receiver<Completed>, waker: SideWaker) -> Box<dyn Fn() -> bool> {
    Box::new(move || !rx.is_empty() && waker.take().map(|w| w.wake()).is_some())
}

/// Open loop: sends what is due, then sleeps until the next due send; no fixed tick.
async fn pacer<A: Adapter>(group: Rc<RefCell<Group<A>>>) {
    loop {
        let next = {
            let mut g = group.borrow_mut();
            if g.is_stopped() {
                return;
            }
            g.tick(clock::now_ns())
        };
        match next {
            Some(t) => uring::sleep_until(t).await,
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_core_s_messages_end_the_doze_not_a_park() {
        // Proves an agent core of a coordination workload dozes in its socket ring between
        // other cores' messages instead of parking in glommio (a process-wide `membarrier`
        // per park here: a third of the agent core in `delegation`). Each message, sent from
        // another thread and followed by the doorbell, ends the doze and the side task runs at
        // once; it answers over a socket of the ring, as an agent core's work does. Without
        // the doorbell's drain the task's wake waited in glommio's queue until the doze ended
        // empty and the ring parked: one park per message.
        if uring::supported().is_err() {
            return;
        }
        const N: u32 = 300;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = flume::bounded::<Completed>(4);
        let bell = uring::Doorbell::new().unwrap();
        let ringer = bell.clone();
        let other = std::thread::spawn(move || {
            use std::io::Read;
            let mut answers = std::net::TcpStream::connect(addr).unwrap();
            answers.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            for i in 0..N {
                tx.send(Completed { local: i, slot: 0, seq: i }).unwrap();
                ringer.ring();
                let mut b = [0u8; 1];
                answers.read_exact(&mut b).unwrap();
                assert_eq!(b[0], i as u8, "answered in order");
            }
        });
        let (socket, _) = listener.accept().unwrap();
        socket.set_nonblocking(true).unwrap();
        let parks = LocalExecutorBuilder::new(Placement::Unbound)
            .spawn(move || async move {
                use futures_lite::AsyncWriteExt;
                let ring = uring::Ring::new().unwrap();
                let waker = SideWaker::default();
                ring.set_doze(true);
                ring.set_peers(bell, side_drain(rx.clone(), waker.clone()));
                let reaper = ring.spawn_reaper();
                let mut answers = ring.stream(socket.into());
                let mut before = 0;
                for i in 0..N {
                    let until = clock::now_ns() + 10_000_000_000;
                    let m = side_wait(&rx, until, &waker).await.unwrap();
                    assert_eq!(m.local, i);
                    answers.write_all(&[i as u8]).await.unwrap();
                    answers.flush().await.unwrap();
                    if i == 0 {
                        // The ring was idle before the first message, and parked.
                        before = ring.parks();
                    }
                }
                let parks = ring.parks() - before;
                drop(answers);
                ring.stop();
                reaper.await;
                parks
            })
            .unwrap()
            .join()
            .unwrap();
        other.join().unwrap();
        assert!(parks < u64::from(N) / 4, "{parks} parks for {N} messages");
    }

    #[test]
    fn input_is_handed_over_a_part_at_a_time_in_whole_messages() {
        // Messages of `size` bytes: the handler takes the whole ones it was offered.
        let whole = |size: usize| move |b: &[u8]| Ok::<usize, ()>(b.len() / size * size);
        let all = vec![0u8; 300_000];
        assert_eq!(in_parts(&all, 128 << 10, whole(1000)), (131_072, Ok(131_000)), "a part");
        assert_eq!(in_parts(&all[..100_000], 128 << 10, whole(1000)), (100_000, Ok(100_000)));
        // A message bigger than a part: offered all at once.
        assert_eq!(in_parts(&all, 128 << 10, whole(200_000)), (300_000, Ok(200_000)));
        assert_eq!(in_parts(&all, usize::MAX, whole(1000)), (300_000, Ok(300_000)), "no parts");
        // An error in the first part is the answer.
        assert_eq!(in_parts(&all, 1000, |_| Err::<usize, ()>(())), (1000, Err(())));
    }

    #[test]
    fn a_core_whose_thread_panics_says_so_instead_of_leaving_the_run_waiting() {
        // Proves the last word: a panic in any task of an agent core's executor ends its
        // thread with the core's state (its senders too) never dropped; the coordinator still
        // hears that the core died, and why, on both channels it may be waiting on.
        let (ready_tx, ready_rx) = flume::unbounded();
        let (result_tx, result_rx) = flume::bounded(4);
        let core = LocalExecutorBuilder::new(Placement::Unbound)
            .spawn(move || async move {
                LastWord::arm(3, &ready_tx, &result_tx);
                let state = Rc::new(RefCell::new(Some((ready_tx, result_tx))));
                let cycle = state.clone();
                glommio::spawn_local(async move {
                    let _held = cycle;
                    panic!("a bug in a task");
                })
                .detach();
                futures_lite::future::pending::<()>().await;
                drop(state);
            })
            .unwrap();
        match result_rx.recv_timeout(Duration::from_secs(20)) {
            Ok(CoreMsg::Died(3, why)) => {
                assert!(why.starts_with("agent core 3 stopped: panicked at "), "{why}");
                assert!(why.ends_with(": a bug in a task"), "{why}");
            }
            Ok(_) => panic!("the core sent something else"),
            Err(e) => panic!("the core's death went unheard: {e}"),
        }
        assert!(matches!(ready_rx.try_recv(), Ok(Err(why)) if why.contains("a bug in a task")));
        assert!(core.join().is_err());
    }

    #[test]
    fn a_core_that_ends_as_it_should_says_nothing_more() {
        // Proves the last word is disarmed when the core ends normally.
        let (ready_tx, ready_rx) = flume::unbounded();
        let (result_tx, result_rx) = flume::bounded::<CoreMsg>(4);
        let core = LocalExecutorBuilder::new(Placement::Unbound)
            .spawn(move || async move {
                LastWord::arm(1, &ready_tx, &result_tx);
                LastWord::disarm();
            })
            .unwrap();
        core.join().unwrap();
        assert!(ready_rx.try_recv().is_err());
        assert!(result_rx.try_recv().is_err());
    }

    #[test]
    fn a_core_that_stands_still_is_woken_and_the_run_says_so() {
        // A thread with a heartbeat that sleeps in a system call nothing else would end (a
        // read on a pipe nobody writes to), as a core does when its wake-up is lost. Once
        // awake it beats again and stops.
        let (rx, _tx) = nix::unistd::pipe().unwrap();
        let beat = Beat::new();
        let b = beat.clone();
        let (started_tx, started_rx) = flume::bounded(1);
        let t = std::thread::spawn(move || {
            b.start();
            let _ = started_tx.send(());
            let mut buf = [0u8; 1];
            let got = nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(&rx), &mut buf);
            b.beat();
            got
        });
        started_rx.recv().unwrap();
        let beats = vec![(7, beat.clone())];
        let mut watch = CoreWatch::new(1, Duration::from_millis(30));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !t.is_finished() {
            assert!(std::time::Instant::now() < deadline, "the stuck thread was never woken");
            watch.look(&beats, "router");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(t.join().unwrap(), Err(nix::errno::Errno::EINTR));
        assert!(beat.kicks() >= 1);
        watch.look(&beats, "router"); // its fresh beat: it turns again
        let said = watch.finish(&beats, "router");
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].starts_with("agent core 0 (core 7) stood still for"), "{}", said[0]);
        assert!(said[0].contains("the generator, not the router"), "{}", said[0]);

        // A core that keeps beating is never kicked, and nothing is said.
        let steady = Beat::new();
        steady.start();
        let beats = vec![(0, steady.clone())];
        let mut watch = CoreWatch::new(1, Duration::from_secs(60));
        watch.look(&beats, "router");
        assert_eq!(steady.kicks(), 0);
        assert!(watch.finish(&beats, "router").is_empty());

        // A core still standing still when the run ends is said too, with its core.
        let mut watch = CoreWatch::new(1, Duration::from_secs(60));
        watch.since[0] = Some(clock::now_ns());
        let said = watch.finish(&[(5, steady)], "router");
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].starts_with("agent core 0 (core 5) stood still for"), "{}", said[0]);
        assert!(said[0].contains("until the run ended"), "{}", said[0]);
    }
}
