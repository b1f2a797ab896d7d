//! One scenario of the comparison: its rounds, every router run back to back in each, then
//! the ratios and the lines that show them.

use super::*;

/// Runs one scenario's rounds (`group`, its repetitions), every router in each round back to
/// back; prints and returns its row. Each run also goes to `all`, the router's report.
pub(super) fn compare_one(
    group: &[RunSpec],
    names: &[String],
    contenders: &[Contender],
    all: &mut BTreeMap<String, Vec<RunResult>>,
    run_no: &mut u32,
    shared: Option<&report::CoreSharing>,
    out: &mut dyn Write,
) -> Row {
    let first = &group[0].scenario;
    let per = run_rounds(group, names, contenders, all, run_no, shared);
    let per_router: BTreeMap<String, Medians> =
        per.iter().map(|(n, r)| (n.clone(), Medians::of(r, shared))).collect();
    let ratios = Ratios::of(names, &per, &per_router);
    let mut pacing = pacing_label(first.effective_pacing());
    if let Some(mix) = first.payload_mix {
        pacing.push_str(&format!(" mix {}", super::super::bench::mix_label(&mix)));
    } else if first.payload_bytes != report::text::DEFAULT_PAYLOAD {
        // Named as a benchmark run names it: "closed w16 16K".
        pacing.push_str(&format!(" {}", report::text::size(first.payload_bytes)));
    }
    let _ = writeln!(out, "\n{} × {} agents, {}", first.shape(), first.agents, pacing);
    let open = matches!(first.effective_pacing(), Pacing::Open { .. });
    for name in names {
        let vs =
            (name != &names[0]).then(|| ratios.text(names, name, &per_router, open, group.len()));
        let _ = writeln!(out, "{}", router_line(name, &per_router[name], vs.unwrap_or_default()));
        if let Some(line) = sizes_line(&per_router[name].sizes) {
            let _ = writeln!(out, "{line}");
        }
    }
    let cpu_ratios = cpu_ratios(names, &per_router);
    Row {
        topology: first.shape().into(),
        agents: first.agents,
        payload_bytes: first.payload_bytes,
        payload_mix: first.payload_mix.as_ref().map(super::super::bench::mix_label),
        pacing,
        per_router,
        throughput_ratios: ratios.throughput,
        p99_ratios: ratios.p99,
        cpu_ratios,
        throughput_ratio_spread: ratios.throughput_spread,
        p99_ratio_spread: ratios.p99_spread,
        rounds: group.len(),
    }
}

/// The first router's median CPU per routed message over each other router's, keyed
/// `"<first>/<other>"`, where both report one.
pub(super) fn cpu_ratios(
    names: &[String],
    per_router: &BTreeMap<String, Medians>,
) -> BTreeMap<String, f64> {
    let first = per_router[&names[0]].router_cpu_ns_per_msg;
    names[1..]
        .iter()
        .filter_map(|other| {
            let (a, b) = (first?, per_router[other].router_cpu_ns_per_msg?);
            (a > 0.0 && b > 0.0).then(|| (format!("{}/{other}", names[0]), a / b))
        })
        .collect()
}

/// Every round of the scenario, each router's run right after the other's: the runs by router.
fn run_rounds(
    group: &[RunSpec],
    names: &[String],
    contenders: &[Contender],
    all: &mut BTreeMap<String, Vec<RunResult>>,
    run_no: &mut u32,
    shared: Option<&report::CoreSharing>,
) -> BTreeMap<String, Vec<RunResult>> {
    let mut per: BTreeMap<String, Vec<RunResult>> = BTreeMap::new();
    for spec in group {
        for (name, c) in names.iter().zip(contenders) {
            let mut spec = spec.clone();
            *run_no += 1;
            spec.scenario.id_base = 1 + (*run_no % loadgen::ID_BLOCKS) * (1 << 21);
            c.adapt(&mut spec.scenario);
            // The generator stood still: that round measured it, not the router (once).
            let say = |why: &str| eprintln!("a2a-bench: {name}'s round: {why}: made again");
            let (outcome, (lost_wakeups, cpu), remade) =
                loadgen::made_again(&spec.scenario, true, say, |attempt| {
                    let before = crate::host::CpuTimes::with_target(c.pids());
                    // The routers compare starts run in this process: its rings' lost wake-ups are
                    // the run's, the router's and the agents' alike.
                    let rescued = crate::transport::uring::rescued();
                    let hooks = loadgen::Hooks {
                        probe: c.probe(),
                        target_pids: c.pids(),
                        ..loadgen::Hooks::default()
                    };
                    let outcome = loadgen::run_with(attempt, c.addr(), hooks);
                    let lost_wakeups = crate::transport::uring::rescued() - rescued;
                    // The window's CPU; the whole run's where the window's edges were not reached.
                    let cpu = outcome
                        .cpu_window
                        .or_else(|| before.zip(crate::host::CpuTimes::with_target(c.pids())));
                    (outcome, (lost_wakeups, cpu))
                });
            let mut result = RunResult::new(&spec, &outcome);
            result.lost_wakeups = (lost_wakeups > 0).then_some(lost_wakeups);
            result.remade = remade;
            settle_cpu(&mut result, cpu, (c.pids(), c.pinned()), c.sharing(shared));
            // Every router compare starts lives in this process: its memory is none's alone.
            result.memory = result
                .memory
                .filter(|m| m.target_bytes.is_some())
                .map(|m| report::MemoryInfo { process_bytes: None, ..m });
            super::super::bench::busy_warning(*run_no as usize - 1, result.cpu.others_share);
            per.entry(name.clone()).or_default().push(result.clone());
            if let Some(list) = all.get_mut(name) {
                list.push(result);
            }
        }
    }
    per
}

/// The first router against each other one, keyed `"<first>/<other>"`: the ratios of the
/// medians, and the range of the rounds' own ratios.
pub(super) struct Ratios {
    pub(super) throughput: BTreeMap<String, f64>,
    pub(super) p99: BTreeMap<String, f64>,
    throughput_spread: BTreeMap<String, [f64; 2]>,
    p99_spread: BTreeMap<String, [f64; 2]>,
    /// Rounds behind each spread: those where both routers' runs succeeded (and, for the p99,
    /// measured a round trip).
    throughput_paired: BTreeMap<String, usize>,
    p99_paired: BTreeMap<String, usize>,
}

impl Ratios {
    pub(super) fn of(
        names: &[String],
        per: &BTreeMap<String, Vec<RunResult>>,
        per_router: &BTreeMap<String, Medians>,
    ) -> Ratios {
        let reference = &per_router[&names[0]];
        let mut r = Ratios {
            throughput: BTreeMap::new(),
            p99: BTreeMap::new(),
            throughput_spread: BTreeMap::new(),
            p99_spread: BTreeMap::new(),
            throughput_paired: BTreeMap::new(),
            p99_paired: BTreeMap::new(),
        };
        for other in &names[1..] {
            let m = &per_router[other];
            let key = format!("{}/{}", names[0], other);
            let rounds =
                || per[&names[0]].iter().zip(&per[other]).filter(|(a, b)| a.success && b.success);
            let round_ratios: Vec<f64> = rounds()
                .filter(|(_, b)| b.throughput_msg_per_sec > 0.0)
                .map(|(a, b)| a.throughput_msg_per_sec / b.throughput_msg_per_sec)
                .collect();
            let p99_round_ratios: Vec<f64> = rounds()
                .filter(|(a, b)| a.latency.rtt.count > 0 && b.latency.rtt.count > 0)
                .filter(|(_, b)| b.p99_latency_ms > 0.0)
                .map(|(a, b)| a.p99_latency_ms / b.p99_latency_ms)
                .collect();
            let range = |v: &[f64]| {
                Some([v.iter().copied().reduce(f64::min)?, v.iter().copied().reduce(f64::max)?])
            };
            if let Some(x) = range(&round_ratios) {
                r.throughput_spread.insert(key.clone(), x);
                r.throughput_paired.insert(key.clone(), round_ratios.len());
            }
            if let Some(x) = range(&p99_round_ratios) {
                r.p99_spread.insert(key.clone(), x);
                r.p99_paired.insert(key.clone(), p99_round_ratios.len());
            }
            // Only between routers that each had runs to show: a reference whose runs all
            // failed is no 0.00×, but no ratio.
            if m.throughput > 0.0 && reference.ok_runs > 0 {
                r.throughput.insert(key.clone(), reference.throughput / m.throughput);
            }
            if m.p99_ms > 0.0 && reference.timed_runs > 0 && m.timed_runs > 0 {
                r.p99.insert(key, reference.p99_ms / m.p99_ms);
            }
        }
        r
    }

    /// "   glommio is 1.10× this (1.06–1.19 over 3 rounds)", and at a fixed rate the p99
    /// ratio with what bounded it, for router `name`'s line.
    pub(super) fn text(
        &self,
        names: &[String],
        name: &str,
        per_router: &BTreeMap<String, Medians>,
        open: bool,
        rounds: usize,
    ) -> String {
        let (reference, m) = (&per_router[&names[0]], &per_router[name]);
        let key = format!("{}/{}", names[0], name);
        let spread = match (rounds, self.throughput_spread.get(&key)) {
            (1, _) => " (one round: no spread)".to_string(),
            (n, Some([lo, hi])) => over(*lo, *hi, self.throughput_paired[&key], n),
            (_, None) => String::new(),
        };
        let saturated = |m: &Medians| matches!(m.bottleneck.as_str(), "generator" | "both");
        let shared = |m: &Medians| m.bottleneck == crate::report::SHARED_CORES;
        // In closed loop, agents saturated under both routers bound both throughputs: the
        // ratio is the whole set-up's (how each router's frames load the agents' core too),
        // and the router CPU per message on each line is what tells the routers apart.
        let whole = if !open && saturated(reference) && saturated(m) {
            " (the agents' core saturated with both: the router CPU per msg compares the routers)"
        } else {
            ""
        };
        let tp = self
            .throughput
            .get(&key)
            .map_or(String::new(), |r| format!("   {} is {:.2}× this{spread}{whole}", names[0], r));
        // At a fixed rate every router delivers the rate: the tail is the comparison, and only
        // while the generator kept up is it the routers'.
        let p99 = match (open, self.p99.get(&key)) {
            (true, Some(r)) => {
                let why = if shared(reference) || shared(m) {
                    " (the cores the routers share with the agents were saturated)"
                } else if saturated(reference) || saturated(m) {
                    " (the agents' core was saturated: the p99s are the generator's)"
                } else {
                    ""
                };
                let spread = match (rounds, self.p99_spread.get(&key)) {
                    (n, Some([lo, hi])) if n > 1 => over(*lo, *hi, self.p99_paired[&key], n),
                    _ => String::new(),
                };
                format!(", its p99 {r:.2}× this{spread}{why}")
            }
            _ => String::new(),
        };
        tp + &p99
    }
}

/// " (1.06–1.19 over 3 rounds)": the range of the ratios of the `paired` rounds of `rounds`
/// where both routers' runs count; " (one of 3 rounds: no spread)" when one did.
fn over(lo: f64, hi: f64, paired: usize, rounds: usize) -> String {
    match (paired, paired == rounds) {
        (1, _) => format!(" (one of {rounds} rounds: no spread)"),
        (n, true) => format!(" ({lo:.2}–{hi:.2} over {n} rounds)"),
        (n, false) => format!(" ({lo:.2}–{hi:.2} over {n} of {rounds} rounds)"),
    }
}

/// Under a router's line in a `--payload-mix` scenario: each size's median p50 and p99.
pub(super) fn sizes_line(sizes: &[SizeMedians]) -> Option<String> {
    let cells: Vec<String> = sizes
        .iter()
        .map(|s| {
            let t = s.timed_runs as u64;
            format!(
                "{} p50 {} p99 {}",
                report::text::size(s.bytes),
                report::text::measured_ms(t, s.p50_ms),
                report::text::measured_ms(t, s.p99_ms)
            )
        })
        .collect();
    (!cells.is_empty()).then(|| format!("  {:<15} by size (ms): {}", "", cells.join(" · ")))
}

/// One router's line of a scenario: its medians, its CPU per message and what bounded it,
/// then `vs` (how the first router compares with it).
pub(super) fn router_line(name: &str, m: &Medians, vs: String) -> String {
    let cpu =
        match (m.router_cpu_ns_per_msg, m.router_idle_share) {
            (Some(ns), Some(idle)) => {
                let watch = m
                    .router_watch_share
                    .filter(|&w| w >= 0.005)
                    .map_or(String::new(), |w| format!(" ({:.0} % watching)", w * 100.0));
                format!("router CPU {ns:.0} ns/msg{watch}, {:.0} % idle", idle * 100.0)
            }
            (Some(ns), None) => format!("router CPU {ns:.0} ns/msg (its processes')"),
            _ => "router CPU unknown".to_string(),
        } + &m.router_msgs_per_frame.map_or(String::new(), |x| format!(", {x:.1} msgs/frame out"))
            + &m.cross_shard_share
                .map_or(String::new(), |x| format!(", {:.0} % across shards", x * 100.0))
            + &lost_wakeups_note(m.lost_wakeups);
    let timed = m.timed_runs as u64;
    let failed = m.failure.as_ref().map_or(String::new(), |f| format!("\n    {name} failed: {f}"));
    format!(
        "  {:<15} {:>10} msgs/s ({}–{})  p50 {} ms  p99 {} ms  {}/{} ok, bound: {}, {}{}{failed}",
        name,
        report::text::rate(m.throughput),
        report::text::rate(m.throughput_min),
        report::text::rate(m.throughput_max),
        report::text::measured_ms(timed, m.p50_ms),
        report::text::measured_ms(timed, m.p99_ms),
        m.ok_runs,
        m.runs,
        m.bottleneck,
        cpu,
        vs
    )
}
