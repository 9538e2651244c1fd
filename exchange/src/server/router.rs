//! Routes and the tower stack in front of the auction.
//!
//! Built by a function so tests can drive it without a socket. The auction
//! route sits behind one explicit stack, outer to inner:
//! 0. overload by scheduling lag: while the runtime runs late (a starved CPU),
//!    new auctions are refused with 503 (see `overload.rs`);
//! 1. load shedding: when no slot is free the request is refused at once with
//!    503 instead of waiting (a queued auction would miss its deadline);
//! 2. a global concurrency limit shared by every connection (`max_in_flight`);
//! 3. the handler, which computes the deadline from tmax and runs the auction.
//!
//! Health routes bypass the stack so probes still answer under overload.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::Full;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::error::Overloaded;
use tower::load_shed::LoadShedLayer;
use tower::{service_fn, BoxError, ServiceBuilder, ServiceExt};

use super::ingress::read_body;
use super::overload::Overload;
use crate::metrics::Stage;
use crate::pipeline::{Exchange, Reply};
use prometheus_client::metrics::gauge::Gauge;
use std::time::Duration;

/// The publisher endpoint.
pub const AUCTION_PATH: &str = "/openrtb2/auction";

/// Shared state of the HTTP front.
#[derive(Debug)]
pub struct App {
    /// The auction engine.
    pub exchange: Exchange,
    /// False while starting and draining: `/readyz` answers 503.
    pub ready: AtomicBool,
    /// Auction slots (`server.max_in_flight`), shared by every connection.
    slots: Arc<Semaphore>,
    /// Scheduling-lag detector (`server.max_scheduling_lag_ms`).
    pub overload: Arc<Overload>,
}

impl App {
    /// Wraps an exchange; ready at once.
    pub fn new(exchange: Exchange) -> Self {
        let slots = Arc::new(Semaphore::new(exchange.config.server.max_in_flight));
        let overload = Overload::spawn(Duration::from_millis(
            exchange.config.server.max_scheduling_lag_ms,
        ));
        Self {
            exchange,
            ready: AtomicBool::new(true),
            slots,
            overload,
        }
    }

    /// Auctions in flight now.
    pub fn in_flight(&self) -> usize {
        self.exchange.config.server.max_in_flight - self.slots.available_permits()
    }
}

/// Handles one HTTP request.
pub async fn handle<B>(app: Arc<App>, req: Request<B>) -> Result<Response<Full<Bytes>>, Infallible>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: std::fmt::Display + Into<BoxError>,
{
    let arrival = Instant::now();
    let resp = match (req.method(), req.uri().path()) {
        (&Method::POST, AUCTION_PATH) => auction_stack(app, arrival, req).await,
        (_, AUCTION_PATH) => text(StatusCode::METHOD_NOT_ALLOWED, "use POST"),
        (&Method::GET, "/metrics") => {
            let mut text = app.exchange.metrics().encode();
            if let Some(c) = app.exchange.event_counters() {
                c.encode_prometheus(&mut text);
            }
            if let Some(b) = app.exchange.budgets() {
                b.encode_prometheus(&mut text);
            }
            let mut resp = Response::new(Full::new(Bytes::from(text)));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            resp
        }
        (&Method::GET, "/v1/stats/latency") => {
            let report = app.exchange.metrics().latency_report();
            match serde_json::to_vec(&report) {
                Ok(json) => {
                    let mut resp = Response::new(Full::new(Bytes::from(json)));
                    resp.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                    resp
                }
                Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            }
        }
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok"),
        (&Method::GET, "/readyz") => {
            if app.ready.load(Ordering::Relaxed) {
                text(StatusCode::OK, "ready")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "draining")
            }
        }
        _ => text(StatusCode::NOT_FOUND, "no such route"),
    };
    Ok(resp)
}

async fn auction_stack<B>(app: Arc<App>, arrival: Instant, req: Request<B>) -> Response<Full<Bytes>>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: std::fmt::Display + Into<BoxError>,
{
    app.exchange.metrics().requests.inc();
    if app.overload.shedding() {
        app.exchange.metrics().shed.inc();
        return shed_response();
    }
    let outer = app.clone();
    let slots = app.slots.clone();
    let stack = ServiceBuilder::new()
        .layer(LoadShedLayer::new())
        .layer(GlobalConcurrencyLimitLayer::with_semaphore(slots))
        .service(service_fn(move |req: Request<B>| {
            let app = app.clone();
            async move {
                let m = app.exchange.metrics();
                // A guard, so an auction abandoned by its client still leaves the gauge.
                let _in_flight = InFlight::new(&m.in_flight);
                let resp = auction(&app, arrival, req).await;
                m.stage(Stage::EndToEnd, arrival.elapsed());
                Ok::<_, Infallible>(resp)
            }
        }));
    match stack.oneshot(req).await {
        Ok(resp) => resp,
        Err(e) if e.is::<Overloaded>() => {
            outer.exchange.metrics().shed.inc();
            let mut resp = text(StatusCode::SERVICE_UNAVAILABLE, "overloaded: request shed");
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            resp
        }
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn auction<B>(app: &App, arrival: Instant, req: Request<B>) -> Response<Full<Bytes>>
where
    B: Body,
    B::Error: std::fmt::Display + Into<BoxError>,
{
    let limit = app.exchange.config.server.max_body_bytes;
    let (parts, body) = req.into_parts();
    let body = match read_body(&parts.headers, body, limit).await {
        Ok(b) => b,
        Err(e) => {
            app.exchange.metrics().outcome_bad_request.inc();
            return text(e.status(), &e.to_string());
        }
    };
    let m = app.exchange.metrics();
    match app.exchange.auction(&body, arrival).await {
        Reply::Bids(json) => {
            m.outcome_bids.inc();
            let mut resp = Response::new(Full::new(json));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            resp.headers_mut()
                .insert("x-openrtb-version", HeaderValue::from_static("2.6"));
            resp
        }
        Reply::NoBid => {
            m.outcome_no_bid.inc();
            let mut resp = Response::new(Full::default());
            *resp.status_mut() = StatusCode::NO_CONTENT;
            resp
        }
        Reply::BadRequest(msg) => {
            m.outcome_bad_request.inc();
            text(StatusCode::BAD_REQUEST, &msg)
        }
    }
}

/// Holds the in-flight gauge up for as long as it lives.
struct InFlight<'a>(&'a Gauge);

impl<'a> InFlight<'a> {
    fn new(g: &'a Gauge) -> Self {
        g.inc();
        Self(g)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The answer to a shed request: 503 at once, with a hint to retry later.
fn shed_response() -> Response<Full<Bytes>> {
    let mut resp = text(StatusCode::SERVICE_UNAVAILABLE, "overloaded: request shed");
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

/// A plain-text response.
fn text(status: StatusCode, msg: &str) -> Response<Full<Bytes>> {
    let mut body = String::with_capacity(msg.len() + 1);
    body.push_str(msg);
    body.push('\n');
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
