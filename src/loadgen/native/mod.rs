//! The native adapter of the agent loop: a2a-bench's batched msgpack frames (`docs/PROTOCOL.md`).
//!
//! Requests and replies are gathered per connection into frames of up to `batch_max` messages
//! from pooled buffers; the send times travel in the first 16 payload bytes and the receiver
//! echoes the payload, so no state is kept per message. One clock read serves a whole input.

use std::collections::VecDeque;
use std::sync::Arc;

use super::coordination::{Coordination, POKE};
use super::group::{About, Adapter, Book, ErrorKind, GroupConfig, Outgoing, REPLY_BIT};
use super::group::{Seats, MEASURED_BIT, STAMP_BYTES};
use super::mix::{PayloadMix, SizeStats};
use super::workload::{Completed, Coord, CoordStats, Workload};
use crate::wire::control::{
    BarrierEnter, Discover, Heartbeat, LockRelease, LockRequest, Register, Unregister,
};
use crate::wire::{
    decode_frame, AgentId, BarrierId, BufferPool, Compression, Control, DataKind, Envelope,
    ErrorCode, FrameBuf, Limits, LockId, Message, Probe, Quiet, TopicId,
};

mod churn;
mod consensus;
mod delegation;
mod election;
mod pipeline;

/// Largest frame a group builds.
const FRAME_BYTES: usize = 64 << 10;
/// A publication's board slot travels in its message id, above the sequence number.
const SLOT_SHIFT: u32 = 40;
/// The request id of a lock release: this bit and the agent id.
const RELEASE_BIT: u64 = 1 << 61;
/// `churn`: the request ids of a join, a leave and a discovery: a bit and the passing id.
const JOIN_BIT: u64 = 1 << 59;
const LEAVE_BIT: u64 = 1 << 60;
const DISCOVER_BIT: u64 = 1 << 58;
/// `churn`: an agent's passing identity is its id plus this (agents ≤ 2^20 under churn, and
/// runs' id ranges are 2^21 apart).
pub const JOIN_OFFSET: u32 = 1 << 20;
/// `churn`: the capability passing agents register and discover by.
const CHURN_CAPABILITY: &str = "churn";

/// `consensus`: a leader's proposal in flight.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Proposal {
    seq: u64,
    accepted: u32,
    majority: bool,
    intended_ns: u64,
    sent_ns: u64,
    measured: bool,
}

/// `consensus`: the value proposed for place `seq` by `leader`, which every follower can check.
fn proposed_value(leader: u32, seq: u64) -> u64 {
    ((u64::from(leader) << 32) ^ seq).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// `consensus`: message types (the envelope's `msg_type`).
const PROPOSE: u32 = 2;
const COMMIT: u32 = 3;
/// `consensus`: set in every message id, so that none is 0.
const CONSENSUS_BIT: u64 = 1 << 57;
/// `delegation`: a task's message id has this bit, a subtask's the other (with its place in
/// the specialist core's table of tasks in flight above bit 8, its index below).
const TASK_BIT: u64 = 1 << 56;
const SUBTASK_BIT: u64 = 1 << 55;
/// `election`: message ids carry this bit, the term above bit 8 and the message type below.
const ELECTION_BIT: u64 = 1 << 54;
const KILL: u64 = 10;
const DYING: u64 = 11;
const ELECT: u64 = 12;
const ELECT_OK: u64 = 13;
const LEADER: u64 = 14;
const BACK: u64 = 15;
/// `election`: request ids of a killed leader's leave and of its return.
const DIE_BIT: u64 = 1 << 53;
const REVIVE_BIT: u64 = 1 << 52;
/// A heartbeat's request id: this bit and the agent id ([`Adapter::keep_alive`]).
const KEEPALIVE_BIT: u64 = 1 << 51;
/// `election`: a [`Completed`] with this slot brings a killed leader back.
const REVIVE: u8 = 254;
/// `pipeline`: the message type of a stage's word to its source that the router refused the
/// item on its way on (the code in the payload's first two bytes, little-endian).
const REFUSED_HOP: u32 = 4;
/// `pipeline`: set in such a word's message id (with [`REPLY_BIT`]): a refusal of the word (its
/// source gone, whose items its connection's loss accounts for) is nobody's reply error.
const WORD_BIT: u64 = 1 << 50;
/// `delegation`: the capability specialists register and coordinators discover by.
const SPECIALIST_CAPABILITY: &str = "specialist";

/// `delegation`: a task a specialist of this core has handed out.
#[derive(Debug, Clone, Copy)]
pub(super) struct Task {
    coordinator: u32,
    specialist: u32,
    task_id: u64,
    left: u32,
    stamps: [u8; 16],
}

#[derive(Debug, Default)]
struct Outbox {
    open: Option<FrameBuf>,
    sealed: VecDeque<FrameBuf>,
    /// Whether LZ4 paid on this connection's frames lately (`auto` compression).
    probe: Probe,
    /// Whether its next frame starts in a small buffer.
    quiet: Quiet,
}

/// Frames for one agent core.
#[derive(Debug)]
pub struct Native {
    out: Vec<Outbox>,
    pool: BufferPool,
    inflate: Vec<u8>,
    /// Request payload; the first 16 bytes are overwritten per send. With a mix, as long as
    /// its largest size, each request taking the start of it.
    payload: Vec<u8>,
    /// `--payload-mix`, and each size's figures.
    mix: Option<PayloadMix>,
    sizes: Vec<SizeStats>,
    batch_max: u32,
    compression: Compression,
    priority: u8,
    id_base: u32,
    first: u32,
    count: u32,
    agents_total: u32,
    seats: Seats,
    workload: Workload,
    co: Option<Coordination>,
}

impl Native {
    /// The adapter for a group with these settings (request/reply; see [`Native::with_coord`]).
    pub fn new(cfg: &GroupConfig) -> Native {
        let conns = cfg.seats.conns(cfg.count) as usize;
        let largest = cfg.payload_mix.map_or(cfg.payload_bytes, |m| m.largest());
        let mut payload = vec![0u8; largest.max(STAMP_BYTES)];
        for (i, b) in payload.iter_mut().enumerate().skip(STAMP_BYTES) {
            *b = (i as u8).wrapping_mul(31).wrapping_add(7);
        }
        Native {
            out: (0..conns).map(|_| Outbox::default()).collect(),
            pool: BufferPool::default(),
            inflate: Vec::new(),
            payload,
            mix: cfg.payload_mix,
            sizes: cfg.payload_mix.as_ref().map(SizeStats::of).unwrap_or_default(),
            batch_max: cfg.batch_max.max(1),
            compression: cfg.compression,
            priority: cfg.priority,
            id_base: cfg.id_base,
            first: cfg.first,
            count: cfg.count,
            agents_total: cfg.agents_total,
            seats: cfg.seats,
            workload: cfg.workload,
            co: None,
        }
    }

    /// The adapter for a coordination workload, sharing `coord` with the run's other cores;
    /// `poke` is this core's channel (it wakes the core's side task when a hold begins).
    pub fn with_coord(
        cfg: &GroupConfig,
        coord: Arc<Coord>,
        poke: Option<flume::Sender<Completed>>,
    ) -> Native {
        let mut n = Native::new(cfg);
        n.co = Some(Coordination::new(cfg, coord, poke));
        n
    }

    /// Appends a control message to connection `conn`'s open frame.
    fn push_control(&mut self, conn: usize, ctl: &Control) {
        let o = &mut self.out[conn];
        if let Some(f) = &o.open {
            if f.count() >= self.batch_max || f.len() + 256 > FRAME_BYTES {
                if let Some(f) = o.open.take() {
                    o.sealed.push_back(f);
                }
            }
        }
        let pool = &mut self.pool;
        let least = o.quiet.least(FRAME_BYTES);
        let frame = o.open.get_or_insert_with(|| FrameBuf::new(pool.get(least)));
        frame.push_control(ctl);
    }

    /// The connection of agent `local`.
    #[inline]
    fn conn_of(&self, local: usize) -> usize {
        self.seats.conn_of(self.count, local)
    }

    fn local_of(&self, id: u32) -> Option<usize> {
        let local = id.checked_sub(self.id_base)?.checked_sub(self.first)?;
        (local < self.count).then_some(local as usize)
    }

    /// How many of connection `conn`'s agents a publication of agent `publisher` (global
    /// index) reaches.
    fn recipients(&self, conn: usize, publisher: u32) -> u64 {
        let seats = self.seats.agents(self.count, conn);
        let (lo, hi) = (self.first + seats.start, self.first + seats.end);
        let n = self.agents_total;
        match self.workload {
            Workload::Fanout { subscribers } => (lo..hi)
                .filter(|&j| {
                    let d = (u64::from(j) + u64::from(n) - u64::from(publisher)) % u64::from(n);
                    d >= 1 && d <= u64::from(subscribers)
                })
                .count() as u64,
            Workload::Broadcast => {
                u64::from(hi - lo) - u64::from(publisher >= lo && publisher < hi)
            }
            _ => 0,
        }
    }

    /// Encodes an operation of a coordination workload.
    fn operation(&mut self, conn: usize, r: &Outgoing) {
        let Some(local) = self.local_of(r.from) else { return };
        let global = self.first + local as u32;
        let id = AgentId(r.from);
        let run = u64::from(self.id_base) << 32;
        let Some(co) = self.co.as_mut() else { return };
        let op = &mut co.ops[local];
        match self.workload {
            Workload::Fanout { .. } | Workload::Broadcast => {
                let seq = (r.message_id & !MEASURED_BIT) as u32;
                let slot = co.open_publication(local, global, seq, r.measured);
                let kind = if self.workload == Workload::Broadcast {
                    DataKind::Broadcast
                } else {
                    DataKind::Publish
                };
                self.envelope(conn, r, kind, r.message_id | (u64::from(slot) << SLOT_SHIFT));
            }
            Workload::Locks { .. } => {
                op.begin(r);
                let ctl = Control::LockRequest(LockRequest {
                    request_id: r.message_id,
                    agent_id: id,
                    lock_id: LockId(run | u64::from(r.to)),
                    lease_ms: co.lease_ms,
                });
                self.push_control(conn, &ctl);
            }
            Workload::Barriers => {
                op.begin(r);
                co.coord.enter(u64::from(r.to), r.sent_ns);
                let ctl = Control::BarrierEnter(BarrierEnter {
                    request_id: r.message_id,
                    agent_id: id,
                    barrier_id: BarrierId(run | u64::from(r.to)),
                    expected: self.agents_total,
                });
                self.push_control(conn, &ctl);
            }
            Workload::Churn { .. } => self.join(conn, r, local, global),
            Workload::Consensus { .. } => self.propose(conn, r, local, global),
            Workload::Delegation { .. } => self.find_specialist(conn, r, local),
            Workload::Election { .. } => {
                op.begin(r);
                let (_, first, size) = self.workload.group_of(global, self.agents_total);
                let leader = if op.term == 0 { first + size - 1 } else { op.leader };
                // The term this operation waits for; the kill target, to revive it after.
                op.next = u64::from(op.term) + 1;
                op.target = leader;
                co.stats.messages += 1;
                let term = op.term + 1;
                self.election_message(conn, global, leader, KILL, term);
            }
            Workload::RequestReply | Workload::Pipeline { .. } => {}
        }
    }

    /// `churn`: a passing agent joins (its registration is the operation's first step).
    fn join(&mut self, conn: usize, r: &Outgoing, local: usize, global: u32) {
        let Some(co) = self.co.as_mut() else { return };
        let op = &mut co.ops[local];
        op.begin(r);
        (op.message_id, op.failed, op.granted_ns) = (r.message_id, None, r.sent_ns);
        let passing = AgentId(r.from + JOIN_OFFSET);
        let ctl = Control::Register(Register {
            request_id: JOIN_BIT | u64::from(passing.0),
            agent_id: passing,
            agent_type: 1,
            name: format!("passing-{global}"),
            capabilities: vec![CHURN_CAPABILITY.to_string()],
            topics: Vec::new(),
            token: None,
        });
        self.push_control(conn, &ctl);
    }

    /// `consensus`: the group's leader proposes the next value to its followers.
    fn propose(&mut self, conn: usize, r: &Outgoing, local: usize, global: u32) {
        let Some(co) = self.co.as_mut() else { return };
        let op = &mut co.ops[local];
        let slot = (!op.used).trailing_zeros().min(63) as u8;
        op.used |= 1 << slot;
        let seq = r.message_id & !MEASURED_BIT;
        if let Some(p) = co.proposals[local].get_mut(usize::from(slot)) {
            *p = Proposal {
                seq,
                accepted: 0,
                majority: false,
                intended_ns: r.intended_ns,
                sent_ns: r.sent_ns,
                measured: r.measured,
            };
        }
        let (_, first, size) = self.workload.group_of(global, self.agents_total);
        co.stats.messages += u64::from(size - 1);
        let value = proposed_value(global, seq);
        let id = CONSENSUS_BIT | (u64::from(slot) << SLOT_SHIFT) | r.message_id;
        for f in (first..first + size).filter(|&f| f != global) {
            self.consensus_message(conn, r.from, f, PROPOSE, DataKind::Direct, id, value);
        }
    }

    /// `delegation`: a coordinator looks for a specialist to hand its task to.
    fn find_specialist(&mut self, conn: usize, r: &Outgoing, local: usize) {
        let Some(co) = self.co.as_mut() else { return };
        let op = &mut co.ops[local];
        op.begin(r);
        (op.message_id, op.granted_ns) = (r.message_id, r.sent_ns);
        let (_, specialists) = super::workload::delegation_roles(self.agents_total);
        let seq = r.message_id & !MEASURED_BIT;
        let spread = (u64::from(r.from) * 2_654_435_761 + seq * 40_503) >> 7;
        let ctl = Control::Discover(Discover {
            request_id: DISCOVER_BIT | u64::from(r.from),
            agent_type: 0,
            capability: Some(SPECIALIST_CAPABILITY.to_string()),
            offset: (spread % u64::from(specialists)) as u32,
            limit: 8,
            names_only: false,
        });
        self.push_control(conn, &ctl);
    }

    /// A data message carrying the send times, from `r`.
    #[inline]
    fn envelope(&mut self, conn: usize, r: &Outgoing, kind: DataKind, message_id: u64) {
        self.envelope_of(conn, r, kind, message_id, self.payload.len());
    }

    /// [`Native::envelope`] with the first `bytes` of the payload (at least [`STAMP_BYTES`]).
    #[inline]
    fn envelope_of(
        &mut self,
        conn: usize,
        r: &Outgoing,
        kind: DataKind,
        message_id: u64,
        bytes: usize,
    ) {
        let mut payload = std::mem::take(&mut self.payload);
        payload[..8].copy_from_slice(&r.intended_ns.to_le_bytes());
        payload[8..16].copy_from_slice(&r.sent_ns.to_le_bytes());
        let env = Envelope {
            kind,
            sender: AgentId(r.from),
            to: r.to,
            message_id,
            correlation_id: 0,
            timestamp_ns: r.sent_ns,
            msg_type: 1,
            priority: self.priority,
            ttl_ms: 0,
            payload: &payload[..bytes],
        };
        self.push(conn, &env);
        self.payload = payload;
    }

    /// The router refused request `message_id` of agent `from`: if it was measured, an error
    /// of its size (`--payload-mix`; the size is drawn again as [`Adapter::request`] drew it).
    fn size_refused(&mut self, from: u32, message_id: u64) {
        if let Some(m) = self.mix.as_ref().filter(|_| message_id & MEASURED_BIT != 0) {
            self.sizes[m.pick(from, message_id & !MEASURED_BIT)].errors += 1;
        }
    }

    /// A measured reply of `bytes` came back `rtt_ns` after its request's intended time: its
    /// size's round trip (`--payload-mix`).
    #[inline]
    fn size_answered(&mut self, bytes: usize, rtt_ns: u64) {
        if let Some(c) = self.mix.as_ref().and_then(|m| m.class_of(bytes)) {
            self.sizes[c].rtt.saturating_record(rtt_ns.max(1));
        }
    }

    /// A publication reached this connection's agents.
    fn on_publication(&mut self, conn: usize, env: &Envelope<'_>, book: &mut Book) {
        let Some(publisher) = env.sender.0.checked_sub(self.id_base) else {
            return book.unexpected();
        };
        let k = self.recipients(conn, publisher);
        if k == 0 || env.payload.len() < STAMP_BYTES {
            return book.unexpected();
        }
        let measured = env.message_id & MEASURED_BIT != 0;
        let slot = ((env.message_id >> SLOT_SHIFT) & 0x3f) as u8;
        let seq = (env.message_id & !MEASURED_BIT) as u32;
        let stamps = (stamp(env.payload, 0), stamp(env.payload, 8));
        if let Some(co) = self.co.as_mut() {
            co.delivered(publisher, (slot, seq), k, env.timestamp_ns, stamps, measured, book);
        }
    }

    /// A control message about a coordination operation.
    fn on_coordination(&mut self, conn: usize, ctl: Control, book: &mut Book) {
        match ctl {
            Control::Ack(a) if a.request_id & DIE_BIT != 0 => {}
            Control::Ack(a) if a.request_id & REVIVE_BIT != 0 => {
                // Back: tell the group's observer.
                let Some(local) = self.local_of(a.request_id as u32) else {
                    return book.unexpected();
                };
                let me = self.first + local as u32;
                let (_, observer, _) = self.workload.group_of(me, self.agents_total);
                let term = self.co.as_mut().map_or(0, |co| {
                    co.stats.messages += 1;
                    co.ops[local].term
                });
                self.election_message(conn, me, observer, BACK, term);
            }
            Control::LockGranted(g) => {
                let (Some(local), Some(co)) = (self.local_of(g.agent_id.0), self.co.as_mut())
                else {
                    return book.unexpected();
                };
                match co.granted(local, g.agent_id.0, g.lock_id.0 & 0xffff_ffff, book) {
                    Some(true) => self.release(local, book),
                    Some(false) => {}
                    None => book.unexpected(),
                }
            }
            Control::LockQueued(_) => {
                if let Some(co) = self.co.as_mut() {
                    co.stats.lock_queued += 1;
                }
            }
            Control::Ack(a) if a.request_id & RELEASE_BIT != 0 => {
                let (Some(local), Some(co)) =
                    (self.local_of(a.request_id as u32), self.co.as_mut())
                else {
                    return book.unexpected();
                };
                if let Some(local) = co.released(local, book) {
                    book.send_from(local, |conn, r| self.request(conn, r));
                }
            }
            Control::BarrierWait(_) => {}
            Control::BarrierRelease(b) => {
                let (Some(local), Some(co)) = (self.local_of(b.agent_id.0), self.co.as_mut())
                else {
                    return book.unexpected();
                };
                match co.barrier_passed(local, b.barrier_id.0, book) {
                    Err(()) => book.unexpected(),
                    Ok(None) => {}
                    Ok(Some((local, released_at))) => {
                        // Every agent of the round decides by the round's release time.
                        book.as_of_ns = Some(released_at);
                        book.send_from(local, |conn, r| self.request(conn, r));
                        book.as_of_ns = None;
                    }
                }
            }
            Control::Error(e) => self.on_coordination_error(&e, book),
            _ => book.unexpected(),
        }
    }

    /// The router's error about a coordination operation's message: a frame-level error, an
    /// election's, an inner message of an operation (counted apart), or an operation's request.
    fn on_coordination_error(&mut self, e: &crate::wire::control::Error, book: &mut Book) {
        let Some(local) = self.local_of(e.agent_id.0) else {
            // A frame-level error: the router closes the connection.
            return book.frame_error(e.code);
        };
        if matches!(self.workload, Workload::Election { .. }) {
            return self.on_election_error(e, book);
        }
        let inner = match self.workload {
            Workload::Consensus { .. } => true,
            Workload::Delegation { .. } => e.message_id & TASK_BIT == 0,
            _ => false,
        };
        if inner && e.request_id == 0 {
            // A proposal, acceptance or commit, a subtask or a result: counted apart.
            // Its operation completes without it or stalls (then it is given up on);
            // the last commits of a run may meet followers that already left.
            if let Some(co) = self.co.as_mut() {
                co.stats.refuse(e.code);
            }
            return;
        }
        let resolves = match self.co.as_mut() {
            Some(co) if self.workload.fans_out() => {
                let slot = ((e.message_id >> SLOT_SHIFT) & 0x3f) as u8;
                let seq = (e.message_id & !MEASURED_BIT) as u32;
                co.publication_failed(local, slot, seq)
            }
            _ => true,
        };
        let about = About::Request(resolves.then_some(e.agent_id.0));
        if let Some(local) = book.router_error(about, ErrorKind::Code(e.code)) {
            book.send_from(local, |conn, r| self.request(conn, r));
        }
    }

    /// Agent `local` gives its lock back now.
    fn release(&mut self, local: usize, book: &mut Book) {
        let id = self.id_base + self.first + local as u32;
        let Some(lock) = self.co.as_mut().and_then(|co| co.release(local, id, book.now_ns()))
        else {
            return;
        };
        let ctl = Control::LockRelease(LockRelease {
            request_id: RELEASE_BIT | u64::from(id),
            agent_id: AgentId(id),
            lock_id: LockId((u64::from(self.id_base) << 32) | u64::from(lock)),
        });
        let conn = self.conn_of(local);
        self.push_control(conn, &ctl);
        book.wake_writer(conn);
    }

    /// Appends `env` to connection `conn`'s open frame, sealing it first when it is full.
    #[inline]
    fn push(&mut self, conn: usize, env: &Envelope<'_>) {
        let o = &mut self.out[conn];
        let need = Envelope::encoded_len_max(env.payload.len());
        if let Some(f) = &o.open {
            if f.count() >= self.batch_max || (f.len() + need > FRAME_BYTES && !f.is_empty()) {
                if let Some(f) = o.open.take() {
                    o.sealed.push_back(f);
                }
            }
        }
        let pool = &mut self.pool;
        let least = o.quiet.least(FRAME_BYTES);
        let frame = o.open.get_or_insert_with(|| FrameBuf::new(pool.get(need.max(least))));
        frame.push_envelope(env);
    }

    /// A data message outside the coordination workloads: a request to answer or a reply.
    #[inline]
    fn on_plain_data(&mut self, conn: usize, env: &Envelope<'_>, book: &mut Book) {
        match env.kind {
            DataKind::Request => {
                if env.payload.len() < STAMP_BYTES {
                    return book.unexpected();
                }
                let measured = env.message_id & MEASURED_BIT != 0;
                if let Workload::Pipeline { .. } = self.workload {
                    return self.on_item(conn, env, measured, book);
                }
                if !book.request_delivered(env.to, env.timestamp_ns, measured) {
                    return;
                }
                self.push(conn, &reply_to(env, AgentId(env.to), book.now_ns()));
            }
            DataKind::Reply => {
                if env.msg_type == REFUSED_HOP && matches!(self.workload, Workload::Pipeline { .. })
                {
                    return self.on_refused_hop(env, book);
                }
                if env.payload.len() < STAMP_BYTES {
                    return book.unexpected();
                }
                let measured = env.correlation_id & MEASURED_BIT != 0;
                let sent = env.timestamp_ns;
                let stamps = (stamp(env.payload, 0), stamp(env.payload, 8));
                if self.mix.is_some() && measured && book.local_of(env.to).is_some() {
                    self.size_answered(env.payload.len(), book.now_ns().saturating_sub(stamps.0));
                }
                if let Some(local) = book.reply_delivered(env.to, stamps, sent, measured) {
                    book.send_from(local, |conn, r| self.request(conn, r));
                }
            }
            _ => book.unexpected(),
        }
    }

    #[inline]
    fn on_message(&mut self, conn: usize, msg: Message<'_>, book: &mut Book) {
        match &msg {
            // A heartbeat's answer: an error (the agent left, or its registration is still on
            // its way) says no less than an ack that the connection was heard.
            Message::Control(Control::Ack(a)) if a.request_id & KEEPALIVE_BIT != 0 => return,
            Message::Control(Control::Error(e)) if e.request_id & KEEPALIVE_BIT != 0 => return,
            _ => {}
        }
        if self.co.is_some() {
            match msg {
                Message::Data(env)
                    if matches!(env.kind, DataKind::Publish | DataKind::Broadcast) =>
                {
                    return self.on_publication(conn, &env, book)
                }
                Message::Data(env) if matches!(self.workload, Workload::Churn { .. }) => {
                    return self.on_churn_data(conn, &env, book)
                }
                Message::Data(env) if matches!(self.workload, Workload::Consensus { .. }) => {
                    return self.on_consensus_data(conn, &env, book)
                }
                Message::Data(env) if matches!(self.workload, Workload::Delegation { .. }) => {
                    return self.on_delegation_data(conn, &env, book)
                }
                Message::Data(env) if matches!(self.workload, Workload::Election { .. }) => {
                    return self.on_election_data(conn, &env, book)
                }
                Message::Control(Control::DiscoverReply(d))
                    if matches!(self.workload, Workload::Delegation { .. }) =>
                {
                    return self.on_delegation_found(&d, book)
                }
                Message::Control(ctl) if !book.registering() => {
                    if matches!(self.workload, Workload::Churn { .. }) && self.on_churn(&ctl, book)
                    {
                        return;
                    }
                    return self.on_coordination(conn, ctl, book);
                }
                _ => {}
            }
        }
        match msg {
            Message::Data(env) => self.on_plain_data(conn, &env, book),
            Message::Control(Control::Ack(_)) if book.registering() => book.ack(conn),
            Message::Control(Control::Error(e)) if book.registering() => {
                let code = ErrorCode::from_code(e.code).map_or("unknown", ErrorCode::name);
                book.refused(format!("registering agent {}: {code} ({})", e.agent_id.0, e.detail));
            }
            Message::Control(Control::Error(e)) => {
                let word = REPLY_BIT | WORD_BIT;
                let about = if e.message_id & word == word
                    && matches!(self.workload, Workload::Pipeline { .. })
                {
                    return;
                } else if e.message_id & REPLY_BIT != 0 {
                    About::Reply
                } else if e.message_id == 0 && e.request_id == 0 && e.agent_id.0 == 0 {
                    return book.frame_error(e.code); // the router closes the connection
                } else if self.pass_on_refusal(conn, &e, book) {
                    return;
                } else {
                    self.size_refused(e.agent_id.0, e.message_id);
                    About::Request(Some(e.agent_id.0))
                };
                if let Some(local) = book.router_error(about, ErrorKind::Code(e.code)) {
                    book.send_from(local, |conn, r| self.request(conn, r));
                }
            }
            _ => book.unexpected(),
        }
    }
}

/// The reply `sender` sends at `now` to request `env`, echoing its payload.
fn reply_to<'a>(env: &Envelope<'a>, sender: AgentId, now: u64) -> Envelope<'a> {
    Envelope {
        kind: DataKind::Reply,
        sender,
        to: env.sender.0,
        message_id: REPLY_BIT | env.message_id,
        correlation_id: env.message_id,
        timestamp_ns: now,
        msg_type: env.msg_type,
        priority: env.priority,
        ttl_ms: 0,
        payload: env.payload,
    }
}

/// The send time at byte `i` of a payload (checked to hold [`STAMP_BYTES`]).
fn stamp(payload: &[u8], i: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&payload[i..i + 8]);
    u64::from_le_bytes(b)
}

impl Adapter for Native {
    fn register(&mut self, conn: usize, ids: &[AgentId], _book: &mut Book) {
        // About 60 bytes a registration: a connection of one agent takes a 1 KiB buffer for
        // it, not 4 KiB (19,000 connections registering at once: 57 MB less).
        let mut frame = FrameBuf::new(self.pool.get(ids.len() * 96));
        let n = self.agents_total;
        for &id in ids {
            let global = id.0 - self.id_base;
            // A subscriber of the topics of the agents before it, in ring order.
            let topics = match self.workload {
                Workload::Fanout { subscribers } => (1..=subscribers.min(n - 1))
                    .map(|d| TopicId(self.id_base + (global + n - d) % n))
                    .collect(),
                _ => Vec::new(),
            };
            let capabilities = match self.workload {
                Workload::Delegation { .. }
                    if self.workload.role(global, n) == super::workload::Role::Specialist =>
                {
                    vec![SPECIALIST_CAPABILITY.to_string()]
                }
                _ => Vec::new(),
            };
            frame.push_control(&Control::Register(Register {
                request_id: u64::from(id.0),
                agent_id: id,
                // Broadcasts reach this run's agents only.
                agent_type: if self.workload == Workload::Broadcast { self.id_base } else { 1 },
                name: format!("agent-{global}"),
                capabilities,
                topics,
                token: None,
            }));
        }
        self.out[conn].sealed.push_back(frame);
    }

    #[inline]
    fn request(&mut self, conn: usize, r: &Outgoing) {
        if self.co.is_some() {
            return self.operation(conn, r);
        }
        // By reference: the mix is 68 bytes, not to be copied per request.
        let drawn = self.mix.as_ref().map(|m| {
            let class = m.pick(r.from, r.message_id & !MEASURED_BIT);
            (class, m.bytes(class))
        });
        let Some((class, bytes)) = drawn else {
            return self.envelope(conn, r, DataKind::Request, r.message_id);
        };
        self.sizes[class].sent += u64::from(r.measured);
        self.envelope_of(conn, r, DataKind::Request, r.message_id, bytes);
    }

    fn input(&mut self, conn: usize, buf: &[u8], book: &mut Book) -> Result<usize, String> {
        let mut inflate = std::mem::take(&mut self.inflate);
        let mut used = 0;
        let result = loop {
            match decode_frame(&buf[used..], &Limits::DEFAULT, &mut inflate) {
                Ok(Some((len, mut batch))) => {
                    loop {
                        if let Some((env, _)) = batch.next_usual() {
                            if self.co.is_none() {
                                self.on_plain_data(conn, &env, book);
                            } else {
                                self.on_message(conn, Message::Data(env), book);
                            }
                            continue;
                        }
                        match batch.next_message() {
                            Ok(None) => break,
                            Ok(Some((msg, _))) => self.on_message(conn, msg, book),
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
        result
    }

    fn take_output(&mut self, conn: usize) -> Option<Vec<u8>> {
        let o = &mut self.out[conn];
        let frame = o.sealed.pop_front().or_else(|| o.open.take())?;
        o.quiet.sent(frame.len());
        Some(frame.finish_probed(self.compression, &mut o.probe, &mut self.pool))
    }

    fn output_done(&mut self, buf: Vec<u8>) {
        self.pool.put(buf);
    }

    fn keep_alive(&mut self, conn: usize, agent: AgentId) -> bool {
        let request_id = KEEPALIVE_BIT | u64::from(agent.0);
        self.push_control(conn, &Control::Heartbeat(Heartbeat { request_id, agent_id: agent }));
        true
    }

    fn next_timer_ns(&self) -> Option<u64> {
        self.co.as_ref()?.next_timer_ns()
    }

    fn on_side(&mut self, msg: Option<Completed>, book: &mut Book) {
        if let Some(c) = msg.filter(|c| c.slot == REVIVE) {
            // A killed leader comes back (it learns the leader at the next election).
            let id = AgentId(self.id_base + self.first + c.local);
            let ctl = Control::Register(Register {
                request_id: REVIVE_BIT | u64::from(id.0),
                agent_id: id,
                agent_type: 1,
                name: format!("agent-{}", self.first + c.local),
                capabilities: Vec::new(),
                topics: Vec::new(),
                token: None,
            });
            let conn = self.conn_of(c.local as usize);
            self.push_control(conn, &ctl);
            book.wake_writer(conn);
            // Alive from now on (a sharded router may deliver to it before its ack), and past
            // the term that replaced it: an election message of that term still travelling
            // must not make it stand (it would lead the term a second time).
            if let Some(op) = self.co.as_mut().and_then(|co| co.ops.get_mut(c.local as usize)) {
                op.dead = false;
                op.term = op.term.max(c.seq);
                op.message_id = op.message_id.max(u64::from(c.seq));
            }
            return;
        }
        if let Some(c) = msg.filter(|c| c.slot != POKE) {
            if let Some(local) = self.co.as_mut().and_then(|co| co.completed(c, book)) {
                book.send_from(local, |conn, r| self.request(conn, r));
            }
        }
        let now = book.now_ns();
        while let Some(local) = self.co.as_mut().and_then(|co| co.due(now)) {
            if matches!(self.workload, Workload::Churn { .. }) {
                self.leave(local);
                book.wake_writer(self.conn_of(local));
            } else {
                self.release(local, book);
            }
        }
    }

    fn coordination(&self) -> Option<CoordStats> {
        Some(self.co.as_ref()?.figures())
    }

    fn sizes(&self) -> Vec<SizeStats> {
        self.sizes.clone()
    }
}

/// Of the agents a discovery found online, other than `me`, the `pick`-th (modulo how many);
/// `None` when there are none.
fn pick_other(d: &crate::wire::control::DiscoverReply, me: u32, pick: usize) -> Option<u32> {
    let others = || d.agents.iter().filter(|a| a.online && a.agent_id.0 != me);
    let n = others().count();
    others().nth(pick.checked_rem(n)?).map(|a| a.agent_id.0)
}
