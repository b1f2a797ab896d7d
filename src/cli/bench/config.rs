//! The flags checked once into a [`BenchConfig`]: every mistake named by its flag.

use super::*;
use crate::cli::search::Over;

pub(super) fn list<T: std::str::FromStr>(flag: &str, spec: &str) -> anyhow::Result<Vec<T>>
where
    T::Err: std::fmt::Display,
{
    let items: Result<Vec<T>, String> = spec
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<T>().map_err(|e| format!("'{s}': {e}")))
        .collect();
    let items = items.map_err(|e| anyhow::anyhow!("{flag}: {e}"))?;
    if items.is_empty() {
        bail!("{flag}: the list is empty");
    }
    Ok(items)
}

impl TryFrom<BenchArgs> for BenchConfig {
    type Error = anyhow::Error;

    /// The phases in the order their flags are checked: the grid (agents, stops, topologies,
    /// workloads, pacings, sizes), then where it runs, then what is written and judged.
    fn try_from(mut a: BenchArgs) -> anyhow::Result<BenchConfig> {
        let http = a.protocol == Protocol::Http;
        let agents = agent_counts(&a, http)?;
        let (stops, message_counts, duration_sec) = stops(&a)?;
        let topologies = topologies(&a)?;
        let workloads = workloads(&a, &agents)?;
        let (pacings, intervals, rates) = pacings(&a)?;
        let payload_mix = payload_mix(&a, &workloads)?;
        let payloads = match payload_mix {
            Some(m) => vec![m.largest()],
            None => payload_sizes(&a)?,
        };
        let repeat = check_sizes(&a, &payloads)?;
        let Placement { topologies, target, plan, transport, warnings } =
            placement(&mut a, http, topologies)?;
        let report_config = ReportConfig {
            agent_counts: agents.clone(),
            message_counts,
            topologies: topologies.iter().map(|t| t.name().to_string()).collect(),
            message_intervals_ms: intervals,
            repeat_count: repeat,
            duration_sec,
            rates_per_sec: rates,
            window: a.window,
            warmup_sec: 0.0,
            payload_size: payloads[0],
            payload_sizes: (payloads.len() > 1).then(|| payloads.clone()),
            payload_mix: payload_mix.as_ref().map(mix_label),
            batch: a.batch,
            compression: a.compression.to_string(),
            agents_per_conn: a.agents_per_conn,
            fanout: a.fanout,
            router: a.router.clone(),
            transport: transport.to_string(),
            agent_io: a.agent_io.to_string(),
            router_io: a.router_flags.router_io.to_string(),
            poll: a.router_flags.poll,
            homing: !a.no_homing,
            protocol: a.protocol.to_string(),
            http: None,
        };
        let warmup = a.warmup.unwrap_or(Duration::from_millis(if a.quick { 300 } else { 1000 }));
        let (thresholds, search) = judging(&a, payload_mix.as_ref())?;
        check_intervals(&a)?;
        Ok(BenchConfig {
            agents,
            stops,
            topologies,
            workloads,
            pacings,
            window: a.window,
            repeat,
            warmup,
            drain_timeout: a.drain_timeout,
            output: a.output.unwrap_or_else(|| PathBuf::from("benchmark_results.json")),
            csv: a.csv,
            html: a.html,
            interval: (!a.interval.is_zero()).then_some(a.interval),
            hlog: a.hlog,
            thresholds,
            baseline: a.baseline,
            search,
            worker: None,
            target,
            plan,
            payloads,
            payload_mix,
            batch: a.batch,
            compression: a.compression,
            agents_per_conn: a.agents_per_conn,
            priority: a.priority,
            late_after: a.late_after_ms,
            stall_probe: a.stall_probe,
            router_flags: a.router_flags,
            transport,
            io: a.agent_io,
            homing: !a.no_homing,
            protocol: a.protocol,
            report_config: ReportConfig { warmup_sec: warmup.as_secs_f64(), ..report_config },
            warnings,
            http: None,
            connections: None,
        })
    }
}

/// `--agents`: the agent counts of the grid (1 only for `a2a-bench http`'s clients).
fn agent_counts(a: &BenchArgs, http: bool) -> anyhow::Result<Vec<u32>> {
    let agents: Vec<u32> = list(
        "--agents",
        a.agents.as_deref().unwrap_or(if a.quick { "5,10" } else { "10,50,100" }),
    )?;
    if let Some(&bad) = agents.iter().find(|&&n| !(2..=(1 << 21)).contains(&n)) {
        if !(http && bad == 1) {
            bail!("--agents: {bad} is out of range (2 to 2097152: a topology needs two agents)");
        }
    }
    Ok(agents)
}

/// `--messages` or `--duration`: when each run stops; the message counts and the duration in
/// seconds as the report states them.
fn stops(a: &BenchArgs) -> anyhow::Result<(Vec<Stop>, Vec<u64>, Option<f64>)> {
    Ok(match &a.messages {
        Some(spec) => {
            let counts: Vec<u64> = list("--messages", spec)?;
            if counts.contains(&0) {
                bail!("--messages: counts must be at least 1");
            }
            (counts.iter().map(|&per_agent| Stop::Count { per_agent }).collect(), counts, None)
        }
        None => {
            let d = a.duration.unwrap_or(Duration::from_secs(if a.quick { 1 } else { 3 }));
            if d.is_zero() {
                bail!("--duration must be above 0");
            }
            (vec![Stop::Duration(d)], Vec::new(), Some(d.as_secs_f64()))
        }
    })
}

/// `--topologies` with `--fanout` given to the hierarchical one.
fn topologies(a: &BenchArgs) -> anyhow::Result<Vec<Topology>> {
    if a.fanout == 0 {
        bail!("--fanout must be at least 1");
    }
    Ok(list::<Topology>("--topologies", a.topologies.as_deref().unwrap_or("star,mesh,ring"))?
        .into_iter()
        .map(|t| match t {
            Topology::Hierarchical { .. } => Topology::Hierarchical { fanout: a.fanout },
            other => other,
        })
        .collect())
}

/// `--workload` with its own flags filled in, checked against the protocol, the agent counts
/// and the pacing each workload allows.
fn workloads(a: &BenchArgs, agents: &[u32]) -> anyhow::Result<Vec<Workload>> {
    let workloads: Vec<Workload> =
        list::<Workload>("--workload", a.workload.as_deref().unwrap_or("request-reply"))?
            .into_iter()
            .map(|w| match w {
                Workload::Fanout { .. } => Workload::Fanout { subscribers: a.subscribers },
                Workload::Locks { .. } => Workload::Locks { locks: a.locks, hold: a.hold },
                Workload::Churn { .. } => Workload::Churn { stay: a.hold },
                Workload::Consensus { .. } => Workload::Consensus { replicas: a.replicas },
                Workload::Delegation { .. } => Workload::Delegation { subtasks: a.subtasks },
                Workload::Election { .. } => Workload::Election { replicas: a.replicas },
                Workload::Pipeline { .. } => Workload::Pipeline { stages: a.stages },
                other => other,
            })
            .collect();
    if workloads.iter().any(|w| !w.uses_topology()) {
        // The seed's JSON protocol has locks, barriers and broadcasts, and direct messages
        // for the pipeline's hops; nothing else.
        let seed = |w: &&Workload| {
            a.protocol == Protocol::Json
                && matches!(
                    w,
                    Workload::Locks { .. }
                        | Workload::Barriers
                        | Workload::Broadcast
                        | Workload::Pipeline { .. }
                )
        };
        let other = workloads.iter().filter(|w| !w.uses_topology()).find(|w| !seed(w));
        if let (true, Some(w)) = (a.protocol != Protocol::Native, other) {
            bail!("--workload {w}: the {} protocol runs request-reply{}; {w} needs the native protocol", a.protocol, if a.protocol == Protocol::Json { ", locks, barriers, broadcast and pipeline" } else { "" });
        }
        if a.subscribers == 0 {
            bail!("--subscribers must be at least 1");
        }
        if a.locks == 0 {
            bail!("--locks must be at least 1");
        }
    }
    check_workload_sizes(a, agents, &workloads)?;
    check_workload_pacing(a, &workloads)?;
    Ok(workloads)
}

/// The agents and replicas that churn, delegation, election and consensus need.
fn check_workload_sizes(
    a: &BenchArgs,
    agents: &[u32],
    workloads: &[Workload],
) -> anyhow::Result<()> {
    let any = |f: fn(&Workload) -> bool| workloads.iter().any(f);
    if any(|w| matches!(w, Workload::Churn { .. })) {
        if let Some(&n) = agents.iter().find(|&&n| n > crate::loadgen::native::JOIN_OFFSET) {
            bail!("--agents: {n} is above {} with --workload churn (each agent has a second, passing identity)", crate::loadgen::native::JOIN_OFFSET);
        }
    }
    if any(|w| matches!(w, Workload::Delegation { .. })) {
        if a.subtasks == 0 {
            bail!("--subtasks must be at least 1");
        }
        if let Some(&n) = agents.iter().find(|&&n| n < 3) {
            bail!("--agents: {n} is too few for --workload delegation (a coordinator, a specialist and a worker)");
        }
    }
    if any(|w| matches!(w, Workload::Election { .. })) {
        if a.replicas < 3 {
            bail!("--replicas must be at least 3 with --workload election (an observer, a leader to kill and one to take over)");
        }
        if let Some(&n) = agents.iter().find(|&&n| n < 3) {
            bail!("--agents: {n} is too few for --workload election (at least 3)");
        }
    }
    if any(|w| matches!(w, Workload::Pipeline { .. })) {
        if a.stages < 2 {
            bail!("--stages must be at least 2 (a source and a stage that returns its items)");
        }
        if let Some(&n) = agents.iter().find(|&&n| n < a.stages) {
            bail!("--agents: {n} is too few for --workload pipeline with --stages {} (one pipeline needs {})", a.stages, a.stages);
        }
    }
    if any(|w| matches!(w, Workload::Consensus { .. })) && a.replicas < 2 {
        bail!("--replicas must be at least 2 (a leader and a follower)");
    }
    Ok(())
}

/// Workloads that run closed loop only, and the window a fan-out allows.
fn check_workload_pacing(a: &BenchArgs, workloads: &[Workload]) -> anyhow::Result<()> {
    let open = a.rate.is_some()
        || a.find_max_rate
        || a.find_max_agents.is_some()
        || a.intervals.as_deref().is_some_and(|i| i.split(',').any(|m| m.trim() != "0"));
    let closed_only = workloads.iter().find(|w| {
        matches!(
            w,
            Workload::Barriers
                | Workload::Consensus { .. }
                | Workload::Election { .. }
                | Workload::Delegation { .. }
        )
    });
    if let (true, Some(w)) = (open, closed_only) {
        let why = if *w == Workload::Barriers {
            "a round begins when the last one released"
        } else {
            "only some agents start operations, each when its last one ended"
        };
        bail!(
            "--workload {w} runs closed loop ({why}): drop --rate, --intervals, --find-max-rate and --find-max-agents"
        );
    }
    if workloads.iter().any(Workload::fans_out)
        && a.window > crate::loadgen::workload::FAN_WINDOW_MAX
    {
        bail!(
            "--window: at most {} with --workload fanout or broadcast",
            crate::loadgen::workload::FAN_WINDOW_MAX
        );
    }
    Ok(())
}

/// The highest `--rate` taken: sends a nanosecond apart.
const RATE_MAX: f64 = 1e9;

/// `--intervals` or `--rate`: the pacings of the grid, and the intervals and rates as the
/// report states them.
fn pacings(a: &BenchArgs) -> anyhow::Result<(Vec<PacingSpec>, Vec<u64>, Vec<f64>)> {
    Ok(match (&a.intervals, &a.rate) {
        (Some(spec), _) => {
            let ms: Vec<u64> = list("--intervals", spec)?;
            // 0 sends without pause, as in the seed tester: closed loop.
            let specs = ms
                .iter()
                .map(|&m| if m == 0 { PacingSpec::Closed } else { PacingSpec::Interval(m) })
                .collect();
            (specs, ms, Vec::new())
        }
        (None, Some(spec)) => {
            let r: Vec<f64> = list("--rate", spec)?;
            if let Some(bad) = r.iter().find(|&&x| !(x > 0.0 && x.is_finite())) {
                bail!("--rate: {bad} is not a rate (a positive, finite number of requests per second)");
            }
            if let Some(bad) = r.iter().find(|&&x| x > RATE_MAX) {
                bail!("--rate: {bad} is above {RATE_MAX:e} requests per second, the most a clock of nanoseconds can space apart");
            }
            (r.iter().map(|&x| PacingSpec::Rate(x)).collect(), Vec::new(), r)
        }
        (None, None) => (vec![PacingSpec::Closed], Vec::new(), Vec::new()),
    })
}

/// `--payload-size`: one size or a list (`64,1K,64K`).
fn payload_sizes(a: &BenchArgs) -> anyhow::Result<Vec<usize>> {
    let sizes: Vec<usize> = a
        .payload_size
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| crate::cli::parse_bytes(s).map_err(|e| anyhow::anyhow!("--payload-size: {e}")))
        .collect::<anyhow::Result<_>>()?;
    if sizes.is_empty() {
        bail!("--payload-size: the list is empty");
    }
    Ok(sizes)
}

/// `--payload-mix`: sizes drawn by weight, for the native and JSON protocols' request/reply
/// and for `a2a-bench http`'s messages.
fn payload_mix(a: &BenchArgs, workloads: &[Workload]) -> anyhow::Result<Option<PayloadMix>> {
    let Some(spec) = &a.payload_mix else { return Ok(None) };
    let mut items = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let Some((size, weight)) = item.split_once(':') else {
            bail!("--payload-mix: {item:?} is not SIZE:WEIGHT (e.g. 64:90,64K:10)");
        };
        let bytes =
            crate::cli::parse_bytes(size).map_err(|e| anyhow::anyhow!("--payload-mix: {e}"))?;
        let Ok(weight) = weight.trim().parse::<u32>() else {
            bail!("--payload-mix: weight {:?} is not a whole number ≥ 1", weight.trim());
        };
        items.push((bytes, weight));
    }
    let mix = PayloadMix::new(&items, (16, 4 << 20))
        .map_err(|e| anyhow::anyhow!("--payload-mix: {e}"))?;
    if !matches!(a.protocol, Protocol::Native | Protocol::Json | Protocol::Http) {
        bail!(
            "--payload-mix: only the native and JSON protocols and a2a-bench http send a mix (not --protocol {})",
            a.protocol
        );
    }
    if let Some(w) = workloads.iter().find(|w| **w != Workload::RequestReply) {
        bail!(
            "--payload-mix: only request/reply (the default workload) sends a mix, not --workload {}",
            w.name()
        );
    }
    Ok(Some(mix))
}

/// A mix as `--payload-mix` takes it, sizes written as the report writes them
/// (`64B:90,64K:10`).
pub(in crate::cli) fn mix_label(m: &PayloadMix) -> String {
    let items: Vec<String> =
        m.classes().map(|(b, w)| format!("{}:{w}", report::text::size(b))).collect();
    items.join(",")
}

/// The window, repeats, payloads, batch, sharing and priority; the number of repeats.
fn check_sizes(a: &BenchArgs, payloads: &[usize]) -> anyhow::Result<u32> {
    if a.window == 0 {
        bail!("--window must be at least 1");
    }
    let repeat = a.repeat.unwrap_or(if a.quick { 1 } else { 3 });
    if repeat == 0 {
        bail!("--repeat must be at least 1");
    }
    // A message's text over HTTP carries no send times: any length from one byte.
    let least = if a.protocol == Protocol::Http { 1 } else { 16 };
    if let Some(p) = payloads.iter().find(|&&p| !(least..=4 << 20).contains(&p)) {
        match least {
            16 => bail!(
                "--payload-size must be between 16 and 4M bytes (the send times take 16): {p}"
            ),
            _ => bail!("--payload-size must be between 1 byte and 4M bytes: {p}"),
        }
    }
    let payload = payloads.iter().copied().max().unwrap_or(16);
    if a.batch == 0 {
        bail!("--batch must be at least 1");
    }
    // The embedded router would refuse every frame and close every connection (a JSON
    // message reaches its shard as a native frame holding at least the payload).
    if a.router.is_none() && a.protocol != Protocol::Http {
        let one = crate::wire::HEADER_LEN + 5 + crate::wire::Envelope::encoded_len_max(payload);
        let frame_max = a.router_flags.frame_bytes_max;
        if one > frame_max {
            let flag = match a.payload_mix {
                Some(_) => "--payload-mix: its largest size,",
                None => "--payload-size",
            };
            bail!(
                "{flag} {payload} does not fit the embedded router's --frame-bytes-max {frame_max}: a frame of one message takes up to {one} bytes"
            );
        }
        if a.protocol == Protocol::Native && a.batch > a.router_flags.batch_max {
            bail!(
                "--batch {} is above the embedded router's --batch-max {}: it would refuse every full frame",
                a.batch,
                a.router_flags.batch_max
            );
        }
    }
    if a.agents_per_conn == 0 {
        bail!("--agents-per-conn must be at least 1");
    }
    if a.priority > 10 {
        bail!("--priority must be 0 to 10");
    }
    Ok(repeat)
}

/// Where a benchmark runs: its router and cores, and how the agents reach the router.
struct Placement {
    /// The topologies given, or the one `a2a-bench http`'s clients form.
    topologies: Vec<Topology>,
    target: Target,
    plan: Plan,
    transport: Transport,
    /// Said before the runs: placements that share cores, I/O that fell back.
    warnings: Vec<String>,
}

/// The router (embedded on its cores, or `--router`), the agents' cores, the transport and the
/// I/O each side uses; `a` keeps the I/O in effect where the kernel lacks the ring.
fn placement(
    a: &mut BenchArgs,
    http: bool,
    topologies: Vec<Topology>,
) -> anyhow::Result<Placement> {
    let machine = Machine::detect();
    let all = match &a.cores {
        Some(spec) => slots_for("--cores", spec, &machine)?,
        None => machine.cores.clone(),
    };
    let json = a.protocol == Protocol::Json;
    let mut transport = a.transport.unwrap_or(if json { Transport::Ws } else { Transport::Tcp });
    let topologies = match (http, topologies.contains(&Topology::Client)) {
        (true, _) => vec![Topology::Client],
        (false, true) => {
            bail!("--topologies client: that is `a2a-bench http`'s (clients of one server)")
        }
        (false, false) => topologies,
    };
    if http && a.router.is_none() {
        bail!("--protocol http: run `a2a-bench http --url URL --pattern …`");
    }
    let (target, plan) = match &a.router {
        Some(url) => {
            let (scheme, addr) =
                parse_router_url(url).map_err(|e| anyhow::anyhow!("--router: {e}"))?;
            let implied = if scheme == "ws" { Transport::Ws } else { Transport::Tcp };
            if a.transport.is_some_and(|t| t != implied) {
                bail!("--transport {transport} contradicts --router {url}");
            }
            transport = implied;
            if a.router_cores.is_some() {
                bail!("--router-cores: there is no embedded router with --router");
            }
            let agents = match &a.agent_cores {
                Some(spec) => slots_for("--agent-cores", spec, &machine)?,
                None => all.clone(),
            };
            (Target::External { url: url.clone(), addr }, Plan { router: Vec::new(), agents })
        }
        None => {
            let plan = embedded_plan(a, &all, &machine)?;
            (Target::Embedded { slots: plan.router.clone() }, plan)
        }
    };
    a.router_flags.shard_config(a.compression)?;
    let mut warnings =
        placement_warnings(&target, &plan, a.agent_cores.is_some(), http, a.router_flags.poll);
    let (agent_io, why_agents) = crate::transport::uring::effective(a.agent_io);
    let (router_io, why_router) = crate::transport::uring::effective(a.router_flags.router_io);
    warnings.extend(why_agents.or(why_router)); // the same probe: said once
    a.agent_io = agent_io;
    a.router_flags.router_io = router_io;
    if json && transport != Transport::Ws {
        bail!("--protocol json runs over WebSocket: drop --transport tcp or use a ws:// --router");
    }
    if json && a.agents_per_conn != 1 {
        bail!("--agents-per-conn: the JSON protocol has one connection per agent");
    }
    Ok(Placement { topologies, target, plan, transport, warnings })
}

/// The embedded router's cores and the agents': half and half of `all` unless
/// `--router-cores` or `--agent-cores` say otherwise.
fn embedded_plan(a: &BenchArgs, all: &[Slot], machine: &Machine) -> anyhow::Result<Plan> {
    let mut plan = Plan::split(all);
    if let Some(spec) = &a.router_cores {
        plan.router = slots_for("--router-cores", spec, machine)?;
        plan.agents = all.iter().copied().filter(|s| !plan.router.contains(s)).collect();
    }
    if let Some(spec) = &a.agent_cores {
        plan.agents = slots_for("--agent-cores", spec, machine)?;
    }
    if plan.agents.is_empty() {
        bail!("--agent-cores: no core left for the agents (give more --cores)");
    }
    if plan.router.len() > 64 {
        bail!("--router-cores: at most 64 shards");
    }
    Ok(plan)
}

/// `--threshold` and `--find-max-rate --slo`: what the runs are judged by, each threshold in
/// the mode it belongs to. `mix`: `--payload-mix`, whose sizes thresholds may name.
fn judging(
    a: &BenchArgs,
    mix: Option<&PayloadMix>,
) -> anyhow::Result<(Vec<Threshold>, Option<crate::cli::search::SearchConfig>)> {
    let thresholds = a
        .thresholds
        .iter()
        .map(|t| t.parse::<Threshold>().map_err(|e| anyhow::anyhow!("--threshold: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let over = match (a.find_max_rate, a.find_max_agents) {
        (_, Some(r)) if !(r > 0.0 && r.is_finite()) => bail!(
            "--find-max-agents: {r} is not a rate (a positive, finite number of requests per second per agent)"
        ),
        (_, Some(r)) if r > RATE_MAX => bail!(
            "--find-max-agents: {r} is above {RATE_MAX:e} requests per second, the most a clock of nanoseconds can space apart"
        ),
        (_, Some(per_agent)) => Some(Over::Agents { per_agent }),
        (true, None) => Some(Over::Rate),
        (false, None) => None,
    };
    let search = match (&a.slo, over) {
        (Some(slo), Some(over)) => {
            if !(a.search_precision > 0.0 && a.search_precision < 0.5) {
                bail!("--search-precision must be a share above 0 and below 0.5");
            }
            Some(crate::cli::search::SearchConfig {
                slo: report::threshold::parse_list("--slo", slo)?,
                slo_text: slo.clone(),
                precision: a.search_precision,
                over,
            })
        }
        (Some(_), None) => bail!(
            "--slo is what --find-max-rate or --find-max-agents searches by: give one of them"
        ),
        (None, _) => None,
    };
    let slo = search.iter().flat_map(|s| &s.slo).map(|t| ("--slo", t));
    let all = thresholds.iter().map(|t| ("--threshold", t)).chain(slo);
    for (flag, t) in all {
        let Some(name) = t.pattern() else { continue };
        match mix {
            // A size of the mix, as the report writes it.
            // An HTTP pattern's name was checked against --pattern.
            Some(_) if a.protocol == Protocol::Http && crate::cli::parse_bytes(name).is_err() => {}
            Some(m) => {
                let sizes: Vec<String> = m.classes().map(|(b, _)| report::text::size(b)).collect();
                if !sizes.iter().any(|s| s == name) {
                    bail!(
                        "{flag} '{}': {name} is not a size of --payload-mix (its sizes: {})",
                        t.text(),
                        sizes.join(", ")
                    );
                }
            }
            None if a.protocol != Protocol::Http => bail!(
                "{flag} '{}': a pattern's figures are a2a-bench http's (or a --payload-mix size's)",
                t.text()
            ),
            None => {}
        }
    }
    // Each mode judges its own figures: a run's, a rate search's or an agent search's.
    let judged = |t: &Threshold| match search.as_ref().map(|s| s.over) {
        None => !t.is_about_search() && !t.is_about_agents(),
        Some(Over::Rate) => t.is_about_search(),
        Some(Over::Agents { .. }) => t.is_about_agents(),
    };
    if let Some(t) = thresholds.iter().find(|t| !judged(t)) {
        match search.as_ref().map(|s| s.over) {
            Some(Over::Rate) => bail!(
                "--threshold '{}': with --find-max-rate only max_rate thresholds apply (e.g. max_rate>50k)",
                t.text()
            ),
            Some(Over::Agents { .. }) => bail!(
                "--threshold '{}': with --find-max-agents only max_agents thresholds apply (e.g. max_agents>1000)",
                t.text()
            ),
            None if t.is_about_agents() => {
                bail!("--threshold '{}': max_agents needs --find-max-agents RATE --slo", t.text())
            }
            None => bail!("--threshold '{}': max_rate needs --find-max-rate --slo", t.text()),
        }
    }
    Ok((thresholds, search))
}

/// `--interval` and `--hlog`, which writes one histogram per interval.
fn check_intervals(a: &BenchArgs) -> anyhow::Result<()> {
    if !a.interval.is_zero() && a.interval < Duration::from_millis(100) {
        bail!("--interval: at least 0.1 s (each interval copies every agent core's histogram), or 0 for none");
    }
    if a.interval.is_zero() && a.hlog.is_some() {
        bail!("--hlog writes one histogram per --interval: give an --interval above 0");
    }
    Ok(())
}

impl BenchConfig {
    /// `a2a-bench http`: the clients of `plan` against the server at `url`.
    pub(in crate::cli) fn into_http(
        mut self,
        url: &str,
        plan: crate::loadgen::http::Plan,
        connections: Option<u32>,
        info: report::HttpConfig,
    ) -> BenchConfig {
        if let Target::External { addr, .. } = self.target {
            self.target = Target::External { url: url.to_string(), addr };
        }
        self.report_config.router = Some(url.to_string());
        self.report_config.http = Some(info);
        self.http = Some(std::sync::Arc::new(plan));
        self.connections = connections;
        self
    }

    /// The first flag given that `a2a-bench compare` does not take.
    pub fn not_for_compare(&self) -> Option<&'static str> {
        [
            (!self.thresholds.is_empty(), "--threshold"),
            (self.baseline.is_some(), "--baseline"),
            (self.hlog.is_some(), "--hlog"),
        ]
        .into_iter()
        .find_map(|(given, flag)| given.then_some(flag))
    }

    /// [`crate::host::probe_stalls`] for `--stall-probe` on the cores this configuration uses
    /// (the embedded router's and the agents'); nothing when it is 0, or for a worker of a
    /// multi-host run (its coordinator waits on it).
    pub fn probe_stalls(&self) -> Vec<crate::host::Stalls> {
        if self.stall_probe.is_zero() || self.worker.is_some() {
            return Vec::new();
        }
        let mut cores: Vec<usize> = self.plan.agents.iter().map(|s| s.core).collect();
        if matches!(self.target, Target::Embedded { .. }) {
            cores.extend(self.plan.router.iter().map(|s| s.core));
        }
        cores.sort_unstable();
        cores.dedup();
        crate::host::probe_stalls(&cores, self.stall_probe)
    }

    /// The cores the agents run on (an agent core's index in a run is its place here).
    pub fn agent_cores(&self) -> Vec<usize> {
        self.plan.agents.iter().map(|s| s.core).collect()
    }

    /// The same grid on other cores (an embedded router on `plan.router`, agents on
    /// `plan.agents`).
    pub fn with_plan(&self, plan: Plan) -> BenchConfig {
        let mut c = self.clone();
        c.target = Target::Embedded { slots: plan.router.clone() };
        c.plan = plan;
        c
    }

    /// `--csv` and `--html`, when given.
    pub fn exports(&self) -> (Option<&std::path::Path>, Option<&std::path::Path>) {
        (self.csv.as_deref(), self.html.as_deref())
    }

    /// Placement warnings, one line each.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Every run of the grid, in order: topology, agents, stop, pacing, repetition.
    pub fn grid(&self) -> Vec<RunSpec> {
        let salt = self.worker.as_ref().map_or(std::process::id() % 1000, |w| w.salt());
        let mut runs = Vec::new();
        let mut shapes: Vec<(Workload, Topology)> = Vec::new();
        for &w in &self.workloads {
            if w.uses_topology() {
                shapes.extend(self.topologies.iter().map(|&t| (w, t)));
            } else {
                // A workload without a topology runs once, whatever --topologies says.
                shapes.push((w, Topology::Mesh));
            }
        }
        for (workload, topology) in shapes {
            for &agents in &self.agents {
                let workload = self.seat_workload(workload, agents);
                // Payload sizes, then stops: each size's runs together.
                let sizes =
                    self.payloads.iter().flat_map(|p| self.stops.iter().map(move |s| (p, s)));
                for (&payload, &stop) in sizes {
                    for &pacing in &self.pacings {
                        for repeat in 0..self.repeat {
                            let (pacing, interval_ms) = match pacing {
                                PacingSpec::Closed => {
                                    (Pacing::Closed { window: self.window }, None)
                                }
                                PacingSpec::Interval(ms) => (
                                    Pacing::Open {
                                        rate: f64::from(agents) * 1000.0 / ms as f64,
                                        window: self.window,
                                    },
                                    Some(ms),
                                ),
                                PacingSpec::Rate(rate) => {
                                    (Pacing::Open { rate, window: self.window }, None)
                                }
                            };
                            let id_base = 1
                                + ((salt + runs.len() as u32) % crate::loadgen::ID_BLOCKS)
                                    * (1 << 21);
                            runs.push(RunSpec {
                                scenario: Scenario {
                                    topology,
                                    agents,
                                    pacing,
                                    stop,
                                    warmup: self.warmup,
                                    drain_timeout: self.drain_timeout,
                                    payload_bytes: payload,
                                    payload_mix: self.payload_mix,
                                    batch_max: self.batch,
                                    compression: self.compression,
                                    // Unused where `connections` seats the agents.
                                    agents_per_conn: self.agents_per_conn,
                                    connections: self.connections.map(|c| c.clamp(1, agents)),
                                    // Fewer connections than agent cores: a connection
                                    // lives on one core, so its clients run there.
                                    agent_cores: match self.connections {
                                        Some(c) if (c as usize) < self.plan.agents.len() => {
                                            self.plan.agents[..c.max(1) as usize].to_vec()
                                        }
                                        _ => self.plan.agents.clone(),
                                    },
                                    late_after: self.late_after,
                                    priority: self.priority,
                                    id_base,
                                    transport: self.transport,
                                    io: self.io,
                                    poll: self.router_flags.poll,
                                    homing: self.homing,
                                    protocol: self.protocol,
                                    interval: self.interval,
                                    slice: self.worker.as_ref().map(|w| w.slice(agents)),
                                    http: self.http.clone(),
                                    workload,
                                    keepalive: (self.protocol != Protocol::Http)
                                        .then(|| self.router_flags.heartbeat_timeout / 3),
                                },
                                repeat,
                                interval_ms,
                            });
                        }
                    }
                }
            }
        }
        runs
    }

    /// The runs a search starts from, one per scenario: the grid's first repetition of each (an
    /// agent search's scenario has no count: the first of `--agents` is where it starts).
    pub(in crate::cli) fn search_starts(&self) -> Vec<RunSpec> {
        let first = self.agents.first().copied().unwrap_or(1);
        let by_count = self.search.as_ref().is_some_and(|s| s.over != Over::Rate);
        self.grid()
            .into_iter()
            .filter(|s| s.repeat == 0 && (!by_count || s.scenario.agents == first))
            .collect()
    }

    /// `spec` with `agents` agents, each asking `per_agent` requests per second: a step of an
    /// agent search, seated as the grid seats a count of its own.
    pub fn with_agents(&self, spec: &RunSpec, agents: u32, per_agent: f64) -> RunSpec {
        let mut s = spec.clone();
        let sc = &mut s.scenario;
        sc.agents = agents;
        sc.pacing = Pacing::Open { rate: f64::from(agents) * per_agent, window: self.window };
        sc.connections = self.connections.map(|c| c.clamp(1, agents));
        sc.workload = self.seat_workload(sc.workload, agents);
        // A worker of a multi-host run drives its share of the new count.
        sc.slice = self.worker.as_ref().map(|w| w.slice(agents));
        s.interval_ms = None;
        s
    }

    /// A workload as `agents` agents run it: a fan-out has at most `agents − 1` subscribers
    /// a topic (`--subscribers` asked).
    fn seat_workload(&self, workload: Workload, agents: u32) -> Workload {
        match workload {
            Workload::Fanout { .. } => {
                let asked = self.workloads.iter().find_map(|w| match w {
                    Workload::Fanout { subscribers } => Some(*subscribers),
                    _ => None,
                });
                let asked = asked.unwrap_or(1);
                Workload::Fanout { subscribers: asked.min(agents.saturating_sub(1)).max(1) }
            }
            w => w,
        }
    }

    /// Where the report goes.
    pub fn output(&self) -> &std::path::Path {
        &self.output
    }

    /// The core split.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// `--payload-size`'s sizes.
    pub fn payloads(&self) -> &[usize] {
        &self.payloads
    }

    /// The report's `config` section.
    pub fn report_config(&self) -> &ReportConfig {
        &self.report_config
    }

    /// Shard settings for an embedded router (of any kind).
    pub fn router_shard_config(&self) -> anyhow::Result<crate::route::ShardConfig> {
        self.router_flags.shard_config(self.compression)
    }

    /// The latency-mode spin for an embedded router.
    pub fn router_spin(&self) -> Option<Duration> {
        self.router_flags.spin()
    }

    /// `--router-io`.
    pub fn router_io(&self) -> Io {
        self.router_flags.router_io
    }

    /// `--poll`, for an embedded router.
    pub fn router_flags_poll(&self) -> bool {
        self.router_flags.poll
    }

    /// What the agents speak.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }
}
