//! The JSON adapter of the agent loop: the seed system's protocol (`--protocol json`), to measure
//! any router that speaks it — the seed's own, or ours — with the same loop, topologies and
//! figures as native frames.
//!
//! One WebSocket connection per agent (subprotocol `a2a`), so connection `c` is agent `c` of the
//! group. The shell hands this adapter each text message as a record (`u32` little-endian length,
//! then the text) and sends each record it queues as one text message. A request is a `direct`
//! whose `message_type` is `request` and whose payload carries the intended and actual send
//! times; the receiver answers with a `direct` of type `reply` echoing them. Every send gets
//! exactly one answer from the router, in order (an ack, or an error counted by its name);
//! deliveries are the pushes the agents receive — that is what is measured, not the acks.

use std::collections::VecDeque;
use std::sync::Arc;

use serde_json::{json, Value};

use super::coordination::{Coordination, POKE};
use super::group::{About, Adapter, Book, ErrorKind, GroupConfig, Outgoing};
use super::workload::{Completed, Coord, CoordStats, Workload};
use crate::transport::ws::{next_record, RECORD_LEN_BYTES};
use crate::wire::AgentId;

/// What one sent message waits for from the router.
#[derive(Debug, Clone, Copy)]
enum Sent {
    Request,
    Reply,
    Register,
    /// `locks`, `barriers`, `broadcast` (the publication's board slot and sequence number).
    LockRequest,
    LockRelease,
    BarrierEnter,
    Broadcast(u8, u32),
}

/// One agent's connection.
#[derive(Debug, Default)]
struct Link {
    /// What the router's next answers answer, in order.
    awaiting: VecDeque<Sent>,
    /// Records to write.
    out: Vec<u8>,
}

/// JSON texts for one agent core.
#[derive(Debug)]
pub struct Json {
    links: Vec<Link>,
    /// Written buffers, for reuse.
    spare: Vec<Vec<u8>>,
    /// Padding that brings the payload to the asked size.
    pad: String,
    id_base: u32,
    first: u32,
    agents_total: u32,
    workload: Workload,
    co: Option<Coordination>,
}

/// The last `-`-separated part of a name as a number (`bench-7-lock-3` → 3).
fn index_in(name: &Value) -> Option<u64> {
    name.as_str()?.rsplit('-').next()?.parse().ok()
}

impl Json {
    /// The adapter for a group with these settings (one agent per connection).
    pub fn new(cfg: &GroupConfig) -> Json {
        Json {
            links: (0..cfg.count).map(|_| Link::default()).collect(),
            spare: Vec::new(),
            pad: "x".repeat(cfg.payload_bytes.saturating_sub(16)),
            id_base: cfg.id_base,
            first: cfg.first,
            agents_total: cfg.agents_total,
            workload: cfg.workload,
            co: None,
        }
    }

    /// The adapter for `locks`, `barriers` or `broadcast` over the seed protocol, sharing
    /// `coord` with the run's other cores; `poke` is this core's channel.
    pub fn with_coord(
        cfg: &GroupConfig,
        coord: Arc<Coord>,
        poke: Option<flume::Sender<Completed>>,
    ) -> Json {
        let mut j = Json::new(cfg);
        j.co = Some(Coordination::new(cfg, coord, poke));
        j
    }

    fn lock_name(&self, k: u32) -> String {
        format!("bench-{}-lock-{k}", self.id_base)
    }

    /// The agent type of a broadcast run: its agents only.
    fn run_type(&self) -> String {
        format!("bench-{}", self.id_base)
    }

    /// Encodes an operation of a coordination workload (one agent per connection: `conn` is
    /// the agent's index in the group).
    fn operation(&mut self, conn: usize, r: &Outgoing) {
        let Some(co) = self.co.as_mut() else { return };
        let op = &mut co.ops[conn];
        op.begin(r);
        let lease_s = f64::from(co.lease_ms) / 1e3;
        let (msg, waits) = match self.workload {
            Workload::Locks { .. } => (
                json!({"type": "lock_request", "agent_id": self.name(r.from),
                    "lock_id": self.lock_name(r.to), "timeout": lease_s}),
                Sent::LockRequest,
            ),
            Workload::Barriers => {
                co.coord.enter(u64::from(r.to), r.sent_ns);
                (
                    json!({"type": "barrier_enter", "agent_id": self.name(r.from),
                        "barrier_id": format!("bench-{}-round-{}", self.id_base, r.to),
                        "expected_count": self.agents_total}),
                    Sent::BarrierEnter,
                )
            }
            Workload::Broadcast => {
                let seq = (r.message_id & !super::group::MEASURED_BIT) as u32;
                let global = self.first + conn as u32;
                let slot = co.open_publication(conn, global, seq, r.measured);
                (
                    json!({"type": "broadcast", "from_agent": self.name(r.from),
                        "agent_type": self.run_type(), "message_type": "broadcast",
                        "payload": {"t0": r.intended_ns, "t1": r.sent_ns, "m": r.measured,
                            "s": slot, "q": seq, "pad": self.pad},
                        "exclude_self": true}),
                    Sent::Broadcast(slot, seq),
                )
            }
            _ => return,
        };
        self.send(conn, &msg, waits);
    }

    /// Agent `conn` gives its lock back now.
    fn release(&mut self, conn: usize, book: &mut Book) {
        let id = self.id_of(conn);
        let Some(lock) = self.co.as_mut().and_then(|co| co.release(conn, id, book.now_ns())) else {
            return;
        };
        let msg = json!({"type": "lock_release", "agent_id": self.name(id),
            "lock_id": self.lock_name(lock)});
        self.send(conn, &msg, Sent::LockRelease);
        book.wake_writer(conn);
    }

    /// A push of a coordination workload: a grant, a barrier's release, a broadcast.
    fn on_push(&mut self, conn: usize, m: &Value, book: &mut Book) {
        let Some(co) = self.co.as_mut() else { return };
        match m["type"].as_str() {
            Some("lock_granted") => {
                let lock = index_in(&m["lock_id"]).unwrap_or(u64::MAX);
                match co.granted(conn, self.id_base + self.first + conn as u32, lock, book) {
                    Some(true) => self.release(conn, book),
                    Some(false) => {}
                    None => book.unexpected(),
                }
            }
            Some("barrier_release") => {
                let round = index_in(&m["barrier_id"]).unwrap_or(u64::MAX);
                match co.barrier_passed(conn, round, book) {
                    Err(()) => book.unexpected(),
                    Ok(None) => {}
                    Ok(Some((local, released_at))) => {
                        book.as_of_ns = Some(released_at);
                        book.send_from(local, |conn, r| self.request(conn, r));
                        book.as_of_ns = None;
                    }
                }
            }
            Some("broadcast") if self.workload == Workload::Broadcast => {
                let p = &m["payload"];
                let fields = (index_in(&m["from_agent"]), p["t0"].as_u64(), p["t1"].as_u64());
                let (Some(publisher), Some(t0), Some(t1)) = fields else {
                    return book.unexpected();
                };
                let (slot, seq) =
                    (p["s"].as_u64().unwrap_or(0) as u8, p["q"].as_u64().unwrap_or(0) as u32);
                let measured = p["m"].as_bool().unwrap_or(false);
                co.delivered(publisher as u32, (slot, seq), 1, t1, (t0, t1), measured, book);
            }
            _ => {}
        }
    }

    fn name(&self, id: u32) -> String {
        format!("bench-{}-{}", self.id_base, id - self.id_base)
    }

    fn id_of(&self, conn: usize) -> u32 {
        self.id_base + self.first + conn as u32
    }

    fn send(&mut self, conn: usize, msg: &Value, waits: Sent) {
        let link = &mut self.links[conn];
        let at = link.out.len();
        link.out.extend_from_slice(&[0; RECORD_LEN_BYTES]);
        // Writing a `Value` into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut link.out, msg);
        let len = (link.out.len() - at - RECORD_LEN_BYTES) as u32;
        link.out[at..at + RECORD_LEN_BYTES].copy_from_slice(&len.to_le_bytes());
        link.awaiting.push_back(waits);
    }

    fn on_text(&mut self, conn: usize, text: &[u8], book: &mut Book) {
        let Ok(m) = serde_json::from_slice::<Value>(text) else { return book.unexpected() };
        match m["type"].as_str() {
            Some("ack") | Some("error") => self.on_answer(conn, &m, book),
            Some("direct") => self.on_delivery(conn, &m, book),
            // Grants, releases and broadcasts of a coordination workload; under request/reply
            // other pushes are not part of the measured traffic.
            _ => self.on_push(conn, &m, book),
        }
    }

    fn on_answer(&mut self, conn: usize, m: &Value, book: &mut Book) {
        let Some(waits) = self.links[conn].awaiting.pop_front() else { return book.unexpected() };
        let error = (m["type"] == "error").then(|| m["error"].as_str().unwrap_or("error"));
        match (waits, error) {
            (Sent::Register, None) => book.ack(conn),
            (Sent::Register, Some(e)) => {
                book.refused(format!("the router refused a registration: {e}"))
            }
            (Sent::Request, Some(e)) => {
                let about = About::Request(Some(self.id_of(conn)));
                if let Some(local) = book.router_error(about, ErrorKind::Name(e)) {
                    book.send_from(local, |conn, r| self.request(conn, r));
                }
            }
            (Sent::Reply, Some(e)) => {
                let _ = book.router_error(About::Reply, ErrorKind::Name(e));
            }
            (Sent::LockRequest, None) => {
                if m["granted"] == false {
                    if let Some(co) = self.co.as_mut() {
                        co.stats.lock_queued += 1;
                    }
                }
            }
            (Sent::LockRelease, None) => {
                if let Some(local) = self.co.as_mut().and_then(|co| co.released(conn, book)) {
                    book.send_from(local, |conn, r| self.request(conn, r));
                }
            }
            (Sent::Broadcast(slot, seq), Some(e)) => {
                let resolves =
                    self.co.as_mut().is_some_and(|co| co.publication_failed(conn, slot, seq));
                let about = About::Request(resolves.then(|| self.id_of(conn)));
                if let Some(local) = book.router_error(about, ErrorKind::Name(e)) {
                    book.send_from(local, |conn, r| self.request(conn, r));
                }
            }
            (Sent::LockRequest | Sent::LockRelease | Sent::BarrierEnter, Some(e)) => {
                let about = About::Request(Some(self.id_of(conn)));
                if let Some(local) = book.router_error(about, ErrorKind::Name(e)) {
                    book.send_from(local, |conn, r| self.request(conn, r));
                }
            }
            (_, None) => {}
        }
    }

    fn on_delivery(&mut self, conn: usize, m: &Value, book: &mut Book) {
        let payload = &m["payload"];
        let (Some(t0), Some(t1)) = (payload["t0"].as_u64(), payload["t1"].as_u64()) else {
            return book.unexpected();
        };
        let measured = payload["m"].as_bool().unwrap_or(false);
        let me = self.id_of(conn);
        match m["message_type"].as_str() {
            Some("request") => {
                if !book.request_delivered(me, t1, measured) {
                    return;
                }
                let reply = json!({"type": "direct", "from_agent": self.name(me),
                    "to_agent": m["from_agent"], "message_type": "reply",
                    "payload": {"t0": t0, "t1": t1, "r": book.now_ns(), "m": measured, "pad": payload["pad"]}});
                self.send(conn, &reply, Sent::Reply);
            }
            Some("reply") => {
                let sent = payload["r"].as_u64().unwrap_or(book.now_ns());
                if let Some(local) = book.reply_delivered(me, (t0, t1), sent, measured) {
                    book.send_from(local, |conn, r| self.request(conn, r));
                }
            }
            _ => book.unexpected(),
        }
    }
}

impl Adapter for Json {
    fn register(&mut self, conn: usize, ids: &[AgentId], _book: &mut Book) {
        for id in ids {
            let kind = if self.workload == Workload::Broadcast {
                self.run_type()
            } else {
                "a2a-bench".to_string()
            };
            let msg = json!({"type": "register", "agent_id": self.name(id.0), "agent_type": kind});
            self.send(conn, &msg, Sent::Register);
        }
    }

    fn request(&mut self, conn: usize, r: &Outgoing) {
        if self.co.is_some() {
            return self.operation(conn, r);
        }
        let msg = json!({"type": "direct", "from_agent": self.name(r.from), "to_agent": self.name(r.to),
            "message_type": "request",
            "payload": {"t0": r.intended_ns, "t1": r.sent_ns, "m": r.measured, "pad": self.pad}});
        self.send(conn, &msg, Sent::Request);
    }

    fn input(&mut self, conn: usize, buf: &[u8], book: &mut Book) -> Result<usize, String> {
        let mut used = 0;
        while let Some((text, len)) = next_record(&buf[used..]) {
            self.on_text(conn, text, book);
            used += len;
        }
        Ok(used)
    }

    fn take_output(&mut self, conn: usize) -> Option<Vec<u8>> {
        let link = &mut self.links[conn];
        if link.out.is_empty() {
            return None;
        }
        let fresh = self.spare.pop().unwrap_or_default();
        Some(std::mem::replace(&mut link.out, fresh))
    }

    fn output_done(&mut self, mut buf: Vec<u8>) {
        buf.clear();
        if self.spare.len() < 64 {
            self.spare.push(buf);
        }
    }

    fn next_timer_ns(&self) -> Option<u64> {
        self.co.as_ref()?.next_timer_ns()
    }

    fn on_side(&mut self, msg: Option<Completed>, book: &mut Book) {
        if let Some(c) = msg.filter(|c| c.slot != POKE) {
            if let Some(local) = self.co.as_mut().and_then(|co| co.completed(c, book)) {
                book.send_from(local, |conn, r| self.request(conn, r));
            }
        }
        let now = book.now_ns();
        while let Some(local) = self.co.as_mut().and_then(|co| co.due(now)) {
            self.release(local, book);
        }
    }

    fn coordination(&self) -> Option<CoordStats> {
        Some(self.co.as_ref()?.figures())
    }
}
