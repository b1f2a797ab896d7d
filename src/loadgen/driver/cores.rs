//! One agent core: connect and register its agents, run them, drain, close; its heartbeat and
//! the watch that reports a core stalled.

use super::*;

/// One agent core: its channels to the coordinating thread and what all cores share.
pub(super) struct Core {
    /// Its place among the run's agent cores.
    pub(super) index: usize,
    pub(super) shared: Shared,
    pub(super) start: flume::Receiver<Option<Schedule>>,
    pub(super) ready: flume::Sender<Result<(), String>>,
    pub(super) result: flume::Sender<CoreMsg>,
    /// Coordination workloads: this core's messages from other cores (and its own pokes).
    pub(super) side: Option<flume::Receiver<Completed>>,
    /// Rung by the other cores after they send on `side`: it ends the ring's doze.
    pub(super) bell: Option<Arc<uring::Doorbell>>,
}

/// The side task's waker while it waits, for the ring's doze: a message from another core
/// wakes the task through glommio's queue of foreign wakes, which its loop reads only when it
/// turns, while the ring may be dozing; the doorbell ends the doze, and the ring wakes the task
/// on this thread ([`side`], [`Core::run`]).
pub(super) type SideWaker = Rc<std::cell::Cell<Option<std::task::Waker>>>;

/// How often the coordinating thread looks at the agent cores' heartbeats.
pub(super) const WATCH_EVERY: Duration = Duration::from_millis(100);

/// How often an agent core's heartbeat task runs.
pub(super) const BEAT_EVERY: Duration = Duration::from_millis(100);

/// An agent core whose heartbeat is older than this stood still: reported and kicked.
pub(super) const CORE_STALL: Duration = Duration::from_secs(1);

/// Shows the coordinating thread that the core's loop turns: a glommio timer that runs every
/// [`BEAT_EVERY`] (the timers are what a lost wake-up stops; `transport::kick`).
pub(super) async fn heartbeat(beat: Arc<Beat>) {
    loop {
        glommio::timer::sleep(BEAT_EVERY).await;
        beat.beat();
    }
}

/// The coordinating thread's watch over the agent cores: a core whose loop stands still for
/// [`CORE_STALL`] is said on stderr and kicked (`transport::kick`) until it turns again, and
/// the run fails with what happened: for that time the generator, not the router, held the
/// traffic back, so its figures do not measure the router.
pub(super) struct CoreWatch {
    /// Per core: since when (ns) it stands still, while it does.
    pub(super) since: Vec<Option<u64>>,
    /// What happened, for the run's failures.
    pub(super) said: Vec<String>,
    /// [`CORE_STALL`], in ns.
    pub(super) limit_ns: u64,
}

impl CoreWatch {
    pub(super) fn new(cores: usize, limit: Duration) -> CoreWatch {
        CoreWatch { since: vec![None; cores], said: Vec::new(), limit_ns: limit.as_nanos() as u64 }
    }

    pub(super) fn look(&mut self, beats: &[(usize, Arc<Beat>)], peer: &str) {
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
    pub(super) fn turned(&mut self, i: usize, core: usize, at: Option<u64>, peer: &str) {
        if let Some(from) = self.since[i].take() {
            let secs = at.unwrap_or_else(clock::now_ns).saturating_sub(from) as f64 / 1e9;
            eprintln!("watchdog: agent core {i} (core {core}) turns again after {secs:.1} s");
            self.said.push(format!(
                "agent core {i} (core {core}) stood still for {secs:.1} s (its timers did not run: a lost wake-up, or the machine took the core away; woken by a signal): for that time the generator, not the {peer}, held the traffic back"
            ));
        }
    }

    /// What the run must say; a core still standing still is said too.
    pub(super) fn finish(mut self, beats: &[(usize, Arc<Beat>)], peer: &str) -> Vec<String> {
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
    pub(super) async fn run<A: Adapter + 'static>(mut self, group: Group<A>) {
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
            let source = crate::loadgen::link::source_for(addr, before + c);
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
    pub(super) async fn measure<A: Adapter>(
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
    pub(super) fn check<A: Adapter>(
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
    pub(super) async fn stop_barrier<A: Adapter>(&self, group: &Rc<RefCell<Group<A>>>) {
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
pub(super) fn watch_or_sleep<A: Adapter>(g: &mut Group<A>, ring: Option<&uring::Ring>) {
    if let (Some(ring), Some(short)) = (ring, g.short_round_trips()) {
        ring.set_watch(short);
    }
}

/// Requests past `--timeout` as of `now_ns`: an HTTP/1.1 connection holding one is shut down
/// (its reader replaces it). Returns when the next timeout is due.
pub(super) fn expire<A: Adapter>(
    g: &mut Group<A>,
    now_ns: u64,
    controls: &[Rc<SocketHandle>],
) -> u64 {
    let mut close = Vec::new();
    let next = g.expire(now_ns, &mut close);
    for c in close {
        controls[c].shutdown();
    }
    next
}

/// What the monitor keeps between looks.
pub(super) struct Watch {
    /// The thread's CPU and watch times when the window began ([`thread_times`]).
    pub(super) cpu0: (u64, u64),
    pub(super) cpu_busy: Option<(f64, f64)>,
    /// When the count of answers last moved, and that count.
    pub(super) progress: (u64, u64),
    pub(super) measure_ns: u64,
}

/// What the monitor does next.
pub(super) enum Step {
    /// Wait until this time, or until the group wakes the monitor.
    Wait(u64),
    /// The run is over; `true` when answers stopped coming.
    Done(bool),
}

/// Every request answered after sending ended, or every connection gone.
pub(super) fn drained<A: Adapter>(g: &Group<A>) -> bool {
    (g.finished() && g.in_flight() == 0) || g.connections_lost() == g.connections()
}

/// Shuts every connection down and waits (bounded) for its tasks to see it and finish.
/// Then, with `--agent-io uring`, stops the ring once its operations ended (bounded too).
pub(super) async fn close<A: Adapter>(
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
