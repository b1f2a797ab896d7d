//! The routers of a comparison: those `compare` starts ([`RouterKind`]) and those already
//! running that it is pointed at (`--routers mine=tcp://host:port`), each read the same way.

use std::net::SocketAddr;
use std::time::Duration;

use super::*;
use crate::cli::bench::{share_with_target, ExternalProbe, ShareLease};
use crate::loadgen::{Protocol, RouterProbe};
use crate::transport::Transport;

/// One entry of `--routers`.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Entry {
    /// A router compare starts on the router cores.
    Own(RouterKind),
    /// A router already running, reached at its URL's address over its scheme's transport.
    External { url: String, addr: SocketAddr, transport: Transport },
}

impl Entry {
    pub(super) fn kind(&self) -> Option<RouterKind> {
        match self {
            Entry::Own(k) => Some(*k),
            Entry::External { .. } => None,
        }
    }
}

/// Refuses, before anything runs, a running router of `entries` that does not answer.
pub(super) fn check_running(entries: &[Entry], protocol: Protocol) -> anyhow::Result<()> {
    for e in entries {
        if let Entry::External { url, addr, .. } = e {
            crate::loadgen::check_reachable(*addr, protocol)
                .map_err(|why| anyhow::anyhow!("--routers: {url}: {why}"))?;
        }
    }
    Ok(())
}

/// `--routers`: at least two, each a router compare starts (`glommio`, `tokio-shared`,
/// `tokio-per-core`) or a running one, `[NAME=]tcp://host:port` or `[NAME=]ws://host:port[/path]`
/// (named by NAME, else by its host:port); with their names in the reports.
pub(super) fn parse_routers(
    list: &str,
    protocol: Protocol,
) -> anyhow::Result<(Vec<Entry>, Vec<String>)> {
    let mut entries = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (entry, name) =
            parse_entry(item, protocol).map_err(|e| anyhow::anyhow!("--routers: {e}"))?;
        if names.contains(&name) {
            bail!("--routers: {name} is named twice (each router runs once per round)");
        }
        entries.push(entry);
        names.push(name);
    }
    if names.len() < 2 {
        bail!("--routers: name at least two routers");
    }
    Ok((entries, names))
}

fn parse_entry(item: &str, protocol: Protocol) -> Result<(Entry, String), String> {
    if !item.contains("://") {
        if item.contains('=') {
            return Err(format!(
                "'{item}': NAME= goes before a router's URL (NAME=tcp://host:port)"
            ));
        }
        let kind = item.parse::<RouterKind>().map_err(|e| {
            format!("{e}, or a running router's URL: [NAME=]tcp://host:port or ws://host:port")
        })?;
        return Ok((Entry::Own(kind), kind.name().to_string()));
    }
    let (name, url) = match item.split_once('=') {
        Some((name, url)) if !name.contains("://") => (Some(name.trim()), url.trim()),
        _ => (None, item),
    };
    let (scheme, addr) = crate::cli::parse_router_url(url)?;
    let transport = if scheme == "ws" { Transport::Ws } else { Transport::Tcp };
    if protocol == Protocol::Json && transport != Transport::Ws {
        return Err(format!("{url}: the JSON protocol runs over WebSocket: give a ws:// URL"));
    }
    let name = match name {
        Some("") => return Err(format!("'{item}': the name before = is empty")),
        Some(n) if n.contains('/') || n.contains(' ') => {
            return Err(format!(
                "'{n}': a router's name has no '/' or spaces (ratios are keyed first/other)"
            ));
        }
        Some(n) if n.parse::<RouterKind>().is_ok() => {
            return Err(format!("'{n}' is a router compare starts: name {url} otherwise"));
        }
        Some(n) => n.to_string(),
        None => addr.to_string(),
    };
    Ok((Entry::External { url: url.to_string(), addr, transport }, name))
}

/// A router of the comparison, running.
pub(super) enum Contender {
    Own(AnyRouter),
    External(Box<External>),
}

/// A running router compare did not start: where it is, and what this machine can see of it.
pub(super) struct External {
    pub(super) url: String,
    addr: SocketAddr,
    transport: Transport,
    /// Its counters, when it speaks the native protocol (an a2a-bench router).
    probe: Option<ExternalProbe>,
    /// Its processes, when it runs on this machine: their CPU is its CPU.
    pub(super) pids: Vec<u32>,
    /// The cores its threads are pinned to, one each.
    pub(super) pinned: Vec<usize>,
    /// Where its threads and the agents share cores.
    sharing: Option<report::CoreSharing>,
    /// Keeps telling a native one which cores it shares with the agents.
    _lease: Option<ShareLease>,
    /// The agents' heartbeat period, by the timeout it says it has.
    keepalive: Option<Duration>,
    /// Warnings said as the comparison begins (cores it shares with the agents).
    pub(super) notes: Vec<String>,
}

impl External {
    /// Looks at it: its processes here, its cores, its counters.
    pub(super) fn reach(
        url: &str,
        addr: SocketAddr,
        transport: Transport,
        cfg: &BenchConfig,
    ) -> External {
        let probe = (cfg.protocol() == Protocol::Native).then(|| ExternalProbe::new(addr));
        let pids = crate::host::listeners(addr);
        let pinned = crate::host::pinned_cores(&pids);
        let (sharing, lease, notes) =
            share_with_target(cfg.plan(), &pids, probe.as_ref().map(|p| (addr, p)), false);
        let keepalive = probe.as_ref().and_then(ExternalProbe::heartbeat_timeout).map(|t| t / 3);
        External {
            url: url.to_string(),
            addr,
            transport,
            probe,
            pids,
            pinned,
            sharing,
            _lease: lease,
            keepalive,
            notes,
        }
    }
}

impl Contender {
    pub(super) fn addr(&self) -> SocketAddr {
        match self {
            Contender::Own(r) => r.local_addr(),
            Contender::External(x) => x.addr,
        }
    }

    pub(super) fn probe(&self) -> Option<&dyn RouterProbe> {
        match self {
            Contender::Own(r) => Some(r),
            Contender::External(x) => x.probe.as_ref().map(|p| p as &dyn RouterProbe),
        }
    }

    /// Its processes on this machine other than this one (none for a router compare started).
    pub(super) fn pids(&self) -> &[u32] {
        match self {
            Contender::Own(_) => &[],
            Contender::External(x) => &x.pids,
        }
    }

    /// How many cores its threads are pinned to (none for a router compare started, whose
    /// shards report their own CPU).
    pub(super) fn pinned(&self) -> usize {
        match self {
            Contender::Own(_) => 0,
            Contender::External(x) => x.pinned.len(),
        }
    }

    /// Where it and the agents share cores: an own router's by the plan (`own`), a running
    /// one's by where its threads are pinned.
    pub(super) fn sharing<'a>(
        &'a self,
        own: Option<&'a report::CoreSharing>,
    ) -> Option<&'a report::CoreSharing> {
        match self {
            Contender::Own(_) => own,
            Contender::External(x) => x.sharing.as_ref(),
        }
    }

    /// `spec` as this router is reached: a running one over its URL's transport, with
    /// heartbeats within its own timeout.
    pub(super) fn adapt(&self, spec: &mut loadgen::Scenario) {
        if let Contender::External(x) = self {
            spec.transport = x.transport;
            if let (Some(every), Some(k)) = (spec.keepalive.as_mut(), x.keepalive) {
                *every = k;
            }
        }
    }

    /// Stops a router compare started; a running one is left running.
    pub(super) fn stop(self) {
        if let Contender::Own(r) = self {
            r.stop();
        }
    }
}
