//! Facts about the machine, for every report's `host` section and `a2a-bench sysinfo`.

use serde_json::{json, Value};

use crate::placement::Machine;

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

/// The CPU model name from /proc/cpuinfo.
pub fn cpu_model() -> Option<String> {
    let info = read("/proc/cpuinfo")?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// Total memory in bytes, from /proc/meminfo.
pub fn memory_bytes() -> Option<u64> {
    let info = read("/proc/meminfo")?;
    let kb: u64 = info
        .lines()
        .find(|l| l.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// The facts every report carries.
pub fn facts() -> Value {
    let m = Machine::detect();
    json!({
        "hostname": read("/proc/sys/kernel/hostname"),
        "kernel": read("/proc/sys/kernel/osrelease"),
        "cpu_model": cpu_model(),
        "logical_cores": m.cores.len(),
        "numa_nodes": m.nodes(),
        "numa_map_from_hwloc": m.from_hwloc,
        "memory_bytes": memory_bytes(),
    })
}
