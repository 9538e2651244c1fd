//! Budget routes of the admin API: a daily and a total budget per bidder
//! and per campaign (`cid`), and where each stands today.
//!
//! A budget may have a flight (`start`, `end`, RFC 3339): outside it the
//! bidder's wins for it lose (loss reason 1001), and a bidder whose own
//! budget, or every one of whose campaign budgets, is outside its flight is
//! not called. `pacing` is `asap` (as fast as wins come) or `even` (spread
//! along the day, and along the flight for a total; see
//! [`rtb_ledger::pacing`]).
//!
//! Amounts are currency units in JSON (`{"daily": 250.0, "total": 10000}`),
//! stored and reported as integer micros, in the budget's `currency`
//! (default `USD`). A new budget is known to this replica (with an empty
//! lease) before it is written; a change revokes this replica's lease on the
//! account at once (each replica gives its rest back with the exact figure
//! it awarded; until then it still counts as outstanding). Other replicas
//! learn it at their next reload: the answer waits
//! [`Budgets::propagation`] (two reload intervals), so auctions started
//! after the answer see it everywhere.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rtb_proto::events::account_key;
use rtb_proto::Micros;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::api::ApiError;
use super::handlers::{bad, fail, json, parse, Failure};
use super::AdminState;
use crate::budget::{day_of, pacing, BudgetRow, BudgetStatus, Budgets, Flight, Pacing};
use rtb_ledger::store::utc_day;

/// A budget (`PUT .../budget`): absent or `null` means no limit of that kind.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"daily": 250.0, "total": 10000, "currency": "USD"}))]
pub struct BudgetSpec {
    /// Most that may be spent per day (UTC), in currency units.
    #[schema(value_type = Option<f64>, minimum = 0, maximum = 9000000000000.0)]
    #[serde(default)]
    pub daily: Option<Micros>,
    /// Most that may be spent in total, in currency units.
    #[schema(value_type = Option<f64>, minimum = 0, maximum = 9000000000000.0)]
    #[serde(default)]
    pub total: Option<Micros>,
    /// The currency the budget is kept in (three capital letters, ISO
    /// 4217); default `USD`. Auctions in another currency do not award the
    /// bidder's wins (there are no conversion rates).
    #[schema(example = "USD")]
    #[serde(default)]
    pub currency: Option<String>,
    /// When the flight starts (RFC 3339, e.g. `2026-12-01T00:00:00Z`):
    /// nothing is awarded from the budget before it. Absent: already started.
    #[schema(format = DateTime, example = "2026-12-01T00:00:00Z")]
    #[serde(default)]
    pub start: Option<String>,
    /// When the flight ends (RFC 3339, exclusive): nothing is awarded from
    /// it on. Absent: open-ended.
    #[schema(format = DateTime, example = "2026-12-31T00:00:00Z")]
    #[serde(default)]
    pub end: Option<String>,
    /// `asap` (the default: as fast as wins come) or `even`: the daily
    /// limit spread over each day and the total over the flight (which then
    /// needs a `start` and an `end`).
    #[schema(example = "even")]
    #[serde(default)]
    pub pacing: Option<String>,
}

/// Whether wins can still be awarded from the budget.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BudgetState {
    /// Budget is left to lease.
    Active,
    /// Nothing is left to lease: exchanges award only what their leases
    /// still hold and then stop calling the bidder.
    Exhausted,
}

/// A budget and where it stands today. Money in integer micros
/// (1 currency unit = 1,000,000), limits also in currency units as set.
#[derive(Debug, Serialize, ToSchema)]
pub struct BudgetView {
    /// Account charged: the bidder, or `bidder/cid` for a campaign.
    pub account: String,
    /// Bidder (seat).
    pub bidder: String,
    /// Campaign id, for a campaign budget.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
    /// Daily limit in currency units; absent: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daily: Option<f64>,
    /// Total limit in currency units; absent: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<f64>,
    /// Daily limit in micros.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daily_micros: Option<i64>,
    /// Total limit in micros.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_micros: Option<i64>,
    /// The currency of the limits and figures.
    pub currency: String,
    /// The flight's start (RFC 3339, UTC); absent: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// The flight's end (RFC 3339, UTC, exclusive); absent: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    /// `asap` or `even`.
    pub pacing: String,
    /// Where the flight stands now: `before`, `live` or `after`.
    pub flight: String,
    /// For an `even` daily limit: where its ideal line is now (what should
    /// have been spent today by now), micros.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ideal_today_micros: Option<i64>,
    /// For an `even` total limit (with a flight): where its ideal line is
    /// now, micros.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ideal_total_micros: Option<i64>,
    /// What exchanges could lease now: `remaining_micros`, less what even
    /// pacing holds back, and nothing outside the flight.
    pub grantable_micros: i64,
    /// The day the figures are for (UTC, `YYYY-MM-DD`).
    pub day: String,
    /// Debited today (a bidder's includes its campaigns').
    pub spent_today_micros: i64,
    /// Debited in total.
    pub spent_total_micros: i64,
    /// Held by exchange instances as leases and not yet debited.
    pub leased_micros: i64,
    /// Neither spent nor leased.
    pub remaining_micros: i64,
    /// Active or exhausted.
    pub status: BudgetState,
}

impl BudgetView {
    /// The view of `s` at `now_ms`, paced with `lead_ms` (`budget.pacing_lead_ms`).
    fn of(s: BudgetStatus, now_ms: i64, lead_ms: i64) -> Self {
        let units = |m: Option<i64>| m.map(|m| m as f64 / 1e6);
        let status = if s.exhausted() {
            BudgetState::Exhausted
        } else {
            BudgetState::Active
        };
        let [ideal_today, ideal_total] = pacing::lines(&s.budget, now_ms, lead_ms);
        Self {
            start: s.budget.start_ms.and_then(rfc3339),
            end: s.budget.end_ms.and_then(rfc3339),
            pacing: s.budget.pacing.as_str().to_owned(),
            flight: Flight::of(&s.budget, now_ms).as_str().to_owned(),
            ideal_today_micros: ideal_today.map(|l| l.ideal),
            ideal_total_micros: ideal_total.map(|l| l.ideal),
            grantable_micros: s.grantable_at(now_ms, lead_ms),
            daily: units(s.budget.daily_micros),
            total: units(s.budget.total_micros),
            daily_micros: s.budget.daily_micros,
            total_micros: s.budget.total_micros,
            currency: s.budget.currency,
            account: s.budget.account,
            bidder: s.budget.bidder,
            cid: s.budget.cid,
            day: s.day,
            spent_today_micros: s.spent_today_micros,
            spent_total_micros: s.spent_total_micros,
            leased_micros: s.leased_micros,
            remaining_micros: s.remaining_micros,
            status,
        }
    }
}

fn budgets(s: &AdminState) -> Result<&Arc<Budgets>, Failure> {
    s.budgets.as_ref().ok_or_else(|| {
        fail(
            StatusCode::SERVICE_UNAVAILABLE,
            "budgets are off: they need [kafka] enabled and [budget] enabled",
        )
    })
}

fn db_error(e: rtb_ledger::LedgerError) -> Failure {
    tracing::error!(error = %e, "admin API: budget database error");
    fail(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
}

/// The bidder must be registered: a typo must not create a budget nobody uses.
async fn known_bidder(s: &AdminState, name: &str) -> Result<(), Failure> {
    let known = match s.registry.store() {
        Some(store) => match store.get(name).await {
            Ok(_) => true,
            Err(crate::registry::StoreError::NotFound(_)) => false,
            Err(e) => return Err(fail(StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
        },
        None => s.registry.current().get(name).is_some(),
    };
    if known {
        Ok(())
    } else {
        Err(fail(
            StatusCode::NOT_FOUND,
            format!("bidder {name:?} is not registered"),
        ))
    }
}

fn check_cid(cid: &str) -> Result<(), Failure> {
    if cid.is_empty() || cid.len() > 128 || cid.chars().any(char::is_control) {
        return Err(bad(
            "cid",
            "must be 1 to 128 characters, without control characters",
        ));
    }
    Ok(())
}

/// The largest limit accepted, in micros (9 trillion currency units): sums
/// of spend and leases stay far from `i64::MAX`.
const MAX_LIMIT_MICROS: i64 = 9_000_000_000_000_000_000;

fn limit(field: &str, v: Option<Micros>) -> Result<Option<i64>, Failure> {
    match v {
        Some(m) if m.0 < 0 => Err(bad(field, format!("{field}: must not be negative"))),
        Some(m) if m.0 > MAX_LIMIT_MICROS => Err(bad(
            field,
            format!("{field}: must be at most 9000000000000 (currency units)"),
        )),
        Some(m) => Ok(Some(m.0)),
        None => Ok(None),
    }
}

/// `ms` since the epoch as RFC 3339 (UTC); `None` out of `time`'s range
/// (never for a time this API accepted).
fn rfc3339(ms: i64) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// An RFC 3339 time as ms since the epoch; the error names `field`.
fn instant(field: &str, v: Option<&str>) -> Result<Option<i64>, Failure> {
    let Some(v) = v else { return Ok(None) };
    let t = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .map_err(|e| {
            bad(
                field,
                format!("{field}: must be an RFC 3339 time such as \"2026-12-01T00:00:00Z\" ({e})"),
            )
        })?;
    let ms = t.unix_timestamp_nanos() / 1_000_000;
    i64::try_from(ms)
        .map(Some)
        .map_err(|_| bad(field, format!("{field}: out of range")))
}

/// The flight and pacing of `spec`, checked against its limits.
fn flight(
    spec: &BudgetSpec,
    daily: Option<i64>,
    total: Option<i64>,
) -> Result<(Option<i64>, Option<i64>, Pacing), Failure> {
    let start = instant("start", spec.start.as_deref())?;
    let end = instant("end", spec.end.as_deref())?;
    if let (Some(s), Some(e)) = (start, end) {
        if e <= s {
            return Err(bad("end", "end: must be after start"));
        }
    }
    let pacing = match spec.pacing.as_deref() {
        None => Pacing::Asap,
        Some(p) => {
            Pacing::parse(p).ok_or_else(|| bad("pacing", "pacing: must be \"asap\" or \"even\""))?
        }
    };
    if pacing == Pacing::Even
        && daily.is_none()
        && (total.is_none() || start.is_none() || end.is_none())
    {
        return Err(bad(
            "pacing",
            "pacing: \"even\" needs a daily limit, or a total with a start and an end (the line it is spread along)",
        ));
    }
    Ok((start, end, pacing))
}

fn check_currency(c: Option<String>) -> Result<String, Failure> {
    match c {
        None => Ok(crate::budget::DEFAULT_BUDGET_CURRENCY.to_owned()),
        Some(c) if c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()) => Ok(c),
        Some(_) => Err(bad(
            "currency",
            "currency: must be three capital letters (ISO 4217), e.g. \"USD\"",
        )),
    }
}

async fn put(s: &AdminState, bidder: String, cid: Option<String>, body: &[u8]) -> Response {
    let run = async {
        let b = budgets(s)?;
        if let Some(c) = &cid {
            check_cid(c)?;
        }
        let spec: BudgetSpec = parse(body)?;
        let daily_micros = limit("daily", spec.daily)?;
        let total_micros = limit("total", spec.total)?;
        if daily_micros.is_none() && total_micros.is_none() {
            return Err(bad("daily", "give a daily or a total limit (or both)"));
        }
        let (start_ms, end_ms, pacing) = flight(&spec, daily_micros, total_micros)?;
        let row = BudgetRow {
            account: account_key(&bidder, cid.as_deref()),
            daily_micros,
            total_micros,
            currency: check_currency(spec.currency)?,
            start_ms,
            end_ms,
            pacing,
            bidder,
            cid,
        };
        known_bidder(s, &row.bidder).await?;
        let now = b.clock().now_ms();
        // Known here before it is written: no auction on this replica awards
        // the bidder anything unleased from now on.
        b.expect(&row);
        let written = b.store().put_budget(&row, now).await;
        if let Err(e) = b.reload().await {
            tracing::warn!(error = %e, "reload after a budget change failed; the refill task retries");
        }
        b.settle(&row.account);
        let created = match written {
            Ok(c) => c,
            Err(e) => {
                // Not written: back to what the database holds.
                let _ = b.reload().await;
                return Err(db_error(e));
            }
        };
        tracing::info!(account = %row.account, daily = ?row.daily_micros, total = ?row.total_micros, currency = %row.currency, start_ms = ?row.start_ms, end_ms = ?row.end_ms, pacing = row.pacing.as_str(), "admin: budget set");
        // The other replicas learn it at their next reload.
        tokio::time::sleep(b.propagation()).await;
        let status = view(b, &row.account).await?;
        let code = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok::<_, Failure>(json(code, &status))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

async fn view(b: &Budgets, account: &str) -> Result<BudgetView, Failure> {
    let now = b.clock().now_ms();
    let day = utc_day(day_of(now) * crate::budget::DAY_MS);
    match b.store().budget_status(account, &day).await {
        Ok(Some(s)) => Ok(BudgetView::of(s, now, b.config().pacing_lead_ms as i64)),
        Ok(None) => Err(fail(
            StatusCode::NOT_FOUND,
            format!("no budget for {account:?}"),
        )),
        Err(e) => Err(db_error(e)),
    }
}

async fn get(s: &AdminState, bidder: &str, cid: Option<&str>) -> Response {
    let run = async {
        let b = budgets(s)?;
        let v = view(b, &account_key(bidder, cid)).await?;
        Ok::<_, Failure>(json(StatusCode::OK, &v))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

async fn delete(s: &AdminState, bidder: &str, cid: Option<&str>) -> Response {
    let run = async {
        let b = budgets(s)?;
        let account = account_key(bidder, cid);
        // Idempotent: removing a budget that is not there leaves what the
        // caller asked for, no limit.
        if b.store().delete_budget(&account).await.map_err(db_error)? {
            tracing::info!(%account, "admin: budget removed");
        }
        if let Err(e) = b.reload().await {
            tracing::warn!(error = %e, "reload after a budget change failed; the refill task retries");
        }
        Ok::<_, Failure>(StatusCode::NO_CONTENT.into_response())
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

fn path1(p: Result<Path<String>, PathRejection>) -> Result<String, Failure> {
    p.map(|Path(n)| n)
        .map_err(|e| fail(StatusCode::NOT_FOUND, e.body_text().to_lowercase()))
}

fn path2(p: Result<Path<(String, String)>, PathRejection>) -> Result<(String, String), Failure> {
    p.map(|Path(n)| n)
        .map_err(|e| fail(StatusCode::NOT_FOUND, e.body_text().to_lowercase()))
}

/// Sets a bidder's budget (creates or replaces it).
#[utoipa::path(put, path = "/v1/bidders/{name}/budget", request_body = BudgetSpec, tag = "budgets",
    params(("name" = String, Path, description = "bidder name")),
    responses(
        (status = 200, description = "replaced", body = BudgetView),
        (status = 201, description = "created", body = BudgetView),
        (status = 400, description = "a field is invalid; `field` names it", body = ApiError),
        (status = 401, description = "no bearer token", body = ApiError),
        (status = 403, description = "wrong bearer token", body = ApiError),
        (status = 404, description = "no such bidder", body = ApiError),
        (status = 503, description = "budgets are off, or the database is unavailable", body = ApiError),
    ))]
pub(super) async fn put_bidder_budget(
    State(s): State<Arc<AdminState>>,
    name: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Response {
    match path1(name) {
        Ok(n) => put(&s, n, None, &body).await,
        Err(f) => f.into_response(),
    }
}

/// A bidder's budget and where it stands today.
#[utoipa::path(get, path = "/v1/bidders/{name}/budget", tag = "budgets",
    params(("name" = String, Path, description = "bidder name")),
    responses(
        (status = 200, description = "the budget", body = BudgetView),
        (status = 401, description = "no bearer token", body = ApiError),
        (status = 403, description = "wrong bearer token", body = ApiError),
        (status = 404, description = "no budget for this bidder", body = ApiError),
        (status = 503, description = "budgets are off, or the database is unavailable", body = ApiError),
    ))]
pub(super) async fn get_bidder_budget(
    State(s): State<Arc<AdminState>>,
    name: Result<Path<String>, PathRejection>,
) -> Response {
    match path1(name) {
        Ok(n) => get(&s, &n, None).await,
        Err(f) => f.into_response(),
    }
}

/// Removes a bidder's budget: its wins are no longer limited. Idempotent.
#[utoipa::path(delete, path = "/v1/bidders/{name}/budget", tag = "budgets",
    params(("name" = String, Path, description = "bidder name")),
    responses(
        (status = 204, description = "removed, or there was none"),
        (status = 401, description = "no bearer token", body = ApiError),
        (status = 403, description = "wrong bearer token", body = ApiError),
        (status = 503, description = "budgets are off, or the database is unavailable", body = ApiError),
    ))]
pub(super) async fn delete_bidder_budget(
    State(s): State<Arc<AdminState>>,
    name: Result<Path<String>, PathRejection>,
) -> Response {
    match path1(name) {
        Ok(n) => delete(&s, &n, None).await,
        Err(f) => f.into_response(),
    }
}

/// Sets a campaign's budget (bids with this `cid`).
#[utoipa::path(put, path = "/v1/bidders/{name}/campaigns/{cid}/budget", request_body = BudgetSpec, tag = "budgets",
    params(("name" = String, Path, description = "bidder name"), ("cid" = String, Path, description = "campaign id (`Bid.cid`)")),
    responses(
        (status = 200, description = "replaced", body = BudgetView),
        (status = 201, description = "created", body = BudgetView),
        (status = 400, description = "a field is invalid; `field` names it", body = ApiError),
        (status = 401, description = "no bearer token", body = ApiError),
        (status = 403, description = "wrong bearer token", body = ApiError),
        (status = 404, description = "no such bidder", body = ApiError),
        (status = 503, description = "budgets are off, or the database is unavailable", body = ApiError),
    ))]
pub(super) async fn put_campaign_budget(
    State(s): State<Arc<AdminState>>,
    p: Result<Path<(String, String)>, PathRejection>,
    body: Bytes,
) -> Response {
    match path2(p) {
        Ok((n, c)) => put(&s, n, Some(c), &body).await,
        Err(f) => f.into_response(),
    }
}

/// A campaign's budget and where it stands today.
#[utoipa::path(get, path = "/v1/bidders/{name}/campaigns/{cid}/budget", tag = "budgets",
    params(("name" = String, Path, description = "bidder name"), ("cid" = String, Path, description = "campaign id (`Bid.cid`)")),
    responses(
        (status = 200, description = "the budget", body = BudgetView),
        (status = 401, description = "no bearer token", body = ApiError),
        (status = 403, description = "wrong bearer token", body = ApiError),
        (status = 404, description = "no budget for this campaign", body = ApiError),
        (status = 503, description = "budgets are off, or the database is unavailable", body = ApiError),
    ))]
pub(super) async fn get_campaign_budget(
    State(s): State<Arc<AdminState>>,
    p: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    match path2(p) {
        Ok((n, c)) => get(&s, &n, Some(&c)).await,
        Err(f) => f.into_response(),
    }
}

/// Removes a campaign's budget. Idempotent.
#[utoipa::path(delete, path = "/v1/bidders/{name}/campaigns/{cid}/budget", tag = "budgets",
    params(("name" = String, Path, description = "bidder name"), ("cid" = String, Path, description = "campaign id (`Bid.cid`)")),
    responses(
        (status = 204, description = "removed, or there was none"),
        (status = 401, description = "no bearer token", body = ApiError),
        (status = 403, description = "wrong bearer token", body = ApiError),
        (status = 503, description = "budgets are off, or the database is unavailable", body = ApiError),
    ))]
pub(super) async fn delete_campaign_budget(
    State(s): State<Arc<AdminState>>,
    p: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    match path2(p) {
        Ok((n, c)) => delete(&s, &n, Some(&c)).await,
        Err(f) => f.into_response(),
    }
}
