//! Placement: which cores exist, which NUMA node each belongs to, and which cores the router
//! shards and the agent groups get.
//!
//! The core → node map comes from hwlocality. Router shards are spread over nodes round-robin;
//! agent groups take the remaining cores. Each thread pins itself (core_affinity) and, on a
//! machine with more than one node, binds its memory to its node (hwlocality), so buffers it
//! allocates are local. A one-node machine is the degenerate case: the same plan, no binding.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use hwlocality::memory::binding::{MemoryBindingFlags, MemoryBindingPolicy};
use hwlocality::object::types::ObjectType;
use hwlocality::Topology;

/// A core and the NUMA node it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Slot {
    /// OS index of the core (logical CPU).
    pub core: usize,
    /// OS index of its NUMA node.
    pub node: u32,
}

/// The machine's cores and NUMA nodes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Machine {
    /// Every usable core, ascending, with its node.
    pub cores: Vec<Slot>,
    /// Whether the map came from hwloc (false: every core assumed on node 0).
    pub from_hwloc: bool,
}

fn topology() -> Option<&'static Topology> {
    static TOPOLOGY: OnceLock<Option<Topology>> = OnceLock::new();
    TOPOLOGY.get_or_init(|| Topology::new().ok()).as_ref()
}

impl Machine {
    /// Reads the topology (once per process).
    pub fn detect() -> Machine {
        if let Some(topo) = topology() {
            let mut cores = Vec::new();
            for node in topo.objects_with_type(ObjectType::NUMANode) {
                let (Some(id), Some(cpus)) = (node.os_index(), node.cpuset()) else { continue };
                for core in cpus.iter_set() {
                    cores.push(Slot { core: usize::from(core), node: id as u32 });
                }
            }
            if !cores.is_empty() {
                cores.sort_by_key(|s| s.core);
                cores.dedup_by_key(|s| s.core);
                return Machine { cores, from_hwloc: true };
            }
        }
        let cores = core_affinity::get_core_ids()
            .unwrap_or_default()
            .into_iter()
            .map(|c| Slot { core: c.id, node: 0 })
            .collect();
        Machine { cores, from_hwloc: false }
    }

    /// The node of `core`, if the core exists.
    pub fn node_of(&self, core: usize) -> Option<u32> {
        self.cores.iter().find(|s| s.core == core).map(|s| s.node)
    }

    /// Distinct NUMA nodes.
    pub fn nodes(&self) -> usize {
        let mut nodes: Vec<u32> = self.cores.iter().map(|s| s.node).collect();
        nodes.sort_unstable();
        nodes.dedup();
        nodes.len()
    }

    /// Turns core numbers into slots, refusing cores this machine does not have.
    pub fn slots(&self, cores: &[usize]) -> Result<Vec<Slot>, String> {
        cores
            .iter()
            .map(|&core| {
                self.node_of(core).map(|node| Slot { core, node }).ok_or_else(|| {
                    let last = self.cores.last().map_or(0, |s| s.core);
                    format!("core {core} does not exist on this machine (cores 0-{last})")
                })
            })
            .collect()
    }
}

/// Cores the router and the agents share ([`share_cores`]), core by core.
static SHARED: [std::sync::atomic::AtomicBool; SHARED_TRACKED] =
    [const { std::sync::atomic::AtomicBool::new(false) }; SHARED_TRACKED];
/// Cores [`share_cores`] can name; past it a core is never taken for shared.
const SHARED_TRACKED: usize = 1024;

/// Tells the socket rings of threads pinned to `cores` ([`pin_current_thread`]) that the other
/// side of the run (router or agents) has threads there too, for good: they stop watching,
/// since a watching thread holds the core that the thread it waits for needs
/// (`docs/BENCHMARKS.md`, "A watch on a shared core"). Set by `a2a-bench` and `compare` from
/// their plan, for the whole process.
pub fn share_cores(cores: &[usize]) {
    use std::sync::atomic::Ordering;
    for &c in cores.iter().filter(|&&c| c < SHARED_TRACKED) {
        SHARED[c].store(true, Ordering::Relaxed);
    }
}

/// Whether, at the time `now_ns`, the calling thread's core (`core`, where it is pinned) is
/// shared: [`share_cores`] named it, or [`share_this_thread_until`] holds.
pub fn core_shared(core: Option<usize>, now_ns: u64) -> bool {
    use std::sync::atomic::Ordering;
    SHARED_HERE_UNTIL.with(std::cell::Cell::get) > now_ns
        || core.is_some_and(|c| SHARED.get(c).is_some_and(|b| b.load(Ordering::Relaxed)))
}

thread_local! {
    /// [`share_this_thread_until`]'s time.
    static SHARED_HERE_UNTIL: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// The calling thread's core is shared with the other side of a run until `until_ns`
/// ([`crate::clock::now_ns`]), or a later time given before: a router's shard told so by a
/// client's `share_cores` message, a lease the client renews while its run lasts. Only this
/// thread's socket ring heeds it (not other routers' shards in the same process).
pub fn share_this_thread_until(until_ns: u64) {
    SHARED_HERE_UNTIL.with(|t| t.set(t.get().max(until_ns)));
}

/// Ends [`share_this_thread_until`]'s lease at once (a client whose run ended says so).
pub fn unshare_this_thread() {
    SHARED_HERE_UNTIL.with(|t| t.set(0));
}

/// Parses a core list such as `0-3,8,10-11` (sorted, duplicates removed).
pub fn parse_cores(spec: &str) -> Result<Vec<usize>, String> {
    let mut cores = Vec::new();
    for part in spec.split(',').map(str::trim) {
        let bad = || format!("invalid core list '{spec}': '{part}' is not N or N-M");
        if part.is_empty() {
            return Err(bad());
        }
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<usize>(), b.trim().parse::<usize>()),
            None => (part.parse::<usize>(), part.parse::<usize>()),
        };
        let (Ok(lo), Ok(hi)) = (lo, hi) else { return Err(bad()) };
        if lo > hi {
            return Err(format!(
                "invalid core list '{spec}': '{part}' runs backwards (write {hi}-{lo})"
            ));
        }
        if hi > 4095 {
            return Err(format!("invalid core list '{spec}': core {hi} is out of range (0-4095)"));
        }
        cores.extend(lo..=hi);
    }
    cores.sort_unstable();
    cores.dedup();
    Ok(cores)
}

/// Which cores run router shards and which run agent groups.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    /// One router shard per slot.
    pub router: Vec<Slot>,
    /// One agent group per slot.
    pub agents: Vec<Slot>,
}

impl Plan {
    /// Splits `slots` between router and agents: the router gets half (rounded up, at least one),
    /// picked round-robin across NUMA nodes; agents get the rest. With a single core both share it.
    pub fn split(slots: &[Slot]) -> Plan {
        if slots.len() <= 1 {
            return Plan { router: slots.to_vec(), agents: slots.to_vec() };
        }
        let want = slots.len().div_ceil(2);
        Plan::spread(slots, want)
    }

    /// The cores both the router and the agents use.
    pub fn shared_cores(&self) -> Vec<usize> {
        let mut cores: Vec<usize> = self
            .agents
            .iter()
            .filter(|a| self.router.iter().any(|r| r.core == a.core))
            .map(|a| a.core)
            .collect();
        cores.dedup();
        cores
    }

    /// When the router and the agents share cores: how many distinct cores the two use
    /// together (their threads take turns on the shared ones). `None` when they are apart.
    pub fn shared(&self) -> Option<usize> {
        if self.shared_cores().is_empty() {
            return None;
        }
        let mut cores: Vec<usize> =
            self.router.iter().chain(&self.agents).map(|s| s.core).collect();
        cores.sort_unstable();
        cores.dedup();
        Some(cores.len())
    }

    /// Takes `want` router slots round-robin across the nodes of `slots`; the rest are agents'.
    pub fn spread(slots: &[Slot], want: usize) -> Plan {
        let mut by_node: BTreeMap<u32, Vec<Slot>> = BTreeMap::new();
        for &s in slots {
            by_node.entry(s.node).or_default().push(s);
        }
        let mut router = Vec::new();
        let mut queues: Vec<std::vec::IntoIter<Slot>> =
            by_node.into_values().map(Vec::into_iter).collect();
        'outer: while router.len() < want {
            let mut took = false;
            for q in &mut queues {
                if router.len() == want {
                    break 'outer;
                }
                if let Some(s) = q.next() {
                    router.push(s);
                    took = true;
                }
            }
            if !took {
                break;
            }
        }
        router.sort_by_key(|s| s.core);
        let agents = slots.iter().copied().filter(|s| !router.contains(s)).collect();
        Plan { router, agents }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |slots: &[Slot]| {
            slots
                .iter()
                .map(|s| format!("{} (node {})", s.core, s.node))
                .collect::<Vec<_>>()
                .join(", ")
        };
        write!(
            f,
            "router shards on cores {}; agents on cores {}",
            list(&self.router),
            list(&self.agents)
        )
    }
}

thread_local! {
    /// The core [`pin_current_thread`] pinned the calling thread to.
    static PINNED: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// The core the calling thread was pinned to ([`pin_current_thread`]), if any.
pub fn pinned_core() -> Option<usize> {
    PINNED.with(std::cell::Cell::get)
}

/// Pins the calling thread to `slot.core` and, on a multi-node machine, binds its future
/// allocations to `slot.node`. Returns a warning when either could not be done.
pub fn pin_current_thread(slot: Slot) -> Option<String> {
    if !core_affinity::set_for_current(core_affinity::CoreId { id: slot.core }) {
        return Some(format!("could not pin a thread to core {}", slot.core));
    }
    PINNED.with(|p| p.set(Some(slot.core)));
    let topo = topology()?;
    if Machine::detect().nodes() <= 1 {
        return None;
    }
    let node = topo
        .objects_with_type(ObjectType::NUMANode)
        .find(|n| n.os_index() == Some(slot.node as usize))?;
    let nodeset = node.nodeset()?;
    match topo.bind_memory(nodeset, MemoryBindingPolicy::Bind, MemoryBindingFlags::THREAD) {
        Ok(()) => None,
        Err(e) => Some(format!("could not bind memory to NUMA node {}: {e}", slot.node)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_core_is_shared_for_good_or_for_a_lease_on_one_thread() {
        // Proves the two ways a core becomes shared: `share_cores` for the whole process and
        // for good (a core past the tracked ones never is), and a lease for the calling thread
        // alone, which ends at its time or when ended, and which another lease only lengthens.
        share_cores(&[1001, 5000]);
        assert!(core_shared(Some(1001), u64::MAX - 1));
        assert!(!core_shared(Some(1002), 0) && !core_shared(Some(5000), 0));
        let other = std::thread::spawn(|| {
            share_this_thread_until(2_000);
            share_this_thread_until(1_000);
            let held = (core_shared(None, 1_999), core_shared(Some(1002), 2_000));
            unshare_this_thread();
            (held, core_shared(None, 0))
        });
        assert_eq!(other.join().unwrap(), ((true, false), false), "held, then ended");
        assert!(!core_shared(None, 0), "another thread's lease holds here");
    }

    #[test]
    fn core_lists_parse_ranges_and_singles() {
        // Proves lists and ranges parse, sort and dedupe, and bad input names the bad part.
        assert_eq!(parse_cores("0-3,8,2,10-11").unwrap(), vec![0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(parse_cores("5").unwrap(), vec![5]);
        assert!(parse_cores("3-1").unwrap_err().contains("'3-1' runs backwards (write 1-3)"));
        assert!(parse_cores("0-99999").unwrap_err().contains("core 99999 is out of range"));
        assert!(parse_cores("0,,1").is_err());
        assert!(parse_cores("a").is_err());
    }

    fn slots(nodes: &[u32]) -> Vec<Slot> {
        nodes.iter().enumerate().map(|(core, &node)| Slot { core, node }).collect()
    }

    #[test]
    fn router_shards_spread_over_numa_nodes() {
        // Proves the split gives the router half the cores, alternating nodes.
        let plan = Plan::split(&slots(&[0, 0, 0, 0, 1, 1, 1, 1]));
        assert_eq!(plan.router.iter().map(|s| s.core).collect::<Vec<_>>(), vec![0, 1, 4, 5]);
        assert_eq!(plan.agents.iter().map(|s| s.core).collect::<Vec<_>>(), vec![2, 3, 6, 7]);
    }

    #[test]
    fn one_node_and_one_core_are_degenerate_cases() {
        // Proves a single node splits in order and a single core is shared.
        let plan = Plan::split(&slots(&[0, 0]));
        assert_eq!((plan.router[0].core, plan.agents[0].core), (0, 1));
        assert_eq!(plan.shared(), None);
        let plan = Plan::split(&slots(&[0]));
        assert_eq!(plan.router, plan.agents);
        assert_eq!(plan.shared(), Some(1));
        // Router on 0-1, agents on 1: two cores between them.
        let s = slots(&[0, 0]);
        assert_eq!(Plan { router: s.clone(), agents: s[1..].to_vec() }.shared(), Some(2));
    }

    #[test]
    fn this_machine_is_detected() {
        // Proves hwloc (or the fallback) finds the cores this process may run on.
        let m = Machine::detect();
        assert!(!m.cores.is_empty());
        assert!(m.slots(&[m.cores[0].core]).is_ok());
        assert!(m.slots(&[100_000]).unwrap_err().contains("does not exist"));
    }
}
