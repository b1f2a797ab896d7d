//! The native adapter of the agent loop: a2a-bench's batched msgpack frames (`docs/PROTOCOL.md`).
//!
//! Requests and replies are gathered per connection into frames of up to `batch_max` messages
//! from pooled buffers; the send times travel in the first 16 payload bytes and the receiver
//! echoes the payload, so no state is kept per message. One clock read serves a whole input.

use std::collections::VecDeque;

use super::group::{About, Adapter, Book, ErrorKind, GroupConfig, Outgoing, REPLY_BIT};
use super::group::{MEASURED_BIT, STAMP_BYTES};
use crate::wire::control::Register;
use crate::wire::{
    decode_frame, AgentId, BufferPool, Compression, Control, DataKind, Envelope, ErrorCode,
    FrameBuf, Limits, Message,
};

/// Largest frame a group builds.
const FRAME_BYTES: usize = 64 << 10;

#[derive(Debug, Default)]
struct Outbox {
    open: Option<FrameBuf>,
    sealed: VecDeque<FrameBuf>,
}

/// Frames for one agent core.
#[derive(Debug)]
pub struct Native {
    out: Vec<Outbox>,
    pool: BufferPool,
    inflate: Vec<u8>,
    /// Request payload; the first 16 bytes are overwritten per send.
    payload: Vec<u8>,
    batch_max: u32,
    compression: Compression,
    priority: u8,
    id_base: u32,
}

impl Native {
    /// The adapter for a group with these settings.
    pub fn new(cfg: &GroupConfig) -> Native {
        let conns = cfg.count.div_ceil(cfg.agents_per_conn.max(1)) as usize;
        let mut payload = vec![0u8; cfg.payload_bytes.max(STAMP_BYTES)];
        for (i, b) in payload.iter_mut().enumerate().skip(STAMP_BYTES) {
            *b = (i as u8).wrapping_mul(31).wrapping_add(7);
        }
        Native {
            out: (0..conns).map(|_| Outbox::default()).collect(),
            pool: BufferPool::default(),
            inflate: Vec::new(),
            payload,
            batch_max: cfg.batch_max.max(1),
            compression: cfg.compression,
            priority: cfg.priority,
            id_base: cfg.id_base,
        }
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
        let frame = o.open.get_or_insert_with(|| FrameBuf::new(pool.get(need.max(FRAME_BYTES))));
        frame.push_envelope(env);
    }

    #[inline]
    fn on_message(&mut self, conn: usize, msg: Message<'_>, book: &mut Book) {
        match msg {
            Message::Data(env) if env.kind == DataKind::Request => {
                if env.payload.len() < STAMP_BYTES {
                    return book.unexpected();
                }
                let measured = env.message_id & MEASURED_BIT != 0;
                if !book.request_delivered(env.to, env.timestamp_ns, measured) {
                    return;
                }
                let reply = Envelope {
                    kind: DataKind::Reply,
                    sender: AgentId(env.to),
                    to: env.sender.0,
                    message_id: REPLY_BIT | env.message_id,
                    correlation_id: env.message_id,
                    timestamp_ns: book.now_ns(),
                    msg_type: env.msg_type,
                    priority: env.priority,
                    ttl_ms: 0,
                    payload: env.payload,
                };
                self.push(conn, &reply);
            }
            Message::Data(env) if env.kind == DataKind::Reply => {
                if env.payload.len() < STAMP_BYTES {
                    return book.unexpected();
                }
                let stamp = |i: usize| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&env.payload[i..i + 8]);
                    u64::from_le_bytes(b)
                };
                let measured = env.correlation_id & MEASURED_BIT != 0;
                let sent = env.timestamp_ns;
                if let Some(local) =
                    book.reply_delivered(env.to, (stamp(0), stamp(8)), sent, measured)
                {
                    book.send_from(local, |conn, r| self.request(conn, r));
                }
            }
            Message::Control(Control::Ack(_)) if book.registering() => book.ack(conn),
            Message::Control(Control::Error(e)) if book.registering() => {
                let code = ErrorCode::from_code(e.code).map_or("unknown", ErrorCode::name);
                book.refused(format!("registering agent {}: {code} ({})", e.agent_id.0, e.detail));
            }
            Message::Control(Control::Error(e)) => {
                let about = if e.message_id & REPLY_BIT != 0 {
                    About::Reply
                } else if e.message_id == 0 && e.request_id == 0 && e.agent_id.0 == 0 {
                    About::Request(None) // a frame-level error: the router closes the connection
                } else {
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

impl Adapter for Native {
    fn register(&mut self, conn: usize, ids: &[AgentId], _book: &mut Book) {
        let mut frame = FrameBuf::new(self.pool.get(4096));
        for &id in ids {
            frame.push_control(&Control::Register(Register {
                request_id: u64::from(id.0),
                agent_id: id,
                agent_type: 1,
                name: format!("agent-{}", id.0 - self.id_base),
                capabilities: Vec::new(),
                topics: Vec::new(),
                token: None,
            }));
        }
        self.out[conn].sealed.push_back(frame);
    }

    #[inline]
    fn request(&mut self, conn: usize, r: &Outgoing) {
        let mut payload = std::mem::take(&mut self.payload);
        payload[..8].copy_from_slice(&r.intended_ns.to_le_bytes());
        payload[8..16].copy_from_slice(&r.sent_ns.to_le_bytes());
        let env = Envelope {
            kind: DataKind::Request,
            sender: AgentId(r.from),
            to: r.to,
            message_id: r.message_id,
            correlation_id: 0,
            timestamp_ns: r.sent_ns,
            msg_type: 1,
            priority: self.priority,
            ttl_ms: 0,
            payload: &payload,
        };
        self.push(conn, &env);
        self.payload = payload;
    }

    fn input(&mut self, conn: usize, buf: &[u8], book: &mut Book) -> Result<usize, String> {
        let mut inflate = std::mem::take(&mut self.inflate);
        let mut used = 0;
        let result = loop {
            match decode_frame(&buf[used..], &Limits::DEFAULT, &mut inflate) {
                Ok(Some((len, batch))) => {
                    for item in batch {
                        match item {
                            Ok((msg, _)) => self.on_message(conn, msg, book),
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
        Some(frame.finish(self.compression, &mut self.pool))
    }

    fn output_done(&mut self, buf: Vec<u8>) {
        self.pool.put(buf);
    }
}
