//! The HTTP server: HTTP/1.1 and h2c on one port, routing, faults and graceful shutdown.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, info, warn};

use crate::body::{self, ResponseBody, TRICKLE_INTERVAL};
use crate::config::{BidderConfig, Fault};
use crate::openrtb::{encode_response, BidRequest, Encoding};
use crate::plan::Planner;
use crate::stats::{Stats, StatsRecorder};

/// Largest bid request body accepted; anything bigger is answered 413.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// How long connections get to finish in-flight requests at shutdown before they are cut.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(250);

/// The body [`Fault::Malformed`] answers with: cut off mid-document.
const MALFORMED_BODY: &str = r#"{"id": "x", "seatbid": ["#;

/// State shared by every connection of one bidder.
struct Shared {
    config: BidderConfig,
    stats: StatsRecorder,
    planner: Planner,
}

/// A running bidder; dropping it shuts the server down in the background.
pub struct BidderHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    // A watch channel: one signal observed by the accept loop and every connection task,
    // and dropping the sender (handle dropped) wakes them all the same way.
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl BidderHandle {
    /// The address the bidder listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL of the bidder, e.g. `http://127.0.0.1:9001`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Changes the bidder's think time from the next request on (tests of a
    /// bidder that gets slower or faster while it runs).
    pub fn set_latency(&self, latency: crate::config::Latency) {
        self.shared.planner.set_latency(latency);
    }

    /// A snapshot of the bidder's statistics (the same data as `GET /stats`).
    pub fn stats(&self) -> Stats {
        self.shared.stats.snapshot()
    }

    /// Stops accepting, lets in-flight requests finish briefly, then closes every connection
    /// (hanging ones included) and returns once all of them are gone.
    pub async fn shutdown(self) {
        self.shutdown.send_replace(true);
        if let Err(e) = self.task.await {
            warn!(error = %e, "bidder accept loop failed");
        }
    }
}

/// Starts serving bid requests on `listener` until the returned handle is shut down or dropped.
///
/// Fails with [`io::ErrorKind::InvalidInput`] when the configuration is invalid.
pub async fn spawn(listener: TcpListener, config: BidderConfig) -> io::Result<BidderHandle> {
    config
        .validate()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared {
        planner: Planner::new(config.seed),
        config,
        stats: StatsRecorder::default(),
    });
    let (shutdown, shutdown_rx) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared), shutdown_rx));
    Ok(BidderHandle {
        addr,
        shared,
        shutdown,
        task,
    })
}

/// Resolves once shutdown is requested or the handle is dropped.
async fn until_shutdown(rx: &mut watch::Receiver<bool>) {
    // An error means the sender (the handle) is gone: that is a shutdown too.
    let _ = rx.wait_for(|&stop| stop).await;
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(hyper_util::rt::TokioTimer::new());
    // The exchange resets the streams it gives up on at its deadline. h2's
    // default (20 reset-before-accept streams, a "rapid reset" guard) would
    // make this server close the whole connection under load, which a real
    // DSP tuned for an exchange would not do.
    builder
        .http2()
        .max_pending_accept_reset_streams(Some(100_000))
        .max_concurrent_streams(10_000);
    // A JoinSet so shutdown can wait until every connection is really closed.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    debug!(%peer, "connection accepted");
                    connections.spawn(serve_connection(
                        builder.clone(),
                        stream,
                        Arc::clone(&shared),
                        shutdown.clone(),
                    ));
                }
                Err(e) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = until_shutdown(&mut shutdown) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
    info!(seat = %shared.config.seat, "bidder stopped");
}

async fn serve_connection(
    builder: auto::Builder<TokioExecutor>,
    stream: TcpStream,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    // Small responses and the trickle fault must not be held back by Nagle's algorithm.
    let _ = stream.set_nodelay(true);
    // Notice URLs point at the address this client actually reached, which is right even
    // when the listener is bound to 0.0.0.0.
    let base_url = match stream.local_addr() {
        Ok(local) => format!("http://{local}"),
        Err(_) => "http://127.0.0.1".to_owned(),
    };
    let base_url: Arc<str> = base_url.into();
    let service = service_fn(move |req| {
        let shared = Arc::clone(&shared);
        let base_url = Arc::clone(&base_url);
        async move { Ok::<_, Infallible>(route(&shared, &base_url, req).await) }
    });
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                debug!(error = %e, "connection ended with an error");
            }
        }
        () = until_shutdown(&mut shutdown) => {
            conn.as_mut().graceful_shutdown();
            if tokio::time::timeout(SHUTDOWN_GRACE, conn).await.is_err() {
                debug!("closing a connection with requests still in flight");
            }
        }
    }
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: ResponseBody,
) -> Response<ResponseBody> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn text(status: StatusCode, msg: impl Into<String>) -> Response<ResponseBody> {
    let mut msg = msg.into();
    msg.push('\n');
    respond(status, "text/plain; charset=utf-8", body::full(msg))
}

fn empty(status: StatusCode) -> Response<ResponseBody> {
    let mut resp = Response::new(body::full(Bytes::new()));
    *resp.status_mut() = status;
    resp
}

async fn route(shared: &Shared, base_url: &str, req: Request<Incoming>) -> Response<ResponseBody> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok"),
        (&Method::GET, "/stats") => match serde_json::to_vec(&shared.stats.snapshot()) {
            Ok(json) => respond(StatusCode::OK, "application/json", body::full(json)),
            Err(e) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot encode stats: {e}"),
            ),
        },
        (&Method::GET, "/win") => {
            let query = req.uri().query().unwrap_or("");
            shared
                .stats
                .record_win(query_value(query, "price"), query_value(query, "auction"));
            text(StatusCode::OK, "ok")
        }
        (&Method::GET, "/bill") => {
            shared.stats.record_bill();
            text(StatusCode::OK, "ok")
        }
        (&Method::POST, _) => bid(shared, base_url, req).await,
        (&Method::GET, _) => text(StatusCode::NOT_FOUND, "not found"),
        _ => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
    }
}

/// The raw (not percent-decoded) value of `key` in a query string.
fn query_value(query: &str, key: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_owned())
}

async fn bid(shared: &Shared, base_url: &str, req: Request<Incoming>) -> Response<ResponseBody> {
    let version = req
        .headers()
        .get("x-openrtb-version")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    shared
        .stats
        .record_request(req.version() == Version::HTTP_2, version);

    let body = match Limited::new(req.into_body(), MAX_REQUEST_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("bid request larger than {MAX_REQUEST_BYTES} bytes"),
            )
        }
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("cannot read bid request: {e}"),
            )
        }
    };
    let request: BidRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("invalid bid request: {e}")),
    };
    if let Some(tmax) = request.tmax {
        shared.stats.record_tmax(tmax);
    }

    let config = &shared.config;
    let plan = shared.planner.plan(config, &request);
    // Floors are the exchange's business: bid the drawn price anyway, but say so when debugging.
    let below_floor = plan
        .bids
        .iter()
        .filter(|b| {
            request.imp[b.imp]
                .bidfloor
                .is_some_and(|floor| b.price < floor)
        })
        .count();
    if below_floor > 0 {
        debug!(request = %request.id, below_floor, "bidding below the floor");
    }
    if !plan.delay.is_zero() {
        tokio::time::sleep(plan.delay).await;
    }

    match config.fault {
        Some(Fault::Hang) => return std::future::pending().await,
        Some(Fault::Http500) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "simulated bidder failure",
            )
        }
        Some(Fault::Malformed) => {
            return respond(
                StatusCode::OK,
                "application/json",
                body::full(MALFORMED_BODY),
            )
        }
        _ => {}
    }
    if plan.bids.is_empty() {
        shared.stats.record_no_bid();
        return empty(StatusCode::NO_CONTENT);
    }

    let json = encode_response(
        &request,
        &plan.bids,
        &Encoding {
            seat: &config.seat,
            cid: &config.cid,
            crid: &config.crid,
            adomain: &config.adomain,
            base_url,
            wrong_impid: config.fault == Some(Fault::WrongImpid),
            oversized: config.fault == Some(Fault::Oversized),
        },
    );
    shared.stats.record_bid();
    if config.fault == Some(Fault::Trickle) {
        let len = json.len();
        let mut resp = respond(
            StatusCode::OK,
            "application/json",
            body::trickle(Bytes::from(json), TRICKLE_INTERVAL),
        );
        resp.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(len));
        return resp;
    }
    respond(StatusCode::OK, "application/json", body::full(json))
}

#[cfg(test)]
mod tests {
    use super::query_value;

    #[test]
    fn query_values_are_raw() {
        let q = "price=1.5&auction=a%20b&imp=1";
        assert_eq!(query_value(q, "price").as_deref(), Some("1.5"));
        assert_eq!(query_value(q, "auction").as_deref(), Some("a%20b"));
        assert_eq!(query_value(q, "missing"), None);
    }
}
