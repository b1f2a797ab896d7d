//! `--threshold EXPR`: pass/fail criteria checked per scenario at the end of a run, k6's way
//! (a failed one makes the exit code 99).
//!
//! `EXPR` is `METRIC OP VALUE`: latencies `avg p50 p95 p99 p999 max` (round trip from the
//! intended send time, median over the scenario's successful runs; VALUE in `ns us ms s`,
//! ms when bare), `throughput` (router deliveries/s) and `rate` (requests sent/s), medians too,
//! VALUE with an optional `k M G` suffix; `errors` (every error of every run: a count, or with
//! `%` a share of the requests sent); `max_rate` (with `--find-max-rate`: the highest rate that
//! held the SLO, requests/s, `k M G`); `max_agents` (with `--find-max-agents`: the most agents
//! that held it, `k M` allowed). OP is one of `< <= > >= == !=`.
//!
//! In an HTTP mix a latency, `throughput` (answers/s) or `errors` may name one pattern, k6's
//! way: `p99{a2a:stream}<50ms`, `errors{mcp:tools/call}<0.1%` (that pattern's measured
//! windows: its errors, or their share of its answers and errors). In a `--payload-mix` run
//! the sizes are such patterns, named as the report writes them: `p99{64B}<2ms`,
//! `throughput{1M}>100` (its round trips/s).

use serde::Serialize;

use super::figures::{ScenarioFigures, AVG, MAX, P50, P95, P99, P999};

/// What a threshold looks at.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Metric {
    Latency(usize),
    Throughput,
    Rate,
    Errors,
    ErrorShare,
    MaxRate,
    MaxAgents,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Eq => a == b,
            Op::Ne => a != b,
        }
    }
}

/// One parsed `--threshold` (or SLO term).
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    text: String,
    metric: Metric,
    op: Op,
    /// In the metric's unit: ms, per second, a count or a percentage.
    value: f64,
    /// The HTTP pattern it is about (`p99{a2a:stream}`), if one.
    pattern: Option<String>,
}

fn number(s: &str, suffixes: &[(&str, f64)]) -> Option<f64> {
    let s = s.trim();
    for (suffix, scale) in suffixes {
        if let Some(n) = s.strip_suffix(suffix) {
            return n.trim().parse::<f64>().ok().filter(|v| v.is_finite()).map(|v| v * scale);
        }
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

impl std::str::FromStr for Threshold {
    type Err = String;

    fn from_str(text: &str) -> Result<Threshold, String> {
        let t = text.trim();
        let at = t.find(['<', '>', '=', '!']).ok_or_else(|| {
            format!("'{t}' has no comparison (write e.g. p99<5ms, throughput>1M, errors==0)")
        })?;
        let (name, rest) = t.split_at(at);
        let (op, value) = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<", Op::Lt),
            (">", Op::Gt),
        ]
        .iter()
        .find_map(|(s, op)| rest.strip_prefix(s).map(|v| (*op, v)))
        .ok_or_else(|| format!("'{t}': the comparison is one of < <= > >= == !="))?;
        let (name, pattern) = match name.trim().split_once('{') {
            Some((n, p)) => {
                let p = p.strip_suffix('}').map(str::trim).filter(|p| !p.is_empty());
                let p = p.ok_or_else(|| {
                    format!("'{t}': a pattern goes in braces after the metric, e.g. p99{{a2a:stream}}<50ms")
                })?;
                (n, Some(p.to_string()))
            }
            None => (name, None),
        };
        let name = name.trim().to_ascii_lowercase();
        let metric = match name.as_str() {
            "avg" | "mean" => Metric::Latency(AVG),
            "p50" | "median" => Metric::Latency(P50),
            "p95" => Metric::Latency(P95),
            "p99" => Metric::Latency(P99),
            "p999" | "p99.9" => Metric::Latency(P999),
            "max" => Metric::Latency(MAX),
            "throughput" => Metric::Throughput,
            "max_rate" => Metric::MaxRate,
            "max_agents" => Metric::MaxAgents,
            "rate" => Metric::Rate,
            "errors" if value.trim().ends_with('%') => Metric::ErrorShare,
            "errors" => Metric::Errors,
            other => {
                return Err(format!(
                "'{t}': unknown metric '{other}' (avg p50 p95 p99 p999 max throughput rate errors max_rate max_agents)"
            ))
            }
        };
        let parsed = match metric {
            Metric::Latency(_) => {
                number(value, &[("ns", 1e-6), ("us", 1e-3), ("µs", 1e-3), ("ms", 1.0), ("s", 1e3)])
            }
            Metric::Throughput | Metric::Rate | Metric::MaxRate | Metric::MaxAgents => {
                number(value, &[("k", 1e3), ("K", 1e3), ("M", 1e6), ("G", 1e9)])
            }
            Metric::ErrorShare => number(value, &[("%", 1.0)]),
            Metric::Errors => number(value, &[]),
        };
        let value = parsed.ok_or_else(|| format!("'{t}': '{}' is not a value", value.trim()))?;
        if value < 0.0 {
            return Err(format!("'{t}': {name} is never negative"));
        }
        if pattern.is_some() && matches!(metric, Metric::Rate | Metric::MaxRate | Metric::MaxAgents)
        {
            return Err(format!(
                "'{t}': {name} is the run's, not a pattern's (per pattern: avg p50 p95 p99 p999 max throughput errors)"
            ));
        }
        Ok(Threshold { text: t.to_string(), metric, op, value, pattern })
    }
}

/// A comma-separated list of thresholds (`--slo 'p99<5ms,errors<0.1%'`).
pub fn parse_list(flag: &str, spec: &str) -> anyhow::Result<Vec<Threshold>> {
    let list: Result<Vec<Threshold>, String> =
        spec.split(',').filter(|s| !s.trim().is_empty()).map(str::parse).collect();
    let list = list.map_err(|e| anyhow::anyhow!("{flag}: {e}"))?;
    if list.is_empty() {
        anyhow::bail!("{flag}: no threshold given");
    }
    Ok(list)
}

/// One threshold checked against one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// The threshold as written.
    pub threshold: String,
    /// The scenario.
    pub scenario: String,
    /// The figure it was checked against, in the threshold's unit; null when there was none
    /// (no successful run).
    pub actual: Option<f64>,
    /// The figure, in words.
    pub actual_text: String,
    /// Whether it held.
    pub passed: bool,
}

impl Threshold {
    /// The threshold as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The HTTP pattern it is about, if one.
    pub fn pattern(&self) -> Option<&str> {
        self.pattern.as_deref()
    }

    /// Whether it is about a rate search's result (`max_rate`) rather than a scenario's runs.
    pub fn is_about_search(&self) -> bool {
        self.metric == Metric::MaxRate
    }

    /// Whether it is about an agent search's result (`max_agents`).
    pub fn is_about_agents(&self) -> bool {
        self.metric == Metric::MaxAgents
    }

    /// Checks a `max_agents` threshold against one agent search.
    pub fn check_agents(&self, s: &super::AgentSearch) -> Check {
        let actual = s.max_agents.map(f64::from);
        Check {
            threshold: self.text.clone(),
            scenario: s.scenario.clone(),
            actual,
            actual_text: actual.map_or_else(
                || format!("no count of {} held the SLO", s.counts),
                |v| format!("{v} {}", s.counts),
            ),
            passed: actual.is_some_and(|a| self.op.holds(a, self.value)),
        }
    }

    /// Checks a `max_rate` threshold against one rate search.
    pub fn check_search(&self, s: &super::RateSearch) -> Check {
        let actual = s.max_rate_per_sec;
        Check {
            threshold: self.text.clone(),
            scenario: s.scenario.clone(),
            actual,
            actual_text: actual.map_or_else(
                || "no rate held the SLO".to_string(),
                |v| format!("{} req/s", super::text::rate(v)),
            ),
            passed: actual.is_some_and(|a| self.op.holds(a, self.value)),
        }
    }

    /// The figure this threshold looks at, if the scenario has one: the scenario's own, or
    /// its pattern's (which has no rate of its own).
    fn actual(&self, s: &ScenarioFigures) -> Option<f64> {
        let (errors, base, latency, throughput, rate) = match &self.pattern {
            Some(name) => {
                let p = s.patterns.iter().find(|p| p.name == *name)?;
                (p.errors, p.resolved, &p.latency_ms, p.ok_per_sec, None)
            }
            None => (s.errors, s.requests_sent, &s.latency_ms, s.throughput, Some(s.achieved_rate)),
        };
        match self.metric {
            Metric::Errors => Some(errors as f64),
            Metric::ErrorShare if base == 0 => None,
            Metric::ErrorShare => Some(100.0 * errors as f64 / base as f64),
            _ if s.ok_runs == 0 => None,
            Metric::Latency(i) if latency[i].n == 0 => None,
            Metric::Latency(i) => Some(latency[i].median),
            Metric::Throughput => Some(throughput.median),
            Metric::Rate => rate.map(|r| r.median),
            Metric::MaxRate | Metric::MaxAgents => None,
        }
    }

    fn describe(&self, v: f64) -> String {
        match self.metric {
            Metric::Latency(_) => format!("{} ms", super::text::ms(v)),
            Metric::Throughput if self.pattern.is_some() => {
                format!("{} answers/s", super::text::rate(v))
            }
            Metric::Throughput => format!("{} msgs/s", super::text::rate(v)),
            Metric::Rate => format!("{} req/s", super::text::rate(v)),
            Metric::Errors => format!("{v} errors"),
            Metric::ErrorShare => format!("{v:.3} % errors"),
            Metric::MaxRate => format!("{} req/s", super::text::rate(v)),
            Metric::MaxAgents => format!("{v} agents"),
        }
    }

    /// Checks this threshold against one scenario.
    pub fn check(&self, s: &ScenarioFigures) -> Check {
        let actual = self.actual(s);
        Check {
            threshold: self.text.clone(),
            scenario: s.scenario.clone(),
            actual,
            actual_text: actual.map_or_else(
                || match &self.pattern {
                    Some(p) if !s.patterns.iter().any(|q| q.name == *p) => {
                        format!("no pattern {p} in the run")
                    }
                    _ if s.ok_runs > 0 => "no round trip measured".to_string(),
                    _ => "no successful run".to_string(),
                },
                |v| self.describe(v),
            ),
            passed: actual.is_some_and(|a| self.op.holds(a, self.value)),
        }
    }
}

/// Every threshold against every scenario, or, after a rate search, every `max_rate`
/// threshold against every search (after an agent search, every `max_agents` one).
pub fn check_all(
    thresholds: &[Threshold],
    scenarios: &[ScenarioFigures],
    searches: &[super::RateSearch],
    agent_searches: &[super::AgentSearch],
) -> Vec<Check> {
    if !searches.is_empty() {
        return searches
            .iter()
            .flat_map(|s| thresholds.iter().map(|t| t.check_search(s)))
            .collect();
    }
    if !agent_searches.is_empty() {
        return agent_searches
            .iter()
            .flat_map(|s| thresholds.iter().map(|t| t.check_agents(s)))
            .collect();
    }
    scenarios.iter().flat_map(|s| thresholds.iter().map(|t| t.check(s))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::figures::Stat;

    fn scenario(p99_ms: f64, throughput: f64, errors: u64) -> ScenarioFigures {
        let stat = |v| Stat { median: v, min: v, max: v, n: 1 };
        ScenarioFigures {
            scenario: "ring × 10 closed w16".into(),
            topology: "ring".into(),
            agents: 10,
            runs: 1,
            ok_runs: 1,
            throughput: stat(throughput),
            achieved_rate: stat(throughput / 2.0),
            latency_ms: [stat(0.1), stat(0.2), stat(0.5), stat(p99_ms), stat(9.0), stat(20.0)],
            errors,
            requests_sent: 10_000,
            sustained: true,
            failure: None,
            patterns: Vec::new(),
        }
    }

    #[test]
    fn runs_that_measured_no_round_trip_are_no_latency() {
        // Proves a run with no round trip measured (its latency keys at 0 for the seed's
        // schema) is left out of its scenario's latency medians, and a scenario where no run
        // measured one fails a latency threshold instead of passing on zeros; a report from
        // before the count (no `latency.rtt.count`) counts as measured.
        let run = |p99: f64, count: Option<u64>| {
            let mut r = serde_json::json!({
                "topology": "ring", "agent_count": 4, "success": true, "status": "overloaded",
                "pacing": {"mode": "open", "window": 16, "rate_per_sec": 1e8},
                "p99_latency_ms": p99,
            });
            if let Some(n) = count {
                r["latency"] = serde_json::json!({"rtt": {"count": n}});
            }
            r
        };
        let p99: Threshold = "p99<5ms".parse().unwrap();
        let check = |runs: Vec<serde_json::Value>| {
            let figures = crate::report::figures::runs(&serde_json::json!({ "results": runs }));
            let s = crate::report::figures::scenarios(&figures).remove(0);
            (s.latency_ms[P99], p99.check(&s))
        };
        let (stat, c) = check(vec![run(0.0, Some(0)), run(8.0, Some(5_000))]);
        assert_eq!((stat.median, stat.n), (8.0, 1));
        assert!(!c.passed);
        let (stat, c) = check(vec![run(0.0, Some(0))]);
        assert_eq!(stat.n, 0);
        assert!(!c.passed);
        assert_eq!(c.actual_text, "no round trip measured");
        let (_, c) = check(vec![run(2.0, None)]);
        assert!(c.passed, "an old report's figures stand");
    }

    #[test]
    fn thresholds_parse_their_units_and_refuse_nonsense() {
        // Proves units scale to the metric's unit and mistakes name what is wrong.
        let t: Threshold = "p99<5ms".parse().unwrap();
        assert_eq!((t.metric, t.op, t.value), (Metric::Latency(P99), Op::Lt, 5.0));
        assert_eq!("p99 <= 250us".parse::<Threshold>().unwrap().value, 0.25);
        assert_eq!("max<2s".parse::<Threshold>().unwrap().value, 2000.0);
        assert_eq!("throughput>1.5M".parse::<Threshold>().unwrap().value, 1.5e6);
        assert_eq!("errors==0".parse::<Threshold>().unwrap().metric, Metric::Errors);
        assert_eq!("errors<0.1%".parse::<Threshold>().unwrap().metric, Metric::ErrorShare);
        assert!("p98<5ms".parse::<Threshold>().unwrap_err().contains("unknown metric"));
        assert!("p99 5ms".parse::<Threshold>().unwrap_err().contains("no comparison"));
        assert!("p99<fast".parse::<Threshold>().unwrap_err().contains("not a value"));
        // A bound no run can meet (or none can miss) is a mistake, not a check.
        assert!("errors<-1%".parse::<Threshold>().unwrap_err().contains("never negative"));
        assert!("p99>-5ms".parse::<Threshold>().unwrap_err().contains("never negative"));
        assert!(parse_list("--slo", "p99<5ms,errors<0.1%").unwrap().len() == 2);
        let t: Threshold = "max_rate>=50k".parse().unwrap();
        assert!(t.is_about_search() && t.value == 50e3);
    }

    #[test]
    fn a_pattern_s_thresholds_look_at_that_pattern_alone() {
        // Proves `metric{pattern}` parses (rate and max_rate refused), and is checked against
        // that pattern's medians over the scenario's runs: its latency, its answers/s, its
        // errors and their share of its answers and errors; a pattern the run did not have
        // fails, saying so.
        let t: Threshold = "p99{a2a:stream} < 50ms".parse().unwrap();
        assert_eq!(
            (t.pattern(), t.metric, t.value),
            (Some("a2a:stream"), Metric::Latency(P99), 50.0)
        );
        assert!("rate{a2a:stream}>1".parse::<Threshold>().unwrap_err().contains("the run's"));
        assert!("p99{a2a:stream<1ms".parse::<Threshold>().unwrap_err().contains("braces"));
        assert!("p99{}<1ms".parse::<Threshold>().unwrap_err().contains("braces"));
        let run = |p99: f64, ok: u64, errors: u64| {
            serde_json::json!({
                "topology": "client", "agent_count": 4, "success": true, "status": "ok",
                "pacing": {"mode": "closed", "window": 1}, "p99_latency_ms": 1.0,
                "patterns": [
                    {"pattern": "a2a:message", "ok": 1000, "errors": 0, "ok_per_sec": 2000.0,
                     "latency": {"count": 1000, "p99_ms": 0.5}},
                    {"pattern": "a2a:stream", "ok": ok, "errors": errors, "ok_per_sec": ok as f64,
                     "latency": {"count": ok, "p99_ms": p99}}
                ]
            })
        };
        let report = serde_json::json!({"results": [run(40.0, 900, 1), run(60.0, 1000, 0), run(45.0, 1100, 3)]});
        let s = crate::report::figures::scenarios(&crate::report::figures::runs(&report)).remove(0);
        let check = |e: &str| e.parse::<Threshold>().unwrap().check(&s);
        assert!(check("p99{a2a:stream}<50ms").passed, "median 45 ms");
        assert!(!check("p99{a2a:stream}<44ms").passed);
        assert!(check("p99{a2a:message}<1ms").passed);
        assert!(check("throughput{a2a:stream}>=1k").passed, "median 1,000 answers/s");
        assert_eq!(check("throughput{a2a:stream}>1").actual_text, "1.0 k answers/s");
        assert!(!check("errors{a2a:stream}==0").passed, "4 errors");
        assert!(check("errors{a2a:message}==0").passed);
        let share = check("errors{a2a:stream}<0.2%");
        assert!(share.passed, "4 of 3,004: {share:?}");
        let c = check("p99{mcp:tools/list}<1s");
        assert!(!c.passed && c.actual_text == "no pattern mcp:tools/list in the run", "{c:?}");
    }

    #[test]
    fn a_payload_mix_s_sizes_take_thresholds_as_patterns() {
        // Proves a size of a `--payload-mix` run is a pattern to thresholds: its latency
        // medians and round trips/s over the scenario's runs; a size the mix lacks fails,
        // saying so; the scenario is named a mix, not by its mean size.
        let run = |small_p99: f64| {
            serde_json::json!({
                "topology": "ring", "agent_count": 4, "success": true, "status": "ok",
                "pacing": {"mode": "closed", "window": 16}, "p99_latency_ms": 9.0,
                "payload_size": 1072,
                "payload_mix": [
                    {"bytes": 64, "round_trips_per_sec": 3000.0,
                     "latency": {"count": 3000, "p99_ms": small_p99}},
                    {"bytes": 4096, "round_trips_per_sec": 1000.0,
                     "latency": {"count": 1000, "p99_ms": 9.0}}
                ]
            })
        };
        let report = serde_json::json!({"results": [run(2.0), run(1.0), run(3.0)]});
        let s = crate::report::figures::scenarios(&crate::report::figures::runs(&report)).remove(0);
        assert_eq!(s.scenario, "ring × 4 closed w16 mix");
        let check = |e: &str| e.parse::<Threshold>().unwrap().check(&s);
        assert!(check("p99{64B}<2.5ms").passed, "median 2 ms");
        assert!(!check("p99{64B}<1.5ms").passed);
        assert!(!check("p99{4K}<5ms").passed);
        assert!(check("throughput{4K}>=1k").passed);
        let c = check("p99{1M}<1s");
        assert!(!c.passed && c.actual_text == "no pattern 1M in the run", "{c:?}");
    }

    #[test]
    fn thresholds_pass_and_fail_on_the_scenario_figures() {
        // Proves each comparison is checked against the scenario's figure, and a scenario
        // without a successful run fails its latency thresholds.
        let s = scenario(4.0, 2e6, 3);
        let check = |e: &str| e.parse::<Threshold>().unwrap().check(&s).passed;
        assert!(check("p99<5ms"));
        assert!(!check("p99<3ms"));
        assert!(check("throughput>1M"));
        assert!(!check("throughput>=3M"));
        assert!(!check("errors==0"));
        assert!(check("errors<0.1%"), "3 of 10,000 is 0.03 %");
        let mut none = scenario(4.0, 2e6, 0);
        none.ok_runs = 0;
        let c = "p99<5ms".parse::<Threshold>().unwrap().check(&none);
        assert!(!c.passed && c.actual.is_none(), "{c:?}");
    }
}
