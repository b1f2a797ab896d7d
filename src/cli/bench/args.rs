//! The benchmark's flags, as clap reads them.

use super::*;

/// The benchmark's flags (the seed load tester's, plus ours).
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Agent counts to run [default: 10,50,100; --quick: 5,10].
    #[arg(long, value_name = "LIST")]
    pub(in crate::cli) agents: Option<String>,
    /// Requests per agent in the measured window, per run (count mode) [default: duration mode].
    #[arg(long, value_name = "LIST", conflicts_with = "duration")]
    pub(in crate::cli) messages: Option<String>,
    /// Seconds of measured window per run (duration mode) [default: 3; --quick: 1].
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub(in crate::cli) duration: Option<Duration>,
    /// Topologies: star, mesh, ring, line, hierarchical [default: star,mesh,ring].
    #[arg(long, value_name = "LIST")]
    pub(in crate::cli) topologies: Option<String>,
    /// Children per node in the hierarchical topology.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub(in crate::cli) fanout: u32,
    /// What agents do, per run: request-reply (along the topology), fanout, broadcast, locks,
    /// barriers, churn, consensus, delegation, election, pipeline (docs/REPORT.md, "Workloads")
    /// [default: request-reply].
    #[arg(long, value_name = "LIST")]
    pub(in crate::cli) workload: Option<String>,
    /// fanout: subscribers of each agent's topic (capped at agents − 1).
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub(in crate::cli) subscribers: u32,
    /// delegation: subtasks a specialist hands to workers per task.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub(in crate::cli) subtasks: u32,
    /// pipeline: agents per pipeline, its source included (at least 2): an item makes this
    /// many hops, the last back to the source.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub(in crate::cli) stages: u32,
    /// consensus, election: agents per group (consensus: a leader and its followers, at least
    /// 2; election: at least 3).
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub(in crate::cli) replicas: u32,
    /// locks: how many locks the agents contend for.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub(in crate::cli) locks: u32,
    /// locks: how long a holder keeps a lock once granted; churn: how long a passing agent
    /// stays once its message is answered; in ms.
    #[arg(long, value_name = "MS", default_value = "1", value_parser = parse_secs_ms)]
    pub(in crate::cli) hold: Duration,
    /// Open loop: milliseconds between one agent's requests, per run; 0 is closed loop (send
    /// without pause, as the seed tester does) [default: closed loop].
    #[arg(long, value_name = "LIST", conflicts_with = "rate")]
    pub(in crate::cli) intervals: Option<String>,
    /// Open loop: total requests per second over all agents, per run [default: closed loop].
    #[arg(long, value_name = "LIST")]
    pub(in crate::cli) rate: Option<String>,
    /// Requests in flight per agent (closed loop), or their cap (open loop).
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub(in crate::cli) window: u32,
    /// Repetitions of each scenario [default: 3; --quick: 1].
    #[arg(long, value_name = "N")]
    pub(in crate::cli) repeat: Option<u32>,
    /// Seconds of warm-up before each measured window (excluded from every figure)
    /// [default: 1; --quick: 0.3].
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub(in crate::cli) warmup: Option<Duration>,
    /// Seconds to wait for replies in flight once sending stops.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_secs)]
    pub(in crate::cli) drain_timeout: Duration,
    /// JSON report file [default: benchmark_results.json; compare: compare_results.json].
    #[arg(long, value_name = "FILE")]
    pub(in crate::cli) output: Option<PathBuf>,
    /// Also write one CSV row per run to this file.
    #[arg(long, value_name = "FILE")]
    pub(in crate::cli) csv: Option<PathBuf>,
    /// Also write a self-contained HTML report (charts, no network) to this file.
    #[arg(long, value_name = "FILE")]
    pub(in crate::cli) html: Option<PathBuf>,
    /// Length of one time-series interval (throughput, p50/p99, errors, CPU per core), in
    /// seconds; 0 keeps no time series.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_secs)]
    pub(in crate::cli) interval: Duration,
    /// Write each run's HdrHistogram interval log (V2, one histogram per --interval) into
    /// this directory.
    #[arg(long, value_name = "DIR")]
    pub(in crate::cli) hlog: Option<PathBuf>,
    /// Pass/fail criterion checked per scenario at the end, e.g. p99<5ms, throughput>1M,
    /// errors==0, errors<0.1% (repeatable); one that fails makes the exit code 99.
    #[arg(long = "threshold", value_name = "EXPR")]
    pub(in crate::cli) thresholds: Vec<String>,
    /// A saved report to compare with: throughput and p99 per scenario, and whether the change
    /// is beyond the repeats' spread.
    #[arg(long, value_name = "FILE")]
    pub(in crate::cli) baseline: Option<PathBuf>,
    /// For each scenario, search the highest open-loop rate that holds --slo and is
    /// sustained (grow, then bisect; each step confirmed by a repeat).
    #[arg(long, requires = "slo", conflicts_with_all = ["rate", "intervals", "messages"])]
    pub(in crate::cli) find_max_rate: bool,
    /// For each scenario, search the most agents, each sending RATE requests per second (open
    /// loop), that hold --slo and are sustained: from the first of --agents, doubling until a
    /// count fails, then bisecting (each step confirmed by a repeat).
    #[arg(long, value_name = "RATE", requires = "slo", conflicts_with_all = ["rate", "intervals", "messages", "find_max_rate"])]
    pub(in crate::cli) find_max_agents: Option<f64>,
    /// The objective of --find-max-rate or --find-max-agents, e.g. 'p99<5ms,errors<0.1%'.
    #[arg(long, value_name = "EXPR")]
    pub(in crate::cli) slo: Option<String>,
    /// --find-max-rate (--find-max-agents) stops when the highest held and lowest failing
    /// rates (agent counts) are this close (a share of the failing one).
    #[arg(long, value_name = "SHARE", default_value_t = 0.05)]
    pub(in crate::cli) search_precision: f64,
    /// A fast grid that finishes in well under a minute.
    #[arg(long)]
    pub(in crate::cli) quick: bool,
    /// Drive an external router instead of starting the embedded one: tcp://host:port (native
    /// frames), or ws://host:port[/path] (WebSocket; with --protocol json, the seed protocol).
    #[arg(long, value_name = "URL")]
    pub(in crate::cli) router: Option<String>,
    /// Cores to use (e.g. 0-15); split between the embedded router and the agents
    /// [default: every core].
    #[arg(long, value_name = "LIST")]
    pub(in crate::cli) cores: Option<String>,
    /// Cores for the embedded router's shards [default: half of --cores, spread over NUMA nodes].
    #[arg(long, value_name = "LIST")]
    pub(in crate::cli) router_cores: Option<String>,
    /// Cores for the agent groups [default: the cores the router does not take].
    #[arg(long, value_name = "LIST")]
    pub(in crate::cli) agent_cores: Option<String>,
    /// Payload bytes per request (at least 16: the send times travel in it), or a list, a grid
    /// dimension like --agents (e.g. 64,1K,64K).
    #[arg(long, value_name = "BYTES", default_value = "64")]
    pub(in crate::cli) payload_size: String,
    /// Payload sizes drawn per request by weight, in one run, with round trips per size
    /// (e.g. 64:90,64K:9,1M:1; native protocol, request/reply).
    #[arg(long, value_name = "SIZE:WEIGHT,...", conflicts_with = "payload_size")]
    pub(in crate::cli) payload_mix: Option<String>,
    /// Most messages per frame.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub(in crate::cli) batch: u32,
    /// Frame compression of agents and embedded router: none, auto (LZ4 above 1 KiB when it
    /// shrinks below 90 %), lz4. On one machine LZ4 costs more CPU than it saves.
    #[arg(long, value_name = "MODE", default_value = "none")]
    pub(in crate::cli) compression: Compression,
    /// Agents sharing one connection.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub(in crate::cli) agents_per_conn: u32,
    /// How agents reach the router: tcp, or ws (frames in WebSocket binary messages)
    /// [default: tcp, or the scheme of --router; ws with --protocol json].
    #[arg(long, value_name = "TRANSPORT")]
    pub(in crate::cli) transport: Option<Transport>,
    /// Socket I/O of the agent cores: uring (a second io_uring per core: multishot receive
    /// into provided buffers, batched sends, no reschedule IPIs; without kernel support:
    /// glommio, said once), or glommio (its streams). TCP only; WebSocket stays on glommio.
    #[arg(long, value_name = "IO", default_value = "uring")]
    pub(in crate::cli) agent_io: Io,
    /// Let a sharded router place connections as it likes (by load): without it each raw-TCP
    /// connection opens with a `home` frame keyed by its first agent's index, and the router
    /// puts connections with neighbouring agents on the same shard, so that messages along the
    /// topology rarely cross shards.
    #[arg(long)]
    pub(in crate::cli) no_homing: bool,
    /// What agents speak: native (a2a-bench frames), or json (the seed system's JSON protocol
    /// over WebSocket, to measure routers that speak it).
    #[arg(long, value_name = "PROTOCOL", default_value = "native")]
    pub(in crate::cli) protocol: Protocol,
    /// Priority of every message (0-10).
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub(in crate::cli) priority: u8,
    /// Open loop: a send leaving later than this after its intended time counts as late (ms).
    #[arg(long, value_name = "MS", default_value = "1", value_parser = parse_secs_ms)]
    pub(in crate::cli) late_after_ms: Duration,
    /// Seconds a thread spins on each core in use before the runs, counting the time the
    /// machine takes the core away (gaps over 20, 100 and 500 µs: a hypervisor, interrupts,
    /// other threads), so that tail latencies of that size are not taken for the router's;
    /// in the report's host.stalls and the summary. 0 skips it.
    #[arg(long, value_name = "SECS", default_value = "0.5", value_parser = parse_secs)]
    pub(in crate::cli) stall_probe: Duration,
    #[command(flatten)]
    pub(in crate::cli) router_flags: RouterArgs,
}

pub(in crate::cli) fn parse_secs_ms(s: &str) -> Result<Duration, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.0..1e9).contains(&v) => Ok(Duration::from_secs_f64(v / 1e3)),
        _ => Err(format!("'{s}' is not a number of milliseconds")),
    }
}

impl BenchArgs {
    /// Every flag at its default (what `a2a-bench` alone means).
    pub(in crate::cli) fn defaults() -> BenchArgs {
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
