//! The driver's tests: a run's shape, its ends, a core that dies.

use super::*;

#[test]
fn another_core_s_messages_end_the_doze_not_a_park() {
    // Proves an agent core of a coordination workload dozes in its socket ring between
    // other cores' messages instead of parking in glommio (a process-wide `membarrier`
    // per park here: a third of the agent core in `delegation`). Each message, sent from
    // another thread and followed by the doorbell, ends the doze and the side task runs at
    // once; it answers over a socket of the ring, as an agent core's work does. Without
    // the doorbell's drain the task's wake waited in glommio's queue until the doze ended
    // empty and the ring parked: one park per message.
    if uring::supported().is_err() {
        return;
    }
    const N: u32 = 300;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = flume::bounded::<Completed>(4);
    let bell = uring::Doorbell::new().unwrap();
    let ringer = bell.clone();
    let other = std::thread::spawn(move || {
        use std::io::Read;
        let mut answers = std::net::TcpStream::connect(addr).unwrap();
        answers.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        for i in 0..N {
            tx.send(Completed { local: i, slot: 0, seq: i }).unwrap();
            ringer.ring();
            let mut b = [0u8; 1];
            answers.read_exact(&mut b).unwrap();
            assert_eq!(b[0], i as u8, "answered in order");
        }
    });
    let (socket, _) = listener.accept().unwrap();
    socket.set_nonblocking(true).unwrap();
    let parks = LocalExecutorBuilder::new(Placement::Unbound)
        .spawn(move || async move {
            use futures_lite::AsyncWriteExt;
            let ring = uring::Ring::new().unwrap();
            let waker = SideWaker::default();
            ring.set_doze(true);
            ring.set_peers(bell, side_drain(rx.clone(), waker.clone()));
            let reaper = ring.spawn_reaper();
            let mut answers = ring.stream(socket.into());
            let mut before = 0;
            for i in 0..N {
                let until = clock::now_ns() + 10_000_000_000;
                let m = side_wait(&rx, until, &waker).await.unwrap();
                assert_eq!(m.local, i);
                answers.write_all(&[i as u8]).await.unwrap();
                answers.flush().await.unwrap();
                if i == 0 {
                    // The ring was idle before the first message, and parked.
                    before = ring.parks();
                }
            }
            let parks = ring.parks() - before;
            drop(answers);
            ring.stop();
            reaper.await;
            parks
        })
        .unwrap()
        .join()
        .unwrap();
    other.join().unwrap();
    assert!(parks < u64::from(N) / 4, "{parks} parks for {N} messages");
}

#[test]
fn input_is_handed_over_a_part_at_a_time_in_whole_messages() {
    // Messages of `size` bytes: the handler takes the whole ones it was offered.
    let whole = |size: usize| move |b: &[u8]| Ok::<usize, ()>(b.len() / size * size);
    let all = vec![0u8; 300_000];
    assert_eq!(in_parts(&all, 128 << 10, whole(1000)), (131_072, Ok(131_000)), "a part");
    assert_eq!(in_parts(&all[..100_000], 128 << 10, whole(1000)), (100_000, Ok(100_000)));
    // A message bigger than a part: offered all at once.
    assert_eq!(in_parts(&all, 128 << 10, whole(200_000)), (300_000, Ok(200_000)));
    assert_eq!(in_parts(&all, usize::MAX, whole(1000)), (300_000, Ok(300_000)), "no parts");
    // An error in the first part is the answer.
    assert_eq!(in_parts(&all, 1000, |_| Err::<usize, ()>(())), (1000, Err(())));
}

#[test]
fn a_core_whose_thread_panics_says_so_instead_of_leaving_the_run_waiting() {
    // Proves the last word: a panic in any task of an agent core's executor ends its
    // thread with the core's state (its senders too) never dropped; the coordinator still
    // hears that the core died, and why, on both channels it may be waiting on.
    let (ready_tx, ready_rx) = flume::unbounded();
    let (result_tx, result_rx) = flume::bounded(4);
    let core = LocalExecutorBuilder::new(Placement::Unbound)
        .spawn(move || async move {
            LastWord::arm(3, &ready_tx, &result_tx);
            let state = Rc::new(RefCell::new(Some((ready_tx, result_tx))));
            let cycle = state.clone();
            glommio::spawn_local(async move {
                let _held = cycle;
                panic!("a bug in a task");
            })
            .detach();
            futures_lite::future::pending::<()>().await;
            drop(state);
        })
        .unwrap();
    match result_rx.recv_timeout(Duration::from_secs(20)) {
        Ok(CoreMsg::Died(3, why)) => {
            assert!(why.starts_with("agent core 3 stopped: panicked at "), "{why}");
            assert!(why.ends_with(": a bug in a task"), "{why}");
        }
        Ok(_) => panic!("the core sent something else"),
        Err(e) => panic!("the core's death went unheard: {e}"),
    }
    assert!(matches!(ready_rx.try_recv(), Ok(Err(why)) if why.contains("a bug in a task")));
    assert!(core.join().is_err());
}

#[test]
fn a_core_that_ends_as_it_should_says_nothing_more() {
    // Proves the last word is disarmed when the core ends normally.
    let (ready_tx, ready_rx) = flume::unbounded();
    let (result_tx, result_rx) = flume::bounded::<CoreMsg>(4);
    let core = LocalExecutorBuilder::new(Placement::Unbound)
        .spawn(move || async move {
            LastWord::arm(1, &ready_tx, &result_tx);
            LastWord::disarm();
        })
        .unwrap();
    core.join().unwrap();
    assert!(ready_rx.try_recv().is_err());
    assert!(result_rx.try_recv().is_err());
}

#[test]
fn a_core_that_stands_still_is_woken_and_the_run_says_so() {
    // A thread with a heartbeat that sleeps in a system call nothing else would end (a
    // read on a pipe nobody writes to), as a core does when its wake-up is lost. Once
    // awake it beats again and stops.
    let (rx, _tx) = nix::unistd::pipe().unwrap();
    let beat = Beat::new();
    let b = beat.clone();
    let (started_tx, started_rx) = flume::bounded(1);
    let t = std::thread::spawn(move || {
        b.start();
        let _ = started_tx.send(());
        let mut buf = [0u8; 1];
        let got = nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(&rx), &mut buf);
        b.beat();
        got
    });
    started_rx.recv().unwrap();
    let beats = vec![(7, beat.clone())];
    let mut watch = CoreWatch::new(1, Duration::from_millis(30));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !t.is_finished() {
        assert!(std::time::Instant::now() < deadline, "the stuck thread was never woken");
        watch.look(&beats, "router");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(t.join().unwrap(), Err(nix::errno::Errno::EINTR));
    assert!(beat.kicks() >= 1);
    watch.look(&beats, "router"); // its fresh beat: it turns again
    let said = watch.finish(&beats, "router");
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(said[0].starts_with("agent core 0 (core 7) stood still for"), "{}", said[0]);
    assert!(said[0].contains("the generator, not the router"), "{}", said[0]);

    // A core that keeps beating is never kicked, and nothing is said.
    let steady = Beat::new();
    steady.start();
    let beats = vec![(0, steady.clone())];
    let mut watch = CoreWatch::new(1, Duration::from_secs(60));
    watch.look(&beats, "router");
    assert_eq!(steady.kicks(), 0);
    assert!(watch.finish(&beats, "router").is_empty());

    // A core still standing still when the run ends is said too, with its core.
    let mut watch = CoreWatch::new(1, Duration::from_secs(60));
    watch.since[0] = Some((clock::now_ns(), false));
    let said = watch.finish(&[(5, steady.clone())], "router");
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(said[0].starts_with("agent core 0 (core 5) stood still for"), "{}", said[0]);
    assert!(said[0].contains("until the run ended"), "{}", said[0]);
}

#[test]
fn a_core_that_stands_still_only_while_closing_is_woken_but_not_a_failure() {
    // Proves the watch still wakes a core that stands still once its figures are taken
    // (closing 16,000 connections held one such loop 1.2 s), without failing the run for it;
    // and a stall that began before the core was closing still counts.
    let beats = |beat: &Arc<Beat>| vec![(3, beat.clone())];
    let limit = Duration::from_millis(20);
    let closing = Beat::new();
    closing.start();
    closing.closing();
    let mut watch = CoreWatch::new(1, limit);
    std::thread::sleep(limit * 2);
    watch.look(&beats(&closing), "router");
    assert!(closing.kicks() >= 1, "woken");
    closing.beat();
    watch.look(&beats(&closing), "router");
    assert!(watch.finish(&beats(&closing), "router").is_empty());

    let before = Beat::new();
    before.start();
    std::thread::sleep(limit * 2);
    before.closing();
    let mut watch = CoreWatch::new(1, limit);
    watch.look(&beats(&before), "router");
    let said = watch.finish(&beats(&before), "router");
    assert_eq!(said.len(), 1, "{said:?}");
}

#[test]
fn the_cores_split_the_connections_so_only_the_last_is_short() {
    // Proves each agent core runs whole connections: 105 agents at 10 a connection on two
    // cores open 11 (50 and 55 agents), where the even split of agents opened 6 on each; one
    // agent a connection splits the agents evenly, as before; a worker's slice is split alike.
    let shape = |base, mine, cores, per| {
        let spans = split(base, mine, cores, per);
        let n = opened(&spans);
        (spans.iter().map(|s| (s.first, s.count)).collect::<Vec<_>>(), n)
    };
    assert_eq!(shape(0, 105, 2, 10), (vec![(0, 50), (50, 55)], 11));
    assert_eq!(shape(0, 105, 2, 1), (vec![(0, 52), (52, 53)], 105));
    // More cores than connections: the spare cores run nothing.
    assert_eq!(shape(0, 10, 4, 10), (vec![(0, 0), (0, 0), (0, 0), (0, 10)], 1));
    assert_eq!(shape(100, 25, 4, 10), (vec![(100, 0), (100, 10), (110, 10), (120, 5)], 3));
}

#[test]
fn a_set_number_of_connections_opens_exactly_and_seats_the_clients_evenly() {
    // Proves `http --connections N` opens N (at most one per client), however the clients
    // divide: 100 clients on 64 connections open 64 of one or two clients (where two to a
    // connection opened 50), 16 on 5 open 5 over two cores (where 4 to a connection opened
    // 4); each core's clients sit on its own connections, contiguous, sizes one apart.
    let check = |base: u32, mine: u32, cores: usize, n: u32| {
        let spans = spread(base, mine, cores, n);
        assert_eq!(opened(&spans), n.min(mine), "{spans:?}");
        let mut next = base;
        let mut sizes = Vec::new();
        for s in &spans {
            assert_eq!(s.first, next, "{spans:?}");
            next += s.count;
            for c in 0..s.conns() as usize {
                let seats = s.seats.agents(s.count, c);
                assert!(!seats.is_empty(), "{spans:?}: connection {c} empty");
                for local in seats.clone() {
                    assert_eq!(s.seats.conn_of(s.count, local as usize), c, "{spans:?}");
                }
                sizes.push(seats.len());
            }
            let seated: usize =
                (0..s.conns() as usize).map(|c| s.seats.agents(s.count, c).len()).sum();
            assert_eq!(seated, s.count as usize, "{spans:?}");
        }
        assert_eq!(next, base + mine, "{spans:?}");
        let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
        assert!(hi - lo <= 1, "{sizes:?}");
        spans
    };
    let spans = check(0, 100, 1, 64);
    assert_eq!(spans[0].seats, Seats::Even(64));
    check(0, 16, 2, 5);
    check(0, 10, 2, 5);
    check(7, 1000, 3, 7);
    check(0, 3, 1, 50);
    // More cores than connections: the spare cores run nothing.
    let spans = check(0, 10, 4, 2);
    assert_eq!(spans.iter().filter(|s| s.count > 0).count(), 2, "{spans:?}");
    for (mine, n) in [(1, 1), (2, 1), (5, 3), (97, 13), (64, 64)] {
        check(0, mine, 1, n);
    }
}

#[test]
fn a_run_whose_generator_stood_still_is_worth_making_again_in_other_ids() {
    // Proves the rule behind a run made again (`Outcome::spoiled_by_generator`): an agent core
    // that stood still spoils the run unless the run never started or was interrupted; a run
    // that failed for any other reason is not made again. The second attempt takes a block of
    // agent ids half the blocks away, a valid block, never its first attempt's.
    let mut o = crate::loadgen::Outcome::failed_setup(Vec::new());
    o.setup_failed = false;
    assert!(!o.spoiled_by_generator(), "nothing stood still");
    o.failures = vec!["the router closed 3 of 4 agent connections".into()];
    assert!(!o.spoiled_by_generator(), "the target's failure is the run's answer");
    o.stalls = vec!["agent core 0 (core 1) stood still for 1.2 s".into()];
    o.failures.push(o.stalls[0].clone());
    assert!(o.spoiled_by_generator());
    o.interrupted = true;
    assert!(!o.spoiled_by_generator(), "Ctrl-C ends the command, not the attempt");
    o.interrupted = false;
    o.setup_failed = true;
    assert!(!o.spoiled_by_generator(), "a run that never started measured nothing");
    use crate::loadgen::{fresh_id_base, ID_BLOCKS};
    for block in [0, 1, 999, 1000, ID_BLOCKS - 1] {
        let id_base = 1 + block * (1 << 21);
        let again = fresh_id_base(id_base);
        assert_ne!(again, id_base);
        assert_eq!((again - 1) % (1 << 21), 0, "{again}");
        assert!((again - 1) >> 21 < ID_BLOCKS, "{again}");
        let apart = ((again - 1) >> 21).abs_diff(block);
        assert_eq!(apart, ID_BLOCKS / 2, "{block} → {again}");
    }
}
