//! Integration tests, one binary, a module per area. Everything runs on 127.0.0.1 with port 0,
//! waits on readiness signals rather than sleeps, and is bounded in time.

mod honesty;
mod json;
mod loadgen;
mod router;
mod support;
mod wire;

#[test]
fn layer_walls_hold() {
    // Proves the walls you can grep: the routing core names no runtime, the io_uring router never
    // names tokio, the tokio baseline never names glommio, and the router's data path has no Mutex.
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/src/");
    let check = |dir: &str, banned: &[&str]| {
        for entry in std::fs::read_dir(format!("{root}{dir}")).unwrap() {
            let path = entry.unwrap().path();
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
