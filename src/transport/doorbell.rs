//! A doorbell: how one thread ends another's doze in its socket ring after queueing for it
//! through a channel (the router's shards; `docs/ARCHITECTURE.md`, "Dozing").

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::Ordering;

/// How other threads end a thread's doze after queueing for it through a channel (a router's
/// shards: `uring::Ring::set_peers`). The sender rings after its send; a ring that dozes (and only
/// then) costs it one eventfd write.
#[derive(Debug)]
pub struct Doorbell {
    dozing: std::sync::atomic::AtomicBool,
    pub(super) efd: OwnedFd,
}

impl Doorbell {
    /// A doorbell (an eventfd).
    pub fn new() -> io::Result<std::sync::Arc<Doorbell>> {
        // SAFETY: eventfd has no memory-safety preconditions; the result is checked.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if efd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor nothing else owns.
        let efd = unsafe { OwnedFd::from_raw_fd(efd) };
        Ok(std::sync::Arc::new(Doorbell { dozing: std::sync::atomic::AtomicBool::new(false), efd }))
    }

    /// Called after a send to the doorbell's thread: wakes it if it dozes. Pairs with the
    /// dozing thread's flag-then-look (`uring::Ring::reap`): either this sees the flag, or that
    /// thread's look sees what was sent.
    pub fn ring(&self) {
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.dozing.load(Ordering::Relaxed) {
            let one = 1u64.to_ne_bytes();
            // SAFETY: an 8-byte write from a live buffer to an eventfd this doorbell owns.
            unsafe { libc::write(self.efd.as_raw_fd(), one.as_ptr().cast(), 8) };
        }
    }

    pub(super) fn set_dozing(&self, on: bool) {
        self.dozing.store(on, Ordering::Relaxed);
        std::sync::atomic::fence(Ordering::SeqCst);
    }

    /// Resets the eventfd's count.
    pub(super) fn clear(&self) {
        let mut buf = [0u8; 8];
        // SAFETY: an 8-byte read into a live buffer from the eventfd (non-blocking).
        unsafe { libc::read(self.efd.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
    }
}
