//! What shards say to each other, and the bounded outbox each shard keeps per peer.
//!
//! Data crosses shards in batches: one [`PeerBatch`] carries many records (a message's raw bytes
//! plus a small header), so a channel operation and a cross-core wake are shared by a whole
//! routing pass. Control events travel as their own [`PeerMsg`] variants on a second channel, the
//! control lane, so that registration, sync rounds, stats, locks and barriers never wait behind
//! data; each lane is FIFO, and nothing relies on order between the two (see ARCHITECTURE.md).

use std::collections::VecDeque;
use std::task::Waker;

use super::coord::Waiter;
use crate::wire::{AgentId, AgentInfo, BarrierId, BufferPool, LockId, ShardStats, TopicId};

/// Bytes of the header in front of each record in a [`PeerBatch`].
pub(crate) const RECORD_HEADER: usize = 24;
/// A peer batch is sealed once it reaches this size (the largest pool tier).
pub const PEER_BATCH_BYTES: usize = 64 << 10;
/// Emptied batch buffers that may wait to go back to the shard that filled them, per pair of
/// shards (the return lane: [`Returns`]).
pub const RETURNS_MAX: usize = 4;

/// The return lane between two shards: a batch's buffer goes back to the shard that filled it
/// once its records are delivered, so that a flow that only goes one way allocates nothing on
/// the sending side (without it, the buffer ended in the receiving shard's pool and the sender
/// allocated one per batch). Bounded ([`RETURNS_MAX`]); never waited on: a full lane leaves
/// the buffer in the receiver's pool, an empty one sends the sender to its own pool.
#[derive(Debug)]
pub struct Returns {
    /// This shard's buffers, back from the peer.
    pub ours: flume::Receiver<Vec<u8>>,
    /// The peer's buffers, back to it.
    pub theirs: flume::Sender<Vec<u8>>,
}

impl Returns {
    /// Two ends of the lanes between shards `a` and `b`: `(a's, b's)`.
    pub fn pair() -> (Returns, Returns) {
        let (to_a, a_ours) = flume::bounded(RETURNS_MAX);
        let (to_b, b_ours) = flume::bounded(RETURNS_MAX);
        (Returns { ours: a_ours, theirs: to_b }, Returns { ours: b_ours, theirs: to_a })
    }
}

/// How the receiving shard delivers a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum RecordKind {
    /// To the agent `target` (direct, request, reply).
    Direct = 1,
    /// To every online local agent of type `target` (0 = all) but `sender`.
    Broadcast = 2,
    /// To every local subscriber of topic `target` but `sender`.
    Publish = 3,
    /// A router → client control message for the agent `target`.
    Control = 4,
}

impl RecordKind {
    fn from_u8(v: u8) -> Option<RecordKind> {
        match v {
            1 => Some(RecordKind::Direct),
            2 => Some(RecordKind::Broadcast),
            3 => Some(RecordKind::Publish),
            4 => Some(RecordKind::Control),
            _ => None,
        }
    }
}

/// One record, as read back from a batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record<'a> {
    pub kind: RecordKind,
    /// Output lane at the recipient (0 = high, 1 = normal).
    pub lane: u8,
    pub target: u32,
    pub sender: AgentId,
    /// `CLOCK_MONOTONIC` ns past which the message is expired, or 0.
    pub deadline_ns: u64,
    /// The message exactly as the client encoded it (or as the router encoded a control reply).
    pub raw: &'a [u8],
}

/// Many records for one peer, in one pooled buffer.
#[derive(Debug)]
pub struct PeerBatch {
    buf: Vec<u8>,
    count: u32,
}

impl PeerBatch {
    fn new(buf: Vec<u8>) -> PeerBatch {
        PeerBatch { buf, count: 0 }
    }

    /// Records in the batch.
    pub fn len(&self) -> u32 {
        self.count
    }

    /// Whether the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn push(&mut self, r: &Record<'_>) {
        let mut header = [0u8; RECORD_HEADER];
        header[0] = r.kind as u8;
        header[1] = r.lane;
        header[4..8].copy_from_slice(&r.target.to_le_bytes());
        header[8..12].copy_from_slice(&r.sender.0.to_le_bytes());
        header[12..16].copy_from_slice(&(r.raw.len() as u32).to_le_bytes());
        header[16..24].copy_from_slice(&r.deadline_ns.to_le_bytes());
        self.buf.extend_from_slice(&header);
        self.buf.extend_from_slice(r.raw);
        self.count += 1;
    }

    /// Iterates the records. Batches are built by this module only, so a malformed one is a bug:
    /// iteration stops at the first inconsistency rather than panicking.
    pub(crate) fn records(&self) -> impl Iterator<Item = Record<'_>> {
        let mut rest = &self.buf[..];
        std::iter::from_fn(move || {
            let (h, after) = rest.split_first_chunk::<RECORD_HEADER>()?;
            let word = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
            let len = word(12) as usize;
            let raw = after.get(..len)?;
            rest = &after[len..];
            let mut deadline = [0u8; 8];
            deadline.copy_from_slice(&h[16..24]);
            Some(Record {
                kind: RecordKind::from_u8(h[0])?,
                lane: h[1],
                target: word(4),
                sender: AgentId(word(8)),
                deadline_ns: u64::from_le_bytes(deadline),
                raw,
            })
        })
    }

    /// The buffer, for the receiving shard's pool.
    pub(crate) fn into_buf(self) -> Vec<u8> {
        self.buf
    }

    fn bytes(&self) -> usize {
        self.buf.len()
    }
}

/// A message from one shard to another.
#[derive(Debug)]
pub enum PeerMsg {
    /// Data and control records to deliver.
    Data(PeerBatch),
    /// To the id's owner shard: may `home` register `agent`?
    Claim {
        /// The id asked for.
        agent: AgentId,
        /// Correlates the reply with the pending registration.
        token: u64,
    },
    /// The owner's answer to [`PeerMsg::Claim`].
    ClaimReply {
        /// Correlates with the claim.
        token: u64,
        /// False when the id is live elsewhere.
        granted: bool,
    },
    /// `agent` is now homed on the sending shard.
    AgentUp {
        /// The agent.
        agent: AgentId,
    },
    /// `agent`, homed on the sending shard, is gone.
    AgentDown {
        /// The agent.
        agent: AgentId,
    },
    /// The sending shard now has (or no longer has) local subscribers of `topic`.
    TopicInterest {
        /// The topic.
        topic: TopicId,
        /// Whether it has subscribers.
        on: bool,
    },
    /// Answer [`PeerMsg::SyncAck`] once everything sent before this is applied (FIFO).
    Sync {
        /// Echoed.
        token: u64,
    },
    /// Everything sent before the matching [`PeerMsg::Sync`] is applied.
    SyncAck {
        /// The sync's token.
        token: u64,
    },
    /// To the lock's owner shard.
    LockRequest {
        /// The requester.
        waiter: Waiter,
        /// The lock.
        lock: LockId,
        /// Requested lease.
        lease_ms: u32,
    },
    /// To the lock's owner shard.
    LockRelease {
        /// The releaser.
        waiter: Waiter,
        /// The lock.
        lock: LockId,
    },
    /// To the barrier's owner shard.
    BarrierEnter {
        /// The arriving agent.
        waiter: Waiter,
        /// The barrier.
        barrier: BarrierId,
        /// Count asked for.
        expected: u32,
    },
    /// To the barrier's owner shard: release everyone now.
    BarrierForce {
        /// The agent asking.
        waiter: Waiter,
        /// The barrier.
        barrier: BarrierId,
    },
    /// List local agents matching the filter.
    DiscoverRequest {
        /// Echoed.
        token: u64,
        /// Agent type, 0 = any.
        agent_type: u32,
        /// Required capability.
        capability: Option<String>,
        /// Leave the capabilities out ([`crate::wire::control::Discover::names_only`]).
        names_only: bool,
    },
    /// The matches of one shard.
    DiscoverReply {
        /// The request's token.
        token: u64,
        /// Matching local agents.
        agents: Vec<AgentInfo>,
    },
    /// The connection holding these agents (homed on the sending shard) is past its queue bound
    /// (`on`), or has drained to half of it: under backpressure, pause (or resume) the clients
    /// that send to them.
    Congested {
        /// The agents of that connection.
        agents: Vec<AgentId>,
        /// Past the bound.
        on: bool,
    },
    /// A client shares these cores until `until` (ns, [`crate::clock::now_ns`]): the shard
    /// among them stops watching its sockets until then.
    ShareCores {
        /// Core numbers.
        cores: Vec<u32>,
        /// Until when.
        until: u64,
    },
    /// Send your counters.
    StatsRequest {
        /// Echoed.
        token: u64,
    },
    /// One shard's counters.
    StatsReply {
        /// The request's token.
        token: u64,
        /// The counters.
        stats: Box<ShardStats>,
    },
}

impl PeerMsg {
    fn bytes(&self) -> usize {
        match self {
            PeerMsg::Data(b) => b.bytes(),
            _ => 64,
        }
    }
}

/// Which of the two channels to a peer a message travels on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Data records (direct, broadcast, publish): bounded by `--peer-queue-bytes`, and the only
    /// lane whose sender can be paused.
    Data = 0,
    /// Everything else: registration, sync rounds, discovery, stats, locks, barriers,
    /// congestion notices, and router → client control records (replies, errors, grants). Never
    /// waits behind data.
    Control = 1,
}

/// One lane's queue: sealed messages plus the batch being filled.
#[derive(Debug, Default)]
struct LaneOut {
    open: Option<PeerBatch>,
    queue: VecDeque<PeerMsg>,
    /// Bytes held here.
    bytes: usize,
    /// The lane's sender task, parked while there is nothing to send.
    sender: Option<Waker>,
}

impl LaneOut {
    fn seal(&mut self) {
        if let Some(b) = self.open.take() {
            self.queue.push_back(PeerMsg::Data(b));
        }
    }

    fn take(&mut self) -> Option<PeerMsg> {
        let msg = match self.queue.pop_front() {
            Some(m) => m,
            None => PeerMsg::Data(self.open.take()?),
        };
        self.bytes = self.bytes.saturating_sub(msg.bytes());
        Some(msg)
    }

    fn push_record(
        &mut self,
        r: &Record<'_>,
        pool: &mut BufferPool,
        returned: Option<&flume::Receiver<Vec<u8>>>,
    ) -> usize {
        let need = RECORD_HEADER + r.raw.len();
        if self.open.as_ref().is_some_and(|b| !b.is_empty() && b.bytes() + need > PEER_BATCH_BYTES)
        {
            self.seal();
        }
        let batch = self.open.get_or_insert_with(|| {
            let back = returned.and_then(|r| r.try_recv().ok());
            PeerBatch::new(back.unwrap_or_else(|| pool.get(PEER_BATCH_BYTES)))
        });
        batch.push(r);
        self.bytes += need;
        need
    }

    fn wake_sender(&mut self) {
        if let Some(w) = self.sender.take() {
            w.wake();
        }
    }
}

/// Everything waiting to go to one peer shard, on its two lanes.
#[derive(Debug, Default)]
pub(crate) struct PeerOut {
    lanes: [LaneOut; 2],
    /// Data bytes held here, the bound's measure (control is bounded by the requests and data
    /// messages it answers).
    pub queued_bytes: usize,
    /// High-water mark of `queued_bytes`.
    pub queued_bytes_hwm: usize,
    /// Inputs paused until the data lane drains below half its bound.
    pub waiting: Vec<Waker>,
    /// The `congestion_mark` under which an input last noted this queue past its bound, and
    /// its fan-outs to this peer's full connections.
    pub noted: u64,
    pub fan_noted: u64,
    /// The return lane with this peer, once the router wired it.
    pub returns: Option<Returns>,
}

impl PeerOut {
    /// Gives back what a burst left in the lanes' queues once they are nearly empty (see
    /// `TRANSIENT_KEEP` in the module above); whether it did.
    pub fn ebb(&mut self) -> bool {
        let mut ebbed = false;
        for l in &mut self.lanes {
            if super::burst_passed(l.queue.capacity(), l.queue.len()) {
                l.queue.shrink_to(super::TRANSIENT_KEEP);
                ebbed = true;
            }
        }
        ebbed
    }

    /// Appends a record to its lane's open batch (control records go on the control lane),
    /// sealing it first if the record would overflow it, and wakes that lane's sender.
    pub fn push_record(&mut self, r: &Record<'_>, pool: &mut BufferPool) {
        let lane = if r.kind == RecordKind::Control { Lane::Control } else { Lane::Data };
        let l = &mut self.lanes[lane as usize];
        let need = l.push_record(r, pool, self.returns.as_ref().map(|r| &r.ours));
        l.wake_sender();
        if lane == Lane::Data {
            self.queued_bytes += need;
            self.queued_bytes_hwm = self.queued_bytes_hwm.max(self.queued_bytes);
        }
    }

    /// Queues a control event on the control lane, after any control record before it.
    pub fn push_msg(&mut self, msg: PeerMsg) {
        let l = &mut self.lanes[Lane::Control as usize];
        l.seal();
        l.bytes += msg.bytes();
        l.queue.push_back(msg);
        l.wake_sender();
    }

    /// Takes the next message of `lane` for its channel, or registers the lane's sender.
    pub fn poll_take(&mut self, lane: Lane, cx: &mut std::task::Context<'_>) -> Option<PeerMsg> {
        let l = &mut self.lanes[lane as usize];
        match l.take() {
            Some(msg) => {
                if lane == Lane::Data {
                    self.queued_bytes = self.queued_bytes.saturating_sub(msg.bytes());
                }
                Some(msg)
            }
            None => {
                l.sender = Some(cx.waker().clone());
                None
            }
        }
    }

    /// Takes the next message of `lane`, if any (tests pump shards with this).
    #[cfg(test)]
    pub fn take(&mut self, lane: Lane) -> Option<PeerMsg> {
        self.poll_take(lane, &mut std::task::Context::from_waker(Waker::noop()))
    }

    /// Bytes held on both lanes (the shard's memory measure).
    pub fn bytes(&self) -> usize {
        self.lanes[0].bytes + self.lanes[1].bytes
    }

    /// Whether nothing is waiting.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.lanes.iter().all(|l| l.queue.is_empty() && l.open.is_none())
    }

    /// Wakes both senders (shutdown).
    pub fn wake_senders(&mut self) {
        self.lanes.iter_mut().for_each(LaneOut::wake_sender);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_in_order_and_batches_seal_at_their_size() {
        // Proves the record format round-trips and large traffic is split into bounded batches.
        let mut pool = BufferPool::default();
        let mut out = PeerOut::default();
        let raw = [7u8; 1000];
        for i in 0..100u32 {
            out.push_record(
                &Record {
                    kind: RecordKind::Direct,
                    lane: 1,
                    target: i,
                    sender: AgentId(i + 1),
                    deadline_ns: u64::from(i),
                    raw: &raw,
                },
                &mut pool,
            );
        }
        out.push_msg(PeerMsg::Sync { token: 5 });
        assert!(matches!(out.take(Lane::Control), Some(PeerMsg::Sync { token: 5 })));
        assert!(out.take(Lane::Control).is_none(), "control travels on its own lane");
        let mut seen = 0u32;
        let mut batches = 0;
        while let Some(msg) = out.take(Lane::Data) {
            match msg {
                PeerMsg::Data(b) => {
                    batches += 1;
                    assert!(b.bytes() <= PEER_BATCH_BYTES);
                    for r in b.records() {
                        assert_eq!(
                            (r.target, r.sender.0, r.deadline_ns),
                            (seen, seen + 1, seen as u64)
                        );
                        assert_eq!(r.raw.len(), 1000);
                        seen += 1;
                    }
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(batches, 2);
        assert_eq!(out.queued_bytes, 0);
        assert!(out.is_empty());
    }
}
