//! A doorbell: how one thread ends another's doze in its socket ring after queueing for it
//! through a channel (the router's shards; `docs/ARCHITECTURE.md`, "Dozing").

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;

use nix::sys::eventfd::{eventfd, EfdFlags};

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
        let efd = eventfd(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
        Ok(std::sync::Arc::new(Doorbell { dozing: std::sync::atomic::AtomicBool::new(false), efd }))
    }

    /// Called after a send to the doorbell's thread: wakes it if it dozes. Pairs with the
    /// dozing thread's flag-then-look (`uring::Ring::reap`): either this sees the flag, or that
    /// thread's look sees what was sent.
    pub fn ring(&self) {
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.dozing.load(Ordering::Relaxed) {
            // Only a full count (u64::MAX - 1) refuses it, and then a wake-up is pending anyway.
            let _ = nix::unistd::write(self.efd.as_raw_fd(), &1u64.to_ne_bytes());
        }
    }

    pub(super) fn set_dozing(&self, on: bool) {
        self.dozing.store(on, Ordering::Relaxed);
        std::sync::atomic::fence(Ordering::SeqCst);
    }

    /// Resets the eventfd's count.
    pub(super) fn clear(&self) {
        let mut buf = [0u8; 8];
        // Non-blocking: a count already zero answers EAGAIN, which is as good.
        let _ = nix::unistd::read(self.efd.as_raw_fd(), &mut buf);
    }
}
