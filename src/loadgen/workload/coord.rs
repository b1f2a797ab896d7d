//! [`Coord`], the shared view of a coordination run: the board of publications and their
//! deliveries, lock holders, barrier rounds, and the counters ([`CoordStats`]) that become the
//! report's [`CoordResult`].

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::*;
use crate::metrics::{histogram, LatencySummary};
use crate::transport::uring::Doorbell;

/// A publication's board entry: `seq` (low 32 bits) in the high half, then the state.
const CLOSED: u64 = 1 << 31;
const DONE: u64 = 1 << 30;
const REMAINING: u64 = DONE - 1;

/// What a delivery did to its publication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    /// Counted; others are still to come.
    Counted,
    /// This was the last: the publication is complete.
    Completed,
    /// The publication was already complete or given up (a late or surplus copy).
    Stale,
}

/// A barrier round's shared figures.
#[derive(Debug)]
struct Round {
    first_enter: AtomicU64,
    /// Set once, by the first agent to see the release: the round's release time, and what
    /// every agent of the round decides by (whether to enter the next one).
    released_at: AtomicU64,
    last_release: AtomicU64,
    released: AtomicU32,
}

impl Round {
    fn new() -> Round {
        Round {
            first_enter: AtomicU64::new(u64::MAX),
            released_at: AtomicU64::new(u64::MAX),
            last_release: AtomicU64::new(0),
            released: AtomicU32::new(0),
        }
    }
}

/// What one barrier release tells its agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundSeen {
    /// When the round released (the first agent to see it): agents enter the next round when
    /// this is before the end of sending, all of them or none.
    pub released_at: u64,
    /// This was the round's last release: `(round time, skew)` in ns, first entry to last
    /// release and first release to last.
    pub complete: Option<(u64, u64)>,
}

/// A message to an agent core from another: a publication of one of its agents is complete.
#[derive(Debug, Clone, Copy)]
pub struct Completed {
    /// The publisher's index in its core.
    pub local: u32,
    /// The board slot.
    pub slot: u8,
    /// The publication's sequence number (low 32 bits).
    pub seq: u32,
}

/// The view of a run that several agent cores share (see the module docs).
#[derive(Debug)]
pub struct Coord {
    workload: Workload,
    agents: u32,
    /// Agents of each agent core, `(first global index, count)`, in core order.
    spans: Vec<(u32, u32)>,
    /// Each agent core's channel for [`Completed`].
    done_tx: Vec<flume::Sender<Completed>>,
    /// Each agent core's doorbell, rung after a send on its channel: it ends the doze of the
    /// core's socket ring (`uring::Ring::set_peers`). None where the eventfd could not be made
    /// (that core's ring then never dozes).
    bells: Vec<Option<Arc<Doorbell>>>,
    /// `fanout`/`broadcast`: per publisher, [`FAN_WINDOW_MAX`]-bounded slots.
    board: Box<[AtomicU64]>,
    slots_per_agent: u32,
    /// `locks`: the agent id holding each lock as its agents see it, 0 when free.
    holders: Box<[AtomicU32]>,
    /// `barriers`: rounds `r` use entry `r % 4` (no two rounds four apart are ever open).
    rounds: [Round; 4],
    /// `election`: per group, the latest term announced and its leader (`term << 32 | leader`).
    terms: Box<[AtomicU64]>,
}

impl Coord {
    /// The shared view of a run of `agents` agents split over `spans`, `window` operations in
    /// flight per agent; returns it and each core's receiver of completions.
    pub fn new(
        workload: Workload,
        agents: u32,
        spans: Vec<(u32, u32)>,
        window: u32,
    ) -> (Coord, Vec<flume::Receiver<Completed>>) {
        let slots_per_agent = if workload.fans_out() { window.clamp(1, FAN_WINDOW_MAX) } else { 0 };
        let (mut done_tx, mut done_rx) = (Vec::new(), Vec::new());
        for &(_, count) in &spans {
            // Each publication is completed once: in flight at most count × window (and a few pokes).
            // Revivals of killed leaders (`election`) are one per agent at most.
            let (tx, rx) = flume::bounded(count as usize * (slots_per_agent as usize + 1) + 4);
            done_tx.push(tx);
            done_rx.push(rx);
        }
        let board_len =
            if workload.fans_out() { agents as usize * slots_per_agent as usize } else { 0 };
        let locks = match workload {
            Workload::Locks { locks, .. } => locks as usize,
            _ => 0,
        };
        let bells = done_tx.iter().map(|_| Doorbell::new().ok()).collect();
        let coord = Coord {
            workload,
            agents,
            spans,
            done_tx,
            bells,
            board: (0..board_len).map(|_| AtomicU64::new(CLOSED)).collect(),
            slots_per_agent,
            holders: (0..locks).map(|_| AtomicU32::new(0)).collect(),
            rounds: [Round::new(), Round::new(), Round::new(), Round::new()],
            terms: (0..if matches!(workload, Workload::Election { .. }) {
                workload.groups(agents)
            } else {
                0
            })
                .map(|_| AtomicU64::new(0))
                .collect(),
        };
        (coord, done_rx)
    }

    /// Agent core `core`'s channel, to wake its own side task.
    pub fn poke(&self, core: usize) -> Option<flume::Sender<Completed>> {
        self.done_tx.get(core).cloned()
    }

    /// Agent core `core`'s doorbell, which the other cores ring after sending on its channel.
    pub fn bell(&self, core: usize) -> Option<Arc<Doorbell>> {
        self.bells.get(core).cloned().flatten()
    }

    /// The workload.
    pub fn workload(&self) -> Workload {
        self.workload
    }

    fn entry(&self, publisher: u32, slot: u8) -> Option<&AtomicU64> {
        if u32::from(slot) >= self.slots_per_agent {
            return None;
        }
        self.board.get(publisher as usize * self.slots_per_agent as usize + usize::from(slot))
    }

    /// Opens a publication of agent `publisher` (global index) in `slot`, expecting `fan`
    /// deliveries. Done before it is sent.
    pub fn open(&self, publisher: u32, slot: u8, seq: u32, fan: u64) {
        if let Some(e) = self.entry(publisher, slot) {
            e.store((u64::from(seq) << 32) | fan.min(REMAINING), Ordering::Release);
        }
    }

    /// `k` recipients on one connection got publication `seq` of `publisher` in `slot`.
    pub fn deliver(&self, publisher: u32, slot: u8, seq: u32, k: u64) -> Delivered {
        let Some(e) = self.entry(publisher, slot) else { return Delivered::Stale };
        let mut cur = e.load(Ordering::Acquire);
        loop {
            let (tag, state) = ((cur >> 32) as u32, cur & 0xffff_ffff);
            if tag != seq || state & (CLOSED | DONE) != 0 {
                return Delivered::Stale;
            }
            let left = (state & REMAINING).saturating_sub(k);
            let next = (cur & !0xffff_ffff) | if left == 0 { DONE } else { left };
            match e.compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) if left == 0 => return Delivered::Completed,
                Ok(_) => return Delivered::Counted,
                Err(now) => cur = now,
            }
        }
    }

    /// The publisher's core closes a completed publication; false if it was already closed
    /// (given up on after an error).
    pub fn close_completed(&self, publisher: u32, slot: u8, seq: u32) -> bool {
        let Some(e) = self.entry(publisher, slot) else { return false };
        let done = (u64::from(seq) << 32) | DONE;
        e.compare_exchange(
            done,
            (u64::from(seq) << 32) | CLOSED,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_ok()
    }

    /// The publisher's core closes a publication the router refused a copy of; false if it
    /// was already closed.
    pub fn close_failed(&self, publisher: u32, slot: u8, seq: u32) -> bool {
        let Some(e) = self.entry(publisher, slot) else { return false };
        let mut cur = e.load(Ordering::Acquire);
        loop {
            if (cur >> 32) as u32 != seq || cur & CLOSED != 0 {
                return false;
            }
            let next = (u64::from(seq) << 32) | CLOSED;
            match e.compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
    }

    /// Tells the core of publisher `global` that its publication is complete.
    pub fn notify(&self, global: u32, slot: u8, seq: u32) {
        let Some(core) = self.spans.iter().position(|&(f, c)| global >= f && global < f + c) else {
            return;
        };
        let local = global - self.spans[core].0;
        // Bounded by the publications in flight: never full.
        let _ = self.done_tx[core].try_send(Completed { local, slot, seq });
        if let Some(bell) = &self.bells[core] {
            bell.ring();
        }
    }

    /// Agent `id` was granted lock `lock` (index): false if another agent held it as far as
    /// the agents know (a mutual-exclusion violation).
    pub fn grant(&self, lock: u32, id: u32) -> bool {
        self.holders.get(lock as usize).is_none_or(|h| h.swap(id, Ordering::AcqRel) == 0)
    }

    /// Agent `id` gives lock `lock` back; done before the release is sent.
    pub fn release(&self, lock: u32, id: u32) {
        if let Some(h) = self.holders.get(lock as usize) {
            let _ = h.compare_exchange(id, 0, Ordering::AcqRel, Ordering::Acquire);
        }
    }

    /// Agent `leader` announces itself leader of group `group` for `term`: false if another
    /// member already did for that term.
    pub fn claim(&self, group: u32, term: u32, leader: u32) -> bool {
        let Some(t) = self.terms.get(group as usize) else { return true };
        let mine = (u64::from(term) << 32) | u64::from(leader);
        let mut cur = t.load(Ordering::Acquire);
        loop {
            let held = (cur >> 32) as u32;
            if held == term {
                return cur == mine;
            }
            if held > term {
                return true; // a later term already: this announcement is stale, not a rival
            }
            match t.compare_exchange_weak(cur, mine, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
    }

    /// An agent enters barrier round `round` at `now`.
    pub fn enter(&self, round: u64, now: u64) {
        self.rounds[(round % 4) as usize].first_enter.fetch_min(now, Ordering::AcqRel);
    }

    /// An agent saw round `round` release at `now`.
    pub fn released(&self, round: u64, now: u64) -> RoundSeen {
        let r = &self.rounds[(round % 4) as usize];
        let released_at = match r.released_at.compare_exchange(
            u64::MAX,
            now,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => now,
            Err(first) => first,
        };
        r.last_release.fetch_max(now, Ordering::AcqRel);
        let seen = r.released.fetch_add(1, Ordering::AcqRel) + 1;
        let complete = (seen >= self.agents).then(|| {
            let first_enter = r.first_enter.load(Ordering::Acquire);
            let last = r.last_release.load(Ordering::Acquire);
            // The round is over for everyone: the entry is free for round + 4.
            r.first_enter.store(u64::MAX, Ordering::Release);
            r.last_release.store(0, Ordering::Release);
            r.released.store(0, Ordering::Release);
            r.released_at.store(u64::MAX, Ordering::Release);
            (last.saturating_sub(first_enter), last.saturating_sub(released_at))
        });
        RoundSeen { released_at, complete }
    }
}

/// A workload's own figures on one core, merged over cores.
#[derive(Debug, Clone)]
pub struct CoordStats {
    /// Agents whose operations are counted.
    pub agents: u64,
    /// Measured operations done, summed over agents.
    pub ops_sum: u64,
    /// Sum of squares of each agent's measured operations (for Jain's fairness index).
    pub ops_sum_sq: f64,
    /// Fewest measured operations of one agent.
    pub ops_min: u64,
    /// Most measured operations of one agent.
    pub ops_max: u64,
    /// `locks`: requests that waited in a queue (`lock_queued`).
    pub lock_queued: u64,
    /// `locks`: grants to an agent while another still held the lock as far as the agents
    /// know (a lease taken back under a holder, or a broken router); 0 in a sound run.
    pub holder_conflicts: u64,
    /// `locks`: how long holders held, grant received to release sent (ns).
    pub hold: Histogram<u64>,
    /// `barriers`: rounds completed (every agent released).
    pub rounds: u64,
    /// `barriers`: per round, first entry to last release (ns).
    pub round_time: Histogram<u64>,
    /// `barriers`: per round, first release to last (ns).
    pub skew: Histogram<u64>,
    /// `churn`: register sent → acknowledged (ns).
    pub join: Histogram<u64>,
    /// `churn`: discover sent → answered (ns).
    pub discover: Histogram<u64>,
    /// `churn`: messages to an agent that had left (refused by the router: expected).
    pub departed: u64,
    /// `churn`: discoveries that found nobody else.
    pub found_nobody: u64,
    /// `consensus`: messages agents sent for it (proposals, acceptances, commits).
    pub messages: u64,
    /// `consensus`: commits followers applied.
    pub applied: u64,
    /// `consensus`: commits a follower saw out of sequence or with another value than the one
    /// proposed for that place (0 in a sound run).
    pub disagreements: u64,
    /// `delegation`: subtasks workers did.
    pub subtasks_done: u64,
    /// `consensus`, `delegation`: messages inside an operation the router refused, by code.
    pub refused: Vec<(u16, u64)>,
    /// `election`: members that started an election (candidates), summed over elections.
    pub candidates: u64,
    /// `election`: election messages to the killed leader the router refused as gone (how a
    /// candidate learns it is dead; expected).
    pub to_the_dead: u64,
    /// `election`: terms for which two members announced themselves (0 in a sound run).
    pub dual_leaders: u64,
}

impl Default for CoordStats {
    fn default() -> Self {
        CoordStats {
            agents: 0,
            ops_sum: 0,
            ops_sum_sq: 0.0,
            ops_min: u64::MAX,
            ops_max: 0,
            lock_queued: 0,
            holder_conflicts: 0,
            hold: histogram(),
            rounds: 0,
            round_time: histogram(),
            skew: histogram(),
            join: histogram(),
            discover: histogram(),
            departed: 0,
            found_nobody: 0,
            messages: 0,
            applied: 0,
            disagreements: 0,
            subtasks_done: 0,
            refused: Vec::new(),
            candidates: 0,
            to_the_dead: 0,
            dual_leaders: 0,
        }
    }
}

impl CoordStats {
    /// Counts one agent's measured operations.
    pub fn agent(&mut self, ops: u64) {
        self.agents += 1;
        self.ops_sum += ops;
        self.ops_sum_sq += (ops as f64) * (ops as f64);
        self.ops_min = self.ops_min.min(ops);
        self.ops_max = self.ops_max.max(ops);
    }

    /// Adds another core's figures.
    pub fn merge(&mut self, o: &CoordStats) {
        self.agents += o.agents;
        self.ops_sum += o.ops_sum;
        self.ops_sum_sq += o.ops_sum_sq;
        self.ops_min = self.ops_min.min(o.ops_min);
        self.ops_max = self.ops_max.max(o.ops_max);
        self.lock_queued += o.lock_queued;
        self.holder_conflicts += o.holder_conflicts;
        self.rounds += o.rounds;
        // Same bounds everywhere: adding cannot fail.
        let _ = self.hold.add(&o.hold);
        let _ = self.round_time.add(&o.round_time);
        let _ = self.skew.add(&o.skew);
        let _ = self.join.add(&o.join);
        let _ = self.discover.add(&o.discover);
        self.departed += o.departed;
        self.found_nobody += o.found_nobody;
        self.messages += o.messages;
        self.applied += o.applied;
        self.disagreements += o.disagreements;
        self.subtasks_done += o.subtasks_done;
        for &(code, n) in &o.refused {
            self.refuse_n(code, n);
        }
        self.candidates += o.candidates;
        self.to_the_dead += o.to_the_dead;
        self.dual_leaders += o.dual_leaders;
    }

    /// A message inside an operation was refused with `code`.
    pub fn refuse(&mut self, code: u16) {
        self.refuse_n(code, 1);
    }

    fn refuse_n(&mut self, code: u16, n: u64) {
        match self.refused.iter_mut().find(|(c, _)| *c == code) {
            Some((_, total)) => *total += n,
            None => self.refused.push((code, n)),
        }
    }

    /// Jain's fairness index of operations per agent: 1 when every agent did as many, 1/n when
    /// one did them all.
    pub fn fairness(&self) -> f64 {
        if self.ops_sum_sq == 0.0 || self.agents == 0 {
            return 1.0;
        }
        (self.ops_sum as f64).powi(2) / (self.agents as f64 * self.ops_sum_sq)
    }
}

/// A workload's figures in the report (`results[].coordination`, `docs/REPORT.md`).
#[derive(Debug, Clone, Serialize)]
pub struct CoordResult {
    /// The workload.
    pub workload: &'static str,
    /// Completed operations per second of the measured window (publications completed,
    /// grants released, barrier passes).
    pub ops_per_sec: f64,
    /// Operations per agent: fewest, most, and Jain's fairness index (1 = even).
    pub ops_per_agent_min: u64,
    /// See `ops_per_agent_min`.
    pub ops_per_agent_max: u64,
    /// See `ops_per_agent_min`.
    pub fairness: f64,
    /// `fanout`/`broadcast`: deliveries expected per publication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fanout_expected: Option<u64>,
    /// `fanout`/`broadcast`: deliveries per publication achieved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fanout_achieved: Option<f64>,
    /// `fanout`/`broadcast`: deliveries per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliveries_per_sec: Option<f64>,
    /// `fanout`/`broadcast`: deliveries missing (expected − delivered; refused copies included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliveries_lost: Option<u64>,
    /// `locks`: how many locks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locks: Option<u32>,
    /// `locks`: the hold asked for, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_ms: Option<f64>,
    /// `locks`: the hold achieved (grant received to release sent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_actual: Option<LatencySummary>,
    /// `locks`: requests that had to queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock_queued: Option<u64>,
    /// `locks`: grants while another agent still held the lock (0 in a sound run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder_conflicts: Option<u64>,
    /// `barriers`: rounds completed, and per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rounds: Option<u64>,
    /// See `rounds`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rounds_per_sec: Option<f64>,
    /// `barriers`: first entry to last release, per round.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub round_time: Option<LatencySummary>,
    /// `barriers`: first release to last, per round.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release_skew: Option<LatencySummary>,
    /// `churn`: registration latency (register sent → acknowledged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub join_latency: Option<LatencySummary>,
    /// `churn`: discovery latency (discover sent → answered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery_latency: Option<LatencySummary>,
    /// `churn`: messages to agents that had left, refused by the router (expected; not errors).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages_to_departed: Option<u64>,
    /// `churn`: discoveries that found nobody else online.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found_nobody: Option<u64>,
    /// `consensus`: agents per group, and groups.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// See `replicas`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<u32>,
    /// `consensus`, `election`: agents in the last group, which takes the agents left over
    /// (fewer than `replicas` when the run has fewer agents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_group_size: Option<u32>,
    /// `consensus`: messages per commit (proposals, acceptances, commits), over the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages_per_commit: Option<f64>,
    /// `consensus`: commits the followers applied, over the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub followers_applied: Option<u64>,
    /// `consensus`: commits seen out of sequence or with another value (0 in a sound run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disagreements: Option<u64>,
    /// `delegation`: coordinators, specialists, workers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<[u32; 3]>,
    /// `delegation`: messages per task (task, subtasks, their results, the result; discovery
    /// not included), over the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages_per_task: Option<f64>,
    /// `delegation`: subtasks workers did, over the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subtasks_done: Option<u64>,
    /// `consensus`, `delegation`: messages inside operations the router refused, by kind
    /// (the last commits of a run may meet followers that already left).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages_refused: Option<std::collections::BTreeMap<String, u64>>,
    /// `election`: messages per election (kill, dying, elections, oks, announcements).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages_per_election: Option<f64>,
    /// `election`: members that stood as candidates per election.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidates_per_election: Option<f64>,
    /// `election`: terms with two leaders announced (0 in a sound run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dual_leaders: Option<u64>,
}

impl CoordResult {
    /// The report entry of `workload` from its figures; `ops` completed operations and
    /// `deliveries` (expected, delivered) over a window of `window_s` seconds.
    pub fn of(
        workload: Workload,
        agents: u32,
        s: &CoordStats,
        ops: u64,
        (published, delivered, window_deliveries): (u64, u64, u64),
        window_s: f64,
    ) -> CoordResult {
        let per_s = |n: u64| if window_s > 0.0 { n as f64 / window_s } else { 0.0 };
        let fans = workload.fans_out();
        let expected = workload.deliveries_per_op(agents);
        let (locks, hold) = match workload {
            Workload::Locks { locks, hold } => (Some(locks), Some(hold)),
            _ => (None, None),
        };
        let barriers = workload == Workload::Barriers;
        let churn = matches!(workload, Workload::Churn { .. });
        let delegation = matches!(workload, Workload::Delegation { .. });
        let replicas = match workload {
            Workload::Consensus { replicas } => Some(replicas),
            _ => None,
        };
        let election = match workload {
            Workload::Election { replicas } => Some(replicas),
            _ => None,
        };
        CoordResult {
            workload: workload.name(),
            ops_per_sec: per_s(ops),
            ops_per_agent_min: if s.agents == 0 { 0 } else { s.ops_min },
            ops_per_agent_max: s.ops_max,
            fairness: s.fairness(),
            fanout_expected: fans.then_some(expected),
            fanout_achieved: fans.then(|| {
                if published == 0 {
                    0.0
                } else {
                    delivered as f64 / published as f64
                }
            }),
            deliveries_per_sec: fans.then(|| per_s(window_deliveries)),
            deliveries_lost: fans.then(|| (published * expected).saturating_sub(delivered)),
            locks,
            hold_ms: hold.map(|h| h.as_secs_f64() * 1e3),
            hold_actual: locks.map(|_| LatencySummary::of(&s.hold)),
            lock_queued: locks.map(|_| s.lock_queued),
            holder_conflicts: locks.map(|_| s.holder_conflicts),
            rounds: barriers.then_some(s.rounds),
            rounds_per_sec: barriers.then(|| per_s(s.rounds)),
            round_time: barriers.then(|| LatencySummary::of(&s.round_time)),
            release_skew: barriers.then(|| LatencySummary::of(&s.skew)),
            join_latency: churn.then(|| LatencySummary::of(&s.join)),
            discovery_latency: (churn || delegation).then(|| LatencySummary::of(&s.discover)),
            messages_to_departed: churn.then_some(s.departed),
            found_nobody: (churn || delegation).then_some(s.found_nobody),
            replicas: replicas.or(election),
            groups: replicas.or(election).map(|_| workload.groups(agents)),
            last_group_size: replicas
                .or(election)
                .map(|_| workload.group_of(agents.saturating_sub(1), agents).2),
            messages_per_commit: replicas.map(|_| {
                // Commits over the run: what the followers applied over the followers per group.
                let commits = published.max(1);
                s.messages as f64 / commits as f64
            }),
            followers_applied: replicas.map(|_| s.applied),
            disagreements: replicas.map(|_| s.disagreements),
            roles: delegation.then(|| {
                let (c, sp) = delegation_roles(agents);
                [c, sp, agents.saturating_sub(c + sp)]
            }),
            messages_per_task: delegation.then(|| s.messages as f64 / published.max(1) as f64),
            subtasks_done: delegation.then_some(s.subtasks_done),
            messages_per_election: election.map(|_| s.messages as f64 / published.max(1) as f64),
            candidates_per_election: election
                .map(|_| s.candidates as f64 / published.max(1) as f64),
            dual_leaders: election.map(|_| s.dual_leaders),
            messages_refused: (replicas.is_some() || delegation || election.is_some()).then(|| {
                s.refused
                    .iter()
                    .map(|&(code, n)| {
                        let name = crate::wire::ErrorCode::from_code(code)
                            .map_or_else(|| format!("code_{code}"), |c| c.name().to_string());
                        (name, n)
                    })
                    .collect()
            }),
        }
    }
}
