//! `--baseline previous.json`: this run's scenarios against a saved report's, with the repeats'
//! spread deciding whether a change is beyond noise.
//!
//! A change is called only when the two sets of repeats do not overlap at all (every new run
//! beyond every old one); with a single run on either side the spread is unknown and the row
//! says so instead of guessing.

use std::io::Write;

use serde::Serialize;
use serde_json::Value;

use super::figures::{self, ScenarioFigures, Stat, P99};

/// One figure of one scenario, then against now.
#[derive(Debug, Clone, Serialize)]
pub struct Delta {
    /// The baseline's median.
    pub before: f64,
    /// This run's median.
    pub after: f64,
    /// after / before.
    pub ratio: Option<f64>,
    /// `[min, max]` of the baseline's repeats.
    pub before_range: [f64; 2],
    /// `[min, max]` of this run's repeats.
    pub after_range: [f64; 2],
    /// `higher`, `lower` (the repeats do not overlap), `within_noise`, or `unknown_spread`
    /// (a single run on one side).
    pub verdict: &'static str,
}

impl Delta {
    fn of(before: Stat, after: Stat) -> Delta {
        let verdict = if before.n < 2 || after.n < 2 {
            "unknown_spread"
        } else if after.min > before.max {
            "higher"
        } else if after.max < before.min {
            "lower"
        } else {
            "within_noise"
        };
        Delta {
            before: before.median,
            after: after.median,
            ratio: (before.median > 0.0).then(|| after.median / before.median),
            before_range: [before.min, before.max],
            after_range: [after.min, after.max],
            verdict,
        }
    }
}

/// One scenario against the baseline.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The scenario.
    pub scenario: String,
    /// Throughput (router deliveries/s); null when either side had no successful run.
    pub throughput: Option<Delta>,
    /// p99 round trip, ms.
    pub p99_ms: Option<Delta>,
    /// An HTTP mix: each pattern both sides ran (answers/s, p99 of its answers).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub patterns: Vec<PatternRow>,
}

/// One pattern of a scenario's HTTP mix against the baseline.
#[derive(Debug, Clone, Serialize)]
pub struct PatternRow {
    /// The pattern.
    pub pattern: String,
    /// Its answers/s; null when either side had no successful run.
    pub throughput: Option<Delta>,
    /// Its answers' p99, ms; null when either side timed none.
    pub p99_ms: Option<Delta>,
}

/// The patterns of `a` (now) that `b` (the baseline) ran too.
fn pattern_rows(b: &ScenarioFigures, a: &ScenarioFigures, both: bool) -> Vec<PatternRow> {
    a.patterns
        .iter()
        .filter_map(|pa| {
            let pb = b.patterns.iter().find(|p| p.name == pa.name)?;
            let timed = both && pa.latency_ms[P99].n > 0 && pb.latency_ms[P99].n > 0;
            Some(PatternRow {
                pattern: pa.name.clone(),
                throughput: both.then(|| Delta::of(pb.ok_per_sec, pa.ok_per_sec)),
                p99_ms: timed.then(|| Delta::of(pb.latency_ms[P99], pa.latency_ms[P99])),
            })
        })
        .collect()
}

/// The whole diff.
#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    /// The baseline file.
    pub file: String,
    /// When the baseline was made, if it says.
    pub baseline_started_at: Option<String>,
    /// Scenarios in both.
    pub rows: Vec<Row>,
    /// Scenarios only this run has.
    pub only_now: Vec<String>,
    /// Scenarios only the baseline has.
    pub only_baseline: Vec<String>,
}

/// Loads a saved report (a benchmark report; for a compare report, its first router's).
pub fn load(path: &std::path::Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("--baseline: cannot read {}: {e}", path.display()))?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("--baseline: {} is not JSON: {e}", path.display()))?;
    let v = match (v.get("results"), v.get("reference").and_then(Value::as_str)) {
        (Some(_), _) => v,
        (None, Some(first)) => v["reports"][first].clone(),
        _ => Value::Null,
    };
    if !v["results"].is_array() {
        anyhow::bail!("--baseline: {} is not an a2a-bench report (no results)", path.display());
    }
    Ok(v)
}

/// This report against `baseline`.
pub fn diff(file: &str, baseline: &Value, now: &Value) -> Diff {
    let before = figures::scenarios(&figures::runs(baseline));
    let after = figures::scenarios(&figures::runs(now));
    let find = |list: &[ScenarioFigures], name: &str| -> Option<ScenarioFigures> {
        list.iter().find(|s| s.scenario == name).cloned()
    };
    let mut rows = Vec::new();
    let mut only_now = Vec::new();
    for a in &after {
        let Some(b) = find(&before, &a.scenario) else {
            only_now.push(a.scenario.clone());
            continue;
        };
        let both = a.ok_runs > 0 && b.ok_runs > 0;
        rows.push(Row {
            scenario: a.scenario.clone(),
            throughput: both.then(|| Delta::of(b.throughput, a.throughput)),
            p99_ms: (both && a.latency_ms[P99].n > 0 && b.latency_ms[P99].n > 0)
                .then(|| Delta::of(b.latency_ms[P99], a.latency_ms[P99])),
            patterns: pattern_rows(&b, a, both),
        });
    }
    let only_baseline = before
        .iter()
        .filter(|b| find(&after, &b.scenario).is_none())
        .map(|b| b.scenario.clone())
        .collect();
    Diff {
        file: file.to_string(),
        baseline_started_at: baseline["started_at"].as_str().map(str::to_string),
        rows,
        only_now,
        only_baseline,
    }
}

fn verdict(d: &Delta, higher_is_better: bool) -> &'static str {
    match (d.verdict, higher_is_better) {
        ("higher", true) | ("lower", false) => "better",
        ("higher", false) | ("lower", true) => "WORSE",
        ("within_noise", _) => "noise",
        _ => "one run: spread unknown",
    }
}

/// The diff as a table.
pub fn print(out: &mut dyn Write, d: &Diff) -> std::io::Result<()> {
    use super::text::{ms, rate};
    writeln!(
        out,
        "\nagainst the baseline {}{}:",
        d.file,
        d.baseline_started_at.as_deref().map_or(String::new(), |t| format!(" ({t})"))
    )?;
    writeln!(
        out,
        "  {:<34} {:>24} {:>7}  {:<10} {:>20} {:>7}  verdict",
        "scenario", "throughput then → now", "ratio", "", "p99 then → now", "ratio"
    )?;
    let line = |out: &mut dyn Write, name: &str, t: &Option<Delta>, p: &Option<Delta>| {
        let (Some(t), Some(p)) = (t, p) else {
            return writeln!(out, "  {name:<34} no successful run on one side");
        };
        let ratio = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.2}×"));
        writeln!(
            out,
            "  {:<34} {:>24} {:>7}  {:<10} {:>20} {:>7}  {}",
            name,
            format!("{} → {}", rate(t.before), rate(t.after)),
            ratio(t.ratio),
            verdict(t, true),
            format!("{} → {} ms", ms(p.before), ms(p.after)),
            ratio(p.ratio),
            verdict(p, false),
        )
    };
    for r in &d.rows {
        line(out, &r.scenario, &r.throughput, &r.p99_ms)?;
        for p in &r.patterns {
            line(out, &format!("  {}", p.pattern), &p.throughput, &p.p99_ms)?;
        }
    }
    for s in &d.only_now {
        writeln!(out, "  {s:<34} new: not in the baseline")?;
    }
    for s in &d.only_baseline {
        writeln!(out, "  {s:<34} in the baseline only: not run now")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(v: &[f64]) -> Stat {
        Stat::of(v.to_vec())
    }

    #[test]
    fn an_http_mix_is_diffed_pattern_by_pattern() {
        // Proves each pattern both reports ran gets its own row under its scenario (answers/s
        // and p99, each called only beyond the repeats' spread), a pattern only one side ran
        // gets none, and the printed diff shows them under the scenario.
        let run = |msg_rate: f64, stream_p99: f64, extra: bool| {
            let mut ps = vec![
                serde_json::json!({"pattern": "a2a:message", "ok": 100, "errors": 0,
                    "ok_per_sec": msg_rate, "latency": {"count": 100, "p99_ms": 1.0}}),
                serde_json::json!({"pattern": "a2a:stream", "ok": 100, "errors": 0,
                    "ok_per_sec": 500.0, "latency": {"count": 100, "p99_ms": stream_p99}}),
            ];
            if extra {
                ps.push(serde_json::json!({"pattern": "a2a:agent_card", "ok": 1, "errors": 0,
                    "ok_per_sec": 1.0, "latency": {"count": 1, "p99_ms": 1.0}}));
            }
            serde_json::json!({"topology": "client", "agent_count": 4, "success": true,
                "status": "ok", "pacing": {"mode": "closed", "window": 1},
                "throughput_msg_per_sec": msg_rate + 500.0, "p99_latency_ms": 2.0,
                "patterns": ps})
        };
        let before =
            serde_json::json!({"results": [run(1000.0, 5.0, false), run(1100.0, 6.0, false)]});
        let now = serde_json::json!({"results": [run(2000.0, 5.5, true), run(2100.0, 5.8, true)]});
        let d = diff("b.json", &before, &now);
        let pats = &d.rows[0].patterns;
        let names: Vec<&str> = pats.iter().map(|p| p.pattern.as_str()).collect();
        assert_eq!(names, ["a2a:message", "a2a:stream"]);
        assert_eq!(pats[0].throughput.as_ref().unwrap().verdict, "higher");
        assert_eq!(pats[1].p99_ms.as_ref().unwrap().verdict, "within_noise");
        let mut out = Vec::new();
        print(&mut out, &d).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.lines().any(|l| l.starts_with("    a2a:message") && l.contains("better")),
            "{text}"
        );
    }

    #[test]
    fn a_change_is_called_only_beyond_the_spread_of_the_repeats() {
        // Proves overlapping repeats are noise, disjoint ones a change, one run no verdict.
        assert_eq!(Delta::of(stat(&[100.0, 110.0]), stat(&[105.0, 120.0])).verdict, "within_noise");
        assert_eq!(Delta::of(stat(&[100.0, 110.0]), stat(&[111.0, 120.0])).verdict, "higher");
        assert_eq!(Delta::of(stat(&[100.0, 110.0]), stat(&[80.0, 90.0])).verdict, "lower");
        assert_eq!(Delta::of(stat(&[100.0]), stat(&[200.0])).verdict, "unknown_spread");
        let d = Delta::of(stat(&[100.0, 100.0]), stat(&[150.0, 150.0]));
        assert_eq!(d.ratio, Some(1.5));
    }
}
