//! a2a-bench: a benchmark engine for agent-to-agent (A2A) messaging.
//!
//! # Layout
//! Modules are layers, lowest first; each one's `//!` says what it owns and the invariant it
//! keeps.
//! - [`wire`]: protocol v1, sans-IO — frames, envelopes, control messages, LZ4, buffer pool.
//! - [`client`]: a small blocking client of the protocol (tests, tools).
//! - [`clock`]: `CLOCK_MONOTONIC` nanoseconds, the one clock of every timestamp.
//! - [`placement`]: cores, NUMA nodes, the router/agent split, pinning.
//! - [`route`]: the routing core (runtime-free `Shard`) and the generic async shell around it.
//! - [`router`]: the thread-per-core router on glommio.
//! - [`baseline`]: the tokio routers it is compared with (shared state, and per-core).
//! - [`targets`]: reference HTTP targets (an echo A2A agent, an echo MCP server, a registry).
//! - [`metrics`]: HdrHistograms per core, merged.
//! - [`loadgen`]: virtual agents: the one agent loop, its protocol adapters, its glommio shell.
//! - [`routers`]: which router — one [`routers::RouterKind`] to start any of the three.
//! - [`report`]: the seed's JSON schema, extended; the text table.
//! - [`host`]: machine facts for reports and `sysinfo`.
//! - [`cli`]: the command line: flags → validated configs → run.

pub mod baseline;
pub mod cli;
pub mod client;
pub mod clock;
pub mod grpc;
pub mod host;
pub mod loadgen;
pub mod metrics;
pub mod placement;
pub mod report;
pub mod route;
pub mod router;
pub mod routers;
mod shape;
pub mod targets;
#[cfg(test)]
mod testing;
pub mod tls;
pub mod transport;
pub mod wire;
