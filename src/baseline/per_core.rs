//! The sharded design on tokio: one pinned `current_thread` runtime per core running the same
//! runtime-free shards through the same shell as the thread-per-core router. Comparing the two
//! isolates the runtime (epoll and tokio's scheduler vs io_uring and its executor); comparing this
//! with the
//! shared-state baseline isolates the architecture.

use std::future::Future;
use std::io;
use std::net::TcpStream;
use std::time::Duration;

use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

use crate::placement::{self, Slot};
use crate::route::shell::{ExecutorOptions, Joiner, Runtime, ShardMain};

/// Binds the shell to tokio: a `current_thread` runtime and a `LocalSet` per shard.
pub struct TokioPerCore;

impl Runtime for TokioPerCore {
    type Stream = Compat<tokio::net::TcpStream>;
    const NAME: &'static str = "tokio-per-core";

    fn spawn(fut: impl Future<Output = ()> + 'static) {
        drop(tokio::task::spawn_local(fut));
    }

    fn sleep(d: Duration) -> impl Future<Output = ()> {
        tokio::time::sleep(d)
    }

    fn adopt(stream: TcpStream) -> io::Result<Self::Stream> {
        Ok(tokio::net::TcpStream::from_std(stream)?.compat())
    }

    fn launch(
        name: String,
        slot: Slot,
        _opts: ExecutorOptions,
        main: ShardMain,
    ) -> io::Result<Joiner> {
        let handle = std::thread::Builder::new().name(name).spawn(move || {
            if let Some(warning) = placement::pin_current_thread(slot) {
                eprintln!("warning: {warning}");
            }
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            let local = tokio::task::LocalSet::new();
            Some(local.block_on(&rt, main()))
        })?;
        Ok(Box::new(move || handle.join().ok().flatten()))
    }
}
