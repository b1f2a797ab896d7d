//! The consensus workload on native frames: a leader proposes, followers accept, the leader
//! commits once a majority did.

use super::*;

impl Native {
    /// `consensus`: what a group's members send each other. A follower checks and accepts a
    /// proposal and applies commits in sequence; a leader counts acceptances and commits, in
    /// order, each proposal a majority (itself included) accepted.
    pub(super) fn on_consensus_data(&mut self, conn: usize, env: &Envelope<'_>, book: &mut Book) {
        let (Some(local), Some(leader)) =
            (self.local_of(env.to), env.sender.0.checked_sub(self.id_base))
        else {
            return book.unexpected();
        };
        let mut value = [0u8; 8];
        if env.payload.len() != 8 || env.message_id & CONSENSUS_BIT == 0 {
            return book.unexpected();
        }
        value.copy_from_slice(env.payload);
        let value = u64::from_le_bytes(value);
        let seq = env.message_id & !(MEASURED_BIT | CONSENSUS_BIT) & ((1 << SLOT_SHIFT) - 1);
        let Some(co) = self.co.as_mut() else { return };
        match (env.kind, env.msg_type) {
            (DataKind::Direct, PROPOSE) => {
                if value != proposed_value(leader, seq) {
                    co.stats.disagreements += 1;
                }
                co.stats.messages += 1;
                let me = self.id_base + self.first + local as u32;
                self.consensus_message(
                    conn,
                    me,
                    leader,
                    PROPOSE,
                    DataKind::Reply,
                    env.message_id,
                    value,
                );
            }
            (DataKind::Direct, COMMIT) => {
                let op = &mut co.ops[local];
                if seq != op.next || value != proposed_value(leader, seq) {
                    co.stats.disagreements += 1;
                }
                op.next = seq + 1;
                co.stats.applied += 1;
            }
            (DataKind::Reply, PROPOSE) => {
                let slot = ((env.message_id >> SLOT_SHIFT) & 0x3f) as usize;
                let global = self.first + local as u32;
                let (_, _, size) = self.workload.group_of(global, self.agents_total);
                let Some(p) = co.proposals[local].get_mut(slot) else { return book.unexpected() };
                if p.seq != seq || co.ops[local].used & (1 << slot) == 0 {
                    return; // a late acceptance of a committed proposal
                }
                p.accepted += 1;
                if !p.majority && p.accepted + 1 > size / 2 {
                    p.majority = true;
                    self.commit_ready(conn, local, book);
                }
            }
            _ => book.unexpected(),
        }
    }

    /// `consensus`: leader `local` commits, in order, every proposal a majority accepted.
    pub(super) fn commit_ready(&mut self, conn: usize, local: usize, book: &mut Book) {
        let global = self.first + local as u32;
        let (_, first, size) = self.workload.group_of(global, self.agents_total);
        loop {
            let Some(co) = self.co.as_mut() else { return };
            let next = co.ops[local].next;
            let used = co.ops[local].used;
            let found = co.proposals[local]
                .iter()
                .enumerate()
                .find(|(i, p)| used & (1 << i) != 0 && p.seq == next && p.majority)
                .map(|(i, p)| (i, *p));
            let Some((slot, p)) = found else { return };
            let op = &mut co.ops[local];
            op.used &= !(1 << slot);
            op.next += 1;
            co.stats.messages += u64::from(size - 1);
            if p.measured {
                op.done += 1;
                book.waited((p.intended_ns, p.sent_ns));
            }
            let value = proposed_value(global, p.seq);
            let id = CONSENSUS_BIT | p.seq;
            let me = self.id_base + global;
            for f in (first..first + size).filter(|&f| f != global) {
                self.consensus_message(conn, me, f, COMMIT, DataKind::Direct, id, value);
            }
            if let Some(local) = book.op_done(local) {
                book.send_from(local, |conn, r| self.request(conn, r));
            }
        }
    }

    /// `consensus`: a proposal, acceptance or commit from agent `from` to agent `to` (global).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn consensus_message(
        &mut self,
        conn: usize,
        from: u32,
        to: u32,
        msg_type: u32,
        kind: DataKind,
        message_id: u64,
        value: u64,
    ) {
        let env = Envelope {
            kind,
            sender: AgentId(from),
            to: self.id_base + to,
            message_id,
            correlation_id: message_id,
            timestamp_ns: 0,
            msg_type,
            priority: self.priority,
            ttl_ms: 0,
            payload: &value.to_le_bytes(),
        };
        self.push(conn, &env);
    }
}
