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

mod args;
mod config;
mod session;
mod sharing;

pub(super) use args::parse_secs_ms;
pub use args::BenchArgs;
pub(super) use session::Session;
use session::*;
pub(super) use sharing::plan_sharing;
use sharing::*;

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
