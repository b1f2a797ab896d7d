//! The one agent loop, runtime-free: one core's virtual agents, their pacing, the booking of
//! every request, the accounting and the histograms. Generic over an [`Adapter`] that turns
//! requests into bytes and bytes into events; the native frames (`native`) and the seed JSON
//! protocol (`json`) are two adapters of this one loop, so pacing, late sends, the end of sending
//! and what counts as delivered or lost are written once.
//!
//! The shell (`driver`) feeds a [`Group`] time and bytes and writes what it queues. Every request
//! carries its intended and actual send times; the receiver echoes them in its reply, so the
//! requester computes both round trips without keeping any state per message.
//!
//! Invariant: every request a group sends is resolved exactly once at its requester — by a reply,
//! by a router error, or by the requester giving up on it (`connection_lost`, `drain_timeout`,
//! `aborted`) — so `requests_sent = replies_delivered + request errors + unanswered + in flight`.

use std::task::{Context, Poll, Waker};

use super::topology::Topology;
use super::{Pacing, Stop};
use crate::metrics::Latencies;
use crate::wire::{AgentId, Compression, ErrorCode};

/// Message id bit: this is a reply (errors about it go to the replier).
pub const REPLY_BIT: u64 = 1 << 63;
/// Message id bit: the request was sent in the measured window.
pub const MEASURED_BIT: u64 = 1 << 62;
/// Bytes at the start of every payload that carry the send times.
pub const STAMP_BYTES: usize = 16;

/// Settings of one group, derived from the scenario.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// The graph.
    pub topology: Topology,
    /// Agents in the whole run.
    pub agents_total: u32,
    /// Global index of this group's first agent.
    pub first: u32,
    /// Agents in this group.
    pub count: u32,
    /// Agent id = `id_base` + global index.
    pub id_base: u32,
    /// Agents sharing one connection.
    pub agents_per_conn: u32,
    /// Closed or open loop.
    pub pacing: Pacing,
    /// Count or duration.
    pub stop: Stop,
    /// Payload bytes per request (≥ 16).
    pub payload_bytes: usize,
    /// Most messages per frame.
    pub batch_max: u32,
    /// Compression of frames sent.
    pub compression: Compression,
    /// A send leaving later than this after its intended time counts as late.
    pub late_after_ns: u64,
    /// Priority of every request and reply.
    pub priority: u8,
}

/// When the run starts, when measuring starts, when sending stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// First sends (warm-up begins).
    pub start_ns: u64,
    /// Measured window begins (warm-up ends).
    pub measure_ns: u64,
    /// No request is sent at or after this (duration mode); `u64::MAX` in count mode.
    pub end_ns: u64,
}

impl Schedule {
    /// Not known yet: nothing is due, nothing is measured.
    pub const UNSET: Schedule =
        Schedule { start_ns: u64::MAX, measure_ns: u64::MAX, end_ns: u64::MAX };
}

/// Why a requester stopped waiting for an answer: client-side error kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GaveUp {
    /// The requester's connection closed with the request in flight.
    ConnectionLost,
    /// No answer within the drain (or stall) timeout.
    DrainTimeout,
    /// The run was stopped early by a failure elsewhere.
    Aborted,
}

impl GaveUp {
    /// The error kind's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            GaveUp::ConnectionLost => "connection_lost",
            GaveUp::DrainTimeout => "drain_timeout",
            GaveUp::Aborted => "aborted",
        }
    }
}

/// Per-core counters; summed over cores for the run's accounting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupCounters {
    /// Requests sent (warm-up included).
    pub requests_sent: u64,
    /// Requests whose intended send time is in the measured window.
    pub requests_measured: u64,
    /// Requests actually sent inside the measured window (what the achieved rate counts).
    pub requests_sent_in_window: u64,
    /// Requests delivered to this core's agents.
    pub requests_delivered: u64,
    /// Replies sent by this core's agents.
    pub replies_sent: u64,
    /// Replies delivered to this core's agents.
    pub replies_delivered: u64,
    /// Measured round trips completed.
    pub round_trips_measured: u64,
    /// Requests and replies delivered inside the measured window.
    pub window_deliveries: u64,
    /// Sends that left more than `late_after_ns` after their intended time.
    pub late_sends: u64,
    /// Open loop: sends that were due before sending stopped but never left (windows full).
    pub missed_sends: u64,
    /// Router errors about requests, by code.
    pub request_errors: Vec<(u16, u64)>,
    /// Router errors about replies, by code.
    pub reply_errors: Vec<(u16, u64)>,
    /// Errors about requests named by the router (the JSON protocol's errors are names).
    pub request_errors_named: Vec<(String, u64)>,
    /// Errors about replies named by the router.
    pub reply_errors_named: Vec<(String, u64)>,
    /// Requests their requesters stopped waiting for, by why.
    pub unanswered: Vec<(GaveUp, u64)>,
    /// Messages this core could not make sense of (a protocol violation by the router).
    pub unexpected: u64,
    /// Last delivery of a measured message (ns).
    pub last_measured_delivery_ns: u64,
}

fn add<K: PartialEq + Clone>(list: &mut Vec<(K, u64)>, key: &K, n: u64) {
    match list.iter_mut().find(|(k, _)| k == key) {
        Some((_, total)) => *total += n,
        None => list.push((key.clone(), n)),
    }
}

impl GroupCounters {
    /// Adds another core's counters.
    pub fn merge(&mut self, o: &GroupCounters) {
        self.requests_sent += o.requests_sent;
        self.requests_measured += o.requests_measured;
        self.requests_sent_in_window += o.requests_sent_in_window;
        self.requests_delivered += o.requests_delivered;
        self.replies_sent += o.replies_sent;
        self.replies_delivered += o.replies_delivered;
        self.round_trips_measured += o.round_trips_measured;
        self.window_deliveries += o.window_deliveries;
        self.late_sends += o.late_sends;
        self.missed_sends += o.missed_sends;
        self.unexpected += o.unexpected;
        for (c, n) in &o.request_errors {
            add(&mut self.request_errors, c, *n);
        }
        for (c, n) in &o.reply_errors {
            add(&mut self.reply_errors, c, *n);
        }
        for (name, n) in &o.request_errors_named {
            add(&mut self.request_errors_named, name, *n);
        }
        for (name, n) in &o.reply_errors_named {
            add(&mut self.reply_errors_named, name, *n);
        }
        for (why, n) in &o.unanswered {
            add(&mut self.unanswered, why, *n);
        }
        self.last_measured_delivery_ns =
            self.last_measured_delivery_ns.max(o.last_measured_delivery_ns);
    }

    /// Total router errors about requests.
    pub fn request_error_total(&self) -> u64 {
        self.request_errors.iter().map(|(_, n)| n).sum::<u64>()
            + self.request_errors_named.iter().map(|(_, n)| n).sum::<u64>()
    }

    /// Total router errors about replies.
    pub fn reply_error_total(&self) -> u64 {
        self.reply_errors.iter().map(|(_, n)| n).sum::<u64>()
            + self.reply_errors_named.iter().map(|(_, n)| n).sum::<u64>()
    }

    /// Requests their requesters gave up on.
    pub fn unanswered_total(&self) -> u64 {
        self.unanswered.iter().map(|(_, n)| n).sum()
    }

    /// Every error by kind: router codes and names, requests given up on, unexpected messages.
    pub fn errors_by_kind(&self) -> std::collections::BTreeMap<String, u64> {
        let mut errors = std::collections::BTreeMap::new();
        for &(code, n) in self.request_errors.iter().chain(&self.reply_errors) {
            let name = ErrorCode::from_code(code)
                .map_or_else(|| format!("code_{code}"), |e| e.name().into());
            *errors.entry(name).or_default() += n;
        }
        for (name, n) in self.request_errors_named.iter().chain(&self.reply_errors_named) {
            *errors.entry(name.clone()).or_default() += n;
        }
        for (why, n) in &self.unanswered {
            *errors.entry(why.name().to_string()).or_default() += n;
        }
        if self.unexpected > 0 {
            errors.insert("unexpected_message".into(), self.unexpected);
        }
        errors
    }
}

/// A virtual agent: 32 bytes of state; its neighbours are computed from the topology.
#[derive(Debug, Clone, Default)]
struct Agent {
    /// Requests sent so far (warm-up included): also the index of its next scheduled message.
    sent: u64,
    /// Measured requests sent.
    measured: u64,
    /// Requests due under open-loop pacing but not sent yet (window full).
    owed: u64,
    /// Requests awaiting a reply or an error.
    in_flight: u32,
    /// Which neighbour gets the next request.
    next_neighbour: u32,
}

/// A request as the loop books it, for an adapter to encode.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing {
    /// Sender's agent id.
    pub from: u32,
    /// Recipient's agent id.
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
    /// A request of agent `Some(id)` (frame-level errors name no agent).
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

/// A protocol adapter of the agent loop: requests to bytes, bytes to events.
pub trait Adapter {
    /// Queues the registration of `ids` on connection `conn`.
    fn register(&mut self, conn: usize, ids: &[AgentId]);
    /// Queues a request on connection `conn` (the sender's).
    fn request(&mut self, conn: usize, r: &Outgoing);
    /// Decodes every complete message at the start of `buf`, read from `conn`, and tells `book`
    /// what each one means, queueing the replies it asks for and, when an answer frees an
    /// agent's window slot, sending from that agent at once (`book.send_from(local, …)` with
    /// [`Adapter::request`]). Returns the bytes used, or why the input is undecodable (the
    /// connection is then useless).
    fn input(&mut self, conn: usize, buf: &[u8], book: &mut Book) -> Result<usize, String>;
    /// The next buffer to write on `conn`, if any.
    fn take_output(&mut self, conn: usize) -> Option<Vec<u8>>;
    /// A written buffer, back for reuse.
    fn output_done(&mut self, buf: Vec<u8>);
}

/// The protocol-free state of a group: pacing, booking, accounting, histograms. Adapters report
/// what they decode through its methods.
#[derive(Debug)]
pub struct Book {
    cfg: GroupConfig,
    schedule: Schedule,
    agents: Vec<Agent>,
    /// Each connection's parked writer.
    writers: Vec<Option<Waker>>,
    /// Registration acknowledgements received, per connection.
    acks: Vec<u32>,
    /// Connections closed under the group while the run was on.
    lost: Vec<bool>,
    /// Why the router refused a registration, if it did.
    refused: Option<String>,
    /// Open loop: the next index in this group's send sequence.
    next_due: u64,
    /// Open loop: nanoseconds between two of this group's sends (agents_total / rate).
    slot_ns: f64,
    /// Requests still in flight across the group.
    in_flight: u64,
    /// Agents that are done sending (count reached, or their connection lost).
    agents_done: u32,
    /// Whether every agent is done sending (count mode) or the end time passed.
    finished: bool,
    /// The run is over: writers and the pacer finish.
    stopped: bool,
    now_ns: u64,
    /// Woken when something the shell waits for happens (acks, a lost connection, drained).
    monitor: Option<Waker>,
    /// Latency histograms of this core.
    pub latencies: Latencies,
    /// Counters of this core.
    pub counters: GroupCounters,
}

impl Book {
    fn new(cfg: GroupConfig) -> Book {
        let conns = cfg.count.div_ceil(cfg.agents_per_conn.max(1)) as usize;
        let slot_ns = match cfg.pacing {
            Pacing::Open { rate, .. } => 1e9 / rate,
            Pacing::Closed { .. } => 0.0,
        };
        Book {
            agents: vec![Agent::default(); cfg.count as usize],
            writers: (0..conns).map(|_| None).collect(),
            acks: vec![0; conns],
            lost: vec![false; conns],
            refused: None,
            next_due: 0,
            slot_ns,
            in_flight: 0,
            agents_done: 0,
            finished: false,
            stopped: false,
            now_ns: 0,
            monitor: None,
            latencies: Latencies::default(),
            counters: GroupCounters::default(),
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
    fn local_of(&self, id: u32) -> Option<usize> {
        let global = id.checked_sub(self.cfg.id_base)?;
        let local = global.checked_sub(self.cfg.first)?;
        (local < self.cfg.count).then_some(local as usize)
    }

    #[inline]
    fn conn_of(&self, local: usize) -> usize {
        local / self.cfg.agents_per_conn.max(1) as usize
    }

    #[inline]
    fn in_window(&self) -> bool {
        self.now_ns >= self.schedule.measure_ns && self.now_ns < self.schedule.end_ns
    }

    /// A request to agent `to`, sent at `sent_ns`, was delivered. Returns whether it is one of
    /// this group's agents; if so the adapter must queue the reply (counted here as sent).
    #[inline]
    pub fn request_delivered(&mut self, to: u32, sent_ns: u64, measured: bool) -> bool {
        if self.local_of(to).is_none() {
            self.counters.unexpected += 1;
            return false;
        }
        self.counters.requests_delivered += 1;
        self.counters.replies_sent += 1;
        if self.in_window() {
            self.counters.window_deliveries += 1;
        }
        if measured {
            self.latencies.record_one_way(self.now_ns.saturating_sub(sent_ns));
            self.counters.last_measured_delivery_ns = self.now_ns;
        }
        true
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
        if measured {
            let now = self.now_ns;
            self.latencies
                .record_rtt(now.saturating_sub(intended_ns), now.saturating_sub(actual_ns));
            self.latencies.record_one_way(now.saturating_sub(reply_sent_ns));
            self.counters.round_trips_measured += 1;
            self.counters.last_measured_delivery_ns = now;
        }
        self.resolve(local)
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

    /// Something the router sent that is no part of the protocol here.
    pub fn unexpected(&mut self) {
        self.counters.unexpected += 1;
    }

    /// A request of agent `local` is answered (reply or error): free its window slot.
    #[inline]
    fn resolve(&mut self, local: usize) -> Option<usize> {
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
    /// [`Adapter::request`]), and wakes the writers concerned.
    #[inline]
    pub fn send_from(&mut self, local: usize, mut encode: impl FnMut(usize, &Outgoing)) {
        while let Some((conn, out)) = self.book(local) {
            encode(conn, &out);
            if let Some(w) = self.writers[conn].take() {
                w.wake();
            }
        }
    }

    fn wake_monitor(&mut self) {
        if let Some(w) = self.monitor.take() {
            w.wake();
        }
    }

    #[inline]
    fn agent_may_send_more(&self, local: usize) -> bool {
        match self.cfg.stop {
            Stop::Count { per_agent } => self.agents[local].measured < per_agent,
            Stop::Duration(_) => true,
        }
    }

    fn update_finished(&mut self) {
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
    fn intended_ns(&self, q: u64) -> u64 {
        let count = u64::from(self.cfg.count.max(1));
        let (round, local) = (q / count, q % count);
        let slot = round * u64::from(self.cfg.agents_total) + u64::from(self.cfg.first) + local;
        self.schedule.start_ns + (slot as f64 * self.slot_ns) as u64
    }

    #[inline]
    fn window(&self) -> u32 {
        match self.cfg.pacing {
            Pacing::Closed { window } | Pacing::Open { window, .. } => window.max(1),
        }
    }

    /// Books the next request agent `local` may send now, if any.
    #[inline]
    fn book(&mut self, local: usize) -> Option<(usize, Outgoing)> {
        // Cheapest refusals first: this runs twice per answer, and the second time the window
        // is full.
        let a = &self.agents[local];
        if a.in_flight >= self.window() || self.finished || !self.agent_may_send_more(local) {
            return None;
        }
        let conn = self.conn_of(local);
        let n = self.cfg.agents_total;
        let global = self.cfg.first + local as u32;
        let degree = self.cfg.topology.degree(global, n);
        if degree == 0 || self.lost[conn] {
            return None;
        }
        let intended = match self.cfg.pacing {
            Pacing::Closed { .. } if self.now_ns >= self.schedule.end_ns => return None,
            Pacing::Closed { .. } => self.now_ns,
            Pacing::Open { .. } if a.owed == 0 => return None,
            Pacing::Open { .. } => {
                self.intended_ns(a.sent * u64::from(self.cfg.count) + local as u64)
            }
        };
        let measured = intended >= self.schedule.measure_ns;
        let c = &mut self.counters;
        c.requests_sent += 1;
        c.late_sends += u64::from(self.now_ns.saturating_sub(intended) > self.cfg.late_after_ns);
        if self.now_ns >= self.schedule.measure_ns && self.now_ns < self.schedule.end_ns {
            c.requests_sent_in_window += 1;
        }
        let a = &mut self.agents[local];
        let to = self.cfg.topology.neighbour(global, n, a.next_neighbour);
        a.next_neighbour = (a.next_neighbour + 1) % degree;
        let seq = a.sent;
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
            to: self.cfg.id_base + to,
            message_id: seq | if measured { MEASURED_BIT } else { 0 },
            measured,
            intended_ns: intended,
            sent_ns: self.now_ns,
        };
        Some((conn, out))
    }

    /// Gives up on every request still in flight, counting each as an error of kind `why`.
    fn give_up_all(&mut self, why: GaveUp) {
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

fn add_name(list: &mut Vec<(String, u64)>, name: &str) {
    match list.iter_mut().find(|(n, _)| n == name) {
        Some((_, total)) => *total += 1,
        None => list.push((name.to_string(), 1)),
    }
}

/// One core's agents and connections: the [`Book`] and the adapter that speaks for it.
#[derive(Debug)]
pub struct Group<A> {
    book: Book,
    adapter: A,
}

impl<A: Adapter> Group<A> {
    /// A group with its agents idle until [`Group::start`].
    pub fn new(cfg: GroupConfig, adapter: A) -> Group<A> {
        Group { book: Book::new(cfg), adapter }
    }

    /// The accounting side.
    pub fn book(&self) -> &Book {
        &self.book
    }

    /// Counters of this core.
    pub fn counters(&self) -> &GroupCounters {
        &self.book.counters
    }

    /// Histograms of this core.
    pub fn latencies(&self) -> &Latencies {
        &self.book.latencies
    }

    /// Connections this group needs.
    pub fn connections(&self) -> usize {
        self.book.writers.len()
    }

    /// The agent ids registered on connection `c`.
    pub fn agent_ids(&self, c: usize) -> impl Iterator<Item = AgentId> + '_ {
        let cfg = &self.book.cfg;
        let per = cfg.agents_per_conn.max(1);
        let lo = c as u32 * per;
        let hi = (lo + per).min(cfg.count);
        (lo..hi).map(move |l| AgentId(cfg.id_base + cfg.first + l))
    }

    /// Queues the registration of connection `c`'s agents.
    pub fn register(&mut self, c: usize) {
        let ids: Vec<AgentId> = self.agent_ids(c).collect();
        self.adapter.register(c, &ids);
        self.wake_writer(c);
    }

    /// `Ok(true)` once every agent's registration was acknowledged; `Err` if one was refused.
    pub fn registered(&self) -> Result<bool, String> {
        if let Some(why) = &self.book.refused {
            return Err(why.clone());
        }
        Ok((0..self.connections()).all(|c| self.book.acks[c] as usize >= self.agent_ids(c).count()))
    }

    /// Requests still in flight.
    pub fn in_flight(&self) -> u64 {
        self.book.in_flight
    }

    /// Whether sending is over (every count sent, or the end time passed).
    pub fn finished(&self) -> bool {
        self.book.finished
    }

    /// Connections lost while the run was on.
    pub fn connections_lost(&self) -> usize {
        self.book.lost.iter().filter(|&&l| l).count()
    }

    /// Sets the schedule once the run's start time is known.
    pub fn set_schedule(&mut self, schedule: Schedule) {
        self.book.schedule = schedule;
    }

    /// Brings the clock forward without input (sending may have ended meanwhile).
    pub fn refresh(&mut self, now_ns: u64) {
        self.book.now_ns = now_ns;
        self.book.update_finished();
    }

    /// Parks the shell's monitor until something it waits for happens.
    pub fn watch(&mut self, cx: &Context<'_>) {
        self.book.monitor = Some(cx.waker().clone());
    }

    /// Ends the run: writers and the pacer finish.
    pub fn stop(&mut self) {
        self.book.stopped = true;
        for w in self.book.writers.iter_mut().filter_map(Option::take) {
            w.wake();
        }
    }

    /// Whether [`Group::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.book.stopped
    }

    /// Ends sending now (an interrupt): nothing more is booked; what is in flight drains.
    pub fn end_sending(&mut self, now_ns: u64) {
        self.book.schedule.end_ns = self.book.schedule.end_ns.min(now_ns);
        if let Stop::Count { .. } = self.book.cfg.stop {
            self.book.agents_done = self.book.cfg.count;
        }
        self.refresh(now_ns);
    }

    /// Connection `c` closed under the run: its agents stop, and every request they have in
    /// flight becomes an error of kind `connection_lost`.
    pub fn connection_lost(&mut self, c: usize) {
        let b = &mut self.book;
        if b.stopped || b.lost[c] {
            return;
        }
        b.lost[c] = true;
        let per = b.cfg.agents_per_conn.max(1) as usize;
        let (lo, hi) = (c * per, ((c + 1) * per).min(b.agents.len()));
        let mut gone = 0u64;
        for local in lo..hi {
            if b.agent_may_send_more(local) && matches!(b.cfg.stop, Stop::Count { .. }) {
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

    /// Gives up on every request still in flight (the run ends with them unanswered).
    pub fn give_up(&mut self, why: GaveUp) {
        self.book.give_up_all(why);
    }

    /// Called at `start_ns`: closed loop fills every agent's window.
    pub fn start(&mut self, now_ns: u64) {
        self.book.now_ns = now_ns;
        if let Pacing::Closed { .. } = self.book.cfg.pacing {
            for local in 0..self.book.agents.len() {
                self.try_send(local);
            }
        }
        self.book.update_finished();
    }

    /// Open loop: makes everything due by `now_ns` owed and sends what windows allow. Returns
    /// when the next send is due (`None` when nothing more will be due).
    pub fn tick(&mut self, now_ns: u64) -> Option<u64> {
        self.book.now_ns = now_ns;
        let Pacing::Open { .. } = self.book.cfg.pacing else { return None };
        let count = u64::from(self.book.cfg.count);
        loop {
            let b = &mut self.book;
            let due = b.intended_ns(b.next_due);
            if due > now_ns || due >= b.schedule.end_ns || b.agents_done >= b.cfg.count {
                break;
            }
            let local = (b.next_due % count) as usize;
            b.next_due += 1;
            if b.agent_may_send_more(local) && !b.lost[b.conn_of(local)] {
                b.agents[local].owed += 1;
                self.try_send(local);
            }
        }
        self.book.update_finished();
        let next = self.book.intended_ns(self.book.next_due);
        (!self.book.finished && next < self.book.schedule.end_ns).then_some(next)
    }

    /// Open loop: when the next send is due.
    pub fn next_due_ns(&self) -> u64 {
        self.book.intended_ns(self.book.next_due)
    }

    /// Sends what agent `local` may send now.
    fn try_send(&mut self, local: usize) {
        let adapter = &mut self.adapter;
        self.book.send_from(local, |conn, out| adapter.request(conn, out));
    }

    fn wake_writer(&mut self, conn: usize) {
        if let Some(w) = self.book.writers[conn].take() {
            w.wake();
        }
    }

    /// Handles every complete message at the start of `buf`, read from connection `conn`.
    /// Returns the bytes consumed, or `Err` if the router sent something undecodable.
    pub fn on_input(&mut self, conn: usize, buf: &[u8], now_ns: u64) -> Result<usize, String> {
        self.book.now_ns = now_ns;
        let used = self.adapter.input(conn, buf, &mut self.book);
        self.wake_writer(conn);
        self.book.update_finished();
        used
    }

    /// The next buffer to write on connection `conn`; pending (waker kept) while there is none;
    /// `Ready(None)` once the run is stopped.
    pub fn poll_output(&mut self, conn: usize, cx: &mut Context<'_>) -> Poll<Option<Vec<u8>>> {
        if self.book.stopped {
            return Poll::Ready(None);
        }
        match self.adapter.take_output(conn) {
            Some(buf) => Poll::Ready(Some(buf)),
            None => {
                self.book.writers[conn] = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    /// A written buffer, back to the adapter.
    pub fn output_done(&mut self, buf: Vec<u8>) {
        self.adapter.output_done(buf);
    }

    #[cfg(test)]
    fn intended_ns(&self, q: u64) -> u64 {
        self.book.intended_ns(q)
    }
}

/// How a group's result reads errors: `(name, count)` sorted by name.
pub fn error_names(list: &[(u16, u64)]) -> Vec<(String, u64)> {
    let mut named: Vec<(String, u64)> = list
        .iter()
        .map(|&(c, n)| {
            let name =
                ErrorCode::from_code(c).map_or_else(|| format!("code_{c}"), |e| e.name().into());
            (name, n)
        })
        .collect();
    named.sort();
    named
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::native::Native;
    use crate::testing::counting;
    use std::time::Duration;

    fn config(count: u32, agents_per_conn: u32) -> GroupConfig {
        GroupConfig {
            topology: Topology::Mesh,
            agents_total: count,
            first: 0,
            count,
            id_base: 1,
            agents_per_conn,
            pacing: Pacing::Open { rate: 1e6, window: 16 },
            stop: Stop::Duration(Duration::from_secs(1)),
            payload_bytes: 64,
            batch_max: 1024,
            compression: Compression::None,
            late_after_ns: 1_000_000,
            priority: 5,
        }
    }

    fn group(cfg: GroupConfig, schedule: Schedule) -> Group<Native> {
        let mut g = Group::new(cfg.clone(), Native::new(&cfg));
        g.set_schedule(schedule);
        g
    }

    #[test]
    fn a_virtual_agent_costs_tens_of_bytes() {
        // Proves a group's own state per agent: 100,000 agents in a mesh, 50 per connection,
        // cost well under 2 KiB each (histograms and pools are per core, not per agent).
        let schedule = Schedule { start_ns: 0, measure_ns: 0, end_ns: u64::MAX };
        let before = counting::live();
        let group = group(config(100_000, 50), schedule);
        let per_agent = (counting::live() - before) as f64 / 100_000.0;
        eprintln!("virtual agent: {per_agent:.0} bytes of group state each");
        assert!(per_agent < 64.0, "{per_agent} bytes per agent");
        drop(group);
    }

    #[test]
    fn open_loop_schedule_interleaves_agents_evenly() {
        // Proves the open-loop schedule: with 4 agents at 4,000/s the group's sends are due
        // every 250 µs, agents in turn, and a group holding agents 2..4 of 4 gets its share.
        let schedule = Schedule { start_ns: 1_000, measure_ns: 0, end_ns: u64::MAX };
        let mut cfg = config(4, 1);
        cfg.pacing = Pacing::Open { rate: 4_000.0, window: 1 };
        let g = group(cfg.clone(), schedule);
        let due: Vec<u64> = (0..6).map(|q| g.intended_ns(q)).collect();
        assert_eq!(due, vec![1_000, 251_000, 501_000, 751_000, 1_001_000, 1_251_000]);
        let half = group(GroupConfig { first: 2, count: 2, ..cfg }, schedule);
        let due: Vec<u64> = (0..4).map(|q| half.intended_ns(q)).collect();
        assert_eq!(due, vec![501_000, 751_000, 1_501_000, 1_751_000]);
    }

    #[test]
    fn an_overloaded_open_loop_sends_nothing_after_the_end() {
        // Proves sending stops at the end of the window: a backlog that full windows held back
        // is counted as missed sends, never sent late, and the achieved count is what left.
        let schedule = Schedule { start_ns: 0, measure_ns: 0, end_ns: 1_000_000 };
        let mut cfg = config(4, 1);
        cfg.pacing = Pacing::Open { rate: 4e6, window: 1 }; // 4 sends per µs, one in flight each
        let mut g = group(cfg, schedule);
        assert!(g.tick(999_000).is_some());
        assert_eq!(g.counters().requests_sent, 4, "one per agent: the windows are full");
        assert_eq!(g.tick(1_000_000), None);
        assert!(g.finished());
        assert_eq!(g.counters().requests_sent_in_window, 4);
        assert_eq!(g.counters().missed_sends, 3_996, "4,000 due, 4 sent");
        g.connection_lost(0);
        assert_eq!(g.in_flight(), 3);
        assert_eq!(g.counters().unanswered, vec![(GaveUp::ConnectionLost, 1)]);
    }
}
