//! An HTTP connection's exchanges: requests written (HTTP/1.1, or h2c streams), pipelined in
//! turn, and responses read, judged and booked.

use super::*;

impl Http {
    /// The adapter for a group with these settings.
    pub fn new(cfg: &GroupConfig, plan: Arc<Plan>) -> Http {
        let conns = cfg.seats.conns(cfg.count) as usize;
        let plan_h2 = plan.http2;
        let plan_conn = plan.clone();
        Http {
            stats: plan.patterns.iter().map(|&p| PatternStats::new(p)).collect(),
            plan,
            conns: (0..conns).map(|_| Conn::new(&plan_conn)).collect(),
            sessions: vec![None; cfg.count as usize],
            cursors: if plan_conn.page_walk {
                vec![String::new(); cfg.count as usize]
            } else {
                vec![]
            },
            spare: Vec::new(),
            body: Vec::with_capacity(1024),
            event: Vec::new(),
            context: String::new(),
            gz: None,
            text: "x".repeat(cfg.payload_mix.map_or(cfg.payload_bytes, |m| m.largest())),
            mix: cfg.payload_mix,
            sizes: cfg.payload_mix.as_ref().map(SizeStats::of).unwrap_or_default(),
            id_base: cfg.id_base,
            first: cfg.first,
            seats: cfg.seats,
            farewells: 0,
            h2: if plan_h2 {
                (0..conns).map(|_| h2c::H2Conn::default()).collect()
            } else {
                Vec::new()
            },
            h2_heads: h2c::Heads::default(),
            done: Vec::new(),
            tasks: Vec::new(),
            free_tasks: Vec::new(),
            polls: VecDeque::new(),
            poke: None,
            push_core: 0,
            pushed: HashMap::new(),
            early: [HashMap::new(), HashMap::new()],
            early_turn_ns: 0,
            push_due: std::collections::BinaryHeap::new(),
            heads: plan_conn
                .patterns
                .iter()
                .enumerate()
                .map(|(i, &p)| {
                    let mut head = Vec::new();
                    let what = What::Request(i as u8);
                    if !fixed_head(&mut head, &plan_conn, what, Some(p), At::Any) {
                        head.clear();
                    }
                    head
                })
                .collect(),
        }
    }

    pub(super) fn pattern_of(&self, local: u32, seq: u64) -> (u8, Pattern) {
        let i = self.plan.slot(self.first + local, seq);
        (i, self.plan.patterns[usize::from(i)])
    }

    /// Puts `w` on the wire of `conn` if there is room, else in its queue.
    pub(super) fn submit(&mut self, conn: usize, w: Wire) {
        if !self.h2.is_empty() {
            let c = &self.conns[conn];
            if c.open() && c.queued.is_empty() && self.h2[conn].ready() {
                self.h2_send(conn, w);
            } else {
                self.conns[conn].queued.push_back(w);
            }
            return;
        }
        let c = &self.conns[conn];
        if c.open() && c.wire.len() < self.plan.pipeline.max(1) as usize && c.queued.is_empty() {
            self.write(conn, w);
        } else {
            self.conns[conn].queued.push_back(w);
        }
    }

    /// Moves queued requests onto the wire while there is room; `now` is their send time.
    pub(super) fn pump(&mut self, conn: usize, now_ns: u64) {
        if !self.conns[conn].open() {
            return;
        }
        if !self.h2.is_empty() {
            while !self.conns[conn].queued.is_empty() && self.h2[conn].ready() {
                let Some(mut w) = self.conns[conn].queued.pop_front() else { return };
                if !w.again {
                    w.sent_ns = now_ns;
                }
                self.h2_send(conn, w);
            }
            return;
        }
        while self.conns[conn].wire.len() < self.plan.pipeline.max(1) as usize {
            let Some(mut w) = self.conns[conn].queued.pop_front() else { return };
            w.sent_ns = now_ns;
            self.write(conn, w);
        }
    }

    /// Writes `w`'s request, head and body, into connection `conn`'s output, and puts it on
    /// that connection's wire.
    pub(super) fn write(&mut self, conn: usize, w: Wire) {
        let Http {
            plan,
            conns,
            sessions,
            body,
            context,
            text,
            id_base,
            first,
            heads,
            tasks,
            push_core,
            cursors,
            mix,
            gz,
            ..
        } = self;
        let (plan, id_base, client) = (&**plan, *id_base, *first + w.local);
        let kind = w.what.pattern().map(|i| plan.patterns[usize::from(i)]);
        // A text of --text-file's, drawn; or with a payload mix, the text's first bytes, as
        // many as this request's drawn size. (JSON-escaped, raw.)
        let text = match (w.what, plan.texts.len(), mix.as_ref()) {
            (What::Request(_), n @ 1.., _) => {
                let t = &plan.texts[(draw(id_base + client, w.seq) % n as u64) as usize];
                (&*t.json, &*t.raw)
            }
            (What::Request(_), 0, Some(m)) => {
                let x = &text[..m.bytes(m.pick(id_base + client, w.seq))];
                (x, x)
            }
            _ => (text.as_str(), text.as_str()),
        };
        let method = method_of(w.what, kind);
        let task = if w.what.follows_task() {
            tasks.get(w.task as usize).map_or("", |t| t.id.as_str())
        } else {
            ""
        };
        // The body first: its length goes in the head.
        body.clear();
        let run = plan.push.as_ref().map_or(0, |r| r.run());
        let page = cursors.get(w.local as usize).map_or("", String::as_str);
        let push_at = (run, *push_core, w.local);
        let caller = Caller { id_base, client, seq: w.seq, task, page, push_at };
        request_body(body, w.what, kind, plan, &caller, context, text);
        // --compression gzip: the body gzipped (a gRPC request's message), once rendered.
        let zipped = plan.compression.sends() && method == "POST" && !body.is_empty();
        let body = match zipped {
            false => &body[..],
            true => {
                let level = plan.compression.level();
                let gz =
                    gz.get_or_insert_with(|| Box::new(gzip::Codec::new(level, parse::BODY_MAX)));
                gz.buf.clear();
                match kind {
                    Some(p) if p.is_grpc() => crate::grpc::compress(body, &mut gz.zip, &mut gz.buf),
                    _ => gz.zip.gzip(body, &mut gz.buf),
                }
                &gz.buf[..]
            }
        };
        let out = &mut conns[conn].out;
        // The head's lines that are the same for every request of this kind were written once
        // ([`fixed_head`]); only a request line that varies (registry:get, the HTTP+JSON
        // binding's `GetTask`) and the session handshake's requests write theirs each time. A
        // JSON-RPC `GetTask` goes where its task's `SendMessage` went, with the same head.
        match w.what {
            What::Request(i) if !heads[usize::from(i)].is_empty() => {
                out.extend_from_slice(&heads[usize::from(i)]);
            }
            What::Poll(i)
                if kind == Some(Pattern::A2aTask) && !heads[usize::from(i)].is_empty() =>
            {
                out.extend_from_slice(&heads[usize::from(i)]);
            }
            _ => {
                let at = match () {
                    _ if w.what.follows_task() => At::Task(task),
                    _ if kind == Some(Pattern::A2aRestListTasks) => At::Page(page),
                    _ => At::Request(client, w.seq),
                };
                let line_ok = fixed_head(out, plan, w.what, kind, at);
                debug_assert!(line_ok);
            }
        }
        if is_mcp(w.what, kind) {
            if let Some(s) = &sessions[w.local as usize] {
                out.extend_from_slice(b"Mcp-Session-Id: ");
                out.extend_from_slice(s.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
        if method == "POST" {
            out.extend_from_slice(match kind {
                Some(p) if p.is_grpc() => b"Content-Type: application/grpc\r\n",
                _ => b"Content-Type: application/json\r\n",
            });
            if zipped {
                out.extend_from_slice(match kind {
                    Some(p) if p.is_grpc() => b"grpc-encoding: gzip\r\n",
                    _ => b"Content-Encoding: gzip\r\n",
                });
            }
            out.extend_from_slice(b"Content-Length: ");
            push_decimal(out, body.len() as u64);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
        conns[conn].wire.push_back(w);
        conns[conn].unstamped += 1;
    }

    /// One complete response to `w`: its body decoded first where coded (a gRPC call's
    /// messages where compressed), an error of kind `protocol_bad_gzip` where that fails, or
    /// `protocol_content_encoding` for a coding a2a-bench does not read.
    pub(super) fn complete(
        &mut self,
        conn: usize,
        w: Wire,
        head: &Head,
        body: &[u8],
        book: &mut Book,
    ) {
        let grpc = head.content_type == parse::ContentType::Grpc;
        if head.coding == Coding::Identity || body.is_empty() {
            return self.answer(conn, w, head, body, book);
        }
        if head.coding == Coding::Other {
            self.conns[conn].first_event_ns = 0;
            let kind = "protocol_content_encoding";
            return self.failed(w, kind, "a body in a coding a2a-bench does not read", book);
        }
        let level = self.plan.compression.level();
        let gz = self.gz.get_or_insert_with(|| Box::new(gzip::Codec::new(level, parse::BODY_MAX)));
        // Decoded into a buffer of its own: answering may render the next request, which
        // takes the codec.
        let mut plain = std::mem::take(&mut gz.plain);
        let unzip = &mut gz.unzip;
        let decoded = match grpc {
            true => crate::grpc::decompress(body, unzip, &mut plain),
            false => unzip.whole(body).map(|b| {
                plain.clear();
                plain.extend_from_slice(b);
            }),
        };
        match decoded {
            Ok(()) => self.answer(conn, w, head, &plain, book),
            Err(bad) => {
                self.conns[conn].first_event_ns = 0;
                self.failed(w, bad.kind(), "a gzipped body that does not read", book);
            }
        }
        if let Some(gz) = &mut self.gz {
            gz.plain = plain;
        }
    }

    /// One complete response to `w`, its body as sent before any coding.
    fn answer(&mut self, conn: usize, w: Wire, head: &Head, body: &[u8], book: &mut Book) {
        let now = book.now_ns();
        let id = self.id_base + self.first + w.local;
        match w.what {
            What::Init => match judge::initialized(head, body, &mut self.event) {
                Err(k) => book.refused(format!("the MCP server refused initialize: {k}")),
                Ok(()) => {
                    // Checked by the caller: the session header's value, copied once per client.
                    self.submit(conn, Wire { what: What::Initialized, again: false, ..w });
                }
            },
            What::Initialized if (200..300).contains(&head.status) => book.ack(conn),
            What::Initialized => book.refused(format!(
                "the MCP server refused notifications/initialized: {}",
                judge::status_name(head.status)
            )),
            What::Farewell => self.farewell_answered(head.status, book),
            What::Request(i) | What::Poll(i) | What::Subscribe(i) | What::Cancel(i)
                if self.plan.patterns[usize::from(i)].is_task() =>
            {
                self.task_answer(conn, w, i, (head, body), book);
            }
            What::Poll(_) | What::Subscribe(_) | What::Cancel(_) => {} // only task patterns follow a task
            What::Request(i) => {
                let p = self.plan.patterns[usize::from(i)];
                let context = p.is_conversation().then(|| {
                    let caller = (self.id_base, self.first + w.local, w.seq);
                    conversation(&mut self.context, &self.plan, (i, p), caller);
                    self.context.as_str()
                });
                let verdict = match self.cursors.get_mut(w.local as usize) {
                    // --page-walk: the next request asks for the page after this one.
                    Some(cursor) if p.is_list() => judge::listed(p, head, body).map(|next| {
                        cursor.clear();
                        cursor.push_str(next.as_ref().map_or("", |t| t.as_str()));
                        0
                    }),
                    _ => judge::judge(p, head, body, context, &mut self.event),
                };
                self.size_ended(&w, p, verdict.is_ok().then_some(now));
                let own_rtt = self.stats.len() > 1;
                let s = &mut self.stats[usize::from(i)];
                let freed = match verdict {
                    Ok(events) => {
                        if w.measured {
                            s.ok += 1;
                            // With one pattern the book's histogram (below) is this one: a
                            // second record would only add a cache miss per response.
                            if own_rtt {
                                s.rtt.saturating_record(now.saturating_sub(w.intended_ns).max(1));
                            }
                            if p.is_stream() {
                                let first = match self.conns[conn].first_event_ns {
                                    0 => now,
                                    t => t,
                                };
                                s.first_event
                                    .saturating_record(first.saturating_sub(w.intended_ns).max(1));
                                s.events += u64::from(events);
                            }
                        }
                        book.answered(id, w.intended_ns, w.transit(now), w.measured)
                    }
                    Err(kind) => {
                        if w.measured {
                            s.error(&kind);
                        }
                        book.router_error(About::Request(Some(id)), ErrorKind::Name(&kind))
                    }
                };
                if let Some(local) = freed {
                    book.send_from(local, |c, out| self.request(c, out));
                }
            }
        }
        self.conns[conn].first_event_ns = 0;
    }

    /// `--payload-mix`: request `w` of pattern `p` ended, answered at `now` (in its size's
    /// round trips) or in an error (`None`: its size's errors), if it was measured and carried
    /// text.
    fn size_ended(&mut self, w: &Wire, p: Pattern, answered_at: Option<u64>) {
        let Some(m) = self.mix.as_ref().filter(|_| w.measured && p.carries_text()) else {
            return;
        };
        let s = &mut self.sizes[m.pick(self.id_base + self.first + w.local, w.seq)];
        match answered_at {
            Some(now) => s.rtt.saturating_record(now.saturating_sub(w.intended_ns).max(1)),
            None => s.errors += 1,
        }
    }

    /// A response that cannot be read: the request it answers counts it, and the connection
    /// is given up (the caller's `Err`).
    pub(super) fn broken(&mut self, conn: usize, why: &parse::Broken, book: &mut Book) -> String {
        if let Some(w) = self.conns[conn].wire.pop_front() {
            self.failed(w, why.kind(), &why.to_string(), book);
        }
        format!("the server sent {why}")
    }

    /// The answer to a task pattern's request `w` (its `SendMessage`, a `GetTask` or a
    /// `SubscribeToTask`), of pattern index `i`: a task still working is asked about again (a
    /// first subscription at once, anything else after `--task-poll`); one that ended answers
    /// the booked request, from its intended send time (and, raw, from when its `SendMessage`
    /// left) to now; a task that failed, or any error, is an error by kind.
    fn task_answer(
        &mut self,
        conn: usize,
        w: Wire,
        i: u8,
        answer: (&Head, &[u8]),
        book: &mut Book,
    ) {
        let now = book.now_ns();
        let p = self.plan.patterns[usize::from(i)];
        let poll = !matches!(w.what, What::Request(_));
        if poll {
            book.counters.task_polls += 1;
            if let Some(t) = self.tasks.get_mut(w.task as usize) {
                t.polls += 1;
            }
        }
        let mut verdict = match w.what {
            What::Subscribe(_) => judge::subscription(p, answer.0, answer.1, &mut self.event),
            _ => judge::task(p, answer.0, answer.1, poll),
        };
        // A subscription to a task that ended first is refused (A2A: unsupported operation;
        // a2a-sdk 0.3: invalid params, "in terminal state", which is taken so only for a task
        // subscribed to before, so that a request it cannot read stays an error): GetTask
        // tells how it ended.
        let resubscribed = self.tasks.get(w.task as usize).is_some_and(|t| t.polls >= 2);
        if matches!(w.what, What::Subscribe(_))
            && matches!(&verdict, Err(k) if k == "a2a_unsupported_operation"
                || (resubscribed && k == "jsonrpc_invalid_params"))
        {
            self.submit(conn, Wire { what: What::Poll(i), again: false, ..w });
            return;
        }
        if !poll && w.measured && verdict.is_ok() {
            // The task was accepted (or answered at once).
            let s = &mut self.stats[usize::from(i)];
            s.first_event.saturating_record(now.saturating_sub(w.intended_ns).max(1));
        }
        if p.is_cancel() {
            // The end a cancel pattern waits for is the task canceled; one that ended
            // otherwise (completed, or answered at once) was not canceled.
            verdict = match verdict {
                Err(k) if k == "a2a_task_canceled" => Ok(judge::TaskSeen::Ended),
                Ok(judge::TaskSeen::Ended) => Err(std::borrow::Cow::Borrowed("task_not_canceled")),
                v => v,
            };
        }
        if matches!(verdict, Ok(judge::TaskSeen::Working(_)))
            && now.saturating_sub(w.intended_ns) > self.plan.task_timeout_ns
        {
            verdict = Err(std::borrow::Cow::Borrowed("task_timeout"));
        }
        let end = match verdict {
            Ok(judge::TaskSeen::Working(id)) => {
                let slot = match w.task {
                    NO_TASK => {
                        let slot = self.free_tasks.pop().unwrap_or_else(|| {
                            self.tasks.push(TaskSlot::default());
                            self.tasks.len() as u32 - 1
                        });
                        let t = &mut self.tasks[slot as usize];
                        t.id.clear();
                        t.id.push_str(&id);
                        (t.left_ns, t.polls) = (w.left_ns(), 0);
                        slot
                    }
                    slot => slot,
                };
                if p.is_push() {
                    return self.await_push(slot, Wire { task: slot, ..w }, now, book);
                }
                // A subscription, or a cancel, follows at once after the task's acceptance;
                // after a stream that ended with the task still working, a cancel answered
                // with the task still working, or a GetTask, the next request waits
                // --task-poll.
                let what = match () {
                    _ if p.is_subscribe() => What::Subscribe(i),
                    _ if p.is_cancel() && !poll => What::Cancel(i),
                    _ => What::Poll(i),
                };
                let next = Wire { what, task: slot, again: false, ..w };
                if poll || !(p.is_subscribe() || p.is_cancel()) {
                    self.poll_later(conn, next, now);
                } else {
                    self.submit(conn, next);
                }
                return;
            }
            Ok(judge::TaskSeen::Ended) => Ok(()),
            Err(kind) => Err(kind),
        };
        self.settle_task(w, i, end, now, book);
    }

    /// Task request `w` (of pattern index `i`) ended at `now`: its task completed (answered,
    /// from its intended send time; raw, from when its `SendMessage` left), or an error of
    /// `kind`; its slot is freed, and the client sends again.
    fn settle_task(
        &mut self,
        w: Wire,
        i: u8,
        end: Result<(), judge::Kind>,
        now: u64,
        book: &mut Book,
    ) {
        let id = self.id_base + self.first + w.local;
        let freed = match end {
            Ok(()) => {
                let (left, polls) = self.end_task(&w);
                self.size_ended(&w, self.plan.patterns[usize::from(i)], Some(now));
                let own_rtt = self.stats.len() > 1;
                let s = &mut self.stats[usize::from(i)];
                if w.measured {
                    s.ok += 1;
                    s.events += u64::from(polls);
                    if own_rtt {
                        s.rtt.saturating_record(now.saturating_sub(w.intended_ns).max(1));
                    }
                }
                // A notification arrived outside the socket ring: now is when it was read.
                let arrived = if self.plan.patterns[usize::from(i)].is_push() {
                    now
                } else {
                    w.transit(now).1
                };
                book.answered(id, w.intended_ns, (left, arrived.max(left)), w.measured)
            }
            Err(kind) => {
                self.end_task(&w);
                self.size_ended(&w, self.plan.patterns[usize::from(i)], None);
                if w.measured {
                    self.stats[usize::from(i)].error(&kind);
                }
                book.router_error(About::Request(Some(id)), ErrorKind::Name(&kind))
            }
        };
        if let Some(local) = freed {
            book.send_from(local, |c, out| self.request(c, out));
        }
    }

    /// A push pattern's task `w` (in slot `w.task`) was accepted at `now`: it waits for the
    /// notification of its end (which may have come first), at most until its task timeout.
    fn await_push(&mut self, slot: u32, w: Wire, now: u64, book: &mut Book) {
        let What::Request(i) = w.what else { return };
        let key = (w.local, w.seq as u32);
        if let Some(code) = self.early.iter_mut().find_map(|m| m.remove(&key)) {
            return self.settle_task(w, i, notified_end(code), now, book);
        }
        self.tasks[slot as usize].parked = Some(w);
        self.pushed.insert(key, slot);
        let due = w.intended_ns.saturating_add(self.plan.task_timeout_ns).max(now);
        let sooner = self.push_due.peek().is_none_or(|std::cmp::Reverse(d)| due < d.0);
        if sooner {
            if let Some(p) = &self.poke {
                // The side task sleeps until its next timer, maybe later: it looks again.
                let _ = p.try_send(super::super::workload::Completed { local: 0, slot: 0, seq: 0 });
            }
        }
        self.push_due.push(std::cmp::Reverse((due, slot, key.0, key.1)));
        // Settled tasks' deadlines stay in the heap until due: once they are most of it, they
        // go, so that it holds about the waiting tasks, not the rate times the timeout.
        if self.push_due.len() >= PUSH_DUE_MIN.max(2 * self.pushed.len()) {
            let pushed = &self.pushed;
            self.push_due.retain(|std::cmp::Reverse((_, slot, local, seq))| {
                pushed.get(&(*local, *seq)) == Some(slot)
            });
        }
    }

    /// A notification (from the core's side channel) that request `seq` (its low 32 bits) of
    /// client `local` ended in state `code` ([`push`]): settles its task, or keeps the end
    /// until its `SendMessage` is answered.
    pub(super) fn notified(&mut self, local: u32, seq: u32, code: u8, book: &mut Book) {
        let now = book.now_ns();
        let key = (local, seq);
        if let Some(slot) = self.pushed.remove(&key) {
            if let Some(w) = self.tasks[slot as usize].parked.take() {
                if let What::Request(i) = w.what {
                    self.settle_task(w, i, notified_end(code), now, book);
                }
            }
            return;
        }
        if now >= self.early_turn_ns + EARLY_TURN_NS {
            self.early.swap(0, 1);
            self.early[0].clear();
            self.early_turn_ns = now;
        }
        if self.early[0].len() < EARLY_MAX {
            self.early[0].insert(key, code);
        }
    }

    /// Gives up the notified tasks whose timeout passed by `now_ns` (`task_timeout`).
    pub(super) fn push_expire(&mut self, now_ns: u64, book: &mut Book) {
        while let Some(&std::cmp::Reverse((due, slot, local, seq))) = self.push_due.peek() {
            if due > now_ns {
                break;
            }
            self.push_due.pop();
            // A task settled since is gone from `pushed` (its slot may serve another).
            if self.pushed.get(&(local, seq)) != Some(&slot) {
                continue;
            }
            self.pushed.remove(&(local, seq));
            if let Some(w) = self.tasks[slot as usize].parked.take() {
                if let What::Request(i) = w.what {
                    let kind = std::borrow::Cow::Borrowed("task_timeout");
                    self.settle_task(w, i, Err(kind), now_ns, book);
                }
            }
        }
    }

    /// When the next notified task times out, if one waits.
    pub(super) fn push_next_due(&self) -> Option<u64> {
        self.push_due.peek().map(|std::cmp::Reverse(d)| d.0)
    }

    /// Tasks waiting for their end's notification.
    pub(super) fn awaiting_push(&self) -> usize {
        self.pushed.len()
    }

    /// Sets this core's place in the notifications' URLs.
    pub fn set_push_core(&mut self, core: usize) {
        self.push_core = core;
    }

    /// Frees `w`'s task slot, if it has one: when its first request left, and its polls.
    fn end_task(&mut self, w: &Wire) -> (u64, u32) {
        match self.tasks.get(w.task as usize) {
            Some(t) => {
                self.free_tasks.push(w.task);
                (t.left_ns, t.polls)
            }
            None => (w.left_ns(), 0),
        }
    }

    /// Sends follow-up `w` (a `GetTask`, a `SubscribeToTask`) on `conn` after `--task-poll`
    /// (at once when it is 0).
    fn poll_later(&mut self, conn: usize, w: Wire, now_ns: u64) {
        let base = self.plan.task_poll_ns;
        if base == 0 {
            return self.submit(conn, w);
        }
        // --task-poll-max: twice the wait after each GetTask that found the task working.
        let polls = self.tasks.get(w.task as usize).map_or(0, |t| t.polls);
        let wait = match self.plan.task_poll_max_ns {
            max if max > base => base.saturating_mul(1u64 << polls.min(40)).min(max),
            _ => base,
        };
        let due = now_ns + wait;
        // Due times in order: with one wait for all, each goes last; with backoff, a later
        // task's first GetTask may come before an older task's next.
        let at = self.polls.partition_point(|&(d, _, _)| d <= due);
        if at == 0 {
            if let Some(p) = &self.poke {
                // The side task sleeps until its next timer (or its last): it looks again.
                let _ = p.try_send(super::super::workload::Completed { local: 0, slot: 0, seq: 0 });
            }
        }
        self.polls.insert(at, (due, conn as u32, w));
    }

    /// Sends the `GetTask`s due by `now_ns`.
    pub(super) fn poll_due(&mut self, now_ns: u64, book: &mut Book) {
        while let Some(&(due, conn, w)) = self.polls.front() {
            if due > now_ns {
                break;
            }
            self.polls.pop_front();
            self.submit(conn as usize, w);
            book.wake_writer(conn as usize);
        }
    }

    /// Sets what wakes the core's side task, which sends the `GetTask`s when due (and, for
    /// the push patterns, gives up the tasks whose timeout passed).
    pub fn set_poke(&mut self, poke: flume::Sender<super::super::workload::Completed>) {
        self.poke = Some(poke);
    }

    /// `w` got no usable response: counted as `kind` (`why` refuses a registration).
    pub(super) fn failed(&mut self, w: Wire, kind: &str, why: &str, book: &mut Book) {
        if w.what.follows_task() {
            self.end_task(&w);
        }
        if let Some(i) = w.what.pattern() {
            self.size_ended(&w, self.plan.patterns[usize::from(i)], None);
            if w.measured {
                self.stats[usize::from(i)].error(kind);
            }
            let id = self.id_base + self.first + w.local;
            if let Some(local) = book.router_error(About::Request(Some(id)), ErrorKind::Name(kind))
            {
                book.send_from(local, |c, out| self.request(c, out));
            }
        } else if book.registering() {
            book.refused(format!("the MCP server sent {why}"));
        } else if w.what == What::Farewell {
            self.farewell_answered(0, book);
        }
    }

    /// A session's farewell (`DELETE`) was answered with `status`, or failed (0): counted by
    /// it, and the last one wakes the core, which waits for them before it closes its
    /// connections.
    fn farewell_answered(&mut self, status: u16, book: &mut Book) {
        crate::loadgen::counters::add(&mut book.counters.session_ends, &status, 1);
        self.farewells = self.farewells.saturating_sub(1);
        if self.farewells == 0 {
            book.wake_monitor();
        }
    }

    /// Renders `w` as the HTTP/1.1 path does and sends it as an HTTP/2 request.
    pub(super) fn h2_send(&mut self, conn: usize, w: Wire) {
        self.write(conn, w);
        let c = &mut self.conns[conn];
        if let Some(w) = c.wire.pop_back() {
            c.unstamped = 0;
            let to = (self.plan.host.as_str(), &mut self.h2_heads);
            if let Err(w) = self.h2[conn].send(w, &c.out, to) {
                c.queued.push_front(w); // it never left: the next connection takes it
            }
        }
        c.out.clear();
    }

    /// Responses in `buf` (plaintext): returns the bytes used, or why the connection is
    /// useless.
    pub(super) fn input_plain(
        &mut self,
        conn: usize,
        buf: &[u8],
        book: &mut Book,
    ) -> Result<usize, String> {
        if !self.h2.is_empty() {
            return self.h2_input(conn, buf, book);
        }
        let mut used = 0;
        while used < buf.len() {
            let rest = &buf[used..];
            let Some(&front) = self.conns[conn].wire.front() else {
                book.unexpected();
                return Err("a response to no request".into());
            };
            // A response still arriving keeps its head, and its chunked body decoded so far.
            let head = match self.conns[conn].head.take() {
                Some(h) => h,
                None => match parse::head(rest) {
                    // An interim response (103 Early Hints): the final one follows.
                    Ok(Some(h)) if h.interim() => {
                        used += h.head_len;
                        continue;
                    }
                    Ok(Some(h)) => h,
                    Ok(None) => break,
                    Err(why) => return Err(self.broken(conn, &why, book)),
                },
            };
            let body_at = head.head_len;
            if rest.len() < body_at {
                // A shorter view of the same bytes (the reader's buffer took over from the
                // ring's): nothing new.
                self.conns[conn].head = Some(head);
                break;
            }
            let streaming = head.content_type == parse::ContentType::EventStream;
            if head.framing == Framing::UntilClose {
                return self.until_close(conn, front, head, rest, book).map(|n| used + n);
            }
            let mut chunked = std::mem::take(&mut self.conns[conn].dechunk);
            let (total, whole) = match head.framing {
                Framing::Length(n) if rest.len() >= body_at + n => (body_at + n, true),
                Framing::Length(_) | Framing::UntilClose => (0, false),
                Framing::Chunked => match chunked.feed(&rest[body_at..]) {
                    Ok(Some(n)) => (body_at + n, true),
                    Ok(None) => (0, false),
                    Err(why) => {
                        self.conns[conn].dechunk = chunked;
                        return Err(self.broken(conn, &why, book));
                    }
                },
            };
            let body: &[u8] = match head.framing {
                Framing::Length(n) => &rest[body_at..rest.len().min(body_at + n)],
                Framing::Chunked => chunked.data(),
                Framing::UntilClose => &[],
            };
            let c = &mut self.conns[conn];
            if !whole {
                // A stream still arriving: note when its first event came.
                if streaming && c.first_event_ns == 0 && c.event_seen(head.coding, body) {
                    c.first_event_ns = book.now_ns();
                }
                c.head = Some(head);
                c.dechunk = chunked;
                break;
            }
            c.response_ended();
            c.wire.pop_front();
            c.answered = true;
            c.closing |= head.close || self.plan.close;
            if front.what == What::Init {
                match head.session {
                    Some((a, b)) => {
                        let id = String::from_utf8_lossy(&rest[a..b]).into_owned();
                        self.sessions[front.local as usize] = Some(id.into_boxed_str());
                    }
                    None if (200..300).contains(&head.status) => {
                        book.refused(NO_SESSION.into());
                        chunked.reset();
                        self.conns[conn].dechunk = chunked;
                        return Ok(used + total);
                    }
                    None => {}
                }
            }
            self.complete(conn, front, &head, body, book);
            chunked.reset();
            self.conns[conn].dechunk = chunked;
            used += total;
            self.pump(conn, book.now_ns());
            if head.close {
                break; // the server closes: what follows is not for us
            }
        }
        Ok(used)
    }

    /// A response whose body ends at the connection's close (`rest` starts with its head, or
    /// with more of its body once the head was read): the body is taken as it comes, all of
    /// `rest`, and answered when the server closes ([`Http::input_end`]). Nothing more goes on
    /// the connection.
    fn until_close(
        &mut self,
        conn: usize,
        front: Wire,
        head: Head,
        rest: &[u8],
        book: &mut Book,
    ) -> Result<usize, String> {
        let c = &mut self.conns[conn];
        let body = &rest[head.head_len..];
        if c.until_close.len() + body.len() > parse::BODY_MAX {
            return Err(self.broken(conn, &parse::Broken::TooLarge, book));
        }
        // An MCP session's id is read while the head's bytes are at hand.
        if let (What::Init, Some((a, b))) = (front.what, head.session) {
            let id = String::from_utf8_lossy(&rest[a..b]).into_owned();
            self.sessions[front.local as usize] = Some(id.into_boxed_str());
        }
        let c = &mut self.conns[conn];
        c.until_close.extend_from_slice(body);
        let streaming = head.content_type == parse::ContentType::EventStream;
        let so_far = std::mem::take(&mut c.until_close);
        if streaming && c.first_event_ns == 0 && c.event_seen(head.coding, &so_far) {
            c.first_event_ns = book.now_ns();
        }
        c.until_close = so_far;
        c.closing = true;
        c.head = Some(Head { head_len: 0, session: None, ..head });
        Ok(rest.len())
    }

    /// The server ended its side of `conn` (end of stream, not a reset): a response whose
    /// body ended there is answered. Not after the loop closed it (`--timeout`).
    pub(super) fn input_end(&mut self, conn: usize, book: &mut Book) {
        let c = &mut self.conns[conn];
        let Some(head) = c.head.filter(|h| h.framing == Framing::UntilClose) else { return };
        if c.down || c.expired {
            return;
        }
        let Some(front) = c.wire.pop_front() else { return };
        (c.head, c.answered) = (None, true);
        c.response_ended();
        let body = std::mem::take(&mut c.until_close);
        let session = self.sessions.get(front.local as usize).is_some_and(Option::is_some);
        if front.what == What::Init && !session && (200..300).contains(&head.status) {
            book.refused(NO_SESSION.into());
        } else {
            self.complete(conn, front, &head, &body, book);
        }
    }

    /// The next plaintext to write on `conn`, if any.
    pub(super) fn output_plain(&mut self, conn: usize) -> Option<Vec<u8>> {
        if !self.h2.is_empty() {
            let mut buf = self.spare.pop().unwrap_or_default();
            let now = clock::now_ns();
            self.h2[conn].output(&mut buf, |w| w.taken(now));
            if buf.is_empty() {
                self.spare.push(buf);
                return None;
            }
            return Some(buf);
        }
        let c = &mut self.conns[conn];
        if c.out.is_empty() {
            return None;
        }
        // A request leaves when the writer takes its bytes (on a socket ring, at the
        // submission after that), not when it was rendered: the raw latency does not count the
        // client's own turnaround (the intended time still does).
        let now = clock::now_ns();
        let from = c.wire.len() - c.unstamped.min(c.wire.len());
        for w in c.wire.range_mut(from..) {
            w.taken(now);
        }
        c.unstamped = 0;
        let fresh = self.spare.pop().unwrap_or_default();
        Some(std::mem::replace(&mut c.out, fresh))
    }

    pub(super) fn h2_input(
        &mut self,
        conn: usize,
        buf: &[u8],
        book: &mut Book,
    ) -> Result<usize, String> {
        self.h2[conn].feed(buf);
        loop {
            let mut done = std::mem::take(&mut self.done);
            let driven = self.h2[conn].drive(book.now_ns(), &mut done);
            let any = !done.is_empty();
            for d in done.drain(..) {
                self.h2_done(conn, d, book);
            }
            self.done = done;
            driven?;
            self.pump(conn, book.now_ns());
            if !any {
                return Ok(buf.len());
            }
        }
    }

    pub(super) fn h2_done(&mut self, conn: usize, d: h2c::Done<Wire>, book: &mut Book) {
        match d {
            h2c::Done::Failed { w, kind } => self.failed(w, kind, kind, book),
            h2c::Done::Unprocessed { w } => {
                book.counters.resent += 1;
                self.conns[conn].queued.push_front(Wire { again: true, ..w });
            }
            // Refused before any processing: sent again, unless this connection's server keeps
            // refusing (then it is an error, as any reset). A stream opened before the server's
            // first response may have gone past a stream limit its SETTINGS had not told yet:
            // the first time, that refusal does not count.
            h2c::Done::Refused { w, early: true } if !w.again => {
                book.counters.resent += 1;
                self.conns[conn].queued.push_front(Wire { again: true, ..w });
            }
            h2c::Done::Refused { w, .. } if self.conns[conn].refusals < REFUSALS_MAX => {
                self.conns[conn].refusals += 1;
                book.counters.resent += 1;
                self.conns[conn].queued.push_front(Wire { again: true, ..w });
            }
            h2c::Done::Refused { w, .. } => {
                let kind = "protocol_h2_refused_stream";
                self.failed(w, kind, kind, book);
            }
            h2c::Done::Answer {
                w,
                status,
                content_type,
                coding,
                session,
                body,
                first_event_ns,
                grpc,
            } => {
                if w.what == What::Init {
                    match session {
                        Some(id) => self.sessions[w.local as usize] = Some(id),
                        None if (200..300).contains(&status) => {
                            book.refused(NO_SESSION.into());
                            return;
                        }
                        None => {}
                    }
                }
                let c = &mut self.conns[conn];
                c.first_event_ns = first_event_ns;
                c.answered = true;
                c.refusals = 0;
                let head = Head {
                    status,
                    content_type,
                    head_len: 0,
                    framing: Framing::Length(body.len()),
                    close: false,
                    session: None,
                    grpc,
                    coding,
                };
                self.complete(conn, w, &head, &body, book);
            }
        }
    }
}

/// How long a notification that came before its task's `SendMessage` was answered is kept:
/// between one and two of these.
const EARLY_TURN_NS: u64 = 1_000_000_000;

/// Such notifications kept at most per generation (past them one is dropped, and its task
/// times out: counted, never lost).
const EARLY_MAX: usize = 1 << 16;

/// The size of the push deadlines' heap past which, once settled tasks' deadlines are half
/// of it, they are dropped.
const PUSH_DUE_MIN: usize = 1024;

/// A notified end's state code ([`push`]: its place in `TASK_STATES` plus one) as a task's end:
/// completed, or an error by the state's name.
fn notified_end(code: u8) -> Result<(), judge::Kind> {
    let state = usize::from(code).checked_sub(1).and_then(|i| crate::grpc::TASK_STATES.get(i));
    match judge::by_state(state.copied().unwrap_or("UNSPECIFIED"), None) {
        Ok(judge::TaskSeen::Ended) => Ok(()),
        Ok(judge::TaskSeen::Working(_)) => {
            Err(std::borrow::Cow::Borrowed("protocol_bad_task_state"))
        }
        Err(kind) => Err(kind),
    }
}
