//! How bytes travel between agents and routers: raw TCP, or WebSocket binary messages.
//!
//! Every router listens on one port for both: the first bytes of a connection tell a frame
//! (`A2`, the magic) from an HTTP upgrade (`GET`). Over WebSocket each binary message carries whole
//! frames, so everything above this module sees the same byte stream either way; text messages
//! are the JSON compatibility protocol.

pub mod uring;
pub mod ws;

use std::cell::RefCell;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::io::{AsyncRead, AsyncWrite};

/// The transport of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Frames back to back on a TCP stream.
    #[default]
    Tcp,
    /// Frames inside WebSocket binary messages.
    Ws,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Tcp => "tcp",
            Transport::Ws => "ws",
        })
    }
}

impl std::str::FromStr for Transport {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tcp" => Ok(Transport::Tcp),
            "ws" | "websocket" => Ok(Transport::Ws),
            other => Err(format!("unknown transport '{other}' (expected tcp or ws)")),
        }
    }
}

/// Latency mode (`--poll`): how long a polling core stays awake without traffic before it
/// sleeps as usual (a ring's reaper parks, glommio stops spinning); the next traffic wakes it
/// and it polls again.
pub const POLL_IDLE: std::time::Duration = std::time::Duration::from_secs(1);

/// Whose socket I/O an agent core uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Io {
    /// glommio's streams (`recv`/`send`, a poll armed on glommio's ring after a read that would
    /// block).
    #[default]
    Glommio,
    /// A second ring per core ([`uring`]): multishot receive into provided buffers, batched
    /// sends, no reschedule IPI.
    Uring,
}

impl fmt::Display for Io {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Io::Glommio => "glommio",
            Io::Uring => "uring",
        })
    }
}

impl std::str::FromStr for Io {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "glommio" => Ok(Io::Glommio),
            "uring" | "io_uring" => Ok(Io::Uring),
            other => Err(format!("unknown I/O path '{other}' (expected glommio or uring)")),
        }
    }
}

/// Whether a connection whose first byte is `first` opens with a WebSocket handshake.
pub fn is_http_upgrade(first: u8) -> bool {
    first == b'G'
}

/// A stream that first replays bytes already read from it (the bytes used to sniff it).
#[derive(Debug)]
pub struct Rewind<S> {
    prefix: Vec<u8>,
    pos: usize,
    inner: S,
}

impl<S> Rewind<S> {
    /// `prefix` is returned by reads before anything from `inner`.
    pub fn new(prefix: Vec<u8>, inner: S) -> Rewind<S> {
        Rewind { prefix, pos: 0, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if self.pos < self.prefix.len() {
            let n = buf.len().min(self.prefix.len() - self.pos);
            buf[..n].copy_from_slice(&self.prefix[self.pos..self.pos + n]);
            self.pos += n;
            if self.pos == self.prefix.len() {
                self.prefix = Vec::new();
                self.pos = 0;
            }
            return Poll::Ready(Ok(n));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// Writes all of `buf`, borrowing the stream only inside each poll.
pub async fn write_all<S: AsyncWrite + Unpin>(
    stream: &RefCell<S>,
    mut buf: &[u8],
) -> io::Result<()> {
    while !buf.is_empty() {
        let n = poll_fn(|cx| Pin::new(&mut *stream.borrow_mut()).poll_write(cx, buf)).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        buf = &buf[n..];
    }
    Ok(())
}
