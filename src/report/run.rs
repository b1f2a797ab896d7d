//! One run's result ([`RunResult`], the report's `results[]`): how it was paced, what its
//! cores used ([`CpuInfo`], and which side bound it), and why it failed when it did.

use std::collections::BTreeMap;

use serde::Serialize;

use super::*;
use crate::loadgen::group::GroupCounters;
use crate::loadgen::workload::CoordResult;
use crate::loadgen::{Accounting, Outcome, Pacing, Scenario, Stop};
use crate::metrics::LatencySummary;

/// How a run was paced.
#[derive(Debug, Clone, Serialize)]
pub struct PacingInfo {
    /// `closed` or `open`.
    pub mode: &'static str,
    /// Requests in flight per agent (closed) or their cap (open).
    pub window: u32,
    /// Total requests per second asked for (open loop).
    pub rate_per_sec: Option<f64>,
    /// A worker's part (open loop): the share of that rate that fell due for its own agents in
    /// the window (their sends that left in it, and those still owed when sending stopped), per
    /// second. The agents' sends take their turns in order across the whole run, so a share is
    /// not simply the agents' share; the part is judged by it, the merged run by the whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share_per_sec: Option<f64>,
    /// Requests per second that actually left inside the measured window.
    pub achieved_rate_per_sec: f64,
    /// Open loop: the asked rate held (achieved ≥ 95 % of it, at most 1 % of the window's
    /// sends late); always true in closed loop, which asks for no rate.
    pub sustained: bool,
    /// Sends that left in the measured window more than `late_after_ms` after their intended
    /// time (warm-up excluded).
    pub late_sends: u64,
    /// Open loop: sends due before sending stopped that never left (every window was full).
    pub missed_sends: u64,
    /// Open loop: warm-up sends still owed when the window began, given up there rather than
    /// sent in it (not in `missed_sends`, nor in any figure of the window).
    pub warmup_missed_sends: u64,
    /// The lateness threshold.
    pub late_after_ms: f64,
}

/// Achieved below this share of the asked rate is not sustained.
pub const SUSTAINED_RATE_SHARE: f64 = 0.95;
/// More than this share of late sends is not sustained.
pub const SUSTAINED_LATE_SHARE: f64 = 0.01;
/// A measured window with fewer round trips than this is too short to mean anything.
pub const TOO_SHORT_ROUND_TRIPS: u64 = 1_000;
/// A measured window shorter than this many times its own p99 is too short.
pub const TOO_SHORT_P99_MULTIPLE: f64 = 10.0;

/// CPU use over the measured window.
#[derive(Debug, Clone, Serialize)]
pub struct CpuInfo {
    /// Busy share (0–1) of each agent core.
    pub agent_cores: Vec<f64>,
    /// Of `agent_cores`, the share each core spent watching for input that had not come (the
    /// socket ring's doze watch: CPU used without work, left out of `bottleneck`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_watch: Option<Vec<f64>>,
    /// Busy share of each router shard, when the router reports it.
    pub router_cores: Option<Vec<f64>>,
    /// Of `router_cores`, the share each shard spent watching (0 for the tokio routers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router_watch: Option<Vec<f64>>,
    /// Which side limited the run: `router`, `generator`, `both`, `neither` or `unknown`,
    /// judged by each side's busy share less its watch; `shared cores` when the router and the
    /// agents share cores and together kept them busy ([`CpuInfo::judge_shared`]).
    pub bottleneck: String,
    /// A router of several shards: the share of the messages it received in the measured
    /// window that one shard handed to another (homing keeps it low).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router_cross_shard_share: Option<f64>,
    /// Messages per frame the router wrote to clients in the measured window: how much its
    /// writes batched (a router that writes sooner writes smaller frames, and its clients pay
    /// per frame).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router_msgs_per_frame: Option<f64>,
    /// Share (0–1) of the machine's CPUs used by *other* processes (and hypervisor steal)
    /// during the run; above 0.1 the run's figures are suspect. Null where /proc is unreadable.
    /// A target running on this machine in processes of its own is not counted here but in
    /// `target_cores`.
    pub others_share: Option<f64>,
    /// A target on this machine in processes of its own (a router or HTTP server listening on
    /// the target's address): the CPU they used over the run, in cores (1.0: one core all the
    /// time). Absent for a remote target and for the embedded router (this process).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_cores: Option<f64>,
}

/// Bytes per second on the agents' side of their connections.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct WireRates {
    /// Read from the connections.
    pub received: f64,
    /// Handed to the sockets.
    pub sent: f64,
}

/// Resident memory at the measured window's end (every agent registered, every connection
/// open), or at the run's end where it did not reach it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct MemoryInfo {
    /// This process: the agents, and the embedded router when it runs in it. Absent in
    /// `compare`, whose routers all live in this process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process_bytes: Option<u64>,
    /// The target's processes on this machine (an external router, an HTTP server), when
    /// they were found by the port they listen on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_bytes: Option<u64>,
}

/// MCP: how the server answered the sessions' `DELETE` at the run's end.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SessionEnds {
    /// Answered with a 2xx: the server ended the session.
    pub ended: u64,
    /// Answered otherwise, by status: `http_405`, the server does not let clients end
    /// sessions (the protocol allows it); `http_404`, it no longer knew the session.
    pub refused: BTreeMap<String, u64>,
    /// Never answered: the connection failed or timed out. (A server that leaves them
    /// unanswered for `--drain-timeout` fails the run, which says so.)
    pub failed: u64,
}

impl SessionEnds {
    /// The answers counted by status (0: none came); `None` for a run that ended no session.
    fn of(by_status: &[(u16, u64)]) -> Option<SessionEnds> {
        if by_status.is_empty() {
            return None;
        }
        let mut s = SessionEnds::default();
        for &(status, n) in by_status {
            match status {
                0 => s.failed += n,
                200..=299 => s.ended += n,
                _ => *s.refused.entry(format!("http_{status}")).or_default() += n,
            }
        }
        Some(s)
    }
}

/// One run: the seed's fields first, then ours.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// Agents.
    pub agent_count: u32,
    /// Measured requests of the whole run, over all agents: the seed's meaning (its total is
    /// split across agents). Configured × agents in count mode, achieved in duration mode.
    pub message_count: u64,
    /// Measured requests per agent (`--messages` in count mode; achieved in duration mode).
    pub messages_per_agent: u64,
    /// Topology name.
    pub topology: String,
    /// Milliseconds between an agent's requests (open loop); 0 for closed loop.
    pub message_interval_ms: u64,
    /// Repetition index (0-based).
    pub repeat: u32,
    /// Accounting closed, no error, nothing left in flight.
    pub success: bool,
    /// Router deliveries (requests + replies) per second of the measured window.
    pub throughput_msg_per_sec: f64,
    /// Mean round trip from the intended send time, ms.
    pub avg_latency_ms: f64,
    /// Median round trip, ms.
    pub p50_latency_ms: f64,
    /// 95th percentile round trip, ms.
    pub p95_latency_ms: f64,
    /// 99th percentile round trip, ms.
    pub p99_latency_ms: f64,
    /// Length of the measured window, s.
    pub duration_sec: f64,
    /// 99.9th percentile round trip, ms.
    pub p999_latency_ms: f64,
    /// Largest round trip, ms.
    pub max_latency_ms: f64,
    /// All three latency views.
    pub latency: LatencyViews,
    /// Requests sent per second of the window.
    pub sent_per_sec: f64,
    /// Round trips completed per second of the window.
    pub round_trips_per_sec: f64,
    /// Every message accounted for.
    pub accounting: Accounting,
    /// Errors by kind (router error codes and client-side failures).
    pub errors: BTreeMap<String, u64>,
    /// Pacing asked for and achieved.
    pub pacing: PacingInfo,
    /// CPU use and the bottleneck.
    pub cpu: CpuInfo,
    /// Request payload bytes; with `--payload-mix`, the mean its weights ask for (rounded);
    /// with `--text-file`, the texts' mean.
    pub payload_size: usize,
    /// `a2a-bench http --text-file`: how many texts the messages were drawn from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_texts: Option<u64>,
    /// `--payload-mix`: each size's share and round trips.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub payload_mix: Vec<SizeResult>,
    /// Why the run failed, when it did.
    pub failure: Option<String>,
    /// Per interval of the measured window (`--interval`); empty when none was kept.
    pub time_series: Vec<IntervalPoint>,
    /// `a2a-bench worker`: the run exactly (counters and histograms), for the merge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part: Option<part::Part>,
    /// A worker's run in a search (`--find-max-rate`, `--find-max-agents` on every worker):
    /// the whole run, merged from every worker's part, which the search steps by. Not written
    /// (`merge` makes it again from the parts).
    #[serde(skip)]
    pub whole: Option<Box<RunResult>>,
    /// `a2a-bench http`: each pattern's figures.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub patterns: Vec<PatternResult>,
    /// `a2a-bench http`: connections replaced after the server closed them or a request on
    /// them timed out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconnects: Option<u64>,
    /// Connections the run's agents (or HTTP clients) opened: `--agents-per-conn` (HTTP:
    /// `--connections`, at most one per client) over every agent core. Absent for a run that
    /// never started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections: Option<usize>,
    /// `a2a-bench http`: requests sent again because the server never processed them (HTTP/2:
    /// past a GOAWAY's last stream, or reset with `REFUSED_STREAM`; HTTP/1.1: pipelined behind
    /// an answer after which the server said it closes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resent: Option<u64>,
    /// Resident memory at the measured window's end: this process's, and a local target's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryInfo>,
    /// `a2a-bench http`, MCP with sessions: how the server answered their `DELETE` at the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_sessions: Option<SessionEnds>,
    /// Bytes per second the agents read from and handed to their sockets in the measured
    /// window, as the sockets carry them (frames, WebSocket, HTTP, TLS records; no TCP/IP
    /// headers): the traffic a network between them and the target would carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wire_bytes_per_sec: Option<WireRates>,
    /// Heartbeats the agents sent on connections silent for a third of the router's
    /// heartbeat timeout (set-up and warm-up included), so that no agent was taken for
    /// offline: router traffic that no figure counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeats: Option<u64>,
    /// Lost wake-ups during the run: parks of this process's socket rings (the agents', and an
    /// embedded router's) that only the ring's 20 ms fallback timer ended while work waited
    /// (`transport::uring::rescued`); absent when there were none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_wakeups: Option<u64>,
    /// This run is a second attempt: in the first, an agent core stood still (what the
    /// watchdog said), so that attempt measured the generator, not the target, and was made
    /// again (once; a second stall fails the run). Absent for a run made once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remade: Option<String>,
    /// What the agents did (`--workload`).
    pub workload: &'static str,
    /// A coordination workload's own figures (`fanout`, `broadcast`, `locks`, `barriers`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coordination: Option<CoordResult>,
    /// `pipeline`: its shape and what went through it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<PipelineResult>,
    /// Count mode: `message_count` was asked for, not measured.
    #[serde(skip)]
    pub count_mode: bool,
    /// `ok`, `overloaded` (open loop did not sustain its rate), `too_short` (too few round
    /// trips, or a window under 10× its p99), `interrupted` (Ctrl-C), or `failed`.
    pub status: &'static str,
}

/// A run as the grid defines it: which scenario, which repetition.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The scenario.
    pub scenario: Scenario,
    /// Repetition index.
    pub repeat: u32,
    /// `--intervals` value behind an open-loop rate, if any.
    pub interval_ms: Option<u64>,
}

impl RunResult {
    /// Builds a run's entry from what it measured.
    pub fn new(spec: &RunSpec, outcome: &Outcome) -> RunResult {
        let sc = &spec.scenario;
        let acct = outcome.accounting();
        let rtt = LatencySummary::of(&outcome.latencies.rtt);
        let window_s = outcome.window_ns as f64 / 1e9;
        let per_s = |n: u64| if window_s > 0.0 { n as f64 / window_s } else { 0.0 };
        let c = &outcome.counters;
        let errors = c.errors_by_kind();
        let pacing = PacingInfo::of(sc, c, window_s, outcome.partial);
        let failure = failures(outcome, &acct, &errors);
        let status = status_of(outcome, !failure.is_empty(), pacing.sustained, rtt.p99_ms);
        let messages_per_agent = match sc.stop {
            Stop::Count { per_agent } => per_agent,
            Stop::Duration(_) => c.requests_measured / u64::from(sc.agents.max(1)),
        };
        let message_count = match sc.stop {
            Stop::Count { per_agent } => per_agent * u64::from(sc.agents),
            Stop::Duration(_) => c.requests_measured,
        };
        RunResult {
            agent_count: sc.agents,
            message_count,
            messages_per_agent,
            topology: sc.shape().into(),
            message_interval_ms: spec.interval_ms.unwrap_or(0),
            repeat: spec.repeat,
            success: failure.is_empty(),
            throughput_msg_per_sec: outcome.throughput(),
            avg_latency_ms: rtt.avg_ms,
            p50_latency_ms: rtt.p50_ms,
            p95_latency_ms: rtt.p95_ms,
            p99_latency_ms: rtt.p99_ms,
            duration_sec: window_s,
            p999_latency_ms: rtt.p999_ms,
            max_latency_ms: rtt.max_ms,
            latency: LatencyViews {
                rtt,
                rtt_raw: LatencySummary::of(outcome.latencies.rtt_raw()),
                one_way: LatencySummary::of(&outcome.latencies.one_way),
                rtt_spectrum: spectrum(&outcome.latencies.rtt),
            },
            sent_per_sec: per_s(c.requests_measured),
            round_trips_per_sec: per_s(c.round_trips_measured),
            accounting: acct,
            errors,
            pacing,
            cpu: CpuInfo::of(outcome),
            payload_size: match SizeResult::mean(&outcome.sizes) {
                Some(mean) => mean.round() as usize,
                None => sc.payload_bytes,
            },
            payload_mix: SizeResult::of(&outcome.sizes, window_s),
            payload_texts: sc
                .http
                .as_ref()
                .filter(|p| !p.texts.is_empty())
                .map(|p| p.texts.len() as u64),
            failure: (!failure.is_empty()).then(|| failure.join("; ")),
            time_series: outcome.intervals.iter().map(IntervalPoint::of).collect(),
            part: None,
            whole: None,
            patterns: outcome.breakdown.iter().map(|s| PatternResult::of(s, window_s)).collect(),
            reconnects: (sc.protocol == crate::loadgen::Protocol::Http).then_some(c.reconnects),
            connections: (outcome.connections > 0).then_some(outcome.connections),
            resent: (sc.protocol == crate::loadgen::Protocol::Http).then_some(c.resent),
            memory: None,
            mcp_sessions: SessionEnds::of(&c.session_ends),
            wire_bytes_per_sec: (c.window_bytes_in + c.window_bytes_out > 0).then(|| WireRates {
                received: per_s(c.window_bytes_in),
                sent: per_s(c.window_bytes_out),
            }),
            heartbeats: sc.keepalive.map(|_| c.heartbeats),
            lost_wakeups: None,
            remade: None,
            workload: sc.workload.name(),
            coordination: outcome.coordination.as_ref().map(|s| {
                let seen = (c.requests_sent, c.requests_delivered, c.window_deliveries);
                CoordResult::of(sc.workload, sc.agents, s, c.round_trips_measured, seen, window_s)
            }),
            pipeline: PipelineResult::of(
                sc.workload,
                sc.agents,
                (c.requests_delivered, c.replies_delivered, c.round_trips_measured),
                window_s,
            )
            .map(|p| p.with_hops(&outcome.hops)),
            count_mode: matches!(sc.stop, Stop::Count { .. }),
            status,
        }
    }
}

/// One size of a `--payload-mix` run (`results[].payload_mix[]`, `docs/REPORT.md`).
#[derive(Debug, Clone, Serialize)]
pub struct SizeResult {
    /// Payload bytes.
    pub bytes: usize,
    /// Its weight in the mix.
    pub weight: u32,
    /// The share of requests the weights ask for.
    pub share_asked: f64,
    /// Measured requests sent of this size.
    pub sent: u64,
    /// Their share of the measured requests sent.
    pub share_sent: f64,
    /// Of those, the ones that ended in an error told by size (an error answer, a timeout, a
    /// connection that took it down; not those given up as a whole).
    pub errors: u64,
    /// Round trips of this size measured per second of the window.
    pub round_trips_per_sec: f64,
    /// Their latency from the intended send time (its `count`: round trips measured).
    pub latency: LatencySummary,
}

impl SizeResult {
    /// Each size's entry, from the merged per-size figures over a window of `window_s`.
    fn of(sizes: &[crate::loadgen::mix::SizeStats], window_s: f64) -> Vec<SizeResult> {
        let weights: u64 = sizes.iter().map(|s| u64::from(s.weight)).sum();
        let sent: u64 = sizes.iter().map(|s| s.sent).sum();
        let share = |n: u64, of: u64| if of == 0 { 0.0 } else { n as f64 / of as f64 };
        sizes
            .iter()
            .map(|s| SizeResult {
                bytes: s.bytes,
                weight: s.weight,
                share_asked: share(u64::from(s.weight), weights),
                sent: s.sent,
                share_sent: share(s.sent, sent),
                errors: s.errors,
                round_trips_per_sec: if window_s > 0.0 {
                    s.rtt.len() as f64 / window_s
                } else {
                    0.0
                },
                latency: LatencySummary::of(&s.rtt),
            })
            .collect()
    }

    /// The mean size the weights ask for; `None` without a mix.
    fn mean(sizes: &[crate::loadgen::mix::SizeStats]) -> Option<f64> {
        let weights: u64 = sizes.iter().map(|s| u64::from(s.weight)).sum();
        (weights > 0).then(|| {
            sizes.iter().map(|s| s.bytes as f64 * f64::from(s.weight)).sum::<f64>() / weights as f64
        })
    }
}

/// `pipeline`'s entry in a run (`results[].pipeline`, `docs/REPORT.md`).
#[derive(Debug, Clone, Serialize)]
pub struct PipelineResult {
    /// Agents per pipeline, the source included.
    pub stages: u32,
    /// Whole pipelines the run's agents formed.
    pub pipelines: u32,
    /// Agents past the last whole pipeline: they registered and took no part.
    pub idle_agents: u32,
    /// Items back at their sources per second of the window (measured ones).
    pub items_per_sec: f64,
    /// Deliveries per item returned, over the run (`stages` in a sound run: a hop to every
    /// stage after the source, and the last one's back).
    pub deliveries_per_item: f64,
    /// Each hop of the measured items, in the order they go: to stage 1, 2, …, and back to
    /// the source (`to_stage` 0): its one-way latency.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hops: Vec<HopResult>,
}

/// One hop of a pipeline (`results[].pipeline.hops[]`).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct HopResult {
    /// The stage it reached: 1 the first after the source, 0 the source (the way back).
    pub to_stage: u32,
    /// Its one-way latency, from the stage before handing the item on (its `count`: hops).
    pub latency: LatencySummary,
}

impl PipelineResult {
    /// With each hop's latency from `hops` (by the stage it reached, 0 the source).
    fn with_hops(mut self, hops: &[hdrhistogram::Histogram<u64>]) -> PipelineResult {
        let order = (1..hops.len()).chain((!hops.is_empty()).then_some(0));
        self.hops = order
            .map(|s| HopResult { to_stage: s as u32, latency: LatencySummary::of(&hops[s]) })
            .collect();
        self
    }

    /// The entry of a run of `w` with `agents` agents, from its deliveries of items to stages
    /// and back to sources, and its measured round trips, over a window of `window_s`.
    fn of(
        w: crate::loadgen::Workload,
        agents: u32,
        (to_stages, items, measured): (u64, u64, u64),
        window_s: f64,
    ) -> Option<PipelineResult> {
        let crate::loadgen::Workload::Pipeline { stages } = w else { return None };
        let pipelines = w.pipelines(agents);
        Some(PipelineResult {
            stages,
            pipelines,
            idle_agents: agents - pipelines * stages,
            items_per_sec: if window_s > 0.0 { measured as f64 / window_s } else { 0.0 },
            deliveries_per_item: if items == 0 {
                0.0
            } else {
                (to_stages + items) as f64 / items as f64
            },
            hops: Vec::new(),
        })
    }
}

impl PacingInfo {
    /// The pacing `sc` asked for and what its run achieved over a window of `window_s`: a
    /// fixed rate is sustained when the requests sent reached [`SUSTAINED_RATE_SHARE`] of it
    /// (of a worker's share of it, in a `partial` run) and at most [`SUSTAINED_LATE_SHARE`] of
    /// them left late.
    fn of(sc: &Scenario, c: &GroupCounters, window_s: f64, partial: bool) -> PacingInfo {
        let (mode, window, rate) = match sc.effective_pacing() {
            Pacing::Closed { window } => ("closed", window, None),
            Pacing::Open { rate, window } => ("open", window, Some(rate)),
        };
        let sent = c.requests_sent_in_window;
        let per_s = |n: u64| if window_s > 0.0 { n as f64 / window_s } else { 0.0 };
        let achieved = per_s(sent);
        let share = rate.filter(|_| partial).map(|_| per_s(sent + c.missed_sends));
        let sustained = share.or(rate).is_none_or(|asked| {
            achieved >= SUSTAINED_RATE_SHARE * asked
                && c.late_sends as f64 <= SUSTAINED_LATE_SHARE * sent as f64
        });
        PacingInfo {
            mode,
            window,
            rate_per_sec: rate,
            share_per_sec: share,
            achieved_rate_per_sec: achieved,
            sustained,
            late_sends: c.late_sends,
            missed_sends: c.missed_sends,
            warmup_missed_sends: c.warmup_missed_sends,
            late_after_ms: sc.late_after.as_secs_f64() * 1e3,
        }
    }
}

/// A run's status, the first that holds: `failed`, `interrupted`, `overloaded` (a fixed rate
/// not sustained), `too_short` (too few round trips, or a window short beside its p99), `ok`.
fn status_of(outcome: &Outcome, failed: bool, sustained: bool, p99_ms: f64) -> &'static str {
    let too_short = outcome.counters.round_trips_measured < TOO_SHORT_ROUND_TRIPS
        || (outcome.window_ns as f64) < TOO_SHORT_P99_MULTIPLE * p99_ms * 1e6;
    if failed {
        "failed"
    } else if outcome.interrupted {
        "interrupted"
    } else if !sustained {
        "overloaded"
    } else if too_short {
        "too_short"
    } else {
        "ok"
    }
}

/// Why a run failed, each said once: what its cores said, an accounting that does not close,
/// errors by their three commonest kinds, nothing measured.
fn failures(outcome: &Outcome, acct: &Accounting, errors: &BTreeMap<String, u64>) -> Vec<String> {
    let mut failure: Vec<String> = outcome.failures.clone();
    if !acct.closed {
        failure.push(format!(
            "accounting does not close: {} requests sent, {} delivered, {} replies delivered, {} router errors, {} given up, {} lost, {} in flight at the end",
            acct.requests_sent,
            acct.requests_delivered,
            acct.replies_delivered,
            acct.request_errors + acct.reply_errors,
            acct.unanswered,
            acct.messages_lost,
            acct.in_flight_at_end
        ));
    }
    let error_total: u64 = errors.values().sum();
    if error_total > 0 && acct.closed {
        let mut kinds: Vec<(&String, &u64)> = errors.iter().collect();
        kinds.sort_by(|a, b| b.1.cmp(a.1));
        let top: Vec<String> = kinds.iter().take(3).map(|(k, n)| format!("{k} {n}")).collect();
        let more = if kinds.len() > 3 { ", …" } else { "" };
        failure.push(format!("{error_total} errors ({}{more})", top.join(", ")));
    }
    if outcome.window_ns == 0 && failure.is_empty() && !outcome.interrupted {
        failure.push("nothing was measured (empty window)".into());
    }
    failure
}

impl CpuInfo {
    /// The cores' busy and watching shares a run measured, and which side bounded it.
    fn of(outcome: &Outcome) -> CpuInfo {
        // A core watching for input is not saturated: the side is judged by work.
        let agents = net_of_watch(&outcome.agent_cpu, &outcome.agent_watch);
        let router = outcome
            .router_cpu
            .as_ref()
            .map(|r| net_of_watch(r, outcome.router_watch.as_deref().unwrap_or(&[])));
        CpuInfo {
            bottleneck: bottleneck(&agents, router.as_deref()).into(),
            agent_cores: outcome.agent_cpu.clone(),
            agent_watch: (!outcome.agent_watch.is_empty()).then(|| outcome.agent_watch.clone()),
            router_cores: outcome.router_cpu.clone(),
            router_watch: outcome.router_watch.clone(),
            router_cross_shard_share: outcome.cross_shard_share,
            router_msgs_per_frame: outcome.router_msgs_per_frame,
            others_share: None,
            target_cores: None,
        }
    }
}

/// A core at or above this busy share is saturated.
pub const SATURATED: f64 = 0.9;
/// Below this busy share a core clearly has room left.
pub const ROOMY: f64 = 0.8;

/// Busy shares less the share spent watching, core by core (no watch measured: as they are).
pub fn net_of_watch(busy: &[f64], watch: &[f64]) -> Vec<f64> {
    busy.iter()
        .enumerate()
        .map(|(i, b)| (b - watch.get(i).copied().unwrap_or(0.0)).max(0.0))
        .collect()
}

/// [`CpuInfo::bottleneck`] of a run whose router and agents took turns on the same cores.
pub const SHARED_CORES: &str = "shared cores";

/// Where the router (or server) and the agents of a run share cores.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoreSharing {
    /// For each core both use, where known: the index of its agent core in
    /// [`CpuInfo::agent_cores`] and of its router shard in [`CpuInfo::router_cores`].
    pub pairs: Vec<(usize, usize)>,
    /// How many distinct cores the two use together.
    pub together: usize,
}

impl CpuInfo {
    /// A target in processes of its own that does not report its shards' CPU, judged by its
    /// processes' (`target_cores`) over the `pinned` cores its threads are pinned to (0: not
    /// pinned, or not seen): without it such a run could only be `generator` or `unknown`.
    pub fn judge_target(&mut self, pinned: usize) {
        let (None, Some(used)) = (&self.router_cores, self.target_cores) else { return };
        if pinned == 0 {
            return;
        }
        let agents = net_of_watch(&self.agent_cores, self.agent_watch.as_deref().unwrap_or(&[]));
        let share = (used / pinned as f64).min(1.0);
        self.bottleneck = bottleneck(&agents, Some(&[share])).into();
    }

    /// The router (or server) and the agents share cores: each side's own busy share then says
    /// little, since it had room only while the other waited for the core. When the busy shares
    /// of both sides on one shared core, less watch, add up to a saturated core, that core is
    /// what limited the run. Where the router's shards are not known core by core (a router
    /// that does not report them: its processes' CPU instead), all the cores the two use
    /// together are judged as one.
    pub fn judge_shared(&mut self, sharing: &CoreSharing) {
        let agents = net_of_watch(&self.agent_cores, self.agent_watch.as_deref().unwrap_or(&[]));
        let router = self
            .router_cores
            .as_deref()
            .map(|r| net_of_watch(r, self.router_watch.as_deref().unwrap_or(&[])));
        let pairs: Vec<f64> = match &router {
            Some(router) => sharing
                .pairs
                .iter()
                .filter_map(|&(a, r)| Some(agents.get(a)? + router.get(r)?))
                .collect(),
            None => Vec::new(),
        };
        let saturated = if pairs.is_empty() {
            let router = router.map_or(self.target_cores.unwrap_or(0.0), |r| r.iter().sum());
            let cores = sharing.together as f64;
            cores > 0.0 && agents.iter().sum::<f64>() + router >= SATURATED * cores
        } else {
            pairs.iter().any(|&busy| busy >= SATURATED)
        };
        if saturated {
            self.bottleneck = SHARED_CORES.into();
        }
    }
}

/// Which side limited a run, from CPU use: the generator must not be mistaken for the router.
/// One side is named only when the other clearly had room left; near-ties are `both`.
pub fn bottleneck(agents: &[f64], router: Option<&[f64]>) -> &'static str {
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let a = max(agents);
    let Some(router) = router else {
        return if a >= SATURATED { "generator" } else { "unknown" };
    };
    let r = max(router);
    match (a >= SATURATED, r >= SATURATED) {
        (false, false) => "neither",
        (true, false) if r < ROOMY => "generator",
        (false, true) if a < ROOMY => "router",
        _ => "both",
    }
}
