use super::*;
use crate::loadgen::Protocol;

#[test]
fn a_row_counts_every_lost_wake_up_of_its_runs_and_says_so() {
    // Proves a router's row in `compare` sums the lost wake-ups of all its runs, the
    // failed ones too (a run that failed may have failed of them), and says the sum; a row
    // without any says nothing and keeps no such key.
    let spec = report::part::PartSpec::for_tests(2, None, Some(10), None);
    let run = |lost: Option<u64>| {
        let mut r = RunResult::new(&spec, &loadgen::Outcome::failed_setup(vec!["x".into()]));
        r.lost_wakeups = lost;
        r
    };
    let m = Medians::of(&[run(Some(2)), run(None), run(Some(5))], None);
    assert_eq!(m.lost_wakeups, 7);
    assert_eq!(
        lost_wakeups_note(m.lost_wakeups),
        ", 7 lost wake-ups (this process's rings slept to their 20 ms timer)"
    );
    let none = Medians::of(&[run(None), run(None)], None);
    assert_eq!((none.lost_wakeups, lost_wakeups_note(0)), (0, String::new()));
    let json = serde_json::to_value(&none).unwrap();
    assert!(json.get("lost_wakeups").is_none(), "{json}");
    assert_eq!(serde_json::to_value(&m).unwrap()["lost_wakeups"], 7);
}

fn row(topology: &str, agents: u32, pacing: &str, ratios: &[(&str, f64)]) -> Row {
    Row {
        topology: topology.into(),
        agents,
        payload_bytes: report::text::DEFAULT_PAYLOAD,
        payload_mix: None,
        pacing: pacing.into(),
        per_router: BTreeMap::new(),
        throughput_ratios: ratios.iter().map(|&(k, r)| (k.to_string(), r)).collect(),
        p99_ratios: BTreeMap::new(),
        cpu_ratios: BTreeMap::new(),
        throughput_ratio_spread: BTreeMap::new(),
        p99_ratio_spread: BTreeMap::new(),
        rounds: 3,
    }
}

/// Four rows, star × 10 closed, star × 10 at a fixed rate, ring × 100 and mesh × 100 closed,
/// with `values` in the ratios `field` picks (throughput ratio 1.0 for `key`).
fn rows_with(
    key: &str,
    field: impl Fn(&mut Row) -> &mut BTreeMap<String, f64>,
    values: [f64; 4],
) -> Vec<Row> {
    let shapes = [
        ("star", 10, "closed w16"),
        ("star", 10, "open 8.7 k/s w16"),
        ("ring", 100, "closed w16"),
        ("mesh", 100, "closed w16"),
    ];
    shapes
        .into_iter()
        .zip(values)
        .map(|((topology, agents, pacing), v)| {
            let mut r = row(topology, agents, pacing, &[(key, 1.0)]);
            field(&mut r).insert(key.to_string(), v);
            r
        })
        .collect()
}

#[test]
fn the_tail_summary_takes_the_closed_loop_rows_median_highest_and_those_above_one() {
    // Proves the p99 summary reads only closed-loop rows, takes their median, names the
    // row where the first router's tail was longest against each other router, and counts
    // the rows where it was longer (above 1.0); a router with no p99 ratio is left out.
    let names: Vec<String> =
        ["glommio", "tokio-per-core", "other"].iter().map(|s| s.to_string()).collect();
    let key = "glommio/tokio-per-core";
    let rows = rows_with(key, |r| &mut r.p99_ratios, [0.6, 3.5, 1.23, 0.9]);
    let summary = closed_loop_tails(&rows, &names);
    assert_eq!(summary.len(), 1, "no p99 ratio for 'other': {summary:?}");
    let s = &summary[key];
    assert_eq!((s.scenarios, s.above_one), (3, 1));
    assert!((s.median - 0.9).abs() < 1e-9, "{s:?}");
    assert_eq!((s.highest, s.highest_scenario.as_str()), (1.23, "ring × 100"));
    assert_eq!(
        tail_lines(&summary),
        ["  glommio / tokio-per-core: median 0.90× over 3 closed-loop scenarios, highest \
          1.23× (ring × 100), above 1.0 in 1"]
    );
    let none = closed_loop_tails(&rows[..2], &names);
    assert!(tail_lines(&none)[0].ends_with("highest 0.60× (star × 10), none above 1.0"));
}

#[test]
fn the_summary_takes_the_closed_loop_rows_median_lowest_and_those_below_one() {
    // Proves the summary reads only closed-loop rows (a fixed rate's ratio is 1.0 by
    // construction), takes the median of an even count as the mean of the middle two, names
    // the lowest row, and counts the rows below 1.0; a router with no ratio is left out.
    let names: Vec<String> = ["glommio", "tokio-shared", "tokio-per-core", "other"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let (shared, per_core) = ("glommio/tokio-shared", "glommio/tokio-per-core");
    let rows = [
        row("star", 10, "closed w16", &[(shared, 2.0), (per_core, 1.5)]),
        row("star", 10, "open 374.3 k/s w16", &[(shared, 0.5), (per_core, 0.5)]),
        row("ring", 100, "closed w16", &[(shared, 1.2), (per_core, 0.9)]),
        row("mesh", 100, "closed w16", &[(shared, 1.6), (per_core, 1.1)]),
        row("line", 10, "closed w16", &[(shared, 1.4), (per_core, 0.95)]),
    ];
    let summary = closed_loop_summary(&rows, &names);
    assert_eq!(summary.len(), 2, "no ratio for 'other': {summary:?}");
    let s = &summary[shared];
    assert_eq!((s.scenarios, s.below_one), (4, 0));
    assert!((s.median - 1.5).abs() < 1e-9, "{s:?}");
    assert_eq!((s.lowest, s.lowest_scenario.as_str()), (1.2, "ring × 100"));
    let p = &summary[per_core];
    assert_eq!((p.scenarios, p.below_one), (4, 2));
    assert!((p.median - 1.025).abs() < 1e-9, "{p:?}");
    assert_eq!((p.lowest, p.lowest_scenario.as_str()), (0.9, "ring × 100"));
    let lines = summary_lines(&summary);
    assert_eq!(
        lines[0],
        "  glommio / tokio-per-core: median 1.02× over 4 closed-loop scenarios, lowest 0.90× \
         (ring × 100), below 1.0 in 2"
    );
    assert!(lines[1].ends_with("(ring × 100), none below 1.0"), "{}", lines[1]);
}

fn medians(throughput: f64, bottleneck: &str) -> Medians {
    Medians {
        throughput,
        throughput_min: throughput,
        throughput_max: throughput,
        p50_ms: 0.1,
        p99_ms: 0.2,
        sent_per_sec: throughput,
        ok_runs: 3,
        runs: 3,
        bottleneck: bottleneck.into(),
        router_cpu_ns_per_msg: Some(100.0),
        router_idle_share: Some(0.0),
        router_watch_share: None,
        cross_shard_share: None,
        router_msgs_per_frame: None,
        lost_wakeups: 0,
        failure: None,
        timed_runs: 3,
        sizes: Vec::new(),
    }
}

#[test]
fn a_payload_mix_row_gives_each_size_s_medians_under_each_router() {
    // Proves the sizes under a router's line in a `--payload-mix` scenario: each size's
    // median p50 and p99 over the successful runs that timed it, `-` where none did; no
    // line without a mix.
    let size = |bytes: usize, p50: f64, count: u64| report::SizeResult {
        bytes,
        weight: 1,
        share_asked: 0.5,
        sent: count,
        share_sent: 0.5,
        errors: 0,
        round_trips_per_sec: count as f64,
        latency: crate::metrics::LatencySummary {
            count,
            p50_ms: p50,
            p99_ms: 2.0 * p50,
            ..Default::default()
        },
    };
    let spec = report::part::PartSpec::for_tests(2, None, Some(10), None);
    let mut runs = Vec::new();
    for p50 in [0.3, 0.1, 0.2] {
        let mut r = RunResult::new(&spec, &loadgen::Outcome::failed_setup(Vec::new()));
        r.success = true;
        r.payload_mix = vec![size(64, p50, 10), size(1 << 20, 10.0 * p50, 0)];
        runs.push(r);
    }
    let m = Medians::of(&runs, None);
    assert_eq!(m.sizes.len(), 2);
    assert_eq!((m.sizes[0].p50_ms, m.sizes[0].p99_ms, m.sizes[0].timed_runs), (0.2, 0.4, 3));
    let line = sizes_line(&m.sizes).unwrap();
    assert!(line.ends_with("by size (ms): 64B p50 0.200 p99 0.400 · 1M p50 - p99 -"), "{line}");
    assert_eq!(sizes_line(&medians(1.0, "router").sizes), None);
}

#[test]
fn a_closed_loop_ratio_with_the_agents_saturated_under_both_routers_says_so() {
    // Proves a closed-loop throughput ratio says when the agents' core was saturated under
    // both routers (the ratio is then the whole set-up's, and the router CPU per message
    // tells the routers apart), and says nothing when either router alone was the limit,
    // or at a fixed rate (where the p99 line has its own note).
    let names = vec!["glommio".to_string(), "tokio-per-core".to_string()];
    let line = |first: &str, other: &str, open: bool| {
        let per_router: BTreeMap<String, Medians> =
            [(names[0].clone(), medians(4.0e6, first)), (names[1].clone(), medians(2.0e6, other))]
                .into();
        let per: BTreeMap<String, Vec<RunResult>> =
            names.iter().map(|n| (n.clone(), Vec::new())).collect();
        Ratios::of(&names, &per, &per_router).text(&names, &names[1], &per_router, open, 3)
    };
    let note = "the agents' core saturated with both";
    for (first, other) in [("both", "generator"), ("generator", "generator"), ("both", "both")] {
        let text = line(first, other, false);
        assert!(text.contains("glommio is 2.00× this") && text.contains(note), "{text}");
    }
    for (first, other) in [("router", "both"), ("both", "router"), ("neither", "neither")] {
        let text = line(first, other, false);
        assert!(text.contains("2.00×") && !text.contains(note), "{first}/{other}: {text}");
    }
    assert!(!line("both", "both", true).contains(note));
}

#[test]
fn the_cpu_summary_sets_each_routers_cpu_per_message_against_the_firsts_in_closed_loop() {
    // Proves a row's CPU ratio is the first router's median CPU per routed message over the
    // other's, only where both report one, and that the summary reads only closed-loop rows,
    // names the row where the first router used the most against each other router, and
    // counts the rows where it used more (above 1.0).
    let names: Vec<String> =
        ["glommio", "tokio-per-core", "other"].iter().map(|s| s.to_string()).collect();
    let mut per_router: BTreeMap<String, Medians> = [
        ("glommio", medians(4.0e6, "router")),
        ("tokio-per-core", medians(4.0e6, "router")),
        ("other", medians(4.0e6, "router")),
    ]
    .into_iter()
    .map(|(n, m)| (n.to_string(), m))
    .collect();
    per_router.get_mut("glommio").unwrap().router_cpu_ns_per_msg = Some(150.0);
    per_router.get_mut("other").unwrap().router_cpu_ns_per_msg = None;
    let ratios = scenario::cpu_ratios(&names, &per_router);
    assert_eq!(ratios.len(), 1, "no CPU figure for 'other': {ratios:?}");
    let key = "glommio/tokio-per-core";
    assert!((ratios[key] - 1.5).abs() < 1e-9, "{ratios:?}");

    let rows = rows_with(key, |r| &mut r.cpu_ratios, [0.8, 4.0, 1.05, 1.12]);
    let summary = closed_loop_cpu(&rows, &names);
    let s = &summary[key];
    assert_eq!((s.scenarios, s.above_one), (3, 2));
    assert!((s.median - 1.05).abs() < 1e-9, "{s:?}");
    assert_eq!((s.highest, s.highest_scenario.as_str()), (1.12, "mesh × 100"));
    assert!(closed_loop_cpu(&rows[1..2], &names).is_empty(), "a fixed rate's row alone");
}

#[test]
fn a_router_whose_runs_all_failed_says_why_and_gets_no_ratio() {
    // Proves a router whose every run failed shows `-` for its latencies and, under its line,
    // why the first run failed; and that no ratio is drawn against it, either way round
    // (before, the reference's failed runs read "glommio is 0.00× this").
    let names = vec!["glommio".to_string(), "tokio-shared".to_string()];
    let spec = report::part::PartSpec::for_tests(2, None, Some(10), None);
    let failed = RunResult::new(
        &spec,
        &loadgen::Outcome::failed_setup(vec!["registering agent 0: resource_exhausted".into()]),
    );
    let down = Medians::of(&[failed.clone(), failed], None);
    assert_eq!((down.ok_runs, down.timed_runs), (0, 0));
    let line = router_line("glommio", &down, String::new());
    assert!(line.contains("p50 - ms  p99 - ms  0/2 ok"), "{line}");
    assert!(
        line.ends_with("\n    glommio failed: registering agent 0: resource_exhausted"),
        "{line}"
    );
    for (first, other) in
        [(down.clone(), medians(2.0e6, "router")), (medians(2.0e6, "router"), down)]
    {
        let per_router: BTreeMap<String, Medians> =
            [(names[0].clone(), first), (names[1].clone(), other)].into();
        let per: BTreeMap<String, Vec<RunResult>> =
            names.iter().map(|n| (n.clone(), Vec::new())).collect();
        let ratios = Ratios::of(&names, &per, &per_router);
        let text = ratios.text(&names, &names[1], &per_router, false, 2);
        assert!(!text.contains('×'), "{text}");
        assert!(ratios.throughput.is_empty() && ratios.p99.is_empty());
    }
    assert!(medians(1.0, "router").failure.is_none());
}

#[test]
fn open_loop_rows_take_tokio_shared_s_rate_else_the_slowest_router_that_completed() {
    // Proves `--open-at`'s base: tokio-shared's closed-loop rate where it completed runs; else
    // the slowest router's that did (before, without tokio-shared no open-loop row ran, and
    // nothing said so); none when no router completed a run.
    let m = |sent: f64, ok: usize| Medians {
        sent_per_sec: sent,
        ok_runs: ok,
        ..medians(1.0, "router")
    };
    let of = |list: &[(&str, Medians)]| {
        let per: BTreeMap<String, Medians> =
            list.iter().map(|(n, m)| (n.to_string(), m.clone())).collect();
        open_loop_base(&per)
    };
    let shared = ("tokio-shared", m(300.0, 3));
    let (fast, slow) = (("glommio", m(900.0, 3)), ("tokio-per-core", m(500.0, 3)));
    assert_eq!(
        of(&[fast.clone(), shared.clone(), slow.clone()]),
        Some(("tokio-shared".into(), 300.0))
    );
    assert_eq!(of(&[fast.clone(), slow.clone()]), Some(("tokio-per-core".into(), 500.0)));
    let failed = ("tokio-per-core", m(0.0, 0));
    assert_eq!(
        of(&[fast.clone(), ("tokio-shared", m(0.0, 0)), failed.clone()]),
        Some(("glommio".into(), 900.0))
    );
    assert_eq!(of(&[("glommio", m(0.0, 0)), failed]), None);
}

#[test]
fn a_ratio_s_spread_counts_only_the_rounds_both_routers_ran() {
    // Proves a spread says how many rounds it rests on: those where both routers' runs
    // succeeded. A router that stopped answering after its first round had read "(0.91–0.91
    // over 3 rounds)" where one round held a ratio.
    let names = vec!["glommio".to_string(), "mine".to_string()];
    let spec = report::part::PartSpec::for_tests(2, None, Some(10), None);
    let run = |ok: bool, throughput: f64| {
        let mut r = RunResult::new(&spec, &loadgen::Outcome::failed_setup(vec!["x".into()]));
        (r.success, r.throughput_msg_per_sec) = (ok, throughput);
        r
    };
    let text = |theirs: [bool; 3]| {
        let ours = vec![run(true, 2.0e6), run(true, 2.2e6), run(true, 2.4e6)];
        let other: Vec<RunResult> = theirs.iter().map(|&ok| run(ok, 1.0e6)).collect();
        let per: BTreeMap<String, Vec<RunResult>> =
            [(names[0].clone(), ours), (names[1].clone(), other)].into();
        let per_router: BTreeMap<String, Medians> =
            per.iter().map(|(n, r)| (n.clone(), Medians::of(r, None))).collect();
        Ratios::of(&names, &per, &per_router).text(&names, &names[1], &per_router, false, 3)
    };
    assert_eq!(text([true, true, true]), "   glommio is 2.20× this (2.00–2.40 over 3 rounds)");
    assert_eq!(
        text([true, false, true]),
        "   glommio is 2.20× this (2.00–2.40 over 2 of 3 rounds)"
    );
    assert_eq!(text([true, false, false]), "   glommio is 2.20× this (one of 3 rounds: no spread)");
}

#[test]
fn routers_are_named_kinds_compare_starts_or_urls_of_running_ones() {
    // Proves `--routers`: a kind compare starts, or a running router's URL, named by NAME= or
    // by its host:port, reached over its scheme; and the one-line refusals of a list that
    // cannot be run.
    use crate::transport::Transport;
    let (entries, names) = parse_routers(
        "glommio, mine=tcp://127.0.0.1:7000, ws://127.0.0.1:7001/a2a",
        Protocol::Native,
    )
    .unwrap();
    assert_eq!(names, ["glommio", "mine", "127.0.0.1:7001"]);
    assert_eq!(entries[0], Entry::Own(RouterKind::Glommio));
    let external = |url: &str, port: u16, transport| Entry::External {
        url: url.into(),
        addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        transport,
    };
    assert_eq!(entries[1], external("tcp://127.0.0.1:7000", 7000, Transport::Tcp));
    assert_eq!(entries[2], external("ws://127.0.0.1:7001/a2a", 7001, Transport::Ws));
    for (list, protocol, why) in [
        ("glommio", Protocol::Native, "at least two"),
        ("glommio,tcp://127.0.0.1:1,tcp://127.0.0.1:1", Protocol::Native, "named twice"),
        ("glommio,x=tokio-shared", Protocol::Native, "NAME= goes before"),
        ("glommio,nats", Protocol::Native, "unknown router 'nats'"),
        ("glommio,tokio-per-core=tcp://127.0.0.1:1", Protocol::Native, "a router compare starts"),
        ("glommio,=tcp://127.0.0.1:1", Protocol::Native, "the name before = is empty"),
        ("glommio,a b=tcp://127.0.0.1:1", Protocol::Native, "no '/' or spaces"),
        ("glommio,udp://127.0.0.1:1", Protocol::Native, "tcp:// or ws://"),
        ("glommio,tcp://127.0.0.1:1", Protocol::Json, "give a ws:// URL"),
    ] {
        let e = parse_routers(list, protocol).unwrap_err().to_string();
        assert!(e.starts_with("--routers: ") && e.contains(why), "{list}: {e}");
    }
}

#[test]
fn a_row_names_its_payload_where_it_is_not_the_default() {
    // Proves the summaries' scenario names tell sizes apart ("lowest 0.64× (ring × 100, 64K)").
    let mut r = row("ring", 100, "closed w16 64K", &[]);
    assert_eq!(r.scenario(), "ring × 100");
    r.payload_bytes = 64 << 10;
    assert_eq!(r.scenario(), "ring × 100, 64K");
}
