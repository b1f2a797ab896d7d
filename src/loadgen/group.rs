//! One agent core's share of a run: its virtual agents, their connections, the pacing, the
//! histograms and counters. Runtime-free, like the router's shard: the shell feeds it bytes and
//! time and writes the frames it queues.
//!
//! Every request carries its intended and actual send times in the first 16 payload bytes; the
//! receiver echoes the payload in its reply, so the requester computes both round trips without
//! keeping any state per message. One clock read serves a whole batch of input.

use std::collections::VecDeque;
use std::task::{Context, Poll, Waker};

use super::topology::Topology;
use super::{Pacing, Stop};
use crate::metrics::Latencies;
use crate::wire::{
    decode_frame, AgentId, BufferPool, Compression, Control, DataKind, Envelope, ErrorCode,
    FrameBuf, Limits, Message,
};

/// Message id bit: this is a reply (errors about it go to the replier).
pub const REPLY_BIT: u64 = 1 << 63;
/// Message id bit: the request was sent in the measured window.
pub const MEASURED_BIT: u64 = 1 << 62;
/// Bytes at the start of every payload that carry the send times.
pub const STAMP_BYTES: usize = 16;
/// Largest frame a group builds.
const FRAME_BYTES: usize = 64 << 10;

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

/// Per-core counters; summed over cores for the run's accounting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupCounters {
    /// Requests sent (warm-up included).
    pub requests_sent: u64,
    /// Requests sent in the measured window.
    pub requests_measured: u64,
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
    /// Router errors about requests, by code.
    pub request_errors: Vec<(u16, u64)>,
    /// Router errors about replies, by code.
    pub reply_errors: Vec<(u16, u64)>,
    /// Errors about requests named by the router (the JSON protocol's errors are names).
    pub request_errors_named: Vec<(String, u64)>,
    /// Errors about replies named by the router.
    pub reply_errors_named: Vec<(String, u64)>,
    /// Messages this core could not make sense of (a protocol violation by the router).
    pub unexpected: u64,
    /// Last delivery of a measured message (ns).
    pub last_measured_delivery_ns: u64,
}

impl GroupCounters {
    fn count(list: &mut Vec<(u16, u64)>, code: u16) {
        GroupCounters::add(list, code, 1);
    }

    fn add(list: &mut Vec<(u16, u64)>, code: u16, n: u64) {
        match list.iter_mut().find(|(c, _)| *c == code) {
            Some((_, total)) => *total += n,
            None => list.push((code, n)),
        }
    }

    /// Adds another core's counters.
    pub fn merge(&mut self, o: &GroupCounters) {
        self.requests_sent += o.requests_sent;
        self.requests_measured += o.requests_measured;
        self.requests_delivered += o.requests_delivered;
        self.replies_sent += o.replies_sent;
        self.replies_delivered += o.replies_delivered;
        self.round_trips_measured += o.round_trips_measured;
        self.window_deliveries += o.window_deliveries;
        self.late_sends += o.late_sends;
        self.unexpected += o.unexpected;
        for &(c, n) in &o.request_errors {
            GroupCounters::add(&mut self.request_errors, c, n);
        }
        for &(c, n) in &o.reply_errors {
            GroupCounters::add(&mut self.reply_errors, c, n);
        }
        for (list, other) in [
            (&mut self.request_errors_named, &o.request_errors_named),
            (&mut self.reply_errors_named, &o.reply_errors_named),
        ] {
            for (name, n) in other {
                match list.iter_mut().find(|(x, _)| x == name) {
                    Some((_, total)) => *total += n,
                    None => list.push((name.clone(), *n)),
                }
            }
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
}

/// A virtual agent: 32 bytes of state; its neighbours are computed from the topology.
#[derive(Debug, Clone, Default)]
pub(super) struct Agent {
    /// Requests sent so far (warm-up included): also the index of its next scheduled message.
    pub(super) sent: u64,
    /// Measured requests sent.
    pub(super) measured: u64,
    /// Requests due under open-loop pacing but not sent yet (window full).
    pub(super) owed: u64,
    /// Requests awaiting a reply or an error.
    pub(super) in_flight: u32,
    /// Which neighbour gets the next request.
    pub(super) next_neighbour: u32,
}

/// A request booked by [`Agent::book_request`].
pub(super) struct Booked {
    /// The neighbour it goes to (global index).
    pub(super) to: u32,
    /// The agent's sequence number for it.
    pub(super) seq: u64,
    /// This request completed the agent's measured count (`Stop::Count`).
    pub(super) agent_done: bool,
}

impl Agent {
    /// Books one request agent `global` (of `n`, with `degree` neighbours) sends now: picks the
    /// neighbour, moves the pacing state, and counts it (`late`: it leaves after its intended
    /// time by more than the threshold). Both drivers, frames and JSON, book through here.
    pub(super) fn book_request(
        &mut self,
        topology: Topology,
        (global, n, degree): (u32, u32, u32),
        measured: bool,
        late: bool,
        stop: Stop,
        counters: &mut GroupCounters,
    ) -> Booked {
        let to = topology.neighbour(global, n, self.next_neighbour);
        self.next_neighbour = (self.next_neighbour + 1) % degree;
        let seq = self.sent;
        self.sent += 1;
        self.owed = self.owed.saturating_sub(1);
        self.in_flight += 1;
        let mut agent_done = false;
        if measured {
            self.measured += 1;
            counters.requests_measured += 1;
            agent_done = matches!(stop, Stop::Count { per_agent } if self.measured == per_agent);
        }
        counters.requests_sent += 1;
        counters.late_sends += u64::from(late);
        Booked { to, seq, agent_done }
    }
}

#[derive(Debug, Default)]
struct Outbox {
    open: Option<FrameBuf>,
    sealed: VecDeque<FrameBuf>,
    writer: Option<Waker>,
}

/// One core's agents and connections.
#[derive(Debug)]
pub struct Group {
    cfg: GroupConfig,
    schedule: Schedule,
    agents: Vec<Agent>,
    out: Vec<Outbox>,
    pool: BufferPool,
    inflate: Vec<u8>,
    /// Request payload; the first 16 bytes are overwritten per send.
    payload: Vec<u8>,
    /// Open loop: the next index in this group's send sequence.
    next_due: u64,
    /// Open loop: nanoseconds between two of this group's sends (agents_total / rate).
    slot_ns: f64,
    /// Requests still in flight across the group.
    in_flight: u64,
    /// Agents that sent all their measured requests (count mode).
    agents_done: u32,
    /// Whether every agent is done sending (count mode) or the end time passed.
    finished: bool,
    /// The run is over: writers and the pacer finish.
    stopped: bool,
    now_ns: u64,
    /// Latency histograms of this core.
    pub latencies: Latencies,
    /// Counters of this core.
    pub counters: GroupCounters,
}

impl Group {
    /// A group with its agents idle until [`Group::start`].
    pub fn new(cfg: GroupConfig, schedule: Schedule) -> Group {
        let conns = cfg.count.div_ceil(cfg.agents_per_conn.max(1)) as usize;
        let slot_ns = match cfg.pacing {
            Pacing::Open { rate, .. } => 1e9 / rate,
            Pacing::Closed { .. } => 0.0,
        };
        let mut payload = vec![0u8; cfg.payload_bytes.max(STAMP_BYTES)];
        for (i, b) in payload.iter_mut().enumerate().skip(STAMP_BYTES) {
            *b = (i as u8).wrapping_mul(31).wrapping_add(7);
        }
        Group {
            agents: vec![Agent::default(); cfg.count as usize],
            out: (0..conns).map(|_| Outbox::default()).collect(),
            pool: BufferPool::default(),
            inflate: Vec::new(),
            payload,
            next_due: 0,
            slot_ns,
            in_flight: 0,
            agents_done: 0,
            finished: false,
            stopped: false,
            now_ns: 0,
            latencies: Latencies::default(),
            counters: GroupCounters::default(),
            cfg,
            schedule,
        }
    }

    /// Connections this group needs.
    pub fn connections(&self) -> usize {
        self.out.len()
    }

    /// The agent ids registered on connection `c`.
    pub fn agent_ids(&self, c: usize) -> impl Iterator<Item = AgentId> + '_ {
        let per = self.cfg.agents_per_conn.max(1);
        let lo = c as u32 * per;
        let hi = (lo + per).min(self.cfg.count);
        (lo..hi).map(|l| AgentId(self.cfg.id_base + self.cfg.first + l))
    }

    /// Requests still in flight.
    pub fn in_flight(&self) -> u64 {
        self.in_flight
    }

    /// Whether sending is over (everything due was sent or the end time passed).
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// The schedule.
    pub fn schedule(&self) -> Schedule {
        self.schedule
    }

    /// Sets the schedule once the run's start time is known.
    pub fn set_schedule(&mut self, schedule: Schedule) {
        self.schedule = schedule;
    }

    /// Brings the clock forward without input (sending may have ended meanwhile).
    pub fn refresh(&mut self, now_ns: u64) {
        self.now_ns = now_ns;
        self.update_finished();
    }

    /// Ends the run: parked writers and the pacer finish.
    pub fn stop(&mut self) {
        self.stopped = true;
        for o in &mut self.out {
            if let Some(w) = o.writer.take() {
                w.wake();
            }
        }
    }

    /// Whether [`Group::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    fn window(&self) -> u32 {
        match self.cfg.pacing {
            Pacing::Closed { window } | Pacing::Open { window, .. } => window.max(1),
        }
    }

    /// Called at `start_ns`: closed loop fills every agent's window.
    pub fn start(&mut self, now_ns: u64) {
        self.now_ns = now_ns;
        if let Pacing::Closed { .. } = self.cfg.pacing {
            for local in 0..self.agents.len() {
                self.try_send(local);
            }
        }
        self.update_finished();
    }

    /// Open loop: makes everything due by `now_ns` owed and sends what windows allow. Returns
    /// when the next send is due (`None` when nothing more will be due).
    pub fn tick(&mut self, now_ns: u64) -> Option<u64> {
        self.now_ns = now_ns;
        let Pacing::Open { .. } = self.cfg.pacing else { return None };
        let count = u64::from(self.cfg.count);
        loop {
            let due = self.intended_ns(self.next_due);
            if due > now_ns || due >= self.schedule.end_ns {
                break;
            }
            let local = (self.next_due % count) as usize;
            self.next_due += 1;
            if self.agent_may_send_more(local) {
                self.agents[local].owed += 1;
                self.try_send(local);
            }
            if self.all_done_by_count() {
                break;
            }
        }
        self.update_finished();
        let next = self.intended_ns(self.next_due);
        (!self.finished && next < self.schedule.end_ns).then_some(next)
    }

    /// Intended time of entry `q` of this group's send sequence: agent `first + q % count`'s
    /// `q / count`-th request. Agents of the whole run are evenly interleaved.
    fn intended_ns(&self, q: u64) -> u64 {
        let count = u64::from(self.cfg.count.max(1));
        let (round, local) = (q / count, q % count);
        let slot = round * u64::from(self.cfg.agents_total) + u64::from(self.cfg.first) + local;
        self.schedule.start_ns + (slot as f64 * self.slot_ns) as u64
    }

    fn agent_may_send_more(&self, local: usize) -> bool {
        match self.cfg.stop {
            Stop::Count { per_agent } => self.agents[local].measured < per_agent,
            Stop::Duration(_) => true,
        }
    }

    fn all_done_by_count(&self) -> bool {
        matches!(self.cfg.stop, Stop::Count { .. }) && self.agents_done >= self.cfg.count
    }

    fn update_finished(&mut self) {
        self.finished = match self.cfg.stop {
            Stop::Duration(_) => self.now_ns >= self.schedule.end_ns,
            Stop::Count { .. } => self.all_done_by_count(),
        };
    }

    /// Open loop: whether `tick` has more to do at `now_ns` (for tests).
    pub fn next_due_ns(&self) -> u64 {
        self.intended_ns(self.next_due)
    }

    /// Sends what agent `local` may send now.
    fn try_send(&mut self, local: usize) {
        let window = self.window();
        let n = self.cfg.agents_total;
        let global = self.cfg.first + local as u32;
        let degree = self.cfg.topology.degree(global, n);
        if degree == 0 {
            return;
        }
        loop {
            let a = &self.agents[local];
            if a.in_flight >= window || !self.agent_may_send_more(local) {
                return;
            }
            let intended = match self.cfg.pacing {
                Pacing::Closed { .. } => {
                    if self.now_ns >= self.schedule.end_ns {
                        return;
                    }
                    self.now_ns
                }
                Pacing::Open { .. } => {
                    if a.owed == 0 {
                        return;
                    }
                    let q = a.sent * u64::from(self.cfg.count) + local as u64;
                    self.intended_ns(q)
                }
            };
            let measured = intended >= self.schedule.measure_ns;
            let late = self.now_ns.saturating_sub(intended) > self.cfg.late_after_ns;
            let Booked { to, seq, agent_done } = self.agents[local].book_request(
                self.cfg.topology,
                (global, n, degree),
                measured,
                late,
                self.cfg.stop,
                &mut self.counters,
            );
            self.agents_done += u32::from(agent_done);
            self.in_flight += 1;
            self.payload[..8].copy_from_slice(&intended.to_le_bytes());
            self.payload[8..16].copy_from_slice(&self.now_ns.to_le_bytes());
            let env = Envelope {
                kind: DataKind::Request,
                sender: AgentId(self.cfg.id_base + global),
                to: self.cfg.id_base + to,
                message_id: seq | if measured { MEASURED_BIT } else { 0 },
                correlation_id: 0,
                timestamp_ns: self.now_ns,
                msg_type: 1,
                priority: self.cfg.priority,
                ttl_ms: 0,
                payload: &self.payload,
            };
            let conn = local / self.cfg.agents_per_conn.max(1) as usize;
            push(&mut self.out[conn], &mut self.pool, &env, self.cfg.batch_max);
        }
    }

    /// The local index of agent `id`, if it belongs to this group.
    fn local_of(&self, id: u32) -> Option<usize> {
        let global = id.checked_sub(self.cfg.id_base)?;
        let local = global.checked_sub(self.cfg.first)?;
        (local < self.cfg.count).then_some(local as usize)
    }

    /// Handles every complete frame at the start of `buf`, read from connection `conn`.
    /// Returns the bytes consumed, or `Err` with a description if the router sent something
    /// undecodable (the connection is then useless).
    pub fn on_input(&mut self, conn: usize, buf: &[u8], now_ns: u64) -> Result<usize, String> {
        self.now_ns = now_ns;
        let mut inflate = std::mem::take(&mut self.inflate);
        let mut used = 0;
        let result = loop {
            match decode_frame(&buf[used..], &Limits::DEFAULT, &mut inflate) {
                Ok(Some((len, batch))) => {
                    for item in batch {
                        match item {
                            Ok((msg, _)) => self.on_message(conn, msg),
                            Err(e) => {
                                self.inflate = inflate;
                                return Err(e.to_string());
                            }
                        }
                    }
                    used += len;
                }
                Ok(None) => break Ok(used),
                Err(e) => break Err(e.to_string()),
            }
        };
        self.inflate = inflate;
        self.update_finished();
        result
    }

    fn in_window(&self) -> bool {
        self.now_ns >= self.schedule.measure_ns
            && (self.now_ns < self.schedule.end_ns || self.schedule.end_ns == u64::MAX)
    }

    fn on_message(&mut self, conn: usize, msg: Message<'_>) {
        match msg {
            Message::Data(env) if env.kind == DataKind::Request => self.on_request(conn, &env),
            Message::Data(env) if env.kind == DataKind::Reply => self.on_reply(&env),
            Message::Control(Control::Error(e)) => {
                if e.message_id & REPLY_BIT != 0 {
                    GroupCounters::count(&mut self.counters.reply_errors, e.code);
                    return;
                }
                GroupCounters::count(&mut self.counters.request_errors, e.code);
                if e.message_id == 0 && e.request_id == 0 && e.agent_id.0 == 0 {
                    return; // a frame-level error: the router closes the connection
                }
                if let Some(local) = self.local_of(e.agent_id.0) {
                    self.resolve(local);
                }
            }
            _ => self.counters.unexpected += 1,
        }
    }

    fn on_request(&mut self, conn: usize, env: &Envelope<'_>) {
        if self.local_of(env.to).is_none() || env.payload.len() < STAMP_BYTES {
            self.counters.unexpected += 1;
            return;
        }
        self.counters.requests_delivered += 1;
        if self.in_window() {
            self.counters.window_deliveries += 1;
        }
        if env.message_id & MEASURED_BIT != 0 {
            self.latencies.record_one_way(self.now_ns.saturating_sub(env.timestamp_ns));
            self.counters.last_measured_delivery_ns = self.now_ns;
        }
        let reply = Envelope {
            kind: DataKind::Reply,
            sender: AgentId(env.to),
            to: env.sender.0,
            message_id: REPLY_BIT | env.message_id,
            correlation_id: env.message_id,
            timestamp_ns: self.now_ns,
            msg_type: env.msg_type,
            priority: env.priority,
            ttl_ms: 0,
            payload: env.payload,
        };
        self.counters.replies_sent += 1;
        push(&mut self.out[conn], &mut self.pool, &reply, self.cfg.batch_max);
    }

    fn on_reply(&mut self, env: &Envelope<'_>) {
        let Some(local) = self.local_of(env.to).filter(|_| env.payload.len() >= STAMP_BYTES) else {
            self.counters.unexpected += 1;
            return;
        };
        self.counters.replies_delivered += 1;
        if self.in_window() {
            self.counters.window_deliveries += 1;
        }
        if env.correlation_id & MEASURED_BIT != 0 {
            let stamp = |i: usize| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&env.payload[i..i + 8]);
                u64::from_le_bytes(b)
            };
            let (intended, actual) = (stamp(0), stamp(8));
            let now = self.now_ns;
            self.latencies.record_rtt(now.saturating_sub(intended), now.saturating_sub(actual));
            self.latencies.record_one_way(now.saturating_sub(env.timestamp_ns));
            self.counters.round_trips_measured += 1;
            self.counters.last_measured_delivery_ns = now;
        }
        self.resolve(local);
    }

    /// A request of agent `local` is answered (reply or error): free its window slot.
    fn resolve(&mut self, local: usize) {
        let a = &mut self.agents[local];
        if a.in_flight > 0 {
            a.in_flight -= 1;
            self.in_flight -= 1;
        }
        self.try_send(local);
    }

    /// The next frame to write on connection `conn`; pending (waker kept) while there is none;
    /// `Ready(None)` once the run is stopped.
    pub fn poll_output(&mut self, conn: usize, cx: &mut Context<'_>) -> Poll<Option<Vec<u8>>> {
        if self.stopped {
            return Poll::Ready(None);
        }
        let compression = self.cfg.compression;
        let o = &mut self.out[conn];
        let frame = o.sealed.pop_front().or_else(|| o.open.take());
        match frame {
            Some(f) => Poll::Ready(Some(f.finish(compression, &mut self.pool))),
            None => {
                o.writer = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    /// A written frame's buffer, back to the pool.
    pub fn output_done(&mut self, frame: Vec<u8>) {
        self.pool.put(frame);
    }

    /// Registration messages for connection `conn`, as one frame.
    pub fn register_frame(&mut self, conn: usize, agent_type: u32) -> Vec<u8> {
        let ids: Vec<AgentId> = self.agent_ids(conn).collect();
        let mut frame = FrameBuf::new(self.pool.get(4096));
        for id in ids {
            frame.push_control(&Control::Register(crate::wire::control::Register {
                request_id: u64::from(id.0),
                agent_id: id,
                agent_type,
                name: format!("agent-{}", id.0 - self.cfg.id_base),
                capabilities: Vec::new(),
                topics: Vec::new(),
                token: None,
            }));
        }
        frame.finish(Compression::None, &mut self.pool)
    }
}

/// Appends `env` to the outbox's open frame, sealing it first when it is full.
fn push(o: &mut Outbox, pool: &mut BufferPool, env: &Envelope<'_>, batch_max: u32) {
    let need = Envelope::encoded_len_max(env.payload.len());
    if let Some(f) = &o.open {
        if f.count() >= batch_max || (f.len() + need > FRAME_BYTES && !f.is_empty()) {
            if let Some(f) = o.open.take() {
                o.sealed.push_back(f);
            }
        }
    }
    let frame = o.open.get_or_insert_with(|| FrameBuf::new(pool.get(need.max(FRAME_BYTES))));
    frame.push_envelope(env);
    if let Some(w) = o.writer.take() {
        w.wake();
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

    #[test]
    fn a_virtual_agent_costs_tens_of_bytes() {
        // Proves a group's own state per agent: 100,000 agents in a mesh, 50 per connection,
        // cost well under 2 KiB each (histograms and pools are per core, not per agent).
        let schedule = Schedule { start_ns: 0, measure_ns: 0, end_ns: u64::MAX };
        let before = counting::live();
        let group = Group::new(config(100_000, 50), schedule);
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
        let g = Group::new(cfg.clone(), schedule);
        let due: Vec<u64> = (0..6).map(|q| g.intended_ns(q)).collect();
        assert_eq!(due, vec![1_000, 251_000, 501_000, 751_000, 1_001_000, 1_251_000]);
        let half = Group::new(GroupConfig { first: 2, count: 2, ..cfg }, schedule);
        let due: Vec<u64> = (0..4).map(|q| half.intended_ns(q)).collect();
        assert_eq!(due, vec![501_000, 751_000, 1_501_000, 1_751_000]);
    }
}
