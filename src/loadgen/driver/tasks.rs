//! A connection's tasks on an agent core: its reader, its writer, the side channel of coordination
//! workloads, the open-loop pacer, and reopening a connection the server closed.

use super::*;

/// What a reader needs to replace its connection (HTTP).
pub(super) struct Link {
    pub(super) addr: SocketAddr,
    pub(super) source: Option<std::net::IpAddr>,
    pub(super) ring: Option<Rc<uring::Ring>>,
    /// Every connection's handle, for shutting it down (the replacement's takes its place).
    pub(super) controls: Rc<RefCell<Vec<Rc<SocketHandle>>>>,
}

/// Replaces connection `c` that ended under the run: what was on its wire is resolved, a new
/// connection from the same source takes its place, with a new writer. `None` when it is not to
/// be replaced (the run stopped; a connection that never answered) or cannot be (the reason is
/// a failure of the run): the caller then counts it lost.
pub(super) async fn reopen<A: Adapter + 'static>(
    group: &Rc<RefCell<Group<A>>>,
    c: usize,
    failures: &RefCell<Vec<String>>,
    link: Option<&Link>,
) -> Option<Rc<RefCell<Guarded<AgentStream>>>> {
    let link = link?;
    link.controls.borrow()[c].shutdown();
    let generation = group.borrow_mut().reset_connection(c)?;
    let ring = link.ring.as_ref();
    match connect(link.addr, link.source, Transport::Tcp, Protocol::Http, ring, None).await {
        Ok((stream, control)) => {
            link.controls.borrow_mut()[c] = control;
            let stream = Rc::new(RefCell::new(stream));
            glommio::spawn_local(writer(group.clone(), stream.clone(), c, generation)).detach();
            group.borrow_mut().reopened(c);
            Some(stream)
        }
        Err(e) => {
            failures.borrow_mut().push(format!("the server closed a connection, and {e}"));
            None
        }
    }
}

/// Why input that the adapter refused (`e`) ends its connection, for the report.
pub(super) fn failure(http: bool, e: String, input: &[u8]) -> String {
    if http {
        e
    } else if input.starts_with(b"HTTP/") {
        "the peer speaks HTTP, not a2a-bench frames (a WebSocket router takes ws://)".to_string()
    } else {
        format!("undecodable input from the router: {e}")
    }
}

/// Hands the first part of `all` to `handle`: its first `chunk` bytes (`handle` takes the whole
/// messages there and says how many bytes they were), or all of it when they hold no whole
/// message. Returns how many bytes were offered, and what `handle` said; the caller offers the
/// rest once what this part produced is on its way ([`INPUT_CHUNK`]).
pub(super) fn in_parts<E>(
    all: &[u8],
    chunk: usize,
    mut handle: impl FnMut(&[u8]) -> Result<usize, E>,
) -> (usize, Result<usize, E>) {
    if all.len() > chunk {
        match handle(&all[..chunk]) {
            Ok(0) => {}
            done => return (chunk, done),
        }
    }
    (all.len(), handle(all))
}

/// Connection `c`'s reader: its input goes to the group where the socket ring received it
/// (lent, no copy; a partial message waits there for the rest, however big), or read into the
/// reader's own buffer (glommio's streams). Replaces a connection the server closed (HTTP);
/// otherwise a connection that ends is counted lost.
pub(super) async fn reader<A: Adapter + 'static>(
    group: Rc<RefCell<Group<A>>>,
    stream: Rc<RefCell<Guarded<AgentStream>>>,
    c: usize,
    failures: Rc<RefCell<Vec<String>>>,
    link: Option<Link>,
) {
    let mut r = Reader {
        http: link.is_some(),
        group,
        stream,
        c,
        failures,
        link,
        // None until a read needs it: on a socket ring most connections never do.
        buf: Vec::new(),
        filled: 0,
        cut: false,
    };
    if r.http && r.stream.borrow().lender().is_some() {
        // A request's raw latency starts when the ring submits it.
        uring::transit::record();
    }
    loop {
        if r.filled == 0 {
            match r.lend().await {
                Some(Then::Stop) => return,
                Some(_) => continue,
                None => {} // no socket ring: read into the own buffer
            }
        }
        match r.read_own().await {
            Then::Stop => return,
            Then::Look => continue,
            Then::Yield => yield_now().await,
        }
    }
}

/// What a reader does after a step.
enum Then {
    /// Look for input again at once.
    Look,
    /// Let the core's other tasks run first.
    Yield,
    /// The connection is lost (counted so): the reader ends.
    Stop,
}

/// The size of a reader's own buffer when it first needs one (it doubles for a message that
/// does not fit).
const READ_OWN_BYTES: usize = 64 << 10;

/// A connection's reader ([`reader`]) and what it carries from one input to the next.
struct Reader<A: Adapter> {
    group: Rc<RefCell<Group<A>>>,
    stream: Rc<RefCell<Guarded<AgentStream>>>,
    c: usize,
    failures: Rc<RefCell<Vec<String>>>,
    link: Option<Link>,
    http: bool,
    /// Bytes read and not yet handled (no capacity until a read into it is needed).
    buf: Vec<u8>,
    filled: usize,
    /// The input was cut at `INPUT_CHUNK`: the rest is lent again at once.
    cut: bool,
}

impl<A: Adapter + 'static> Reader<A> {
    /// Handles the input the socket ring lends, where it received it; `None` when the stream
    /// has no ring.
    async fn lend(&mut self) -> Option<Then> {
        let again = std::mem::take(&mut self.cut);
        let (group, stream, c, http) = (&self.group, &self.stream, self.c, self.http);
        let mut cut = false;
        let lent = poll_fn(|cx| {
            let stream = stream.borrow();
            let Some(ring) = stream.lender() else { return Poll::Ready(None) };
            ring.poll_lend(cx, again, |all| {
                let mut g = group.borrow_mut();
                let now = clock::now_ns();
                let chunk = if http { usize::MAX } else { INPUT_CHUNK };
                let (bytes, handled) =
                    in_parts(all, chunk, |bytes| g.on_input_quiet(c, bytes, now));
                cut = bytes < all.len();
                match handled {
                    Ok(used) => (used, Ok(())),
                    Err(e) => (0, Err(failure(http, e, &all[..bytes]))),
                }
            })
            .map(Some)
        })
        .await?;
        self.cut = cut;
        match lent {
            Ok(Some(Ok(()))) => {}
            Ok(Some(Err(why))) => {
                self.failures.borrow_mut().push(why);
                self.group.borrow_mut().connection_lost(self.c);
                return Some(Then::Stop);
            }
            Ok(None) => {
                self.group.borrow_mut().on_input_end(self.c);
                return Some(self.replace().await);
            }
            Err(_) => return Some(self.replace().await),
        }
        if self.http && self.group.borrow().must_reopen(self.c) {
            if let Then::Stop = self.replace().await {
                return Some(Then::Stop);
            }
        } else {
            self.send_lent();
        }
        // The next lend waits for the ring's next pass (only the reaper adds input): no yield
        // is needed for other tasks to run, and none costs a task run.
        Some(Then::Look)
    }

    /// What the lent input produced goes out now, with no writer task to run.
    fn send_lent(&mut self) {
        let stream = self.stream.borrow();
        let ring = stream.lender();
        self.group.borrow_mut().send_now(self.c, |buf| ring.is_some_and(|r| r.send_owned(buf)));
        if self.cut {
            // The peer starts on this while the rest is handled.
            if let Some(r) = ring {
                r.submit_now();
            }
        }
        if let Some(r) = ring.filter(|_| !self.cut) {
            // A partial message past `LEND_MAX` waits in the ring whole: its connection
            // receives on up to twice what is unread, and back to the usual bound once it is
            // through (`UringStream::set_bound`).
            let want = r.bound_wanted(r.unread(), usize::MAX);
            if want > 0 || r.bound() > 0 {
                r.set_bound(want);
            }
        }
    }

    /// Reads into the reader's own buffer and hands what it holds to the group.
    async fn read_own(&mut self) -> Then {
        if self.buf.is_empty() {
            // Zeroed by the allocator: fresh pages stay untouched until bytes land in them
            // (a `resize` would write all 64 KiB: 100,000 agents at 50 per connection on
            // glommio's streams grew from 910 to 1,981 bytes each).
            self.buf = vec![0u8; READ_OWN_BYTES];
        } else if self.filled == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let (stream, buf, filled) = (&self.stream, &mut self.buf, self.filled);
        let read =
            poll_fn(|cx| Pin::new(&mut *stream.borrow_mut()).poll_read(cx, &mut buf[filled..]))
                .await;
        let n = match read {
            Ok(0) => {
                self.group.borrow_mut().on_input_end(self.c);
                return self.replace().await;
            }
            Ok(n) => n,
            Err(_) => return self.replace().await,
        };
        self.filled += n;
        let used =
            self.group.borrow_mut().on_input(self.c, &self.buf[..self.filled], clock::now_ns());
        match used {
            Ok(used) => {
                self.buf.copy_within(used..self.filled, 0);
                self.filled -= used;
                // The server said it closes this connection: replace it now.
                if self.http && self.group.borrow().must_reopen(self.c) {
                    if let Then::Stop = self.replace().await {
                        return Then::Stop;
                    }
                }
                Then::Yield
            }
            Err(e) => {
                let why = failure(self.http, e, &self.buf[..self.filled]);
                self.failures.borrow_mut().push(why);
                self.group.borrow_mut().connection_lost(self.c);
                Then::Stop
            }
        }
    }

    /// Replaces the connection that ended ([`reopen`]), or counts it lost.
    async fn replace(&mut self) -> Then {
        // Boxed: a new connection's set-up (a WebSocket or TLS handshake among them) takes
        // ≈ 10 KB of state, which would otherwise sit in every reader for all its life.
        match Box::pin(reopen(&self.group, self.c, &self.failures, self.link.as_ref())).await {
            Some(s) => {
                (self.stream, self.filled) = (s, 0);
                Then::Look
            }
            None => {
                self.group.borrow_mut().connection_lost(self.c);
                Then::Stop
            }
        }
    }
}

/// Writes what connection `c` (its generation `generation`) has to send, until the run stops or
/// the connection is replaced.
pub(super) async fn writer<A: Adapter>(
    group: Rc<RefCell<Group<A>>>,
    stream: Rc<RefCell<Guarded<AgentStream>>>,
    c: usize,
    generation: u32,
) {
    while let Some(mut buf) = poll_fn(|cx| group.borrow_mut().poll_output(c, generation, cx)).await
    {
        // A socket ring takes the buffer itself (no copy), once what it holds is on its way.
        let owned = poll_fn(|cx| match stream.borrow().lender() {
            Some(ring) => ring.poll_send_owned(cx, &mut buf),
            None => Poll::Ready(false),
        })
        .await;
        let written = match owned {
            true => Ok(()),
            false => match write_all(&stream, &buf).await {
                Ok(()) => poll_fn(|cx| Pin::new(&mut *stream.borrow_mut()).poll_flush(cx)).await,
                Err(e) => Err(e),
            },
        };
        group.borrow_mut().output_done(buf);
        if written.is_err() {
            return;
        }
    }
}

/// Coordination workloads: completions from other cores and the adapter's timers (lock holds
/// ending), handled as they come; looks at the stop flag at least every `MONITOR_NS`.
pub(super) async fn side<A: Adapter>(
    group: Rc<RefCell<Group<A>>>,
    rx: flume::Receiver<Completed>,
    waker: SideWaker,
) {
    loop {
        let until = {
            let g = group.borrow();
            if g.is_stopped() {
                return;
            }
            g.next_timer_ns().unwrap_or(u64::MAX).min(clock::now_ns() + MONITOR_NS)
        };
        let msg = side_wait(&rx, until, &waker).await;
        let mut g = group.borrow_mut();
        let now = clock::now_ns();
        g.on_side(msg, now);
        while let Ok(m) = rx.try_recv() {
            g.on_side(Some(m), now);
        }
    }
}

/// The next message on the side channel, or None at `until`; while it waits, the task's
/// waker is in `waker` for [`side_drain`].
pub(super) async fn side_wait(
    rx: &flume::Receiver<Completed>,
    until: u64,
    waker: &SideWaker,
) -> Option<Completed> {
    let mut wait = std::pin::pin!(or(async { rx.recv_async().await.ok() }, async {
        uring::sleep_until(until).await;
        None
    }));
    poll_fn(|cx| {
        let out = std::future::Future::poll(wait.as_mut(), cx);
        waker.set(out.is_pending().then(|| cx.waker().clone()));
        out
    })
    .await
}

/// What the ring runs when a doorbell ended its doze ([`uring::Ring::set_peers`]): wakes the
/// waiting side task on this thread when its channel holds anything (it then runs at the
/// reaper's next yield); true when it did.
pub(super) fn side_drain(
    rx: flume::Receiver<Completed>,
    waker: SideWaker,
) -> Box<dyn Fn() -> bool> {
    Box::new(move || !rx.is_empty() && waker.take().map(|w| w.wake()).is_some())
}

/// Open loop: sends what is due, then sleeps until the next due send; no fixed tick.
pub(super) async fn pacer<A: Adapter>(group: Rc<RefCell<Group<A>>>) {
    loop {
        let next = {
            let mut g = group.borrow_mut();
            if g.is_stopped() {
                return;
            }
            g.tick(clock::now_ns())
        };
        match next {
            Some(t) => uring::sleep_until(t).await,
            None => return,
        }
    }
}
