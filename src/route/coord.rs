//! Locks and barriers as plain state machines: no I/O, no clock of their own, no lock.
//!
//! A sharded router keeps each lock and barrier on one owner shard (by id), so all requests for
//! it are serialized there; a shared-state router keeps one table behind its own guard. Either
//! way these types decide the outcome and the caller delivers it.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use crate::wire::control::{BarrierRelease, LockGranted};
use crate::wire::{AgentId, BarrierId, Control, ErrorCode, LockId};

/// Who asked, and where to send the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiter {
    /// The agent.
    pub agent: AgentId,
    /// The id of its request, echoed in every reply to it.
    pub request_id: u64,
    /// The shard the agent is homed on (0 for routers without shards).
    pub home: u16,
}

/// A lock handed to a waiter: send it a `lock_granted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// The new holder.
    pub waiter: Waiter,
    /// The lock.
    pub lock: LockId,
    /// The lease in force.
    pub lease_ms: u32,
}

impl Grant {
    /// The `lock_granted` its waiter receives.
    pub fn message(&self) -> Control {
        Control::LockGranted(LockGranted {
            request_id: self.waiter.request_id,
            agent_id: self.waiter.agent,
            lock_id: self.lock,
            lease_ms: self.lease_ms,
        })
    }
}

/// The `barrier_release` each waiter of a released barrier receives (`arrived`: how many were
/// released together).
pub fn releases(
    barrier: BarrierId,
    all: &[Waiter],
) -> impl Iterator<Item = (Waiter, Control)> + '_ {
    let arrived = all.len() as u32;
    all.iter().map(move |&w| {
        let release = BarrierRelease {
            request_id: w.request_id,
            agent_id: w.agent,
            barrier_id: barrier,
            arrived,
        };
        (w, Control::BarrierRelease(release))
    })
}

/// The immediate answer to a lock request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockOutcome {
    /// The requester holds the lock now (it was free, expired, or already its own).
    Granted {
        /// The lease in force.
        lease_ms: u32,
    },
    /// The requester waits at this 1-based place in the FIFO queue.
    Queued {
        /// 1-based place in the queue.
        position: u32,
    },
}

#[derive(Debug)]
struct LockState {
    holder: Waiter,
    lease_ms: u32,
    expires_ns: u64,
    /// Waiters in arrival order, each with the lease it asked for.
    queue: VecDeque<(Waiter, u32)>,
}

/// Every lock one owner is responsible for.
#[derive(Debug)]
pub struct LockTable {
    locks: FxHashMap<LockId, LockState>,
    /// Emptied queues of freed locks, for the next locks taken ([`SPARES`] at most): a round
    /// of locks taken, waited for and freed allocates nothing once warm.
    spare_queues: Vec<VecDeque<(Waiter, u32)>>,
    /// Lease used when a request asks for 0.
    default_lease_ms: u32,
}

impl LockTable {
    /// An empty table; requests with lease 0 get `default_lease_ms`.
    pub fn new(default_lease_ms: u32) -> LockTable {
        LockTable {
            locks: FxHashMap::default(),
            spare_queues: Vec::new(),
            default_lease_ms: default_lease_ms.max(1),
        }
    }

    /// Locks currently held.
    pub fn held(&self) -> usize {
        self.locks.len()
    }

    /// Handles a request at time `now_ns`. Expired leases are settled first, so their grants to
    /// waiters are pushed to `grants` before the outcome is decided.
    pub fn request(
        &mut self,
        waiter: Waiter,
        lock: LockId,
        lease_ms: u32,
        now_ns: u64,
        grants: &mut Vec<Grant>,
    ) -> LockOutcome {
        self.expire_one(lock, now_ns, grants);
        let lease_ms = if lease_ms == 0 { self.default_lease_ms } else { lease_ms };
        let Some(state) = self.locks.get_mut(&lock) else {
            self.locks.insert(
                lock,
                LockState {
                    holder: waiter,
                    lease_ms,
                    expires_ns: now_ns + ms_to_ns(lease_ms),
                    queue: self.spare_queues.pop().unwrap_or_default(),
                },
            );
            return LockOutcome::Granted { lease_ms };
        };
        if state.holder.agent == waiter.agent {
            state.holder = waiter;
            state.lease_ms = lease_ms;
            state.expires_ns = now_ns + ms_to_ns(lease_ms);
            return LockOutcome::Granted { lease_ms };
        }
        if let Some(i) = state.queue.iter().position(|(w, _)| w.agent == waiter.agent) {
            state.queue[i] = (waiter, lease_ms);
            return LockOutcome::Queued { position: i as u32 + 1 };
        }
        state.queue.push_back((waiter, lease_ms));
        LockOutcome::Queued { position: state.queue.len() as u32 }
    }

    /// Releases `lock` held by `agent`; the next waiter's grant is pushed to `grants`.
    pub fn release(
        &mut self,
        agent: AgentId,
        lock: LockId,
        now_ns: u64,
        grants: &mut Vec<Grant>,
    ) -> Result<(), ErrorCode> {
        self.expire_one(lock, now_ns, grants);
        match self.locks.get(&lock) {
            None => Err(ErrorCode::LockNotFound),
            Some(state) if state.holder.agent != agent => Err(ErrorCode::NotLockHolder),
            Some(_) => {
                self.pass_on(lock, now_ns, grants);
                Ok(())
            }
        }
    }

    /// Settles every expired lease at `now_ns`.
    pub fn expire(&mut self, now_ns: u64, grants: &mut Vec<Grant>) {
        let expired: Vec<LockId> =
            self.locks.iter().filter(|(_, s)| s.expires_ns <= now_ns).map(|(&id, _)| id).collect();
        for lock in expired {
            self.pass_on(lock, now_ns, grants);
        }
    }

    /// Releases everything `agent` holds and removes it from every queue (it is gone).
    pub fn remove_agent(&mut self, agent: AgentId, now_ns: u64, grants: &mut Vec<Grant>) {
        let mut held = Vec::new();
        for (&id, state) in self.locks.iter_mut() {
            state.queue.retain(|(w, _)| w.agent != agent);
            if state.holder.agent == agent {
                held.push(id);
            }
        }
        for lock in held {
            self.pass_on(lock, now_ns, grants);
        }
    }

    fn expire_one(&mut self, lock: LockId, now_ns: u64, grants: &mut Vec<Grant>) {
        if self.locks.get(&lock).is_some_and(|s| s.expires_ns <= now_ns) {
            self.pass_on(lock, now_ns, grants);
        }
    }

    /// Gives `lock` to the head of its queue, or frees it.
    fn pass_on(&mut self, lock: LockId, now_ns: u64, grants: &mut Vec<Grant>) {
        let Some(state) = self.locks.get_mut(&lock) else { return };
        match state.queue.pop_front() {
            Some((waiter, lease_ms)) => {
                state.holder = waiter;
                state.lease_ms = lease_ms;
                state.expires_ns = now_ns + ms_to_ns(lease_ms);
                grants.push(Grant { waiter, lock, lease_ms });
            }
            None => {
                if let Some(mut state) = self.locks.remove(&lock) {
                    let cap = state.queue.capacity();
                    if self.spare_queues.len() < SPARES && (1..=SPARE_CAPACITY).contains(&cap) {
                        state.queue.clear();
                        self.spare_queues.push(state.queue);
                    }
                }
            }
        }
    }
}

/// Most emptied containers a table keeps for reuse, and the largest capacity kept.
const SPARES: usize = 64;
const SPARE_CAPACITY: usize = 256;

fn ms_to_ns(ms: u32) -> u64 {
    u64::from(ms) * 1_000_000
}

/// The immediate answer to a barrier arrival.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BarrierOutcome {
    /// Not full yet.
    Waiting {
        /// Arrivals so far.
        arrived: u32,
        /// Arrivals needed.
        expected: u32,
    },
    /// Full: release every one of these (the arriving agent included); the id is free again.
    Released(Vec<Waiter>),
}

/// Every barrier one owner is responsible for.
#[derive(Debug, Default)]
pub struct BarrierTable {
    barriers: FxHashMap<BarrierId, (u32, Vec<Waiter>)>,
    /// Emptied lists of released barriers ([`BarrierTable::recycle`]), for the next barriers.
    spare: Vec<Vec<Waiter>>,
}

impl BarrierTable {
    /// Barriers with at least one arrival.
    pub fn open(&self) -> usize {
        self.barriers.len()
    }

    /// Records an arrival. The first arrival fixes `expected`; 0 is refused. An agent already
    /// waiting is not counted twice.
    pub fn enter(
        &mut self,
        waiter: Waiter,
        barrier: BarrierId,
        expected: u32,
    ) -> Result<BarrierOutcome, ErrorCode> {
        let (want, arrived) = match self.barriers.get_mut(&barrier) {
            Some(entry) => entry,
            None if expected == 0 => return Err(ErrorCode::InvalidRequest),
            None => {
                let arrived = self.spare.pop().unwrap_or_default();
                self.barriers.entry(barrier).or_insert((expected, arrived))
            }
        };
        match arrived.iter_mut().find(|w| w.agent == waiter.agent) {
            Some(w) => *w = waiter,
            None => arrived.push(waiter),
        }
        if arrived.len() as u32 >= *want {
            let (_, all) = self.barriers.remove(&barrier).unwrap_or_default();
            return Ok(BarrierOutcome::Released(all));
        }
        Ok(BarrierOutcome::Waiting { arrived: arrived.len() as u32, expected: *want })
    }

    /// Releases everyone waiting at `barrier` now; `None` if nobody waits there.
    pub fn force(&mut self, barrier: BarrierId) -> Option<Vec<Waiter>> {
        self.barriers.remove(&barrier).map(|(_, arrived)| arrived)
    }

    /// Takes back the list of a released barrier, once its releases are sent, for the next
    /// barrier: a round of barriers allocates nothing once warm.
    pub fn recycle(&mut self, mut all: Vec<Waiter>) {
        if self.spare.len() < SPARES && (1..=SPARE_CAPACITY).contains(&all.capacity()) {
            all.clear();
            self.spare.push(all);
        }
    }

    /// Removes a departed agent from every barrier it was waiting at.
    pub fn remove_agent(&mut self, agent: AgentId) {
        for (_, arrived) in self.barriers.values_mut() {
            arrived.retain(|w| w.agent != agent);
        }
        self.barriers.retain(|_, (_, arrived)| !arrived.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(agent: u32, request_id: u64) -> Waiter {
        Waiter { agent: AgentId(agent), request_id, home: 0 }
    }

    const L: LockId = LockId(9);

    #[test]
    fn lock_queue_is_fifo_and_release_passes_it_on() {
        // Proves grant / queue positions / FIFO hand-over / holder-only release.
        let mut t = LockTable::new(1000);
        let mut g = Vec::new();
        assert_eq!(t.request(w(1, 10), L, 0, 0, &mut g), LockOutcome::Granted { lease_ms: 1000 });
        assert_eq!(t.request(w(2, 20), L, 0, 0, &mut g), LockOutcome::Queued { position: 1 });
        assert_eq!(t.request(w(3, 30), L, 0, 0, &mut g), LockOutcome::Queued { position: 2 });
        assert_eq!(t.request(w(2, 21), L, 0, 0, &mut g), LockOutcome::Queued { position: 1 });
        assert_eq!(t.release(AgentId(2), L, 0, &mut g), Err(ErrorCode::NotLockHolder));
        assert_eq!(t.release(AgentId(1), LockId(8), 0, &mut g), Err(ErrorCode::LockNotFound));
        t.release(AgentId(1), L, 0, &mut g).unwrap();
        assert_eq!(g, vec![Grant { waiter: w(2, 21), lock: L, lease_ms: 1000 }]);
        g.clear();
        t.release(AgentId(2), L, 0, &mut g).unwrap();
        assert_eq!(g[0].waiter, w(3, 30));
        g.clear();
        t.release(AgentId(3), L, 0, &mut g).unwrap();
        assert!(g.is_empty());
        assert_eq!(t.held(), 0);
    }

    #[test]
    fn expired_lease_goes_to_the_next_waiter() {
        // Proves a lease ends at its expiry, by tick or by the next request.
        let mut t = LockTable::new(1000);
        let mut g = Vec::new();
        t.request(w(1, 1), L, 5, 0, &mut g);
        t.request(w(2, 2), L, 7, 0, &mut g);
        t.expire(4_999_999, &mut g);
        assert!(g.is_empty());
        t.expire(5_000_000, &mut g);
        assert_eq!(g, vec![Grant { waiter: w(2, 2), lock: L, lease_ms: 7 }]);
        g.clear();
        assert_eq!(
            t.request(w(3, 3), L, 0, 12_000_000, &mut g),
            LockOutcome::Granted { lease_ms: 1000 }
        );
        assert!(g.is_empty(), "agent 2's lease expired with nobody waiting");
    }

    #[test]
    fn a_departed_agent_frees_its_locks_and_leaves_queues() {
        // Proves disconnect cleanup: held locks pass on, queued entries vanish.
        let mut t = LockTable::new(1000);
        let mut g = Vec::new();
        t.request(w(1, 1), L, 0, 0, &mut g);
        t.request(w(2, 2), L, 0, 0, &mut g);
        t.request(w(3, 3), L, 0, 0, &mut g);
        t.request(w(2, 4), LockId(10), 0, 0, &mut g);
        t.remove_agent(AgentId(2), 0, &mut g);
        assert!(g.is_empty());
        t.remove_agent(AgentId(1), 0, &mut g);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].waiter, w(3, 3));
        assert_eq!(t.held(), 1);
    }

    #[test]
    fn barrier_releases_everyone_at_the_expected_count() {
        // Proves the first arrival fixes the count, duplicates count once, and the id is reused.
        let mut b = BarrierTable::default();
        let id = BarrierId(4);
        assert_eq!(b.enter(w(1, 1), id, 0), Err(ErrorCode::InvalidRequest));
        assert_eq!(
            b.enter(w(1, 1), id, 3),
            Ok(BarrierOutcome::Waiting { arrived: 1, expected: 3 })
        );
        assert_eq!(
            b.enter(w(1, 5), id, 9),
            Ok(BarrierOutcome::Waiting { arrived: 1, expected: 3 })
        );
        assert_eq!(
            b.enter(w(2, 2), id, 9),
            Ok(BarrierOutcome::Waiting { arrived: 2, expected: 3 })
        );
        assert_eq!(
            b.enter(w(3, 3), id, 9),
            Ok(BarrierOutcome::Released(vec![w(1, 5), w(2, 2), w(3, 3)]))
        );
        assert_eq!(b.open(), 0);
        assert_eq!(
            b.enter(w(1, 6), id, 2),
            Ok(BarrierOutcome::Waiting { arrived: 1, expected: 2 })
        );
        b.remove_agent(AgentId(1));
        assert_eq!(b.open(), 0);
    }
}
