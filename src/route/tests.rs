//! Unit tests of the routing core without sockets or runtime: shards are driven by hand and
//! peer messages pumped between them, so cross-shard orderings are deterministic.

use std::task::{Context, Poll, Waker};

use super::*;
use crate::wire::control::Register;
use crate::wire::frame::encode_frame;
use crate::wire::{decode_frame, Control, DataKind, Envelope};

use crate::testing::counting;

fn frame(msgs: &[Message<'_>]) -> Vec<u8> {
    encode_frame(msgs, Compression::None, &mut BufferPool::default())
}

fn register(agent: u32) -> Message<'static> {
    register_typed(agent, 1)
}

fn register_typed(agent: u32, agent_type: u32) -> Message<'static> {
    Message::Control(Control::Register(Register {
        request_id: u64::from(agent),
        agent_id: AgentId(agent),
        agent_type,
        name: format!("agent-{agent}"),
        capabilities: vec![],
        topics: vec![],
        token: None,
    }))
}

/// Everything connection `id` has queued, decoded.
fn drain(shard: &mut Shard, id: ConnId) -> Vec<Message<'static>> {
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = Vec::new();
    while let Poll::Ready(Some(bytes)) = shard.poll_output(id, &mut cx) {
        let mut scratch = Vec::new();
        let (_, batch) = decode_frame(&bytes, &Limits::DEFAULT, &mut scratch).unwrap().unwrap();
        for item in batch {
            out.push(match item.unwrap().0 {
                Message::Control(c) => Message::Control(c),
                Message::Data(e) => {
                    Message::Data(Envelope { payload: e.payload.to_vec().leak(), ..e })
                }
            });
        }
        shard.output_done(bytes);
    }
    out
}

/// Moves peer messages between shards until none is left.
fn pump(shards: &mut [Shard]) {
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        let mut moved = false;
        for from in 0..shards.len() {
            for to in 0..shards.len() {
                if from == to {
                    continue;
                }
                for lane in [peer::Lane::Control, peer::Lane::Data] {
                    while let Poll::Ready(Some(msg)) =
                        shards[from].poll_peer_output(to as u16, lane, &mut cx)
                    {
                        shards[to].on_peer(from as u16, msg);
                        moved = true;
                    }
                }
            }
        }
        if !moved {
            return;
        }
    }
}

fn shards(n: u16) -> Vec<Shard> {
    (0..n).map(|i| Shard::new(ShardConfig::new(i, n))).collect()
}

fn acks(msgs: &[Message<'_>]) -> usize {
    msgs.iter().filter(|m| matches!(m, Message::Control(Control::Ack(_)))).count()
}

#[test]
fn registry_costs_under_a_kibibyte_per_agent() {
    // Proves the registry's memory per agent: 10,000 agents registered on a 2-shard router
    // (so each is also in the other shard's directory) cost ≤ 1 KiB each, all shards counted.
    let mut s = shards(2);
    let conn = s[0].open_conn();
    let agents = 10_000u32;
    let frames: Vec<Vec<u8>> = (0..agents / 100)
        .map(|f| frame(&(1..=100).map(|i| register(f * 100 + i)).collect::<Vec<_>>()))
        .collect();
    // Warm the pools and tables so their first allocations are not charged to the agents.
    let warm = s[0].open_conn();
    let warm_frame = frame(&[register(1_000_000)]);
    s[0].on_input(warm, &warm_frame);
    pump(&mut s);
    drain(&mut s[0], warm);

    let before = counting::live();
    for f in &frames {
        assert_eq!(s[0].on_input(conn, f).consumed, f.len());
        pump(&mut s);
        assert_eq!(acks(&drain(&mut s[0], conn)), 100);
    }
    let per_agent = (counting::live() - before) / agents as isize;
    assert_eq!((s[0].local_agents(), s[1].known_agents()), (10_001, 10_001));
    eprintln!("registry: {per_agent} bytes per agent (2 shards, name of ~10 bytes)");
    assert!(per_agent <= 1024, "{per_agent} bytes per agent");
}

#[test]
fn two_shards_racing_for_one_id_accept_exactly_one() {
    // Proves the owner-shard claim: the same id registered on both shards at once is accepted
    // once and refused once.
    let mut s = shards(2);
    let (a, b) = (s[0].open_conn(), s[1].open_conn());
    s[0].on_input(a, &frame(&[register(7)]));
    s[1].on_input(b, &frame(&[register(7)]));
    pump(&mut s);
    let (ra, rb) = (drain(&mut s[0], a), drain(&mut s[1], b));
    let errors = |m: &[Message<'_>]| {
        m.iter().filter(|m| matches!(m, Message::Control(Control::Error(e)) if e.code == ErrorCode::DuplicateAgent.code())).count()
    };
    assert_eq!((acks(&ra) + acks(&rb), errors(&ra) + errors(&rb)), (1, 0), "the loser waits");
    // The loser waits for the holder to go, at most REREGISTER_WAIT_NS, then is refused.
    let late = s[1].now_ns + control::REREGISTER_WAIT_NS + 1;
    for shard in s.iter_mut() {
        shard.tick(late);
    }
    pump(&mut s);
    let (ra, rb) = (drain(&mut s[0], a), drain(&mut s[1], b));
    assert_eq!(errors(&ra) + errors(&rb), 1);
}

#[test]
fn a_reregistration_waits_for_the_old_connection_to_go() {
    // Proves the reconnect race is closed: an agent whose old connection (on shard 0) is still
    // being torn down re-registers from a new connection on shard 1; the registration waits
    // instead of failing, and is acknowledged once the old connection is gone.
    let mut s = shards(2);
    let old = s[0].open_conn();
    s[0].on_input(old, &frame(&[register(7)]));
    pump(&mut s);
    assert_eq!(acks(&drain(&mut s[0], old)), 1);
    let new = s[1].open_conn();
    s[1].on_input(new, &frame(&[register(7)]));
    pump(&mut s);
    assert!(drain(&mut s[1], new).is_empty(), "no answer while the old registration stands");
    s[0].close_conn(old);
    pump(&mut s);
    let now = s[1].now_ns + 1;
    s[1].tick(now);
    pump(&mut s);
    assert_eq!(acks(&drain(&mut s[1], new)), 1);
}

#[test]
fn an_ack_means_every_shard_can_route_to_the_agent() {
    // Proves the sync round: registration is acked only after the peer knows the agent, so the
    // first message from the other shard after the ack is delivered, not refused.
    let mut s = shards(2);
    let (a, b) = (s[0].open_conn(), s[1].open_conn());
    s[0].on_input(a, &frame(&[register(1)]));
    assert_eq!(acks(&drain(&mut s[0], a)), 0, "no ack before the peer has applied it");
    pump(&mut s);
    assert_eq!(acks(&drain(&mut s[0], a)), 1);
    s[1].on_input(b, &frame(&[register(2)]));
    pump(&mut s);
    drain(&mut s[1], b);
    s[1].on_input(b, &frame(&[data(DataKind::Direct, 2, 1, 5, b"x")]));
    pump(&mut s);
    let got = drain(&mut s[0], a);
    assert!(matches!(&got[..], [Message::Data(e)] if e.message_id == 5), "{got:?}");
}

#[test]
fn a_drain_hears_at_the_message_that_fills_a_connection() {
    // Proves the signal that stops a loop applying peer messages (`Shard::take_peers_told`):
    // it is raised by the peer batch that pushes a connection past its bound, not before,
    // once, and the notice to the sender's shard is then waiting on the control lane.
    let mut s: Vec<Shard> = (0..2)
        .map(|i| {
            let mut cfg = ShardConfig::new(i, 2);
            cfg.conn_queue_bytes_max = 8 << 10;
            cfg.compression = Compression::None;
            Shard::new(cfg)
        })
        .collect();
    let (rx, tx) = (s[0].open_conn(), s[1].open_conn());
    s[0].on_input(rx, &frame(&[register(1)]));
    s[1].on_input(tx, &frame(&[register(2)]));
    pump(&mut s);
    drain(&mut s[0], rx);
    drain(&mut s[1], tx);
    assert!(!s[0].take_peers_told());
    let payload = [7u8; 1000];
    let mut cx = Context::from_waker(Waker::noop());
    let mut batches = 0;
    for round in 0..8u64 {
        // Four messages a round, each round its own peer batch.
        let msgs: Vec<Message<'_>> =
            (0..4).map(|i| data(DataKind::Direct, 2, 1, round * 4 + i, &payload)).collect();
        s[1].on_input(tx, &frame(&msgs));
        let Poll::Ready(Some(batch)) = s[1].poll_peer_output(0, peer::Lane::Data, &mut cx) else {
            panic!("round {round}: nothing for shard 0");
        };
        let before = s[0].stats().conn_queue_bytes_hwm;
        s[0].on_peer(1, batch);
        batches += 1;
        let after = s[0].stats().conn_queue_bytes_hwm;
        let told = s[0].take_peers_told();
        assert_eq!(
            told,
            before <= 8 << 10 && after > 8 << 10,
            "batch {batches}: {before} -> {after}"
        );
        if told {
            break;
        }
    }
    assert!(batches > 1, "the bound holds more than one batch");
    assert!(!s[0].take_peers_told(), "raised once");
    let told = s[0].poll_peer_output(1, peer::Lane::Control, &mut cx);
    assert!(
        matches!(told, Poll::Ready(Some(PeerMsg::Congested { on: true, .. }))),
        "the notice waits on the control lane: {told:?}"
    );
}

/// `n` shards that never compress, so that frames keep their size.
fn plain_shards(n: u16) -> Vec<Shard> {
    (0..n)
        .map(|i| {
            let mut cfg = ShardConfig::new(i, n);
            cfg.compression = Compression::None;
            Shard::new(cfg)
        })
        .collect()
}

/// A data message of `kind` from agent `from` to `to` (an agent, a type or a topic).
fn data(kind: DataKind, from: u32, to: u32, id: u64, payload: &[u8]) -> Message<'_> {
    Message::Data(Envelope {
        kind,
        sender: AgentId(from),
        to,
        message_id: id,
        correlation_id: 0,
        timestamp_ns: 0,
        msg_type: 0,
        priority: 5,
        ttl_ms: 0,
        payload,
    })
}

/// Moves every frame queued for `conns` (shard, connection) to the writer and back; the bytes.
fn write_out(s: &mut [Shard], conns: &[(usize, ConnId)]) -> usize {
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = 0;
    for &(shard, id) in conns {
        while let Poll::Ready(Some(bytes)) = s[shard].poll_output(id, &mut cx) {
            out += bytes.len();
            s[shard].output_done(bytes);
        }
    }
    out
}

/// Runs `round` 64 times to warm pools and tables (each must write something), then 1,000
/// times counting this thread's allocations: `(allocations, bytes written)`.
fn allocations_once_warm(mut round: impl FnMut(usize) -> usize) -> (u64, usize) {
    for i in 0..64 {
        assert!(round(i) > 0, "warm-up round {i} wrote nothing");
    }
    let before = counting::calls();
    let out = (0..1_000).map(&mut round).sum();
    (counting::calls() - before, out)
}

#[test]
fn routing_data_allocates_nothing_per_message() {
    // Proves the hot path's discipline: once pools and tables are warm, routing data messages
    // (decode, look-up, append to the recipient's frame, seal, hand the frame to the writer
    // and take it back) allocates nothing, on one shard and across two, both ways (as replies
    // go). One way only: `a_one_way_flow_between_shards_allocates_nothing_once_batches_go_back`.
    let mut s = plain_shards(2);
    let (a, b, c) = (s[0].open_conn(), s[0].open_conn(), s[1].open_conn());
    s[0].on_input(a, &frame(&[register(1)]));
    s[0].on_input(b, &frame(&[register(2)]));
    s[1].on_input(c, &frame(&[register(3)]));
    pump(&mut s);
    for (shard, id) in [(0, a), (0, b), (1, c)] {
        drain(&mut s[shard], id);
    }
    let payload = [7u8; 64];
    // Agent 1 sends 64 a frame, half to agent 2 (same shard), half to agent 3 (the other
    // shard); agent 3 answers each of the latter.
    let frames: Vec<(Vec<u8>, Vec<u8>)> = (0..4u64)
        .map(|f| {
            let to = |i: u64| 2 + (i as u32 % 2);
            let ones: Vec<_> =
                (0..64).map(|i| data(DataKind::Direct, 1, to(i), f * 64 + i, &payload)).collect();
            let threes: Vec<_> =
                (0..32).map(|i| data(DataKind::Direct, 3, 1, f * 64 + i, &payload)).collect();
            (frame(&ones), frame(&threes))
        })
        .collect();
    let (allocs, out) = allocations_once_warm(|i| {
        let (one, three) = &frames[i % frames.len()];
        assert_eq!(s[0].on_input(a, one).consumed, one.len());
        assert_eq!(s[1].on_input(c, three).consumed, three.len());
        pump(&mut s);
        write_out(&mut s, &[(0, a), (0, b), (1, c)])
    });
    let messages = 1_000 * (64 + 32);
    assert!(out >= messages * payload.len(), "{out} bytes out for {messages} messages");
    let (s0, s1) = (s[0].stats(), s[1].stats());
    assert!(s0.errors.is_empty() && s1.errors.is_empty(), "{:?} {:?}", s0.errors, s1.errors);
    assert_eq!(s0.msgs_in + s1.msgs_in, (64 + 1_000) * (64 + 32));
    assert!(s0.cross_shard_out > 0 && s1.cross_shard_out > 0);
    eprintln!("routing: {allocs} allocations for {messages} messages");
    assert_eq!(allocs, 0, "{allocs} allocations for {messages} messages");
}

#[test]
fn fanning_out_allocates_nothing_per_message() {
    // Proves the fan-out paths' discipline, once warm: a publication to a topic with two local
    // subscribers and a broadcast to every agent of a type (each one copy per recipient
    // connection) allocate nothing.
    let mut s = plain_shards(1);
    let conns: Vec<ConnId> = (0..3).map(|_| s[0].open_conn()).collect();
    for (i, &c) in conns.iter().enumerate() {
        let Message::Control(Control::Register(mut r)) = register(1 + i as u32) else {
            unreachable!()
        };
        r.topics = vec![TopicId(7)];
        s[0].on_input(c, &frame(&[Message::Control(Control::Register(r))]));
    }
    pump(&mut s);
    for &c in &conns {
        drain(&mut s[0], c);
    }
    let payload = [7u8; 64];
    let f = frame(
        &(0..32u64)
            .map(|i| match i % 2 {
                0 => data(DataKind::Publish, 1, 7, i, &payload),
                _ => data(DataKind::Broadcast, 1, 1, i, &payload),
            })
            .collect::<Vec<_>>(),
    );
    let (allocs, out) = allocations_once_warm(|_| {
        assert_eq!(s[0].on_input(conns[0], &f).consumed, f.len());
        write_out(&mut s, &[(0, conns[1]), (0, conns[2])])
    });
    let stats = s[0].stats();
    assert!(stats.errors.is_empty(), "{:?}", stats.errors);
    // Each of the 32 messages a round reaches two connections.
    assert!(out >= 1_000 * 32 * 2 * payload.len(), "{out} bytes out");
    eprintln!("fan-out: {allocs} allocations for 64,000 deliveries");
    assert_eq!(allocs, 0, "{allocs} allocations for 64,000 deliveries");
}

#[test]
fn a_one_way_flow_between_shards_allocates_nothing_once_batches_go_back() {
    // Proves the return lane (`peer::Returns`): a flow that only goes from shard 0 to shard 1
    // allocates nothing once warm, each batch's buffer going back to shard 0 when its records
    // are delivered; without the lane, shard 0 allocated one per batch (and shard 1's pool
    // kept or freed them). A full lane leaves the buffer with the receiver.
    let mut s = plain_shards(2);
    let (r0, r1) = peer::Returns::pair();
    s[0].set_returns(1, r0);
    s[1].set_returns(0, r1);
    let (a, c) = (s[0].open_conn(), s[1].open_conn());
    s[0].on_input(a, &frame(&[register(1)]));
    s[1].on_input(c, &frame(&[register(3)]));
    pump(&mut s);
    drain(&mut s[0], a);
    drain(&mut s[1], c);
    let payload = [7u8; 64];
    let f =
        frame(&(0..64u64).map(|i| data(DataKind::Direct, 1, 3, i, &payload)).collect::<Vec<_>>());
    let (allocs, out) = allocations_once_warm(|_| {
        assert_eq!(s[0].on_input(a, &f).consumed, f.len());
        pump(&mut s);
        write_out(&mut s, &[(1, c)])
    });
    assert!(out >= 64_000 * payload.len(), "{out} bytes out");
    assert_eq!(s[1].stats().cross_shard_in, (64 + 1_000) * 64);
    eprintln!("one way between shards: {allocs} allocations for 64,000 messages");
    assert_eq!(allocs, 0, "{allocs} allocations for 64,000 messages");
}

/// Two shards with these bounds that never compress, so that frames keep their size.
fn bounded_shards(conn_max: usize, peer_max: usize) -> Vec<Shard> {
    (0..2)
        .map(|i| {
            let mut cfg = ShardConfig::new(i, 2);
            cfg.conn_queue_bytes_max = conn_max;
            cfg.peer_queue_bytes_max = peer_max;
            cfg.compression = Compression::None;
            Shard::new(cfg)
        })
        .collect()
}

/// Two shards with these bounds; agent 1 on shard 0, agents 2 and 3 on shard 1, registered
/// and their answers read. The connections of agents 1, 2 and 3.
fn three_agents(conn_max: usize, peer_max: usize) -> (Vec<Shard>, [ConnId; 3]) {
    let mut s = bounded_shards(conn_max, peer_max);
    let conns = [s[0].open_conn(), s[1].open_conn(), s[1].open_conn()];
    for (i, id) in conns.into_iter().enumerate() {
        let shard = usize::from(i > 0);
        s[shard].on_input(id, &frame(&[register(i as u32 + 1)]));
    }
    pump(&mut s);
    for (i, id) in conns.into_iter().enumerate() {
        drain(&mut s[usize::from(i > 0)], id);
    }
    (s, conns)
}

/// Feeds connection `id` one frame of `n` direct messages of 1,000 bytes from agent `from` to
/// agent `to`, and checks that all of it was taken in.
fn feed_direct(shard: &mut Shard, id: ConnId, from: u32, to: u32, n: u64) {
    let payload = [7u8; 1000];
    let msgs: Vec<Message<'_>> =
        (0..n).map(|i| data(DataKind::Direct, from, to, i, &payload)).collect();
    let one = frame(&msgs);
    assert_eq!(shard.on_input(id, &one).consumed, one.len());
}

/// [`three_agents`], and shard 1 told that agent 1's connection is past its bound.
fn one_remote_agent_congested(conn_max: usize, peer_max: usize) -> (Vec<Shard>, [ConnId; 3]) {
    let (mut s, conns) = three_agents(conn_max, peer_max);
    s[1].on_peer(0, PeerMsg::Congested { agents: vec![AgentId(1)], on: true });
    (s, conns)
}

#[test]
fn an_input_waits_for_the_peer_queue_it_pushed_past_its_bound_after_another() {
    // Proves the peer queue's bound holds when the input that pushed it past its bound had
    // already been paused on something else: its first message went to an agent whose remote
    // connection is congested, the rest filled the peer queue. Once that connection drains,
    // the input still waits, now for the peer queue to drain to half its bound (it passed its
    // bound by one frame, and not by one more). CI saw the second frame, over WebSocket.
    let peer_max = 32 << 10;
    let (mut s, [rx, tx, _]) = one_remote_agent_congested(256 << 10, peer_max);
    feed_direct(&mut s[1], tx, 2, 1, 40);
    assert!(s[1].stats().peer_queue_bytes_hwm > peer_max as u64, "the frame passed the bound");
    let mut cx = Context::from_waker(Waker::noop());
    assert!(s[1].poll_gate(Source::Conn(tx), &mut cx).is_pending(), "paused on agent 1");
    s[1].on_peer(0, PeerMsg::Congested { agents: vec![AgentId(1)], on: false });
    let mut taken = Vec::new();
    while s[1].poll_gate(Source::Conn(tx), &mut cx).is_pending() {
        match s[1].poll_peer_output(0, peer::Lane::Data, &mut cx) {
            Poll::Ready(Some(msg)) => taken.push(msg),
            other => panic!("the gate waits on a peer queue with nothing to take: {other:?}"),
        }
    }
    assert!(!taken.is_empty(), "agent 1's connection drained, but the peer queue had not");
    taken.into_iter().for_each(|msg| s[0].on_peer(1, msg));
    assert_eq!(drain(&mut s[0], rx).len(), 40, "every message is delivered");
}

#[test]
fn an_input_waits_for_a_connection_here_it_pushed_past_its_bound_after_another() {
    // Proves a connection's bound holds in the same case: the input's first message went to
    // the congested remote agent, the next ones past the bound of a connection on its own
    // shard. It waits for that connection to drain to half its bound, whatever became of the
    // remote one and of the peer queue.
    let conn_max = 8 << 10;
    let (mut s, [rx, tx, local]) = one_remote_agent_congested(conn_max, 1 << 20);
    let payload = [7u8; 1000];
    let msgs: Vec<Message<'_>> = (0..12)
        .map(|i| data(DataKind::Direct, 2, if i == 0 { 1 } else { 3 }, i, &payload))
        .collect();
    let one = frame(&msgs);
    assert_eq!(s[1].on_input(tx, &one).consumed, one.len());
    assert!(s[1].stats().conn_queue_bytes_hwm > conn_max as u64, "the frame passed the bound");
    let mut cx = Context::from_waker(Waker::noop());
    s[1].on_peer(0, PeerMsg::Congested { agents: vec![AgentId(1)], on: false });
    pump(&mut s);
    assert_eq!(drain(&mut s[0], rx).len(), 1);
    assert!(
        s[1].poll_gate(Source::Conn(tx), &mut cx).is_pending(),
        "agent 1's connection and the peer queue drained, but agent 3's connection had not"
    );
    assert_eq!(drain(&mut s[1], local).len(), 11);
    assert!(s[1].poll_gate(Source::Conn(tx), &mut cx).is_ready());
}

#[test]
fn an_input_waits_for_every_connection_its_broadcast_pushed_past_its_bound() {
    // Proves a broadcast's overshoot is one frame for each of its slow receivers: both
    // receivers' queues passed their bound, and whichever drains first, the sender still
    // waits for the other (before, only the first one found was waited on, and the other took
    // a second frame).
    let conn_max = 8 << 10;
    for first in [0, 1] {
        let mut s = bounded_shards(conn_max, 1 << 20);
        let conns = [s[0].open_conn(), s[0].open_conn(), s[0].open_conn()];
        for (i, id) in conns.into_iter().enumerate() {
            s[0].on_input(id, &frame(&[register(i as u32 + 1)]));
        }
        pump(&mut s);
        conns.into_iter().for_each(|id| drop(drain(&mut s[0], id)));
        let [tx, rx @ ..] = conns;
        let payload = [7u8; 1000];
        let msgs: Vec<Message<'_>> =
            (0..12).map(|i| data(DataKind::Broadcast, 1, 0, i, &payload)).collect();
        let one = frame(&msgs);
        assert_eq!(s[0].on_input(tx, &one).consumed, one.len());
        let mut cx = Context::from_waker(Waker::noop());
        assert!(s[0].poll_gate(Source::Conn(tx), &mut cx).is_pending());
        assert_eq!(drain(&mut s[0], rx[first]).len(), 12);
        assert!(
            s[0].poll_gate(Source::Conn(tx), &mut cx).is_pending(),
            "receiver {first} drained, the other had not"
        );
        assert_eq!(drain(&mut s[0], rx[1 - first]).len(), 12);
        assert!(s[0].poll_gate(Source::Conn(tx), &mut cx).is_ready());
    }
}

#[test]
fn an_input_waits_for_a_congested_remote_agent_it_sent_to_after_a_full_connection() {
    // Proves the remote agent's pause holds when the input had first pushed a connection on
    // its own shard past its bound: that connection drained, but the input still waits until
    // the remote agent's shard says its connection drained.
    let conn_max = 8 << 10;
    let (mut s, [_, tx, local]) = one_remote_agent_congested(conn_max, 1 << 20);
    let payload = [7u8; 1000];
    let msgs: Vec<Message<'_>> = (0..12)
        .map(|i| data(DataKind::Direct, 2, if i < 11 { 3 } else { 1 }, i, &payload))
        .collect();
    let one = frame(&msgs);
    assert_eq!(s[1].on_input(tx, &one).consumed, one.len());
    let mut cx = Context::from_waker(Waker::noop());
    assert!(s[1].poll_gate(Source::Conn(tx), &mut cx).is_pending());
    assert_eq!(drain(&mut s[1], local).len(), 11);
    assert!(
        s[1].poll_gate(Source::Conn(tx), &mut cx).is_pending(),
        "agent 3's connection drained, but agent 1's is still past its bound"
    );
    s[1].on_peer(0, PeerMsg::Congested { agents: vec![AgentId(1)], on: false });
    assert!(s[1].poll_gate(Source::Conn(tx), &mut cx).is_ready());
}

#[test]
fn a_full_peer_queue_pauses_only_the_inputs_that_sent_to_it() {
    // Proves an input that waited on a connection here opens when that connection drains,
    // although another input's frame left the peer queue past its bound: this one never sent
    // to that peer (before, any input that had waited also waited on every full peer queue).
    let peer_max = 32 << 10;
    let (mut s, [_, a, b]) = three_agents(8 << 10, peer_max);
    feed_direct(&mut s[1], a, 2, 1, 40);
    assert!(s[1].stats().peer_queue_bytes_hwm > peer_max as u64, "the frame passed the bound");
    feed_direct(&mut s[1], b, 3, 2, 12);
    let mut cx = Context::from_waker(Waker::noop());
    assert!(s[1].poll_gate(Source::Conn(a), &mut cx).is_pending(), "a waits for the peer");
    assert!(s[1].poll_gate(Source::Conn(b), &mut cx).is_pending(), "b waits for a's queue");
    assert_eq!(drain(&mut s[1], a).len(), 12);
    assert!(
        s[1].poll_gate(Source::Conn(b), &mut cx).is_ready(),
        "b waited on a's connection only, which drained"
    );
    assert!(s[1].poll_gate(Source::Conn(a), &mut cx).is_pending(), "the peer queue is still full");
}

#[test]
fn output_taken_by_another_task_leaves_the_writer_woken_for_the_next() {
    // Proves `take_output` (a JSON connection's reader taking its answer) hands out what is
    // queued without taking the writer's place: a writer registered with `poll_output` is
    // still woken by output queued after an empty take, and after a take that emptied the
    // queue it finds nothing, registers again, and is woken for what comes next.
    struct Woken(std::sync::atomic::AtomicUsize);
    impl std::task::Wake for Woken {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let woken = std::sync::Arc::new(Woken(std::sync::atomic::AtomicUsize::new(0)));
    let wakes = || woken.0.load(std::sync::atomic::Ordering::Relaxed);
    let writer = Waker::from(woken.clone());
    let mut shard = Shard::new(ShardConfig::new(0, 1));
    let id = shard.open_conn();
    assert!(shard.poll_output(id, &mut Context::from_waker(&writer)).is_pending());
    assert!(shard.take_output(id).is_none(), "nothing queued yet");
    shard.on_input(id, &frame(&[register(1)]));
    assert_eq!(wakes(), 1, "the writer is woken for the answer");
    let taken = shard.take_output(id).expect("the registration's ack");
    shard.output_done(taken);
    assert!(shard.take_output(id).is_none());
    assert!(shard.poll_output(id, &mut Context::from_waker(&writer)).is_pending());
    shard.on_input(id, &frame(&[register(2)]));
    assert_eq!(wakes(), 2, "and for what comes after the reader took that answer");
    assert_eq!(acks(&drain(&mut shard, id)), 1);
}

#[test]
fn only_inputs_that_spread_wide_let_writers_gather() {
    // Proves `Spread`: after a tick in which each input went to many connections (a mesh),
    // a small queue may be held back (`output_to_gather` gives its bytes); after one in which
    // inputs went to one or two (a ring, both ways), or with no input at all, never. A
    // closing connection's queue is never held.
    let mut s = plain_shards(1).remove(0);
    let conns: Vec<ConnId> = (0..8).map(|_| s.open_conn()).collect();
    for (i, &c) in conns.iter().enumerate() {
        s.on_input(c, &frame(&[register(i as u32 + 1)]));
    }
    for &c in &conns {
        drain(&mut s, c);
    }
    let payload = [1u8; 16];
    let to_all: Vec<_> =
        (2..=8).map(|to| data(DataKind::Direct, 1, to, u64::from(to), &payload)).collect();
    let both_ways: Vec<_> = (0..8u32)
        .map(|i| data(DataKind::Direct, 1, 2 + i % 2 * 6, u64::from(i), &payload))
        .collect();
    let (wide, narrow) = (frame(&to_all), frame(&both_ways));
    let now = clock::now_ns();

    for _ in 0..10 {
        s.on_input(conns[0], &narrow);
    }
    s.tick(now);
    assert_eq!(s.output_to_gather(conns[1]), 0, "inputs to two connections each");

    for _ in 0..10 {
        s.on_input(conns[0], &wide);
    }
    s.tick(now);
    let queued = s.output_to_gather(conns[1]);
    assert!(queued > 0, "inputs to seven connections each: a small queue may wait");
    assert_eq!(s.output_to_gather(conns[0]), 0, "nothing queued for the sender");
    s.close_conn(conns[2]);
    assert_eq!(s.output_to_gather(conns[2]), 0, "a closing connection's queue goes at once");

    s.tick(now);
    assert_eq!(s.output_to_gather(conns[1]), 0, "a tick with no input: no gathering");
}

/// A step of [`backpressure_bounds_hold_and_everything_arrives`].
#[derive(Debug, Clone)]
enum Step {
    /// Sender `0..3` on shard 1 sends a frame of `n` messages, if its gate lets it; message
    /// `m` goes where bits `2m..2m+2` of `dests` say: to the receiver on shard 0, to one of
    /// the two on shard 1, or broadcast to all three.
    Send { sender: usize, n: usize, dests: u64 },
    /// Up to this many data batches move from shard 1 to shard 0; control moves both ways.
    Pump(usize),
    /// Receiver `0..3` (the one on shard 0, the two on shard 1) reads up to this many frames.
    Read(usize, usize),
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        6 => (0..3usize, 1..12usize, any::<u64>())
            .prop_map(|(sender, n, dests)| Step::Send { sender, n, dests }),
        2 => (0..2usize).prop_map(Step::Pump),
        3 => (0..3usize, 0..3usize).prop_map(|(which, n)| Step::Read(which, n)),
    ]
}

/// Moves every control message between the two shards, and up to `data` data batches from
/// shard 1 to shard 0.
fn pump_some(s: &mut [Shard], data: usize) {
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..data {
        match s[1].poll_peer_output(0, peer::Lane::Data, &mut cx) {
            Poll::Ready(Some(msg)) => s[0].on_peer(1, msg),
            _ => break,
        }
    }
    loop {
        let mut moved = false;
        for (from, to) in [(0usize, 1usize), (1, 0)] {
            while let Poll::Ready(Some(msg)) =
                s[from].poll_peer_output(to as u16, peer::Lane::Control, &mut cx)
            {
                s[to].on_peer(from as u16, msg);
                moved = true;
            }
        }
        if !moved {
            return;
        }
    }
}

/// Reads up to `frames` frames queued for `id`; the data messages among them.
fn read_some(shard: &mut Shard, id: ConnId, frames: usize) -> usize {
    let mut cx = Context::from_waker(Waker::noop());
    let mut got = 0;
    for _ in 0..frames {
        let Poll::Ready(Some(bytes)) = shard.poll_output(id, &mut cx) else { break };
        let mut scratch = Vec::new();
        let (_, batch) = decode_frame(&bytes, &Limits::DEFAULT, &mut scratch).unwrap().unwrap();
        got += batch.filter(|m| matches!(m, Ok((Message::Data(_), _)))).count();
        shard.output_done(bytes);
    }
    got
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1024))]

    #[test]
    fn backpressure_bounds_hold_and_everything_arrives(
        n_senders in 1..=3usize,
        steps in proptest::collection::vec(step(), 1..200)
    ) {
        // Proves, for any interleaving of one to three senders on one shard (each feeding a frame
        // only when its gate lets it, as a reader does), a receiver on the other shard and two
        // on the senders' that read when they like, and the peer lanes moving when they like:
        // a sender whose frame (direct messages or broadcasts) went to the peer outbox or to a
        // receiver's queue here and left it past its bound feeds nothing more until that queue
        // is back within it (CI once saw the outbox pass its bound by a second frame of one
        // sender; a broadcast's second slow receiver could take one too); so none holds more
        // than its bound plus one frame per sender; and once everything moves and is read,
        // every message sent has arrived and every gate is open.
        let (conn_max, peer_max) = (8 << 10, 32 << 10);
        let mut s = bounded_shards(conn_max, peer_max);
        let remote = s[0].open_conn();
        let locals = [s[1].open_conn(), s[1].open_conn()];
        let senders: Vec<ConnId> = (0..n_senders).map(|_| s[1].open_conn()).collect();
        // The receivers are of type 2, the senders of type 1: broadcasts to type 2 reach the
        // three receivers.
        s[0].on_input(remote, &frame(&[register_typed(1, 2)]));
        s[1].on_input(locals[0], &frame(&[register_typed(5, 2)]));
        s[1].on_input(locals[1], &frame(&[register_typed(6, 2)]));
        for (i, &id) in senders.iter().enumerate() {
            s[1].on_input(id, &frame(&[register(2 + i as u32)]));
        }
        pump(&mut s);
        drain(&mut s[0], remote);
        for id in locals.into_iter().chain(senders.iter().copied()) {
            drain(&mut s[1], id);
        }
        let payload = [7u8; 1000];
        // What the largest frame fed so far can add to a queue (a message's envelope is under
        // 100 bytes).
        let mut frame_max = 0;
        let mut cx = Context::from_waker(Waker::noop());
        let (mut sent, mut got) = (0usize, 0usize);
        // What each queue holds now, and its bound: the peer outbox, the local receivers'.
        let held = |s: &[Shard]| {
            [
                s[1].peers[0].queued_bytes,
                s[1].conns[locals[0].idx as usize].queued_bytes,
                s[1].conns[locals[1].idx as usize].queued_bytes,
            ]
        };
        let bound = [peer_max, conn_max, conn_max];
        // Per sender and queue: its last frame left that queue past its bound, and the queue
        // has not been back within its bound since.
        let mut past = vec![[false; 3]; n_senders];
        for (i, step) in steps.iter().enumerate() {
            match *step {
                Step::Send { sender, n, dests } => {
                    let k = sender % n_senders;
                    let id = senders[k];
                    if s[1].poll_gate(Source::Conn(id), &mut cx).is_pending() {
                        continue;
                    }
                    let now = held(&s);
                    proptest::prop_assert!(
                        (0..3).all(|q| !(past[k][q] && now[q] > bound[q])),
                        "step {}: sender {} fed again while a queue it pushed past its bound \
                         is still past it (outbox, local queues: {:?} B)", i, k, now
                    );
                    let from = 2 + k as u32;
                    // Which queues the frame went to: the outbox, the local receivers.
                    let mut went = [false; 3];
                    let msgs: Vec<Message<'_>> = (0..n)
                        .map(|m| {
                            let id = (i * 64 + m) as u64;
                            let (kind, to, reached) = match dests >> (2 * m) & 3 {
                                0 => (DataKind::Direct, 1, [true, false, false]),
                                1 => (DataKind::Direct, 5, [false, true, false]),
                                2 => (DataKind::Direct, 6, [false, false, true]),
                                _ => (DataKind::Broadcast, 2, [true; 3]),
                            };
                            (0..3).for_each(|q| went[q] |= reached[q]);
                            sent += reached.iter().filter(|&&r| r).count();
                            data(kind, from, to, id, &payload)
                        })
                        .collect();
                    let one = frame(&msgs);
                    proptest::prop_assert_eq!(s[1].on_input(id, &one).consumed, one.len());
                    frame_max = frame_max.max(n * (peer::RECORD_HEADER + 1100));
                    let now = held(&s);
                    past[k] = std::array::from_fn(|q| went[q] && now[q] > bound[q]);
                }
                Step::Pump(n) => pump_some(&mut s, n),
                Step::Read(0, n) => got += read_some(&mut s[0], remote, n),
                Step::Read(which, n) => got += read_some(&mut s[1], locals[which - 1], n),
            }
            let now = held(&s);
            for p in past.iter_mut() {
                (0..3).for_each(|q| p[q] &= now[q] > bound[q]);
            }
            let (peer_hwm, conn_hwm) =
                (s[1].stats().peer_queue_bytes_hwm, s[1].stats().conn_queue_bytes_hwm);
            proptest::prop_assert!(
                peer_hwm <= (peer_max + n_senders * frame_max) as u64,
                "step {}: peer outbox reached {} B", i, peer_hwm
            );
            proptest::prop_assert!(
                conn_hwm <= (conn_max + n_senders * frame_max) as u64,
                "step {}: a local receiver's queue reached {} B", i, conn_hwm
            );
        }
        // Everything moves and is read.
        for _ in 0..10_000 {
            pump_some(&mut s, usize::MAX);
            let before = got;
            got += read_some(&mut s[1], locals[0], usize::MAX);
            got += read_some(&mut s[1], locals[1], usize::MAX);
            got += read_some(&mut s[0], remote, usize::MAX);
            if got == before && got == sent {
                break;
            }
        }
        proptest::prop_assert_eq!(got, sent, "every message sent arrives");
        for &id in &senders {
            proptest::prop_assert!(s[1].poll_gate(Source::Conn(id), &mut cx).is_ready());
        }
    }
}

#[test]
fn an_idle_connection_with_one_agent_costs_its_shards_little() {
    // Proves what the shards hold for an idle connection with one agent (the part of the
    // router's bytes per own connection that is the routing core's, `docs/BENCHMARKS.md`):
    // its `Conn` (backpressure's and closing's part not allocated), its agent inline, the
    // agent's entry, one directory entry per shard, and what the registrations left behind
    // (claims' and peers' queues at their peak capacity, the pools). 4,000 connections on a
    // 2-shard router, each registering one agent and answered; heap bytes asked for (both
    // shards run on this thread): 1,260 before `Conn` lost its cold part and kept its agents
    // inline (2026-12-05), 1,154 after; then, once a tick gave back the room the claims and the
    // peers' queues grew to in the burst, 758 (1,154 before the tick); 692 once the queues of
    // sealed frames moved to the cold part (`Conn` 288 → 224 bytes).
    let mut s = shards(2);
    let n = 4_000u32;
    let before = counting::live();
    let conns: Vec<ConnId> = (0..n).map(|_| s[0].open_conn()).collect();
    for (i, &c) in conns.iter().enumerate() {
        let f = frame(&[register(i as u32 + 1)]);
        assert_eq!(s[0].on_input(c, &f).consumed, f.len());
    }
    pump(&mut s);
    for &c in &conns {
        assert_eq!(acks(&drain(&mut s[0], c)), 1);
    }
    let burst = (counting::live() - before) / n as isize;
    for sh in s.iter_mut() {
        let now = sh.now_ns;
        sh.tick(now + 1);
    }
    let per_conn = (counting::live() - before) / n as isize;
    assert_eq!((s[0].local_agents(), s[1].known_agents()), (n as usize, n as usize));
    let cold = conns.iter().filter(|c| s[0].conns[c.idx as usize].cold.is_some()).count();
    assert_eq!(cold, 0, "idle connections carrying backpressure's part");
    eprintln!(
        "an idle connection with one agent: {per_conn} bytes in its shards (2 shards); \
         {burst} before a tick gave back the registrations' room"
    );
    assert!(per_conn <= 750, "{per_conn} bytes per connection");
    assert!(burst - per_conn >= 200, "the burst's room kept: {burst} → {per_conn}");
}

#[test]
fn a_failed_connection_that_never_reads_is_cut_off_after_the_grace() {
    // Proves the flush deadline of a connection closing after an error (kept apart from an
    // idle connection's fields since 2026-12-05): its writer is released once the grace has
    // passed although the client never read the error, and not before.
    let mut s = shards(1);
    let id = s[0].open_conn();
    let input = s[0].on_input(id, b"XXXXXXXXXXXXXXXXXXXXXXXX");
    assert!(input.close, "bad magic must close the connection");
    let mut cx = Context::from_waker(Waker::noop());
    let start = s[0].now_ns;
    assert!(s[0].poll_closed(id, &mut cx).is_pending(), "cut off before its grace");
    s[0].tick(start + control::FLUSH_GRACE_NS / 2);
    assert!(s[0].poll_closed(id, &mut cx).is_pending(), "cut off before its grace");
    s[0].tick(start + control::FLUSH_GRACE_NS + 1_000_000_000);
    assert!(s[0].poll_closed(id, &mut cx).is_ready(), "never cut off");
}

#[test]
fn the_heap_is_trimmed_once_after_the_last_shard_let_its_burst_go() {
    // Proves the trim's timing (`HeapTrim`): none before any ebb, none while a later ebb on
    // another shard pushes it back, one caller only once due, and none after until the next.
    let t = HeapTrim::new();
    assert!(!t.take_due(u64::MAX), "a trim with no burst let go");
    t.ebbed(1_000);
    t.ebbed(50_000_000); // a second shard, later
    assert!(!t.take_due(1_000 + HEAP_TRIM_AFTER_NS), "due before the last shard's ebb was old");
    let due = 50_000_000 + HEAP_TRIM_AFTER_NS;
    assert!(!t.take_due(due - 1));
    assert!(t.take_due(due), "never due");
    assert!(!t.take_due(due + 1), "two shards trimmed for one burst");
    t.ebbed(due + 5);
    assert!(t.take_due(due + 5 + HEAP_TRIM_AFTER_NS), "the next burst's trim lost");
}

#[test]
fn an_agent_that_just_spoke_is_online_before_the_next_liveness_pass() {
    // Proves `Shard::heard_since`: two agents silent past the heartbeat timeout are marked
    // offline by the liveness pass; a message to one that stays silent is refused
    // (`recipient_offline`), while the answer to the agent that just sent it is delivered at
    // once, not refused until the next pass; a broadcast reaches it too, and not a third agent
    // still silent.
    let mut cfg = ShardConfig::new(0, 1);
    cfg.heartbeat_timeout = Duration::from_millis(200);
    let mut s = Shard::new(cfg);
    let (a, b, c) = (s.open_conn(), s.open_conn(), s.open_conn());
    s.on_input(a, &frame(&[register(1)]));
    s.on_input(b, &frame(&[register(2)]));
    s.on_input(c, &frame(&[register(3)]));
    assert_eq!(acks(&drain(&mut s, a)) + acks(&drain(&mut s, b)) + acks(&drain(&mut s, c)), 3);
    std::thread::sleep(Duration::from_millis(400)); // the silence under test
    s.tick(clock::now_ns());
    s.on_input(b, &frame(&[data(DataKind::Direct, 2, 1, 7, b"anyone?")]));
    let got = drain(&mut s, b);
    let offline = ErrorCode::RecipientOffline.code();
    assert!(
        matches!(&got[..], [Message::Control(Control::Error(e))] if e.code == offline),
        "a silent agent reached: {got:?}"
    );
    assert!(drain(&mut s, a).is_empty());
    s.on_input(a, &frame(&[data(DataKind::Broadcast, 1, 0, 9, b"all")]));
    let got = drain(&mut s, b);
    assert!(
        matches!(&got[..], [Message::Data(e)] if e.message_id == 9),
        "the broadcast missed the agent that just spoke: {got:?}"
    );
    assert!(drain(&mut s, c).is_empty(), "the broadcast reached a silent agent");
    s.on_input(a, &frame(&[data(DataKind::Direct, 1, 2, 8, b"here")]));
    let got = drain(&mut s, b);
    assert!(
        matches!(&got[..], [Message::Data(e)] if e.message_id == 8),
        "the agent that just spoke refused: {got:?}"
    );
}
