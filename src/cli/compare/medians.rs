//! One router's figures for one scenario over its rounds: the medians a row shows.

use super::*;

/// One router's figures for one scenario, over its repetitions.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Medians {
    /// Median throughput (router deliveries/s) over successful runs.
    pub(super) throughput: f64,
    /// Smallest and largest throughput.
    pub(super) throughput_min: f64,
    pub(super) throughput_max: f64,
    /// Median of the runs' p50 and p99 round trips, ms.
    pub(super) p50_ms: f64,
    pub(super) p99_ms: f64,
    /// Median requests sent per second.
    pub(super) sent_per_sec: f64,
    /// Successful runs out of all.
    pub(super) ok_runs: usize,
    pub(super) runs: usize,
    /// The most frequent bottleneck of the runs (`router`, `generator`, `both`, `neither`).
    pub(super) bottleneck: String,
    /// Median router CPU time per routed message (delivery), ns: the router's threads' busy
    /// time over the window divided by what they delivered. Null when the router reports none.
    pub(super) router_cpu_ns_per_msg: Option<f64>,
    /// Median share of the router's cores left idle (0–1; cores − busy, over cores; on a core
    /// the agents share, their busy share counts too).
    pub(super) router_idle_share: Option<f64>,
    /// Median share of the router's cores spent watching for input that had not come (part
    /// of the busy share, and of the CPU per message; 0 for the tokio routers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) router_watch_share: Option<f64>,
    /// Median share of the messages handed from one shard to another (routers of several
    /// shards only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) cross_shard_share: Option<f64>,
    /// Median messages per frame the router wrote.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) router_msgs_per_frame: Option<f64>,
    /// Lost wake-ups over all the runs, failed ones too (`RunResult::lost_wakeups`): a
    /// router's tail that holds some is partly this process's, not the router's.
    #[serde(skip_serializing_if = "is_zero")]
    pub(super) lost_wakeups: u64,
    /// Why the first of its failed runs failed, when any did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) failure: Option<String>,
    /// Runs that measured round trips (a row's p50 and p99 are over these).
    #[serde(skip)]
    pub(super) timed_runs: usize,
    /// `--payload-mix`: each size's median p50 and p99 over the runs that timed it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) sizes: Vec<SizeMedians>,
}

/// One size's medians in a router's row of a `--payload-mix` scenario.
#[derive(Debug, Clone, Serialize)]
pub(super) struct SizeMedians {
    /// Payload bytes.
    pub(super) bytes: usize,
    /// Median of the runs' p50 and p99 round trips of this size, ms.
    pub(super) p50_ms: f64,
    pub(super) p99_ms: f64,
    /// Runs that timed a round trip of this size.
    pub(super) timed_runs: usize,
}

impl SizeMedians {
    /// Each size of the successful runs' mix, in the mix's order.
    fn of(ok: &[&RunResult]) -> Vec<SizeMedians> {
        let Some(first) = ok.first() else { return Vec::new() };
        first
            .payload_mix
            .iter()
            .map(|s| {
                let timed: Vec<&report::SizeResult> = ok
                    .iter()
                    .filter_map(|r| r.payload_mix.iter().find(|x| x.bytes == s.bytes))
                    .filter(|x| x.latency.count > 0)
                    .collect();
                SizeMedians {
                    bytes: s.bytes,
                    p50_ms: median(timed.iter().map(|x| x.latency.p50_ms).collect()),
                    p99_ms: median(timed.iter().map(|x| x.latency.p99_ms).collect()),
                    timed_runs: timed.len(),
                }
            })
            .collect()
    }
}

pub(super) fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The median (0 when empty): the one the reports' figures use.
pub(super) fn median(v: Vec<f64>) -> f64 {
    report::figures::Stat::of(v).median
}

/// The median of the values present; `None` when there are none.
pub(super) fn median_of_some(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let v: Vec<f64> = values.flatten().collect();
    (!v.is_empty()).then(|| median(v))
}

pub(super) fn most_common<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for i in items {
        *counts.entry(i).or_default() += 1;
    }
    counts.into_iter().max_by_key(|(_, n)| *n).map_or_else(String::new, |(k, _)| k.to_string())
}

impl Medians {
    /// `sharing`: where the routers and the agents share cores, whose idle time is then what
    /// neither side used.
    pub(super) fn of(runs: &[RunResult], sharing: Option<&report::CoreSharing>) -> Medians {
        let ok: Vec<&RunResult> = runs.iter().filter(|r| r.success).collect();
        let thr: Vec<f64> = ok.iter().map(|r| r.throughput_msg_per_sec).collect();
        let timed = || ok.iter().filter(|r| r.latency.rtt.count > 0);
        Medians {
            throughput: median(thr.clone()),
            throughput_min: thr.iter().copied().reduce(f64::min).unwrap_or(0.0),
            throughput_max: thr.iter().copied().fold(0.0, f64::max),
            // Over the runs that measured round trips (an open loop far behind measures none).
            p50_ms: median(timed().map(|r| r.p50_latency_ms).collect()),
            p99_ms: median(timed().map(|r| r.p99_latency_ms).collect()),
            sent_per_sec: median(ok.iter().map(|r| r.sent_per_sec).collect()),
            ok_runs: ok.len(),
            runs: runs.len(),
            bottleneck: most_common(runs.iter().map(|r| r.cpu.bottleneck.as_str())),
            router_cpu_ns_per_msg: median_of_some(ok.iter().map(|r| {
                // A running router that does not report its shards: its processes' CPU.
                let busy: f64 = match &r.cpu.router_cores {
                    Some(cores) => cores.iter().sum(),
                    None => r.cpu.target_cores?,
                };
                (r.throughput_msg_per_sec > 0.0).then(|| busy / r.throughput_msg_per_sec * 1e9)
            })),
            router_idle_share: median_of_some(ok.iter().map(|r| {
                let cores = r.cpu.router_cores.as_ref().filter(|c| !c.is_empty())?;
                // A router core the agents share was busy with them too.
                let agents_on = |j: usize| -> f64 {
                    let pairs = sharing.map_or(&[][..], |s| &s.pairs[..]);
                    pairs
                        .iter()
                        .filter(|p| p.1 == j)
                        .filter_map(|p| r.cpu.agent_cores.get(p.0))
                        .sum()
                };
                let busy: f64 =
                    cores.iter().enumerate().map(|(j, b)| (b + agents_on(j)).min(1.0)).sum();
                Some(1.0 - busy / cores.len() as f64)
            })),
            router_watch_share: median_of_some(ok.iter().map(|r| {
                let watch = r.cpu.router_watch.as_ref().filter(|w| !w.is_empty())?;
                Some(watch.iter().sum::<f64>() / watch.len() as f64)
            })),
            cross_shard_share: median_of_some(ok.iter().map(|r| r.cpu.router_cross_shard_share)),
            router_msgs_per_frame: median_of_some(ok.iter().map(|r| r.cpu.router_msgs_per_frame)),
            lost_wakeups: runs.iter().filter_map(|r| r.lost_wakeups).sum(),
            failure: runs.iter().filter(|r| !r.success).find_map(|r| r.failure.clone()),
            timed_runs: timed().count(),
            sizes: SizeMedians::of(&ok),
        }
    }
}

/// ", N lost wake-ups (…)" for a row whose runs had any; empty otherwise.
pub(super) fn lost_wakeups_note(n: u64) -> String {
    match n {
        0 => String::new(),
        n => format!(", {n} lost wake-ups (this process's rings slept to their 20 ms timer)"),
    }
}
