//! Entry points for fuzzing: each takes arbitrary bytes, drives one parser the way the router
//! does, and must never panic, loop or allocate without bound. `tests/fuzz` (cargo fuzz) runs
//! them under libFuzzer (`make fuzz`); `make test` replays the committed corpus through them.

use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};

use futures_lite::io::{AsyncRead, AsyncWrite};

use super::{Shard, ShardConfig};
use crate::transport::{is_http_upgrade, ws};
use crate::wire::frame::decode_message;
use crate::wire::{decode_frame, Envelope, Limits, Message};

/// The frame decoder: frames back to back, every message of each decoded.
pub fn frames(mut data: &[u8]) {
    let limits = Limits { frame_bytes_max: 1 << 20, batch_messages_max: 1024 };
    let mut scratch = Vec::new();
    while let Ok(Some((len, mut batch))) = decode_frame(data, &limits, &mut scratch) {
        // As the router's and the agents' loops read a batch: the fast path first.
        loop {
            if batch.next_usual().is_some() {
                continue;
            }
            match batch.next_message() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
        data = &data[len..];
    }
}

/// Message decoding (data envelopes and every control kind), messages back to back.
pub fn messages(mut data: &[u8]) {
    while !data.is_empty() {
        // The fast path declines, or decides as the general one does and stops where it does.
        let mut fast = data;
        let usual = Envelope::decode_usual(&mut fast);
        let general = decode_message(&mut data);
        if let Some(env) = usual {
            assert!(matches!(general, Ok(Message::Data(g)) if g == env), "the paths disagree");
            assert_eq!(fast.len(), data.len(), "the paths stop at different bytes");
        }
        if general.is_err() {
            return;
        }
    }
}

/// The JSON compatibility translator in front of a shard: each line is one JSON text from a
/// client; what the shard answers is translated back.
pub fn json(data: &[u8]) {
    let mut shard = Shard::new(ShardConfig::new(0, 1));
    let text = String::from_utf8_lossy(data);
    super::json::drive(&mut shard, text.lines());
}

/// A connection's first bytes as the router reads them: an HTTP upgrade goes through the
/// WebSocket handshake and then its messages, anything else is native frames fed to a shard in
/// reads of up to 4 KiB.
pub fn connection(data: &[u8]) {
    let Some(&first) = data.first() else { return };
    let mut shard = Shard::new(ShardConfig::new(0, 1));
    let id = shard.open_conn();
    let mut cx = Context::from_waker(Waker::noop());
    if !is_http_upgrade(first) {
        feed(&mut shard, id, Duplex { input: data }, &mut cx);
        return;
    }
    // The in-memory socket never makes a read or write wait: one poll completes the handshake.
    let Poll::Ready(Ok((ws, _))) =
        pin!(ws::accept(Duplex { input: data }, ws::READ_IN_MEMORY)).poll(&mut cx)
    else {
        return;
    };
    feed(&mut shard, id, ws::WsBytes::new(ws, None), &mut cx);
}

/// Reads `stream` to its end, routing what arrives, with the reader's buffer discipline.
fn feed<S: AsyncRead + Unpin>(
    shard: &mut Shard,
    id: super::ConnId,
    mut stream: S,
    cx: &mut Context<'_>,
) {
    let mut buf = vec![0u8; 4096];
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            if buf.len() >= 1 << 20 {
                return;
            }
            buf.resize(buf.len() * 2, 0);
        }
        let n = match Pin::new(&mut stream).poll_read(cx, &mut buf[filled..]) {
            Poll::Ready(Ok(n)) if n > 0 => n,
            _ => return,
        };
        filled += n;
        let input = shard.on_input(id, &buf[..filled]);
        buf.copy_within(input.consumed..filled, 0);
        filled -= input.consumed;
        if input.close {
            return;
        }
        while let Poll::Ready(Some(frame)) = shard.poll_output(id, cx) {
            shard.output_done(frame);
        }
    }
}

/// An in-memory socket: reads come from `input` (then end), writes are discarded.
struct Duplex<'a> {
    input: &'a [u8],
}

impl AsyncRead for Duplex<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let n = buf.len().min(self.input.len()).min(4096);
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input = &self.input[n..];
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for Duplex<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
