//! Wire protocol: round trips, the prefix rule, and a specific error for each kind of bad frame.

use crate::support::noise;
use a2a_bench::wire::control::*;
use a2a_bench::wire::frame::{encode_frame, encode_frame_probed};
use a2a_bench::wire::{
    decode_frame, AgentId, BarrierId, BufferPool, Compression, DataKind, DecodeError, Envelope,
    FrameHeader, Limits, LockId, Message, Probe, TopicId, HEADER_LEN,
};
use proptest::collection::vec;
use proptest::prelude::*;

/// An owned data message, so strategies can produce it; borrowed into an [`Envelope`] to encode.
#[derive(Debug, Clone)]
struct OwnedEnvelope {
    kind: DataKind,
    fields: (u32, u32, u64, u64, u64, u32, u8, u32),
    payload: Vec<u8>,
}

impl OwnedEnvelope {
    fn as_envelope(&self) -> Envelope<'_> {
        let (sender, to, message_id, correlation_id, timestamp_ns, msg_type, priority, ttl_ms) =
            self.fields;
        Envelope {
            kind: self.kind,
            sender: AgentId(sender),
            to,
            message_id,
            correlation_id,
            timestamp_ns,
            msg_type,
            priority,
            ttl_ms,
            payload: &self.payload,
        }
    }
}

#[derive(Debug, Clone)]
enum OwnedMessage {
    Data(OwnedEnvelope),
    Control(Control),
}

impl OwnedMessage {
    fn as_message(&self) -> Message<'_> {
        match self {
            OwnedMessage::Data(e) => Message::Data(e.as_envelope()),
            OwnedMessage::Control(c) => Message::Control(c.clone()),
        }
    }
}

fn arb_envelope() -> impl Strategy<Value = OwnedEnvelope> {
    (
        prop::sample::select(DataKind::ALL.to_vec()),
        (any::<u32>(), any::<u32>(), any::<u64>(), any::<u64>(), any::<u64>(), any::<u32>()),
        (0u8..=10, any::<u32>()),
        prop_oneof![vec(any::<u8>(), 0..64), vec(any::<u8>(), 0..3000)],
    )
        .prop_map(|(kind, (s, t, m, c, ts, ty), (p, ttl), payload)| OwnedEnvelope {
            kind,
            fields: (s, t, m, c, ts, ty, p, ttl),
            payload,
        })
}

fn arb_text() -> impl Strategy<Value = String> {
    "[a-z0-9_é-]{0,12}"
}

fn agent() -> impl Strategy<Value = AgentId> {
    any::<u32>().prop_map(AgentId)
}

fn arb_control() -> impl Strategy<Value = Control> {
    let id = any::<u64>();
    prop_oneof![
        (
            id,
            agent(),
            any::<u32>(),
            arb_text(),
            vec(arb_text(), 0..4),
            vec(any::<u32>(), 0..4),
            prop::option::of(arb_text())
        )
            .prop_map(
                |(request_id, agent_id, agent_type, name, capabilities, topics, token)| {
                    Control::Register(Register {
                        request_id,
                        agent_id,
                        agent_type,
                        name,
                        capabilities,
                        topics: topics.into_iter().map(TopicId).collect(),
                        token,
                    })
                }
            ),
        (id, agent()).prop_map(|(request_id, agent_id)| Control::Unregister(Unregister {
            request_id,
            agent_id
        })),
        (id, agent()).prop_map(|(request_id, agent_id)| Control::Heartbeat(Heartbeat {
            request_id,
            agent_id
        })),
        (id, any::<u32>(), prop::option::of(arb_text()), any::<u32>(), any::<u32>(), any::<bool>())
            .prop_map(|(request_id, agent_type, capability, offset, limit, names_only)| {
                Control::Discover(Discover {
                    request_id,
                    agent_type,
                    capability,
                    offset,
                    limit,
                    names_only,
                })
            }),
        (id, agent(), any::<u32>()).prop_map(|(request_id, agent_id, t)| {
            Control::Subscribe(Subscribe { request_id, agent_id, topic: TopicId(t) })
        }),
        (id, agent(), any::<u32>()).prop_map(|(request_id, agent_id, t)| {
            Control::Unsubscribe(Unsubscribe { request_id, agent_id, topic: TopicId(t) })
        }),
        (id, agent(), any::<u64>(), any::<u32>()).prop_map(
            |(request_id, agent_id, l, lease_ms)| {
                Control::LockRequest(LockRequest {
                    request_id,
                    agent_id,
                    lock_id: LockId(l),
                    lease_ms,
                })
            }
        ),
        (id, agent(), any::<u64>()).prop_map(|(request_id, agent_id, l)| {
            Control::LockRelease(LockRelease { request_id, agent_id, lock_id: LockId(l) })
        }),
        (id, agent(), any::<u64>(), any::<u32>()).prop_map(
            |(request_id, agent_id, b, expected)| {
                Control::BarrierEnter(BarrierEnter {
                    request_id,
                    agent_id,
                    barrier_id: BarrierId(b),
                    expected,
                })
            }
        ),
        id.prop_map(|request_id| Control::StatsRequest(StatsRequest { request_id })),
        (id, vec(any::<u32>(), 0..8), any::<u32>()).prop_map(|(request_id, cores, lease_ms)| {
            Control::ShareCores(ShareCores { request_id, cores, lease_ms })
        }),
        (id, agent(), any::<u64>()).prop_map(|(request_id, agent_id, b)| {
            Control::BarrierForce(BarrierForce { request_id, agent_id, barrier_id: BarrierId(b) })
        }),
        id.prop_map(|request_id| Control::Ack(Ack { request_id })),
        (any::<u16>(), id, any::<u64>(), agent(), arb_text()).prop_map(
            |(code, request_id, message_id, agent_id, detail)| {
                Control::Error(Error {
                    code,
                    request_id,
                    message_id,
                    agent_id,
                    detail: detail.into(),
                })
            }
        ),
        (
            id,
            any::<u32>(),
            vec(
                (
                    agent(),
                    any::<u32>(),
                    arb_text(),
                    vec(arb_text(), 0..3),
                    any::<bool>(),
                    any::<u16>()
                ),
                0..4
            )
        )
            .prop_map(|(request_id, total, agents)| {
                let agents =
                    agents
                        .into_iter()
                        .map(|(agent_id, agent_type, name, capabilities, online, shard)| {
                            AgentInfo { agent_id, agent_type, name, capabilities, online, shard }
                        })
                        .collect();
                Control::DiscoverReply(DiscoverReply { request_id, total, agents })
            }),
        (id, agent(), any::<u64>(), any::<u32>()).prop_map(
            |(request_id, agent_id, l, lease_ms)| {
                Control::LockGranted(LockGranted {
                    request_id,
                    agent_id,
                    lock_id: LockId(l),
                    lease_ms,
                })
            }
        ),
        (id, agent(), any::<u64>(), any::<u32>()).prop_map(
            |(request_id, agent_id, l, position)| {
                Control::LockQueued(LockQueued {
                    request_id,
                    agent_id,
                    lock_id: LockId(l),
                    position,
                })
            }
        ),
        (id, agent(), any::<u64>(), any::<u32>(), any::<u32>()).prop_map(
            |(request_id, agent_id, b, arrived, expected)| {
                Control::BarrierWait(BarrierWait {
                    request_id,
                    agent_id,
                    barrier_id: BarrierId(b),
                    arrived,
                    expected,
                })
            }
        ),
        (id, agent(), any::<u64>(), any::<u32>()).prop_map(|(request_id, agent_id, b, arrived)| {
            Control::BarrierRelease(BarrierRelease {
                request_id,
                agent_id,
                barrier_id: BarrierId(b),
                arrived,
            })
        }),
        (
            id,
            vec((any::<u16>(), any::<u64>(), vec((any::<u16>(), any::<u64>()), 0..3)), 0..3),
            any::<u64>(),
        )
            .prop_map(|(request_id, shards, heartbeat_timeout_ms)| {
                let shards = shards
                    .into_iter()
                    .map(|(shard, msgs_in, errors)| ShardStats {
                        shard,
                        msgs_in,
                        errors,
                        ..ShardStats::default()
                    })
                    .collect();
                Control::StatsReply(StatsReply { request_id, shards, heartbeat_timeout_ms })
            }),
    ]
}

fn arb_message() -> impl Strategy<Value = OwnedMessage> {
    prop_oneof![
        3 => arb_envelope().prop_map(OwnedMessage::Data),
        1 => arb_control().prop_map(OwnedMessage::Control),
    ]
}

fn arb_compression() -> impl Strategy<Value = Compression> {
    prop::sample::select(vec![Compression::Auto, Compression::Lz4, Compression::None])
}

fn encode(messages: &[OwnedMessage], compression: Compression) -> Vec<u8> {
    let borrowed: Vec<Message<'_>> = messages.iter().map(OwnedMessage::as_message).collect();
    encode_frame(&borrowed, compression, &mut BufferPool::default())
}

/// Decodes the one frame in `bytes` completely, or returns the first error.
fn check_decode(bytes: &[u8], limits: &Limits) -> Result<Option<usize>, DecodeError> {
    let mut scratch = Vec::new();
    match decode_frame(bytes, limits, &mut scratch)? {
        None => Ok(None),
        Some((len, batch)) => {
            let mut n = 0;
            for item in batch {
                item?;
                n += 1;
            }
            assert_eq!(len, bytes.len());
            Ok(Some(n))
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_message_kind_round_trips_in_batches_of_1_to_1000(
        messages in vec(arb_message(), 1..=1000),
        compression in arb_compression(),
    ) {
        // Proves decode(encode(batch)) == batch, raw spans included, under every compression mode.
        let bytes = encode(&messages, compression);
        let mut scratch = Vec::new();
        let (len, batch) = decode_frame(&bytes, &Limits::DEFAULT, &mut scratch).unwrap().unwrap();
        prop_assert_eq!(len, bytes.len());
        let mut n = 0;
        for (item, want) in batch.zip(&messages) {
            let (got, raw) = item.unwrap();
            prop_assert_eq!(&got, &want.as_message());
            let mut again = Vec::new();
            want.as_message().encode(&mut again);
            prop_assert_eq!(raw, &again[..]);
            n += 1;
        }
        prop_assert_eq!(n, messages.len());
    }

    #[test]
    fn every_proper_prefix_decodes_as_need_more(
        messages in vec(arb_message(), 1..20),
        compression in arb_compression(),
    ) {
        // Proves a partial frame is never an error and never a message: "need more" is Ok(None).
        let bytes = encode(&messages, compression);
        for cut in 0..bytes.len() {
            prop_assert_eq!(check_decode(&bytes[..cut], &Limits::DEFAULT), Ok(None), "cut at {}", cut);
        }
        prop_assert_eq!(check_decode(&bytes, &Limits::DEFAULT), Ok(Some(messages.len())));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..512), flip in any::<(usize, u8)>()) {
        // Proves the decoder returns a value (never panics) on garbage and on corrupted frames.
        let _ = check_decode(&bytes, &Limits::DEFAULT);
        let mut framed = encode(&[OwnedMessage::Data(OwnedEnvelope {
            kind: DataKind::Direct, fields: (1, 2, 3, 4, 5, 6, 7, 8), payload: bytes,
        })], Compression::None);
        let at = flip.0 % framed.len();
        framed[at] ^= flip.1 | 1;
        let _ = check_decode(&framed, &Limits::DEFAULT);
    }
}

fn direct(payload: &[u8]) -> OwnedMessage {
    OwnedMessage::Data(OwnedEnvelope {
        kind: DataKind::Direct,
        fields: (1, 2, 3, 4, 5, 6, 5, 0),
        payload: payload.to_vec(),
    })
}

fn set_u32(frame: &mut [u8], at: usize, v: u32) {
    frame[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

#[test]
fn header_errors_are_specific_and_need_no_body() {
    // Proves each bad header field gets its own error, found before any body byte arrives.
    let good = encode(&[direct(b"x")], Compression::None);
    let header_only = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut h = good[..HEADER_LEN].to_vec();
        f(&mut h);
        check_decode(&h, &Limits::DEFAULT)
    };
    assert_eq!(header_only(&|h| h[0] = b'X'), Err(DecodeError::BadMagic(0x5832)));
    assert_eq!(header_only(&|h| h[2] = 2), Err(DecodeError::UnsupportedVersion(2)));
    assert_eq!(header_only(&|h| h[3] = 0x80), Err(DecodeError::ReservedFlags(0x80)));
    assert_eq!(header_only(&|h| set_u32(h, 4, 0)), Err(DecodeError::EmptyBatch));
    assert_eq!(
        header_only(&|h| set_u32(h, 4, 9000)),
        Err(DecodeError::BatchTooLarge { count: 9000, max: 8192 })
    );
    assert_eq!(
        header_only(&|h| {
            set_u32(h, 8, 20 << 20);
            set_u32(h, 12, 20 << 20);
        }),
        Err(DecodeError::FrameTooLarge { bytes: (20 << 20) + 16, max: 10 << 20 })
    );
    assert_eq!(
        header_only(&|h| set_u32(h, 12, 99)),
        Err(DecodeError::LengthMismatch { body: good.len() as u32 - 16, raw: 99 })
    );
    // Wrong magic is refused from its first two bytes.
    assert_eq!(check_decode(b"GE", &Limits::DEFAULT), Err(DecodeError::BadMagic(0x4745)));
}

#[test]
fn configured_limits_are_enforced() {
    // Proves the limits are configuration, not constants: a small limit refuses a normal frame.
    let frame = encode(&[direct(&[7; 600]), direct(b"y")], Compression::None);
    let limits = Limits { frame_bytes_max: 512, batch_messages_max: 1 };
    assert!(matches!(
        check_decode(&frame, &limits),
        Err(DecodeError::FrameTooLarge { max: 512, .. })
    ));
    let limits = Limits { frame_bytes_max: 1 << 20, batch_messages_max: 1 };
    assert_eq!(check_decode(&frame, &limits), Err(DecodeError::BatchTooLarge { count: 2, max: 1 }));
}

#[test]
fn oversized_decompressed_body_is_refused_before_inflating() {
    // Proves a small compressed frame announcing a huge raw size is refused from its header.
    let mut frame = encode(&[direct(&[0; 4000])], Compression::Lz4);
    assert_eq!(frame[3], 1, "frame is compressed");
    set_u32(&mut frame, 12, 64 << 20);
    assert!(matches!(
        check_decode(&frame, &Limits::DEFAULT),
        Err(DecodeError::FrameTooLarge { bytes, .. }) if bytes == (64 << 20) + 16
    ));
}

#[test]
fn truncated_or_corrupt_lz4_is_reported_as_such() {
    // Proves a cut LZ4 block, or one inflating to the wrong size, gives CorruptLz4.
    let frame = encode(&[direct(&[b'a'; 5000])], Compression::Lz4);
    let body_len = frame.len() - HEADER_LEN;
    let mut cut = frame[..frame.len() - 3].to_vec();
    set_u32(&mut cut, 8, body_len as u32 - 3);
    assert_eq!(check_decode(&cut, &Limits::DEFAULT), Err(DecodeError::CorruptLz4));
    let mut wrong_size = frame.clone();
    let raw = u32::from_be_bytes(frame[12..16].try_into().unwrap());
    set_u32(&mut wrong_size, 12, raw + 1);
    assert_eq!(check_decode(&wrong_size, &Limits::DEFAULT), Err(DecodeError::CorruptLz4));
}

#[test]
fn message_level_corruption_names_the_message() {
    // Proves a bad message, a missing message and a trailing byte each give Malformed with the
    // index of the message at fault.
    let good = encode(&[direct(b"a"), direct(b"b")], Compression::None);
    let first_len = {
        let mut one = Vec::new();
        direct(b"a").as_message().encode(&mut one);
        one.len()
    };

    let mut bad_second = good.clone();
    bad_second[HEADER_LEN + first_len] = 0xc1; // a marker msgpack never uses
    assert!(matches!(
        check_decode(&bad_second, &Limits::DEFAULT),
        Err(DecodeError::Malformed { index: 1, .. })
    ));

    let mut short = good.clone();
    set_u32(&mut short, 4, 3);
    assert!(matches!(
        check_decode(&short, &Limits::DEFAULT),
        Err(DecodeError::Malformed { index: 2, .. })
    ));

    let mut trailing = good.clone();
    trailing.push(0);
    let body = (trailing.len() - HEADER_LEN) as u32;
    set_u32(&mut trailing, 8, body);
    set_u32(&mut trailing, 12, body);
    assert_eq!(
        check_decode(&trailing, &Limits::DEFAULT),
        Err(DecodeError::Malformed { index: 2, what: "bytes after the last message" })
    );

    let mut unknown_kind = good;
    unknown_kind[HEADER_LEN + 1] = 99;
    assert_eq!(
        check_decode(&unknown_kind, &Limits::DEFAULT),
        Err(DecodeError::Malformed { index: 0, what: "unknown message kind" })
    );
}

#[test]
fn auto_compression_follows_the_seed_rule() {
    // Proves Auto leaves small or incompressible bodies raw and compresses large repetitive ones.
    let small = encode(&[direct(&[b'a'; 500])], Compression::Auto);
    assert_eq!(small[3], 0, "≤ 1 KiB stays raw");
    let repetitive = encode(&[direct(&[b'a'; 5000])], Compression::Auto);
    assert_eq!(repetitive[3], 1, "compressible and > 1 KiB is compressed");
    let noise = noise(5000);
    let random = encode(&[direct(&noise)], Compression::Auto);
    assert_eq!(random[3], 0, "incompressible stays raw");
    let forced = encode(&[direct(&noise)], Compression::Lz4);
    assert_eq!(forced[3], 1, "Lz4 mode compresses even when it does not pay");
    let header = FrameHeader::parse(&forced, &Limits::DEFAULT).unwrap().unwrap();
    assert!(header.body_len > header.raw_len, "and the body grew");
}

#[test]
fn auto_compression_stops_trying_on_an_incompressible_stream_and_tries_again() {
    // Proves Auto's probe: on a stream of incompressible frames the LZ4 attempts thin out
    // (after the n-th miss the next 2^n frames go without one, at most 64), every frame still
    // raw and whole; once the stream turns compressible a frame is compressed again within 65
    // frames, and every one after it; None and Lz4 ignore the probe.
    let noise = noise(5000);
    let (mut probe, mut pool) = (Probe::default(), BufferPool::default());
    let mut scratch = Vec::new();
    for _ in 0..200 {
        let frame = encode_frame_probed(
            &[direct(&noise).as_message()],
            Compression::Auto,
            &mut probe,
            &mut pool,
        );
        assert_eq!(frame[3], 0, "incompressible stays raw");
        let (len, mut batch) =
            decode_frame(&frame, &Limits::DEFAULT, &mut scratch).unwrap().unwrap();
        assert_eq!(len, frame.len());
        match batch.next_message().unwrap() {
            Some((Message::Data(env), _)) => assert_eq!(env.payload, &noise[..]),
            other => panic!("not the message sent: {other:?}"),
        }
    }
    // Attempts at frames 1, 4, 9, 18, 35, 68, 133 and 198 (skips of 2, 4 … 64, then 64).
    assert_eq!((probe.tried, probe.skipped), (8, 192));
    let plain = [b'a'; 5000];
    let mut compressed = Vec::new();
    for _ in 0..100 {
        let frame = encode_frame_probed(
            &[direct(&plain).as_message()],
            Compression::Auto,
            &mut probe,
            &mut pool,
        );
        compressed.push(frame[3] == 1);
    }
    let first = compressed.iter().position(|&c| c).expect("compressed again");
    assert!(first <= 64, "within 65 frames of turning compressible, not {first}");
    assert!(compressed[first..].iter().all(|&c| c), "and every frame after it");
    let mut idle = Probe::default();
    for mode in [Compression::None, Compression::Lz4] {
        let frame = encode_frame_probed(&[direct(&noise).as_message()], mode, &mut idle, &mut pool);
        assert_eq!(frame[3], u8::from(mode == Compression::Lz4), "{mode} as before");
    }
    assert_eq!(idle, Probe::default(), "None and Lz4 leave the probe alone");
}

/// The frame shown in docs/PROTOCOL.md: agent 7 registers, then sends agent 9 a request.
fn documented_frame() -> Vec<u8> {
    let register = Control::Register(Register {
        request_id: 1,
        agent_id: AgentId(7),
        agent_type: 2,
        name: "planner".into(),
        capabilities: vec!["plan".into()],
        topics: vec![TopicId(5)],
        token: None,
    });
    let request = Envelope {
        kind: DataKind::Request,
        sender: AgentId(7),
        to: 9,
        message_id: 1000,
        correlation_id: 0,
        timestamp_ns: 5_000_000_000,
        msg_type: 3,
        priority: 5,
        ttl_ms: 0,
        payload: b"hi",
    };
    encode_frame(
        &[Message::Control(register), Message::Data(request)],
        Compression::Auto,
        &mut BufferPool::default(),
    )
}

/// Renders bytes as `xxd` does: offset, 16 bytes in pairs, printable ASCII.
fn hex_dump(bytes: &[u8]) -> String {
    let mut out = String::new();
    for (i, line) in bytes.chunks(16).enumerate() {
        let hex: Vec<String> =
            line.chunks(2).map(|p| p.iter().map(|b| format!("{b:02x}")).collect()).collect();
        let ascii: String =
            line.iter().map(|&b| if (0x20..0x7f).contains(&b) { b as char } else { '.' }).collect();
        out.push_str(&format!("{:08x}: {:<40} {}\n", i * 16, hex.join(" "), ascii));
    }
    out
}

#[test]
fn protocol_doc_shows_a_real_frame() {
    // Proves the hex dump in docs/PROTOCOL.md is exactly what the encoder produces today.
    let frame = documented_frame();
    let dump = hex_dump(&frame);
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/PROTOCOL.md"))
        .expect("docs/PROTOCOL.md exists");
    assert!(doc.contains(&dump), "docs/PROTOCOL.md must contain this dump:\n{dump}");
    let mut scratch = Vec::new();
    let (_, batch) = decode_frame(&frame, &Limits::DEFAULT, &mut scratch).unwrap().unwrap();
    assert_eq!(batch.count(), 2);
}

#[test]
fn protocol_doc_lists_every_kind_and_error_code() {
    // A kind or error code added to `wire` without its row in docs/PROTOCOL.md fails here.
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/PROTOCOL.md"))
        .expect("docs/PROTOCOL.md exists");
    let row = |code: u64, name: &str| format!("| {code} | {name} |");
    for kind in DataKind::ALL {
        let r = row(u64::from(kind as u8), kind.name());
        assert!(doc.contains(&r), "docs/PROTOCOL.md lacks the kind row `{r}`");
    }
    for &(code, name, _) in Control::KINDS {
        let r = row(u64::from(code), name);
        assert!(doc.contains(&r), "docs/PROTOCOL.md lacks the kind row `{r}`");
    }
    for e in ErrorCode::ALL {
        let r = row(u64::from(e.code()), e.name());
        assert!(doc.contains(&r), "docs/PROTOCOL.md lacks the error row `{r}`");
    }
}

#[test]
fn home_keys_split_agents_into_contiguous_shards() {
    // Proves the `home` key spreads a run's connections evenly and in order: with 8 connections
    // of a 64-agent run, a 2-shard router takes the first 4 on shard 0 and the rest on shard 1,
    // a 4-shard router two each; the frame reads back, and anything else reads as no hint.
    use a2a_bench::wire::frame::{home_frame, read_home};
    use a2a_bench::wire::Home;
    let homes: Vec<Home> = (0..8).map(|c| Home { key: Home::key_for(c * 8, 64) }).collect();
    let on = |n| homes.iter().map(|h| h.shard(n)).collect::<Vec<_>>();
    assert_eq!(on(1), vec![0; 8]);
    assert_eq!(on(2), vec![0, 0, 0, 0, 1, 1, 1, 1]);
    assert_eq!(on(4), vec![0, 0, 1, 1, 2, 2, 3, 3]);
    assert_eq!(Home { key: u32::MAX }.shard(64), 63);
    assert_eq!(Home::key_for(5, 0), u32::MAX, "no agents: the last key, never a panic");
    let frame = home_frame(homes[5]);
    assert_eq!(read_home(&frame), Some(homes[5]));
    let mut two = frame.clone();
    two.extend_from_slice(b"more bytes behind it");
    assert_eq!(read_home(&two), Some(homes[5]), "what follows the frame is the shard's");
    assert_eq!(read_home(&frame[..frame.len() - 1]), None, "part of a frame");
    assert_eq!(read_home(b"GET / HTTP/1.1\r\n"), None);
    let register = encode_frame(
        &[Message::Control(Control::Heartbeat(Heartbeat { request_id: 1, agent_id: AgentId(1) }))],
        Compression::None,
        &mut BufferPool::default(),
    );
    assert_eq!(read_home(&register), None, "another first message");
}
