//! Integration tests, one binary, a module per area. Everything runs on 127.0.0.1 with port 0,
//! waits on readiness signals rather than sleeps, and is bounded in time.

mod loadgen;
mod router;
mod support;
mod wire;
