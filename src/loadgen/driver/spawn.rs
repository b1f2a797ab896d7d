//! Starting a run's agent cores: one glommio executor per core, its agents connected and
//! registered before the coordinating thread fixes the common schedule.

use super::*;
use crate::loadgen::BeforeStart;

/// The agent cores of a run, started.
pub(super) struct Started {
    /// Each core's start line: the schedule, or `None` to end it before it began.
    starts: Vec<flume::Sender<Option<Schedule>>>,
    pub(super) joins: Vec<glommio::ExecutorJoinHandle<()>>,
    /// Each core's heartbeat, watched while the run lasts (`CoreWatch`).
    pub(super) beats: Vec<(usize, Arc<Beat>)>,
    /// Cores that could not start.
    failures: Vec<String>,
    /// Each core says here whether its set-up succeeded.
    ready_rx: flume::Receiver<Result<(), String>>,
    /// Bounded: at most a few intervals per core wait while the coordinator reads.
    pub(super) result_rx: flume::Receiver<CoreMsg>,
}

/// One agent core's share of a run: agents `first..first + count`, seated on its own
/// connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Span {
    pub first: u32,
    pub count: u32,
    pub seats: Seats,
}

impl Span {
    /// The connections this core opens.
    pub fn conns(&self) -> u32 {
        if self.count == 0 {
            return 0;
        }
        self.seats.conns(self.count)
    }
}

/// Each core's share of this process's slice of the run.
pub(super) fn spans(scenario: &Scenario) -> Vec<Span> {
    let (base, mine) = scenario.slice.unwrap_or((0, scenario.agents));
    let cores = scenario.agent_cores.len();
    match scenario.connections {
        Some(n) => {
            // A worker's slice takes its share of the run's connections, at least one.
            let total = u64::from(scenario.agents.max(1));
            let edge = |x: u32| u64::from(x) * u64::from(n) / total;
            let n = (edge(base + mine) - edge(base)).max(1) as u32;
            spread(base, mine, cores, n)
        }
        None => split(base, mine, cores, scenario.agents_per_conn),
    }
}

/// Agents `base..base + mine` over `cores` cores, `per` to a connection: the cores split the
/// connections, so that only the last one of all holds fewer than `per` agents (105 agents at
/// 10 a connection open 11, where an even split of the agents opened 6 on each of two cores).
pub(super) fn split(base: u32, mine: u32, cores: usize, per: u32) -> Vec<Span> {
    let (cores, per) = (cores.max(1) as u64, per.max(1));
    let conns = u64::from(mine).div_ceil(u64::from(per));
    let edge = |i: u64| (u64::from(per) * (i * conns / cores)).min(u64::from(mine)) as u32;
    let seats = Seats::Packed(per);
    (0..cores)
        .map(|i| Span { first: base + edge(i), count: edge(i + 1) - edge(i), seats })
        .collect()
}

/// Agents `base..base + mine` over exactly `conns` connections (at most one per agent), the
/// agents spread evenly over them and the connections over `cores` cores: 100 clients on 64
/// connections open 64 (36 with two clients, 28 with one), where 2 to a connection opened 50.
pub(super) fn spread(base: u32, mine: u32, cores: usize, conns: u32) -> Vec<Span> {
    let (cores, n, m) =
        (cores.max(1) as u64, u64::from(conns.clamp(1, mine.max(1))), u64::from(mine));
    // Connections before core `i`, and agents before connection `c`.
    let conn_edge = |i: u64| i * n / cores;
    let agent_edge = |c: u64| (c * m / n) as u32;
    (0..cores)
        .map(|i| {
            let (c0, c1) = (conn_edge(i), conn_edge(i + 1));
            let (a0, a1) = (agent_edge(c0), agent_edge(c1));
            Span { first: base + a0, count: a1 - a0, seats: Seats::Even((c1 - c0) as u32) }
        })
        .collect()
}

/// The connections a run of `scenario` opens over every agent core of this process.
pub fn connections_opened(scenario: &Scenario) -> u32 {
    opened(&spans(scenario))
}

pub(super) fn opened(spans: &[Span]) -> u32 {
    spans.iter().map(Span::conns).sum()
}

/// Starts an executor for every core with agents (`spans`), each running its group of the
/// protocol's adapter.
pub(super) fn start_cores(scenario: &Scenario, spans: &[Span], shared: &Shared) -> Started {
    let n = scenario.agents;
    let slots: Vec<_> = scenario.agent_cores.iter().copied().enumerate().collect();
    let cores = slots.len().max(1);
    // Locks and barriers: one operation at a time per agent; fan-outs: at most the board's
    // slots.
    let pacing = scenario.effective_pacing();
    let window = match pacing {
        Pacing::Closed { window } | Pacing::Open { window, .. } => window,
    };
    let (coord, mut side_rx) = if !scenario.workload.coordinates() {
        (None, Vec::new())
    } else {
        let shares = spans.iter().map(|s| (s.first, s.count)).collect();
        let (c, rx) = Coord::new(scenario.workload, n, shares, window);
        (Some(Arc::new(c)), rx.into_iter().map(Some).collect())
    };
    // The push patterns: a new run for the notifications' receiver, whose channels reach the
    // cores (and whose doorbells end their rings' dozes).
    let push = shared.http.as_ref().and_then(|plan| plan.push.clone());
    if let Some(r) = &push {
        r.next_run();
    }
    let (ready_tx, ready_rx) = flume::unbounded::<Result<(), String>>();
    let (result_tx, result_rx) = flume::bounded::<CoreMsg>(cores * 8 + 8);
    let mut started = Started {
        starts: Vec::new(),
        joins: Vec::new(),
        beats: Vec::new(),
        failures: Vec::new(),
        ready_rx,
        result_rx,
    };
    for ((i, slot), span) in slots.into_iter().zip(spans) {
        let mut side = side_rx.get_mut(i).and_then(Option::take);
        if span.count == 0 {
            continue;
        }
        let index = started.starts.len();
        let push_side = push.as_ref().and_then(|r| r.side(index));
        let mut push_bell = None;
        if let Some(s) = push_side {
            (side, push_bell) = (Some(s.rx), s.bell);
        }
        let cfg = group_config(scenario, span);
        let (start_tx, start_rx) = flume::bounded::<Option<Schedule>>(1);
        let (ready, result, shared) = (ready_tx.clone(), result_tx.clone(), shared.clone());
        let coord = coord.clone();
        let beat = Beat::new();
        let core_beat = beat.clone();
        let spawned = executor(scenario, slot.core)
            .name(&format!("agents-{i}"))
            .io_memory(64 << 10)
            .spawn(move || async move {
                LastWord::arm(index, &ready, &result);
                core_beat.start();
                // Cancelled (dropped) when the core ends: a task left pending is never freed.
                let heart = glommio::spawn_local(heartbeat(core_beat.clone()));
                if let Some(w) = placement::pin_current_thread(slot) {
                    eprintln!("warning: {w}");
                }
                let bell = coord.as_ref().and_then(|c| c.bell(i)).or(push_bell);
                let beat = core_beat.clone();
                let core = Core { index, shared, start: start_rx, ready, result, side, bell, beat };
                run_core(core, cfg, coord).await;
                drop(heart);
                core_beat.end();
                LastWord::disarm();
            });
        match spawned {
            Ok(handle) => {
                started.starts.push(start_tx);
                started.joins.push(handle);
                started.beats.push((slot.core, beat));
            }
            Err(e) => started.failures.push(format!("starting agent core {}: {e}", slot.core)),
        }
    }
    started
}

/// The group of agents of `span` of `scenario`, as one core runs it.
fn group_config(scenario: &Scenario, span: &Span) -> GroupConfig {
    GroupConfig {
        topology: scenario.topology,
        agents_total: scenario.agents,
        first: span.first,
        count: span.count,
        id_base: scenario.id_base,
        seats: span.seats,
        pacing: scenario.effective_pacing(),
        stop: scenario.stop,
        payload_bytes: scenario.payload_bytes,
        payload_mix: scenario.payload_mix,
        batch_max: scenario.batch_max.max(1),
        compression: scenario.compression,
        late_after_ns: scenario.late_after.as_nanos() as u64,
        priority: scenario.priority,
        workload: scenario.workload,
    }
}

/// The executor of an agent core on `core`. Polling on glommio's streams: glommio's spin
/// (only on an executor it placed itself); a ring's reaper polls instead. Its blocking pool
/// connects to a remote server run there (`link::connect`), several at a time.
fn executor(scenario: &Scenario, core: usize) -> LocalExecutorBuilder {
    let builder = match scenario.poll && scenario.io == crate::transport::Io::Glommio {
        true => LocalExecutorBuilder::new(Placement::Fixed(core))
            .spin_before_park(crate::transport::POLL_IDLE),
        false => LocalExecutorBuilder::new(Placement::Unbound),
    };
    builder.blocking_thread_pool_placement(glommio::PoolPlacement::Unbound(DIALLERS))
}

/// One agent core's run with its protocol's adapter (and the coordination board, if the
/// workload has one).
async fn run_core(mut core: Core, cfg: GroupConfig, coord: Option<Arc<Coord>>) {
    // Hold timers and returns (one operation at a time) wake the core's side task.
    let poke =
        coord.as_ref().filter(|c| c.workload().one_at_a_time()).and_then(|c| c.poke(core.index));
    match (core.shared.protocol, coord) {
        (Protocol::Native, Some(coord)) => {
            let native = Native::with_coord(&cfg, coord, poke);
            core.run(Group::new(cfg, native)).await
        }
        (Protocol::Native, None) => core.run(Group::new(cfg.clone(), Native::new(&cfg))).await,
        (Protocol::Json, Some(coord)) => {
            let json = Json::with_coord(&cfg, coord, poke);
            core.run(Group::new(cfg, json)).await
        }
        (Protocol::Json, None) => core.run(Group::new(cfg.clone(), Json::new(&cfg))).await,
        (Protocol::Http, _) => {
            let plan = core.shared.http.clone().unwrap_or_default();
            let mut http = Http::new(&cfg, plan.clone());
            // A task's next GetTask waits for its time: the side task sends it (poked when the
            // first one waits).
            // The push patterns: the side channel is the notifications' (set by the caller),
            // which also pokes.
            if let Some(s) = plan.push.as_ref().and_then(|r| r.side(core.index)) {
                http.set_poke(s.tx);
                http.set_push_core(core.index);
            } else if plan.task_poll_ns > 0 && plan.patterns.iter().any(|p| p.is_task()) {
                let (poke, rx) = flume::bounded(4);
                http.set_poke(poke);
                core.side = Some(rx);
            }
            core.run(Group::new(cfg.clone(), http)).await
        }
    }
}

impl Started {
    /// How many cores started.
    pub(super) fn len(&self) -> usize {
        self.starts.len()
    }

    /// Waits for every started core's set-up, then runs `before_start`; on any failure ends
    /// the cores and returns the failures, each said once.
    pub(super) fn ready(
        &mut self,
        before_start: Option<BeforeStart<'_>>,
    ) -> Result<(), Vec<String>> {
        for _ in 0..self.starts.len() {
            match self.ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => self.failures.push(e),
                Err(_) => self.failures.push("an agent core stopped during set-up".into()),
            }
        }
        if self.failures.is_empty() {
            if let Some(Err(e)) = before_start.map(|f| f()) {
                self.failures.push(e);
            }
        }
        if self.failures.is_empty() {
            return Ok(());
        }
        for s in &self.starts {
            let _ = s.send(None);
        }
        for j in self.joins.drain(..) {
            let _ = j.join();
        }
        let mut failures = std::mem::take(&mut self.failures);
        failures.dedup();
        Err(failures)
    }

    /// Fixes the common schedule (20 ms from now, then the warm-up, then the measured window)
    /// and sends it to every core.
    pub(super) fn go(&self, scenario: &Scenario) -> Schedule {
        let start_ns = clock::now_ns() + 20_000_000;
        let measure_ns = start_ns + scenario.warmup.as_nanos() as u64;
        let end_ns = match scenario.stop {
            Stop::Duration(d) => measure_ns + d.as_nanos() as u64,
            Stop::Count { .. } => u64::MAX,
        };
        let schedule = Schedule { start_ns, measure_ns, end_ns };
        for s in &self.starts {
            let _ = s.send(Some(schedule));
        }
        schedule
    }
}
