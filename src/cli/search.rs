//! `--find-max-rate --slo EXPR`: per scenario, the highest open-loop rate that holds the SLO and
//! is sustained, the way OpenMessaging Benchmark searches: measure the closed-loop rate, grow an
//! open-loop rate from half of it until a step fails, then bisect between the highest step that
//! held and the lowest that failed until they are within the precision. A step's verdict is
//! confirmed by a repeat (a third run breaks a tie), so one noisy run decides nothing.

use super::bench::{describe_pacing, Session};
use crate::loadgen::Pacing;
use crate::report::figures::{self, Stat};
use crate::report::threshold::Threshold;
use crate::report::{text, RateSearch, RunResult, RunSpec, SearchStep};

/// The search's settings.
#[derive(Debug, Clone)]
pub struct SearchConfig {
    /// What a step must hold.
    pub slo: Vec<Threshold>,
    /// The SLO as given.
    pub slo_text: String,
    /// Stop when (lowest failing − highest held) / lowest failing is at most this.
    pub precision: f64,
}

/// The search grows past the closed-loop rate up to this multiple of it, then stops.
const CAP: f64 = 1.5;
/// Each growth step multiplies the rate by this.
const GROWTH: f64 = 1.25;
/// Below this many requests per second per agent the search gives up looking lower.
const FLOOR_PER_AGENT: f64 = 0.5;

/// Whether one run held: sustained, not failed, and every SLO term met.
fn held(slo: &[Threshold], r: &RunResult) -> bool {
    if matches!(r.status, "failed" | "overloaded" | "interrupted") {
        return false;
    }
    let Ok(v) = serde_json::to_value(r) else { return false };
    let runs = figures::runs(&serde_json::json!({ "results": [v] }));
    let s = figures::scenarios(&runs);
    s.first().is_some_and(|s| slo.iter().all(|t| t.check(s).passed))
}

/// Searches one scenario (`spec`'s topology, agents, window); its runs go to `results`.
pub(super) fn find_max_rate(
    session: &mut Session<'_>,
    search: &SearchConfig,
    spec: &RunSpec,
    results: &mut Vec<RunResult>,
) -> Result<RateSearch, String> {
    let window = match spec.scenario.pacing {
        Pacing::Closed { window } | Pacing::Open { window, .. } => window,
    };
    let shown = spec.scenario.workload.window(window);
    let name = format!("{} × {} w{shown}", spec.scenario.shape(), spec.scenario.agents);
    let mut closed = spec.clone();
    closed.scenario.pacing = Pacing::Closed { window };
    let first = session.run(&closed)?;
    let peak = first.pacing.achieved_rate_per_sec;
    results.push(first);
    let mut found = RateSearch {
        scenario: name.clone(),
        slo: search.slo_text.clone(),
        closed_loop_rate_per_sec: peak,
        max_rate_per_sec: None,
        first_failing_rate_per_sec: None,
        precision: search.precision,
        ended: "converged",
        steps: Vec::new(),
    };
    let say = |session: &Session<'_>, line: String| {
        session.progress.suspend(|| outln!("{line}"));
    };
    say(
        session,
        format!("{name}: closed loop sends {} req/s; searching from half of it", text::rate(peak)),
    );
    if peak <= 0.0 {
        found.ended = "failed";
        return Ok(found);
    }
    let floor = f64::from(spec.scenario.agents) * FLOOR_PER_AGENT;
    let mut steps = Vec::new();
    // Growth only goes above the highest rate that held, halving only below the lowest that
    // failed, and bisection between them: the highest held stays below the lowest failed.
    let (lo, hi, ended) = search_rates(peak, floor, search.precision, |rate| {
        if session.interrupt.is_raised() {
            return Ok(None);
        }
        let step = run_step(session, search, spec, window, rate, results)?;
        say(
            session,
            format!(
                "  step {}: asked {} req/s → achieved {}, p50 {} ms, p99 {} ms, {} errors: {} ({} of {} runs held)",
                steps.len() + 1,
                text::rate(rate),
                text::rate(step.achieved_rate_per_sec),
                text::ms(step.p50_latency_ms),
                text::ms(step.p99_latency_ms),
                step.errors,
                if step.held { "holds" } else { "fails" },
                step.runs_held,
                step.runs
            ),
        );
        let held = step.held;
        steps.push(step);
        Ok(Some(held))
    })?;
    found.steps = steps;
    found.ended = ended;
    found.max_rate_per_sec = lo;
    found.first_failing_rate_per_sec = hi;
    if let (Some(l), Some(h)) = (lo, hi) {
        found.precision = (h - l) / h;
    }
    Ok(found)
}

/// The search itself, over any verdict: `step(rate)` says whether `rate` held (`None`: stop,
/// interrupted). Returns the highest rate that held, the lowest that failed, and why it ended.
fn search_rates(
    peak: f64,
    floor: f64,
    precision: f64,
    mut step: impl FnMut(f64) -> Result<Option<bool>, String>,
) -> Result<(Option<f64>, Option<f64>, &'static str), String> {
    let (mut lo, mut hi): (Option<f64>, Option<f64>) = (None, None);
    let mut rate = peak / 2.0;
    loop {
        match step(rate)? {
            None => return Ok((lo, hi, "interrupted")),
            Some(true) => lo = Some(lo.map_or(rate, |l: f64| l.max(rate))),
            Some(false) => hi = Some(hi.map_or(rate, |h: f64| h.min(rate))),
        }
        rate = match (lo, hi) {
            (Some(l), Some(h)) if (h - l) / h <= precision => return Ok((lo, hi, "converged")),
            (Some(l), Some(h)) => (l + h) / 2.0,
            (Some(l), None) if l * GROWTH > peak * CAP => return Ok((lo, hi, "cap")),
            (Some(l), None) => l * GROWTH,
            (None, Some(h)) if h / 2.0 < floor => return Ok((lo, hi, "nothing_held")),
            (None, Some(h)) => h / 2.0,
            (None, None) => return Ok((lo, hi, "failed")),
        };
    }
}

/// Runs one asked rate until its verdict is confirmed: two runs, a third when they disagree.
fn run_step(
    session: &mut Session<'_>,
    search: &SearchConfig,
    spec: &RunSpec,
    window: u32,
    rate: f64,
    results: &mut Vec<RunResult>,
) -> Result<SearchStep, String> {
    let mut step_runs: Vec<RunResult> = Vec::new();
    let mut indexes = Vec::new();
    let mut votes = (0u32, 0u32);
    while votes.0 < 2 && votes.1 < 2 {
        let mut s = spec.clone();
        s.scenario.pacing = Pacing::Open { rate, window };
        s.repeat = step_runs.len() as u32;
        s.scenario.id_base = 1 + ((results.len() as u32 + 7) % 2000) * (1 << 21);
        session.progress.set_message(format!(
            "{} × {} {}",
            s.scenario.shape(),
            s.scenario.agents,
            describe_pacing(&s.scenario)
        ));
        let r = session.run(&s)?;
        if held(&search.slo, &r) {
            votes.0 += 1;
        } else {
            votes.1 += 1;
        }
        indexes.push(results.len());
        results.push(r.clone());
        step_runs.push(r);
        if session.interrupt.is_raised() {
            break;
        }
    }
    let med = |f: &dyn Fn(&RunResult) -> f64| Stat::of(step_runs.iter().map(f).collect()).median;
    Ok(SearchStep {
        asked_rate_per_sec: rate,
        achieved_rate_per_sec: med(&|r| r.pacing.achieved_rate_per_sec),
        p50_latency_ms: med(&|r| r.latency.rtt.p50_ms),
        p99_latency_ms: med(&|r| r.latency.rtt.p99_ms),
        errors: step_runs.iter().map(|r| r.errors.values().sum::<u64>()).sum(),
        runs_held: votes.0,
        runs: step_runs.len() as u32,
        held: votes.0 >= 2,
        result_indexes: indexes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_converges_on_a_known_capacity() {
        // Proves grow-then-bisect ends within the precision below a known capacity, in few
        // steps, from either side of the start.
        for capacity in [700.0, 30_000.0, 99_000.0] {
            let mut asked = Vec::new();
            let (lo, hi, ended) = search_rates(100_000.0, 2.0, 0.05, |r| {
                asked.push(r);
                Ok(Some(r <= capacity))
            })
            .unwrap();
            let (lo, hi) = (lo.unwrap(), hi.unwrap());
            assert_eq!(ended, "converged");
            assert!(lo <= capacity && capacity < hi, "{lo} {capacity} {hi}");
            assert!((hi - lo) / hi <= 0.05);
            assert!(asked.len() <= 16, "{} steps for {capacity}", asked.len());
        }
    }

    #[test]
    fn the_search_says_when_nothing_held_or_everything_did() {
        // Proves an SLO no rate meets ends as nothing_held above the floor, and one every rate
        // meets stops at the cap instead of growing for ever.
        let (lo, _, ended) = search_rates(1000.0, 10.0, 0.05, |_| Ok(Some(false))).unwrap();
        assert_eq!((lo, ended), (None, "nothing_held"));
        let (lo, hi, ended) = search_rates(1000.0, 10.0, 0.05, |_| Ok(Some(true))).unwrap();
        assert_eq!((hi, ended), (None, "cap"));
        assert!(lo.unwrap() <= 1500.0 && lo.unwrap() > 1000.0);
        let (_, _, ended) = search_rates(1000.0, 10.0, 0.05, |_| Ok(None)).unwrap();
        assert_eq!(ended, "interrupted");
    }
}
