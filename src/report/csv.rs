//! `--csv FILE`: one row per run, for spreadsheets and `nats bench`-style tooling. The JSON
//! report stays the complete record; this is its table. Written from the report's JSON, so a
//! saved report (`a2a-bench report R.json --csv F`) gives the same rows; a compare report gives
//! each router's runs, named in the `router` column. An HTTP run of a mix of patterns is
//! followed by a row per pattern (its `pattern` cell set; the run's own row leaves it empty);
//! a `--payload-mix` run by a row per size (its `payload_bytes` that size, its `mix_share` the
//! size's share of the sends; the run's own row has the mix's mean size and no share).

use std::path::Path;

use serde_json::Value;

/// The columns, in order.
pub const COLUMNS: [&str; 32] = [
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
    "router",
    "pattern",
    "first_event_p50_ms",
    "first_event_p99_ms",
    "events_per_answer",
    "accepted_p50_ms",
    "accepted_p99_ms",
    "polls_per_answer",
    "process_rss_bytes",
    "target_rss_bytes",
    "payload_bytes",
    "mix_share",
];

/// One report's runs, or, for a compare report, each router's.
fn reports(v: &Value) -> Vec<&Value> {
    match v["reports"].as_object() {
        Some(m) => m.values().collect(),
        None => vec![v],
    }
}

/// Writes the runs of `report` (a report's JSON) to `path`, one row each after a header.
pub fn write(report: &Value, path: &Path) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_path(path)
        .map_err(|e| anyhow::anyhow!("--csv: cannot write {}: {e}", path.display()))?;
    w.write_record(COLUMNS)?;
    let cell = |v: &Value| match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    let mut i = 0;
    for rep in reports(report) {
        for r in rep["results"].as_array().into_iter().flatten() {
            i += 1;
            let p = &r["pacing"];
            // No round trip measured (an open loop far behind): empty cells, not zeros.
            let measured = super::figures::latency_measured(r);
            let latency = |v: &Value| if measured { cell(v) } else { String::new() };
            let errors: u64 =
                r["errors"].as_object().map_or(0, |m| m.values().filter_map(Value::as_u64).sum());
            // The run's scenario: the first cells of its row and of its patterns'.
            let lead = [
                i.to_string(),
                cell(&r["topology"]),
                cell(&r["agent_count"]),
                cell(&r["repeat"]),
                cell(&p["mode"]),
                cell(&p["window"]),
            ];
            w.write_record(lead.iter().cloned().chain([
                cell(&p["rate_per_sec"]),
                cell(&p["achieved_rate_per_sec"]),
                cell(&p["sustained"]),
                cell(&r["throughput_msg_per_sec"]),
                cell(&r["round_trips_per_sec"]),
                latency(&r["p50_latency_ms"]),
                latency(&r["p95_latency_ms"]),
                latency(&r["p99_latency_ms"]),
                latency(&r["p999_latency_ms"]),
                latency(&r["max_latency_ms"]),
                errors.to_string(),
                cell(&r["accounting"]["closed"]),
                cell(&r["status"]),
                cell(&r["duration_sec"]),
                cell(&rep["placement"]["router"]),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                cell(&r["memory"]["process_bytes"]),
                cell(&r["memory"]["target_bytes"]),
                cell(&r["payload_size"]),
                String::new(),
            ]))?;
            for size in r["payload_mix"].as_array().into_iter().flatten() {
                let l = &size["latency"];
                let measured = l["count"].as_u64().unwrap_or(0) > 0;
                let latency = |v: &Value| if measured { cell(v) } else { String::new() };
                let blank = || String::new();
                w.write_record(lead.iter().cloned().chain([
                    blank(),
                    blank(),
                    blank(),
                    blank(),
                    cell(&size["round_trips_per_sec"]),
                    latency(&l["p50_ms"]),
                    latency(&l["p95_ms"]),
                    latency(&l["p99_ms"]),
                    latency(&l["p999_ms"]),
                    latency(&l["max_ms"]),
                    cell(&size["errors"]),
                    blank(),
                    blank(),
                    cell(&r["duration_sec"]),
                    cell(&rep["placement"]["router"]),
                    blank(),
                    blank(),
                    blank(),
                    blank(),
                    blank(),
                    blank(),
                    blank(),
                    blank(),
                    blank(),
                    cell(&size["bytes"]),
                    cell(&size["share_sent"]),
                ]))?;
            }
            let patterns = r["patterns"].as_array().map_or(&[][..], Vec::as_slice);
            if patterns.len() < 2 {
                continue; // one pattern's figures are the run's
            }
            for pat in patterns {
                let (l, first, accepted) = (&pat["latency"], &pat["first_event"], &pat["accepted"]);
                // Answers measured: its latency cells, else none.
                let measured = pat["ok"].as_u64().unwrap_or(0) > 0;
                let latency = |v: &Value| if measured { cell(v) } else { String::new() };
                w.write_record(lead.iter().cloned().chain([
                    String::new(),
                    String::new(),
                    String::new(),
                    cell(&pat["ok_per_sec"]),
                    cell(&pat["ok_per_sec"]),
                    latency(&l["p50_ms"]),
                    latency(&l["p95_ms"]),
                    latency(&l["p99_ms"]),
                    latency(&l["p999_ms"]),
                    latency(&l["max_ms"]),
                    cell(&pat["errors"]),
                    String::new(),
                    String::new(),
                    cell(&r["duration_sec"]),
                    cell(&rep["placement"]["router"]),
                    cell(&pat["pattern"]),
                    latency(&first["p50_ms"]),
                    latency(&first["p99_ms"]),
                    cell(&pat["events_per_answer"]),
                    latency(&accepted["p50_ms"]),
                    latency(&accepted["p99_ms"]),
                    cell(&pat["polls_per_answer"]),
                    String::new(),
                    String::new(),
                    cell(&r["payload_size"]),
                    String::new(),
                ]))?;
            }
        }
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_that_measured_no_round_trip_has_empty_latency_cells() {
        // Proves the CSV writes no latency for a run with `latency.rtt.count` 0 (its JSON
        // keeps zeros for the seed's schema: no figure), and the latencies of one that did.
        let run = |count: u64, p50: f64| {
            serde_json::json!({
                "topology": "ring", "agent_count": 4, "repeat": 0, "p50_latency_ms": p50,
                "p95_latency_ms": p50, "p99_latency_ms": p50, "p999_latency_ms": p50,
                "max_latency_ms": p50, "latency": {"rtt": {"count": count}},
                "pacing": {"mode": "open"}, "status": "overloaded",
            })
        };
        let report = serde_json::json!({ "results": [run(0, 0.0), run(9, 1.5)] });
        let path = std::env::temp_dir().join(format!("a2a-csv-{}.csv", std::process::id()));
        write(&report, &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
        let p50 = COLUMNS.iter().position(|&c| c == "p50_ms").unwrap();
        assert_eq!(rows[1][p50..p50 + 5], ["", "", "", "", ""], "{text}");
        assert_eq!(rows[2][p50..p50 + 5], ["1.5"; 5], "{text}");
        assert_eq!(rows.len(), 3, "no pattern rows without a mix: {text}");
    }

    #[test]
    fn a_mix_s_run_is_followed_by_a_row_per_pattern() {
        // Proves the pattern rows: after the run's row (its pattern cell empty), one per pattern
        // of the mix with its answers/s, latencies, errors and a stream's first event and
        // events; a pattern with no answer has empty latency cells.
        let lat = |p50: f64| {
            serde_json::json!({"count": 1, "p50_ms": p50, "p95_ms": p50,
            "p99_ms": p50, "p999_ms": p50, "max_ms": p50})
        };
        let run = serde_json::json!({
            "topology": "client", "agent_count": 4, "repeat": 0, "p50_latency_ms": 1.0,
            "latency": {"rtt": {"count": 9}}, "pacing": {"mode": "closed", "window": 1},
            "status": "ok", "throughput_msg_per_sec": 300.0, "errors": {"http_503": 2},
            "patterns": [
                {"pattern": "a2a:message", "ok": 200, "errors": 0, "ok_per_sec": 200.0,
                    "latency": lat(0.5)},
                {"pattern": "a2a-grpc:stream", "ok": 100, "errors": 0, "ok_per_sec": 100.0,
                    "latency": lat(2.0), "first_event": lat(1.25), "events_per_answer": 3.0},
                {"pattern": "health", "ok": 0, "errors": 2, "ok_per_sec": 0.0,
                    "latency": lat(0.0)},
            ],
        });
        let report = serde_json::json!({ "results": [run] });
        let path = std::env::temp_dir().join(format!("a2a-csv-mix-{}.csv", std::process::id()));
        write(&report, &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let mut rows = csv::Reader::from_reader(text.as_bytes());
        let rows: Vec<csv::StringRecord> = rows.records().map(Result::unwrap).collect();
        let col = |name: &str| COLUMNS.iter().position(|&c| c == name).unwrap();
        assert_eq!(rows.len(), 4, "{text}");
        assert_eq!(&rows[0][col("pattern")], "");
        assert_eq!(&rows[0][col("throughput_msg_per_sec")], "300.0");
        let names: Vec<&str> = rows[1..].iter().map(|r| &r[col("pattern")]).collect();
        assert_eq!(names, ["a2a:message", "a2a-grpc:stream", "health"]);
        assert!(rows.iter().all(|r| &r[col("run")] == "1"), "{text}");
        let stream = &rows[2];
        assert_eq!(&stream[col("throughput_msg_per_sec")], "100.0");
        assert_eq!(&stream[col("p99_ms")], "2.0");
        assert_eq!(&stream[col("first_event_p50_ms")], "1.25");
        assert_eq!(&stream[col("events_per_answer")], "3.0");
        assert_eq!(&rows[1][col("first_event_p50_ms")], "");
        assert_eq!(&rows[3][col("p50_ms")], "", "no answer, no latency: {text}");
        assert_eq!(&rows[3][col("errors")], "2");
    }

    #[test]
    fn a_payload_mix_run_is_followed_by_a_row_per_size() {
        // Proves the size rows: after the run's row (the mix's mean size, no share), one per
        // size with its bytes, share of the sends, round trips/s, latencies and errors; a size
        // with no round trip measured has empty latency cells.
        let lat = |count: u64, p50: f64| {
            serde_json::json!({"count": count, "p50_ms": p50, "p95_ms": p50,
            "p99_ms": p50, "p999_ms": p50, "max_ms": p50})
        };
        let run = serde_json::json!({
            "topology": "ring", "agent_count": 4, "repeat": 0, "p50_latency_ms": 1.0,
            "latency": {"rtt": {"count": 9}}, "pacing": {"mode": "closed", "window": 16},
            "status": "ok", "throughput_msg_per_sec": 300.0, "payload_size": 1072,
            "payload_mix": [
                {"bytes": 64, "share_sent": 0.75, "round_trips_per_sec": 90.0,
                    "latency": lat(9, 0.5)},
                {"bytes": 4096, "share_sent": 0.25, "round_trips_per_sec": 0.0,
                    "errors": 3, "latency": lat(0, 0.0)},
            ],
        });
        let path = std::env::temp_dir().join(format!("a2a-csv-size-{}.csv", std::process::id()));
        write(&serde_json::json!({ "results": [run] }), &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let mut rows = csv::Reader::from_reader(text.as_bytes());
        let rows: Vec<csv::StringRecord> = rows.records().map(Result::unwrap).collect();
        let col = |name: &str| COLUMNS.iter().position(|&c| c == name).unwrap();
        assert_eq!(rows.len(), 3, "{text}");
        let cells = |r: &csv::StringRecord, names: &[&str]| -> Vec<String> {
            names.iter().map(|n| r[col(n)].to_string()).collect()
        };
        let names =
            ["payload_bytes", "mix_share", "round_trips_per_sec", "p50_ms", "run", "errors"];
        assert_eq!(cells(&rows[0], &names[..2]), ["1072", ""]);
        assert_eq!(cells(&rows[1], &names), ["64", "0.75", "90.0", "0.5", "1", ""]);
        assert_eq!(cells(&rows[2], &names), ["4096", "0.25", "0.0", "", "1", "3"]);
        assert_eq!(&rows[1][col("throughput_msg_per_sec")], "", "{text}");
    }
}
