//! a2a-bench: a benchmark engine for agent-to-agent (A2A) messaging.
//!
//! # Layout
//! Modules are layers; each one's `//!` says what it owns and the invariant it keeps.
//! - [`wire`]: protocol v1, sans-IO — frames, envelopes, control messages, LZ4, buffer pool.

pub mod wire;
