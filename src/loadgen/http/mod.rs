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
//! A request's latency runs from its intended send time (`rtt`) and from the moment the writer
//! took its bytes for the socket (`rtt_raw`); it is an answer when its response has a 2xx status, the content
//! type its pattern expects and the shape it must have (`judge`). Anything else is an error
//! counted by kind: `http_<status>`, a JSON-RPC code by name, `protocol_*`.
//!
//! MCP clients open a session each before the run (`initialize`, `Mcp-Session-Id`,
//! `notifications/initialized`) and close it after (`DELETE`), unless the protocol version is
//! the sessionless one.

pub mod fuzz;
pub mod h2c;
pub mod judge;
pub mod parse;

use std::collections::VecDeque;
use std::io::Write as _;
use std::sync::Arc;

use hdrhistogram::Histogram;

use super::counters::{add, add_name};
use super::group::{About, Adapter, Book, ErrorKind, GroupConfig, Outgoing, MEASURED_BIT};
use crate::clock;
use crate::wire::AgentId;
use parse::{Framing, Head};

/// Why a run stops when an MCP server answers `initialize` without a session.
const NO_SESSION: &str =
    "the MCP server answered initialize without an Mcp-Session-Id (missing_session_id); \
     give --mcp-version 2026-07-28 for a sessionless server";

/// Connections in a row that may end without an answer before a client's connection is given
/// up (a server that accepts and closes at once is not redialled forever).
const STRIKES: u8 = 3;

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

const PATTERNS: [(&str, Pattern); 14] = [
    ("health", Pattern::Health),
    ("a2a:message", Pattern::A2aMessage),
    ("a2a:stream", Pattern::A2aStream),
    ("a2a:conversation", Pattern::A2aConversation),
    ("a2a:agent_card", Pattern::AgentCard),
    ("a2a-v03:message", Pattern::A2aV03Message),
    ("a2a-v03:stream", Pattern::A2aV03Stream),
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

    /// A comma-separated list: names above, plus `mcp:mixed` (tools/list and tools/call).
    pub fn parse_list(spec: &str) -> Result<Vec<Pattern>, String> {
        let mut out = Vec::new();
        for name in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
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
                if !out.contains(p) {
                    out.push(*p);
                }
            }
        }
        if out.is_empty() {
            return Err("the list is empty".into());
        }
        Ok(out)
    }

    fn is_mcp(self) -> bool {
        matches!(self, Pattern::McpToolsList | Pattern::McpToolsCall)
    }

    /// Whether its answers are server-sent event streams.
    pub fn is_stream(self) -> bool {
        matches!(self, Pattern::A2aStream | Pattern::A2aV03Stream)
    }
}

/// What every client of a run sends, and where.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The mix: request `k` of a client is pattern `(k + client) % len`.
    pub patterns: Vec<Pattern>,
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
    /// `a2a:conversation`: turns per context.
    pub turns: u32,
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
}

impl Default for Plan {
    fn default() -> Plan {
        Plan {
            patterns: vec![Pattern::Health],
            host: String::new(),
            path: "/".into(),
            token: None,
            tool: "\"echo\"".into(),
            args: "{}".into(),
            mcp_version: "2025-06-18".into(),
            preloaded: Vec::new(),
            turns: 4,
            pipeline: 1,
            http2: false,
            timeout_ns: 0,
            tls: None,
            close: false,
        }
    }
}

impl Plan {
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
    /// Streams: time from the intended send time to the first event.
    pub first_event: Histogram<u64>,
    /// Streams: events received in answers.
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
    /// MCP session `DELETE`.
    Farewell,
}

#[derive(Debug, Clone, Copy)]
struct Wire {
    what: What,
    /// The client, local to the group.
    local: u32,
    seq: u64,
    intended_ns: u64,
    sent_ns: u64,
    measured: bool,
    /// Sent before, never processed, going again: its send time stays the first one.
    again: bool,
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
}

/// HTTP/1.1 requests and responses for one agent core.
#[derive(Debug)]
pub struct Http {
    plan: Arc<Plan>,
    conns: Vec<Conn>,
    /// Each client's MCP session id.
    sessions: Vec<Option<Box<str>>>,
    stats: Vec<PatternStats>,
    /// Written buffers, for reuse.
    spare: Vec<Vec<u8>>,
    body: Vec<u8>,
    event: Vec<u8>,
    context: String,
    /// Message text: the payload size in `x`.
    text: String,
    id_base: u32,
    first: u32,
    per_conn: u32,
    /// `DELETE`s not answered yet.
    farewells: usize,
    /// `--http2`: each connection's HTTP/2 state (empty for HTTP/1.1).
    h2: Vec<h2c::H2Conn<Wire>>,
    /// HTTP/2 streams that ended, being handled.
    done: Vec<h2c::Done<Wire>>,
    /// Per pattern of the mix, its requests' [`fixed_head`], written once (empty where the
    /// request line varies).
    heads: Vec<Vec<u8>>,
}

impl Http {
    /// The adapter for a group with these settings.
    pub fn new(cfg: &GroupConfig, plan: Arc<Plan>) -> Http {
        let conns = cfg.count.div_ceil(cfg.agents_per_conn.max(1)) as usize;
        let plan_h2 = plan.http2;
        let plan_conn = plan.clone();
        Http {
            stats: plan.patterns.iter().map(|&p| PatternStats::new(p)).collect(),
            plan,
            conns: (0..conns).map(|_| Conn::new(&plan_conn)).collect(),
            sessions: vec![None; cfg.count as usize],
            spare: Vec::new(),
            body: Vec::with_capacity(1024),
            event: Vec::new(),
            context: String::new(),
            text: "x".repeat(cfg.payload_bytes),
            id_base: cfg.id_base,
            first: cfg.first,
            per_conn: cfg.agents_per_conn.max(1),
            farewells: 0,
            h2: if plan_h2 {
                (0..conns).map(|_| h2c::H2Conn::default()).collect()
            } else {
                Vec::new()
            },
            done: Vec::new(),
            heads: plan_conn
                .patterns
                .iter()
                .enumerate()
                .map(|(i, &p)| {
                    let mut head = Vec::new();
                    let what = What::Request(i as u8);
                    if !fixed_head(&mut head, &plan_conn, what, Some(p), None) {
                        head.clear();
                    }
                    head
                })
                .collect(),
        }
    }

    fn pattern_of(&self, local: u32, seq: u64) -> (u8, Pattern) {
        let n = self.plan.patterns.len() as u64;
        let i = ((seq + u64::from(self.first + local)) % n) as u8;
        (i, self.plan.patterns[usize::from(i)])
    }

    /// Puts `w` on the wire of `conn` if there is room, else in its queue.
    fn submit(&mut self, conn: usize, w: Wire) {
        if !self.h2.is_empty() {
            let c = &self.conns[conn];
            if c.open() && c.queued.is_empty() && self.h2[conn].ready() {
                self.h2_send(conn, w);
            } else {
                self.conns[conn].queued.push_back(w);
            }
            return;
        }
        let c = &self.conns[conn];
        if c.open() && c.wire.len() < self.plan.pipeline.max(1) as usize && c.queued.is_empty() {
            self.write(conn, w);
        } else {
            self.conns[conn].queued.push_back(w);
        }
    }

    /// Moves queued requests onto the wire while there is room; `now` is their send time.
    fn pump(&mut self, conn: usize, now_ns: u64) {
        if !self.conns[conn].open() {
            return;
        }
        if !self.h2.is_empty() {
            while !self.conns[conn].queued.is_empty() && self.h2[conn].ready() {
                let Some(mut w) = self.conns[conn].queued.pop_front() else { return };
                if !w.again {
                    w.sent_ns = now_ns;
                }
                self.h2_send(conn, w);
            }
            return;
        }
        while self.conns[conn].wire.len() < self.plan.pipeline.max(1) as usize {
            let Some(mut w) = self.conns[conn].queued.pop_front() else { return };
            w.sent_ns = now_ns;
            self.write(conn, w);
        }
    }

    fn write(&mut self, conn: usize, w: Wire) {
        let Http { plan, conns, sessions, body, context, text, id_base, first, heads, .. } = self;
        let (plan, id_base, client) = (&**plan, *id_base, *first + w.local);
        let kind = match w.what {
            What::Request(i) => Some(plan.patterns[usize::from(i)]),
            _ => None,
        };
        let method = method_of(w.what, kind);
        // The body first: its length goes in the head.
        body.clear();
        let b = &mut *body;
        let rpc_id = w.seq + 1;
        let seq = w.seq;
        match (w.what, kind) {
            (What::Init, _) => {
                let _ = write!(
                    b,
                    r#"{{"jsonrpc":"2.0","id":0,"method":"initialize","params":{{"protocolVersion":"{}","capabilities":{{}},"clientInfo":{{"name":"a2a-bench","version":"{}"}}}}}}"#,
                    plan.mcp_version,
                    env!("CARGO_PKG_VERSION")
                );
            }
            (What::Initialized, _) => {
                b.extend_from_slice(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
            }
            (_, Some(p @ (Pattern::A2aMessage | Pattern::A2aStream))) => {
                let method =
                    if p == Pattern::A2aStream { "SendStreamingMessage" } else { "SendMessage" };
                let _ = write!(
                    b,
                    r#"{{"jsonrpc":"2.0","id":{rpc_id},"method":"{method}","params":{{"message":{{"role":"ROLE_USER","messageId":"m-{id_base}-{client}-{seq}","parts":[{{"text":"{text}"}}]}}}}}}"#,
                );
            }
            (_, Some(Pattern::A2aConversation)) => {
                conversation(context, plan, id_base, client, seq);
                let _ = write!(
                    b,
                    r#"{{"jsonrpc":"2.0","id":{rpc_id},"method":"SendMessage","params":{{"message":{{"role":"ROLE_USER","messageId":"m-{id_base}-{client}-{seq}","contextId":"{context}","parts":[{{"text":"{text}"}}]}}}}}}"#,
                );
            }
            (_, Some(p @ (Pattern::A2aV03Message | Pattern::A2aV03Stream))) => {
                let method =
                    if p == Pattern::A2aV03Stream { "message/stream" } else { "message/send" };
                let _ = write!(
                    b,
                    r#"{{"jsonrpc":"2.0","id":{rpc_id},"method":"{method}","params":{{"message":{{"kind":"message","role":"user","messageId":"m-{id_base}-{client}-{seq}","parts":[{{"kind":"text","text":"{text}"}}]}}}}}}"#,
                );
            }
            (_, Some(Pattern::McpToolsList)) => {
                let _ = write!(
                    b,
                    r#"{{"jsonrpc":"2.0","id":{rpc_id},"method":"tools/list","params":{{"#
                );
                mcp_meta(b, plan, false);
                b.extend_from_slice(b"}}");
            }
            (_, Some(Pattern::McpToolsCall)) => {
                let _ = write!(
                    b,
                    r#"{{"jsonrpc":"2.0","id":{rpc_id},"method":"tools/call","params":{{"name":{},"arguments":{}"#,
                    plan.tool, plan.args
                );
                mcp_meta(b, plan, true);
                b.extend_from_slice(b"}}");
            }
            (_, Some(Pattern::RegistryRegister)) => {
                let _ = write!(
                    b,
                    r#"{{"agent_card":{{"name":"a2a-bench-{id_base}-{client}-{seq}","description":"{text}","url":"http://agent-{client}.invalid/","version":"1.0.0","protocolVersion":"0.3.0","protocol_version":"0.3.0","capabilities":{{}},"defaultInputModes":["text/plain"],"defaultOutputModes":["text/plain"],"skills":[{{"id":"bench","name":"bench skill","description":"load test","tags":["skill-{}"]}}]}}}}"#,
                    seq % 16
                );
            }
            (_, Some(Pattern::RegistrySearch)) => {
                let _ = write!(b, r#"{{"query":"skill-{}"}}"#, (u64::from(client) + seq) % 16);
            }
            _ => {}
        }
        let out = &mut conns[conn].out;
        // The head's lines that are the same for every request of this kind were written once
        // ([`fixed_head`]); only a request line that varies (registry:get) and the session
        // handshake's requests write theirs each time.
        match w.what {
            What::Request(i) if !heads[usize::from(i)].is_empty() => {
                out.extend_from_slice(&heads[usize::from(i)]);
            }
            _ => {
                let line_ok = fixed_head(out, plan, w.what, kind, Some((client, seq)));
                debug_assert!(line_ok);
            }
        }
        if is_mcp(w.what, kind) {
            if let Some(s) = &sessions[w.local as usize] {
                out.extend_from_slice(b"Mcp-Session-Id: ");
                out.extend_from_slice(s.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
        if method == "POST" {
            out.extend_from_slice(b"Content-Type: application/json\r\nContent-Length: ");
            push_decimal(out, body.len() as u64);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
        conns[conn].wire.push_back(w);
        conns[conn].unstamped += 1;
    }

    /// One complete response to `w`.
    fn complete(&mut self, conn: usize, w: Wire, head: &Head, body: &[u8], book: &mut Book) {
        let now = book.now_ns();
        let id = self.id_base + self.first + w.local;
        match w.what {
            What::Init => match judge::initialized(head, body, &mut self.event) {
                Err(k) => book.refused(format!("the MCP server refused initialize: {k}")),
                Ok(()) => {
                    // Checked by the caller: the session header's value, copied once per client.
                    self.submit(conn, Wire { what: What::Initialized, again: false, ..w });
                }
            },
            What::Initialized if (200..300).contains(&head.status) => book.ack(conn),
            What::Initialized => book.refused(format!(
                "the MCP server refused notifications/initialized: {}",
                judge::status_name(head.status)
            )),
            What::Farewell => self.farewells = self.farewells.saturating_sub(1),
            What::Request(i) => {
                let p = self.plan.patterns[usize::from(i)];
                let context = (p == Pattern::A2aConversation).then(|| {
                    conversation(
                        &mut self.context,
                        &self.plan,
                        self.id_base,
                        self.first + w.local,
                        w.seq,
                    );
                    self.context.as_str()
                });
                let verdict = judge::judge(p, head, body, context, &mut self.event);
                let own_rtt = self.stats.len() > 1;
                let s = &mut self.stats[usize::from(i)];
                let freed = match verdict {
                    Ok(events) => {
                        if w.measured {
                            s.ok += 1;
                            // With one pattern the book's histogram (below) is this one: a
                            // second record would only add a cache miss per response.
                            if own_rtt {
                                s.rtt.saturating_record(now.saturating_sub(w.intended_ns).max(1));
                            }
                            if p.is_stream() {
                                let first = match self.conns[conn].first_event_ns {
                                    0 => now,
                                    t => t,
                                };
                                s.first_event
                                    .saturating_record(first.saturating_sub(w.intended_ns).max(1));
                                s.events += u64::from(events);
                            }
                        }
                        book.answered(id, (w.intended_ns, w.sent_ns), w.measured)
                    }
                    Err(kind) => {
                        if w.measured {
                            s.error(&kind);
                        }
                        book.router_error(About::Request(Some(id)), ErrorKind::Name(&kind))
                    }
                };
                if let Some(local) = freed {
                    book.send_from(local, |c, out| self.request(c, out));
                }
            }
        }
        self.conns[conn].first_event_ns = 0;
    }

    /// A response that cannot be read: the request it answers counts it, and the connection
    /// is given up (the caller's `Err`).
    fn broken(&mut self, conn: usize, why: &parse::Broken, book: &mut Book) -> String {
        if let Some(w) = self.conns[conn].wire.pop_front() {
            self.failed(w, why.kind(), &why.to_string(), book);
        }
        format!("the server sent {why}")
    }

    /// `w` got no usable response: counted as `kind` (`why` refuses a registration).
    fn failed(&mut self, w: Wire, kind: &str, why: &str, book: &mut Book) {
        if let What::Request(i) = w.what {
            if w.measured {
                self.stats[usize::from(i)].error(kind);
            }
            let id = self.id_base + self.first + w.local;
            if let Some(local) = book.router_error(About::Request(Some(id)), ErrorKind::Name(kind))
            {
                book.send_from(local, |c, out| self.request(c, out));
            }
        } else if book.registering() {
            book.refused(format!("the MCP server sent {why}"));
        } else if w.what == What::Farewell {
            self.farewells = self.farewells.saturating_sub(1);
        }
    }

    /// Renders `w` as the HTTP/1.1 path does and sends it as an HTTP/2 request.
    fn h2_send(&mut self, conn: usize, w: Wire) {
        self.write(conn, w);
        let c = &mut self.conns[conn];
        if let Some(w) = c.wire.pop_back() {
            c.unstamped = 0;
            if let Err(w) = self.h2[conn].send(w, &c.out, &self.plan.host) {
                c.queued.push_front(w); // it never left: the next connection takes it
            }
        }
        c.out.clear();
    }

    /// Responses in `buf` (plaintext): returns the bytes used, or why the connection is
    /// useless.
    fn input_plain(&mut self, conn: usize, buf: &[u8], book: &mut Book) -> Result<usize, String> {
        if !self.h2.is_empty() {
            return self.h2_input(conn, buf, book);
        }
        let mut used = 0;
        while used < buf.len() {
            let rest = &buf[used..];
            let Some(&front) = self.conns[conn].wire.front() else {
                book.unexpected();
                return Err("a response to no request".into());
            };
            // A response still arriving keeps its head, and its chunked body decoded so far.
            let head = match self.conns[conn].head.take() {
                Some(h) => h,
                None => match parse::head(rest) {
                    Ok(Some(h)) => h,
                    Ok(None) => break,
                    Err(why) => return Err(self.broken(conn, &why, book)),
                },
            };
            let body_at = head.head_len;
            if rest.len() < body_at {
                // A shorter view of the same bytes (the reader's buffer took over from the
                // ring's): nothing new.
                self.conns[conn].head = Some(head);
                break;
            }
            let streaming = head.content_type == parse::ContentType::EventStream;
            let mut chunked = std::mem::take(&mut self.conns[conn].dechunk);
            let (total, whole) = match head.framing {
                Framing::Length(n) if rest.len() >= body_at + n => (body_at + n, true),
                Framing::Length(_) => (0, false),
                Framing::Chunked => match chunked.feed(&rest[body_at..]) {
                    Ok(Some(n)) => (body_at + n, true),
                    Ok(None) => (0, false),
                    Err(why) => {
                        self.conns[conn].dechunk = chunked;
                        return Err(self.broken(conn, &why, book));
                    }
                },
            };
            let body: &[u8] = match head.framing {
                Framing::Length(n) => &rest[body_at..rest.len().min(body_at + n)],
                Framing::Chunked => chunked.data(),
            };
            let c = &mut self.conns[conn];
            if !whole {
                // A stream still arriving: note when its first event came.
                if streaming && c.first_event_ns == 0 && parse::has_event(body, &mut c.event_from) {
                    c.first_event_ns = book.now_ns();
                }
                c.head = Some(head);
                c.dechunk = chunked;
                break;
            }
            c.event_from = 0;
            c.wire.pop_front();
            c.answered = true;
            c.closing |= head.close || self.plan.close;
            if front.what == What::Init {
                match head.session {
                    Some((a, b)) => {
                        let id = String::from_utf8_lossy(&rest[a..b]).into_owned();
                        self.sessions[front.local as usize] = Some(id.into_boxed_str());
                    }
                    None if (200..300).contains(&head.status) => {
                        book.refused(NO_SESSION.into());
                        chunked.reset();
                        self.conns[conn].dechunk = chunked;
                        return Ok(used + total);
                    }
                    None => {}
                }
            }
            self.complete(conn, front, &head, body, book);
            chunked.reset();
            self.conns[conn].dechunk = chunked;
            used += total;
            self.pump(conn, book.now_ns());
            if head.close {
                break; // the server closes: what follows is not for us
            }
        }
        Ok(used)
    }

    /// The next plaintext to write on `conn`, if any.
    fn output_plain(&mut self, conn: usize) -> Option<Vec<u8>> {
        if !self.h2.is_empty() {
            let mut buf = self.spare.pop().unwrap_or_default();
            let now = clock::now_ns();
            self.h2[conn].output(&mut buf, |w| {
                if !w.again {
                    w.sent_ns = now;
                }
            });
            if buf.is_empty() {
                self.spare.push(buf);
                return None;
            }
            return Some(buf);
        }
        let c = &mut self.conns[conn];
        if c.out.is_empty() {
            return None;
        }
        // A request leaves when the writer takes its bytes, not when it was rendered: the raw
        // latency does not count the client's own turnaround (the intended time still does).
        let now = clock::now_ns();
        let from = c.wire.len() - c.unstamped.min(c.wire.len());
        for w in c.wire.range_mut(from..).filter(|w| !w.again) {
            w.sent_ns = now;
        }
        c.unstamped = 0;
        let fresh = self.spare.pop().unwrap_or_default();
        Some(std::mem::replace(&mut c.out, fresh))
    }

    fn h2_input(&mut self, conn: usize, buf: &[u8], book: &mut Book) -> Result<usize, String> {
        self.h2[conn].feed(buf);
        loop {
            let mut done = std::mem::take(&mut self.done);
            let driven = self.h2[conn].drive(book.now_ns(), &mut done);
            let any = !done.is_empty();
            for d in done.drain(..) {
                self.h2_done(conn, d, book);
            }
            self.done = done;
            driven?;
            self.pump(conn, book.now_ns());
            if !any {
                return Ok(buf.len());
            }
        }
    }

    fn h2_done(&mut self, conn: usize, d: h2c::Done<Wire>, book: &mut Book) {
        match d {
            h2c::Done::Failed { w, kind } => self.failed(w, kind, kind, book),
            h2c::Done::Unprocessed { w } => {
                book.counters.resent += 1;
                self.conns[conn].queued.push_front(Wire { again: true, ..w });
            }
            // Refused before any processing: sent again, unless this connection's server keeps
            // refusing (then it is an error, as any reset).
            h2c::Done::Refused { w } if self.conns[conn].refusals < REFUSALS_MAX => {
                self.conns[conn].refusals += 1;
                book.counters.resent += 1;
                self.conns[conn].queued.push_front(Wire { again: true, ..w });
            }
            h2c::Done::Refused { w } => {
                let kind = "protocol_h2_refused_stream";
                self.failed(w, kind, kind, book);
            }
            h2c::Done::Answer { w, status, content_type, session, body, first_event_ns } => {
                if w.what == What::Init {
                    match session {
                        Some(id) => self.sessions[w.local as usize] = Some(id),
                        None if (200..300).contains(&status) => {
                            book.refused(NO_SESSION.into());
                            return;
                        }
                        None => {}
                    }
                }
                let c = &mut self.conns[conn];
                c.first_event_ns = first_event_ns;
                c.answered = true;
                c.refusals = 0;
                let head = Head {
                    status,
                    content_type,
                    head_len: 0,
                    framing: Framing::Length(body.len()),
                    close: false,
                    session: None,
                };
                self.complete(conn, w, &head, &body, book);
            }
        }
    }
}

impl Adapter for Http {
    fn register(&mut self, conn: usize, ids: &[AgentId], book: &mut Book) {
        for id in ids {
            let local = id.0 - self.id_base - self.first;
            if self.plan.sessions() {
                let w = Wire {
                    what: What::Init,
                    local,
                    seq: 0,
                    intended_ns: 0,
                    sent_ns: 0,
                    measured: false,
                    again: false,
                };
                self.submit(conn, w);
            } else {
                book.ack(conn);
            }
        }
    }

    fn request(&mut self, conn: usize, r: &Outgoing) {
        let local = r.from - self.id_base - self.first;
        let seq = r.message_id & !MEASURED_BIT;
        let (i, _) = self.pattern_of(local, seq);
        let w = Wire {
            what: What::Request(i),
            local,
            seq,
            intended_ns: r.intended_ns,
            sent_ns: r.sent_ns,
            measured: r.measured,
            again: false,
        };
        self.submit(conn, w);
    }

    fn input(&mut self, conn: usize, buf: &[u8], book: &mut Book) -> Result<usize, String> {
        let c = &mut self.conns[conn];
        if c.down {
            return Ok(buf.len()); // closed for a timeout: a late answer is for nobody
        }
        let Some(tls) = c.tls.as_mut() else { return self.input_plain(conn, buf, book) };
        // https://: everything read is decrypted; what the responses leave stays in `plain`.
        let mut rd = buf;
        while !rd.is_empty() {
            tls.read_tls(&mut rd).map_err(|e| format!("the server's TLS: {e}"))?;
            tls.process_new_packets().map_err(|e| format!("the server's TLS: {e}"))?;
            match std::io::Read::read_to_end(&mut tls.reader(), &mut c.plain) {
                Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => {
                    return Err(format!("the server's TLS: {e}"))
                }
                _ => {} // more to come, or the server's close_notify (its FIN follows)
            }
        }
        if !c.plain.is_empty() {
            let plain = std::mem::take(&mut self.conns[conn].plain);
            let used = self.input_plain(conn, &plain, book);
            let c = &mut self.conns[conn];
            c.plain = plain;
            c.plain.drain(..*used.as_ref().unwrap_or(&0));
            used?;
        }
        Ok(buf.len())
    }

    fn take_output(&mut self, conn: usize) -> Option<Vec<u8>> {
        if self.plan.tls.is_some() && self.conns[conn].tls.is_none() {
            return None; // never in clear to an https:// server
        }
        let plain = self.output_plain(conn);
        let c = &mut self.conns[conn];
        let Some(tls) = c.tls.as_mut() else { return plain };
        if let Some(mut plain) = plain {
            // Buffered by rustls until the handshake ends (no limit: see `tls::Client`).
            let _ = std::io::Write::write_all(&mut tls.writer(), &plain);
            plain.clear();
            self.spare.push(plain);
        }
        if !tls.wants_write() {
            return None;
        }
        let mut out = self.spare.pop().unwrap_or_default();
        while tls.wants_write() {
            if tls.write_tls(&mut out).is_err() {
                break;
            }
        }
        Some(out)
    }

    fn output_done(&mut self, mut buf: Vec<u8>) {
        buf.clear();
        if self.spare.len() < 64 {
            self.spare.push(buf);
        }
    }

    fn farewell(&mut self, conn: usize) -> bool {
        if !self.plan.sessions() {
            return false;
        }
        let per = self.per_conn;
        let lo = conn as u32 * per;
        let hi = (lo + per).min(self.sessions.len() as u32);
        for local in lo..hi {
            if self.sessions[local as usize].is_some() {
                let w = Wire {
                    what: What::Farewell,
                    local,
                    seq: 0,
                    intended_ns: 0,
                    sent_ns: 0,
                    measured: false,
                    again: false,
                };
                self.farewells += 1;
                self.submit(conn, w);
            }
        }
        true
    }

    fn farewell_done(&self) -> bool {
        self.farewells == 0
    }

    fn breakdown(&self, book: &Book) -> Vec<PatternStats> {
        let mut stats = self.stats.clone();
        if let [only] = stats.as_mut_slice() {
            // One pattern: its round trips are the run's, recorded once ([`Http::complete`]).
            only.rtt = book.latencies.rtt.clone();
        }
        stats
    }

    fn reset(&mut self, conn: usize, book: &mut Book) -> bool {
        let c = &mut self.conns[conn];
        let kind = if c.expired { "timeout" } else { "connection_closed" };
        c.strikes = if c.answered || c.expired { 0 } else { c.strikes + 1 };
        let again = c.strikes <= STRIKES;
        (c.answered, c.closing, c.expired, c.down) = (false, false, false, true);
        c.first_event_ns = 0;
        (c.head, c.event_from) = (None, 0);
        c.dechunk.reset();
        c.out.clear();
        c.unstamped = 0;
        c.plain.clear();
        c.tls = fresh_tls(&self.plan);
        let mut gone: Vec<Wire> = std::mem::take(&mut c.wire).into();
        if let Some(h2) = self.h2.get_mut(conn) {
            gone.extend(std::mem::take(h2).into_streams());
        }
        for w in gone {
            self.failed(w, kind, &format!("nothing before closing the connection ({kind})"), book);
        }
        again
    }

    fn must_reopen(&self, conn: usize) -> bool {
        self.conns[conn].closing || self.h2.get(conn).is_some_and(h2c::H2Conn::gone)
    }

    fn reopened(&mut self, conn: usize, book: &mut Book) {
        self.conns[conn].down = false;
        self.pump(conn, book.now_ns());
    }

    fn expire(&mut self, book: &mut Book, touched: &mut Vec<(usize, bool)>) -> u64 {
        let timeout = self.plan.timeout_ns;
        if timeout == 0 {
            return u64::MAX;
        }
        let now = book.now_ns();
        let due = |w: &Wire| match w.what {
            What::Request(_) => w.sent_ns.saturating_add(timeout),
            _ => u64::MAX, // set-up and farewells have their own bounds
        };
        let mut next = u64::MAX;
        let mut gone = Vec::new();
        for conn in 0..self.conns.len() {
            if let Some(h2) = self.h2.get_mut(conn) {
                // HTTP/2 cancels the stream alone (RST_STREAM): the connection stays.
                next = next.min(h2.expire(due, now, &mut gone));
                if !gone.is_empty() {
                    touched.push((conn, false));
                }
            } else {
                // HTTP/1.1 cannot skip an answer: the connection goes, and with it what was
                // pipelined behind the late request.
                let c = &mut self.conns[conn];
                let Some(front) = c.wire.front().filter(|_| !c.down) else { continue };
                if due(front) > now {
                    next = next.min(due(front));
                    continue;
                }
                (c.expired, c.down) = (true, true);
                gone.extend(c.wire.drain(..));
                touched.push((conn, true));
            }
            for w in gone.drain(..) {
                self.failed(w, "timeout", "no answer within --timeout", book);
            }
        }
        next
    }
}

/// Sessionless MCP: the `_meta` envelope every request carries in place of a session
/// (protocol version and client capabilities), after `comma` when other params precede it.
/// The method of a request.
fn method_of(what: What, kind: Option<Pattern>) -> &'static str {
    match (what, kind) {
        (What::Farewell, _) => "DELETE",
        (
            _,
            Some(
                Pattern::Health
                | Pattern::AgentCard
                | Pattern::RegistryHealth
                | Pattern::RegistryList
                | Pattern::RegistryGet,
            ),
        ) => "GET",
        _ => "POST",
    }
}

/// Whether a request speaks MCP (session headers).
fn is_mcp(what: What, kind: Option<Pattern>) -> bool {
    matches!(what, What::Init | What::Initialized | What::Farewell)
        || kind.is_some_and(Pattern::is_mcp)
}

/// Writes the request line and the header lines that do not change from one request of this
/// kind to the next: all but `Mcp-Session-Id`, the body's type and length, and the blank line.
/// `at` is (client, sequence) of the request, which only registry:get's line uses; without it
/// (a head written ahead for every request of the kind) that line is not written and the
/// answer is false.
fn fixed_head(
    out: &mut Vec<u8>,
    plan: &Plan,
    what: What,
    kind: Option<Pattern>,
    at: Option<(u32, u64)>,
) -> bool {
    let method = method_of(what, kind);
    let base = plan.path.trim_end_matches('/');
    let _ = match kind {
        Some(Pattern::AgentCard) => write!(out, "GET /.well-known/agent-card.json"),
        Some(Pattern::RegistryHealth) => write!(out, "GET {base}/health"),
        Some(Pattern::RegistryList | Pattern::RegistryRegister) => {
            write!(out, "{method} {base}/agents")
        }
        Some(Pattern::RegistrySearch) => write!(out, "POST {base}/agents/search"),
        Some(Pattern::RegistryGet) => {
            let Some((client, seq)) = at else { return false };
            // The command line refuses registry:get without preloaded agents.
            let ids = &plan.preloaded;
            let at = ((u64::from(client) + seq) % ids.len().max(1) as u64) as usize;
            let id = ids.get(at).map_or("none", String::as_str);
            write!(out, "GET {base}/agents/{id}")
        }
        _ => write!(out, "{method} {}", plan.path),
    };
    let _ = write!(
        out,
        " HTTP/1.1\r\nHost: {}\r\nUser-Agent: a2a-bench/{}\r\n",
        plan.host,
        env!("CARGO_PKG_VERSION")
    );
    if let Some(t) = &plan.token {
        let _ = write!(out, "Authorization: Bearer {t}\r\n");
    }
    if plan.close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    if matches!(kind, Some(Pattern::A2aMessage | Pattern::A2aStream | Pattern::A2aConversation)) {
        out.extend_from_slice(b"A2A-Version: 1.0\r\n");
    }
    if is_mcp(what, kind) {
        out.extend_from_slice(b"Accept: application/json, text/event-stream\r\n");
        let _ = write!(out, "MCP-Protocol-Version: {}\r\n", plan.mcp_version);
        let mcp_method = match (what, kind) {
            (What::Init, _) => Some("initialize"),
            (What::Initialized, _) => Some("notifications/initialized"),
            (What::Request(_), Some(Pattern::McpToolsList)) => Some("tools/list"),
            (What::Request(_), Some(Pattern::McpToolsCall)) => Some("tools/call"),
            _ => None,
        };
        if let Some(m) = mcp_method.filter(|_| plan.mcp_version == MCP_SESSIONLESS) {
            let _ = write!(out, "Mcp-Method: {m}\r\n");
            if kind == Some(Pattern::McpToolsCall) {
                let name = plan.tool.trim_matches('"');
                let _ = write!(out, "Mcp-Name: {name}\r\n");
            }
        }
    } else if kind.is_some_and(Pattern::is_stream) {
        out.extend_from_slice(b"Accept: text/event-stream\r\n");
    } else {
        out.extend_from_slice(b"Accept: application/json\r\n");
    }
    true
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

fn mcp_meta(b: &mut Vec<u8>, plan: &Plan, comma: bool) {
    if plan.mcp_version != MCP_SESSIONLESS {
        return;
    }
    if comma {
        b.push(b',');
    }
    let _ = write!(
        b,
        r#""_meta":{{"io.modelcontextprotocol/protocolVersion":"{}","io.modelcontextprotocol/clientCapabilities":{{}},"io.modelcontextprotocol/clientInfo":{{"name":"a2a-bench","version":"{}"}}}}"#,
        plan.mcp_version,
        env!("CARGO_PKG_VERSION")
    );
}

/// A new connection's TLS state for https:// (`None` for http://, or if rustls refused the
/// configuration, which the command line checked: then nothing is sent, see `take_output`).
fn fresh_tls(plan: &Plan) -> Option<rustls::ClientConnection> {
    plan.tls.as_ref().and_then(|t| t.connect().ok())
}

/// The context id of the conversation request `seq` of `client` belongs to: `turns` turns of
/// the conversation pattern per context.
fn conversation(into: &mut String, plan: &Plan, id_base: u32, client: u32, seq: u64) {
    let block = u64::from(plan.turns.max(1)) * plan.patterns.len() as u64;
    into.clear();
    let _ = std::fmt::Write::write_fmt(
        into,
        format_args!("a2a-bench-{id_base}-{client}-{}", seq / block),
    );
}

/// Registers `n` agents with the registry at `addr` before a run (`--preload`), over one
/// keep-alive connection (HTTP/1.1, or h2c with `--http2`, 32 registrations at a time); returns
/// their ids.
pub fn preload(
    addr: std::net::SocketAddr,
    plan: &Plan,
    n: std::ops::Range<u32>,
    timeout: std::time::Duration,
) -> Result<Vec<String>, String> {
    if plan.http2 {
        return preload_h2(addr, plan, n, timeout);
    }
    let s = std::net::TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("--preload: connecting to {addr}: {e}"))?;
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_nodelay(true);
    match &plan.tls {
        Some(tls) => {
            let c = tls.connect().map_err(|e| format!("--preload: {e}"))?;
            preload_h1(rustls::StreamOwned::new(c, s), plan, n)
        }
        None => preload_h1(s, plan, n),
    }
}

/// `--preload` over HTTP/1.1, one registration at a time.
fn preload_h1(
    mut s: impl std::io::Read + std::io::Write,
    plan: &Plan,
    n: std::ops::Range<u32>,
) -> Result<Vec<String>, String> {
    let mut ids = Vec::with_capacity(n.len());
    let (mut buf, mut filled) = (vec![0u8; 64 << 10], 0usize);
    for i in n {
        s.write_all(&preload_request(plan, i)).map_err(|e| format!("--preload: writing: {e}"))?;
        loop {
            let head = match parse::head(&buf[..filled]) {
                Ok(h) => h,
                Err(why) => return Err(format!("--preload: the registry sent {why}")),
            };
            if let Some(h) = head {
                let Framing::Length(len) = h.framing else {
                    return Err("--preload: chunked registry answers are not supported".into());
                };
                if filled >= h.head_len + len {
                    let body = &buf[h.head_len..h.head_len + len];
                    ids.push(preloaded_id(plan, h.status, body)?);
                    buf.copy_within(h.head_len + len..filled, 0);
                    filled -= h.head_len + len;
                    break;
                }
            }
            if filled == buf.len() {
                buf.resize(buf.len() * 2, 0);
            }
            match s.read(&mut buf[filled..]) {
                Ok(0) => return Err("--preload: the registry closed the connection".into()),
                Ok(k) => filled += k,
                Err(e) => return Err(format!("--preload: reading: {e}")),
            }
        }
    }
    Ok(ids)
}

/// `--preload` over HTTP/2 (h2c, or h2 over TLS): the same requests, carried over as the run's
/// are ([`h2c::to_h2`]).
fn preload_h2(
    addr: std::net::SocketAddr,
    plan: &Plan,
    n: std::ops::Range<u32>,
    timeout: std::time::Duration,
) -> Result<Vec<String>, String> {
    let bounded = |what: &'static str| {
        move |_| format!("--preload: no {what} from the registry within {} s", timeout.as_secs())
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("--preload: {e}"))?;
    rt.block_on(async {
        let tcp = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(bounded("connection"))?
            .map_err(|e| format!("--preload: connecting to {addr}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        match &plan.tls {
            Some(tls) => {
                let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
                let io = tokio::time::timeout(timeout, connector.connect(tls.name.clone(), tcp))
                    .await
                    .map_err(bounded("TLS handshake"))?
                    .map_err(|e| format!("--preload: the registry's TLS: {e}"))?;
                register_h2(io, plan, n, timeout).await
            }
            None => register_h2(tcp, plan, n, timeout).await,
        }
    })
}

/// `--preload`'s registrations over an HTTP/2 connection on `io`.
async fn register_h2<T>(
    io: T,
    plan: &Plan,
    n: std::ops::Range<u32>,
    timeout: std::time::Duration,
) -> Result<Vec<String>, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let bounded = |what: &'static str| {
        move |_| format!("--preload: no {what} from the registry within {} s", timeout.as_secs())
    };
    let h2 = |e: h2::Error| format!("--preload: HTTP/2: {e}");
    {
        let (mut send, conn) = tokio::time::timeout(timeout, h2::client::handshake(io))
            .await
            .map_err(bounded("HTTP/2 handshake"))?
            .map_err(h2)?;
        let driver = tokio::spawn(conn);
        let mut ids = Vec::with_capacity(n.len());
        for first in n.clone().step_by(32) {
            let mut pending = Vec::with_capacity(32);
            for i in first..(first + 32).min(n.end) {
                let (req, body) = h2c::to_h2(&preload_request(plan, i), &plan.host)
                    .map_err(|e| format!("--preload: {e}"))?;
                send = tokio::time::timeout(timeout, send.ready())
                    .await
                    .map_err(bounded("free stream"))?
                    .map_err(h2)?;
                let (resp, mut out) = send.send_request(req, false).map_err(h2)?;
                out.send_data(body, true).map_err(h2)?;
                pending.push(resp);
            }
            for resp in pending {
                let r = tokio::time::timeout(timeout, resp)
                    .await
                    .map_err(bounded("answer"))?
                    .map_err(h2)?;
                let status = r.status().as_u16();
                let mut body = r.into_body();
                let mut bytes = Vec::new();
                while let Some(data) = tokio::time::timeout(timeout, body.data())
                    .await
                    .map_err(bounded("answer body"))?
                {
                    let data = data.map_err(h2)?;
                    let _ = body.flow_control().release_capacity(data.len());
                    bytes.extend_from_slice(&data);
                }
                ids.push(preloaded_id(plan, status, &bytes)?);
            }
        }
        driver.abort();
        Ok(ids)
    }
}

/// Preloaded agent `i`'s registration, as HTTP/1.1 text.
fn preload_request(plan: &Plan, i: u32) -> Vec<u8> {
    let body = format!(
        r#"{{"agent_card":{{"name":"preloaded-{i}","description":"a2a-bench preloaded agent {i}","url":"http://preloaded-{i}.invalid/","version":"1.0.0","protocolVersion":"0.3.0","protocol_version":"0.3.0","capabilities":{{}},"defaultInputModes":["text/plain"],"defaultOutputModes":["text/plain"],"skills":[{{"id":"s{i}","name":"skill {i}","description":"preloaded","tags":["skill-{}"]}}]}}}}"#,
        i % 16
    );
    let mut req = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        plan.join("agents"),
        plan.host,
        body.len()
    );
    if let Some(t) = &plan.token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    req.into_bytes()
}

/// The id in a registration's answer.
fn preloaded_id(plan: &Plan, status: u16, body: &[u8]) -> Result<String, String> {
    if !(200..300).contains(&status) {
        let path = plan.join("agents");
        return Err(format!("--preload: the registry answered POST {path} with HTTP {status}"));
    }
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| format!("--preload: the registry's answer: {e}"))?;
    match v.get("agent_id").or_else(|| v.get("id")).and_then(|x| x.as_str()) {
        Some(id) => Ok(id.to_string()),
        None => Err(format!("--preload: no agent_id in the registry's answer {v}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> GroupConfig {
        super::fuzz::group_config(2)
    }

    /// Agent 1's request, booked (intended and rendered) at `at_ns`.
    fn booked(at_ns: u64) -> Outgoing {
        let message_id = 1 | MEASURED_BIT;
        Outgoing { from: 1, to: 0, message_id, measured: true, intended_ns: at_ns, sent_ns: at_ns }
    }

    #[test]
    fn a_request_leaves_when_the_writer_takes_its_bytes() {
        // Proves where the raw latency starts, over HTTP/1.1 and HTTP/2: a request booked at
        // t = 5 ns gets its send time when the writer takes its bytes for the socket, not when
        // it was rendered; its intended time stays. A later take without new requests leaves
        // the send time alone.
        for http2 in [false, true] {
            let plan = Plan { host: "x".into(), http2, ..Plan::default() };
            let mut h = Http::new(&config(), Arc::new(plan));
            h.request(0, &booked(5));
            let before = clock::now_ns();
            let out = h.take_output(0).expect("the request's bytes");
            assert!(!out.is_empty());
            let sent = |h: &mut Http| -> Wire {
                if http2 {
                    let c = std::mem::take(&mut h.h2[0]);
                    let w = c.into_streams().next().expect("the stream");
                    h.h2[0] = h2c::H2Conn::default();
                    w
                } else {
                    h.conns[0].wire[0]
                }
            };
            if !http2 {
                assert!(h.take_output(0).is_none());
            }
            let w = sent(&mut h);
            assert_eq!(w.intended_ns, 5, "http2: {http2}");
            assert!(w.sent_ns >= before, "http2: {http2}: sent at {} < {before}", w.sent_ns);
        }
    }

    #[test]
    fn requests_carry_the_head_of_their_kind_and_their_own_lines() {
        // Proves the request bytes with the heads written once per pattern: the request line,
        // the constant headers, then this request's own lines (session, body length) and body,
        // for a GET, an A2A message with a token, and an MCP call in a session, sessionless
        // and with `Connection: close`.
        let text = |plan: Plan, session: Option<&str>| -> String {
            let mut h = Http::new(&config(), Arc::new(plan));
            h.sessions.fill(session.map(Into::into));
            h.request(0, &booked(5));
            String::from_utf8(h.take_output(0).expect("the request's bytes")).unwrap()
        };
        let ua = format!("User-Agent: a2a-bench/{}\r\n", env!("CARGO_PKG_VERSION"));
        let get =
            text(Plan { host: "h:1".into(), path: "/health".into(), ..Plan::default() }, None);
        assert_eq!(
            get,
            format!("GET /health HTTP/1.1\r\nHost: h:1\r\n{ua}Accept: application/json\r\n\r\n")
        );
        let plan = Plan {
            host: "h".into(),
            patterns: vec![Pattern::A2aMessage],
            token: Some("t0k".into()),
            ..Plan::default()
        };
        let msg = text(plan, None);
        let (head, body) = msg.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("POST / HTTP/1.1\r\nHost: h\r\n"), "{head}");
        for line in
            ["Authorization: Bearer t0k", "A2A-Version: 1.0", "Content-Type: application/json"]
        {
            assert!(head.lines().any(|l| l == line), "{line}: {head}");
        }
        assert!(head.ends_with(&format!("Content-Length: {}", body.len())), "{head}");
        assert!(body.contains(r#""method":"SendMessage""#) && body.contains(r#""id":"#), "{body}");
        for (version, session, close) in
            [("2025-06-18", Some("s-1"), false), (MCP_SESSIONLESS, None, true)]
        {
            let plan = Plan {
                host: "h".into(),
                patterns: vec![Pattern::McpToolsCall],
                mcp_version: version.into(),
                close,
                ..Plan::default()
            };
            let call = text(plan, session);
            let (head, body) = call.split_once("\r\n\r\n").unwrap();
            let has = |line: &str| head.lines().any(|l| l == line);
            assert!(has(&format!("MCP-Protocol-Version: {version}")), "{head}");
            assert!(has("Accept: application/json, text/event-stream"), "{head}");
            assert_eq!(has("Mcp-Session-Id: s-1"), session.is_some(), "{head}");
            assert_eq!(has("Mcp-Method: tools/call") && has("Mcp-Name: echo"), session.is_none());
            assert_eq!(has("Connection: close"), close, "{head}");
            assert!(has(&format!("Content-Length: {}", body.len())), "{head}");
            assert!(body.contains(r#""method":"tools/call""#), "{body}");
        }
    }

    #[test]
    fn a_round_of_requests_and_answers_allocates_nothing_per_request() {
        // Proves the HTTP client's hot path's discipline: once warm, clients answered, judged,
        // recorded and sending again (request rendered from its pattern's head, response
        // parsed and its shape checked) allocate nothing, for a GET, A2A answers whose skipped
        // members nest (a message's `parts`, a task's history and artifacts: `judge::Skip`,
        // where serde_json's own skip allocated its scratch stack once per response) and a
        // registry's list, four requests on the wire at once.
        use crate::loadgen::group::{Group, Schedule};
        use crate::testing::counting;
        use std::task::{Context, Poll, Waker};
        let health = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"status\":\"ok\"}";
        let json = |body: &str| {
            let n = body.len();
            format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {n}\r\n\r\n{body}")
        };
        let message = json(
            r#"{"jsonrpc":"2.0","id":1,"result":{"message":{"role":"ROLE_AGENT","messageId":"m","parts":[{"text":"x"}]}}}"#,
        );
        let task = json(
            r#"{"jsonrpc":"2.0","id":1,"result":{"task":{"id":"t","contextId":"c","status":{"state":"TASK_STATE_COMPLETED","message":{"role":"ROLE_AGENT","parts":[{"text":"done"}]}},"history":[{"role":"ROLE_USER","parts":[{"text":"x","metadata":{"a":[1,{"b":null}]}}]}],"artifacts":[{"artifactId":"a","parts":[{"text":"y"}]}]}}}"#,
        );
        let list = json(
            r#"[{"agent_id":"a1","agent_card":{"name":"n","skills":[{"id":"s","tags":["t"]}]}},{"agent_id":"a2","agent_card":{"name":"m","skills":[]}}]"#,
        );
        let cases = [
            (Pattern::Health, health),
            (Pattern::A2aMessage, &message[..]),
            (Pattern::A2aMessage, &task[..]),
            (Pattern::RegistryList, &list[..]),
        ];
        for (pattern, answer) in cases {
            let mut cfg = config();
            cfg.count = 4;
            cfg.agents_total = 4;
            cfg.agents_per_conn = 4;
            let plan =
                Plan { host: "h".into(), patterns: vec![pattern], pipeline: 4, ..Plan::default() };
            let mut g = Group::new(cfg.clone(), Http::new(&cfg, Arc::new(plan)));
            g.register(0);
            assert_eq!(g.registered(), Ok(true));
            let mut now = 1_000u64;
            g.set_schedule(Schedule { start_ns: now, measure_ns: now + 1, end_ns: u64::MAX });
            g.start(now);
            let mut cx = Context::from_waker(Waker::noop());
            let mut answers = Vec::with_capacity(64 << 10);
            // Every request written is answered at once, in order.
            let mut turn = |g: &mut Group<Http>, now: u64| -> usize {
                let mut asked = 0;
                while let Poll::Ready(Some(buf)) = g.poll_output(0, 0, &mut cx) {
                    asked += buf.windows(9).filter(|w| w == b"HTTP/1.1\r").count();
                    g.output_done(buf);
                }
                answers.clear();
                for _ in 0..asked {
                    answers.extend_from_slice(answer.as_bytes());
                }
                assert_eq!(g.on_input(0, &answers, now), Ok(answers.len()), "{pattern:?}");
                asked
            };
            for _ in 0..100 {
                now += 1_000;
                assert_eq!(turn(&mut g, now), 4, "{pattern:?}");
            }
            let (before, answered) = (counting::calls(), g.counters().round_trips_measured);
            let mut requests = 0;
            for _ in 0..1_000 {
                now += 1_000;
                requests += turn(&mut g, now);
            }
            let allocs = counting::calls() - before;
            assert_eq!(g.counters().round_trips_measured - answered, requests as u64);
            eprintln!("{pattern:?}: {allocs} allocations for {requests} requests");
            assert_eq!(allocs, 0, "{pattern:?}: {allocs} allocations for {requests} requests");
        }
    }
}
