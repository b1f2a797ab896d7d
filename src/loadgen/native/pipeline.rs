//! The pipeline workload on native frames: an item goes from its source through every stage
//! and back, carrying its send times, so that no stage keeps anything per item; a stage whose
//! item the router refused tells the source, which counts the refusal by its kind.

use super::*;

impl Native {
    /// `pipeline`: an item reached stage `env.to`: a middle stage hands it on to the next, the
    /// last returns it to the source as a reply (the source's round trip is the item's whole
    /// way; each hop's delivery is a one-way latency).
    #[inline]
    pub(super) fn on_item(
        &mut self,
        conn: usize,
        env: &Envelope<'_>,
        measured: bool,
        book: &mut Book,
    ) {
        let Workload::Pipeline { stages } = self.workload else { return };
        let stage = env
            .to
            .checked_sub(self.id_base)
            .and_then(|global| self.workload.stage_of(global, self.agents_total));
        let stage = match stage {
            Some(s) if s > 0 => s,
            // A source, or an agent past the last pipeline: no item is sent to them.
            _ => return book.unexpected(),
        };
        let now = book.now_ns();
        if stage + 1 < stages.max(2) {
            if !book.hop_delivered(env.to, env.timestamp_ns, measured) {
                return;
            }
            let hop = Envelope {
                kind: DataKind::Request,
                sender: AgentId(env.to),
                to: env.to + 1,
                message_id: env.message_id,
                correlation_id: 0,
                timestamp_ns: now,
                msg_type: env.msg_type,
                priority: env.priority,
                ttl_ms: 0,
                payload: env.payload,
            };
            self.push(conn, &hop);
        } else {
            if !book.request_delivered(env.to, env.timestamp_ns, measured) {
                return;
            }
            let mut back = reply_to(env, AgentId(env.to), now);
            back.to = env.to - stage;
            self.push(conn, &back);
        }
    }

    /// `pipeline`: the router refused an item a middle or last stage handed on (its next stage
    /// gone, its queue full, the item expired): the stage tells the item's source, whose
    /// request it is, and returns `true`. `false` for every other refusal.
    pub(super) fn pass_on_refusal(
        &mut self,
        conn: usize,
        e: &crate::wire::control::Error,
        book: &mut Book,
    ) -> bool {
        let stage = match self.workload {
            Workload::Pipeline { .. } => e
                .agent_id
                .0
                .checked_sub(self.id_base)
                .and_then(|global| self.workload.stage_of(global, self.agents_total)),
            _ => None,
        };
        let Some(stage) = stage.filter(|&s| s > 0 && self.local_of(e.agent_id.0).is_some()) else {
            return false;
        };
        let word = Envelope {
            kind: DataKind::Reply,
            sender: e.agent_id,
            to: e.agent_id.0 - stage,
            message_id: REPLY_BIT | WORD_BIT | e.message_id,
            correlation_id: e.message_id,
            timestamp_ns: book.now_ns(),
            msg_type: REFUSED_HOP,
            priority: self.priority,
            ttl_ms: 0,
            payload: &e.code.to_le_bytes(),
        };
        self.push(conn, &word);
        book.wake_writer(conn);
        true
    }

    /// `pipeline`: a stage's word that the router refused one of this source's items on its
    /// way: the item ends as that refusal, counted by its kind.
    pub(super) fn on_refused_hop(&mut self, env: &Envelope<'_>, book: &mut Book) {
        let [a, b, ..] = *env.payload else { return book.unexpected() };
        let code = u16::from_le_bytes([a, b]);
        if let Some(local) = book.router_error(About::Request(Some(env.to)), ErrorKind::Code(code))
        {
            book.send_from(local, |conn, r| self.request(conn, r));
        }
    }
}
