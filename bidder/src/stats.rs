//! Counters a simulated bidder keeps about the traffic it saw, served at `GET /stats`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// How many recent win prices and auction ids are kept.
pub const MAX_RECORDED_WINS: usize = 1000;

/// A snapshot of what a bidder has seen; the body of `GET /stats`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Bid requests received (POSTs; notices, `/stats` and `/healthz` are not counted).
    pub requests: u64,
    /// Bid requests that arrived over HTTP/1.x.
    pub http1: u64,
    /// Bid requests that arrived over HTTP/2.
    pub http2: u64,
    /// Bid requests answered with a bid response (at least one bid).
    pub bids: u64,
    /// Bid requests answered `204 No Content`.
    pub no_bids: u64,
    /// Win notices (`GET /win`) received.
    pub wins: u64,
    /// Billing notices (`GET /bill`) received.
    #[serde(default)]
    pub bills: u64,
    /// The `price` query values of the most recent win notices, raw, oldest first.
    pub win_prices: Vec<String>,
    /// The `auction` query values of the most recent win notices, raw, oldest first.
    pub win_auction_ids: Vec<String>,
    /// `tmax` of the latest decoded bid request that carried one.
    pub last_tmax: Option<u64>,
    /// `x-openrtb-version` header of the latest bid request that carried one.
    pub last_openrtb_version: Option<String>,
}

/// What is kept behind the lock: the parts that are not plain counters.
#[derive(Default)]
struct Recent {
    win_prices: VecDeque<String>,
    win_auction_ids: VecDeque<String>,
    last_tmax: Option<u64>,
    last_openrtb_version: Option<String>,
}

fn push_bounded(queue: &mut VecDeque<String>, value: String) {
    if queue.len() >= MAX_RECORDED_WINS {
        queue.pop_front();
    }
    queue.push_back(value);
}

/// Live, shared statistics recorder.
#[derive(Default)]
pub(crate) struct StatsRecorder {
    // Atomics: every request bumps these from whichever worker thread serves it, and a
    // relaxed increment is far cheaper under load than a lock. Snapshots need no
    // cross-counter consistency, so Relaxed ordering is enough.
    requests: AtomicU64,
    http1: AtomicU64,
    http2: AtomicU64,
    bids: AtomicU64,
    no_bids: AtomicU64,
    wins: AtomicU64,
    bills: AtomicU64,
    // A std Mutex: the strings and queues cannot be updated atomically, critical sections are
    // a few pushes (never held across an await), so an async lock would only add overhead.
    recent: Mutex<Recent>,
}

impl StatsRecorder {
    fn recent(&self) -> std::sync::MutexGuard<'_, Recent> {
        // A panic while holding the lock cannot leave `Recent` inconsistent in a way that
        // matters for statistics, so recover from poisoning instead of propagating it.
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn record_request(&self, http2: bool, openrtb_version: Option<String>) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let version_counter = if http2 { &self.http2 } else { &self.http1 };
        version_counter.fetch_add(1, Ordering::Relaxed);
        if let Some(v) = openrtb_version {
            self.recent().last_openrtb_version = Some(v);
        }
    }

    pub(crate) fn record_tmax(&self, tmax: u64) {
        self.recent().last_tmax = Some(tmax);
    }

    pub(crate) fn record_bid(&self) {
        self.bids.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_no_bid(&self) {
        self.no_bids.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_win(&self, price: Option<String>, auction_id: Option<String>) {
        self.wins.fetch_add(1, Ordering::Relaxed);
        let mut recent = self.recent();
        if let Some(p) = price {
            push_bounded(&mut recent.win_prices, p);
        }
        if let Some(a) = auction_id {
            push_bounded(&mut recent.win_auction_ids, a);
        }
    }

    pub(crate) fn record_bill(&self) {
        self.bills.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let recent = self.recent();
        Stats {
            requests: self.requests.load(Ordering::Relaxed),
            http1: self.http1.load(Ordering::Relaxed),
            http2: self.http2.load(Ordering::Relaxed),
            bids: self.bids.load(Ordering::Relaxed),
            no_bids: self.no_bids.load(Ordering::Relaxed),
            wins: self.wins.load(Ordering::Relaxed),
            bills: self.bills.load(Ordering::Relaxed),
            win_prices: recent.win_prices.iter().cloned().collect(),
            win_auction_ids: recent.win_auction_ids.iter().cloned().collect(),
            last_tmax: recent.last_tmax,
            last_openrtb_version: recent.last_openrtb_version.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn win_lists_are_bounded() {
        let s = StatsRecorder::default();
        for i in 0..(MAX_RECORDED_WINS + 5) {
            s.record_win(Some(i.to_string()), Some(format!("a{i}")));
        }
        let snap = s.snapshot();
        assert_eq!(snap.wins, (MAX_RECORDED_WINS + 5) as u64);
        assert_eq!(snap.win_prices.len(), MAX_RECORDED_WINS);
        assert_eq!(snap.win_prices[0], "5");
        assert_eq!(
            snap.win_auction_ids.last().unwrap(),
            &format!("a{}", MAX_RECORDED_WINS + 4)
        );
    }
}
