//! Coordination workloads: what virtual agents do together besides request/reply.
//!
//! A workload decides what one *operation* of an agent is; the agent loop paces, books and
//! accounts operations exactly as it does requests (one resolution per operation: done, an
//! error by kind, or given up on). [`Workload::RequestReply`] is the loop's original operation.
//!
//! | workload      | one operation                                   | resolved when                  |
//! |---------------|-------------------------------------------------|--------------------------------|
//! | `fanout`      | publish to the agent's topic (`--subscribers`)  | its last subscriber has it     |
//! | `broadcast`   | broadcast to every other agent of the run       | its last recipient has it      |
//! | `locks`       | acquire one of `--locks`, hold `--hold`, release | the release is acknowledged    |
//! | `barriers`    | enter the next round's barrier over all agents  | the barrier releases           |
//! | `churn`       | join, discover, message one found, stay, leave  | the leave is acknowledged      |
//! | `consensus`   | a group's leader proposes the next value        | a majority accepted it, in order |
//! | `delegation`  | discover a specialist, hand it a task           | its workers' results came back |
//! | `election`    | kill the group's leader (it leaves)             | the new leader announced itself |
//!
//! Some figures need more than one core's view: which subscriber was the last to get a
//! publication, whether two agents held one lock at once, when a barrier round released its
//! first and last agent. [`Coord`] is that shared view, one per run and process: atomics
//! touched once per operation (never per message of request/reply), and one bounded channel per
//! agent core that tells a publisher's core its publication was completed elsewhere.

use std::time::Duration;

mod coord;

pub use coord::*;

/// Most operations in flight per agent under `fanout` and `broadcast` (slots of the board).
pub const FAN_WINDOW_MAX: u32 = 64;
/// Most proposals a consensus leader has in flight.
pub const CONSENSUS_WINDOW_MAX: u32 = 16;

/// What the virtual agents do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Workload {
    /// A request to a topology neighbour, answered by a reply.
    #[default]
    RequestReply,
    /// Every agent publishes on its own topic; the next `subscribers` agents (in ring order)
    /// subscribe to it.
    Fanout {
        /// Subscribers per topic (the fan-out factor).
        subscribers: u32,
    },
    /// Every agent broadcasts to every other agent of the run.
    Broadcast,
    /// Agents contend for `locks` locks, each held for `hold` once granted.
    Locks {
        /// Locks contended for.
        locks: u32,
        /// How long a holder keeps a lock before releasing it.
        hold: Duration,
    },
    /// Rounds of a barrier over all agents.
    Barriers,
    /// Agents join (register a second, passing identity), discover one another by capability,
    /// message what they found, stay `stay`, and leave.
    Churn {
        /// How long a passing agent stays once its message is answered.
        stay: Duration,
    },
    /// Groups of `replicas` agents; each group's first agent leads: it proposes values in
    /// sequence, commits each once a majority accepted it, in order, and tells the followers.
    Consensus {
        /// Agents per group (the last group takes the remainder).
        replicas: u32,
    },
    /// Groups of `replicas` agents elect a leader by the bully algorithm; each group's first
    /// agent kills the leader at intervals (it leaves the router) and waits for the new one.
    Election {
        /// Agents per group (the last group takes the remainder; at least 3).
        replicas: u32,
    },
    /// Coordinators (an eighth of the agents) discover specialists (a quarter) by capability
    /// and send them tasks; a specialist hands each task to `subtasks` workers (the rest) and
    /// answers once they all did.
    Delegation {
        /// Subtasks per task.
        subtasks: u32,
    },
    /// Pipelines of `stages` agents: each pipeline's first agent (its source) sends items to
    /// the second, every stage hands each item on to the next, and the last returns it to the
    /// source. Agents past the last whole pipeline take no part.
    Pipeline {
        /// Agents per pipeline, the source included (at least 2).
        stages: u32,
    },
}

/// What an agent does under `delegation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Starts tasks.
    Coordinator,
    /// Splits tasks into subtasks.
    Specialist,
    /// Does subtasks.
    Worker,
}

/// `delegation`: how many coordinators and specialists a run of `agents` agents has (the rest
/// are workers).
pub fn delegation_roles(agents: u32) -> (u32, u32) {
    let coordinators = (agents / 8).max(1);
    let specialists = (agents / 4).max(1);
    (coordinators, specialists)
}

impl Workload {
    /// Every name `--workload` takes.
    pub const NAMES: [&'static str; 10] = [
        "request-reply",
        "fanout",
        "broadcast",
        "locks",
        "barriers",
        "churn",
        "consensus",
        "delegation",
        "election",
        "pipeline",
    ];

    /// The name in reports and on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Workload::RequestReply => "request-reply",
            Workload::Fanout { .. } => "fanout",
            Workload::Broadcast => "broadcast",
            Workload::Locks { .. } => "locks",
            Workload::Barriers => "barriers",
            Workload::Churn { .. } => "churn",
            Workload::Consensus { .. } => "consensus",
            Workload::Delegation { .. } => "delegation",
            Workload::Election { .. } => "election",
            Workload::Pipeline { .. } => "pipeline",
        }
    }

    /// Deliveries one operation makes in a run of `agents` agents.
    pub fn deliveries_per_op(&self, agents: u32) -> u64 {
        match self {
            Workload::Fanout { subscribers } => u64::from(*subscribers),
            Workload::Broadcast => u64::from(agents.saturating_sub(1)),
            // The hops to the stages after the source (the last one's return is the reply).
            Workload::Pipeline { stages } => u64::from(stages.saturating_sub(1).max(1)),
            _ => 1,
        }
    }

    /// Whether an agent runs one operation at a time (the window is 1 whatever was asked).
    pub fn one_at_a_time(&self) -> bool {
        matches!(
            self,
            Workload::Locks { .. }
                | Workload::Barriers
                | Workload::Churn { .. }
                | Workload::Delegation { .. }
                | Workload::Election { .. }
        )
    }

    /// The fewest agents a run of this workload takes (a requester and its neighbour; a
    /// delegation's three roles; an election's observer and two candidates; one pipeline).
    pub fn least_agents(&self) -> u32 {
        match *self {
            Workload::Delegation { .. } | Workload::Election { .. } => 3,
            Workload::Pipeline { stages } => stages.max(2),
            _ => 2,
        }
    }

    /// The most agents a run of this workload takes (churn: each agent's passing identity
    /// lives above [`crate::loadgen::native::JOIN_OFFSET`]).
    pub fn most_agents(&self) -> u32 {
        match self {
            Workload::Churn { .. } => crate::loadgen::native::JOIN_OFFSET,
            _ => u32::MAX,
        }
    }

    /// The window an agent uses when `asked` was asked: 1 for locks and barriers, at most the
    /// board's slots for fan-outs.
    pub fn window(&self, asked: u32) -> u32 {
        if self.one_at_a_time() {
            1
        } else if self.fans_out() {
            asked.clamp(1, FAN_WINDOW_MAX)
        } else if matches!(self, Workload::Consensus { .. }) {
            asked.clamp(1, CONSENSUS_WINDOW_MAX)
        } else {
            asked
        }
    }

    /// `consensus`: the groups of a run of `agents` agents, and the group of agent `i`.
    pub fn groups(&self, agents: u32) -> u32 {
        match self {
            Workload::Consensus { replicas } | Workload::Election { replicas } => {
                (agents / (*replicas).max(1)).max(1)
            }
            _ => 1,
        }
    }

    /// `consensus`: agent `i`'s group, its first agent and its size.
    pub fn group_of(&self, i: u32, agents: u32) -> (u32, u32, u32) {
        let r = match self {
            Workload::Consensus { replicas } | Workload::Election { replicas } => {
                (*replicas).max(1)
            }
            _ => agents.max(1),
        };
        let groups = self.groups(agents);
        let g = (i / r).min(groups - 1);
        let first = g * r;
        let size = if g == groups - 1 { agents - first } else { r };
        (g, first, size)
    }

    /// Whether agent `i` of `agents` starts operations (a consensus group's followers and
    /// delegation's specialists and workers do not).
    pub fn originates(&self, i: u32, agents: u32) -> bool {
        match self {
            Workload::Consensus { .. } | Workload::Election { .. } => {
                self.group_of(i, agents).1 == i
            }
            Workload::Delegation { .. } => self.role(i, agents) == Role::Coordinator,
            Workload::Pipeline { .. } => self.stage_of(i, agents) == Some(0),
            _ => true,
        }
    }

    /// How many of `agents` start operations ([`Workload::originates`]).
    pub fn originators(&self, agents: u32) -> u32 {
        match self {
            Workload::Consensus { .. } | Workload::Election { .. } => self.groups(agents),
            Workload::Delegation { .. } => delegation_roles(agents).0,
            Workload::Pipeline { .. } => self.pipelines(agents),
            _ => agents,
        }
    }

    /// `pipeline`: agent `i`'s place in its pipeline (0: the source), `None` for the agents
    /// past the last whole pipeline (and for every other workload).
    pub fn stage_of(&self, i: u32, agents: u32) -> Option<u32> {
        match self {
            Workload::Pipeline { stages } => {
                let s = (*stages).max(2);
                (i < self.pipelines(agents) * s).then_some(i % s)
            }
            _ => None,
        }
    }

    /// `pipeline`: the whole pipelines a run of `agents` agents forms.
    pub fn pipelines(&self, agents: u32) -> u32 {
        match self {
            Workload::Pipeline { stages } => agents / (*stages).max(2),
            _ => 0,
        }
    }

    /// Whether the agent cores share a board of atomics for the workload's figures
    /// ([`Coord`]): every workload but request-reply and the pipeline, whose items carry
    /// everything their figures need.
    pub fn coordinates(&self) -> bool {
        !matches!(self, Workload::RequestReply | Workload::Pipeline { .. })
    }

    /// `delegation`: agent `i`'s role.
    pub fn role(&self, i: u32, agents: u32) -> Role {
        let (c, s) = delegation_roles(agents);
        if i < c {
            Role::Coordinator
        } else if i < c + s {
            Role::Specialist
        } else {
            Role::Worker
        }
    }

    /// Whether a publication fans out to several agents (the publish board is needed).
    pub fn fans_out(&self) -> bool {
        matches!(self, Workload::Fanout { .. } | Workload::Broadcast)
    }

    /// Whether the topology decides who gets an operation (only request/reply's does).
    pub fn uses_topology(&self) -> bool {
        matches!(self, Workload::RequestReply)
    }
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Workload {
    type Err = String;

    /// A bare name; the parameters (`--subscribers`, `--locks`, `--hold`) are filled in by the
    /// command line.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "request-reply" => Workload::RequestReply,
            "fanout" => Workload::Fanout { subscribers: 0 },
            "broadcast" => Workload::Broadcast,
            "locks" => Workload::Locks { locks: 0, hold: Duration::ZERO },
            "barriers" => Workload::Barriers,
            "churn" => Workload::Churn { stay: Duration::ZERO },
            "consensus" => Workload::Consensus { replicas: 0 },
            "delegation" => Workload::Delegation { subtasks: 0 },
            "election" => Workload::Election { replicas: 0 },
            "pipeline" => Workload::Pipeline { stages: 0 },
            other => {
                return Err(format!(
                    "unknown workload '{other}' (expected {})",
                    Workload::NAMES.join(", ")
                ))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publication_completes_once_and_late_copies_are_stale() {
        // Proves the board: three deliveries complete a fan-out of 3 once, a copy after that is
        // stale, a reused slot ignores copies of its previous publication, and a publication
        // given up on after an error cannot also complete.
        let (c, rx) = Coord::new(Workload::Fanout { subscribers: 3 }, 4, vec![(0, 4)], 2);
        c.open(1, 0, 7, 3);
        assert_eq!(c.deliver(1, 0, 7, 2), Delivered::Counted);
        assert_eq!(c.deliver(1, 0, 7, 1), Delivered::Completed);
        assert_eq!(c.deliver(1, 0, 7, 1), Delivered::Stale);
        c.notify(1, 0, 7);
        let done = rx[0].try_recv().expect("a completion for the publisher's core");
        assert_eq!((done.local, done.slot, done.seq), (1, 0, 7));
        assert!(c.close_completed(1, 0, 7));
        assert!(!c.close_failed(1, 0, 7), "closed already");
        c.open(1, 0, 9, 3);
        assert_eq!(
            c.deliver(1, 0, 7, 1),
            Delivered::Stale,
            "a copy of the slot's last publication"
        );
        assert!(c.close_failed(1, 0, 9));
        assert_eq!(c.deliver(1, 0, 9, 3), Delivered::Stale);
        assert!(!c.close_completed(1, 0, 9));
        assert_eq!(c.deliver(1, 5, 9, 1), Delivered::Stale, "no such slot");
    }

    #[test]
    fn a_barrier_round_reports_once_with_its_skew() {
        // Proves the round figures: the last of 3 releases reports first entry to last release
        // and first release to last; every agent sees the same release time; the entry is
        // reset for the round four later.
        let (c, _) = Coord::new(Workload::Barriers, 3, vec![(0, 3)], 1);
        for t in [100, 90, 120] {
            c.enter(5, t);
        }
        let a = c.released(5, 1_000);
        let b = c.released(5, 1_050);
        let last = c.released(5, 1_010);
        assert_eq!((a.released_at, b.released_at, last.released_at), (1_000, 1_000, 1_000));
        assert_eq!((a.complete, b.complete), (None, None));
        assert_eq!(last.complete, Some((1_050 - 90, 50)));
        c.enter(9, 2_000);
        assert_eq!(c.released(9, 2_100).released_at, 2_100, "round 9 starts afresh");
    }

    #[test]
    fn a_grant_over_a_holder_is_a_conflict() {
        // Proves the holder check: a grant while another agent holds is a conflict; after a
        // release the next grant is clean; a stale release does not free another's lock.
        let (c, _) =
            Coord::new(Workload::Locks { locks: 2, hold: Duration::ZERO }, 3, vec![(0, 3)], 1);
        assert!(c.grant(1, 10));
        assert!(!c.grant(1, 11), "10 still holds it");
        c.release(1, 10);
        assert!(!c.grant(1, 12), "10's release did not free 11's hold");
        c.release(1, 12);
        assert!(c.grant(1, 10));
    }

    #[test]
    fn fairness_is_one_when_even_and_one_over_n_when_one_does_all() {
        let mut even = CoordStats::default();
        (0..4).for_each(|_| even.agent(10));
        assert!((even.fairness() - 1.0).abs() < 1e-9);
        let mut one = CoordStats::default();
        one.agent(40);
        (0..3).for_each(|_| one.agent(0));
        assert!((one.fairness() - 0.25).abs() < 1e-9);
    }
}
