//! `a2a-bench http`: every pattern against the reference targets, and the error cases against
//! scripted servers (JSON-RPC errors, bad SSE, a lost session, no session id, a missing token,
//! a server that stops answering). The binary runs as a child, bounded in time.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use a2a_bench::targets::{Kind, Target};
use serde_json::{json, Value};

use crate::support::run_bin;

const LIMIT: Duration = Duration::from_secs(60);

/// Runs `a2a-bench http` with a short grid; returns (exit ok, stdout + stderr, report).
fn http(args: &[&str]) -> (bool, String, Option<Value>) {
    let dir = tempdir();
    let out = dir.join("r.json");
    let mut all = vec!["http", "--output", out.to_str().unwrap()];
    for (flag, value) in
        [("--duration", "0.5"), ("--warmup", "0.1"), ("--repeat", "1"), ("--interval", "0")]
    {
        if !args.contains(&flag) {
            all.extend_from_slice(&[flag, value]);
        }
    }
    all.extend_from_slice(args);
    let o = run_bin(&all, LIMIT);
    let text =
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let report = std::fs::read_to_string(&out).ok().and_then(|s| serde_json::from_str(&s).ok());
    (o.status.success(), text, report)
}

fn tempdir() -> crate::support::Scratch {
    crate::support::scratch("http")
}

fn run(report: &Value) -> &Value {
    &report["results"][0]
}

/// The run succeeded or was only too short (a loaded machine), with no error, every pattern
/// answered, and the accounting closed.
fn assert_clean(report: &Value, patterns: &[&str]) {
    let r = run(report);
    assert!(r["accounting"]["closed"].as_bool().unwrap(), "{r}");
    assert_eq!(r["errors"], serde_json::json!({}), "{}", r["failure"]);
    assert!(matches!(r["status"].as_str(), Some("ok" | "too_short")), "{}", r["status"]);
    let got: Vec<&str> =
        r["patterns"].as_array().unwrap().iter().map(|p| p["pattern"].as_str().unwrap()).collect();
    assert_eq!(got, patterns);
    for p in r["patterns"].as_array().unwrap() {
        assert!(p["ok"].as_u64().unwrap() > 0, "{p}");
        assert_eq!(p["errors"], 0, "{p}");
        assert!(p["latency"]["p50_ms"].as_f64().unwrap() > 0.0, "{p}");
        // One latency per answer measured: whether the pattern's histogram is its own (a mix)
        // or the run's (one pattern).
        assert_eq!(p["latency"]["count"], p["ok"], "{p}");
    }
    let sent = r["accounting"]["requests_sent"].as_u64().unwrap();
    assert_eq!(r["accounting"]["replies_delivered"].as_u64().unwrap(), sent);
}

/// Runs `a2a-bench http` with `args`, which must fail with every request it sent an error of
/// `kind`, and its accounting closed; returns the report.
fn check_every_request_fails(args: &[&str], kind: &str) -> Value {
    let (ok, text, report) = http(args);
    assert!(!ok, "{text}");
    let report = report.unwrap_or_else(|| panic!("no report: {text}"));
    let r = run(&report);
    let sent = r["accounting"]["requests_sent"].as_u64().unwrap();
    assert!(r["accounting"]["closed"].as_bool().unwrap() && sent > 0, "{r}");
    assert_eq!(r["errors"][kind].as_u64(), Some(sent), "{kind}: {}", r["errors"]);
    report
}

fn pattern<'a>(report: &'a Value, name: &str) -> &'a Value {
    run(report)["patterns"].as_array().unwrap().iter().find(|p| p["pattern"] == name).unwrap()
}

#[test]
fn a_stream_whose_events_come_apart_is_timed_to_its_first_event_and_to_its_last() {
    // Proves time to first event against a stream that takes time: the echo agent sends a
    // task's three events 40 ms apart, each its own chunk (or HTTP/2 DATA frame); over
    // HTTP/1.1 and HTTP/2, and as a gRPC server stream, the first event is timed when it comes,
    // long before the answer ends (two gaps later).
    let (_t, url) = echo_with_event_gap(Duration::from_millis(40));
    for (version, mix) in [
        (None, "a2a:stream,a2a-v03:stream"),
        (Some("--http2"), "a2a:stream,a2a-v03:stream"),
        (None, "a2a-grpc:stream,a2a-rest:stream"),
    ] {
        let mut args = vec!["--url", &url, "--pattern", mix];
        args.extend(["--agents", "2", "--duration", "1", "--warmup", "0.2"]);
        args.extend(version);
        let (ok, text, report) = http(&args);
        let report = report.unwrap_or_else(|| panic!("no report: {text}"));
        assert!(ok, "{version:?}: {text}");
        let streams: Vec<&str> = mix.split(',').collect();
        assert_clean(&report, &streams);
        for stream in streams {
            let p = pattern(&report, stream);
            assert_eq!(p["events_per_answer"], 3.0, "{p}");
            let first = p["first_event"]["p50_ms"].as_f64().unwrap();
            let last = p["latency"]["p50_ms"].as_f64().unwrap();
            assert!(last >= 2.0 * 40.0, "{version:?}: the answer ended in {last} ms: {p}");
            assert!(first < last - 40.0, "{version:?}: first event {first} ms, last {last}: {p}");
        }
    }
}

#[test]
fn a_client_whose_answers_take_long_does_not_watch_for_them() {
    // Proves the agent core's watch rule end to end: against streams that take 6 ms (three
    // events 3 ms apart), watching for the next event buys nothing, and the client core sleeps
    // at once when it has nothing to do: the report's `cpu.agent_watch` is under a thousandth
    // of the core over the window (before, it watched 20 µs or more per wait: 1.1 % of the
    // core, a fifth of its busy time). Not 0: a wait of a few microseconds before a deadline is
    // watched through whatever the rule (`NEAR_WAIT`; 2–4 millionths of the core seen here).
    if a2a_bench::transport::uring::supported().is_err() {
        return;
    }
    let (_t, url) = echo_with_event_gap(Duration::from_millis(3));
    let args = ["--url", &url, "--pattern", "a2a:stream", "--agents", "4", "--warmup", "0.2"];
    let (ok, text, report) = http(&args);
    let report = report.unwrap_or_else(|| panic!("no report: {text}"));
    assert!(ok, "{text}");
    assert_clean(&report, &["a2a:stream"]);
    let cpu = &run(&report)["cpu"];
    let watch = cpu["agent_watch"].as_array().unwrap();
    let under = |w: &serde_json::Value| w.as_f64().is_some_and(|w| w < 0.001);
    assert!(!watch.is_empty() && watch.iter().all(under), "{cpu}");
    assert!(cpu["agent_cores"][0].as_f64().unwrap() > 0.0, "{cpu}");
}

#[test]
fn every_a2a_pattern_is_answered_by_the_echo_agent() {
    // Proves the A2A patterns end to end against the reference agent: v1.0 message, stream
    // (events counted, time to first event), conversation (context kept), agent card, v0.3
    // message, stream and conversation, all in one mix reported per pattern, with nothing
    // lost.
    let t = Target::start(Kind::A2aEcho, "127.0.0.1:0".parse().unwrap(), 1).unwrap();
    let url = format!("http://{}/", t.local_addr());
    let mix = "a2a:message,a2a:stream,a2a:conversation,a2a:agent_card,a2a-v03:message,\
               a2a-v03:stream,a2a-v03:conversation";
    let (ok, text, report) = http(&["--url", &url, "--pattern", mix, "--agents", "3"]);
    let report = report.unwrap_or_else(|| panic!("no report: {text}"));
    assert!(ok, "{text}");
    assert_clean(&report, &mix.split(',').collect::<Vec<_>>());
    for stream in ["a2a:stream", "a2a-v03:stream"] {
        let p = pattern(&report, stream);
        assert_eq!(p["events_per_answer"], 3.0, "{p}");
        assert!(p["first_event"]["p50_ms"].as_f64().unwrap() > 0.0, "{p}");
    }
    assert_eq!(report["config"]["protocol"], "http");
    assert_eq!(report["config"]["http"]["url"], url.as_str());
    assert_eq!(run(&report)["connections"], 3, "one connection per client");
    assert_eq!(report["summary"]["throughput_unit"], "answered HTTP requests per second");
    // `health` GETs the URL; clients share one connection, two requests pipelined.
    let url = format!("http://{}/health", t.local_addr());
    let (ok, text, report) = http(&[
        "--url",
        &url,
        "--pattern",
        "health",
        "--agents",
        "4",
        "--connections",
        "1",
        "--pipeline",
        "2",
        "--window",
        "2",
    ]);
    assert!(ok, "{text}");
    let report = report.unwrap();
    assert_clean(&report, &["health"]);
    assert_eq!(run(&report)["connections"], 1);
    // More connections than clients: one per client, and the run says so.
    let (ok, text, report) =
        http(&["--url", &url, "--pattern", "health", "--agents", "3", "--connections", "50"]);
    assert!(ok, "{text}");
    assert_eq!(run(&report.unwrap())["connections"], 3);
    // On two cores, 10 clients share exactly the 5 asked (two cores' even split of the
    // clients had opened 6), and so do 16 clients, sitting 3 or 4 to a connection (4 to each
    // had opened 4).
    if a2a_bench::placement::Machine::detect().cores.len() < 2 {
        return;
    }
    let two = ["--agent-cores", "0,1"];
    let (ok, text, report) =
        http(&[&["--url", &url, "--agents", "10", "--connections", "5"][..], &two].concat());
    assert!(ok, "{text}");
    assert_eq!(run(&report.unwrap())["connections"], 5, "{text}");
    assert!(!text.contains("--connections 5:"), "{text}");
    let (ok, text, report) =
        http(&[&["--url", &url, "--agents", "16", "--connections", "5"][..], &two].concat());
    assert!(ok, "{text}");
    let report = report.unwrap();
    assert_eq!(run(&report)["connections"], 5, "{text}");
    assert_clean(&report, &["health"]);
}

/// Runs `mix` against `url` with 3 clients over HTTP/1.1, then h2c: every pattern answered,
/// nothing lost, and each stream's three events counted.
fn answered_over_h1_and_h2c(url: &str, mix: &str) {
    for h2 in [false, true] {
        let mut args = vec!["--url", url, "--pattern", mix, "--agents", "3"];
        if h2 {
            args.push("--http2");
        }
        let (ok, text, report) = http(&args);
        let report = report.unwrap_or_else(|| panic!("no report: {text}"));
        assert!(ok, "{text}");
        assert_clean(&report, &mix.split(',').collect::<Vec<_>>());
        for stream in mix.split(',').filter(|p| p.ends_with(":stream")) {
            assert_eq!(pattern(&report, stream)["events_per_answer"], 3.0, "{stream}, h2 {h2}");
        }
    }
}

#[test]
fn the_a2a_http_json_binding_is_answered_and_its_errors_named_by_reason() {
    // Proves A2A's HTTP+JSON binding end to end: message, stream and conversation (context
    // kept) against the echo agent under a tenant's path, over HTTP/1.1 and h2c (events
    // counted, nothing lost); a version
    // the agent refuses is named by the reason in its google.rpc.Status body; a scripted
    // server that checks the request line and the version header answers 404 TASK_NOT_FOUND
    // to every request, each counted as `a2a_task_not_found`, and a stream's error event is
    // named by its reason too.
    let t = Target::start(Kind::A2aEcho, "127.0.0.1:0".parse().unwrap(), 1).unwrap();
    let url = format!("http://{}/tenant-1", t.local_addr());
    answered_over_h1_and_h2c(&url, "a2a-rest:message,a2a-rest:stream,a2a-rest:conversation");
    // A pattern's own thresholds: checked against that pattern's figures, one that fails
    // makes the exit code 99.
    let (ok, text, report) = http(&[
        "--url",
        &url,
        "--pattern",
        "a2a-rest:message,a2a-rest:stream",
        "--agents",
        "2",
        "--threshold",
        "errors{a2a-rest:stream}==0",
        "--threshold",
        "throughput{a2a-rest:message}>1",
        "--threshold",
        "p50{a2a-rest:stream}<1ns",
    ]);
    assert!(!ok && text.contains("thresholds: 2 of 3 held"), "{text}");
    let checks = report.unwrap()["thresholds"].as_array().unwrap().clone();
    let passed: Vec<bool> = checks.iter().map(|c| c["passed"].as_bool().unwrap()).collect();
    assert_eq!(passed, [true, true, false], "{checks:?}");
    assert!(checks[1]["actual_text"].as_str().unwrap().ends_with("answers/s"), "{checks:?}");
    let old = ["--header", "A2A-Version: 0.3"];
    let args = ["--url", &url, "--pattern", "a2a-rest:message", "--agents", "2"];
    check_every_request_fails(&[&args[..], &old].concat(), "a2a_version_not_supported");

    let addr = scripted(|_, request| {
        let asked = request.starts_with("POST /t/message:send HTTP/1.1\r\n")
            || request.starts_with("POST /t/message:stream HTTP/1.1\r\n");
        if !asked || !request.contains("\r\nA2A-Version: 1.0\r\n") {
            return Some(response("400 Bad Request", "text/plain", "", "not what A2A sends"));
        }
        if request.starts_with("POST /t/message:stream") {
            let events = "data: {\"task\":{\"id\":\"t\"}}\n\nevent: error\ndata: {\"error\":{\"code\":400,\"details\":[{\"reason\":\"UNSUPPORTED_OPERATION\"}]}}\n\n";
            return Some(response("200 OK", "text/event-stream", "", events));
        }
        let body = r#"{"error":{"code":404,"status":"NOT_FOUND","message":"no task","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"TASK_NOT_FOUND","domain":"a2a-protocol.org"}]}}"#;
        Some(response("404 Not Found", "application/a2a+json", "", body))
    });
    let url = format!("http://{addr}/t");
    for (p, kind) in [
        ("a2a-rest:message", "a2a_task_not_found"),
        ("a2a-rest:stream", "a2a_unsupported_operation"),
    ] {
        check_every_request_fails(&["--url", &url, "--pattern", p, "--agents", "2"], kind);
    }
}

#[test]
fn the_a2a_v03_http_json_binding_is_answered_beside_v1() {
    // Proves v0.3's HTTP+JSON binding end to end: message, stream and conversation (context
    // kept) against the echo agent
    // under a tenant's path, beside v1.0's binding on the same base, over HTTP/1.1 and h2c
    // (the stream's three events counted); a scripted server that checks what v0.3 sends
    // (POST {base}/v1/message:send, the parts in `content`, `blocking: true`, no A2A-Version)
    // answers 404 with v0.3's `{"message"}` body to every request, each counted as http_404
    // (anything else would be http_400).
    let t = Target::start(Kind::A2aEcho, "127.0.0.1:0".parse().unwrap(), 1).unwrap();
    let url = format!("http://{}/tenant-1", t.local_addr());
    answered_over_h1_and_h2c(
        &url,
        "a2a-v03-rest:message,a2a-v03-rest:stream,a2a-v03-rest:conversation,a2a-rest:message",
    );
    let addr = scripted(|_, request| {
        let v03 = request.starts_with("POST /t/v1/message:send HTTP/1.1\r\n")
            && request.contains(r#""content":[{"text":"#)
            && request.contains(r#""configuration":{"blocking":true}"#)
            && !request.to_ascii_lowercase().contains("\r\na2a-version:");
        if !v03 {
            return Some(response("400 Bad Request", "text/plain", "", "not what v0.3 sends"));
        }
        Some(response("404 Not Found", "application/json", "", r#"{"message":"no task"}"#))
    });
    let url = format!("http://{addr}/t");
    let args = ["--url", &url, "--pattern", "a2a-v03-rest:message", "--agents", "2"];
    check_every_request_fails(&args, "http_404");
}

#[test]
fn the_a2a_grpc_binding_is_answered_and_its_errors_named() {
    // Proves A2A's gRPC binding end to end: message, stream (events counted, the first one
    // timed) and conversation (context kept) against the echo agent under a prefix, mixed
    // with a JSON-RPC pattern, all over the HTTP/2 the gRPC patterns imply; a version the
    // agent refuses is named by the reason in its grpc-status-details-bin; a scripted server's
    // bare NOT_FOUND, cut message and missing status are each an error of their kind.
    let t = Target::start(Kind::A2aEcho, "127.0.0.1:0".parse().unwrap(), 1).unwrap();
    let url = format!("http://{}/tenant-1", t.local_addr());
    let mix = "a2a-grpc:message,a2a-grpc:stream,a2a-grpc:conversation,a2a:message";
    let (ok, text, report) = http(&["--url", &url, "--pattern", mix, "--agents", "4"]);
    let report = report.unwrap_or_else(|| panic!("no report: {text}"));
    assert!(ok, "{text}");
    assert_clean(&report, &mix.split(',').collect::<Vec<_>>());
    assert_eq!(report["config"]["http"]["http2"], true);
    assert!(t.http2_requests() > 0);
    let stream = pattern(&report, "a2a-grpc:stream");
    assert_eq!(stream["events_per_answer"], 3.0, "{stream}");
    assert!(stream["first_event"]["p50_ms"].as_f64().unwrap() > 0.0, "{stream}");
    let old = ["--header", "A2A-Version: 0.3"];
    let args = ["--url", &url, "--pattern", "a2a-grpc:message", "--agents", "2"];
    check_every_request_fails(&[&args[..], &old].concat(), "a2a_version_not_supported");

    for (act, kind) in [
        (H2Act::GrpcNotFound, "grpc_not_found"),
        (H2Act::GrpcCut, "protocol_bad_grpc"),
        (H2Act::GrpcNoStatus, "protocol_grpc_no_status"),
    ] {
        let addr = h2_scripted(move |_, _| act);
        let url = format!("http://{addr}/");
        let args = ["--url", &url, "--pattern", "a2a-grpc:message", "--agents", "2"];
        check_every_request_fails(&args, kind);
    }
}

#[test]
fn the_a2a_v03_grpc_binding_is_answered_and_its_errors_named() {
    // Proves v0.3's gRPC binding end to end: message, stream (events counted), conversation
    // (context kept) and GetAgentCard against the echo agent under a prefix, beside v1.0's
    // binding, over the HTTP/2 the gRPC patterns imply; an error a2a-sdk 0.3 names only by the
    // type at the head of grpc-message (no status details) is named by it, for v0.3's
    // patterns and v1.0's alike; a bare NOT_FOUND stays grpc_not_found.
    let t = Target::start(Kind::A2aEcho, "127.0.0.1:0".parse().unwrap(), 1).unwrap();
    let url = format!("http://{}/tenant-1", t.local_addr());
    let mix = "a2a-v03-grpc:message,a2a-v03-grpc:stream,a2a-v03-grpc:conversation,a2a-v03-grpc:agent_card,a2a-grpc:message";
    let (ok, text, report) = http(&["--url", &url, "--pattern", mix, "--agents", "5"]);
    let report = report.unwrap_or_else(|| panic!("no report: {text}"));
    assert!(ok, "{text}");
    assert_clean(&report, &mix.split(',').collect::<Vec<_>>());
    assert_eq!(report["config"]["http"]["http2"], true);
    assert_eq!(pattern(&report, "a2a-v03-grpc:stream")["events_per_answer"], 3.0);
    for (pattern, act, kind) in [
        ("a2a-v03-grpc:message", H2Act::GrpcV03NotFound, "a2a_task_not_found"),
        ("a2a-grpc:message", H2Act::GrpcV03NotFound, "a2a_task_not_found"),
        ("a2a-v03-grpc:agent_card", H2Act::GrpcNotFound, "grpc_not_found"),
    ] {
        let addr = h2_scripted(move |_, _| act);
        let url = format!("http://{addr}/");
        let args = ["--url", &url, "--pattern", pattern, "--agents", "2"];
        check_every_request_fails(&args, kind);
    }
}

/// The echo agent, its tasks working `task_time`, and its URL.
/// The reference echo agent, sending a stream's events `gap` apart (each its own chunk), and
/// its URL.
fn echo_with_event_gap(gap: Duration) -> (Target, String) {
    use a2a_bench::targets::Options;
    let options = Options { threads: 1, event_gap: gap, ..Options::default() };
    let t = Target::start_options(Kind::A2aEcho, "127.0.0.1:0".parse().unwrap(), options).unwrap();
    let url = format!("http://{}/", t.local_addr());
    (t, url)
}

fn echo_with_tasks(task_time: Duration) -> (Target, String) {
    use a2a_bench::targets::Options;
    let options = Options { threads: 1, task_time, ..Options::default() };
    let t = Target::start_options(Kind::A2aEcho, "127.0.0.1:0".parse().unwrap(), options).unwrap();
    let url = format!("http://{}/", t.local_addr());
    (t, url)
}

/// Runs `a2a-bench http` with `args` against an echo agent whose tasks work 30 ms: the
/// `json` mix over HTTP/1.1 and HTTP/2, the `grpc` mix in gRPC; each run clean, then `check`ed
/// (report, output, HTTP version flag, mix).
fn against_tasks_of_30_ms(
    json: &[&str],
    grpc: &[&str],
    args: &[&str],
    check: impl Fn(&Value, &str, Option<&str>, &[&str]),
) {
    against_tasks(Duration::from_millis(30), json, grpc, args, check)
}

/// [`against_tasks_of_30_ms`] with tasks that work `task_time`.
fn against_tasks(
    task_time: Duration,
    json: &[&str],
    grpc: &[&str],
    args: &[&str],
    check: impl Fn(&Value, &str, Option<&str>, &[&str]),
) {
    let (_echo, url) = echo_with_tasks(task_time);
    for (version, mix) in [(None, json), (Some("--http2"), json), (None, grpc)] {
        let patterns = mix.join(",");
        let mut all =
            vec!["--url", &url, "--pattern", &patterns, "--agents", "3", "--duration", "1"];
        all.extend(args);
        all.extend(version);
        let (ok, text, report) = http(&all);
        let report = report.unwrap_or_else(|| panic!("no report: {text}"));
        assert!(ok, "{version:?}: {text}");
        assert_clean(&report, mix);
        check(&report, &text, version, mix);
    }
}

#[test]
fn tasks_are_polled_until_they_end_and_timed_to_their_end() {
    // Proves the task patterns end to end against the echo agent, whose tasks work 30 ms:
    // each SendMessage (`returnImmediately`) is accepted within a few milliseconds, then
    // GetTask every 10 ms until the task completes; the answer is timed from the intended send
    // time to the GetTask that found it completed (over 30 ms), its polls counted (at least
    // two), in a mix with a plain message, over HTTP/1.1 and HTTP/2 and in the gRPC binding,
    // with nothing lost; v0.3's message/send (`blocking: false`) and tasks/get alike, in
    // JSON-RPC, in v0.3's HTTP+JSON binding and in its gRPC binding.
    let json = ["a2a:task", "a2a-rest:task", "a2a-v03:task", "a2a-v03-rest:task", "a2a:message"];
    let grpc = ["a2a-grpc:task", "a2a-v03-grpc:task", "a2a-grpc:message"];
    against_tasks_of_30_ms(&json, &grpc, &["--task-poll", "0.01"], |report, text, version, mix| {
        for name in mix.iter().filter(|p| p.ends_with(":task")) {
            let p = pattern(report, name);
            let (done, accepted) = (
                p["latency"]["p50_ms"].as_f64().unwrap(),
                p["accepted"]["p50_ms"].as_f64().unwrap(),
            );
            assert!(done >= 30.0 && accepted < done - 20.0, "{version:?}: {p}");
            assert!(p["polls_per_answer"].as_f64().unwrap() >= 2.0, "{version:?}: {p}");
            assert!(text.contains("polls"), "{text}");
        }
        let m = pattern(report, mix[mix.len() - 1]);
        assert!(m.get("accepted").is_none() && m.get("polls_per_answer").is_none(), "{m}");
        assert_eq!(report["config"]["http"]["task_poll_sec"], 0.01);
    });
}

#[test]
fn subscribed_tasks_are_answered_when_their_stream_says_they_ended() {
    // Proves the subscribe patterns end to end against the echo agent, whose tasks work 30 ms:
    // each SendMessage (`returnImmediately`) is followed at once by one SubscribeToTask, whose
    // stream tells the task's end as it happens (under 30 ms + 15 ms, where a GetTask every
    // 10 ms would be up to 10 ms late), in the three bindings, v0.3's tasks/resubscribe,
    // v0.3's HTTP+JSON GET /v1/tasks/{id}:subscribe and v0.3's gRPC TaskSubscription, over
    // HTTP/1.1 and HTTP/2.
    let json =
        ["a2a:subscribe", "a2a-rest:subscribe", "a2a-v03:subscribe", "a2a-v03-rest:subscribe"];
    let grpc = ["a2a-grpc:subscribe", "a2a-v03-grpc:subscribe"];
    against_tasks_of_30_ms(&json, &grpc, &[], |report, _, version, mix| {
        for name in mix {
            let p = pattern(report, name);
            let done = p["latency"]["p50_ms"].as_f64().unwrap();
            assert!((30.0..45.0).contains(&done), "{version:?}: {p}");
            assert_eq!(p["polls_per_answer"], 1.0, "{version:?}: {p}");
        }
    });
}

#[test]
fn a_subscription_refused_because_the_task_ended_asks_get_task() {
    // Proves the subscribe patterns' fallback: a server that refuses SubscribeToTask because
    // the task ended first (A2A's UnsupportedOperation, -32004) is asked GetTask, and the
    // completed task answers the booked request: no error, two follow-ups per task.
    let addr = scripted(|_, request| {
        let result = if request.contains("\"SubscribeToTask\"") {
            let e = r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32004,"message":"ended"}}"#;
            return Some(response("200 OK", "application/json", "", e));
        } else if request.contains("\"GetTask\"") {
            r#"{"id":"t-1","status":{"state":"TASK_STATE_COMPLETED"}}"#
        } else {
            r#"{"task":{"id":"t-1","status":{"state":"TASK_STATE_WORKING"}}}"#
        };
        let body = format!(r#"{{"jsonrpc":"2.0","id":1,"result":{result}}}"#);
        Some(response("200 OK", "application/json", "", &body))
    });
    let url = format!("http://{addr}/");
    let args = ["--url", &url, "--pattern", "a2a:subscribe", "--agents", "2", "--task-poll", "0"];
    let (ok, text, report) = http(&args);
    let report = report.unwrap_or_else(|| panic!("no report: {text}"));
    assert!(ok, "{text}");
    assert_clean(&report, &["a2a:subscribe"]);
    assert_eq!(pattern(&report, "a2a:subscribe")["polls_per_answer"], 2.0);
}

#[test]
fn a_resubscription_refused_as_a2a_sdk_0_3_refuses_it_asks_get_task() {
    // Proves the fallback for a2a-sdk 0.3, which ends a subscription's stream without the
    // task's final status at times (its gRPC binding, often) and refuses a subscription to a
    // task that ended as invalid params: the stream that ended with the task still working is
    // followed by one more subscription, whose refusal is followed by GetTask, and the
    // completed task answers the booked request (three follow-ups per task, no error); the
    // same refusal of a task's first subscription, which may be the server not reading what
    // it was sent, stays an error (jsonrpc_invalid_params).
    let refused = r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"Task t-1 is in terminal state: completed"}}"#;
    for first_refused in [false, true] {
        let subscriptions = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = subscriptions.clone();
        let addr = scripted(move |_, request| {
            if request.contains("\"tasks/resubscribe\"") {
                let n = seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if first_refused || n % 2 == 1 {
                    return Some(response("200 OK", "application/json", "", refused));
                }
                // The task's artifact, then the stream's end: no final status.
                let e = r#"{"jsonrpc":"2.0","id":1,"result":{"kind":"artifact-update","taskId":"t-1","contextId":"c","artifact":{"artifactId":"a","parts":[]}}}"#;
                let body = format!("data: {e}\n\n");
                return Some(response("200 OK", "text/event-stream", "", &body));
            }
            let result = if request.contains("\"tasks/get\"") {
                r#"{"kind":"task","id":"t-1","contextId":"c","status":{"state":"completed"}}"#
            } else {
                r#"{"kind":"task","id":"t-1","contextId":"c","status":{"state":"submitted"}}"#
            };
            let body = format!(r#"{{"jsonrpc":"2.0","id":1,"result":{result}}}"#);
            Some(response("200 OK", "application/json", "", &body))
        });
        let url = format!("http://{addr}/");
        let mut args = vec!["--url", &url, "--pattern", "a2a-v03:subscribe", "--agents", "1"];
        args.extend(["--task-poll", "0"]);
        if first_refused {
            check_every_request_fails(&args, "jsonrpc_invalid_params");
            continue;
        }
        let (ok, text, report) = http(&args);
        let report = report.unwrap_or_else(|| panic!("no report: {text}"));
        assert!(ok, "{text}");
        assert_clean(&report, &["a2a-v03:subscribe"]);
        assert_eq!(pattern(&report, "a2a-v03:subscribe")["polls_per_answer"], 3.0);
    }
}

#[test]
fn a_task_that_works_longer_than_the_stall_timeout_is_not_a_stall() {
    // Proves that a server answering GetTasks about tasks still working, or holding open the
    // subscriptions that began telling their events, is not stalled: the echo agent's tasks
    // work 1.2 s, past --drain-timeout 0.5, and the run ends with every task answered, none
    // counted as drain_timeout; polled over HTTP+JSON, subscribed to over JSON-RPC (HTTP/1.1)
    // and gRPC (HTTP/2).
    let (_echo, url) = echo_with_tasks(Duration::from_millis(1200));
    for mix in [&["a2a-rest:task"][..], &["a2a:subscribe"], &["a2a-grpc:subscribe"]] {
        let patterns = mix.join(",");
        let args = [
            "--url",
            &url,
            "--pattern",
            &patterns,
            "--agents",
            "2",
            "--duration",
            "0.3",
            "--warmup",
            "0",
            "--drain-timeout",
            "0.5",
            "--task-poll",
            "0.05",
        ];
        let (ok, text, report) = http(&args);
        let report = report.unwrap_or_else(|| panic!("no report: {text}"));
        assert!(ok, "{text}");
        assert!(!text.contains("stalled"), "{text}");
        let p = pattern(&report, mix[0]);
        assert!(p["latency"]["p50_ms"].as_f64().unwrap() >= 1200.0, "{p}");
        let follow_ups = p["polls_per_answer"].as_f64().unwrap();
        assert!(if mix[0].ends_with(":task") { follow_ups >= 10.0 } else { follow_ups == 1.0 });
        let r = run(&report);
        assert!(r["accounting"]["closed"].as_bool().unwrap(), "{r}");
        assert_eq!(r["errors"], serde_json::json!({}), "{}", r["failure"]);
    }
}

#[test]
fn a_task_that_never_ends_is_given_up_at_the_task_timeout() {
    // Proves the bound on a task: the echo agent's tasks work 5 s, a2a-bench gives each up
    // 0.3 s after its intended send time (`task_timeout`), so the run ends in about a second
    // with every task counted, not when (or if) the server finishes them: polled, and
    // subscribed to (the stream still open is cut: the connection over HTTP/1.1, the stream
    // over HTTP/2).
    let (_echo, url) = echo_with_tasks(Duration::from_secs(5));
    for pattern in ["a2a:task", "a2a-rest:subscribe", "a2a-grpc:subscribe"] {
        let args = [
            "--url",
            &url,
            "--pattern",
            pattern,
            "--agents",
            "2",
            "--task-poll",
            "0.05",
            "--task-timeout",
            "0.3",
            "--warmup",
            "0",
        ];
        let started = std::time::Instant::now();
        let report = check_every_request_fails(&args, "task_timeout");
        assert!(started.elapsed() < Duration::from_secs(4), "{pattern}: {:?}", started.elapsed());
        assert_eq!(report["config"]["http"]["task_timeout_sec"], 0.3);
    }
}

#[test]
fn notified_tasks_are_answered_when_their_end_is_pushed() {
    // Proves the push patterns end to end against the echo agent, whose tasks work 30 ms and
    // are then notified (a POST of their final status to the URL each SendMessage named):
    // each task is answered when its notification comes, 30 ms after it was accepted (no
    // polls), over HTTP/1.1 and HTTP/2, in the three bindings and in v0.3 (whose notification
    // is the task itself), authenticated with --push-auth (the receiver then requires it),
    // and the receiver says what it received.
    let (_echo, url) = echo_with_tasks(Duration::from_millis(30));
    let json = &["a2a:push", "a2a-rest:push", "a2a-v03:push", "a2a-v03-rest:push"][..];
    let grpc = &["a2a-grpc:push", "a2a-v03-grpc:push"][..];
    for (version, mix) in [
        (None, json),
        (Some("--http2"), json),
        (None, grpc),
        (Some("--push-auth"), json),
        (Some("--push-auth"), grpc),
    ] {
        let patterns = mix.join(",");
        let mut args = vec!["--url", &url, "--pattern", &patterns, "--agents", "3"];
        args.extend(["--duration", "1"]);
        args.extend(version);
        let (ok, text, report) = http(&args);
        let report = report.unwrap_or_else(|| panic!("no report: {text}"));
        assert!(ok, "{version:?}: {text}");
        assert_clean(&report, mix);
        for &name in mix {
            let p = pattern(&report, name);
            let (done, accepted) = (
                p["latency"]["p50_ms"].as_f64().unwrap(),
                p["accepted"]["p50_ms"].as_f64().unwrap(),
            );
            assert!((30.0..45.0).contains(&done) && accepted < done - 20.0, "{p}");
            assert!(p.get("polls_per_answer").is_none_or(Value::is_null), "{p}");
        }
        let said = text.lines().find(|l| l.starts_with("push notifications at http://127.0.0.1:"));
        let said = said.unwrap_or_else(|| panic!("{text}"));
        assert!(said.contains(" 0 refused"), "{said}");
    }
}

/// A short run of `pattern` against `url`: two clients, no warm-up, 0.3 s, a stall (or drain)
/// timeout of 0.5 s, and tasks given up `task_timeout` seconds after their intended send time.
fn brief_tasks<'a>(url: &'a str, pattern: &'a str, task_timeout: &'a str) -> [&'a str; 14] {
    #[rustfmt::skip]
    let args = [
        "--url", url, "--pattern", pattern, "--agents", "2", "--duration", "0.3", "--warmup", "0",
        "--drain-timeout", "0.5", "--task-timeout", task_timeout,
    ];
    args
}

/// POSTs a notification that task `t-1` is in `state` to the push URL and token of `request`
/// (a SendMessage of a push pattern), as a server would (with the `Authorization` its
/// config's authentication asks for, unless `ignore_auth`); returns the answer's status line.
fn notify(request: &str, token: Option<&str>, state: &str) -> String {
    notify_as(request, token, state, false)
}

fn notify_as(request: &str, token: Option<&str>, state: &str, ignore_auth: bool) -> String {
    let body = &request[request.find("\r\n\r\n").unwrap() + 4..];
    let call: Value = serde_json::from_str(body).unwrap();
    let config = &call["params"]["configuration"]["taskPushNotificationConfig"];
    let url = config["url"].as_str().unwrap();
    let (addr, path) = url.strip_prefix("http://").unwrap().split_once('/').unwrap();
    let token = token.unwrap_or(config["token"].as_str().unwrap());
    let auth = &config["authentication"];
    let authorization = match (auth["scheme"].as_str(), auth["credentials"].as_str()) {
        (Some(scheme), Some(credentials)) if !ignore_auth => {
            format!("Authorization: {scheme} {credentials}\r\n")
        }
        _ => String::new(),
    };
    let update = format!(r#"{{"statusUpdate":{{"taskId":"t-1","status":{{"state":"{state}"}}}}}}"#);
    let mut s = TcpStream::connect(addr).unwrap();
    let post = format!(
        "POST /{path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nX-A2A-Notification-Token: {token}\r\n{authorization}Content-Length: {}\r\nConnection: close\r\n\r\n{update}",
        update.len()
    );
    s.write_all(post.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.lines().next().unwrap_or_default().to_string()
}

#[test]
fn a_notified_end_is_taken_early_or_late_and_a_missing_one_times_out() {
    // Proves the push patterns' accounting against scripted servers, each task resolved once:
    // an end notified before the SendMessage is answered is kept until it is (answered); a
    // failed end notified later is `a2a_task_failed`; a notification with a wrong token is
    // refused (401), and its task, like one never notified, ends at --task-timeout as
    // `task_timeout`, not as a stall (the run waits on the task, not on the server); with
    // --push-auth, a notification with the Authorization the config asked for is taken, one
    // without it refused (401).
    let accepted = r#"{"jsonrpc":"2.0","id":1,"result":{"task":{"id":"t-1","status":{"state":"TASK_STATE_SUBMITTED"}}}}"#;
    for (case, kind) in [
        ("early", None),
        ("failed", Some("a2a_task_failed")),
        ("wrong token", Some("task_timeout")),
        ("never", Some("task_timeout")),
        ("authenticated", None),
        ("unauthenticated", Some("task_timeout")),
    ] {
        let addr = scripted(move |_, request| {
            match case {
                "early" => {
                    assert_eq!(notify(request, None, "TASK_STATE_COMPLETED"), "HTTP/1.1 200 OK")
                }
                "wrong token" => {
                    let got = notify(request, Some("nope"), "TASK_STATE_COMPLETED");
                    assert_eq!(got, "HTTP/1.1 401 Unauthorized");
                }
                "authenticated" => {
                    assert!(request.contains(r#""authentication":{"scheme":"Bearer""#));
                    assert_eq!(notify(request, None, "TASK_STATE_COMPLETED"), "HTTP/1.1 200 OK")
                }
                "unauthenticated" => {
                    let got = notify_as(request, None, "TASK_STATE_COMPLETED", true);
                    assert_eq!(got, "HTTP/1.1 401 Unauthorized");
                }
                "failed" => {
                    let request = request.to_string();
                    std::thread::spawn(move || {
                        std::thread::sleep(Duration::from_millis(20));
                        notify(&request, None, "TASK_STATE_FAILED");
                    });
                }
                _ => {}
            }
            Some(response("200 OK", "application/json", "", accepted))
        });
        let url = format!("http://{addr}/");
        let auth = if case.ends_with("authenticated") { &["--push-auth"][..] } else { &[] };
        let args = [&brief_tasks(&url, "a2a:push", "1")[..], auth].concat();
        let text = match kind {
            None => {
                let (ok, text, report) = http(&args);
                let report = report.unwrap_or_else(|| panic!("no report: {text}"));
                assert!(ok, "{case}: {text}");
                assert_clean(&report, &["a2a:push"]);
                text
            }
            Some(kind) => {
                let report = check_every_request_fails(&args, kind);
                let failure = run(&report)["failure"].as_str().unwrap_or("").to_string();
                assert!(!failure.contains("stalled"), "{case}: {failure}");
                String::new()
            }
        };
        if case == "early" || case == "authenticated" {
            assert!(text.contains(" 0 refused"), "{text}");
        }
    }
}

#[test]
fn a_subscription_whose_stream_never_began_is_a_stall() {
    // Proves where the stall check stops trusting a subscription: a server that answers
    // SubscribeToTask with a stream's head but no event has not answered (a stall at
    // --drain-timeout, counted as drain_timeout); once its first event told the task's
    // state, the open stream waits on the task, ended at --task-timeout (`task_timeout`).
    for (first_event, kind) in [("", "drain_timeout"), ("working", "task_timeout")] {
        let addr = scripted(move |_, request| {
            if request.contains("\"SubscribeToTask\"") {
                let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
                let event = match first_event {
                    "" => String::new(),
                    state => {
                        let e = format!(
                            r#"data: {{"jsonrpc":"2.0","id":1,"result":{{"task":{{"id":"t-1","status":{{"state":"{state}"}}}}}}}}"#
                        ) + "\n\n";
                        format!("{:x}\r\n{e}\r\n", e.len())
                    }
                };
                return Some(format!("{head}{event}").into_bytes());
            }
            let body = r#"{"jsonrpc":"2.0","id":1,"result":{"task":{"id":"t-1","status":{"state":"TASK_STATE_WORKING"}}}}"#;
            Some(response("200 OK", "application/json", "", body))
        });
        let url = format!("http://{addr}/");
        let args = brief_tasks(&url, "a2a:subscribe", "1.5");
        let report = check_every_request_fails(&args, kind);
        let failure = run(&report)["failure"].as_str().unwrap_or("").to_string();
        assert_eq!(failure.contains("the server stalled"), first_event.is_empty(), "{failure}");
    }
}

#[test]
fn a_task_that_fails_or_is_lost_is_an_error_by_kind() {
    // Proves a task's unsuccessful end counted by its kind, every booked request resolved
    // once: a task the server says failed on its first GetTask (`a2a_task_failed`), and one
    // the server no longer knows (`a2a_task_not_found`, JSON-RPC -32001).
    for (poll, kind) in [
        (r#"{"id":"t-1","status":{"state":"TASK_STATE_FAILED"}}"#, "a2a_task_failed"),
        ("", "a2a_task_not_found"),
    ] {
        let addr = scripted(move |_, request| {
            let result = if !request.contains("\"GetTask\"") {
                r#"{"task":{"id":"t-1","status":{"state":"TASK_STATE_SUBMITTED"}}}"#
            } else if poll.is_empty() {
                let e = r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32001,"message":"gone"}}"#;
                return Some(response("200 OK", "application/json", "", e));
            } else {
                poll
            };
            let body = format!(r#"{{"jsonrpc":"2.0","id":1,"result":{result}}}"#);
            Some(response("200 OK", "application/json", "", &body))
        });
        let url = format!("http://{addr}/");
        let args = ["--url", &url, "--pattern", "a2a:task", "--agents", "2", "--task-poll", "0"];
        let report = check_every_request_fails(&args, kind);
        let p = pattern(&report, "a2a:task");
        assert_eq!(p["ok"], 0, "{p}");
    }
}

#[test]
fn canceled_tasks_are_answered_when_the_cancel_takes() {
    // Proves the cancel patterns against the echo agent, whose tasks would work 1 s: each
    // task is canceled by one CancelTask sent as soon as it is accepted (JSON-RPC, HTTP+JSON's
    // POST /tasks/{id}:cancel, v0.3's tasks/cancel and POST /v1/tasks/{id}:cancel, gRPC,
    // v0.3's gRPC), over HTTP/1.1 and HTTP/2, and is
    // answered when the cancel says it is canceled, long before the task would have ended.
    // (Tasks of 30 ms were done now and then before a cancel delayed by three copies of the
    // suite at once reached them: `task_not_cancelable`, the agent's right answer.)
    let json = ["a2a:cancel", "a2a-rest:cancel", "a2a-v03:cancel", "a2a-v03-rest:cancel"];
    let grpc = ["a2a-grpc:cancel", "a2a-v03-grpc:cancel"];
    let long = Duration::from_secs(1);
    against_tasks(long, &json, &grpc, &[], |report, _, version, mix| {
        for &name in mix {
            let p = pattern(report, name);
            let (done, accepted) = (
                p["latency"]["p50_ms"].as_f64().unwrap(),
                p["accepted"]["p50_ms"].as_f64().unwrap(),
            );
            assert!(done < 15.0 && accepted < done, "{version:?}: {p}");
            assert_eq!(p["polls_per_answer"], 1.0, "{version:?}: {p}");
        }
    });
}

#[test]
fn lists_of_tasks_are_answered_beside_the_tasks() {
    // Proves the list patterns against the echo agent, mixed with the tasks that fill its
    // table: ListTasks in JSON-RPC, HTTP+JSON's GET /tasks and gRPC, over HTTP/1.1 and HTTP/2,
    // each answered with a page; with --list-status, of the completed tasks alone (a filter
    // the agent did not take would be an error, INVALID_PARAMS), and --list-artifacts, their
    // artifacts too, both kept in the report.
    let json = ["a2a:task", "a2a:list_tasks", "a2a-rest:list_tasks"];
    let grpc = ["a2a-grpc:task", "a2a-grpc:list_tasks"];
    against_tasks_of_30_ms(&json, &grpc, &["--task-poll", "0.01"], |report, _, version, mix| {
        for &name in mix.iter().filter(|n| n.ends_with(":list_tasks")) {
            let p = pattern(report, name);
            assert!(p["latency"]["p50_ms"].as_f64().unwrap() < 20.0, "{version:?}: {p}");
        }
        assert!(report["config"]["http"].get("list_status").is_none());
        assert!(report["config"]["http"].get("list_artifacts").is_none());
    });
    let filtered = ["--task-poll", "0.01", "--list-status", "completed", "--list-artifacts"];
    against_tasks_of_30_ms(&json, &grpc, &filtered, |report, _, _, _| {
        assert_eq!(report["config"]["http"]["list_status"], "TASK_STATE_COMPLETED");
        assert_eq!(report["config"]["http"]["list_artifacts"], true);
    });
}

#[test]
fn extended_cards_and_pages_of_tasks_are_answered_in_every_binding() {
    // Proves the extended-card patterns end to end against the echo agent behind a token:
    // JSON-RPC (v1.0 and v0.3) and HTTP+JSON (v1.0 and v0.3's GET /v1/card) over HTTP/1.1,
    // gRPC over HTTP/2, each answered
    // with a card; without the token each is an error http_401 while the public card beside
    // them is answered; --page-size is the list patterns' page, and --page-walk has each
    // client follow the page tokens, both kept in the report's config.
    use a2a_bench::targets::Options;
    let options = Options { threads: 1, token: Some("tok".into()), ..Options::default() };
    let t = Target::start_options(Kind::A2aEcho, "127.0.0.1:0".parse().unwrap(), options).unwrap();
    let url = format!("http://{}/", t.local_addr());
    let mix = "a2a:extended_card,a2a-rest:extended_card,a2a-v03:extended_card,a2a-v03-rest:extended_card,a2a:agent_card";
    let token = ["--auth-token", "tok"];
    for mix in [mix, "a2a-grpc:extended_card"] {
        let args = [&["--url", &url, "--pattern", mix, "--agents", "2"][..], &token].concat();
        let (ok, text, report) = http(&args);
        assert!(ok, "{text}");
        assert_clean(&report.unwrap(), &mix.split(',').collect::<Vec<_>>());
    }
    let (ok, text, report) =
        http(&["--url", &url, "--pattern", "a2a:extended_card,a2a:agent_card", "--agents", "2"]);
    assert!(!ok, "{text}");
    let report = report.unwrap();
    let card = pattern(&report, "a2a:agent_card");
    assert!(card["ok"].as_u64().unwrap() > 0 && card["errors"] == 0, "{card}");
    let extended = pattern(&report, "a2a:extended_card");
    assert_eq!(extended["ok"], 0, "{extended}");
    assert!(run(&report)["errors"]["http_401"].as_u64().unwrap() > 0, "{text}");
    let args = ["--url", &url, "--pattern", "a2a:task,a2a:list_tasks", "--page-size", "3"];
    let (ok, text, report) = http(&[&args[..], &token, &["--task-poll", "0.01"]].concat());
    assert!(ok, "{text}");
    let report = report.unwrap();
    assert_clean(&report, &["a2a:task", "a2a:list_tasks"]);
    assert_eq!(report["config"]["http"]["page_size"], 3);
    // --page-walk: each client follows the echo agent's page tokens (an end and an id,
    // percent-encoded in HTTP+JSON's query), in each binding, without an error.
    for mix in
        ["a2a:task=3,a2a:list_tasks,a2a-rest:list_tasks", "a2a-grpc:task=3,a2a-grpc:list_tasks"]
    {
        let args = ["--url", &url, "--pattern", mix, "--page-size", "2", "--page-walk"];
        let (ok, text, report) = http(&[&args[..], &token, &["--task-poll", "0.01"]].concat());
        assert!(ok, "{text}");
        let report = report.unwrap();
        assert_clean(
            &report,
            &mix.split(',').map(|p| p.split('=').next().unwrap()).collect::<Vec<_>>(),
        );
        assert_eq!(report["config"]["http"]["page_walk"], true);
    }
}

#[test]
fn polls_of_a_long_task_back_off_to_task_poll_max() {
    // Proves --task-poll-max: against tasks of 300 ms polled from 10 ms, a task is asked about
    // after 10, 20, 40, 80 and 160 ms (its end seen by the fifth GetTask, at 310 ms) where a
    // fixed 10 ms asks about thirty times; both see every task end, from its intended time.
    let (_echo, url) = echo_with_tasks(Duration::from_millis(300));
    let base = ["--url", &url, "--pattern", "a2a:task", "--agents", "2", "--duration", "1.5"];
    let polls = |extra: &[&str]| {
        let args = [&base[..], &["--task-poll", "0.01"], extra].concat();
        let (ok, text, report) = http(&args);
        assert!(ok, "{text}");
        let report = report.unwrap();
        assert_clean(&report, &["a2a:task"]);
        let p = pattern(&report, "a2a:task");
        let done = p["latency"]["p50_ms"].as_f64().unwrap();
        assert!((300.0..400.0).contains(&done), "{p}");
        (p["polls_per_answer"].as_f64().unwrap(), report)
    };
    let (fixed, _) = polls(&[]);
    let (backed_off, report) = polls(&["--task-poll-max", "0.16"]);
    assert!(fixed > 20.0, "{fixed} polls per task at a fixed 10 ms");
    assert!((4.0..=6.0).contains(&backed_off), "{backed_off} polls per task backing off");
    assert_eq!(report["config"]["http"]["task_poll_max_sec"], 0.16);
}

#[test]
fn a_cancel_that_does_not_take_is_an_error_by_kind() {
    // Proves a cancel pattern's other ends, every booked request resolved once: a cancel the
    // server refuses (`a2a_task_not_cancelable`, JSON-RPC -32002); a cancel answered with the
    // task still working, then followed by GetTask until it ends: canceled (answered, two
    // requests after the SendMessage) or completed (`task_not_canceled`); a SendMessage
    // answered with a task that already ended (`task_not_canceled`, no cancel sent).
    let working = r#"{"id":"t-1","status":{"state":"TASK_STATE_WORKING"}}"#;
    for (case, kind) in [
        ("refused", Some("a2a_task_not_cancelable")),
        ("canceled later", None),
        ("completed later", Some("task_not_canceled")),
        ("ended at once", Some("task_not_canceled")),
    ] {
        let addr = scripted(move |_, request| {
            let state =
                |s: &str| format!(r#"{{"id":"t-1","status":{{"state":"TASK_STATE_{s}"}}}}"#);
            let result = if request.contains("\"CancelTask\"") {
                assert_ne!(case, "ended at once", "a cancel of a task that ended");
                if case == "refused" {
                    let e = r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32002,"message":"no"}}"#;
                    return Some(response("200 OK", "application/json", "", e));
                }
                working.to_string()
            } else if request.contains("\"GetTask\"") {
                state(if case == "canceled later" { "CANCELED" } else { "COMPLETED" })
            } else if case == "ended at once" {
                format!(r#"{{"task":{}}}"#, state("COMPLETED"))
            } else {
                format!(r#"{{"task":{working}}}"#)
            };
            let body = format!(r#"{{"jsonrpc":"2.0","id":1,"result":{result}}}"#);
            Some(response("200 OK", "application/json", "", &body))
        });
        let url = format!("http://{addr}/");
        let args = ["--url", &url, "--pattern", "a2a:cancel", "--agents", "2", "--task-poll", "0"];
        match kind {
            Some(kind) => {
                let report = check_every_request_fails(&args, kind);
                assert_eq!(pattern(&report, "a2a:cancel")["ok"], 0, "{case}");
            }
            None => {
                let (ok, text, report) = http(&[&args[..], &["--duration", "0.5"]].concat());
                let report = report.unwrap_or_else(|| panic!("no report: {text}"));
                assert!(ok, "{case}: {text}");
                assert_clean(&report, &["a2a:cancel"]);
                assert_eq!(pattern(&report, "a2a:cancel")["polls_per_answer"], 2.0, "{case}");
            }
        }
    }
}

#[test]
fn a_weighted_mix_is_answered_in_its_weights() {
    // Proves `--pattern a=4,b,c=2` end to end: every pattern answered with nothing lost, each
    // pattern's answers in proportion to its weight (every client goes through the same
    // cycle, so only cycles cut short by the window's end differ), the conversation keeping
    // its context, the weights in the report, and in the CSV a row per pattern after the
    // run's, with that pattern's answers/s.
    let t = Target::start(Kind::A2aEcho, "127.0.0.1:0".parse().unwrap(), 1).unwrap();
    let url = format!("http://{}/", t.local_addr());
    let mix = "a2a:message=4,a2a:agent_card,a2a-rest:conversation=2";
    let dir = tempdir();
    let csv = dir.join("runs.csv");
    let csv = csv.to_str().unwrap();
    let (ok, text, report) =
        http(&["--url", &url, "--pattern", mix, "--agents", "3", "--csv", csv]);
    let report = report.unwrap_or_else(|| panic!("no report: {text}"));
    assert!(ok, "{text}");
    let names = ["a2a:message", "a2a:agent_card", "a2a-rest:conversation"];
    assert_clean(&report, &names);
    let answers: Vec<f64> =
        names.iter().map(|n| pattern(&report, n)["ok"].as_f64().unwrap()).collect();
    let total: f64 = answers.iter().sum();
    for (got, weight) in answers.iter().zip([4.0, 1.0, 2.0]) {
        let want = total * weight / 7.0;
        // A client's last cycle, cut short, is at most 7 requests off the proportion.
        assert!((got - want).abs() <= 3.0 * 7.0, "{answers:?}");
    }
    assert_eq!(report["config"]["http"]["weights"], serde_json::json!([4, 1, 2]));
    let mut rows = csv::Reader::from_path(csv).unwrap();
    let header: Vec<String> = rows.headers().unwrap().iter().map(str::to_string).collect();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = rows.records().map(Result::unwrap).collect();
    let named: Vec<&str> = rows.iter().map(|r| &r[col("pattern")]).collect();
    assert_eq!(named, [&[""][..], &names[..]].concat(), "the run's row, then each pattern's");
    for (row, name) in rows[1..].iter().zip(names) {
        let rate: f64 = row[col("throughput_msg_per_sec")].parse().unwrap();
        let want = pattern(&report, name)["ok_per_sec"].as_f64().unwrap();
        assert!((rate - want).abs() < 1e-6 * want, "{name}: {rate} against {want}");
    }
}

#[test]
fn a_payload_mix_sizes_the_messages_of_a_pattern_mix_and_times_each_size() {
    // Proves `http --payload-mix`: in a mix of patterns, every request that sends a message
    // (here a2a:message and a2a-rest:conversation) takes a size drawn by weight, the agent
    // card none; each size's sends and round trips add up to those patterns' answers, its
    // share near its weight's, the bytes written those of the sizes sent; a threshold on a
    // size and one on a pattern judged in the same run; and its mistakes get one line.
    let t = Target::start(Kind::A2aEcho, "127.0.0.1:0".parse().unwrap(), 1).unwrap();
    let url = format!("http://{}/", t.local_addr());
    let mix = "a2a:message=2,a2a:agent_card,a2a-rest:conversation";
    let sizes = ["--payload-mix", "64:3,8K:1", "--agents", "3", "--duration", "1"];
    let judged = ["--threshold", "p99{8K}<60s", "--threshold", "p99{a2a:message}<60s"];
    let (ok, text, report) =
        http(&[&["--url", &url, "--pattern", mix][..], &sizes[..], &judged[..]].concat());
    let report = report.unwrap_or_else(|| panic!("no report: {text}"));
    assert!(ok, "{text}");
    let names = ["a2a:message", "a2a:agent_card", "a2a-rest:conversation"];
    assert_clean(&report, &names);
    assert_eq!(report["config"]["payload_mix"], "64B:3,8K:1");
    let held: Vec<&Value> = report["thresholds"].as_array().unwrap().iter().collect();
    assert_eq!(held.len(), 2, "{held:?}");
    assert!(held.iter().all(|c| c["passed"] == true && c["actual"].as_f64().is_some()), "{held:?}");
    let r = run(&report);
    let sizes = r["payload_mix"].as_array().expect("payload_mix");
    let field = |s: &Value, k: &str| s[k].as_u64().unwrap();
    assert_eq!(sizes.iter().map(|s| field(s, "bytes")).collect::<Vec<_>>(), [64, 8192]);
    let messages = field(pattern(&report, "a2a:message"), "ok")
        + field(pattern(&report, "a2a-rest:conversation"), "ok");
    let sent: u64 = sizes.iter().map(|s| field(s, "sent")).sum();
    let timed: u64 = sizes.iter().map(|s| field(&s["latency"], "count")).sum();
    assert_eq!((sent, timed), (messages, messages), "every message has a size, the card none");
    assert!(sent > 600, "enough messages to judge the shares: {sent}");
    let small = sizes[0]["share_sent"].as_f64().unwrap();
    assert!((small - 0.75).abs() < 0.06, "64 B took {small} of the messages, asked 0.75");
    let check = held.iter().find(|c| c["threshold"] == "p99{8K}<60s").unwrap();
    assert_eq!(check["actual"], sizes[1]["latency"]["p99_ms"], "{check}");
    // What the clients wrote: each message's text, and heads and JSON around it (under 1 KiB
    // a request, the agent card's included).
    let written = r["wire_bytes_per_sec"]["sent"].as_f64().unwrap();
    let texts: f64 = sizes.iter().map(|s| (field(s, "sent") * field(s, "bytes")) as f64).sum();
    let requests = (messages + field(pattern(&report, "a2a:agent_card"), "ok")) as f64;
    let bytes = written / r["throughput_msg_per_sec"].as_f64().unwrap() * requests;
    assert!(
        bytes >= texts * 0.95 && bytes <= texts * 1.05 + 1024.0 * requests,
        "{bytes} bytes written for {texts} bytes of text in {requests} requests"
    );
    assert!(
        text.lines().any(|l| l.trim_start().starts_with("8K") && l.contains("% of sends")),
        "{text}"
    );
    let at = ["http", "--url", &url];
    crate::support::refused_in_one_line(&[
        (
            &[&at[..], &["--pattern", "health,a2a:agent_card", "--payload-mix", "64:1,1K:1"]]
                .concat(),
            "--payload-mix: no pattern of --pattern sends a message's text",
        ),
        (
            &[&at[..], &["--pattern", "a2a:message", "--payload-mix", "64:1,1K:1"][..]]
                .concat()
                .into_iter()
                .chain(["--threshold", "p99{4K}<1ms"])
                .collect::<Vec<_>>(),
            "--threshold 'p99{4K}<1ms': 4K is not a size of --payload-mix (its sizes: 64B, 1K)",
        ),
        (
            &[&at[..], &["--pattern", "a2a:message", "--payload-mix", "64:1"][..]].concat(),
            "--payload-mix: a mix takes at least two sizes",
        ),
    ]);
}

/// Whether the peer of `c` closed it (or reset it): a one-byte peek that does not wait.
#[allow(unsafe_code)]
fn peer_closed(c: &TcpStream) -> bool {
    use std::os::fd::AsRawFd;
    let mut b = 0u8;
    let flags = libc::MSG_PEEK | libc::MSG_DONTWAIT;
    // SAFETY: a one-byte peek into a local byte, on a socket `c` keeps open.
    let n = unsafe { libc::recv(c.as_raw_fd(), (&mut b as *mut u8).cast(), 1, flags) };
    n == 0 || (n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::WouldBlock)
}

/// A server that answers `GET /health` with 200 while at most `most` connections are open
/// and with 503 while more are: a server that takes exactly `most` clients of their own. A
/// connection counts until its peer's close has reached the socket (asked of the kernel at each
/// request, not left to when a thread notices), so the clients of a run just ended are never
/// counted against the next run's.
fn taking_at_most(most: usize) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let open: Arc<std::sync::Mutex<Vec<TcpStream>>> = Arc::default();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            open.lock().unwrap().push(s.try_clone().unwrap());
            let open = open.clone();
            std::thread::spawn(move || {
                let count = std::sync::atomic::AtomicUsize::new(0);
                let answer = |_: usize, _: &str| {
                    let now = {
                        let mut conns = open.lock().unwrap();
                        conns.retain(|c| !peer_closed(c));
                        conns.len()
                    };
                    let status = if now <= most { "200 OK" } else { "503 Service Unavailable" };
                    Some(format!("HTTP/1.1 {status}\r\nContent-Length: 2\r\n\r\nok").into_bytes())
                };
                serve(s, &answer, &count);
            });
        }
    });
    addr
}

#[test]
fn a_client_search_finds_how_many_clients_a_server_takes() {
    // Proves --find-max-agents over HTTP: against a server that refuses every request while
    // more than 12 connections are open (each client has its own), the search from 2 clients
    // doubles until 16 fail, then bisects to 12 held and 13 failed, each step confirmed by a
    // repeat, its rate the count times the per-client rate; the line and the threshold speak
    // of clients.
    let addr = taking_at_most(12);
    let url = format!("http://{addr}/health");
    let (ok, text, report) = http(&[
        "--url",
        &url,
        "--pattern",
        "health",
        "--agents",
        "2",
        "--find-max-agents",
        "200",
        "--slo",
        "errors==0",
        "--duration",
        "0.3",
        "--late-after-ms",
        "50",
        "--threshold",
        "max_agents>=12",
        "--stall-probe",
        "0",
    ]);
    assert!(ok, "{text}");
    let report = report.unwrap();
    let s = &report["agent_search"][0];
    assert_eq!(
        (s["counts"].as_str(), s["scenario"].as_str()),
        (Some("clients"), Some("client w1")),
        "{s}"
    );
    assert_eq!(
        (s["max_agents"].as_u64(), s["first_failing_agents"].as_u64()),
        (Some(12), Some(13)),
        "{s}"
    );
    let steps = s["steps"].as_array().unwrap();
    let counts: Vec<u64> = steps.iter().map(|st| st["agents"].as_u64().unwrap()).collect();
    assert_eq!(counts, [2, 4, 8, 16, 12, 14, 13], "{s}");
    for st in steps {
        let n = st["agents"].as_u64().unwrap();
        assert_eq!(st["held"].as_bool(), Some(n <= 12), "{st}");
        assert_eq!(st["asked_rate_per_sec"].as_f64(), Some(n as f64 * 200.0), "{st}");
        assert!(n <= 12 || st["errors"].as_u64().unwrap() > 0, "{st}");
    }
    assert!(text.contains("client search client w1 at 200 req/s per client for 'errors==0': holds up to 12 clients"), "{text}");
    assert!(text.contains("✓ max_agents>=12"), "{text}");
}

#[test]
fn a_size_the_server_refuses_is_an_error_of_that_size_alone() {
    // Proves per-size errors: the reference agent refuses bodies over 1 MiB (413, and says it
    // closes the connection, whose rest it does not read); every measured 2 MiB message is an
    // error of its size, the small ones none (no request sent behind a refused one on its
    // connection), and a threshold on a size's errors judges that size's.
    let t = Target::start(Kind::A2aEcho, "127.0.0.1:0".parse().unwrap(), 1).unwrap();
    let url = format!("http://{}/", t.local_addr());
    let mix = ["--pattern", "a2a:message", "--payload-mix", "64:7,2M:1", "--agents", "3"];
    let judged = ["--threshold", "errors{64B}==0", "--threshold", "errors{2M}<50%"];
    let (ok, text, report) = http(&[&["--url", &url][..], &mix[..], &judged[..]].concat());
    let report = report.unwrap_or_else(|| panic!("no report: {text}"));
    assert!(!ok, "a run with errors fails: {text}");
    let r = run(&report);
    assert!(r["accounting"]["closed"].as_bool().unwrap(), "{r}");
    let kinds: Vec<&String> = r["errors"].as_object().unwrap().keys().collect();
    assert_eq!(kinds, ["http_413"], "{}", r["errors"]);
    let sizes = r["payload_mix"].as_array().expect("payload_mix");
    let field = |s: &Value, k: &str| s[k].as_u64().unwrap();
    let (small, big) = (&sizes[0], &sizes[1]);
    assert!(field(big, "sent") > 0 && field(small, "sent") > 0, "{sizes:?}");
    assert_eq!(field(big, "errors"), field(big, "sent"), "{big}");
    assert_eq!(field(&big["latency"], "count"), 0, "{big}");
    assert_eq!(field(small, "errors"), 0, "{small}");
    assert_eq!(field(&small["latency"], "count"), field(small, "sent"), "{small}");
    let errors = field(pattern(&report, "a2a:message"), "errors");
    assert_eq!(errors, field(big, "errors"), "the pattern's errors are the big size's");
    let passed: Vec<&Value> =
        report["thresholds"].as_array().unwrap().iter().map(|c| &c["passed"]).collect();
    assert_eq!(passed, [true, false], "{}", report["thresholds"]);
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("2M") && l.ends_with(&format!("errors {errors}"))),
        "{text}"
    );
}

#[test]
fn texts_from_a_file_are_sent_as_they_are_written() {
    // Proves --text-file: the server receives every non-blank line of the file, and nothing
    // else, as a message's text, quotes, backslashes, tabs, CRLF line ends and non-ASCII
    // letters intact (escaped for JSON and read back by a JSON parser); the report says the
    // file, its texts and their bytes, and the payload size is their mean; and the flag's
    // mistakes get one line each.
    let dir = tempdir();
    let file = dir.join("texts.txt");
    let lines =
        ["Summarise the \"quarterly\" report\\n in two lines.", "Grüße aus Köln 🚀", "tab\there"];
    let written = format!("{}\n\n   \n{}\r\n{}\n", lines[0], lines[1], lines[2]);
    std::fs::write(&file, written).unwrap();
    let (addr, seen) = recording(
        |v| v["params"]["message"]["parts"][0]["text"].as_str().unwrap_or("(none)").to_string(),
        json!({"message": {"role": "ROLE_AGENT", "parts": [{"text": "ok"}]}}),
    );
    let url = format!("http://{addr}/");
    let file = file.to_str().unwrap();
    let (ok, text, report) =
        http(&["--url", &url, "--pattern", "a2a:message", "--text-file", file, "--agents", "2"]);
    let report = report.unwrap_or_else(|| panic!("no report: {text}"));
    assert!(ok, "{text}");
    assert_clean(&report, &["a2a:message"]);
    let seen: Vec<String> = seen.lock().unwrap().iter().cloned().collect();
    let mut want: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    want.sort();
    assert_eq!(seen, want);
    let bytes: Vec<usize> = lines.iter().map(|l| l.len()).collect();
    let mean = bytes.iter().sum::<usize>() as f64 / 3.0;
    let said = &report["config"]["http"]["text_file"];
    assert_eq!((&said["path"], &said["texts"]), (&json!(file), &json!(3)), "{said}");
    assert_eq!(said["bytes_max"], *bytes.iter().max().unwrap(), "{said}");
    assert!((said["bytes_mean"].as_f64().unwrap() - mean).abs() < 1e-9, "{said}");
    assert_eq!(run(&report)["payload_size"], mean.round() as u64);
    assert_eq!(run(&report)["payload_texts"], 3);
    assert!(
        text.contains(" closed w1 texts "),
        "the run is named by its texts, not a size: {text}"
    );
    let told = format!("; texts from {file} (3 of them, mean {mean:.0} B, largest ");
    assert!(text.contains(&told), "{text}");
    // In a protobuf string, as read: the reference agent's gRPC binding parses them.
    let t = Target::start(Kind::A2aEcho, "127.0.0.1:0".parse().unwrap(), 1).unwrap();
    let grpc = format!("http://{}/", t.local_addr());
    let (ok, text, report) =
        http(&["--url", &grpc, "--pattern", "a2a-grpc:message", "--text-file", file]);
    assert!(ok, "{text}");
    assert_clean(&report.unwrap(), &["a2a-grpc:message"]);
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "\n  \n").unwrap();
    let binary = dir.join("binary.txt");
    std::fs::write(&binary, b"ok\n\xff\xfe\n").unwrap();
    let at = |f: &std::path::Path| f.to_str().unwrap().to_string();
    let (empty, binary) = (at(&empty), at(&binary));
    let base = ["http", "--url", "http://127.0.0.1:1/", "--pattern", "a2a:message"];
    crate::support::refused_in_one_line(&[
        (&[&base[..], &["--text-file", &empty]].concat(), "nothing in it"),
        (&[&base[..], &["--text-file", &binary]].concat(), "not UTF-8 text (at byte 3)"),
        (&[&base[..], &["--text-file", "/nonexistent/t.txt"]].concat(), "--text-file /nonexistent"),
        (&[&base[..], &["--text-file", file, "--payload-size", "9"]].concat(), "--payload-size"),
        (
            &["http", "--url", "http://127.0.0.1:1/", "--pattern", "health", "--text-file", file],
            "--text-file: no pattern of --pattern sends a message's text",
        ),
    ]);
}

#[test]
fn tool_arguments_from_a_file_are_sent_one_per_call() {
    // Proves --args-file: against a sessionless MCP server, the tools/call requests carry
    // every line's arguments and nothing else (compact JSON, as parsed), the report says the
    // file; a line that is not a JSON object, or no tools/call in the mix, get one line.
    let dir = tempdir();
    let file = dir.join("args.jsonl");
    let lines = [r#"{"text":"a"}"#, r#"{ "text": "b \"q\"" }"#, r#"{"n":1,"nested":{"x":[1,2]}}"#];
    std::fs::write(&file, format!("{}\n\n{}\r\n{}\n", lines[0], lines[1], lines[2])).unwrap();
    let (addr, seen) = recording(
        |v| v["params"]["arguments"].to_string(),
        json!({"content": [{"type": "text", "text": "ok"}]}),
    );
    let url = format!("http://{addr}/mcp");
    let file = file.to_str().unwrap();
    let sessionless = ["--mcp-version", "2026-07-28", "--agents", "2"];
    let (ok, text, report) = http(
        &[&["--url", &url, "--pattern", "mcp:tools/call", "--args-file", file][..], &sessionless]
            .concat(),
    );
    let report = report.unwrap_or_else(|| panic!("no report: {text}"));
    assert!(ok, "{text}");
    assert_clean(&report, &["mcp:tools/call"]);
    let seen: Vec<String> = seen.lock().unwrap().iter().cloned().collect();
    let mut want: Vec<String> =
        lines.iter().map(|l| serde_json::from_str::<Value>(l).unwrap().to_string()).collect();
    want.sort();
    assert_eq!(seen, want);
    let said = &report["config"]["http"]["args_file"];
    assert_eq!((&said["path"], &said["texts"]), (&json!(file), &json!(3)), "{said}");
    assert!(text.contains(&format!("; tool arguments from {file} (3 of them, ")), "{text}");
    let bad = dir.join("bad.jsonl");
    std::fs::write(&bad, "{\"a\":1}\n[1,2]\n").unwrap();
    let bad = bad.to_str().unwrap();
    let base = ["http", "--url", "http://127.0.0.1:1/mcp", "--pattern", "mcp:tools/call"];
    crate::support::refused_in_one_line(&[
        (&[&base[..], &["--args-file", bad]].concat(), "text 2 is not a JSON object"),
        (&[&base[..], &["--args-file", file, "--args", "{}"]].concat(), "--args"),
        (
            &["http", "--url", "http://127.0.0.1:1/", "--pattern", "health", "--args-file", file],
            "--args-file: its arguments are mcp:tools/call's",
        ),
    ]);
}

/// Bytes a request and an answer took on the wire in `report`'s run: (sent, received).
fn wire_per_answer(report: &Value) -> (f64, f64) {
    let r = run(report);
    let answers = r["throughput_msg_per_sec"].as_f64().unwrap();
    let wire = &r["wire_bytes_per_sec"];
    (wire["sent"].as_f64().unwrap() / answers, wire["received"].as_f64().unwrap() / answers)
}

#[test]
fn compressed_bodies_go_and_come_gzipped_in_every_binding() {
    // Proves --compression: against the reference agent (which reads gzipped requests and
    // gzips its answers for a client that asks), every binding is answered with 0 errors,
    // and the bytes on the wire show it: 4,000 bytes of text take under a quarter of their
    // bytes each way with gzip, over HTTP/1.1, HTTP/2 and gRPC; `answers` compresses the
    // answers alone; a gzipped event stream is read as it comes (its first event timed long
    // before its end); the report and the first line say it.
    let (_t, url) = echo_with_event_gap(Duration::from_millis(40));
    for (version, mix) in [
        (None, "a2a:message,a2a:stream,a2a-rest:message"),
        (Some("--http2"), "a2a:message,a2a-v03:stream"),
        (None, "a2a-grpc:message,a2a-grpc:stream,a2a-v03-grpc:message"),
    ] {
        let mut wire = Vec::new();
        for how in ["none", "gzip", "answers"] {
            let mut args = vec!["--url", &url, "--pattern", mix, "--compression", how];
            args.extend(["--agents", "2", "--duration", "1", "--payload-size", "4000"]);
            args.extend(version);
            let (ok, text, report) = http(&args);
            let report = report.unwrap_or_else(|| panic!("no report: {text}"));
            assert!(ok, "{version:?} {how}: {text}");
            let patterns: Vec<&str> = mix.split(',').collect();
            assert_clean(&report, &patterns);
            wire.push(wire_per_answer(&report));
            let said = report["config"]["http"]["compression"].as_str().map(String::from);
            match how {
                "none" => assert_eq!(said, None),
                "gzip" => {
                    assert_eq!(said.as_deref(), Some("gzip:6"));
                    assert!(text.contains("; bodies compressed (gzip:6), answers asked"), "{text}");
                }
                _ => assert_eq!(said.as_deref(), Some("answers")),
            }
            for p in patterns.iter().filter(|p| p.ends_with(":stream")) {
                let p = pattern(&report, p);
                let first = p["first_event"]["p50_ms"].as_f64().unwrap();
                let last = p["latency"]["p50_ms"].as_f64().unwrap();
                assert!(first < last - 40.0, "{how}: first event {first} ms, last {last}: {p}");
            }
        }
        let [(sent, received), (zipped_sent, zipped_received), (plain_sent, asked_received)] =
            wire[..]
        else {
            unreachable!()
        };
        let m = format!("{version:?} {mix}: {wire:?}");
        assert!(sent > 4000.0 && received > 4000.0, "{m}");
        assert!(zipped_sent < sent / 4.0 && zipped_received < received / 4.0, "{m}");
        assert!(plain_sent > sent * 0.9 && asked_received < received / 4.0, "{m}");
    }
}

#[test]
fn answers_in_a_coding_not_read_or_broken_are_errors_by_kind() {
    // Proves a gzipped answer is read whether asked for or not (and the request that asks
    // says so), a body marked gzip that is not is `protocol_bad_gzip`, and a coding a2a-bench
    // does not read is `protocol_content_encoding`: every request counted, none as an answer.
    let answer = r#"{"jsonrpc":"2.0","id":1,"result":{"message":{"role":"ROLE_AGENT","parts":[{"text":"hi"}]}}}"#;
    let mut zipped = Vec::new();
    let mut e = flate2::write::GzEncoder::new(&mut zipped, flate2::Compression::default());
    e.write_all(answer.as_bytes()).unwrap();
    e.finish().unwrap();
    let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = asked.clone();
    let addr = scripted(move |_, request| {
        let head = request[..request.find("\r\n\r\n").unwrap()].to_ascii_lowercase();
        if head.contains("\r\naccept-encoding: gzip") && !head.contains("content-encoding") {
            seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
            zipped.len()
        );
        Some([head.as_bytes(), &zipped].concat())
    });
    let url = format!("http://{addr}/");
    for how in ["none", "answers"] {
        let args = ["--url", &url, "--pattern", "a2a:message", "--agents", "2"];
        let (ok, text, report) = http(&[&args[..], &["--compression", how]].concat());
        assert!(ok, "{how}: {text}");
        assert_clean(&report.unwrap(), &["a2a:message"]);
    }
    assert!(asked.load(std::sync::atomic::Ordering::Relaxed) > 0);
    for (coding, body, kind) in [
        ("gzip", answer, "protocol_bad_gzip"),
        ("br", answer, "protocol_content_encoding"),
        ("gzip, br", answer, "protocol_content_encoding"),
    ] {
        let addr = scripted(move |_, _| {
            Some(response(
                "200 OK",
                "application/json",
                &format!("Content-Encoding: {coding}\r\n"),
                body,
            ))
        });
        let url = format!("http://{addr}/");
        check_every_request_fails(
            &["--url", &url, "--pattern", "a2a:message", "--agents", "2"],
            kind,
        );
    }
    let base = ["http", "--url", "http://127.0.0.1:1/", "--pattern", "a2a:message"];
    crate::support::refused_in_one_line(&[
        (&[&base[..], &["--compression", "gzip:10"]].concat(), "--compression"),
        (&[&base[..], &["--compression", "br"]].concat(), "gzip:LEVEL (1 to 9)"),
    ]);
}

#[test]
fn http_runs_probe_the_agent_cores_for_stalls_unless_told_not_to() {
    // Proves `http --stall-probe`: before the runs a thread spins on the agent core, and the
    // report keeps what it saw under host.stalls (the summary's `machine:` line); 0 skips it.
    let t = Target::start(Kind::A2aEcho, "127.0.0.1:0".parse().unwrap(), 1).unwrap();
    let url = format!("http://{}/health", t.local_addr());
    let base = ["--url", &url, "--pattern", "health", "--agents", "2", "--agent-cores", "0"];
    let (ok, text, report) = http(&[&base[..], &["--stall-probe", "0.1"]].concat());
    assert!(ok, "{text}");
    let report = report.unwrap();
    let stalls =
        report["host"]["stalls"].as_array().unwrap_or_else(|| panic!("{}", report["host"]));
    assert_eq!(stalls.len(), 1, "{stalls:?}");
    assert_eq!(stalls[0]["core"], 0, "{stalls:?}");
    assert!(stalls[0]["secs"].as_f64().unwrap() >= 0.1, "{stalls:?}");
    assert!(text.contains("machine:"), "{text}");
    let (ok, text, report) = http(&[&base[..], &["--stall-probe", "0"]].concat());
    assert!(ok, "{text}");
    assert!(report.unwrap()["host"].get("stalls").is_none(), "{text}");
    assert!(!text.contains("machine:"), "{text}");
}

/// An `mcp:tools/call` run of `agents` clients with a drain timeout of `drain` seconds, and
/// how long the command took.
fn timed_mcp_run(url: &str, agents: &str, drain: &str) -> (bool, String, Option<Value>, Duration) {
    let began = std::time::Instant::now();
    let (ok, text, report) = http(&[
        "--url",
        url,
        "--pattern",
        "mcp:tools/call",
        "--agents",
        agents,
        "--drain-timeout",
        drain,
        "--stall-probe",
        "0",
    ]);
    (ok, text, report, began.elapsed())
}

#[test]
fn an_mcp_run_ends_once_its_sessions_are_closed() {
    // Proves the farewell's wake-up: the last answered `DELETE` wakes the agent core, which
    // closes its connections at once; before, it slept until the farewells' bound (then 2 s,
    // now the drain timeout: here 40 s).
    let t = Target::start(Kind::McpEcho, "127.0.0.1:0".parse().unwrap(), 1).unwrap();
    let url = format!("http://{}/mcp", t.local_addr());
    let (ok, text, report, took) = timed_mcp_run(&url, "4", "40");
    assert!(ok, "{text}");
    assert_clean(&report.unwrap(), &["mcp:tools/call"]);
    assert_eq!(t.open_sessions(), Some(0), "every session was deleted");
    assert!(took < Duration::from_secs(30), "the run took {took:?}: {text}");
}

#[test]
fn a_server_that_leaves_a_session_delete_unanswered_is_said() {
    // Proves the farewells' bound: a server that answers an MCP session's calls but never
    // its `DELETE` ends the run within the drain timeout, and the run says so (a failure,
    // however the window went: the server stalled).
    let addr = mcp_server(None);
    let url = format!("http://{addr}/mcp");
    let (ok, text, report, took) = timed_mcp_run(&url, "2", "1");
    assert!(!ok, "{text}");
    assert!(took < Duration::from_secs(20), "{took:?}");
    let report = report.unwrap_or_else(|| panic!("no report: {text}"));
    let r = run(&report);
    let failure = r["failure"].as_str().unwrap_or_default();
    assert!(failure.contains("DELETEs unanswered for 1.0 s"), "{failure}\n{text}");
    assert!(r["accounting"]["closed"].as_bool().unwrap(), "{r}");
    assert!(r["throughput_msg_per_sec"].as_f64().unwrap() > 0.0, "{r}");
    assert!(r.get("mcp_sessions").is_none(), "no DELETE was answered: {r}");
}

#[test]
fn a_server_that_does_not_let_clients_end_sessions_is_said() {
    // Proves that each session's end is counted by how the server answered its `DELETE`: a
    // 405 (which MCP allows: the server keeps its sessions) is no error, but the report and
    // the summary say the sessions were not ended.
    let addr = mcp_server(Some("405 Method Not Allowed"));
    let (ok, text, report, _) = timed_mcp_run(&format!("http://{addr}/mcp"), "3", "5");
    assert!(ok, "{text}");
    let r = run(report.as_ref().unwrap()).clone();
    let sessions = &r["mcp_sessions"];
    assert_eq!(sessions["ended"], 0, "{r}");
    assert_eq!(sessions["refused"]["http_405"], 3, "{r}");
    assert_eq!(sessions["failed"], 0, "{r}");
    assert!(
        text.contains("MCP sessions: 0 of 3 ended by DELETE, 3 answered http_405 (the server does not let clients end sessions)"),
        "{text}"
    );
}

/// A scripted MCP server with sessions: `DELETE` answered with `delete` (`None`: never).
fn mcp_server(delete: Option<&'static str>) -> SocketAddr {
    scripted(move |_, request| {
        if request.starts_with("DELETE") {
            return delete.map(|status| response(status, "text/plain", "", ""));
        }
        let body = request.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        let call: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let Some(id) = call.get("id") else {
            return Some(response("202 Accepted", "text/plain", "", ""));
        };
        let (extra, result) = match call["method"].as_str() {
            Some("initialize") => (
                "Mcp-Session-Id: s-1\r\n",
                json!({"protocolVersion": "2025-06-18", "capabilities": {}, "serverInfo": {"name": "t", "version": "1"}}),
            ),
            _ => ("", json!({"content": [{"type": "text", "text": "x"}], "isError": false})),
        };
        let body = json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string();
        Some(response("200 OK", "application/json", extra, &body))
    })
}

#[test]
fn mcp_clients_open_sessions_and_close_them() {
    // Proves MCP over streamable HTTP: each client initializes a session, calls tools/list
    // and tools/call (mcp:mixed), and deletes its session at the end (none left open); the
    // sessionless version runs without initialize.
    let t = Target::start(Kind::McpEcho, "127.0.0.1:0".parse().unwrap(), 1).unwrap();
    let url = format!("http://{}/mcp", t.local_addr());
    let (ok, text, report) = http(&["--url", &url, "--pattern", "mcp:mixed", "--agents", "3"]);
    assert!(ok, "{text}");
    assert_clean(&report.unwrap(), &["mcp:tools/list", "mcp:tools/call"]);
    assert_eq!(t.open_sessions(), Some(0), "every session was deleted");
    // Seven clients on three connections (3, 2 and 2 of them): each connection deletes the
    // sessions of its own clients.
    let (ok, text, report) = http(&[
        "--url",
        &url,
        "--pattern",
        "mcp:mixed",
        "--agents",
        "7",
        "--connections",
        "3",
        "--agent-cores",
        "0",
    ]);
    assert!(ok, "{text}");
    let report = report.unwrap();
    assert_clean(&report, &["mcp:tools/list", "mcp:tools/call"]);
    assert_eq!(run(&report)["connections"], 3, "{text}");
    assert_eq!(t.open_sessions(), Some(0), "every session was deleted");
    let ended = json!({"ended": 7, "refused": {}, "failed": 0});
    assert_eq!(run(&report)["mcp_sessions"], ended, "{text}");
    assert!(text.contains("MCP sessions: 7 of 7 ended by DELETE\n"), "{text}");
    let (ok, text, report) = http(&[
        "--url",
        &url,
        "--pattern",
        "mcp:tools/call",
        "--mcp-version",
        "2026-07-28",
        "--agents",
        "2",
        "--args",
        r#"{"text":"hi"}"#,
    ]);
    assert!(ok, "{text}");
    let report = report.unwrap();
    assert_clean(&report, &["mcp:tools/call"]);
    assert_eq!(t.open_sessions(), Some(0), "sessionless: none opened");
    assert!(run(&report).get("mcp_sessions").is_none(), "sessionless: none ended");
}

#[test]
fn registry_patterns_run_against_preloaded_agents_with_a_token() {
    // Proves the registry patterns against the reference registry behind a bearer token:
    // --preload registers agents first, every operation is answered, and the report keeps no
    // trace of the token (its command line masks it); without the token every request is an
    // error http_401, counted, and the accounting still closes.
    let t = Target::start_with(
        Kind::Registry,
        "127.0.0.1:0".parse().unwrap(),
        1,
        Some("s3cret".into()),
    )
    .unwrap();
    let url = format!("http://{}/", t.local_addr());
    let mix = "registry:register,registry:get,registry:list,registry:search,registry:health";
    let (ok, text, report) = http(&[
        "--url",
        &url,
        "--pattern",
        mix,
        "--preload",
        "20",
        "--agents",
        "2",
        "--auth-token",
        "s3cret",
    ]);
    assert!(ok, "{text}");
    let report = report.unwrap();
    assert_clean(&report, &mix.split(',').collect::<Vec<_>>());
    assert!(!report.to_string().contains("s3cret"), "{}", report["command_line"]);
    assert_eq!(report["config"]["http"]["auth"], true);
    let args = ["--url", &url, "--pattern", "registry:health", "--agents", "2"];
    let report = check_every_request_fails(&args, "http_401");
    let r = run(&report);
    assert!(r["failure"].as_str().unwrap().contains("http_401"), "{}", r["failure"]);
}

#[test]
fn every_kind_of_pattern_runs_over_http2() {
    // Proves h2c (--http2) end to end against the three reference targets: the A2A mix (SSE
    // streams counted), MCP sessions opened and deleted, the registry with a token; clients
    // sharing one connection multiplex their requests (window 2 each). The targets count
    // what they answered over HTTP/2: every request went that way, --preload's included.
    let a2a = Target::start(Kind::A2aEcho, "127.0.0.1:0".parse().unwrap(), 1).unwrap();
    let url = format!("http://{}/", a2a.local_addr());
    let mix = "a2a:message,a2a:stream,a2a:agent_card,a2a-v03:stream";
    let (ok, text, report) = http(&[
        "--url",
        &url,
        "--pattern",
        mix,
        "--http2",
        "--agents",
        "4",
        "--connections",
        "1",
        "--window",
        "2",
    ]);
    let report = report.unwrap_or_else(|| panic!("no report: {text}"));
    assert!(ok, "{text}");
    assert_clean(&report, &mix.split(',').collect::<Vec<_>>());
    assert_eq!(pattern(&report, "a2a:stream")["events_per_answer"], 3.0);
    assert_eq!(report["config"]["http"]["http2"], true);
    let sent = run(&report)["accounting"]["requests_sent"].as_u64().unwrap();
    assert!(a2a.http2_requests() >= sent, "{} over HTTP/2, {sent} sent", a2a.http2_requests());

    let mcp = Target::start(Kind::McpEcho, "127.0.0.1:0".parse().unwrap(), 1).unwrap();
    let url = format!("http://{}/mcp", mcp.local_addr());
    let (ok, text, report) =
        http(&["--url", &url, "--pattern", "mcp:mixed", "--http2", "--agents", "3"]);
    assert!(ok, "{text}");
    assert_clean(&report.unwrap(), &["mcp:tools/list", "mcp:tools/call"]);
    assert_eq!(mcp.open_sessions(), Some(0), "every session was deleted");
    assert!(mcp.http2_requests() > 0);

    let reg = Target::start_with(
        Kind::Registry,
        "127.0.0.1:0".parse().unwrap(),
        1,
        Some("s3cret".into()),
    )
    .unwrap();
    let url = format!("http://{}/", reg.local_addr());
    let mix = "registry:register,registry:get,registry:search";
    let (ok, text, report) = http(&[
        "--url",
        &url,
        "--pattern",
        mix,
        "--http2",
        "--preload",
        "10",
        "--agents",
        "2",
        "--auth-token",
        "s3cret",
    ]);
    assert!(ok, "{text}");
    let report = report.unwrap();
    assert_clean(&report, &mix.split(',').collect::<Vec<_>>());
    // The preloaded agents were registered over HTTP/2 too.
    let sent = run(&report)["accounting"]["requests_sent"].as_u64().unwrap();
    assert!(reg.http2_requests() >= sent + 10, "{} over HTTP/2, {sent} sent", reg.http2_requests());
}

#[test]
fn clients_on_the_second_ring_are_answered_over_both_versions() {
    // Proves --agent-io uring carries HTTP clients: the A2A mix over HTTP/1.1 (one client per
    // connection, then four sharing one, pipelined) and over h2c, all answered, nothing lost.
    let t = Target::start(Kind::A2aEcho, "127.0.0.1:0".parse().unwrap(), 1).unwrap();
    let url = format!("http://{}/", t.local_addr());
    let mix = "a2a:message,a2a:stream,a2a:agent_card";
    let patterns: Vec<&str> = mix.split(',').collect();
    for extra in
        [&[][..], &["--connections", "1", "--pipeline", "2", "--window", "2"], &["--http2"]]
    {
        let mut args =
            vec!["--url", &url, "--pattern", mix, "--agents", "4", "--agent-io", "uring"];
        args.extend_from_slice(extra);
        let (ok, text, report) = http(&args);
        let report = report.unwrap_or_else(|| panic!("no report: {text}"));
        assert!(ok, "{extra:?}: {text}");
        assert_clean(&report, &patterns);
        assert_eq!(report["config"]["agent_io"], "uring");
    }
}

#[test]
fn http2_against_a_server_without_it_fails_with_a_reason() {
    // Proves a server that does not speak h2c (it answers the preface with an HTTP/1.1 400
    // and closes) makes the run fail with a reason, in time, with its accounting closed.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    let url = format!("http://{addr}/health");
    let (ok, text, report) = http(&["--url", &url, "--http2", "--agents", "2"]);
    assert!(!ok, "{text}");
    let report = report.unwrap_or_else(|| panic!("no report: {text}"));
    let r = run(&report);
    assert!(r["accounting"]["closed"].as_bool().unwrap(), "{r}");
    assert!(r["failure"].as_str().unwrap().contains("HTTP/2"), "{}", r["failure"]);
}

/// A scripted HTTP/1.1 server: `answer(n, request)` gives the bytes answering the n-th request
/// (from 0, over all connections), or `None` to stop answering on that connection (it stays
/// open until the client closes it). An answer with `Connection: close` is followed by the
/// close, requests after it unprocessed; an empty one closes the connection without answering.
fn scripted(answer: impl Fn(usize, &str) -> Option<Vec<u8>> + Send + Sync + 'static) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let answer = Arc::new(answer);
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            let (answer, count) = (answer.clone(), count.clone());
            std::thread::spawn(move || serve(s, &*answer, &count));
        }
    });
    addr
}

fn serve(
    mut s: TcpStream,
    answer: &dyn Fn(usize, &str) -> Option<Vec<u8>>,
    count: &std::sync::atomic::AtomicUsize,
) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut silent = false;
    loop {
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if buf.len() < end + 4 + len {
                break;
            }
            let request = String::from_utf8_lossy(&buf[..end + 4 + len]).to_string();
            buf.drain(..end + 4 + len);
            let n = count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            match answer(n, &request) {
                Some(bytes) if bytes.is_empty() && !silent => return,
                Some(bytes) if !silent => {
                    if s.write_all(&bytes).is_err() {
                        return;
                    }
                    let head = String::from_utf8_lossy(&bytes).to_ascii_lowercase();
                    if head.contains("\r\nconnection: close\r\n") {
                        // A lingering close (RFC 9112 § 9.6): closing with requests unread
                        // would reset the connection, and the answer could be lost with it.
                        let _ = s.shutdown(std::net::Shutdown::Write);
                        while matches!(s.read(&mut chunk), Ok(k) if k > 0) {}
                        return;
                    }
                }
                _ => silent = true,
            }
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
        }
    }
}

/// A scripted JSON-RPC server that keeps what `pick` reads of each request's body, and answers
/// each with `result`.
fn recording(
    pick: fn(&Value) -> String,
    result: Value,
) -> (SocketAddr, Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>) {
    let seen = Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let kept = seen.clone();
    let addr = scripted(move |_, request| {
        let body = &request[request.find("\r\n\r\n").unwrap() + 4..];
        let v: Value = serde_json::from_str(body).unwrap_or_default();
        kept.lock().unwrap().insert(pick(&v));
        let answer = json!({"jsonrpc": "2.0", "id": v["id"], "result": result});
        Some(response("200 OK", "application/json", "", &answer.to_string()))
    });
    (addr, seen)
}

fn response(status: &str, content_type: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[test]
fn json_rpc_errors_and_bad_streams_are_errors_by_kind() {
    // Proves a JSON-RPC error in an HTTP 200 is an error named by its code (A2A's
    // TaskNotFound), and an event stream that is not JSON is `protocol_bad_sse`: every
    // request counted, none as an answer, the accounting closed.
    let addr = scripted(|_, _| {
        let body = r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32001,"message":"no task"}}"#;
        Some(response("200 OK", "application/json", "", body))
    });
    let url = format!("http://{addr}/");
    let args = ["--url", &url, "--pattern", "a2a:message", "--agents", "2"];
    let report = check_every_request_fails(&args, "a2a_task_not_found");
    let p = pattern(&report, "a2a:message");
    assert_eq!(p["ok"], 0);
    assert!(p["errors_by_kind"]["a2a_task_not_found"].as_u64().unwrap() > 0);

    let addr =
        scripted(|_, _| Some(response("200 OK", "text/event-stream", "", "data: {nope\r\n\r\n")));
    let url = format!("http://{addr}/");
    check_every_request_fails(
        &["--url", &url, "--pattern", "a2a:stream", "--agents", "2"],
        "protocol_bad_sse",
    );
}

#[test]
fn responses_past_the_clients_bound_are_errors_by_kind() {
    // Proves a server's announced body past the client's bound (64 MiB), by Content-Length or
    // by a chunk size (one past any body, one past 64 bits of arithmetic with the framing
    // added), is `protocol_response_too_large`: counted, the accounting closed, the run ended,
    // nothing buffered waiting for it.
    for head in [
        "Content-Length: 1000000000000\r\n\r\n{",
        "Transfer-Encoding: chunked\r\n\r\n4000001\r\nxx",
        "Transfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nxx",
    ] {
        let answer = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{head}");
        let addr = scripted(move |_, _| Some(answer.clone().into_bytes()));
        let url = format!("http://{addr}/health");
        let (ok, text, report) = http(&["--url", &url, "--pattern", "health", "--agents", "2"]);
        assert!(!ok, "{text}");
        let report = report.unwrap_or_else(|| panic!("no report: {text}"));
        let r = run(&report);
        assert!(r["accounting"]["closed"].as_bool().unwrap(), "{r}");
        let n = r["errors"]["protocol_response_too_large"].as_u64().unwrap_or(0);
        assert!(n >= 1, "{head}: {}", r["errors"]);
        assert!(text.contains("over the client's bound"), "{text}");
    }
}

#[test]
fn mcp_session_faults_are_named() {
    // Proves MCP session faults: a server that loses the session mid-run (404) gives http_404
    // errors; one that answers initialize without Mcp-Session-Id fails the set-up with a line
    // that says so (and how to run a sessionless server).
    let init = r#"{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-06-18","capabilities":{},"serverInfo":{"name":"s","version":"1"}}}"#;
    let addr = scripted(move |_, req| {
        Some(if req.contains("\"initialize\"") {
            response("200 OK", "application/json", "Mcp-Session-Id: abc\r\n", init)
        } else if req.contains("notifications/initialized") {
            response("202 Accepted", "application/json", "", "")
        } else if req.starts_with("DELETE") {
            response("200 OK", "text/plain", "", "")
        } else {
            response("404 Not Found", "text/plain", "", "no such session\n")
        })
    });
    let url = format!("http://{addr}/mcp");
    let args = ["--url", &url, "--pattern", "mcp:tools/call", "--agents", "2"];
    check_every_request_fails(&args, "http_404");

    let addr = scripted(move |_, _| Some(response("200 OK", "application/json", "", init)));
    let url = format!("http://{addr}/mcp");
    let (ok, text, _) = http(&["--url", &url, "--pattern", "mcp:tools/list", "--agents", "2"]);
    assert!(!ok);
    assert!(text.contains("missing_session_id") && text.contains("2026-07-28"), "{text}");
}

#[test]
fn a_server_that_stops_answering_is_a_stall_not_a_hang() {
    // Proves a server that stops answering mid-run (a2a-python had such a deadlock) ends the
    // run within the drain timeout, reported as a stall with when it began; what was in
    // flight counts as drain_timeout, and the accounting closes.
    let addr = scripted(|n, _| {
        (n < 300).then(|| {
            let body =
                r#"{"jsonrpc":"2.0","id":1,"result":{"message":{"role":"ROLE_AGENT","parts":[]}}}"#;
            response("200 OK", "application/json", "", body)
        })
    });
    let url = format!("http://{addr}/");
    let started = std::time::Instant::now();
    let (ok, text, report) = http(&[
        "--url",
        &url,
        "--pattern",
        "a2a:message",
        "--agents",
        "2",
        "--drain-timeout",
        "1",
        "--duration",
        "3",
    ]);
    assert!(!ok);
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    let report = report.unwrap_or_else(|| panic!("no report: {text}"));
    let r = run(&report);
    let failure = r["failure"].as_str().unwrap();
    assert!(
        failure.contains("the server stalled") && failure.contains("measured window"),
        "{failure}\n{text}"
    );
    assert!(r["accounting"]["closed"].as_bool().unwrap(), "{r}");
    assert!(r["errors"]["drain_timeout"].as_u64().unwrap() >= 1, "{}", r["errors"]);
}

fn ok_body() -> Vec<u8> {
    response("200 OK", "text/plain", "", "ok\n")
}

#[test]
fn a_round_trip_on_the_wire_is_never_shorter_than_the_server_took() {
    // Proves the raw latency's two ends err late, never early, on both of the agents' I/O
    // paths: against a server that holds every answer 3 ms, no raw round trip (from the
    // request's departure to its answer's arrival: on the socket ring, the submission that
    // carried it and the pass that reaped the answer) is shorter than 3 ms, and none is longer
    // than the round trip from the intended send time.
    for io in ["uring", "glommio"] {
        if io == "uring" && a2a_bench::transport::uring::supported().is_err() {
            continue;
        }
        let addr = scripted(|_, _| {
            std::thread::sleep(Duration::from_millis(3)); // the server's time, simulated
            Some(ok_body())
        });
        let url = format!("http://{addr}/");
        let (ok, text, report) =
            http(&["--url", &url, "--pattern", "health", "--agents", "3", "--agent-io", io]);
        assert!(ok, "{io}: {text}");
        let report = report.unwrap_or_else(|| panic!("{io}: no report: {text}"));
        assert_clean(&report, &["health"]);
        let latency = &run(&report)["latency"];
        let (raw, rtt) = (&latency["rtt_raw"], &latency["rtt"]);
        assert!(raw["count"].as_u64().unwrap() >= 20, "{io}: {latency}");
        assert!(raw["min_ms"].as_f64().unwrap() >= 3.0, "{io}: {latency}");
        for q in ["min_ms", "p50_ms", "max_ms"] {
            assert!(raw[q].as_f64().unwrap() <= rtt[q].as_f64().unwrap(), "{io}: {latency}");
        }
    }
}

#[test]
fn the_wire_rates_are_the_bytes_the_sockets_carried_in_the_window() {
    // Proves `wire_bytes_per_sec`: against a server whose every answer is the same bytes, the
    // bytes read per second are those bytes times the answers per second (the window's edges
    // aside), and the bytes written per second the request's bytes times the same.
    let answer = ok_body();
    let len = answer.len() as f64;
    let addr = scripted(move |_, _| Some(answer.clone()));
    let url = format!("http://{addr}/");
    let (ok, text, report) = http(&["--url", &url, "--agents", "4", "--duration", "1"]);
    assert!(ok, "{text}");
    let report = report.unwrap();
    let r = run(&report);
    let answers = r["throughput_msg_per_sec"].as_f64().unwrap();
    let wire = &r["wire_bytes_per_sec"];
    let per_answer = wire["received"].as_f64().unwrap() / answers;
    assert!((per_answer / len - 1.0).abs() < 0.02, "{per_answer} bytes an answer, not {len}: {r}");
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: a2a-bench/{}\r\nAccept: application/json\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    );
    let per_request = wire["sent"].as_f64().unwrap() / answers;
    let want = request.len() as f64;
    assert!((per_request / want - 1.0).abs() < 0.02, "{per_request} bytes a request, not {want}");
    assert!(text.contains("wire: "), "{text}");
}

#[test]
fn no_keepalive_sends_one_request_per_connection() {
    // Proves --no-keepalive: every request says `Connection: close` and goes on a connection of
    // its own (reconnects ≈ answers), with no error; HTTP/1.1 only.
    let t = Target::start(Kind::A2aEcho, "127.0.0.1:0".parse().unwrap(), 1).unwrap();
    let url = format!("http://{}/", t.local_addr());
    let (ok, text, report) =
        http(&["--url", &url, "--pattern", "a2a:message", "--agents", "2", "--no-keepalive"]);
    assert!(ok, "{text}");
    let report = report.unwrap();
    assert_clean(&report, &["a2a:message"]);
    let r = run(&report);
    let answered = r["accounting"]["replies_delivered"].as_u64().unwrap();
    assert!(answered >= 20 && r["reconnects"].as_u64().unwrap() + 2 >= answered, "{r}");
}

#[test]
fn headers_given_go_on_every_request_and_only_their_names_into_the_report() {
    // Proves --header: every request carries it (a server that wants an API key and a user
    // agent of its own answers only those), one named as a2a-bench's own User-Agent replaces
    // it, and the report keeps the names but never the values.
    let addr = scripted(|_, request| {
        let ok = request.contains("\r\nX-Api-Key: s3cret-key\r\n")
            && request.contains("\r\nUser-Agent: probe/1\r\n")
            && !request.contains("a2a-bench/");
        Some(if ok { ok_body() } else { response("401 Unauthorized", "text/plain", "", "no\n") })
    });
    let url = format!("http://{addr}/");
    let base = ["--url", &url, "--agents", "2", "--duration", "0.5"];
    let (ok, text, report) = http(
        &[&base[..], &["-H", "X-Api-Key: s3cret-key", "--header", "User-Agent:probe/1"]].concat(),
    );
    assert!(ok, "{text}");
    let report = report.unwrap();
    assert_clean(&report, &["health"]);
    assert_eq!(report["config"]["http"]["headers"], serde_json::json!(["X-Api-Key", "User-Agent"]));
    assert!(!report.to_string().contains("s3cret-key"), "the report holds a header's value");
    // Without them, every answer is the 401 the server gives.
    let (ok, text, report) = http(&base);
    assert!(!ok, "{text}");
    assert!(run(&report.unwrap())["errors"]["http_401"].as_u64().unwrap() > 0, "{text}");
}

#[test]
fn connections_the_server_closes_are_replaced() {
    // Proves keep-alive limits (nginx closes after keepalive_requests) cost nothing: a server
    // that announces `Connection: close` on every 20th answer and closes gets a new connection
    // each time, with no error and no client lost. One that closes without answering (every
    // 25th request) costs that request alone, counted as connection_closed, and the run goes
    // on over new connections.
    let addr = scripted(|n, _| {
        Some(if n % 20 == 19 {
            response("200 OK", "text/plain", "Connection: close\r\n", "ok\n")
        } else {
            ok_body()
        })
    });
    let url = format!("http://{addr}/");
    let (_, text, report) = http(&["--url", &url, "--agents", "4", "--duration", "1"]);
    let report = report.unwrap_or_else(|| panic!("no report: {text}"));
    assert_clean(&report, &["health"]);
    let r = run(&report);
    let answered = r["accounting"]["replies_delivered"].as_u64().unwrap();
    let reconnects = r["reconnects"].as_u64().unwrap();
    assert!(answered >= 100 && reconnects >= answered / 20 - 4, "{answered} {reconnects}");
    // Pipelined: what was on the wire behind the closing answer was never processed (RFC 9112
    // § 9.6), so it goes again on the new connection, counted as resent, not as errors.
    let pipelined = ["--pipeline", "4", "--window", "4", "--connections", "1"];
    let (_, text, report) =
        http(&[&["--url", &url, "--agents", "4", "--duration", "1"][..], &pipelined].concat());
    let report = report.unwrap_or_else(|| panic!("no report: {text}"));
    assert_clean(&report, &["health"]);
    let r = run(&report);
    assert!(r["resent"].as_u64().unwrap() > 0 && r["reconnects"].as_u64().unwrap() > 0, "{r}");

    let addr = scripted(|n, _| Some(if n % 25 == 24 { Vec::new() } else { ok_body() }));
    let url = format!("http://{addr}/");
    let (ok, text, report) = http(&["--url", &url, "--agents", "4", "--duration", "1"]);
    assert!(!ok);
    let report = report.unwrap_or_else(|| panic!("no report: {text}"));
    let r = run(&report);
    assert!(r["accounting"]["closed"].as_bool().unwrap(), "{r}");
    let closed = r["errors"]["connection_closed"].as_u64().unwrap();
    assert_eq!(r["errors"].as_object().unwrap().len(), 1, "{}", r["errors"]);
    let answered = r["accounting"]["replies_delivered"].as_u64().unwrap();
    assert!(closed >= 2 && answered >= 20 * closed, "{closed} {answered}");
    assert!(r["reconnects"].as_u64().unwrap() >= closed, "{r}");
}

/// A server of HTTP/1.0's way: each answer's body ends where the connection closes (no
/// `Content-Length`, not chunked), written in two parts 2 ms apart. `reset` answers every
/// `reset`-th request with half its body, then resets the connection (a reset is not an end).
fn close_delimited(reset: usize) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let count = count.clone();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // The request: its head, then its Content-Length's worth of body.
                let request = loop {
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                        if buf.len() >= end + 4 + len {
                            break String::from_utf8_lossy(&buf).to_string();
                        }
                    }
                    match s.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(k) => buf.extend_from_slice(&chunk[..k]),
                    }
                };
                let result = |r: &str| format!(r#"{{"jsonrpc":"2.0","id":1,"result":{r}}}"#);
                let (kind, body) = if request.contains("SendStreamingMessage") {
                    let task = result(
                        r#"{"task":{"id":"t","contextId":"c","status":{"state":"TASK_STATE_WORKING"}}}"#,
                    );
                    let done = result(
                        r#"{"statusUpdate":{"taskId":"t","contextId":"c","status":{"state":"TASK_STATE_COMPLETED"},"final":true}}"#,
                    );
                    ("text/event-stream", format!("data: {task}\r\n\r\ndata: {done}\r\n\r\n"))
                } else {
                    (
                        "application/json",
                        result(r#"{"message":{"role":"ROLE_AGENT","parts":[{"text":"x"}]}}"#),
                    )
                };
                let head = format!("HTTP/1.0 200 OK\r\nContent-Type: {kind}\r\n\r\n");
                let (first, second) = body.split_at(body.len() / 2);
                let n = count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let _ = s.write_all(format!("{head}{first}").as_bytes());
                std::thread::sleep(Duration::from_millis(2));
                if reset > 0 && n % reset == reset - 1 {
                    let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
                    return; // dropped with a zero linger: a reset
                }
                let _ = s.write_all(second.as_bytes());
            });
        }
    });
    addr
}

#[test]
fn bodies_that_end_at_the_close_are_answered_there() {
    // Proves responses framed by the connection's close (HTTP/1.0's way: no Content-Length,
    // not chunked) are answered when the server closes, their body whole, on both of the
    // agents' I/O paths: JSON and event streams alike, each on a new connection, no error.
    // Before, every such answer was an error (`protocol_unframed_body`). A connection reset
    // half-way through a body is no end: that request is `connection_closed`, not answered.
    for io in ["uring", "glommio"] {
        if io == "uring" && a2a_bench::transport::uring::supported().is_err() {
            continue;
        }
        let url = format!("http://{}/", close_delimited(0));
        let patterns = "a2a:message,a2a:stream";
        let args = ["--url", &url, "--pattern", patterns, "--agents", "2", "--agent-io", io];
        let (ok, text, report) = http(&[&args[..], &["--duration", "1"]].concat());
        assert!(ok, "{io}: {text}");
        let report = report.unwrap_or_else(|| panic!("{io}: no report: {text}"));
        assert_clean(&report, &["a2a:message", "a2a:stream"]);
        assert_eq!(pattern(&report, "a2a:stream")["events_per_answer"], 2.0, "{io}");
        let r = run(&report);
        let answered = r["accounting"]["replies_delivered"].as_u64().unwrap();
        assert!(answered >= 20 && r["reconnects"].as_u64().unwrap() + 2 >= answered, "{r}");

        let url = format!("http://{}/", close_delimited(10));
        let args = ["--url", &url, "--pattern", "a2a:message", "--agents", "2", "--agent-io", io];
        let (ok, text, report) = http(&[&args[..], &["--duration", "1"]].concat());
        assert!(!ok, "{io}: {text}");
        let report = report.unwrap_or_else(|| panic!("{io}: no report: {text}"));
        let r = run(&report);
        assert!(r["accounting"]["closed"].as_bool().unwrap(), "{r}");
        assert_eq!(r["errors"].as_object().unwrap().len(), 1, "{io}: {}", r["errors"]);
        let closed = r["errors"]["connection_closed"].as_u64().unwrap();
        let answered = r["accounting"]["replies_delivered"].as_u64().unwrap();
        assert!(closed >= 1 && answered >= 8 * closed, "{io}: {closed} {answered}");
    }
}

/// A run whose only errors are timeouts, that did not stall and whose accounting closes:
/// its report and how many requests timed out.
fn timed_out_only(ok: bool, text: &str, report: Option<Value>) -> (Value, u64) {
    assert!(!ok);
    let report = report.unwrap_or_else(|| panic!("no report: {text}"));
    let r = run(&report);
    assert!(r["accounting"]["closed"].as_bool().unwrap(), "{r}");
    assert!(!r["failure"].as_str().unwrap_or("").contains("stalled"), "{}", r["failure"]);
    let timeouts = r["errors"]["timeout"].as_u64().unwrap();
    assert_eq!(r["errors"].as_object().unwrap().len(), 1, "{}", r["errors"]);
    (report, timeouts)
}

#[test]
fn requests_past_the_timeout_are_errors_and_their_connection_is_replaced() {
    // Proves --timeout over HTTP/1.1: a server that stops answering on a connection (every
    // 40th request) costs that request, counted as `timeout` after 0.2 s; the connection is
    // closed and replaced and the run goes on (no stall, no client lost), and no answer took
    // longer than the timeout.
    let addr = scripted(|n, _| (n % 40 != 39).then(ok_body));
    let url = format!("http://{addr}/");
    let (ok, text, report) = http(&[
        "--url",
        &url,
        "--agents",
        "2",
        "--duration",
        "1.5",
        "--timeout",
        "0.2",
        "--drain-timeout",
        "5",
    ]);
    let (report, timeouts) = timed_out_only(ok, &text, report);
    let r = run(&report);
    assert!(timeouts >= 2, "{timeouts}");
    // A request that times out in the drain (each client's last) closes its connection, and
    // nothing replaces it: the run is over.
    assert!(r["reconnects"].as_u64().unwrap() + 2 >= timeouts, "{r}");
    assert!(r["latency"]["rtt"]["max_ms"].as_f64().unwrap() < 200.0, "{}", r["latency"]);
    assert_eq!(report["config"]["http"]["timeout_sec"], 0.2);
}

/// What a scripted h2c server does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum H2Act {
    /// Answers `ok`.
    Answer,
    /// Never answers (the stream stays open until the client resets it).
    Hold,
    /// Answers, then shuts the connection down gracefully (GOAWAY, the streams begun still
    /// answered, then the close), as servers with a request limit per connection do.
    AnswerAndGoAway,
    /// Resets the stream with `REFUSED_STREAM` (not processed), as a server at its limit does.
    Refuse,
    /// Answers with a body that never ends, as fast as flow control lets it.
    Flood,
    /// A gRPC error as a head alone: `grpc-status: 5` (NOT_FOUND), no details.
    GrpcNotFound,
    /// The same, named as a2a-sdk 0.3 names it: `grpc-message: TaskNotFoundError: …`.
    GrpcV03NotFound,
    /// A gRPC answer whose message is cut short, then `grpc-status: 0`.
    GrpcCut,
    /// A gRPC answer whose body ends without trailers.
    GrpcNoStatus,
}

/// A scripted h2c server: `act(n, k)` decides the n-th request overall (from 0), the k-th on
/// its connection.
fn h2_scripted(act: impl Fn(usize, usize) -> H2Act + Send + Sync + 'static) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    l.set_nonblocking(true).unwrap();
    let act = Arc::new(act);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(l).unwrap();
            let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            while let Ok((s, _)) = l.accept().await {
                let _ = s.set_nodelay(true);
                let (count, act) = (count.clone(), act.clone());
                tokio::spawn(async move {
                    let Ok(mut conn) = h2::server::handshake(s).await else { return };
                    let (mut held, mut k) = (Vec::new(), 0);
                    while let Some(Ok((_, mut respond))) = conn.accept().await {
                        let n = count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let what = act(n, k);
                        k += 1;
                        if what == H2Act::Hold {
                            held.push(respond);
                            continue;
                        }
                        if what == H2Act::Refuse {
                            respond.send_reset(h2::Reason::REFUSED_STREAM);
                            continue;
                        }
                        let grpc = http::Response::builder()
                            .header("content-type", "application/grpc")
                            .body(())
                            .unwrap();
                        match what {
                            H2Act::GrpcNotFound | H2Act::GrpcV03NotFound => {
                                let mut head = grpc;
                                head.headers_mut().insert("grpc-status", 5.into());
                                if what == H2Act::GrpcV03NotFound {
                                    let m = "TaskNotFoundError: Task not found";
                                    head.headers_mut().insert("grpc-message", m.parse().unwrap());
                                }
                                let _ = respond.send_response(head, true);
                                continue;
                            }
                            H2Act::GrpcCut | H2Act::GrpcNoStatus => {
                                let Ok(mut body) = respond.send_response(grpc, false) else {
                                    continue;
                                };
                                let cut = what == H2Act::GrpcCut;
                                let data: &'static [u8] =
                                    if cut { &[0, 0, 0, 0, 9, 0x12] } else { &[0, 0, 0, 0, 0] };
                                let _ = body.send_data(bytes::Bytes::from_static(data), !cut);
                                if cut {
                                    let mut trailers = http::HeaderMap::new();
                                    trailers.insert("grpc-status", 0.into());
                                    let _ = body.send_trailers(trailers);
                                }
                                continue;
                            }
                            _ => {}
                        }
                        let head = http::Response::builder()
                            .header("content-type", "text/plain")
                            .body(())
                            .unwrap();
                        if what == H2Act::Flood {
                            let Ok(mut body) = respond.send_response(head, false) else { continue };
                            tokio::spawn(async move {
                                let chunk = bytes::Bytes::from(vec![b'x'; 1 << 20]);
                                loop {
                                    body.reserve_capacity(chunk.len());
                                    let room = std::future::poll_fn(|cx| body.poll_capacity(cx));
                                    let Some(Ok(n)) = room.await else { return };
                                    if body.send_data(chunk.slice(..n), false).is_err() {
                                        return; // reset by the client
                                    }
                                }
                            });
                            continue;
                        }
                        if let Ok(mut body) = respond.send_response(head, false) {
                            let _ = body.send_data(bytes::Bytes::from_static(b"ok\n"), true);
                        }
                        if what == H2Act::AnswerAndGoAway {
                            conn.graceful_shutdown();
                        }
                    }
                });
            }
        });
    });
    addr
}

#[test]
fn over_http2_a_server_going_away_gets_a_new_connection() {
    // Proves an HTTP/2 server going away after 50 requests (as nginx's http2_max_requests)
    // costs nothing: the streams in flight are answered, the clients wait for a new
    // connection; no error, no client lost. (Streams past a GOAWAY's last stream: the unit
    // test `h2c::tests::streams_past_a_goaway_go_again`.)
    let addr = h2_scripted(|_, k| if k == 49 { H2Act::AnswerAndGoAway } else { H2Act::Answer });
    let url = format!("http://{addr}/");
    let (ok, text, report) =
        http(&["--url", &url, "--http2", "--agents", "4", "--connections", "1", "--duration", "1"]);
    let report = report.unwrap_or_else(|| panic!("no report: {text}"));
    assert!(ok, "{text}");
    assert_clean(&report, &["health"]);
    let r = run(&report);
    let answered = r["accounting"]["replies_delivered"].as_u64().unwrap();
    // Both agent cores' connections: a new one after every 50 answers or a few more — h2's
    // graceful shutdown sends a first GOAWAY that admits every stream, and the real one only a
    // ping later, so streams opened in between are answered too (measured: 50.6 per
    // connection on average) — and none for each core's last connection.
    assert!(answered >= 500, "{r}");
    assert!(r["reconnects"].as_u64().unwrap() >= answered / 55 - 2, "{r}");
}

#[test]
fn over_http2_refused_streams_go_again() {
    // Proves RFC 9113 §8.7: a stream the server resets with REFUSED_STREAM (every 10th) was
    // not processed, and goes again on the same connection: no error, every request answered,
    // `resent` counts them. A server that refuses everything after its first answer gets 8
    // resends per connection, then `protocol_h2_refused_stream` errors: no spin, no hang.
    let addr = h2_scripted(|n, _| if n % 10 == 9 { H2Act::Refuse } else { H2Act::Answer });
    let url = format!("http://{addr}/");
    let args = ["--url", &url, "--http2", "--agents", "4", "--connections", "1", "--duration", "1"];
    let (ok, text, report) = http(&args);
    let report = report.unwrap_or_else(|| panic!("no report: {text}"));
    assert!(ok, "{text}");
    assert_clean(&report, &["health"]);
    let r = run(&report);
    let answered = r["accounting"]["replies_delivered"].as_u64().unwrap();
    let resent = r["resent"].as_u64().unwrap();
    assert!(answered >= 100 && resent >= answered / 10 - 5, "{resent} resent, {answered} answered");

    let addr = h2_scripted(|n, _| if n == 0 { H2Act::Answer } else { H2Act::Refuse });
    let url = format!("http://{addr}/");
    let args = ["--url", &url, "--http2", "--agents", "2", "--connections", "1", "--duration", "1"];
    let (ok, text, report) = http(&args);
    assert!(!ok, "{text}");
    let report = report.unwrap_or_else(|| panic!("no report: {text}"));
    let r = run(&report);
    assert!(r["accounting"]["closed"].as_bool().unwrap(), "{r}");
    assert!(r["errors"]["protocol_h2_refused_stream"].as_u64().unwrap() > 0, "{}", r["errors"]);
    let connections = 2; // at most one per agent core
                         // 8 in a row per connection, and once each a stream opened before the first answer.
    assert!(r["resent"].as_u64().unwrap() <= 8 * connections + 2, "{r}");
}

#[test]
fn over_http2_more_clients_than_the_server_s_stream_limit_share_a_connection() {
    // Proves 300 clients on one h2c connection to the echo agent (hyper's limit: 200 streams
    // a connection) all answered, none refused: the client opens at most 100 streams until
    // the server's SETTINGS tell its limit, then up to it, the rest waiting in its own queue.
    // Before, the first 300 went out together, the 100 past the limit were refused, 8 went
    // again and the rest were `protocol_h2_refused_stream` errors.
    let t = Target::start(Kind::A2aEcho, "127.0.0.1:0".parse().unwrap(), 1).unwrap();
    let url = format!("http://{}/health", t.local_addr());
    let mut args = vec!["--url", &url, "--http2", "--agents", "300", "--connections", "1"];
    args.extend(["--warmup", "0"]); // the start in the run
    let (ok, text, report) = http(&args);
    let report = report.unwrap_or_else(|| panic!("no report: {text}"));
    assert!(ok, "{text}");
    assert_clean(&report, &["health"]);
    let r = run(&report);
    assert_eq!(r["resent"].as_u64(), Some(0), "{r}");
    assert!(r["accounting"]["replies_delivered"].as_u64().unwrap() >= 300, "{r}");
}

#[test]
fn over_http2_a_first_burst_past_the_server_s_stream_limit_goes_again() {
    // Proves streams opened before the server's first answer and refused (the first 28 of 32
    // clients on one connection here, as a server whose SETTINGS the client had not read yet
    // refuses the streams past its limit) are sent again, not counted as the server's
    // refusals in a row: no error, every request answered. Before, 8 went again and the rest
    // were `protocol_h2_refused_stream` errors (a run of 1,024 clients on 4 connections to
    // `serve a2a-echo`, whose limit is hyper's 200, failed so).
    let addr = h2_scripted(|_, k| if k < 28 { H2Act::Refuse } else { H2Act::Answer });
    let url = format!("http://{addr}/");
    let mut args = vec!["--url", &url, "--http2", "--agents", "32", "--connections", "1"];
    args.extend(["--agent-cores", "0", "--warmup", "0"]); // the burst in the run
    let (ok, text, report) = http(&args);
    let report = report.unwrap_or_else(|| panic!("no report: {text}"));
    assert!(ok, "{text}");
    assert_clean(&report, &["health"]);
    let r = run(&report);
    assert_eq!(r["resent"].as_u64().unwrap(), 28, "{r}");
}

#[test]
fn over_http2_a_timeout_resets_its_stream_alone() {
    // Proves --timeout over --http2: a stream the server never answers (every 30th) is reset
    // after 0.2 s and counted as `timeout`, while the other clients multiplexed on the same
    // connection go on: no connection is replaced.
    let addr = h2_scripted(|n, _| if n % 30 == 29 { H2Act::Hold } else { H2Act::Answer });
    let url = format!("http://{addr}/");
    let (ok, text, report) = http(&[
        "--url",
        &url,
        "--http2",
        "--agents",
        "4",
        "--connections",
        "1",
        "--duration",
        "1.5",
        "--timeout",
        "0.2",
    ]);
    let (report, timeouts) = timed_out_only(ok, &text, report);
    let r = run(&report);
    let answered = r["accounting"]["replies_delivered"].as_u64().unwrap();
    assert!(timeouts >= 2 && answered >= 20 * timeouts, "{timeouts} {answered}");
    assert_eq!(r["reconnects"], 0, "{r}");
}

#[test]
fn over_http2_a_body_past_the_bound_resets_its_stream_alone() {
    // Proves the body bound over --http2: a stream whose body never ends is reset once past
    // 64 MiB and counted as `protocol_response_too_large`, while the other clients on the
    // same connection are answered: no connection replaced.
    let addr = h2_scripted(|n, _| if n == 0 { H2Act::Flood } else { H2Act::Answer });
    let url = format!("http://{addr}/");
    let (ok, text, report) =
        http(&["--url", &url, "--http2", "--agents", "4", "--connections", "1", "--duration", "1"]);
    assert!(!ok, "{text}");
    let report = report.unwrap_or_else(|| panic!("no report: {text}"));
    let r = run(&report);
    assert!(r["accounting"]["closed"].as_bool().unwrap(), "{r}");
    assert_eq!(r["errors"]["protocol_response_too_large"], 1, "{}", r["errors"]);
    assert!(r["accounting"]["replies_delivered"].as_u64().unwrap() > 10, "{r}");
    assert_eq!(r["reconnects"], 0, "{r}");
}

#[test]
fn http_flag_mistakes_get_one_line() {
    // Proves a wrong --url (an a2a-rest pattern's own operation in it too), --pattern, --args,
    // --insecure without https, an unreadable --cacert, a registry:get without --preload, a
    // push receiver's flag without a push pattern (or one it cannot use), a --list-status
    // that names no state or has no list pattern, a --list-artifacts without one, or a v0.3
    // gRPC method in the URL is told in one line naming the flag, without
    // a backtrace.
    for (args, flag) in [
        (vec!["--url", "ftp://127.0.0.1:1/"], "--url"),
        (vec!["--url", "http://127.0.0.1:1/", "--insecure"], "--insecure"),
        (vec!["--url", "https://127.0.0.1:1/", "--cacert", "/nonexistent.pem"], "--cacert"),
        (vec!["--url", "http://127.0.0.1:1/", "--pattern", "a2a:nope"], "--pattern"),
        (
            vec!["--url", "http://127.0.0.1:1/", "--pattern", "mcp:tools/call", "--args", "[1]"],
            "--args",
        ),
        (vec!["--url", "http://127.0.0.1:1/", "--pattern", "registry:get"], "--preload"),
        (vec!["--url", "http://127.0.0.1:1/", "--http2", "--pipeline", "4"], "--pipeline"),
        (vec!["--url", "http://127.0.0.1:1/", "--http2", "--no-keepalive"], "--no-keepalive"),
        (vec!["--url", "http://127.0.0.1:1/", "--stall-probe", "-1"], "--stall-probe"),
        (vec!["--url", "http://127.0.0.1:1/", "--timeout", "0"], "--timeout must be above 0"),
        (vec!["--url", "http://127.0.0.1:1/", "-H", "X-Key"], "--header"),
        (vec!["--url", "http://127.0.0.1:1/", "-H", "Content-Length: 3"], "--header"),
        (vec!["--url", "http://127.0.0.1:1/", "-H", "Bad Name: 3"], "--header"),
        (
            vec!["--url", "http://127.0.0.1:1/t/message:send", "--pattern", "a2a-rest:message"],
            "give the binding's base ('/t')",
        ),
        (
            vec![
                "--url",
                "http://127.0.0.1:1/v1/message:send",
                "--pattern",
                "a2a-v03-rest:message",
            ],
            "give the binding's base ('/')",
        ),
        (
            vec![
                "--url",
                "http://127.0.0.1:1/",
                "--pattern",
                "a2a:list_tasks",
                "--list-status",
                "done",
            ],
            "--list-status 'done': a task state is",
        ),
        (
            vec![
                "--url",
                "http://127.0.0.1:1/",
                "--pattern",
                "a2a:task",
                "--list-status",
                "working",
            ],
            "--list-status is for the list patterns",
        ),
        (
            vec!["--url", "http://127.0.0.1:1/", "--pattern", "a2a:task", "--list-artifacts"],
            "--list-artifacts is for the list patterns",
        ),
        (
            vec![
                "--url",
                "http://127.0.0.1:1/a2a.v1.A2AService/SendMessage",
                "--pattern",
                "a2a-v03-grpc:message",
            ],
            "a2a.v1.A2AService/<method> themselves: give the server's address",
        ),
        (
            vec![
                "--url",
                "http://127.0.0.1:1/lf.a2a.v1.A2AService/SendMessage",
                "--pattern",
                "a2a-grpc:message",
            ],
            "give the server's address",
        ),
        (
            vec!["--url", "http://127.0.0.1:1/", "--pattern", "a2a-grpc:stream", "--pipeline", "2"],
            "--pattern",
        ),
        (
            vec!["--url", "http://127.0.0.1:1/", "--threshold", "p99{a2a:stream}<1ms"],
            "--threshold 'p99{a2a:stream}<1ms': no pattern 'a2a:stream' in the mix (health)",
        ),
        (vec!["--url", "http://127.0.0.1:1/", "--threshold", "rate{health}>1"], "--threshold"),
        (vec!["--url", "http://127.0.0.1:1/", "--task-poll", "-1"], "--task-poll"),
        (vec!["--url", "http://127.0.0.1:1/", "--task-timeout", "0"], "--task-timeout"),
        (vec!["--url", "http://127.0.0.1:1/", "--page-size", "0"], "--page-size"),
        (vec!["--url", "http://127.0.0.1:1/", "--page-size", "101"], "--page-size"),
        (vec!["--url", "http://127.0.0.1:1/", "--page-walk"], "--page-walk"),
        (vec!["--url", "http://127.0.0.1:1/", "--task-poll-max", "1"], "--task-poll-max"),
        (
            vec![
                "--url",
                "http://127.0.0.1:1/",
                "--pattern",
                "a2a:task",
                "--task-poll-max",
                "0.05",
            ],
            "--task-poll-max must be above --task-poll",
        ),
        (vec!["--url", "http://127.0.0.1:1/", "--push-url", "http://h/"], "--push-url and"),
        (vec!["--url", "http://127.0.0.1:1/", "--push-auth"], "--push-auth are for"),
        (
            vec!["--url", "http://127.0.0.1:1/", "--pattern", "a2a:push", "--push-url", "ftp://h"],
            "--push-url: give an http",
        ),
        (
            vec!["--url", "http://127.0.0.1:1/", "--pattern", "a2a:push", "--push-listen", "x"],
            "--push-listen",
        ),
        (
            vec![
                "--url",
                "http://127.0.0.1:1/",
                "--pattern",
                "a2a-rest:push",
                "--push-listen",
                "192.0.2.1:0",
            ],
            "--push-listen 192.0.2.1:0",
        ),
    ] {
        let mut all = vec!["http"];
        all.extend(args);
        let o = run_bin(&all, LIMIT);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success());
        assert!(err.contains(flag) && !err.contains("panicked"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}

/// A CA and a certificate it signed for `localhost` and 127.0.0.1, as PEM files in `dir`:
/// (CA certificate, server certificate, server key).
fn tls_files(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    let paths = (dir.join("ca.pem"), dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

/// Runs `args` over HTTP/1.1, then over h2 (ALPN): each run clean, over TLS.
fn clean_over_both_versions(args: &[&str]) {
    let mix = args[args.iter().position(|a| *a == "--pattern").unwrap() + 1];
    for extra in [&[][..], &["--http2"][..]] {
        let (ok, text, report) = http(&[args, extra].concat());
        assert!(ok, "{extra:?}: {text}");
        let report = report.unwrap();
        assert_clean(&report, &mix.split(',').collect::<Vec<_>>());
        assert_eq!(report["config"]["http"]["tls"], true);
    }
}

#[test]
fn https_targets_are_measured_over_both_versions() {
    // Proves https://: the echo agent over TLS answers every A2A pattern over HTTP/1.1 and
    // over h2 (ALPN), gRPC's too, its certificate checked against --cacert; the registry's --preload goes
    // over TLS too. Without the CA the run fails with the certificate's fault in one line per
    // kind, and --insecure accepts it.
    let dir = tempdir();
    let (ca, cert, key) = tls_files(&dir);
    let tls = a2a_bench::tls::server(&cert, &key).unwrap();
    let t = Target::start_tls(
        Kind::A2aEcho,
        "127.0.0.1:0".parse().unwrap(),
        1,
        None,
        Some(tls.clone()),
    )
    .unwrap();
    let url = format!("https://localhost:{}/", t.local_addr().port());
    let mix = "a2a:message,a2a:stream,a2a:agent_card";
    let ca_arg = ca.to_str().unwrap();
    clean_over_both_versions(&[
        "--url",
        &url,
        "--pattern",
        mix,
        "--agents",
        "3",
        "--cacert",
        ca_arg,
    ]);
    assert!(t.http2_requests() > 0, "the --http2 run went over h2");
    // gRPC over TLS: h2 by ALPN without --http2.
    let grpc = "a2a-grpc:message,a2a-grpc:stream";
    let (ok, text, report) =
        http(&["--url", &url, "--pattern", grpc, "--agents", "2", "--cacert", ca_arg]);
    assert!(ok, "{text}");
    let report = report.unwrap();
    assert_clean(&report, &grpc.split(',').collect::<Vec<_>>());
    let config = &report["config"]["http"];
    assert!(config["tls"] == true && config["http2"] == true, "{config}");

    // A new connection, and so a TLS handshake, for every request.
    let args = ["--url", &url, "--pattern", "a2a:message", "--agents", "2", "--no-keepalive"];
    let (ok, text, report) = http(&[&args[..], &["--cacert", ca_arg]].concat());
    assert!(ok, "{text}");
    let report = report.unwrap();
    assert_clean(&report, &["a2a:message"]);
    let r = run(&report);
    let answered = r["accounting"]["replies_delivered"].as_u64().unwrap();
    assert!(r["reconnects"].as_u64().unwrap() + 2 >= answered, "{r}");
    assert_eq!(report["config"]["http"]["keepalive"], false);

    let (ok, text, report) = http(&["--url", &url, "--agents", "2"]);
    assert!(!ok);
    let failure = report.unwrap()["results"][0]["failure"].as_str().unwrap().to_string();
    assert!(failure.contains("invalid peer certificate"), "{failure}\n{text}");
    let health = format!("{url}health");
    let (ok, text, _) = http(&["--url", &health, "--agents", "2", "--insecure"]);
    assert!(ok, "{text}");

    let reg = Target::start_tls(Kind::Registry, "127.0.0.1:0".parse().unwrap(), 1, None, Some(tls))
        .unwrap();
    let url = format!("https://127.0.0.1:{}/", reg.local_addr().port());
    let mix = "registry:get,registry:search";
    clean_over_both_versions(&[
        "--url",
        &url,
        "--pattern",
        mix,
        "--preload",
        "40",
        "--cacert",
        ca_arg,
    ]);
}

#[test]
fn a_target_on_this_machine_is_found_and_its_cpu_reported_as_its_own() {
    // Proves a target served by a process of its own on this machine is found by its listening
    // socket: its CPU over the run is reported as `cpu.target_cores`, not as other processes'
    // (which warned that the run was disturbed whenever a2a-bench measured a local server).
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_a2a-bench"))
        .args(["serve", "a2a-echo", "--listen", "127.0.0.1:0", "--threads", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let server = child.id();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap().to_string();
    let addr: SocketAddr = url.trim_start_matches("http://").trim_end_matches('/').parse().unwrap();
    assert_eq!(a2a_bench::host::listeners(addr), vec![server]);
    let (ok, text, report) = http(&["--url", &url, "--pattern", "a2a:message", "--agents", "4"]);
    let server_kib = crate::support::status_kib(server, "VmRSS:");
    let _ = child.kill();
    let _ = child.wait();
    assert!(ok, "{text}");
    let cpu = &run(report.as_ref().unwrap())["cpu"];
    let cores = cpu["target_cores"].as_f64().expect("cpu.target_cores");
    assert!(cores > 0.0 && cores < 64.0, "{cpu}");
    assert!(text.contains("target: its processes on this machine used "), "{text}");
    // Its memory too, read at the window's end: the server's, within a factor of two of what
    // it held once the run was over; and the client's own.
    let memory = &run(report.as_ref().unwrap())["memory"];
    let target = memory["target_bytes"].as_u64().expect("memory.target_bytes") / 1024;
    assert!(
        target > server_kib / 2 && target < server_kib * 2,
        "{target} KiB, server {server_kib} KiB"
    );
    assert!(memory["process_bytes"].as_u64().unwrap() > 1 << 20, "{memory}");
    assert!(text.contains("memory at the windows' ends: the target: 4 clients "), "{text}");
}
