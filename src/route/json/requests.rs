//! The JSON requests a session translates into native messages for the shard: register, direct,
//! broadcast, discover, heartbeat, locks and barriers.

use super::*;

impl Session {
    /// Turns one JSON request into a native frame for the shard (none when answered here).
    /// The caller gives the frame back to [`Session::pool`] once the shard has taken it.
    pub(super) fn on_text(&mut self, text: &str, shard: &Shard) -> Option<Vec<u8>> {
        if let Ok(req) = serde_json::from_str::<Request<'_>>(text) {
            match text_of(req.kind).as_deref() {
                Some("direct") => {
                    if let Some(payload) = body_as_written(&req, text) {
                        return self.direct_as_written(&req, payload, shard);
                    }
                }
                Some("broadcast") => {
                    if let Some(payload) = body_as_written(&req, text) {
                        let from = text_of(req.from_agent).unwrap_or_default();
                        let agent_type = text_of(req.agent_type);
                        let message_type = text_of(req.message_type);
                        return self.broadcast(
                            &from,
                            agent_type.as_deref().unwrap_or("all"),
                            message_type.as_deref().unwrap_or("broadcast"),
                            number_of(req.exclude_self).unwrap_or(true),
                            payload,
                        );
                    }
                }
                Some(kind @ ("lock_request" | "lock_release")) => {
                    return self.lock(kind == "lock_request", &req);
                }
                Some(kind @ ("barrier_enter" | "barrier_release")) => {
                    return self.barrier(kind == "barrier_enter", &req);
                }
                Some(kind @ ("heartbeat" | "unregister")) => {
                    return self.heartbeat(kind == "heartbeat", &req);
                }
                _ => {}
            }
        }
        let Ok(req) = serde_json::from_str::<Value>(text) else {
            self.send(error("invalid_json", "Invalid JSON"));
            return None;
        };
        let kind = str_field(&req, "type").unwrap_or("").to_string();
        match kind.as_str() {
            "register" => self.register(&req),
            "discover" => {
                let agent_type = str_field(&req, "agent_type").map_or(0, type_id_of);
                let capability = str_field(&req, "capability").map(String::from);
                let region = req.get("region_overlap").filter(|v| !v.is_null()).cloned();
                let found = Found {
                    agent_type,
                    capability,
                    read: 0,
                    listed: 0,
                    ours: 0,
                    names_only: false,
                };
                self.listed.clear();
                Some(self.discover_next(found, |found| Awaiting::Discover { found, region }))
            }
            "direct" => self.direct(&req, shard),
            "broadcast" => self.broadcast(
                str_field(&req, "from_agent").unwrap_or(""),
                str_field(&req, "agent_type").unwrap_or("all"),
                str_field(&req, "message_type").unwrap_or("broadcast"),
                req.get("exclude_self").and_then(Value::as_bool).unwrap_or(true),
                &payload_of(&req).to_string(),
            ),
            other => {
                self.send(error("unknown_message_type", format!("Unknown message type: {other}")));
                None
            }
        }
    }

    pub(super) fn register(&mut self, req: &Value) -> Option<Vec<u8>> {
        let name = str_field(req, "agent_id").map(String::from).unwrap_or_else(|| {
            format!(
                "agent-{:08x}",
                fnv64(&format!("{}{}", clock::now_ns(), self.next_request)) as u32
            )
        });
        let agent_type = str_field(req, "agent_type").unwrap_or("generic");
        let mut capabilities: Vec<String> = req
            .get("capabilities")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
            .unwrap_or_default();
        capabilities.push(format!("type:{agent_type}"));
        if let Some(region) = req.get("region").filter(|v| v.is_object()) {
            capabilities.push(format!("region:{region}"));
        }
        let topics: Vec<TopicId> = req
            .get("topics")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(topic_id_of).collect())
            .unwrap_or_default();
        let id = agent_id_of(&name);
        let mut messages = Vec::new();
        // Registering again overwrites (as in the seed): drop the earlier registration first.
        if let Some(old) = self.ours(&name) {
            let request_id = self.request_id();
            messages.push(Message::Control(Control::Unregister(Unregister {
                request_id,
                agent_id: old,
            })));
            self.agents.retain(|a| a.name != name);
        }
        let request_id = self.request_id();
        messages.push(Message::Control(Control::Register(Register {
            request_id,
            agent_id: id,
            agent_type: type_id_of(agent_type),
            name: name.clone(),
            capabilities,
            topics: topics.clone(),
            token: str_field(req, "token").map(String::from),
        })));
        self.awaiting = Some((
            request_id,
            Awaiting::Register { name, agent_type: type_id_of(agent_type), topics },
        ));
        Some(self.frame(&messages))
    }

    /// [`Session::direct`] for a request read borrowed: the same checks and answers, with the
    /// payload and correlation id passed on as written and the `ack` a constant.
    pub(super) fn direct_as_written(
        &mut self,
        req: &Request<'_>,
        payload: &str,
        shard: &Shard,
    ) -> Option<Vec<u8>> {
        let from = text_of(req.from_agent).unwrap_or_default();
        let to = text_of(req.to_agent).unwrap_or_default();
        let (sender, target) = self.sender_and_target(&from, &to, shard)?;
        let message_type = text_of(req.message_type);
        let message_type = message_type.as_deref().unwrap_or("message");
        let mut body = std::mem::take(&mut self.body);
        let correlation = req.correlation_id.map_or("null", RawValue::get);
        wrap_into(&mut body, &from, message_type, payload, correlation);
        let frame = self.data_frame(DataKind::Direct, sender, target.0, message_type, &body);
        self.body = body;
        self.queue(Out::Constant(DELIVERED));
        Some(frame)
    }

    /// The ids of a `direct`'s sender (an agent of this connection) and of its recipient (known
    /// to the shard and not offline); else answers why not.
    pub(super) fn sender_and_target(
        &mut self,
        from: &str,
        to: &str,
        shard: &Shard,
    ) -> Option<(AgentId, AgentId)> {
        let sender = self.ours_or_error(from)?;
        let target = agent_id_of(to);
        match shard.presence(target) {
            None => {
                self.send(error("agent_not_found", format!("Agent not found: {to}")));
                None
            }
            Some(Presence::Local { online: false }) => {
                self.send(error("agent_offline", format!("Agent offline: {to}")));
                None
            }
            Some(_) => Some((sender, target)),
        }
    }

    pub(super) fn direct(&mut self, req: &Value, shard: &Shard) -> Option<Vec<u8>> {
        let from = str_field(req, "from_agent").unwrap_or("").to_string();
        let to = str_field(req, "to_agent").unwrap_or("").to_string();
        let (sender, target) = self.sender_and_target(&from, &to, shard)?;
        let message_type = str_field(req, "message_type").unwrap_or("message");
        let payload = payload_of(req).to_string();
        let correlation = req.get("correlation_id").unwrap_or(&Value::Null).to_string();
        let mut body = std::mem::take(&mut self.body);
        wrap_into(&mut body, &from, message_type, &payload, &correlation);
        let frame = self.data_frame(DataKind::Direct, sender, target.0, message_type, &body);
        self.body = body;
        self.queue(Out::Constant(DELIVERED));
        Some(frame)
    }

    /// A `broadcast` from `from` (`payload`: a JSON text). It goes to the shard in one frame with
    /// the discovery that lists its recipients for the ack ([`Session::discover`]): the shard
    /// sends it out, then answers the discovery.
    pub(super) fn broadcast(
        &mut self,
        from: &str,
        agent_type: &str,
        message_type: &str,
        exclude_self: bool,
        payload: &str,
    ) -> Option<Vec<u8>> {
        let sender = self.ours_or_error(from)?;
        let mut body = std::mem::take(&mut self.body);
        wrap_into(&mut body, from, message_type, payload, "null");
        let to = type_id_of(agent_type);
        let env = self.envelope(DataKind::Broadcast, sender, to, message_type, &body);
        let found = Found {
            agent_type: to,
            capability: None,
            read: 0,
            listed: 0,
            ours: 0,
            names_only: true,
        };
        let discover = self.discover(&found);
        self.awaiting =
            Some((discover.request_id, Awaiting::Broadcast { found, from: sender, exclude_self }));
        let frame =
            self.frame(&[Message::Data(env), Message::Control(Control::Discover(discover))]);
        self.body = body;
        if !exclude_self {
            self.send_named("broadcast", "from_agent", from, |b| {
                member(b, "message_type", message_type);
                b.extend_from_slice(br#","payload":"#);
                b.extend_from_slice(payload.as_bytes());
                member(b, "timestamp", &unix_now());
            });
        }
        self.listed.clear();
        Some(frame)
    }

    /// The request for the next page of the agents `found` lists.
    pub(super) fn discover(&mut self, found: &Found) -> Discover {
        Discover {
            request_id: self.request_id(),
            agent_type: found.agent_type,
            capability: found.capability.clone(),
            offset: found.read,
            limit: 0,
            names_only: found.names_only,
        }
    }

    /// Asks the shard for the next page of the agents `found` lists, to be answered as
    /// `awaiting` says.
    pub(super) fn discover_next(
        &mut self,
        found: Found,
        awaiting: impl FnOnce(Found) -> Awaiting,
    ) -> Vec<u8> {
        let d = self.discover(&found);
        self.awaiting = Some((d.request_id, awaiting(found)));
        self.frame(&[Message::Control(Control::Discover(d))])
    }

    /// `heartbeat` (or `unregister`) for one of this connection's agents.
    pub(super) fn heartbeat(&mut self, heartbeat: bool, req: &Request<'_>) -> Option<Vec<u8>> {
        let agent = text_of(req.agent_id).unwrap_or_default();
        let id = self.ours_or_error(&agent)?;
        let name = self.name(&agent);
        let request_id = self.request_id();
        let (ctl, awaiting) = if heartbeat {
            (
                Control::Heartbeat(Heartbeat { request_id, agent_id: id }),
                Awaiting::Heartbeat { name },
            )
        } else {
            (
                Control::Unregister(Unregister { request_id, agent_id: id }),
                Awaiting::Unregister { name },
            )
        };
        self.awaiting = Some((request_id, awaiting));
        Some(self.frame(&[Message::Control(ctl)]))
    }

    /// `lock_request` (`request`) or `lock_release`.
    pub(super) fn lock(&mut self, request: bool, req: &Request<'_>) -> Option<Vec<u8>> {
        let agent = text_of(req.agent_id).unwrap_or_default();
        let lock = text_of(req.lock_id).unwrap_or_default();
        let id = self.ours_or_error(&agent)?;
        let lock_id = lock_id_of(&lock);
        let key = (id, lock_id);
        let name = self.name(&lock);
        let request_id = self.request_id();
        let ctl = if request {
            let lease_s = number_of::<f64>(req.timeout).unwrap_or(30.0).max(0.001);
            let already_held = self.held.get(&key).is_some_and(|&ends| ends > unix_now());
            let waiting = self.name(&lock);
            if let Some(old) = self.lock_waits.insert(key, waiting) {
                self.recycle(old);
            }
            self.awaiting = Some((request_id, Awaiting::Lock { name, already_held, key }));
            let lease_ms = (lease_s * 1000.0).min(f64::from(u32::MAX)) as u32;
            Control::LockRequest(LockRequest { request_id, agent_id: id, lock_id, lease_ms })
        } else {
            self.awaiting = Some((request_id, Awaiting::Release { name, key }));
            Control::LockRelease(LockRelease { request_id, agent_id: id, lock_id })
        };
        Some(self.frame(&[Message::Control(ctl)]))
    }

    /// `barrier_enter` (`enter`) or `barrier_release`.
    pub(super) fn barrier(&mut self, enter: bool, req: &Request<'_>) -> Option<Vec<u8>> {
        let barrier = text_of(req.barrier_id).unwrap_or_default();
        let barrier_id = barrier_id_of(&barrier);
        // barrier_release names no agent in the seed protocol: any agent of this connection acts.
        let id = match text_of(req.agent_id) {
            Some(agent) => self.ours_or_error(&agent)?,
            None => match self.agents.first() {
                Some(a) => a.id,
                None => {
                    self.send(error("agent_not_found", "Agent not found: "));
                    return None;
                }
            },
        };
        let name = self.name(&barrier);
        let request_id = self.request_id();
        let ctl = if enter {
            let expected = number_of::<u64>(req.expected_count).unwrap_or(2) as u32;
            let key = (id, barrier_id);
            let waiting = self.name(&barrier);
            if let Some(old) = self.barrier_waits.insert(key, waiting) {
                self.recycle(old);
            }
            self.awaiting = Some((request_id, Awaiting::Barrier { name, key }));
            Control::BarrierEnter(BarrierEnter { request_id, agent_id: id, barrier_id, expected })
        } else {
            self.awaiting = Some((request_id, Awaiting::BarrierForce { name }));
            Control::BarrierForce(BarrierForce { request_id, agent_id: id, barrier_id })
        };
        Some(self.frame(&[Message::Control(ctl)]))
    }
}
