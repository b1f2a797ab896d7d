//! The receiver of A2A push notifications (`a2a:push`, `a2a-rest:push`, `a2a-grpc:push`,
//! `a2a-v03:push`, `a2a-v03-rest:push`): a small HTTP server
//! on its own thread that the agent under test POSTs its task updates to, and that hands
//! each task's end to the agent core that sent the task.
//!
//! Every `SendMessage` of a push pattern names its own URL,
//! `{base}/{run}/{core}/{client}/{seq}` (the run of the command, the agent core, the client's
//! index in it, the request's number), and the command's token, which the server sends back
//! in `X-A2A-Notification-Token`; a notification of an earlier run is answered and dropped. A notification is a
//! `StreamResponse` (`{"task": …}`, `{"statusUpdate": …}`, …): one that tells a state other
//! than submitted or working goes to the core on its side channel (a [`Completed`] whose
//! `slot` is the state's number in [`crate::grpc::TASK_STATES`] plus one: 0 is a poke), and
//! its doorbell is rung (it ends the core's ring doze). The core matches it with the task it
//! waits for, or keeps it a moment when it came before the `SendMessage`'s answer did. The
//! channel is bounded: a core that falls behind slows the answers to the server's POSTs.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};

use super::super::workload::Completed;
use crate::transport::uring::Doorbell;

/// Notifications waiting for each core, at most.
const QUEUED_MAX: usize = 4096;

/// A notification's body, at most.
const BODY_MAX: usize = 1 << 20;

/// What the cores and the receiver's thread share: where notifications go, and each core's
/// channel.
struct Hub {
    /// The URL the servers are given, before `/{core}/{client}/{seq}`.
    base: String,
    /// The command's token (`X-A2A-Notification-Token`).
    token: String,
    /// `--push-auth`: the configs ask for `Authorization: Bearer <token>` too, and a
    /// notification without it is refused.
    auth: bool,
    /// The run under way (from 1).
    run: AtomicU32,
    /// Per agent core: its side channel and doorbell.
    cores: Vec<CoreSide>,
    /// Notifications received, handed to a core, refused (no such core, a wrong token, a
    /// body that is not a `StreamResponse`), and of an earlier run.
    received: AtomicU64,
    handed: AtomicU64,
    refused: AtomicU64,
    stale: AtomicU64,
    /// The receiver thread's id (0 until it runs), for its CPU time.
    tid: AtomicI32,
}

impl Hub {
    /// Judges one notification to `path` and hands a task's end to its core.
    async fn take(
        &self,
        path: &str,
        (token, authorization): (Option<&[u8]>, Option<&[u8]>),
        body: &[u8],
    ) -> StatusCode {
        self.received.fetch_add(1, Ordering::Relaxed);
        let refused = |status| {
            self.refused.fetch_add(1, Ordering::Relaxed);
            status
        };
        if token != Some(self.token.as_bytes()) {
            return refused(StatusCode::UNAUTHORIZED);
        }
        let bearer = authorization.and_then(|a| a.strip_prefix(b"Bearer "));
        if self.auth && bearer != Some(self.token.as_bytes()) {
            return refused(StatusCode::UNAUTHORIZED);
        }
        let Some((run, core, client, seq)) = parse_path(path) else {
            return refused(StatusCode::NOT_FOUND);
        };
        if run != self.run.load(Ordering::Acquire) {
            self.stale.fetch_add(1, Ordering::Relaxed);
            return StatusCode::OK;
        }
        let Some(CoreSide { tx, bell, .. }) = self.cores.get(core) else {
            return refused(StatusCode::NOT_FOUND);
        };
        let state = match super::judge::notification(body) {
            Ok(Some(state)) => state,
            Ok(None) => return StatusCode::OK, // submitted, working, an artifact: not an end
            Err(_) => return refused(StatusCode::BAD_REQUEST),
        };
        // The state's place plus one; a state A2A does not name goes as UNSPECIFIED's (1).
        let code = crate::grpc::TASK_STATES.iter().position(|s| *s == state).map_or(1, |i| i + 1);
        let end = Completed { local: client, slot: code as u8, seq: seq as u32 };
        if tx.send_async(end).await.is_err() {
            return StatusCode::SERVICE_UNAVAILABLE; // the run is over
        }
        if let Some(bell) = bell {
            bell.ring();
        }
        self.handed.fetch_add(1, Ordering::Relaxed);
        StatusCode::OK
    }
}

/// `/…/{run}/{core}/{client}/{seq}`: the last four segments.
pub(super) fn parse_path(path: &str) -> Option<(u32, usize, u32, u64)> {
    let mut it = path.trim_end_matches('/').rsplit('/');
    let seq = it.next()?.parse().ok()?;
    let client = it.next()?.parse().ok()?;
    let core = it.next()?.parse().ok()?;
    let run = it.next()?.parse().ok()?;
    Some((run, core, client, seq))
}

/// An agent core's way in: its side channel (both ends: the receiver sends, the core reads
/// and pokes itself) and its doorbell.
#[derive(Clone)]
pub struct CoreSide {
    /// What the core reads.
    pub rx: flume::Receiver<Completed>,
    /// What the receiver sends on (and the core pokes itself with).
    pub tx: flume::Sender<Completed>,
    /// Rung after a send: it ends the core's ring doze.
    pub bell: Option<Arc<Doorbell>>,
}

/// What the servers are told to notify: a URL (without its trailing `/`), or
/// `http://{host}:{the bound port}/push` (the bound address's host when `host` is None).
#[derive(Debug, Clone, Copy, Default)]
pub struct Advertised<'a> {
    /// The whole URL.
    pub url: Option<&'a str>,
    /// The host, where the receiver listens on every address.
    pub host: Option<std::net::IpAddr>,
    /// `--push-auth`: the configs carry an authentication (scheme Bearer, the token as its
    /// credentials), which the receiver then requires.
    pub auth: bool,
}

/// The receiver: its thread serves until it is dropped; the cores reach it through the plan.
pub struct Receiver {
    hub: Arc<Hub>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Binds `listen` and serves notifications for the agent cores `cores` (an agent core's
    /// index is its place there), on a thread confined to them (the generator's side of the
    /// machine, not the target's); the servers are told to notify `at`.
    pub fn start(
        listen: SocketAddr,
        at: Advertised<'_>,
        cores: &[usize],
    ) -> std::io::Result<Receiver> {
        let mut cpus = nix::sched::CpuSet::new();
        for &c in cores {
            cpus.set(c).map_err(std::io::Error::other)?;
        }
        let std_listener = std::net::TcpListener::bind(listen)?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let base = match at.url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!(
                "http://{}/push",
                SocketAddr::new(at.host.unwrap_or(addr.ip()), addr.port())
            ),
        };
        let token = format!("a2a-bench-{:x}-{:x}", std::process::id(), crate::clock::now_ns());
        let sides = (0..cores.len().max(1))
            .map(|_| {
                let (tx, rx) = flume::bounded(QUEUED_MAX);
                CoreSide { rx, tx, bell: Doorbell::new().ok() }
            })
            .collect();
        let hub = Arc::new(Hub {
            base,
            token,
            auth: at.auth,
            run: AtomicU32::new(0),
            cores: sides,
            received: AtomicU64::new(0),
            handed: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            stale: AtomicU64::new(0),
            tid: AtomicI32::new(0),
        });
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let served = hub.clone();
        let cores_empty = cores.is_empty();
        let thread = std::thread::Builder::new().name("push-receiver".into()).spawn(move || {
            if !cores_empty {
                let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &cpus);
            }
            served.tid.store(nix::unistd::gettid().as_raw(), Ordering::Relaxed);
            runtime.block_on(crate::targets::accept_each(std_listener, &mut stopped, |stream| {
                let hub = served.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| serve(hub.clone(), req));
                    let builder = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    );
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = builder.serve_connection(io, service).await;
                });
            }));
        })?;
        Ok(Receiver { hub, stop: Some(stop), thread: Some(thread) })
    }

    /// The URL prefix the servers are given.
    pub fn base(&self) -> &str {
        &self.hub.base
    }

    /// The token the servers send back.
    pub fn token(&self) -> &str {
        &self.hub.token
    }

    /// Whether the configs ask for authentication (`--push-auth`), which the receiver
    /// requires.
    pub fn auth(&self) -> bool {
        self.hub.auth
    }

    /// Starts the next run: notifications of the runs before it are dropped, and what
    /// waits for the cores is forgotten. Returns its number.
    pub fn next_run(&self) -> u32 {
        for c in &self.hub.cores {
            c.rx.drain();
        }
        self.hub.run.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// The run under way.
    pub fn run(&self) -> u32 {
        self.hub.run.load(Ordering::Acquire)
    }

    /// Agent core `core`'s side channel and doorbell, if the receiver has that core.
    pub fn side(&self, core: usize) -> Option<CoreSide> {
        self.hub.cores.get(core).cloned()
    }

    /// Notifications so far: received, handed to a core, refused, of an earlier run.
    pub fn counts(&self) -> [u64; 4] {
        let h = &self.hub;
        [&h.received, &h.handed, &h.refused, &h.stale].map(|a| a.load(Ordering::Relaxed))
    }
}

impl Receiver {
    /// The CPU time its thread used so far, in ns (the kernel's schedstat), if known.
    pub fn cpu_ns(&self) -> Option<u64> {
        let tid = self.hub.tid.load(Ordering::Relaxed);
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
        stat.split_whitespace().next()?.parse().ok()
    }
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "push::Receiver {{ base: {}, cores: {} }}", self.hub.base, self.hub.cores.len())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(
    hub: Arc<Hub>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let status = if req.method() != hyper::Method::POST {
        StatusCode::METHOD_NOT_ALLOWED
    } else {
        let (parts, body) = req.into_parts();
        match Limited::new(body, BODY_MAX).collect().await {
            Ok(body) => {
                let token = parts.headers.get("x-a2a-notification-token").map(|v| v.as_bytes());
                let auth = parts.headers.get(hyper::header::AUTHORIZATION).map(|v| v.as_bytes());
                hub.take(parts.uri.path(), (token, auth), &body.to_bytes()).await
            }
            Err(_) => StatusCode::PAYLOAD_TOO_LARGE,
        }
    };
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_path_names_core_client_and_request() {
        assert_eq!(parse_path("/push/1/2/17/123456789012"), Some((1, 2, 17, 123_456_789_012)));
        assert_eq!(parse_path("/a/b/push/3/0/0/0/"), Some((3, 0, 0, 0)));
        assert_eq!(parse_path("/push/1/x/1/2"), None);
        assert_eq!(parse_path("/1/2/3"), None);
    }
}
