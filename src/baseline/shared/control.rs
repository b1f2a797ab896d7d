//! A shared-state connection's control messages: registration, discovery, subscriptions, locks,
//! barriers, stats.

use crate::clock;
use crate::route::coord::{self, BarrierOutcome, Grant, LockOutcome, Waiter};
use crate::wire::control::{
    Ack, AgentInfo, BarrierEnter, BarrierWait, Discover, DiscoverReply, LockGranted, LockQueued,
    LockRequest, Register, StatsReply, Subscribe,
};
use crate::wire::{AgentId, Control, ErrorCode};

use super::conn::Conn;
use super::Agent;

impl Conn {
    pub(super) fn on_control(&mut self, ctl: Control) {
        // Requests about an agent must come from the connection it is registered on.
        if let Some((agent, request_id)) = agent_scope(&ctl) {
            if !self.mine(agent, request_id) {
                return;
            }
        }
        match ctl {
            Control::Register(r) => self.on_register(r),
            Control::Unregister(u) => {
                self.remove_agent(u.agent_id);
                self.queue_control(self.id, &Control::Ack(Ack { request_id: u.request_id }));
            }
            Control::Heartbeat(h) => {
                if let Some(mut a) = self.state.agents.get_mut(&h.agent_id) {
                    a.last_seen_ns = self.now_ns;
                }
                self.queue_control(self.id, &Control::Ack(Ack { request_id: h.request_id }));
            }
            Control::Discover(d) => self.on_discover(d),
            Control::Subscribe(s) => self.on_subscribe(s),
            Control::Unsubscribe(u) => {
                if let Some(mut a) = self.state.agents.get_mut(&u.agent_id) {
                    a.topics.retain(|&t| t != u.topic);
                }
                if let Some(mut subs) = self.state.topics.get_mut(&u.topic) {
                    subs.retain(|&a| a != u.agent_id);
                }
                self.queue_control(self.id, &Control::Ack(Ack { request_id: u.request_id }));
            }
            Control::LockRequest(l) => self.on_lock_request(l),
            Control::LockRelease(l) => {
                let mut grants = Vec::new();
                let now = self.now_ns;
                match self.state.with_locks(|t| t.release(l.agent_id, l.lock_id, now, &mut grants))
                {
                    Ok(()) => {
                        self.queue_control(self.id, &Control::Ack(Ack { request_id: l.request_id }))
                    }
                    Err(code) => {
                        self.request_error(l.request_id, l.agent_id, code, "lock release refused")
                    }
                }
                self.deliver_grants(grants);
            }
            Control::BarrierEnter(b) => self.on_barrier_enter(b),
            Control::BarrierForce(b) => match self.state.with_barriers(|t| t.force(b.barrier_id)) {
                Some(all) => {
                    for (w, release) in coord::releases(b.barrier_id, &all) {
                        self.control_to_agent(w.agent, &release);
                    }
                    self.queue_control(self.id, &Control::Ack(Ack { request_id: b.request_id }));
                }
                None => self.request_error(
                    b.request_id,
                    b.agent_id,
                    ErrorCode::BarrierNotFound,
                    "nobody waits at that barrier",
                ),
            },
            Control::StatsRequest(s) => {
                let stats = self.state.stats(0);
                let reply = Control::StatsReply(StatsReply {
                    request_id: s.request_id,
                    shards: vec![stats],
                    heartbeat_timeout_ms: self.state.cfg.heartbeat_timeout.as_millis() as u64,
                });
                self.queue_control(self.id, &reply);
            }
            // One runtime shared by every connection: nowhere to place a connection.
            Control::Home(_) => {}
            // Its threads never watch their sockets: nothing to stop.
            Control::ShareCores(s) => {
                self.queue_control(self.id, &Control::Ack(Ack { request_id: s.request_id }));
            }
            _ => {}
        }
    }

    /// Registers an agent on this connection, unless its id is reserved or taken or the token
    /// is wrong (which closes the connection).
    fn on_register(&mut self, r: Register) {
        if r.agent_id.0 == 0 {
            return self.request_error(
                r.request_id,
                r.agent_id,
                ErrorCode::InvalidRequest,
                "agent id 0 is reserved: it marks errors about no agent",
            );
        }
        if let Some(token) = &self.state.cfg.token {
            if !crate::route::token_matches(token, r.token.as_deref()) {
                self.request_error(
                    r.request_id,
                    r.agent_id,
                    ErrorCode::Unauthorized,
                    "registration token missing or wrong",
                );
                self.failed = true; // refused: the connection closes after this pass
                return;
            }
        }
        let inserted = match self.state.agents.entry(r.agent_id) {
            dashmap::Entry::Occupied(_) => false,
            dashmap::Entry::Vacant(v) => {
                v.insert(Agent {
                    conn: self.id,
                    agent_type: r.agent_type,
                    name: r.name,
                    capabilities: r.capabilities,
                    topics: r.topics.clone(),
                    last_seen_ns: self.now_ns,
                    conn_seen_ns: self.seen_ns.clone(),
                });
                true
            }
        };
        if !inserted {
            return self.request_error(
                r.request_id,
                r.agent_id,
                ErrorCode::DuplicateAgent,
                "agent id is already registered",
            );
        }
        self.agents.push(r.agent_id);
        for t in r.topics {
            self.state.topics.entry(t).or_default().push(r.agent_id);
        }
        self.queue_control(self.id, &Control::Ack(Ack { request_id: r.request_id }));
    }

    /// The registered agents of a type or capability, a page of them.
    fn on_discover(&mut self, d: Discover) {
        let mut found: Vec<AgentInfo> = self
            .state
            .agents
            .iter()
            .filter(|a| d.agent_type == 0 || a.agent_type == d.agent_type)
            .filter(|a| d.capability.as_ref().is_none_or(|c| a.capabilities.contains(c)))
            .map(|a| AgentInfo {
                agent_id: *a.key(),
                agent_type: a.agent_type,
                name: a.name.clone(),
                capabilities: if d.names_only { Vec::new() } else { a.capabilities.clone() },
                online: self.state.online(&a, self.now_ns),
                shard: 0,
            })
            .collect();
        found.sort_by_key(|a| a.agent_id);
        let total = found.len() as u32;
        let limit = if d.limit == 0 { 1000 } else { d.limit.min(1000) } as usize;
        let agents = found.into_iter().skip(d.offset as usize).take(limit).collect();
        let reply =
            Control::DiscoverReply(DiscoverReply { request_id: d.request_id, total, agents });
        self.queue_control(self.id, &reply);
    }

    fn on_subscribe(&mut self, s: Subscribe) {
        let mut fresh = false;
        if let Some(mut a) = self.state.agents.get_mut(&s.agent_id) {
            if !a.topics.contains(&s.topic) {
                a.topics.push(s.topic);
                fresh = true;
            }
        }
        if fresh {
            self.state.topics.entry(s.topic).or_default().push(s.agent_id);
        }
        self.queue_control(self.id, &Control::Ack(Ack { request_id: s.request_id }));
    }

    /// Takes a lock or queues for it; grants that follow go to their waiters' connections.
    fn on_lock_request(&mut self, l: LockRequest) {
        let waiter = Waiter { agent: l.agent_id, request_id: l.request_id, home: 0 };
        let mut grants = Vec::new();
        let now = self.now_ns;
        let state = self.state.clone();
        // A queued waiter hears "queued" before its grant: the grant comes from whichever
        // thread releases the lock, under this same mutex, so "queued" leaves under it.
        let mut answered = false;
        let outcome = state.with_locks(|t| {
            let outcome = t.request(waiter, l.lock_id, l.lease_ms, now, &mut grants);
            if let LockOutcome::Queued { position } = outcome {
                let queued = LockQueued {
                    request_id: l.request_id,
                    agent_id: l.agent_id,
                    lock_id: l.lock_id,
                    position,
                };
                answered = self.send_own_now(&Control::LockQueued(queued));
            }
            outcome
        });
        self.deliver_grants(grants);
        if answered {
            return;
        }
        let reply = match outcome {
            LockOutcome::Granted { lease_ms } => Control::LockGranted(LockGranted {
                request_id: l.request_id,
                agent_id: l.agent_id,
                lock_id: l.lock_id,
                lease_ms,
            }),
            LockOutcome::Queued { position } => Control::LockQueued(LockQueued {
                request_id: l.request_id,
                agent_id: l.agent_id,
                lock_id: l.lock_id,
                position,
            }),
        };
        self.queue_control(self.id, &reply);
    }

    /// Waits at a barrier, or releases everyone waiting there.
    fn on_barrier_enter(&mut self, b: BarrierEnter) {
        let waiter = Waiter { agent: b.agent_id, request_id: b.request_id, home: 0 };
        let wait = |arrived, expected| {
            Control::BarrierWait(BarrierWait {
                request_id: b.request_id,
                agent_id: b.agent_id,
                barrier_id: b.barrier_id,
                arrived,
                expected,
            })
        };
        // As with locks: the wait notice goes out while the table is locked, so the
        // release (queued by whichever connection completes the barrier) can only
        // follow it; queued at the end of this pass it could overtake (CI saw a wait
        // after a release). A full queue leaves it to the pass, as any reply.
        let state = self.state.clone();
        let mut answered = false;
        let outcome = state.with_barriers(|t| {
            let outcome = t.enter(waiter, b.barrier_id, b.expected);
            if let Ok(BarrierOutcome::Waiting { arrived, expected }) = outcome {
                answered = self.send_own_now(&wait(arrived, expected));
            }
            outcome
        });
        match outcome {
            Ok(BarrierOutcome::Waiting { .. }) if answered => {}
            Ok(BarrierOutcome::Waiting { arrived, expected }) => {
                self.queue_control(self.id, &wait(arrived, expected));
            }
            Ok(BarrierOutcome::Released(all)) => {
                for (w, release) in coord::releases(b.barrier_id, &all) {
                    self.control_to_agent(w.agent, &release);
                }
            }
            Err(code) => self.request_error(
                b.request_id,
                b.agent_id,
                code,
                "barrier expected count must be at least 1",
            ),
        }
    }

    /// Whether `agent` is registered on this connection; answers `unknown_agent` if not.
    pub(super) fn mine(&mut self, agent: AgentId, request_id: u64) -> bool {
        if self.agents.contains(&agent) {
            return true;
        }
        self.request_error(
            request_id,
            agent,
            ErrorCode::UnknownAgent,
            "agent is not registered on this connection",
        );
        false
    }

    pub(super) fn control_to_agent(&mut self, agent: AgentId, ctl: &Control) {
        if let Some(conn) = self.state.agents.get(&agent).map(|a| a.conn) {
            self.queue_control(conn, ctl);
        }
    }

    pub(super) fn deliver_grants(&mut self, grants: Vec<Grant>) {
        for g in grants {
            self.control_to_agent(g.waiter.agent, &g.message());
        }
    }

    pub(super) fn remove_agent(&mut self, agent: AgentId) {
        self.agents.retain(|&a| a != agent);
        if let Some((_, a)) = self.state.agents.remove(&agent) {
            for t in a.topics {
                if let Some(mut subs) = self.state.topics.get_mut(&t) {
                    subs.retain(|&x| x != agent);
                }
            }
        }
        let mut grants = Vec::new();
        let now = self.now_ns;
        self.state.with_locks(|t| t.remove_agent(agent, now, &mut grants));
        self.state.with_barriers(|t| t.remove_agent(agent));
        self.deliver_grants(grants);
    }

    /// The connection ended: drop its agents (handing their locks on) and flush what that
    /// produced for others.
    pub(super) async fn close(&mut self) {
        self.now_ns = clock::now_ns();
        for agent in std::mem::take(&mut self.agents) {
            self.remove_agent(agent);
        }
        self.flush().await;
    }
}

/// The agent and request id of a request that acts for one agent.
fn agent_scope(ctl: &Control) -> Option<(AgentId, u64)> {
    match ctl {
        Control::Unregister(m) => Some((m.agent_id, m.request_id)),
        Control::Heartbeat(m) => Some((m.agent_id, m.request_id)),
        Control::Subscribe(m) => Some((m.agent_id, m.request_id)),
        Control::Unsubscribe(m) => Some((m.agent_id, m.request_id)),
        Control::LockRequest(m) => Some((m.agent_id, m.request_id)),
        Control::LockRelease(m) => Some((m.agent_id, m.request_id)),
        Control::BarrierEnter(m) => Some((m.agent_id, m.request_id)),
        Control::BarrierForce(m) => Some((m.agent_id, m.request_id)),
        _ => None,
    }
}
