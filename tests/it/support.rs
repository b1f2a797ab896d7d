//! Helpers shared by the integration tests.

use std::net::SocketAddr;
use std::path::Path;

use a2a_bench::client::{Client, Received};
use a2a_bench::placement::{Machine, Slot};
use a2a_bench::route::ShardConfig;
use a2a_bench::routers::{AnyRouter, RouterKind, RouterSpec};
use a2a_bench::transport::Transport;
use a2a_bench::wire::{AgentId, Control, DataKind, Envelope, Message};

/// `n` slots over this machine's cores (repeating cores when it has fewer).
pub fn slots(n: usize) -> Vec<Slot> {
    let m = Machine::detect();
    (0..n).map(|i| m.cores[i % m.cores.len()]).collect()
}

/// What a check runs against: a router kind, reached over a transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setup {
    pub kind: RouterKind,
    pub transport: Transport,
    /// The glommio router's socket I/O (the tokio kinds ignore it).
    pub io: a2a_bench::transport::Io,
}

impl Setup {
    /// Whether the router has one stats entry per shard.
    pub fn sharded(self) -> bool {
        self.kind.sharded()
    }
}

/// A running router of any kind, with the transport its clients use.
pub struct TestRouter {
    inner: AnyRouter,
    transport: Transport,
}

impl TestRouter {
    pub fn addr(&self) -> SocketAddr {
        self.inner.local_addr()
    }

    /// A client over the router's transport.
    pub fn connect(&self) -> Client {
        Client::connect_with(self.addr(), self.transport, None).expect("connects")
    }

    /// A client over the router's transport with a small kernel receive buffer.
    pub fn connect_with_recv_buffer(&self, bytes: usize) -> Client {
        Client::connect_with(self.addr(), self.transport, Some(bytes)).expect("connects")
    }

    pub fn stats(&self) -> Vec<a2a_bench::wire::ShardStats> {
        self.inner.stats()
    }

    pub fn stop(self) {
        drop(self.inner.stop());
    }

    /// Blocks every shard's thread for `d`.
    pub fn stall(&self, d: std::time::Duration) {
        self.inner.stall(d)
    }
}

/// A router of `setup.kind` on 127.0.0.1:0 with `shards` shards (threads), adjusted by `tweak`.
pub fn start(setup: Setup, shards: usize, tweak: impl FnOnce(&mut ShardConfig)) -> TestRouter {
    let mut spec = RouterSpec::local(slots(shards));
    spec.io = setup.io;
    tweak(&mut spec.shard);
    let inner = setup.kind.start(spec).expect("router starts");
    TestRouter { inner, transport: setup.transport }
}

/// Raises this process's open-file limit to at least `n` (up to the hard limit).
pub fn raise_fd_limit(n: u64) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < n {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, n.min(hard), hard);
        }
    }
}

/// A client with one registered agent; panics unless the registration is acked.
pub fn agent(r: &TestRouter, id: u32, agent_type: u32, topics: &[u32]) -> Client {
    let mut c = r.connect();
    check_ack(c.register(id, agent_type, topics).expect("register answered"));
    c
}

/// Panics unless `ctl` is an ack.
pub fn check_ack(ctl: Control) {
    assert!(matches!(ctl, Control::Ack(_)), "expected an ack, got {ctl:?}");
}

/// The error code in `ctl`, panicking if it is not an error.
pub fn error_code(ctl: &Control) -> u16 {
    match ctl {
        Control::Error(e) => e.code,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// A data message with a small payload.
pub fn data(kind: DataKind, sender: u32, to: u32, message_id: u64, payload: &[u8]) -> Envelope<'_> {
    Envelope {
        kind,
        sender: AgentId(sender),
        to,
        message_id,
        correlation_id: 0,
        timestamp_ns: a2a_bench::clock::now_ns(),
        msg_type: 1,
        priority: 5,
        ttl_ms: 0,
        payload,
    }
}

/// Sends one data message.
pub fn send(c: &mut Client, env: Envelope<'_>) {
    c.send(&[Message::Data(env)]).expect("send");
}

/// The next message, which must be data.
pub fn recv_data(c: &mut Client) -> a2a_bench::client::DataMessage {
    match c.recv().expect("a message arrives") {
        Received::Data(d) => d,
        other => panic!("expected data, got {other:?}"),
    }
}

/// `len` pseudo-random bytes (xorshift): a payload LZ4 cannot shrink.
pub fn noise(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Runs `a2a-bench <args>` to completion within `limit`; a child still running then is killed and
/// the test fails, so no test hangs on the binary.
pub fn run_bin(args: &[&str], limit: std::time::Duration) -> std::process::Output {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_a2a-bench"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("the binary ran"),
        Err(_) => {
            let _ = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("a2a-bench {args:?} still ran after {limit:?}: killed");
        }
    }
}

/// Runs `a2a-bench` with each case's flags (bounded): each must fail with one line on stderr
/// holding the case's text.
pub fn refused_in_one_line(cases: &[(&[&str], &str)]) {
    for &(args, needle) in cases {
        let o = run_bin(args, std::time::Duration::from_secs(20));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
}

/// A scenario on the last core: 64 B payloads, 100 ms warm-up, 5 s drain, one agent per
/// connection, agent ids from `id_base`.
pub fn scenario(
    topology: a2a_bench::loadgen::Topology,
    agents: u32,
    pacing: a2a_bench::loadgen::Pacing,
    stop: a2a_bench::loadgen::Stop,
    id_base: u32,
) -> a2a_bench::loadgen::Scenario {
    let m = Machine::detect();
    a2a_bench::loadgen::Scenario {
        topology,
        agents,
        pacing,
        stop,
        warmup: std::time::Duration::from_millis(100),
        drain_timeout: std::time::Duration::from_secs(5),
        payload_bytes: 64,
        payload_mix: None,
        batch_max: 1024,
        compression: a2a_bench::wire::Compression::None,
        agents_per_conn: 1,
        connections: None,
        agent_cores: vec![*m.cores.last().unwrap()],
        late_after: std::time::Duration::from_millis(1),
        priority: 5,
        id_base,
        transport: Transport::Tcp,
        io: a2a_bench::transport::Io::Glommio,
        poll: false,
        homing: true,
        protocol: a2a_bench::loadgen::Protocol::Native,
        interval: None,
        slice: None,
        http: None,
        workload: Default::default(),
        keepalive: Some(std::time::Duration::from_secs(30) / 3),
    }
}

/// `a2a-bench router` on core 0 as a child process, under `ulimit` settings `limits` (a shell
/// fragment such as `ulimit -n 64`, or nothing); returns it with its address, read from its
/// first line (the readiness signal). Its stderr is piped.
pub fn router_process(limits: &[&str]) -> (std::process::Child, SocketAddr) {
    router_process_with(limits, &[])
}

/// Kills a child process however the test ends.
pub struct Reap(pub std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// [`router_process`] with more of `a2a-bench router`'s flags.
pub fn router_process_with(limits: &[&str], flags: &[&str]) -> (std::process::Child, SocketAddr) {
    process_of("router", limits, flags)
}

/// `a2a-bench <command>` (`router` or `baseline-router`) on core 0, as [`router_process`].
pub fn process_of(
    command: &str,
    limits: &[&str],
    flags: &[&str],
) -> (std::process::Child, SocketAddr) {
    use std::io::BufRead;
    let bin = env!("CARGO_BIN_EXE_a2a-bench");
    let mut script = limits.join(" && ");
    if !script.is_empty() {
        script.push_str(" && ");
    }
    script.push_str(&format!("exec {bin} {command} --cores 0 --listen 127.0.0.1:0"));
    for flag in flags {
        script.push(' ');
        script.push_str(flag);
    }
    let mut child = std::process::Command::new("bash")
        .args(["-c", &script])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the router starts");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    let addr = line.split("tcp://").nth(1).and_then(|s| s.split_whitespace().next());
    let addr = addr.unwrap_or_else(|| panic!("no address in {line:?}"));
    (child, addr.parse().unwrap())
}

/// Sockets on 127.0.0.1:`port` (a router's side) still open: established, or closed by the
/// peer but not by the router (CLOSE_WAIT), read from /proc/net/tcp. A router on its socket
/// rings holds no descriptor per connection, so its descriptors do not say how many it holds.
pub fn open_router_sockets(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let local_port = f[1].rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
            local_port == Some(port) && (f[3] == "01" || f[3] == "08")
        })
        .count()
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
/// Gives the heap's free pages back to the system, so that memory freed by earlier tests in
/// this process and reused by the next is counted again when it is touched: the slow tests
/// share one process, and a test measuring its peak RSS after a bigger one grew by a quarter
/// of what it grows alone (8,000 agents on their own connections: 1,656 bytes each after the
/// million agents' test, 6,911 alone).
#[allow(unsafe_code)]
pub fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes the allocator's own locks and only releases free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}

pub fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// User + system CPU time of process `pid`, in clock ticks (100 a second).
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// A directory of a test's own under the system's temporary one, removed with everything in it
/// when dropped, also when the test fails; it reads as the [`Path`] it is.
pub struct Scratch(tempfile::TempDir);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        self.0.path()
    }
}

/// A fresh [`Scratch`] directory named after `what`.
pub fn scratch(what: &str) -> Scratch {
    Scratch(tempfile::Builder::new().prefix(&format!("a2a-{what}-")).tempdir().unwrap())
}
