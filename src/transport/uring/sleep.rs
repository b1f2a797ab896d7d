//! The thread's sleeps that a running reaper ends ([`sleep_until`]), and the reapers that are awake.

use super::*;

/// How a pending [`sleep_until`] ends.
pub(super) enum Wake {
    /// A reaper of this thread wakes it once due (this waker, when the sleep has been polled).
    Reaper(Option<Waker>),
    /// glommio's timer ends it (no reaper of this thread was running its loop when it began,
    /// or the reapers ended first); a dozing ring ends its doze in time for glommio to fire it.
    Glommio,
    /// A reaper woke it (it was due, or the last reaper ended).
    Woken,
}

thread_local! {
    /// The thread's pending deadlines ([`sleep_until`]): id, when (ns), how it ends.
    static DEADLINES: RefCell<Vec<(u64, u64, Wake)>> = const { RefCell::new(Vec::new()) };
    static NEXT_DEADLINE_ID: Cell<u64> = const { Cell::new(0) };
    /// Reapers of this thread running their loop, not parked in glommio: each wakes the
    /// thread's due sleeps on its passes, and parks no later than the earliest.
    static AWAKE_REAPERS: Cell<usize> = const { Cell::new(0) };
    /// This thread's sleeps so far that a reaper ended, and that glommio's timer ended.
    pub(super) static SLEPT: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// The earliest of this thread's [`sleep_until`] deadlines (ns) whose way of ending `of` accepts.
pub(super) fn earliest(of: impl Fn(&Wake) -> bool) -> Option<u64> {
    DEADLINES.with(|d| d.borrow().iter().filter(|(_, _, w)| of(w)).map(|&(_, t, _)| t).min())
}

/// The earliest pending deadline of this thread: one a reaper has already woken is not.
pub(super) fn next_deadline() -> Option<u64> {
    earliest(|w| !matches!(w, Wake::Woken))
}

/// The earliest deadline of this thread that only a turn of glommio's loop ends.
pub(super) fn next_glommio_deadline() -> Option<u64> {
    earliest(|w| matches!(w, Wake::Glommio))
}

/// The earliest deadline of this thread that a reaper ends.
pub(super) fn next_reaper_deadline() -> Option<u64> {
    earliest(|w| matches!(w, Wake::Reaper(_)))
}

/// Wakes this thread's sleeps that a reaper ends and that are due by `now_ns` (all of them
/// when `all`); how many.
pub(super) fn wake_due(now_ns: u64, all: bool) -> usize {
    let mut woken = 0;
    DEADLINES.with(|d| {
        for (_, t, w) in d.borrow_mut().iter_mut() {
            if matches!(w, Wake::Reaper(_)) && (all || *t <= now_ns) {
                if let Wake::Reaper(Some(waker)) = std::mem::replace(w, Wake::Woken) {
                    waker.wake();
                }
                woken += 1;
            }
        }
    });
    woken
}

/// A reaper's place in [`AWAKE_REAPERS`] while it runs its loop: out of it while it parks in
/// glommio (sleeps begun then use glommio's timer, since the park may outlast them), and for
/// good once dropped, when the thread's last running reaper wakes the sleeps it would have
/// ended (they go on with glommio's timer).
pub(super) struct Awake(bool);

impl Awake {
    pub(super) fn new() -> Awake {
        AWAKE_REAPERS.with(|a| a.set(a.get() + 1));
        Awake(true)
    }

    pub(super) fn set(&mut self, awake: bool) {
        if self.0 != awake {
            self.0 = awake;
            AWAKE_REAPERS.with(|a| a.set(if awake { a.get() + 1 } else { a.get() - 1 }));
        }
    }
}

impl Drop for Awake {
    fn drop(&mut self) {
        self.set(false);
        if AWAKE_REAPERS.with(Cell::get) == 0 {
            wake_due(0, true);
        }
    }
}

/// A deadline kept in [`DEADLINES`] while its sleep lasts.
pub(super) struct Deadline(u64);

impl Drop for Deadline {
    fn drop(&mut self) {
        DEADLINES.with(|d| d.borrow_mut().retain(|&(id, _, _)| id != self.0));
    }
}

/// Sleeps until `t_ns` ([`crate::clock::now_ns`]). Where a socket ring's reaper runs on this
/// thread, the reaper wakes the sleep when due (its doze or park ends by then): no glommio
/// timer is armed and cancelled per sleep, which an open-loop pacer asks for thousands of
/// times a second. Otherwise, or once the thread's reapers end, glommio's timer ends it, and a
/// dozing ring ends its doze in time for glommio to fire it.
pub async fn sleep_until(t_ns: u64) {
    let by_reaper = AWAKE_REAPERS.with(Cell::get) > 0;
    // A time already past waits for the reaper's next pass all the same, or without a reaper
    // for a turn of glommio's loop (a microsecond's timer: one already due ends at once,
    // without the turn). Yielding instead put the task back in its queue, ahead of the
    // reaper's and of glommio's reactor, and a task always behind (an open-loop pacer asked a
    // rate its core cannot send) ran again and again while the sockets waited, answers unread.
    if t_ns <= crate::clock::now_ns() && !by_reaper {
        glommio::timer::sleep(Duration::from_micros(1)).await;
        return;
    }
    let id = NEXT_DEADLINE_ID.with(|n| {
        n.set(n.get() + 1);
        n.get()
    });
    let wake = if by_reaper { Wake::Reaper(None) } else { Wake::Glommio };
    DEADLINES.with(|d| d.borrow_mut().push((id, t_ns, wake)));
    let _keep = Deadline(id);
    if by_reaper {
        std::future::poll_fn(|cx| {
            DEADLINES.with(|d| {
                let mut d = d.borrow_mut();
                let Some((_, _, w)) = d.iter_mut().find(|(i, _, _)| *i == id) else {
                    return Poll::Ready(());
                };
                match w {
                    Wake::Woken => Poll::Ready(()),
                    Wake::Reaper(Some(waker)) if waker.will_wake(cx.waker()) => Poll::Pending,
                    _ => {
                        *w = Wake::Reaper(Some(cx.waker().clone()));
                        Poll::Pending
                    }
                }
            })
        })
        .await;
        let now = crate::clock::now_ns();
        if now >= t_ns {
            SLEPT.with(|s| s.set((s.get().0 + 1, s.get().1)));
            return;
        }
        // The reapers ended first: glommio's timer for the rest.
        DEADLINES.with(|d| {
            if let Some(e) = d.borrow_mut().iter_mut().find(|(i, _, _)| *i == id) {
                e.2 = Wake::Glommio;
            }
        });
    }
    SLEPT.with(|s| s.set((s.get().0, s.get().1 + 1)));
    let now = crate::clock::now_ns();
    glommio::timer::sleep(Duration::from_nanos(t_ns.saturating_sub(now))).await;
}
