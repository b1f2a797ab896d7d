//! `--find-max-rate --slo EXPR`: per scenario, the highest open-loop rate that holds the SLO and
//! is sustained, the way OpenMessaging Benchmark searches: measure the closed-loop rate, grow an
//! open-loop rate from half of it until a step fails, then bisect between the highest step that
//! held and the lowest that failed until they are within the precision. A step's verdict is
//! confirmed by a repeat (a third run breaks a tie), so one noisy run decides nothing.
//!
//! `--find-max-agents RATE --slo EXPR`: per scenario, the most agents (virtual clients), each
//! asking RATE requests per second, that hold the SLO and are sustained — the capacity
//! planner's question ("how many agents of this kind can this box serve at p99 < X?"). From
//! the first `--agents` count it doubles until a step fails (or halves until one holds), then
//! bisects between the most that held and the fewest that failed, each step confirmed as
//! above. A step whose runs cannot start (more connections than the machine lets a process
//! open) fails, and the search goes on below it.

use super::bench::{describe_pacing, Session};
use crate::loadgen::Pacing;
use crate::report::figures::{self, Stat};
use crate::report::threshold::Threshold;
use crate::report::{text, AgentSearch, RateSearch, RunResult, RunSpec, SearchStep};

/// What a search varies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Over {
    /// The open-loop rate, the agents fixed (`--find-max-rate`).
    Rate,
    /// The agent count, each agent asking this many requests per second
    /// (`--find-max-agents`).
    Agents { per_agent: f64 },
}

/// The search's settings.
#[derive(Debug, Clone)]
pub struct SearchConfig {
    /// What a step must hold.
    pub slo: Vec<Threshold>,
    /// The SLO as given.
    pub slo_text: String,
    /// Stop when (lowest failing − highest held) / lowest failing is at most this.
    pub precision: f64,
    /// What is searched.
    pub over: Over,
}

/// An agent search grows no further than this many agents (a million fit in a KiB each).
pub const AGENTS_CAP: u32 = 1_000_000;

/// The search grows past the closed-loop rate up to this multiple of it, then stops.
const CAP: f64 = 1.5;
/// Each growth step multiplies the rate by this.
const GROWTH: f64 = 1.25;
/// Below this many requests per second per agent the search gives up looking lower.
const FLOOR_PER_AGENT: f64 = 0.5;

/// What a step is judged by: the run, or, on a worker of a multi-host run, the whole run
/// merged from every worker's part (every worker judges the same figures, so all take the
/// same next step).
fn whole(r: &RunResult) -> &RunResult {
    r.whole.as_deref().unwrap_or(r)
}

/// Whether one run held: sustained, not failed, and every SLO term met.
fn held(slo: &[Threshold], r: &RunResult) -> bool {
    let r = whole(r);
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
    let peak = whole(&first).pacing.achieved_rate_per_sec;
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
        let mut s = spec.clone();
        s.scenario.pacing = Pacing::Open { rate, window };
        let step = run_step(session, search, &s, results)?;
        say(
            session,
            format!(
                "  step {}: asked {} req/s → achieved {}, {}",
                steps.len() + 1,
                text::rate(rate),
                text::rate(step.achieved_rate_per_sec),
                verdict(&step)
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

/// A step's figures and verdict: "p50 0.1 ms, p99 0.9 ms, 0 errors: holds (2 of 2 runs held)".
fn verdict(step: &SearchStep) -> String {
    format!(
        "p50 {} ms, p99 {} ms, {} errors: {} ({} of {} runs held)",
        text::ms(step.p50_latency_ms),
        text::ms(step.p99_latency_ms),
        step.errors,
        if step.held { "holds" } else { "fails" },
        step.runs_held,
        step.runs
    )
}

/// Runs one step (`spec`, its open-loop pacing set) until its verdict is confirmed: two runs,
/// a third when they disagree.
fn run_step(
    session: &mut Session<'_>,
    search: &SearchConfig,
    spec: &RunSpec,
    results: &mut Vec<RunResult>,
) -> Result<SearchStep, String> {
    let rate = match spec.scenario.pacing {
        Pacing::Open { rate, .. } => rate,
        Pacing::Closed { .. } => 0.0,
    };
    let mut step_runs: Vec<RunResult> = Vec::new();
    let mut indexes = Vec::new();
    let mut votes = (0u32, 0u32);
    while votes.0 < 2 && votes.1 < 2 {
        let mut s = spec.clone();
        s.repeat = step_runs.len() as u32;
        s.scenario.id_base =
            1 + ((results.len() as u32 + 7) % crate::loadgen::ID_BLOCKS) * (1 << 21);
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
    let med = |f: &dyn Fn(&RunResult) -> f64| {
        Stat::of(step_runs.iter().map(|r| f(whole(r))).collect()).median
    };
    Ok(SearchStep {
        agents: spec.scenario.agents,
        asked_rate_per_sec: rate,
        achieved_rate_per_sec: med(&|r| r.pacing.achieved_rate_per_sec),
        p50_latency_ms: med(&|r| r.latency.rtt.p50_ms),
        p99_latency_ms: med(&|r| r.latency.rtt.p99_ms),
        errors: step_runs.iter().map(|r| whole(r).errors.values().sum::<u64>()).sum(),
        runs_held: votes.0,
        runs: step_runs.len() as u32,
        held: votes.0 >= 2,
        result_indexes: indexes,
        could_not_start: None,
    })
}

/// Searches one scenario over agent counts (`spec`: its topology, window and first agent
/// count; `seat(n)`: the same scenario with `n` agents, each asking `per_agent` requests per
/// second); its runs go to `results`.
pub(super) fn find_max_agents(
    session: &mut Session<'_>,
    search: &SearchConfig,
    spec: &RunSpec,
    per_agent: f64,
    seat: &dyn Fn(&RunSpec, u32) -> RunSpec,
    results: &mut Vec<RunResult>,
) -> Result<AgentSearch, String> {
    let window = match spec.scenario.pacing {
        Pacing::Closed { window } | Pacing::Open { window, .. } => window,
    };
    let shown = spec.scenario.workload.window(window);
    let name = format!("{} w{shown}", spec.scenario.shape());
    let start = spec.scenario.agents.max(1);
    // An HTTP client needs no neighbour.
    let http = spec.scenario.protocol == crate::loadgen::Protocol::Http;
    let floor = if http { 1 } else { spec.scenario.workload.least_agents() };
    // Each worker of a multi-host run drives at least one of them.
    let floor = floor.max(session.cfg.worker.as_ref().map_or(1, |w| w.workers));
    let counts = if http { "clients" } else { "agents" };
    let cap = AGENTS_CAP.min(spec.scenario.workload.most_agents());
    let say = |session: &Session<'_>, line: String| {
        session.progress.suspend(|| outln!("{line}"));
    };
    say(
        session,
        format!(
            "{name}: searching the most {counts} each asking {} req/s, from {start}",
            text::rate(per_agent)
        ),
    );
    let mut steps: Vec<SearchStep> = Vec::new();
    let mut first = true;
    let (lo, hi, ended) = search_agents(start, floor, cap, search.precision, |n| {
        if session.interrupt.is_raised() {
            return Ok(None);
        }
        let s = seat(spec, n);
        let step = match run_step(session, search, &s, results) {
            Ok(step) => step,
            // The first step's failure to start is the target's (unreachable, wrong): the
            // command's error, as in every other mode. Later, it is this count's.
            Err(why) if first => return Err(why),
            // A worker that lost the others cannot judge another step.
            Err(why) if session.apart.is_some() => return Err(why),
            Err(why) => SearchStep {
                agents: n,
                asked_rate_per_sec: f64::from(n) * per_agent,
                achieved_rate_per_sec: 0.0,
                p50_latency_ms: 0.0,
                p99_latency_ms: 0.0,
                errors: 0,
                runs_held: 0,
                runs: 0,
                held: false,
                result_indexes: Vec::new(),
                could_not_start: Some(why),
            },
        };
        first = false;
        let verdict = match &step.could_not_start {
            Some(why) => format!("could not start: {why}"),
            None => format!(
                "{} req/s achieved, {}",
                text::rate(step.achieved_rate_per_sec),
                verdict(&step)
            ),
        };
        say(
            session,
            format!(
                "  step {}: {n} {counts} asking {} req/s → {verdict}",
                steps.len() + 1,
                text::rate(step.asked_rate_per_sec)
            ),
        );
        let held = step.held;
        steps.push(step);
        Ok(Some(held))
    })?;
    let precision = match (lo, hi) {
        (Some(l), Some(h)) => f64::from(h - l) / f64::from(h),
        _ => search.precision,
    };
    Ok(AgentSearch {
        scenario: name,
        slo: search.slo_text.clone(),
        counts,
        agent_rate_per_sec: per_agent,
        start_agents: start,
        max_agents: lo,
        first_failing_agents: hi,
        max_rate_per_sec: lo.map(|n| f64::from(n) * per_agent),
        precision,
        ended,
        steps,
    })
}

/// The agent search itself, over any verdict: `step(n)` says whether `n` agents held
/// (`None`: stop, interrupted). Doubles from `start` until a count fails (at most `cap`),
/// or halves until one holds (at least `floor`), then bisects. Returns the most agents that
/// held, the fewest that failed, and why it ended.
fn search_agents(
    start: u32,
    floor: u32,
    cap: u32,
    precision: f64,
    mut step: impl FnMut(u32) -> Result<Option<bool>, String>,
) -> Result<(Option<u32>, Option<u32>, &'static str), String> {
    let (mut lo, mut hi): (Option<u32>, Option<u32>) = (None, None);
    let floor = floor.max(1);
    let mut n = start.clamp(floor, cap);
    loop {
        match step(n)? {
            None => return Ok((lo, hi, "interrupted")),
            Some(true) => lo = Some(lo.map_or(n, |l| l.max(n))),
            Some(false) => hi = Some(hi.map_or(n, |h| h.min(n))),
        }
        n = match (lo, hi) {
            (Some(l), Some(h)) if h - l <= 1 || f64::from(h - l) / f64::from(h) <= precision => {
                return Ok((lo, hi, "converged"))
            }
            (Some(l), Some(h)) => l + (h - l) / 2,
            (Some(l), None) if l >= cap => return Ok((lo, hi, "cap")),
            (Some(l), None) => l.saturating_mul(2).min(cap),
            (None, Some(h)) if h <= floor => return Ok((lo, hi, "nothing_held")),
            (None, Some(h)) => (h / 2).max(floor),
            (None, None) => return Ok((lo, hi, "interrupted")),
        };
    }
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
    fn the_agent_search_converges_on_a_known_capacity_from_either_side() {
        // Proves doubling-then-bisecting over agent counts ends within the precision (or one
        // agent apart) below a known capacity, from a start below it and above it, and never
        // asks for fewer than the floor or more than the cap.
        for (start, capacity) in [(10, 12_345), (10, 11), (5_000, 700), (2, 2), (64, 999_999)] {
            let mut asked = Vec::new();
            let (lo, hi, ended) = search_agents(start, 2, AGENTS_CAP, 0.05, |n| {
                asked.push(n);
                Ok(Some(n <= capacity))
            })
            .unwrap();
            let (lo, hi) = (lo.unwrap(), hi.unwrap());
            assert_eq!(ended, "converged", "{start} {capacity}");
            assert!(lo <= capacity && capacity < hi, "{lo} {capacity} {hi}");
            assert!(hi - lo <= 1 || f64::from(hi - lo) / f64::from(hi) <= 0.05);
            assert!(asked.iter().all(|&n| (2..=AGENTS_CAP).contains(&n)), "{asked:?}");
            assert!(asked.len() <= 24, "{} steps for {capacity}", asked.len());
        }
        // Nothing holds: it halves to the floor and says so; everything holds: the cap.
        let (lo, hi, ended) = search_agents(100, 3, 1000, 0.05, |_| Ok(Some(false))).unwrap();
        assert_eq!((lo, hi, ended), (None, Some(3), "nothing_held"));
        let (lo, hi, ended) = search_agents(100, 3, 1000, 0.05, |_| Ok(Some(true))).unwrap();
        assert_eq!((lo, hi, ended), (Some(1000), None, "cap"));
        let (_, _, ended) = search_agents(100, 3, 1000, 0.05, |_| Ok(None)).unwrap();
        assert_eq!(ended, "interrupted");
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
