//! The seed system's JSON protocol on the router's WebSocket port: every message type, every
//! error, the reply order, and JSON agents talking with native ones.

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use a2a_bench::client::Received;
use a2a_bench::route::json::agent_id_of;
use a2a_bench::transport::Transport;
use a2a_bench::wire::{DataKind, Envelope, Message};
use serde_json::{json, Value};
use tungstenite::Message as Ws;

use a2a_bench::routers::RouterKind;

use crate::support::{agent, start, Setup};

/// A blocking JSON client, as the seed's agents are.
struct JsonClient {
    ws: tungstenite::WebSocket<TcpStream>,
}

impl JsonClient {
    fn connect(addr: SocketAddr, subprotocol: Option<&str>) -> JsonClient {
        use tungstenite::client::IntoClientRequest;
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut request = format!("ws://{addr}/a2a").into_client_request().unwrap();
        if let Some(p) = subprotocol {
            request.headers_mut().insert("Sec-WebSocket-Protocol", p.parse().unwrap());
        }
        let (ws, response) = tungstenite::client::client(request, stream).unwrap();
        if let Some(p) = subprotocol {
            assert_eq!(response.headers()["Sec-WebSocket-Protocol"], p);
        }
        JsonClient { ws }
    }

    fn send(&mut self, v: Value) {
        self.ws.send(Ws::Text(v.to_string().into())).unwrap();
    }

    fn send_raw(&mut self, text: &str) {
        self.ws.send(Ws::Text(text.to_string().into())).unwrap();
    }

    fn next(&mut self) -> Value {
        loop {
            match self.ws.read().expect("a message") {
                Ws::Text(t) => return serde_json::from_str(&t).unwrap(),
                Ws::Ping(_) | Ws::Pong(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    /// Sends `req`; returns the pushes that came before the reply, and the reply.
    fn call(&mut self, req: Value) -> (Vec<Value>, Value) {
        self.send(req);
        let mut pushes = Vec::new();
        loop {
            let m = self.next();
            if m["type"] == "ack" || m["type"] == "error" {
                return (pushes, m);
            }
            pushes.push(m);
        }
    }

    fn ack(&mut self, req: Value) -> Value {
        let (pushes, reply) = self.call(req.clone());
        assert!(pushes.is_empty(), "{req}: unexpected pushes {pushes:?}");
        assert_eq!(reply["type"], "ack", "{req} → {reply}");
        reply
    }

    fn error(&mut self, req: Value) -> String {
        let (_, reply) = self.call(req.clone());
        assert_eq!(reply["type"], "error", "{req} → {reply}");
        reply["error"].as_str().unwrap().to_string()
    }

    fn register(&mut self, id: &str, agent_type: &str) {
        let reply = self.ack(json!({"type": "register", "agent_id": id, "agent_type": agent_type}));
        assert_eq!(
            (reply["agent_id"].as_str(), reply["status"].as_str()),
            (Some(id), Some("registered"))
        );
    }
}

fn router(
    shards: usize,
    tweak: impl FnOnce(&mut a2a_bench::route::ShardConfig),
) -> crate::support::TestRouter {
    start(
        Setup { kind: RouterKind::Glommio, transport: Transport::Tcp, io: Default::default() },
        shards,
        tweak,
    )
}

#[test]
fn every_message_type_and_error_of_the_json_protocol() {
    every_message_type_and_error_on(RouterKind::Glommio);
}

#[test]
fn the_per_core_baseline_speaks_json_too() {
    every_message_type_and_error_on(RouterKind::TokioPerCore);
}

fn every_message_type_and_error_on(kind: RouterKind) {
    // Proves the seed's JSON protocol end to end on two shards: registry, direct, broadcast,
    // locks, barriers, errors, with pushes before the reply they belong to.
    let r = start(Setup { kind, transport: Transport::Tcp, io: Default::default() }, 2, |_| {});
    let mut alice = JsonClient::connect(r.addr(), Some("a2a"));
    let mut bob = JsonClient::connect(r.addr(), Some("a2a"));
    let mut carol = JsonClient::connect(r.addr(), None); // no subprotocol: the first text decides
    let reply = alice.ack(json!({"type": "register", "agent_id": "alice", "agent_type": "worker",
        "capabilities": ["plan"], "region": {"x": 0, "y": 0, "width": 10, "height": 10}}));
    assert_eq!(reply["status"], "registered");
    assert!(reply["timestamp"].as_f64().unwrap() > 1.6e9, "Unix seconds");
    bob.register("bob", "worker");
    carol.register("carol", "boss");
    // Registering again overwrites.
    alice.ack(json!({"type": "register", "agent_id": "alice", "agent_type": "worker",
        "capabilities": ["plan"], "region": {"x": 0, "y": 0, "width": 10, "height": 10}}));

    let hb = alice.ack(json!({"type": "heartbeat", "agent_id": "alice", "status": "busy"}));
    assert_eq!(hb["agent_id"], "alice");
    assert_eq!(alice.error(json!({"type": "heartbeat", "agent_id": "nobody"})), "agent_not_found");

    let workers = carol.ack(json!({"type": "discover", "agent_type": "worker"}));
    assert_eq!(workers["count"], 2);
    let mut ids: Vec<&str> = workers["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["agent_id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["alice", "bob"]);
    assert_eq!(workers["agents"][0]["agent_type"], "worker");
    let planners = carol.ack(json!({"type": "discover", "capability": "plan"}));
    assert_eq!(
        (planners["count"].as_u64(), planners["agents"][0]["agent_id"].as_str()),
        (Some(1), Some("alice"))
    );
    let near = carol.ack(
        json!({"type": "discover", "region_overlap": {"x": 5, "y": 5, "width": 1, "height": 1}}),
    );
    assert_eq!(
        (near["count"].as_u64(), near["agents"][0]["agent_id"].as_str()),
        (Some(1), Some("alice"))
    );

    let sent = alice.ack(json!({"type": "direct", "from_agent": "alice", "to_agent": "bob",
        "message_type": "task", "payload": {"n": 1}, "correlation_id": "c-1"}));
    assert_eq!(
        (sent["delivered"].as_bool(), sent["target_status"].as_str()),
        (Some(true), Some("online"))
    );
    let got = bob.next();
    assert_eq!(
        (got["type"].as_str(), got["from_agent"].as_str(), got["message_type"].as_str()),
        (Some("direct"), Some("alice"), Some("task"))
    );
    assert_eq!(
        (got["payload"]["n"].as_u64(), got["correlation_id"].as_str()),
        (Some(1), Some("c-1"))
    );
    alice.ack(json!({"type": "direct", "from_agent": "alice", "to_agent": "bob", "content": "hi"}));
    assert_eq!(bob.next()["payload"], "hi", "`content` is accepted for `payload`");
    assert_eq!(
        alice.error(json!({"type": "direct", "from_agent": "alice", "to_agent": "nobody"})),
        "agent_not_found"
    );

    let b = carol.ack(json!({"type": "broadcast", "from_agent": "carol", "agent_type": "worker", "payload": {"all": true}}));
    assert_eq!(b["delivered_count"], 2);
    for c in [&mut alice, &mut bob] {
        let m = c.next();
        assert_eq!(
            (m["type"].as_str(), m["from_agent"].as_str()),
            (Some("broadcast"), Some("carol"))
        );
    }
    // With exclude_self false the sender is one of the recipients: its push comes before its ack.
    let (pushes, reply) = alice.call(json!({"type": "broadcast", "from_agent": "alice", "agent_type": "worker", "exclude_self": false}));
    assert_eq!((pushes.len(), pushes[0]["type"].as_str()), (1, Some("broadcast")));
    assert_eq!(reply["delivered_count"], 2);
    assert_eq!(bob.next()["from_agent"], "alice");

    // Locks: the grant push precedes the ack; FIFO; holder-only release; the next waiter's push.
    let (pushes, reply) = alice
        .call(json!({"type": "lock_request", "agent_id": "alice", "lock_id": "L1", "timeout": 30}));
    assert_eq!((pushes.len(), pushes[0]["type"].as_str()), (1, Some("lock_granted")));
    assert_eq!((reply["granted"].as_bool(), reply["lock_id"].as_str()), (Some(true), Some("L1")));
    let queued = bob.ack(json!({"type": "lock_request", "agent_id": "bob", "lock_id": "L1"}));
    assert_eq!(
        (queued["granted"].as_bool(), queued["queue_position"].as_u64()),
        (Some(false), Some(1))
    );
    let again = alice.ack(json!({"type": "lock_request", "agent_id": "alice", "lock_id": "L1"}));
    assert_eq!(again["granted"], true, "same holder again: the ack only");
    assert_eq!(
        bob.error(json!({"type": "lock_release", "agent_id": "bob", "lock_id": "L1"})),
        "not_lock_holder"
    );
    assert_eq!(
        alice.ack(json!({"type": "lock_release", "agent_id": "alice", "lock_id": "L1"}))
            ["released"],
        true
    );
    let grant = bob.next();
    assert_eq!(
        (grant["type"].as_str(), grant["lock_id"].as_str()),
        (Some("lock_granted"), Some("L1"))
    );
    assert_eq!(
        carol.error(json!({"type": "lock_release", "agent_id": "carol", "lock_id": "L9"})),
        "lock_not_found"
    );

    // Barriers: the last arrival gets its release push before its ack; the others get pushes.
    let wait = alice.ack(json!({"type": "barrier_enter", "agent_id": "alice", "barrier_id": "B1", "expected_count": 2}));
    assert_eq!(
        (
            wait["released"].as_bool(),
            wait["arrived_count"].as_u64(),
            wait["expected_count"].as_u64()
        ),
        (Some(false), Some(1), Some(2))
    );
    let (pushes, reply) =
        carol.call(json!({"type": "barrier_enter", "agent_id": "carol", "barrier_id": "B1"}));
    assert_eq!((pushes.len(), pushes[0]["type"].as_str()), (1, Some("barrier_release")));
    assert_eq!(
        (reply["released"].as_bool(), reply["arrived_count"].as_u64()),
        (Some(true), Some(2))
    );
    assert_eq!(alice.next()["type"], "barrier_release");
    assert_eq!(
        carol.error(json!({"type": "barrier_release", "barrier_id": "B2"})),
        "barrier_not_found"
    );
    bob.ack(json!({"type": "barrier_enter", "agent_id": "bob", "barrier_id": "B3", "expected_count": 3}));
    assert_eq!(carol.ack(json!({"type": "barrier_release", "barrier_id": "B3"}))["released"], true);
    assert_eq!(bob.next()["type"], "barrier_release");

    assert_eq!(bob.ack(json!({"type": "unregister", "agent_id": "bob"}))["status"], "unregistered");
    assert_eq!(bob.error(json!({"type": "unregister", "agent_id": "bob"})), "agent_not_found");
    bob.send_raw("{nope");
    assert_eq!(bob.next()["error"], "invalid_json");
    let unknown = bob.call(json!({"type": "frobnicate"})).1;
    assert_eq!(
        (unknown["error"].as_str(), unknown["message"].as_str()),
        (Some("unknown_message_type"), Some("Unknown message type: frobnicate"))
    );
    r.stop();
}

#[test]
fn an_offline_agent_is_reported_and_skipped() {
    // Proves the heartbeat monitor: an agent silent past the timeout is offline — direct gets
    // agent_offline, discover skips it — until it sends again.
    let r = router(1, |cfg| cfg.heartbeat_timeout = Duration::from_millis(150));
    let mut alice = JsonClient::connect(r.addr(), Some("a2a"));
    let mut dave = JsonClient::connect(r.addr(), Some("a2a"));
    alice.register("alice", "worker");
    dave.register("dave", "worker");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let found = alice.ack(json!({"type": "discover", "agent_type": "worker"}));
        if found["count"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "dave never went offline");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        alice.error(json!({"type": "direct", "from_agent": "alice", "to_agent": "dave"})),
        "agent_offline"
    );
    dave.ack(json!({"type": "heartbeat", "agent_id": "dave"}));
    assert_eq!(
        alice.ack(json!({"type": "direct", "from_agent": "alice", "to_agent": "dave"}))
            ["delivered"],
        true
    );
    r.stop();
}

#[test]
fn json_and_native_agents_share_one_registry() {
    // Proves a native agent can message a JSON agent and back, on either shard.
    let r = router(2, |_| {});
    let mut alice = JsonClient::connect(r.addr(), Some("a2a"));
    alice.register("alice", "worker");
    let mut native = agent(&r, 7, 0, &[]);
    let env = Envelope {
        kind: DataKind::Direct,
        sender: a2a_bench::wire::AgentId(7),
        to: agent_id_of("alice").0,
        message_id: 70,
        correlation_id: 0,
        timestamp_ns: a2a_bench::clock::now_ns(),
        msg_type: 3,
        priority: 5,
        ttl_ms: 0,
        payload: br#"{"hello":"from native"}"#,
    };
    native.send(&[Message::Data(env)]).unwrap();
    let got = alice.next();
    assert_eq!((got["type"].as_str(), got["from_agent"].as_str()), (Some("direct"), Some("7")));
    assert_eq!(got["payload"]["hello"], "from native");
    alice.ack(json!({"type": "direct", "from_agent": "alice", "to_agent": "7", "message_type": "answer", "payload": [1, 2]}));
    match native.recv().unwrap() {
        Received::Data(d) => {
            assert_eq!(d.sender, agent_id_of("alice"));
            let body: Value = serde_json::from_slice(&d.payload).unwrap();
            assert_eq!(
                (body["from_agent"].as_str(), body["payload"][1].as_u64()),
                (Some("alice"), Some(2))
            );
        }
        other => panic!("expected data, got {other:?}"),
    }
    let listed = alice.ack(json!({"type": "discover"}));
    assert_eq!(listed["count"], 2, "the native agent is listed too: {listed}");
    r.stop();
}
