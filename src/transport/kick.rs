//! Waking a thread that sleeps through its own wake-up: a signal that interrupts its system call.
//!
//! glommio parks a thread in `io_uring_enter` on its main ring, woken by a poll it links to its
//! latency ring, where the timeout for its next timer waits. Once in a while that wake-up is
//! lost: an agent core of a 160-run `make bench-compare` (open loop, both cores saturated) slept
//! in `io_cqring_wait` for 21 minutes with its timers due, until a debugger's attach interrupted
//! the call, after which it carried on. A watchdog that sees a thread's loop stop turning sends it
//! [`signal`] (an empty handler, installed without `SA_RESTART`): the wait returns `EINTR`, which
//! glommio and our ring take as "look again", and the loop turns.
//!
//! The cost when nothing is lost is one atomic store per beat of the thread's ticker; the signal
//! is only sent to a thread whose beat is older than the watchdog's limit.

#![allow(unsafe_code)]

use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Once};

/// A thread's heartbeat and identity, for a watchdog on another thread.
#[derive(Debug, Default)]
pub struct Beat {
    /// When the thread's loop last turned (`clock::now_ns`); 0: not started.
    at_ns: AtomicU64,
    /// Its kernel thread id; 0: not started (or ended).
    tid: AtomicI32,
    /// How many times it was kicked.
    kicks: AtomicU64,
    /// When it began closing, past what it measures (0: not yet): a watchdog still wakes it,
    /// but a stall from then on held nothing back.
    closing_ns: AtomicU64,
}

impl Beat {
    /// A beat shared with a watchdog.
    pub fn new() -> Arc<Beat> {
        Arc::new(Beat::default())
    }

    /// Called on the thread itself when it starts: records who it is, and that it runs now.
    pub fn start(&self) {
        self.tid.store(nix::unistd::gettid().as_raw(), Ordering::Release);
        self.beat();
    }

    /// The thread's loop turned.
    #[inline]
    pub fn beat(&self) {
        self.at_ns.store(crate::clock::now_ns(), Ordering::Relaxed);
    }

    /// Called on the thread when it ends: a watchdog leaves it alone from now on.
    pub fn end(&self) {
        self.tid.store(0, Ordering::Release);
    }

    /// Called on the thread once its figures are taken, before it closes what it opened.
    pub fn closing(&self) {
        self.closing_ns.store(crate::clock::now_ns(), Ordering::Release);
    }

    /// Whether the thread was already closing at `at_ns` ([`Beat::closing`]).
    pub fn closing_at(&self, at_ns: u64) -> bool {
        let since = self.closing_ns.load(Ordering::Acquire);
        since != 0 && since <= at_ns
    }

    /// When the loop last turned (ns), if the thread runs.
    pub fn last(&self) -> Option<u64> {
        (self.tid.load(Ordering::Acquire) != 0).then(|| self.at_ns.load(Ordering::Relaxed))
    }

    /// Interrupts whatever the thread waits in (see the module's documentation); false if it
    /// is not running.
    pub fn kick(&self) -> bool {
        let tid = self.tid.load(Ordering::Acquire);
        if tid == 0 {
            return false;
        }
        self.kicks.fetch_add(1, Ordering::Relaxed);
        interrupt(tid)
    }

    /// How many times [`Beat::kick`] interrupted it.
    pub fn kicks(&self) -> u64 {
        self.kicks.load(Ordering::Relaxed)
    }
}

/// The signal sent: a real-time one, so that none is lost or merged with a user's.
pub fn signal() -> i32 {
    libc::SIGRTMIN() + 5
}

extern "C" fn nothing(_: libc::c_int) {}

/// Sends [`signal`] to thread `tid` of this process, with an empty handler installed first;
/// whether it was sent.
pub fn interrupt(tid: i32) -> bool {
    static HANDLER: Once = Once::new();
    HANDLER.call_once(|| {
        // SAFETY: a zeroed `sigaction` is a valid starting point; the handler is an
        // async-signal-safe function that does nothing; no SA_RESTART, so that a waiting
        // system call returns EINTR.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = nothing as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = 0;
            libc::sigaction(signal(), &sa, std::ptr::null_mut());
        }
    });
    // SAFETY: tgkill takes plain integers; a thread that ended meanwhile makes it fail (ESRCH)
    // or, were its id reused by another of our threads, interrupts that one once, harmlessly.
    let r = unsafe {
        libc::syscall(libc::SYS_tgkill, libc::getpid(), libc::c_long::from(tid), signal())
    };
    r == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_thread_asleep_in_a_system_call_is_woken_by_a_kick() {
        // A blocking read on a pipe nobody writes to: only a signal ends it.
        let (rx, _tx) = nix::unistd::pipe().unwrap();
        let beat = Beat::new();
        let (b, (done_tx, done_rx)) = (beat.clone(), flume::bounded(1));
        let t = std::thread::spawn(move || {
            b.start();
            let mut buf = [0u8; 1];
            let got = nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(&rx), &mut buf);
            b.end();
            let _ = done_tx.send(got);
        });
        while beat.last().is_none() {
            std::thread::yield_now();
        }
        // It may not be in the read yet: kick until it answers (bounded).
        let mut answer = None;
        for _ in 0..200 {
            assert!(beat.kick() || beat.last().is_none());
            if let Ok(got) = done_rx.recv_timeout(Duration::from_millis(10)) {
                answer = Some(got);
                break;
            }
        }
        t.join().unwrap();
        assert_eq!(answer, Some(Err(nix::errno::Errno::EINTR)), "the read must end with EINTR");
        assert!(beat.kicks() >= 1);
        assert!(!beat.kick(), "an ended thread is not kicked");
    }
}
