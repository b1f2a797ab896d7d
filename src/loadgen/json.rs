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

use serde_json::{json, Value};

use super::group::{About, Adapter, Book, ErrorKind, GroupConfig, Outgoing};
use crate::transport::ws::{next_record, RECORD_LEN_BYTES};
use crate::wire::AgentId;

/// What one sent message waits for from the router.
#[derive(Debug, Clone, Copy)]
enum Sent {
    Request,
    Reply,
    Register,
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
            _ => {} // broadcasts and other pushes are not part of the measured traffic
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
            let msg =
                json!({"type": "register", "agent_id": self.name(id.0), "agent_type": "a2a-bench"});
            self.send(conn, &msg, Sent::Register);
        }
    }

    fn request(&mut self, conn: usize, r: &Outgoing) {
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
}
