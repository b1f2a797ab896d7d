//! The text export: one line per run as it finishes, then the summary.
//!
//! Writes go through `io::Write` so that a closed pipe (`a2a-bench | head`) ends output quietly
//! instead of panicking.

use std::io::{self, Write};

use super::{Report, RunResult};

/// Scales a rate for a table cell: `12.3 M`, `456.7 k`, `89`.
pub fn rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// Milliseconds for a table cell.
pub fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// A latency cell: `-` where nothing was measured (not a latency of 0).
pub fn measured_ms(count: u64, v: f64) -> String {
    if count == 0 {
        "-".to_string()
    } else {
        ms(v)
    }
}

/// The header of the per-run table.
pub fn header(out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "{:>3}  {:<12} {:>6} {:<26} {:>11} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>6} {:>9}  status",
        "#",
        "topology",
        "agents",
        "pacing",
        "msgs/s",
        "p50 ms",
        "p99 ms",
        "p99.9",
        "raw p99",
        "1-way50",
        "errors",
        "late",
        "cpu a/r",
    )
}

/// One run's line, then a line per pattern and what else the run has to say.
pub fn run_line(out: &mut dyn Write, index: usize, r: &RunResult) -> io::Result<()> {
    writeln!(
        out,
        "{:>3}  {:<12} {:>6} {:<26} {:>11} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>6} {:>9}  {}",
        index + 1,
        r.topology,
        r.agent_count,
        pacing_cell(r),
        rate(r.throughput_msg_per_sec),
        measured_ms(r.latency.rtt.count, r.p50_latency_ms),
        measured_ms(r.latency.rtt.count, r.p99_latency_ms),
        measured_ms(r.latency.rtt.count, r.p999_latency_ms),
        measured_ms(r.latency.rtt_raw.count, r.latency.rtt_raw.p99_ms),
        measured_ms(r.latency.one_way.count, r.latency.one_way.p50_ms),
        r.errors.values().sum::<u64>(),
        r.pacing.late_sends,
        cpu_cell(r),
        status_cell(r)
    )?;
    for p in &r.patterns {
        writeln!(out, "{}", pattern_line(p))?;
    }
    for s in &r.payload_mix {
        writeln!(out, "{}", size_line(s))?;
    }
    run_notes(out, r)
}

/// Open loop shows the rate asked for, then the rate achieved; count mode the requests per
/// agent.
fn pacing_cell(r: &RunResult) -> String {
    let mut pacing = match r.pacing.rate_per_sec {
        Some(asked) => format!(
            "open {}→{} w{}",
            rate(asked),
            rate(r.pacing.achieved_rate_per_sec),
            r.pacing.window
        ),
        None => format!("closed w{}", r.pacing.window),
    };
    if r.count_mode {
        pacing.push_str(&format!(" ×{}", r.messages_per_agent));
    }
    if !r.payload_mix.is_empty() {
        pacing.push_str(" mix");
    } else if r.payload_texts.is_some() {
        pacing.push_str(" texts");
    } else if r.payload_size != DEFAULT_PAYLOAD {
        pacing.push_str(&format!(" {}", size(r.payload_size)));
    }
    pacing
}

/// The payload size a run names only when it is another (`--payload-size`'s default).
pub const DEFAULT_PAYLOAD: usize = 64;

/// Bytes as `--payload-size` takes them: `64B`, `1K`, `1536B`, `4M`.
pub fn size(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{}M", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{}K", b >> 10),
        b => format!("{b}B"),
    }
}

/// The busiest agent core and router core, by work, not watching: what a core could still
/// take on is what the column is read for. A target whose shards say nothing but whose
/// processes run on this machine: the cores they used in all (`1.1c`, the summary's `target:`
/// line).
fn cpu_cell(r: &RunResult) -> String {
    let cpu = |busy: &[f64], watch: &Option<Vec<f64>>| {
        let net = crate::report::net_of_watch(busy, watch.as_deref().unwrap_or(&[]));
        net.into_iter().fold(0.0, f64::max) * 100.0
    };
    let agents = cpu(&r.cpu.agent_cores, &r.cpu.agent_watch);
    match &r.cpu.router_cores {
        Some(router) => format!("{agents:.0}/{:.0}%", cpu(router, &r.cpu.router_watch)),
        None => match r.cpu.target_cores {
            Some(cores) => format!("{agents:.0}%/{cores:.1}c"),
            None => format!("{agents:.0}/-%"),
        },
    }
}

/// A fixed rate held with the agents' cores saturated as well as the router's: the rate was
/// the router's to answer, but the latency counts the agents' own queueing beside the router's.
fn held_with_both_saturated(r: &RunResult) -> bool {
    r.pacing.mode == "open" && r.cpu.bottleneck == "both"
}

/// The run's status, with why it failed, was overloaded or too short.
fn status_cell(r: &RunResult) -> String {
    match (&r.failure, r.status) {
        (Some(why), _) => format!("FAILED: {why}"),
        (None, "ok") if r.cpu.bottleneck == "generator" => "ok (generator-bound)".to_string(),
        (None, "ok") if held_with_both_saturated(r) => "ok (both sides saturated)".to_string(),
        (None, "ok") if r.cpu.bottleneck == crate::report::SHARED_CORES => {
            "ok (shared cores saturated)".to_string()
        }
        (None, "overloaded") => {
            let share = r.pacing.share_per_sec;
            let asked = share.or(r.pacing.rate_per_sec).unwrap_or(0.0);
            let achieved = r.pacing.achieved_rate_per_sec;
            if achieved < crate::report::SUSTAINED_RATE_SHARE * asked {
                let of = if share.is_some() { "this worker's share" } else { "asked" };
                format!("OVERLOADED: {} of {} {of}", rate(achieved), rate(asked))
            } else {
                // The window's sends (late ones are counted in the window only).
                let sent = (achieved * r.duration_sec).max(1.0);
                format!(
                    "OVERLOADED: {:.1} % of sends later than {} ms",
                    r.pacing.late_sends as f64 * 100.0 / sent,
                    r.pacing.late_after_ms
                )
            }
        }
        // Said by whichever bound it missed: too few round trips, or a window under ten of its p99s.
        (None, "too_short") if r.latency.rtt.count >= crate::report::TOO_SHORT_ROUND_TRIPS => {
            format!(
                "TOO SHORT: a {:.3} s window under {}× its p99 ({} ms)",
                r.duration_sec,
                crate::report::TOO_SHORT_P99_MULTIPLE,
                measured_ms(r.latency.rtt.count, r.p99_latency_ms)
            )
        }
        (None, "too_short") => format!(
            "TOO SHORT: {} measured round trips in {:.3} s",
            r.latency.rtt.count, r.duration_sec
        ),
        (None, status) => status.to_string(),
    }
}

/// One size's figures under the line of a `--payload-mix` run.
fn size_line(s: &crate::report::SizeResult) -> String {
    let errors = match s.errors {
        0 => String::new(),
        n => format!("  errors {n}"),
    };
    format!(
        "       {:<6} {:>5.1} % of sends ({:.1} % asked) {:>9} round trips/s   p50 {} ms  p99 {} ms  p99.9 {} ms{errors}",
        size(s.bytes),
        100.0 * s.share_sent,
        100.0 * s.share_asked,
        rate(s.round_trips_per_sec),
        measured_ms(s.latency.count, s.latency.p50_ms),
        measured_ms(s.latency.count, s.latency.p99_ms),
        measured_ms(s.latency.count, s.latency.p999_ms),
    )
}

/// One HTTP pattern's figures under its run's line.
fn pattern_line(p: &crate::report::PatternResult) -> String {
    let mut line = format!(
        "       {:<20} {:>9} ok {:>9}/s   p50 {} ms  p99 {} ms",
        p.pattern,
        p.ok,
        rate(p.ok_per_sec),
        measured_ms(p.latency.count, p.latency.p50_ms),
        measured_ms(p.latency.count, p.latency.p99_ms)
    );
    // A stream with no answer has no first event to time.
    if let (Some(f), Some(e)) =
        (p.first_event.as_ref().filter(|f| f.count > 0), p.events_per_answer)
    {
        line.push_str(&format!(
            "  first event p50 {} ms p99 {} ms, {e:.1} events",
            ms(f.p50_ms),
            ms(f.p99_ms)
        ));
    }
    if let Some(a) = p.accepted.as_ref().filter(|a| a.count > 0) {
        line.push_str(&format!("  accepted p50 {} ms p99 {} ms", ms(a.p50_ms), ms(a.p99_ms)));
        if let Some(n) = p.polls_per_answer {
            line.push_str(&format!(", {n:.1} polls"));
        }
    }
    if p.errors > 0 {
        let kinds: Vec<String> = p.errors_by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
        line.push_str(&format!("  errors {} in the window ({})", p.errors, kinds.join(", ")));
    }
    line
}

/// What else a run has to say, a line each: connections replaced, requests sent again, lost
/// wake-ups, the router's shards, a coordination workload's figures.
fn run_notes(out: &mut dyn Write, r: &RunResult) -> io::Result<()> {
    if let Some(n) = r.reconnects.filter(|&n| n > 0) {
        writeln!(out, "       {n} connections replaced (the server closed them, or --timeout)")?;
    }
    if let Some(n) = r.heartbeats.filter(|&n| n > 0) {
        writeln!(
            out,
            "       {n} heartbeats sent on connections silent for a third of the router's \
             heartbeat timeout (not in any figure)"
        )?;
    }
    if let Some(w) = r.wire_bytes_per_sec {
        let mb = |b: f64| b / 1e6;
        writeln!(
            out,
            "       wire: {:.1} MB/s read, {:.1} MB/s written by the agents",
            mb(w.received),
            mb(w.sent)
        )?;
    }
    if let Some(line) = r.mcp_sessions.as_ref().map(sessions_line) {
        writeln!(out, "       {line}")?;
    }
    if let Some(n) = r.resent.filter(|&n| n > 0) {
        writeln!(out, "       {n} requests sent again (the server never processed them)")?;
    }
    if let Some(why) = &r.remade {
        writeln!(out, "       made again: in its first attempt {why}")?;
    }
    if let Some(n) = r.lost_wakeups.filter(|&n| n > 0) {
        writeln!(
            out,
            "       {n} lost wake-ups: this process's socket rings slept until their 20 ms \
             fallback timer with work waiting; round trips near 20 ms are the tool's"
        )?;
    }
    if let (Some(share), Some(shards)) = (r.cpu.router_cross_shard_share, &r.cpu.router_cores) {
        writeln!(
            out,
            "       router: {} shards, {:.1} % of messages handed from one shard to another",
            shards.len(),
            share * 100.0
        )?;
    }
    if let Some(c) = &r.coordination {
        writeln!(out, "       {}", coordination_line(c))?;
    }
    if let Some(p) = &r.pipeline {
        let idle = match p.idle_agents {
            0 => String::new(),
            1 => " (1 agent past the last takes no part)".to_string(),
            n => format!(" ({n} agents past the last take no part)"),
        };
        writeln!(
            out,
            "       pipeline: {} of {} stages{idle}, {}/s items back at their sources, {:.2} \
             deliveries per item; an item's whole way in the p50/p99 columns, a hop in 1-way",
            match p.pipelines {
                1 => "1 pipeline".to_string(),
                n => format!("{n} pipelines"),
            },
            p.stages,
            rate(p.items_per_sec),
            p.deliveries_per_item
        )?;
        if !p.hops.is_empty() {
            let cells: Vec<String> = p
                .hops
                .iter()
                .map(|h| {
                    let to = match h.to_stage {
                        0 => "source".to_string(),
                        s => s.to_string(),
                    };
                    let l = &h.latency;
                    format!(
                        "→{to} {}/{}",
                        measured_ms(l.count, l.p50_ms),
                        measured_ms(l.count, l.p99_ms)
                    )
                })
                .collect();
            writeln!(out, "       hops, 1-way p50/p99 ms: {}", cells.join("  "))?;
        }
    }
    if let Some(line) = watch_note(r) {
        writeln!(out, "       {line}")?;
    }
    if r.latency.rtt.count == 0
        && r.pacing.rate_per_sec.is_some()
        && r.pacing.achieved_rate_per_sec > 0.0
    {
        writeln!(
            out,
            "       no round trip measured: no request due in the window was answered in it \
             (requests left, but none of the window's own); the latency columns are no figure"
        )?;
    }
    Ok(())
}

/// How an MCP run's sessions ended: by `DELETE`, or what the server answered instead.
fn sessions_line(s: &crate::report::run::SessionEnds) -> String {
    let all = s.ended + s.failed + s.refused.values().sum::<u64>();
    let mut line = format!("MCP sessions: {} of {all} ended by DELETE", s.ended);
    for (status, n) in &s.refused {
        let why = match status.as_str() {
            "http_405" => " (the server does not let clients end sessions)",
            "http_404" => " (the server no longer knew them)",
            _ => "",
        };
        line.push_str(&format!(", {n} answered {status}{why}"));
    }
    if s.failed > 0 {
        line.push_str(&format!(", {} not answered (connection failed or timed out)", s.failed));
    }
    line
}

/// Where a core spent a quarter or more watching for input that had not come (`--poll`, or a
/// watch kept through near waits), what the cores cost in all: the `cpu` column counts work.
fn watch_note(r: &RunResult) -> Option<String> {
    let most = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let watch = |w: &Option<Vec<f64>>| w.as_deref().map_or(0.0, most);
    let (aw, rw) = (watch(&r.cpu.agent_watch), watch(&r.cpu.router_watch));
    if aw.max(rw) < 0.25 {
        return None;
    }
    let busy = most(&r.cpu.agent_cores) * 100.0;
    let (router_busy, router_watch) = match &r.cpu.router_cores {
        Some(c) => (format!("{:.0}", most(c) * 100.0), format!("{:.0}", rw * 100.0)),
        None => ("-".into(), "-".into()),
    };
    Some(format!(
        "cores busy {busy:.0}/{router_busy} % in all, {:.0}/{router_watch} % of the core watching for input (the cpu column counts work; that watch is the cores' cost)",
        aw * 100.0
    ))
}

/// A coordination workload's own figures, on one line.
/// `g` groups of `r` agents, the last of `last` (the agents left over; older reports lack it).
fn groups_text(g: u32, r: u32, last: Option<u32>) -> String {
    match last {
        Some(n) if g == 1 => format!("1 group of {n} agents"),
        Some(n) if n != r => format!("{g} groups of {r} agents, the last of {n}"),
        Some(_) => format!("{g} groups of {r} agents"),
        None => format!("{g} groups ({r} agents each, the last with the rest)"),
    }
}

fn coordination_line(c: &crate::loadgen::workload::CoordResult) -> String {
    let mut line = format!(
        "{}: {}/s done, per agent {}..{} (fairness {:.3})",
        c.workload,
        rate(c.ops_per_sec),
        c.ops_per_agent_min,
        c.ops_per_agent_max,
        c.fairness
    );
    if let (Some(e), Some(a), Some(d), Some(l)) =
        (c.fanout_expected, c.fanout_achieved, c.deliveries_per_sec, c.deliveries_lost)
    {
        line.push_str(&format!(
            "; fan-out {a:.2} of {e}, {}/s deliveries, {l} lost; latency to the last recipient in the p50/p99 columns",
            rate(d)
        ));
    }
    if let (Some(locks), Some(h), Some(q), Some(x)) =
        (c.locks, &c.hold_actual, c.lock_queued, c.holder_conflicts)
    {
        line.push_str(&format!(
            "; {locks} locks, hold {} ms asked, p50 {} p99 {} ms held; {q} queued, {x} holder conflicts; wait for the grant in the p50/p99 columns",
            ms(c.hold_ms.unwrap_or(0.0)),
            ms(h.p50_ms),
            ms(h.p99_ms)
        ));
    }
    if let (Some(n), Some(rs), Some(t), Some(k)) =
        (c.rounds, c.rounds_per_sec, &c.round_time, &c.release_skew)
    {
        line.push_str(&format!(
            "; {n} rounds ({}/s), round p50 {} p99 {} ms, release skew p50 {} p99 {} ms",
            rate(rs),
            ms(t.p50_ms),
            ms(t.p99_ms),
            ms(k.p50_ms),
            ms(k.p99_ms)
        ));
    }
    if let (Some(j), Some(d), Some(gone), Some(nobody)) =
        (&c.join_latency, &c.discovery_latency, c.messages_to_departed, c.found_nobody)
    {
        line.push_str(&format!(
            "; join p50 {} p99 {} ms, discovery p50 {} p99 {} ms; {gone} messages to departed agents (expected), {nobody} discoveries found nobody",
            ms(j.p50_ms),
            ms(j.p99_ms),
            ms(d.p50_ms),
            ms(d.p99_ms)
        ));
    }
    if let (Some(r), Some(g), Some(m), Some(d)) =
        (c.replicas, c.groups, c.messages_per_commit, c.disagreements)
    {
        line.push_str(&format!(
            "; {}, {m:.1} messages per commit, {} commits applied by followers, {d} disagreements; commit latency in the p50/p99 columns",
            groups_text(g, r, c.last_group_size),
            c.followers_applied.unwrap_or(0)
        ));
    }
    if let (Some([co, sp, wo]), Some(m), Some(d), Some(nobody)) =
        (c.roles, c.messages_per_task, &c.discovery_latency, c.found_nobody)
    {
        line.push_str(&format!(
            "; {co} coordinators, {sp} specialists, {wo} workers, {m:.1} messages per task, {} subtasks done, discovery p50 {} p99 {} ms, {nobody} found no specialist; task latency in the p50/p99 columns",
            c.subtasks_done.unwrap_or(0),
            ms(d.p50_ms),
            ms(d.p99_ms)
        ));
    }
    if let (Some(m), Some(k), Some(d)) =
        (c.messages_per_election, c.candidates_per_election, c.dual_leaders)
    {
        line.push_str(&format!(
            "; {}, {m:.1} messages and {k:.1} candidates per election, {d} terms with two leaders; time to the new leader in the p50/p99 columns",
            groups_text(c.groups.unwrap_or(0), c.replicas.unwrap_or(0), c.last_group_size)
        ));
    }
    if let Some(r) = c.messages_refused.as_ref().filter(|r| !r.is_empty()) {
        let kinds: Vec<String> = r.iter().map(|(k, n)| format!("{k} {n}")).collect();
        line.push_str(&format!("; inner messages refused: {}", kinds.join(", ")));
    }
    line
}

/// The summary after the last run.
pub fn summary(out: &mut dyn Write, report: &Report) -> io::Result<()> {
    let s = &report.summary;
    writeln!(out)?;
    writeln!(
        out,
        "{} runs: {}. Throughput ({}) over {} successful runs long enough to count: avg {}, max {}, min {}; mean round trip {} ms, worst {} ms",
        s.total_runs,
        s.by_status.iter().map(|(k, n)| format!("{n} {k}")).collect::<Vec<_>>().join(", "),
        if s.throughput_unit.contains("HTTP") { "answered requests/s" } else { "router deliveries/s" },
        s.averaged_runs,
        rate(s.avg_throughput),
        rate(s.max_throughput),
        rate(s.min_throughput),
        measured_ms(s.latency_runs, s.avg_latency_ms),
        measured_ms(s.latency_runs, s.max_latency_ms)
    )?;
    let by_agents = s.by_agent_count.iter().map(|(k, v)| (k.to_string(), v));
    let by_topology = s.by_topology.iter().map(|(k, v)| (k.clone(), v));
    let by_payload = s.by_payload_size.iter().map(|(k, v)| (size(*k), v));
    let groups: [(&str, Vec<_>); 3] = [
        ("topology", by_topology.collect()),
        ("agents", by_agents.collect()),
        ("payload", by_payload.collect()),
    ];
    for (label, entries) in groups {
        let cells: Vec<String> = entries
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}: {} ({}–{})",
                    rate(v.avg_throughput),
                    rate(v.min_throughput),
                    rate(v.max_throughput)
                )
            })
            .collect();
        if !cells.is_empty() {
            writeln!(out, "  by {label}: {}", cells.join(", "))?;
        }
    }
    let http = s.throughput_unit.contains("HTTP");
    if report.results.iter().any(|r| r.cpu.bottleneck == "generator") {
        let (side, raw) = match http {
            // What a saturated client adds to each request is in the latency from the intended
            // time; the raw latency leaves it out.
            true => ("server", "; their latency from the intended send time counts the clients' own queueing, and the raw latency leaves out what of it the clients can tell"),
            false => ("router", ""),
        };
        writeln!(
            out,
            "  note: runs marked generator-bound saturated the agent cores, not the {side}: their throughput is a floor for the {side}{raw}"
        )?;
    }
    if report
        .results
        .iter()
        .any(|r| r.failure.is_none() && r.status == "ok" && held_with_both_saturated(r))
    {
        let (agents, side) = if http { ("clients", "server") } else { ("agents", "router") };
        writeln!(
            out,
            "  note: runs marked both sides saturated held their rate with the {agents}' cores busy too: their latency counts the {agents}' own queueing beside the {side}'s (give the {agents} more cores, or workers, to tell them apart)"
        )?;
    }
    if report.results.iter().any(|r| r.cpu.bottleneck == crate::report::SHARED_CORES) {
        writeln!(
            out,
            "  note: runs marked shared cores saturated had the router and the agents taking turns on the same cores: their throughput is neither side's capacity"
        )?;
    }
    let target: Vec<f64> = report.results.iter().filter_map(|r| r.cpu.target_cores).collect();
    if !target.is_empty() {
        let (lo, hi) = target.iter().fold((f64::MAX, 0.0f64), |(l, h), &c| (l.min(c), h.max(c)));
        writeln!(
            out,
            "  target: its processes on this machine used {lo:.2}–{hi:.2} cores in the runs' measured windows (counted as the target's, not as other processes')"
        )?;
    }
    let embedded = report.placement.router.starts_with("embedded");
    let us = match (http, embedded) {
        _ if report.merged.is_some() => "the workers' processes, added up",
        (true, _) => "this process (the clients)",
        (false, true) => "this process (the agents and the embedded router)",
        (false, false) => "this process (the agents)",
    };
    let unit = if http { "clients" } else { "agents" };
    let target = memory_text(&report.results, ("the target", unit), |m| m.target_bytes);
    let own = memory_text(&report.results, (us, unit), |m| m.process_bytes);
    let parts: Vec<String> = target.into_iter().chain(own).collect();
    if !parts.is_empty() {
        writeln!(out, "  memory at the windows' ends: {}", parts.join("; "))?;
    }
    if let Some(line) = machine_stalls(&report.host) {
        writeln!(out, "  {line}")?;
    }
    Ok(())
}

/// `who`'s resident memory over the runs that measured it (`of`), by agent count: each
/// count's range. No cost per agent is derived from them: a process seldom gives memory back,
/// so a run's figure also holds what the runs before it took (a grid's first runs grow the
/// allocator's arenas and the buffer pools), and the runs say which came first.
fn memory_text(
    results: &[RunResult],
    (who, unit): (&str, &str),
    of: impl Fn(&crate::report::run::MemoryInfo) -> Option<u64>,
) -> Option<String> {
    let mut seen: Vec<(u32, u64)> = results
        .iter()
        .filter_map(|r| Some((r.agent_count, r.memory.as_ref().and_then(&of)?)))
        .collect();
    if seen.is_empty() {
        return None;
    }
    seen.sort_unstable();
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let mut counts: Vec<String> = Vec::new();
    for chunk in seen.chunk_by(|a, b| a.0 == b.0) {
        let (agents, lo, hi) = (chunk[0].0, chunk[0].1, chunk[chunk.len() - 1].1);
        let span = if lo == hi {
            format!("{:.1}", mib(lo))
        } else {
            format!("{:.1}–{:.1}", mib(lo), mib(hi))
        };
        counts.push(format!("{agents} {unit} {span} MiB"));
    }
    Some(format!("{who}: {}", counts.join(", ")))
}

/// The line on the stall probe of a report's `host` (`--stall-probe`), if it ran.
pub fn machine_stalls(host: &serde_json::Value) -> Option<String> {
    let stalls: Vec<crate::host::Stalls> =
        serde_json::from_value(host.get("stalls")?.clone()).ok()?;
    stalls_line(&stalls)
}

/// The line on what the stall probe found (`--stall-probe`); `None` when it did not run.
pub fn stalls_line(stalls: &[crate::host::Stalls]) -> Option<String> {
    let line = crate::host::describe_stalls(stalls)?;
    let longest = stalls.iter().map(|s| s.max_ms).fold(0.0, f64::max);
    let hint = if longest >= 0.5 {
        format!(": round trips near {longest:.1} ms can be the machine's, not the router's")
    } else {
        String::new()
    };
    Some(format!("machine: before the runs, {line}{hint}"))
}

/// The result of one `--find-max-rate` search.
pub fn rate_search(out: &mut dyn Write, s: &super::RateSearch) -> io::Result<()> {
    let verdict = match (s.ended, s.max_rate_per_sec, s.first_failing_rate_per_sec) {
        ("interrupted", ..) => "interrupted before it converged".to_string(),
        ("failed", ..) => "no closed-loop rate could be measured".to_string(),
        (_, None, _) => "no rate held it".to_string(),
        (_, Some(max), Some(fail)) => format!(
            "holds up to {} req/s (fails at {}; within {:.1} %)",
            rate(max),
            rate(fail),
            s.precision * 100.0
        ),
        (_, Some(max), None) => format!(
            "holds up to {} req/s, the search's cap ({}× the closed-loop rate): the most this generator asked",
            rate(max),
            1.5
        ),
    };
    writeln!(out, "rate search {} for '{}': {verdict}; {} steps", s.scenario, s.slo, s.steps.len())
}

/// The result of one `--find-max-agents` search.
pub fn agent_search(out: &mut dyn Write, s: &super::AgentSearch) -> io::Result<()> {
    let (each, unit) = (rate(s.agent_rate_per_sec), s.counts);
    let verdict = match (s.ended, s.max_agents, s.first_failing_agents) {
        ("interrupted", ..) => "interrupted before it converged".to_string(),
        (_, None, Some(fail)) => format!("no count held it (fails at {fail} {unit})"),
        (_, None, None) => "no count held it".to_string(),
        (_, Some(max), Some(fail)) => format!(
            "holds up to {max} {unit}, {} req/s in all (fails at {fail}; within {:.1} %)",
            rate(f64::from(max) * s.agent_rate_per_sec),
            s.precision * 100.0
        ),
        (_, Some(max), None) => format!(
            "holds up to {max} {unit}, {} req/s in all, the search's cap: the most it asks",
            rate(f64::from(max) * s.agent_rate_per_sec)
        ),
    };
    writeln!(
        out,
        "{} search {} at {each} req/s per {} for '{}': {verdict}; {} steps",
        unit.trim_end_matches('s'),
        s.scenario,
        unit.trim_end_matches('s'),
        s.slo,
        s.steps.len()
    )
}

/// The `--threshold` checklist.
pub fn thresholds(out: &mut dyn Write, checks: &[super::threshold::Check]) -> io::Result<()> {
    if checks.is_empty() {
        return Ok(());
    }
    let failed = checks.iter().filter(|c| !c.passed).count();
    writeln!(out, "\nthresholds: {} of {} held", checks.len() - failed, checks.len())?;
    // Columns as wide as their longest entry (a pattern's threshold is long).
    let width = |f: fn(&super::threshold::Check) -> usize, least: usize| {
        checks.iter().map(f).max().unwrap_or(0).max(least)
    };
    let (t, sc) =
        (width(|c| c.threshold.chars().count(), 18), width(|c| c.scenario.chars().count(), 34));
    for c in checks {
        writeln!(
            out,
            "  {} {:<t$} {:<sc$} {}",
            if c.passed { "✓" } else { "✗" },
            c.threshold,
            c.scenario,
            c.actual_text
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_search_says_what_held_in_the_unit_it_counted() {
        // Proves the agent search's line for each way it ends: converged (the total rate too),
        // at the cap, nothing held, interrupted; clients for a2a-bench http.
        let mut s = crate::report::AgentSearch {
            scenario: "ring w16".into(),
            slo: "p99<5ms".into(),
            counts: "agents",
            agent_rate_per_sec: 10.0,
            start_agents: 10,
            max_agents: Some(1200),
            first_failing_agents: Some(1250),
            max_rate_per_sec: Some(12_000.0),
            precision: 0.04,
            ended: "converged",
            steps: Vec::new(),
        };
        let line = |s: &crate::report::AgentSearch| {
            let mut out = Vec::new();
            agent_search(&mut out, s).unwrap();
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            line(&s),
            "agent search ring w16 at 10 req/s per agent for 'p99<5ms': holds up to 1200 agents, 12.0 k req/s in all (fails at 1250; within 4.0 %); 0 steps\n"
        );
        s.first_failing_agents = None;
        s.ended = "cap";
        assert!(line(&s).contains("holds up to 1200 agents, 12.0 k req/s in all, the search's cap"));
        (s.max_agents, s.first_failing_agents, s.ended) = (None, Some(2), "nothing_held");
        s.counts = "clients";
        assert!(
            line(&s).starts_with("client search ring w16 at 10 req/s per client"),
            "{}",
            line(&s)
        );
        assert!(line(&s).contains("no count held it (fails at 2 clients)"));
        s.ended = "interrupted";
        assert!(line(&s).contains("interrupted before it converged"));
    }

    #[test]
    fn a_run_whose_cores_mostly_watched_says_what_they_cost() {
        // Proves the note under a run: where a core watched a quarter of the time or more
        // (`--poll`), its whole busy share and the watch are said, since the cpu column counts
        // work only; below a quarter, nothing.
        let spec = crate::report::part::PartSpec::for_tests(2, None, Some(10), None);
        let mut r = RunResult::new(&spec, &crate::loadgen::Outcome::failed_setup(Vec::new()));
        r.cpu.agent_cores = vec![0.99];
        r.cpu.agent_watch = Some(vec![0.95]);
        r.cpu.router_cores = Some(vec![0.98]);
        r.cpu.router_watch = Some(vec![0.10]);
        assert_eq!(
            watch_note(&r).unwrap(),
            "cores busy 99/98 % in all, 95/10 % of the core watching for input (the cpu column counts work; that watch is the cores' cost)"
        );
        assert_eq!(cpu_cell(&r), "4/88%");
        r.cpu.agent_watch = Some(vec![0.2]);
        assert_eq!(watch_note(&r), None);
    }

    #[test]
    fn memory_is_given_by_agent_count() {
        // Proves the memory text: each agent count's range over its runs, smallest count
        // first, whatever order the runs came in; none where the runs measured none.
        let run = |agents: u32, mib: u64| {
            let spec = crate::report::part::PartSpec::for_tests(agents, None, Some(10), None);
            let mut r = RunResult::new(&spec, &crate::loadgen::Outcome::failed_setup(Vec::new()));
            r.agent_count = agents;
            r.memory = Some(crate::report::run::MemoryInfo {
                process_bytes: Some(mib << 20),
                target_bytes: None,
            });
            r
        };
        let own = |m: &crate::report::run::MemoryInfo| m.process_bytes;
        let runs = [run(1010, 20), run(10, 16), run(1010, 26), run(1010, 21)];
        assert_eq!(
            memory_text(&runs, ("us", "agents"), own).unwrap(),
            "us: 10 agents 16.0 MiB, 1010 agents 20.0–26.0 MiB"
        );
        assert_eq!(memory_text(&runs, ("them", "agents"), |m| m.target_bytes), None);
    }

    #[test]
    fn a_run_too_short_says_which_bound_it_missed() {
        // Proves the status cell of a `too_short` run: too few round trips, or a window under
        // ten of its p99s, whichever it was.
        let spec = crate::report::part::PartSpec::for_tests(2, None, Some(10), None);
        let mut r = RunResult::new(&spec, &crate::loadgen::Outcome::failed_setup(Vec::new()));
        (r.failure, r.status, r.duration_sec) = (None, "too_short", 1.0);
        r.latency.rtt.count = 999;
        assert_eq!(status_cell(&r), "TOO SHORT: 999 measured round trips in 1.000 s");
        (r.latency.rtt.count, r.p99_latency_ms) = (6_174_692, 151.0);
        assert_eq!(status_cell(&r), "TOO SHORT: a 1.000 s window under 10× its p99 (151 ms)");
    }

    #[test]
    fn a_rate_held_with_both_sides_saturated_says_so() {
        // Proves an open-loop run that held its rate while the agents' cores and the router's
        // were saturated is not a plain "ok" (its latency counts the agents' queueing), while
        // a closed loop that saturates both is (that is its aim), and so is an open loop with
        // room on the agents' side.
        let spec = crate::report::part::PartSpec::for_tests(2, None, Some(10), None);
        let mut r = RunResult::new(&spec, &crate::loadgen::Outcome::failed_setup(Vec::new()));
        (r.failure, r.status, r.pacing.mode) = (None, "ok", "open");
        r.cpu.bottleneck = "both".into();
        assert_eq!(status_cell(&r), "ok (both sides saturated)");
        r.cpu.bottleneck = "router".into();
        assert_eq!(status_cell(&r), "ok");
        r.cpu.bottleneck = "both".into();
        r.pacing.mode = "closed";
        assert_eq!(status_cell(&r), "ok");
    }

    #[test]
    fn the_cpu_cell_of_a_target_without_shard_figures_gives_its_processes_cores() {
        // Proves the cpu column of an HTTP server or an external router that reports no shard
        // CPU: its processes' cores when they run on this machine, else `-`.
        let spec = crate::report::part::PartSpec::for_tests(2, None, Some(10), None);
        let mut r = RunResult::new(&spec, &crate::loadgen::Outcome::failed_setup(Vec::new()));
        r.cpu.agent_cores = vec![0.97, 0.5];
        r.cpu.router_cores = None;
        assert_eq!(cpu_cell(&r), "97/-%");
        r.cpu.target_cores = Some(1.114);
        assert_eq!(cpu_cell(&r), "97%/1.1c");
        r.cpu.router_cores = Some(vec![0.5]);
        assert_eq!(cpu_cell(&r), "97/50%");
    }
}
