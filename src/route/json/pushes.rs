//! What the shard queues for a JSON session, translated back: pushed messages, replies to the
//! request awaited, lock grants and barrier releases.

use super::*;

impl Session {
    /// Translates one native message queued for this connection. Returns native frames to feed
    /// back to the shard (a broadcast whose recipients are now known).
    pub(super) fn on_native(&mut self, msg: Message<'_>) -> Option<Vec<u8>> {
        match msg {
            Message::Data(env) => {
                self.push_data(&env);
                None
            }
            Message::Control(ctl) => self.on_control(ctl),
        }
    }

    pub(super) fn push_data(&mut self, env: &Envelope<'_>) {
        // The router sends a connection one copy of a broadcast or publication however many of
        // its agents it is for; a JSON client gets one per agent, as from the seed router. The
        // copies for this connection's agents of its own agents' broadcasts were written before
        // the ack.
        let copies = match env.kind {
            DataKind::Broadcast if self.agents.iter().any(|a| a.id == env.sender) => return,
            DataKind::Broadcast => {
                self.agents.iter().filter(|a| env.to == 0 || a.agent_type == env.to).count().max(1)
            }
            DataKind::Publish => {
                let topic = TopicId(env.to);
                self.agents.iter().filter(|a| a.topics.contains(&topic)).count().max(1)
            }
            _ => 1,
        };
        self.push_copies(env, copies);
    }

    /// Queues `copies` pushes of `env`.
    pub(super) fn push_copies(&mut self, env: &Envelope<'_>, copies: usize) {
        let kind = match env.kind {
            DataKind::Broadcast => "broadcast",
            DataKind::Publish => "publish",
            _ => "direct",
        };
        let p = env.payload;
        let at = |span: Option<Span>| span.and_then(|(a, b)| p.get(a as usize..b as usize));
        match reading_of(p) {
            // A message from a JSON agent: its members go out as they came in ([`wrap_into`]
            // always writes a payload, so an absent one was `null`).
            Reading::Wrapped { from, message_type, payload, correlation_id } => {
                let null: &[u8] = b"null";
                let (from, message_type) = (at(Some(from)).unwrap_or(null), at(message_type));
                let (payload, correlation_id) = (at(payload), at(correlation_id));
                self.send_copies(copies, |b| {
                    b.extend_from_slice(br#"{"type":""#);
                    b.extend_from_slice(kind.as_bytes());
                    b.extend_from_slice(br#"","from_agent":"#);
                    b.extend_from_slice(from);
                    b.extend_from_slice(br#","message_type":"#);
                    b.extend_from_slice(message_type.unwrap_or(null));
                    b.extend_from_slice(br#","payload":"#);
                    b.extend_from_slice(payload.unwrap_or(null));
                    b.extend_from_slice(br#","correlation_id":"#);
                    b.extend_from_slice(correlation_id.unwrap_or(null));
                    end_push(b, env);
                });
            }
            // A native agent's message: its ids as strings, its payload as written when it is
            // JSON, else as base64.
            reading => {
                let json = match reading {
                    Reading::Json(span) => at(Some(span)),
                    _ => None,
                };
                self.send_copies(copies, |b| {
                    use std::fmt::Write as _;
                    b.extend_from_slice(br#"{"type":""#);
                    b.extend_from_slice(kind.as_bytes());
                    let _ = write!(
                        b,
                        r#"","from_agent":"{}","message_type":"{}","payload":"#,
                        env.sender.0, env.msg_type
                    );
                    match json {
                        Some(raw) => b.extend_from_slice(raw),
                        None => {
                            use base64::Engine;
                            let engine = &base64::engine::general_purpose::STANDARD;
                            b.extend_from_slice(br#"{"base64":""#);
                            let at = b.len();
                            b.resize(at + base64::encoded_len(p.len(), true).unwrap_or(0), 0);
                            let n = engine.encode_slice(p, &mut b[at..]).unwrap_or(0);
                            b.truncate(at + n);
                            b.extend_from_slice(br#""}"#);
                        }
                    }
                    let _ = write!(b, r#","correlation_id":{}"#, env.correlation_id);
                    end_push(b, env);
                });
            }
        }
    }

    pub(super) fn on_control(&mut self, ctl: Control) -> Option<Vec<u8>> {
        let reply_id = match &ctl {
            Control::Ack(a) => a.request_id,
            Control::Error(e) => e.request_id,
            Control::DiscoverReply(d) => d.request_id,
            Control::LockGranted(g) => g.request_id,
            Control::LockQueued(q) => q.request_id,
            Control::BarrierWait(w) => w.request_id,
            Control::BarrierRelease(r) => r.request_id,
            _ => 0,
        };
        let awaited = match &self.awaiting {
            Some((id, _)) if *id == reply_id => self.awaiting.take().map(|(_, a)| a),
            _ => None,
        };
        let Some(awaiting) = awaited else {
            self.push_unawaited(ctl);
            return None;
        };
        let more = self.answer(awaiting, ctl);
        if self.awaiting.is_none() {
            if let Some(w) = self.reader.take() {
                w.wake();
            }
        }
        more
    }

    /// Queues `{"type":"<kind>","<key>":<name>`, the members `members` appends ([`member`]),
    /// and the closing brace (`kind` and `key` are plain names, written as they are).
    pub(super) fn send_named(
        &mut self,
        kind: &str,
        key: &str,
        name: &str,
        members: impl FnOnce(&mut BytesMut),
    ) {
        self.send_with(|b| {
            b.extend_from_slice(br#"{"type":""#);
            b.extend_from_slice(kind.as_bytes());
            b.extend_from_slice(br#"",""#);
            b.extend_from_slice(key.as_bytes());
            b.extend_from_slice(br#"":"#);
            put_json(b, name);
            members(b);
            b.put_u8(b'}');
        });
    }

    /// Queues the push `lock_granted` of lock `name`, its lease ending at `expires` (Unix s).
    pub(super) fn send_lock_granted(&mut self, name: &str, expires: f64) {
        self.send_named("lock_granted", "lock_id", name, |b| {
            member(b, "expires_at", &expires);
        });
    }

    /// Queues the push `barrier_release` of barrier `name`.
    pub(super) fn send_barrier_release(&mut self, name: &str) {
        self.send_named("barrier_release", "barrier_id", name, |b| {
            member(b, "timestamp", &unix_now());
        });
    }

    /// Records that `key`'s lock is held until `ends` (Unix seconds), sweeping out leases that
    /// ended unreleased once the table has doubled since the last sweep.
    pub(super) fn hold(&mut self, key: (AgentId, LockId), ends: f64) {
        self.held.insert(key, ends);
        if self.held.len() >= self.held_sweep_at {
            let now = unix_now();
            self.held.retain(|_, &mut ends| ends > now);
            self.held_sweep_at = (self.held.len() * 2).max(HELD_SWEEP_MIN);
        }
    }

    /// Pushes that are not the answer to the request in flight: grants after a wait, barrier
    /// releases caused by others, and errors about earlier messages (already acknowledged).
    pub(super) fn push_unawaited(&mut self, ctl: Control) {
        match ctl {
            Control::LockGranted(g) => {
                let key = (g.agent_id, g.lock_id);
                let name = self.lock_waits.remove(&key).unwrap_or_default();
                let expires = unix_now() + f64::from(g.lease_ms) / 1000.0;
                self.hold(key, expires);
                self.send_lock_granted(&name, expires);
                self.recycle(name);
            }
            Control::BarrierRelease(r) => {
                let name =
                    self.barrier_waits.remove(&(r.agent_id, r.barrier_id)).unwrap_or_default();
                self.send_barrier_release(&name);
                self.recycle(name);
            }
            _ => {}
        }
    }

    /// The router's answer to what this connection awaited, written as the seed protocol's
    /// text; the request for a discovery's next page when one is due.
    pub(super) fn answer(&mut self, awaiting: Awaiting, ctl: Control) -> Option<Vec<u8>> {
        if let Control::Error(e) = &ctl {
            if let Some(err) = ErrorCode::from_code(e.code) {
                self.answer_error(&awaiting, err, e);
                return None;
            }
        }
        match (awaiting, ctl) {
            (Awaiting::Discover { found, region }, Control::DiscoverReply(d)) => {
                return self.answer_discover(found, region, &d);
            }
            (Awaiting::Broadcast { found, from, exclude_self }, Control::DiscoverReply(d)) => {
                return self.answer_broadcast(found, from, exclude_self, &d);
            }
            (a @ (Awaiting::Lock { .. } | Awaiting::Release { .. }), ctl) => {
                self.answer_lock(a, ctl)
            }
            (a @ (Awaiting::Barrier { .. } | Awaiting::BarrierForce { .. }), ctl) => {
                self.answer_barrier(a, ctl);
            }
            (a, ctl) => self.answer_membership(a, ctl),
        }
        None
    }

    /// The answer to a registration, an unregistration or a heartbeat.
    fn answer_membership(&mut self, awaiting: Awaiting, ctl: Control) {
        match (awaiting, ctl) {
            (Awaiting::Register { name, agent_type, topics }, Control::Ack(_)) => {
                self.agents.push(JsonAgent {
                    id: agent_id_of(&name),
                    name: name.clone(),
                    agent_type,
                    topics,
                });
                self.send(json!({"type": "ack", "agent_id": name, "status": "registered", "timestamp": unix_now()}).to_string());
            }
            (Awaiting::Unregister { name }, Control::Ack(_)) => {
                self.agents.retain(|a| a.name != name);
                self.send(
                    json!({"type": "ack", "agent_id": name, "status": "unregistered"}).to_string(),
                );
            }
            (Awaiting::Heartbeat { name }, Control::Ack(_)) => {
                self.send_named("ack", "agent_id", &name, |b| {
                    member(b, "timestamp", &unix_now());
                });
                self.recycle(name);
            }
            (awaiting, other) => self.answer_unexpected(&awaiting, &other),
        }
    }

    /// The answer to a lock's request or release.
    fn answer_lock(&mut self, awaiting: Awaiting, ctl: Control) {
        match (awaiting, ctl) {
            (Awaiting::Lock { name, already_held, key }, Control::LockGranted(g)) => {
                if let Some(waiting) = self.lock_waits.remove(&key) {
                    self.recycle(waiting);
                }
                let expires = unix_now() + f64::from(g.lease_ms) / 1000.0;
                self.hold(key, expires);
                if !already_held {
                    self.send_lock_granted(&name, expires);
                }
                self.send_named("ack", "lock_id", &name, |b| {
                    member(b, "granted", &true);
                    member(b, "expires_at", &expires);
                });
                self.recycle(name);
            }
            (Awaiting::Lock { name, .. }, Control::LockQueued(q)) => {
                self.send_named("ack", "lock_id", &name, |b| {
                    member(b, "granted", &false);
                    member(b, "queue_position", &q.position);
                });
                self.recycle(name);
            }
            (Awaiting::Release { name, key }, Control::Ack(_)) => {
                self.held.remove(&key);
                self.send_named("ack", "lock_id", &name, |b| {
                    member(b, "released", &true);
                });
                self.recycle(name);
            }
            (awaiting, other) => self.answer_unexpected(&awaiting, &other),
        }
    }

    /// The answer to an arrival at a barrier, or to a barrier's forced release.
    fn answer_barrier(&mut self, awaiting: Awaiting, ctl: Control) {
        match (awaiting, ctl) {
            (Awaiting::Barrier { name, .. }, Control::BarrierWait(w)) => {
                self.send_named("ack", "barrier_id", &name, |b| {
                    member(b, "released", &false);
                    member(b, "arrived_count", &w.arrived);
                    member(b, "expected_count", &w.expected);
                });
                self.recycle(name);
            }
            (Awaiting::Barrier { name, key }, Control::BarrierRelease(r)) => {
                if let Some(waiting) = self.barrier_waits.remove(&key) {
                    self.recycle(waiting);
                }
                self.send_barrier_release(&name);
                self.send_named("ack", "barrier_id", &name, |b| {
                    member(b, "released", &true);
                    member(b, "arrived_count", &r.arrived);
                });
                self.recycle(name);
            }
            (Awaiting::BarrierForce { name }, Control::Ack(_)) => {
                self.send_named("ack", "barrier_id", &name, |b| {
                    member(b, "released", &true);
                });
                self.recycle(name);
            }
            (awaiting, other) => self.answer_unexpected(&awaiting, &other),
        }
    }

    /// An answer the router should not have given to what was awaited.
    fn answer_unexpected(&mut self, awaiting: &Awaiting, other: &Control) {
        let detail = format!("unexpected answer {} to {awaiting:?}", other.name());
        self.send(error("internal_error", detail));
    }

    /// An error answer, under the seed protocol's name for it; whatever this connection
    /// thought it held or waited for, it does not.
    fn answer_error(
        &mut self,
        awaiting: &Awaiting,
        err: ErrorCode,
        e: &crate::wire::control::Error,
    ) {
        let name = match err {
            ErrorCode::UnknownAgent => "agent_not_found",
            ErrorCode::NotLockHolder => "not_lock_holder",
            ErrorCode::LockNotFound => "lock_not_found",
            ErrorCode::BarrierNotFound => "barrier_not_found",
            other => other.name(),
        };
        match awaiting {
            // Not found, or another's: whatever this connection thought it held, it does not.
            Awaiting::Release { key, .. } => {
                self.held.remove(key);
            }
            Awaiting::Lock { key, .. } => {
                if let Some(name) = self.lock_waits.remove(key) {
                    self.recycle(name);
                }
            }
            Awaiting::Barrier { key, .. } => {
                if let Some(name) = self.barrier_waits.remove(key) {
                    self.recycle(name);
                }
            }
            _ => {}
        }
        self.send(error(name, e.detail.to_string()));
    }

    /// A page of a discovery: the online agents of the region asked for, listed; the next
    /// page's request, or the answer once the last came.
    fn answer_discover(
        &mut self,
        mut found: Found,
        region: Option<Value>,
        d: &DiscoverReply,
    ) -> Option<Vec<u8>> {
        for a in d.agents.iter().filter(|a| a.online) {
            let have = a.capabilities.iter().find_map(|c| c.strip_prefix("region:"));
            let have = have.and_then(|r| serde_json::from_str::<Value>(r).ok());
            match (&region, &have) {
                (None, _) => {}
                (Some(want), Some(have)) if overlaps(want, have) => {}
                _ => continue,
            }
            let agent_type = a.capabilities.iter().find_map(|c| c.strip_prefix("type:"));
            let agent_type = agent_type.map_or_else(|| a.agent_type.to_string(), String::from);
            let capabilities: Vec<&String> = a
                .capabilities
                .iter()
                .filter(|c| !c.starts_with("type:") && !c.starts_with("region:"))
                .collect();
            let agent = json!({"agent_id": Session::name_of(a.agent_id, &a.name),
                    "agent_type": agent_type, "capabilities": capabilities, "region": have,
                    "status": "online", "last_heartbeat": Value::Null, "topics": []});
            self.list(&mut found, &agent);
        }
        if Session::more_pages(&mut found, d) {
            return Some(self.discover_next(found, |found| Awaiting::Discover { found, region }));
        }
        let listed = std::mem::take(&mut self.listed);
        self.send_with(|b| {
            b.extend_from_slice(br#"{"type":"ack","count":"#);
            put_json(b, &found.listed);
            b.extend_from_slice(br#","agents":["#);
            b.extend_from_slice(&listed);
            b.extend_from_slice(b"]}");
        });
        self.listed = listed;
        None
    }

    /// A page of a broadcast's recipients: listed, the copies for this connection's own
    /// agents pushed; the next page's request, or the answer once the last came.
    fn answer_broadcast(
        &mut self,
        mut found: Found,
        from: AgentId,
        exclude_self: bool,
        d: &DiscoverReply,
    ) -> Option<Vec<u8>> {
        for a in d.agents.iter().filter(|a| a.online && (a.agent_id != from || !exclude_self)) {
            if a.agent_id != from && self.agents.iter().any(|o| o.id == a.agent_id) {
                found.ours += 1;
            }
            self.list(&mut found, &*Session::name_of(a.agent_id, &a.name));
        }
        if Session::more_pages(&mut found, d) {
            let awaiting = |found| Awaiting::Broadcast { found, from, exclude_self };
            return Some(self.discover_next(found, awaiting));
        }
        // The copies for this connection's other agents come before the ack, as every
        // push a request causes on the caller's own connection does.
        if found.ours > 0 {
            let body = std::mem::take(&mut self.body);
            let env = Envelope {
                kind: DataKind::Broadcast,
                sender: from,
                to: found.agent_type,
                message_id: 0,
                correlation_id: 0,
                timestamp_ns: 0,
                msg_type: 0,
                priority: 0,
                ttl_ms: 0,
                payload: &body,
            };
            self.push_copies(&env, found.ours as usize);
            self.body = body;
        }
        let listed = std::mem::take(&mut self.listed);
        self.send_with(|b| {
            b.extend_from_slice(br#"{"type":"ack","recipients":["#);
            b.extend_from_slice(&listed);
            b.extend_from_slice(br#"],"delivered_count":"#);
            put_json(b, &found.listed);
            b.put_u8(b'}');
        });
        self.listed = listed;
        None
    }
}
