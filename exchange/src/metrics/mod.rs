//! Measurement: Prometheus counters and histograms, plus HDR percentiles.
//!
//! Every stage and every bidder is measured twice, cheaply: a Prometheus
//! histogram (fixed buckets, for `/metrics` and the HPA) and an HDR series
//! (for exact tails over the last 1 and 5 minutes at `/v1/stats/latency`).
//! Handles are resolved once per bidder when it first appears (at start, or
//! when the registry adds it) and kept on the bidder's runtime state, so the
//! hot path touches atomics and an uncontended shard lock, never a label
//! lookup.
//!
//! Names follow `rtb_<name>_<unit>[_total]`; the `_total` suffix of counters
//! is added by the encoder.

pub mod latency;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde::Serialize;

pub use latency::{Series, Summary, ROTATE_EVERY};

/// Default histogram buckets in milliseconds: fine below a millisecond for
/// the exchange's own stages, up to a second for bidders.
pub const DEFAULT_BUCKETS_MS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 150.0, 250.0, 500.0, 1000.0,
];

/// Stages of an auction, each with its own latency series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Arrival to response built.
    EndToEnd,
    /// Body decode and validation.
    Decode,
    /// Fan-out start to last answer or deadline.
    FanoutWait,
    /// Answer decoding, auction and response building.
    Auction,
    /// The bidders' request body (the publisher's, `tmax` patched in) and
    /// response encoding.
    Encode,
    /// The exchange's own share of an auction: arrival to response built,
    /// minus the fan-out wait (the slowest in-time bidder, or the deadline).
    Overhead,
    /// Admission to the auction's first run on the auction runtime: how
    /// long an admitted auction waited for a worker (the admission limit's
    /// queue signal, `server.max_queue_delay_ms`).
    Queue,
}

impl Stage {
    /// All stages, in report order.
    pub const ALL: [Stage; 7] = [
        Stage::EndToEnd,
        Stage::Decode,
        Stage::FanoutWait,
        Stage::Auction,
        Stage::Encode,
        Stage::Overhead,
        Stage::Queue,
    ];

    /// Label value.
    pub fn name(self) -> &'static str {
        match self {
            Stage::EndToEnd => "end_to_end",
            Stage::Decode => "decode",
            Stage::FanoutWait => "fanout_wait",
            Stage::Auction => "auction",
            Stage::Encode => "encode",
            Stage::Overhead => "overhead",
            Stage::Queue => "queue",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabel {
    stage: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BidderLabel {
    bidder: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BidderKindLabel {
    bidder: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BidderReasonLabel {
    bidder: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// The label of `rtb_win_notices_total`: what became of a win notice
/// (`sent`, `failed`, `dropped`, `refused_*`; see [`crate::notify::NoticeResult`]).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NoticeLabel {
    /// The result's name.
    pub result: &'static str,
}

/// One stage's instruments.
#[derive(Debug)]
pub struct StageMetrics {
    /// Prometheus histogram (seconds).
    pub histogram: Histogram,
    /// HDR series.
    pub series: Series,
}

/// One bidder's instruments.
#[derive(Debug)]
pub struct BidderMetrics {
    /// Bidder name.
    pub name: String,
    /// Requests sent.
    pub requests: Counter,
    /// Answers carrying at least one bid.
    pub bids: Counter,
    /// Impressions won.
    pub wins: Counter,
    /// No-bid answers.
    pub no_bids: Counter,
    /// No answer before the deadline.
    pub timeouts: Counter,
    /// Invalid answers (bad JSON, failed validation, too large, bad status).
    pub invalid: Counter,
    /// Transport errors (refused, reset, TLS).
    pub transport_errors: Counter,
    /// Auctions that left the bidder out (circuit open, concurrency or QPS
    /// limit): `rtb_bidder_errors_total{kind="not_called"}`.
    pub skipped: Counter,
    /// Calls the auction stopped waiting for before the deadline because
    /// the bidder is secondary and every primary had answered:
    /// `rtb_bidder_not_awaited_total{reason="secondary"}`.
    pub not_awaited_secondary: Counter,
    /// Calls the adaptive wait gave up on as unlikely to answer in time:
    /// `rtb_bidder_not_awaited_total{reason="unlikely"}`.
    pub not_awaited_unlikely: Counter,
    /// Response time, timeouts recorded at the deadline (seconds).
    pub histogram: Histogram,
    /// HDR series of the same.
    pub series: Series,
}

/// All of the exchange's instruments.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Publisher auction requests received (before shedding).
    pub requests: Counter,
    /// Requests shed because no auction slot was free.
    pub shed: Counter,
    /// Auctions in flight (the HPA's per-pod load signal).
    pub in_flight: Gauge,
    /// The adaptive admission limit: auctions allowed in flight now.
    pub admission_limit: Gauge,
    /// Auctions that answered with bids.
    pub outcome_bids: Counter,
    /// Auctions that answered 204.
    pub outcome_no_bid: Counter,
    /// Requests refused as bad input (400/408/413/415).
    pub outcome_bad_request: Counter,
    /// Publisher connections open now.
    pub connections_open: Gauge,
    /// Connections closed at accept because `server.max_connections` were open.
    pub connections_refused: Counter,
    /// Connections the exchange closed, by reason (`first_request_timeout`,
    /// `idle_timeout`).
    connections_closed: Family<ReasonLabel, Counter>,
    /// Refusals past `server.max_refusals_per_sec` that paused their
    /// connection's reads until their turn.
    pub refusals_paced: Counter,
    /// Per stage, in [`Stage::ALL`] order.
    pub stages: Vec<StageMetrics>,
    /// `rtb_win_notices_total{result}`: win notices by what became of them;
    /// the notifier creates one counter per result when it starts.
    pub win_notices: Family<NoticeLabel, Counter>,
    /// Per bidder name, created when the bidder first appears. A lock is
    /// fine: it is taken only off the hot path (registry reloads, HDR
    /// rotation, reports); auctions use the `Arc` the bidder holds.
    bidders: Mutex<BTreeMap<String, Arc<BidderMetrics>>>,
    families: BidderFamilies,
}

/// The label families bidder instruments are created from.
#[derive(Debug)]
struct BidderFamilies {
    histogram: Family<BidderLabel, Histogram, HistogramCtor>,
    requests: Family<BidderLabel, Counter>,
    bids: Family<BidderLabel, Counter>,
    wins: Family<BidderLabel, Counter>,
    no_bids: Family<BidderLabel, Counter>,
    timeouts: Family<BidderLabel, Counter>,
    errors: Family<BidderKindLabel, Counter>,
    not_awaited: Family<BidderReasonLabel, Counter>,
}

/// A histogram family whose members all use the configured buckets (in
/// seconds, as Prometheus expects).
fn histogram_family<L>(buckets_ms: &[f64]) -> Family<L, Histogram, HistogramCtor>
where
    L: Clone + std::hash::Hash + Eq,
{
    let seconds: Arc<[f64]> = buckets_ms.iter().map(|ms| ms / 1000.0).collect();
    Family::new_with_constructor(HistogramCtor { seconds })
}

/// Builds histograms with the configured buckets; a named type (not a
/// closure) so the family can be stored in a struct.
#[derive(Debug, Clone)]
struct HistogramCtor {
    seconds: Arc<[f64]>,
}

impl MetricConstructor<Histogram> for HistogramCtor {
    fn new_metric(&self) -> Histogram {
        Histogram::new(self.seconds.iter().copied())
    }
}

impl Metrics {
    /// Registers every instrument, one bidder series per name.
    pub fn new(bidders: &[String], buckets_ms: &[f64]) -> Self {
        let mut registry = Registry::with_prefix("rtb");
        let requests = Counter::default();
        registry.register(
            "auction_requests",
            "Publisher auction requests received",
            requests.clone(),
        );
        let shed = Counter::default();
        registry.register(
            "shed_requests",
            "Requests shed with 503 because no auction slot was free",
            shed.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "in_flight_auctions",
            "Auctions in flight",
            in_flight.clone(),
        );
        let admission_limit = Gauge::default();
        registry.register(
            "admission_limit",
            "Auctions the adaptive admission limit lets in flight now (at most server.max_in_flight)",
            admission_limit.clone(),
        );
        let outcomes = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "auctions",
            "Auctions answered, by outcome",
            outcomes.clone(),
        );
        let outcome = |o| outcomes.get_or_create(&OutcomeLabel { outcome: o }).clone();
        let connections_open = Gauge::default();
        registry.register(
            "connections_open",
            "Publisher connections open",
            connections_open.clone(),
        );
        let connections_refused = Counter::default();
        registry.register(
            "connections_refused",
            "Connections closed at accept because server.max_connections were open",
            connections_refused.clone(),
        );
        let refusals_paced = Counter::default();
        registry.register(
            "refusals_paced",
            "Refusals past server.max_refusals_per_sec that paused their connection's reads until their turn",
            refusals_paced.clone(),
        );
        let connections_closed = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "connections_closed",
            "Connections the exchange closed, by reason",
            connections_closed.clone(),
        );
        let win_notices = Family::<NoticeLabel, Counter>::default();
        registry.register(
            "win_notices",
            "Win notices (nurl) by result: sent, failed, dropped (queue full) or refused by the endpoint policy",
            win_notices.clone(),
        );
        let stage_family = histogram_family::<StageLabel>(buckets_ms);
        registry.register(
            "stage_duration_seconds",
            "Time spent per auction stage",
            stage_family.clone(),
        );
        let stages = Stage::ALL
            .iter()
            .map(|s| StageMetrics {
                histogram: stage_family
                    .get_or_create(&StageLabel { stage: s.name() })
                    .clone(),
                series: Series::new(),
            })
            .collect();
        let bidder_hist = histogram_family::<BidderLabel>(buckets_ms);
        registry.register(
            "bidder_duration_seconds",
            "Bidder response time; timeouts are recorded at the deadline",
            bidder_hist.clone(),
        );
        let counter_family = |registry: &mut Registry, name: &str, help: &str| {
            let f = Family::<BidderLabel, Counter>::default();
            registry.register(name, help, f.clone());
            f
        };
        let req_f = counter_family(
            &mut registry,
            "bidder_requests",
            "Requests sent to a bidder",
        );
        let bids_f = counter_family(
            &mut registry,
            "bidder_bids",
            "Bidder answers with at least one bid",
        );
        let wins_f = counter_family(&mut registry, "bidder_wins", "Impressions won by a bidder");
        let nobid_f = counter_family(&mut registry, "bidder_no_bids", "Bidder no-bid answers");
        let timeout_f = counter_family(
            &mut registry,
            "bidder_timeouts",
            "Bidder calls cut off by the deadline",
        );
        let errors_f = Family::<BidderKindLabel, Counter>::default();
        registry.register(
            "bidder_errors",
            "Bidder calls that failed, by kind (invalid answer or transport error)",
            errors_f.clone(),
        );
        let not_awaited_f = Family::<BidderReasonLabel, Counter>::default();
        registry.register(
            "bidder_not_awaited",
            "Bidder calls the auction stopped waiting for before the deadline, by reason (secondary: every primary had answered; unlikely: the adaptive wait)",
            not_awaited_f.clone(),
        );
        let families = BidderFamilies {
            histogram: bidder_hist,
            requests: req_f,
            bids: bids_f,
            wins: wins_f,
            no_bids: nobid_f,
            timeouts: timeout_f,
            errors: errors_f,
            not_awaited: not_awaited_f,
        };
        let m = Self {
            registry,
            requests,
            shed,
            in_flight,
            admission_limit,
            outcome_bids: outcome("bids"),
            outcome_no_bid: outcome("no_bid"),
            outcome_bad_request: outcome("bad_request"),
            connections_open,
            connections_refused,
            connections_closed,
            refusals_paced,
            stages,
            win_notices,
            bidders: Mutex::new(BTreeMap::new()),
            families,
        };
        for name in bidders {
            m.bidder(name);
        }
        m
    }

    /// The instruments of bidder `name`, created on its first appearance.
    /// Off the hot path: bidders hold the returned `Arc`.
    pub fn bidder(&self, name: &str) -> Arc<BidderMetrics> {
        let mut map = self.bidders.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = map.get(name) {
            return m.clone();
        }
        let f = &self.families;
        let l = BidderLabel {
            bidder: name.to_owned(),
        };
        let kind = |kind| {
            f.errors
                .get_or_create(&BidderKindLabel {
                    bidder: name.to_owned(),
                    kind,
                })
                .clone()
        };
        let not_awaited = |reason| {
            f.not_awaited
                .get_or_create(&BidderReasonLabel {
                    bidder: name.to_owned(),
                    reason,
                })
                .clone()
        };
        let m = Arc::new(BidderMetrics {
            name: name.to_owned(),
            requests: f.requests.get_or_create(&l).clone(),
            bids: f.bids.get_or_create(&l).clone(),
            wins: f.wins.get_or_create(&l).clone(),
            no_bids: f.no_bids.get_or_create(&l).clone(),
            timeouts: f.timeouts.get_or_create(&l).clone(),
            invalid: kind("invalid"),
            transport_errors: kind("transport"),
            skipped: kind("not_called"),
            not_awaited_secondary: not_awaited("secondary"),
            not_awaited_unlikely: not_awaited("unlikely"),
            histogram: f.histogram.get_or_create(&l).clone(),
            series: Series::new(),
        });
        map.insert(name.to_owned(), m.clone());
        m
    }

    fn bidder_list(&self) -> Vec<Arc<BidderMetrics>> {
        let map = self.bidders.lock().unwrap_or_else(|e| e.into_inner());
        map.values().cloned().collect()
    }

    /// Records a stage's duration in both instruments.
    pub fn stage(&self, stage: Stage, d: Duration) {
        let m = &self.stages[stage as usize];
        m.histogram.observe(d.as_secs_f64());
        m.series.record(d);
    }

    /// Counts a connection the exchange closed (`rtb_connections_closed_total{reason}`).
    pub fn connection_closed(&self, reason: &'static str) {
        self.connections_closed
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// Prometheus text exposition (format 0.0.4) of every instrument.
    pub fn encode(&self) -> String {
        let mut open_metrics = String::with_capacity(16 * 1024);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut open_metrics, &self.registry);
        to_prometheus_text(&open_metrics)
    }

    /// Closes the current HDR window of every series (called every [`ROTATE_EVERY`]).
    pub fn rotate(&self) {
        for s in &self.stages {
            s.series.rotate();
        }
        for b in self.bidder_list() {
            b.series.rotate();
        }
    }

    /// Percentiles per stage and per bidder over the last 1 and 5 minutes.
    pub fn latency_report(&self) -> LatencyReport {
        let windows = |series: &Series| Windows {
            last_1m: series.summary(Duration::from_secs(60)),
            last_5m: series.summary(Duration::from_secs(300)),
        };
        LatencyReport {
            stages: Stage::ALL
                .iter()
                .zip(&self.stages)
                .map(|(s, m)| (s.name().to_owned(), windows(&m.series)))
                .collect(),
            bidders: self
                .bidder_list()
                .iter()
                .map(|b| (b.name.clone(), windows(&b.series)))
                .collect(),
        }
    }
}

/// prometheus-client writes OpenMetrics, where a counter family `x` has
/// samples `x_total`; the Prometheus text format (what `promtool check
/// metrics` and older scrapers read) names the family `x_total` too, and has
/// no `# EOF` or `# UNIT` lines.
fn to_prometheus_text(open_metrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = open_metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len() + 256);
    for line in open_metrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                out.push_str(prefix);
                out.push_str(name);
                if counters.contains(name) {
                    out.push_str("_total");
                }
                out.push(' ');
                out.push_str(tail);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// The body of `GET /v1/stats/latency`.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyReport {
    /// Per stage.
    pub stages: std::collections::BTreeMap<String, Windows>,
    /// Per bidder.
    pub bidders: std::collections::BTreeMap<String, Windows>,
}

/// One series over two windows.
#[derive(Debug, Clone, Serialize)]
pub struct Windows {
    /// The last minute.
    pub last_1m: Summary,
    /// The last five minutes.
    pub last_5m: Summary,
}
