//! Per-bidder protection on the hot path: concurrency limit, QPS cap and
//! circuit breaker, plus the recent timeout rate shown to operators.
//!
//! Everything here is atomics: every auction asks every bidder for a permit,
//! so a lock would be contended by all of them. Admission never waits: a
//! bidder over its limit, or with an open circuit, is skipped for this
//! auction (a seat-non-bid), because waiting would spend the publisher's
//! deadline on a bidder that cannot take the call.
//!
//! The circuit: closed → open after `failure_threshold` consecutive failed
//! calls (timeouts, transport errors, 5xx) → after `cooldown_ms`, half-open:
//! one probe call is let through → closed when it succeeds, open again when
//! it fails. If the probe's result never comes back (its auction was
//! abandoned), another probe is allowed after a further cooldown.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::config::BidderEntry;

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;

/// Width of one timeout-rate window; the rate covers the current and the
/// previous window (10 to 20 seconds).
const RATE_WINDOW_MS: u64 = 10_000;

/// Milliseconds since the process's first call: a monotonic clock that fits
/// an atomic.
pub(crate) fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// A monotonic [`now_ms`] instant as Unix milliseconds, for the admin API.
pub(crate) fn to_unix_ms(at_ms: u64) -> u64 {
    let unix_now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    unix_now.saturating_add(at_ms).saturating_sub(now_ms())
}

/// The circuit's state, as the admin API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Circuit {
    /// Calls go through.
    Closed,
    /// The bidder is not called.
    Open,
    /// One probe call decides.
    HalfOpen,
}

impl Circuit {
    /// `closed`, `open` or `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            Circuit::Closed => "closed",
            Circuit::Open => "open",
            Circuit::HalfOpen => "half_open",
        }
    }
}

/// Why a bidder was left out of an auction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Its circuit is open (or half-open with the probe taken).
    CircuitOpen,
    /// `max_concurrency` calls are already in flight.
    Concurrency,
    /// `qps_limit` calls were already made this second.
    Qps,
    /// Its budget lease on this instance is empty: it could not pay for a win.
    Budget,
    /// Its budget is kept in another currency than the auction's (there are
    /// no conversion rates).
    BudgetCurrency,
    /// Auction events cannot be recorded durably now (the crash journal or
    /// the spool is unwritable): a win could not be debited for sure, so no
    /// bidder is called.
    Unrecorded,
    /// Its `tmax_deduction_ms` leaves it no time to answer in this auction.
    NoTime,
    /// Its budget's flight has not started or has ended (or every one of
    /// its campaign budgets' has).
    OutOfFlight,
}

impl Skip {
    /// The reason written in `ext.seatnonbid`.
    pub fn reason(self) -> &'static str {
        match self {
            Skip::CircuitOpen => "circuit open",
            Skip::Concurrency => "concurrency limit",
            Skip::Qps => "qps limit",
            Skip::Budget => "budget exhausted",
            Skip::BudgetCurrency => "budget in another currency",
            Skip::Unrecorded => "auction events cannot be recorded (journal or spool unwritable)",
            Skip::NoTime => "no time left after tmax_deduction_ms",
            Skip::OutOfFlight => "budget outside its flight (start/end)",
        }
    }

    /// The seat-non-bid status code: 500 for the bidder's own protections
    /// (circuit, concurrency, QPS), 501 for an exhausted budget. OpenRTB
    /// leaves codes from 500 up to the exchange.
    pub fn code(self) -> u16 {
        match self {
            Skip::Budget | Skip::BudgetCurrency | Skip::Unrecorded | Skip::OutOfFlight => {
                crate::outcome::NONBID_BUDGET
            }
            _ => crate::outcome::NONBID_NOT_CALLED,
        }
    }
}

/// One bidder's protection state; kept across registry reloads while the
/// bidder's endpoints do not change.
#[derive(Debug, Default)]
pub struct Health {
    in_flight: AtomicU32,
    /// (second << 32) | calls in that second.
    qps_window: AtomicU64,
    state: AtomicU8,
    consecutive_failures: AtomicU32,
    /// When the circuit opened, or when the last probe was let through.
    since_ms: AtomicU64,
    /// Timeout-rate windows: current start, calls, timeouts; previous ones.
    window_start: AtomicU64,
    calls: AtomicU64,
    timeouts: AtomicU64,
    prev_calls: AtomicU64,
    prev_timeouts: AtomicU64,
    /// Set by the thread that rolls the window, so only one does.
    rolling: AtomicBool,
}

/// Held while a call is in flight; releases the concurrency slot when dropped.
#[derive(Debug)]
pub struct Permit<'a> {
    health: &'a Health,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.health.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Health {
    /// Asks to call the bidder now; never waits.
    pub fn admit(&self, entry: &BidderEntry) -> Result<Permit<'_>, Skip> {
        let now = now_ms();
        // A cheap early answer for the common broken-bidder case.
        if self.state.load(Ordering::Acquire) == OPEN
            && now.saturating_sub(self.since_ms.load(Ordering::Acquire)) < entry.circuit.cooldown_ms
        {
            return Err(Skip::CircuitOpen);
        }
        let before = self.in_flight.fetch_add(1, Ordering::Relaxed);
        let permit = Permit { health: self };
        if before >= entry.max_concurrency {
            return Err(Skip::Concurrency);
        }
        if let Some(limit) = entry.qps_limit {
            self.take_qps(now, limit)?;
        }
        self.pass_circuit(now, entry)?;
        Ok(permit)
    }

    fn take_qps(&self, now: u64, limit: u32) -> Result<(), Skip> {
        let second = now / 1000;
        let mut cur = self.qps_window.load(Ordering::Relaxed);
        loop {
            let (s, n) = (cur >> 32, cur & 0xFFFF_FFFF);
            let next = if s != second {
                (second << 32) | 1
            } else if n >= u64::from(limit) {
                return Err(Skip::Qps);
            } else {
                cur + 1
            };
            match self.qps_window.compare_exchange_weak(
                cur,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(actual) => cur = actual,
            }
        }
    }

    fn pass_circuit(&self, now: u64, entry: &BidderEntry) -> Result<(), Skip> {
        let state = self.state.load(Ordering::Acquire);
        if state == CLOSED {
            return Ok(());
        }
        // Open past its cooldown, or half-open with a probe that never came
        // back: let exactly one caller through as the probe.
        let since = self.since_ms.load(Ordering::Acquire);
        if now.saturating_sub(since) < entry.circuit.cooldown_ms {
            return Err(Skip::CircuitOpen);
        }
        if self
            .since_ms
            .compare_exchange(since, now, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(Skip::CircuitOpen);
        }
        if state == OPEN {
            self.state.store(HALF_OPEN, Ordering::Release);
            tracing::info!(bidder = %entry.name, "circuit half-open: sending one probe");
        }
        Ok(())
    }

    /// Records a call's outcome: `timeout` and `failed` (transport error,
    /// 5xx) count against the circuit; anything else is a success.
    pub fn record(&self, entry: &BidderEntry, failed: bool, timeout: bool) {
        self.count_rate(timeout);
        if !failed && !timeout {
            self.consecutive_failures.store(0, Ordering::Relaxed);
            if self.state.swap(CLOSED, Ordering::AcqRel) != CLOSED {
                tracing::info!(bidder = %entry.name, "circuit closed: bidder answered");
            }
            return;
        }
        let n = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        let state = self.state.load(Ordering::Acquire);
        let reopen = state == HALF_OPEN;
        if reopen || (state == CLOSED && n >= entry.circuit.failure_threshold) {
            self.since_ms.store(now_ms(), Ordering::Release);
            if self.state.swap(OPEN, Ordering::AcqRel) != OPEN {
                tracing::warn!(
                    bidder = %entry.name,
                    consecutive_failures = n,
                    cooldown_ms = entry.circuit.cooldown_ms,
                    "circuit open: bidder is not called until a probe succeeds"
                );
            }
        }
    }

    fn count_rate(&self, timeout: bool) {
        let now = now_ms();
        let start = self.window_start.load(Ordering::Relaxed);
        if now.saturating_sub(start) >= RATE_WINDOW_MS
            && !self.rolling.swap(true, Ordering::Acquire)
        {
            // An idle gap longer than a window leaves nothing "previous".
            let stale = now.saturating_sub(start) >= 2 * RATE_WINDOW_MS;
            let calls = self.calls.swap(0, Ordering::Relaxed);
            let timeouts = self.timeouts.swap(0, Ordering::Relaxed);
            self.prev_calls
                .store(if stale { 0 } else { calls }, Ordering::Relaxed);
            self.prev_timeouts
                .store(if stale { 0 } else { timeouts }, Ordering::Relaxed);
            self.window_start.store(now, Ordering::Relaxed);
            self.rolling.store(false, Ordering::Release);
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        if timeout {
            self.timeouts.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The circuit's state now.
    pub fn circuit(&self) -> Circuit {
        match self.state.load(Ordering::Acquire) {
            OPEN => Circuit::Open,
            HALF_OPEN => Circuit::HalfOpen,
            _ => Circuit::Closed,
        }
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Consecutive failed calls.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures.load(Ordering::Relaxed)
    }

    /// Share of calls that timed out over the last 10 to 20 seconds (0 when
    /// there were none).
    pub fn recent_timeout_rate(&self) -> f64 {
        let stale = now_ms().saturating_sub(self.window_start.load(Ordering::Relaxed));
        let (mut calls, mut timeouts) = (0, 0);
        if stale < 2 * RATE_WINDOW_MS {
            calls += self.calls.load(Ordering::Relaxed);
            timeouts += self.timeouts.load(Ordering::Relaxed);
            if stale < RATE_WINDOW_MS {
                calls += self.prev_calls.load(Ordering::Relaxed);
                timeouts += self.prev_timeouts.load(Ordering::Relaxed);
            }
        }
        if calls == 0 {
            0.0
        } else {
            timeouts as f64 / calls as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Protocol;

    fn entry() -> BidderEntry {
        let mut e = BidderEntry::new("b", vec!["http://x".into()], Protocol::H2c);
        e.circuit.failure_threshold = 3;
        e.circuit.cooldown_ms = 1;
        e.max_concurrency = 2;
        e
    }

    #[test]
    fn circuit_opens_probes_and_closes() {
        let (h, mut e) = (Health::default(), entry());
        e.circuit.cooldown_ms = 60_000;
        for _ in 0..3 {
            assert!(h.admit(&e).is_ok());
            h.record(&e, false, true);
        }
        assert_eq!(h.circuit(), Circuit::Open);
        assert_eq!(h.admit(&e).unwrap_err(), Skip::CircuitOpen);
        // After the cooldown: one probe, then closed on success.
        e.circuit.cooldown_ms = 1;
        std::thread::sleep(std::time::Duration::from_millis(3));
        let probe = h.admit(&e).unwrap();
        assert_eq!(h.circuit(), Circuit::HalfOpen);
        assert_eq!(h.admit(&e).unwrap_err(), Skip::CircuitOpen);
        drop(probe);
        h.record(&e, false, false);
        assert_eq!(h.circuit(), Circuit::Closed);
        assert!((h.recent_timeout_rate() - 0.75).abs() < 1e-9);
    }

    #[test]
    fn failed_probe_reopens() {
        let (h, e) = (Health::default(), entry());
        for _ in 0..3 {
            h.record(&e, true, false);
        }
        std::thread::sleep(std::time::Duration::from_millis(3));
        let _probe = h.admit(&e).unwrap();
        h.record(&e, true, false);
        assert_eq!(h.circuit(), Circuit::Open);
    }

    #[test]
    fn concurrency_and_qps_refuse_without_waiting() {
        let (h, mut e) = (Health::default(), entry());
        let a = h.admit(&e).unwrap();
        let _b = h.admit(&e).unwrap();
        assert_eq!(h.admit(&e).unwrap_err(), Skip::Concurrency);
        assert_eq!(h.in_flight(), 2);
        drop(a);
        assert_eq!(h.in_flight(), 1);
        e.max_concurrency = 100;
        e.qps_limit = Some(1);
        // One call left this second at most (the window may roll over).
        let results: Vec<bool> = (0..3).map(|_| h.admit(&e).is_ok()).collect();
        assert!(
            results.iter().filter(|ok| !**ok).count() >= 1,
            "{results:?}"
        );
    }
}
