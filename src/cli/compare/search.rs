//! `compare --find-max-agents RATE --slo EXPR` (or `--find-max-rate`): each router's search,
//! round after round (`--repeat`), the routers taking turns within a round; per scenario the
//! median answer of each router and the first router's ratio to each other's. A search's steps
//! follow from its own figures, so the routers cannot alternate step by step: they alternate
//! search by search, and the rounds give the spread.

use super::*;
use crate::cli::search::{find_max_agents, find_max_rate, Over};
use crate::report::figures::Stat;

/// One scenario's answers: each router's over the rounds, and the ratios of the first's.
#[derive(Debug, Serialize)]
pub(super) struct SearchRow {
    /// The scenario as its searches name it.
    scenario: String,
    /// Per router: its answers' median, range and count (rounds where nothing held count 0).
    per_router: BTreeMap<String, Stat>,
    /// `"<first>/<other>"`: the ratio of the medians (absent when the other's is 0).
    ratios: BTreeMap<String, f64>,
}

/// The comparison's report when it searched.
#[derive(Debug, Serialize)]
struct CompareSearchReport<'a> {
    routers: &'a [String],
    reference: &'a str,
    /// `agents` (`--find-max-agents`; `clients` in `a2a-bench http`'s words) or `rate`.
    searched: &'static str,
    slo: &'a str,
    /// `--find-max-agents`: what each agent asked, requests per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    agent_rate_per_sec: Option<f64>,
    rows: Vec<SearchRow>,
    /// Per router, its runs and its searches, round after round.
    reports: BTreeMap<String, Report>,
}

/// Runs every router's searches, `--repeat` rounds, and writes the comparison to `output`;
/// whether every search ended (none failed to start, none interrupted).
pub(super) fn compare_search(
    cfg: &BenchConfig,
    entries: &[Entry],
    names: &[String],
    provenance: &report::Provenance,
    (output, (csv, html)): (&Path, (Option<&Path>, Option<&Path>)),
    out: &mut dyn Write,
) -> anyhow::Result<bool> {
    let Some(search) = cfg.search.as_ref() else { bail!("compare_search without a search") };
    let stalls = cfg.probe_stalls();
    crate::placement::share_cores(&cfg.plan().shared_cores());
    let contenders = start_all(cfg, entries)?;
    let plan = cfg.plan().clone();
    let rounds = cfg.report_config().repeat_count.max(1);
    announce(out, names, &contenders, &plan, &stalls, rounds);
    let shared = super::super::bench::plan_sharing(&plan);
    let starts = cfg.search_starts();
    let mut results: BTreeMap<String, Vec<RunResult>> = BTreeMap::new();
    let mut rates: BTreeMap<String, Vec<report::RateSearch>> = BTreeMap::new();
    let mut agents: BTreeMap<String, Vec<report::AgentSearch>> = BTreeMap::new();
    let mut ended = true;
    'rounds: for round in 0..rounds {
        for (name, c) in names.iter().zip(&contenders) {
            let _ = writeln!(out, "\nround {} of {rounds}: {name}", round + 1);
            let target = (c.pids().to_vec(), c.pinned());
            let sharing = c.sharing(shared.as_ref()).cloned();
            let mut session = Session::against(cfg, c.addr(), c.probe(), target, sharing);
            let mine = results.entry(name.clone()).or_default();
            for start in &starts {
                let mut spec = start.clone();
                c.adapt(&mut spec.scenario);
                let found = match search.over {
                    Over::Rate => find_max_rate(&mut session, search, &spec, mine)
                        .map(|f| rates.entry(name.clone()).or_default().push(f)),
                    Over::Agents { per_agent } => {
                        let seat = |s: &RunSpec, n: u32| cfg.with_agents(s, n, per_agent);
                        find_max_agents(&mut session, search, &spec, per_agent, &seat, mine)
                            .map(|f| agents.entry(name.clone()).or_default().push(f))
                    }
                };
                if let Err(why) = found {
                    let _ = writeln!(out, "  {name}: {why}: the comparison ends here");
                    ended = false;
                    break 'rounds;
                }
            }
        }
    }
    for c in contenders {
        c.stop();
    }
    // Per scenario (in the order of `starts`), each router's answers over the rounds.
    let answers = |name: &str| -> Vec<(String, f64)> {
        match search.over {
            Over::Rate => rates
                .get(name)
                .into_iter()
                .flatten()
                .map(|s| (s.scenario.clone(), s.max_rate_per_sec.unwrap_or(0.0)))
                .collect(),
            Over::Agents { .. } => agents
                .get(name)
                .into_iter()
                .flatten()
                .map(|s| (s.scenario.clone(), f64::from(s.max_agents.unwrap_or(0))))
                .collect(),
        }
    };
    let rows = search_rows(names, &answers);
    let unit = match search.over {
        Over::Rate => "req/s",
        Over::Agents { .. } => agents.values().flatten().next().map_or("agents", |s| s.counts),
    };
    let _ = writeln!(
        out,
        "\n{} holding '{}' (medians of the rounds):",
        if search.over == Over::Rate { "highest rate" } else { "most agents" },
        search.slo_text
    );
    for row in &rows {
        let _ = writeln!(out, "{}", search_line(row, names, unit));
    }
    let reports = names
        .iter()
        .map(|name| {
            let runs = results.remove(name).unwrap_or_default();
            let mut report = report_of(name.clone(), runs, cfg, &plan, &stalls, provenance);
            report.rate_search = rates.remove(name).unwrap_or_default();
            report.agent_search = agents.remove(name).unwrap_or_default();
            (name.clone(), report)
        })
        .collect();
    let doc = CompareSearchReport {
        routers: names,
        reference: &names[0],
        searched: if search.over == Over::Rate { "rate" } else { "agents" },
        slo: &search.slo_text,
        agent_rate_per_sec: match search.over {
            Over::Agents { per_agent } => Some(per_agent),
            Over::Rate => None,
        },
        rows,
        reports,
    };
    let value = serde_json::to_value(&doc)?;
    let text = serde_json::to_string_pretty(&value)?;
    std::fs::write(output, text + "\n").with_context(|| format!("writing {}", output.display()))?;
    let _ = writeln!(out, "\ncomparison written to {}", output.display());
    // Every router's runs, named in the `router` column; the page's table of answers, then
    // each router's searches.
    if let Some(p) = csv {
        report::csv::write(&value, p)?;
    }
    if let Some(p) = html {
        report::html::write(&value, p)?;
    }
    Ok(ended)
}

/// The routers of `entries`, started or reached.
pub(super) fn start_all(cfg: &BenchConfig, entries: &[Entry]) -> anyhow::Result<Vec<Contender>> {
    entries
        .iter()
        .map(|e| match e {
            Entry::Own(k) => start(*k, cfg).map(Contender::Own),
            Entry::External { url, addr, transport } => {
                Ok(Contender::External(Box::new(External::reach(url, *addr, *transport, cfg))))
            }
        })
        .collect()
}

/// One row per scenario, in the first router's order: every router's answers (`answers(name)`:
/// `(scenario, answer)` in the order searched, rounds after one another) and the ratios.
fn search_rows(names: &[String], answers: &dyn Fn(&str) -> Vec<(String, f64)>) -> Vec<SearchRow> {
    let mut scenarios: Vec<String> = Vec::new();
    for (s, _) in answers(&names[0]) {
        if !scenarios.contains(&s) {
            scenarios.push(s);
        }
    }
    scenarios
        .into_iter()
        .map(|scenario| {
            let per_router: BTreeMap<String, Stat> = names
                .iter()
                .map(|n| {
                    let mine: Vec<f64> = answers(n)
                        .into_iter()
                        .filter(|(s, _)| *s == scenario)
                        .map(|(_, v)| v)
                        .collect();
                    (n.clone(), Stat::of(mine))
                })
                .collect();
            let first = per_router[&names[0]].median;
            let ratios = names[1..]
                .iter()
                .filter(|n| per_router[*n].n > 0 && per_router[*n].median > 0.0)
                .map(|n| (format!("{}/{n}", names[0]), first / per_router[n].median))
                .collect();
            SearchRow { scenario, per_router, ratios }
        })
        .collect()
}

/// "ring w16: glommio 192000 (188000–196000), tokio-per-core 150000 (…); glommio is 1.28× …".
fn search_line(row: &SearchRow, names: &[String], unit: &str) -> String {
    let fmt = |v: f64| match unit {
        "req/s" => report::text::rate(v),
        _ => format!("{v:.0}"),
    };
    let each: Vec<String> = names
        .iter()
        .map(|n| {
            let s = &row.per_router[n];
            match s.n {
                0 => format!("{n} -"),
                1 => format!("{n} {} {unit}", fmt(s.median)),
                _ => format!("{n} {} {unit} ({}–{})", fmt(s.median), fmt(s.min), fmt(s.max)),
            }
        })
        .collect();
    let ratios: Vec<String> = names[1..]
        .iter()
        .filter_map(|n| {
            let r = row.ratios.get(&format!("{}/{n}", names[0]))?;
            Some(format!("{r:.2}× {n}"))
        })
        .collect();
    let tail = if ratios.is_empty() {
        String::new()
    } else {
        format!("; {} is {}", names[0], ratios.join(", "))
    };
    format!("  {}: {}{tail}", row.scenario, each.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_router_s_answers_are_its_rounds_medians_and_the_first_s_ratios() {
        // Proves a search comparison's rows: per scenario each router's median over its
        // rounds (a round where nothing held counts 0), the first router's ratio to each other
        // (none where the other's median is 0), and the line that says them.
        let names: Vec<String> =
            ["glommio", "tokio-per-core", "tokio-shared"].map(String::from).to_vec();
        let answers = |n: &str| -> Vec<(String, f64)> {
            let v: &[f64] = match n {
                "glommio" => &[1200.0, 800.0, 1000.0, 500.0, 1100.0, 600.0],
                "tokio-per-core" => &[900.0, 400.0, 1000.0, 400.0, 1000.0, 400.0],
                _ => &[0.0, 300.0, 0.0, 300.0, 0.0, 300.0],
            };
            v.iter()
                .enumerate()
                .map(|(i, &x)| ((["ring w16", "mesh w16"][i % 2]).to_string(), x))
                .collect()
        };
        let rows = search_rows(&names, &answers);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].scenario, "ring w16");
        let g = &rows[0].per_router["glommio"];
        assert_eq!((g.median, g.min, g.max, g.n), (1100.0, 1000.0, 1200.0, 3));
        assert_eq!(rows[0].ratios.get("glommio/tokio-per-core").copied(), Some(1.1));
        assert_eq!(rows[0].ratios.get("glommio/tokio-shared"), None, "nothing held there");
        assert_eq!(rows[1].ratios.get("glommio/tokio-shared").copied(), Some(2.0));
        assert_eq!(
            search_line(&rows[0], &names, "agents"),
            "  ring w16: glommio 1100 agents (1000–1200), tokio-per-core 1000 agents (900–1000), tokio-shared 0 agents (0–0); glommio is 1.10× tokio-per-core"
        );
    }
}
