//! The reference HTTP targets (`a2a-bench serve`): each answers its protocol's subset exactly,
//! and refuses what is outside it clearly.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use a2a_bench::targets::{Kind, Target};
use serde_json::{json, Value};

/// One HTTP/1.1 exchange (connection closed after it): status, headers (lowercase), body.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    c.write_all(req.as_bytes()).unwrap();
    let mut raw = String::new();
    c.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_lowercase(), body.to_string())
}

fn rpc(addr: SocketAddr, headers: &[(&str, &str)], call: Value) -> (u16, String, String) {
    http(addr, "POST", "/", headers, &call.to_string())
}

#[test]
fn the_a2a_echo_agent_answers_both_versions_and_streams() {
    // Proves the echo agent serves its card, echoes v1.0 and v0.3 messages in their shapes,
    // streams three server-sent events ending in a final status, and answers errors by code.
    let t = Target::start(Kind::A2aEcho, "127.0.0.1:0".parse().unwrap(), 1).unwrap();
    let a = t.local_addr();
    let (s, _, card) = http(a, "GET", "/.well-known/agent-card.json", &[], "");
    assert_eq!(s, 200);
    let card: Value = serde_json::from_str(&card).unwrap();
    assert_eq!(card["capabilities"]["streaming"], true);
    let v1 = json!({"jsonrpc": "2.0", "id": 7, "method": "SendMessage", "params": {"message":
        {"role": "ROLE_USER", "messageId": "m1", "contextId": "c1", "parts": [{"text": "hello"}]}}});
    let (s, _, body) = rpc(a, &[("A2A-Version", "1.0")], v1);
    let r: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((s, &r["id"]), (200, &json!(7)));
    assert_eq!(r["result"]["message"]["parts"][0]["text"], "hello", "{r}");
    assert_eq!(r["result"]["message"]["role"], "ROLE_AGENT");
    assert_eq!(r["result"]["message"]["contextId"], "c1", "the context carries over");
    let v03 = json!({"jsonrpc": "2.0", "id": "x", "method": "message/stream", "params": {"message":
        {"role": "user", "messageId": "m2", "parts": [{"kind": "text", "text": "hi"}]}}});
    let (s, head, body) = rpc(a, &[], v03);
    assert_eq!(s, 200);
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    let events: Vec<Value> = body
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(events.len(), 3, "{body}");
    assert_eq!(events[0]["result"]["kind"], "task");
    assert_eq!(events[1]["result"]["artifact"]["parts"][0]["text"], "hi", "{body}");
    assert_eq!(events[2]["result"]["final"], true);
    assert_eq!(events[2]["result"]["taskId"], events[0]["result"]["id"]);
    let (_, _, body) = rpc(a, &[], json!({"jsonrpc": "2.0", "id": 1, "method": "tasks/nope"}));
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"]["code"], -32601);
    let (_, _, body) = http(a, "POST", "/", &[], "{not json");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"]["code"], -32700);
    t.stop();
}

#[test]
fn the_a2a_echo_agent_cancels_a_working_task_and_says_so() {
    // Proves the echo agent's cancel in each binding that answers JSON (v1.0 JSON-RPC, v0.3,
    // HTTP+JSON): a task still working is canceled for good (GetTask says so, as does the push
    // notification it was started with, with its token, sent at the cancel: its tasks work a
    // minute, and the notification is read within 10 s), and a second cancel, like one of a
    // task that ended, is refused as not cancelable.
    use a2a_bench::targets::Options;
    let options = Options { threads: 1, task_time: Duration::from_secs(60), ..Options::default() };
    let t = Target::start_options(Kind::A2aEcho, "127.0.0.1:0".parse().unwrap(), options).unwrap();
    let a = t.local_addr();
    let hook = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", hook.local_addr().unwrap());
    let v1 = &[("A2A-Version", "1.0")][..];
    let send = |method: &str, configuration: Value| {
        let message = match method {
            "SendMessage" => {
                json!({"role": "ROLE_USER", "messageId": "m", "parts": [{"text": "x"}]})
            }
            _ => {
                json!({"role": "user", "messageId": "m", "parts": [{"kind": "text", "text": "x"}]})
            }
        };
        let call = json!({"jsonrpc": "2.0", "id": 1, "method": method,
            "params": {"message": message, "configuration": configuration}});
        let (_, _, body) = rpc(a, v1, call);
        let r: Value = serde_json::from_str(&body).unwrap();
        let task = if method == "SendMessage" { &r["result"]["task"] } else { &r["result"] };
        task["id"].as_str().unwrap_or_else(|| panic!("{r}")).to_string()
    };
    let call = |method: &str, id: &str| -> Value {
        let (_, _, body) =
            rpc(a, v1, json!({"jsonrpc": "2.0", "id": 2, "method": method, "params": {"id": id}}));
        serde_json::from_str(&body).unwrap()
    };
    // v1.0, with a push-notification config.
    let push = json!({"url": url, "token": "tok"});
    let id =
        send("SendMessage", json!({"returnImmediately": true, "taskPushNotificationConfig": push}));
    let r = call("CancelTask", &id);
    assert_eq!(r["result"]["status"]["state"], "TASK_STATE_CANCELED", "{r}");
    assert_eq!(call("GetTask", &id)["result"]["status"]["state"], "TASK_STATE_CANCELED");
    assert_eq!(call("CancelTask", &id)["error"]["code"], -32002);
    assert_eq!(call("CancelTask", "no-such-task")["error"]["code"], -32001);
    // The notification, at the cancel (not a minute on, when the task would have ended).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(hook.accept());
    });
    let (mut c, _) =
        rx.recv_timeout(Duration::from_secs(10)).expect("notified at the cancel").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    // Until the head and as much body as it announced.
    let complete = |got: &[u8]| {
        let text = String::from_utf8_lossy(got).to_lowercase();
        text.split_once("\r\n\r\n").is_some_and(|(head, body)| {
            let length = head.lines().find_map(|l| l.strip_prefix("content-length: "));
            length.and_then(|l| l.trim().parse().ok()).is_some_and(|l: usize| body.len() >= l)
        })
    };
    while !complete(&got) {
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0, "{}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let got = String::from_utf8_lossy(&got).to_lowercase();
    assert!(
        got.starts_with("post /hook ") && got.contains("x-a2a-notification-token: tok"),
        "{got}"
    );
    assert!(got.contains("task_state_canceled"), "{got}");
    c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").unwrap();
    // v0.3's tasks/cancel.
    let id = send("message/send", json!({"blocking": false}));
    let r = call("tasks/cancel", &id);
    assert_eq!(
        (&r["result"]["kind"], &r["result"]["status"]["state"]),
        (&json!("task"), &json!("canceled")),
        "{r}"
    );
    // HTTP+JSON: POST /tasks/{id}:cancel, then 409 with the reason.
    let id = send("SendMessage", json!({"returnImmediately": true}));
    let (s, _, body) = http(a, "POST", &format!("/tasks/{id}:cancel"), v1, "");
    let task: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((s, &task["status"]["state"]), (200, &json!("TASK_STATE_CANCELED")), "{body}");
    let (s, _, body) = http(a, "POST", &format!("/tasks/{id}:cancel"), v1, "");
    assert!(s == 409 && body.contains("TASK_NOT_CANCELABLE"), "{s} {body}");
    t.stop();
}

#[test]
fn the_a2a_echo_agent_refuses_a_grpc_method_without_grpc_s_content_type() {
    // Proves the echo agent's gRPC services, v1.0's and v0.3's, under a prefix, answer 415 to a
    // request that is not gRPC (JSON over HTTP/1.1) instead of reading it.
    let t = Target::start(Kind::A2aEcho, "127.0.0.1:0".parse().unwrap(), 1).unwrap();
    let json = &[("Content-Type", "application/json")][..];
    for path in ["/t/lf.a2a.v1.A2AService/SendMessage", "/t/a2a.v1.A2AService/GetAgentCard"] {
        let (s, _, body) = http(t.local_addr(), "POST", path, json, "{}");
        assert!(s == 415 && body.contains("application/grpc"), "{path}: {s} {body}");
    }
    t.stop();
}

#[test]
fn the_a2a_echo_agent_lists_a_page_of_its_tasks() {
    // Proves ListTasks on the echo agent: a page of at most pageSize tasks, with the number
    // kept in all, in JSON-RPC and HTTP+JSON; the completed tasks' artifacts only when
    // includeArtifacts asks for them.
    let t = Target::start(Kind::A2aEcho, "127.0.0.1:0".parse().unwrap(), 1).unwrap();
    let a = t.local_addr();
    let v1 = &[("A2A-Version", "1.0")][..];
    for n in 0..3 {
        let call = json!({"jsonrpc": "2.0", "id": n, "method": "SendMessage", "params": {
            "message": {"role": "ROLE_USER", "messageId": "m", "parts": [{"text": "x"}]},
            "configuration": {"returnImmediately": true}}});
        let (s, _, _) = rpc(a, v1, call);
        assert_eq!(s, 200);
    }
    let (s, _, body) = http(a, "GET", "/tasks?pageSize=2", v1, "");
    let page: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(s, 200);
    assert_eq!((page["tasks"].as_array().map(Vec::len), &page["totalSize"]), (Some(2), &json!(3)));
    assert_eq!(page["tasks"][0]["status"]["state"], "TASK_STATE_COMPLETED", "{page}");
    assert!(page["tasks"][0].get("artifacts").is_none(), "{page}");
    let (_, _, body) = http(a, "GET", "/tasks?pageSize=2&includeArtifacts=true", v1, "");
    let page: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["tasks"][1]["artifacts"][0]["parts"][0]["text"], "x", "{page}");
    let call = json!({"jsonrpc": "2.0", "id": 9, "method": "ListTasks", "params": {"pageSize": 5}});
    let (_, _, body) = rpc(a, v1, call);
    let r: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(r["result"]["tasks"].as_array().map(Vec::len), Some(3), "{r}");
    assert!(r["result"]["tasks"][2].get("artifacts").is_none(), "{r}");
    let call = json!({"jsonrpc": "2.0", "id": 9, "method": "ListTasks",
        "params": {"pageSize": 5, "includeArtifacts": true}});
    let (_, _, body) = rpc(a, v1, call);
    let r: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(r["result"]["tasks"][2]["artifacts"][0]["parts"][0]["text"], "x", "{r}");
    t.stop();
}

#[test]
fn the_a2a_echo_agent_pages_through_its_tasks() {
    // Proves ListTasks' pages on the echo agent: following nextPageToken in HTTP+JSON (the
    // token percent-encoded, as clients send it) and JSON-RPC visits every task once and ends
    // on a page without a token; a token not of ours is refused in each binding.
    let t = Target::start(Kind::A2aEcho, "127.0.0.1:0".parse().unwrap(), 1).unwrap();
    let a = t.local_addr();
    let v1 = &[("A2A-Version", "1.0")][..];
    for n in 0..5 {
        let call = json!({"jsonrpc": "2.0", "id": n, "method": "SendMessage", "params": {
            "message": {"role": "ROLE_USER", "messageId": "m", "parts": [{"text": "x"}]},
            "configuration": {"returnImmediately": true}}});
        assert_eq!(rpc(a, v1, call).0, 200);
    }
    let (mut seen, mut token, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let path = format!("/tasks?pageSize=2&pageToken={}", token.replace(':', "%3A"));
        let (s, _, body) = http(a, "GET", &path, v1, "");
        let page: Value = serde_json::from_str(&body).unwrap();
        assert_eq!((s, &page["totalSize"]), (200, &json!(5)), "{body}");
        seen.extend(page["tasks"].as_array().unwrap().iter().map(|t| t["id"].clone()));
        pages += 1;
        token = page["nextPageToken"].as_str().unwrap().to_string();
        if token.is_empty() {
            break;
        }
        // The same page again, in JSON-RPC.
        let call = json!({"jsonrpc": "2.0", "id": 9, "method": "ListTasks",
            "params": {"pageSize": 2, "pageToken": token}});
        let r: Value = serde_json::from_str(&rpc(a, v1, call).2).unwrap();
        assert!(r["result"]["tasks"].is_array(), "{r}");
    }
    seen.sort_by_key(|v| v.to_string());
    seen.dedup();
    assert_eq!((pages, seen.len()), (3, 5));
    let (s, _, body) = http(a, "GET", "/tasks?pageToken=nonsense", v1, "");
    assert!(s == 400 && body.contains("INVALID_PARAMS"), "{s} {body}");
    let call = json!({"jsonrpc": "2.0", "id": 9, "method": "ListTasks",
        "params": {"pageToken": "nonsense"}});
    let r: Value = serde_json::from_str(&rpc(a, v1, call).2).unwrap();
    assert_eq!(r["error"]["code"], -32602, "{r}");
    t.stop();
}

#[test]
fn the_a2a_echo_agent_shows_its_extended_card_to_authenticated_clients() {
    // Proves the extended agent card: the public card says it has one (v1.0's capability,
    // v0.3's flag); JSON-RPC's GetExtendedAgentCard, v0.3's agent/getAuthenticatedExtendedCard
    // and HTTP+JSON's GET /extendedAgentCard answer it, with a skill the public card lacks;
    // with a token set, it needs the token where the public card does not.
    use a2a_bench::targets::Options;
    let options = Options { threads: 1, token: Some("tok".into()), ..Options::default() };
    let t = Target::start_options(Kind::A2aEcho, "127.0.0.1:0".parse().unwrap(), options).unwrap();
    let a = t.local_addr();
    let (s, _, body) = http(a, "GET", "/.well-known/agent-card.json", &[], "");
    let public: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(s, 200);
    assert_eq!(public["capabilities"]["extendedAgentCard"], true, "{public}");
    assert_eq!(public["supportsAuthenticatedExtendedCard"], true, "{public}");
    let skills = |card: &Value| card["skills"].as_array().map_or(0, Vec::len);
    let auth = &[("Authorization", "Bearer tok"), ("A2A-Version", "1.0")][..];
    for method in ["GetExtendedAgentCard", "agent/getAuthenticatedExtendedCard"] {
        let call = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": {}});
        let r: Value = serde_json::from_str(&rpc(a, auth, call.clone()).2).unwrap();
        assert_eq!(r["result"]["name"], public["name"], "{r}");
        assert_eq!(skills(&r["result"]), skills(&public) + 1, "{r}");
        assert_eq!(rpc(a, &[], call).0, 401, "{method} without the token");
    }
    let (s, _, body) = http(a, "GET", "/t1/extendedAgentCard", auth, "");
    let card: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((s, skills(&card)), (200, skills(&public) + 1), "{body}");
    assert_eq!(http(a, "GET", "/extendedAgentCard", &[], "").0, 401);
    t.stop();
}

#[test]
fn the_mcp_echo_server_keeps_sessions() {
    // Proves initialize opens a session, calls need it (unless sessionless), the echo tool
    // echoes, notifications get 202, and DELETE ends the session.
    let t = Target::start(Kind::McpEcho, "127.0.0.1:0".parse().unwrap(), 1).unwrap();
    let a = t.local_addr();
    let accept = ("Accept", "application/json, text/event-stream");
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let (s, head, body) = http(a, "POST", "/mcp", &[accept], &init.to_string());
    assert_eq!(s, 200, "{body}");
    let session =
        head.lines().find_map(|l| l.strip_prefix("mcp-session-id: ")).unwrap().trim().to_string();
    let sid = ("Mcp-Session-Id", session.as_str());
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(http(a, "POST", "/mcp", &[accept, sid], &note.to_string()).0, 202);
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let (_, _, body) = http(a, "POST", "/mcp", &[accept, sid], &list.to_string());
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["result"]["tools"][0]["name"], "echo");
    let call = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "ping"}}});
    let (_, _, body) = http(a, "POST", "/mcp", &[accept, sid], &call.to_string());
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["result"]["content"][0]["text"],
        "ping"
    );
    // Only event streams accepted: the answer is one server-sent event.
    let (_, head, body) =
        http(a, "POST", "/mcp", &[("Accept", "text/event-stream"), sid], &call.to_string());
    assert!(
        head.contains("text/event-stream") && body.starts_with("event: message\ndata: "),
        "{body}"
    );
    assert_eq!(http(a, "POST", "/mcp", &[accept], &call.to_string()).0, 400, "no session");
    let sessionless = ("MCP-Protocol-Version", a2a_bench::targets::mcp::SESSIONLESS);
    assert_eq!(http(a, "POST", "/mcp", &[accept, sessionless], &call.to_string()).0, 200);
    assert_eq!(http(a, "DELETE", "/mcp", &[sid], "").0, 200);
    assert_eq!(http(a, "POST", "/mcp", &[accept, sid], &call.to_string()).0, 404, "ended");
    t.stop();
}

#[test]
fn the_registry_registers_finds_and_forgets_agents() {
    // Proves register → get → list → search (case-insensitive, skills included) → delete, and
    // clear errors for a bad card and an unknown id.
    let t = Target::start(Kind::Registry, "127.0.0.1:0".parse().unwrap(), 1).unwrap();
    let a = t.local_addr();
    let card = json!({"agent_card": {"name": "weather bot", "description": "forecasts",
        "skills": [{"name": "forecast", "tags": ["rain"]}]}});
    let (s, _, body) = http(a, "POST", "/agents", &[], &card.to_string());
    assert_eq!(s, 201);
    let id =
        serde_json::from_str::<Value>(&body).unwrap()["agent_id"].as_str().unwrap().to_string();
    let other = json!({"agent_card": {"name": "translator"}});
    assert_eq!(http(a, "POST", "/agents", &[], &other.to_string()).0, 201);
    let (s, _, body) = http(a, "GET", &format!("/agents/{id}"), &[], "");
    assert_eq!(
        (s, serde_json::from_str::<Value>(&body).unwrap()["agent_card"]["name"].clone()),
        (200, json!("weather bot"))
    );
    let (_, _, body) = http(a, "GET", "/agents", &[], "");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["count"], 2);
    let (_, _, body) =
        http(a, "POST", "/agents/search", &[], &json!({"query": "RAIN"}).to_string());
    let found: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (found["count"].clone(), found["agents"][0]["agent_id"].clone()),
        (json!(1), json!(id))
    );
    assert_eq!(http(a, "POST", "/agents", &[], "{\"agent_card\": 5}").0, 422);
    assert_eq!(http(a, "DELETE", &format!("/agents/{id}"), &[], "").0, 200);
    assert_eq!(http(a, "GET", &format!("/agents/{id}"), &[], "").0, 404);
    let (s, _, body) = http(a, "GET", "/health", &[], "");
    assert_eq!(
        (s, serde_json::from_str::<Value>(&body).unwrap()["agents"].clone()),
        (200, json!(1))
    );
    t.stop();
}
