//! The echo MCP server over streamable HTTP (one endpoint, any path): `initialize` opens a
//! session (`Mcp-Session-Id`), `notifications/*` are accepted with 202, `tools/list` shows one
//! tool, `echo`, `tools/call` echoes its arguments, `ping` answers, `DELETE` ends the session.
//! Requests naming protocol version `2026-07-28` (`MCP-Protocol-Version`) need no session.
//! Answers are JSON, or one server-sent event when the client accepts only `text/event-stream`.

use dashmap::DashMap;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::borrow::Cow;

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
        let sse = header(parts, "accept")
            .is_some_and(|a| a.contains("text/event-stream") && !a.contains("application/json"));
        match Quick::read(bytes) {
            Some(quick) => match self.refuse_without_session(parts) {
                Some(r) => r,
                None => respond(quick.answer(), sse),
            },
            None => self.general(parts, bytes, sse),
        }
    }

    /// Any call, read into a `Value`.
    fn general(
        &self,
        parts: &hyper::http::request::Parts,
        bytes: &Bytes,
        sse: bool,
    ) -> Response<Body> {
        let Ok(call) = serde_json::from_slice::<Value>(bytes) else {
            return rpc_error(&Value::Null, -32700, "Parse error");
        };
        let method = call.get("method").and_then(Value::as_str).unwrap_or_default();
        let Some(id) = call.get("id").cloned() else {
            // A notification (or a response): accepted, nothing to answer.
            return reply(StatusCode::ACCEPTED, "text/plain", "");
        };
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
        if let Some(r) = self.refuse_without_session(parts) {
            return r;
        }
        match method {
            "ping" => answer(&id, json!({}), sse),
            "tools/list" => {
                let tool = serde_json::from_str::<Value>(TOOL).unwrap_or_default();
                answer(&id, json!({"tools": [tool]}), sse)
            }
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

    /// The answer to a call past `initialize` that names no open session (none needs one
    /// under the sessionless protocol version).
    fn refuse_without_session(
        &self,
        parts: &hyper::http::request::Parts,
    ) -> Option<Response<Body>> {
        if header(parts, "mcp-protocol-version") == Some(SESSIONLESS) {
            return None;
        }
        match header(parts, "mcp-session-id") {
            None => Some(reply(
                StatusCode::BAD_REQUEST,
                "text/plain",
                "Mcp-Session-Id required (initialize first)\n",
            )),
            Some(s) if !self.sessions.contains_key(s) => {
                Some(reply(StatusCode::NOT_FOUND, "text/plain", "no such session\n"))
            }
            Some(_) => None,
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

/// An answer written out, as JSON or as one server-sent event.
fn respond(body: Vec<u8>, sse: bool) -> Response<Body> {
    if !sse {
        return reply(StatusCode::OK, "application/json", body);
    }
    let mut event = Vec::with_capacity(body.len() + 24);
    event.extend_from_slice(b"event: message\ndata: ");
    event.extend_from_slice(&body);
    event.extend_from_slice(b"\n\n");
    reply(StatusCode::OK, "text/event-stream", event)
}

/// The tool the echo lists, as `tools/list` answers it (written out: the fast path copies it).
const TOOL: &str = r#"{"description":"Echoes its arguments: `text` as it is, anything else as JSON","inputSchema":{"properties":{"text":{"type":"string"}},"type":"object"},"name":"echo"}"#;

/// A JSON-RPC call as the fast path reads it: strings borrowed, the id kept as written.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct QuickCall<'a> {
    #[serde(borrow, rename = "jsonrpc")]
    _jsonrpc: Option<Cow<'a, str>>,
    #[serde(borrow)]
    id: &'a RawValue,
    #[serde(borrow)]
    method: Cow<'a, str>,
    #[serde(borrow)]
    params: Option<QuickParams<'a>>,
}

/// A tool call's params with text arguments, or no params but the sessionless protocol's
/// `_meta` (which the echo does not read).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct QuickParams<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    arguments: Option<QuickArgs<'a>>,
    #[serde(rename = "_meta")]
    _meta: Option<serde::de::IgnoredAny>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct QuickArgs<'a> {
    #[serde(borrow)]
    text: Cow<'a, str>,
}

/// The calls a client of the echo makes over and over, `tools/call` of `echo` with a `text`
/// argument, `tools/list` and `ping`, read borrowed: no `Value` tree. The general path answers
/// any other call, or one with more in it, and answers these alike
/// (`quick_calls_are_answered_as_the_general_path_answers`).
enum Quick<'a> {
    Echo { id: &'a str, text: Cow<'a, str> },
    List { id: &'a str },
    Ping { id: &'a str },
}

impl<'a> Quick<'a> {
    fn read(bytes: &'a [u8]) -> Option<Quick<'a>> {
        let call: QuickCall = serde_json::from_slice(bytes).ok()?;
        let id = call.id.get();
        if id == "null" {
            return None;
        }
        let params = call.params;
        match (&*call.method, params) {
            ("tools/call", Some(QuickParams { name: Some(name), arguments: Some(args), .. }))
                if name == "echo" =>
            {
                Some(Quick::Echo { id, text: args.text })
            }
            ("tools/list", None | Some(QuickParams { name: None, arguments: None, .. })) => {
                Some(Quick::List { id })
            }
            ("ping", None | Some(QuickParams { name: None, arguments: None, .. })) => {
                Some(Quick::Ping { id })
            }
            _ => None,
        }
    }

    /// The JSON-RPC answer, written out.
    fn answer(&self) -> Vec<u8> {
        let (Quick::Echo { id, .. } | Quick::List { id } | Quick::Ping { id }) = self;
        let mut out = Vec::with_capacity(160);
        out.extend_from_slice(br#"{"id":"#);
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(br#","jsonrpc":"2.0","result":"#);
        match self {
            Quick::Echo { text, .. } => {
                out.extend_from_slice(br#"{"content":[{"text":"#);
                // Writing a str into a Vec cannot fail.
                let _ = serde_json::to_writer(&mut out, &**text);
                out.extend_from_slice(br#","type":"text"}],"isError":false}"#);
            }
            Quick::List { .. } => {
                out.extend_from_slice(br#"{"tools":["#);
                out.extend_from_slice(TOOL.as_bytes());
                out.extend_from_slice(b"]}");
            }
            Quick::Ping { .. } => out.extend_from_slice(b"{}"),
        }
        out.push(b'}');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;
    use http_body_util::BodyExt;

    /// A response's content type and body.
    fn said(r: Response<Body>) -> (String, Value) {
        let ct = r.headers()[hyper::header::CONTENT_TYPE].to_str().unwrap().to_string();
        let body = r.into_body().collect().now_or_never().unwrap().unwrap().to_bytes();
        let text = std::str::from_utf8(&body).unwrap();
        let json = text
            .strip_prefix("event: message\ndata: ")
            .map_or(text, |e| e.strip_suffix("\n\n").unwrap());
        (ct, serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {text}")))
    }

    #[test]
    fn quick_calls_are_answered_as_the_general_path_answers() {
        let echo = Echo::default();
        echo.sessions.insert("s-1".into(), ());
        let parts = |accept: &str, session: Option<&str>, version: &str| {
            let mut b = Request::post("/mcp").header("accept", accept);
            b = b.header("mcp-protocol-version", version);
            if let Some(s) = session {
                b = b.header("mcp-session-id", s);
            }
            b.body(()).unwrap().into_parts().0
        };
        let calls = [
            r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello \"you\"\n"}}}"#,
            r#"{ "id" : "a-1" , "method":"tools/call","params":{"arguments":{"text":"é"},"name":"echo"}}"#,
            r#"{"jsonrpc":"2.0","id":5,"method":"tools/list","params":{}}"#,
            r#"{"jsonrpc":"2.0","id":6,"method":"tools/list"}"#,
            r#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"echo","arguments":{"text":"m"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#,
        ];
        let heads = [
            ("application/json, text/event-stream", Some("s-1"), "2025-06-18"),
            ("text/event-stream", Some("s-1"), "2025-06-18"),
            ("application/json", None, SESSIONLESS),
            // Refused alike: no session, or one not open.
            ("application/json", None, "2025-06-18"),
            ("application/json", Some("s-2"), "2025-06-18"),
        ];
        for call in calls {
            assert!(Quick::read(call.as_bytes()).is_some(), "{call}");
            let bytes = Bytes::from(call);
            for (accept, session, version) in heads {
                let p = parts(accept, session, version);
                let (fast, general) = (
                    echo.post(&p, &bytes),
                    echo.general(&p, &bytes, {
                        accept.contains("text/event-stream") && !accept.contains("application/json")
                    }),
                );
                assert_eq!(fast.status(), general.status(), "{call} {accept} {session:?}");
                if fast.status() == StatusCode::OK {
                    assert_eq!(said(fast), said(general), "{call} {accept} {session:?}");
                }
            }
        }
        // Anything else, or more: the general path's.
        for call in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"t","n":1}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"n":1}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"other","arguments":{"text":"t"}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":"c"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","extra":true}"#,
            "not json",
        ] {
            assert!(Quick::read(call.as_bytes()).is_none(), "{call}");
        }
    }
}
