//! The protocol-free state of one agent core: its agents' pacing, the booking of every request,
//! the accounting and the histograms. Adapters report what they decode through its methods;
//! [`super::group::Group`] drives it.

use std::task::Waker;

use super::counters::{add, add_name, GaveUp, GroupCounters};
use super::group::{GroupConfig, Schedule, MEASURED_BIT};
use super::{Pacing, Stop, Workload};
use crate::metrics::Latencies;

/// A virtual agent: 40 bytes of state; its neighbours are computed from the topology.
#[derive(Debug, Clone, Default)]
pub(super) struct Agent {
    /// Requests sent so far (warm-up included): also the index of its next scheduled message.
    pub(super) sent: u64,
    /// Measured requests sent.
    pub(super) measured: u64,
    /// Requests due under open-loop pacing but not sent yet (window full).
    pub(super) owed: u64,
    /// Open loop: warm-up slots it never sent, given up when the measured window came
    /// ([`Book::forgive_warm_up`]); its next request takes slot `sent + skipped`.
    pub(super) skipped: u64,
    /// Requests awaiting a reply or an error.
    pub(super) in_flight: u32,
    /// Which neighbour gets the next request.
    pub(super) next_neighbour: u32,
}

/// A request as the loop books it, for an adapter to encode.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing {
    /// Sender's agent id.
    pub from: u32,
    /// Recipient's agent id (request/reply); the topic (`fanout`), agent type (`broadcast`),
    /// lock index (`locks`) or round (`barriers`).
    pub to: u32,
    /// The sender's sequence number for it, with [`MEASURED_BIT`] when measured.
    pub message_id: u64,
    /// Sent in the measured window.
    pub measured: bool,
    /// When it should have left (ns).
    pub intended_ns: u64,
    /// When it leaves (ns).
    pub sent_ns: u64,
}

/// Who a router error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum About {
    /// A request of agent `Some(id)`, or of none the router named (a publication refused for
    /// one of its recipients: it may still reach the others).
    Request(Option<u32>),
    /// A reply.
    Reply,
}

/// A router error's kind: a code of the native protocol or a name of the JSON one.
#[derive(Debug, Clone, Copy)]
pub enum ErrorKind<'a> {
    /// Native error code.
    Code(u16),
    /// JSON error name.
    Name(&'a str),
}

/// The longest pipeline whose hops are timed stage by stage ([`Book::hops`]): a histogram
/// per stage and core (220 KiB each) would grow without bound with `--stages`.
pub const HOP_STAGES_MAX: u32 = 16;

/// [`crate::transport::uring::SPIN_RTT_MAX`] in nanoseconds.
const SPIN_RTT_MAX_NS: u64 = crate::transport::uring::SPIN_RTT_MAX.as_nanos() as u64;

/// The protocol-free state of a group: pacing, booking, accounting, histograms. Adapters report
/// what they decode through its methods.
#[derive(Debug)]
pub struct Book {
    pub(super) cfg: GroupConfig,
    pub(super) schedule: Schedule,
    pub(super) agents: Vec<Agent>,
    /// Each connection's parked writer.
    pub(super) writers: Vec<Option<Waker>>,
    /// The connection whose input is being handled by a caller that sends its output itself
    /// ([`Group::on_input_quiet`](super::group::Group::on_input_quiet)): its writer is left
    /// parked. `usize::MAX`: none.
    pub(super) quiet: usize,
    /// Registration acknowledgements received, per connection.
    pub(super) acks: Vec<u32>,
    /// Connections closed under the group while the run was on.
    pub(super) lost: Vec<bool>,
    /// Why the router refused a registration, if it did.
    pub(super) refused: Option<String>,
    /// Open loop: the next index in this group's send sequence.
    pub(super) next_due: u64,
    /// Open loop: the schedule's first measured slot has come up, and the warm-up's backlog
    /// was given up.
    pub(super) crossed: bool,
    /// Open loop: nanoseconds between two of this group's sends (agents_total / rate).
    pub(super) slot_ns: f64,
    /// Requests still in flight across the group.
    pub(super) in_flight: u64,
    /// Agents that are done sending (count reached, or their connection lost).
    pub(super) agents_done: u32,
    /// Whether every agent is done sending (count mode) or the end time passed.
    pub(super) finished: bool,
    /// The run is over: writers and the pacer finish.
    pub(super) stopped: bool,
    pub(super) now_ns: u64,
    /// Set while an adapter books as of an earlier time than now: closed loop then sends if
    /// that time is before the end of sending, and takes it as the intended time (every agent
    /// of a barrier round decides by the round's release time, so all enter the next round or
    /// none does, and all of that round is measured or none of it).
    pub(super) as_of_ns: Option<u64>,
    /// Woken when something the shell waits for happens (acks, a lost connection, drained).
    pub(super) monitor: Option<Waker>,
    /// Latency histograms of this core.
    pub latencies: Latencies,
    /// `pipeline`: each hop's one-way latency by the stage it reached (0: back at the source),
    /// measured items only; empty for the other workloads (and pipelines past
    /// [`HOP_STAGES_MAX`]). Where kept, a hop is recorded here alone, not in `latencies`'
    /// one-way view: [`Book::whole_latencies`] adds them up (one record a hop, as before).
    pub hops: Vec<hdrhistogram::Histogram<u64>>,
    /// Counters of this core.
    pub counters: GroupCounters,
    /// Raw round trips answered since the core last looked, warm-up included: how many took
    /// under [`SPIN_RTT_MAX_NS`], and how many there were ([`Book::short_round_trips`]).
    pub(super) recent_rtt: (u64, u64),
}

impl Book {
    pub(super) fn new(cfg: GroupConfig) -> Book {
        let conns = cfg.seats.conns(cfg.count) as usize;
        let slot_ns = match cfg.pacing {
            // The rate is the originating agents' (a pipeline's sources): the other agents'
            // slots of the schedule are never due ([`Book::may_owe`]), so a round of all the
            // agents' slots lasts originators / rate.
            Pacing::Open { rate, .. } => {
                let n = cfg.agents_total.max(1);
                1e9 / rate * f64::from(cfg.workload.originators(n)) / f64::from(n)
            }
            Pacing::Closed { .. } => 0.0,
        };
        Book {
            agents: vec![Agent::default(); cfg.count as usize],
            writers: (0..conns).map(|_| None).collect(),
            quiet: usize::MAX,
            acks: vec![0; conns],
            lost: vec![false; conns],
            refused: None,
            next_due: 0,
            crossed: false,
            slot_ns,
            in_flight: 0,
            // Agents that start nothing (consensus followers) are done from the start.
            agents_done: (0..cfg.count)
                .filter(|&l| !cfg.workload.originates(cfg.first + l, cfg.agents_total))
                .count() as u32,
            finished: false,
            stopped: false,
            now_ns: 0,
            as_of_ns: None,
            monitor: None,
            latencies: Latencies::default(),
            hops: match cfg.workload {
                Workload::Pipeline { stages } if stages <= HOP_STAGES_MAX => {
                    (0..stages.max(2)).map(|_| crate::metrics::histogram()).collect()
                }
                _ => Vec::new(),
            },
            counters: GroupCounters::default(),
            recent_rtt: (0, 0),
            cfg,
            schedule: Schedule::UNSET,
        }
    }

    /// The settings.
    pub fn config(&self) -> &GroupConfig {
        &self.cfg
    }

    /// The schedule.
    pub fn schedule(&self) -> Schedule {
        self.schedule
    }

    /// The time of the input being decoded.
    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    /// Whether the run has not started yet (registration answers are expected).
    pub fn registering(&self) -> bool {
        self.schedule == Schedule::UNSET
    }

    /// A registration on `conn` was acknowledged.
    pub fn ack(&mut self, conn: usize) {
        self.acks[conn] += 1;
        self.wake_monitor();
    }

    /// The router refused a registration.
    pub fn refused(&mut self, why: String) {
        self.refused.get_or_insert(why);
        self.wake_monitor();
    }

    /// The local index of agent `id`, if it belongs to this group.
    #[inline]
    pub(super) fn local_of(&self, id: u32) -> Option<usize> {
        let global = id.checked_sub(self.cfg.id_base)?;
        let local = global.checked_sub(self.cfg.first)?;
        (local < self.cfg.count).then_some(local as usize)
    }

    #[inline]
    pub(super) fn conn_of(&self, local: usize) -> usize {
        self.cfg.seats.conn_of(self.cfg.count, local)
    }

    /// Whether most raw round trips answered since the last call (warm-up included) took
    /// under [`SPIN_RTT_MAX_NS`]: their median, robust to a stall or two. `None` when none
    /// was answered.
    pub(super) fn short_round_trips(&mut self) -> Option<bool> {
        let (short, n) = std::mem::take(&mut self.recent_rtt);
        (n > 0).then_some(2 * short > n)
    }

    /// Counts one answered round trip of `raw_ns` for [`Book::short_round_trips`].
    #[inline]
    fn note_round_trip(&mut self, raw_ns: u64) {
        let short = u64::from(raw_ns < SPIN_RTT_MAX_NS);
        self.recent_rtt = (self.recent_rtt.0 + short, self.recent_rtt.1 + 1);
    }

    #[inline]
    pub(super) fn in_window(&self) -> bool {
        self.now_ns >= self.schedule.measure_ns && self.now_ns < self.schedule.end_ns
    }

    /// A request to agent `to`, sent at `sent_ns`, was delivered. Returns whether it is one of
    /// this group's agents; if so the adapter must queue the reply (counted here as sent).
    #[inline]
    pub fn request_delivered(&mut self, to: u32, sent_ns: u64, measured: bool) -> bool {
        let ours = self.hop_delivered(to, sent_ns, measured);
        self.counters.replies_sent += u64::from(ours);
        ours
    }

    /// `pipeline`: an item, handed on at `sent_ns`, reached stage `to`, which is not the last
    /// (that one's delivery is [`Book::request_delivered`]: it returns the item as a reply).
    /// Returns whether `to` is one of this group's agents; if so the adapter hands the item on.
    #[inline]
    pub fn hop_delivered(&mut self, to: u32, sent_ns: u64, measured: bool) -> bool {
        if self.local_of(to).is_none() {
            self.counters.unexpected += 1;
            return false;
        }
        self.counters.requests_delivered += 1;
        if self.in_window() {
            self.counters.window_deliveries += 1;
        }
        if measured {
            self.one_way(to, self.now_ns.saturating_sub(sent_ns));
            self.counters.last_measured_delivery_ns = self.now_ns;
        }
        true
    }

    /// A measured delivery to agent `to` took `ns`: a pipeline's hop by the stage it reached
    /// (a source's: the way back), any other in the one-way view.
    #[inline]
    fn one_way(&mut self, to: u32, ns: u64) {
        if self.hops.is_empty() {
            return self.latencies.record_one_way(ns);
        }
        // An agent past the last pipeline has no stage (and gets no item).
        let global = to.wrapping_sub(self.cfg.id_base);
        let stages = self.hops.len() as u32;
        match self.hops.get_mut((global % stages) as usize) {
            Some(h) if global < self.cfg.agents_total / stages * stages => {
                h.saturating_record(ns.max(1));
            }
            _ => self.latencies.record_one_way(ns),
        }
    }

    /// The latency views with a pipeline's hops added to the one-way one.
    pub fn whole_latencies(&self) -> Latencies {
        let mut l = self.latencies.clone();
        for h in &self.hops {
            // Same bounds: adding cannot fail.
            let _ = l.one_way.add(h);
        }
        l
    }

    /// A reply to agent `to` was delivered: `(intended, actual)` are its request's send times,
    /// `reply_sent_ns` when the reply left. Returns the agent whose window slot it freed: the
    /// adapter sends from it at once ([`Book::send_from`]).
    #[inline]
    #[must_use]
    pub fn reply_delivered(
        &mut self,
        to: u32,
        (intended_ns, actual_ns): (u64, u64),
        reply_sent_ns: u64,
        measured: bool,
    ) -> Option<usize> {
        let Some(local) = self.local_of(to) else {
            self.counters.unexpected += 1;
            return None;
        };
        self.counters.replies_delivered += 1;
        if self.in_window() {
            self.counters.window_deliveries += 1;
        }
        let raw = self.now_ns.saturating_sub(actual_ns);
        self.note_round_trip(raw);
        if measured {
            let now = self.now_ns;
            self.latencies.record_rtt(now.saturating_sub(intended_ns), raw);
            self.one_way(to, now.saturating_sub(reply_sent_ns));
            self.counters.round_trips_measured += 1;
            self.counters.last_measured_delivery_ns = now;
        }
        self.resolve(local)
    }

    /// A server answered agent `from`'s request (HTTP: no receiving agent, the server's
    /// response is both delivery and reply), intended at `intended_ns`, handled now: `(left,
    /// arrived)` are when it went on the wire and its answer came off it (the raw round trip).
    /// Counted once as a delivery in the window. Returns the agent whose window slot it freed.
    #[inline]
    #[must_use]
    pub fn answered(
        &mut self,
        from: u32,
        intended_ns: u64,
        (left_ns, arrived_ns): (u64, u64),
        measured: bool,
    ) -> Option<usize> {
        let Some(local) = self.local_of(from) else {
            self.counters.unexpected += 1;
            return None;
        };
        let raw = arrived_ns.saturating_sub(left_ns);
        self.note_round_trip(raw);
        if measured {
            self.measured_round_trip(self.now_ns.saturating_sub(intended_ns), raw);
        }
        self.op_done(local)
    }

    /// A workload's operation waited from `(intended, actual)` until now (a lock granted, a
    /// barrier released, a publication complete): one measured round trip.
    #[inline]
    pub fn waited(&mut self, (intended_ns, actual_ns): (u64, u64)) {
        let now = self.now_ns;
        self.measured_round_trip(now.saturating_sub(intended_ns), now.saturating_sub(actual_ns));
    }

    /// One measured round trip, now: `rtt_ns` from its intended send time, `raw_ns` as sent.
    #[inline]
    fn measured_round_trip(&mut self, rtt_ns: u64, raw_ns: u64) {
        self.latencies.record_rtt(rtt_ns, raw_ns);
        self.counters.round_trips_measured += 1;
        self.counters.last_measured_delivery_ns = self.now_ns;
    }

    /// A workload's operation of agent `local` is done (a lock released, a barrier passed):
    /// counted as a request answered, once as a delivery in the window. Returns the agent
    /// whose window slot it freed.
    #[inline]
    #[must_use]
    pub fn op_done(&mut self, local: usize) -> Option<usize> {
        let in_window = self.in_window();
        let c = &mut self.counters;
        c.requests_delivered += 1;
        c.replies_sent += 1;
        c.replies_delivered += 1;
        c.window_deliveries += u64::from(in_window);
        self.resolve(local)
    }

    /// A publication sent at `sent_ns` reached `k` of this core's agents at once (one copy per
    /// connection).
    #[inline]
    pub fn fan_delivered(&mut self, k: u64, sent_ns: u64, measured: bool) {
        self.counters.requests_delivered += k;
        if self.in_window() {
            self.counters.window_deliveries += k;
        }
        if measured {
            let ns = self.now_ns.saturating_sub(sent_ns).max(1);
            self.latencies.one_way.saturating_record_n(ns, k);
            self.counters.last_measured_delivery_ns = self.now_ns;
        }
    }

    /// A publication of agent `local` reached every recipient. Returns the agent whose window
    /// slot it freed.
    #[inline]
    #[must_use]
    pub fn fan_resolved(&mut self, local: usize) -> Option<usize> {
        self.counters.replies_sent += 1;
        self.counters.replies_delivered += 1;
        self.resolve(local)
    }

    /// Wakes connection `conn`'s writer (an adapter queued something to send), unless the
    /// input being handled is its own and its caller sends the output itself.
    #[inline]
    pub fn wake_writer(&mut self, conn: usize) {
        if conn != self.quiet {
            if let Some(w) = self.writers[conn].take() {
                w.wake();
            }
        }
    }

    /// The router answered a message with an error. Returns the agent whose window slot it
    /// freed, if any: the adapter sends from it at once ([`Book::send_from`]).
    #[inline]
    #[must_use]
    pub fn router_error(&mut self, about: About, kind: ErrorKind<'_>) -> Option<usize> {
        let c = &mut self.counters;
        match (about, kind) {
            (About::Reply, ErrorKind::Code(code)) => add(&mut c.reply_errors, &code, 1),
            (About::Reply, ErrorKind::Name(n)) => add_name(&mut c.reply_errors_named, n),
            (About::Request(_), ErrorKind::Code(code)) => add(&mut c.request_errors, &code, 1),
            (About::Request(_), ErrorKind::Name(n)) => add_name(&mut c.request_errors_named, n),
        }
        match about {
            About::Request(Some(id)) => self.resolve(self.local_of(id)?),
            _ => None,
        }
    }

    /// The router refused a whole frame (malformed, too large) or gave up on the connection
    /// (slow consumer, timeout) with `code`: it names no request, and the router closes the
    /// connection, whose requests are then given up on as `connection_lost`. Counted apart, so
    /// that no request is resolved twice.
    pub fn frame_error(&mut self, code: u16) {
        add(&mut self.counters.frame_errors, &code, 1);
    }

    /// Something the router sent that is no part of the protocol here.
    pub fn unexpected(&mut self) {
        self.counters.unexpected += 1;
    }

    /// A request of agent `local` is answered (reply or error): free its window slot.
    #[inline]
    pub(super) fn resolve(&mut self, local: usize) -> Option<usize> {
        let a = &mut self.agents[local];
        if a.in_flight == 0 {
            return None;
        }
        a.in_flight -= 1;
        self.in_flight -= 1;
        if self.in_flight == 0 {
            self.wake_monitor();
        }
        Some(local)
    }

    /// Sends what agent `local` may send now, each request encoded by `encode` (the adapter's
    /// [`Adapter::request`](super::group::Adapter::request)), and wakes the writers concerned.
    #[inline]
    pub fn send_from(&mut self, local: usize, mut encode: impl FnMut(usize, &Outgoing)) {
        while let Some((conn, out)) = self.book(local) {
            encode(conn, &out);
            self.wake_writer(conn);
        }
    }

    pub(super) fn wake_monitor(&mut self) {
        if let Some(w) = self.monitor.take() {
            w.wake();
        }
    }

    #[inline]
    pub(super) fn agent_may_send_more(&self, local: usize) -> bool {
        match self.cfg.stop {
            Stop::Count { per_agent } => self.agents[local].measured < per_agent,
            Stop::Duration(_) => true,
        }
    }

    /// Open loop: whether a send due to agent `local` is owed (it starts operations, may send
    /// more, and its connection is up).
    #[inline]
    pub(super) fn may_owe(&self, local: usize) -> bool {
        self.agent_may_send_more(local)
            && !self.lost[self.conn_of(local)]
            && self.cfg.workload.originates(self.cfg.first + local as u32, self.cfg.agents_total)
    }

    /// Open loop, at the start of a round (`next_due` a multiple of the group's count): how
    /// many whole rounds from `next_due` are due by `now_ns` and before the end, each round's
    /// last send being its latest. A doubling, then a bisection: a few dozen looks however
    /// far behind the group is.
    pub(super) fn rounds_due(&self, now_ns: u64) -> u64 {
        let count = u64::from(self.cfg.count.max(1));
        let due = |rounds: u64| {
            let last = rounds
                .checked_mul(count)
                .and_then(|n| self.next_due.checked_add(n - 1))
                .map(|q| self.intended_ns(q));
            // Up to the first measured slot, not across it (`forgive_warm_up` comes between).
            let side = self.crossed || last.is_some_and(|t| t < self.schedule.measure_ns);
            side && last.is_some_and(|t| t <= now_ns && t < self.schedule.end_ns)
        };
        if !due(1) {
            return 0;
        }
        let mut held = 1;
        while held < u64::MAX / 2 && due(held * 2) {
            held *= 2;
        }
        // `held` is due, `2 × held` is not: bisect between them.
        let mut failed = held * 2;
        while failed - held > 1 {
            let mid = held + (failed - held) / 2;
            if due(mid) {
                held = mid;
            } else {
                failed = mid;
            }
        }
        held
    }

    /// Open loop, as the schedule's first measured slot comes up: the warm-up's slots still
    /// owed are given up (counted as `warmup_missed_sends`), not sent in the window, so that
    /// the window starts from the asked schedule rather than from a backlog the warm-up left:
    /// a run that keeps up measures the same, a warm-up that fell behind (a slow start) does
    /// not spill into the window, and one that can never keep up measures its window's sends,
    /// late by what the window made them, instead of sending only warm-up slots there.
    pub(super) fn forgive_warm_up(&mut self) {
        self.crossed = true;
        let mut forgiven = 0;
        for a in &mut self.agents {
            a.skipped += a.owed;
            forgiven += a.owed;
            a.owed = 0;
        }
        self.counters.warmup_missed_sends += forgiven;
    }

    pub(super) fn update_finished(&mut self) {
        let was = self.finished;
        self.finished = match self.cfg.stop {
            Stop::Duration(_) => self.now_ns >= self.schedule.end_ns,
            Stop::Count { .. } => self.agents_done >= self.cfg.count,
        };
        if self.finished && !was {
            // The backlog of due sends that never left: missed, not errors.
            self.counters.missed_sends += self.agents.iter().map(|a| a.owed).sum::<u64>();
            for a in &mut self.agents {
                a.owed = 0;
            }
            self.wake_monitor();
        }
    }

    /// Intended time of entry `q` of this group's send sequence: agent `first + q % count`'s
    /// `q / count`-th request. Agents of the whole run are evenly interleaved.
    #[inline]
    pub(super) fn intended_ns(&self, q: u64) -> u64 {
        let count = u64::from(self.cfg.count.max(1));
        let (round, local) = (q / count, q % count);
        let slot = round * u64::from(self.cfg.agents_total) + u64::from(self.cfg.first) + local;
        self.schedule.start_ns + (slot as f64 * self.slot_ns) as u64
    }

    #[inline]
    pub(super) fn window(&self) -> u32 {
        match self.cfg.pacing {
            Pacing::Closed { window } | Pacing::Open { window, .. } => window.max(1),
        }
    }

    /// Books the next request agent `local` may send now, if any.
    #[inline]
    pub(super) fn book(&mut self, local: usize) -> Option<(usize, Outgoing)> {
        // Cheapest refusals first: this runs twice per answer, and the second time the window
        // is full.
        let a = &self.agents[local];
        let finished = self.finished && self.as_of_ns.is_none();
        if a.in_flight >= self.window() || finished || !self.agent_may_send_more(local) {
            return None;
        }
        let conn = self.conn_of(local);
        let n = self.cfg.agents_total;
        let global = self.cfg.first + local as u32;
        let rr = self.cfg.workload.uses_topology();
        let degree = if rr {
            self.cfg.topology.degree(global, n)
        } else {
            u32::from(self.cfg.workload.originates(global, n))
        };
        if degree == 0 || self.lost[conn] {
            return None;
        }
        let intended = match self.cfg.pacing {
            Pacing::Closed { .. }
                if self.as_of_ns.unwrap_or(self.now_ns) >= self.schedule.end_ns =>
            {
                return None
            }
            // A barrier round's agents enter the next round as of its release: all of them
            // measured, or none.
            Pacing::Closed { .. } => self.as_of_ns.unwrap_or(self.now_ns),
            Pacing::Open { .. } if a.owed == 0 => return None,
            Pacing::Open { .. } => {
                self.intended_ns((a.sent + a.skipped) * u64::from(self.cfg.count) + local as u64)
            }
        };
        let measured = intended >= self.schedule.measure_ns;
        let c = &mut self.counters;
        c.requests_sent += 1;
        let open = matches!(self.cfg.pacing, Pacing::Open { .. });
        // Sends that leave in the warm-up are excluded, late or not (a schedule that starts
        // late is not an overload); a backlog still sent in the window is late there.
        let leaves_in_window =
            self.now_ns >= self.schedule.measure_ns && self.now_ns < self.schedule.end_ns;
        c.late_sends += u64::from(
            open && leaves_in_window
                && self.now_ns.saturating_sub(intended) > self.cfg.late_after_ns,
        );
        c.requests_sent_in_window += u64::from(leaves_in_window);
        let a = &mut self.agents[local];
        let seq = a.sent;
        let to = match self.cfg.workload {
            Workload::RequestReply => {
                let to = self.cfg.topology.neighbour(global, n, a.next_neighbour);
                // Round-robin (`% degree` without a division: it is below `degree`).
                a.next_neighbour =
                    if a.next_neighbour + 1 >= degree { 0 } else { a.next_neighbour + 1 };
                self.cfg.id_base + to
            }
            // Its own topic; the run's agent type.
            Workload::Fanout { .. } => self.cfg.id_base + global,
            Workload::Broadcast => self.cfg.id_base,
            // Agents start on different locks and walk through them all.
            Workload::Locks { locks, .. } => {
                ((u64::from(global) + seq) % u64::from(locks.max(1))) as u32
            }
            // The round.
            Workload::Barriers => seq as u32,
            // Decided by discovery.
            Workload::Churn { .. } => 0,
            // The leader's group.
            Workload::Consensus { .. } => self.cfg.workload.group_of(global, n).0,
            Workload::Delegation { .. } => 0,
            Workload::Election { .. } => self.cfg.workload.group_of(global, n).0,
            // The source's next stage.
            Workload::Pipeline { .. } => self.cfg.id_base + global + 1,
        };
        a.sent += 1;
        a.owed = a.owed.saturating_sub(1);
        a.in_flight += 1;
        self.in_flight += 1;
        if measured {
            a.measured += 1;
            c.requests_measured += 1;
            if matches!(self.cfg.stop, Stop::Count { per_agent } if a.measured == per_agent) {
                self.agents_done += 1;
            }
        }
        let out = Outgoing {
            from: self.cfg.id_base + global,
            to,
            message_id: seq | if measured { MEASURED_BIT } else { 0 },
            measured,
            intended_ns: intended,
            sent_ns: self.now_ns,
        };
        Some((conn, out))
    }

    /// Connection `c` closed under the run: its agents stop, and every request they have in
    /// flight becomes an error of kind `connection_lost`.
    pub(super) fn lose_connection(&mut self, c: usize) {
        let b = self;
        if b.stopped || b.lost[c] {
            return;
        }
        b.lost[c] = true;
        let mut gone = 0u64;
        for l in b.cfg.seats.agents(b.cfg.count, c) {
            let local = l as usize;
            let starts = b.cfg.workload.originates(b.cfg.first + l, b.cfg.agents_total);
            if starts && b.agent_may_send_more(local) && matches!(b.cfg.stop, Stop::Count { .. }) {
                b.agents_done += 1;
            }
            let a = &mut b.agents[local];
            gone += u64::from(a.in_flight);
            a.in_flight = 0;
            a.owed = 0;
        }
        if gone > 0 {
            add(&mut b.counters.unanswered, &GaveUp::ConnectionLost, gone);
            b.in_flight -= gone;
        }
        b.update_finished();
        b.wake_monitor();
    }

    /// Gives up on every request still in flight, counting each as an error of kind `why`.
    pub(super) fn give_up_all(&mut self, why: GaveUp) {
        let n: u64 = self.agents.iter().map(|a| u64::from(a.in_flight)).sum();
        if n > 0 {
            add(&mut self.counters.unanswered, &why, n);
        }
        for a in &mut self.agents {
            a.in_flight = 0;
        }
        self.in_flight = 0;
    }
}
