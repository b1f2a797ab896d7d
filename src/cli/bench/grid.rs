//! Running a validated grid, as a pipeline: check what can fail before the runs, start the
//! target, run every scenario (or search each one's highest rate or agent count), then write
//! and print the report.

use super::*;
use crate::cli::search::Over;
use crate::report::{AgentSearch, RateSearch};

/// What a grid's searches found: rate searches or agent searches (one kind per command).
#[derive(Default)]
struct Searches {
    rates: Vec<RateSearch>,
    agents: Vec<AgentSearch>,
}

/// Runs a validated grid.
pub(in crate::cli) fn run_config(cfg: BenchConfig) -> anyhow::Result<Finish> {
    let provenance = report::Provenance::now();
    let baseline = preflight(&cfg)?;
    // (A target of its own on this machine: `share_with_target`, once it is found.)
    let interrupt = Interrupt::new();
    catch_interrupts(&interrupt)?;
    let mut runs = cfg.grid();
    let mut out = std::io::stdout();
    // Before the router starts: a polling router would take the cores from the probe.
    let stalls = cfg.probe_stalls();
    let (router, addr, router_label) = start_target(&cfg)?;
    // A target of its own on this machine (not the embedded router, which is this process).
    let target_pids = match router {
        None => crate::host::listeners(addr),
        Some(_) => Vec::new(),
    };
    // An external router is asked for its counters only if it speaks the native protocol.
    let external_probe = match &cfg.target {
        Target::External { addr, .. } if cfg.protocol == Protocol::Native => {
            Some(ExternalProbe::new(*addr))
        }
        _ => None,
    };
    let (shared, _lease, mut notes) = sharing(&cfg, &target_pids, external_probe.as_ref());
    let ours = cfg.router_flags.heartbeat_timeout;
    if let Some(note) = external_probe.as_ref().and_then(|p| keep_alive_within(p, ours, &mut runs))
    {
        notes.push(note);
    }
    let probe: Option<&dyn RouterProbe> = match (&router, &external_probe) {
        (Some(r), _) => Some(r),
        (None, Some(p)) => Some(p),
        _ => None,
    };
    announce(&mut out, &cfg, &runs, &router_label);
    let mut session = Session {
        cfg: &cfg,
        addr,
        probe,
        interrupt: interrupt.clone(),
        progress: progress_bar(cfg.search.is_some(), runs.len()),
        made: 0,
        tried: 0,
        target_pinned: crate::host::pinned_cores(&target_pids).len(),
        target_pids,
        shared,
        notes,
        apart: None,
    };
    let (results, searches, fatal) = run_grid(&mut session, &runs);
    session.progress.finish_and_clear();
    if let Some(r) = router {
        r.stop();
    }
    // A run that could not start ends the grid; what finished before it is still reported.
    let stopped_early = match fatal {
        Some(why) if results.is_empty() => bail!("{why}"),
        Some(why) => {
            eprintln!("a2a-bench: {why}: the runs before it are reported");
            true
        }
        None => false,
    };
    let interrupted = interrupt.is_raised();
    let mut report = report_of(&cfg, &provenance, results, searches, router_label, &stalls);
    report.interrupted = interrupted;
    let report = judge_and_write(&cfg, report, baseline)?;
    print_report(&mut out, &cfg, &report, runs.len());
    // A search's failed steps are how it finds its limit, not the command's failure.
    let runs_failed = report.summary.failed > 0 && cfg.search.is_none();
    Ok(if interrupted {
        Finish::Interrupted
    } else if report.thresholds.iter().any(|c| !c.passed) {
        Finish::ThresholdsFailed
    } else if runs_failed || stopped_early {
        Finish::SomeFailed
    } else {
        Finish::AllOk
    })
}

/// Where the router and the agents share cores, and which: the embedded router by the plan;
/// a target on this machine by the cores its processes are pinned to (a native one is told,
/// by a lease kept while the returned value lives, not to watch on the cores it shares).
fn sharing(
    cfg: &BenchConfig,
    target_pids: &[u32],
    external_probe: Option<&ExternalProbe>,
) -> (Option<report::CoreSharing>, Option<ShareLease>, Vec<String>) {
    match &cfg.target {
        Target::Embedded { .. } => (plan_sharing(&cfg.plan), None, Vec::new()),
        Target::External { addr, .. } => {
            let native = external_probe.map(|p| (*addr, p));
            share_with_target(&cfg.plan, target_pids, native, cfg.http.is_some())
        }
    }
}

/// The agents' heartbeats go by the external router's own timeout, which it says in its
/// stats reply: a quiet agent must stay online there, whatever `--heartbeat-timeout` says
/// here. A note when the two differ; nothing when the router does not say (an older one).
fn keep_alive_within(
    probe: &ExternalProbe,
    ours: Duration,
    runs: &mut [RunSpec],
) -> Option<String> {
    let theirs = probe.heartbeat_timeout()?;
    let mut kept = false;
    for every in runs.iter_mut().filter_map(|spec| spec.scenario.keepalive.as_mut()) {
        *every = theirs / 3;
        kept = true;
    }
    (kept && ours != theirs).then(|| {
        format!(
            "a2a-bench: the router's heartbeat timeout is {} s, not --heartbeat-timeout's {} s: \
             the agents send heartbeats within the router's",
            theirs.as_secs_f64(),
            ours.as_secs_f64()
        )
    })
}

/// The grid's report, before its thresholds and baseline are judged.
fn report_of(
    cfg: &BenchConfig,
    provenance: &report::Provenance,
    results: Vec<RunResult>,
    searches: Searches,
    router_label: String,
    stalls: &[crate::host::Stalls],
) -> Report {
    let placement = PlacementInfo { router: router_label, plan: cfg.plan.clone() };
    let config = cfg.report_config.clone();
    let mut report = Report::of_runs(results, config, placement, stalls, provenance);
    report.rate_search = searches.rates;
    report.agent_search = searches.agents;
    report.worker = cfg.worker.as_ref().map(|w| w.info());
    report
}

/// What can fail before the runs fails now: the output paths, the `--hlog` folder, the
/// baseline (returned with its file name), an external target that does not answer. Then the
/// warnings are said and an embedded router's cores shared out.
fn preflight(cfg: &BenchConfig) -> anyhow::Result<Option<(String, serde_json::Value)>> {
    report::json::check_writable(cfg.output(), "--output")?;
    for (path, flag) in [(&cfg.csv, "--csv"), (&cfg.html, "--html")] {
        if let Some(p) = path {
            report::json::check_writable(p, flag)?;
        }
    }
    if let Some(dir) = &cfg.hlog {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("--hlog: cannot create {}: {e}", dir.display()))?;
    }
    let baseline = match &cfg.baseline {
        Some(path) => Some((path.display().to_string(), report::baseline::load(path)?)),
        None => None,
    };
    check_descriptors(cfg)?;
    if let Target::External { addr, .. } = &cfg.target {
        crate::loadgen::check_reachable(*addr, cfg.protocol).map_err(anyhow::Error::msg)?;
    }
    for w in cfg.warnings() {
        eprintln!("{w}");
    }
    if let Target::Embedded { .. } = cfg.target {
        crate::placement::share_cores(&cfg.plan.shared_cores());
    }
    Ok(baseline)
}

/// Raises the open-file limit for the largest run's connections, and refuses before anything
/// runs a grid whose connections cannot fit in it (rather than failing a run part way). A
/// socket ring (`--agent-io`/`--router-io uring`) keeps up to the limit's worth of sockets in
/// its table, with no descriptor each (`transport::uring`): one ring per agent core and one
/// per shard of the embedded router, among which the connections spread.
fn check_descriptors(cfg: &BenchConfig) -> anyhow::Result<()> {
    let max_agents = cfg.agents.iter().copied().max().unwrap_or(0);
    // A worker opens its slice of the agents' connections.
    let share = cfg.worker.as_ref().map_or(max_agents, |w| max_agents.div_ceil(w.workers));
    let mut conns = u64::from(share.div_ceil(cfg.agents_per_conn));
    if let Some(shared) = cfg.connections {
        conns = conns.min(u64::from(shared));
    }
    // The embedded router is this process: it holds the other end of every connection.
    let router_rings = match &cfg.target {
        Target::Embedded { slots } if cfg.router_flags.router_io == Io::Uring => Some(slots.len()),
        Target::Embedded { .. } => Some(0),
        Target::External { .. } => None,
    };
    let ends = if router_rings.is_some() { 2 } else { 1 };
    // A limit that cannot even be read is no reason to refuse the run.
    let Ok(limit) = super::super::raise_nofile(ends * conns + 4096) else { return Ok(()) };
    let table = limit.min(u64::from(crate::transport::uring::FIXED_FILES_MAX));
    let plain = |rings: usize| conns.saturating_sub(rings as u64 * table);
    let agent_rings = if cfg.io == Io::Uring { cfg.plan.agents.len() } else { 0 };
    let need = plain(agent_rings) + router_rings.map_or(0, plain);
    if limit < need + 256 {
        let whose =
            if ends == 2 { " (both ends: the embedded router is this process)" } else { "" };
        bail!(
            "--agents {max_agents} at --agents-per-conn {} needs {need} open files{whose} beyond \
             what its socket rings hold, but this process may open {limit} and cannot raise its \
             limit (ulimit -n; raising the hard limit needs CAP_SYS_RESOURCE): lower --agents, \
             raise --agents-per-conn, or spread the agents over `a2a-bench worker` processes \
             against a router of several shards (benches/many_conns.sh)",
            cfg.agents_per_conn
        );
    }
    Ok(())
}

/// The embedded router, started on its cores, or the external target's address; and how the
/// report names it.
fn start_target(cfg: &BenchConfig) -> anyhow::Result<(Option<RouterHandle>, SocketAddr, String)> {
    Ok(match &cfg.target {
        Target::Embedded { slots } => {
            let mut rc = RouterConfig::new("127.0.0.1:0".parse()?, slots.clone());
            rc.shard = cfg.router_flags.shard_config(cfg.compression)?;
            rc.spin_before_park = cfg.router_flags.spin();
            rc.io = cfg.router_flags.router_io;
            rc.poll = cfg.router_flags.poll;
            let handle = Router::start(rc).context("starting the embedded router")?;
            let addr = handle.local_addr();
            (Some(handle), addr, "embedded glommio router".to_string())
        }
        Target::External { url, addr } => (None, *addr, url.clone()),
    })
}

/// The line that says what is about to run, and the table's header.
fn announce(out: &mut impl Write, cfg: &BenchConfig, runs: &[RunSpec], router_label: &str) {
    let what = match &cfg.search {
        Some(s) if s.over == Over::Rate => format!(
            "the highest rate holding '{}' for {} scenarios",
            s.slo_text,
            runs.len() / cfg.repeat as usize
        ),
        Some(s) => format!(
            "the most agents holding '{}' for {} scenarios",
            s.slo_text,
            runs.len() / cfg.repeat as usize / cfg.agents.len().max(1)
        ),
        None => format!("{} runs{}", runs.len(), expected_time(runs)),
    };
    // `a2a-bench http`'s texts and tool arguments, where a file gave them.
    let files: String = cfg
        .report_config
        .http
        .iter()
        .flat_map(|h| {
            [("texts", &h.text_file), ("tool arguments", &h.args_file)].into_iter().filter_map(
                |(what, f)| {
                    let f = f.as_ref()?;
                    Some(format!(
                        "; {what} from {} ({} of them, mean {:.0} B, largest {} B)",
                        f.path, f.texts, f.bytes_mean, f.bytes_max
                    ))
                },
            )
        })
        .collect::<String>()
        + &match cfg.report_config.http.as_ref().and_then(|h| h.compression.as_deref()) {
            Some("answers") => "; answers asked for gzipped".to_string(),
            Some(how) => format!("; bodies compressed ({how}), answers asked for gzipped"),
            None => String::new(),
        };
    let _ = writeln!(
        out,
        "a2a-bench {}: {what} against the {router_label} over {} ({} protocol); {}{files}",
        env!("CARGO_PKG_VERSION"),
        cfg.transport,
        cfg.protocol,
        describe_plan(&cfg.plan)
    );
    let _ = report::text::header(out);
}

/// How long the runs take, as far as their flags say: warm-ups and measured windows, and in
/// count mode at a fixed rate the time its requests take at that rate (closed-loop counts run
/// as fast as they can: then a lower bound). ` (about 2.5 min)`; empty for a grid of seconds.
pub(in crate::cli) fn expected_time(runs: &[RunSpec]) -> String {
    let mut secs = 0.0;
    let mut bound = false;
    for r in runs {
        let sc = &r.scenario;
        secs += sc.warmup.as_secs_f64();
        secs += match (sc.stop, sc.effective_pacing()) {
            (Stop::Duration(d), _) => d.as_secs_f64(),
            (Stop::Count { per_agent }, Pacing::Open { rate, .. }) if rate > 0.0 => {
                per_agent as f64 * f64::from(sc.agents) / rate
            }
            (Stop::Count { .. }, _) => {
                bound = true;
                0.0
            }
        };
    }
    let words = if secs < 60.0 {
        return String::new();
    } else if secs < 3600.0 {
        format!("{:.1} min", secs / 60.0)
    } else if secs < 2.0 * 86400.0 {
        format!("{:.1} h", secs / 3600.0)
    } else {
        format!("{:.1} days", secs / 86400.0)
    };
    format!(" ({} {words} by their flags)", if bound { "at least" } else { "about" })
}

/// A bar over the runs, or a spinner while rates are searched (their count is not known).
fn progress_bar(search: bool, runs: usize) -> indicatif::ProgressBar {
    if search {
        let p = indicatif::ProgressBar::new_spinner();
        p.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        p.enable_steady_tick(Duration::from_millis(200));
        p
    } else {
        let p = indicatif::ProgressBar::new(runs as u64);
        p.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} runs, {elapsed} elapsed, about {eta} left · {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        p
    }
}

/// Every run of the grid (or one search per scenario), until all ran, Ctrl-C, or a run
/// that could not start (its reason, last).
fn run_grid(
    session: &mut Session<'_>,
    runs: &[RunSpec],
) -> (Vec<RunResult>, Searches, Option<String>) {
    let mut results = Vec::with_capacity(runs.len());
    let mut searches = Searches::default();
    if let Some(search) = &session.cfg.search {
        let cfg = session.cfg;
        for spec in &cfg.search_starts() {
            if session.interrupt.is_raised() {
                break;
            }
            let found = match search.over {
                Over::Rate => {
                    super::super::search::find_max_rate(session, search, spec, &mut results)
                        .map(|f| searches.rates.push(f))
                }
                Over::Agents { per_agent } => super::super::search::find_max_agents(
                    session,
                    search,
                    spec,
                    per_agent,
                    &|s, n| cfg.with_agents(s, n, per_agent),
                    &mut results,
                )
                .map(|f| searches.agents.push(f)),
            };
            if let Err(why) = found {
                return (results, searches, Some(why));
            }
        }
        return (results, searches, None);
    }
    for spec in runs {
        if session.interrupt.is_raised() {
            break; // Ctrl-C between two runs: the next one does not start
        }
        match session.run(spec) {
            Ok(result) => {
                // A worker's failed run means another worker may be gone: the next runs could
                // not line up, so the part ends here (the merge says why).
                let cut = session.interrupt.is_raised()
                    || (session.cfg.worker.is_some() && !result.success);
                results.push(result);
                session.progress.inc(1);
                if cut {
                    break;
                }
            }
            Err(why) => return (results, searches, Some(why)),
        }
    }
    (results, searches, None)
}

/// Checks the thresholds and the baseline against the report's figures, then writes the
/// report and its CSV and HTML forms.
fn judge_and_write(
    cfg: &BenchConfig,
    mut report: Report,
    baseline: Option<(String, serde_json::Value)>,
) -> anyhow::Result<Report> {
    let value = serde_json::to_value(&report)?;
    let scenarios = report::figures::scenarios(&report::figures::runs(&value));
    report.thresholds = report::threshold::check_all(
        &cfg.thresholds,
        &scenarios,
        &report.rate_search,
        &report.agent_search,
    );
    report.baseline = baseline.map(|(file, b)| report::baseline::diff(&file, &b, &value));
    report::json::write(&report, cfg.output())?;
    let value = serde_json::to_value(&report)?;
    if let Some(csv) = &cfg.csv {
        report::csv::write(&value, csv)?;
    }
    if let Some(html) = &cfg.html {
        report::html::write(&value, html)?;
    }
    Ok(report)
}

/// The summary, rate searches, baseline diff and thresholds, and where the report went.
fn print_report(out: &mut impl Write, cfg: &BenchConfig, report: &Report, runs: usize) {
    let _ = report::text::summary(out, report);
    for s in &report.rate_search {
        let _ = report::text::rate_search(out, s);
    }
    for s in &report.agent_search {
        let _ = report::text::agent_search(out, s);
    }
    if let Some(d) = &report.baseline {
        let _ = report::baseline::print(out, d);
    }
    let _ = report::text::thresholds(out, &report.thresholds);
    if report.interrupted {
        let _ = writeln!(out, "interrupted: {} of {runs} runs reported", report.results.len());
    }
    let _ = writeln!(out, "report written to {}", cfg.output().display());
    for (path, what) in [(&cfg.csv, "CSV"), (&cfg.html, "HTML")] {
        if let Some(p) = path {
            let _ = writeln!(out, "{what} written to {}", p.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(rate: Option<f64>, count: Option<u64>, duration: Option<f64>) -> RunSpec {
        let mut r = crate::report::part::PartSpec::for_tests(4, rate, count, duration);
        r.scenario.warmup = Duration::from_secs(1);
        r
    }

    #[test]
    fn a_run_the_generator_spoiled_is_made_once_more_in_other_ids() {
        // Proves `loadgen::made_again`, which the grid's runs and compare's rounds go through:
        // an attempt whose agent core stood still is made once more, in another block of
        // agent ids, after `say` heard why; a kept attempt, or one that may not be made again
        // (a worker's), is made once.
        let scenario = spec(None, None, Some(1.0)).scenario;
        let mut spoiled = loadgen::Outcome::failed_setup(Vec::new());
        spoiled.setup_failed = false;
        let fine = spoiled.clone();
        spoiled.stalls = vec!["agent core 0 (core 1) stood still for 1.2 s".into()];
        spoiled.failures = spoiled.stalls.clone();
        for (first, again, made) in [(&spoiled, true, 2), (&spoiled, false, 1), (&fine, true, 1)] {
            let mut ids = Vec::new();
            let mut said = None;
            let (_, n, why) = loadgen::made_again(
                &scenario,
                again,
                |w| said = Some(w.to_string()),
                |sc| {
                    ids.push(sc.id_base);
                    let kept = if ids.len() == 1 { first.clone() } else { fine.clone() };
                    (kept, ids.len())
                },
            );
            assert_eq!(n, made, "attempts");
            assert_eq!(why.is_some(), made == 2);
            assert_eq!(said, why);
            if made == 2 {
                assert_eq!(ids[1], loadgen::fresh_id_base(ids[0]));
            }
        }
    }

    #[test]
    fn the_banner_says_how_long_the_flags_make_the_runs() {
        // Proves the estimate: warm-ups and windows in duration mode; in count mode at a fixed
        // rate the requests' time at that rate (4 agents × 1,000,000 at 10/s: 4.6 days); a
        // closed-loop count is a lower bound; under a minute says nothing.
        assert_eq!(expected_time(&[spec(None, None, Some(3.0))]), "");
        let grid: Vec<RunSpec> = (0..30).map(|_| spec(None, None, Some(3.0))).collect();
        assert_eq!(expected_time(&grid), " (about 2.0 min by their flags)");
        let slow = spec(Some(10.0), Some(1_000_000), None);
        assert_eq!(expected_time(&[slow]), " (about 4.6 days by their flags)");
        let mut grid: Vec<RunSpec> = (0..90).map(|_| spec(None, Some(100), None)).collect();
        grid.push(spec(Some(100.0), Some(1000), None));
        assert_eq!(expected_time(&grid), " (at least 2.2 min by their flags)");
    }
}
