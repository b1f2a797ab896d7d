//! The HTTP adapter of the agent loop (`a2a-bench http`): virtual clients of an A2A agent, an
//! MCP server or an agent registry, with the same pacing, coordinated-omission correction,
//! accounting and histograms as the router's agents.
//!
//! HTTP/1.1 with keep-alive. The loop's agents are the clients; each connection carries the
//! requests of the clients that share it, at most `pipeline` of them on the wire at once (1:
//! no pipelining, as browsers and most clients do), the others waiting their turn in order.
//! Responses come back in order, so the adapter matches them by a FIFO per connection, bounded
//! by the connection's clients × their window: the only state per request in flight.
//!
//! A request's latency runs from its intended send time to the moment its answer is handled
//! (`rtt`), and from the moment it left to the moment its answer arrived (`rtt_raw`): on a
//! socket ring the submission that carried it and the pass that reaped the answer (`transit`),
//! elsewhere the moment the writer took its bytes and the answer's handling. It is an answer
//! when its response has a 2xx status, the content type its pattern expects and the shape it
//! must have (`judge`). Anything else is an error counted by kind: `http_<status>`, a JSON-RPC
//! code by name, `protocol_*`.
//!
//! MCP clients open a session each before the run (`initialize`, `Mcp-Session-Id`,
//! `notifications/initialized`) and close it after (`DELETE`), unless the protocol version is
//! the sessionless one.

pub mod fuzz;
pub mod h2c;
pub mod judge;
pub mod parse;
pub mod push;

use std::collections::{HashMap, VecDeque};
use std::io::Write as _;
use std::sync::Arc;

use hdrhistogram::Histogram;

use super::counters::{add, add_name};
use super::group::MEASURED_BIT;
use super::group::{About, Adapter, Book, ErrorKind, GroupConfig, Outgoing, Seats};
use super::mix::{draw, PayloadMix, SizeStats};
use crate::clock;
use crate::transport::uring::transit;
use crate::wire::gzip::{self, Coding};
use crate::wire::AgentId;
use parse::{Framing, Head};

mod adapter;
mod exchange;
mod preload;
mod request;
#[cfg(test)]
mod tests;

pub use preload::preload;
pub use request::PUSH_URL_MAX;
use request::*;

/// Why a run stops when an MCP server answers `initialize` without a session.
const NO_SESSION: &str =
    "the MCP server answered initialize without an Mcp-Session-Id (missing_session_id); \
     give --mcp-version 2026-07-28 for a sessionless server";

/// Connections in a row that may end without an answer before a client's connection is given
/// up (a server that accepts and closes at once is not redialled forever).
const STRIKES: u8 = 3;

/// A list pattern's page unless `--page-size` says, and the largest (A2A's).
pub use crate::grpc::{LIST_PAGE, LIST_PAGE_MAX};

/// The MCP protocol version that needs no session.
pub const MCP_SESSIONLESS: &str = "2026-07-28";

/// What one request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pattern {
    /// `GET` the URL.
    Health,
    /// A2A v1.0 `SendMessage`.
    A2aMessage,
    /// A2A v1.0 `SendStreamingMessage` (server-sent events).
    A2aStream,
    /// A2A v1.0 `SendMessage`, the same `contextId` over `turns` turns.
    A2aConversation,
    /// `GET /.well-known/agent-card.json`.
    AgentCard,
    /// A2A v0.3 `message/send`.
    A2aV03Message,
    /// A2A v0.3 `message/stream`.
    A2aV03Stream,
    /// A2A v0.3 `message/send` with `blocking: false`, then `tasks/get` every `--task-poll`
    /// until the task ends.
    A2aV03Task,
    /// A2A v0.3 `message/send` with `blocking: false`, then `tasks/resubscribe` until the task
    /// ends.
    A2aV03Subscribe,
    /// A2A v1.0 `SendMessage` in the HTTP+JSON binding: `POST {path}/message:send`.
    A2aRestMessage,
    /// A2A v1.0 `SendStreamingMessage` in the HTTP+JSON binding: `POST {path}/message:stream`.
    A2aRestStream,
    /// [`Pattern::A2aConversation`] in the HTTP+JSON binding.
    A2aRestConversation,
    /// A2A v1.0 `SendMessage` in the gRPC binding (over HTTP/2).
    A2aGrpcMessage,
    /// A2A v1.0 `SendStreamingMessage` in the gRPC binding (a server stream).
    A2aGrpcStream,
    /// [`Pattern::A2aConversation`] in the gRPC binding.
    A2aGrpcConversation,
    /// A2A v1.0 `SendMessage` with `returnImmediately`, then `GetTask` every `--task-poll`
    /// until the task ends: the time to its end.
    A2aTask,
    /// [`Pattern::A2aTask`] in the HTTP+JSON binding (`GET {path}/tasks/{id}`).
    A2aRestTask,
    /// [`Pattern::A2aTask`] in the gRPC binding.
    A2aGrpcTask,
    /// A2A v1.0 `SendMessage` with `returnImmediately`, then `SubscribeToTask` (a stream of the
    /// task's events) until the task ends.
    A2aSubscribe,
    /// [`Pattern::A2aSubscribe`] in the HTTP+JSON binding (`GET {path}/tasks/{id}:subscribe`).
    A2aRestSubscribe,
    /// [`Pattern::A2aSubscribe`] in the gRPC binding.
    A2aGrpcSubscribe,
    /// A2A v1.0 `SendMessage` with `returnImmediately` and a push-notification config: the
    /// task's end comes as a POST to a2a-bench's receiver ([`push`]).
    A2aPush,
    /// [`Pattern::A2aPush`] in the HTTP+JSON binding.
    A2aRestPush,
    /// [`Pattern::A2aPush`] in the gRPC binding.
    A2aGrpcPush,
    /// A2A v0.3 `message/send` with `blocking: false` and a `pushNotificationConfig`: the
    /// task's end comes as a POST of the task to a2a-bench's receiver.
    A2aV03Push,
    /// A2A v1.0 `SendMessage` with `returnImmediately`, then `CancelTask` at once (`GetTask`
    /// after `--task-poll` while the task still works): the time until it is canceled.
    A2aCancel,
    /// [`Pattern::A2aCancel`] in the HTTP+JSON binding (`POST {path}/tasks/{id}:cancel`).
    A2aRestCancel,
    /// [`Pattern::A2aCancel`] in the gRPC binding.
    A2aGrpcCancel,
    /// [`Pattern::A2aCancel`] in v0.3 (`message/send` with `blocking: false`, `tasks/cancel`).
    A2aV03Cancel,
    /// A2A v1.0 `ListTasks`: a page of the server's tasks ([`Plan::page_size`]).
    A2aListTasks,
    /// [`Pattern::A2aListTasks`] in the HTTP+JSON binding (`GET {path}/tasks?pageSize=…`).
    A2aRestListTasks,
    /// [`Pattern::A2aListTasks`] in the gRPC binding.
    A2aGrpcListTasks,
    /// A2A v1.0 `GetExtendedAgentCard`: the card an authenticated client is shown.
    A2aExtendedCard,
    /// [`Pattern::A2aExtendedCard`] in the HTTP+JSON binding (`GET {path}/extendedAgentCard`).
    A2aRestExtendedCard,
    /// [`Pattern::A2aExtendedCard`] in the gRPC binding.
    A2aGrpcExtendedCard,
    /// A2A v0.3 `agent/getAuthenticatedExtendedCard`.
    A2aV03ExtendedCard,
    /// A2A v0.3 `SendMessage` in its HTTP+JSON binding: `POST {path}/v1/message:send`
    /// (`blocking: true`; the message's `content`).
    A2aV03RestMessage,
    /// A2A v0.3 `SendStreamingMessage` in its HTTP+JSON binding (`POST {path}/v1/message:stream`).
    A2aV03RestStream,
    /// [`Pattern::A2aV03Task`] in v0.3's HTTP+JSON binding (`GET {path}/v1/tasks/{id}`).
    A2aV03RestTask,
    /// [`Pattern::A2aV03Subscribe`] in v0.3's HTTP+JSON binding
    /// (`GET {path}/v1/tasks/{id}:subscribe`).
    A2aV03RestSubscribe,
    /// [`Pattern::A2aV03Push`] in v0.3's HTTP+JSON binding (`configuration.pushNotification`).
    A2aV03RestPush,
    /// [`Pattern::A2aV03Cancel`] in v0.3's HTTP+JSON binding
    /// (`POST {path}/v1/tasks/{id}:cancel`).
    A2aV03RestCancel,
    /// v0.3's HTTP+JSON `GetAgentCard` (`GET {path}/v1/card`: the authenticated extended card).
    A2aV03RestExtendedCard,
    /// [`Pattern::A2aConversation`] in v0.3 (`message/send`).
    A2aV03Conversation,
    /// [`Pattern::A2aConversation`] in v0.3's HTTP+JSON binding.
    A2aV03RestConversation,
    /// A2A v0.3 `SendMessage` in its gRPC binding (`a2a.v1.A2AService`, `blocking`).
    A2aV03GrpcMessage,
    /// A2A v0.3 `SendStreamingMessage` in its gRPC binding.
    A2aV03GrpcStream,
    /// [`Pattern::A2aConversation`] in v0.3's gRPC binding.
    A2aV03GrpcConversation,
    /// [`Pattern::A2aV03Task`] in v0.3's gRPC binding (`GetTask` of `tasks/{id}`).
    A2aV03GrpcTask,
    /// [`Pattern::A2aV03Subscribe`] in v0.3's gRPC binding (`TaskSubscription`).
    A2aV03GrpcSubscribe,
    /// [`Pattern::A2aV03Push`] in v0.3's gRPC binding (`configuration.push_notification`).
    A2aV03GrpcPush,
    /// [`Pattern::A2aV03Cancel`] in v0.3's gRPC binding (`CancelTask`).
    A2aV03GrpcCancel,
    /// v0.3's gRPC `GetAgentCard`: the agent's card.
    A2aV03GrpcAgentCard,
    /// MCP `tools/list`.
    McpToolsList,
    /// MCP `tools/call`.
    McpToolsCall,
    /// Registry `POST /agents`.
    RegistryRegister,
    /// Registry `GET /agents/{id}` (a preloaded agent).
    RegistryGet,
    /// Registry `GET /agents`.
    RegistryList,
    /// Registry `POST /agents/search`.
    RegistrySearch,
    /// Registry `GET /health`.
    RegistryHealth,
}

const PATTERNS: [(&str, Pattern); 60] = [
    ("health", Pattern::Health),
    ("a2a:message", Pattern::A2aMessage),
    ("a2a:stream", Pattern::A2aStream),
    ("a2a:conversation", Pattern::A2aConversation),
    ("a2a:agent_card", Pattern::AgentCard),
    ("a2a-v03:message", Pattern::A2aV03Message),
    ("a2a-v03:stream", Pattern::A2aV03Stream),
    ("a2a-rest:message", Pattern::A2aRestMessage),
    ("a2a-rest:stream", Pattern::A2aRestStream),
    ("a2a-rest:conversation", Pattern::A2aRestConversation),
    ("a2a:task", Pattern::A2aTask),
    ("a2a-rest:task", Pattern::A2aRestTask),
    ("a2a-grpc:task", Pattern::A2aGrpcTask),
    ("a2a:subscribe", Pattern::A2aSubscribe),
    ("a2a-rest:subscribe", Pattern::A2aRestSubscribe),
    ("a2a-grpc:subscribe", Pattern::A2aGrpcSubscribe),
    ("a2a-v03:task", Pattern::A2aV03Task),
    ("a2a-v03:subscribe", Pattern::A2aV03Subscribe),
    ("a2a:push", Pattern::A2aPush),
    ("a2a-rest:push", Pattern::A2aRestPush),
    ("a2a-grpc:push", Pattern::A2aGrpcPush),
    ("a2a-v03:push", Pattern::A2aV03Push),
    ("a2a:cancel", Pattern::A2aCancel),
    ("a2a-rest:cancel", Pattern::A2aRestCancel),
    ("a2a-grpc:cancel", Pattern::A2aGrpcCancel),
    ("a2a-v03:cancel", Pattern::A2aV03Cancel),
    ("a2a:list_tasks", Pattern::A2aListTasks),
    ("a2a-rest:list_tasks", Pattern::A2aRestListTasks),
    ("a2a-grpc:list_tasks", Pattern::A2aGrpcListTasks),
    ("a2a:extended_card", Pattern::A2aExtendedCard),
    ("a2a-rest:extended_card", Pattern::A2aRestExtendedCard),
    ("a2a-grpc:extended_card", Pattern::A2aGrpcExtendedCard),
    ("a2a-v03:extended_card", Pattern::A2aV03ExtendedCard),
    ("a2a-v03-rest:message", Pattern::A2aV03RestMessage),
    ("a2a-v03-rest:stream", Pattern::A2aV03RestStream),
    ("a2a-v03-rest:task", Pattern::A2aV03RestTask),
    ("a2a-v03-rest:subscribe", Pattern::A2aV03RestSubscribe),
    ("a2a-v03-rest:push", Pattern::A2aV03RestPush),
    ("a2a-v03-rest:cancel", Pattern::A2aV03RestCancel),
    ("a2a-v03-rest:extended_card", Pattern::A2aV03RestExtendedCard),
    ("a2a-v03:conversation", Pattern::A2aV03Conversation),
    ("a2a-v03-rest:conversation", Pattern::A2aV03RestConversation),
    ("a2a-grpc:message", Pattern::A2aGrpcMessage),
    ("a2a-grpc:stream", Pattern::A2aGrpcStream),
    ("a2a-grpc:conversation", Pattern::A2aGrpcConversation),
    ("a2a-v03-grpc:message", Pattern::A2aV03GrpcMessage),
    ("a2a-v03-grpc:stream", Pattern::A2aV03GrpcStream),
    ("a2a-v03-grpc:conversation", Pattern::A2aV03GrpcConversation),
    ("a2a-v03-grpc:task", Pattern::A2aV03GrpcTask),
    ("a2a-v03-grpc:subscribe", Pattern::A2aV03GrpcSubscribe),
    ("a2a-v03-grpc:push", Pattern::A2aV03GrpcPush),
    ("a2a-v03-grpc:cancel", Pattern::A2aV03GrpcCancel),
    ("a2a-v03-grpc:agent_card", Pattern::A2aV03GrpcAgentCard),
    ("mcp:tools/list", Pattern::McpToolsList),
    ("mcp:tools/call", Pattern::McpToolsCall),
    ("registry:register", Pattern::RegistryRegister),
    ("registry:get", Pattern::RegistryGet),
    ("registry:list", Pattern::RegistryList),
    ("registry:search", Pattern::RegistrySearch),
    ("registry:health", Pattern::RegistryHealth),
];

impl Pattern {
    /// Its name on the command line and in reports.
    pub fn name(self) -> &'static str {
        PATTERNS.iter().find(|(_, p)| *p == self).map_or("?", |(n, _)| n)
    }

    /// The pattern named `name` (as [`Pattern::name`] gives it).
    pub fn named(name: &str) -> Option<Pattern> {
        PATTERNS.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)
    }

    fn is_mcp(self) -> bool {
        matches!(self, Pattern::McpToolsList | Pattern::McpToolsCall)
    }

    /// Whether it is one of the registry's operations (under the URL's path).
    pub fn is_registry(self) -> bool {
        matches!(
            self,
            Pattern::RegistryRegister
                | Pattern::RegistryGet
                | Pattern::RegistryList
                | Pattern::RegistrySearch
                | Pattern::RegistryHealth
        )
    }

    /// Whether it speaks A2A's HTTP+JSON binding, v1.0's or v0.3's (operations under the URL's
    /// path, errors as HTTP statuses, v1.0's with a `google.rpc.Status` body).
    pub fn is_a2a_rest(self) -> bool {
        self.is_v03_rest()
            || matches!(
                self,
                Pattern::A2aRestMessage
                    | Pattern::A2aRestStream
                    | Pattern::A2aRestConversation
                    | Pattern::A2aRestTask
                    | Pattern::A2aRestSubscribe
                    | Pattern::A2aRestPush
                    | Pattern::A2aRestCancel
                    | Pattern::A2aRestListTasks
                    | Pattern::A2aRestExtendedCard
            )
    }

    /// Whether it speaks A2A v0.3's HTTP+JSON binding: its operations under `{path}/v1`, its
    /// ProtoJSON (a message's parts in `content`, `blocking`), no `A2A-Version`.
    pub fn is_v03_rest(self) -> bool {
        matches!(
            self,
            Pattern::A2aV03RestMessage
                | Pattern::A2aV03RestStream
                | Pattern::A2aV03RestTask
                | Pattern::A2aV03RestSubscribe
                | Pattern::A2aV03RestPush
                | Pattern::A2aV03RestCancel
                | Pattern::A2aV03RestExtendedCard
                | Pattern::A2aV03RestConversation
        )
    }

    /// Whether it follows a task to its end (`returnImmediately`, then `GetTask` polls or a
    /// subscription).
    pub fn is_task(self) -> bool {
        matches!(
            self,
            Pattern::A2aTask
                | Pattern::A2aRestTask
                | Pattern::A2aGrpcTask
                | Pattern::A2aV03Task
                | Pattern::A2aV03RestTask
                | Pattern::A2aV03GrpcTask
        ) || self.is_subscribe()
            || self.is_push()
            || self.is_cancel()
    }

    /// Whether it cancels its task (`CancelTask`) as soon as the task is accepted.
    pub fn is_cancel(self) -> bool {
        matches!(
            self,
            Pattern::A2aCancel
                | Pattern::A2aRestCancel
                | Pattern::A2aGrpcCancel
                | Pattern::A2aV03Cancel
                | Pattern::A2aV03RestCancel
                | Pattern::A2aV03GrpcCancel
        )
    }

    /// Whether it speaks A2A v1.0 (its requests say `A2A-Version: 1.0`): every A2A method but
    /// v0.3's; the agent card is not a method.
    pub fn is_a2a_v1(self) -> bool {
        !(self.is_v03()
            || self.is_v03_rest()
            || self.is_v03_grpc()
            || self.is_mcp()
            || self.is_registry()
            || matches!(self, Pattern::Health | Pattern::AgentCard))
    }

    /// Whether it asks `ListTasks` for a page.
    pub fn is_list(self) -> bool {
        matches!(
            self,
            Pattern::A2aListTasks | Pattern::A2aRestListTasks | Pattern::A2aGrpcListTasks
        )
    }

    /// Whether its task's end comes as a push notification.
    pub fn is_push(self) -> bool {
        matches!(
            self,
            Pattern::A2aPush
                | Pattern::A2aRestPush
                | Pattern::A2aGrpcPush
                | Pattern::A2aV03Push
                | Pattern::A2aV03RestPush
                | Pattern::A2aV03GrpcPush
        )
    }

    /// Whether it follows its task by `SubscribeToTask`.
    pub fn is_subscribe(self) -> bool {
        matches!(
            self,
            Pattern::A2aSubscribe
                | Pattern::A2aRestSubscribe
                | Pattern::A2aGrpcSubscribe
                | Pattern::A2aV03Subscribe
                | Pattern::A2aV03RestSubscribe
                | Pattern::A2aV03GrpcSubscribe
        )
    }

    /// Whether it speaks A2A v0.3's JSON-RPC methods (`message/send`, `tasks/get`, …) and
    /// shapes (`kind`, lower-case states).
    pub fn is_v03(self) -> bool {
        matches!(
            self,
            Pattern::A2aV03Message
                | Pattern::A2aV03Stream
                | Pattern::A2aV03Task
                | Pattern::A2aV03Subscribe
                | Pattern::A2aV03Push
                | Pattern::A2aV03Cancel
                | Pattern::A2aV03ExtendedCard
                | Pattern::A2aV03Conversation
        )
    }

    /// Whether it speaks A2A's gRPC binding, v1.0's or v0.3's (HTTP/2 only).
    pub fn is_grpc(self) -> bool {
        self.is_v03_grpc()
            || matches!(
                self,
                Pattern::A2aGrpcMessage
                    | Pattern::A2aGrpcStream
                    | Pattern::A2aGrpcConversation
                    | Pattern::A2aGrpcTask
                    | Pattern::A2aGrpcSubscribe
                    | Pattern::A2aGrpcPush
                    | Pattern::A2aGrpcCancel
                    | Pattern::A2aGrpcListTasks
                    | Pattern::A2aGrpcExtendedCard
            )
    }

    /// Whether it speaks A2A v0.3's gRPC binding: service `a2a.v1.A2AService`, v0.3's request
    /// messages, no `A2A-Version`.
    pub fn is_v03_grpc(self) -> bool {
        matches!(
            self,
            Pattern::A2aV03GrpcMessage
                | Pattern::A2aV03GrpcStream
                | Pattern::A2aV03GrpcConversation
                | Pattern::A2aV03GrpcTask
                | Pattern::A2aV03GrpcSubscribe
                | Pattern::A2aV03GrpcPush
                | Pattern::A2aV03GrpcCancel
                | Pattern::A2aV03GrpcAgentCard
        )
    }

    /// Whether its requests carry a conversation's `contextId`, which the answer must keep.
    pub fn is_conversation(self) -> bool {
        matches!(
            self,
            Pattern::A2aConversation
                | Pattern::A2aRestConversation
                | Pattern::A2aGrpcConversation
                | Pattern::A2aV03Conversation
                | Pattern::A2aV03RestConversation
                | Pattern::A2aV03GrpcConversation
        )
    }

    /// Whether its request's path is an operation's, under the URL's path (and before its
    /// query): the registry's and the A2A HTTP+JSON binding's.
    pub fn is_under_path(self) -> bool {
        self.is_registry() || self.is_a2a_rest()
    }

    /// Whether its request carries a message's text (or, `registry:register`, a card's
    /// description) of `--payload-size` bytes, or of a size `--payload-mix` draws: every
    /// pattern that sends a message, and the registration.
    pub fn carries_text(self) -> bool {
        matches!(
            self,
            Pattern::A2aMessage
                | Pattern::A2aV03Message
                | Pattern::A2aRestMessage
                | Pattern::A2aGrpcMessage
                | Pattern::A2aV03RestMessage
                | Pattern::A2aV03GrpcMessage
                | Pattern::RegistryRegister
        ) || self.is_stream()
            || self.is_conversation()
            || self.is_task()
    }

    /// Whether its answers are streams of events (server-sent events, or a gRPC server
    /// stream).
    pub fn is_stream(self) -> bool {
        matches!(
            self,
            Pattern::A2aStream
                | Pattern::A2aV03Stream
                | Pattern::A2aRestStream
                | Pattern::A2aV03RestStream
                | Pattern::A2aGrpcStream
                | Pattern::A2aV03GrpcStream
        )
    }
}

/// A message's text from `--text-file`: as it goes in a protobuf string, and escaped as it goes
/// inside a JSON string (without its quotes), both made once.
#[derive(Debug, Clone, Default)]
pub struct Text {
    /// The line as read.
    pub raw: Box<str>,
    /// The line escaped for a JSON string.
    pub json: Box<str>,
}

impl Text {
    /// `line` ready for both encodings.
    pub fn new(line: &str) -> Text {
        let quoted = serde_json::to_string(line).unwrap_or_default();
        let json = quoted.get(1..quoted.len().saturating_sub(1)).unwrap_or_default();
        Text { raw: line.into(), json: json.into() }
    }
}

/// The most requests one pattern of a mix may weigh (`a2a:message=100`).
pub const WEIGHT_MAX: u32 = 100;

/// A comma-separated mix of the names above, plus `mcp:mixed` (tools/list and tools/call),
/// with weights: `a2a:message=4,a2a:agent_card` (a bare name weighs 1; `mcp:mixed=N`
/// gives each of its two patterns N). Returns the patterns, each once, in the order given, and
/// each one's weight.
pub fn parse_mix(spec: &str) -> Result<(Vec<Pattern>, Vec<u32>), String> {
    let (mut out, mut weights) = (Vec::new(), Vec::new());
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, weight) = match item.split_once('=') {
            Some((n, w)) => {
                let w = w.trim().parse::<u32>().ok().filter(|w| (1..=WEIGHT_MAX).contains(w));
                let w = w.ok_or_else(|| {
                    format!("'{item}': a weight is a whole number from 1 to {WEIGHT_MAX}")
                })?;
                (n.trim(), w)
            }
            None => (item, 1),
        };
        let found: &[Pattern] = match name {
            "mcp:mixed" => &[Pattern::McpToolsList, Pattern::McpToolsCall],
            _ => match PATTERNS.iter().find(|(n, _)| *n == name) {
                Some((_, p)) => std::slice::from_ref(p),
                None => {
                    let known: Vec<&str> = PATTERNS.iter().map(|(n, _)| *n).collect();
                    return Err(format!(
                        "unknown pattern '{name}' (expected {}, or mcp:mixed)",
                        known.join(", ")
                    ));
                }
            },
        };
        for p in found {
            if out.contains(p) {
                return Err(format!("'{name}' is in the list twice (give it one weight)"));
            }
            out.push(*p);
            weights.push(weight);
        }
    }
    if out.is_empty() {
        return Err("the list is empty".into());
    }
    Ok((out, weights))
}

/// The order a client goes through a weighted mix, one pattern index per request: smooth
/// weighted round robin (each pattern as evenly spread as its weight allows: 4 and 1 give
/// `0 0 1 0 0`); empty when every weight is 1 (plain round robin).
pub fn schedule(weights: &[u32]) -> Vec<u8> {
    if weights.iter().all(|&w| w == 1) {
        return Vec::new();
    }
    let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
    let mut current = vec![0i64; weights.len()];
    (0..total)
        .map(|_| {
            for (c, &w) in current.iter_mut().zip(weights) {
                *c += i64::from(w);
            }
            let pick = (0..current.len()).max_by_key(|&i| (current[i], -(i as i64))).unwrap_or(0);
            current[pick] -= total;
            pick as u8
        })
        .collect()
}

/// `--compression`: what a run compresses. Answers coded gzip are read whatever it says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Nothing asked, nothing sent compressed.
    #[default]
    None,
    /// Answers asked for gzipped (`Accept-Encoding: gzip`; gRPC: `grpc-accept-encoding`),
    /// requests sent as they are.
    Answers,
    /// Request bodies gzipped at this level (`Content-Encoding: gzip`; gRPC: each message,
    /// `grpc-encoding: gzip`), and answers asked for gzipped.
    Gzip(u8),
}

impl Compression {
    /// Whether answers are asked for gzipped.
    pub fn asks(self) -> bool {
        self != Compression::None
    }

    /// Whether request bodies go gzipped.
    pub fn sends(self) -> bool {
        matches!(self, Compression::Gzip(_))
    }

    /// The compression level of request bodies (zlib's default where none is sent).
    pub fn level(self) -> u32 {
        match self {
            Compression::Gzip(level) => u32::from(level),
            _ => 6,
        }
    }
}

impl std::str::FromStr for Compression {
    type Err = String;

    fn from_str(s: &str) -> Result<Compression, String> {
        let bad = || {
            format!(
                "'{s}': gzip (requests and answers, level 6), gzip:LEVEL (1 to 9), \
                 answers (answers alone) or none"
            )
        };
        match s.split_once(':') {
            None if s == "gzip" => Ok(Compression::Gzip(6)),
            None if s == "answers" => Ok(Compression::Answers),
            None if s == "none" => Ok(Compression::None),
            Some(("gzip", level)) => match level.parse::<u8>() {
                Ok(l @ 1..=9) => Ok(Compression::Gzip(l)),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        }
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Compression::None => f.write_str("none"),
            Compression::Answers => f.write_str("answers"),
            Compression::Gzip(l) => write!(f, "gzip:{l}"),
        }
    }
}

/// What every client of a run sends, and where.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The mix's patterns, each once.
    pub patterns: Vec<Pattern>,
    /// The weighted mix's cycle ([`schedule`]): request `k` of a client is pattern
    /// `mix[(k + client) % mix.len()]`; empty: `(k + client) % patterns.len()`.
    pub mix: Vec<u8>,
    /// `Host` header value.
    pub host: String,
    /// The URL's path (JSON-RPC and MCP endpoint; the registry's base).
    pub path: String,
    /// `Authorization: Bearer` token.
    pub token: Option<String>,
    /// `mcp:tools/call`: the tool, as a JSON string (quoted).
    pub tool: String,
    /// `mcp:tools/call`: its arguments (a JSON object).
    pub args: String,
    /// MCP protocol version; [`MCP_SESSIONLESS`] needs no session.
    pub mcp_version: String,
    /// Registry agent ids registered before the run (`registry:get` picks among them).
    pub preloaded: Vec<String>,
    /// The conversation patterns (`a2a:conversation`, …): turns per context.
    pub turns: u32,
    /// The list patterns: the tasks a page asks for (`pageSize`, 1 to [`LIST_PAGE_MAX`]).
    pub page_size: u32,
    /// The list patterns: each client asks for the page after its last one (the answer's
    /// `nextPageToken`), and for the first again after the last page.
    pub page_walk: bool,
    /// `--list-status`: the list patterns ask for the tasks in this state alone (a `TaskState`,
    /// its place in [`crate::grpc::TASK_STATES`]; 0: any).
    pub list_status: u8,
    /// `--list-artifacts`: the list patterns ask for the tasks' artifacts too
    /// (`includeArtifacts`; A2A leaves them out by default).
    pub list_artifacts: bool,
    /// The task patterns: the time from a task's last answer (still working) to its
    /// next `GetTask` (0: at once).
    pub task_poll_ns: u64,
    /// `--task-poll-max`: each `GetTask` of a task still working waits twice as long as the
    /// one before, up to this (at most [`Plan::task_poll_ns`]: no backoff).
    pub task_poll_max_ns: u64,
    /// The task patterns: a task still working this long after its intended send time is an
    /// error of kind `task_timeout` (a server whose tasks never end does not hold the run).
    pub task_timeout_ns: u64,
    /// Most requests on the wire per connection (HTTP/1.1).
    pub pipeline: u32,
    /// HTTP/2 over cleartext (h2c, prior knowledge) instead of HTTP/1.1.
    pub http2: bool,
    /// `--timeout`: a request on the wire this long without its answer is an error of kind
    /// `timeout` (0: none).
    pub timeout_ns: u64,
    /// https://: every connection's TLS.
    pub tls: Option<crate::tls::Client>,
    /// `--no-keepalive`: one request per connection (`Connection: close`; HTTP/1.1).
    pub close: bool,
    /// `--header`s, (name, value): every request carries them; one named as a2a-bench's own
    /// `User-Agent`, `Accept` or `A2A-Version` replaces it.
    pub headers: Vec<(String, String)>,
    /// Each pattern's count in the cycle's first `k` slots, `k` from 0 to the cycle's length
    /// (pattern after pattern): [`Plan::count_before`]'s table, made on first use.
    pub counts: std::sync::OnceLock<Vec<u32>>,
    /// The push patterns: the receiver the servers notify.
    pub push: Option<Arc<push::Receiver>>,
    /// `--text-file`: the messages' texts (each request that sends one draws one); empty: the
    /// payload size in `x`.
    pub texts: Vec<Text>,
    /// `--args-file`: `mcp:tools/call`'s arguments, JSON objects (each call draws one); empty:
    /// [`Plan::args`].
    pub args_list: Vec<Box<str>>,
    /// `--compression`.
    pub compression: Compression,
}

impl Default for Plan {
    fn default() -> Plan {
        Plan {
            patterns: vec![Pattern::Health],
            mix: Vec::new(),
            host: String::new(),
            path: "/".into(),
            token: None,
            tool: "\"echo\"".into(),
            args: "{}".into(),
            mcp_version: "2025-06-18".into(),
            preloaded: Vec::new(),
            turns: 4,
            page_size: LIST_PAGE,
            page_walk: false,
            list_status: 0,
            list_artifacts: false,
            task_poll_ns: 100_000_000,
            task_poll_max_ns: 0,
            task_timeout_ns: 30_000_000_000,
            pipeline: 1,
            http2: false,
            timeout_ns: 0,
            tls: None,
            close: false,
            headers: Vec::new(),
            counts: std::sync::OnceLock::new(),
            push: None,
            texts: Vec::new(),
            args_list: Vec::new(),
            compression: Compression::None,
        }
    }
}

impl Plan {
    /// The cycle's length and its `k`th pattern index.
    fn cycle(&self) -> u64 {
        if self.mix.is_empty() {
            self.patterns.len() as u64
        } else {
            self.mix.len() as u64
        }
    }

    fn at(&self, k: u64) -> u8 {
        let n = self.cycle().max(1);
        if self.mix.is_empty() {
            (k % n) as u8
        } else {
            self.mix[(k % n) as usize]
        }
    }

    /// The index (into `patterns`) of request `seq` of `client`.
    pub fn slot(&self, client: u32, seq: u64) -> u8 {
        self.at(seq + u64::from(client))
    }

    /// How many of `client`'s requests before `seq` were of pattern index `i`: whole cycles,
    /// then the part of one from the client's offset, read off a table of counts (a weighted
    /// cycle may be a few thousand slots long).
    pub fn count_before(&self, i: u8, client: u32, seq: u64) -> u64 {
        let n = self.cycle().max(1);
        let stride = n as usize + 1;
        let counts = self.counts.get_or_init(|| {
            let mut t = vec![0u32; stride * self.patterns.len().max(1)];
            for k in 0..n {
                let at = usize::from(self.at(k));
                for (p, row) in t.chunks_mut(stride).enumerate() {
                    row[k as usize + 1] = row[k as usize] + u32::from(p == at);
                }
            }
            t
        });
        let Some(row) = counts.chunks(stride).nth(usize::from(i)) else { return 0 };
        let upto = |k: u64| u64::from(row[k as usize]);
        let (start, rest) = (u64::from(client) % n, seq % n);
        let end = start + rest;
        let part =
            if end <= n { upto(end) - upto(start) } else { upto(n) - upto(start) + upto(end - n) };
        seq / n * upto(n) + part
    }

    fn sessions(&self) -> bool {
        self.mcp_version != MCP_SESSIONLESS && self.patterns.iter().any(|p| p.is_mcp())
    }

    fn join(&self, tail: &str) -> String {
        format!("{}/{tail}", self.path.trim_end_matches('/'))
    }
}

/// One pattern's measured figures on one core (requests of the measured window).
#[derive(Debug, Clone)]
pub struct PatternStats {
    /// The pattern.
    pub pattern: Pattern,
    /// Answers.
    pub ok: u64,
    /// Errors, by kind.
    pub errors: Vec<(String, u64)>,
    /// Latency of answers from the intended send time.
    pub rtt: Histogram<u64>,
    /// Streams: time from the intended send time to the first event; tasks: to the answer
    /// that accepted the task.
    pub first_event: Histogram<u64>,
    /// Streams: events received in answers; tasks: `GetTask` polls of the tasks answered.
    pub events: u64,
}

impl PatternStats {
    /// Nothing measured yet.
    pub fn new(pattern: Pattern) -> PatternStats {
        PatternStats {
            pattern,
            ok: 0,
            errors: Vec::new(),
            rtt: crate::metrics::histogram(),
            first_event: crate::metrics::histogram(),
            events: 0,
        }
    }

    /// Adds another core's figures of the same pattern.
    pub fn merge(&mut self, o: &PatternStats) {
        self.ok += o.ok;
        for (k, n) in &o.errors {
            add(&mut self.errors, k, *n);
        }
        let _ = self.rtt.add(&o.rtt);
        let _ = self.first_event.add(&o.first_event);
        self.events += o.events;
    }

    fn error(&mut self, kind: &str) {
        add_name(&mut self.errors, kind);
    }
}

/// What a response on the wire answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum What {
    /// MCP `initialize`.
    Init,
    /// MCP `notifications/initialized`.
    Initialized,
    /// A booked request of this pattern (index into the plan's mix).
    Request(u8),
    /// A `GetTask` of a booked request of this task pattern (index into the plan's mix): its
    /// task is [`Wire::task`].
    Poll(u8),
    /// A `SubscribeToTask` of a booked request of this task pattern: its task is
    /// [`Wire::task`].
    Subscribe(u8),
    /// A `CancelTask` of a booked request of this cancel pattern: its task is [`Wire::task`].
    Cancel(u8),
    /// MCP session `DELETE`.
    Farewell,
}

impl What {
    /// The index in the plan's mix of the pattern it is a request of (a booked request, or a
    /// request that follows its task); `None` for the MCP session's own requests.
    fn pattern(self) -> Option<u8> {
        match self {
            What::Request(i) | What::Poll(i) | What::Subscribe(i) | What::Cancel(i) => Some(i),
            What::Init | What::Initialized | What::Farewell => None,
        }
    }

    /// Whether it follows a task ([`Wire::task`]): a `GetTask`, a subscription or a cancel.
    fn follows_task(self) -> bool {
        matches!(self, What::Poll(_) | What::Subscribe(_) | What::Cancel(_))
    }
}

#[derive(Debug, Clone, Copy)]
struct Wire {
    what: What,
    /// The client, local to the group.
    local: u32,
    seq: u64,
    intended_ns: u64,
    /// When the writer took its bytes for the socket.
    sent_ns: u64,
    /// The socket ring's submissions then ([`transit::count`]): its bytes left at the
    /// next one ([`Wire::left_ns`]).
    left: u64,
    measured: bool,
    /// Sent before, never processed, going again: its send time stays the first one.
    again: bool,
    /// A task pattern's request: its task's slot in [`Http::tasks`] once the task is known
    /// ([`NO_TASK`] until then).
    task: u32,
}

/// [`Wire::task`] of a request without a task.
const NO_TASK: u32 = u32::MAX;

/// A task followed to its end: what its polls need, and what its answer reports.
#[derive(Debug, Default)]
struct TaskSlot {
    /// The task's id (as the server gave it, unescaped).
    id: String,
    /// When its first request left ([`Wire::left_ns`]): its raw latency starts there.
    left_ns: u64,
    /// `GetTask`s answered so far.
    polls: u32,
    /// The push patterns: its booked request, while the task's end is awaited.
    parked: Option<Wire>,
}

impl Wire {
    /// When the request left: the socket ring's submission that carried it, if known, else
    /// when the writer took it. The raw latency starts here.
    fn left_ns(&self) -> u64 {
        transit::left_at(self.left).map_or(self.sent_ns, |t| t.max(self.sent_ns))
    }

    /// Its answer, handled at `now_ns`: when it left and when the answer arrived (the socket
    /// ring's pass that reaped it, if known, else now), the raw latency's two ends.
    fn transit(&self, now_ns: u64) -> (u64, u64) {
        let left = self.left_ns();
        let arrived = transit::arrived_at().map_or(now_ns, |t| t.clamp(left, now_ns.max(left)));
        (left, arrived)
    }

    /// The writer takes the request's bytes at `now_ns` (a request sent again keeps its first
    /// send).
    fn taken(&mut self, now_ns: u64) {
        if !self.again {
            self.sent_ns = now_ns;
            self.left = transit::count();
        }
    }
}

/// `REFUSED_STREAM` resets in a row on one connection, each sent again, before the next is an
/// error: a server that refuses every stream must not make the client spin.
const REFUSALS_MAX: u8 = 8;

#[derive(Default)]
struct Conn {
    out: Vec<u8>,
    /// Requests written, in order: the responses answer them.
    wire: VecDeque<Wire>,
    /// Requests waiting for room on the wire.
    queued: VecDeque<Wire>,
    /// The last this many of `wire` are rendered in `out` and not handed to the writer yet:
    /// their send time is when it takes them.
    unstamped: usize,
    /// The front request's first server-sent event arrived then (0: not yet).
    first_event_ns: u64,
    /// The front response while it arrives (HTTP/1.1): its head, once read, and where in its
    /// body a first event is looked for next; its body, if chunked, decoded so far.
    head: Option<parse::Head>,
    event_from: usize,
    dechunk: parse::Dechunk,
    /// The front response's body so far, where it ends at the connection's close.
    until_close: Vec<u8>,
    /// A gzipped event stream in front: its events decompressed as they come (to see the
    /// first one arrive).
    unzip: Option<Box<gzip::Unzip>>,
    /// Whether a response came since the connection opened.
    answered: bool,
    /// Connections in a row that ended without any answer: past [`STRIKES`] the server is
    /// taken as refusing this client, and the connection is lost.
    strikes: u8,
    /// HTTP/2 streams refused (`REFUSED_STREAM`) since its last answer: each is sent again,
    /// up to [`REFUSALS_MAX`] in a row.
    refusals: u8,
    /// The server said `Connection: close`: nothing more goes on it.
    closing: bool,
    /// Closed by the loop for a timeout: what was on its wire counts as `timeout`.
    expired: bool,
    /// Ended, and not replaced yet: requests wait in `queued`.
    down: bool,
    /// https://: the connection's TLS state.
    tls: Option<rustls::ClientConnection>,
    /// https://: what was decrypted and not used yet (a partial response).
    plain: Vec<u8>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Conn {{ wire: {}, queued: {} }}", self.wire.len(), self.queued.len())
    }
}

impl Conn {
    /// A connection of `plan`'s (with its TLS state for https://).
    fn new(plan: &Plan) -> Conn {
        Conn { tls: fresh_tls(plan), ..Conn::default() }
    }

    /// Whether a request may go on the wire now (HTTP/1.1: also a free pipeline slot).
    fn open(&self) -> bool {
        !self.down && !self.closing
    }

    /// Whether the front response's event stream, `body` so far (coded `coding`), holds its
    /// first event now; each call reads only what came since the last.
    fn event_seen(&mut self, coding: Coding, body: &[u8]) -> bool {
        if coding != Coding::Gzip {
            return parse::has_event(body, &mut self.event_from);
        }
        let u = self.unzip.get_or_insert_with(|| Box::new(gzip::Unzip::new(parse::BODY_MAX)));
        // A broken body is named when it ends.
        u.feed(body).is_ok() && parse::has_event(u.data(), &mut self.event_from)
    }

    /// The front response ended (or was cut): the next one is read from its start.
    fn response_ended(&mut self) {
        self.event_from = 0;
        if let Some(u) = &mut self.unzip {
            u.reset();
        }
    }
}

/// HTTP/1.1 requests and responses for one agent core.
#[derive(Debug)]
pub struct Http {
    plan: Arc<Plan>,
    conns: Vec<Conn>,
    /// Each client's MCP session id.
    sessions: Vec<Option<Box<str>>>,
    /// `--page-walk`: each client's next `ListTasks` page token (empty: the first page).
    cursors: Vec<String>,
    stats: Vec<PatternStats>,
    /// Written buffers, for reuse.
    spare: Vec<Vec<u8>>,
    body: Vec<u8>,
    event: Vec<u8>,
    context: String,
    /// `--compression`, and gzipped answers: the core's gzip state, made on first use.
    gz: Option<Box<gzip::Codec>>,
    /// Message text: the payload size in `x` (with a mix, its largest size; each request
    /// takes the start its drawn size asks for).
    text: String,
    /// `--payload-mix`, and each size's figures (requests of the patterns that carry text).
    mix: Option<PayloadMix>,
    sizes: Vec<SizeStats>,
    id_base: u32,
    first: u32,
    seats: Seats,
    /// `DELETE`s not answered yet.
    farewells: usize,
    /// `--http2`: each connection's HTTP/2 state (empty for HTTP/1.1).
    h2: Vec<h2c::H2Conn<Wire>>,
    /// The HTTP/2 heads carried over lately, shared by the core's connections.
    h2_heads: h2c::Heads,
    /// HTTP/2 streams that ended, being handled.
    done: Vec<h2c::Done<Wire>>,
    /// Per pattern of the mix, its requests' [`fixed_head`], written once (empty where the
    /// request line varies).
    heads: Vec<Vec<u8>>,
    /// Tasks being followed ([`Wire::task`]), and the free slots among them.
    tasks: Vec<TaskSlot>,
    free_tasks: Vec<u32>,
    /// `GetTask`s waiting for their time (`--task-poll`), in order: (due, connection, wire).
    polls: VecDeque<(u64, u32, Wire)>,
    /// Wakes the core's side task when `polls` gets its first entry (it fires them).
    poke: Option<flume::Sender<super::workload::Completed>>,
    /// The push patterns: this core's place in the notifications' URLs.
    push_core: usize,
    /// Tasks waiting for their end's notification, by (client, request number's low 32
    /// bits): their slot in `tasks` (which holds the booked request).
    pushed: HashMap<(u32, u32), u32>,
    /// Ends notified before their `SendMessage` was answered (their state codes), in two
    /// generations: every [`EARLY_TURN_NS`] the older is forgotten (a duplicate notification
    /// of an answered task waits there no longer than that).
    early: [HashMap<(u32, u32), u8>; 2],
    early_turn_ns: u64,
    /// When each waiting task times out: (due, slot, client, request number's low bits).
    push_due: std::collections::BinaryHeap<std::cmp::Reverse<(u64, u32, u32, u32)>>,
}
