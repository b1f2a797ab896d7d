//! WebSocket over any futures-io stream (async-tungstenite): handshakes, and a byte-stream view
//! of binary messages. No hand-written handshake; permessage-deflate is never negotiated
//! (tungstenite does not implement it), so frames are never compressed twice.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use async_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use async_tungstenite::tungstenite::http::HeaderValue;
use async_tungstenite::tungstenite::protocol::WebSocketConfig;
pub use async_tungstenite::tungstenite::Message;
use async_tungstenite::tungstenite::{Bytes, Error as WsError};
use async_tungstenite::WebSocketStream;
use futures_lite::io::{AsyncRead, AsyncWrite};
use futures_lite::Stream;
use futures_util::Sink;

/// The subprotocol of the seed system's JSON protocol.
pub const SUBPROTOCOL_JSON: &str = "a2a";
/// The subprotocol of the native protocol over WebSocket.
pub const SUBPROTOCOL_NATIVE: &str = "a2a-bench";

/// The most tungstenite reads at once from a stream whose every read is a system call (glommio's
/// and tokio's streams): fewer calls for a big message.
pub const READ_FROM_SOCKET: usize = 32 << 10;
/// The most tungstenite reads at once from a socket ring's stream, whose bytes are already in
/// memory: tungstenite zero-fills this much before every read, also one that finds nothing, so
/// on a ring a large read size costs a memset per poll and saves no system call (32 KiB: 7 % of
/// both cores in a WebSocket ring run, 1 % at 4 KiB: `docs/BENCHMARKS.md`).
pub const READ_IN_MEMORY: usize = 4 << 10;

/// The read size for `stream`: [`READ_IN_MEMORY`] on a socket ring, else [`READ_FROM_SOCKET`].
pub fn read_size(stream: &impl super::Lend) -> usize {
    if stream.in_memory() {
        READ_IN_MEMORY
    } else {
        READ_FROM_SOCKET
    }
}

/// Message size limits matching the frame limit (10 MiB) with room for the header; reads of at
/// most `read_size` bytes.
pub fn config(read_size: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(16 << 20))
        .max_frame_size(Some(16 << 20))
        .read_buffer_size(read_size)
}

/// Completes a server handshake, reading at most `read_size` bytes at once ([`read_size`]).
/// Returns the stream and the subprotocol chosen: the native one when offered, else the JSON
/// one when offered, else none.
pub async fn accept<S>(
    stream: S,
    read_size: usize,
) -> Result<(WebSocketStream<S>, Option<&'static str>), WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let chosen: Rc<RefCell<Option<&'static str>>> = Rc::default();
    let record = chosen.clone();
    // The signature is tungstenite's `Callback`; its error type is not ours to shrink.
    #[allow(clippy::result_large_err)]
    let callback = move |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        let offered: Vec<String> = req
            .headers()
            .get_all("Sec-WebSocket-Protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(',').map(|p| p.trim().to_string()).collect::<Vec<_>>())
            .collect();
        let pick = [SUBPROTOCOL_NATIVE, SUBPROTOCOL_JSON]
            .into_iter()
            .find(|p| offered.iter().any(|o| o == p));
        if let Some(p) = pick {
            resp.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static(p));
        }
        *record.borrow_mut() = pick;
        Ok(resp)
    };
    let ws =
        async_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config(read_size)))
            .await?;
    let protocol = *chosen.borrow();
    Ok((ws, protocol))
}

/// Answers a failed handshake (a plain HTTP request, a malformed upgrade) with `400` through the
/// socket's handle (the handshake consumed its stream), before it is closed.
pub fn refuse_upgrade(socket: &super::SocketHandle) {
    socket.send_now(REFUSAL);
}

/// The answer to a failed handshake.
pub const REFUSAL: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 47\r\n\r\n\
          this port speaks a2a-bench frames or WebSocket\n";

/// Completes a client handshake to `ws://addr/`, asking for `subprotocol`, reading at most
/// `read_size` bytes at once ([`read_size`]).
pub async fn connect<S>(
    stream: S,
    addr: SocketAddr,
    subprotocol: &str,
    read_size: usize,
) -> Result<WebSocketStream<S>, WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    use async_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{addr}/").into_client_request()?;
    let value = HeaderValue::from_str(subprotocol).map_err(|e| WsError::HttpFormat(e.into()))?;
    request.headers_mut().insert("Sec-WebSocket-Protocol", value);
    let (ws, _) =
        async_tungstenite::client_async_with_config(request, stream, Some(config(read_size)))
            .await?;
    Ok(ws)
}

/// One line for a failed client handshake asking for `subprotocol`, naming the likely cause.
pub fn handshake_failure(e: &WsError, subprotocol: &str) -> String {
    use async_tungstenite::tungstenite::error::{ProtocolError, SubProtocolError};
    match e {
        WsError::Protocol(ProtocolError::SecWebSocketSubProtocolError(
            SubProtocolError::NoSubProtocol,
        )) if subprotocol == SUBPROTOCOL_NATIVE => "the server chose no WebSocket subprotocol: \
            for the seed JSON protocol add --protocol json"
            .into(),
        WsError::Protocol(ProtocolError::SecWebSocketSubProtocolError(_)) => {
            format!("the server did not accept the WebSocket subprotocol {subprotocol}")
        }
        WsError::Http(resp) => {
            format!("the server answered HTTP {} instead of a WebSocket upgrade", resp.status())
        }
        other => other.to_string(),
    }
}

/// What a [`WsBytes`] stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Binary messages, their payloads back to back (native frames over WebSocket).
    Binary,
    /// Text messages as records: each one's length (`u32` little-endian), then its bytes (the
    /// JSON protocol, so that its agents read a byte stream like native ones).
    TextRecords,
}

/// Bytes of a record's length in [`Framing::TextRecords`].
pub const RECORD_LEN_BYTES: usize = 4;

/// The first whole record of `buf` and the bytes it takes (length included), if there is one.
pub fn next_record(buf: &[u8]) -> Option<(&[u8], usize)> {
    let len: [u8; RECORD_LEN_BYTES] = buf.get(..RECORD_LEN_BYTES)?.try_into().ok()?;
    let end = RECORD_LEN_BYTES + u32::from_le_bytes(len) as usize;
    Some((buf.get(RECORD_LEN_BYTES..end)?, end))
}

/// A WebSocket seen as a byte stream. Reads return the payloads of the messages of its
/// [`Framing`] (pings and pongs are answered by tungstenite and skipped; close is the end; a
/// message of the other kind is an error); a write sends one binary message, or one text
/// message per whole record.
pub struct WsBytes<S> {
    ws: WebSocketStream<S>,
    framing: Framing,
    /// Unread rest of the last message (as a record in `TextRecords`).
    pending: Bytes,
    /// An error met after bytes were already gathered: reported by the next read.
    failed: Option<io::Error>,
}

impl<S> WsBytes<S> {
    /// Wraps a handshaken stream of binary messages; `first` is a message already read from it.
    pub fn new(ws: WebSocketStream<S>, first: Option<Bytes>) -> WsBytes<S> {
        WsBytes { ws, framing: Framing::Binary, pending: first.unwrap_or_default(), failed: None }
    }

    /// Wraps a handshaken stream of text messages, read and written as records.
    pub fn text_records(ws: WebSocketStream<S>) -> WsBytes<S> {
        WsBytes { ws, framing: Framing::TextRecords, pending: Bytes::new(), failed: None }
    }
}

/// Flushes a WebSocket seen as bytes.
fn flush<S>(ws: &mut WebSocketStream<S>, cx: &mut Context<'_>) -> Poll<io::Result<()>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    Sink::<Message>::poll_flush(Pin::new(ws), cx).map_err(io_err)
}

/// Closes a WebSocket seen as bytes, then the stream under it (whose close waits for what it
/// still has to send, on a socket ring); closing one already closed is done, not an error.
fn close<S>(ws: &mut WebSocketStream<S>, cx: &mut Context<'_>) -> Poll<io::Result<()>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match Sink::<Message>::poll_close(Pin::new(&mut *ws), cx) {
        Poll::Ready(Ok(()) | Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => {
            Pin::new(ws.get_mut()).poll_close(cx)
        }
        other => other.map_err(io_err),
    }
}

fn io_err(e: WsError) -> io::Error {
    match e {
        WsError::Io(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsBytes<S> {
    /// Sends every whole record at the start of `buf` that the socket takes without waiting,
    /// each as one text message.
    fn poll_write_records(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let mut used = 0;
        while let Some((record, len)) = next_record(&buf[used..]) {
            match Sink::<Message>::poll_ready(Pin::new(&mut self.ws), cx) {
                Poll::Pending if used > 0 => return Poll::Ready(Ok(used)),
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(io_err(e))),
                Poll::Ready(Ok(())) => {}
            }
            let text = std::str::from_utf8(record)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            Pin::new(&mut self.ws).start_send(Message::text(text)).map_err(io_err)?;
            used += len;
        }
        if used == 0 {
            let partial = "a partial record: write whole records";
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidInput, partial)));
        }
        Poll::Ready(Ok(used))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsBytes<S> {
    /// Fills `buf` with as many binary messages as are available without waiting, so that one
    /// routing pass sees a whole batch of frames, as with TCP (one message per read would mean
    /// one pass, and one write per destination, per frame).
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(e) = self.failed.take() {
            return Poll::Ready(Err(e));
        }
        let mut filled = 0;
        loop {
            if !self.pending.is_empty() {
                let n = (buf.len() - filled).min(self.pending.len());
                buf[filled..filled + n].copy_from_slice(&self.pending.split_to(n));
                filled += n;
                if filled == buf.len() {
                    return Poll::Ready(Ok(filled));
                }
            }
            let next = match Pin::new(&mut self.ws).poll_next(cx) {
                Poll::Pending if filled > 0 => return Poll::Ready(Ok(filled)),
                Poll::Pending => return Poll::Pending,
                Poll::Ready(next) => next,
            };
            let error = match (next, self.framing) {
                (None | Some(Ok(Message::Close(_))), _) => return Poll::Ready(Ok(filled)),
                (Some(Ok(Message::Binary(b))), Framing::Binary) => {
                    self.pending = b;
                    continue;
                }
                (Some(Ok(Message::Text(t))), Framing::TextRecords) => {
                    let mut record = Vec::with_capacity(RECORD_LEN_BYTES + t.len());
                    record.extend_from_slice(&(t.len() as u32).to_le_bytes());
                    record.extend_from_slice(t.as_bytes());
                    self.pending = Bytes::from(record);
                    continue;
                }
                (Some(Ok(Message::Text(_))), Framing::Binary) => io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a text message on a native (binary) connection",
                ),
                (Some(Ok(Message::Binary(_))), Framing::TextRecords) => io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a binary message on a JSON (text) connection",
                ),
                (Some(Err(e)), _) => io_err(e),
                (Some(Ok(_)), _) => continue, // ping, pong: tungstenite answers pings itself
            };
            if filled == 0 {
                return Poll::Ready(Err(error));
            }
            self.failed = Some(error);
            return Poll::Ready(Ok(filled));
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsBytes<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.framing == Framing::TextRecords {
            return self.poll_write_records(cx, buf);
        }
        let ws = Pin::new(&mut self.ws);
        match Sink::<Message>::poll_ready(ws, cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(io_err(e))),
            Poll::Ready(Ok(())) => {}
        }
        match Pin::new(&mut self.ws).start_send(Message::Binary(Bytes::copy_from_slice(buf))) {
            Ok(()) => Poll::Ready(Ok(buf.len())),
            Err(e) => Poll::Ready(Err(io_err(e))),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        flush(&mut self.ws, cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        close(&mut self.ws, cx)
    }
}
