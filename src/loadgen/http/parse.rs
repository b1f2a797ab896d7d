//! HTTP/1.1 responses read from the start of a buffer, sans-IO: the head (httparse), a body
//! framed by `Content-Length`, chunked transfer coding or the connection's close, and the
//! server-sent events in it.
//! Nothing here allocates per response but the caller's reused scratch buffer.

use crate::wire::gzip::{self, Coding};

/// Most header lines a response may have.
const HEADERS_MAX: usize = 64;
/// Largest response head: a server still sending one past this is broken.
pub const HEAD_MAX: usize = 64 << 10;
/// Largest response body, and largest chunk (`protocol_response_too_large` past it): the
/// client holds a response whole until it ends, and every buffer has a bound.
pub const BODY_MAX: usize = 64 << 20;

/// What a response's body is, by its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    /// `application/json` (or any `+json`).
    Json,
    /// `text/event-stream`.
    EventStream,
    /// `application/grpc` (or `application/grpc+proto`).
    Grpc,
    /// None given.
    Missing,
    /// Anything else.
    Other,
}

/// The head of a response, and where its body lies.
#[derive(Debug, Clone, Copy)]
pub struct Head {
    /// Status code.
    pub status: u16,
    /// The body's type.
    pub content_type: ContentType,
    /// Bytes of the head.
    pub head_len: usize,
    /// How the body is framed.
    pub framing: Framing,
    /// The server closes the connection after this response.
    pub close: bool,
    /// Where the `Mcp-Session-Id` value lies in the buffer, if the response has one.
    pub session: Option<(usize, usize)>,
    /// How a gRPC call ended (HTTP/2 only: its trailers, or a head that was all of it).
    pub grpc: Option<GrpcEnd>,
    /// How its body is coded (`Content-Encoding`; a gRPC call's messages: `grpc-encoding`).
    pub coding: Coding,
}

/// How a gRPC call ended: its `grpc-status`, and the A2A error its `grpc-status-details-bin`
/// named (as the JSON-RPC code of the same error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcEnd {
    /// `grpc-status`.
    pub code: u32,
    /// The A2A error of the details' `ErrorInfo` reason, if it is one of A2A's.
    pub a2a: Option<i64>,
}

impl Head {
    /// A 1xx interim response: a head alone, before the final response to the same request.
    pub fn interim(&self) -> bool {
        self.status < 200
    }
}

/// How a body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// This many bytes.
    Length(usize),
    /// Chunked transfer coding.
    Chunked,
    /// Neither: the body is the rest of the connection, which the server closes to end it
    /// (HTTP/1.0's way, RFC 9112 § 6.3). The connection is not used again.
    UntilClose,
}

/// Why a response cannot be read; the connection is useless after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broken {
    /// Not HTTP/1.x, or a malformed head.
    Head(String),
    /// A malformed chunk.
    Chunk,
    /// A head over [`HEAD_MAX`], or a body over [`BODY_MAX`].
    TooLarge,
}

impl Broken {
    /// The error kind's name in reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Broken::Head(_) => "protocol_bad_response",
            Broken::Chunk => "protocol_bad_chunk",
            Broken::TooLarge => "protocol_response_too_large",
        }
    }
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Broken::Head(e) => write!(f, "a malformed HTTP response head ({e})"),
            Broken::Chunk => f.write_str("a malformed chunk in a chunked response body"),
            Broken::TooLarge => write!(
                f,
                "a response over the client's bound (a head over {} KiB or a body over {} MiB)",
                HEAD_MAX >> 10,
                BODY_MAX >> 20
            ),
        }
    }
}

fn eq(a: &[u8], b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}

/// Whether a header name (a token, as httparse checked) is `lower`, which is in lower case
/// letters and `-`, in any case: for token characters `b | 0x20` is a letter or `-` only when
/// `b` is that letter (in either case) or `-`. Without a branch per byte.
fn name_is(name: &[u8], lower: &str) -> bool {
    name.len() == lower.len()
        && name.iter().zip(lower.as_bytes()).fold(0, |diff, (a, b)| diff | ((a | 0x20) ^ b)) == 0
}

/// What a `Content-Type` value says the body is.
pub fn content_type_of(value: &[u8]) -> ContentType {
    if value == b"application/json" {
        return ContentType::Json; // as most servers write it
    }
    let essence = value.split(|&b| b == b';').next().unwrap_or_default().trim_ascii();
    let suffix = essence.len().checked_sub(5).map(|at| &essence[at..]);
    if eq(essence, "application/json") || suffix.is_some_and(|s| eq(s, "+json")) {
        ContentType::Json
    } else if eq(essence, "text/event-stream") {
        ContentType::EventStream
    } else if eq(essence, "application/grpc") || eq(essence, "application/grpc+proto") {
        ContentType::Grpc
    } else {
        ContentType::Other
    }
}

/// Reads the head of the response at the start of `buf`: `Ok(None)` while incomplete. A 1xx
/// interim response (`103 Early Hints`, an unasked `100 Continue`) is read as a head of no body
/// for the caller to pass over ([`Head::interim`]); `101 Switching Protocols` is broken (no
/// request asks for an upgrade).
pub fn head(buf: &[u8]) -> Result<Option<Head>, Broken> {
    // httparse fills the headers it finds: none is written beforehand.
    let mut headers = [const { std::mem::MaybeUninit::uninit() }; HEADERS_MAX];
    let mut r = httparse::Response::new(&mut []);
    let config = httparse::ParserConfig::default();
    let head_len = match config.parse_response_with_uninit_headers(&mut r, buf, &mut headers) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > HEAD_MAX => return Err(Broken::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(Broken::Head(e.to_string())),
    };
    let status = r.code.unwrap_or(0);
    if status == 101 || status < 100 {
        return Err(Broken::Head(format!("status {status}")));
    }
    let (mut length, mut chunked, mut close) = (None, false, r.version == Some(0));
    let (mut content_type, mut session, mut coding) =
        (ContentType::Missing, None, Coding::Identity);
    let base = buf.as_ptr() as usize;
    for h in r.headers.iter() {
        let (name, value) = (h.name.as_bytes(), h.value);
        // By length and first letter first: most names (Date, Server) are then passed over
        // without a comparison.
        let first = name.first().map_or(0, |b| b | 0x20);
        match (name.len(), first) {
            (14, b'c') if name_is(name, "content-length") => {
                let v =
                    std::str::from_utf8(value).ok().and_then(|s| s.trim().parse::<usize>().ok());
                length = Some(v.ok_or_else(|| Broken::Head("bad Content-Length".into()))?);
            }
            (17, b't') if name_is(name, "transfer-encoding") => {
                chunked = value.split(|&b| b == b',').any(|t| eq(t.trim_ascii(), "chunked"));
            }
            (10, b'c') if name_is(name, "connection") => {
                let v = value.trim_ascii();
                close = eq(v, "close") || (close && !eq(v, "keep-alive"));
            }
            (12, b'c') if name_is(name, "content-type") => {
                content_type = content_type_of(value);
            }
            (16, b'c') if name_is(name, "content-encoding") => coding = gzip::coding_of(value),
            (14, b'm') if name_is(name, "mcp-session-id") => {
                let at = value.as_ptr() as usize - base;
                session = Some((at, at + value.len()));
            }
            _ => {}
        }
    }
    let framing = if status < 200 || status == 204 || status == 304 {
        Framing::Length(0)
    } else if chunked {
        Framing::Chunked
    } else {
        match length {
            Some(n) if n > BODY_MAX => return Err(Broken::TooLarge),
            Some(n) => Framing::Length(n),
            None => {
                close = true;
                Framing::UntilClose
            }
        }
    };
    Ok(Some(Head { status, content_type, head_len, framing, close, session, grpc: None, coding }))
}

/// A chunked body decoded as it arrives. The caller hands it the body from its start each time,
/// longer each time (the connection keeps what was not used); each call reads only what came
/// since the last, so a body that arrives in many pieces is read once.
#[derive(Debug, Default)]
pub struct Dechunk {
    /// The data of the chunks read so far.
    data: Vec<u8>,
    /// Where in the body reading goes on.
    at: usize,
    /// The body was searched up to here for the end of the line at `at`, without finding it.
    seen: usize,
    step: Step,
}

/// What [`Dechunk`] reads next.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// A chunk's size line.
    #[default]
    Size,
    /// A chunk's data, up to `end`, then its line end.
    Data { end: usize },
    /// Trailer lines (they began at `from`), up to an empty one.
    Trailers { from: usize },
}

/// Capacity a [`Dechunk`] keeps for the next body; a bigger buffer is given back.
const DECHUNK_KEEP: usize = 16 << 10;

impl Dechunk {
    /// The data of the chunks read so far (the whole body once [`Dechunk::feed`] said so).
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Ready for the next body.
    pub fn reset(&mut self) {
        if self.data.capacity() > DECHUNK_KEEP {
            self.data = Vec::new();
        }
        self.data.clear();
        (self.at, self.seen, self.step) = (0, 0, Step::Size);
    }

    /// Reads on in `body` (the body from its start): `Ok(Some(n))` once the last chunk and the
    /// trailers are in (`n` bytes of `body` used), `Ok(None)` while incomplete (the data so far
    /// is kept). `body` may be shorter than last time (the connection's buffer moved: the
    /// start is the same), then there is nothing new.
    pub fn feed(&mut self, body: &[u8]) -> Result<Option<usize>, Broken> {
        if body.len() < self.at {
            return Ok(None);
        }
        self.seen = self.seen.min(body.len());
        loop {
            match self.step {
                Step::Size => {
                    // A size line is parsed once its end is in.
                    let from = self.seen.max(self.at);
                    if memchr::memchr(b'\n', &body[from..]).is_none() {
                        self.seen = body.len();
                        return if body.len() - self.at > HEAD_MAX {
                            Err(Broken::TooLarge) // a chunk's size line without end
                        } else {
                            Ok(None)
                        };
                    }
                    let (skip, size) = match httparse::parse_chunk_size(&body[self.at..]) {
                        Ok(httparse::Status::Complete(x)) => x,
                        Ok(httparse::Status::Partial) => return Ok(None),
                        Err(_) => return Err(Broken::Chunk),
                    };
                    self.at += skip;
                    self.seen = 0;
                    if size == 0 {
                        self.step = Step::Trailers { from: self.at };
                        continue;
                    }
                    // Past the bound in one chunk, in all of them, or with their framing
                    // (tiny chunks).
                    let size = usize::try_from(size).map_err(|_| Broken::TooLarge)?;
                    if size > BODY_MAX
                        || self.data.len() + size > BODY_MAX
                        || self.at > 2 * BODY_MAX
                    {
                        return Err(Broken::TooLarge);
                    }
                    self.step = Step::Data { end: self.at + size };
                }
                Step::Data { end } => {
                    let have = body.len().min(end);
                    if have > self.at {
                        self.data.extend_from_slice(&body[self.at..have]);
                        self.at = have;
                    }
                    if body.len() < end + 2 {
                        return Ok(None);
                    }
                    if &body[end..end + 2] != b"\r\n" {
                        return Err(Broken::Chunk);
                    }
                    self.at = end + 2;
                    self.step = Step::Size;
                }
                Step::Trailers { from } => {
                    // Lines up to an empty one; no more of them than a head may have.
                    let look = self.seen.saturating_sub(1).max(self.at);
                    let Some(i) = memchr::memmem::find(&body[look..], b"\r\n") else {
                        self.seen = body.len();
                        return if body.len() - from > HEAD_MAX {
                            Err(Broken::TooLarge)
                        } else {
                            Ok(None)
                        };
                    };
                    let empty = look + i == self.at;
                    self.at = look + i + 2;
                    self.seen = 0;
                    if self.at - from > HEAD_MAX {
                        return Err(Broken::TooLarge);
                    }
                    if empty {
                        return Ok(Some(self.at));
                    }
                }
            }
        }
    }
}

/// The server-sent events in `body`, each as the data of its `data:` lines (joined by `\n`
/// into `scratch` when there are several); lines may end in `\n`, `\r\n` or `\r`. Calls `each`
/// per complete event with data; returns how many events had data, and whether the body ends
/// inside an event.
pub fn events(body: &[u8], scratch: &mut Vec<u8>, each: impl FnMut(&[u8])) -> (u32, bool) {
    let (count, open, _) = scan(body, Some(scratch), each);
    (count, open)
}

/// Whether a stream still arriving holds a complete event with data. `from` is where to look
/// (the start of an event); when there is none yet it is moved to the start of the event still
/// open, so that a stream is read once however many pieces its first event comes in.
pub fn has_event(body: &[u8], from: &mut usize) -> bool {
    let Some(rest) = body.get(*from..) else {
        return false; // a shorter view of the same stream (see `Dechunk::feed`): nothing new
    };
    let (count, _, done) = scan(rest, None, |_| {});
    *from += done;
    count > 0
}

/// [`events`]' reader; without `scratch` the data is not collected (`each` gets it empty).
/// Also returns the bytes of complete events (where the event still open begins).
fn scan(
    body: &[u8],
    mut scratch: Option<&mut Vec<u8>>,
    mut each: impl FnMut(&[u8]),
) -> (u32, bool, usize) {
    let (mut count, mut at, mut done, mut partial) = (0, 0, 0, false);
    // The event's data lines so far: how many, and the first where it lies (one line is
    // handed over where it is; more are joined in `scratch`).
    let (mut lines, mut first) = (0u32, (0, 0));
    while at < body.len() {
        let rest = &body[at..];
        let Some(end) = memchr::memchr2(b'\n', b'\r', rest) else {
            partial = true; // a line without its end
            break;
        };
        let line = (at, at + end);
        at += end + 1;
        if rest[end] == b'\r' && rest.get(end + 1) == Some(&b'\n') {
            at += 1;
        }
        let text = &body[line.0..line.1];
        if text.is_empty() {
            match (lines, scratch.as_deref()) {
                (0, _) => {}
                (1, _) => each(&body[first.0..first.1]),
                (_, Some(joined)) => each(joined),
                (_, None) => each(&[]),
            }
            count += u32::from(lines > 0);
            lines = 0;
            done = at;
        } else if let Some(data) = text.strip_prefix(b"data") {
            let skip = match data.first() {
                None => 0,
                Some(b':') if data.get(1) == Some(&b' ') => 2,
                Some(b':') => 1,
                Some(_) => continue, // a field named e.g. `database`
            };
            let value = (line.0 + 4 + skip, line.1);
            if let Some(joined) = scratch.as_deref_mut() {
                if lines == 1 {
                    joined.clear();
                    joined.extend_from_slice(&body[first.0..first.1]);
                }
                if lines >= 1 {
                    joined.push(b'\n');
                    joined.extend_from_slice(&body[value.0..value.1]);
                }
            }
            if lines == 0 {
                first = value;
            }
            lines += 1;
        }
        // `event:`, `id:`, `retry:` and comments say nothing measured here.
    }
    (count, partial || lines > 0, done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_says_its_status_type_framing_and_session() {
        // Proves the head reader: status, content type essence, length or chunked, the
        // session header's place, keep-alive by default in 1.1 and close when said.
        let r = b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nMcp-Session-Id: abc\r\nContent-Length: 2\r\n\r\n{}";
        let h = head(r).unwrap().unwrap();
        assert_eq!(
            (h.status, h.content_type, h.framing),
            (200, ContentType::Json, Framing::Length(2))
        );
        let (a, b) = h.session.unwrap();
        assert_eq!(&r[a..b], b"abc");
        assert!(!h.close);
        assert_eq!(&r[h.head_len..], b"{}");
        let r = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n";
        let h = head(r).unwrap().unwrap();
        assert_eq!(
            (h.content_type, h.framing, h.close),
            (ContentType::EventStream, Framing::Chunked, true)
        );
        assert!(matches!(head(b"HTTP/1.1 200 OK\r\nContent-Le"), Ok(None)));
        let h = head(b"HTTP/1.1 200 OK\r\n\r\n").unwrap().unwrap();
        assert_eq!((h.framing, h.close), (Framing::UntilClose, true));
        assert!(matches!(head(b"SSH-2.0-OpenSSH\r\n\r\n"), Err(Broken::Head(_))));
        // Interim responses: a head of no body to pass over; an upgrade is broken.
        let h =
            head(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200").unwrap().unwrap();
        assert!(h.interim() && h.framing == Framing::Length(0) && h.head_len == 40, "{h:?}");
        assert!(matches!(head(b"HTTP/1.1 101 Switching Protocols\r\n\r\n"), Err(Broken::Head(_))));
        let h = head(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap().unwrap();
        assert_eq!(h.framing, Framing::Length(0));
        // Bounds: a body past BODY_MAX, or past any integer, and a head without end.
        for length in [BODY_MAX + 1, usize::MAX] {
            let r = format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\n");
            assert_eq!(head(r.as_bytes()).unwrap_err(), Broken::TooLarge, "{length}");
        }
        let r = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", u128::MAX);
        assert!(matches!(head(r.as_bytes()), Err(Broken::Head(_))));
        let long = format!("HTTP/1.1 200 OK\r\n{}", "X-A: b\r\n".repeat(HEAD_MAX / 8));
        assert!(matches!(head(long.as_bytes()), Err(Broken::TooLarge | Broken::Head(_))));
        let endless = format!("HTTP/1.1 200 OK\r\nX-A: {}", "b".repeat(HEAD_MAX));
        assert_eq!(head(endless.as_bytes()).unwrap_err(), Broken::TooLarge);
        // Names in any case; a name one character off is another header.
        let h = head(b"HTTP/1.1 200 OK\r\nCONTENT-LENGTH: 3\r\nConnection: Close\r\n\r\n").unwrap();
        assert_eq!(h.map(|h| (h.framing, h.close)), Some((Framing::Length(3), true)));
        let r = b"HTTP/1.1 200 OK\r\nContent_Length: 3\r\nContent-Lengti: 3\r\n\r\n";
        assert_eq!(head(r).unwrap().unwrap().framing, Framing::UntilClose);
        // The body's coding: none, gzip in any case (or x-gzip), anything else, or several.
        for (value, coding) in [
            ("", Coding::Identity),
            ("Content-Encoding: identity\r\n", Coding::Identity),
            ("content-encoding:  GZIP \r\n", Coding::Gzip),
            ("Content-Encoding: x-gzip\r\n", Coding::Gzip),
            ("Content-Encoding: br\r\n", Coding::Other),
            ("Content-Encoding: gzip, br\r\n", Coding::Other),
        ] {
            let r = format!("HTTP/1.1 200 OK\r\n{value}Content-Length: 0\r\n\r\n");
            assert_eq!(head(r.as_bytes()).unwrap().unwrap().coding, coding, "{value}");
        }
    }

    #[test]
    fn content_types_are_read_by_their_essence_in_any_case() {
        // Proves the type reader: parameters and spaces ignored, any case, `+json` suffixes,
        // and a value too short for the suffix is other, not a panic.
        for (value, want) in [
            (&b"application/json"[..], ContentType::Json),
            (b" Application/JSON ; charset=utf-8", ContentType::Json),
            (b"application/vnd.a2a+JSON", ContentType::Json),
            (b"text/event-stream;charset=utf-8", ContentType::EventStream),
            (b"text/plain", ContentType::Other),
            (b"json", ContentType::Other),
            (b"", ContentType::Other),
        ] {
            assert_eq!(content_type_of(value), want, "{}", String::from_utf8_lossy(value));
        }
    }

    /// `body` decoded in one call: the verdict and the data.
    fn dechunk(body: &[u8]) -> (Result<Option<usize>, Broken>, Vec<u8>) {
        let mut d = Dechunk::default();
        let verdict = d.feed(body);
        (verdict, d.data().to_vec())
    }

    #[test]
    fn chunked_bodies_decode_whole_or_in_part() {
        // Proves chunked decoding: complete with trailers, partial (the data so far is kept),
        // and malformed sizes or terminators rejected.
        let body = b"4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
        assert_eq!(dechunk(body), (Ok(Some(body.len() - 4)), b"Wikipedia".to_vec()));
        assert_eq!(dechunk(&body[..12]), (Ok(None), b"Wiki".to_vec()));
        assert_eq!(dechunk(&body[..17]), (Ok(None), b"Wikip".to_vec()));
        assert_eq!(dechunk(b"zz\r\n").0, Err(Broken::Chunk));
        // Sizes past the bound are too large, not an overflow (past 64 bits: malformed); so
        // are a size line or trailers without end.
        for huge in [&b"ffffffffffffffff\r\n"[..], b"4000001\r\n"] {
            assert_eq!(dechunk(huge).0, Err(Broken::TooLarge), "{huge:?}");
        }
        assert_eq!(dechunk(b"ffffffffffffffffff\r\n").0, Err(Broken::Chunk));
        let endless = [&b"1;"[..], &vec![b'x'; HEAD_MAX + 1]].concat();
        assert_eq!(dechunk(&endless).0, Err(Broken::TooLarge));
        let trailers = [&b"0\r\n"[..], &b"X: y\r\n".repeat(HEAD_MAX / 4)].concat();
        assert_eq!(dechunk(&trailers).0, Err(Broken::TooLarge));
        let open_trailer = [&b"0\r\nX: "[..], &vec![b'y'; HEAD_MAX]].concat();
        assert_eq!(dechunk(&open_trailer).0, Err(Broken::TooLarge));
        assert_eq!(dechunk(b"2\r\nabXY").0, Err(Broken::Chunk));
    }

    #[test]
    fn a_chunked_body_in_pieces_decodes_as_whole_and_is_read_once() {
        // Proves resuming: every body fed a byte more each time ends as fed whole (verdict and
        // data, malformed ones included), and data already read is not read again (it is
        // overwritten between feeds, and the data decoded is still the original).
        let bodies: &[&[u8]] = &[
            b"4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\nX-Trailer: 1\r\nY: 2\r\n\r\nNEXT",
            b"1\r\na\r\n0\r\n\r\n",
            b"A\r\n0123456789\r\n0;end\r\n\r\n",
            b"3\r\nabc\r\n3\r\ndefXY",
            b"3\r\nabc\r\nzz\r\n",
            b"0\r\nTrailer: \r\r\n\r\n",
        ];
        for body in bodies {
            let whole = dechunk(body);
            let mut d = Dechunk::default();
            let mut verdict = Ok(None);
            for end in 1..=body.len() {
                verdict = d.feed(&body[..end]);
                if verdict != Ok(None) {
                    break;
                }
            }
            assert_eq!((verdict, d.data().to_vec()), whole, "{}", String::from_utf8_lossy(body));
        }
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut body = format!("{:x}\r\n", data.len()).into_bytes();
        let head = body.len();
        body.extend_from_slice(&data);
        body.extend_from_slice(b"\r\n0\r\n\r\n");
        let (mut d, mut fed) = (Dechunk::default(), 0);
        let mut scribbled = body.clone();
        while fed < body.len() {
            let end = (fed + 1000).min(body.len());
            scribbled[fed..end].copy_from_slice(&body[fed..end]);
            let verdict = d.feed(&scribbled[..end]).unwrap();
            assert_eq!(verdict.is_some(), end == body.len());
            // What the decoder has taken of the data is gone from the buffer.
            let taken = (end.max(head) - head).min(data.len());
            scribbled[head..head + taken].fill(b'!');
            fed = end;
        }
        assert!(d.data() == data, "the data decoded is not the data sent");
        // A shorter view of the same body (the connection's buffer moved) is nothing new.
        let body = b"3\r\nabc\r\n0\r\n\r\n";
        for cut in [4, 6, 9, 12] {
            let mut d = Dechunk::default();
            assert_eq!(d.feed(&body[..cut]), Ok(None));
            assert_eq!(d.feed(&body[..cut - 3]), Ok(None), "{cut}");
            assert_eq!((d.feed(body), d.data()), (Ok(Some(body.len())), &b"abc"[..]), "{cut}");
        }
        d.reset();
        assert_eq!(dechunk(b"0\r\n\r\n"), (Ok(Some(5)), Vec::new()));
        assert_eq!(d.feed(b"0\r\n\r\n"), Ok(Some(5)));
    }

    #[test]
    fn a_first_event_is_found_without_reading_the_events_before_again() {
        // Proves has_event: no complete event with data yet moves the mark past the complete
        // events (comments, events without data) to the open one; one with data is found,
        // whatever its line ends and however it was split.
        let stream = b": ping\n\nevent: x\r\n\r\ndata: {\"a\"";
        let mut from = 0;
        assert!(!has_event(stream, &mut from));
        assert_eq!(&stream[from..], b"data: {\"a\"");
        let more = [&stream[..], b"}\r"].concat();
        assert!(!has_event(&more, &mut from));
        // A shorter view of the same stream (the connection's buffer moved) is nothing new.
        let mark = from;
        assert!(!has_event(&more[..from - 1], &mut from));
        assert_eq!(from, mark);
        assert!(has_event(&[&more[..], b"\r\n"].concat(), &mut from));
        let mut from = 0;
        assert!(has_event(b"data:1\n\n", &mut from));
        let mut from = 0;
        assert!(!has_event(b"data", &mut from));
        assert_eq!(from, 0);
    }

    #[test]
    fn events_are_split_on_blank_lines_with_any_line_end() {
        // Proves the SSE reader: `\n`, `\r\n` and `\r` line ends, multi-line data joined by
        // `\n`, fields other than data ignored, an event without data not counted, and a body
        // ending inside an event said so.
        let mut scratch = Vec::new();
        let mut seen = Vec::new();
        let body = b"event: message\r\ndata: {\"a\":1}\r\n\r\ndata:x\ndata: y\n\n: comment\n\nid: 3\r\rdata: tail";
        let (n, open) = events(body, &mut scratch, |d| seen.push(d.to_vec()));
        assert_eq!(n, 2);
        assert!(open);
        assert_eq!(seen, vec![b"{\"a\":1}".to_vec(), b"x\ny".to_vec()]);
    }
}
