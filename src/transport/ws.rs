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

/// Message size limits matching the frame limit (10 MiB) with room for the header.
pub fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(16 << 20))
        .max_frame_size(Some(16 << 20))
        .read_buffer_size(32 << 10)
}

/// Completes a server handshake. Returns the stream and the subprotocol chosen: the native one
/// when offered, else the JSON one when offered, else none.
pub async fn accept<S>(stream: S) -> Result<(WebSocketStream<S>, Option<&'static str>), WsError>
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
        async_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config())).await?;
    let protocol = *chosen.borrow();
    Ok((ws, protocol))
}

/// Answers a failed handshake (a plain HTTP request, a malformed upgrade) with `400` through a
/// second descriptor of the socket, before it is closed.
pub fn refuse_upgrade(socket: &std::net::TcpStream) {
    use std::io::Write;
    let mut s = socket;
    let _ = s.write_all(
        b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 47\r\n\r\n\
          this port speaks a2a-bench frames or WebSocket\n",
    );
}

/// Completes a client handshake to `ws://addr/`, asking for `subprotocol`.
pub async fn connect<S>(
    stream: S,
    addr: SocketAddr,
    subprotocol: &str,
) -> Result<WebSocketStream<S>, WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    use async_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{addr}/").into_client_request()?;
    let value = HeaderValue::from_str(subprotocol).map_err(|e| WsError::HttpFormat(e.into()))?;
    request.headers_mut().insert("Sec-WebSocket-Protocol", value);
    let (ws, _) =
        async_tungstenite::client_async_with_config(request, stream, Some(config())).await?;
    Ok(ws)
}

/// A WebSocket seen as a byte stream: reads return binary payloads (pings and pongs are
/// answered by tungstenite and skipped; close is the end), each write sends one binary message.
/// Text messages are not bytes of the native protocol: reading one is an error.
pub struct WsBytes<S> {
    ws: WebSocketStream<S>,
    /// Unread rest of the last binary message.
    pending: Bytes,
    /// An error met after bytes were already gathered: reported by the next read.
    failed: Option<io::Error>,
}

impl<S> WsBytes<S> {
    /// Wraps a handshaken stream; `first` is a message already read from it, if any.
    pub fn new(ws: WebSocketStream<S>, first: Option<Bytes>) -> WsBytes<S> {
        WsBytes { ws, pending: first.unwrap_or_default(), failed: None }
    }
}

fn io_err(e: WsError) -> io::Error {
    match e {
        WsError::Io(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
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
            let error = match next {
                None | Some(Ok(Message::Close(_))) => return Poll::Ready(Ok(filled)),
                Some(Ok(Message::Binary(b))) => {
                    self.pending = b;
                    continue;
                }
                Some(Ok(Message::Text(_))) => io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a text message on a native (binary) connection",
                ),
                Some(Err(e)) => io_err(e),
                Some(Ok(_)) => continue, // ping, pong: tungstenite answers pings itself
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
        Sink::<Message>::poll_flush(Pin::new(&mut self.ws), cx).map_err(io_err)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Sink::<Message>::poll_close(Pin::new(&mut self.ws), cx) {
            Poll::Ready(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => {
                Poll::Ready(Ok(()))
            }
            other => other.map_err(io_err),
        }
    }
}
