//! Routes and the tower stack in front of the auction.
//!
//! The auction route sits behind one tower stack, built once when the
//! [`App`] is created (each request clones it: a few reference counts), with
//! one layer per concern, outer to inner:
//! 1. **overload** ([`OverloadLayer`]): while the scheduling lag of the
//!    connection runtime or of the auction runtime says the CPU is
//!    starved, new auctions are refused at once (see `overload.rs`),
//!    before anything is read;
//! 2. **deadline** ([`DeadlineLayer`]): the body must arrive within
//!    `server.body_timeout_ms` of the headers (the deadline runs from them),
//!    or the request ends with 408. The body is read *before* an auction
//!    slot is taken, so a slow or missing body never holds one (bodies in
//!    progress are bounded by `max_connections`, `max_concurrent_streams`
//!    and this timeout). Everything after is bounded by the largest
//!    deadline any request can have, a backstop to the fan-out's own;
//! 3. **shedding** (tower's `LoadShed`): when no auction slot is free the
//!    request is refused at once instead of waiting (a queued auction would
//!    miss its deadline and delay the ones behind it);
//! 4. **concurrency** (tower's `GlobalConcurrencyLimit`): auction slots
//!    shared by every connection, as many as the adaptive admission limit
//!    ([`Capacity`]) allows: it falls by a quarter when auctions answer
//!    late (and, with `server.max_queue_delay_ms` set, when an admitted
//!    auction waited longer than that for a worker of the auction runtime),
//!    and grows back while they answer in time, up to `server.max_in_flight`; so past saturation the
//!    excess is shed at once instead of slowing every accepted auction past
//!    its deadline;
//! 5. the auction handler, which runs the auction on the auction runtime
//!    (`auctions.rs`) and waits for it: only admitted auctions run there,
//!    so the refusals above cannot delay their timers.
//!
//! Every refusal is an error value; [`rescue`] is the one place that maps
//! each to its HTTP answer. Operational routes (`/healthz`, `/readyz`,
//! `/metrics`, `/v1/stats/latency`) bypass the stack, so probes and scrapes
//! still answer under overload; with `metrics_listen` set, the last two are
//! served only on that listener ([`handle_ops`]).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use prometheus_client::metrics::gauge::Gauge;
use tokio::time::Instant;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::error::Overloaded;
use tower::load_shed::LoadShedLayer;
use tower::util::BoxCloneSyncService;
use tower::{BoxError, Layer, Service, ServiceBuilder, ServiceExt};

use super::auctions::AuctionRuntime;
use super::ingress::{read_body, IngressError};
use super::overload::{Capacity, Overload};
use crate::metrics::Stage;
use crate::pipeline::{Exchange, Reply};

/// The publisher endpoint.
pub const AUCTION_PATH: &str = "/openrtb2/auction";

/// A request body as the stack carries it: whatever the connection's body
/// type, boxed once so the stack can be built once. Its error is a concrete
/// type (not a boxed one) so that futures reading it are provably `Send`.
pub type StackBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// A publisher's auction request entering the stack: when its headers
/// arrived (every time budget is measured from it) and the request.
#[derive(Debug)]
pub struct Inbound {
    /// When the request's headers were received.
    pub arrival: Instant,
    /// The request, body not read yet.
    pub request: Request<StackBody>,
}

/// A request whose body has been read, as the auction handler gets it.
#[derive(Debug)]
pub struct Arrived {
    /// When the request's headers were received.
    pub arrival: Instant,
    /// The request body (gunzipped).
    pub body: Bytes,
}

/// Why the stack refused a request; [`rescue`] turns each into its answer.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The runtime runs late (a starved CPU): 503.
    #[error("overloaded: scheduling lag")]
    SchedulingLag,
    /// The body did not arrive within `server.body_timeout_ms`: 408.
    #[error("body: not received within {0:?} of the headers")]
    BodyTimeout(Duration),
    /// The body was refused (too large, bad encoding, broken): 400/413/415.
    #[error(transparent)]
    Body(#[from] IngressError),
    /// The auction overran the largest deadline (a backstop that should
    /// never fire: the fan-out ends earlier): answered as a no-bid.
    #[error("deadline passed")]
    Deadline,
}

/// The auction route's stack, built once.
pub type AuctionStack = BoxCloneSyncService<Inbound, Response<Full<Bytes>>, BoxError>;

/// Shared state of the HTTP front.
#[derive(Debug)]
pub struct App {
    /// The auction engine.
    pub exchange: Arc<Exchange>,
    /// False while starting and draining: `/readyz` answers 503.
    pub ready: AtomicBool,
    /// Auction slots under the adaptive admission limit (at most
    /// `server.max_in_flight`), shared by every connection.
    pub capacity: Arc<Capacity>,
    /// Scheduling-lag detector (`server.max_scheduling_lag_ms`) of the
    /// connection runtime.
    pub overload: Arc<Overload>,
    /// The same for the auction runtime, when auctions have their own
    /// (`server.auction_runtime`): its lateness is what sets the fan-out's
    /// timer slack.
    pub auction_overload: Option<Arc<Overload>>,
    /// Where admitted auctions run (see `auctions.rs`).
    auctions: AuctionRuntime,
    /// The auction route's tower stack (see the module docs).
    stack: AuctionStack,
    /// `/metrics` and `/v1/stats/latency` are on the publisher port (no
    /// `metrics_listen`).
    ops_on_public_port: bool,
}

impl App {
    /// Wraps an exchange, starts the auction runtime (unless
    /// `server.auction_runtime` is false) and builds the stack; ready at
    /// once. Must be called on the connection runtime.
    pub fn new(exchange: Exchange) -> std::io::Result<Self> {
        let exchange = Arc::new(exchange);
        let server = &exchange.config.server;
        let capacity = Capacity::new(
            server.max_in_flight,
            Duration::from_millis(server.max_queue_delay_ms),
            exchange.metrics().admission_limit.clone(),
        );
        let auctions = AuctionRuntime::start(server.auction_runtime, server.auction_threads)?;
        let lag = Duration::from_millis(server.max_scheduling_lag_ms);
        let overload = Overload::spawn(lag);
        let auction_overload = auctions.handle().map(|h| Overload::spawn_on(lag, h));
        let stack = build_stack(
            &exchange,
            &capacity,
            &overload,
            auction_overload.as_ref(),
            auctions.handle(),
        );
        let ops_on_public_port = exchange.config.metrics_listen.is_none();
        Ok(Self {
            exchange,
            ready: AtomicBool::new(true),
            capacity,
            overload,
            auction_overload,
            auctions,
            stack,
            ops_on_public_port,
        })
    }

    /// The auction runtime's handle, when auctions have their own.
    pub fn auction_handle(&self) -> Option<&tokio::runtime::Handle> {
        self.auctions.handle()
    }

    /// Auctions in flight now.
    pub fn in_flight(&self) -> usize {
        self.capacity.in_flight()
    }
}

/// Builds the auction route's stack (see the module docs for the order).
fn build_stack(
    exchange: &Arc<Exchange>,
    capacity: &Arc<Capacity>,
    overload: &Arc<Overload>,
    auction_overload: Option<&Arc<Overload>>,
    auctions: Option<&tokio::runtime::Handle>,
) -> AuctionStack {
    let config = &exchange.config;
    // The body cannot take longer than the largest deadline: past it no
    // auction could be answered in time.
    let body_timeout = config
        .server
        .body_timeout()
        .min(Duration::from_millis(config.auction.max_tmax_ms));
    // The backstop: no request's deadline is later than this after arrival.
    let backstop = Duration::from_millis(config.auction.max_tmax_ms);
    // The scheduling-lag detectors of both runtimes (the connection
    // runtime's, then the auction runtime's when there is one).
    let detectors: Arc<[Arc<Overload>]> = std::iter::once(overload.clone())
        .chain(auction_overload.cloned())
        .collect();
    let handler = {
        let exchange = exchange.clone();
        // An answer is late by as much as each wake-up on its way is: the
        // fan-out's timer (on the auction runtime, when there is one) and
        // the hand-back to the connection runtime that writes the answer.
        // The fan-out ends earlier by the sum of their recent peaks.
        let timers = detectors.clone();
        let capacity = capacity.clone();
        let auctions = auctions.cloned();
        tower::service_fn(move |arrived: Arrived| {
            let arrival = arrived.arrival;
            let ex = exchange.clone();
            let slack = timers.iter().map(|t| t.timer_slack()).sum();
            let queued_at = Instant::now();
            let queue = capacity.clone();
            let work = async move {
                // How long this admitted auction waited for a worker: the
                // admission limit's earliest overload signal.
                let queued = queued_at.elapsed();
                queue.started(queued);
                ex.metrics().stage(Stage::Queue, queued);
                auction(&ex, arrived, slack).await
            };
            let run = AuctionRuntime::run(auctions.clone(), work);
            let exchange = exchange.clone();
            let capacity = capacity.clone();
            async move {
                let (resp, deadline) = run.await.map_err(BoxError::from)?;
                // Back on the connection runtime, which writes the answer:
                // the exchange's own clock stops here, so a late hand-back
                // counts as late.
                answered(&exchange, &capacity, arrival, deadline);
                Ok::<_, BoxError>(resp)
            }
        })
    };
    let stack = ServiceBuilder::new()
        // 1. Overload by scheduling lag: refuse before reading anything.
        //    Either runtime running late sheds: the auction runtime's lag
        //    delays the fan-out, the connection runtime's the answer's way
        //    out.
        .layer(OverloadLayer(detectors))
        // 2. Deadline: the body within its timeout (before any slot is
        //    taken, so a slow body never holds one), the rest within the
        //    backstop.
        .layer(DeadlineLayer {
            body_timeout,
            backstop,
            max_body_bytes: config.server.max_body_bytes,
        })
        // 3. Shedding: a request that cannot get a slot now is refused now.
        .layer(LoadShedLayer::new())
        // 4. Concurrency: auction slots shared by every connection, as
        //    many as the adaptive admission limit allows now.
        .layer(GlobalConcurrencyLimitLayer::with_semaphore(
            capacity.slots().clone(),
        ))
        .service(handler);
    BoxCloneSyncService::new(stack)
}

/// Handles one HTTP request on the publisher port.
pub async fn handle<B>(app: Arc<App>, req: Request<B>) -> Result<Response<Full<Bytes>>, Infallible>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let arrival = Instant::now();
    let resp = match (req.method(), req.uri().path()) {
        (&Method::POST, AUCTION_PATH) => auction_route(&app, arrival, req).await,
        (_, AUCTION_PATH) => text(StatusCode::METHOD_NOT_ALLOWED, "use POST"),
        _ if app.ops_on_public_port => ops(&app, &req),
        (&Method::GET, "/healthz" | "/readyz") => ops(&app, &req),
        _ => text(StatusCode::NOT_FOUND, "no such route"),
    };
    Ok(resp)
}

/// Handles one request on the operational listener (`metrics_listen`).
pub async fn handle_ops<B>(
    app: Arc<App>,
    req: Request<B>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(ops(&app, &req))
}

/// The operational routes: metrics, latency report, health.
fn ops<B>(app: &App, req: &Request<B>) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
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
            if !app.ready.load(Ordering::Relaxed) {
                text(StatusCode::SERVICE_UNAVAILABLE, "draining")
            } else if !app.exchange.recording() {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "auction events cannot be recorded: the event journal or the spool is unwritable",
                )
            } else {
                text(StatusCode::OK, "ready")
            }
        }
        _ => text(StatusCode::NOT_FOUND, "no such route"),
    }
}

/// Runs an auction request through the stack; refusals become answers in [`rescue`].
async fn auction_route<B>(app: &App, arrival: Instant, req: Request<B>) -> Response<Full<Bytes>>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let m = app.exchange.metrics();
    m.requests.inc();
    let request = req.map(|b| b.map_err(std::io::Error::other).boxed_unsync());
    let inbound = Inbound { arrival, request };
    match app.stack.clone().oneshot(inbound).await {
        Ok(resp) => resp,
        Err(e) => rescue(app, e),
    }
}

/// The one place a refusal becomes an HTTP answer (and is counted).
fn rescue(app: &App, err: BoxError) -> Response<Full<Bytes>> {
    let m = app.exchange.metrics();
    if err.is::<Overloaded>() {
        m.shed.inc();
        return shed_response("overloaded: no auction slot free");
    }
    match err.downcast::<Refusal>() {
        Ok(refusal) => match *refusal {
            Refusal::SchedulingLag => {
                m.shed.inc();
                shed_response("overloaded: scheduling lag")
            }
            Refusal::BodyTimeout(_) => {
                m.outcome_bad_request.inc();
                let mut resp = text(StatusCode::REQUEST_TIMEOUT, &refusal.to_string());
                // The rest of the body may still be on its way: do not keep
                // the connection for another request behind it.
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                resp
            }
            Refusal::Body(e) => {
                m.outcome_bad_request.inc();
                text(e.status(), &e.to_string())
            }
            Refusal::Deadline => {
                m.outcome_no_bid.inc();
                no_content()
            }
        },
        Err(other) => text(StatusCode::INTERNAL_SERVER_ERROR, &other.to_string()),
    }
}

/// Layer 1: refuses new auctions while a runtime runs late.
#[derive(Debug, Clone)]
pub struct OverloadLayer(Arc<[Arc<Overload>]>);

impl<S> Layer<S> for OverloadLayer {
    type Service = OverloadService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OverloadService {
            overload: self.0.clone(),
            inner,
            refuse: false,
        }
    }
}

/// See [`OverloadLayer`].
#[derive(Debug, Clone)]
pub struct OverloadService<S> {
    overload: Arc<[Arc<Overload>]>,
    inner: S,
    /// Decided in `poll_ready`, so `call` never reaches an inner service
    /// that was not readied (the flag may flip in between).
    refuse: bool,
}

impl<S, R> Service<R> for OverloadService<S>
where
    S: Service<R, Error = BoxError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Checked before the inner layers take a slot.
        self.refuse = self.overload.iter().any(|o| o.shedding());
        if self.refuse {
            return Poll::Ready(Ok(()));
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        if std::mem::take(&mut self.refuse) {
            return Box::pin(std::future::ready(Err(Refusal::SchedulingLag.into())));
        }
        Box::pin(self.inner.call(req))
    }
}

/// Layer 2: the body within `body_timeout` of the headers, the rest of the
/// stack within `backstop` of them.
#[derive(Debug, Clone)]
pub struct DeadlineLayer {
    body_timeout: Duration,
    backstop: Duration,
    max_body_bytes: usize,
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = DeadlineService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DeadlineService {
            limits: self.clone(),
            inner,
        }
    }
}

/// See [`DeadlineLayer`].
#[derive(Debug, Clone)]
pub struct DeadlineService<S> {
    limits: DeadlineLayer,
    inner: S,
}

impl<S> Service<Inbound> for DeadlineService<S>
where
    S: Service<Arrived, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // The inner layers are readied only once the body is in (in `call`):
        // readying them now would take an auction slot before the body.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, inbound: Inbound) -> Self::Future {
        let inner = self.inner.clone();
        let limits = self.limits.clone();
        Box::pin(async move {
            let Inbound { arrival, request } = inbound;
            let (parts, body) = request.into_parts();
            let body = read_before(
                &parts.headers,
                body,
                limits.max_body_bytes,
                arrival + limits.body_timeout,
            )
            .await
            .map_err(|e| match e {
                None => Refusal::BodyTimeout(limits.body_timeout),
                Some(e) => Refusal::Body(e),
            })?;
            let call = inner.oneshot(Arrived { arrival, body });
            match tokio::time::timeout_at(arrival + limits.backstop, call).await {
                Ok(result) => result,
                Err(_) => Err(Refusal::Deadline.into()),
            }
        })
    }
}

/// Reads the body by `until`; `Err(None)` when time ran out.
async fn read_before(
    headers: &HeaderMap,
    body: StackBody,
    limit: usize,
    until: Instant,
) -> Result<Bytes, Option<IngressError>> {
    match tokio::time::timeout_at(until, read_body(headers, body, limit)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => Err(Some(e)),
        Err(_) => Err(None),
    }
}

/// Where the handler ends, on the connection runtime once the auction has
/// returned: feeds the admission limit and the end-to-end stage.
fn answered(exchange: &Exchange, capacity: &Capacity, arrival: Instant, deadline: Option<Instant>) {
    if let Some(deadline) = deadline {
        // Late: after the deadline less half the response margin, the part
        // kept for answering (the fan-out ends a whole margin before it).
        let due = deadline - exchange.config.auction.response_margin() / 2;
        capacity.report(Instant::now() > due);
    }
    exchange.metrics().stage(Stage::EndToEnd, arrival.elapsed());
}

/// The handler under the stack: the auction itself, and its answer (with
/// the request's deadline, when it got one).
async fn auction(
    exchange: &Exchange,
    arrived: Arrived,
    slack: Duration,
) -> (Response<Full<Bytes>>, Option<Instant>) {
    let m = exchange.metrics();
    // A guard, so an auction abandoned by its client still leaves the gauge.
    let _in_flight = InFlight::new(&m.in_flight);
    let Arrived { arrival, body } = arrived;
    let (reply, deadline) = exchange.auction_timed(&body, arrival, slack).await;
    let resp = match reply {
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
            no_content()
        }
        Reply::BadRequest(msg) => {
            m.outcome_bad_request.inc();
            text(StatusCode::BAD_REQUEST, &msg)
        }
    };
    (resp, deadline)
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

/// 204: nothing won.
fn no_content() -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::default());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    resp
}

/// The answer to a shed request: 503 at once, with a hint to retry later.
fn shed_response(msg: &str) -> Response<Full<Bytes>> {
    let mut resp = text(StatusCode::SERVICE_UNAVAILABLE, msg);
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
