//! When this thread's ring handed bytes to the kernel and took answers from it: a request
//! leaves the client at the submission that carries it, and its answer arrives at the pass
//! that reaps it, not when the client gets round to either. A saturated client queues a
//! pass's requests one by one as it handles the answers before them and submits them together,
//! and handles a pass's answers one after the other: timed from its queueing to its handling,
//! a request carries the client's own turns (`docs/BENCHMARKS.md`, "Against wrk on 16 cores").
//! Off unless a client asks ([`record`]); then each submission with entries and each pass
//! that reaped something costs one clock read.
//!
//! A request queued at count `n` ([`count`]) left at the first submission after it,
//! [`left_at`]`(n)`, while the last [`KEPT`] submissions are kept; an answer handled now
//! arrived by [`arrived_at`], the last pass that reaped. Both err late, never early: a request
//! that waited behind a send still in flight left after that submission, and an answer reaped
//! a pass before the last arrived before it, so a round trip timed from one to the other is
//! never shorter than the one on the wire.

use std::cell::{Cell, RefCell};

/// Submission times kept per thread.
const KEPT: usize = 4096;

thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
    /// Submissions with entries since [`record`].
    static COUNT: Cell<u64> = const { Cell::new(0) };
    /// The time of submission `n` at `n % KEPT`.
    static AT: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
    /// The last pass that reaped a completion (0: none yet).
    static REAPED: Cell<u64> = const { Cell::new(0) };
}

/// From now on, this thread's submissions and reaps are timed.
pub fn record() {
    if !ON.get() {
        AT.with_borrow_mut(|at| at.resize(KEPT, 0));
        ON.set(true);
    }
}

/// Whether this thread's submissions and reaps are timed.
#[inline]
pub fn recording() -> bool {
    ON.get()
}

/// Submissions so far: what a request queued now is stamped with.
#[inline]
pub fn count() -> u64 {
    COUNT.get()
}

/// When the first submission after count `n` went in, if it did and is still kept.
#[inline]
pub fn left_at(n: u64) -> Option<u64> {
    let now = COUNT.get();
    let next = n + 1;
    if now < next || now - next >= KEPT as u64 {
        return None;
    }
    AT.with_borrow(|at| at.get((next % KEPT as u64) as usize).copied())
}

/// When what is handled now had arrived at the latest: the last pass that reaped, if timed.
#[inline]
pub fn arrived_at() -> Option<u64> {
    Some(REAPED.get()).filter(|&t| t > 0)
}

/// A submission with entries is about to enter the kernel (the ring's every `io_uring_enter`
/// that submits calls this first).
#[inline]
pub(crate) fn submitting(entries: bool) {
    if entries && ON.get() {
        let n = COUNT.get() + 1;
        COUNT.set(n);
        let now = crate::clock::now_ns();
        AT.with_borrow_mut(|at| at[(n % KEPT as u64) as usize] = now);
    }
}

/// A pass reaped completions (after its submission).
#[inline]
pub(crate) fn reaped() {
    if ON.get() {
        REAPED.set(crate::clock::now_ns());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_leaves_at_the_first_submission_after_it_was_queued() {
        // Proves the bookkeeping: nothing before `record`, the next submission's time after
        // it, submissions without entries not counted, nothing once the time is lost, and the
        // last reaping pass as the arrival.
        std::thread::spawn(|| {
            submitting(true);
            reaped();
            assert_eq!((count(), arrived_at()), (0, None), "not recording");
            record();
            let queued = count();
            assert_eq!(left_at(queued), None, "not submitted yet");
            let before = crate::clock::now_ns();
            submitting(false);
            assert_eq!(left_at(queued), None, "an empty submission carries nothing");
            submitting(true);
            let t = left_at(queued).expect("submitted");
            assert!(t >= before && t <= crate::clock::now_ns());
            submitting(true);
            assert_eq!(left_at(queued), Some(t), "the first submission after it, not the last");
            reaped();
            assert!(arrived_at().is_some_and(|a| a >= t));
            for _ in 0..KEPT {
                submitting(true);
            }
            assert_eq!(left_at(queued), None, "overwritten: unknown");
            assert!(left_at(count() - 1).is_some());
        })
        .join()
        .unwrap();
    }
}
