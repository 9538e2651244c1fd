//! The auction runtime: admitted auctions run on worker threads of their
//! own, apart from the connections.
//!
//! Past saturation the connection runtime is busy reading requests and
//! refusing the excess (a closed-loop client sends a new request the moment
//! its 503 arrives), and its run queue is long. An admitted auction that ran
//! there would, once woken by its fan-out timer or its last bidder's answer,
//! wait behind that queue and answer after its deadline. On its own runtime
//! only admitted auctions queue, and there are at most as many of them as
//! the admission limit lets in; the bidders' connections are spawned here
//! too (the fan-out clients spawn their connection tasks on the runtime
//! that first uses them). The connection runtime keeps the HTTP front: the
//! body read, the stack's refusals, and writing the answer.
//!
//! An auction whose publisher goes away is not cancelled here: it runs to
//! its end (its wins are recorded and debited, as if answered), since
//! stopping it half way would leave awarded leases unaccounted for.

use std::future::Future;

use tokio::runtime::{Handle, Runtime};

/// Thread name of the auction runtime's workers. Linux keeps the first 15
/// bytes (`rtb-exchange-au`), which start with the prefix that perf/ sums
/// exchange CPU by.
pub const AUCTION_THREAD_NAME: &str = "rtb-exchange-auction";

/// Where admitted auctions run: their own runtime, or the caller's.
#[derive(Debug)]
pub struct AuctionRuntime {
    /// `None` when auctions run on the connection runtime
    /// (`server.auction_runtime = false`).
    runtime: Option<Runtime>,
}

impl AuctionRuntime {
    /// A runtime of `threads` workers (0: one per CPU core), or none when
    /// `separate` is false.
    pub fn start(separate: bool, threads: usize) -> std::io::Result<Self> {
        if !separate {
            return Ok(Self { runtime: None });
        }
        let threads = match threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name(AUCTION_THREAD_NAME)
            .enable_all()
            .build()?;
        Ok(Self {
            runtime: Some(runtime),
        })
    }

    /// The runtime's handle, when auctions have their own.
    pub fn handle(&self) -> Option<&Handle> {
        self.runtime.as_ref().map(Runtime::handle)
    }

    /// Runs `work` on the auction runtime (or in place) and waits for it.
    /// `Err` only when the auction panicked or the runtime is shutting down.
    pub async fn run<F>(
        handle: Option<Handle>,
        work: F,
    ) -> Result<F::Output, tokio::task::JoinError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match handle {
            Some(h) => h.spawn(work).await,
            None => Ok(work.await),
        }
    }
}

impl Drop for AuctionRuntime {
    fn drop(&mut self) {
        // The last owner may be a task of another runtime, where blocking
        // on the workers is not allowed. Shutdown comes after the drain, so
        // nothing admitted is still running.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The auction runs on a worker of its own runtime, not the caller's;
    /// without one it runs in place.
    #[tokio::test(flavor = "current_thread")]
    async fn work_runs_on_the_auction_threads() {
        let rt = AuctionRuntime::start(true, 1).unwrap();
        let name = AuctionRuntime::run(rt.handle().cloned(), async {
            std::thread::current().name().map(str::to_owned)
        })
        .await
        .unwrap();
        assert_eq!(name.as_deref(), Some(AUCTION_THREAD_NAME));
        let inline = AuctionRuntime::run(None, async {
            std::thread::current().name().map(str::to_owned)
        })
        .await
        .unwrap();
        assert_ne!(inline.as_deref(), Some(AUCTION_THREAD_NAME));
        // Dropped inside an async context: must not panic.
        drop(rt);
    }
}
