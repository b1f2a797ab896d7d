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
    /// Its heartbeat, watched by the coordinating thread ([`CoreWatch`]).
    pub(super) beat: Arc<crate::transport::kick::Beat>,
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
    /// Per core: since when (ns) it stands still, while it does, and whether it was closing
    /// by then ([`Beat::closing`]: its figures taken, so the stall held nothing back).
    pub(super) since: Vec<Option<(u64, bool)>>,
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
                    // While closing, unless it stood still for the limit before that.
                    self.since[i] = Some((last, beat.closing_at(last + limit)));
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

    /// Core `i` turns again as of `at` (None: it ended). A core that stood still no longer than
    /// the limit before its figures were taken, and on while closing its connections, held no
    /// traffic back: that is said on stderr, not counted as a failure.
    pub(super) fn turned(&mut self, i: usize, core: usize, at: Option<u64>, peer: &str) {
        if let Some((from, closing)) = self.since[i].take() {
            let secs = at.unwrap_or_else(clock::now_ns).saturating_sub(from) as f64 / 1e9;
            eprintln!("watchdog: agent core {i} (core {core}) turns again after {secs:.1} s");
            if closing {
                eprintln!(
                    "watchdog: agent core {i} (core {core}) stood still while closing its connections, after its figures were taken: not counted"
                );
                return;
            }
            self.said.push(format!(
                "agent core {i} (core {core}) stood still for {secs:.1} s (its timers did not run: a lost wake-up, or the machine took the core away; woken by a signal): for that time the generator, not the {peer}, held the traffic back"
            ));
        }
    }

    /// What the run must say; a core still standing still is said too (unless it began while
    /// closing).
    pub(super) fn finish(mut self, beats: &[(usize, Arc<Beat>)], peer: &str) -> Vec<String> {
        for (i, (since, (core, _))) in self.since.iter().zip(beats).enumerate() {
            if let Some((from, false)) = since {
                let secs = clock::now_ns().saturating_sub(*from) as f64 / 1e9;
                self.said.push(format!(
                    "agent core {i} (core {core}) stood still for {secs:.1} s until the run ended (its timers did not run): for that time the generator, not the {peer}, held the traffic back"
                ));
            }
        }
        self.said
    }
}

/// What the measured window and the drain told about a core, for its result.
struct Measured {
    /// Busy share over the measured window, and the share of it spent watching.
    cpu_busy: (f64, f64),
    drain_timed_out: bool,
    conns: usize,
}

/// What a core's steps share while its agents run.
struct Running<A: Adapter> {
    group: Rc<RefCell<Group<A>>>,
    /// What the connections' tasks saw go wrong.
    failures: Rc<RefCell<Vec<String>>>,
    /// Each connection's socket: shut down at the end, and by request timeouts.
    controls: Rc<RefCell<Vec<Rc<SocketHandle>>>>,
    /// The connections' readers and writers, the side task and the pacer.
    tasks: Vec<glommio::Task<()>>,
    /// With `--agent-io uring`: the core's socket ring and its reaper.
    ring: Option<Rc<uring::Ring>>,
    reaper: Option<glommio::Task<()>>,
    /// The heartbeats of silent connections ([`keep_alive`]), cancelled at the close.
    keepalive: Option<glommio::Task<()>>,
}

impl<A: Adapter + 'static> Running<A> {
    /// Shuts every connection down, then the ring ([`close`]).
    async fn close(self) {
        drop(self.keepalive);
        let controls = self.controls.borrow().clone();
        close(&self.group, &controls, self.tasks, self.ring.zip(self.reaper)).await;
    }

    /// Waits (bounded) for every registration's answer: whether all were accepted.
    async fn registered(&self) -> Result<(), String> {
        let deadline = clock::now_ns() + REGISTER_TIMEOUT.as_nanos() as u64;
        let done = |g: &Group<A>| g.registered() != Ok(false) || g.connections_lost() > 0;
        let answered = wait_for(&self.group, deadline, done).await;
        match self.group.borrow().registered() {
            _ if !self.failures.borrow().is_empty() => Err(self.failures.borrow()[0].clone()),
            Err(why) => Err(why),
            Ok(true) => Ok(()),
            Ok(false) if answered => {
                Err("the router closed the connection during registration".into())
            }
            Ok(false) => {
                Err(format!("no answer to registration within {} s", REGISTER_TIMEOUT.as_secs()))
            }
        }
    }

    /// The warm-up: sending starts (the pacer's, in open loop); only request timeouts to
    /// watch until measuring begins.
    async fn warm_up(
        &mut self,
        schedule: Schedule,
        side: Option<(flume::Receiver<Completed>, SideWaker)>,
    ) {
        let open = matches!(self.group.borrow().book().config().pacing, Pacing::Open { .. });
        self.group.borrow_mut().set_schedule(schedule);
        uring::sleep_until(schedule.start_ns).await;
        if let Some((rx, waker)) = side {
            self.tasks.push(glommio::spawn_local(super::tasks::side(
                self.group.clone(),
                rx,
                waker,
            )));
        }
        if open {
            self.tasks.push(glommio::spawn_local(pacer(self.group.clone())));
        } else {
            self.group.borrow_mut().start(clock::now_ns());
        }
        loop {
            let now = clock::now_ns();
            if now >= schedule.measure_ns {
                break;
            }
            let next = expire(&mut self.group.borrow_mut(), now, &self.controls.borrow());
            watch_or_sleep(&mut self.group.borrow_mut(), self.ring.as_deref());
            uring::sleep_until(next.min(schedule.measure_ns).min(now + MONITOR_NS)).await;
        }
    }
}

impl Core {
    pub(super) async fn run<A: Adapter + 'static>(mut self, group: Group<A>) {
        let conns = group.connections();
        let side_waker = SideWaker::default();
        // Set-up: connect, register, wait for every acknowledgement (bounded).
        let (ring, mut setup) = match self.make_ring(&side_waker) {
            Ok(ring) => (ring, Ok(())),
            Err(e) => (None, Err(e)),
        };
        let reaper = ring.as_ref().map(uring::Ring::spawn_reaper);
        let group = Rc::new(RefCell::new(group));
        let keepalive = self
            .shared
            .keepalive
            .map(|every| glommio::spawn_local(keep_alive(group.clone(), every.as_nanos() as u64)));
        let mut r = Running {
            group,
            failures: Rc::new(RefCell::new(Vec::new())),
            controls: Rc::new(RefCell::new(Vec::new())),
            tasks: Vec::new(),
            ring,
            reaper,
            keepalive,
        };
        if setup.is_ok() {
            setup = self.connect_all(&mut r, conns).await;
        }
        if setup.is_ok() {
            setup = r.registered().await;
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
            return r.close().await;
        };
        r.warm_up(schedule, self.side.take().map(|rx| (rx, side_waker))).await;
        let mut sampler = self
            .shared
            .interval
            .map(|every| Sampler::new(every, schedule.measure_ns, &r.group.borrow()));
        let (cpu_busy, drain_timed_out) = self
            .measure(
                &r.group,
                &r.failures,
                &r.controls,
                schedule,
                sampler.as_mut(),
                r.ring.as_deref(),
            )
            .await;
        self.stop_barrier(&r.group).await;
        let farewell = r.group.borrow_mut().farewell();
        if farewell {
            // A server that stops answering here is as stalled as one that stops during the run.
            let deadline = clock::now_ns() + self.shared.drain_timeout.as_nanos() as u64;
            if !wait_for(&r.group, deadline, Group::farewell_done).await {
                let secs = self.shared.drain_timeout.as_secs_f64();
                r.failures.borrow_mut().push(format!(
                    "the {} left sessions' DELETEs unanswered for {secs:.1} s (--drain-timeout), after the measured window",
                    self.shared.peer()
                ));
            }
        }
        let measured = Measured { cpu_busy, drain_timed_out, conns };
        let mut result = self.result_of(&r.group, sampler.as_mut(), measured).await;
        let failures = r.failures.clone();
        // Closing thousands of connections may hold the loop past the watch's limit (each
        // socket's last close runs on this thread): its figures are taken by now.
        self.beat.closing();
        r.close().await;
        result.failures = failures.borrow().clone();
        let _ = self.result.send_async(CoreMsg::Done(Box::new(result))).await;
    }

    /// With `--agent-io uring`, the core's socket ring, dozing unless messages from other cores
    /// could not end a doze.
    fn make_ring(&self, side_waker: &SideWaker) -> Result<Option<Rc<uring::Ring>>, String> {
        if self.shared.io != crate::transport::Io::Uring {
            return Ok(None);
        }
        let r =
            uring::Ring::new().map_err(|e| format!("--agent-io uring: making an io_uring: {e}"))?;
        r.set_poll(self.shared.poll.then_some(crate::transport::POLL_IDLE));
        // Other cores reach this one through a channel only in coordination workloads
        // (`side`): they ring its doorbell, which ends a doze, and the ring wakes the side
        // task; without a doorbell a doze would hold their messages back, so the ring does not
        // doze.
        match (&self.side, &self.bell) {
            (None, _) => r.set_doze(true),
            (Some(rx), Some(bell)) => {
                r.set_doze(true);
                r.set_peers(bell.clone(), side_drain(rx.clone(), side_waker.clone()));
            }
            (Some(_), None) => r.set_doze(false),
        }
        Ok(Some(r))
    }

    /// Opens the core's connections one by one, each with its reader and writer task, and
    /// registers their agents; the first connection that fails ends the set-up.
    async fn connect_all<A: Adapter + 'static>(
        &self,
        r: &mut Running<A>,
        conns: usize,
    ) -> Result<(), String> {
        // The run's connections before this core's (about): where its source addresses start.
        let (before, first, seats, count, total) = {
            let g = r.group.borrow();
            let cfg = g.book().config();
            let per = cfg.seats.agents(cfg.count, 0).len().max(1) as u32;
            ((cfg.first / per) as usize, cfg.first, cfg.seats, cfg.count, cfg.agents_total)
        };
        let (addr, transport, protocol) =
            (self.shared.addr, self.shared.transport, self.shared.protocol);
        for c in 0..conns {
            let source = crate::loadgen::link::source_for(addr, before + c);
            let home = (self.shared.homing && protocol == Protocol::Native)
                .then(|| Home { key: Home::key_for(first + seats.agents(count, c).start, total) });
            let (stream, control) =
                connect(addr, source, transport, protocol, r.ring.as_ref(), home).await?;
            let stream = Rc::new(RefCell::new(stream));
            r.controls.borrow_mut().push(control);
            r.group.borrow_mut().register(c);
            let (g, f) = (r.group.clone(), r.failures.clone());
            // HTTP connections are replaced when the server closes them.
            let link = (protocol == Protocol::Http).then(|| Link {
                addr,
                source,
                ring: r.ring.clone(),
                controls: r.controls.clone(),
            });
            r.tasks.push(glommio::spawn_local(reader(g, stream.clone(), c, f, link)));
            r.tasks.push(glommio::spawn_local(writer(r.group.clone(), stream, c, 0)));
            // Let it register now: a router closes a connection that stays silent past its
            // handshake timeout, and thousands of connects can take longer.
            glommio::executor().yield_task_queue_now().await;
        }
        Ok(())
    }

    /// The core's result once sending stopped: anything still in flight given up as aborted,
    /// the rest of the time series sent first. Its `failures` are the caller's to fill in,
    /// once the connections closed (closing can add some).
    async fn result_of<A: Adapter>(
        &self,
        group: &Rc<RefCell<Group<A>>>,
        sampler: Option<&mut Sampler>,
        measured: Measured,
    ) -> CoreResult {
        let breakdown = group.borrow().breakdown();
        let sizes = group.borrow().sizes();
        let coordination = group.borrow().coordination();
        let (result, last) = {
            let mut g = group.borrow_mut();
            if g.in_flight() > 0 {
                g.give_up(GaveUp::Aborted);
            }
            g.stop();
            // The rest of the run, up to now, taken with the totals and without an await in
            // between (a reader could record one more answer): the intervals add up to the whole.
            let last = sampler.map(|s| s.take(&g, clock::now_ns()));
            let result = CoreResult {
                counters: g.counters().clone(),
                latencies: g.whole_latencies(),
                hops: g.hops().to_vec(),
                cpu_busy: measured.cpu_busy,
                in_flight: g.in_flight(),
                drain_timed_out: measured.drain_timed_out,
                conns: measured.conns,
                conns_lost: g.connections_lost(),
                end_ns: g.book().schedule().end_ns,
                failures: Vec::new(),
                breakdown,
                sizes,
                coordination,
            };
            (result, last)
        };
        if let Some(last) = last {
            let _ = self.result.send_async(CoreMsg::Interval(self.index, last)).await;
        }
        result
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
        // A task's polls count: a server answering them while its tasks work is not stalled.
        let answered =
            c.replies_delivered + c.request_error_total() + c.unanswered_total() + c.task_polls;
        // The stall clock runs only while something waits for an answer: a core whose agents'
        // first sends come late in the window (open loop, many agents at a low rate) waited
        // for nothing until then.
        // Nor while all it waits for are subscriptions whose streams began: their tasks work
        // (bounded by the task timeout).
        let waiting = g.in_flight().saturating_sub(g.following());
        if answered != w.progress.1 || waiting == 0 {
            w.progress = (now, answered);
        }
        // Drain timeout once sending stopped; stall timeout (no answer at all) before.
        if waiting > 0 && now.saturating_sub(w.progress.0) > timeout_ns {
            let since = w.progress.0 as f64 / 1e9 - w.measure_ns as f64 / 1e9;
            let when = if since >= 0.0 {
                format!("{since:.2} s into the measured window")
            } else {
                format!("{:.2} s before the measured window (in the warm-up)", -since)
            };
            let (peer, secs) = (self.shared.peer(), self.shared.drain_timeout.as_secs_f64());
            // A reply the router refused (its requester offline, its queue full) leaves its
            // request unanswered for good: that is not a stall, and is said so.
            let refused = c.reply_error_total();
            failures.borrow_mut().push(if refused > 0 {
                format!(
                    "{} requests had no reply or error for {secs:.1} s from {when} on, and the {peer} refused {refused} replies on their way back (see the errors by kind): a request whose reply was refused is never answered (counted as drain_timeout)",
                    g.in_flight()
                )
            } else {
                format!(
                    "the {peer} stalled: no reply or error for {secs:.1} s from {when} on (what was in flight is counted as drain_timeout)"
                )
            });
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
    /// When the count of answers last moved (or nothing waited for one), and that count.
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
/// Connections [`keep_alive`] looks at in one turn, at most.
const KEEPALIVE_SLICE: usize = 64;

/// From the first connection to the close, a heartbeat on each connection that sent nothing
/// since the last look ([`Group::keep_alive`]), each looked at every `every_ns`: in slices of
/// at most [`KEEPALIVE_SLICE`] spread over the period, so that the heartbeats of thousands of
/// quiet connections do not leave at once and delay the sends due then.
async fn keep_alive<A: Adapter>(group: Rc<RefCell<Group<A>>>, every_ns: u64) {
    let conns = group.borrow().connections();
    let slices = conns.div_ceil(KEEPALIVE_SLICE).clamp(1, 1000);
    let per = conns.div_ceil(slices);
    let step_ns = (every_ns / slices as u64).max(1_000_000);
    let mut next = clock::now_ns();
    loop {
        for i in 0..slices {
            next += step_ns;
            uring::sleep_until(next).await;
            group.borrow_mut().keep_alive(i * per..(i + 1) * per);
        }
    }
}

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
