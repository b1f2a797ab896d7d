//! The glommio shell around [`Group`]s: one pinned executor per agent core.
//!
//! Per core: connect and register (blocking, before the clock starts), report ready, wait for the
//! common schedule, then run a reader and a writer task per connection and, in open loop, a
//! pacer task; sample the thread's CPU time over the measured window; drain; report.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_lite::future::yield_now;
use futures_lite::io::{AsyncRead, AsyncWrite};
use glommio::{LocalExecutorBuilder, Placement};

use super::group::{Group, GroupConfig, GroupCounters, Schedule};
use super::{Outcome, Pacing, Protocol, RouterProbe, Scenario, Stop};
use crate::clock;
use crate::metrics::Latencies;
use crate::placement;
use crate::route::shell::write_all;
use crate::transport::{ws, Transport};
use crate::wire::{decode_frame, Control, ErrorCode, Limits, Message};

/// What one agent core hands back.
struct CoreResult {
    counters: GroupCounters,
    latencies: Latencies,
    cpu_busy: f64,
    in_flight: u64,
    drain_timed_out: bool,
    failures: Vec<String>,
}

pub(super) fn run(
    scenario: &Scenario,
    addr: SocketAddr,
    probe: Option<&dyn RouterProbe>,
    at_measure_start: Option<Box<dyn FnOnce() + Send>>,
) -> Outcome {
    let cores = scenario.agent_cores.len().max(1);
    let n = scenario.agents;
    let (ready_tx, ready_rx) = flume::unbounded::<Result<(), String>>();
    let (result_tx, result_rx) = flume::unbounded::<CoreResult>();
    let mut starts = Vec::new();
    let mut joins = Vec::new();
    let mut failures = Vec::new();
    for (i, slot) in scenario.agent_cores.iter().copied().enumerate() {
        let first = (i as u64 * u64::from(n) / cores as u64) as u32;
        let end = ((i as u64 + 1) * u64::from(n) / cores as u64) as u32;
        if end == first {
            continue;
        }
        let cfg = GroupConfig {
            topology: scenario.topology,
            agents_total: n,
            first,
            count: end - first,
            id_base: scenario.id_base,
            agents_per_conn: scenario.agents_per_conn.max(1),
            pacing: scenario.pacing,
            stop: scenario.stop,
            payload_bytes: scenario.payload_bytes,
            batch_max: scenario.batch_max.max(1),
            compression: scenario.compression,
            late_after_ns: scenario.late_after.as_nanos() as u64,
            priority: scenario.priority,
        };
        let (start_tx, start_rx) = flume::bounded::<Option<Schedule>>(1);
        let (ready, result, drain) = (ready_tx.clone(), result_tx.clone(), scenario.drain_timeout);
        let transport = scenario.transport;
        let json_scenario = (scenario.protocol == Protocol::Json).then(|| scenario.clone());
        let spawned = LocalExecutorBuilder::new(Placement::Unbound)
            .name(&format!("agents-{i}"))
            .io_memory(64 << 10)
            .spawn(move || async move {
                if let Some(w) = placement::pin_current_thread(slot) {
                    eprintln!("warning: {w}");
                }
                match json_scenario {
                    Some(sc) => {
                        let (first, count) = (cfg.first, cfg.count);
                        if let Some(r) =
                            super::json::core_main(sc, first, count, addr, start_rx, ready).await
                        {
                            let _ = result.send(CoreResult {
                                counters: r.counters,
                                latencies: r.latencies,
                                cpu_busy: r.cpu_busy,
                                in_flight: r.in_flight,
                                drain_timed_out: r.drain_timed_out,
                                failures: r.failures,
                            });
                        }
                    }
                    None => core_main(cfg, addr, transport, start_rx, ready, result, drain).await,
                }
            });
        match spawned {
            Ok(handle) => {
                starts.push(start_tx);
                joins.push(handle);
            }
            Err(e) => failures.push(format!("starting agent core {}: {e}", slot.core)),
        }
    }
    drop((ready_tx, result_tx));
    for _ in 0..starts.len() {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(e),
            Err(_) => failures.push("an agent core stopped during set-up".into()),
        }
    }
    if !failures.is_empty() {
        for s in &starts {
            let _ = s.send(None);
        }
        for j in joins {
            let _ = j.join();
        }
        return failed(failures);
    }

    let start_ns = clock::now_ns() + 20_000_000;
    let measure_ns = start_ns + scenario.warmup.as_nanos() as u64;
    let end_ns = match scenario.stop {
        Stop::Duration(d) => measure_ns + d.as_nanos() as u64,
        Stop::Count { .. } => u64::MAX,
    };
    let schedule = Schedule { start_ns, measure_ns, end_ns };
    for s in &starts {
        let _ = s.send(Some(schedule));
    }
    sleep_until(measure_ns);
    let router_before = probe.map(|p| (clock::now_ns(), p.cpu_ns()));
    if let Some(hook) = at_measure_start {
        hook();
    }
    let mut router_after = None;
    if end_ns != u64::MAX {
        sleep_until(end_ns);
        router_after = probe.map(|p| (clock::now_ns(), p.cpu_ns()));
    }
    let results: Vec<CoreResult> =
        (0..starts.len()).filter_map(|_| result_rx.recv().ok()).collect();
    if router_after.is_none() {
        router_after = probe.map(|p| (clock::now_ns(), p.cpu_ns()));
    }
    for j in joins {
        let _ = j.join();
    }

    let mut counters = GroupCounters::default();
    let mut latencies = Latencies::default();
    let mut outcome_failures = Vec::new();
    let (mut in_flight, mut timed_out) = (0, false);
    for r in &results {
        counters.merge(&r.counters);
        latencies.merge(&r.latencies);
        in_flight += r.in_flight;
        timed_out |= r.drain_timed_out;
        outcome_failures.extend(r.failures.iter().cloned());
    }
    if results.len() < starts.len() {
        outcome_failures.push("an agent core stopped without reporting".into());
    }
    let window_ns = if end_ns != u64::MAX {
        end_ns - measure_ns
    } else {
        counters.last_measured_delivery_ns.saturating_sub(measure_ns)
    };
    Outcome {
        agent_cpu: results.iter().map(|r| r.cpu_busy).collect(),
        router_cpu: router_cpu(router_before, router_after),
        counters,
        latencies,
        window_ns,
        in_flight_at_end: in_flight,
        drain_timed_out: timed_out,
        failures: outcome_failures,
    }
}

/// When the router was probed, and its threads' CPU time then.
type Probe = Option<(u64, Vec<u64>)>;

fn router_cpu(before: Probe, after: Probe) -> Option<Vec<f64>> {
    let ((t0, c0), (t1, c1)) = (before?, after?);
    if c0.is_empty() || c0.len() != c1.len() || c1.iter().all(|&c| c == 0) {
        return None;
    }
    let wall = t1.saturating_sub(t0).max(1) as f64;
    Some(c0.iter().zip(&c1).map(|(a, b)| b.saturating_sub(*a) as f64 / wall).collect())
}

fn failed(failures: Vec<String>) -> Outcome {
    Outcome {
        counters: GroupCounters::default(),
        latencies: Latencies::default(),
        window_ns: 0,
        agent_cpu: Vec::new(),
        router_cpu: None,
        in_flight_at_end: 0,
        drain_timed_out: false,
        failures,
    }
}

fn sleep_until(t_ns: u64) {
    let now = clock::now_ns();
    if t_ns > now {
        std::thread::sleep(Duration::from_nanos(t_ns - now));
    }
}

async fn sleep_until_async(t_ns: u64) {
    let now = clock::now_ns();
    if t_ns > now {
        glommio::timer::sleep(Duration::from_nanos(t_ns - now)).await;
    } else {
        yield_now().await;
    }
}

/// A connection of an agent group: TCP, or WebSocket binary messages.
enum AgentStream {
    Tcp(glommio::net::TcpStream),
    Ws(Box<ws::WsBytes<glommio::net::TcpStream>>),
}

impl AsyncRead for AgentStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            AgentStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            AgentStream::Ws(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for AgentStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            AgentStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            AgentStream::Ws(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            AgentStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            AgentStream::Ws(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            AgentStream::Tcp(s) => Pin::new(s).poll_close(cx),
            AgentStream::Ws(s) => Pin::new(s.as_mut()).poll_close(cx),
        }
    }
}

/// Connects and registers every connection of a group (set-up, before the clock starts).
/// Returns each stream with a second descriptor of its socket (to shut it down at the end).
async fn connect_and_register(
    group: &mut Group,
    addr: SocketAddr,
    transport: Transport,
) -> Result<Vec<(AgentStream, TcpStream)>, String> {
    let mut conns = Vec::with_capacity(group.connections());
    for c in 0..group.connections() {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        let setup = |e: io::Error| format!("setting up a connection: {e}");
        s.set_nodelay(true).map_err(setup)?;
        let control = s.try_clone().map_err(setup)?;
        s.set_nonblocking(true).map_err(setup)?;
        let tcp = glommio::net::TcpStream::from(socket2::Socket::from(s));
        let mut stream = match transport {
            Transport::Tcp => AgentStream::Tcp(tcp),
            Transport::Ws => {
                let ws = ws::connect(tcp, addr, ws::SUBPROTOCOL_NATIVE)
                    .await
                    .map_err(|e| format!("WebSocket handshake with {addr}: {e}"))?;
                AgentStream::Ws(Box::new(ws::WsBytes::new(ws, None)))
            }
        };
        let frame = group.register_frame(c, 1);
        let stream_cell = RefCell::new(stream);
        write_all(&stream_cell, &frame).await.map_err(|e| format!("registering agents: {e}"))?;
        poll_fn(|cx| Pin::new(&mut *stream_cell.borrow_mut()).poll_flush(cx))
            .await
            .map_err(|e| format!("registering agents: {e}"))?;
        group.output_done(frame);
        stream = stream_cell.into_inner();
        conns.push((stream, control));
    }
    for (c, (stream, _)) in conns.iter_mut().enumerate() {
        let expected = group.agent_ids(c).count();
        await_acks(stream, expected).await?;
    }
    Ok(conns)
}

async fn await_acks(s: &mut AgentStream, expected: usize) -> Result<(), String> {
    let (mut buf, mut inflate, mut acks) = (Vec::new(), Vec::new(), 0);
    let mut chunk = vec![0u8; 64 << 10];
    let deadline = clock::now_ns() + 30_000_000_000;
    while acks < expected {
        let read = futures_lite::future::or(
            async { Some(poll_fn(|cx| Pin::new(&mut *s).poll_read(cx, &mut chunk)).await) },
            async {
                glommio::timer::sleep(Duration::from_nanos(
                    deadline.saturating_sub(clock::now_ns()),
                ))
                .await;
                None
            },
        )
        .await;
        let n = match read {
            None => return Err("no answer to registration within 30 s".into()),
            Some(Err(e)) => return Err(format!("waiting for registration acks: {e}")),
            Some(Ok(0)) => {
                return Err("the router closed the connection during registration".into())
            }
            Some(Ok(n)) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut used = 0;
        while let Some((len, batch)) = decode_frame(&buf[used..], &Limits::DEFAULT, &mut inflate)
            .map_err(|e| format!("undecodable answer to registration: {e}"))?
        {
            for item in batch {
                match item.map_err(|e| e.to_string())?.0 {
                    Message::Control(Control::Ack(_)) => acks += 1,
                    Message::Control(Control::Error(e)) => {
                        let code = ErrorCode::from_code(e.code).map_or("unknown", ErrorCode::name);
                        return Err(format!(
                            "registering agent {}: {code} ({})",
                            e.agent_id.0, e.detail
                        ));
                    }
                    _ => {}
                }
            }
            used += len;
        }
        buf.drain(..used);
    }
    Ok(())
}

async fn core_main(
    cfg: GroupConfig,
    addr: SocketAddr,
    transport: Transport,
    start: flume::Receiver<Option<Schedule>>,
    ready: flume::Sender<Result<(), String>>,
    result: flume::Sender<CoreResult>,
    drain_timeout: Duration,
) {
    let placeholder = Schedule { start_ns: u64::MAX, measure_ns: u64::MAX, end_ns: u64::MAX };
    let open = matches!(cfg.pacing, Pacing::Open { .. });
    let mut group = Group::new(cfg, placeholder);
    let streams = match connect_and_register(&mut group, addr, transport).await {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    let Ok(Some(schedule)) = start.recv_async().await else { return };
    group.set_schedule(schedule);
    let group = Rc::new(RefCell::new(group));
    let failures = Rc::new(RefCell::new(Vec::<String>::new()));
    let mut controls = Vec::new();
    for (c, (stream, control)) in streams.into_iter().enumerate() {
        let stream = Rc::new(RefCell::new(stream));
        controls.push(control);
        glommio::spawn_local(reader(group.clone(), stream.clone(), c, failures.clone())).detach();
        glommio::spawn_local(writer(group.clone(), stream, c)).detach();
    }
    sleep_until_async(schedule.start_ns).await;
    if open {
        glommio::spawn_local(pacer(group.clone())).detach();
    } else {
        group.borrow_mut().start(clock::now_ns());
    }

    sleep_until_async(schedule.measure_ns).await;
    let cpu0 = clock::thread_cpu_ns();
    let (mut cpu_busy, mut finished_at, mut last_progress) = (None, None, (clock::now_ns(), 0u64));
    let mut timed_out = false;
    loop {
        glommio::timer::sleep(Duration::from_millis(1)).await;
        let now = clock::now_ns();
        let mut g = group.borrow_mut();
        g.refresh(now);
        let progress = g.counters.replies_delivered + g.counters.request_error_total();
        if progress != last_progress.1 {
            last_progress = (now, progress);
        }
        if g.finished() && finished_at.is_none() {
            finished_at = Some(now);
            let wall = now.saturating_sub(schedule.measure_ns).max(1);
            cpu_busy = Some(clock::thread_cpu_ns().saturating_sub(cpu0) as f64 / wall as f64);
        }
        if g.finished() && g.in_flight() == 0 {
            break;
        }
        // Drain timeout after sending stopped; a stall timeout (no answer at all) before.
        let since = finished_at.unwrap_or(last_progress.0).max(last_progress.0);
        if now.saturating_sub(since) > drain_timeout.as_nanos() as u64 {
            timed_out = true;
            if !g.finished() {
                failures.borrow_mut().push(format!(
                    "no reply or error for {:.1} s with requests in flight: the router stalled",
                    drain_timeout.as_secs_f64()
                ));
            }
            break;
        }
        if !failures.borrow().is_empty() {
            break;
        }
    }
    let (counters, latencies, in_flight) = {
        let mut g = group.borrow_mut();
        g.stop();
        (g.counters.clone(), g.latencies.clone(), g.in_flight())
    };
    for c in &controls {
        let _ = c.shutdown(Shutdown::Both);
    }
    // Tasks hold the group; wait (bounded) for them to see the closed sockets and finish.
    let deadline = clock::now_ns() + 2_000_000_000;
    while Rc::strong_count(&group) > 1 && clock::now_ns() < deadline {
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
    let failures = failures.borrow().clone();
    let _ = result.send(CoreResult {
        counters,
        latencies,
        cpu_busy: cpu_busy.unwrap_or(0.0),
        in_flight,
        drain_timed_out: timed_out,
        failures,
    });
}

async fn reader(
    group: Rc<RefCell<Group>>,
    stream: Rc<RefCell<AgentStream>>,
    c: usize,
    failures: Rc<RefCell<Vec<String>>>,
) {
    let mut buf = vec![0u8; 64 << 10];
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        let read =
            poll_fn(|cx| Pin::new(&mut *stream.borrow_mut()).poll_read(cx, &mut buf[filled..]))
                .await;
        let n = match read {
            Ok(n) if n > 0 => n,
            _ => {
                if !group.borrow().is_stopped() {
                    failures.borrow_mut().push("the router closed an agent connection".into());
                }
                return;
            }
        };
        filled += n;
        let now = clock::now_ns();
        let used = group.borrow_mut().on_input(c, &buf[..filled], now);
        match used {
            Ok(used) => {
                buf.copy_within(used..filled, 0);
                filled -= used;
            }
            Err(e) => {
                failures.borrow_mut().push(format!("undecodable frame from the router: {e}"));
                return;
            }
        }
        yield_now().await;
    }
}

async fn writer(group: Rc<RefCell<Group>>, stream: Rc<RefCell<AgentStream>>, c: usize) {
    while let Some(frame) = poll_fn(|cx| group.borrow_mut().poll_output(c, cx)).await {
        let written = match write_all(&stream, &frame).await {
            Ok(()) => poll_fn(|cx| Pin::new(&mut *stream.borrow_mut()).poll_flush(cx)).await,
            Err(e) => Err(e),
        };
        group.borrow_mut().output_done(frame);
        if written.is_err() {
            return;
        }
    }
}

async fn pacer(group: Rc<RefCell<Group>>) {
    loop {
        let next = {
            let mut g = group.borrow_mut();
            if g.is_stopped() {
                return;
            }
            g.tick(clock::now_ns())
        };
        match next {
            Some(t) => sleep_until_async(t).await,
            None => return,
        }
    }
}
