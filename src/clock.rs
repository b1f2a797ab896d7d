//! The one clock every timestamp uses: `CLOCK_MONOTONIC` in nanoseconds.
//!
//! System-wide on Linux, so a send timestamp taken in one process and a receive time taken in
//! another on the same host give a one-way latency. Read through the vDSO (≈ 40 ns a read on the
//! development VM, measured 2026-12-02).

use nix::time::{clock_gettime, ClockId};

/// Nanoseconds of `CLOCK_MONOTONIC`.
#[inline]
pub fn now_ns() -> u64 {
    // CLOCK_MONOTONIC always exists on Linux; a failure would leave the clock at 0, which only
    // makes latencies read as huge rather than crashing a shard.
    clock_gettime(ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// CPU time consumed by the calling thread, in nanoseconds (for utilisation figures).
pub fn thread_cpu_ns() -> u64 {
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

thread_local! {
    static WATCH_NS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Time the calling thread has spent watching for work that had not come (the socket ring's
/// doze watch), in nanoseconds: CPU time it used without doing any. Part of
/// [`thread_cpu_ns`]; reports show it so that a watching core is not taken for a saturated one.
pub fn thread_watch_ns() -> u64 {
    WATCH_NS.with(std::cell::Cell::get)
}

/// Adds `ns` of watching to the calling thread's [`thread_watch_ns`].
#[inline]
pub fn add_watch_ns(ns: u64) {
    WATCH_NS.with(|w| w.set(w.get() + ns));
}

#[cfg(test)]
mod tests {
    #[test]
    fn monotonic_clock_moves_forward() {
        // Proves the clock is readable and never goes backwards.
        let a = super::now_ns();
        let b = super::now_ns();
        assert!(a > 0 && b >= a);
    }
}
