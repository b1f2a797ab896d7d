//! `--html FILE` and `a2a-bench report RESULTS.json --html OUT`: one self-contained HTML file (no
//! script, no network) with the summary, the latency percentile spectrum (wrk2 style, log-scaled
//! towards the tail), throughput against agents per topology, the time series, the rate search,
//! thresholds, a baseline diff, compare ratios, and the host. Built from the report's JSON, so a
//! report saved long ago renders the same way.

use std::fmt::Write as _;

use plotters::prelude::*;
use serde_json::Value;

use super::figures::{self, RunFigures, ScenarioFigures, P50, P99, P999};
use super::text::{ms, rate};

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// How an axis maps values.
#[derive(Clone, Copy, PartialEq)]
enum Axis {
    Linear,
    Log,
    /// Percentiles, spread as wrk2 does: `log10(1 / (1 - p))`, so each nine gets equal room.
    Percentile,
}

/// One line of a chart.
struct Line {
    name: String,
    points: Vec<(f64, f64)>,
}

/// The x position of percentile `p` (0–100) on a [`Axis::Percentile`] axis.
fn nines(p: f64) -> f64 {
    (1.0 / (1.0 - (p / 100.0).min(0.99999))).log10()
}

fn range(values: impl Iterator<Item = f64>, axis: Axis) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::MAX, f64::MIN);
    for v in values.filter(|v| v.is_finite() && (axis != Axis::Log || *v > 0.0)) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi {
        return if axis == Axis::Log { (0.001, 1.0) } else { (0.0, 1.0) };
    }
    match axis {
        Axis::Log => (lo / 1.5, hi * 1.5),
        _ if hi == lo => (lo - 1.0_f64.max(lo.abs() * 0.1), hi + 1.0_f64.max(hi.abs() * 0.1)),
        _ => (lo.min(0.0), hi + (hi - lo) * 0.08),
    }
}

fn axis_label(v: f64, axis: Axis) -> String {
    match axis {
        Axis::Percentile => {
            let p = 100.0 * (1.0 - 10f64.powf(-v));
            let s = format!("{p:.5}");
            format!("{}%", s.trim_end_matches('0').trim_end_matches('.'))
        }
        _ if v.abs() >= 1000.0 => rate(v),
        _ => {
            let s = format!("{v:.3}");
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        }
    }
}

/// An SVG line chart.
fn chart(title: &str, x: (&str, Axis), y: (&str, Axis), lines: &[Line]) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (860, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
        let xs = range(lines.iter().flat_map(|l| l.points.iter().map(|p| p.0)), x.1);
        let ys = range(lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)), y.1);
        let mut b = ChartBuilder::on(&root);
        b.caption(title, ("sans-serif", 18)).margin(12).x_label_area_size(42).y_label_area_size(70);
        let fmt_x = |v: &f64| axis_label(*v, x.1);
        let fmt_y = |v: &f64| axis_label(*v, y.1);
        macro_rules! draw {
            ($chart:expr) => {{
                let mut c = $chart.map_err(|e| anyhow::anyhow!("{e}"))?;
                c.configure_mesh()
                    .x_desc(x.0)
                    .y_desc(y.0)
                    .x_label_formatter(&fmt_x)
                    .y_label_formatter(&fmt_y)
                    .x_labels(if x.1 == Axis::Percentile { 6 } else { 10 })
                    .light_line_style(WHITE.mix(0.0))
                    .draw()
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                for (i, l) in lines.iter().enumerate() {
                    let color = Palette99::pick(i).to_rgba();
                    c.draw_series(LineSeries::new(l.points.iter().copied(), color.stroke_width(2)))
                        .map_err(|e| anyhow::anyhow!("{e}"))?
                        .label(l.name.clone())
                        .legend(move |(px, py)| {
                            PathElement::new(vec![(px, py), (px + 18, py)], color.stroke_width(2))
                        });
                    c.draw_series(l.points.iter().map(|&p| Circle::new(p, 2, color.filled())))
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                }
                c.configure_series_labels()
                    .position(SeriesLabelPosition::UpperLeft)
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK.mix(0.3))
                    .draw()
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            }};
        }
        match (x.1 == Axis::Log, y.1 == Axis::Log) {
            (false, false) => draw!(b.build_cartesian_2d(xs.0..xs.1, ys.0..ys.1)),
            (false, true) => draw!(b.build_cartesian_2d(xs.0..xs.1, (ys.0..ys.1).log_scale())),
            (true, false) => draw!(b.build_cartesian_2d((xs.0..xs.1).log_scale(), ys.0..ys.1)),
            (true, true) => {
                draw!(b.build_cartesian_2d((xs.0..xs.1).log_scale(), (ys.0..ys.1).log_scale()))
            }
        }
        root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(svg)
}

/// For each scenario, the index (into `results`) of its successful run with the median p99:
/// the run the charts show.
fn median_runs(runs: &[RunFigures]) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for s in figures::scenarios(runs) {
        let mut ok: Vec<(usize, f64)> = runs
            .iter()
            .enumerate()
            .filter(|(_, r)| r.scenario == s.scenario && r.success)
            .map(|(i, r)| (i, r.latency_ms[P99]))
            .collect();
        ok.sort_by(|a, b| a.1.total_cmp(&b.1));
        if let Some(&(i, _)) = ok.get(ok.len() / 2) {
            out.push((s.scenario.clone(), i));
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#222}\
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right}\
td:first-child,th:first-child,.name{text-align:left}.pass{color:#176317}.fail{color:#b00020;font-weight:bold}\
code{background:#f4f4f4;padding:.1em .3em}.muted{color:#666;font-size:.9em}svg{max-width:100%;height:auto}";

/// The whole page for a report (benchmark or compare) given as JSON.
pub fn render(report: &Value) -> anyhow::Result<String> {
    let mut h = String::new();
    let _ = writeln!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>a2a-bench report</title>\
         <style>{STYLE}</style></head><body>\n<h1>a2a-bench report</h1>"
    );
    if let Some(reports) = report["reports"].as_object() {
        let first = report["reports"][report["reference"].as_str().unwrap_or("")].clone();
        provenance(&mut h, &first);
        compare(&mut h, report)?;
        for (name, r) in reports {
            let _ = writeln!(h, "<h2>{}</h2>", esc(&format!("Router: {name}")));
            body(&mut h, r, false)?;
        }
        if let Some(host) = first.get("host") {
            host_facts(&mut h, host);
        }
    } else {
        provenance(&mut h, report);
        body(&mut h, report, true)?;
        if let Some(host) = report.get("host") {
            host_facts(&mut h, host);
        }
    }
    h.push_str("</body></html>\n");
    Ok(h)
}

fn provenance(h: &mut String, r: &Value) {
    let tool = &r["tool"];
    let cmd: Vec<String> = r["command_line"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    let _ = writeln!(
        h,
        "<p class=\"muted\">{} {}{} · started {} · router: {}<br><code>{}</code></p>",
        esc(tool["name"].as_str().unwrap_or("a2a-bench")),
        esc(tool["version"].as_str().unwrap_or("?")),
        tool["git_revision"].as_str().map_or(String::new(), |g| format!(" ({})", esc(g))),
        esc(r["started_at"].as_str().unwrap_or("unknown")),
        esc(r["placement"]["router"].as_str().unwrap_or("?")),
        esc(&cmd.join(" ")),
    );
    if r["interrupted"].as_bool() == Some(true) {
        h.push_str("<p class=\"fail\">Interrupted: the last run was cut short.</p>\n");
    }
    if r["accounting_includes_warmup"].as_bool() == Some(true) {
        h.push_str("<p class=\"muted\">Latency, rates and histograms cover the measured windows only; the accounting counts every message, warm-up included.</p>\n");
    }
}

/// The runs whose process lost wake-ups (`lost_wakeups`), as the terminal says under each.
fn lost_wakeups(h: &mut String, r: &Value) {
    let lost: Vec<(usize, u64)> = r["results"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, run)| Some((i + 1, run["lost_wakeups"].as_u64().filter(|&n| n > 0)?)))
        .collect();
    if lost.is_empty() {
        return;
    }
    let runs: Vec<String> = lost.iter().map(|(i, n)| format!("run {i}: {n}")).collect();
    let _ = writeln!(
        h,
        "<p class=\"fail\">Lost wake-ups ({}): this process's socket rings slept until their 20 ms fallback timer with work waiting; round trips near 20 ms in those runs are the tool's.</p>",
        esc(&runs.join(", "))
    );
}

/// Summary, thresholds, rate search, baseline, charts of one benchmark report.
fn body(h: &mut String, r: &Value, headings: bool) -> anyhow::Result<()> {
    let runs = figures::runs(r);
    let scenarios = figures::scenarios(&runs);
    if headings {
        h.push_str("<h2>Scenarios</h2>\n");
    }
    let unit = Unit::of(r);
    scenario_table(h, &scenarios, unit);
    memory(h, r, &runs, &scenarios);
    lost_wakeups(h, r);
    thresholds(h, r);
    workers(h, r);
    rate_search(h, r)?;
    agent_search(h, r)?;
    baseline(h, r);
    let results = r["results"].as_array().cloned().unwrap_or_default();
    let shown = shown_runs(r, &runs);
    // The per-pattern and per-size tables count errors: a scenario none of whose runs
    // succeeded shows its first run there, named as failed (not in a rate search, whose
    // failed steps are its search's).
    let searched = searched(r);
    let tabled = if searched { shown.clone() } else { with_failed(&shown, &runs) };
    patterns(h, &results, &tabled);
    sizes(h, &results, &tabled);
    spectrum_chart(h, &results, &shown)?;
    throughput_chart(h, &scenarios, unit)?;
    time_series_charts(h, &results, &shown, unit)
}

/// What a report's throughput counts: the router's deliveries, or a server's answers.
#[derive(Clone, Copy)]
struct Unit {
    /// A chart's title.
    title: &'static str,
    /// An axis's or a column's unit.
    short: &'static str,
}

impl Unit {
    fn of(r: &Value) -> Unit {
        match r["summary"]["throughput_unit"].as_str() {
            Some(u) if u.contains("HTTP") => {
                Unit { title: "Answered HTTP requests per second", short: "answers/s" }
            }
            _ => Unit { title: "Router deliveries per second", short: "msgs/s" },
        }
    }
}

/// The scenarios' medians over their repeats, a row each.
fn scenario_table(h: &mut String, scenarios: &[ScenarioFigures], unit: Unit) {
    let _ = write!(
        h,
        "<table><tr><th>scenario</th><th>ok runs</th><th>throughput ({}), median (min–max)</th>",
        unit.short
    );
    h.push_str("<th>achieved req/s</th><th>p50 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>errors</th></tr>\n");
    for s in scenarios {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}/{}</td><td>{} ({}–{})</td><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&s.scenario),
            s.ok_runs,
            s.runs,
            rate(s.throughput.median),
            rate(s.throughput.min),
            rate(s.throughput.max),
            rate(s.achieved_rate.median),
            if s.sustained { "" } else { " <span class=\"fail\">not sustained</span>" },
            stat_ms(&s.latency_ms[P50]),
            stat_ms(&s.latency_ms[P99]),
            stat_ms(&s.latency_ms[P999]),
            s.errors
        );
        if let Some(why) = &s.failure {
            let _ = writeln!(
                h,
                "<tr><td></td><td colspan=\"7\" class=\"fail\">failed: {}</td></tr>",
                esc(why)
            );
        }
    }
    h.push_str("</table>\n");
}

/// Each scenario's resident memory at its windows' ends (`memory`), medians over its runs: a
/// local target's and this process's; no table where no run read any.
fn memory(h: &mut String, r: &Value, runs: &[RunFigures], scenarios: &[ScenarioFigures]) {
    let results = r["results"].as_array().map_or(&[][..], Vec::as_slice);
    let read = |key: &str| -> Vec<Option<f64>> {
        results.iter().map(|x| x["memory"][key].as_u64().map(|b| b as f64 / 1048576.0)).collect()
    };
    let (target, own) = (read("target_bytes"), read("process_bytes"));
    let (has_target, has_own) =
        (target.iter().any(Option::is_some), own.iter().any(Option::is_some));
    if !has_target && !has_own {
        return;
    }
    h.push_str("<h3>Memory</h3>\n<p class=\"muted\">Resident memory at the measured window's end (every agent registered, every connection open), medians over each scenario's runs, in MiB.</p>\n<table><tr><th>scenario</th>");
    if has_target {
        h.push_str("<th>the target's processes</th>");
    }
    if has_own {
        h.push_str("<th>this process</th>");
    }
    h.push_str("</tr>\n");
    for name in scenarios.iter().map(|s| s.scenario.as_str()) {
        let of = |v: &[Option<f64>]| {
            let x: Vec<f64> = runs
                .iter()
                .zip(v)
                .filter(|(run, _)| run.scenario == name)
                .filter_map(|(_, m)| *m)
                .collect();
            if x.is_empty() {
                "-".to_string()
            } else {
                format!("{:.1}", figures::Stat::of(x).median)
            }
        };
        let _ = write!(h, "<tr><td>{}</td>", esc(name));
        if has_target {
            let _ = write!(h, "<td>{}</td>", of(&target));
        }
        if has_own {
            let _ = write!(h, "<td>{}</td>", of(&own));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
}

/// A median latency cell: `-` where no run measured one.
fn stat_ms(s: &figures::Stat) -> String {
    super::text::measured_ms(s.n as u64, s.median)
}

/// Whether the report holds a rate or agent search.
fn searched(r: &Value) -> bool {
    ["rate_search", "agent_search"].iter().any(|k| r[k].as_array().is_some_and(|a| !a.is_empty()))
}

/// The run the charts show for each scenario: its median run (by p99), or after a search the
/// highest rate (or most agents) that held (the steps would crowd every chart).
fn shown_runs(r: &Value, runs: &[RunFigures]) -> Vec<(String, usize)> {
    let mut shown = median_runs(runs);
    let best = |key: &str, max: &str, step_key: &str| -> Vec<String> {
        r[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| {
                let max = &s[max];
                if max.is_null() {
                    return None;
                }
                let step = s["steps"].as_array()?.iter().find(|st| st[step_key] == *max)?;
                let i = step["result_indexes"][0].as_u64()? as usize;
                Some(runs.get(i)?.scenario.clone())
            })
            .collect()
    };
    let mut held = best("rate_search", "max_rate_per_sec", "asked_rate_per_sec");
    held.extend(best("agent_search", "max_agents", "agents"));
    if searched(r) {
        shown.retain(|(name, _)| held.contains(name));
    }
    shown
}

/// `shown`, and for each scenario with no run in it (none succeeded) its first run, its name
/// marked `(failed)`, in run order.
fn with_failed(shown: &[(String, usize)], runs: &[RunFigures]) -> Vec<(String, usize)> {
    let mut out = shown.to_vec();
    for (i, r) in runs.iter().enumerate() {
        let failed = format!("{} (failed)", r.scenario);
        if !out.iter().any(|(name, _)| *name == r.scenario || *name == failed) {
            out.push((failed, i));
        }
    }
    out.sort_by_key(|&(_, i)| i);
    out
}

/// Each shown run's entries of the list `key` (`patterns`, `payload_mix`), with its scenario.
fn entries<'a>(
    results: &'a [Value],
    shown: &'a [(String, usize)],
    key: &str,
) -> Vec<(&'a str, &'a Value)> {
    shown
        .iter()
        .filter_map(|(name, i)| Some((name.as_str(), results.get(*i)?[key].as_array()?)))
        .flat_map(|(name, list)| list.iter().map(move |e| (name, e)))
        .collect()
}

/// An HTTP mix's figures per pattern, for each shown run, as the terminal gives them under
/// each run: answers, their rate, latency from the intended send time, a stream's first event
/// and events, errors by kind.
fn patterns(h: &mut String, results: &[Value], shown: &[(String, usize)]) {
    let rows = entries(results, shown, "patterns");
    if rows.is_empty() {
        return;
    }
    h.push_str("<h3>Patterns</h3>\n<p class=\"muted\">Each scenario's median successful run (where every run failed, its first), per pattern of its mix; latency from the intended send time; a stream's first event timed the same way.</p>\n<table><tr><th>scenario</th><th class=\"name\">pattern</th><th>answers</th><th>answers/s</th><th>p50 ms</th><th>p99 ms</th><th>first event (stream) or accepted (task) p50 / p99 ms</th><th>events (stream) or polls (task) per answer</th><th>errors</th></tr>\n");
    for (scenario, p) in rows {
        let count = |v: &Value| v["count"].as_u64().unwrap_or(0);
        let at = |v: &Value, key: &str| {
            super::text::measured_ms(count(v), v[key].as_f64().unwrap_or(0.0))
        };
        // A stream's first event, or a task's acceptance.
        let f = if p["first_event"].is_object() { &p["first_event"] } else { &p["accepted"] };
        let first = match f {
            f if f.is_object() => format!("{} / {}", at(f, "p50_ms"), at(f, "p99_ms")),
            _ => String::new(),
        };
        let events = p["events_per_answer"]
            .as_f64()
            .or(p["polls_per_answer"].as_f64())
            .map_or(String::new(), |e| format!("{e:.1}"));
        let kinds: Vec<String> = p["errors_by_kind"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let errors = match p["errors"].as_u64().unwrap_or(0) {
            0 => "0".to_string(),
            n => format!("<span class=\"fail\">{n}</span> ({})", esc(&kinds.join(", "))),
        };
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"name\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(scenario),
            esc(p["pattern"].as_str().unwrap_or("?")),
            p["ok"].as_u64().unwrap_or(0),
            rate(p["ok_per_sec"].as_f64().unwrap_or(0.0)),
            at(&p["latency"], "p50_ms"),
            at(&p["latency"], "p99_ms"),
            first,
            events,
            errors
        );
    }
    h.push_str("</table>\n");
}

/// A `--payload-mix` run's figures per size, for each shown run, as the terminal gives them
/// under each run: share of the sends (and as asked), round trips/s, latency from the intended
/// send time.
fn sizes(h: &mut String, results: &[Value], shown: &[(String, usize)]) {
    let rows = entries(results, shown, "payload_mix");
    if rows.is_empty() {
        return;
    }
    h.push_str("<h3>Payload sizes</h3>\n<p class=\"muted\">Each scenario's median successful run (where every run failed, its first), per size of its mix; latency from the intended send time.</p>\n<table><tr><th>scenario</th><th class=\"name\">size</th><th>share of sends (asked)</th><th>round trips/s</th><th>p50 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>max ms</th><th>errors</th></tr>\n");
    for (scenario, s) in rows {
        let l = &s["latency"];
        let at = |key: &str| {
            super::text::measured_ms(
                l["count"].as_u64().unwrap_or(0),
                l[key].as_f64().unwrap_or(0.0),
            )
        };
        let pct = |key: &str| 100.0 * s[key].as_f64().unwrap_or(0.0);
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"name\">{}</td><td>{:.1} % ({:.1} %)</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(scenario),
            super::text::size(s["bytes"].as_u64().unwrap_or(0) as usize),
            pct("share_sent"),
            pct("share_asked"),
            rate(s["round_trips_per_sec"].as_f64().unwrap_or(0.0)),
            at("p50_ms"),
            at("p99_ms"),
            at("p999_ms"),
            at("max_ms"),
            s["errors"].as_u64().unwrap_or(0),
        );
    }
    h.push_str("</table>\n");
}

/// The round trip by percentile of each shown run.
fn spectrum_chart(
    h: &mut String,
    results: &[Value],
    shown: &[(String, usize)],
) -> anyhow::Result<()> {
    let spectra: Vec<Line> = shown
        .iter()
        .filter_map(|(name, i)| {
            let pts: Vec<(f64, f64)> = results[*i]["latency"]["rtt_spectrum"]
                .as_array()?
                .iter()
                .filter_map(|p| Some((p[0].as_f64()?, p[1].as_f64()?)))
                .filter(|(p, _)| *p < 100.0)
                .map(|(p, v)| (nines(p), v))
                .collect();
            (!pts.is_empty()).then(|| Line { name: name.clone(), points: pts })
        })
        .collect();
    if !spectra.is_empty() {
        h.push_str("<h3>Latency by percentile</h3>\n<p class=\"muted\">Round trip from the intended send time, each scenario's median run (by p99; after a rate search, the highest rate that held); each nine gets equal room, as in wrk2's plots.</p>\n");
        h.push_str(&chart(
            "Round-trip latency by percentile",
            ("percentile", Axis::Percentile),
            ("ms", Axis::Log),
            &spectra,
        )?);
    }
    Ok(())
}

/// Throughput against agents, one line per topology and pacing (with two agent counts or more).
fn throughput_chart(
    h: &mut String,
    scenarios: &[ScenarioFigures],
    unit: Unit,
) -> anyhow::Result<()> {
    let mut by: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for s in scenarios.iter().filter(|s| s.ok_runs > 0) {
        let pacing = s.scenario.splitn(4, ' ').nth(3).unwrap_or("").to_string();
        let key = format!("{} {pacing}", s.topology);
        match by.iter_mut().find(|(k, _)| *k == key) {
            Some((_, pts)) => pts.push((f64::from(s.agents), s.throughput.median)),
            None => by.push((key, vec![(f64::from(s.agents), s.throughput.median)])),
        }
    }
    by.retain(|(_, p)| p.len() > 1);
    if !by.is_empty() {
        let lines: Vec<Line> = by.into_iter().map(|(name, points)| Line { name, points }).collect();
        h.push_str("<h3>Throughput against agents</h3>\n");
        h.push_str(&chart(
            &format!("{} (median of repeats)", unit.title),
            ("agents", Axis::Log),
            (unit.short, Axis::Linear),
            &lines,
        )?);
    }
    Ok(())
}

/// Throughput and p99 over the run, per interval of each shown run.
fn time_series_charts(
    h: &mut String,
    results: &[Value],
    shown: &[(String, usize)],
    unit: Unit,
) -> anyhow::Result<()> {
    let series = |field: &str| -> Vec<Line> {
        shown
            .iter()
            .filter_map(|(name, i)| {
                let all = results[*i]["time_series"].as_array()?;
                // The drain (the last, short interval) would plot as a plunge to zero.
                let full = all.first()?["duration_sec"].as_f64()? * 0.5;
                let pts: Vec<(f64, f64)> = all
                    .iter()
                    .filter(|p| p["duration_sec"].as_f64().unwrap_or(0.0) >= full)
                    .filter(|p| p["round_trips"].as_u64().unwrap_or(0) > 0)
                    .filter_map(|p| {
                        let mid = p["t_sec"].as_f64()? + p["duration_sec"].as_f64()? / 2.0;
                        Some((mid, p[field].as_f64()?))
                    })
                    .collect();
                (pts.len() > 1).then(|| Line { name: name.clone(), points: pts })
            })
            .collect()
    };
    let thr = series("throughput_msg_per_sec");
    if !thr.is_empty() {
        h.push_str("<h3>Time series</h3>\n<p class=\"muted\">Per interval of each scenario's median run, plotted at its middle; the drain after sending stopped is left out.</p>\n");
        h.push_str(&chart(
            "Throughput over the run",
            ("seconds into the measured window", Axis::Linear),
            (unit.short, Axis::Linear),
            &thr,
        )?);
        h.push_str(&chart(
            "p99 round trip over the run",
            ("seconds into the measured window", Axis::Linear),
            ("ms", Axis::Log),
            &series("p99_latency_ms"),
        )?);
    }
    Ok(())
}

/// A merged report's per-worker breakdown.
fn workers(h: &mut String, r: &Value) {
    let m = &r["merged"];
    let Some(parts) = m["parts"].as_array() else { return };
    let _ = writeln!(
        h,
        "<h3>Workers</h3>\n<p class=\"muted\">Run {} merged from {} of {} workers{}; one-way latency: {}.</p>\n<table><tr><th>worker</th><th>host</th><th>run</th><th>msgs/s</th><th>p99 ms</th><th>errors</th><th>bottleneck</th><th>status</th></tr>",
        esc(m["run_id"].as_str().unwrap_or("?")),
        parts.len(),
        m["workers"],
        m["missing"].as_array().filter(|a| !a.is_empty()).map_or(String::new(), |a| format!(
            " (<span class=\"fail\">missing: {}</span>)",
            a.iter().map(Value::to_string).collect::<Vec<_>>().join(", ")
        )),
        esc(m["one_way"].as_str().unwrap_or("?"))
    );
    for p in parts {
        for (i, run) in p["runs"].as_array().into_iter().flatten().enumerate() {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                p["index"],
                esc(p["hostname"].as_str().unwrap_or("?")),
                i + 1,
                rate(run["throughput_msg_per_sec"].as_f64().unwrap_or(0.0)),
                ms(run["p99_latency_ms"].as_f64().unwrap_or(0.0)),
                run["errors"],
                esc(run["bottleneck"].as_str().unwrap_or("?")),
                esc(run["status"].as_str().unwrap_or("?"))
            );
        }
    }
    h.push_str("</table>\n");
}

fn thresholds(h: &mut String, r: &Value) {
    let Some(checks) = r["thresholds"].as_array().filter(|a| !a.is_empty()) else { return };
    h.push_str("<h3>Thresholds</h3>\n<table><tr><th>threshold</th><th>scenario</th><th>measured</th><th>verdict</th></tr>\n");
    for c in checks {
        let pass = c["passed"].as_bool() == Some(true);
        let _ = writeln!(
            h,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
            esc(c["threshold"].as_str().unwrap_or("")),
            esc(c["scenario"].as_str().unwrap_or("")),
            esc(c["actual_text"].as_str().unwrap_or("")),
            if pass { "pass" } else { "fail" },
            if pass { "✓ pass" } else { "✗ fail" }
        );
    }
    h.push_str("</table>\n");
}

fn rate_search(h: &mut String, r: &Value) -> anyhow::Result<()> {
    let Some(searches) = r["rate_search"].as_array().filter(|a| !a.is_empty()) else {
        return Ok(());
    };
    h.push_str("<h3>Highest sustainable rate</h3>\n<table><tr><th>scenario</th><th>SLO</th><th>highest rate holding it (req/s)</th><th>steps</th></tr>\n");
    let mut achieved = Vec::new();
    let mut p99 = Vec::new();
    for s in searches {
        let name = s["scenario"].as_str().unwrap_or("?").to_string();
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            esc(&name),
            esc(s["slo"].as_str().unwrap_or("")),
            s["max_rate_per_sec"].as_f64().map_or("none held".to_string(), rate),
            s["steps"].as_array().map_or(0, Vec::len)
        );
        let (a, p) = search_curves(name, s, "asked_rate_per_sec");
        achieved.push(a);
        p99.push(p);
    }
    h.push_str("</table>\n");
    h.push_str(&chart(
        "Achieved against asked rate",
        ("asked req/s", Axis::Log),
        ("achieved req/s", Axis::Log),
        &achieved,
    )?);
    h.push_str(&chart(
        "p99 round trip against asked rate",
        ("asked req/s", Axis::Log),
        ("ms", Axis::Log),
        &p99,
    )?);
    Ok(())
}

/// A search's steps as two curves against their `x` (a step's key: the asked rate, or the
/// agents): the achieved rate and the p99; a step that could not start has neither.
fn search_curves(name: String, s: &Value, x: &str) -> (Line, Line) {
    let mut steps: Vec<(f64, f64, f64)> = s["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["could_not_start"].is_null())
        .filter_map(|p| {
            let at = |k: &str| p[k].as_f64();
            Some((at(x)?, at("achieved_rate_per_sec")?, at("p99_latency_ms")?))
        })
        .collect();
    steps.sort_by(|a, b| a.0.total_cmp(&b.0));
    let achieved = Line { name: name.clone(), points: steps.iter().map(|s| (s.0, s.1)).collect() };
    (achieved, Line { name, points: steps.iter().map(|s| (s.0, s.2)).collect() })
}

fn agent_search(h: &mut String, r: &Value) -> anyhow::Result<()> {
    let Some(searches) = r["agent_search"].as_array().filter(|a| !a.is_empty()) else {
        return Ok(());
    };
    h.push_str("<h3>Most agents (clients) holding the SLO</h3>\n<table><tr><th>scenario</th><th>SLO</th><th>req/s each</th><th>most holding it</th><th>fewest failing</th><th>steps</th></tr>\n");
    let mut achieved = Vec::new();
    let mut p99 = Vec::new();
    for s in searches {
        let name = s["scenario"].as_str().unwrap_or("?").to_string();
        let count = |v: &Value| v.as_u64().map_or("-".to_string(), |n| n.to_string());
        let unit = s["counts"].as_str().unwrap_or("agents");
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&name),
            esc(s["slo"].as_str().unwrap_or("")),
            s["agent_rate_per_sec"].as_f64().map_or("-".to_string(), rate),
            s["max_agents"].as_u64().map_or("none held".to_string(), |n| format!("{n} {unit}")),
            count(&s["first_failing_agents"]),
            s["steps"].as_array().map_or(0, Vec::len)
        );
        let (a, p) = search_curves(name, s, "agents");
        achieved.push(a);
        p99.push(p);
    }
    h.push_str("</table>\n");
    h.push_str(&chart(
        "Achieved rate against agents (clients)",
        ("agents", Axis::Log),
        ("achieved req/s", Axis::Log),
        &achieved,
    )?);
    h.push_str(&chart(
        "p99 round trip against agents (clients)",
        ("agents", Axis::Log),
        ("ms", Axis::Log),
        &p99,
    )?);
    Ok(())
}

fn baseline(h: &mut String, r: &Value) {
    let Some(rows) = r["baseline"]["rows"].as_array() else { return };
    let _ = writeln!(
        h,
        "<h3>Against the baseline {}</h3>\n<table><tr><th>scenario</th><th>throughput then → now</th><th>ratio</th><th>verdict</th><th>p99 then → now (ms)</th><th>ratio</th><th>verdict</th></tr>",
        esc(r["baseline"]["file"].as_str().unwrap_or(""))
    );
    for row in rows {
        let cell = |d: &Value, fmt: &dyn Fn(f64) -> String| {
            format!(
                "<td>{} → {}</td><td>{}</td><td>{}</td>",
                fmt(d["before"].as_f64().unwrap_or(0.0)),
                fmt(d["after"].as_f64().unwrap_or(0.0)),
                d["ratio"].as_f64().map_or("-".into(), |v| format!("{v:.2}×")),
                esc(d["verdict"].as_str().unwrap_or("-"))
            )
        };
        let _ = writeln!(
            h,
            "<tr><td>{}</td>{}{}</tr>",
            esc(row["scenario"].as_str().unwrap_or("")),
            cell(&row["throughput"], &|v| rate(v)),
            cell(&row["p99_ms"], &|v| ms(v))
        );
        for p in row["patterns"].as_array().into_iter().flatten() {
            let _ = writeln!(
                h,
                "<tr><td>&nbsp;&nbsp;{}</td>{}{}</tr>",
                esc(p["pattern"].as_str().unwrap_or("")),
                cell(&p["throughput"], &|v| rate(v)),
                cell(&p["p99_ms"], &|v| ms(v))
            );
        }
    }
    h.push_str("</table>\n");
}

/// "ring × 100 closed w16": a comparison row's scenario.
fn row_name(row: &Value) -> String {
    format!(
        "{} × {} {}",
        row["topology"].as_str().unwrap_or("?"),
        row["agents"].as_u64().unwrap_or(0),
        row["pacing"].as_str().unwrap_or("")
    )
}

/// A compare that searched (`compare --find-max-rate`, `--find-max-agents`): per scenario each
/// router's median answer over the rounds with their range, and the reference's ratios; each
/// router's searches, steps and curves follow in its own section.
fn compare_searches(h: &mut String, r: &Value) {
    let Some(rows) = r["rows"].as_array() else { return };
    let reference = r["reference"].as_str().unwrap_or("?");
    let routers: Vec<&str> =
        r["routers"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let agents = r["searched"].as_str() == Some("agents");
    let unit = if agents {
        // The searches say what they counted: agents, or an HTTP target's clients.
        let counted =
            routers.iter().find_map(|n| r["reports"][n]["agent_search"][0]["counts"].as_str());
        counted.unwrap_or("agents")
    } else {
        "req/s"
    };
    let what = match r["agent_rate_per_sec"].as_f64() {
        Some(each) if agents => {
            format!("the most {unit}, each asking {} req/s,", super::text::rate(each))
        }
        _ => "the highest rate".to_string(),
    };
    let _ = writeln!(
        h,
        "<h2>Comparison: searches</h2>\n<p>Per scenario, {what} holding <code>{}</code>: each router's median over the rounds (the rounds' range), and {} over each other router (above 1 favours {}).</p>",
        esc(r["slo"].as_str().unwrap_or("?")),
        esc(reference),
        esc(reference)
    );
    h.push_str("<table><tr><th>scenario</th><th>router</th><th>answer (rounds' range)</th><th>rounds</th><th>ratio</th></tr>\n");
    let num = |v: f64| if agents { format!("{v:.0}") } else { super::text::rate(v) };
    for row in rows {
        for router in &routers {
            let s = &row["per_router"][router];
            let n = s["n"].as_u64().unwrap_or(0);
            let (med, lo, hi) = (
                s["median"].as_f64().unwrap_or(0.0),
                s["min"].as_f64().unwrap_or(0.0),
                s["max"].as_f64().unwrap_or(0.0),
            );
            let answer = match n {
                0 => "-".to_string(),
                1 => format!("{} {unit}", num(med)),
                _ => format!("{} {unit} ({}–{})", num(med), num(lo), num(hi)),
            };
            let ratio = row["ratios"][format!("{reference}/{router}")]
                .as_f64()
                .map_or(String::new(), |v| format!("{v:.2}×"));
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{n}</td><td>{ratio}</td></tr>",
                esc(row["scenario"].as_str().unwrap_or("?")),
                esc(router),
                esc(&answer)
            );
        }
    }
    h.push_str("</table>\n");
}

fn compare(h: &mut String, r: &Value) -> anyhow::Result<()> {
    compare_searches(h, r);
    let reference = r["reference"].as_str().unwrap_or("?");
    let Some(rows) = r["comparison"].as_array() else { return Ok(()) };
    let _ = writeln!(
        h,
        "<h2>Comparison</h2>\n<p>Ratios are {} over each other router, same cores, runs alternating; throughput ratio &gt; 1 and p99 ratio &lt; 1 favour {}.</p>",
        esc(reference),
        esc(reference)
    );
    // The closed-loop summaries: throughput ratios (lowest is worst), then p99 (highest is).
    let summaries = [
        ("closed_loop", "Closed loop", "lowest", "below"),
        ("closed_loop_p99", "Closed loop p99", "highest", "above"),
        ("closed_loop_cpu", "Closed loop router CPU per message", "highest", "above"),
    ];
    for (field, title, worst, side) in summaries {
        for (pair, s) in r[field].as_object().into_iter().flatten() {
            let _ = writeln!(
                h,
                "<p>{title}, {}: median {:.2}× over {} scenario(s), {worst} {:.2}× ({}), {} {side} 1.0.</p>",
                esc(pair),
                s["median"].as_f64().unwrap_or(0.0),
                s["scenarios"].as_u64().unwrap_or(0),
                s[worst].as_f64().unwrap_or(0.0),
                esc(s[format!("{worst}_scenario").as_str()].as_str().unwrap_or("?")),
                s[format!("{side}_one").as_str()].as_u64().unwrap_or(0)
            );
        }
    }
    h.push_str("<table><tr><th>scenario</th><th>routers</th><th>throughput ratio (rounds' range)</th><th>p99 ratio (rounds' range)</th></tr>\n");
    let mut lines: Vec<Line> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let name = row_name(row);
        // A range only where several rounds gave one (one round has none; rounds where one
        // router's run failed give none).
        let several = row["rounds"].as_u64().unwrap_or(0) > 1;
        let ratio_cell = |ratio: Option<f64>, spread: &Value| match (ratio, spread.as_array()) {
            (Some(v), Some(r)) if several && r.len() == 2 => format!(
                "{v:.2}× ({:.2}–{:.2})",
                r[0].as_f64().unwrap_or(0.0),
                r[1].as_f64().unwrap_or(0.0)
            ),
            (Some(v), _) => format!("{v:.2}×"),
            (None, _) => "-".into(),
        };
        for (pair, ratio) in row["throughput_ratios"].as_object().into_iter().flatten() {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&name),
                esc(pair),
                ratio_cell(ratio.as_f64(), &row["throughput_ratio_spread"][pair]),
                ratio_cell(row["p99_ratios"][pair].as_f64(), &row["p99_ratio_spread"][pair]),
            );
            let point = (i as f64 + 1.0, ratio.as_f64().unwrap_or(0.0));
            match lines.iter_mut().find(|l| l.name == *pair) {
                Some(l) => l.points.push(point),
                None => lines.push(Line { name: pair.clone(), points: vec![point] }),
            }
        }
    }
    h.push_str("</table>\n");
    // Rows whose runs lost wake-ups (`per_router.*.lost_wakeups`), as the terminal's rows say.
    let lost: Vec<String> = rows
        .iter()
        .flat_map(|row| {
            let name = row_name(row);
            row["per_router"].as_object().into_iter().flatten().filter_map(move |(router, m)| {
                let n = m["lost_wakeups"].as_u64().filter(|&n| n > 0)?;
                Some(format!("{name}, {router}: {n}"))
            })
        })
        .collect();
    if !lost.is_empty() {
        let _ = writeln!(
            h,
            "<p class=\"fail\">Lost wake-ups ({}): this process's socket rings slept until their 20 ms fallback timer with work waiting; round trips near 20 ms in those runs are the tool's.</p>",
            esc(&lost.join("; "))
        );
    }
    if !lines.is_empty() {
        h.push_str(&chart(
            "Throughput ratio per scenario (numbered as in the table, top to bottom)",
            ("scenario", Axis::Linear),
            ("ratio", Axis::Linear),
            &lines,
        )?);
    }
    Ok(())
}

fn host_facts(h: &mut String, host: &Value) {
    h.push_str("<h2>Host</h2>\n<table>\n");
    fn walk(h: &mut String, prefix: &str, v: &Value) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    walk(h, &key, v);
                }
            }
            Value::Array(a) if a.iter().any(|x| x.is_object()) => {
                for (i, v) in a.iter().enumerate() {
                    walk(h, &format!("{prefix}[{i}]"), v);
                }
            }
            other => {
                let text = match other {
                    Value::String(s) => s.clone(),
                    v => v.to_string(),
                };
                let _ = writeln!(h, "<tr><td>{}</td><td>{}</td></tr>", esc(prefix), esc(&text));
            }
        }
    }
    walk(h, "", host);
    h.push_str("</table>\n");
}

/// Writes the page for `report` to `path`.
pub fn write(report: &Value, path: &std::path::Path) -> anyhow::Result<()> {
    let page = render(report)?;
    std::fs::write(path, page)
        .map_err(|e| anyhow::anyhow!("--html: cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_spread_one_nine_per_unit() {
        // Proves the wrk2-style axis puts 90 % at 1, 99 % at 2, 99.9 % at 3, and labels back.
        assert!((nines(90.0) - 1.0).abs() < 1e-9);
        assert!((nines(99.9) - 3.0).abs() < 1e-9);
        assert_eq!(nines(0.0), 0.0);
        assert_eq!(axis_label(2.0, Axis::Percentile), "99%");
        assert_eq!(axis_label(0.0, Axis::Percentile), "0%");
        assert_eq!(esc("<a&\"b\">"), "&lt;a&amp;&quot;b&quot;&gt;");
    }

    #[test]
    fn a_scenario_whose_runs_failed_says_why_under_its_row() {
        // Proves the scenario table shows, under a scenario with a failed run, why the first
        // of them failed (escaped), and nothing under a scenario whose runs all succeeded.
        let run = |topology: &str, failure: Option<&str>| {
            serde_json::json!({
                "topology": topology, "agent_count": 4, "success": failure.is_none(),
                "status": if failure.is_some() { "failed" } else { "ok" },
                "failure": failure, "pacing": {"mode": "closed"}
            })
        };
        let report = serde_json::json!({"results": [
            run("ring", Some("the router closed <4> of 4 agent connections")),
            run("ring", None),
            run("star", None),
        ]});
        let mut h = String::new();
        let unit = Unit::of(&report);
        scenario_table(&mut h, &figures::scenarios(&figures::runs(&report)), unit);
        assert_eq!(h.matches("failed: ").count(), 1, "{h}");
        assert!(h.contains("failed: the router closed &lt;4&gt; of 4 agent connections"), "{h}");
    }

    #[test]
    fn each_scenario_s_memory_is_its_runs_median() {
        // Proves the memory table: a row per scenario with the median of its runs' memory in
        // MiB, a column for the target only where some run measured one, `-` for a scenario
        // that read none; and no table when no run read memory.
        let run = |topology: &str, own: Option<u64>| {
            serde_json::json!({
                "topology": topology, "agent_count": 4, "success": true, "status": "ok",
                "pacing": {"mode": "closed"}, "memory": {"process_bytes": own},
            })
        };
        let mib = 1u64 << 20;
        let report = serde_json::json!({"results": [
            run("ring", Some(10 * mib)), run("ring", Some(30 * mib)), run("ring", Some(12 * mib)),
            run("star", None),
        ]});
        let mut h = String::new();
        let runs = figures::runs(&report);
        memory(&mut h, &report, &runs, &figures::scenarios(&runs));
        assert!(h.contains("<th>this process</th></tr>") && !h.contains("target"), "{h}");
        assert!(h.contains("<td>12.0</td>") && h.contains("<td>-</td>"), "{h}");
        let none = serde_json::json!({"results": [run("ring", None)]});
        let mut h = String::new();
        let runs = figures::runs(&none);
        memory(&mut h, &none, &runs, &figures::scenarios(&runs));
        assert_eq!(h, "");
    }

    #[test]
    fn an_http_mix_is_shown_per_pattern_for_each_scenario() {
        // Proves the page's pattern table: a row per pattern of the shown run, a stream's
        // first event and events, errors by kind escaped, `-` where nothing was measured; and
        // no table for a report without patterns.
        let lat = |count: u64, p50: f64| serde_json::json!({"count": count, "p50_ms": p50, "p99_ms": p50 * 2.0});
        let report = serde_json::json!({"results": [{
            "topology": "client", "agent_count": 4, "success": true, "status": "ok",
            "pacing": {"mode": "closed"}, "p99_latency_ms": 1.0,
            "patterns": [
                {"pattern": "a2a-rest:message", "ok": 120, "errors": 0, "errors_by_kind": {},
                 "ok_per_sec": 240.0, "latency": lat(120, 0.5)},
                {"pattern": "a2a-rest:stream", "ok": 0, "errors": 7,
                 "errors_by_kind": {"a2a_<odd>": 7}, "ok_per_sec": 0.0, "latency": lat(0, 0.0),
                 "first_event": lat(0, 0.0), "events_per_answer": 0.0}
            ]
        }]});
        let runs = figures::runs(&report);
        let results = report["results"].as_array().unwrap().clone();
        let mut h = String::new();
        patterns(&mut h, &results, &shown_runs(&report, &runs));
        assert_eq!(h.matches("<tr><td>").count(), 2, "{h}");
        assert!(h.contains("<td class=\"name\">a2a-rest:message</td><td>120</td><td>240</td><td>0.500</td><td>1.00</td><td></td><td></td><td>0</td>"), "{h}");
        assert!(h.contains("<td class=\"name\">a2a-rest:stream</td><td>0</td><td>0</td><td>-</td><td>-</td><td>- / -</td><td>0.0</td>"), "{h}");
        assert!(h.contains("7</span> (a2a_&lt;odd&gt; 7)"), "{h}");
        let mut http = report.clone();
        http["summary"] =
            serde_json::json!({"throughput_unit": "answered HTTP requests per second"});
        let page = render(&http).unwrap();
        assert!(page.contains("<h3>Patterns</h3>") && page.contains("throughput (answers/s)"));
        assert!(render(&report).unwrap().contains("throughput (msgs/s)"));
        let mut h = String::new();
        let plain = serde_json::json!({"results": [{"topology": "ring", "agent_count": 4,
            "success": true, "status": "ok", "pacing": {"mode": "closed"}}]});
        let results = plain["results"].as_array().unwrap().clone();
        patterns(&mut h, &results, &shown_runs(&plain, &figures::runs(&plain)));
        assert!(h.is_empty(), "{h}");
    }

    #[test]
    fn a_payload_mix_is_shown_per_size_for_each_scenario() {
        // Proves the page's size table: a row per size of the shown run with its share of the
        // sends and as asked, its rate, latencies and errors, `-` where none was measured; none
        // for a report without a mix.
        let lat = |count: u64, p50: f64| {
            serde_json::json!({"count": count, "p50_ms": p50, "p99_ms": p50 * 2.0,
                "p999_ms": p50 * 3.0, "max_ms": p50 * 4.0})
        };
        let report = serde_json::json!({"results": [{
            "topology": "ring", "agent_count": 4, "success": true, "status": "ok",
            "pacing": {"mode": "closed"}, "p99_latency_ms": 1.0,
            "payload_mix": [
                {"bytes": 64, "share_sent": 0.901, "share_asked": 0.9,
                 "round_trips_per_sec": 9000.0, "latency": lat(900, 0.5)},
                {"bytes": 1048576, "share_sent": 0.099, "share_asked": 0.1,
                 "round_trips_per_sec": 0.0, "errors": 7, "latency": lat(0, 0.0)}
            ]
        }]});
        let runs = figures::runs(&report);
        let results = report["results"].as_array().unwrap().clone();
        let mut h = String::new();
        sizes(&mut h, &results, &shown_runs(&report, &runs));
        assert_eq!(h.matches("<tr><td>").count(), 2, "{h}");
        assert!(h.contains("<td class=\"name\">64B</td><td>90.1 % (90.0 %)</td><td>9.0 k</td><td>0.500</td><td>1.00</td><td>1.50</td><td>2.00</td><td>0</td>"), "{h}");
        assert!(h.contains("<td class=\"name\">1M</td><td>9.9 % (10.0 %)</td><td>0</td><td>-</td><td>-</td><td>-</td><td>-</td><td>7</td>"), "{h}");
        assert!(render(&report).unwrap().contains("<h3>Payload sizes</h3>"));
        let plain = serde_json::json!({"results": [{"topology": "ring", "agent_count": 4,
            "success": true, "status": "ok", "pacing": {"mode": "closed"}}]});
        let mut h = String::new();
        let results = plain["results"].as_array().unwrap().clone();
        sizes(&mut h, &results, &shown_runs(&plain, &figures::runs(&plain)));
        assert!(h.is_empty(), "{h}");
    }

    #[test]
    fn a_scenario_whose_runs_all_failed_shows_its_first_run_in_the_error_tables() {
        // Proves the per-size and per-pattern tables keep a failed scenario: its first run,
        // named `(failed)`, with its errors (a size the server refused), beside a scenario
        // that succeeded, which shows its median run as before; not in a rate search.
        let run = |agents: u32, success: bool, errors: u64| {
            serde_json::json!({"topology": "client", "agent_count": agents, "success": success,
                "status": if success { "ok" } else { "failed" }, "pacing": {"mode": "closed"},
                "p99_latency_ms": 1.0,
                "payload_mix": [{"bytes": 2097152, "share_sent": 1.0, "share_asked": 1.0,
                    "round_trips_per_sec": 0.0, "errors": errors,
                    "latency": {"count": 0}}]})
        };
        let report = serde_json::json!({"results": [run(4, false, 11), run(4, false, 12),
            run(8, true, 0)]});
        let page = render(&report).unwrap();
        assert!(page.contains("<h3>Payload sizes</h3>"), "{page}");
        let failed = page.split("<h3>Payload sizes</h3>").nth(1).unwrap();
        assert!(
            failed.contains("client × 4 closed w0 mix (failed)</td><td class=\"name\">2M</td>"),
            "{failed}"
        );
        assert!(
            failed.contains("<td>11</td></tr>") && !failed.contains("<td>12</td></tr>"),
            "{failed}"
        );
        assert!(failed.contains("client × 8 closed w0 mix</td>"), "{failed}");
        let mut searched = report.clone();
        searched["rate_search"] = serde_json::json!([{"max_rate_per_sec": null}]);
        assert!(!render(&searched).unwrap().contains("(failed)</td>"));
    }

    #[test]
    fn the_compare_page_names_the_rows_whose_runs_lost_wake_ups() {
        // Proves a comparison's page names each scenario and router whose runs lost wake-ups
        // with their sum, as the terminal's rows do, and says nothing when none did.
        let row = |lost: u64| {
            serde_json::json!({
                "topology": "ring", "agents": 100, "pacing": "closed w16",
                "per_router": {"glommio": {"lost_wakeups": lost}, "tokio-shared": {}},
                "throughput_ratios": {}, "p99_ratios": {}
            })
        };
        let doc = |lost| serde_json::json!({"reference": "glommio", "comparison": [row(lost)]});
        let mut h = String::new();
        compare(&mut h, &doc(4)).unwrap();
        assert!(h.contains("Lost wake-ups (ring × 100 closed w16, glommio: 4)"), "{h}");
        let mut h = String::new();
        compare(&mut h, &doc(0)).unwrap();
        assert!(!h.contains("Lost wake-ups"), "{h}");
    }

    #[test]
    fn a_ratio_s_range_shows_only_where_rounds_gave_one() {
        // Proves the comparison table gives a ratio's range of rounds only where several
        // rounds gave one: one round has none, and rounds in which one router's run failed
        // give none (the page had read "0.91× (0.00–0.00)").
        let row = |rounds: u64, spread: Value| {
            serde_json::json!({
                "topology": "ring", "agents": 10, "pacing": "closed w16", "rounds": rounds,
                "per_router": {}, "throughput_ratios": {"glommio/mine": 0.91},
                "throughput_ratio_spread": spread, "p99_ratios": {"glommio/mine": 1.2}
            })
        };
        let page = |row: Value| {
            let mut h = String::new();
            compare(&mut h, &serde_json::json!({"reference": "glommio", "comparison": [row]}))
                .unwrap();
            h
        };
        let h = page(row(3, serde_json::json!({"glommio/mine": [0.88, 0.95]})));
        assert!(h.contains("<td>0.91× (0.88–0.95)</td><td>1.20×</td>"), "{h}");
        for h in [
            page(row(1, serde_json::json!({"glommio/mine": [0.91, 0.91]}))),
            page(row(3, serde_json::json!({}))),
        ] {
            assert!(h.contains("<td>0.91×</td><td>1.20×</td>"), "{h}");
        }
    }

    #[test]
    fn the_compare_page_sums_up_the_router_cpu_per_message_too() {
        // Proves a comparison's page carries the closed-loop summary of router CPU per routed
        // message beside the throughput and p99 ones, with its highest scenario.
        let cpu = serde_json::json!({"glommio/tokio-per-core": {
            "scenarios": 6, "median": 1.08, "highest": 1.31, "highest_scenario": "star × 100",
            "above_one": 4
        }});
        let doc = serde_json::json!({"reference": "glommio", "comparison": [],
            "closed_loop_cpu": cpu});
        let mut h = String::new();
        compare(&mut h, &doc).unwrap();
        assert!(
            h.contains(
                "Closed loop router CPU per message, glommio/tokio-per-core: median 1.08× over 6 \
                 scenario(s), highest 1.31× (star × 100), 4 above 1.0."
            ),
            "{h}"
        );
    }

    #[test]
    fn the_page_names_the_runs_whose_process_lost_wake_ups() {
        // Proves the page carries the terminal's warning: the runs with lost wake-ups are named
        // with their counts, and a report without any says nothing of them.
        let mut report =
            serde_json::json!({"results": [{}, {"lost_wakeups": 3}, {"lost_wakeups": 0}]});
        let page = render(&report).unwrap();
        assert!(page.contains("Lost wake-ups (run 2: 3)"), "{page}");
        assert!(page.contains("20 ms fallback timer"), "{page}");
        report["results"][1] = serde_json::json!({});
        assert!(!render(&report).unwrap().contains("Lost wake-ups"));
    }
}
