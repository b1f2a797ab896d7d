//! The delegation workload on native frames: a specialist found by discovery hands subtasks to
//! workers and answers once all came back.

use super::*;

impl Native {
    /// `delegation`: a coordinator's discovery answered: it hands the task to a specialist
    /// found (or, finding none, its operation ends with nothing done).
    pub(super) fn on_delegation_found(
        &mut self,
        d: &crate::wire::control::DiscoverReply,
        book: &mut Book,
    ) {
        let Some(local) = self.local_of(d.request_id as u32) else { return book.unexpected() };
        let now = book.now_ns();
        let me = self.id_base + self.first + local as u32;
        let conn = self.conn_of(local);
        let Some(co) = self.co.as_mut() else { return };
        let op = &mut co.ops[local];
        co.stats.discover.saturating_record(now.saturating_sub(op.granted_ns).max(1));
        let seq = op.message_id & !MEASURED_BIT;
        let Some(to) = pick_other(d, me, seq as usize + local) else {
            co.stats.found_nobody += 1;
            if let Some(local) = book.op_done(local) {
                book.send_from(local, |conn, r| self.request(conn, r));
            }
            return;
        };
        co.stats.messages += 1;
        let r = op.message(me, to, op.sent_ns);
        let id = TASK_BIT | op.message_id;
        self.envelope(conn, &r, DataKind::Request, id);
    }

    /// `delegation`: tasks reach specialists, subtasks workers; results flow back.
    pub(super) fn on_delegation_data(&mut self, conn: usize, env: &Envelope<'_>, book: &mut Book) {
        let (Some(local), true) = (self.local_of(env.to), env.payload.len() >= STAMP_BYTES) else {
            return book.unexpected();
        };
        let subtasks = match self.workload {
            Workload::Delegation { subtasks } => subtasks.max(1),
            _ => return,
        };
        let id = env.message_id;
        match env.kind {
            // A specialist gets a task: it hands out its subtasks.
            DataKind::Request if id & TASK_BIT != 0 => self.hand_out(conn, env, subtasks),
            // A worker does a subtask.
            DataKind::Request if id & SUBTASK_BIT != 0 => {
                let Some(co) = self.co.as_mut() else { return };
                co.stats.messages += 1;
                co.stats.subtasks_done += 1;
                let mut reply = reply(REPLY_BIT | id, env.to, env.sender.0, id, self.priority);
                reply.payload = &[0u8; 16];
                self.push(conn, &reply);
            }
            // A subtask's result: the last one sends the task's.
            DataKind::Reply if env.correlation_id & SUBTASK_BIT != 0 => {
                self.subtask_done(conn, env, book)
            }
            // A task's result: the coordinator's operation is done.
            DataKind::Reply if env.correlation_id & TASK_BIT != 0 => {
                let Some(co) = self.co.as_mut() else { return };
                let op = &mut co.ops[local];
                if op.measured {
                    op.done += 1;
                    book.waited((op.intended_ns, op.sent_ns));
                }
                if let Some(local) = book.op_done(local) {
                    book.send_from(local, |conn, r| self.request(conn, r));
                }
            }
            _ => book.unexpected(),
        }
    }

    /// A specialist got task `env`: it keeps the task and hands its `subtasks` out to workers.
    fn hand_out(&mut self, conn: usize, env: &Envelope<'_>, subtasks: u32) {
        let (c, s) = crate::loadgen::workload::delegation_roles(self.agents_total);
        // At least one (the command line asks for 3 agents); never a division by zero.
        let workers = self.agents_total.saturating_sub(c + s).max(1);
        let (me, id, id_base, priority) = (env.to, env.message_id, self.id_base, self.priority);
        let Some(co) = self.co.as_mut() else { return };
        let mut stamps = [0u8; 16];
        stamps.copy_from_slice(&env.payload[..16]);
        let task =
            Task { coordinator: env.sender.0, specialist: me, task_id: id, left: subtasks, stamps };
        let place = match co.free_tasks.pop() {
            Some(p) => {
                co.tasks[p as usize] = Some(task);
                p
            }
            None => {
                co.tasks.push(Some(task));
                co.tasks.len() as u32 - 1
            }
        };
        co.stats.messages += u64::from(subtasks);
        let seq = id & 0xffff_ffff;
        for j in 0..subtasks {
            let w = c + s + ((u64::from(me) * 7 + seq + u64::from(j)) % u64::from(workers)) as u32;
            let sub = Envelope {
                kind: DataKind::Request,
                sender: AgentId(me),
                to: id_base + w,
                message_id: SUBTASK_BIT | (u64::from(place) << 8) | u64::from(j),
                correlation_id: 0,
                timestamp_ns: 0,
                msg_type: 1,
                priority,
                ttl_ms: 0,
                payload: &stamps,
            };
            self.push(conn, &sub);
        }
    }

    /// A worker's result to one of a task's subtasks: the last one's sends the task's result
    /// to its coordinator.
    fn subtask_done(&mut self, conn: usize, env: &Envelope<'_>, book: &mut Book) {
        let Some(co) = self.co.as_mut() else { return };
        let place = ((env.correlation_id >> 8) & 0xffff_ffff) as usize;
        let Some(Some(task)) = co.tasks.get_mut(place) else { return book.unexpected() };
        task.left -= 1;
        if task.left > 0 {
            return;
        }
        let task = *task;
        co.tasks[place] = None;
        co.free_tasks.push(place as u32);
        co.stats.messages += 1;
        let (id, from, to) = (task.task_id, task.specialist, task.coordinator);
        let mut env = reply(REPLY_BIT | id, from, to, id, self.priority);
        env.payload = &task.stamps;
        self.push(conn, &env);
    }
}

/// A reply from `from` to `to`, answering `correlation`, with no payload yet.
fn reply(message_id: u64, from: u32, to: u32, correlation: u64, priority: u8) -> Envelope<'static> {
    Envelope {
        kind: DataKind::Reply,
        sender: AgentId(from),
        to,
        message_id,
        correlation_id: correlation,
        timestamp_ns: 0,
        msg_type: 1,
        priority,
        ttl_ms: 0,
        payload: &[],
    }
}
