//! `a2a-bench http`: virtual clients of an A2A agent, an MCP server or an agent registry, run
//! by the same grid, loop, reports, thresholds and rate search as the router benchmark.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail};
use clap::Args;

use super::bench::{BenchArgs, BenchConfig, Finish};
use super::parse_secs;
use crate::loadgen::http::{self, Pattern, Plan};
use crate::loadgen::Protocol;
use crate::report::{HttpConfig, TextFile};

/// `a2a-bench http`'s flags.
#[derive(Args, Debug, Clone)]
#[command(allow_negative_numbers = true)]
pub struct HttpCmd {
    /// The server: http[s]://host[:port][/path] (the JSON-RPC or MCP endpoint, the
    /// registry's or the A2A HTTP+JSON or gRPC binding's base, or what `health` gets).
    #[arg(long, value_name = "URL")]
    url: String,
    /// What each client sends, as a mix reported per pattern (NAME=W weighs a pattern W
    /// times a bare one, e.g. a2a:message=4,a2a:agent_card): health, a2a:message,
    /// a2a:stream, a2a:conversation, a2a:agent_card, a2a-v03:message, a2a-v03:stream,
    /// a2a-v03:conversation,
    /// a2a-rest:message, a2a-rest:stream, a2a-rest:conversation (A2A's HTTP+JSON binding),
    /// a2a:task, a2a-rest:task, a2a-grpc:task (returnImmediately, then GetTask until the task
    /// ends), a2a:subscribe, a2a-rest:subscribe, a2a-grpc:subscribe (returnImmediately, then
    /// SubscribeToTask), a2a-v03:task, a2a-v03:subscribe (v0.3: blocking false, then tasks/get
    /// or tasks/resubscribe), a2a:push, a2a-rest:push, a2a-grpc:push, a2a-v03:push
    /// (returnImmediately, v0.3 blocking false, with a push-notification config: the task's
    /// end is POSTed to a2a-bench's receiver), a2a:cancel, a2a-rest:cancel, a2a-grpc:cancel,
    /// a2a-v03:cancel (the task canceled as soon as it is accepted: the time until it is),
    /// a2a:list_tasks, a2a-rest:list_tasks, a2a-grpc:list_tasks (ListTasks, a page of
    /// --page-size), a2a:extended_card, a2a-rest:extended_card, a2a-grpc:extended_card,
    /// a2a-v03:extended_card (GetExtendedAgentCard; v0.3 agent/getAuthenticatedExtendedCard),
    /// a2a-v03-rest:message, a2a-v03-rest:stream, a2a-v03-rest:task, a2a-v03-rest:subscribe,
    /// a2a-v03-rest:push, a2a-v03-rest:cancel, a2a-v03-rest:extended_card,
    /// a2a-v03-rest:conversation (v0.3's HTTP+JSON
    /// binding, under {path}/v1; its extended card is GET /v1/card),
    /// a2a-grpc:message, a2a-grpc:stream, a2a-grpc:conversation (A2A's gRPC binding, over
    /// HTTP/2), a2a-v03-grpc:message, a2a-v03-grpc:stream, a2a-v03-grpc:conversation,
    /// a2a-v03-grpc:task, a2a-v03-grpc:subscribe, a2a-v03-grpc:push, a2a-v03-grpc:cancel,
    /// a2a-v03-grpc:agent_card (v0.3's gRPC binding, a2a.v1.A2AService), mcp:tools/list, mcp:tools/call, mcp:mixed, registry:register, registry:get,
    /// registry:list, registry:search, registry:health.
    #[arg(long, value_name = "LIST", default_value = "health")]
    pattern: String,
    /// Virtual clients, per run (each with its own MCP session) [default: 10; --quick: 4].
    #[arg(long, value_name = "LIST")]
    agents: Option<String>,
    /// Keep-alive connections the clients of a run share: exactly this many, at most one per
    /// client, the clients spread evenly over them (100 on 64: 36 connections of two, 28 of
    /// one); fewer than the agent cores, and the clients run on that many (a connection lives
    /// on one core) [default: one per client].
    #[arg(long, value_name = "N")]
    connections: Option<u32>,
    /// Most requests on the wire per connection (HTTP/1.1 pipelining; 1: none).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pipeline: u32,
    /// HTTP/2 over cleartext TCP (h2c, prior knowledge; over TLS, by ALPN): the clients of a
    /// connection multiplex their requests on it, up to the server's concurrent-stream limit.
    /// The a2a-grpc and a2a-v03-grpc patterns imply it.
    #[arg(long)]
    http2: bool,
    /// One request per connection (HTTP/1.1 `Connection: close`): every request pays a new
    /// connection (and with https:// a TLS handshake), as clients without a pool do.
    #[arg(long)]
    no_keepalive: bool,
    /// Requests in flight per client (closed loop), or their cap (open loop).
    #[arg(long, value_name = "N", default_value_t = 1)]
    window: u32,
    /// Open loop: total requests per second over all clients, per run [default: closed loop].
    #[arg(long, value_name = "LIST")]
    rate: Option<String>,
    /// Requests per client in the measured window (count mode) [default: duration mode].
    #[arg(long, value_name = "LIST", conflicts_with = "duration")]
    messages: Option<String>,
    /// Seconds of measured window per run [default: 3; --quick: 1].
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    duration: Option<Duration>,
    /// Repetitions of each scenario [default: 3; --quick: 1].
    #[arg(long, value_name = "N")]
    repeat: Option<u32>,
    /// Seconds of warm-up before each measured window [default: 1; --quick: 0.3].
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    warmup: Option<Duration>,
    /// Seconds without any answer after which the server counts as stalled (and what is in
    /// flight as drain_timeout); also how long the MCP sessions' `DELETE`s may take at the end.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_secs)]
    drain_timeout: Duration,
    /// Seconds a request may stay on the wire without its answer; past it the request is an
    /// error of kind `timeout` (over HTTP/1.1 its connection is closed and replaced; over
    /// --http2 its stream is reset; a2a-grpc requests also carry it as their `grpc-timeout`)
    /// [default: none, only the stall timeout].
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    timeout: Option<Duration>,
    /// JSON report file.
    #[arg(long, value_name = "FILE", default_value = "http_results.json")]
    output: PathBuf,
    /// Also write one CSV row per run to this file (and after a mix's run, one per pattern).
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// Also write a self-contained HTML report to this file.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Length of one time-series interval in seconds; 0 keeps none.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_secs)]
    interval: Duration,
    /// Write each run's HdrHistogram interval log into this directory.
    #[arg(long, value_name = "DIR")]
    hlog: Option<PathBuf>,
    /// Pass/fail criterion per scenario (repeatable), e.g. p99<50ms, errors==0, or one
    /// pattern's: p99{a2a:stream}<80ms, errors{mcp:tools/call}<0.1%; exit code 99 when one
    /// fails.
    #[arg(long = "threshold", value_name = "EXPR")]
    thresholds: Vec<String>,
    /// A saved report to compare with.
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// Search the highest open-loop rate that holds --slo.
    #[arg(long, requires = "slo", conflicts_with_all = ["rate", "messages"])]
    find_max_rate: bool,
    /// Search the most clients, each sending RATE requests per second, that hold --slo (from
    /// the first of --agents, doubling until a count fails, then bisecting): how many users of
    /// this kind the server can take.
    #[arg(long, value_name = "RATE", requires = "slo", conflicts_with_all = ["rate", "messages", "find_max_rate"])]
    find_max_agents: Option<f64>,
    /// The objective of --find-max-rate or --find-max-agents, e.g. 'p99<20ms,errors==0'.
    #[arg(long, value_name = "EXPR")]
    slo: Option<String>,
    /// The search stops when the highest held and lowest failing rates (client counts) are
    /// this close (a share of the failing one).
    #[arg(long, value_name = "SHARE", default_value_t = 0.05)]
    search_precision: f64,
    /// A short grid.
    #[arg(long)]
    quick: bool,
    /// Socket I/O of the client cores: uring (a second io_uring per core: multishot receive,
    /// batched sends, no reschedule IPIs; without kernel support: glommio), or glommio (its
    /// streams).
    #[arg(long, value_name = "IO", default_value = "uring")]
    agent_io: crate::transport::Io,
    /// Cores for the client groups [default: every core].
    #[arg(long, value_name = "LIST")]
    agent_cores: Option<String>,
    /// Bytes of message text (A2A), or of each registered card's description.
    #[arg(long, value_name = "BYTES", default_value = "64", value_parser = super::parse_bytes)]
    payload_size: usize,
    /// Text sizes drawn per request by weight, in one run, with round trips per size (e.g.
    /// 256:90,16K:9,256K:1): the message of every pattern that sends one, and the card of
    /// registry:register. The reference servers take bodies up to 1 MiB.
    #[arg(long, value_name = "SIZE:WEIGHT,...", conflicts_with = "payload_size")]
    payload_mix: Option<String>,
    /// Messages' texts, one per line (blank lines skipped; UTF-8, up to 64 MiB): each request
    /// that sends a message (or registers a card) takes one, drawn from its client and request
    /// number, instead of --payload-size bytes of x.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["payload_size", "payload_mix"])]
    text_file: Option<PathBuf>,
    /// gzip: request bodies gzipped (`Content-Encoding: gzip`; gRPC: each message,
    /// `grpc-encoding: gzip`) at level 6, or gzip:LEVEL (1 to 9), and answers asked for
    /// gzipped (`Accept-Encoding: gzip`; gRPC: `grpc-accept-encoding`); answers: only ask for
    /// them. Answers coded gzip are read whatever this says; another coding is an error
    /// (protocol_content_encoding)
    #[arg(long, value_name = "HOW", default_value = "none")]
    compression: crate::loadgen::http::Compression,
    /// Open loop: a send later than this after its intended time counts as late (ms).
    #[arg(long, value_name = "MS", default_value = "1", value_parser = super::bench::parse_secs_ms)]
    late_after_ms: Duration,
    /// Seconds a thread spins on each agent core before the runs, counting the time the
    /// machine takes the core away (host.stalls in the report, a `machine:` line in the
    /// summary). 0 skips it.
    #[arg(long, value_name = "SECS", default_value = "0.5", value_parser = super::parse_secs)]
    stall_probe: Duration,
    /// https://: trust the CA certificates in this PEM file instead of the built-in Mozilla
    /// roots.
    #[arg(long, value_name = "FILE")]
    cacert: Option<PathBuf>,
    /// https://: accept any server certificate (the traffic is still encrypted).
    #[arg(long)]
    insecure: bool,
    /// Send `Authorization: Bearer TOKEN` [env: A2A_BENCH_TOKEN].
    #[arg(long, value_name = "TOKEN")]
    auth_token: Option<String>,
    /// A header every request carries, 'Name: value' (repeatable, up to 16): an API key, a
    /// tenant, `A2A-Extensions`. It replaces a2a-bench's own `User-Agent`, `Accept` or
    /// `A2A-Version`; what frames the request or the session (Host, Content-Type,
    /// Content-Length, Connection, Mcp-Session-Id, …) is a2a-bench's. The report keeps the
    /// names, never the values.
    #[arg(long = "header", short = 'H', value_name = "'NAME: VALUE'")]
    headers: Vec<String>,
    /// mcp:tools/call: the tool to call.
    #[arg(long, value_name = "NAME", default_value = "echo")]
    tool: String,
    /// mcp:tools/call: its arguments, a JSON object.
    #[arg(long, value_name = "JSON", default_value = r#"{"text":"hello from a2a-bench"}"#)]
    args: String,
    /// mcp:tools/call: arguments, one JSON object a line (blank lines skipped; up to 64 MiB):
    /// each call takes one, drawn from its client and request number, instead of --args.
    #[arg(long, value_name = "FILE", conflicts_with = "args")]
    args_file: Option<PathBuf>,
    /// MCP protocol version; 2026-07-28 is sessionless (no initialize, an Mcp-Method header).
    #[arg(long, value_name = "VERSION", default_value = "2025-06-18")]
    mcp_version: String,
    /// Registry: agents to register before the runs (registry:get and registry:search run
    /// against them).
    #[arg(long, value_name = "N", default_value_t = 0)]
    preload: u32,
    /// The conversation patterns (a2a:conversation, a2a-rest:, a2a-grpc:, a2a-v03:,
    /// a2a-v03-rest:, a2a-v03-grpc:conversation): turns per context.
    #[arg(long, value_name = "N", default_value_t = 4)]
    turns: u32,
    /// a2a:list_tasks, a2a-rest:list_tasks, a2a-grpc:list_tasks: the tasks a page asks for
    /// (ListTasks' pageSize, 1 to 100).
    #[arg(long, value_name = "N", default_value_t = crate::loadgen::http::LIST_PAGE)]
    page_size: u32,
    /// The list patterns: each client asks for the page after its last one (the answer's
    /// nextPageToken), and for the first again after the last page, instead of the first page
    /// each time.
    #[arg(long)]
    page_walk: bool,
    /// The list patterns: ask for the tasks in this state alone (ListTasks' status filter):
    /// submitted, working, completed, failed, canceled, input-required, rejected or
    /// auth-required.
    #[arg(long, value_name = "STATE")]
    list_status: Option<String>,
    /// The list patterns: ask for each task's artifacts too (ListTasks' includeArtifacts; A2A
    /// leaves them out unless asked, so a page is its tasks' ids and states).
    #[arg(long)]
    list_artifacts: bool,
    /// a2a:task, a2a-rest:task, a2a-grpc:task: seconds from a task's answer that it still
    /// works to the next GetTask about it (0: at once).
    #[arg(long, value_name = "SECS", default_value = "0.1", value_parser = parse_secs)]
    task_poll: Duration,
    /// The task patterns: back off, each GetTask of a task still working waiting twice as
    /// long as the one before, from --task-poll up to this many seconds (as clients that poll
    /// long tasks do) [default: no backoff].
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    task_poll_max: Option<Duration>,
    /// The task patterns: a task still working this many seconds after its intended send
    /// time is an error of kind task_timeout (a subscription's stream still open is cut).
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    task_timeout: Duration,
    /// The push patterns: where a2a-bench receives the push notifications
    /// [default: 127.0.0.1:0 for a target on loopback, else 0.0.0.0:0].
    #[arg(long, value_name = "ADDR")]
    push_listen: Option<std::net::SocketAddr>,
    /// The push patterns: the URL the target is told to notify, when it reaches
    /// a2a-bench by another address than the one it was reached from (NAT, a proxy)
    /// [default: http://<that address>:<port>/push].
    #[arg(long, value_name = "URL")]
    push_url: Option<String>,
    /// The push patterns: the push-notification config asks the server to authenticate its
    /// notifications (authentication scheme Bearer, the run's token as credentials; v0.3:
    /// schemes ["Bearer"]), and a notification without `Authorization: Bearer <token>` is
    /// refused (401).
    #[arg(long)]
    push_auth: bool,
    /// Multi-host: this process is worker I (from 0) of --workers, driving its slice of every
    /// run's clients; `a2a-bench merge` adds the parts up.
    #[arg(long, value_name = "I", requires_all = ["workers", "run_id", "meet"])]
    index: Option<u32>,
    /// Multi-host: how many workers share each run's clients.
    #[arg(long, value_name = "N", requires = "index")]
    workers: Option<u32>,
    /// Multi-host: the run's id, the same on every worker.
    #[arg(long, value_name = "ID", requires = "index")]
    run_id: Option<String>,
    /// Multi-host: an a2a-bench router (`a2a-bench router`, anywhere the workers reach) they
    /// meet through: a barrier before each run's start and after its drain.
    #[arg(long, value_name = "tcp://HOST:PORT", requires = "index")]
    meet: Option<String>,
    /// Multi-host: seconds to wait at each run's start for the other workers.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_secs)]
    start_timeout: Duration,
}

/// The push patterns' receiver of notifications, started (`None` without them).
fn push_receiver(
    cmd: &HttpCmd,
    patterns: &[Pattern],
    target: std::net::SocketAddr,
    agent_cores: &[usize],
) -> anyhow::Result<Option<std::sync::Arc<crate::loadgen::http::push::Receiver>>> {
    if !patterns.iter().any(|p| p.is_push()) {
        if cmd.push_listen.is_some() || cmd.push_url.is_some() || cmd.push_auth {
            bail!(
                "--push-listen, --push-url and --push-auth are for the push patterns (a2a:push, a2a-rest:push, a2a-grpc:push, a2a-v03:push, a2a-v03-rest:push, a2a-v03-grpc:push)"
            );
        }
        return Ok(None);
    }
    if let Some(url) = &cmd.push_url {
        let plain = url.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\\'));
        if !(url.starts_with("http://") || url.starts_with("https://")) || !plain {
            bail!("--push-url: give an http:// or https:// URL (no quotes, backslashes or spaces)");
        }
        if url.len() > crate::loadgen::http::PUSH_URL_MAX {
            let max = crate::loadgen::http::PUSH_URL_MAX;
            bail!("--push-url: at most {max} bytes");
        }
    }
    let unspecified = |ip: std::net::IpAddr| std::net::SocketAddr::new(ip, 0);
    let listen = cmd.push_listen.unwrap_or_else(|| match target.ip() {
        ip if ip.is_loopback() => unspecified(ip),
        std::net::IpAddr::V4(_) => unspecified(std::net::Ipv4Addr::UNSPECIFIED.into()),
        std::net::IpAddr::V6(_) => unspecified(std::net::Ipv6Addr::UNSPECIFIED.into()),
    });
    // Listening everywhere: the target is told the address it was reached from.
    let host = match (&cmd.push_url, listen.ip().is_unspecified()) {
        (None, true) => {
            let local = std::net::UdpSocket::bind(unspecified(listen.ip()))
                .and_then(|s| s.connect(target).and(s.local_addr()))
                .map_err(|e| anyhow!("--push-listen: no address toward {target}: {e}"))?;
            Some(local.ip())
        }
        _ => None,
    };
    let at = crate::loadgen::http::push::Advertised {
        url: cmd.push_url.as_deref(),
        host,
        auth: cmd.push_auth,
    };
    let r = crate::loadgen::http::push::Receiver::start(listen, at, agent_cores)
        .map_err(|e| anyhow!("--push-listen {listen}: {e}"))?;
    Ok(Some(std::sync::Arc::new(r)))
}

/// A parsed `--url`.
#[derive(Debug)]
struct Url {
    /// `Host` header value (host, and port when given).
    authority: String,
    /// The host alone (the TLS server name).
    host: String,
    addr: SocketAddr,
    path: String,
    https: bool,
}

/// `http[s]://host[:port]/path[?query]`; a `#fragment` is the client's alone, never sent.
fn parse_url(url: &str) -> Result<Url, String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!("'{url}': give http://host:port[/path]"));
    };
    let https = match scheme.to_ascii_lowercase().as_str() {
        "http" => false,
        "https" => true,
        other => {
            return Err(format!("'{url}': the scheme must be http:// or https://, not {other}://"))
        }
    };
    let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('?') => (&rest[..i], format!("/{}", &rest[i..])),
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(format!("'{url}': give http://host:port[/path]"));
    }
    let has_port = authority.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        && !authority.ends_with(']');
    let (with_port, host) = if has_port {
        let (h, _) = authority.rsplit_once(':').unwrap_or((authority, ""));
        (authority.to_string(), h.to_string())
    } else {
        (format!("{authority}:{}", if https { 443 } else { 80 }), authority.to_string())
    };
    let addr = with_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("'{url}': {authority} does not resolve"))?;
    if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(format!("'{url}': the path has spaces or control characters"));
    }
    Ok(Url { authority: authority.to_string(), host, addr, path, https })
}

fn header_safe(flag: &str, v: &str) -> anyhow::Result<()> {
    if v.bytes().any(|b| b < b' ' || b == 0x7f) {
        bail!("{flag}: control characters cannot go in an HTTP header");
    }
    Ok(())
}

/// The validated grid of an `a2a-bench http` command.
fn config(
    mut cmd: HttpCmd,
    role: Option<&super::worker::WorkerRole>,
) -> anyhow::Result<BenchConfig> {
    let Url { authority: host, host: name, addr, path, https } =
        parse_url(&cmd.url).map_err(|e| anyhow!("--url: {e}"))?;
    if !https && (cmd.insecure || cmd.cacert.is_some()) {
        bail!("--insecure and --cacert are for https:// URLs");
    }
    let (patterns, weights) =
        crate::loadgen::http::parse_mix(&cmd.pattern).map_err(|e| anyhow!("--pattern: {e}"))?;
    if patterns.iter().any(|p| p.is_grpc()) {
        // gRPC is HTTP/2's: the whole mix goes over it.
        if cmd.pipeline != 1 || cmd.no_keepalive {
            bail!("--pattern: the a2a-grpc patterns speak HTTP/2, which goes with neither --pipeline nor --no-keepalive");
        }
        for service in [crate::grpc::SERVICE, crate::grpc::SERVICE_V03] {
            if path.contains(service) {
                bail!(
                    "--url: the a2a-grpc patterns add {service}<method> themselves: give the server's address"
                );
            }
        }
        cmd.http2 = true;
    }
    let tls = if https { Some(tls_client(&cmd, &name)?) } else { None };
    let (args, token) = check_flags(&cmd)?;
    let headers = user_headers(&cmd.headers, token.is_some())?;
    for (given, flag) in
        [(cmd.payload_mix.is_some(), "--payload-mix"), (cmd.text_file.is_some(), "--text-file")]
    {
        if given && !patterns.iter().any(|p| p.carries_text()) {
            bail!(
                "{flag}: no pattern of --pattern sends a message's text (those that send a message, and registry:register)"
            );
        }
    }
    let texts = match &cmd.text_file {
        Some(path) => {
            lines("--text-file", path)?.map(|l| crate::loadgen::http::Text::new(&l)).collect()
        }
        None => Vec::new(),
    };
    if cmd.args_file.is_some() && !patterns.contains(&Pattern::McpToolsCall) {
        bail!("--args-file: its arguments are mcp:tools/call's, which --pattern does not name");
    }
    let args_list = match &cmd.args_file {
        Some(path) => tool_arguments(path)?,
        None => Vec::new(),
    };
    let needs_preload = patterns.contains(&Pattern::RegistryGet);
    if needs_preload && cmd.preload == 0 {
        bail!("--preload: registry:get reads preloaded agents: give --preload N (N ≥ 1)");
    }
    // A threshold on one pattern names a pattern of the mix (or a size of --payload-mix,
    // checked with the mix).
    let slo = cmd.slo.iter().flat_map(|s| s.split(',')).map(|t| ("--slo", t));
    for (flag, text) in cmd.thresholds.iter().map(|t| ("--threshold", t.as_str())).chain(slo) {
        let Ok(t) = text.parse::<crate::report::threshold::Threshold>() else { continue };
        let size = |p: &str| cmd.payload_mix.is_some() && super::parse_bytes(p).is_ok();
        if let Some(p) =
            t.pattern().filter(|p| !patterns.iter().any(|q| q.name() == *p) && !size(p))
        {
            let mix: Vec<&str> = patterns.iter().map(|p| p.name()).collect();
            bail!("{flag} '{}': no pattern '{p}' in the mix ({})", t.text(), mix.join(", "));
        }
    }
    let base = path.split('?').next().unwrap_or_default().trim_end_matches('/');
    if patterns.iter().any(|p| p.is_a2a_rest())
        && (base.ends_with("/message:send") || base.ends_with("/message:stream"))
    {
        // v0.3's binding adds its /v1 too.
        let v03 = patterns.iter().any(|p| p.is_v03_rest());
        let above = base.rsplit_once('/').map_or("", |(b, _)| b);
        let above = if v03 { above.strip_suffix("/v1").unwrap_or(above) } else { above };
        bail!(
            "--url: the a2a-rest patterns add /message:send or /message:stream themselves \
             (a2a-v03-rest: /v1/message:send): give the binding's base ('{}')",
            if above.is_empty() { "/" } else { above }
        );
    }
    if cmd.task_poll_max.is_some() && !patterns.iter().any(|p| p.is_task() && !p.is_push()) {
        bail!("--task-poll-max is for the task patterns that poll (a2a:task, a2a:cancel, …)");
    }
    if cmd.page_walk && !patterns.iter().any(|p| p.is_list()) {
        bail!("--page-walk is for the list patterns (a2a:list_tasks, a2a-rest:list_tasks, a2a-grpc:list_tasks)");
    }
    if cmd.list_artifacts && !patterns.iter().any(|p| p.is_list()) {
        bail!("--list-artifacts is for the list patterns (a2a:list_tasks, a2a-rest:list_tasks, a2a-grpc:list_tasks)");
    }
    let list_status = match cmd.list_status.as_deref() {
        None => 0,
        Some(_) if !patterns.iter().any(|p| p.is_list()) => bail!(
            "--list-status is for the list patterns (a2a:list_tasks, a2a-rest:list_tasks, a2a-grpc:list_tasks)"
        ),
        Some(name) => crate::grpc::task_state_named(name).ok_or_else(|| {
            anyhow!(
                "--list-status '{name}': a task state is submitted, working, completed, failed, \
                 canceled, input-required, rejected or auth-required"
            )
        })?,
    };
    let mcp = patterns.iter().any(|p| matches!(p, Pattern::McpToolsList | Pattern::McpToolsCall));
    let mut plan = Plan {
        patterns: patterns.clone(),
        mix: crate::loadgen::http::schedule(&weights),
        host,
        path,
        token: token.clone(),
        tool: serde_json::to_string(&cmd.tool)?,
        args: args.to_string(),
        mcp_version: cmd.mcp_version.clone(),
        preloaded: Vec::new(),
        turns: cmd.turns,
        page_size: cmd.page_size,
        page_walk: cmd.page_walk,
        list_status,
        list_artifacts: cmd.list_artifacts,
        task_poll_ns: cmd.task_poll.as_nanos() as u64,
        task_poll_max_ns: cmd.task_poll_max.map_or(0, |d| d.as_nanos() as u64),
        task_timeout_ns: cmd.task_timeout.as_nanos() as u64,
        pipeline: cmd.pipeline,
        http2: cmd.http2,
        timeout_ns: cmd.timeout.map_or(0, |t| t.as_nanos() as u64),
        tls,
        close: cmd.no_keepalive,
        headers: headers.clone(),
        counts: Default::default(),
        push: None,
        texts,
        args_list,
        compression: cmd.compression,
    };
    let said = |path: &PathBuf, lens: Vec<u64>| TextFile {
        path: path.display().to_string(),
        texts: lens.len() as u64,
        bytes_mean: lens.iter().sum::<u64>() as f64 / lens.len().max(1) as f64,
        bytes_max: lens.iter().copied().max().unwrap_or(0),
    };
    let text_file = cmd
        .text_file
        .as_ref()
        .map(|p| said(p, plan.texts.iter().map(|t| t.raw.len() as u64).collect()));
    let args_file = cmd
        .args_file
        .as_ref()
        .map(|p| said(p, plan.args_list.iter().map(|a| a.len() as u64).collect()));
    let mut args = bench_args(&cmd, addr);
    if let Some(f) = &text_file {
        // The report's payload size: the texts' mean.
        args.payload_size = (f.bytes_mean.round() as u64).max(1).to_string();
    }
    let cfg = BenchConfig::try_from(args)?;
    plan.push = push_receiver(&cmd, &patterns, addr, &cfg.agent_cores())?;
    if cmd.preload > 0 {
        // A worker of a multi-host run registers its share: together they preload N.
        let (first, count) = role.map_or((0, cmd.preload), |w| w.slice(cmd.preload));
        let share = first..first + count;
        plan.preloaded = http::preload(addr, &plan, share, Duration::from_secs(10))
            .map_err(|e| anyhow!("{e}"))?;
    }
    let info = HttpConfig {
        url: cmd.url.clone(),
        patterns: patterns.iter().map(|p| p.name().to_string()).collect(),
        weights: weights.clone(),
        connections: cmd.connections,
        pipeline: cmd.pipeline,
        http2: cmd.http2,
        mcp_version: mcp.then(|| cmd.mcp_version.clone()),
        preload: cmd.preload,
        turns: patterns.iter().any(|p| p.is_conversation()).then_some(cmd.turns),
        page_size: patterns.iter().any(|p| p.is_list()).then_some(cmd.page_size),
        page_walk: cmd.page_walk,
        list_status: crate::grpc::TASK_STATES
            .get(usize::from(list_status))
            .filter(|_| list_status != 0)
            .map(|s| format!("TASK_STATE_{s}")),
        list_artifacts: cmd.list_artifacts,
        task_poll_sec: patterns
            .iter()
            .any(|p| p.is_task() && !p.is_push())
            .then_some(cmd.task_poll.as_secs_f64()),
        task_poll_max_sec: cmd.task_poll_max.map(|d| d.as_secs_f64()),
        task_timeout_sec: patterns
            .iter()
            .any(|p| p.is_task())
            .then_some(cmd.task_timeout.as_secs_f64()),
        auth: token.is_some(),
        timeout_sec: cmd.timeout.filter(|t| !t.is_zero()).map(|t| t.as_secs_f64()),
        tls: https,
        keepalive: !cmd.no_keepalive,
        headers: headers.into_iter().map(|(name, _)| name).collect(),
        push_url: plan.push.as_ref().map(|r| r.base().to_string()),
        push_auth: cmd.push_auth,
        text_file,
        args_file,
        compression: cmd.compression.asks().then(|| cmd.compression.to_string()),
    };
    Ok(cfg.into_http(&cmd.url, plan, cmd.connections, info))
}

/// The most bytes `--text-file` or `--args-file` reads (a text is kept twice: raw and
/// escaped for JSON).
const LINES_FILE_MAX: u64 = 64 << 20;

/// The lines of the file `flag` names (without their line ends; blank ones skipped): at
/// least one.
fn lines(flag: &str, path: &std::path::Path) -> anyhow::Result<std::vec::IntoIter<String>> {
    let at = path.display();
    let size = std::fs::metadata(path).map_err(|e| anyhow!("{flag} {at}: {e}"))?.len();
    if size > LINES_FILE_MAX {
        bail!("{flag} {at}: {size} bytes, more than the 64 MiB it may hold");
    }
    let bytes = std::fs::read(path).map_err(|e| anyhow!("{flag} {at}: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        anyhow!("{flag} {at}: not UTF-8 text (at byte {})", e.utf8_error().valid_up_to())
    })?;
    let lines: Vec<String> =
        text.lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect();
    if lines.is_empty() {
        bail!("{flag} {at}: nothing in it (one a line)");
    }
    Ok(lines.into_iter())
}

/// `--args-file`: each line a JSON object, kept as compact JSON.
fn tool_arguments(path: &std::path::Path) -> anyhow::Result<Vec<Box<str>>> {
    let at = path.display();
    let mut out = Vec::new();
    for (i, line) in lines("--args-file", path)?.enumerate() {
        let v: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| anyhow!("--args-file {at}: text {} is not JSON: {e}", i + 1))?;
        if !v.is_object() {
            bail!("--args-file {at}: text {} is not a JSON object", i + 1);
        }
        out.push(v.to_string().into_boxed_str());
    }
    Ok(out)
}

/// An https:// URL's TLS client, checked by connecting once.
fn tls_client(cmd: &HttpCmd, name: &str) -> anyhow::Result<crate::tls::Client> {
    let client = crate::tls::Client::new(name, cmd.cacert.as_deref(), cmd.insecure, cmd.http2)
        .map_err(|e| anyhow!("{}: {e}", if cmd.cacert.is_some() { "--cacert" } else { "--url" }))?;
    client.connect().map_err(|e| anyhow!("--url: {e}"))?;
    Ok(client)
}

/// The HTTP flags' own checks: the connection's use (pipelining, HTTP/2, keep-alive), the MCP
/// tool, arguments and version, and what goes into headers; the tool's arguments and the
/// bearer token (`--auth-token`, or `A2A_BENCH_TOKEN`).
fn check_flags(cmd: &HttpCmd) -> anyhow::Result<(serde_json::Value, Option<String>)> {
    if !(1..=1024).contains(&cmd.pipeline) {
        bail!("--pipeline must be 1 to 1024");
    }
    if cmd.timeout.is_some_and(|t| t.is_zero()) {
        bail!("--timeout must be above 0 (leave it out for none: only the stall timeout)");
    }
    if cmd.http2 && cmd.pipeline != 1 {
        bail!("--pipeline is HTTP/1.1 pipelining; with --http2 the clients of a connection multiplex without it");
    }
    if cmd.no_keepalive && (cmd.http2 || cmd.pipeline != 1) {
        bail!("--no-keepalive is one HTTP/1.1 request per connection: it goes with neither --http2 nor --pipeline");
    }
    if cmd.turns == 0 {
        bail!("--turns must be at least 1");
    }
    if !(1..=crate::loadgen::http::LIST_PAGE_MAX).contains(&cmd.page_size) {
        bail!("--page-size must be 1 to {} (A2A's bounds)", crate::loadgen::http::LIST_PAGE_MAX);
    }
    if cmd.task_timeout.is_zero() {
        bail!("--task-timeout must be above 0");
    }
    if cmd.task_poll_max.is_some_and(|m| m <= cmd.task_poll || cmd.task_poll.is_zero()) {
        bail!("--task-poll-max must be above --task-poll, and --task-poll above 0 (the wait it doubles from)");
    }
    if cmd.connections == Some(0) {
        bail!("--connections must be at least 1");
    }
    let args: serde_json::Value =
        serde_json::from_str(&cmd.args).map_err(|e| anyhow!("--args: not JSON: {e}"))?;
    if !args.is_object() {
        bail!("--args: give a JSON object, e.g. '{{\"text\":\"hi\"}}'");
    }
    if cmd.tool.is_empty() || cmd.tool.contains(['"', '\\']) {
        bail!("--tool: give a tool name (no quotes or backslashes)");
    }
    header_safe("--tool", &cmd.tool)?;
    let token = cmd.auth_token.clone().or_else(|| std::env::var("A2A_BENCH_TOKEN").ok());
    if let Some(t) = &token {
        header_safe("--auth-token", t)?;
    }
    header_safe("--mcp-version", &cmd.mcp_version)?;
    if cmd.mcp_version.is_empty() || cmd.mcp_version.contains('"') {
        bail!("--mcp-version: give a version such as 2025-06-18");
    }
    Ok((args, token))
}

/// Headers a2a-bench writes itself: what frames a request, its connection or its MCP
/// session, and the flag that sets it, if one does.
const OWN_HEADERS: [(&str, &str); 14] = [
    ("host", "--url"),
    ("content-type", ""),
    ("content-length", ""),
    ("transfer-encoding", ""),
    ("connection", "--no-keepalive"),
    ("keep-alive", ""),
    ("upgrade", ""),
    ("te", ""),
    ("trailer", ""),
    ("proxy-connection", ""),
    ("mcp-session-id", ""),
    ("mcp-protocol-version", "--mcp-version"),
    ("mcp-method", ""),
    ("mcp-name", "--tool"),
];

/// Most `--header`s: an HTTP/2 request carries them with a2a-bench's own in one header table.
const HEADERS_MAX: usize = 16;

/// `--header`s checked: (name, value) each, a name a token (RFC 9110 § 5.1) that is not one
/// a2a-bench writes itself, a value without control characters, `Authorization` only without
/// `--auth-token`.
fn user_headers(given: &[String], token: bool) -> anyhow::Result<Vec<(String, String)>> {
    if given.len() > HEADERS_MAX {
        bail!("--header: at most {HEADERS_MAX} (given {})", given.len());
    }
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    let mut out: Vec<(String, String)> = Vec::new();
    for h in given {
        let Some((name, value)) = h.split_once(':') else {
            bail!("--header: '{h}': give 'Name: value'");
        };
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() || !name.bytes().all(tchar) {
            bail!("--header: '{h}': '{name}' is not a header name");
        }
        header_safe("--header", value)?;
        let lower = name.to_ascii_lowercase();
        if let Some((_, flag)) = OWN_HEADERS.iter().find(|(n, _)| *n == lower) {
            let by = if flag.is_empty() { String::new() } else { format!(" (set by {flag})") };
            bail!("--header: {name} is a2a-bench's own{by}");
        }
        if lower == "authorization" && token {
            bail!("--header: Authorization and --auth-token (or A2A_BENCH_TOKEN) both given: give one");
        }
        if out.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            bail!("--header: {name} given twice");
        }
        out.push((name.to_string(), value.to_string()));
    }
    Ok(out)
}

/// The benchmark's own flags for an `a2a-bench http` command: its clients against the server
/// at `addr`.
fn bench_args(cmd: &HttpCmd, addr: std::net::SocketAddr) -> BenchArgs {
    let mut b = BenchArgs::defaults();
    b.agents =
        Some(cmd.agents.clone().unwrap_or_else(|| if cmd.quick { "4" } else { "10" }.into()));
    b.messages = cmd.messages.clone();
    b.duration = cmd.duration;
    b.rate = cmd.rate.clone();
    b.window = cmd.window;
    b.repeat = cmd.repeat;
    b.warmup = cmd.warmup;
    b.drain_timeout = cmd.drain_timeout;
    b.output = Some(cmd.output.clone());
    b.csv = cmd.csv.clone();
    b.html = cmd.html.clone();
    b.interval = cmd.interval;
    b.hlog = cmd.hlog.clone();
    b.thresholds = cmd.thresholds.clone();
    b.baseline = cmd.baseline.clone();
    b.find_max_rate = cmd.find_max_rate;
    b.find_max_agents = cmd.find_max_agents;
    b.search_precision = cmd.search_precision;
    b.slo = cmd.slo.clone();
    b.quick = cmd.quick;
    b.agent_cores = cmd.agent_cores.clone();
    b.agent_io = cmd.agent_io;
    b.payload_size = cmd.payload_size.to_string();
    b.payload_mix = cmd.payload_mix.clone();
    b.late_after_ms = cmd.late_after_ms;
    b.stall_probe = cmd.stall_probe;
    b.protocol = Protocol::Http;
    b.router = Some(format!("tcp://{addr}"));
    b
}

/// Runs `a2a-bench http`, alone or as one worker of a multi-host run.
pub(super) fn run(cmd: HttpCmd) -> anyhow::Result<Finish> {
    let role = match (cmd.index, cmd.workers, &cmd.run_id, &cmd.meet) {
        (Some(index), Some(workers), Some(run_id), Some(meet)) => {
            super::worker::check_role(index, workers, run_id, cmd.start_timeout)?;
            if cmd.preload > 0 && cmd.preload < workers {
                bail!("--preload: each of the {workers} workers registers its share: at least {workers}");
            }
            let (scheme, meet) =
                super::parse_router_url(meet).map_err(|e| anyhow!("--meet: {e}"))?;
            if scheme != "tcp" {
                bail!("--meet: the workers meet over tcp://host:port");
            }
            let run_id = run_id.clone();
            let start_timeout = cmd.start_timeout;
            Some(super::worker::WorkerRole {
                index,
                workers,
                run_id,
                start_timeout,
                meet: Some(meet),
            })
        }
        _ => None,
    };
    let mut cfg = config(cmd, role.as_ref())?;
    if let Some(role) = role {
        cfg.set_worker(role)?;
    }
    let push = cfg.http.as_ref().and_then(|plan| plan.push.clone());
    let finish = super::bench::run_config(cfg);
    if let Some(r) = push {
        let [received, ends, refused, stale] = r.counts();
        // The receiver's thread is the generator's too: its cost is said.
        let cpu = r.cpu_ns().map_or_else(String::new, |ns| {
            let each = ns as f64 / 1e3 / received.max(1) as f64;
            format!("; its thread used {:.2} CPU-s, {each:.1} µs a notification", ns as f64 / 1e9)
        });
        println!(
            "push notifications at {}: {received} received, {ends} told a task's end, {refused} refused (a wrong token, URL or body), {stale} of an earlier run{cpu}",
            r.base()
        );
    }
    finish
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_checked_and_kept_in_order() {
        // Proves --header's checks: 'Name: value' split and trimmed; a name that is not a
        // token, one of a2a-bench's own (naming the flag that sets it), a repeat, control
        // characters, Authorization beside a token, or more than 16 are refused in one line.
        let h = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let got = user_headers(&h(&["X-Api-Key:  k ", "A2A-Extensions: https://x/e"]), false);
        let want = [("X-Api-Key", "k"), ("A2A-Extensions", "https://x/e")];
        assert_eq!(got.unwrap(), want.map(|(n, v)| (n.to_string(), v.to_string())).to_vec());
        let err = |v: &[&str], token| user_headers(&h(v), token).unwrap_err().to_string();
        assert!(err(&["X-Key"], false).contains("'Name: value'"));
        assert!(err(&["X Key: v"], false).contains("not a header name"));
        assert!(err(&[": v"], false).contains("not a header name"));
        assert!(err(&["host: h"], false).contains("(set by --url)"));
        assert!(err(&["Content-Length: 1"], false).contains("a2a-bench's own"));
        assert!(err(&["A: 1", "a: 2"], false).contains("twice"));
        assert!(err(&["A: x\u{7}"], false).contains("control"));
        assert!(err(&["Authorization: Basic eA=="], true).contains("--auth-token"));
        assert!(user_headers(&h(&["Authorization: Basic eA=="]), false).is_ok());
        let many: Vec<String> = (0..17).map(|i| format!("X-{i}: v")).collect();
        assert!(user_headers(&many, false).unwrap_err().to_string().contains("at most 16"));
    }

    #[test]
    fn urls_give_host_address_and_path() {
        // Proves URL parsing: host header as given, port 80 by default, the path kept, and
        // https and other schemes refused with a reason.
        let u = parse_url("http://127.0.0.1:8080/mcp").unwrap();
        assert_eq!(
            (u.authority.as_str(), u.host.as_str(), u.addr.port(), u.path.as_str(), u.https),
            ("127.0.0.1:8080", "127.0.0.1", 8080, "/mcp", false)
        );
        let u = parse_url("http://127.0.0.1").unwrap();
        assert_eq!((u.addr.port(), u.path.as_str()), (80, "/"));
        let u = parse_url("https://localhost/a").unwrap();
        assert_eq!((u.host.as_str(), u.addr.port(), u.https), ("localhost", 443, true));
        assert!(parse_url("ftp://x/").unwrap_err().contains("scheme"));
        // A query without a path, and a fragment, which is never sent.
        let u = parse_url("http://127.0.0.1:8080?x=1#top").unwrap();
        assert_eq!((u.authority.as_str(), u.path.as_str()), ("127.0.0.1:8080", "/?x=1"));
        let u = parse_url("http://127.0.0.1:8080/a/b?q#f").unwrap();
        assert_eq!(u.path, "/a/b?q");
        let u = parse_url("http://[::1]:8080/mcp").unwrap();
        assert_eq!((u.host.as_str(), u.addr.port(), u.path.as_str()), ("[::1]", 8080, "/mcp"));
        assert!(parse_url("127.0.0.1:8080").is_err());
    }
}
