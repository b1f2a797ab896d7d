//! Facts about the machine, for `a2a-bench sysinfo` and every report's `host` section.
//!
//! Everything here is read-only: /proc, /sys, getrlimit, hwloc, and one probe that starts an
//! io_uring executor to see whether it works.

use serde::Serialize;

use crate::placement::Machine;

/// The bundled sysctl profile (`sysctl/a2a-bench.conf`).
pub const PROFILE: &str = include_str!("../sysctl/a2a-bench.conf");

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// One key of the profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProfileKey {
    /// The sysctl key.
    pub key: String,
    /// Recommended value.
    pub recommended: String,
    /// Why it is in the profile.
    pub why: String,
    /// A ceiling: only ever raised.
    pub at_least: bool,
}

/// Parses the profile: `key = value` lines, each preceded by a one-line `#` reason.
pub fn profile() -> Vec<ProfileKey> {
    let mut out = Vec::new();
    let mut why = String::new();
    for line in PROFILE.lines().map(str::trim) {
        if let Some(comment) = line.strip_prefix('#') {
            why = comment.trim().to_string();
        } else if let Some((key, value)) = line.split_once('=') {
            out.push(ProfileKey {
                key: key.trim().to_string(),
                recommended: value.split_whitespace().collect::<Vec<_>>().join(" "),
                at_least: why.contains("(at least)"),
                why: std::mem::take(&mut why),
            });
        } else {
            why.clear();
        }
    }
    out
}

/// A profile key against this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SysctlCheck {
    /// The key.
    pub key: String,
    /// Its value now (None: not present on this kernel).
    pub current: Option<String>,
    /// The profile's value.
    pub recommended: String,
    /// `ok`, `ok (higher)`, `differs` or `absent`.
    pub status: &'static str,
}

/// Every profile key, compared with this machine.
pub fn sysctl_checks() -> Vec<SysctlCheck> {
    profile()
        .into_iter()
        .map(|k| {
            let current = read(&format!("/proc/sys/{}", k.key.replace('.', "/")));
            let status = match &current {
                None => "absent",
                Some(v) if *v == k.recommended => "ok",
                Some(v) if k.at_least && higher(v, &k.recommended) => "ok (higher)",
                Some(_) => "differs",
            };
            SysctlCheck { key: k.key, current, recommended: k.recommended, status }
        })
        .collect()
}

fn higher(current: &str, recommended: &str) -> bool {
    matches!((current.parse::<u64>(), recommended.parse::<u64>()), (Ok(a), Ok(b)) if a >= b)
}

/// A soft and hard resource limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limit {
    /// Soft limit (`u64::MAX` = unlimited).
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
}

fn limit(resource: nix::sys::resource::Resource) -> Option<Limit> {
    nix::sys::resource::getrlimit(resource).ok().map(|(soft, hard)| Limit { soft, hard })
}

/// Whether io_uring works here: the kernel switch, and a real executor start.
pub fn io_uring() -> serde_json::Value {
    let disabled = read("/proc/sys/kernel/io_uring_disabled");
    let probe = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(64 << 10)
        .spawn(|| async {})
        .map_err(|e| e.to_string())
        .and_then(|h| h.join().map_err(|e| e.to_string()));
    serde_json::json!({
        "kernel_io_uring_disabled": disabled,
        "works": probe.is_ok(),
        "error": probe.err(),
    })
}

/// The CPU model name.
pub fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// Total memory in bytes.
pub fn memory_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = info
        .lines()
        .find(|l| l.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Every fact, as the report's `host` section.
pub fn facts() -> serde_json::Value {
    use nix::sys::resource::Resource;
    let m = Machine::detect();
    let mut nodes: std::collections::BTreeMap<u32, Vec<usize>> = std::collections::BTreeMap::new();
    for s in &m.cores {
        nodes.entry(s.node).or_default().push(s.core);
    }
    serde_json::json!({
        "hostname": read("/proc/sys/kernel/hostname"),
        "kernel": read("/proc/sys/kernel/osrelease"),
        "cpu_model": cpu_model(),
        "logical_cores": m.cores.len(),
        "numa_nodes": m.nodes(),
        "numa_cores": nodes.iter().map(|(n, c)| serde_json::json!({"node": n, "cores": c})).collect::<Vec<_>>(),
        "numa_map_from_hwloc": m.from_hwloc,
        "memory_bytes": memory_bytes(),
        "io_uring": io_uring(),
        "limits": {
            "nofile": limit(Resource::RLIMIT_NOFILE),
            "memlock": limit(Resource::RLIMIT_MEMLOCK),
        },
        "clocksource": read("/sys/devices/system/clocksource/clocksource0/current_clocksource"),
        "cpu_governor": read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "sysctl": sysctl_checks(),
    })
}

/// A gap between two clock reads of a spinning thread longer than this is time the thread did
/// not run (a read takes tens of nanoseconds).
const STALL_NS: u64 = 20_000;

/// What a thread spinning on one core saw of the time it did not run: the machine taking the
/// core away (a hypervisor, interrupts, other threads). Benchmarks run before the grid
/// (`--stall-probe`), so that tail latencies of the same size are not taken for the router's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Stalls {
    /// The core (OS index).
    pub core: usize,
    /// How long the thread spun (s).
    pub secs: f64,
    /// Gaps longer than 20 µs.
    pub over_20us: u64,
    /// Gaps longer than 100 µs.
    pub over_100us: u64,
    /// Gaps longer than 500 µs.
    pub over_500us: u64,
    /// The longest gap (ms).
    pub max_ms: f64,
    /// The share of the time lost in gaps over 20 µs.
    pub lost_share: f64,
}

impl Stalls {
    /// Counts one gap between clock reads (ns).
    fn gap(&mut self, ns: u64, lost_ns: &mut u64) {
        if ns <= STALL_NS {
            return;
        }
        self.over_20us += 1;
        self.over_100us += u64::from(ns > 100_000);
        self.over_500us += u64::from(ns > 500_000);
        self.max_ms = self.max_ms.max(ns as f64 / 1e6);
        *lost_ns += ns;
    }

    /// Spins on the calling thread for `span`, reading the clock.
    fn spin(core: usize, span: std::time::Duration) -> Stalls {
        let mut st = Stalls { core, ..Stalls::default() };
        let start = crate::clock::now_ns();
        let end = start + span.as_nanos() as u64;
        let (mut prev, mut lost) = (start, 0);
        while prev < end {
            let now = crate::clock::now_ns().max(prev);
            st.gap(now.saturating_sub(prev), &mut lost);
            prev = now;
        }
        st.secs = (prev - start) as f64 / 1e9;
        st.lost_share = if prev > start { lost as f64 / (prev - start) as f64 } else { 0.0 };
        st
    }

    /// Gaps over 100 µs per second.
    pub fn per_sec_over_100us(&self) -> f64 {
        if self.secs > 0.0 {
            self.over_100us as f64 / self.secs
        } else {
            0.0
        }
    }
}

/// Spins a thread pinned to each of `cores` for `span`, all at once, and says what each saw
/// of the time it did not run. A core that cannot be pinned to is measured unpinned.
pub fn probe_stalls(cores: &[usize], span: std::time::Duration) -> Vec<Stalls> {
    let start = std::sync::Barrier::new(cores.len());
    std::thread::scope(|scope| {
        let spinners: Vec<_> = cores
            .iter()
            .map(|&core| {
                let start = &start;
                scope.spawn(move || {
                    core_affinity::set_for_current(core_affinity::CoreId { id: core });
                    start.wait();
                    Stalls::spin(core, span)
                })
            })
            .collect();
        spinners.into_iter().filter_map(|t| t.join().ok()).collect()
    })
}

/// [`facts`], with what [`probe_stalls`] found under `stalls` (when it ran).
pub fn facts_with_stalls(stalls: &[Stalls]) -> serde_json::Value {
    let mut facts = facts();
    if !stalls.is_empty() {
        facts["stalls"] = serde_json::to_value(stalls).unwrap_or_default();
    }
    facts
}

/// One line on what [`probe_stalls`] found, naming the core that lost the most; `None` for no
/// probe.
pub fn describe_stalls(stalls: &[Stalls]) -> Option<String> {
    let worst = stalls.iter().max_by(|a, b| a.lost_share.total_cmp(&b.lost_share))?;
    let longest = stalls.iter().map(|s| s.max_ms).fold(0.0, f64::max);
    let over_100: f64 = stalls.iter().map(Stalls::per_sec_over_100us).sum();
    let over_500: f64 = stalls.iter().map(|s| s.over_500us as f64 / s.secs.max(1e-9)).sum();
    Some(format!(
        "a thread spinning on each core ({}) lost up to {:.2} % of its time (core {}); gaps over 100 µs {:.1}/s, over 500 µs {:.1}/s (cores together), longest {:.2} ms",
        stalls.iter().map(|s| s.core.to_string()).collect::<Vec<_>>().join(","),
        worst.lost_share * 100.0,
        worst.core,
        over_100,
        over_500,
        longest
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_parses_with_a_reason_per_key() {
        // Proves every key of the bundled profile has a reason, and ceilings are marked.
        let keys = profile();
        assert!(keys.len() >= 10);
        for k in &keys {
            assert!(!k.why.is_empty(), "{} has no reason", k.key);
            assert!(!k.recommended.is_empty());
        }
        assert!(keys.iter().any(|k| k.key == "fs.file-max" && k.at_least));
        assert!(keys.iter().any(|k| k.key == "vm.swappiness" && !k.at_least));
        let checks = sysctl_checks();
        assert_eq!(checks.len(), keys.len());
        assert!(checks
            .iter()
            .all(|c| ["ok", "ok (higher)", "differs", "absent"].contains(&c.status)));
    }

    #[test]
    fn gaps_are_counted_by_size_and_the_lost_time_summed() {
        // Proves the stall accounting: gaps up to 20 µs are the clock read itself; longer ones
        // count in each band they exceed, and their time is lost.
        let mut st = Stalls::default();
        let mut lost = 0;
        for ns in [50, 20_000, 20_001, 150_000, 600_000, 2_000_000] {
            st.gap(ns, &mut lost);
        }
        assert_eq!((st.over_20us, st.over_100us, st.over_500us), (4, 3, 2));
        assert_eq!(lost, 20_001 + 150_000 + 600_000 + 2_000_000);
        assert_eq!(st.max_ms, 2.0);
    }

    #[test]
    fn a_core_shared_with_a_busy_thread_shows_as_stalls() {
        // Proves the probe sees time its thread did not run: with another thread spinning on
        // the same core, the scheduler takes turns between them, and the probe loses a large
        // share of its time in long gaps.
        let span = std::time::Duration::from_millis(300);
        let stop = std::sync::atomic::AtomicBool::new(false);
        let found = std::thread::scope(|scope| {
            scope.spawn(|| {
                core_affinity::set_for_current(core_affinity::CoreId { id: 0 });
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            });
            let found = probe_stalls(&[0], span);
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            found
        });
        assert_eq!(found.len(), 1);
        let st = &found[0];
        assert_eq!(st.core, 0);
        assert!(st.secs >= 0.3, "{st:?}");
        assert!(st.lost_share > 0.2 && st.lost_share < 1.0, "{st:?}");
        assert!(st.over_500us >= 1 && st.max_ms >= 0.5, "{st:?}");
        let line = describe_stalls(&found).unwrap();
        assert!(line.contains("core 0") && line.contains("over 500 µs"), "{line}");
        assert_eq!(describe_stalls(&[]), None);
    }
}

/// The CPU time every process on the machine has used, this process's own, and that of the
/// target's processes when the target runs on this machine, at one instant: two of them tell
/// how busy *other* processes kept the machine in between (a benchmark run on a busy machine
/// measures the machine, not the router), and how much the local target used. The resident
/// memory of this process and of the target's is read at the same instant.
#[derive(Debug, Clone, Copy)]
pub struct CpuTimes {
    /// This process's resident memory, bytes.
    pub rss: u64,
    /// The target's processes' resident memory, bytes (`None` where none could be read: no
    /// target here, or its processes ended).
    pub target_rss: Option<u64>,
    /// Non-idle time of all CPUs (user, nice, system, irq, softirq, steal), in ticks.
    all_busy: u64,
    /// This process's user + system time, in ticks.
    own: u64,
    /// The target's processes' user + system time, in ticks (0 with none).
    target: u64,
    /// CPUs counted in `/proc/stat`.
    cpus: u64,
    at_ns: u64,
}

/// Resident memory in bytes from `/proc/<which>/status` (`VmRSS`, in KiB): a process
/// (`self`, a pid).
pub(crate) fn resident_bytes(which: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{which}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024)
}

/// User + system time in ticks (100 a second) from `/proc/<which>/stat`: a process (`self`,
/// a pid) or a thread (`self/task/<tid>`).
pub(crate) fn process_ticks(which: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{which}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is field 3, utime 14.
    let after = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

impl CpuTimes {
    /// Reads `/proc/stat` and `/proc/self/stat`; `None` where they cannot be read.
    pub fn now() -> Option<CpuTimes> {
        CpuTimes::with_target(&[])
    }

    /// As [`CpuTimes::now`], with the CPU time and memory of the target's processes
    /// `target_pids` (found by [`listeners`]); one that ended counts nothing.
    pub fn with_target(target_pids: &[u32]) -> Option<CpuTimes> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let total = stat.lines().next()?.strip_prefix("cpu ")?;
        let v: Vec<u64> = total.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        // user nice system idle iowait irq softirq steal ...
        let all_busy = v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)? + v.get(7)?;
        let cpus = stat.lines().filter(|l| l.starts_with("cpu") && !l.starts_with("cpu ")).count();
        let own = process_ticks("self")?;
        let target = target_pids.iter().filter_map(|p| process_ticks(&p.to_string())).sum();
        let at_ns = crate::clock::now_ns();
        let rss = resident_bytes("self").unwrap_or(0);
        let read: Vec<u64> =
            target_pids.iter().filter_map(|p| resident_bytes(&p.to_string())).collect();
        let target_rss = (!read.is_empty()).then(|| read.iter().sum());
        Some(CpuTimes { rss, target_rss, all_busy, own, target, cpus: cpus.max(1) as u64, at_ns })
    }

    /// Share (0–1) of the machine's CPUs that other processes (and the hypervisor's steal)
    /// used between `earlier` and `self`: neither this process nor the target's.
    pub fn others_share_since(&self, earlier: &CpuTimes) -> f64 {
        // /proc counts in USER_HZ ticks, 100 per second on Linux.
        // Each count moves in whole ticks and is read at its own instant: up to a tick per CPU
        // (and one for this process) may show as others' that is nobody's. Given up, so that a
        // run of a few ticks (one that failed at once) does not read as a machine taken.
        let slack = self.cpus as i64 + 1;
        let others = self.all_busy.saturating_sub(earlier.all_busy) as i64
            - self.own.saturating_sub(earlier.own) as i64
            - self.target.saturating_sub(earlier.target) as i64
            - slack;
        let wall_ticks = self.secs_since(earlier) * 100.0;
        if wall_ticks <= 0.0 {
            return 0.0;
        }
        (others.max(0) as f64 / (wall_ticks * self.cpus as f64)).min(1.0)
    }

    /// Seconds from `earlier` to `self`.
    pub fn secs_since(&self, earlier: &CpuTimes) -> f64 {
        self.at_ns.saturating_sub(earlier.at_ns) as f64 / 1e9
    }

    /// Cores' worth of CPU the target's processes used between `earlier` and `self` (1.0: one
    /// core all the time).
    pub fn target_cores_since(&self, earlier: &CpuTimes) -> f64 {
        let wall_ticks = self.secs_since(earlier) * 100.0;
        if wall_ticks <= 0.0 {
            return 0.0;
        }
        self.target.saturating_sub(earlier.target) as f64 / wall_ticks
    }
}

/// The cores that threads of the processes `pids` are pinned to, one core a thread (a router's
/// shards, a server under `taskset -c N`). Threads free to move are left out: where they run is
/// the scheduler's choice. Sorted, without repeats; empty where `/proc` does not show them.
pub fn pinned_cores(pids: &[u32]) -> Vec<usize> {
    let mut cores = Vec::new();
    for pid in pids {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { continue };
        for task in tasks.flatten() {
            if let Ok(status) = std::fs::read_to_string(task.path().join("status")) {
                cores.extend(pinned_core(&status));
            }
        }
    }
    cores.sort_unstable();
    cores.dedup();
    cores
}

/// The one core a thread may run on, from its `/proc/<pid>/task/<tid>/status`.
fn pinned_core(status: &str) -> Option<usize> {
    let list = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?;
    match crate::placement::parse_cores(list.trim()).ok()?.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

/// The processes of this machine (other than this one) that listen on `addr`: its port, on its
/// address or on every address. A target found there is on this machine, and its CPU is the
/// target's, not other processes'. Empty when none is, or when `/proc` does not show it (the
/// processes of another user, without privileges).
pub fn listeners(addr: std::net::SocketAddr) -> Vec<u32> {
    // An address of this machine is one a socket can be bound to.
    if std::net::UdpSocket::bind((addr.ip(), 0)).is_err() {
        return Vec::new();
    }
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            inodes.extend(text.lines().skip(1).filter_map(|l| listening_inode(l, addr)));
        }
    }
    if inodes.is_empty() {
        return Vec::new();
    }
    let own = std::process::id();
    let Ok(procs) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut pids: Vec<u32> = procs
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != own)
        .filter(|pid| {
            let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return false };
            fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok()).any(|link| {
                let link = link.to_string_lossy();
                let inode = link.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']'));
                inode.and_then(|i| i.parse::<u64>().ok()).is_some_and(|i| inodes.contains(&i))
            })
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// The inode of the socket on one line of `/proc/net/tcp{,6}`, when it listens on `addr`.
fn listening_inode(line: &str, addr: std::net::SocketAddr) -> Option<u64> {
    use std::net::IpAddr;
    let f: Vec<&str> = line.split_whitespace().collect();
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
    let (local, state, inode) = (f.get(1)?, f.get(3)?, f.get(9)?);
    if *state != "0A" {
        return None; // not LISTEN
    }
    let (ip_hex, port_hex) = local.split_once(':')?;
    if u16::from_str_radix(port_hex, 16).ok()? != addr.port() {
        return None;
    }
    // The kernel prints the address as 32-bit words in host (little-endian) order.
    let words: Vec<u32> = (0..ip_hex.len() / 8)
        .map(|i| u32::from_str_radix(&ip_hex[i * 8..i * 8 + 8], 16).map(u32::from_be))
        .collect::<Result<_, _>>()
        .ok()?;
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
    let ip = match bytes.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?),
        16 => IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?),
        _ => return None,
    };
    let mapped = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let ip = mapped(ip);
    (ip.is_unspecified() || ip == mapped(addr.ip())).then(|| inode.parse().ok())?
}

/// Other processes busier than this share of the machine during a run make its figures suspect.
pub const BUSY_MACHINE_SHARE: f64 = 0.10;

#[cfg(test)]
mod cpu_times_tests {
    use super::*;

    #[test]
    fn a_listening_socket_is_read_from_the_kernels_tables() {
        // Proves the parse of /proc/net/tcp{,6}: a LISTEN line gives its inode when its port
        // matches and its address is the target's, any address, or the target's IPv4 mapped
        // into IPv6; another port, another address or another state gives nothing.
        let v4 = "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0";
        let any = "   1: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 77 1 0000000000000000 100 0 0 10 0";
        let open = "   2: 0100007F:1F90 0100007F:8D95 01 00000000:00000000 00:00000000 00000000     0        0 5 1 0000000000000000 100 0 0 10 0";
        let v6 = "   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 606 1 0000000000000000 100 0 0 10 0";
        let mapped = "   1: 0000000000000000FFFF00000100007F:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 707 1 0000000000000000 100 0 0 10 0";
        let at = |a: &str| a.parse::<std::net::SocketAddr>().unwrap();
        assert_eq!(listening_inode(v4, at("127.0.0.1:8080")), Some(4242));
        assert_eq!(listening_inode(v4, at("127.0.0.2:8080")), None);
        assert_eq!(listening_inode(v4, at("127.0.0.1:8081")), None);
        assert_eq!(listening_inode(any, at("10.1.2.3:8080")), Some(77));
        assert_eq!(listening_inode(open, at("127.0.0.1:8080")), None);
        assert_eq!(listening_inode(v6, at("[::1]:8080")), Some(606));
        assert_eq!(listening_inode(v6, at("127.0.0.1:8080")), None);
        assert_eq!(listening_inode(mapped, at("127.0.0.1:8080")), Some(707));
        assert_eq!(listening_inode("  sl  local_address rem_address", at("127.0.0.1:80")), None);
    }

    #[test]
    fn a_listener_of_this_process_or_of_another_machine_is_not_a_local_target() {
        // Proves `listeners` leaves this process out (the embedded router is our own CPU) and
        // finds nothing for an address that is not this machine's (TEST-NET-1).
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert_eq!(listeners(l.local_addr().unwrap()), Vec::<u32>::new());
        let port = l.local_addr().unwrap().port();
        assert_eq!(
            listeners(std::net::SocketAddr::from(([192, 0, 2, 1], port))),
            Vec::<u32>::new()
        );
    }

    #[test]
    fn a_thread_counts_as_pinned_only_to_a_single_core() {
        // Proves the parse of a thread's status: one allowed core is a pin, a list or a range
        // is a thread the scheduler moves; and that this process's threads are read from /proc
        // (a thread pinned to core 0 shows up).
        let status = |list: &str| {
            format!("Name:\tx\nCpus_allowed:\tff\nCpus_allowed_list:\t{list}\nMems_allowed:\t1\n")
        };
        assert_eq!(pinned_core(&status("3")), Some(3));
        assert_eq!(pinned_core(&status("0-1")), None);
        assert_eq!(pinned_core(&status("0,2")), None);
        assert_eq!(pinned_core("Name:\tx\n"), None);
        let me = std::process::id();
        let core = std::thread::spawn(move || {
            assert!(core_affinity::set_for_current(core_affinity::CoreId { id: 0 }));
            pinned_cores(&[me])
        })
        .join()
        .unwrap();
        assert!(core.contains(&0), "a thread pinned to core 0 was not seen: {core:?}");
    }

    #[test]
    fn resident_memory_is_read_for_this_process_and_a_target() {
        // Proves the memory read beside the CPU times: this process's resident bytes, a
        // target's (here this process again) the same within what the reads between took,
        // and none for a target whose process is gone.
        let own = resident_bytes("self").expect("/proc/self/status has VmRSS");
        assert!(own > 1 << 20, "{own}");
        let t = CpuTimes::with_target(&[std::process::id()]).unwrap();
        let target = t.target_rss.expect("a target's memory");
        assert!(target.abs_diff(t.rss) < 16 << 20, "{target} against {}", t.rss);
        let gone = CpuTimes::with_target(&[u32::MAX]).unwrap();
        assert_eq!(gone.target_rss, None);
        assert_eq!(CpuTimes::now().unwrap().target_rss, None);
    }

    #[test]
    fn other_processes_share_leaves_our_own_time_out() {
        // Proves the arithmetic: over one second on 2 CPUs (200 ticks), 150 busy ticks of which
        // 100 were this process's own leave 50 to others, a quarter of the machine; our own time
        // never counts, nor a local target's (counted as its cores instead), and /proc is
        // readable here.
        let with = |all_busy, own, target, s: u64| CpuTimes {
            rss: 0,
            target_rss: None,
            all_busy,
            own,
            target,
            cpus: 2,
            at_ns: s * 1_000_000_000,
        };
        let at = |all_busy, own, s: u64| with(all_busy, own, 0, s);
        // Less the 3 ticks (a tick per CPU, one for this process) the counts' rounding may add.
        assert!((at(1150, 200, 1).others_share_since(&at(1000, 100, 0)) - 0.235).abs() < 1e-9);
        assert_eq!(at(1100, 200, 1).others_share_since(&at(1000, 100, 0)), 0.0);
        assert_eq!(at(1000, 100, 0).others_share_since(&at(1000, 100, 0)), 0.0, "no time passed");
        // A local target's 40 ticks are its own, not others': 10 left to others, 0.4 cores.
        let (t0, t1) = (with(1000, 100, 500, 0), with(1150, 200, 540, 1));
        assert!((t1.others_share_since(&t0) - 0.035).abs() < 1e-9);
        // A run of 20 ms that failed at once: 2 ticks of rounding are nobody's.
        let ms = |all_busy, own, n: u64| CpuTimes { at_ns: n * 1_000_000, ..at(all_busy, own, 0) };
        assert_eq!(ms(1004, 102, 20).others_share_since(&ms(1000, 100, 0)), 0.0);
        assert!((t1.target_cores_since(&t0) - 0.4).abs() < 1e-9);
        let (a, b) = (CpuTimes::now().expect("/proc is readable"), CpuTimes::now().unwrap());
        assert!((0.0..=1.0).contains(&b.others_share_since(&a)));
    }
}
