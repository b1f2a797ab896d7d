//! Where the router, the agents and a target on this machine share cores: the plan's warnings,
//! and the leases that tell a router its clients' cores.

use super::*;

/// A target on this machine whose threads are pinned to cores the agents use as well (an
/// `a2a-bench router --cores 0-1` beside agents on core 1): the agents' rings are told not to
/// watch there ([`crate::placement::share_cores`]), and so is the router when it speaks the
/// native protocol (`router`: its address and the probe that reads its counters; a
/// `share_cores` lease); the user is warned once, by the lines returned, printed once a run
/// has reached the router (a wrong peer gets its one line and no more).
/// The result says which cores the two share: `None` when they share none, or where the
/// target's threads cannot be seen or are not pinned (the scheduler places them).
pub(in crate::cli) fn share_with_target(
    plan: &Plan,
    target_pids: &[u32],
    router: Option<(SocketAddr, &ExternalProbe)>,
    http: bool,
) -> (Option<report::CoreSharing>, Option<ShareLease>, Vec<String>) {
    let pinned = crate::host::pinned_cores(target_pids);
    let mut shared: Vec<usize> =
        plan.agents.iter().map(|s| s.core).filter(|c| pinned.contains(c)).collect();
    shared.dedup();
    if shared.is_empty() {
        return (None, None, Vec::new());
    }
    crate::placement::share_cores(&shared);
    let list = |v: &[usize]| v.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
    let mut notes = vec![format!(
        "warning: the {} on this host has threads pinned to core(s) {}, and agents run on core(s) {} too: every figure includes their contention",
        if http { "server" } else { "router" },
        list(&pinned),
        list(&shared)
    )];
    let lease = router.and_then(|(addr, _)| {
        let lease = ShareLease::start(addr, shared.iter().map(|&c| c as u32).collect());
        if lease.is_none() {
            notes.push(format!(
                "warning: the router did not take `share_cores` (built before 2026-12-03?): its shards on core(s) {} may watch their sockets while the agents there wait for the core",
                list(&shared)
            ));
        }
        lease
    });
    // A native router says which core each shard is on: the shared cores are then judged one
    // by one.
    let shards: Vec<usize> = match router {
        Some((_, probe)) => probe.stats().iter().map(|s| s.core as usize).collect(),
        None => Vec::new(),
    };
    let mut together: Vec<usize> = plan.agents.iter().map(|s| s.core).chain(pinned).collect();
    together.sort_unstable();
    together.dedup();
    (Some(core_sharing(&plan.agents, &shards, together.len())), lease, notes)
}

/// Where the embedded router and the agents share cores, by the plan.
pub(in crate::cli) fn plan_sharing(plan: &Plan) -> Option<report::CoreSharing> {
    let shards: Vec<usize> = plan.router.iter().map(|s| s.core).collect();
    Some(core_sharing(&plan.agents, &shards, plan.shared()?))
}

/// The agent cores of `agents` that a router shard is on (`shards`: each shard's core), as
/// pairs of indices; `together`: how many cores the two use.
pub(super) fn core_sharing(
    agents: &[Slot],
    shards: &[usize],
    together: usize,
) -> report::CoreSharing {
    let pairs = agents
        .iter()
        .enumerate()
        .filter_map(|(a, s)| Some((a, shards.iter().position(|&c| c == s.core)?)))
        .collect();
    report::CoreSharing { pairs, together }
}

/// A router's `share_cores` lease, renewed by a thread of its own until dropped, then ended: a
/// run that ends leaves the router watching again at once, one that dies within
/// [`ShareLease::MS`].
pub(in crate::cli) struct ShareLease {
    pub(super) stop: Option<std::sync::mpsc::Sender<()>>,
    pub(super) renewer: Option<std::thread::JoinHandle<()>>,
}

impl ShareLease {
    /// Lease length; renewed every third of it.
    const MS: u32 = 3_000;

    /// Tells the router at `addr` once (`None` when it does not take the message), then keeps
    /// telling it.
    pub(super) fn start(addr: SocketAddr, cores: Vec<u32>) -> Option<ShareLease> {
        let lease = move |c: &mut crate::client::Client, lease_ms: u32| {
            let request_id = c.request_id();
            let share =
                crate::wire::control::ShareCores { request_id, cores: cores.clone(), lease_ms };
            matches!(
                c.call(crate::wire::Control::ShareCores(share)),
                Ok(crate::wire::Control::Ack(_))
            )
        };
        let mut conn = crate::client::Client::connect(addr).ok()?;
        conn.set_timeout(Duration::from_secs(2)).ok()?;
        if !lease(&mut conn, Self::MS) {
            return None;
        }
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let every = Duration::from_millis(u64::from(Self::MS) / 3);
        let renewer = std::thread::Builder::new()
            .name("share-lease".into())
            .spawn(move || {
                let mut conn = Some(conn);
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(every)
                {
                    // A connection that failed is opened again at the next renewal.
                    let told = conn.as_mut().is_some_and(|c| lease(c, Self::MS));
                    if !told {
                        conn = crate::client::Client::connect(addr).ok().and_then(|mut c| {
                            c.set_timeout(Duration::from_secs(2)).ok()?;
                            lease(&mut c, Self::MS).then_some(c)
                        });
                    }
                }
                // The run is over: the router watches again at once, not when the lease ends.
                if let Some(c) = conn.as_mut() {
                    lease(c, 0);
                }
            })
            .ok()?;
        Some(ShareLease { stop: Some(stop), renewer: Some(renewer) })
    }
}

impl Drop for ShareLease {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(r) = self.renewer.take() {
            let _ = r.join();
        }
    }
}

/// Where router and agents share cores without the user having clearly asked for it.
pub(super) fn placement_warnings(
    target: &Target,
    plan: &Plan,
    agent_cores_given: bool,
    http: bool,
    poll: bool,
) -> Vec<String> {
    let list = |s: &[Slot]| s.iter().map(|x| x.core.to_string()).collect::<Vec<_>>().join(",");
    let shared: Vec<Slot> =
        plan.agents.iter().copied().filter(|s| plan.router.contains(s)).collect();
    match target {
        Target::Embedded { .. } if !shared.is_empty() => vec![format!(
            "warning: the router and the agents share core(s) {}: every figure includes their contention{}",
            list(&shared),
            if poll {
                "; with --poll their threads never sleep and take turns in the OS scheduler (milliseconds each): give each its own core"
            } else {
                ""
            }
        )],
        Target::External { addr, .. } if addr.ip().is_loopback() && !agent_cores_given => {
            vec![format!(
                "warning: agents run on every core (cores {}) and the {} is on this host: give --agent-cores to keep them apart",
                list(&plan.agents),
                if http { "server" } else { "router" }
            )]
        }
        _ => Vec::new(),
    }
}
