//! [`UringStream`]: one connection's reads and writes through its thread's ring.

use super::*;

/// A connection whose I/O goes through a [`Ring`].
pub struct UringStream {
    pub(super) ring: Rc<Ring>,
    pub(super) slot: usize,
}

impl std::fmt::Debug for UringStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UringStream({})", self.slot)
    }
}

impl AsyncRead for UringStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut guard = self.ring.inner.borrow_mut();
        let avail = guard.unread(self.slot);
        if !avail.is_empty() {
            let n = avail.len().min(buf.len());
            buf[..n].copy_from_slice(&avail[..n]);
            guard.slots[self.slot].rx_lent = 0;
            drop(guard);
            self.consumed(n);
            return Poll::Ready(Ok(n));
        }
        let s = &mut guard.slots[self.slot];
        match s.rx_end {
            Some(Ok(())) => Poll::Ready(Ok(0)),
            Some(Err(kind)) => Poll::Ready(Err(kind.into())),
            None => {
                s.read_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl UringStream {
    /// Reads in place: lends the bytes received and not yet read to `f`, which returns how
    /// many of them it consumed (the rest stay, for the next lend) and a value. This saves
    /// [`AsyncRead::poll_read`]'s copy into the caller's buffer. Pending until there are bytes
    /// that `f` has not seen yet, or, with `again`, any unread bytes (the caller held some
    /// back and wants them again). `Ok(None)` at the end of the stream.
    ///
    /// `f` runs while the ring is borrowed: it must not use this thread's ring.
    pub fn poll_lend<T>(
        &self,
        cx: &mut Context<'_>,
        again: bool,
        f: impl FnOnce(&[u8]) -> (usize, T),
    ) -> Poll<io::Result<Option<T>>> {
        let mut guard = self.ring.inner.borrow_mut();
        let unread = guard.unread_len(self.slot);
        if unread > guard.slots[self.slot].rx_lent as usize || (again && unread > 0) {
            let (used, t) = f(guard.unread(self.slot));
            let used = used.min(unread);
            guard.slots[self.slot].rx_lent = (unread - used) as u32;
            drop(guard);
            self.consumed(used);
            // What is left (a partial frame, or input held back) waits in the slot's own
            // buffer: a provided buffer is held only until its reader comes.
            let mut inner = self.ring.inner.borrow_mut();
            if inner.unhold(self.slot) {
                inner.provided.publish();
            }
            return Poll::Ready(Ok(Some(t)));
        }
        let s = &mut guard.slots[self.slot];
        match s.rx_end {
            Some(Ok(())) => Poll::Ready(Ok(None)),
            Some(Err(kind)) => Poll::Ready(Err(kind.into())),
            None => {
                s.read_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    /// Writes `buf` without copying it, when nothing else waits to be sent: the ring takes
    /// the buffer and leaves an empty one (with capacity, when it has a spare) in its place.
    /// False when it cannot (bytes already queued, or an error): then write as usual.
    pub fn send_owned(&self, buf: &mut Vec<u8>) -> bool {
        self.try_send_owned(buf).unwrap_or(false)
    }

    /// [`UringStream::send_owned`] for a connection's writer: while another buffer waits to be
    /// sent, waits for its place (woken when the send before it completes) rather than
    /// copying behind it. Copying grew the waiting buffer — often a writer's pooled frame,
    /// handed over earlier — past its pool's sizes, so every few sends freed one buffer and
    /// allocated, and faulted in, a bigger one. `Ready(false)`: write as usual (an error to
    /// report, or an empty buffer). A buffer bigger than [`SEND_MAX`] is taken too: copied
    /// behind in parts of `SEND_MAX`, a 1 MiB message's frame cost the router a copy.
    ///
    /// With early sends on (a router's shard), a send in flight has most often completed as it
    /// was submitted: its completion is reaped at once and the buffer takes its place, so a
    /// writer hands over frame after frame as a plain socket's writer writes them, until the
    /// socket is full. Waiting for the reaper's next pass moved a frame (64 KiB) a connection
    /// each pass: with 16 KiB messages the router's queues filled and paused their senders
    /// (≈ 400 pauses/s against none with tokio; `docs/BENCHMARKS.md`, "Big messages").
    pub fn poll_send_owned(&self, cx: &mut Context<'_>, buf: &mut Vec<u8>) -> Poll<bool> {
        let mut taken = self.try_send_owned(buf);
        if taken.is_none() && self.ring.early_send.get() > 0 {
            let reaped = {
                let mut inner = self.ring.inner.borrow_mut();
                self.ring.reap_completions(&mut inner)
            };
            if reaped > 0 {
                taken = self.try_send_owned(buf);
            }
        }
        match taken {
            Some(taken) => Poll::Ready(taken),
            None => {
                self.ring.inner.borrow_mut().slots[self.slot].write_waker =
                    Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    /// Whether a writer with `queued` bytes for this connection, which has waited `waited`
    /// passes so far, should wait for the next pass to send more at once: while the ring
    /// gathers (its thread saturated, bytes coming in), below [`GATHER_BYTES`], for at most
    /// [`GATHER_PASSES`]. Pending: woken after the next pass (or when the reaper ends).
    pub fn poll_gather(&self, cx: &mut Context<'_>, queued: usize, waited: &mut u32) -> Poll<()> {
        let ring = &self.ring;
        if !ring.gathering.get() || queued >= GATHER_BYTES || *waited >= GATHER_PASSES {
            return Poll::Ready(());
        }
        *waited += 1;
        ring.gatherers.borrow_mut().push(cx.waker().clone());
        Poll::Pending
    }

    /// `Some(true)` taken, `None` another buffer waits, `Some(false)` cannot.
    pub(super) fn try_send_owned(&self, buf: &mut Vec<u8>) -> Option<bool> {
        let mut inner = self.ring.inner.borrow_mut();
        let s = &mut inner.slots[self.slot];
        if s.tx_err.is_some() || buf.is_empty() {
            return Some(false);
        }
        if !s.tx_next.is_empty() {
            return None;
        }
        let mut empty = std::mem::take(&mut s.tx_next);
        if empty.capacity() == 0 {
            // As big a buffer as the one taken, when one was sent and kept: the writer's pool
            // gets back what it gave (for messages of hundreds of KiB, every frame a new
            // allocation, faulted in page by page as it was filled, otherwise).
            let cap = buf.capacity();
            empty = inner.tx_spare.take_at_least(cap).unwrap_or_else(|| inner.tx_spare.take());
        }
        inner.slots[self.slot].tx_next = std::mem::replace(buf, empty);
        self.queued(inner);
        Some(true)
    }

    /// Bytes were queued on this connection: unless a send is in flight (its completion sends
    /// them), the slot waits for the next pass's submission, or goes at once when early
    /// sending is on and enough is queued.
    pub(super) fn queued(&self, mut inner: std::cell::RefMut<'_, Inner>) {
        let s = &mut inner.slots[self.slot];
        if !s.sending {
            let early = self.ring.early_send.get();
            let now = early > 0 && s.tx_next.len() >= early;
            inner.mark(self.slot);
            if now {
                // One submission for every connection queued so far; completions are reaped
                // by the next pass.
                inner.submit_queued();
            }
            drop(inner);
            self.ring.kick();
        }
    }

    /// Submits what this ring's connections queued (sends, receives) now rather than at the
    /// end of the pass; the completions are reaped by the next pass. For a reader that hands
    /// its input over in parts: the output of one part leaves before the next is handled.
    pub fn submit_now(&self) {
        self.ring.inner.borrow_mut().submit_queued();
    }

    /// Bytes not yet read (nor consumed by a lend).
    pub fn unread(&self) -> usize {
        self.ring.inner.borrow().unread_len(self.slot)
    }

    /// The bound on unread bytes set by [`UringStream::set_bound`]; 0: none ([`RECV_MAX`]).
    pub fn bound(&self) -> usize {
        self.ring.inner.borrow().slots[self.slot].raised()
    }

    /// The bound a reader that holds `unread` bytes of a message of `frame` bytes (`usize::MAX`
    /// when it cannot tell) asks for with [`UringStream::set_bound`]: 0 under [`LEND_MAX`],
    /// else twice what came, at most the message, never below what is set.
    pub fn bound_wanted(&self, unread: usize, frame: usize) -> usize {
        if unread < LEND_MAX {
            return 0;
        }
        bound_for((2 * unread).min(frame)).max(self.bound())
    }

    /// For a reader that waits for the rest of a message of which [`LEND_MAX`] or more came
    /// (asked after each read that leaves it partial, even when the bound is already that: a
    /// connection paused past it resumes here, not with the usual half read): the
    /// connection keeps receiving until `bound` bytes are unread (instead of [`RECV_MAX`]),
    /// straight into its own buffer, so that the message is read in place when whole. Raise it
    /// with the bytes that came (twice them, say), not with a length a header announced: a
    /// peer's 16 bytes must not pin megabytes; the bound set is [`bound_for`] it, past
    /// `RECV_MAX` whatever is asked. 0: back to `RECV_MAX`, once the message is through; a buffer grown for it goes back to the spare
    /// list once emptied, rather than staying with an idle connection.
    pub fn set_bound(&self, bound: usize) {
        let mut guard = self.ring.inner.borrow_mut();
        let inner = &mut *guard;
        let bound = (bound_for(bound) / BOUND_UNIT) as u16;
        let s = &mut inner.slots[self.slot];
        let before = std::mem::replace(&mut s.rx_bound, bound);
        if s.closed {
            return;
        }
        let mut cancel = false;
        if bound == before {
            // Asked again for the same message: below, it receives again if it can.
        } else if bound > 0 && !s.own {
            // Into the connection's own buffer from the next receive on.
            s.own = true;
            cancel = s.recv_armed;
        } else if bound == 0 && s.rx.capacity() > IDLE_RX_MAX {
            // Back to the provided buffers; an own receive armed into the big buffer ends.
            s.own = false;
            s.copies = 0;
            cancel = s.recv_armed;
        }
        let unread = inner.unread_len(self.slot);
        let s = &mut inner.slots[self.slot];
        // Raised (or kept) for a message, it receives again as soon as there is room: a paused
        // connection whose reader left part of a message past half the bound would otherwise
        // never resume. Back down, once half of the bound is read (as after any read).
        let resume = s.paused && unread < if bound > 0 { s.bound() } else { s.bound() / 2 };
        if resume {
            s.paused = false;
        }
        if cancel {
            inner.cancel(self.slot);
        } else if resume && !s.recv_armed {
            inner.mark(self.slot);
        } else {
            return;
        }
        drop(guard);
        self.ring.kick();
    }

    /// `n` more bytes were read: an idle connection keeps no receive buffer, and a paused
    /// receive starts again once half its bound is read.
    pub(super) fn consumed(&self, n: usize) {
        let mut guard = self.ring.inner.borrow_mut();
        let inner = &mut *guard;
        let s = &mut inner.slots[self.slot];
        s.rx_at += n;
        match s.held {
            Some((bid, len)) if s.rx_at == len as usize => {
                s.held = None;
                s.rx_at = 0;
                inner.held -= 1;
                inner.provided.give(bid);
                inner.provided.publish();
            }
            Some(_) => {}
            None if s.rx_at == s.rx.len() && !s.own_flight => {
                let rx = std::mem::take(&mut s.rx);
                s.rx_at = 0;
                inner.spare.put(rx, RX_KEPT);
            }
            None => {}
        }
        let unread = inner.unread_len(self.slot);
        let s = &mut inner.slots[self.slot];
        if s.paused && unread <= s.bound() / 2 {
            s.paused = false;
            if !s.recv_armed {
                inner.mark(self.slot);
                drop(guard);
                self.ring.kick();
            }
        }
    }
}

impl AsyncWrite for UringStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        let mut inner = self.ring.inner.borrow_mut();
        let s = &mut inner.slots[self.slot];
        if let Some(kind) = s.tx_err {
            return Poll::Ready(Err(kind.into()));
        }
        if s.tx_next.len() >= SEND_MAX {
            s.write_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = b.len().min(SEND_MAX - s.tx_next.len());
        if s.tx_next.capacity() == 0 {
            let spare = inner.tx_spare.take();
            inner.slots[self.slot].tx_next = spare;
        }
        inner.slots[self.slot].tx_next.extend_from_slice(&b[..n]);
        self.queued(inner);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // As on a socket, whose flush does nothing: what was written is on its way (the next
        // pass sends it with whatever else the connection queued meanwhile, so a writer never
        // waits a pass per write); `poll_write` bounds what may wait, `poll_close` waits for
        // all of it.
        match self.ring.inner.borrow().slots[self.slot].tx_err {
            Some(kind) => Poll::Ready(Err(kind.into())),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut inner = self.ring.inner.borrow_mut();
        let s = &mut inner.slots[self.slot];
        if let Some(kind) = s.tx_err {
            return Poll::Ready(Err(kind.into()));
        }
        if s.sending || !s.tx_next.is_empty() || s.tx_off < s.tx_fly.len() {
            s.write_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }
}

/// What may be done to a connection from outside its reader and writer (a shard that stops, a
/// session that ends it), by the slot and its generation: once the stream is gone, or its slot
/// serves another connection, the handle does nothing. It stands in for the socket's
/// descriptor, which the process no longer holds once the socket is in the ring's table.
#[derive(Debug, Clone)]
pub struct Handle {
    ring: std::rc::Weak<Ring>,
    slot: usize,
    gen: u32,
}

impl UringStream {
    /// The connection's [`Handle`].
    pub fn handle(&self) -> Handle {
        let gen = self.ring.inner.borrow().slots[self.slot].gen;
        Handle { ring: Rc::downgrade(&self.ring), slot: self.slot, gen }
    }
}

impl Handle {
    /// Runs `f` on the connection's slot if it is still this connection's and its stream
    /// alive, then wakes the reaper to submit what `f` asked.
    fn with(&self, f: impl FnOnce(&mut Inner, usize)) {
        let Some(ring) = self.ring.upgrade() else { return };
        let mut inner = ring.inner.borrow_mut();
        let s = &inner.slots[self.slot];
        if s.gen != self.gen || s.closed {
            return;
        }
        f(&mut inner, self.slot);
        inner.mark(self.slot);
        drop(inner);
        ring.kick();
    }

    /// Shuts both directions down, as `shutdown(2)` would (a parked read sees the end of the
    /// stream, the peer a FIN): submitted with the reaper's next pass.
    pub fn shutdown(&self) {
        self.with(|inner, slot| inner.slots[slot].shut_wanted = true);
    }

    /// Queues `bytes` after whatever the connection has queued, without waiting for room: a
    /// parting reply, sent even if the stream drops right after.
    pub fn send_now(&self, bytes: &[u8]) {
        self.with(|inner, slot| {
            let s = &mut inner.slots[slot];
            if s.tx_next.capacity() == 0 {
                s.tx_next = inner.tx_spare.take();
            }
            let s = &mut inner.slots[slot];
            s.tx_next.extend_from_slice(bytes);
            s.parting = true;
        });
    }
}

impl Drop for UringStream {
    fn drop(&mut self) {
        let mut inner = self.ring.inner.borrow_mut();
        let s = &mut inner.slots[self.slot];
        s.closed = true;
        s.read_waker = None;
        s.write_waker = None;
        let parting = s.lingering() && !s.sending;
        if parting {
            // A parting reply not yet submitted: the next pass sends it, and its completion
            // frees the slot.
            inner.mark(self.slot);
        }
        let s = &mut inner.slots[self.slot];
        if s.done() {
            inner.retire(self.slot);
        } else if s.recv_armed || parting {
            if s.recv_armed {
                // Its receive ends with the cancel; the socket closes with its last operation.
                inner.cancel(self.slot);
            }
            drop(inner);
            self.ring.kick();
        }
    }
}
