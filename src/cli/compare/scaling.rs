//! `compare --scaling`: the comparison once per router core count, with scaling efficiency.

use super::*;

/// One router core count of a scaling run.
#[derive(Serialize)]
pub(super) struct ScalingStep {
    pub(super) router_cores: usize,
    pub(super) plan: Plan,
    pub(super) comparison: Vec<Row>,
    pub(super) reports: BTreeMap<String, Report>,
}

/// One router and scenario across the core counts.
#[derive(Serialize)]
pub(super) struct ScalingRow {
    pub(super) router: String,
    pub(super) scenario: String,
    /// Router core count → median throughput (router deliveries/s).
    pub(super) throughput: BTreeMap<usize, f64>,
    /// Router core count → throughput(N) / (N × throughput(1)); needs a 1-core step.
    pub(super) efficiency: BTreeMap<usize, f64>,
}

#[derive(Serialize)]
pub(super) struct ScalingReport<'a> {
    pub(super) routers: &'a [String],
    pub(super) reference: &'a str,
    pub(super) skipped: Vec<String>,
    pub(super) efficiency: Vec<ScalingRow>,
    pub(super) scaling: Vec<ScalingStep>,
}

/// Why a star's efficiency is low for every router.
const STAR_NOTE: &str = "star: every message goes to or from the hub agent, on one \
    connection and so on one shard: more router cores cannot carry it faster (the topology's \
    limit, not a router's)";

/// `compare --scaling 1,2,4,8`: the comparison once per router core count, on the first 2N
/// cores (split between router and agents as the benchmark splits them), in one report.
#[allow(clippy::too_many_arguments)]
pub(super) fn scaling(
    spec: &str,
    cfg: &BenchConfig,
    entries: &[Entry],
    names: &[String],
    open_at: &[f64],
    provenance: &report::Provenance,
    output: &std::path::Path,
    out: &mut dyn Write,
) -> anyhow::Result<bool> {
    let counts = parse_counts(spec)?;
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
        let (rows, reports) = compare_plan(&step_cfg, entries, names, open_at, provenance, out)?;
        ok &= reports.values().all(|r| r.summary.failed == 0);
        steps.push(ScalingStep { router_cores: n, plan, comparison: rows, reports });
    }
    let efficiency = efficiency_rows(&steps);
    print_efficiency(out, &efficiency);
    if efficiency.iter().any(|r| r.scenario.starts_with("star")) {
        // Measured on 16 cores: 1 → 8 router cores gave every router 0.19–0.24 (BENCHMARKS).
        let _ = writeln!(out, "  {STAR_NOTE}");
    }
    let doc =
        ScalingReport { routers: names, reference: &names[0], skipped, efficiency, scaling: steps };
    std::fs::write(output, serde_json::to_string_pretty(&doc)? + "\n")
        .with_context(|| format!("writing {}", output.display()))?;
    let _ = writeln!(out, "\nscaling report written to {}", output.display());
    Ok(ok)
}

/// `--scaling`: router core counts, 1 to 64 each.
fn parse_counts(spec: &str) -> anyhow::Result<Vec<usize>> {
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
    Ok(counts)
}

/// One row per router and scenario: its median throughput at each router core count, and
/// its efficiency against its own rate at one core (where one core was run).
fn efficiency_rows(steps: &[ScalingStep]) -> Vec<ScalingRow> {
    let mut efficiency: Vec<ScalingRow> = Vec::new();
    for step in steps {
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
    efficiency
}

/// The efficiency table, one line per router and scenario.
fn print_efficiency(out: &mut dyn Write, efficiency: &[ScalingRow]) {
    let _ = writeln!(out, "\nscaling (median msgs/s; efficiency = thr(N) / (N × thr(1))):");
    for r in efficiency {
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
}
