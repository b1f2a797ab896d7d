//! `a2a-bench compare`: the same grid against several routers on the same cores, alternating.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use serde::Serialize;

use super::bench::{settle_cpu, BenchArgs, BenchConfig, Session};
use crate::loadgen::{self, Pacing};
use crate::placement::{Plan, Slot};
use crate::report::{self, PlacementInfo, Report, RunResult, RunSpec};
use crate::routers::{AnyRouter, RouterKind, RouterSpec};

mod contender;
mod medians;
mod scaling;
mod scenario;
mod search;
mod summary;
#[cfg(test)]
mod tests;

use contender::*;
use medians::*;
use scaling::*;
use scenario::*;
use search::*;
use summary::*;

/// `a2a-bench compare`.
#[derive(Args, Debug)]
#[command(allow_negative_numbers = true)]
pub struct CompareCmd {
    #[command(flatten)]
    bench: BenchArgs,
    /// Routers to compare, the first being the one ratios are about: glommio, tokio-shared,
    /// tokio-per-core (started on the router cores), or a router already running, as
    /// [NAME=]tcp://host:port or [NAME=]ws://host:port[/path] (its own process, wherever it
    /// runs; named by NAME, else by host:port), e.g. glommio,mine=tcp://127.0.0.1:7000.
    #[arg(long, value_name = "LIST", default_value = "glommio,tokio-shared,tokio-per-core")]
    routers: String,
    /// Also run each scenario open-loop at these shares of the tokio-shared baseline's
    /// closed-loop request rate (without it, the slowest router's) (e.g. 0.5, or 0.5,0.01:
    /// near capacity, and a load the generator holds, where the p99s are the routers').
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
    let open_at = parse_open_at(cmd.open_at.as_deref())?;
    let (entries, names) = parse_routers(&cmd.routers, cmd.bench.protocol)?;
    let kinds: Vec<RouterKind> = entries.iter().filter_map(Entry::kind).collect();
    if cmd.bench.protocol == crate::loadgen::Protocol::Json
        && kinds.contains(&RouterKind::TokioShared)
    {
        bail!("--protocol json: tokio-shared speaks the native protocol only; compare the others with --routers glommio,tokio-per-core");
    }
    let ignored = kinds
        .contains(&RouterKind::TokioShared)
        .then(|| cmd.bench.router_flags.tokio_shared_warning("tokio-shared"));
    let output =
        cmd.bench.output().map_or_else(|| PathBuf::from("compare_results.json"), PathBuf::from);
    if cmd.scaling.is_some() && kinds.len() < entries.len() {
        bail!("--scaling: compare starts each router on 1, 2, 4… cores; a running one (--routers URL) cannot be");
    }
    let mut bench = cmd.bench;
    if kinds.is_empty() {
        // Only running routers: no core is kept for a router, the agents take every one (or
        // --agent-cores), as with a2a-bench --router.
        if bench.router_cores.is_some() {
            bail!("--router-cores: every router of --routers runs already; compare starts none");
        }
        bench.router = entries.iter().find_map(|e| match e {
            Entry::External { url, .. } => Some(url.clone()),
            Entry::Own(_) => None,
        });
        if bench.transport.is_some() {
            bail!("--transport: every router of --routers runs already, reached over its URL's scheme");
        }
    }
    let cfg = BenchConfig::try_from(bench)?;
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
    check_running(&entries, cfg.protocol())?;
    for w in cfg.warnings().iter().chain(ignored.flatten().as_ref()) {
        eprintln!("{w}");
    }
    super::raise_nofile(1 << 20).ok();
    let mut out = std::io::stdout();
    if cfg.search.is_some() {
        // A search's answer per router and round: no grid of rows for --scaling or --open-at.
        if let Some(flag) =
            [(cmd.scaling.is_some(), "--scaling"), (!open_at.is_empty(), "--open-at")]
                .into_iter()
                .find_map(|(given, flag)| given.then_some(flag))
        {
            bail!("{flag}: not taken by a compare that searches (--find-max-rate, --find-max-agents); its JSON report has each router's searches");
        }
        let pages = (csv, html);
        return compare_search(&cfg, &entries, &names, &provenance, (&output, pages), &mut out);
    }
    if let Some(spec) = &cmd.scaling {
        if csv.is_some() || html.is_some() {
            bail!("--scaling: writes one JSON report; --csv and --html are not taken with it");
        }
        return scaling(spec, &cfg, &entries, &names, &open_at, &provenance, &output, &mut out);
    }
    let (rows, reports) = compare_plan(&cfg, &entries, &names, &open_at, &provenance, &mut out)?;
    let all_ok = reports.values().all(|r| r.summary.failed == 0);
    let closed_loop = closed_loop_summary(&rows, &names);
    let closed_loop_p99 = closed_loop_tails(&rows, &names);
    let closed_loop_cpu = closed_loop_cpu(&rows, &names);
    let first = &names[0];
    for (heading, lines) in [
        (
            "\nthroughput ratios (medians of the rounds per scenario):".to_string(),
            summary_lines(&closed_loop),
        ),
        (
            format!("p99 ratios, closed loop (medians of the rounds per scenario; above 1.0: {first}'s tail is longer):"),
            tail_lines(&closed_loop_p99),
        ),
        (
            format!("router CPU per routed message, closed loop (medians of the rounds per scenario; above 1.0: {first} used more):"),
            tail_lines(&closed_loop_cpu),
        ),
    ] {
        if !lines.is_empty() {
            let _ = writeln!(out, "{heading}");
            for line in lines {
                let _ = writeln!(out, "{line}");
            }
        }
    }
    let doc = CompareReport {
        routers: &names,
        reference: &names[0],
        comparison: &rows,
        closed_loop,
        closed_loop_p99,
        closed_loop_cpu,
        reports,
    };
    write_report(&doc, &output, (csv, html), &mut out)?;
    Ok(all_ok)
}

/// `--open-at`: shares of each scenario's closed-loop capacity, each in (0, 1].
fn parse_open_at(list: Option<&str>) -> anyhow::Result<Vec<f64>> {
    let Some(list) = list else { return Ok(Vec::new()) };
    list.split(',')
        .map(str::trim)
        .map(|x| match x.parse::<f64>() {
            Ok(share) if share > 0.0 && share <= 1.0 => Ok(share),
            _ => Err(anyhow::anyhow!("--open-at: '{x}' is not a share between 0 and 1")),
        })
        .collect()
}

/// Writes the comparison's JSON report to `output`, and its CSV and HTML where asked.
fn write_report(
    doc: &CompareReport<'_>,
    output: &Path,
    (csv, html): (Option<&Path>, Option<&Path>),
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(doc)?;
    std::fs::write(output, text + "\n").with_context(|| format!("writing {}", output.display()))?;
    let _ = writeln!(out, "\ncomparison written to {}", output.display());
    let value = serde_json::to_value(doc)?;
    if let Some(path) = csv {
        report::csv::write(&value, path)?;
        let _ = writeln!(out, "CSV written to {}", path.display());
    }
    if let Some(path) = html {
        report::html::write(&value, path)?;
        let _ = writeln!(out, "HTML written to {}", path.display());
    }
    Ok(())
}

/// One comparison on `cfg`'s cores: every scenario against every router, alternating.
fn compare_plan(
    cfg: &BenchConfig,
    entries: &[Entry],
    names: &[String],
    open_at: &[f64],
    provenance: &report::Provenance,
    out: &mut dyn Write,
) -> anyhow::Result<(Vec<Row>, BTreeMap<String, Report>)> {
    // Before the routers start: a polling router would take the cores from the probe.
    let stalls = cfg.probe_stalls();
    crate::placement::share_cores(&cfg.plan().shared_cores());
    let contenders = start_all(cfg, entries)?;
    let plan = cfg.plan().clone();
    announce(out, names, &contenders, &plan, &stalls, cfg.report_config().repeat_count);
    // Every router runs every run, and each closed-loop run again at every --open-at share.
    let every: Vec<RunSpec> = cfg
        .grid()
        .into_iter()
        .flat_map(|spec| {
            let closed = matches!(spec.scenario.pacing, Pacing::Closed { .. });
            let times = names.len() * (1 + if closed { open_at.len() } else { 0 });
            std::iter::repeat_n(spec, times)
        })
        .collect();
    let time = super::bench::expected_time(&every);
    if !time.is_empty() {
        let _ = writeln!(out, "{} runs{time}", every.len());
    }
    let mut all: BTreeMap<String, Vec<RunResult>> =
        names.iter().map(|n| (n.clone(), Vec::new())).collect();
    let mut rows = Vec::new();
    let mut run_no = 0u32;
    // Routers and agents on the same cores are judged by those cores ([`CpuInfo::judge_shared`]).
    let shared = super::bench::plan_sharing(&plan);
    let mut one =
        |group: &[RunSpec], all: &mut BTreeMap<String, Vec<RunResult>>, out: &mut dyn Write| {
            compare_one(group, names, &contenders, all, &mut run_no, shared.as_ref(), out)
        };
    for group in scenarios(cfg.grid()) {
        let row = one(&group, &mut all, out);
        let base = open_loop_base(&row.per_router);
        rows.push(row);
        let Pacing::Closed { window } = group[0].scenario.pacing else { continue };
        if open_at.is_empty() {
            continue;
        }
        // The open-loop rows: shares of the baseline's closed-loop rate.
        match base {
            Some((_, rate)) => {
                for &share in open_at {
                    rows.push(one(&at_rate(&group, rate * share, window), &mut all, out));
                }
            }
            None => {
                let _ = writeln!(
                    out,
                    "  --open-at: no open-loop rows for this scenario: no router completed its closed-loop runs"
                );
            }
        }
    }
    for c in contenders {
        c.stop();
    }
    // A running router's report says where it ran.
    let urls: BTreeMap<&String, &str> = names
        .iter()
        .zip(entries)
        .filter_map(|(n, e)| match e {
            Entry::External { url, .. } => Some((n, url.as_str())),
            Entry::Own(_) => None,
        })
        .collect();
    let reports = all
        .into_iter()
        .map(|(name, results)| {
            // A running router's cores are its own, not the plan's router cores.
            let (label, plan) = match urls.get(&name) {
                Some(u) => (format!("{name} ({u})"), Plan { router: Vec::new(), ..plan.clone() }),
                None => (name.clone(), plan.clone()),
            };
            let report = report_of(label, results, cfg, &plan, &stalls, provenance);
            (name, report)
        })
        .collect();
    Ok((rows, reports))
}

/// The closed-loop request rate `--open-at`'s shares are of, and whose: tokio-shared's where it
/// ran and completed runs, else the slowest router's that did (a rate every router held in
/// closed loop); none when no router completed a run.
fn open_loop_base(per_router: &BTreeMap<String, Medians>) -> Option<(String, f64)> {
    let done = |m: &&Medians| m.ok_runs > 0 && m.sent_per_sec > 0.0;
    if let Some(m) = per_router.get("tokio-shared").filter(done) {
        return Some(("tokio-shared".into(), m.sent_per_sec));
    }
    per_router
        .iter()
        .filter(|(_, m)| done(m))
        .map(|(n, m)| (n.clone(), m.sent_per_sec))
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

/// The comparison's first lines: who runs where, the machine's stalls, and a warning when the
/// rounds are too few for a spread.
fn announce(
    out: &mut dyn Write,
    names: &[String],
    contenders: &[Contender],
    plan: &crate::placement::Plan,
    stalls: &[crate::host::Stalls],
    rounds: u32,
) {
    let cores = |slots: &[Slot]| slots.iter().map(|s| s.core).collect::<Vec<_>>();
    let routers = if plan.router.is_empty() {
        "running routers".to_string()
    } else {
        format!("router cores {:?}", cores(&plan.router))
    };
    let _ = writeln!(
        out,
        "a2a-bench compare: {} on {routers}, agents on cores {:?}; runs alternate between routers",
        names.join(" vs "),
        cores(&plan.agents)
    );
    for (name, c) in names.iter().zip(contenders) {
        let Contender::External(x) = c else { continue };
        let pinned = &x.pinned;
        let where_ = match (x.pids.len(), pinned.is_empty()) {
            (0, _) => "no process of it seen on this machine: its CPU is not measured".to_string(),
            (n, true) => format!("{n} process(es) here, not pinned: their CPU is its CPU"),
            (n, false) => {
                format!("{n} process(es) here, pinned to cores {pinned:?}: their CPU is its CPU")
            }
        };
        let _ = writeln!(out, "  {name}: {}, already running ({where_})", x.url);
        for note in &x.notes {
            let _ = writeln!(out, "  {note}");
        }
    }
    if let Some(line) = report::text::stalls_line(stalls) {
        let _ = writeln!(out, "{line}");
    }
    if rounds < 3 {
        eprintln!(
            "warning: --repeat {rounds}: each ratio rests on {rounds} round(s) and has no spread worth reading; use --repeat 3 or more"
        );
    }
}

/// The grid's runs grouped by scenario: each group a scenario's repeats.
fn scenarios(grid: Vec<RunSpec>) -> Vec<Vec<RunSpec>> {
    let mut scenarios: Vec<Vec<RunSpec>> = Vec::new();
    for spec in grid {
        match scenarios.last_mut() {
            Some(group) if spec.repeat > 0 => group.push(spec),
            _ => scenarios.push(vec![spec]),
        }
    }
    scenarios
}

/// A closed-loop scenario's runs, open loop at `rate` requests/s with the same window cap.
fn at_rate(group: &[RunSpec], rate: f64, window: u32) -> Vec<RunSpec> {
    group
        .iter()
        .map(|s| {
            let mut s = s.clone();
            s.scenario.pacing = Pacing::Open { rate, window };
            s
        })
        .collect()
}

/// One router's report of the comparison.
fn report_of(
    router: String,
    results: Vec<RunResult>,
    cfg: &BenchConfig,
    plan: &crate::placement::Plan,
    stalls: &[crate::host::Stalls],
    provenance: &report::Provenance,
) -> Report {
    let placement = PlacementInfo { router, plan: plan.clone() };
    Report::of_runs(results, cfg.report_config().clone(), placement, stalls, provenance)
}
