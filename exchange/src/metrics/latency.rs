//! HDR latency histograms over sliding windows, for `/v1/stats/latency`.
//!
//! Recording must be cheap on the hot path: each series has a few shards,
//! each a mutex around its own histogram, and a thread always records into
//! the same shard, so locks are uncontended. Every [`ROTATE_EVERY`] a
//! background task (off the hot path) moves the shards' counts into a ring
//! of per-window histograms; a query merges the windows it needs. Timeouts
//! are recorded like answers, at the deadline, so tails are not flattered.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Width of one window in the ring.
pub const ROTATE_EVERY: Duration = Duration::from_secs(10);
/// Windows kept: five minutes' worth.
const WINDOWS: usize = 30;
/// Shards per series: enough that a handful of worker threads rarely share one.
const SHARDS: usize = 8;
/// Highest trackable value, in microseconds (60 s); larger values are clamped.
const MAX_MICROS: u64 = 60_000_000;
/// Two significant digits (1% precision) keep a histogram near 20 KB,
/// so a ring of five minutes per bidder stays small.
const SIGFIG: u8 = 2;

fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts; failure is a bug.
    Histogram::new_with_bounds(1, MAX_MICROS, SIGFIG).expect("valid histogram bounds")
}

/// The shard index of the current thread, assigned round-robin on first use.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    INDEX.with(|i| *i)
}

/// One latency series (a stage, or a bidder).
#[derive(Debug)]
pub struct Series {
    shards: Box<[Mutex<Histogram<u64>>]>,
    /// Closed windows, newest last. Only the rotation task and queries lock it.
    ring: Mutex<VecDeque<Histogram<u64>>>,
}

impl Default for Series {
    fn default() -> Self {
        Self::new()
    }
}

impl Series {
    /// An empty series.
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(new_histogram())).collect(),
            ring: Mutex::new(VecDeque::with_capacity(WINDOWS)),
        }
    }

    /// Records one duration (clamped to 1 µs ..= 60 s).
    pub fn record(&self, d: Duration) {
        let micros = (d.as_micros() as u64).clamp(1, MAX_MICROS);
        let mut h = lock(&self.shards[shard_index()]);
        // Cannot fail: the value is clamped into the trackable range.
        let _ = h.record(micros);
    }

    /// Closes the current window: moves the shards' counts into the ring.
    pub fn rotate(&self) {
        let mut window = new_histogram();
        for shard in self.shards.iter() {
            let mut h = lock(shard);
            // Same bounds on both sides: adding cannot fail.
            let _ = window.add(&*h);
            h.reset();
        }
        let mut ring = lock(&self.ring);
        if ring.len() == WINDOWS {
            ring.pop_front();
        }
        ring.push_back(window);
    }

    /// Everything recorded in the last `windows` closed windows plus the open one.
    pub fn merged(&self, windows: usize) -> Histogram<u64> {
        let mut out = new_histogram();
        for shard in self.shards.iter() {
            let _ = out.add(&*lock(shard));
        }
        let ring = lock(&self.ring);
        for h in ring.iter().rev().take(windows) {
            let _ = out.add(h);
        }
        out
    }

    /// Percentiles over about the last `span` (rounded to whole windows).
    pub fn summary(&self, span: Duration) -> Summary {
        let windows = (span.as_secs() / ROTATE_EVERY.as_secs()).saturating_sub(1) as usize;
        Summary::of(&self.merged(windows))
    }
}

/// A poisoned lock only means a panic elsewhere while recording; the counts
/// are still usable, so keep going rather than spreading the panic.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Percentiles of one series, in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    /// Values recorded.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// 99.99th percentile.
    pub p9999_ms: f64,
    /// Largest value.
    pub max_ms: f64,
}

impl Summary {
    /// Summarises a histogram of microseconds.
    pub fn of(h: &Histogram<u64>) -> Self {
        let ms = |micros: u64| micros as f64 / 1000.0;
        let q = |p: f64| {
            ms(if h.is_empty() {
                0
            } else {
                h.value_at_quantile(p)
            })
        };
        Self {
            count: h.len(),
            p50_ms: q(0.50),
            p90_ms: q(0.90),
            p99_ms: q(0.99),
            p999_ms: q(0.999),
            p9999_ms: q(0.9999),
            max_ms: ms(if h.is_empty() { 0 } else { h.max() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_uniform_distribution() {
        let s = Series::new();
        for micros in 1..=10_000u64 {
            s.record(Duration::from_micros(micros));
        }
        let sum = s.summary(Duration::from_secs(60));
        assert_eq!(sum.count, 10_000);
        // 2 significant digits: within 1% of the exact value.
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.01 + 0.001;
        assert!(close(sum.p50_ms, 5.0), "{sum:?}");
        assert!(close(sum.p90_ms, 9.0), "{sum:?}");
        assert!(close(sum.p99_ms, 9.9), "{sum:?}");
        assert!(close(sum.max_ms, 10.0), "{sum:?}");
    }

    #[test]
    fn recordings_from_many_threads_merge() {
        let s = std::sync::Arc::new(Series::new());
        let threads: Vec<_> = (0..6)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for i in 0..1000u64 {
                        s.record(Duration::from_micros(100 * t + i % 7 + 1));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(s.merged(WINDOWS).len(), 6000);
    }

    #[test]
    fn windows_slide() {
        let s = Series::new();
        s.record(Duration::from_millis(500));
        for _ in 0..6 {
            s.rotate();
        }
        s.record(Duration::from_millis(1));
        // The 500 ms value is 6 windows old: out of the last minute, in the last five.
        assert_eq!(s.summary(Duration::from_secs(60)).count, 1);
        let five = s.summary(Duration::from_secs(300));
        assert_eq!(five.count, 2);
        assert!(five.max_ms >= 495.0, "{five:?}");
        // Values beyond 60 s are clamped, not lost.
        s.record(Duration::from_secs(3600));
        assert_eq!(s.summary(Duration::from_secs(60)).count, 2);
    }
}
