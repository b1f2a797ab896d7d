//! The control plane: registration, subscriptions, locks, barriers, discovery and stats, and
//! the shard-to-shard protocol that keeps them correct across shards.
//!
//! - An agent id is arbitrated by its owner shard (`id % shards`): a registration *claims* the id
//!   there first, so two shards can never both accept it.
//! - A registration or subscription is acknowledged only after a *sync round*: every peer has
//!   applied the change (channels are FIFO, so a `Sync` answered means everything before it is
//!   applied). After the ack, any agent on any shard can reach the new agent or subscription.
//! - Each lock and barrier lives on its owner shard (`id % shards`), which serializes requests
//!   and sends the outcomes to the agents' home shards.
//! - Discovery and stats are scatter-gather: ask every peer, answer when all have replied.

use std::borrow::Cow;

use super::coord::{self, BarrierOutcome, Grant, LockOutcome, Waiter};
use super::peer::PeerMsg;
use super::{ConnId, LocalAgent, Route, Shard};
use crate::wire::control::{
    Ack, AgentInfo, BarrierWait, Discover, DiscoverReply, Error as ErrorMsg, Heartbeat,
    LockGranted, LockQueued, Register, ShareCores, StatsReply, StatsRequest,
};
use crate::wire::{AgentId, BarrierId, Control, ErrorCode, LockId, ShardStats, TopicId};

/// Most agents one discover reply carries.
const DISCOVER_PAGE_MAX: u32 = 1000;
/// How long a registration of an id still held waits for the holder to go before the answer is
/// `duplicate_agent`: an agent that reconnects right after its connection closed must not lose
/// to its own old registration, whose removal takes a few milliseconds.
pub(super) const REREGISTER_WAIT_NS: u64 = 100_000_000;
/// Most registrations waiting at once; past it the answer is `duplicate_agent` at once.
pub(super) const DEFERRED_MAX: usize = 4096;

/// Whether `offered` is the router's token, compared in constant time (no timing oracle).
pub fn token_matches(token: &str, offered: Option<&str>) -> bool {
    use subtle::ConstantTimeEq;
    offered.is_some_and(|o| bool::from(o.as_bytes().ct_eq(token.as_bytes())))
}

/// A client request waiting for peers.
#[derive(Debug)]
pub(super) enum Pending {
    /// Waiting for the id's owner to accept the claim (until `deadline` if the id is held).
    Claim { conn: ConnId, reg: Register, deadline: u64 },
    /// Waiting for every peer's `SyncAck`; then `reply` goes to `conn`.
    Sync { conn: ConnId, reply: Control, acks_left: u16 },
    /// Collecting matches from every peer.
    Discover {
        conn: ConnId,
        request_id: u64,
        offset: u32,
        limit: u32,
        acks_left: u16,
        found: Vec<AgentInfo>,
    },
    /// Collecting counters from every peer.
    Stats { conn: ConnId, request_id: u64, acks_left: u16, shards: Vec<ShardStats> },
}

/// How long a connection closing after an error may take to flush before it is cut off.
pub(super) const FLUSH_GRACE_NS: u64 = 2_000_000_000;
/// The longest lease a `share_cores` message may ask for (ms).
const SHARE_LEASE_MAX_MS: u32 = 60_000;

impl Shard {
    /// Handles a control message from a client. `Err` is fatal: the client sent a kind only the
    /// router may send.
    pub(super) fn on_control(&mut self, id: ConnId, ctl: Control) -> Result<(), ErrorCode> {
        match ctl {
            Control::Register(r) => {
                let deadline = self.now_ns + REREGISTER_WAIT_NS;
                self.register(id, r, deadline)
            }
            Control::Unregister(u) => {
                if let Some(li) = self.agent_on(id, u.agent_id, u.request_id) {
                    self.remove_local_agent(li);
                    self.sync_then_reply(id, Control::Ack(Ack { request_id: u.request_id }));
                }
            }
            Control::Heartbeat(h) => self.on_heartbeat(id, h),
            Control::Discover(d) => self.on_discover(id, d),
            Control::Subscribe(s) => {
                if let Some(li) = self.agent_on(id, s.agent_id, s.request_id) {
                    self.subscribe_local(li, s.topic);
                    self.sync_then_reply(id, Control::Ack(Ack { request_id: s.request_id }));
                }
            }
            Control::Unsubscribe(u) => {
                if let Some(li) = self.agent_on(id, u.agent_id, u.request_id) {
                    self.unsubscribe_local(li, u.topic);
                    self.reply(id, Control::Ack(Ack { request_id: u.request_id }));
                }
            }
            Control::LockRequest(l) => {
                let (lock, lease_ms) = (l.lock_id, l.lease_ms);
                self.send_to_owner(id, l.agent_id, l.request_id, lock.0, |waiter| {
                    PeerMsg::LockRequest { waiter, lock, lease_ms }
                });
            }
            Control::LockRelease(l) => {
                let lock = l.lock_id;
                self.send_to_owner(id, l.agent_id, l.request_id, lock.0, |waiter| {
                    PeerMsg::LockRelease { waiter, lock }
                });
            }
            Control::BarrierEnter(b) => {
                let (barrier, expected) = (b.barrier_id, b.expected);
                self.send_to_owner(id, b.agent_id, b.request_id, barrier.0, |waiter| {
                    PeerMsg::BarrierEnter { waiter, barrier, expected }
                });
            }
            Control::BarrierForce(b) => {
                let barrier = b.barrier_id;
                self.send_to_owner(id, b.agent_id, b.request_id, barrier.0, |waiter| {
                    PeerMsg::BarrierForce { waiter, barrier }
                });
            }
            Control::StatsRequest(s) => self.on_stats_request(id, s),
            // Read by the acceptor before the connection reached a shard (`server`); a hint,
            // never answered, ignored anywhere else.
            Control::Home(_) => {}
            Control::ShareCores(s) => self.on_share_cores(id, s),
            _ => return Err(ErrorCode::UnexpectedMessage),
        }
        Ok(())
    }

    /// An agent on connection `id` is alive.
    fn on_heartbeat(&mut self, id: ConnId, h: Heartbeat) {
        if let Some(li) = self.agent_on(id, h.agent_id, h.request_id) {
            let a = &mut self.local[li as usize];
            a.last_seen_ns = self.now_ns;
            a.online = true;
            self.reply(id, Control::Ack(Ack { request_id: h.request_id }));
        }
    }

    /// Discovery: this shard's matches, and every peer asked for theirs; answered once all
    /// have ([`Pending::Discover`]).
    fn on_discover(&mut self, id: ConnId, d: Discover) {
        let found = self.local_matches(d.agent_type, d.capability.as_deref(), d.names_only);
        let acks_left = self.cfg.shards - 1;
        let token = self.token();
        let (request_id, offset, limit) = (d.request_id, d.offset, d.limit);
        self.pending.insert(
            token,
            Pending::Discover { conn: id, request_id, offset, limit, acks_left, found },
        );
        let (agent_type, capability, names_only) = (d.agent_type, d.capability, d.names_only);
        self.tell_all_peers(|| PeerMsg::DiscoverRequest {
            token,
            agent_type,
            capability: capability.clone(),
            names_only,
        });
        self.maybe_finish(token);
    }

    /// The router's counters: this shard's, and every peer asked for theirs; answered once all
    /// have ([`Pending::Stats`]).
    fn on_stats_request(&mut self, id: ConnId, s: StatsRequest) {
        let token = self.token();
        let acks_left = self.cfg.shards - 1;
        let shards = vec![self.stats()];
        let request_id = s.request_id;
        self.pending.insert(token, Pending::Stats { conn: id, request_id, acks_left, shards });
        self.tell_all_peers(|| PeerMsg::StatsRequest { token });
        self.maybe_finish(token);
    }

    /// A client shares cores with this router for a while: for this router's shards on those
    /// cores, each shard's ring looks it up at its next doze.
    fn on_share_cores(&mut self, id: ConnId, s: ShareCores) {
        let lease = u64::from(s.lease_ms.min(SHARE_LEASE_MAX_MS)) * 1_000_000;
        // A lease of 0 ends the lease now.
        let until = if lease == 0 { 0 } else { crate::clock::now_ns() + lease };
        self.share_core_until(&s.cores, until);
        let cores = s.cores;
        self.tell_all_peers(|| PeerMsg::ShareCores { cores: cores.clone(), until });
        self.reply(id, Control::Ack(Ack { request_id: s.request_id }));
    }

    /// A client shares these cores until `until` (ns; 0: no longer): if this shard's core is
    /// one, its thread's socket ring stops watching until then
    /// ([`crate::placement::share_this_thread_until`]).
    fn share_core_until(&self, cores: &[u32], until: u64) {
        match until {
            _ if !cores.contains(&self.cfg.core) => {}
            0 => crate::placement::unshare_this_thread(),
            _ => crate::placement::share_this_thread_until(until),
        }
    }

    /// Registers `r` on connection `id`; if the id is held by someone else, waits (retried each
    /// tick) until `deadline` for the holder to go, then answers `duplicate_agent`.
    pub(super) fn register(&mut self, id: ConnId, r: Register, deadline: u64) {
        if r.agent_id.0 == 0 {
            let detail = "agent id 0 is reserved: it marks errors about no agent";
            return self.request_error(
                id,
                r.request_id,
                r.agent_id,
                ErrorCode::InvalidRequest,
                detail,
            );
        }
        if let Some(token) = &self.cfg.token {
            if !token_matches(token, r.token.as_deref()) {
                // Refused, and the connection closes after the error: no guessing on it.
                let detail = "registration token missing or wrong";
                self.request_error(id, r.request_id, r.agent_id, ErrorCode::Unauthorized, detail);
                return self.close_after_flush(id);
            }
        }
        if self.directory.contains_key(&r.agent_id) {
            return self.held(id, r, deadline);
        }
        let owner = self.owner_of(u64::from(r.agent_id.0));
        if owner == self.cfg.shard {
            if self.owned.contains_key(&r.agent_id) {
                return self.held(id, r, deadline);
            }
            self.owned.insert(r.agent_id, self.cfg.shard);
            self.complete_register(id, r);
        } else {
            let token = self.token();
            let agent = r.agent_id;
            self.pending.insert(token, Pending::Claim { conn: id, reg: r, deadline });
            self.peer_push_msg(owner, PeerMsg::Claim { agent, token });
        }
    }

    /// The id of `r` is held: try again next tick until `deadline`, then `duplicate_agent`.
    fn held(&mut self, id: ConnId, r: Register, deadline: u64) {
        if self.now_ns < deadline && self.deferred.len() < DEFERRED_MAX {
            self.deferred.push((id, r, deadline));
            return;
        }
        let detail = "agent id is already registered";
        self.request_error(id, r.request_id, r.agent_id, ErrorCode::DuplicateAgent, detail);
    }

    /// The id is ours: record the agent, tell every peer, ack after the sync round.
    fn complete_register(&mut self, id: ConnId, r: Register) {
        if !self.conn_mut(id).is_some_and(|c| c.closing == super::conn::Closing::No) {
            // The connection left while the claim was in flight: give the id back.
            if self.owned.get(&r.agent_id) == Some(&self.cfg.shard) {
                self.owned.remove(&r.agent_id);
            }
            let agent = r.agent_id;
            self.tell_all_peers(|| PeerMsg::AgentDown { agent });
            return;
        }
        let li = self.local.insert(LocalAgent {
            id: r.agent_id,
            agent_type: r.agent_type,
            conn: id.idx,
            name: r.name.into(),
            capabilities: r.capabilities.into_boxed_slice(),
            topics: Vec::new(),
            last_seen_ns: self.now_ns,
            online: true,
        }) as u32;
        self.directory.insert(r.agent_id, Route::Local(li));
        if let Some(c) = self.conn_mut(id) {
            c.agents.push(r.agent_id);
        }
        for topic in r.topics {
            self.subscribe_local(li, topic);
        }
        let agent = r.agent_id;
        self.tell_all_peers(|| PeerMsg::AgentUp { agent });
        self.sync_then_reply(id, Control::Ack(Ack { request_id: r.request_id }));
    }

    /// Removes a local agent everywhere: directory, topics, locks, barriers, every peer.
    pub(super) fn remove_local_agent(&mut self, li: u32) {
        if !self.local.contains(li as usize) {
            return;
        }
        let a = self.local.remove(li as usize);
        self.directory.remove(&a.id);
        if let Some(c) = self.conns.get_mut(a.conn as usize) {
            c.agents.retain(|x| *x != a.id);
        }
        for topic in a.topics {
            self.unsubscribe_topic(li, topic);
        }
        self.forget_in_coordination(a.id);
        if self.owned.get(&a.id) == Some(&self.cfg.shard) {
            self.owned.remove(&a.id);
        }
        let agent = a.id;
        self.tell_all_peers(|| PeerMsg::AgentDown { agent });
    }

    /// Removes every agent registered on connection slot `idx`.
    pub(super) fn drop_agents_of(&mut self, idx: u32) {
        let Some(c) = self.conns.get_mut(idx as usize) else { return };
        for agent in std::mem::take(&mut c.agents) {
            if let Some(&Route::Local(li)) = self.directory.get(&agent) {
                self.remove_local_agent(li);
            }
        }
    }

    /// Releases `agent`'s locks and barrier places held on this shard.
    fn forget_in_coordination(&mut self, agent: AgentId) {
        let mut grants = std::mem::take(&mut self.grants);
        self.locks.remove_agent(agent, self.now_ns, &mut grants);
        self.deliver_grants(&mut grants);
        self.grants = grants;
        self.barriers.remove_agent(agent);
    }

    fn subscribe_local(&mut self, li: u32, topic: TopicId) {
        let Some(a) = self.local.get_mut(li as usize) else { return };
        if a.topics.contains(&topic) {
            return;
        }
        a.topics.push(topic);
        let t = self.topics.entry(topic).or_default();
        t.subs.push(li);
        if t.subs.len() == 1 {
            self.tell_all_peers(|| PeerMsg::TopicInterest { topic, on: true });
        }
    }

    fn unsubscribe_local(&mut self, li: u32, topic: TopicId) {
        let Some(a) = self.local.get_mut(li as usize) else { return };
        let before = a.topics.len();
        a.topics.retain(|&t| t != topic);
        if a.topics.len() != before {
            self.unsubscribe_topic(li, topic);
        }
    }

    /// Drops `li` from the topic's subscribers, telling peers when the last one leaves.
    fn unsubscribe_topic(&mut self, li: u32, topic: TopicId) {
        let Some(t) = self.topics.get_mut(&topic) else { return };
        t.subs.retain(|&s| s != li);
        if t.subs.is_empty() {
            if t.remote == 0 {
                self.topics.remove(&topic);
            }
            self.tell_all_peers(|| PeerMsg::TopicInterest { topic, on: false });
        }
    }

    /// The local index of `agent` if it is registered on connection `id`; otherwise answers
    /// `unknown_agent` and returns `None`.
    fn agent_on(&mut self, id: ConnId, agent: AgentId, request_id: u64) -> Option<u32> {
        if let Some(&Route::Local(li)) = self.directory.get(&agent) {
            if self.local.get(li as usize).is_some_and(|a| a.conn == id.idx) {
                return Some(li);
            }
        }
        let detail = "agent is not registered on this connection";
        self.request_error(id, request_id, agent, ErrorCode::UnknownAgent, detail);
        None
    }

    /// Sends a lock or barrier request of `agent` (registered on `id`) to the shard owning
    /// `key`; the owner's handling is the same whether it is this shard or a peer.
    fn send_to_owner(
        &mut self,
        id: ConnId,
        agent: AgentId,
        request_id: u64,
        key: u64,
        make: impl FnOnce(Waiter) -> PeerMsg,
    ) {
        if self.agent_on(id, agent, request_id).is_none() {
            return;
        }
        let msg = make(Waiter { agent, request_id, home: self.cfg.shard });
        match self.owner_of(key) {
            owner if owner == self.cfg.shard => self.on_peer(owner, msg),
            owner => self.peer_push_msg(owner, msg),
        }
    }

    fn own_lock_request(&mut self, waiter: Waiter, lock: LockId, lease_ms: u32) {
        let mut grants = std::mem::take(&mut self.grants);
        let outcome = self.locks.request(waiter, lock, lease_ms, self.now_ns, &mut grants);
        self.deliver_grants(&mut grants);
        self.grants = grants;
        let (request_id, agent_id) = (waiter.request_id, waiter.agent);
        let reply = match outcome {
            LockOutcome::Granted { lease_ms } => {
                Control::LockGranted(LockGranted { request_id, agent_id, lock_id: lock, lease_ms })
            }
            LockOutcome::Queued { position } => {
                Control::LockQueued(LockQueued { request_id, agent_id, lock_id: lock, position })
            }
        };
        self.deliver_to(waiter, &reply);
    }

    fn own_lock_release(&mut self, waiter: Waiter, lock: LockId) {
        let mut grants = std::mem::take(&mut self.grants);
        let result = self.locks.release(waiter.agent, lock, self.now_ns, &mut grants);
        let reply = match result {
            Ok(()) => Control::Ack(Ack { request_id: waiter.request_id }),
            Err(code) => self.error_msg(waiter, code, "lock release refused"),
        };
        self.deliver_to(waiter, &reply);
        self.deliver_grants(&mut grants);
        self.grants = grants;
    }

    fn own_barrier_enter(&mut self, waiter: Waiter, barrier: BarrierId, expected: u32) {
        match self.barriers.enter(waiter, barrier, expected) {
            Ok(BarrierOutcome::Waiting { arrived, expected }) => {
                let reply = Control::BarrierWait(BarrierWait {
                    request_id: waiter.request_id,
                    agent_id: waiter.agent,
                    barrier_id: barrier,
                    arrived,
                    expected,
                });
                self.deliver_to(waiter, &reply);
            }
            Ok(BarrierOutcome::Released(all)) => {
                for (w, release) in coord::releases(barrier, &all) {
                    self.deliver_to(w, &release);
                }
                self.barriers.recycle(all);
            }
            Err(code) => {
                let reply =
                    self.error_msg(waiter, code, "barrier expected count must be at least 1");
                self.deliver_to(waiter, &reply);
            }
        }
    }

    fn own_barrier_force(&mut self, waiter: Waiter, barrier: BarrierId) {
        match self.barriers.force(barrier) {
            Some(all) => {
                for (w, release) in coord::releases(barrier, &all) {
                    self.deliver_to(w, &release);
                }
                self.barriers.recycle(all);
                self.deliver_to(waiter, &Control::Ack(Ack { request_id: waiter.request_id }));
            }
            None => {
                let reply = self.error_msg(
                    waiter,
                    ErrorCode::BarrierNotFound,
                    "nobody waits at that barrier",
                );
                self.deliver_to(waiter, &reply);
            }
        }
    }

    pub(super) fn deliver_grants(&mut self, grants: &mut Vec<Grant>) {
        for g in grants.drain(..) {
            self.deliver_to(g.waiter, &g.message());
        }
    }

    /// Sends a router → client message to a waiter, on this shard or its home shard.
    fn deliver_to(&mut self, waiter: Waiter, ctl: &Control) {
        if waiter.home != self.cfg.shard {
            return self.control_to_peer(waiter.home, waiter.agent, ctl);
        }
        if let Some(&Route::Local(li)) = self.directory.get(&waiter.agent) {
            if let Some(conn) = self.local.get(li as usize).map(|a| a.conn) {
                self.reply_conn(conn, ctl);
            }
        }
    }

    fn error_msg(&mut self, waiter: Waiter, code: ErrorCode, detail: &'static str) -> Control {
        self.count_error(code);
        Control::Error(ErrorMsg {
            code: code.code(),
            request_id: waiter.request_id,
            message_id: 0,
            agent_id: waiter.agent,
            detail: Cow::Borrowed(detail),
        })
    }

    fn request_error(
        &mut self,
        id: ConnId,
        request_id: u64,
        agent: AgentId,
        code: ErrorCode,
        detail: &'static str,
    ) {
        let waiter = Waiter { agent, request_id, home: self.cfg.shard };
        let err = self.error_msg(waiter, code, detail);
        self.reply(id, err);
    }

    /// Closes connection `id` once what is queued for it is written (or after
    /// [`FLUSH_GRACE_NS`], whichever comes first); its agents leave now.
    pub(super) fn close_after_flush(&mut self, id: ConnId) {
        if self.conn_mut(id).is_none() {
            return;
        }
        self.drop_agents_of(id.idx);
        let give_up_ns = self.now_ns + FLUSH_GRACE_NS;
        if let Some(c) = self.conn_mut(id) {
            c.closing = super::conn::Closing::AfterFlush;
            // A client that never reads must not hold its connection open forever.
            let k = c.cold();
            k.give_up_ns = k.give_up_ns.min(give_up_ns);
            if let Some(w) = c.writer.take() {
                w.wake();
            }
        }
    }

    /// Replies on connection `id` if it is still the same connection and open.
    fn reply(&mut self, id: ConnId, ctl: Control) {
        if self.conn_mut(id).is_some() && self.conn_open(id.idx) {
            self.reply_conn(id.idx, &ctl);
        }
    }

    /// Replies once every peer has applied what this shard sent before (at once with 1 shard).
    fn sync_then_reply(&mut self, id: ConnId, reply: Control) {
        if self.cfg.shards == 1 {
            return self.reply(id, reply);
        }
        let token = self.token();
        let acks_left = self.cfg.shards - 1;
        self.pending.insert(token, Pending::Sync { conn: id, reply, acks_left });
        self.tell_all_peers(|| PeerMsg::Sync { token });
    }

    /// This shard's agents of `agent_type` (0: any) with `capability`; with `names_only`, their
    /// capabilities left out.
    fn local_matches(
        &self,
        agent_type: u32,
        capability: Option<&str>,
        names_only: bool,
    ) -> Vec<AgentInfo> {
        self.local
            .iter()
            .filter(|(_, a)| agent_type == 0 || a.agent_type == agent_type)
            .filter(|(_, a)| capability.is_none_or(|c| a.capabilities.iter().any(|x| x == c)))
            .map(|(_, a)| AgentInfo {
                agent_id: a.id,
                agent_type: a.agent_type,
                name: a.name.to_string(),
                capabilities: if names_only { Vec::new() } else { a.capabilities.to_vec() },
                online: a.online,
                shard: self.cfg.shard,
            })
            .collect()
    }

    /// Answers a scatter-gather request once every peer has replied.
    fn maybe_finish(&mut self, token: u64) {
        let done = match self.pending.get(&token) {
            Some(Pending::Discover { acks_left, .. } | Pending::Stats { acks_left, .. }) => {
                *acks_left == 0
            }
            _ => false,
        };
        if !done {
            return;
        }
        match self.pending.remove(&token) {
            Some(Pending::Discover { conn, request_id, offset, limit, mut found, .. }) => {
                found.sort_by_key(|a| a.agent_id);
                let total = found.len() as u32;
                let limit =
                    if limit == 0 { DISCOVER_PAGE_MAX } else { limit.min(DISCOVER_PAGE_MAX) };
                let agents = found.into_iter().skip(offset as usize).take(limit as usize).collect();
                self.reply(
                    conn,
                    Control::DiscoverReply(DiscoverReply { request_id, total, agents }),
                );
            }
            Some(Pending::Stats { conn, request_id, mut shards, .. }) => {
                shards.sort_by_key(|s| s.shard);
                let heartbeat_timeout_ms = self.cfg.heartbeat_timeout.as_millis() as u64;
                let reply = StatsReply { request_id, shards, heartbeat_timeout_ms };
                self.reply(conn, Control::StatsReply(reply));
            }
            _ => {}
        }
    }

    /// Handles a message from peer shard `from`.
    pub fn on_peer(&mut self, from: u16, msg: PeerMsg) {
        match msg {
            PeerMsg::Data(batch) => self.on_peer_batch(from, batch),
            PeerMsg::Claim { agent, token } => self.on_claim(from, agent, token),
            PeerMsg::ClaimReply { token, granted } => self.on_claim_reply(token, granted),
            PeerMsg::AgentUp { agent } => {
                self.directory.entry(agent).or_insert(Route::Remote(from));
            }
            PeerMsg::AgentDown { agent } => self.on_agent_down(from, agent),
            PeerMsg::TopicInterest { topic, on } => self.on_topic_interest(from, topic, on),
            PeerMsg::Sync { token } => self.peer_push_msg(from, PeerMsg::SyncAck { token }),
            PeerMsg::SyncAck { token } => self.on_sync_ack(token),
            PeerMsg::LockRequest { waiter, lock, lease_ms } => {
                self.own_lock_request(waiter, lock, lease_ms)
            }
            PeerMsg::LockRelease { waiter, lock } => self.own_lock_release(waiter, lock),
            PeerMsg::BarrierEnter { waiter, barrier, expected } => {
                self.own_barrier_enter(waiter, barrier, expected)
            }
            PeerMsg::BarrierForce { waiter, barrier } => self.own_barrier_force(waiter, barrier),
            PeerMsg::DiscoverRequest { token, agent_type, capability, names_only } => {
                let agents = self.local_matches(agent_type, capability.as_deref(), names_only);
                self.peer_push_msg(from, PeerMsg::DiscoverReply { token, agents });
            }
            PeerMsg::DiscoverReply { token, agents } => {
                if let Some(Pending::Discover { acks_left, found, .. }) =
                    self.pending.get_mut(&token)
                {
                    *acks_left -= 1;
                    found.extend(agents);
                }
                self.maybe_finish(token);
            }
            PeerMsg::Congested { agents, on } => self.on_congested(from, agents, on),
            PeerMsg::ShareCores { cores, until } => self.share_core_until(&cores, until),
            PeerMsg::StatsRequest { token } => {
                let stats = Box::new(self.stats());
                self.peer_push_msg(from, PeerMsg::StatsReply { token, stats });
            }
            PeerMsg::StatsReply { token, stats } => {
                if let Some(Pending::Stats { acks_left, shards, .. }) = self.pending.get_mut(&token)
                {
                    *acks_left -= 1;
                    shards.push(*stats);
                }
                self.maybe_finish(token);
            }
        }
    }

    /// Peer `from` asks whether its connection may register `agent`, whose id this shard
    /// owns: yes unless it is live elsewhere.
    fn on_claim(&mut self, from: u16, agent: AgentId, token: u64) {
        let granted = !self.owned.contains_key(&agent);
        if granted {
            self.owned.insert(agent, from);
        }
        self.peer_push_msg(from, PeerMsg::ClaimReply { token, granted });
    }

    /// The owner's answer to a claim: the registration completes, or is held.
    fn on_claim_reply(&mut self, token: u64, granted: bool) {
        if let Some(Pending::Claim { conn, reg, deadline }) = self.pending.remove(&token) {
            if granted {
                self.complete_register(conn, reg);
            } else {
                self.held(conn, reg, deadline);
            }
        }
    }

    /// `agent`, homed on peer `from`, is gone: forgotten wherever this shard knew it.
    fn on_agent_down(&mut self, from: u16, agent: AgentId) {
        self.forget_remote_full(from, agent);
        if self.directory.get(&agent) == Some(&Route::Remote(from)) {
            self.directory.remove(&agent);
        }
        if self.owned.get(&agent) == Some(&from) {
            self.owned.remove(&agent);
        }
        self.forget_in_coordination(agent);
    }

    /// Peer `from` has (`on`) or no longer has local subscribers of `topic`.
    fn on_topic_interest(&mut self, from: u16, topic: TopicId, on: bool) {
        let t = self.topics.entry(topic).or_default();
        if on {
            t.remote |= 1u64 << from;
        } else {
            t.remote &= !(1u64 << from);
        }
        if t.subs.is_empty() && t.remote == 0 {
            self.topics.remove(&topic);
        }
    }

    /// A peer applied everything sent before a sync: the reply goes out once all have.
    fn on_sync_ack(&mut self, token: u64) {
        let done = match self.pending.get_mut(&token) {
            Some(Pending::Sync { acks_left, .. }) => {
                *acks_left -= 1;
                *acks_left == 0
            }
            _ => false,
        };
        if done {
            if let Some(Pending::Sync { conn, reply, .. }) = self.pending.remove(&token) {
                self.reply(conn, reply);
            }
        }
    }
}
