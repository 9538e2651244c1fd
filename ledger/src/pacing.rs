//! Campaign flights and even pacing, as arithmetic on integer micros and
//! milliseconds (no I/O): where a budget's ideal spend line is at a given
//! time, and how much may be granted or awarded against it.
//!
//! An `even` budget is spent along straight lines: its daily limit over
//! each UTC day (the part of the day inside its flight, when the flight
//! starts or ends that day), and its total limit over its flight (when the
//! flight has both ends; a total without an end is not paced). The *lead*
//! is what a line moves in `budget.pacing_lead_ms`. Two controls keep spend
//! on the lines, neither with coordination on the auction's hot path:
//!
//! - the lease grant ([`headroom`]) never lets what is spent plus what is
//!   leased, over every replica, pass a line plus half its lead: a hard
//!   bound, kept by the same atomic update that keeps the limits;
//! - the exchange admits each win with the probability [`admit_share`],
//!   from its own estimate of spend: 1 at half a lead below the line, 0 at
//!   half a lead above, linear between. Wins are spread over the time
//!   rather than taken in a burst after each grant.
//!
//! Catch-up is bounded the same way: spend that fell behind (too few wins
//! for a while) is made up as wins come, at most up to the line plus half a
//! lead, never in one jump past it.

use crate::leases::BudgetRow;
use crate::store::DAY_MS;

/// How a budget is spent over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pacing {
    /// As fast as wins come (within the limits).
    #[default]
    Asap,
    /// Along the ideal lines (see the module docs).
    Even,
}

impl Pacing {
    /// The name stored and shown (`asap`, `even`).
    pub fn as_str(self) -> &'static str {
        match self {
            Pacing::Asap => "asap",
            Pacing::Even => "even",
        }
    }

    /// The pacing named `s`, if it is one.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "asap" => Some(Pacing::Asap),
            "even" => Some(Pacing::Even),
            _ => None,
        }
    }
}

/// Where a budget's flight stands at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flight {
    /// Before its `start`.
    Before,
    /// Between `start` and `end` (or without them).
    Live,
    /// At or after its `end`.
    After,
}

impl Flight {
    /// The flight of `row` at `now_ms`: `start` is inclusive, `end` exclusive.
    pub fn of(row: &BudgetRow, now_ms: i64) -> Self {
        if row.start_ms.is_some_and(|s| now_ms < s) {
            Flight::Before
        } else if row.end_ms.is_some_and(|e| now_ms >= e) {
            Flight::After
        } else {
            Flight::Live
        }
    }

    /// The name shown (`before`, `live`, `after`).
    pub fn as_str(self) -> &'static str {
        match self {
            Flight::Before => "before",
            Flight::Live => "live",
            Flight::After => "after",
        }
    }
}

/// One paced limit at one moment, in micros.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    /// What should have been spent by now.
    pub ideal: i64,
    /// What the line moves in the lead time (at least 1).
    pub lead: i64,
}

/// `limit * part / whole` in 128 bits (no overflow), `part` clamped to
/// `0..=whole`.
fn share(limit: i64, part: i64, whole: i64) -> i64 {
    let part = part.clamp(0, whole);
    (i128::from(limit) * i128::from(part) / i128::from(whole.max(1))) as i64
}

/// A line over `[from, to)` for `limit`, at `now_ms`; `None` when the span
/// is empty.
fn line(limit: i64, from: i64, to: i64, now_ms: i64, lead_ms: i64) -> Option<Line> {
    (to > from).then(|| Line {
        ideal: share(limit, now_ms - from, to - from),
        lead: share(limit, lead_ms, to - from).max(1),
    })
}

/// The paced lines of `row` at `now_ms`, `[daily, total]`: `None` for a
/// limit that is not paced (pacing `asap`, no such limit, a day with no
/// flight in it, or a total without both flight ends).
pub fn lines(row: &BudgetRow, now_ms: i64, lead_ms: i64) -> [Option<Line>; 2] {
    if row.pacing != Pacing::Even {
        return [None, None];
    }
    let day_start = now_ms.div_euclid(DAY_MS) * DAY_MS;
    let from = row.start_ms.map_or(day_start, |s| s.max(day_start));
    let to = row
        .end_ms
        .map_or(day_start + DAY_MS, |e| e.min(day_start + DAY_MS));
    let daily = row
        .daily_micros
        .and_then(|d| line(d, from, to, now_ms, lead_ms));
    let total = match (row.total_micros, row.start_ms, row.end_ms) {
        (Some(t), Some(s), Some(e)) => line(t, s, e, now_ms, lead_ms),
        _ => None,
    };
    [daily, total]
}

/// Most that may still be granted under pacing, given `committed` (spent
/// plus leased, `(total, today)`): each line plus half its lead, less what
/// is committed against it; `i64::MAX` when nothing is paced. Never negative.
pub fn headroom(row: &BudgetRow, now_ms: i64, lead_ms: i64, committed: (i64, i64)) -> i64 {
    let [daily, total] = lines(row, now_ms, lead_ms);
    let room = |l: Option<Line>, c: i64| {
        l.map_or(i64::MAX, |l| {
            l.ideal.saturating_add(l.lead / 2).saturating_sub(c)
        })
    };
    room(daily, committed.1)
        .min(room(total, committed.0))
        .max(0)
}

/// The share of wins to admit now (0 to 1), given `spent` (an estimate of
/// what is spent, `(total, today)`): per paced line, 1 at half a lead
/// below it, 0 at half a lead above, linear between; the smaller of the
/// two; 1 when nothing is paced.
pub fn admit_share(row: &BudgetRow, now_ms: i64, lead_ms: i64, spent: (i64, i64)) -> f64 {
    let [daily, total] = lines(row, now_ms, lead_ms);
    let p = |l: Option<Line>, s: i64| {
        l.map_or(1.0, |l| {
            (0.5 + (l.ideal as f64 - s as f64) / l.lead as f64).clamp(0.0, 1.0)
        })
    };
    p(daily, spent.1).min(p(total, spent.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leases::DEFAULT_BUDGET_CURRENCY;

    const H: i64 = 3_600_000;
    /// 2026-12-01T00:00:00Z.
    const DAY0: i64 = 1_796_083_200_000;

    fn row(
        daily: Option<i64>,
        total: Option<i64>,
        start: Option<i64>,
        end: Option<i64>,
    ) -> BudgetRow {
        BudgetRow {
            account: "a/c".into(),
            bidder: "a".into(),
            cid: Some("c".into()),
            daily_micros: daily,
            total_micros: total,
            currency: DEFAULT_BUDGET_CURRENCY.into(),
            start_ms: start,
            end_ms: end,
            pacing: Pacing::Even,
        }
    }

    #[test]
    fn the_daily_line_runs_over_the_day_or_the_part_of_it_in_flight() {
        let r = row(Some(24_000_000), None, None, None);
        let [d, t] = lines(&r, DAY0 + 6 * H, 60_000);
        assert_eq!(d.unwrap().ideal, 6_000_000);
        // One minute of a 1,000,000-per-hour line.
        assert_eq!(d.unwrap().lead, 16_666);
        assert_eq!(t, None, "no total");
        // A flight that starts at 12:00: the day's budget over 12 hours.
        let r = row(Some(24_000_000), None, Some(DAY0 + 12 * H), None);
        assert_eq!(
            lines(&r, DAY0 + 18 * H, 60_000)[0].unwrap().ideal,
            12_000_000
        );
        assert_eq!(lines(&r, DAY0 + 6 * H, 60_000)[0].unwrap().ideal, 0);
        // The next day is whole again.
        assert_eq!(
            lines(&r, DAY0 + 30 * H, 60_000)[0].unwrap().ideal,
            6_000_000
        );
        // A flight that ended yesterday: no line today.
        let r = row(Some(24_000_000), None, None, Some(DAY0 - H));
        assert_eq!(lines(&r, DAY0 + H, 60_000)[0], None);
        // asap: nothing is paced.
        let mut r = row(Some(24_000_000), None, None, None);
        r.pacing = Pacing::Asap;
        assert_eq!(lines(&r, DAY0 + H, 60_000), [None, None]);
        assert_eq!(headroom(&r, DAY0 + H, 60_000, (0, 0)), i64::MAX);
        assert_eq!(admit_share(&r, DAY0 + H, 60_000, (i64::MAX, i64::MAX)), 1.0);
    }

    #[test]
    fn the_total_line_needs_both_ends() {
        let r = row(None, Some(10_000_000), Some(DAY0), Some(DAY0 + 10 * H));
        assert_eq!(lines(&r, DAY0 + 3 * H, 60_000)[1].unwrap().ideal, 3_000_000);
        assert_eq!(
            lines(&r, DAY0 + 11 * H, 60_000)[1].unwrap().ideal,
            10_000_000
        );
        let r = row(None, Some(10_000_000), Some(DAY0), None);
        assert_eq!(lines(&r, DAY0 + 3 * H, 60_000), [None, None]);
    }

    #[test]
    fn headroom_is_the_tighter_line_plus_half_a_lead_less_what_is_committed() {
        // Daily 24 (1 per hour), total 12 over 24 hours (0.5 per hour).
        let r = row(
            Some(24_000_000),
            Some(12_000_000),
            Some(DAY0),
            Some(DAY0 + 24 * H),
        );
        // At 06:00: daily line 6, total line 3; leads of an hour: 1 and 0.5.
        let now = DAY0 + 6 * H;
        assert_eq!(headroom(&r, now, H, (0, 0)), 3_250_000);
        assert_eq!(headroom(&r, now, H, (3_000_000, 3_000_000)), 250_000);
        assert_eq!(
            headroom(&r, now, H, (9_000_000, 9_000_000)),
            0,
            "never negative"
        );
        // Huge limits do not overflow.
        let r = row(Some(i64::MAX / 2), None, None, None);
        assert!(headroom(&r, DAY0 + 23 * H, H, (0, 0)) > 0);
    }

    #[test]
    fn the_admitted_share_falls_from_one_to_zero_across_the_lead() {
        let r = row(Some(24_000_000), None, None, None);
        let now = DAY0 + 6 * H; // the line is at 6, the lead (an hour) is 1.
        let p = |spent| admit_share(&r, now, H, (0, spent));
        assert_eq!(p(5_000_000), 1.0, "behind: every win");
        assert_eq!(p(5_500_000), 1.0);
        assert!((p(6_000_000) - 0.5).abs() < 1e-9, "on the line: half");
        assert!((p(6_250_000) - 0.25).abs() < 1e-9);
        assert_eq!(p(6_500_000), 0.0, "half a lead ahead: none");
        assert_eq!(p(9_000_000), 0.0);
    }

    #[test]
    fn flights_include_their_start_and_exclude_their_end() {
        let r = row(Some(1), None, Some(DAY0), Some(DAY0 + H));
        assert_eq!(Flight::of(&r, DAY0 - 1), Flight::Before);
        assert_eq!(Flight::of(&r, DAY0), Flight::Live);
        assert_eq!(Flight::of(&r, DAY0 + H - 1), Flight::Live);
        assert_eq!(Flight::of(&r, DAY0 + H), Flight::After);
        assert_eq!(Flight::of(&row(Some(1), None, None, None), 0), Flight::Live);
    }
}
