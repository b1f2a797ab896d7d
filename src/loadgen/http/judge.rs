//! Whether a response answers its request: status, content type, JSON-RPC error codes (by name),
//! and the shape each pattern expects. Typed, borrowing deserialisation: a body is checked
//! without building a JSON tree.

use std::borrow::Cow;

use std::fmt;
use std::marker::PhantomData;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::parse::{self, ContentType, Head};
use super::Pattern;
use crate::shape::{object, Skip, Str};

/// Why a response does not count as an answer: an error kind's name in reports.
pub type Kind = Cow<'static, str>;

/// The name of a JSON-RPC error code: the standard ones, A2A's −32001…−32009, else the code.
pub fn rpc_error_name(code: i64) -> Kind {
    Cow::Borrowed(match code {
        -32700 => "jsonrpc_parse_error",
        -32600 => "jsonrpc_invalid_request",
        -32601 => "jsonrpc_method_not_found",
        -32602 => "jsonrpc_invalid_params",
        -32603 => "jsonrpc_internal_error",
        -32001 => "a2a_task_not_found",
        -32002 => "a2a_task_not_cancelable",
        -32003 => "a2a_push_notification_not_supported",
        -32004 => "a2a_unsupported_operation",
        -32005 => "a2a_content_type_not_supported",
        -32006 => "a2a_invalid_agent_response",
        -32007 => "a2a_extended_card_not_configured",
        -32008 => "a2a_extension_support_required",
        -32009 => "a2a_version_not_supported",
        other => return Cow::Owned(format!("jsonrpc_{other}")),
    })
}

/// The JSON-RPC code of the A2A error with `reason` (a `google.rpc.ErrorInfo` reason, as the
/// HTTP+JSON and gRPC bindings name errors); `None` for a reason that is not A2A's.
pub fn a2a_reason_code(reason: &str) -> Option<i64> {
    Some(match reason {
        "TASK_NOT_FOUND" => -32001,
        "TASK_NOT_CANCELABLE" => -32002,
        "PUSH_NOTIFICATION_NOT_SUPPORTED" => -32003,
        "UNSUPPORTED_OPERATION" => -32004,
        "CONTENT_TYPE_NOT_SUPPORTED" => -32005,
        "INVALID_AGENT_RESPONSE" => -32006,
        "EXTENDED_AGENT_CARD_NOT_CONFIGURED" => -32007,
        "EXTENSION_SUPPORT_REQUIRED" => -32008,
        "VERSION_NOT_SUPPORTED" => -32009,
        _ => return None,
    })
}

/// The name of an error the A2A HTTP+JSON binding gives by its reason (`google.rpc.ErrorInfo`):
/// A2A's own reasons under the names their JSON-RPC codes have; `None` for any other.
pub fn rest_reason_name(reason: &str) -> Option<Kind> {
    a2a_reason_code(reason).map(rpc_error_name)
}

/// The name of an HTTP status that is not a success.
pub fn status_name(status: u16) -> Kind {
    Cow::Owned(format!("http_{status}"))
}

const BAD_JSON: Kind = Cow::Borrowed("protocol_bad_json");
const BAD_SHAPE: Kind = Cow::Borrowed("protocol_bad_shape");
const BAD_SSE: Kind = Cow::Borrowed("protocol_bad_sse");
const WRONG_TYPE: Kind = Cow::Borrowed("protocol_wrong_content_type");
const BAD_GRPC: Kind = Cow::Borrowed("protocol_bad_grpc");
const BAD_PROTOBUF: Kind = Cow::Borrowed("protocol_bad_protobuf");
const NO_GRPC_STATUS: Kind = Cow::Borrowed("protocol_grpc_no_status");

/// The name of a gRPC status that is not OK: `grpc_not_found`, …, `grpc_<code>` for one gRPC
/// does not define.
pub fn grpc_status_name(code: u32) -> Kind {
    match crate::grpc::code_name(code) {
        Some(name) => Cow::Owned(format!("grpc_{name}")),
        None => Cow::Owned(format!("grpc_{code}")),
    }
}

/// Checks a gRPC answer: its status (an error named by A2A's reason, else by its gRPC code),
/// then its messages: one `SendMessageResponse` holding a message or a task (which keeps the
/// conversation's `context`), or a stream of `StreamResponse`s, each holding one of its four
/// payloads (counted).
fn grpc_answer(p: Pattern, head: &Head, body: &[u8], context: Option<&str>) -> Result<u32, Kind> {
    use crate::grpc::{bytes_field, fields, messages, Field};
    grpc_ok(head)?;
    let stream = p.is_stream();
    let walked = messages(body, |m| {
        if stream {
            let payload = fields(m).try_fold(false, |any, f| {
                f.map(|(n, v)| any || (matches!(v, Field::Bytes(_)) && (1..=4).contains(&n)))
            });
            return match payload {
                Ok(true) => Ok(()),
                Ok(false) => Err(BAD_SHAPE),
                Err(_) => Err(BAD_PROTOBUF),
            };
        }
        // `payload`: a message (2) or a task (1); each has its context id at 2.
        let payload = match bytes_field(m, 2) {
            Ok(None) => bytes_field(m, 1),
            other => other,
        };
        match payload {
            Err(_) => Err(BAD_PROTOBUF),
            Ok(None) => Err(BAD_SHAPE),
            Ok(Some(x)) => {
                let got = bytes_field(x, 2).map_err(|_| BAD_PROTOBUF)?;
                context_kept(got.map(|c| std::str::from_utf8(c).unwrap_or("")), context)
            }
        }
    });
    match walked {
        Err(Ok(kind)) => Err(kind),
        Err(Err(_)) => Err(BAD_GRPC),
        Ok(0) if stream => Err(BAD_SHAPE),
        Ok(n) if stream => Ok(n),
        // A unary call answers with exactly one message.
        Ok(1) => Ok(0),
        Ok(_) => Err(BAD_GRPC),
    }
}

object! {
    struct RpcError<'a> {
        code: i64 = "code",
    }
}

/// A JSON-RPC response whose result has the shape `R`.
struct Rpc<'a, R> {
    result: Option<R>,
    error: Option<RpcError<'a>>,
}

impl<'de: 'a, 'a, R: Deserialize<'de>> Deserialize<'de> for Rpc<'a, R> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a, R>(PhantomData<(&'a (), R)>);
        impl<'de: 'a, 'a, R: Deserialize<'de>> Visitor<'de> for V<'a, R> {
            type Value = Rpc<'a, R>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON-RPC response")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let (mut result, mut error) = (None, None);
                while let Some(key) = map.next_key::<Str<'de>>()? {
                    match key.as_str() {
                        "result" => result = map.next_value()?,
                        "error" => error = map.next_value()?,
                        _ => {
                            map.next_value::<Skip>()?;
                        }
                    }
                }
                Ok(Rpc { result, error })
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

object! {
    struct WithContext<'a> {
        context_id: Str<'a> = "contextId",
    }
}

object! {
    /// v1.0 `SendMessage` result: a message or a task.
    struct V1Result<'a> {
        message: WithContext<'a> = "message",
        task: WithContext<'a> = "task",
    }
}

object! {
    /// v0.3 `message/send` result: a message or a task, by `kind`.
    struct V03Result<'a> {
        kind: Str<'a> = "kind",
        context_id: Str<'a> = "contextId",
    }
}

object! {
    /// v1.0 stream event (a `StreamResponse`): one of four members; in the HTTP+JSON binding
    /// an error event carries `error` instead.
    struct V1Event<'a> {
        task: Skip = "task",
        message: Skip = "message",
        status_update: Skip = "statusUpdate",
        artifact_update: Skip = "artifactUpdate",
        error: RestStatus<'a> = "error",
    }
}

impl V1Event<'_> {
    /// Whether it is one of the four responses.
    fn any(&self) -> bool {
        self.task.is_some()
            || self.message.is_some()
            || self.status_update.is_some()
            || self.artifact_update.is_some()
    }
}

object! {
    /// An A2A HTTP+JSON error body: `{"error": google.rpc.Status}`.
    struct RestError<'a> {
        error: RestStatus<'a> = "error",
    }
}

object! {
    struct RestStatus<'a> {
        details: Vec<RestDetail<'a>> = "details",
    }
}

object! {
    struct RestDetail<'a> {
        reason: Str<'a> = "reason",
    }
}

object! {
    struct ToolsList<'a> {
        tools: Vec<Skip> = "tools",
    }
}

object! {
    struct ToolCall<'a> {
        content: Vec<Skip> = "content",
        is_error: bool = "isError",
    }
}

object! {
    struct Card<'a> {
        name: Str<'a> = "name",
    }
}

object! {
    struct Registered<'a> {
        agent_id: Skip = "agent_id",
        id: Skip = "id",
    }
}

object! {
    /// Whether a server-sent event is a response: a result or an error.
    struct Peek<'a> {
        result: Skip = "result",
        error: Skip = "error",
    }
}

object! {
    struct Init<'a> {
        version: Skip = "protocolVersion",
    }
}

/// What a checked JSON-RPC result must satisfy.
fn rpc<'a, R: Deserialize<'a>>(
    text: &'a [u8],
    ok: impl FnOnce(R) -> Result<(), Kind>,
) -> Result<(), Kind> {
    rpc_with(text, ok)
}

/// [`rpc`], with what the result says.
fn rpc_with<'a, R: Deserialize<'a>, T>(
    text: &'a [u8],
    ok: impl FnOnce(R) -> Result<T, Kind>,
) -> Result<T, Kind> {
    let r: Rpc<R> = serde_json::from_slice(text).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => BAD_SHAPE,
        _ => BAD_JSON,
    })?;
    match (r.error, r.result) {
        (Some(RpcError { code: Some(code), .. }), _) => Err(rpc_error_name(code)),
        (Some(_), _) => Err(BAD_SHAPE),
        (None, Some(result)) => ok(result),
        (None, None) => Err(BAD_SHAPE),
    }
}

fn context_kept(got: Option<&str>, want: Option<&str>) -> Result<(), Kind> {
    match want {
        Some(w) if got != Some(w) => Err(Cow::Borrowed("a2a_context_lost")),
        _ => Ok(()),
    }
}

/// Checks the JSON-RPC result of a non-streaming A2A call.
fn a2a_result(text: &[u8], v03: bool, context: Option<&str>) -> Result<(), Kind> {
    if v03 {
        rpc(text, |r: V03Result<'_>| match r.kind.as_ref().map(Str::as_str) {
            Some("message" | "task") => {
                context_kept(r.context_id.as_ref().map(Str::as_str), context)
            }
            _ => Err(BAD_SHAPE),
        })
    } else {
        rpc(text, |r: V1Result<'_>| match r.message.or(r.task) {
            Some(m) => context_kept(m.context_id.as_ref().map(Str::as_str), context),
            None => Err(BAD_SHAPE),
        })
    }
}

/// Checks one A2A stream event.
fn a2a_event(text: &[u8], v03: bool) -> Result<(), Kind> {
    if v03 {
        rpc(text, |r: V03Result<'_>| match r.kind.as_ref().map(Str::as_str) {
            Some("message" | "task" | "status-update" | "artifact-update") => Ok(()),
            _ => Err(BAD_SHAPE),
        })
    } else {
        rpc(text, |e: V1Event<'_>| if e.any() { Ok(()) } else { Err(BAD_SHAPE) })
    }
}

/// The kind of an A2A HTTP+JSON error: by A2A's reason in its details when it names one, else
/// `fallback`.
fn rest_kind(status: Option<RestStatus<'_>>, fallback: Kind) -> Kind {
    let reasons = status.and_then(|s| s.details).unwrap_or_default();
    reasons
        .iter()
        .filter_map(|d| d.reason.as_ref())
        .find_map(|r| rest_reason_name(r.as_str()))
        .unwrap_or(fallback)
}

/// Why a non-2xx response of the HTTP+JSON binding failed: A2A's reason when its body names
/// one, else the status.
fn rest_failure(head: &Head, body: &[u8]) -> Kind {
    let status = match head.content_type {
        ContentType::Json => {
            serde_json::from_slice::<RestError<'_>>(body).ok().and_then(|e| e.error)
        }
        _ => None,
    };
    rest_kind(status, status_name(head.status))
}

/// Checks one A2A HTTP+JSON stream event.
fn rest_event(text: &[u8]) -> Result<(), Kind> {
    let e: V1Event<'_> = serde_json::from_slice(text).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => BAD_SHAPE,
        _ => BAD_JSON,
    })?;
    match e.error {
        Some(status) => Err(rest_kind(Some(status), Cow::Borrowed("a2a_stream_error"))),
        None if e.any() => Ok(()),
        None => Err(BAD_SHAPE),
    }
}

fn mcp_result(text: &[u8], call: bool) -> Result<(), Kind> {
    if call {
        rpc(text, |r: ToolCall<'_>| match (r.is_error, r.content) {
            (Some(true), _) => Err(Cow::Borrowed("mcp_tool_error")),
            (_, Some(c)) if !c.is_empty() => Ok(()),
            _ => Err(BAD_SHAPE),
        })
    } else {
        rpc(text, |r: ToolsList<'_>| r.tools.map(|_| ()).ok_or(BAD_SHAPE))
    }
}

/// The JSON-RPC answer carried by an MCP response: the body itself, or, as server-sent events,
/// the last event that is a response (requests and notifications from the server may precede
/// it). Checked by `check`.
fn mcp_answer(
    head: &Head,
    body: &[u8],
    scratch: &mut Vec<u8>,
    check: impl Fn(&[u8]) -> Result<(), Kind>,
) -> Result<u32, Kind> {
    match head.content_type {
        ContentType::Json => check(body).map(|()| 0),
        ContentType::EventStream => {
            let mut last: Option<Result<(), Kind>> = None;
            let (n, open) = parse::events(body, scratch, |data| {
                match serde_json::from_slice::<Peek<'_>>(data) {
                    Ok(p) if p.result.is_some() || p.error.is_some() => last = Some(check(data)),
                    Ok(_) => {}
                    Err(_) => last = Some(Err(BAD_SSE)),
                }
            });
            match last {
                _ if open => Err(BAD_SSE),
                Some(r) => r.map(|()| n),
                None => Err(BAD_SSE),
            }
        }
        _ => Err(WRONG_TYPE),
    }
}

object! {
    struct TaskStatusState<'a> {
        state: Str<'a> = "state",
    }
}

object! {
    /// A `Task`: what following it needs.
    struct TaskSeenJson<'a> {
        id: Str<'a> = "id",
        status: TaskStatusState<'a> = "status",
    }
}

object! {
    /// A `SendMessage` answer of a task pattern: the task, or a message (answered at once).
    struct Accepted<'a> {
        message: Skip = "message",
        task: TaskSeenJson<'a> = "task",
    }
}

/// What a task pattern's answer says of its task.
#[derive(Debug, PartialEq, Eq)]
pub enum TaskSeen<'a> {
    /// Submitted or working: its id, to ask about again.
    Working(Cow<'a, str>),
    /// Completed, or answered with a message (no task to follow).
    Ended,
}

/// A task by its state (`TASK_STATE_WORKING`, or v0.3's `working`): an interrupted or
/// unsuccessful end is an error by its state's name.
fn task_state(t: TaskSeenJson<'_>) -> Result<TaskSeen<'_>, Kind> {
    let state = t.status.and_then(|s| s.state).ok_or(BAD_SHAPE)?;
    by_state(state.as_str(), t.id.map(|Str(id)| id))
}

/// A task by the name of its state, with its id.
pub(super) fn by_state<'a>(name: &str, id: Option<Cow<'a, str>>) -> Result<TaskSeen<'a>, Kind> {
    let name = name.strip_prefix("TASK_STATE_").unwrap_or(name);
    let is = |names: &[&str]| names.iter().any(|n| name.eq_ignore_ascii_case(n));
    let kind = |k: &'static str| Err(Cow::Borrowed(k));
    if is(&["submitted", "working"]) {
        return match id {
            Some(id) if !id.is_empty() => Ok(TaskSeen::Working(id)),
            _ => Err(BAD_SHAPE),
        };
    }
    match () {
        _ if is(&["completed"]) => Ok(TaskSeen::Ended),
        _ if is(&["failed"]) => kind("a2a_task_failed"),
        _ if is(&["canceled", "cancelled"]) => kind("a2a_task_canceled"),
        _ if is(&["rejected"]) => kind("a2a_task_rejected"),
        _ if is(&["input_required", "input-required"]) => kind("a2a_task_input_required"),
        _ if is(&["auth_required", "auth-required"]) => kind("a2a_task_auth_required"),
        _ => kind("protocol_bad_task_state"),
    }
}

object! {
    /// A v0.3 task pattern's answer, by `kind`: to `message/send` a task or a message; to
    /// `tasks/get` a task; in a `tasks/resubscribe` stream also a status or artifact update.
    struct V03Seen<'a> {
        kind: Str<'a> = "kind",
        id: Str<'a> = "id",
        status: TaskStatusState<'a> = "status",
    }
}

/// v0.3's answer to `message/send` (`poll` false) or `tasks/get`: a task by its state; a
/// message answers at once.
fn v03_task(r: V03Seen<'_>, poll: bool) -> Result<TaskSeen<'_>, Kind> {
    match r.kind.as_ref().map(Str::as_str) {
        Some("task") => {
            let state = r.status.and_then(|s| s.state).ok_or(BAD_SHAPE)?;
            by_state(state.as_str(), r.id.map(|Str(id)| id))
        }
        Some("message") if !poll => Ok(TaskSeen::Ended),
        _ => Err(BAD_SHAPE),
    }
}

/// The state a v0.3 subscription event tells, if it tells one.
fn v03_sub_state(e: V03Seen<'_>) -> Result<Option<&'static str>, Kind> {
    match (e.kind.as_ref().map(Str::as_str), e.status) {
        (Some("task" | "status-update"), Some(TaskStatusState { state: Some(state), .. })) => {
            Ok(Some(canonical_state(state.as_str())))
        }
        (Some("artifact-update" | "message"), _) => Ok(None),
        _ => Err(BAD_SHAPE),
    }
}

fn accepted(r: Accepted<'_>) -> Result<TaskSeen<'_>, Kind> {
    match (r.task, r.message) {
        (Some(t), _) => task_state(t),
        (None, Some(_)) => Ok(TaskSeen::Ended),
        (None, None) => Err(BAD_SHAPE),
    }
}

/// The state's name in a gRPC `TaskStatus` (its field 1, by number; absent: unspecified).
fn grpc_state(status: &[u8]) -> Result<&'static str, Kind> {
    use crate::grpc::{fields, Field};
    let mut state = 0u64;
    for f in fields(status) {
        if let (1, Field::Varint(v)) = f.map_err(|_| BAD_PROTOBUF)? {
            state = v;
        }
    }
    let name = usize::try_from(state).ok().and_then(|s| crate::grpc::TASK_STATES.get(s));
    Ok(name.copied().unwrap_or("unknown"))
}

/// A gRPC `Task` (its id at 1, its status at 3, the status's state at 1).
fn grpc_task_state(t: &[u8]) -> Result<TaskSeen<'_>, Kind> {
    use crate::grpc::bytes_field;
    let id = bytes_field(t, 1).map_err(|_| BAD_PROTOBUF)?;
    let status = bytes_field(t, 3).map_err(|_| BAD_PROTOBUF)?.ok_or(BAD_SHAPE)?;
    let state = grpc_state(status)?;
    let id = match id.map(std::str::from_utf8) {
        Some(Ok(id)) => Some(Cow::Borrowed(id)),
        Some(Err(_)) => return Err(BAD_PROTOBUF),
        None => None,
    };
    by_state(state, id)
}

/// A state's name as `TASK_STATES` spells it (v1.0's `TASK_STATE_*` and v0.3's names alike);
/// "unknown" for any other.
fn canonical_state(name: &str) -> &'static str {
    crate::grpc::task_state_index(name).map_or("unknown", |i| crate::grpc::TASK_STATES[i])
}

object! {
    struct WithStatus<'a> {
        status: TaskStatusState<'a> = "status",
    }
}

object! {
    /// A subscription's event (a `StreamResponse`): the task, or a status update, carries
    /// the task's state; in the HTTP+JSON binding an error event carries `error`. A push
    /// notification's body is one too, or v0.3's task or update, told by its `kind` (with
    /// its `status`: [`notification`]).
    struct SubEvent<'a> {
        task: WithStatus<'a> = "task",
        status_update: WithStatus<'a> = "statusUpdate",
        message: Skip = "message",
        artifact_update: Skip = "artifactUpdate",
        error: RestStatus<'a> = "error",
        kind: Str<'a> = "kind",
        status: TaskStatusState<'a> = "status",
    }
}

/// The state an event tells, if it tells one.
fn sub_state(e: SubEvent<'_>) -> Result<Option<&'static str>, Kind> {
    let status = e.task.or(e.status_update).and_then(|s| s.status);
    match (status, e.message.is_some() || e.artifact_update.is_some()) {
        (Some(TaskStatusState { state: Some(state), .. }), _) => {
            Ok(Some(canonical_state(state.as_str())))
        }
        (Some(_), _) => Err(BAD_SHAPE),
        (None, true) => Ok(None),
        (None, false) => Err(BAD_SHAPE),
    }
}

/// Judges a `SubscribeToTask`'s answer, a stream of the task's events: where the task stands
/// when the stream ended (the last state an event told; none: still working, subscribed
/// again). The id of a task still working is the one asked about (not read here).
pub fn subscription<'a>(
    p: Pattern,
    head: &Head,
    body: &'a [u8],
    scratch: &mut Vec<u8>,
) -> Result<TaskSeen<'a>, Kind> {
    use crate::grpc::{bytes_field, messages};
    let mut last: Option<&'static str> = None;
    if p.is_grpc() {
        grpc_ok(head)?;
        let walked = messages(body, |m| {
            // A task (1) or a status update (3) carries its status at 3.
            for n in [1, 3] {
                let payload = bytes_field(m, n).map_err(|_| BAD_PROTOBUF)?;
                if let Some(x) = payload {
                    let status = bytes_field(x, 3).map_err(|_| BAD_PROTOBUF)?;
                    last = Some(grpc_state(status.ok_or(BAD_SHAPE)?)?);
                }
            }
            Ok(())
        });
        match walked {
            Err(Ok(kind)) => return Err(kind),
            Err(Err(_)) => return Err(BAD_GRPC),
            Ok(0) => return Err(BAD_SHAPE),
            Ok(_) => {}
        }
    } else {
        if !(200..300).contains(&head.status) {
            return Err(if p.is_a2a_rest() {
                rest_failure(head, body)
            } else {
                status_name(head.status)
            });
        }
        if head.content_type == ContentType::Json && !p.is_a2a_rest() {
            return rpc_with(body, |_: Skip| Err(WRONG_TYPE)); // as a2a:stream's refusals
        }
        if head.content_type != ContentType::EventStream {
            return Err(WRONG_TYPE);
        }
        let mut failed = None;
        let (n, open) = parse::events(body, scratch, |data| {
            if failed.is_some() {
                return;
            }
            let seen = if p.is_a2a_rest() {
                match serde_json::from_slice::<SubEvent<'_>>(data) {
                    Ok(SubEvent { error: Some(status), .. }) => {
                        Err(rest_kind(Some(status), Cow::Borrowed("a2a_stream_error")))
                    }
                    Ok(e) => sub_state(e),
                    Err(e) if e.is_data() => Err(BAD_SHAPE),
                    Err(_) => Err(BAD_SSE),
                }
            } else if p.is_v03() {
                rpc_with(data, v03_sub_state)
            } else {
                rpc_with(data, sub_state)
            };
            match seen {
                Ok(Some(state)) => last = Some(state),
                Ok(None) => {}
                Err(k) => failed = Some(if k == BAD_JSON { BAD_SSE } else { k }),
            }
        });
        match failed {
            Some(k) => return Err(k),
            None if open || n == 0 => return Err(BAD_SSE),
            None => {}
        }
    }
    by_state(last.unwrap_or("WORKING"), Some(Cow::Borrowed("subscribed")))
}

/// Judges a push notification's body, a `StreamResponse` as the HTTP+JSON binding writes it
/// or (with a `kind`) v0.3's task or update: the state it tells when that is an end (not
/// submitted or working), as `TASK_STATES` spells it; `None` for a state still under way, or
/// an event that tells none (an artifact).
pub fn notification(body: &[u8]) -> Result<Option<&'static str>, Kind> {
    let mut e: SubEvent<'_> =
        serde_json::from_slice(body).map_err(|e| if e.is_data() { BAD_SHAPE } else { BAD_JSON })?;
    if let Some(status) = e.error.take() {
        return Err(rest_kind(Some(status), Cow::Borrowed("a2a_stream_error")));
    }
    let state = if e.kind.is_some() {
        let _body = std::marker::PhantomData;
        v03_sub_state(V03Seen { kind: e.kind, id: None, status: e.status, _body })
    } else {
        sub_state(e)
    };
    Ok(state?.filter(|s| !matches!(*s, "SUBMITTED" | "WORKING")))
}

/// Judges a gRPC answer of a task pattern: one `SendMessageResponse` (a task, or a message),
/// or, to a `GetTask`, one `Task`.
fn grpc_task<'a>(head: &Head, body: &'a [u8], poll: bool) -> Result<TaskSeen<'a>, Kind> {
    use crate::grpc::{bytes_field, messages};
    grpc_ok(head)?;
    let mut seen = Err(BAD_SHAPE);
    let walked = messages(body, |m| {
        let task = if poll {
            Some(m)
        } else {
            // `payload`: a task (1), or a message (2): answered at once.
            match (bytes_field(m, 1), bytes_field(m, 2)) {
                (Err(_), _) | (_, Err(_)) => return Err(BAD_PROTOBUF),
                (Ok(Some(t)), _) => Some(t),
                (Ok(None), Ok(Some(_))) => None,
                (Ok(None), Ok(None)) => return Err(BAD_SHAPE),
            }
        };
        seen = task.map_or(Ok(TaskSeen::Ended), grpc_task_state);
        Ok(())
    });
    match walked {
        Err(Ok(kind)) => Err(kind),
        Err(Err(_)) => Err(BAD_GRPC),
        // A unary call answers with exactly one message.
        Ok(1) => seen,
        Ok(_) => Err(BAD_GRPC),
    }
}

/// Judges the answer to a task pattern's request: its `SendMessage` (`poll` false: a task, or
/// a message), or a `GetTask` (a task).
pub fn task<'a>(p: Pattern, head: &Head, body: &'a [u8], poll: bool) -> Result<TaskSeen<'a>, Kind> {
    if p.is_grpc() {
        return grpc_task(head, body, poll);
    }
    if !(200..300).contains(&head.status) {
        return Err(if p.is_a2a_rest() {
            rest_failure(head, body)
        } else {
            status_name(head.status)
        });
    }
    if head.content_type != ContentType::Json {
        return Err(WRONG_TYPE);
    }
    let shape = |e: serde_json::Error| if e.is_data() { BAD_SHAPE } else { BAD_JSON };
    match (p.is_a2a_rest(), poll) {
        _ if p.is_v03() => rpc_with(body, |r| v03_task(r, poll)),
        (false, false) => rpc_with(body, accepted),
        (false, true) => rpc_with(body, task_state),
        (true, false) => accepted(serde_json::from_slice(body).map_err(shape)?),
        (true, true) => task_state(serde_json::from_slice(body).map_err(shape)?),
    }
}

/// Judges the response to a request of pattern `p`: `Ok(events)` (server-sent events counted
/// for streams), or the error kind. `context` is the conversation's context id, which the
/// answer must keep.
pub fn judge(
    p: Pattern,
    head: &Head,
    body: &[u8],
    context: Option<&str>,
    scratch: &mut Vec<u8>,
) -> Result<u32, Kind> {
    if !(200..300).contains(&head.status) {
        if p.is_a2a_rest() {
            return Err(rest_failure(head, body));
        }
        return Err(status_name(head.status));
    }
    let json = || if head.content_type == ContentType::Json { Ok(()) } else { Err(WRONG_TYPE) };
    match p {
        Pattern::Health | Pattern::RegistryHealth => Ok(0),
        Pattern::AgentCard | Pattern::A2aRestExtendedCard | Pattern::A2aV03RestExtendedCard => {
            json()?;
            match serde_json::from_slice::<Card<'_>>(body) {
                Ok(card) => named(card),
                Err(e) if e.is_data() => Err(BAD_SHAPE),
                Err(_) => Err(BAD_JSON),
            }
        }
        Pattern::A2aMessage
        | Pattern::A2aConversation
        | Pattern::A2aV03Message
        | Pattern::A2aV03Conversation => {
            json()?;
            a2a_result(body, p.is_v03(), context).map(|()| 0)
        }
        Pattern::A2aRestMessage
        | Pattern::A2aRestConversation
        | Pattern::A2aV03RestMessage
        | Pattern::A2aV03RestConversation => {
            json()?;
            match serde_json::from_slice::<V1Result<'_>>(body) {
                Ok(r) => match r.message.or(r.task) {
                    Some(m) => {
                        context_kept(m.context_id.as_ref().map(Str::as_str), context).map(|()| 0)
                    }
                    None => Err(BAD_SHAPE),
                },
                Err(e) if e.is_data() => Err(BAD_SHAPE),
                Err(_) => Err(BAD_JSON),
            }
        }
        Pattern::A2aStream
        | Pattern::A2aV03Stream
        | Pattern::A2aRestStream
        | Pattern::A2aV03RestStream => {
            if head.content_type == ContentType::Json && !p.is_a2a_rest() {
                // A refusal as one JSON-RPC error (as servers answer a stream they will not
                // start): by its code; a result is not a stream.
                return rpc_with(body, |_: Skip| Err(WRONG_TYPE));
            }
            if head.content_type != ContentType::EventStream {
                return Err(WRONG_TYPE);
            }
            let mut failed = None;
            let (n, open) = parse::events(body, scratch, |data| {
                if failed.is_none() {
                    let checked = match p {
                        Pattern::A2aRestStream | Pattern::A2aV03RestStream => rest_event(data),
                        _ => a2a_event(data, p == Pattern::A2aV03Stream),
                    };
                    failed = checked.err().map(|k| if k == BAD_JSON { BAD_SSE } else { k });
                }
            });
            match failed {
                Some(k) => Err(k),
                None if open || n == 0 => Err(BAD_SSE),
                None => Ok(n),
            }
        }
        Pattern::McpToolsList => mcp_answer(head, body, scratch, |t| mcp_result(t, false)),
        Pattern::McpToolsCall => mcp_answer(head, body, scratch, |t| mcp_result(t, true)),
        Pattern::RegistryRegister => {
            json()?;
            match serde_json::from_slice::<Registered<'_>>(body) {
                Ok(r) if r.agent_id.is_some() || r.id.is_some() => Ok(0),
                Ok(_) => Err(BAD_SHAPE),
                Err(e) if e.is_data() => Err(BAD_SHAPE),
                Err(_) => Err(BAD_JSON),
            }
        }
        Pattern::RegistryGet | Pattern::RegistryList | Pattern::RegistrySearch => {
            json()?;
            serde_json::from_slice::<Skip>(body).map(|_| 0).map_err(|_| BAD_JSON)
        }
        Pattern::A2aGrpcMessage
        | Pattern::A2aGrpcStream
        | Pattern::A2aGrpcConversation
        | Pattern::A2aV03GrpcMessage
        | Pattern::A2aV03GrpcStream
        | Pattern::A2aV03GrpcConversation => grpc_answer(p, head, body, context),
        // The adapter follows a task to its end ([`task`]); here, its first answer alone.
        Pattern::A2aTask
        | Pattern::A2aRestTask
        | Pattern::A2aGrpcTask
        | Pattern::A2aSubscribe
        | Pattern::A2aRestSubscribe
        | Pattern::A2aGrpcSubscribe
        | Pattern::A2aV03Task
        | Pattern::A2aV03Subscribe
        | Pattern::A2aV03Push
        | Pattern::A2aPush
        | Pattern::A2aRestPush
        | Pattern::A2aGrpcPush
        | Pattern::A2aCancel
        | Pattern::A2aRestCancel
        | Pattern::A2aGrpcCancel
        | Pattern::A2aV03Cancel
        | Pattern::A2aV03RestTask
        | Pattern::A2aV03RestSubscribe
        | Pattern::A2aV03RestPush
        | Pattern::A2aV03RestCancel
        | Pattern::A2aV03GrpcTask
        | Pattern::A2aV03GrpcSubscribe
        | Pattern::A2aV03GrpcPush
        | Pattern::A2aV03GrpcCancel => task(p, head, body, false).map(|_| 0),
        Pattern::A2aListTasks | Pattern::A2aRestListTasks | Pattern::A2aGrpcListTasks => {
            listed(p, head, body).map(|_| 0)
        }
        Pattern::A2aExtendedCard | Pattern::A2aV03ExtendedCard => {
            json()?;
            rpc_with(body, named)
        }
        Pattern::A2aGrpcExtendedCard | Pattern::A2aV03GrpcAgentCard => grpc_one(head, body, |m| {
            // An `AgentCard` (v1.0's or v0.3's): its name (field 1) a string that is not empty.
            match crate::grpc::bytes_field(m, 1) {
                Ok(Some(name)) if !name.is_empty() && std::str::from_utf8(name).is_ok() => Ok(()),
                Ok(_) => Err(BAD_SHAPE),
                Err(_) => Err(BAD_PROTOBUF),
            }
        }),
    }
}

/// An agent card's check: it has a name.
fn named(card: Card<'_>) -> Result<u32, Kind> {
    match card.name {
        Some(n) if !n.as_str().is_empty() => Ok(0),
        _ => Err(BAD_SHAPE),
    }
}

object! {
    /// A `ListTasksResponse` (ProtoJSON): an object whose `tasks`, when there (an empty page
    /// may leave it out), is a list (its tasks not read: checked by their type alone).
    #[allow(dead_code)]
    struct Listed<'a> {
        tasks: Vec<Skip> = "tasks",
        next: Str<'a> = "nextPageToken",
    }
}

/// Judges a list pattern's answer (a page of `ListTasks`): the next page's token (`None` or
/// empty after the last page), or the error kind.
pub(crate) fn listed<'a>(p: Pattern, head: &Head, body: &'a [u8]) -> Result<Option<Str<'a>>, Kind> {
    if !(200..300).contains(&head.status) {
        if p.is_a2a_rest() {
            return Err(rest_failure(head, body));
        }
        return Err(status_name(head.status));
    }
    if p.is_grpc() {
        let mut next = None;
        grpc_one(head, body, |m| {
            // `ListTasksResponse.next_page_token` (field 2).
            next = match crate::grpc::bytes_field(m, 2) {
                Ok(Some(t)) => Some(std::str::from_utf8(t).map_err(|_| BAD_SHAPE)?),
                Ok(None) => None,
                Err(_) => return Err(BAD_PROTOBUF),
            };
            Ok(())
        })?;
        return Ok(next.map(|t| Str(Cow::Borrowed(t))));
    }
    if head.content_type != ContentType::Json {
        return Err(WRONG_TYPE);
    }
    if p.is_a2a_rest() {
        let shape = |e: serde_json::Error| if e.is_data() { BAD_SHAPE } else { BAD_JSON };
        return serde_json::from_slice::<Listed>(body).map(|l| l.next).map_err(shape);
    }
    rpc_with(body, |l: Listed<'a>| Ok(l.next))
}

/// Checks a gRPC answer's head and trailers: gRPC's content type and status 0; else the error,
/// named by A2A's reason when the status details give one.
fn grpc_ok(head: &Head) -> Result<(), Kind> {
    if head.content_type != ContentType::Grpc {
        return Err(WRONG_TYPE);
    }
    let Some(end) = head.grpc else { return Err(NO_GRPC_STATUS) };
    if end.code != 0 {
        return Err(end.a2a.map_or_else(|| grpc_status_name(end.code), rpc_error_name));
    }
    Ok(())
}

/// Judges a unary gRPC answer (`ListTasksResponse`, `AgentCard`): exactly one message, whose
/// fields read as protobuf and which `check` passes.
fn grpc_one<'b>(
    head: &Head,
    body: &'b [u8],
    mut check: impl FnMut(&'b [u8]) -> Result<(), Kind>,
) -> Result<u32, Kind> {
    use crate::grpc::{fields, messages};
    grpc_ok(head)?;
    let walked = messages(body, |m| {
        fields(m).try_for_each(|f| f.map(|_| ())).map_err(|_| BAD_PROTOBUF)?;
        check(m)
    });
    match walked {
        Err(Ok(kind)) => Err(kind),
        Err(Err(_)) => Err(BAD_GRPC),
        Ok(1) => Ok(0),
        Ok(_) => Err(BAD_GRPC),
    }
}

/// Whether an MCP `initialize` answer checks out (2xx, a result with a protocol version).
pub fn initialized(head: &Head, body: &[u8], scratch: &mut Vec<u8>) -> Result<(), Kind> {
    if !(200..300).contains(&head.status) {
        return Err(status_name(head.status));
    }
    let check = |t: &[u8]| rpc(t, |r: Init<'_>| r.version.map(|_| ()).ok_or(BAD_SHAPE));
    mcp_answer(head, body, scratch, check).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::http::parse::Framing;

    fn head(status: u16, content_type: ContentType) -> Head {
        Head {
            status,
            content_type,
            head_len: 0,
            framing: Framing::Length(0),
            close: false,
            session: None,
            grpc: None,
            coding: Default::default(),
        }
    }

    #[test]
    fn a2a_answers_are_checked_by_shape_and_error_code() {
        // Proves the A2A checks: a v1.0 message or task is an answer; a JSON-RPC error in a
        // 200 is an error named by its code; a result of another shape, a wrong content type
        // or a lost conversation context is an error; v0.3 goes by `kind`.
        let mut s = Vec::new();
        let ok = head(200, ContentType::Json);
        let msg = br#"{"jsonrpc":"2.0","id":1,"result":{"message":{"contextId":"c1","parts":[]}}}"#;
        assert_eq!(judge(Pattern::A2aMessage, &ok, msg, None, &mut s), Ok(0));
        assert_eq!(judge(Pattern::A2aConversation, &ok, msg, Some("c1"), &mut s), Ok(0));
        assert_eq!(
            judge(Pattern::A2aConversation, &ok, msg, Some("c2"), &mut s).unwrap_err(),
            "a2a_context_lost"
        );
        let err = br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32001,"message":"nope"}}"#;
        assert_eq!(
            judge(Pattern::A2aMessage, &ok, err, None, &mut s).unwrap_err(),
            "a2a_task_not_found"
        );
        let odd = br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32050,"message":"x"}}"#;
        assert_eq!(
            judge(Pattern::A2aMessage, &ok, odd, None, &mut s).unwrap_err(),
            "jsonrpc_-32050"
        );
        let other = br#"{"jsonrpc":"2.0","id":1,"result":{"status":"fine"}}"#;
        assert_eq!(judge(Pattern::A2aMessage, &ok, other, None, &mut s).unwrap_err(), BAD_SHAPE);
        assert_eq!(judge(Pattern::A2aMessage, &ok, b"{oops", None, &mut s).unwrap_err(), BAD_JSON);
        let html = head(200, ContentType::Other);
        assert_eq!(judge(Pattern::A2aMessage, &html, msg, None, &mut s).unwrap_err(), WRONG_TYPE);
        assert_eq!(
            judge(Pattern::A2aMessage, &head(503, ContentType::Json), msg, None, &mut s)
                .unwrap_err(),
            "http_503"
        );
        let v03 =
            br#"{"jsonrpc":"2.0","id":1,"result":{"kind":"message","role":"agent","parts":[]}}"#;
        assert_eq!(judge(Pattern::A2aV03Message, &ok, v03, None, &mut s), Ok(0));
        assert_eq!(judge(Pattern::A2aV03Message, &ok, msg, None, &mut s).unwrap_err(), BAD_SHAPE);
        // A v0.3 conversation keeps its context by `kind`'s shapes (JSON-RPC) and by v1.0's
        // (the HTTP+JSON binding, its parts in `content`).
        let v03 = br#"{"jsonrpc":"2.0","id":1,"result":{"kind":"message","contextId":"c1"}}"#;
        let rest = br#"{"message":{"contextId":"c1","content":[{"text":"hi"}]}}"#;
        for (p, body) in
            [(Pattern::A2aV03Conversation, &v03[..]), (Pattern::A2aV03RestConversation, rest)]
        {
            assert_eq!(judge(p, &ok, body, Some("c1"), &mut s), Ok(0), "{p:?}");
            let lost = judge(p, &ok, body, Some("c2"), &mut s);
            assert_eq!(lost.unwrap_err(), "a2a_context_lost", "{p:?}");
        }
    }

    #[test]
    fn a_task_is_followed_by_its_state_and_an_unsuccessful_end_named() {
        // Proves the task patterns' checks: a SendMessage's answer is a task to follow (its
        // id), or an end (a completed task, or a message answering at once); a GetTask's answer
        // is the task; an interrupted or unsuccessful state is an error by its name (v1.0's
        // TASK_STATE_* and v0.3's names alike); JSON-RPC errors and HTTP+JSON statuses by name.
        let ok = head(200, ContentType::Json);
        let rpc = |result: &str| format!(r#"{{"jsonrpc":"2.0","id":1,"result":{result}}}"#);
        let working = rpc(r#"{"task":{"id":"t\"1","status":{"state":"TASK_STATE_WORKING"}}}"#);
        let got = task(Pattern::A2aTask, &ok, working.as_bytes(), false);
        assert_eq!(got, Ok(TaskSeen::Working("t\"1".into())));
        let message = rpc(r#"{"message":{"role":"ROLE_AGENT","parts":[{"text":"x"}]}}"#);
        assert_eq!(task(Pattern::A2aTask, &ok, message.as_bytes(), false), Ok(TaskSeen::Ended));
        for (state, want) in [
            ("TASK_STATE_SUBMITTED", Ok(Some("t"))),
            ("working", Ok(Some("t"))),
            ("TASK_STATE_COMPLETED", Ok(None)),
            ("TASK_STATE_FAILED", Err("a2a_task_failed")),
            ("canceled", Err("a2a_task_canceled")),
            ("TASK_STATE_REJECTED", Err("a2a_task_rejected")),
            ("TASK_STATE_INPUT_REQUIRED", Err("a2a_task_input_required")),
            ("auth-required", Err("a2a_task_auth_required")),
            ("TASK_STATE_UNSPECIFIED", Err("protocol_bad_task_state")),
        ] {
            // Working (its id), ended, or an error's name.
            let seen = |r: Result<TaskSeen<'_>, Kind>| match r {
                Ok(TaskSeen::Working(id)) => Ok(Some(id.into_owned())),
                Ok(TaskSeen::Ended) => Ok(None),
                Err(k) => Err(k.into_owned()),
            };
            let want = want.map(|w| w.map(String::from)).map_err(String::from);
            let t = format!(r#"{{"id":"t","status":{{"state":"{state}"}}}}"#);
            let body = rpc(&t);
            assert_eq!(seen(task(Pattern::A2aTask, &ok, body.as_bytes(), true)), want, "{state}");
            assert_eq!(seen(task(Pattern::A2aRestTask, &ok, t.as_bytes(), true)), want, "{state}");
            let v03 = rpc(&format!(r#"{{"kind":"task","id":"t","status":{{"state":"{state}"}}}}"#));
            let got = seen(task(Pattern::A2aV03Task, &ok, v03.as_bytes(), true));
            assert_eq!(got, want, "v0.3 {state}");
        }
        // v0.3's message/send: the task itself (by its kind), or a message answering at once;
        // tasks/get answers with a task only; v1.0's shapes are not v0.3's.
        let submitted = rpc(r#"{"kind":"task","id":"v","status":{"state":"submitted"}}"#);
        let got = task(Pattern::A2aV03Subscribe, &ok, submitted.as_bytes(), false);
        assert_eq!(got, Ok(TaskSeen::Working("v".into())));
        let reply = rpc(r#"{"kind":"message","role":"agent","parts":[]}"#);
        assert_eq!(task(Pattern::A2aV03Task, &ok, reply.as_bytes(), false), Ok(TaskSeen::Ended));
        assert_eq!(task(Pattern::A2aV03Task, &ok, reply.as_bytes(), true), Err(BAD_SHAPE));
        assert_eq!(task(Pattern::A2aV03Task, &ok, working.as_bytes(), false), Err(BAD_SHAPE));
        let unkind = rpc(r#"{"id":"v","status":{"state":"working"}}"#);
        assert_eq!(task(Pattern::A2aV03Task, &ok, unkind.as_bytes(), true), Err(BAD_SHAPE));
        let missing = br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32001,"message":"no task"}}"#;
        let got = task(Pattern::A2aV03Task, &ok, missing, true);
        assert_eq!(got.unwrap_err(), "a2a_task_not_found");
        let no_id = rpc(r#"{"task":{"status":{"state":"TASK_STATE_WORKING"}}}"#);
        assert_eq!(task(Pattern::A2aTask, &ok, no_id.as_bytes(), false), Err(BAD_SHAPE));
        let no_state = r#"{"task":{"id":"t"}}"#;
        assert_eq!(task(Pattern::A2aRestTask, &ok, no_state.as_bytes(), false), Err(BAD_SHAPE));
        assert_eq!(task(Pattern::A2aRestTask, &ok, b"{oops", true), Err(BAD_JSON));
        let missing = br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32001,"message":"no task"}}"#;
        let got = task(Pattern::A2aTask, &ok, missing, true);
        assert_eq!(got.unwrap_err(), "a2a_task_not_found");
        let status = br#"{"error":{"code":404,"details":[{"reason":"TASK_NOT_FOUND"}]}}"#;
        let got = task(Pattern::A2aRestTask, &head(404, ContentType::Json), status, true);
        assert_eq!(got.unwrap_err(), "a2a_task_not_found");
        let got = task(Pattern::A2aTask, &head(502, ContentType::Other), b"", true);
        assert_eq!(got.unwrap_err(), "http_502");
        let html = head(200, ContentType::Other);
        assert_eq!(task(Pattern::A2aTask, &html, working.as_bytes(), false), Err(WRONG_TYPE));
        // The gRPC binding: a SendMessageResponse's task or message, a GetTask's Task, by
        // the state's number; the status first.
        use crate::grpc::frame;
        use crate::loadgen::http::parse::GrpcEnd;
        use prost::Message as _;
        let grpc = |code: u32| Head {
            grpc: Some(GrpcEnd { code, a2a: None }),
            ..head(200, ContentType::Grpc)
        };
        let framed = |m: &dyn Fn(&mut Vec<u8>)| {
            let mut b = Vec::new();
            frame(&mut b, m);
            b
        };
        let proto = |state: i32| crate::grpc::Task {
            id: "t-1".into(),
            status: Some(crate::grpc::TaskStatus { state }),
            ..Default::default()
        };
        let accepted = crate::grpc::SendMessageResponse { task: Some(proto(1)), message: None };
        let body = framed(&|b| accepted.encode_raw(b));
        let got = task(Pattern::A2aGrpcTask, &grpc(0), &body, false);
        assert_eq!(got, Ok(TaskSeen::Working("t-1".into())));
        let at_once = crate::grpc::SendMessageResponse {
            task: None,
            message: Some(crate::grpc::Message::default()),
        };
        let body = framed(&|b| at_once.encode_raw(b));
        assert_eq!(task(Pattern::A2aGrpcTask, &grpc(0), &body, false), Ok(TaskSeen::Ended));
        for (state, want) in [
            (2, Ok(Some("t-1"))),
            (3, Ok(None)),
            (4, Err("a2a_task_failed")),
            (6, Err("a2a_task_input_required")),
            (0, Err("protocol_bad_task_state")),
            (99, Err("protocol_bad_task_state")),
        ] {
            let t = proto(state);
            let body = framed(&|b| t.encode_raw(b));
            let got = match task(Pattern::A2aGrpcTask, &grpc(0), &body, true) {
                Ok(TaskSeen::Working(id)) => Ok(Some(id.into_owned())),
                Ok(TaskSeen::Ended) => Ok(None),
                Err(k) => Err(k.into_owned()),
            };
            assert_eq!(got, want.map(|w| w.map(String::from)).map_err(String::from), "{state}");
        }
        let got = task(Pattern::A2aGrpcTask, &grpc(5), b"", true);
        assert_eq!(got.unwrap_err(), "grpc_not_found");
        let twice =
            [framed(&|b| proto(3).encode_raw(b)), framed(&|b| proto(3).encode_raw(b))].concat();
        assert_eq!(task(Pattern::A2aGrpcTask, &grpc(0), &twice, true), Err(BAD_GRPC));
        let no_status = head(200, ContentType::Grpc);
        assert_eq!(task(Pattern::A2aGrpcTask, &no_status, &body, true), Err(NO_GRPC_STATUS));
    }

    #[test]
    fn a_subscription_tells_where_its_task_stood_when_its_stream_ended() {
        // Proves SubscribeToTask's answers judged: the last state an event told (the task's,
        // or a status update's) decides, in JSON-RPC events, HTTP+JSON events and a gRPC
        // stream; a stream that ended with the task still working (or telling no state) asks
        // again; an error event, or a refusal, is an error by its name; no event is bad SSE.
        let mut s = Vec::new();
        let sse = head(200, ContentType::EventStream);
        let seen = |r: Result<TaskSeen<'_>, Kind>| match r {
            Ok(TaskSeen::Working(_)) => Ok("working"),
            Ok(TaskSeen::Ended) => Ok("ended"),
            Err(k) => Err(k.into_owned()),
        };
        let rpc = |e: &str| format!("data: {{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{e}}}\n\n");
        let task = r#"{"task":{"id":"t","status":{"state":"TASK_STATE_WORKING"}}}"#;
        let art = r#"{"artifactUpdate":{"taskId":"t","artifact":{"parts":[{"text":"x"}]}}}"#;
        let done = r#"{"statusUpdate":{"taskId":"t","status":{"state":"TASK_STATE_COMPLETED"}}}"#;
        let failed = r#"{"statusUpdate":{"taskId":"t","status":{"state":"failed"}}}"#;
        for (events, want) in [
            (vec![task, art, done], Ok("ended")),
            (vec![task], Ok("working")),
            (vec![art], Ok("working")),
            (vec![task, failed], Err("a2a_task_failed".to_string())),
        ] {
            let json: String = events.iter().map(|e| rpc(e)).collect();
            let got = subscription(Pattern::A2aSubscribe, &sse, json.as_bytes(), &mut s);
            assert_eq!(seen(got), want, "{json}");
            let rest: String = events.iter().map(|e| format!("data: {e}\r\n\r\n")).collect();
            let got = subscription(Pattern::A2aRestSubscribe, &sse, rest.as_bytes(), &mut s);
            assert_eq!(seen(got), want, "{rest}");
        }
        let refused = br#"data: {"jsonrpc":"2.0","id":1,"error":{"code":-32004,"message":"ended"}}

"#;
        let got = subscription(Pattern::A2aSubscribe, &sse, refused, &mut s);
        assert_eq!(seen(got), Err("a2a_unsupported_operation".into()));
        // v0.3's tasks/resubscribe: events by kind, lower-case states.
        {
            let task = r#"{"kind":"task","id":"t","status":{"state":"working"}}"#;
            let art = r#"{"kind":"artifact-update","taskId":"t","artifact":{"parts":[]}}"#;
            let done = r#"{"kind":"status-update","taskId":"t","status":{"state":"completed"},"final":true}"#;
            let failed = r#"{"kind":"status-update","taskId":"t","status":{"state":"failed"}}"#;
            let v1 = r#"{"statusUpdate":{"taskId":"t","status":{"state":"TASK_STATE_COMPLETED"}}}"#;
            let stateless = r#"{"kind":"status-update","taskId":"t"}"#;
            for (events, want) in [
                (vec![task, art, done], Ok("ended")),
                (vec![task, art], Ok("working")),
                (vec![task, failed], Err("a2a_task_failed")),
                (vec![task, v1], Err("protocol_bad_shape")),
                (vec![stateless], Err("protocol_bad_shape")),
            ] {
                let json: String = events.iter().map(|e| rpc(e)).collect();
                let got = subscription(Pattern::A2aV03Subscribe, &sse, json.as_bytes(), &mut s);
                assert_eq!(seen(got), want.map_err(String::from), "{json}");
            }
            let got = subscription(Pattern::A2aV03Subscribe, &sse, refused, &mut s);
            assert_eq!(seen(got), Err("a2a_unsupported_operation".into()));
        }
        let rest_error =
            b"data: {\"error\":{\"code\":404,\"details\":[{\"reason\":\"TASK_NOT_FOUND\"}]}}\n\n";
        let got = subscription(Pattern::A2aRestSubscribe, &sse, rest_error, &mut s);
        assert_eq!(seen(got), Err("a2a_task_not_found".into()));
        assert_eq!(
            seen(subscription(Pattern::A2aSubscribe, &sse, b"", &mut s)),
            Err(BAD_SSE.into())
        );
        let json = head(200, ContentType::Json);
        let one = format!(r#"{{"jsonrpc":"2.0","id":1,"result":{task}}}"#);
        let got = subscription(Pattern::A2aSubscribe, &json, one.as_bytes(), &mut s);
        assert_eq!(seen(got), Err(WRONG_TYPE.into()));
        let refused_json = br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32004,"message":"ended"}}"#;
        let got = subscription(Pattern::A2aSubscribe, &json, refused_json, &mut s);
        assert_eq!(seen(got), Err("a2a_unsupported_operation".into()));
        // gRPC: StreamResponses, the state by number.
        use crate::grpc::frame;
        use crate::loadgen::http::parse::GrpcEnd;
        use prost::Message as _;
        let ok =
            Head { grpc: Some(GrpcEnd { code: 0, a2a: None }), ..head(200, ContentType::Grpc) };
        let status = |state| Some(crate::grpc::TaskStatus { state });
        let events = [
            crate::grpc::StreamResponse {
                task: Some(crate::grpc::Task {
                    id: "t".into(),
                    status: status(2),
                    ..Default::default()
                }),
                ..Default::default()
            },
            crate::grpc::StreamResponse {
                status_update: Some(crate::grpc::TaskStatusUpdateEvent {
                    task_id: "t".into(),
                    context_id: String::new(),
                    status: status(3),
                }),
                ..Default::default()
            },
        ];
        let mut body = Vec::new();
        for e in &events {
            frame(&mut body, |b| e.encode_raw(b));
        }
        assert_eq!(seen(subscription(Pattern::A2aGrpcSubscribe, &ok, &body, &mut s)), Ok("ended"));
        let mut first = Vec::new();
        frame(&mut first, |b| events[0].encode_raw(b));
        assert_eq!(
            seen(subscription(Pattern::A2aGrpcSubscribe, &ok, &first, &mut s)),
            Ok("working")
        );
        let refused = Head { grpc: Some(GrpcEnd { code: 9, a2a: Some(-32004) }), ..ok };
        let got = subscription(Pattern::A2aGrpcSubscribe, &refused, b"", &mut s);
        assert_eq!(seen(got), Err("a2a_unsupported_operation".into()));
    }

    #[test]
    fn a_notification_tells_a_task_s_end_or_nothing() {
        // Proves push notifications judged: a task or status update in an end state gives
        // that state (v1.0's or v0.3's spelling); one still under way, or an artifact, gives
        // nothing; anything else is an error by kind.
        let n = |s: &str| notification(s.as_bytes());
        let done = r#"{"statusUpdate":{"taskId":"t","status":{"state":"TASK_STATE_COMPLETED"}}}"#;
        assert_eq!(n(done), Ok(Some("COMPLETED")));
        assert_eq!(n(r#"{"task":{"id":"t","status":{"state":"failed"}}}"#), Ok(Some("FAILED")));
        assert_eq!(n(r#"{"task":{"id":"t","status":{"state":"TASK_STATE_WORKING"}}}"#), Ok(None));
        assert_eq!(n(r#"{"statusUpdate":{"status":{"state":"submitted"}}}"#), Ok(None));
        assert_eq!(n(r#"{"artifactUpdate":{"taskId":"t","artifact":{}}}"#), Ok(None));
        assert_eq!(n(r#"{"task":{"id":"t","status":{"state":"bogus"}}}"#), Ok(Some("unknown")));
        assert_eq!(n(r#"{"task":{"id":"t"}}"#), Err(BAD_SHAPE));
        assert_eq!(n(r#"{"other":1}"#), Err(BAD_SHAPE));
        assert_eq!(n("{oops"), Err(BAD_JSON));
        // v0.3: the task itself, or an update, by its kind.
        let task = r#"{"kind":"task","id":"t","status":{"state":"completed"},"artifacts":[]}"#;
        assert_eq!(n(task), Ok(Some("COMPLETED")));
        assert_eq!(n(r#"{"kind":"task","id":"t","status":{"state":"working"}}"#), Ok(None));
        let update = r#"{"kind":"status-update","taskId":"t","status":{"state":"canceled"}}"#;
        assert_eq!(n(update), Ok(Some("CANCELED")));
        assert_eq!(n(r#"{"kind":"artifact-update","taskId":"t","artifact":{}}"#), Ok(None));
        assert_eq!(n(r#"{"kind":"task","id":"t"}"#), Err(BAD_SHAPE));
        assert_eq!(n(r#"{"kind":"other","status":{"state":"completed"}}"#), Err(BAD_SHAPE));
        // A v0.3 status at the top, without its kind, is no shape either version knows.
        assert_eq!(n(r#"{"id":"t","status":{"state":"completed"}}"#), Err(BAD_SHAPE));
    }

    #[test]
    fn a_list_of_tasks_is_an_object_whose_tasks_are_a_list() {
        // Proves the list patterns' checks: a page (its tasks a list, or left out when empty)
        // is an answer in each binding; tasks that are not a list, or a body that is not an
        // object, are a bad shape; an error is named as the binding names it; a gRPC answer
        // is one readable message.
        use crate::grpc;
        use crate::loadgen::http::parse::GrpcEnd;
        let mut s = Vec::new();
        let ok = head(200, ContentType::Json);
        let judged = |p, body: &str, s: &mut Vec<u8>| judge(p, &ok, body.as_bytes(), None, s);
        for page in [r#"{"tasks":[{"id":"t"}],"nextPageToken":""}"#, "{}", r#"{"tasks":[]}"#] {
            let rpc = format!(r#"{{"jsonrpc":"2.0","id":1,"result":{page}}}"#);
            assert_eq!(judged(Pattern::A2aListTasks, &rpc, &mut s), Ok(0), "{rpc}");
            assert_eq!(judged(Pattern::A2aRestListTasks, page, &mut s), Ok(0), "{page}");
        }
        let bad = r#"{"jsonrpc":"2.0","id":1,"result":{"tasks":{"id":"t"}}}"#;
        assert_eq!(judged(Pattern::A2aListTasks, bad, &mut s), Err(BAD_SHAPE));
        assert_eq!(judged(Pattern::A2aRestListTasks, "[]", &mut s), Err(BAD_SHAPE));
        let refused = r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"no"}}"#;
        let got = judged(Pattern::A2aListTasks, refused, &mut s);
        assert_eq!(got, Err(rpc_error_name(-32601)));
        let grpc_ok =
            Head { grpc: Some(GrpcEnd { code: 0, a2a: None }), ..head(200, ContentType::Grpc) };
        let mut page = Vec::new();
        let list = grpc::ListTasksResponse { total_size: 3, ..Default::default() };
        grpc::frame(&mut page, |b| prost::Message::encode_raw(&list, b));
        let got = judge(Pattern::A2aGrpcListTasks, &grpc_ok, &page, None, &mut s);
        assert_eq!(got, Ok(0));
        let twice = [&page[..], &page[..]].concat();
        let got = judge(Pattern::A2aGrpcListTasks, &grpc_ok, &twice, None, &mut s);
        assert_eq!(got, Err(BAD_GRPC));
        let garbled = [0, 0, 0, 0, 2, 0xff, 0xff];
        let got = judge(Pattern::A2aGrpcListTasks, &grpc_ok, &garbled, None, &mut s);
        assert_eq!(got, Err(BAD_PROTOBUF));
        // The next page's token, for --page-walk: absent, empty, or given (escaped in JSON).
        let token = |p, h: &Head, body: &[u8]| {
            listed(p, h, body).map(|t| t.map(|t| t.as_str().to_string()))
        };
        let rpc = br#"{"jsonrpc":"2.0","id":1,"result":{"tasks":[],"nextPageToken":"a\"b"}}"#;
        assert_eq!(token(Pattern::A2aListTasks, &ok, rpc), Ok(Some("a\"b".into())));
        let rest = br#"{"tasks":[],"nextPageToken":""}"#;
        assert_eq!(token(Pattern::A2aRestListTasks, &ok, rest), Ok(Some(String::new())));
        assert_eq!(token(Pattern::A2aRestListTasks, &ok, b"{}"), Ok(None));
        let bad = br#"{"nextPageToken":5}"#;
        assert_eq!(token(Pattern::A2aRestListTasks, &ok, bad), Err(BAD_SHAPE));
        let list = grpc::ListTasksResponse { next_page_token: "n1".into(), ..Default::default() };
        let mut page = Vec::new();
        grpc::frame(&mut page, |b| prost::Message::encode_raw(&list, b));
        assert_eq!(token(Pattern::A2aGrpcListTasks, &grpc_ok, &page), Ok(Some("n1".into())));
        let got = token(Pattern::A2aRestListTasks, &head(404, ContentType::Json), b"{}");
        assert_eq!(got, Err(Cow::Borrowed("http_404")));
    }

    #[test]
    fn an_extended_card_is_a_card_with_a_name_in_each_binding() {
        // Proves the extended-card patterns' checks: a card with a name is an answer (JSON-RPC
        // v1.0 and v0.3 in `result`, HTTP+JSON as the body, gRPC as one `AgentCard`); one
        // without a name, or not an object, is a bad shape; an agent without one says so by
        // name (-32007); gRPC's card must be one readable message with its name.
        use crate::grpc;
        use crate::loadgen::http::parse::GrpcEnd;
        let mut s = Vec::new();
        let ok = head(200, ContentType::Json);
        let judged = |p, body: &str, s: &mut Vec<u8>| judge(p, &ok, body.as_bytes(), None, s);
        let card = r#"{"name":"echo","skills":[{"id":"x"}]}"#;
        for p in [Pattern::A2aExtendedCard, Pattern::A2aV03ExtendedCard] {
            let rpc = format!(r#"{{"jsonrpc":"2.0","id":1,"result":{card}}}"#);
            assert_eq!(judged(p, &rpc, &mut s), Ok(0), "{rpc}");
            let unnamed = r#"{"jsonrpc":"2.0","id":1,"result":{"skills":[]}}"#;
            assert_eq!(judged(p, unnamed, &mut s), Err(BAD_SHAPE));
            let list = r#"{"jsonrpc":"2.0","id":1,"result":[1]}"#;
            assert_eq!(judged(p, list, &mut s), Err(BAD_SHAPE));
            let none = r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32007,"message":"no"}}"#;
            let got = judged(p, none, &mut s);
            assert_eq!(got, Err(Cow::Borrowed("a2a_extended_card_not_configured")));
        }
        assert_eq!(judged(Pattern::A2aRestExtendedCard, card, &mut s), Ok(0));
        assert_eq!(judged(Pattern::A2aRestExtendedCard, r#"{"name":""}"#, &mut s), Err(BAD_SHAPE));
        assert_eq!(judged(Pattern::A2aRestExtendedCard, "{oops", &mut s), Err(BAD_JSON));
        let grpc_ok =
            Head { grpc: Some(GrpcEnd { code: 0, a2a: None }), ..head(200, ContentType::Grpc) };
        let framed = |card: &grpc::AgentCard| {
            let mut b = Vec::new();
            grpc::frame(&mut b, |b| prost::Message::encode_raw(card, b));
            b
        };
        let named = framed(&grpc::AgentCard { name: "echo".into(), ..Default::default() });
        let got = judge(Pattern::A2aGrpcExtendedCard, &grpc_ok, &named, None, &mut s);
        assert_eq!(got, Ok(0));
        let unnamed = framed(&grpc::AgentCard { version: "1".into(), ..Default::default() });
        let got = judge(Pattern::A2aGrpcExtendedCard, &grpc_ok, &unnamed, None, &mut s);
        assert_eq!(got, Err(BAD_SHAPE));
        let twice = [&named[..], &named[..]].concat();
        let got = judge(Pattern::A2aGrpcExtendedCard, &grpc_ok, &twice, None, &mut s);
        assert_eq!(got, Err(BAD_GRPC));
        let garbled = [0, 0, 0, 0, 2, 0x0a, 0x05];
        let got = judge(Pattern::A2aGrpcExtendedCard, &grpc_ok, &garbled, None, &mut s);
        assert_eq!(got, Err(BAD_PROTOBUF));
    }

    #[test]
    fn the_http_json_binding_is_checked_by_shape_and_its_errors_named_by_reason() {
        // Proves the A2A HTTP+JSON checks: the body is the response itself (a message or a
        // task, no JSON-RPC envelope); a non-2xx names A2A's reason from its google.rpc.Status
        // details, else the status; a stream's events are StreamResponses, and an error event
        // is named the same way.
        let mut s = Vec::new();
        let ok = head(200, ContentType::Json);
        let msg = br#"{"message":{"contextId":"c1","parts":[{"text":"hi"}]}}"#;
        assert_eq!(judge(Pattern::A2aRestMessage, &ok, msg, None, &mut s), Ok(0));
        let task = br#"{"task":{"id":"t","status":{"state":"TASK_STATE_COMPLETED"}}}"#;
        assert_eq!(judge(Pattern::A2aRestMessage, &ok, task, None, &mut s), Ok(0));
        assert_eq!(judge(Pattern::A2aRestConversation, &ok, msg, Some("c1"), &mut s), Ok(0));
        let lost = judge(Pattern::A2aRestConversation, &ok, msg, Some("c2"), &mut s);
        assert_eq!(lost.unwrap_err(), "a2a_context_lost");
        let wrapped = br#"{"jsonrpc":"2.0","id":1,"result":{"message":{"parts":[]}}}"#;
        let bad = judge(Pattern::A2aRestMessage, &ok, wrapped, None, &mut s);
        assert_eq!(bad.unwrap_err(), BAD_SHAPE);
        let bad = judge(Pattern::A2aRestMessage, &ok, b"{oops", None, &mut s);
        assert_eq!(bad.unwrap_err(), BAD_JSON);
        let html = head(200, ContentType::Other);
        assert_eq!(
            judge(Pattern::A2aRestMessage, &html, msg, None, &mut s).unwrap_err(),
            WRONG_TYPE
        );
        let status = br#"{"error":{"code":404,"status":"NOT_FOUND","message":"no task","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"TASK_NOT_FOUND","domain":"a2a-protocol.org"}]}}"#;
        let not_found = head(404, ContentType::Json);
        let got = judge(Pattern::A2aRestMessage, &not_found, status, None, &mut s);
        assert_eq!(got.unwrap_err(), "a2a_task_not_found");
        let other = br#"{"error":{"code":400,"status":"INVALID_ARGUMENT","details":[{"reason":"INVALID_REQUEST"}]}}"#;
        let got =
            judge(Pattern::A2aRestMessage, &head(400, ContentType::Json), other, None, &mut s);
        assert_eq!(got.unwrap_err(), "http_400");
        let got =
            judge(Pattern::A2aRestStream, &head(503, ContentType::Other), b"down", None, &mut s);
        assert_eq!(got.unwrap_err(), "http_503");
        let got = judge(Pattern::A2aRestStream, &not_found, status, None, &mut s);
        assert_eq!(got.unwrap_err(), "a2a_task_not_found");
        let sse = head(200, ContentType::EventStream);
        let events =
            b"data: {\"task\":{\"id\":\"t\"}}\r\n\r\ndata: {\"statusUpdate\":{\"final\":true}}\n\n";
        assert_eq!(judge(Pattern::A2aRestStream, &sse, events, None, &mut s), Ok(2));
        let failed = b"data: {\"task\":{}}\n\nevent: error\ndata: {\"error\":{\"code\":400,\"details\":[{\"reason\":\"UNSUPPORTED_OPERATION\"}]}}\n\n";
        let got = judge(Pattern::A2aRestStream, &sse, failed, None, &mut s);
        assert_eq!(got.unwrap_err(), "a2a_unsupported_operation");
        let unnamed = b"data: {\"error\":{\"code\":500}}\n\n";
        let got = judge(Pattern::A2aRestStream, &sse, unnamed, None, &mut s);
        assert_eq!(got.unwrap_err(), "a2a_stream_error");
        let rpc = b"data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"task\":{}}}\n\n";
        assert_eq!(judge(Pattern::A2aRestStream, &sse, rpc, None, &mut s).unwrap_err(), BAD_SHAPE);
    }

    #[test]
    fn streams_count_events_and_reject_broken_ones() {
        // Proves stream checks: events counted (CRLF accepted), an event that is not JSON or
        // an unfinished event is bad SSE, an error event is named, a JSON-RPC result instead
        // of a stream is the wrong content type, a JSON-RPC error instead of one is named.
        let mut s = Vec::new();
        let sse = head(200, ContentType::EventStream);
        let body = b"data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"task\":{\"id\":\"t\"}}}\r\n\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"statusUpdate\":{\"final\":true}}}\r\n\r\n";
        assert_eq!(judge(Pattern::A2aStream, &sse, body, None, &mut s), Ok(2));
        assert_eq!(
            judge(Pattern::A2aStream, &sse, b"data: {nope\n\n", None, &mut s).unwrap_err(),
            BAD_SSE
        );
        assert_eq!(
            judge(Pattern::A2aStream, &sse, b"data: {\"x\":1}", None, &mut s).unwrap_err(),
            BAD_SSE
        );
        assert_eq!(judge(Pattern::A2aStream, &sse, b"", None, &mut s).unwrap_err(), BAD_SSE);
        let err = b"data: {\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32004}}\n\n";
        assert_eq!(
            judge(Pattern::A2aStream, &sse, err, None, &mut s).unwrap_err(),
            "a2a_unsupported_operation"
        );
        let json = head(200, ContentType::Json);
        let result = br#"{"jsonrpc":"2.0","id":1,"result":{"task":{"id":"t"}}}"#;
        assert_eq!(judge(Pattern::A2aStream, &json, result, None, &mut s).unwrap_err(), WRONG_TYPE);
        let refused = br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32004,"message":"no"}}"#;
        let got = judge(Pattern::A2aV03Stream, &json, refused, None, &mut s);
        assert_eq!(got.unwrap_err(), "a2a_unsupported_operation");
        let v03 = b"data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"kind\":\"status-update\",\"final\":true}}\n\n";
        assert_eq!(judge(Pattern::A2aV03Stream, &sse, v03, None, &mut s), Ok(1));
    }

    #[test]
    fn mcp_answers_come_as_json_or_as_an_event_after_notifications() {
        // Proves MCP checks: a JSON body or the response event of a stream (after a server
        // notification), a tool error (`isError`) is an error, tools/list needs its tools.
        let mut s = Vec::new();
        let call =
            br#"{"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"hi"}]}}"#;
        assert_eq!(
            judge(Pattern::McpToolsCall, &head(200, ContentType::Json), call, None, &mut s),
            Ok(0)
        );
        let sse = b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"content\":[{\"type\":\"text\"}],\"isError\":true}}\n\n";
        let got =
            judge(Pattern::McpToolsCall, &head(200, ContentType::EventStream), sse, None, &mut s);
        assert_eq!(got.unwrap_err(), "mcp_tool_error");
        let list = br#"{"jsonrpc":"2.0","id":4,"result":{"tools":[{"name":"echo"}]}}"#;
        assert_eq!(
            judge(Pattern::McpToolsList, &head(200, ContentType::Json), list, None, &mut s),
            Ok(0)
        );
        assert_eq!(
            judge(Pattern::McpToolsList, &head(200, ContentType::Json), call, None, &mut s)
                .unwrap_err(),
            BAD_SHAPE
        );
        assert_eq!(
            judge(Pattern::McpToolsList, &head(404, ContentType::Other), b"", None, &mut s)
                .unwrap_err(),
            "http_404"
        );
    }

    #[test]
    fn members_not_named_are_skipped_however_they_nest() {
        // Proves `Skip` and the objects read member by member: unknown members of any type and
        // nesting are passed over (escaped strings too), a named member of the wrong type or
        // an error without its code is a bad shape, and nesting past serde_json's limit (128)
        // is bad JSON rather than a deep recursion.
        let mut s = Vec::new();
        let ok = head(200, ContentType::Json);
        let deep = br#"{"jsonrpc":"2.0","x":[1,-2,3.5,true,null,"a\"b",{"y":[[{}]]}],"id":{"k":[]},"result":{"task":{"status":{"m":{"p":[{"q":[1]}]}},"contextId":"c\u0031"}}}"#;
        assert_eq!(judge(Pattern::A2aMessage, &ok, deep, Some("c1"), &mut s), Ok(0));
        let no_code = br#"{"jsonrpc":"2.0","id":1,"error":{"message":"x","data":{"a":[{}]}}}"#;
        assert_eq!(judge(Pattern::A2aMessage, &ok, no_code, None, &mut s).unwrap_err(), BAD_SHAPE);
        let not_list = br#"{"jsonrpc":"2.0","id":4,"result":{"tools":{"name":"echo"}}}"#;
        assert_eq!(
            judge(Pattern::McpToolsList, &ok, not_list, None, &mut s).unwrap_err(),
            BAD_SHAPE
        );
        let nested = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let body = format!(r#"{{"jsonrpc":"2.0","id":1,"result":{{"message":{{"x":{nested}}}}}}}"#);
        let got = judge(Pattern::A2aMessage, &ok, body.as_bytes(), None, &mut s);
        assert_eq!(got.unwrap_err(), BAD_JSON);
        assert_eq!(
            judge(Pattern::RegistryList, &ok, nested.as_bytes(), None, &mut s).unwrap_err(),
            BAD_JSON
        );
        let card = br#"{"description":"d","skills":[{"id":"s","tags":["a"]}],"name":"echo"}"#;
        assert_eq!(judge(Pattern::AgentCard, &ok, card, None, &mut s), Ok(0));
        let unnamed = br#"{"skills":[{"name":"s"}]}"#;
        assert_eq!(judge(Pattern::AgentCard, &ok, unnamed, None, &mut s).unwrap_err(), BAD_SHAPE);
    }

    #[test]
    fn grpc_answers_are_checked_by_status_framing_and_shape() {
        // Proves the gRPC checks: a framed message or task is an answer (its context kept in
        // a conversation); a stream's events are counted, each holding a payload; a status
        // other than OK is named by A2A's reason, else by its gRPC code; no status, a wrong
        // content type, cut or compressed framing, bad protobuf and a unary call answered
        // twice are errors by kind.
        use crate::grpc;
        use crate::loadgen::http::parse::GrpcEnd;
        use prost::Message as _;
        let mut s = Vec::new();
        let ok =
            Head { grpc: Some(GrpcEnd { code: 0, a2a: None }), ..head(200, ContentType::Grpc) };
        let framed = |m: &dyn Fn(&mut Vec<u8>)| {
            let mut b = Vec::new();
            grpc::frame(&mut b, |b| m(b));
            b
        };
        let message = grpc::SendMessageResponse {
            task: None,
            message: Some(grpc::Message { context_id: "c1".into(), ..Default::default() }),
        };
        let msg = framed(&|b| message.encode_raw(b));
        let task = grpc::SendMessageResponse {
            task: Some(grpc::Task {
                id: "t".into(),
                context_id: "c1".into(),
                status: None,
                artifacts: Vec::new(),
            }),
            message: None,
        };
        let task = framed(&|b| task.encode_raw(b));
        for body in [&msg, &task] {
            assert_eq!(judge(Pattern::A2aGrpcMessage, &ok, body, None, &mut s), Ok(0));
            assert_eq!(judge(Pattern::A2aGrpcConversation, &ok, body, Some("c1"), &mut s), Ok(0));
            let lost = judge(Pattern::A2aGrpcConversation, &ok, body, Some("c2"), &mut s);
            assert_eq!(lost.unwrap_err(), "a2a_context_lost");
        }
        let empty = framed(&|_| {});
        assert_eq!(
            judge(Pattern::A2aGrpcMessage, &ok, &empty, None, &mut s).unwrap_err(),
            BAD_SHAPE
        );
        let twice = [&msg[..], &msg[..]].concat();
        assert_eq!(
            judge(Pattern::A2aGrpcMessage, &ok, &twice, None, &mut s).unwrap_err(),
            BAD_GRPC
        );
        assert_eq!(judge(Pattern::A2aGrpcMessage, &ok, &[], None, &mut s).unwrap_err(), BAD_GRPC);
        let cut = &msg[..msg.len() - 1];
        assert_eq!(judge(Pattern::A2aGrpcMessage, &ok, cut, None, &mut s).unwrap_err(), BAD_GRPC);
        let mut zipped = msg.clone();
        zipped[0] = 1;
        assert_eq!(
            judge(Pattern::A2aGrpcMessage, &ok, &zipped, None, &mut s).unwrap_err(),
            BAD_GRPC
        );
        let garbage = framed(&|b| b.extend_from_slice(&[0x12, 0x09, 1]));
        let bad = judge(Pattern::A2aGrpcMessage, &ok, &garbage, None, &mut s);
        assert_eq!(bad.unwrap_err(), BAD_PROTOBUF);

        let event = |e: grpc::StreamResponse| framed(&|b| e.encode_raw(b));
        let update = grpc::TaskStatusUpdateEvent { task_id: "t".into(), ..Default::default() };
        let events = [
            event(grpc::StreamResponse { message: message.message.clone(), ..Default::default() }),
            event(grpc::StreamResponse { status_update: Some(update), ..Default::default() }),
        ]
        .concat();
        assert_eq!(judge(Pattern::A2aGrpcStream, &ok, &events, None, &mut s), Ok(2));
        assert_eq!(judge(Pattern::A2aGrpcStream, &ok, &[], None, &mut s).unwrap_err(), BAD_SHAPE);
        let hollow = [&events[..], &empty[..]].concat();
        assert_eq!(
            judge(Pattern::A2aGrpcStream, &ok, &hollow, None, &mut s).unwrap_err(),
            BAD_SHAPE
        );

        let failed = |code, a2a| Head { grpc: Some(GrpcEnd { code, a2a }), ..ok };
        let named = judge(Pattern::A2aGrpcStream, &failed(9, Some(-32009)), &[], None, &mut s);
        assert_eq!(named.unwrap_err(), "a2a_version_not_supported");
        let coded = judge(Pattern::A2aGrpcMessage, &failed(5, None), &msg, None, &mut s);
        assert_eq!(coded.unwrap_err(), "grpc_not_found");
        let odd = judge(Pattern::A2aGrpcMessage, &failed(42, None), &msg, None, &mut s);
        assert_eq!(odd.unwrap_err(), "grpc_42");
        let silent = Head { grpc: None, ..ok };
        let none = judge(Pattern::A2aGrpcMessage, &silent, &msg, None, &mut s);
        assert_eq!(none.unwrap_err(), NO_GRPC_STATUS);
        let json = Head { content_type: ContentType::Json, ..ok };
        assert_eq!(
            judge(Pattern::A2aGrpcMessage, &json, &msg, None, &mut s).unwrap_err(),
            WRONG_TYPE
        );
        let gone =
            judge(Pattern::A2aGrpcMessage, &head(503, ContentType::Grpc), &msg, None, &mut s);
        assert_eq!(gone.unwrap_err(), "http_503");
    }
}
