//! Reference HTTP targets (`a2a-bench serve a2a-echo|mcp-echo|registry`): small, fast servers
//! that implement exactly the subset of the A2A, MCP and agent-registry protocols the HTTP
//! patterns use, so users can calibrate a set-up and see a generator's ceiling, and tests have
//! something real to talk to. hyper on a tokio multi-thread runtime, HTTP/1.1 and h2c.
//!
//! - [`a2a`]: an echo A2A agent: its agent card, `SendMessage` / `SendStreamingMessage` (v1.0)
//!   and `message/send` / `message/stream` (v0.3), streaming as server-sent events.
//! - [`mcp`]: an MCP server over streamable HTTP with one `echo` tool and sessions.
//! - [`registry`]: the A2A Registry REST API of seed 002, in memory.
//!
//! Every target answers `GET /health` (`{"status": …}`), and with a token
//! ([`Target::start_with`], `serve --auth-token`) answers 401 to requests without
//! `Authorization: Bearer <token>`, the agent card excepted.

pub mod a2a;
pub mod mcp;
pub mod registry;

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use serde_json::Value;

use crate::wire::gzip::{self, Coding};

/// Largest request body a target reads.
pub const BODY_MAX: usize = 1 << 20;

/// Which target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The echo A2A agent.
    A2aEcho,
    /// The echo MCP server.
    McpEcho,
    /// The in-memory agent registry.
    Registry,
}

impl std::str::FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Kind, String> {
        match s {
            "a2a-echo" => Ok(Kind::A2aEcho),
            "mcp-echo" => Ok(Kind::McpEcho),
            "registry" => Ok(Kind::Registry),
            other => Err(format!("unknown target '{other}' (a2a-echo, mcp-echo, registry)")),
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::A2aEcho => "a2a-echo",
            Kind::McpEcho => "mcp-echo",
            Kind::Registry => "registry",
        })
    }
}

/// A response's body: whole, or events sent as they come (`serve a2a-echo --event-gap-ms`).
pub(crate) type Body = http_body_util::Either<Full<Bytes>, http_body_util::StreamBody<Events>>;

/// Server-sent events, each a frame, sent as they come.
pub(crate) type Events = std::pin::Pin<
    Box<dyn futures_util::Stream<Item = Result<hyper::body::Frame<Bytes>, Infallible>> + Send>,
>;

/// What every target's handler gets.
pub(crate) enum State {
    A2a(a2a::Echo),
    Mcp(mcp::Echo),
    Registry(registry::Registry),
}

/// A response with a body and a content type.
pub(crate) fn reply(
    status: StatusCode,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut r = Response::new(Body::Left(Full::new(body.into())));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

/// A JSON response.
pub(crate) fn json(status: StatusCode, v: &Value) -> Response<Body> {
    reply(status, "application/json", v.to_string())
}

/// A JSON-RPC error in an HTTP 200, as JSON-RPC over HTTP answers.
pub(crate) fn rpc_error(id: &Value, code: i64, message: &str) -> Response<Body> {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}});
    json(StatusCode::OK, &body)
}

/// The request's body, at most [`BODY_MAX`] bytes.
pub(crate) async fn body(
    req: Request<Incoming>,
) -> Result<(hyper::http::request::Parts, Bytes), Response<Body>> {
    let (parts, body) = req.into_parts();
    match Limited::new(body, BODY_MAX).collect().await {
        Ok(c) => decoded(&parts.headers, c.to_bytes()).map(|b| (parts, b)).map_err(|r| *r),
        Err(_) => {
            // The rest of the body stays unread, so the connection cannot go on: said, so that
            // a client sends nothing more on it.
            let mut r =
                reply(StatusCode::PAYLOAD_TOO_LARGE, "text/plain", "body too large or broken\n");
            r.headers_mut().insert(
                hyper::header::CONNECTION,
                hyper::header::HeaderValue::from_static("close"),
            );
            Err(r)
        }
    }
}

/// A request's body as it was before its coding: `Content-Encoding: gzip` gunzipped, a gRPC
/// call's messages gunzipped where flagged with `grpc-encoding: gzip`; 415 for another coding
/// (with the `Accept-Encoding` the target reads, RFC 9110 § 12.5.3), 400 for a body that does
/// not read.
fn decoded(headers: &hyper::HeaderMap, bytes: Bytes) -> Result<Bytes, Box<Response<Body>>> {
    let coding =
        |name| headers.get(name).map_or(Coding::Identity, |v| gzip::coding_of(v.as_bytes()));
    let grpc = headers
        .get(hyper::header::CONTENT_TYPE)
        .is_some_and(|v| body_kind(Some(v)) == BodyKind::Grpc);
    let read = |grpc: bool| {
        CODEC.with_borrow_mut(|(_, unzip)| match grpc {
            false => unzip.whole(&bytes).map(Bytes::copy_from_slice),
            true => {
                let mut out = Vec::new();
                crate::grpc::decompress(&bytes, unzip, &mut out).map(|()| Bytes::from(out))
            }
        })
    };
    let plain = match (coding("content-encoding"), grpc, coding("grpc-encoding")) {
        (Coding::Identity, false, _) | (Coding::Identity, true, Coding::Identity) => {
            return Ok(bytes)
        }
        (Coding::Gzip, false, _) => read(false),
        (Coding::Identity, true, Coding::Gzip) => read(true),
        // A gRPC call in another coding: its compressed messages are refused as unread.
        (Coding::Identity, true, _) => return Ok(bytes),
        _ => {
            let mut r = reply(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "text/plain",
                "a content coding this server does not read (gzip it reads)\n",
            );
            r.headers_mut().insert(
                hyper::header::ACCEPT_ENCODING,
                hyper::header::HeaderValue::from_static("gzip"),
            );
            return Err(Box::new(r));
        }
    };
    plain.map_err(|_| {
        Box::new(reply(
            StatusCode::BAD_REQUEST,
            "text/plain",
            "a gzipped body that does not read\n",
        ))
    })
}

thread_local! {
    /// A worker thread's gzip states (a fresh deflate state costs tens of KiB), reused.
    static CODEC: std::cell::RefCell<(
        gzip::Zip,
        gzip::Unzip,
    )> = std::cell::RefCell::new((
        gzip::Zip::new(6),
        gzip::Unzip::new(BODY_MAX),
    ));
}

/// What a body is, by its `Content-Type`'s essence, as far as compression goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    Json,
    Events,
    Grpc,
    Other,
}

fn body_kind(content_type: Option<&hyper::header::HeaderValue>) -> BodyKind {
    let value = content_type.and_then(|v| v.to_str().ok()).unwrap_or_default();
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => BodyKind::Json,
        e if e.ends_with("+json") => BodyKind::Json,
        "text/event-stream" => BodyKind::Events,
        e if e == "application/grpc" || e.starts_with("application/grpc+") => BodyKind::Grpc,
        _ => BodyKind::Other,
    }
}

/// Whether a request's `Accept-Encoding` (or gRPC's `grpc-accept-encoding`) value takes gzip.
fn takes_gzip(value: Option<&hyper::header::HeaderValue>) -> bool {
    value.and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(',').any(|c| {
            let mut parts = c.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts
                .any(|p| p.strip_prefix("q=").and_then(|q| q.parse::<f32>().ok()) == Some(0.0));
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
    })
}

/// `r` gzipped for a client that takes it: a JSON body or an event stream
/// (`Content-Encoding: gzip`; events sent as they come are flushed each, so that each reads
/// on arrival), or a gRPC answer's messages, each on its own (`grpc-encoding: gzip`).
async fn gzipped(r: Response<Body>, json: bool, grpc: bool) -> Response<Body> {
    use crate::wire::gzip::Zip;
    let ct = body_kind(r.headers().get(hyper::header::CONTENT_TYPE));
    let fits = match ct {
        BodyKind::Json | BodyKind::Events => json,
        BodyKind::Grpc => grpc,
        BodyKind::Other => false,
    };
    if !fits || r.headers().contains_key(hyper::header::CONTENT_ENCODING) {
        return r;
    }
    let (mut parts, body) = r.into_parts();
    let full = match body {
        http_body_util::Either::Left(full) => full,
        http_body_util::Either::Right(events) if ct == BodyKind::Events => {
            use futures_util::StreamExt as _;
            let zip = Arc::new(std::sync::Mutex::new(Zip::new(6)));
            let end = zip.clone();
            let zipped = BodyExt::into_data_stream(events)
                .map(move |data| {
                    let (Ok(data), mut out) = (data, Vec::new());
                    zip.lock().unwrap_or_else(|e| e.into_inner()).part(&data, &mut out);
                    Ok(hyper::body::Frame::data(Bytes::from(out)))
                })
                .chain(futures_util::stream::once(async move {
                    let mut out = Vec::new();
                    end.lock().unwrap_or_else(|e| e.into_inner()).end(&mut out);
                    Ok(hyper::body::Frame::data(Bytes::from(out)))
                }));
            parts.headers.insert(
                hyper::header::CONTENT_ENCODING,
                hyper::header::HeaderValue::from_static("gzip"),
            );
            parts.headers.remove(hyper::header::CONTENT_LENGTH);
            let events: Events = Box::pin(zipped);
            let body = Body::Right(http_body_util::StreamBody::new(events));
            return Response::from_parts(parts, body);
        }
        http_body_util::Either::Right(frames) if ct == BodyKind::Grpc => {
            // Each data frame whole messages: each message gzipped; the trailers as they are.
            use futures_util::StreamExt as _;
            let zipped = frames.map(|frame| {
                let Ok(frame) = frame;
                Ok(match frame.into_data() {
                    Ok(data) => {
                        let mut out = Vec::with_capacity(data.len() / 2 + 64);
                        CODEC.with_borrow_mut(|(zip, _)| {
                            crate::grpc::compress(&data, zip, &mut out);
                        });
                        hyper::body::Frame::data(Bytes::from(out))
                    }
                    Err(other) => other,
                })
            });
            parts.headers.insert("grpc-encoding", hyper::header::HeaderValue::from_static("gzip"));
            let frames: Events = Box::pin(zipped);
            let body = Body::Right(http_body_util::StreamBody::new(frames));
            return Response::from_parts(parts, body);
        }
        streamed => return Response::from_parts(parts, streamed),
    };
    let Ok(bytes) = full.collect().await.map(|c| c.to_bytes());
    if bytes.is_empty() {
        return Response::from_parts(parts, Body::Left(Full::new(bytes)));
    }
    let mut out = Vec::with_capacity(bytes.len() / 2 + 64);
    let name = CODEC.with_borrow_mut(|(zip, _)| match ct {
        BodyKind::Grpc => {
            crate::grpc::compress(&bytes, zip, &mut out);
            "grpc-encoding"
        }
        _ => {
            zip.gzip(&bytes, &mut out);
            "content-encoding"
        }
    });
    parts.headers.insert(name, hyper::header::HeaderValue::from_static("gzip"));
    parts.headers.remove(hyper::header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::Left(Full::new(Bytes::from(out))))
}

/// Accepts on `listener` (a non-blocking std listener, on a tokio runtime) until `stopped`:
/// each connection, with Nagle off, goes to `each` (which spawns what serves it).
pub(crate) async fn accept_each(
    listener: std::net::TcpListener,
    stopped: &mut tokio::sync::oneshot::Receiver<()>,
    mut each: impl FnMut(tokio::net::TcpStream),
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
    loop {
        let accepted = tokio::select! {
            _ = &mut *stopped => return,
            a = listener.accept() => a,
        };
        let Ok((stream, _)) = accepted else { continue };
        let _ = stream.set_nodelay(true);
        each(stream);
    }
}

/// A unique-enough id: a per-process counter mixed with the clock.
pub(crate) fn fresh_id(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{:x}-{n:x}", crate::clock::now_ns())
}

/// Whether `req` may pass: no token set, the agent card (public, as A2A has it), or
/// `Authorization: Bearer <token>`.
fn authorized(token: Option<&str>, req: &Request<Incoming>) -> bool {
    let Some(token) = token else { return true };
    if req.uri().path().starts_with("/.well-known/") {
        return true;
    }
    let given = req.headers().get(hyper::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    given.and_then(|v| v.strip_prefix("Bearer ")).is_some_and(|t| {
        use subtle::ConstantTimeEq;
        bool::from(t.as_bytes().ct_eq(token.as_bytes()))
    })
}

async fn handle(
    state: Arc<State>,
    token: Option<Arc<str>>,
    h2: Arc<AtomicU64>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    if req.version() == hyper::Version::HTTP_2 {
        h2.fetch_add(1, Ordering::Relaxed);
    }
    if !authorized(token.as_deref(), &req) {
        let mut r = json(StatusCode::UNAUTHORIZED, &serde_json::json!({"error": "unauthorized"}));
        r.headers_mut().insert(
            hyper::header::WWW_AUTHENTICATE,
            hyper::header::HeaderValue::from_static("Bearer"),
        );
        return Ok(r);
    }
    if req.method() == hyper::Method::GET && req.uri().path() == "/health" {
        if let State::A2a(_) | State::Mcp(_) = &*state {
            return Ok(json(StatusCode::OK, &serde_json::json!({"status": "ok"})));
        }
    }
    let json = takes_gzip(req.headers().get(hyper::header::ACCEPT_ENCODING));
    let grpc = takes_gzip(req.headers().get("grpc-accept-encoding"));
    let r = match &*state {
        State::A2a(s) => s.handle(req).await,
        State::Mcp(s) => s.handle(req).await,
        State::Registry(s) => s.handle(req).await,
    };
    Ok(match json || grpc {
        true => gzipped(r, json, grpc).await,
        false => r,
    })
}

/// How a target serves (the `serve` flags).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Worker threads.
    pub threads: usize,
    /// Answer 401 to requests without `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Serve https:// (ALPN `h2` and `http/1.1`).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// a2a-echo: the time between a stream's events, each then its own chunk (0: the events
    /// together, with a `Content-Length`).
    pub event_gap: Duration,
    /// a2a-echo: how long a task started with `returnImmediately` works before it completes
    /// (0: it comes back completed).
    pub task_time: Duration,
}

/// A running target.
pub struct Target {
    addr: SocketAddr,
    state: Arc<State>,
    h2: Arc<AtomicU64>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Target {
    /// Binds `listen` and serves `kind` on `threads` worker threads; returns once it accepts.
    pub fn start(kind: Kind, listen: SocketAddr, threads: usize) -> io::Result<Target> {
        Target::start_with(kind, listen, threads, None)
    }

    /// [`Target::start`], answering 401 to requests without `Authorization: Bearer <token>`
    /// when a token is given (the agent card stays public).
    pub fn start_with(
        kind: Kind,
        listen: SocketAddr,
        threads: usize,
        token: Option<String>,
    ) -> io::Result<Target> {
        Target::start_tls(kind, listen, threads, token, None)
    }

    /// [`Target::start_with`], over TLS when `tls` is given (https://; ALPN `h2` and
    /// `http/1.1`).
    pub fn start_tls(
        kind: Kind,
        listen: SocketAddr,
        threads: usize,
        token: Option<String>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> io::Result<Target> {
        let options = Options { threads, token, tls, ..Options::default() };
        Target::start_options(kind, listen, options)
    }

    /// Binds `listen` and serves `kind` as `options` say; returns once it accepts.
    pub fn start_options(kind: Kind, listen: SocketAddr, options: Options) -> io::Result<Target> {
        let Options { threads, token, tls, event_gap, task_time } = options;
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let token: Option<Arc<str>> = token.map(Arc::from);
        let std_listener = std::net::TcpListener::bind(listen)?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name(format!("{kind}-target"))
            .enable_all()
            .build()?;
        let state = Arc::new(match kind {
            Kind::A2aEcho => {
                State::A2a(a2a::Echo::new(addr).with_event_gap(event_gap).with_task_time(task_time))
            }
            Kind::McpEcho => State::Mcp(mcp::Echo::default()),
            Kind::Registry => State::Registry(registry::Registry::default()),
        });
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let kept = state.clone();
        let h2 = Arc::new(AtomicU64::new(0));
        let h2_kept = h2.clone();
        let thread =
            std::thread::Builder::new().name(format!("{kind}-accept")).spawn(move || {
                runtime.block_on(accept_each(std_listener, &mut stopped, |stream| {
                    let (state, token, h2) = (state.clone(), token.clone(), h2.clone());
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            handle(state.clone(), token.clone(), h2.clone(), req)
                        });
                        let builder = hyper_util::server::conn::auto::Builder::new(
                            hyper_util::rt::TokioExecutor::new(),
                        );
                        match acceptor {
                            Some(a) => {
                                // A failed handshake (a client that does not trust the
                                // certificate) just ends the connection.
                                let Ok(tls) = a.accept(stream).await else { return };
                                let io = hyper_util::rt::TokioIo::new(tls);
                                let _ = builder.serve_connection(io, service).await;
                            }
                            None => {
                                let io = hyper_util::rt::TokioIo::new(stream);
                                let _ = builder.serve_connection(io, service).await;
                            }
                        }
                    });
                }));
            })?;
        Ok(Target { addr, state: kept, h2: h2_kept, stop: Some(stop), thread: Some(thread) })
    }

    /// The address it serves on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests it answered over HTTP/2 (h2c), so far.
    pub fn http2_requests(&self) -> u64 {
        self.h2.load(Ordering::Relaxed)
    }

    /// MCP sessions open now (the MCP target only).
    pub fn open_sessions(&self) -> Option<usize> {
        match &*self.state {
            State::Mcp(m) => Some(m.sessions()),
            _ => None,
        }
    }

    /// Stops accepting and returns.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::gzip::Zip;

    fn headers(pairs: &[(&'static str, &'static str)]) -> hyper::HeaderMap {
        let mut h = hyper::HeaderMap::new();
        for &(name, value) in pairs {
            h.insert(name, hyper::header::HeaderValue::from_static(value));
        }
        h
    }

    fn read(h: &hyper::HeaderMap, b: Bytes) -> Bytes {
        decoded(h, b).unwrap_or_else(|r| panic!("refused: {}", r.status()))
    }

    fn refused(h: &hyper::HeaderMap, b: Bytes) -> Box<Response<Body>> {
        match decoded(h, b) {
            Ok(b) => panic!("read as {b:?}"),
            Err(r) => r,
        }
    }

    #[test]
    fn request_bodies_are_read_in_the_codings_they_say() {
        // Proves the targets' reading: plain as it is, gzip gunzipped, a gRPC call's flagged
        // messages gunzipped, a gzip that does not read 400, another coding 415 saying gzip.
        let text = br#"{"jsonrpc":"2.0","id":1}"#;
        let mut zipped = Vec::new();
        Zip::new(6).gzip(text, &mut zipped);
        let plain = read(&headers(&[]), Bytes::from_static(text));
        assert_eq!(&plain[..], text);
        let gz = headers(&[("content-encoding", "gzip")]);
        assert_eq!(&read(&gz, Bytes::from(zipped.clone()))[..], text);
        assert_eq!(refused(&gz, Bytes::from_static(text)).status(), 400);
        let br = headers(&[("content-encoding", "br")]);
        let refused = refused(&br, Bytes::from_static(text));
        assert_eq!(refused.status(), 415);
        assert_eq!(refused.headers()["accept-encoding"], "gzip");
        let mut framed = Vec::new();
        crate::grpc::frame(&mut framed, |b| b.extend_from_slice(text));
        let mut messages = Vec::new();
        crate::grpc::compress(&framed, &mut Zip::new(1), &mut messages);
        assert_eq!(messages[0], 1);
        let grpc = headers(&[("content-type", "application/grpc"), ("grpc-encoding", "gzip")]);
        assert_eq!(&read(&grpc, Bytes::from(messages))[..], &framed[..]);
    }

    #[test]
    fn gzip_is_taken_where_a_client_accepts_it() {
        let taken = |v: &'static str| takes_gzip(Some(&hyper::header::HeaderValue::from_static(v)));
        assert!(taken("gzip") && taken("br, GZIP;q=0.5") && taken("*") && taken("deflate,gzip"));
        assert!(!taken("gzip;q=0") && !taken("gzip; q=0.000") && !taken("br") && !taken(""));
        assert!(!takes_gzip(None));
    }
}
