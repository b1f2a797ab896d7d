//! The echo MCP server over streamable HTTP (one endpoint, any path): `initialize` opens a
//! session (`Mcp-Session-Id`), `notifications/*` are accepted with 202, `tools/list` shows one
//! tool, `echo`, `tools/call` echoes its arguments, `ping` answers, `DELETE` ends the session.
//! Requests naming protocol version `2026-07-28` (`MCP-Protocol-Version`) need no session.
//! Answers are JSON, or one server-sent event when the client accepts only `text/event-stream`.

use dashmap::DashMap;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use super::{body, fresh_id, json as json_reply, reply, rpc_error, Body};

/// The protocol version that needs no session.
pub const SESSIONLESS: &str = "2026-07-28";

/// The echo server and its open sessions.
#[derive(Default)]
pub struct Echo {
    sessions: DashMap<String, ()>,
}

fn header<'a>(parts: &'a hyper::http::request::Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

impl Echo {
    /// Sessions open now.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    pub(crate) async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        match *req.method() {
            Method::POST => match body(req).await {
                Ok((parts, bytes)) => self.post(&parts, &bytes),
                Err(r) => r,
            },
            Method::DELETE => {
                let id = req.headers().get("mcp-session-id").and_then(|v| v.to_str().ok());
                match id.and_then(|id| self.sessions.remove(id)) {
                    Some(_) => reply(StatusCode::OK, "text/plain", ""),
                    None => reply(StatusCode::NOT_FOUND, "text/plain", "no such session\n"),
                }
            }
            _ => reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "POST or DELETE\n"),
        }
    }

    fn post(&self, parts: &hyper::http::request::Parts, bytes: &Bytes) -> Response<Body> {
        let Ok(call) = serde_json::from_slice::<Value>(bytes) else {
            return rpc_error(&Value::Null, -32700, "Parse error");
        };
        let method = call.get("method").and_then(Value::as_str).unwrap_or_default();
        let Some(id) = call.get("id").cloned() else {
            // A notification (or a response): accepted, nothing to answer.
            return reply(StatusCode::ACCEPTED, "text/plain", "");
        };
        let version = header(parts, "mcp-protocol-version");
        let sse = header(parts, "accept")
            .is_some_and(|a| a.contains("text/event-stream") && !a.contains("application/json"));
        if method == "initialize" {
            let session = fresh_id("mcp");
            self.sessions.insert(session.clone(), ());
            let asked = call
                .pointer("/params/protocolVersion")
                .and_then(Value::as_str)
                .unwrap_or("2025-06-18");
            let result = json!({
                "protocolVersion": asked,
                "capabilities": {"tools": {"listChanged": false}},
                "serverInfo": {"name": "a2a-bench mcp-echo", "version": env!("CARGO_PKG_VERSION")}
            });
            let mut r = answer(&id, result, sse);
            if let Ok(v) = session.parse() {
                r.headers_mut().insert("mcp-session-id", v);
            }
            return r;
        }
        if version != Some(SESSIONLESS) {
            match header(parts, "mcp-session-id") {
                None => {
                    return reply(
                        StatusCode::BAD_REQUEST,
                        "text/plain",
                        "Mcp-Session-Id required (initialize first)\n",
                    )
                }
                Some(s) if !self.sessions.contains_key(s) => {
                    return reply(StatusCode::NOT_FOUND, "text/plain", "no such session\n")
                }
                Some(_) => {}
            }
        }
        match method {
            "ping" => answer(&id, json!({}), sse),
            "tools/list" => answer(
                &id,
                json!({"tools": [{
                    "name": "echo",
                    "description": "Echoes its arguments: `text` as it is, anything else as JSON",
                    "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}
                }]}),
                sse,
            ),
            "tools/call"
                if call.pointer("/params/name").and_then(Value::as_str) == Some("echo") =>
            {
                let args = call.pointer("/params/arguments").cloned().unwrap_or(Value::Null);
                let text = args
                    .get("text")
                    .and_then(Value::as_str)
                    .map_or_else(|| args.to_string(), str::to_string);
                answer(
                    &id,
                    json!({"content": [{"type": "text", "text": text}], "isError": false}),
                    sse,
                )
            }
            "tools/call" => rpc_error(&id, -32602, "Unknown tool (this server has `echo`)"),
            _ => rpc_error(&id, -32601, "Method not found"),
        }
    }
}

/// A JSON-RPC result, as JSON or as one server-sent event.
fn answer(id: &Value, result: Value, sse: bool) -> Response<Body> {
    let body = json!({"jsonrpc": "2.0", "id": id, "result": result});
    if sse {
        reply(StatusCode::OK, "text/event-stream", format!("event: message\ndata: {body}\n\n"))
    } else {
        json_reply(StatusCode::OK, &body)
    }
}
