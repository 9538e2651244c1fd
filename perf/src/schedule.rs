//! Arrival processes for the open-loop load: when each request is meant to leave.
//!
//! The schedule is a pure function of the phases and the seed, so it can be
//! tested without a clock and two runs with the same seed send at the same
//! offsets.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Exp};
use serde::{Deserialize, Serialize};

/// How inter-arrival gaps are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Process {
    /// Evenly spaced arrivals, exactly `1 / rate` apart.
    #[default]
    Constant,
    /// Exponentially distributed gaps with mean `1 / rate` (a Poisson process),
    /// which is what independent publishers produce in aggregate.
    Poisson,
}

impl std::str::FromStr for Process {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "constant" => Ok(Process::Constant),
            "poisson" => Ok(Process::Poisson),
            other => Err(format!(
                "unknown arrival process {other:?} (expected constant or poisson)"
            )),
        }
    }
}

/// One stretch of the run at a given rate; with `ramp_to` the rate moves
/// linearly from `rate` to `ramp_to` over the phase.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phase {
    /// Requests per second at the start of the phase.
    pub rate: f64,
    /// Length of the phase in seconds.
    pub duration_s: f64,
    /// Requests per second at the end of the phase (a linear ramp); absent means a flat rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp_to: Option<f64>,
}

impl Phase {
    /// A flat phase.
    pub fn flat(rate: f64, duration_s: f64) -> Phase {
        Phase {
            rate,
            duration_s,
            ramp_to: None,
        }
    }

    fn rate_at(&self, t: f64) -> f64 {
        match self.ramp_to {
            Some(end) if self.duration_s > 0.0 => {
                self.rate + (end - self.rate) * (t / self.duration_s)
            }
            _ => self.rate,
        }
    }

    /// Expected number of arrivals in this phase.
    pub fn expected_requests(&self) -> f64 {
        let end = self.ramp_to.unwrap_or(self.rate);
        (self.rate + end) / 2.0 * self.duration_s
    }
}

/// The whole arrival plan: phases run back to back.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// The phases, in order.
    pub phases: Vec<Phase>,
    /// Gap distribution.
    pub process: Process,
    /// Seed for Poisson gaps.
    pub seed: u64,
}

impl Schedule {
    /// Total planned run time.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(
            self.phases
                .iter()
                .map(|p| p.duration_s)
                .sum::<f64>()
                .max(0.0),
        )
    }

    /// Expected number of requests over the whole run.
    pub fn expected_requests(&self) -> u64 {
        self.phases
            .iter()
            .map(Phase::expected_requests)
            .sum::<f64>()
            .round() as u64
    }

    /// The intended send offsets from the start of the run, in order.
    pub fn offsets(&self) -> Offsets {
        Offsets {
            phases: self.phases.clone(),
            process: self.process,
            rng: SmallRng::seed_from_u64(self.seed),
            phase: 0,
            phase_start: 0.0,
            t: 0.0,
        }
    }
}

/// Iterator over intended send offsets (see [`Schedule::offsets`]).
#[derive(Debug, Clone)]
pub struct Offsets {
    phases: Vec<Phase>,
    process: Process,
    rng: SmallRng,
    phase: usize,
    phase_start: f64,
    // Seconds since the start of the run of the next candidate arrival.
    t: f64,
}

impl Iterator for Offsets {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        loop {
            let phase = *self.phases.get(self.phase)?;
            let local = self.t - self.phase_start;
            if local >= phase.duration_s {
                self.phase_start += phase.duration_s;
                self.phase += 1;
                // The next phase starts fresh at its own boundary so a slow
                // phase does not delay the first arrival of a fast one.
                self.t = self.t.max(self.phase_start);
                continue;
            }
            let rate = phase.rate_at(local);
            if rate <= 0.0 {
                // Nothing to send at this instant; step forward a millisecond.
                self.t += 0.001;
                continue;
            }
            let gap = match self.process {
                Process::Constant => 1.0 / rate,
                Process::Poisson => match Exp::new(rate) {
                    Ok(exp) => exp.sample(&mut self.rng),
                    Err(_) => 1.0 / rate,
                },
            };
            let at = self.t;
            self.t += gap;
            return Some(Duration::from_secs_f64(at));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_rate_is_evenly_spaced() {
        let s = Schedule {
            phases: vec![Phase::flat(100.0, 1.0)],
            process: Process::Constant,
            seed: 1,
        };
        let v: Vec<_> = s.offsets().collect();
        assert_eq!(v.len(), 100);
        assert_eq!(v[1] - v[0], Duration::from_millis(10));
        assert!(v.last().unwrap() < &Duration::from_secs(1));
    }

    #[test]
    fn poisson_mean_gap_is_one_over_rate() {
        let rate = 1000.0;
        let s = Schedule {
            phases: vec![Phase::flat(rate, 100.0)],
            process: Process::Poisson,
            seed: 7,
        };
        let v: Vec<f64> = s.offsets().map(|d| d.as_secs_f64()).collect();
        let gaps: Vec<f64> = v.windows(2).map(|w| w[1] - w[0]).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        assert!((mean - 1.0 / rate).abs() < 0.02 / rate, "mean gap {mean}");
        // Exponential gaps have a standard deviation equal to the mean.
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        assert!(
            (var.sqrt() - mean).abs() < 0.05 * mean,
            "stddev {}",
            var.sqrt()
        );
        assert!(
            (v.len() as f64 - 100_000.0).abs() < 2_000.0,
            "count {}",
            v.len()
        );
    }

    #[test]
    fn poisson_is_seeded() {
        let s = Schedule {
            phases: vec![Phase::flat(50.0, 2.0)],
            process: Process::Poisson,
            seed: 3,
        };
        let a: Vec<_> = s.offsets().collect();
        let b: Vec<_> = s.offsets().collect();
        assert_eq!(a, b);
    }

    #[test]
    fn phases_and_ramps() {
        let s = Schedule {
            phases: vec![
                Phase::flat(10.0, 1.0),
                Phase {
                    rate: 0.0,
                    duration_s: 2.0,
                    ramp_to: Some(100.0),
                },
            ],
            process: Process::Constant,
            seed: 0,
        };
        let v: Vec<_> = s.offsets().collect();
        let first = v.iter().filter(|d| d.as_secs_f64() < 1.0).count();
        assert_eq!(first, 10);
        // A ramp from 0 to 100 over 2 s carries about 100 arrivals, more of them late.
        let ramp = v.len() - first;
        assert!((80..=120).contains(&ramp), "ramp arrivals {ramp}");
        let late = v.iter().filter(|d| d.as_secs_f64() >= 2.0).count();
        assert!(late > ramp / 2);
        assert_eq!(s.expected_requests(), 110);
        assert_eq!(s.duration(), Duration::from_secs(3));
    }
}
