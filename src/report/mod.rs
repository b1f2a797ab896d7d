//! The report: what a benchmark grid measured, in the seed load tester's JSON schema, extended.
//!
//! `docs/REPORT.md` documents every field. The seed's fields keep their names, types and
//! meanings where the seed was sound; the latency fields carry the round trip measured from the
//! intended send time (the honest one), and throughput is router deliveries per second. Each
//! export sits in its own file: [`json`], [`text`], [`csv`], [`hlog`], [`html`]; [`figures`]
//! reads the headline figures back from any report's JSON for [`threshold`], [`baseline`] and
//! the charts.

pub mod baseline;
pub mod csv;
pub mod figures;
pub mod hlog;
pub mod html;
pub mod json;
pub mod part;
mod run;
pub mod text;
pub mod threshold;

pub use run::*;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::metrics::LatencySummary;
use crate::placement::Plan;

/// Version of the extended schema; bumped when a field changes meaning.
pub const SCHEMA_VERSION: u32 = 1;

/// A whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Aggregates over successful runs.
    pub summary: Summary,
    /// One entry per run, in run order.
    pub results: Vec<RunResult>,
    /// The grid that was asked for.
    pub config: ReportConfig,
    /// Extended schema version.
    pub schema_version: u32,
    /// The tool that wrote this.
    pub tool: Tool,
    /// Where router and agents ran.
    pub placement: PlacementInfo,
    /// The machine.
    pub host: serde_json::Value,
    /// Stopped by Ctrl-C: `results` holds the runs that finished, the last one cut short.
    pub interrupted: bool,
    /// When the command started, UTC, RFC 3339.
    pub started_at: String,
    /// The command line, as given.
    pub command_line: Vec<String>,
    /// Latency figures, rates and histograms cover the measured windows only; `accounting`
    /// counts every message of a run, warm-up included (so that it closes).
    pub accounting_includes_warmup: bool,
    /// `--threshold` checks, per scenario (empty when none was given).
    pub thresholds: Vec<threshold::Check>,
    /// `--find-max-rate`: per scenario, the search and its curve (empty otherwise).
    pub rate_search: Vec<RateSearch>,
    /// `--find-max-agents`: per scenario, the search over agent counts and its curve (left
    /// out otherwise).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub agent_search: Vec<AgentSearch>,
    /// `--baseline`: this report against a saved one.
    pub baseline: Option<baseline::Diff>,
    /// `a2a-bench worker`: which part of a multi-host run this is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<WorkerInfo>,
    /// `a2a-bench merge`: the parts this report was merged from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged: Option<MergeInfo>,
}

impl Report {
    /// The report of `results` as they were measured: no thresholds judged, no baseline, no
    /// rate search, not a worker's part, not merged (the callers add what they have).
    pub fn of_runs(
        results: Vec<RunResult>,
        config: ReportConfig,
        placement: PlacementInfo,
        stalls: &[crate::host::Stalls],
        provenance: &Provenance,
    ) -> Report {
        Report {
            summary: Summary::of(&results),
            results,
            config,
            schema_version: SCHEMA_VERSION,
            tool: Tool::default(),
            placement,
            host: crate::host::facts_with_stalls(stalls),
            started_at: provenance.started_at.clone(),
            command_line: provenance.command_line.clone(),
            accounting_includes_warmup: true,
            interrupted: false,
            thresholds: Vec::new(),
            rate_search: Vec::new(),
            agent_search: Vec::new(),
            baseline: None,
            worker: None,
            merged: None,
        }
    }
}

/// Which worker wrote a part.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct WorkerInfo {
    /// This worker's index, from 0.
    pub index: u32,
    /// Workers in the run.
    pub workers: u32,
    /// The run's id, shared by its workers.
    pub run_id: String,
    /// The host it ran on.
    pub hostname: String,
}

/// One worker's figures for one run, in a merged report.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerRun {
    /// Router deliveries per second counted at this worker's agents.
    pub throughput_msg_per_sec: f64,
    /// Its agents' p99 round trip, ms.
    pub p99_latency_ms: f64,
    /// Its errors.
    pub errors: u64,
    /// Which side limited it.
    pub bottleneck: String,
    /// Its status (its accounting is its requesters' side only).
    pub status: String,
    /// Why it failed.
    pub failure: Option<String>,
}

/// One part of a merged report.
#[derive(Debug, Clone, Serialize)]
pub struct MergedPart {
    /// Worker index.
    pub index: u32,
    /// Its host.
    pub hostname: String,
    /// The file it came from.
    pub file: String,
    /// Per run of the grid.
    pub runs: Vec<WorkerRun>,
}

/// Where a merged report came from.
#[derive(Debug, Clone, Serialize)]
pub struct MergeInfo {
    /// The run's id.
    pub run_id: String,
    /// Workers the run had.
    pub workers: u32,
    /// The parts merged.
    pub parts: Vec<MergedPart>,
    /// Workers whose part is missing (killed, or failed before writing it).
    pub missing: Vec<u32>,
    /// `within one host`, or why one-way latency is left out.
    pub one_way: String,
}
/// `--find-max-rate` for one scenario: the highest open-loop rate that held the SLO and was
/// sustained, within `precision`, and every step on the way.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct RateSearch {
    /// The scenario (topology × agents, window).
    pub scenario: String,
    /// The SLO as given.
    pub slo: String,
    /// The closed-loop request rate measured first (the search's yardstick).
    pub closed_loop_rate_per_sec: f64,
    /// The highest asked rate that held (every confirming run); null when none did.
    pub max_rate_per_sec: Option<f64>,
    /// The lowest asked rate that failed; null when none failed up to the search's cap.
    pub first_failing_rate_per_sec: Option<f64>,
    /// `(first failing − max) / first failing` reached, or the target when none failed.
    pub precision: f64,
    /// Why the search ended: `converged`, `cap` (held up to the cap), `nothing_held`,
    /// `failed` (a run could not be made), `interrupted`.
    #[serde(deserialize_with = "known_word")]
    pub ended: &'static str,
    /// Every step, in the order run.
    pub steps: Vec<SearchStep>,
}

/// `--find-max-agents` for one scenario: the most agents, each asking the same open-loop
/// rate, that held the SLO and were sustained, within `precision`, and every step on the way.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct AgentSearch {
    /// The scenario (topology, window), without an agent count: the count is what is searched.
    pub scenario: String,
    /// The SLO as given.
    pub slo: String,
    /// What is counted: `agents` (virtual agents on a router) or `clients` (`a2a-bench http`).
    #[serde(deserialize_with = "known_word")]
    pub counts: &'static str,
    /// Requests per second each agent asks for (`--find-max-agents`).
    pub agent_rate_per_sec: f64,
    /// The count the search started from (the first of `--agents`).
    pub start_agents: u32,
    /// The most agents that held (every confirming run); null when no count did.
    pub max_agents: Option<u32>,
    /// The fewest agents that failed; null when none failed up to the search's cap.
    pub first_failing_agents: Option<u32>,
    /// The total rate asked of `max_agents` (`max_agents × agent_rate_per_sec`).
    pub max_rate_per_sec: Option<f64>,
    /// `(first failing − max) / first failing` reached, or the target when none failed.
    pub precision: f64,
    /// Why the search ended: `converged` (within the precision, or one agent apart), `cap`
    /// (held up to the search's cap), `nothing_held`, `interrupted`.
    #[serde(deserialize_with = "known_word")]
    pub ended: &'static str,
    /// Every step, in the order run.
    pub steps: Vec<SearchStep>,
}

/// A search's word read back from a report (`merge` carries a worker's searches): one of
/// the words the searches write.
fn known_word<'de, D: serde::Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    const WORDS: [&str; 7] =
        ["converged", "cap", "nothing_held", "failed", "interrupted", "agents", "clients"];
    let word = <String as serde::Deserialize>::deserialize(d)?;
    WORDS.into_iter().find(|w| *w == word).ok_or_else(|| {
        serde::de::Error::custom(format!("`{word}` is none of the searches' words {WORDS:?}"))
    })
}

/// One step of a rate or agent search: one asked rate and agent count, run until its verdict
/// is confirmed.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct SearchStep {
    /// Agents (virtual clients) of its runs.
    pub agents: u32,
    /// Total requests per second asked for.
    pub asked_rate_per_sec: f64,
    /// Median achieved rate of its runs.
    pub achieved_rate_per_sec: f64,
    /// Median p50 round trip, ms.
    pub p50_latency_ms: f64,
    /// Median p99 round trip, ms.
    pub p99_latency_ms: f64,
    /// Errors over its runs.
    pub errors: u64,
    /// Runs that held (SLO met and rate sustained) out of those made.
    pub runs_held: u32,
    /// Runs made (2, or 3 when the first two disagreed).
    pub runs: u32,
    /// The verdict.
    pub held: bool,
    /// Indexes of its runs in `results`.
    pub result_indexes: Vec<usize>,
    /// Why a run of this step could not start (an agent search's step past what the machine
    /// can open, or a target gone): the step failed, and the search went on below it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub could_not_start: Option<String>,
}

/// What every report carries besides its figures: when, how, and by which build it was made.
#[derive(Debug, Clone)]
pub struct Provenance {
    /// When the command started, UTC, RFC 3339.
    pub started_at: String,
    /// The command line, as given, its secrets masked ([`masked`]).
    pub command_line: Vec<String>,
}

impl Provenance {
    /// Now, and this process's arguments.
    pub fn now() -> Provenance {
        Provenance {
            started_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            command_line: masked(std::env::args()),
        }
    }
}

/// Flags whose value is a secret, masked whole in a report's command line.
const SECRET_FLAGS: [&str; 2] = ["--token", "--auth-token"];
/// Flags whose value is a header, `Name: value`: the value is masked, the name kept.
const HEADER_FLAGS: [&str; 2] = ["--header", "-H"];

/// A command line to keep in a report: every secret a flag gives (a token, a header's value,
/// which may be a key) replaced by `***`, as a separate argument or joined by `=` (a short
/// `-H` also joined without it).
pub fn masked(args: impl IntoIterator<Item = String>) -> Vec<String> {
    let header = |v: &str| match v.split_once(':') {
        Some((name, _)) => format!("{name}: ***"),
        None => "***".to_string(),
    };
    let mut out: Vec<String> = Vec::new();
    for arg in args {
        let arg = match out.last().map(String::as_str) {
            Some(prev) if SECRET_FLAGS.contains(&prev) => "***".to_string(),
            Some(prev) if HEADER_FLAGS.contains(&prev) => header(&arg),
            _ => match arg.split_once('=') {
                Some((flag, _)) if SECRET_FLAGS.contains(&flag) => format!("{flag}=***"),
                Some((flag, v)) if HEADER_FLAGS.contains(&flag) => format!("{flag}={}", header(v)),
                _ if arg.starts_with("-H") && arg.len() > 2 => format!("-H{}", header(&arg[2..])),
                _ => arg,
            },
        };
        out.push(arg);
    }
    out
}

/// Name and version of the writer.
#[derive(Debug, Clone, Serialize)]
pub struct Tool {
    /// `a2a-bench`.
    pub name: &'static str,
    /// Crate version.
    pub version: &'static str,
    /// The git revision it was built from, when built from a checkout.
    pub git_revision: Option<&'static str>,
}

impl Default for Tool {
    fn default() -> Self {
        Tool {
            name: "a2a-bench",
            version: env!("CARGO_PKG_VERSION"),
            git_revision: option_env!("A2A_BENCH_GIT_REVISION"),
        }
    }
}

/// The router under test and the cores used.
#[derive(Debug, Clone, Serialize)]
pub struct PlacementInfo {
    /// `embedded glommio router`, or the URL of an external router.
    pub router: String,
    /// The core split (embedded router) or the agent cores alone (external).
    pub plan: Plan,
}

/// Min / avg / max throughput over a set of runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Spread {
    /// Mean.
    pub avg_throughput: f64,
    /// Largest.
    pub max_throughput: f64,
    /// Smallest.
    pub min_throughput: f64,
}

impl Spread {
    fn of(values: &[f64]) -> Spread {
        if values.is_empty() {
            return Spread::default();
        }
        Spread {
            avg_throughput: values.iter().sum::<f64>() / values.len() as f64,
            max_throughput: values.iter().copied().fold(f64::MIN, f64::max),
            min_throughput: values.iter().copied().fold(f64::MAX, f64::min),
        }
    }
}

/// The seed's summary, computed over successful runs only.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Runs in the grid.
    pub total_runs: u64,
    /// Runs whose accounting closed with no error.
    pub successful: u64,
    /// The others (not averaged in).
    pub failed: u64,
    /// Mean throughput (router deliveries per second) over the averaged runs.
    pub avg_throughput: f64,
    /// Largest throughput.
    pub max_throughput: f64,
    /// Smallest throughput.
    pub min_throughput: f64,
    /// Mean of the runs' mean round trips (intended-time), ms.
    pub avg_latency_ms: f64,
    /// Largest round trip seen in any run, ms.
    pub max_latency_ms: f64,
    /// Throughput per topology.
    pub by_topology: BTreeMap<String, Spread>,
    /// Throughput per agent count, in numeric order (JSON keys are the counts as strings, as in
    /// the seed).
    pub by_agent_count: BTreeMap<u32, Spread>,
    /// Throughput per payload size (bytes), when the runs had several.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub by_payload_size: BTreeMap<usize, Spread>,
    /// Runs per status (`ok`, `overloaded`, `too_short`, `interrupted`, `failed`).
    pub by_status: BTreeMap<String, u64>,
    /// Runs the averages are over: successful, neither too short nor interrupted.
    pub averaged_runs: u64,
    /// Of those, the runs that measured round trips: the latency means are over these.
    pub latency_runs: u64,
    /// What the throughput figures count.
    pub throughput_unit: &'static str,
}

/// The grid asked for: the seed's keys first, then ours.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct ReportConfig {
    /// `--agents`.
    pub agent_counts: Vec<u32>,
    /// `--messages` (requests per agent); empty in duration mode.
    pub message_counts: Vec<u64>,
    /// `--topologies`.
    pub topologies: Vec<String>,
    /// `--intervals` (ms between requests per agent); empty when not used.
    pub message_intervals_ms: Vec<u64>,
    /// `--repeat`.
    pub repeat_count: u32,
    /// `--duration` in duration mode.
    pub duration_sec: Option<f64>,
    /// `--rate` values (total requests/s); empty when not used.
    pub rates_per_sec: Vec<f64>,
    /// `--window`.
    pub window: u32,
    /// `--warmup`.
    pub warmup_sec: f64,
    /// `--payload-size` (the first, when it is a list).
    pub payload_size: usize,
    /// `--payload-size` as a list of several sizes, each a dimension of the grid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_sizes: Option<Vec<usize>>,
    /// `--payload-mix`: each request's size drawn by weight (`64B:90,64K:10`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_mix: Option<String>,
    /// `--batch`.
    pub batch: u32,
    /// `--compression`.
    pub compression: String,
    /// `--agents-per-conn`.
    pub agents_per_conn: u32,
    /// `--fanout`.
    pub fanout: u32,
    /// `--router`, or null for the embedded router.
    pub router: Option<String>,
    /// `--transport`.
    pub transport: String,
    /// `--agent-io`: whose socket I/O the agent cores used (glommio, uring).
    #[serde(default)]
    pub agent_io: String,
    /// `--router-io`: whose socket I/O the glommio router's shards used (glommio, uring).
    #[serde(default)]
    pub router_io: String,
    /// `--poll`: the latency mode (router shards and agent cores polling instead of sleeping).
    #[serde(default)]
    pub poll: bool,
    /// Connections opened with a `home` frame (no `--no-homing`): a sharded router placed them
    /// by their agents' ids, not by load. False in reports written before homing existed.
    #[serde(default)]
    pub homing: bool,
    /// `--protocol`.
    pub protocol: String,
    /// `a2a-bench http`: what the clients sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpConfig>,
}

/// `a2a-bench http`'s settings, in a report's config.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct HttpConfig {
    /// `--url`.
    pub url: String,
    /// `--pattern`, expanded (`mcp:mixed` is tools/list and tools/call).
    pub patterns: Vec<String>,
    /// Each pattern's weight in the mix (`a2a:message=4`; 1 by default), in `patterns`' order
    /// (empty in reports from before weights).
    #[serde(default)]
    pub weights: Vec<u32>,
    /// `--connections`: exactly so many, at most one per client; null: one per client.
    pub connections: Option<u32>,
    /// `--pipeline`: most requests on the wire per connection.
    pub pipeline: u32,
    /// `--http2`: HTTP/2 over cleartext (h2c) instead of HTTP/1.1.
    #[serde(default)]
    pub http2: bool,
    /// `--mcp-version`, when an MCP pattern runs.
    pub mcp_version: Option<String>,
    /// `--preload`: registry agents registered before the runs.
    pub preload: u32,
    /// `--turns`, when `a2a:conversation` runs.
    pub turns: Option<u32>,
    /// `--page-size`, when a list pattern runs.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub page_size: Option<u32>,
    /// `--page-walk`: the list patterns followed `nextPageToken`.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub page_walk: bool,
    /// `--list-status`: the state the list patterns asked for (`TASK_STATE_…`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub list_status: Option<String>,
    /// `--list-artifacts`: the list patterns asked for the tasks' artifacts.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub list_artifacts: bool,
    /// `--task-poll` in seconds, when a task pattern runs.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub task_poll_sec: Option<f64>,
    /// `--task-poll-max` in seconds: the polls backed off up to it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub task_poll_max_sec: Option<f64>,
    /// `--task-timeout` in seconds, when a task pattern runs.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub task_timeout_sec: Option<f64>,
    /// Whether a bearer token was sent (never the token).
    pub auth: bool,
    /// `--timeout` in seconds; null: none.
    #[serde(default)]
    pub timeout_sec: Option<f64>,
    /// https://: over TLS.
    #[serde(default)]
    pub tls: bool,
    /// Whether connections carry many requests (false: `--no-keepalive`).
    #[serde(default = "yes")]
    pub keepalive: bool,
    /// `--header`s' names (never their values: they may be keys).
    #[serde(default)]
    pub headers: Vec<String>,
    /// The push patterns: the URL the target was told to notify (before
    /// `/{run}/{core}/{client}/{seq}`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub push_url: Option<String>,
    /// `--push-auth`: the push configs asked for authenticated notifications.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub push_auth: bool,
    /// `--text-file`: where the messages' texts came from.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub text_file: Option<TextFile>,
    /// `--args-file`: where `mcp:tools/call`'s arguments came from.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub args_file: Option<TextFile>,
    /// `--compression`: `gzip:LEVEL` (requests gzipped, answers asked for gzipped) or
    /// `answers`; absent: none.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub compression: Option<String>,
}

/// `--text-file` or `--args-file` in a report's config: the file, how many texts it gave
/// (its lines that are not blank; compact JSON for arguments), and their bytes.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct TextFile {
    /// The file as given.
    pub path: String,
    /// Its texts (lines not blank).
    pub texts: u64,
    /// Their mean length in bytes (UTF-8, before escaping).
    pub bytes_mean: f64,
    /// The longest's.
    pub bytes_max: u64,
}

fn yes() -> bool {
    true
}

/// One pattern of an HTTP run (requests of the measured window).
#[derive(Debug, Clone, Serialize)]
pub struct PatternResult {
    /// The pattern's name.
    pub pattern: &'static str,
    /// Answers (2xx with the expected content type and shape).
    pub ok: u64,
    /// Errors.
    pub errors: u64,
    /// Errors by kind.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Answers per second of the measured window.
    pub ok_per_sec: f64,
    /// Latency of answers from the intended send time.
    pub latency: LatencySummary,
    /// Streams: from the intended send time to the first event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_event: Option<LatencySummary>,
    /// Streams: server-sent events per answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_per_answer: Option<f64>,
    /// Tasks: from the intended send time to the answer that accepted the task (or answered
    /// at once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted: Option<LatencySummary>,
    /// Tasks: `GetTask` polls (or subscriptions) per task that completed; none for the push
    /// patterns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub polls_per_answer: Option<f64>,
}

impl PatternResult {
    fn of(s: &crate::loadgen::http::PatternStats, window_s: f64) -> PatternResult {
        let (stream, task) = (s.pattern.is_stream(), s.pattern.is_task());
        PatternResult {
            pattern: s.pattern.name(),
            ok: s.ok,
            errors: s.errors.iter().map(|(_, n)| n).sum(),
            errors_by_kind: s.errors.iter().cloned().collect(),
            ok_per_sec: if window_s > 0.0 { s.ok as f64 / window_s } else { 0.0 },
            latency: LatencySummary::of(&s.rtt),
            first_event: stream.then(|| LatencySummary::of(&s.first_event)),
            events_per_answer: stream.then(|| s.events as f64 / s.ok.max(1) as f64),
            accepted: task.then(|| LatencySummary::of(&s.first_event)),
            // A notified task's end is no request of the client's.
            polls_per_answer: (task && !s.pattern.is_push())
                .then(|| s.events as f64 / s.ok.max(1) as f64),
        }
    }
}

/// Latency views of one run.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyViews {
    /// Round trip from the intended send time (coordinated omission corrected).
    pub rtt: LatencySummary,
    /// Round trip from the actual send time.
    pub rtt_raw: LatencySummary,
    /// Delivery latency of each request and reply.
    pub one_way: LatencySummary,
    /// The percentile spectrum of `rtt` (wrk2 style): `[percentile, ms]` pairs from 0 to 100,
    /// dense towards the tail.
    pub rtt_spectrum: Vec<[f64; 2]>,
}

/// One interval of a run's time series (`--interval`).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct IntervalPoint {
    /// Start, seconds after the measured window began.
    pub t_sec: f64,
    /// Length, s (the last interval holds the rest of the run, the drain included).
    pub duration_sec: f64,
    /// Router deliveries per second inside the measured window.
    pub throughput_msg_per_sec: f64,
    /// Requests that left per second.
    pub sent_per_sec: f64,
    /// Measured round trips completed.
    pub round_trips: u64,
    /// Median round trip (intended-time) of the round trips completed in the interval, ms.
    pub p50_latency_ms: f64,
    /// 99th percentile, ms.
    pub p99_latency_ms: f64,
    /// Largest, ms.
    pub max_latency_ms: f64,
    /// Errors of every kind.
    pub errors: u64,
    /// Busy share of each agent core.
    pub agent_cpu: Vec<f64>,
    /// Of `agent_cpu`, the share each agent core spent watching for input that had not come
    /// (CPU used without work: a spin before sleeping, or `--poll`).
    #[serde(default)]
    pub agent_watch: Vec<f64>,
    /// Busy share of each router shard, when the router reports it.
    pub router_cpu: Option<Vec<f64>>,
    /// Of `router_cpu`, the share each shard spent watching.
    #[serde(default)]
    pub router_watch: Option<Vec<f64>>,
}

impl IntervalPoint {
    /// The report's view of one interval.
    pub fn of(iv: &crate::loadgen::Interval) -> IntervalPoint {
        let secs = iv.end_ns.saturating_sub(iv.start_ns) as f64 / 1e9;
        let per_s = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        let rtt = LatencySummary::of(&iv.rtt);
        IntervalPoint {
            t_sec: iv.start_ns as f64 / 1e9,
            duration_sec: secs,
            throughput_msg_per_sec: per_s(iv.deliveries),
            sent_per_sec: per_s(iv.requests_sent),
            round_trips: iv.round_trips,
            p50_latency_ms: rtt.p50_ms,
            p99_latency_ms: rtt.p99_ms,
            max_latency_ms: rtt.max_ms,
            errors: iv.errors,
            agent_cpu: iv.agent_cpu.clone(),
            agent_watch: iv.agent_watch.clone(),
            router_cpu: iv.router_cpu.clone(),
            router_watch: iv.router_watch.clone(),
        }
    }
}

/// Percentiles of the spectrum: 0, every 10 to 90, then halving the distance to 100 down to
/// 99.999, then 100.
pub const SPECTRUM: [f64; 23] = [
    0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 75.0, 80.0, 87.5, 90.0, 93.75, 95.0, 96.875,
    97.5, 99.0, 99.5, 99.9, 99.95, 99.99, 99.999, 100.0,
];

/// `[percentile, ms]` pairs of `h` at [`SPECTRUM`] (empty when `h` is).
pub fn spectrum(h: &hdrhistogram::Histogram<u64>) -> Vec<[f64; 2]> {
    if h.is_empty() {
        return Vec::new();
    }
    SPECTRUM.iter().map(|&p| [p, h.value_at_quantile(p / 100.0) as f64 / 1e6]).collect()
}

impl Summary {
    /// Aggregates `results`; failed runs are counted but not averaged in.
    pub fn of(results: &[RunResult]) -> Summary {
        // Averages leave out runs too short to mean anything and runs cut short.
        let ok: Vec<&RunResult> = results
            .iter()
            .filter(|r| r.success && !matches!(r.status, "too_short" | "interrupted"))
            .collect();
        let thr: Vec<f64> = ok.iter().map(|r| r.throughput_msg_per_sec).collect();
        let spread = Spread::of(&thr);
        let mut by_topology: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let mut by_agents: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
        let mut by_payload: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
        for r in &ok {
            by_topology.entry(r.topology.clone()).or_default().push(r.throughput_msg_per_sec);
            by_agents.entry(r.agent_count).or_default().push(r.throughput_msg_per_sec);
            by_payload.entry(r.payload_size).or_default().push(r.throughput_msg_per_sec);
        }
        if by_payload.len() < 2 {
            by_payload.clear();
        }
        // A run with no round trip measured (an open loop far behind its schedule) has no mean.
        let lat: Vec<f64> =
            ok.iter().filter(|r| r.latency.rtt.count > 0).map(|r| r.avg_latency_ms).collect();
        let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
        for r in results {
            *by_status.entry(r.status.to_string()).or_default() += 1;
        }
        let successful = results.iter().filter(|r| r.success).count() as u64;
        Summary {
            total_runs: results.len() as u64,
            successful,
            failed: results.len() as u64 - successful,
            avg_throughput: spread.avg_throughput,
            max_throughput: spread.max_throughput,
            min_throughput: spread.min_throughput,
            avg_latency_ms: if lat.is_empty() {
                0.0
            } else {
                lat.iter().sum::<f64>() / lat.len() as f64
            },
            max_latency_ms: ok.iter().map(|r| r.max_latency_ms).fold(0.0, f64::max),
            by_topology: by_topology.into_iter().map(|(k, v)| (k, Spread::of(&v))).collect(),
            by_agent_count: by_agents.into_iter().map(|(k, v)| (k, Spread::of(&v))).collect(),
            by_payload_size: by_payload.into_iter().map(|(k, v)| (k, Spread::of(&v))).collect(),
            by_status,
            averaged_runs: ok.len() as u64,
            latency_runs: lat.len() as u64,
            throughput_unit: if results.iter().any(|r| r.topology == "client") {
                "answered HTTP requests per second"
            } else if results.iter().any(|r| r.coordination.is_some()) {
                "router deliveries per second (requests and replies each count; a publication once per recipient; a lock cycle or barrier pass once)"
            } else {
                "router deliveries per second (requests and replies each count)"
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_read_back_from_a_report_is_the_search_written() {
        // Proves `merge` can carry a worker's searches: an agent search with a step, written
        // and read back, is written the same again; a word no search writes is refused.
        let step = SearchStep {
            agents: 8,
            asked_rate_per_sec: 4000.0,
            achieved_rate_per_sec: 3999.5,
            p50_latency_ms: 0.2,
            p99_latency_ms: 0.9,
            errors: 0,
            runs_held: 2,
            runs: 2,
            held: true,
            result_indexes: vec![3, 4],
            could_not_start: None,
        };
        let s = AgentSearch {
            scenario: "ring w16".into(),
            slo: "errors==0".into(),
            counts: "clients",
            agent_rate_per_sec: 500.0,
            start_agents: 6,
            max_agents: Some(8),
            first_failing_agents: Some(9),
            max_rate_per_sec: Some(4000.0),
            precision: 0.11,
            ended: "converged",
            steps: vec![step],
        };
        let v = serde_json::to_value(&s).unwrap();
        let back = <AgentSearch as serde::Deserialize>::deserialize(v.clone()).unwrap();
        assert_eq!(serde_json::to_value(&back).unwrap(), v);
        assert_eq!((back.counts, back.ended), ("clients", "converged"));
        let mut odd = v.clone();
        odd["ended"] = "sideways".into();
        let e = <AgentSearch as serde::Deserialize>::deserialize(odd).unwrap_err().to_string();
        assert!(e.contains("`sideways` is none of the searches' words"), "{e}");
    }

    #[test]
    fn a_reports_command_line_keeps_no_secret() {
        // Proves tokens and header values never reach a report's command line, in every way
        // clap takes them (separate, joined by `=`, a short -H joined), and that the rest of
        // the line, header names included, is kept as given.
        let line = [
            "a2a-bench",
            "http",
            "--auth-token",
            "t1",
            "--token=t2",
            "-H",
            "X-Api-Key: k1",
            "--header=X-B: k2",
            "-HX-C:k3",
            "--header",
            "odd",
            "--agents",
            "4",
            "--url",
            "u",
        ];
        let got = masked(line.map(String::from));
        let want = [
            "a2a-bench",
            "http",
            "--auth-token",
            "***",
            "--token=***",
            "-H",
            "X-Api-Key: ***",
            "--header=X-B: ***",
            "-HX-C: ***",
            "--header",
            "***",
            "--agents",
            "4",
            "--url",
            "u",
        ];
        assert_eq!(got, want);
        let text = got.join(" ");
        for secret in ["t1", "t2", "k1", "k2", "k3", "odd"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }

    #[test]
    fn a_saved_report_reads_back_to_the_same_floats() {
        // Proves JSON round trips floats exactly (serde_json's float_roundtrip): without it
        // these read back one unit in the last place off, and `a2a-bench report` rendered a
        // saved report differently from the run that wrote it.
        for x in [0.0038175797556748957_f64, 0.0011038839315591963, 0.0011258299482118223] {
            let back: f64 = serde_json::from_str(&serde_json::to_string(&x).unwrap()).unwrap();
            assert_eq!(back.to_bits(), x.to_bits(), "{x}");
        }
    }

    #[test]
    fn bottleneck_names_the_saturated_side() {
        // Proves the generator is blamed when it, not the router, is saturated, and so on.
        assert_eq!(bottleneck(&[0.99], Some(&[0.5])), "generator");
        assert_eq!(bottleneck(&[0.4], Some(&[0.95, 0.3])), "router");
        assert_eq!(bottleneck(&[0.95], Some(&[0.95])), "both");
        assert_eq!(bottleneck(&[0.90], Some(&[0.88])), "both", "a near tie blames neither side");
        assert_eq!(bottleneck(&[0.2], Some(&[0.3])), "neither");
        assert_eq!(bottleneck(&[0.2], None), "unknown");
        // A core busy watching for input is not saturated: judged by its work.
        let (agents, router) = (net_of_watch(&[0.99], &[0.5]), net_of_watch(&[0.97, 0.3], &[]));
        assert!((agents[0] - 0.49).abs() < 1e-9 && router == [0.97, 0.3]);
        assert_eq!(bottleneck(&agents, Some(&router)), "router");
        assert_eq!(bottleneck(&net_of_watch(&[0.95], &[0.2]), Some(&[0.5])), "neither");
    }

    #[test]
    fn router_and_agents_that_fill_the_cores_they_share_are_bound_by_them() {
        // Proves a run whose router and agents took turns on one core is named bound by the
        // shared core, not "neither" (each side alone was about half busy), and that watch and
        // room left keep the judgement by side.
        let cpu = |agents: f64, agent_watch: f64, router: f64| CpuInfo {
            agent_cores: vec![agents],
            agent_watch: Some(vec![agent_watch]),
            router_cores: Some(vec![router]),
            router_watch: None,
            bottleneck: bottleneck(&net_of_watch(&[agents], &[agent_watch]), Some(&[router]))
                .into(),
            router_cross_shard_share: None,
            router_msgs_per_frame: None,
            others_share: None,
            target_cores: None,
        };
        let one = CoreSharing { pairs: vec![(0, 0)], together: 1 };
        let mut c = cpu(0.5, 0.0, 0.48);
        assert_eq!(c.bottleneck, "neither");
        c.judge_shared(&one);
        assert_eq!(c.bottleneck, SHARED_CORES);
        // Half the agents' share was watching: the core had room.
        let mut c = cpu(0.5, 0.25, 0.48);
        c.judge_shared(&one);
        assert_eq!(c.bottleneck, "neither");
        // Router shards on cores 0 and 1, agents on core 1 (the measured case of an external
        // router on 0-1): core 1 is full though the three shares add up to less than two
        // cores (shard 0 watched a third of its time).
        let mut c = cpu(0.58, 0.0, 0.92);
        c.router_cores = Some(vec![0.92, 0.40]);
        c.router_watch = Some(vec![0.34, 0.0]);
        let on_core_1 = CoreSharing { pairs: vec![(0, 1)], together: 2 };
        c.judge_shared(&on_core_1);
        assert_eq!(c.bottleneck, SHARED_CORES);
        // The same with room on core 1.
        let mut c = cpu(0.3, 0.0, 0.92);
        c.router_cores = Some(vec![0.92, 0.40]);
        c.judge_shared(&on_core_1);
        assert_ne!(c.bottleneck, SHARED_CORES);
        // A target that reports no shards is judged by its processes' CPU on this machine,
        // over all the cores the two use together.
        let mut c = cpu(0.5, 0.0, 0.0);
        c.router_cores = None;
        c.judge_shared(&one);
        assert_eq!(c.bottleneck, "neither");
        c.target_cores = Some(0.47);
        c.judge_shared(&one);
        assert_eq!(c.bottleneck, SHARED_CORES);
        c.bottleneck = "neither".into();
        c.judge_shared(&CoreSharing { pairs: vec![(0, 0)], together: 2 });
        assert_eq!(c.bottleneck, "neither");
    }

    #[test]
    fn a_target_that_reports_no_shards_is_judged_by_its_processes_over_their_pinned_cores() {
        // Proves a router or server in processes of its own that reports no shard CPU (a tokio
        // baseline, another project's router) is judged by its processes' CPU over the cores
        // its threads are pinned to; before, such a run read `unknown` whatever it did. A
        // target whose threads are not pinned, or one that reports its shards, is left alone.
        let cpu = |agents: f64, target: f64| CpuInfo {
            agent_cores: vec![agents],
            agent_watch: None,
            router_cores: None,
            router_watch: None,
            bottleneck: bottleneck(&[agents], None).into(),
            router_cross_shard_share: None,
            router_msgs_per_frame: None,
            others_share: None,
            target_cores: Some(target),
        };
        for (agents, target, pinned, judged) in [
            (0.4, 0.97, 1, "router"),
            (0.4, 1.9, 2, "router"),
            (0.4, 0.97, 2, "neither"),
            (0.99, 0.5, 1, "generator"),
            (0.95, 0.95, 1, "both"),
            (0.4, 0.97, 0, "unknown"),
        ] {
            let mut c = cpu(agents, target);
            c.judge_target(pinned);
            assert_eq!(c.bottleneck, judged, "agents {agents}, target {target} on {pinned}");
        }
        let mut c = cpu(0.4, 0.97);
        c.router_cores = Some(vec![0.3]);
        c.bottleneck = "neither".into();
        c.judge_target(1);
        assert_eq!(c.bottleneck, "neither", "its shards' own figures stand");
    }
}
