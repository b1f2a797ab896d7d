//! The data path: what happens to each data message, arriving from a client or from a peer.
//!
//! Per message: one directory lookup, a copy of its raw bytes into the destination's open frame
//! (or peer batch), and counters. No allocation, no re-encoding. A message that cannot be
//! delivered produces an error for its sender, so none disappears silently.

use std::borrow::Cow;

use super::conn::{lane_of, Closing, LANE_HIGH};
use super::peer::{PeerBatch, Record, RecordKind, PEER_BATCH_BYTES};
use super::{Dest, FullPolicy, Route, Shard};
use crate::clock;
use crate::wire::control::Error as ErrorMsg;
use crate::wire::frame::decode_message;
use crate::wire::{AgentId, Control, DataKind, Envelope, ErrorCode, Message, TopicId};

/// Where a data message entered this shard: where its errors go.
#[derive(Debug, Clone, Copy)]
pub(super) enum Origin {
    /// From a client connection homed here (slot).
    Conn(u32),
    /// From another shard, which hosts the sender.
    Peer(u16),
}

/// The id of an encoded data message, for an error about it (off the hot path).
fn message_id_of(mut raw: &[u8]) -> u64 {
    match decode_message(&mut raw) {
        Ok(Message::Data(env)) => env.message_id,
        _ => 0,
    }
}

impl Shard {
    /// Routes a data message that arrived on connection slot `idx`.
    #[inline]
    pub(super) fn on_data(&mut self, idx: u32, env: &Envelope<'_>, raw: &[u8]) {
        self.counters.msgs_in += 1;
        let origin = Origin::Conn(idx);
        if !self.sender_on_conn(idx, env.sender) {
            let detail = "sender is not registered on this connection";
            self.data_error(origin, env.sender, raw, ErrorCode::SenderNotRegistered, detail);
            return;
        }
        if env.expired_at(self.now_ns) {
            self.data_error(origin, env.sender, raw, ErrorCode::Expired, "ttl passed on arrival");
            return;
        }
        let lane = lane_of(env.priority);
        let deadline_ns = env.deadline_ns();
        match env.kind {
            DataKind::Direct | DataKind::Request | DataKind::Reply => {
                self.route_direct(origin, env.sender, AgentId(env.to), lane, deadline_ns, raw);
            }
            DataKind::Broadcast => {
                self.fan_out_type(origin, env.to, env.sender, lane, raw);
                for p in 0..self.cfg.shards {
                    if p != self.cfg.shard {
                        let rec =
                            record(RecordKind::Broadcast, lane, env.to, env, deadline_ns, raw);
                        self.push_peer_data(origin, p, &rec);
                    }
                }
            }
            DataKind::Publish => {
                let topic = TopicId(env.to);
                self.fan_out_topic(origin, topic, env.sender, lane, raw);
                let remote = self.topics.get(&topic).map_or(0, |t| t.remote);
                for p in (0..self.cfg.shards).filter(|p| remote & (1u64 << p) != 0) {
                    let rec = record(RecordKind::Publish, lane, env.to, env, deadline_ns, raw);
                    self.push_peer_data(origin, p, &rec);
                }
            }
        }
    }

    /// Whether `agent` is registered on connection slot `idx`.
    #[inline]
    fn sender_on_conn(&self, idx: u32, agent: AgentId) -> bool {
        let Some(c) = self.conns.get(idx as usize) else { return false };
        // At most four agents lie inline (`Conn::agents`): a look there beats a look-up.
        if !c.agents.spilled() {
            return c.agents.contains(&agent);
        }
        matches!(self.directory.get(&agent), Some(&Route::Local(li))
            if self.local.get(li as usize).is_some_and(|a| a.conn == idx))
    }

    /// Whether local agent `li`, marked offline by the last liveness pass, or its connection
    /// was heard from within the heartbeat timeout since (marked online again if so): an agent
    /// that spoke is online at once, not at the next pass (≤ 1 s; a reply to a request it just
    /// sent used to be refused as `recipient_offline`).
    #[cold]
    fn heard_since(&mut self, li: u32) -> bool {
        let timeout = self.cfg.heartbeat_timeout_ns();
        let Some(a) = self.local.get(li as usize) else { return false };
        let heard = super::heard(a, &self.conns, self.now_ns, timeout);
        if heard {
            self.local[li as usize].online = true;
        }
        heard
    }

    /// Delivers to one agent, wherever it is homed.
    #[inline]
    fn route_direct(
        &mut self,
        origin: Origin,
        sender: AgentId,
        to: AgentId,
        lane: u8,
        deadline_ns: u64,
        raw: &[u8],
    ) {
        match self.directory.get(&to).copied() {
            Some(Route::Local(li)) => {
                let Some(a) = self.local.get(li as usize) else { return };
                let (online, conn) = (a.online, a.conn);
                if !online && !self.heard_since(li) {
                    let detail = "recipient missed its heartbeat deadline";
                    self.data_error(origin, sender, raw, ErrorCode::RecipientOffline, detail);
                } else if !self.push_data(conn, lane, raw) {
                    self.data_error(
                        origin,
                        sender,
                        raw,
                        ErrorCode::QueueFull,
                        "recipient queue full",
                    );
                }
            }
            Some(Route::Remote(p)) if matches!(origin, Origin::Conn(_)) => {
                if !self.remote_full.is_empty() && self.remote_full.contains_key(&to) {
                    // Its connection is past its bound (its shard said so): under the drop
                    // policy drop it here, without shipping it; under backpressure send it and
                    // pause this input until that connection drains.
                    if self.cfg.on_full == FullPolicy::Drop {
                        let detail = "recipient queue full";
                        self.data_error(origin, sender, raw, ErrorCode::QueueFull, detail);
                        return;
                    }
                    self.note_congested(Dest::Remote(to));
                }
                let rec = Record {
                    kind: RecordKind::Direct,
                    lane,
                    target: to.0,
                    sender,
                    deadline_ns,
                    raw,
                };
                self.push_peer_data(origin, p, &rec);
            }
            // Unknown here, or a peer believed it lives here and it moved on: not delivered.
            _ => self.data_error(origin, sender, raw, ErrorCode::UnknownRecipient, "no such agent"),
        }
    }

    /// One copy per connection holding an online agent of `agent_type` (0 = any) but `sender`.
    fn fan_out_type(
        &mut self,
        origin: Origin,
        agent_type: u32,
        sender: AgentId,
        lane: u8,
        raw: &[u8],
    ) {
        let mark = self.start_fan();
        let timeout = self.cfg.heartbeat_timeout_ns();
        for (_, a) in self.local.iter() {
            if a.id != sender
                && (agent_type == 0 || a.agent_type == agent_type)
                && (a.online || super::heard(a, &self.conns, self.now_ns, timeout))
            {
                fan_add(&mut self.conns, &mut self.fan, mark, a.conn);
            }
        }
        self.deliver_fan(origin, sender, lane, raw);
    }

    /// One copy per connection holding an online subscriber of `topic` but `sender`.
    fn fan_out_topic(
        &mut self,
        origin: Origin,
        topic: TopicId,
        sender: AgentId,
        lane: u8,
        raw: &[u8],
    ) {
        let mark = self.start_fan();
        let Some(t) = self.topics.get(&topic) else { return };
        let timeout = self.cfg.heartbeat_timeout_ns();
        for a in t.subs.iter().filter_map(|&li| self.local.get(li as usize)) {
            if a.id != sender && (a.online || super::heard(a, &self.conns, self.now_ns, timeout)) {
                fan_add(&mut self.conns, &mut self.fan, mark, a.conn);
            }
        }
        self.deliver_fan(origin, sender, lane, raw);
    }

    /// Starts collecting a fan-out: a fresh stamp and an empty list.
    fn start_fan(&mut self) -> u64 {
        self.fan_mark += 1;
        self.fan.clear();
        self.fan_mark
    }

    fn deliver_fan(&mut self, origin: Origin, sender: AgentId, lane: u8, raw: &[u8]) {
        let fan = std::mem::take(&mut self.fan);
        for &idx in &fan {
            if !self.push_data(idx, lane, raw) {
                self.data_error(origin, sender, raw, ErrorCode::QueueFull, "recipient queue full");
            }
        }
        self.fan = fan;
    }

    /// Queues a data message for a connection; false when the drop policy refuses it. Under
    /// the drop policy nothing waits for a full connection; under backpressure the input that
    /// pushed it past its bound is paused (a peer's input never is: the connection's shard tells
    /// the senders' shards instead, `PeerMsg::Congested`).
    #[inline]
    fn push_data(&mut self, idx: u32, lane: u8, raw: &[u8]) -> bool {
        let drop = self.cfg.on_full == FullPolicy::Drop;
        if drop {
            let full = self
                .conns
                .get(idx as usize)
                .is_some_and(|c| c.queued_bytes >= self.cfg.conn_queue_bytes_max);
            if full {
                self.conn_past_bound(idx, false);
                return false;
            }
        }
        self.push_conn(idx, lane, raw, !drop);
        true
    }

    /// Queues a data record for a peer, or answers `queue_full` under the drop policy.
    fn push_peer_data(&mut self, origin: Origin, p: u16, rec: &Record<'_>) {
        let max = self.cfg.peer_queue_bytes_max;
        let out = &mut self.peers[usize::from(p)];
        if self.cfg.on_full == FullPolicy::Drop && out.queued_bytes >= max {
            self.data_error(origin, rec.sender, rec.raw, ErrorCode::QueueFull, "peer queue full");
            return;
        }
        out.push_record(rec, &mut self.pool);
        self.counters.cross_out += 1;
        if self.cfg.on_full == FullPolicy::Drop {
            return;
        }
        if out.queued_bytes > max {
            self.note_congested(Dest::Peer(p));
        }
        if rec.kind != RecordKind::Direct && self.remote_full_per_peer[usize::from(p)] > 0 {
            // A fan-out to a shard with a connection past its bound.
            self.note_congested(Dest::RemoteFan(p));
        }
    }

    /// Tells the sender of `raw` that it was not delivered.
    fn data_error(
        &mut self,
        origin: Origin,
        sender: AgentId,
        raw: &[u8],
        code: ErrorCode,
        detail: &'static str,
    ) {
        self.count_error(code);
        let err = Control::Error(ErrorMsg {
            code: code.code(),
            request_id: 0,
            message_id: message_id_of(raw),
            agent_id: sender,
            detail: Cow::Borrowed(detail),
        });
        match origin {
            Origin::Conn(idx) => self.reply_conn(idx, &err),
            Origin::Peer(p) => self.control_to_peer(p, sender, &err),
        }
    }

    /// Sends a router → client control message to `agent`, homed on peer shard `p`.
    pub(super) fn control_to_peer(&mut self, p: u16, agent: AgentId, ctl: &Control) {
        let mut buf = std::mem::take(&mut self.ctl_buf);
        buf.clear();
        ctl.encode(&mut buf);
        let rec = Record {
            kind: RecordKind::Control,
            lane: LANE_HIGH,
            target: agent.0,
            sender: AgentId(0),
            deadline_ns: 0,
            raw: &buf,
        };
        self.peers[usize::from(p)].push_record(&rec, &mut self.pool);
        self.ctl_buf = buf;
    }

    /// Delivers a batch of records from peer shard `from`.
    pub(super) fn on_peer_batch(&mut self, from: u16, batch: PeerBatch) {
        self.now_ns = clock::now_ns();
        self.spread.input();
        let origin = Origin::Peer(from);
        for r in batch.records() {
            self.counters.cross_in += 1;
            let expired = r.deadline_ns != 0 && self.now_ns > r.deadline_ns;
            if expired && r.kind != RecordKind::Control {
                self.data_error(
                    origin,
                    r.sender,
                    r.raw,
                    ErrorCode::Expired,
                    "ttl passed between shards",
                );
                continue;
            }
            match r.kind {
                RecordKind::Direct => {
                    self.route_direct(origin, r.sender, AgentId(r.target), r.lane, 0, r.raw);
                }
                RecordKind::Broadcast => {
                    self.fan_out_type(origin, r.target, r.sender, r.lane, r.raw)
                }
                RecordKind::Publish => {
                    self.fan_out_topic(origin, TopicId(r.target), r.sender, r.lane, r.raw);
                }
                RecordKind::Control => {
                    if let Some(&Route::Local(li)) = self.directory.get(&AgentId(r.target)) {
                        if let Some(conn) = self.local.get(li as usize).map(|a| a.conn) {
                            // Never dropped; a client that does not read these is not read
                            // either (its reader's gate, `poll_gate`).
                            self.push_conn(conn, LANE_HIGH, r.raw, false);
                        }
                    }
                }
            }
        }
        let mut buf = batch.into_buf();
        buf.clear();
        // Back to the shard that filled it, unless its lane is full (or gone): then ours.
        let back = match &self.peers[usize::from(from)].returns {
            Some(r) if buf.capacity() <= 2 * PEER_BATCH_BYTES => r.theirs.try_send(buf).err(),
            _ => Some(flume::TrySendError::Full(buf)),
        };
        if let Some(e) = back {
            self.pool.put(e.into_inner());
        }
        // A peer's input is never paused: senders to a full connection are paused at their own
        // shard once it hears (`PeerMsg::Congested`).
        self.clear_congested();
    }

    /// Whether connection slot `idx` still accepts output.
    pub(super) fn conn_open(&self, idx: u32) -> bool {
        self.conns.get(idx as usize).is_some_and(|c| c.closing == Closing::No)
    }
}

/// Adds connection slot `conn` to the fan-out once per stamp.
fn fan_add(conns: &mut slab::Slab<super::conn::Conn>, fan: &mut Vec<u32>, mark: u64, conn: u32) {
    if let Some(c) = conns.get_mut(conn as usize) {
        if c.fan_mark != mark {
            c.fan_mark = mark;
            fan.push(conn);
        }
    }
}

fn record<'a>(
    kind: RecordKind,
    lane: u8,
    target: u32,
    env: &Envelope<'_>,
    deadline_ns: u64,
    raw: &'a [u8],
) -> Record<'a> {
    Record { kind, lane, target, sender: env.sender, deadline_ns, raw }
}
