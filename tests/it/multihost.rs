//! Load from several workers, merged exactly: three `a2a-bench worker` processes against one
//! router process on loopback (`tests/multihost.sh` does the same across network namespaces).

use crate::support::Reap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use a2a_bench::client::Client;
use a2a_bench::report::hlog;
use a2a_bench::wire::control::StatsRequest;
use a2a_bench::wire::Control;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_a2a-bench");

fn dir(name: &str) -> crate::support::Scratch {
    crate::support::scratch(&format!("multihost-{name}"))
}

/// A router process whose stderr goes to `d`/router.log.
fn router(d: &Path) -> (Reap, String) {
    router_with(d, &[])
}

/// A router process with `more` flags, its stderr to `d`/router.log.
fn router_with(d: &Path, more: &[&str]) -> (Reap, String) {
    use std::io::BufRead;
    let mut child = Command::new(BIN)
        .args(["router", "--cores", "0", "--listen", "127.0.0.1:0"])
        .args(more)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(d.join("router.log")).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.split_whitespace().find(|w| w.starts_with("tcp://")).unwrap().to_string();
    (Reap(child), url)
}

fn worker(d: &Path, url: &str, index: u32, run_id: &str, secs: &str) -> Reap {
    let hl = d.join(format!("hlog-{index}"));
    let ring = ["--topologies", "ring", "--interval", "0.2", "--hlog", hl.to_str().unwrap()];
    worker_with(d, url, index, run_id, secs, &ring)
}

/// Worker `index` of 3 of run `run_id`, 12 agents in all on the last core, a window of `secs`,
/// its part in `d`, with `more` flags.
fn worker_with(d: &Path, url: &str, index: u32, run_id: &str, secs: &str, more: &[&str]) -> Reap {
    let last = a2a_bench::placement::Machine::detect().cores.len() - 1;
    let out = d.join(format!("part-{index}.json"));
    Reap(
        Command::new(BIN)
            .args(["worker", "--index", &index.to_string(), "--workers", "3", "--run-id", run_id])
            .args(["--router", url, "--agent-cores", &last.to_string(), "--agents", "12"])
            .args(["--repeat", "1", "--warmup", "0.2", "--duration", secs])
            .args(["--drain-timeout", "2", "--output", out.to_str().unwrap()])
            .args(more)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

/// Waits (bounded) for a worker; returns its exit code and what it said on stderr.
fn finish(w: &mut Reap, limit: Duration) -> (Option<i32>, String) {
    use std::io::Read;
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = w.0.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = w.0.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            return (status.code(), err);
        }
        assert!(Instant::now() < deadline, "a worker still ran after {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn merge(d: &Path, parts: &[u32]) -> (Option<i32>, Value, String) {
    let (out, html) = (d.join("merged.json"), d.join("merged.html"));
    let mut cmd = Command::new(BIN);
    cmd.arg("merge");
    for i in parts {
        cmd.arg(d.join(format!("part-{i}.json")));
    }
    cmd.args(["--output", out.to_str().unwrap(), "--html", html.to_str().unwrap()]);
    let o = cmd.output().unwrap();
    let page = std::fs::read_to_string(&html).unwrap_or_default();
    assert!(page.contains("<h3>Workers</h3>"), "the page has the per-worker breakdown");
    let text =
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    let v = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    (o.status.code(), v, text)
}

#[test]
fn three_workers_merge_into_one_run_whose_accounting_closes_and_whose_histogram_is_the_sum() {
    // Proves workers split a run's agents, meet through the router, and merge exactly: the
    // merged accounting closes across workers, and the merged histogram equals the sum of the
    // workers' HdrHistogram logs.
    let d = dir("merge");
    let (_router, url) = router(&d);
    let mut workers: Vec<Reap> = (0..3).map(|i| worker(&d, &url, i, "it-merge", "0.6")).collect();
    for (i, w) in workers.iter_mut().enumerate() {
        let (code, err) = finish(w, Duration::from_secs(60));
        let part = std::fs::read_to_string(d.join(format!("part-{i}.json"))).unwrap_or_default();
        let why = serde_json::from_str::<Value>(&part).map(|p| p["results"][0]["failure"].clone());
        assert_eq!(code, Some(0), "worker {i}: {err} {why:?}");
    }
    // Each worker's lost wake-ups are its process's; the merged run keeps their sum. One part
    // is given 2 more, as a worker whose rings slept past work would have said.
    let part_1 = d.join("part-1.json");
    let mut p: Value = serde_json::from_str(&std::fs::read_to_string(&part_1).unwrap()).unwrap();
    let lost_1 = p["results"][0]["lost_wakeups"].as_u64().unwrap_or(0) + 2;
    p["results"][0]["lost_wakeups"] = lost_1.into();
    std::fs::write(&part_1, serde_json::to_string(&p).unwrap()).unwrap();
    let lost: u64 = (0..3)
        .map(|i| {
            let p: Value = serde_json::from_str(
                &std::fs::read_to_string(d.join(format!("part-{i}.json"))).unwrap(),
            )
            .unwrap();
            p["results"][0]["lost_wakeups"].as_u64().unwrap_or(0)
        })
        .sum();
    // Each worker read its process's memory and the router's (a process here): the merged run
    // adds the workers' up and keeps the router's once.
    let memory: Vec<Value> = (0..3)
        .map(|i| {
            let p: Value = serde_json::from_str(
                &std::fs::read_to_string(d.join(format!("part-{i}.json"))).unwrap(),
            )
            .unwrap();
            p["results"][0]["memory"].clone()
        })
        .collect();
    let own: u64 = memory.iter().map(|m| m["process_bytes"].as_u64().unwrap()).sum();
    let router = memory.iter().map(|m| m["target_bytes"].as_u64().unwrap()).max().unwrap();
    let (code, merged, text) = merge(&d, &[0, 1, 2]);
    assert_eq!(code, Some(0), "{text}");
    let r = &merged["results"][0];
    assert_eq!(r["lost_wakeups"].as_u64(), Some(lost), "{r}");
    assert!(text.contains(&format!("{lost} lost wake-ups")), "{text}");
    assert_eq!(r["memory"]["process_bytes"].as_u64(), Some(own), "{memory:?}");
    assert_eq!(r["memory"]["target_bytes"].as_u64(), Some(router), "{memory:?}");
    assert!(text.contains("the workers' processes, added up: 12 agents "), "{text}");
    assert_eq!(r["accounting"]["closed"], true, "{}", r["accounting"]);
    // On a loaded 2-core machine a 0.6 s window may be under 10× its p99: `too_short`, not a
    // failure.
    assert_eq!(r["success"], true, "{r}");
    assert!(["ok", "too_short"].contains(&r["status"].as_str().unwrap()), "{}", r["status"]);
    assert_eq!(r["agent_count"], 12);
    assert_eq!(r["connections"], 12, "each worker's 4 agents on their own connections, added");
    assert_eq!(merged["merged"]["parts"].as_array().unwrap().len(), 3);
    assert!(text.contains("worker 2 ("), "{text}");
    let mut sum: Option<hdrhistogram::Histogram<u64>> = None;
    for i in 0..3 {
        let logs: Vec<PathBuf> = std::fs::read_dir(d.join(format!("hlog-{i}")))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        for iv in hlog::read(&logs[0]).unwrap() {
            match &mut sum {
                Some(s) => s.add(&iv.histogram).unwrap(),
                None => sum = Some(iv.histogram),
            }
        }
    }
    let sum = sum.unwrap();
    let rtt = &r["latency"]["rtt"];
    assert_eq!(sum.len(), rtt["count"].as_u64().unwrap());
    assert_eq!(sum.value_at_quantile(0.99) as f64 / 1e6, rtt["p99_ms"].as_f64().unwrap());
    assert_eq!(sum.max() as f64 / 1e6, rtt["max_ms"].as_f64().unwrap());
    let sent: u64 = (0..3)
        .map(|i| {
            let p: Value = serde_json::from_str(
                &std::fs::read_to_string(d.join(format!("part-{i}.json"))).unwrap(),
            )
            .unwrap();
            p["results"][0]["accounting"]["requests_sent"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(r["accounting"]["requests_sent"].as_u64().unwrap(), sent);
    // The merged time series keeps one busy and one watch share per agent core of every
    // worker that reported the interval (the drain's last one may be a single worker's), side
    // by side.
    let series = r["time_series"].as_array().unwrap();
    assert_eq!(series[0]["agent_cpu"].as_array().unwrap().len(), 3, "{}", series[0]);
    for p in series {
        let (busy, watch) =
            (p["agent_cpu"].as_array().unwrap(), p["agent_watch"].as_array().unwrap());
        assert!(busy.len() == watch.len() && (1..=3).contains(&busy.len()), "{p}");
        for (b, w) in busy.iter().zip(watch) {
            assert!(w.as_f64().unwrap() <= b.as_f64().unwrap(), "{p}");
        }
    }
}

#[test]
fn pipelines_spanning_workers_merge_with_every_hop_counted() {
    // Proves `--workload pipeline` over workers: 12 agents in pipelines of 5 (0-4 and 5-9;
    // 10 and 11 take no part), split 4 a worker, so that both pipelines span workers; every
    // worker's own accounting closes on its sources' side, and the merge's closes over the
    // whole: each item delivered to its 4 stages, wherever they ran, and back once.
    let d = dir("pipeline");
    let (_router, url) = router(&d);
    let pipeline = ["--workload", "pipeline", "--stages", "5"];
    let mut workers: Vec<Reap> =
        (0..3).map(|i| worker_with(&d, &url, i, "it-pipeline", "0.6", &pipeline)).collect();
    for (i, w) in workers.iter_mut().enumerate() {
        let (code, err) = finish(w, Duration::from_secs(60));
        assert_eq!(code, Some(0), "worker {i}: {err}");
        let part: Value = serde_json::from_str(
            &std::fs::read_to_string(d.join(format!("part-{i}.json"))).unwrap(),
        )
        .unwrap();
        let r = &part["results"][0];
        assert_eq!(r["accounting"]["closed"], true, "worker {i}: {}", r["accounting"]);
    }
    let (code, merged, text) = merge(&d, &[0, 1, 2]);
    assert_eq!(code, Some(0), "{text}");
    let r = &merged["results"][0];
    assert_eq!((&r["workload"], &r["topology"]), (&"pipeline".into(), &"pipeline".into()));
    let a = &r["accounting"];
    assert_eq!(a["closed"], true, "{a}");
    assert_eq!(r["errors"].as_object().map_or(0, |e| e.len()), 0, "{}", r["errors"]);
    let sent = a["requests_sent"].as_u64().unwrap();
    assert!(sent > 0, "{a}");
    assert_eq!(a["requests_delivered"].as_u64(), Some(4 * sent), "{a}");
    assert_eq!(a["replies_delivered"].as_u64(), Some(sent), "{a}");
    let p = &r["pipeline"];
    assert_eq!(
        (&p["stages"], &p["pipelines"], &p["idle_agents"]),
        (&5.into(), &2.into(), &2.into())
    );
    assert_eq!(p["deliveries_per_item"], 5.0, "{p}");
    // Each hop timed where it landed, on whichever worker, and summed: every measured item
    // once per stage and once back at its source (one host: the clocks agree).
    let hops = p["hops"].as_array().unwrap_or_else(|| panic!("{p}"));
    let to: Vec<u64> = hops.iter().map(|h| h["to_stage"].as_u64().unwrap()).collect();
    assert_eq!(to, [1, 2, 3, 4, 0], "{p}");
    let items = r["latency"]["rtt"]["count"].as_u64().unwrap();
    assert!(items > 0, "{r}");
    for h in hops {
        assert_eq!(h["latency"]["count"].as_u64(), Some(items), "{h}");
    }
}

/// The router's total of messages received, read over the protocol.
fn router_msgs_in(url: &str) -> u64 {
    let addr = url.trim_start_matches("tcp://").parse().unwrap();
    let Ok(mut c) = Client::connect(addr) else { return 0 };
    c.set_timeout(Duration::from_secs(5)).unwrap();
    let request_id = c.request_id();
    match c.call(Control::StatsRequest(StatsRequest { request_id })) {
        Ok(Control::StatsReply(r)) => r.shards.iter().map(|s| s.msgs_in).sum(),
        _ => 0,
    }
}

#[test]
fn a_worker_killed_mid_run_fails_the_merged_run_and_is_named() {
    // Proves that when one worker dies mid-run the others finish, count what they sent its
    // agents as errors, and the merge fails naming the missing worker.
    let d = dir("killed");
    let (_router, url) = router(&d);
    let mut workers: Vec<Reap> = (0..3).map(|i| worker(&d, &url, i, "it-killed", "2")).collect();
    // Traffic flowing is the signal that the run started on every worker.
    let deadline = Instant::now() + Duration::from_secs(30);
    while router_msgs_in(&url) < 20_000 {
        assert!(Instant::now() < deadline, "the run never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = workers[1].0.kill();
    for i in [0, 2] {
        let (code, err) = finish(&mut workers[i], Duration::from_secs(60));
        assert_eq!(code, Some(1), "worker {i}: {err}");
    }
    let (code, merged, text) = merge(&d, &[0, 2]);
    assert_eq!(code, Some(1), "{text}");
    assert_eq!(merged["merged"]["missing"], serde_json::json!([1]));
    let r = &merged["results"][0];
    assert_eq!(r["status"], "failed");
    let failure = r["failure"].as_str().unwrap();
    assert!(failure.contains("worker 1 of 3 wrote no part"), "{failure}");
    let errors: u64 = r["errors"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert!(errors > 0, "what the others sent the dead worker's agents is counted: {r}");
}

/// `a2a-bench serve KIND` on loopback as a child process; its URL, from its first line.
fn target(kind: &str) -> (Reap, String) {
    use std::io::BufRead;
    let mut child = Command::new(BIN)
        .args(["serve", kind, "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap().to_string();
    (Reap(child), url.trim_end_matches('/').to_string())
}

#[test]
fn http_workers_meet_through_a_router_and_merge_per_pattern() {
    // Proves multi-host `a2a-bench http`: two workers drive their halves of the clients against
    // one registry, preload half of its agents each, meet through an a2a-bench router (--meet),
    // and merge exactly: the accounting closes, and each pattern's answers are the sum of the
    // workers'.
    let d = dir("http");
    let (_router, meet) = router(&d);
    let (_server, url) = target("registry");
    let last = a2a_bench::placement::Machine::detect().cores.len() - 1;
    let mut workers: Vec<Reap> = (0..2)
        .map(|i| {
            let out = d.join(format!("part-{i}.json"));
            Reap(
                Command::new(BIN)
                    .args(["http", "--url", &format!("{url}/"), "--agents", "6"])
                    .args(["--pattern", "registry:get,registry:health", "--preload", "10"])
                    .args(["--index", &i.to_string(), "--workers", "2", "--run-id", "it-http"])
                    .args(["--meet", &meet, "--agent-cores", &last.to_string()])
                    .args(["--repeat", "1", "--warmup", "0.2", "--duration", "0.6"])
                    .args(["--output", out.to_str().unwrap()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap(),
            )
        })
        .collect();
    let mut parts = Vec::new();
    for (i, w) in workers.iter_mut().enumerate() {
        let (code, err) = finish(w, Duration::from_secs(60));
        let part = std::fs::read_to_string(d.join(format!("part-{i}.json"))).unwrap_or_default();
        let part: Value = serde_json::from_str(&part).unwrap_or_default();
        assert_eq!(code, Some(0), "worker {i}: {err} {}", part["results"][0]["failure"]);
        parts.push(part);
    }
    let (code, merged, text) = merge(&d, &[0, 1]);
    assert_eq!(code, Some(0), "{text}");
    let r = &merged["results"][0];
    assert_eq!(r["accounting"]["closed"], true, "{}", r["accounting"]);
    assert_eq!(r["agent_count"], 6);
    assert_eq!(r["errors"], serde_json::json!({}), "{r}");
    for (k, name) in ["registry:get", "registry:health"].into_iter().enumerate() {
        let ok = |v: &Value| v["results"][0]["patterns"][k]["ok"].as_u64().unwrap();
        assert_eq!(r["patterns"][k]["pattern"], name);
        assert!(ok(&parts[0]) > 0 && ok(&parts[1]) > 0, "both workers measured {name}");
        assert_eq!(ok(&merged), ok(&parts[0]) + ok(&parts[1]), "{name}");
    }
    // Each worker registered its half: the registry holds 10, not 20.
    let listed = get_body(&format!("{url}/agents"));
    let agents: Value = serde_json::from_str(&listed).unwrap();
    let n = agents["agents"].as_array().or(agents.as_array()).map_or(0, Vec::len);
    assert_eq!(n, 10, "{listed}");
}

/// The body of a plain HTTP/1.1 GET to `url` (http://host:port/path).
fn get_body(url: &str) -> String {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) =
        rest.split_once('/').map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut s = std::net::TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    all.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()
}

#[test]
fn workers_sizes_of_a_payload_mix_merge_size_by_size() {
    // Proves a multi-host `--payload-mix`: each worker's part carries its sizes' figures, and
    // the merged run's are their sums (requests sent, round trips timed), adding up to the
    // merged run's measured requests and round trips.
    let d = dir("mix");
    let (_router, url) = router(&d);
    let mix = ["--topologies", "ring", "--payload-mix", "64:3,2K:1", "--stall-probe", "0"];
    let mut workers: Vec<Reap> =
        (0..3).map(|i| worker_with(&d, &url, i, "it-mix", "0.4", &mix)).collect();
    let mut parts = Vec::new();
    for (i, w) in workers.iter_mut().enumerate() {
        let (code, err) = finish(w, Duration::from_secs(60));
        assert_eq!(code, Some(0), "worker {i}: {err}");
        let part: Value =
            serde_json::from_slice(&std::fs::read(d.join(format!("part-{i}.json"))).unwrap())
                .unwrap();
        parts.push(part["results"][0]["payload_mix"].clone());
    }
    let (code, merged, text) = merge(&d, &[0, 1, 2]);
    assert_eq!(code, Some(0), "{text}");
    let r = &merged["results"][0];
    let sizes = r["payload_mix"].as_array().unwrap_or_else(|| panic!("{r}"));
    assert_eq!(sizes.len(), 2, "{r}");
    for (k, s) in sizes.iter().enumerate() {
        let sent: u64 = parts.iter().map(|p| p[k]["sent"].as_u64().unwrap()).sum();
        assert_eq!(s["sent"].as_u64().unwrap(), sent, "{s}");
        let timed: u64 = parts.iter().map(|p| p[k]["latency"]["count"].as_u64().unwrap()).sum();
        assert_eq!(s["latency"]["count"].as_u64().unwrap(), timed, "{s}");
        assert!(timed > 0, "{s}");
    }
    let sent: u64 = sizes.iter().map(|s| s["sent"].as_u64().unwrap()).sum();
    assert_eq!(sent, r["message_count"].as_u64().unwrap(), "{r}");
    let timed: u64 = sizes.iter().map(|s| s["latency"]["count"].as_u64().unwrap()).sum();
    assert_eq!(timed, r["latency"]["rtt"]["count"].as_u64().unwrap(), "{r}");
    assert_eq!(r["payload_size"], (3 * 64 + 2048) / 4, "{r}");
}

#[test]
fn a_worker_s_part_is_judged_by_its_share_of_the_rate_and_the_merge_by_the_whole() {
    // Proves the share: 40 agents at 10 requests/s take their turns in order, one every 0.1 s,
    // so in a 2 s window after 0.3 s of warm-up worker 0's agents (0–19) have most of the
    // turns and worker 1's few. Each worker used to set what it sent against the whole 10/s
    // and call its part overloaded ("OVERLOADED: 556 of 5.0 k asked", at 50,000 agents); it is
    // judged by the sends that fell due for its own agents, the shares add up to the rate, and
    // the merged run is judged by the whole rate.
    let d = dir("share");
    let (_router, url) = router(&d);
    let last = (a2a_bench::placement::Machine::detect().cores.len() - 1).to_string();
    let spawn = |i: u32| {
        let out = d.join(format!("part-{i}.json"));
        Reap(
            Command::new(BIN)
                .args(["worker", "--index", &i.to_string(), "--workers", "2", "--run-id", "share"])
                .args(["--router", &url, "--agent-cores", &last, "--agents", "40", "--rate", "10"])
                .args(["--topologies", "ring", "--repeat", "1", "--warmup", "0.3"])
                .args(["--duration", "2", "--drain-timeout", "2", "--stall-probe", "0"])
                // Lateness is not the point: a send a millisecond late on a busy machine is.
                .args(["--late-after-ms", "100"])
                .args(["--output", out.to_str().unwrap()])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        )
    };
    let mut workers = [spawn(0), spawn(1)];
    for w in &mut workers {
        let (code, err) = finish(w, Duration::from_secs(60));
        assert_eq!(code, Some(0), "{err}");
    }
    let mut shares = Vec::new();
    for i in 0..2 {
        let part: Value =
            serde_json::from_slice(&std::fs::read(d.join(format!("part-{i}.json"))).unwrap())
                .unwrap();
        let run = &part["results"][0];
        let pacing = &run["pacing"];
        assert_eq!(pacing["rate_per_sec"], 10.0, "{pacing}");
        shares.push(pacing["share_per_sec"].as_f64().unwrap_or_else(|| panic!("{pacing}")));
        assert_ne!(run["status"], "overloaded", "worker {i}: {pacing}");
    }
    assert!(shares[0] > shares[1], "worker 0's agents come first: {shares:?}");
    let whole: f64 = shares.iter().sum();
    assert!((8.5..=11.5).contains(&whole), "the shares add up to the rate: {shares:?}");
    let (code, merged, text) = merge(&d, &[0, 1]);
    assert_eq!(code, Some(0), "{text}");
    let pacing = &merged["results"][0]["pacing"];
    assert!(pacing.get("share_per_sec").is_none(), "{pacing}");
    assert_eq!(pacing["rate_per_sec"], 10.0, "{pacing}");
}

/// Worker `index` of 2 of run `run_id` searching with the SLO `errors==0` (one agent a
/// connection, ring, short runs on the last core), its part in `d`, with `more` flags (the
/// first count, the start timeout, the search's rate); its stdout and stderr piped.
fn searcher(d: &Path, url: &str, index: u32, run_id: &str, more: &[&str]) -> Reap {
    let last = (a2a_bench::placement::Machine::detect().cores.len() - 1).to_string();
    let out = d.join(format!("part-{index}.json"));
    Reap(
        Command::new(BIN)
            .args(["worker", "--index", &index.to_string(), "--workers", "2", "--run-id", run_id])
            .args(["--router", url, "--agent-cores", &last, "--agents-per-conn", "1"])
            .args(["--topologies", "ring", "--repeat", "1", "--warmup", "0.1"])
            .args(["--duration", "0.3", "--stall-probe", "0", "--late-after-ms", "20"])
            .args(["--slo", "errors==0", "--output", out.to_str().unwrap()])
            .args(more)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

#[test]
fn workers_search_together_each_step_judged_by_the_whole_run() {
    // Proves --find-max-agents over two workers: every step is judged by the whole run (each
    // worker's part shared through the router and merged), so both take the same steps and
    // find the same answer, the merge carries the search, and a count the router refuses on
    // one worker is a step that could not start on both, said in the same words. The router
    // takes 12 connections: each worker's coordinator and probe hold one each, so 8 agents
    // (one a connection) fit and 9 do not. From 6: 6, 12, 9, 7, 8.
    let d = dir("search");
    let (_router, url) = router_with(&d, &["--max-connections", "12"]);
    let spawn = |i: u32| {
        searcher(
            &d,
            &url,
            i,
            "search",
            &["--agents", "6", "--start-timeout", "2", "--find-max-agents", "500"],
        )
    };
    let mut workers = [spawn(0), spawn(1)];
    let mut parts = Vec::new();
    for (i, w) in workers.iter_mut().enumerate() {
        let mut out = String::new();
        std::io::Read::read_to_string(&mut w.0.stdout.take().unwrap(), &mut out).unwrap();
        let (code, err) = finish(w, Duration::from_secs(120));
        assert_eq!(code, Some(0), "worker {i}: {out}\n{err}");
        assert!(
            out.contains("agent search ring w16 at 500 req/s per agent for 'errors==0': holds up to 8 agents, 4.0 k req/s in all (fails at 9;"),
            "worker {i}: {out}"
        );
        let part: Value =
            serde_json::from_slice(&std::fs::read(d.join(format!("part-{i}.json"))).unwrap())
                .unwrap();
        parts.push(part);
    }
    let s = &parts[0]["agent_search"][0];
    assert_eq!(parts[1]["agent_search"][0], *s, "both workers searched alike");
    let steps = s["steps"].as_array().unwrap();
    let counts: Vec<u64> = steps.iter().map(|st| st["agents"].as_u64().unwrap()).collect();
    assert_eq!(counts, [6, 12, 9, 7, 8], "{s}");
    for st in steps {
        let n = st["agents"].as_u64().unwrap();
        assert_eq!(st["held"].as_bool(), Some(n <= 8), "{st}");
        if n <= 8 {
            // The whole run's rate, not this worker's half of it.
            let achieved = st["achieved_rate_per_sec"].as_f64().unwrap();
            assert!(achieved > n as f64 * 500.0 * 0.8, "{st}");
        } else {
            let why = st["could_not_start"].as_str().unwrap_or_else(|| panic!("{st}"));
            assert!(why.contains("worker "), "{why}");
        }
    }
    // Each part holds its own share of each run: half the agents.
    let held = steps[0]["result_indexes"][0].as_u64().unwrap() as usize;
    assert_eq!(parts[0]["results"][held]["part"]["spec"]["slice"], serde_json::json!([0, 3]));
    let (code, merged, text) = merge(&d, &[0, 1]);
    assert_eq!(code, Some(0), "a search's failed steps fail no merge: {text}");
    assert_eq!(merged["agent_search"][0], *s, "the merge carries the search");
    assert!(text.contains("agent search ring w16 at 500 req/s per agent"), "{text}");
    assert_eq!(merged["results"][held]["agent_count"], 6);
    // Parts of different searches are not merged.
    let mut other = parts[1].clone();
    other["agent_search"][0]["max_agents"] = 7.into();
    std::fs::write(d.join("part-1.json"), serde_json::to_vec(&other).unwrap()).unwrap();
    let o = Command::new(BIN)
        .arg("merge")
        .args([d.join("part-0.json"), d.join("part-1.json")])
        .args(["--output", d.join("m2.json").to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("the workers' searches differ (agent_search)"), "{err}");
}

#[test]
fn a_worker_lost_mid_search_ends_the_others_search_with_why() {
    // Proves a search cannot go on without a worker: worker 1 is killed once its first step
    // is judged; worker 0, finding no part from it at the next exchange (or no partner at the
    // next start), ends with an error that says so, within its bounded waits, instead of
    // searching on step after step against a barrier nobody else reaches.
    use std::io::BufRead;
    let d = dir("search-lost");
    let (_router, url) = router(&d);
    let spawn = |i: u32| {
        searcher(
            &d,
            &url,
            i,
            "lost",
            &["--agents", "4", "--start-timeout", "1", "--find-max-agents", "100"],
        )
    };
    let (mut w0, mut w1) = (spawn(0), spawn(1));
    let lines = std::io::BufReader::new(w1.0.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines {
        let line = line.unwrap();
        let judged = line.contains("step 1:");
        seen.push(line);
        if judged {
            break;
        }
    }
    assert!(seen.last().is_some_and(|l| l.contains("step 1: 4 agents")), "{seen:?}");
    w1.0.kill().unwrap();
    let _ = w1.0.wait();
    let (code, err) = finish(&mut w0, Duration::from_secs(60));
    assert_eq!(code, Some(1), "{err}");
    // Whether worker 1 died before or after the next start barrier, worker 0 meets nobody at
    // that step's exchange.
    assert!(
        err.contains(
            "worker 0 of 2: not every worker arrived within 2 s at a search step's exchange"
        ),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}
