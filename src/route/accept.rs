//! The acceptor: one thread accepts every connection and hands it to a shard.
//!
//! A router of one shard hands each connection over as it comes. A router of several first
//! looks at the connection's first bytes without taking them (`MSG_PEEK`): a connection that
//! opens with a `home` frame goes to the shard its key names, so that agents which talk to each
//! other share a shard and their messages never cross one; any other goes to the shard with the
//! fewest connections. The bytes stay in the socket for the shard to read as usual.
//!
//! Clients speak first, and a client that sends `home` writes it right after its connect, so its
//! bytes come with or just after the handshake. Connections whose first bytes are not there yet
//! wait in a small set watched with one `poll(2)` (at most [`WAITING_MAX`], each at most
//! [`GREET_WAIT`]): a silent client never holds up the others, and past the wait it is placed by
//! load (its shard's handshake timeout then applies, as for any connection).

use std::io;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags};

use super::shell::Command;
use crate::wire::frame::read_home;
use crate::wire::Home;

/// How long a new connection's first bytes may take before it is placed by load.
const GREET_WAIT: Duration = Duration::from_millis(200);
/// Most connections waiting for their first bytes; past it new ones are placed by load at once.
const WAITING_MAX: usize = 1024;
/// Most connections accepted in one pass before the waiting ones are looked at again.
const ACCEPT_BURST: usize = 64;
/// How long the acceptor waits before accepting again when the process is out of descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// What the acceptor needs to place connections.
pub(super) struct Acceptor {
    pub listener: TcpListener,
    pub shards: Vec<flume::Sender<Command>>,
    /// Open connections per shard: added here, subtracted by the shard when one ends.
    pub loads: Vec<Arc<AtomicUsize>>,
    /// 0 = no limit.
    pub max_connections: usize,
    pub stopping: Arc<AtomicBool>,
}

/// EMFILE (this process) or ENFILE (the whole system): no descriptor for a new connection.
fn is_fd_exhaustion(e: &io::Error) -> bool {
    use nix::errno::Errno;
    e.raw_os_error().is_some_and(|n| n == Errno::EMFILE as i32 || n == Errno::ENFILE as i32)
}

/// What a new connection's first bytes say about where it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum First {
    /// Nothing yet.
    NotYet,
    /// A `home` frame.
    Home(Home),
    /// Something else, an end of stream, or an error: placed by load.
    Other,
}

/// Looks at `stream`'s first bytes (a non-blocking socket) without taking them.
fn peek(stream: &TcpStream) -> First {
    let mut first = [0u8; 64];
    match stream.peek(&mut first) {
        Ok(0) => First::Other,
        Ok(n) => read_home(&first[..n]).map_or(First::Other, First::Home),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => First::NotYet,
        Err(_) => First::Other,
    }
}

impl Acceptor {
    /// Accepts until the router stops.
    pub fn run(self) {
        let mut placer = Placer::new(&self);
        if self.shards.len() == 1 {
            return self.accept_blocking(&mut placer);
        }
        if let Err(e) = self.listener.set_nonblocking(true) {
            eprintln!("router: accepting without homing ({e})");
            return self.accept_blocking(&mut placer);
        }
        let mut waiting: Vec<(TcpStream, Instant)> = Vec::new();
        let mut said: Vec<bool> = Vec::new();
        let mut warned: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let timeout = waiting
                .iter()
                .map(|(_, until)| until.saturating_duration_since(now).as_millis() as i32 + 1)
                .min()
                .unwrap_or(-1);
            let mut fds = Vec::with_capacity(waiting.len() + 1);
            fds.push(PollFd::new(&self.listener, PollFlags::POLLIN));
            fds.extend(waiting.iter().map(|(s, _)| PollFd::new(s, PollFlags::POLLIN)));
            let polled = poll(&mut fds, timeout);
            said.clear();
            said.extend(fds.iter().map(|f| f.revents().is_some_and(|r| !r.is_empty())));
            drop(fds);
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            if polled.is_err() {
                continue; // EINTR
            }
            // The waiting ones first: they came before anything the listener holds.
            let now = Instant::now();
            for i in (0..waiting.len()).rev() {
                let first = if said[i + 1] { peek(&waiting[i].0) } else { First::NotYet };
                let late = now >= waiting[i].1;
                if first != First::NotYet || late {
                    let (stream, _) = waiting.swap_remove(i);
                    placer.place(stream, first);
                }
            }
            if !said[0] {
                continue;
            }
            for _ in 0..ACCEPT_BURST {
                match self.listener.accept() {
                    Ok((stream, _)) => match stream.set_nonblocking(true).map(|()| peek(&stream)) {
                        Ok(First::NotYet) if waiting.len() < WAITING_MAX => {
                            waiting.push((stream, Instant::now() + GREET_WAIT));
                        }
                        Ok(first) => placer.place(stream, first),
                        Err(_) => placer.place(stream, First::Other),
                    },
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if is_fd_exhaustion(&e) => {
                        out_of_descriptors(&e, &mut warned);
                        break;
                    }
                    Err(_) => continue, // the peer gave up before we accepted: nothing to do
                }
            }
        }
    }

    /// One shard: every connection goes to it as it comes.
    fn accept_blocking(&self, placer: &mut Placer<'_>) {
        let mut warned = None;
        for stream in self.listener.incoming() {
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            match stream {
                Ok(s) => placer.place(s, First::Other),
                Err(e) if is_fd_exhaustion(&e) => out_of_descriptors(&e, &mut warned),
                Err(_) => continue, // the peer gave up before we accepted: nothing to do
            }
        }
    }
}

/// Out of descriptors: the pending connection stays in the backlog and accept fails again at
/// once. Back off instead of spinning, and say so once a second.
fn out_of_descriptors(e: &io::Error, warned: &mut Option<Instant>) {
    if warned.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
        eprintln!("router: out of file descriptors ({e}): new connections wait; raise the open-file limit");
        *warned = Some(Instant::now());
    }
    std::thread::sleep(ACCEPT_BACKOFF);
}

/// Hands connections to shards.
struct Placer<'a> {
    acceptor: &'a Acceptor,
    /// Where the round-robin among equally loaded shards goes on.
    next: usize,
}

impl<'a> Placer<'a> {
    fn new(acceptor: &'a Acceptor) -> Placer<'a> {
        Placer { acceptor, next: 0 }
    }

    fn place(&mut self, stream: TcpStream, first: First) {
        let Acceptor { shards, loads, max_connections, .. } = self.acceptor;
        let n = shards.len();
        let pick = match first {
            First::Home(home) => home.shard(n),
            // Least connections first; ties go round-robin so equal shards alternate.
            _ => {
                let pick = (0..n)
                    .map(|k| (self.next + k) % n)
                    .min_by_key(|&i| loads[i].load(Ordering::Relaxed))
                    .unwrap_or(0);
                self.next = (pick + 1) % n;
                pick
            }
        };
        // Counted here, so a burst of accepts spreads before any shard has adopted them; the
        // shard subtracts when the connection ends.
        let open: usize = loads.iter().map(|l| l.load(Ordering::Relaxed)).sum();
        let cmd = if *max_connections > 0 && open >= *max_connections {
            Command::Refuse(stream)
        } else {
            Command::Conn(stream)
        };
        loads[pick].fetch_add(1, Ordering::Relaxed);
        if shards[pick].send(cmd).is_err() {
            loads[pick].fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::fd::AsRawFd;

    use super::*;

    /// Whether an acceptor for `shards` shards, having placed one connection, ends within 10 s
    /// once `stopping` is set and its listening socket shut down, with no connection to wake it.
    fn ends_at_stop_without_a_connection(shards: usize) -> bool {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let handle = listener.try_clone().unwrap();
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..shards).map(|_| flume::unbounded::<Command>()).unzip();
        let loads = (0..shards).map(|_| Arc::new(AtomicUsize::new(0))).collect();
        let stopping = Arc::new(AtomicBool::new(false));
        let stop = stopping.clone();
        let (done, ended) = flume::bounded(1);
        std::thread::spawn(move || {
            Acceptor { listener, shards: senders, loads, max_connections: 0, stopping: stop }.run();
            let _ = done.send(());
        });
        let mut client = TcpStream::connect(handle.local_addr().unwrap()).unwrap();
        client.write_all(b"x").unwrap();
        // The first connection goes to shard 0 (all equally loaded, round-robin from 0).
        let placed = receivers[0].recv_timeout(Duration::from_secs(10));
        assert!(matches!(placed, Ok(Command::Conn(_))), "the connection is placed");
        stopping.store(true, Ordering::SeqCst);
        nix::sys::socket::shutdown(handle.as_raw_fd(), nix::sys::socket::Shutdown::Both).unwrap();
        ended.recv_timeout(Duration::from_secs(10)).is_ok()
    }

    #[test]
    fn a_shut_down_listener_ends_the_acceptors_wait() {
        // Proves what `Server::stop` relies on: with `stopping` set, shutting the listening
        // socket down ends the acceptor, whether it waits in `accept` (one shard) or in `poll`
        // (several, homing), without a connection of the stopper's own, which could be
        // accepted in a burst begun before `stopping` was set and leave the acceptor in a
        // `poll` with no timeout (a test's stop hung so, with two suites running at once).
        assert!(ends_at_stop_without_a_connection(1), "one shard: accept");
        assert!(ends_at_stop_without_a_connection(2), "two shards: poll");
    }
}
