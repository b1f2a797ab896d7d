//! Wire codec throughput: encode a batch into a frame, then decode every message back.
//!
//! Reported per message (criterion "elements"). Payloads are JSON-like text so that LZ4 has
//! something to find; `none` never compresses, `lz4` always does. Run with `make bench-micro`.

use std::hint::black_box;
use std::time::Duration;

use a2a_bench::wire::frame::encode_frame;
use a2a_bench::wire::{
    decode_frame, AgentId, BufferPool, Compression, DataKind, Envelope, FrameBuf, Limits, Message,
    Probe,
};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn text_payload(len: usize) -> Vec<u8> {
    let words = br#"{"task":"analyze","agent":"worker-17","score":0.93,"tags":["nlp","batch"]},"#;
    words.iter().copied().cycle().take(len).collect()
}

fn envelope(payload: &[u8], i: u64) -> Envelope<'_> {
    Envelope {
        kind: DataKind::Request,
        sender: AgentId(i as u32 % 1000),
        to: 1000 + (i as u32 % 1000),
        message_id: 1_000_000 + i,
        correlation_id: 0,
        timestamp_ns: 81_234_567_890_123 + i * 977,
        msg_type: 3,
        priority: 5,
        ttl_ms: 0,
        payload,
    }
}

fn encode_decode(c: &mut Criterion) {
    let limits = Limits::DEFAULT;
    let mut group = c.benchmark_group("wire/encode+decode");
    group.warm_up_time(Duration::from_millis(700)).measurement_time(Duration::from_secs(2));
    for &payload_len in &[64usize, 1024, 8192] {
        let payload = text_payload(payload_len);
        for &batch in &[1usize, 64, 1024] {
            for compression in [Compression::None, Compression::Lz4] {
                let name = format!("{payload_len}B/{compression:?}").to_lowercase();
                group.throughput(Throughput::Elements(batch as u64));
                group.bench_with_input(BenchmarkId::new(name, batch), &batch, |b, &batch| {
                    let mut pool = BufferPool::default();
                    let mut scratch = Vec::new();
                    b.iter(|| {
                        let cap = batch * Envelope::encoded_len_max(payload_len);
                        let mut frame = FrameBuf::new(pool.get(cap));
                        for i in 0..batch as u64 {
                            frame.push_envelope(&envelope(&payload, i));
                        }
                        let bytes = frame.finish(compression, &mut pool);
                        let (_, batch_iter) =
                            decode_frame(&bytes, &limits, &mut scratch).unwrap().unwrap();
                        let mut sum = 0u64;
                        for item in batch_iter {
                            if let (Message::Data(env), _) = item.unwrap() {
                                sum += u64::from(env.to);
                            }
                        }
                        pool.put(bytes);
                        black_box(sum)
                    });
                });
            }
        }
    }
    group.finish();
}

fn encode_only(c: &mut Criterion) {
    // The agents' half: encode a 64-message batch of 64 B payloads into a frame buffer, as
    // the generator does for every message it sends.
    let payload = text_payload(64);
    let mut group = c.benchmark_group("wire/encode");
    group.warm_up_time(Duration::from_millis(700)).measurement_time(Duration::from_secs(2));
    group.throughput(Throughput::Elements(64));
    group.bench_function("64B/64", |b| {
        let mut out = Vec::with_capacity(64 * Envelope::encoded_len_max(64));
        b.iter(|| {
            out.clear();
            for i in 0..64u64 {
                envelope(&payload, i).encode(&mut out);
            }
            black_box(&out);
        });
    });
    group.finish();
}

fn decode_only(c: &mut Criterion) {
    // The router's half: decode a 64-message batch of 64 B payloads and copy each message's raw
    // bytes into an outbound frame, which is all it does per message before routing.
    let limits = Limits::DEFAULT;
    let payload = text_payload(64);
    let mut pool = BufferPool::default();
    let msgs: Vec<Message<'_>> = (0..64).map(|i| Message::Data(envelope(&payload, i))).collect();
    let bytes = encode_frame(&msgs, Compression::None, &mut pool);
    let mut group = c.benchmark_group("wire/decode+forward");
    group.warm_up_time(Duration::from_millis(700)).measurement_time(Duration::from_secs(2));
    group.throughput(Throughput::Elements(64));
    group.bench_function("64B/64", |b| {
        let mut scratch = Vec::new();
        b.iter(|| {
            // As the routers read a batch: the usual data message first, then anything else.
            let (_, mut batch) = decode_frame(&bytes, &limits, &mut scratch).unwrap().unwrap();
            let mut out = FrameBuf::new(pool.get(8192));
            loop {
                if let Some((_, raw)) = batch.next_usual() {
                    out.push_raw(raw);
                    continue;
                }
                match batch.next_message().unwrap() {
                    Some((_, raw)) => out.push_raw(raw),
                    None => break,
                }
            }
            pool.put(black_box(out.into_inner()));
        });
    });
    group.bench_function("64B/64 decode only, as an iterator", |b| {
        let mut scratch = Vec::new();
        b.iter(|| {
            let (_, batch) = decode_frame(&bytes, &limits, &mut scratch).unwrap().unwrap();
            for item in batch {
                black_box(item.unwrap());
            }
        });
    });
    group.bench_function("64B/64 decode only, usual first", |b| {
        let mut scratch = Vec::new();
        b.iter(|| {
            let (_, mut batch) = decode_frame(&bytes, &limits, &mut scratch).unwrap().unwrap();
            loop {
                if let Some(usual) = batch.next_usual() {
                    black_box(usual);
                    continue;
                }
                match batch.next_message() {
                    Ok(Some(item)) => {
                        black_box(item);
                    }
                    _ => break,
                }
            }
        });
    });
    group.finish();
}

/// The same nine fields and payload through rmp-serde, as a serde-derived struct: what the
/// router would pay per message if it decoded and re-encoded instead of forwarding raw bytes.
#[derive(serde::Serialize, serde::Deserialize)]
struct SerdeEnvelope<'a> {
    sender: u32,
    to: u32,
    message_id: u64,
    correlation_id: u64,
    timestamp_ns: u64,
    msg_type: u32,
    priority: u8,
    ttl_ms: u32,
    #[serde(borrow, with = "serde_bytes")]
    payload: &'a [u8],
}

fn serde_reencode(c: &mut Criterion) {
    let payload = text_payload(64);
    let mut body = Vec::new();
    for i in 0..64u64 {
        let e = envelope(&payload, i);
        let s = SerdeEnvelope {
            sender: e.sender.0,
            to: e.to,
            message_id: e.message_id,
            correlation_id: e.correlation_id,
            timestamp_ns: e.timestamp_ns,
            msg_type: e.msg_type,
            priority: e.priority,
            ttl_ms: e.ttl_ms,
            payload: e.payload,
        };
        rmp_serde::encode::write(&mut body, &s).unwrap();
    }
    let mut group = c.benchmark_group("wire/serde-decode+reencode");
    group.warm_up_time(Duration::from_millis(700)).measurement_time(Duration::from_secs(2));
    group.throughput(Throughput::Elements(64));
    group.bench_function("64B/64", |b| {
        let mut out = Vec::with_capacity(16 << 10);
        b.iter(|| {
            out.clear();
            let mut de = rmp_serde::Deserializer::from_read_ref(&body[..]);
            for _ in 0..64 {
                let e: SerdeEnvelope<'_> = serde::Deserialize::deserialize(&mut de).unwrap();
                rmp_serde::encode::write(&mut out, &e).unwrap();
            }
            black_box(&out);
        });
    });
    group.finish();
}

fn auto_on_noise(c: &mut Criterion) {
    // `--compression auto` on a stream whose payloads LZ4 cannot shrink (64 messages of 64 B
    // of noise a frame): every frame tried and sent raw, against the stream's probe, which
    // stops trying (`Probe`). Per message.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let noise: Vec<u8> = (0..64 * 64)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let mut group = c.benchmark_group("wire/finish auto, incompressible");
    group.warm_up_time(Duration::from_millis(700)).measurement_time(Duration::from_secs(2));
    group.throughput(Throughput::Elements(64));
    for (name, probed) in [("every frame tried", false), ("one probe per stream", true)] {
        let (mut pool, mut probe) = (BufferPool::default(), Probe::default());
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut frame = FrameBuf::new(pool.get(8192));
                for (i, chunk) in noise.chunks(64).enumerate() {
                    frame.push_envelope(&envelope(chunk, i as u64));
                }
                let out = match probed {
                    true => frame.finish_probed(Compression::Auto, &mut probe, &mut pool),
                    false => frame.finish(Compression::Auto, &mut pool),
                };
                pool.put(black_box(out));
            });
        });
    }
    group.finish();
}

criterion_group!(benches, encode_decode, encode_only, decode_only, serde_reencode, auto_on_noise);
criterion_main!(benches);
