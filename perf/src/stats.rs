//! Latency and outcome recording: HdrHistograms in microseconds (one for the
//! whole run, one per second of run time) and counts by response class.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Lowest recordable latency: 1 µs.
pub const LOWEST_US: u64 = 1;
/// Highest recordable latency: 60 s; larger values are clamped to it.
pub const HIGHEST_US: u64 = 60_000_000;
/// Significant decimal digits kept by every histogram.
pub const SIGFIG: u8 = 3;

/// A new empty latency histogram with the crate's bounds (1 µs..60 s, 3 digits).
pub fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts, so this cannot fail.
    Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, SIGFIG).expect("valid histogram bounds")
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An HTTP response with this status code.
    Status(u16),
    /// No response within the per-request client timeout.
    Timeout,
    /// Connection or protocol failure before a response.
    Error,
}

/// Counts of outcomes by class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCounts {
    /// 200: an auction with a winner.
    pub ok_200: u64,
    /// 204: an auction without a winner.
    pub no_bid_204: u64,
    /// 503: the exchange shed the request.
    pub shed_503: u64,
    /// Other 4xx responses (bad requests).
    pub client_4xx: u64,
    /// Other 5xx responses.
    pub server_5xx: u64,
    /// Any other status (1xx/3xx or unexpected 2xx).
    pub other_status: u64,
    /// No response within the client timeout.
    pub timeouts: u64,
    /// Connection or protocol errors.
    pub errors: u64,
}

impl StatusCounts {
    /// Counts one outcome.
    pub fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Status(200) => self.ok_200 += 1,
            Outcome::Status(204) => self.no_bid_204 += 1,
            Outcome::Status(503) => self.shed_503 += 1,
            Outcome::Status(s) if (400..500).contains(&s) => self.client_4xx += 1,
            Outcome::Status(s) if (500..600).contains(&s) => self.server_5xx += 1,
            Outcome::Status(_) => self.other_status += 1,
            Outcome::Timeout => self.timeouts += 1,
            Outcome::Error => self.errors += 1,
        }
    }

    /// Every request accounted for.
    pub fn total(&self) -> u64 {
        self.ok_200
            + self.no_bid_204
            + self.shed_503
            + self.client_4xx
            + self.server_5xx
            + self.other_status
            + self.timeouts
            + self.errors
    }

    /// Auctions the exchange ran to an answer (200 or 204).
    pub fn answered(&self) -> u64 {
        self.ok_200 + self.no_bid_204
    }

    /// Adds another set of counts.
    pub fn add(&mut self, other: &StatusCounts) {
        self.ok_200 += other.ok_200;
        self.no_bid_204 += other.no_bid_204;
        self.shed_503 += other.shed_503;
        self.client_4xx += other.client_4xx;
        self.server_5xx += other.server_5xx;
        self.other_status += other.other_status;
        self.timeouts += other.timeouts;
        self.errors += other.errors;
    }
}

/// Everything recorded during a run.
#[derive(Debug, Clone)]
pub struct Recorder {
    /// Latency of every request that got a response or timed out, in µs,
    /// measured from its intended send time.
    pub all: Histogram<u64>,
    /// The same, split by the second of run time in which each request was
    /// scheduled to leave.
    pub per_second: Vec<Histogram<u64>>,
    /// Outcome counts.
    pub counts: StatusCounts,
    /// What the 200 answers sold.
    pub sold: Sold,
}

/// Impressions sold and what they were sold for, from the 200 answers'
/// winning bids (`price` is the clearing price the publisher is charged).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sold {
    /// Winning bids (impressions sold).
    pub imps: u64,
    /// Sum of their clearing prices, micros of CPM.
    pub revenue_micros: u64,
}

impl Sold {
    /// Adds another count to this one.
    pub fn add(&mut self, other: Sold) {
        self.imps += other.imps;
        self.revenue_micros += other.revenue_micros;
    }

    /// Adds the winning bids of one BidResponse body; a body that is not
    /// one adds nothing.
    pub fn add_response(&mut self, body: &[u8]) {
        #[derive(Deserialize)]
        struct Resp {
            #[serde(default)]
            seatbid: Vec<SeatBid>,
        }
        #[derive(Deserialize)]
        struct SeatBid {
            #[serde(default)]
            bid: Vec<Bid>,
        }
        #[derive(Deserialize)]
        struct Bid {
            price: f64,
        }
        let Ok(r) = serde_json::from_slice::<Resp>(body) else {
            return;
        };
        for b in r.seatbid.iter().flat_map(|s| &s.bid) {
            self.imps += 1;
            // Prices carry at most 6 decimals: rounding to micros is exact.
            self.revenue_micros += (b.price.max(0.0) * 1e6).round() as u64;
        }
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Recorder {
        Recorder {
            all: new_histogram(),
            per_second: Vec::new(),
            counts: StatusCounts::default(),
            sold: Sold::default(),
        }
    }

    /// Records one request scheduled `scheduled_at` after the start of the run
    /// that ended with `outcome` after `latency` (from its intended send time).
    ///
    /// Timeouts are recorded at their elapsed time, a lower bound of the real
    /// latency, so that they raise the tail instead of vanishing from it;
    /// connection errors have no meaningful latency and are only counted.
    pub fn record(&mut self, scheduled_at: Duration, latency: Duration, outcome: Outcome) {
        self.counts.count(outcome);
        if outcome == Outcome::Error {
            return;
        }
        let us = (latency.as_micros() as u64).clamp(LOWEST_US, HIGHEST_US);
        self.all.saturating_record(us);
        let second = scheduled_at.as_secs() as usize;
        while self.per_second.len() <= second {
            self.per_second.push(new_histogram());
        }
        self.per_second[second].saturating_record(us);
    }

    /// Merges another recorder into this one.
    pub fn merge(&mut self, other: &Recorder) {
        // Both sides use the same bounds, so adding cannot fail.
        let _ = self.all.add(&other.all);
        while self.per_second.len() < other.per_second.len() {
            self.per_second.push(new_histogram());
        }
        for (mine, theirs) in self.per_second.iter_mut().zip(&other.per_second) {
            let _ = mine.add(theirs);
        }
        self.counts.add(&other.counts);
        self.sold.add(other.sold);
    }
}

/// Converts a µs value to ms for reports.
pub fn us_to_ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Writes a histogram in HdrHistogram's classic percentile-distribution text
/// format (as `HistogramLogProcessor`/`outputPercentileDistribution` print it),
/// values in milliseconds, five ticks per half distance.
pub fn hgrm(hist: &Histogram<u64>) -> String {
    let scale = 1000.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total: u64 = 0;
    if !hist.is_empty() {
        for v in hist.iter_quantiles(5) {
            total += v.count_since_last_iteration();
            let value = v.value_iterated_to() as f64 / scale;
            let q = v.quantile_iterated_to();
            if q < 1.0 {
                let _ = writeln!(
                    out,
                    "{:12.3} {:2.12} {:10} {:14.2}",
                    value,
                    q,
                    total,
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(out, "{:12.3} {:2.12} {:10}", value, q, total);
            }
        }
    }
    let (mean, stdev, max) = if !hist.is_empty() {
        (
            hist.mean() / scale,
            hist.stdev() / scale,
            hist.max() as f64 / scale,
        )
    } else {
        (0.0, 0.0, 0.0)
    };
    let _ = writeln!(
        out,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        mean, stdev
    );
    let _ = writeln!(
        out,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        max,
        hist.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        hist.buckets(),
        hist.distinct_values()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uniform() -> Histogram<u64> {
        let mut h = new_histogram();
        for v in 1..=1000u64 {
            h.record(v).unwrap();
        }
        h
    }

    #[test]
    fn percentiles_of_a_uniform_distribution() {
        let h = uniform();
        let p50 = h.value_at_quantile(0.50);
        let p99 = h.value_at_quantile(0.99);
        let p999 = h.value_at_quantile(0.999);
        // Three significant digits: at most 0.1% relative error.
        assert!((499..=501).contains(&p50), "p50 {p50}");
        assert!((989..=991).contains(&p99), "p99 {p99}");
        assert!((998..=1000).contains(&p999), "p99.9 {p999}");
        assert_eq!(h.max(), 1000);
        assert_eq!(h.min(), 1);
        assert_eq!(h.len(), 1000);
    }

    #[test]
    fn merged_halves_equal_the_whole() {
        let whole = uniform();
        let mut a = new_histogram();
        let mut b = new_histogram();
        for v in 1..=1000u64 {
            if v % 2 == 0 {
                a.record(v).unwrap()
            } else {
                b.record(v).unwrap()
            }
        }
        a.add(&b).unwrap();
        assert_eq!(a, whole);
        for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(a.value_at_quantile(q), whole.value_at_quantile(q));
        }
    }

    #[test]
    fn recorder_merges_per_second_series() {
        let mut a = Recorder::new();
        let mut b = Recorder::new();
        a.record(
            Duration::from_millis(100),
            Duration::from_millis(5),
            Outcome::Status(200),
        );
        b.record(
            Duration::from_millis(2500),
            Duration::from_millis(7),
            Outcome::Status(204),
        );
        b.record(
            Duration::from_millis(2600),
            Duration::from_millis(7),
            Outcome::Error,
        );
        b.record(
            Duration::from_millis(2700),
            Duration::from_secs(100),
            Outcome::Timeout,
        );
        a.merge(&b);
        assert_eq!(a.per_second.len(), 3);
        assert_eq!(a.per_second[1].len(), 0);
        assert_eq!(a.per_second[2].len(), 2);
        assert_eq!(a.all.len(), 3);
        assert_eq!(a.all.max(), a.all.highest_equivalent(HIGHEST_US));
        assert_eq!(a.counts.total(), 4);
        assert_eq!(a.counts.answered(), 2);
        assert_eq!(a.counts.errors, 1);
        assert_eq!(a.counts.timeouts, 1);
    }

    #[test]
    fn status_classes() {
        let mut c = StatusCounts::default();
        for s in [200, 204, 400, 404, 500, 503, 302] {
            c.count(Outcome::Status(s));
        }
        assert_eq!(
            (
                c.ok_200,
                c.no_bid_204,
                c.client_4xx,
                c.server_5xx,
                c.shed_503,
                c.other_status
            ),
            (1, 1, 2, 1, 1, 1)
        );
    }

    #[test]
    fn hgrm_has_the_classic_layout() {
        let text = hgrm(&uniform());
        let mut lines = text.lines();
        let header: Vec<_> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(
            header,
            ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"]
        );
        assert_eq!(lines.next(), Some(""));
        let first: Vec<_> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(first.len(), 4);
        assert_eq!(first[0], "0.001");
        let rows: Vec<_> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .skip(1)
            .collect();
        let last: Vec<_> = rows.last().unwrap().split_whitespace().collect();
        assert_eq!(last, ["1.000", "1.000000000000", "1000"]);
        assert!(text.contains("#[Max     =        1.000, Total count    =         1000]"));
    }
}
