//! A small blocking client of the wire protocol: connect, send frames, receive messages.
//!
//! For tests, tools (`a2a-bench stats`) and scripts; the load generator has its own async,
//! batched agents. Received data messages are copied out of the frame ([`Received`]).

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::transport::Transport;
use crate::wire::control::Register;
use crate::wire::frame::{encode_frame_probed, Probe};
use crate::wire::{
    decode_frame, AgentId, BufferPool, Compression, Control, DataKind, DecodeError, Envelope,
    Limits, Message, TopicId,
};

/// A data message as received, owning its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataMessage {
    /// Kind.
    pub kind: DataKind,
    /// Sender agent.
    pub sender: AgentId,
    /// Recipient / type / topic, as sent.
    pub to: u32,
    /// Sender's message id.
    pub message_id: u64,
    /// Correlation id.
    pub correlation_id: u64,
    /// Send timestamp.
    pub timestamp_ns: u64,
    /// Application type.
    pub msg_type: u32,
    /// Priority.
    pub priority: u8,
    /// ttl.
    pub ttl_ms: u32,
    /// Payload bytes.
    pub payload: Vec<u8>,
}

impl DataMessage {
    fn from_envelope(env: &Envelope<'_>) -> DataMessage {
        DataMessage {
            kind: env.kind,
            sender: env.sender,
            to: env.to,
            message_id: env.message_id,
            correlation_id: env.correlation_id,
            timestamp_ns: env.timestamp_ns,
            msg_type: env.msg_type,
            priority: env.priority,
            ttl_ms: env.ttl_ms,
            payload: env.payload.to_vec(),
        }
    }
}

/// One received message.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    /// A data message.
    Data(DataMessage),
    /// A control message.
    Control(Control),
}

/// Why a receive failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket failed or timed out.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// The router closed the connection.
    #[error("connection closed by the router")]
    Closed,
    /// The router sent something this client cannot decode.
    #[error("undecodable frame from the router: {0}")]
    Decode(#[from] DecodeError),
}

/// The connection under a client: frames on TCP, or in WebSocket binary messages.
enum Link {
    Tcp(TcpStream),
    Ws(Box<tungstenite::WebSocket<TcpStream>>),
}

impl Link {
    fn socket(&self) -> &TcpStream {
        match self {
            Link::Tcp(s) => s,
            Link::Ws(ws) => ws.get_ref(),
        }
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Link::Tcp(s) => s.write_all(bytes),
            Link::Ws(ws) => ws
                .send(tungstenite::Message::Binary(bytes.to_vec().into()))
                .map_err(|e| ws_error(e).unwrap_or_else(|| io::ErrorKind::BrokenPipe.into())),
        }
    }

    /// Appends what arrives next to `buf`; `Ok(false)` when the router closed.
    fn receive(&mut self, buf: &mut Vec<u8>) -> io::Result<bool> {
        match self {
            Link::Tcp(s) => {
                let mut chunk = [0u8; 64 << 10];
                let n = s.read(&mut chunk)?;
                buf.extend_from_slice(&chunk[..n]);
                Ok(n > 0)
            }
            Link::Ws(ws) => loop {
                match ws.read() {
                    Ok(tungstenite::Message::Binary(b)) => {
                        buf.extend_from_slice(&b);
                        return Ok(true);
                    }
                    Ok(tungstenite::Message::Close(_)) => return Ok(false),
                    Ok(tungstenite::Message::Text(_)) => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "text message on a native connection",
                        ))
                    }
                    Ok(_) => {}
                    Err(e) => return ws_error(e).map_or(Ok(false), Err),
                }
            },
        }
    }
}

/// An I/O error from a WebSocket error; `None` when it means the connection closed.
fn ws_error(e: tungstenite::Error) -> Option<io::Error> {
    use tungstenite::error::ProtocolError;
    match e {
        tungstenite::Error::ConnectionClosed
        | tungstenite::Error::AlreadyClosed
        | tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        tungstenite::Error::Io(e) => Some(e),
        other => Some(io::Error::new(io::ErrorKind::InvalidData, other.to_string())),
    }
}

/// A blocking connection to a router.
pub struct Client {
    link: Link,
    buf: Vec<u8>,
    inflate: Vec<u8>,
    inbox: VecDeque<Received>,
    pool: BufferPool,
    next_request: u64,
    compression: Compression,
    /// Whether LZ4 paid on this client's frames lately (`auto` compression).
    probe: Probe,
}

impl Client {
    /// Connects over TCP with `TCP_NODELAY` and a 10 s read timeout.
    pub fn connect(addr: SocketAddr) -> io::Result<Client> {
        Client::connect_with(addr, Transport::Tcp, None)
    }

    /// Connects over TCP with a fixed kernel receive buffer (which turns off its auto-tuning): a
    /// client that stops reading then pushes back on the router after `bytes`, not megabytes.
    pub fn connect_with_recv_buffer(addr: SocketAddr, bytes: usize) -> io::Result<Client> {
        Client::connect_with(addr, Transport::Tcp, Some(bytes))
    }

    /// Connects over `transport` (WebSocket: `ws://addr/`, subprotocol `a2a-bench`), optionally
    /// with a fixed kernel receive buffer.
    pub fn connect_with(
        addr: SocketAddr,
        transport: Transport,
        recv_buffer: Option<usize>,
    ) -> io::Result<Client> {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        if let Some(bytes) = recv_buffer {
            socket.set_recv_buffer_size(bytes)?;
        }
        socket.connect_timeout(&addr.into(), Duration::from_secs(10))?;
        let stream: TcpStream = socket.into();
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let link = match transport {
            Transport::Tcp => Link::Tcp(stream),
            Transport::Ws => {
                use tungstenite::client::IntoClientRequest;
                let mut request =
                    format!("ws://{addr}/").into_client_request().map_err(io::Error::other)?;
                request.headers_mut().insert(
                    "Sec-WebSocket-Protocol",
                    tungstenite::http::HeaderValue::from_static(
                        crate::transport::ws::SUBPROTOCOL_NATIVE,
                    ),
                );
                let (ws, _) = tungstenite::client::client_with_config(
                    request,
                    stream,
                    Some(crate::transport::ws::config(crate::transport::ws::READ_FROM_SOCKET)),
                )
                .map_err(|e| io::Error::other(e.to_string()))?;
                Link::Ws(Box::new(ws))
            }
        };
        Ok(Client {
            link,
            buf: Vec::new(),
            inflate: Vec::new(),
            inbox: VecDeque::new(),
            pool: BufferPool::default(),
            next_request: 1,
            compression: Compression::Auto,
            probe: Probe::default(),
        })
    }

    /// Changes the read timeout.
    pub fn set_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.link.socket().set_read_timeout(Some(timeout))
    }

    /// Sets a write timeout: a send that cannot complete within it fails (the router is pushing
    /// back).
    pub fn set_write_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.link.socket().set_write_timeout(Some(timeout))
    }

    /// How frames this client sends are compressed (default `Auto`).
    pub fn set_compression(&mut self, compression: Compression) {
        self.compression = compression;
    }

    /// A fresh request id.
    pub fn request_id(&mut self) -> u64 {
        self.next_request += 1;
        self.next_request
    }

    /// Sends `messages` as one frame.
    pub fn send(&mut self, messages: &[Message<'_>]) -> io::Result<()> {
        let frame =
            encode_frame_probed(messages, self.compression, &mut self.probe, &mut self.pool);
        let sent = self.link.send(&frame);
        self.pool.put(frame);
        sent
    }

    /// Sends arbitrary bytes (for testing how a router treats bad input); over WebSocket, as one
    /// binary message.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.link.send(bytes)
    }

    /// Sends one control message.
    pub fn send_control(&mut self, ctl: Control) -> io::Result<()> {
        self.send(&[Message::Control(ctl)])
    }

    /// The next message, waiting up to the read timeout.
    pub fn recv(&mut self) -> Result<Received, ClientError> {
        loop {
            if let Some(m) = self.inbox.pop_front() {
                return Ok(m);
            }
            self.fill()?;
        }
    }

    /// The next control message, queueing data messages that arrive first for later `recv`s.
    pub fn recv_control(&mut self) -> Result<Control, ClientError> {
        loop {
            if let Some(i) = self.inbox.iter().position(|m| matches!(m, Received::Control(_))) {
                if let Some(Received::Control(c)) = self.inbox.remove(i) {
                    return Ok(c);
                }
            }
            self.fill()?;
        }
    }

    /// Sends `ctl` and returns the next control message.
    pub fn call(&mut self, ctl: Control) -> Result<Control, ClientError> {
        self.send_control(ctl)?;
        self.recv_control()
    }

    /// Registers `agent` and returns the router's answer (an ack or an error).
    pub fn register(
        &mut self,
        agent: u32,
        agent_type: u32,
        topics: &[u32],
    ) -> Result<Control, ClientError> {
        let request_id = self.request_id();
        self.call(Control::Register(Register {
            request_id,
            agent_id: AgentId(agent),
            agent_type,
            name: format!("agent-{agent}"),
            capabilities: Vec::new(),
            topics: topics.iter().copied().map(TopicId).collect(),
            token: None,
        }))
    }

    /// The underlying TCP socket, for drivers that do their own framing (pending received bytes
    /// are dropped); `None` over WebSocket.
    pub fn into_stream(self) -> Option<TcpStream> {
        match self.link {
            Link::Tcp(s) => Some(s),
            Link::Ws(_) => None,
        }
    }

    /// Reads until the router closes the connection, returning what arrived before.
    pub fn read_until_closed(&mut self) -> Result<Vec<Received>, ClientError> {
        loop {
            match self.fill() {
                Ok(()) => {}
                Err(ClientError::Closed) => return Ok(self.inbox.drain(..).collect()),
                Err(e) => return Err(e),
            }
        }
    }

    fn fill(&mut self) -> Result<(), ClientError> {
        if !self.link.receive(&mut self.buf)? {
            return Err(ClientError::Closed);
        }
        let mut used = 0;
        while let Some((len, batch)) =
            decode_frame(&self.buf[used..], &Limits::DEFAULT, &mut self.inflate)?
        {
            for item in batch {
                let (msg, _) = item?;
                self.inbox.push_back(match msg {
                    Message::Data(env) => Received::Data(DataMessage::from_envelope(&env)),
                    Message::Control(c) => Received::Control(c),
                });
            }
            used += len;
        }
        self.buf.drain(..used);
        Ok(())
    }
}
