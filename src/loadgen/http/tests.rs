//! The HTTP adapter's tests: requests by pattern, responses judged, sessions, errors by kind.

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
fn a_request_on_a_socket_ring_leaves_at_the_submission_after_its_take() {
    // Proves where the raw latency starts and ends when a socket ring carries the bytes: not
    // when the writer took them (the rest of the client's pass runs before they go) but at the
    // ring's next submission, the take time staying the bound when the submission is not
    // known; and not when the client handles the answer but at the pass that reaped it.
    std::thread::spawn(|| {
        transit::record();
        for http2 in [false, true] {
            let plan = Plan { host: "x".into(), http2, ..Plan::default() };
            let mut h = Http::new(&config(), Arc::new(plan));
            h.request(0, &booked(5));
            h.take_output(0).expect("the request's bytes");
            let w = if http2 {
                std::mem::take(&mut h.h2[0]).into_streams().next().expect("the stream")
            } else {
                h.conns[0].wire[0]
            };
            assert_eq!(w.left_ns(), w.sent_ns, "http2: {http2}: not submitted yet");
            let later = w.sent_ns + 2_000;
            while clock::now_ns() < later {
                std::hint::spin_loop();
            }
            transit::submitting(true);
            assert!(w.left_ns() >= later, "http2: {http2}: left at the submission");
            let first = w.left_ns();
            transit::submitting(true);
            assert_eq!(w.left_ns(), first, "http2: {http2}: the first submission after it");
            // The answer arrived when a pass reaped it, before the client handled it.
            transit::reaped();
            let reaped = transit::arrived_at().expect("reaped");
            let handled = reaped + 5_000;
            assert_eq!(w.transit(handled), (first, reaped), "http2: {http2}");
        }
    })
    .join()
    .unwrap();
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
    let get = text(Plan { host: "h:1".into(), path: "/health".into(), ..Plan::default() }, None);
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
    for line in ["Authorization: Bearer t0k", "A2A-Version: 1.0", "Content-Type: application/json"]
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
    // A registry under a path with a query: the operation's path, then the query.
    for (pattern, line) in [
        (Pattern::RegistryList, "GET /r/agents?k=1 HTTP/1.1"),
        (Pattern::RegistrySearch, "POST /r/agents/search?k=1 HTTP/1.1"),
        (Pattern::A2aRestMessage, "POST /r/message:send?k=1 HTTP/1.1"),
        (Pattern::A2aRestStream, "POST /r/message:stream?k=1 HTTP/1.1"),
        (Pattern::A2aV03RestMessage, "POST /r/v1/message:send?k=1 HTTP/1.1"),
        (Pattern::A2aV03RestStream, "POST /r/v1/message:stream?k=1 HTTP/1.1"),
        (Pattern::A2aV03RestTask, "POST /r/v1/message:send?k=1 HTTP/1.1"),
        (Pattern::A2aV03RestExtendedCard, "GET /r/v1/card?k=1 HTTP/1.1"),
        (Pattern::RegistryHealth, "GET /r/health?k=1 HTTP/1.1"),
    ] {
        let plan = Plan { patterns: vec![pattern], path: "/r/?k=1".into(), ..Plan::default() };
        let request = text(plan, None);
        assert_eq!(request.lines().next(), Some(line), "{request}");
    }
    // A2A's HTTP+JSON binding: the version header, and the request itself as the body.
    let plan = Plan { host: "h".into(), patterns: vec![Pattern::A2aRestStream], ..Plan::default() };
    let rest = text(plan, None);
    let (head, body) = rest.split_once("\r\n\r\n").unwrap();
    for line in ["POST /message:stream HTTP/1.1", "A2A-Version: 1.0", "Accept: text/event-stream"] {
        assert!(head.lines().any(|l| l == line), "{line}: {head}");
    }
    assert!(body.starts_with(r#"{"message":{"role":"ROLE_USER","messageId":"#), "{body}");
    assert!(!body.contains("jsonrpc"), "{body}");
    // v0.3's HTTP+JSON binding: no version header; the parts in `content`; `blocking` always
    // said (proto3's default, false, would answer at once): true for a message, false for a
    // task (a push task's config: `a_push_task_names_where_and_how_to_notify_its_end`).
    for (pattern, blocking) in [
        (Pattern::A2aV03RestStream, r#""configuration":{"blocking":true}}"#),
        (Pattern::A2aV03RestTask, r#""configuration":{"blocking":false}}"#),
    ] {
        let plan = Plan { host: "h".into(), patterns: vec![pattern], ..Plan::default() };
        let rest = text(plan, None);
        let (head, body) = rest.split_once("\r\n\r\n").unwrap();
        assert!(!head.contains("A2A-Version"), "{head}");
        let message = r#"{"message":{"role":"ROLE_USER","messageId":"m-"#;
        assert!(body.starts_with(message) && body.contains(r#","content":[{"text":"#), "{body}");
        assert!(body.contains(blocking), "{pattern:?}: {body}");
    }
    // A2A's gRPC binding: the method's path under the URL's (no query), gRPC's headers, and
    // one framed SendMessageRequest from the user as the body.
    let plan = Plan {
        host: "h".into(),
        path: "/g/?k=1".into(),
        patterns: vec![Pattern::A2aGrpcStream],
        ..Plan::default()
    };
    let call = text(plan, None);
    let (head, body) = call.split_once("\r\n\r\n").unwrap();
    let has = |line: &str| head.lines().any(|l| l == line);
    for line in [
        "POST /g/lf.a2a.v1.A2AService/SendStreamingMessage HTTP/1.1",
        "A2A-Version: 1.0",
        "TE: trailers",
        "Content-Type: application/grpc",
    ] {
        assert!(has(line), "{line}: {head}");
    }
    assert!(!head.contains("Accept:") && !head.contains("grpc-timeout"), "{head}");
    let plan = Plan {
        patterns: vec![Pattern::A2aGrpcMessage],
        timeout_ns: 1_500_500_000,
        ..Plan::default()
    };
    let timed = text(plan, None);
    assert!(timed.contains("\r\ngrpc-timeout: 1501m\r\n"), "--timeout is the deadline: {timed}");
    let mut sent = Vec::new();
    let walked = crate::grpc::messages(body.as_bytes(), |m| {
        sent.push(<crate::grpc::SendMessageRequest as prost::Message>::decode(m).map_err(|_| ())?);
        Ok::<(), ()>(())
    });
    assert_eq!(walked, Ok(1));
    let m = sent[0].message.clone().unwrap();
    assert!(m.message_id.starts_with("m-") && m.role == crate::grpc::ROLE_USER, "{m:?}");
    assert_eq!(m.parts.len(), 1);
    // --header: on every request after Host; one named as ours replaces it.
    let headers = [("X-Api-Key", "k"), ("A2A-Version", "0.9"), ("accept", "*/*")];
    let plan = Plan {
        host: "h".into(),
        patterns: vec![Pattern::A2aMessage],
        headers: headers.map(|(n, v)| (n.to_string(), v.to_string())).to_vec(),
        ..Plan::default()
    };
    let msg = text(plan, None);
    let head = msg.split_once("\r\n\r\n").unwrap().0;
    assert!(head.starts_with(&format!("POST / HTTP/1.1\r\nHost: h\r\n{ua}X-Api-Key: k\r\n")));
    let count =
        |name: &str| head.lines().filter(|l| l.to_ascii_lowercase().starts_with(name)).count();
    assert_eq!((count("a2a-version: "), count("accept: ")), (1, 1), "{head}");
    assert!(head.contains("A2A-Version: 0.9\r\naccept: */*\r\n"), "{head}");
}

/// Four clients of `plan` on one connection, registered and started (closed loop, window 1)
/// at `now`, measured from `now + 1`.
fn four_clients(plan: Plan, now: u64) -> crate::loadgen::group::Group<Http> {
    use crate::loadgen::group::{Group, Schedule};
    let mut cfg = config();
    cfg.count = 4;
    cfg.agents_total = 4;
    cfg.seats = crate::loadgen::group::Seats::Packed(4);
    let mut g = Group::new(cfg.clone(), Http::new(&cfg, Arc::new(plan)));
    g.register(0);
    assert_eq!(g.registered(), Ok(true));
    g.set_schedule(Schedule { start_ns: now, measure_ns: now + 1, end_ns: u64::MAX });
    g.start(now);
    g
}

#[test]
fn a_round_of_requests_and_answers_allocates_nothing_per_request() {
    // Proves the HTTP client's hot path's discipline: once warm, clients answered, judged,
    // recorded and sending again (request rendered from its pattern's head, response
    // parsed and its shape checked) allocate nothing, for a GET, A2A answers whose skipped
    // members nest (a message's `parts`, a task's history and artifacts: `judge::Skip`,
    // where serde_json's own skip allocated its scratch stack once per response), a task in
    // A2A's HTTP+JSON binding, a message in v0.3's and a registry's list, four requests on
    // the wire at once.
    use crate::loadgen::group::Group;
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
    let rest_task = json(
        r#"{"task":{"id":"t","contextId":"c","status":{"state":"TASK_STATE_COMPLETED","message":{"role":"ROLE_AGENT","parts":[{"text":"done"}]}},"artifacts":[{"artifactId":"a","parts":[{"text":"y"}]}]}}"#,
    );
    let v03_rest = json(
        r#"{"message":{"role":"ROLE_AGENT","messageId":"m","contextId":"c","content":[{"text":"x"}]}}"#,
    );
    let list = json(
        r#"[{"agent_id":"a1","agent_card":{"name":"n","skills":[{"id":"s","tags":["t"]}]}},{"agent_id":"a2","agent_card":{"name":"m","skills":[]}}]"#,
    );
    let cases = [
        (Pattern::Health, health),
        (Pattern::A2aMessage, &message[..]),
        (Pattern::A2aMessage, &task[..]),
        (Pattern::RegistryList, &list[..]),
        (Pattern::A2aRestMessage, &rest_task[..]),
        (Pattern::A2aV03RestMessage, &v03_rest[..]),
    ];
    for (pattern, answer) in cases {
        let plan =
            Plan { host: "h".into(), patterns: vec![pattern], pipeline: 4, ..Plan::default() };
        let mut now = 1_000u64;
        let mut g = four_clients(plan, now);
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

#[test]
fn a_weighted_mix_spreads_each_pattern_by_its_weight_and_conversations_keep_their_turns() {
    // Proves `--pattern a=4,b`: the cycle is smooth weighted round robin (4 and 1 give
    // `0 0 1 0 0`; all ones keep plain round robin), every client goes through it from its own
    // offset, `count_before` counts a pattern's earlier requests exactly, and a weighted
    // conversation changes its context every `--turns` of its own requests, whatever the mix.
    assert_eq!(super::schedule(&[4, 1]), [0, 0, 1, 0, 0]);
    assert!(super::schedule(&[1, 1, 1]).is_empty());
    let spread = super::schedule(&[2, 3]);
    assert_eq!(spread.iter().filter(|&&i| i == 1).count(), 3);
    assert!(spread.windows(2).all(|w| w != [0, 0]), "{spread:?}");
    let (patterns, weights) =
        super::parse_mix("a2a:message=3, a2a:conversation ,mcp:mixed=2").unwrap();
    assert_eq!(weights, [3, 1, 2, 2]);
    assert_eq!(patterns[3], Pattern::McpToolsCall);
    let plan = Plan {
        patterns: vec![Pattern::A2aMessage, Pattern::A2aConversation],
        mix: super::schedule(&[3, 1]),
        turns: 3,
        ..Plan::default()
    };
    // The table against a count by hand, for every pattern, weighted or not, past the cycle.
    for mix in [super::schedule(&[5, 1, 3]), Vec::new()] {
        let patterns = vec![Pattern::A2aMessage, Pattern::Health, Pattern::AgentCard];
        let plan = Plan { patterns, mix, ..Plan::default() };
        for (i, client) in (0..3u8).flat_map(|i| [0u32, 4, 8, 1_000_003].map(|c| (i, c))) {
            let mut seen = 0;
            for seq in 0..40u64 {
                assert_eq!(plan.count_before(i, client, seq), seen, "{i} {client} {seq}");
                seen += u64::from(plan.slot(client, seq) == i);
            }
        }
    }
    for client in 0..5u32 {
        let mut seen = 0;
        let mut contexts: Vec<String> = Vec::new();
        for seq in 0..48u64 {
            assert_eq!(plan.count_before(1, client, seq), seen, "client {client} seq {seq}");
            if plan.slot(client, seq) == 1 {
                seen += 1;
                let mut c = String::new();
                request::conversation(
                    &mut c,
                    &plan,
                    (1, Pattern::A2aConversation),
                    (7, client, seq),
                );
                contexts.push(c);
            }
        }
        assert_eq!(contexts.len(), 12, "a quarter of 48");
        for turns in contexts.chunks(3) {
            assert!(turns.iter().all(|c| *c == turns[0]), "{contexts:?}");
        }
        contexts.dedup();
        assert_eq!(contexts.len(), 4, "{contexts:?}");
    }
}

/// The bytes of the request of `pattern` (URL path `/a/`) for `what`: a follow-up (a GetTask,
/// a SubscribeToTask, a CancelTask) of the task `id`, or (None) the task's SendMessage.
fn rendered(pattern: Pattern, what: Option<What>, id: &str) -> Vec<u8> {
    let plan =
        Plan { host: "h".into(), path: "/a/".into(), patterns: vec![pattern], ..Plan::default() };
    let mut h = Http::new(&config(), Arc::new(plan));
    match what {
        Some(what) => {
            h.tasks.push(TaskSlot { id: id.into(), ..TaskSlot::default() });
            let w = Wire {
                what,
                local: 1,
                seq: 5,
                intended_ns: 0,
                sent_ns: 0,
                left: 0,
                measured: true,
                again: false,
                task: 0,
            };
            h.submit(0, w);
        }
        None => h.request(0, &booked(5)),
    }
    h.take_output(0).expect("the request's bytes")
}

#[test]
fn a_task_is_asked_about_by_its_binding_with_its_id() {
    // Proves the task patterns' requests: their SendMessage asks for the task at once
    // (`returnImmediately`), and a GetTask names the task the server gave, as a JSON string
    // in a JSON-RPC call (escaped) or as one path segment of the HTTP+JSON binding's GET
    // (percent-encoded), under the URL's path, with no body.
    let id = "t\"1/é";
    let request = |pattern: Pattern, what: Option<What>| -> String {
        String::from_utf8(rendered(pattern, what, id)).unwrap()
    };
    let text = |pattern: Pattern, poll: bool| request(pattern, poll.then_some(What::Poll(0)));
    let subscribe = |pattern: Pattern| request(pattern, Some(What::Subscribe(0)));
    for pattern in [Pattern::A2aTask, Pattern::A2aRestTask] {
        let send = text(pattern, false);
        let body: serde_json::Value =
            serde_json::from_str(send.split_once("\r\n\r\n").unwrap().1).unwrap();
        let params = if pattern == Pattern::A2aTask { &body["params"] } else { &body };
        assert_eq!(params["configuration"]["returnImmediately"], true, "{send}");
        assert_eq!(params["message"]["role"], "ROLE_USER", "{send}");
    }
    let rpc = text(Pattern::A2aTask, true);
    let (head, body) = rpc.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("POST /a/ HTTP/1.1\r\n") && head.contains("A2A-Version: 1.0"));
    let call: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(call["method"], "GetTask");
    assert_eq!(call["params"]["id"], id, "{body}");
    let call = text(Pattern::A2aGrpcTask, true);
    let (head, body) = call.split_once("\r\n\r\n").unwrap();
    assert_eq!(head.lines().next(), Some("POST /a/lf.a2a.v1.A2AService/GetTask HTTP/1.1"));
    assert!(head.contains("Content-Type: application/grpc"), "{head}");
    let mut asked = Vec::new();
    let walked = crate::grpc::messages(body.as_bytes(), |m| {
        asked.push(<crate::grpc::GetTaskRequest as prost::Message>::decode(m).map_err(|_| ())?);
        Ok::<(), ()>(())
    });
    assert_eq!((walked, asked[0].id.as_str()), (Ok(1), id));
    let send = text(Pattern::A2aGrpcTask, false);
    let body = send.split_once("\r\n\r\n").unwrap().1;
    let mut sent = Vec::new();
    let _ = crate::grpc::messages(body.as_bytes(), |m| {
        sent.push(<crate::grpc::SendMessageRequest as prost::Message>::decode(m).map_err(|_| ())?);
        Ok::<(), ()>(())
    });
    assert!(sent[0].configuration.as_ref().is_some_and(|c| c.return_immediately), "{sent:?}");
    let rest = text(Pattern::A2aRestTask, true);
    let (head, body) = rest.split_once("\r\n\r\n").unwrap();
    assert_eq!(head.lines().next(), Some("GET /a/tasks/t%221%2F%C3%A9 HTTP/1.1"), "{head}");
    assert!(head.contains("A2A-Version: 1.0") && !head.contains("Content-Length"), "{head}");
    assert_eq!(body, "");
    // SubscribeToTask: the same id, its method or path, and a stream accepted.
    let rpc = subscribe(Pattern::A2aSubscribe);
    let (head, body) = rpc.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("POST /a/ HTTP/1.1\r\n") && head.contains("Accept: text/event-stream")
    );
    let call: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!((&call["method"], &call["params"]["id"]), (&"SubscribeToTask".into(), &id.into()));
    let rest = subscribe(Pattern::A2aRestSubscribe);
    let first = rest.lines().next().unwrap();
    assert_eq!(first, "GET /a/tasks/t%221%2F%C3%A9:subscribe HTTP/1.1");
    assert!(rest.contains("Accept: text/event-stream"), "{rest}");
    let grpc = subscribe(Pattern::A2aGrpcSubscribe);
    assert_eq!(grpc.lines().next(), Some("POST /a/lf.a2a.v1.A2AService/SubscribeToTask HTTP/1.1"));
    // v0.3: message/send with blocking false, then tasks/get or tasks/resubscribe, all at the
    // URL, with no A2A-Version (v0.3 has none).
    let send = text(Pattern::A2aV03Task, false);
    let (head, body) = send.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("POST /a/ HTTP/1.1\r\n") && !head.contains("A2A-Version"), "{head}");
    let call: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(call["method"], "message/send");
    assert_eq!(call["params"]["configuration"]["blocking"], false, "{body}");
    assert_eq!(call["params"]["message"]["role"], "user", "{body}");
    for (what, method) in [(What::Poll(0), "tasks/get"), (What::Subscribe(0), "tasks/resubscribe")]
    {
        let follow = request(Pattern::A2aV03Subscribe, Some(what));
        let (head, body) = follow.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("POST /a/ HTTP/1.1\r\n") && !head.contains("A2A-Version"));
        let stream = matches!(what, What::Subscribe(_));
        assert_eq!(head.contains("Accept: text/event-stream"), stream, "{head}");
        let call: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!((&call["method"], &call["params"]["id"]), (&method.into(), &id.into()));
    }
    // CancelTask: the same id, by JSON-RPC, v0.3's tasks/cancel, HTTP+JSON's POST with an empty
    // body, and gRPC (a CancelTaskRequest, whose id is GetTaskRequest's field 2); the task
    // sent as the task patterns send it.
    let cancel = |pattern: Pattern| request(pattern, Some(What::Cancel(0)));
    for (pattern, method) in
        [(Pattern::A2aCancel, "CancelTask"), (Pattern::A2aV03Cancel, "tasks/cancel")]
    {
        let rpc = cancel(pattern);
        let (head, body) = rpc.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("POST /a/ HTTP/1.1\r\n"), "{head}");
        assert_eq!(head.contains("A2A-Version: 1.0"), pattern == Pattern::A2aCancel, "{head}");
        assert!(head.contains("Accept: application/json"), "{head}");
        let call: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!((&call["method"], &call["params"]["id"]), (&method.into(), &id.into()));
    }
    let send = text(Pattern::A2aV03Cancel, false);
    let call: serde_json::Value =
        serde_json::from_str(send.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(call["params"]["configuration"]["blocking"], false, "{send}");
    let send = text(Pattern::A2aRestCancel, false);
    assert!(send.starts_with("POST /a/message:send HTTP/1.1\r\n"), "{send}");
    assert!(send.contains(r#""returnImmediately":true"#), "{send}");
    let rest = cancel(Pattern::A2aRestCancel);
    let (head, body) = rest.split_once("\r\n\r\n").unwrap();
    assert_eq!(head.lines().next(), Some("POST /a/tasks/t%221%2F%C3%A9:cancel HTTP/1.1"));
    assert!(head.lines().any(|l| l == "Content-Length: 0") && body.is_empty(), "{head}");
    let grpc = cancel(Pattern::A2aGrpcCancel);
    let (head, body) = grpc.split_once("\r\n\r\n").unwrap();
    assert_eq!(head.lines().next(), Some("POST /a/lf.a2a.v1.A2AService/CancelTask HTTP/1.1"));
    let mut asked = Vec::new();
    let walked = crate::grpc::messages(body.as_bytes(), |m| {
        asked.push(<crate::grpc::GetTaskRequest as prost::Message>::decode(m).map_err(|_| ())?);
        Ok::<(), ()>(())
    });
    assert_eq!((walked, asked[0].id.as_str()), (Ok(1), id));
}

#[test]
fn a_v03_grpc_request_is_v03_s_message_at_v03_s_method() {
    // Proves the a2a-v03-grpc patterns' requests: v0.3's service and method names (its
    // TaskSubscription, GetAgentCard), no A2A-Version, the message at field 1 with `blocking`
    // said for a message and left at proto3's false for a task, and a follow-up naming the task
    // `tasks/{id}`.
    use crate::grpc::{V03SendMessageRequest, V03TaskName};
    use prost::Message as _;
    let id = "t-1";
    let request = |pattern: Pattern, what: Option<What>| -> (String, Vec<u8>) {
        let out = rendered(pattern, what, id);
        let at = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let mut message = Vec::new();
        let walked = crate::grpc::messages(&out[at..], |m| {
            message = m.to_vec();
            Ok::<(), ()>(())
        });
        assert_eq!(walked, Ok(1), "{pattern:?}");
        (String::from_utf8_lossy(&out[..at]).into_owned(), message)
    };
    let line = |head: &str| head.lines().next().unwrap().to_string();
    for (pattern, method, blocking) in [
        (Pattern::A2aV03GrpcMessage, "SendMessage", true),
        (Pattern::A2aV03GrpcStream, "SendStreamingMessage", true),
        (Pattern::A2aV03GrpcTask, "SendMessage", false),
        (Pattern::A2aV03GrpcCancel, "SendMessage", false),
    ] {
        let (head, body) = request(pattern, None);
        assert_eq!(line(&head), format!("POST /a/a2a.v1.A2AService/{method} HTTP/1.1"));
        assert!(!head.to_ascii_lowercase().contains("a2a-version"), "{head}");
        assert!(head.contains("TE: trailers") && head.contains("application/grpc"), "{head}");
        let sent = V03SendMessageRequest::decode(&body[..]).unwrap();
        let m = sent.request.as_ref().expect("the message at 1");
        assert_eq!((m.role, m.parts.len()), (crate::grpc::ROLE_USER, 1), "{sent:?}");
        assert_eq!(sent.configuration.is_some_and(|c| c.blocking), blocking, "{pattern:?}");
    }
    for (what, method) in [
        (What::Poll(0), "GetTask"),
        (What::Subscribe(0), "TaskSubscription"),
        (What::Cancel(0), "CancelTask"),
    ] {
        let (head, body) = request(Pattern::A2aV03GrpcSubscribe, Some(what));
        assert_eq!(line(&head), format!("POST /a/a2a.v1.A2AService/{method} HTTP/1.1"));
        assert_eq!(V03TaskName::decode(&body[..]).unwrap().name, "tasks/t-1");
    }
    let (head, body) = request(Pattern::A2aV03GrpcAgentCard, None);
    assert_eq!(line(&head), "POST /a/a2a.v1.A2AService/GetAgentCard HTTP/1.1");
    assert!(body.is_empty());
}

#[test]
fn a_list_of_tasks_asks_for_a_page_in_each_binding() {
    // Proves the list patterns' requests: JSON-RPC's ListTasks with a pageSize, the HTTP+JSON
    // binding's GET {path}/tasks?pageSize=… (after the URL's own query, if it has one) with no
    // body, and gRPC's ListTasks with a ListTasksRequest holding the page size.
    let request = |pattern: Pattern, path: &str| -> String {
        let plan = Plan {
            host: "h".into(),
            path: path.into(),
            patterns: vec![pattern],
            ..Plan::default()
        };
        let mut h = Http::new(&config(), Arc::new(plan));
        h.request(0, &booked(5));
        String::from_utf8(h.take_output(0).expect("the request's bytes")).unwrap()
    };
    let rpc = request(Pattern::A2aListTasks, "/a/");
    let (head, body) = rpc.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("POST /a/ HTTP/1.1\r\n") && head.contains("A2A-Version: 1.0"));
    let call: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        (&call["method"], &call["params"]["pageSize"]),
        (&"ListTasks".into(), &LIST_PAGE.into())
    );
    for (path, line) in [
        ("/a/", "GET /a/tasks?pageSize=50 HTTP/1.1"),
        ("/t1?key=k", "GET /t1/tasks?key=k&pageSize=50 HTTP/1.1"),
    ] {
        let rest = request(Pattern::A2aRestListTasks, path);
        let (head, body) = rest.split_once("\r\n\r\n").unwrap();
        assert_eq!(head.lines().next(), Some(line), "{head}");
        assert!(head.contains("A2A-Version: 1.0") && !head.contains("Content-Length"), "{head}");
        assert_eq!(body, "");
    }
    let grpc = request(Pattern::A2aGrpcListTasks, "/a/");
    let (head, body) = grpc.split_once("\r\n\r\n").unwrap();
    assert_eq!(head.lines().next(), Some("POST /a/lf.a2a.v1.A2AService/ListTasks HTTP/1.1"));
    let mut asked = Vec::new();
    let walked = crate::grpc::messages(body.as_bytes(), |m| {
        asked.push(<crate::grpc::ListTasksRequest as prost::Message>::decode(m).map_err(|_| ())?);
        Ok::<(), ()>(())
    });
    assert_eq!((walked, asked[0].page_size), (Ok(1), LIST_PAGE as i32));
}

#[test]
fn page_size_and_list_status_set_every_bindings_page() {
    // Proves --page-size, --list-status and --list-artifacts reach the list patterns'
    // requests in each binding: pageSize, the state by its ProtoJSON name (a query parameter
    // in HTTP+JSON) or number (ListTasksRequest's field 3), and includeArtifacts (field 8).
    let request = |pattern: Pattern| -> String {
        let plan = Plan {
            host: "h".into(),
            patterns: vec![pattern],
            page_size: 7,
            list_status: crate::grpc::TASK_STATE_COMPLETED as u8,
            list_artifacts: true,
            ..Plan::default()
        };
        let mut h = Http::new(&config(), Arc::new(plan));
        h.request(0, &booked(5));
        String::from_utf8(h.take_output(0).expect("the request's bytes")).unwrap()
    };
    let rpc = request(Pattern::A2aListTasks);
    let call: serde_json::Value =
        serde_json::from_str(rpc.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(call["params"]["pageSize"], 7);
    assert_eq!(call["params"]["status"], "TASK_STATE_COMPLETED");
    assert_eq!(call["params"]["includeArtifacts"], true);
    let rest = request(Pattern::A2aRestListTasks);
    let line = "GET /tasks?pageSize=7&status=TASK_STATE_COMPLETED&includeArtifacts=true HTTP/1.1";
    assert_eq!(rest.lines().next(), Some(line));
    let grpc = request(Pattern::A2aGrpcListTasks);
    let body = grpc.split_once("\r\n\r\n").unwrap().1;
    let mut asked = Vec::new();
    let walked = crate::grpc::messages(body.as_bytes(), |m| {
        asked.push(<crate::grpc::ListTasksRequest as prost::Message>::decode(m).map_err(|_| ())?);
        Ok::<(), ()>(())
    });
    assert_eq!((walked, asked[0].page_size), (Ok(1), 7));
    assert_eq!(asked[0].status, crate::grpc::TASK_STATE_COMPLETED);
    assert!(asked[0].include_artifacts);
}

#[test]
fn a_page_walk_asks_for_the_page_after_the_last() {
    // Proves --page-walk: a client's next ListTasks names the token its last page gave (JSON
    // escaped in JSON-RPC, percent-encoded in HTTP+JSON's query, field 5 in gRPC), and after
    // a page without one (the last) it asks for the first again.
    use crate::loadgen::group::{Book, MEASURED_BIT};
    use crate::wire::AgentId;
    let token = r#"t 1/2"x"#;
    for p in [Pattern::A2aListTasks, Pattern::A2aRestListTasks] {
        let plan = Plan {
            host: "h".into(),
            patterns: vec![p],
            page_walk: true,
            page_size: 2,
            ..Plan::default()
        };
        let cfg = super::fuzz::group_config(1);
        let mut h = Http::new(&cfg, Arc::new(plan));
        let mut book = Book::new(cfg);
        h.register(0, &[AgentId(1)], &mut book);
        // Request `n` of agent 1 (the book's own sends need a running schedule).
        let request = |h: &mut Http, n: u64| {
            let message_id = n | MEASURED_BIT;
            let r =
                Outgoing { from: 1, to: 1, message_id, measured: true, intended_ns: 1, sent_ns: 1 };
            h.request(0, &r);
        };
        request(&mut h, 1);
        let sent = |h: &mut Http| {
            let mut all = Vec::new();
            while let Some(out) = h.take_output(0) {
                all.extend_from_slice(&out);
                h.output_done(out);
            }
            String::from_utf8(all).unwrap()
        };
        let asked = |request: &str| -> Option<String> {
            let (head, body) =
                request.split_once("\r\n\r\n").unwrap_or_else(|| panic!("{p:?}: {request:?}"));
            if p == Pattern::A2aRestListTasks {
                let line = head.lines().next().unwrap();
                assert!(line.starts_with("GET /tasks?pageSize=2"), "{line}");
                line.split_once("&pageToken=").map(|(_, t)| t.trim_end_matches(" HTTP/1.1").into())
            } else {
                let call: serde_json::Value = serde_json::from_str(body).unwrap();
                assert_eq!(call["params"]["pageSize"], 2, "{call}");
                call["params"]["pageToken"].as_str().map(String::from)
            }
        };
        let answer = |next: &str| {
            let page = serde_json::json!({"tasks": [], "nextPageToken": next});
            let body = match p {
                Pattern::A2aListTasks => {
                    serde_json::json!({"jsonrpc": "2.0", "id": 1, "result": page}).to_string()
                }
                _ => page.to_string(),
            };
            let n = body.len();
            format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {n}\r\n\r\n{body}")
        };
        assert_eq!(asked(&sent(&mut h)), None, "the first page");
        let used = h.input(0, answer(token).as_bytes(), &mut book).unwrap();
        assert!(used > 0);
        request(&mut h, 2);
        let want = match p {
            Pattern::A2aRestListTasks => "t%201%2F2%22x".to_string(),
            _ => token.to_string(),
        };
        assert_eq!(asked(&sent(&mut h)), Some(want), "{p:?}: the page after");
        h.input(0, answer("").as_bytes(), &mut book).unwrap();
        request(&mut h, 3);
        assert_eq!(asked(&sent(&mut h)), None, "{p:?}: after the last page, the first");
    }
    // gRPC: the token in ListTasksRequest's field 5.
    let plan = Plan {
        host: "h".into(),
        patterns: vec![Pattern::A2aGrpcListTasks],
        page_walk: true,
        ..Plan::default()
    };
    let mut h = Http::new(&config(), Arc::new(plan));
    h.cursors[0].push_str("tok");
    h.request(0, &booked(5));
    let out = h.take_output(0).expect("the request's bytes");
    let body = &out[out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4..];
    let mut asked = Vec::new();
    let walked = crate::grpc::messages(body, |m| {
        asked.push(<crate::grpc::ListTasksRequest as prost::Message>::decode(m).map_err(|_| ())?);
        Ok::<(), ()>(())
    });
    assert_eq!((walked, asked[0].page_token.as_str()), (Ok(1), "tok"));
}

#[test]
fn an_extended_card_is_asked_for_in_each_binding() {
    // Proves the extended-card patterns' requests: JSON-RPC's GetExtendedAgentCard (A2A 1.0),
    // v0.3's agent/getAuthenticatedExtendedCard (no A2A-Version), the HTTP+JSON binding's
    // GET {path}/extendedAgentCard (under the URL's path, before its query) with no body, and
    // gRPC's GetExtendedAgentCard with an empty request; each with the bearer token.
    let request = |pattern: Pattern, path: &str| -> String {
        let plan = Plan {
            host: "h".into(),
            path: path.into(),
            patterns: vec![pattern],
            token: Some("tok".into()),
            ..Plan::default()
        };
        let mut h = Http::new(&config(), Arc::new(plan));
        h.request(0, &booked(5));
        String::from_utf8(h.take_output(0).expect("the request's bytes")).unwrap()
    };
    for (p, method, version) in [
        (Pattern::A2aExtendedCard, "GetExtendedAgentCard", true),
        (Pattern::A2aV03ExtendedCard, "agent/getAuthenticatedExtendedCard", false),
    ] {
        let rpc = request(p, "/a/");
        let (head, body) = rpc.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("POST /a/ HTTP/1.1\r\n"), "{head}");
        assert!(head.contains("Authorization: Bearer tok"), "{head}");
        assert_eq!(head.contains("A2A-Version: 1.0"), version, "{head}");
        let call: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!((&call["jsonrpc"], &call["method"]), (&"2.0".into(), &method.into()));
        assert!(call["id"].is_u64(), "{call}");
    }
    for (path, line) in [
        ("/a/", "GET /a/extendedAgentCard HTTP/1.1"),
        ("/t1?key=k", "GET /t1/extendedAgentCard?key=k HTTP/1.1"),
    ] {
        let rest = request(Pattern::A2aRestExtendedCard, path);
        let (head, body) = rest.split_once("\r\n\r\n").unwrap();
        assert_eq!(head.lines().next(), Some(line), "{head}");
        assert!(head.contains("A2A-Version: 1.0") && !head.contains("Content-Length"), "{head}");
        assert_eq!(body, "");
    }
    let grpc = request(Pattern::A2aGrpcExtendedCard, "/a/");
    let (head, body) = grpc.split_once("\r\n\r\n").unwrap();
    let line = "POST /a/lf.a2a.v1.A2AService/GetExtendedAgentCard HTTP/1.1";
    assert_eq!(head.lines().next(), Some(line));
    assert!(
        head.contains("content-type: application/grpc")
            || head.contains("Content-Type: application/grpc"),
        "{head}"
    );
    assert_eq!(body.as_bytes(), [0, 0, 0, 0, 0], "one empty message");
}

#[test]
fn a_push_task_names_where_and_how_to_notify_its_end() {
    // Proves the push patterns' SendMessage: returnImmediately, and a push-notification
    // config whose URL names the receiver's base, the run, the core, the client in it and the
    // request, with the command's token; the same in JSON-RPC, the HTTP+JSON binding and v0.3
    // (`message/send` with `blocking: false` and a `pushNotificationConfig`; in its HTTP+JSON
    // binding a `pushNotification`); with --push-auth, an authentication too.
    for auth in [false, true] {
        let at = push::Advertised { url: Some("http://10.1.2.3:9/p/"), host: None, auth };
        let receiver = push::Receiver::start("127.0.0.1:0".parse().unwrap(), at, &[]).unwrap();
        assert_eq!(receiver.next_run(), 1);
        let token = receiver.token().to_string();
        assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'), "{token}");
        let plan = Arc::new(Plan {
            host: "h".into(),
            patterns: vec![
                Pattern::A2aPush,
                Pattern::A2aRestPush,
                Pattern::A2aV03Push,
                Pattern::A2aV03RestPush,
            ],
            pipeline: 4,
            push: Some(Arc::new(receiver)),
            ..Plan::default()
        });
        let mut h = Http::new(&config(), plan);
        h.set_push_core(1);
        // Four requests of the first client: one of each pattern.
        let mut kinds = Vec::new();
        for seq in [4, 5, 6, 7] {
            h.request(0, &Outgoing { message_id: seq | MEASURED_BIT, ..booked(5) });
            let text = String::from_utf8(h.take_output(0).expect("the request's bytes")).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            let rest = head.starts_with("POST /message:send ");
            let v03_rest = head.starts_with("POST /v1/message:send ");
            let body: serde_json::Value = serde_json::from_str(body).unwrap();
            let params = if rest || v03_rest { &body } else { &body["params"] };
            let c = &params["configuration"];
            let v03 = body["method"] == "message/send" || v03_rest;
            kinds.push((rest || v03_rest, v03));
            let push = if v03_rest {
                assert_eq!(c["blocking"], false, "{body}");
                assert!(params["message"]["content"][0]["text"].is_string(), "{body}");
                &c["pushNotification"]
            } else if v03 {
                assert_eq!(c["blocking"], false, "{body}");
                assert_eq!(params["message"]["parts"][0]["kind"], "text", "{body}");
                &c["pushNotificationConfig"]
            } else {
                assert_eq!(c["returnImmediately"], true, "{body}");
                &c["taskPushNotificationConfig"]
            };
            assert_eq!(push["url"], format!("http://10.1.2.3:9/p/1/1/0/{seq}"), "{body}");
            assert_eq!(push["token"], token.as_str(), "{body}");
            // --push-auth: the token as Bearer credentials (v0.3: a list of schemes).
            let want = match (auth, v03) {
                (false, _) => serde_json::Value::Null,
                (true, false) => serde_json::json!({"scheme": "Bearer", "credentials": token}),
                (true, true) => serde_json::json!({"schemes": ["Bearer"], "credentials": token}),
            };
            assert_eq!(push["authentication"], want, "{body}");
        }
        kinds.sort();
        assert_eq!(kinds, [(false, false), (false, true), (true, false), (true, true)]);
    }
}

#[test]
fn a_notified_task_is_answered_once_early_or_late_allocating_nothing() {
    // Proves a push pattern's cycle through the loop: the SendMessage's answer is a working
    // task, which waits parked until the core's side channel brings the notification of its
    // end (the receiver's message: client, request, state code); an end notified before the
    // answer is kept and settles the task when the answer comes; a failed end is an error by
    // its name; once warm a cycle allocates nothing (the deadlines of settled tasks do not
    // pile up).
    use crate::loadgen::group::Group;
    use crate::loadgen::workload::Completed;
    use crate::testing::counting;
    use std::task::{Context, Poll, Waker};
    let working = r#"{"jsonrpc":"2.0","id":1,"result":{"task":{"id":"t-1","status":{"state":"TASK_STATE_WORKING"}}}}"#;
    let working = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{working}",
        working.len()
    );
    // A task's end as the receiver hands it on: the state's place in TASK_STATES, plus one.
    let code = |state: &str| crate::grpc::TASK_STATES.iter().position(|s| *s == state).unwrap() + 1;
    let (completed, failed) = (code("COMPLETED") as u8, code("FAILED") as u8);
    let plan = Plan {
        host: "h".into(),
        patterns: vec![Pattern::A2aPush],
        pipeline: 4,
        // Long: the deadlines of the tasks already notified stay due for the whole test, and
        // must leave their heap all the same (else it grows, and allocates, with every task).
        task_timeout_ns: 60_000_000_000,
        ..Plan::default()
    };
    let mut now = 1_000u64;
    let mut g = four_clients(plan, now);
    let mut cx = Context::from_waker(Waker::noop());
    let mut answers = Vec::with_capacity(64 << 10);
    let mut ends = Vec::with_capacity(64);
    // Answers every SendMessage written with a working task, and notifies its end (`state`)
    // after the answer, or (`early`) before it.
    let mut turn = |g: &mut Group<Http>, now: u64, state: u8, early: bool| {
        answers.clear();
        ends.clear();
        while let Poll::Ready(Some(buf)) = g.poll_output(0, 0, &mut cx) {
            let text = std::str::from_utf8(&buf).unwrap();
            // The notification URL ends with /{client in the core}/{request}.
            for (i, _) in text.match_indices("\"url\":\"") {
                let url = &text[i + 7..];
                let url = &url[..url.find('"').unwrap()];
                let mut parts = url.rsplit('/');
                let seq: u64 = parts.next().unwrap().parse().unwrap();
                let local: u32 = parts.next().unwrap().parse().unwrap();
                ends.push(Completed { local, slot: state, seq: seq as u32 });
                answers.extend_from_slice(working.as_bytes());
            }
            g.output_done(buf);
        }
        if early {
            for e in &ends {
                g.on_side(Some(*e), now);
            }
        }
        assert_eq!(g.on_input(0, &answers, now), Ok(answers.len()));
        if !early {
            for e in &ends {
                g.on_side(Some(*e), now);
            }
        }
        ends.len()
    };
    for round in 0..400 {
        now += 1_000;
        turn(&mut g, now, completed, round % 2 == 0);
    }
    let (before, answered) = (counting::calls(), g.counters().round_trips_measured);
    let mut sent = 0;
    for round in 0..1_000 {
        now += 1_000;
        sent += turn(&mut g, now, completed, round % 2 == 0);
    }
    let allocs = counting::calls() - before;
    let tasks = g.counters().round_trips_measured - answered;
    assert!(tasks >= 1_000 && tasks as usize <= sent, "{tasks} tasks answered of {sent}");
    assert_eq!(g.breakdown()[0].errors, Vec::new());
    assert_eq!(allocs, 0, "{allocs} allocations for {tasks} tasks");
    // A failed end, notified late or early, is an error by its name, once per task.
    now += 1_000;
    let failures = turn(&mut g, now, failed, false) + turn(&mut g, now + 1, failed, true);
    let errors = &g.breakdown()[0].errors;
    assert_eq!(errors, &[("a2a_task_failed".to_string(), failures as u64)], "{errors:?}");
}

#[test]
fn a_task_is_polled_until_it_ends_and_answered_once_allocating_nothing() {
    // Proves a task pattern's cycle through the loop: the SendMessage's answer is a working
    // task, so a GetTask follows (at once with --task-poll 0; after it, when the side task
    // fires the timers); the completed task answers the booked request once, its polls
    // counted; once warm a cycle allocates nothing. Over both bindings.
    use crate::loadgen::group::Group;
    use crate::testing::counting;
    use std::task::{Context, Poll, Waker};
    let json = |body: &str| {
        let n = body.len();
        format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {n}\r\n\r\n{body}")
    };
    for pattern in [Pattern::A2aTask, Pattern::A2aRestTask] {
        let (working, done) = if pattern == Pattern::A2aTask {
            (
                json(
                    r#"{"jsonrpc":"2.0","id":1,"result":{"task":{"id":"t-1","status":{"state":"TASK_STATE_WORKING"}}}}"#,
                ),
                json(
                    r#"{"jsonrpc":"2.0","id":1,"result":{"id":"t-1","status":{"state":"TASK_STATE_COMPLETED"},"artifacts":[{"parts":[{"text":"x"}]}]}}"#,
                ),
            )
        } else {
            (
                json(r#"{"task":{"id":"t-1","status":{"state":"TASK_STATE_SUBMITTED"}}}"#),
                json(r#"{"id":"t-1","status":{"state":"TASK_STATE_COMPLETED"}}"#),
            )
        };
        for poll_ns in [0, 5_000] {
            let plan = Plan {
                host: "h".into(),
                patterns: vec![pattern],
                pipeline: 4,
                task_poll_ns: poll_ns,
                ..Plan::default()
            };
            let mut now = 1_000u64;
            let mut g = four_clients(plan, now);
            let mut cx = Context::from_waker(Waker::noop());
            let mut answers = Vec::with_capacity(64 << 10);
            // What is written is answered in order: a SendMessage (POST) by the working task,
            // a GetTask by the completed one. Returns the GetTasks answered.
            let mut turn = |g: &mut Group<Http>, now: u64| -> usize {
                answers.clear();
                let mut polls = 0;
                while let Poll::Ready(Some(buf)) = g.poll_output(0, 0, &mut cx) {
                    let text = std::str::from_utf8(&buf).unwrap();
                    // Each request, in order: over HTTP+JSON a GetTask is a GET; in JSON-RPC,
                    // its body's method says.
                    let rest = pattern == Pattern::A2aRestTask;
                    let marker = if rest { " HTTP/1.1\r\n" } else { "\"method\":\"" };
                    for (i, _) in text.match_indices(marker) {
                        let poll = if rest {
                            text[..i].rsplit('\n').next().is_some_and(|l| l.starts_with("GET "))
                        } else {
                            text[i..].starts_with("\"method\":\"GetTask\"")
                        };
                        polls += usize::from(poll);
                        let answer = if poll { &done } else { &working };
                        answers.extend_from_slice(answer.as_bytes());
                    }
                    g.output_done(buf);
                }
                assert_eq!(g.on_input(0, &answers, now), Ok(answers.len()), "{pattern:?}");
                polls
            };
            if poll_ns > 0 {
                // The GetTasks wait for the side task, which fires them when due.
                now += 1_000;
                assert_eq!(turn(&mut g, now), 0);
                assert_eq!(turn(&mut g, now), 0, "nothing goes before its time");
                let due = g.next_timer_ns().expect("GetTasks waiting");
                assert_eq!(due, now + poll_ns);
                g.on_side(None, due);
                assert_eq!(turn(&mut g, due), 4, "{pattern:?}");
                assert_eq!(g.counters().replies_delivered, 4);
                assert_eq!(g.counters().task_polls, 4);
                continue;
            }
            for _ in 0..100 {
                now += 1_000;
                turn(&mut g, now);
            }
            let (before, answered, polled) =
                (counting::calls(), g.counters().round_trips_measured, g.counters().task_polls);
            let mut polls = 0;
            for _ in 0..1_000 {
                now += 1_000;
                polls += turn(&mut g, now);
            }
            let allocs = counting::calls() - before;
            let tasks = g.counters().round_trips_measured - answered;
            assert!(tasks >= 1_000, "{pattern:?}: {tasks} tasks answered");
            assert_eq!(g.counters().task_polls - polled, polls as u64);
            let stats = g.breakdown();
            assert_eq!(stats[0].errors, Vec::new(), "{pattern:?}");
            assert_eq!(stats[0].events, stats[0].ok, "{pattern:?}: one poll per task");
            assert_eq!(allocs, 0, "{pattern:?}: {allocs} allocations for {tasks} tasks");
        }
    }
}

#[test]
fn a2a_version_1_0_goes_with_every_a2a_v1_method_by_name() {
    // Proves `Pattern::is_a2a_v1` (whose requests say `A2A-Version: 1.0`) by the names: every
    // a2a:, a2a-rest: and a2a-grpc: pattern but the agent card, and none of v0.3's (a2a-v03:,
    // a2a-v03-rest:), MCP's, the registry's or health.
    for (name, p) in PATTERNS {
        let v1 = ["a2a:", "a2a-rest:", "a2a-grpc:"].iter().any(|b| name.starts_with(b))
            && name != "a2a:agent_card";
        assert_eq!(p.is_a2a_v1(), v1, "{name}");
    }
}
