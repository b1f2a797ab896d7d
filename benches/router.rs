//! Router throughput and round-trip latency with a minimal driver.
//!
//! Throughput: `pairs` sender connections each write a pre-encoded frame of 64 direct messages
//! (64 B payloads) in a loop; the matching receivers count what arrives by reading frame headers
//! only. The driver therefore costs almost nothing per message and the router is what is
//! measured. Routed msgs/s = messages received per second, after a warm-up.
//!
//! Round trip: one requester sends a request, a responder thread answers with a reply, the
//! requester records the round trip in an HdrHistogram; sequential, one in flight.
//!
//! Every set-up runs against the glommio router and both tokio baselines (shared state,
//! per-core), alternating run by run on the same cores, so their ratio is measured in one run.
//!
//! `cargo bench --bench router` (or `make bench-router`). Each figure is the median of 5 runs;
//! `A2A_BENCH_SECS` changes the run length (default 2 s); `A2A_BENCH_ONLY` filters set-ups.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use a2a_bench::client::{Client, Received};
use a2a_bench::placement::{Machine, Slot};
use a2a_bench::routers::{AnyRouter, RouterKind, RouterSpec};
use a2a_bench::wire::frame::encode_frame;
use a2a_bench::wire::{
    AgentId, BufferPool, Compression, DataKind, Envelope, FrameHeader, Limits, Message, HEADER_LEN,
};
use hdrhistogram::Histogram;

const RUNS: usize = 5;

fn secs() -> f64 {
    std::env::var("A2A_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(2.0)
}

fn envelope(sender: u32, to: u32, payload: &[u8], kind: DataKind, id: u64) -> Envelope<'_> {
    Envelope {
        kind,
        sender: AgentId(sender),
        to,
        message_id: id,
        correlation_id: 0,
        timestamp_ns: a2a_bench::clock::now_ns(),
        msg_type: 1,
        priority: 5,
        ttl_ms: 0,
        payload,
    }
}

/// A router of `kind` on `slots`, without compression.
fn start(kind: RouterKind, slots: Vec<Slot>) -> AnyRouter {
    let mut spec = RouterSpec::local(slots);
    spec.shard.compression = Compression::None;
    kind.start(spec).unwrap()
}

fn pin(core: usize) {
    core_affinity::set_for_current(core_affinity::CoreId { id: core });
}

/// Routed msgs/s with `pairs` sender → receiver pairs, driver threads pinned to `driver_core`.
fn throughput(kind: RouterKind, router_slots: Vec<Slot>, driver_core: usize, pairs: u32) -> f64 {
    let router = start(kind, router_slots);
    let addr = router.local_addr();
    let payload = [b'x'; 64];
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for p in 0..pairs {
        let (s, r) = (2 * p + 1, 2 * p + 2);
        let mut rc = Client::connect(addr).unwrap();
        assert!(matches!(rc.register(r, 0, &[]).unwrap(), a2a_bench::wire::Control::Ack(_)));
        let mut sc = Client::connect(addr).unwrap();
        assert!(matches!(sc.register(s, 0, &[]).unwrap(), a2a_bench::wire::Control::Ack(_)));
        senders.push((s, r, sc));
        receivers.push(rc);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for (s, r, sc) in senders {
        let stop = stop.clone();
        let mut pool = BufferPool::default();
        let msgs: Vec<Message<'_>> =
            (0..64).map(|i| Message::Data(envelope(s, r, &payload, DataKind::Direct, i))).collect();
        let frame = encode_frame(&msgs, Compression::None, &mut pool);
        let mut stream = raw_stream(sc);
        threads.push(std::thread::spawn(move || {
            pin(driver_core);
            // 16 frames per write: one syscall for 1,024 messages.
            let chunk: Vec<u8> = frame.iter().copied().cycle().take(frame.len() * 16).collect();
            while !stop.load(Ordering::Relaxed) {
                if stream.write_all(&chunk).is_err() {
                    break;
                }
            }
        }));
    }
    for rc in receivers {
        let stop = stop.clone();
        let received = received.clone();
        let mut stream = raw_stream(rc);
        stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        threads.push(std::thread::spawn(move || {
            pin(driver_core);
            count_messages(&mut stream, &stop, &received);
        }));
    }
    let warm = Duration::from_secs_f64(0.5);
    std::thread::sleep(warm);
    let (t0, n0) = (Instant::now(), received.load(Ordering::Relaxed));
    std::thread::sleep(Duration::from_secs_f64(secs()));
    let (t1, n1) = (Instant::now(), received.load(Ordering::Relaxed));
    stop.store(true, Ordering::Relaxed);
    let _ = router.stop();
    for t in threads {
        let _ = t.join();
    }
    (n1 - n0) as f64 / (t1 - t0).as_secs_f64()
}

fn raw_stream(c: Client) -> TcpStream {
    c.into_stream().expect("a TCP client")
}

/// Reads frames and adds their message counts to `received` (headers only, bodies skipped).
fn count_messages(stream: &mut TcpStream, stop: &AtomicBool, received: &AtomicU64) {
    let mut buf = vec![0u8; 1 << 20];
    let (mut start, mut end) = (0usize, 0usize);
    while !stop.load(Ordering::Relaxed) {
        if end == buf.len() {
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
        match stream.read(&mut buf[end..]) {
            Ok(0) => return,
            Ok(n) => end += n,
            Err(_) => continue,
        }
        let mut counted = 0;
        while let Ok(Some(h)) = FrameHeader::parse(&buf[start..end], &Limits::DEFAULT) {
            if end - start < h.frame_len() {
                break;
            }
            counted += u64::from(h.count);
            start += h.frame_len();
        }
        received.fetch_add(counted, Ordering::Relaxed);
        if start == end {
            start = 0;
            end = 0;
        }
    }
    let _ = HEADER_LEN;
}

/// Sequential request/reply round trips: (p50, p99) in µs.
fn round_trip(kind: RouterKind, router_slots: Vec<Slot>, driver_core: usize) -> (f64, f64) {
    let router = start(kind, router_slots);
    let addr: SocketAddr = router.local_addr();
    let mut requester = Client::connect(addr).unwrap();
    requester.register(1, 0, &[]).unwrap();
    let mut responder = Client::connect(addr).unwrap();
    responder.register(2, 0, &[]).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let echo = std::thread::spawn(move || {
        pin(driver_core);
        responder.set_timeout(Duration::from_millis(200)).unwrap();
        while !stop2.load(Ordering::Relaxed) {
            if let Ok(Received::Data(req)) = responder.recv() {
                let mut reply = envelope(2, 1, &req.payload, DataKind::Reply, req.message_id);
                reply.correlation_id = req.message_id;
                let _ = responder.send(&[Message::Data(reply)]);
            }
        }
    });
    pin(driver_core);
    let payload = [b'x'; 64];
    let mut hist = Histogram::<u64>::new(3).unwrap();
    let deadline = Instant::now() + Duration::from_secs_f64(secs());
    let mut id = 0;
    while Instant::now() < deadline {
        id += 1;
        let t = Instant::now();
        requester.send(&[Message::Data(envelope(1, 2, &payload, DataKind::Request, id))]).unwrap();
        match requester.recv().unwrap() {
            Received::Data(r) => assert_eq!(r.correlation_id, id),
            other => panic!("unexpected {other:?}"),
        }
        if id > 200 {
            hist.record(t.elapsed().as_nanos() as u64).unwrap();
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = echo.join();
    let _ = router.stop();
    (hist.value_at_quantile(0.5) as f64 / 1e3, hist.value_at_quantile(0.99) as f64 / 1e3)
}

fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` probes with --list
    }
    let m = Machine::detect();
    let core = |i: usize| m.cores[i % m.cores.len()];
    let last = m.cores.len() - 1;
    println!(
        "router bench: {} cores, {} s per run, median of {RUNS} (min–max), routers alternating",
        m.cores.len(),
        secs()
    );
    let only = std::env::var("A2A_BENCH_ONLY").ok();
    for (label, slots, pairs) in [
        ("1 router core (0), driver on core 1, 1 pair", vec![core(0)], 1),
        ("1 router core (0), driver on core 1, 4 pairs", vec![core(0)], 4),
        ("2 router cores (0,1), driver on core 1, 4 pairs", vec![core(0), core(1)], 4),
    ] {
        if only.as_deref().is_some_and(|o| !label.contains(o)) {
            continue;
        }
        let mut runs: Vec<Vec<f64>> = vec![Vec::new(); RouterKind::ALL.len()];
        for _ in 0..RUNS {
            for (k, &kind) in RouterKind::ALL.iter().enumerate() {
                runs[k].push(throughput(kind, slots.clone(), last, pairs));
            }
        }
        println!("  routed msgs/s, 64 B, {label}:");
        let medians: Vec<f64> = runs.iter().map(|r| median(r.clone()).0).collect();
        for (k, kind) in RouterKind::ALL.iter().enumerate() {
            let (med, lo, hi) = median(runs[k].clone());
            println!(
                "    {kind:<15} {:.2} M ({:.2}–{:.2}); glommio / this = {:.2}",
                med / 1e6,
                lo / 1e6,
                hi / 1e6,
                medians[0] / med
            );
        }
    }
    if only.is_none() {
        for kind in RouterKind::ALL {
            let runs: Vec<(f64, f64)> =
                (0..RUNS).map(|_| round_trip(kind, vec![core(0)], last)).collect();
            let (p50, p50_lo, p50_hi) = median(runs.iter().map(|r| r.0).collect());
            let (p99, p99_lo, p99_hi) = median(runs.iter().map(|r| r.1).collect());
            println!(
                "  request/reply round trip, 1 router core, {kind}: p50 {p50:.1} µs ({p50_lo:.1}–{p50_hi:.1}), p99 {p99:.1} µs ({p99_lo:.1}–{p99_hi:.1})"
            );
        }
    }
}
