//! An agent core's connections to the router: TCP, or WebSocket (binary messages for native
//! frames, text messages as records for the JSON protocol), connected and handshaken within a
//! bounded time, with one clear line when the peer is missing or speaks something else.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_lite::future::or;
use futures_lite::io::{AsyncRead, AsyncWrite};

use super::Protocol;
use crate::transport::{uring, ws, Guarded, SocketHandle, Transport};
use crate::wire::Home;

/// How long connecting or a WebSocket handshake may take.
pub(super) const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection of an agent group: TCP, or WebSocket (binary messages for native frames, text
/// messages as records for the JSON protocol).
pub(super) enum AgentStream {
    Tcp(glommio::net::TcpStream),
    Uring(uring::UringStream),
    Ws(Box<ws::WsBytes<glommio::net::TcpStream>>),
    /// WebSocket over the agent core's socket ring (`--agent-io uring`, the default).
    UringWs(Box<ws::WsBytes<uring::UringStream>>),
}

macro_rules! each_stream {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            AgentStream::Tcp($s) => $e,
            AgentStream::Uring($s) => $e,
            AgentStream::Ws($s) => {
                let $s = $s.as_mut();
                $e
            }
            AgentStream::UringWs($s) => {
                let $s = $s.as_mut();
                $e
            }
        }
    };
}

impl crate::transport::Lend for AgentStream {
    fn lender(&self) -> Option<&uring::UringStream> {
        match self {
            AgentStream::Uring(s) => Some(s),
            _ => None,
        }
    }
}

impl AsyncRead for AgentStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        b: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        each_stream!(self, s => Pin::new(s).poll_read(cx, b))
    }
}

impl AsyncWrite for AgentStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        each_stream!(self, s => Pin::new(s).poll_write(cx, b))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each_stream!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each_stream!(self, s => Pin::new(s).poll_close(cx))
    }
}

/// `fut`, or `None` once `timeout` has passed.
pub(super) async fn within<T>(
    timeout: Duration,
    fut: impl std::future::Future<Output = T>,
) -> Option<T> {
    or(async { Some(fut.await) }, async {
        glommio::timer::sleep(timeout).await;
        None
    })
    .await
}

/// Connections from one loopback source address; past it the next one is used (127.0.0.2, …).
/// One source address has ≈ 28 k ephemeral ports towards one router port, but a connect tries
/// the even half first, each port in turn: past ≈ 14 k connections from one address every new
/// one looked through all of that half (`__inet_check_established` took 39 % of a 2-core
/// machine, and 100,000 connections two minutes to open, `benches/many_conns.sh`).
pub(super) const CONNS_PER_SOURCE: usize = 10_000;

/// The source address of a run's connection number `index` towards `to`: none to choose below
/// [`CONNS_PER_SOURCE`] or for a router not on IPv4 loopback.
pub(super) fn source_for(to: SocketAddr, index: usize) -> Option<std::net::IpAddr> {
    let block = index / CONNS_PER_SOURCE;
    match to.ip() {
        std::net::IpAddr::V4(ip) if ip.is_loopback() && block > 0 => Some(
            std::net::Ipv4Addr::new(127, 0, (block / 254) as u8, (block % 254) as u8 + 1).into(),
        ),
        _ => None,
    }
}

/// Why a connect to `addr` (from `source`) failed, in a line that says what to check.
fn unreachable(
    e: &io::Error,
    addr: SocketAddr,
    source: Option<std::net::IpAddr>,
    protocol: Protocol,
) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => {
            let what = if protocol == Protocol::Http { "server" } else { "router" };
            format!("connection refused by {addr}: is a {what} listening there?")
        }
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
            format!("no answer from {addr} within {} s", SETUP_TIMEOUT.as_secs())
        }
        _ => match source {
            Some(ip) => format!("connecting to {addr} from {ip}: {e}"),
            None => format!("connecting to {addr}: {e}"),
        },
    }
}

/// Whether something accepts connections at `addr`: one connection, closed at once. Asked
/// before a run starts, so that a wrong address or a server not up yet is one line, not a
/// banner followed by an error.
pub fn check_reachable(addr: SocketAddr, protocol: Protocol) -> Result<(), String> {
    TcpStream::connect_timeout(&addr, SETUP_TIMEOUT)
        .map(drop)
        .map_err(|e| unreachable(&e, addr, None, protocol))
}

/// One connection to the router (from `source` when given), with the handle that shuts it
/// down; its TCP I/O goes through `ring` when there is one (and then, once its socket is in
/// the ring's table, it holds no descriptor). Over raw TCP,
/// `home` is written at once, before anything else, so that it comes with the handshake and a
/// sharded router places the connection by it (`route::accept`).
pub(super) async fn connect(
    addr: SocketAddr,
    source: Option<std::net::IpAddr>,
    transport: Transport,
    protocol: Protocol,
    ring: Option<&std::rc::Rc<uring::Ring>>,
    home: Option<Home>,
) -> Result<(Guarded<AgentStream>, Rc<SocketHandle>), String> {
    let dial = move || match source {
        None => TcpStream::connect_timeout(&addr, SETUP_TIMEOUT),
        Some(ip) => connect_from(ip, addr),
    };
    // On loopback a connect ends at once (accepted or refused): dialled inline. Elsewhere it
    // waits a round trip or more, and an HTTP client redials while the run goes on (a server
    // that closes connections, --no-keepalive): dialled on the executor's blocking threads,
    // so the core's other connections keep going meanwhile.
    let opened = if addr.ip().is_loopback() {
        dial()
    } else {
        glommio::executor().spawn_blocking(dial).await
    };
    let s = opened.map_err(|e| unreachable(&e, addr, source, protocol))?;
    let setup = |e: io::Error| format!("setting up a connection: {e}");
    s.set_nodelay(true).map_err(setup)?;
    if let Some(home) = home.filter(|_| transport == Transport::Tcp) {
        // A fresh socket's send buffer is empty: a blocking write of a few bytes returns at once.
        io::Write::write_all(&mut &s, &crate::wire::frame::home_frame(home)).map_err(setup)?;
    }
    let fd = std::os::fd::AsRawFd::as_raw_fd(&s);
    s.set_nonblocking(true).map_err(setup)?;
    let subprotocol = match (transport, protocol) {
        (Transport::Tcp, _) | (_, Protocol::Http) => {
            return Ok(match ring {
                Some(ring) => {
                    let stream = ring.stream(s.into());
                    let handle = stream.handle();
                    Guarded::on_ring(AgentStream::Uring(stream), handle)
                }
                None => Guarded::new(
                    AgentStream::Tcp(glommio::net::TcpStream::from(socket2::Socket::from(s))),
                    fd,
                ),
            });
        }
        (Transport::Ws, Protocol::Native) => ws::SUBPROTOCOL_NATIVE,
        (Transport::Ws, Protocol::Json) => ws::SUBPROTOCOL_JSON,
    };
    Ok(match ring {
        Some(ring) => {
            let stream = ring.stream(s.into());
            let handle = stream.handle();
            let ws = handshake(stream, addr, subprotocol, protocol).await?;
            Guarded::on_ring(AgentStream::UringWs(Box::new(ws)), handle)
        }
        None => Guarded::new(
            AgentStream::Ws(Box::new(
                handshake(
                    glommio::net::TcpStream::from(socket2::Socket::from(s)),
                    addr,
                    subprotocol,
                    protocol,
                )
                .await?,
            )),
            fd,
        ),
    })
}

/// A WebSocket client handshake on `stream` within [`SETUP_TIMEOUT`]: binary messages for
/// native frames, text messages as records for the JSON protocol.
async fn handshake<S: AsyncRead + AsyncWrite + crate::transport::Lend + Unpin>(
    stream: S,
    addr: SocketAddr,
    subprotocol: &str,
    protocol: Protocol,
) -> Result<ws::WsBytes<S>, String> {
    let read_size = ws::read_size(&stream);
    let shake = within(SETUP_TIMEOUT, ws::connect(stream, addr, subprotocol, read_size))
        .await
        .ok_or_else(|| {
            format!("no WebSocket handshake from {addr} within {} s", SETUP_TIMEOUT.as_secs())
        })?
        .map_err(|e| {
            format!("WebSocket handshake with {addr}: {}", ws::handshake_failure(&e, subprotocol))
        })?;
    Ok(match protocol {
        Protocol::Json => ws::WsBytes::text_records(shake),
        _ => ws::WsBytes::new(shake, None),
    })
}

/// A blocking connect from `ip` (any free port), bounded like the others.
fn connect_from(ip: std::net::IpAddr, to: SocketAddr) -> io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    bind_address_only(&socket)?;
    socket.bind(&SocketAddr::new(ip, 0).into())?;
    socket.connect_timeout(&to.into(), SETUP_TIMEOUT)?;
    Ok(socket.into())
}

/// `IP_BIND_ADDRESS_NO_PORT`: a bind to a source address leaves the port to the connect, which
/// picks one for the whole address pair. A bind that picks the port itself takes it for that
/// address whatever the destination, and one a plain connect then never shares: every source
/// address drew on the same ≈ 28 k ephemeral ports, and 50,000 connections from three of them
/// failed with `EADDRNOTAVAIL` (`benches/many_conns.sh`).
#[allow(unsafe_code)]
fn bind_address_only(socket: &socket2::Socket) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: a descriptor the socket owns, and an int option passed with its size.
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            std::ptr::addr_of!(on).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    match r {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_past_a_source_address_block_move_to_the_next_loopback_address() {
        // Proves the source spread: the first 10,000 connections to a loopback router keep the
        // default source; later blocks take 127.0.0.2, .3, …; other routers are left alone.
        let to: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        assert_eq!(source_for(to, 0), None);
        assert_eq!(source_for(to, CONNS_PER_SOURCE - 1), None);
        assert_eq!(source_for(to, CONNS_PER_SOURCE), Some("127.0.0.2".parse().unwrap()));
        assert_eq!(source_for(to, 5 * CONNS_PER_SOURCE + 7), Some("127.0.0.6".parse().unwrap()));
        assert_eq!(source_for(to, 254 * CONNS_PER_SOURCE), Some("127.0.1.1".parse().unwrap()));
        assert_eq!(source_for("10.0.0.1:9000".parse().unwrap(), 99_999), None);
    }

    #[test]
    fn a_source_address_is_bound_without_a_port_until_the_connect() {
        // Proves the bind leaves the port to the connect (`IP_BIND_ADDRESS_NO_PORT`), so that
        // source addresses do not draw on one set of ephemeral ports; and such a socket
        // connects.
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None);
        let socket = socket.unwrap();
        bind_address_only(&socket).unwrap();
        socket.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into()).unwrap();
        let bound = socket.local_addr().unwrap().as_socket().unwrap();
        assert_eq!(bound.port(), 0, "a port was taken at the bind");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let s = connect_from("127.0.0.1".parse().unwrap(), listener.local_addr().unwrap());
        assert_ne!(s.unwrap().local_addr().unwrap().port(), 0);
    }
}
