//! The figures thresholds, baselines and charts look at, read from a report's JSON, so that a
//! report written now and one saved months ago go through the same code.

use serde_json::Value;

/// One run's headline figures.
#[derive(Debug, Clone, PartialEq)]
pub struct RunFigures {
    /// The scenario it belongs to: `mesh × 100 closed w16` (repeats share it).
    pub scenario: String,
    /// Topology name.
    pub topology: String,
    /// Agents.
    pub agents: u32,
    /// `closed` or `open`.
    pub mode: String,
    /// Accounting closed with no error.
    pub success: bool,
    /// `ok`, `overloaded`, `too_short`, `interrupted`, `failed`.
    pub status: String,
    /// Router deliveries per second.
    pub throughput: f64,
    /// Requests that left per second of the window (the achieved rate).
    pub achieved_rate: f64,
    /// Open loop: the rate asked for.
    pub asked_rate: Option<f64>,
    /// Open loop: the asked rate held.
    pub sustained: bool,
    /// Round trip (intended-time) percentiles, ms: avg, p50, p95, p99, p99.9, max.
    pub latency_ms: [f64; 6],
    /// Whether the run measured any round trip (an open loop far behind its schedule measures
    /// none, and its zeros above are no latency). Reports from before the count: yes.
    pub latency_measured: bool,
    /// Errors of every kind.
    pub errors: u64,
    /// Requests sent, warm-up included (what `errors` is a share of).
    pub requests_sent: u64,
    /// Why it failed, when it did.
    pub failure: Option<String>,
    /// An HTTP mix's figures per pattern (empty for the router's runs).
    pub patterns: Vec<PatternFigures>,
}

/// One pattern's figures in one HTTP run: its measured window only.
#[derive(Debug, Clone, PartialEq)]
pub struct PatternFigures {
    /// The pattern's name.
    pub name: String,
    /// Answers.
    pub ok: u64,
    /// Errors.
    pub errors: u64,
    /// Answers per second.
    pub ok_per_sec: f64,
    /// Its answers' latency from the intended send time, as [`RunFigures::latency_ms`].
    pub latency_ms: [f64; 6],
    /// Whether any answer was timed.
    pub latency_measured: bool,
}

/// Which latency: the index into [`RunFigures::latency_ms`].
pub const AVG: usize = 0;
/// Median.
pub const P50: usize = 1;
/// 95th percentile.
pub const P95: usize = 2;
/// 99th percentile.
pub const P99: usize = 3;
/// 99.9th percentile.
pub const P999: usize = 4;
/// Largest.
pub const MAX: usize = 5;

fn f(v: &Value, path: &[&str]) -> f64 {
    path.iter().try_fold(v, |v, k| v.get(k)).and_then(Value::as_f64).unwrap_or(0.0)
}

/// Whether a run's JSON entry measured any round trip (`latency.rtt.count` above 0; a report
/// from before the count: yes). One that did not has no latency, its zeros notwithstanding.
pub fn latency_measured(r: &Value) -> bool {
    r["latency"]["rtt"]["count"].as_u64().is_none_or(|n| n > 0)
}

/// A scenario's name from a run's JSON entry.
pub fn scenario_name(r: &Value, count_mode: bool) -> String {
    let topology = r["topology"].as_str().unwrap_or("?");
    let agents = r["agent_count"].as_u64().unwrap_or(0);
    let window = r["pacing"]["window"].as_u64().unwrap_or(0);
    let pacing = match r["pacing"]["rate_per_sec"].as_f64() {
        Some(rate) => format!("open {}/s w{window}", super::text::rate(rate)),
        None => format!("closed w{window}"),
    };
    let count = if count_mode {
        format!(" ×{}", r["messages_per_agent"].as_u64().unwrap_or(0))
    } else {
        String::new()
    };
    let payload = match r["payload_size"].as_u64() {
        _ if r["payload_mix"].is_array() => " mix".to_string(),
        _ if r["payload_texts"].is_u64() => " texts".to_string(),
        Some(b) if b as usize != super::text::DEFAULT_PAYLOAD => {
            format!(" {}", super::text::size(b as usize))
        }
        _ => String::new(),
    };
    format!("{topology} × {agents} {pacing}{count}{payload}")
}

/// A run's patterns from its JSON entry: an HTTP mix's, or a payload mix's sizes (named as
/// the report writes them, `64B`, `1M`: their round trips as answers, their errors those told by size),
/// which thresholds (`p99{64B}<2ms`) and baselines take per size the same way.
fn patterns(r: &Value) -> Vec<PatternFigures> {
    let latency = |l: &Value| {
        let at = |k: &str| f(l, &[k]);
        [at("avg_ms"), at("p50_ms"), at("p95_ms"), at("p99_ms"), at("p999_ms"), at("max_ms")]
    };
    let sizes = r["payload_mix"].as_array().into_iter().flatten().map(|s| PatternFigures {
        name: super::text::size(s["bytes"].as_u64().unwrap_or(0) as usize),
        ok: s["latency"]["count"].as_u64().unwrap_or(0),
        errors: s["errors"].as_u64().unwrap_or(0),
        ok_per_sec: f(s, &["round_trips_per_sec"]),
        latency_ms: latency(&s["latency"]),
        latency_measured: s["latency"]["count"].as_u64().is_some_and(|n| n > 0),
    });
    // An HTTP run with a payload mix has both: its patterns, then its sizes.
    r["patterns"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let l = |k: &str| f(p, &["latency", k]);
            PatternFigures {
                name: p["pattern"].as_str().unwrap_or("?").to_string(),
                ok: p["ok"].as_u64().unwrap_or(0),
                errors: p["errors"].as_u64().unwrap_or(0),
                ok_per_sec: f(p, &["ok_per_sec"]),
                latency_ms: [
                    l("avg_ms"),
                    l("p50_ms"),
                    l("p95_ms"),
                    l("p99_ms"),
                    l("p999_ms"),
                    l("max_ms"),
                ],
                latency_measured: p["latency"]["count"].as_u64().is_some_and(|n| n > 0),
            }
        })
        .chain(sizes)
        .collect()
}

/// Every run of a report (`results`), in run order.
pub fn runs(report: &Value) -> Vec<RunFigures> {
    let count_mode = report["config"]["message_counts"].as_array().is_some_and(|a| !a.is_empty());
    let Some(results) = report["results"].as_array() else { return Vec::new() };
    results
        .iter()
        .map(|r| RunFigures {
            scenario: scenario_name(r, count_mode),
            topology: r["topology"].as_str().unwrap_or("?").to_string(),
            agents: r["agent_count"].as_u64().unwrap_or(0) as u32,
            mode: r["pacing"]["mode"].as_str().unwrap_or("closed").to_string(),
            success: r["success"].as_bool().unwrap_or(false),
            status: r["status"].as_str().unwrap_or("?").to_string(),
            throughput: f(r, &["throughput_msg_per_sec"]),
            achieved_rate: f(r, &["pacing", "achieved_rate_per_sec"]),
            asked_rate: r["pacing"]["rate_per_sec"].as_f64(),
            sustained: r["pacing"]["sustained"].as_bool().unwrap_or(true),
            latency_ms: [
                f(r, &["avg_latency_ms"]),
                f(r, &["p50_latency_ms"]),
                f(r, &["p95_latency_ms"]),
                f(r, &["p99_latency_ms"]),
                f(r, &["p999_latency_ms"]),
                f(r, &["max_latency_ms"]),
            ],
            latency_measured: latency_measured(r),
            errors: r["errors"]
                .as_object()
                .map_or(0, |m| m.values().filter_map(Value::as_u64).sum()),
            requests_sent: r["accounting"]["requests_sent"].as_u64().unwrap_or(0),
            failure: r["failure"].as_str().map(str::to_string),
            patterns: patterns(r),
        })
        .collect()
}

/// Median, smallest and largest of some values.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Stat {
    /// Median (mean of the middle two for an even count).
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// How many values.
    pub n: usize,
}

impl Stat {
    /// Of `v` (all zeros when empty).
    pub fn of(mut v: Vec<f64>) -> Stat {
        if v.is_empty() {
            return Stat::default();
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
        Stat { median, min: v[0], max: v[n - 1], n }
    }
}

/// A scenario over its repeats: figures of the successful runs, errors of all.
#[derive(Debug, Clone)]
pub struct ScenarioFigures {
    /// Its name.
    pub scenario: String,
    /// Topology name.
    pub topology: String,
    /// Agents.
    pub agents: u32,
    /// Runs.
    pub runs: usize,
    /// Runs that succeeded (the figures below are over these).
    pub ok_runs: usize,
    /// Throughput (router deliveries/s).
    pub throughput: Stat,
    /// Achieved request rate.
    pub achieved_rate: Stat,
    /// Each latency of [`RunFigures::latency_ms`], over the successful runs that measured
    /// round trips (`n` 0: none did).
    pub latency_ms: [Stat; 6],
    /// Errors over every run.
    pub errors: u64,
    /// Requests sent over every run.
    pub requests_sent: u64,
    /// Every open-loop run held its rate.
    pub sustained: bool,
    /// Why the first of its failed runs failed, when any did.
    pub failure: Option<String>,
    /// An HTTP mix's patterns, in the mix's order.
    pub patterns: Vec<PatternScenario>,
}

/// One pattern over a scenario's repeats: figures of the successful runs, errors of all.
#[derive(Debug, Clone)]
pub struct PatternScenario {
    /// The pattern's name.
    pub name: String,
    /// Answers per second.
    pub ok_per_sec: Stat,
    /// Each latency of [`PatternFigures::latency_ms`], over the successful runs that timed
    /// an answer.
    pub latency_ms: [Stat; 6],
    /// Errors in the measured windows of every run.
    pub errors: u64,
    /// Answers and errors in those windows (what `errors` is a share of).
    pub resolved: u64,
}

/// The patterns of a scenario's runs, over the successful ones (`ok`) and all.
fn pattern_scenarios(all: &[&RunFigures], ok: &[&&RunFigures]) -> Vec<PatternScenario> {
    let mut names: Vec<&str> = Vec::new();
    for p in all.iter().flat_map(|r| &r.patterns) {
        if !names.contains(&p.name.as_str()) {
            names.push(&p.name);
        }
    }
    let of = |r: &RunFigures, name: &str| r.patterns.iter().find(|p| p.name == name).cloned();
    names
        .into_iter()
        .map(|name| {
            let good: Vec<PatternFigures> = ok.iter().filter_map(|r| of(r, name)).collect();
            let every: Vec<PatternFigures> = all.iter().filter_map(|r| of(r, name)).collect();
            PatternScenario {
                name: name.to_string(),
                ok_per_sec: Stat::of(good.iter().map(|p| p.ok_per_sec).collect()),
                latency_ms: std::array::from_fn(|i| {
                    Stat::of(
                        good.iter()
                            .filter(|p| p.latency_measured)
                            .map(|p| p.latency_ms[i])
                            .collect(),
                    )
                }),
                errors: every.iter().map(|p| p.errors).sum(),
                resolved: every.iter().map(|p| p.ok + p.errors).sum(),
            }
        })
        .collect()
}

/// Groups `runs` by scenario, in order of first appearance.
pub fn scenarios(runs: &[RunFigures]) -> Vec<ScenarioFigures> {
    let mut names: Vec<&str> = Vec::new();
    for r in runs {
        if !names.contains(&r.scenario.as_str()) {
            names.push(&r.scenario);
        }
    }
    names
        .into_iter()
        .map(|name| {
            let all: Vec<&RunFigures> = runs.iter().filter(|r| r.scenario == name).collect();
            let ok: Vec<&&RunFigures> = all.iter().filter(|r| r.success).collect();
            let stat = |g: &dyn Fn(&RunFigures) -> f64| Stat::of(ok.iter().map(|r| g(r)).collect());
            ScenarioFigures {
                scenario: name.to_string(),
                topology: all[0].topology.clone(),
                agents: all[0].agents,
                runs: all.len(),
                ok_runs: ok.len(),
                throughput: stat(&|r| r.throughput),
                achieved_rate: stat(&|r| r.achieved_rate),
                latency_ms: std::array::from_fn(|i| {
                    Stat::of(
                        ok.iter().filter(|r| r.latency_measured).map(|r| r.latency_ms[i]).collect(),
                    )
                }),
                errors: all.iter().map(|r| r.errors).sum(),
                requests_sent: all.iter().map(|r| r.requests_sent).sum(),
                sustained: all.iter().all(|r| r.sustained),
                failure: all.iter().filter(|r| !r.success).find_map(|r| r.failure.clone()),
                patterns: pattern_scenarios(&all, &ok),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_counts() {
        // Proves the median is the middle value, or the mean of the middle two.
        assert_eq!(Stat::of(vec![3.0, 1.0, 2.0]).median, 2.0);
        let s = Stat::of(vec![4.0, 1.0, 2.0, 3.0]);
        assert_eq!((s.median, s.min, s.max, s.n), (2.5, 1.0, 4.0, 4));
        assert_eq!(Stat::of(Vec::new()).n, 0);
    }
}
