//! A shared-state connection's reader and its data path: each input pass is routed into
//! per-destination chunks, handed over once each.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::clock;
use crate::route::FullPolicy;
use crate::wire::control::Error as ErrorMsg;
use crate::wire::frame::decode_message;
use crate::wire::{
    decode_frame, AgentId, BufferPool, Control, DataKind, Envelope, ErrorCode, Message, TopicId,
};

use super::io::Input;
use super::{Chunk, State};

/// A connection's read buffer at the start, and what it shrinks back to.
const READ_BUF: usize = 8 << 10;

/// Per-pass counts, added to the shared atomics once per pass.
#[derive(Default)]
pub(super) struct PassCounts {
    pub(super) msgs_in: u64,
    pub(super) msgs_out: u64,
    pub(super) bytes_in: u64,
    pub(super) batches_in: u64,
}

/// A connection's reader and the routing it does.
pub(super) struct Conn {
    pub(super) state: Arc<State>,
    pub(super) id: u64,
    /// Agents registered on this connection.
    pub(super) agents: Vec<AgentId>,
    /// Chunks being filled this pass: (destination connection, chunk).
    pub(super) pending: Vec<(u64, Chunk)>,
    pub(super) pool: BufferPool,
    pub(super) inflate: Vec<u8>,
    pub(super) fan: Vec<u64>,
    pub(super) counts: PassCounts,
    pub(super) errors: Vec<ErrorCode>,
    pub(super) seen_ns: Arc<AtomicU64>,
    pub(super) now_ns: u64,
    /// A fatal error was queued: stop reading after this pass.
    pub(super) failed: bool,
}

impl Conn {
    pub(super) fn new(state: Arc<State>, id: u64) -> Conn {
        Conn {
            state,
            id,
            agents: Vec::new(),
            pending: Vec::new(),
            pool: BufferPool::default(),
            inflate: Vec::new(),
            fan: Vec::new(),
            counts: PassCounts::default(),
            errors: Vec::new(),
            seen_ns: Arc::new(AtomicU64::new(clock::now_ns())),
            now_ns: 0,
            failed: false,
        }
    }

    pub(super) async fn read_loop(&mut self, mut read: Input) {
        let mut buf = vec![0u8; READ_BUF];
        let mut filled = 0;
        while !self.failed {
            if filled == buf.len() {
                buf.resize(buf.len() * 2, 0);
            }
            let n = match read.read(&mut buf[filled..]).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            filled += n;
            self.now_ns = clock::now_ns();
            self.seen_ns.store(self.now_ns, Ordering::Relaxed);
            let used = self.route_pass(&buf[..filled]);
            buf.copy_within(used..filled, 0);
            filled -= used;
            // Grown with the bytes that arrive (above), never with a header's announced length;
            // back to the start size once a big frame is consumed.
            if buf.len() > READ_BUF && filled <= READ_BUF / 2 {
                buf.truncate(READ_BUF);
                buf.shrink_to_fit();
            }
            self.flush().await;
        }
    }

    /// Routes every complete frame at the start of `input`; returns the bytes used.
    pub(super) fn route_pass(&mut self, input: &[u8]) -> usize {
        let limits = self.state.cfg.limits;
        let mut inflate = std::mem::take(&mut self.inflate);
        let mut used = 0;
        loop {
            match decode_frame(&input[used..], &limits, &mut inflate) {
                Ok(Some((len, mut batch))) => {
                    self.counts.batches_in += 1;
                    loop {
                        if let Some((env, raw)) = batch.next_usual() {
                            self.on_data(&env, raw);
                            continue;
                        }
                        match batch.next_message() {
                            Ok(None) => break,
                            Ok(Some((Message::Data(env), raw))) => self.on_data(&env, raw),
                            Ok(Some((Message::Control(ctl), _))) => {
                                if !ctl.is_request() {
                                    self.fail(
                                        ErrorCode::UnexpectedMessage,
                                        "a client may not send this kind".into(),
                                    );
                                    break;
                                }
                                self.on_control(ctl);
                            }
                            Err(e) => {
                                self.fail(e.code(), e.to_string());
                                break;
                            }
                        }
                    }
                    used += len;
                    if self.failed {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    self.fail(e.code(), e.to_string());
                    used = input.len();
                    break;
                }
            }
        }
        self.inflate = inflate;
        self.counts.bytes_in += used as u64;
        used
    }

    pub(super) fn fail(&mut self, code: ErrorCode, detail: String) {
        let err = Control::Error(ErrorMsg {
            code: code.code(),
            request_id: 0,
            message_id: 0,
            agent_id: AgentId(0),
            detail: detail.into(),
        });
        self.errors.push(code);
        self.queue_control(self.id, &err);
        self.failed = true;
    }

    pub(super) fn on_data(&mut self, env: &Envelope<'_>, raw: &[u8]) {
        self.counts.msgs_in += 1;
        if !self.owns(env.sender) {
            return self.data_error(
                env,
                ErrorCode::SenderNotRegistered,
                "sender is not registered on this connection",
            );
        }
        if env.expired_at(self.now_ns) {
            return self.data_error(env, ErrorCode::Expired, "ttl passed on arrival");
        }
        let high = env.priority > 5;
        match env.kind {
            DataKind::Direct | DataKind::Request | DataKind::Reply => {
                let target = self
                    .state
                    .agents
                    .get(&AgentId(env.to))
                    .map(|a| (a.conn, self.state.online(&a, self.now_ns)));
                match target {
                    None => self.data_error(env, ErrorCode::UnknownRecipient, "no such agent"),
                    Some((_, false)) => self.data_error(
                        env,
                        ErrorCode::RecipientOffline,
                        "recipient missed its heartbeat deadline",
                    ),
                    Some((conn, true)) => self.queue(conn, raw, high),
                }
            }
            DataKind::Broadcast => {
                self.fan.clear();
                for a in self.state.agents.iter() {
                    let typed = env.to == 0 || a.agent_type == env.to;
                    if typed && *a.key() != env.sender && self.state.online(&a, self.now_ns) {
                        self.fan.push(a.conn);
                    }
                }
                self.deliver_fan(raw, high);
            }
            DataKind::Publish => {
                self.fan.clear();
                if let Some(subs) = self.state.topics.get(&TopicId(env.to)) {
                    for agent in subs.iter().filter(|&&a| a != env.sender) {
                        if let Some(a) = self.state.agents.get(agent) {
                            if self.state.online(&a, self.now_ns) {
                                self.fan.push(a.conn);
                            }
                        }
                    }
                }
                self.deliver_fan(raw, high);
            }
        }
    }

    /// One copy per distinct connection in `self.fan`.
    pub(super) fn deliver_fan(&mut self, raw: &[u8], high: bool) {
        let mut fan = std::mem::take(&mut self.fan);
        fan.sort_unstable();
        fan.dedup();
        for &conn in &fan {
            self.queue(conn, raw, high);
        }
        self.fan = fan;
    }

    pub(super) fn owns(&self, agent: AgentId) -> bool {
        if self.agents.len() <= 4 {
            return self.agents.contains(&agent);
        }
        self.state.agents.get(&agent).is_some_and(|a| a.conn == self.id)
    }

    /// Appends an encoded message to this pass's chunk for connection `conn`.
    pub(super) fn queue(&mut self, conn: u64, raw: &[u8], high: bool) {
        self.counts.msgs_out += 1;
        let i = match self.pending.iter().position(|(c, ch)| *c == conn && ch.high == high) {
            Some(i) => i,
            None => {
                self.pending.push((
                    conn,
                    Chunk { buf: self.pool.get(raw.len().max(4096)), count: 0, high },
                ));
                self.pending.len() - 1
            }
        };
        let chunk = &mut self.pending[i].1;
        chunk.buf.extend_from_slice(raw);
        chunk.count += 1;
    }

    /// Sends `ctl` to this connection at once, after what this pass already queued for it on the
    /// high lane, when its queue has room for them; false (and nothing sent) otherwise.
    pub(super) fn send_own_now(&mut self, ctl: &Control) -> bool {
        let Some(handle) = self.state.conns.get(&self.id).map(|h| h.clone()) else { return false };
        let mut chunk = match self.pending.iter().position(|(c, ch)| *c == self.id && ch.high) {
            Some(i) => self.pending.swap_remove(i).1,
            None => Chunk { buf: self.pool.get(256), count: 0, high: true },
        };
        let at = chunk.buf.len();
        ctl.encode(&mut chunk.buf);
        let max = self.state.cfg.conn_queue_bytes_max;
        let want = chunk.buf.len().min(max) as u32;
        match handle.budget.clone().try_acquire_many_owned(want) {
            Ok(permit) => {
                permit.forget();
                chunk.count += 1;
                self.counts.msgs_out += 1;
                let _ = handle.tx.send(chunk);
                true
            }
            Err(_) => {
                chunk.buf.truncate(at);
                if chunk.count > 0 {
                    self.pending.push((self.id, chunk));
                }
                false
            }
        }
    }

    pub(super) fn queue_control(&mut self, conn: u64, ctl: &Control) {
        let mut buf = Vec::new();
        ctl.encode(&mut buf);
        self.queue(conn, &buf, true);
    }

    pub(super) fn data_error(&mut self, env: &Envelope<'_>, code: ErrorCode, detail: &'static str) {
        self.errors.push(code);
        let err = Control::Error(ErrorMsg {
            code: code.code(),
            request_id: 0,
            message_id: env.message_id,
            agent_id: env.sender,
            detail: Cow::Borrowed(detail),
        });
        self.queue_control(self.id, &err);
    }

    pub(super) fn request_error(
        &mut self,
        request_id: u64,
        agent: AgentId,
        code: ErrorCode,
        detail: &'static str,
    ) {
        self.errors.push(code);
        let err = Control::Error(ErrorMsg {
            code: code.code(),
            request_id,
            message_id: 0,
            agent_id: agent,
            detail: Cow::Borrowed(detail),
        });
        self.queue_control(self.id, &err);
    }

    /// Hands this pass's chunks to their connections: waits for queue space (backpressure) or,
    /// under the drop policy, drops what does not fit and reports `queue_full` — those reports
    /// go to this connection and wait for its own queue space like any reply.
    pub(super) async fn flush(&mut self) {
        let max = self.state.cfg.conn_queue_bytes_max;
        while !self.pending.is_empty() {
            for (conn, chunk) in std::mem::take(&mut self.pending) {
                let Some(handle) = self.state.conns.get(&conn).map(|h| h.clone()) else { continue };
                let want = chunk.buf.len().min(max) as u32;
                let permit = if self.state.cfg.on_full == FullPolicy::Drop && conn != self.id {
                    handle.budget.clone().try_acquire_many_owned(want).ok()
                } else {
                    handle.budget.clone().acquire_many_owned(want).await.ok()
                };
                let Some(permit) = permit else {
                    if conn != self.id {
                        self.report_dropped(&chunk);
                    }
                    continue;
                };
                permit.forget();
                let queued = max - handle.budget.available_permits();
                self.state.counters.conn_queue_bytes_hwm.fetch_max(queued, Ordering::Relaxed);
                let _ = handle.tx.send(chunk);
            }
        }
        self.add_counts();
    }

    /// Answers every message of a dropped chunk with `queue_full` to its sender, which is on
    /// this connection (chunks are built from this connection's input).
    pub(super) fn report_dropped(&mut self, chunk: &Chunk) {
        let mut rest = &chunk.buf[..];
        while let Ok(Message::Data(env)) = decode_message(&mut rest) {
            self.errors.push(ErrorCode::QueueFull);
            let err = Control::Error(ErrorMsg {
                code: ErrorCode::QueueFull.code(),
                request_id: 0,
                message_id: env.message_id,
                agent_id: env.sender,
                detail: Cow::Borrowed("recipient queue full"),
            });
            self.queue_control(self.id, &err);
        }
    }

    pub(super) fn add_counts(&mut self) {
        let c = &self.state.counters;
        let p = std::mem::take(&mut self.counts);
        c.msgs_in.fetch_add(p.msgs_in, Ordering::Relaxed);
        c.msgs_out.fetch_add(p.msgs_out, Ordering::Relaxed);
        c.bytes_in.fetch_add(p.bytes_in, Ordering::Relaxed);
        c.batches_in.fetch_add(p.batches_in, Ordering::Relaxed);
        for code in self.errors.drain(..) {
            if let Some(i) = ErrorCode::ALL.iter().position(|&c| c == code) {
                c.errors[i].fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
