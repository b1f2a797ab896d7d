//! Replays the committed fuzz corpus (`tests/fuzz/corpus/<target>/`) through the same entry
//! points `make fuzz` fuzzes, so every input that once found a bug, or widened coverage, stays a
//! regression test.

use std::path::PathBuf;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/corpus").join(target);
    let mut inputs = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| run(&bytes));
        assert!(outcome.is_ok(), "{target}: {} panics", path.display());
        inputs += 1;
    }
    // An empty or missing corpus would make this test pass without testing anything.
    assert!(inputs >= 3, "{target}: only {inputs} corpus inputs in {}", dir.display());
}

#[test]
fn the_frame_decoder_survives_its_corpus() {
    replay("frames", a2a_bench::route::fuzz::frames);
}

#[test]
fn message_decoding_survives_its_corpus() {
    replay("messages", a2a_bench::route::fuzz::messages);
}

#[test]
fn the_json_translator_survives_its_corpus() {
    replay("json", a2a_bench::route::fuzz::json);
}

#[test]
fn connection_sniffing_survives_its_corpus() {
    replay("connection", a2a_bench::route::fuzz::connection);
}

#[test]
fn the_http_client_survives_its_corpus() {
    replay("responses", a2a_bench::loadgen::http::fuzz::responses);
}
