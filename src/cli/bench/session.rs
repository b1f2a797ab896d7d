//! A benchmark session: the runs of a grid against one router, their reports and their end;
//! and the probe of a router in another process.

use super::*;

/// Reads an external a2a-bench router's counters over the protocol, on one connection kept
/// for the whole session (so that the probe is not a stream of connections the router counts),
/// made again once if the router closed it.
pub(in crate::cli) struct ExternalProbe {
    pub(super) addr: SocketAddr,
    pub(super) conn: std::sync::Mutex<Option<crate::client::Client>>,
}

impl ExternalProbe {
    pub(in crate::cli) fn new(addr: SocketAddr) -> ExternalProbe {
        ExternalProbe { addr, conn: std::sync::Mutex::new(None) }
    }

    fn ask(&self, c: &mut crate::client::Client) -> Option<crate::wire::control::StatsReply> {
        use crate::wire::control::StatsRequest;
        use crate::wire::Control;
        let request_id = c.request_id();
        match c.call(Control::StatsRequest(StatsRequest { request_id })) {
            Ok(Control::StatsReply(r)) => Some(r),
            _ => None,
        }
    }

    /// The router's heartbeat timeout, as it says in its stats reply (`None`: it does not say,
    /// or did not answer).
    pub(in crate::cli) fn heartbeat_timeout(&self) -> Option<Duration> {
        let ms = self.reply()?.heartbeat_timeout_ms;
        (ms > 0).then(|| Duration::from_millis(ms))
    }

    /// The router's stats reply, on the kept connection, made again once if it failed.
    fn reply(&self) -> Option<crate::wire::control::StatsReply> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(reply) = conn.as_mut().and_then(|c| self.ask(c)) {
            return Some(reply);
        }
        // No connection yet, or the kept one failed: one fresh try.
        *conn = self.connect();
        let reply = conn.as_mut().and_then(|c| self.ask(c));
        if reply.is_none() {
            *conn = None;
        }
        reply
    }

    fn connect(&self) -> Option<crate::client::Client> {
        let mut c = crate::client::Client::connect(self.addr).ok()?;
        c.set_timeout(Duration::from_secs(2)).ok()?;
        Some(c)
    }
}

impl RouterProbe for ExternalProbe {
    fn stats(&self) -> Vec<crate::wire::ShardStats> {
        self.reply().map(|r| r.shards).unwrap_or_default()
    }
}

/// What a run's CPU says beyond its own probes, into `result`: other processes' share of the
/// machine, over `cpu` (before and after); a target's processes' (`target`: their pids, and
/// how many cores their threads are pinned to); and by these and the cores the two sides
/// share (`shared`), what bounded the run. The memory read at `cpu`'s end too.
pub(in crate::cli) fn settle_cpu(
    result: &mut RunResult,
    cpu: Option<(crate::host::CpuTimes, crate::host::CpuTimes)>,
    (pids, pinned): (&[u32], usize),
    shared: Option<&report::CoreSharing>,
) {
    result.cpu.others_share = cpu.as_ref().map(|(a, b)| b.others_share_since(a));
    result.memory = cpu.map(|(_, at_end)| report::MemoryInfo {
        process_bytes: Some(at_end.rss),
        target_bytes: at_end.target_rss,
    });
    if !pids.is_empty() {
        result.cpu.target_cores = cpu.map(|(a, b)| b.target_cores_since(&a));
        result.cpu.judge_target(pinned);
    }
    if let Some(sharing) = shared {
        result.cpu.judge_shared(sharing);
    }
}

/// What every run of a command shares: where to send, what to probe, where to tell.
pub(in crate::cli) struct Session<'a> {
    pub(in crate::cli) cfg: &'a BenchConfig,
    pub(super) addr: SocketAddr,
    pub(super) probe: Option<&'a dyn RouterProbe>,
    pub(in crate::cli) interrupt: Interrupt,
    pub(in crate::cli) progress: indicatif::ProgressBar,
    /// Runs made so far.
    pub(in crate::cli) made: usize,
    /// Runs tried so far, those that could not start too (a worker's barriers count them:
    /// every worker tries the same runs).
    pub(in crate::cli) tried: usize,
    /// The target's processes, when it runs on this machine in processes of its own
    /// ([`crate::host::listeners`]): their CPU is the target's, not other processes'.
    pub(in crate::cli) target_pids: Vec<u32>,
    /// The cores the target's threads are pinned to, one each ([`crate::host::pinned_cores`]):
    /// its processes' CPU over them says how busy it was.
    pub(in crate::cli) target_pinned: usize,
    /// Where the router (or server) and the agents share cores: runs are then judged by those
    /// cores ([`report::CpuInfo::judge_shared`]).
    pub(in crate::cli) shared: Option<report::CoreSharing>,
    /// Warnings to print once a run has reached the target (`share_with_target`'s).
    pub(in crate::cli) notes: Vec<String>,
    /// A worker in a search whose exchange with the others failed (one is gone or cannot be
    /// reached): why. The search cannot go on, whatever the step.
    pub(in crate::cli) apart: Option<String>,
}

impl<'a> Session<'a> {
    /// A session against a router compare runs (`addr`, read by `probe`; `target_pids` its
    /// processes here, if it runs in its own, `target_pinned` the cores they are pinned to),
    /// its runs printed as they end.
    pub(in crate::cli) fn against(
        cfg: &'a BenchConfig,
        addr: SocketAddr,
        probe: Option<&'a dyn RouterProbe>,
        (target_pids, target_pinned): (Vec<u32>, usize),
        shared: Option<report::CoreSharing>,
    ) -> Session<'a> {
        Session {
            cfg,
            addr,
            probe,
            interrupt: Interrupt::new(),
            progress: indicatif::ProgressBar::hidden(),
            made: 0,
            tried: 0,
            target_pids,
            target_pinned,
            shared,
            notes: Vec::new(),
            apart: None,
        }
    }

    /// Makes one run and prints its line; `None` when it could not start (the peer is
    /// unreachable or wrong: every other run would fail the same way), with why.
    pub(in crate::cli) fn run(&mut self, spec: &RunSpec) -> Result<RunResult, String> {
        let sc = &spec.scenario;
        let label = format!("{} × {} {}", sc.shape(), sc.agents, describe_pacing(sc));
        self.progress.set_message(label.clone());
        let progress = self.progress.clone();
        let mut live = |iv: &loadgen::Interval| {
            let secs = iv.end_ns.saturating_sub(iv.start_ns).max(1) as f64 / 1e9;
            let p99 = crate::metrics::LatencySummary::of(&iv.rtt).p99_ms;
            progress.set_message(format!(
                "{label}: {} msgs/s, p99 {} ms at {:.0} s",
                report::text::rate(iv.deliveries as f64 / secs),
                report::text::ms(p99),
                iv.end_ns as f64 / 1e9
            ));
        };
        let progress = &self.progress;
        let say =
            |why: &str| progress.suspend(|| eprintln!("a2a-bench: {label}: {why}: made again"));
        // A worker's run meets the others at barriers: it cannot be made again alone.
        let again = self.cfg.worker.is_none();
        let tried = self.tried;
        self.tried += 1;
        // A worker in a search keeps its coordinator's connection past the stop barrier, to
        // share its part of the run with the others (`Shared`).
        let sharing = self.cfg.search.is_some() && self.cfg.worker.is_some();
        let link = std::rc::Rc::new(std::cell::RefCell::new(None));
        let (outcome, (lost_wakeups, ended, cpu), remade) =
            loadgen::made_again(sc, again, say, |attempt| {
                let (before_start, before_leave) = match &self.cfg.worker {
                    Some(w) => {
                        let meet = w.meet.unwrap_or(self.addr);
                        let drain = self.cfg.drain_timeout;
                        let kept = (link.clone(), sharing);
                        let (start, leave) = w.hooks(meet, tried, sc.id_base, drain, kept);
                        (Some(start), Some(leave))
                    }
                    None => (None, None),
                };
                let hooks = Hooks {
                    probe: self.probe,
                    at_measure_start: None,
                    interrupt: Some(self.interrupt.clone()),
                    on_interval: Some(&mut live),
                    before_start,
                    before_leave,
                    target_pids: &self.target_pids,
                };
                let before = crate::host::CpuTimes::with_target(&self.target_pids);
                let rescued = crate::transport::uring::rescued();
                let outcome = loadgen::run_with(attempt, self.addr, hooks);
                let lost_wakeups = crate::transport::uring::rescued() - rescued;
                let ended = std::time::SystemTime::now();
                // The window's CPU; the whole run's where the window's edges were not reached.
                let cpu = outcome
                    .cpu_window
                    .or_else(|| before.zip(crate::host::CpuTimes::with_target(&self.target_pids)));
                (outcome, (lost_wakeups, ended, cpu))
            });
        let kept = link.borrow_mut().take();
        let whole = sharing.then(|| self.whole_run(spec, &outcome, tried, kept));
        // A step a worker could not start is one that could not start on every worker alike,
        // said in the same words on each (or whose parts did not all come: this worker's words).
        if outcome.setup_failed {
            return Err(match whole {
                Some(Err(why)) => why,
                _ => outcome.failures.join("; "),
            });
        }
        let whole = whole.transpose()?;
        for note in self.notes.drain(..) {
            self.progress.suspend(|| eprintln!("{note}"));
        }
        let i = self.made;
        self.made += 1;
        let mut result = RunResult::new(spec, &outcome);
        result.lost_wakeups = (lost_wakeups > 0).then_some(lost_wakeups);
        result.remade = remade;
        let target = (&self.target_pids[..], self.target_pinned);
        settle_cpu(&mut result, cpu, target, self.shared.as_ref());
        if self.cfg.worker.is_some() {
            result.part = Some(report::part::Part::of(spec, &outcome));
        }
        result.whole = whole.map(Box::new);
        if let Some(dir) = &self.cfg.hlog {
            let last = outcome.intervals.iter().map(|iv| iv.end_ns).max().unwrap_or(0);
            let start = ended.checked_sub(Duration::from_nanos(last)).unwrap_or(ended);
            let path = dir.join(hlog_name(i, sc));
            let comment = format!("a2a-bench run {}: {label}", i + 1);
            if let Err(e) = report::hlog::write(&path, &outcome.intervals, start, &comment) {
                self.progress.suspend(|| eprintln!("warning: {e:#}"));
            }
        }
        self.progress.suspend(|| {
            let _ = report::text::run_line(&mut std::io::stdout(), i, &result);
            busy_warning(i, result.cpu.others_share);
        });
        Ok(result)
    }

    /// A worker's search step, judged by the whole run: this worker tells the others its part
    /// of run attempt `tried` (or why it could not start) on its coordinator's connection
    /// `kept`, gathers theirs, and merges them all as every other worker does. `Err`: why a
    /// worker's run could not start, or, with `apart` set, why the workers lost one another.
    fn whole_run(
        &mut self,
        spec: &RunSpec,
        outcome: &loadgen::Outcome,
        tried: usize,
        kept: Option<crate::client::Client>,
    ) -> Result<RunResult, String> {
        let Some(w) = &self.cfg.worker else { return Err("not a worker".into()) };
        let mine = if outcome.setup_failed {
            Err(outcome.failures.join("; "))
        } else {
            // A verdict needs the run's counters and histograms, not its time series: the
            // message (≈ 24 KB) stays that size however long the run.
            let mut part = report::part::Part::of(spec, outcome);
            part.intervals.clear();
            Ok(part)
        };
        let meet = w.meet.unwrap_or(self.addr);
        match w.share(meet, (tried, spec.scenario.id_base), kept, mine) {
            Ok(parts) => crate::cli::worker::whole_run(&parts),
            Err(why) => {
                self.apart = Some(why.clone());
                Err(why)
            }
        }
    }
}
