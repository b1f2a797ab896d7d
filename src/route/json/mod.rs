//! The seed system's JSON protocol on the router's WebSocket port (`docs/JSON-COMPAT.md`).
//!
//! A JSON connection is an ordinary shard connection with a translator in front: each JSON
//! request becomes native messages fed to the shard, and the native messages the shard queues for
//! the connection become JSON replies and pushes. So JSON and native agents share one registry,
//! and every semantic (ownership, cross-shard routing, locks, barriers) is the shard's own.
//!
//! Requests are handled one at a time, as the seed router does: every request gets exactly one
//! reply, in order, and pushes caused by a request are sent before its reply.
//!
//! This file is the translator (the session's state and every request type), free of I/O;
//! `tasks.rs` holds the connection's reader and writer tasks.

mod tasks;
#[cfg(test)]
mod tests;

pub(super) use tasks::serve;

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::task::Waker;

use async_tungstenite::tungstenite::Utf8Bytes;
use bytes::{BufMut, BytesMut};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::{Presence, Shard};
use crate::clock;
use crate::shape::{object, Str};
use crate::wire::control::{
    BarrierEnter, BarrierForce, Discover, DiscoverReply, Heartbeat, LockRelease, LockRequest,
    Register, Unregister,
};
use crate::wire::frame::encode_frame;
use crate::wire::{
    AgentId, BarrierId, BufferPool, Compression, Control, DataKind, Envelope, ErrorCode, LockId,
    Message, TopicId,
};

/// FNV-1a, 64 bits: the stable hash every JSON name is turned into an id with.
fn fnv64(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// The native id of a JSON agent named `name`: a hash with the top bit set, so it never equals
/// a small native id. A name that is a plain number is that native id.
pub fn agent_id_of(name: &str) -> AgentId {
    match name.parse::<u32>() {
        Ok(n) => AgentId(n),
        Err(_) => AgentId(0x8000_0000 | (fnv64(name) as u32 & 0x7fff_ffff)),
    }
}

/// The native agent type of a JSON type name (`all` = 0, every type).
pub fn type_id_of(name: &str) -> u32 {
    if name == "all" {
        0
    } else {
        0x8000_0000 | (fnv64(name) as u32 & 0x7fff_ffff)
    }
}

/// The native topic, lock and barrier ids of JSON names.
pub fn topic_id_of(name: &str) -> TopicId {
    TopicId(fnv64(name) as u32)
}

fn lock_id_of(name: &str) -> LockId {
    LockId(fnv64(name))
}

fn barrier_id_of(name: &str) -> BarrierId {
    BarrierId(fnv64(name))
}

/// Unix time in seconds, as the JSON protocol's timestamps are.
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A JSON agent registered on this connection.
#[derive(Debug, Clone)]
struct JsonAgent {
    name: String,
    id: AgentId,
    /// Its native agent type ([`type_id_of`]).
    agent_type: u32,
    /// The topics it subscribed to when it registered.
    topics: Vec<TopicId>,
}

/// What the request in flight waits for, and how to answer it.
#[derive(Debug, Clone)]
enum Awaiting {
    Register {
        name: String,
        agent_type: u32,
        topics: Vec<TopicId>,
    },
    Unregister {
        name: String,
    },
    Heartbeat {
        name: String,
    },
    /// A `discover`, its agents listed in [`Session::listed`] page by page.
    Discover {
        found: Found,
        region: Option<Value>,
    },
    /// A `broadcast` sent, whose recipients are being listed ([`Session::listed`]) for its ack.
    Broadcast {
        found: Found,
        from: AgentId,
        exclude_self: bool,
    },
    Lock {
        name: String,
        already_held: bool,
        key: (AgentId, LockId),
    },
    Release {
        name: String,
        key: (AgentId, LockId),
    },
    Barrier {
        name: String,
        key: (AgentId, BarrierId),
    },
    BarrierForce {
        name: String,
    },
}

/// How far the listing of a discovery has come: the agents asked for, the matches read so far
/// (of the router's `total`), and how many of them went into the list.
#[derive(Debug, Clone)]
struct Found {
    agent_type: u32,
    capability: Option<String>,
    read: u32,
    listed: u32,
    /// How many of those listed are this connection's agents.
    ours: u32,
    /// Whether the list needs names alone ([`Discover::names_only`]): a broadcast's ack.
    names_only: bool,
}

/// The translator between one JSON connection and its shard connection.
struct Session {
    agents: Vec<JsonAgent>,
    /// The native request id in flight and what it waits for.
    awaiting: Option<(u64, Awaiting)>,
    /// Locks held by this connection's agents, with when each lease ends (Unix seconds): a
    /// holder's re-request is answered with an ack alone, a grant after expiry with a
    /// `lock_granted` too. Entries leave with their release; leases that ended unreleased are
    /// swept once the table doubles, so locks named anew and left to expire do not make it grow.
    held: HashMap<(AgentId, LockId), f64>,
    /// The table's size that starts the next sweep of `held`.
    held_sweep_at: usize,
    /// The names of the locks this connection's agents asked for and have not been granted,
    /// and of the barriers they entered and that have not released them: what a push that
    /// arrives later needs. Each entry leaves with its grant, release or error, so a client
    /// that names every lock or barrier anew (a round number in the name) does not make them
    /// grow.
    lock_waits: HashMap<(AgentId, LockId), String>,
    barrier_waits: HashMap<(AgentId, BarrierId), String>,
    /// Strings of names no longer needed (a request answered, a wait over), kept for the next.
    spare_names: Vec<String>,
    next_request: u64,
    next_message: u64,
    /// JSON texts to write, in order: constants, or the next bytes of `texts`.
    out: VecDeque<Out>,
    /// The texts of `out` that were written, back to back. The writer hands each to the
    /// WebSocket as a slice of this buffer, which is reused once those slices are gone.
    texts: BytesMut,
    /// A message's native payload, written here before it is framed. A broadcast's stays until
    /// its ack: the copies for this connection's other agents are written from it.
    body: Vec<u8>,
    /// The members of the list a discovery is gathering ([`Found`]), comma-separated.
    listed: Vec<u8>,
    writer: Option<Waker>,
    reader: Option<Waker>,
    pool: BufferPool,
}

/// A text for the connection.
#[derive(Debug, Clone, Copy)]
enum Out {
    Constant(&'static str),
    /// The next this many bytes of [`Session::texts`].
    Written(usize),
}

/// Most name strings a session keeps for reuse ([`Session::recycle`]), and the largest kept.
const SPARE_NAMES: usize = 16;
const SPARE_NAME_BYTES: usize = 256;

/// The smallest size of `Session::held` that starts a sweep of ended leases.
const HELD_SWEEP_MIN: usize = 64;

/// The `ack` of a `direct` request, the reply a busy connection writes most.
const DELIVERED: &str = r#"{"type":"ack","delivered":true,"target_status":"online"}"#;

/// Sent in place of a text that is not UTF-8 (never expected: every text is written from
/// strings or from raw values of a text that was).
const NOT_UTF8: &str =
    r#"{"type":"error","error":"internal_error","message":"a reply was not UTF-8"}"#;

object! {
    /// A request as it is read first: its members borrowed from the text as written, so a
    /// `direct`'s payload is passed on as sent, never parsed into a tree, and the requests sent
    /// most (`direct`, the locks', the barriers', `heartbeat`) cost no allocation. Any other
    /// request, or a `direct` this does not fit, is read as a [`Value`] instead.
    struct Request<'a> {
        kind: &'a RawValue = "type",
        from_agent: &'a RawValue = "from_agent",
        to_agent: &'a RawValue = "to_agent",
        message_type: &'a RawValue = "message_type",
        payload: &'a RawValue = "payload",
        content: &'a RawValue = "content",
        correlation_id: &'a RawValue = "correlation_id",
        agent_id: &'a RawValue = "agent_id",
        lock_id: &'a RawValue = "lock_id",
        barrier_id: &'a RawValue = "barrier_id",
        timeout: &'a RawValue = "timeout",
        expected_count: &'a RawValue = "expected_count",
        agent_type: &'a RawValue = "agent_type",
        exclude_self: &'a RawValue = "exclude_self",
    }
}

/// The JSON text of a message's body as the request wrote it: `payload`, or `content` standing
/// in for an absent payload, or `{}` when both are absent. `None` where the borrowed reading
/// cannot tell (a `null` reads as absent): the request is then read as a [`Value`].
fn body_as_written<'a>(req: &Request<'a>, text: &str) -> Option<&'a str> {
    match (req.payload, req.content) {
        (Some(p), _) => Some(p.get()),
        _ if text.contains(r#""payload""#) => None,
        (None, Some(c)) => Some(c.get()),
        (None, None) if text.contains(r#""content""#) => None,
        (None, None) => Some("{}"),
    }
}

/// Writes a data message's native payload for a JSON agent's message: its JSON members, so a
/// JSON receiver sees `from_agent`, `message_type`, `payload` and `correlation_id` as they were
/// sent (`payload` and `correlation` are JSON texts, written as they are).
fn wrap_into(body: &mut Vec<u8>, from: &str, message_type: &str, payload: &str, correlation: &str) {
    body.clear();
    body.extend_from_slice(br#"{"from_agent":"#);
    put_json(body, from);
    body.extend_from_slice(br#","message_type":"#);
    put_json(body, message_type);
    body.extend_from_slice(br#","payload":"#);
    body.extend_from_slice(payload.as_bytes());
    body.extend_from_slice(br#","correlation_id":"#);
    body.extend_from_slice(correlation.as_bytes());
    body.push(b'}');
}

/// A number a raw value holds, as `T` (`None` when it is not one, or not a `T`).
fn number_of<'a, T: serde::Deserialize<'a>>(raw: Option<&'a RawValue>) -> Option<T> {
    raw.and_then(|r| serde_json::from_str::<T>(r.get()).ok())
}

object! {
    /// A data message's native payload as [`wrap_into`] writes it (see there).
    struct Wrapped<'a> {
        from_agent: &'a RawValue = "from_agent",
        message_type: &'a RawValue = "message_type",
        payload: &'a RawValue = "payload",
        correlation_id: &'a RawValue = "correlation_id",
    }
}

/// The string a raw value holds; `None` when it is not a string.
fn text_of(raw: Option<&RawValue>) -> Option<Cow<'_, str>> {
    raw.and_then(|r| serde_json::from_str::<Str<'_>>(r.get()).ok()).map(|s| s.0)
}

/// A place in a data message's native payload: its bytes `start..end`.
type Span = (u32, u32);

/// What a data message's native payload is, for the pushes it becomes ([`reading_of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// A JSON agent's message, as [`wrap_into`] writes it: where its members lie (`None`:
    /// absent, or `null`).
    Wrapped {
        from: Span,
        message_type: Option<Span>,
        payload: Option<Span>,
        correlation_id: Option<Span>,
    },
    /// Other JSON, passed on as written: where the value lies.
    Json(Span),
    /// Not JSON: passed on as base64.
    Binary,
}

/// Largest payload whose reading is kept for the next copy of the same message.
const READING_KEPT_MAX: usize = 4096;

thread_local! {
    /// The last payload of at most [`READING_KEPT_MAX`] bytes read on this thread, and its
    /// reading. A broadcast reaches the translator of every connection it goes to with the same
    /// bytes, on the shard's one thread: the copies after the first compare instead of reading
    /// JSON again (which took a quarter of the router's core in a broadcast of JSON agents).
    static LAST_READING: RefCell<(Vec<u8>, Reading)> = const { RefCell::new((Vec::new(), Reading::Binary)) };
}

/// How the native payload `p` reads: the last reading when `p` is the last payload read, else a
/// new one (then kept for the next).
fn reading_of(p: &[u8]) -> Reading {
    if p.len() > READING_KEPT_MAX {
        return read_payload(p);
    }
    LAST_READING.with(|last| {
        let mut last = last.borrow_mut();
        if last.0.as_slice() != p {
            last.1 = read_payload(p);
            last.0.clear();
            last.0.extend_from_slice(p);
        }
        last.1
    })
}

#[cfg(test)]
thread_local! {
    /// Payloads read by [`read_payload`] on this thread, for the tests.
    static READS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Reads the native payload `p` ([`Reading`]).
fn read_payload(p: &[u8]) -> Reading {
    #[cfg(test)]
    READS.with(|n| n.set(n.get() + 1));
    // Only a payload that can be JSON is read as such: a failed reading allocates its error,
    // and a native agent's payload (its send times first) is seldom JSON.
    if !may_be_json(p) {
        return Reading::Binary;
    }
    // A value read borrowed from `p` lies in it: its place is its distance from `p`'s start.
    let span = |raw: &RawValue| -> Option<Span> {
        let start = (raw.get().as_ptr() as usize).checked_sub(p.as_ptr() as usize)?;
        let end = start + raw.get().len();
        (end <= p.len()).then_some((u32::try_from(start).ok()?, u32::try_from(end).ok()?))
    };
    if let Ok(w) = serde_json::from_slice::<Wrapped<'_>>(p) {
        if let Some(from) = w.from_agent.and_then(span) {
            return Reading::Wrapped {
                from,
                message_type: w.message_type.and_then(span),
                payload: w.payload.and_then(span),
                correlation_id: w.correlation_id.and_then(span),
            };
        }
    }
    match serde_json::from_slice::<&RawValue>(p).ok().and_then(span) {
        Some(span) => Reading::Json(span),
        None => Reading::Binary,
    }
}

/// Ends a push of `env`: its topic when published, the time, the closing brace.
fn end_push(b: &mut BytesMut, env: &Envelope<'_>) {
    if env.kind == DataKind::Publish {
        b.extend_from_slice(br#","topic":"#);
        put_json(b, &env.to);
    }
    b.extend_from_slice(br#","timestamp":"#);
    put_json(b, &unix_now());
    b.put_u8(b'}');
}

/// Whether `bytes` may be a JSON text: starting (past white space) as a value can. The reading
/// that follows checks the rest (UTF-8 included) in the same pass.
fn may_be_json(bytes: &[u8]) -> bool {
    let start = bytes.iter().find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    matches!(start, Some(b'{' | b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n'))
}

/// Appends the member `,"key":value` to an object being written.
fn member(b: &mut BytesMut, key: &str, value: &(impl serde::Serialize + ?Sized)) {
    b.extend_from_slice(b",\"");
    b.extend_from_slice(key.as_bytes());
    b.extend_from_slice(b"\":");
    put_json(b, value);
}

/// Appends `value` as JSON (writing into memory cannot fail).
fn put_json(buf: &mut impl BufMut, value: &(impl serde::Serialize + ?Sized)) {
    let _ = serde_json::to_writer(buf.writer(), value);
}

fn error(code: &str, message: impl Into<String>) -> String {
    json!({"type": "error", "error": code, "message": message.into()}).to_string()
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// A message's body: `payload`, or `content` as known clients send it; `{}` when absent.
fn payload_of(req: &Value) -> Value {
    req.get("payload").or_else(|| req.get("content")).cloned().unwrap_or_else(|| json!({}))
}

/// Drives one JSON session against `shard` with `texts`, as its reader and writer tasks would
/// (without sockets): each text is translated and routed, and everything the shard queues for
/// the connection is translated back. For fuzzing (`route::fuzz::json`).
pub(super) fn drive<'a>(shard: &mut Shard, texts: impl Iterator<Item = &'a str>) {
    let mut session = Session::new();
    let id = shard.open_conn();
    let mut cx = std::task::Context::from_waker(Waker::noop());
    let mut inflate = Vec::new();
    for text in texts.take(256) {
        let mut frames: Vec<Vec<u8>> = session.on_text(text, shard).into_iter().collect();
        // Feedback rounds are bounded: a broadcast answers once.
        for _ in 0..4 {
            for frame in frames.drain(..) {
                shard.on_input(id, &frame);
                session.pool.put(frame);
            }
            while let std::task::Poll::Ready(Some(frame)) = shard.poll_output(id, &mut cx) {
                if let Ok(Some((_, batch))) =
                    crate::wire::decode_frame(&frame, &crate::wire::Limits::DEFAULT, &mut inflate)
                {
                    for (msg, _) in batch.flatten() {
                        frames.extend(session.on_native(msg));
                    }
                }
                shard.output_done(frame);
            }
            if frames.is_empty() {
                break;
            }
        }
        session.discard_out();
        session.awaiting = None;
    }
}

impl Session {
    fn new() -> Session {
        Session {
            agents: Vec::new(),
            awaiting: None,
            held: HashMap::new(),
            held_sweep_at: HELD_SWEEP_MIN,
            lock_waits: HashMap::new(),
            barrier_waits: HashMap::new(),
            spare_names: Vec::new(),
            next_request: 1,
            next_message: 1,
            out: VecDeque::new(),
            texts: BytesMut::new(),
            body: Vec::new(),
            listed: Vec::new(),
            writer: None,
            reader: None,
            pool: BufferPool::default(),
        }
    }

    fn send(&mut self, text: String) {
        self.send_with(|b| b.extend_from_slice(text.as_bytes()));
    }

    /// Queues the text `write` appends.
    fn send_with(&mut self, write: impl FnOnce(&mut BytesMut)) {
        let start = self.texts.len();
        write(&mut self.texts);
        self.queue(Out::Written(self.texts.len() - start));
    }

    /// Queues `copies` texts, each the one `write` appends.
    fn send_copies(&mut self, copies: usize, write: impl Fn(&mut BytesMut)) {
        for _ in 0..copies {
            self.send_with(&write);
        }
    }

    fn queue(&mut self, out: Out) {
        self.out.push_back(out);
        if let Some(w) = self.writer.take() {
            w.wake();
        }
    }

    /// The next text to write, in order.
    fn next_text(&mut self) -> Option<Utf8Bytes> {
        Some(match self.out.pop_front()? {
            Out::Constant(text) => Utf8Bytes::from_static(text),
            Out::Written(len) => Utf8Bytes::try_from(self.texts.split_to(len).freeze())
                .unwrap_or_else(|_| Utf8Bytes::from_static(NOT_UTF8)),
        })
    }

    /// Forgets every text not yet written.
    fn discard_out(&mut self) {
        self.out.clear();
        self.texts.clear();
    }

    fn request_id(&mut self) -> u64 {
        self.next_request += 1;
        self.next_request
    }

    fn ours(&self, name: &str) -> Option<AgentId> {
        self.agents.iter().find(|a| a.name == name).map(|a| a.id)
    }

    /// The id of `name`, an agent of this connection; else answers `agent_not_found`.
    fn ours_or_error(&mut self, name: &str) -> Option<AgentId> {
        let id = self.ours(name);
        if id.is_none() {
            self.send(error("agent_not_found", format!("Agent not found: {name}")));
        }
        id
    }

    /// A frame of one data message from a JSON agent (`body`: see [`wrap_into`]).
    fn data_frame(
        &mut self,
        kind: DataKind,
        sender: AgentId,
        to: u32,
        message_type: &str,
        body: &[u8],
    ) -> Vec<u8> {
        let env = self.envelope(kind, sender, to, message_type, body);
        self.frame(&[Message::Data(env)])
    }

    /// One data message from a JSON agent (`body`: see [`wrap_into`]).
    fn envelope<'b>(
        &mut self,
        kind: DataKind,
        sender: AgentId,
        to: u32,
        message_type: &str,
        body: &'b [u8],
    ) -> Envelope<'b> {
        self.next_message += 1;
        Envelope {
            kind,
            sender,
            to,
            message_id: self.next_message,
            correlation_id: 0,
            timestamp_ns: clock::now_ns(),
            msg_type: type_id_of(message_type),
            priority: 5,
            ttl_ms: 0,
            payload: body,
        }
    }

    fn frame(&mut self, messages: &[Message<'_>]) -> Vec<u8> {
        encode_frame(messages, Compression::None, &mut self.pool)
    }

    /// Turns one JSON request into a native frame for the shard (none when answered here).
    /// The caller gives the frame back to [`Session::pool`] once the shard has taken it.
    fn on_text(&mut self, text: &str, shard: &Shard) -> Option<Vec<u8>> {
        if let Ok(req) = serde_json::from_str::<Request<'_>>(text) {
            match text_of(req.kind).as_deref() {
                Some("direct") => {
                    if let Some(payload) = body_as_written(&req, text) {
                        return self.direct_as_written(&req, payload, shard);
                    }
                }
                Some("broadcast") => {
                    if let Some(payload) = body_as_written(&req, text) {
                        let from = text_of(req.from_agent).unwrap_or_default();
                        let agent_type = text_of(req.agent_type);
                        let message_type = text_of(req.message_type);
                        return self.broadcast(
                            &from,
                            agent_type.as_deref().unwrap_or("all"),
                            message_type.as_deref().unwrap_or("broadcast"),
                            number_of(req.exclude_self).unwrap_or(true),
                            payload,
                        );
                    }
                }
                Some(kind @ ("lock_request" | "lock_release")) => {
                    return self.lock(kind == "lock_request", &req);
                }
                Some(kind @ ("barrier_enter" | "barrier_release")) => {
                    return self.barrier(kind == "barrier_enter", &req);
                }
                Some(kind @ ("heartbeat" | "unregister")) => {
                    return self.heartbeat(kind == "heartbeat", &req);
                }
                _ => {}
            }
        }
        let Ok(req) = serde_json::from_str::<Value>(text) else {
            self.send(error("invalid_json", "Invalid JSON"));
            return None;
        };
        let kind = str_field(&req, "type").unwrap_or("").to_string();
        match kind.as_str() {
            "register" => self.register(&req),
            "discover" => {
                let agent_type = str_field(&req, "agent_type").map_or(0, type_id_of);
                let capability = str_field(&req, "capability").map(String::from);
                let region = req.get("region_overlap").filter(|v| !v.is_null()).cloned();
                let found = Found {
                    agent_type,
                    capability,
                    read: 0,
                    listed: 0,
                    ours: 0,
                    names_only: false,
                };
                self.listed.clear();
                Some(self.discover_next(found, |found| Awaiting::Discover { found, region }))
            }
            "direct" => self.direct(&req, shard),
            "broadcast" => self.broadcast(
                str_field(&req, "from_agent").unwrap_or(""),
                str_field(&req, "agent_type").unwrap_or("all"),
                str_field(&req, "message_type").unwrap_or("broadcast"),
                req.get("exclude_self").and_then(Value::as_bool).unwrap_or(true),
                &payload_of(&req).to_string(),
            ),
            other => {
                self.send(error("unknown_message_type", format!("Unknown message type: {other}")));
                None
            }
        }
    }

    fn register(&mut self, req: &Value) -> Option<Vec<u8>> {
        let name = str_field(req, "agent_id").map(String::from).unwrap_or_else(|| {
            format!(
                "agent-{:08x}",
                fnv64(&format!("{}{}", clock::now_ns(), self.next_request)) as u32
            )
        });
        let agent_type = str_field(req, "agent_type").unwrap_or("generic");
        let mut capabilities: Vec<String> = req
            .get("capabilities")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
            .unwrap_or_default();
        capabilities.push(format!("type:{agent_type}"));
        if let Some(region) = req.get("region").filter(|v| v.is_object()) {
            capabilities.push(format!("region:{region}"));
        }
        let topics: Vec<TopicId> = req
            .get("topics")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(topic_id_of).collect())
            .unwrap_or_default();
        let id = agent_id_of(&name);
        let mut messages = Vec::new();
        // Registering again overwrites (as in the seed): drop the earlier registration first.
        if let Some(old) = self.ours(&name) {
            let request_id = self.request_id();
            messages.push(Message::Control(Control::Unregister(Unregister {
                request_id,
                agent_id: old,
            })));
            self.agents.retain(|a| a.name != name);
        }
        let request_id = self.request_id();
        messages.push(Message::Control(Control::Register(Register {
            request_id,
            agent_id: id,
            agent_type: type_id_of(agent_type),
            name: name.clone(),
            capabilities,
            topics: topics.clone(),
            token: str_field(req, "token").map(String::from),
        })));
        self.awaiting = Some((
            request_id,
            Awaiting::Register { name, agent_type: type_id_of(agent_type), topics },
        ));
        Some(self.frame(&messages))
    }

    /// [`Session::direct`] for a request read borrowed: the same checks and answers, with the
    /// payload and correlation id passed on as written and the `ack` a constant.
    fn direct_as_written(
        &mut self,
        req: &Request<'_>,
        payload: &str,
        shard: &Shard,
    ) -> Option<Vec<u8>> {
        let from = text_of(req.from_agent).unwrap_or_default();
        let to = text_of(req.to_agent).unwrap_or_default();
        let (sender, target) = self.sender_and_target(&from, &to, shard)?;
        let message_type = text_of(req.message_type);
        let message_type = message_type.as_deref().unwrap_or("message");
        let mut body = std::mem::take(&mut self.body);
        let correlation = req.correlation_id.map_or("null", RawValue::get);
        wrap_into(&mut body, &from, message_type, payload, correlation);
        let frame = self.data_frame(DataKind::Direct, sender, target.0, message_type, &body);
        self.body = body;
        self.queue(Out::Constant(DELIVERED));
        Some(frame)
    }

    /// The ids of a `direct`'s sender (an agent of this connection) and of its recipient (known
    /// to the shard and not offline); else answers why not.
    fn sender_and_target(
        &mut self,
        from: &str,
        to: &str,
        shard: &Shard,
    ) -> Option<(AgentId, AgentId)> {
        let sender = self.ours_or_error(from)?;
        let target = agent_id_of(to);
        match shard.presence(target) {
            None => {
                self.send(error("agent_not_found", format!("Agent not found: {to}")));
                None
            }
            Some(Presence::Local { online: false }) => {
                self.send(error("agent_offline", format!("Agent offline: {to}")));
                None
            }
            Some(_) => Some((sender, target)),
        }
    }

    fn direct(&mut self, req: &Value, shard: &Shard) -> Option<Vec<u8>> {
        let from = str_field(req, "from_agent").unwrap_or("").to_string();
        let to = str_field(req, "to_agent").unwrap_or("").to_string();
        let (sender, target) = self.sender_and_target(&from, &to, shard)?;
        let message_type = str_field(req, "message_type").unwrap_or("message");
        let payload = payload_of(req).to_string();
        let correlation = req.get("correlation_id").unwrap_or(&Value::Null).to_string();
        let mut body = std::mem::take(&mut self.body);
        wrap_into(&mut body, &from, message_type, &payload, &correlation);
        let frame = self.data_frame(DataKind::Direct, sender, target.0, message_type, &body);
        self.body = body;
        self.queue(Out::Constant(DELIVERED));
        Some(frame)
    }

    /// A `broadcast` from `from` (`payload`: a JSON text). It goes to the shard in one frame with
    /// the discovery that lists its recipients for the ack ([`Session::discover`]): the shard
    /// sends it out, then answers the discovery.
    fn broadcast(
        &mut self,
        from: &str,
        agent_type: &str,
        message_type: &str,
        exclude_self: bool,
        payload: &str,
    ) -> Option<Vec<u8>> {
        let sender = self.ours_or_error(from)?;
        let mut body = std::mem::take(&mut self.body);
        wrap_into(&mut body, from, message_type, payload, "null");
        let to = type_id_of(agent_type);
        let env = self.envelope(DataKind::Broadcast, sender, to, message_type, &body);
        let found = Found {
            agent_type: to,
            capability: None,
            read: 0,
            listed: 0,
            ours: 0,
            names_only: true,
        };
        let discover = self.discover(&found);
        self.awaiting =
            Some((discover.request_id, Awaiting::Broadcast { found, from: sender, exclude_self }));
        let frame =
            self.frame(&[Message::Data(env), Message::Control(Control::Discover(discover))]);
        self.body = body;
        if !exclude_self {
            self.send_named("broadcast", "from_agent", from, |b| {
                member(b, "message_type", message_type);
                b.extend_from_slice(br#","payload":"#);
                b.extend_from_slice(payload.as_bytes());
                member(b, "timestamp", &unix_now());
            });
        }
        self.listed.clear();
        Some(frame)
    }

    /// The request for the next page of the agents `found` lists.
    fn discover(&mut self, found: &Found) -> Discover {
        Discover {
            request_id: self.request_id(),
            agent_type: found.agent_type,
            capability: found.capability.clone(),
            offset: found.read,
            limit: 0,
            names_only: found.names_only,
        }
    }

    /// Asks the shard for the next page of the agents `found` lists, to be answered as
    /// `awaiting` says.
    fn discover_next(&mut self, found: Found, awaiting: impl FnOnce(Found) -> Awaiting) -> Vec<u8> {
        let d = self.discover(&found);
        self.awaiting = Some((d.request_id, awaiting(found)));
        self.frame(&[Message::Control(Control::Discover(d))])
    }

    /// `heartbeat` (or `unregister`) for one of this connection's agents.
    fn heartbeat(&mut self, heartbeat: bool, req: &Request<'_>) -> Option<Vec<u8>> {
        let agent = text_of(req.agent_id).unwrap_or_default();
        let id = self.ours_or_error(&agent)?;
        let name = self.name(&agent);
        let request_id = self.request_id();
        let (ctl, awaiting) = if heartbeat {
            (
                Control::Heartbeat(Heartbeat { request_id, agent_id: id }),
                Awaiting::Heartbeat { name },
            )
        } else {
            (
                Control::Unregister(Unregister { request_id, agent_id: id }),
                Awaiting::Unregister { name },
            )
        };
        self.awaiting = Some((request_id, awaiting));
        Some(self.frame(&[Message::Control(ctl)]))
    }

    /// `lock_request` (`request`) or `lock_release`.
    fn lock(&mut self, request: bool, req: &Request<'_>) -> Option<Vec<u8>> {
        let agent = text_of(req.agent_id).unwrap_or_default();
        let lock = text_of(req.lock_id).unwrap_or_default();
        let id = self.ours_or_error(&agent)?;
        let lock_id = lock_id_of(&lock);
        let key = (id, lock_id);
        let name = self.name(&lock);
        let request_id = self.request_id();
        let ctl = if request {
            let lease_s = number_of::<f64>(req.timeout).unwrap_or(30.0).max(0.001);
            let already_held = self.held.get(&key).is_some_and(|&ends| ends > unix_now());
            let waiting = self.name(&lock);
            if let Some(old) = self.lock_waits.insert(key, waiting) {
                self.recycle(old);
            }
            self.awaiting = Some((request_id, Awaiting::Lock { name, already_held, key }));
            let lease_ms = (lease_s * 1000.0).min(f64::from(u32::MAX)) as u32;
            Control::LockRequest(LockRequest { request_id, agent_id: id, lock_id, lease_ms })
        } else {
            self.awaiting = Some((request_id, Awaiting::Release { name, key }));
            Control::LockRelease(LockRelease { request_id, agent_id: id, lock_id })
        };
        Some(self.frame(&[Message::Control(ctl)]))
    }

    /// `barrier_enter` (`enter`) or `barrier_release`.
    fn barrier(&mut self, enter: bool, req: &Request<'_>) -> Option<Vec<u8>> {
        let barrier = text_of(req.barrier_id).unwrap_or_default();
        let barrier_id = barrier_id_of(&barrier);
        // barrier_release names no agent in the seed protocol: any agent of this connection acts.
        let id = match text_of(req.agent_id) {
            Some(agent) => self.ours_or_error(&agent)?,
            None => match self.agents.first() {
                Some(a) => a.id,
                None => {
                    self.send(error("agent_not_found", "Agent not found: "));
                    return None;
                }
            },
        };
        let name = self.name(&barrier);
        let request_id = self.request_id();
        let ctl = if enter {
            let expected = number_of::<u64>(req.expected_count).unwrap_or(2) as u32;
            let key = (id, barrier_id);
            let waiting = self.name(&barrier);
            if let Some(old) = self.barrier_waits.insert(key, waiting) {
                self.recycle(old);
            }
            self.awaiting = Some((request_id, Awaiting::Barrier { name, key }));
            Control::BarrierEnter(BarrierEnter { request_id, agent_id: id, barrier_id, expected })
        } else {
            self.awaiting = Some((request_id, Awaiting::BarrierForce { name }));
            Control::BarrierForce(BarrierForce { request_id, agent_id: id, barrier_id })
        };
        Some(self.frame(&[Message::Control(ctl)]))
    }

    /// A copy of `s`, in a string kept from an earlier name when there is one.
    fn name(&mut self, s: &str) -> String {
        let mut name = self.spare_names.pop().unwrap_or_default();
        name.clear();
        name.push_str(s);
        name
    }

    /// Keeps `name`'s string for a later [`Session::name`], within [`SPARE_NAMES`].
    fn recycle(&mut self, name: String) {
        if self.spare_names.len() < SPARE_NAMES && name.capacity() <= SPARE_NAME_BYTES {
            self.spare_names.push(name);
        }
    }

    /// Appends `member` (as JSON) to the list `found` is gathering.
    fn list(&mut self, found: &mut Found, member: &(impl serde::Serialize + ?Sized)) {
        if found.listed > 0 {
            self.listed.push(b',');
        }
        put_json(&mut self.listed, member);
        found.listed += 1;
    }

    /// Counts the page `d` as read: whether more pages are left.
    fn more_pages(found: &mut Found, d: &DiscoverReply) -> bool {
        found.read += d.agents.len() as u32;
        found.read < d.total && !d.agents.is_empty()
    }

    /// The name a JSON client knows an agent by: its own name if it is a JSON agent, else its
    /// number.
    fn name_of(id: AgentId, name: &str) -> Cow<'_, str> {
        if agent_id_of(name) == id {
            Cow::Borrowed(name)
        } else {
            Cow::Owned(id.0.to_string())
        }
    }

    /// Translates one native message queued for this connection. Returns native frames to feed
    /// back to the shard (a broadcast whose recipients are now known).
    fn on_native(&mut self, msg: Message<'_>) -> Option<Vec<u8>> {
        match msg {
            Message::Data(env) => {
                self.push_data(&env);
                None
            }
            Message::Control(ctl) => self.on_control(ctl),
        }
    }

    fn push_data(&mut self, env: &Envelope<'_>) {
        // The router sends a connection one copy of a broadcast or publication however many of
        // its agents it is for; a JSON client gets one per agent, as from the seed router. The
        // copies for this connection's agents of its own agents' broadcasts were written before
        // the ack.
        let copies = match env.kind {
            DataKind::Broadcast if self.agents.iter().any(|a| a.id == env.sender) => return,
            DataKind::Broadcast => {
                self.agents.iter().filter(|a| env.to == 0 || a.agent_type == env.to).count().max(1)
            }
            DataKind::Publish => {
                let topic = TopicId(env.to);
                self.agents.iter().filter(|a| a.topics.contains(&topic)).count().max(1)
            }
            _ => 1,
        };
        self.push_copies(env, copies);
    }

    /// Queues `copies` pushes of `env`.
    fn push_copies(&mut self, env: &Envelope<'_>, copies: usize) {
        let kind = match env.kind {
            DataKind::Broadcast => "broadcast",
            DataKind::Publish => "publish",
            _ => "direct",
        };
        let p = env.payload;
        let at = |span: Option<Span>| span.and_then(|(a, b)| p.get(a as usize..b as usize));
        match reading_of(p) {
            // A message from a JSON agent: its members go out as they came in ([`wrap_into`]
            // always writes a payload, so an absent one was `null`).
            Reading::Wrapped { from, message_type, payload, correlation_id } => {
                let null: &[u8] = b"null";
                let (from, message_type) = (at(Some(from)).unwrap_or(null), at(message_type));
                let (payload, correlation_id) = (at(payload), at(correlation_id));
                self.send_copies(copies, |b| {
                    b.extend_from_slice(br#"{"type":""#);
                    b.extend_from_slice(kind.as_bytes());
                    b.extend_from_slice(br#"","from_agent":"#);
                    b.extend_from_slice(from);
                    b.extend_from_slice(br#","message_type":"#);
                    b.extend_from_slice(message_type.unwrap_or(null));
                    b.extend_from_slice(br#","payload":"#);
                    b.extend_from_slice(payload.unwrap_or(null));
                    b.extend_from_slice(br#","correlation_id":"#);
                    b.extend_from_slice(correlation_id.unwrap_or(null));
                    end_push(b, env);
                });
            }
            // A native agent's message: its ids as strings, its payload as written when it is
            // JSON, else as base64.
            reading => {
                let json = match reading {
                    Reading::Json(span) => at(Some(span)),
                    _ => None,
                };
                self.send_copies(copies, |b| {
                    use std::fmt::Write as _;
                    b.extend_from_slice(br#"{"type":""#);
                    b.extend_from_slice(kind.as_bytes());
                    let _ = write!(
                        b,
                        r#"","from_agent":"{}","message_type":"{}","payload":"#,
                        env.sender.0, env.msg_type
                    );
                    match json {
                        Some(raw) => b.extend_from_slice(raw),
                        None => {
                            use base64::Engine;
                            let engine = &base64::engine::general_purpose::STANDARD;
                            b.extend_from_slice(br#"{"base64":""#);
                            let at = b.len();
                            b.resize(at + base64::encoded_len(p.len(), true).unwrap_or(0), 0);
                            let n = engine.encode_slice(p, &mut b[at..]).unwrap_or(0);
                            b.truncate(at + n);
                            b.extend_from_slice(br#""}"#);
                        }
                    }
                    let _ = write!(b, r#","correlation_id":{}"#, env.correlation_id);
                    end_push(b, env);
                });
            }
        }
    }

    fn on_control(&mut self, ctl: Control) -> Option<Vec<u8>> {
        let reply_id = match &ctl {
            Control::Ack(a) => a.request_id,
            Control::Error(e) => e.request_id,
            Control::DiscoverReply(d) => d.request_id,
            Control::LockGranted(g) => g.request_id,
            Control::LockQueued(q) => q.request_id,
            Control::BarrierWait(w) => w.request_id,
            Control::BarrierRelease(r) => r.request_id,
            _ => 0,
        };
        let awaited = match &self.awaiting {
            Some((id, _)) if *id == reply_id => self.awaiting.take().map(|(_, a)| a),
            _ => None,
        };
        let Some(awaiting) = awaited else {
            self.push_unawaited(ctl);
            return None;
        };
        let more = self.answer(awaiting, ctl);
        if self.awaiting.is_none() {
            if let Some(w) = self.reader.take() {
                w.wake();
            }
        }
        more
    }

    /// Queues `{"type":"<kind>","<key>":<name>`, the members `members` appends ([`member`]),
    /// and the closing brace (`kind` and `key` are plain names, written as they are).
    fn send_named(
        &mut self,
        kind: &str,
        key: &str,
        name: &str,
        members: impl FnOnce(&mut BytesMut),
    ) {
        self.send_with(|b| {
            b.extend_from_slice(br#"{"type":""#);
            b.extend_from_slice(kind.as_bytes());
            b.extend_from_slice(br#"",""#);
            b.extend_from_slice(key.as_bytes());
            b.extend_from_slice(br#"":"#);
            put_json(b, name);
            members(b);
            b.put_u8(b'}');
        });
    }

    /// Queues the push `lock_granted` of lock `name`, its lease ending at `expires` (Unix s).
    fn send_lock_granted(&mut self, name: &str, expires: f64) {
        self.send_named("lock_granted", "lock_id", name, |b| {
            member(b, "expires_at", &expires);
        });
    }

    /// Queues the push `barrier_release` of barrier `name`.
    fn send_barrier_release(&mut self, name: &str) {
        self.send_named("barrier_release", "barrier_id", name, |b| {
            member(b, "timestamp", &unix_now());
        });
    }

    /// Records that `key`'s lock is held until `ends` (Unix seconds), sweeping out leases that
    /// ended unreleased once the table has doubled since the last sweep.
    fn hold(&mut self, key: (AgentId, LockId), ends: f64) {
        self.held.insert(key, ends);
        if self.held.len() >= self.held_sweep_at {
            let now = unix_now();
            self.held.retain(|_, &mut ends| ends > now);
            self.held_sweep_at = (self.held.len() * 2).max(HELD_SWEEP_MIN);
        }
    }

    /// Pushes that are not the answer to the request in flight: grants after a wait, barrier
    /// releases caused by others, and errors about earlier messages (already acknowledged).
    fn push_unawaited(&mut self, ctl: Control) {
        match ctl {
            Control::LockGranted(g) => {
                let key = (g.agent_id, g.lock_id);
                let name = self.lock_waits.remove(&key).unwrap_or_default();
                let expires = unix_now() + f64::from(g.lease_ms) / 1000.0;
                self.hold(key, expires);
                self.send_lock_granted(&name, expires);
                self.recycle(name);
            }
            Control::BarrierRelease(r) => {
                let name =
                    self.barrier_waits.remove(&(r.agent_id, r.barrier_id)).unwrap_or_default();
                self.send_barrier_release(&name);
                self.recycle(name);
            }
            _ => {}
        }
    }

    fn answer(&mut self, awaiting: Awaiting, ctl: Control) -> Option<Vec<u8>> {
        let code = |c: &Control| match c {
            Control::Error(e) => ErrorCode::from_code(e.code),
            _ => None,
        };
        if let (Some(err), Control::Error(e)) = (code(&ctl), &ctl) {
            let name = match err {
                ErrorCode::UnknownAgent => "agent_not_found",
                ErrorCode::NotLockHolder => "not_lock_holder",
                ErrorCode::LockNotFound => "lock_not_found",
                ErrorCode::BarrierNotFound => "barrier_not_found",
                other => other.name(),
            };
            match &awaiting {
                // Not found, or another's: whatever this connection thought it held, it does not.
                Awaiting::Release { key, .. } => {
                    self.held.remove(key);
                }
                Awaiting::Lock { key, .. } => {
                    if let Some(name) = self.lock_waits.remove(key) {
                        self.recycle(name);
                    }
                }
                Awaiting::Barrier { key, .. } => {
                    if let Some(name) = self.barrier_waits.remove(key) {
                        self.recycle(name);
                    }
                }
                _ => {}
            }
            self.send(error(name, e.detail.to_string()));
            return None;
        }
        match (awaiting, ctl) {
            (Awaiting::Register { name, agent_type, topics }, Control::Ack(_)) => {
                self.agents.push(JsonAgent {
                    id: agent_id_of(&name),
                    name: name.clone(),
                    agent_type,
                    topics,
                });
                self.send(json!({"type": "ack", "agent_id": name, "status": "registered", "timestamp": unix_now()}).to_string());
            }
            (Awaiting::Unregister { name }, Control::Ack(_)) => {
                self.agents.retain(|a| a.name != name);
                self.send(
                    json!({"type": "ack", "agent_id": name, "status": "unregistered"}).to_string(),
                );
            }
            (Awaiting::Heartbeat { name }, Control::Ack(_)) => {
                self.send_named("ack", "agent_id", &name, |b| {
                    member(b, "timestamp", &unix_now());
                });
                self.recycle(name);
            }
            (Awaiting::Discover { mut found, region }, Control::DiscoverReply(d)) => {
                for a in d.agents.iter().filter(|a| a.online) {
                    let have = a.capabilities.iter().find_map(|c| c.strip_prefix("region:"));
                    let have = have.and_then(|r| serde_json::from_str::<Value>(r).ok());
                    match (&region, &have) {
                        (None, _) => {}
                        (Some(want), Some(have)) if overlaps(want, have) => {}
                        _ => continue,
                    }
                    let agent_type = a.capabilities.iter().find_map(|c| c.strip_prefix("type:"));
                    let agent_type =
                        agent_type.map_or_else(|| a.agent_type.to_string(), String::from);
                    let capabilities: Vec<&String> = a
                        .capabilities
                        .iter()
                        .filter(|c| !c.starts_with("type:") && !c.starts_with("region:"))
                        .collect();
                    let agent = json!({"agent_id": Session::name_of(a.agent_id, &a.name),
                        "agent_type": agent_type, "capabilities": capabilities, "region": have,
                        "status": "online", "last_heartbeat": Value::Null, "topics": []});
                    self.list(&mut found, &agent);
                }
                if Session::more_pages(&mut found, &d) {
                    return Some(
                        self.discover_next(found, |found| Awaiting::Discover { found, region }),
                    );
                }
                let listed = std::mem::take(&mut self.listed);
                self.send_with(|b| {
                    b.extend_from_slice(br#"{"type":"ack","count":"#);
                    put_json(b, &found.listed);
                    b.extend_from_slice(br#","agents":["#);
                    b.extend_from_slice(&listed);
                    b.extend_from_slice(b"]}");
                });
                self.listed = listed;
            }
            (Awaiting::Broadcast { mut found, from, exclude_self }, Control::DiscoverReply(d)) => {
                for a in
                    d.agents.iter().filter(|a| a.online && (a.agent_id != from || !exclude_self))
                {
                    if a.agent_id != from && self.agents.iter().any(|o| o.id == a.agent_id) {
                        found.ours += 1;
                    }
                    self.list(&mut found, &*Session::name_of(a.agent_id, &a.name));
                }
                if Session::more_pages(&mut found, &d) {
                    let awaiting = |found| Awaiting::Broadcast { found, from, exclude_self };
                    return Some(self.discover_next(found, awaiting));
                }
                // The copies for this connection's other agents come before the ack, as every
                // push a request causes on the caller's own connection does.
                if found.ours > 0 {
                    let body = std::mem::take(&mut self.body);
                    let env = Envelope {
                        kind: DataKind::Broadcast,
                        sender: from,
                        to: found.agent_type,
                        message_id: 0,
                        correlation_id: 0,
                        timestamp_ns: 0,
                        msg_type: 0,
                        priority: 0,
                        ttl_ms: 0,
                        payload: &body,
                    };
                    self.push_copies(&env, found.ours as usize);
                    self.body = body;
                }
                let listed = std::mem::take(&mut self.listed);
                self.send_with(|b| {
                    b.extend_from_slice(br#"{"type":"ack","recipients":["#);
                    b.extend_from_slice(&listed);
                    b.extend_from_slice(br#"],"delivered_count":"#);
                    put_json(b, &found.listed);
                    b.put_u8(b'}');
                });
                self.listed = listed;
            }
            (Awaiting::Lock { name, already_held, key }, Control::LockGranted(g)) => {
                if let Some(waiting) = self.lock_waits.remove(&key) {
                    self.recycle(waiting);
                }
                let expires = unix_now() + f64::from(g.lease_ms) / 1000.0;
                self.hold(key, expires);
                if !already_held {
                    self.send_lock_granted(&name, expires);
                }
                self.send_named("ack", "lock_id", &name, |b| {
                    member(b, "granted", &true);
                    member(b, "expires_at", &expires);
                });
                self.recycle(name);
            }
            (Awaiting::Lock { name, .. }, Control::LockQueued(q)) => {
                self.send_named("ack", "lock_id", &name, |b| {
                    member(b, "granted", &false);
                    member(b, "queue_position", &q.position);
                });
                self.recycle(name);
            }
            (Awaiting::Release { name, key }, Control::Ack(_)) => {
                self.held.remove(&key);
                self.send_named("ack", "lock_id", &name, |b| {
                    member(b, "released", &true);
                });
                self.recycle(name);
            }
            (Awaiting::Barrier { name, .. }, Control::BarrierWait(w)) => {
                self.send_named("ack", "barrier_id", &name, |b| {
                    member(b, "released", &false);
                    member(b, "arrived_count", &w.arrived);
                    member(b, "expected_count", &w.expected);
                });
                self.recycle(name);
            }
            (Awaiting::Barrier { name, key }, Control::BarrierRelease(r)) => {
                if let Some(waiting) = self.barrier_waits.remove(&key) {
                    self.recycle(waiting);
                }
                self.send_barrier_release(&name);
                self.send_named("ack", "barrier_id", &name, |b| {
                    member(b, "released", &true);
                    member(b, "arrived_count", &r.arrived);
                });
                self.recycle(name);
            }
            (Awaiting::BarrierForce { name }, Control::Ack(_)) => {
                self.send_named("ack", "barrier_id", &name, |b| {
                    member(b, "released", &true);
                });
                self.recycle(name);
            }
            (awaiting, other) => {
                self.send(error(
                    "internal_error",
                    format!("unexpected answer {} to {awaiting:?}", other.name()),
                ));
            }
        }
        None
    }
}

/// Whether two `{x, y, width, height}` regions overlap.
fn overlaps(a: &Value, b: &Value) -> bool {
    let f = |v: &Value, k: &str| v.get(k).and_then(Value::as_f64);
    let (Some(ax), Some(ay), Some(aw), Some(ah)) =
        (f(a, "x"), f(a, "y"), f(a, "width"), f(a, "height"))
    else {
        return false;
    };
    let (Some(bx), Some(by), Some(bw), Some(bh)) =
        (f(b, "x"), f(b, "y"), f(b, "width"), f(b, "height"))
    else {
        return false;
    };
    ax < bx + bw && bx < ax + aw && ay < by + bh && by < ay + ah
}
