//! The bytes of a request: the head that is the same for every request of a pattern, written
//! once, and the lines and bodies that differ.

use super::*;

/// Sessionless MCP: the `_meta` envelope every request carries in place of a session
/// (protocol version and client capabilities), after `comma` when other params precede it.
/// The method of a request.
pub(super) fn method_of(what: What, kind: Option<Pattern>) -> &'static str {
    match (what, kind) {
        (What::Farewell, _) => "DELETE",
        (
            _,
            Some(
                Pattern::A2aRestListTasks
                | Pattern::A2aRestExtendedCard
                | Pattern::A2aV03RestExtendedCard,
            ),
        ) => "GET",
        (What::Poll(_) | What::Subscribe(_), Some(p)) if p.is_a2a_rest() => "GET",
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
pub(super) fn is_mcp(what: What, kind: Option<Pattern>) -> bool {
    matches!(what, What::Init | What::Initialized | What::Farewell)
        || kind.is_some_and(Pattern::is_mcp)
}

/// Which request a head is written for, where its line varies.
#[derive(Clone, Copy)]
pub(super) enum At<'a> {
    /// Any request of its kind (a head written ahead).
    Any,
    /// Request `seq` of `client` (registry:get's line names a preloaded agent by them).
    Request(u32, u64),
    /// A `GetTask` of this task (the HTTP+JSON binding's line names it).
    Task(&'a str),
    /// A `ListTasks` of the page after this token (`--page-walk`; empty: the first page).
    Page(&'a str),
}

/// Writes the request line and the header lines that do not change from one request of this
/// kind to the next: all but `Mcp-Session-Id`, the body's type and length, and the blank line.
/// `at` is the request, where its line varies (registry:get, the HTTP+JSON binding's
/// `GetTask`); with [`At::Any`] such a line is not written and the answer is false.
pub(super) fn fixed_head(
    out: &mut Vec<u8>,
    plan: &Plan,
    what: What,
    kind: Option<Pattern>,
    at: At<'_>,
) -> bool {
    let method = method_of(what, kind);
    // The registry's and the HTTP+JSON binding's paths go under the URL's path, before its
    // query.
    let (base, query) = match plan.path.split_once('?') {
        Some((path, query)) => (path.trim_end_matches('/'), Some(query)),
        None => (plan.path.trim_end_matches('/'), None),
    };
    let _ = match kind {
        Some(p) if p.is_a2a_rest() && what.follows_task() => {
            let At::Task(id) = at else { return false };
            let v = if p.is_v03_rest() { "/v1" } else { "" };
            let _ = write!(out, "{method} {base}{v}/tasks/");
            percent_encode(out, id);
            match what {
                What::Subscribe(_) => out.extend_from_slice(b":subscribe"),
                What::Cancel(_) => out.extend_from_slice(b":cancel"),
                _ => {}
            }
            Ok(())
        }
        Some(Pattern::AgentCard) => write!(out, "GET /.well-known/agent-card.json"),
        Some(Pattern::RegistryHealth) => write!(out, "GET {base}/health"),
        Some(Pattern::RegistryList | Pattern::RegistryRegister) => {
            write!(out, "{method} {base}/agents")
        }
        Some(Pattern::RegistrySearch) => write!(out, "POST {base}/agents/search"),
        Some(
            Pattern::A2aRestMessage
            | Pattern::A2aRestConversation
            | Pattern::A2aRestTask
            | Pattern::A2aRestSubscribe
            | Pattern::A2aRestPush
            | Pattern::A2aRestCancel,
        ) => write!(out, "POST {base}/message:send"),
        Some(Pattern::A2aRestStream) => write!(out, "POST {base}/message:stream"),
        Some(Pattern::A2aRestListTasks) => write!(out, "GET {base}/tasks"),
        Some(Pattern::A2aRestExtendedCard) => write!(out, "GET {base}/extendedAgentCard"),
        Some(
            Pattern::A2aV03RestMessage
            | Pattern::A2aV03RestTask
            | Pattern::A2aV03RestSubscribe
            | Pattern::A2aV03RestPush
            | Pattern::A2aV03RestCancel
            | Pattern::A2aV03RestConversation,
        ) => write!(out, "POST {base}/v1/message:send"),
        Some(Pattern::A2aV03RestStream) => write!(out, "POST {base}/v1/message:stream"),
        Some(Pattern::A2aV03RestExtendedCard) => write!(out, "GET {base}/v1/card"),
        Some(Pattern::A2aGrpcListTasks) => {
            write!(out, "POST {base}{}{}", crate::grpc::SERVICE, crate::grpc::LIST_TASKS)
        }
        Some(Pattern::A2aGrpcExtendedCard) => {
            let method = crate::grpc::GET_EXTENDED_AGENT_CARD;
            write!(out, "POST {base}{}{method}", crate::grpc::SERVICE)
        }
        Some(Pattern::A2aV03GrpcAgentCard) => {
            let method = crate::grpc::GET_AGENT_CARD;
            write!(out, "POST {base}{}{method}", crate::grpc::SERVICE_V03)
        }
        Some(p) if p.is_grpc() => {
            // Every other gRPC request is a task's follow-up, or its SendMessage (a stream's
            // SendStreamingMessage), in v1.0's service or v0.3's.
            let v03 = p.is_v03_grpc();
            let method = match what {
                What::Subscribe(_) if v03 => crate::grpc::TASK_SUBSCRIPTION,
                What::Subscribe(_) => crate::grpc::SUBSCRIBE_TO_TASK,
                What::Cancel(_) => crate::grpc::CANCEL_TASK,
                What::Poll(_) => crate::grpc::GET_TASK,
                _ if p.is_stream() => crate::grpc::SEND_STREAMING_MESSAGE,
                _ => crate::grpc::SEND_MESSAGE,
            };
            let service = if v03 { crate::grpc::SERVICE_V03 } else { crate::grpc::SERVICE };
            write!(out, "POST {base}{service}{method}")
        }
        Some(Pattern::RegistryGet) => {
            let At::Request(client, seq) = at else { return false };
            // The command line refuses registry:get without preloaded agents.
            let ids = &plan.preloaded;
            let at = ((u64::from(client) + seq) % ids.len().max(1) as u64) as usize;
            let id = ids.get(at).map_or("none", String::as_str);
            write!(out, "GET {base}/agents/{id}")
        }
        _ => write!(out, "{method} {}", plan.path),
    };
    let query = query.filter(|_| kind.is_some_and(Pattern::is_under_path));
    if let Some(q) = query {
        let _ = write!(out, "?{q}");
    }
    if kind == Some(Pattern::A2aRestListTasks) {
        let and = if query.is_some() { '&' } else { '?' };
        let _ = write!(out, "{and}pageSize={}", plan.page_size);
        if let Some(state) = status_name(plan.list_status) {
            let _ = write!(out, "&status=TASK_STATE_{state}");
        }
        if plan.list_artifacts {
            out.extend_from_slice(b"&includeArtifacts=true");
        }
        if plan.page_walk {
            let At::Page(token) = at else { return false };
            if !token.is_empty() {
                out.extend_from_slice(b"&pageToken=");
                percent_encode(out, token);
            }
        }
    }
    // The user's `--header`s replace these of ours.
    let theirs = |name: &str| plan.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    let _ = write!(out, " HTTP/1.1\r\nHost: {}\r\n", plan.host);
    if !theirs("user-agent") {
        let _ = write!(out, "User-Agent: a2a-bench/{}\r\n", env!("CARGO_PKG_VERSION"));
    }
    for (name, value) in &plan.headers {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    if let Some(t) = &plan.token {
        let _ = write!(out, "Authorization: Bearer {t}\r\n");
    }
    if plan.close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    if plan.compression.asks() && !kind.is_some_and(Pattern::is_grpc) && !theirs("accept-encoding")
    {
        out.extend_from_slice(b"Accept-Encoding: gzip\r\n");
    }
    let a2a = kind.is_some_and(Pattern::is_a2a_v1);
    if a2a && !theirs("a2a-version") {
        out.extend_from_slice(b"A2A-Version: 1.0\r\n");
    }
    if is_mcp(what, kind) {
        if !theirs("accept") {
            out.extend_from_slice(b"Accept: application/json, text/event-stream\r\n");
        }
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
    } else if kind.is_some_and(Pattern::is_grpc) {
        // gRPC's: it reads the status from the trailers; with --timeout, the deadline a gRPC
        // client gives the server (in whole milliseconds, at most gRPC's eight digits).
        out.extend_from_slice(b"TE: trailers\r\n");
        if plan.compression.asks() {
            out.extend_from_slice(b"grpc-accept-encoding: gzip\r\n");
        }
        if plan.timeout_ns > 0 && !theirs("grpc-timeout") {
            let ms = plan.timeout_ns.div_ceil(1_000_000).min(99_999_999);
            let _ = write!(out, "grpc-timeout: {ms}m\r\n");
        }
    } else if !theirs("accept") {
        let stream = kind.is_some_and(Pattern::is_stream) || matches!(what, What::Subscribe(_));
        let accept = if stream { "text/event-stream" } else { "application/json" };
        let _ = write!(out, "Accept: {accept}\r\n");
    }
    true
}

/// The name of `--list-status`'s state (without `TASK_STATE_`), if it names one.
fn status_name(state: u8) -> Option<&'static str> {
    crate::grpc::TASK_STATES.get(usize::from(state)).filter(|_| state != 0).copied()
}

/// Appends `text` as one path segment: every byte but RFC 3986's unreserved ones as `%XX`.
pub(super) fn percent_encode(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

/// Appends `n` in decimal.
pub(super) fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
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

pub(super) fn mcp_meta(b: &mut Vec<u8>, plan: &Plan, comma: bool) {
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
pub(super) fn fresh_tls(plan: &Plan) -> Option<rustls::ClientConnection> {
    plan.tls.as_ref().and_then(|t| t.connect().ok())
}

/// The context id of the conversation request `seq` of `client` belongs to: `turns` turns of
/// the conversation pattern `p` (index `i` of the mix) per context, however the mix weighs it
/// (each binding's conversations their own).
pub(super) fn conversation(
    into: &mut String,
    plan: &Plan,
    (i, p): (u8, Pattern),
    (id_base, client, seq): (u32, u32, u64),
) {
    let turn = plan.count_before(i, client, seq);
    let binding = match p {
        _ if p.is_v03_rest() => "v03-rest-",
        _ if p.is_v03_grpc() => "v03-grpc-",
        _ if p.is_v03() => "v03-",
        _ if p.is_a2a_rest() => "rest-",
        _ if p.is_grpc() => "grpc-",
        _ => "",
    };
    into.clear();
    let _ = std::fmt::Write::write_fmt(
        into,
        format_args!(
            "a2a-bench-{binding}{id_base}-{client}-{}",
            turn / u64::from(plan.turns.max(1))
        ),
    );
}

/// Who sends a request: what the ids in its body are made of.
pub(super) struct Caller<'a> {
    pub(super) id_base: u32,
    pub(super) client: u32,
    /// The client's request number.
    pub(super) seq: u64,
    /// A `GetTask`'s task id.
    pub(super) task: &'a str,
    /// A `ListTasks`' page token (`--page-walk`; empty: the first page).
    pub(super) page: &'a str,
    /// The push patterns: where its notifications go, after the receiver's base: `/{run}/
    /// {core}/{client in the core}` (the request number follows).
    pub(super) push_at: PushAt,
}

/// Where a push pattern's notifications go after the receiver's base: (run, core, client in
/// the core); the request number follows.
pub(super) type PushAt = (u32, usize, u32);

/// The body of a request (`what`, of pattern `kind`) into `b`, which is empty: written before
/// the head, which carries its length. `context` is the conversation's id, written here; the
/// message's text comes escaped for JSON and raw (for protobuf).
pub(super) fn request_body(
    b: &mut Vec<u8>,
    what: What,
    kind: Option<Pattern>,
    plan: &Plan,
    caller: &Caller,
    context: &mut String,
    (text, raw): (&str, &str),
) {
    let Caller { id_base, client, seq, task, page, push_at } = *caller;
    let rpc_id = seq + 1;
    match (what, kind) {
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
        (What::Request(i), Some(p @ Pattern::A2aConversation)) => {
            conversation(context, plan, (i, p), (id_base, client, seq));
            let _ = write!(
                b,
                r#"{{"jsonrpc":"2.0","id":{rpc_id},"method":"SendMessage","params":{{"message":{{"role":"ROLE_USER","messageId":"m-{id_base}-{client}-{seq}","contextId":"{context}","parts":[{{"text":"{text}"}}]}}}}}}"#,
            );
        }
        (_, Some(p)) if what.follows_task() && p.is_grpc() => {
            // SubscribeToTaskRequest's and CancelTaskRequest's fields are GetTaskRequest's (in
            // v0.3 too: the task's name).
            let (id, v03) = (task.as_bytes(), p.is_v03_grpc());
            crate::grpc::frame(b, |b| crate::grpc::get_task_request(b, id, v03));
        }
        (_, Some(p)) if what.follows_task() && !p.is_a2a_rest() => {
            let method = match (what, p.is_v03()) {
                (What::Subscribe(_), false) => "SubscribeToTask",
                (What::Subscribe(_), true) => "tasks/resubscribe",
                (What::Cancel(_), false) => "CancelTask",
                (What::Cancel(_), true) => "tasks/cancel",
                (_, false) => "GetTask",
                (_, true) => "tasks/get",
            };
            let _ = write!(
                b,
                r#"{{"jsonrpc":"2.0","id":{rpc_id},"method":"{method}","params":{{"id":"#
            );
            let _ = serde_json::to_writer(&mut *b, task);
            b.extend_from_slice(b"}}");
        }
        // The HTTP+JSON binding's GET, and its cancel's POST with an empty body.
        _ if what.follows_task() => {}
        (_, Some(Pattern::A2aTask | Pattern::A2aSubscribe | Pattern::A2aCancel)) => {
            let _ = write!(
                b,
                r#"{{"jsonrpc":"2.0","id":{rpc_id},"method":"SendMessage","params":{{"message":{{"role":"ROLE_USER","messageId":"m-{id_base}-{client}-{seq}","parts":[{{"text":"{text}"}}]}},"configuration":{{"returnImmediately":true}}}}}}"#,
            );
        }
        (_, Some(p @ (Pattern::A2aPush | Pattern::A2aRestPush))) => {
            // The receiver's base and token are checked to need no escaping (a URL without
            // quotes, backslashes or controls; a token of letters, digits and dashes).
            let (base, token) = plan.push.as_ref().map_or(("", ""), |r| (r.base(), r.token()));
            let auth = plan.push.as_ref().is_some_and(|r| r.auth());
            let (run, core, local) = push_at;
            if p == Pattern::A2aPush {
                let _ = write!(
                    b,
                    r#"{{"jsonrpc":"2.0","id":{rpc_id},"method":"SendMessage","params":"#
                );
            }
            let _ = write!(
                b,
                r#"{{"message":{{"role":"ROLE_USER","messageId":"m-{id_base}-{client}-{seq}","parts":[{{"text":"{text}"}}]}},"configuration":{{"returnImmediately":true,"taskPushNotificationConfig":{{"url":"{base}/{run}/{core}/{local}/{seq}","token":"{token}""#
            );
            if auth {
                let _ =
                    write!(b, r#","authentication":{{"scheme":"Bearer","credentials":"{token}"}}"#);
            }
            b.extend_from_slice(b"}}}");
            if p == Pattern::A2aPush {
                b.push(b'}');
            }
        }
        (_, Some(Pattern::A2aRestTask | Pattern::A2aRestSubscribe | Pattern::A2aRestCancel)) => {
            let _ = write!(
                b,
                r#"{{"message":{{"role":"ROLE_USER","messageId":"m-{id_base}-{client}-{seq}","parts":[{{"text":"{text}"}}]}},"configuration":{{"returnImmediately":true}}}}"#,
            );
        }
        (_, Some(Pattern::A2aV03RestExtendedCard)) => {}
        (What::Request(i), Some(p @ Pattern::A2aV03RestConversation)) => {
            conversation(context, plan, (i, p), (id_base, client, seq));
            v03_rest_body(b, plan, (caller, context.as_str()), text, p);
        }
        (_, Some(p)) if p.is_v03_rest() => v03_rest_body(b, plan, (caller, ""), text, p),
        (What::Request(i), Some(p @ Pattern::A2aV03Conversation)) => {
            conversation(context, plan, (i, p), (id_base, client, seq));
            let _ = write!(
                b,
                r#"{{"jsonrpc":"2.0","id":{rpc_id},"method":"message/send","params":{{"message":{{"kind":"message","role":"user","messageId":"m-{id_base}-{client}-{seq}","contextId":"{context}","parts":[{{"kind":"text","text":"{text}"}}]}}}}}}"#,
            );
        }
        (_, Some(Pattern::A2aRestMessage | Pattern::A2aRestStream)) => {
            // The HTTP+JSON binding's body is the request itself (`SendMessageRequest`).
            let _ = write!(
                b,
                r#"{{"message":{{"role":"ROLE_USER","messageId":"m-{id_base}-{client}-{seq}","parts":[{{"text":"{text}"}}]}}}}"#,
            );
        }
        (What::Request(i), Some(p @ Pattern::A2aRestConversation)) => {
            conversation(context, plan, (i, p), (id_base, client, seq));
            let _ = write!(
                b,
                r#"{{"message":{{"role":"ROLE_USER","messageId":"m-{id_base}-{client}-{seq}","contextId":"{context}","parts":[{{"text":"{text}"}}]}}}}"#,
            );
        }
        (
            What::Request(i),
            Some(p @ (Pattern::A2aGrpcConversation | Pattern::A2aV03GrpcConversation)),
        ) => {
            conversation(context, plan, (i, p), (id_base, client, seq));
            let how = (false, p.is_v03_grpc());
            grpc_request(b, (id_base, client, seq), context, raw, how, None);
        }
        (
            _,
            Some(
                p @ (Pattern::A2aGrpcMessage
                | Pattern::A2aGrpcStream
                | Pattern::A2aGrpcTask
                | Pattern::A2aGrpcSubscribe
                | Pattern::A2aGrpcPush
                | Pattern::A2aGrpcCancel
                | Pattern::A2aV03GrpcMessage
                | Pattern::A2aV03GrpcStream
                | Pattern::A2aV03GrpcTask
                | Pattern::A2aV03GrpcSubscribe
                | Pattern::A2aV03GrpcPush
                | Pattern::A2aV03GrpcCancel),
            ),
        ) => {
            let how = (p.is_task(), p.is_v03_grpc());
            let push = plan.push.as_ref().filter(|_| p.is_push()).map(|r| (r, push_at));
            grpc_request(b, (id_base, client, seq), "", raw, how, push);
        }
        (_, Some(p @ (Pattern::A2aV03Message | Pattern::A2aV03Stream))) => {
            let method = if p == Pattern::A2aV03Stream { "message/stream" } else { "message/send" };
            let _ = write!(
                b,
                r#"{{"jsonrpc":"2.0","id":{rpc_id},"method":"{method}","params":{{"message":{{"kind":"message","role":"user","messageId":"m-{id_base}-{client}-{seq}","parts":[{{"kind":"text","text":"{text}"}}]}}}}}}"#,
            );
        }
        (_, Some(Pattern::A2aV03Push)) => {
            // As for v1.0's push patterns, the base and token need no escaping.
            let (base, token) = plan.push.as_ref().map_or(("", ""), |r| (r.base(), r.token()));
            let (run, core, local) = push_at;
            let _ = write!(
                b,
                r#"{{"jsonrpc":"2.0","id":{rpc_id},"method":"message/send","params":{{"message":{{"kind":"message","role":"user","messageId":"m-{id_base}-{client}-{seq}","parts":[{{"kind":"text","text":"{text}"}}]}},"configuration":{{"blocking":false,"pushNotificationConfig":{{"url":"{base}/{run}/{core}/{local}/{seq}","token":"{token}""#,
            );
            // v0.3's PushNotificationAuthenticationInfo: a list of schemes.
            if plan.push.as_ref().is_some_and(|r| r.auth()) {
                let _ = write!(
                    b,
                    r#","authentication":{{"schemes":["Bearer"],"credentials":"{token}"}}"#
                );
            }
            b.extend_from_slice(b"}}}}");
        }
        (_, Some(Pattern::A2aV03Task | Pattern::A2aV03Subscribe | Pattern::A2aV03Cancel)) => {
            let _ = write!(
                b,
                r#"{{"jsonrpc":"2.0","id":{rpc_id},"method":"message/send","params":{{"message":{{"kind":"message","role":"user","messageId":"m-{id_base}-{client}-{seq}","parts":[{{"kind":"text","text":"{text}"}}]}},"configuration":{{"blocking":false}}}}}}"#,
            );
        }
        (_, Some(Pattern::A2aListTasks)) => {
            let _ = write!(
                b,
                r#"{{"jsonrpc":"2.0","id":{rpc_id},"method":"ListTasks","params":{{"pageSize":{}"#,
                plan.page_size
            );
            if !page.is_empty() {
                b.extend_from_slice(br#","pageToken":"#);
                let _ = serde_json::to_writer(&mut *b, page);
            }
            if let Some(state) = status_name(plan.list_status) {
                let _ = write!(b, r#","status":"TASK_STATE_{state}""#);
            }
            if plan.list_artifacts {
                b.extend_from_slice(br#","includeArtifacts":true"#);
            }
            b.extend_from_slice(b"}}");
        }
        (_, Some(Pattern::A2aGrpcListTasks)) => {
            let page = page.as_bytes();
            let (size, status) = (plan.page_size, plan.list_status);
            let artifacts = plan.list_artifacts;
            crate::grpc::frame(b, |b| {
                crate::grpc::list_tasks_request(b, (size, page), status, artifacts)
            });
        }
        (_, Some(Pattern::A2aExtendedCard)) => {
            let _ = write!(
                b,
                r#"{{"jsonrpc":"2.0","id":{rpc_id},"method":"GetExtendedAgentCard","params":{{}}}}"#
            );
        }
        (_, Some(Pattern::A2aV03ExtendedCard)) => {
            let _ = write!(
                b,
                r#"{{"jsonrpc":"2.0","id":{rpc_id},"method":"agent/getAuthenticatedExtendedCard"}}"#
            );
        }
        // An empty `GetExtendedAgentCardRequest` (no tenant), or v0.3's `GetAgentCardRequest`:
        // a frame of no bytes.
        (_, Some(Pattern::A2aGrpcExtendedCard | Pattern::A2aV03GrpcAgentCard)) => {
            crate::grpc::frame(b, |_| {})
        }
        (_, Some(Pattern::McpToolsList)) => {
            let _ =
                write!(b, r#"{{"jsonrpc":"2.0","id":{rpc_id},"method":"tools/list","params":{{"#);
            mcp_meta(b, plan, false);
            b.extend_from_slice(b"}}");
        }
        (_, Some(Pattern::McpToolsCall)) => {
            // --args-file: this call's arguments, drawn as a message's text is.
            let args = match plan.args_list.len() {
                0 => plan.args.as_str(),
                n => &plan.args_list[(draw(id_base + client, seq) % n as u64) as usize],
            };
            let _ = write!(
                b,
                r#"{{"jsonrpc":"2.0","id":{rpc_id},"method":"tools/call","params":{{"name":{},"arguments":{args}"#,
                plan.tool
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
}

/// The body of a v0.3 HTTP+JSON `SendMessage` (v0.3's ProtoJSON: the message's parts in
/// `content`, roles and states as the proto's enums). Its `blocking` is always given: the
/// binding's default is proto3's false, which a server takes as "answer at once" (a2a-sdk
/// 0.3 does); the task patterns ask for that, the message patterns for the answer. A
/// conversation's message carries its `context` (none when empty).
fn v03_rest_body(
    b: &mut Vec<u8>,
    plan: &Plan,
    (caller, context): (&Caller, &str),
    text: &str,
    p: Pattern,
) {
    let Caller { id_base, client, seq, push_at, .. } = *caller;
    let blocking = !p.is_task();
    let _ =
        write!(b, r#"{{"message":{{"role":"ROLE_USER","messageId":"m-{id_base}-{client}-{seq}","#);
    if !context.is_empty() {
        let _ = write!(b, r#""contextId":"{context}","#);
    }
    let _ =
        write!(b, r#""content":[{{"text":"{text}"}}]}},"configuration":{{"blocking":{blocking}"#,);
    if let Some(r) = plan.push.as_ref().filter(|_| p.is_push()) {
        // As for the other push patterns, the base and token need no escaping.
        let (base, token) = (r.base(), r.token());
        let (run, core, local) = push_at;
        let _ = write!(
            b,
            r#","pushNotification":{{"url":"{base}/{run}/{core}/{local}/{seq}","token":"{token}""#
        );
        if r.auth() {
            let _ =
                write!(b, r#","authentication":{{"schemes":["Bearer"],"credentials":"{token}"}}"#);
        }
        b.push(b'}');
    }
    b.extend_from_slice(b"}}");
}

/// A gRPC `SendMessageRequest`, framed, from the caller at `(id_base, client, seq)`, in
/// conversation `context` (none when empty), asking for its task at once with `immediately`;
/// v0.3's with `v03`.
fn grpc_request(
    b: &mut Vec<u8>,
    (id_base, client, seq): (u32, u32, u64),
    context: &str,
    text: &str,
    (immediately, v03): (bool, bool),
    push: Option<(&Arc<push::Receiver>, PushAt)>,
) {
    // "m-" and three numbers: at most 44 bytes.
    let mut id = [0u8; 48];
    let len = {
        let mut w = &mut id[..];
        let _ = write!(w, "m-{id_base}-{client}-{seq}");
        48 - w.len()
    };
    // The push patterns' URL (the command line holds its base to PUSH_URL_MAX bytes).
    let mut url = [0u8; PUSH_URL_MAX + 64];
    let push = push.map(|(r, (run, core, local))| {
        let mut w = &mut url[..];
        let _ = write!(w, "{}/{run}/{core}/{local}/{seq}", r.base());
        let n = PUSH_URL_MAX + 64 - w.len();
        (n, r.token().as_bytes(), r.auth())
    });
    crate::grpc::frame(b, |b| {
        let (context, text) = (context.as_bytes(), text.as_bytes());
        let push = push.map(|(n, token, auth)| (&url[..n], token, auth));
        let how = (immediately, v03);
        crate::grpc::send_message_request(b, &id[..len], context, text, how, push);
    });
}

/// The longest `--push-url` (its base of the URLs the push patterns' notifications go to).
pub const PUSH_URL_MAX: usize = 1024;
