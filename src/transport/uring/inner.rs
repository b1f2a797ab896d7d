//! A ring's connections: their receives, sends, buffers and slots, and the submissions and
//! completions that move them.

use super::*;

impl Drop for Inner {
    fn drop(&mut self) {
        if self.in_flight > 0 {
            LEAKED.fetch_add(1, Ordering::Relaxed);
            // The kernel may still touch the buffers after the ring's descriptor closes:
            // leak them rather than free memory it can write.
            let provided = std::mem::replace(&mut self.provided.mem, Box::new([]));
            std::mem::forget(provided);
            self.provided.entries = std::ptr::NonNull::dangling().as_ptr();
            self.provided.layout = Layout::new::<()>();
            for s in &mut self.slots {
                std::mem::forget(std::mem::take(&mut s.tx_fly));
                if s.own_flight {
                    std::mem::forget(std::mem::take(&mut s.rx));
                }
            }
        }
    }
}

impl Spares {
    /// Keeps `buf` (emptied) unless it is bigger than `largest` or the budget is spent.
    pub(super) fn put(&mut self, mut buf: Vec<u8>, largest: usize) {
        let cap = buf.capacity();
        if cap > 0 && cap <= largest && self.bytes + cap <= SPARE_BYTES {
            buf.clear();
            self.bytes += cap;
            self.bufs.push(buf);
        }
    }

    /// A kept buffer of `bytes` or more, if there is one.
    pub(super) fn take_at_least(&mut self, bytes: usize) -> Option<Vec<u8>> {
        let i = self.bufs.iter().rposition(|b| b.capacity() >= bytes)?;
        let buf = self.bufs.swap_remove(i);
        self.bytes -= buf.capacity();
        Some(buf)
    }

    /// A kept buffer, or a new empty one.
    pub(super) fn take(&mut self) -> Vec<u8> {
        let buf = self.bufs.pop().unwrap_or_default();
        self.bytes -= buf.capacity();
        buf
    }
}

/// Makes room for `more` bytes after what a receive buffer holds: doubling while it is small,
/// then straight to [`OWN_CAP`], so that a buffer which outgrows glibc's mmap threshold does so
/// once and keeps that size (the spare lists keep it); past `OWN_CAP` (what the kernel had
/// already received when the connection paused lands after it) doubling again.
fn grow_rx(rx: &mut Vec<u8>, more: usize) {
    let need = rx.len() + more;
    if need > rx.capacity() {
        let to = if need <= OWN_ROOM {
            need.next_power_of_two()
        } else {
            need.max(OWN_CAP).max(2 * rx.capacity())
        };
        rx.reserve_exact(to - rx.len());
    }
}

pub(super) fn wake(w: &mut Option<Waker>) {
    if let Some(w) = w.take() {
        w.wake();
    }
}

pub(super) fn errno(res: i32) -> io::ErrorKind {
    io::Error::from_raw_os_error(-res).kind()
}

impl Inner {
    pub(super) fn mark(&mut self, slot: usize) {
        let s = &mut self.slots[slot];
        if !s.dirty {
            s.dirty = true;
            self.dirty.push(slot);
        }
    }

    pub(super) fn push(&mut self, e: squeue::Entry) {
        // SAFETY: every entry pushed refers to memory that outlives the operation: the
        // provided buffers (freed only with no operation in flight) or a slot's `tx_fly`,
        // untouched until its send completes.
        while unsafe { self.ring.submission().push(&e) }.is_err() {
            super::transit::submitting(true);
            let _ = self.ring.submit();
        }
        self.in_flight += 1;
    }

    /// Queues an entry that refers to no memory of ours (a cancel, a poll), not counted in
    /// `in_flight`.
    pub(super) fn push_memoryless(&mut self, e: squeue::Entry) {
        // SAFETY: the entry refers to no memory; a poll's descriptor (the doorbell's) outlives
        // the ring (`Ring::peers`), or the poll is cancelled at the stop.
        while unsafe { self.ring.submission().push(&e) }.is_err() {
            super::transit::submitting(true);
            let _ = self.ring.submit();
        }
    }

    /// [`Inner::submit_dirty`], then one `io_uring_enter` for it.
    pub(super) fn submit_queued(&mut self) {
        self.submit_dirty();
        self.departing();
        let _ = self.ring.submit();
    }

    /// Before an `io_uring_enter` that submits what is queued: times it, if anything is
    /// ([`super::transit`]).
    #[inline]
    pub(super) fn departing(&mut self) {
        if super::transit::recording() {
            super::transit::submitting(!self.ring.submission().is_empty());
        }
    }

    /// Arms receives and starts sends for the connections that asked.
    pub(super) fn submit_dirty(&mut self) {
        if let (Some(fd), false) = (self.bell_fd, self.bell_armed) {
            self.bell_armed = true;
            let e = opcode::PollAdd::new(types::Fd(fd), libc::POLLIN as u32)
                .build()
                .user_data(user_data(0, 0, OP_BELL));
            self.push_memoryless(e);
        }
        let dirty = std::mem::take(&mut self.dirty);
        for &slot in &dirty {
            self.slots[slot].dirty = false;
            let s = &mut self.slots[slot];
            // The registered socket is named by its place in the table, flagged as such; a
            // retired slot has neither.
            let (fd, on) = match (s.fixed, &s.fd) {
                (true, _) => (types::Fd(slot as i32), squeue::Flags::FIXED_FILE),
                (false, Some(fd)) => (types::Fd(fd.as_raw_fd()), squeue::Flags::empty()),
                (false, None) => continue,
            };
            if s.shut_wanted && !s.shutting {
                s.shut_wanted = false;
                s.shutting = true;
                let e = opcode::Shutdown::new(fd, libc::SHUT_RDWR)
                    .build()
                    .flags(on)
                    .user_data(user_data(s.gen, slot, OP_SHUTDOWN));
                // Counted in flight: the slot, and so its place in the table, is not given to
                // another connection before the kernel has looked the socket up.
                self.push_memoryless(e);
                self.in_flight += 1;
            }
            let s = &mut self.slots[slot];
            // A paused connection (past its bound unread) arms no receive, whatever else marked it
            // (a send): its reader's wait pushes back on the peer through TCP.
            let receives = !s.recv_armed && s.rx_end.is_none() && !s.closed && !s.paused;
            if receives && s.own {
                // Into the connection's own buffer, after what is unread there.
                if self.slots[slot].held.is_some() && self.unhold(slot) {
                    self.provided.publish();
                }
                let Inner { slots, spare, .. } = self;
                let s = &mut slots[slot];
                if s.rx.capacity() == 0 {
                    s.rx = spare.take();
                }
                // Unread bytes move to the front only when that is cheap, or when the room
                // after them is short and they are no more than what was read before them (the
                // buffer grows instead): a big message's partial tail (up to 64 KiB with 64 KiB
                // messages) moved before every receive was a tenth of a router core.
                let unread = s.rx.len() - s.rx_at;
                let short = s.rx.capacity() - s.rx.len() < OWN_ROOM;
                // A reader waiting for a big message's rest is offered room for all it may
                // receive: the message lands whole, where the reader reads it.
                let want = if s.rx_bound > 0 {
                    s.raised().saturating_sub(unread).max(OWN_ROOM_BIG)
                } else if s.rx_lent as usize > MOVE_CHEAP {
                    OWN_ROOM_BIG
                } else {
                    OWN_ROOM
                };
                if s.rx_at > 0 && (unread <= MOVE_CHEAP || (short && s.rx_at >= unread)) {
                    #[cfg(test)]
                    {
                        self.own_moved += unread;
                    }
                    s.rx.drain(..s.rx_at);
                    s.rx_at = 0;
                }
                let unread = s.rx.len() - s.rx_at;
                if s.rx_bound > 0 && s.rx.len() + want > s.rx.capacity() {
                    // Growing for a big message: into a kept buffer big enough, if there is one,
                    // rather than new pages the kernel must fault in as it copies (a buffer grown
                    // in place had most of a 1 MiB message land on fresh pages).
                    if let Some(mut bigger) = spare.take_at_least(unread + want) {
                        bigger.extend_from_slice(&s.rx[s.rx_at..]);
                        let old = std::mem::replace(&mut s.rx, bigger);
                        s.rx_at = 0;
                        spare.put(old, RX_KEPT);
                    }
                }
                grow_rx(&mut s.rx, if s.rx_bound > 0 { want } else { OWN_ROOM });
                let room = (s.rx.capacity() - s.rx.len()).min(want);
                #[cfg(test)]
                {
                    self.own_largest = self.own_largest.max(room);
                }
                // SAFETY (see `push`): `rx` stays where it is until the completion
                // (`own_flight`), and the kernel writes only its spare room.
                let at = unsafe { s.rx.as_mut_ptr().add(s.rx.len()) };
                s.recv_armed = true;
                s.own_flight = true;
                let e = opcode::Recv::new(fd, at, room as u32)
                    .build()
                    .flags(on)
                    .user_data(user_data(s.gen, slot, OP_RECV));
                self.push(e);
            }
            let s = &mut self.slots[slot];
            if receives && !s.recv_armed {
                s.recv_armed = true;
                let e = opcode::RecvMulti::new(fd, BGID)
                    .build()
                    .flags(on)
                    .user_data(user_data(s.gen, slot, OP_RECV));
                self.push(e);
            }
            let s = &mut self.slots[slot];
            if !s.sending && s.tx_err.is_none() {
                if s.tx_off >= s.tx_fly.len() && !s.tx_next.is_empty() {
                    s.tx_fly.clear();
                    std::mem::swap(&mut s.tx_fly, &mut s.tx_next);
                    s.tx_off = 0;
                }
                if s.tx_off < s.tx_fly.len() {
                    s.sending = true;
                    let rest = &s.tx_fly[s.tx_off..];
                    let e = opcode::Send::new(fd, rest.as_ptr(), rest.len() as u32)
                        .flags(libc::MSG_NOSIGNAL)
                        .build()
                        .flags(on)
                        .user_data(user_data(s.gen, slot, OP_SEND));
                    self.push(e);
                }
            }
        }
        let mut dirty = dirty;
        dirty.clear();
        if self.dirty.is_empty() {
            self.dirty = dirty;
        }
    }

    /// A receive completion; whether a buffer went back to the ring.
    pub(super) fn on_recv(&mut self, slot: usize, res: i32, flags: u32) -> bool {
        let more = cqueue::more(flags);
        if !more {
            self.in_flight -= 1;
        }
        let mut recycled = false;
        if let Some(bid) = cqueue::buffer_select(flags) {
            let s = &self.slots[slot];
            let idle = s.held.is_none() && s.rx_at == s.rx.len() && !s.own;
            self.provided.took();
            if res > 0 && !s.closed && idle && self.held < self.provided.held_max() {
                // Read where the kernel put it (`UringStream::poll_lend`): no copy.
                let s = &mut self.slots[slot];
                s.rx.clear();
                s.rx_at = 0;
                s.held = Some((bid, res as u32));
                s.copies = s.copies.saturating_sub(1);
                self.held += 1;
            } else {
                self.unhold(slot);
                let Inner { slots, provided, spare, .. } = self;
                let s = &mut slots[slot];
                if res > 0 && !s.closed {
                    if s.rx.capacity() == 0 {
                        s.rx = spare.take();
                    }
                    if s.rx_at == s.rx.len() {
                        s.rx.clear();
                        s.rx_at = 0;
                    } else if s.rx_at >= s.rx.len() / 2
                        || (s.rx_at > 0 && s.rx.len() + res as usize > s.rx.capacity())
                    {
                        // Moved to the front rather than grown past its capacity.
                        s.rx.drain(..s.rx_at);
                        s.rx_at = 0;
                    }
                    grow_rx(&mut s.rx, res as usize);
                    s.rx.extend_from_slice(provided.data(bid, res as usize));
                    s.copies = s.copies.saturating_add(2);
                }
                provided.give(bid);
                recycled = true;
            }
        }
        let unread = self.unread_len(slot);
        if res == -libc::ENOBUFS {
            // Armed again below, with twice the buffers circulating.
            recycled |= self.provided.ran_out();
        }
        let s = &mut self.slots[slot];
        if res == 0 {
            s.rx_end.get_or_insert(Ok(()));
        } else if res < 0 && res != -libc::ENOBUFS && (res != -libc::ECANCELED || s.closed) {
            s.rx_end.get_or_insert(Err(errno(res)));
        }
        // Past its bound a connection pauses, whether its receive goes on (cancelled here) or
        // just ended (out of buffers: armed again below it kept receiving, 2.5 MB unread).
        let over = unread > s.bound() && !s.closed;
        let pause = over && !s.paused;
        s.paused |= pause;
        if !more {
            s.recv_armed = false;
            if s.done() {
                self.retire(slot);
                return recycled;
            }
            // Out of buffers, or ended by the kernel: armed again unless paused.
            if s.rx_end.is_none() && !s.closed && !s.paused {
                self.mark(slot);
            }
        } else if pause {
            self.cancel(slot);
        } else if s.copies >= OWN_AFTER && !s.own && !s.closed {
            // It keeps streaming: its own buffer from the next receive on.
            s.own = true;
            self.cancel(slot);
        }
        wake(&mut self.slots[slot].read_waker);
        recycled
    }

    /// A receive into the connection's own buffer.
    pub(super) fn on_recv_own(&mut self, slot: usize, res: i32) {
        self.in_flight -= 1;
        let s = &mut self.slots[slot];
        s.recv_armed = false;
        s.own_flight = false;
        if res > 0 {
            // SAFETY: the kernel wrote `res` bytes of the spare room it was given.
            unsafe { s.rx.set_len(s.rx.len() + res as usize) };
            // A reader waiting for the rest of a message it left partial keeps the connection
            // on its own buffer, however little came: the rest of a 200 KiB message's frame
            // went through provided buffers and was copied out of them (a tenth of a router
            // core).
            let waiting = s.rx_bound > 0 || s.rx_lent as usize > MOVE_CHEAP;
            if (res as usize) < OWN_ROOM / 4 && !waiting {
                // Not streaming any more: back to the provided buffers.
                s.own = false;
                s.copies = 0;
            }
        } else if res == 0 {
            s.rx_end.get_or_insert(Ok(()));
        } else if res != -libc::ECANCELED || s.closed {
            s.rx_end.get_or_insert(Err(errno(res)));
        }
        if s.done() {
            self.retire(slot);
            return;
        }
        let unread = self.unread_len(slot);
        let s = &mut self.slots[slot];
        if unread > s.bound() {
            s.paused = true;
        } else if s.rx_end.is_none() && !s.closed {
            self.mark(slot);
        }
        let s = &mut self.slots[slot];
        if unread == 0 && !s.own && s.rx.capacity() > OWN_CAP {
            // Grown for a big message, now read, and back to the provided buffers: to the
            // spare list (kept there up to `RX_KEPT`), not held by an idle connection.
            let rx = std::mem::take(&mut s.rx);
            s.rx_at = 0;
            self.spare.put(rx, RX_KEPT);
        }
        wake(&mut self.slots[slot].read_waker);
    }

    pub(super) fn on_send(&mut self, slot: usize, res: i32) {
        self.in_flight -= 1;
        let s = &mut self.slots[slot];
        s.sending = false;
        if res < 0 {
            s.tx_err.get_or_insert(errno(res));
        } else {
            s.tx_off += res as usize;
            if s.tx_off >= s.tx_fly.len() && !s.tx_next.is_empty() {
                // What waited goes next, and its place is free now: a writer woken below
                // hands its next buffer over instead of waiting a pass.
                s.tx_fly.clear();
                std::mem::swap(&mut s.tx_fly, &mut s.tx_next);
                s.tx_off = 0;
            }
            if s.tx_off < s.tx_fly.len() {
                self.mark(slot);
            } else {
                // All sent: a connection with nothing to send keeps no send buffer.
                let (fly, next) = (std::mem::take(&mut s.tx_fly), std::mem::take(&mut s.tx_next));
                s.tx_off = 0;
                self.tx_spare.put(fly, RX_KEPT);
                self.tx_spare.put(next, RX_KEPT);
            }
        }
        let s = &mut self.slots[slot];
        if s.done() {
            self.retire(slot);
            return;
        }
        wake(&mut s.write_waker);
    }

    /// A shutdown's completion: the slot is freed if its stream is gone. The receive and the
    /// send end on their own, with the end of the stream or an error.
    pub(super) fn on_shutdown(&mut self, slot: usize) {
        self.in_flight -= 1;
        let s = &mut self.slots[slot];
        s.shutting = false;
        if s.done() {
            self.retire(slot);
        }
    }

    /// The bytes of `slot` received and not yet read.
    pub(super) fn unread(&self, slot: usize) -> &[u8] {
        let s = &self.slots[slot];
        match s.held {
            Some((bid, len)) => &self.provided.data(bid, len as usize)[s.rx_at..],
            None => &s.rx[s.rx_at..],
        }
    }

    pub(super) fn unread_len(&self, slot: usize) -> usize {
        let s = &self.slots[slot];
        s.held.map_or(s.rx.len(), |(_, len)| len as usize) - s.rx_at
    }

    /// Moves a held buffer's unread bytes into the slot's own receive buffer and gives the
    /// buffer back (published by the caller); whether there was one.
    pub(super) fn unhold(&mut self, slot: usize) -> bool {
        let Inner { slots, provided, spare, held, .. } = self;
        let s = &mut slots[slot];
        let Some((bid, len)) = s.held.take() else { return false };
        *held -= 1;
        let rest = &provided.data(bid, len as usize)[s.rx_at..];
        s.rx_at = 0;
        s.rx.clear();
        if !rest.is_empty() {
            if s.rx.capacity() == 0 {
                s.rx = spare.take();
            }
            grow_rx(&mut s.rx, rest.len());
            s.rx.extend_from_slice(rest);
        }
        provided.give(bid);
        true
    }

    /// Frees the slot of a dropped stream whose operations all ended: its descriptor closes, its
    /// buffers go back to the spare lists, and the slot serves the next connection under a new
    /// generation.
    pub(super) fn retire(&mut self, slot: usize) {
        if self.unhold(slot) {
            self.provided.publish();
        }
        let s = &mut self.slots[slot];
        debug_assert!(s.done());
        let old = std::mem::replace(
            s,
            Slot { gen: s.gen.wrapping_add(1), dirty: s.dirty, ..Slot::default() },
        );
        if old.fixed {
            // Out of the table, which holds the process's only reference: the socket closes.
            let _ = self.ring.submitter().register_files_update(slot as u32, &[-1]);
        }
        drop(old.fd);
        self.spare.put(old.rx, RX_KEPT);
        self.tx_spare.put(old.tx_fly, SEND_MAX * 2);
        self.tx_spare.put(old.tx_next, SEND_MAX * 2);
        self.free.push(slot);
    }

    /// At stop: cancels every receive still armed.
    pub(super) fn cancel_all(&mut self) {
        self.bell_fd = None;
        if self.bell_armed {
            let e = opcode::AsyncCancel::new(user_data(0, 0, OP_BELL))
                .build()
                .user_data(user_data(0, 0, OP_CANCEL));
            self.push_memoryless(e);
        }
        for slot in 0..self.slots.len() {
            if self.slots[slot].recv_armed {
                self.cancel(slot);
            }
        }
    }

    /// Cancels the receive of `slot` (submitted with the next pass).
    pub(super) fn cancel(&mut self, slot: usize) {
        let gen = self.slots[slot].gen;
        let e = opcode::AsyncCancel::new(user_data(gen, slot, OP_RECV))
            .build()
            .user_data(user_data(gen, slot, OP_CANCEL));
        // Its completion is ignored.
        self.push_memoryless(e);
    }
}
