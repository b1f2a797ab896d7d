//! What a core's thread leaves behind when it ends without a result (a panic): the coordinator
//! hears that the core died, and with what, instead of waiting for it.

use super::*;

/// Tells the coordinating thread that an agent core's thread ended without the core's result.
/// It is kept in a thread-local, whose destructor runs however the thread ends: a panic in any
/// of the core's tasks unwinds glommio's executor and leaks the core's state, its senders
/// included, so that without it the coordinator (and the command) would wait forever.
pub(super) struct LastWord {
    pub(super) index: usize,
    pub(super) ready: flume::Sender<Result<(), String>>,
    pub(super) result: flume::Sender<CoreMsg>,
    /// What the thread panicked with, if it did ([`note_panics`]).
    pub(super) panic: Option<String>,
    /// Cleared once the core ended as it should.
    pub(super) armed: bool,
}

impl LastWord {
    /// Arms this thread's last word for agent core `index`.
    pub(super) fn arm(
        index: usize,
        ready: &flume::Sender<Result<(), String>>,
        result: &flume::Sender<CoreMsg>,
    ) {
        note_panics();
        let (ready, result) = (ready.clone(), result.clone());
        let word = LastWord { index, ready, result, panic: None, armed: true };
        LAST_WORD.with(|w| *w.borrow_mut() = Some(word));
    }

    /// This thread's core ended as it should: nothing to say.
    pub(super) fn disarm() {
        LAST_WORD.with(|w| {
            if let Some(mut word) = w.borrow_mut().take() {
                word.armed = false;
            }
        });
    }
}

impl Drop for LastWord {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let why = self.panic.take().unwrap_or_else(|| "its thread ended without a result".into());
        let why = format!("agent core {} stopped: {why}", self.index);
        // Whichever the coordinator waits on: the set-up's answers, or the results.
        let _ = self.ready.try_send(Err(why.clone()));
        let _ = self.result.try_send(CoreMsg::Died(self.index, why));
    }
}

/// Keeps what a thread with a [`LastWord`] panicked with, for it to say; the panic is then
/// reported as before (the hook that was there is called).
pub(super) fn note_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let before = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = LAST_WORD.try_with(|w| {
                if let Some(word) = w.try_borrow_mut().ok().as_deref_mut().and_then(Option::as_mut)
                {
                    let payload = info.payload();
                    let what = payload
                        .downcast_ref::<&str>()
                        .copied()
                        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                        .unwrap_or("(no message)");
                    let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line()));
                    word.panic.get_or_insert(format!("panicked{}: {what}", at.unwrap_or_default()));
                }
            });
            before(info);
        }));
    });
}
