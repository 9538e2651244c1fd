//! The bidder's random decisions for one request: think time, which imps to bid on, and prices.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};
use rand_distr::{Distribution, LogNormal};

use crate::config::{BidderConfig, Latency};
use crate::openrtb::{BidRequest, PlannedBid};

/// Longest think time ever drawn, so a wild log-normal tail cannot park a request for hours.
pub(crate) const MAX_LATENCY: Duration = Duration::from_secs(60);

/// Smallest price ever bid.
const MIN_PRICE: f64 = 0.000_001;

/// Source of randomness.
enum Dice {
    // A Mutex around one generator: a seeded bidder must draw one reproducible sequence, so all
    // requests share it; each request takes the lock once, for a few draws, never across an await.
    Seeded(Mutex<SmallRng>),
    /// The thread-local generator: no shared state, no contention.
    Thread,
}

impl Dice {
    fn roll<R>(&self, f: impl FnOnce(&mut dyn RngCore) -> R) -> R {
        match self {
            Dice::Seeded(rng) => {
                // A poisoned generator is still a generator.
                let mut guard = rng.lock().unwrap_or_else(|e| e.into_inner());
                f(&mut *guard)
            }
            Dice::Thread => f(&mut rand::thread_rng()),
        }
    }
}

/// What the bidder will do with one request.
#[derive(Debug, PartialEq)]
pub(crate) struct Plan {
    /// Think time before answering.
    pub(crate) delay: Duration,
    /// Bids to make, in imp order; empty means no bid.
    pub(crate) bids: Vec<PlannedBid>,
}

/// Draws plans from a configuration.
pub(crate) struct Planner {
    dice: Dice,
    // Atomic: bid ids must be unique across concurrent requests without a lock.
    next_serial: AtomicU64,
    /// A think time set while running ([`Planner::set_latency`]), in place
    /// of the configured one.
    latency: Mutex<Option<Latency>>,
}

impl Planner {
    pub(crate) fn new(seed: Option<u64>) -> Self {
        let dice = match seed {
            Some(s) => Dice::Seeded(Mutex::new(SmallRng::seed_from_u64(s))),
            None => Dice::Thread,
        };
        Self {
            dice,
            next_serial: AtomicU64::new(1),
            latency: Mutex::new(None),
        }
    }

    /// Replaces the configured think time from the next request on: a
    /// bidder whose latency changes while it runs.
    pub(crate) fn set_latency(&self, latency: Latency) {
        *self.latency.lock().unwrap_or_else(|p| p.into_inner()) = Some(latency);
    }

    /// Decides think time, imps to bid on and prices, in one go so a seeded bidder stays
    /// reproducible request by request.
    pub(crate) fn plan(&self, config: &BidderConfig, req: &BidRequest) -> Plan {
        let latency = self
            .latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or(config.latency);
        let (delay, chosen) = self.dice.roll(|rng| {
            let delay = sample_latency(&latency, rng);
            let mut chosen = Vec::with_capacity(req.imp.len());
            for i in 0..req.imp.len() {
                // gen::<f64>() is in [0, 1): a rate of 1 always bids, 0 never does.
                if rng.gen::<f64>() < config.bid_rate {
                    chosen.push((i, sample_price(config, rng)));
                }
            }
            (delay, chosen)
        });
        let bids = chosen
            .into_iter()
            .map(|(imp, price)| PlannedBid {
                imp,
                price,
                serial: self.next_serial.fetch_add(1, Ordering::Relaxed),
            })
            .collect();
        Plan { delay, bids }
    }
}

fn sample_price(config: &BidderConfig, rng: &mut dyn RngCore) -> f64 {
    let spread = config.price_spread.abs();
    let factor = if spread > 0.0 && spread.is_finite() {
        rng.gen_range(1.0 - spread..=1.0 + spread)
    } else {
        1.0
    };
    round_price(config.price * factor)
}

/// Rounds to 6 decimals (micro-units) and enforces the minimum price.
pub(crate) fn round_price(price: f64) -> f64 {
    let rounded = (price * 1e6).round() / 1e6;
    if rounded.is_finite() {
        rounded.max(MIN_PRICE)
    } else {
        MIN_PRICE
    }
}

fn sample_latency(latency: &Latency, rng: &mut dyn RngCore) -> Duration {
    let d = match *latency {
        Latency::None => Duration::ZERO,
        Latency::Fixed(d) => d,
        Latency::Uniform { min, max } if min < max => rng.gen_range(min..=max),
        Latency::Uniform { min, .. } => min,
        Latency::LogNormal { median, sigma } => {
            match LogNormal::new(median.as_secs_f64().ln(), sigma) {
                Ok(dist) => Duration::try_from_secs_f64(dist.sample(rng)).unwrap_or(MAX_LATENCY),
                // Invalid sigma (negative or not finite): fall back to the median.
                Err(_) => median,
            }
        }
        Latency::Bimodal { fast, late, p_late } => {
            if rng.gen_bool(p_late.clamp(0.0, 1.0)) {
                late
            } else {
                fast
            }
        }
    };
    d.min(MAX_LATENCY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(n: usize) -> BidRequest {
        let imps: Vec<String> = (0..n).map(|i| format!(r#"{{"id":"{i}"}}"#)).collect();
        serde_json::from_str(&format!(r#"{{"id":"r","imp":[{}]}}"#, imps.join(","))).unwrap()
    }

    #[test]
    fn rounding_and_minimum() {
        assert_eq!(round_price(1.234_567_89), 1.234_568);
        assert_eq!(round_price(0.0), MIN_PRICE);
        assert_eq!(round_price(-3.0), MIN_PRICE);
        assert_eq!(round_price(f64::NAN), MIN_PRICE);
    }

    #[test]
    fn spread_stays_in_range_and_seed_reproduces() {
        let config = BidderConfig {
            price: 2.0,
            price_spread: 0.2,
            latency: Latency::LogNormal {
                median: Duration::from_millis(10),
                sigma: 0.5,
            },
            ..BidderConfig::default()
        };
        let a = Planner::new(Some(7)).plan(&config, &req(50));
        let b = Planner::new(Some(7)).plan(&config, &req(50));
        assert_eq!(a, b);
        assert_eq!(a.bids.len(), 50);
        assert!(a.bids.iter().all(|b| (1.6..=2.4).contains(&b.price)));
        assert!(a.bids.windows(2).any(|w| w[0].price != w[1].price));
    }

    #[test]
    fn bid_rate_and_latency_bounds() {
        let never = BidderConfig {
            bid_rate: 0.0,
            ..BidderConfig::default()
        };
        assert!(Planner::new(None).plan(&never, &req(10)).bids.is_empty());
        let uniform = BidderConfig {
            latency: Latency::Uniform {
                min: Duration::from_millis(5),
                max: Duration::from_millis(9),
            },
            ..BidderConfig::default()
        };
        let p = Planner::new(None).plan(&uniform, &req(1));
        assert!((Duration::from_millis(5)..=Duration::from_millis(9)).contains(&p.delay));
    }
}
