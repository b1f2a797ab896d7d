//! Virtual agents speaking the seed system's JSON protocol (`--protocol json`), to measure any
//! router that speaks it — the seed's own, or ours — with the same topologies and figures.
//!
//! One WebSocket connection per agent (subprotocol `a2a`). A request is a `direct` whose
//! `message_type` is `request` and whose payload carries the intended and actual send times; the
//! receiver answers with a `direct` of type `reply` echoing the payload. Every send gets exactly
//! one reply from the router, in order (an ack, or an error counted by its name); deliveries are
//! the pushes the agents receive — that is what is measured, not the acks.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::net::{SocketAddr, TcpStream};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use async_tungstenite::WebSocketStream;
use futures_util::{Sink, Stream};
use serde_json::{json, Value};

use super::group::{Agent, Booked, GroupCounters, Schedule};
use super::{Pacing, Scenario, Stop};
use crate::clock;
use crate::metrics::Latencies;
use crate::transport::ws::{self, Message as WsMessage};

type Ws = Rc<RefCell<WebSocketStream<glommio::net::TcpStream>>>;

/// What one sent message waits for from the router.
#[derive(Debug, Clone, Copy)]
enum Sent {
    Request,
    Reply,
    Register,
}

/// One agent's state.
#[derive(Debug, Default)]
struct AgentState {
    /// Pacing state, the same as a frame-speaking agent's.
    pace: Agent,
    /// What the router's next replies answer, in order.
    awaiting: VecDeque<Sent>,
    /// JSON texts to write.
    out: VecDeque<String>,
    writer: Option<Waker>,
    registered: bool,
}

/// One core's JSON agents and its measurements.
pub(super) struct JsonGroup {
    sc: Scenario,
    first: u32,
    schedule: Schedule,
    agents: Vec<AgentState>,
    pub(super) counters: GroupCounters,
    pub(super) latencies: Latencies,
    now_ns: u64,
    slot_ns: f64,
    in_flight: u64,
    agents_done: u32,
    /// The run is over: writers finish.
    stopped: bool,
}

/// What one core's JSON agents measured.
pub(super) struct JsonResult {
    pub counters: GroupCounters,
    pub latencies: Latencies,
    pub cpu_busy: f64,
    pub in_flight: u64,
    pub drain_timed_out: bool,
    pub failures: Vec<String>,
}

fn name(sc: &Scenario, global: u32) -> String {
    format!("bench-{}-{global}", sc.id_base)
}

impl JsonGroup {
    pub(super) fn new(sc: Scenario, first: u32, count: u32) -> JsonGroup {
        let slot_ns = match sc.pacing {
            Pacing::Open { rate, .. } => 1e9 / rate,
            Pacing::Closed { .. } => 0.0,
        };
        JsonGroup {
            agents: (0..count).map(|_| AgentState::default()).collect(),
            sc,
            first,
            schedule: Schedule { start_ns: u64::MAX, measure_ns: u64::MAX, end_ns: u64::MAX },
            counters: GroupCounters::default(),
            latencies: Latencies::default(),
            now_ns: 0,
            slot_ns,
            in_flight: 0,
            agents_done: 0,
            stopped: false,
        }
    }

    fn window(&self) -> u32 {
        match self.sc.pacing {
            Pacing::Closed { window } | Pacing::Open { window, .. } => window.max(1),
        }
    }

    fn send(&mut self, local: usize, text: String, waits: Sent) {
        let a = &mut self.agents[local];
        a.out.push_back(text);
        a.awaiting.push_back(waits);
        if let Some(w) = a.writer.take() {
            w.wake();
        }
    }

    fn intended_ns(&self, local: usize, m: u64) -> u64 {
        let slot = m * u64::from(self.sc.agents) + u64::from(self.first) + local as u64;
        self.schedule.start_ns + (slot as f64 * self.slot_ns) as u64
    }

    fn may_send_more(&self, local: usize) -> bool {
        match self.sc.stop {
            Stop::Count { per_agent } => self.agents[local].pace.measured < per_agent,
            Stop::Duration(_) => true,
        }
    }

    pub(super) fn finished(&self) -> bool {
        match self.sc.stop {
            Stop::Duration(_) => self.now_ns >= self.schedule.end_ns,
            Stop::Count { .. } => self.agents_done >= self.agents.len() as u32,
        }
    }

    /// Sends what agent `local` may send now.
    fn try_send(&mut self, local: usize) {
        let n = self.sc.agents;
        let global = self.first + local as u32;
        let degree = self.sc.topology.degree(global, n);
        while degree > 0
            && self.agents[local].pace.in_flight < self.window()
            && self.may_send_more(local)
        {
            let intended = match self.sc.pacing {
                Pacing::Closed { .. } if self.now_ns >= self.schedule.end_ns => return,
                Pacing::Closed { .. } => self.now_ns,
                Pacing::Open { .. } if self.agents[local].pace.owed == 0 => return,
                Pacing::Open { .. } => self.intended_ns(local, self.agents[local].pace.sent),
            };
            let measured = intended >= self.schedule.measure_ns;
            let late = self.now_ns.saturating_sub(intended) > self.sc.late_after.as_nanos() as u64;
            let Booked { to, agent_done, .. } = self.agents[local].pace.book_request(
                self.sc.topology,
                (global, n, degree),
                measured,
                late,
                self.sc.stop,
                &mut self.counters,
            );
            self.agents_done += u32::from(agent_done);
            self.in_flight += 1;
            let text = json!({"type": "direct", "from_agent": name(&self.sc, global), "to_agent": name(&self.sc, to),
                "message_type": "request",
                "payload": {"t0": intended, "t1": self.now_ns, "m": measured, "pad": "x".repeat(self.sc.payload_bytes.saturating_sub(16))}})
            .to_string();
            self.send(local, text, Sent::Request);
        }
    }

    /// Open loop: everything due by now becomes owed; returns the next due time.
    fn tick(&mut self, now_ns: u64) -> Option<u64> {
        self.now_ns = now_ns;
        let Pacing::Open { .. } = self.sc.pacing else { return None };
        let mut next = u64::MAX;
        for local in 0..self.agents.len() {
            loop {
                let a = &self.agents[local];
                let due = self.intended_ns(local, a.pace.sent + a.pace.owed);
                if due > now_ns || due >= self.schedule.end_ns || !self.may_send_more(local) {
                    next = next.min(due);
                    break;
                }
                self.agents[local].pace.owed += 1;
            }
            self.try_send(local);
        }
        (!self.finished() && next < self.schedule.end_ns).then_some(next)
    }

    fn in_window(&self) -> bool {
        self.now_ns >= self.schedule.measure_ns && self.now_ns < self.schedule.end_ns
    }

    /// Handles one text from the router on agent `local`'s connection.
    fn on_text(&mut self, local: usize, text: &str, now_ns: u64) {
        self.now_ns = now_ns;
        let Ok(m) = serde_json::from_str::<Value>(text) else {
            self.counters.unexpected += 1;
            return;
        };
        match m["type"].as_str() {
            Some("ack") | Some("error") => self.on_reply(local, &m),
            Some("direct") => self.on_delivery(local, &m),
            _ => {} // broadcasts and other pushes are not part of the measured traffic
        }
    }

    fn on_reply(&mut self, local: usize, m: &Value) {
        let Some(waits) = self.agents[local].awaiting.pop_front() else {
            self.counters.unexpected += 1;
            return;
        };
        let error =
            (m["type"] == "error").then(|| m["error"].as_str().unwrap_or("error").to_string());
        match (waits, error) {
            (Sent::Register, None) => self.agents[local].registered = true,
            (Sent::Register, Some(e)) => {
                add_named(&mut self.counters.request_errors_named, &format!("register: {e}"))
            }
            (Sent::Request, Some(e)) => {
                add_named(&mut self.counters.request_errors_named, &e);
                self.resolve(local);
            }
            (Sent::Reply, Some(e)) => add_named(&mut self.counters.reply_errors_named, &e),
            (_, None) => {}
        }
    }

    fn on_delivery(&mut self, local: usize, m: &Value) {
        let payload = &m["payload"];
        let (Some(t0), Some(t1)) = (payload["t0"].as_u64(), payload["t1"].as_u64()) else {
            self.counters.unexpected += 1;
            return;
        };
        let measured = payload["m"].as_bool().unwrap_or(false);
        let now = self.now_ns;
        if self.in_window() {
            self.counters.window_deliveries += 1;
        }
        match m["message_type"].as_str() {
            Some("request") => {
                self.counters.requests_delivered += 1;
                if measured {
                    self.latencies.record_one_way(now.saturating_sub(t1));
                    self.counters.last_measured_delivery_ns = now;
                }
                let global = self.first + local as u32;
                let from = m["from_agent"].as_str().unwrap_or_default().to_string();
                let text = json!({"type": "direct", "from_agent": name(&self.sc, global), "to_agent": from,
                    "message_type": "reply", "payload": {"t0": t0, "t1": t1, "r": now, "m": measured, "pad": payload["pad"]}})
                .to_string();
                self.counters.replies_sent += 1;
                self.send(local, text, Sent::Reply);
            }
            Some("reply") => {
                self.counters.replies_delivered += 1;
                if measured {
                    self.latencies.record_rtt(now.saturating_sub(t0), now.saturating_sub(t1));
                    let sent = payload["r"].as_u64().unwrap_or(now);
                    self.latencies.record_one_way(now.saturating_sub(sent));
                    self.counters.round_trips_measured += 1;
                    self.counters.last_measured_delivery_ns = now;
                }
                self.resolve(local);
            }
            _ => self.counters.unexpected += 1,
        }
    }

    fn resolve(&mut self, local: usize) {
        let a = &mut self.agents[local];
        if a.pace.in_flight > 0 {
            a.pace.in_flight -= 1;
            self.in_flight -= 1;
        }
        self.try_send(local);
    }
}

fn add_named(list: &mut Vec<(String, u64)>, name: &str) {
    match list.iter_mut().find(|(n, _)| n == name) {
        Some((_, count)) => *count += 1,
        None => list.push((name.to_string(), 1)),
    }
}

/// One agent core's part of a JSON run: connect and register its agents, then run.
pub(super) async fn core_main(
    sc: Scenario,
    first: u32,
    count: u32,
    addr: SocketAddr,
    start: flume::Receiver<Option<Schedule>>,
    ready: flume::Sender<Result<(), String>>,
) -> Option<JsonResult> {
    let group = Rc::new(RefCell::new(JsonGroup::new(sc.clone(), first, count)));
    let mut links = Vec::new();
    for local in 0..count as usize {
        match connect(addr).await {
            Ok(link) => links.push(link),
            Err(e) => {
                let _ = ready.send(Err(e));
                return None;
            }
        }
        let text = json!({"type": "register", "agent_id": name(&sc, first + local as u32), "agent_type": "a2a-bench"}).to_string();
        group.borrow_mut().send(local, text, Sent::Register);
    }
    let failures = Rc::new(RefCell::new(Vec::new()));
    for (local, (ws, _)) in links.iter().enumerate() {
        glommio::spawn_local(reader(group.clone(), ws.clone(), local, failures.clone())).detach();
        glommio::spawn_local(writer(group.clone(), ws.clone(), local)).detach();
    }
    // Registration is complete when every agent's register was acknowledged.
    let deadline = clock::now_ns() + 30_000_000_000;
    loop {
        glommio::timer::sleep(Duration::from_millis(1)).await;
        let g = group.borrow();
        let pending = g.agents.iter().filter(|a| !a.registered).count();
        let refused =
            g.counters.request_errors_named.iter().find(|(n, _)| n.starts_with("register"));
        if let Some((why, _)) = refused {
            let _ = ready.send(Err(format!("the router refused a registration: {why}")));
            return None;
        }
        if pending == 0 {
            break;
        }
        if clock::now_ns() > deadline || !failures.borrow().is_empty() {
            let _ = ready.send(Err(format!(
                "{pending} agents were never registered: {:?}",
                failures.borrow()
            )));
            return None;
        }
    }
    let _ = ready.send(Ok(()));
    let Ok(Some(schedule)) = start.recv_async().await else { return None };
    group.borrow_mut().schedule = schedule;
    sleep_until(schedule.start_ns).await;
    {
        let mut g = group.borrow_mut();
        g.now_ns = clock::now_ns();
        if let Pacing::Closed { .. } = sc.pacing {
            for local in 0..count as usize {
                g.try_send(local);
            }
        }
    }
    if matches!(sc.pacing, Pacing::Open { .. }) {
        let g = group.clone();
        glommio::spawn_local(async move {
            loop {
                let next = g.borrow_mut().tick(clock::now_ns());
                match next {
                    Some(t) => sleep_until(t).await,
                    None => return,
                }
            }
        })
        .detach();
    }
    sleep_until(schedule.measure_ns).await;
    let cpu0 = clock::thread_cpu_ns();
    let (mut cpu, mut finished_at, mut timed_out) = (None, None, false);
    loop {
        glommio::timer::sleep(Duration::from_millis(1)).await;
        let now = clock::now_ns();
        let mut g = group.borrow_mut();
        g.now_ns = now;
        if g.finished() && finished_at.is_none() {
            finished_at = Some(now);
            cpu = Some(
                clock::thread_cpu_ns().saturating_sub(cpu0) as f64
                    / now.saturating_sub(schedule.measure_ns).max(1) as f64,
            );
        }
        if g.finished() && g.in_flight == 0 {
            break;
        }
        if finished_at.is_some_and(|f| now.saturating_sub(f) > sc.drain_timeout.as_nanos() as u64) {
            timed_out = true;
            break;
        }
        if !failures.borrow().is_empty() {
            break;
        }
    }
    let result = {
        let mut g = group.borrow_mut();
        g.stopped = true;
        for a in g.agents.iter_mut() {
            if let Some(w) = a.writer.take() {
                w.wake();
            }
        }
        JsonResult {
            counters: g.counters.clone(),
            latencies: g.latencies.clone(),
            cpu_busy: cpu.unwrap_or(0.0),
            in_flight: g.in_flight,
            drain_timed_out: timed_out,
            failures: failures.borrow().clone(),
        }
    };
    for (_, control) in &links {
        let _ = control.shutdown(std::net::Shutdown::Both);
    }
    drop(links);
    // Tasks hold the group; wait (bounded) for them to see the closed sockets and finish.
    let deadline = clock::now_ns() + 2_000_000_000;
    while Rc::strong_count(&group) > 1 && clock::now_ns() < deadline {
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
    Some(result)
}

async fn sleep_until(t_ns: u64) {
    let now = clock::now_ns();
    if t_ns > now {
        glommio::timer::sleep(Duration::from_nanos(t_ns - now)).await;
    }
}

async fn connect(addr: SocketAddr) -> Result<(Ws, TcpStream), String> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    let _ = s.set_nodelay(true);
    let control = s.try_clone().map_err(|e| e.to_string())?;
    s.set_nonblocking(true).map_err(|e| e.to_string())?;
    let tcp = glommio::net::TcpStream::from(socket2::Socket::from(s));
    let ws = ws::connect(tcp, addr, ws::SUBPROTOCOL_JSON)
        .await
        .map_err(|e| format!("WebSocket handshake with {addr}: {e}"))?;
    Ok((Rc::new(RefCell::new(ws)), control))
}

async fn reader(
    group: Rc<RefCell<JsonGroup>>,
    ws: Ws,
    local: usize,
    failures: Rc<RefCell<Vec<String>>>,
) {
    loop {
        let msg = poll_fn(|cx| Pin::new(&mut *ws.borrow_mut()).poll_next(cx)).await;
        match msg {
            Some(Ok(WsMessage::Text(t))) => group.borrow_mut().on_text(local, &t, clock::now_ns()),
            Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => {}
            Some(Ok(_)) => group.borrow_mut().counters.unexpected += 1,
            None | Some(Err(_)) => {
                let g = group.borrow();
                if !g.finished() || g.in_flight > 0 {
                    failures.borrow_mut().push("the router closed an agent connection".into());
                }
                return;
            }
        }
    }
}

async fn writer(group: Rc<RefCell<JsonGroup>>, ws: Ws, local: usize) {
    loop {
        let text = poll_fn(|cx| {
            let mut g = group.borrow_mut();
            let stopped = g.stopped;
            let a = &mut g.agents[local];
            match a.out.pop_front() {
                Some(t) => Poll::Ready(Some(t)),
                None if stopped => Poll::Ready(None),
                None => {
                    a.writer = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await;
        let Some(text) = text else { return };
        let sent = async {
            poll_fn(|cx| Sink::<WsMessage>::poll_ready(Pin::new(&mut *ws.borrow_mut()), cx))
                .await?;
            Sink::<WsMessage>::start_send(
                Pin::new(&mut *ws.borrow_mut()),
                WsMessage::Text(text.into()),
            )?;
            poll_fn(|cx| Sink::<WsMessage>::poll_flush(Pin::new(&mut *ws.borrow_mut()), cx)).await
        };
        if sent.await.is_err() {
            return;
        }
    }
}
