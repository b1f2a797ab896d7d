//! `a2a-bench compare`: the same grid against several routers on the same cores, alternating.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use serde::Serialize;

use super::bench::{BenchArgs, BenchConfig};
use crate::loadgen::{self, Pacing};
use crate::placement::{Plan, Slot};
use crate::report::{self, PlacementInfo, Report, RunResult, RunSpec, Summary};
use crate::routers::{AnyRouter, RouterKind, RouterSpec};

/// `a2a-bench compare`.
#[derive(Args, Debug)]
#[command(allow_negative_numbers = true)]
pub struct CompareCmd {
    #[command(flatten)]
    bench: BenchArgs,
    /// Routers to compare, the first being the one ratios are about: glommio, tokio-shared,
    /// tokio-per-core.
    #[arg(long, value_name = "LIST", default_value = "glommio,tokio-shared,tokio-per-core")]
    routers: String,
    /// Also run each scenario open-loop at these shares of the tokio-shared baseline's
    /// closed-loop request rate (e.g. 0.5, or 0.5,0.01: near capacity, and a load the
    /// generator holds, where the p99s are the routers').
    #[arg(long, value_name = "SHARES")]
    open_at: Option<String>,
    /// Scaling: run the whole comparison once per router core count in LIST (e.g. 1,2,4,8),
    /// each time on the first 2N of --cores (N for the router, N for the agents), and report
    /// throughput and scaling efficiency per router; counts the machine cannot hold are skipped.
    #[arg(long, value_name = "LIST")]
    scaling: Option<String>,
}

/// Starts a router of `kind` on the grid's router cores with its settings.
fn start(kind: RouterKind, cfg: &BenchConfig) -> anyhow::Result<AnyRouter> {
    let spec = RouterSpec {
        shard: cfg.router_shard_config()?,
        spin_before_park: cfg.router_spin(),
        io: cfg.router_io(),
        poll: cfg.router_flags_poll(),
        ..RouterSpec::local(cfg.plan().router.clone())
    };
    kind.start(spec).with_context(|| format!("starting {kind}"))
}

/// One router's figures for one scenario, over its repetitions.
#[derive(Debug, Clone, Serialize)]
struct Medians {
    /// Median throughput (router deliveries/s) over successful runs.
    throughput: f64,
    /// Smallest and largest throughput.
    throughput_min: f64,
    throughput_max: f64,
    /// Median of the runs' p50 and p99 round trips, ms.
    p50_ms: f64,
    p99_ms: f64,
    /// Median requests sent per second.
    sent_per_sec: f64,
    /// Successful runs out of all.
    ok_runs: usize,
    runs: usize,
    /// The most frequent bottleneck of the runs (`router`, `generator`, `both`, `neither`).
    bottleneck: String,
    /// Median router CPU time per routed message (delivery), ns: the router's threads' busy
    /// time over the window divided by what they delivered. Null when the router reports none.
    router_cpu_ns_per_msg: Option<f64>,
    /// Median share of the router's cores left idle (0–1; cores − busy, over cores; on a core
    /// the agents share, their busy share counts too).
    router_idle_share: Option<f64>,
    /// Median share of the router's cores spent watching for input that had not come (part
    /// of the busy share, and of the CPU per message; 0 for the tokio routers).
    #[serde(skip_serializing_if = "Option::is_none")]
    router_watch_share: Option<f64>,
    /// Median share of the messages handed from one shard to another (routers of several
    /// shards only).
    #[serde(skip_serializing_if = "Option::is_none")]
    cross_shard_share: Option<f64>,
    /// Median messages per frame the router wrote.
    #[serde(skip_serializing_if = "Option::is_none")]
    router_msgs_per_frame: Option<f64>,
    /// Lost wake-ups over all the runs, failed ones too (`RunResult::lost_wakeups`): a
    /// router's tail that holds some is partly this process's, not the router's.
    #[serde(skip_serializing_if = "is_zero")]
    lost_wakeups: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The median (0 when empty): the one the reports' figures use.
fn median(v: Vec<f64>) -> f64 {
    report::figures::Stat::of(v).median
}

/// The median of the values present; `None` when there are none.
fn median_of_some(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let v: Vec<f64> = values.flatten().collect();
    (!v.is_empty()).then(|| median(v))
}

fn most_common<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for i in items {
        *counts.entry(i).or_default() += 1;
    }
    counts.into_iter().max_by_key(|(_, n)| *n).map_or_else(String::new, |(k, _)| k.to_string())
}

impl Medians {
    /// `sharing`: where the routers and the agents share cores, whose idle time is then what
    /// neither side used.
    fn of(runs: &[RunResult], sharing: Option<&report::CoreSharing>) -> Medians {
        let ok: Vec<&RunResult> = runs.iter().filter(|r| r.success).collect();
        let thr: Vec<f64> = ok.iter().map(|r| r.throughput_msg_per_sec).collect();
        Medians {
            throughput: median(thr.clone()),
            throughput_min: thr.iter().copied().reduce(f64::min).unwrap_or(0.0),
            throughput_max: thr.iter().copied().fold(0.0, f64::max),
            p50_ms: median(ok.iter().map(|r| r.p50_latency_ms).collect()),
            p99_ms: median(ok.iter().map(|r| r.p99_latency_ms).collect()),
            sent_per_sec: median(ok.iter().map(|r| r.sent_per_sec).collect()),
            ok_runs: ok.len(),
            runs: runs.len(),
            bottleneck: most_common(runs.iter().map(|r| r.cpu.bottleneck.as_str())),
            router_cpu_ns_per_msg: median_of_some(ok.iter().map(|r| {
                let busy: f64 = r.cpu.router_cores.as_ref()?.iter().sum();
                (r.throughput_msg_per_sec > 0.0).then(|| busy / r.throughput_msg_per_sec * 1e9)
            })),
            router_idle_share: median_of_some(ok.iter().map(|r| {
                let cores = r.cpu.router_cores.as_ref().filter(|c| !c.is_empty())?;
                // A router core the agents share was busy with them too.
                let agents_on = |j: usize| -> f64 {
                    let pairs = sharing.map_or(&[][..], |s| &s.pairs[..]);
                    pairs
                        .iter()
                        .filter(|p| p.1 == j)
                        .filter_map(|p| r.cpu.agent_cores.get(p.0))
                        .sum()
                };
                let busy: f64 =
                    cores.iter().enumerate().map(|(j, b)| (b + agents_on(j)).min(1.0)).sum();
                Some(1.0 - busy / cores.len() as f64)
            })),
            router_watch_share: median_of_some(ok.iter().map(|r| {
                let watch = r.cpu.router_watch.as_ref().filter(|w| !w.is_empty())?;
                Some(watch.iter().sum::<f64>() / watch.len() as f64)
            })),
            cross_shard_share: median_of_some(ok.iter().map(|r| r.cpu.router_cross_shard_share)),
            router_msgs_per_frame: median_of_some(ok.iter().map(|r| r.cpu.router_msgs_per_frame)),
            lost_wakeups: runs.iter().filter_map(|r| r.lost_wakeups).sum(),
        }
    }
}

/// ", N lost wake-ups (…)" for a row whose runs had any; empty otherwise.
fn lost_wakeups_note(n: u64) -> String {
    match n {
        0 => String::new(),
        n => format!(", {n} lost wake-ups (this process's rings slept to their 20 ms timer)"),
    }
}

/// One scenario of the comparison.
#[derive(Debug, Clone, Serialize)]
struct Row {
    topology: String,
    agents: u32,
    pacing: String,
    per_router: BTreeMap<String, Medians>,
    /// `"<first>/<other>"` → median throughput ratio (and p99 ratio: > 1 means the first is slower).
    throughput_ratios: BTreeMap<String, f64>,
    p99_ratios: BTreeMap<String, f64>,
    /// `"<first>/<other>"` → `[min, max]` of the throughput ratios of single rounds (the two
    /// routers' runs of one round run back to back).
    throughput_ratio_spread: BTreeMap<String, [f64; 2]>,
    /// The same for the p99 ratios: at light load a tail is often the machine's (a core taken
    /// away for milliseconds), and a range that spans 1 says the two routers' tails did not
    /// differ beyond that.
    p99_ratio_spread: BTreeMap<String, [f64; 2]>,
    /// Rounds (repetitions) behind each ratio.
    rounds: usize,
}

impl Row {
    /// "ring × 100": the row's shape and agents.
    fn scenario(&self) -> String {
        format!("{} × {}", self.topology, self.agents)
    }
}

#[derive(Serialize)]
struct CompareReport<'a> {
    routers: &'a [String],
    reference: &'a str,
    comparison: &'a [Row],
    /// `"<first>/<other>"` → the closed-loop rows' throughput ratios summed up.
    closed_loop: BTreeMap<String, RatioSummary>,
    /// `"<first>/<other>"` → the closed-loop rows' p99 ratios summed up (above 1: the first
    /// router's tail was longer).
    closed_loop_p99: BTreeMap<String, TailSummary>,
    reports: BTreeMap<String, Report>,
}

/// One router against the first over the closed-loop rows: the median of their p99 ratios,
/// the highest and where, and how many are above 1 (the first router's tail longer).
#[derive(Debug, Clone, PartialEq, Serialize)]
struct TailSummary {
    scenarios: usize,
    median: f64,
    highest: f64,
    highest_scenario: String,
    above_one: usize,
}

/// [`TailSummary`] for every router but the first, from `rows`' closed-loop p99 ratios.
fn closed_loop_tails(rows: &[Row], names: &[String]) -> BTreeMap<String, TailSummary> {
    closed_loop_ratios(rows, names, |r| &r.p99_ratios)
        .into_iter()
        .filter_map(|(key, ratios)| {
            let (highest, at) = ratios.iter().max_by(|a, b| a.0.total_cmp(&b.0))?.clone();
            let summary = TailSummary {
                scenarios: ratios.len(),
                median: median(ratios.iter().map(|r| r.0).collect()),
                highest,
                highest_scenario: at,
                above_one: ratios.iter().filter(|r| r.0 > 1.0).count(),
            };
            Some((key, summary))
        })
        .collect()
}

/// The closed-loop p99 summary as one line per router compared, for the terminal.
fn tail_lines(summary: &BTreeMap<String, TailSummary>) -> Vec<String> {
    summary
        .iter()
        .map(|(key, s)| {
            let extreme = ("highest", s.highest, s.highest_scenario.as_str());
            summary_line(key, s.median, s.scenarios, extreme, ("above", s.above_one))
        })
        .collect()
}

/// "  a / b: median 1.20× over 6 closed-loop scenarios, lowest 0.90× (ring × 100), below 1.0
/// in 2": `extreme` names the worst ratio and where, `past` which side of 1.0 is counted.
fn summary_line(
    key: &str,
    median: f64,
    scenarios: usize,
    extreme: (&str, f64, &str),
    past: (&str, usize),
) -> String {
    let (side, n) = past;
    let count = match n {
        0 => format!("none {side} 1.0"),
        n => format!("{side} 1.0 in {n}"),
    };
    let plural = if scenarios == 1 { "" } else { "s" };
    let (word, value, at) = extreme;
    format!(
        "  {}: median {median:.2}× over {scenarios} closed-loop scenario{plural}, {word} {value:.2}× ({at}), {count}",
        key.replace('/', " / ")
    )
}

/// For every router but the first, keyed `"<first>/<other>"`: the closed-loop rows' ratios
/// that `of` picks (throughput or p99), each with its scenario; a router with none is left out.
fn closed_loop_ratios(
    rows: &[Row],
    names: &[String],
    of: impl Fn(&Row) -> &BTreeMap<String, f64>,
) -> BTreeMap<String, Vec<(f64, String)>> {
    let mut out = BTreeMap::new();
    for other in names.iter().skip(1) {
        let key = format!("{}/{}", names[0], other);
        let ratios: Vec<(f64, String)> = rows
            .iter()
            .filter(|r| r.pacing.starts_with("closed"))
            .filter_map(|r| Some((*of(r).get(&key)?, r.scenario())))
            .collect();
        if !ratios.is_empty() {
            out.insert(key, ratios);
        }
    }
    out
}

/// One router against the first over the closed-loop rows (where each router routes all it
/// can): the median of their throughput ratios, the lowest and where, and how many are below 1.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct RatioSummary {
    scenarios: usize,
    median: f64,
    lowest: f64,
    lowest_scenario: String,
    below_one: usize,
}

/// [`RatioSummary`] for every router but the first, from `rows`' closed-loop ratios.
fn closed_loop_summary(rows: &[Row], names: &[String]) -> BTreeMap<String, RatioSummary> {
    closed_loop_ratios(rows, names, |r| &r.throughput_ratios)
        .into_iter()
        .filter_map(|(key, ratios)| {
            let (lowest, at) = ratios.iter().min_by(|a, b| a.0.total_cmp(&b.0))?.clone();
            let summary = RatioSummary {
                scenarios: ratios.len(),
                median: median(ratios.iter().map(|r| r.0).collect()),
                lowest,
                lowest_scenario: at,
                below_one: ratios.iter().filter(|r| r.0 < 1.0).count(),
            };
            Some((key, summary))
        })
        .collect()
}

/// The closed-loop summary as one line per router compared, for the terminal.
fn summary_lines(summary: &BTreeMap<String, RatioSummary>) -> Vec<String> {
    summary
        .iter()
        .map(|(key, s)| {
            let extreme = ("lowest", s.lowest, s.lowest_scenario.as_str());
            summary_line(key, s.median, s.scenarios, extreme, ("below", s.below_one))
        })
        .collect()
}

fn pacing_label(p: Pacing) -> String {
    match p {
        Pacing::Closed { window } => format!("closed w{window}"),
        Pacing::Open { rate, window } => format!("open {}/s w{window}", report::text::rate(rate)),
    }
}

pub(super) fn run(cmd: CompareCmd) -> anyhow::Result<bool> {
    let provenance = report::Provenance::now();
    if cmd.bench.external_router() {
        bail!("--router: compare starts its own routers; drop --router");
    }
    let open_at: Vec<f64> = match &cmd.open_at {
        None => Vec::new(),
        Some(list) => list
            .split(',')
            .map(str::trim)
            .map(|x| match x.parse::<f64>() {
                Ok(share) if share > 0.0 && share <= 1.0 => Ok(share),
                _ => Err(anyhow::anyhow!("--open-at: '{x}' is not a share between 0 and 1")),
            })
            .collect::<anyhow::Result<_>>()?,
    };
    let kinds: Vec<RouterKind> = cmd
        .routers
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<RouterKind>().map_err(|e| anyhow::anyhow!("--routers: {e}")))
        .collect::<anyhow::Result<_>>()?;
    let names: Vec<String> = kinds.iter().map(|k| k.name().to_string()).collect();
    if names.len() < 2 {
        bail!("--routers: name at least two routers");
    }
    let output =
        cmd.bench.output().map_or_else(|| PathBuf::from("compare_results.json"), PathBuf::from);
    let cfg = BenchConfig::try_from(cmd.bench)?;
    if let Some(flag) = cfg.not_for_compare() {
        bail!("{flag}: not taken by compare (run a2a-bench without compare for it)");
    }
    crate::report::json::check_writable(&output, "--output")?;
    let (csv, html) = cfg.exports();
    for (path, flag) in [(csv, "--csv"), (html, "--html")] {
        if let Some(p) = path {
            crate::report::json::check_writable(p, flag)?;
        }
    }
    for w in cfg.warnings() {
        eprintln!("{w}");
    }
    super::raise_nofile(1 << 20).ok();
    let mut out = std::io::stdout();
    if let Some(spec) = &cmd.scaling {
        if csv.is_some() || html.is_some() {
            bail!("--scaling: writes one JSON report; --csv and --html are not taken with it");
        }
        return scaling(spec, &cfg, &kinds, &names, &open_at, &provenance, &output, &mut out);
    }
    let (rows, reports) = compare_plan(&cfg, &kinds, &names, &open_at, &provenance, &mut out)?;
    let all_ok = reports.values().all(|r| r.summary.failed == 0);
    let closed_loop = closed_loop_summary(&rows, &names);
    if !closed_loop.is_empty() {
        let _ = writeln!(out, "\nthroughput ratios (medians of the rounds per scenario):");
        for line in summary_lines(&closed_loop) {
            let _ = writeln!(out, "{line}");
        }
    }
    let closed_loop_p99 = closed_loop_tails(&rows, &names);
    if !closed_loop_p99.is_empty() {
        let _ = writeln!(
            out,
            "p99 ratios, closed loop (medians of the rounds per scenario; above 1.0: {}'s tail is longer):",
            names[0]
        );
        for line in tail_lines(&closed_loop_p99) {
            let _ = writeln!(out, "{line}");
        }
    }
    let doc = CompareReport {
        routers: &names,
        reference: &names[0],
        comparison: &rows,
        closed_loop,
        closed_loop_p99,
        reports,
    };
    let text = serde_json::to_string_pretty(&doc)?;
    std::fs::write(&output, text + "\n")
        .with_context(|| format!("writing {}", output.display()))?;
    let _ = writeln!(out, "\ncomparison written to {}", output.display());
    let value = serde_json::to_value(&doc)?;
    if let Some(path) = csv {
        report::csv::write(&value, path)?;
        let _ = writeln!(out, "CSV written to {}", path.display());
    }
    if let Some(path) = html {
        report::html::write(&value, path)?;
        let _ = writeln!(out, "HTML written to {}", path.display());
    }
    Ok(all_ok)
}

/// One comparison on `cfg`'s cores: every scenario against every router, alternating.
fn compare_plan(
    cfg: &BenchConfig,
    kinds: &[RouterKind],
    names: &[String],
    open_at: &[f64],
    provenance: &report::Provenance,
    out: &mut dyn Write,
) -> anyhow::Result<(Vec<Row>, BTreeMap<String, Report>)> {
    // Before the routers start: a polling router would take the cores from the probe.
    let stalls = cfg.probe_stalls();
    crate::placement::share_cores(&cfg.plan().shared_cores());
    let contenders: Vec<AnyRouter> =
        kinds.iter().map(|&k| start(k, cfg)).collect::<anyhow::Result<_>>()?;
    let plan = cfg.plan().clone();
    let _ = writeln!(
        out,
        "a2a-bench compare: {} on router cores {:?}, agents on cores {:?}; runs alternate between routers",
        names.join(" vs "),
        plan.router.iter().map(|s| s.core).collect::<Vec<_>>(),
        plan.agents.iter().map(|s| s.core).collect::<Vec<_>>()
    );
    if let Some(line) = report::text::stalls_line(&stalls) {
        let _ = writeln!(out, "{line}");
    }
    let rounds = cfg.report_config().repeat_count;
    if rounds < 3 {
        eprintln!(
            "warning: --repeat {rounds}: each ratio rests on {rounds} round(s) and has no spread worth reading; use --repeat 3 or more"
        );
    }
    let mut all: BTreeMap<String, Vec<RunResult>> =
        names.iter().map(|n| (n.clone(), Vec::new())).collect();
    let mut rows = Vec::new();
    let mut run_no = 0u32;
    // Routers and agents on the same cores are judged by those cores ([`CpuInfo::judge_shared`]).
    let shared = super::bench::plan_sharing(&plan);
    let grid = cfg.grid();
    let mut scenarios: Vec<Vec<RunSpec>> = Vec::new();
    for spec in grid {
        match scenarios.last_mut() {
            Some(group) if spec.repeat > 0 => group.push(spec),
            _ => scenarios.push(vec![spec]),
        }
    }
    for group in scenarios {
        let row =
            compare_one(&group, names, &contenders, &mut all, &mut run_no, shared.as_ref(), out);
        let baseline_rate = row.per_router.get("tokio-shared").map(|m| m.sent_per_sec);
        rows.push(row);
        for &share in open_at {
            let (Some(rate), Pacing::Closed { window }) = (baseline_rate, group[0].scenario.pacing)
            else {
                break;
            };
            if rate > 0.0 {
                let open: Vec<RunSpec> = group
                    .iter()
                    .map(|s| {
                        let mut s = s.clone();
                        s.scenario.pacing = Pacing::Open { rate: rate * share, window };
                        s
                    })
                    .collect();
                rows.push(compare_one(
                    &open,
                    names,
                    &contenders,
                    &mut all,
                    &mut run_no,
                    shared.as_ref(),
                    out,
                ));
            }
        }
    }
    for c in contenders {
        c.stop();
    }
    let reports: BTreeMap<String, Report> = all
        .into_iter()
        .map(|(name, results)| {
            let report = Report {
                summary: Summary::of(&results),
                results,
                config: cfg.report_config().clone(),
                schema_version: report::SCHEMA_VERSION,
                tool: report::Tool::default(),
                placement: PlacementInfo { router: name.clone(), plan: plan.clone() },
                host: crate::host::facts_with_stalls(&stalls),
                started_at: provenance.started_at.clone(),
                command_line: provenance.command_line.clone(),
                accounting_includes_warmup: true,
                interrupted: false,
                thresholds: Vec::new(),
                rate_search: Vec::new(),
                baseline: None,
                worker: None,
                merged: None,
            };
            (name, report)
        })
        .collect();
    Ok((rows, reports))
}

fn compare_one(
    group: &[RunSpec],
    names: &[String],
    contenders: &[AnyRouter],
    all: &mut BTreeMap<String, Vec<RunResult>>,
    run_no: &mut u32,
    shared: Option<&report::CoreSharing>,
    out: &mut dyn Write,
) -> Row {
    let first = &group[0].scenario;
    let mut per: BTreeMap<String, Vec<RunResult>> = BTreeMap::new();
    for spec in group {
        for (name, c) in names.iter().zip(contenders) {
            let mut spec = spec.clone();
            *run_no += 1;
            spec.scenario.id_base = 1 + (*run_no % 2000) * (1 << 21);
            let before = crate::host::CpuTimes::now();
            // The routers run in this process: its rings' lost wake-ups are the run's, the
            // router's and the agents' alike.
            let rescued = crate::transport::uring::rescued();
            let outcome = loadgen::run(&spec.scenario, c.local_addr(), Some(c), None);
            let lost_wakeups = crate::transport::uring::rescued() - rescued;
            let others =
                before.zip(crate::host::CpuTimes::now()).map(|(a, b)| b.others_share_since(&a));
            super::bench::busy_warning(*run_no as usize - 1, others);
            let mut result = RunResult::new(&spec, &outcome);
            result.cpu.others_share = others;
            result.lost_wakeups = (lost_wakeups > 0).then_some(lost_wakeups);
            if let Some(sharing) = shared {
                result.cpu.judge_shared(sharing);
            }
            per.entry(name.clone()).or_default().push(result.clone());
            if let Some(list) = all.get_mut(name) {
                list.push(result);
            }
        }
    }
    let per_router: BTreeMap<String, Medians> =
        per.iter().map(|(n, r)| (n.clone(), Medians::of(r, shared))).collect();
    let reference = &per_router[&names[0]];
    let mut throughput_ratios = BTreeMap::new();
    let mut p99_ratios = BTreeMap::new();
    let mut throughput_ratio_spread = BTreeMap::new();
    let mut p99_ratio_spread = BTreeMap::new();
    for other in &names[1..] {
        let m = &per_router[other];
        let key = format!("{}/{}", names[0], other);
        let round_ratios: Vec<f64> = per[&names[0]]
            .iter()
            .zip(&per[other])
            .filter(|(a, b)| a.success && b.success && b.throughput_msg_per_sec > 0.0)
            .map(|(a, b)| a.throughput_msg_per_sec / b.throughput_msg_per_sec)
            .collect();
        let rounds = per[&names[0]].iter().zip(&per[other]).filter(|(a, b)| a.success && b.success);
        let p99_round_ratios: Vec<f64> = rounds
            .filter(|(_, b)| b.p99_latency_ms > 0.0)
            .map(|(a, b)| a.p99_latency_ms / b.p99_latency_ms)
            .collect();
        let range = |v: &[f64]| {
            Some([v.iter().copied().reduce(f64::min)?, v.iter().copied().reduce(f64::max)?])
        };
        if let Some(r) = range(&round_ratios) {
            throughput_ratio_spread.insert(key.clone(), r);
        }
        if let Some(r) = range(&p99_round_ratios) {
            p99_ratio_spread.insert(key.clone(), r);
        }
        if m.throughput > 0.0 {
            throughput_ratios.insert(key.clone(), reference.throughput / m.throughput);
        }
        if m.p99_ms > 0.0 {
            p99_ratios.insert(key, reference.p99_ms / m.p99_ms);
        }
    }
    let pacing = pacing_label(first.effective_pacing());
    let _ = writeln!(out, "\n{} × {} agents, {}", first.shape(), first.agents, pacing);
    for name in names {
        let m = &per_router[name];
        let ratio = if name == &names[0] {
            String::new()
        } else {
            let key = format!("{}/{}", names[0], name);
            let spread = match (group.len(), throughput_ratio_spread.get(&key)) {
                (1, _) => " (one round: no spread)".to_string(),
                (n, Some([lo, hi])) => format!(" ({lo:.2}–{hi:.2} over {n} rounds)"),
                (_, None) => String::new(),
            };
            let tp = throughput_ratios
                .get(&key)
                .map_or(String::new(), |r| format!("   {} is {:.2}× this{spread}", names[0], r));
            // At a fixed rate every router delivers the rate: the tail is the comparison, and
            // only while the generator kept up is it the routers'.
            let open = matches!(first.effective_pacing(), Pacing::Open { .. });
            let p99 = match (open, p99_ratios.get(&key)) {
                (true, Some(r)) => {
                    let saturated =
                        |m: &Medians| matches!(m.bottleneck.as_str(), "generator" | "both");
                    let shared = |m: &Medians| m.bottleneck == crate::report::SHARED_CORES;
                    let why = if shared(reference) || shared(m) {
                        " (the cores the routers share with the agents were saturated)"
                    } else if saturated(reference) || saturated(m) {
                        " (the agents' core was saturated: the p99s are the generator's)"
                    } else {
                        ""
                    };
                    let spread = match (group.len(), p99_ratio_spread.get(&key)) {
                        (n, Some([lo, hi])) if n > 1 => {
                            format!(" ({lo:.2}–{hi:.2} over {n} rounds)")
                        }
                        _ => String::new(),
                    };
                    format!(", its p99 {r:.2}× this{spread}{why}")
                }
                _ => String::new(),
            };
            tp + &p99
        };
        let _ = writeln!(
            out,
            "  {:<15} {:>10} msgs/s ({}–{})  p50 {} ms  p99 {} ms  {}/{} ok, bound: {}, {}{}",
            name,
            report::text::rate(m.throughput),
            report::text::rate(m.throughput_min),
            report::text::rate(m.throughput_max),
            report::text::ms(m.p50_ms),
            report::text::ms(m.p99_ms),
            m.ok_runs,
            m.runs,
            m.bottleneck,
            match (m.router_cpu_ns_per_msg, m.router_idle_share) {
                (Some(ns), Some(idle)) => {
                    let watch = m
                        .router_watch_share
                        .filter(|&w| w >= 0.005)
                        .map_or(String::new(), |w| format!(" ({:.0} % watching)", w * 100.0));
                    format!("router CPU {ns:.0} ns/msg{watch}, {:.0} % idle", idle * 100.0)
                }
                _ => "router CPU unknown".to_string(),
            } + &m
                .router_msgs_per_frame
                .map_or(String::new(), |x| format!(", {x:.1} msgs/frame out"))
                + &m.cross_shard_share
                    .map_or(String::new(), |x| format!(", {:.0} % across shards", x * 100.0))
                + &lost_wakeups_note(m.lost_wakeups),
            ratio
        );
    }
    Row {
        topology: first.shape().into(),
        agents: first.agents,
        pacing,
        per_router,
        throughput_ratios,
        p99_ratios,
        throughput_ratio_spread,
        p99_ratio_spread,
        rounds: group.len(),
    }
}

/// One router core count of a scaling run.
#[derive(Serialize)]
struct ScalingStep {
    router_cores: usize,
    plan: Plan,
    comparison: Vec<Row>,
    reports: BTreeMap<String, Report>,
}

/// One router and scenario across the core counts.
#[derive(Serialize)]
struct ScalingRow {
    router: String,
    scenario: String,
    /// Router core count → median throughput (router deliveries/s).
    throughput: BTreeMap<usize, f64>,
    /// Router core count → throughput(N) / (N × throughput(1)); needs a 1-core step.
    efficiency: BTreeMap<usize, f64>,
}

#[derive(Serialize)]
struct ScalingReport<'a> {
    routers: &'a [String],
    reference: &'a str,
    skipped: Vec<String>,
    efficiency: Vec<ScalingRow>,
    scaling: Vec<ScalingStep>,
}

/// `compare --scaling 1,2,4,8`: the comparison once per router core count, on the first 2N
/// cores (split between router and agents as the benchmark splits them), in one report.
#[allow(clippy::too_many_arguments)]
fn scaling(
    spec: &str,
    cfg: &BenchConfig,
    kinds: &[RouterKind],
    names: &[String],
    open_at: &[f64],
    provenance: &report::Provenance,
    output: &std::path::Path,
    out: &mut dyn Write,
) -> anyhow::Result<bool> {
    let counts: Vec<usize> = spec
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().ok().filter(|&n| (1..=64).contains(&n)))
        .collect::<Option<_>>()
        .ok_or_else(|| anyhow::anyhow!("--scaling: a list of router core counts, 1 to 64"))?;
    if counts.is_empty() {
        bail!("--scaling: the list is empty");
    }
    let mut all: Vec<Slot> = cfg.plan().router.iter().chain(&cfg.plan().agents).copied().collect();
    all.sort_by_key(|s| s.core);
    all.dedup_by_key(|s| s.core);
    let (mut steps, mut skipped, mut ok) = (Vec::new(), Vec::new(), true);
    for n in counts {
        if 2 * n > all.len() {
            let why = format!(
                "{n} router core(s) need {} cores (as many again for the agents); --cores gives {}: skipped",
                2 * n,
                all.len()
            );
            eprintln!("scaling: {why}");
            skipped.push(why);
            continue;
        }
        let plan = Plan::split(&all[..2 * n]);
        let _ = writeln!(out, "\n== {n} router core(s) ==");
        let step_cfg = cfg.with_plan(plan.clone());
        let (rows, reports) = compare_plan(&step_cfg, kinds, names, open_at, provenance, out)?;
        ok &= reports.values().all(|r| r.summary.failed == 0);
        steps.push(ScalingStep { router_cores: n, plan, comparison: rows, reports });
    }
    let mut efficiency: Vec<ScalingRow> = Vec::new();
    for step in &steps {
        for row in &step.comparison {
            let scenario = format!("{} × {} {}", row.topology, row.agents, row.pacing);
            for (router, m) in &row.per_router {
                let at =
                    efficiency.iter().position(|r| r.router == *router && r.scenario == scenario);
                let i = at.unwrap_or_else(|| {
                    efficiency.push(ScalingRow {
                        router: router.clone(),
                        scenario: scenario.clone(),
                        throughput: BTreeMap::new(),
                        efficiency: BTreeMap::new(),
                    });
                    efficiency.len() - 1
                });
                efficiency[i].throughput.insert(step.router_cores, m.throughput);
            }
        }
    }
    for r in &mut efficiency {
        if let Some(&one) = r.throughput.get(&1).filter(|&&t| t > 0.0) {
            r.efficiency = r.throughput.iter().map(|(&n, &t)| (n, t / (n as f64 * one))).collect();
        }
    }
    let _ = writeln!(out, "\nscaling (median msgs/s; efficiency = thr(N) / (N × thr(1))):");
    for r in &efficiency {
        let cells: Vec<String> = r
            .throughput
            .iter()
            .map(|(n, t)| {
                let eff = r.efficiency.get(n).map_or(String::new(), |e| format!(" ({e:.2})"));
                format!("{n}: {}{eff}", report::text::rate(*t))
            })
            .collect();
        let _ = writeln!(out, "  {:<15} {:<30} {}", r.router, r.scenario, cells.join("  "));
    }
    let doc =
        ScalingReport { routers: names, reference: &names[0], skipped, efficiency, scaling: steps };
    std::fs::write(output, serde_json::to_string_pretty(&doc)? + "\n")
        .with_context(|| format!("writing {}", output.display()))?;
    let _ = writeln!(out, "\nscaling report written to {}", output.display());
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_counts_every_lost_wake_up_of_its_runs_and_says_so() {
        // Proves a router's row in `compare` sums the lost wake-ups of all its runs, the
        // failed ones too (a run that failed may have failed of them), and says the sum; a row
        // without any says nothing and keeps no such key.
        let spec = report::part::PartSpec {
            topology: "ring".into(),
            fanout: 0,
            agents: 2,
            slice: (0, 2),
            rate: None,
            window: 1,
            count_per_agent: Some(10),
            duration_sec: None,
            late_after_ms: 1.0,
            payload_bytes: 64,
            interval_ms: None,
            repeat: 0,
            http: false,
        }
        .run_spec()
        .unwrap();
        let run = |lost: Option<u64>| {
            let mut r = RunResult::new(&spec, &loadgen::Outcome::failed_setup(vec!["x".into()]));
            r.lost_wakeups = lost;
            r
        };
        let m = Medians::of(&[run(Some(2)), run(None), run(Some(5))], None);
        assert_eq!(m.lost_wakeups, 7);
        assert_eq!(
            lost_wakeups_note(m.lost_wakeups),
            ", 7 lost wake-ups (this process's rings slept to their 20 ms timer)"
        );
        let none = Medians::of(&[run(None), run(None)], None);
        assert_eq!((none.lost_wakeups, lost_wakeups_note(0)), (0, String::new()));
        let json = serde_json::to_value(&none).unwrap();
        assert!(json.get("lost_wakeups").is_none(), "{json}");
        assert_eq!(serde_json::to_value(&m).unwrap()["lost_wakeups"], 7);
    }

    fn row(topology: &str, agents: u32, pacing: &str, ratios: &[(&str, f64)]) -> Row {
        Row {
            topology: topology.into(),
            agents,
            pacing: pacing.into(),
            per_router: BTreeMap::new(),
            throughput_ratios: ratios.iter().map(|&(k, r)| (k.to_string(), r)).collect(),
            p99_ratios: BTreeMap::new(),
            throughput_ratio_spread: BTreeMap::new(),
            p99_ratio_spread: BTreeMap::new(),
            rounds: 3,
        }
    }

    #[test]
    fn the_tail_summary_takes_the_closed_loop_rows_median_highest_and_those_above_one() {
        // Proves the p99 summary reads only closed-loop rows, takes their median, names the
        // row where the first router's tail was longest against each other router, and counts
        // the rows where it was longer (above 1.0); a router with no p99 ratio is left out.
        let names: Vec<String> =
            ["glommio", "tokio-per-core", "other"].iter().map(|s| s.to_string()).collect();
        let key = "glommio/tokio-per-core";
        let tail = |topology: &str, agents, pacing: &str, p99: f64| {
            let mut r = row(topology, agents, pacing, &[(key, 1.0)]);
            r.p99_ratios.insert(key.to_string(), p99);
            r
        };
        let rows = [
            tail("star", 10, "closed w16", 0.6),
            tail("star", 10, "open 8.7 k/s w16", 3.5),
            tail("ring", 100, "closed w16", 1.23),
            tail("mesh", 100, "closed w16", 0.9),
        ];
        let summary = closed_loop_tails(&rows, &names);
        assert_eq!(summary.len(), 1, "no p99 ratio for 'other': {summary:?}");
        let s = &summary[key];
        assert_eq!((s.scenarios, s.above_one), (3, 1));
        assert!((s.median - 0.9).abs() < 1e-9, "{s:?}");
        assert_eq!((s.highest, s.highest_scenario.as_str()), (1.23, "ring × 100"));
        assert_eq!(
            tail_lines(&summary),
            ["  glommio / tokio-per-core: median 0.90× over 3 closed-loop scenarios, highest \
              1.23× (ring × 100), above 1.0 in 1"]
        );
        let none = closed_loop_tails(&rows[..2], &names);
        assert!(tail_lines(&none)[0].ends_with("highest 0.60× (star × 10), none above 1.0"));
    }

    #[test]
    fn the_summary_takes_the_closed_loop_rows_median_lowest_and_those_below_one() {
        // Proves the summary reads only closed-loop rows (a fixed rate's ratio is 1.0 by
        // construction), takes the median of an even count as the mean of the middle two, names
        // the lowest row, and counts the rows below 1.0; a router with no ratio is left out.
        let names: Vec<String> = ["glommio", "tokio-shared", "tokio-per-core", "other"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (shared, per_core) = ("glommio/tokio-shared", "glommio/tokio-per-core");
        let rows = [
            row("star", 10, "closed w16", &[(shared, 2.0), (per_core, 1.5)]),
            row("star", 10, "open 374.3 k/s w16", &[(shared, 0.5), (per_core, 0.5)]),
            row("ring", 100, "closed w16", &[(shared, 1.2), (per_core, 0.9)]),
            row("mesh", 100, "closed w16", &[(shared, 1.6), (per_core, 1.1)]),
            row("line", 10, "closed w16", &[(shared, 1.4), (per_core, 0.95)]),
        ];
        let summary = closed_loop_summary(&rows, &names);
        assert_eq!(summary.len(), 2, "no ratio for 'other': {summary:?}");
        let s = &summary[shared];
        assert_eq!((s.scenarios, s.below_one), (4, 0));
        assert!((s.median - 1.5).abs() < 1e-9, "{s:?}");
        assert_eq!((s.lowest, s.lowest_scenario.as_str()), (1.2, "ring × 100"));
        let p = &summary[per_core];
        assert_eq!((p.scenarios, p.below_one), (4, 2));
        assert!((p.median - 1.025).abs() < 1e-9, "{p:?}");
        assert_eq!((p.lowest, p.lowest_scenario.as_str()), (0.9, "ring × 100"));
        let lines = summary_lines(&summary);
        assert_eq!(
            lines[0],
            "  glommio / tokio-per-core: median 1.02× over 4 closed-loop scenarios, lowest 0.90× \
             (ring × 100), below 1.0 in 2"
        );
        assert!(lines[1].ends_with("(ring × 100), none below 1.0"), "{}", lines[1]);
    }
}
