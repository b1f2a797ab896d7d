//! A2A's gRPC binding, the part a2a-bench speaks: the protobuf messages of `SendMessage` and
//! `SendStreamingMessage` (package `lf.a2a.v1`, field numbers as in the A2A v1.0 `a2a.proto`),
//! gRPC's length-prefixed framing, its status codes by name, and the `google.rpc.Status` an
//! error's `grpc-status-details-bin` carries; and A2A v0.3's binding (package `a2a.v1`: the
//! same answers but for an artifact's parts and a status update's `final`, its requests' own
//! numbers, a task named `tasks/{id}`, errors named by their message alone).
//!
//! The client writes its request with [`send_message_request`] (no allocation) and checks an
//! answer by walking its fields ([`fields`]) without decoding it into owned messages; the
//! reference target (`serve a2a-echo`) and the tests use the `prost` messages below.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use prost::encoding::{decode_varint, encode_key, encode_varint, encoded_len_varint, WireType};

/// The service's path prefix.
pub const SERVICE: &str = "/lf.a2a.v1.A2AService/";
/// `SendMessage`'s method name.
pub const SEND_MESSAGE: &str = "SendMessage";
/// `SendStreamingMessage`'s method name.
pub const SEND_STREAMING_MESSAGE: &str = "SendStreamingMessage";
/// `GetTask`'s method name.
pub const GET_TASK: &str = "GetTask";
/// `SubscribeToTask`'s method name (its request has `GetTaskRequest`'s fields 1 and 2).
pub const SUBSCRIBE_TO_TASK: &str = "SubscribeToTask";
/// `ListTasks`'s method name.
pub const LIST_TASKS: &str = "ListTasks";
/// `CancelTask`'s method name (a `CancelTaskRequest`, whose id is field 2 as `GetTaskRequest`'s).
pub const CANCEL_TASK: &str = "CancelTask";
/// `GetExtendedAgentCard`'s method name (an empty `GetExtendedAgentCardRequest`: no tenant).
pub const GET_EXTENDED_AGENT_CARD: &str = "GetExtendedAgentCard";
/// A2A v0.3's service path prefix (its `SendMessage`, `SendStreamingMessage`, `GetTask` and
/// `CancelTask` named as v1.0's).
pub const SERVICE_V03: &str = "/a2a.v1.A2AService/";
/// v0.3's `TaskSubscription` (v1.0's `SubscribeToTask`).
pub const TASK_SUBSCRIPTION: &str = "TaskSubscription";
/// v0.3's `GetAgentCard` (an empty `GetAgentCardRequest`).
pub const GET_AGENT_CARD: &str = "GetAgentCard";

/// `ListTasks`' page when a request names none (`pageSize`, in every binding: A2A's default).
pub const LIST_PAGE: u32 = 50;
/// The largest page A2A lets `ListTasks` ask for.
pub const LIST_PAGE_MAX: u32 = 100;

/// `Role.ROLE_USER`.
pub const ROLE_USER: i32 = 1;
/// `Role.ROLE_AGENT`.
pub const ROLE_AGENT: i32 = 2;
/// `TaskState.TASK_STATE_WORKING`.
pub const TASK_STATE_WORKING: i32 = 2;
/// `TaskState.TASK_STATE_COMPLETED`.
pub const TASK_STATE_COMPLETED: i32 = 3;
/// `TaskState.TASK_STATE_CANCELED`.
pub const TASK_STATE_CANCELED: i32 = 5;
/// `TaskState`'s names, by number (without their `TASK_STATE_` prefix).
pub const TASK_STATES: [&str; 9] = [
    "UNSPECIFIED",
    "SUBMITTED",
    "WORKING",
    "COMPLETED",
    "FAILED",
    "CANCELED",
    "INPUT_REQUIRED",
    "REJECTED",
    "AUTH_REQUIRED",
];

/// The place in [`TASK_STATES`] of the state named `name`, as v1.0 and v0.3 spell it:
/// `TASK_STATE_COMPLETED`, `COMPLETED` or `completed`, `input-required` as `INPUT_REQUIRED`,
/// and v0.3's HTTP+JSON `CANCELLED` as `CANCELED`.
pub fn task_state_index(name: &str) -> Option<usize> {
    let name = name.strip_prefix("TASK_STATE_").unwrap_or(name);
    let same = |s: &&str| {
        s.len() == name.len()
            && s.bytes()
                .zip(name.bytes())
                .all(|(a, b)| a.eq_ignore_ascii_case(&b) || (a == b'_' && b == b'-'))
    };
    let canceled =
        || name.eq_ignore_ascii_case("cancelled").then_some(TASK_STATE_CANCELED as usize);
    TASK_STATES.iter().position(same).or_else(canceled)
}

/// The `TaskState` named `name` ([`task_state_index`]), never `UNSPECIFIED`.
pub fn task_state_named(name: &str) -> Option<u8> {
    task_state_index(name).filter(|&i| i != 0).map(|i| i as u8)
}

/// `SendMessageRequest` (the fields a2a-bench uses).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SendMessageRequest {
    /// Optional tenant.
    #[prost(string, tag = "1")]
    pub tenant: String,
    /// The message.
    #[prost(message, optional, tag = "2")]
    pub message: Option<Message>,
    /// How to answer.
    #[prost(message, optional, tag = "3")]
    pub configuration: Option<SendMessageConfiguration>,
}

/// `SendMessageConfiguration` (the fields a2a-bench uses).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SendMessageConfiguration {
    /// Where to notify the task's updates.
    #[prost(message, optional, tag = "2")]
    pub task_push_notification_config: Option<TaskPushNotificationConfig>,
    /// Answer with the task at once, not when it ends.
    #[prost(bool, tag = "4")]
    pub return_immediately: bool,
}

/// `TaskPushNotificationConfig` (the fields a2a-bench uses).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TaskPushNotificationConfig {
    /// The URL the server POSTs the task's updates to.
    #[prost(string, tag = "4")]
    pub url: String,
    /// What the server sends back in `X-A2A-Notification-Token`.
    #[prost(string, tag = "5")]
    pub token: String,
    /// How the server authenticates its notifications.
    #[prost(message, optional, tag = "6")]
    pub authentication: Option<AuthenticationInfo>,
}

/// `AuthenticationInfo`: the server sends `Authorization: {scheme} {credentials}`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AuthenticationInfo {
    /// The scheme (`Bearer`).
    #[prost(string, tag = "1")]
    pub scheme: String,
    /// The credentials.
    #[prost(string, tag = "2")]
    pub credentials: String,
}

/// v0.3's `SendMessageRequest` (the fields a2a-bench uses).
#[derive(Clone, PartialEq, prost::Message)]
pub struct V03SendMessageRequest {
    /// The message (v0.3's `request`; its fields are v1.0's `Message`'s).
    #[prost(message, optional, tag = "1")]
    pub request: Option<Message>,
    /// How to answer.
    #[prost(message, optional, tag = "2")]
    pub configuration: Option<V03SendMessageConfiguration>,
}

/// v0.3's `SendMessageConfiguration` (the fields a2a-bench uses).
#[derive(Clone, PartialEq, prost::Message)]
pub struct V03SendMessageConfiguration {
    /// Where to notify the task's updates.
    #[prost(message, optional, tag = "2")]
    pub push_notification: Option<V03PushNotificationConfig>,
    /// Answer when the task ends (proto3's false, the default: at once).
    #[prost(bool, tag = "4")]
    pub blocking: bool,
}

/// v0.3's `PushNotificationConfig` (the fields a2a-bench uses).
#[derive(Clone, PartialEq, prost::Message)]
pub struct V03PushNotificationConfig {
    /// The URL the server POSTs the task to.
    #[prost(string, tag = "2")]
    pub url: String,
    /// What the server sends back in `X-A2A-Notification-Token`.
    #[prost(string, tag = "3")]
    pub token: String,
    /// How the server authenticates its notifications.
    #[prost(message, optional, tag = "4")]
    pub authentication: Option<V03AuthenticationInfo>,
}

/// v0.3's `AuthenticationInfo`: a list of schemes.
#[derive(Clone, PartialEq, prost::Message)]
pub struct V03AuthenticationInfo {
    /// The schemes (`Bearer`).
    #[prost(string, repeated, tag = "1")]
    pub schemes: Vec<String>,
    /// The credentials.
    #[prost(string, tag = "2")]
    pub credentials: String,
}

/// v0.3's `GetTaskRequest`, `CancelTaskRequest` and `TaskSubscriptionRequest`: the task by
/// its resource name, `tasks/{id}`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct V03TaskName {
    /// `tasks/{id}`.
    #[prost(string, tag = "1")]
    pub name: String,
}

/// v0.3's `SendMessageResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct V03SendMessageResponse {
    /// The task.
    #[prost(message, optional, tag = "1")]
    pub task: Option<V03Task>,
    /// Or the message.
    #[prost(message, optional, tag = "2")]
    pub msg: Option<Message>,
}

/// v0.3's `StreamResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct V03StreamResponse {
    /// The task.
    #[prost(message, optional, tag = "1")]
    pub task: Option<V03Task>,
    /// A message.
    #[prost(message, optional, tag = "2")]
    pub msg: Option<Message>,
    /// A status update.
    #[prost(message, optional, tag = "3")]
    pub status_update: Option<V03TaskStatusUpdateEvent>,
    /// An artifact update.
    #[prost(message, optional, tag = "4")]
    pub artifact_update: Option<V03TaskArtifactUpdateEvent>,
}

/// v0.3's `Task` (its artifacts' parts at 5).
#[derive(Clone, PartialEq, prost::Message)]
pub struct V03Task {
    /// Its id.
    #[prost(string, tag = "1")]
    pub id: String,
    /// Its context.
    #[prost(string, tag = "2")]
    pub context_id: String,
    /// Where it stands.
    #[prost(message, optional, tag = "3")]
    pub status: Option<TaskStatus>,
    /// What it made.
    #[prost(message, repeated, tag = "4")]
    pub artifacts: Vec<V03Artifact>,
}

/// v0.3's `Artifact`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct V03Artifact {
    /// Its id.
    #[prost(string, tag = "1")]
    pub artifact_id: String,
    /// Its parts.
    #[prost(message, repeated, tag = "5")]
    pub parts: Vec<Part>,
}

/// v0.3's `TaskStatusUpdateEvent` (with `final`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct V03TaskStatusUpdateEvent {
    /// The task.
    #[prost(string, tag = "1")]
    pub task_id: String,
    /// Its context.
    #[prost(string, tag = "2")]
    pub context_id: String,
    /// Its new status.
    #[prost(message, optional, tag = "3")]
    pub status: Option<TaskStatus>,
    /// The last event of the stream.
    #[prost(bool, tag = "4")]
    pub r#final: bool,
}

/// v0.3's `TaskArtifactUpdateEvent`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct V03TaskArtifactUpdateEvent {
    /// The task.
    #[prost(string, tag = "1")]
    pub task_id: String,
    /// Its context.
    #[prost(string, tag = "2")]
    pub context_id: String,
    /// The artifact.
    #[prost(message, optional, tag = "3")]
    pub artifact: Option<V03Artifact>,
    /// Appended to one sent before.
    #[prost(bool, tag = "4")]
    pub append: bool,
    /// Its last chunk.
    #[prost(bool, tag = "5")]
    pub last_chunk: bool,
}

/// v0.3's `AgentCard` (the fields a2a-bench's echo gives).
#[derive(Clone, PartialEq, prost::Message)]
pub struct V03AgentCard {
    /// Its name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// What it does.
    #[prost(string, tag = "2")]
    pub description: String,
    /// Where it answers.
    #[prost(string, tag = "3")]
    pub url: String,
    /// The agent's own version.
    #[prost(string, tag = "5")]
    pub version: String,
    /// What it can do.
    #[prost(message, optional, tag = "7")]
    pub capabilities: Option<V03AgentCapabilities>,
    /// Input media types.
    #[prost(string, repeated, tag = "10")]
    pub default_input_modes: Vec<String>,
    /// Output media types.
    #[prost(string, repeated, tag = "11")]
    pub default_output_modes: Vec<String>,
    /// Its skills.
    #[prost(message, repeated, tag = "12")]
    pub skills: Vec<AgentSkill>,
    /// An authenticated client is shown more.
    #[prost(bool, tag = "13")]
    pub supports_authenticated_extended_card: bool,
    /// `url`'s transport (`GRPC`).
    #[prost(string, tag = "14")]
    pub preferred_transport: String,
    /// The A2A version (`0.3.0`).
    #[prost(string, tag = "16")]
    pub protocol_version: String,
}

/// v0.3's `AgentCapabilities`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct V03AgentCapabilities {
    /// Streams.
    #[prost(bool, tag = "1")]
    pub streaming: bool,
    /// Notifies.
    #[prost(bool, tag = "2")]
    pub push_notifications: bool,
}

/// The JSON-RPC code of an A2A v0.3 error as a2a-sdk 0.3's gRPC binding names it: by the
/// error's type at the head of its `grpc-message` (`TaskNotFoundError: …`, no status details);
/// `None` for a message that names none.
pub fn v03_error_code(message: &[u8]) -> Option<i64> {
    let (name, _) = std::str::from_utf8(message).ok()?.split_once(':')?;
    Some(match name {
        "JSONParseError" => -32700,
        "InvalidRequestError" => -32600,
        "MethodNotFoundError" => -32601,
        "InvalidParamsError" => -32602,
        "InternalError" => -32603,
        "TaskNotFoundError" => -32001,
        "TaskNotCancelableError" => -32002,
        "PushNotificationNotSupportedError" => -32003,
        "UnsupportedOperationError" => -32004,
        "ContentTypeNotSupportedError" => -32005,
        "InvalidAgentResponseError" => -32006,
        _ => return None,
    })
}

/// `ListTasksRequest` (the fields a2a-bench sends).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListTasksRequest {
    /// Only the tasks in this state (a `TaskState`; 0: any).
    #[prost(int32, tag = "3")]
    pub status: i32,
    /// The most tasks a page holds.
    #[prost(int32, tag = "4")]
    pub page_size: i32,
    /// Where the page starts (the previous page's `next_page_token`; empty: the first).
    #[prost(string, tag = "5")]
    pub page_token: String,
    /// The tasks' artifacts too (left out unless asked).
    #[prost(bool, tag = "8")]
    pub include_artifacts: bool,
}

/// `GetExtendedAgentCardRequest` (a tenant alone, which a2a-bench leaves out).
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetExtendedAgentCardRequest {
    /// Optional tenant.
    #[prost(string, tag = "1")]
    pub tenant: String,
}

/// `ListTasksResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListTasksResponse {
    /// A page of tasks.
    #[prost(message, repeated, tag = "1")]
    pub tasks: Vec<Task>,
    /// Where the next page starts (empty: the last page).
    #[prost(string, tag = "2")]
    pub next_page_token: String,
    /// The page's size.
    #[prost(int32, tag = "3")]
    pub page_size: i32,
    /// The tasks there are in all.
    #[prost(int32, tag = "4")]
    pub total_size: i32,
}

/// `GetTaskRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetTaskRequest {
    /// Optional tenant.
    #[prost(string, tag = "1")]
    pub tenant: String,
    /// The task's id.
    #[prost(string, tag = "2")]
    pub id: String,
}

/// `Message`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Message {
    /// Its id.
    #[prost(string, tag = "1")]
    pub message_id: String,
    /// Its conversation's id.
    #[prost(string, tag = "2")]
    pub context_id: String,
    /// Its task's id.
    #[prost(string, tag = "3")]
    pub task_id: String,
    /// `Role`.
    #[prost(int32, tag = "4")]
    pub role: i32,
    /// Its parts.
    #[prost(message, repeated, tag = "5")]
    pub parts: Vec<Part>,
}

/// `Part`: the text of its `content` one-of (the other contents are skipped when read).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Part {
    /// `content.text`.
    #[prost(string, optional, tag = "1")]
    pub text: Option<String>,
}

/// `SendMessageResponse`: its `payload` one-of.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SendMessageResponse {
    /// `payload.task`.
    #[prost(message, optional, tag = "1")]
    pub task: Option<Task>,
    /// `payload.message`.
    #[prost(message, optional, tag = "2")]
    pub message: Option<Message>,
}

/// `StreamResponse`: its `payload` one-of.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamResponse {
    /// `payload.task`.
    #[prost(message, optional, tag = "1")]
    pub task: Option<Task>,
    /// `payload.message`.
    #[prost(message, optional, tag = "2")]
    pub message: Option<Message>,
    /// `payload.status_update`.
    #[prost(message, optional, tag = "3")]
    pub status_update: Option<TaskStatusUpdateEvent>,
    /// `payload.artifact_update`.
    #[prost(message, optional, tag = "4")]
    pub artifact_update: Option<TaskArtifactUpdateEvent>,
}

/// `AgentCard` (the fields the echo agent fills).
#[derive(Clone, PartialEq, prost::Message)]
pub struct AgentCard {
    /// Its name (required: what a client checks).
    #[prost(string, tag = "1")]
    pub name: String,
    /// What it does.
    #[prost(string, tag = "2")]
    pub description: String,
    /// Where and how it answers.
    #[prost(message, repeated, tag = "3")]
    pub supported_interfaces: Vec<AgentInterface>,
    /// The agent's version.
    #[prost(string, tag = "5")]
    pub version: String,
    /// What it can do.
    #[prost(message, optional, tag = "7")]
    pub capabilities: Option<AgentCapabilities>,
    /// The media types it takes.
    #[prost(string, repeated, tag = "10")]
    pub default_input_modes: Vec<String>,
    /// The media types it answers in.
    #[prost(string, repeated, tag = "11")]
    pub default_output_modes: Vec<String>,
    /// Its skills.
    #[prost(message, repeated, tag = "12")]
    pub skills: Vec<AgentSkill>,
}

/// `AgentInterface`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AgentInterface {
    /// Its URL.
    #[prost(string, tag = "1")]
    pub url: String,
    /// `JSONRPC`, `HTTP+JSON` or `GRPC`.
    #[prost(string, tag = "2")]
    pub protocol_binding: String,
    /// The A2A version spoken there.
    #[prost(string, tag = "4")]
    pub protocol_version: String,
}

/// `AgentCapabilities` (the fields the echo agent fills).
#[derive(Clone, PartialEq, prost::Message)]
pub struct AgentCapabilities {
    /// Whether it streams.
    #[prost(bool, optional, tag = "1")]
    pub streaming: Option<bool>,
    /// Whether it serves an extended agent card (`GetExtendedAgentCard`).
    #[prost(bool, optional, tag = "4")]
    pub extended_agent_card: Option<bool>,
}

/// `AgentSkill`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AgentSkill {
    /// Its id.
    #[prost(string, tag = "1")]
    pub id: String,
    /// Its name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// What it does.
    #[prost(string, tag = "3")]
    pub description: String,
    /// Its tags.
    #[prost(string, repeated, tag = "4")]
    pub tags: Vec<String>,
}

/// `Task`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Task {
    /// Its id.
    #[prost(string, tag = "1")]
    pub id: String,
    /// Its conversation's id.
    #[prost(string, tag = "2")]
    pub context_id: String,
    /// Its status.
    #[prost(message, optional, tag = "3")]
    pub status: Option<TaskStatus>,
    /// What it produced.
    #[prost(message, repeated, tag = "4")]
    pub artifacts: Vec<Artifact>,
}

/// `TaskStatus`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TaskStatus {
    /// `TaskState`.
    #[prost(int32, tag = "1")]
    pub state: i32,
}

/// `TaskStatusUpdateEvent`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TaskStatusUpdateEvent {
    /// The task's id.
    #[prost(string, tag = "1")]
    pub task_id: String,
    /// Its conversation's id.
    #[prost(string, tag = "2")]
    pub context_id: String,
    /// Its new status.
    #[prost(message, optional, tag = "3")]
    pub status: Option<TaskStatus>,
}

/// `TaskArtifactUpdateEvent`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TaskArtifactUpdateEvent {
    /// The task's id.
    #[prost(string, tag = "1")]
    pub task_id: String,
    /// Its conversation's id.
    #[prost(string, tag = "2")]
    pub context_id: String,
    /// The artifact.
    #[prost(message, optional, tag = "3")]
    pub artifact: Option<Artifact>,
    /// Whether it appends to an artifact sent before.
    #[prost(bool, tag = "4")]
    pub append: bool,
    /// Whether it is the artifact's last chunk.
    #[prost(bool, tag = "5")]
    pub last_chunk: bool,
}

/// `Artifact`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Artifact {
    /// Its id.
    #[prost(string, tag = "1")]
    pub artifact_id: String,
    /// Its parts.
    #[prost(message, repeated, tag = "4")]
    pub parts: Vec<Part>,
}

/// `google.rpc.Status`, as `grpc-status-details-bin` carries it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    /// The gRPC status code.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// Its message.
    #[prost(string, tag = "2")]
    pub message: String,
    /// Details, each a `google.protobuf.Any`.
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<Any>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Any {
    /// `type.googleapis.com/…`.
    #[prost(string, tag = "1")]
    pub type_url: String,
    /// The message.
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `google.rpc.ErrorInfo`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ErrorInfo {
    /// The reason (A2A's: `TASK_NOT_FOUND`, `VERSION_NOT_SUPPORTED`, …).
    #[prost(string, tag = "1")]
    pub reason: String,
    /// Its domain (`a2a-protocol.org`).
    #[prost(string, tag = "2")]
    pub domain: String,
}

/// `ErrorInfo`'s type URL in an `Any`.
pub const ERROR_INFO_TYPE: &str = "type.googleapis.com/google.rpc.ErrorInfo";

/// A gRPC status code's name, lower case (`not_found`), or `None` for a code gRPC does not define.
pub fn code_name(code: u32) -> Option<&'static str> {
    const NAMES: [&str; 17] = [
        "ok",
        "cancelled",
        "unknown",
        "invalid_argument",
        "deadline_exceeded",
        "not_found",
        "already_exists",
        "permission_denied",
        "resource_exhausted",
        "failed_precondition",
        "aborted",
        "out_of_range",
        "unimplemented",
        "internal",
        "unavailable",
        "data_loss",
        "unauthenticated",
    ];
    NAMES.get(code as usize).copied()
}

/// Appends one gRPC message: the uncompressed flag, the length, the bytes `write` appends.
pub fn frame(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    let at = out.len();
    out.extend_from_slice(&[0; 5]);
    write(out);
    let len = u32::try_from(out.len() - at - 5).unwrap_or(u32::MAX);
    out[at + 1..at + 5].copy_from_slice(&len.to_be_bytes());
}

/// `framed` (gRPC messages, uncompressed) with each message gzipped and flagged compressed
/// (`grpc-encoding: gzip`), appended to `out`.
pub fn compress(framed: &[u8], zip: &mut crate::wire::gzip::Zip, out: &mut Vec<u8>) {
    let walked = messages(framed, |m| {
        let at = out.len();
        out.extend_from_slice(&[1, 0, 0, 0, 0]);
        zip.gzip(m, out);
        let len = u32::try_from(out.len() - at - 5).unwrap_or(u32::MAX);
        out[at + 1..at + 5].copy_from_slice(&len.to_be_bytes());
        Ok::<(), ()>(())
    });
    debug_assert!(walked.is_ok(), "a2a-bench frames whole, uncompressed messages");
}

/// `body`'s gRPC messages with those flagged compressed gunzipped (`grpc-encoding: gzip`),
/// each then flagged uncompressed, into `out` (cleared first). Framing it cannot walk is left
/// for [`messages`] to name: copied as it is.
pub fn decompress(
    body: &[u8],
    unzip: &mut crate::wire::gzip::Unzip,
    out: &mut Vec<u8>,
) -> Result<(), crate::wire::gzip::Bad> {
    out.clear();
    let mut at = 0;
    while let Some(head) = body.get(at..at + 5) {
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let Some(m) = body.get(at + 5..at + 5 + len) else { break };
        match head[0] {
            0 => out.extend_from_slice(&body[at..at + 5 + len]),
            _ => {
                let plain = unzip.whole(m)?;
                frame(out, |o| o.extend_from_slice(plain));
            }
        }
        at += 5 + len;
    }
    out.extend_from_slice(&body[at..]);
    Ok(())
}

/// Why a body is not a sequence of gRPC messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// A message marked compressed, in a call whose `grpc-encoding` is not gzip.
    Compressed,
    /// Bytes left over that are not a whole message.
    Partial,
}

/// The gRPC messages of `body`, in order, each checked by `each`; the first error of either
/// kind ends the walk. Returns how many messages there were.
pub fn messages<'b, E>(
    body: &'b [u8],
    mut each: impl FnMut(&'b [u8]) -> Result<(), E>,
) -> Result<u32, Result<E, Framing>> {
    let (mut at, mut n) = (0usize, 0u32);
    while at < body.len() {
        let Some(head) = body.get(at..at + 5) else { return Err(Err(Framing::Partial)) };
        if head[0] != 0 {
            return Err(Err(Framing::Compressed));
        }
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let Some(m) = body.get(at + 5..at + 5 + len) else { return Err(Err(Framing::Partial)) };
        each(m).map_err(Ok)?;
        at += 5 + len;
        n += 1;
    }
    Ok(n)
}

/// Whether `body` holds at least one whole gRPC message (a stream's first event arrived).
pub fn has_message(body: &[u8]) -> bool {
    body.get(1..5).is_some_and(|l| {
        let len = u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize;
        body.len() >= 5 + len
    })
}

/// A protobuf message that does not read: a cut field, an unknown wire type, field number 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

/// One field of a protobuf message, as [`fields`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field<'a> {
    /// A varint.
    Varint(u64),
    /// Length-delimited bytes (a string, bytes, or a message).
    Bytes(&'a [u8]),
    /// A fixed 32- or 64-bit value.
    Fixed,
}

/// The fields of protobuf message `m`, in order, as (field number, value); `Err` where it is
/// malformed (then the walk ends).
pub fn fields(m: &[u8]) -> impl Iterator<Item = Result<(u32, Field<'_>), Malformed>> + '_ {
    let mut rest = m;
    let mut broken = false;
    std::iter::from_fn(move || {
        if rest.is_empty() || broken {
            return None;
        }
        let field = (|| {
            let key = decode_varint(&mut rest).map_err(|_| Malformed)?;
            let number = u32::try_from(key >> 3).map_err(|_| Malformed)?;
            if number == 0 {
                return Err(Malformed);
            }
            let value = match key & 7 {
                0 => Field::Varint(decode_varint(&mut rest).map_err(|_| Malformed)?),
                1 | 5 => {
                    let n = if key & 7 == 1 { 8 } else { 4 };
                    rest = rest.get(n..).ok_or(Malformed)?;
                    Field::Fixed
                }
                2 => {
                    let len = decode_varint(&mut rest).map_err(|_| Malformed)?;
                    let len = usize::try_from(len).map_err(|_| Malformed)?;
                    let bytes = rest.get(..len).ok_or(Malformed)?;
                    rest = &rest[len..];
                    Field::Bytes(bytes)
                }
                _ => return Err(Malformed),
            };
            Ok((number, value))
        })();
        broken = field.is_err();
        Some(field)
    })
}

/// The last value of length-delimited field `number` of message `m` (protobuf: the last one
/// wins); `Err` if `m` is malformed.
pub fn bytes_field(m: &[u8], number: u32) -> Result<Option<&[u8]>, Malformed> {
    let mut found = None;
    for f in fields(m) {
        if let (n, Field::Bytes(b)) = f? {
            if n == number {
                found = Some(b);
            }
        }
    }
    Ok(found)
}

fn string_len(tag: u32, s: &[u8]) -> usize {
    if s.is_empty() {
        0
    } else {
        encoded_len_varint(u64::from(tag << 3)) + encoded_len_varint(s.len() as u64) + s.len()
    }
}

fn put_bytes(out: &mut Vec<u8>, tag: u32, len: usize) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(len as u64, out);
}

fn put_string(out: &mut Vec<u8>, tag: u32, s: &[u8]) {
    if !s.is_empty() {
        put_bytes(out, tag, s.len());
        out.extend_from_slice(s);
    }
}

/// Appends a `SendMessageRequest` (not framed) whose message, from the user, has id
/// `message_id`, context `context_id` (none when empty) and one text part: the bytes `prost`
/// writes for the same message, written without building one.
/// With `immediately`, its configuration asks for the task at once (`returnImmediately`); with
/// `push`, (URL, token, auth), to be notified of its updates (with `auth`, authenticated:
/// scheme `Bearer`, the token as credentials). With `v03`, v0.3's `SendMessageRequest`
/// ([`V03SendMessageRequest`]): the message at 1, the configuration at 2, whose `blocking`
/// (proto3's false: answer at once) is said whenever the answer is wanted, and whose push
/// config numbers its fields as v0.3's `PushNotificationConfig` (a list of schemes).
pub fn send_message_request(
    out: &mut Vec<u8>,
    message_id: &[u8],
    context_id: &[u8],
    text: &[u8],
    (immediately, v03): (bool, bool),
    push: Option<(&[u8], &[u8], bool)>,
) {
    // v1.0's numbers: the message, the configuration; in that, the push config and its url,
    // token and authentication. v0.3's: 1, 2; 2, 3, 4.
    let (at_message, at_config) = if v03 { (1, 2) } else { (2, 3) };
    let (at_url, at_token, at_auth) = if v03 { (2, 3, 4) } else { (4, 5, 6) };
    // Field 4 of the configuration, true: v1.0's return_immediately, v0.3's blocking.
    let flag = if v03 { !immediately } else { immediately };
    let part = encoded_len_varint(1 << 3) + encoded_len_varint(text.len() as u64) + text.len();
    let message = string_len(1, message_id)
        + string_len(2, context_id)
        + 2 // role: its key and ROLE_USER, one byte each
        + 1
        + encoded_len_varint(part as u64)
        + part;
    put_bytes(out, at_message, message);
    put_string(out, 1, message_id);
    put_string(out, 2, context_id);
    encode_key(4, WireType::Varint, out);
    encode_varint(ROLE_USER as u64, out);
    put_bytes(out, 5, part);
    // A text part always carries its text, empty or not (it is a one-of's member).
    put_bytes(out, 1, text.len());
    out.extend_from_slice(text);
    // configuration: the push config (2), then field 4 = true (its key and value a byte
    // each), in prost's order. The authentication's scheme (v0.3: its one scheme) at 1.
    let auth =
        push.filter(|p| p.2).map(|(_, token, _)| string_len(1, b"Bearer") + string_len(2, token));
    let auth_len = auth.map_or(0, |n| 1 + encoded_len_varint(n as u64) + n);
    let config = push
        .map(|(url, token, _)| string_len(at_url, url) + string_len(at_token, token) + auth_len);
    let config_len = config.map_or(0, |n| 1 + encoded_len_varint(n as u64) + n);
    if flag || push.is_some() {
        put_bytes(out, at_config, config_len + if flag { 2 } else { 0 });
    }
    if let (Some((url, token, _)), Some(n)) = (push, config) {
        put_bytes(out, 2, n);
        put_string(out, at_url, url);
        put_string(out, at_token, token);
        if let Some(n) = auth {
            put_bytes(out, at_auth, n);
            put_string(out, 1, b"Bearer");
            put_string(out, 2, token);
        }
    }
    if flag {
        encode_key(4, WireType::Varint, out);
        encode_varint(1, out);
    }
}

/// Appends a `GetTaskRequest` (not framed) for task `id`; with `v03`, v0.3's (the task's name,
/// `tasks/{id}`, at 1: [`V03TaskName`]).
pub fn get_task_request(out: &mut Vec<u8>, id: &[u8], v03: bool) {
    if v03 {
        put_bytes(out, 1, b"tasks/".len() + id.len());
        out.extend_from_slice(b"tasks/");
        out.extend_from_slice(id);
    } else {
        put_string(out, 2, id);
    }
}

/// Writes a `ListTasksRequest` asking for a page of `page_size` tasks (field 4), after the
/// page `page_token` (field 5) names when not empty, of the tasks in state `status` (field 3,
/// a `TaskState`) when not 0, with their artifacts (`include_artifacts`, field 8) when
/// `artifacts`.
pub fn list_tasks_request(
    out: &mut Vec<u8>,
    (page_size, page_token): (u32, &[u8]),
    status: u8,
    artifacts: bool,
) {
    if status != 0 {
        encode_key(3, WireType::Varint, out);
        encode_varint(u64::from(status), out);
    }
    encode_key(4, WireType::Varint, out);
    encode_varint(u64::from(page_size), out);
    put_string(out, 5, page_token);
    if artifacts {
        encode_key(8, WireType::Varint, out);
        encode_varint(1, out);
    }
}

/// Reads `grpc-status-details-bin` (base64, padded or not): the `google.rpc.Status`'s
/// `ErrorInfo` reason, if it has one.
pub fn details_reason(value: &[u8]) -> Option<String> {
    const B64: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let bytes = B64.decode(value).ok()?;
    let status: RpcStatus = prost::Message::decode(&bytes[..]).ok()?;
    status.details.iter().filter(|d| d.type_url == ERROR_INFO_TYPE).find_map(|d| {
        let info: ErrorInfo = prost::Message::decode(&d.value[..]).ok()?;
        Some(info.reason).filter(|r| !r.is_empty())
    })
}

/// `grpc-status-details-bin`'s value for an error with A2A's `reason`.
pub fn details_value(code: u32, message: &str, reason: &str) -> String {
    let info = ErrorInfo { reason: reason.into(), domain: "a2a-protocol.org".into() };
    let status = RpcStatus {
        code: code as i32,
        message: message.into(),
        details: vec![Any {
            type_url: ERROR_INFO_TYPE.into(),
            value: prost::Message::encode_to_vec(&info),
        }],
    };
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(prost::Message::encode_to_vec(&status))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    #[test]
    fn a_request_written_by_hand_is_the_one_prost_writes() {
        // Proves the allocation-free writers: for a message with and without a context, with
        // an empty text, asking for its task at once or not, and for a GetTask, the bytes are
        // prost's for the same message, and read back.
        for (id, ctx, text, now) in
            [("m-1-2-3", "", "hello", false), ("m-9", "c-7", "", true), ("x", "y", "z", false)]
        {
            // Asked to notify too: a long URL (lengths of two varint bytes), and an empty token;
            // authenticated (Bearer, the token) or not.
            let url = format!("http://127.0.0.1:9/push/1/0/{}", "7".repeat(200));
            for (u, t, auth) in
                [(url.as_str(), "tok-1", false), ("http://h/p", "", false), (&url, "tok-2", true)]
            {
                let authentication = auth
                    .then(|| AuthenticationInfo { scheme: "Bearer".into(), credentials: t.into() });
                let config = SendMessageConfiguration {
                    task_push_notification_config: Some(TaskPushNotificationConfig {
                        url: u.into(),
                        token: t.into(),
                        authentication,
                    }),
                    return_immediately: now,
                };
                let mut got = Vec::new();
                let push = Some((u.as_bytes(), t.as_bytes(), auth));
                send_message_request(
                    &mut got,
                    id.as_bytes(),
                    ctx.as_bytes(),
                    b"x",
                    (now, false),
                    push,
                );
                let back = SendMessageRequest::decode(&got[..]).unwrap();
                assert_eq!(back.configuration.as_ref(), Some(&config), "{id} {u}");
                let mut want = Vec::new();
                back.encode_raw(&mut want);
                assert_eq!(got, want, "{id} {u}");
            }
            let want = SendMessageRequest {
                tenant: String::new(),
                message: Some(Message {
                    message_id: id.into(),
                    context_id: ctx.into(),
                    task_id: String::new(),
                    role: ROLE_USER,
                    parts: vec![Part { text: Some(text.into()) }],
                }),
                configuration: now.then_some(SendMessageConfiguration {
                    task_push_notification_config: None,
                    return_immediately: true,
                }),
            };
            let mut got = Vec::new();
            send_message_request(
                &mut got,
                id.as_bytes(),
                ctx.as_bytes(),
                text.as_bytes(),
                (now, false),
                None,
            );
            assert_eq!(got, want.encode_to_vec(), "{id} {ctx} {text}");
            assert_eq!(SendMessageRequest::decode(&got[..]).unwrap(), want);
            let mut got = Vec::new();
            get_task_request(&mut got, id.as_bytes(), false);
            let want = GetTaskRequest { tenant: String::new(), id: id.into() };
            assert_eq!(got, want.encode_to_vec(), "{id}");
        }
        // A long text: its length takes more than one varint byte, at every level.
        let text = "t".repeat(300);
        let mut got = Vec::new();
        send_message_request(&mut got, b"m", b"", text.as_bytes(), (false, false), None);
        let back = SendMessageRequest::decode(&got[..]).unwrap();
        assert_eq!(back.message.unwrap().parts[0].text.as_deref(), Some(&text[..]));
    }

    #[test]
    fn a_v03_request_written_by_hand_is_the_one_prost_writes() {
        // Proves the v0.3 writers against prost's v0.3 messages: the message at 1, `blocking`
        // said exactly when the answer is wanted (not for a task at once), the push config's
        // v0.3 numbers with its one scheme, and a task named `tasks/{id}`.
        let url = format!("http://127.0.0.1:9/push/1/0/{}", "7".repeat(200));
        for (id, ctx, now) in [("m-1-2-3", "", false), ("m-9", "c-7", true)] {
            for push in
                [None, Some((url.as_str(), "tok-1", false)), Some(("http://h/p", "t", true))]
            {
                let push_notification = push.map(|(u, t, auth)| V03PushNotificationConfig {
                    url: u.into(),
                    token: t.into(),
                    authentication: auth.then(|| V03AuthenticationInfo {
                        schemes: vec!["Bearer".into()],
                        credentials: t.into(),
                    }),
                });
                let configuration = (!now || push.is_some())
                    .then_some(V03SendMessageConfiguration { push_notification, blocking: !now });
                let want = V03SendMessageRequest {
                    request: Some(Message {
                        message_id: id.into(),
                        context_id: ctx.into(),
                        task_id: String::new(),
                        role: ROLE_USER,
                        parts: vec![Part { text: Some("hi".into()) }],
                    }),
                    configuration,
                };
                let mut got = Vec::new();
                let p = push.map(|(u, t, a)| (u.as_bytes(), t.as_bytes(), a));
                send_message_request(
                    &mut got,
                    id.as_bytes(),
                    ctx.as_bytes(),
                    b"hi",
                    (now, true),
                    p,
                );
                assert_eq!(V03SendMessageRequest::decode(&got[..]).unwrap(), want, "{id} {push:?}");
                assert_eq!(got, want.encode_to_vec(), "{id} {push:?}");
            }
            let mut got = Vec::new();
            get_task_request(&mut got, id.as_bytes(), true);
            assert_eq!(got, V03TaskName { name: format!("tasks/{id}") }.encode_to_vec());
        }
        assert_eq!(v03_error_code(b"TaskNotFoundError: Task not found"), Some(-32001));
        assert_eq!(v03_error_code(b"TaskNotCancelableError: ended"), Some(-32002));
        assert_eq!(v03_error_code(b"Task not found"), None);
        assert_eq!(v03_error_code(b"SomeOtherError: x"), None);
    }

    #[test]
    fn messages_are_read_whole_and_broken_framing_is_named() {
        // Proves the framing: two messages walk in order; a compressed flag, a cut length
        // prefix and a cut message are each named; no message is zero messages.
        let mut body = Vec::new();
        frame(&mut body, |b| b.extend_from_slice(b"one"));
        frame(&mut body, |b| b.extend_from_slice(b""));
        frame(&mut body, |b| b.extend_from_slice(b"three"));
        let mut seen = Vec::new();
        let n = messages(&body, |m| {
            seen.push(m.to_vec());
            Ok::<(), ()>(())
        });
        assert_eq!(n, Ok(3));
        assert_eq!(seen, [b"one".to_vec(), vec![], b"three".to_vec()]);
        assert!(has_message(&body) && !has_message(&body[..4]) && !has_message(&body[..7]));
        let ok = |_: &[u8]| Ok::<(), ()>(());
        assert_eq!(messages(&body[..body.len() - 1], ok), Err(Err(Framing::Partial)));
        assert_eq!(messages(&body[..3], ok), Err(Err(Framing::Partial)));
        let mut zipped = body.clone();
        zipped[0] = 1;
        assert_eq!(messages(&zipped, ok), Err(Err(Framing::Compressed)));
        assert_eq!(messages(&[], ok), Ok(0));
        assert_eq!(messages(&body, |_| Err("no")), Err(Ok("no")));
    }

    #[test]
    fn fields_walk_every_wire_type_and_stop_at_a_broken_one() {
        // Proves the walker against prost's encoding: strings, varints, nested messages; the
        // last of a repeated field wins; a cut message is an error.
        let r = SendMessageResponse {
            task: None,
            message: Some(Message {
                message_id: "m".into(),
                context_id: "ctx".into(),
                role: ROLE_AGENT,
                parts: vec![Part { text: Some("hi".into()) }],
                ..Message::default()
            }),
        };
        let bytes = r.encode_to_vec();
        let m = bytes_field(&bytes, 2).unwrap().unwrap();
        assert_eq!(bytes_field(&bytes, 1), Ok(None));
        assert_eq!(bytes_field(m, 2), Ok(Some(&b"ctx"[..])));
        let all: Vec<_> = fields(m).collect::<Result<_, _>>().unwrap();
        assert_eq!(all[2], (4, Field::Varint(ROLE_AGENT as u64)));
        assert!(bytes_field(&bytes[..bytes.len() - 1], 2).is_err());
        assert!(bytes_field(&[0x0a, 0x05, b'a'], 1).is_err());
        assert!(bytes_field(&[0x00], 1).is_err(), "field number 0");
    }

    #[test]
    fn an_error_s_details_give_its_a2a_reason() {
        // Proves the round trip of grpc-status-details-bin, padded or not, and that a value
        // without an ErrorInfo or not base64 gives no reason.
        let v = details_value(9, "nope", "VERSION_NOT_SUPPORTED");
        assert_eq!(details_reason(v.as_bytes()).as_deref(), Some("VERSION_NOT_SUPPORTED"));
        let padded = base64::engine::general_purpose::STANDARD
            .encode(base64::engine::general_purpose::STANDARD_NO_PAD.decode(&v).unwrap());
        assert_eq!(details_reason(padded.as_bytes()).as_deref(), Some("VERSION_NOT_SUPPORTED"));
        let bare = RpcStatus { code: 5, message: "x".into(), details: vec![] };
        let bare = base64::engine::general_purpose::STANDARD.encode(bare.encode_to_vec());
        assert_eq!(details_reason(bare.as_bytes()), None);
        assert_eq!(details_reason(b"%%%"), None);
        assert_eq!(code_name(12), Some("unimplemented"));
        assert_eq!(code_name(17), None);
    }
}
