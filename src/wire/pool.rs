//! Buffer pool: 1 KiB / 8 KiB / 64 KiB tiers of reusable `Vec<u8>`s.
//!
//! One pool per core, owned by that core's shard or agent group and never shared across threads
//! (it has no lock and needs none). Each tier's free list is bounded, so an idle pool holds at
//! most `free_max[i]` buffers of at most twice tier `i`'s size, and at most 16 MiB of bigger ones
//! (kept only once requests asked for them). Requests above the largest tier are counted as
//! `oversize` and served by a kept buffer when one is big enough, else by a plain allocation.

use serde::Serialize;

/// The tier sizes in bytes.
pub const TIER_BYTES: [usize; 3] = [1 << 10, 8 << 10, 64 << 10];

/// How many of the largest tier's free buffers a request above it looks through.
const OVERSIZE_LOOK: usize = 8;
/// Buffers over twice the largest tier a pool keeps, at most, and their bytes in all: with
/// 1 MiB messages, 4 MiB (8 buffers) left most frames a new allocation, faulted in by the copy
/// that filled it (200–400 k page faults a second on a router core).
const BIG_KEPT: usize = 16;
const BIG_KEPT_BYTES: usize = 16 << 20;

/// Counters a report shows to judge reuse.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PoolStats {
    /// Requests served from a free list.
    pub hits: u64,
    /// Requests that allocated (tier empty, or oversize).
    pub misses: u64,
    /// Requests larger than the largest tier.
    pub oversize: u64,
    /// Buffers given back and kept for reuse.
    pub returns: u64,
    /// Buffers given back and freed (tier full, too small, or too large to keep).
    pub discards: u64,
}

impl PoolStats {
    /// Adds another pool's counters into this one.
    pub fn merge(&mut self, other: &PoolStats) {
        self.hits += other.hits;
        self.misses += other.misses;
        self.oversize += other.oversize;
        self.returns += other.returns;
        self.discards += other.discards;
    }
}

/// A per-core pool of byte buffers.
#[derive(Debug)]
pub struct BufferPool {
    /// Free buffers per tier; a buffer sits in the largest tier its capacity covers.
    free: [Vec<Vec<u8>>; 3],
    /// The bound on each free list.
    free_max: [usize; 3],
    /// Buffers over twice the largest tier, kept for the next request above it: at most
    /// [`BIG_KEPT`] of them and [`BIG_KEPT_BYTES`] in all (none until such a request came).
    big: Vec<Vec<u8>>,
    stats: PoolStats,
}

impl Default for BufferPool {
    fn default() -> Self {
        BufferPool::new(BufferPool::FREE_MAX_DEFAULT)
    }
}

impl BufferPool {
    /// Default free-list bounds: 1,024 × 1 KiB, 256 × 8 KiB, 64 × 64 KiB (≈ 7 MiB at most).
    pub const FREE_MAX_DEFAULT: [usize; 3] = [1024, 256, 64];

    /// A pool whose tier `i` keeps at most `free_max[i]` idle buffers.
    pub fn new(free_max: [usize; 3]) -> BufferPool {
        BufferPool {
            free: [Vec::new(), Vec::new(), Vec::new()],
            free_max,
            big: Vec::new(),
            stats: PoolStats::default(),
        }
    }

    /// An empty buffer with capacity of at least `bytes`, from the smallest tier that fits.
    pub fn get(&mut self, bytes: usize) -> Vec<u8> {
        let Some(tier) = TIER_BYTES.iter().position(|&size| size >= bytes) else {
            self.stats.oversize += 1;
            // A buffer up to twice the largest tier is kept in it when given back: one of the
            // last few there may be big enough (a 64 KiB message's frame, a little over 64 KiB,
            // allocated and freed for every message otherwise).
            let top = &mut self.free[2];
            let from = top.len().saturating_sub(OVERSIZE_LOOK);
            if let Some(i) = top[from..].iter().rposition(|b| b.capacity() >= bytes) {
                self.stats.hits += 1;
                return top.swap_remove(from + i);
            }
            // A bigger one kept (messages of hundreds of KiB: a buffer mapped and faulted in
            // by the kernel for every message otherwise, a tenth of a router core).
            if let Some(i) = self.big.iter().rposition(|b| b.capacity() >= bytes) {
                self.stats.hits += 1;
                return self.big.swap_remove(i);
            }
            self.stats.misses += 1;
            return Vec::with_capacity(bytes);
        };
        match self.free[tier].pop() {
            Some(buf) => {
                self.stats.hits += 1;
                buf
            }
            None => {
                self.stats.misses += 1;
                Vec::with_capacity(TIER_BYTES[tier])
            }
        }
    }

    /// Gives a buffer back. It is kept in the largest tier its capacity covers, unless that
    /// tier's free list is full, or the buffer is under 1 KiB; one over twice the largest tier
    /// is kept apart while fewer than [`BIG_KEPT`] and [`BIG_KEPT_BYTES`] are.
    pub fn put(&mut self, mut buf: Vec<u8>) {
        let cap = buf.capacity();
        if cap > 2 * TIER_BYTES[2] {
            let kept: usize = self.big.iter().map(Vec::capacity).sum();
            if self.big.len() < BIG_KEPT && kept + cap <= BIG_KEPT_BYTES {
                buf.clear();
                self.big.push(buf);
                self.stats.returns += 1;
            } else {
                self.stats.discards += 1;
            }
            return;
        }
        let tier = TIER_BYTES.iter().rposition(|&size| size <= cap);
        match tier {
            Some(t) if self.free[t].len() < self.free_max[t] => {
                buf.clear();
                self.free[t].push(buf);
                self.stats.returns += 1;
            }
            _ => self.stats.discards += 1,
        }
    }

    /// Counters since creation.
    pub fn stats(&self) -> PoolStats {
        self.stats
    }

    /// Idle buffers held, per tier.
    pub fn idle(&self) -> [usize; 3] {
        [self.free[0].len(), self.free[1].len(), self.free[2].len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_within_their_tier() {
        // Proves a returned buffer serves the next request of its tier, and only of its tier.
        let mut pool = BufferPool::default();
        for (bytes, tier) in [(10, 0), (1024, 0), (1025, 1), (8192, 1), (60_000, 2)] {
            let buf = pool.get(bytes);
            assert!(buf.capacity() >= bytes);
            assert_eq!(buf.capacity(), TIER_BYTES[tier]);
            pool.put(buf);
            assert_eq!(pool.idle()[tier], 1, "request of {bytes} bytes");
            let again = pool.get(bytes);
            assert_eq!(pool.idle()[tier], 0);
            pool.put(again);
            // leave the tier empty again for the next case
            let _ = pool.get(TIER_BYTES[tier]);
        }
        let s = pool.stats();
        assert_eq!(s.hits, 10);
        assert_eq!(s.misses, 5);
        assert_eq!(s.returns, 10);
    }

    #[test]
    fn a_grown_buffer_moves_to_the_tier_it_now_covers() {
        // Proves a 1 KiB buffer that grew to 8 KiB is kept as an 8 KiB buffer.
        let mut pool = BufferPool::default();
        let mut buf = pool.get(100);
        buf.resize(9000, 1);
        pool.put(buf);
        assert_eq!(pool.idle(), [0, 1, 0]);
        assert!(pool.get(8192).is_empty());
    }

    #[test]
    fn free_lists_are_bounded() {
        // Proves the pool never keeps more idle buffers than its bound, and counts the rest.
        let mut pool = BufferPool::new([2, 2, 2]);
        let bufs: Vec<_> = (0..5).map(|_| pool.get(8192)).collect();
        for b in bufs {
            pool.put(b);
        }
        assert_eq!(pool.idle(), [0, 2, 0]);
        assert_eq!(pool.stats().returns, 2);
        assert_eq!(pool.stats().discards, 3);
    }

    #[test]
    fn a_request_a_little_over_the_largest_tier_reuses_a_kept_buffer() {
        // Proves a 64 KiB message's frame (a little over the largest tier), asked for message
        // after message, is served by the buffer given back before it, not allocated each
        // time, though a buffer of exactly the tier was given back after it.
        let mut pool = BufferPool::default();
        let frame = (64 << 10) + 100;
        let first = pool.get(frame);
        let at = first.as_ptr();
        pool.put(first);
        pool.put(Vec::with_capacity(64 << 10));
        for _ in 0..10 {
            let again = pool.get(frame);
            assert_eq!(again.as_ptr(), at, "a new buffer was allocated");
            assert!(again.capacity() >= frame && again.is_empty());
            pool.put(again);
        }
        let s = pool.stats();
        assert_eq!((s.oversize, s.misses, s.hits), (11, 1, 10));
    }

    #[test]
    fn big_buffers_are_kept_apart_within_their_bound() {
        // Proves a request far above 64 KiB is served, counted as oversize, and that given
        // back its buffer serves the next such request (not a new mapping per message), while
        // the big ones kept stay within `BIG_KEPT_BYTES`; a buffer under 1 KiB is not kept.
        let mut pool = BufferPool::default();
        let big = pool.get(1 << 20);
        assert!(big.capacity() >= 1 << 20);
        let at = big.as_ptr();
        pool.put(big);
        assert_eq!(pool.idle(), [0, 0, 0], "not kept in a tier");
        let again = pool.get(700_000);
        assert_eq!(again.as_ptr(), at, "the kept buffer serves a smaller big request");
        let s = pool.stats();
        assert_eq!((s.oversize, s.misses, s.hits, s.returns), (2, 1, 1, 1));
        let mut held: Vec<Vec<u8>> = (0..BIG_KEPT + 2).map(|_| pool.get(1 << 20)).collect();
        held.push(again);
        for b in held {
            pool.put(b);
        }
        let kept: usize = pool.big.iter().map(Vec::capacity).sum();
        let most = BIG_KEPT.min(BIG_KEPT_BYTES >> 20);
        assert!(
            kept <= BIG_KEPT_BYTES && pool.big.len() == most,
            "{} kept, {kept} bytes",
            pool.big.len()
        );
        assert_eq!(pool.stats().discards, (BIG_KEPT + 3 - most) as u64);
        pool.put(Vec::new());
        assert_eq!(
            pool.stats().discards,
            (BIG_KEPT + 4 - most) as u64,
            "a buffer under 1 KiB is not kept"
        );
    }
}
