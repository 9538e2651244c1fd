//! Configuration of a simulated bidder: pricing, bid rate, latency profile and fault injection.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// How a simulated bidder behaves; see [`crate::spawn`].
#[derive(Clone, Debug, PartialEq)]
pub struct BidderConfig {
    /// Seat name, written into `seatbid[].seat` and used as the prefix of bid ids.
    pub seat: String,
    /// Base bid price in currency units (CPM).
    pub price: f64,
    /// Relative price spread: `0.0` always bids exactly `price`; `0.2` draws uniformly within ±20% per imp.
    pub price_spread: f64,
    /// Probability (`0..=1`) of bidding on each imp; no bids at all answers HTTP 204.
    pub bid_rate: f64,
    /// Think time before answering.
    pub latency: Latency,
    /// Optional misbehaviour, for exercising the exchange's error handling.
    pub fault: Option<Fault>,
    /// Campaign id (`bid.cid`).
    pub cid: String,
    /// Creative id (`bid.crid`).
    pub crid: String,
    /// Advertiser domain (`bid.adomain = [adomain]`).
    pub adomain: String,
    /// Seed for deterministic randomness; `None` draws from the thread-local generator.
    pub seed: Option<u64>,
}

impl Default for BidderConfig {
    fn default() -> Self {
        Self {
            seat: "bidder".to_owned(),
            price: 1.0,
            price_spread: 0.0,
            bid_rate: 1.0,
            latency: Latency::None,
            fault: None,
            cid: "campaign-1".to_owned(),
            crid: "creative-1".to_owned(),
            adomain: "advertiser.example".to_owned(),
            seed: None,
        }
    }
}

/// A [`BidderConfig`] value that cannot be served.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    /// The seat name is empty.
    #[error("seat must not be empty")]
    EmptySeat,
    /// The price is negative or not finite.
    #[error("price must be a finite non-negative number, got {0}")]
    Price(f64),
    /// The spread is outside `0..=1`.
    #[error("price spread must be between 0 and 1, got {0}")]
    PriceSpread(f64),
    /// The bid rate is outside `0..=1`.
    #[error("bid rate must be between 0 and 1, got {0}")]
    BidRate(f64),
    /// The log-normal sigma is negative or not finite.
    #[error("lognormal sigma must be a finite non-negative number, got {0}")]
    Sigma(f64),
}

impl BidderConfig {
    /// Checks that every field is within its documented range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let unit = |v: f64| v.is_finite() && (0.0..=1.0).contains(&v);
        if self.seat.is_empty() {
            return Err(ConfigError::EmptySeat);
        }
        if !(self.price.is_finite() && self.price >= 0.0) {
            return Err(ConfigError::Price(self.price));
        }
        if !unit(self.price_spread) {
            return Err(ConfigError::PriceSpread(self.price_spread));
        }
        if !unit(self.bid_rate) {
            return Err(ConfigError::BidRate(self.bid_rate));
        }
        if let Latency::LogNormal { sigma, .. } = self.latency {
            if !(sigma.is_finite() && sigma >= 0.0) {
                return Err(ConfigError::Sigma(sigma));
            }
        }
        Ok(())
    }
}

/// Think-time profile applied before each bid response.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Latency {
    /// Answer as soon as possible.
    None,
    /// Always wait exactly this long.
    Fixed(Duration),
    /// Wait a duration drawn uniformly from `min..=max`.
    Uniform {
        /// Shortest wait.
        min: Duration,
        /// Longest wait.
        max: Duration,
    },
    /// Wait a log-normally distributed duration: a long tail, like real DSPs.
    LogNormal {
        /// Median wait (the distribution's `exp(mu)`).
        median: Duration,
        /// Standard deviation of the underlying normal distribution.
        sigma: f64,
    },
    /// Usually `fast`, but `late` with probability `p_late`: the
    /// "sometimes late" bidder (a GC pause, a cold cache, a far region).
    Bimodal {
        /// The usual wait.
        fast: Duration,
        /// The wait of a late answer.
        late: Duration,
        /// Share of answers that are late (0..=1).
        p_late: f64,
    },
}

/// Error parsing a [`Latency`] or [`Fault`] from its command-line form.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParseError {
    /// The latency string is not one of the accepted forms.
    #[error("invalid latency {0:?}: expected none, fixed:MS, uniform:MIN_MS:MAX_MS, lognormal:MEDIAN_MS:SIGMA or bimodal:FAST_MS:LATE_MS:P_LATE")]
    Latency(String),
    /// A number inside a latency string is not a finite non-negative number.
    #[error("invalid number {0:?} in latency: expected a finite non-negative number")]
    Number(String),
    /// The fault name is unknown.
    #[error("unknown fault {0:?}: expected one of hang, http500, malformed, wrong-impid, trickle, oversized")]
    Fault(String),
}

fn parse_non_negative(s: &str) -> Result<f64, ParseError> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(ParseError::Number(s.to_owned())),
    }
}

fn parse_ms(s: &str) -> Result<Duration, ParseError> {
    let ms = parse_non_negative(s)?;
    Duration::try_from_secs_f64(ms / 1000.0).map_err(|_| ParseError::Number(s.to_owned()))
}

fn fmt_ms(d: Duration) -> String {
    // Milliseconds with up to microsecond precision, without a trailing ".0" for whole values.
    let ms = d.as_secs_f64() * 1000.0;
    if ms.fract() == 0.0 {
        format!("{ms:.0}")
    } else {
        format!("{ms}")
    }
}

impl FromStr for Latency {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(':').collect();
        match parts.as_slice() {
            ["none"] => Ok(Latency::None),
            ["fixed", ms] => Ok(Latency::Fixed(parse_ms(ms)?)),
            ["uniform", min, max] => {
                let (min, max) = (parse_ms(min)?, parse_ms(max)?);
                if min > max {
                    return Err(ParseError::Latency(s.to_owned()));
                }
                Ok(Latency::Uniform { min, max })
            }
            ["lognormal", median, sigma] => Ok(Latency::LogNormal {
                median: parse_ms(median)?,
                sigma: parse_non_negative(sigma)?,
            }),
            ["bimodal", fast, late, p] => {
                let p_late = parse_non_negative(p)?;
                if p_late > 1.0 {
                    return Err(ParseError::Latency(s.to_owned()));
                }
                Ok(Latency::Bimodal {
                    fast: parse_ms(fast)?,
                    late: parse_ms(late)?,
                    p_late,
                })
            }
            _ => Err(ParseError::Latency(s.to_owned())),
        }
    }
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Latency::None => f.write_str("none"),
            Latency::Fixed(d) => write!(f, "fixed:{}", fmt_ms(*d)),
            Latency::Uniform { min, max } => write!(f, "uniform:{}:{}", fmt_ms(*min), fmt_ms(*max)),
            Latency::LogNormal { median, sigma } => {
                write!(f, "lognormal:{}:{sigma}", fmt_ms(*median))
            }
            Latency::Bimodal { fast, late, p_late } => {
                write!(f, "bimodal:{}:{}:{p_late}", fmt_ms(*fast), fmt_ms(*late))
            }
        }
    }
}

/// A deliberate misbehaviour of the bidder, applied to bid requests only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Never answer: the response future pends until the connection closes.
    Hang,
    /// Answer `500 Internal Server Error`.
    Http500,
    /// Answer `200 OK` with a body that is not JSON.
    Malformed,
    /// Bid on impression ids that are not in the request.
    WrongImpid,
    /// Send a valid response one byte at a time, pausing [`crate::TRICKLE_INTERVAL`] between bytes.
    Trickle,
    /// Send a valid-looking response of more than 10 MB (the `adm` is padded).
    Oversized,
}

impl Fault {
    /// Every fault, in command-line order.
    pub const ALL: [Fault; 6] = [
        Fault::Hang,
        Fault::Http500,
        Fault::Malformed,
        Fault::WrongImpid,
        Fault::Trickle,
        Fault::Oversized,
    ];

    /// The command-line name of this fault.
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Hang => "hang",
            Fault::Http500 => "http500",
            Fault::Malformed => "malformed",
            Fault::WrongImpid => "wrong-impid",
            Fault::Trickle => "trickle",
            Fault::Oversized => "oversized",
        }
    }
}

impl FromStr for Fault {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Fault::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| ParseError::Fault(s.to_owned()))
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_round_trips() {
        for s in [
            "none",
            "fixed:50",
            "uniform:10:20",
            "lognormal:30:0.5",
            "fixed:0.5",
            "bimodal:5:200:0.25",
        ] {
            let l: Latency = s.parse().unwrap();
            assert_eq!(l.to_string(), s);
        }
        assert_eq!(
            "fixed:50".parse::<Latency>().unwrap(),
            Latency::Fixed(Duration::from_millis(50))
        );
    }

    #[test]
    fn latency_rejects_garbage() {
        for s in [
            "",
            "fixed",
            "fixed:-1",
            "fixed:x",
            "uniform:20:10",
            "lognormal:1",
            "bimodal:5:200",
            "bimodal:5:200:1.5",
            "slow:1",
            "fixed:inf",
        ] {
            assert!(s.parse::<Latency>().is_err(), "{s} should not parse");
        }
    }

    #[test]
    fn validation() {
        assert_eq!(BidderConfig::default().validate(), Ok(()));
        let bad = BidderConfig {
            bid_rate: 1.5,
            ..BidderConfig::default()
        };
        assert_eq!(bad.validate(), Err(ConfigError::BidRate(1.5)));
        let bad = BidderConfig {
            price: f64::NAN,
            ..BidderConfig::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn faults_round_trip() {
        for f in Fault::ALL {
            assert_eq!(f.to_string().parse::<Fault>().unwrap(), f);
        }
        assert!("nope".parse::<Fault>().is_err());
    }
}
