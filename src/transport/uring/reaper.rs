//! The reaper: the task that submits, reaps, dozes, watches and parks for one thread's ring.

use std::future::Future;

use super::inner::wake;
use super::sleep::{next_deadline, next_glommio_deadline, next_reaper_deadline, wake_due, Awake};
use super::*;

impl Ring {
    /// A ring for this thread; needs kernel 6.0 (single issuer, multishot receive).
    pub fn new() -> io::Result<Rc<Ring>> {
        // Not `DEFER_TASKRUN`: with it, task work added while the reaper parked in glommio
        // sometimes rang no eventfd on Linux 6.18 (after a timed wait in this ring: a doze), and
        // every such park lasted until its timer, 9-20 ms (module docs).
        let mut ring = IoUring::builder()
            .setup_single_issuer()
            .setup_coop_taskrun()
            .setup_taskrun_flag()
            .setup_cqsize(ENTRIES * 4)
            .build(ENTRIES)?;
        let provided = Provided::new()?;
        // SAFETY: the entries stay allocated and in place until `Provided` drops, after the
        // ring (`Inner`'s field order), or are leaked when operations remain.
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                provided.entries as u64,
                BUFS,
                BGID,
                0,
            )?;
        }
        // SAFETY: eventfd has no memory-safety preconditions; the result is checked.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if efd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor nothing else owns.
        let bell = unsafe { glommio::io::BufferedFile::from_raw_fd(efd) };
        ring.submitter().register_eventfd(efd)?;
        // As large as the open-file limit (the kernel refuses more); a kernel that refuses
        // every size (older): no fixed files.
        let limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map_or(0, |(soft, _)| soft.min(u64::from(FIXED_FILES_MAX)) as u32);
        let fixed_files = [limit, FIXED_FILES, FIXED_FILES_MIN]
            .into_iter()
            .find(|&n| ring.submitter().register_files_sparse(n).is_ok())
            .unwrap_or(0);
        // Rung only while the reaper parks (`Ring::arm_bell`): a pass reaps what completes while
        // it runs, and a send that completes inline would otherwise cost a wake-up of its own.
        ring.completion().disable_eventfd();
        Ok(Rc::new(Ring {
            inner: RefCell::new(Inner {
                ring,
                provided,
                slots: Vec::new(),
                spare: Spares::default(),
                tx_spare: Spares::default(),
                free: Vec::new(),
                dirty: Vec::new(),
                in_flight: 0,
                held: 0,
                bell_fd: None,
                bell_armed: false,
                fixed_files,
                #[cfg(test)]
                own_largest: 0,
                #[cfg(test)]
                own_moved: 0,
            }),
            bell: RefCell::new(Some(Rc::new(bell))),
            parked: Cell::new(None),
            rung: Cell::new(false),
            poll_ns: Cell::new(0),
            kicked: Cell::new(false),
            stopped: Cell::new(false),
            early_send: Cell::new(0),
            doze: Cell::new(false),
            watching: Cell::new(true),
            watch_ns: Cell::new(DOZE_SPIN.as_nanos() as u64),
            dozed_at: Cell::new(0),
            turn_bytes: Cell::new(0),
            core: crate::placement::pinned_core(),
            flag_only: Cell::new(false),
            rescues: Cell::new(0),
            parks: Cell::new(0),
            peers: RefCell::new(None),
            gathering: Cell::new(false),
            pass_bytes: Cell::new(0),
            gatherers: RefCell::new(Vec::new()),
        }))
    }

    /// Takes a connected, non-blocking socket; its receive starts at the next pass.
    pub fn stream(self: &Rc<Ring>, fd: OwnedFd) -> UringStream {
        let mut inner = self.inner.borrow_mut();
        let raw = fd.as_raw_fd();
        let slot = match inner.free.pop() {
            Some(slot) => {
                inner.slots[slot].fd = Some(fd);
                slot
            }
            None => {
                inner.slots.push(Slot { fd: Some(fd), ..Slot::default() });
                inner.slots.len() - 1
            }
        };
        if (slot as u32) < inner.fixed_files
            && inner.ring.submitter().register_files_update(slot as u32, &[raw]).is_ok()
        {
            // The table holds the socket now: the plain descriptor goes back to the process.
            let s = &mut inner.slots[slot];
            s.fixed = true;
            s.fd = None;
        }
        inner.mark(slot);
        drop(inner);
        self.kick();
        UringStream { ring: self.clone(), slot }
    }

    /// Latency mode (`--poll`, `--spin-us`): poll for up to `after` past the last completion
    /// instead of parking (costs the thread's core meanwhile); `None`: park at once.
    pub fn set_poll(&self, after: Option<Duration>) {
        self.poll_ns.set(after.map_or(0, |d| d.as_nanos() as u64));
    }

    /// Sends a connection's queue from its writer once it holds `at` bytes (and no send is in
    /// flight) rather than with the next pass: a big flow goes out while the round is still
    /// running instead of in one burst at its end (the router's shards; `None`: off).
    pub fn set_early_send(&self, at: Option<usize>) {
        self.early_send.set(at.unwrap_or(0));
    }

    /// Dozing (see the module's documentation): while traffic lasts, an idle reaper waits in
    /// this ring instead of parking in glommio. A wake from another thread (a channel) may
    /// wait up to [`DOZE_MAX`] while it dozes, unless the sender rings a doorbell
    /// ([`Ring::set_peers`]).
    pub fn set_doze(&self, on: bool) {
        self.doze.set(on);
    }

    /// Whether a doze watches the ring before it sleeps (the default) or sleeps at once
    /// ([`SPIN_RTT_MAX`]: an agent core whose answers take long has nothing to gain by it),
    /// unless it follows a turn that received a big round ([`BIG_TURN_BYTES`]).
    pub fn set_watch(&self, on: bool) {
        self.watching.set(on);
    }

    /// For a thread that other threads feed through channels (a router's shard): they ring
    /// `bell` after each send, which ends a doze, and `drain` applies what the channels hold
    /// (true when it applied anything) — before a doze and after one, so nothing they sent
    /// waits for glommio's loop to notice their wake.
    pub fn set_peers(&self, bell: std::sync::Arc<Doorbell>, drain: Box<dyn Fn() -> bool>) {
        self.inner.borrow_mut().bell_fd = Some(bell.efd.as_raw_fd());
        *self.peers.borrow_mut() = Some(Peers { bell, drain });
    }

    /// How many times the reaper parked in glommio's loop (each a process-wide `membarrier`
    /// here, and its three rings entered: what dozing saves).
    pub fn parks(&self) -> u64 {
        self.parks.get()
    }

    /// Applies what the peers' channels hold; true when there was anything.
    pub(super) fn drain_peers(&self) -> bool {
        self.peers.borrow().as_ref().is_some_and(|p| (p.drain)())
    }

    pub(super) fn kick(&self) {
        self.kicked.set(true);
        if let Some(w) = self.parked.take() {
            w.wake();
        }
    }

    /// Tells [`Ring::reap`] to cancel the receives still armed and end once nothing is in
    /// flight.
    pub fn stop(&self) {
        self.stopped.set(true);
        self.kick();
    }

    /// Starts [`Ring::reap`] in a task queue of its own: a pass yields to every task it woke
    /// (the readers, then the writers they fed) before the next one submits what they wrote, so
    /// each send carries all a round produced. In a latency mode (set before) it shares the
    /// default queue instead: a queue switch on every poll costs more than the batching saves.
    pub fn spawn_reaper(self: &Rc<Ring>) -> glommio::Task<()> {
        if self.poll_ns.get() > 0 {
            return glommio::spawn_local(self.clone().reap());
        }
        let ex = glommio::executor();
        let tq = ex.create_task_queue(
            glommio::Shares::default(),
            glommio::Latency::NotImportant,
            "socket-ring",
        );
        match glommio::spawn_local_into(self.clone().reap(), tq) {
            Ok(task) => task,
            Err(_) => glommio::spawn_local(self.clone().reap()),
        }
    }

    /// The task that drives the ring: submit, reap, wake; park when there is nothing to do.
    /// Ends after [`Ring::stop`] once no operation is in flight, or 2 s after the stop.
    pub async fn reap(self: Rc<Ring>) {
        // The bell's read is a task of its own, polled only when its read completes: glommio
        // keeps a waker per poll of a pending read, so polling it on every park would pile
        // wakers up until the task's reference count overflows. It is awaited at the end: a
        // task still pending when its executor ends is never dropped, and with it the ring (its
        // descriptors and buffers) leaked once per run of an agent core.
        let listener = glommio::spawn_local(self.clone().listen());
        let mut st = Reaping::new();
        let mut awake = Awake::new();
        loop {
            let n = self.pass();
            if self.stopped.get() && self.stop_done(&mut st.stop_deadline) {
                break;
            }
            if n > 0 {
                self.flag_only.set(false);
            }
            // One clock read serves the gathering, the sleeps due, the turn and the polling
            // below.
            let now = crate::clock::now_ns();
            self.gather_turn(now);
            // Sleeps woken are run at the next yield; they are not traffic (a polling ring that
            // took a shard's ticker for traffic would never stop polling).
            let woken = wake_due(now, false) > 0;
            let busy = n > 0 || self.kicked.replace(false);
            let poll_ns = self.poll_ns.get();
            if busy_turn(&mut st, now, busy || poll_ns > 0, poll_ns).await {
                continue;
            }
            if poll_ns > 0 && !self.stopped.get() && self.poll_step(&mut st, now, busy).await {
                continue;
            }
            if busy || woken {
                glommio::executor().yield_task_queue_now().await;
                continue;
            }
            // Unless the doze ends the pass, nothing came, a glommio timer is due, or it is
            // glommio's turn: park in glommio.
            let dozes = self.doze.get() && poll_ns == 0 && !self.stopped.get();
            if dozes && self.doze_step(&mut st, now).await {
                continue;
            }
            st.dozing_since = 0;
            if self.arm_bell() {
                continue;
            }
            self.park(&mut st, &mut awake).await;
        }
        drop(awake);
        self.finish(listener).await;
    }

    /// Once stopped: cancels what is in flight (the first time) and tells whether the reaper may
    /// end: nothing in flight, or 2 s since the stop.
    fn stop_done(&self, deadline: &mut Option<std::time::Instant>) -> bool {
        let deadline = *deadline.get_or_insert_with(|| {
            self.inner.borrow_mut().cancel_all();
            std::time::Instant::now() + Duration::from_secs(2)
        });
        self.inner.borrow().in_flight == 0 || std::time::Instant::now() > deadline
    }

    /// Latency mode (the ring polls, `poll_ns` > 0): whether this pass is done (the reaper
    /// yielded to its queue and looks again), or polling has lapsed for want of traffic.
    async fn poll_step(&self, st: &mut Reaping, now: u64, busy: bool) -> bool {
        // The pass entered the kernel when task work was pending (the ring's flag), which is
        // how a completion reaches a thread that never sleeps.
        if busy {
            st.active_ns = now;
        }
        if now.saturating_sub(st.active_ns) >= self.poll_ns.get() {
            st.looked_idle_at = None;
            return false;
        }
        // From one empty pass to the next, with no task working in between, the core only
        // watched: counted as such, as a doze's spin is. A longer gap than a pass takes means
        // the thread was not running (preempted): not counted, as the watch must be CPU the
        // thread used.
        if let Some(at) = st.looked_idle_at.take().filter(|_| !busy) {
            let gap = now.saturating_sub(at);
            if gap < POLL_GAP_MAX {
                crate::clock::add_watch_ns(gap);
            }
        }
        if busy {
            glommio::executor().yield_task_queue_now().await;
            return true;
        }
        let _ = glommio::executor().executor_stats();
        glommio::executor().yield_task_queue_now().await;
        let alone = glommio::executor().executor_stats().tasks_executed() <= 1;
        if alone && !self.kicked.get() {
            st.looked_idle_at = Some(now);
        }
        true
    }

    /// Dozing in the ring instead of parking in glommio: whether the doze (or a task that ran,
    /// or a peer's batch) ended this pass; false when the reaper should park in glommio.
    async fn doze_step(&self, st: &mut Reaping, now: u64) -> bool {
        if st.dozing_since == 0 {
            st.dozing_since = now;
        }
        let deadline = next_deadline().unwrap_or(u64::MAX);
        let until = deadline.min(st.dozing_since + TURN_EVERY);
        if until <= now {
            return false;
        }
        // Did any other task run while this one yielded? Then there may be more.
        let _ = glommio::executor().executor_stats();
        glommio::executor().yield_task_queue_now().await;
        if glommio::executor().executor_stats().tasks_executed() > 1 || self.kicked.get() {
            return true;
        }
        let bell = self.peers.borrow().as_ref().map(|p| p.bell.clone());
        if let Some(bell) = &bell {
            // Flag, then look: a peer that sent before the flag was seen is found here; one
            // after it rings.
            bell.set_dozing(true);
            if self.drain_peers() {
                bell.set_dozing(false);
                return true;
            }
        }
        let wait = (until - now).min(DOZE_MAX.as_nanos() as u64);
        let woke = self.doze(wait, until == deadline);
        if let Some(bell) = &bell {
            bell.set_dozing(false);
            if self.drain_peers() {
                return true;
            }
        }
        if woke {
            DOZES.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        // A sleep this reaper ends is due: woken by the next pass.
        next_reaper_deadline().is_some_and(|t| t <= crate::clock::now_ns())
    }

    /// Parks in glommio until the bell (a completion), a kick (new work), the fallback timer, or
    /// the thread's next sleep, whichever is first (sleeps begun while it parks use glommio's
    /// timer: `Awake`); then counts a park the bell should have ended as a lost wake-up.
    async fn park(&self, st: &mut Reaping, awake: &mut Awake) {
        // At least a microsecond: glommio's timer ends at once, without its loop turning, when
        // polled past its time, and a sleep on glommio's timer that is due needs the turn (as
        // in the busy turn).
        let park = next_deadline()
            .map_or(FALLBACK, |t| Duration::from_nanos(t.saturating_sub(crate::clock::now_ns())))
            .clamp(st.turn_min, FALLBACK);
        #[cfg(test)]
        PARKS.fetch_add(1, Ordering::Relaxed);
        self.parks.set(self.parks.get() + 1);
        awake.set(false);
        let turn_min = &mut st.turn_min;
        let woke = futures_lite::future::or(
            std::future::poll_fn(|cx| {
                if self.kicked.get() {
                    return Poll::Ready(false);
                }
                if self.rung.replace(false) {
                    return Poll::Ready(true);
                }
                self.parked.set(Some(cx.waker().clone()));
                Poll::Pending
            }),
            async {
                let turned = turn_timer(park).await;
                *turn_min = next_turn_min(*turn_min, turned);
                false
            },
        )
        .await;
        awake.set(true);
        self.parked.set(None);
        let timer = !woke && !self.kicked.get();
        // What was already waiting when the timer ended the park: work that comes later (in
        // the moment before the pass below) woke no one late. Task work queued while the
        // thread slept runs as it leaves the kernel, so what waited is in the queue; the
        // task-run flag with an empty queue is work that came after the thread woke.
        let waiting = timer && !self.inner.borrow_mut().ring.completion().is_empty();
        // Work is counted from here, not from the last doze ([`Ring::doze`]).
        self.dozed_at.set(crate::clock::now_ns());
        self.turn_bytes.set(0);
        st.turn_at = self.dozed_at.get();
        self.inner.borrow_mut().ring.completion().disable_eventfd();
        if waiting {
            // The bell may be due as well (a thread held up past the timer wakes to both): its
            // task runs before this one looks again.
            glommio::executor().yield_task_queue_now().await;
        }
        if timer && self.pass() > 0 {
            if park == FALLBACK {
                LATE_PARKS.fetch_add(1, Ordering::Relaxed);
            }
            if waiting
                && park == FALLBACK
                && !self.rung.replace(false)
                && !self.bell_signalled()
                && !self.rang_in_glommio().await
            {
                // Work waited and the bell never rang: a lost wake-up (a park a sleep ended
                // sooner than the fallback is no evidence either way).
                RESCUED.fetch_add(1, Ordering::Relaxed);
                self.rescues.set(self.rescues.get() + 1);
            }
            self.kicked.set(true); // handle them, then look again before parking
        }
    }

    /// The reaper's end: writers waiting to gather go on, and the bell's task is ended and its
    /// eventfd closed.
    async fn finish(&self, listener: glommio::Task<()>) {
        self.gathering.set(false);
        self.gatherers.borrow_mut().drain(..).for_each(Waker::wake);
        // Let the bell's task see the stop: one bump ends its read.
        let one = 1u64.to_ne_bytes();
        if let Some(bell) = self.bell.borrow().as_ref() {
            // SAFETY: an 8-byte write from a live buffer to the eventfd this ring owns.
            unsafe { libc::write(bell.as_raw_fd(), one.as_ptr().cast(), 8) };
        }
        // Bounded: a read that never ends is cancelled with its task (dropping the handle).
        futures_lite::future::or(listener, glommio::timer::sleep(Duration::from_millis(100))).await;
        let bell = self.bell.borrow_mut().take();
        if let Some(bell) = bell.and_then(|b| Rc::try_unwrap(b).ok()) {
            let _ = bell.close().await;
        }
    }

    /// The bell's task: reads the eventfd (through glommio, so the thread may sleep on it) and
    /// wakes a parked reaper; ends once the ring is stopped.
    pub(super) async fn listen(self: Rc<Ring>) {
        while !self.stopped.get() {
            let Some(bell) = self.bell.borrow().clone() else { break };
            let _ = bell.read_at(0, 8).await;
            self.rung.set(true);
            if let Some(w) = self.parked.take() {
                w.wake();
            }
        }
    }

    /// Whether the bell rang in a read that glommio completed but had not yet reaped: that
    /// read takes the eventfd's signal, so neither [`Ring::bell_signalled`] nor the bell's task
    /// sees it until glommio's loop turns. Work that arrives just after the fallback timer
    /// ended a park, once glommio had reaped its rings, looks so; a turn tells it from a wake-up
    /// that was lost. Only asked when a park looks rescued (rare), so the turn costs nothing in
    /// traffic.
    pub(super) async fn rang_in_glommio(&self) -> bool {
        // The turn reaps glommio's rings and wakes the bell's task; the yield lets it run if
        // it was queued behind this one. A timer past due when first polled did not turn it:
        // a longer one then.
        let mut d = Duration::from_micros(1);
        while !turn_timer(d).await && d < FALLBACK {
            d = next_turn_min(d, false);
        }
        glommio::executor().yield_task_queue_now().await;
        self.rung.replace(false) || self.bell_signalled()
    }

    /// Whether the bell's eventfd holds a signal not yet read (its task has not heard it).
    pub(super) fn bell_signalled(&self) -> bool {
        let Some(bell) = self.bell.borrow().as_ref().map(|b| b.as_raw_fd()) else { return false };
        let mut fd = libc::pollfd { fd: bell, events: libc::POLLIN, revents: 0 };
        // SAFETY: one pollfd, alive for the call, on the eventfd this ring owns.
        let n = unsafe { libc::poll(&mut fd, 1, 0) };
        n == 1 && fd.revents & libc::POLLIN != 0
    }

    /// Lets completions ring the bell before a park; true when some came in the meantime (then
    /// the bell is off again and the caller makes another pass instead). Every completion of
    /// this ring is posted on this thread (single issuer: inline, or as task work run when the
    /// thread enters or leaves the kernel), so the flag, set first in program order, is seen by
    /// any completion the checks below miss, which rings the bell as it is posted.
    pub(super) fn arm_bell(&self) -> bool {
        let mut inner = self.inner.borrow_mut();
        let ring = &mut inner.ring;
        ring.completion().enable_eventfd();
        std::sync::atomic::fence(Ordering::SeqCst);
        let mut pending = !ring.completion().is_empty();
        if !pending && ring.submission().taskrun() {
            // The flag says task work may wait, but it is only a hint: the kernel sets it just
            // after adding the work, so a run in between leaves it set with nothing to run, and
            // it stays set until more work comes (a reaper that always took it for work never
            // parked again: a thread spinning for minutes). The first time, the caller's pass
            // runs the work with the bell off. If the flag is still all there is after that,
            // the work is run here, all of it, with the bell on: work added from the moment
            // the run empties the list rings it. (Entering for the queue's size with no time to
            // wait runs it all and returns.)
            pending = true;
            if self.flag_only.replace(true) {
                let all = ring.params().cq_entries() as usize;
                let now = types::Timespec::new();
                let args = types::SubmitArgs::new().timespec(&now);
                super::transit::submitting(!ring.submission().is_empty());
                let _ = ring.submitter().submit_with_args(all, &args);
                pending = !ring.completion().is_empty();
            }
        }
        if pending {
            ring.completion().disable_eventfd();
        } else {
            self.flag_only.set(false);
        }
        pending
    }

    /// Waits in this ring's `io_uring_enter` until a completion or `ns` passed; whether a
    /// completion is there to reap. `for_sleep`: the wait ends at a sleep's deadline (not at
    /// glommio's turn), which, when near, is watched through ([`NEAR_WAIT`]).
    pub(super) fn doze(&self, ns: u64, for_sleep: bool) -> bool {
        let mut inner = self.inner.borrow_mut();
        inner.submit_dirty();
        // Never past the wait: a deadline may end it sooner.
        let watch = self.watch_ns.get();
        let t0 = crate::clock::now_ns();
        let worked = t0.saturating_sub(self.dozed_at.get());
        let big = self.turn_bytes.replace(0) >= BIG_TURN_BYTES;
        let shared = crate::placement::core_shared(self.core, t0);
        // A near wait is watched through whole; it teaches the watch nothing.
        let near = for_sleep && !shared && ns <= NEAR_WAIT.as_nanos() as u64;
        let spin = match (self.watching.get() || big) && !shared {
            _ if near => ns,
            true => watch.min(ns),
            false => 0,
        };
        // The watch is CPU the thread used: a gap between two looks longer than a look takes
        // is time the thread did not run (preempted), and is not counted, as when polling.
        let (mut looked, mut watched) = (t0, 0);
        loop {
            let mut ready = !inner.ring.completion().is_empty();
            if !ready && inner.ring.submission().taskrun() {
                // Completions wait as task work: entering the kernel posts them.
                inner.departing();
                let _ = inner.ring.submit();
                ready = !inner.ring.completion().is_empty();
            }
            let now = crate::clock::now_ns();
            if now - looked < POLL_GAP_MAX {
                watched += now - looked;
            }
            looked = now;
            let spun = now - t0;
            if ready {
                self.dozed_at.set(now);
                if spin > 0 {
                    crate::clock::add_watch_ns(watched);
                }
                if !near {
                    self.watch_ns.set(next_watch(watch, worked, Dozed::Caught(spun)));
                }
                return true;
            }
            if spun > spin {
                // Not watching: one look at the queue, which is not watching.
                if spin > 0 {
                    crate::clock::add_watch_ns(watched);
                }
                if near {
                    // Watched to its end: nothing came.
                    self.dozed_at.set(now);
                    return false;
                }
                break;
            }
            std::hint::spin_loop();
        }
        let ts = types::Timespec::new().sec(ns / 1_000_000_000).nsec((ns % 1_000_000_000) as u32);
        let args = types::SubmitArgs::new().timespec(&ts);
        // ETIME (the wait ran out) and EINTR are answers too: the caller looks at the queue.
        inner.departing();
        let _ = inner.ring.submitter().submit_with_args(1, &args);
        // Task work that came after the wait ended is run now; the flag alone is no answer (it
        // can stay set with nothing to run: `arm_bell`).
        if inner.ring.completion().is_empty() && inner.ring.submission().taskrun() {
            inner.departing();
            let _ = inner.ring.submit();
        }
        let ready = !inner.ring.completion().is_empty();
        let now = crate::clock::now_ns();
        self.dozed_at.set(now);
        let dozed = if ready { Dozed::Woke(now - t0) } else { Dozed::Idle };
        self.watch_ns.set(next_watch(watch, worked, dozed));
        ready
    }

    /// After a pass: whether writers may gather now, and the ones that waited for this pass go
    /// on (run after the readers the pass woke, so that what those route joins their frames).
    pub(super) fn gather_turn(&self, now: u64) {
        let received = self.pass_bytes.replace(0) > 0;
        self.gathering.set(
            received
                && self.poll_ns.get() == 0
                && !self.stopped.get()
                && now.saturating_sub(self.dozed_at.get()) > GATHER_BUSY,
        );
        let mut gatherers = self.gatherers.borrow_mut();
        if !gatherers.is_empty() {
            gatherers.drain(..).for_each(Waker::wake);
        }
    }

    /// Submits what is queued and handles what completed; the count of completions.
    pub(super) fn pass(&self) -> usize {
        let mut inner = self.inner.borrow_mut();
        inner.submit_dirty();
        let inner = &mut *inner;
        let need = !inner.ring.submission().is_empty() || inner.ring.submission().taskrun();
        if need {
            inner.departing();
            if let Err(e) = inner.ring.submit() {
                if e.raw_os_error() != Some(libc::EBUSY) && e.kind() != io::ErrorKind::Interrupted {
                    // Nothing sane is left: fail every connection.
                    for s in &mut inner.slots {
                        s.rx_end.get_or_insert(Err(e.kind()));
                        s.tx_err.get_or_insert(e.kind());
                        wake(&mut s.read_waker);
                        wake(&mut s.write_waker);
                    }
                }
            }
        }
        self.reap_completions(inner)
    }

    /// Handles what completed, without a system call: [`Ring::pass`]'s second half, and what a
    /// writer whose buffer waits behind a send does first ([`UringStream::poll_send_owned`]).
    pub(super) fn reap_completions(&self, inner: &mut Inner) -> usize {
        let mut n = 0;
        let mut received = 0u64;
        let mut recycled = false;
        let mut bell_rang = false;
        loop {
            let Some(cqe) = inner.ring.completion().next() else { break };
            n += 1;
            let (gen, slot, op) = untag(cqe.user_data());
            let (res, flags) = (cqe.result(), cqe.flags());
            if op == OP_BELL {
                inner.bell_armed = false;
                bell_rang = true;
                continue;
            }
            if op != OP_CANCEL && inner.slots[slot].gen != gen {
                // Never expected: a slot is freed only once its operations ended.
                debug_assert!(false, "a completion for a freed slot");
                continue;
            }
            match op {
                OP_RECV => {
                    received += u64::try_from(res).unwrap_or(0);
                    if inner.slots[slot].own_flight {
                        inner.on_recv_own(slot, res);
                    } else {
                        recycled |= inner.on_recv(slot, res, flags);
                    }
                }
                OP_SEND => inner.on_send(slot, res),
                OP_SHUTDOWN => inner.on_shutdown(slot),
                _ => {}
            }
        }
        if received > 0 {
            super::transit::reaped();
        }
        self.turn_bytes.set(self.turn_bytes.get() + received);
        self.pass_bytes.set(self.pass_bytes.get() + received);
        if recycled {
            inner.provided.publish();
        }
        if bell_rang {
            if let Some(p) = self.peers.borrow().as_ref() {
                p.bell.clear();
            }
        }
        n
    }
}

/// What the reaper's loop carries from one pass to the next.
struct Reaping {
    /// Once stopped: when the reaper ends even with operations in flight.
    stop_deadline: Option<std::time::Instant>,
    /// Polling: when traffic last came.
    active_ns: u64,
    /// When the reaper began dozing instead of parking (0: it is not).
    dozing_since: u64,
    /// Polling: when the last pass that found nothing looked, if no task worked since.
    looked_idle_at: Option<u64>,
    /// The last look ended a turn of glommio's loop.
    turned: bool,
    /// When the last turn or park was.
    turn_at: u64,
    /// The shortest timer that turns glommio's loop ([`turn_timer`]): 1 µs, doubled while such
    /// timers end before the loop turns (a thread that runs slow).
    turn_min: Duration,
}

impl Reaping {
    fn new() -> Reaping {
        let now = crate::clock::now_ns();
        Reaping {
            stop_deadline: None,
            active_ns: now,
            dozing_since: 0,
            looked_idle_at: None,
            turned: false,
            turn_at: now,
            turn_min: Duration::from_micros(1),
        }
    }
}

/// Whether this pass turned glommio's loop (then the reaper looks again). A reaper that keeps
/// finding work (`working`), or polls, yields to its queue and is run again before glommio's
/// loop turns: for up to glommio's 100 ms preemption period no glommio timer of this thread
/// would fire and no wake from another thread would land (the sleeps a reaper ends are woken
/// by its passes). So the loop turns once such a sleep is due (polling) or [`TURN_LATE`] past
/// due (busy: the reaper usually runs out of work sooner), and at least every [`TURN_EVERY`]
/// (a turn costs a few µs: more often cost the latency mode's round trip a fifth); once: the
/// woken run before the next look.
async fn busy_turn(st: &mut Reaping, now: u64, working: bool, poll_ns: u64) -> bool {
    if working && !st.turned {
        let late = if poll_ns > 0 { 0 } else { TURN_LATE };
        if now.saturating_sub(st.turn_at) >= TURN_EVERY
            || next_glommio_deadline().is_some_and(|t| t.saturating_add(late) <= now)
        {
            TURNS.fetch_add(1, Ordering::Relaxed);
            st.turn_min = next_turn_min(st.turn_min, turn_timer(st.turn_min).await);
            st.turned = true;
            st.turn_at = crate::clock::now_ns();
            st.dozing_since = 0; // the doze's own turn counts from here too
            return true;
        }
    }
    st.turned = false;
    false
}

/// How long the next doze watches, after one that watched `watch` ns, the thread having worked
/// `worked` ns before it. Missed by a little: long enough to catch it next time; caught: drifts
/// down towards what it took; missed by a lot, or nothing came: [`DOZE_SPIN`], so that a quiet
/// thread sleeps as soon as before. Never past [`WATCH_MAX`], nor past twice the work before
/// it: a thread woken now and then for a small message (moderate load) keeps the short watch,
/// while one taking turns with its peer in big rounds (a frame of 160 messages each way)
/// watches about as long as a round takes, and watching never costs much more than working.
pub(super) fn next_watch(watch: u64, worked: u64, dozed: Dozed) -> u64 {
    let floor = DOZE_SPIN.as_nanos() as u64;
    let max = (WATCH_MAX.as_nanos() as u64).min(2 * worked).max(floor);
    match dozed {
        Dozed::Caught(after) => ((watch * 7 + after + after / 4) / 8).clamp(floor, max.max(watch)),
        Dozed::Woke(after) if after <= max => (after + after / 4).clamp(floor, max),
        Dozed::Woke(_) | Dozed::Idle => floor,
    }
}

#[cfg(test)]
thread_local! {
    /// For the tests: nanoseconds between making a turn timer and first polling it.
    pub(super) static SLOW_TURN_NS: Cell<u64> = const { Cell::new(0) };
}

/// Waits on a glommio timer of `d`; whether glommio's loop turned before it ended. A timer
/// already due when first polled ends at once, with no turn (its timers unfired, wakes from
/// other threads unseen): a thread slowed or preempted between making the timer and polling it.
/// Under valgrind every 1 µs timer was such a one, and a reaper parking for a sleep that only
/// glommio's timer ends never let the loop turn: 100 million parks in 15 minutes.
pub(super) async fn turn_timer(d: Duration) -> bool {
    let mut timer = std::pin::pin!(glommio::timer::Timer::new(d));
    #[cfg(test)]
    {
        // A thread that runs slow: the timer is first polled this long after it was made.
        let until = crate::clock::now_ns() + SLOW_TURN_NS.with(Cell::get);
        while crate::clock::now_ns() < until {
            std::hint::spin_loop();
        }
    }
    let mut polls = 0u32;
    std::future::poll_fn(|cx| {
        polls += 1;
        timer.as_mut().poll(cx).map(|_| polls > 1)
    })
    .await
}

/// The next shortest turn timer, after one of `min` that turned glommio's loop or not: twice
/// as long after a miss (up to [`FALLBACK`]), so that a slow thread's loop turns at last; back
/// to 1 µs after a turn.
pub(super) fn next_turn_min(min: Duration, turned: bool) -> Duration {
    if turned {
        Duration::from_micros(1)
    } else {
        (min * 2).min(FALLBACK)
    }
}
