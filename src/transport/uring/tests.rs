//! The socket ring's tests: completions, dozes, sleeps, lost wake-ups, teardown.

use super::reaper::{next_turn_min, next_watch, turn_timer, SLOW_TURN_NS};
use super::sleep::SLEPT;
use super::*;
use crate::placement::Slot;
use crate::transport::Io;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

/// A listener on loopback and its address, where this kernel has the ring (else `None`:
/// the test has nothing to prove).
fn loopback() -> Option<(std::net::TcpListener, std::net::SocketAddr)> {
    supported().ok()?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    Some((listener, addr))
}

/// A peer that accepts one connection and reads `n` bytes from it (10 s at most).
fn peer_reading(listener: std::net::TcpListener, n: usize) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = vec![0u8; n];
        std::io::Read::read_exact(&mut s, &mut got).unwrap();
        got
    })
}

/// What `peer` read while no pass of `ring` ran; then the ring winds down.
async fn got_with_no_pass(
    ring: Rc<Ring>,
    stream: UringStream,
    peer: std::thread::JoinHandle<Vec<u8>>,
) -> Vec<u8> {
    let got = peer.join().unwrap();
    let reaper = ring.spawn_reaper();
    drop(stream);
    ring.stop();
    reaper.await;
    got
}

/// `n` bytes of a pattern whose every byte says where it is (modulo a prime).
fn in_order(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// A peer that writes [`in_order`]`(n)` to the first connection it accepts, and a
/// non-blocking socket connected to it; `None` where the kernel cannot run a ring.
fn streaming_peer(n: usize) -> Option<(std::thread::JoinHandle<()>, std::net::TcpStream)> {
    let (listener, addr) = loopback()?;
    let peer = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        std::io::Write::write_all(&mut s, &in_order(n)).unwrap();
    });
    let socket = std::net::TcpStream::connect(addr).unwrap();
    socket.set_nonblocking(true).unwrap();
    Some((peer, socket))
}

/// `bytes` are [`in_order`]'s from `at` on.
fn assert_in_order(bytes: &[u8], at: usize) {
    for (i, &b) in bytes.iter().enumerate() {
        assert_eq!(b, ((at + i) % 251) as u8, "byte {}", at + i);
    }
}

/// A connection to `addr` on `ring`.
fn connect(ring: &Rc<Ring>, addr: std::net::SocketAddr) -> UringStream {
    let socket = std::net::TcpStream::connect(addr).unwrap();
    socket.set_nonblocking(true).unwrap();
    ring.stream(socket.into())
}

#[test]
fn the_ring_is_asked_for_only_where_the_kernel_has_it() {
    // Proves the fallback: glommio's streams stay as asked; the ring is kept where the
    // probe succeeds, and otherwise replaced by glommio's streams with the reason.
    assert_eq!(effective(Io::Glommio), (Io::Glommio, None));
    match (supported(), effective(Io::Uring)) {
        (Ok(()), got) => assert_eq!(got, (Io::Uring, None)),
        (Err(why), (io, said)) => {
            assert_eq!(io, Io::Glommio);
            assert!(said.is_some_and(|s| s.contains(&why) && s.contains("glommio")));
        }
    }
}

#[test]
fn a_ring_dropped_with_a_receive_in_flight_leaks_its_buffers_and_nothing_else() {
    // Proves the leak path: a ring dropped while the kernel may still write its buffers
    // (a receive armed) counts a leak and frees nothing it must not (it once freed a
    // dangling pointer there: a segfault when a run's set-up failed).
    if supported().is_err() {
        return;
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let socket = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    socket.set_nonblocking(true).unwrap();
    let before = leaked();
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .spawn(move || async move {
            let ring = Ring::new().unwrap();
            let stream = ring.stream(socket.into());
            ring.pass(); // arms the receive: nothing to read, so it stays in flight
            assert_eq!(ring.inner.borrow().in_flight, 1);
            drop(stream);
            drop(ring);
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(leaked(), before + 1);
    drop(listener);
}

#[test]
fn a_stopped_ring_is_freed_when_its_thread_ends() {
    // Proves a ring whose reaper ended is dropped with the executor's end: its bell's task,
    // left pending, once kept it (and its io_uring, eventfd and buffers) alive forever, one
    // per run of an agent core. A guard held by the ring tells when it is dropped.
    if supported().is_err() {
        return;
    }
    struct Guard(flume::Sender<()>);
    let (tx, rx) = flume::bounded::<()>(1);
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .spawn(move || async move {
            let ring = Ring::new().unwrap();
            let guard = Guard(tx);
            ring.set_peers(Doorbell::new().unwrap(), Box::new(move || (&guard.0, false).1));
            let reaper = ring.spawn_reaper();
            glommio::timer::sleep(Duration::from_millis(5)).await; // it parks on its bell
            ring.stop();
            reaper.await;
            drop(ring);
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)),
        Err(flume::RecvTimeoutError::Disconnected),
        "the ring outlived its thread"
    );
}

#[test]
fn parks_ended_by_new_work_keep_no_wakers() {
    // Proves the reaper can park and be kicked awake by new sends more times than a glommio
    // task's reference count holds (i16): a pending read polled on every park kept a waker
    // each time and overflowed it, killing the thread. Also: every byte arrives.
    if supported().is_err() {
        return;
    }
    const WRITES: usize = 40_000;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let reader = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut s, &mut buf).unwrap();
        buf.len()
    });
    let sent = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .spawn(move || async move {
            use futures_lite::AsyncWriteExt;
            let ring = Ring::new().unwrap();
            let reaper = ring.spawn_reaper();
            let mut stream = connect(&ring, addr);
            for _ in 0..WRITES {
                stream.write_all(b"x").await.unwrap();
                // Let the reaper send it and park before the next write kicks it.
                glommio::timer::sleep(Duration::from_micros(1)).await;
            }
            stream.close().await.unwrap();
            drop(stream);
            ring.stop();
            reaper.await;
            (WRITES, ring.rescues.get())
        })
        .unwrap()
        .join()
        .unwrap();
    let (sent, rescues) = sent;
    assert_eq!(reader.join().unwrap(), sent);
    // This ring's count: another test here makes a lost wake-up on purpose.
    assert_eq!(rescues, 0, "no park needed the fallback timer");
}

#[test]
fn closed_connections_give_their_slots_and_buffers_to_new_ones() {
    // Proves a ring serving connection after connection keeps as many slots as were open
    // at once, not one per connection ever made, and every byte of each arrives; a
    // connection with nothing left to send or read holds no buffer; and a dropped
    // stream's socket really closes (the peer reads its end), also when it was registered
    // in the ring's fixed files, whose reference would otherwise keep it open.
    let Some((listener, addr)) = loopback() else { return };
    const CONNS: usize = 200;
    let echo = std::thread::spawn(move || {
        for i in 0..CONNS {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 5];
            std::io::Read::read_exact(&mut s, &mut buf).unwrap();
            std::io::Write::write_all(&mut s, &buf).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let end = std::io::Read::read(&mut s, &mut buf);
            assert!(matches!(end, Ok(0)), "connection {i} never closed: {end:?}");
        }
    });
    let slots = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .spawn(move || async move {
            use futures_lite::{AsyncReadExt, AsyncWriteExt};
            let ring = Ring::new().unwrap();
            let reaper = ring.spawn_reaper();
            for i in 0..CONNS {
                let mut stream = connect(&ring, addr);
                let msg = format!("{:05}", i);
                stream.write_all(msg.as_bytes()).await.unwrap();
                let mut back = [0u8; 5];
                stream.read_exact(&mut back).await.unwrap();
                assert_eq!(&back, msg.as_bytes());
                stream.close().await.unwrap();
                {
                    let inner = ring.inner.borrow();
                    let s = &inner.slots[stream.slot];
                    assert_eq!(s.rx.capacity() + s.tx_fly.capacity() + s.tx_next.capacity(), 0);
                    assert_eq!(s.fixed, inner.fixed_files > 0, "registered where it can be");
                    assert_eq!(s.fd.is_none(), s.fixed, "no plain descriptor once registered");
                }
                drop(stream);
            }
            ring.stop();
            reaper.await;
            let slots = ring.inner.borrow().slots.len();
            slots
        })
        .unwrap()
        .join()
        .unwrap();
    echo.join().unwrap();
    assert!(slots <= 2, "{slots} slots for {CONNS} connections one after another");
}

#[test]
fn a_handle_shuts_down_sends_a_parting_reply_and_never_touches_a_later_connection() {
    // Proves what stands in for the descriptor a registered socket no longer has: through its
    // handle a connection is shut down (its parked reader sees the end, the peer a FIN), and
    // bytes queued as a parting reply reach the peer though the stream drops at once; a handle
    // whose connection is gone does nothing to the connection that took its slot.
    let Some((listener, addr)) = loopback() else { return };
    let peer = std::thread::spawn(move || {
        let all = |s: &mut std::net::TcpStream| {
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut got = Vec::new();
            std::io::Read::read_to_end(s, &mut got).unwrap();
            got
        };
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(all(&mut listener.accept().unwrap().0));
        }
        got
    });
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .spawn(move || async move {
            use futures_lite::{AsyncReadExt, AsyncWriteExt};
            let ring = Ring::new().unwrap();
            let reaper = ring.spawn_reaper();
            // Until every slot is free: each stream's operations ended.
            let all_free = || {
                let ring = ring.clone();
                async move {
                    for _ in 0..10_000 {
                        let done = {
                            let inner = ring.inner.borrow();
                            inner.free.len() == inner.slots.len()
                        };
                        if done {
                            return;
                        }
                        glommio::timer::sleep(Duration::from_millis(1)).await;
                    }
                    panic!("slots not freed");
                }
            };
            let mut a = connect(&ring, addr);
            let ha = a.handle();
            let read = glommio::spawn_local(async move {
                let mut buf = [0u8; 8];
                let n = a.read(&mut buf).await.unwrap();
                (n, a)
            });
            futures_lite::future::yield_now().await;
            ha.shutdown();
            let (n, a) = read.await;
            assert_eq!(n, 0, "the parked read saw the end of the stream");
            drop(a);
            let b = connect(&ring, addr);
            let hb = b.handle();
            hb.send_now(b"bye");
            drop(b);
            all_free().await;
            let mut c = connect(&ring, addr);
            assert_eq!(ring.inner.borrow().slots.len(), 1, "the new connection took a freed slot");
            for h in [&ha, &hb] {
                h.shutdown();
                h.send_now(b"stale");
            }
            c.write_all(b"pong").await.unwrap();
            c.close().await.unwrap();
            drop(c);
            all_free().await;
            ring.stop();
            reaper.await;
        })
        .unwrap()
        .join()
        .unwrap();
    let got = peer.join().unwrap();
    assert_eq!(got, [&b""[..], b"bye", b"pong"], "the peers' reads, in order");
}

#[test]
fn provided_buffers_circulate_as_many_as_receives_need() {
    // Proves the circulation adapts both ways: 16 buffers at first, the rest kept out;
    // running out doubles them at once (up to all 128); a long run without running out
    // halves them, the extra ones leaving as they come back; connections may hold half of
    // those circulating.
    let mut p = Provided::new().unwrap();
    assert_eq!((p.limit, p.circulating(), p.stash.len()), (BUFS_MIN, BUFS_MIN, 112));
    assert_eq!(p.held_max(), 8);
    assert!(p.ran_out());
    assert_eq!((p.limit, p.circulating(), p.stash.len()), (32, 32, 96));
    for _ in 0..3 {
        p.ran_out();
    }
    assert_eq!((p.limit, p.circulating(), p.stash.len()), (BUFS, BUFS, 0));
    assert!(!p.ran_out(), "nothing left to add");
    assert_eq!(p.held_max(), HELD_MAX);
    for _ in 0..SHRINK_AFTER {
        p.took();
    }
    assert_eq!((p.limit, p.circulating()), (64, BUFS), "none leaves before it comes back");
    // 70 buffers come back: 64 leave circulation, 6 go back to the ring.
    for bid in 0..70 {
        p.give(bid);
    }
    assert_eq!((p.circulating(), p.stash.len()), (64, 64));
    for _ in 0..SHRINK_AFTER * 8 {
        p.took();
    }
    assert_eq!(p.limit, BUFS_MIN, "never below the floor");
}

#[test]
fn a_writer_hands_its_buffers_over_in_turn_and_none_grows() {
    // Proves a writer whose last buffer still waits to be sent waits for its place
    // instead of copying behind it: 200 buffers of 60,000 bytes to a peer that reads
    // slowly all arrive whole and in order, the writer did wait, and no buffer the ring
    // handed back was bigger than the 64 KiB buffers handed in (copying grew them, and a
    // pool that cannot keep such buffers freed and reallocated one every few sends).
    let Some((listener, addr)) = loopback() else { return };
    const BUFS: usize = 200;
    const LEN: usize = 60_000;
    let peer = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = vec![0u8; LEN];
        for i in 0..BUFS {
            if i % 20 == 0 {
                // Slow now and then, so that the sender's socket fills.
                std::thread::sleep(Duration::from_millis(5));
            }
            std::io::Read::read_exact(&mut s, &mut buf).unwrap();
            assert!(buf.iter().all(|&b| b == i as u8), "buffer {i} arrived torn or out of order");
        }
    });
    let (waits, largest) = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .spawn(move || async move {
            use futures_lite::AsyncWriteExt;
            let ring = Ring::new().unwrap();
            let reaper = ring.spawn_reaper();
            let mut stream = connect(&ring, addr);
            let (mut waits, mut largest) = (0, 0);
            let mut buf = Vec::with_capacity(64 << 10);
            for i in 0..BUFS {
                if buf.capacity() < LEN {
                    buf = Vec::with_capacity(64 << 10);
                }
                buf.resize(LEN, i as u8);
                let taken = std::future::poll_fn(|cx| {
                    let p = stream.poll_send_owned(cx, &mut buf);
                    waits += usize::from(p.is_pending());
                    p
                })
                .await;
                assert!(taken, "buffer {i} refused");
                assert!(buf.is_empty());
                let inner = ring.inner.borrow();
                let s = &inner.slots[stream.slot];
                largest =
                    largest.max(buf.capacity()).max(s.tx_fly.capacity()).max(s.tx_next.capacity());
            }
            stream.close().await.unwrap();
            drop(stream);
            ring.stop();
            reaper.await;
            (waits, largest)
        })
        .unwrap()
        .join()
        .unwrap();
    peer.join().unwrap();
    assert!(waits > 0, "the writer never found a buffer waiting: nothing was tested");
    assert!(largest <= 64 << 10, "the ring handed back a buffer of {largest} bytes");
}

#[test]
fn connections_whose_readers_wait_hold_at_most_half_the_buffers() {
    // Proves reads in place cannot starve a ring: 160 connections (more than its 128
    // provided buffers) each get bytes that nobody reads yet; at most `HELD_MAX` buffers
    // stay held, the last connection still receives, every byte arrives intact whether it
    // was read in place or copied, and once all is read no buffer is held.
    let Some((listener, addr)) = loopback() else { return };
    const CONNS: usize = 160;
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let peer = std::thread::spawn(move || {
        let mut held = Vec::new();
        for i in 0..CONNS {
            let (mut s, _) = listener.accept().unwrap();
            std::io::Write::write_all(&mut s, &[i as u8; 1000]).unwrap();
            held.push(s);
        }
        let _ = done_rx.recv_timeout(Duration::from_secs(20));
    });
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .spawn(move || async move {
            use futures_lite::AsyncReadExt;
            let ring = Ring::new().unwrap();
            let reaper = ring.spawn_reaper();
            let mut streams = Vec::new();
            for _ in 0..CONNS {
                streams.push(connect(&ring, addr));
            }
            let mut buf = [0u8; 1000];
            let last = futures_lite::future::or(
                async { Some(streams[CONNS - 1].read_exact(&mut buf).await) },
                async {
                    glommio::timer::sleep(Duration::from_secs(10)).await;
                    None
                },
            )
            .await;
            assert!(matches!(last, Some(Ok(()))), "the last connection starved: {last:?}");
            assert_eq!(buf, [(CONNS - 1) as u8; 1000]);
            assert!(ring.inner.borrow().held <= HELD_MAX);
            for (i, stream) in streams.iter_mut().enumerate().take(CONNS - 1) {
                stream.read_exact(&mut buf).await.unwrap();
                assert_eq!(buf, [i as u8; 1000], "connection {i}");
            }
            assert_eq!(ring.inner.borrow().held, 0, "every buffer given back");
            drop(streams);
            ring.stop();
            reaper.await;
        })
        .unwrap()
        .join()
        .unwrap();
    let _ = done_tx.send(());
    peer.join().unwrap();
}

#[test]
fn a_connection_that_streams_receives_into_its_own_buffer_until_it_stops() {
    // Proves the switch both ways: 4 MiB written at once land in many receives before
    // the reader runs, so most are copied out of their provided buffers and the
    // connection moves to receives into its own buffer; no receive is offered more than
    // `OWN_ROOM`, even once the buffer has more spare room; every byte arrives in order; a
    // short message after that sends it back, and once all is read it holds no buffer.
    const BIG: usize = 4 << 20;
    let Some((listener, addr)) = loopback() else { return };
    let (more_tx, more_rx) = std::sync::mpsc::channel::<()>();
    let peer = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let data = in_order(BIG);
        std::io::Write::write_all(&mut s, &data).unwrap();
        more_rx.recv_timeout(Duration::from_secs(20)).unwrap();
        std::io::Write::write_all(&mut s, &[7u8; 10]).unwrap();
        let _ = more_rx.recv_timeout(Duration::from_secs(20));
    });
    let socket = std::net::TcpStream::connect(addr).unwrap();
    // Let most of it wait in the socket before the first receive is armed.
    let mut probe = vec![0u8; 64 << 10];
    let _ = nix::sys::socket::recv(
        std::os::fd::AsRawFd::as_raw_fd(&socket),
        &mut probe,
        nix::sys::socket::MsgFlags::MSG_PEEK | nix::sys::socket::MsgFlags::MSG_WAITALL,
    );
    socket.set_nonblocking(true).unwrap();
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .spawn(move || async move {
            use futures_lite::AsyncReadExt;
            let ring = Ring::new().unwrap();
            let reaper = ring.spawn_reaper();
            let mut stream = ring.stream(socket.into());
            let slot = stream.slot;
            let (mut got, mut own, mut waited) = (0usize, false, false);
            let mut buf = vec![0u8; 64 << 10];
            while got < BIG {
                let n = stream.read(&mut buf[..(BIG - got).min(64 << 10)]).await.unwrap();
                assert!(n > 0, "the stream ended early");
                assert_in_order(&buf[..n], got);
                got += n;
                own |= ring.inner.borrow().slots[slot].own;
                if own && !waited && ring.inner.borrow().unread_len(slot) < OWN_ROOM {
                    // Read nothing until three rooms' worth waits unread: the buffer grows
                    // past the room, and still no receive may be offered more than the room.
                    waited = true;
                    let deadline = std::time::Instant::now() + Duration::from_secs(10);
                    while ring.inner.borrow().unread_len(slot) < 3 * OWN_ROOM {
                        assert!(std::time::Instant::now() < deadline, "nothing more was received");
                        futures_lite::future::yield_now().await;
                    }
                }
            }
            assert!(own, "the connection never received into its own buffer");
            assert!(waited, "the reader never waited");
            let largest = ring.inner.borrow().own_largest;
            assert!(largest > 0 && largest <= OWN_ROOM, "a receive was offered {largest} bytes");
            more_tx.send(()).unwrap();
            let mut tail = [0u8; 10];
            stream.read_exact(&mut tail).await.unwrap();
            assert_eq!(tail, [7u8; 10]);
            {
                let inner = ring.inner.borrow();
                assert!(!inner.slots[slot].own, "a short message did not send it back");
                let kept = inner.slots[slot].rx.capacity();
                assert_eq!(kept, 0, "an idle connection kept a receive buffer");
            }
            drop(stream);
            ring.stop();
            reaper.await;
            let _ = more_tx.send(());
        })
        .unwrap()
        .join()
        .unwrap();
    peer.join().unwrap();
}

#[test]
fn a_receive_into_an_own_buffer_moves_no_big_unread_tail_before_it() {
    // Proves what a stream of big messages costs the ring besides the kernel's copy: a reader
    // that takes whole messages where the ring received them (`poll_lend`, as the router's
    // readers do), here of a 64 KiB message's frame, leaves the next one's first part behind,
    // and the next receive goes after it rather than moving it to the front first. Moved
    // before every receive, the tails came to 45–65 % of the bytes received (a tenth of a router
    // core with 64 KiB messages); now they move only when the room after them is short: a
    // tail of at most a message once four were read before it (`OWN_CAP`), 25 % at most. And
    // such a connection is offered `OWN_ROOM_BIG` (a reader of small messages, who never
    // leaves much unread, `OWN_ROOM`: the test above).
    const MSG: usize = (64 << 10) + 64;
    const BIG: usize = 256 * MSG;
    let Some((peer, socket)) = streaming_peer(BIG) else { return };
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .spawn(move || async move {
            let ring = Ring::new().unwrap();
            let reaper = ring.spawn_reaper();
            let stream = ring.stream(socket.into());
            let slot = stream.slot;
            let (mut got, mut own_got) = (0usize, 0usize);
            while got < BIG {
                let own = ring.inner.borrow().slots[slot].own;
                let taken = std::future::poll_fn(|cx| {
                    stream.poll_lend(cx, false, |bytes| {
                        // Each message's ends checked, not every byte: a reader that keeps
                        // pace, as a router's does.
                        let whole = bytes.len() / MSG * MSG;
                        for at in (0..whole).step_by(MSG) {
                            assert_in_order(&bytes[at..at + 8], got + at);
                            assert_in_order(&bytes[at + MSG - 8..at + MSG], got + at + MSG - 8);
                        }
                        (whole, whole)
                    })
                })
                .await
                .unwrap()
                .expect("the stream ended early");
                got += taken;
                if own {
                    own_got += taken;
                }
                futures_lite::future::yield_now().await;
            }
            let (moved, largest) = {
                let inner = ring.inner.borrow();
                (inner.own_moved, inner.own_largest)
            };
            assert!(own_got > BIG / 2, "only {own_got} bytes came through the own buffer");
            assert!(moved < own_got / 3, "{moved} unread bytes moved for {own_got} received");
            assert_eq!(largest, OWN_ROOM_BIG, "big messages were not offered the bigger room");
            drop(stream);
            ring.stop();
            reaper.await;
        })
        .unwrap()
        .join()
        .unwrap();
    peer.join().unwrap();
}

#[test]
fn a_message_past_the_receive_bound_is_read_whole_where_it_landed() {
    // Proves a reader that raises its connection's bound as a big message's bytes come
    // (`set_bound`, twice what is unread, as the router's and the agents' readers do) gets
    // messages of 1 MiB and more whole in the ring, each read in place in one lend (none moved
    // out to a buffer of the reader's), every byte in order, interleaved with small ones and
    // with ones under the usual bound but over half of it (which, left partial in a connection
    // paused past its bound, never let it receive again until the bound was raised for them);
    // and that once the big ones are through, the bound goes back down and the grown buffer leaves
    // the connection.
    const SIZES: [usize; 9] = [3 << 20, 100, 200_000, 1 << 20, 300_000, 200_000, 7, 2 << 20, 9];
    let total: usize = SIZES.iter().sum();
    let Some((peer, socket)) = streaming_peer(total) else { return };
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .spawn(move || async move {
            let ring = Ring::new().unwrap();
            let reaper = ring.spawn_reaper();
            let stream = ring.stream(socket.into());
            let slot = stream.slot;
            let (mut got, mut again) = (0usize, false);
            // Bounded: a connection that never receives again fails the test, not hangs it.
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            for size in SIZES {
                loop {
                    assert!(std::time::Instant::now() < deadline, "stuck at {got} bytes");
                    let lend = std::future::poll_fn(|cx| {
                        stream.poll_lend(cx, std::mem::take(&mut again), |bytes| {
                            if bytes.len() < size {
                                return (0, (0, bytes.len()));
                            }
                            assert_in_order(&bytes[..size], got);
                            (size, (size, bytes.len() - size))
                        })
                    });
                    let late = async {
                        glommio::timer::sleep(Duration::from_secs(30)).await;
                        panic!("no bytes for 30 s at {got} of {total}");
                    };
                    let (taken, unread) = futures_lite::future::or(lend, late)
                        .await
                        .unwrap()
                        .expect("the stream ended early");
                    let want =
                        bound_for(if unread >= LEND_MAX { (2 * unread).min(size) } else { 0 });
                    if taken == 0 && want > 0 {
                        stream.set_bound(want.max(stream.bound()));
                    }
                    if taken > 0 {
                        // The next one may be whole already: lent again at once.
                        (got, again) = (got + taken, true);
                        if unread < LEND_MAX {
                            stream.set_bound(0);
                        }
                        break;
                    }
                }
            }
            assert_eq!(got, total);
            assert_eq!(stream.bound(), 0);
            let cap = ring.inner.borrow().slots[slot].rx.capacity();
            assert!(cap <= OWN_CAP, "{cap} bytes of receive buffer held after the big ones");
            drop(stream);
            ring.stop();
            reaper.await;
        })
        .unwrap()
        .join()
        .unwrap();
    peer.join().unwrap();
}

#[test]
fn a_reader_that_waits_stops_its_connection_receiving_even_while_it_sends() {
    // Proves the bound on what a connection keeps unread: the peer streams 16 MiB while this
    // side reads nothing and keeps sending (every send marks the connection for the next
    // submission, which armed its receive again even once it was paused: a closed loop of
    // 16 KiB messages kept 2.5 MB unread a connection). Receiving stops past `RECV_MAX`, the
    // peer is held back by TCP, and once read every byte arrives in order.
    const BIG: usize = 16 << 20;
    let Some((listener, addr)) = loopback() else { return };
    let written = Arc::new(AtomicUsize::new(0));
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let peer = {
        let written = written.clone();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
            let data = in_order(BIG);
            for chunk in data.chunks(64 << 10) {
                std::io::Write::write_all(&mut s, chunk).unwrap();
                written.fetch_add(chunk.len(), Ordering::Relaxed);
            }
            let _ = done_rx.recv_timeout(Duration::from_secs(20));
        })
    };
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .spawn(move || async move {
            use futures_lite::{AsyncReadExt, AsyncWriteExt};
            let ring = Ring::new().unwrap();
            let reaper = ring.spawn_reaper();
            let mut stream = connect(&ring, addr);
            let slot = stream.slot;
            // Until the peer is held back: the connection paused, and the peer's count still
            // for 100 ms (or all of it written: nothing held it back).
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            let (mut most, mut still, mut last) = (0usize, 0u32, usize::MAX);
            loop {
                stream.write_all(&[1u8; 8]).await.unwrap();
                glommio::timer::sleep(Duration::from_millis(2)).await;
                let (unread, paused) = {
                    let inner = ring.inner.borrow();
                    (inner.unread_len(slot), inner.slots[slot].paused)
                };
                most = most.max(unread);
                let now = written.load(Ordering::Relaxed);
                still = if now == last && paused { still + 1 } else { 0 };
                last = now;
                if still >= 50 || now == BIG {
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "the peer was never held back");
            }
            assert!(last < BIG, "the peer wrote all it had: nothing held it back");
            // Past `RECV_MAX` only what completed before the pause's cancel: what the
            // provided buffers hold at most, or one receive into its own buffer.
            let bound = RECV_MAX + BUFS as usize * BUF_SIZE;
            assert!(most <= bound, "{most} bytes were kept unread (bound {bound})");
            let mut buf = vec![0u8; 64 << 10];
            let mut got = 0;
            while got < BIG {
                let n = stream.read(&mut buf).await.unwrap();
                assert!(n > 0, "the stream ended early");
                assert_in_order(&buf[..n], got);
                got += n;
            }
            drop(stream);
            ring.stop();
            reaper.await;
        })
        .unwrap()
        .join()
        .unwrap();
    let _ = done_tx.send(());
    peer.join().unwrap();
}

#[test]
fn a_receive_that_ends_past_the_bound_pauses_its_connection() {
    // Proves the other way a connection reaches its bound: its multishot receive ends (out of
    // buffers) with the connection past `RECV_MAX` unread. It pauses there and is not armed
    // again; it was, and a router kept 2.5 MB unread a connection.
    let Some((_listener, addr)) = loopback() else { return };
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .spawn(move || async move {
            let ring = Ring::new().unwrap();
            let stream = connect(&ring, addr);
            let slot = stream.slot;
            ring.pass();
            assert!(ring.inner.borrow().slots[slot].recv_armed, "no receive was armed");
            {
                let mut inner = ring.inner.borrow_mut();
                inner.slots[slot].rx = vec![0; RECV_MAX + 1];
                // The receive in flight ends for real at the stop: counted twice here.
                inner.in_flight += 1;
                inner.on_recv(slot, -libc::ENOBUFS, 0);
                let s = &inner.slots[slot];
                assert!(s.paused, "past its bound and not paused");
                assert!(!s.dirty, "a paused connection was marked to receive again");
            }
            ring.pass();
            assert!(!ring.inner.borrow().slots[slot].recv_armed, "armed again while paused");
            // The receive the kernel still has ends with a cancel, as it would have ended.
            ring.inner.borrow_mut().cancel(slot);
            ring.pass();
            let reaper = ring.spawn_reaper();
            drop(stream);
            ring.stop();
            reaper.await;
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn a_ping_pong_allocates_nothing_per_message() {
    // Proves the socket ring's own hot path allocates nothing once warm: two connections
    // of one ring (both ends of a loopback pair) pass a 4 KiB message to and fro, each
    // sent by handing the buffer over (`send_owned`) and read into the reader's buffer.
    // The ring's receives, sends, provided buffers and spare lists, the reaper's passes
    // and glommio's task runs allocate nothing per message; glommio does when the reaper
    // hands the thread to its loop (a park or a turn: a timer, the bell's read, ≈ 7 in
    // all), which 2,000 round trips did ≈ 45 times.
    use crate::testing::counting;
    use futures_lite::AsyncReadExt;
    const LEN: usize = 4 << 10;
    let Some((listener, addr)) = loopback() else { return };
    let allocs = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .spawn(move || async move {
            let ring = Ring::new().unwrap();
            let reaper = ring.spawn_reaper();
            let mut a = connect(&ring, addr);
            let (socket, _) = listener.accept().unwrap();
            socket.set_nonblocking(true).unwrap();
            let mut b = ring.stream(socket.into());
            let (mut out, mut back) = (Vec::with_capacity(64 << 10), vec![0u8; LEN]);
            let (mut before, mut handed) = (0, 0);
            let glommio_turns = || PARKS.load(Ordering::Relaxed) + turns();
            for round in 0..2_100u32 {
                if round == 100 {
                    before = counting::calls();
                    handed = glommio_turns();
                }
                for side in 0..2 {
                    let (from, to) = if side == 0 { (&a, &mut b) } else { (&b, &mut a) };
                    out.clear();
                    out.resize(LEN, round as u8);
                    // The ring takes the buffer and leaves a spare one in its place.
                    let taken = std::future::poll_fn(|cx| from.poll_send_owned(cx, &mut out)).await;
                    assert!(taken, "round {round}: refused");
                    to.read_exact(&mut back).await.unwrap();
                    assert!(back.iter().all(|&x| x == round as u8), "round {round}: torn");
                }
            }
            let allocs = counting::calls() - before;
            let handed = glommio_turns() - handed;
            drop((a, b));
            ring.stop();
            reaper.await;
            (allocs, handed)
        })
        .unwrap()
        .join()
        .unwrap();
    let (allocs, handed) = allocs;
    eprintln!("socket ring: {allocs} allocations for 4,000 messages, {handed} parks and turns");
    assert!(
        allocs <= 16 * handed && allocs < 4_000,
        "{allocs} allocations for 4,000 messages and {handed} parks and turns"
    );
}

#[test]
fn a_big_buffer_handed_over_is_sent_whole_and_a_big_one_comes_back() {
    // Proves a buffer past `SEND_MAX` (a 1 MiB message's frame) is taken whole, not refused
    // and copied behind in parts, every byte arrives in order, and once one was sent the
    // buffer left in the next one's place is as big: the writer's pool gets back buffers of
    // the size it gives (else every such frame was a new allocation, faulted in as filled).
    const BIG: usize = 1 << 20;
    let Some((listener, addr)) = loopback() else { return };
    let peer = peer_reading(listener, 3 * BIG);
    let caps = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .spawn(move || async move {
            use futures_lite::AsyncWriteExt;
            let ring = Ring::new().unwrap();
            let reaper = ring.spawn_reaper();
            let mut stream = connect(&ring, addr);
            let all = in_order(3 * BIG);
            let mut caps = Vec::new();
            for part in all.chunks(BIG) {
                let mut buf = Vec::with_capacity(BIG);
                buf.extend_from_slice(part);
                let taken = std::future::poll_fn(|cx| stream.poll_send_owned(cx, &mut buf)).await;
                assert!(taken, "a buffer of {BIG} bytes refused");
                caps.push(buf.capacity());
                // Sent before the next: its buffer is kept, then handed back.
                stream.flush().await.unwrap();
                std::future::poll_fn(|cx| Pin::new(&mut stream).poll_close(cx)).await.unwrap();
            }
            drop(stream);
            ring.stop();
            reaper.await;
            caps
        })
        .unwrap()
        .join()
        .unwrap();
    let got = peer.join().unwrap();
    assert_in_order(&got, 0);
    assert!(caps[1..].iter().all(|&c| c >= BIG), "buffers given back: {caps:?}");
}

#[test]
fn what_is_submitted_now_leaves_without_waiting_for_a_pass() {
    // Proves `submit_now`: with no reaper pass at all, a buffer handed over stays queued
    // until it is called, and then reaches the peer.
    let Some((listener, addr)) = loopback() else { return };
    let peer = peer_reading(listener, 3000);
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .spawn(move || async move {
            let ring = Ring::new().unwrap();
            let stream = connect(&ring, addr);
            let mut buf = vec![9u8; 3000];
            assert!(stream.send_owned(&mut buf));
            assert!(!ring.inner.borrow().slots[stream.slot].sending, "queued for the pass");
            stream.submit_now();
            assert!(ring.inner.borrow().slots[stream.slot].sending, "submitted");
            assert_eq!(got_with_no_pass(ring, stream, peer).await, vec![9u8; 3000]);
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn a_gathering_writer_waits_a_few_passes_at_most_and_only_on_a_saturated_thread() {
    // Proves `poll_gather`'s bounds, pass by pass (no reaper: the passes' ends are called
    // by hand): a writer waits only while the thread has worked `GATHER_BUSY` without a
    // doze and the last pass received bytes, only below `GATHER_BYTES`, at most
    // `GATHER_PASSES` passes, and each wait ends at the next pass's end; a ring that
    // polls never gathers; the reaper's end wakes whoever still waits.
    let Some((listener, addr)) = loopback() else { return };
    let peer = std::thread::spawn(move || listener.accept().map(|(s, _)| s));
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .spawn(move || async move {
            struct Count(std::sync::atomic::AtomicUsize);
            impl std::task::Wake for Count {
                fn wake(self: std::sync::Arc<Self>) {
                    self.0.fetch_add(1, Ordering::Relaxed);
                }
            }
            let count = std::sync::Arc::new(Count(Default::default()));
            let waker = Waker::from(count.clone());
            let woken = || count.0.load(Ordering::Relaxed);
            let mut cx = Context::from_waker(&waker);
            let ring = Ring::new().unwrap();
            let stream = connect(&ring, addr);
            let t0 = ring.dozed_at.get();
            let busy = t0 + GATHER_BUSY + 1;
            let pass_end = |bytes: u64, now: u64| {
                ring.pass_bytes.set(bytes);
                ring.gather_turn(now);
            };
            let mut waited = 0;

            pass_end(100, t0 + GATHER_BUSY / 2);
            assert!(stream.poll_gather(&mut cx, 10, &mut waited).is_ready(), "not saturated");
            pass_end(0, busy);
            assert!(stream.poll_gather(&mut cx, 10, &mut waited).is_ready(), "no bytes came");
            pass_end(100, busy);
            assert!(stream.poll_gather(&mut cx, GATHER_BYTES, &mut waited).is_ready());

            let mut passes = 0;
            while stream.poll_gather(&mut cx, 10, &mut waited).is_pending() {
                assert_eq!(woken(), passes, "woken before the pass ended");
                pass_end(100, busy);
                passes += 1;
                assert_eq!(woken(), passes, "the pass's end wakes the waiting writer");
                assert!(passes <= GATHER_PASSES as usize, "still waiting after {passes}");
            }
            assert_eq!(passes, GATHER_PASSES as usize);

            ring.set_poll(Some(Duration::from_millis(1)));
            pass_end(100, busy);
            assert!(stream.poll_gather(&mut cx, 10, &mut 0).is_ready(), "a polling ring");
            ring.set_poll(None);

            pass_end(100, busy);
            assert!(stream.poll_gather(&mut cx, 10, &mut 0).is_pending());
            let before = woken();
            let reaper = ring.spawn_reaper();
            drop(stream);
            ring.stop();
            reaper.await;
            assert!(woken() > before, "the reaper's passes or its end wake the writer");
        })
        .unwrap()
        .join()
        .unwrap();
    drop(peer.join());
}

#[test]
fn a_connection_past_the_early_send_mark_sends_without_waiting_for_a_pass() {
    // Proves the early send: with no reaper pass at all, writes below the mark stay queued,
    // and the write that reaches it submits the send (every byte reaches the peer).
    let Some((listener, addr)) = loopback() else { return };
    let peer = peer_reading(listener, 1100);
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .spawn(move || async move {
            use futures_lite::AsyncWriteExt;
            let ring = Ring::new().unwrap();
            ring.set_early_send(Some(1024));
            let mut stream = connect(&ring, addr);
            stream.write_all(&[7u8; 500]).await.unwrap();
            assert!(!ring.inner.borrow().slots[stream.slot].sending, "below the mark");
            stream.write_all(&[7u8; 600]).await.unwrap();
            assert!(ring.inner.borrow().slots[stream.slot].sending, "the mark reached");
            assert_eq!(got_with_no_pass(ring, stream, peer).await, vec![7u8; 1100]);
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn the_watch_grows_to_catch_a_peer_just_past_it_and_no_further() {
    // Proves the doze's watch rule: a completion that came 30 µs into a doze, after 40 µs
    // of work, makes the next watch 37.5 µs (then caught, it drifts down, never below
    // 20 µs); after only 5 µs of work (a small message now and then) the watch stays 20 µs;
    // a long sleep or none resets it; it never passes 300 µs, nor twice the work before.
    let us = |n: u64| n * 1_000;
    let spin = DOZE_SPIN.as_nanos() as u64;
    assert_eq!(next_watch(spin, us(40), Dozed::Woke(us(30))), 37_500);
    assert_eq!(next_watch(37_500, us(40), Dozed::Caught(us(25))), (37_500 * 7 + 31_250) / 8);
    assert_eq!(next_watch(spin, us(40), Dozed::Caught(us(1))), spin);
    assert_eq!(next_watch(spin, us(5), Dozed::Woke(us(30))), spin, "little work, short watch");
    assert_eq!(next_watch(us(60), us(500), Dozed::Woke(us(400))), spin, "a long sleep");
    assert_eq!(next_watch(us(60), us(500), Dozed::Idle), spin);
    assert_eq!(next_watch(spin, us(500), Dozed::Woke(us(250))), WATCH_MAX.as_nanos() as u64);
    assert_eq!(next_watch(spin, us(100), Dozed::Woke(us(190))), us(200), "twice the work");
}

/// Bytes [`byte_echo`] answers a byte 2 with: a big round (`BIG_TURN_BYTES`).
const BIG_ANSWER: usize = 20 << 10;

/// A thread that echoes every byte it reads on the one connection it accepts, `delay`
/// later (a byte 2 gets [`BIG_ANSWER`] bytes); its address, and its handle (it ends with
/// the connection).
fn byte_echo(delay: Duration) -> (std::net::SocketAddr, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let echo = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_nodelay(true).unwrap();
        let (big, mut b) = (vec![7u8; BIG_ANSWER], [0u8; 1]);
        while std::io::Read::read_exact(&mut s, &mut b).is_ok() {
            if !delay.is_zero() {
                std::thread::sleep(delay);
            }
            let answer = if b[0] == 2 { &big[..] } else { &b[..] };
            if std::io::Write::write_all(&mut s, answer).is_err() {
                break;
            }
        }
    });
    (addr, echo)
}

/// On a glommio executor: a dozing ring with its reaper running, and a stream on it
/// connected to `addr`.
fn dozing_stream(addr: std::net::SocketAddr) -> (Rc<Ring>, glommio::Task<()>, UringStream) {
    let ring = Ring::new().unwrap();
    ring.set_doze(true);
    let reaper = ring.spawn_reaper();
    let socket = std::net::TcpStream::connect(addr).unwrap();
    socket.set_nonblocking(true).unwrap();
    socket.set_nodelay(true).unwrap();
    let stream = ring.stream(socket.into());
    (ring, reaper, stream)
}

/// A watch phase: whether the ring may watch, ns of work before each send, and the byte
/// sent ([`byte_echo`]: 2 asks for a big round).
type Phase = (bool, u64, u8);

/// Round trips against a [`byte_echo`] answering after 300 µs, on a dozing ring of a glommio
/// executor (its thread pinned to `pin` first, if given): `trips` per phase; the ns the
/// thread watched in each phase.
fn watched_in_phases(pin: Option<Slot>, trips: u64, phases: Vec<Phase>) -> Vec<u64> {
    let (addr, echo) = byte_echo(Duration::from_micros(300));
    let watched = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .spawn(move || async move {
            use futures_lite::{AsyncReadExt, AsyncWriteExt};
            if let Some(slot) = pin {
                assert!(crate::placement::pin_current_thread(slot).is_none());
            }
            let (ring, reaper, mut stream) = dozing_stream(addr);
            let mut watched = Vec::new();
            let mut b = vec![0u8; BIG_ANSWER];
            for (on, work, ask) in phases {
                ring.set_watch(on);
                let before = crate::clock::thread_watch_ns();
                for _ in 0..trips {
                    let t = crate::clock::now_ns();
                    while crate::clock::now_ns() - t < work {
                        std::hint::spin_loop();
                    }
                    stream.write_all(&[ask]).await.unwrap();
                    let n = if ask == 2 { BIG_ANSWER } else { 1 };
                    stream.read_exact(&mut b[..n]).await.unwrap();
                }
                watched.push(crate::clock::thread_watch_ns() - before);
            }
            stream.close().await.unwrap();
            ring.stop();
            reaper.await;
            watched
        })
        .unwrap()
        .join()
        .unwrap();
    echo.join().unwrap();
    watched
}

#[test]
fn a_ring_told_not_to_watch_sleeps_at_once_unless_after_a_big_round() {
    // Proves `set_watch(false)` and its exception: against a peer that answers 300 µs after
    // each byte, a dozing ring that watches spends its 20 µs watch per round trip spinning,
    // counted as watch (at least half of it: a gap in which the thread did not run is not
    // counted, and the parallel tests take the core now and then); told not to, it counts
    // none and the round trips still complete, also when it works 80 µs before each send
    // (a long turn is no big round); told not to but answered 20 KiB at a time (a big
    // round: `BIG_TURN_BYTES`), it watches again.
    if supported().is_err() {
        return;
    }
    const TRIPS: u64 = 40;
    // Up to three tries for the watch to show (a core the parallel suite keeps taking may
    // leave one short); every try must watch nothing where told not to.
    let (mut watching, mut big_rounds) = (0, 0);
    for _ in 0..3 {
        let phases = vec![(true, 0, 1u8), (false, 0, 1), (false, 80_000, 1), (false, 0, 2)];
        let watched = watched_in_phases(None, TRIPS, phases);
        let [on, not, long_turns, big] = watched[..] else { unreachable!() };
        assert_eq!(not, 0, "told not to watch");
        assert_eq!(long_turns, 0, "told not to watch, long turns of work");
        (watching, big_rounds) = (on, big);
        if watching >= TRIPS * 10_000 && big_rounds >= TRIPS * 5_000 {
            break;
        }
    }
    assert!(watching >= TRIPS * 10_000, "watching: {watching} ns over {TRIPS} round trips");
    assert!(big_rounds >= TRIPS * 5_000, "big rounds: {big_rounds} ns over {TRIPS} trips");
}

#[test]
fn a_wait_of_a_few_microseconds_is_watched_through_not_slept() {
    // Proves `NEAR_WAIT`: on a dozing ring told not to watch, an open-loop pacer's sleeps of
    // 10 µs are watched through (counted as watch: the thread spun, not slept in the kernel,
    // whose timed waits this short cost more than they wait and wake late on a VM), while
    // sleeps of 300 µs watch nothing. Without it the 10 µs sleeps watched nothing either.
    if supported().is_err() {
        return;
    }
    let (addr, echo) = byte_echo(Duration::ZERO);
    let (near, far) = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .spawn(move || async move {
            use futures_lite::AsyncWriteExt;
            let (ring, reaper, mut stream) = dozing_stream(addr);
            ring.set_watch(false);
            let watched = |gap: u64, n: u32| {
                let before = crate::clock::thread_watch_ns();
                async move {
                    for _ in 0..n {
                        sleep_until(crate::clock::now_ns() + gap).await;
                    }
                    crate::clock::thread_watch_ns() - before
                }
            };
            // A core the parallel suite keeps taking may leave a round of them unwatched
            // (a gap in which the thread did not run is not watch): up to five rounds, the
            // best kept. Without the near wait every round watches nothing.
            let mut near = 0;
            for _ in 0..5 {
                near = near.max(watched(10_000, 500).await);
                if near >= 1_000_000 {
                    break;
                }
            }
            let far = watched(300_000, 20).await;
            stream.close().await.unwrap();
            ring.stop();
            reaper.await;
            (near, far)
        })
        .unwrap()
        .join()
        .unwrap();
    echo.join().unwrap();
    // 500 waits of 10 µs: 5 ms; at least a fifth of it counted in the best round.
    assert!(near >= 1_000_000, "10 µs sleeps: {near} ns watched in the best of five rounds");
    assert_eq!(far, 0, "300 µs sleeps, told not to watch");
}

#[test]
fn a_ring_on_a_core_shared_with_the_other_side_never_watches() {
    // Proves `share_cores`: a ring on a thread pinned to a core watches for the answers of
    // a peer that takes 300 µs (20 KiB answers: big rounds, which watch even where round
    // trips are long); once the core is named shared, a ring made there watches none of
    // them, and the round trips still complete. The last core is used, whose other tests'
    // rings only lose their watch.
    if supported().is_err() {
        return;
    }
    const TRIPS: u64 = 30;
    let core = crate::placement::Machine::detect().cores.last().copied().unwrap();
    // The best of up to three tries alone (the parallel suite may take the core).
    let mut alone = 0;
    for _ in 0..3 {
        alone = alone.max(watched_in_phases(Some(core), TRIPS, vec![(true, 0, 2)])[0]);
        if alone >= TRIPS * 5_000 {
            break;
        }
    }
    assert!(alone >= TRIPS * 5_000, "alone on its core: {alone} ns watched over {TRIPS} trips");
    crate::placement::share_cores(&[core.core]);
    let shared = watched_in_phases(Some(core), TRIPS, vec![(true, 0, 2)])[0];
    assert_eq!(shared, 0, "on a shared core");
}

#[test]
fn a_park_whose_bell_never_rang_is_counted_as_a_lost_wake_up() {
    // Proves the rescue count still sees a lost wake-up: with the bell switched off behind
    // the reaper's back while it is parked, bytes that arrive wake no one; the fallback
    // timer ends the park, the bytes are received, and the park is counted.
    let Some((listener, addr)) = loopback() else { return };
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .spawn(move || async move {
            use futures_lite::AsyncReadExt;
            let ring = Ring::new().unwrap();
            let reaper = ring.spawn_reaper();
            let mut stream = connect(&ring, addr);
            let (mut peer, _) = listener.accept().unwrap();
            // A first byte, so that the receive is armed (a read that arms it kicks).
            let mut b = [0u8; 1];
            std::io::Write::write_all(&mut peer, b"a").unwrap();
            stream.read_exact(&mut b).await.unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            loop {
                let parked = ring.parked.take();
                let is = parked.is_some();
                ring.parked.set(parked);
                if is {
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "the reaper never parked");
                glommio::timer::sleep(Duration::from_millis(1)).await;
            }
            ring.inner.borrow_mut().ring.completion().disable_eventfd();
            std::io::Write::write_all(&mut peer, b"x").unwrap();
            // Only the fallback timer can end the park now (the park began before the
            // write, so it ends within 20 ms of it, not 20 ms after it).
            stream.read_exact(&mut b).await.unwrap();
            // The reaper counts the park after a turn of glommio's loop (`rang_in_glommio`),
            // which may come after the reader had the byte.
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while ring.rescues.get() == 0 && std::time::Instant::now() < deadline {
                glommio::timer::sleep(Duration::from_millis(1)).await;
            }
            assert_eq!(ring.rescues.get(), 1);
            ring.stop();
            drop(stream);
            reaper.await;
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
#[ignore = "slow: 150 bytes timed to the fallback timer (3 s); run by make test-slow"]
fn bytes_that_come_as_the_fallback_timer_fires_are_not_lost_wake_ups() {
    // Proves the rescue count does not take late-but-rung work for lost wake-ups: bytes
    // arrive every FALLBACK plus 0-98 µs (swept), so that some land just as a park's
    // fallback timer fires, after it or with the bell ringing as the reaper wakes. Counting
    // every park the timer ended with work found, as before, gave 1, 1, 12 and 17 of 150;
    // counting only work already waiting with the bell silent gave 0-6 a run (34 in 30
    // runs, 2026-12-02/03). Those were bells that glommio's read had taken and not yet
    // reaped: with a turn of its loop before counting (`rang_in_glommio`) and a task-run
    // flag set before the park ignored, 0 in 86 runs, 16 of them two copies at once
    // beside a busy loop (12 in 12 such runs before). With task work no longer deferred
    // (2026-12-04) a byte that came as the thread woke shows as the task-run flag alone
    // (its task work runs at the thread's next system call, after the bell is off): 2 of
    // 150 counted, until the flag alone stopped counting.
    let Some((listener, addr)) = loopback() else { return };
    let n = 150u32;
    let writer = std::thread::spawn(move || {
        let (mut peer, _) = listener.accept().unwrap();
        for i in 0..n {
            std::thread::sleep(FALLBACK + Duration::from_micros(u64::from(i % 50) * 2));
            std::io::Write::write_all(&mut peer, &[1]).unwrap();
        }
    });
    let rescues = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .spawn(move || async move {
            use futures_lite::AsyncReadExt;
            let ring = Ring::new().unwrap();
            let reaper = ring.spawn_reaper();
            let mut stream = connect(&ring, addr);
            let mut b = [0u8; 1];
            for _ in 0..n {
                stream.read_exact(&mut b).await.unwrap();
            }
            ring.stop();
            drop(stream);
            reaper.await;
            ring.rescues.get()
        })
        .unwrap()
        .join()
        .unwrap();
    writer.join().unwrap();
    assert_eq!(rescues, 0, "arrivals at the timer counted as lost wake-ups, of {n}");
}

#[test]
fn a_dozing_ring_lets_timers_and_other_threads_through() {
    // Proves dozing starves nothing only glommio's loop sees: while a connection keeps the
    // reaper dozing (an echo ping-pong for 1.5 s), a glommio timer the ring knows nothing
    // of, a deadline it knows of, and a message from another thread all arrive within a
    // bound far below the run (without the turns, glommio's 100 ms preemption timer
    // was all that let them through: the glommio timer came 98 ms late). The bound, 60 ms,
    // leaves room for a thread the machine takes the core from while the parallel suite
    // runs (once seen: 35 ms late, on a 2-core VM).
    if supported().is_err() {
        return;
    }
    let (addr, echo) = byte_echo(Duration::ZERO);
    let (tx, rx) = flume::bounded::<u64>(1);
    let dozes = DOZES.load(Ordering::Relaxed);
    let late = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .spawn(move || async move {
            use futures_lite::{AsyncReadExt, AsyncWriteExt};
            let (ring, reaper, mut stream) = dozing_stream(addr);
            let end = crate::clock::now_ns() + 1_500_000_000;
            let pingpong = glommio::spawn_local(async move {
                let mut rounds = 0u64;
                let mut b = [0u8; 1];
                while crate::clock::now_ns() < end {
                    stream.write_all(b"x").await.unwrap();
                    stream.read_exact(&mut b).await.unwrap();
                    rounds += 1;
                }
                stream.close().await.unwrap();
                rounds
            });
            // Let the traffic start the dozing first.
            glommio::timer::sleep(Duration::from_millis(100)).await;
            let t = crate::clock::now_ns();
            glommio::timer::sleep(Duration::from_millis(2)).await;
            let timer_late = crate::clock::now_ns() - t - 2_000_000;
            let t = crate::clock::now_ns();
            sleep_until(t + 2_000_000).await;
            let deadline_late = crate::clock::now_ns() - t - 2_000_000;
            let sent = rx.recv_async().await.unwrap();
            let message_late = crate::clock::now_ns() - sent;
            let rounds = pingpong.await;
            ring.stop();
            reaper.await;
            (timer_late, deadline_late, message_late, rounds)
        })
        .unwrap();
    // Sent from this thread once the executor is well into its dozing.
    std::thread::sleep(Duration::from_millis(600));
    tx.send(crate::clock::now_ns()).unwrap();
    let (timer_late, deadline_late, message_late, rounds) = late.join().unwrap();
    echo.join().unwrap();
    assert!(rounds > 1_000, "the ping-pong ran ({rounds} rounds)");
    assert!(DOZES.load(Ordering::Relaxed) > dozes, "the reaper dozed");
    for (what, late) in
        [("glommio timer", timer_late), ("deadline", deadline_late), ("message", message_late)]
    {
        assert!(late < 60_000_000, "{what} late by {} ms", late / 1_000_000);
    }
}

/// Runs `f` on a fresh glommio executor with an idle ring whose reaper runs (dozing as
/// chosen), then stops the ring; what `f` returns.
fn with_idle_reaper<T: Send + 'static, F: std::future::Future<Output = T> + 'static>(
    doze: bool,
    f: impl FnOnce(Rc<Ring>) -> F + Send + 'static,
) -> T {
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .spawn(move || async move {
            let ring = Ring::new().unwrap();
            ring.set_doze(doze);
            let reaper = ring.spawn_reaper();
            let out = f(ring.clone()).await;
            ring.stop();
            reaper.await;
            out
        })
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn sleeps_are_ended_by_the_thread_s_running_reaper() {
    // Proves that while a reaper runs its loop (here between the round trips of a
    // ping-pong), it ends the thread's sleeps itself (an open-loop pacer's, thousands a
    // second) instead of glommio arming and cancelling a timer for each: of 200 sleeps of
    // 200 µs, most end by the reaper (a sleep begun while it parks in glommio, which a
    // loaded machine can make it do, ends by glommio's timer), and none before its time.
    if supported().is_err() {
        return;
    }
    let (addr, echo) = byte_echo(Duration::ZERO);
    let (early, (by_reaper, by_glommio), rounds) =
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .spawn(move || async move {
                use futures_lite::{AsyncReadExt, AsyncWriteExt};
                let (ring, reaper, mut stream) = dozing_stream(addr);
                let done = Rc::new(Cell::new(false));
                let pingpong = glommio::spawn_local({
                    let done = done.clone();
                    async move {
                        let mut rounds = 0u64;
                        let mut b = [0u8; 1];
                        while !done.get() {
                            stream.write_all(b"x").await.unwrap();
                            stream.read_exact(&mut b).await.unwrap();
                            rounds += 1;
                        }
                        stream.close().await.unwrap();
                        rounds
                    }
                });
                glommio::timer::sleep(Duration::from_millis(20)).await;
                let before = SLEPT.with(Cell::get);
                let mut early = 0;
                for _ in 0..200 {
                    let t = crate::clock::now_ns() + 200_000;
                    sleep_until(t).await;
                    if crate::clock::now_ns() < t {
                        early += 1;
                    }
                }
                let after = SLEPT.with(Cell::get);
                done.set(true);
                let rounds = pingpong.await;
                ring.stop();
                reaper.await;
                (early, (after.0 - before.0, after.1 - before.1), rounds)
            })
            .unwrap()
            .join()
            .unwrap();
    echo.join().unwrap();
    assert!(rounds > 100, "the ping-pong ran ({rounds} rounds)");
    assert_eq!(early, 0, "sleeps that ended before their time");
    assert_eq!(by_reaper + by_glommio, 200);
    assert!(by_reaper > 100, "{by_reaper} of 200 sleeps ended by the reaper");
}

#[test]
fn a_sleep_outlives_the_reaper_that_was_to_end_it() {
    // Proves a sleep the reaper was to end still ends, on time and not before, when the
    // reaper ends first (its ring stopped): it goes on with glommio's timer.
    if supported().is_err() {
        return;
    }
    let (late, (by_reaper, by_glommio)) =
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .spawn(|| async move {
                let ring = Ring::new().unwrap();
                ring.set_doze(true);
                let reaper = ring.spawn_reaper();
                glommio::timer::sleep(Duration::from_millis(2)).await;
                let before = SLEPT.with(Cell::get);
                let t = crate::clock::now_ns() + 30_000_000;
                let sleeper = glommio::spawn_local(sleep_until(t));
                glommio::timer::sleep(Duration::from_millis(5)).await;
                ring.stop();
                reaper.await;
                // Bounded: a sleep nothing ends would hang the test.
                let ended = futures_lite::future::or(
                    async {
                        sleeper.await;
                        true
                    },
                    async {
                        glommio::timer::sleep(Duration::from_secs(5)).await;
                        false
                    },
                )
                .await;
                assert!(ended, "the sleep never ended once its reaper was gone");
                let late = crate::clock::now_ns() as i64 - t as i64;
                let after = SLEPT.with(Cell::get);
                (late, (after.0 - before.0, after.1 - before.1))
            })
            .unwrap()
            .join()
            .unwrap();
    assert!(late >= 0, "the sleep ended {} µs early", -late / 1_000);
    assert_eq!((by_reaper, by_glommio), (0, 1), "it went on with glommio's timer");
}

#[test]
fn a_sleep_begun_while_the_reaper_parks_does_not_wait_for_its_park() {
    // Proves a sleep begun while the thread's reaper is parked in glommio (an idle ring that
    // does not doze parks for up to `FALLBACK`) is ended by glommio's timer, not left for
    // the park to end: begun 5 ms into an idle spell, a sleep of 2 ms ends by glommio.
    if supported().is_err() {
        return;
    }
    let (elapsed, (by_reaper, by_glommio)) = with_idle_reaper(false, |_ring| async move {
        glommio::timer::sleep(Duration::from_millis(5)).await;
        let before = SLEPT.with(Cell::get);
        let t0 = crate::clock::now_ns();
        sleep_until(t0 + 2_000_000).await;
        let elapsed = crate::clock::now_ns() - t0;
        let after = SLEPT.with(Cell::get);
        (elapsed, (after.0 - before.0, after.1 - before.1))
    });
    assert!(elapsed >= 2_000_000);
    assert_eq!((by_reaper, by_glommio), (0, 1));
}

#[test]
fn a_thread_too_slow_for_a_one_microsecond_timer_still_lets_glommio_s_loop_turn() {
    // Proves a reaper whose turn timers are all past due when first polled (a thread that runs
    // slow: under valgrind every park was such a one, 100 million in 15 minutes, and glommio's
    // loop never turned) still lets the loop turn, by longer timers: here each turn timer is
    // first polled 50 µs after it was made, and a sleep that only glommio's timer ends, due
    // while the reaper held the thread, ends soon after the reaper gets work, not when
    // glommio's preemption timer (100 ms) or nothing at all breaks the reaper's loop.
    if supported().is_err() {
        return;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let after_kick_ns = with_idle_reaper(false, |ring| async move {
            // Idle, the reaper parks in glommio: a sleep begun now is glommio's to end.
            glommio::timer::sleep(Duration::from_millis(2)).await;
            let t0 = crate::clock::now_ns();
            let sleeper = glommio::spawn_local(async move {
                sleep_until(t0 + 1_000_000).await;
                crate::clock::now_ns()
            });
            futures_lite::future::yield_now().await; // the sleeper begins its sleep
            SLOW_TURN_NS.with(|s| s.set(50_000));
            // The thread is held past the sleep's time; then the reaper gets work, and runs
            // before glommio's loop turns again.
            while crate::clock::now_ns() < t0 + 3_000_000 {
                std::hint::spin_loop();
            }
            let kicked = crate::clock::now_ns();
            ring.kick();
            let ended = sleeper.await;
            SLOW_TURN_NS.with(|s| s.set(0));
            ended.saturating_sub(kicked)
        });
        let _ = tx.send(after_kick_ns);
    });
    let after_kick_ns = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the sleep never ended: the reaper never let glommio's loop turn");
    assert!(after_kick_ns < 50_000_000, "the sleep ended {after_kick_ns} ns after the kick");
}

#[test]
fn a_turn_timer_says_whether_glommio_s_loop_turned_and_a_miss_doubles_the_next() {
    // Proves the turn timer tells a timer already due at its first poll (no turn) from one
    // that waited for glommio's loop, and that a miss doubles the next one up to the
    // fallback, while a turn brings it back to 1 µs.
    let turned = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .spawn(|| async {
            let missed = turn_timer(Duration::ZERO).await;
            let turned = turn_timer(Duration::from_micros(200)).await;
            (missed, turned)
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(turned, (false, true));
    let us = Duration::from_micros;
    assert_eq!(next_turn_min(us(1), false), us(2));
    assert_eq!(next_turn_min(us(64), false), us(128));
    assert_eq!(next_turn_min(FALLBACK, false), FALLBACK);
    assert_eq!(next_turn_min(us(64), true), us(1));
}
