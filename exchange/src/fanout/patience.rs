//! The adaptive wait: from each bidder's own recent answer times, how long
//! an auction waits for it before the answer is unlikely to come in time.
//!
//! Every bidder keeps a histogram of its latencies (1 ms buckets, from the
//! fan-out's start) over the last one to two windows. An answer is counted
//! at its latency; a call that was still out when its auction stopped
//! waiting (a timeout) is *censored* at that time: all that is known is that
//! its answer would have come later.
//!
//! A bidder still out at time `t` is given up on when, of its recorded calls
//! that were still out at `t`, fewer than `1 − quantile` answered before
//! this auction's deadline. So the answers lost by not waiting are at most
//! `1 − quantile` of that bidder's calls, whatever the shape of its latency
//! (a log-normal tail, or "fast, else very late").
//!
//! Only auctions that waited for every bidder to the deadline record (the
//! *explore* share, `auction.adaptive_wait.explore`, and every auction while
//! a bidder has too few samples): a wait cut short would censor exactly the
//! answers that show whether cutting was right, and the estimate would drift
//! ever earlier.
//!
//! Hot path: one relaxed atomic increment per recorded call and, per
//! auction, one scan of at most [`BUCKETS`] buckets per bidder; no lock, no
//! allocation.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::config::AdaptiveWait;

/// Histogram buckets, 1 ms each; latencies past the last one are counted
/// in it (the adaptive wait then never ends before it).
pub const BUCKETS: usize = 256;

/// Fewest recorded calls still out at `t` that the decision at `t` needs:
/// below it there is too little evidence, and the auction waits on.
const MIN_OUT: u64 = 20;

/// One window's counts.
#[derive(Debug)]
struct Window {
    /// Which window ([`now_ms`](super::now_ms) / window length) the counts are of.
    number: AtomicU64,
    /// Answers by latency bucket.
    answered: [AtomicU32; BUCKETS],
    /// Calls still out when their auction stopped waiting, by that time.
    censored: [AtomicU32; BUCKETS],
}

impl Window {
    fn new() -> Self {
        Self {
            number: AtomicU64::new(u64::MAX),
            answered: std::array::from_fn(|_| AtomicU32::new(0)),
            censored: std::array::from_fn(|_| AtomicU32::new(0)),
        }
    }

    /// Starts window `n` here if this slot still holds an older one. Racing
    /// recorders may lose a count or two while it is zeroed: an estimate.
    fn enter(&self, n: u64) {
        let old = self.number.load(Ordering::Relaxed);
        if old != n
            && self
                .number
                .compare_exchange(old, n, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            for c in self.answered.iter().chain(&self.censored) {
                c.store(0, Ordering::Relaxed);
            }
        }
    }
}

/// One bidder's latency record for the adaptive wait.
#[derive(Debug)]
pub struct Patience {
    /// Two windows, used alternately: the current one and the one before.
    windows: [Window; 2],
}

impl Default for Patience {
    fn default() -> Self {
        Self {
            windows: [Window::new(), Window::new()],
        }
    }
}

/// Whether this auction belongs to the explore share: it waits for every
/// bidder to the deadline and records what it saw. Drawn per auction (not
/// per bidder), so the share of auctions that wait the whole time is
/// `explore`, however many bidders there are; from a per-thread generator,
/// so no counter is shared between cores.
pub fn explore(cfg: &AdaptiveWait) -> bool {
    let every = cfg.explore_every();
    every <= 1 || super::fast_rand() % every == 0
}

/// The bucket of a latency.
fn bucket(d: Duration) -> usize {
    usize::try_from(d.as_millis()).map_or(BUCKETS - 1, |ms| ms.min(BUCKETS - 1))
}

impl Patience {
    /// Records an answer that came `latency` after the fan-out started.
    pub fn answered(&self, cfg: &AdaptiveWait, now_ms: u64, latency: Duration) {
        let w = self.current(cfg, now_ms);
        w.answered[bucket(latency)].fetch_add(1, Ordering::Relaxed);
    }

    /// Records a call still out when its auction stopped waiting, `waited`
    /// after the fan-out started.
    pub fn censored(&self, cfg: &AdaptiveWait, now_ms: u64, waited: Duration) {
        let w = self.current(cfg, now_ms);
        w.censored[bucket(waited)].fetch_add(1, Ordering::Relaxed);
    }

    fn current(&self, cfg: &AdaptiveWait, now_ms: u64) -> &Window {
        let n = now_ms / cfg.window_ms.max(1);
        let w = &self.windows[(n % 2) as usize];
        w.enter(n);
        w
    }

    /// How long after the fan-out's start this bidder is worth waiting
    /// for, when the auction's fan-out may last `deadline`: `None` when it
    /// is worth the whole wait (too few samples, or no time at which an
    /// answer becomes unlikely).
    pub fn give_up_after(
        &self,
        cfg: &AdaptiveWait,
        now_ms: u64,
        deadline: Duration,
    ) -> Option<Duration> {
        let n = now_ms / cfg.window_ms.max(1);
        // The windows still in use: this one and the one before.
        let usable = |w: &Window| {
            let k = w.number.load(Ordering::Relaxed);
            k == n || k.wrapping_add(1) == n
        };
        let (a, b) = (&self.windows[0], &self.windows[1]);
        let (ua, ub) = (usable(a), usable(b));
        let count = |arr: fn(&Window) -> &[AtomicU32; BUCKETS], i: usize| -> u64 {
            let mut c = 0;
            if ua {
                c += u64::from(arr(a)[i].load(Ordering::Relaxed));
            }
            if ub {
                c += u64::from(arr(b)[i].load(Ordering::Relaxed));
            }
            c
        };
        let answered = |i| count(|w| &w.answered, i);
        let censored = |i| count(|w| &w.censored, i);
        let d = bucket(deadline);
        // Downward from the deadline: `out` = calls known to be still out
        // past bucket t (answered later, or censored later); `in_time` =
        // of those, the ones that answered by the deadline. The smallest t
        // where giving up holds is the earliest time to give up.
        let mut out = 0u64;
        let mut in_time = 0u64;
        for i in (d + 1)..BUCKETS {
            out += answered(i) + censored(i);
        }
        // `1 - quantile` as parts per million, so the test is integer.
        let allowed_ppm = ((1.0 - cfg.quantile) * 1e6).round() as u64;
        let mut earliest = None;
        for t in (0..d).rev() {
            let a = answered(t + 1);
            out += a + censored(t + 1);
            in_time += a;
            if out >= MIN_OUT && in_time * 1_000_000 <= allowed_ppm * out {
                earliest = Some(t);
            }
        }
        // `out` now holds every bucket but the first: with it, the total,
        // and too few samples decide nothing (one pass over the buckets).
        if out + answered(0) + censored(0) < u64::from(cfg.min_samples) {
            return None;
        }
        // Giving up during bucket t means once t + 1 ms have passed.
        earliest.map(|t| Duration::from_millis(t as u64 + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> AdaptiveWait {
        AdaptiveWait {
            min_samples: 100,
            ..AdaptiveWait::default()
        }
    }

    const NOW: u64 = 1_000_000;

    #[test]
    fn too_few_samples_wait_to_the_deadline() {
        let p = Patience::default();
        for _ in 0..50 {
            p.answered(&cfg(), NOW, Duration::from_millis(5));
        }
        assert_eq!(
            p.give_up_after(&cfg(), NOW, Duration::from_millis(90)),
            None
        );
    }

    #[test]
    fn fast_else_never_gives_up_just_after_the_fast_answers() {
        let p = Patience::default();
        let c = cfg();
        for i in 0..1_000u64 {
            if i % 5 == 0 {
                p.censored(&c, NOW, Duration::from_millis(90));
            } else {
                p.answered(&c, NOW, Duration::from_millis(8 + i % 4));
            }
        }
        // Answers at 8..=11 ms, then nothing but timeouts: after 11 ms a
        // call still out never answered in time.
        assert_eq!(
            p.give_up_after(&c, NOW, Duration::from_millis(90)),
            Some(Duration::from_millis(12))
        );
    }

    #[test]
    fn a_tail_that_still_answers_in_time_is_waited_for() {
        let p = Patience::default();
        let c = cfg();
        // Half at 10 ms, half at 60 ms: at 11 ms every call still out will
        // answer before a 90 ms deadline, so no giving up before 60 ms.
        for i in 0..1_000u64 {
            let ms = if i % 2 == 0 { 10 } else { 60 };
            p.answered(&c, NOW, Duration::from_millis(ms));
        }
        let after = p.give_up_after(&c, NOW, Duration::from_millis(90));
        // Past 60 ms no call was ever out: no evidence, so it waits on.
        assert_eq!(after, None);
        // With a deadline of 40 ms, the 60 ms half never makes it.
        assert_eq!(
            p.give_up_after(&c, NOW, Duration::from_millis(40)),
            Some(Duration::from_millis(11))
        );
    }

    #[test]
    fn the_quantile_bounds_what_is_given_up() {
        let c = AdaptiveWait {
            quantile: 0.9,
            ..cfg()
        };
        let p = Patience::default();
        // 100 still out past 10 ms: 95 time out, 5 answer at 50 ms. 5 % <
        // 10 %: give up at 11 ms. At quantile 0.99 it is 5 % > 1 %: wait.
        for _ in 0..900 {
            p.answered(&c, NOW, Duration::from_millis(10));
        }
        for _ in 0..95 {
            p.censored(&c, NOW, Duration::from_millis(90));
        }
        for _ in 0..5 {
            p.answered(&c, NOW, Duration::from_millis(50));
        }
        let d = Duration::from_millis(90);
        assert_eq!(p.give_up_after(&c, NOW, d), Some(Duration::from_millis(11)));
        let strict = AdaptiveWait {
            quantile: 0.99,
            ..cfg()
        };
        assert_eq!(
            p.give_up_after(&strict, NOW, d),
            Some(Duration::from_millis(51))
        );
    }

    #[test]
    fn old_windows_are_forgotten() {
        let c = cfg();
        let p = Patience::default();
        for _ in 0..1_000 {
            p.censored(&c, NOW, Duration::from_millis(90));
        }
        let d = Duration::from_millis(90);
        assert!(p.give_up_after(&c, NOW, d).is_some());
        // One window on, the old counts still serve; two on, they are gone.
        assert!(p.give_up_after(&c, NOW + c.window_ms, d).is_some());
        assert_eq!(p.give_up_after(&c, NOW + 2 * c.window_ms, d), None);
    }

    #[test]
    fn the_explore_share_is_about_as_configured() {
        let c = AdaptiveWait {
            explore: 0.01,
            ..cfg()
        };
        let n = (0..100_000).filter(|_| explore(&c)).count();
        // 1,000 expected; the bounds are more than 6 standard deviations.
        assert!((800..1_200).contains(&n), "{n} of 100000");
        let all = AdaptiveWait {
            explore: 1.0,
            ..cfg()
        };
        assert!((0..100).all(|_| explore(&all)));
    }
}
