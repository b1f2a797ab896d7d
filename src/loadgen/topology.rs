//! The agent graph: who talks to whom.
//!
//! Neighbours are computed, not stored, so a 100,000-agent mesh costs nothing per edge. Every
//! agent sends to each of its neighbours in turn (round-robin), so traffic flows along every edge
//! in both directions. Each message is a request answered by a reply.
//!
//! How load spreads, with every agent sending at the same rate (or window):
//! - **star**: agent 0 is the hub. Each spoke sends only to the hub; the hub sends to each spoke
//!   in turn. The hub receives (n − 1)× a spoke's requests and answers them all: it is the hot
//!   spot, as a coordinator is.
//! - **mesh**: everyone sends to everyone else in turn; load is uniform.
//! - **ring**: each agent alternates between its two neighbours (i ± 1 mod n); uniform.
//! - **line**: like ring without the wrap-around; the two ends have one neighbour each.
//! - **hierarchical**: a tree with `fanout` children per node (agent 0 is the root); each node
//!   alternates between its parent and its children, so inner nodes carry more than leaves.
//! - **client**: no graph: every agent is a client of one server (`a2a-bench http`), so each has
//!   one "neighbour", itself, and the adapter sends its requests to the server.

use std::fmt;
use std::str::FromStr;

/// The communication pattern of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topology {
    /// Hub (agent 0) and spokes.
    Star,
    /// Everyone with everyone.
    Mesh,
    /// i ↔ i+1, wrapping.
    Ring,
    /// i ↔ i+1, not wrapping.
    Line,
    /// A tree with this many children per node.
    Hierarchical {
        /// Children per node (≥ 1).
        fanout: u32,
    },
    /// Every agent a client of one server (HTTP targets): one edge each, to the server.
    Client,
}

impl Topology {
    /// Number of neighbours agent `i` of `n` sends to.
    #[inline]
    pub fn degree(self, i: u32, n: u32) -> u32 {
        if n < 2 && self != Topology::Client {
            return 0;
        }
        match self {
            Topology::Star => {
                if i == 0 {
                    n - 1
                } else {
                    1
                }
            }
            Topology::Client => 1,
            Topology::Mesh => n - 1,
            Topology::Ring => {
                if n == 2 {
                    1
                } else {
                    2
                }
            }
            Topology::Line => {
                if i == 0 || i == n - 1 {
                    1
                } else {
                    2
                }
            }
            Topology::Hierarchical { fanout } => {
                let parent = u32::from(i > 0);
                parent + children(i, n, fanout).len() as u32
            }
        }
    }

    /// The `k`-th neighbour (0 ≤ k < degree) of agent `i` of `n`.
    #[inline]
    pub fn neighbour(self, i: u32, n: u32, k: u32) -> u32 {
        match self {
            Topology::Client => i,
            Topology::Star => {
                if i == 0 {
                    k + 1
                } else {
                    0
                }
            }
            Topology::Mesh => {
                if k < i {
                    k
                } else {
                    k + 1
                }
            }
            // i ± 1 mod n, without a division (this runs once per request sent).
            Topology::Ring => {
                debug_assert!(i < n);
                if k == 0 {
                    if i + 1 == n {
                        0
                    } else {
                        i + 1
                    }
                } else if i == 0 {
                    n - 1
                } else {
                    i - 1
                }
            }
            Topology::Line => {
                if i == 0 {
                    1
                } else if i == n - 1 || k == 1 {
                    i - 1
                } else {
                    i + 1
                }
            }
            Topology::Hierarchical { fanout } => {
                if i > 0 && k == 0 {
                    (i - 1) / fanout
                } else {
                    let first = children(i, n, fanout).start;
                    first + k - u32::from(i > 0)
                }
            }
        }
    }

    /// Undirected edges in a graph of `n` agents.
    pub fn edges(self, n: u32) -> u64 {
        let n64 = u64::from(n);
        match self {
            Topology::Client => n64,
            _ if n < 2 => 0,
            Topology::Star | Topology::Line | Topology::Hierarchical { .. } => n64 - 1,
            Topology::Mesh => n64 * (n64 - 1) / 2,
            Topology::Ring => {
                if n == 2 {
                    1
                } else {
                    n64
                }
            }
        }
    }

    /// The name used in reports (`hierarchical` without its fanout).
    pub fn name(self) -> &'static str {
        match self {
            Topology::Star => "star",
            Topology::Mesh => "mesh",
            Topology::Ring => "ring",
            Topology::Line => "line",
            Topology::Hierarchical { .. } => "hierarchical",
            Topology::Client => "client",
        }
    }
}

fn children(i: u32, n: u32, fanout: u32) -> std::ops::Range<u32> {
    let first = (u64::from(i) * u64::from(fanout) + 1).min(u64::from(n)) as u32;
    let end = (u64::from(first) + u64::from(fanout)).min(u64::from(n)) as u32;
    first..end
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Topology {
    type Err = String;

    /// `star`, `mesh`, `ring`, `line`, `hierarchical` (fanout 2; the CLI's `--fanout` sets it).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "star" => Ok(Topology::Star),
            "mesh" => Ok(Topology::Mesh),
            "ring" => Ok(Topology::Ring),
            "line" => Ok(Topology::Line),
            "hierarchical" | "tree" => Ok(Topology::Hierarchical { fanout: 2 }),
            "client" => Ok(Topology::Client),
            other => Err(format!(
                "unknown topology '{other}' (expected star, mesh, ring, line or hierarchical)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn edges_seen(t: Topology, n: u32) -> BTreeSet<(u32, u32)> {
        let mut seen = BTreeSet::new();
        for i in 0..n {
            for k in 0..t.degree(i, n) {
                let j = t.neighbour(i, n, k);
                assert!(j < n && j != i, "{t} n={n}: {i} → {j}");
                seen.insert((i.min(j), i.max(j)));
            }
        }
        seen
    }

    #[test]
    fn every_edge_is_used_in_both_directions() {
        // Proves, for each topology and several sizes, that neighbours are valid, symmetric
        // (if i sends to j, j sends to i) and cover exactly the documented edge count.
        let all = [
            Topology::Star,
            Topology::Mesh,
            Topology::Ring,
            Topology::Line,
            Topology::Hierarchical { fanout: 2 },
            Topology::Hierarchical { fanout: 3 },
        ];
        for t in all {
            for n in [2u32, 3, 5, 10, 31] {
                let seen = edges_seen(t, n);
                assert_eq!(seen.len() as u64, t.edges(n), "{t} n={n}");
                for &(a, b) in &seen {
                    let back = (0..t.degree(b, n)).any(|k| t.neighbour(b, n, k) == a);
                    assert!(back, "{t} n={n}: {b} never sends to {a}");
                }
            }
        }
    }

    #[test]
    fn the_seed_diagrams_hold() {
        // Proves the shapes match the seed's diagrams: star hub, 7-node binary tree.
        assert_eq!(edges_seen(Topology::Star, 4), [(0, 1), (0, 2), (0, 3)].into());
        let tree = edges_seen(Topology::Hierarchical { fanout: 2 }, 7);
        assert_eq!(tree, [(0, 1), (0, 2), (1, 3), (1, 4), (2, 5), (2, 6)].into());
        assert_eq!(edges_seen(Topology::Line, 4), [(0, 1), (1, 2), (2, 3)].into());
    }
}
