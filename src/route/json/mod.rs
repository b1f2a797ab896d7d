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
//! The translator is free of I/O: this file holds the session's state and what every part
//! shares, `requests.rs` each request type, `pushes.rs` what the shard sends back; `tasks.rs`
//! holds the connection's reader and writer tasks.

mod pushes;
mod requests;
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
