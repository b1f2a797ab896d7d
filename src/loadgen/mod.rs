//! Virtual agents: groups pinned to cores, a topology, one pacing loop, honest measurement.
//!
//! A [`Scenario`] is one run: so many agents in a topology, paced closed-loop (a window of
//! requests in flight per agent) or open-loop (a fixed total rate, latency measured from the
//! intended send time), stopped by count or duration. [`run`] drives it against a router and
//! returns an [`Outcome`]: merged histograms, counters, CPU use, and the accounting check.
//!
//! - [`topology`]: who talks to whom.
//! - [`group`]: the one agent loop, runtime-free: pacing, booking, accounting, histograms,
//!   generic over a protocol [`group::Adapter`].
//! - [`native`], [`json`], [`http`]: the adapters (a2a-bench frames, the seed JSON protocol,
//!   HTTP clients of A2A agents, MCP servers and registries).
//! - `driver`: the glommio shell around groups: set-up, the start and stop barriers, timeouts,
//!   the drain, lost connections and interrupts.

mod book;
mod coordination;
mod counters;
mod driver;
pub mod group;
pub mod http;
pub mod json;
mod link;
pub mod mix;
pub mod native;
pub mod topology;
pub mod workload;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::metrics::Latencies;
use crate::placement::Slot;
use crate::wire::{Compression, ShardStats};
pub use driver::connections_opened;
use group::GroupCounters;
pub use link::check_reachable;
pub use topology::Topology;
pub use workload::Workload;

/// How requests are paced. One loop serves both; this is data, not a code path.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// Each agent keeps `window` requests in flight (maximum throughput).
    Closed {
        /// Requests in flight per agent.
        window: u32,
    },
    /// `rate` requests per second over all agents, on a fixed schedule; an agent with `window`
    /// requests in flight waits, and its late sends are counted.
    Open {
        /// Total requests per second.
        rate: f64,
        /// Most requests in flight per agent.
        window: u32,
    },
}

/// When sending stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// After this many measured requests per agent.
    Count {
        /// Measured requests each agent sends.
        per_agent: u64,
    },
    /// After the measured window has lasted this long.
    Duration(Duration),
}

/// One run.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The graph.
    pub topology: Topology,
    /// How many agents.
    pub agents: u32,
    /// Closed or open loop.
    pub pacing: Pacing,
    /// Count or duration.
    pub stop: Stop,
    /// Sending before measurement starts; excluded from every figure.
    pub warmup: Duration,
    /// How long to wait for replies still in flight once sending stopped.
    pub drain_timeout: Duration,
    /// Bytes of payload per request (≥ 16: the send times travel in it); with a mix, its
    /// largest size.
    pub payload_bytes: usize,
    /// `--payload-mix`: each request's size drawn from these by weight (native protocol,
    /// request/reply).
    pub payload_mix: Option<mix::PayloadMix>,
    /// Most messages per frame.
    pub batch_max: u32,
    /// Compression of frames the agents send.
    pub compression: Compression,
    /// Agents per connection.
    pub agents_per_conn: u32,
    /// Exactly this many connections, the agents spread evenly over them
    /// (`a2a-bench http --connections`, at most one per agent); `None`: `agents_per_conn` to
    /// each.
    pub connections: Option<u32>,
    /// One agent group per core.
    pub agent_cores: Vec<Slot>,
    /// A send later than this after its intended time counts as late.
    pub late_after: Duration,
    /// Message priority.
    pub priority: u8,
    /// Agent ids start here (distinct per run, so runs never collide on a shared router).
    pub id_base: u32,
    /// How agents reach the router.
    pub transport: crate::transport::Transport,
    /// Whose socket I/O the agent cores use (`--agent-io`; TCP only: WebSocket stays on
    /// glommio's streams).
    pub io: crate::transport::Io,
    /// Latency mode (`--poll`): agent cores poll their sockets instead of sleeping while the
    /// run lasts.
    pub poll: bool,
    /// Each raw-TCP native connection opens with a `home` frame keyed by its first agent's
    /// index (`--no-homing` clears it), so a sharded router puts neighbouring agents together.
    pub homing: bool,
    /// Which protocol the agents speak.
    pub protocol: Protocol,
    /// Length of one time-series interval of the measured window; `None` keeps no series.
    pub interval: Option<Duration>,
    /// The agents this process runs, `(first, count)` of the `agents` (a worker's slice);
    /// `None` runs them all.
    pub slice: Option<(u32, u32)>,
    /// [`Protocol::Http`]: what the clients send.
    pub http: Option<Arc<http::Plan>>,
    /// What one operation of an agent is (request/reply along the topology by default).
    pub workload: Workload,
    /// How often each agent core looks for connections that sent nothing since it last looked
    /// and sends a heartbeat on them ([`group::Group::keep_alive`]): a third of the router's
    /// heartbeat timeout, so that no agent is taken for offline while the others connect or
    /// between sparse sends. `None`: never.
    pub keepalive: Option<Duration>,
}

impl Scenario {
    /// What the run's shape is called in reports: the topology, or the workload for those
    /// without one.
    pub fn shape(&self) -> &'static str {
        if self.workload.uses_topology() {
            self.topology.name()
        } else {
            self.workload.name()
        }
    }

    /// The pacing the agents use: the workload may narrow the window (locks and barriers run
    /// one operation at a time).
    pub fn effective_pacing(&self) -> Pacing {
        match self.pacing {
            Pacing::Closed { window } => Pacing::Closed { window: self.workload.window(window) },
            Pacing::Open { rate, window } => {
                Pacing::Open { rate, window: self.workload.window(window) }
            }
        }
    }
}

/// The protocol virtual agents speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// a2a-bench's batched msgpack frames (`docs/PROTOCOL.md`).
    #[default]
    Native,
    /// The seed system's JSON messages over WebSocket (`docs/JSON-COMPAT.md`).
    Json,
    /// HTTP/1.1 clients of a server (`a2a-bench http`; the scenario's [`http::Plan`]).
    Http,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Native => "native",
            Protocol::Json => "json",
            Protocol::Http => "http",
        })
    }
}

impl std::str::FromStr for Protocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "native" => Ok(Protocol::Native),
            "json" => Ok(Protocol::Json),
            other => Err(format!("unknown protocol '{other}' (expected native or json)")),
        }
    }
}

/// Reads a router's counters, for the router's side of a run.
pub trait RouterProbe {
    /// Every shard's counters now.
    fn stats(&self) -> Vec<ShardStats>;

    /// CPU time used so far by each of the router's threads (ns); by default the shards' own
    /// `cpu_ns` figures.
    fn cpu_ns(&self) -> Vec<u64> {
        self.stats().iter().map(|s| s.cpu_ns).collect()
    }

    /// [`RouterProbe::cpu_ns`], and of it the time each thread spent watching for input that
    /// had not come (`watch_ns` in stats; 0 for threads that never watch).
    fn cpu_watch_ns(&self) -> (Vec<u64>, Vec<u64>) {
        self.stats().iter().map(|s| (s.cpu_ns, s.watch_ns)).unzip()
    }

    /// The counters a run reads at the measured window's edges, summed over the shards.
    fn window_counts(&self) -> WindowCounts {
        let mut c = WindowCounts::default();
        for x in self.stats() {
            c.msgs_in += x.msgs_in;
            c.cross_shard_out += x.cross_shard_out;
            c.msgs_out += x.msgs_out;
            c.frames_out += x.batches_out;
            c.shards += 1;
        }
        c
    }
}

/// A router's counters at one moment (see [`RouterProbe::window_counts`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowCounts {
    /// Messages every shard received from clients.
    pub msgs_in: u64,
    /// Messages shards handed to other shards.
    pub cross_shard_out: u64,
    /// Messages written to clients.
    pub msgs_out: u64,
    /// Frames written to clients.
    pub frames_out: u64,
    /// Shards that answered (0: no router to ask).
    pub shards: usize,
}

impl WindowCounts {
    /// Over the window from `self` to `later`: the share of received messages handed between
    /// shards (routers of several shards), and messages per frame written.
    pub fn window(self, later: WindowCounts) -> (Option<f64>, Option<f64>) {
        let msgs_in = later.msgs_in.saturating_sub(self.msgs_in);
        let cross = (later.shards > 1 && msgs_in > 0).then(|| {
            later.cross_shard_out.saturating_sub(self.cross_shard_out) as f64 / msgs_in as f64
        });
        let frames = later.frames_out.saturating_sub(self.frames_out);
        let per_frame = (frames > 0)
            .then(|| later.msgs_out.saturating_sub(self.msgs_out) as f64 / frames as f64);
        (cross, per_frame)
    }
}

/// A request to end runs early (Ctrl-C): sending stops, what is in flight drains, and the run
/// is reported as interrupted. Cloned handles share one flag.
#[derive(Debug, Clone, Default)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    /// A flag nobody raised yet.
    pub fn new() -> Interrupt {
        Interrupt::default()
    }

    /// Raises it.
    pub fn raise(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether it was raised.
    pub fn is_raised(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// What a caller plugs into a run besides the scenario.
#[derive(Default)]
pub struct Hooks<'a> {
    /// Reads the router's counters at the window's edges.
    pub probe: Option<&'a dyn RouterProbe>,
    /// Runs when measurement begins (tests use it to disturb the router mid-run).
    pub at_measure_start: Option<Box<dyn FnOnce() + Send>>,
    /// Ends the run early when raised.
    pub interrupt: Option<Interrupt>,
    /// Called with each interval of the time series as soon as every core has reported it
    /// (live progress).
    pub on_interval: Option<&'a mut dyn FnMut(&Interval)>,
    /// Runs once every local agent is registered, before the common start is fixed (a worker
    /// waits there for the other workers); an error ends the run as a failed set-up.
    pub before_start: Option<BeforeStart<'a>>,
    /// Runs once every local core has drained its own requests, before the agents leave (a
    /// worker waits there, bounded, until the other workers drained theirs); a line it
    /// returns is a failure of the run.
    pub before_leave: Option<BeforeLeave<'a>>,
    /// The processes of a target on this machine (`crate::host::listeners`): the machine's
    /// CPU times and theirs are read at the measured window's edges ([`Outcome::cpu_window`]).
    pub target_pids: &'a [u32],
}

/// See [`Hooks::before_start`].
pub type BeforeStart<'a> = Box<dyn FnOnce() -> Result<(), String> + 'a>;
/// See [`Hooks::before_leave`].
pub type BeforeLeave<'a> = Box<dyn FnOnce() -> Option<String> + 'a>;

/// One interval of a run's time series, over all agent cores. The intervals of a run tile its
/// measured window and the drain after it: their histograms add up to the run's `rtt`, their
/// counts to its measured counts.
#[derive(Debug, Clone)]
pub struct Interval {
    /// Index from 0.
    pub index: u32,
    /// Start, ns after the measured window began.
    pub start_ns: u64,
    /// End, ns after the measured window began.
    pub end_ns: u64,
    /// Requests and replies delivered inside the measured window, in this interval.
    pub deliveries: u64,
    /// Requests that left inside the measured window, in this interval.
    pub requests_sent: u64,
    /// Measured round trips completed in this interval.
    pub round_trips: u64,
    /// Errors of every kind met in this interval.
    pub errors: u64,
    /// Round trips from the intended send time, completed in this interval.
    pub rtt: hdrhistogram::Histogram<u64>,
    /// Busy share of each agent core over the interval.
    pub agent_cpu: Vec<f64>,
    /// Of `agent_cpu`, the share each core spent watching for input that had not come.
    pub agent_watch: Vec<f64>,
    /// Busy share of each router shard over the interval, when the router reports it.
    pub router_cpu: Option<Vec<f64>>,
    /// Of `router_cpu`, the share each shard spent watching.
    pub router_watch: Option<Vec<f64>>,
}

impl Interval {
    /// Adds another share of the same interval (another core's, another worker's): the counts
    /// and the histogram add up, the span covers both.
    pub fn absorb(
        &mut self,
        (start_ns, end_ns): (u64, u64),
        [deliveries, requests_sent, round_trips, errors]: [u64; 4],
        rtt: &hdrhistogram::Histogram<u64>,
    ) {
        self.start_ns = self.start_ns.min(start_ns);
        self.end_ns = self.end_ns.max(end_ns);
        self.deliveries += deliveries;
        self.requests_sent += requests_sent;
        self.round_trips += round_trips;
        self.errors += errors;
        // Every interval histogram has the generator's bounds: adding cannot fail.
        let _ = self.rtt.add(rtt);
    }

    /// Deliveries, requests sent, round trips, errors.
    pub fn counts(&self) -> [u64; 4] {
        [self.deliveries, self.requests_sent, self.round_trips, self.errors]
    }
}

/// Blocks of agent ids runs take (`Scenario::id_base`: `1 + k · 2^21`, `k` below this).
pub const ID_BLOCKS: u32 = 2000;

/// Another run's block of agent ids than `id_base`'s, half the blocks away: a run made again at
/// once does not meet its first attempt's agents, which the router may not have let go yet.
pub fn fresh_id_base(id_base: u32) -> u32 {
    let block = id_base.saturating_sub(1) >> 21;
    1 + ((block + ID_BLOCKS / 2) % ID_BLOCKS) * (1 << 21)
}

/// Makes a run with `attempt` and, where `again` allows and the generator stood still in it
/// ([`Outcome::spoiled_by_generator`]: that attempt measured the generator, not the target),
/// once more, in another block of agent ids, after `say` was told why. Returns the run kept,
/// what `attempt` returned beside it, and why the first attempt was not kept.
pub fn made_again<T>(
    scenario: &Scenario,
    again: bool,
    say: impl FnOnce(&str),
    mut attempt: impl FnMut(&Scenario) -> (Outcome, T),
) -> (Outcome, T, Option<String>) {
    let (outcome, extra) = attempt(scenario);
    if !again || !outcome.spoiled_by_generator() {
        return (outcome, extra, None);
    }
    let why = outcome.stalls.join("; ");
    say(&why);
    let mut second = scenario.clone();
    second.id_base = fresh_id_base(second.id_base);
    let (outcome, extra) = attempt(&second);
    (outcome, extra, Some(why))
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Counters summed over agent cores.
    pub counters: GroupCounters,
    /// Histograms merged over agent cores.
    pub latencies: Latencies,
    /// Length of the measured window (ns).
    pub window_ns: u64,
    /// Busy share of each agent core over the measured window (0..1).
    pub agent_cpu: Vec<f64>,
    /// Of `agent_cpu`, the share each agent core spent watching for input that had not come
    /// (`clock::thread_watch_ns`); empty where not measured (parts of other workers).
    pub agent_watch: Vec<f64>,
    /// Busy share of each router shard over the measured window, when the router reports it.
    pub router_cpu: Option<Vec<f64>>,
    /// Of `router_cpu`, the share each shard spent watching (`watch_ns` in its stats).
    pub router_watch: Option<Vec<f64>>,
    /// A router of several shards: the share of the messages it received in the measured
    /// window that one shard handed to another (homing keeps it low: `route::accept`).
    pub cross_shard_share: Option<f64>,
    /// Messages per frame the router wrote to clients in the measured window, when it says.
    pub router_msgs_per_frame: Option<f64>,
    /// Requests neither answered nor failed when the drain ended.
    pub in_flight_at_end: u64,
    /// The drain hit its timeout.
    pub drain_timed_out: bool,
    /// Problems met (connect, registration, closed connections), each said once.
    pub failures: Vec<String>,
    /// Of `failures`, the agent cores that stood still (their timers did not run: a lost
    /// wake-up, or the machine took the core away): for that time the generator, not the
    /// target, held the traffic back, so the run measured the generator.
    pub stalls: Vec<String>,
    /// The run never started: the router could not be reached or refused the agents. The rest
    /// of a grid would fail the same way.
    pub setup_failed: bool,
    /// Every agent connection closed under the run (the router died or dropped them all).
    pub all_connections_lost: bool,
    /// Ended early by an [`Interrupt`].
    pub interrupted: bool,
    /// The time series (empty when the scenario keeps none).
    pub intervals: Vec<Interval>,
    /// This process ran a slice of the agents: requests it counts as delivered may come from
    /// other workers, so only the requester side of the accounting closes here (the merge
    /// closes the whole).
    pub partial: bool,
    /// HTTP: each pattern's figures over the measured window, merged over cores.
    pub breakdown: Vec<http::PatternStats>,
    /// `--payload-mix`: each size's figures over the measured window, merged over cores.
    pub sizes: Vec<mix::SizeStats>,
    /// `pipeline`: each hop's one-way latency by the stage it reached (0: back at the source),
    /// measured items only, merged over cores.
    pub hops: Vec<hdrhistogram::Histogram<u64>>,
    /// Coordination workloads: their own figures, merged over cores.
    pub coordination: Option<workload::CoordStats>,
    /// Deliveries one request makes (publications fan out; 1 otherwise).
    pub fan: u64,
    /// Connections the agents (HTTP: the clients) opened, over every core.
    pub connections: usize,
    /// The machine's CPU times (with the target's processes', [`Hooks::target_pids`]) at the
    /// measured window's start and end (or where the run ended, when it ended sooner): the CPU
    /// of the window alone, without set-up, warm-up, drain or the sessions' farewells.
    pub cpu_window: Option<(crate::host::CpuTimes, crate::host::CpuTimes)>,
}

/// The accounting of a run: every request sent is resolved once at its requester — a reply, a
/// router error, or given up on (an error of a client-side kind) — and every message that did not
/// arrive belongs to a request given up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Accounting {
    /// Requests sent.
    pub requests_sent: u64,
    /// Requests delivered to their recipients.
    pub requests_delivered: u64,
    /// Requests the router answered with an error.
    pub request_errors: u64,
    /// Replies sent.
    pub replies_sent: u64,
    /// Replies delivered to their requesters.
    pub replies_delivered: u64,
    /// Replies the router answered with an error.
    pub reply_errors: u64,
    /// Requests their requesters gave up on: `connection_lost`, `drain_timeout`, `aborted`.
    pub unanswered: u64,
    /// Requests and replies sent that were neither delivered nor refused by the router.
    pub messages_lost: u64,
    /// Requests with neither an answer nor an error when the run ended (0 in a sound run:
    /// the drain gives up on them as `drain_timeout`).
    pub in_flight_at_end: u64,
    /// `requests_sent = replies_delivered + request_errors + unanswered` with nothing left in
    /// flight (each term counted on its own), no message delivered or refused twice, and
    /// `messages_lost ≤ unanswered`.
    pub closed: bool,
}

impl Outcome {
    /// A run that never started: `failures` says why.
    pub fn failed_setup(failures: Vec<String>) -> Outcome {
        Outcome { failures, setup_failed: true, ..Outcome::empty() }
    }

    /// Nothing measured yet.
    pub(super) fn empty() -> Outcome {
        Outcome {
            counters: GroupCounters::default(),
            latencies: Latencies::default(),
            window_ns: 0,
            agent_cpu: Vec::new(),
            agent_watch: Vec::new(),
            router_cpu: None,
            router_watch: None,
            cross_shard_share: None,
            router_msgs_per_frame: None,
            in_flight_at_end: 0,
            drain_timed_out: false,
            failures: Vec::new(),
            stalls: Vec::new(),
            setup_failed: false,
            all_connections_lost: false,
            interrupted: false,
            intervals: Vec::new(),
            partial: false,
            breakdown: Vec::new(),
            sizes: Vec::new(),
            hops: Vec::new(),
            coordination: None,
            fan: 1,
            connections: 0,
            cpu_window: None,
        }
    }

    /// Whether the generator stood still in this run (and nothing stopped it short): its
    /// figures are the generator's, and the run is worth making again.
    pub fn spoiled_by_generator(&self) -> bool {
        !self.stalls.is_empty() && !self.setup_failed && !self.interrupted
    }

    /// The accounting check.
    pub fn accounting(&self) -> Accounting {
        let c = &self.counters;
        let (req_err, rep_err, gave_up) =
            (c.request_error_total(), c.reply_error_total(), c.unanswered_total());
        // A worker's agents receive requests other workers sent: what it sent and what it
        // received do not pair up, and only the requester side can close here.
        let (requests_lost, replies_lost) = if self.partial {
            (Some(0), Some(0))
        } else if self.fan != 1 {
            // A publication refused for one connection may still have reached the others:
            // what is missing is expected − delivered, owed to the errors and the given up.
            (
                (c.requests_sent * self.fan).checked_sub(c.requests_delivered),
                c.replies_sent.checked_sub(c.replies_delivered + rep_err),
            )
        } else {
            (
                c.requests_sent.checked_sub(c.requests_delivered + req_err),
                c.replies_sent.checked_sub(c.replies_delivered + rep_err),
            )
        };
        let lost = requests_lost.unwrap_or(0) + replies_lost.unwrap_or(0);
        let closed = c.requests_sent
            == c.replies_delivered + req_err + gave_up + self.in_flight_at_end
            && self.in_flight_at_end == 0
            && requests_lost.is_some()
            && replies_lost.is_some()
            && lost <= (gave_up + if self.fan != 1 { req_err } else { 0 }) * self.fan;
        Accounting {
            requests_sent: c.requests_sent,
            requests_delivered: c.requests_delivered,
            request_errors: req_err,
            replies_sent: c.replies_sent,
            replies_delivered: c.replies_delivered,
            reply_errors: rep_err,
            unanswered: gave_up,
            messages_lost: lost,
            in_flight_at_end: self.in_flight_at_end,
            closed,
        }
    }

    /// Messages delivered by the router per second of the measured window (requests and
    /// replies each count): the throughput figure of every report.
    pub fn throughput(&self) -> f64 {
        if self.window_ns == 0 {
            return 0.0;
        }
        self.counters.window_deliveries as f64 / (self.window_ns as f64 / 1e9)
    }
}

/// Runs `scenario` against the router at `addr`. `probe`, when given, reads the router's
/// counters at the window's edges; `at_measure_start` runs when measurement begins (tests use it
/// to disturb the router mid-run).
pub fn run(
    scenario: &Scenario,
    addr: SocketAddr,
    probe: Option<&dyn RouterProbe>,
    at_measure_start: Option<Box<dyn FnOnce() + Send>>,
) -> Outcome {
    driver::run(scenario, addr, Hooks { probe, at_measure_start, ..Hooks::default() })
}

/// Runs `scenario` against the router at `addr` with everything a caller may plug in.
pub fn run_with(scenario: &Scenario, addr: SocketAddr, hooks: Hooks<'_>) -> Outcome {
    driver::run(scenario, addr, hooks)
}
