//! A client connection as a shard sees it: the agents on it and its bounded outbound queue.
//!
//! Output goes into two lanes (high: priority 6–10 and router replies; normal: 0–5). Each lane
//! has an open frame that routing appends raw messages to, and a queue of sealed frames (in the
//! connection's cold part: only a connection with more than a frame queued has any). The writer
//! task takes whole frames — the open one is sealed at that moment — so everything routed to a
//! connection between two writes leaves in one frame and one write.

use std::collections::VecDeque;
use std::task::Waker;

use smallvec::SmallVec;

use crate::wire::{AgentId, BufferPool, Compression, FrameBuf, Probe, Quiet, HEADER_LEN};

/// Largest outbound frame the router builds (the largest pool tier); a bigger message gets a
/// frame of its own.
pub(crate) const FRAME_OUT_BYTES: usize = 64 << 10;

/// The high-priority lane.
pub(crate) const LANE_HIGH: u8 = 0;
/// The normal lane.
pub(crate) const LANE_NORMAL: u8 = 1;

/// The lane a data message of `priority` travels in.
#[inline]
pub(crate) fn lane_of(priority: u8) -> u8 {
    if priority > 5 {
        LANE_HIGH
    } else {
        LANE_NORMAL
    }
}

#[derive(Debug, Default)]
struct Lane {
    open: Option<FrameBuf>,
    /// Raw bytes in `open`.
    open_bytes: usize,
}

/// How a connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closing {
    /// Open.
    No,
    /// A fatal error was queued: write what is queued, then close.
    AfterFlush,
    /// The peer went away: drop what is queued.
    Now,
}

// Every connection's `Conn` is paid for as long as it is open (`docs/BENCHMARKS.md`, "What an
// own connection costs"): a field that grows it should be one an idle connection needs.
#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<Conn>() <= 224);

/// The part of a [`Conn`] that only backpressure, closing and a queue longer than a frame use.
#[derive(Debug)]
pub(crate) struct Cold {
    /// Inputs paused until this connection drains below half its bound.
    pub waiting: Vec<Waker>,
    /// The other destinations its last input pushed past a bound, each waited for in turn.
    pub blocked_more: Vec<super::Dest>,
    /// Since when the queue has been past its bound (cleared when it drains to half): the
    /// slow-consumer clock.
    pub full_since_ns: Option<u64>,
    /// Closing after a flush: cut off at this time if the flush has not finished (`u64::MAX`).
    pub give_up_ns: u64,
    /// Per lane: full frames, not finished yet (finished when taken), with the raw bytes each
    /// accounts for.
    sealed: [VecDeque<(FrameBuf, usize)>; 2],
}

impl Default for Cold {
    fn default() -> Self {
        Cold {
            waiting: Vec::new(),
            blocked_more: Vec::new(),
            full_since_ns: None,
            give_up_ns: u64::MAX,
            sealed: [VecDeque::new(), VecDeque::new()],
        }
    }
}

/// One connection homed on this shard.
#[derive(Debug)]
pub(crate) struct Conn {
    /// Distinguishes this connection from earlier ones in the same slot.
    pub gen: u32,
    /// Agents registered on this connection (inline while there are at most four).
    pub agents: SmallVec<[AgentId; 4]>,
    lanes: [Lane; 2],
    /// Raw bytes queued for writing: the bound's measure.
    pub queued_bytes: usize,
    /// The writer task, parked while there is nothing to write.
    pub writer: Option<Waker>,
    pub last_frame_ns: u64,
    /// Since when a frame has been incomplete (the frame timeout), if one is.
    pub partial_since_ns: Option<u64>,
    pub closing: Closing,
    /// Broadcast/publish fan-out stamp: one copy per connection per message.
    pub fan_mark: u64,
    /// The destination whose bound this connection's last input pushed past, if any, and
    /// where the gate waits now.
    pub blocked_on: Option<super::Dest>,
    /// The `congestion_mark` under which an input last noted this connection past its bound.
    pub noted: u64,
    /// Tasks (reader, writer) still using the slot.
    pub users: u8,
    /// Peers were told (`PeerMsg::Congested`) that this connection's agents are past the bound.
    pub announced: bool,
    /// The writer, while a write is in progress: woken when the connection is cut off.
    pub closer: Option<Waker>,
    /// What only backpressure, closing and a queue longer than a frame use, allocated the first
    /// time one of them comes (and kept): an idle connection does not carry it.
    pub cold: Option<Box<Cold>>,
    /// Whether LZ4 paid on this connection's frames lately (`auto` compression).
    probe: Probe,
    /// Whether its next frame starts in a small buffer.
    quiet: Quiet,
}

impl Conn {
    pub fn new(gen: u32, now_ns: u64) -> Conn {
        Conn {
            gen,
            agents: SmallVec::new(),
            lanes: [Lane::default(), Lane::default()],
            queued_bytes: 0,
            writer: None,
            last_frame_ns: now_ns,
            partial_since_ns: None,
            closing: Closing::No,
            fan_mark: 0,
            blocked_on: None,
            noted: 0,
            users: 2,
            announced: false,
            closer: None,
            cold: None,
            probe: Probe::default(),
            quiet: Quiet::default(),
        }
    }

    /// Appends one encoded message to `lane`; returns the new queued byte count.
    #[inline]
    pub fn push(&mut self, lane: u8, raw: &[u8], pool: &mut BufferPool, batch_max: u32) -> usize {
        let l = &mut self.lanes[usize::from(lane)];
        let full = l.open.as_ref().is_some_and(|f| {
            !f.is_empty() && (f.len() + raw.len() > FRAME_OUT_BYTES || f.count() >= batch_max)
        });
        if full {
            if let Some(f) = l.open.take() {
                let sealed = &mut self.cold.get_or_insert_with(Box::default).sealed;
                sealed[usize::from(lane)].push_back((f, std::mem::take(&mut l.open_bytes)));
            }
        }
        let least = self.quiet.least(FRAME_OUT_BYTES);
        let frame = l
            .open
            .get_or_insert_with(|| FrameBuf::new(pool.get((HEADER_LEN + raw.len()).max(least))));
        frame.push_raw(raw);
        l.open_bytes += raw.len();
        self.queued_bytes += raw.len();
        if let Some(w) = self.writer.take() {
            w.wake();
        }
        self.queued_bytes
    }

    /// The next frame to write, high lane first; `None` when nothing is queued.
    pub fn take_frame(
        &mut self,
        compression: Compression,
        pool: &mut BufferPool,
    ) -> Option<(Vec<u8>, usize)> {
        for (i, l) in self.lanes.iter_mut().enumerate() {
            if let Some((f, bytes)) = self.cold.as_mut().and_then(|k| k.sealed[i].pop_front()) {
                self.quiet.sent(f.len());
                return Some((f.finish_probed(compression, &mut self.probe, pool), bytes));
            }
            if let Some(f) = l.open.take() {
                let bytes = std::mem::take(&mut l.open_bytes);
                self.quiet.sent(f.len());
                return Some((f.finish_probed(compression, &mut self.probe, pool), bytes));
            }
        }
        None
    }

    /// Drops everything queued, giving the buffers back.
    pub fn discard_output(&mut self, pool: &mut BufferPool) {
        for l in &mut self.lanes {
            if let Some(f) = l.open.take() {
                pool.put(f.into_inner());
            }
            l.open_bytes = 0;
        }
        if let Some(k) = &mut self.cold {
            for (f, _) in k.sealed.iter_mut().flat_map(|q| q.drain(..)) {
                pool.put(f.into_inner());
            }
        }
        self.queued_bytes = 0;
    }

    /// The part only backpressure, closing and a queue longer than a frame use, allocated on
    /// first use.
    pub fn cold(&mut self) -> &mut Cold {
        self.cold.get_or_insert_with(Box::default)
    }

    /// Wakes the inputs waiting for this connection to drain.
    #[inline]
    pub fn wake_waiting(&mut self) {
        if let Some(k) = &mut self.cold {
            k.waiting.drain(..).for_each(Waker::wake);
        }
    }

    /// Drained to half its bound: wakes the inputs waiting for it and stops the slow-consumer
    /// clock.
    #[inline]
    pub fn drained(&mut self) {
        self.wake_waiting();
        if let Some(k) = &mut self.cold {
            k.full_since_ns = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frame::{QUIET_AFTER, QUIET_FRAME};

    #[test]
    fn a_quiet_connection_frames_in_small_buffers_and_a_busy_one_in_large() {
        // Proves a connection that sends little (an idle agent's acks, one request at a time)
        // does not take a 64 KiB buffer for every frame, and one that fills its frames does.
        let mut pool = BufferPool::default();
        let mut c = Conn::new(1, 0);
        let take = |c: &mut Conn, pool: &mut BufferPool| {
            let (frame, _) = c.take_frame(Compression::None, pool).expect("a frame is queued");
            frame
        };
        c.push(LANE_NORMAL, &[7; 40], &mut pool, 64);
        let first = take(&mut c, &mut pool);
        assert_eq!(first.capacity(), QUIET_FRAME, "a new connection starts small");
        // A frame that outgrows its small buffer: the next ones start large.
        for _ in 0..40 {
            c.push(LANE_NORMAL, &[7; 100], &mut pool, 64);
        }
        let big = take(&mut c, &mut pool);
        assert!(big.len() > QUIET_FRAME);
        c.push(LANE_NORMAL, &[7; 40], &mut pool, 64);
        let after_big = take(&mut c, &mut pool);
        assert!(after_big.capacity() >= FRAME_OUT_BYTES, "{}", after_big.capacity());
        // Small frames in a row: back to small buffers.
        for _ in 1..QUIET_AFTER {
            c.push(LANE_NORMAL, &[7; 40], &mut pool, 64);
            let frame = take(&mut c, &mut pool);
            pool.put(frame);
        }
        c.push(LANE_NORMAL, &[7; 40], &mut pool, 64);
        assert_eq!(take(&mut c, &mut pool).capacity(), QUIET_FRAME);
    }

    #[test]
    fn frames_past_the_first_wait_in_the_cold_part_and_leave_in_order() {
        // Proves the queue of sealed frames (kept in the cold part since 2026-12-05, so that
        // an idle connection does not carry two empty queues): a connection with at most one
        // frame per lane queued allocates no cold part; past that, frames leave high lane
        // first, each lane oldest first, and a discard gives every buffer back.
        let mut pool = BufferPool::default();
        let mut c = Conn::new(1, 0);
        c.push(LANE_NORMAL, &[1; 100], &mut pool, 4);
        c.push(LANE_HIGH, &[2; 100], &mut pool, 4);
        assert!(c.cold.is_none(), "one open frame per lane needs no cold part");
        // Batches of at most 4 messages: 10 normal messages make frames of 4, 4 and 2.
        for i in 0..9u8 {
            c.push(LANE_NORMAL, &[10 + i; 100], &mut pool, 4);
        }
        c.push(LANE_HIGH, &[3; 100], &mut pool, 4);
        assert!(c.cold.is_some(), "sealed frames wait in the cold part");
        let mut order = Vec::new();
        while let Some((frame, bytes)) = c.take_frame(Compression::None, &mut pool) {
            order.push(bytes / 100);
            pool.put(frame);
        }
        assert_eq!(order, [2, 4, 4, 2], "high lane first, then the normal lane's frames in order");
        for _ in 0..10 {
            c.push(LANE_NORMAL, &[4; 100], &mut pool, 4);
        }
        assert!(c.cold.as_ref().is_some_and(|k| k.sealed[usize::from(LANE_NORMAL)].len() == 2));
        c.discard_output(&mut pool);
        assert_eq!(c.queued_bytes, 0);
        assert!(c.take_frame(Compression::None, &mut pool).is_none(), "discarded frames remain");
    }
}
