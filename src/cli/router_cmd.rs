//! `a2a-bench router` and `a2a-bench stats`.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;

use super::{parse_router_url, slots_for, RouterArgs};
use crate::client::{Client, ClientError};
use crate::placement::Machine;
use crate::router::{Router, RouterConfig};
use crate::wire::control::StatsRequest;
use crate::wire::{Compression, Control, ErrorCode, ShardStats};

/// `a2a-bench router`.
#[derive(Args, Debug)]
#[command(allow_negative_numbers = true)]
pub struct RouterCmd {
    /// Cores to run shards on, one shard per core (e.g. 0-3,8). Default: every core.
    #[arg(long, value_name = "LIST")]
    cores: Option<String>,
    /// Shards on each core (for trying a many-shard router on a small machine: they take turns
    /// on the core, so throughput figures from such a router say little; its memory and its
    /// paths between shards are the same).
    #[arg(long, value_name = "N", default_value_t = 1)]
    shards_per_core: usize,
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8766")]
    listen: SocketAddr,
    /// Compression of frames the router writes (none | auto | lz4; on one host LZ4 costs more
    /// CPU than it saves).
    #[arg(long, value_name = "MODE", default_value = "none")]
    compression: Compression,
    /// Serve the shards' counters at http://ADDR/metrics (Prometheus text format).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    #[command(flatten)]
    router: RouterArgs,
}

/// `a2a-bench baseline-router`.
#[derive(Args, Debug)]
#[command(allow_negative_numbers = true)]
pub struct BaselineCmd {
    /// Worker threads (shared) or shards (per-core), one per core.
    #[arg(long, value_name = "N", default_value_t = 2)]
    threads: usize,
    /// Cores to run on [default: the first --threads cores].
    #[arg(long, value_name = "LIST")]
    cores: Option<String>,
    /// shared: tokio multi-thread with shared state; per-core: pinned current_thread shards.
    #[arg(long, value_name = "MODE", default_value = "shared")]
    mode: crate::baseline::Mode,
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8767")]
    listen: SocketAddr,
    /// Compression of frames the router writes.
    #[arg(long, value_name = "MODE", default_value = "none")]
    compression: Compression,
    #[command(flatten)]
    router: RouterArgs,
}

/// `a2a-bench stats`.
#[derive(Args, Debug)]
#[command(allow_negative_numbers = true)]
pub struct StatsCmd {
    /// The router to ask: tcp://host:port.
    #[arg(long, value_name = "URL", default_value = "tcp://127.0.0.1:8766")]
    router: String,
}

pub(super) fn run_router(cmd: RouterCmd) -> anyhow::Result<()> {
    let machine = Machine::detect();
    let slots = match &cmd.cores {
        Some(spec) => slots_for("--cores", spec, &machine)?,
        None => machine.cores.clone(),
    };
    if cmd.shards_per_core == 0 {
        bail!("--shards-per-core must be at least 1");
    }
    if slots.len() * cmd.shards_per_core > 64 {
        match cmd.shards_per_core {
            1 => bail!("--cores: at most 64 shards"),
            n => bail!("--shards-per-core: {n} on {} cores is over 64 shards", slots.len()),
        }
    }
    // Round-robin over the cores, so that the shards of any prefix spread like the cores.
    let slots: Vec<_> = (0..cmd.shards_per_core).flat_map(|_| slots.iter().cloned()).collect();
    let mut config = RouterConfig::new(cmd.listen, slots.clone());
    config.shard = cmd.router.shard_config(cmd.compression)?;
    config.spin_before_park = cmd.router.spin();
    config.poll = cmd.router.poll;
    let (io, why) = crate::transport::uring::effective(cmd.router.router_io);
    if let Some(why) = why {
        eprintln!("warning: {why}");
    }
    config.io = io;
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])
    .context("installing signal handlers")?;
    let router = Router::start(config).with_context(|| format!("--listen {}", cmd.listen))?;
    let placement: Vec<String> =
        slots.iter().map(|s| format!("core {} (node {})", s.core, s.node)).collect();
    outln!(
        "a2a-bench router (glommio) listening on tcp://{} with {} shard(s): {}",
        router.local_addr(),
        slots.len(),
        placement.join(", ")
    );
    if let Some(listen) = cmd.metrics {
        let at = super::prometheus::serve(listen, router.local_addr())?;
        outln!("metrics at http://{at}/metrics");
    }
    outln!("stop with Ctrl-C (SIGINT) or SIGTERM");
    let _ = signals.forever().next();
    outln!("\nstopping");
    print_stats(&router.stop());
    Ok(())
}

pub(super) fn run_baseline(cmd: BaselineCmd) -> anyhow::Result<()> {
    let machine = Machine::detect();
    if cmd.threads == 0 || cmd.threads > 64 {
        bail!("--threads must be 1 to 64");
    }
    let slots = match &cmd.cores {
        Some(spec) => slots_for("--cores", spec, &machine)?,
        None if cmd.threads > machine.cores.len() => bail!(
            "--threads: {} threads on {} cores would share cores; give --cores to place them",
            cmd.threads,
            machine.cores.len()
        ),
        None => machine.cores[..cmd.threads].to_vec(),
    };
    let shard = cmd.router.shard_config(cmd.compression)?;
    if cmd.mode == crate::baseline::Mode::Shared {
        if let Some(w) = cmd.router.tokio_shared_warning("the shared-state baseline") {
            eprintln!("{w}");
        }
    }
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])
    .context("installing signal handlers")?;
    let cfg = crate::baseline::BaselineConfig {
        listen: cmd.listen,
        slots: slots.clone(),
        mode: cmd.mode,
        shard,
    };
    let router = crate::baseline::Baseline::start(cfg)
        .with_context(|| format!("--listen {}", cmd.listen))?;
    outln!(
        "a2a-bench baseline-router ({}) listening on tcp://{} on cores {:?}",
        cmd.mode.name(),
        router.local_addr(),
        slots.iter().map(|s| s.core).collect::<Vec<_>>()
    );
    outln!("stop with Ctrl-C (SIGINT) or SIGTERM");
    let _ = signals.forever().next();
    outln!("\nstopping");
    print_stats(&router.stop());
    Ok(())
}

pub(super) fn run_stats(cmd: StatsCmd) -> anyhow::Result<()> {
    let (scheme, addr) =
        parse_router_url(&cmd.router).map_err(|e| anyhow::anyhow!("--router: {e}"))?;
    if scheme != "tcp" {
        bail!("--router: stats are read over tcp://");
    }
    let mut client =
        Client::connect(addr).with_context(|| format!("--router: connecting to {addr}"))?;
    let wait = Duration::from_secs(5);
    client.set_timeout(wait).context("--router: setting a timeout")?;
    let request_id = client.request_id();
    let answer = client.call(Control::StatsRequest(StatsRequest { request_id }));
    match answer {
        Ok(Control::StatsReply(reply)) => {
            print_stats(&reply.shards);
            if reply.heartbeat_timeout_ms > 0 {
                let secs = reply.heartbeat_timeout_ms as f64 / 1e3;
                outln!("heartbeat timeout {secs} s: an agent heard from for no longer is offline");
            }
        }
        Ok(other) => bail!("--router: unexpected answer from {addr}: {other:?}"),
        Err(ClientError::Io(e))
            if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) =>
        {
            bail!("--router: no answer from {addr} within {} s", wait.as_secs())
        }
        Err(ClientError::Decode(_)) => {
            bail!("--router: {addr} does not speak a2a-bench frames")
        }
        Err(e) => bail!("--router: {addr}: {e}"),
    }
    Ok(())
}

/// Prints one line per shard and the totals.
pub fn print_stats(shards: &[ShardStats]) {
    outln!(
        "{:>5} {:>5} {:>6} {:>7} {:>13} {:>13} {:>12} {:>12} {:>11} {:>8}",
        "shard",
        "core",
        "conns",
        "agents",
        "msgs in",
        "msgs out",
        "MiB in",
        "MiB out",
        "cross-shard",
        "errors"
    );
    for s in shards {
        let errors: u64 = s.errors.iter().map(|(_, n)| n).sum();
        outln!(
            "{:>5} {:>5} {:>6} {:>7} {:>13} {:>13} {:>12.1} {:>12.1} {:>11} {:>8}",
            s.shard,
            s.core,
            s.connections,
            s.agents,
            s.msgs_in,
            s.msgs_out,
            s.bytes_in as f64 / 1048576.0,
            s.bytes_out as f64 / 1048576.0,
            s.cross_shard_out,
            errors
        );
        for (code, n) in &s.errors {
            let name = ErrorCode::from_code(*code).map_or("unknown", ErrorCode::name);
            outln!("{:>13} {name}: {n}", "");
        }
        outln!(
            "{:>13} pool hits {} misses {} returns {} discards {}; queue high-water: connection {} B, peer {} B",
            "",
            s.pool_hits,
            s.pool_misses,
            s.pool_returns,
            s.pool_discards,
            s.conn_queue_bytes_hwm,
            s.peer_queue_bytes_hwm
        );
        let per =
            |msgs: u64, frames: u64| if frames == 0 { 0.0 } else { msgs as f64 / frames as f64 };
        outln!(
            "{:>13} frames in {} ({:.1} data messages each), frames out {} ({:.1} messages each)",
            "",
            s.batches_in,
            per(s.msgs_in, s.batches_in),
            s.batches_out,
            per(s.msgs_out, s.batches_out)
        );
        outln!(
            "{:>13} memory held {} B; slow consumers closed {}; connections refused {}; loop stalls {}",
            "",
            s.memory_bytes,
            s.slow_consumers,
            s.connections_refused,
            s.loop_stalls
        );
        // CPU the shard's thread used without work, watching for input (its rings' doze).
        outln!("{:>13} watched {:.1} ms", "", s.watch_ns as f64 / 1e6);
    }
}

/// `a2a-bench sysinfo`.
#[derive(Args, Debug)]
#[command(allow_negative_numbers = true)]
pub struct SysinfoCmd {
    /// Print the facts as JSON (the report's `host` section).
    #[arg(long)]
    json: bool,
    /// Seconds a thread spins on every core, counting the time the machine takes the core
    /// away (as a benchmark's --stall-probe does); 0 skips it.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = super::parse_secs)]
    stall_probe: std::time::Duration,
}

pub(super) fn run_sysinfo(cmd: SysinfoCmd) -> anyhow::Result<()> {
    let stalls = if cmd.stall_probe.is_zero() {
        Vec::new()
    } else {
        let cores: Vec<usize> =
            crate::placement::Machine::detect().cores.iter().map(|s| s.core).collect();
        crate::host::probe_stalls(&cores, cmd.stall_probe)
    };
    let facts = crate::host::facts_with_stalls(&stalls);
    if cmd.json {
        outln!("{}", serde_json::to_string_pretty(&facts)?);
        return Ok(());
    }
    let s = |v: &serde_json::Value| match v {
        serde_json::Value::String(x) => x.clone(),
        serde_json::Value::Null => "-".into(),
        other => other.to_string(),
    };
    outln!("host        {} (kernel {})", s(&facts["hostname"]), s(&facts["kernel"]));
    outln!("cpu         {}, {} logical cores", s(&facts["cpu_model"]), facts["logical_cores"]);
    outln!("memory      {:.1} GiB", facts["memory_bytes"].as_f64().unwrap_or(0.0) / 1073741824.0);
    let source = if facts["numa_map_from_hwloc"] == true { "hwloc" } else { "no hwloc: assumed" };
    outln!("numa        {} node(s) ({source})", facts["numa_nodes"]);
    for n in facts["numa_cores"].as_array().into_iter().flatten() {
        outln!("              node {}: cores {}", n["node"], n["cores"]);
    }
    let uring = &facts["io_uring"];
    outln!(
        "io_uring    {} (kernel.io_uring_disabled = {}){}",
        if uring["works"] == true { "works" } else { "does not work" },
        s(&uring["kernel_io_uring_disabled"]),
        uring["error"].as_str().map_or(String::new(), |e| format!(": {e}"))
    );
    for (name, key) in [("nofile", "nofile"), ("memlock", "memlock")] {
        let l = &facts["limits"][key];
        let show = |v: &serde_json::Value| match v.as_u64() {
            Some(u64::MAX) => "unlimited".to_string(),
            Some(n) => n.to_string(),
            None => "-".into(),
        };
        outln!("{name:<11} soft {} hard {}", show(&l["soft"]), show(&l["hard"]));
    }
    outln!("clocksource {}", s(&facts["clocksource"]));
    outln!("governor    {}", s(&facts["cpu_governor"]));
    for st in &stalls {
        outln!(
            "stalls      core {}: {:.2} % of {:.1} s lost; gaps over 20 µs {}, over 100 µs {}, over 500 µs {}; longest {:.3} ms",
            st.core,
            st.lost_share * 100.0,
            st.secs,
            st.over_20us,
            st.over_100us,
            st.over_500us,
            st.max_ms
        );
    }
    outln!("sysctl      profile sysctl/a2a-bench.conf (make tune applies it):");
    for c in facts["sysctl"].as_array().into_iter().flatten() {
        outln!(
            "              {:<30} {:<24} recommended {:<24} {}",
            s(&c["key"]),
            s(&c["current"]),
            s(&c["recommended"]),
            s(&c["status"])
        );
    }
    Ok(())
}

/// `a2a-bench serve`.
#[derive(Args, Debug)]
#[command(allow_negative_numbers = true)]
pub struct ServeCmd {
    /// Which target: a2a-echo (an echo A2A agent), mcp-echo (an MCP server with an echo tool),
    /// registry (the agent registry API, in memory).
    #[arg(value_name = "TARGET")]
    target: crate::targets::Kind,
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Worker threads.
    #[arg(long, value_name = "N", default_value_t = 2)]
    threads: usize,
    /// Answer 401 to requests without `Authorization: Bearer TOKEN` (the agent card stays
    /// public).
    #[arg(long, value_name = "TOKEN")]
    auth_token: Option<String>,
    /// Serve https:// with this PEM certificate chain (with --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// a2a-echo: stream a task's events this many milliseconds apart, each its own chunk (as
    /// an agent answering token by token does); 0 sends them together
    #[arg(long, value_name = "MS", default_value_t = 0)]
    event_gap_ms: u64,
    /// a2a-echo: a task started with returnImmediately works this many milliseconds before it
    /// completes (GetTask says so); 0 answers it completed
    #[arg(long, value_name = "MS", default_value_t = 0)]
    task_ms: u64,
}

pub(super) fn run_serve(cmd: ServeCmd) -> anyhow::Result<()> {
    if cmd.threads == 0 || cmd.threads > 1024 {
        bail!("--threads must be 1 to 1024");
    }
    let tls = match (&cmd.tls_cert, &cmd.tls_key) {
        (Some(cert), Some(key)) => {
            Some(crate::tls::server(cert, key).map_err(|e| anyhow::anyhow!("--tls-cert: {e}"))?)
        }
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])
    .context("installing signal handlers")?;
    if cmd.event_gap_ms > 0 && cmd.target != crate::targets::Kind::A2aEcho {
        bail!("--event-gap-ms: only a2a-echo streams events");
    }
    if cmd.event_gap_ms > 60_000 {
        bail!("--event-gap-ms must be at most 60000");
    }
    if cmd.task_ms > 0 && cmd.target != crate::targets::Kind::A2aEcho {
        bail!("--task-ms: only a2a-echo runs tasks");
    }
    if cmd.task_ms > 3_600_000 {
        bail!("--task-ms must be at most 3600000 (an hour)");
    }
    let options = crate::targets::Options {
        threads: cmd.threads,
        token: cmd.auth_token,
        tls,
        event_gap: Duration::from_millis(cmd.event_gap_ms),
        task_time: Duration::from_millis(cmd.task_ms),
    };
    let target = crate::targets::Target::start_options(cmd.target, cmd.listen, options)
        .with_context(|| format!("--listen {}", cmd.listen))?;
    outln!(
        "serving {} on {scheme}://{} ({} threads)",
        cmd.target,
        target.local_addr(),
        cmd.threads
    );
    outln!("stop with Ctrl-C (SIGINT) or SIGTERM");
    let _ = signals.forever().next();
    target.stop();
    Ok(())
}
