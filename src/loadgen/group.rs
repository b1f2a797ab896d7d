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

use std::task::{Context, Poll};

pub use super::book::{About, Book, ErrorKind, Outgoing};
pub use super::counters::{GaveUp, GroupCounters};
use super::topology::Topology;
use super::workload::{Completed, CoordStats};
use super::{Pacing, Stop};
use crate::metrics::Latencies;
use crate::wire::{AgentId, Compression};

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
    /// How the agents sit on the group's connections.
    pub seats: Seats,
    /// Closed or open loop.
    pub pacing: Pacing,
    /// Count or duration.
    pub stop: Stop,
    /// Payload bytes per request (≥ 16); with a mix, its largest size.
    pub payload_bytes: usize,
    /// `--payload-mix`: each request's size drawn by weight.
    pub payload_mix: Option<super::mix::PayloadMix>,
    /// Most messages per frame.
    pub batch_max: u32,
    /// Compression of frames sent.
    pub compression: Compression,
    /// A send leaving later than this after its intended time counts as late.
    pub late_after_ns: u64,
    /// Priority of every request and reply.
    pub priority: u8,
    /// What one operation of an agent is.
    pub workload: super::workload::Workload,
}

/// How a group's agents sit on its connections: agent `local` of the group sits on one
/// connection, and each connection holds a contiguous run of agents, at least one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seats {
    /// `per` agents to a connection, the last holding the rest (`--agents-per-conn`).
    Packed(u32),
    /// This many connections, the agents spread evenly: sizes differ by one at most
    /// (`a2a-bench http --connections`). At most one connection per agent.
    Even(u32),
}

impl Seats {
    /// The connections of a group of `count` agents.
    pub fn conns(self, count: u32) -> u32 {
        match self {
            Seats::Packed(per) => count.div_ceil(per.max(1)),
            Seats::Even(conns) => conns.clamp(1, count.max(1)),
        }
    }

    /// The agents (local indices) of connection `c` of a group of `count`.
    pub fn agents(self, count: u32, c: usize) -> std::ops::Range<u32> {
        let c = c as u64;
        match self {
            Seats::Packed(per) => {
                let per = u64::from(per.max(1));
                let edge = |c: u64| (c * per).min(u64::from(count)) as u32;
                edge(c)..edge(c + 1)
            }
            Seats::Even(_) => {
                let (n, m) = (u64::from(self.conns(count)), u64::from(count));
                let edge = |c: u64| (c.min(n) * m / n) as u32;
                edge(c)..edge(c + 1)
            }
        }
    }

    /// The connection of agent `local` of a group of `count`.
    #[inline]
    pub fn conn_of(self, count: u32, local: usize) -> usize {
        match self {
            Seats::Packed(per) => local / per.max(1) as usize,
            // The last connection whose first agent is at or before `local`.
            Seats::Even(_) => {
                let (n, m) = (u64::from(self.conns(count)), u64::from(count).max(1));
                (((local as u64 + 1) * n - 1) / m) as usize
            }
        }
    }
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

/// A protocol adapter of the agent loop: requests to bytes, bytes to events.
pub trait Adapter {
    /// Queues the registration of `ids` on connection `conn` (an adapter with nothing to
    /// register acknowledges them in `book` at once).
    fn register(&mut self, conn: usize, ids: &[AgentId], book: &mut Book);
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
    /// Queues a heartbeat of `agent` (one of connection `conn`'s) on that connection, which sent
    /// nothing for a while: a router counts an agent offline once neither it nor its
    /// connection was heard from for its heartbeat timeout, however long the other agents take
    /// to connect or however sparse the load. Its answer, ack or error, counts for nothing.
    /// Whether it did (servers without such a timeout: no).
    fn keep_alive(&mut self, _conn: usize, _agent: AgentId) -> bool {
        false
    }
    /// Once the run drained: queues what connection `conn` says before it closes (an MCP
    /// session's `DELETE`); whether there is anything to wait for.
    fn farewell(&mut self, _conn: usize) -> bool {
        false
    }
    /// Whether every farewell was answered.
    fn farewell_done(&self) -> bool {
        true
    }
    /// Per-pattern figures, for adapters that mix request kinds (HTTP); `book` holds the
    /// round trips measured.
    fn breakdown(&self, _book: &Book) -> Vec<super::http::PatternStats> {
        Vec::new()
    }
    /// Per-size figures, for adapters that send a payload mix.
    fn sizes(&self) -> Vec<super::mix::SizeStats> {
        Vec::new()
    }
    /// Requests in flight whose answers are streams already telling a long task's events
    /// (subscriptions): they wait on the task, not on the server, so the stall check leaves
    /// them out (their bound is the task's timeout).
    fn following(&self) -> u64 {
        0
    }
    /// When the adapter's next timer is due (a lock hold ending), if any.
    fn next_timer_ns(&self) -> Option<u64> {
        None
    }
    /// Outside any input: handles a message from another core (a publication completed there)
    /// and fires the timers due by `book.now_ns()`.
    fn on_side(&mut self, _msg: Option<Completed>, _book: &mut Book) {}
    /// A coordination workload's own figures.
    fn coordination(&self) -> Option<CoordStats> {
        None
    }
    /// Connection `conn` ended under the run (the peer closed it, or the loop did for a
    /// timeout): resolves what was on its wire, forgets its partial output, and says whether a
    /// new connection should take its place (`false`: it is lost). Routers are never
    /// reconnected: their connections carry registrations.
    fn reset(&mut self, _conn: usize, _book: &mut Book) -> bool {
        false
    }
    /// The peer ended its side of connection `conn` (end of stream, not an error), before the
    /// connection is reset: input framed by the close is complete.
    fn input_end(&mut self, _conn: usize, _book: &mut Book) {}
    /// Whether connection `conn` must be replaced now (the server announced it closes it).
    fn must_reopen(&self, _conn: usize) -> bool {
        false
    }
    /// A new connection took the place of `conn`: what waited goes on it.
    fn reopened(&mut self, _conn: usize, _book: &mut Book) {}
    /// Per-request timeouts: resolves the requests on the wire past theirs, pushes the
    /// connections it touched (`true`: to be closed and replaced), and returns when the next
    /// one is due (`u64::MAX`: none).
    fn expire(&mut self, _book: &mut Book, _touched: &mut Vec<(usize, bool)>) -> u64 {
        u64::MAX
    }
}

/// One core's agents and connections: the [`Book`] and the adapter that speaks for it.
#[derive(Debug)]
pub struct Group<A> {
    book: Book,
    adapter: A,
    /// Each connection's generation: a replaced connection's writer sees it change and ends.
    generation: Vec<u32>,
    /// Output [`Group::send_now`] took but could not send: its connection's writer's, first.
    held: Vec<Option<Vec<u8>>>,
    /// Each connection: not open yet ([`CLOSED`]), silent since [`Group::keep_alive`] last
    /// looked ([`SILENT`]), sent something since ([`SPOKE`]), or holding a heartbeat not yet
    /// taken by its writer ([`QUEUED`]: no second one is queued behind it).
    spoke: Vec<u8>,
}

/// [`Group::spoke`]'s values.
const CLOSED: u8 = 0;
const SILENT: u8 = 1;
const SPOKE: u8 = 2;
const QUEUED: u8 = 3;

impl<A: Adapter> Group<A> {
    /// A group with its agents idle until [`Group::start`].
    pub fn new(cfg: GroupConfig, adapter: A) -> Group<A> {
        let book = Book::new(cfg);
        let generation = vec![0; book.writers.len()];
        let held = (0..book.writers.len()).map(|_| None).collect();
        let spoke = vec![CLOSED; book.writers.len()];
        Group { book, adapter, generation, held, spoke }
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

    /// The latency views, a pipeline's hops in the one-way one.
    pub fn whole_latencies(&self) -> Latencies {
        self.book.whole_latencies()
    }

    /// `pipeline`: each hop's one-way latency by the stage it reached (0: the source).
    pub fn hops(&self) -> &[hdrhistogram::Histogram<u64>] {
        &self.book.hops
    }

    /// Connections this group needs.
    pub fn connections(&self) -> usize {
        self.book.writers.len()
    }

    /// The agent ids registered on connection `c`.
    pub fn agent_ids(&self, c: usize) -> impl Iterator<Item = AgentId> + '_ {
        let cfg = &self.book.cfg;
        cfg.seats.agents(cfg.count, c).map(move |l| AgentId(cfg.id_base + cfg.first + l))
    }

    /// Queues the registration of connection `c`'s agents.
    pub fn register(&mut self, c: usize) {
        let ids: Vec<AgentId> = self.agent_ids(c).collect();
        self.adapter.register(c, &ids, &mut self.book);
        self.spoke[c] = SPOKE;
        self.wake_writer(c);
    }

    /// Each open connection of `conns` that sent nothing since the last look at it queues a
    /// heartbeat for its first agent ([`Adapter::keep_alive`]); how many did. Looked at every
    /// third of the router's heartbeat timeout, a silent connection is heard from at least
    /// every two thirds, and sends one heartbeat every two thirds while it stays silent.
    pub fn keep_alive(&mut self, conns: std::ops::Range<usize>) -> u64 {
        let mut sent = 0;
        for c in conns.start..conns.end.min(self.spoke.len()) {
            match self.spoke[c] {
                SILENT if !self.book.stopped && !self.book.lost[c] => {
                    let agent = self.agent_ids(c).next();
                    if agent.is_some_and(|a| self.adapter.keep_alive(c, a)) {
                        sent += 1;
                        self.spoke[c] = QUEUED;
                        self.wake_writer(c);
                    }
                }
                SPOKE => self.spoke[c] = SILENT,
                _ => {}
            }
        }
        self.book.counters.heartbeats += sent;
        sent
    }

    /// Once the run drained: queues each live connection's farewell; whether any needs an
    /// answer ([`Group::farewell_done`]).
    pub fn farewell(&mut self) -> bool {
        let mut wait = false;
        for c in 0..self.connections() {
            if !self.book.lost[c] && self.adapter.farewell(c) {
                wait = true;
                self.wake_writer(c);
            }
        }
        wait
    }

    /// When the adapter's next timer is due.
    pub fn next_timer_ns(&self) -> Option<u64> {
        self.adapter.next_timer_ns()
    }

    /// A message from another core, and the timers due by `now_ns`.
    pub fn on_side(&mut self, msg: Option<Completed>, now_ns: u64) {
        self.book.now_ns = now_ns;
        self.adapter.on_side(msg, &mut self.book);
        self.book.update_finished();
    }

    /// The coordination workload's own figures, with each agent's operations counted.
    pub fn coordination(&self) -> Option<CoordStats> {
        self.adapter.coordination()
    }

    /// Whether every farewell was answered (or its connection lost).
    pub fn farewell_done(&self) -> bool {
        self.adapter.farewell_done() || self.connections_lost() == self.connections()
    }

    /// The adapter's per-pattern figures.
    pub fn breakdown(&self) -> Vec<super::http::PatternStats> {
        self.adapter.breakdown(&self.book)
    }

    /// The adapter's per-size figures (`--payload-mix`).
    pub fn sizes(&self) -> Vec<super::mix::SizeStats> {
        self.adapter.sizes()
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

    /// Of those in flight, the ones following a task's stream ([`Adapter::following`]).
    pub fn following(&self) -> u64 {
        self.adapter.following()
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

    /// Whether most round trips answered since the last call were short
    /// ([`Book::short_round_trips`]); `None` when none was answered.
    pub fn short_round_trips(&mut self) -> Option<bool> {
        self.book.short_round_trips()
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
        self.book.lose_connection(c);
    }

    /// The peer ended its side of connection `c` (end of stream): what the close completes is
    /// answered ([`Adapter::input_end`]).
    pub fn on_input_end(&mut self, c: usize) {
        if self.book.stopped || self.book.lost[c] {
            return;
        }
        self.adapter.input_end(c, &mut self.book);
        self.book.update_finished();
    }

    /// Connection `c` ended under a running loop: the adapter resolves what was on its wire.
    /// Returns the generation its replacement's writer must carry, or `None` when it is not
    /// to be replaced (stopped, lost, or an adapter that never reconnects).
    pub fn reset_connection(&mut self, c: usize) -> Option<u32> {
        if self.book.stopped || self.book.lost[c] {
            return None;
        }
        self.generation[c] += 1;
        self.wake_writer(c);
        // Bytes for the connection that ended, as if written to it: the adapter resolves them.
        if let Some(buf) = self.held[c].take() {
            self.adapter.output_done(buf);
        }
        let again = self.adapter.reset(c, &mut self.book);
        self.book.update_finished();
        self.book.wake_monitor();
        again.then_some(self.generation[c])
    }

    /// A new connection took the place of `c`.
    pub fn reopened(&mut self, c: usize) {
        self.book.counters.reconnects += 1;
        self.adapter.reopened(c, &mut self.book);
        self.wake_writer(c);
    }

    /// Whether connection `c` must be replaced now.
    pub fn must_reopen(&self, c: usize) -> bool {
        !self.book.stopped && self.adapter.must_reopen(c)
    }

    /// Per-request timeouts as of `now_ns`: pushes the connections to close (their readers then
    /// replace them); returns when the next timeout is due (`u64::MAX`: none).
    pub fn expire(&mut self, now_ns: u64, close: &mut Vec<usize>) -> u64 {
        self.book.now_ns = now_ns;
        let mut touched = Vec::new();
        let next = self.adapter.expire(&mut self.book, &mut touched);
        for (c, shut) in touched {
            self.wake_writer(c);
            if shut {
                close.push(c);
            }
        }
        self.book.update_finished();
        next
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
        let count = u64::from(self.book.cfg.count.max(1));
        loop {
            let b = &mut self.book;
            let due = b.intended_ns(b.next_due);
            if due > now_ns || due >= b.schedule.end_ns || b.agents_done >= b.cfg.count {
                break;
            }
            if !b.crossed && due >= b.schedule.measure_ns {
                b.forgive_warm_up();
            }
            if b.next_due % count == 0 {
                let rounds = b.rounds_due(now_ns);
                if rounds > 0 {
                    self.owe_rounds(rounds);
                    continue;
                }
            }
            let local = (b.next_due % count) as usize;
            b.next_due += 1;
            if b.may_owe(local) {
                b.agents[local].owed += 1;
                self.try_send(local);
            }
        }
        self.book.update_finished();
        let next = self.book.intended_ns(self.book.next_due);
        (!self.book.finished && next < self.book.schedule.end_ns).then_some(next)
    }

    /// Open loop: `rounds` whole rounds of the send sequence are due at once (a rate far
    /// beyond what the windows let out, or a long stall): each agent that may owe owes them
    /// and sends what its window allows, as owing them one by one would give, in a time
    /// bounded by the windows rather than by the sends due (a rate of a billion a second
    /// would otherwise keep the core counting them, deaf to its answers and to Ctrl-C).
    fn owe_rounds(&mut self, rounds: u64) {
        for local in 0..self.book.agents.len() {
            let mut left = rounds;
            while left > 0 && self.book.may_owe(local) {
                self.book.agents[local].owed += 1;
                left -= 1;
                self.try_send(local);
                if self.book.agents[local].owed > 0 {
                    // Nothing more leaves in this tick (a full window): the rest is owed too,
                    // unless the agent is done (only a send changes that).
                    if self.book.may_owe(local) {
                        self.book.agents[local].owed += left;
                    }
                    break;
                }
            }
        }
        self.book.next_due += rounds * u64::from(self.book.cfg.count);
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
        let used = self.on_input_quiet(conn, buf, now_ns);
        self.wake_writer(conn);
        used
    }

    /// [`Group::on_input`] that leaves connection `conn`'s writer asleep: the caller sends what
    /// the input produced with [`Group::send_now`] right after, with no writer task to run.
    pub fn on_input_quiet(
        &mut self,
        conn: usize,
        buf: &[u8],
        now_ns: u64,
    ) -> Result<usize, String> {
        self.book.now_ns = now_ns;
        self.book.quiet = conn;
        let used = self.adapter.input(conn, buf, &mut self.book);
        self.book.quiet = usize::MAX;
        self.book.update_finished();
        if let (Ok(n), true) = (&used, self.book.in_window()) {
            self.book.counters.window_bytes_in += *n as u64;
        }
        used
    }

    /// A buffer the adapter handed over for its socket.
    #[inline]
    fn taken(&mut self, conn: usize, bytes: usize) {
        self.spoke[conn] = SPOKE;
        if self.book.in_window() {
            self.book.counters.window_bytes_out += bytes as u64;
        }
    }

    /// Sends what connection `conn` has to send through `send` (a socket ring that takes a
    /// buffer whole; `false` when it cannot), in place of the connection's writer, while that
    /// writer waits for output: none of its writes is under way, so bytes stay in order. What
    /// `send` refuses, and everything while the writer is busy, is left to the writer.
    pub fn send_now(&mut self, conn: usize, mut send: impl FnMut(&mut Vec<u8>) -> bool) {
        if self.book.stopped || self.book.writers[conn].is_none() {
            return self.wake_writer(conn);
        }
        while let Some(mut buf) = self.adapter.take_output(conn) {
            self.taken(conn, buf.len());
            if !send(&mut buf) {
                self.held[conn] = Some(buf);
                return self.wake_writer(conn);
            }
            self.adapter.output_done(buf);
        }
    }

    /// The next buffer to write on generation `generation` of connection `conn`; pending
    /// (waker kept) while there is none; `Ready(None)` once the run is stopped or the
    /// connection was replaced.
    pub fn poll_output(
        &mut self,
        conn: usize,
        generation: u32,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Vec<u8>>> {
        if self.book.stopped || self.generation[conn] != generation {
            return Poll::Ready(None);
        }
        if let Some(buf) = self.held[conn].take() {
            return Poll::Ready(Some(buf));
        }
        match self.adapter.take_output(conn) {
            Some(buf) => {
                self.taken(conn, buf.len());
                Poll::Ready(Some(buf))
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::native::Native;
    use crate::loadgen::Workload;
    use crate::testing::counting;
    use crate::wire::{Control, ErrorCode, FrameBuf};
    use std::time::Duration;

    fn config(count: u32, agents_per_conn: u32) -> GroupConfig {
        GroupConfig {
            topology: Topology::Mesh,
            agents_total: count,
            first: 0,
            count,
            id_base: 1,
            seats: Seats::Packed(agents_per_conn),
            pacing: Pacing::Open { rate: 1e6, window: 16 },
            stop: Stop::Duration(Duration::from_secs(1)),
            payload_bytes: 64,
            payload_mix: None,
            batch_max: 1024,
            compression: Compression::None,
            late_after_ns: 1_000_000,
            priority: 5,
            workload: Default::default(),
        }
    }

    fn group(cfg: GroupConfig, schedule: Schedule) -> Group<Native> {
        let mut g = Group::new(cfg.clone(), Native::new(&cfg));
        g.set_schedule(schedule);
        g
    }

    #[test]
    fn only_a_connection_silent_since_the_last_look_sends_a_heartbeat() {
        // Proves `Group::keep_alive`: a connection not yet open sends none; one that sent
        // something (its registration) since the last look sends none; one silent since sends
        // one, for its first agent, and is counted; its heartbeat going out counts as speaking;
        // a lost connection sends none; only the slice asked for is looked at.
        let schedule = Schedule { start_ns: 0, measure_ns: 0, end_ns: u64::MAX };
        let mut g = group(config(8, 2), schedule); // connections 0-3
        let mut cx = Context::from_waker(std::task::Waker::noop());
        g.register(0);
        g.register(1);
        g.register(2);
        for c in 0..3 {
            let Poll::Ready(Some(buf)) = g.poll_output(c, 0, &mut cx) else { panic!("{c}") };
            g.output_done(buf);
        }
        assert_eq!(g.keep_alive(0..4), 0, "registrations just went out");
        g.connection_lost(2);
        assert_eq!(g.keep_alive(1..4), 1, "connection 1 only (0 not looked at, 2 lost, 3 closed)");
        assert_eq!(g.keep_alive(0..1), 1);
        assert_eq!(g.book.counters.heartbeats, 2);
        let Poll::Ready(Some(buf)) = g.poll_output(1, 0, &mut cx) else { panic!("no heartbeat") };
        let mut inflate = Vec::new();
        let limits = crate::wire::Limits::DEFAULT;
        let (_, mut batch) =
            crate::wire::decode_frame(&buf, &limits, &mut inflate).unwrap().unwrap();
        match batch.next_message().unwrap().map(|(m, _)| m) {
            Some(crate::wire::Message::Control(crate::wire::Control::Heartbeat(h))) => {
                assert_eq!(h.agent_id, AgentId(1 + 2), "connection 1's first agent")
            }
            other => panic!("expected a heartbeat, got {other:?}"),
        }
        g.output_done(buf);
        assert_eq!(g.keep_alive(0..4), 0, "connection 1 just spoke; 0's heartbeat is unsent");
        assert_eq!(g.keep_alive(0..4), 1, "connection 1 silent again; 0 still holds its own");
        assert_eq!(g.book.counters.heartbeats, 3);
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
    fn a_core_watches_while_most_of_its_round_trips_are_short() {
        // Proves what decides whether a core watches for answers (`driver::watch_or_sleep`):
        // whether most raw round trips (answer time less actual send time) since the last look
        // took under 100 µs, measured or not (warm-up too); a stall or two does not tip it, half
        // long does; no answer since: no verdict.
        let schedule = Schedule { start_ns: 0, measure_ns: 1_000_000, end_ns: u64::MAX };
        let mut g = group(config(4, 1), schedule);
        assert_eq!(g.short_round_trips(), None);
        let answer = |g: &mut Group<Native>, at: u64, actual: u64, measured: bool| {
            g.book.now_ns = at;
            let _ = g.book.answered(1, 0, (actual, at), measured);
        };
        answer(&mut g, 500_000, 470_000, false); // 30 µs, warm-up
        answer(&mut g, 2_000_000, 1_960_000, true); // 40 µs
        answer(&mut g, 12_000_000, 2_000_000, true); // a 10 ms stall
        assert_eq!(g.short_round_trips(), Some(true));
        assert_eq!(g.short_round_trips(), None, "taken");
        answer(&mut g, 3_000_000, 2_950_000, true); // 50 µs
        answer(&mut g, 3_200_000, 3_000_000, true); // 200 µs
        assert_eq!(g.short_round_trips(), Some(false), "half long");
        answer(&mut g, 4_000_000, 3_900_000, true); // 100 µs is not short
        assert_eq!(g.short_round_trips(), Some(false));
    }

    /// An adapter whose input byte `b` queues the one-byte buffer `[b]` on connection `b`.
    #[derive(Debug, Default)]
    struct Route(Vec<std::collections::VecDeque<Vec<u8>>>);

    impl Adapter for Route {
        fn register(&mut self, _: usize, _: &[AgentId], _: &mut Book) {}
        fn request(&mut self, _: usize, _: &Outgoing) {}
        fn input(&mut self, _: usize, buf: &[u8], book: &mut Book) -> Result<usize, String> {
            for &b in buf {
                self.0[b as usize].push_back(vec![b]);
                book.wake_writer(b as usize);
            }
            Ok(buf.len())
        }
        fn take_output(&mut self, conn: usize) -> Option<Vec<u8>> {
            self.0[conn].pop_front()
        }
        fn output_done(&mut self, _: Vec<u8>) {}
    }

    /// A waker that counts its wakes.
    #[derive(Default)]
    struct Wakes(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Wakes {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    impl Wakes {
        fn count(&self) -> usize {
            self.0.load(std::sync::atomic::Ordering::Relaxed)
        }
    }

    #[test]
    fn input_whose_reader_sends_its_output_leaves_that_writer_asleep() {
        // Proves `on_input_quiet` + `send_now`: what input queues on its own connection goes
        // through the caller's send, in order, and that connection's parked writer is not woken
        // (no task to run); other connections' writers are. A buffer the send refuses is the
        // writer's, first, and it is woken; a busy writer (not parked) keeps its output to
        // itself, so bytes never overtake a write under way; a replaced connection's held
        // bytes are dropped with it.
        let mut g = Group::new(config(2, 1), Route(vec![Default::default(); 2]));
        let wakes: Vec<_> = (0..2).map(|_| std::sync::Arc::new(Wakes::default())).collect();
        let wakers: Vec<_> = wakes.iter().map(|w| std::task::Waker::from(w.clone())).collect();
        let poll = |g: &mut Group<Route>, c: usize, generation: u32| {
            g.poll_output(c, generation, &mut Context::from_waker(&wakers[c]))
        };
        assert!(poll(&mut g, 0, 0).is_pending() && poll(&mut g, 1, 0).is_pending());

        assert_eq!(g.on_input_quiet(0, &[0, 1, 0], 7), Ok(3));
        assert_eq!((wakes[0].count(), wakes[1].count()), (0, 1), "only the other writer woke");
        let mut sent = Vec::new();
        g.send_now(0, |buf| {
            sent.push(std::mem::take(buf));
            true
        });
        assert_eq!(sent, vec![vec![0], vec![0]]);
        assert_eq!(wakes[0].count(), 0);
        assert!(poll(&mut g, 0, 0).is_pending(), "nothing left for the writer");
        assert_eq!(poll(&mut g, 1, 0), Poll::Ready(Some(vec![1])));

        // Refused: the writer is woken and gets the refused buffer, then the rest, in order.
        g.on_input_quiet(0, &[0, 0], 8).unwrap();
        g.send_now(0, |_| false);
        assert_eq!(wakes[0].count(), 1);
        assert_eq!(poll(&mut g, 0, 0), Poll::Ready(Some(vec![0])));
        assert_eq!(poll(&mut g, 0, 0), Poll::Ready(Some(vec![0])));

        // The writer is busy (it took a buffer and is writing it): the caller sends nothing.
        g.on_input_quiet(0, &[0], 9).unwrap();
        g.send_now(0, |_| panic!("sent past a write under way"));
        assert_eq!(poll(&mut g, 0, 0), Poll::Ready(Some(vec![0])));

        // Held bytes of a connection that is replaced go with it.
        assert!(poll(&mut g, 0, 0).is_pending());
        g.on_input_quiet(0, &[0], 10).unwrap();
        g.send_now(0, |_| false);
        assert_eq!(g.reset_connection(0), None, "Route never reconnects");
        assert!(poll(&mut g, 0, 1).is_pending(), "the held buffer was dropped");
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
    fn sends_late_in_the_warm_up_are_not_counted_late() {
        // Proves warm-up is excluded from the pacing verdict as from every figure: a schedule
        // that runs late in the warm-up (a stall while warming up) is not an overload, while a
        // backlog the windows let out, sent in the window, is late there (one they held back
        // is given up as the window begins: the next test). Due every 250 µs, warm-up until 10
        // ms: at 5 ms, 16 of the 21 sends due leave over 1 ms late and none counts; at 15 ms,
        // the 35 sends due from 5.25 to 13.75 ms leave late, and count.
        let schedule = Schedule { start_ns: 0, measure_ns: 10_000_000, end_ns: 20_000_000 };
        let mut cfg = config(4, 1);
        cfg.pacing = Pacing::Open { rate: 4_000.0, window: 16 };
        let mut g = group(cfg, schedule);
        g.tick(5_000_000);
        assert_eq!(g.counters().requests_sent, 21);
        assert_eq!(g.counters().late_sends, 0, "late, but in the warm-up");
        g.tick(15_000_000);
        assert_eq!(g.counters().requests_sent, 61);
        assert_eq!(g.counters().late_sends, 35, "left in the window, over 1 ms late");
        assert_eq!(g.counters().requests_sent_in_window, 40);
    }

    #[test]
    fn the_warm_up_s_backlog_is_given_up_as_the_window_begins() {
        // Proves `Book::forgive_warm_up`: due every 250 µs, one request in flight per agent,
        // no answers, warm-up until 10 ms. At 5 ms 21 sends are due, 4 left, 17 owed; at 15 ms
        // the 19 more due before 10 ms join them, and as the 10 ms slot comes up all 36 are
        // given up (not sent in the window, not missed sends of it); the 21 due from 10 to 15
        // ms are owed, and each agent's next request takes its first slot of the window.
        let schedule = Schedule { start_ns: 0, measure_ns: 10_000_000, end_ns: 20_000_000 };
        let mut cfg = config(4, 1);
        cfg.pacing = Pacing::Open { rate: 4_000.0, window: 1 };
        let mut g = group(cfg, schedule);
        g.tick(5_000_000);
        assert_eq!(g.counters().requests_sent, 4);
        assert_eq!(g.book.agents.iter().map(|a| a.owed).sum::<u64>(), 17);
        g.tick(15_000_000);
        assert_eq!(g.counters().warmup_missed_sends, 36);
        assert_eq!(g.book.agents.iter().map(|a| a.owed).sum::<u64>(), 21);
        let next: Vec<u64> = (0..4)
            .map(|l| {
                let a = &g.book.agents[l];
                g.book.intended_ns((a.sent + a.skipped) * 4 + l as u64)
            })
            .collect();
        assert_eq!(next, vec![10_000_000, 10_250_000, 10_500_000, 10_750_000]);
        assert_eq!(g.tick(20_000_000), None);
        assert_eq!(g.counters().missed_sends, 40, "the window's 40 slots, none sent");
        assert_eq!(g.counters().warmup_missed_sends, 36);
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

    #[test]
    fn a_backlog_of_whole_rounds_is_owed_in_one_go_and_accounted_exactly() {
        // Proves `Group::owe_rounds` / `Book::rounds_due`: 10^12 sends due at once (a billion
        // a second, 1,000 s behind) take as long as the windows, not as the sends (one by one
        // this tick would never return); each agent sends its window and owes the rest, to the
        // send; at the end every owed send is missed and sent + missed is exactly what was due.
        let schedule = Schedule { start_ns: 0, measure_ns: 0, end_ns: u64::MAX };
        let mut cfg = config(4, 1);
        cfg.pacing = Pacing::Open { rate: 1e9, window: 2 }; // one send due per nanosecond
        let mut g = group(cfg.clone(), schedule);
        let now = 1_000_000_000_003; // sends 0..=now are due
        let next = g.tick(now).expect("more to come");
        let due = now + 1;
        assert_eq!(next, now + 1);
        assert_eq!(g.counters().requests_sent, 8, "two in flight per agent");
        let owed: u64 = g.book.agents.iter().map(|a| a.owed).sum();
        assert_eq!(owed + 8, due);
        assert_eq!(g.book.agents.iter().map(|a| a.owed).collect::<Vec<_>>(), vec![due / 4 - 2; 4]);
        // The end: what was owed is missed.
        g.book.schedule.end_ns = now + 1;
        assert_eq!(g.tick(now + 10), None);
        assert_eq!(g.counters().missed_sends + g.counters().requests_sent, due);

        // A partial round after whole ones: agents 0 and 1 owe one more than 2 and 3.
        let mut g = group(cfg.clone(), schedule);
        g.tick(1_000_001);
        let owed: Vec<u64> = g.book.agents.iter().map(|a| a.owed).collect();
        assert_eq!(owed, vec![250_001 - 2, 250_001 - 2, 250_000 - 2, 250_000 - 2]);

        // Count mode: an agent owes only while it may send more; with room in its window it
        // sends its count and owes nothing past it.
        cfg.pacing = Pacing::Open { rate: 1e9, window: 16 };
        cfg.stop = Stop::Count { per_agent: 3 };
        let mut g = group(cfg, schedule);
        assert_eq!(g.tick(now), None, "every agent sent its count");
        assert_eq!(g.counters().requests_sent, 12);
        assert_eq!(g.counters().missed_sends, 0);
    }

    #[test]
    fn a_round_of_request_and_reply_allocates_nothing_per_message() {
        // Proves the agents' hot path's discipline: once warm, a core's agents answering,
        // recording and sending again (decode, book, histograms, encode, frames handed to the
        // writer and back) allocate nothing, with a router shard (itself allocation-free:
        // `route::tests::routing_data_allocates_nothing_per_message`) between them in the
        // same thread.
        let mut cfg = config(8, 8);
        cfg.topology = Topology::Ring;
        cfg.pacing = Pacing::Closed { window: 16 };
        cfg.stop = Stop::Duration(Duration::from_secs(3600));
        let mut now = 1_000u64;
        let (mut g, mut router, conn) = through_a_shard(&cfg, now, |_, _| {});
        let turn = |g: &mut Group<Native>, router: &mut crate::route::Shard, now: u64| {
            shard_turn(g, router, conn, now)
        };
        for _ in 0..200 {
            now += 1_000;
            assert!(turn(&mut g, &mut router, now) > 0);
        }
        let (answered, before) = (g.counters().round_trips_measured, counting::calls());
        let mut messages = 0;
        for _ in 0..1_000 {
            now += 1_000;
            messages += turn(&mut g, &mut router, now);
        }
        let allocs = counting::calls() - before;
        assert!(g.counters().round_trips_measured - answered >= 1_000 * 8);
        eprintln!("agents: {allocs} allocations for {messages} messages routed");
        assert_eq!(allocs, 0, "{allocs} allocations for {messages} messages routed");
    }

    /// `agents` on one connection in pipelines of `stages`, closed loop with `window` items in
    /// flight per source, for an hour.
    fn pipelines(agents: u32, stages: u32, window: u32) -> GroupConfig {
        let mut cfg = config(agents, agents);
        cfg.workload = Workload::Pipeline { stages };
        cfg.pacing = Pacing::Closed { window };
        cfg.stop = Stop::Duration(Duration::from_secs(3600));
        cfg
    }

    /// A group of `cfg`'s agents on one connection to one router shard, registered and started
    /// at `now`, with a turn that moves everything between them and returns the messages the
    /// router took in; `before_start` is handed the router (and the connection) first.
    fn through_a_shard(
        cfg: &GroupConfig,
        now: u64,
        before_start: impl FnOnce(&mut crate::route::Shard, crate::route::ConnId),
    ) -> (Group<Native>, crate::route::Shard, crate::route::ConnId) {
        use crate::route::{Shard, ShardConfig};
        let mut g = Group::new(cfg.clone(), Native::new(cfg));
        let mut shard_cfg = ShardConfig::new(0, 1);
        shard_cfg.compression = Compression::None;
        let mut router = Shard::new(shard_cfg);
        let conn = router.open_conn();
        g.register(0);
        shard_turn(&mut g, &mut router, conn, now);
        assert_eq!(g.registered(), Ok(true));
        before_start(&mut router, conn);
        g.set_schedule(Schedule { start_ns: now, measure_ns: now + 1_000, end_ns: u64::MAX });
        g.start(now);
        (g, router, conn)
    }

    /// Group → router → group once; the messages the router took in.
    fn shard_turn(
        g: &mut Group<Native>,
        router: &mut crate::route::Shard,
        conn: crate::route::ConnId,
        now: u64,
    ) -> u64 {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let before = router.stats().msgs_in;
        while let Poll::Ready(Some(buf)) = g.poll_output(0, 0, &mut cx) {
            assert_eq!(router.on_input(conn, &buf).consumed, buf.len());
            g.output_done(buf);
        }
        while let Poll::Ready(Some(frame)) = router.poll_output(conn, &mut cx) {
            assert_eq!(g.on_input(0, &frame, now), Ok(frame.len()));
            router.output_done(frame);
        }
        router.stats().msgs_in - before
    }

    #[test]
    fn a_pipeline_item_goes_through_every_stage_and_back_allocating_nothing() {
        // Proves `pipeline` on the agents' side: 9 agents in pipelines of 4 (agent 8 past the
        // last takes no part); only the sources send; every item is delivered to stages 1-3
        // in turn (3 hops, each a one-way latency) and comes back to its source as the reply
        // its round trip ends with; once warm, handing items on allocates nothing.
        let cfg = pipelines(9, 4, 4);
        let mut now = 1_000u64;
        let (mut g, mut router, conn) = through_a_shard(&cfg, now, |_, _| {});
        for _ in 0..200 {
            now += 1_000;
            assert!(shard_turn(&mut g, &mut router, conn, now) > 0);
        }
        let before = counting::calls();
        let mut messages = 0;
        for _ in 0..1_000 {
            now += 1_000;
            messages += shard_turn(&mut g, &mut router, conn, now);
        }
        let allocs = counting::calls() - before;
        assert_eq!(allocs, 0, "{allocs} allocations for {messages} messages routed");
        let sent: Vec<u64> = g.book.agents.iter().map(|a| a.sent).collect();
        assert!(sent[0] > 1_000 && sent[4] > 1_000, "{sent:?}");
        assert_eq!(sent.iter().filter(|&&n| n > 0).count(), 2, "only the sources: {sent:?}");
        let c = g.counters().clone();
        let (items, in_flight) = (c.replies_delivered, g.book.in_flight);
        assert_eq!(c.requests_sent, items + in_flight);
        // An item in flight has made 0 to 3 hops.
        assert!(c.requests_delivered >= 3 * items && c.requests_delivered <= 3 * c.requests_sent);
        assert!(c.replies_sent >= items && c.replies_sent <= c.requests_sent);
        assert_eq!((c.unexpected, c.error_total()), (0, 0));
        let measured = c.round_trips_measured;
        assert!(g.whole_latencies().one_way.len() >= 3 * measured, "a hop each, and the return");
        // Each hop by the stage it reached: the way back once per item answered, every stage
        // at least as often (items in flight are part way).
        let hops: Vec<u64> = g.hops().iter().map(|h| h.len()).collect();
        assert_eq!((hops.len(), hops[0]), (4, measured), "{hops:?}");
        assert!(hops[1..].iter().all(|&n| n >= measured), "{hops:?}");
        let long = pipelines(super::super::book::HOP_STAGES_MAX + 1, 65, 1);
        assert!(Group::new(long.clone(), Native::new(&long)).hops().is_empty());
    }

    #[test]
    fn a_refused_hop_ends_its_item_as_that_refusal_at_its_source() {
        // Proves a pipeline's accounting when the router refuses an item on its way: stage 2 of
        // a pipeline of 3 left, so every item stage 1 hands on is refused (unknown_recipient)
        // to stage 1, which tells the source; the source counts the refusal by its kind and
        // sends its next item (closed loop): every item sent is refused once or still in
        // flight, none answered, none unexpected.
        use crate::wire::control::Unregister;
        let cfg = pipelines(3, 3, 2);
        let mut now = 1_000u64;
        let (mut g, mut router, conn) = through_a_shard(&cfg, now, |router, conn| {
            let mut f = FrameBuf::new(Vec::new());
            let agent_id = AgentId(1 + 2);
            f.push_control(&Control::Unregister(Unregister { request_id: 7, agent_id }));
            let frame = f.finish(Compression::None, &mut crate::wire::BufferPool::default());
            assert_eq!(router.on_input(conn, &frame).consumed, frame.len());
            let mut cx = Context::from_waker(std::task::Waker::noop());
            // Its acknowledgement, which the group does not expect.
            while let Poll::Ready(Some(ack)) = router.poll_output(conn, &mut cx) {
                router.output_done(ack);
            }
        });
        for _ in 0..100 {
            now += 1_000;
            shard_turn(&mut g, &mut router, conn, now);
        }
        let c = g.counters().clone();
        let refused: u64 = c.request_errors.iter().map(|&(_, n)| n).sum();
        assert_eq!(c.request_errors, vec![(ErrorCode::UnknownRecipient.code(), refused)]);
        assert!(refused >= 50, "{c:?}");
        assert_eq!(c.requests_sent, refused + g.book.in_flight);
        assert_eq!((c.replies_sent, c.replies_delivered, c.unexpected), (0, 0, 0));
        // Each reached stage 1 (an item in flight may not have yet), and no further.
        assert!(c.requests_delivered >= refused && c.requests_delivered <= c.requests_sent);
        // A stage's word to a source that is gone too, refused: nobody's reply error (the
        // source's items are its connection's to account for), and nothing unexpected.
        let mut f = FrameBuf::new(Vec::new());
        f.push_control(&Control::Error(crate::wire::control::Error {
            code: ErrorCode::UnknownRecipient.code(),
            request_id: 0,
            message_id: REPLY_BIT | (1 << 50) | MEASURED_BIT | 7,
            agent_id: AgentId(1 + 1),
            detail: "no such agent".into(),
        }));
        let frame = f.finish(Compression::None, &mut crate::wire::BufferPool::default());
        assert_eq!(g.on_input(0, &frame, now), Ok(frame.len()));
        let after = g.counters();
        assert_eq!((after.reply_error_total(), after.unexpected), (0, 0), "{after:?}");
    }
}
