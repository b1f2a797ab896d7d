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
        Ok(c) => Ok((parts, c.to_bytes())),
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
    Ok(match &*state {
        State::A2a(s) => s.handle(req).await,
        State::Mcp(s) => s.handle(req).await,
        State::Registry(s) => s.handle(req).await,
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
