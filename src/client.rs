//! A small blocking client of the wire protocol: connect, send frames, receive messages.
//!
//! For tests, tools (`a2a-bench stats`) and scripts; the load generator has its own async,
//! batched agents. Received data messages are copied out of the frame ([`Received`]).

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::wire::control::Register;
use crate::wire::frame::encode_frame;
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

/// A blocking connection to a router.
pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
    inflate: Vec<u8>,
    inbox: VecDeque<Received>,
    pool: BufferPool,
    next_request: u64,
    compression: Compression,
}

impl Client {
    /// Connects with `TCP_NODELAY` and a 10 s read timeout.
    pub fn connect(addr: SocketAddr) -> io::Result<Client> {
        Client::from_stream(TcpStream::connect_timeout(&addr, Duration::from_secs(10))?)
    }

    /// Connects with a fixed kernel receive buffer (which turns off its auto-tuning): a client
    /// that stops reading then pushes back on the router after `bytes`, not after megabytes.
    pub fn connect_with_recv_buffer(addr: SocketAddr, bytes: usize) -> io::Result<Client> {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        socket.set_recv_buffer_size(bytes)?;
        socket.connect_timeout(&addr.into(), Duration::from_secs(10))?;
        Client::from_stream(socket.into())
    }

    fn from_stream(stream: TcpStream) -> io::Result<Client> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(Client {
            stream,
            buf: Vec::new(),
            inflate: Vec::new(),
            inbox: VecDeque::new(),
            pool: BufferPool::default(),
            next_request: 1,
            compression: Compression::Auto,
        })
    }

    /// Changes the read timeout.
    pub fn set_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.stream.set_read_timeout(Some(timeout))
    }

    /// Sets a write timeout: a send that cannot complete within it fails (the router is pushing
    /// back).
    pub fn set_write_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.stream.set_write_timeout(Some(timeout))
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
        let frame = encode_frame(messages, self.compression, &mut self.pool);
        self.stream.write_all(&frame)?;
        self.pool.put(frame);
        Ok(())
    }

    /// Sends arbitrary bytes (for testing how a router treats bad input).
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
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

    /// The underlying socket, for drivers that do their own framing (pending received bytes are
    /// dropped).
    pub fn into_stream(self) -> TcpStream {
        self.stream
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
        let mut chunk = [0u8; 64 << 10];
        let n = self.stream.read(&mut chunk)?;
        if n == 0 {
            return Err(ClientError::Closed);
        }
        self.buf.extend_from_slice(&chunk[..n]);
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
