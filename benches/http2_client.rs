//! The HTTP/2 client's work per request with many streams in flight on one connection, as
//! when hundreds of clients share a few connections (`a2a-bench http --http2 --agents 1024
//! --connections 4`): each step sends one request, takes the output, and feeds the server's
//! answer to the oldest stream (a `200` head that ends it), then drives the connection. The
//! server is scripted (its frames written here), so only the client's work is timed.
//!
//! Reported per request (criterion "elements"). Run with `make bench-micro`.

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::Duration;

use a2a_bench::loadgen::http::h2c::{Done, H2Conn, Heads};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const GET: &[u8] = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";

/// A frame's 9-byte head and its payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A connection past its handshake with `held` streams in flight (their ids oldest first),
/// the server's SETTINGS allowing them and one more.
fn open(held: usize) -> (H2Conn<u32>, Heads, VecDeque<u32>) {
    let mut c = H2Conn::default();
    let mut heads = Heads::default();
    let max = (held as u32 + 1).to_be_bytes();
    let settings = frame(4, 0, 0, &[0, 3, max[0], max[1], max[2], max[3]]);
    assert!(c.ready()); // the handshake's end
    c.feed(&[settings, frame(4, 1, 0, &[])].concat());
    let mut done = Vec::new();
    c.drive(0, &mut done).unwrap();
    let mut ids = VecDeque::new();
    for w in 0..held as u32 {
        assert!(c.ready() && c.send(w, GET, ("x", &mut heads)).is_ok());
        ids.push_back(2 * w + 1);
    }
    c.output(&mut Vec::new(), |_| {});
    (c, heads, ids)
}

fn many_streams(c: &mut Criterion) {
    let mut group = c.benchmark_group("http2/request");
    group.warm_up_time(Duration::from_millis(700)).measurement_time(Duration::from_secs(2));
    group.throughput(Throughput::Elements(1));
    for held in [0usize, 15, 63, 255] {
        group.bench_with_input(BenchmarkId::new("in_flight", held + 1), &held, |b, &held| {
            let (mut conn, mut heads, mut ids) = open(held);
            let (mut out, mut done) = (Vec::new(), Vec::<Done<u32>>::new());
            let mut next = held as u32;
            b.iter(|| {
                assert!(conn.ready() && conn.send(next, GET, ("x", &mut heads)).is_ok());
                ids.push_back(2 * next + 1);
                next += 1;
                out.clear();
                conn.output(&mut out, |_| {});
                let oldest = ids.pop_front().unwrap();
                conn.feed(&frame(1, 5, oldest, &[0x88])); // 200, end of stream
                conn.drive(0, &mut done).unwrap();
                assert_eq!(done.len(), 1);
                black_box(done.pop());
            });
        });
    }
    group.finish();
}

criterion_group!(benches, many_streams);
criterion_main!(benches);
