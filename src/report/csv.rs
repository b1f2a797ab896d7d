//! `--csv FILE`: one row per run, for spreadsheets and `nats bench`-style tooling. The JSON
//! report stays the complete record; this is its table.

use std::path::Path;

use super::Report;

/// The columns, in order.
pub const COLUMNS: [&str; 20] = [
    "run",
    "topology",
    "agents",
    "repeat",
    "pacing",
    "window",
    "rate_asked_per_sec",
    "achieved_rate_per_sec",
    "sustained",
    "throughput_msg_per_sec",
    "round_trips_per_sec",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "p999_ms",
    "max_ms",
    "errors",
    "accounting_closed",
    "status",
    "duration_sec",
];

/// Writes `report`'s runs to `path`, one row each after a header.
pub fn write(report: &Report, path: &Path) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_path(path)
        .map_err(|e| anyhow::anyhow!("--csv: cannot write {}: {e}", path.display()))?;
    w.write_record(COLUMNS)?;
    for (i, r) in report.results.iter().enumerate() {
        let p = &r.pacing;
        let errors: u64 = r.errors.values().sum();
        w.write_record([
            (i + 1).to_string(),
            r.topology.clone(),
            r.agent_count.to_string(),
            r.repeat.to_string(),
            p.mode.to_string(),
            p.window.to_string(),
            p.rate_per_sec.map_or(String::new(), |v| v.to_string()),
            p.achieved_rate_per_sec.to_string(),
            p.sustained.to_string(),
            r.throughput_msg_per_sec.to_string(),
            r.round_trips_per_sec.to_string(),
            r.p50_latency_ms.to_string(),
            r.p95_latency_ms.to_string(),
            r.p99_latency_ms.to_string(),
            r.p999_latency_ms.to_string(),
            r.max_latency_ms.to_string(),
            errors.to_string(),
            r.accounting.closed.to_string(),
            r.status.to_string(),
            r.duration_sec.to_string(),
        ])?;
    }
    w.flush()?;
    Ok(())
}
