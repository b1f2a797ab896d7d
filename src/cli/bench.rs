//! `a2a-bench` without a subcommand: run a benchmark grid and report it.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;

use super::{parse_bytes, parse_router_url, parse_secs, slots_for, RouterArgs};
use crate::loadgen::{
    self, Hooks, Interrupt, Pacing, Protocol, RouterProbe, Scenario, Stop, Topology, Workload,
};
use crate::placement::{Machine, Plan, Slot};
use crate::report::threshold::Threshold;
use crate::report::{self, PlacementInfo, Report, ReportConfig, RunResult, RunSpec, Summary};
use crate::router::{Router, RouterConfig, RouterHandle};
use crate::transport::{Io, Transport};
use crate::wire::Compression;

/// The benchmark's flags (the seed load tester's, plus ours).
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Agent counts to run [default: 10,50,100; --quick: 5,10].
    #[arg(long, value_name = "LIST")]
    pub(super) agents: Option<String>,
    /// Requests per agent in the measured window, per run (count mode) [default: duration mode].
    #[arg(long, value_name = "LIST", conflicts_with = "duration")]
    pub(super) messages: Option<String>,
    /// Seconds of measured window per run (duration mode) [default: 3; --quick: 1].
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub(super) duration: Option<Duration>,
    /// Topologies: star, mesh, ring, line, hierarchical [default: star,mesh,ring].
    #[arg(long, value_name = "LIST")]
    pub(super) topologies: Option<String>,
    /// Children per node in the hierarchical topology.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub(super) fanout: u32,
    /// What agents do, per run: request-reply (along the topology), fanout, broadcast, locks,
    /// barriers (docs/REPORT.md, "Workloads") [default: request-reply].
    #[arg(long, value_name = "LIST")]
    pub(super) workload: Option<String>,
    /// fanout: subscribers of each agent's topic (capped at agents − 1).
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub(super) subscribers: u32,
    /// delegation: subtasks a specialist hands to workers per task.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub(super) subtasks: u32,
    /// consensus, election: agents per group (consensus: a leader and its followers, at least
    /// 2; election: at least 3).
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub(super) replicas: u32,
    /// locks: how many locks the agents contend for.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub(super) locks: u32,
    /// locks: how long a holder keeps a lock once granted; churn: how long a passing agent
    /// stays once its message is answered; in ms.
    #[arg(long, value_name = "MS", default_value = "1", value_parser = parse_secs_ms)]
    pub(super) hold: Duration,
    /// Open loop: milliseconds between one agent's requests, per run; 0 is closed loop (send
    /// without pause, as the seed tester does) [default: closed loop].
    #[arg(long, value_name = "LIST", conflicts_with = "rate")]
    pub(super) intervals: Option<String>,
    /// Open loop: total requests per second over all agents, per run [default: closed loop].
    #[arg(long, value_name = "LIST")]
    pub(super) rate: Option<String>,
    /// Requests in flight per agent (closed loop), or their cap (open loop).
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub(super) window: u32,
    /// Repetitions of each scenario [default: 3; --quick: 1].
    #[arg(long, value_name = "N")]
    pub(super) repeat: Option<u32>,
    /// Seconds of warm-up before each measured window (excluded from every figure)
    /// [default: 1; --quick: 0.3].
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub(super) warmup: Option<Duration>,
    /// Seconds to wait for replies in flight once sending stops.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_secs)]
    pub(super) drain_timeout: Duration,
    /// JSON report file [default: benchmark_results.json; compare: compare_results.json].
    #[arg(long, value_name = "FILE")]
    pub(super) output: Option<PathBuf>,
    /// Also write one CSV row per run to this file.
    #[arg(long, value_name = "FILE")]
    pub(super) csv: Option<PathBuf>,
    /// Also write a self-contained HTML report (charts, no network) to this file.
    #[arg(long, value_name = "FILE")]
    pub(super) html: Option<PathBuf>,
    /// Length of one time-series interval (throughput, p50/p99, errors, CPU per core), in
    /// seconds; 0 keeps no time series.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_secs)]
    pub(super) interval: Duration,
    /// Write each run's HdrHistogram interval log (V2, one histogram per --interval) into
    /// this directory.
    #[arg(long, value_name = "DIR")]
    pub(super) hlog: Option<PathBuf>,
    /// Pass/fail criterion checked per scenario at the end, e.g. p99<5ms, throughput>1M,
    /// errors==0, errors<0.1% (repeatable); one that fails makes the exit code 99.
    #[arg(long = "threshold", value_name = "EXPR")]
    pub(super) thresholds: Vec<String>,
    /// A saved report to compare with: throughput and p99 per scenario, and whether the change
    /// is beyond the repeats' spread.
    #[arg(long, value_name = "FILE")]
    pub(super) baseline: Option<PathBuf>,
    /// For each scenario, search the highest open-loop rate that holds --slo and is
    /// sustained (grow, then bisect; each step confirmed by a repeat).
    #[arg(long, requires = "slo", conflicts_with_all = ["rate", "intervals", "messages"])]
    pub(super) find_max_rate: bool,
    /// The objective of --find-max-rate, e.g. 'p99<5ms,errors<0.1%'.
    #[arg(long, value_name = "EXPR", requires = "find_max_rate")]
    pub(super) slo: Option<String>,
    /// --find-max-rate stops when the highest held and lowest failing rates are this close
    /// (a share of the failing one).
    #[arg(long, value_name = "SHARE", default_value_t = 0.05, requires = "find_max_rate")]
    pub(super) search_precision: f64,
    /// A fast grid that finishes in well under a minute.
    #[arg(long)]
    pub(super) quick: bool,
    /// Drive an external router instead of starting the embedded one: tcp://host:port (native
    /// frames), or ws://host:port[/path] (WebSocket; with --protocol json, the seed protocol).
    #[arg(long, value_name = "URL")]
    pub(super) router: Option<String>,
    /// Cores to use (e.g. 0-15); split between the embedded router and the agents
    /// [default: every core].
    #[arg(long, value_name = "LIST")]
    pub(super) cores: Option<String>,
    /// Cores for the embedded router's shards [default: half of --cores, spread over NUMA nodes].
    #[arg(long, value_name = "LIST")]
    pub(super) router_cores: Option<String>,
    /// Cores for the agent groups [default: the cores the router does not take].
    #[arg(long, value_name = "LIST")]
    pub(super) agent_cores: Option<String>,
    /// Payload bytes per request (at least 16: the send times travel in it).
    #[arg(long, value_name = "BYTES", default_value = "64", value_parser = parse_bytes)]
    pub(super) payload_size: usize,
    /// Most messages per frame.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub(super) batch: u32,
    /// Frame compression of agents and embedded router: none, auto (LZ4 above 1 KiB when it
    /// shrinks below 90 %), lz4. On one machine LZ4 costs more CPU than it saves.
    #[arg(long, value_name = "MODE", default_value = "none")]
    pub(super) compression: Compression,
    /// Agents sharing one connection.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub(super) agents_per_conn: u32,
    /// How agents reach the router: tcp, or ws (frames in WebSocket binary messages)
    /// [default: tcp, or the scheme of --router; ws with --protocol json].
    #[arg(long, value_name = "TRANSPORT")]
    pub(super) transport: Option<Transport>,
    /// Socket I/O of the agent cores: uring (a second io_uring per core: multishot receive
    /// into provided buffers, batched sends, no reschedule IPIs; without kernel support:
    /// glommio, said once), or glommio (its streams). TCP only; WebSocket stays on glommio.
    #[arg(long, value_name = "IO", default_value = "uring")]
    pub(super) agent_io: Io,
    /// Let a sharded router place connections as it likes (by load): without it each raw-TCP
    /// connection opens with a `home` frame keyed by its first agent's index, and the router
    /// puts connections with neighbouring agents on the same shard, so that messages along the
    /// topology rarely cross shards.
    #[arg(long)]
    pub(super) no_homing: bool,
    /// What agents speak: native (a2a-bench frames), or json (the seed system's JSON protocol
    /// over WebSocket, to measure routers that speak it).
    #[arg(long, value_name = "PROTOCOL", default_value = "native")]
    pub(super) protocol: Protocol,
    /// Priority of every message (0-10).
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub(super) priority: u8,
    /// Open loop: a send leaving later than this after its intended time counts as late (ms).
    #[arg(long, value_name = "MS", default_value = "1", value_parser = parse_secs_ms)]
    pub(super) late_after_ms: Duration,
    /// Seconds a thread spins on each core in use before the runs, counting the time the
    /// machine takes the core away (gaps over 20, 100 and 500 µs: a hypervisor, interrupts,
    /// other threads), so that tail latencies of that size are not taken for the router's;
    /// in the report's host.stalls and the summary. 0 skips it.
    #[arg(long, value_name = "SECS", default_value = "0.5", value_parser = parse_secs)]
    pub(super) stall_probe: Duration,
    #[command(flatten)]
    pub(super) router_flags: RouterArgs,
}

pub(super) fn parse_secs_ms(s: &str) -> Result<Duration, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.0..1e9).contains(&v) => Ok(Duration::from_secs_f64(v / 1e3)),
        _ => Err(format!("'{s}' is not a number of milliseconds")),
    }
}

/// How one grid dimension paces requests.
#[derive(Debug, Clone, Copy, PartialEq)]
enum PacingSpec {
    Closed,
    /// Milliseconds between one agent's requests.
    Interval(u64),
    /// Total requests per second.
    Rate(f64),
}

/// Where the agents send.
#[derive(Debug, Clone)]
enum Target {
    Embedded { slots: Vec<Slot> },
    External { url: String, addr: SocketAddr },
}

/// The validated benchmark configuration.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    agents: Vec<u32>,
    stops: Vec<Stop>,
    topologies: Vec<Topology>,
    workloads: Vec<Workload>,
    pacings: Vec<PacingSpec>,
    window: u32,
    repeat: u32,
    warmup: Duration,
    drain_timeout: Duration,
    output: PathBuf,
    csv: Option<PathBuf>,
    html: Option<PathBuf>,
    interval: Option<Duration>,
    hlog: Option<PathBuf>,
    thresholds: Vec<Threshold>,
    baseline: Option<PathBuf>,
    search: Option<super::search::SearchConfig>,
    /// `a2a-bench worker`: this process's slice of a multi-host run.
    worker: Option<super::worker::WorkerRole>,
    target: Target,
    plan: Plan,
    payload: usize,
    batch: u32,
    compression: Compression,
    agents_per_conn: u32,
    priority: u8,
    late_after: Duration,
    stall_probe: Duration,
    router_flags: RouterArgs,
    transport: Transport,
    io: Io,
    homing: bool,
    protocol: Protocol,
    report_config: ReportConfig,
    /// Placement the user may not have meant, one line each, printed before the first run.
    warnings: Vec<String>,
    /// `a2a-bench http`: what the clients send.
    http: Option<std::sync::Arc<crate::loadgen::http::Plan>>,
    /// `a2a-bench http --connections`: connections the clients of a run share.
    connections: Option<u32>,
}

fn list<T: std::str::FromStr>(flag: &str, spec: &str) -> anyhow::Result<Vec<T>>
where
    T::Err: std::fmt::Display,
{
    let items: Result<Vec<T>, String> = spec
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<T>().map_err(|e| format!("'{s}': {e}")))
        .collect();
    let items = items.map_err(|e| anyhow::anyhow!("{flag}: {e}"))?;
    if items.is_empty() {
        bail!("{flag}: the list is empty");
    }
    Ok(items)
}

impl TryFrom<BenchArgs> for BenchConfig {
    type Error = anyhow::Error;

    fn try_from(mut a: BenchArgs) -> anyhow::Result<BenchConfig> {
        let quick = a.quick;
        let agents: Vec<u32> = list(
            "--agents",
            a.agents.as_deref().unwrap_or(if quick { "5,10" } else { "10,50,100" }),
        )?;
        let http = a.protocol == Protocol::Http;
        if let Some(&bad) = agents.iter().find(|&&n| !(2..=(1 << 21)).contains(&n)) {
            if !(http && bad == 1) {
                bail!(
                    "--agents: {bad} is out of range (2 to 2097152: a topology needs two agents)"
                );
            }
        }
        let (stops, message_counts, duration_sec) = match &a.messages {
            Some(spec) => {
                let counts: Vec<u64> = list("--messages", spec)?;
                if counts.contains(&0) {
                    bail!("--messages: counts must be at least 1");
                }
                (counts.iter().map(|&per_agent| Stop::Count { per_agent }).collect(), counts, None)
            }
            None => {
                let d = a.duration.unwrap_or(Duration::from_secs(if quick { 1 } else { 3 }));
                if d.is_zero() {
                    bail!("--duration must be above 0");
                }
                (vec![Stop::Duration(d)], Vec::new(), Some(d.as_secs_f64()))
            }
        };
        if a.fanout == 0 {
            bail!("--fanout must be at least 1");
        }
        let topologies: Vec<Topology> =
            list::<Topology>("--topologies", a.topologies.as_deref().unwrap_or("star,mesh,ring"))?
                .into_iter()
                .map(|t| match t {
                    Topology::Hierarchical { .. } => Topology::Hierarchical { fanout: a.fanout },
                    other => other,
                })
                .collect();
        let workloads: Vec<Workload> =
            list::<Workload>("--workload", a.workload.as_deref().unwrap_or("request-reply"))?
                .into_iter()
                .map(|w| match w {
                    Workload::Fanout { .. } => Workload::Fanout { subscribers: a.subscribers },
                    Workload::Locks { .. } => Workload::Locks { locks: a.locks, hold: a.hold },
                    Workload::Churn { .. } => Workload::Churn { stay: a.hold },
                    Workload::Consensus { .. } => Workload::Consensus { replicas: a.replicas },
                    Workload::Delegation { .. } => Workload::Delegation { subtasks: a.subtasks },
                    Workload::Election { .. } => Workload::Election { replicas: a.replicas },
                    other => other,
                })
                .collect();
        if workloads.iter().any(|w| !w.uses_topology()) {
            // The seed's JSON protocol has locks, barriers and broadcasts, nothing else.
            let seed = |w: &&Workload| {
                a.protocol == Protocol::Json
                    && matches!(
                        w,
                        Workload::Locks { .. } | Workload::Barriers | Workload::Broadcast
                    )
            };
            let other = workloads.iter().filter(|w| !w.uses_topology()).find(|w| !seed(w));
            if let (true, Some(w)) = (a.protocol != Protocol::Native, other) {
                bail!("--workload {w}: the {} protocol runs request-reply{}; {w} needs the native protocol", a.protocol, if a.protocol == Protocol::Json { ", locks, barriers and broadcast" } else { "" });
            }
            if a.subscribers == 0 {
                bail!("--subscribers must be at least 1");
            }
            if a.locks == 0 {
                bail!("--locks must be at least 1");
            }
        }
        let churn = workloads.iter().any(|w| matches!(w, Workload::Churn { .. }));
        if churn {
            if let Some(&n) = agents.iter().find(|&&n| n > crate::loadgen::native::JOIN_OFFSET) {
                bail!("--agents: {n} is above {} with --workload churn (each agent has a second, passing identity)", crate::loadgen::native::JOIN_OFFSET);
            }
        }
        let consensus = workloads.iter().any(|w| matches!(w, Workload::Consensus { .. }));
        let delegation = workloads.iter().any(|w| matches!(w, Workload::Delegation { .. }));
        if delegation {
            if a.subtasks == 0 {
                bail!("--subtasks must be at least 1");
            }
            if let Some(&n) = agents.iter().find(|&&n| n < 3) {
                bail!("--agents: {n} is too few for --workload delegation (a coordinator, a specialist and a worker)");
            }
        }
        let election = workloads.iter().any(|w| matches!(w, Workload::Election { .. }));
        if election {
            if a.replicas < 3 {
                bail!("--replicas must be at least 3 with --workload election (an observer, a leader to kill and one to take over)");
            }
            if let Some(&n) = agents.iter().find(|&&n| n < 3) {
                bail!("--agents: {n} is too few for --workload election (at least 3)");
            }
        }
        if consensus && a.replicas < 2 {
            bail!("--replicas must be at least 2 (a leader and a follower)");
        }
        let open = a.rate.is_some()
            || a.find_max_rate
            || a.intervals.as_deref().is_some_and(|i| i.split(',').any(|m| m.trim() != "0"));
        let closed_only = workloads.iter().find(|w| {
            matches!(
                w,
                Workload::Barriers
                    | Workload::Consensus { .. }
                    | Workload::Election { .. }
                    | Workload::Delegation { .. }
            )
        });
        if let (true, Some(w)) = (open, closed_only) {
            let why = if *w == Workload::Barriers {
                "a round begins when the last one released"
            } else {
                "only some agents start operations, each when its last one ended"
            };
            bail!("--workload {w} runs closed loop ({why}): drop --rate, --intervals and --find-max-rate");
        }
        if workloads.iter().any(Workload::fans_out)
            && a.window > crate::loadgen::workload::FAN_WINDOW_MAX
        {
            bail!(
                "--window: at most {} with --workload fanout or broadcast",
                crate::loadgen::workload::FAN_WINDOW_MAX
            );
        }
        let (pacings, intervals, rates) = match (&a.intervals, &a.rate) {
            (Some(spec), _) => {
                let ms: Vec<u64> = list("--intervals", spec)?;
                // 0 sends without pause, as in the seed tester: closed loop.
                let specs = ms
                    .iter()
                    .map(|&m| if m == 0 { PacingSpec::Closed } else { PacingSpec::Interval(m) })
                    .collect();
                (specs, ms, Vec::new())
            }
            (None, Some(spec)) => {
                let r: Vec<f64> = list("--rate", spec)?;
                if let Some(bad) = r.iter().find(|&&x| !(x > 0.0 && x.is_finite())) {
                    bail!("--rate: {bad} is not a rate (a positive, finite number of requests per second)");
                }
                (r.iter().map(|&x| PacingSpec::Rate(x)).collect(), Vec::new(), r)
            }
            (None, None) => (vec![PacingSpec::Closed], Vec::new(), Vec::new()),
        };
        if a.window == 0 {
            bail!("--window must be at least 1");
        }
        let repeat = a.repeat.unwrap_or(if quick { 1 } else { 3 });
        if repeat == 0 {
            bail!("--repeat must be at least 1");
        }
        if a.payload_size < 16 || a.payload_size > 4 << 20 {
            bail!("--payload-size must be between 16 and 4M bytes (the send times take 16)");
        }
        if a.batch == 0 {
            bail!("--batch must be at least 1");
        }
        if a.agents_per_conn == 0 {
            bail!("--agents-per-conn must be at least 1");
        }
        if a.priority > 10 {
            bail!("--priority must be 0 to 10");
        }
        let machine = Machine::detect();
        let all = match &a.cores {
            Some(spec) => slots_for("--cores", spec, &machine)?,
            None => machine.cores.clone(),
        };
        let json = a.protocol == Protocol::Json;
        let mut transport =
            a.transport.unwrap_or(if json { Transport::Ws } else { Transport::Tcp });
        let topologies = match (http, topologies.contains(&Topology::Client)) {
            (true, _) => vec![Topology::Client],
            (false, true) => {
                bail!("--topologies client: that is `a2a-bench http`'s (clients of one server)")
            }
            (false, false) => topologies,
        };
        if http && a.router.is_none() {
            bail!("--protocol http: run `a2a-bench http --url URL --pattern …`");
        }
        let (target, plan) = match &a.router {
            Some(url) => {
                let (scheme, addr) =
                    parse_router_url(url).map_err(|e| anyhow::anyhow!("--router: {e}"))?;
                let implied = if scheme == "ws" { Transport::Ws } else { Transport::Tcp };
                if a.transport.is_some_and(|t| t != implied) {
                    bail!("--transport {transport} contradicts --router {url}");
                }
                transport = implied;
                if a.router_cores.is_some() {
                    bail!("--router-cores: there is no embedded router with --router");
                }
                let agents = match &a.agent_cores {
                    Some(spec) => slots_for("--agent-cores", spec, &machine)?,
                    None => all.clone(),
                };
                (Target::External { url: url.clone(), addr }, Plan { router: Vec::new(), agents })
            }
            None => {
                let mut plan = Plan::split(&all);
                if let Some(spec) = &a.router_cores {
                    plan.router = slots_for("--router-cores", spec, &machine)?;
                    plan.agents =
                        all.iter().copied().filter(|s| !plan.router.contains(s)).collect();
                }
                if let Some(spec) = &a.agent_cores {
                    plan.agents = slots_for("--agent-cores", spec, &machine)?;
                }
                if plan.agents.is_empty() {
                    bail!("--agent-cores: no core left for the agents (give more --cores)");
                }
                if plan.router.len() > 64 {
                    bail!("--router-cores: at most 64 shards");
                }
                (Target::Embedded { slots: plan.router.clone() }, plan)
            }
        };
        a.router_flags.shard_config(a.compression)?;
        let mut warnings =
            placement_warnings(&target, &plan, a.agent_cores.is_some(), http, a.router_flags.poll);
        let (agent_io, why_agents) = crate::transport::uring::effective(a.agent_io);
        let (router_io, why_router) = crate::transport::uring::effective(a.router_flags.router_io);
        warnings.extend(why_agents.or(why_router)); // the same probe: said once
        a.agent_io = agent_io;
        a.router_flags.router_io = router_io;
        if json && transport != Transport::Ws {
            bail!(
                "--protocol json runs over WebSocket: drop --transport tcp or use a ws:// --router"
            );
        }
        if json && a.agents_per_conn != 1 {
            bail!("--agents-per-conn: the JSON protocol has one connection per agent");
        }
        let report_config = ReportConfig {
            agent_counts: agents.clone(),
            message_counts,
            topologies: topologies.iter().map(|t| t.name().to_string()).collect(),
            message_intervals_ms: intervals,
            repeat_count: repeat,
            duration_sec,
            rates_per_sec: rates,
            window: a.window,
            warmup_sec: 0.0,
            payload_size: a.payload_size,
            batch: a.batch,
            compression: a.compression.to_string(),
            agents_per_conn: a.agents_per_conn,
            fanout: a.fanout,
            router: a.router.clone(),
            transport: transport.to_string(),
            agent_io: a.agent_io.to_string(),
            router_io: a.router_flags.router_io.to_string(),
            poll: a.router_flags.poll,
            homing: !a.no_homing,
            protocol: a.protocol.to_string(),
            http: None,
        };
        let warmup = a.warmup.unwrap_or(Duration::from_millis(if quick { 300 } else { 1000 }));
        let thresholds = a
            .thresholds
            .iter()
            .map(|t| t.parse::<Threshold>().map_err(|e| anyhow::anyhow!("--threshold: {e}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let search = match (&a.slo, a.find_max_rate) {
            (Some(slo), true) => {
                if !(a.search_precision > 0.0 && a.search_precision < 0.5) {
                    bail!("--search-precision must be a share between 0 and 0.5");
                }
                Some(super::search::SearchConfig {
                    slo: report::threshold::parse_list("--slo", slo)?,
                    slo_text: slo.clone(),
                    precision: a.search_precision,
                })
            }
            _ => None,
        };
        match (&search, thresholds.iter().find(|t| t.is_about_search() != search.is_some())) {
            (Some(_), Some(t)) => bail!(
                "--threshold '{}': with --find-max-rate only max_rate thresholds apply (e.g. max_rate>50k)",
                t.text()
            ),
            (None, Some(t)) => {
                bail!("--threshold '{}': max_rate needs --find-max-rate --slo", t.text())
            }
            _ => {}
        }
        if !a.interval.is_zero() && a.interval < Duration::from_millis(100) {
            bail!("--interval: at least 0.1 s (each interval copies every agent core's histogram), or 0 for none");
        }
        if a.interval.is_zero() && a.hlog.is_some() {
            bail!("--hlog writes one histogram per --interval: give an --interval above 0");
        }
        Ok(BenchConfig {
            agents,
            stops,
            topologies,
            workloads,
            pacings,
            window: a.window,
            repeat,
            warmup,
            drain_timeout: a.drain_timeout,
            output: a.output.unwrap_or_else(|| PathBuf::from("benchmark_results.json")),
            csv: a.csv,
            html: a.html,
            interval: (!a.interval.is_zero()).then_some(a.interval),
            hlog: a.hlog,
            thresholds,
            baseline: a.baseline,
            search,
            worker: None,
            target,
            plan,
            payload: a.payload_size,
            batch: a.batch,
            compression: a.compression,
            agents_per_conn: a.agents_per_conn,
            priority: a.priority,
            late_after: a.late_after_ms,
            stall_probe: a.stall_probe,
            router_flags: a.router_flags,
            transport,
            io: a.agent_io,
            homing: !a.no_homing,
            protocol: a.protocol,
            report_config: ReportConfig { warmup_sec: warmup.as_secs_f64(), ..report_config },
            warnings,
            http: None,
            connections: None,
        })
    }
}

/// A target on this machine whose threads are pinned to cores the agents use as well (an
/// `a2a-bench router --cores 0-1` beside agents on core 1): the agents' rings are told not to
/// watch there ([`crate::placement::share_cores`]), and so is the router when it speaks the
/// native protocol (`router`: its address and the probe that reads its counters; a
/// `share_cores` lease); the user is warned once, by the lines returned, printed once a run
/// has reached the router (a wrong peer gets its one line and no more).
/// The result says which cores the two share: `None` when they share none, or where the
/// target's threads cannot be seen or are not pinned (the scheduler places them).
fn share_with_target(
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
pub(super) fn plan_sharing(plan: &Plan) -> Option<report::CoreSharing> {
    let shards: Vec<usize> = plan.router.iter().map(|s| s.core).collect();
    Some(core_sharing(&plan.agents, &shards, plan.shared()?))
}

/// The agent cores of `agents` that a router shard is on (`shards`: each shard's core), as
/// pairs of indices; `together`: how many cores the two use.
fn core_sharing(agents: &[Slot], shards: &[usize], together: usize) -> report::CoreSharing {
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
struct ShareLease {
    stop: Option<std::sync::mpsc::Sender<()>>,
    renewer: Option<std::thread::JoinHandle<()>>,
}

impl ShareLease {
    /// Lease length; renewed every third of it.
    const MS: u32 = 3_000;

    /// Tells the router at `addr` once (`None` when it does not take the message), then keeps
    /// telling it.
    fn start(addr: SocketAddr, cores: Vec<u32>) -> Option<ShareLease> {
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
fn placement_warnings(
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

impl BenchConfig {
    /// `a2a-bench http`: the clients of `plan` against the server at `url`.
    pub(super) fn into_http(
        mut self,
        url: &str,
        plan: crate::loadgen::http::Plan,
        connections: Option<u32>,
        info: report::HttpConfig,
    ) -> BenchConfig {
        if let Target::External { addr, .. } = self.target {
            self.target = Target::External { url: url.to_string(), addr };
        }
        self.report_config.router = Some(url.to_string());
        self.report_config.http = Some(info);
        self.http = Some(std::sync::Arc::new(plan));
        self.connections = connections;
        self
    }

    /// The first flag given that `a2a-bench compare` does not take.
    pub fn not_for_compare(&self) -> Option<&'static str> {
        [
            (self.search.is_some(), "--find-max-rate"),
            (!self.thresholds.is_empty(), "--threshold"),
            (self.baseline.is_some(), "--baseline"),
            (self.hlog.is_some(), "--hlog"),
        ]
        .into_iter()
        .find_map(|(given, flag)| given.then_some(flag))
    }

    /// [`crate::host::probe_stalls`] for `--stall-probe` on the cores this configuration uses
    /// (the embedded router's and the agents'); nothing when it is 0, or for a worker of a
    /// multi-host run (its coordinator waits on it).
    pub fn probe_stalls(&self) -> Vec<crate::host::Stalls> {
        if self.stall_probe.is_zero() || self.worker.is_some() {
            return Vec::new();
        }
        let mut cores: Vec<usize> = self.plan.agents.iter().map(|s| s.core).collect();
        if matches!(self.target, Target::Embedded { .. }) {
            cores.extend(self.plan.router.iter().map(|s| s.core));
        }
        cores.sort_unstable();
        cores.dedup();
        crate::host::probe_stalls(&cores, self.stall_probe)
    }

    /// The same grid on other cores (an embedded router on `plan.router`, agents on
    /// `plan.agents`).
    pub fn with_plan(&self, plan: Plan) -> BenchConfig {
        let mut c = self.clone();
        c.target = Target::Embedded { slots: plan.router.clone() };
        c.plan = plan;
        c
    }

    /// `--csv` and `--html`, when given.
    pub fn exports(&self) -> (Option<&std::path::Path>, Option<&std::path::Path>) {
        (self.csv.as_deref(), self.html.as_deref())
    }

    /// Placement warnings, one line each.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Every run of the grid, in order: topology, agents, stop, pacing, repetition.
    pub fn grid(&self) -> Vec<RunSpec> {
        let salt = self.worker.as_ref().map_or(std::process::id() % 1000, |w| w.salt());
        let mut runs = Vec::new();
        let mut shapes: Vec<(Workload, Topology)> = Vec::new();
        for &w in &self.workloads {
            if w.uses_topology() {
                shapes.extend(self.topologies.iter().map(|&t| (w, t)));
            } else {
                // A workload without a topology runs once, whatever --topologies says.
                shapes.push((w, Topology::Mesh));
            }
        }
        for (workload, topology) in shapes {
            for &agents in &self.agents {
                let workload = match workload {
                    Workload::Fanout { subscribers } => Workload::Fanout {
                        subscribers: subscribers.min(agents.saturating_sub(1)).max(1),
                    },
                    w => w,
                };
                for &stop in &self.stops {
                    for &pacing in &self.pacings {
                        for repeat in 0..self.repeat {
                            let (pacing, interval_ms) = match pacing {
                                PacingSpec::Closed => {
                                    (Pacing::Closed { window: self.window }, None)
                                }
                                PacingSpec::Interval(ms) => (
                                    Pacing::Open {
                                        rate: f64::from(agents) * 1000.0 / ms as f64,
                                        window: self.window,
                                    },
                                    Some(ms),
                                ),
                                PacingSpec::Rate(rate) => {
                                    (Pacing::Open { rate, window: self.window }, None)
                                }
                            };
                            let id_base = 1 + ((salt + runs.len() as u32) % 2000) * (1 << 21);
                            runs.push(RunSpec {
                                scenario: Scenario {
                                    topology,
                                    agents,
                                    pacing,
                                    stop,
                                    warmup: self.warmup,
                                    drain_timeout: self.drain_timeout,
                                    payload_bytes: self.payload,
                                    batch_max: self.batch,
                                    compression: self.compression,
                                    agents_per_conn: match self.connections {
                                        Some(c) => agents.div_ceil(c.clamp(1, agents)),
                                        None => self.agents_per_conn,
                                    },
                                    agent_cores: self.plan.agents.clone(),
                                    late_after: self.late_after,
                                    priority: self.priority,
                                    id_base,
                                    transport: self.transport,
                                    io: self.io,
                                    poll: self.router_flags.poll,
                                    homing: self.homing,
                                    protocol: self.protocol,
                                    interval: self.interval,
                                    slice: self.worker.as_ref().map(|w| w.slice(agents)),
                                    http: self.http.clone(),
                                    workload,
                                },
                                repeat,
                                interval_ms,
                            });
                        }
                    }
                }
            }
        }
        runs
    }

    /// Where the report goes.
    pub fn output(&self) -> &std::path::Path {
        &self.output
    }

    /// The core split.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The report's `config` section.
    pub fn report_config(&self) -> &ReportConfig {
        &self.report_config
    }

    /// Shard settings for an embedded router (of any kind).
    pub fn router_shard_config(&self) -> anyhow::Result<crate::route::ShardConfig> {
        self.router_flags.shard_config(self.compression)
    }

    /// The latency-mode spin for an embedded router.
    pub fn router_spin(&self) -> Option<Duration> {
        self.router_flags.spin()
    }

    /// `--router-io`.
    pub fn router_io(&self) -> Io {
        self.router_flags.router_io
    }

    /// `--poll`, for an embedded router.
    pub fn router_flags_poll(&self) -> bool {
        self.router_flags.poll
    }
}

impl BenchArgs {
    /// Every flag at its default (what `a2a-bench` alone means).
    pub(super) fn defaults() -> BenchArgs {
        use clap::Parser;
        #[derive(Parser)]
        struct Defaults {
            #[command(flatten)]
            b: BenchArgs,
        }
        match Defaults::try_parse_from(["a2a-bench"]) {
            Ok(d) => d.b,
            Err(e) => unreachable!("the benchmark's defaults parse: {e}"),
        }
    }

    /// Whether `--router` names an external router.
    pub fn external_router(&self) -> bool {
        self.router.is_some()
    }

    /// `--output`, if given.
    pub fn output(&self) -> Option<&std::path::Path> {
        self.output.as_deref()
    }
}

/// Reads an external a2a-bench router's counters over the protocol, on one connection kept
/// for the whole session (so that the probe is not a stream of connections the router counts),
/// made again once if the router closed it.
struct ExternalProbe {
    addr: SocketAddr,
    conn: std::sync::Mutex<Option<crate::client::Client>>,
}

impl ExternalProbe {
    fn new(addr: SocketAddr) -> ExternalProbe {
        ExternalProbe { addr, conn: std::sync::Mutex::new(None) }
    }

    fn ask(&self, c: &mut crate::client::Client) -> Option<Vec<crate::wire::ShardStats>> {
        use crate::wire::control::StatsRequest;
        use crate::wire::Control;
        let request_id = c.request_id();
        match c.call(Control::StatsRequest(StatsRequest { request_id })) {
            Ok(Control::StatsReply(r)) => Some(r.shards),
            _ => None,
        }
    }

    fn connect(&self) -> Option<crate::client::Client> {
        let mut c = crate::client::Client::connect(self.addr).ok()?;
        c.set_timeout(Duration::from_secs(2)).ok()?;
        Some(c)
    }
}

impl RouterProbe for ExternalProbe {
    fn stats(&self) -> Vec<crate::wire::ShardStats> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = conn.as_mut() {
            if let Some(shards) = self.ask(c) {
                return shards;
            }
        }
        // No connection yet, or the kept one failed: one fresh try.
        *conn = self.connect();
        match conn.as_mut().and_then(|c| self.ask(c)) {
            Some(shards) => shards,
            None => {
                *conn = None;
                Vec::new()
            }
        }
    }
}

/// How a benchmark grid ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// Every run succeeded, every threshold held.
    AllOk,
    /// Some runs failed (the report says which).
    SomeFailed,
    /// A `--threshold` failed (exit code 99, as k6 does).
    ThresholdsFailed,
    /// Stopped by Ctrl-C; the report holds what finished.
    Interrupted,
}

/// Catches Ctrl-C (and SIGTERM): the first raises `interrupt` and says so on stderr, a second
/// exits at once with 130.
fn catch_interrupts(interrupt: &Interrupt) -> anyhow::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .context("installing signal handlers")?;
    let interrupt = interrupt.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for (seen, _) in signals.forever().enumerate() {
                if seen > 0 {
                    std::process::exit(i32::from(super::EXIT_INTERRUPTED));
                }
                interrupt.raise();
                eprintln!(
                    "interrupted: finishing the current run and writing the report; Ctrl-C again exits at once"
                );
            }
        })
        .context("starting the signal thread")?;
    Ok(())
}

/// What every run of a command shares: where to send, what to probe, where to tell.
pub(super) struct Session<'a> {
    pub(super) cfg: &'a BenchConfig,
    addr: SocketAddr,
    probe: Option<&'a dyn RouterProbe>,
    pub(super) interrupt: Interrupt,
    pub(super) progress: indicatif::ProgressBar,
    /// Runs made so far.
    pub(super) made: usize,
    /// The target's processes, when it runs on this machine in processes of its own
    /// ([`crate::host::listeners`]): their CPU is the target's, not other processes'.
    pub(super) target_pids: Vec<u32>,
    /// Where the router (or server) and the agents share cores: runs are then judged by those
    /// cores ([`report::CpuInfo::judge_shared`]).
    pub(super) shared: Option<report::CoreSharing>,
    /// Warnings to print once a run has reached the target (`share_with_target`'s).
    pub(super) notes: Vec<String>,
}

impl Session<'_> {
    /// Makes one run and prints its line; `None` when it could not start (the peer is
    /// unreachable or wrong: every other run would fail the same way), with why.
    pub(super) fn run(&mut self, spec: &RunSpec) -> Result<RunResult, String> {
        let sc = &spec.scenario;
        let label = format!("{} × {} {}", sc.shape(), sc.agents, describe_pacing(sc));
        self.progress.set_message(label.clone());
        let progress = self.progress.clone();
        let mut live = |iv: &loadgen::Interval| {
            let secs = iv.end_ns.saturating_sub(iv.start_ns).max(1) as f64 / 1e9;
            let p99 = crate::metrics::LatencySummary::of(&iv.rtt).p99_ms;
            progress.set_message(format!(
                "{label}: {} msgs/s, p99 {} ms at {:.0} s",
                report::text::rate(iv.deliveries as f64 / secs),
                report::text::ms(p99),
                iv.end_ns as f64 / 1e9
            ));
        };
        let (before_start, before_leave) = match &self.cfg.worker {
            Some(w) => {
                let meet = w.meet.unwrap_or(self.addr);
                let (start, leave) = w.hooks(meet, self.made, sc.id_base, self.cfg.drain_timeout);
                (Some(start), Some(leave))
            }
            None => (None, None),
        };
        let hooks = Hooks {
            probe: self.probe,
            at_measure_start: None,
            interrupt: Some(self.interrupt.clone()),
            on_interval: Some(&mut live),
            before_start,
            before_leave,
        };
        let before = crate::host::CpuTimes::with_target(&self.target_pids);
        let rescued = crate::transport::uring::rescued();
        let outcome = loadgen::run_with(sc, self.addr, hooks);
        let lost_wakeups = crate::transport::uring::rescued() - rescued;
        let ended = std::time::SystemTime::now();
        let cpu = before.zip(crate::host::CpuTimes::with_target(&self.target_pids));
        let others = cpu.map(|(a, b)| b.others_share_since(&a));
        if outcome.setup_failed {
            return Err(outcome.failures.join("; "));
        }
        for note in self.notes.drain(..) {
            self.progress.suspend(|| eprintln!("{note}"));
        }
        let i = self.made;
        self.made += 1;
        let mut result = RunResult::new(spec, &outcome);
        result.cpu.others_share = others;
        result.lost_wakeups = (lost_wakeups > 0).then_some(lost_wakeups);
        if !self.target_pids.is_empty() {
            result.cpu.target_cores = cpu.map(|(a, b)| b.target_cores_since(&a));
        }
        if let Some(sharing) = &self.shared {
            result.cpu.judge_shared(sharing);
        }
        if self.cfg.worker.is_some() {
            result.part = Some(report::part::Part::of(spec, &outcome));
        }
        if let Some(dir) = &self.cfg.hlog {
            let last = outcome.intervals.iter().map(|iv| iv.end_ns).max().unwrap_or(0);
            let start = ended.checked_sub(Duration::from_nanos(last)).unwrap_or(ended);
            let path = dir.join(hlog_name(i, sc));
            let comment = format!("a2a-bench run {}: {label}", i + 1);
            if let Err(e) = report::hlog::write(&path, &outcome.intervals, start, &comment) {
                self.progress.suspend(|| eprintln!("warning: {e:#}"));
            }
        }
        self.progress.suspend(|| {
            let _ = report::text::run_line(&mut std::io::stdout(), i, &result);
            busy_warning(i, others);
        });
        Ok(result)
    }
}

/// `run-007-mesh-100-open-12000-w16.hlog`.
fn hlog_name(i: usize, sc: &Scenario) -> String {
    let pacing = match sc.pacing {
        Pacing::Closed { window } => format!("closed-w{window}"),
        Pacing::Open { rate, window } => format!("open-{rate:.0}-w{window}"),
    };
    format!("run-{:03}-{}-{}-{pacing}.hlog", i + 1, sc.shape(), sc.agents)
}

/// Runs the grid described by `args`.
pub fn run(args: BenchArgs) -> anyhow::Result<Finish> {
    run_as(args, None)
}

/// Runs the grid described by `args`, as the whole run or as one worker's slice of it.
pub(super) fn run_as(
    mut args: BenchArgs,
    worker: Option<super::worker::WorkerRole>,
) -> anyhow::Result<Finish> {
    if let (Some(w), None) = (&worker, &args.output) {
        args.output = Some(PathBuf::from(format!("worker-{}.json", w.index)));
    }
    let mut cfg = BenchConfig::try_from(args)?;
    if let Some(w) = worker {
        cfg.set_worker(w)?;
    }
    run_config(cfg)
}

impl BenchConfig {
    /// Makes this process one worker of a multi-host run, if the grid allows it.
    pub(super) fn set_worker(&mut self, w: super::worker::WorkerRole) -> anyhow::Result<()> {
        if let Some(flag) = self.not_for_compare().filter(|&f| f != "--hlog") {
            bail!("{flag}: not taken by a worker (merge the parts, then look at the result)");
        }
        if let Some(wl) = self.workloads.iter().find(|wl| !wl.uses_topology()) {
            bail!("--workload {wl}: runs in one process only (its figures need every agent's view); workers run request-reply");
        }
        if let Some(&n) = self.agents.iter().find(|&&n| n < w.workers || n > (1 << 21) - 64) {
            bail!("--agents: {n} agents cannot be split over {} workers (each needs at least one; at most 2097088)", w.workers);
        }
        self.worker = Some(w);
        Ok(())
    }
}

/// Runs a validated grid.
pub(super) fn run_config(cfg: BenchConfig) -> anyhow::Result<Finish> {
    let provenance = report::Provenance::now();
    report::json::check_writable(cfg.output(), "--output")?;
    for (path, flag) in [(&cfg.csv, "--csv"), (&cfg.html, "--html")] {
        if let Some(p) = path {
            report::json::check_writable(p, flag)?;
        }
    }
    if let Some(dir) = &cfg.hlog {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("--hlog: cannot create {}: {e}", dir.display()))?;
    }
    // A wrong baseline fails now, not after the runs.
    let baseline = match &cfg.baseline {
        Some(path) => Some((path.display().to_string(), report::baseline::load(path)?)),
        None => None,
    };
    if let Target::External { addr, .. } = &cfg.target {
        crate::loadgen::check_reachable(*addr, cfg.protocol).map_err(anyhow::Error::msg)?;
    }
    for w in cfg.warnings() {
        eprintln!("{w}");
    }
    if let Target::Embedded { .. } = cfg.target {
        crate::placement::share_cores(&cfg.plan.shared_cores());
    }
    // (A target of its own on this machine: `share_with_target`, once it is found.)
    let interrupt = Interrupt::new();
    catch_interrupts(&interrupt)?;
    let runs = cfg.grid();
    let max_agents = cfg.agents.iter().copied().max().unwrap_or(0);
    let conns = u64::from(max_agents.div_ceil(cfg.agents_per_conn));
    super::raise_nofile(2 * conns + 4096).ok();
    let mut out = std::io::stdout();
    // Before the router starts: a polling router would take the cores from the probe.
    let stalls = cfg.probe_stalls();
    let (router, addr, router_label): (Option<RouterHandle>, SocketAddr, String) = match &cfg.target
    {
        Target::Embedded { slots } => {
            let mut rc = RouterConfig::new("127.0.0.1:0".parse()?, slots.clone());
            rc.shard = cfg.router_flags.shard_config(cfg.compression)?;
            rc.spin_before_park = cfg.router_flags.spin();
            rc.io = cfg.router_flags.router_io;
            rc.poll = cfg.router_flags.poll;
            let handle = Router::start(rc).context("starting the embedded router")?;
            let addr = handle.local_addr();
            (Some(handle), addr, "embedded glommio router".to_string())
        }
        Target::External { url, addr } => (None, *addr, url.clone()),
    };
    // A target of its own on this machine (not the embedded router, which is this process).
    let target_pids = match router {
        None => crate::host::listeners(addr),
        Some(_) => Vec::new(),
    };
    // An external router is asked for its counters only if it speaks the native protocol.
    let external_probe = match &cfg.target {
        Target::External { addr, .. } if cfg.protocol == Protocol::Native => {
            Some(ExternalProbe::new(*addr))
        }
        _ => None,
    };
    // Where the router and the agents share cores, and which.
    let (shared, _lease, notes) = match &cfg.target {
        Target::Embedded { .. } => (plan_sharing(&cfg.plan), None, Vec::new()),
        Target::External { addr, .. } => {
            let native = external_probe.as_ref().map(|p| (*addr, p));
            share_with_target(&cfg.plan, &target_pids, native, cfg.http.is_some())
        }
    };
    let probe: Option<&dyn RouterProbe> = match (&router, &external_probe) {
        (Some(r), _) => Some(r),
        (None, Some(p)) => Some(p),
        _ => None,
    };
    let what = match &cfg.search {
        Some(s) => format!(
            "the highest rate holding '{}' for {} scenarios",
            s.slo_text,
            runs.len() / cfg.repeat as usize
        ),
        None => format!("{} runs", runs.len()),
    };
    let _ = writeln!(
        out,
        "a2a-bench {}: {what} against the {router_label} over {} ({} protocol); {}",
        env!("CARGO_PKG_VERSION"),
        cfg.transport,
        cfg.protocol,
        describe_plan(&cfg.plan)
    );
    let _ = report::text::header(&mut out);
    let progress = if cfg.search.is_some() {
        let p = indicatif::ProgressBar::new_spinner();
        p.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        p.enable_steady_tick(Duration::from_millis(200));
        p
    } else {
        let p = indicatif::ProgressBar::new(runs.len() as u64);
        p.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} runs, {elapsed} elapsed, about {eta} left · {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        p
    };
    let mut session = Session {
        cfg: &cfg,
        addr,
        probe,
        interrupt: interrupt.clone(),
        progress,
        made: 0,
        target_pids,
        shared,
        notes,
    };
    let mut results = Vec::with_capacity(runs.len());
    let mut searches = Vec::new();
    let mut fatal = None;
    if let Some(search) = &cfg.search {
        // One search per scenario: the grid's first repetition of each.
        for spec in runs.iter().filter(|s| s.repeat == 0) {
            if interrupt.is_raised() {
                break;
            }
            match super::search::find_max_rate(&mut session, search, spec, &mut results) {
                Ok(found) => searches.push(found),
                Err(why) => {
                    fatal = Some(why);
                    break;
                }
            }
        }
    } else {
        for spec in &runs {
            if interrupt.is_raised() {
                break; // Ctrl-C between two runs: the next one does not start
            }
            match session.run(spec) {
                Ok(result) => {
                    // A worker's failed run means another worker may be gone: the next runs
                    // could not line up, so the part ends here (the merge says why).
                    let cut = session.interrupt.is_raised()
                        || (session.cfg.worker.is_some() && !result.success);
                    results.push(result);
                    session.progress.inc(1);
                    if cut {
                        break;
                    }
                }
                Err(why) => {
                    fatal = Some(why);
                    break;
                }
            }
        }
    }
    session.progress.finish_and_clear();
    if let Some(r) = router {
        r.stop();
    }
    // A run that could not start ends the grid; what finished before it is still reported.
    let stopped_early = match fatal {
        Some(why) if results.is_empty() => bail!("{why}"),
        Some(why) => {
            eprintln!("a2a-bench: {why}: the runs before it are reported");
            true
        }
        None => false,
    };
    let interrupted = interrupt.is_raised();
    let mut report = Report {
        summary: Summary::of(&results),
        results,
        config: cfg.report_config.clone(),
        schema_version: report::SCHEMA_VERSION,
        tool: report::Tool::default(),
        placement: PlacementInfo { router: router_label, plan: cfg.plan.clone() },
        host: crate::host::facts_with_stalls(&stalls),
        started_at: provenance.started_at.clone(),
        command_line: provenance.command_line.clone(),
        accounting_includes_warmup: true,
        interrupted,
        thresholds: Vec::new(),
        rate_search: searches,
        baseline: None,
        worker: cfg.worker.as_ref().map(|w| w.info()),
        merged: None,
    };
    let value = serde_json::to_value(&report)?;
    let scenarios = report::figures::scenarios(&report::figures::runs(&value));
    report.thresholds =
        report::threshold::check_all(&cfg.thresholds, &scenarios, &report.rate_search);
    report.baseline = baseline.map(|(file, b)| report::baseline::diff(&file, &b, &value));
    report::json::write(&report, cfg.output())?;
    let value = serde_json::to_value(&report)?;
    if let Some(csv) = &cfg.csv {
        report::csv::write(&value, csv)?;
    }
    if let Some(html) = &cfg.html {
        report::html::write(&value, html)?;
    }
    let _ = report::text::summary(&mut out, &report);
    for s in &report.rate_search {
        let _ = report::text::rate_search(&mut out, s);
    }
    if let Some(d) = &report.baseline {
        let _ = report::baseline::print(&mut out, d);
    }
    let _ = report::text::thresholds(&mut out, &report.thresholds);
    if interrupted {
        let _ =
            writeln!(out, "interrupted: {} of {} runs reported", report.results.len(), runs.len());
    }
    let _ = writeln!(out, "report written to {}", cfg.output().display());
    for (path, what) in [(&cfg.csv, "CSV"), (&cfg.html, "HTML")] {
        if let Some(p) = path {
            let _ = writeln!(out, "{what} written to {}", p.display());
        }
    }
    Ok(if interrupted {
        Finish::Interrupted
    } else if report.thresholds.iter().any(|c| !c.passed) {
        Finish::ThresholdsFailed
    } else if report.summary.failed > 0 || stopped_early {
        Finish::SomeFailed
    } else {
        Finish::AllOk
    })
}

/// Warns (one line) when other processes kept the machine busy during run `i`.
pub fn busy_warning(i: usize, others: Option<f64>) {
    if let Some(share) = others.filter(|&s| s > crate::host::BUSY_MACHINE_SHARE) {
        eprintln!(
            "warning: run {}: other processes used {:.0} % of the machine's CPUs: its figures may be disturbed",
            i + 1,
            share * 100.0
        );
    }
}

/// The pacing of a scenario in words: `closed w16`, `open 10.0 k/s w16`, with `× 100` per
/// agent in count mode.
pub fn describe_pacing(sc: &Scenario) -> String {
    let pacing = match sc.effective_pacing() {
        Pacing::Closed { window } => format!("closed w{window}"),
        Pacing::Open { rate, window } => format!("open {}/s w{window}", report::text::rate(rate)),
    };
    match sc.stop {
        Stop::Count { per_agent } => format!("{pacing} ×{per_agent}"),
        Stop::Duration(_) => pacing,
    }
}

fn describe_plan(plan: &Plan) -> String {
    let list = |s: &[Slot]| s.iter().map(|x| x.core.to_string()).collect::<Vec<_>>().join(",");
    if plan.router.is_empty() {
        format!("agents on cores {}", list(&plan.agents))
    } else {
        format!("router on cores {}, agents on cores {}", list(&plan.router), list(&plan.agents))
    }
}
