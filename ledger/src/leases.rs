//! Budget accounts and leases in the ledger's database (PostgreSQL or
//! SQLite, the same SQL for both).
//!
//! The rule every grant keeps, per account:
//!
//! ```text
//! spent + outstanding leases <= budget      (daily: today's; total: all days)
//! outstanding = granted - debited            (per lease row)
//! ```
//!
//! A grant bumps the account's `lock_seq` first, so grants for one account
//! run one at a time (a row lock in PostgreSQL, the write lock in SQLite),
//! then computes what is free and adds at most that to the caller's lease.
//! The ledger moves a debit from a lease to spend in one transaction (it
//! adds to `debited` and to `account_spend` together), which leaves the sum
//! unchanged. A lease whose instance stopped renewing it is cut back to
//! what that instance reported it awarded; the rest returns to the account.

use sqlx::Row;

pub use crate::pacing::Pacing;
use crate::pacing::{self, Flight};
use crate::store::BeginWrite;
use crate::{on_pool, LedgerError, Store};

/// An account's budget, as configured. Amounts in micros; `None` is no limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetRow {
    /// `seat` or `seat/cid` (see `rtb_proto::events::account_key`).
    pub account: String,
    /// The bidder (seat).
    pub bidder: String,
    /// The campaign, for campaign accounts.
    pub cid: Option<String>,
    /// Most that may be spent per day (UTC).
    pub daily_micros: Option<i64>,
    /// Most that may be spent in total.
    pub total_micros: Option<i64>,
    /// The currency the budget is kept in (ISO 4217, `USD` by default):
    /// wins in another currency are not awarded from it.
    pub currency: String,
    /// The flight's start (ms since the epoch, inclusive): nothing is
    /// granted or awarded before it. `None`: from any time.
    pub start_ms: Option<i64>,
    /// The flight's end (ms since the epoch, exclusive): nothing is granted
    /// or awarded from it on. `None`: open-ended.
    pub end_ms: Option<i64>,
    /// How the budget is spent over time (see [`crate::pacing`]).
    pub pacing: Pacing,
}

/// The currency of a budget that names none.
pub const DEFAULT_BUDGET_CURRENCY: &str = "USD";

/// Where an account stands on `day`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetStatus {
    /// The budget.
    pub budget: BudgetRow,
    /// The day the figures are for (`YYYY-MM-DD`, UTC).
    pub day: String,
    /// Debited today (for a bidder: its campaigns' debits included).
    pub spent_today_micros: i64,
    /// Debited in total.
    pub spent_total_micros: i64,
    /// Leased to exchange instances and not yet debited (all days).
    pub leased_micros: i64,
    /// The part of `leased_micros` leased for `day`.
    pub leased_today_micros: i64,
    /// Neither spent nor leased: what the limits leave to lease (even
    /// pacing and the flight may leave less now, see
    /// [`grantable_at`](Self::grantable_at)).
    pub remaining_micros: i64,
}

impl BudgetStatus {
    /// Nothing is left to lease: exchanges only award what their leases
    /// still hold, and stop calling the bidder once those run out.
    pub fn exhausted(&self) -> bool {
        self.remaining_micros <= 0
    }

    /// What a grant could lease at `now_ms` (on `day`): the remaining
    /// budget, less what even pacing holds back (`lead_ms`:
    /// `budget.pacing_lead_ms`), and nothing outside the flight.
    pub fn grantable_at(&self, now_ms: i64, lead_ms: i64) -> i64 {
        grantable(
            &self.budget,
            (self.spent_total_micros, self.spent_today_micros),
            (self.leased_micros, self.leased_today_micros),
            now_ms,
            lead_ms,
        )
    }
}

/// A lease request from one exchange instance.
#[derive(Debug, Clone)]
pub struct LeaseRequest<'a> {
    /// Account.
    pub account: &'a str,
    /// The asking instance.
    pub instance: &'a str,
    /// The day the lease is for (`YYYY-MM-DD`).
    pub day: &'a str,
    /// The instance's clock now (ms since epoch): expiry is judged by it.
    pub now_ms: i64,
    /// What the instance has awarded from this lease so far (cumulative).
    pub awarded_micros: i64,
    /// Give back what was granted and not awarded before asking: the
    /// instance holds a piece too small for the bids it gets.
    pub release: bool,
    /// The price of a bid the lease could not pay: grant nothing unless at
    /// least this much is free, and leave smaller remainders in the pool for
    /// an instance that can use them (0: no such bid).
    pub need_micros: i64,
    /// Smallest grant (unless less is free).
    pub min_micros: i64,
    /// Share of the free budget to grant.
    pub fraction: f64,
    /// Expiry of the lease from `now_ms` unless renewed.
    pub ttl_ms: i64,
    /// `budget.pacing_lead_ms`: how far ahead of an even budget's ideal
    /// line spend may run (see [`crate::pacing`]).
    pub pacing_lead_ms: i64,
}

/// The answer to a lease request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Granted {
    /// Added to the instance's lease (may be 0).
    pub amount: i64,
    /// What is still free for others after this grant.
    pub free_after: i64,
    /// Spent plus leased (this grant included, every instance's leases
    /// counted whole), `(total, today)`: where even pacing's estimate of
    /// spend starts from until the next grant.
    pub committed: (i64, i64),
}

const LOCK_ACCOUNT: &str = "UPDATE budget_accounts SET lock_seq = lock_seq + 1 WHERE account = $1";
const SELECT_BUDGET: &str = "SELECT account, bidder, cid, daily_micros, total_micros, currency,
    start_ms, end_ms, pacing FROM budget_accounts WHERE account = $1";
const SELECT_BUDGETS: &str = "SELECT account, bidder, cid, daily_micros, total_micros, currency,
    start_ms, end_ms, pacing FROM budget_accounts ORDER BY account";
const INSERT_BUDGET: &str = "INSERT INTO budget_accounts
    (account, bidder, cid, daily_micros, total_micros, updated_ms, currency, start_ms, end_ms, pacing)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
    ON CONFLICT (account) DO NOTHING";
const UPDATE_BUDGET: &str = "UPDATE budget_accounts
    SET daily_micros = $2, total_micros = $3, updated_ms = $4, currency = $5,
    start_ms = $6, end_ms = $7, pacing = $8, lock_seq = lock_seq + 1
    WHERE account = $1";
const DELETE_BUDGET: &str = "DELETE FROM budget_accounts WHERE account = $1";
/// Leases nobody renews go back to the account, less what was awarded.
const EXPIRE_LEASES: &str = "UPDATE budget_leases SET granted_micros =
    CASE WHEN awarded_micros > debited_micros THEN awarded_micros ELSE debited_micros END
    WHERE account = $1 AND expires_ms < $2
    AND granted_micros > awarded_micros AND granted_micros > debited_micros";
const RELEASE_LEASE: &str = "UPDATE budget_leases SET granted_micros =
    CASE WHEN $4 > debited_micros THEN $4 ELSE debited_micros END, awarded_micros = $4
    WHERE account = $1 AND instance = $2 AND day = $3";
const UPSERT_LEASE: &str = "INSERT INTO budget_leases
    (account, instance, day, granted_micros, awarded_micros, debited_micros, expires_ms)
    VALUES ($1, $2, $3, $4, $5, 0, $6)
    ON CONFLICT (account, instance, day) DO UPDATE SET
    granted_micros = budget_leases.granted_micros + excluded.granted_micros,
    awarded_micros = excluded.awarded_micros, expires_ms = excluded.expires_ms";
const RENEW_LEASE: &str = "UPDATE budget_leases SET expires_ms = $4, awarded_micros = $5,
    granted_micros = CASE WHEN granted_micros > $5 THEN granted_micros ELSE $5 END
    WHERE account = $1 AND instance = $2 AND day = $3";
const RENEW_LIVE_LEASE: &str = "UPDATE budget_leases SET expires_ms = $4, awarded_micros = $5,
    granted_micros = CASE WHEN granted_micros > $5 THEN granted_micros ELSE $5 END
    WHERE account = $1 AND instance = $2 AND day = $3 AND expires_ms >= $6";
/// What an instance reports awarding is outstanding until debited, even
/// where its lease row was cut back meanwhile (revoked, expired) with an
/// older figure: the grant counts it before computing what is free.
const RECORD_AWARDED: &str = "UPDATE budget_leases SET awarded_micros = $4,
    granted_micros = CASE WHEN granted_micros > $4 THEN granted_micros ELSE $4 END
    WHERE account = $1 AND instance = $2 AND day = $3";
/// Everything an instance holds, cut back to what it awarded (it stops).
const RELEASE_INSTANCE: &str = "UPDATE budget_leases SET granted_micros =
    CASE WHEN awarded_micros > debited_micros THEN awarded_micros ELSE debited_micros END
    WHERE instance = $1";
/// Where an account stands, in ONE statement so that PostgreSQL reads one
/// snapshot under READ COMMITTED: a ledger batch that moves a debit from
/// outstanding to spent between two statements would otherwise be seen in
/// neither, overstating what is free. Spend: a campaign's is its own
/// account's; a bidder's includes its campaigns' (`seat/...` accounts, `$3`
/// is the prefix length, 0 for a campaign). `substr`, not `LIKE`: seat
/// names may contain `_`, a `LIKE` wildcard. Outstanding: granted minus
/// debited, per lease row. Columns: spent total, spent on day `$2`,
/// outstanding total, outstanding on day `$2`.
const STANDING: &str = "SELECT
    CAST(COALESCE((SELECT SUM(spent_micros) FROM account_spend
        WHERE account = $1 OR ($3 > 0 AND substr(account, 1, $3) = $4)), 0) AS BIGINT),
    CAST(COALESCE((SELECT SUM(spent_micros) FROM account_spend
        WHERE day = $2 AND (account = $1 OR ($3 > 0 AND substr(account, 1, $3) = $4))), 0) AS BIGINT),
    CAST(COALESCE((SELECT SUM(CASE WHEN granted_micros > debited_micros
        THEN granted_micros - debited_micros ELSE 0 END)
        FROM budget_leases WHERE account = $1), 0) AS BIGINT),
    CAST(COALESCE((SELECT SUM(CASE WHEN granted_micros > debited_micros
        THEN granted_micros - debited_micros ELSE 0 END)
        FROM budget_leases WHERE account = $1 AND day = $2), 0) AS BIGINT)";

/// Reads a budget row from `SELECT account, bidder, cid, daily, total,
/// currency, start, end, pacing` (a macro: the row types of the two
/// backends differ). A pacing this build does not know is refused, not
/// guessed at.
macro_rules! budget_row {
    ($r:expr) => {
        BudgetRow {
            account: $r.try_get(0)?,
            bidder: $r.try_get(1)?,
            cid: $r.try_get(2)?,
            daily_micros: $r.try_get(3)?,
            total_micros: $r.try_get(4)?,
            currency: $r.try_get(5)?,
            start_ms: $r.try_get(6)?,
            end_ms: $r.try_get(7)?,
            pacing: {
                let p: String = $r.try_get(8)?;
                Pacing::parse(&p).ok_or_else(|| {
                    sqlx::Error::Decode(
                        format!("budget_accounts.pacing: unknown pacing {p:?}").into(),
                    )
                })?
            },
        }
    };
}

/// Runs [`STANDING`] for a budget's account on `$exec`:
/// `((spent total, today), (outstanding total, today))`. A macro for the
/// same reason as [`budget_row`].
macro_rules! standing {
    ($b:expr, $day:expr, $exec:expr) => {{
        let b: &BudgetRow = $b;
        let prefix = match &b.cid {
            Some(_) => String::new(),
            None => format!("{}/", b.bidder),
        };
        let r = sqlx::query(STANDING)
            .bind(&b.account)
            .bind($day)
            .bind(prefix.len() as i32)
            .bind(prefix)
            .fetch_one($exec)
            .await?;
        (
            (r.try_get::<i64, _>(0)?, r.try_get::<i64, _>(1)?),
            (r.try_get::<i64, _>(2)?, r.try_get::<i64, _>(3)?),
        )
    }};
}

/// What may be granted at `now_ms`: [`free`], less what even pacing holds
/// back ([`pacing::headroom`]), and nothing outside the flight.
fn grantable(
    b: &BudgetRow,
    spent: (i64, i64),
    outstanding: (i64, i64),
    now_ms: i64,
    lead_ms: i64,
) -> i64 {
    if Flight::of(b, now_ms) != Flight::Live {
        return 0;
    }
    let committed = (spent.0 + outstanding.0, spent.1 + outstanding.1);
    free(b, spent, outstanding).min(pacing::headroom(b, now_ms, lead_ms, committed))
}

/// Free budget given the limits, spend and outstanding leases (never negative).
fn free(b: &BudgetRow, spent: (i64, i64), outstanding: (i64, i64)) -> i64 {
    let (spent_total, spent_today) = spent;
    let (out_total, out_today) = outstanding;
    let daily = b
        .daily_micros
        .map_or(i64::MAX, |d| d - spent_today - out_today);
    let total = b
        .total_micros
        .map_or(i64::MAX, |t| t - spent_total - out_total);
    daily.min(total).max(0)
}

/// How much of `free` one grant takes.
fn grant_size(free: i64, min_micros: i64, fraction: f64) -> i64 {
    let share = (free as f64 * fraction) as i64;
    free.min(share.max(min_micros)).max(0)
}

impl Store {
    /// Creates or replaces an account's budget; true when it was created.
    /// The same budget again changes nothing. Grants after a change follow
    /// the new limits.
    ///
    /// The lease rows are not cut back here: only the instance holding a
    /// lease knows what it awarded up to now (the row's `awarded_micros` is
    /// its last report, and debits lag behind the wins), so a cut to the
    /// row's figures would drop wins in flight from what is outstanding and
    /// a grant would hand them out again. Each instance revokes its own
    /// lease at its reload and gives the rest back with the exact figure at
    /// its next refill; a lease whose instance is gone expires. Until then
    /// what the old grants hold still counts as outstanding: the new limit
    /// is met by granting less for a moment (fail closed), never more.
    pub async fn put_budget(&self, b: &BudgetRow, now_ms: i64) -> Result<bool, LedgerError> {
        on_pool!(self, pool => {
            // A write transaction from its start (see `BeginWrite`).
            let mut tx = pool.begin_write().await?;
            let inserted = sqlx::query(INSERT_BUDGET)
                .bind(&b.account)
                .bind(&b.bidder)
                .bind(&b.cid)
                .bind(b.daily_micros)
                .bind(b.total_micros)
                .bind(now_ms)
                .bind(&b.currency)
                .bind(b.start_ms)
                .bind(b.end_ms)
                .bind(b.pacing.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0;
            if !inserted {
                // The insert above took the write lock: reading is safe now.
                let old = sqlx::query(SELECT_BUDGET)
                    .bind(&b.account)
                    .fetch_optional(&mut *tx)
                    .await?;
                let old = match old {
                    Some(r) => Some(budget_row!(r)),
                    None => None,
                };
                if old.as_ref() != Some(b) {
                    // Bumps lock_seq: instances revoke in memory exactly when
                    // they see the row change (see the method's docs for why
                    // the lease rows are left to them).
                    sqlx::query(UPDATE_BUDGET)
                        .bind(&b.account)
                        .bind(b.daily_micros)
                        .bind(b.total_micros)
                        .bind(now_ms)
                        .bind(&b.currency)
                        .bind(b.start_ms)
                        .bind(b.end_ms)
                        .bind(b.pacing.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
            Ok(inserted)
        })
    }

    /// Removes an account's budget (its spend and leases stay on record;
    /// the leases are given back by their instances, as for a change, see
    /// [`put_budget`](Self::put_budget)); true when there was one.
    pub async fn delete_budget(&self, account: &str) -> Result<bool, LedgerError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let n = sqlx::query(DELETE_BUDGET).bind(account).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(n.rows_affected() > 0)
        })
    }

    /// Every configured budget, by account.
    pub async fn budgets(&self) -> Result<Vec<BudgetRow>, LedgerError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(SELECT_BUDGETS).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(budget_row!(r));
            }
            Ok(out)
        })
    }

    /// An account's budget and where it stands on `day`; `None` when it has
    /// no budget.
    pub async fn budget_status(
        &self,
        account: &str,
        day: &str,
    ) -> Result<Option<BudgetStatus>, LedgerError> {
        on_pool!(self, pool => {
            let mut conn = pool.acquire().await?;
            let Some(row) = sqlx::query(SELECT_BUDGET)
                .bind(account)
                .fetch_optional(&mut *conn)
                .await?
            else {
                return Ok(None);
            };
            let budget = budget_row!(row);
            let (spent, out) = standing!(&budget, day, &mut *conn);
            let remaining = free(&budget, spent, out);
            Ok(Some(BudgetStatus {
                budget,
                day: day.to_owned(),
                spent_today_micros: spent.1,
                spent_total_micros: spent.0,
                leased_micros: out.0,
                leased_today_micros: out.1,
                remaining_micros: remaining,
            }))
        })
    }

    /// Grants (part of) what is free to the instance's lease, atomically;
    /// `None` when the account has no budget.
    pub async fn grant(&self, req: &LeaseRequest<'_>) -> Result<Option<Granted>, LedgerError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            // First a write: the lock that serializes grants of the account.
            let locked = sqlx::query(LOCK_ACCOUNT)
                .bind(req.account)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if locked == 0 {
                return Ok(None);
            }
            let row = sqlx::query(SELECT_BUDGET)
                .bind(req.account)
                .fetch_one(&mut *tx)
                .await?;
            let budget = budget_row!(row);
            sqlx::query(EXPIRE_LEASES)
                .bind(req.account)
                .bind(req.now_ms)
                .execute(&mut *tx)
                .await?;
            sqlx::query(RECORD_AWARDED)
                .bind(req.account)
                .bind(req.instance)
                .bind(req.day)
                .bind(req.awarded_micros)
                .execute(&mut *tx)
                .await?;
            if req.release {
                sqlx::query(RELEASE_LEASE)
                    .bind(req.account)
                    .bind(req.instance)
                    .bind(req.day)
                    .bind(req.awarded_micros)
                    .execute(&mut *tx)
                    .await?;
            }
            let (spent, out) = standing!(&budget, req.day, &mut *tx);
            let free = grantable(&budget, spent, out, req.now_ms, req.pacing_lead_ms);
            let amount = if free < req.need_micros {
                0
            } else {
                grant_size(free, req.min_micros.max(req.need_micros), req.fraction)
            };
            sqlx::query(UPSERT_LEASE)
                .bind(req.account)
                .bind(req.instance)
                .bind(req.day)
                .bind(amount)
                .bind(req.awarded_micros)
                .bind(req.now_ms + req.ttl_ms)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Some(Granted {
                amount,
                free_after: free - amount,
                committed: (spent.0 + out.0 + amount, spent.1 + out.1 + amount),
            }))
        })
    }

    /// One lease as the database holds it: (granted, expires_ms), `None`
    /// when the instance holds none on that account and day.
    pub async fn lease_row(
        &self,
        account: &str,
        instance: &str,
        day: &str,
    ) -> Result<Option<(i64, i64)>, LedgerError> {
        const SELECT_LEASE: &str = "SELECT granted_micros, expires_ms FROM budget_leases
            WHERE account = $1 AND instance = $2 AND day = $3";
        on_pool!(self, pool => {
            let row = sqlx::query(SELECT_LEASE)
                .bind(account)
                .bind(instance)
                .bind(day)
                .fetch_optional(pool)
                .await?;
            row.map(|r| Ok((r.try_get::<i64, _>(0)?, r.try_get::<i64, _>(1)?)))
                .transpose()
        })
    }

    /// Extends a lease's expiry and records what its instance awarded.
    pub async fn renew(
        &self,
        account: &str,
        instance: &str,
        day: &str,
        expires_ms: i64,
        awarded_micros: i64,
    ) -> Result<(), LedgerError> {
        on_pool!(self, pool => {
            sqlx::query(RENEW_LEASE)
                .bind(account)
                .bind(instance)
                .bind(day)
                .bind(expires_ms)
                .bind(awarded_micros)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// [`renew`](Self::renew), only while the lease has not expired at
    /// `now_ms` (an expired one may have been reclaimed by a grant): true
    /// when it was renewed.
    pub async fn renew_live(
        &self,
        account: &str,
        instance: &str,
        day: &str,
        now_ms: i64,
        expires_ms: i64,
        awarded_micros: i64,
    ) -> Result<bool, LedgerError> {
        on_pool!(self, pool => {
            let n = sqlx::query(RENEW_LIVE_LEASE)
                .bind(account)
                .bind(instance)
                .bind(day)
                .bind(expires_ms)
                .bind(awarded_micros)
                .bind(now_ms)
                .execute(pool)
                .await?;
            Ok(n.rows_affected() > 0)
        })
    }

    /// Cuts one lease back to what was awarded from it (a day that ended).
    pub async fn release(
        &self,
        account: &str,
        instance: &str,
        day: &str,
        awarded_micros: i64,
    ) -> Result<(), LedgerError> {
        on_pool!(self, pool => {
            sqlx::query(RELEASE_LEASE)
                .bind(account)
                .bind(instance)
                .bind(day)
                .bind(awarded_micros)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Cuts every lease of a stopping instance back to what it awarded
    /// (after its final `renew`s recorded that).
    pub async fn release_instance(&self, instance: &str) -> Result<(), LedgerError> {
        on_pool!(self, pool => {
            sqlx::query(RELEASE_INSTANCE).bind(instance).execute(pool).await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(daily: Option<i64>, total: Option<i64>) -> BudgetRow {
        BudgetRow {
            account: "a".into(),
            bidder: "a".into(),
            cid: None,
            daily_micros: daily,
            total_micros: total,
            currency: DEFAULT_BUDGET_CURRENCY.into(),
            start_ms: None,
            end_ms: None,
            pacing: Pacing::Asap,
        }
    }

    #[test]
    fn free_is_the_tighter_limit_and_never_negative() {
        assert_eq!(free(&row(Some(100), Some(1000)), (500, 30), (0, 20)), 50);
        assert_eq!(free(&row(Some(100), Some(1000)), (950, 30), (40, 20)), 10);
        assert_eq!(free(&row(None, Some(10)), (20, 20), (0, 0)), 0);
        assert_eq!(free(&row(None, None), (7, 7), (7, 7)), i64::MAX);
    }

    #[test]
    fn nothing_is_grantable_outside_the_flight_and_even_pacing_caps_it() {
        const H: i64 = 3_600_000;
        let noon = 1_796_083_200_000 + 12 * H; // 2026-12-01T12:00:00Z
        let mut b = row(Some(24_000_000), None);
        b.start_ms = Some(noon);
        b.end_ms = Some(noon + H);
        assert_eq!(grantable(&b, (0, 0), (0, 0), noon - 1, H), 0, "before");
        assert_eq!(grantable(&b, (0, 0), (0, 0), noon, H), 24_000_000);
        assert_eq!(grantable(&b, (0, 0), (0, 0), noon + H, H), 0, "after");
        // Even over the whole day: at noon the line is at 12 and half an
        // hour's lead is 0.5 more; 3 spent and 2 leased leave 7.5.
        b.start_ms = None;
        b.end_ms = None;
        b.pacing = Pacing::Even;
        assert_eq!(
            grantable(&b, (3_000_000, 3_000_000), (2_000_000, 2_000_000), noon, H),
            7_500_000
        );
    }

    #[test]
    fn grants_take_a_share_but_at_least_the_minimum() {
        assert_eq!(grant_size(1_000_000, 10_000, 0.1), 100_000);
        assert_eq!(grant_size(50_000, 10_000, 0.1), 10_000);
        assert_eq!(grant_size(5_000, 10_000, 0.1), 5_000);
        assert_eq!(grant_size(0, 10_000, 0.1), 0);
    }
}
