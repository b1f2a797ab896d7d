//! The comparison's rows and their summary over the closed-loop scenarios: the median
//! throughput and p99 ratios, the worst and where.

use super::*;

/// One scenario of the comparison.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Row {
    pub(super) topology: String,
    pub(super) agents: u32,
    /// Payload bytes of each request (`--payload-size`, which may list several; with
    /// `--payload-mix`, its largest).
    pub(super) payload_bytes: usize,
    /// `--payload-mix`: the mix (`256B:90,64K:9,1M:1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) payload_mix: Option<String>,
    pub(super) pacing: String,
    pub(super) per_router: BTreeMap<String, Medians>,
    /// `"<first>/<other>"` → median throughput ratio (and p99 ratio: > 1 means the first is slower).
    pub(super) throughput_ratios: BTreeMap<String, f64>,
    pub(super) p99_ratios: BTreeMap<String, f64>,
    /// `"<first>/<other>"` → the first router's median CPU per routed message over the
    /// other's (> 1: the first used more); only where both routers report it.
    pub(super) cpu_ratios: BTreeMap<String, f64>,
    /// `"<first>/<other>"` → `[min, max]` of the throughput ratios of single rounds (the two
    /// routers' runs of one round run back to back).
    pub(super) throughput_ratio_spread: BTreeMap<String, [f64; 2]>,
    /// The same for the p99 ratios: at light load a tail is often the machine's (a core taken
    /// away for milliseconds), and a range that spans 1 says the two routers' tails did not
    /// differ beyond that.
    pub(super) p99_ratio_spread: BTreeMap<String, [f64; 2]>,
    /// Rounds (repetitions) behind each ratio.
    pub(super) rounds: usize,
}

impl Row {
    /// "ring × 100": the row's shape and agents, and its payload where it is not the default
    /// ("ring × 100, 16K").
    pub(super) fn scenario(&self) -> String {
        if self.payload_mix.is_some() {
            return format!("{} × {}, mix", self.topology, self.agents);
        }
        match self.payload_bytes {
            report::text::DEFAULT_PAYLOAD => format!("{} × {}", self.topology, self.agents),
            b => format!("{} × {}, {}", self.topology, self.agents, report::text::size(b)),
        }
    }
}

#[derive(Serialize)]
pub(super) struct CompareReport<'a> {
    pub(super) routers: &'a [String],
    pub(super) reference: &'a str,
    pub(super) comparison: &'a [Row],
    /// `"<first>/<other>"` → the closed-loop rows' throughput ratios summed up.
    pub(super) closed_loop: BTreeMap<String, RatioSummary>,
    /// `"<first>/<other>"` → the closed-loop rows' p99 ratios summed up (above 1: the first
    /// router's tail was longer).
    pub(super) closed_loop_p99: BTreeMap<String, TailSummary>,
    /// `"<first>/<other>"` → the closed-loop rows' router CPU per message ratios summed up
    /// (above 1: the first router used more CPU per routed message).
    pub(super) closed_loop_cpu: BTreeMap<String, TailSummary>,
    pub(super) reports: BTreeMap<String, Report>,
}

/// One router against the first over the closed-loop rows: the median of their p99 ratios,
/// the highest and where, and how many are above 1 (the first router's tail longer).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct TailSummary {
    pub(super) scenarios: usize,
    pub(super) median: f64,
    pub(super) highest: f64,
    pub(super) highest_scenario: String,
    pub(super) above_one: usize,
}

/// [`TailSummary`] for every router but the first, from `rows`' closed-loop p99 ratios.
pub(super) fn closed_loop_tails(rows: &[Row], names: &[String]) -> BTreeMap<String, TailSummary> {
    highest_of(rows, names, |r| &r.p99_ratios)
}

/// [`TailSummary`] for every router but the first, from `rows`' closed-loop ratios of router
/// CPU per routed message (where the agents were the limit, the ratio that tells the routers
/// apart).
pub(super) fn closed_loop_cpu(rows: &[Row], names: &[String]) -> BTreeMap<String, TailSummary> {
    highest_of(rows, names, |r| &r.cpu_ratios)
}

/// The closed-loop ratios `of` picks, summed up with the highest as the worst.
fn highest_of(
    rows: &[Row],
    names: &[String],
    of: impl Fn(&Row) -> &BTreeMap<String, f64>,
) -> BTreeMap<String, TailSummary> {
    closed_loop_ratios(rows, names, of)
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
pub(super) fn tail_lines(summary: &BTreeMap<String, TailSummary>) -> Vec<String> {
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
pub(super) fn summary_line(
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
pub(super) fn closed_loop_ratios(
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
pub(super) struct RatioSummary {
    pub(super) scenarios: usize,
    pub(super) median: f64,
    pub(super) lowest: f64,
    pub(super) lowest_scenario: String,
    pub(super) below_one: usize,
}

/// [`RatioSummary`] for every router but the first, from `rows`' closed-loop ratios.
pub(super) fn closed_loop_summary(
    rows: &[Row],
    names: &[String],
) -> BTreeMap<String, RatioSummary> {
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
pub(super) fn summary_lines(summary: &BTreeMap<String, RatioSummary>) -> Vec<String> {
    summary
        .iter()
        .map(|(key, s)| {
            let extreme = ("lowest", s.lowest, s.lowest_scenario.as_str());
            summary_line(key, s.median, s.scenarios, extreme, ("below", s.below_one))
        })
        .collect()
}
