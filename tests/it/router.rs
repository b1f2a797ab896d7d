//! Routers end to end over real sockets on 127.0.0.1. Every check takes the router kind, so the
//! same suite runs against each router (see the `suite!` invocations at the bottom).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use crate::support::*;
use a2a_bench::client::{Client, Received};
use a2a_bench::routers::RouterKind;
use a2a_bench::transport::Transport;
use a2a_bench::wire::control::*;
use a2a_bench::wire::{
    AgentId, BarrierId, Control, DataKind, ErrorCode, LockId, Message, TopicId, HEADER_LEN,
};

fn direct_request_and_reply(setup: Setup) {
    // Proves direct, request and reply each reach an agent on the other shard, byte for byte,
    // and a reply carries the request's id back as its correlation id.
    let r = start(setup, 2, |_| {});
    let mut a = agent(&r, 1, 0, &[]);
    let mut b = agent(&r, 2, 0, &[]);
    if setup.sharded() {
        assert_eq!(r.stats().iter().map(|s| s.connections).collect::<Vec<_>>(), vec![1, 1]);
    }
    send(&mut a, data(DataKind::Direct, 1, 2, 77, b"hello"));
    let got = recv_data(&mut b);
    assert_eq!(
        (got.kind, got.sender.0, got.message_id, &got.payload[..]),
        (DataKind::Direct, 1, 77, &b"hello"[..])
    );

    send(&mut a, data(DataKind::Request, 1, 2, 78, b"question"));
    let req = recv_data(&mut b);
    assert_eq!((req.kind, req.message_id), (DataKind::Request, 78));
    let mut reply = data(DataKind::Reply, 2, 1, 500, b"answer");
    reply.correlation_id = req.message_id;
    send(&mut b, reply);
    let got = recv_data(&mut a);
    assert_eq!(
        (got.kind, got.sender.0, got.correlation_id, &got.payload[..]),
        (DataKind::Reply, 2, 78, &b"answer"[..])
    );
    r.stop();
}

fn cross_shard_round_trips_wait_for_no_timer(setup: Setup) {
    // Proves a shard hears its peers at once even while its ring dozes (the doorbell): a
    // ping-pong between agents on two shards has most of its round trips below the 1 ms a
    // dozing shard gives glommio's loop (without the doorbell: median 1.1 ms; with it:
    // ≈ 0.17 ms, and 0.67 ms on a machine whose cores hand work over 2.5× slower, under the
    // parallel suite). The first quartile is judged: without the doorbell it waits on the
    // timer too, and it leaves a slow machine room. A machine busy with other work (several
    // suites at once on two cores: first quartiles of 0.84–0.95 ms were seen) slows every
    // hand-over to a shard's thread, so the round trips between two agents on one shard, which
    // need no doorbell, are taken in turn with them, and the bound is 800 µs or three times
    // their first quartile, whichever is more; and it gets three tries.
    if !setup.sharded() {
        return;
    }
    let r = start(setup, 2, |_| {});
    let mut a = agent(&r, 1, 0, &[]);
    let mut b = agent(&r, 2, 0, &[]);
    assert_eq!(r.stats().iter().map(|s| s.connections).collect::<Vec<_>>(), vec![1, 1]);
    let mut c = agent(&r, 3, 0, &[]);
    assert_eq!(r.stats().iter().map(|s| s.connections).collect::<Vec<_>>(), vec![2, 1]);
    let mut round_trip = |other: &mut Client, to: u32, i: u64| {
        let t = Instant::now();
        send(&mut a, data(DataKind::Direct, 1, to, i, b"ping"));
        assert_eq!(recv_data(other).message_id, i);
        send(other, data(DataKind::Direct, to, 1, i, b"pong"));
        assert_eq!(recv_data(&mut a).message_id, i);
        t.elapsed()
    };
    // Up to three tries: a missing doorbell fails each, a burst of other work seldom all.
    let mut tries = Vec::new();
    for attempt in 0..3u64 {
        let (mut cross, mut same) = (Vec::new(), Vec::new());
        for i in 0..600u64 {
            let id = attempt * 1000 + i;
            let (x, y) = (round_trip(&mut b, 2, id), round_trip(&mut c, 3, id));
            if i >= 100 {
                cross.push(x);
                same.push(y);
            }
        }
        cross.sort();
        same.sort();
        let (q1, median, same_q1) =
            (cross[cross.len() / 4], cross[cross.len() / 2], same[same.len() / 4]);
        let bound = Duration::from_micros(800).max(3 * same_q1);
        eprintln!(
            "cross-shard round trips: first quartile {q1:?}, median {median:?}; bound {bound:?} \
             (one shard's round trips: first quartile {same_q1:?})"
        );
        tries.push((q1, median, same_q1, bound));
        if q1 < bound {
            break;
        }
    }
    assert!(
        tries.iter().any(|&(q1, _, _, bound)| q1 < bound),
        "cross-shard round trips (first quartile, median; one shard's first quartile; bound), \
         each try: {tries:?}"
    );
    r.stop();
}

fn connections_are_placed_by_their_home_frame(setup: Setup) {
    // Proves a sharded router places a connection that opens with a `home` frame on the shard
    // its key names (key × shards / 2³²), whatever the load, and that the frame is otherwise
    // ignored: agents registered behind it work. Over WebSocket the frame arrives inside the
    // upgraded stream, after placement: ignored too. A router without shards ignores it.
    use a2a_bench::wire::{frame::home_frame, Home};
    let r = start(setup, 2, |_| {});
    let keys = [0u32, 1 << 30, 1 << 31, 3 << 30, 0];
    let mut clients = Vec::new();
    for (i, key) in keys.into_iter().enumerate() {
        let mut c = r.connect();
        c.send_raw(&home_frame(Home { key })).unwrap();
        check_ack(c.register(10 + i as u32, 0, &[]).expect("register answered"));
        clients.push(c);
    }
    if setup.sharded() && setup.transport == Transport::Tcp {
        let conns: Vec<u32> = r.stats().iter().map(|s| s.connections).collect();
        assert_eq!(conns, vec![3, 2], "keys 0, 2^30, 0 on shard 0; 2^31, 3·2^30 on shard 1");
    }
    send(&mut clients[0], data(DataKind::Direct, 10, 14, 5, b"neighbour"));
    assert_eq!(recv_data(&mut clients[4]).message_id, 5);
    send(&mut clients[2], data(DataKind::Direct, 12, 10, 6, b"across"));
    assert_eq!(recv_data(&mut clients[0]).message_id, 6);
    r.stop();
}

/// Sends a direct "marker" to `to` and checks it is the next thing `c` receives: whatever was
/// sent before it on the same path and did not arrive, never will.
fn check_nothing_before_marker(sender: &mut Client, from: u32, to: u32, c: &mut Client) {
    send(sender, data(DataKind::Direct, from, to, 9999, b"marker"));
    let got = recv_data(c);
    assert_eq!(got.message_id, 9999, "unexpected message before the marker: {got:?}");
}

fn broadcast_by_type_excludes_the_sender(setup: Setup) {
    // Proves a typed broadcast reaches every online agent of that type on every shard but not
    // the sender or other types, and an untyped one reaches everybody but the sender.
    let r = start(setup, 2, |_| {});
    let mut a = agent(&r, 1, 7, &[]);
    let mut b = agent(&r, 2, 7, &[]);
    let mut c = agent(&r, 3, 8, &[]);
    let mut d = agent(&r, 4, 7, &[]);
    send(&mut a, data(DataKind::Broadcast, 1, 7, 10, b"to sevens"));
    for x in [&mut b, &mut d] {
        let got = recv_data(x);
        assert_eq!((got.kind, got.sender.0, got.message_id), (DataKind::Broadcast, 1, 10));
    }
    check_nothing_before_marker(&mut a, 1, 3, &mut c);
    check_nothing_before_marker(&mut b, 2, 1, &mut a);

    send(&mut c, data(DataKind::Broadcast, 3, 0, 11, b"to all"));
    for x in [&mut a, &mut b, &mut d] {
        assert_eq!(recv_data(x).message_id, 11);
    }
    check_nothing_before_marker(&mut a, 1, 3, &mut c);
    r.stop();
}

fn topics_reach_subscribers_on_every_shard(setup: Setup) {
    // Proves publish reaches subscribers (by registration or subscribe) on both shards, not the
    // publisher, and stops after unsubscribe.
    let r = start(setup, 2, |_| {});
    let mut a = agent(&r, 1, 0, &[5]);
    let mut b = agent(&r, 2, 0, &[]);
    let mut c = agent(&r, 3, 0, &[5]);
    let request_id = b.request_id();
    check_ack(
        b.call(Control::Subscribe(Subscribe {
            request_id,
            agent_id: AgentId(2),
            topic: TopicId(5),
        }))
        .unwrap(),
    );
    send(&mut c, data(DataKind::Publish, 3, 5, 20, b"news"));
    for x in [&mut a, &mut b] {
        let got = recv_data(x);
        assert_eq!((got.kind, got.to, got.message_id), (DataKind::Publish, 5, 20));
    }
    check_nothing_before_marker(&mut a, 1, 3, &mut c);

    let request_id = b.request_id();
    let unsub = Unsubscribe { request_id, agent_id: AgentId(2), topic: TopicId(5) };
    check_ack(b.call(Control::Unsubscribe(unsub)).unwrap());
    send(&mut c, data(DataKind::Publish, 3, 5, 21, b"more news"));
    assert_eq!(recv_data(&mut a).message_id, 21);
    check_nothing_before_marker(&mut c, 3, 2, &mut b);
    r.stop();
}

fn lock(c: &mut Client, agent: u32, lock: u64, lease_ms: u32) -> (u64, Control) {
    let request_id = c.request_id();
    let req = LockRequest { request_id, agent_id: AgentId(agent), lock_id: LockId(lock), lease_ms };
    (request_id, c.call(Control::LockRequest(req)).unwrap())
}

fn unlock(c: &mut Client, agent: u32, lock: u64) -> Control {
    let request_id = c.request_id();
    c.call(Control::LockRelease(LockRelease {
        request_id,
        agent_id: AgentId(agent),
        lock_id: LockId(lock),
    }))
    .unwrap()
}

fn locks_are_fifo_across_shards(setup: Setup) {
    // Proves grant, FIFO queue positions, holder-only release and hand-over, with the requesters
    // on different shards from each other and from the lock's owner shard.
    let r = start(setup, 2, |_| {});
    let mut a = agent(&r, 1, 0, &[]);
    let mut b = agent(&r, 2, 0, &[]);
    let mut c = agent(&r, 3, 0, &[]);
    for lock_id in [40u64, 41] {
        assert!(matches!(lock(&mut a, 1, lock_id, 0).1, Control::LockGranted(_)));
        let (b_req, b_reply) = lock(&mut b, 2, lock_id, 0);
        assert!(
            matches!(b_reply, Control::LockQueued(LockQueued { position: 1, .. })),
            "{b_reply:?}"
        );
        assert!(matches!(
            lock(&mut c, 3, lock_id, 0).1,
            Control::LockQueued(LockQueued { position: 2, .. })
        ));
        assert_eq!(error_code(&unlock(&mut b, 2, lock_id)), ErrorCode::NotLockHolder.code());
        check_ack(unlock(&mut a, 1, lock_id));
        match b.recv_control().unwrap() {
            Control::LockGranted(g) => {
                assert_eq!((g.request_id, g.lock_id), (b_req, LockId(lock_id)))
            }
            other => panic!("expected the queued grant, got {other:?}"),
        }
        check_ack(unlock(&mut b, 2, lock_id));
        assert!(matches!(c.recv_control().unwrap(), Control::LockGranted(_)));
        check_ack(unlock(&mut c, 3, lock_id));
        assert_eq!(error_code(&unlock(&mut c, 3, lock_id)), ErrorCode::LockNotFound.code());
    }
    r.stop();
}

fn locks_exclude_under_contention(setup: Setup) {
    // Proves mutual exclusion: 4 agents on both shards take one lock 40 times each, and no two
    // ever hold it at once.
    let r = start(setup, 2, |_| {});
    let holder = Arc::new(AtomicU32::new(0));
    let clients: Vec<Client> = (1..=4).map(|id| agent(&r, id, 0, &[])).collect();
    let threads: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            let holder = holder.clone();
            std::thread::spawn(move || {
                let me = i as u32 + 1;
                for _ in 0..40 {
                    let (req, reply) = lock(&mut c, me, 7, 0);
                    match reply {
                        Control::LockGranted(_) => {}
                        Control::LockQueued(_) => match c.recv_control().unwrap() {
                            Control::LockGranted(g) => assert_eq!(g.request_id, req),
                            other => panic!("expected a grant, got {other:?}"),
                        },
                        other => panic!("unexpected {other:?}"),
                    }
                    assert_eq!(holder.swap(me, Ordering::SeqCst), 0, "two holders at once");
                    holder.store(0, Ordering::SeqCst);
                    check_ack(unlock(&mut c, me, 7));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    r.stop();
}

fn barriers_release_everyone_together(setup: Setup) {
    // Proves agents on both shards, entering concurrently, are all released once the expected
    // count arrives, each exactly once, and the barrier id is reusable.
    let r = start(setup, 2, |_| {});
    for round in 0..2 {
        let clients: Vec<Client> = (1..=4).map(|id| agent(&r, id + round * 10, 0, &[])).collect();
        let start_line = Arc::new(Barrier::new(4));
        let threads: Vec<_> = clients
            .into_iter()
            .enumerate()
            .map(|(i, mut c)| {
                let start_line = start_line.clone();
                std::thread::spawn(move || {
                    let me = i as u32 + 1 + round * 10;
                    start_line.wait();
                    let request_id = c.request_id();
                    c.send_control(Control::BarrierEnter(BarrierEnter {
                        request_id,
                        agent_id: AgentId(me),
                        barrier_id: BarrierId(3),
                        expected: 4,
                    }))
                    .unwrap();
                    loop {
                        match c.recv_control().unwrap() {
                            Control::BarrierWait(w) => assert!(w.arrived < 4 && w.expected == 4),
                            Control::BarrierRelease(rel) => {
                                assert_eq!((rel.request_id, rel.arrived), (request_id, 4));
                                return c;
                            }
                            other => panic!("unexpected {other:?}"),
                        }
                    }
                })
            })
            .collect();
        let mut done: Vec<Client> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        // No second release follows.
        for (i, c) in done.iter_mut().enumerate() {
            c.set_timeout(Duration::from_millis(50)).unwrap();
            if let Ok(more) = c.recv() {
                panic!("client {i} got more after its release: {more:?}");
            }
        }
    }
    r.stop();
}

fn bad_input_gets_its_error_and_others_carry_on(setup: Setup) {
    // Proves garbage, an oversized header, a wrong version and a malformed message each get
    // their own error and a closed connection, while two other agents keep talking.
    let r = start(setup, 2, |_| {});
    let mut a = agent(&r, 1, 0, &[]);
    let mut b = agent(&r, 2, 0, &[]);
    let mut good_frame = Vec::new();
    {
        let mut c = agent(&r, 50, 0, &[]);
        c.send(&[Message::Data(data(DataKind::Direct, 50, 1, 1, b"ok"))]).unwrap();
        assert_eq!(recv_data(&mut a).message_id, 1);
        let mut pool = a2a_bench::wire::BufferPool::default();
        good_frame.extend(a2a_bench::wire::frame::encode_frame(
            &[Message::Data(data(DataKind::Direct, 50, 1, 2, b"x"))],
            a2a_bench::wire::Compression::None,
            &mut pool,
        ));
    }
    let mut oversized = good_frame[..HEADER_LEN].to_vec();
    oversized[8..12].copy_from_slice(&(64u32 << 20).to_be_bytes());
    oversized[12..16].copy_from_slice(&(64u32 << 20).to_be_bytes());
    let mut version = good_frame.clone();
    version[2] = 9;
    let mut bad_message = good_frame.clone();
    bad_message[HEADER_LEN] = 0xc1;
    let cases: Vec<(&[u8], ErrorCode)> = vec![
        (b"HELLO router\r\n\r\n", ErrorCode::MalformedFrame),
        (&oversized, ErrorCode::FrameTooLarge),
        (&version, ErrorCode::UnsupportedVersion),
        (&bad_message, ErrorCode::MalformedFrame),
    ];
    for (bytes, code) in cases {
        let mut bad = r.connect();
        bad.send_raw(bytes).unwrap();
        let got = bad.read_until_closed().expect("an error, then the router closes");
        match &got[..] {
            [Received::Control(Control::Error(e))] => assert_eq!(e.code, code.code(), "{e:?}"),
            other => panic!("expected exactly one error for {code:?}, got {other:?}"),
        }
        send(&mut a, data(DataKind::Direct, 1, 2, 5, b"still here"));
        assert_eq!(recv_data(&mut b).message_id, 5);
        send(&mut b, data(DataKind::Direct, 2, 1, 6, b"and here"));
        assert_eq!(recv_data(&mut a).message_id, 6);
    }
    // A valid message whose integers use their widest encodings, ending right where the
    // decoder's fast-path window ends: delivered (it once panicked the shard's thread).
    let mut body = vec![0x92, DataKind::Direct as u8, 0x99];
    for v in [1u64, 2, 7, 0, 1] {
        body.push(0xcf);
        body.extend_from_slice(&v.to_be_bytes());
    }
    body.extend_from_slice(&[0xce, 0, 0, 0, 0, 0xcc, 5, 0xcf, 0, 0, 0, 0, 0, 0, 0, 0]);
    body.extend_from_slice(&[0xc4, 20]);
    body.extend_from_slice(&[b'w'; 20]);
    let header = a2a_bench::wire::FrameHeader {
        compressed: false,
        count: 1,
        body_len: body.len() as u32,
        raw_len: body.len() as u32,
    };
    a.send_raw(&[&header.to_bytes()[..], &body].concat()).unwrap();
    let wide = recv_data(&mut b);
    assert_eq!((wide.message_id, wide.sender, &wide.payload[..]), (7, AgentId(1), &[b'w'; 20][..]));
    send(&mut b, data(DataKind::Direct, 2, 1, 8, b"after it"));
    assert_eq!(recv_data(&mut a).message_id, 8);
    // A client sending a router-only kind is cut off too.
    let mut rude = agent(&r, 60, 0, &[]);
    rude.send_control(Control::Ack(Ack { request_id: 1 })).unwrap();
    match &rude.read_until_closed().unwrap()[..] {
        [Received::Control(Control::Error(e))] => {
            assert_eq!(e.code, ErrorCode::UnexpectedMessage.code())
        }
        other => panic!("expected one error, got {other:?}"),
    }
    r.stop();
}

fn undeliverable_messages_are_answered(setup: Setup) {
    // Proves unknown recipient, unregistered sender and expired ttl each come back as an error
    // carrying the message id, and the connection stays usable.
    let r = start(setup, 2, |_| {});
    let mut a = agent(&r, 1, 0, &[]);
    let mut b = agent(&r, 2, 0, &[]);
    send(&mut a, data(DataKind::Direct, 1, 999, 31, b"?"));
    send(&mut a, data(DataKind::Direct, 42, 2, 32, b"spoof"));
    let mut old = data(DataKind::Direct, 1, 2, 33, b"stale");
    old.timestamp_ns -= 5_000_000_000;
    old.ttl_ms = 10;
    send(&mut a, old);
    for (id, code) in [
        (31, ErrorCode::UnknownRecipient),
        (32, ErrorCode::SenderNotRegistered),
        (33, ErrorCode::Expired),
    ] {
        match a.recv_control().unwrap() {
            Control::Error(e) => assert_eq!((e.message_id, e.code), (id, code.code()), "{e:?}"),
            other => panic!("expected an error, got {other:?}"),
        }
    }
    check_nothing_before_marker(&mut a, 1, 2, &mut b);
    let errors: u64 = r.stats().iter().flat_map(|s| s.errors.clone()).map(|(_, n)| n).sum();
    assert_eq!(errors, 3, "each error is counted once");
    r.stop();
}

fn registry_rejects_duplicates_and_checks_tokens(setup: Setup) {
    // Proves a live id cannot be registered twice (from either shard), and a configured token
    // is required: a missing or wrong one is refused and its connection closed.
    let r = start(setup, 2, |cfg| cfg.token = Some("s3cret".into()));
    let mut a = r.connect();
    let mut b = r.connect();
    let reg = |c: &mut Client, token: Option<&str>| {
        let request_id = c.request_id();
        c.call(Control::Register(Register {
            request_id,
            agent_id: AgentId(5),
            agent_type: 1,
            name: "five".into(),
            capabilities: vec![],
            topics: vec![],
            token: token.map(String::from),
        }))
        .unwrap()
    };
    for token in [None, Some("wrong"), Some("s3cre"), Some("s3cret!")] {
        let mut refused = r.connect();
        assert_eq!(error_code(&reg(&mut refused, token)), ErrorCode::Unauthorized.code());
        let after = refused.read_until_closed().expect("the router closes a refused connection");
        assert!(after.is_empty(), "{token:?}: {after:?}");
    }
    check_ack(reg(&mut a, Some("s3cret")));
    assert_eq!(error_code(&reg(&mut b, Some("s3cret"))), ErrorCode::DuplicateAgent.code());
    assert_eq!(error_code(&reg(&mut a, Some("s3cret"))), ErrorCode::DuplicateAgent.code());
    r.stop();
}

fn discover(
    c: &mut Client,
    agent_type: u32,
    capability: Option<&str>,
    offset: u32,
    limit: u32,
) -> DiscoverReply {
    let request_id = c.request_id();
    let d = Discover {
        request_id,
        agent_type,
        capability: capability.map(String::from),
        offset,
        limit,
        names_only: false,
    };
    match c.call(Control::Discover(d)).unwrap() {
        Control::DiscoverReply(r) => r,
        other => panic!("expected a discover reply, got {other:?}"),
    }
}

fn disconnect_releases_everything(setup: Setup) {
    // Proves closing a connection frees its agents' ids, hands its locks to the next waiter,
    // and removes them from discovery.
    let r = start(setup, 2, |_| {});
    let mut holder = agent(&r, 1, 3, &[9]);
    let mut waiter = agent(&r, 2, 3, &[]);
    assert!(matches!(lock(&mut holder, 1, 70, 0).1, Control::LockGranted(_)));
    assert!(matches!(lock(&mut waiter, 2, 70, 0).1, Control::LockQueued(_)));
    assert_eq!(discover(&mut waiter, 3, None, 0, 0).total, 2);
    drop(holder);
    assert!(matches!(waiter.recv_control().unwrap(), Control::LockGranted(_)), "lock handed over");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = discover(&mut waiter, 3, None, 0, 0);
        if reply.total == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "agent 1 still listed: {reply:?}");
    }
    let mut again = r.connect();
    check_ack(again.register(1, 3, &[]).unwrap());
    r.stop();
}

fn discover_pages_and_stats_cover_all_shards(setup: Setup) {
    // Proves discover filters by type and capability across shards, orders by id, pages, and
    // stats answer for every shard.
    let r = start(setup, 2, |_| {});
    let mut clients = Vec::new();
    for id in 1..=6u32 {
        let mut c = r.connect();
        let request_id = c.request_id();
        let caps = if id % 2 == 0 { vec!["gpu".to_string()] } else { vec![] };
        check_ack(
            c.call(Control::Register(Register {
                request_id,
                agent_id: AgentId(id),
                agent_type: if id <= 4 { 1 } else { 2 },
                name: format!("a{id}"),
                capabilities: caps,
                topics: vec![],
                token: None,
            }))
            .unwrap(),
        );
        clients.push(c);
    }
    let c = &mut clients[0];
    let all = discover(c, 0, None, 0, 0);
    assert_eq!(all.total, 6);
    assert_eq!(all.agents.iter().map(|a| a.agent_id.0).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5, 6]);
    assert!(all.agents.iter().all(|a| a.online));
    assert_eq!(discover(c, 1, None, 0, 0).total, 4);
    let gpus = discover(c, 0, Some("gpu"), 0, 0);
    assert_eq!(gpus.agents.iter().map(|a| a.agent_id.0).collect::<Vec<_>>(), vec![2, 4, 6]);
    let page = discover(c, 0, None, 2, 3);
    assert_eq!((page.total, page.agents.len(), page.agents[0].agent_id.0), (6, 3, 3));
    // Names only: the same agents, from every shard, without their capabilities.
    let request_id = c.request_id();
    let gpu = Some("gpu".to_string());
    let d = Discover {
        request_id,
        agent_type: 0,
        capability: gpu,
        offset: 0,
        limit: 0,
        names_only: true,
    };
    match c.call(Control::Discover(d)).unwrap() {
        Control::DiscoverReply(r) => {
            assert_eq!(r.agents.iter().map(|a| a.agent_id.0).collect::<Vec<_>>(), vec![2, 4, 6]);
            assert!(r.agents.iter().all(|a| a.capabilities.is_empty() && a.name.starts_with('a')));
        }
        other => panic!("expected a discover reply, got {other:?}"),
    }
    let request_id = c.request_id();
    match c.call(Control::StatsRequest(StatsRequest { request_id })).unwrap() {
        Control::StatsReply(s) => {
            assert_eq!(s.shards.len(), if setup.sharded() { 2 } else { 1 });
            assert_eq!(s.shards.iter().map(|x| x.agents).sum::<u32>(), 6);
        }
        other => panic!("expected stats, got {other:?}"),
    }
    r.stop();
}

fn silent_agents_go_offline_and_come_back(setup: Setup) {
    // Proves an agent silent past the heartbeat timeout is offline (direct → recipient_offline,
    // listed offline), and a heartbeat brings it back.
    let r = start(setup, 2, |cfg| cfg.heartbeat_timeout = Duration::from_millis(150));
    let mut a = agent(&r, 1, 0, &[]);
    let mut b = agent(&r, 2, 0, &[]);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        // `a` keeps talking (so it stays online) while `b` stays silent.
        let listed = discover(&mut a, 0, None, 0, 0);
        if listed.agents.iter().any(|x| x.agent_id.0 == 2 && !x.online) {
            break;
        }
        assert!(Instant::now() < deadline, "agent 2 never went offline");
        std::thread::sleep(Duration::from_millis(20));
    }
    send(&mut a, data(DataKind::Direct, 1, 2, 90, b"anyone?"));
    match a.recv_control().unwrap() {
        Control::Error(e) => {
            assert_eq!((e.code, e.message_id), (ErrorCode::RecipientOffline.code(), 90))
        }
        other => panic!("expected recipient_offline, got {other:?}"),
    }
    let request_id = b.request_id();
    check_ack(b.call(Control::Heartbeat(Heartbeat { request_id, agent_id: AgentId(2) })).unwrap());
    send(&mut a, data(DataKind::Direct, 1, 2, 91, b"back?"));
    assert_eq!(recv_data(&mut b).message_id, 91);
    r.stop();
}

fn two_thousand_agents_at_once(setup: Setup) {
    // Proves 2,000 connected agents register and each gets a message from its neighbour.
    raise_fd_limit(8192);
    let r = start(setup, 2, |_| {});
    let n = 2000u32;
    // Client i holds agent i + 1 (agent id 0 is reserved).
    let mut clients: Vec<Client> = (0..n).map(|i| agent(&r, i + 1, 0, &[])).collect();
    for i in 0..n {
        send(
            &mut clients[i as usize],
            data(DataKind::Direct, i + 1, (i + 1) % n + 1, u64::from(i), b"hi"),
        );
    }
    for i in 0..n {
        let got = recv_data(&mut clients[i as usize]);
        assert_eq!(got.sender.0, (i + n - 1) % n + 1);
    }
    let stats = r.stats();
    assert_eq!(stats.iter().map(|s| s.connections).sum::<u32>(), n);
    assert_eq!(stats.iter().map(|s| s.agents).sum::<u32>(), n);
    r.stop();
}

fn stalled_receiver_is_bounded(setup: Setup) {
    // Proves a receiver that never reads cannot make the router queue more than its bounds
    // (one connection's queue plus what was in flight from the other shard, one peer's queue,
    // each plus one input pass): the sender is paused
    // by backpressure and its writes stop going through. The kernel's socket buffers absorb
    // some tens of MiB on the way (tcp_rmem max is 32 MiB here), so the sender tries 256 MiB.
    let (conn_bound, peer_bound) = (256 << 10, 1 << 20);
    let r = start(setup, 2, |cfg| {
        cfg.conn_queue_bytes_max = conn_bound;
        cfg.peer_queue_bytes_max = peer_bound;
        cfg.compression = a2a_bench::wire::Compression::None; // repeated payloads would shrink
    });
    let mut slow = r.connect_with_recv_buffer(64 << 10);
    check_ack(slow.register(1, 0, &[]).unwrap());
    let mut fast = agent(&r, 2, 0, &[]);
    fast.set_compression(a2a_bench::wire::Compression::None);
    fast.set_write_timeout(Duration::from_millis(500)).unwrap();
    let payload = noise(1000);
    let batch: Vec<Message<'_>> =
        (0..64).map(|i| Message::Data(data(DataKind::Direct, 2, 1, i, &payload))).collect();
    let mut sent_bytes = 0usize;
    let target = 256 << 20;
    while sent_bytes < target {
        if fast.send(&batch).is_err() {
            break;
        }
        sent_bytes += 64 * 1000;
    }
    let stats = r.stats();
    assert!(sent_bytes < target, "256 MiB went through to a receiver that never reads: {stats:?}");
    let conn_hwm = stats.iter().map(|s| s.conn_queue_bytes_hwm).max().unwrap();
    let peer_hwm = stats.iter().map(|s| s.peer_queue_bytes_hwm).max().unwrap();
    // One read buffer of input routed past a bound before the reader's gate closes.
    let pass = 64 << 10;
    let slack = 16 << 10;
    // A peer's lane is never paused: everything already on its way from the sender's shard
    // lands in the connection's queue before that shard hears the connection is full and pauses
    // the sender: its queue for the peer (bound plus a pass), the channel's batches, and the one
    // batch its writer holds while it waits for room in the channel.
    let batch = a2a_bench::route::peer::PEER_BATCH_BYTES;
    let channel = (a2a_bench::route::shell::PEER_CHANNEL_CAPACITY + 1) * batch;
    let in_flight = peer_bound + pass + slack + channel;
    assert!(
        conn_hwm <= (conn_bound + in_flight + pass + slack) as u64,
        "connection queue reached {conn_hwm} B: {stats:?}"
    );
    eprintln!("connection queue high-water mark {conn_hwm} B, peer queue {peer_hwm} B");
    assert!(peer_hwm <= (peer_bound + pass + slack) as u64, "peer queue reached {peer_hwm} B");
    // Once the receiver reads, the flow resumes.
    assert_eq!(recv_data(&mut slow).sender.0, 2);
    r.stop();
}

fn stalled_receiver_with_drop_policy_gets_queue_full(setup: Setup) {
    // Proves that under the drop policy the sender keeps going and is told, per message, that
    // the recipient's queue was full; the queue stays within its bound. 8 MiB of incompressible
    // messages is more than the kernel buffers for a reader with a 16 KiB receive buffer.
    let bound = 128 << 10;
    let r = start(setup, 2, |cfg| {
        cfg.conn_queue_bytes_max = bound;
        cfg.on_full = a2a_bench::route::FullPolicy::Drop;
        cfg.compression = a2a_bench::wire::Compression::None;
    });
    let mut slow = r.connect_with_recv_buffer(16 << 10);
    check_ack(slow.register(1, 0, &[]).unwrap());
    let mut fast = agent(&r, 2, 0, &[]);
    fast.set_compression(a2a_bench::wire::Compression::None);
    let payload = noise(1000);
    let batch: Vec<Message<'_>> =
        (0..64).map(|i| Message::Data(data(DataKind::Direct, 2, 1, i, &payload))).collect();
    for _ in 0..128 {
        fast.send(&batch).unwrap();
    }
    match fast.recv_control().unwrap() {
        Control::Error(e) => assert_eq!(e.code, ErrorCode::QueueFull.code(), "{e:?}"),
        other => panic!("expected queue_full, got {other:?}"),
    }
    let hwm = r.stats().iter().map(|s| s.conn_queue_bytes_hwm).max().unwrap();
    assert!(hwm <= (bound + 4096) as u64, "router queued {hwm} bytes under the drop policy");
    r.stop();
}

fn priority_overtakes_queued_traffic(setup: Setup) {
    // Proves the high-priority lane: with a backlog queued in the router for a slow reader, a
    // priority-9 message sent after 8,000 priority-1 messages is delivered before at least 1,000
    // of them. (The kernel takes up to 4 MiB of the backlog first: tcp_wmem's maximum here.)
    // One shard: a stats answer then proves the urgent message is queued (with two, the
    // receiving shard could still be behind on its peer channel under load, and its writer
    // would take the backlog as it comes: CI saw the urgent message at position ≥ 7,000).
    let r = start(setup, 1, |cfg| {
        cfg.conn_queue_bytes_max = 32 << 20;
        cfg.compression = a2a_bench::wire::Compression::None; // repeated payloads would shrink
    });
    let mut slow = r.connect_with_recv_buffer(16 << 10);
    check_ack(slow.register(1, 0, &[]).unwrap());
    let mut fast = agent(&r, 2, 0, &[]);
    fast.set_compression(a2a_bench::wire::Compression::None);
    let payload = noise(1000);
    let msgs: Vec<Message<'_>> = (0..8000)
        .map(|i| {
            let mut env = data(DataKind::Direct, 2, 1, i, &payload);
            env.priority = 1;
            Message::Data(env)
        })
        .collect();
    for chunk in msgs.chunks(100) {
        fast.send(chunk).unwrap();
    }
    let mut urgent = data(DataKind::Direct, 2, 1, 99_999, b"urgent");
    urgent.priority = 9;
    send(&mut fast, urgent);
    // The stats request follows the urgent message through the same reader: once it is
    // answered, the urgent message is queued in the router (behind the backlog), and only then
    // does the reader start.
    let request_id = fast.request_id();
    let stats = fast.call(Control::StatsRequest(StatsRequest { request_id })).unwrap();
    assert!(matches!(stats, Control::StatsReply(_)));
    let position = (0..8001)
        .position(|_| recv_data(&mut slow).message_id == 99_999)
        .expect("the urgent message arrives");
    assert!(position < 7000, "the urgent message came at position {position} of 8001");
    r.stop();
}

/// Whether the router closed `c` (an orderly close or a reset both count; a timeout does not).
fn sees_close(c: &mut Client) -> bool {
    use a2a_bench::client::ClientError;
    match c.read_until_closed() {
        Ok(_) => true,
        Err(ClientError::Io(e)) => {
            e.kind() != std::io::ErrorKind::WouldBlock && e.kind() != std::io::ErrorKind::TimedOut
        }
        Err(_) => false,
    }
}

fn stop_closes_every_connection(setup: Setup) {
    // Proves stopping a router closes every client connection promptly, the router's end of
    // each socket included, even with a writer blocked on a client that does not read.
    for _ in 0..3 {
        let r = start(setup, 2, |cfg| {
            cfg.conn_queue_bytes_max = 64 << 10;
            cfg.compression = a2a_bench::wire::Compression::None;
        });
        let port = r.addr().port();
        let mut a = agent(&r, 1, 0, &[]);
        let mut b = r.connect_with_recv_buffer(16 << 10);
        check_ack(b.register(2, 0, &[]).unwrap());
        a.set_compression(a2a_bench::wire::Compression::None);
        let payload = noise(1000);
        let batch: Vec<Message<'_>> =
            (0..64).map(|i| Message::Data(data(DataKind::Direct, 1, 2, i, &payload))).collect();
        // Send until the router refuses more: then its queue for `b` and both sockets' kernel
        // buffers are full, and its writer to `b` is blocked in a write that cannot finish.
        a.set_write_timeout(Duration::from_millis(300)).unwrap();
        let mut sent = 0;
        while sent < 2048 && a.send(&batch).is_ok() {
            sent += 1;
        }
        assert!(sent < 2048, "the router never pushed back");
        let started = Instant::now();
        r.stop();
        assert!(started.elapsed() < Duration::from_secs(1), "stop took {:?}", started.elapsed());
        assert_eq!(open_router_sockets(port), 0, "router-side sockets left open");
        for (name, c) in [("sender", &mut a), ("stalled receiver", &mut b)] {
            c.set_timeout(Duration::from_secs(5)).unwrap();
            assert!(sees_close(c), "the {name} sees its connection closed");
        }
    }
}

fn plain_http_gets_400(setup: Setup) {
    // Proves an HTTP request that is no WebSocket upgrade is answered 400 and closed, and the
    // router keeps serving.
    use std::io::{Read, Write};
    let r = start(setup, 2, |_| {});
    let mut raw = std::net::TcpStream::connect(r.addr()).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut answer = String::new();
    let _ = raw.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    let mut a = agent(&r, 1, 0, &[]);
    let mut b = agent(&r, 2, 0, &[]);
    check_nothing_before_marker(&mut a, 1, 2, &mut b);
    r.stop();
}

fn large_and_split_frames_arrive_whole(setup: Setup) {
    // Proves a frame larger than a read buffer, than the socket ring's receive bound (256 KiB:
    // the shard must move it out of the ring to let the rest in), than the part a ring lends
    // (128 KiB: moved out once it grew past that) or split across reads reaches its recipient
    // byte for byte, and the connection carries on.
    let r = start(setup, 1, |_| {});
    let mut a = agent(&r, 1, 0, &[]);
    let mut b = agent(&r, 2, 0, &[]);
    for (i, len) in [100_000usize, 200_000, 700_000, 30].into_iter().enumerate() {
        let payload = noise(len);
        send(&mut a, data(DataKind::Direct, 1, 2, i as u64, &payload));
        let got = recv_data(&mut b);
        assert_eq!((got.message_id, got.payload.len()), (i as u64, len));
        assert!(got.payload[..] == payload[..], "payload {i} changed on the way");
    }
    // Counted out, also when a socket ring took the frame's buffer instead of a copy.
    let out: u64 = r.stats().iter().map(|s| s.bytes_out).sum();
    assert!(out > 800_000, "{out} bytes out");
    if setup.transport == Transport::Tcp {
        // A whole frame and half of the next in one write, the rest once the whole one has
        // been routed (so the router holds the half frame while it waits).
        let mut raw = r.connect();
        check_ack(raw.register(3, 0, &[]).unwrap());
        let payload = noise(5_000);
        let mut pool = Default::default();
        let mut frame = |id: u64| {
            a2a_bench::wire::frame::encode_frame(
                &[Message::Data(data(DataKind::Direct, 3, 2, id, &payload))],
                a2a_bench::wire::Compression::None,
                &mut pool,
            )
        };
        let (whole, next) = (frame(8), frame(9));
        let (first, rest) = next.split_at(next.len() / 2);
        raw.send_raw(&[&whole[..], first].concat()).unwrap();
        assert_eq!(recv_data(&mut b).message_id, 8);
        raw.send_raw(rest).unwrap();
        let got = recv_data(&mut b);
        assert_eq!(got.message_id, 9);
        assert!(got.payload[..] == payload[..]);
    }
    r.stop();
}

fn big_messages_reuse_their_buffers(setup: Setup) {
    // Proves a stream of messages far past the pool's largest tier (200 KB: every frame out is
    // that big, and a reader's buffer for the partial frame grows past the tier and back) is
    // served by buffers the shard's pool kept, not allocations per message: each was mapped
    // and faulted in anew (110 k page faults a second on a router core before).
    let r = start(setup, 1, |_| {});
    let mut a = agent(&r, 1, 0, &[]);
    let mut b = agent(&r, 2, 0, &[]);
    let payload = noise(200_000);
    let misses =
        |r: &crate::support::TestRouter| -> u64 { r.stats().iter().map(|s| s.pool_misses).sum() };
    let mut route = |i: u64| {
        send(&mut a, data(DataKind::Direct, 1, 2, i, &payload));
        let got = recv_data(&mut b);
        assert_eq!((got.message_id, got.payload.len()), (i, payload.len()));
    };
    for i in 0..5 {
        route(i);
    }
    let before = misses(&r);
    for i in 5..45 {
        route(i);
    }
    let allocated = misses(&r) - before;
    assert!(allocated <= 8, "{allocated} pool allocations for 40 messages of 200 KB");
    r.stop();
}

macro_rules! suite {
    ($name:ident = $kind:ident, $transport:ident, $io:ident: $($check:ident),* $(,)?) => {
        mod $name {
            $(
                #[test]
                fn $check() {
                    super::$check(crate::support::Setup {
                        kind: a2a_bench::routers::RouterKind::$kind,
                        transport: a2a_bench::transport::Transport::$transport,
                        io: a2a_bench::transport::Io::$io,
                    });
                }
            )*
        }
    };
}

/// The whole suite for one router kind over one transport, plus `extra` checks.
macro_rules! every_check {
    ($name:ident = $kind:ident, $transport:ident $(, $extra:ident)*) => {
        every_check!($name = $kind on Glommio, $transport $(, $extra)*);
    };
    ($name:ident = $kind:ident on $io:ident, $transport:ident $(, $extra:ident)*) => {
        suite!($name = $kind, $transport, $io:
            direct_request_and_reply,
            broadcast_by_type_excludes_the_sender,
            topics_reach_subscribers_on_every_shard,
            locks_are_fifo_across_shards,
            locks_exclude_under_contention,
            barriers_release_everyone_together,
            bad_input_gets_its_error_and_others_carry_on,
            undeliverable_messages_are_answered,
            registry_rejects_duplicates_and_checks_tokens,
            disconnect_releases_everything,
            discover_pages_and_stats_cover_all_shards,
            silent_agents_go_offline_and_come_back,
            two_thousand_agents_at_once,
            stalled_receiver_is_bounded,
            stalled_receiver_with_drop_policy_gets_queue_full,
            stop_closes_every_connection,
            priority_overtakes_queued_traffic,
            cross_shard_round_trips_wait_for_no_timer,
            connections_are_placed_by_their_home_frame,
            large_and_split_frames_arrive_whole,
            $($extra,)*
        );
    };
}

every_check!(glommio_tcp = Glommio, Tcp, plain_http_gets_400, big_messages_reuse_their_buffers);
every_check!(glommio_ws = Glommio, Ws);
// The glommio router with its shards' sockets on a second ring (`--router-io uring`).
every_check!(glommio_uring_tcp = Glommio on Uring, Tcp, plain_http_gets_400, big_messages_reuse_their_buffers);
every_check!(glommio_uring_ws = Glommio on Uring, Ws);
every_check!(tokio_shared_tcp = TokioShared, Tcp, plain_http_gets_400);
every_check!(tokio_shared_ws = TokioShared, Ws);
every_check!(
    tokio_per_core_tcp = TokioPerCore,
    Tcp,
    plain_http_gets_400,
    big_messages_reuse_their_buffers
);
every_check!(tokio_per_core_ws = TokioPerCore, Ws);

/// Registers `id` 100 times in a row, each time on a new connection opened right after the last
/// one closed — by the client (even rounds) or by the router after a malformed frame (odd
/// rounds) — and requires an ack every time.
fn check_reconnects_get_their_id_back(kind: RouterKind) {
    let r = start(Setup { kind, transport: Transport::Tcp, io: Default::default() }, 2, |_| {});
    for round in 0..100 {
        let id = 700 + round % 2; // both owners: one id per shard
        let mut c = r.connect();
        let answer = c.register(id, 0, &[]).expect("register answered");
        assert!(matches!(answer, Control::Ack(_)), "round {round}: {answer:?}");
        if round % 2 == 1 {
            c.send_raw(b"HELLO router\r\n\r\n").unwrap();
            let _ = c.read_until_closed();
        }
        drop(c);
    }
    r.stop();
}

#[test]
fn an_agent_that_reconnects_at_once_gets_its_id_back() {
    // Proves the reconnect race is gone on the sharded routers: a re-registration from a new
    // connection right after the old one closed (either side closing) is acknowledged, not
    // refused as a duplicate of the registration being removed.
    check_reconnects_get_their_id_back(RouterKind::Glommio);
    check_reconnects_get_their_id_back(RouterKind::TokioPerCore);
}

#[test]
fn a_run_against_an_external_router_reads_its_counters_on_one_connection() {
    // Proves the benchmark reads an external router's counters (its shards' CPU in the report)
    // over one connection kept for the run, not a connection per reading: a counting proxy in
    // front of the router sees the agents' connection and the probe's, with readings at every
    // 0.1 s interval.
    use std::net::{TcpListener, TcpStream};
    let r = start(
        Setup { kind: RouterKind::Glommio, transport: Transport::Tcp, io: Default::default() },
        1,
        |_| {},
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicU32::new(0));
    let (upstream, count) = (r.addr(), accepted.clone());
    std::thread::spawn(move || {
        for down in listener.incoming() {
            let Ok(down) = down else { return };
            count.fetch_add(1, Ordering::SeqCst);
            let Ok(up) = TcpStream::connect(upstream) else { return };
            for (mut from, mut to) in
                [(down.try_clone().unwrap(), up.try_clone().unwrap()), (up, down)]
            {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(std::net::Shutdown::Both);
                });
            }
        }
    });
    let scratch = crate::support::scratch("probe");
    let out = scratch.join("report.json");
    let url = format!("tcp://{proxy}");
    let args =
        ["--router", &url, "--agents", "4", "--agents-per-conn", "4", "--topologies", "ring"];
    let more = ["--repeat", "1", "--warmup", "0.2", "--duration", "1", "--interval", "0.1"];
    let run = run_bin(
        &[&args[..], &more[..], &["--agent-cores", "0", "--output", out.to_str().unwrap()]]
            .concat(),
        Duration::from_secs(60),
    );
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let shards = &report["results"][0]["cpu"]["router_cores"];
    assert_eq!(shards.as_array().map(Vec::len), Some(1), "{report}");
    assert_eq!(report["results"][0]["connections"], 1, "four agents on one connection");
    // The agents', the probe's, perhaps the reachability check's, and the `share_cores`
    // lease's where this test process has a thread pinned to core 0, the agents' core (it
    // listens, so it is taken for the router).
    let seen = accepted.load(Ordering::SeqCst);
    assert!((2..=4).contains(&seen), "{seen} connections through the proxy");
    r.stop();
}

#[test]
fn every_router_acknowledges_a_client_that_shares_its_cores() {
    // Proves `share_cores` is answered with `ack` by every router (those that never watch
    // their sockets have nothing to stop), and that the connection serves on afterwards.
    for kind in RouterKind::ALL {
        let r = start(Setup { kind, transport: Transport::Tcp, io: Default::default() }, 2, |_| {});
        let mut c = r.connect();
        let request_id = c.request_id();
        let share = ShareCores { request_id, cores: vec![0, 1], lease_ms: 50 };
        check_ack(c.call(Control::ShareCores(share)).unwrap());
        check_ack(c.register(7_200_001, 1, &[]).unwrap());
        r.stop();
    }
}

#[test]
fn agents_on_a_core_an_external_router_is_pinned_to_stop_both_sides_watching() {
    // Proves the sharing of a core with a router of its own on this host: `a2a-bench` finds
    // the router's shard pinned to the agents' core, says so, and neither side watches its
    // sockets there (a watch holds the core the other side needs to answer). Before, on one
    // core, the router watched 20 % of its time and the agents 17 %, and routed 0.63 M msgs/s
    // instead of 1.05 M.
    let (router, addr) = crate::support::router_process(&[]);
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _router = Kill(router);
    let scratch = crate::support::scratch("share");
    let out = scratch.join("report.json");
    let url = format!("tcp://{addr}");
    let args = ["--router", &url, "--agent-cores", "0", "--agents", "10", "--topologies", "ring"];
    let more = ["--repeat", "1", "--warmup", "0.3", "--duration", "1", "--stall-probe", "0"];
    let run = run_bin(
        &[&args[..], &more[..], &["--output", out.to_str().unwrap()]].concat(),
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(stderr.contains("pinned to core(s) 0, and agents run on core(s) 0 too"), "{stderr}");
    assert!(!stderr.contains("did not take `share_cores`"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let cpu = &report["results"][0]["cpu"];
    for side in ["router_watch", "agent_watch"] {
        let watch = cpu[side].as_array().unwrap_or_else(|| panic!("no {side}: {cpu}"));
        assert!(!watch.is_empty() && watch.iter().all(|w| w.as_f64() == Some(0.0)), "{cpu}");
    }
    // The run ended its lease as it left: the router watches again at once, not 3 s later
    // (its last renewal was under a second before the end).
    if a2a_bench::transport::uring::supported().is_ok() {
        let mut c = Client::connect(addr).unwrap();
        c.set_timeout(Duration::from_secs(10)).unwrap();
        let watched = |c: &mut Client| -> u64 {
            let request_id = c.request_id();
            match c.call(Control::StatsRequest(StatsRequest { request_id })).unwrap() {
                Control::StatsReply(r) => r.shards.iter().map(|s| s.watch_ns).sum(),
                other => panic!("{other:?}"),
            }
        };
        check_ack(c.register(7_300_001, 1, &[]).unwrap());
        check_ack(c.register(7_300_002, 1, &[]).unwrap());
        // Round trips until the router has watched, for at most half the lease: a busy
        // machine may leave the shard no watch in a first few hundred (its looks more than
        // 10 µs apart count for nothing), but a lease still in force would take 3 s.
        let before = watched(&mut c);
        let (started, mut i) = (std::time::Instant::now(), 0);
        while watched(&mut c) == before && started.elapsed() < Duration::from_millis(1_500) {
            for _ in 0..100 {
                send(&mut c, data(DataKind::Direct, 7_300_001, 7_300_002, i, b"ping"));
                recv_data(&mut c);
                i += 1;
            }
        }
        assert!(watched(&mut c) > before, "the router still takes core 0 for shared ({i} trips)");
    }
}

#[test]
fn agent_id_zero_is_reserved() {
    // Proves agent id 0, the "no agent" marker of errors, cannot be registered, on every router.
    for kind in RouterKind::ALL {
        let r = start(Setup { kind, transport: Transport::Tcp, io: Default::default() }, 1, |_| {});
        let mut c = r.connect();
        let answer = c.register(0, 0, &[]).expect("register answered");
        assert_eq!(error_code(&answer), ErrorCode::InvalidRequest.code(), "{kind}: {answer:?}");
        r.stop();
    }
}

#[test]
fn the_stats_command_says_how_many_messages_each_frame_carried() {
    // Proves `a2a-bench stats` prints frames in and out with messages per frame, on every
    // router, as the router counted them: three messages sent in one frame after two
    // registrations; the stats request's own frame may be counted by the time it is answered.
    // It prints the time each shard watched, and the router's heartbeat timeout, too.
    for kind in RouterKind::ALL {
        let r = start(Setup { kind, transport: Transport::Tcp, io: Default::default() }, 1, |_| {});
        let mut a = agent(&r, 1, 0, &[]);
        let mut b = agent(&r, 2, 0, &[]);
        let three: Vec<_> = (0..3).map(|i| data(DataKind::Direct, 1, 2, 10 + i, b"x")).collect();
        a.send(&three.into_iter().map(Message::Data).collect::<Vec<_>>()).expect("send");
        for _ in 0..3 {
            recv_data(&mut b);
        }
        let sum = |f: fn(&a2a_bench::wire::ShardStats) -> u64| r.stats().iter().map(f).sum::<u64>();
        let (frames_in, frames_out) = (sum(|s| s.batches_in), sum(|s| s.batches_out));
        // In: data messages only; out: everything written, acks included.
        assert_eq!((frames_in, sum(|s| s.msgs_in), sum(|s| s.msgs_out)), (3, 3, 5), "{kind}");
        let url = format!("tcp://{}", r.addr());
        let out = run_bin(&["stats", "--router", &url], Duration::from_secs(20));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{kind}: {text}");
        let wants = [frames_in, frames_in + 1].map(|f| {
            format!(
                "frames in {f} ({:.1} data messages each), frames out {frames_out} ({:.1} messages each)",
                3.0 / f as f64,
                5.0 / frames_out as f64
            )
        });
        assert!(wants.iter().any(|w| text.contains(w)), "{kind}: {text} (wanted one of {wants:?})");
        // And the time the shard only watched for input (0 for a router that waits in epoll).
        assert!(text.contains(" watched ") && text.contains(" ms\n"), "{kind}: {text}");
        if kind != RouterKind::Glommio {
            assert!(text.contains(" watched 0.0 ms"), "{kind}: {text}");
        }
        // And the router's heartbeat timeout (the default), which every router says.
        assert!(text.contains("heartbeat timeout 30 s"), "{kind}: {text}");
        r.stop();
    }
}
