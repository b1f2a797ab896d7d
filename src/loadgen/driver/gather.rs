//! The coordinating thread's side of a run: it waits for the agent cores while reading the
//! router at the measured window's edges, lets the cores leave once all drained, and merges
//! what they hand back into the run's [`Outcome`].

use super::*;
use crate::host::CpuTimes;
use crate::loadgen::{BeforeLeave, RouterProbe, WindowCounts};

/// What the coordinating thread gathered while the cores ran.
pub(super) struct Gathered {
    results: Vec<CoreResult>,
    /// Why each core that ended without its result ended.
    died: Vec<String>,
    /// What `before_leave` said went wrong.
    leave_failure: Option<String>,
    /// The router's threads' times at the window's edges.
    router_before: Probe,
    router_after: Probe,
    /// The router's counters at the window's edges.
    counts_before: Option<WindowCounts>,
    counts_after: Option<WindowCounts>,
    /// The machine's and the target's CPU times at the window's edges.
    cpu_before: Option<CpuTimes>,
    cpu_after: Option<CpuTimes>,
    series: Series,
    watch: CoreWatch,
}

/// The hooks the wait runs (see [`Hooks`]).
pub(super) struct WaitHooks<'a> {
    pub(super) probe: Option<&'a dyn RouterProbe>,
    pub(super) at_measure_start: Option<Box<dyn FnOnce() + Send>>,
    pub(super) on_interval: Option<&'a mut dyn FnMut(&Interval)>,
    pub(super) before_leave: Option<BeforeLeave<'a>>,
    pub(super) target_pids: &'a [u32],
}

/// Waits for the cores, reading the router's counters at the window's edges meanwhile; a core
/// that ends early (every connection lost) ends the wait early.
pub(super) fn wait(
    started: &Started,
    shared: &Shared,
    schedule: Schedule,
    hooks: WaitHooks<'_>,
) -> Gathered {
    let WaitHooks { probe, at_measure_start: mut hook, mut on_interval, before_leave, target_pids } =
        hooks;
    let Schedule { measure_ns, end_ns, .. } = schedule;
    let cores = started.len();
    let mut g = Gathered {
        results: Vec::new(),
        died: Vec::new(),
        leave_failure: None,
        router_before: None,
        router_after: None,
        counts_before: None,
        counts_after: None,
        cpu_before: None,
        cpu_after: None,
        series: Series {
            cores: shared.cores,
            open: Default::default(),
            done: Vec::new(),
            router: None,
        },
        watch: CoreWatch::new(started.beats.len(), CORE_STALL),
    };
    let (mut before, mut after): (Option<Probe>, Option<Probe>) = (None, None);
    let (mut drained, mut leave_hook) = (vec![false; cores], before_leave);
    while g.results.len() + g.died.len() < cores {
        g.watch.look(&started.beats, shared.peer());
        let now = clock::now_ns();
        if before.is_none() && now >= measure_ns {
            g.cpu_before = CpuTimes::with_target(target_pids);
            before = Some(probe.map(read_probe));
            g.counts_before = probe.map(|p| p.window_counts());
            g.series.router = before.clone().flatten();
            if let Some(h) = hook.take() {
                h();
            }
        }
        if after.is_none() && end_ns != u64::MAX && now >= end_ns {
            g.cpu_after = CpuTimes::with_target(target_pids);
            after = Some(probe.map(read_probe));
            g.counts_after = probe.map(|p| p.window_counts());
        }
        let next = if before.is_none() {
            measure_ns
        } else if after.is_none() && end_ns != u64::MAX {
            end_ns
        } else {
            u64::MAX
        };
        let wait = Duration::from_nanos(next.saturating_sub(now)).min(WATCH_EVERY);
        let got = started.result_rx.recv_timeout(wait);
        // A core that died waits at no barrier: the others need not wait for it.
        let mut gone = |core: usize| {
            if let Some(d) = drained.get_mut(core) {
                *d = true;
            }
            if drained.iter().all(|&d| d) && !shared.leave.load(Ordering::Acquire) {
                g.leave_failure = leave_hook.take().and_then(|f| f());
                shared.leave.store(true, Ordering::Release);
            }
        };
        match got {
            Ok(CoreMsg::Drained(core)) => gone(core),
            Ok(CoreMsg::Died(core, why)) => {
                gone(core);
                g.died.push(why);
            }
            Ok(CoreMsg::Done(r)) => g.results.push(*r),
            Ok(CoreMsg::Interval(core, sample)) => {
                if let Some(index) = g.series.add(core, sample) {
                    if let (Some(iv), Some(f)) =
                        (g.series.finish(index, probe), on_interval.as_mut())
                    {
                        f(iv);
                    }
                }
            }
            Err(flume::RecvTimeoutError::Timeout) => {}
            Err(flume::RecvTimeoutError::Disconnected) => break,
        }
    }
    if after.is_none() {
        g.counts_after = probe.map(|p| p.window_counts());
        g.cpu_after = g.cpu_before.and_then(|_| CpuTimes::with_target(target_pids));
    }
    g.router_before = before.flatten();
    g.router_after = after.flatten().or_else(|| probe.map(read_probe));
    g
}

/// The run's outcome from what the cores handed back: counters, histograms and CPU merged,
/// every failure said once, the measured window as it was.
pub(super) fn outcome(
    scenario: &Scenario,
    shared: &Shared,
    started: &Started,
    schedule: Schedule,
    g: Gathered,
    probe: Option<&dyn RouterProbe>,
) -> Outcome {
    let Gathered {
        results,
        died,
        leave_failure,
        router_before,
        router_after,
        counts_before,
        counts_after,
        cpu_before,
        cpu_after,
        mut series,
        watch,
    } = g;
    let mut o = Outcome::empty();
    let (mut conns, mut lost, mut failures) = (0, 0, Vec::new());
    let end_ns = results.iter().map(|r| r.end_ns).fold(schedule.end_ns, u64::min);
    for r in &results {
        for b in &r.breakdown {
            match o.breakdown.iter_mut().find(|x| x.pattern == b.pattern) {
                Some(x) => x.merge(b),
                None => o.breakdown.push(b.clone()),
            }
        }
        super::super::mix::SizeStats::merge(&mut o.sizes, &r.sizes);
        crate::metrics::merge_each(&mut o.hops, &r.hops);
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
    if results.len() + died.len() < started.len() {
        failures.push("an agent core stopped without reporting".into());
    }
    failures.extend(died);
    failures.extend(leave_failure);
    o.stalls = watch.finish(&started.beats, shared.peer());
    failures.extend(o.stalls.iter().cloned());
    o.failures = dedupe(failures);
    o.all_connections_lost = conns > 0 && lost == conns;
    o.connections = conns;
    o.interrupted = shared.interrupt.as_ref().is_some_and(|i| i.is_raised());
    o.partial = scenario.slice.is_some_and(|(_, count)| count < scenario.agents);
    o.fan = scenario.workload.deliveries_per_op(scenario.agents);
    let last = o.counters.last_measured_delivery_ns;
    let measure_ns = schedule.measure_ns;
    o.window_ns = match end_ns {
        u64::MAX => last.saturating_sub(measure_ns),
        // A run cut short by lost connections measured until its last delivery.
        end if o.all_connections_lost => last.min(end).saturating_sub(measure_ns),
        end => end.saturating_sub(measure_ns),
    };
    (o.router_cpu, o.router_watch) = router_cpu(router_before, router_after).unzip();
    o.cpu_window = cpu_before.zip(cpu_after);
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
