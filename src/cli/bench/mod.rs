//! `a2a-bench` without a subcommand: run a benchmark grid and report it.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;

use super::{parse_router_url, parse_secs, slots_for, RouterArgs};
use crate::loadgen::mix::PayloadMix;
use crate::loadgen::{
    self, Hooks, Interrupt, Pacing, Protocol, RouterProbe, Scenario, Stop, Topology, Workload,
};
use crate::placement::{Machine, Plan, Slot};
use crate::report::threshold::Threshold;
use crate::report::{self, PlacementInfo, Report, ReportConfig, RunResult, RunSpec};
use crate::router::{Router, RouterConfig, RouterHandle};
use crate::transport::{Io, Transport};
use crate::wire::Compression;

mod args;
mod config;
mod grid;
mod session;
mod sharing;

pub(super) use args::parse_secs_ms;
pub use args::BenchArgs;
pub(in crate::cli) use config::mix_label;
pub(super) use grid::{expected_time, run_config};
pub(super) use session::Session;
pub(in crate::cli) use session::{settle_cpu, ExternalProbe};
pub(super) use sharing::plan_sharing;
use sharing::*;
pub(in crate::cli) use sharing::{share_with_target, ShareLease};

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
    pub(in crate::cli) search: Option<super::search::SearchConfig>,
    /// `a2a-bench worker`: this process's slice of a multi-host run.
    pub(in crate::cli) worker: Option<super::worker::WorkerRole>,
    target: Target,
    plan: Plan,
    payloads: Vec<usize>,
    /// `--payload-mix`, one mix for every run (`payloads` holds its largest size).
    payload_mix: Option<PayloadMix>,
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
    pub(in crate::cli) http: Option<std::sync::Arc<crate::loadgen::http::Plan>>,
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
        if let Some(wl) = self.workloads.iter().find(|wl| wl.coordinates()) {
            bail!("--workload {wl}: runs in one process only (its figures need every agent's view); workers run request-reply and pipeline");
        }
        if let Some(&n) = self.agents.iter().find(|&&n| n < w.workers || n > (1 << 21) - 64) {
            bail!("--agents: {n} agents cannot be split over {} workers (each needs at least one; at most 2097088)", w.workers);
        }
        self.worker = Some(w);
        Ok(())
    }
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
