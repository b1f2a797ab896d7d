//! A worker's part of a multi-host run (`a2a-bench worker`), and the exact merge of parts
//! (`a2a-bench merge`).
//!
//! A part keeps, per run, everything the run's [`Outcome`] holds: the raw counters, the three
//! histograms and each interval's histogram (HdrHistogram V2, compressed, base64), the windows
//! and the failures. Merging adds counters and histograms — percentiles are never averaged —
//! and builds the merged run's entry with the same code as a local run ([`crate::report::RunResult::new`]), so
//! the merged accounting must close across workers as a local run's must.

use base64::Engine;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::RunSpec;
use crate::loadgen::group::GroupCounters;
use crate::loadgen::{Interval, Outcome, Pacing, Stop, Topology};
use crate::metrics::Latencies;

/// Which run of the grid a part's entry is, and how it was paced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartSpec {
    /// Topology name.
    pub topology: String,
    /// Children per node (hierarchical).
    pub fanout: u32,
    /// Agents of the whole run (every worker's).
    pub agents: u32,
    /// The agents this worker ran: first global index and count.
    pub slice: (u32, u32),
    /// Open loop: total requests per second of the whole run.
    pub rate: Option<f64>,
    /// Requests in flight per agent (or their cap).
    pub window: u32,
    /// Count mode: measured requests per agent.
    pub count_per_agent: Option<u64>,
    /// Duration mode: the measured window, s.
    pub duration_sec: Option<f64>,
    /// The lateness threshold, ms.
    pub late_after_ms: f64,
    /// Payload bytes.
    pub payload_bytes: usize,
    /// `--intervals` value behind an open-loop rate.
    pub interval_ms: Option<u64>,
    /// Repetition index.
    pub repeat: u32,
    /// `a2a-bench http`: the agents were HTTP clients.
    #[serde(default)]
    pub http: bool,
    /// `--workload pipeline`: agents per pipeline (absent: request-reply along the topology).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_stages: Option<u32>,
}

/// One pattern's figures of an `a2a-bench http` part.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartPattern {
    /// Its name.
    pub pattern: String,
    /// Answers.
    pub ok: u64,
    /// Errors, by kind.
    pub errors: Vec<(String, u64)>,
    /// Latency of answers from the intended send time (encoded as the others).
    pub rtt: String,
    /// Streams: to the first event.
    pub first_event: String,
    /// Streams: events received.
    pub events: u64,
}

/// One interval of a part.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartInterval {
    /// Index from 0.
    pub index: u32,
    /// Start and end, ns after the measured window began.
    pub start_ns: u64,
    /// End.
    pub end_ns: u64,
    /// Deliveries, requests sent, round trips, errors.
    pub counts: [u64; 4],
    /// The interval's round trips (base64 of a compressed V2 histogram).
    pub rtt: String,
    /// Busy share of each agent core.
    pub agent_cpu: Vec<f64>,
    /// Of it, the share each agent core spent watching (empty from older workers).
    #[serde(default)]
    pub agent_watch: Vec<f64>,
    /// Busy share of each router shard.
    pub router_cpu: Option<Vec<f64>>,
    /// Of it, the share each shard spent watching.
    #[serde(default)]
    pub router_watch: Option<Vec<f64>>,
}

/// One run of one worker, exactly.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Part {
    /// The run.
    pub spec: PartSpec,
    /// Raw counters of this worker's agents.
    pub counters: GroupCounters,
    /// Length of its measured window.
    pub window_ns: u64,
    /// Requests unresolved at the end.
    pub in_flight_at_end: u64,
    /// The drain timed out.
    pub drain_timed_out: bool,
    /// Problems met.
    pub failures: Vec<String>,
    /// Every connection was lost.
    pub all_connections_lost: bool,
    /// Connections its agents opened (0 from older workers).
    #[serde(default)]
    pub connections: usize,
    /// Cut short by Ctrl-C.
    pub interrupted: bool,
    /// Busy share of each agent core.
    pub agent_cpu: Vec<f64>,
    /// Of it, the share each agent core spent watching (empty from older workers).
    #[serde(default)]
    pub agent_watch: Vec<f64>,
    /// Busy share of each router shard.
    pub router_cpu: Option<Vec<f64>>,
    /// Of it, the share each shard spent watching.
    #[serde(default)]
    pub router_watch: Option<Vec<f64>>,
    /// Round trips from the intended send time, from the actual one, one-way deliveries.
    pub histograms: [String; 3],
    /// The time series.
    pub intervals: Vec<PartInterval>,
    /// `a2a-bench http`: each pattern's figures.
    #[serde(default)]
    pub breakdown: Vec<PartPattern>,
    /// `--payload-mix`: each size's figures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sizes: Vec<PartSize>,
    /// `pipeline`: each hop's one-way latency by the stage it reached (encoded as the others).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hops: Vec<String>,
}

/// One size's figures of a part (`--payload-mix`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartSize {
    /// Payload bytes.
    pub bytes: usize,
    /// Its weight in the mix.
    pub weight: u32,
    /// Measured requests sent.
    pub sent: u64,
    /// Of those, the errors told by size.
    #[serde(default)]
    pub errors: u64,
    /// Round trips from the intended send time (encoded as the others).
    pub rtt: String,
}

/// A histogram as base64 of HdrHistogram's compressed V2 encoding.
pub fn encode(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    // Writing into a Vec cannot fail; an error would leave it empty, which decodes as an error.
    let _ = V2DeflateSerializer::new().serialize(h, &mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The histogram [`encode`] wrote.
pub fn decode(s: &str) -> anyhow::Result<Histogram<u64>> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| anyhow::anyhow!("a histogram is not base64: {e}"))?;
    let h: Histogram<u64> = Deserializer::new()
        .deserialize(&mut raw.as_slice())
        .map_err(|e| anyhow::anyhow!("a histogram does not decode: {e:?}"))?;
    // Same bounds as the generator's, so that adding never fails or clamps.
    let mut out = Latencies::default().rtt;
    out.add(&h).map_err(|e| anyhow::anyhow!("a histogram is out of bounds: {e:?}"))?;
    Ok(out)
}

impl Part {
    /// The part of run `spec` that `o` measured.
    pub fn of(spec: &RunSpec, o: &Outcome) -> Part {
        let sc = &spec.scenario;
        let (rate, window) = match sc.pacing {
            Pacing::Closed { window } => (None, window),
            Pacing::Open { rate, window } => (Some(rate), window),
        };
        let fanout = match sc.topology {
            Topology::Hierarchical { fanout } => fanout,
            _ => 0,
        };
        Part {
            spec: PartSpec {
                topology: sc.topology.name().to_string(),
                fanout,
                agents: sc.agents,
                slice: sc.slice.unwrap_or((0, sc.agents)),
                rate,
                window,
                count_per_agent: match sc.stop {
                    Stop::Count { per_agent } => Some(per_agent),
                    Stop::Duration(_) => None,
                },
                duration_sec: match sc.stop {
                    Stop::Duration(d) => Some(d.as_secs_f64()),
                    Stop::Count { .. } => None,
                },
                late_after_ms: sc.late_after.as_secs_f64() * 1e3,
                payload_bytes: sc.payload_bytes,
                interval_ms: spec.interval_ms,
                repeat: spec.repeat,
                http: sc.protocol == crate::loadgen::Protocol::Http,
                pipeline_stages: match sc.workload {
                    crate::loadgen::Workload::Pipeline { stages } => Some(stages),
                    _ => None,
                },
            },
            counters: o.counters.clone(),
            window_ns: o.window_ns,
            in_flight_at_end: o.in_flight_at_end,
            drain_timed_out: o.drain_timed_out,
            failures: o.failures.clone(),
            all_connections_lost: o.all_connections_lost,
            connections: o.connections,
            interrupted: o.interrupted,
            agent_cpu: o.agent_cpu.clone(),
            agent_watch: o.agent_watch.clone(),
            router_cpu: o.router_cpu.clone(),
            router_watch: o.router_watch.clone(),
            histograms: [
                encode(&o.latencies.rtt),
                encode(o.latencies.rtt_raw()),
                encode(&o.latencies.one_way),
            ],
            intervals: o
                .intervals
                .iter()
                .map(|iv| PartInterval {
                    index: iv.index,
                    start_ns: iv.start_ns,
                    end_ns: iv.end_ns,
                    counts: iv.counts(),
                    rtt: encode(&iv.rtt),
                    agent_cpu: iv.agent_cpu.clone(),
                    agent_watch: iv.agent_watch.clone(),
                    router_cpu: iv.router_cpu.clone(),
                    router_watch: iv.router_watch.clone(),
                })
                .collect(),
            breakdown: o
                .breakdown
                .iter()
                .map(|p| PartPattern {
                    pattern: p.pattern.name().to_string(),
                    ok: p.ok,
                    errors: p.errors.clone(),
                    rtt: encode(&p.rtt),
                    first_event: encode(&p.first_event),
                    events: p.events,
                })
                .collect(),
            sizes: o
                .sizes
                .iter()
                .map(|s| PartSize {
                    bytes: s.bytes,
                    weight: s.weight,
                    sent: s.sent,
                    errors: s.errors,
                    rtt: encode(&s.rtt),
                })
                .collect(),
            hops: o.hops.iter().map(encode).collect(),
        }
    }

    /// The outcome this part recorded.
    pub fn outcome(&self) -> anyhow::Result<Outcome> {
        let [rtt, rtt_raw, one_way] = &self.histograms;
        let mut o = Outcome::failed_setup(self.failures.clone());
        o.setup_failed = false;
        o.counters = self.counters.clone();
        o.latencies = Latencies::from_parts(decode(rtt)?, decode(rtt_raw)?, decode(one_way)?);
        o.window_ns = self.window_ns;
        o.agent_cpu = self.agent_cpu.clone();
        o.agent_watch = self.agent_watch.clone();
        o.router_cpu = self.router_cpu.clone();
        o.router_watch = self.router_watch.clone();
        o.in_flight_at_end = self.in_flight_at_end;
        o.drain_timed_out = self.drain_timed_out;
        o.all_connections_lost = self.all_connections_lost;
        o.connections = self.connections;
        o.interrupted = self.interrupted;
        o.partial = self.spec.slice.1 < self.spec.agents;
        for iv in &self.intervals {
            let [deliveries, requests_sent, round_trips, errors] = iv.counts;
            o.intervals.push(Interval {
                index: iv.index,
                start_ns: iv.start_ns,
                end_ns: iv.end_ns,
                deliveries,
                requests_sent,
                round_trips,
                errors,
                rtt: decode(&iv.rtt)?,
                agent_cpu: iv.agent_cpu.clone(),
                agent_watch: aligned(&iv.agent_watch, iv.agent_cpu.len()),
                router_cpu: iv.router_cpu.clone(),
                router_watch: iv.router_watch.clone(),
            });
        }
        for p in &self.breakdown {
            let pattern = crate::loadgen::http::Pattern::named(&p.pattern).ok_or_else(|| {
                anyhow::anyhow!("a part names an unknown pattern '{}'", p.pattern)
            })?;
            let mut stats = crate::loadgen::http::PatternStats::new(pattern);
            stats.ok = p.ok;
            stats.errors.clone_from(&p.errors);
            stats.rtt = decode(&p.rtt)?;
            stats.first_event = decode(&p.first_event)?;
            stats.events = p.events;
            o.breakdown.push(stats);
        }
        for s in &self.sizes {
            o.sizes.push(crate::loadgen::mix::SizeStats {
                bytes: s.bytes,
                weight: s.weight,
                sent: s.sent,
                errors: s.errors,
                rtt: decode(&s.rtt)?,
            });
        }
        o.hops = self.hops.iter().map(|h| decode(h)).collect::<anyhow::Result<_>>()?;
        Ok(o)
    }

    /// The run this part belongs to, as a grid defines it (placement fields left empty).
    pub fn run_spec(&self) -> anyhow::Result<RunSpec> {
        self.spec.run_spec()
    }
}

impl PartSpec {
    /// A ring of `agents` with `rate` (closed loop without), stopping at `count` per agent or
    /// after `duration` seconds: the runs unit tests build results and lines from.
    #[cfg(test)]
    pub(crate) fn for_tests(
        agents: u32,
        rate: Option<f64>,
        count: Option<u64>,
        duration: Option<f64>,
    ) -> RunSpec {
        PartSpec {
            topology: "ring".into(),
            fanout: 0,
            agents,
            slice: (0, agents),
            rate,
            window: 1,
            count_per_agent: count,
            duration_sec: duration,
            late_after_ms: 1.0,
            payload_bytes: 64,
            interval_ms: None,
            repeat: 0,
            http: false,
            pipeline_stages: None,
        }
        .run_spec()
        .unwrap()
    }

    /// The run, as a grid defines it (placement fields left empty).
    pub fn run_spec(&self) -> anyhow::Result<RunSpec> {
        let s = self;
        let topology = match s.topology.parse::<Topology>().map_err(anyhow::Error::msg)? {
            Topology::Hierarchical { .. } => Topology::Hierarchical { fanout: s.fanout.max(1) },
            t => t,
        };
        let pacing = match s.rate {
            Some(rate) => Pacing::Open { rate, window: s.window },
            None => Pacing::Closed { window: s.window },
        };
        let stop = match (s.count_per_agent, s.duration_sec) {
            (Some(per_agent), _) => Stop::Count { per_agent },
            (None, Some(d)) => Stop::Duration(std::time::Duration::from_secs_f64(d)),
            (None, None) => anyhow::bail!("a part's run has neither a count nor a duration"),
        };
        Ok(RunSpec {
            scenario: crate::loadgen::Scenario {
                topology,
                agents: s.agents,
                pacing,
                stop,
                warmup: std::time::Duration::ZERO,
                drain_timeout: std::time::Duration::ZERO,
                payload_bytes: s.payload_bytes,
                payload_mix: None,
                batch_max: 1,
                compression: crate::wire::Compression::None,
                agents_per_conn: 1,
                connections: None,
                agent_cores: Vec::new(),
                late_after: std::time::Duration::from_secs_f64(s.late_after_ms / 1e3),
                priority: 0,
                id_base: 0,
                transport: crate::transport::Transport::Tcp,
                io: crate::transport::Io::Glommio,
                poll: false,
                homing: true,
                protocol: if s.http {
                    crate::loadgen::Protocol::Http
                } else {
                    crate::loadgen::Protocol::Native
                },
                http: None,
                workload: s.pipeline_stages.map_or_else(Default::default, |stages| {
                    crate::loadgen::Workload::Pipeline { stages }
                }),
                interval: None,
                slice: None,
                keepalive: None,
            },
            repeat: s.repeat,
            interval_ms: s.interval_ms,
        })
    }
}

/// The outcomes of one run's parts, added up: counters and histograms summed, the window the
/// longest, each core's CPU kept, intervals merged by index. `whole` says whether every
/// worker's part is there (only then can the accounting close).
pub fn merge(parts: &[(usize, Outcome)], whole: bool) -> Outcome {
    let mut o = Outcome::failed_setup(Vec::new());
    o.setup_failed = false;
    o.all_connections_lost = !parts.is_empty();
    for (index, p) in parts {
        o.counters.merge(&p.counters);
        o.latencies.merge(&p.latencies);
        o.window_ns = o.window_ns.max(p.window_ns);
        o.in_flight_at_end += p.in_flight_at_end;
        o.drain_timed_out |= p.drain_timed_out;
        o.interrupted |= p.interrupted;
        o.all_connections_lost &= p.all_connections_lost;
        o.connections += p.connections;
        // Watch shares stay aligned with the cores they belong to (0 where not measured).
        o.agent_watch.resize(o.agent_cpu.len(), 0.0);
        o.agent_cpu.extend(&p.agent_cpu);
        o.agent_watch.extend(aligned(&p.agent_watch, p.agent_cpu.len()));
        if o.router_cpu.is_none() {
            o.router_cpu.clone_from(&p.router_cpu);
            o.router_watch.clone_from(&p.router_watch);
        }
        o.failures.extend(p.failures.iter().map(|f| format!("worker {index}: {f}")));
        for s in &p.breakdown {
            match o.breakdown.iter_mut().find(|m| m.pattern == s.pattern) {
                Some(m) => m.merge(s),
                None => o.breakdown.push(s.clone()),
            }
        }
        crate::loadgen::mix::SizeStats::merge(&mut o.sizes, &p.sizes);
        crate::metrics::merge_each(&mut o.hops, &p.hops);
        for iv in &p.intervals {
            match o.intervals.iter_mut().find(|m| m.index == iv.index) {
                Some(m) => {
                    m.absorb((iv.start_ns, iv.end_ns), iv.counts(), &iv.rtt);
                    m.agent_watch.resize(m.agent_cpu.len(), 0.0);
                    m.agent_cpu.extend(&iv.agent_cpu);
                    m.agent_watch.extend(aligned(&iv.agent_watch, iv.agent_cpu.len()));
                }
                None => o.intervals.push(iv.clone()),
            }
        }
    }
    o.intervals.sort_by_key(|iv| iv.index);
    o.partial = !whole;
    o
}

/// Watch shares for `cores` cores: those given, 0 for any not measured (an older worker's).
fn aligned(watch: &[f64], cores: usize) -> Vec<f64> {
    (0..cores).map(|i| watch.get(i).copied().unwrap_or(0.0)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_survive_their_encoding_exactly() {
        // Proves encode/decode keeps every count, so merged percentiles are exact.
        let mut h = Latencies::default().rtt;
        for v in [1u64, 999, 12_345, 7_000_000, 59_000_000_000] {
            h.record_n(v, v % 7 + 1).unwrap();
        }
        let back = decode(&encode(&h)).unwrap();
        assert_eq!(back, h);
        assert!(decode("not base64!").is_err());
    }

    #[test]
    fn merged_watch_shares_stay_with_their_cores() {
        // Proves the merge keeps each watch share beside the busy share of the same core, in
        // the run and in each interval, also when a worker reported none (0 in its place).
        let interval = |cpu: Vec<f64>, watch: Vec<f64>| Interval {
            index: 0,
            start_ns: 0,
            end_ns: 1_000_000_000,
            deliveries: 1,
            requests_sent: 1,
            round_trips: 1,
            errors: 0,
            rtt: Latencies::default().rtt,
            agent_cpu: cpu,
            agent_watch: watch,
            router_cpu: Some(vec![0.9]),
            router_watch: Some(vec![0.3]),
        };
        let outcome = |cpu: Vec<f64>, watch: Vec<f64>| {
            let mut o = Outcome::failed_setup(Vec::new());
            o.setup_failed = false;
            o.intervals = vec![interval(cpu.clone(), watch.clone())];
            (o.agent_cpu, o.agent_watch) = (cpu, watch);
            o
        };
        let older = outcome(vec![0.5, 0.6], Vec::new());
        let newer = outcome(vec![0.8], vec![0.2]);
        let m = merge(&[(0, older), (1, newer)], true);
        assert_eq!(
            (m.agent_cpu.as_slice(), m.agent_watch.as_slice()),
            (&[0.5, 0.6, 0.8][..], &[0.0, 0.0, 0.2][..])
        );
        let iv = &m.intervals[0];
        assert_eq!(
            (iv.agent_cpu.as_slice(), iv.agent_watch.as_slice()),
            (&[0.5, 0.6, 0.8][..], &[0.0, 0.0, 0.2][..])
        );
        assert_eq!(iv.router_watch, Some(vec![0.3]));
    }
}
