//! Fan-out: one request per eligible bidder, all at once, collected until the deadline.
//!
//! Each bidder has one or more instances; a request goes to the instance with
//! fewer requests in flight out of two picked at random (power of two
//! choices), which avoids herding onto one instance without global state.
//! Answers are collected in arrival order until every bidder has answered or
//! the deadline passes; the calls still running then are dropped, which
//! cancels them (an HTTP/2 RST_STREAM), and they count as timeouts.
//!
//! The wait can end before the deadline: a *secondary* bidder is not waited
//! for once every primary bidder has answered, and the adaptive wait
//! ([`patience`]) gives up on a primary bidder whose own recent latencies
//! say it is unlikely to answer in time. Those calls are cancelled like
//! timeouts but count as neither a timeout nor a failure.
//!
//! An instance that fails `circuit.eject_after` times in a row (a call cut
//! off by the deadline counts) is ejected from the choice for
//! `circuit.eject_ms`; if every instance is ejected, all are candidates
//! again, and the bidder's circuit breaker ([`health`]) decides.

mod client;
pub mod health;
pub mod patience;

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use http::{header, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use tokio::time::Instant;

pub use client::{BidderClient, ClientError};
pub use health::{Circuit, Health, Permit, Skip};
pub use patience::Patience;

use crate::config::{BidderEntry, Protocol};
use crate::metrics::BidderMetrics;
use health::now_ms;

/// Header that tells bidders which OpenRTB version they are sent.
pub const OPENRTB_VERSION_HEADER: &str = "x-openrtb-version";

/// One instance (endpoint) of a bidder.
#[derive(Debug)]
pub struct Instance {
    /// Where requests are posted.
    pub uri: Uri,
    /// Requests in flight to this instance: the load power-of-two-choices
    /// compares. Relaxed ordering: it is a heuristic, not a lock.
    in_flight: AtomicUsize,
    /// Requests sent to this instance since start (for operators and tests).
    sent: AtomicU64,
    /// Consecutive failed calls, for ejection.
    failures: AtomicU32,
    /// [`now_ms`] until which the instance is out of the choice (0: never ejected).
    ejected_until: AtomicU64,
}

impl Instance {
    /// Requests sent to this instance since start.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Consecutive failed calls.
    pub fn consecutive_failures(&self) -> u32 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Unix milliseconds until which the instance is ejected, if it is now.
    pub fn ejected_until_unix_ms(&self) -> Option<u64> {
        let until = self.ejected_until.load(Ordering::Relaxed);
        (until > now_ms()).then(|| health::to_unix_ms(until))
    }

    fn ejected(&self, now: u64) -> bool {
        self.ejected_until.load(Ordering::Relaxed) > now
    }

    fn record(&self, entry: &BidderEntry, ok: bool) {
        if ok {
            self.failures.store(0, Ordering::Relaxed);
            return;
        }
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= entry.circuit.eject_after {
            self.failures.store(0, Ordering::Relaxed);
            self.ejected_until
                .store(now_ms() + entry.circuit.eject_ms, Ordering::Relaxed);
            tracing::warn!(
                bidder = %entry.name,
                instance = %self.uri,
                consecutive_failures = n,
                eject_ms = entry.circuit.eject_ms,
                "instance ejected from its pool"
            );
        }
    }
}

/// What a bidder's connections are: its instances and pooled client. Kept
/// (shared) across registry reloads while endpoints and protocol are the
/// same, so connections are not thrown away.
#[derive(Debug)]
pub struct Transport {
    instances: Vec<Instance>,
    client: BidderClient,
}

/// A bidder: a seat with its settings, instances, pooled client, protection
/// state and instruments.
#[derive(Debug)]
pub struct Bidder {
    /// Seat name.
    pub name: String,
    /// Its settings as registered.
    pub entry: BidderEntry,
    transport: Arc<Transport>,
    health: Arc<Health>,
    patience: Arc<Patience>,
    metrics: Arc<BidderMetrics>,
}

impl Bidder {
    /// Builds a bidder from its settings (endpoints were validated before);
    /// with `guard`, its connections are checked against the endpoint
    /// policy at connect time (see [`BidderClient::new`]).
    pub fn new(
        entry: &BidderEntry,
        metrics: Arc<BidderMetrics>,
        guard: Option<Arc<crate::config::EndpointPolicy>>,
    ) -> Result<Self, ClientError> {
        let instances = entry
            .endpoints
            .iter()
            .filter_map(|e| e.parse::<Uri>().ok())
            .map(|uri| Instance {
                uri: with_path(uri),
                in_flight: AtomicUsize::new(0),
                sent: AtomicU64::new(0),
                failures: AtomicU32::new(0),
                ejected_until: AtomicU64::new(0),
            })
            .collect();
        Ok(Self {
            name: entry.name.clone(),
            entry: entry.clone(),
            transport: Arc::new(Transport {
                instances,
                client: BidderClient::new(entry, guard)?,
            }),
            health: Arc::new(Health::default()),
            patience: Arc::new(Patience::default()),
            metrics,
        })
    }

    /// The same bidder with new settings, keeping its connections, health
    /// and instruments; `None` when the transport changed (endpoints,
    /// protocol, CA), which needs [`Bidder::new`].
    pub fn renew(&self, entry: &BidderEntry) -> Option<Self> {
        self.entry.same_transport(entry).then(|| Self {
            name: entry.name.clone(),
            entry: entry.clone(),
            transport: self.transport.clone(),
            health: self.health.clone(),
            patience: self.patience.clone(),
            metrics: self.metrics.clone(),
        })
    }

    /// Instances, in endpoint order; never empty.
    pub fn instances(&self) -> &[Instance] {
        &self.transport.instances
    }

    /// Protection state (circuit, in-flight, timeout rate).
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Its recent latencies, for the adaptive wait.
    pub fn patience(&self) -> &Patience {
        &self.patience
    }

    /// This bidder's instruments.
    pub fn metrics(&self) -> &BidderMetrics {
        &self.metrics
    }

    /// Asks to call this bidder now (see [`Health::admit`]).
    pub fn admit(&self) -> Result<Permit<'_>, Skip> {
        self.health.admit(&self.entry)
    }

    /// Picks an instance by power of two choices on in-flight requests,
    /// among the instances not ejected.
    fn pick(&self) -> &Instance {
        let instances = self.instances();
        let n = instances.len();
        if n == 1 {
            return &instances[0];
        }
        let now = now_ms();
        let r = fast_rand();
        let a = (r % n as u64) as usize;
        // A second, different index: offset by 1..n so it never equals `a`.
        let b = (a + 1 + ((r >> 32) % (n as u64 - 1)) as usize) % n;
        // From each random start, the first instance not ejected (the start
        // itself when all are: better to try than to send nothing).
        let live = |start: usize| {
            (0..n)
                .map(|k| (start + k) % n)
                .find(|&i| !instances[i].ejected(now))
                .unwrap_or(start)
        };
        let (ia, ib) = (&instances[live(a)], &instances[live(b)]);
        if ib.in_flight() < ia.in_flight() {
            ib
        } else {
            ia
        }
    }

    /// Posts `body` to one instance and reads the answer, at most `max_body` bytes.
    /// The caller bounds the time (the deadline); this future may be dropped at any point.
    /// A call dropped unfinished counts as its instance's failure unless
    /// `excused` is true by then (the auction stopped waiting early: not
    /// the instance's fault).
    pub async fn call(&self, body: Bytes, max_body: usize, excused: &AtomicBool) -> CallResult {
        let instance = self.pick();
        instance.sent.fetch_add(1, Ordering::Relaxed);
        instance.in_flight.fetch_add(1, Ordering::Relaxed);
        // Decrements on every exit; a call dropped by the deadline counts as
        // the instance's failure.
        let mut guard = CallGuard {
            instance,
            entry: &self.entry,
            done: false,
            excused,
        };
        let result = self.send(instance, body, max_body).await;
        guard.done = true;
        instance.record(&self.entry, !result.is_failure());
        result
    }

    async fn send(&self, instance: &Instance, body: Bytes, max_body: usize) -> CallResult {
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = instance.uri.clone();
        let h = req.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(OPENRTB_VERSION_HEADER, HeaderValue::from_static("2.6"));
        if self.entry.protocol == Protocol::Http1 {
            *req.version_mut() = http::Version::HTTP_11;
        } else {
            *req.version_mut() = http::Version::HTTP_2;
        }
        let resp = match self.transport.client.request(req).await {
            Ok(resp) => resp,
            Err(e) => return CallResult::Transport(error_chain(&e)),
        };
        let status = resp.status();
        if status == StatusCode::NO_CONTENT {
            return CallResult::NoBid;
        }
        if status != StatusCode::OK {
            return CallResult::HttpStatus(status.as_u16());
        }
        match Limited::new(resp.into_body(), max_body).collect().await {
            Ok(collected) => {
                let bytes = collected.to_bytes();
                if bytes.iter().all(u8::is_ascii_whitespace) {
                    CallResult::NoBid
                } else {
                    CallResult::Body(bytes)
                }
            }
            Err(e) if e.is::<http_body_util::LengthLimitError>() => CallResult::TooLarge,
            Err(e) => CallResult::Transport(format!("reading body: {e}")),
        }
    }
}

/// What a bidder call produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallResult {
    /// A 200 with a body, to be decoded.
    Body(Bytes),
    /// 204, or 200 with an empty body: OpenRTB's no-bid.
    NoBid,
    /// A status other than 200/204.
    HttpStatus(u16),
    /// Connection or protocol error.
    Transport(String),
    /// The body was larger than allowed.
    TooLarge,
    /// No answer before the deadline.
    Timeout,
    /// Still out when the auction stopped waiting, before the deadline.
    NotAwaited(NotAwaited),
}

/// Why the fan-out stopped waiting for a bidder before the deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotAwaited {
    /// A secondary bidder, still out when every primary had answered.
    Secondary,
    /// Its own recent latencies say it is unlikely to answer in time.
    Unlikely,
}

impl NotAwaited {
    /// The reason written in `ext.seatnonbid` and the metric's label.
    pub fn reason(self) -> &'static str {
        match self {
            NotAwaited::Secondary => "secondary: not awaited",
            NotAwaited::Unlikely => "unlikely to answer in time",
        }
    }
}

/// How long the fan-out waits for one bidder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// To the deadline, or only until the instant given (the adaptive wait:
    /// past it an answer is unlikely to come in time).
    Primary(Option<Instant>),
    /// Not once every primary bidder has answered; as a primary when the
    /// auction has none.
    Secondary,
}

/// One bidder call of a fan-out.
#[derive(Debug)]
pub struct Call {
    /// The request body this bidder is sent (its own `tmax`).
    pub body: Bytes,
    /// How long to wait for it.
    pub wait: Wait,
}

impl CallResult {
    /// A failure for the circuit breaker and ejection: the bidder or its
    /// instance is unwell (no answer, broken connection, 5xx). A bad body is
    /// the bidder's bug, not its health.
    pub fn is_failure(&self) -> bool {
        match self {
            CallResult::Timeout | CallResult::Transport(_) => true,
            CallResult::HttpStatus(s) => *s >= 500,
            CallResult::Body(_)
            | CallResult::NoBid
            | CallResult::TooLarge
            | CallResult::NotAwaited(_) => false,
        }
    }
}

/// One bidder's answer with its timing.
#[derive(Debug)]
pub struct Answer {
    /// Index of the bidder in the set that was called.
    pub bidder: usize,
    /// Arrival order (0 = first answer); timeouts come last.
    pub arrival: u32,
    /// Time from fan-out start to answer (to the deadline for timeouts).
    pub latency: Duration,
    /// What came back.
    pub result: CallResult,
}

/// Calls every bidder in `bidders`, the `i`th with `calls[i]`, and collects
/// answers until every bidder that is waited for answered, or `deadline`
/// passed. Answers are in arrival order; the calls still out at the end
/// are timeouts, or [`CallResult::NotAwaited`] when the wait ended early.
pub async fn fan_out(
    bidders: &[Arc<Bidder>],
    calls: Vec<Call>,
    deadline: Instant,
    max_body: usize,
) -> Vec<Answer> {
    let start = Instant::now();
    // Secondaries are awaited as primaries when there is no primary.
    let has_primary = calls.iter().any(|c| c.wait != Wait::Secondary);
    let waits: Vec<Wait> = calls
        .iter()
        .map(|c| match c.wait {
            Wait::Secondary if !has_primary => Wait::Primary(None),
            w => w,
        })
        .collect();
    // Set when the wait ends early: the calls dropped then are not their
    // instances' failures.
    let excused = AtomicBool::new(false);
    let excused = &excused;
    let mut pending: FuturesUnordered<_> = bidders
        .iter()
        .zip(calls)
        .enumerate()
        .map(|(i, (b, call))| async move { (i, b.call(call.body, max_body, excused).await) })
        .collect();
    let mut answers = Vec::with_capacity(bidders.len());
    let mut answered = vec![false; bidders.len()];
    // Until when to wait: the latest of the waits of the primaries still
    // out (the deadline for those without an adaptive limit); `None` when
    // no primary is out.
    let wait_until = |answered: &[bool]| {
        waits
            .iter()
            .zip(answered)
            .filter(|(_, done)| !**done)
            .filter_map(|(w, _)| match w {
                Wait::Primary(until) => Some(until.map_or(deadline, |u| u.min(deadline))),
                Wait::Secondary => None,
            })
            .max()
    };
    let sleep = tokio::time::sleep_until(deadline);
    tokio::pin!(sleep);
    let mut stopped = deadline;
    loop {
        let Some(until) = wait_until(&answered) else {
            stopped = Instant::now();
            break;
        };
        if until != sleep.deadline() {
            sleep.as_mut().reset(until);
        }
        tokio::select! {
            // Answers that are ready win over the deadline when both are.
            biased;
            next = pending.next() => match next {
                Some((i, result)) => {
                    answered[i] = true;
                    answers.push(Answer {
                        bidder: i,
                        arrival: answers.len() as u32,
                        latency: start.elapsed(),
                        result,
                    });
                }
                None => break,
            },
            () = &mut sleep => {
                stopped = until;
                break;
            }
        }
    }
    let early = stopped < deadline;
    excused.store(early, Ordering::Relaxed);
    // Dropping the unfinished calls cancels them.
    drop(pending);
    let waited = stopped.saturating_duration_since(start);
    for (i, done) in answered.iter().enumerate() {
        if !done {
            let result = match (early, waits[i]) {
                (false, _) => CallResult::Timeout,
                (true, Wait::Secondary) => CallResult::NotAwaited(NotAwaited::Secondary),
                (true, Wait::Primary(_)) => CallResult::NotAwaited(NotAwaited::Unlikely),
            };
            answers.push(Answer {
                bidder: i,
                arrival: answers.len() as u32,
                latency: waited,
                result,
            });
        }
    }
    answers
}

struct CallGuard<'a> {
    instance: &'a Instance,
    entry: &'a BidderEntry,
    done: bool,
    excused: &'a AtomicBool,
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        self.instance.in_flight.fetch_sub(1, Ordering::Relaxed);
        if !self.done && !self.excused.load(Ordering::Relaxed) {
            self.instance.record(self.entry, false);
        }
    }
}

/// An endpoint without a path posts to `/`.
fn with_path(uri: Uri) -> Uri {
    if uri.path_and_query().is_some() {
        return uri;
    }
    let mut parts = uri.into_parts();
    parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    Uri::from_parts(parts).unwrap_or_else(|_| Uri::from_static("/"))
}

/// The error and its causes, so "connection refused" is not hidden behind
/// "client error (Connect)".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// A per-thread xorshift generator: instance choice needs speed, not quality,
/// and a shared generator would be a point of contention.
pub(crate) fn fast_rand() -> u64 {
    /// Seeds differ per thread; the odd constant spreads consecutive seeds.
    static SEED: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    thread_local! {
        static STATE: Cell<u64> = Cell::new(
            SEED.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed) | 1,
        );
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x
    })
}
