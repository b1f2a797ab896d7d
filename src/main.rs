//! The `a2a-bench` binary.

use clap::Parser;

/// a2a-bench: benchmark engine for agent-to-agent messaging.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
    println!(
        "a2a-bench {}: wire protocol v{}",
        env!("CARGO_PKG_VERSION"),
        a2a_bench::wire::VERSION
    );
}
