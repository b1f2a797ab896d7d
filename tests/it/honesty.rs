//! The load generator stays honest under overload and faults: achieved rates are what happened,
//! every request is accounted for when the router dies or stalls, Ctrl-C keeps what finished,
//! and a wrong or missing peer gets one clear line.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use a2a_bench::loadgen::{self, Hooks, Pacing, Scenario, Stop, Topology};
use a2a_bench::placement::Machine;
use a2a_bench::report::{RunResult, RunSpec};
use a2a_bench::router::{Router, RouterConfig};
use a2a_bench::transport::Io;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_a2a-bench");

fn scenario(agents: u32, pacing: Pacing, stop: Stop, id_base: u32) -> Scenario {
    let mut sc = crate::support::scenario(Topology::Ring, agents, pacing, stop, id_base);
    sc.warmup = Duration::from_millis(200);
    sc
}

/// A router of one shard on the machine's first core, on a free loopback port.
fn router_on_first_core() -> a2a_bench::router::RouterHandle {
    let core = Machine::detect().cores[0];
    Router::start(RouterConfig::new("127.0.0.1:0".parse().unwrap(), vec![core])).unwrap()
}

fn result(sc: &Scenario, o: &loadgen::Outcome) -> RunResult {
    RunResult::new(&RunSpec { scenario: sc.clone(), repeat: 0, interval_ms: None }, o)
}

/// A file `name` in a scratch directory, removed with it when the guard drops.
fn temp(name: &str) -> (crate::support::Scratch, std::path::PathBuf) {
    let dir = crate::support::scratch("honesty");
    let path = dir.join(name);
    (dir, path)
}

/// Runs the benchmark binary (bounded); returns its exit code, stdout and stderr.
fn bench(args: &[&str]) -> (Option<i32>, String, String) {
    let out = crate::support::run_bin(args, Duration::from_secs(60));
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn an_asked_rate_beyond_capacity_is_reported_as_overloaded() {
    // Proves an open loop asked for far more than the router can route reports what happened:
    // sustained false, status overloaded, an achieved rate well below the asked one and matching
    // the deliveries counted (each request delivered once and answered once), and no send after
    // the window.
    let r = router_on_first_core();
    let pacing = Pacing::Open { rate: 5e6, window: 16 };
    let sc = scenario(10, pacing, Stop::Duration(Duration::from_millis(1500)), 7_000);
    let o = loadgen::run(&sc, r.local_addr(), Some(&r), None);
    let res = result(&sc, &o);
    assert!(res.accounting.closed, "{:?}", res.accounting);
    assert!(!res.pacing.sustained);
    assert_eq!(res.status, "overloaded", "{:?}", res.failure);
    let achieved = res.pacing.achieved_rate_per_sec;
    assert!(achieved < 0.5 * 5e6, "achieved {achieved} looks like the asked rate");
    let delivered = res.throughput_msg_per_sec / 2.0;
    assert!(
        (achieved - delivered).abs() <= 0.05 * delivered,
        "achieved {achieved}/s against {delivered} round trips delivered/s"
    );
    assert!(res.pacing.missed_sends > 0 && res.pacing.late_sends > 0);
    r.stop();
}

#[test]
fn an_open_loop_always_behind_its_schedule_reads_its_answers_and_measures_its_window() {
    // Proves a pacer that is always behind (10^8 requests/s asked of 4 agents: the next send
    // is due before the last left) leaves the agents' sockets their turn, on both I/O paths
    // (the ring's reaper, glommio's reactor): the answers are read and the windows refill, so
    // the achieved rate is what router and agents can do (the pacer yielding instead ran again
    // ahead of them: 128 requests/s, the windows' first fill and one more); the run ends on
    // time, overloaded, accounting closed. The warm-up's backlog is given up as the window
    // begins, so the window's own sends leave, measured from their intended times: the latency
    // grows with the window (the p50 near half of it), where before the window sent only
    // warm-up slots and measured no round trip at all.
    // The p50 needs the agents' core for most of the window: on a 2-core machine running
    // the other tests at once a run can lose its core for most of it (then its sends all
    // left in the first tens of ms, p50 20 ms, while its max still reached the window: seen
    // once in CI), so that one figure may take up to three runs; every other check holds on
    // each run.
    for io in ["uring", "glommio"] {
        let mut seen = Vec::new();
        let held = (0..3).any(|_| {
            let (p50, window_ms) = always_behind(io);
            seen.push(p50);
            p50 > 0.25 * window_ms
        });
        assert!(held, "{io}: p50 {seen:?} ms, never a quarter of the window");
    }
}

/// One always-behind run: its checks asserted, its (p50, window) in ms returned.
fn always_behind(io: &str) -> (f64, f64) {
    let (_dir, out) = temp("behind.json");
    let (code, stdout, stderr) = bench(&[
        "--agent-io",
        io,
        "--quick",
        "--rate",
        "1e8",
        "--agents",
        "4",
        "--topologies",
        "ring",
        "--stall-probe",
        "0",
        "--threshold",
        "p99<5ms",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(99), "the latency threshold fails\n{stdout}\n{stderr}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let r = &v["results"][0];
    assert_eq!(r["status"], "overloaded", "{stdout}");
    assert_eq!(r["accounting"]["closed"], true, "{}", r["accounting"]);
    let p = &r["pacing"];
    let achieved = p["achieved_rate_per_sec"].as_f64().unwrap();
    assert!(achieved > 20_000.0, "{io}: achieved {achieved}/s, answers left unread\n{stdout}");
    assert!(
        p["missed_sends"].as_u64().unwrap() > 0 && p["warmup_missed_sends"].as_u64().unwrap() > 0
    );
    assert!(r["latency"]["rtt"]["count"].as_u64().unwrap() > 1_000, "{}", r["latency"]);
    let window_ms = r["duration_sec"].as_f64().unwrap() * 1e3;
    // Measured from their intended times: some round trip waited most of the window.
    let max = r["max_latency_ms"].as_f64().unwrap();
    assert!(max > 0.5 * window_ms, "{io}: max {max} ms of a {window_ms} ms window\n{stdout}");
    (r["p50_latency_ms"].as_f64().unwrap(), window_ms)
}

#[test]
fn two_agent_groups_at_a_high_open_loop_rate_finish_without_errors() {
    // Proves groups stop together: with agents on two cores at a rate beyond what they can send,
    // no group leaves while the other still sends to its agents (no unknown_recipient), and the
    // backlog is counted as missed, not as errors.
    let m = Machine::detect();
    let r =
        Router::start(RouterConfig::new("127.0.0.1:0".parse().unwrap(), vec![m.cores[0]])).unwrap();
    let pacing = Pacing::Open { rate: 400_000.0, window: 16 };
    let mut sc = scenario(10, pacing, Stop::Duration(Duration::from_millis(800)), 9_000);
    sc.agent_cores = vec![m.cores[0], *m.cores.last().unwrap()];
    let o = loadgen::run(&sc, r.local_addr(), Some(&r), None);
    let res = result(&sc, &o);
    assert!(res.accounting.closed, "{:?}", res.accounting);
    assert!(res.errors.is_empty(), "errors: {:?}", res.errors);
    assert!(o.failures.is_empty(), "{:?}", o.failures);
    r.stop();
}

#[test]
fn a_killed_router_ends_the_run_at_once_with_every_request_accounted_for() {
    // Proves a router killed mid-run (SIGKILL, a separate process) is seen at once: the run
    // ends within 2 s of the kill, failed with one line of cause, and every request in flight
    // becomes a connection_lost error, so the accounting closes.
    // Both data paths of the agents: glommio's streams and the second ring.
    for io in [Io::Glommio, Io::Uring] {
        killed_router_is_accounted(io);
    }
}

fn killed_router_is_accounted(io: Io) {
    let (mut router, addr) = crate::support::router_process(&[]);
    let mut sc = scenario(
        10,
        Pacing::Closed { window: 16 },
        Stop::Duration(Duration::from_secs(20)),
        11_000,
    );
    sc.io = io;
    let killed_at = std::sync::Arc::new(std::sync::Mutex::new(None));
    let pid = router.id();
    let mark = killed_at.clone();
    let kill = Box::new(move || {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        *mark.lock().unwrap() = Some(Instant::now());
    });
    let hooks = Hooks { at_measure_start: Some(kill), ..Hooks::default() };
    let o = loadgen::run_with(&sc, addr, hooks);
    let ended = Instant::now();
    let _ = router.wait();
    let killed = killed_at.lock().unwrap().expect("the router was killed");
    assert!(ended - killed < Duration::from_secs(2), "ended {:?} after the kill", ended - killed);
    let res = result(&sc, &o);
    assert!(res.accounting.closed, "{:?}", res.accounting);
    assert!(res.accounting.requests_sent > 0);
    assert_eq!(res.status, "failed");
    assert!(o.all_connections_lost);
    assert_eq!(o.failures, vec!["the router closed 10 of 10 agent connections".to_string()]);
    let lost = res.errors.get("connection_lost").copied().unwrap_or(0);
    assert_eq!(lost, res.accounting.unanswered, "{:?}", res.errors);
    assert_eq!(
        res.accounting.requests_sent,
        res.accounting.replies_delivered + res.accounting.request_errors + lost
    );
}

#[test]
fn frames_the_router_refuses_whole_leave_every_request_accounted_once() {
    // Proves a frame-level error (here `frame_too_large`: payloads past the router's limit)
    // names no request and resolves none: the requests of the closed connections are given up
    // as connection_lost, once each, the accounting closes, and the frame errors say why.
    // (Before, each was also counted as a request error: 80 requests, 85 resolved.)
    for io in [Io::Glommio, Io::Uring] {
        let core = Machine::detect().cores[0];
        let mut cfg = RouterConfig::new("127.0.0.1:0".parse().unwrap(), vec![core]);
        cfg.shard.limits.frame_bytes_max = 64 << 10;
        let router = Router::start(cfg).unwrap();
        let mut sc = scenario(
            4,
            Pacing::Closed { window: 4 },
            Stop::Duration(Duration::from_secs(5)),
            12_000,
        );
        sc.payload_bytes = 100_000;
        sc.io = io;
        let o = loadgen::run(&sc, router.local_addr(), None, None);
        let res = result(&sc, &o);
        let a = &res.accounting;
        assert!(a.closed, "{io:?}: {a:?} {:?}", res.errors);
        assert!(a.requests_sent > 0 && a.replies_delivered == 0, "{io:?}: {a:?}");
        assert_eq!(a.request_errors, 0, "{io:?}: {:?}", res.errors);
        assert_eq!(res.errors.get("connection_lost"), Some(&a.unanswered), "{:?}", res.errors);
        assert_eq!(a.requests_sent, a.unanswered, "{io:?}: {a:?}");
        let refused = res.errors.get("frame_too_large").copied().unwrap_or(0);
        assert!((1..=4).contains(&refused), "{io:?}: {:?}", res.errors);
        assert_eq!(res.status, "failed");
        assert!(o.all_connections_lost, "{io:?}: {:?}", o.failures);
        router.stop();
    }
}

/// A server on 127.0.0.1 that hands each of its first 64 connections to `serve` on a thread of
/// its own: the fake peers below.
fn serve_loopback(serve: fn(TcpStream)) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(64) {
            let Ok(stream) = stream else { return };
            std::thread::spawn(move || serve(stream));
        }
    });
    addr
}

/// A WebSocket server that speaks just enough of the seed JSON protocol to register agents,
/// then never answers anything else: a stalled router.
#[allow(clippy::result_large_err)] // tungstenite's handshake callback type, not ours
fn stalled_json_router() -> SocketAddr {
    serve_loopback(|stream| {
        let choose = |_: &tungstenite::handshake::server::Request,
                      mut resp: tungstenite::handshake::server::Response| {
            resp.headers_mut().insert("Sec-WebSocket-Protocol", "a2a".parse().unwrap());
            Ok(resp)
        };
        let Ok(mut ws) = tungstenite::accept_hdr(stream, choose) else { return };
        while let Ok(msg) = ws.read() {
            if msg.to_text().unwrap_or_default().contains("\"register\"") {
                let _ = ws.send(tungstenite::Message::text(r#"{"type":"ack"}"#));
            }
        }
    })
}

#[test]
fn a_stalled_json_router_ends_the_run_with_a_clear_error() {
    // Proves the JSON protocol rides the same loop as native frames, stall timeout included: a
    // router that registers agents and then never answers ends a count-mode run, failed, with
    // the stall named and every request counted as drain_timeout.
    let addr = stalled_json_router();
    let url = format!("ws://{addr}");
    let (_dir, output) = temp("stalled.json");
    let started = Instant::now();
    let (code, stdout, _) = bench(&[
        "--router",
        &url,
        "--protocol",
        "json",
        "--agents",
        "2",
        "--topologies",
        "ring",
        "--messages",
        "10",
        "--repeat",
        "1",
        "--warmup",
        "0",
        "--drain-timeout",
        "1",
        "--output",
        output.to_str().unwrap(),
    ]);
    assert!(started.elapsed() < Duration::from_secs(15), "took {:?}", started.elapsed());
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("the router stalled"), "{stdout}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&output).unwrap()).unwrap();
    let run = &report["results"][0];
    assert_eq!(run["accounting"]["closed"], true, "{run}");
    assert!(run["errors"]["drain_timeout"].as_u64().unwrap() > 0, "{run}");
}

/// Starts the benchmark binary with `args` and waits until a line of its stdout satisfies
/// `ready` (the readiness signal); returns the child and the rest of its stdout.
fn spawn_until(
    args: &[&str],
    ready: impl Fn(&str) -> bool,
) -> (std::process::Child, BufReader<std::process::ChildStdout>) {
    let mut child =
        Command::new(BIN).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !ready(&line) {
        line.clear();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "the benchmark ended early");
    }
    (child, stdout)
}

/// Sends Ctrl-C (SIGINT) to `child`.
fn ctrl_c(child: &std::process::Child) {
    let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
}

#[test]
fn ctrl_c_keeps_what_finished_and_exits_130() {
    // Proves the first Ctrl-C stops the current run, drains it and writes the report of every
    // run that finished, marked interrupted, with exit code 130.
    let (_dir, output) = temp("interrupted.json");
    let out = output.to_str().unwrap();
    let args = [
        "--agents",
        "4",
        "--topologies",
        "ring",
        "--duration",
        "0.5",
        "--warmup",
        "0.1",
        "--repeat",
        "30",
        "--output",
        out,
    ];
    // Readiness: the first run's line.
    let (mut child, mut stdout) = spawn_until(&args, |l| l.trim_start().starts_with("1 "));
    ctrl_c(&child);
    let sent = Instant::now();
    let mut rest = String::new();
    let _ = stdout.read_to_string(&mut rest);
    let status = child.wait().unwrap();
    assert!(sent.elapsed() < Duration::from_secs(10), "took {:?}", sent.elapsed());
    assert_eq!(status.code(), Some(130), "{rest}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&output).unwrap()).unwrap();
    assert_eq!(report["interrupted"], true);
    let results = report["results"].as_array().unwrap();
    assert!((1..30).contains(&results.len()), "{} runs reported", results.len());
    // A loaded machine may make a 0.5 s window shorter than 10× its p99 (`too_short`).
    let first = results[0]["status"].as_str().unwrap();
    assert!(["ok", "too_short"].contains(&first), "{}", results[0]);
    assert!(results.iter().all(|r| r["accounting"]["closed"] == true));
    assert!(rest.contains("interrupted"), "{rest}");
}

#[test]
fn a_bad_output_path_fails_before_any_run() {
    // Proves --output is checked before the first run: one line naming the flag, no run header.
    let (code, stdout, stderr) =
        bench(&["--quick", "--output", "/nonexistent-a2a-dir/x.json", "--agents", "3"]);
    assert_eq!(code, Some(1));
    assert!(stdout.is_empty(), "it ran: {stdout}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--output"), "{stderr}");
}

/// A server that answers whatever it reads with an HTTP error, as a web server would.
fn http_server() -> SocketAddr {
    serve_loopback(|mut s| {
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf);
        let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        // Closed with the client's later bytes unread, the socket would answer them with a
        // reset, which can reach the client before the answer is read (seen once under
        // `make test-stress`): say goodbye and read to the end first, as a server does.
        let _ = s.shutdown(std::net::Shutdown::Write);
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
    })
}

/// A WebSocket server that picks no subprotocol.
fn plain_ws_server() -> SocketAddr {
    serve_loopback(|stream| {
        if let Ok(mut ws) = tungstenite::accept(stream) {
            while ws.read().is_ok() {}
        }
    })
}

#[test]
fn a_wrong_or_missing_peer_gets_one_line_and_no_more_runs() {
    // Proves each unreachable or wrong peer ends the whole grid at once with one line saying
    // what is wrong: nothing listening, an HTTP server, a WebSocket server without our
    // subprotocol, and a silent peer asked for stats.
    // A port bound and not listening: refused, and no other test can take it meanwhile (a
    // listener's port let go could be, with the suite running in several copies at once).
    let unlistened =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    unlistened.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into()).unwrap();
    let closed = unlistened.local_addr().unwrap().as_socket().unwrap();
    let cases = [
        (format!("tcp://{closed}"), "connection refused"),
        (format!("tcp://{}", http_server()), "the peer speaks HTTP, not a2a-bench frames"),
        (format!("ws://{}", plain_ws_server()), "for the seed JSON protocol add --protocol json"),
    ];
    for (url, expected) in cases {
        let started = Instant::now();
        let (_dir, out) = temp("peer.json");
        let (code, stdout, stderr) = bench(&[
            "--router",
            &url,
            "--quick",
            "--agent-cores",
            "0",
            "--output",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, Some(1), "{url}: {stdout}");
        assert_eq!(stderr.lines().count(), 1, "{url}: {stderr}");
        assert!(stderr.contains(expected), "{url}: {stderr}");
        assert!(!stdout.contains("  1  "), "{url}: a run was reported: {stdout}");
        assert!(started.elapsed() < Duration::from_secs(12), "{url}: {:?}", started.elapsed());
    }
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("tcp://{}", silent.local_addr().unwrap());
    let (code, _, stderr) = bench(&["stats", "--router", &url]);
    assert_eq!(code, Some(1));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no answer from"), "{stderr}");
}

#[test]
fn a_negative_count_names_its_flag() {
    // Proves a negative number is read as the flag's value and refused naming the flag.
    let (code, _, stderr) = bench(&["--agents", "-5"]);
    assert!(matches!(code, Some(1 | 2)), "{code:?}");
    assert!(stderr.contains("--agents"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn placement_mistakes_are_refused_or_warned_in_one_line() {
    // Proves placement is never silent: more baseline threads than cores are refused naming
    // --threads; router and agents on one core run, with one warning line saying so; and
    // `--intervals 0` is the seed's "send without pause", closed loop.
    let cores = Machine::detect().cores.len();
    if cores < 64 {
        let threads = (cores + 1).to_string();
        let (code, _, stderr) = bench(&["baseline-router", "--threads", &threads]);
        assert_eq!(code, Some(1));
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("--threads"), "{stderr}");
    }
    let (_dir, out) = temp("one-core.json");
    let args =
        ["--router-cores", "0", "--agent-cores", "0", "--agents", "3", "--topologies", "ring"];
    let quick = ["--duration", "0.2", "--warmup", "0.05", "--repeat", "1", "--intervals", "0"];
    let (code, stdout, stderr) =
        bench(&[&args[..], &quick[..], &["--output", out.to_str().unwrap()]].concat());
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    // Other tests running beside this one may add a busy-machine warning: not what is checked.
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.contains("other processes used")).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].starts_with("warning: the router and the agents share core(s) 0"), "{stderr}");
    assert!(stdout.contains("closed w16"), "--intervals 0 is closed loop: {stdout}");
}

#[test]
fn a_second_ctrl_c_exits_at_once() {
    // Proves the second Ctrl-C does not wait: against a router that never answers, the first
    // Ctrl-C starts a drain that would last the 30 s drain timeout; the second ends the process
    // at once with exit code 130.
    let addr = stalled_json_router();
    let (_dir, output) = temp("second-ctrl-c.json");
    let (url, out) = (format!("ws://{addr}"), output.to_str().unwrap());
    let args = [
        "--router",
        &url,
        "--protocol",
        "json",
        "--agents",
        "2",
        "--agent-cores",
        "0",
        "--topologies",
        "ring",
        "--duration",
        "30",
        "--drain-timeout",
        "30",
        "--repeat",
        "1",
        "--output",
        out,
    ];
    // Readiness: the run header.
    let (mut child, _stdout) = spawn_until(&args, |l| l.contains("runs against"));
    ctrl_c(&child);
    // Readiness: the first Ctrl-C is acknowledged (two signals sent at once may merge into one).
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("interrupted:") {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "the benchmark ended early");
    }
    ctrl_c(&child);
    let sent = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = rx.recv_timeout(Duration::from_secs(10)).expect("exits at once").unwrap();
    assert!(sent.elapsed() < Duration::from_secs(5), "took {:?}", sent.elapsed());
    assert_eq!(status.code(), Some(130));
}

#[test]
fn tune_check_strict_fails_when_a_key_differs() {
    // Proves `sysctl/tune.sh check --strict` (make tune-check STRICT=1) exits 0 when the host
    // matches the profile and 1 when a key differs, so CI can gate on it; plain `check` never
    // fails.
    let have = std::fs::read_to_string("/proc/sys/kernel/pid_max").unwrap().trim().to_string();
    let other = (have.parse::<u64>().unwrap() - 1).to_string();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/sysctl/tune.sh");
    let run = |value: &str, strict: bool| {
        let (_dir, conf) = temp(&format!("tune-{value}.conf"));
        std::fs::write(&conf, format!("kernel.pid_max = {value}\n")).unwrap();
        let mut args = vec![script, "check"];
        if strict {
            args.push("--strict");
        }
        let out =
            std::process::Command::new("bash").args(&args).arg(&conf).output().expect("bash runs");
        out.status.code()
    };
    assert_eq!(run(&have, true), Some(0));
    assert_eq!(run(&other, true), Some(1));
    assert_eq!(run(&other, false), Some(0));
}

#[test]
fn lost_wake_ups_are_said_under_the_run_and_kept_in_the_report() {
    // Proves a run during which the process's socket rings slept past work (parks only the
    // fallback timer ended) says so under its line and keeps the count in its report entry,
    // and that a run without any says nothing and has no such key.
    let r = router_on_first_core();
    let sc = scenario(2, Pacing::Closed { window: 1 }, Stop::Count { per_agent: 50 }, 7_900);
    let o = loadgen::run(&sc, r.local_addr(), Some(&r), None);
    r.stop();
    let mut res = result(&sc, &o);
    let render = |res: &RunResult| {
        let mut line = Vec::new();
        a2a_bench::report::text::run_line(&mut line, 1, res).unwrap();
        (String::from_utf8(line).unwrap(), serde_json::to_value(res).unwrap())
    };
    let (text, json) = render(&res);
    assert!(!text.contains("lost wake-ups"), "{text}");
    assert!(json.get("lost_wakeups").is_none(), "{json}");
    res.lost_wakeups = Some(3);
    let (text, json) = render(&res);
    assert!(text.contains("3 lost wake-ups"), "{text}");
    assert!(text.contains("20 ms"), "{text}");
    assert_eq!(json["lost_wakeups"], 3);
}
