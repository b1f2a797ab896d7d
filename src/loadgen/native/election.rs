//! The election workload on native frames: standing, settling, leading, a new leader, and the
//! kills and revivals that start a round.

use super::*;

impl Native {
    /// `election`: a message of type `kind` for `term` from member `from` to member `to`.
    pub(super) fn election_message(
        &mut self,
        conn: usize,
        from: u32,
        to: u32,
        kind: u64,
        term: u32,
    ) {
        let env = Envelope {
            kind: DataKind::Direct,
            sender: AgentId(self.id_base + from),
            to: self.id_base + to,
            message_id: ELECTION_BIT | (u64::from(term) << 8) | kind,
            correlation_id: 0,
            timestamp_ns: 0,
            msg_type: 1,
            priority: self.priority,
            ttl_ms: 0,
            payload: &u64::from(term).to_le_bytes(),
        };
        self.push(conn, &env);
    }

    /// `election`: member `local` stands for `term`: it asks every higher member; with none
    /// (or none alive, as the router's refusals tell) it leads.
    pub(super) fn stand(&mut self, local: usize, term: u32, book: &mut Book) {
        let global = self.first + local as u32;
        let (_, first, size) = self.workload.group_of(global, self.agents_total);
        let conn = self.conn_of(local);
        let Some(co) = self.co.as_mut() else { return };
        let op = &mut co.ops[local];
        if op.dead || u64::from(term) <= op.message_id {
            return; // dead, or already stood for this term
        }
        op.message_id = u64::from(term);
        op.running = true;
        op.heard_ok = false;
        op.awaited = first + size - 1 - global;
        co.stats.candidates += 1;
        co.stats.messages += u64::from(op.awaited);
        if op.awaited == 0 {
            return self.lead(local, term, book);
        }
        for k in global + 1..first + size {
            self.election_message(conn, global, k, ELECT, term);
        }
    }

    /// `election`: candidate `local` heard from every higher member; without an answer it leads.
    pub(super) fn settle(&mut self, local: usize, term: u32, book: &mut Book) {
        let Some(co) = self.co.as_mut() else { return };
        let op = &mut co.ops[local];
        if !op.running || op.message_id != u64::from(term) || op.awaited == 0 {
            return;
        }
        op.awaited -= 1;
        if op.awaited == 0 {
            op.running = false;
            if !op.heard_ok {
                self.lead(local, term, book);
            }
        }
    }

    /// `election`: member `local` leads for `term` and tells every other member.
    pub(super) fn lead(&mut self, local: usize, term: u32, book: &mut Book) {
        let global = self.first + local as u32;
        let (group, first, size) = self.workload.group_of(global, self.agents_total);
        let conn = self.conn_of(local);
        let Some(co) = self.co.as_mut() else { return };
        if !co.coord.claim(group, term, global) {
            co.stats.dual_leaders += 1;
        }
        co.stats.messages += u64::from(size - 1);
        for k in (first..first + size).filter(|&k| k != global) {
            self.election_message(conn, global, k, LEADER, term);
        }
        self.new_leader(local, global, term, book);
    }

    /// `election`: member `local` learns that `leader` leads for `term`; the group's observer
    /// waiting for that term is done, and brings the killed leader back.
    pub(super) fn new_leader(&mut self, local: usize, leader: u32, term: u32, book: &mut Book) {
        let global = self.first + local as u32;
        let Some(co) = self.co.as_mut() else { return };
        let op = &mut co.ops[local];
        if term < op.term {
            return;
        }
        (op.term, op.leader, op.running) = (term, leader, false);
        let observer = self.workload.originates(global, self.agents_total);
        if !observer || op.next != u64::from(term) {
            return;
        }
        op.next = 0;
        if op.measured {
            op.done += 1;
            book.waited((op.intended_ns, op.sent_ns));
        }
        // The operation ends when the killed leader is back (it says so): the next election
        // then has every member but one alive, and the observer never wins.
        co.coord.notify(op.target, REVIVE, term);
    }

    /// `election`: what members send each other.
    pub(super) fn on_election_data(&mut self, conn: usize, env: &Envelope<'_>, book: &mut Book) {
        let (Some(local), Some(from)) =
            (self.local_of(env.to), env.sender.0.checked_sub(self.id_base))
        else {
            return book.unexpected();
        };
        if env.message_id & ELECTION_BIT == 0 {
            return book.unexpected();
        }
        let (kind, term) = (env.message_id & 0xff, (env.message_id >> 8) as u32);
        let me = self.first + local as u32;
        let Some(co) = self.co.as_mut() else { return };
        if co.ops[local].dead {
            return; // gone: the router should not have delivered it
        }
        match kind {
            KILL => {
                co.ops[local].dead = true;
                co.stats.messages += 1;
                self.election_message(conn, me, from, DYING, term);
                let ctl = Control::Unregister(Unregister {
                    request_id: DIE_BIT | u64::from(self.id_base + me),
                    agent_id: AgentId(self.id_base + me),
                });
                self.push_control(conn, &ctl);
            }
            DYING => self.stand(local, term, book),
            ELECT => {
                co.stats.messages += 1;
                self.election_message(conn, me, from, ELECT_OK, term);
                self.stand(local, term, book);
            }
            ELECT_OK => {
                co.ops[local].heard_ok = true;
                self.settle(local, term, book);
            }
            LEADER => self.new_leader(local, from, term, book),
            BACK => {
                if let Some(local) = book.op_done(local) {
                    book.send_from(local, |conn, r| self.request(conn, r));
                }
            }
            _ => book.unexpected(),
        }
    }

    /// `election`: the router's answers about election messages and a killed leader's leave
    /// and return.
    pub(super) fn on_election_error(&mut self, e: &crate::wire::control::Error, book: &mut Book) {
        let Some(local) = self.local_of(e.agent_id.0) else { return book.unexpected() };
        let gone = matches!(
            ErrorCode::from_code(e.code),
            Some(ErrorCode::UnknownRecipient | ErrorCode::RecipientOffline)
        );
        let Some(co) = self.co.as_mut() else { return };
        if e.request_id != 0 || e.message_id & ELECTION_BIT == 0 || !gone {
            return co.stats.refuse(e.code);
        }
        // How a candidate learns a higher member is dead.
        co.stats.to_the_dead += 1;
        if e.message_id & 0xff == ELECT {
            self.settle(local, (e.message_id >> 8) as u32, book);
        }
    }
}
