//! `a2a-bench router --metrics ADDR`: the shards' counters at `/metrics` in Prometheus' text
//! exposition format, so operators can scrape a router under test. Each scrape asks the router
//! for its counters over its own protocol (one `StatsRequest`), as `a2a-bench stats` does; the
//! HTTP side is one thread answering one request per connection.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use anyhow::Context;

use crate::client::Client;
use crate::wire::control::StatsRequest;
use crate::wire::{Control, ErrorCode, ShardStats};

/// How long a scrape may take to send its request, and the router to answer.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head read.
const HEAD_MAX: usize = 8192;

/// The exposition of `shards`.
pub fn exposition(shards: &[ShardStats]) -> String {
    type Get = fn(&ShardStats) -> f64;
    let metrics: [(&str, &str, &str, Get); 21] = [
        ("connections", "gauge", "Open connections.", |s| f64::from(s.connections)),
        ("agents", "gauge", "Agents registered.", |s| f64::from(s.agents)),
        ("messages_in_total", "counter", "Messages received from clients.", |s| s.msgs_in as f64),
        ("messages_out_total", "counter", "Messages delivered to clients.", |s| s.msgs_out as f64),
        ("bytes_in_total", "counter", "Bytes read from clients.", |s| s.bytes_in as f64),
        ("bytes_out_total", "counter", "Bytes written to clients.", |s| s.bytes_out as f64),
        ("batches_in_total", "counter", "Frames read.", |s| s.batches_in as f64),
        ("batches_out_total", "counter", "Frames written.", |s| s.batches_out as f64),
        ("cross_shard_out_total", "counter", "Messages sent to other shards.", |s| {
            s.cross_shard_out as f64
        }),
        ("cross_shard_in_total", "counter", "Messages received from other shards.", |s| {
            s.cross_shard_in as f64
        }),
        ("pool_hits_total", "counter", "Buffers taken from the pool.", |s| s.pool_hits as f64),
        ("pool_misses_total", "counter", "Buffers allocated: the pool was empty.", |s| {
            s.pool_misses as f64
        }),
        ("pool_returns_total", "counter", "Buffers returned to the pool.", |s| {
            s.pool_returns as f64
        }),
        ("pool_discards_total", "counter", "Buffers freed: the pool was full.", |s| {
            s.pool_discards as f64
        }),
        ("conn_queue_bytes_high_water", "gauge", "Most bytes queued for one connection.", |s| {
            s.conn_queue_bytes_hwm as f64
        }),
        (
            "peer_queue_bytes_high_water",
            "gauge",
            "Most bytes queued towards one other shard.",
            |s| s.peer_queue_bytes_hwm as f64,
        ),
        ("cpu_seconds_total", "counter", "CPU time of the shard's thread.", |s| {
            s.cpu_ns as f64 / 1e9
        }),
        ("slow_consumers_total", "counter", "Connections closed as slow consumers.", |s| {
            s.slow_consumers as f64
        }),
        ("connections_refused_total", "counter", "Connections refused (limits).", |s| {
            s.connections_refused as f64
        }),
        ("memory_bytes", "gauge", "Bytes held in queues and grown read buffers.", |s| {
            s.memory_bytes as f64
        }),
        ("loop_stalls_total", "counter", "Times the shard's loop did not turn for 1 s.", |s| {
            s.loop_stalls as f64
        }),
    ];
    let labels = |s: &ShardStats| {
        format!("shard=\"{}\",core=\"{}\",numa_node=\"{}\"", s.shard, s.core, s.numa_node)
    };
    let mut out = String::new();
    for (name, kind, help, get) in metrics {
        let _ = writeln!(out, "# HELP a2a_router_{name} {help}\n# TYPE a2a_router_{name} {kind}");
        for s in shards {
            let _ = writeln!(out, "a2a_router_{name}{{{}}} {}", labels(s), get(s));
        }
    }
    let _ = writeln!(
        out,
        "# HELP a2a_router_errors_total Errors the router answered, by code.\n# TYPE a2a_router_errors_total counter"
    );
    for s in shards {
        for (code, n) in &s.errors {
            let name = ErrorCode::from_code(*code).map_or("unknown", ErrorCode::name);
            let _ = writeln!(out, "a2a_router_errors_total{{{},code=\"{name}\"}} {n}", labels(s));
        }
    }
    out
}

fn fetch(router: SocketAddr) -> anyhow::Result<Vec<ShardStats>> {
    let mut c = Client::connect(router).context("connecting to the router")?;
    c.set_timeout(TIMEOUT)?;
    let request_id = c.request_id();
    match c.call(Control::StatsRequest(StatsRequest { request_id })) {
        Ok(Control::StatsReply(r)) => Ok(r.shards),
        Ok(other) => anyhow::bail!("unexpected answer: {other:?}"),
        Err(e) => anyhow::bail!("{e}"),
    }
}

fn answer(mut conn: TcpStream, router: SocketAddr) -> std::io::Result<()> {
    conn.set_read_timeout(Some(TIMEOUT))?;
    conn.set_write_timeout(Some(TIMEOUT))?;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < HEAD_MAX {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split(' ');
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, body) = match (method, path.split('?').next().unwrap_or("")) {
        ("GET", "/metrics") => match fetch(router) {
            Ok(shards) => ("200 OK", exposition(&shards)),
            Err(e) => ("503 Service Unavailable", format!("the router did not answer: {e:#}\n")),
        },
        ("GET", _) => ("404 Not Found", "a2a-bench serves /metrics\n".to_string()),
        _ => ("405 Method Not Allowed", "GET /metrics\n".to_string()),
    };
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Serves `/metrics` on `listen` for the router at `router`; returns the bound address.
pub fn serve(listen: SocketAddr, router: SocketAddr) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(listen)
        .with_context(|| format!("--metrics: cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                let _ = answer(conn, router);
            }
        })
        .context("starting the metrics thread")?;
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_one_sample_per_shard_and_error_code() {
        // Proves every metric is typed once and labelled per shard, and errors carry their code.
        let mut s = ShardStats { shard: 1, core: 3, msgs_in: 42, ..ShardStats::default() };
        s.errors = vec![(ErrorCode::UnknownRecipient.code(), 5)];
        let text = exposition(&[s]);
        assert!(text.contains("# TYPE a2a_router_messages_in_total counter\n"));
        assert!(text
            .contains("a2a_router_messages_in_total{shard=\"1\",core=\"3\",numa_node=\"0\"} 42\n"));
        assert!(text.contains("code=\"unknown_recipient\"} 5\n"), "{text}");
        assert_eq!(text.matches("# TYPE").count(), 22);
    }
}
