//! A second io_uring per thread for socket I/O, beside glommio's (`--io uring`).
//!
//! glommio 0.9 has no io_uring path for TCP: its streams call `recv`/`send` directly and arm a
//! one-shot poll on its ring after a read that would block, and its rings are made without
//! `IORING_SETUP_COOP_TASKRUN`, so every completion that lands while the thread runs costs a
//! reschedule IPI (a third of an HTTP client core went there: `docs/BENCHMARKS.md`). This ring
//! is made the way io_uring is meant to serve sockets:
//!
//! - `SINGLE_ISSUER | COOP_TASKRUN | TASKRUN_FLAG`: no IPI; a completion waits as task work
//!   until the thread next enters the kernel (the reaper's enter, or any system call of
//!   glommio's), and wakes the thread if it sleeps; the flag says when an enter is needed.
//!   Not `DEFER_TASKRUN`, which would run that work only in the reaper's enter, all together:
//!   on Linux 6.18 task work it deferred after a timed wait in this ring (a doze, below)
//!   sometimes rang no eventfd, so the reaper parked in glommio slept on until its timer, and a
//!   run on 2 cores showed 20-40 ms round trips in most of its scenarios (`docs/BENCHMARKS.md`,
//!   "Task work the kernel did not ring for"). Without deferral a completion is posted on this
//!   thread, which rings the bell itself.
//! - One **multishot receive** per connection into a ring of provided buffers: no poll armed
//!   per read, no buffer held by an idle connection. Readers may decode the bytes where the
//!   kernel put them ([`UringStream::poll_lend`]); at most half the buffers wait so.
//! - Sends queued by the connections' writers go out together, one `io_uring_enter` per pass;
//!   a writer with nothing queued hands its buffer over ([`UringStream::send_owned`]).
//!
//! glommio stays the executor: [`Ring::reap`] is a task that submits, reaps and wakes the
//! connections' readers and writers. When a pass finds nothing it parks on an eventfd
//! registered with the ring, read through glommio (`BufferedFile::read_at` on glommio's own
//! ring): the kernel bumps the eventfd for every completion posted while the reaper parks
//! (the bell is off while it runs, so a send that completes inline costs no wake-up), and the
//! counter keeps a bump that came before the read was armed, so no wake-up is lost; a local
//! kick wakes it for new sends, and a fallback timer bounds any surprise.
//!
//! **Dozing** ([`Ring::set_doze`]): a glommio park costs far more than the wait itself (its
//! three rings entered, its preemption timers cancelled and re-armed, a process-wide
//! `membarrier`), and between two messages of a round trip a thread parks once per hop. With
//! dozing on, a reaper that finds nothing to do — and sees that no other task ran while it
//! yielded — watches the ring a while ([`DOZE_SPIN`], adapted by `next_watch`), then waits in
//! this ring's own `io_uring_enter` instead, up to [`DOZE_MAX`] or the
//! thread's next deadline ([`sleep_until`]), whichever is first. What only glommio's loop sees
//! (its timers, wakes from other threads) must not wait on a doze: a doze that ends without a
//! completion, a glommio timer that is due, and every `TURN_EVERY` of dozing hand the thread
//! back to glommio through the ordinary park, so nothing waits longer than that; an idle
//! thread parks after one empty doze as before. A doze that ends at a sleep due within
//! [`NEAR_WAIT`] is watched through whole and never waits in the kernel.
//!
//! **Sleeps** ([`sleep_until`]): while a reaper runs its loop (not parked in glommio), the
//! thread's sleeps are its to end: each pass wakes those due, a doze ends by the earliest, and
//! a park by the earliest or sooner. A sleep begun while every reaper of the thread is parked,
//! or outliving them, ends by glommio's timer. An open-loop pacer sleeps once per send; a
//! glommio timer for each cost a timer armed and cancelled in glommio's ring and a turn of
//! its loop (`docs/BENCHMARKS.md`, "Sleeps the reaper ends").
//!
//! Memory the kernel writes or reads (the provided buffers, a send's bytes) stays put and
//! alive while an operation may use it: sends own their buffer until their completion, and a
//! ring dropped with operations still in flight leaks its buffers rather than free them.

#![allow(unsafe_code)]

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_lite::io::{AsyncRead, AsyncWrite};

pub use super::doorbell::Doorbell;
use io_uring::{cqueue, opcode, squeue, types, IoUring};

mod inner;
mod provided;
mod reaper;
mod sleep;
mod stream;
#[cfg(test)]
mod tests;
pub mod transit;

pub use sleep::sleep_until;
pub use stream::{Handle, UringStream};

/// Provided buffers: count (a power of two) and size.
const BUFS: u16 = 128;
const BUF_SIZE: usize = 32 << 10;
/// The buffer group id.
const BGID: u16 = 0;
/// Provided buffers that connections may hold unread at once: the rest always serve new
/// receives, so connections whose readers wait cannot starve the others. Also at most half of
/// those in circulation ([`Provided::limit`]).
const HELD_MAX: usize = BUFS as usize / 2;
/// Provided buffers in circulation at first and at least: the kernel takes them in turn, so the
/// fewer circulate, the more likely the one a receive writes is still in the core's cache. A
/// receive that finds none doubles them (up to [`BUFS`]); [`SHRINK_AFTER`] receives without one
/// halve them again.
const BUFS_MIN: u16 = 16;
/// Receives without running out after which the buffers in circulation are halved.
const SHRINK_AFTER: u32 = 1 << 16;
/// Submission queue entries (the completion queue is 4×).
const ENTRIES: u32 = 1024;
/// Connections whose socket is registered with the ring (fixed files), by slot: their
/// operations skip the kernel's look-up and reference count of the descriptor (`fget`/`fput`,
/// ≈ 1.5 % of an HTTP client's core at one send and one receive per request), and the plain
/// descriptor is closed once the socket is in the table, so that such a connection takes
/// none of the process's open-file limit (a **direct descriptor**: 100,000 connections on a
/// machine whose limit is 20,000, on six rings or more). A table is as large as the
/// process's open-file limit (the kernel refuses a larger one), up to [`FIXED_FILES_MAX`],
/// else this, else [`FIXED_FILES_MIN`]; slots past it, or every slot when the kernel refuses
/// every size, keep the plain descriptor.
const FIXED_FILES: u32 = 16384;
/// The table tried when the larger ones are refused.
const FIXED_FILES_MIN: u32 = 1024;
/// The largest table asked for, whatever the open-file limit: the kernel keeps 8 bytes per
/// entry (512 KiB here), whether used or not.
pub const FIXED_FILES_MAX: u32 = 1 << 16;
/// Bytes a connection may queue for sending before its writer waits. A buffer handed over
/// whole ([`UringStream::send_owned`]) may be bigger: it is queued as it is, no copy made.
const SEND_MAX: usize = 256 << 10;
/// With [`Ring::set_early_send`], a connection with this much queued and no send in flight sends
/// at once instead of at the end of the round (`docs/ARCHITECTURE.md`, "The second ring").
pub const EARLY_SEND: usize = 16 << 10;
/// A connection receives into its own buffer once this score is reached: a receive copied out
/// of its provided buffer whole (part of a message was waiting, so the bytes could not be read
/// in place) adds 2, one read in place takes 1 off. On a connection that streams frames bigger
/// than the provided buffers nearly every byte was copied twice, by the kernel and then out of
/// the buffer (`docs/BENCHMARKS.md`, "A connection that streams receives into its own buffer").
const OWN_AFTER: u8 = 8;
/// Room a receive into a connection's own buffer offers the kernel, at most (the buffer's spare
/// room may be more once it grew); one that brings less than a quarter of it sends the
/// connection back to the provided buffers. At most: a receive that took all that waited (up
/// to 176 KiB on one busy connection) left the next one short, which sent the connection back
/// to the provided buffers (7 % of the receives, against 0.1–0.4 % at 64 KiB); at most 64 KiB
/// gained 8–20 % there, and less than a frame (64 KiB) lost (`docs/BENCHMARKS.md`, "A receive
/// into a connection's own buffer is offered 64 KiB at most").
const OWN_ROOM: usize = 64 << 10;
/// Room offered to a connection whose reader left more than [`MOVE_CHEAP`] of a message
/// unread (big messages streaming): half the receives, and half the window updates, each of
/// which made the peer's queued bytes leave from this core (`docs/BENCHMARKS.md`, "64 KiB
/// messages: two copies fewer"). Small messages keep [`OWN_ROOM`]: offered this too, they lost
/// ≈ 5 %.
const OWN_ROOM_BIG: usize = 2 * OWN_ROOM;
/// Bytes received and not yet read past which a connection stops receiving (its receive is
/// cancelled, and armed again once its reader took half): a reader that pauses pushes back
/// on the peer through TCP, as with a plain socket. A reader waiting for the rest of a message
/// bigger than this raises its connection's bound ([`UringStream::set_bound`]).
pub const RECV_MAX: usize = 256 << 10;
/// The capacity a connection's own receive buffer is given once, when it first receives into
/// it: all a connection keeps unread ([`RECV_MAX`]) and one receive's room after it, so the
/// buffer never grows while the connection streams, and the spare lists keep it. Grown by
/// doubling as the receives asked, it passed glibc's mmap threshold (256 KiB) and was dropped
/// when emptied: a new mapping, every page of it faulted in again by the kernel's copy (20 k
/// faults/s, 200 `mremap`s/s with 16 KiB messages; `docs/BENCHMARKS.md`, "Big messages: a
/// receive buffer that stopped growing"). Only the pages written take memory.
const OWN_CAP: usize = RECV_MAX + OWN_ROOM;
/// A partial message a reader leaves in the ring ([`UringStream::poll_lend`]) waits there for
/// the rest up to this size under the connection's usual bound; past it the reader raises the
/// bound as the bytes come ([`UringStream::set_bound`]), so that the message is read where
/// the kernel put it, however big. Moved out to a reader's buffer instead, every byte of a
/// message past 128 KiB was copied once more, and that buffer grew by doubling (a copy and a
/// zeroing each time): 1 MiB messages cost the router 1.9 ms of CPU each, against 0.98 ms
/// through the tokio router (`docs/BENCHMARKS.md`, "Messages past 128 KiB").
pub const LEND_MAX: usize = RECV_MAX / 2;
// A partial message under `LEND_MAX` must be able to complete before its connection pauses.
const _: () = assert!(LEND_MAX < RECV_MAX);
/// A raised bound is kept in units of this many bytes (up to 4 GiB in a slot's 16 bits).
const BOUND_UNIT: usize = 64 << 10;

/// The bound [`UringStream::set_bound`] sets for `want` bytes: 0 for 0, else past
/// [`RECV_MAX`] (a partial message of [`LEND_MAX`] or more, half the usual bound, must raise
/// it even when it is smaller than the bound: a connection paused past `RECV_MAX` receives
/// again once half of that is read, which such a message's rest never lets happen), in whole
/// units of 64 KiB.
pub fn bound_for(want: usize) -> usize {
    match want {
        0 => 0,
        _ => {
            want.max(RECV_MAX + 1).min(u16::MAX as usize * BOUND_UNIT).next_multiple_of(BOUND_UNIT)
        }
    }
}
/// Unread bytes a receive into a connection's own buffer moves to the front before it when
/// some were read: at most this many, unless the room after them is short of [`OWN_ROOM`].
const MOVE_CHEAP: usize = 4 << 10;
/// The largest emptied buffer kept for reuse: one grown past [`OWN_CAP`] (receives that
/// completed as its connection paused: up to the provided buffers' 4 MiB; a big message held
/// whole, [`UringStream::set_bound`]; a big message's frame sent whole) is kept too, rather
/// than given back to glibc and mapped and faulted in again the next time (at 2 MiB, 20–45 k
/// page faults in 2 s on a router core with 16 KiB messages; at 4 MiB, one).
const RX_KEPT: usize = SPARE_BYTES / 2;
/// A receive buffer grown past this for a big message is let go once the message is through
/// ([`UringStream::set_bound`]): the connection goes back to the provided buffers, and the
/// buffer to the spare list once emptied, rather than wait under an armed receive while the
/// connection idles. Smaller ones stay: let go after every message, with 200 KiB messages
/// each message's rest came through provided buffers and was copied out of them (11 % of a
/// router core).
const IDLE_RX_MAX: usize = 4 << 20;
/// Bytes of emptied buffers kept for reuse per ring and direction: enough that busy connections
/// allocate none, while an idle connection holds none of its own. With 1 MiB messages, 8 MiB
/// left every receive of a message on fresh pages (60–130 k page faults a second on a router
/// core); only pages once written take memory.
const SPARE_BYTES: usize = 32 << 20;
/// A parked reaper looks again after this long, whatever happened.
const FALLBACK: Duration = Duration::from_millis(20);
/// A polling ring counts the time from one empty pass to the next as watch when it is shorter
/// than this, and a doze the time from one look at its queue to the next (a pass or a look
/// takes about a microsecond; a longer gap is a thread that did not run: on a
/// shared or virtual machine other threads and the hypervisor take a core for 10–50 µs many
/// times a second, and that time must not count as CPU this thread used).
const POLL_GAP_MAX: u64 = 10_000;
/// The longest doze ([`Ring::set_doze`]): past it with no completion the thread parks in glommio.
pub const DOZE_MAX: Duration = Duration::from_millis(1);
/// Before a doze waits in the kernel, it watches the ring this long: a round trip's answer
/// usually comes sooner than a sleeping core wakes (measured: `docs/BENCHMARKS.md`).
pub const DOZE_SPIN: Duration = Duration::from_micros(20);
/// A doze this short (an open-loop pacer's next send, due in a few microseconds) is watched
/// through and never waits in the kernel, on a core the thread does not share: a timed wait
/// this short costs the thread more than the wait (the system call, the timer, a switch out
/// and back), and on a virtual machine it often ends far past its time.
pub const NEAR_WAIT: Duration = Duration::from_micros(20);
/// The longest a doze's watch grows to when completions keep landing just past it: a peer
/// whose turn takes a little longer than [`DOZE_SPIN`] (a frame of 160 messages) would
/// otherwise find this thread asleep on every hop. Big rounds (hundreds of messages a turn,
/// one connection) need more than 100 µs: on a VM a sleeping core takes 100–200 µs to wake in
/// a busy hour, and with both threads of such a run waiting on each other's wake-ups a third of
/// the time, the run went 5.4 M msgs/s with 100 µs against 7.5–7.8 M with 300 µs
/// (`docs/BENCHMARKS.md`, "A watch as long as a big round"). Twice the work before the doze
/// still caps it ([`next_watch`]).
pub const WATCH_MAX: Duration = Duration::from_micros(300);

/// A ring told not to watch ([`Ring::set_watch`]: its round trips are long) still watches after
/// a turn that received at least this many bytes: then the answers are big rounds (hundreds of
/// messages a frame) that come back sooner than a sleeping core wakes, not a response or an
/// event now and then from a slow server, where watching only burns the core. Bytes, not the
/// turn's length: a thread preempted mid-turn has not worked more.
const BIG_TURN_BYTES: u64 = 16 << 10;

/// An agent core most of whose round trips take longer than this sleeps at once when it
/// dozes, instead of watching first ([`Ring::set_watch`]). Watching buys the answer a thread's
/// wake-up (5–7 µs here: a round trip of 25 µs is measured as 32 µs without it), which matters
/// to short round trips and is under 5–7 % of these; and answers that take long are what many
/// requests in flight or a slow server give, where watching only burns the core (HTTP, 16
/// connections to one server thread: 7–16 % of the client's core, `docs/BENCHMARKS.md`).
pub const SPIN_RTT_MAX: Duration = Duration::from_micros(100);

/// Gathering ([`UringStream::poll_gather`]): a writer with less than this queued may wait for
/// more. A send of a few messages costs nearly what one of many costs (the system call, and on
/// loopback the receiver's wake-up): in a mesh of 100 agents, each on its own connection, the
/// router's sends carried 6 messages each, at 850 ns of its CPU per message.
pub const GATHER_BYTES: usize = 2 << 10;
/// Passes of the ring a gathering writer waits at most.
pub const GATHER_PASSES: u32 = 4;
/// A ring gathers only once its thread has worked this long without a doze or park: saturated,
/// so that holding a send back costs no idle time, only latency the queueing has anyway.
const GATHER_BUSY: u64 = 200_000;

/// How late a sleep of this thread on glommio's timer may get while its busy reaper keeps
/// glommio's loop from turning (ns): past it, the reaper lets the loop turn ([`Ring::reap`]).
/// The sleeps the reaper ends itself are woken on its next pass.
const TURN_LATE: u64 = 50_000;

/// While dozing, polling or busy, glommio's loop gets the thread back at least this often (its
/// timers, wakes from other threads).
const TURN_EVERY: u64 = 1_000_000;

/// Dozes that ended with a completion (for the tests: proves the doze was taken).
static DOZES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Parks in glommio's loop (for the tests: what glommio allocates per park).
#[cfg(test)]
static PARKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Turns of glommio's loop a busy or polling reaper made: for a due sleep, or after
/// [`TURN_EVERY`] without one (process-wide).
static TURNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Turns of glommio's loop so far that busy or polling reapers made (`TURNS`).
pub fn turns() -> u64 {
    TURNS.load(Ordering::Relaxed)
}

/// A router shard's ties to its peers: its doorbell, and what applies what their channels
/// hold (true when it applied anything).
struct Peers {
    bell: std::sync::Arc<Doorbell>,
    drain: Box<dyn Fn() -> bool>,
}

/// Parks that ran their whole fallback timer, after which the reaper found completions: lost
/// wake-ups, and work that came as the timer fired. Where every answer waits on the other side
/// (a ping-pong), either is a thread that slept 20 ms past its peer; the stress tests ask for
/// none. Process-wide.
static LATE_PARKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Parks of this process that ran their whole fallback timer and then found completions
/// ([`LATE_PARKS`]): [`rescued`] and more.
pub fn late_parks() -> u64 {
    LATE_PARKS.load(Ordering::Relaxed)
}

/// Parks that only the fallback timer ended while completions were waiting and the bell had
/// not rung: lost wake-ups (process-wide; the stress test asks for none). Work that came as the
/// timer fired, or whose bell rang as the reaper woke, is not counted.
static RESCUED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Lost wake-ups so far in this process: parks ended by the fallback timer with completions
/// waiting and the bell silent.
pub fn rescued() -> u64 {
    RESCUED.load(Ordering::Relaxed)
}

/// Rings dropped with operations in flight (their buffers leaked on purpose).
static LEAKED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Rings dropped so far with operations still in flight: their buffers were leaked rather
/// than freed under the kernel (a teardown that did not wait for its operations).
pub fn leaked() -> u64 {
    LEAKED.load(Ordering::Relaxed)
}

const OP_RECV: u64 = 1;

const OP_SEND: u64 = 2;

const OP_CANCEL: u64 = 3;

/// A poll on the doorbell's eventfd ([`Ring::set_peers`]); slot and generation unused.
const OP_BELL: u64 = 4;

/// A shutdown asked through a connection's [`Handle`].
const OP_SHUTDOWN: u64 = 5;

/// An operation's tag: the slot's generation (a reused slot's new connection never takes an
/// old operation's completion or cancel), the slot, the operation.
fn user_data(gen: u32, slot: usize, op: u64) -> u64 {
    (u64::from(gen) << 32) | ((slot as u64 & 0xff_ffff) << 8) | op
}

/// The generation, slot and operation of a tag.
fn untag(data: u64) -> (u32, usize, u64) {
    ((data >> 32) as u32, ((data >> 8) & 0xff_ffff) as usize, data & 0xff)
}

/// The provided-buffer ring: entries the kernel takes buffers from, and the buffers.
struct Provided {
    entries: *mut types::BufRingEntry,
    layout: Layout,
    mem: Box<[u8]>,
    tail: u16,
    /// Buffers allowed in circulation (in the ring, being written, or held).
    limit: u16,
    /// Buffers kept out of circulation, beyond `limit`.
    stash: Vec<u16>,
    /// Receives since the buffers last ran out.
    quiet: u32,
}

// One per open connection, for as long as it is open: see `Conn`'s size in `route::conn`.
#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<Slot>() <= 160);

#[derive(Default)]
struct Slot {
    /// Bumped each time the slot is freed for another connection.
    gen: u32,
    /// The plain descriptor, kept only while the socket is not in the fixed table (`fixed`).
    fd: Option<OwnedFd>,
    rx: Vec<u8>,
    /// Where the unread bytes start: in `held` while there is one, else in `rx`.
    rx_at: usize,
    /// A provided buffer (id, length) whose bytes are read where the kernel put them; `rx` is
    /// empty meanwhile. Given back once read, or once anything else comes in.
    held: Option<(u16, u32)>,
    /// Unread bytes a lend ([`UringStream::poll_lend`]) left: the next lend waits for more.
    rx_lent: u32,
    /// The reader's bound on unread bytes when it raised it past [`RECV_MAX`] for a big
    /// message ([`UringStream::set_bound`]), in units of [`BOUND_UNIT`]; 0: `RECV_MAX`.
    rx_bound: u16,
    /// The receive ended: `Ok` at end of stream, else the error's kind.
    rx_end: Option<Result<(), io::ErrorKind>>,
    recv_armed: bool,
    /// Receiving into `rx`'s spare room with single-shot receives instead of into provided
    /// buffers: a connection that keeps streaming ([`OWN_AFTER`]).
    own: bool,
    /// The armed receive is such a one: the kernel may write past `rx.len()`, so `rx` must
    /// not move, shrink or be compacted until it completes.
    own_flight: bool,
    /// The score of receives copied whole against those read in place ([`OWN_AFTER`]).
    copies: u8,
    /// Receiving stopped: past [`Slot::bound`] unread.
    paused: bool,
    read_waker: Option<Waker>,
    /// The send in flight owns these bytes until its completion.
    tx_fly: Vec<u8>,
    tx_off: usize,
    sending: bool,
    tx_next: Vec<u8>,
    tx_err: Option<io::ErrorKind>,
    write_waker: Option<Waker>,
    /// Waiting in `dirty` for a submission.
    dirty: bool,
    /// The stream was dropped.
    closed: bool,
    /// The socket is registered at the slot's index of the ring's fixed files, and that is
    /// the only reference this process holds to it.
    fixed: bool,
    /// A shutdown was asked through the connection's [`Handle`], to be submitted.
    shut_wanted: bool,
    /// That shutdown is in flight: the slot (and the table's place) waits for it.
    shutting: bool,
    /// Bytes were queued through the [`Handle`] ([`Handle::send_now`]): a parting reply,
    /// sent before the slot is freed even if the stream drops first.
    parting: bool,
}

impl Slot {
    /// Unread bytes past which the connection stops receiving.
    fn bound(&self) -> usize {
        RECV_MAX.max(self.raised())
    }

    /// The bound a reader raised, in bytes (0: none).
    fn raised(&self) -> usize {
        self.rx_bound as usize * BOUND_UNIT
    }

    fn busy(&self) -> bool {
        self.recv_armed || self.sending || self.shutting
    }

    /// A parting reply still has bytes to send.
    fn lingering(&self) -> bool {
        self.parting
            && self.tx_err.is_none()
            && (self.tx_off < self.tx_fly.len() || !self.tx_next.is_empty())
    }

    /// The stream is gone and nothing of it is left to do: the slot may serve another.
    fn done(&self) -> bool {
        self.closed && !self.busy() && !self.lingering()
    }
}

struct Inner {
    ring: IoUring,
    provided: Provided,
    slots: Vec<Slot>,
    /// Receive buffers of drained connections, for the next receive: an idle connection holds
    /// none, and a busy one allocates none.
    spare: Spares,
    /// The same for send buffers: a connection with nothing to send holds none.
    tx_spare: Spares,
    /// Slots whose connection is gone and whose operations all ended, for the next connection.
    free: Vec<usize>,
    dirty: Vec<usize>,
    /// Operations the kernel may still complete.
    in_flight: usize,
    /// Provided buffers held by connections (`Slot::held`), at most [`HELD_MAX`].
    held: usize,
    /// The doorbell's eventfd, while a poll on it is wanted ([`Ring::set_peers`]), and whether
    /// one is armed (not counted in `in_flight`: a poll touches no memory of ours).
    bell_fd: Option<i32>,
    bell_armed: bool,
    /// Slots below this have a place in the ring's table of fixed files ([`FIXED_FILES`]).
    fixed_files: u32,
    /// The most room a receive into a connection's own buffer was offered ([`OWN_ROOM`]).
    #[cfg(test)]
    own_largest: usize,
    /// Unread bytes moved to the front of own buffers before receives ([`MOVE_CHEAP`]).
    #[cfg(test)]
    own_moved: usize,
}

/// Whether this kernel gives what a [`Ring`] needs (single issuer, cooperative task run,
/// provided-buffer rings: Linux 6.0); why not, otherwise. Probed once per process.
pub fn supported() -> Result<(), String> {
    static PROBE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    // On a thread of its own: a ring's teardown queues task work on the thread that made it,
    // and that interrupts the caller's next blocking socket call with a timeout (EINTR).
    PROBE
        .get_or_init(|| {
            std::thread::spawn(probe)
                .join()
                .unwrap_or_else(|_| Err("the io_uring probe panicked".into()))
        })
        .clone()
}

/// Makes a ring as [`Ring::new`] does, with a provided-buffer ring, and drops it.
fn probe() -> Result<(), String> {
    let ring: IoUring = IoUring::builder()
        .setup_single_issuer()
        .setup_coop_taskrun()
        .setup_taskrun_flag()
        .build(8)
        .map_err(|e| format!("this kernel's io_uring lacks what the socket ring needs: {e}"))?;
    let provided = Provided::new().map_err(|e| e.to_string())?;
    // SAFETY: the entries outlive the ring, dropped first below.
    let registered = unsafe {
        ring.submitter().register_buf_ring_with_flags(provided.entries as u64, BUFS, BGID, 0)
    };
    drop(ring);
    drop(provided);
    registered.map_err(|e| format!("this kernel has no provided-buffer rings: {e}"))
}

/// `io`, or glommio's streams with the reason when this kernel cannot run the socket ring.
pub fn effective(io: super::Io) -> (super::Io, Option<String>) {
    if io != super::Io::Uring {
        return (io, None);
    }
    match supported() {
        Ok(()) => (io, None),
        Err(why) => (
            super::Io::Glommio,
            Some(format!(
                "{why}; sockets stay on glommio's streams (--agent-io/--router-io glommio)"
            )),
        ),
    }
}

/// One thread's socket ring (not `Send`: made, used and dropped on its thread).
pub struct Ring {
    inner: RefCell<Inner>,
    /// The eventfd the kernel bumps per completion, read through glommio to park; taken and
    /// closed when the reaper ends (dropped, glommio would only queue its close, and an ending
    /// executor never runs it: a descriptor leaked per run of an agent core).
    bell: RefCell<Option<Rc<glommio::io::BufferedFile>>>,
    parked: Cell<Option<Waker>>,
    /// The bell rang since the reaper last looked.
    rung: Cell<bool>,
    /// Latency modes: the reaper passes on every executor turn instead of parking until this
    /// long (ns) passed without a completion (`--poll`: [`super::POLL_IDLE`]; `--spin-us`);
    /// 0: it parks as soon as a pass finds nothing.
    poll_ns: Cell<u64>,
    kicked: Cell<bool>,
    stopped: Cell<bool>,
    /// Queued bytes past which a connection's send is submitted from its writer (0: only at
    /// the end of the round).
    early_send: Cell<usize>,
    /// Wait in this ring rather than park in glommio while traffic lasts ([`Ring::set_doze`]).
    doze: Cell<bool>,
    /// Whether a doze watches before it sleeps ([`Ring::set_watch`]).
    watching: Cell<bool>,
    /// How long the next doze watches before it sleeps (ns): [`DOZE_SPIN`], or longer while
    /// the peer's answers have been coming just after it ([`WATCH_MAX`]).
    watch_ns: Cell<u64>,
    /// When the last doze or park ended (ns): the thread has been working since.
    dozed_at: Cell<u64>,
    /// Bytes received since the last doze or park ended ([`BIG_TURN_BYTES`]).
    turn_bytes: Cell<u64>,
    /// The core the ring's thread is pinned to, if any: where the other side of the run has
    /// threads too ([`crate::placement::share_cores`], looked up at each doze: a router's
    /// clients tell it after its rings started, and for a while), a doze never watches.
    core: Option<usize>,
    /// The last attempt to park found only the task-run flag, and no pass since found a
    /// completion ([`Ring::arm_bell`]).
    flag_only: Cell<bool>,
    /// This ring's lost wake-ups ([`RESCUED`] counts them for the process).
    rescues: Cell<u64>,
    /// Times this ring's reaper parked in glommio ([`Ring::parks`]).
    parks: Cell<u64>,
    /// Peers that feed this thread through channels ([`Ring::set_peers`]).
    peers: RefCell<Option<Peers>>,
    /// The last pass received bytes on a saturated thread ([`GATHER_BUSY`]), not polling:
    /// writers may gather ([`UringStream::poll_gather`]).
    gathering: Cell<bool>,
    /// Bytes received by the passes since the reaper last looked ([`Ring::gather_turn`]).
    pass_bytes: Cell<u64>,
    /// Writers waiting for the next pass to gather more.
    gatherers: RefCell<Vec<Waker>>,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ring {{ slots: {} }}", self.inner.borrow().slots.len())
    }
}

/// How a doze ended, timed from the start of its watch (ns).
#[derive(Debug, Clone, Copy)]
enum Dozed {
    /// A completion came while it watched.
    Caught(u64),
    /// One came while it slept.
    Woke(u64),
    /// None came.
    Idle,
}

/// Emptied buffers kept for reuse, up to [`SPARE_BYTES`] of capacity.
#[derive(Default)]
struct Spares {
    bufs: Vec<Vec<u8>>,
    bytes: usize,
}
