//! Budgets on the hot path: leases held in memory, refilled in the background.
//!
//! An exchange instance awards a win only within budget it holds as a lease
//! ([`rtb_ledger::leases`], the lease interface, grants leases with an
//! atomic conditional update in the ledger's database; this crate cannot
//! reach the database any other way). The auction asks [`Budgets`] three questions, all
//! answered from memory under a per-account mutex held for a few
//! instructions, never waiting on the database:
//!
//! - [`Budgets::blocked`]: the bidder's own lease is empty, or its budget
//!   is kept in another currency than the auction's, so calling it would be
//!   wasted (the auction skips it, seat-non-bid 501 with the reason);
//! - [`Budgets::reserve`]: takes a winner's clearing price out of the
//!   leases of the bidder and of its campaign; when they cannot pay it the
//!   bid loses with loss reason 1000 (budget exhausted) and the auction
//!   runs again without it.
//!
//! A background task ([`Budgets::spawn_refill`]) asks for more before a
//! lease runs dry (below `refill_below` of its last grant), gives back a
//! piece too small for the bids the bidder makes (so small remainders do not
//! strand budget across replicas), starts a fresh lease when the day changes
//! (UTC); beside it, on their own schedule, leases are renewed so they do
//! not expire and the budget list is reloaded. A lease is valid in memory
//! until its database expiry less [`Budgets::safety_margin`]: past that
//! nothing is awarded from it (the database may reclaim it), and it is
//! given back and asked for again. On shutdown every lease is cut back to
//! what was awarded from it.
//!
//! Accounts without a budget are not limited and cost one hash lookup. A
//! budget created through this instance's admin API is known here (with an
//! empty lease) before it is written, so no auction awards from it
//! unleased; other instances learn it at their next reload (see
//! [`Budgets::propagation`]). A changed or removed budget revokes the
//! lease: it is cut back to what was awarded.

pub mod clock;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::Deserialize;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

pub use clock::{Clock, ManualClock, SystemClock};
pub use rtb_ledger::leases::{
    BudgetRow, BudgetStatus, Granted, LeaseRequest, DEFAULT_BUDGET_CURRENCY,
};

use crate::config::ConfigError;
pub use rtb_ledger::pacing::{self, Flight, Pacing};
pub use rtb_ledger::store::{day_of, DAY_MS};
use rtb_ledger::{store::utc_day, LedgerError, Store};
pub use rtb_proto::events::Leased;

/// `[budget]`: how leases are sized and refreshed.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetConfig {
    /// Enforce budgets. They live in the ledger's database, so this needs
    /// `[kafka] enabled` (the debits come from the events).
    pub enabled: bool,
    /// Share of an account's free budget one grant takes. Small, so several
    /// replicas share a budget and an instance that dies strands little.
    pub lease_fraction: f64,
    /// Smallest grant, in micros, unless less is free (1 currency unit).
    pub min_lease_micros: i64,
    /// Refill when a lease holds less than this share of its last grant, so
    /// it is refilled before it runs dry.
    pub refill_below: f64,
    /// How often the refill task looks at the leases. Short, because an
    /// empty lease turns a bidder away until it is refilled.
    pub refill_interval_ms: u64,
    /// How often budgets are reloaded from the database (new, changed and
    /// removed budgets reach every replica within this).
    pub reload_interval_ms: u64,
    /// A lease its instance stops renewing returns to the account after
    /// this; renewed every third of it.
    pub lease_ttl_ms: u64,
    /// How far an `even` budget's spend may run ahead of its ideal line, as
    /// the time the line takes to move that far: grants keep spend plus
    /// leases within the line plus half of it, and wins are admitted with a
    /// probability that falls from 1 to 0 across it (see
    /// [`rtb_ledger::pacing`]). A minute: a daily budget runs at most
    /// 30 s of its even rate ahead, and the lease refills (every
    /// `refill_interval_ms`) see the line move many times within it.
    pub pacing_lead_ms: u64,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            lease_fraction: 0.1,
            min_lease_micros: 1_000_000,
            refill_below: 0.5,
            refill_interval_ms: 20,
            reload_interval_ms: 1_000,
            lease_ttl_ms: 15_000,
            pacing_lead_ms: 60_000,
        }
    }
}

impl BudgetConfig {
    /// Checks the values; errors name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, message: &str| {
            Err(ConfigError::Invalid {
                key: format!("budget.{key}"),
                message: message.to_owned(),
            })
        };
        if !(self.lease_fraction > 0.0 && self.lease_fraction <= 1.0) {
            return bad("lease_fraction", "must be in (0, 1]");
        }
        if self.min_lease_micros < 1 {
            return bad("min_lease_micros", "must be at least 1");
        }
        if !(0.0..=1.0).contains(&self.refill_below) {
            return bad("refill_below", "must be in [0, 1]");
        }
        if self.refill_interval_ms == 0 || self.reload_interval_ms == 0 {
            return bad("refill_interval_ms", "intervals must be at least 1 ms");
        }
        if self.pacing_lead_ms < 2 * self.refill_interval_ms.max(1) {
            return bad(
                "pacing_lead_ms",
                "must be at least two refill intervals (the line must move less than a lead between refills)",
            );
        }
        if self.lease_ttl_ms < 3 * self.refill_interval_ms.max(1) || self.lease_ttl_ms < 1_000 {
            return bad(
                "lease_ttl_ms",
                "must be at least 1000 and three refill intervals",
            );
        }
        Ok(())
    }
}

/// One instance's lease on one account, for one day.
#[derive(Debug, Default)]
struct Lease {
    /// Day number the lease is for; `None` before the first grant.
    day: Option<i64>,
    /// Granted to this instance for `day` (cumulative).
    granted: i64,
    /// Awarded from it (cumulative).
    awarded: i64,
    /// The last grant's size: refill below `refill_below` of it.
    last_grant: i64,
    /// A bid did not fit what is left: give it back and ask again.
    release: bool,
    /// The largest price that did not fit since the last grant: the next
    /// grant must cover it (else the lease stays empty and the bidder is
    /// not called).
    need: i64,
    /// The last request got nothing: do not ask again before this. A real
    /// duration (not the replaceable wall clock): a pause between retries.
    dry_until: Option<tokio::time::Instant>,
    /// Bumped when the budget changes: a grant asked for before the change
    /// is not awarded from (it is given back).
    generation: u64,
    /// Nothing is awarded from the lease from this time (ms) on: the
    /// database may reclaim it at `expires` (judged by the requests' clocks),
    /// and this is the last grant's or renewal's `expires` less
    /// [`safety_margin`](Budgets::safety_margin). Moved on by every grant
    /// and renewal that finds the row alive.
    valid_until_ms: i64,
    /// Spent plus leased over every instance, `(total, today)`, as the
    /// last grant today found it (its own amount included); `None` before
    /// one. Even pacing's estimate of spend is this less what this lease
    /// still holds (see [`Lease::spent_estimate`]).
    committed: Option<(i64, i64)>,
}

impl Lease {
    /// What can be awarded now: nothing once the lease's validity ended.
    fn usable(&self, day: i64, now_ms: i64) -> i64 {
        if now_ms >= self.valid_until_ms {
            0
        } else {
            self.available(day)
        }
    }

    /// Even pacing's estimate of spend, `(total, today)`: what the last
    /// grant found committed, less what this lease has not awarded yet
    /// (every other instance's lease counted whole: an estimate that errs
    /// high, so pacing errs towards spending less). `None` before a grant.
    fn spent_estimate(&self, day: i64) -> Option<(i64, i64)> {
        let (total, today) = self.committed?;
        let held = self.available(day).max(0);
        Some((total - held, today - held))
    }

    fn available(&self, day: i64) -> i64 {
        if self.day == Some(day) {
            self.granted - self.awarded
        } else {
            0
        }
    }

    /// A bid of `price` did not fit: give the remainder back at the next
    /// refill and ask for at least `price`.
    fn missed(&mut self, day: i64, price: i64) {
        // `|=`: a give-back already asked for (a revoked lease) stays asked.
        self.release |= self.day == Some(day) && self.granted > self.awarded;
        self.need = self.need.max(price);
    }

    /// Nothing worth calling the bidder for: empty (or no longer valid), or
    /// less than a price that already did not fit.
    fn starved(&self, day: i64, now_ms: i64) -> bool {
        let a = self.usable(day, now_ms);
        a <= 0 || a < self.need
    }

    /// The budget changed or went away: nothing more is awarded from what
    /// is left; the next refill gives it back (recording what was awarded)
    /// and asks again under the new limits.
    fn revoke(&mut self) {
        self.generation += 1;
        if self.day.is_some() && self.granted > self.awarded {
            self.granted = self.awarded;
            self.release = true;
        }
        self.last_grant = 0;
        self.need = 0;
        self.dry_until = None;
    }
}

/// Why [`Budgets::blocked`] turns a bidder away, or [`Budgets::reserve`]
/// refuses a win.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its lease is empty (or smaller than a price that did not fit).
    Exhausted,
    /// Its budget is kept in another currency than the auction's, and there
    /// are no conversion rates.
    Currency,
    /// The budget's flight has not started or has ended (for
    /// [`Budgets::blocked`]: the bidder's own, or every one of its
    /// campaigns').
    OutOfFlight,
    /// Even pacing held the win back: spend is ahead of the ideal line.
    Paced,
}

/// A budgeted account and this instance's lease on it.
#[derive(Debug)]
pub struct Account {
    row: BudgetRow,
    /// Shared with the account's next version when its budget changes, so a
    /// grant whose answer arrives during a reload lands in the live lease.
    lease: Arc<Mutex<Lease>>,
}

impl Account {
    fn lease(&self) -> MutexGuard<'_, Lease> {
        // A panic while holding it cannot leave the numbers half-written
        // (each update is a single assignment); keep going.
        self.lease.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The account key.
    pub fn key(&self) -> &str {
        &self.row.account
    }

    fn new(row: BudgetRow) -> Arc<Self> {
        Arc::new(Account {
            row,
            lease: Arc::default(),
        })
    }
}

/// One bidder's budgeted accounts: its own and its campaigns'.
#[derive(Debug, Default)]
struct SeatAccounts {
    own: Option<Arc<Account>>,
    campaigns: HashMap<String, Arc<Account>>,
}

impl SeatAccounts {
    /// The accounts a win of `cid` is charged to, bidder first (the lock order).
    fn for_bid(&self, cid: Option<&str>) -> [Option<&Arc<Account>>; 2] {
        let campaign = cid.and_then(|c| self.campaigns.get(c));
        [self.own.as_ref(), campaign]
    }
}

/// The instance's budget leases (see the module docs).
#[derive(Debug)]
pub struct Budgets {
    store: Store,
    instance: Arc<str>,
    clock: Arc<dyn Clock>,
    cfg: BudgetConfig,
    seats: ArcSwap<HashMap<String, SeatAccounts>>,
    /// Budgets this instance's admin API is writing: known (with an empty
    /// lease) before the database has them, kept by reloads until settled.
    pending: Mutex<HashMap<String, BudgetRow>>,
    /// Serializes the writers of `seats` (reload and [`expect`](Self::expect)).
    writer: Mutex<()>,
    /// Leases of budgets removed today, by account: a budget made again
    /// takes its old lease back, so this instance's lease row goes on
    /// counting what was awarded before the removal (those debits may still
    /// be on the way, and a cut-back to "awarded" must not free them).
    retired: Mutex<HashMap<String, Arc<Mutex<Lease>>>>,
    wake: Notify,
    /// Winning bids this instance could not pay from its leases (loss
    /// reason 1000), for `/metrics`.
    lost: AtomicU64,
    /// A grant or renewal failed or timed out since the last resync: what
    /// the database holds for this instance may differ from memory (a grant
    /// committed with its answer lost, a row cut back meanwhile). The next
    /// refill pass first reads every lease back ([`resync`](Self::resync)).
    unsure: AtomicBool,
    /// Resyncs done (for `/metrics`).
    resyncs: AtomicU64,
}

impl Budgets {
    /// Loads the budgets and takes a first lease on each (so the first
    /// auctions can award), ready for [`spawn_refill`](Self::spawn_refill).
    pub async fn start(
        store: Store,
        instance: Arc<str>,
        clock: Arc<dyn Clock>,
        cfg: BudgetConfig,
    ) -> Result<Arc<Self>, LedgerError> {
        let b = Arc::new(Self {
            store,
            instance,
            clock,
            cfg,
            seats: ArcSwap::from_pointee(HashMap::new()),
            pending: Mutex::default(),
            writer: Mutex::default(),
            retired: Mutex::default(),
            wake: Notify::new(),
            lost: AtomicU64::new(0),
            unsure: AtomicBool::new(false),
            resyncs: AtomicU64::new(0),
        });
        b.reload().await?;
        b.refill_all(b.clock.now_ms()).await;
        Ok(b)
    }

    /// The database the leases live in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// This instance's id (in leases and events).
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The clock days and expiries are judged by.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// `[budget]` as this instance runs it.
    pub fn config(&self) -> &BudgetConfig {
        &self.cfg
    }

    /// Why the auction should not call `seat` for an auction on `day` in
    /// `currency`, if it has a budget: its own budget's flight has not
    /// started or has ended, or it has campaign budgets and none of them is
    /// in flight (a bidder with campaign budgets is taken to bid for them);
    /// its own lease on this instance is empty (the refill task is asked
    /// for more); or its own budget is kept in another currency. `None`:
    /// call it.
    pub fn blocked(&self, seat: &str, day: i64, currency: &str) -> Option<Refusal> {
        let seats = self.seats.load();
        let s = seats.get(seat)?;
        let now = self.clock.now_ms();
        let live = |a: &Arc<Account>| Flight::of(&a.row, now) == Flight::Live;
        if s.own.as_ref().is_some_and(|a| !live(a))
            || (!s.campaigns.is_empty() && !s.campaigns.values().any(live))
        {
            return Some(Refusal::OutOfFlight);
        }
        let own = s.own.as_ref()?;
        if !own.row.currency.eq_ignore_ascii_case(currency) {
            return Some(Refusal::Currency);
        }
        let empty = own.lease().starved(day, now);
        if empty {
            self.wake.notify_one();
            return Some(Refusal::Exhausted);
        }
        None
    }

    /// Appends this instance's budget figures to a Prometheus text
    /// exposition: `rtb_budget_lease_available_micros{account}` (what its
    /// leases still hold today) and `rtb_budget_lost_bids_total` (winning
    /// bids its leases could not pay).
    pub fn encode_prometheus(&self, out: &mut String) {
        use std::fmt::Write as _;
        let day = day_of(self.clock.now_ms());
        // Writing into a String cannot fail.
        let _ = writeln!(
            out,
            "# HELP rtb_budget_lease_available_micros Budget this exchange instance can still award from its lease today, per account."
        );
        let _ = writeln!(out, "# TYPE rtb_budget_lease_available_micros gauge");
        // Accounts are budgeted ones (the operator's), but their keys hold
        // campaign ids: bounded like every bidder-derived label, the rest
        // summed in `other`.
        let accounts = self.accounts();
        let available =
            rtb_ledger::metrics::fold(accounts.iter().map(|a| (a.key(), a.lease().available(day))));
        for (account, available) in &available {
            let key = rtb_ledger::metrics::escape_label(account);
            let _ = writeln!(
                out,
                "rtb_budget_lease_available_micros{{account=\"{key}\"}} {available}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP rtb_budget_lost_bids_total Winning bids this instance's budget leases could not pay (loss reason 1000)."
        );
        let _ = writeln!(out, "# TYPE rtb_budget_lost_bids_total counter");
        let _ = writeln!(
            out,
            "rtb_budget_lost_bids_total {}",
            self.lost.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP rtb_budget_lease_resyncs_total Times this instance read its budget leases back from the database after a failed or timed-out grant or renewal."
        );
        let _ = writeln!(out, "# TYPE rtb_budget_lease_resyncs_total counter");
        let _ = writeln!(
            out,
            "rtb_budget_lease_resyncs_total {}",
            self.resyncs.load(Ordering::Relaxed)
        );
    }

    /// Takes `amount` (a win's clearing price, in `currency`) out of the
    /// leases of `seat` and of its campaign `cid`, whichever have a budget,
    /// for `day`: all or nothing. Refused, leaving the leases as they are,
    /// when a budget is kept in another currency (no conversion rates), when
    /// a budget's flight does not include now, or when even pacing holds the
    /// win back (drawn with [`pacing::admit_share`]'s probability). Refused
    /// too when the leases cannot pay it: the win is lost (counted) and the
    /// refill task is asked to trade the remainder for a grant of at least
    /// `amount`. Otherwise which leases paid ([`Leased::NONE`] for a seat
    /// without a budget): the event carries it, so the ledger debits
    /// exactly those.
    pub fn reserve(
        &self,
        seat: &str,
        cid: Option<&str>,
        amount: i64,
        day: i64,
        currency: &str,
    ) -> Result<Leased, Refusal> {
        let seats = self.seats.load();
        let Some(s) = seats.get(seat) else {
            return Ok(Leased::NONE);
        };
        let accounts = s.for_bid(cid);
        let leased = Leased {
            seat: accounts[0].is_some(),
            campaign: accounts[1].is_some(),
        };
        if accounts
            .iter()
            .flatten()
            .any(|a| !a.row.currency.eq_ignore_ascii_case(currency))
        {
            self.lost.fetch_add(1, Ordering::Relaxed);
            return Err(Refusal::Currency);
        }
        let now = self.clock.now_ms();
        if accounts
            .iter()
            .flatten()
            .any(|a| Flight::of(&a.row, now) != Flight::Live)
        {
            return Err(Refusal::OutOfFlight);
        }
        // Lock order: bidder, then campaign (for_bid's order), everywhere.
        let mut guards = accounts.map(|a| a.map(|a| a.lease()));
        let lead = self.cfg.pacing_lead_ms as i64;
        let share = accounts
            .iter()
            .zip(&guards)
            .filter_map(|(a, l)| Some((a.as_ref()?, l.as_ref()?)))
            .filter(|(a, _)| a.row.pacing == Pacing::Even)
            .map(|(a, l)| match l.spent_estimate(day) {
                Some(spent) => pacing::admit_share(&a.row, now, lead, spent),
                // No grant yet today: nothing to award from either.
                None => 1.0,
            })
            .fold(1.0_f64, f64::min);
        if share < 1.0 && rand::random::<f64>() >= share {
            return Err(Refusal::Paced);
        }
        if guards.iter().flatten().any(|l| l.usable(day, now) < amount) {
            for l in guards.iter_mut().flatten() {
                if l.usable(day, now) < amount {
                    l.missed(day, amount);
                }
            }
            drop(guards);
            self.lost.fetch_add(1, Ordering::Relaxed);
            self.wake.notify_one();
            return Err(Refusal::Exhausted);
        }
        let mut low = false;
        for l in guards.iter_mut().flatten() {
            l.awarded += amount;
            low |= (l.granted - l.awarded) as f64 <= l.last_grant as f64 * self.cfg.refill_below;
        }
        drop(guards);
        if low {
            self.wake.notify_one();
        }
        Ok(leased)
    }

    /// Gives `amount` back to the leases a [`reserve`](Self::reserve) of
    /// the same win took it from (`leased`): the win was withdrawn before
    /// anything was answered or recorded (its event could not be written),
    /// so nothing will be debited for it.
    pub fn unreserve(&self, seat: &str, cid: Option<&str>, amount: i64, day: i64, leased: Leased) {
        let seats = self.seats.load();
        let Some(s) = seats.get(seat) else {
            return;
        };
        let [own, campaign] = s.for_bid(cid);
        let paid = [
            own.filter(|_| leased.seat),
            campaign.filter(|_| leased.campaign),
        ];
        for a in paid.into_iter().flatten() {
            let mut l = a.lease();
            if l.day == Some(day) {
                l.awarded = (l.awarded - amount).max(0);
            }
        }
    }

    /// Makes this instance see budget changes now (the admin API calls it
    /// after a change, like the registry's reload). A budget whose limits or
    /// currency changed keeps its lease, revoked: cut back to what was
    /// awarded, given back and asked for again under the new limits. A
    /// removed budget's lease is dropped (the admin API cuts its rows back).
    pub async fn reload(&self) -> Result<(), LedgerError> {
        let rows = self.store.budgets().await?;
        self.install(rows);
        Ok(())
    }

    /// Swaps in the budgets `rows` plus the pending ones (see `expect`).
    fn install(&self, mut rows: Vec<BudgetRow>) {
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        {
            let pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            for (account, row) in pending.iter() {
                if !rows.iter().any(|r| &r.account == account) {
                    rows.push(row.clone());
                }
            }
        }
        let old = self.seats.load_full();
        let find = |row: &BudgetRow| -> Option<Arc<Account>> {
            let s = old.get(&row.bidder)?;
            match &row.cid {
                None => s.own.clone(),
                Some(c) => s.campaigns.get(c).cloned(),
            }
        };
        let mut retired = self.retired.lock().unwrap_or_else(|p| p.into_inner());
        let today = day_of(self.clock.now_ms());
        // A lease of an earlier day has its own row: nothing to carry on.
        retired.retain(|_, l| l.lock().unwrap_or_else(|p| p.into_inner()).day == Some(today));
        let mut seats: HashMap<String, SeatAccounts> = HashMap::new();
        for row in rows {
            let account = match find(&row) {
                Some(a) if a.row == row => a,
                Some(a) => {
                    // The same lease (a grant in flight lands in it), revoked.
                    a.lease().revoke();
                    tracing::info!(account = %row.account, "budget changed: lease cut back to what was awarded");
                    Arc::new(Account {
                        row: row.clone(),
                        lease: a.lease.clone(),
                    })
                }
                None => match retired.remove(&row.account) {
                    // Made again: the old lease (revoked when it was
                    // removed) with what it awarded.
                    Some(lease) => Arc::new(Account {
                        row: row.clone(),
                        lease,
                    }),
                    None => Account::new(row.clone()),
                },
            };
            let seat = seats.entry(row.bidder.clone()).or_default();
            match &row.cid {
                None => seat.own = Some(account),
                Some(c) => {
                    seat.campaigns.insert(c.clone(), account);
                }
            }
        }
        // Removed budgets: nothing more is awarded from their leases.
        for s in old.values() {
            for a in s.own.iter().chain(s.campaigns.values()) {
                let kept = seats.get(&a.row.bidder).is_some_and(|n| match &a.row.cid {
                    None => n.own.is_some(),
                    Some(c) => n.campaigns.contains_key(c),
                });
                if !kept {
                    a.lease().revoke();
                    retired.insert(a.row.account.clone(), a.lease.clone());
                }
            }
        }
        self.seats.store(Arc::new(seats));
    }

    /// Makes `row` known to this instance at once, with an empty lease,
    /// before the admin API writes it: from now on no auction here awards
    /// the bidder anything until a lease is granted. Kept across reloads
    /// until [`settle`](Self::settle).
    pub fn expect(&self, row: &BudgetRow) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(row.account.clone(), row.clone());
        let mut rows: Vec<BudgetRow> = self.accounts().iter().map(|a| a.row.clone()).collect();
        rows.retain(|r| r.account != row.account);
        rows.push(row.clone());
        self.install(rows);
        self.wake.notify_one();
    }

    /// The admin API is done with `account` (written or not): reloads go by
    /// the database alone again.
    pub fn settle(&self, account: &str) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(account);
        // A request made before the write found no budget: ask again now.
        if let Some(a) = self.accounts().iter().find(|a| a.key() == account) {
            a.lease().dry_until = None;
        }
        self.wake.notify_one();
    }

    /// How long a budget change takes to reach every replica: each reloads
    /// every `reload_interval_ms`, between two refill passes. The admin API
    /// waits this long before it answers, so auctions started after the
    /// answer see the change on every replica that reloads on time.
    pub fn propagation(&self) -> Duration {
        Duration::from_millis(2 * self.cfg.reload_interval_ms + 3 * self.cfg.refill_interval_ms)
    }

    /// Every lease this instance holds: its budgeted accounts' and those
    /// of budgets removed today (renewed and given back like the others,
    /// so their rows record exactly what was awarded before they expire).
    fn leases(&self) -> Vec<(String, Arc<Mutex<Lease>>)> {
        let mut out: Vec<_> = self
            .accounts()
            .into_iter()
            .map(|a| (a.row.account.clone(), a.lease.clone()))
            .collect();
        let retired = self.retired.lock().unwrap_or_else(|p| p.into_inner());
        out.extend(retired.iter().map(|(k, l)| (k.clone(), l.clone())));
        out
    }

    fn accounts(&self) -> Vec<Arc<Account>> {
        let seats = self.seats.load();
        seats
            .values()
            .flat_map(|s| s.own.iter().chain(s.campaigns.values()).cloned())
            .collect()
    }

    /// One pass over every lease: day change, refill, release.
    async fn refill_all(&self, now_ms: i64) {
        if self.unsure.load(Ordering::Relaxed) {
            match self.resync(now_ms).await {
                Ok(n) => tracing::info!(leases = n, "budget leases resynced from the database"),
                Err(e) => {
                    // Still unsure: no grant on top of figures that may be
                    // wrong; awards go on from what memory holds, which
                    // never exceeds what was granted and stays bounded by
                    // each lease's validity.
                    tracing::warn!(error = %e, "budget lease resync failed; retrying next pass");
                    return;
                }
            }
        }
        for account in self.accounts() {
            if let Err(e) = self.refill(&account, now_ms).await {
                tracing::warn!(account = %account.key(), error = %e, "budget lease refill failed");
            }
        }
    }

    async fn refill(&self, account: &Account, now_ms: i64) -> Result<(), LedgerError> {
        let day = day_of(now_ms);
        // Decide under the lock, talk to the database without it.
        let (ended, ask) = {
            let mut l = account.lease();
            let mut ended = None;
            if l.day != Some(day) {
                if let Some(old) = l.day {
                    ended = Some((old, l.awarded));
                }
                *l = Lease {
                    day: Some(day),
                    generation: l.generation,
                    ..Lease::default()
                };
            }
            if now_ms >= l.valid_until_ms && l.granted > l.awarded {
                // Its validity ended (renewals late: database stalled, long
                // pass): the database may have reclaimed the rest already.
                // Give it back with the exact figure and ask again.
                l.granted = l.awarded;
                l.release = true;
            }
            let available = l.granted - l.awarded;
            let low = available as f64 <= l.last_grant as f64 * self.cfg.refill_below;
            let wanted = l.release || low || l.last_grant == 0 || l.need > available;
            let dry = l.dry_until.is_some_and(|t| tokio::time::Instant::now() < t);
            let ask = if !wanted || (dry && !l.release) {
                None
            } else {
                let release = std::mem::take(&mut l.release);
                if release {
                    // Nothing more is awarded from the remainder given back.
                    l.granted = l.awarded;
                }
                Some((release, l.awarded, l.need, l.generation))
            };
            (ended, ask)
        };
        if let Some((old, old_awarded)) = ended {
            self.end_day(account.key(), old, old_awarded).await?;
        }
        let Some((release, awarded, need, generation)) = ask else {
            return Ok(());
        };
        let day_text = utc_day(now_ms);
        let req = LeaseRequest {
            account: account.key(),
            instance: &self.instance,
            day: &day_text,
            now_ms,
            awarded_micros: awarded,
            release,
            need_micros: need,
            min_micros: self.cfg.min_lease_micros,
            fraction: self.cfg.lease_fraction,
            ttl_ms: self.cfg.lease_ttl_ms as i64,
            pacing_lead_ms: self.cfg.pacing_lead_ms as i64,
        };
        let granted = match tokio::time::timeout(self.call_timeout(), self.store.grant(&req)).await
        {
            Ok(Ok(g)) => g,
            Ok(Err(e)) => {
                // The commit may have happened with the answer lost.
                self.unsure.store(true, Ordering::Relaxed);
                return Err(e);
            }
            Err(_) => {
                // Dropped: rolled back, or committed with the answer lost;
                // the next pass reads the lease back (resync).
                self.unsure.store(true, Ordering::Relaxed);
                tracing::warn!(account = %account.key(), "budget lease grant timed out");
                return Ok(());
            }
        };
        tracing::debug!(account = %account.key(), release, need, awarded, ?granted, "budget lease request");
        let mut l = account.lease();
        if l.day != Some(day) {
            return Ok(()); // The day turned meanwhile; the next pass starts over.
        }
        if let Some(g) = granted {
            // The row's expiry is now_ms + ttl (judged by this clock).
            l.valid_until_ms = l.valid_until_ms.max(self.valid_until(now_ms));
            l.committed = Some(g.committed);
        }
        if l.generation != generation {
            // The budget changed while the grant was made, perhaps under the
            // old limits: award nothing from it, give it back next pass
            // (that records what was awarded) and ask again.
            if granted.is_some_and(|g| g.amount > 0) {
                l.release = true;
            }
            return Ok(());
        }
        match granted {
            Some(g) if g.amount > 0 => {
                l.granted += g.amount;
                l.last_grant = g.amount;
                l.dry_until = None;
                l.need = 0;
            }
            // Nothing free (or the budget was removed): ask again later, not
            // on every pass. A price that did not fit is forgotten: the next
            // request asks for an ordinary grant, so a bidder whose one big
            // bid did not fit is called again for the bids that do (else it
            // would be turned away for the rest of the day).
            _ => {
                l.dry_until = Some(tokio::time::Instant::now() + DRY_RETRY);
                l.need = 0;
                if l.last_grant == 0 {
                    l.last_grant = 1;
                }
            }
        }
        Ok(())
    }

    /// Reads every lease of this instance back from the database and makes
    /// memory agree with it; returns how many were read. Run by the refill
    /// task after a grant or renewal failed or timed out, and callable at
    /// any time. For each account's lease of today:
    /// - no row: nothing is held, nothing more is awarded;
    /// - a row the database may reclaim soon (past `expires` less the
    ///   safety margin): nothing more is awarded, the rest is given back;
    /// - otherwise the database's figure is adopted, up or down: a grant
    ///   that committed with its answer lost is used, and a row cut back
    ///   behind this instance's back (revoked, expired and reclaimed) caps
    ///   what memory awards. A lease being given back is left to do so.
    pub async fn resync(&self, now_ms: i64) -> Result<usize, LedgerError> {
        // Cleared first: a failure from here on sets it again.
        self.unsure.store(false, Ordering::Relaxed);
        let day = day_of(now_ms);
        let text = utc_day(now_ms);
        let mut read = 0;
        for account in self.accounts() {
            let (generation, held) = {
                let l = account.lease();
                (l.generation, l.day == Some(day))
            };
            if !held {
                continue;
            }
            let lookup = self.store.lease_row(account.key(), &self.instance, &text);
            let row = match tokio::time::timeout(self.call_timeout(), lookup).await {
                Ok(Ok(row)) => row,
                Ok(Err(e)) => {
                    self.unsure.store(true, Ordering::Relaxed);
                    return Err(e);
                }
                Err(_) => {
                    self.unsure.store(true, Ordering::Relaxed);
                    return Err(LedgerError::Timeout("budget lease resync"));
                }
            };
            read += 1;
            let mut l = account.lease();
            if l.day != Some(day) || l.generation != generation || l.release {
                continue;
            }
            match row {
                None => {
                    l.granted = l.awarded;
                    l.valid_until_ms = 0;
                }
                Some((granted, expires)) => {
                    let valid = expires - self.safety_margin().as_millis() as i64;
                    if now_ms >= valid {
                        if granted > l.awarded {
                            l.release = true;
                        }
                        l.granted = l.awarded;
                    } else {
                        l.granted = granted.max(l.awarded);
                        l.valid_until_ms = valid;
                    }
                }
            }
        }
        self.resyncs.fetch_add(1, Ordering::Relaxed);
        Ok(read)
    }

    /// Gives back what was not awarded from a lease whose day ended.
    async fn end_day(&self, account: &str, day: i64, awarded: i64) -> Result<(), LedgerError> {
        let text = utc_day(day * DAY_MS);
        self.store
            .release(account, &self.instance, &text, awarded)
            .await
    }

    /// Extends every lease that is still alive and records what was awarded
    /// from it; a lease found expired (the database may have reclaimed it)
    /// is given back at the next refill and asked for again.
    async fn renew_all(&self, now_ms: i64) {
        let expires = now_ms + self.cfg.lease_ttl_ms as i64;
        for (key, lease) in self.leases() {
            let lock = || lease.lock().unwrap_or_else(|p| p.into_inner());
            let (day, awarded) = {
                let l = lock();
                match l.day {
                    Some(d) => (d, l.awarded),
                    None => continue,
                }
            };
            let text = utc_day(day * DAY_MS);
            let renew =
                self.store
                    .renew_live(&key, &self.instance, &text, now_ms, expires, awarded);
            match tokio::time::timeout(self.call_timeout(), renew).await {
                Ok(Ok(true)) => {
                    let mut l = lock();
                    if l.day == Some(day) {
                        l.valid_until_ms = l.valid_until_ms.max(self.valid_until(now_ms));
                    }
                }
                Ok(Ok(false)) => {
                    let mut l = lock();
                    if l.day == Some(day) && l.granted > l.awarded {
                        tracing::warn!(account = %key, "budget lease found expired; giving it back");
                        l.granted = l.awarded;
                        l.release = true;
                    }
                }
                Ok(Err(e)) => {
                    self.unsure.store(true, Ordering::Relaxed);
                    tracing::warn!(account = %key, error = %e, "budget lease renewal failed")
                }
                Err(_) => {
                    self.unsure.store(true, Ordering::Relaxed);
                    tracing::warn!(account = %key, "budget lease renewal timed out")
                }
            }
        }
    }

    /// How long before the database may reclaim a lease this instance
    /// stops awarding from it: a third of `lease_ttl_ms` (5 s by default),
    /// for clock skew between replicas and the time a request takes.
    /// Renewals run every third of the TTL, so a lease renewed on time never
    /// lapses.
    pub fn safety_margin(&self) -> Duration {
        Duration::from_millis(self.cfg.lease_ttl_ms / 3)
    }

    fn valid_until(&self, asked_ms: i64) -> i64 {
        asked_ms + self.cfg.lease_ttl_ms as i64 - self.safety_margin().as_millis() as i64
    }

    /// The longest one grant or renewal may take: past it the lease would
    /// lapse anyway, so the pass goes on with the next account.
    fn call_timeout(&self) -> Duration {
        self.safety_margin()
    }

    /// Runs the refill loop until `stop`; then records what was awarded and
    /// gives back the rest of every lease.
    pub fn spawn_refill(self: &Arc<Self>, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
        let me = self.clone();
        // Reloads and renewals run on their own schedule, beside the refill
        // passes: a long pass (many accounts, a stalled database, midnight)
        // delays neither, so leases renewed on time never lapse and budget
        // changes arrive within their interval.
        let keeper = {
            let me = self.clone();
            let mut stop = stop.clone();
            tokio::spawn(async move {
                let reload_every = Duration::from_millis(me.cfg.reload_interval_ms);
                let renew_every = Duration::from_millis(me.cfg.lease_ttl_ms / 3);
                let start = tokio::time::Instant::now();
                let mut reload = tokio::time::interval_at(start + reload_every, reload_every);
                let mut renew = tokio::time::interval_at(start + renew_every, renew_every);
                reload.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = stop.changed() => break,
                        _ = reload.tick() => {
                            if let Err(e) = me.reload().await {
                                tracing::warn!(error = %e, "budget reload failed");
                            }
                        }
                        _ = renew.tick() => me.renew_all(me.clock.now_ms()).await,
                    }
                }
            })
        };
        tokio::spawn(async move {
            let every = Duration::from_millis(me.cfg.refill_interval_ms);
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    () = me.wake.notified() => {}
                    () = tokio::time::sleep(every) => {}
                }
                me.refill_all(me.clock.now_ms()).await;
            }
            let _ = keeper.await;
            // Each lease cut back to exactly what was awarded from it (a
            // renewal would not touch a row that expired meanwhile), then
            // whatever else this instance still holds.
            for (key, lease) in me.leases() {
                let (day, awarded) = {
                    let l = lease.lock().unwrap_or_else(|p| p.into_inner());
                    match l.day {
                        Some(d) => (d, l.awarded),
                        None => continue,
                    }
                };
                if let Err(e) = me.end_day(&key, day, awarded).await {
                    tracing::warn!(account = %key, error = %e, "could not give back a budget lease; it expires");
                }
            }
            if let Err(e) = me.store.release_instance(&me.instance).await {
                tracing::warn!(error = %e, "could not give back budget leases; they expire");
            }
        })
    }
}

/// After a request that got nothing, how long before asking again. Other
/// replicas give back remainders they cannot use, so budget can free up.
const DRY_RETRY: Duration = Duration::from_millis(200);
