//! The provided-buffer ring: the buffers multishot receives land in, and how many circulate.

use super::*;

impl Provided {
    pub(super) fn new() -> io::Result<Provided> {
        let layout = Layout::from_size_align(
            usize::from(BUFS) * std::mem::size_of::<types::BufRingEntry>(),
            4096,
        )
        .map_err(io::Error::other)?;
        // SAFETY: the layout has a non-zero size.
        let entries = unsafe { alloc_zeroed(layout) }.cast::<types::BufRingEntry>();
        if entries.is_null() {
            return Err(io::Error::other("out of memory for the provided-buffer ring"));
        }
        let mut p = Provided {
            entries,
            layout,
            mem: vec![0u8; usize::from(BUFS) * BUF_SIZE].into_boxed_slice(),
            tail: 0,
            limit: BUFS_MIN,
            stash: Vec::with_capacity(usize::from(BUFS)),
            quiet: 0,
        };
        for bid in (0..BUFS).rev() {
            p.give(bid);
        }
        p.publish();
        Ok(p)
    }

    /// Buffer `bid` is free again: back in the ring (seen by the kernel after
    /// [`Provided::publish`]), or out of circulation while more than `limit` circulate.
    pub(super) fn give(&mut self, bid: u16) {
        if self.circulating() > self.limit {
            self.stash.push(bid);
            return;
        }
        self.put(bid);
    }

    /// A receive found no buffer: twice as many circulate, at once. Whether any were added.
    pub(super) fn ran_out(&mut self) -> bool {
        self.quiet = 0;
        self.limit = (self.limit * 2).min(BUFS);
        let mut added = false;
        while self.circulating() < self.limit {
            let Some(bid) = self.stash.pop() else { break };
            self.put(bid);
            added = true;
        }
        if added {
            self.publish();
        }
        added
    }

    /// A receive took a buffer: after [`SHRINK_AFTER`] of them without running out, half as
    /// many circulate (the rest leave as they come back).
    pub(super) fn took(&mut self) {
        self.quiet += 1;
        if self.quiet >= SHRINK_AFTER {
            self.quiet = 0;
            self.limit = (self.limit / 2).max(BUFS_MIN);
        }
    }

    /// Buffers in circulation (in the ring, being written, or held): all but the stash.
    pub(super) fn circulating(&self) -> u16 {
        BUFS - self.stash.len() as u16
    }

    /// How many buffers connections may hold unread now.
    pub(super) fn held_max(&self) -> usize {
        usize::from(self.limit / 2).min(HELD_MAX)
    }

    pub(super) fn put(&mut self, bid: u16) {
        let at = usize::from(self.tail & (BUFS - 1));
        let addr = self.mem[usize::from(bid) * BUF_SIZE..].as_ptr() as u64;
        // SAFETY: `at` < BUFS, inside the allocation; the kernel reads an entry only once the
        // published tail covers it, and this one is past the published tail.
        let e = unsafe { &mut *self.entries.add(at) };
        e.set_addr(addr);
        e.set_len(BUF_SIZE as u32);
        e.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    pub(super) fn publish(&self) {
        // SAFETY: `entries` is the ring's first entry, initialized; its tail field is a u16
        // the kernel reads atomically, so it is stored as one, with release ordering so the
        // entries written before are seen first.
        unsafe {
            let tail = types::BufRingEntry::tail(self.entries).cast::<AtomicU16>();
            (*tail).store(self.tail, Ordering::Release);
        }
    }

    pub(super) fn data(&self, bid: u16, len: usize) -> &[u8] {
        let at = usize::from(bid) * BUF_SIZE;
        &self.mem[at..at + len.min(BUF_SIZE)]
    }
}

impl Drop for Provided {
    fn drop(&mut self) {
        // Leaked (`Inner`'s drop, operations in flight): nothing of ours to free.
        if self.layout.size() == 0 {
            return;
        }
        // SAFETY: allocated in `new` with this layout; dropped only when no operation can
        // use the ring (see `Inner`'s drop).
        unsafe { dealloc(self.entries.cast(), self.layout) }
    }
}
