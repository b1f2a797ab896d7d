//! HTTP/2 over cleartext TCP (h2c with prior knowledge, `a2a-bench http --http2`).
//!
//! The `h2` crate (hyper's HTTP/2: framing, HPACK, flow control, stream limits) driven
//! sans-IO, like the HTTP/1.1 path: what the loop reads is appended to the connection's
//! [`Pipe`], the connection's `h2` futures are polled with a no-op waker (every input, and
//! every output the writer asks for, polls them again: nothing waits for a wake-up), each
//! stream's with its own waker, which `h2` wakes when the stream has news: an input polls only
//! those streams, not every one in flight. What they wrote is the connection's next output. A
//! request is rendered once, as the HTTP/1.1 path renders it, and carried over as HTTP/2
//! headers ([`to_h2`]), so both versions send the same thing; a head rendered again is cloned
//! from the core's last ones ([`Heads`]) instead of parsed and built.
//!
//! Every client of a connection multiplexes on it: a request waits only for the server's
//! `SETTINGS_MAX_CONCURRENT_STREAMS`. Unlike HTTP/1.1, `h2` allocates per request (its header
//! map, its streams, the body's `Bytes`): the price of a well-kept implementation.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use bytes::Bytes;
use h2::client::{Connection, ResponseFuture, SendRequest};
use h2::RecvStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::judge::a2a_reason_code;
use super::parse::{self, ContentType, GrpcEnd};
use crate::wire::gzip::{Coding, Unzip};

/// Per-stream receive window the client offers (the server may send this much unasked).
const STREAM_WINDOW: u32 = 1 << 20;
/// Connection receive window.
const CONN_WINDOW: u32 = 1 << 24;
/// Streams opened before the server's SETTINGS say its limit: RFC 9113 §6.5.2's recommended
/// least value, which hyper's client assumes too (`h2` alone would assume no limit, and a
/// burst past the server's is refused).
const STREAMS_BEFORE_SETTINGS: usize = 100;

#[derive(Debug, Default)]
struct Bufs {
    inbound: Vec<u8>,
    at: usize,
    outbound: Vec<u8>,
}

/// The in-memory socket `h2` reads and writes: the loop's reads go in, its writes come out.
#[derive(Debug, Clone, Default)]
pub struct Pipe(Rc<RefCell<Bufs>>);

impl AsyncRead for Pipe {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut b = self.0.borrow_mut();
        let Bufs { inbound, at, .. } = &mut *b;
        let avail = &inbound[*at..];
        if avail.is_empty() {
            return Poll::Pending;
        }
        let n = avail.len().min(buf.remaining());
        buf.put_slice(&avail[..n]);
        *at += n;
        if *at == inbound.len() {
            inbound.clear();
            *at = 0;
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Pipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.borrow_mut().outbound.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

type Handshake =
    Pin<Box<dyn Future<Output = Result<(SendRequest<Bytes>, Connection<Pipe, Bytes>), h2::Error>>>>;

enum Phase {
    Handshake(Handshake),
    Open { send: SendRequest<Bytes>, conn: Box<Connection<Pipe, Bytes>> },
}

enum State {
    Head(ResponseFuture),
    Body(RecvStream),
}

struct Stream<W> {
    w: W,
    /// Its request was handed to the writer (see [`H2Conn::output`]).
    left: bool,
    state: State,
    status: u16,
    content_type: ContentType,
    coding: Coding,
    session: Option<Box<str>>,
    body: Vec<u8>,
    /// A gzipped event stream: its events decompressed as they come (to see the first).
    unzip: Option<Box<Unzip>>,
    first_event_ns: u64,
    /// Where in `body` a first event is looked for next.
    event_from: usize,
    /// Its body went past [`parse::BODY_MAX`]: ended, and counted as too large.
    too_large: bool,
    /// Its body ended: its trailers are next.
    data_done: bool,
    /// How a gRPC call ended (its head's `grpc-status`, or its trailers').
    grpc: Option<GrpcEnd>,
    /// Opened before any response on its connection: perhaps before the server's SETTINGS
    /// told its stream limit.
    early: bool,
    /// Its waker, which `h2` wakes when the stream has news.
    woken: Woken,
}

/// A stream's waker and the flag it raises: the stream is polled only when raised. Kept for
/// the connection's next stream when its stream ends (a late wake-up of the old one makes one
/// needless poll).
struct Woken {
    flag: Arc<Flag>,
    waker: Waker,
}

impl Woken {
    fn new() -> Woken {
        let flag = Arc::new(Flag(AtomicBool::new(true)));
        Woken { waker: Waker::from(flag.clone()), flag }
    }

    /// Whether it was woken since the last call (lowers the flag). A plain load first: most
    /// streams an input looks at have no news, and an atomic swap each costs more than the
    /// look.
    #[inline]
    fn take(&self) -> bool {
        self.flag.0.load(Ordering::Relaxed) && self.flag.0.swap(false, Ordering::Relaxed)
    }
}

struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A stream that ended.
#[derive(Debug)]
pub enum Done<W> {
    /// A whole response.
    Answer {
        /// What it answers.
        w: W,
        /// Its status.
        status: u16,
        /// Its body's type.
        content_type: ContentType,
        /// Its body's coding (a gRPC call's: its messages').
        coding: Coding,
        /// Its `Mcp-Session-Id`.
        session: Option<Box<str>>,
        /// Its body.
        body: Vec<u8>,
        /// A stream of events: when the first one arrived (0: none, or not a stream).
        first_event_ns: u64,
        /// How a gRPC call ended, if the response said.
        grpc: Option<GrpcEnd>,
    },
    /// Never processed by the server (past its GOAWAY's last stream): to be sent again on the
    /// next connection.
    Unprocessed {
        /// What it carried.
        w: W,
    },
    /// Reset by the server with `REFUSED_STREAM` before any processing (RFC 9113 §8.7: safe
    /// to send again).
    Refused {
        /// What it carried.
        w: W,
        /// Opened before any response on its connection, so perhaps past a stream limit the
        /// client did not know yet.
        early: bool,
    },
    /// Reset by the server, or unreadable: counted as this kind.
    Failed {
        /// What it answered.
        w: W,
        /// The error kind.
        kind: &'static str,
    },
}

/// One HTTP/2 connection's client state.
pub struct H2Conn<W> {
    pipe: Pipe,
    phase: Phase,
    streams: Vec<Stream<W>>,
    /// Streams opened since the last output that wrote something.
    fresh: usize,
    /// Why the connection is useless, found outside an input (told by the next one).
    failure: Option<String>,
    /// Whether any response came: a connection that fails before one may not speak h2c.
    answered: bool,
    /// The server is closing it gracefully (GOAWAY without error, or the end of the
    /// connection): no new stream goes on it.
    going: bool,
    /// Wakers of streams that ended, for the next ones.
    spare: Vec<Woken>,
}

/// The request heads a core's HTTP/2 connections sent lately, each as rendered (HTTP/1.1
/// text) and as carried over ([`to_h2`]): a head rendered again is cloned (its URI's, names'
/// and values' bytes shared) instead of parsed and built again. At most [`HEADS`], the oldest
/// replaced.
#[derive(Debug, Default)]
pub struct Heads {
    kept: Vec<(Box<[u8]>, http::Request<()>)>,
    /// Where the next head not kept goes once [`HEADS`] are.
    next: usize,
}

/// The heads a core keeps carried over: enough for a mix's patterns, each with a few body
/// lengths (the head holds its `Content-Length`).
const HEADS: usize = 16;

impl Heads {
    /// The HTTP/2 head of `head` (a rendered request's head, through its blank line) for
    /// `authority`, which is the same for every request of the core.
    fn carried(&mut self, head: &[u8], authority: &str) -> Result<http::Request<()>, String> {
        if let Some((_, req)) = self.kept.iter().find(|(h, _)| **h == *head) {
            return Ok(req.clone());
        }
        let (req, _) = to_h2(head, authority)?;
        let kept = (head.into(), req.clone());
        if self.kept.len() < HEADS {
            self.kept.push(kept);
        } else {
            self.kept[self.next] = kept;
            self.next = (self.next + 1) % HEADS;
        }
        Ok(req)
    }
}

impl<W> std::fmt::Debug for H2Conn<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "H2Conn {{ streams: {} }}", self.streams.len())
    }
}

fn cx() -> Context<'static> {
    Context::from_waker(Waker::noop())
}

/// A graceful close by the server: GOAWAY with `NO_ERROR` (a request limit, a restart).
fn graceful(e: &h2::Error) -> bool {
    e.is_go_away() && e.reason() == Some(h2::Reason::NO_ERROR)
}

fn stream_kind(e: &h2::Error) -> &'static str {
    match e.reason() {
        Some(h2::Reason::REFUSED_STREAM) => "protocol_h2_refused_stream",
        Some(_) => "protocol_h2_reset",
        None => "protocol_h2",
    }
}

impl<W: Copy> Default for H2Conn<W> {
    /// A connection whose preface goes out with its first output.
    fn default() -> H2Conn<W> {
        let pipe = Pipe::default();
        let mut b = h2::client::Builder::new();
        b.enable_push(false)
            .initial_max_send_streams(STREAMS_BEFORE_SETTINGS)
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONN_WINDOW);
        let hs: Handshake = Box::pin(b.handshake::<Pipe, Bytes>(pipe.clone()));
        H2Conn {
            pipe,
            phase: Phase::Handshake(hs),
            streams: Vec::new(),
            fresh: 0,
            failure: None,
            answered: false,
            going: false,
            spare: Vec::new(),
        }
    }
}

impl<W: Copy> H2Conn<W> {
    /// Whether a request can be sent now (the handshake done, a stream free under the server's
    /// limit, no failure).
    pub fn ready(&mut self) -> bool {
        if self.failure.is_some() || self.going {
            return false;
        }
        let cx = &mut cx();
        if let Phase::Handshake(hs) = &mut self.phase {
            match hs.as_mut().poll(cx) {
                Poll::Pending => return false,
                Poll::Ready(Err(e)) => {
                    self.failure = Some(format!("the HTTP/2 handshake failed: {e}"));
                    return false;
                }
                Poll::Ready(Ok((send, conn))) => {
                    self.phase = Phase::Open { send, conn: Box::new(conn) }
                }
            }
        }
        let Phase::Open { send, conn } = &mut self.phase else { return false };
        // A stream past the server's limit would wait in `h2`, yet depart with the output.
        if self.streams.len() >= conn.max_concurrent_send_streams() {
            return false;
        }
        match send.poll_ready(cx) {
            Poll::Ready(Ok(())) => true,
            Poll::Ready(Err(e)) if graceful(&e) => {
                self.going = true;
                false
            }
            Poll::Ready(Err(e)) => {
                self.failure = Some(format!("the HTTP/2 connection failed: {e}"));
                false
            }
            Poll::Pending => false,
        }
    }

    /// Sends a request rendered as HTTP/1.1 text (after [`H2Conn::ready`] said yes). A
    /// request that cannot go comes back (it never left: it may wait for another connection);
    /// unless the server is going away, that fails the connection: the next input says why.
    pub fn send(
        &mut self,
        w: W,
        text: &[u8],
        (authority, heads): (&str, &mut Heads),
    ) -> Result<(), W> {
        match self.try_send(w, text, authority, heads) {
            Ok(()) => Ok(()),
            Err(Some(e)) => {
                self.failure.get_or_insert(e);
                Err(w)
            }
            Err(None) => {
                self.going = true;
                Err(w)
            }
        }
    }

    /// Whether the server is closing the connection and its last stream ended: time for a new
    /// connection.
    pub fn gone(&self) -> bool {
        self.going && self.streams.is_empty()
    }

    /// `Err(None)`: the server is going away.
    fn try_send(
        &mut self,
        w: W,
        text: &[u8],
        authority: &str,
        heads: &mut Heads,
    ) -> Result<(), Option<String>> {
        let at = memchr::memmem::find(text, b"\r\n\r\n").map_or(text.len(), |i| i + 4);
        let req = heads.carried(&text[..at], authority)?;
        let body = Bytes::copy_from_slice(&text[at..]);
        let Phase::Open { send, .. } = &mut self.phase else {
            return Err(Some("an HTTP/2 request before the handshake".into()));
        };
        let end = body.is_empty();
        let (resp, mut out) = send
            .send_request(req, end)
            .map_err(|e| (!graceful(&e)).then(|| format!("sending an HTTP/2 request: {e}")))?;
        if !end {
            out.send_data(body, true).map_err(|e| format!("sending an HTTP/2 body: {e}"))?;
        }
        self.streams.push(Stream {
            w,
            left: false,
            state: State::Head(resp),
            status: 0,
            content_type: ContentType::Missing,
            coding: Coding::Identity,
            session: None,
            body: Vec::new(),
            unzip: None,
            first_event_ns: 0,
            event_from: 0,
            too_large: false,
            data_done: false,
            grpc: None,
            early: !self.answered,
            woken: self
                .spare
                .pop()
                .inspect(|w| w.flag.0.store(true, Ordering::Relaxed))
                .unwrap_or_else(Woken::new),
        });
        self.fresh += 1;
        Ok(())
    }

    /// The streams whose request `of` picks and whose first event arrived.
    pub fn streaming(&self, of: impl Fn(&W) -> bool) -> usize {
        self.streams.iter().filter(|s| s.first_event_ns != 0 && of(&s.w)).count()
    }

    /// What was in flight, for a connection that ended.
    pub fn into_streams(self) -> impl Iterator<Item = W> {
        self.streams.into_iter().map(|s| s.w)
    }

    /// Cancels the streams due by `now_ns` (`due` of what each carries): they go to `out`, and
    /// `h2` resets them with its next output. Returns when the next one is due.
    pub fn expire(&mut self, due: impl Fn(&W) -> u64, now_ns: u64, out: &mut Vec<W>) -> u64 {
        let mut next = u64::MAX;
        let mut i = 0;
        while i < self.streams.len() {
            let d = due(&self.streams[i].w);
            if d <= now_ns {
                let s = self.streams.swap_remove(i);
                self.spare.push(s.woken);
                out.push(s.w);
            } else {
                next = next.min(d);
                i += 1;
            }
        }
        next
    }

    /// Bytes read from the socket.
    pub fn feed(&mut self, buf: &[u8]) {
        self.pipe.0.borrow_mut().inbound.extend_from_slice(buf);
    }

    /// Moves what `h2` wrote into `into`, an empty buffer (still empty when there is nothing
    /// to send). When it holds something, `departing` sees what each stream opened since the
    /// last such output carries: their requests leave now.
    pub fn output(&mut self, into: &mut Vec<u8>, mut departing: impl FnMut(&mut W)) {
        if let Err(e) = self.poll_conn() {
            self.failure.get_or_insert(e);
        }
        std::mem::swap(&mut self.pipe.0.borrow_mut().outbound, into);
        if !into.is_empty() && self.fresh > 0 {
            for s in self.streams.iter_mut().filter(|s| !s.left) {
                s.left = true;
                departing(&mut s.w);
            }
            self.fresh = 0;
        }
    }

    fn poll_conn(&mut self) -> Result<(), String> {
        if let Phase::Open { conn, .. } = &mut self.phase {
            match Pin::new(&mut **conn).poll(&mut cx()) {
                Poll::Pending => {}
                // Closed without error: its streams end (or the connection's end fails them).
                Poll::Ready(Ok(())) => self.going = true,
                Poll::Ready(Err(e)) if graceful(&e) => self.going = true,
                Poll::Ready(Err(e)) if self.answered => {
                    return Err(format!("the HTTP/2 connection failed: {e}"))
                }
                Poll::Ready(Err(e)) => {
                    return Err(format!(
                        "the HTTP/2 connection failed before any response ({e}): does the server speak HTTP/2 over cleartext (h2c)? Without --http2 (which the a2a-grpc patterns imply) a2a-bench speaks HTTP/1.1"
                    ))
                }
            }
        }
        Ok(())
    }

    /// Processes what was fed: the streams that ended go to `done`, in no particular order.
    pub fn drive(&mut self, now_ns: u64, done: &mut Vec<Done<W>>) -> Result<(), String> {
        if let Some(f) = self.failure.take() {
            return Err(f);
        }
        self.poll_conn()?;
        // Past the connection's end every stream is polled: its end is each one's news.
        let all = self.going;
        let mut i = 0;
        while i < self.streams.len() {
            let s = &mut self.streams[i];
            if !s.woken.take() && !all {
                i += 1;
                continue;
            }
            let cx = &mut Context::from_waker(&s.woken.waker);
            let ended = loop {
                match &mut s.state {
                    State::Head(resp) => match Pin::new(resp).poll(cx) {
                        Poll::Pending => break None,
                        Poll::Ready(Err(e)) => break Some(Err(e)),
                        Poll::Ready(Ok(r)) => {
                            self.answered = true;
                            s.status = r.status().as_u16();
                            let h = r.headers();
                            s.content_type = h
                                .get(http::header::CONTENT_TYPE)
                                .map_or(ContentType::Missing, |v| {
                                    parse::content_type_of(v.as_bytes())
                                });
                            s.session = h
                                .get("mcp-session-id")
                                .and_then(|v| v.to_str().ok())
                                .map(Box::from);
                            // A gRPC error may come as a head alone ("trailers-only").
                            let grpc = s.content_type == ContentType::Grpc;
                            if grpc {
                                s.grpc = grpc_end(h);
                            }
                            let coding =
                                h.get(if grpc { "grpc-encoding" } else { "content-encoding" });
                            s.coding = coding.map_or(Coding::Identity, |v| {
                                crate::wire::gzip::coding_of(v.as_bytes())
                            });
                            s.state = State::Body(r.into_body());
                        }
                    },
                    State::Body(body) if s.data_done => match body.poll_trailers(cx) {
                        Poll::Pending => break None,
                        Poll::Ready(Ok(trailers)) => {
                            let grpc = s.content_type == ContentType::Grpc;
                            if let Some(end) = trailers.as_ref().filter(|_| grpc).and_then(grpc_end)
                            {
                                s.grpc = Some(end);
                            }
                            break Some(Ok(()));
                        }
                        Poll::Ready(Err(e)) => break Some(Err(e)),
                    },
                    State::Body(body) => match body.poll_data(cx) {
                        Poll::Pending => break None,
                        Poll::Ready(None) => s.data_done = true,
                        Poll::Ready(Some(Err(e))) => break Some(Err(e)),
                        Poll::Ready(Some(Ok(data))) => {
                            let _ = body.flow_control().release_capacity(data.len());
                            if s.body.len() + data.len() > parse::BODY_MAX {
                                // Dropped with the stream, which resets it.
                                s.too_large = true;
                                break Some(Ok(()));
                            }
                            s.body.extend_from_slice(&data);
                            if s.first_event_ns == 0
                                && match s.content_type {
                                    ContentType::EventStream if s.coding == Coding::Gzip => {
                                        let u = s.unzip.get_or_insert_with(|| {
                                            Box::new(Unzip::new(parse::BODY_MAX))
                                        });
                                        // A broken body is named when it ends.
                                        u.feed(&s.body).is_ok()
                                            && parse::has_event(u.data(), &mut s.event_from)
                                    }
                                    ContentType::EventStream => {
                                        parse::has_event(&s.body, &mut s.event_from)
                                    }
                                    ContentType::Grpc => crate::grpc::has_message(&s.body),
                                    _ => false,
                                }
                            {
                                s.first_event_ns = now_ns;
                            }
                        }
                    },
                }
            };
            match ended {
                None => i += 1,
                Some(result) => {
                    let s = self.streams.swap_remove(i);
                    self.spare.push(s.woken);
                    done.push(match result {
                        Ok(()) if s.too_large => {
                            Done::Failed { w: s.w, kind: parse::Broken::TooLarge.kind() }
                        }
                        Ok(()) => Done::Answer {
                            w: s.w,
                            status: s.status,
                            content_type: s.content_type,
                            coding: s.coding,
                            session: s.session,
                            body: s.body,
                            first_event_ns: s.first_event_ns,
                            grpc: s.grpc,
                        },
                        // Above the last stream a GOAWAY says the server processed: it never
                        // saw this request, which may go again on the next connection.
                        Err(e) if e.is_go_away() && e.is_remote() => Done::Unprocessed { w: s.w },
                        Err(e)
                            if e.is_remote() && e.reason() == Some(h2::Reason::REFUSED_STREAM) =>
                        {
                            Done::Refused { w: s.w, early: s.early }
                        }
                        Err(e) => Done::Failed { w: s.w, kind: stream_kind(&e) },
                    });
                }
            }
        }
        // Window updates and acknowledgements the reads called for.
        self.poll_conn()
    }
}

/// How a gRPC call ended, from the head or trailers that carry its `grpc-status`: A2A's error
/// by the reason its status details give (v1.0), else by the type its message begins with
/// (a2a-sdk 0.3's v0.3 binding).
fn grpc_end(h: &http::HeaderMap) -> Option<GrpcEnd> {
    let code = h.get("grpc-status")?.to_str().ok()?.trim().parse().ok()?;
    let a2a = h
        .get("grpc-status-details-bin")
        .and_then(|v| crate::grpc::details_reason(v.as_bytes()))
        .and_then(|r| a2a_reason_code(&r))
        .or_else(|| h.get("grpc-message").and_then(|m| crate::grpc::v03_error_code(m.as_bytes())))
        .filter(|_| code != 0);
    Some(GrpcEnd { code, a2a })
}

/// A request rendered as HTTP/1.1 text → its HTTP/2 head and body. `Host` becomes the
/// `:authority`; the other headers go as they are (none is connection-specific).
pub fn to_h2(text: &[u8], authority: &str) -> Result<(http::Request<()>, Bytes), String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut r = httparse::Request::new(&mut headers);
    let at = match r.parse(text) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err("a partial request".into()),
        Err(e) => return Err(format!("an unreadable request: {e}")),
    };
    let (Some(method), Some(path)) = (r.method, r.path) else {
        return Err("a request without method or path".into());
    };
    let mut b = http::Request::builder()
        .method(method)
        .uri(format!("http://{authority}{path}"))
        .version(http::Version::HTTP_2);
    for h in r.headers.iter().filter(|h| !h.name.eq_ignore_ascii_case("host")) {
        b = b.header(h.name, h.value);
    }
    let req = b.body(()).map_err(|e| format!("an invalid HTTP/2 request: {e}"))?;
    Ok((req, Bytes::copy_from_slice(&text[at..])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grpc_end_names_a2a_s_error_by_its_details_or_v03_s_message() {
        // Proves grpc_end: v1.0's reason from the status details, a2a-sdk 0.3's error type
        // from the head of grpc-message, the details first, nothing named for a success or
        // a message that names no A2A error.
        let end = |pairs: &[(&'static str, String)]| {
            let mut h = http::HeaderMap::new();
            for (name, value) in pairs {
                h.insert(*name, value.parse().unwrap());
            }
            grpc_end(&h).map(|e| (e.code, e.a2a))
        };
        let details = crate::grpc::details_value(9, "m", "VERSION_NOT_SUPPORTED");
        let status = |c: &str| ("grpc-status", c.to_string());
        let message = |m: &str| ("grpc-message", m.to_string());
        let named = end(&[status("9"), ("grpc-status-details-bin", details.clone())]);
        assert_eq!(named, Some((9, Some(-32009))));
        assert_eq!(
            end(&[status("5"), message("TaskNotFoundError: Task not found")]),
            Some((5, Some(-32001)))
        );
        let both =
            [status("9"), message("TaskNotFoundError: x"), ("grpc-status-details-bin", details)];
        assert_eq!(end(&both), Some((9, Some(-32009))));
        assert_eq!(end(&[status("2"), message("boom: no")]), Some((2, None)));
        assert_eq!(end(&[status("0"), message("TaskNotFoundError: x")]), Some((0, None)));
        assert_eq!(end(&[message("TaskNotFoundError: x")]), None);
    }

    #[test]
    fn a_head_carried_over_again_is_the_same_request() {
        // Proves the heads kept: each of 20 heads (more than are kept), asked for in turn
        // twice over, comes back as to_h2 makes it (method, URI, version, every header),
        // however long ago it was kept or replaced; an unreadable head is still an error.
        let mut heads = Heads::default();
        let head = |i: usize| {
            format!("POST /p/{i} HTTP/1.1\r\nHost: h:1\r\nA2A-Version: 1.0\r\nX-N: {i}\r\nContent-Length: {}\r\n\r\n", 10 + i)
        };
        for round in 0..2 {
            for i in (0..20).chain(0..3) {
                let text = head(i);
                let got = heads.carried(text.as_bytes(), "h:1").unwrap();
                let (want, _) = to_h2(text.as_bytes(), "h:1").unwrap();
                assert_eq!(
                    (got.method(), got.uri(), got.version()),
                    (want.method(), want.uri(), want.version())
                );
                assert_eq!(got.headers(), want.headers(), "round {round}, head {i}");
                assert_eq!(got.headers()["x-n"], i.to_string().as_str());
            }
        }
        assert!(heads.kept.len() <= HEADS);
        assert!(heads.carried(b"GET / HTTP/1.1\r\n", "h").is_err());
    }

    #[test]
    fn a_rendered_request_becomes_the_same_http2_request() {
        // Proves the carry-over: method, path, authority from Host, headers kept, body split.
        let text = b"POST /rpc HTTP/1.1\r\nHost: h:1\r\nA2A-Version: 1.0\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        let (req, body) = to_h2(text, "h:1").unwrap();
        assert_eq!(req.method(), "POST");
        assert_eq!(req.uri().to_string(), "http://h:1/rpc");
        assert_eq!(req.version(), http::Version::HTTP_2);
        assert_eq!(req.headers()["a2a-version"], "1.0");
        assert!(req.headers().get("host").is_none());
        assert_eq!(&body[..], b"{}");
        assert!(to_h2(b"GET / HTTP/1.1\r\n", "h").is_err());
    }

    #[test]
    fn streams_past_a_goaway_go_again() {
        // Proves a GOAWAY's last stream is honoured: of two streams in flight, the one the
        // server says it processed is answered, the other comes back unprocessed (to go on
        // the next connection), and once both ended the connection is gone.
        let mut c: H2Conn<u32> = H2Conn::default();
        for w in [1, 3] {
            assert!(c.ready());
            assert!(c
                .send(w, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", ("x", &mut Heads::default()))
                .is_ok());
        }
        let mut out = Vec::new();
        c.output(&mut out, |_| {});
        let frames: &[&[u8]] = &[
            &[0, 0, 0, 4, 0, 0, 0, 0, 0],                         // SETTINGS
            &[0, 0, 0, 4, 1, 0, 0, 0, 0],                         // SETTINGS ack
            &[0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0], // GOAWAY 1 NO_ERROR
            &[0, 0, 1, 1, 5, 0, 0, 0, 1, 0x88],                   // stream 1: 200, end
        ];
        c.feed(&frames.concat());
        let mut done = Vec::new();
        assert!(c.drive(0, &mut done).is_ok());
        let mut seen: Vec<String> = done
            .iter()
            .map(|d| match d {
                Done::Answer { w, status, .. } => format!("{w} answered {status}"),
                Done::Unprocessed { w } => format!("{w} unprocessed"),
                Done::Refused { w, .. } => format!("{w} refused"),
                Done::Failed { w, kind } => format!("{w} failed {kind}"),
            })
            .collect();
        seen.sort();
        assert_eq!(seen, ["1 answered 200", "3 unprocessed"]);
        assert!(c.gone() && !c.ready());
    }

    #[test]
    fn an_input_polls_only_the_streams_it_brought_news_of() {
        // Proves the per-stream wakers: an answer to stream 3 raises only stream 3's flag, so
        // stream 1 (still waiting) is not polled; its head, then its body, each raise its own,
        // and it ends answered with the body whole.
        let mut c: H2Conn<u32> = H2Conn::default();
        for w in [1, 3] {
            assert!(c.ready());
            let get = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
            assert!(c.send(w, get, ("x", &mut Heads::default())).is_ok());
        }
        c.output(&mut Vec::new(), |_| {});
        let mut done = Vec::new();
        assert!(c.drive(0, &mut done).is_ok() && done.is_empty()); // each polled once
        let woken = |c: &H2Conn<u32>, w: u32| {
            c.streams.iter().find(|s| s.w == w).unwrap().woken.flag.0.load(Ordering::Relaxed)
        };
        let answered = |done: &[Done<u32>]| -> Vec<(u32, Vec<u8>)> {
            let ws = done.iter().map(|d| match d {
                Done::Answer { w, body, .. } => (*w, body.clone()),
                _ => panic!("not an answer"),
            });
            ws.collect()
        };
        c.feed(&[&[0, 0, 0, 4, 0, 0, 0, 0, 0][..], &[0, 0, 0, 4, 1, 0, 0, 0, 0]].concat());
        c.feed(&[0, 0, 1, 1, 5, 0, 0, 0, 3, 0x88]); // stream 3: 200, end
        assert!(c.poll_conn().is_ok());
        assert!(!woken(&c, 1) && woken(&c, 3));
        assert!(c.drive(0, &mut done).is_ok());
        assert_eq!(answered(&done), [(3, vec![])]);
        done.clear();
        c.feed(&[0, 0, 1, 1, 4, 0, 0, 0, 1, 0x88]); // stream 1: 200, the body to come
        assert!(c.poll_conn().is_ok());
        assert!(woken(&c, 1));
        assert!(c.drive(0, &mut done).is_ok() && done.is_empty());
        assert!(!woken(&c, 1));
        c.feed(&[0, 0, 2, 0, 1, 0, 0, 0, 1, b'o', b'k']); // its body, end
        assert!(c.drive(0, &mut done).is_ok());
        assert_eq!(answered(&done), [(1, b"ok".to_vec())]);
        assert_eq!(c.spare.len(), 2);
    }

    #[test]
    fn the_preface_goes_out_first() {
        // Proves the handshake writes the client preface without waiting for the server.
        let mut c: H2Conn<u32> = H2Conn::default();
        assert!(c.ready());
        assert!(c
            .send(7, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", ("x", &mut Heads::default()))
            .is_ok());
        let mut out = Vec::new();
        c.output(&mut out, |_| {});
        assert!(out.starts_with(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), "{out:?}");
        assert_eq!(c.streams.len(), 1);
    }

    #[test]
    fn before_the_server_s_settings_a_hundred_streams_open() {
        // Proves the client assumes RFC 9113's recommended least stream limit until the
        // server's SETTINGS tell its own: of 150 requests, 100 are taken and go out, then the
        // connection is not ready (the rest wait for a stream); `h2` alone would send all 150,
        // and a server whose limit is lower refuses what is past it.
        let mut c: H2Conn<u32> = H2Conn::default();
        let get = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
        let heads = &mut Heads::default();
        let sent = (0..150).take_while(|&w| c.ready() && c.send(w, get, ("x", heads)).is_ok());
        assert_eq!(sent.count(), STREAMS_BEFORE_SETTINGS);
        let mut out = Vec::new();
        c.output(&mut out, |_| {});
        let mut frames = &out[b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".len()..];
        let mut headers = 0;
        while frames.len() >= 9 {
            let len = u32::from_be_bytes([0, frames[0], frames[1], frames[2]]) as usize;
            headers += usize::from(frames[3] == 1);
            frames = &frames[9 + len..];
        }
        assert_eq!(headers, STREAMS_BEFORE_SETTINGS);
    }

    #[test]
    fn each_stream_departs_once_with_the_output_that_carries_it() {
        // Proves what `output` tells: the streams opened since the last output that wrote
        // something, each once; an output with nothing new tells none.
        let mut c: H2Conn<u32> = H2Conn::default();
        let get = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
        let told = |c: &mut H2Conn<u32>| {
            let (mut out, mut seen) = (Vec::new(), Vec::new());
            c.output(&mut out, |w| seen.push(*w));
            seen
        };
        assert!(c.ready() && c.send(1, get, ("x", &mut Heads::default())).is_ok());
        assert!(c.ready() && c.send(3, get, ("x", &mut Heads::default())).is_ok());
        assert_eq!(told(&mut c), [1, 3]);
        assert!(told(&mut c).is_empty());
        assert!(c.ready() && c.send(5, get, ("x", &mut Heads::default())).is_ok());
        assert_eq!(told(&mut c), [5]);
    }
}
