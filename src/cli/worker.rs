//! `a2a-bench worker` and `a2a-bench merge`: one scenario's agents driven from several hosts,
//! the way OpenMessaging Benchmark runs workers, and their parts merged exactly.
//!
//! Every worker runs the same grid with the same flags against the same router, each its slice
//! of every run's agents (`--index I --workers N`: agents `I·n/N ..< (I+1)·n/N`). Agent ids come
//! from `--run-id`, so the workers agree on them without talking. They meet through the router
//! itself: each registers a coordinator agent and enters a router barrier before each run's
//! start (so nobody sends before every worker's agents are registered) and after its drain (so
//! no worker's agents leave while another's requests to them may be in flight). Each writes its
//! part: the report, every run's counters and histograms exact (`part`), and HdrHistogram logs
//! with `--hlog`. `merge` adds the parts up and writes the same report, CSV and HTML as a local
//! run.

use std::cell::RefCell;
use std::io::Write;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::bench::BenchArgs;
use crate::client::{Client, Received};
use crate::loadgen::{BeforeLeave, BeforeStart};
use crate::report::part::{self, Part};
use crate::report::{
    self, MergeInfo, MergedPart, PlacementInfo, Report, RunResult, Summary, WorkerInfo, WorkerRun,
};
use crate::wire::control::BarrierEnter;
use crate::wire::{AgentId, BarrierId, Control};

/// `a2a-bench worker`.
#[derive(Args, Debug)]
#[command(allow_negative_numbers = true)]
pub struct WorkerCmd {
    /// This worker's index, from 0.
    #[arg(long, value_name = "I")]
    index: u32,
    /// How many workers share each run's agents.
    #[arg(long, value_name = "N")]
    workers: u32,
    /// The run's id, the same on every worker (agent ids and barriers derive from it).
    #[arg(long, value_name = "ID")]
    run_id: String,
    /// Seconds to wait at each run's start for the other workers.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = super::parse_secs)]
    start_timeout: Duration,
    #[command(flatten)]
    bench: BenchArgs,
}

/// A worker's place in a multi-host run.
#[derive(Debug, Clone)]
pub struct WorkerRole {
    /// Index from 0.
    pub index: u32,
    /// Workers in the run.
    pub workers: u32,
    /// The run's id.
    pub run_id: String,
    /// How long to wait at each run's start for the other workers.
    pub start_timeout: Duration,
    /// The a2a-bench router the workers meet through, when it is not the target
    /// (`a2a-bench http`); `None`: the router under test.
    pub meet: Option<std::net::SocketAddr>,
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

impl WorkerRole {
    /// What the part's report says of it.
    pub fn info(&self) -> WorkerInfo {
        WorkerInfo {
            index: self.index,
            workers: self.workers,
            run_id: self.run_id.clone(),
            hostname: crate::host::facts()["hostname"].as_str().unwrap_or("?").to_string(),
        }
    }

    /// The id salt every worker of the run computes alike.
    pub fn salt(&self) -> u32 {
        (fnv(&self.run_id) % 1000) as u32
    }

    /// This worker's agents of `n`: first global index and count.
    pub fn slice(&self, n: u32) -> (u32, u32) {
        let at = |i: u32| (u64::from(i) * u64::from(n) / u64::from(self.workers)) as u32;
        (at(self.index), at(self.index + 1) - at(self.index))
    }

    /// Worker `index`'s coordinator agent in the run whose ids start at `id_base`: the top of
    /// the id block (agents take the bottom, at most 2^21 − 64 of them).
    fn coordinator(id_base: u32, index: u32) -> AgentId {
        AgentId(id_base + (1 << 21) - 1 - index)
    }

    /// The barrier of run attempt `run`'s `phase` (1: start, 2: stop, 3: a search's exchange).
    fn barrier(&self, run: usize, phase: u64) -> BarrierId {
        BarrierId(fnv(&self.run_id) ^ ((run as u64) << 2 | phase))
    }

    /// The start and leave hooks of run attempt `run` (ids from `id_base`), meeting through
    /// the router at `router` on the coordinator's connection, which `link` holds from the
    /// start barrier on; past the stop barrier it stays there when `keep` (a search's
    /// exchange uses it), and is closed otherwise.
    pub fn hooks<'a>(
        &self,
        router: std::net::SocketAddr,
        run: usize,
        id_base: u32,
        drain_timeout: Duration,
        (link, keep): (Rc<RefCell<Option<Client>>>, bool),
    ) -> (BeforeStart<'a>, BeforeLeave<'a>) {
        let me = Self::coordinator(id_base, self.index);
        let (workers, index, start_timeout) = (self.workers, self.index, self.start_timeout);
        let (start_link, leave_link) = (link.clone(), link);
        let (start_id, leave_id) = (self.barrier(run, 1), self.barrier(run, 2));
        let start = move || -> Result<(), String> {
            let mut c = enrol(router, me, index)?;
            meet(&mut c, me, start_id, workers, start_timeout).map_err(|why| {
                format!("worker {index} of {workers}: {why} at the start barrier")
            })?;
            *start_link.borrow_mut() = Some(c);
            Ok(())
        };
        let leave = move || -> Option<String> {
            let mut c = leave_link.borrow_mut().take()?;
            let said = meet(&mut c, me, leave_id, workers, drain_timeout)
                .err()
                .map(|why| format!("{why} at the stop barrier: other workers' requests to this worker's agents after it may fail"));
            if keep {
                *leave_link.borrow_mut() = Some(c);
            }
            said
        };
        (Box::new(start), Box::new(leave))
    }

    /// A search's exchange after run attempt `run` (ids from `id_base`): tells every other
    /// worker this worker's part of the run (or why it could not start) and gathers theirs,
    /// through the router at `router`, on the coordinator's connection `kept` (a fresh one
    /// when the run never reached its start barrier). Every worker then holds every part and
    /// judges the same whole run. Returns the parts by worker index, or why not every one came.
    pub fn share(
        &self,
        router: std::net::SocketAddr,
        (run, id_base): (usize, u32),
        kept: Option<Client>,
        mine: Result<Part, String>,
    ) -> Result<Vec<Shared>, String> {
        let (index, workers) = (self.index, self.workers);
        let me = Self::coordinator(id_base, index);
        let mut c = match kept {
            Some(c) => c,
            None => enrol(router, me, index)?,
        };
        // Every coordinator is registered before any is sent to. A worker whose run could not
        // start may come a start timeout before the others, which waited that long for it.
        meet(&mut c, me, self.barrier(run, 3), workers, self.start_timeout * 2).map_err(|why| {
            format!("worker {index} of {workers}: {why} at a search step's exchange")
        })?;
        let hostname = self.info().hostname;
        let payload = serde_json::to_vec(&Shared { index, hostname, part: mine })
            .map_err(|e| e.to_string())?;
        for other in (0..workers).filter(|&w| w != index) {
            let message_id = c.request_id();
            let env = crate::wire::Envelope {
                kind: crate::wire::DataKind::Direct,
                sender: me,
                to: Self::coordinator(id_base, other).0,
                message_id,
                correlation_id: 0,
                timestamp_ns: crate::clock::now_ns(),
                msg_type: SHARED_PART,
                priority: 5,
                ttl_ms: 0,
                payload: &payload,
            };
            c.send(&[crate::wire::Message::Data(env)])
                .map_err(|e| format!("worker {index}: sending its part to worker {other}: {e}"))?;
        }
        let mut all: Vec<Option<Shared>> = (0..workers).map(|_| None).collect();
        // Its own part read back from the bytes the others read: every worker merges the same
        // values (serde_json's float reading need not give back the exact bits written).
        all[index as usize] = serde_json::from_slice(&payload).ok();
        let deadline = Instant::now() + self.start_timeout;
        while let Some(missing) = all.iter().position(Option::is_none) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "worker {index} of {workers}: worker {missing}'s part of a search step did not come within {:.0} s",
                    self.start_timeout.as_secs_f64()
                ));
            }
            c.set_timeout(left.min(Duration::from_secs(1))).map_err(|e| e.to_string())?;
            match c.recv() {
                Ok(Received::Data(m)) if m.msg_type == SHARED_PART => {
                    let s: Shared = serde_json::from_slice(&m.payload).map_err(|e| {
                        format!(
                            "worker {index}: a part from worker at {} is not readable: {e}",
                            m.sender.0
                        )
                    })?;
                    if let Some(slot) = all.get_mut(s.index as usize) {
                        *slot = Some(s);
                    }
                }
                Ok(Received::Control(Control::Error(e))) => {
                    return Err(format!(
                    "worker {index}: the router answered error {} during a search step's exchange",
                    e.code
                ))
                }
                Ok(_) => {}
                Err(e) if waited(&e) => {}
                Err(e) => return Err(format!("worker {index}: the router link failed: {e}")),
            }
        }
        Ok(all.into_iter().flatten().collect())
    }
}

/// The message type of a worker's part sent to the others in a search's exchange.
const SHARED_PART: u32 = 0x5EA2;

/// What one worker tells the others of a search step's run.
#[derive(Debug, Serialize, Deserialize)]
pub struct Shared {
    /// The worker's index.
    pub index: u32,
    /// Its host's name.
    pub hostname: String,
    /// Its part of the run, or why its run could not start.
    pub part: Result<Part, String>,
}

/// The whole run of a search step, merged from every worker's `shared` part (as `merge`
/// would); `Err`: why the workers' runs that could not start could not, in the same words on
/// every worker.
pub fn whole_run(shared: &[Shared]) -> Result<RunResult, String> {
    let failed: Vec<String> = shared
        .iter()
        .filter_map(|s| s.part.as_ref().err().map(|why| format!("worker {}: {why}", s.index)))
        .collect();
    if !failed.is_empty() {
        return Err(failed.join("; "));
    }
    let mut outcomes = Vec::with_capacity(shared.len());
    let mut spec = None;
    for s in shared {
        if let Ok(p) = &s.part {
            outcomes.push((s.index as usize, p.outcome().map_err(|e| e.to_string())?));
            spec.get_or_insert(p.run_spec().map_err(|e| e.to_string())?);
        }
    }
    let spec = spec.ok_or("no worker's part")?;
    let hosts: std::collections::BTreeSet<&str> =
        shared.iter().map(|s| s.hostname.as_str()).collect();
    Ok(merged_result(&spec, &outcomes, (true, Vec::new()), hosts.len() == 1))
}

/// The merged run of `outcomes` (by worker index) of the run `spec`, each worker's failures
/// named; `whole`: every worker's part is there, and the merge's own `failures` (parts that
/// are not); one-way times kept only when every worker ran on `one_host`.
fn merged_result(
    spec: &crate::report::RunSpec,
    outcomes: &[(usize, crate::loadgen::Outcome)],
    (whole, failures): (bool, Vec<String>),
    one_host: bool,
) -> RunResult {
    let mut merged = part::merge(outcomes, whole);
    merged.failures.extend(failures);
    // A pipeline's item is delivered to each stage after its source.
    merged.fan = spec.scenario.workload.deliveries_per_op(spec.scenario.agents);
    if !one_host {
        // Each host has its own clock: a one-way time across two of them means nothing.
        merged.latencies.one_way = crate::metrics::Latencies::default().one_way;
        merged.hops.clear();
    }
    RunResult::new(spec, &merged)
}

/// Connects to the router at `router` and registers worker `index`'s coordinator `me`.
fn enrol(router: std::net::SocketAddr, me: AgentId, index: u32) -> Result<Client, String> {
    let mut c = Client::connect(router).map_err(|e| format!("worker {index}: {e}"))?;
    c.set_timeout(Duration::from_secs(10)).map_err(|e| e.to_string())?;
    match c.register(me.0, 0, &[]) {
        Ok(Control::Ack(_)) => Ok(c),
        other => Err(format!("worker {index}: the router refused its coordinator: {other:?}")),
    }
}

/// Enters barrier `id` for `workers` arrivals and waits for its release, at most `limit`.
fn meet(
    c: &mut Client,
    me: AgentId,
    id: BarrierId,
    workers: u32,
    limit: Duration,
) -> Result<(), String> {
    let request_id = c.request_id();
    c.send_control(Control::BarrierEnter(BarrierEnter {
        request_id,
        agent_id: me,
        barrier_id: id,
        expected: workers,
    }))
    .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("not every worker arrived within {:.0} s", limit.as_secs_f64()));
        }
        c.set_timeout(left.min(Duration::from_secs(1))).map_err(|e| e.to_string())?;
        match c.recv_control() {
            Ok(Control::BarrierRelease(r)) if r.request_id == request_id => return Ok(()),
            Ok(Control::Error(e)) => return Err(format!("the router answered error {}", e.code)),
            Ok(_) => {}
            Err(e) if waited(&e) => {}
            Err(e) => return Err(format!("the router link failed: {e}")),
        }
    }
}

/// Whether a read from the router only ran out of its timeout (nothing came yet).
fn waited(e: &crate::client::ClientError) -> bool {
    matches!(e, crate::client::ClientError::Io(e)
        if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut))
}

/// Checks the flags every worker takes.
pub(super) fn check_role(
    index: u32,
    workers: u32,
    run_id: &str,
    start: Duration,
) -> anyhow::Result<()> {
    if workers == 0 || index >= workers {
        bail!("--index must be below --workers (and --workers at least 1)");
    }
    if run_id.trim().is_empty() {
        bail!("--run-id must not be empty");
    }
    if start.is_zero() {
        bail!("--start-timeout must be above 0");
    }
    Ok(())
}

pub(super) fn run_worker(cmd: WorkerCmd) -> anyhow::Result<super::bench::Finish> {
    check_role(cmd.index, cmd.workers, &cmd.run_id, cmd.start_timeout)?;
    if !cmd.bench.external_router() {
        bail!("--router: a worker drives a router running elsewhere (tcp://host:port)");
    }
    let role = WorkerRole {
        index: cmd.index,
        workers: cmd.workers,
        run_id: cmd.run_id,
        start_timeout: cmd.start_timeout,
        meet: None,
    };
    super::bench::run_as(cmd.bench, Some(role))
}

/// `a2a-bench merge`.
#[derive(Args, Debug)]
pub struct MergeCmd {
    /// The workers' parts (their `--output` files).
    #[arg(value_name = "PART", required = true)]
    parts: Vec<PathBuf>,
    /// The merged report.
    #[arg(long, value_name = "FILE", default_value = "merged_results.json")]
    output: PathBuf,
    /// Also write one CSV row per merged run.
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// Also write the HTML page.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
}

struct Loaded {
    file: String,
    info: WorkerInfo,
    value: Value,
    parts: Vec<Part>,
}

fn load(path: &std::path::Path) -> anyhow::Result<Loaded> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {file}"))?;
    let value: Value =
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{file} is not JSON: {e}"))?;
    let info: WorkerInfo = serde_json::from_value(value["worker"].clone())
        .map_err(|_| anyhow::anyhow!("{file} is not a worker's part (no `worker`)"))?;
    let parts = value["results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| serde_json::from_value::<Part>(r["part"].clone()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("{file}: a run has no exact part: {e}"))?;
    Ok(Loaded { file, info, value, parts })
}

/// Merges the parts; returns whether every merged run succeeded.
pub(super) fn run_merge(cmd: MergeCmd) -> anyhow::Result<bool> {
    let provenance = report::Provenance::now();
    report::json::check_writable(&cmd.output, "--output")?;
    for (p, flag) in [(&cmd.csv, "--csv"), (&cmd.html, "--html")] {
        if let Some(p) = p {
            report::json::check_writable(p, flag)?;
        }
    }
    let mut loaded: Vec<Loaded> =
        cmd.parts.iter().map(|p| load(p)).collect::<anyhow::Result<_>>()?;
    loaded.sort_by_key(|l| l.info.index);
    let missing = check_parts(&loaded)?;
    let first = &loaded[0];
    let (run_id, workers) = (first.info.run_id.clone(), first.info.workers);
    let runs = loaded.iter().map(|l| l.parts.len()).max().unwrap_or(0);
    let hosts: std::collections::BTreeSet<&str> =
        loaded.iter().map(|l| l.info.hostname.as_str()).collect();
    let one_host = hosts.len() == 1;
    let mut results = Vec::with_capacity(runs);
    for i in 0..runs {
        results.extend(merge_run(i, &loaded, &missing, one_host)?);
    }
    let config = serde_json::from_value(first.value["config"].clone()).ok();
    let plan = serde_json::from_value(first.value["placement"]["plan"].clone()).ok();
    let report = Report {
        summary: Summary::of(&results),
        results,
        config: config.unwrap_or_default(),
        schema_version: report::SCHEMA_VERSION,
        tool: report::Tool::default(),
        placement: PlacementInfo {
            router: first.value["placement"]["router"].as_str().unwrap_or("?").to_string(),
            plan: plan.unwrap_or_default(),
        },
        host: first.value["host"].clone(),
        interrupted: loaded.iter().any(|l| l.value["interrupted"] == true),
        started_at: provenance.started_at,
        command_line: provenance.command_line,
        accounting_includes_warmup: true,
        thresholds: Vec::new(),
        rate_search: searches(&loaded, "rate_search")?,
        agent_search: searches(&loaded, "agent_search")?,
        baseline: None,
        worker: None,
        merged: Some(MergeInfo {
            run_id,
            workers,
            parts: merged_parts(&loaded),
            missing: missing.clone(),
            one_way: if one_host {
                "within one host: every worker ran on it".into()
            } else {
                format!(
                    "not reported: the workers ran on {} hosts, each with its own clock",
                    hosts.len()
                )
            },
        }),
    };
    report::json::write(&report, &cmd.output)?;
    let value = serde_json::to_value(&report)?;
    if let Some(p) = &cmd.csv {
        report::csv::write(&value, p)?;
    }
    if let Some(p) = &cmd.html {
        report::html::write(&value, p)?;
    }
    print_merge(&mut std::io::stdout(), &report, &loaded, &missing);
    let _ = writeln!(std::io::stdout(), "merged report written to {}", cmd.output.display());
    // A search's failed steps are how it finds its limit, not the run's failure.
    let searched = !report.rate_search.is_empty() || !report.agent_search.is_empty();
    Ok((searched || report.summary.failed == 0) && missing.is_empty())
}

/// The searches (`key`: `rate_search` or `agent_search`) the workers made together: each
/// worker judged every step by the whole run, so every part holds the same ones; parts that
/// do not are an error.
fn searches<T: Deserialize<'static>>(loaded: &[Loaded], key: &str) -> anyhow::Result<Vec<T>> {
    let first = &loaded[0];
    for l in &loaded[1..] {
        if l.value[key] != first.value[key] {
            bail!(
                "{} and {}: the workers' searches differ ({key}): not parts of one search",
                first.file,
                l.file
            );
        }
    }
    match first.value.get(key) {
        None => Ok(Vec::new()),
        // The searches' words are `&'static str`: read from an owned value, not a borrowed one.
        Some(v) => <Vec<T>>::deserialize(v.clone())
            .map_err(|e| anyhow::anyhow!("{}: its {key} is not readable: {e}", first.file)),
    }
}

/// That the parts (sorted by worker) belong to one run and no worker wrote two; the workers
/// that wrote none.
fn check_parts(loaded: &[Loaded]) -> anyhow::Result<Vec<u32>> {
    let first = &loaded[0];
    let (run_id, workers) = (&first.info.run_id, first.info.workers);
    for l in loaded {
        if l.info.run_id != *run_id || l.info.workers != workers {
            bail!(
                "{}: run {} of {} workers, not run {run_id} of {workers}",
                l.file,
                l.info.run_id,
                l.info.workers
            );
        }
    }
    for w in loaded.windows(2) {
        if w[0].info.index == w[1].info.index {
            bail!("{} and {} are both worker {}", w[0].file, w[1].file, w[0].info.index);
        }
    }
    Ok((0..workers).filter(|i| !loaded.iter().any(|l| l.info.index == *i)).collect())
}

/// Run `i` merged from every part that has it, with a failure for each worker that has not;
/// `None` when no part has it.
fn merge_run(
    i: usize,
    loaded: &[Loaded],
    missing: &[u32],
    one_host: bool,
) -> anyhow::Result<Option<RunResult>> {
    let workers = loaded[0].info.workers;
    let mut outcomes = Vec::new();
    let mut spec = None;
    for l in loaded {
        if let Some(p) = l.parts.get(i) {
            outcomes.push((l.info.index as usize, p.outcome()?));
            spec.get_or_insert(p.run_spec()?);
        }
    }
    let Some(spec) = spec else { return Ok(None) };
    let mut failures: Vec<String> = missing.iter().map(|m| format!(
            "worker {m} of {workers} wrote no part (killed, or failed before writing): its agents' requests are not counted, and what the others sent its agents is in their errors"
        )).collect();
    for l in loaded {
        if l.parts.len() <= i {
            failures.push(format!("worker {} stopped before run {}", l.info.index, i + 1));
        }
    }
    let mut result = merged_result(&spec, &outcomes, (missing.is_empty(), failures), one_host);
    // Each worker counted its own process's lost wake-ups in its run's entry.
    let lost: u64 =
        loaded.iter().filter_map(|l| l.value["results"].get(i)?["lost_wakeups"].as_u64()).sum();
    result.lost_wakeups = (lost > 0).then_some(lost);
    // Each worker read its own process's memory, and a target's where it ran on its host: the
    // workers' added up, the target's once (two workers beside it saw the same processes).
    let memory = |key: &str| -> Vec<u64> {
        loaded.iter().filter_map(|l| l.value["results"].get(i)?["memory"][key].as_u64()).collect()
    };
    let (own, target) = (memory("process_bytes"), memory("target_bytes"));
    if !own.is_empty() || !target.is_empty() {
        result.memory = Some(crate::report::MemoryInfo {
            process_bytes: (!own.is_empty()).then(|| own.iter().sum()),
            target_bytes: target.iter().copied().max(),
        });
    }
    Ok(Some(result))
}

/// Each worker's own figures per run, as its part reported them.
fn merged_parts(loaded: &[Loaded]) -> Vec<MergedPart> {
    loaded
        .iter()
        .map(|l| MergedPart {
            index: l.info.index,
            hostname: l.info.hostname.clone(),
            file: l.file.clone(),
            runs: l.value["results"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| WorkerRun {
                    throughput_msg_per_sec: r["throughput_msg_per_sec"].as_f64().unwrap_or(0.0),
                    p99_latency_ms: r["p99_latency_ms"].as_f64().unwrap_or(0.0),
                    errors: r["errors"]
                        .as_object()
                        .map_or(0, |m| m.values().filter_map(Value::as_u64).sum()),
                    bottleneck: r["cpu"]["bottleneck"].as_str().unwrap_or("?").to_string(),
                    status: r["status"].as_str().unwrap_or("?").to_string(),
                    failure: r["failure"].as_str().map(str::to_string),
                })
                .collect(),
        })
        .collect()
}

/// The merged table, each run followed by every worker's own line, and the summary.
fn print_merge(out: &mut impl Write, report: &Report, loaded: &[Loaded], missing: &[u32]) {
    let _ = writeln!(
        out,
        "merged {} part(s) of run {} ({} workers{})",
        loaded.len(),
        report.merged.as_ref().map_or("", |m| m.run_id.as_str()),
        loaded[0].info.workers,
        if missing.is_empty() { String::new() } else { format!("; missing: {missing:?}") }
    );
    let _ = report::text::header(out);
    for (i, r) in report.results.iter().enumerate() {
        let _ = report::text::run_line(out, i, r);
        for l in loaded {
            if let Some(w) = report
                .merged
                .as_ref()
                .and_then(|m| m.parts.iter().find(|p| p.index == l.info.index))
                .and_then(|p| p.runs.get(i))
            {
                let _ = writeln!(
                    out,
                    "       worker {} ({}): {} msgs/s, p99 {} ms, {} errors, bound: {}, {}",
                    l.info.index,
                    l.info.hostname,
                    report::text::rate(w.throughput_msg_per_sec),
                    report::text::ms(w.p99_latency_ms),
                    w.errors,
                    w.bottleneck,
                    w.status
                );
            }
        }
    }
    let _ = report::text::summary(out, report);
    for s in &report.rate_search {
        let _ = report::text::rate_search(out, s);
    }
    for s in &report.agent_search {
        let _ = report::text::agent_search(out, s);
    }
}
