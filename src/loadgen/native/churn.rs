//! The churn workload on native frames: agents that join, stay a while and leave.

use super::*;
use crate::wire::control::{DiscoverReply, Error as ErrorMsg};

impl Native {
    /// `churn`: the local index of passing agent `id`.
    pub(super) fn passing_local(&self, id: u32) -> Option<usize> {
        self.local_of(id.checked_sub(JOIN_OFFSET)?)
    }

    /// `churn`: passing agent `local` stays the time asked, then leaves.
    pub(super) fn stay(&mut self, local: usize, book: &mut Book) {
        match self.co.as_mut() {
            Some(co) if co.hold_ns > 0 => co.start_timer(book.now_ns(), local),
            _ => self.leave(local),
        }
    }

    /// `churn`: passing agent `local` leaves (its operation resolves when that is acknowledged).
    pub(super) fn leave(&mut self, local: usize) {
        let passing = AgentId(self.id_base + self.first + local as u32 + JOIN_OFFSET);
        let ctl = Control::Unregister(Unregister {
            request_id: LEAVE_BIT | u64::from(passing.0),
            agent_id: passing,
        });
        self.push_control(self.conn_of(local), &ctl);
    }

    /// `churn`: the control answers of a passing agent's join, discovery and leave, and
    /// refusals of its message; `false` if `ctl` is none of these.
    pub(super) fn on_churn(&mut self, ctl: &Control, book: &mut Book) -> bool {
        let now = book.now_ns();
        let id_of = |rid: u64| rid as u32;
        let local = match ctl {
            Control::Ack(a) if a.request_id & (JOIN_BIT | LEAVE_BIT) != 0 => id_of(a.request_id),
            Control::DiscoverReply(d) if d.request_id & DISCOVER_BIT != 0 => id_of(d.request_id),
            Control::Error(e) => e.agent_id.0,
            _ => return false,
        };
        let Some(local) = self.passing_local(local) else { return false };
        let stable = self.id_base + self.first + local as u32;
        let Some(co) = self.co.as_mut() else { return false };
        let op = &mut co.ops[local];
        let phase_ns = now.saturating_sub(op.granted_ns).max(1);
        match ctl {
            Control::Ack(a) if a.request_id & JOIN_BIT != 0 => {
                co.stats.join.saturating_record(phase_ns);
                op.granted_ns = now;
                self.discover_others(local, stable);
            }
            Control::DiscoverReply(d) => {
                co.stats.discover.saturating_record(phase_ns);
                co.online = d.total.clamp(1, self.agents_total);
                self.message_one_found(local, stable, d, now);
            }
            Control::Ack(_) => self.left(local, stable, book),
            Control::Error(e) => self.churn_refused(local, stable, e, book),
            _ => return false,
        }
        true
    }

    /// Joined: passing agent `local` looks for others online, a page somewhere in what was
    /// online at the last look.
    fn discover_others(&mut self, local: usize, stable: u32) {
        let Some(co) = self.co.as_mut() else { return };
        let seq = co.ops[local].message_id & !MEASURED_BIT;
        let spread = (u64::from(stable) * 2_654_435_761 + seq * 40_503) >> 7;
        let offset = (spread % u64::from(co.online.max(1))) as u32;
        let ctl = Control::Discover(Discover {
            request_id: DISCOVER_BIT | u64::from(stable + JOIN_OFFSET),
            agent_type: 0,
            capability: Some(CHURN_CAPABILITY.to_string()),
            offset,
            limit: 8,
            names_only: false,
        });
        self.push_control(self.conn_of(local), &ctl);
    }

    /// Discovered: passing agent `local` messages one of the others it found, or leaves when
    /// it found nobody.
    fn message_one_found(&mut self, local: usize, stable: u32, d: &DiscoverReply, now: u64) {
        let Some(co) = self.co.as_mut() else { return };
        let op = &co.ops[local];
        let me = stable + JOIN_OFFSET;
        let pick = (op.message_id & !MEASURED_BIT) as usize + local;
        match pick_other(d, me, pick) {
            Some(to) => {
                let r = op.message(me, to, now);
                let id = op.message_id;
                self.envelope(self.conn_of(local), &r, DataKind::Request, id);
            }
            None => {
                co.stats.found_nobody += 1;
                self.leave(local);
            }
        }
    }

    /// Left: passing agent `local`'s operation is over, done or as the error that made it
    /// leave.
    fn left(&mut self, local: usize, stable: u32, book: &mut Book) {
        let Some(co) = self.co.as_mut() else { return };
        let op = &mut co.ops[local];
        let failed = op.failed.take();
        if failed.is_none() && op.measured {
            op.done += 1;
            book.waited((op.intended_ns, op.sent_ns));
        }
        let next = match failed {
            Some(code) => book.router_error(About::Request(Some(stable)), ErrorKind::Code(code)),
            None => book.op_done(local),
        };
        if let Some(local) = next {
            book.send_from(local, |conn, r| self.request(conn, r));
        }
    }

    /// An error to passing agent `local`: the agent it messaged had left (it stays, then
    /// leaves), its join or leave was refused (the operation ends as that error), or its
    /// message was (it leaves, and the operation ends as that error).
    fn churn_refused(&mut self, local: usize, stable: u32, e: &ErrorMsg, book: &mut Book) {
        let Some(co) = self.co.as_mut() else { return };
        let departed = matches!(
            ErrorCode::from_code(e.code),
            Some(ErrorCode::UnknownRecipient | ErrorCode::RecipientOffline)
        );
        // A data message's error names no request (ours all have a bit set).
        if e.request_id == 0 && departed {
            co.stats.departed += 1;
            self.stay(local, book);
        } else if e.request_id & JOIN_BIT != 0 || e.request_id & LEAVE_BIT != 0 {
            // Not joined, or not left: the operation ends here, as that error.
            co.ops[local].failed = None;
            let about = About::Request(Some(stable));
            if let Some(local) = book.router_error(about, ErrorKind::Code(e.code)) {
                book.send_from(local, |conn, r| self.request(conn, r));
            }
        } else {
            co.ops[local].failed = Some(e.code);
            self.leave(local);
        }
    }

    /// `churn`: a message to a passing agent on this connection is answered by the
    /// connection's own agent (the passing one may be leaving: a reply from it would be
    /// refused); a reply to a passing agent ends its message, and it leaves.
    pub(super) fn on_churn_data(&mut self, conn: usize, env: &Envelope<'_>, book: &mut Book) {
        let Some(local) = self.passing_local(env.to) else { return book.unexpected() };
        match env.kind {
            DataKind::Request => {
                let me = AgentId(self.id_base + self.first + local as u32);
                self.push(conn, &reply_to(env, me, book.now_ns()));
            }
            DataKind::Reply => self.stay(local, book),
            _ => book.unexpected(),
        }
    }
}
