//! Capacity answers and the outputs people keep: thresholds and their exit code, a baseline
//! diff, HdrHistogram logs read back, the time series, CSV and HTML, a saved report rendered
//! again, the rate and agent searches, and the router's Prometheus endpoint.

use crate::support::Reap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use a2a_bench::client::Client;
use a2a_bench::report::hlog;
use serde_json::Value;

fn dir(name: &str) -> crate::support::Scratch {
    crate::support::scratch(&format!("capacity-{name}"))
}

fn bench(args: &[&str]) -> (Option<i32>, String, String) {
    let out = crate::support::run_bin(args, Duration::from_secs(120));
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

fn json(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A small grid on the embedded router: 4 agents in a ring, 2 repeats of 0.5 s.
const GRID: [&str; 12] = [
    "--agents",
    "4",
    "--topologies",
    "ring",
    "--repeat",
    "2",
    "--duration",
    "0.5",
    "--warmup",
    "0.2",
    "--interval",
    "0.1",
];

#[test]
fn thresholds_set_the_exit_code_and_every_export_reads_back_as_the_report() {
    // Proves thresholds that hold exit 0 and one that fails exits 99 with a checklist; the
    // HdrHistogram logs add up to each run's histogram; the time series adds up to the run;
    // CSV has a row per run; `a2a-bench report` renders the saved JSON to the same HTML; and a
    // baseline diff names the scenario with its ratios.
    let d = dir("exports");
    let p = |f: &str| d.join(f).to_str().unwrap().to_string();
    let (a, hl, csv, html) = (p("a.json"), p("hlog"), p("a.csv"), p("a.html"));
    let mut args: Vec<&str> = GRID.to_vec();
    args.extend(["--output", &a, "--hlog", &hl, "--csv", &csv, "--html", &html]);
    args.extend(["--threshold", "errors==0", "--threshold", "p99<10s"]);
    let (code, out, err) = bench(&args);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("thresholds: 2 of 2 held"), "{out}");
    let report = json(std::path::Path::new(&a));
    assert_eq!(report["thresholds"].as_array().unwrap().len(), 2);
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);

    // Each run's hlog adds up to its round-trip histogram; the series to its counts.
    let mut logs: Vec<PathBuf> =
        std::fs::read_dir(&hl).unwrap().map(|e| e.unwrap().path()).collect();
    logs.sort();
    assert_eq!(logs.len(), results.len(), "{logs:?}");
    for (log, r) in logs.iter().zip(results) {
        let intervals = hlog::read(log).unwrap();
        let series = r["time_series"].as_array().unwrap();
        assert_eq!(intervals.len(), series.len(), "one histogram per interval");
        assert!(series.len() >= 5, "0.5 s in 0.1 s intervals: {}", series.len());
        let mut sum = intervals[0].histogram.clone();
        for iv in &intervals[1..] {
            sum.add(&iv.histogram).unwrap();
        }
        let rtt = &r["latency"]["rtt"];
        assert_eq!(sum.len(), rtt["count"].as_u64().unwrap());
        for (q, key) in [(0.5, "p50_ms"), (0.99, "p99_ms"), (0.999, "p999_ms")] {
            let ms = sum.value_at_quantile(q) as f64 / 1e6;
            assert_eq!(ms, rtt[key].as_f64().unwrap(), "{key} of {}", log.display());
        }
        assert_eq!(sum.max() as f64 / 1e6, rtt["max_ms"].as_f64().unwrap());
        let trips: u64 = series.iter().map(|s| s["round_trips"].as_u64().unwrap()).sum();
        assert_eq!(trips, rtt["count"].as_u64().unwrap());
        assert!(series.iter().all(|s| s["agent_cpu"].as_array().unwrap().len() == 1));
    }

    // CSV: a row per run; the saved report renders to the very same page.
    assert_eq!(csv::Reader::from_path(&csv).unwrap().records().count(), results.len());
    let again = p("again.html");
    let (code, out, err) = bench(&["report", &a, "--html", &again]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert_eq!(page, std::fs::read_to_string(&again).unwrap());
    assert!(page.contains("<svg") && page.contains("Round-trip latency by percentile"));
    assert!(page.contains("Time series") && page.contains("p99&lt;10s"));
    assert!(!page.contains("http://") && !page.contains("https://") || page.contains("www.w3.org"));

    // A failing threshold exits 99; the baseline diff covers the scenario.
    let b = p("b.json");
    let mut args: Vec<&str> = GRID.to_vec();
    args.extend(["--output", &b, "--baseline", &a, "--threshold", "throughput>1G"]);
    let (code, out, err) = bench(&args);
    assert_eq!(code, Some(99), "{out}\n{err}");
    assert!(out.contains("✗ throughput>1G"), "{out}");
    assert!(err.contains("exit code 99"), "{err}");
    assert!(out.contains("against the baseline"), "{out}");
    let diff = &json(std::path::Path::new(&b))["baseline"];
    let row = &diff["rows"][0];
    assert_eq!(row["scenario"], "ring × 4 closed w16", "{diff}");
    assert!(row["throughput"]["ratio"].as_f64().unwrap() > 0.0);
    let verdicts = ["higher", "lower", "within_noise"];
    assert!(verdicts.contains(&row["throughput"]["verdict"].as_str().unwrap()), "{row}");
}

#[test]
fn mistakes_in_the_capacity_flags_get_one_line_naming_the_flag() {
    // Proves a bad threshold, SLO or baseline is refused before any run, naming the flag.
    let d = dir("mistakes");
    let not_json = d.join("x.json");
    std::fs::write(&not_json, "nope").unwrap();
    for (args, flag) in [
        (vec!["--threshold", "p98<5ms"], "--threshold"),
        (vec!["--find-max-rate", "--slo", "p99 fast"], "--slo"),
        (vec!["--find-max-rate"], "--slo"),
        (vec!["--baseline", not_json.to_str().unwrap()], "--baseline"),
        (vec!["compare", "--threshold", "p99<5ms"], "--threshold"),
        (vec!["--threshold", "max_rate>5k"], "--find-max-rate"),
        (vec!["--threshold", "p99{a2a:stream}<5ms"], "a2a-bench http's"),
        (vec!["--interval", "0.001"], "--interval"),
        (vec!["--interval", "0", "--hlog", "/tmp"], "--hlog"),
        (vec!["--find-max-rate", "--slo", "p99<1ms", "--threshold", "p99<1ms"], "max_rate"),
        (vec!["--find-max-agents", "0", "--slo", "p99<1ms"], "--find-max-agents"),
        (vec!["--find-max-agents", "fast", "--slo", "p99<1ms"], "--find-max-agents"),
        (vec!["--find-max-agents", "10"], "--slo"),
        (vec!["--find-max-agents", "10", "--slo", "p99<1ms", "--rate", "5"], "--rate"),
        (vec!["--find-max-agents", "10", "--slo", "p99<1ms", "--find-max-rate"], "--find-max-rate"),
        (vec!["--slo", "p99<1ms"], "--find-max-agents"),
        (vec!["--threshold", "max_agents>5"], "--find-max-agents"),
        (
            vec!["--find-max-agents", "10", "--slo", "p99<1ms", "--threshold", "max_rate>5"],
            "max_agents",
        ),
        (vec!["--find-max-rate", "--slo", "p99<1ms", "--threshold", "max_agents>5"], "max_rate"),
        (
            vec!["compare", "--find-max-agents", "10", "--slo", "p99<1ms", "--open-at", "0.5"],
            "--open-at",
        ),
        (vec!["compare", "--find-max-rate", "--slo", "p99<1ms", "--scaling", "1"], "--scaling"),
        (vec!["report", not_json.to_str().unwrap(), "--html", "/tmp/x.html"], "not JSON"),
    ] {
        let (code, out, err) = bench(&args);
        assert_ne!(code, Some(0), "{args:?}: {out}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(flag), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn a_rate_search_against_the_embedded_router_converges_within_its_bounds() {
    // Proves --find-max-rate reports the highest rate that held and the lowest that failed,
    // within the precision (or stops at its cap), with each step confirmed by a repeat.
    let d = dir("search");
    let out_path = d.join("s.json");
    let (code, out, err) = bench(&[
        "--agents",
        "4",
        "--topologies",
        "ring",
        "--duration",
        "0.4",
        "--warmup",
        "0.1",
        "--find-max-rate",
        "--slo",
        "p99<250ms,errors==0",
        "--search-precision",
        "0.2",
        // A send counts as late (the run as not sustained) past 20 ms, not the default 1 ms:
        // on a loaded two-core machine scheduling alone makes a few % of sends 1 ms late even
        // at 300 requests/s, and then no rate holds. The search is under test, not the host.
        "--late-after-ms",
        "20",
        "--threshold",
        "max_rate>1",
        "--output",
        out_path.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let report = json(&out_path);
    let s = &report["rate_search"][0];
    let steps = s["steps"].as_array().unwrap();
    assert!(!steps.is_empty() && steps.len() <= 16, "{s}");
    for st in steps {
        let (runs, held) = (st["runs"].as_u64().unwrap(), st["runs_held"].as_u64().unwrap());
        assert!((2..=3).contains(&runs), "{st}");
        assert_eq!(st["held"].as_bool().unwrap(), held >= 2, "{st}");
        assert_eq!(st["result_indexes"].as_array().unwrap().len() as u64, runs);
    }
    let asked = |held: bool| -> Vec<f64> {
        steps
            .iter()
            .filter(|st| st["held"].as_bool() == Some(held))
            .map(|st| st["asked_rate_per_sec"].as_f64().unwrap())
            .collect()
    };
    let max = s["max_rate_per_sec"].as_f64();
    let fail = s["first_failing_rate_per_sec"].as_f64();
    assert_eq!(max, asked(true).into_iter().reduce(f64::max), "{s}");
    assert_eq!(fail, asked(false).into_iter().reduce(f64::min), "{s}");
    let peak = s["closed_loop_rate_per_sec"].as_f64().unwrap();
    match (s["ended"].as_str().unwrap(), max, fail) {
        ("converged", Some(m), Some(f)) => assert!(m < f && (f - m) / f <= 0.2, "{s}"),
        ("cap", Some(m), None) => assert!(m <= 1.5 * peak, "{s}"),
        ("nothing_held", None, Some(_)) => {}
        other => panic!("unexpected end {other:?}: {s}"),
    }
    assert!(out.contains("rate search ring × 4 w16"), "{out}");
    assert!(out.contains("✓ max_rate>1"), "the search's result is a threshold too: {out}");
    assert_eq!(
        report["results"].as_array().unwrap().len(),
        1 + steps.iter().map(|st| st["runs"].as_u64().unwrap() as usize).sum::<usize>()
    );
}

/// An agent search on the embedded router from 2 agents at 500 requests/s each, held when no
/// error: the router's `--max-connections` (the value to add) is the answer, exactly. Sends
/// count as late past 20 ms, not 1 ms: the search is under test, not the loaded host.
const SEATED_SEARCH: [&str; 17] = [
    "--agents",
    "2",
    "--topologies",
    "ring",
    "--duration",
    "0.3",
    "--warmup",
    "0.1",
    "--find-max-agents",
    "500",
    "--slo",
    "errors==0",
    "--late-after-ms",
    "20",
    "--stall-probe",
    "0",
    "--max-connections",
];

#[test]
fn an_agent_search_finds_the_most_agents_the_router_seats() {
    // Proves --find-max-agents against a router that takes 8 connections (one agent each):
    // from 2 agents it doubles while the SLO holds, a count the router refuses is a failed step
    // that says why, and it bisects down to 8 held and 9 failed; each step's asked rate is its
    // count times the per-agent rate, each run it made is in the report, and max_agents is a
    // threshold. Counts the router refuses are its limit, not the host's: the answer is exact.
    let d = dir("agents");
    let out_path = d.join("s.json");
    let html = d.join("s.html");
    let (o, h) = (out_path.to_str().unwrap(), html.to_str().unwrap());
    let mut args = SEATED_SEARCH.to_vec();
    args.extend(["8", "--threshold", "max_agents>=8", "--output", o, "--html", h]);
    let (code, out, err) = bench(&args);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let report = json(&out_path);
    let s = &report["agent_search"][0];
    assert_eq!(s["scenario"], "ring w16", "{s}");
    assert_eq!(s["counts"], "agents");
    assert_eq!(
        (s["max_agents"].as_u64(), s["first_failing_agents"].as_u64()),
        (Some(8), Some(9)),
        "{s}"
    );
    assert_eq!(s["ended"], "converged");
    assert_eq!(s["max_rate_per_sec"].as_f64(), Some(4000.0));
    let steps = s["steps"].as_array().unwrap();
    let counts: Vec<u64> = steps.iter().map(|st| st["agents"].as_u64().unwrap()).collect();
    assert_eq!(counts, [2, 4, 8, 16, 12, 10, 9], "{s}");
    let mut runs = 0;
    for st in steps {
        let n = st["agents"].as_u64().unwrap();
        assert_eq!(st["asked_rate_per_sec"].as_f64(), Some(n as f64 * 500.0), "{st}");
        assert_eq!(st["held"].as_bool(), Some(n <= 8), "{st}");
        if n <= 8 {
            assert!((2..=3).contains(&st["runs"].as_u64().unwrap()), "{st}");
            assert!(st["could_not_start"].is_null(), "{st}");
        } else {
            let why = st["could_not_start"].as_str().unwrap_or_else(|| panic!("{st}"));
            assert!(why.contains("--max-connections"), "{why}");
        }
        runs += st["runs"].as_u64().unwrap() as usize;
        assert_eq!(
            st["result_indexes"].as_array().unwrap().len(),
            st["runs"].as_u64().unwrap() as usize
        );
    }
    assert_eq!(report["results"].as_array().unwrap().len(), runs);
    assert!(report["rate_search"].as_array().unwrap().is_empty());
    assert!(
        out.contains("agent search ring w16 at 500 req/s per agent for 'errors==0': holds up to 8 agents, 4.0 k req/s in all (fails at 9;"),
        "{out}"
    );
    assert!(out.contains("step 4: 16 agents asking 8.0 k req/s → could not start"), "{out}");
    assert!(out.contains("✓ max_agents>=8"), "{out}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("Most agents (clients) holding the SLO"), "the page has the search");
    assert!(page.contains("<td>8 agents</td><td>9</td><td>7</td>"), "its row");
}

#[test]
fn compare_searches_each_router_round_by_round_and_gives_the_medians_ratios() {
    // Proves `compare --find-max-agents`: each router searched in each round (two routers,
    // two rounds, the routers taking turns), every router seating exactly the 8 connections
    // --max-connections allows, so every answer is 8 and every ratio 1.00; the JSON keeps
    // each router's searches and runs, the summary line says the medians and the ratio.
    let d = dir("compare-search");
    let (out_path, csv, html) = (d.join("c.json"), d.join("c.csv"), d.join("c.html"));
    let mut args = vec!["compare", "--routers", "glommio,tokio-per-core", "--repeat", "2"];
    args.extend(SEATED_SEARCH);
    args.extend(["8", "--output", out_path.to_str().unwrap()]);
    args.extend(["--csv", csv.to_str().unwrap(), "--html", html.to_str().unwrap()]);
    let (code, out, err) = bench(&args);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let c = json(&out_path);
    assert_eq!(
        (c["searched"].as_str(), c["reference"].as_str()),
        (Some("agents"), Some("glommio"))
    );
    assert_eq!(c["agent_rate_per_sec"].as_f64(), Some(500.0));
    let row = &c["rows"][0];
    assert_eq!(row["scenario"], "ring w16", "{row}");
    for router in ["glommio", "tokio-per-core"] {
        let s = &row["per_router"][router];
        assert_eq!((s["median"].as_f64(), s["n"].as_u64()), (Some(8.0), Some(2)), "{router}: {s}");
        let searches = c["reports"][router]["agent_search"].as_array().unwrap();
        assert_eq!(searches.len(), 2, "a search per round: {router}");
        for found in searches {
            assert_eq!(
                (found["max_agents"].as_u64(), found["first_failing_agents"].as_u64()),
                (Some(8), Some(9))
            );
        }
        let runs = c["reports"][router]["results"].as_array().unwrap().len();
        let made: u64 = searches
            .iter()
            .flat_map(|f| f["steps"].as_array().unwrap())
            .map(|st| st["runs"].as_u64().unwrap())
            .sum();
        assert_eq!(runs as u64, made, "{router}: every run of its searches is in its report");
    }
    assert_eq!(row["ratios"]["glommio/tokio-per-core"].as_f64(), Some(1.0));
    let order: Vec<&str> = out.lines().filter(|l| l.starts_with("round ")).collect();
    assert_eq!(
        order,
        [
            "round 1 of 2: glommio",
            "round 1 of 2: tokio-per-core",
            "round 2 of 2: glommio",
            "round 2 of 2: tokio-per-core"
        ]
    );
    assert!(
        out.contains("ring w16: glommio 8 agents (8–8), tokio-per-core 8 agents (8–8); glommio is 1.00× tokio-per-core"),
        "{out}"
    );
    // The page: the answers' table, then each router's searches; the CSV: every run of every
    // router, named.
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<h2>Comparison: searches</h2>"), "the page has the answers");
    assert!(page.contains("each asking 500 req/s"), "what each agent asked");
    assert!(
        page.contains("<tr><td>ring w16</td><td>tokio-per-core</td><td>8 agents (8–8)</td><td>2</td><td>1.00×</td></tr>"),
        "its row: {}",
        &page[page.find("<h2>Comparison").unwrap_or(0)..][..1400]
    );
    assert_eq!(
        page.matches("Most agents (clients) holding the SLO").count(),
        2,
        "each router's searches"
    );
    let rows = std::fs::read_to_string(&csv).unwrap();
    let runs = |router: &str| rows.lines().filter(|l| l.contains(&format!(",{router},"))).count();
    for router in ["glommio", "tokio-per-core"] {
        let made = c["reports"][router]["results"].as_array().unwrap().len();
        assert_eq!(runs(router), made, "{router}'s runs in the CSV");
    }
}

fn http_get(addr: &str, path: &str) -> String {
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(c, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut body = String::new();
    c.read_to_string(&mut body).unwrap();
    body
}

#[test]
fn the_router_serves_its_counters_to_prometheus() {
    // Proves `router --metrics` answers GET /metrics with the text exposition of every shard's
    // counters, which move with traffic, and 404 elsewhere.
    let bin = env!("CARGO_BIN_EXE_a2a-bench");
    let mut child = Reap(
        std::process::Command::new(bin)
            .args(["router", "--cores", "0", "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let router: std::net::SocketAddr =
        first.split("tcp://").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    let second = lines.next().unwrap().unwrap();
    let metrics = second.split("http://").nth(1).unwrap().trim_end_matches("/metrics").to_string();
    let mut c = Client::connect(router).unwrap();
    c.set_timeout(Duration::from_secs(10)).unwrap();
    crate::support::check_ack(c.register(7_000_001, 1, &[]).unwrap());
    let kind = a2a_bench::wire::DataKind::Direct;
    crate::support::send(&mut c, crate::support::data(kind, 7_000_001, 7_000_001, 1, b"hello"));
    crate::support::recv_data(&mut c);
    let text = http_get(&metrics, "/metrics");
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(text.contains("Content-Type: text/plain; version=0.0.4"), "{text}");
    assert!(text.contains("# TYPE a2a_router_messages_in_total counter"), "{text}");
    let sample = |name: &str| -> f64 {
        let line = text.lines().find(|l| l.starts_with(&format!("{name}{{"))).unwrap();
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(sample("a2a_router_agents"), 1.0, "{text}");
    assert_eq!(sample("a2a_router_messages_in_total"), 1.0, "{text}");
    assert!(sample("a2a_router_messages_out_total") >= 1.0, "{text}");
    assert!(http_get(&metrics, "/other").starts_with("HTTP/1.1 404"));
}

#[test]
#[ignore = "needs chromium (make deps-browser); run by make test-slow"]
fn the_html_report_renders_in_a_real_browser_without_console_errors() {
    // Proves Debian's chromium, headless, loads a report's page offline with no console
    // message, its DOM holds the charts, and a screenshot of it is not blank.
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| std::process::Command::new(b).arg("--version").output().is_ok())
        .expect("no chromium: run `make deps-browser` first");
    let d = dir("browser");
    let (json_path, html) = (d.join("r.json"), d.join("r.html"));
    let mut args: Vec<&str> = vec![
        "--agents",
        "2,4",
        "--topologies",
        "ring,mesh",
        "--repeat",
        "1",
        "--duration",
        "0.5",
        "--warmup",
        "0.2",
        "--interval",
        "0.1",
    ];
    let (j, h) = (json_path.to_str().unwrap(), html.to_str().unwrap());
    args.extend(["--output", j, "--html", h]);
    let (code, out, err) = bench(&args);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let url = format!("file://{h}");
    let common = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"];
    let run = |extra: &[&str]| {
        let mut cmd = std::process::Command::new(chromium);
        cmd.args(common).args(["--enable-logging=stderr", "--v=0"]).args(extra).arg(&url);
        let o = cmd.output().unwrap();
        (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (dom, log) = run(&["--dump-dom"]);
    let console: Vec<&str> =
        log.lines().filter(|l| l.contains("CONSOLE") || l.contains("Uncaught")).collect();
    assert!(console.is_empty(), "console messages: {console:?}");
    assert!(dom.matches("<svg").count() >= 4, "charts missing from the DOM");
    assert!(dom.contains("Round-trip latency by percentile"));
    let shot = d.join("shot.png");
    let (_, log) = run(&[&format!("--screenshot={}", shot.display()), "--window-size=1100,2600"]);
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("no screenshot ({e}): {log}"));
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    assert!(png.len() > 30_000, "a blank page compresses to a few KB: {} B", png.len());
    // An agent search's page: its table and its two curves, no console message either.
    let searched = d.join("s.html");
    let h = searched.to_str().unwrap();
    let j = d.join("s.json");
    let mut args = SEATED_SEARCH.to_vec();
    args.extend(["4", "--output", j.to_str().unwrap(), "--html", h]);
    let (code, out, err) = bench(&args);
    assert_eq!(code, Some(0), "{out}\n{err}");
    // A page's DOM as chromium loaded it, which said nothing on its console.
    let load = |h: &str| {
        let mut cmd = std::process::Command::new(chromium);
        cmd.args(common).args(["--enable-logging=stderr", "--v=0", "--dump-dom"]);
        let o = cmd.arg(format!("file://{h}")).output().unwrap();
        let log = String::from_utf8_lossy(&o.stderr);
        let console: Vec<&str> =
            log.lines().filter(|l| l.contains("CONSOLE") || l.contains("Uncaught")).collect();
        assert!(console.is_empty(), "{h}: console messages: {console:?}");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let dom = load(h);
    assert!(dom.contains("Most agents (clients) holding the SLO"), "the search's table");
    assert!(dom.contains("p99 round trip against agents (clients)"), "its p99 curve");
    // A compare that searched: the answers' table, then each router's searches.
    let compared = d.join("c.html");
    let h = compared.to_str().unwrap();
    let j = d.join("c.json");
    let mut args = vec!["compare", "--routers", "glommio,tokio-per-core", "--repeat", "1"];
    args.extend(SEATED_SEARCH);
    args.extend(["4", "--output", j.to_str().unwrap(), "--html", h]);
    let (code, out, err) = bench(&args);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let dom = load(h);
    assert!(dom.contains("Comparison: searches"), "the answers' table");
    assert_eq!(dom.matches("Most agents (clients) holding the SLO").count(), 2, "each router's");
}

#[test]
fn a_router_whose_stdout_reader_left_keeps_running_and_stops_cleanly() {
    // Proves a closed stdout (`a2a-bench router | head -1`) does not kill the router: it
    // serves, and on SIGTERM prints its counters into the void and exits 0.
    let bin = env!("CARGO_BIN_EXE_a2a-bench");
    let mut child = std::process::Command::new(bin)
        .args(["router", "--cores", "0", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr: std::net::SocketAddr =
        line.split("tcp://").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    // The pipe is closed now; the router must still answer.
    let mut c = Client::connect(addr).unwrap();
    c.set_timeout(Duration::from_secs(10)).unwrap();
    crate::support::check_ack(c.register(7_100_001, 1, &[]).unwrap());
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "the router did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "a closed stdout must not make the router panic");
}

/// Starts `a2a-bench <args>` (a router listening on 127.0.0.1:0), connects and registers `n`
/// agents each on its own connection, and returns how many descriptors the router's process
/// gained for them.
fn descriptors_for_connections(args: &[&str], n: u32) -> usize {
    let mut child = Reap(
        std::process::Command::new(env!("CARGO_BIN_EXE_a2a-bench"))
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let first = BufReader::new(child.0.stdout.take().unwrap()).lines().next().unwrap().unwrap();
    let router: std::net::SocketAddr =
        first.split("tcp://").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    let fds = || std::fs::read_dir(format!("/proc/{}/fd", child.0.id())).unwrap().count();
    // One agent first, so that everything a shard opens once (its rings) is open already.
    let mut first_agent = Client::connect(router).unwrap();
    first_agent.set_timeout(Duration::from_secs(10)).unwrap();
    crate::support::check_ack(first_agent.register(8_000_000, 1, &[]).unwrap());
    let before = fds();
    let clients: Vec<Client> = (0..n)
        .map(|i| {
            let mut c = Client::connect(router).unwrap();
            c.set_timeout(Duration::from_secs(10)).unwrap();
            crate::support::check_ack(c.register(8_000_001 + i, 1, &[]).unwrap());
            c
        })
        .collect();
    let after = fds();
    drop(clients);
    after - before
}

#[test]
fn a_router_holds_at_most_one_descriptor_per_connection_and_none_on_its_rings() {
    // Proves the glommio router on glommio's streams and the tokio per-core router, which share
    // the shard shell, hold one descriptor per connection (a shutdown handle per connection
    // used to cost two more), and the glommio router on its socket rings none: each socket
    // lives in its shard's ring table (a direct descriptor), so that the open-file limit no
    // longer bounds the connections a router serves.
    let n = 200;
    for (args, per) in [
        (&["router", "--cores", "0", "--listen", "127.0.0.1:0"][..], 0),
        (&["router", "--cores", "0", "--listen", "127.0.0.1:0", "--router-io", "glommio"][..], 1),
        (
            &["baseline-router", "--mode", "per-core", "--threads", "1", "--listen", "127.0.0.1:0"]
                [..],
            1,
        ),
    ] {
        let gained = descriptors_for_connections(args, n);
        assert_eq!(gained, per * n as usize, "{args:?}: {gained} descriptors for {n} connections");
    }
}

#[test]
fn a_router_on_its_socket_rings_serves_more_connections_than_its_open_file_limit() {
    // Proves direct descriptors end to end: a router allowed 200 descriptors, on four shards
    // (four rings, each with a table of 200), registers 500 agents each on its own connection
    // and answers every one of them again once all are in. Before, it ran out of descriptors
    // at ≈ 170 connections and the rest waited unanswered.
    const N: u32 = 500;
    let (child, addr) = crate::support::router_process_with(
        &["ulimit -n 200"],
        &["--shards-per-core", "4", "--router-io", "uring"],
    );
    let child = Reap(child);
    let mut clients: Vec<Client> = (0..N)
        .map(|i| {
            let mut c = Client::connect(addr).unwrap();
            c.set_timeout(Duration::from_secs(10)).unwrap();
            crate::support::check_ack(c.register(9_000_000 + i, 1, &[]).unwrap());
            c
        })
        .collect();
    for (i, c) in clients.iter_mut().enumerate() {
        let answer = c.register(9_100_000 + i as u32, 1, &[]);
        crate::support::check_ack(answer.unwrap_or_else(|e| panic!("agent {i}: {e}")));
    }
    let held = std::fs::read_dir(format!("/proc/{}/fd", child.0.id())).unwrap().count();
    assert!(held < 200, "{held} descriptors");
}

#[test]
#[ignore = "slow: 8 sessions of 3,000 agents on their own connections; run by make test-slow"]
fn a_router_stays_flat_over_sessions_of_own_connections() {
    // Proves a router serving session after session of agents, each on its own connection,
    // gives back what every session took: its RSS after the eighth session is within 1.5 MiB
    // of its RSS after the second. Its output frames used to start in 64 KiB buffers, even for
    // one acknowledgement, and glibc's heap, broken up by them, grew by 4.5 MB from the second
    // session to the eighth, ≈ 250 bytes per connection and session (`docs/BENCHMARKS.md`,
    // "Memory per virtual agent").
    let (child, addr) = crate::support::router_process(&[]);
    // Killed however the test ends.
    let child = Reap(child);
    let pid = child.0.id();
    let core = a2a_bench::placement::Machine::detect().cores.last().unwrap().core.to_string();
    let out = crate::support::scratch("sessions");
    let report = out.join("r.json");
    let router = format!("tcp://{addr}");
    let open = || crate::support::open_router_sockets(addr.port());
    let mut rss = Vec::new();
    for session in 1..=8 {
        let args = [
            "--router",
            &router,
            "--agent-cores",
            &core,
            "--agents",
            "3000",
            "--agents-per-conn",
            "1",
            "--topologies",
            "ring",
            "--rate",
            "300",
            "--duration",
            "1",
            "--warmup",
            "0.2",
            "--repeat",
            "1",
            "--stall-probe",
            "0",
            "--output",
            report.to_str().unwrap(),
        ];
        let run = crate::support::run_bin(&args, Duration::from_secs(60));
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(run.status.success(), "session {session}: {stderr}");
        let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        let run = &r["results"][0];
        assert_eq!(run["errors"], serde_json::json!({}), "session {session}: {}", run["failure"]);
        assert_eq!(run["success"], true, "session {session}: {}", run["failure"]);
        // The session is over for the router once it closed its 3,000 connections.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while open() > 0 {
            assert!(std::time::Instant::now() < deadline, "session {session}: still open");
            std::thread::yield_now();
        }
        rss.push(crate::support::status_kib(pid, "VmRSS:"));
    }
    drop(child);
    eprintln!("router RSS after each session, KiB: {rss:?}");
    assert!(rss[7] <= rss[1] + 1536, "the router grew session after session: {rss:?} KiB");
}

#[test]
#[ignore = "slow: 100,000 connections, ≈ 50 s; run by make test-slow"]
fn a_hundred_thousand_agents_on_their_own_connections_take_under_2_kib_each_of_the_router() {
    // Proves the scale aim end to end, on a machine whose processes may open 20,000
    // descriptors (`benches/many_conns.sh`): a router of six shards keeps 100,000 connections
    // in its rings' tables, with no descriptor each, while six workers run 100,000 agents on
    // them; every worker ends well, the merged run has no errors, and the router's RSS grew by
    // at most 2 KiB per connection while all of them were open.
    let out = std::process::Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/many_conns.sh"))
        .env("A2A_BENCH", env!("CARGO_BIN_EXE_a2a-bench"))
        .env("SIZES", "100000")
        .env("DURATION", "3")
        .env("KEEP", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{text}{}", String::from_utf8_lossy(&out.stderr));
    let kept = text.lines().find_map(|l| l.strip_prefix("outputs in ")).map(PathBuf::from);
    let merged = kept.as_ref().and_then(|d| std::fs::read(d.join("merged.json")).ok());
    if let Some(d) = &kept {
        let _ = std::fs::remove_dir_all(d);
    }
    assert!(out.status.success(), "{text}");
    let line = text.lines().find(|l| l.starts_with("connections=100000")).expect("a sample line");
    let field = |name: &str| -> u64 {
        let at = line.find(name).unwrap_or_else(|| panic!("{name} in {line}")) + name.len();
        let word = line[at..].split(|c: char| !c.is_ascii_digit()).next().unwrap();
        word.parse().unwrap_or_else(|_| panic!("{name} in {line}"))
    };
    assert!(field("open=") <= 2048, "{line}");
    assert!(field("router descriptors while all were open: ") < 1000, "{line}");
    let merged: Value = serde_json::from_slice(&merged.expect("the merged report")).unwrap();
    let run = &merged["results"][0];
    assert_eq!(run["agent_count"], 100_000, "{run}");
    assert_eq!(run["errors"], serde_json::json!({}), "{}", run["failure"]);
    assert_eq!(run["accounting"]["closed"], true, "{}", run["accounting"]);
}
