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
    decode_request, decode_response, patch_tmax, validate_request, validate_response,
    PATCH_HEADROOM,
};
use tokio::time::Instant;

use crate::auction::{self, LossReason};
use crate::budget::{day_of, Budgets, Clock, Leased, Refusal, SystemClock};
use crate::config::Config;
use crate::fanout::{fan_out, patience, Answer, Bidder, Call, CallResult, NotAwaited, Skip, Wait};
use crate::metrics::{Metrics, Stage, ROTATE_EVERY};
use crate::notify::Notifier;
use crate::outcome::{self, BidderStatus, Decoded};
use crate::registry::{BidderSet, Registry, RegistryError};

mod settle;

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
        let notifier = Notifier::spawn(&config.registry, &metrics.win_notices);
        Ok(Self {
            config: Arc::new(config),
            registry,
            notifier,
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

    /// False while auction events cannot be recorded durably (see
    /// [`EventSink::recording`](crate::events::EventSink::recording)).
    pub fn recording(&self) -> bool {
        self.events.as_ref().is_none_or(|e| e.recording())
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

    /// The exchange's instruments, shared (for tasks that outlive a borrow).
    pub fn shared_metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
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
    ///
    /// `body` (decompressed) is decoded and validated on the typed model,
    /// but bidders receive `body` itself, not the model re-encoded: every
    /// field the model does not know reaches them. The only field the
    /// exchange sets is the top-level `tmax`, patched in place to the time
    /// the bidders have left ([`patch_tmax`]); nothing else in the request
    /// is changed, so nothing else is patched.
    ///
    /// `timer_slack` is how late timers have recently fired (the overload
    /// detector's peak lateness): the fan-out's timer is set that much
    /// earlier, so a starved runtime still answers by the deadline.
    pub async fn auction(&self, body: &[u8], arrival: Instant, timer_slack: Duration) -> Reply {
        self.auction_timed(body, arrival, timer_slack).await.0
    }

    /// [`auction`](Self::auction), also returning the request's deadline
    /// (`arrival + tmax`) once it is known (not for a request refused at
    /// decoding): the admission limit learns from answers that came late.
    pub async fn auction_timed(
        &self,
        body: &[u8],
        arrival: Instant,
        timer_slack: Duration,
    ) -> (Reply, Option<Instant>) {
        let started = Instant::now();
        let a = &self.config.auction;
        let decoded = settle::off_worker(body.len() >= settle::HEAVY_BYTES, || {
            let request = decode_request(body).map_err(|e| e.to_string())?;
            // Before validation, which is linear in imps too.
            if request.imp.len() > a.max_imps_per_request {
                return Err(format!(
                    "imp: {} imps, more than auction.max_imps_per_request ({})",
                    request.imp.len(),
                    a.max_imps_per_request
                ));
            }
            validate_request(&request).map_err(|v| v.to_string())?;
            Ok(request)
        });
        let request = match decoded {
            Ok(r) => r,
            Err(msg) => return (Reply::BadRequest(msg), None),
        };
        self.metrics.stage(Stage::Decode, started.elapsed());
        let currency = request
            .cur
            .first()
            .map_or(DEFAULT_CURRENCY, String::as_str)
            .to_owned();
        if let Err(msg) = settle::check_floors(&request, &currency) {
            return (Reply::BadRequest(msg), None);
        }
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
            return (Reply::NoBid, Some(arrival + budget));
        }
        // Bidders get the publisher's own bytes (decompressed), not the typed
        // model re-encoded: fields the model does not know survive. The one
        // field the exchange sets is the top-level `tmax` (see `patched`).
        let encode_started = Instant::now();
        let out = match patched(body, tmax_for_bidders) {
            Ok(out) => out,
            Err(e) => {
                // Unreachable: `decode_request` accepts only one JSON object
                // (structs are never read from arrays). Refused rather than
                // guessed at, should the decoder and the patcher ever disagree.
                tracing::warn!(error = %e, "a decoded request could not be patched");
                return (
                    Reply::BadRequest(format!("body: cannot be forwarded: {e}")),
                    None,
                );
            }
        };
        let request_encode = encode_started.elapsed();
        // Admission never waits: a bidder that cannot take the call now is
        // a seat-non-bid, and its permit-holding peers are unaffected.
        let mut who = Participants {
            called: Vec::with_capacity(set.active.len()),
            skipped: Vec::new(),
        };
        let mut permits = Vec::with_capacity(set.active.len());
        let today = self.budgets.as_ref().map(|_| day_of(self.clock.now_ms()));
        let recording = self.recording();
        for b in &set.active {
            // No bidder is called while a win's event could be lost (journal
            // or spool unwritable): its debit would be. A bidder that could
            // not pay for a win is not called at all either.
            let why = if !recording {
                Some(Skip::Unrecorded)
            } else if let (Some(budgets), Some(day)) = (&self.budgets, today) {
                match budgets.blocked(&b.name, day, &currency) {
                    Some(Refusal::Exhausted | Refusal::Paced) => Some(Skip::Budget),
                    Some(Refusal::Currency) => Some(Skip::BudgetCurrency),
                    Some(Refusal::OutOfFlight) => Some(Skip::OutOfFlight),
                    None => None,
                }
            } else {
                None
            };
            // A deduction that eats all the time left: not worth a call.
            let why =
                why.or((b.entry.tmax_deduction_ms >= tmax_for_bidders).then_some(Skip::NoTime));
            if let Some(skip) = why {
                b.metrics().skipped.inc();
                who.skipped.push((b.clone(), skip));
                continue;
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
        let fanout_started = Instant::now();
        // Never more than half of what is left: a bidder must get a chance.
        let slack = timer_slack.min(deadline.saturating_duration_since(fanout_started) / 2);
        let fan_deadline = deadline - slack;
        let plan = self.plan(
            &who.called,
            out,
            body,
            tmax_for_bidders,
            fanout_started,
            fan_deadline,
        );
        let answers = fan_out(
            &who.called,
            plan.calls,
            fan_deadline,
            a.max_bidder_response_bytes,
        )
        .await;
        // Every call has ended or been dropped: the slots are free again.
        drop(permits);
        if plan.record {
            record_patience(&who.called, &answers, &a.adaptive_wait);
        }
        let fanout_wait = fanout_started.elapsed();
        self.metrics.stage(Stage::FanoutWait, fanout_wait);
        let settle_started = Instant::now();
        let answer_bytes: usize = answers
            .iter()
            .map(|a| match &a.result {
                CallResult::Body(b) => b.len(),
                _ => 0,
            })
            .sum();
        let heavy = body.len().saturating_add(answer_bytes) >= settle::HEAVY_BYTES;
        // Wins are awarded only before the request's own deadline: tmax
        // from arrival, not the fan-out's (which leaves the response margin).
        let (reply, response_encode) = settle::off_worker(heavy, || {
            self.settle(&request, &currency, budget, arrival + budget, answers, &who)
        });
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
        (reply, Some(arrival + budget))
    }

    /// Each called bidder's body and wait. A bidder with a
    /// `tmax_deduction_ms` gets `original` patched to its own smaller tmax
    /// (one patch per distinct deduction); a secondary bidder is not waited
    /// for once the primaries answered; with the adaptive wait on, each
    /// primary is waited for only while its answer is still likely to come
    /// in time, except in the explore share of auctions.
    fn plan(
        &self,
        called: &[Arc<Bidder>],
        body: Bytes,
        original: &[u8],
        tmax_for_bidders: u32,
        started: Instant,
        deadline: Instant,
    ) -> Plan {
        let adaptive = &self.config.auction.adaptive_wait;
        let explore = adaptive.enabled && patience::explore(adaptive);
        let wait_for = deadline.saturating_duration_since(started);
        let now_ms = crate::fanout::health::now_ms();
        let mut limited = false;
        // Deduction → its body; empty (no allocation) without deductions.
        let mut deducted: Vec<(u32, Bytes)> = Vec::new();
        let calls = called
            .iter()
            .map(|b| {
                let cut = b.entry.tmax_deduction_ms;
                let body = if cut == 0 {
                    body.clone()
                } else if let Some((_, own)) = deducted.iter().find(|(d, _)| *d == cut) {
                    own.clone()
                } else {
                    // The bidder was skipped unless some time is left.
                    // The same bytes were patched once already: a failure
                    // is not reached; the common body is the fallback.
                    let own = patched(original, tmax_for_bidders.saturating_sub(cut))
                        .unwrap_or_else(|_| body.clone());
                    deducted.push((cut, own.clone()));
                    own
                };
                let wait = if b.entry.secondary {
                    Wait::Secondary
                } else if adaptive.enabled && !explore {
                    let until = b
                        .patience()
                        .give_up_after(adaptive, now_ms, wait_for)
                        .map(|d| started + d);
                    limited |= until.is_some();
                    Wait::Primary(until)
                } else {
                    Wait::Primary(None)
                };
                Call { body, wait }
            })
            .collect();
        Plan {
            calls,
            // Only a wait that nobody cut short shows what the late answers
            // were (see `fanout::patience`).
            record: adaptive.enabled && !limited,
        }
    }

    /// Decodes the answers, runs the auction, awards its wins (only before
    /// `deadline`, see [`settle::award`]) and builds the reply; also returns
    /// the time spent encoding the response.
    fn settle(
        &self,
        request: &BidRequest,
        currency: &str,
        budget: Duration,
        deadline: Instant,
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
        let config = &self.config.auction;
        let rules = settle::rules(request, config);
        let names: Vec<&str> = (0..n + who.skipped.len())
            .map(|i| who.bidder(i).name.as_str())
            .collect();
        let (mut offers, sources) = settle::offers(request, currency, &names, &decoded, config);
        // One reading of the clock: the leases' day and the event's time
        // agree, so the ledger debits the lease the win was awarded from.
        let now_ms = self.clock.now_ms();
        let day = day_of(now_ms);
        let mut result = auction::run(&rules, &offers);
        let budgets = self.budgets.as_deref();
        // Per imp, the leases its win was paid from (empty without budgets):
        // the event carries them so the ledger debits exactly those leases.
        let mut leased: Vec<Leased> = Vec::new();
        if budgets.is_some() {
            leased.resize(result.wins.len(), Leased::NONE);
        }
        settle::award(
            &rules,
            &mut offers,
            &mut result,
            deadline,
            Instant::now,
            |i, offer, clearing| {
                let Some(b) = budgets else { return Ok(()) };
                let cid = offer_cid(&sources, &decoded, i);
                match b.reserve(offer.seat, cid, clearing.0, day, currency) {
                    Ok(paid) => {
                        if let Some(slot) = offer.imp.and_then(|imp| leased.get_mut(imp)) {
                            *slot = paid;
                        }
                        Ok(())
                    }
                    Err(Refusal::OutOfFlight) => Err(LossReason::OutOfFlight),
                    Err(Refusal::Paced) => Err(LossReason::Paced),
                    Err(Refusal::Exhausted | Refusal::Currency) => Err(LossReason::BudgetExhausted),
                }
            },
        );
        // A macro, not a closure: built again after a withdrawal changed
        // `result` (a closure would hold one borrow of it throughout).
        macro_rules! input {
            ($result:expr) => {
                outcome::Input {
                    request,
                    currency,
                    budget,
                    bidder_names: &names,
                    decoded: &decoded,
                    sources: &sources,
                    result: $result,
                    strip_nurl: config.fire_nurl,
                }
            };
        }
        // One event per auction that reached the bidders, winners or not;
        // `emit` never waits (see `events`).
        if let Some(events) = &self.events {
            let seq = self.seq.fetch_add(1, Ordering::Relaxed);
            let auction_id = format!("{}-{seq:x}", self.instance);
            let first = crate::events::auction_result(
                &input!(&result),
                &leased,
                now_ms,
                auction_id,
                &self.instance,
            );
            if let Err(unwritten) = events.emit_recorded(first) {
                // The journal could not take it (disk full): a win whose
                // debit could be lost is not awarded. Withdrawn before the
                // answer leaves: the leases get the money back, the
                // publisher gets no bid, and the auction is recorded
                // without winners (no money in it, so nothing to lose).
                for (imp, win) in result.wins.iter_mut().enumerate() {
                    let Some(w) = win.take() else { continue };
                    if let Some(b) = budgets {
                        let paid = leased.get(imp).copied().unwrap_or(Leased::NONE);
                        let seat = offers[w.offer].seat;
                        b.unreserve(
                            seat,
                            offer_cid(&sources, &decoded, w.offer),
                            w.clearing.0,
                            day,
                            paid,
                        );
                    }
                    result.reasons[w.offer] = LossReason::Unrecorded;
                }
                leased.iter_mut().for_each(|l| *l = Leased::NONE);
                events.emit(crate::events::auction_result(
                    &input!(&result),
                    &leased,
                    now_ms,
                    unwritten.auction_id,
                    &self.instance,
                ));
            }
        }
        let built = outcome::build(input!(&result));
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

/// A fan-out's calls, and whether its answers feed the adaptive wait.
struct Plan {
    calls: Vec<Call>,
    record: bool,
}

/// `original` with its top-level `tmax` set to `tmax` (see `patch_tmax`),
/// in one buffer. The patch is a linear scan, far cheaper than the decode,
/// but for a body of HEAVY_BYTES or more it still runs off the worker: at
/// the size limits operators allow (megabytes of imps) it would otherwise
/// hold up the auctions queued on this worker for milliseconds, and such a
/// body already paid for the hand-over once (see settle).
fn patched(original: &[u8], tmax: u32) -> Result<Bytes, rtb_proto::PatchError> {
    let mut out = Vec::with_capacity(original.len() + PATCH_HEADROOM);
    settle::off_worker(original.len() >= settle::HEAVY_BYTES, || {
        patch_tmax(original, tmax, &mut out)
    })?;
    Ok(Bytes::from(out))
}

/// Feeds a fan-out that waited for every primary bidder to the deadline
/// into their adaptive-wait records: answers at their latency, calls that
/// brought no usable answer (timeouts, errors) as still out at the time
/// they ended. Secondaries are never waited for, so they do not record.
fn record_patience(called: &[Arc<Bidder>], answers: &[Answer], cfg: &crate::config::AdaptiveWait) {
    let now_ms = crate::fanout::health::now_ms();
    for a in answers {
        let b = &called[a.bidder];
        if b.entry.secondary {
            continue;
        }
        match a.result {
            CallResult::Body(_) | CallResult::NoBid => {
                b.patience().answered(cfg, now_ms, a.latency);
            }
            CallResult::NotAwaited(_) => {}
            _ => b.patience().censored(cfg, now_ms, a.latency),
        }
    }
}

/// Counts one bidder answer, records its latency, and tells its circuit
/// breaker how the call went.
fn record_answer(bidder: &Bidder, d: &Decoded) {
    let m = bidder.metrics();
    m.requests.inc();
    let counter = match d.status {
        BidderStatus::Bids(_) => &m.bids,
        BidderStatus::NoBid => &m.no_bids,
        BidderStatus::Timeout => &m.timeouts,
        BidderStatus::Invalid(_) => &m.invalid,
        BidderStatus::Error(_) | BidderStatus::Skipped(_) => &m.transport_errors,
        BidderStatus::NotAwaited(NotAwaited::Secondary) => &m.not_awaited_secondary,
        BidderStatus::NotAwaited(NotAwaited::Unlikely) => &m.not_awaited_unlikely,
    };
    counter.inc();
    if matches!(d.status, BidderStatus::NotAwaited(_)) {
        // Not the bidder's latency nor its health: the auction moved on.
        return;
    }
    m.histogram.observe(d.latency.as_secs_f64());
    m.series.record(d.latency);
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
        CallResult::NotAwaited(why) => BidderStatus::NotAwaited(why),
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
