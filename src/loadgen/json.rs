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
use std::io::Write as _;
use std::sync::Arc;

use serde_json::{json, Value};

use super::coordination::{Coordination, POKE};
use super::group::{About, Adapter, Book, ErrorKind, GroupConfig, Outgoing, MEASURED_BIT};
use super::mix::{PayloadMix, SizeStats};
use super::workload::{Completed, Coord, CoordStats, Workload};
use crate::shape::{object, Str};
use crate::transport::ws::{next_record, RECORD_LEN_BYTES};
use crate::wire::AgentId;

/// What one sent message waits for from the router.
#[derive(Debug, Clone, Copy)]
enum Sent {
    Request,
    Reply,
    Register,
    /// A heartbeat of a connection that sent nothing for a while: its answer counts for nothing.
    Heartbeat,
    /// `locks`, `barriers`, `broadcast` (the publication's board slot and sequence number).
    LockRequest,
    LockRelease,
    BarrierEnter,
    Broadcast(u8, u32),
    /// `pipeline`: an item handed on by a stage, for its source (the agent id).
    Hop(u32),
    /// `pipeline`: a stage's word to an item's source that the router refused the item: its
    /// answer counts for nothing (a refusal means the source is gone too).
    Word,
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
    /// Padding that brings the payload to the asked size (with a mix, to its largest; a
    /// request takes as much of it as its drawn size asks for).
    pad: String,
    /// `--payload-mix`, and each size's figures.
    mix: Option<PayloadMix>,
    sizes: Vec<SizeStats>,
    id_base: u32,
    first: u32,
    agents_total: u32,
    workload: Workload,
    co: Option<Coordination>,
}

/// The last `-`-separated part of a name as a number (`bench-7-lock-3` → 3).
fn index_in(name: Option<&str>) -> Option<u64> {
    name?.rsplit('-').next()?.parse().ok()
}

/// What a coordination workload reads of a push (a grant, a barrier's release, a broadcast),
/// from the typed reading or, when that refused the text, from a `Value`.
struct Push<'a> {
    kind: Option<&'a str>,
    lock_id: Option<&'a str>,
    barrier_id: Option<&'a str>,
    from_agent: Option<&'a str>,
    t0: Option<u64>,
    t1: Option<u64>,
    slot: Option<u64>,
    seq: Option<u64>,
    measured: Option<bool>,
}

impl<'a> Push<'a> {
    fn of(m: &'a Incoming<'a>) -> Push<'a> {
        let p = m.payload.as_ref();
        Push {
            kind: m.kind.as_ref().map(Str::as_str),
            lock_id: m.lock_id.as_ref().map(Str::as_str),
            barrier_id: m.barrier_id.as_ref().map(Str::as_str),
            from_agent: m.from_agent.as_ref().map(Str::as_str),
            t0: p.and_then(|p| p.t0),
            t1: p.and_then(|p| p.t1),
            slot: p.and_then(|p| p.s),
            seq: p.and_then(|p| p.q),
            measured: p.and_then(|p| p.m),
        }
    }

    fn of_value(m: &'a Value) -> Push<'a> {
        let p = &m["payload"];
        Push {
            kind: m["type"].as_str(),
            lock_id: m["lock_id"].as_str(),
            barrier_id: m["barrier_id"].as_str(),
            from_agent: m["from_agent"].as_str(),
            t0: p["t0"].as_u64(),
            t1: p["t1"].as_u64(),
            slot: p["s"].as_u64(),
            seq: p["q"].as_u64(),
            measured: p["m"].as_bool(),
        }
    }
}

object! {
    /// What the request/reply path reads of a text from the router (acks, errors, deliveries),
    /// borrowed from the text and built without allocating; anything else (a coordination
    /// workload's pushes) is read again as a `Value`.
    struct Incoming<'a> {
        kind: Str<'a> = "type",
        error: Str<'a> = "error",
        granted: bool = "granted",
        message_type: Str<'a> = "message_type",
        from_agent: Str<'a> = "from_agent",
        payload: Payload<'a> = "payload",
        lock_id: Str<'a> = "lock_id",
        barrier_id: Str<'a> = "barrier_id",
    }
}

object! {
    /// A delivery's payload: the send times, the reply's send time, whether measured, padding.
    struct Payload<'a> {
        t0: u64 = "t0",
        t1: u64 = "t1",
        r: u64 = "r",
        m: bool = "m",
        pad: Str<'a> = "pad",
        s: u64 = "s",
        q: u64 = "q",
        e: Str<'a> = "e",
    }
}

/// Agent `id`'s name on the wire, `bench-<id base>-<index>`, written where it is needed (the
/// request/reply path writes it into the text, without a `String`).
struct Name {
    base: u32,
    id: u32,
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bench-{}-{}", self.base, self.id - self.base)
    }
}

/// The rest of a `direct` carrying an item after its `to_agent`: its `message_type`, then the
/// payload with the send times `(t0, t1)`, this send's `r`, whether measured, and the padding
/// echoed.
fn put_item(
    out: &mut Vec<u8>,
    kind: &str,
    (t0, t1, r): (u64, u64, u64),
    m: bool,
    pad: Option<&Str<'_>>,
) {
    let _ = write!(
        out,
        r#","message_type":"{kind}","payload":{{"t0":{t0},"t1":{t1},"r":{r},"m":{m},"pad":"#
    );
    match pad {
        Some(pad) => put_str(out, pad.as_str()),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b"}}");
}

/// `s` as a JSON string (escaped where it must be).
fn put_str(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(out, s);
}

impl Json {
    /// The adapter for a group with these settings (one agent per connection).
    pub fn new(cfg: &GroupConfig) -> Json {
        Json {
            links: (0..cfg.count).map(|_| Link::default()).collect(),
            spare: Vec::new(),
            pad: "x".repeat(
                cfg.payload_mix.map_or(cfg.payload_bytes, |m| m.largest()).saturating_sub(16),
            ),
            mix: cfg.payload_mix,
            sizes: cfg.payload_mix.as_ref().map(SizeStats::of).unwrap_or_default(),
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
    fn on_push(&mut self, conn: usize, m: &Push<'_>, book: &mut Book) {
        let Some(co) = self.co.as_mut() else { return };
        match m.kind {
            Some("lock_granted") => {
                let lock = index_in(m.lock_id).unwrap_or(u64::MAX);
                match co.granted(conn, self.id_base + self.first + conn as u32, lock, book) {
                    Some(true) => self.release(conn, book),
                    Some(false) => {}
                    None => book.unexpected(),
                }
            }
            Some("barrier_release") => {
                let round = index_in(m.barrier_id).unwrap_or(u64::MAX);
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
                let (Some(publisher), Some(t0), Some(t1)) = (index_in(m.from_agent), m.t0, m.t1)
                else {
                    return book.unexpected();
                };
                let (slot, seq) = (m.slot.unwrap_or(0) as u8, m.seq.unwrap_or(0) as u32);
                let measured = m.measured.unwrap_or(false);
                co.delivered(publisher as u32, (slot, seq), 1, t1, (t0, t1), measured, book);
            }
            _ => {}
        }
    }

    fn name(&self, id: u32) -> String {
        Name { base: self.id_base, id }.to_string()
    }

    fn id_of(&self, conn: usize) -> u32 {
        self.id_base + self.first + conn as u32
    }

    fn send(&mut self, conn: usize, msg: &Value, waits: Sent) {
        // Writing a `Value` into a Vec cannot fail.
        Self::record(&mut self.links[conn], waits, |out| {
            let _ = serde_json::to_writer(out, msg);
        });
    }

    /// Queues one text, written by `write`, on `link`, and what it waits for.
    fn record(link: &mut Link, waits: Sent, write: impl FnOnce(&mut Vec<u8>)) {
        let at = link.out.len();
        link.out.extend_from_slice(&[0; RECORD_LEN_BYTES]);
        write(&mut link.out);
        let len = (link.out.len() - at - RECORD_LEN_BYTES) as u32;
        link.out[at..at + RECORD_LEN_BYTES].copy_from_slice(&len.to_le_bytes());
        link.awaiting.push_back(waits);
    }

    fn on_text(&mut self, conn: usize, text: &[u8], book: &mut Book) {
        if let Ok(m) = serde_json::from_slice::<Incoming<'_>>(text) {
            match m.kind.as_ref().map(Str::as_str) {
                Some("ack") => return self.on_answer(conn, None, m.granted, book),
                Some("error") => {
                    let error = m.error.as_ref().map_or("error", Str::as_str);
                    return self.on_answer(conn, Some(error), m.granted, book);
                }
                Some("direct") => return self.on_delivery(conn, &m, book),
                // Grants, releases and broadcasts of a coordination workload; under
                // request/reply other pushes are not part of the measured traffic.
                Some(_) => return self.on_push(conn, &Push::of(&m), book),
                None => {}
            }
        }
        let Ok(m) = serde_json::from_slice::<Value>(text) else { return book.unexpected() };
        match m["type"].as_str() {
            // Members of unexpected types, which the typed reading refused.
            Some("ack") | Some("error") => {
                let error = (m["type"] == "error").then(|| m["error"].as_str().unwrap_or("error"));
                self.on_answer(conn, error, m["granted"].as_bool(), book)
            }
            Some("direct") => book.unexpected(),
            // Grants, releases and broadcasts of a coordination workload; under request/reply
            // other pushes are not part of the measured traffic.
            _ => self.on_push(conn, &Push::of_value(&m), book),
        }
    }

    /// An ack, or an error named `error`; `granted` as a lock request's ack says.
    fn on_answer(
        &mut self,
        conn: usize,
        error: Option<&str>,
        granted: Option<bool>,
        book: &mut Book,
    ) {
        let Some(waits) = self.links[conn].awaiting.pop_front() else { return book.unexpected() };
        match (waits, error) {
            (Sent::Heartbeat | Sent::Word, _) => {}
            (Sent::Hop(source), Some(e)) => self.pass_on_refusal(conn, source, e),
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
                if granted == Some(false) {
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

    /// `pipeline`: the router refused an item this stage handed on: the stage tells the item's
    /// source, whose request it is, by a direct message of type `refused` naming the error.
    fn pass_on_refusal(&mut self, conn: usize, source: u32, error: &str) {
        let (me, to) = (
            Name { base: self.id_base, id: self.id_of(conn) },
            Name { base: self.id_base, id: source },
        );
        Self::record(&mut self.links[conn], Sent::Word, |out| {
            let _ = write!(
                out,
                r#"{{"type":"direct","from_agent":"{me}","to_agent":"{to}","message_type":"refused","payload":{{"e":"#
            );
            put_str(out, error);
            out.extend_from_slice(b"}}");
        });
    }

    /// `pipeline`: an item reached this stage: a middle stage hands it on to the next (its
    /// send time in `r`), the last returns it to the source as the reply.
    fn on_item(&mut self, conn: usize, m: &Incoming<'_>, book: &mut Book) {
        let Some(payload) = &m.payload else { return book.unexpected() };
        let (Some(t0), Some(t1)) = (payload.t0, payload.t1) else {
            return book.unexpected();
        };
        let Workload::Pipeline { stages } = self.workload else { return };
        let (measured, me, base, now) =
            (payload.m.unwrap_or(false), self.id_of(conn), self.id_base, book.now_ns());
        let stage = match self.workload.stage_of(me - base, self.agents_total) {
            Some(s) if s > 0 => s,
            _ => return book.unexpected(),
        };
        let sent = payload.r.unwrap_or(t1);
        let (to, kind, waits) = if stage + 1 < stages.max(2) {
            if !book.hop_delivered(me, sent, measured) {
                return;
            }
            (me + 1, "request", Sent::Hop(me - stage))
        } else {
            if !book.request_delivered(me, sent, measured) {
                return;
            }
            (me - stage, "reply", Sent::Reply)
        };
        Self::record(&mut self.links[conn], waits, |out| {
            let (me, to) = (Name { base, id: me }, Name { base, id: to });
            let _ = write!(out, r#"{{"type":"direct","from_agent":"{me}","to_agent":"{to}""#);
            put_item(out, kind, (t0, t1, now), measured, payload.pad.as_ref());
        });
    }

    fn on_delivery(&mut self, conn: usize, m: &Incoming<'_>, book: &mut Book) {
        if let Workload::Pipeline { .. } = self.workload {
            match m.message_type.as_ref().map(Str::as_str) {
                Some("request") => return self.on_item(conn, m, book),
                Some("refused") => {
                    let e = m.payload.as_ref().and_then(|p| p.e.as_ref());
                    let Some(e) = e else { return book.unexpected() };
                    let about = About::Request(Some(self.id_of(conn)));
                    if let Some(local) = book.router_error(about, ErrorKind::Name(e.as_str())) {
                        book.send_from(local, |conn, r| self.request(conn, r));
                    }
                    return;
                }
                _ => {}
            }
        }
        let Some(payload) = &m.payload else { return book.unexpected() };
        let (Some(t0), Some(t1)) = (payload.t0, payload.t1) else {
            return book.unexpected();
        };
        let measured = payload.m.unwrap_or(false);
        let me = self.id_of(conn);
        match m.message_type.as_ref().map(Str::as_str) {
            Some("request") => {
                if !book.request_delivered(me, t1, measured) {
                    return;
                }
                // Written as it goes out, the sender's name and the padding echoed.
                let (base, now) = (self.id_base, book.now_ns());
                Self::record(&mut self.links[conn], Sent::Reply, |out| {
                    let me = Name { base, id: me };
                    let _ = write!(out, r#"{{"type":"direct","from_agent":"{me}","to_agent":"#);
                    match &m.from_agent {
                        Some(from) => put_str(out, from.as_str()),
                        None => out.extend_from_slice(b"null"),
                    }
                    put_item(out, "reply", (t0, t1, now), measured, payload.pad.as_ref());
                });
            }
            Some("reply") => {
                // The padding echoed names the request's size.
                if let Some(m) =
                    self.mix.as_ref().filter(|_| measured && book.local_of(me).is_some())
                {
                    let bytes = payload.pad.as_ref().map_or(0, |p| p.as_str().len()) + 16;
                    if let Some(c) = m.class_of(bytes) {
                        let rtt = book.now_ns().saturating_sub(t0);
                        self.sizes[c].rtt.saturating_record(rtt.max(1));
                    }
                }
                let sent = payload.r.unwrap_or(book.now_ns());
                if let Some(local) = book.reply_delivered(me, (t0, t1), sent, measured) {
                    book.send_from(local, |conn, r| self.request(conn, r));
                }
            }
            _ => book.unexpected(),
        }
    }
}

impl Adapter for Json {
    fn sizes(&self) -> Vec<SizeStats> {
        self.sizes.clone()
    }

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
        let Json { links, pad, id_base: base, mix, sizes, .. } = self;
        let (from, to) = (Name { base: *base, id: r.from }, Name { base: *base, id: r.to });
        // A payload mix: as much padding as this request's drawn size leaves after the stamps.
        let pad = match mix.as_ref() {
            Some(m) => {
                let class = m.pick(r.from, r.message_id & !MEASURED_BIT);
                sizes[class].sent += u64::from(r.measured);
                &pad[..m.bytes(class).saturating_sub(16)]
            }
            None => pad.as_str(),
        };
        Self::record(&mut links[conn], Sent::Request, |out| {
            let _ = write!(
                out,
                r#"{{"type":"direct","from_agent":"{from}","to_agent":"{to}","message_type":"request","payload":{{"t0":{},"t1":{},"m":{},"pad":"#,
                r.intended_ns, r.sent_ns, r.measured
            );
            put_str(out, pad);
            out.extend_from_slice(b"}}");
        });
    }

    fn input(&mut self, conn: usize, buf: &[u8], book: &mut Book) -> Result<usize, String> {
        let mut used = 0;
        while let Some((text, len)) = next_record(&buf[used..]) {
            self.on_text(conn, text, book);
            used += len;
        }
        Ok(used)
    }

    fn keep_alive(&mut self, conn: usize, agent: AgentId) -> bool {
        let msg = json!({"type": "heartbeat", "agent_id": self.name(agent.0)});
        self.send(conn, &msg, Sent::Heartbeat);
        true
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

#[cfg(test)]
mod tests {
    use std::task::{Context, Poll, Waker};
    use std::time::Duration;

    use super::*;
    use crate::loadgen::group::{Group, Schedule};
    use crate::loadgen::{Pacing, Stop, Topology};
    use crate::testing::counting;

    /// Where a text says it goes: the agent number of `"to_agent":"bench-B-N"`.
    fn to_agent(text: &[u8]) -> Option<usize> {
        let key = b"\"to_agent\":\"bench-";
        let at = text.windows(key.len()).position(|w| w == key)? + key.len();
        let rest = &text[at..];
        let dash = rest.iter().position(|&b| b == b'-')? + 1;
        let end = rest[dash..].iter().position(|&b| b == b'"')? + dash;
        std::str::from_utf8(&rest[dash..end]).ok()?.parse().ok()
    }

    fn record(out: &mut Vec<u8>, text: &[u8]) {
        out.extend_from_slice(&(text.len() as u32).to_le_bytes());
        out.extend_from_slice(text);
    }

    /// A group of `cfg`'s agents, one per connection, registered through [`stand_in`] and
    /// started (every request measured); its connections' inboxes, and the time.
    fn started(cfg: &GroupConfig) -> (Group<Json>, Vec<Vec<u8>>, u64) {
        let mut g = Group::new(cfg.clone(), Json::new(cfg));
        let conns = cfg.count as usize;
        let mut inbox: Vec<Vec<u8>> = (0..conns).map(|_| Vec::with_capacity(64 << 10)).collect();
        for c in 0..conns {
            g.register(c);
        }
        stand_in(&mut g, &mut inbox, 1_000, |_| false);
        assert_eq!(g.registered(), Ok(true));
        let now = 2_000;
        g.set_schedule(Schedule { start_ns: now, measure_ns: now + 1, end_ns: u64::MAX });
        g.start(now);
        (g, inbox, now)
    }

    /// A router stand-in for `g`'s connections, one turn at `now`: an ack to the sender of
    /// each text and the `direct`s to the agents they name, as the seed router does, except
    /// those `refuse` is true for (given the agent named), answered `agent_not_found`; then
    /// each connection's input handed to `g`. The texts the agents sent.
    fn stand_in(
        g: &mut Group<Json>,
        inbox: &mut [Vec<u8>],
        now: u64,
        mut refuse: impl FnMut(usize) -> bool,
    ) -> usize {
        let mut cx = Context::from_waker(Waker::noop());
        let mut texts = 0;
        for c in 0..inbox.len() {
            while let Poll::Ready(Some(buf)) = g.poll_output(c, 0, &mut cx) {
                let mut at = 0;
                while let Some((text, len)) = next_record(&buf[at..]) {
                    texts += 1;
                    match to_agent(text) {
                        Some(n) if refuse(n) => {
                            record(&mut inbox[c], br#"{"type":"error","error":"agent_not_found"}"#)
                        }
                        Some(n) => {
                            record(&mut inbox[c], br#"{"type":"ack"}"#);
                            record(&mut inbox[n], text);
                        }
                        None => record(&mut inbox[c], br#"{"type":"ack"}"#),
                    }
                    at += len;
                }
                g.output_done(buf);
            }
        }
        for (c, input) in inbox.iter_mut().enumerate() {
            if !input.is_empty() {
                assert_eq!(g.on_input(c, input, now), Ok(input.len()));
                input.clear();
            }
        }
        texts
    }

    #[test]
    fn a_coordination_workloads_pushes_are_read_without_allocating() {
        // Proves the pushes of a coordination workload (here a broadcast's copies, as
        // `--workload broadcast` receives them) are taken from the typed reading: before, each
        // was read a second time as a `serde_json::Value`, a map and a string per member, and
        // that made the JSON agents' core the limit of a seed-protocol broadcast run.
        let agents = 4u32;
        let mut cfg = crate::loadgen::http::fuzz::group_config(agents);
        cfg.seats = crate::loadgen::group::Seats::Packed(1);
        cfg.workload = Workload::Broadcast;
        let (coord, _done) = Coord::new(Workload::Broadcast, agents, vec![(0, agents)], 1);
        let mut g = Group::new(cfg.clone(), Json::with_coord(&cfg, Arc::new(coord), None));
        let pushes = |seqs: std::ops::Range<u32>| {
            let mut input = Vec::new();
            for q in seqs {
                let text = format!(
                    r#"{{"type":"broadcast","from_agent":"bench-1-1","message_type":"bench",
                    "payload":{{"t0":5,"t1":6,"s":0,"q":{q},"m":false,"pad":"xxxxxxxx"}},
                    "timestamp":1764780000.5}}"#
                );
                record(&mut input, text.as_bytes());
            }
            input
        };
        let (warm, measured) = (pushes(0..100), pushes(100..1_100));
        assert_eq!(g.on_input(0, &warm, 1_000), Ok(warm.len()));
        let before = counting::calls();
        let used = g.on_input(0, &measured, 2_000);
        let allocations = counting::calls() - before;
        assert_eq!(used, Ok(measured.len()));
        let c = g.counters();
        assert_eq!((c.requests_delivered, c.unexpected), (1_100, 0), "every push counted");
        assert_eq!(allocations, 0, "{allocations} allocations for 1,000 pushes");
    }

    #[test]
    fn requests_and_replies_are_read_and_written_without_allocating() {
        // Proves the seed protocol's request/reply path: a router stand-in acks every text
        // and hands each `direct` to the agent it names, as the seed router does; requests are
        // answered by replies that name their sender and echo the payload, replies close
        // round trips, an error is counted by its name; and once warm the agents allocate
        // nothing per text (theirs written as they go out, the router's read borrowed, where
        // `serde_json::Value` allocated for every member).
        let agents = 4u32;
        let mut cfg = crate::loadgen::http::fuzz::group_config(agents);
        cfg.topology = Topology::Ring;
        cfg.seats = crate::loadgen::group::Seats::Packed(1);
        cfg.pacing = Pacing::Closed { window: 4 };
        cfg.stop = Stop::Duration(Duration::from_secs(3600));
        cfg.payload_bytes = 64;
        let (mut g, mut inbox, mut now) = started(&cfg);
        // The first request is refused instead of delivered.
        let mut refuse = true;
        for _ in 0..100 {
            now += 1_000;
            assert!(stand_in(&mut g, &mut inbox, now, |_| std::mem::take(&mut refuse)) > 0);
        }
        let c = g.counters();
        let named = &c.request_errors_named;
        assert!(named.iter().any(|(k, n)| k == "agent_not_found" && *n == 1), "{named:?}");
        let (answered, before) = (g.counters().round_trips_measured, counting::calls());
        let mut texts = 0;
        for _ in 0..1_000 {
            now += 1_000;
            texts += stand_in(&mut g, &mut inbox, now, |_| false);
        }
        let allocs = counting::calls() - before;
        let round_trips = g.counters().round_trips_measured - answered;
        assert!(round_trips >= 1_000, "{round_trips} round trips");
        assert_eq!(g.counters().unexpected, 0);
        eprintln!("seed JSON agents: {allocs} allocations for {texts} texts sent");
        // A few: the output buffers circulate between the connections and one now and then
        // meets a turn bigger than any it held (3–4 in 1,000 turns, after 100 or 1,000 turns
        // of warm-up alike), never one per text.
        assert!(allocs <= 8, "{allocs} allocations for {texts} texts sent");
    }

    #[test]
    fn a_refused_hop_ends_its_item_at_its_source_by_the_errors_name() {
        // Proves the pipeline's refusals over the seed protocol: stage 2 of a pipeline of 3 is
        // gone, so a router stand-in answers every text to it with `agent_not_found`; stage 1,
        // whose hop it was, tells the source (`refused`, naming the error), which counts the
        // item as that error and sends its next: every item sent is refused once or in flight,
        // none answered, nothing unexpected.
        let agents = 3u32;
        let mut cfg = crate::loadgen::http::fuzz::group_config(agents);
        cfg.seats = crate::loadgen::group::Seats::Packed(1);
        cfg.workload = Workload::Pipeline { stages: 3 };
        cfg.pacing = Pacing::Closed { window: 2 };
        cfg.stop = Stop::Duration(Duration::from_secs(3600));
        let (mut g, mut inbox, mut now) = started(&cfg);
        for _ in 0..100 {
            now += 1_000;
            // Stage 2 is gone.
            stand_in(&mut g, &mut inbox, now, |n| n == 2);
        }
        let c = g.counters().clone();
        let refused = c.request_error_total();
        assert_eq!(c.request_errors_named, vec![("agent_not_found".to_string(), refused)]);
        assert!(refused >= 50, "{c:?}");
        let in_flight = c.requests_sent - refused;
        assert!(in_flight <= 2, "{c:?}");
        assert_eq!((c.replies_delivered, c.unexpected), (0, 0), "{c:?}");
    }
}
