//! Scenario files (`perf/scenarios/*.toml`): the traffic, the request mix, the
//! simulated bidders of the local setup, and the goal the run is judged by.
//! Parsed with `deny_unknown_fields`; validation errors name the key.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use serde::Deserialize;

use crate::load::{HttpVersion, LoadConfig};
use crate::requests::{BodyPool, RequestMix};
use crate::schedule::{Phase, Process, Schedule};

/// A whole scenario file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name, used in output directory names.
    pub name: String,
    /// What the scenario exercises.
    pub description: String,
    /// The stated goal, in words (e.g. "p99 <= tmax at 1,000 auctions/s").
    pub goal: String,
    /// Machine-checkable part of the goal: overall p99 at most this many ms.
    #[serde(default)]
    pub goal_p99_ms: Option<f64>,
    /// Arrival process and client settings.
    pub load: LoadSection,
    /// What the requests look like.
    #[serde(default)]
    pub requests: RequestsSection,
    /// Exchange settings for the local setup.
    #[serde(default)]
    pub exchange: ExchangeSection,
    /// Simulated bidders for the local setup (ignored by `perf run`).
    #[serde(default)]
    pub bidders: Vec<BidderSection>,
}

/// `[load]`: when requests leave and how.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSection {
    /// Requests per second (with `duration_s`; or use `phases`).
    #[serde(default)]
    pub rate: Option<f64>,
    /// Run length in seconds (with `rate`).
    #[serde(default)]
    pub duration_s: Option<f64>,
    /// Steps and ramps, run back to back, instead of `rate`/`duration_s`.
    #[serde(default)]
    pub phases: Vec<Phase>,
    /// `constant` or `poisson`.
    #[serde(default)]
    pub process: Process,
    /// `http2` (h2c prior knowledge) or `http1`.
    #[serde(default)]
    pub protocol: HttpVersion,
    /// HTTP/2 connections (HTTP/1.1 opens as many as concurrency needs).
    #[serde(default = "default_connections")]
    pub connections: usize,
    /// Per-request client timeout in ms.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_connections() -> usize {
    4
}

fn default_timeout_ms() -> u64 {
    1000
}

/// `[requests]`: the generated mix, or a replay directory.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RequestsSection {
    /// Seed for requests and Poisson arrivals.
    pub seed: u64,
    /// `[min, max]` imps per request.
    pub imps: [u32; 2],
    /// Relative weights of media types.
    pub media: MediaSection,
    /// Share of publishers that are apps.
    pub app_share: f64,
    /// tmax values (ms) drawn per request.
    pub tmax_ms: Vec<u64>,
    /// Number of distinct publishers.
    pub publishers: u32,
    /// `[min, max]` bid floor, USD CPM.
    pub bidfloor: [f64; 2],
    /// Distinct pre-encoded bodies.
    pub pool: usize,
    /// Send the `*.json` files of this directory instead of generated requests
    /// (relative to the working directory, else to the scenario file).
    pub replay_dir: Option<PathBuf>,
}

impl Default for RequestsSection {
    fn default() -> Self {
        let m = RequestMix::default();
        RequestsSection {
            seed: m.seed,
            imps: [m.imps_min, m.imps_max],
            media: MediaSection {
                banner: m.banner,
                video: m.video,
                native: m.native,
            },
            app_share: m.app_share,
            tmax_ms: m.tmax_ms,
            publishers: m.publishers,
            bidfloor: [m.bidfloor.0, m.bidfloor.1],
            pool: m.pool,
            replay_dir: None,
        }
    }
}

/// `[requests.media]`: relative weights of imp media types.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaSection {
    /// Banner weight.
    #[serde(default)]
    pub banner: f64,
    /// Video weight.
    #[serde(default)]
    pub video: f64,
    /// Native weight.
    #[serde(default)]
    pub native: f64,
}

/// `[exchange]`: how the local setup runs the exchange.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExchangeSection {
    /// Exchange worker threads (its own runtime).
    pub workers: usize,
    /// Optional exchange TOML to start from; `listen` and `bidders` are replaced.
    pub config: Option<PathBuf>,
    /// Path of the auction endpoint.
    pub path: String,
    /// Without `config`: run the auction-event pipeline as a default
    /// `exchange serve` does (in-process Kafka mock cluster, spool, SQLite
    /// ledger, budgets) and report the ledger's debits. `false` measures the
    /// auction path alone, as the saturation benchmark does.
    pub events: bool,
    /// `auction.adaptive_wait.enabled` of the exchange (default on, as the
    /// exchange's own default); `perf local --adaptive-wait` overrides it.
    pub adaptive_wait: bool,
}

impl Default for ExchangeSection {
    fn default() -> Self {
        ExchangeSection {
            workers: 1,
            config: None,
            path: "/openrtb2/auction".to_owned(),
            events: true,
            adaptive_wait: true,
        }
    }
}

/// `[[bidders]]`: one simulated bidder (a seat) of the local setup.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BidderSection {
    /// Seat name, unique.
    pub name: String,
    /// Mean bid price, USD CPM.
    #[serde(default = "default_price")]
    pub price: f64,
    /// Prices are drawn within `price ± price_spread`.
    #[serde(default)]
    pub price_spread: f64,
    /// Share of imps bid on (0..=1).
    #[serde(default = "default_bid_rate")]
    pub bid_rate: f64,
    /// `none`, `fixed:MS`, `uniform:MIN:MAX`, `lognormal:MEDIAN_MS:SIGMA` or
    /// `bimodal:FAST_MS:LATE_MS:P_LATE`.
    #[serde(default = "default_latency")]
    pub latency: String,
    /// `hang`, `http500`, `malformed`, `wrong-impid`, `trickle` or `oversized`.
    #[serde(default)]
    pub fault: Option<String>,
    /// Instances (endpoints) of this bidder.
    #[serde(default = "default_instances")]
    pub instances: usize,
    /// The exchange's `tmax_deduction_ms` for this bidder.
    #[serde(default)]
    pub tmax_deduction_ms: u32,
    /// The exchange's `secondary` for this bidder.
    #[serde(default)]
    pub secondary: bool,
}

fn default_price() -> f64 {
    1.0
}

fn default_bid_rate() -> f64 {
    1.0
}

fn default_latency() -> String {
    "none".to_owned()
}

fn default_instances() -> usize {
    1
}

/// Command-line replacements for scenario values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// Replace the arrival plan with this flat rate.
    pub rate: Option<f64>,
    /// Replace the run length.
    pub duration_s: Option<f64>,
    /// Replace the protocol.
    pub protocol: Option<HttpVersion>,
    /// Replace the HTTP/2 connection count.
    pub connections: Option<usize>,
    /// Replace `exchange.adaptive_wait`.
    pub adaptive_wait: Option<bool>,
}

impl Scenario {
    /// Reads, parses and validates a scenario file.
    pub fn load(path: &Path) -> anyhow::Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading scenario {}", path.display()))?;
        let mut s =
            Scenario::parse(&text).with_context(|| format!("scenario {}", path.display()))?;
        if let Some(dir) = &s.requests.replay_dir {
            if dir.is_relative() && !dir.exists() {
                if let Some(base) = path.parent() {
                    s.requests.replay_dir = Some(base.join(dir));
                }
            }
        }
        Ok(s)
    }

    /// Parses and validates scenario TOML.
    pub fn parse(text: &str) -> anyhow::Result<Scenario> {
        let s: Scenario =
            toml::from_str(text).map_err(|e| anyhow!("{}", e.to_string().trim_end()))?;
        s.validate()?;
        Ok(s)
    }

    /// Checks values; the error names the key, e.g. `bidders[2].latency: ...`.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.name.trim().is_empty() {
            bail!("name: must not be empty");
        }
        if let Some(g) = self.goal_p99_ms {
            if !(g.is_finite() && g > 0.0) {
                bail!("goal_p99_ms: must be a positive number, got {g}");
            }
        }
        let l = &self.load;
        match (l.rate, l.duration_s, l.phases.is_empty()) {
            (Some(_), Some(_), true) | (None, None, false) => {}
            (_, _, false) => {
                bail!("load.phases: give either phases or rate and duration_s, not both")
            }
            (None, _, true) => bail!("load.rate: missing (or give load.phases)"),
            (_, None, true) => bail!("load.duration_s: missing (or give load.phases)"),
        }
        if let Some(r) = l.rate {
            positive("load.rate", r)?;
        }
        if let Some(d) = l.duration_s {
            positive("load.duration_s", d)?;
        }
        for (i, p) in l.phases.iter().enumerate() {
            positive(&format!("load.phases[{i}].duration_s"), p.duration_s)?;
            non_negative(&format!("load.phases[{i}].rate"), p.rate)?;
            if let Some(end) = p.ramp_to {
                non_negative(&format!("load.phases[{i}].ramp_to"), end)?;
            }
        }
        if l.connections == 0 {
            bail!("load.connections: must be at least 1");
        }
        if l.timeout_ms == 0 {
            bail!("load.timeout_ms: must be at least 1");
        }
        let r = &self.requests;
        if r.imps[0] == 0 || r.imps[0] > r.imps[1] {
            bail!("requests.imps: need 1 <= min <= max, got {:?}", r.imps);
        }
        let m = r.media;
        if m.banner < 0.0 || m.video < 0.0 || m.native < 0.0 || m.banner + m.video + m.native <= 0.0
        {
            bail!("requests.media: weights must be >= 0 and not all zero");
        }
        if !(0.0..=1.0).contains(&r.app_share) {
            bail!(
                "requests.app_share: must be within 0..=1, got {}",
                r.app_share
            );
        }
        if r.tmax_ms.is_empty() || r.tmax_ms.contains(&0) {
            bail!("requests.tmax_ms: needs at least one value, all above 0");
        }
        if r.publishers == 0 {
            bail!("requests.publishers: must be at least 1");
        }
        if r.bidfloor[0] < 0.0 || r.bidfloor[0] > r.bidfloor[1] {
            bail!(
                "requests.bidfloor: need 0 <= min <= max, got {:?}",
                r.bidfloor
            );
        }
        if r.pool == 0 {
            bail!("requests.pool: must be at least 1");
        }
        if self.exchange.workers == 0 {
            bail!("exchange.workers: must be at least 1");
        }
        if !self.exchange.path.starts_with('/') {
            bail!(
                "exchange.path: must start with /, got {:?}",
                self.exchange.path
            );
        }
        let mut names = std::collections::HashSet::new();
        for (i, b) in self.bidders.iter().enumerate() {
            let key = format!("bidders[{i}]");
            if b.name.trim().is_empty() {
                bail!("{key}.name: must not be empty");
            }
            if !names.insert(b.name.as_str()) {
                bail!("{key}.name: duplicate bidder name {:?}", b.name);
            }
            non_negative(&format!("{key}.price"), b.price)?;
            non_negative(&format!("{key}.price_spread"), b.price_spread)?;
            if !(0.0..=1.0).contains(&b.bid_rate) {
                bail!("{key}.bid_rate: must be within 0..=1, got {}", b.bid_rate);
            }
            b.parsed_latency()
                .map_err(|e| anyhow!("{key}.latency: {e}"))?;
            b.parsed_fault().map_err(|e| anyhow!("{key}.fault: {e}"))?;
            if b.instances == 0 {
                bail!("{key}.instances: must be at least 1");
            }
        }
        Ok(())
    }

    /// Applies command-line overrides and validates the result.
    pub fn apply(&mut self, o: &Overrides) -> anyhow::Result<()> {
        if o.rate.is_some() || o.duration_s.is_some() {
            let rate = o
                .rate
                .or(self.load.rate)
                .unwrap_or_else(|| self.load.phases.first().map_or(0.0, |p| p.rate));
            let duration = o
                .duration_s
                .or(self.load.duration_s)
                .unwrap_or_else(|| self.schedule().duration().as_secs_f64());
            self.load.phases.clear();
            self.load.rate = Some(rate);
            self.load.duration_s = Some(duration);
        }
        if let Some(p) = o.protocol {
            self.load.protocol = p;
        }
        if let Some(c) = o.connections {
            self.load.connections = c;
        }
        if let Some(a) = o.adaptive_wait {
            self.exchange.adaptive_wait = a;
        }
        self.validate()
    }

    /// The arrival plan.
    pub fn schedule(&self) -> Schedule {
        let phases = if self.load.phases.is_empty() {
            vec![Phase::flat(
                self.load.rate.unwrap_or(0.0),
                self.load.duration_s.unwrap_or(0.0),
            )]
        } else {
            self.load.phases.clone()
        };
        Schedule {
            phases,
            process: self.load.process,
            seed: self.requests.seed,
        }
    }

    /// The request mix.
    pub fn mix(&self) -> RequestMix {
        let r = &self.requests;
        RequestMix {
            seed: r.seed,
            imps_min: r.imps[0],
            imps_max: r.imps[1],
            banner: r.media.banner,
            video: r.media.video,
            native: r.media.native,
            app_share: r.app_share,
            tmax_ms: r.tmax_ms.clone(),
            publishers: r.publishers,
            bidfloor: (r.bidfloor[0], r.bidfloor[1]),
            pool: r.pool,
        }
    }

    /// Builds the body pool (replay or generated).
    pub fn body_pool(&self) -> anyhow::Result<BodyPool> {
        match &self.requests.replay_dir {
            Some(dir) => BodyPool::replay(dir),
            None => BodyPool::generate(&self.mix()),
        }
    }

    /// Load settings against `target`.
    pub fn load_config(&self, target: String) -> LoadConfig {
        LoadConfig {
            target,
            protocol: self.load.protocol,
            connections: self.load.connections,
            timeout: Duration::from_millis(self.load.timeout_ms),
            schedule: self.schedule(),
        }
    }
}

impl BidderSection {
    /// The latency profile.
    pub fn parsed_latency(&self) -> anyhow::Result<rtb_bidder::Latency> {
        rtb_bidder::Latency::from_str(&self.latency).map_err(|e| anyhow!("{e}"))
    }

    /// The fault, if any.
    pub fn parsed_fault(&self) -> anyhow::Result<Option<rtb_bidder::Fault>> {
        self.fault
            .as_deref()
            .map(rtb_bidder::Fault::from_str)
            .transpose()
            .map_err(|e| anyhow!("{e}"))
    }
}

fn positive(key: &str, v: f64) -> anyhow::Result<()> {
    if !(v.is_finite() && v > 0.0) {
        bail!("{key}: must be a positive number, got {v}");
    }
    Ok(())
}

fn non_negative(key: &str, v: f64) -> anyhow::Result<()> {
    if !(v.is_finite() && v >= 0.0) {
        bail!("{key}: must be a non-negative number, got {v}");
    }
    Ok(())
}
