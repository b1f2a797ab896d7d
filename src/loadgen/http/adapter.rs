//! [`Http`] as the agent loop's adapter: registration, requests, input, output, farewells,
//! reopening and expiry, as the loop asks for them.

use super::*;

impl Adapter for Http {
    fn register(&mut self, conn: usize, ids: &[AgentId], book: &mut Book) {
        for id in ids {
            let local = id.0 - self.id_base - self.first;
            if self.plan.sessions() {
                let w = Wire {
                    what: What::Init,
                    local,
                    seq: 0,
                    intended_ns: 0,
                    sent_ns: 0,
                    left: 0,
                    measured: false,
                    again: false,
                    task: NO_TASK,
                };
                self.submit(conn, w);
            } else {
                book.ack(conn);
            }
        }
    }

    fn request(&mut self, conn: usize, r: &Outgoing) {
        let local = r.from - self.id_base - self.first;
        let seq = r.message_id & !MEASURED_BIT;
        let (i, p) = self.pattern_of(local, seq);
        if let Some(m) = self.mix.as_ref().filter(|_| r.measured && p.carries_text()) {
            self.sizes[m.pick(r.from, seq)].sent += 1;
        }
        let w = Wire {
            what: What::Request(i),
            local,
            seq,
            intended_ns: r.intended_ns,
            sent_ns: r.sent_ns,
            left: 0,
            measured: r.measured,
            again: false,
            task: NO_TASK,
        };
        self.submit(conn, w);
    }

    fn input(&mut self, conn: usize, buf: &[u8], book: &mut Book) -> Result<usize, String> {
        let c = &mut self.conns[conn];
        if c.down {
            return Ok(buf.len()); // closed for a timeout: a late answer is for nobody
        }
        let Some(tls) = c.tls.as_mut() else { return self.input_plain(conn, buf, book) };
        // https://: everything read is decrypted; what the responses leave stays in `plain`.
        let mut rd = buf;
        while !rd.is_empty() {
            tls.read_tls(&mut rd).map_err(|e| format!("the server's TLS: {e}"))?;
            tls.process_new_packets().map_err(|e| format!("the server's TLS: {e}"))?;
            match std::io::Read::read_to_end(&mut tls.reader(), &mut c.plain) {
                Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => {
                    return Err(format!("the server's TLS: {e}"))
                }
                _ => {} // more to come, or the server's close_notify (its FIN follows)
            }
        }
        if !c.plain.is_empty() {
            let plain = std::mem::take(&mut self.conns[conn].plain);
            let used = self.input_plain(conn, &plain, book);
            let c = &mut self.conns[conn];
            c.plain = plain;
            c.plain.drain(..*used.as_ref().unwrap_or(&0));
            used?;
        }
        Ok(buf.len())
    }

    fn take_output(&mut self, conn: usize) -> Option<Vec<u8>> {
        if self.plan.tls.is_some() && self.conns[conn].tls.is_none() {
            return None; // never in clear to an https:// server
        }
        let plain = self.output_plain(conn);
        let c = &mut self.conns[conn];
        let Some(tls) = c.tls.as_mut() else { return plain };
        if let Some(mut plain) = plain {
            // Buffered by rustls until the handshake ends (no limit: see `tls::Client`).
            let _ = std::io::Write::write_all(&mut tls.writer(), &plain);
            plain.clear();
            self.spare.push(plain);
        }
        if !tls.wants_write() {
            return None;
        }
        let mut out = self.spare.pop().unwrap_or_default();
        while tls.wants_write() {
            if tls.write_tls(&mut out).is_err() {
                break;
            }
        }
        Some(out)
    }

    fn output_done(&mut self, mut buf: Vec<u8>) {
        buf.clear();
        if self.spare.len() < 64 {
            self.spare.push(buf);
        }
    }

    fn farewell(&mut self, conn: usize) -> bool {
        if !self.plan.sessions() {
            return false;
        }
        for local in self.seats.agents(self.sessions.len() as u32, conn) {
            if self.sessions[local as usize].is_some() {
                let w = Wire {
                    what: What::Farewell,
                    local,
                    seq: 0,
                    intended_ns: 0,
                    sent_ns: 0,
                    left: 0,
                    measured: false,
                    again: false,
                    task: NO_TASK,
                };
                self.farewells += 1;
                self.submit(conn, w);
            }
        }
        true
    }

    fn next_timer_ns(&self) -> Option<u64> {
        let poll = self.polls.front().map(|&(due, _, _)| due);
        match (poll, self.push_next_due()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn following(&self) -> u64 {
        // Tasks waiting for their notification wait on the task, bounded by its timeout.
        let notified = self.awaiting_push() as u64;
        if !self.plan.patterns.iter().any(|p| p.is_subscribe()) {
            return notified;
        }
        let subscribed = |w: &Wire| matches!(w.what, What::Subscribe(_));
        let mut n = 0;
        for (conn, c) in self.conns.iter().enumerate() {
            n += match self.h2.get(conn) {
                Some(h2) => h2.streaming(subscribed),
                // Over HTTP/1.1 only the front request's answer is arriving.
                None => {
                    usize::from(c.first_event_ns != 0 && c.wire.front().is_some_and(subscribed))
                }
            };
        }
        notified + n as u64
    }

    fn on_side(&mut self, msg: Option<super::super::workload::Completed>, book: &mut Book) {
        // A message with a state code is a notification ([`push`]); without, a poke.
        if let Some(m) = msg.filter(|m| m.slot > 0) {
            self.notified(m.local, m.seq, m.slot, book);
        }
        self.poll_due(book.now_ns(), book);
        self.push_expire(book.now_ns(), book);
    }

    fn farewell_done(&self) -> bool {
        self.farewells == 0
    }

    fn breakdown(&self, book: &Book) -> Vec<PatternStats> {
        let mut stats = self.stats.clone();
        if let [only] = stats.as_mut_slice() {
            // One pattern: its round trips are the run's, recorded once ([`Http::complete`]).
            only.rtt = book.latencies.rtt.clone();
        }
        stats
    }

    fn sizes(&self) -> Vec<SizeStats> {
        self.sizes.clone()
    }

    fn reset(&mut self, conn: usize, book: &mut Book) -> bool {
        let c = &mut self.conns[conn];
        let kind = if c.expired { "timeout" } else { "connection_closed" };
        // The server said it closes after an answer (`Connection: close`, a body that ends at
        // the close): it processes nothing after that answer (RFC 9112 § 9.6), so what was
        // pipelined behind it goes again, in order, on the new connection. A response cut
        // short (its head read) answers the front request: that one was processed.
        let unprocessed = c.closing && !c.expired && self.h2.is_empty();
        let cut_short = usize::from(c.head.is_some());
        c.strikes = if c.answered || c.expired { 0 } else { c.strikes + 1 };
        let again = c.strikes <= STRIKES;
        (c.answered, c.closing, c.expired, c.down) = (false, false, false, true);
        c.first_event_ns = 0;
        c.head = None;
        c.response_ended();
        c.dechunk.reset();
        c.until_close = Vec::new();
        c.out.clear();
        c.unstamped = 0;
        c.plain.clear();
        c.tls = fresh_tls(&self.plan);
        let mut gone: Vec<Wire> = std::mem::take(&mut c.wire).into();
        if unprocessed && gone.len() > cut_short {
            for w in gone.drain(cut_short..).rev() {
                book.counters.resent += 1;
                c.queued.push_front(Wire { again: true, ..w });
            }
        }
        if let Some(h2) = self.h2.get_mut(conn) {
            gone.extend(std::mem::take(h2).into_streams());
        }
        for w in gone {
            self.failed(w, kind, &format!("nothing before closing the connection ({kind})"), book);
        }
        again
    }

    fn must_reopen(&self, conn: usize) -> bool {
        let c = &self.conns[conn];
        // A body that ends at the close waits for the server to close.
        let until_close = c.head.is_some_and(|h| h.framing == Framing::UntilClose);
        (c.closing && !until_close) || self.h2.get(conn).is_some_and(h2c::H2Conn::gone)
    }

    fn input_end(&mut self, conn: usize, book: &mut Book) {
        Http::input_end(self, conn, book);
    }

    fn reopened(&mut self, conn: usize, book: &mut Book) {
        self.conns[conn].down = false;
        self.pump(conn, book.now_ns());
    }

    fn expire(&mut self, book: &mut Book, touched: &mut Vec<(usize, bool)>) -> u64 {
        let (timeout, task_timeout) = (self.plan.timeout_ns, self.plan.task_timeout_ns);
        if timeout == 0 && !self.plan.patterns.iter().any(|p| p.is_subscribe()) {
            return u64::MAX;
        }
        let now = book.now_ns();
        // A subscription's stream lasts as long as its task works: it ends at the task's
        // timeout, whatever --timeout says.
        let task_due = |w: &Wire| match w.what {
            What::Subscribe(_) => w.intended_ns.saturating_add(task_timeout),
            _ => u64::MAX,
        };
        let due = |w: &Wire| match w.what.pattern() {
            Some(_) if timeout > 0 => w.sent_ns.saturating_add(timeout).min(task_due(w)),
            _ => task_due(w), // set-up and farewells have their own bounds
        };
        let mut next = u64::MAX;
        let mut gone = Vec::new();
        for conn in 0..self.conns.len() {
            if let Some(h2) = self.h2.get_mut(conn) {
                // HTTP/2 cancels the stream alone (RST_STREAM): the connection stays.
                next = next.min(h2.expire(due, now, &mut gone));
                if !gone.is_empty() {
                    touched.push((conn, false));
                }
            } else {
                // HTTP/1.1 cannot skip an answer: the connection goes, and with it what was
                // pipelined behind the late request.
                let c = &mut self.conns[conn];
                let Some(front) = c.wire.front().filter(|_| !c.down) else { continue };
                if due(front) > now {
                    next = next.min(due(front));
                    continue;
                }
                (c.expired, c.down) = (true, true);
                gone.extend(c.wire.drain(..));
                touched.push((conn, true));
            }
            for w in gone.drain(..) {
                if task_due(&w) <= now {
                    self.failed(w, "task_timeout", "the task outlasted --task-timeout", book);
                } else {
                    self.failed(w, "timeout", "no answer within --timeout", book);
                }
            }
        }
        next
    }
}
