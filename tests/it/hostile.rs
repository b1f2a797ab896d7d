//! The router against hostile clients and exhausted resources, as its own process: memory grows
//! with bytes received, never with bytes announced; running out of descriptors does not spin.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use a2a_bench::client::Client;
use a2a_bench::wire::{Control, FrameHeader};

use crate::support::{cpu_ticks, router_process, status_kib};

/// One `stats` round trip through every shard: by its answer, the shards have served the input
/// that came before it.
fn stats_round(addr: std::net::SocketAddr) {
    let mut c = Client::connect(addr).unwrap();
    let request_id = c.request_id();
    let ctl = Control::StatsRequest(a2a_bench::wire::control::StatsRequest { request_id });
    assert!(matches!(c.call(ctl).unwrap(), Control::StatsReply(_)));
}

#[test]
fn a_header_announcing_megabytes_does_not_reserve_them() {
    // Proves memory grows with bytes received, not bytes announced: 50 connections each send
    // only a 16-byte header announcing a 9 MB frame; the router's RSS grows by less than 1 MB
    // per connection (it used to reserve the 9 MB at once: +450 MB).
    let (mut router, addr) = router_process(&[]);
    let pid = router.id();
    stats_round(addr);
    let before = status_kib(pid, "VmRSS");
    let header =
        FrameHeader { compressed: false, count: 1, body_len: 9_000_000, raw_len: 9_000_000 };
    let conns: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(&header.to_bytes()).unwrap();
            s
        })
        .collect();
    stats_round(addr);
    stats_round(addr);
    let grown_kib = status_kib(pid, "VmRSS").saturating_sub(before);
    drop(conns);
    let _ = router.kill();
    let _ = router.wait();
    assert!(grown_kib < 50 * 1024, "RSS grew {grown_kib} KiB for 50 announced frames");
}

#[test]
fn out_of_descriptors_the_router_backs_off_and_recovers() {
    // Proves a router out of file descriptors does not spin: with a 64-descriptor limit and 100
    // connections waiting, it uses little CPU, says so at most about once a second, and serves
    // a new agent once the waiting connections are gone.
    let (mut router, addr) = router_process(&["ulimit -n 64"]);
    let pid = router.id();
    stats_round(addr);
    let started = std::time::Instant::now();
    let conns: Vec<TcpStream> = (0..100).filter_map(|_| TcpStream::connect(addr).ok()).collect();
    let t0 = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(1)); // the interval measured, not a readiness wait
    let used = cpu_ticks(pid) - t0;
    assert!(used < 30, "the router used {used} ticks of 100 in a second while out of descriptors");
    drop(conns);
    // Recovery: while the router closes what it had accepted and drains the backlog of closed
    // connections it is still short of descriptors, so a client retries, as a real one would.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let answer = loop {
        let attempt = Client::connect(addr).and_then(|mut c| {
            c.set_timeout(Duration::from_secs(2))?;
            c.register(4242, 0, &[]).map_err(|e| std::io::Error::other(e.to_string()))
        });
        match attempt {
            Ok(answer) => break answer,
            Err(e) if std::time::Instant::now() > deadline => panic!("never recovered: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)), // a retry's pause
        }
    };
    assert!(matches!(answer, Control::Ack(_)), "{answer:?}");
    let _ = router.kill();
    let mut stderr = String::new();
    let _ = router.stderr.take().unwrap().read_to_string(&mut stderr);
    let _ = router.wait();
    let warnings = stderr.lines().filter(|l| l.contains("out of file descriptors")).count();
    let most = started.elapsed().as_secs() as usize + 2; // about one a second
    assert!((1..=most).contains(&warnings), "{warnings} warnings: {stderr}");
}

/// A sharded router (glommio and tokio per-core share the shell) with short timeouts.
fn router_with_short_timeouts(kind: a2a_bench::routers::RouterKind) -> crate::support::TestRouter {
    let setup = crate::support::Setup { kind, transport: a2a_bench::transport::Transport::Tcp };
    crate::support::start(setup, 1, |cfg| {
        cfg.handshake_timeout = Duration::from_millis(300);
        cfg.idle_timeout = Duration::from_millis(300);
        cfg.frame_timeout = Duration::from_millis(300);
    })
}

/// Reads until the router closes `s`; returns what it sent (bounded by a 10 s read timeout).
fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("the router did not close the connection: {e} after {got:?}"),
        }
    }
}

/// The one error frame in `bytes`, decoded.
fn error_in(bytes: &[u8]) -> a2a_bench::wire::control::Error {
    let mut scratch = Vec::new();
    let limits = a2a_bench::wire::Limits::DEFAULT;
    let (_, batch) = a2a_bench::wire::decode_frame(bytes, &limits, &mut scratch).unwrap().unwrap();
    let msgs: Vec<_> = batch.map(|m| m.unwrap().0).collect();
    match &msgs[..] {
        [a2a_bench::wire::Message::Control(Control::Error(e))] => e.clone(),
        other => panic!("expected one error, got {other:?}"),
    }
}

#[test]
fn silent_partial_and_agentless_connections_time_out() {
    // Proves every kind of stuck connection is closed after its timeout, on both sharded
    // routers: one that never sends a byte, a partial HTTP request line, a partial frame header,
    // and a connection that sent a request but registered no agent; an agent that stays silent
    // past the same timeouts keeps its connection.
    for kind in
        [a2a_bench::routers::RouterKind::Glommio, a2a_bench::routers::RouterKind::TokioPerCore]
    {
        let r = router_with_short_timeouts(kind);
        let mut silent = TcpStream::connect(r.addr()).unwrap();
        assert!(read_until_closed(&mut silent).is_empty(), "{kind}: closed without a word");
        let mut http = TcpStream::connect(r.addr()).unwrap();
        http.write_all(b"GET / HT").unwrap();
        read_until_closed(&mut http);
        let mut partial = TcpStream::connect(r.addr()).unwrap();
        let header = FrameHeader { compressed: false, count: 1, body_len: 100, raw_len: 100 };
        partial.write_all(&header.to_bytes()[..8]).unwrap();
        let err = error_in(&read_until_closed(&mut partial));
        assert_eq!(err.code, a2a_bench::wire::ErrorCode::Timeout.code(), "{kind}: {err:?}");
        let mut agentless = r.connect();
        let request_id = agentless.request_id();
        let stats = Control::StatsRequest(a2a_bench::wire::control::StatsRequest { request_id });
        assert!(matches!(agentless.call(stats).unwrap(), Control::StatsReply(_)));
        let after = agentless.read_until_closed().expect("closed after the idle timeout");
        assert!(
            matches!(&after[..], [a2a_bench::client::Received::Control(Control::Error(e))] if e.code == a2a_bench::wire::ErrorCode::Timeout.code()),
            "{kind}: {after:?}"
        );
        let mut agent = crate::support::agent(&r, 9, 0, &[]);
        let mut other = crate::support::agent(&r, 10, 0, &[]);
        std::thread::sleep(Duration::from_millis(700)); // longer than every timeout: the interval under test
        crate::support::send(
            &mut other,
            crate::support::data(a2a_bench::wire::DataKind::Direct, 10, 9, 1, b"still here"),
        );
        assert_eq!(crate::support::recv_data(&mut agent).message_id, 1, "{kind}");
        r.stop();
    }
}
