//! The echo A2A agent: answers every message with its own text, in the A2A v1.0 JSON-RPC binding
//! (`SendMessage`, `SendStreamingMessage`; ProtoJSON shapes, header `A2A-Version: 1.0`), in
//! v1.0's HTTP+JSON binding (`POST /message:send`, `POST /message:stream`, under any prefix such
//! as a tenant; errors as HTTP statuses with a `google.rpc.Status` body) and in v0.3
//! (`message/send`, `message/stream`), in v1.0's gRPC binding (`lf.a2a.v1.A2AService`'s
//! `SendMessage` and `SendStreamingMessage` over HTTP/2, under any prefix), and serves its agent
//! card at
//! `/.well-known/agent-card.json` (and v0.3's `/.well-known/agent.json`). A stream is a task:
//! server-sent events (or a gRPC server stream) carrying the task (`working`), an artifact with
//! the echoed text, and a final `completed` status. A v1.0 `SendMessage` with
//! `returnImmediately` (in any of the three bindings) starts a task instead of answering:
//! `working` for the agent's task time, then `completed` with the text as its artifact, as
//! `GetTask` (`GET {prefix}/tasks/{id}` in HTTP+JSON) tells; tasks are kept a minute after they
//! end, a million at most (then each new task takes the place of the one that ended first, if
//! that ended a second ago). v0.3's `message/send` with `blocking: false` starts one the same way,
//! told by `tasks/get` and `tasks/resubscribe` in v0.3's shapes. A task started with a
//! `taskPushNotificationConfig` (in any of the three bindings; v0.3: `pushNotificationConfig`)
//! is also notified when it completes: a POST of its final status update (v0.3: the completed
//! task) to the config's URL, with its token in
//! `X-A2A-Notification-Token`, over a pool of keep-alive connections (best effort, as
//! a2a-sdk's sender). A task still working can be canceled (`CancelTask`, `POST
//! {prefix}/tasks/{id}:cancel`, v0.3's `tasks/cancel`, gRPC's `CancelTask`): it is then
//! canceled for good (one that ended is not cancelable: -32002, 409, `FAILED_PRECONDITION`),
//! and its push notification says so at once. `ListTasks` (JSON-RPC, `GET
//! {prefix}/tasks?pageSize=N&pageToken=T`, gRPC) answers a page of the tasks kept, those that
//! end latest first, with the next page's token and their number in all (their artifacts only
//! when `includeArtifacts` asks, as A2A has it). The public card
//! announces an extended one (`capabilities.extendedAgentCard`, v0.3's
//! `supportsAuthenticatedExtendedCard`), which `GetExtendedAgentCard` (JSON-RPC, `GET
//! {prefix}/extendedAgentCard`, gRPC) and v0.3's `agent/getAuthenticatedExtendedCard` answer:
//! the card with one more skill, behind the token when `--auth-token` sets one. v0.3's
//! HTTP+JSON binding is served under `{prefix}/v1` as a2a-sdk mounts it beside v1.0's (`POST
//! /v1/message:send`, `/v1/message:stream`, `GET /v1/tasks/{id}`, `:subscribe`, `POST
//! :cancel`, `GET /v1/card` for the extended card), unless a request says `A2A-Version: 1.x`:
//! ProtoJSON as v1.0's but a message's parts in `content`, `TASK_STATE_CANCELLED`, errors as
//! `{"message"}`; a `SendMessage` not `blocking` (proto3's default) starts a task. v0.3's gRPC
//! binding (`a2a.v1.A2AService`, under any prefix) is served as a2a-sdk 0.3 serves it:
//! `SendMessage` (a task unless `blocking`), `SendStreamingMessage`, `GetTask`, `CancelTask`,
//! `TaskSubscription` of `tasks/{id}`, `GetAgentCard` (the public card); errors named by the
//! type at the head of `grpc-message`, without status details.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use http_body_util::StreamBody;
use hyper::body::Frame;

use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use super::{body, fresh_id, json as json_reply, reply, rpc_error, Body, Events};
use crate::grpc;
use crate::grpc::{LIST_PAGE, LIST_PAGE_MAX};

/// The echo agent.
pub struct Echo {
    /// The public agent card, as served.
    card: Bytes,
    /// The extended agent card ([`extended_card`]) as served in JSON, and as a gRPC frame.
    extended: Bytes,
    extended_grpc: Bytes,
    /// The public card as v0.3's gRPC `GetAgentCard` answers it (a frame).
    card_v03_grpc: Bytes,
    /// The time between a stream's events (0: sent together).
    event_gap: Duration,
    /// How long a task works before it completes.
    task_time: Duration,
    /// The tasks started (shared with the push notifications waiting for their task's end).
    tasks: std::sync::Arc<TaskTables>,
    /// Sends push notifications.
    notifier: Box<Notifier>,
}

/// The client that sends push notifications.
type Notifier = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<Bytes>,
>;

/// A task the agent works on.
struct Task {
    context: String,
    text: String,
    /// When it completes.
    done_at: Instant,
    /// Canceled before it completed.
    canceled: bool,
    /// Wakes the push notification waiting for the task's end, when it is canceled first.
    wake: Option<std::sync::Arc<tokio::sync::Notify>>,
}

/// Where a task stands.
enum Now {
    Working,
    /// Completed, echoing this text.
    Completed(String),
    Canceled,
}

/// The tasks started, in [`TASK_SHARDS`] tables chosen by the id's hash, so that a table's
/// growth moves a small part of them at a time.
struct TaskTables {
    shards: Box<[Mutex<Tasks>]>,
    hasher: std::collections::hash_map::RandomState,
    /// What a page token's time counts from.
    born: Instant,
}

impl TaskTables {
    /// The table that holds task `id`, locked.
    fn table(&self, id: &str) -> std::sync::MutexGuard<'_, Tasks> {
        use std::hash::BuildHasher;
        let shard = self.hasher.hash_one(id) as usize % TASK_SHARDS;
        self.shards[shard].lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The tasks an agent keeps: by id, and in the order they end (every task works the same
/// time, so the order they started), so that each start drops the tasks kept past their time
/// from the front: a few at a time, never a pass over the table.
struct Tasks {
    by_id: HashMap<String, Task>,
    /// (when it ends, id), in that order.
    ending: VecDeque<(Instant, String)>,
    /// Tasks kept at most ([`TASKS_MAX`]).
    max: usize,
    /// How many of them were canceled (all end before the working ones: at their cancel).
    canceled: usize,
}

impl Tasks {
    fn new(max: usize) -> Tasks {
        Tasks { by_id: HashMap::new(), ending: VecDeque::new(), max, canceled: 0 }
    }

    /// Keeps `task` as `id` at `now` (its `done_at` the latest yet), after dropping the tasks
    /// that ended [`TASK_KEPT`] ago; once `max` are kept, the one that ended first makes room
    /// if it ended [`TASK_KEPT_FULL`] ago: false when it did not. A task that would end with
    /// the one before it ends a nanosecond later: no two of a table end together (a page
    /// token names a task by its end).
    fn insert(&mut self, id: &str, mut task: Task, now: Instant) -> bool {
        self.drop_ended(now, TASK_KEPT, usize::MAX);
        if self.by_id.len() >= self.max && self.drop_ended(now, TASK_KEPT_FULL, 1) == 0 {
            return false;
        }
        if let Some(&(last, _)) = self.ending.back() {
            task.done_at = task.done_at.max(last + Duration::from_nanos(1));
        }
        self.ending.push_back((task.done_at, id.into()));
        self.by_id.insert(id.into(), task);
        true
    }

    /// Drops the tasks, at most `most`, that ended `kept` or longer before `now`: how many.
    fn drop_ended(&mut self, now: Instant, kept: Duration, most: usize) -> usize {
        let mut dropped = 0;
        while let Some((done_at, id)) = self.ending.front() {
            if dropped == most || *done_at + kept > now {
                break;
            }
            if self.by_id.remove(id).is_some_and(|t| t.canceled) {
                self.canceled -= 1;
            }
            self.ending.pop_front();
            dropped += 1;
        }
        dropped
    }

    fn get(&self, id: &str) -> Option<&Task> {
        self.by_id.get(id)
    }

    /// How many tasks kept are in state `status` at `now` (a `TaskState`; 0: any): the
    /// working ones end after `now`, the canceled ones ended at their cancel, before it.
    fn count(&self, status: u8, now: Instant) -> usize {
        let ended = self.ending.partition_point(|(d, _)| *d <= now);
        match i32::from(status) {
            0 => self.by_id.len(),
            grpc::TASK_STATE_WORKING => self.ending.len() - ended,
            grpc::TASK_STATE_COMPLETED => ended.saturating_sub(self.canceled),
            grpc::TASK_STATE_CANCELED => self.canceled,
            _ => 0,
        }
    }

    /// Moves task `id`, kept to end at `was`, to end at `now` instead (a cancel: its last
    /// update), or a nanosecond after the tasks that end then: the order stays the ends', which
    /// stay distinct. Returns its end.
    fn end_now(&mut self, id: &str, was: Instant, now: Instant) -> Instant {
        let at = self.ending.partition_point(|(d, _)| *d < was);
        if self.ending.get(at).is_some_and(|(d, i)| *d == was && i == id) {
            self.ending.remove(at);
        }
        let mut end = now;
        let mut at = self.ending.partition_point(|(d, _)| *d < end);
        while let Some(&(d, _)) = self.ending.get(at).filter(|(d, _)| *d <= end) {
            end = d + Duration::from_nanos(1);
            at += 1;
        }
        self.ending.insert(at, (end, id.into()));
        if let Some(t) = self.by_id.get_mut(id) {
            t.done_at = end;
        }
        end
    }
}

/// Tasks kept at most; past them a new task is refused (`-32603` / 503).
const TASKS_MAX: usize = 1_000_000;

/// The tables the tasks are spread over (at a million tasks, a table that grows moves
/// 16 k of them, a few milliseconds, where one table would stop the agent for 0.3 s).
const TASK_SHARDS: usize = 64;

/// How long an ended task stays to be asked about.
const TASK_KEPT: Duration = Duration::from_secs(60);

/// How long, once [`TASKS_MAX`] are kept.
const TASK_KEPT_FULL: Duration = Duration::from_secs(1);

/// Which A2A version a method belongs to.
#[derive(Clone, Copy, PartialEq)]
enum Version {
    V1,
    V03,
    /// v0.3's HTTP+JSON binding (under `{prefix}/v1`): ProtoJSON as v1.0's, but a message's
    /// parts in `content`, `TASK_STATE_CANCELLED`, errors as `{"message"}`.
    V03Rest,
}

impl Echo {
    /// The agent serving at `addr`.
    pub fn new(addr: SocketAddr) -> Echo {
        let url = format!("http://{addr}/");
        let card = json!({
                "name": "a2a-bench echo",
                "description": "Answers every message with its own text (a2a-bench reference target)",
                "version": env!("CARGO_PKG_VERSION"),
                "url": url,
                "protocolVersion": "0.3.0",
                "supportedInterfaces": [
                    {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
                    {"url": url, "protocolBinding": "HTTP+JSON", "protocolVersion": "1.0"},
                    {"url": url, "protocolBinding": "GRPC", "protocolVersion": "1.0"}
                ],
                "capabilities": {"streaming": true, "extendedAgentCard": true},
                "supportsAuthenticatedExtendedCard": true,
                "defaultInputModes": ["text/plain"],
                "defaultOutputModes": ["text/plain"],
                "skills": [{"id": "echo", "name": "echo", "description": "Echoes the message text", "tags": ["echo"]}]
        });
        let extended = extended_card(&card);
        let mut extended_grpc = Vec::new();
        grpc::frame(&mut extended_grpc, |b| prost::Message::encode_raw(&card_proto(&extended), b));
        let mut card_v03_grpc = Vec::new();
        grpc::frame(&mut card_v03_grpc, |b| prost::Message::encode_raw(&card_v03_proto(&card), b));
        Echo {
            card_v03_grpc: card_v03_grpc.into(),
            card: card.to_string().into(),
            extended: extended.to_string().into(),
            extended_grpc: extended_grpc.into(),
            event_gap: Duration::ZERO,
            task_time: Duration::ZERO,
            tasks: std::sync::Arc::new(TaskTables {
                shards: (0..TASK_SHARDS)
                    .map(|_| Mutex::new(Tasks::new(TASKS_MAX / TASK_SHARDS)))
                    .collect(),
                hasher: Default::default(),
                born: Instant::now(),
            }),
            notifier: Box::new(
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build_http(),
            ),
        }
    }

    /// Works on a task started with `returnImmediately` for `time` before completing it.
    pub fn with_task_time(mut self, time: Duration) -> Echo {
        self.task_time = time;
        self
    }

    /// Starts a task echoing `text` in `context`: its id, or None when too many are kept.
    fn start_task(&self, context: &str, text: &str) -> Option<String> {
        let id = fresh_id("task");
        let mut tasks = self.table(&id);
        // Read under the lock: the tasks end in the order they are kept.
        let now = Instant::now();
        let task = Task {
            context: context.into(),
            text: text.into(),
            done_at: now + self.task_time,
            canceled: false,
            wake: None,
        };
        tasks.insert(&id, task, now).then_some(id)
    }

    /// The table that holds task `id`, locked.
    fn table(&self, id: &str) -> std::sync::MutexGuard<'_, Tasks> {
        self.tasks.table(id)
    }

    /// Task `id` as a v1.0 `Task` (ProtoJSON) or a v0.3 one, if the agent has it.
    fn task_json(&self, id: &str, version: Version) -> Option<Value> {
        let (context, now) = self.task_now(id)?;
        Some(match (now, version) {
            (Now::Working, Version::V1 | Version::V03Rest) => {
                json!({"id": id, "contextId": context, "status": {"state": "TASK_STATE_WORKING"}})
            }
            (Now::Working, Version::V03) => json!({"kind": "task", "id": id, "contextId": context,
                "status": {"state": "working"}}),
            (Now::Completed(text), Version::V1 | Version::V03Rest) => json!({"id": id,
                "contextId": context,
                "status": {"state": "TASK_STATE_COMPLETED"},
                "artifacts": [{"artifactId": format!("{id}-echo"), "parts": [{"text": text}]}]}),
            (Now::Completed(text), Version::V03) => json!({"kind": "task", "id": id,
                "contextId": context, "status": {"state": "completed"},
                "artifacts": [{"artifactId": format!("{id}-echo"),
                    "parts": [{"kind": "text", "text": text}]}]}),
            (Now::Canceled, Version::V1) => {
                json!({"id": id, "contextId": context, "status": {"state": "TASK_STATE_CANCELED"}})
            }
            (Now::Canceled, Version::V03Rest) => {
                json!({"id": id, "contextId": context, "status": {"state": "TASK_STATE_CANCELLED"}})
            }
            (Now::Canceled, Version::V03) => json!({"kind": "task", "id": id, "contextId": context,
                "status": {"state": "canceled"}}),
        })
    }

    /// Task `id` as the gRPC binding's `Task`, if the agent has it.
    fn task_proto(&self, id: &str) -> Option<grpc::Task> {
        let (context, now) = self.task_now(id)?;
        let (state, done) = match now {
            Now::Working => (grpc::TASK_STATE_WORKING, None),
            Now::Completed(text) => (grpc::TASK_STATE_COMPLETED, Some(text)),
            Now::Canceled => (grpc::TASK_STATE_CANCELED, None),
        };
        let artifacts = done.into_iter().map(|text| grpc::Artifact {
            artifact_id: format!("{id}-echo"),
            parts: vec![grpc::Part { text: Some(text) }],
        });
        Some(grpc::Task {
            id: id.into(),
            context_id: context,
            status: Some(grpc::TaskStatus { state }),
            artifacts: artifacts.collect(),
        })
    }

    /// A subscription to task `id`: how long until it completes, its context and its text;
    /// `None`: no such task; `Some(Err)`: it ended already (A2A refuses to subscribe then).
    fn subscription(&self, id: &str) -> Option<Result<(Duration, String, String), ()>> {
        let tasks = self.table(id);
        let t = tasks.get(id)?;
        let left = t.done_at.checked_duration_since(Instant::now()).filter(|d| !d.is_zero());
        let left = left.filter(|_| !t.canceled);
        Some(left.map(|left| (left, t.context.clone(), t.text.clone())).ok_or(()))
    }

    /// Task `id`'s context, and where it stands.
    fn task_now(&self, id: &str) -> Option<(String, Now)> {
        let tasks = self.table(id);
        let t = tasks.get(id)?;
        let now = match () {
            _ if t.canceled => Now::Canceled,
            _ if Instant::now() >= t.done_at => Now::Completed(t.text.clone()),
            _ => Now::Working,
        };
        Some((t.context.clone(), now))
    }

    /// A page of `ListTasks`: at most `size` task ids (clamped to A2A's 1–100), the tasks
    /// that end latest first over all the tables (a task's end is its last update: for a
    /// canceled one, its cancel), in state `status` alone unless it is 0, after the task
    /// `token` names (`Err` when it names none: not a token of ours); the next page's token
    /// (empty after the last page); and the number of tasks kept in that state (`totalSize`).
    fn page(&self, size: u64, token: &str, status: u8) -> Result<(Vec<String>, String, usize), ()> {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        let size = size.clamp(1, u64::from(LIST_PAGE_MAX)) as usize;
        let born = self.tasks.born;
        let after = match token {
            "" => None,
            t => {
                let (nanos, id) = t.split_once(':').ok_or(())?;
                let nanos = nanos.parse::<u64>().map_err(|_| ())?;
                Some((born + Duration::from_nanos(nanos), id))
            }
        };
        // The newest `size + 1` (one more tells whether a next page follows), in a heap whose
        // top is the oldest of them; each table read newest first until older than that.
        let mut kept: BinaryHeap<Reverse<(Instant, String)>> = BinaryHeap::with_capacity(size + 2);
        let mut total = 0;
        let now = Instant::now();
        for shard in self.tasks.shards.iter() {
            let tasks = shard.lock().unwrap_or_else(|e| e.into_inner());
            total += tasks.count(status, now);
            // A table's ends rise strictly: those after the token's task are skipped at once.
            let before = match after {
                Some((at, _)) => tasks.ending.partition_point(|(d, _)| *d <= at),
                None => tasks.ending.len(),
            };
            for (done_at, id) in tasks.ending.range(..before).rev() {
                if let Some((at, last)) = after {
                    if *done_at == at && id.as_str() >= last {
                        continue;
                    }
                }
                // `status`: the tasks in that state alone (working, completed or canceled).
                if status != 0 {
                    let state = match tasks.by_id.get(id) {
                        Some(t) if t.canceled => grpc::TASK_STATE_CANCELED,
                        _ if *done_at <= now => grpc::TASK_STATE_COMPLETED,
                        _ => grpc::TASK_STATE_WORKING,
                    };
                    if state != i32::from(status) {
                        continue;
                    }
                }
                if kept.len() > size {
                    let Some(Reverse((d, i))) = kept.peek() else { break };
                    if (done_at, id) <= (d, i) {
                        break;
                    }
                    kept.pop();
                }
                kept.push(Reverse((*done_at, id.clone())));
            }
        }
        let mut page: Vec<(Instant, String)> = kept.into_iter().map(|Reverse(k)| k).collect();
        page.sort_unstable_by(|a, b| b.cmp(a));
        let more = page.len() > size;
        page.truncate(size);
        let next = match page.last() {
            Some((d, id)) if more => format!("{}:{id}", d.duration_since(born).as_nanos()),
            _ => String::new(),
        };
        Ok((page.into_iter().map(|(_, id)| id).collect(), next, total))
    }

    /// `ListTasks` (v1.0; ProtoJSON): a page of `size` tasks after `token` ([`Echo::page`]).
    fn list_json(
        &self,
        size: u64,
        token: &str,
        (status, artifacts): (u8, bool),
    ) -> Result<Value, ()> {
        let (ids, next, total) = self.page(size, token, status)?;
        let mut tasks: Vec<Value> =
            ids.iter().filter_map(|id| self.task_json(id, Version::V1)).collect();
        if !artifacts {
            // A2A leaves the artifacts out unless `includeArtifacts` asks for them.
            for t in tasks.iter_mut().filter_map(Value::as_object_mut) {
                t.remove("artifacts");
            }
        }
        Ok(json!({"tasks": tasks, "nextPageToken": next, "pageSize": tasks.len(),
            "totalSize": total}))
    }

    /// Cancels task `id`: `None`, no such task; `Some(Err)`, it ended already (completed or
    /// canceled: A2A's task not cancelable).
    fn cancel(&self, id: &str) -> Option<Result<(), ()>> {
        let mut tasks = self.table(id);
        let now = Instant::now();
        let t = tasks.by_id.get_mut(id)?;
        if t.canceled || now >= t.done_at {
            return Some(Err(()));
        }
        t.canceled = true;
        if let Some(wake) = t.wake.take() {
            wake.notify_one();
        }
        // Its end is now: listed (and let go) by it, not by when it would have ended.
        let was = t.done_at;
        tasks.end_now(id, was, now);
        tasks.canceled += 1;
        Some(Ok(()))
    }

    /// A `SendMessage` with `returnImmediately` (v0.3: `message/send` with `blocking: false`):
    /// the task it started (`Err`: too many tasks). `request` is the whole `SendMessageRequest`:
    /// its push-notification config, if any, is notified when the task completes.
    fn task_answer(
        &self,
        request: &Value,
        message: &Value,
        text: &str,
        version: Version,
    ) -> Result<Value, ()> {
        let out = answer(message, text, version);
        let context = out["contextId"].as_str().unwrap_or_default();
        let id = self.start_task(context, text).ok_or(())?;
        let config = request.pointer(match version {
            Version::V1 => "/configuration/taskPushNotificationConfig",
            Version::V03 => "/configuration/pushNotificationConfig",
            Version::V03Rest => "/configuration/pushNotification",
        });
        if let Some(url) = config.and_then(|c| c.get("url")).and_then(Value::as_str) {
            let token = config.and_then(|c| c.get("token")).and_then(Value::as_str);
            // Its authentication (v1.0: a scheme; v0.3: a list of schemes, the first taken).
            let authorization = config.and_then(|c| c.get("authentication")).and_then(|a| {
                let scheme = a.get("scheme").or_else(|| a.pointer("/schemes/0"));
                let credentials = a.get("credentials").and_then(Value::as_str)?;
                Some(format!("{} {credentials}", scheme.and_then(Value::as_str)?))
            });
            let auth = (token.unwrap_or_default(), authorization);
            self.notify_when_done(url, auth, (&id, context, text), version);
        }
        self.task_json(&id, version).ok_or(())
    }

    /// When task `id` (in `context`, echoing `text`) ends, POSTs its final status update
    /// (v0.3, either binding: the task, as a2a-sdk 0.3 sends it) to `url` (with `auth`'s token, if any, in `X-A2A-Notification-Token`,
    /// and its `Authorization` value, if the config asked for one): completed, or canceled
    /// when it is canceled first (then at once); best effort, as a2a-sdk's sender.
    fn notify_when_done(
        &self,
        url: &str,
        (token, authorization): (&str, Option<String>),
        task: (&str, &str, &str),
        version: Version,
    ) {
        let Ok(url) = url.parse::<hyper::Uri>() else { return };
        let token = (!token.is_empty()).then(|| token.to_string());
        let (id, context, text) = (task.0.to_string(), task.1.to_string(), task.2.to_string());
        let (notifier, after) = ((*self.notifier).clone(), self.task_time);
        let tasks = std::sync::Arc::clone(&self.tasks);
        let wake = std::sync::Arc::new(tokio::sync::Notify::new());
        if let Some(t) = tasks.table(&id).by_id.get_mut(&id) {
            t.wake = Some(wake.clone());
        }
        tokio::spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(after) => {}
                () = wake.notified() => {}
            }
            let canceled = tasks.table(&id).get(&id).is_some_and(|t| t.canceled);
            let update = match (version == Version::V1, canceled) {
                (true, false) => json!({"statusUpdate": {"taskId": id,
                    "contextId": context, "status": {"state": "TASK_STATE_COMPLETED"}}}),
                (true, true) => json!({"statusUpdate": {"taskId": id,
                    "contextId": context, "status": {"state": "TASK_STATE_CANCELED"}}}),
                (false, false) => json!({"kind": "task", "id": id, "contextId": context,
                    "status": {"state": "completed"},
                    "artifacts": [{"artifactId": format!("{id}-echo"),
                        "parts": [{"kind": "text", "text": text}]}]}),
                (false, true) => json!({"kind": "task", "id": id, "contextId": context,
                    "status": {"state": "canceled"}}),
            };
            let mut post = Request::post(url).header("content-type", "application/json");
            if let Some(token) = token {
                post = post.header("x-a2a-notification-token", token);
            }
            if let Some(authorization) = authorization {
                post = post.header(hyper::header::AUTHORIZATION, authorization);
            }
            let body = http_body_util::Full::new(Bytes::from(update.to_string()));
            if let Ok(post) = post.body(body) {
                let _ = notifier.request(post).await;
            }
        });
    }

    /// Streams its events `gap` apart, each its own chunk (as an agent answering token by
    /// token does), instead of together.
    pub fn with_event_gap(mut self, gap: Duration) -> Echo {
        self.event_gap = gap;
        self
    }

    pub(crate) async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let path = req.uri().path().to_string();
        // The HTTP+JSON binding's version: v0.3's under `{prefix}/v1` (as a2a-sdk mounts it
        // beside v1.0's), unless the request says `A2A-Version: 1.x`.
        let says_v1 =
            req.headers().get("a2a-version").is_some_and(|v| v.as_bytes().starts_with(b"1"));
        let rest_version = |prefix: &str| match prefix.ends_with("/v1") && !says_v1 {
            true => Version::V03Rest,
            false => Version::V1,
        };
        match (req.method(), path.as_str()) {
            (&Method::GET, "/.well-known/agent-card.json" | "/.well-known/agent.json") => {
                reply(StatusCode::OK, "application/json", self.card.clone())
            }
            (&Method::GET, p) if p.ends_with(":subscribe") && p.contains("/tasks/") => {
                let (prefix, id) = p.rsplit_once("/tasks/").unwrap_or_default();
                let id = id.trim_end_matches(":subscribe");
                let version = rest_version(prefix);
                match self.subscription(id) {
                    Some(Ok((left, context, text))) => {
                        let all = task_events(id, &context, &text, version)
                            .map(|e| Bytes::from(format!("data: {e}\n\n")));
                        timed(all, left, "text/event-stream", None)
                    }
                    Some(Err(())) => rest_error_in(
                        version,
                        StatusCode::BAD_REQUEST,
                        "FAILED_PRECONDITION",
                        "UNSUPPORTED_OPERATION",
                        "the task ended",
                    ),
                    None => rest_error_in(
                        version,
                        StatusCode::NOT_FOUND,
                        "NOT_FOUND",
                        "TASK_NOT_FOUND",
                        "no such task",
                    ),
                }
            }
            (&Method::GET, p) if p == "/tasks" || p.ends_with("/tasks") => {
                let query = |name: &str| {
                    let mut all = req.uri().query().into_iter().flat_map(|q| q.split('&'));
                    all.find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                };
                let size = query("pageSize").and_then(|n| n.parse().ok());
                // Our tokens need no percent-decoding: digits, a colon, an id of ours.
                let token = query("pageToken").unwrap_or_default().replace("%3A", ":");
                let status = state_filter(query("status").map(|s| Value::String(s.into())));
                let artifacts = query("includeArtifacts") == Some("true");
                let size = size.unwrap_or(u64::from(LIST_PAGE));
                let listed = status.and_then(|s| self.list_json(size, &token, (s, artifacts)));
                match listed {
                    Ok(page) => reply(StatusCode::OK, A2A_JSON, page.to_string()),
                    Err(()) => rest_error(
                        StatusCode::BAD_REQUEST,
                        "INVALID_ARGUMENT",
                        "INVALID_PARAMS",
                        "not a page token of this agent's, or not a task state",
                    ),
                }
            }
            (&Method::GET, p) if p == "/extendedAgentCard" || p.ends_with("/extendedAgentCard") => {
                reply(StatusCode::OK, A2A_JSON, self.extended.clone())
            }
            // v0.3's HTTP+JSON `GetAgentCard`: the card an authenticated client is shown.
            (&Method::GET, p) if p.ends_with("/v1/card") => {
                reply(StatusCode::OK, "application/json", self.extended.clone())
            }
            (&Method::POST, p) if p.ends_with(":cancel") && p.contains("/tasks/") => {
                let (prefix, id) = p.rsplit_once("/tasks/").unwrap_or_default();
                let id = id.trim_end_matches(":cancel");
                let version = rest_version(prefix);
                match self.cancel(id).map(|c| c.map(|()| self.task_json(id, version))) {
                    Some(Ok(Some(task))) => {
                        reply(StatusCode::OK, rest_type(version), task.to_string())
                    }
                    Some(Err(())) => rest_error_in(
                        version,
                        StatusCode::CONFLICT,
                        "FAILED_PRECONDITION",
                        "TASK_NOT_CANCELABLE",
                        "the task ended",
                    ),
                    _ => rest_error_in(
                        version,
                        StatusCode::NOT_FOUND,
                        "NOT_FOUND",
                        "TASK_NOT_FOUND",
                        "no such task",
                    ),
                }
            }
            (&Method::GET, p) if p.rsplit_once("/tasks/").is_some() => {
                let (prefix, id) = p.rsplit_once("/tasks/").unwrap_or_default();
                let version = rest_version(prefix);
                match self.task_json(id, version) {
                    Some(task) => reply(StatusCode::OK, rest_type(version), task.to_string()),
                    None => rest_error_in(
                        version,
                        StatusCode::NOT_FOUND,
                        "NOT_FOUND",
                        "TASK_NOT_FOUND",
                        "no such task",
                    ),
                }
            }
            (&Method::POST, p)
                if p.ends_with("/message:send") || p.ends_with("/message:stream") =>
            {
                let stream = p.ends_with("/message:stream");
                let binding = rest_version(p.rsplit_once("/message:").unwrap_or_default().0);
                match body(req).await {
                    Ok((parts, bytes)) => {
                        let version = parts.headers.get("a2a-version").map(|v| v.as_bytes());
                        self.rest(&bytes, (binding, version), stream)
                    }
                    Err(r) => r,
                }
            }
            (&Method::POST, p) if p.contains(grpc::SERVICE_V03) => {
                let method = p.rsplit('/').next().unwrap_or_default().to_string();
                if let Some(refused) = not_grpc(&req) {
                    return refused;
                }
                match body(req).await {
                    Ok((_, bytes)) => self.grpc_v03(&bytes, &method),
                    Err(r) => r,
                }
            }
            (&Method::POST, p) if p.contains(grpc::SERVICE) => {
                let method = p.rsplit('/').next().unwrap_or_default();
                // Some(stream) for the two SendMessages, None for GetTask and SubscribeToTask.
                let stream = match method {
                    grpc::SEND_MESSAGE => Some(false),
                    grpc::SEND_STREAMING_MESSAGE => Some(true),
                    grpc::GET_TASK | grpc::SUBSCRIBE_TO_TASK | grpc::CANCEL_TASK => None,
                    grpc::LIST_TASKS | grpc::GET_EXTENDED_AGENT_CARD => None,
                    _ => return grpc_error(12, &format!("no method {method}"), None),
                };
                if let Some(refused) = not_grpc(&req) {
                    return refused;
                }
                match body(req).await {
                    Ok((parts, bytes)) => {
                        let version = parts.headers.get("a2a-version").map(|v| v.as_bytes());
                        match stream {
                            Some(stream) => self.grpc_call(&bytes, version, stream),
                            None if method == grpc::LIST_TASKS => self.grpc_list(&bytes, version),
                            None if method == grpc::GET_EXTENDED_AGENT_CARD => {
                                self.grpc_extended_card(&bytes, version)
                            }
                            None => self.grpc_get_task(&bytes, version, method),
                        }
                    }
                    Err(r) => r,
                }
            }
            (&Method::POST, _) => match body(req).await {
                Ok((_, bytes)) => self.rpc(&bytes),
                Err(r) => r,
            },
            _ => {
                reply(StatusCode::NOT_FOUND, "text/plain", "POST JSON-RPC, or GET the agent card\n")
            }
        }
    }
}

/// The extended agent card (`GetExtendedAgentCard`): the public `card` with one more
/// skill, which only an authenticated client is shown.
fn extended_card(card: &Value) -> Value {
    let mut card = card.clone();
    if let Some(skills) = card["skills"].as_array_mut() {
        skills.push(json!({"id": "echo-extended", "name": "echo, extended",
            "description": "Echoes the message text, for authenticated clients",
            "tags": ["echo"]}));
    }
    card
}

/// `card` (ProtoJSON) as the gRPC binding's `AgentCard`.
fn card_proto(card: &Value) -> grpc::AgentCard {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let texts = |v: &Value| v.as_array().map_or(vec![], |a| a.iter().map(text).collect());
    let interfaces = card["supportedInterfaces"].as_array().map_or(vec![], |all| {
        all.iter()
            .map(|i| grpc::AgentInterface {
                url: text(&i["url"]),
                protocol_binding: text(&i["protocolBinding"]),
                protocol_version: text(&i["protocolVersion"]),
            })
            .collect()
    });
    let skills = card["skills"].as_array().map_or(vec![], |all| {
        all.iter()
            .map(|s| grpc::AgentSkill {
                id: text(&s["id"]),
                name: text(&s["name"]),
                description: text(&s["description"]),
                tags: texts(&s["tags"]),
            })
            .collect()
    });
    grpc::AgentCard {
        name: text(&card["name"]),
        description: text(&card["description"]),
        supported_interfaces: interfaces,
        version: text(&card["version"]),
        capabilities: Some(grpc::AgentCapabilities {
            streaming: Some(true),
            extended_agent_card: Some(true),
        }),
        default_input_modes: texts(&card["defaultInputModes"]),
        default_output_modes: texts(&card["defaultOutputModes"]),
        skills,
    }
}

/// `card` (ProtoJSON) as v0.3's gRPC `AgentCard` (its own url, preferring gRPC).
fn card_v03_proto(card: &Value) -> grpc::V03AgentCard {
    let v1 = card_proto(card);
    grpc::V03AgentCard {
        name: v1.name,
        description: v1.description,
        url: card["url"].as_str().unwrap_or_default().to_string(),
        version: v1.version,
        capabilities: Some(grpc::V03AgentCapabilities {
            streaming: true,
            push_notifications: true,
        }),
        default_input_modes: v1.default_input_modes,
        default_output_modes: v1.default_output_modes,
        skills: v1.skills,
        supports_authenticated_extended_card: true,
        preferred_transport: "GRPC".into(),
        protocol_version: "0.3.0".into(),
    }
}

/// The text of a message's parts (v1.0 `{"text"}` or v0.3 `{"kind":"text","text"}`; v0.3's
/// HTTP+JSON binding calls them `content`).
fn text_of(message: &Value) -> Option<String> {
    let parts = message.get("parts").or_else(|| message.get("content"))?.as_array()?;
    Some(
        parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
    )
}

/// A JSON-RPC call as the fast path reads it: strings borrowed, the id kept as written.
#[derive(serde::Deserialize)]
struct PlainCall<'a> {
    #[serde(borrow)]
    id: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow)]
    method: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    params: PlainParams<'a>,
}

/// Params that hold a message and nothing else: no configuration, no metadata.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainParams<'a> {
    #[serde(borrow)]
    message: PlainMessage<'a>,
}

/// A message of text parts, v1.0's or v0.3's, with the members a client of the echo sends.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainMessage<'a> {
    #[serde(borrow, rename = "contextId")]
    context_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    parts: Vec<PlainPart<'a>>,
    #[serde(borrow, rename = "messageId")]
    _message_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, rename = "role")]
    _role: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, rename = "kind")]
    _kind: Option<std::borrow::Cow<'a, str>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainPart<'a> {
    #[serde(borrow)]
    text: std::borrow::Cow<'a, str>,
    #[serde(borrow, rename = "kind")]
    _kind: Option<std::borrow::Cow<'a, str>>,
}

/// The commonest calls, `SendMessage` and `SendStreamingMessage` (or v0.3's `message/send`
/// and `message/stream`; or v1.0's HTTP+JSON `message:send`, `message:stream`) with a message
/// of text parts and nothing else, read borrowed: no `Value` tree. The general path answers
/// any other call, or one with more in it, and answers these alike
/// (`a_plain_send_is_answered_as_the_general_path_answers`).
struct Plain<'a> {
    /// A JSON-RPC call's id as written (`null` when it has none); None in HTTP+JSON, whose
    /// answers have no envelope.
    id: Option<&'a str>,
    version: Version,
    stream: bool,
    /// The message's context, or a fresh one.
    context: String,
    /// Its parts' text.
    text: String,
}

impl<'a> Plain<'a> {
    fn read(bytes: &'a [u8]) -> Option<Plain<'a>> {
        let call: PlainCall = serde_json::from_slice(bytes).ok()?;
        let (version, stream) = match &*call.method {
            "SendMessage" => (Version::V1, false),
            "SendStreamingMessage" => (Version::V1, true),
            "message/send" => (Version::V03, false),
            "message/stream" => (Version::V03, true),
            _ => return None,
        };
        let id = Some(call.id.map_or("null", |id| id.get()));
        Some(Plain::of(call.params.message, id, version, stream))
    }

    /// A v1.0 HTTP+JSON `message:send` (or `message:stream`) body.
    fn read_rest(bytes: &[u8], stream: bool) -> Option<Plain<'static>> {
        let body: PlainParams = serde_json::from_slice(bytes).ok()?;
        Some(Plain::of(body.message, None, Version::V1, stream))
    }

    fn of(message: PlainMessage, id: Option<&'a str>, version: Version, stream: bool) -> Self {
        let text = message.parts.iter().map(|p| &*p.text).collect();
        let context = message.context_id.map_or_else(|| fresh_id("ctx"), |c| c.into_owned());
        Plain { id, version, stream, context, text }
    }

    /// The answer to a send: the echo as a message, written out.
    fn answer(&self) -> Vec<u8> {
        let (version, text) = (self.version, &self.text);
        let string = |out: &mut Vec<u8>, s: &str| {
            // Writing a str into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, s);
        };
        let mut out = Vec::with_capacity(160 + 2 * text.len());
        if let Some(id) = self.id {
            out.extend_from_slice(br#"{"id":"#);
            out.extend_from_slice(id.as_bytes());
            out.extend_from_slice(br#","jsonrpc":"2.0","result":"#);
        }
        let (head, part) = match version {
            Version::V1 => (&br#"{"message":{"contextId":"#[..], &br#""parts":[{"text":"#[..]),
            _ => (
                &br#"{"contextId":"#[..],
                &br#""kind":"message","parts":[{"kind":"text","text":"#[..],
            ),
        };
        out.extend_from_slice(head);
        string(&mut out, &self.context);
        out.extend_from_slice(br#","messageId":"#);
        string(&mut out, &fresh_id("msg"));
        out.push(b',');
        out.extend_from_slice(part);
        string(&mut out, text);
        let role = if version == Version::V1 { "ROLE_AGENT" } else { "agent" };
        out.extend_from_slice(br#"}],"role":"#);
        string(&mut out, role);
        out.extend_from_slice(if version == Version::V1 { b"}}" } else { b"}" });
        if self.id.is_some() {
            out.push(b'}');
        }
        out
    }

    /// The events of a stream: task `task`'s three, each in the call's envelope.
    fn events(&self, task: &str) -> [String; 3] {
        task_events(task, &self.context, &self.text, self.version).map(|e| match self.id {
            Some(id) => format!("data: {{\"id\":{id},\"jsonrpc\":\"2.0\",\"result\":{e}}}\n\n"),
            None => format!("data: {e}\n\n"),
        })
    }
}

/// The agent's answer to `message` in `version`'s shapes.
fn answer(message: &Value, text: &str, version: Version) -> Value {
    let context = message
        .get("contextId")
        .and_then(Value::as_str)
        .map_or_else(|| fresh_id("ctx"), str::to_string);
    match version {
        Version::V1 => json!({
            "role": "ROLE_AGENT", "messageId": fresh_id("msg"), "contextId": context,
            "parts": [{"text": text}]
        }),
        Version::V03 => json!({
            "kind": "message", "role": "agent", "messageId": fresh_id("msg"), "contextId": context,
            "parts": [{"kind": "text", "text": text}]
        }),
        Version::V03Rest => json!({
            "role": "ROLE_AGENT", "messageId": fresh_id("msg"), "contextId": context,
            "content": [{"text": text}]
        }),
    }
}

/// The three events of a streamed echo: the task, its artifact, its final status.
fn task_events(task: &str, context: &str, text: &str, version: Version) -> [Value; 3] {
    let artifact = fresh_id("artifact");
    match version {
        // v0.3's HTTP+JSON events are v1.0's (an artifact's parts are `parts` in both).
        Version::V1 | Version::V03Rest => [
            json!({"task": {"id": task, "contextId": context, "status": {"state": "TASK_STATE_WORKING"}}}),
            json!({"artifactUpdate": {"taskId": task, "contextId": context,
                "artifact": {"artifactId": artifact, "parts": [{"text": text}]}, "lastChunk": true}}),
            json!({"statusUpdate": {"taskId": task, "contextId": context,
                "status": {"state": "TASK_STATE_COMPLETED"}, "final": true}}),
        ],
        Version::V03 => [
            json!({"kind": "task", "id": task, "contextId": context, "status": {"state": "working"}}),
            json!({"kind": "artifact-update", "taskId": task, "contextId": context,
                "artifact": {"artifactId": artifact, "parts": [{"kind": "text", "text": text}]}, "lastChunk": true}),
            json!({"kind": "status-update", "taskId": task, "contextId": context,
                "status": {"state": "completed"}, "final": true}),
        ],
    }
}

/// Server-sent events, sent together or `gap` apart, each its own frame (a chunk over
/// HTTP/1.1), as an agent answering token by token does.
fn events(events: [String; 3], gap: Duration) -> Response<Body> {
    if gap.is_zero() {
        return reply(StatusCode::OK, "text/event-stream", events.concat());
    }
    let frames = events.into_iter().enumerate().map(move |(i, e)| async move {
        if i > 0 {
            tokio::time::sleep(gap).await;
        }
        Ok(Frame::data(Bytes::from(e)))
    });
    let stream: Events = Box::pin(futures_util::stream::iter(frames).then(|f| f));
    let mut r = reply(StatusCode::OK, "text/event-stream", "");
    *r.body_mut() = Body::Right(StreamBody::new(stream));
    r
}

/// The HTTP+JSON binding's media type.
const A2A_JSON: &str = "application/a2a+json";

/// An HTTP+JSON error: the status, and a `google.rpc.Status` body whose `ErrorInfo` gives
/// A2A's reason.
fn rest_error(status: StatusCode, grpc: &str, reason: &str, message: &str) -> Response<Body> {
    let body = json!({"error": {"code": status.as_u16(), "status": grpc, "message": message,
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
            "domain": "a2a-protocol.org"}]}});
    reply(status, A2A_JSON, body.to_string())
}

/// An HTTP+JSON error in `version`'s binding: v1.0's [`rest_error`], or v0.3's
/// `{"message"}` (as a2a-sdk 0.3 answers).
fn rest_error_in(
    version: Version,
    status: StatusCode,
    grpc: &str,
    reason: &str,
    message: &str,
) -> Response<Body> {
    if version == Version::V03Rest {
        return reply(status, "application/json", json!({ "message": message }).to_string());
    }
    rest_error(status, grpc, reason, message)
}

/// The media type of an HTTP+JSON answer in `version`'s binding (v0.3's is plain JSON).
fn rest_type(version: Version) -> &'static str {
    if version == Version::V03Rest {
        "application/json"
    } else {
        A2A_JSON
    }
}

/// A `ListTasks` status filter: a `TaskState` by its name (`TASK_STATE_COMPLETED`, as
/// ProtoJSON writes it) or number; none is 0 (any state). `Err` for anything else.
fn state_filter(value: Option<Value>) -> Result<u8, ()> {
    match value {
        None | Some(Value::Null) => Ok(0),
        Some(Value::String(name)) if name == "TASK_STATE_UNSPECIFIED" => Ok(0),
        Some(Value::String(name)) => match name.parse::<u8>() {
            Ok(n) if usize::from(n) < grpc::TASK_STATES.len() => Ok(n),
            _ => grpc::task_state_named(&name).ok_or(()),
        },
        Some(Value::Number(n)) => {
            n.as_u64().filter(|n| *n < grpc::TASK_STATES.len() as u64).map(|n| n as u8).ok_or(())
        }
        Some(_) => Err(()),
    }
}

/// Whether a v1.0 request asks for its task at once (`configuration.returnImmediately`).
fn immediately(request: &Value) -> bool {
    request.pointer("/configuration/returnImmediately").and_then(Value::as_bool) == Some(true)
}

impl Echo {
    /// `SendMessage` or `SendStreamingMessage` in the HTTP+JSON binding, v1.0's or v0.3's
    /// (`binding`). A v1.0 request that names an `A2A-Version` other than 1.x is refused
    /// (`VERSION_NOT_SUPPORTED`); one that names none is taken as 1.0. v0.3's answers at once
    /// (a task) unless `configuration.blocking` is true: proto3's default is false, and
    /// a2a-sdk 0.3 reads it so.
    fn rest(
        &self,
        bytes: &Bytes,
        (binding, version): (Version, Option<&[u8]>),
        stream: bool,
    ) -> Response<Body> {
        let gap = self.event_gap;
        let bad = |reason: &str, message: &str| {
            rest_error_in(binding, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", reason, message)
        };
        let v03 = binding == Version::V03Rest;
        if !v03 && version.is_some_and(|v| v != b"1" && !v.starts_with(b"1.")) {
            return rest_error(
                StatusCode::BAD_REQUEST,
                "FAILED_PRECONDITION",
                "VERSION_NOT_SUPPORTED",
                "this agent speaks A2A 1.0",
            );
        }
        if let Some(call) = Plain::read_rest(bytes, stream).filter(|_| !v03) {
            if !stream {
                return reply(StatusCode::OK, A2A_JSON, call.answer());
            }
            return events(call.events(&fresh_id("task")), gap);
        }
        let Ok(request) = serde_json::from_slice::<Value>(bytes) else {
            return bad("INVALID_REQUEST", "the body is not JSON");
        };
        let Some(message) = request.get("message") else {
            return bad("INVALID_REQUEST", "no message");
        };
        let Some(text) = text_of(message) else {
            return bad("INVALID_REQUEST", "the message has no parts");
        };
        let now = match v03 {
            true => request.pointer("/configuration/blocking") != Some(&Value::Bool(true)),
            false => immediately(&request),
        };
        let media = rest_type(binding);
        if !stream && now {
            return match self.task_answer(&request, message, &text, binding) {
                Ok(task) => reply(StatusCode::OK, media, json!({"task": task}).to_string()),
                Err(()) => rest_error_in(
                    binding,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "UNAVAILABLE",
                    "TOO_MANY_TASKS",
                    "too many tasks",
                ),
            };
        }
        let out = answer(message, &text, binding);
        if !stream {
            return reply(StatusCode::OK, media, json!({"message": out}).to_string());
        }
        let task = fresh_id("task");
        let context = out["contextId"].as_str().unwrap_or_default().to_string();
        let all = task_events(&task, &context, &text, binding).map(|e| format!("data: {e}\n\n"));
        events(all, gap)
    }

    fn rpc(&self, bytes: &Bytes) -> Response<Body> {
        let gap = self.event_gap;
        if let Some(call) = Plain::read(bytes) {
            if !call.stream {
                return reply(StatusCode::OK, "application/json", call.answer());
            }
            return events(call.events(&fresh_id("task")), gap);
        }
        let Ok(call) = serde_json::from_slice::<Value>(bytes) else {
            return rpc_error(&Value::Null, -32700, "Parse error");
        };
        let id = call.get("id").cloned().unwrap_or(Value::Null);
        let (version, stream) = match call.get("method").and_then(Value::as_str) {
            Some(m @ ("SubscribeToTask" | "tasks/resubscribe")) => {
                let version = if m == "SubscribeToTask" { Version::V1 } else { Version::V03 };
                let task = call.pointer("/params/id").and_then(Value::as_str).unwrap_or_default();
                return match self.subscription(task) {
                    Some(Ok((left, context, text))) => {
                        let all = task_events(task, &context, &text, version).map(|e| {
                            let e = json!({"jsonrpc": "2.0", "id": id, "result": e});
                            Bytes::from(format!("data: {e}\n\n"))
                        });
                        timed(all, left, "text/event-stream", None)
                    }
                    Some(Err(())) => {
                        rpc_error(&id, -32004, "Unsupported operation: the task ended")
                    }
                    None => rpc_error(&id, -32001, "Task not found"),
                };
            }
            Some("ListTasks") => {
                let size = call.pointer("/params/pageSize").and_then(Value::as_u64);
                let token = call.pointer("/params/pageToken").and_then(Value::as_str);
                let status = state_filter(call.pointer("/params/status").cloned());
                let artifacts =
                    call.pointer("/params/includeArtifacts") == Some(&Value::Bool(true));
                let (size, token) = (size.unwrap_or(u64::from(LIST_PAGE)), token.unwrap_or(""));
                return match status.and_then(|s| self.list_json(size, token, (s, artifacts))) {
                    Ok(result) => json_reply(
                        StatusCode::OK,
                        &json!({"jsonrpc": "2.0", "id": id, "result": result}),
                    ),
                    Err(()) => rpc_error(
                        &id,
                        -32602,
                        "Invalid params: not a page token of ours, or not a task state",
                    ),
                };
            }
            Some("GetExtendedAgentCard" | "agent/getAuthenticatedExtendedCard") => {
                // The card as written once, in the answer's envelope.
                let mut b = Vec::with_capacity(self.extended.len() + 64);
                b.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
                let _ = serde_json::to_writer(&mut b, &id);
                b.extend_from_slice(br#","result":"#);
                b.extend_from_slice(&self.extended);
                b.push(b'}');
                return reply(StatusCode::OK, "application/json", b);
            }
            Some(m @ ("CancelTask" | "tasks/cancel")) => {
                let version = if m == "CancelTask" { Version::V1 } else { Version::V03 };
                let task = call.pointer("/params/id").and_then(Value::as_str).unwrap_or_default();
                return match self.cancel(task).map(|c| c.map(|()| self.task_json(task, version))) {
                    Some(Ok(Some(result))) => json_reply(
                        StatusCode::OK,
                        &json!({"jsonrpc": "2.0", "id": id, "result": result}),
                    ),
                    Some(Err(())) => rpc_error(&id, -32002, "Task cannot be canceled"),
                    _ => rpc_error(&id, -32001, "Task not found"),
                };
            }
            Some(m @ ("GetTask" | "tasks/get")) => {
                let version = if m == "GetTask" { Version::V1 } else { Version::V03 };
                let task = call.pointer("/params/id").and_then(Value::as_str);
                return match task.and_then(|t| self.task_json(t, version)) {
                    Some(result) => json_reply(
                        StatusCode::OK,
                        &json!({"jsonrpc": "2.0", "id": id, "result": result}),
                    ),
                    None => rpc_error(&id, -32001, "Task not found"),
                };
            }
            Some("SendMessage") => (Version::V1, false),
            Some("SendStreamingMessage") => (Version::V1, true),
            Some("message/send") => (Version::V03, false),
            Some("message/stream") => (Version::V03, true),
            _ => return rpc_error(&id, -32601, "Method not found"),
        };
        let Some(message) = call.pointer("/params/message") else {
            return rpc_error(&id, -32602, "Invalid params: no message");
        };
        let Some(text) = text_of(message) else {
            return rpc_error(&id, -32602, "Invalid params: the message has no parts");
        };
        let params = call.get("params");
        let now = match version {
            Version::V1 => params.is_some_and(immediately),
            Version::V03 | Version::V03Rest => {
                params.and_then(|p| p.pointer("/configuration/blocking"))
                    == Some(&Value::Bool(false))
            }
        };
        if now && !stream {
            return match self.task_answer(params.unwrap_or(&Value::Null), message, &text, version) {
                Ok(task) => {
                    let result = if version == Version::V1 { json!({"task": task}) } else { task };
                    json_reply(
                        StatusCode::OK,
                        &json!({"jsonrpc": "2.0", "id": id, "result": result}),
                    )
                }
                Err(()) => rpc_error(&id, -32603, "Internal error: too many tasks"),
            };
        }
        let out = answer(message, &text, version);
        if !stream {
            let result = if version == Version::V1 { json!({"message": out}) } else { out };
            return json_reply(
                StatusCode::OK,
                &json!({"jsonrpc": "2.0", "id": id, "result": result}),
            );
        }
        let task = fresh_id("task");
        let context = out["contextId"].as_str().unwrap_or_default().to_string();
        let all = task_events(&task, &context, &text, version)
            .map(|e| format!("data: {}\n\n", json!({"jsonrpc": "2.0", "id": id, "result": e})));
        events(all, gap)
    }
}

/// A subscription's three events: the task at once, its artifact and final status `left`
/// later, when it completes, each its own frame; then `trailers`, if any.
fn timed(
    events: [Bytes; 3],
    left: Duration,
    content_type: &str,
    trailers: Option<hyper::HeaderMap>,
) -> Response<Body> {
    let data = events.into_iter().enumerate().map(move |(i, e)| async move {
        if i == 1 {
            tokio::time::sleep(left).await;
        }
        Ok(Frame::data(e))
    });
    let end = futures_util::stream::iter(trailers.map(|t| Ok(Frame::trailers(t))));
    let all: Events = Box::pin(futures_util::stream::iter(data).then(|f| f).chain(end));
    let mut r = reply(StatusCode::OK, content_type, "");
    *r.body_mut() = Body::Right(StreamBody::new(all));
    r
}

/// A gRPC error as a head alone ("trailers-only"): `grpc-status` `code`, its message, and, for
/// one of A2A's errors, a `google.rpc.Status` whose `ErrorInfo` gives the `reason`.
fn grpc_error(code: u32, message: &str, reason: Option<&str>) -> Response<Body> {
    let mut r = reply(StatusCode::OK, "application/grpc", Bytes::new());
    let h = r.headers_mut();
    h.insert("grpc-status", code.into());
    // Our messages are plain ASCII: nothing to percent-encode.
    if let Ok(v) = message.parse() {
        h.insert("grpc-message", v);
    }
    if let Some(v) =
        reason.and_then(|reason| grpc::details_value(code, message, reason).parse().ok())
    {
        h.insert("grpc-status-details-bin", v);
    }
    r
}

/// A unary gRPC request's one message, of A2A 1.x; else the error to answer with.
fn grpc_unary<M: prost::Message + Default>(
    bytes: &Bytes,
    version: Option<&[u8]>,
    what: &str,
) -> Result<M, Box<Response<Body>>> {
    const INVALID_ARGUMENT: u32 = 3;
    if version.is_some_and(|v| v != b"1" && !v.starts_with(b"1.")) {
        return Err(Box::new(grpc_error(
            9,
            "this agent speaks A2A 1.0",
            Some("VERSION_NOT_SUPPORTED"),
        )));
    }
    let mut request = None;
    let walked = grpc::messages(bytes, |m| {
        request = Some(M::decode(m).map_err(|_| ())?);
        Ok::<(), ()>(())
    });
    match (walked, request) {
        (Err(Err(grpc::Framing::Compressed)), _) => {
            Err(Box::new(grpc_error(12, "compressed messages are not supported", None)))
        }
        (Ok(1), Some(r)) => Ok(r),
        (Ok(_), _) => {
            Err(Box::new(grpc_error(INVALID_ARGUMENT, "a unary request holds one message", None)))
        }
        _ => Err(Box::new(grpc_error(
            INVALID_ARGUMENT,
            &format!("the request is not a {what}"),
            None,
        ))),
    }
}

impl Echo {
    /// `GetTask` in the gRPC binding: the task, or `NOT_FOUND` (`TASK_NOT_FOUND`); with
    /// `subscribe`, `SubscribeToTask`: the task's events until it ends, or
    /// `FAILED_PRECONDITION` (`UNSUPPORTED_OPERATION`) when it ended already.
    fn grpc_get_task(&self, bytes: &Bytes, version: Option<&[u8]>, method: &str) -> Response<Body> {
        use prost::Message as _;
        // CancelTaskRequest's and SubscribeToTaskRequest's id is GetTaskRequest's field 2.
        let request: grpc::GetTaskRequest = match grpc_unary(bytes, version, "GetTaskRequest") {
            Ok(r) => r,
            Err(r) => return *r,
        };
        if method == grpc::CANCEL_TASK {
            match self.cancel(&request.id) {
                Some(Ok(())) => {}
                Some(Err(())) => {
                    return grpc_error(9, "the task ended", Some("TASK_NOT_CANCELABLE"));
                }
                None => return grpc_error(5, "no such task", Some("TASK_NOT_FOUND")),
            }
        }
        if method == grpc::SUBSCRIBE_TO_TASK {
            return match self.subscription(&request.id) {
                Some(Ok((left, context, text))) => {
                    grpc_timed(grpc_events(&request.id, &context, &text), left)
                }
                Some(Err(())) => grpc_error(9, "the task ended", Some("UNSUPPORTED_OPERATION")),
                None => grpc_error(5, "no such task", Some("TASK_NOT_FOUND")),
            };
        }
        let Some(task) = self.task_proto(&request.id) else {
            return grpc_error(5, "no such task", Some("TASK_NOT_FOUND"));
        };
        let mut b = Vec::new();
        grpc::frame(&mut b, |b| task.encode_raw(b));
        grpc_reply(vec![b], Duration::ZERO)
    }

    /// `ListTasks` in the gRPC binding: one `ListTasksResponse`, a page as [`Echo::list_json`]'s.
    fn grpc_list(&self, bytes: &Bytes, version: Option<&[u8]>) -> Response<Body> {
        use prost::Message as _;
        let request: grpc::ListTasksRequest = match grpc_unary(bytes, version, "ListTasksRequest") {
            Ok(r) => r,
            Err(r) => return *r,
        };
        let size = if request.page_size > 0 { request.page_size as u64 } else { LIST_PAGE.into() };
        let status =
            u8::try_from(request.status).ok().filter(|s| usize::from(*s) < grpc::TASK_STATES.len());
        let listed = status.ok_or(()).and_then(|s| self.page(size, &request.page_token, s));
        let Ok((ids, next, total)) = listed else {
            let what = "not a page token of this agent's, or not a task state";
            return grpc_error(3, what, Some("INVALID_PARAMS"));
        };
        let mut tasks: Vec<grpc::Task> = ids.iter().filter_map(|id| self.task_proto(id)).collect();
        if !request.include_artifacts {
            tasks.iter_mut().for_each(|t| t.artifacts.clear());
        }
        let answer = grpc::ListTasksResponse {
            page_size: tasks.len() as i32,
            tasks,
            next_page_token: next,
            total_size: total as i32,
        };
        let mut b = Vec::new();
        grpc::frame(&mut b, |b| answer.encode_raw(b));
        grpc_reply(vec![b], Duration::ZERO)
    }

    /// `GetExtendedAgentCard` in the gRPC binding: the extended card as an `AgentCard`.
    fn grpc_extended_card(&self, bytes: &Bytes, version: Option<&[u8]>) -> Response<Body> {
        type Request = grpc::GetExtendedAgentCardRequest;
        if let Err(r) = grpc_unary::<Request>(bytes, version, "GetExtendedAgentCardRequest") {
            return *r;
        }
        grpc_reply(vec![self.extended_grpc.to_vec()], Duration::ZERO)
    }

    /// `SendMessage` or `SendStreamingMessage` in the gRPC binding: one `SendMessageRequest` in,
    /// one `SendMessageResponse` or three `StreamResponse`s out, then `grpc-status: 0`. A request
    /// that names an `a2a-version` other than 1.x is refused (`FAILED_PRECONDITION`,
    /// `VERSION_NOT_SUPPORTED`), as the other bindings refuse it; with `returnImmediately`,
    /// a `SendMessage` starts a task and answers it.
    fn grpc_call(&self, bytes: &Bytes, version: Option<&[u8]>, stream: bool) -> Response<Body> {
        use prost::Message as _;
        const INVALID_ARGUMENT: u32 = 3;
        let gap = self.event_gap;
        let request: grpc::SendMessageRequest =
            match grpc_unary(bytes, version, "SendMessageRequest") {
                Ok(r) => r,
                Err(r) => return *r,
            };
        let push =
            request.configuration.as_ref().and_then(|c| c.task_push_notification_config.clone());
        let immediately = request.configuration.is_some_and(|c| c.return_immediately);
        let Some(message) = request.message else {
            return grpc_error(INVALID_ARGUMENT, "no message", None);
        };
        let text: String = message.parts.iter().filter_map(|p| p.text.as_deref()).collect();
        let context =
            if message.context_id.is_empty() { fresh_id("ctx") } else { message.context_id };
        if immediately && !stream {
            let task = self.start_task(&context, &text).and_then(|id| self.task_proto(&id));
            let Some(task) = task else {
                return grpc_error(14, "too many tasks", None);
            };
            if let Some(p) = push.filter(|p| !p.url.is_empty()) {
                let authorization =
                    p.authentication.as_ref().map(|a| format!("{} {}", a.scheme, a.credentials));
                let auth = (p.token.as_str(), authorization);
                self.notify_when_done(&p.url, auth, (&task.id, &context, &text), Version::V1);
            }
            let answer = grpc::SendMessageResponse { task: Some(task), message: None };
            let mut b = Vec::new();
            grpc::frame(&mut b, |b| answer.encode_raw(b));
            return grpc_reply(vec![b], Duration::ZERO);
        }
        let mut frames = Vec::new();
        let mut frame = |m: &dyn Fn(&mut Vec<u8>)| {
            let mut b = Vec::new();
            grpc::frame(&mut b, m);
            frames.push(b);
        };
        if stream {
            for e in grpc_events(&fresh_id("task"), &context, &text) {
                frame(&|b| e.encode_raw(b));
            }
        } else {
            let answer =
                grpc::SendMessageResponse { task: None, message: Some(echoed(context, text)) };
            frame(&|b| answer.encode_raw(b));
        }
        grpc_reply(frames, gap)
    }
}

impl Echo {
    /// A2A v0.3's gRPC binding, as a2a-sdk 0.3 answers it: `SendMessage` (with `blocking`, the
    /// echo as a message; else a task started, notified to its push config if it has one),
    /// `SendStreamingMessage` (three events, the last `final`), `GetTask`, `CancelTask` and
    /// `TaskSubscription` of `tasks/{id}`, `GetAgentCard`; errors as a2a-sdk 0.3 gives them:
    /// the error's type at the head of `grpc-message`, no status details.
    fn grpc_v03(&self, bytes: &Bytes, method: &str) -> Response<Body> {
        use prost::Message as _;
        const INVALID_ARGUMENT: u32 = 3;
        let one = |m: &dyn Fn(&mut Vec<u8>)| {
            let mut b = Vec::new();
            grpc::frame(&mut b, m);
            grpc_reply(vec![b], Duration::ZERO)
        };
        let not_found = || grpc_error(5, "TaskNotFoundError: Task not found", None);
        match method {
            grpc::SEND_MESSAGE | grpc::SEND_STREAMING_MESSAGE => {
                let request: grpc::V03SendMessageRequest =
                    match grpc_unary(bytes, None, "SendMessageRequest") {
                        Ok(r) => r,
                        Err(r) => return *r,
                    };
                let config = request.configuration.unwrap_or_default();
                let Some(message) = request.request else {
                    let text = "InvalidParamsError: no message";
                    return grpc_error(INVALID_ARGUMENT, text, None);
                };
                let text: String = message.parts.iter().filter_map(|p| p.text.as_deref()).collect();
                let context = if message.context_id.is_empty() {
                    fresh_id("ctx")
                } else {
                    message.context_id
                };
                if method == grpc::SEND_STREAMING_MESSAGE {
                    let frames = v03_grpc_events(&fresh_id("task"), &context, &text).map(|e| {
                        let mut b = Vec::new();
                        grpc::frame(&mut b, |b| e.encode_raw(b));
                        b
                    });
                    return grpc_reply(frames.into(), self.event_gap);
                }
                if config.blocking {
                    let answer = grpc::V03SendMessageResponse {
                        task: None,
                        msg: Some(echoed(context, text)),
                    };
                    return one(&|b| answer.encode_raw(b));
                }
                let task = self.start_task(&context, &text).and_then(|id| self.task_proto(&id));
                let Some(task) = task else {
                    return grpc_error(14, "InternalError: too many tasks", None);
                };
                if let Some(p) = config.push_notification.filter(|p| !p.url.is_empty()) {
                    let authorization = p
                        .authentication
                        .as_ref()
                        .and_then(|a| Some(format!("{} {}", a.schemes.first()?, a.credentials)));
                    let auth = (p.token.as_str(), authorization);
                    self.notify_when_done(&p.url, auth, (&task.id, &context, &text), Version::V03);
                }
                let answer = grpc::V03SendMessageResponse { task: Some(v03_task(task)), msg: None };
                one(&|b| answer.encode_raw(b))
            }
            grpc::GET_TASK | grpc::CANCEL_TASK | grpc::TASK_SUBSCRIPTION => {
                let request: grpc::V03TaskName = match grpc_unary(bytes, None, "GetTaskRequest") {
                    Ok(r) => r,
                    Err(r) => return *r,
                };
                let Some(id) = request.name.strip_prefix("tasks/") else {
                    let text = format!("InvalidParamsError: No task for {}", request.name);
                    return grpc_error(INVALID_ARGUMENT, &text, None);
                };
                if method == grpc::CANCEL_TASK {
                    match self.cancel(id) {
                        Some(Ok(())) => {}
                        Some(Err(())) => {
                            let text = "TaskNotCancelableError: Task cannot be canceled";
                            return grpc_error(12, text, None);
                        }
                        None => return not_found(),
                    }
                }
                if method == grpc::TASK_SUBSCRIPTION {
                    return match self.subscription(id) {
                        Some(Ok((left, context, text))) => {
                            grpc_timed(v03_grpc_events(id, &context, &text), left)
                        }
                        Some(Err(())) => grpc_error(
                            INVALID_ARGUMENT,
                            &format!("InvalidParamsError: Task {id} is in terminal state"),
                            None,
                        ),
                        None => not_found(),
                    };
                }
                match self.task_proto(id) {
                    Some(task) => {
                        let task = v03_task(task);
                        one(&|b| task.encode_raw(b))
                    }
                    None => not_found(),
                }
            }
            grpc::GET_AGENT_CARD => grpc_reply(vec![self.card_v03_grpc.to_vec()], Duration::ZERO),
            _ => grpc_error(12, &format!("Method not found: {method}"), None),
        }
    }
}

/// A subscription's gRPC stream: the task's `events`, framed, the first at once and the rest
/// when the task completes, `left` later ([`timed`]), then `grpc-status: 0`.
fn grpc_timed<M: prost::Message>(events: [M; 3], left: Duration) -> Response<Body> {
    let all = events.map(|e| {
        let mut b = Vec::new();
        grpc::frame(&mut b, |b| e.encode_raw(b));
        Bytes::from(b)
    });
    let mut trailers = hyper::HeaderMap::new();
    trailers.insert("grpc-status", 0.into());
    timed(all, left, "application/grpc", Some(trailers))
}

/// The agent's answer in the gRPC bindings (v1.0's and v0.3's `Message` alike): `text` back,
/// in `context`.
fn echoed(context: String, text: String) -> grpc::Message {
    grpc::Message {
        message_id: fresh_id("msg"),
        context_id: context,
        task_id: String::new(),
        role: grpc::ROLE_AGENT,
        parts: vec![grpc::Part { text: Some(text) }],
    }
}

/// The answer to a request to a gRPC method whose content type is not gRPC's (415).
fn not_grpc(req: &Request<Incoming>) -> Option<Response<Body>> {
    let content_type = req.headers().get(hyper::header::CONTENT_TYPE);
    if content_type.is_some_and(|v| v.as_bytes().starts_with(b"application/grpc")) {
        return None;
    }
    let text = "gRPC wants Content-Type: application/grpc\n";
    Some(reply(StatusCode::UNSUPPORTED_MEDIA_TYPE, "text/plain", text))
}

/// A task as v0.3's gRPC `Task` (its artifacts' parts at 5).
fn v03_task(t: grpc::Task) -> grpc::V03Task {
    grpc::V03Task {
        id: t.id,
        context_id: t.context_id,
        status: t.status,
        artifacts: t.artifacts.into_iter().map(v03_artifact).collect(),
    }
}

/// An artifact as v0.3's gRPC binding numbers it.
fn v03_artifact(a: grpc::Artifact) -> grpc::V03Artifact {
    grpc::V03Artifact { artifact_id: a.artifact_id, parts: a.parts }
}

/// The three events of a streamed echo in v0.3's gRPC binding: [`grpc_events`]' in v0.3's
/// messages, the last status update `final`.
fn v03_grpc_events(task: &str, context: &str, text: &str) -> [grpc::V03StreamResponse; 3] {
    grpc_events(task, context, text).map(|e| grpc::V03StreamResponse {
        task: e.task.map(v03_task),
        msg: e.message,
        status_update: e.status_update.map(|u| grpc::V03TaskStatusUpdateEvent {
            r#final: u.status.as_ref().is_some_and(|s| s.state != grpc::TASK_STATE_WORKING),
            task_id: u.task_id,
            context_id: u.context_id,
            status: u.status,
        }),
        artifact_update: e.artifact_update.map(|u| grpc::V03TaskArtifactUpdateEvent {
            task_id: u.task_id,
            context_id: u.context_id,
            artifact: u.artifact.map(v03_artifact),
            append: u.append,
            last_chunk: u.last_chunk,
        }),
    })
}

/// The three events of a streamed echo in the gRPC binding: the task, its artifact, its final
/// status.
fn grpc_events(task: &str, context: &str, text: &str) -> [grpc::StreamResponse; 3] {
    let status = |state| Some(grpc::TaskStatus { state });
    [
        grpc::StreamResponse {
            task: Some(grpc::Task {
                id: task.into(),
                context_id: context.into(),
                status: status(grpc::TASK_STATE_WORKING),
                artifacts: Vec::new(),
            }),
            ..Default::default()
        },
        grpc::StreamResponse {
            artifact_update: Some(grpc::TaskArtifactUpdateEvent {
                task_id: task.into(),
                context_id: context.into(),
                artifact: Some(grpc::Artifact {
                    artifact_id: fresh_id("artifact"),
                    parts: vec![grpc::Part { text: Some(text.into()) }],
                }),
                append: false,
                last_chunk: true,
            }),
            ..Default::default()
        },
        grpc::StreamResponse {
            status_update: Some(grpc::TaskStatusUpdateEvent {
                task_id: task.into(),
                context_id: context.into(),
                status: status(grpc::TASK_STATE_COMPLETED),
            }),
            ..Default::default()
        },
    ]
}

/// A gRPC answer: its framed messages, together or `gap` apart (each its own HTTP/2 DATA
/// frame), then the trailers with `grpc-status: 0`.
fn grpc_reply(mut frames: Vec<Vec<u8>>, gap: Duration) -> Response<Body> {
    if gap.is_zero() {
        frames = vec![frames.concat()];
    }
    let mut trailers = hyper::HeaderMap::new();
    trailers.insert("grpc-status", 0.into());
    let data = frames.into_iter().enumerate().map(move |(i, b)| async move {
        if i > 0 {
            tokio::time::sleep(gap).await;
        }
        Ok(Frame::data(Bytes::from(b)))
    });
    let end = futures_util::stream::once(async move { Ok(Frame::trailers(trailers)) });
    let all: Events = Box::pin(futures_util::stream::iter(data).then(|f| f).chain(end));
    let mut r = reply(StatusCode::OK, "application/grpc", "");
    *r.body_mut() = Body::Right(StreamBody::new(all));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(done_at: Instant) -> Task {
        Task { context: "c".into(), text: "t".into(), done_at, canceled: false, wake: None }
    }

    #[test]
    fn tasks_go_a_minute_after_they_end_or_one_by_one_once_full() {
        let t0 = Instant::now();
        let secs = |s: u64| t0 + Duration::from_secs(s);
        let mut tasks = Tasks::new(3);
        assert!(tasks.insert("a", task(secs(0)), secs(0)));
        assert!(tasks.insert("b", task(secs(10)), secs(10)));
        // "a" ended 59 s ago: kept.
        assert!(tasks.insert("c", task(secs(59)), secs(59)));
        assert!(tasks.get("a").is_some());
        // Full, and every task ended under a second ago or still works: refused.
        let mut full = Tasks::new(2);
        assert!(full.insert("x", task(secs(5)), secs(0)));
        assert!(full.insert("y", task(secs(5)), secs(0)));
        assert!(!full.insert("z", task(secs(6)), secs(5)));
        // Full, "x" and "y" ended a second ago: the first makes room, the other stays.
        assert!(full.insert("z", task(secs(7)), secs(6)));
        assert!(full.get("x").is_none() && full.get("y").is_some() && full.get("z").is_some());
        // "a" ended a minute ago: gone at the next start, "b" stays.
        assert!(tasks.insert("d", task(secs(60)), secs(60)));
        assert!(tasks.get("a").is_none());
        assert!(tasks.get("b").is_some() && tasks.get("d").is_some());
        assert_eq!((tasks.by_id.len(), tasks.ending.len()), (3, 3));
        // A quiet minute later, one start drops all that ended before it.
        assert!(tasks.insert("e", task(secs(200)), secs(200)));
        assert_eq!((tasks.by_id.len(), tasks.ending.len()), (1, 1));
    }

    #[test]
    fn pages_of_tasks_walk_every_task_once_latest_first() {
        // Proves ListTasks' pages over the 64 tables: following nextPageToken visits every task
        // once, ends latest first across tables (two tasks that would end together in one
        // table end a nanosecond apart), the last page has no token, and a token that is not
        // ours is refused.
        let echo = Echo::new("127.0.0.1:1".parse().unwrap());
        let started: Vec<String> = (0..200).map(|_| echo.start_task("c", "t").unwrap()).collect();
        let mut seen = Vec::new();
        let mut token = String::new();
        let mut pages = 0;
        loop {
            let (ids, next, total) = echo.page(7, &token, 0).unwrap();
            assert_eq!(total, 200);
            assert!(ids.len() == 7 || next.is_empty(), "a short page is the last");
            seen.extend(ids);
            pages += 1;
            if next.is_empty() {
                break;
            }
            token = next;
        }
        assert_eq!((pages, seen.len()), (29, 200));
        let ends: Vec<Instant> =
            seen.iter().map(|id| echo.table(id).get(id).unwrap().done_at).collect();
        assert!(ends.windows(2).all(|w| w[0] >= w[1]), "latest first");
        let mut all = seen.clone();
        all.sort();
        all.dedup();
        let mut want = started;
        want.sort();
        assert_eq!(all, want, "each task once");
        let (first, _, _) = echo.page(500, "", 0).unwrap();
        assert_eq!(first.len(), 100, "a page is 100 at most");
        for bad in ["x", "12", "abc:task-1", ":"] {
            assert!(echo.page(5, bad, 0).is_err(), "{bad}");
        }
        // A token past every task: an empty last page.
        let (none, next, _) = echo.page(5, "0:a", 0).unwrap();
        assert!(none.is_empty() && next.is_empty());
    }

    #[test]
    fn a_canceled_task_is_listed_by_its_cancel() {
        // Proves a cancel moves its task to the cancel's place in the list: of three tasks of
        // a minute, the last started is listed first until it is canceled, then last (it
        // ended before the others will), its end the cancel's; a second cancel is refused;
        // a page filtered by state lists the working two, or the canceled one, its totalSize
        // counting that state alone; every table's ends still rise strictly.
        let echo =
            Echo::new("127.0.0.1:1".parse().unwrap()).with_task_time(Duration::from_secs(60));
        let ids: Vec<String> = (0..3).map(|_| echo.start_task("c", "t").unwrap()).collect();
        let (page, _, _) = echo.page(10, "", 0).unwrap();
        assert_eq!(page, [ids[2].clone(), ids[1].clone(), ids[0].clone()]);
        let before = Instant::now();
        assert_eq!(echo.cancel(&ids[2]), Some(Ok(())));
        assert_eq!(echo.cancel(&ids[2]), Some(Err(())), "canceled for good");
        let (page, _, _) = echo.page(10, "", 0).unwrap();
        assert_eq!(page, [ids[1].clone(), ids[0].clone(), ids[2].clone()]);
        let end = echo.table(&ids[2]).get(&ids[2]).unwrap().done_at;
        assert!(end >= before && end <= Instant::now(), "its end is the cancel's");
        // A page of one state alone (ListTasks' status filter).
        let of = |state: i32| echo.page(10, "", state as u8).unwrap();
        let (working, _, n) = of(grpc::TASK_STATE_WORKING);
        assert_eq!((working, n), (vec![ids[1].clone(), ids[0].clone()], 2));
        let (canceled, _, n) = of(grpc::TASK_STATE_CANCELED);
        assert_eq!((canceled, n), (vec![ids[2].clone()], 1));
        let (completed, _, n) = of(grpc::TASK_STATE_COMPLETED);
        assert!(completed.is_empty() && n == 0);
        assert_eq!(of(0).2, 3, "totalSize: every task kept");
        assert_eq!(state_filter(Some(json!("TASK_STATE_CANCELED"))), Ok(5));
        assert_eq!(state_filter(Some(json!(3))), Ok(3));
        assert_eq!(state_filter(None), Ok(0));
        assert!(
            state_filter(Some(json!("DONE"))).is_err() && state_filter(Some(json!(9))).is_err()
        );
        for shard in echo.tasks.shards.iter() {
            let t = shard.lock().unwrap();
            assert!(t.ending.iter().zip(t.ending.iter().skip(1)).all(|(a, b)| a.0 < b.0));
            assert_eq!(t.ending.len(), t.by_id.len());
        }
    }

    #[test]
    fn a_canceled_task_let_go_leaves_the_count() {
        // Proves the count of canceled tasks follows them out: once a canceled task is let go
        // (a minute after its end), none is counted canceled, and the completed one beside it
        // is not taken for one.
        let now = Instant::now();
        let mut t = Tasks::new(10);
        t.insert("a", Task { canceled: true, ..task(now) }, now);
        t.canceled = 1;
        t.insert("b", task(now + Duration::from_secs(1)), now);
        let later = now + Duration::from_secs(2);
        let state = |s: i32| s as u8;
        assert_eq!(t.count(state(grpc::TASK_STATE_CANCELED), later), 1);
        assert_eq!(t.count(state(grpc::TASK_STATE_COMPLETED), later), 1);
        assert_eq!(t.drop_ended(now + TASK_KEPT + Duration::from_millis(500), TASK_KEPT, 10), 1);
        assert_eq!(t.count(state(grpc::TASK_STATE_CANCELED), later), 0);
        assert_eq!(t.count(state(grpc::TASK_STATE_COMPLETED), later), 1);
    }

    #[test]
    fn an_end_moved_to_a_taken_nanosecond_goes_after_it() {
        // Proves `Tasks::end_now` keeps the ends distinct: a task moved to a time that two
        // tasks a nanosecond apart already end at goes a nanosecond after the second.
        let now = Instant::now();
        let mut t = Tasks::new(10);
        for (i, at) in [0u64, 1, 5, 9].into_iter().enumerate() {
            let done_at = now + Duration::from_nanos(at);
            t.insert(&format!("t{i}"), task(done_at), now);
        }
        let end = t.end_now("t3", now + Duration::from_nanos(9), now);
        assert_eq!(end, now + Duration::from_nanos(2));
        let order: Vec<&str> = t.ending.iter().map(|(_, id)| id.as_str()).collect();
        assert_eq!(order, ["t0", "t1", "t3", "t2"]);
        assert_eq!(t.get("t3").unwrap().done_at, end);
    }

    #[test]
    fn a_plain_send_is_answered_as_the_general_path_answers() {
        // Proves the fast path's answer is the general path's (`answer` in the JSON-RPC
        // envelope), the fresh message id aside and the fresh context id where the message
        // named none: v1.0 and v0.3, ids of every kind, escapes, several parts.
        let calls = [
            r#"{"jsonrpc":"2.0","id":7,"method":"SendMessage","params":{"message":{"role":"ROLE_USER","messageId":"m1","parts":[{"text":"hi"}]}}}"#,
            r#"{"jsonrpc":"2.0","id":"a\"b","method":"SendMessage","params":{"message":{"role":"ROLE_USER","messageId":"m1","contextId":"c-1","parts":[{"text":"x\ny "},{"text":"\u00e9"}]}}}"#,
            r#"{"jsonrpc":"2.0","method":"SendMessage","params":{"message":{"parts":[]}}}"#,
            r#"{"jsonrpc":"2.0","id":null,"method":"message/send","params":{"message":{"kind":"message","role":"user","messageId":"m","parts":[{"kind":"text","text":"v03"}]}}}"#,
            r#"{ "id" : 1.5 , "jsonrpc":"2.0", "method":"message/send","params":{"message":{"contextId":"k","parts":[{"kind":"text","text":"a"}]}}}"#,
        ];
        let blank = |mut v: Value, fresh_context: bool| {
            let m = v.pointer_mut("/result/message").is_some();
            let at = if m { "/result/message" } else { "/result" };
            let message = v.pointer_mut(at).unwrap();
            message["messageId"] = json!("-");
            if fresh_context {
                message["contextId"] = json!("-");
            }
            v
        };
        for call in calls {
            let plain = Plain::read(call.as_bytes()).unwrap();
            assert!(!plain.stream);
            let fast: Value = serde_json::from_slice(&plain.answer()).unwrap();
            let c: Value = serde_json::from_str(call).unwrap();
            let version = if c["method"] == "SendMessage" { Version::V1 } else { Version::V03 };
            let message = &c["params"]["message"];
            let out = answer(message, &text_of(message).unwrap(), version);
            let result = if version == Version::V1 { json!({"message": out}) } else { out };
            let general = json!({"jsonrpc": "2.0", "id": c.get("id").cloned().unwrap_or(Value::Null), "result": result});
            let fresh = message.get("contextId").is_none();
            assert_eq!(blank(fast, fresh), blank(general, fresh), "{call}");
        }
        // Anything more, or another method: the general path's.
        for call in [
            r#"{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"parts":[{"text":"t"}]},"configuration":{"returnImmediately":true}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"parts":[{"text":"t"}],"metadata":{}}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"parts":[{"file":{}}]}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"SendStreamingMessage","params":{"message":{"parts":[{"text":"t"}]},"configuration":{}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":"t"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"SendMessage"}"#,
            "not json",
        ] {
            assert!(Plain::read(call.as_bytes()).is_none(), "{call}");
        }
        // HTTP+JSON (v1.0): the message with no envelope; a configuration goes the general way.
        let body = r#"{"message":{"role":"ROLE_USER","messageId":"m","contextId":"c","parts":[{"text":"r"}]}}"#;
        let fast: Value =
            serde_json::from_slice(&Plain::read_rest(body.as_bytes(), false).unwrap().answer())
                .unwrap();
        let c: Value = serde_json::from_str(body).unwrap();
        let general = json!({"message": answer(&c["message"], "r", Version::V1)});
        let no_id = |mut v: Value| {
            v["message"]["messageId"] = json!("-");
            v
        };
        assert_eq!(no_id(fast), no_id(general));
        let events = Plain::read_rest(body.as_bytes(), true).unwrap().events("t-1");
        for (event, mut want) in events.iter().zip(task_events("t-1", "c", "r", Version::V1)) {
            let mut got: Value = serde_json::from_str(&event["data: ".len()..]).unwrap();
            for v in [&mut got, &mut want] {
                if let Some(a) = v.pointer_mut("/artifactUpdate/artifact/artifactId") {
                    *a = json!("-");
                }
            }
            assert_eq!(got, want, "{event}");
        }
        let configured =
            r#"{"message":{"parts":[{"text":"r"}]},"configuration":{"returnImmediately":true}}"#;
        assert!(Plain::read_rest(configured.as_bytes(), false).is_none());
        // A stream's events: the general path's, each in the call's envelope (the artifact's
        // id fresh in each).
        for call in [
            r#"{"jsonrpc":"2.0","id":"s","method":"SendStreamingMessage","params":{"message":{"role":"ROLE_USER","messageId":"m","contextId":"c","parts":[{"text":"a\"b"}]}}}"#,
            r#"{"jsonrpc":"2.0","id":3,"method":"message/stream","params":{"message":{"kind":"message","role":"user","messageId":"m","contextId":"c","parts":[{"kind":"text","text":"x"}]}}}"#,
        ] {
            let plain = Plain::read(call.as_bytes()).unwrap();
            assert!(plain.stream);
            let c: Value = serde_json::from_str(call).unwrap();
            let v1 = c["method"] == "SendStreamingMessage";
            let version = if v1 { Version::V1 } else { Version::V03 };
            let general =
                task_events("t-1", "c", &text_of(&c["params"]["message"]).unwrap(), version)
                    .map(|e| json!({"jsonrpc": "2.0", "id": c["id"], "result": e}));
            fn blank(v: &mut Value) {
                match v {
                    Value::Object(m) => m.iter_mut().for_each(|(k, v)| match k.as_str() {
                        "artifactId" => *v = json!("-"),
                        _ => blank(v),
                    }),
                    Value::Array(a) => a.iter_mut().for_each(blank),
                    _ => {}
                }
            }
            for (event, mut want) in plain.events("t-1").iter().zip(general) {
                let body = event.strip_prefix("data: ").and_then(|e| e.strip_suffix("\n\n"));
                let mut got: Value = serde_json::from_str(body.unwrap()).unwrap();
                blank(&mut got);
                blank(&mut want);
                assert_eq!(got, want, "{call}");
            }
        }
    }
}
