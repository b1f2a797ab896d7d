//! What one agent core counts, summed over cores for a run's accounting; and why a requester
//! gives up on a request (the client-side error kinds).

use crate::wire::ErrorCode;

/// Why a requester stopped waiting for an answer: client-side error kinds.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum GaveUp {
    /// The requester's connection closed with the request in flight.
    ConnectionLost,
    /// No answer within the drain (or stall) timeout.
    DrainTimeout,
    /// The run was stopped early by a failure elsewhere.
    Aborted,
}

impl GaveUp {
    /// The error kind's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            GaveUp::ConnectionLost => "connection_lost",
            GaveUp::DrainTimeout => "drain_timeout",
            GaveUp::Aborted => "aborted",
        }
    }
}

/// Per-core counters; summed over cores for the run's accounting.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GroupCounters {
    /// Requests sent (warm-up included).
    pub requests_sent: u64,
    /// Requests whose intended send time is in the measured window.
    pub requests_measured: u64,
    /// Requests actually sent inside the measured window (what the achieved rate counts).
    pub requests_sent_in_window: u64,
    /// Requests delivered to this core's agents.
    pub requests_delivered: u64,
    /// Replies sent by this core's agents.
    pub replies_sent: u64,
    /// Replies delivered to this core's agents.
    pub replies_delivered: u64,
    /// Measured round trips completed.
    pub round_trips_measured: u64,
    /// Requests and replies delivered inside the measured window.
    pub window_deliveries: u64,
    /// Sends that left in the measured window more than `late_after_ns` after their intended
    /// time.
    pub late_sends: u64,
    /// Open loop: sends that were due before sending stopped but never left (windows full).
    pub missed_sends: u64,
    /// Open loop: warm-up sends still owed when the measured window began, given up there.
    #[serde(default)]
    pub warmup_missed_sends: u64,
    /// Router errors about requests, by code.
    pub request_errors: Vec<(u16, u64)>,
    /// Router errors about replies, by code.
    pub reply_errors: Vec<(u16, u64)>,
    /// Router errors that name no message, by code (a frame malformed or too large, a slow
    /// consumer): the router closes the connection after them, so its requests are given up on
    /// as `connection_lost` and counted there; these say why.
    #[serde(default)]
    pub frame_errors: Vec<(u16, u64)>,
    /// Errors about requests named by the router (the JSON protocol's errors are names).
    pub request_errors_named: Vec<(String, u64)>,
    /// Errors about replies named by the router.
    pub reply_errors_named: Vec<(String, u64)>,
    /// Requests their requesters stopped waiting for, by why.
    pub unanswered: Vec<(GaveUp, u64)>,
    /// Messages this core could not make sense of (a protocol violation by the router).
    pub unexpected: u64,
    /// Last delivery of a measured message (ns).
    pub last_measured_delivery_ns: u64,
    /// HTTP: connections replaced after the server closed them (or a timeout did).
    #[serde(default)]
    pub reconnects: u64,
    /// HTTP/2: requests sent again because the server never processed them (past a GOAWAY's
    /// last stream, or reset with `REFUSED_STREAM`).
    #[serde(default)]
    pub resent: u64,
    /// MCP: the sessions' `DELETE` at the run's end, by the answer's HTTP status (0: none came,
    /// the connection failed or timed out).
    #[serde(default)]
    pub session_ends: Vec<(u16, u64)>,
    /// `GetTask` polls answered (tasks still working included; warm-up too): requests of the
    /// task patterns that no latency figure counts, but that show the server answering.
    #[serde(default)]
    pub task_polls: u64,
    /// Heartbeats sent on connections that were silent for a while (`Group::keep_alive`),
    /// warm-up and set-up included: messages the router handled that no figure counts.
    #[serde(default)]
    pub heartbeats: u64,
    /// Bytes the agents read from their connections in the measured window, as the sockets
    /// gave them (frames, WebSocket, HTTP, TLS records).
    #[serde(default)]
    pub window_bytes_in: u64,
    /// Bytes the agents handed to their sockets in the measured window.
    #[serde(default)]
    pub window_bytes_out: u64,
}

pub(super) fn add<K: PartialEq + Clone>(list: &mut Vec<(K, u64)>, key: &K, n: u64) {
    match list.iter_mut().find(|(k, _)| k == key) {
        Some((_, total)) => *total += n,
        None => list.push((key.clone(), n)),
    }
}

impl GroupCounters {
    /// Adds another core's counters.
    pub fn merge(&mut self, o: &GroupCounters) {
        self.requests_sent += o.requests_sent;
        self.requests_measured += o.requests_measured;
        self.requests_sent_in_window += o.requests_sent_in_window;
        self.requests_delivered += o.requests_delivered;
        self.replies_sent += o.replies_sent;
        self.replies_delivered += o.replies_delivered;
        self.round_trips_measured += o.round_trips_measured;
        self.window_deliveries += o.window_deliveries;
        self.late_sends += o.late_sends;
        self.missed_sends += o.missed_sends;
        self.warmup_missed_sends += o.warmup_missed_sends;
        self.unexpected += o.unexpected;
        self.reconnects += o.reconnects;
        self.resent += o.resent;
        self.task_polls += o.task_polls;
        self.heartbeats += o.heartbeats;
        self.window_bytes_in += o.window_bytes_in;
        self.window_bytes_out += o.window_bytes_out;
        for (c, n) in &o.request_errors {
            add(&mut self.request_errors, c, *n);
        }
        for (c, n) in &o.reply_errors {
            add(&mut self.reply_errors, c, *n);
        }
        for (c, n) in &o.frame_errors {
            add(&mut self.frame_errors, c, *n);
        }
        for (c, n) in &o.session_ends {
            add(&mut self.session_ends, c, *n);
        }
        for (name, n) in &o.request_errors_named {
            add(&mut self.request_errors_named, name, *n);
        }
        for (name, n) in &o.reply_errors_named {
            add(&mut self.reply_errors_named, name, *n);
        }
        for (why, n) in &o.unanswered {
            add(&mut self.unanswered, why, *n);
        }
        self.last_measured_delivery_ns =
            self.last_measured_delivery_ns.max(o.last_measured_delivery_ns);
    }

    /// Total router errors about requests.
    pub fn request_error_total(&self) -> u64 {
        self.request_errors.iter().map(|(_, n)| n).sum::<u64>()
            + self.request_errors_named.iter().map(|(_, n)| n).sum::<u64>()
    }

    /// Total router errors about replies.
    pub fn reply_error_total(&self) -> u64 {
        self.reply_errors.iter().map(|(_, n)| n).sum::<u64>()
            + self.reply_errors_named.iter().map(|(_, n)| n).sum::<u64>()
    }

    /// Requests their requesters gave up on.
    pub fn unanswered_total(&self) -> u64 {
        self.unanswered.iter().map(|(_, n)| n).sum()
    }

    /// Errors of every kind: router errors, requests given up on, unexpected messages.
    pub fn error_total(&self) -> u64 {
        self.request_error_total()
            + self.reply_error_total()
            + self.frame_errors.iter().map(|(_, n)| n).sum::<u64>()
            + self.unanswered_total()
            + self.unexpected
    }

    /// Every error by kind: router codes and names, requests given up on, unexpected messages.
    pub fn errors_by_kind(&self) -> std::collections::BTreeMap<String, u64> {
        let mut errors = std::collections::BTreeMap::new();
        let coded = self.request_errors.iter().chain(&self.reply_errors).chain(&self.frame_errors);
        for &(code, n) in coded {
            let name = ErrorCode::from_code(code)
                .map_or_else(|| format!("code_{code}"), |e| e.name().into());
            *errors.entry(name).or_default() += n;
        }
        for (name, n) in self.request_errors_named.iter().chain(&self.reply_errors_named) {
            *errors.entry(name.clone()).or_default() += n;
        }
        for (why, n) in &self.unanswered {
            *errors.entry(why.name().to_string()).or_default() += n;
        }
        if self.unexpected > 0 {
            errors.insert("unexpected_message".into(), self.unexpected);
        }
        errors
    }
}

pub(super) fn add_name(list: &mut Vec<(String, u64)>, name: &str) {
    match list.iter_mut().find(|(n, _)| n == name) {
        Some((_, total)) => *total += 1,
        None => list.push((name.to_string(), 1)),
    }
}
