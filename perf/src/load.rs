//! The open-loop load generator: requests leave on their schedule whether or
//! not earlier ones have returned, and each latency is measured from the
//! request's intended send time, so a stalled target shows up as growing
//! latency instead of a quietly lower send rate (no coordinated omission).
//!
//! Tokio's timer wakes with millisecond granularity, so arrivals closer than
//! that leave in small bursts; since latency counts from the intended time,
//! that slack is charged to the measurement (never hidden), and the report's
//! `max_send_lag_ms` shows when the generator itself fell behind.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context as _};
use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::requests::BodyPool;
use crate::schedule::Schedule;
use crate::stats::{Outcome, Recorder};

/// HTTP version spoken to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpVersion {
    /// HTTP/1.1 over a keep-alive pool that grows with concurrency.
    Http1,
    /// HTTP/2 with prior knowledge (h2c) over a fixed number of connections.
    #[default]
    Http2,
}

impl std::str::FromStr for HttpVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "http1" => Ok(HttpVersion::Http1),
            "http2" => Ok(HttpVersion::Http2),
            other => Err(format!(
                "unknown protocol {other:?} (expected http1 or http2)"
            )),
        }
    }
}

impl std::fmt::Display for HttpVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HttpVersion::Http1 => "http1",
            HttpVersion::Http2 => "http2",
        })
    }
}

/// How to drive the target.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Full URL of the auction endpoint, e.g. `http://127.0.0.1:8080/openrtb2/auction`.
    pub target: String,
    /// HTTP version.
    pub protocol: HttpVersion,
    /// HTTP/2 connections to spread streams over (ignored for HTTP/1.1).
    pub connections: usize,
    /// Per-request client timeout, counted from the actual send.
    pub timeout: Duration,
    /// When requests are meant to leave.
    pub schedule: Schedule,
}

/// Counters a progress display can read while the run goes on.
#[derive(Debug, Default)]
pub struct Live {
    /// Requests sent so far.
    pub sent: AtomicU64,
    /// Requests finished (any outcome) so far.
    pub done: AtomicU64,
    /// Requests that did not end in 200 or 204.
    pub failed: AtomicU64,
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct LoadResult {
    /// Latencies and outcome counts.
    pub recorder: Recorder,
    /// Requests sent.
    pub sent: u64,
    /// Time from the start until the last request was sent.
    pub send_window: Duration,
    /// Time from the start until the last response or timeout.
    pub elapsed: Duration,
    /// Largest delay between a request's intended and actual send, which
    /// shows when the generator itself could not keep up.
    pub max_send_lag: Duration,
}

/// Runs the load against the target and returns what was recorded.
pub async fn run(
    config: &LoadConfig,
    pool: &BodyPool,
    live: Arc<Live>,
) -> anyhow::Result<LoadResult> {
    let uri: Uri = config
        .target
        .parse()
        .with_context(|| format!("bad target url {:?}", config.target))?;
    if uri.scheme_str() != Some("http") || uri.authority().is_none() {
        bail!(
            "target url must be http://host:port/path, got {:?}",
            config.target
        );
    }
    let client = Arc::new(HttpClient::new(config, &uri).await?);
    let recorder = Arc::new(Mutex::new(Recorder::new()));
    let mut tasks = JoinSet::new();
    // A short lead so the first requests are not late by the setup above.
    let start = Instant::now() + Duration::from_millis(5);
    let mut sent = 0u64;
    let mut max_send_lag = Duration::ZERO;
    let mut last_send = start;
    for offset in config.schedule.offsets() {
        let at = start + offset;
        if Instant::now() < at {
            tokio::time::sleep_until(at).await;
        }
        let now = Instant::now();
        max_send_lag = max_send_lag.max(now.saturating_duration_since(at));
        last_send = now;
        let body = pool.body(sent);
        sent += 1;
        live.sent.fetch_add(1, Ordering::Relaxed);
        let (client, recorder, live, uri, timeout) = (
            client.clone(),
            recorder.clone(),
            live.clone(),
            uri.clone(),
            config.timeout,
        );
        tasks.spawn(async move {
            let (outcome, answer) =
                match tokio::time::timeout(timeout, client.send(uri, body)).await {
                    Ok(Ok((status, answer))) => (Outcome::Status(status), Some(answer)),
                    Ok(Err(_)) => (Outcome::Error, None),
                    Err(_) => (Outcome::Timeout, None),
                };
            let latency = Instant::now().saturating_duration_since(at);
            // What was sold, read after the latency is taken.
            let mut sold = crate::stats::Sold::default();
            if outcome == Outcome::Status(200) {
                if let Some(a) = &answer {
                    sold.add_response(a);
                }
            }
            if !matches!(outcome, Outcome::Status(200 | 204)) {
                live.failed.fetch_add(1, Ordering::Relaxed);
            }
            live.done.fetch_add(1, Ordering::Relaxed);
            // A poisoned lock only means another task panicked mid-record; the
            // counts are still worth keeping.
            let mut r = recorder.lock().unwrap_or_else(|e| e.into_inner());
            r.record(offset, latency, outcome);
            r.sold.add(sold);
        });
        // Reap finished tasks so the set does not grow with the run length.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = start.elapsed();
    let recorder = Arc::try_unwrap(recorder)
        .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
        .unwrap_or_else(|arc| arc.lock().unwrap_or_else(|e| e.into_inner()).clone());
    Ok(LoadResult {
        recorder,
        sent,
        send_window: last_send
            .saturating_duration_since(start)
            .max(config.schedule.duration()),
        elapsed,
        max_send_lag,
    })
}

enum HttpClient {
    // Boxed: the pooled client is several times larger than the h2 pool.
    Http1(Box<Client<HttpConnector, Full<Bytes>>>),
    Http2(H2Pool),
}

impl HttpClient {
    async fn new(config: &LoadConfig, uri: &Uri) -> anyhow::Result<HttpClient> {
        match config.protocol {
            HttpVersion::Http1 => {
                let mut connector = HttpConnector::new();
                connector.set_nodelay(true);
                let client = Client::builder(TokioExecutor::new())
                    .pool_idle_timeout(Duration::from_secs(30))
                    .pool_max_idle_per_host(usize::MAX)
                    .build(connector);
                Ok(HttpClient::Http1(Box::new(client)))
            }
            HttpVersion::Http2 => {
                let authority = uri
                    .authority()
                    .map(|a| a.as_str().to_owned())
                    .unwrap_or_default();
                let pool = H2Pool::connect(authority, config.connections.max(1)).await?;
                Ok(HttpClient::Http2(pool))
            }
        }
    }

    /// Sends one request; the status and the answer's body.
    async fn send(&self, uri: Uri, body: Bytes) -> anyhow::Result<(u16, Bytes)> {
        let mut req = Request::post(uri).body(Full::new(body))?;
        req.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        req.headers_mut()
            .insert("x-openrtb-version", HeaderValue::from_static("2.6"));
        let resp = match self {
            HttpClient::Http1(client) => client.request(req).await?,
            HttpClient::Http2(pool) => {
                let mut sender = pool.sender().await?;
                sender.ready().await?;
                sender.send_request(req).await?
            }
        };
        let status = resp.status().as_u16();
        // Latency is to the last byte of the answer, as a publisher sees it.
        let answer = resp.into_body().collect().await?.to_bytes();
        Ok((status, answer))
    }
}

/// A fixed set of h2c connections; streams go round-robin, and a connection
/// that closed is redialled by the next request that lands on it.
struct H2Pool {
    authority: String,
    senders: Vec<Mutex<Option<SendRequest<Full<Bytes>>>>>,
    next: AtomicUsize,
}

impl H2Pool {
    async fn connect(authority: String, connections: usize) -> anyhow::Result<H2Pool> {
        let mut senders = Vec::with_capacity(connections);
        for _ in 0..connections {
            // Dialled up front so connection setup is not part of the measured run.
            senders.push(Mutex::new(Some(dial(&authority).await?)));
        }
        Ok(H2Pool {
            authority,
            senders,
            next: AtomicUsize::new(0),
        })
    }

    async fn sender(&self) -> anyhow::Result<SendRequest<Full<Bytes>>> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.senders.len();
        {
            let slot = self.senders[i].lock().unwrap_or_else(|e| e.into_inner());
            if let Some(s) = slot.as_ref().filter(|s| !s.is_closed()) {
                return Ok(s.clone());
            }
        }
        let fresh = dial(&self.authority).await?;
        *self.senders[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(fresh.clone());
        Ok(fresh)
    }
}

async fn dial(authority: &str) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let tcp = tokio::net::TcpStream::connect(authority)
        .await
        .with_context(|| format!("connecting to {authority}"))?;
    tcp.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .handshake(TokioIo::new(tcp))
        .await
        .with_context(|| format!("h2c handshake with {authority}"))?;
    tokio::spawn(async move {
        // The connection ends when the pool drops its sender or the peer
        // closes; either way the next request redials.
        let _ = conn.await;
    });
    Ok(sender)
}
