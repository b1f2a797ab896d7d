//! The router against hostile clients and exhausted resources, as its own process: memory grows
//! with bytes received, never with bytes announced; running out of descriptors does not spin.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use a2a_bench::client::Client;
use a2a_bench::transport::Io;
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
    // Proves a router out of file descriptors does not spin: with a 64-descriptor limit and 200
    // connections waiting, it uses little CPU, says so at most about once a second, and serves
    // a new agent once the waiting connections are gone. (Its shard's socket ring holds 64 of
    // them without a descriptor: the rest run it out.)
    let (mut router, addr) = router_process(&["ulimit -n 64"]);
    let pid = router.id();
    stats_round(addr);
    let started = std::time::Instant::now();
    let conns: Vec<TcpStream> = (0..200).filter_map(|_| TcpStream::connect(addr).ok()).collect();
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
    let setup = crate::support::Setup {
        kind,
        transport: a2a_bench::transport::Transport::Tcp,
        io: Default::default(),
    };
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

/// A two-shard router of `kind`; connections alternate between the shards as they open.
fn two_shards(
    kind: a2a_bench::routers::RouterKind,
    tweak: impl FnOnce(&mut a2a_bench::route::ShardConfig),
) -> crate::support::TestRouter {
    two_shards_on(kind, Io::Glommio, tweak)
}

/// [`two_shards`], the glommio router's sockets on `io`.
fn two_shards_on(
    kind: a2a_bench::routers::RouterKind,
    io: Io,
    tweak: impl FnOnce(&mut a2a_bench::route::ShardConfig),
) -> crate::support::TestRouter {
    let setup = crate::support::Setup { kind, transport: a2a_bench::transport::Transport::Tcp, io };
    crate::support::start(setup, 2, |cfg| {
        cfg.conn_queue_bytes_max = 256 << 10;
        cfg.compression = a2a_bench::wire::Compression::None;
        tweak(cfg);
    })
}

/// Agent `from` sends 1000-byte messages to agent `to` on a thread until the router stops
/// taking them (its write times out) or 64 MiB went through; returns the bytes sent.
fn flood(mut c: Client, from: u32, to: u32) -> std::thread::JoinHandle<(Client, usize)> {
    use a2a_bench::wire::{DataKind, Message};
    std::thread::spawn(move || {
        c.set_compression(a2a_bench::wire::Compression::None);
        c.set_write_timeout(Duration::from_millis(500)).unwrap();
        let payload = crate::support::noise(1000);
        let batch: Vec<Message<'_>> = (0..64)
            .map(|i| Message::Data(crate::support::data(DataKind::Direct, from, to, i, &payload)))
            .collect();
        let mut sent = 0usize;
        while sent < 64 << 20 && c.send(&batch).is_ok() {
            sent += 64 * 1000;
        }
        (c, sent)
    })
}

/// A `stats` request through a client: every shard must answer (a scatter-gather).
fn stats_via_client(r: &crate::support::TestRouter) -> Vec<a2a_bench::wire::ShardStats> {
    let mut c = r.connect();
    c.set_timeout(Duration::from_secs(5)).unwrap();
    let request_id = c.request_id();
    let ctl = Control::StatsRequest(a2a_bench::wire::control::StatsRequest { request_id });
    match c.call(ctl).unwrap() {
        Control::StatsReply(s) => s.shards,
        other => panic!("expected stats, got {other:?}"),
    }
}

#[test]
fn a_slow_consumer_on_one_shard_holds_back_only_its_senders() {
    // Proves a consumer that never reads, on shard 0, with a sender on shard 1 pushed against
    // it, stops nothing else, under both policies and on both sharded routers: a new agent
    // registers and a stats scatter-gather answers within 1 s each, and another pair across the
    // same two shards still talks.
    use a2a_bench::route::FullPolicy;
    use a2a_bench::routers::RouterKind;
    use a2a_bench::wire::DataKind;
    use std::time::Instant;
    for kind in [RouterKind::Glommio, RouterKind::TokioPerCore] {
        for policy in [FullPolicy::Backpressure, FullPolicy::Drop] {
            let r = two_shards(kind, |cfg| cfg.on_full = policy);
            let mut slow = r.connect_with_recv_buffer(16 << 10); // shard 0
            crate::support::check_ack(slow.register(1, 0, &[]).unwrap());
            let fast = crate::support::agent(&r, 2, 0, &[]); // shard 1
            let mut healthy = crate::support::agent(&r, 3, 0, &[]); // shard 0
            let mut friend = crate::support::agent(&r, 4, 0, &[]); // shard 1
            let (_fast, sent) = flood(fast, 2, 1).join().unwrap();
            // Under backpressure the sender is held back; under drop it goes on, told
            // `queue_full` per message (answers its kernel buffers absorb).
            if policy == FullPolicy::Backpressure {
                assert!(sent < 64 << 20, "{kind}: 64 MiB went to a consumer that never reads");
            }
            let t = Instant::now();
            let shards = stats_via_client(&r);
            let stats_took = t.elapsed();
            assert_eq!(shards.len(), 2);
            assert!(shards[0].conn_queue_bytes_hwm >= 256 << 10, "{kind}/{policy}: {shards:?}");
            let t = Instant::now();
            let mut newcomer = r.connect();
            newcomer.set_timeout(Duration::from_secs(5)).unwrap();
            crate::support::check_ack(newcomer.register(5, 0, &[]).unwrap());
            let register_took = t.elapsed();
            let t = Instant::now();
            crate::support::send(
                &mut friend,
                crate::support::data(DataKind::Direct, 4, 3, 7, b"hi"),
            );
            healthy.set_timeout(Duration::from_secs(5)).unwrap();
            assert_eq!(crate::support::recv_data(&mut healthy).message_id, 7, "{kind}/{policy}");
            let message_took = t.elapsed();
            eprintln!(
                "{kind}/{policy}: stats {stats_took:?}, registration {register_took:?}, message {message_took:?}"
            );
            for (what, took) in
                [("stats", stats_took), ("registration", register_took), ("message", message_took)]
            {
                assert!(took < Duration::from_secs(1), "{kind}/{policy}: {what} took {took:?}");
            }
            drop(slow);
            r.stop();
        }
    }
}

#[test]
fn a_slow_consumer_is_disconnected_and_counted() {
    // Proves a connection whose queue stays past its bound for the slow-consumer time is closed
    // and counted in stats, its sender resumes (its messages now get `unknown_recipient`), and
    // the agent id is free again.
    use a2a_bench::routers::RouterKind;
    for (kind, io) in [
        (RouterKind::Glommio, Io::Glommio),
        (RouterKind::Glommio, Io::Uring),
        (RouterKind::TokioPerCore, Io::Glommio),
    ] {
        let r = two_shards_on(kind, io, |cfg| cfg.slow_consumer = Duration::from_millis(300));
        let mut slow = r.connect_with_recv_buffer(16 << 10);
        crate::support::check_ack(slow.register(1, 0, &[]).unwrap());
        let fast = crate::support::agent(&r, 2, 0, &[]);
        let (_fast, _) = flood(fast, 2, 1).join().unwrap();
        let mut stream = slow.into_stream().unwrap();
        read_until_closed(&mut stream); // what the kernel buffered, then the end
        let shards = stats_via_client(&r);
        let counted: u64 = shards.iter().map(|s| s.slow_consumers).sum();
        assert_eq!(counted, 1, "{kind}: {shards:?}");
        let code = a2a_bench::wire::ErrorCode::SlowConsumer.code();
        assert!(shards.iter().any(|s| s.errors.contains(&(code, 1))), "{kind}: {shards:?}");
        let mut again = r.connect();
        crate::support::check_ack(again.register(1, 0, &[]).unwrap());
        r.stop();
    }
}

/// Registers `agent` on a new connection, retrying for up to 5 s: the router frees a slot (or
/// memory) when it sees a close, so a client retries, as a real one would.
fn register_with_retries(
    r: &crate::support::TestRouter,
    agent: u32,
    kind: a2a_bench::routers::RouterKind,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = r.connect();
        c.set_timeout(Duration::from_secs(2)).unwrap();
        match c.register(agent, 0, &[]) {
            Ok(Control::Ack(_)) => return,
            other if std::time::Instant::now() > deadline => panic!("{kind}: {other:?}"),
            _ => std::thread::sleep(Duration::from_millis(20)), // a retry's pause
        }
    }
}

#[test]
fn past_the_connection_limit_a_client_is_refused_clearly_and_others_go_on() {
    // Proves `max_connections`: the connection past it gets `resource_exhausted` and is closed
    // (a WebSocket upgrade gets HTTP 503), it is counted, and once a connection closes a new one
    // is served. The shared-state baseline too (before, it took every connection).
    use a2a_bench::routers::RouterKind;
    for kind in RouterKind::ALL {
        let r = two_shards(kind, |cfg| cfg.max_connections = 2);
        let a = crate::support::agent(&r, 1, 0, &[]);
        let _b = crate::support::agent(&r, 2, 0, &[]);
        let mut refused = TcpStream::connect(r.addr()).unwrap();
        let header = FrameHeader { compressed: false, count: 1, body_len: 10, raw_len: 10 };
        refused.write_all(&header.to_bytes()[..4]).unwrap();
        let err = error_in(&read_until_closed(&mut refused));
        assert_eq!(err.code, a2a_bench::wire::ErrorCode::ResourceExhausted.code(), "{kind}");
        let mut upgrade = TcpStream::connect(r.addr()).unwrap();
        upgrade.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let reply = String::from_utf8_lossy(&read_until_closed(&mut upgrade)).to_string();
        assert!(reply.starts_with("HTTP/1.1 503"), "{kind}: {reply}");
        let refused: u64 = r.stats().iter().map(|s| s.connections_refused).sum();
        assert_eq!(refused, 2, "{kind}");
        let mut a = a.into_stream().unwrap();
        a.shutdown(std::net::Shutdown::Both).unwrap();
        read_until_closed(&mut a);
        register_with_retries(&r, 3, kind);
        r.stop();
    }
}

#[test]
fn past_the_memory_budget_large_frames_and_new_connections_are_refused() {
    // Proves `memory_max`: a frame whose read buffer would take the shard past its budget gets
    // `resource_exhausted` and a close; while queues hold the budget, a new connection is refused
    // the same way; once they are released, connections are served again.
    use a2a_bench::routers::RouterKind;
    for kind in [RouterKind::Glommio, RouterKind::TokioPerCore] {
        let setup = crate::support::Setup {
            kind,
            transport: a2a_bench::transport::Transport::Tcp,
            io: Default::default(),
        };
        let r = crate::support::start(setup, 1, |cfg| {
            cfg.memory_max = 256 << 10;
            cfg.conn_queue_bytes_max = 1 << 20;
            cfg.compression = a2a_bench::wire::Compression::None;
        });
        let mut big = TcpStream::connect(r.addr()).unwrap();
        let header =
            FrameHeader { compressed: false, count: 1, body_len: 900_000, raw_len: 900_000 };
        big.write_all(&header.to_bytes()).unwrap();
        // The router closes the connection mid-frame, so a write may fail: that is the point.
        let _ = big.write_all(&vec![0u8; 400_000]);
        let err = error_in(&read_until_closed(&mut big));
        assert_eq!(err.code, a2a_bench::wire::ErrorCode::ResourceExhausted.code(), "{kind}");
        // A consumer that never reads holds more than the budget in its queue.
        let mut slow = r.connect_with_recv_buffer(16 << 10);
        crate::support::check_ack(slow.register(1, 0, &[]).unwrap());
        let fast = crate::support::agent(&r, 2, 0, &[]);
        let (fast, _) = flood(fast, 2, 1).join().unwrap();
        let held = r.stats()[0].memory_bytes;
        assert!(held >= 256 << 10, "{kind}: only {held} B held");
        let mut refused = TcpStream::connect(r.addr()).unwrap();
        refused.write_all(&header.to_bytes()[..4]).unwrap();
        let err = error_in(&read_until_closed(&mut refused));
        assert_eq!(err.code, a2a_bench::wire::ErrorCode::ResourceExhausted.code(), "{kind}");
        drop(slow);
        drop(fast);
        register_with_retries(&r, 3, kind);
        assert_eq!(r.stats()[0].memory_bytes, 0, "{kind}: memory given back");
        r.stop();
    }
}

#[test]
#[ignore = "slow: 1,000 router starts; run by make test-slow"]
fn a_sharded_router_starts_serves_and_stops_a_thousand_times_without_a_stall() {
    // Proves no lost wake-up in start, cross-shard registration and stop: 1,000 times, a
    // two-shard glommio router starts, registers an agent on each shard (each registration a
    // claim and a sync round through the other shard), passes one message across, and stops,
    // each step within 5 s (a stalled shard would exceed it by far), and the router's watchdog
    // never sees a shard's loop stop turning.
    use a2a_bench::routers::RouterKind;
    use a2a_bench::wire::DataKind;
    let (tx, rx) = std::sync::mpsc::channel::<u32>();
    std::thread::spawn(move || {
        let mut last = 0;
        loop {
            match rx.recv_timeout(Duration::from_secs(5)) {
                Ok(i) => last = i,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                Err(_) => {
                    eprintln!("iteration {last}: no progress for 5 s (a stalled shard)");
                    if std::env::var_os("A2A_STALL_GDB").is_some() {
                        let pid = std::process::id().to_string();
                        let _ = std::process::Command::new("gdb")
                            .args(["-p", &pid, "-batch", "-ex", "thread apply all bt 30"])
                            .status();
                    }
                    std::process::abort();
                }
            }
        }
    });
    for i in 0..1000u32 {
        // Alternately on glommio's streams and on the shards' second ring.
        let io = if i % 2 == 0 { Io::Glommio } else { Io::Uring };
        let setup = crate::support::Setup {
            kind: RouterKind::Glommio,
            transport: a2a_bench::transport::Transport::Tcp,
            io,
        };
        let r = crate::support::start(setup, 2, |_| {});
        let mut a = crate::support::agent(&r, 1, 0, &[]);
        let mut b = crate::support::agent(&r, 2, 0, &[]);
        crate::support::send(&mut a, crate::support::data(DataKind::Direct, 1, 2, 1, b"x"));
        assert_eq!(crate::support::recv_data(&mut b).message_id, 1);
        drop((a, b));
        let stalls: u64 = r.stats().iter().map(|s| s.loop_stalls).sum();
        assert_eq!(stalls, 0, "iteration {i}: the watchdog saw a shard stop turning");
        r.stop();
        let leaked = a2a_bench::transport::uring::leaked();
        assert_eq!(
            leaked, 0,
            "iteration {i}: a shard's ring was dropped with operations in flight"
        );
        tx.send(i).unwrap();
    }
}

#[test]
fn a_shard_whose_loop_stops_turning_is_reported_by_the_watchdog() {
    // Proves the router's watchdog notices a shard that has not turned its loop for a second
    // (here its thread is blocked on purpose) and counts it in the shard's stats, for every
    // router kind that runs the shard shell.
    use a2a_bench::routers::RouterKind;
    for kind in [RouterKind::Glommio, RouterKind::TokioPerCore] {
        let setup = crate::support::Setup {
            kind,
            transport: a2a_bench::transport::Transport::Tcp,
            io: Default::default(),
        };
        let r = crate::support::start(setup, 1, |_| {});
        assert_eq!(r.stats()[0].loop_stalls, 0, "{kind}: no stall yet");
        r.stall(Duration::from_millis(1600));
        // The stats answer comes after the stall: by then the watchdog has seen it.
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let s = r.stats();
            if s.first().is_some_and(|s| s.loop_stalls >= 1) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{kind}: the watchdog never saw it");
        }
        assert_eq!(r.stats()[0].loop_stalls, 1, "{kind}: one stall, counted once");
    }
}
