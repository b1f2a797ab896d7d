//! How bytes travel between agents and routers: raw TCP, or WebSocket binary messages.
//!
//! Every router listens on one port for both: the first bytes of a connection tell a frame
//! (`A2`, the magic) from an HTTP upgrade (`GET`). Over WebSocket each binary message carries whole
//! frames, so everything above this module sees the same byte stream either way; text messages
//! are the JSON compatibility protocol.

pub mod doorbell;
pub mod kick;
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

/// A stream that may lend the bytes it received in place instead of copying them into the
/// reader's buffer: a socket ring's ([`uring::UringStream::poll_lend`]), through the wrappers
/// around it. Every other stream copies (the default).
pub trait Lend {
    /// The socket ring's stream beneath, when a read may be done in place now.
    fn lender(&self) -> Option<&uring::UringStream> {
        None
    }
    /// Whether its bytes are received into memory ahead of the reads (a socket ring's), so
    /// that a read costs a copy, not a system call.
    fn in_memory(&self) -> bool {
        false
    }
    /// A socket ring's stream: its [`uring::Handle`], which stands in for the descriptor the
    /// process closed once the socket went into the ring's table.
    fn ring_handle(&self) -> Option<uring::Handle> {
        None
    }
}

impl Lend for uring::UringStream {
    fn lender(&self) -> Option<&uring::UringStream> {
        Some(self)
    }
    fn in_memory(&self) -> bool {
        true
    }
    fn ring_handle(&self) -> Option<uring::Handle> {
        Some(self.handle())
    }
}

impl<S: Lend> Lend for Guarded<S> {
    fn lender(&self) -> Option<&uring::UringStream> {
        self.inner.lender()
    }
    fn in_memory(&self) -> bool {
        self.inner.in_memory()
    }
}

impl<S: Lend> Lend for Rewind<S> {
    fn lender(&self) -> Option<&uring::UringStream> {
        // The replayed bytes come first, through `poll_read`.
        if self.replay.is_some() {
            return None;
        }
        self.inner.lender()
    }
    fn in_memory(&self) -> bool {
        self.inner.in_memory()
    }
}

impl<S> Lend for ws::WsBytes<S> {}
impl Lend for glommio::net::TcpStream {}
impl<S> Lend for tokio_util::compat::Compat<S> {}

/// A stream that first replays bytes already read from it (the bytes used to sniff it).
#[derive(Debug)]
pub struct Rewind<S> {
    /// The bytes still to replay and how many were replayed; `None` once all were. Boxed: the
    /// stream lives as long as its connection, and the replay is over after its first read
    /// (32 bytes less per connection: an `Rc<RefCell<…>>` of the router's native stream on
    /// the socket ring takes a 64-byte block instead of a 96-byte one).
    replay: Option<Box<(Vec<u8>, usize)>>,
    inner: S,
}

impl<S> Rewind<S> {
    /// `prefix` is returned by reads before anything from `inner`.
    pub fn new(prefix: Vec<u8>, inner: S) -> Rewind<S> {
        let replay = (!prefix.is_empty()).then(|| Box::new((prefix, 0)));
        Rewind { replay, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(replay) = self.replay.as_deref_mut() {
            let (prefix, pos) = replay;
            let n = buf.len().min(prefix.len() - *pos);
            buf[..n].copy_from_slice(&prefix[*pos..*pos + n]);
            *pos += n;
            if *pos == prefix.len() {
                self.replay = None;
            }
            return Poll::Ready(Ok(n));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

/// `AsyncWrite` for a wrapper, straight to its `inner` stream.
macro_rules! write_through {
    ($wrapper:ident) => {
        impl<S: AsyncWrite + Unpin> AsyncWrite for $wrapper<S> {
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
    };
}

write_through!(Rewind);

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

/// A connection's shutdown handle: the number of the descriptor its stream owns, used only while
/// that stream is alive ([`Guarded`] clears `open` as it drops), so a number the kernel has since
/// given to a newer connection is never touched. It stands in for a second descriptor
/// (`try_clone`) per connection: the open-file limit is what bounds connections per process. A
/// socket ring's stream holds no descriptor once its socket is in the ring's table: its handle
/// asks the ring instead ([`uring::Handle`]).
#[derive(Debug)]
pub struct SocketHandle {
    target: Target,
    open: std::cell::Cell<bool>,
}

#[derive(Debug)]
enum Target {
    Fd(std::os::fd::RawFd),
    Ring(uring::Handle),
}

impl SocketHandle {
    /// Shuts both directions down (a parked read or write of the stream ends); nothing once the
    /// stream is gone.
    pub fn shutdown(&self) {
        if self.open.get() {
            match &self.target {
                Target::Fd(fd) => {
                    let _ = nix::sys::socket::shutdown(*fd, nix::sys::socket::Shutdown::Both);
                }
                Target::Ring(h) => h.shutdown(),
            }
        }
    }

    /// Sends what the socket takes now, without waiting (a parting reply); nothing once the
    /// stream is gone. Through a socket ring: queued, and sent even if the stream drops first.
    pub fn send_now(&self, bytes: &[u8]) {
        use nix::sys::socket::MsgFlags;
        if self.open.get() {
            match &self.target {
                Target::Fd(fd) => {
                    let _ = nix::sys::socket::send(
                        *fd,
                        bytes,
                        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
                    );
                }
                Target::Ring(h) => h.send_now(bytes),
            }
        }
    }

    /// Whether the stream that owns the descriptor is still alive.
    pub fn is_open(&self) -> bool {
        self.open.get()
    }
}

/// A stream that owns its socket and tells the socket's [`SocketHandle`] when it goes.
#[derive(Debug)]
pub struct Guarded<S> {
    inner: S,
    handle: std::rc::Rc<SocketHandle>,
}

impl<S> Guarded<S> {
    /// `inner` owns descriptor `fd`; the handle may shut it down while `inner` lives.
    pub fn new(inner: S, fd: std::os::fd::RawFd) -> (Guarded<S>, std::rc::Rc<SocketHandle>) {
        Guarded::with_target(inner, Target::Fd(fd))
    }

    /// `inner` is a socket ring's stream, or one built on it: the handle goes through the ring.
    pub fn on_ring(inner: S, ring: uring::Handle) -> (Guarded<S>, std::rc::Rc<SocketHandle>) {
        Guarded::with_target(inner, Target::Ring(ring))
    }

    /// `inner`, which owns descriptor `fd` unless it is a socket ring's stream.
    pub fn adopting(inner: S, fd: std::os::fd::RawFd) -> (Guarded<S>, std::rc::Rc<SocketHandle>)
    where
        S: Lend,
    {
        match inner.ring_handle() {
            Some(ring) => Guarded::on_ring(inner, ring),
            None => Guarded::new(inner, fd),
        }
    }

    fn with_target(inner: S, target: Target) -> (Guarded<S>, std::rc::Rc<SocketHandle>) {
        let handle = std::rc::Rc::new(SocketHandle { target, open: std::cell::Cell::new(true) });
        (Guarded { inner, handle: handle.clone() }, handle)
    }
}

impl<S> Drop for Guarded<S> {
    fn drop(&mut self) {
        // Runs before `inner` drops (and closes the descriptor, or hands it to a ring that will).
        self.handle.open.set(false);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

write_through!(Guarded);

/// A stream shared by clones, each borrowing it only inside a poll: one clone can be handed to
/// something that consumes its stream (a WebSocket handshake) while another keeps the socket
/// alive for a parting reply if that fails.
#[derive(Debug)]
pub struct Shared<S>(std::rc::Rc<RefCell<S>>);

impl<S> Shared<S> {
    /// Shares `inner`.
    pub fn new(inner: S) -> Shared<S> {
        Shared(std::rc::Rc::new(RefCell::new(inner)))
    }
}

impl<S> Clone for Shared<S> {
    fn clone(&self) -> Self {
        Shared(self.0.clone())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Shared<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Shared<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    #[test]
    fn a_handle_never_touches_the_descriptor_once_its_stream_is_gone() {
        // Proves a shutdown through the handle of a dropped stream leaves alone the newer
        // connection the kernel gave the same descriptor number.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        for _ in 0..100 {
            let _old_client = TcpStream::connect(addr).unwrap();
            let (old, _) = listener.accept().unwrap();
            let fd = old.as_raw_fd();
            let (guarded, handle) = Guarded::new(old, fd);
            assert!(handle.is_open());
            let mut client = TcpStream::connect(addr).unwrap();
            drop(guarded);
            assert!(!handle.is_open());
            let (mut new, _) = listener.accept().unwrap();
            if new.as_raw_fd() != fd {
                continue; // another test's thread took the number; try again
            }
            handle.shutdown();
            handle.send_now(b"stale");
            client.write_all(b"ping").unwrap();
            let mut got = [0u8; 4];
            new.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"ping");
            new.write_all(b"pong").unwrap();
            client.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"pong", "nothing from the stale handle reached the new connection");
            return;
        }
        panic!("the kernel never reused the descriptor number in 100 tries");
    }
}
