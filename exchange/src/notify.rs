//! Win notices: the winner's `nurl` is fired after the auction, off the hot path.
//!
//! The handler only `try_send`s the URL into a bounded queue; one background
//! task drains it and issues the GETs with bounded concurrency. A full queue
//! drops the notice and counts it, rather than making an auction wait.
//!
//! A nurl is a URL a bidder chose, fetched from inside the exchange's
//! network: it goes through the same [`EndpointPolicy`] as endpoints
//! registered through the admin API (`[registry] allowed_networks`,
//! `allowed_hosts`, `deny_private_networks`). Only `http` and `https` are
//! fetched, and the check happens in the connector ([`guard`]), after DNS,
//! so a name that resolves to a private address is refused too. Responses
//! are read up to [`MAX_NOTICE_BODY`] bytes and never kept. Every notice
//! ends in exactly one `rtb_win_notices_total{result}` counter.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::sync::{mpsc, Semaphore};

use crate::config::{EndpointPolicy, RegistryConfig};
use crate::guard::{Blocked, GuardedConnector};
use crate::metrics::NoticeLabel;

/// Queue length: about a second of wins at a high rate; beyond it notices are dropped.
const QUEUE: usize = 16_384;
/// Notices in flight at once, so a slow notice endpoint cannot pile up sockets.
const CONCURRENCY: usize = 256;
/// A notice that takes longer than this is abandoned: the DSP's tracking, not ours.
const NOTICE_TIMEOUT: Duration = Duration::from_secs(2);
/// Most bytes of a notice's response body that are read (and thrown away).
/// A notice answer is a pixel or "ok"; past this the connection is dropped
/// rather than drained, so a DSP (or whatever a nurl points at) streaming
/// gigabytes costs at most this much reading per notice.
pub const MAX_NOTICE_BODY: usize = 64 * 1024;
/// Longest URL written to the debug log (nurls are bidder-controlled).
const LOGGED_URL_CHARS: usize = 256;

/// What became of one win notice: the `result` label of
/// `rtb_win_notices_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeResult {
    /// Answered with a 2xx.
    Sent,
    /// Failed: connection error, timeout or non-2xx.
    Failed,
    /// Dropped because the queue was full.
    Dropped,
    /// Refused: the host is, or resolves to, a private address and
    /// `deny_private_networks` is set.
    RefusedPrivate,
    /// Refused: the host is outside `allowed_networks` / `allowed_hosts`.
    RefusedNotAllowed,
    /// Refused: a scheme other than `http` or `https`.
    RefusedScheme,
    /// Refused: after macro substitution the nurl is not a URL with a host.
    RefusedInvalidUrl,
}

impl NoticeResult {
    /// Every result, in exposition order.
    pub const ALL: [NoticeResult; 7] = [
        NoticeResult::Sent,
        NoticeResult::Failed,
        NoticeResult::Dropped,
        NoticeResult::RefusedPrivate,
        NoticeResult::RefusedNotAllowed,
        NoticeResult::RefusedScheme,
        NoticeResult::RefusedInvalidUrl,
    ];

    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            NoticeResult::Sent => "sent",
            NoticeResult::Failed => "failed",
            NoticeResult::Dropped => "dropped",
            NoticeResult::RefusedPrivate => "refused_private",
            NoticeResult::RefusedNotAllowed => "refused_not_allowed",
            NoticeResult::RefusedScheme => "refused_scheme",
            NoticeResult::RefusedInvalidUrl => "refused_invalid_url",
        }
    }

    fn of(b: &Blocked) -> Self {
        match b {
            Blocked::Scheme(_) => NoticeResult::RefusedScheme,
            Blocked::NoHost => NoticeResult::RefusedInvalidUrl,
            Blocked::Policy(r) if r.is_private() => NoticeResult::RefusedPrivate,
            Blocked::Policy(_) => NoticeResult::RefusedNotAllowed,
        }
    }
}

/// Counters of the win-notice queue, one per [`NoticeResult`].
#[derive(Debug)]
pub struct NoticeCounters {
    by_result: [Counter; NoticeResult::ALL.len()],
}

impl NoticeCounters {
    /// Counters registered in `family` (`rtb_win_notices_total`), every
    /// result present from the start (at 0).
    pub fn new(family: &Family<NoticeLabel, Counter>) -> Self {
        Self {
            by_result: NoticeResult::ALL.map(|r| {
                family
                    .get_or_create(&NoticeLabel { result: r.name() })
                    .clone()
            }),
        }
    }

    /// Notices that ended in `r` so far.
    pub fn get(&self, r: NoticeResult) -> u64 {
        self.by_result[r as usize].get()
    }

    fn inc(&self, r: NoticeResult) {
        self.by_result[r as usize].inc();
    }
}

/// Handle to the win-notice queue.
#[derive(Debug, Clone)]
pub struct Notifier {
    tx: mpsc::Sender<String>,
    /// Shared with the background task.
    pub counters: Arc<NoticeCounters>,
}

impl Notifier {
    /// Starts the background task on the current runtime. Notices are
    /// fetched only where `registry`'s endpoint policy allows, and counted in
    /// `family` (the exchange's `rtb_win_notices_total`). A policy that does
    /// not build (a config that skipped validation) refuses every notice.
    pub fn spawn(registry: &RegistryConfig, family: &Family<NoticeLabel, Counter>) -> Self {
        let policy = EndpointPolicy::new(registry).unwrap_or_else(|(key, message)| {
            tracing::error!(%key, %message, "bad endpoint policy: win notices are all refused");
            EndpointPolicy::refuse_all()
        });
        let (tx, rx) = mpsc::channel(QUEUE);
        let counters = Arc::new(NoticeCounters::new(family));
        tokio::spawn(run(rx, Arc::new(policy), counters.clone()));
        Self { tx, counters }
    }

    /// Queues a notice; never waits.
    pub fn notify(&self, url: String) {
        if self.tx.try_send(url).is_err() {
            self.counters.inc(NoticeResult::Dropped);
        }
    }
}

async fn run(
    mut rx: mpsc::Receiver<String>,
    policy: Arc<EndpointPolicy>,
    counters: Arc<NoticeCounters>,
) {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .wrap_connector(GuardedConnector::new(policy.clone()));
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    while let Some(url) = rx.recv().await {
        // Refusals known from the URL alone take no permit and no task.
        let uri = match url.parse::<http::Uri>() {
            Ok(u) => u,
            Err(e) => {
                finish(&counters, NoticeResult::RefusedInvalidUrl, &url, &e);
                continue;
            }
        };
        if let Err(b) = GuardedConnector::check(&policy, &uri) {
            finish(&counters, NoticeResult::of(&b), &url, &b);
            continue;
        }
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let client = client.clone();
        let counters = counters.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let call = async {
                let resp = client.get(uri).await.map_err(|e| {
                    let r = Blocked::find(&e).map_or(NoticeResult::Failed, NoticeResult::of);
                    (r, e.to_string())
                })?;
                let status = resp.status();
                drain(resp.into_body())
                    .await
                    .map_err(|e| (NoticeResult::Failed, e))?;
                match status.is_success() {
                    true => Ok(()),
                    false => Err((NoticeResult::Failed, format!("status {status}"))),
                }
            };
            let (result, why) = match tokio::time::timeout(NOTICE_TIMEOUT, call).await {
                Ok(Ok(())) => (NoticeResult::Sent, String::new()),
                Ok(Err(failure)) => failure,
                Err(_) => (NoticeResult::Failed, "timed out".to_owned()),
            };
            finish(&counters, result, &url, &why);
        });
    }
}

/// Reads and discards `body` up to [`MAX_NOTICE_BODY`] bytes. A longer
/// body is not an error (the notice arrived): reading stops and dropping
/// the body closes the connection.
async fn drain(mut body: hyper::body::Incoming) -> Result<(), String> {
    let mut read = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        if let Some(data) = frame.data_ref() {
            read = read.saturating_add(data.len());
            if read > MAX_NOTICE_BODY {
                break;
            }
        }
    }
    Ok(())
}

/// Counts the notice and logs anything but a success at debug.
fn finish(counters: &NoticeCounters, r: NoticeResult, url: &str, why: &dyn std::fmt::Display) {
    counters.inc(r);
    if r != NoticeResult::Sent {
        let shown: String = url.chars().take(LOGGED_URL_CHARS).collect();
        tracing::debug!(url = ?shown, result = r.name(), reason = %why, "win notice not sent");
    }
}
