//! Win notices: the winner's `nurl` is fired after the auction, off the hot path.
//!
//! The handler only `try_send`s the URL into a bounded queue; one background
//! task drains it and issues the GETs with bounded concurrency. A full queue
//! drops the notice and counts it, rather than making an auction wait.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::{mpsc, Semaphore};

/// Queue length: about a second of wins at a high rate; beyond it notices are dropped.
const QUEUE: usize = 16_384;
/// Notices in flight at once, so a slow notice endpoint cannot pile up sockets.
const CONCURRENCY: usize = 256;
/// A notice that takes longer than this is abandoned: the DSP's tracking, not ours.
const NOTICE_TIMEOUT: Duration = Duration::from_secs(2);

/// Counters of the win-notice queue.
#[derive(Debug, Default)]
pub struct NoticeCounters {
    /// Notices answered with a 2xx.
    pub sent: AtomicU64,
    /// Notices that failed (error, timeout, non-2xx).
    pub failed: AtomicU64,
    /// Notices dropped because the queue was full.
    pub dropped: AtomicU64,
}

/// Handle to the win-notice queue.
#[derive(Debug, Clone)]
pub struct Notifier {
    tx: mpsc::Sender<String>,
    /// Shared with the background task.
    pub counters: Arc<NoticeCounters>,
}

impl Notifier {
    /// Starts the background task on the current runtime.
    pub fn spawn() -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let counters = Arc::new(NoticeCounters::default());
        tokio::spawn(run(rx, counters.clone()));
        Self { tx, counters }
    }

    /// Queues a notice; never waits.
    pub fn notify(&self, url: String) {
        if self.tx.try_send(url).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn run(mut rx: mpsc::Receiver<String>, counters: Arc<NoticeCounters>) {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .wrap_connector(HttpConnector::new());
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    while let Some(url) = rx.recv().await {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let client = client.clone();
        let counters = counters.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let ok = match url.parse::<http::Uri>() {
                Ok(uri) => {
                    let call = async {
                        let resp = client.get(uri).await.ok()?;
                        let ok = resp.status().is_success();
                        // Drain the body so the connection can be reused.
                        resp.into_body().collect().await.ok()?;
                        Some(ok)
                    };
                    matches!(
                        tokio::time::timeout(NOTICE_TIMEOUT, call).await,
                        Ok(Some(true))
                    )
                }
                Err(_) => false,
            };
            let counter = if ok { &counters.sent } else { &counters.failed };
            counter.fetch_add(1, Ordering::Relaxed);
            if !ok {
                tracing::debug!(%url, "win notice failed");
            }
        });
    }
}
