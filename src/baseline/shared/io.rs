//! A shared-state connection's two ends: where its bytes come from, where they go, and the
//! writer task that drains its queue.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, Semaphore};

use crate::wire::{BufferPool, FrameBuf, Probe};

use super::{Chunk, State, FRAME_BYTES};

type WsStream = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Where a connection's bytes come from.
pub(super) enum Input {
    Tcp(OwnedReadHalf),
    Ws {
        stream: futures_util::stream::SplitStream<WsStream>,
        /// Unread rest of the last binary message.
        pending: tungstenite::Bytes,
    },
}

impl Input {
    /// Reads into `buf`; 0 at the end. Over WebSocket it gathers every binary message already
    /// available, so one routing pass sees a batch of frames as it does over TCP.
    pub(super) async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use futures_util::{FutureExt, StreamExt};
        match self {
            Input::Tcp(r) => r.read(buf).await,
            Input::Ws { stream, pending } => {
                let mut filled = 0;
                loop {
                    if !pending.is_empty() {
                        let n = (buf.len() - filled).min(pending.len());
                        buf[filled..filled + n].copy_from_slice(&pending.split_to(n));
                        filled += n;
                        if filled == buf.len() {
                            return Ok(filled);
                        }
                    }
                    let next = if filled == 0 {
                        stream.next().await
                    } else {
                        match stream.next().now_or_never() {
                            Some(next) => next,
                            None => return Ok(filled),
                        }
                    };
                    match next {
                        Some(Ok(tungstenite::Message::Binary(b))) => *pending = b,
                        Some(Ok(tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_))) => {
                        }
                        Some(Ok(tungstenite::Message::Text(_))) if filled == 0 => {
                            return Err(std::io::Error::new(
                                std::io::ErrorKind::InvalidData,
                                "text on a native connection",
                            ))
                        }
                        _ => return Ok(filled),
                    }
                }
            }
        }
    }
}

/// Where a connection's frames go.
pub(super) enum Output {
    Tcp(OwnedWriteHalf),
    Ws(futures_util::stream::SplitSink<WsStream, tungstenite::Message>),
}

impl Output {
    pub(super) async fn write_frame(&mut self, frame: &[u8]) -> std::io::Result<()> {
        match self {
            Output::Tcp(w) => w.write_all(frame).await,
            Output::Ws(sink) => futures_util::SinkExt::send(
                sink,
                tungstenite::Message::Binary(tungstenite::Bytes::copy_from_slice(frame)),
            )
            .await
            .map_err(std::io::Error::other),
        }
    }

    pub(super) async fn close(&mut self) {
        match self {
            Output::Tcp(w) => drop(w.shutdown().await),
            Output::Ws(sink) => drop(futures_util::SinkExt::close(sink).await),
        }
    }
}

pub(super) async fn writer(
    state: Arc<State>,
    mut write: Output,
    mut rx: mpsc::UnboundedReceiver<Chunk>,
    budget: Arc<Semaphore>,
) {
    let compression = state.cfg.compression;
    let max = state.cfg.conn_queue_bytes_max;
    let mut pool = BufferPool::default();
    // Whether LZ4 paid on this connection's frames lately (`auto` compression).
    let mut probe = Probe::default();
    // Lane 0 is high priority, lane 1 normal; one frame per write, high lane first.
    let mut lanes: [VecDeque<Chunk>; 2] = [VecDeque::new(), VecDeque::new()];
    loop {
        if lanes.iter().all(VecDeque::is_empty) {
            match rx.recv().await {
                Some(c) => lanes[usize::from(!c.high)].push_back(c),
                None => break,
            }
        }
        while let Ok(c) = rx.try_recv() {
            lanes[usize::from(!c.high)].push_back(c);
        }
        let lane = if lanes[0].is_empty() { &mut lanes[1] } else { &mut lanes[0] };
        let mut frame = FrameBuf::new(pool.get(FRAME_BYTES));
        let mut bytes = 0;
        while let Some(c) = lane.front() {
            if !frame.is_empty() && frame.len() + c.buf.len() > FRAME_BYTES {
                break;
            }
            let Some(c) = lane.pop_front() else { break };
            bytes += c.buf.len().min(max); // exactly what the sender acquired for this chunk
            frame.push_raw_many(&c.buf, c.count);
            pool.put(c.buf);
        }
        let frame = frame.finish_probed(compression, &mut probe, &mut pool);
        state.counters.batches_out.fetch_add(1, Ordering::Relaxed);
        state.counters.bytes_out.fetch_add(frame.len() as u64, Ordering::Relaxed);
        let written = write.write_frame(&frame).await;
        pool.put(frame);
        budget.add_permits(bytes);
        if written.is_err() {
            budget.close();
            return;
        }
    }
    write.close().await;
}
