//! A shard's output side: what it queues for each connection, the frames its writers take, and
//! the gates that hold a sender back while a destination is past its bound (backpressure), here
//! or on a peer shard.

use super::*;

impl Shard {
    /// Forgets what the current input pushed past a bound (a peer's input, never paused).
    pub(super) fn clear_congested(&mut self) {
        self.congested = None;
        self.congested_more.clear();
        self.congestion_mark += 1;
    }

    /// Remembers that the input being routed pushed `dest` past its bound (cold path): the
    /// first in `congested`, every other once in `congested_more`, so that its gate waits for
    /// each of them to drain ([`Shard::poll_gate`]).
    #[cold]
    pub(super) fn note_congested(&mut self, dest: Dest) {
        let Some(first) = self.congested else {
            self.congested = Some(dest);
            return;
        };
        if first == dest {
            return;
        }
        let mark = self.congestion_mark;
        let noted = match dest {
            Dest::Conn(idx) => {
                self.conns.get_mut(idx as usize).map(|c| std::mem::replace(&mut c.noted, mark))
            }
            Dest::Peer(p) => Some(std::mem::replace(&mut self.peers[usize::from(p)].noted, mark)),
            Dest::RemoteFan(p) => {
                Some(std::mem::replace(&mut self.peers[usize::from(p)].fan_noted, mark))
            }
            Dest::Remote(agent) => {
                self.remote_full.get_mut(&agent).map(|m| std::mem::replace(m, mark))
            }
        };
        if noted.is_some_and(|was| was != mark) {
            self.congested_more.push(dest);
        }
    }

    /// The next frame to write to `id`; `Ready(None)` when the connection is finished.
    pub fn poll_output(&mut self, id: ConnId, cx: &mut Context<'_>) -> Poll<Option<Vec<u8>>> {
        match self.next_output(id) {
            Some(out) => Poll::Ready(out),
            None => {
                if let Some(c) = self.conns.get_mut(id.idx as usize).filter(|c| c.gen == id.gen) {
                    c.writer = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }

    /// The next frame queued for connection `id` if there is one, as [`Shard::poll_output`]
    /// gives it, but leaving the writer's registration as it is: for a task other than the
    /// connection's writer (a JSON connection's reader, taking the answer to its request).
    pub fn take_output(&mut self, id: ConnId) -> Option<Vec<u8>> {
        self.next_output(id).flatten()
    }

    /// [`Shard::poll_output`]'s answer, `None` for "nothing yet".
    pub(super) fn next_output(&mut self, id: ConnId) -> Option<Option<Vec<u8>>> {
        let (compression, low) = (self.cfg.compression, self.cfg.conn_queue_bytes_max / 2);
        let Some(c) = self.conns.get_mut(id.idx as usize).filter(|c| c.gen == id.gen) else {
            return Some(None);
        };
        if c.closing == Closing::Now {
            return Some(None);
        }
        if let Some((frame, raw_bytes)) = c.take_frame(compression, &mut self.pool) {
            c.queued_bytes = c.queued_bytes.saturating_sub(raw_bytes);
            self.conn_bytes = self.conn_bytes.saturating_sub(raw_bytes);
            if c.queued_bytes <= low {
                c.drained();
                if c.announced {
                    c.announced = false;
                    let agents = c.agents.to_vec();
                    self.tell_all_peers(|| PeerMsg::Congested {
                        agents: agents.clone(),
                        on: false,
                    });
                }
            }
            self.counters.batches_out += 1;
            return Some(Some(frame));
        }
        if c.closing == Closing::AfterFlush {
            return Some(None);
        }
        None
    }

    /// The writer wrote `frame`: count it and take the buffer back.
    pub fn output_done(&mut self, frame: Vec<u8>) {
        self.counters.bytes_out += frame.len() as u64;
        self.pool.put(frame);
    }

    /// Bytes queued for connection `id` that its writer may hold back to gather more before it
    /// takes them ([`Spread`]): 0 when inputs do not spread wide, or when the connection is
    /// closing or the shard stopped (those go at once).
    pub fn output_to_gather(&self, id: ConnId) -> usize {
        if !self.spread.wide || self.stopped {
            return 0;
        }
        match self.conns.get(id.idx as usize).filter(|c| c.gen == id.gen) {
            Some(c) if c.closing == Closing::No => c.queued_bytes,
            _ => 0,
        }
    }

    /// [`Shard::output_done`] for a frame of `len` bytes that a socket ring took, `left` the
    /// buffer it left in its place.
    pub fn output_taken(&mut self, len: usize, left: Vec<u8>) {
        self.counters.bytes_out += len as u64;
        self.pool.put(left);
    }

    /// Ready when `source` may feed more input: every destination its last input pushed past
    /// a bound has drained to half its bound, or is gone; and the source's own queue is within
    /// its bound (replies and errors for it, some from other shards, are never dropped: a
    /// client that does not read them is not read either).
    pub fn poll_gate(&mut self, source: Source, cx: &mut Context<'_>) -> Poll<()> {
        if self.stopped {
            return Poll::Ready(());
        }
        let Source::Conn(id) = source;
        let max = self.cfg.conn_queue_bytes_max;
        loop {
            let Some(c) = self.conn_mut(id) else { return Poll::Ready(()) };
            let more = c.cold.as_deref_mut().map(|k| &mut k.blocked_more);
            let next = c.blocked_on.take().or_else(|| more.and_then(Vec::pop)).or_else(|| {
                (c.closing != Closing::Now && c.queued_bytes > max).then_some(Dest::Conn(id.idx))
            });
            let Some(dest) = next else {
                if let Some(k) = c.cold.as_deref_mut() {
                    if k.blocked_more.capacity() > BLOCKED_KEPT {
                        k.blocked_more = Vec::new();
                    }
                }
                return Poll::Ready(());
            };
            if self.wait_for(dest, cx) {
                if let Some(c) = self.conn_mut(id) {
                    c.blocked_on = Some(dest);
                }
                return Poll::Pending;
            }
        }
    }

    /// Whether `dest` is still past half its bound; if so, `cx` is woken when it drains.
    pub(super) fn wait_for(&mut self, dest: Dest, cx: &mut Context<'_>) -> bool {
        let still_full = match dest {
            Dest::Conn(idx) => match self.conns.get_mut(idx as usize) {
                Some(c)
                    if c.closing != Closing::Now
                        && c.queued_bytes > self.cfg.conn_queue_bytes_max / 2 =>
                {
                    c.cold().waiting.push(cx.waker().clone());
                    true
                }
                _ => false,
            },
            Dest::Peer(p) => {
                let out = &mut self.peers[usize::from(p)];
                let full = out.queued_bytes > self.cfg.peer_queue_bytes_max / 2;
                if full {
                    out.waiting.push(cx.waker().clone());
                }
                full
            }
            Dest::Remote(agent) => self.remote_full.contains_key(&agent),
            Dest::RemoteFan(p) => self.remote_full_per_peer[usize::from(p)] > 0,
        };
        if still_full && matches!(dest, Dest::Remote(_) | Dest::RemoteFan(_)) {
            self.remote_waiting.push(cx.waker().clone());
        }
        still_full
    }

    /// Ready once connection `id` is closed for good (its writer abandons a write that the
    /// client will never let finish).
    pub fn poll_closed(&mut self, id: ConnId, cx: &mut Context<'_>) -> Poll<()> {
        let stopped = self.stopped;
        match self.conn_mut(id) {
            Some(c) if c.closing != Closing::Now && !stopped => {
                c.closer = Some(cx.waker().clone());
                Poll::Pending
            }
            _ => Poll::Ready(()),
        }
    }

    /// Queues an already-encoded message on a connection, whatever the policy. Past the bound,
    /// the input that pushed it is paused (`congested`); under backpressure, other shards are
    /// told to pause their senders to this connection's agents.
    pub(super) fn push_conn_raw(&mut self, idx: u32, lane: u8, raw: &[u8]) {
        self.push_conn(idx, lane, raw, true);
    }

    /// [`Shard::push_conn_raw`]; `pause_input`: past the bound, pause the input that pushed.
    #[inline]
    pub(super) fn push_conn(&mut self, idx: u32, lane: u8, raw: &[u8], pause_input: bool) {
        let max = self.cfg.conn_queue_bytes_max;
        let batch_max = self.cfg.limits.batch_messages_max;
        let Some(c) = self.conns.get_mut(idx as usize) else { return };
        if c.closing == Closing::Now {
            return;
        }
        self.spread.push(idx);
        let queued = c.push(lane, raw, &mut self.pool, batch_max);
        self.conn_bytes += raw.len();
        self.counters.msgs_out += 1;
        self.counters.conn_queue_bytes_hwm = self.counters.conn_queue_bytes_hwm.max(queued);
        if queued > max {
            self.conn_past_bound(idx, pause_input);
        }
    }

    /// Connection slot `idx` went past its bound (cold path).
    #[cold]
    pub(super) fn conn_past_bound(&mut self, idx: u32, pause_input: bool) {
        let now_ns = self.now_ns;
        let Some(c) = self.conns.get_mut(idx as usize) else { return };
        c.cold().full_since_ns.get_or_insert(now_ns);
        if pause_input {
            self.note_congested(Dest::Conn(idx));
        }
        let Some(c) = self.conns.get_mut(idx as usize) else { return };
        if !c.announced && !c.agents.is_empty() && self.cfg.shards > 1 {
            c.announced = true;
            self.peers_told = true;
            let agents = c.agents.to_vec();
            self.tell_all_peers(|| PeerMsg::Congested { agents: agents.clone(), on: true });
        }
    }

    /// Applies a peer's congestion notice for its agents.
    pub(super) fn on_congested(&mut self, from: u16, agents: Vec<AgentId>, on: bool) {
        for agent in agents {
            self.set_remote_full(from, agent, on);
        }
        if !on {
            self.remote_waiting.drain(..).for_each(Waker::wake);
        }
    }

    pub(super) fn set_remote_full(&mut self, from: u16, agent: AgentId, on: bool) {
        let count = &mut self.remote_full_per_peer[usize::from(from)];
        if on && self.remote_full.insert(agent, 0).is_none() {
            *count += 1;
        } else if !on && self.remote_full.remove(&agent).is_some() {
            *count = count.saturating_sub(1);
        }
    }

    /// `agent`, homed on `from`, is gone: it cannot hold anyone back any more.
    pub(super) fn forget_remote_full(&mut self, from: u16, agent: AgentId) {
        if self.remote_full.contains_key(&agent) {
            self.set_remote_full(from, agent, false);
            self.remote_waiting.drain(..).for_each(Waker::wake);
        }
    }
}
