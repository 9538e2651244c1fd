//! One auction, start to end: decode → validate → deadline → fan-out → bids → auction → response.
//!
//! This is the hot path. It never awaits anything but the bidders (bounded
//! by the deadline), and it never blocks: win notices go to a bounded queue.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rtb_proto::openrtb::{BidRequest, BidResponse};
use rtb_proto::{
    decode_request, decode_response, encode_request, validate_request, validate_response,
};
use tokio::time::Instant;

use crate::auction::{self, AuctionType, DealRule, ImpRule, Offer, Rules};
use crate::budget::{day_of, Budgets, Clock, SystemClock};
use crate::config::Config;
use crate::fanout::{fan_out, Answer, Bidder, CallResult, Skip};
use crate::metrics::{Metrics, Stage, ROTATE_EVERY};
use crate::notify::Notifier;
use crate::outcome::{self, BidderStatus, Decoded};
use crate::registry::{BidderSet, Registry, RegistryError};

/// Currency assumed when a request or an answer names none (OpenRTB default).
pub const DEFAULT_CURRENCY: &str = "USD";

/// What the publisher gets.
#[derive(Debug)]
pub enum Reply {
    /// 200 with this BidResponse JSON.
    Bids(Bytes),
    /// 204: nothing won.
    NoBid,
    /// 400 with this message naming the field.
    BadRequest(String),
}

/// The exchange's shared state: configuration, bidder registry, notice queue.
#[derive(Debug)]
pub struct Exchange {
    /// The configuration it was built from.
    pub config: Arc<Config>,
    registry: Arc<Registry>,
    notifier: Notifier,
    metrics: Arc<Metrics>,
    /// Auction-result events (`events`); `None` when `[kafka] enabled = false`.
    events: Option<crate::events::EventSink>,
    /// Budget leases (`budget`); `None` when budgets are off.
    budgets: Option<Arc<Budgets>>,
    /// Days, lease expiry and event times.
    clock: Arc<dyn Clock>,
    /// This process's id: in auction ids, events and leases.
    instance: Arc<str>,
    /// Auctions started by this process; with `instance`, the auction id.
    seq: AtomicU64,
}

/// A process id unique across replicas and restarts: the host name (the
/// pod's name in Kubernetes) and 128 random bits, so two starts on one host
/// never share auction ids (the ledger would drop the second's debits as
/// duplicates).
pub fn instance_id() -> Arc<str> {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "exchange".to_owned());
    format!("{host}-{:032x}", rand::random::<u128>()).into()
}

/// The bidders of one auction: the called ones first, then the skipped ones;
/// answers and non-bids refer to bidders by their index here.
struct Participants {
    called: Vec<Arc<Bidder>>,
    skipped: Vec<(Arc<Bidder>, Skip)>,
}

impl Participants {
    fn bidder(&self, i: usize) -> &Bidder {
        match self.called.get(i) {
            Some(b) => b,
            None => &self.skipped[i - self.called.len()].0,
        }
    }
}

impl Exchange {
    /// Opens the bidder registry (database, seeding, poller), builds the
    /// bidders' clients and starts the background tasks (needs a runtime).
    pub async fn new(config: Config) -> Result<Self, RegistryError> {
        let names: Vec<String> = config.bidders.iter().map(|b| b.name.clone()).collect();
        let metrics = Arc::new(Metrics::new(&names, &config.metrics.buckets_ms));
        spawn_rotation(&metrics);
        let registry = Registry::open(&config, metrics.clone()).await?;
        registry.spawn_poller(Duration::from_millis(config.registry.poll_interval_ms));
        Ok(Self {
            config: Arc::new(config),
            registry,
            notifier: Notifier::spawn(),
            metrics,
            events: None,
            budgets: None,
            clock: Arc::new(SystemClock),
            instance: instance_id(),
            seq: AtomicU64::new(0),
        })
    }

    /// Awards wins only within `budgets`' leases; its clock and instance id
    /// become the exchange's.
    pub fn with_budgets(mut self, budgets: Arc<Budgets>) -> Self {
        self.clock = budgets.clock().clone();
        self.instance = budgets.instance().into();
        self.budgets = Some(budgets);
        self
    }

    /// Uses `clock` for event times (and, through [`with_budgets`](Self::with_budgets), days).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// This process's instance id.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The budget leases, when budgets are on.
    pub fn budgets(&self) -> Option<&Arc<Budgets>> {
        self.budgets.as_ref()
    }

    /// The bidder registry.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The auction-result event counters, when events are on.
    pub fn event_counters(&self) -> Option<&Arc<crate::events::EventCounters>> {
        self.events.as_ref().map(|e| e.counters())
    }

    /// Publishes an auction-result event per auction to `sink`.
    pub fn with_events(mut self, sink: crate::events::EventSink) -> Self {
        self.events = Some(sink);
        self
    }

    /// The exchange's instruments.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The bidders auctions fan out to now.
    pub fn bidders(&self) -> Arc<BidderSet> {
        self.registry.current()
    }

    /// The win-notice queue.
    pub fn notifier(&self) -> &Notifier {
        &self.notifier
    }

    /// Runs one auction for a request body that arrived at `arrival`.
    pub async fn auction(&self, body: &[u8], arrival: Instant) -> Reply {
        let started = Instant::now();
        let mut request = match decode_request(body) {
            Ok(r) => r,
            Err(e) => return Reply::BadRequest(e.to_string()),
        };
        if let Err(v) = validate_request(&request) {
            return Reply::BadRequest(v.to_string());
        }
        self.metrics.stage(Stage::Decode, started.elapsed());
        let currency = request
            .cur
            .first()
            .map_or(DEFAULT_CURRENCY, String::as_str)
            .to_owned();
        if let Err(msg) = check_floor_currency(&request, &currency) {
            return Reply::BadRequest(msg);
        }
        let a = &self.config.auction;
        let budget = a.budget(request.tmax);
        // The fan-out ends early enough to run the auction and answer in time.
        let deadline = arrival + budget.saturating_sub(a.response_margin());
        // Bidders are told what is left, less the network's share.
        let left = deadline
            .saturating_duration_since(Instant::now())
            .saturating_sub(a.bidder_network_margin());
        let tmax_for_bidders = left.as_millis() as u32;
        // One snapshot per auction: a registry change applies from the next one.
        let set = self.registry.current();
        if tmax_for_bidders == 0 || set.active.is_empty() {
            return Reply::NoBid;
        }
        // Admission never waits: a bidder that cannot take the call now is
        // a seat-non-bid, and its permit-holding peers are unaffected.
        let mut who = Participants {
            called: Vec::with_capacity(set.active.len()),
            skipped: Vec::new(),
        };
        let mut permits = Vec::with_capacity(set.active.len());
        let today = self.budgets.as_ref().map(|_| day_of(self.clock.now_ms()));
        for b in &set.active {
            // A bidder that could not pay for a win is not called at all.
            if let (Some(budgets), Some(day)) = (&self.budgets, today) {
                if let Some(why) = budgets.blocked(&b.name, day, &currency) {
                    let skip = match why {
                        crate::budget::Refusal::Exhausted => Skip::Budget,
                        crate::budget::Refusal::Currency => Skip::BudgetCurrency,
                    };
                    b.metrics().skipped.inc();
                    who.skipped.push((b.clone(), skip));
                    continue;
                }
            }
            match b.admit() {
                Ok(p) => {
                    permits.push(p);
                    who.called.push(b.clone());
                }
                Err(skip) => {
                    b.metrics().skipped.inc();
                    who.skipped.push((b.clone(), skip));
                }
            }
        }
        let encode_started = Instant::now();
        let original_tmax = request.tmax;
        request.tmax = Some(tmax_for_bidders);
        let mut out = Vec::with_capacity(body.len() + 16);
        encode_request(&request, &mut out);
        request.tmax = original_tmax;
        let request_encode = encode_started.elapsed();
        let fanout_started = Instant::now();
        let answers = fan_out(
            &who.called,
            Bytes::from(out),
            deadline,
            a.max_bidder_response_bytes,
        )
        .await;
        // Every call has ended or been dropped: the slots are free again.
        drop(permits);
        let fanout_wait = fanout_started.elapsed();
        self.metrics.stage(Stage::FanoutWait, fanout_wait);
        let settle_started = Instant::now();
        let (reply, response_encode) = self.settle(&request, &currency, budget, answers, &who);
        self.metrics.stage(
            Stage::Auction,
            settle_started.elapsed().saturating_sub(response_encode),
        );
        self.metrics
            .stage(Stage::Encode, request_encode + response_encode);
        self.metrics.stage(
            Stage::Overhead,
            arrival.elapsed().saturating_sub(fanout_wait),
        );
        reply
    }

    /// Decodes the answers, runs the auction and builds the reply; also
    /// returns the time spent encoding the response.
    fn settle(
        &self,
        request: &BidRequest,
        currency: &str,
        budget: Duration,
        answers: Vec<Answer>,
        who: &Participants,
    ) -> (Reply, Duration) {
        let mut decoded: Vec<Decoded> = answers
            .into_iter()
            .map(|a| decode_answer(request, a))
            .collect();
        for d in &decoded {
            record_answer(who.bidder(d.bidder), d);
        }
        let n = who.called.len();
        decoded.extend(
            who.skipped
                .iter()
                .enumerate()
                .map(|(j, (_, skip))| Decoded {
                    bidder: n + j,
                    arrival: (n + j) as u32,
                    latency: Duration::ZERO,
                    failed: false,
                    status: BidderStatus::Skipped(*skip),
                }),
        );
        let imps: Vec<ImpRule<'_>> = request.imp.iter().map(imp_rule).collect();
        let rules = Rules {
            auction_type: AuctionType::from_at(request.at.and_then(|at| u8::try_from(at).ok())),
            imps,
            bcat: &request.bcat,
            badv: &request.badv,
            bapp: &request.bapp,
        };
        // One reading of the clock: the leases' day and the event's time
        // agree, so the ledger debits the lease the win was awarded from.
        let now_ms = self.clock.now_ms();
        let day = day_of(now_ms);
        let budgets = self.budgets.as_deref();
        let mut offers = Vec::new();
        let mut sources = Vec::new();
        for (d, answer) in decoded.iter().enumerate() {
            let BidderStatus::Bids(resp) = &answer.status else {
                continue;
            };
            let seat = who.bidder(answer.bidder).name.as_str();
            let currency_ok = resp.cur.as_deref().unwrap_or(DEFAULT_CURRENCY) == currency;
            for (s, seatbid) in resp.seatbid.iter().enumerate() {
                for (b, bid) in seatbid.bid.iter().enumerate() {
                    offers.push(Offer {
                        seat,
                        arrival: answer.arrival,
                        imp: request.imp.iter().position(|i| i.id == bid.impid),
                        price: bid.price,
                        currency_ok,
                        adomain: &bid.adomain,
                        cat: &bid.cat,
                        bundle: bid.bundle.as_deref(),
                        dealid: bid.dealid.as_deref(),
                        affordable: true,
                    });
                    sources.push((d, s, b));
                }
            }
        }
        let mut result = auction::run(&rules, &offers);
        if let Some(b) = budgets {
            pay_wins(
                b,
                &rules,
                &mut offers,
                &mut result,
                &sources,
                &decoded,
                day,
                currency,
            );
        }
        let names: Vec<&str> = (0..n + who.skipped.len())
            .map(|i| who.bidder(i).name.as_str())
            .collect();
        let input = outcome::Input {
            request,
            currency,
            budget,
            bidder_names: &names,
            decoded: &decoded,
            sources: &sources,
            result: &result,
            strip_nurl: self.config.auction.fire_nurl,
        };
        // One event per auction that reached the bidders, winners or not;
        // `emit` never waits (see `events`).
        if let Some(events) = &self.events {
            let seq = self.seq.fetch_add(1, Ordering::Relaxed);
            let auction_id = format!("{}-{seq:x}", self.instance);
            events.emit(crate::events::auction_result(
                &input,
                now_ms,
                auction_id,
                &self.instance,
            ));
        }
        let built = outcome::build(input);
        for win in result.wins.iter().flatten() {
            let (d, _, _) = sources[win.offer];
            who.bidder(decoded[d].bidder).metrics().wins.inc();
        }
        for url in built.notices {
            self.notifier.notify(url);
        }
        let reply = match built.response {
            Some(resp) => Reply::Bids(Bytes::from(resp)),
            None => Reply::NoBid,
        };
        (reply, built.encode_time)
    }
}

/// The campaign (`Bid.cid`) of an offer.
fn offer_cid<'a>(
    sources: &[(usize, usize, usize)],
    decoded: &'a [Decoded],
    offer: usize,
) -> Option<&'a str> {
    let (d, s, b) = sources[offer];
    match &decoded[d].status {
        BidderStatus::Bids(resp) => resp.seatbid[s].bid[b].cid.as_deref(),
        _ => None,
    }
}

/// Takes each win's clearing price out of the budget leases it is charged
/// to. A winner they cannot pay loses (loss reason 1000) and the auction
/// runs again without it, so the next bid wins, priced against what is left.
/// Imps are priced independently, so a rerun leaves the wins already paid
/// for as they were. At most one rerun per offer.
#[allow(clippy::too_many_arguments)]
fn pay_wins(
    budgets: &Budgets,
    rules: &Rules<'_>,
    offers: &mut [Offer<'_>],
    result: &mut auction::Outcome,
    sources: &[(usize, usize, usize)],
    decoded: &[Decoded],
    day: i64,
    currency: &str,
) {
    let mut paid = vec![false; offers.len()];
    loop {
        let unpaid = result.wins.iter().flatten().find_map(|w| {
            if paid[w.offer] {
                return None;
            }
            let cid = offer_cid(sources, decoded, w.offer);
            if budgets.reserve(offers[w.offer].seat, cid, w.clearing.0, day, currency) {
                paid[w.offer] = true;
                None
            } else {
                Some(w.offer)
            }
        });
        let Some(offer) = unpaid else { return };
        offers[offer].affordable = false;
        *result = auction::run(rules, offers);
    }
}

/// Counts one bidder answer, records its latency, and tells its circuit
/// breaker how the call went.
fn record_answer(bidder: &Bidder, d: &Decoded) {
    let m = bidder.metrics();
    m.requests.inc();
    m.histogram.observe(d.latency.as_secs_f64());
    m.series.record(d.latency);
    let counter = match d.status {
        BidderStatus::Bids(_) => &m.bids,
        BidderStatus::NoBid => &m.no_bids,
        BidderStatus::Timeout => &m.timeouts,
        BidderStatus::Invalid(_) => &m.invalid,
        BidderStatus::Error(_) | BidderStatus::Skipped(_) => &m.transport_errors,
    };
    counter.inc();
    let timeout = matches!(d.status, BidderStatus::Timeout);
    bidder
        .health()
        .record(&bidder.entry, d.failed && !timeout, timeout);
}

/// Closes an HDR window every [`ROTATE_EVERY`], off the hot path; stops when
/// the exchange (the last strong reference) is dropped.
fn spawn_rotation(metrics: &Arc<Metrics>) {
    let weak = Arc::downgrade(metrics);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(ROTATE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(m) = weak.upgrade() else { return };
            m.rotate();
        }
    });
}

fn imp_rule(imp: &rtb_proto::openrtb::Imp) -> ImpRule<'_> {
    let pmp = imp.pmp.as_ref();
    ImpRule {
        id: &imp.id,
        floor: imp.bidfloor,
        private_auction: pmp.and_then(|p| p.private_auction) == Some(1),
        deals: pmp
            .map(|p| {
                p.deals
                    .iter()
                    .map(|d| DealRule {
                        id: &d.id,
                        floor: d.bidfloor,
                        wseat: &d.wseat,
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Floors must be in the auction currency: the exchange has no conversion rates.
fn check_floor_currency(request: &BidRequest, currency: &str) -> Result<(), String> {
    for (i, imp) in request.imp.iter().enumerate() {
        let floor_cur = imp.bidfloorcur.as_deref().unwrap_or(DEFAULT_CURRENCY);
        if imp.bidfloor.0 > 0 && !floor_cur.eq_ignore_ascii_case(currency) {
            return Err(format!(
                "imp[{i}].bidfloorcur: floor currency {floor_cur} differs from the auction currency {currency} \
                 (cur[0]) and the exchange has no conversion rates"
            ));
        }
    }
    Ok(())
}

/// Turns a raw answer into bids or a reason why there are none.
fn decode_answer(request: &BidRequest, answer: Answer) -> Decoded {
    let failed = answer.result.is_failure();
    let status = match answer.result {
        CallResult::Body(bytes) => match decode_response(&bytes) {
            Err(e) => BidderStatus::Invalid(format!("invalid response: {e}")),
            Ok(resp) => classify(request, resp),
        },
        CallResult::NoBid => BidderStatus::NoBid,
        CallResult::Timeout => BidderStatus::Timeout,
        CallResult::TooLarge => BidderStatus::Invalid("invalid response: body too large".into()),
        CallResult::HttpStatus(s) => BidderStatus::Invalid(format!("http status {s}")),
        CallResult::Transport(e) => BidderStatus::Error(e),
    };
    Decoded {
        bidder: answer.bidder,
        arrival: answer.arrival,
        latency: answer.latency,
        failed,
        status,
    }
}

fn classify(request: &BidRequest, resp: BidResponse) -> BidderStatus {
    if resp.seatbid.iter().all(|s| s.bid.is_empty()) {
        return BidderStatus::NoBid;
    }
    if let Err(v) = validate_response(&resp) {
        return BidderStatus::Invalid(format!("invalid response: {v}"));
    }
    if resp.id != request.id {
        return BidderStatus::Invalid(format!(
            "invalid response: id: {:?} does not match the request id",
            resp.id
        ));
    }
    BidderStatus::Bids(resp)
}
