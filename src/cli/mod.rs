//! The command line: clap structs, validated once into configs, then `run`.
//!
//! `main()` calls [`main`], which maps every error to a one-line message naming the flag and an
//! exit code; nothing here panics on user input.

/// `println!` that never panics: a closed stdout (a pipe whose reader left) is not a reason for
/// a router to die.
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

mod bench;
mod compare;
mod http;
mod prometheus;
mod report_cmd;
mod router_cmd;
mod search;
mod worker;

pub use bench::{BenchArgs, BenchConfig};

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};

use crate::placement::{self, Machine, Slot};
use crate::route::{FullPolicy, ShardConfig};
use crate::wire::{Compression, Limits};

/// a2a-bench: benchmark engine for agent-to-agent messaging.
#[derive(Parser, Debug)]
#[command(
    name = "a2a-bench",
    version,
    about,
    args_conflicts_with_subcommands = true,
    allow_negative_numbers = true
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    bench: BenchArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the thread-per-core router (glommio) until SIGINT or SIGTERM.
    Router(router_cmd::RouterCmd),
    /// Run a baseline tokio router (shared state, or per-core shards) until SIGINT or SIGTERM.
    BaselineRouter(router_cmd::BaselineCmd),
    /// Run the grid against several routers on the same cores, alternating, with ratios.
    Compare(Box<compare::CompareCmd>),
    /// Print every shard's counters from a running router.
    Stats(router_cmd::StatsCmd),
    /// Print this machine's facts: cores, NUMA, io_uring, limits, sysctl vs the profile.
    Sysinfo(router_cmd::SysinfoCmd),
    /// Render a saved report (benchmark or compare) as HTML or CSV.
    Report(report_cmd::ReportCmd),
    /// Run one slice of every run's agents against a remote router, meeting the other workers
    /// through it; writes this worker's part for `merge`.
    Worker(Box<worker::WorkerCmd>),
    /// Merge the workers' parts exactly (histograms added, accounting summed) into one report.
    Merge(worker::MergeCmd),
    /// Serve a reference HTTP target (a2a-echo, mcp-echo, registry) until SIGINT or SIGTERM.
    Serve(router_cmd::ServeCmd),
    /// Drive an HTTP server (A2A agent, MCP server, agent registry) with virtual clients.
    Http(Box<http::HttpCmd>),
}

/// Router settings shared by `a2a-bench router` and the benchmark's embedded router.
#[derive(Args, Debug, Clone)]
pub struct RouterArgs {
    /// When a recipient's queue is full: pause the sender (backpressure) or drop with an error.
    #[arg(long, value_name = "POLICY", default_value = "backpressure")]
    pub on_full: FullPolicy,
    /// Bound on bytes queued for one connection.
    #[arg(long, value_name = "BYTES", default_value = "2M", value_parser = parse_bytes)]
    pub conn_queue_bytes: usize,
    /// Bound on bytes queued from one shard to another.
    #[arg(long, value_name = "BYTES", default_value = "8M", value_parser = parse_bytes)]
    pub peer_queue_bytes: usize,
    /// Largest frame accepted (header included).
    #[arg(long, value_name = "BYTES", default_value = "10M", value_parser = parse_bytes)]
    pub frame_bytes_max: usize,
    /// Most messages accepted in one frame.
    #[arg(long, value_name = "N", default_value_t = 8192)]
    pub batch_max: u32,
    /// Seconds without traffic or heartbeat after which an agent is offline. In a benchmark
    /// run the agents send a heartbeat on a connection silent for a third of it (with --router,
    /// a third of the timeout that router says it has; the seed JSON protocol cannot say it, so
    /// with --protocol json this flag's).
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    pub heartbeat_timeout: Duration,
    /// Lease of a lock whose request asks for 0, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    pub lock_lease_ms: u32,
    /// Require this token in every registration.
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Latency mode: an idle shard spins this many microseconds before sleeping (costs CPU).
    #[arg(long, value_name = "US")]
    pub spin_us: Option<u64>,
    /// Latency mode for dedicated cores: the glommio router's shards, and in a benchmark run
    /// the agent cores, poll their sockets instead of sleeping while traffic lasts (each costs
    /// its whole core: see the report's CPU columns; after 1 s without traffic they sleep as
    /// usual). The tokio baselines keep their epoll design.
    #[arg(long)]
    pub poll: bool,
    /// Socket I/O of the glommio router's shards: uring (a second io_uring per shard:
    /// multishot receive, batched sends, no reschedule IPIs; without kernel support: glommio,
    /// said once), or glommio (its streams).
    #[arg(long, value_name = "IO", default_value = "uring")]
    pub router_io: crate::transport::Io,
    /// Seconds a new connection has to show its protocol (first bytes, WebSocket handshake).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub handshake_timeout: Duration,
    /// Seconds a connection with no agent registered may stay silent before it is closed.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_secs)]
    pub idle_timeout: Duration,
    /// Seconds a frame whose first bytes arrived has to complete.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    pub frame_timeout: Duration,
    /// Milliseconds a connection's queue may stay past its bound before the connection is
    /// closed as a slow consumer.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    pub slow_consumer_ms: u64,
    /// Bytes each shard may hold in queues and grown read buffers; past it, new connections
    /// and frames over 64K are refused (`resource_exhausted`).
    #[arg(long, value_name = "BYTES", default_value = "1G", value_parser = parse_bytes)]
    pub memory_max: usize,
    /// Most connections open at once (0 = no limit but the open-file limit); more are refused
    /// with `resource_exhausted`.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub max_connections: usize,
}

impl RouterArgs {
    /// The shard settings these flags describe.
    pub fn shard_config(&self, compression: Compression) -> anyhow::Result<ShardConfig> {
        if self.batch_max == 0 {
            bail!("--batch-max must be at least 1");
        }
        if self.frame_bytes_max < 1024 || self.frame_bytes_max > u32::MAX as usize {
            bail!("--frame-bytes-max must be between 1K and 4G");
        }
        if self.heartbeat_timeout.is_zero() {
            bail!("--heartbeat-timeout must be above 0 (every agent would be offline at once)");
        }
        for (flag, d) in [
            ("--handshake-timeout", self.handshake_timeout),
            ("--idle-timeout", self.idle_timeout),
            ("--frame-timeout", self.frame_timeout),
        ] {
            if d.is_zero() {
                bail!("{flag} must be above 0 (every connection would be closed at once)");
            }
        }
        if self.slow_consumer_ms == 0 {
            bail!("--slow-consumer-ms must be above 0 (every busy connection would be closed)");
        }
        if self.memory_max < 1 << 20 {
            bail!("--memory-max must be at least 1M");
        }
        if self.conn_queue_bytes < 4096 || self.peer_queue_bytes < 4096 {
            bail!("--conn-queue-bytes and --peer-queue-bytes must be at least 4K");
        }
        let mut cfg = ShardConfig::new(0, 1);
        cfg.limits = Limits {
            frame_bytes_max: self.frame_bytes_max as u32,
            batch_messages_max: self.batch_max,
        };
        cfg.compression = compression;
        cfg.on_full = self.on_full;
        cfg.conn_queue_bytes_max = self.conn_queue_bytes;
        cfg.peer_queue_bytes_max = self.peer_queue_bytes;
        cfg.heartbeat_timeout = self.heartbeat_timeout;
        cfg.lock_lease_ms = self.lock_lease_ms;
        cfg.token = self.token.clone();
        cfg.handshake_timeout = self.handshake_timeout;
        cfg.idle_timeout = self.idle_timeout;
        cfg.frame_timeout = self.frame_timeout;
        cfg.slow_consumer = Duration::from_millis(self.slow_consumer_ms);
        cfg.memory_max = self.memory_max;
        cfg.max_connections = self.max_connections;
        Ok(cfg)
    }

    /// The flags set away from their defaults that the shared-state tokio baseline does not
    /// apply (it keeps no timeouts and no memory budget: an idiomatic router of its kind).
    pub fn ignored_by_tokio_shared(&self) -> Vec<&'static str> {
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            r: RouterArgs,
        }
        let d = <Defaults as clap::Parser>::parse_from(["a2a-bench"]).r;
        [
            ("--handshake-timeout", self.handshake_timeout != d.handshake_timeout),
            ("--idle-timeout", self.idle_timeout != d.idle_timeout),
            ("--frame-timeout", self.frame_timeout != d.frame_timeout),
            ("--slow-consumer-ms", self.slow_consumer_ms != d.slow_consumer_ms),
            ("--memory-max", self.memory_max != d.memory_max),
            ("--peer-queue-bytes", self.peer_queue_bytes != d.peer_queue_bytes),
        ]
        .into_iter()
        .filter_map(|(flag, set)| set.then_some(flag))
        .collect()
    }

    /// A warning that `router` runs without the flags it does not apply, if any were set.
    pub fn tokio_shared_warning(&self, router: &str) -> Option<String> {
        let ignored = self.ignored_by_tokio_shared();
        (!ignored.is_empty()).then(|| {
            format!("warning: {router} does not apply {}: it runs without them", ignored.join(", "))
        })
    }

    /// The latency-mode spin, if asked for.
    pub fn spin(&self) -> Option<Duration> {
        self.spin_us.map(Duration::from_micros)
    }
}

/// Parses `1048576`, `64K`, `2M`, `1G` (powers of 1024; a trailing `B` or `iB` is allowed).
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    let t = s.trim().trim_end_matches("iB").trim_end_matches('B');
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'K' | 'k')) => (&t[..i], 1usize << 10),
        Some((i, 'M' | 'm')) => (&t[..i], 1 << 20),
        Some((i, 'G' | 'g')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    num.trim()
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("'{s}' is not a size (e.g. 65536, 64K, 2M)"))
}

/// Parses seconds as a decimal number (`0.5`, `30`).
pub fn parse_secs(s: &str) -> Result<Duration, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.0..1e7).contains(&v) => Ok(Duration::from_secs_f64(v)),
        _ => Err(format!("'{s}' is not a number of seconds")),
    }
}

/// Parses a router address: `tcp://host:port`, `ws://host:port[/path]` or `host:port`.
pub fn parse_router_url(s: &str) -> Result<(String, SocketAddr), String> {
    let (scheme, rest) = match s.split_once("://") {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        None => ("tcp".to_string(), s),
    };
    if scheme != "tcp" && scheme != "ws" {
        return Err(format!("'{s}': the scheme must be tcp:// or ws://"));
    }
    let host_port = rest.split('/').next().unwrap_or(rest);
    use std::net::ToSocketAddrs;
    let addr = host_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("'{s}' is not a reachable host:port"))?;
    Ok((scheme, addr))
}

/// Turns a `--cores` list into slots on this machine.
pub fn slots_for(flag: &str, spec: &str, machine: &Machine) -> anyhow::Result<Vec<Slot>> {
    let cores = placement::parse_cores(spec).map_err(|e| anyhow::anyhow!("{flag}: {e}"))?;
    machine.slots(&cores).map_err(|e| anyhow::anyhow!("{flag}: {e}"))
}

/// Keeps the process's memory flat over a long grid. glibc raises its mmap threshold to the
/// size of each large block freed, so later large blocks (a ring's provided buffers, a core's
/// histograms) come from per-thread arenas that keep what is freed; every run starts new
/// agent-core threads, and 120 short runs grew the process from 44 to 81 MB, and on. A fixed
/// threshold gives each block of 256 KiB or more a mapping of its own, returned when freed
/// (the same 150 runs: flat at ≈ 29 MB). Nothing on the data path allocates, so the mappings'
/// cost falls on set-up only.
#[allow(unsafe_code)]
fn steady_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it runs before any other thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 10);
    }
}

/// Parses the command line and runs it; returns the process exit code.
pub fn main() -> ExitCode {
    steady_memory();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            let text = e.to_string();
            let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
            let mut line = lines.next().unwrap_or("invalid arguments").to_string();
            // "the following required arguments were not provided:" names them below.
            if line.ends_with(':') {
                if let Some(next) = lines.next() {
                    line = format!("{line} {next}");
                }
            }
            eprintln!("a2a-bench: {}", line.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("a2a-bench: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// The exit code when a `--threshold` failed (k6's).
pub const EXIT_THRESHOLDS: u8 = 99;

/// The exit code of an interrupted benchmark (128 + SIGINT, as shells do).
pub const EXIT_INTERRUPTED: u8 = 130;

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Every connection is a descriptor (two on the agents' side): a run of 100,000 agents on
    // their own connections needs far more than the usual 1,024 or 20,000.
    raise_nofile(1 << 20).ok();
    match cli.command {
        Some(Command::Router(cmd)) => router_cmd::run_router(cmd)?,
        Some(Command::Stats(cmd)) => router_cmd::run_stats(cmd)?,
        Some(Command::BaselineRouter(cmd)) => router_cmd::run_baseline(cmd)?,
        Some(Command::Sysinfo(cmd)) => router_cmd::run_sysinfo(cmd)?,
        Some(Command::Report(cmd)) => report_cmd::run(cmd)?,
        Some(Command::Serve(cmd)) => router_cmd::run_serve(cmd)?,
        Some(Command::Merge(cmd)) => {
            if !worker::run_merge(cmd)? {
                bail!("the merged run failed: see the report");
            }
        }
        Some(Command::Worker(cmd)) => match worker::run_worker(*cmd)? {
            bench::Finish::Interrupted => return Ok(ExitCode::from(EXIT_INTERRUPTED)),
            bench::Finish::AllOk => {}
            _ => bail!("some runs failed: see the part"),
        },
        Some(Command::Compare(cmd)) => {
            if !compare::run(*cmd)? {
                bail!("some runs failed: see the comparison")
            }
        }
        Some(Command::Http(cmd)) => return grid_exit(http::run(*cmd)?),
        None => return grid_exit(bench::run(cli.bench)?),
    }
    Ok(ExitCode::SUCCESS)
}

/// The exit code of a benchmark grid (`a2a-bench`, `a2a-bench http`).
fn grid_exit(finish: bench::Finish) -> anyhow::Result<ExitCode> {
    match finish {
        bench::Finish::AllOk => Ok(ExitCode::SUCCESS),
        bench::Finish::SomeFailed => bail!("some runs failed: see the report"),
        bench::Finish::ThresholdsFailed => {
            eprintln!("a2a-bench: a threshold failed (exit code 99): see the checklist above");
            Ok(ExitCode::from(EXIT_THRESHOLDS))
        }
        bench::Finish::Interrupted => Ok(ExitCode::from(EXIT_INTERRUPTED)),
    }
}

/// Raises RLIMIT_NOFILE to `want` (past the hard limit where allowed: root); returns the limit
/// now in force.
pub fn raise_nofile(want: u64) -> anyhow::Result<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).context("reading RLIMIT_NOFILE")?;
    if soft >= want {
        return Ok(soft);
    }
    if hard < want && setrlimit(Resource::RLIMIT_NOFILE, want, want).is_ok() {
        return Ok(want);
    }
    let target = want.min(hard);
    setrlimit(Resource::RLIMIT_NOFILE, target, hard).context("raising RLIMIT_NOFILE")?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_parse() {
        // Proves the size and seconds parsers accept their documented forms and refuse others.
        assert_eq!(parse_bytes("65536"), Ok(65536));
        assert_eq!(parse_bytes("64K"), Ok(64 << 10));
        assert_eq!(parse_bytes("2MiB"), Ok(2 << 20));
        assert_eq!(parse_bytes("1G"), Ok(1 << 30));
        assert!(parse_bytes("lots").is_err());
        assert_eq!(parse_secs("0.5"), Ok(Duration::from_millis(500)));
        assert!(parse_secs("-1").is_err());
    }

    #[test]
    fn router_urls_parse() {
        // Proves tcp://, ws:// and bare host:port parse, and other schemes are refused.
        assert_eq!(parse_router_url("tcp://127.0.0.1:8766").unwrap().0, "tcp");
        assert_eq!(parse_router_url("ws://127.0.0.1:8766/a2a").unwrap().0, "ws");
        assert_eq!(parse_router_url("127.0.0.1:9").unwrap().1.port(), 9);
        assert!(parse_router_url("http://127.0.0.1:1").is_err());
    }

    #[test]
    fn flags_the_shared_state_baseline_does_not_apply_are_named_only_when_set() {
        // Proves the warning names exactly the flags given away from their defaults that
        // tokio-shared runs without, and says nothing for the defaults or for flags it applies.
        #[derive(clap::Parser)]
        struct Flags {
            #[command(flatten)]
            r: RouterArgs,
        }
        let parse = |args: &[&str]| {
            let all = std::iter::once("a2a-bench").chain(args.iter().copied());
            <Flags as clap::Parser>::parse_from(all).r
        };
        assert!(parse(&[]).tokio_shared_warning("tokio-shared").is_none());
        let applied = parse(&["--max-connections", "5", "--frame-bytes-max", "1M", "--token", "t"]);
        assert!(applied.ignored_by_tokio_shared().is_empty());
        let set = parse(&["--idle-timeout", "5", "--memory-max", "100M", "--lock-lease-ms", "9"]);
        assert_eq!(set.ignored_by_tokio_shared(), ["--idle-timeout", "--memory-max"]);
        assert_eq!(
            set.tokio_shared_warning("tokio-shared").unwrap(),
            "warning: tokio-shared does not apply --idle-timeout, --memory-max: it runs without them"
        );
    }
}
