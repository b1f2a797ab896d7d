//! The translator driven by hand against a shard, without sockets: what a JSON agent's messages
//! become, and what translating them costs.

use std::task::{Context, Poll, Waker};

use serde_json::{json, Value};

use super::Session;
use crate::route::{ConnId, Shard, ShardConfig};
use crate::testing::counting;
use crate::wire::control::Register;
use crate::wire::frame::encode_frame;
use crate::wire::{decode_frame, AgentId, BufferPool, Compression, Control, DataKind, Envelope};
use crate::wire::{Limits, Message};

/// One JSON connection on a shard of its own.
struct Link {
    shard: Shard,
    session: Session,
    id: ConnId,
    inflate: Vec<u8>,
}

impl Link {
    fn new() -> Link {
        let mut cfg = ShardConfig::new(0, 1);
        cfg.compression = Compression::None;
        let mut shard = Shard::new(cfg);
        let id = shard.open_conn();
        Link { shard, session: Session::new(), id, inflate: Vec::new() }
    }

    /// Sends `text` as the reader task would, moves what the shard queued through the
    /// translator as the writer task would, and hands every text written to `seen`.
    fn request(&mut self, text: &str, mut seen: impl FnMut(&str)) {
        let mut cx = Context::from_waker(Waker::noop());
        let mut frame = self.session.on_text(text, &self.shard);
        while let Some(f) = frame.take() {
            self.shard.on_input(self.id, &f);
            self.session.pool.put(f);
            while let Poll::Ready(Some(out)) = self.shard.poll_output(self.id, &mut cx) {
                if let Ok(Some((_, batch))) =
                    decode_frame(&out, &Limits::DEFAULT, &mut self.inflate)
                {
                    for (msg, _) in batch.flatten() {
                        frame = frame.or(self.session.on_native(msg));
                    }
                }
                self.shard.output_done(out);
            }
        }
        while let Some(text) = self.session.next_text() {
            seen(text.as_str());
        }
    }

    /// Feeds `frame` to the shard as native connection `from` sent it, then moves what the
    /// shard queued for the JSON connection through the translator; every text written goes to
    /// `seen`.
    fn native(&mut self, from: ConnId, frame: &[u8], mut seen: impl FnMut(&str)) {
        let mut cx = Context::from_waker(Waker::noop());
        self.shard.on_input(from, frame);
        while let Poll::Ready(Some(out)) = self.shard.poll_output(self.id, &mut cx) {
            if let Ok(Some((_, batch))) = decode_frame(&out, &Limits::DEFAULT, &mut self.inflate) {
                for (msg, _) in batch.flatten() {
                    assert!(self.session.on_native(msg).is_none());
                }
            }
            self.shard.output_done(out);
        }
        while let Poll::Ready(Some(out)) = self.shard.poll_output(from, &mut cx) {
            self.shard.output_done(out); // the native side's acks and errors
        }
        while let Some(text) = self.session.next_text() {
            seen(text.as_str());
        }
    }

    /// The texts `text` brings back, parsed.
    fn texts(&mut self, text: &str) -> Vec<Value> {
        let mut all = Vec::new();
        self.request(text, |t| all.push(serde_json::from_str(t).expect("a reply is JSON")));
        all
    }
}

fn registered(names: &[&str]) -> Link {
    let mut link = Link::new();
    for name in names {
        let texts = link.texts(&json!({"type": "register", "agent_id": name}).to_string());
        assert_eq!(texts[0]["status"], "registered", "{texts:?}");
    }
    link
}

#[test]
fn a_direct_message_passes_its_members_on_as_written() {
    // Proves the borrowed reading of `direct`: the payload (nested, escaped, spaced as sent)
    // and correlation id reach the recipient unchanged, the sender gets the seed's ack, and
    // `content` stands in for an absent payload, not for `payload: null`.
    let mut link = registered(&["a", "b"]);
    let sent = r#"{"type":"direct","from_agent":"a","to_agent":"b","message_type":"re\"q",
        "payload": {"n": [1, 2.5, {"s": "\u00e9\n"}], "x": null}, "correlation_id": "c-1"}"#;
    let texts = link.texts(sent);
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert_eq!(texts[0], json!({"type": "ack", "delivered": true, "target_status": "online"}));
    let push = &texts[1];
    assert_eq!(push["type"], "direct");
    assert_eq!(push["from_agent"], "a");
    assert_eq!(push["message_type"], "re\"q");
    assert_eq!(push["payload"], json!({"n": [1, 2.5, {"s": "é\n"}], "x": null}));
    assert_eq!(push["correlation_id"], "c-1");
    assert!(push["timestamp"].as_f64().is_some_and(|t| t > 1.0e9), "{push}");

    let content = r#"{"type":"direct","from_agent":"a","to_agent":"b","content":"hi"}"#;
    let texts = link.texts(content);
    assert_eq!(texts[1]["payload"], "hi");
    assert_eq!(texts[1]["message_type"], "message");
    assert_eq!(texts[1]["correlation_id"], Value::Null);
    let null = r#"{"type":"direct","from_agent":"a","to_agent":"b","payload":null,"content":1}"#;
    assert_eq!(link.texts(null)[1]["payload"], Value::Null);
    let absent = r#"{"type":"direct","from_agent":"a","to_agent":"b"}"#;
    assert_eq!(link.texts(absent)[1]["payload"], json!({}));
}

#[test]
fn a_direct_message_is_checked_as_before() {
    // Proves the borrowed reading keeps the seed's errors: a sender not on this connection, an
    // unknown recipient, and members of the wrong type (read as absent, as `Value` did).
    let mut link = registered(&["a", "b"]);
    let error_of = |link: &mut Link, text: &str| link.texts(text)[0]["error"].clone();
    let direct = |from: &str, to: &str| {
        format!(r#"{{"type":"direct","from_agent":{from},"to_agent":{to},"payload":{{}}}}"#)
    };
    assert_eq!(error_of(&mut link, &direct(r#""z""#, r#""b""#)), "agent_not_found");
    assert_eq!(error_of(&mut link, &direct(r#""a""#, r#""nobody""#)), "agent_not_found");
    assert_eq!(error_of(&mut link, &direct("7", r#""b""#)), "agent_not_found");
    assert_eq!(error_of(&mut link, &direct(r#""a""#, "[1]")), "agent_not_found");
    assert_eq!(error_of(&mut link, r#"{"type":"direct","#), "invalid_json");
    // Escaped names are the names they spell.
    let texts = link.texts(&direct(r#""\u0061""#, r#""\u0062""#));
    assert_eq!(texts[1]["from_agent"], "a", "{texts:?}");
}

#[test]
fn a_direct_message_is_translated_without_allocating() {
    // Proves the JSON shell's hot path allocates nothing per message once warm: reading the
    // request, framing it for the shard, the shard's routing, the push translated back, and
    // the texts handed to the writer (a slice of one reused buffer each). Before the borrowed
    // reading every request and push went through `serde_json::Value`: dozens each.
    let mut link = registered(&["a", "b"]);
    let request = r#"{"type":"direct","from_agent":"a","to_agent":"b","message_type":"request",
        "payload":{"t0":123456789,"t1":123456790,"m":7,"pad":"xxxxxxxxxxxxxxxx"}}"#;
    let reply = r#"{"type":"direct","from_agent":"b","to_agent":"a","message_type":"reply",
        "payload":{"t0":123456789,"t1":123456790,"m":7,"pad":"xxxxxxxxxxxxxxxx"}}"#;
    let mut bytes = 0;
    let mut round = |link: &mut Link| {
        link.request(request, |t| bytes += t.len());
        link.request(reply, |t| bytes += t.len());
    };
    for _ in 0..64 {
        round(&mut link);
    }
    let before = counting::calls();
    for _ in 0..1_000 {
        round(&mut link);
    }
    let allocations = counting::calls() - before;
    assert!(bytes > 64 * 4 * 40, "the rounds wrote {bytes} bytes");
    assert_eq!(allocations, 0, "{allocations} allocations for 2,000 messages");
}

/// A native agent (id 7) registered on a connection of its own on the link's shard.
fn with_native(link: &mut Link) -> ConnId {
    let conn = link.shard.open_conn();
    let register = Message::Control(Control::Register(Register {
        request_id: 1,
        agent_id: AgentId(7),
        agent_type: 1,
        name: "native-7".into(),
        capabilities: vec![],
        topics: vec![],
        token: None,
    }));
    link.native(conn, &native_frame(&[register]), |_| {});
    conn
}

fn native_frame(msgs: &[Message<'_>]) -> Vec<u8> {
    encode_frame(msgs, Compression::None, &mut BufferPool::default())
}

/// A direct message from native agent 7 to `to`, carrying `payload`.
fn from_native(to: AgentId, payload: &[u8]) -> Message<'_> {
    Message::Data(Envelope {
        kind: DataKind::Direct,
        sender: AgentId(7),
        to: to.0,
        message_id: 1,
        correlation_id: 42,
        timestamp_ns: 0,
        msg_type: 3,
        priority: 5,
        ttl_ms: 0,
        payload,
    })
}

#[test]
fn a_native_agents_message_reaches_a_json_agent_as_json() {
    // Proves the push of a native agent's message to a JSON agent: ids as strings, a JSON
    // payload passed on as written, any other payload (the native agents' binary one) as
    // base64, the correlation id as a number.
    let mut link = registered(&["b"]);
    let conn = with_native(&mut link);
    let b = super::agent_id_of("b");
    let mut texts = Vec::new();
    let frame = native_frame(&[
        from_native(b, br#"{"n": [1, "\u00e9"]}"#),
        from_native(b, &[0, 1, 2, 0xff, b'"']),
        from_native(b, b""),
    ]);
    link.native(conn, &frame, |t| texts.push(serde_json::from_str::<Value>(t).expect("JSON")));
    assert_eq!(texts.len(), 3, "{texts:?}");
    for push in &texts {
        assert_eq!(push["type"], "direct");
        assert_eq!(push["from_agent"], "7");
        assert_eq!(push["message_type"], "3");
        assert_eq!(push["correlation_id"], 42);
        assert!(push["timestamp"].as_f64().is_some_and(|t| t > 1.0e9), "{push}");
    }
    assert_eq!(texts[0]["payload"], json!({"n": [1, "é"]}));
    assert_eq!(texts[1]["payload"], json!({"base64": "AAEC/yI="}));
    assert_eq!(texts[2]["payload"], json!({"base64": ""}));
}

#[test]
fn a_native_agents_message_is_translated_without_allocating() {
    // Proves the push of a native agent's binary payload to a JSON agent allocates nothing per
    // message once warm (before: a `serde_json::Value` map and a base64 string per message).
    let mut link = registered(&["b"]);
    let conn = with_native(&mut link);
    let b = super::agent_id_of("b");
    let payload = [7u8; 64];
    let frame = native_frame(&std::array::from_fn::<_, 16, _>(|_| from_native(b, &payload)));
    let mut bytes = 0;
    for _ in 0..64 {
        link.native(conn, &frame, |t| bytes += t.len());
    }
    let before = counting::calls();
    for _ in 0..125 {
        link.native(conn, &frame, |t| bytes += t.len());
    }
    let allocations = counting::calls() - before;
    assert!(bytes > 189 * 16 * 100, "the pushes wrote {bytes} bytes");
    assert_eq!(allocations, 0, "{allocations} allocations for 2,000 messages");
}

#[test]
fn locks_and_barriers_named_anew_each_round_leave_no_names_behind() {
    // Proves the session keeps a lock's or barrier's name only while a push may need it: a
    // client naming each round's barrier and lock anew (as the seed tester's rounds do) used
    // to leave every name in a list the session searched from the start for every push, its
    // memory and each push's cost growing with the rounds. The pushes still carry the names.
    let mut link = registered(&["a", "b"]);
    let mut pushes = Vec::new();
    for round in 0..500 {
        let barrier = format!("round-{round}");
        let enter = |agent: &str| {
            json!({"type": "barrier_enter", "agent_id": agent, "barrier_id": barrier,
                "expected_count": 2})
            .to_string()
        };
        let first = link.texts(&enter("a"));
        assert_eq!(first[0]["released"], false, "{first:?}");
        let last = link.texts(&enter("b"));
        // a's release (a push) and b's, with b's ack.
        let releases: Vec<_> = last
            .iter()
            .filter(|t| t["type"] == "barrier_release")
            .map(|t| &t["barrier_id"])
            .collect();
        assert_eq!(releases, [&json!(barrier), &json!(barrier)], "{last:?}");

        let lock = format!("lock-{round}");
        let ask = |agent: &str| {
            json!({"type": "lock_request", "agent_id": agent, "lock_id": lock}).to_string()
        };
        let release = |agent: &str| {
            json!({"type": "lock_release", "agent_id": agent, "lock_id": lock}).to_string()
        };
        assert_eq!(link.texts(&ask("a")).last().unwrap()["granted"], true);
        assert_eq!(link.texts(&ask("b"))[0]["granted"], false);
        // a's release grants the lock to b: a push naming it.
        pushes
            .extend(link.texts(&release("a")).into_iter().filter(|t| t["type"] == "lock_granted"));
        assert_eq!(link.texts(&release("b"))[0]["released"], true);
    }
    assert_eq!(pushes.len(), 500);
    assert!(pushes.iter().enumerate().all(|(i, p)| p["lock_id"] == format!("lock-{i}")));
    assert_eq!(link.session.barrier_waits.len(), 0, "barrier names left behind");
    assert_eq!(link.session.lock_waits.len(), 0, "lock names left behind");
    assert!(link.session.held.is_empty(), "{:?}", link.session.held);
}

#[test]
fn locks_left_to_expire_are_granted_anew_and_forgotten() {
    // Proves a lease that ended unreleased is neither remembered for ever nor taken for one
    // still held: before, the session kept every lock name its agents were granted until a
    // release, so a client naming locks anew and letting them expire grew it without bound,
    // and a holder asking again for an expired lock got no `lock_granted` for the new grant.
    let mut link = registered(&["a"]);
    let ask = |lock: &str, timeout: f64| {
        json!({"type": "lock_request", "agent_id": "a", "lock_id": lock, "timeout": timeout})
            .to_string()
    };
    let pushed = |texts: &[Value]| texts.iter().filter(|t| t["type"] == "lock_granted").count();
    // Held for 30 s: asking again extends the lease, an ack alone.
    assert_eq!(pushed(&link.texts(&ask("long", 30.0))), 1);
    let again = link.texts(&ask("long", 30.0));
    assert_eq!((pushed(&again), &again[0]["granted"]), (0, &json!(true)), "{again:?}");
    // Leases of 1 ms, each under a new name, never released: five hundreds, each hundred's
    // leases over before the next begins.
    let lease_over = || {
        let over = std::time::Instant::now() + std::time::Duration::from_millis(3);
        while std::time::Instant::now() < over {
            std::hint::spin_loop();
        }
    };
    for round in 0..500 {
        let texts = link.texts(&ask(&format!("short-{round}"), 0.001));
        assert_eq!(pushed(&texts), 1, "{texts:?}");
        if round % 100 == 99 {
            lease_over();
        }
    }
    // Without the sweep, 501.
    assert!(link.session.held.len() <= 256, "{} leases remembered", link.session.held.len());
    assert!(link.session.held.contains_key(&(super::agent_id_of("a"), super::lock_id_of("long"))));
    // The lease over, the same lock asked for again is a new grant, pushed as one (before:
    // taken for the one held, an ack alone).
    let texts = link.texts(&ask("short-499", 0.001));
    assert_eq!(pushed(&texts), 1, "{texts:?}");
}

#[test]
fn a_refused_barrier_leaves_no_name_behind() {
    // Proves an error answer takes the name out too: a new barrier entered with a count of
    // 0, which the router refuses.
    let mut link = registered(&["a"]);
    let texts = link.texts(
        &json!({"type": "barrier_enter", "agent_id": "a", "barrier_id": "x", "expected_count": 0})
            .to_string(),
    );
    assert_eq!(texts[0]["type"], "error", "{texts:?}");
    assert_eq!(link.session.barrier_waits.len(), 0);
}

#[test]
fn locks_barriers_and_heartbeats_are_translated_without_allocating() {
    // Proves a round of the seed's coordination requests (two agents meeting at a barrier, a
    // lock taken, waited for, passed on and released, a heartbeat) allocates nothing in the
    // translator or the shard once warm (before: a `serde_json::Value` per request, per answer
    // and per push, and the names kept while a push may need them).
    let mut link = registered(&["a", "b"]);
    let texts = [
        json!({"type": "barrier_enter", "agent_id": "a", "barrier_id": "round", "expected_count": 2}),
        json!({"type": "barrier_enter", "agent_id": "b", "barrier_id": "round", "expected_count": 2}),
        json!({"type": "lock_request", "agent_id": "a", "lock_id": "l", "timeout": 30}),
        json!({"type": "lock_request", "agent_id": "b", "lock_id": "l", "timeout": 30}),
        json!({"type": "lock_release", "agent_id": "a", "lock_id": "l"}),
        json!({"type": "lock_release", "agent_id": "b", "lock_id": "l"}),
        json!({"type": "heartbeat", "agent_id": "a"}),
    ]
    .map(|t| t.to_string());
    let mut replies = 0;
    let mut rounds = |link: &mut Link, n: usize| {
        for _ in 0..n {
            for text in &texts {
                link.request(text, |_| replies += 1);
            }
        }
    };
    rounds(&mut link, 64);
    let before = counting::calls();
    rounds(&mut link, 250);
    let allocations = counting::calls() - before;
    // Per round: two barrier acks and two releases, a grant's ack and push, a queued ack, a
    // release ack and the grant it passes on, a release ack, a heartbeat ack.
    assert_eq!(replies, 314 * 11, "replies");
    assert_eq!(allocations, 0, "{allocations} allocations for 250 rounds of 7 requests");
}

#[test]
fn a_broadcast_reaches_every_agent_and_its_ack_names_them_all() {
    // Proves a broadcast's ack lists every recipient, past the 1,000 agents of one discovery
    // page (before: the ack named the first 1,000 and counted them, while all 1,200 got the
    // message), and that `discover` lists every agent too.
    let names: Vec<String> = (0..1_200).map(|i| format!("agent-{i}")).collect();
    let mut link = registered(&names.iter().map(String::as_str).collect::<Vec<_>>());
    let texts = link.texts(
        &json!({"type": "broadcast", "from_agent": "agent-0", "message_type": "hello",
            "payload": {"n": 1}})
        .to_string(),
    );
    let pushes: Vec<&Value> = texts.iter().filter(|t| t["type"] == "broadcast").collect();
    assert_eq!(pushes.len(), 1_199, "one copy for each other agent");
    assert!(pushes.iter().all(|p| p["from_agent"] == "agent-0" && p["payload"]["n"] == 1));
    let ack = texts.last().expect("an ack");
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["delivered_count"], 1_199, "{ack}");
    let mut listed: Vec<&str> = ack["recipients"]
        .as_array()
        .expect("recipients")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    listed.sort_unstable();
    let mut expected: Vec<&str> = names[1..].iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(listed, expected);

    let found = link.texts(r#"{"type":"discover"}"#);
    assert_eq!(found.last().expect("an answer")["count"], 1_200);
    assert_eq!(found.last().expect("an answer")["agents"].as_array().map(Vec::len), Some(1_200));
}

#[test]
fn a_broadcast_is_read_and_answered_as_written() {
    // Proves the borrowed reading of `broadcast` keeps the seed's members and defaults: the
    // payload as written (or `content`, or `{}`, or `null`), `exclude_self` (a copy to the
    // sender first, then the ack), and a sender not on this connection refused.
    let mut link = registered(&["a", "b"]);
    let sent = r#"{"type":"broadcast","from_agent":"a","message_type":"m\"t",
        "payload": {"s": "\u00e9", "n": [1, 2.5]}, "exclude_self": false}"#;
    let texts = link.texts(sent);
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert_eq!(texts[0]["type"], "broadcast", "the sender's own copy first: {texts:?}");
    assert_eq!(texts[0]["payload"], json!({"s": "é", "n": [1, 2.5]}));
    assert_eq!(texts[0]["message_type"], "m\"t");
    let copies = texts.iter().filter(|t| t["type"] == "broadcast").count();
    assert_eq!(copies, 2, "b's copy and a's own: {texts:?}");
    assert_eq!(texts[2]["type"], "ack", "{texts:?}");
    assert_eq!(texts[2]["delivered_count"], 2);

    for (text, payload) in [
        (r#"{"type":"broadcast","from_agent":"a","content":"hi"}"#, json!("hi")),
        (r#"{"type":"broadcast","from_agent":"a"}"#, json!({})),
        (r#"{"type":"broadcast","from_agent":"a","payload":null,"content":1}"#, Value::Null),
        (r#"{"type":"broadcast","from_agent":"a","content":null}"#, Value::Null),
    ] {
        let texts = link.texts(text);
        assert_eq!(texts.len(), 2, "{text}: {texts:?}");
        assert_eq!(texts[0]["type"], "broadcast", "{text}: {texts:?}");
        assert_eq!(texts[0]["payload"], payload, "{text}");
        assert_eq!(texts[0]["message_type"], "broadcast", "{text}");
        assert_eq!(texts[1], json!({"type": "ack", "recipients": ["b"], "delivered_count": 1}));
    }
    let texts = link.texts(r#"{"type":"broadcast","from_agent":"z","payload":1}"#);
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert_eq!(texts[0]["error"], "agent_not_found");
}

#[test]
fn a_broadcast_allocates_only_to_find_its_recipients() {
    // Proves a broadcast from one JSON agent to 19 others is read, copied and answered without
    // allocating: what is left once warm is the discovery that lists the recipients for the
    // ack (the shard's copy of each agent's name and its decoding: 2 per agent, and the lists
    // that hold them). Before: 216 per broadcast, with one copy pushed instead of 19 (a `Value`
    // for the request, the wrapped payload and the ack, a `String` per recipient, and each
    // agent's capabilities copied and decoded too).
    let names: Vec<String> = (0..20).map(|i| format!("agent-{i}")).collect();
    let mut link = registered(&names.iter().map(String::as_str).collect::<Vec<_>>());
    let text = json!({"type": "broadcast", "from_agent": "agent-0", "message_type": "hello",
        "payload": {"t0": 123_456_789, "m": 7, "pad": "xxxxxxxxxxxxxxxx"}})
    .to_string();
    let mut texts = 0;
    for _ in 0..64 {
        link.request(&text, |_| texts += 1);
    }
    let before = counting::calls();
    for _ in 0..500 {
        link.request(&text, |_| texts += 1);
    }
    let allocations = counting::calls() - before;
    assert_eq!(texts, 564 * 20, "19 copies and an ack each");
    let discovery = 500 * 20 * 2;
    assert!(
        allocations <= discovery + 500 * 8,
        "{allocations} allocations for 500 broadcasts, {discovery} of them the discovery's"
    );
}

#[test]
fn a_payload_seen_again_is_compared_not_read() {
    // Proves the copies of one message are read once (a broadcast reaches every recipient
    // connection's translator with the same bytes), and that a different payload, even of the
    // same length, or one past the kept size, is read anew and read right.
    use super::{reading_of, Reading, READING_KEPT_MAX, READS};
    let reads = || READS.with(std::cell::Cell::get);
    let wrapped = |n: u8| {
        let mut body = Vec::new();
        super::wrap_into(&mut body, "a", "t", &format!("{{\"n\":{n}}}"), "null");
        body
    };
    let (one, two) = (wrapped(1), wrapped(2));
    assert_eq!(one.len(), two.len());
    let before = reads();
    let first = reading_of(&one);
    for _ in 0..18 {
        assert_eq!(reading_of(&one), first);
    }
    assert_eq!(reads() - before, 1, "19 copies, one reading");
    let Reading::Wrapped { payload: Some((a, b)), .. } = reading_of(&two) else {
        panic!("a JSON agent's message");
    };
    assert_eq!(&two[a as usize..b as usize], br#"{"n":2}"#);
    assert_eq!(reads() - before, 2);
    assert_eq!(reading_of(b" [1, 2] "), Reading::Json((1, 7)));
    assert_eq!(reading_of(b"\x00\x01"), Reading::Binary);
    let big = format!("\"{}\"", "x".repeat(READING_KEPT_MAX));
    let n = reads();
    assert_eq!(reading_of(big.as_bytes()), Reading::Json((0, big.len() as u32)));
    assert_eq!(reading_of(big.as_bytes()), Reading::Json((0, big.len() as u32)));
    assert_eq!(reads() - n, 2, "a payload past the kept size is read each time");

    // Through the translator: two messages of the same length in turn each push their own.
    let mut link = registered(&["a", "b"]);
    for n in [1, 2, 1, 2] {
        let texts = link.texts(
            &json!({"type": "direct", "from_agent": "a", "to_agent": "b", "payload": {"n": n}})
                .to_string(),
        );
        assert_eq!(texts[1]["payload"], json!({"n": n}), "{texts:?}");
    }
}

#[test]
fn a_native_broadcast_or_publication_reaches_each_json_agent_it_is_for() {
    // Proves a connection with several JSON agents gets a copy of a native broadcast for each
    // agent of the type it names, and of a publication for each agent subscribed to its topic
    // (the router sends the connection one), as the seed router would send each agent its own.
    let mut link = Link::new();
    for (name, agent_type, topics) in [
        ("w1", "worker", json!(["news"])),
        ("w2", "worker", json!([])),
        ("m", "manager", json!(["news"])),
    ] {
        let texts = link.texts(
            &json!({"type": "register", "agent_id": name, "agent_type": agent_type, "topics": topics})
                .to_string(),
        );
        assert_eq!(texts[0]["status"], "registered", "{texts:?}");
    }
    let conn = with_native(&mut link);
    let sent = |kind: DataKind, to: u32| {
        Message::Data(Envelope {
            kind,
            to,
            ..match from_native(AgentId(0), b"{}") {
                Message::Data(e) => e,
                Message::Control(_) => unreachable!(),
            }
        })
    };
    let count = |link: &mut Link, msg: Message<'_>, kind: &str| {
        let mut n = 0;
        link.native(conn, &native_frame(&[msg]), |t| {
            let push: Value = serde_json::from_str(t).expect("JSON");
            assert_eq!(push["type"], kind, "{push}");
            n += 1;
        });
        n
    };
    assert_eq!(count(&mut link, sent(DataKind::Broadcast, 0), "broadcast"), 3, "to all");
    let workers = super::type_id_of("worker");
    assert_eq!(count(&mut link, sent(DataKind::Broadcast, workers), "broadcast"), 2, "to workers");
    let news = super::topic_id_of("news").0;
    assert_eq!(count(&mut link, sent(DataKind::Publish, news), "publish"), 2, "to subscribers");
}
