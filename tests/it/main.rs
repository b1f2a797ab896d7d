//! Integration tests, one binary, a module per area. Everything runs on 127.0.0.1 with port 0,
//! waits on readiness signals rather than sleeps, and is bounded in time.

mod capacity;
mod fuzz;
mod honesty;
mod hostile;
mod http;
mod json;
mod loadgen;
mod multihost;
mod router;
mod support;
mod targets;
mod wire;
mod workloads;

/// The layers, lowest first; a module may name only modules of its own layer or below.
const LAYERS: &[&[&str]] = &[
    &["wire", "grpc", "clock", "metrics", "shape", "testing"],
    &["transport", "placement", "tls"],
    &["client", "host"],
    &["route"],
    &["router", "baseline", "targets"],
    &["loadgen"],
    &["routers", "report"],
    &["cli"],
];

/// Every `crate::name` a source file or folder of `src/` uses.
fn crate_paths(path: &std::path::Path) -> Vec<(String, String)> {
    let mut found = Vec::new();
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            found.extend(crate_paths(&entry.unwrap().path()));
        }
        return found;
    }
    let text = std::fs::read_to_string(path).unwrap();
    for (at, _) in text.match_indices("crate::") {
        let rest = &text[at + "crate::".len()..];
        let name: String =
            rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
        found.push((path.display().to_string(), name));
    }
    found
}

#[test]
fn a_lower_layer_never_imports_a_higher_one() {
    // Proves the layering of docs/ARCHITECTURE.md by imports: no module names a module of a
    // higher layer (the load generator never names a router, the baseline never the load
    // generator, the routing core nothing above it).
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src"));
    let layer = |name: &str| LAYERS.iter().position(|l| l.contains(&name));
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        let module = path.file_stem().unwrap().to_string_lossy().into_owned();
        if matches!(module.as_str(), "lib" | "main" | "build") {
            continue;
        }
        let own = layer(&module).unwrap_or_else(|| panic!("{module} is in no layer"));
        for (file, used) in crate_paths(&path) {
            if used.is_empty() {
                continue; // `crate::{…}` groups are not used in this code base
            }
            let theirs = layer(&used).unwrap_or_else(|| panic!("{file}: {used} is in no layer"));
            assert!(theirs <= own, "{file} ({module}) names crate::{used}, a higher layer");
        }
    }
}

#[test]
fn layer_walls_hold() {
    // Proves the walls you can grep: the routing core names no runtime, the io_uring router never
    // names tokio, the tokio baseline never names glommio, and the router's data path has no Mutex.
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/src/");
    fn files(path: std::path::PathBuf, out: &mut Vec<std::path::PathBuf>) {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                files(entry.unwrap().path(), out);
            }
        } else {
            out.push(path);
        }
    }
    let check = |dir: &str, banned: &[&str]| {
        let mut all = Vec::new();
        files(format!("{root}{dir}").into(), &mut all);
        for path in all {
            let text = std::fs::read_to_string(&path).unwrap().to_lowercase();
            for word in banned {
                assert!(!text.contains(word), "{} names {word}", path.display());
            }
        }
    };
    check("route", &["glommio", "tokio", "mutex", "rwlock"]);
    check("router", &["tokio", "mutex", "rwlock"]);
    check("baseline", &["glommio"]);
}
