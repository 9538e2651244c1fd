//! One publisher connection: hyper's HTTP/1.1 + h2c server, with the limits
//! hyper does not enforce by itself.
//!
//! hyper-util's protocol detection waits for bytes with no timeout, and its
//! HTTP/2 server has no idle timeout, so a socket that never speaks (or
//! opens a stream and goes quiet) would be kept forever. Each connection
//! task therefore watches its connection on a coarse tick:
//! - no complete request within `server.first_request_timeout_ms` of the
//!   accept: closed at once (nothing was asked, nothing is lost);
//! - no request in flight and none started for `server.idle_timeout_ms`:
//!   a graceful close (HTTP/2 GOAWAY), then a hard close after [`CLOSE_GRACE`];
//! - the server draining: a graceful close.
//!
//! Requests are counted by the service itself (a few atomics per request),
//! so HTTP/2 pings keep a connection alive only while it is useful. A
//! request answered 503 pauses the connection's reads for its turn in the
//! refusal schedule (`pace.rs`).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use prometheus_client::metrics::gauge::Gauge;
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::time::Instant;

use super::pace::{Paced, Pacer, Pause};
use crate::config::ServerConfig;
use crate::metrics::Metrics;

/// After a graceful close is asked for, the connection gets this long to
/// finish its in-flight requests (each bounded by its own deadline, at most
/// `auction.max_tmax_ms`) before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// The watchdog's tick never runs faster than this, whatever the timeouts:
/// a timer per connection at this rate costs nothing measurable.
const MIN_TICK: Duration = Duration::from_millis(10);

/// The per-connection timeouts, and the refusal pacer they all share.
#[derive(Debug, Clone)]
pub(super) struct Limits {
    first_request: Duration,
    idle: Duration,
    pacer: Arc<Pacer>,
}

impl Limits {
    /// From `[server]`.
    pub(super) fn from_config(s: &ServerConfig) -> Self {
        Self {
            first_request: Duration::from_millis(s.first_request_timeout_ms),
            idle: Duration::from_millis(s.idle_timeout_ms),
            pacer: Arc::new(Pacer::from_config(s)),
        }
    }

    fn tick(&self) -> Duration {
        (self.first_request.min(self.idle) / 4).max(MIN_TICK)
    }
}

/// hyper's connection builder with the configured protocol limits.
pub(super) fn builder(s: &ServerConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(s.header_read_timeout_ms))
        // hyper refuses a buffer under 8 KiB; headers beyond it get 431.
        .max_buf_size(s.max_header_bytes.max(8192))
        .keep_alive(true);
    let mut h2 = builder.http2();
    h2.timer(TokioTimer::new())
        .max_concurrent_streams(s.max_concurrent_streams)
        .max_header_list_size(u32::try_from(s.max_header_bytes).unwrap_or(u32::MAX))
        // Rapid reset (CVE-2023-44487): streams a client opens and resets
        // before the server accepts them are capped; past it the
        // connection is closed with GOAWAY.
        .max_pending_accept_reset_streams(Some(32))
        .max_local_error_reset_streams(Some(256));
    if s.h2_keep_alive_interval_ms > 0 {
        h2.keep_alive_interval(Some(Duration::from_millis(s.h2_keep_alive_interval_ms)))
            .keep_alive_timeout(Duration::from_millis(s.h2_keep_alive_timeout_ms));
    }
    builder
}

/// What the service tells the watchdog.
#[derive(Debug, Default)]
struct Activity {
    /// Requests started on this connection.
    started: AtomicU64,
    /// Requests finished.
    finished: AtomicU64,
}

/// Counts a request as finished when dropped (answered or abandoned).
struct Finished(Arc<Activity>);

impl Drop for Finished {
    fn drop(&mut self) {
        self.0.finished.fetch_add(1, Ordering::Relaxed);
    }
}

/// Keeps the open-connections gauge up while the connection lives.
struct Open(Gauge);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Serves one connection until it ends, times out or the server drains.
pub(super) async fn serve_connection<H, F>(
    stream: TcpStream,
    builder: Arc<auto::Builder<TokioExecutor>>,
    limits: Arc<Limits>,
    handler: H,
    mut closing: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
    _permit: OwnedSemaphorePermit,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Response<Full<Bytes>>, std::convert::Infallible>> + Send + 'static,
{
    metrics.connections_open.inc();
    let _open = Open(metrics.connections_open.clone());
    let activity = Arc::new(Activity::default());
    let pause = Arc::new(Pause::new(
        limits.pacer.clone(),
        metrics.refusals_paced.clone(),
    ));
    let svc = {
        let activity = activity.clone();
        let pause = pause.clone();
        service_fn(move |req| {
            activity.started.fetch_add(1, Ordering::Relaxed);
            let done = Finished(activity.clone());
            let fut = handler(req);
            let pause = pause.clone();
            async move {
                let resp = fut.await;
                if matches!(&resp, Ok(r) if r.status() == StatusCode::SERVICE_UNAVAILABLE) {
                    pause.refused();
                }
                drop(done);
                resp
            }
        })
    };
    let io = TokioIo::new(Paced::new(stream, pause));
    let conn = builder.serve_connection_with_upgrades(io, svc);
    tokio::pin!(conn);
    let accepted = Instant::now();
    let mut tick = tokio::time::interval(limits.tick());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen = 0;
    let mut quiet_since = accepted;
    // Set once a graceful close was asked for: the hard close after it.
    let mut close_by: Option<Instant> = None;
    loop {
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            changed = closing.changed(), if close_by.is_none() => {
                if changed.is_err() || *closing.borrow() {
                    conn.as_mut().graceful_shutdown();
                    close_by = Some(Instant::now() + CLOSE_GRACE);
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                if close_by.is_some_and(|t| now >= t) {
                    return;
                }
                let started = activity.started.load(Ordering::Relaxed);
                if started == 0 {
                    if now.duration_since(accepted) >= limits.first_request {
                        metrics.connection_closed("first_request_timeout");
                        return;
                    }
                    continue;
                }
                let busy = activity.finished.load(Ordering::Relaxed) < started;
                if started != seen || busy {
                    seen = started;
                    quiet_since = now;
                } else if close_by.is_none() && now.duration_since(quiet_since) >= limits.idle {
                    metrics.connection_closed("idle_timeout");
                    conn.as_mut().graceful_shutdown();
                    close_by = Some(now + CLOSE_GRACE);
                }
            }
        }
    }
}
