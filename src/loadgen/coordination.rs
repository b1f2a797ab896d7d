//! The protocol-free side of the coordination workloads, shared by the native and JSON
//! adapters: each agent's operation, the hold timers, the core's own figures, and what a grant,
//! a barrier release, a publication's delivery or completion means for them. The adapters
//! encode and decode; this decides.

use std::collections::VecDeque;
use std::sync::Arc;

use super::group::{Book, GroupConfig, Outgoing};
use super::native::{Proposal, Task};
use super::workload::{Completed, Coord, CoordStats, Delivered, Workload};

/// A [`Completed`] with this slot only wakes the core's side task (a new hold timer).
pub(super) const POKE: u8 = u8::MAX;

/// One agent's operation under a coordination workload (one at a time for locks and
/// barriers; board slots in use for fan-outs).
#[derive(Debug, Clone, Default)]
pub(super) struct Op {
    pub(super) intended_ns: u64,
    pub(super) sent_ns: u64,
    pub(super) granted_ns: u64,
    /// The lock index or barrier round.
    pub(super) target: u32,
    pub(super) measured: bool,
    /// Measured operations done.
    pub(super) done: u64,
    /// Fan-outs: board slots in use, and which of them are measured.
    pub(super) used: u64,
    pub(super) measured_slots: u64,
    /// `churn`: the operation's message id, and the error it met (resolved when it has left).
    pub(super) message_id: u64,
    pub(super) failed: Option<u16>,
    /// `consensus`: the next sequence number to commit (leader) or to apply (follower).
    pub(super) next: u64,
    /// `election`: the leader as this member knows it (global index; `u32::MAX` at first: the
    /// group's last member), the latest term it knows, whether it is dead (left), and its own
    /// candidacy (running, answers awaited, whether a higher member answered).
    pub(super) leader: u32,
    pub(super) term: u32,
    pub(super) dead: bool,
    pub(super) running: bool,
    pub(super) awaited: u32,
    pub(super) heard_ok: bool,
}

impl Op {
    /// This operation's next message, from `from` to `to`, sent at `sent_ns`: its id, whether
    /// it is measured and when it was meant to go are the operation's.
    pub(super) fn message(&self, from: u32, to: u32, sent_ns: u64) -> Outgoing {
        Outgoing {
            from,
            to,
            message_id: self.message_id,
            measured: self.measured,
            intended_ns: self.intended_ns,
            sent_ns,
        }
    }

    /// A new operation booked as `r`: its send times, target and whether it is measured.
    pub(super) fn begin(&mut self, r: &Outgoing) {
        (self.intended_ns, self.sent_ns, self.target, self.measured) =
            (r.intended_ns, r.sent_ns, r.to, r.measured);
    }
}

/// The coordination side of an adapter: per-agent operations, hold timers, own figures.
#[derive(Debug)]
pub(super) struct Coordination {
    pub(super) coord: Arc<Coord>,
    /// This core's channel, to wake its own side task.
    poke: Option<flume::Sender<Completed>>,
    pub(super) ops: Vec<Op>,
    /// Hold ends due (lock releases, passing agents leaving), in time order (every hold is as
    /// long).
    timers: VecDeque<(u64, u32)>,
    pub(super) stats: CoordStats,
    pub(super) hold_ns: u64,
    pub(super) lease_ms: u32,
    pub(super) fan: u64,
    /// `churn`: passing agents online at the last discovery (pages start below it).
    pub(super) online: u32,
    /// `consensus`: each leader's proposals in flight, by slot (empty for followers).
    pub(super) proposals: Vec<Box<[Proposal]>>,
    /// `delegation`: tasks this core's specialists handed out, and the free places (bounded by
    /// the coordinators' tasks in flight: one each).
    pub(super) tasks: Vec<Option<Task>>,
    pub(super) free_tasks: Vec<u32>,
    workload: Workload,
    first: u32,
    agents_total: u32,
}

impl Coordination {
    /// The state of a group with these settings, sharing `coord`; `poke` is the core's channel.
    pub(super) fn new(
        cfg: &GroupConfig,
        coord: Arc<Coord>,
        poke: Option<flume::Sender<Completed>>,
    ) -> Coordination {
        let hold = match cfg.workload {
            Workload::Locks { hold, .. } | Workload::Churn { stay: hold } => hold,
            _ => std::time::Duration::ZERO,
        };
        let hold_ms = hold.as_millis().min(u128::from(u32::MAX / 16)) as u32;
        Coordination {
            coord,
            poke,
            ops: vec![Op::default(); cfg.count as usize],
            timers: VecDeque::new(),
            stats: CoordStats::default(),
            hold_ns: hold.as_nanos() as u64,
            // Long enough that a sound run never sees a lease taken back under a holder.
            lease_ms: hold_ms.saturating_mul(10).max(5_000),
            fan: cfg.workload.deliveries_per_op(cfg.agents_total),
            online: cfg.agents_total,
            proposals: (0..cfg.count)
                .map(|l| {
                    let leads = matches!(cfg.workload, Workload::Consensus { .. })
                        && cfg.workload.originates(cfg.first + l, cfg.agents_total);
                    let slots = if leads { cfg.workload.window(u32::MAX) as usize } else { 0 };
                    vec![Proposal::default(); slots].into_boxed_slice()
                })
                .collect(),
            tasks: Vec::new(),
            free_tasks: Vec::new(),
            workload: cfg.workload,
            first: cfg.first,
            agents_total: cfg.agents_total,
        }
    }

    /// Agent `local`'s hold (a lock, a passing agent's stay) ends `hold_ns` after `now`.
    pub(super) fn start_timer(&mut self, now: u64, local: usize) {
        if self.timers.is_empty() {
            if let Some(p) = &self.poke {
                let _ = p.try_send(Completed { local: 0, slot: POKE, seq: 0 });
            }
        }
        self.timers.push_back((now + self.hold_ns, local as u32));
    }

    /// When the next hold ends.
    pub(super) fn next_timer_ns(&self) -> Option<u64> {
        self.timers.front().map(|&(due, _)| due)
    }

    /// The next agent whose hold ended by `now`.
    pub(super) fn due(&mut self, now: u64) -> Option<usize> {
        match self.timers.front() {
            Some(&(due, local)) if due <= now => {
                self.timers.pop_front();
                Some(local as usize)
            }
            _ => None,
        }
    }

    /// Agent `local` (id `id`) was granted lock `lock`: checks it is the lock it asked for and
    /// that nobody else holds it, counts the wait. Returns whether to release at once (no
    /// hold), or `None` for a grant that makes no sense.
    pub(super) fn granted(
        &mut self,
        local: usize,
        id: u32,
        lock: u64,
        book: &mut Book,
    ) -> Option<bool> {
        let now = book.now_ns();
        let op = &mut self.ops[local];
        if lock != u64::from(op.target) || op.granted_ns != 0 {
            return None;
        }
        op.granted_ns = now;
        if !self.coord.grant(op.target, id) {
            self.stats.holder_conflicts += 1;
        }
        if op.measured {
            book.waited((op.intended_ns, op.sent_ns));
        }
        if self.hold_ns == 0 {
            return Some(true);
        }
        self.start_timer(now, local);
        Some(false)
    }

    /// Agent `local` (id `id`) gives its lock back now: returns the lock's index, or `None`
    /// if it holds none.
    pub(super) fn release(&mut self, local: usize, id: u32, now: u64) -> Option<u32> {
        let op = &mut self.ops[local];
        if op.granted_ns == 0 {
            return None;
        }
        self.coord.release(op.target, id);
        self.stats.hold.saturating_record(now.saturating_sub(op.granted_ns).max(1));
        op.granted_ns = 0;
        Some(op.target)
    }

    /// Agent `local`'s lock release was acknowledged: its operation is done. Returns the agent
    /// whose window slot it freed.
    pub(super) fn released(&mut self, local: usize, book: &mut Book) -> Option<usize> {
        let op = &mut self.ops[local];
        op.done += u64::from(op.measured);
        book.op_done(local)
    }

    /// Agent `local` was released from barrier round `round`: the round's figures, the wait.
    /// Returns the agent to send from next and the round's release time (every agent of the
    /// round books as of it), or `None` for a release that makes no sense.
    pub(super) fn barrier_passed(
        &mut self,
        local: usize,
        round: u64,
        book: &mut Book,
    ) -> Result<Option<(usize, u64)>, ()> {
        let op = &mut self.ops[local];
        if round & 0xffff_ffff != u64::from(op.target) {
            return Err(());
        }
        let seen = self.coord.released(u64::from(op.target), book.now_ns());
        if let Some((round_ns, skew_ns)) = seen.complete {
            self.stats.rounds += u64::from(op.measured);
            if op.measured {
                self.stats.round_time.saturating_record(round_ns.max(1));
                self.stats.skew.saturating_record(skew_ns.max(1));
            }
        }
        if op.measured {
            op.done += 1;
            book.waited((op.intended_ns, op.sent_ns));
        }
        Ok(book.op_done(local).map(|l| (l, seen.released_at)))
    }

    /// A publication's board slot for agent `local` (global `global`): taken, opened.
    pub(super) fn open_publication(
        &mut self,
        local: usize,
        global: u32,
        seq: u32,
        measured: bool,
    ) -> u8 {
        let op = &mut self.ops[local];
        let slot = (!op.used).trailing_zeros().min(63) as u8;
        op.used |= 1 << slot;
        if measured {
            op.measured_slots |= 1 << slot;
        } else {
            op.measured_slots &= !(1 << slot);
        }
        self.coord.open(global, slot, seq, self.fan);
        slot
    }

    /// `k` of this core's agents got publication `seq` of `publisher` (slot `slot`), sent at
    /// `sent_ns` (the stamps: intended, actual).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn delivered(
        &mut self,
        publisher: u32,
        (slot, seq): (u8, u32),
        k: u64,
        sent_ns: u64,
        stamps: (u64, u64),
        measured: bool,
        book: &mut Book,
    ) {
        book.fan_delivered(k, sent_ns, measured);
        if self.coord.deliver(publisher, slot, seq, k) == Delivered::Completed {
            if measured {
                book.waited(stamps);
            }
            self.coord.notify(publisher, slot, seq);
        }
    }

    /// Another core says a publication of agent `c.local` is complete. Returns the agent whose
    /// window slot it freed.
    pub(super) fn completed(&mut self, c: Completed, book: &mut Book) -> Option<usize> {
        let local = c.local as usize;
        if local >= self.ops.len() {
            book.unexpected();
            return None;
        }
        if !self.coord.close_completed(self.first + c.local, c.slot, c.seq) {
            return None;
        }
        let op = &mut self.ops[local];
        op.used &= !(1u64 << c.slot);
        op.done += (op.measured_slots >> c.slot) & 1;
        book.fan_resolved(local)
    }

    /// The router refused a copy of agent `local`'s publication: whether that resolves it
    /// (as that error; false if it was complete already).
    pub(super) fn publication_failed(&mut self, local: usize, slot: u8, seq: u32) -> bool {
        let closed = self.coord.close_failed(self.first + local as u32, slot, seq);
        if closed {
            self.ops[local].used &= !(1u64 << slot);
        }
        closed
    }

    /// The core's figures, with each agent that starts operations counted for fairness.
    pub(super) fn figures(&self) -> CoordStats {
        let mut stats = self.stats.clone();
        for (l, op) in self.ops.iter().enumerate() {
            if self.workload.originates(self.first + l as u32, self.agents_total) {
                stats.agent(op.done);
            }
        }
        stats
    }
}
