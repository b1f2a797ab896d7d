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
    let conns: Vec<TcpStream> = (0..100).filter_map(|_| TcpStream::connect(addr).ok()).collect();
    let t0 = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(1)); // the interval measured, not a readiness wait
    let used = cpu_ticks(pid) - t0;
    assert!(used < 30, "the router used {used} ticks of 100 in a second while out of descriptors");
    drop(conns);
    let mut c = Client::connect(addr).unwrap();
    c.set_timeout(Duration::from_secs(5)).unwrap();
    let answer = c.register(4242, 0, &[]).expect("a new agent is served after recovery");
    assert!(matches!(answer, Control::Ack(_)), "{answer:?}");
    let _ = router.kill();
    let mut stderr = String::new();
    let _ = router.stderr.take().unwrap().read_to_string(&mut stderr);
    let _ = router.wait();
    let warnings = stderr.lines().filter(|l| l.contains("out of file descriptors")).count();
    assert!((1..=4).contains(&warnings), "{warnings} warnings: {stderr}");
}
