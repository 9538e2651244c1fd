//! The exchange's configuration: a typed TOML file, validated on load.
//!
//! Every key is known (`deny_unknown_fields`), so a typo is an error naming the
//! key rather than a silently ignored setting. [`Config::validate`] checks the
//! relations between keys (URLs, schemes, time budgets) and names the key that
//! is wrong. A bad config makes `exchange serve` exit with code 64 (`EX_USAGE`)
//! before any port is bound.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

mod bidder;
mod registry;

pub use bidder::{BidderEntry, CircuitConfig, Protocol, DEFAULT_MAX_CONCURRENCY};
pub use registry::{is_private, Cidr, EndpointPolicy, Refusal, RegistryConfig};

/// Exit code for a bad configuration (`EX_USAGE` from sysexits.h).
pub const EXIT_CONFIG: i32 = 64;

/// Environment variable that overrides `listen` (handy in containers).
pub const ENV_LISTEN: &str = "EXCHANGE_LISTEN";

/// Environment variable that overrides `admin_token`: secrets come from the
/// environment in most deployments, so it wins over the file.
pub const ENV_ADMIN_TOKEN: &str = "EXCHANGE_ADMIN_TOKEN";

/// Environment variable that overrides `database_url`.
pub const ENV_DATABASE_URL: &str = "DATABASE_URL";

/// Environment variable that overrides `ledger.database_url` (it carries
/// credentials, so deployments set it from a Secret, not the config file).
pub const ENV_LEDGER_DATABASE_URL: &str = "LEDGER_DATABASE_URL";

/// SQLite file used when the admin API is on and no database is configured.
pub const DEFAULT_SQLITE_PATH: &str = "exchange.db";

pub use rtb_ledger::config::ConfigError;

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the publisher-facing HTTP server binds (HTTP/1.1 and h2c on one port).
    pub listen: SocketAddr,
    /// Publisher-facing server limits.
    pub server: ServerConfig,
    /// Deadline and auction settings.
    pub auction: AuctionConfig,
    /// Measurement settings.
    pub metrics: MetricsConfig,
    /// The bidders requests are fanned out to. With a registry database they
    /// only seed it, on its first start (see ARCHITECTURE.md).
    pub bidders: Vec<BidderEntry>,
    /// Address of the admin API (bidder registry); no admin API when absent.
    pub admin_listen: Option<SocketAddr>,
    /// Address of the operational listener (`/metrics`, `/v1/stats/latency`,
    /// `/healthz`, `/readyz`). When set, `/metrics` and `/v1/stats/latency`
    /// are served only there, not on the publisher port `listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// Bearer token every admin call must carry; required with `admin_listen`.
    /// `EXCHANGE_ADMIN_TOKEN` overrides it.
    pub admin_token: Option<String>,
    /// Registry database, `postgres://…` or `sqlite:…`; `DATABASE_URL`
    /// overrides it. Absent: the SQLite file `sqlite_path`.
    pub database_url: Option<String>,
    /// SQLite file of the registry when `database_url` is absent. With neither
    /// key and no `admin_listen`, there is no registry database and the
    /// config file's bidders are used as they are; with `admin_listen` it
    /// defaults to `exchange.db`.
    pub sqlite_path: Option<PathBuf>,
    /// Registry polling and endpoint allow-list.
    pub registry: RegistryConfig,
    /// Auction-result events: Kafka, the spool (see `events`).
    pub kafka: rtb_ledger::config::KafkaConfig,
    /// The ledger consuming those events (see `ledger`).
    pub ledger: rtb_ledger::config::LedgerConfig,
    /// Budget leases (see `budget`).
    pub budget: crate::budget::BudgetConfig,
}

/// Measurement settings.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Upper bounds (milliseconds) of the Prometheus histogram buckets for
    /// stage and bidder latencies; fine below 1 ms for the exchange's stages.
    pub buckets_ms: Vec<f64>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            buckets_ms: crate::metrics::DEFAULT_BUCKETS_MS.to_vec(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            server: ServerConfig::default(),
            auction: AuctionConfig::default(),
            metrics: MetricsConfig::default(),
            bidders: Vec::new(),
            admin_listen: None,
            metrics_listen: None,
            admin_token: None,
            database_url: None,
            sqlite_path: None,
            registry: RegistryConfig::default(),
            kafka: Default::default(),
            ledger: Default::default(),
            budget: Default::default(),
        }
    }
}

/// Limits of the publisher-facing server.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Auctions allowed in flight at once; beyond it requests are shed with 503
    /// at once. Why: queueing past a deadline only produces answers nobody can use.
    pub max_in_flight: usize,
    /// Largest request body accepted, after gzip decompression too (413 beyond).
    pub max_body_bytes: usize,
    /// How long a graceful shutdown waits for in-flight requests (SIGTERM).
    pub drain_timeout_ms: u64,
    /// Shed new auctions (503) while the runtime's smoothed scheduling lag is
    /// above this: a CPU-starved exchange would otherwise accept auctions it
    /// can only answer after their deadline. 0 disables it.
    pub max_scheduling_lag_ms: u64,
    /// The whole request body must arrive within this long of the request's
    /// headers, or the request ends with 408 and frees its auction slot at
    /// once. It counts against the auction's deadline (which runs from the
    /// headers' arrival), and is capped by the largest deadline
    /// (`auction.max_tmax_ms`): a body slower than the deadline cannot be
    /// auctioned in time anyway.
    pub body_timeout_ms: u64,
    /// A new connection must deliver its first complete request within this
    /// long, or it is closed: sockets that never speak hold nothing.
    pub first_request_timeout_ms: u64,
    /// HTTP/1.1: a request's headers must arrive within this long; this also
    /// bounds how long an idle keep-alive connection waits for its next request.
    pub header_read_timeout_ms: u64,
    /// A connection with no request in flight and none started for this long
    /// is closed (HTTP/2: GOAWAY, then close).
    pub idle_timeout_ms: u64,
    /// HTTP/2 keep-alive ping interval; a peer that does not answer a ping
    /// within `h2_keep_alive_timeout_ms` is disconnected. 0 disables pings.
    pub h2_keep_alive_interval_ms: u64,
    /// See `h2_keep_alive_interval_ms`.
    pub h2_keep_alive_timeout_ms: u64,
    /// Concurrent streams one HTTP/2 connection may open; more are refused
    /// by the protocol (REFUSED_STREAM), so one client cannot take every slot.
    pub max_concurrent_streams: u32,
    /// Open publisher connections at once; a connection beyond it is closed
    /// as soon as it is accepted.
    pub max_connections: usize,
    /// Largest request head: HTTP/1.1 headers (431 beyond) and the HTTP/2
    /// header list (the stream is refused beyond).
    pub max_header_bytes: usize,
    /// Run admitted auctions (decode, fan-out, auction, events) on a runtime
    /// of their own, apart from the connections. Why: past saturation the
    /// connection runtime's run queue fills with requests being read and
    /// refused; an auction woken by its fan-out timer would wait behind
    /// them and answer after its deadline. On its own runtime only admitted
    /// auctions (bounded by the admission limit) queue. false runs them on
    /// the connection runtime.
    pub auction_runtime: bool,
    /// Worker threads of the auction runtime; 0 = one per CPU core.
    pub auction_threads: usize,
    /// Pace refusals past saturation: at most `max_refusals_per_sec` 503s a
    /// second across every connection; a connection that was refused is not
    /// read again until its turn (writes go on). Why: a closed-loop client
    /// resends as soon as it is refused, and unpaced refusals take the CPU
    /// that admitted auctions need to be answered by their deadline.
    pub pace_refusals: bool,
    /// See `pace_refusals`; 0 = 4,000 per CPU core.
    pub max_refusals_per_sec: u64,
    /// Cut the admission limit when an admitted auction waited longer than
    /// this for a worker of the auction runtime (checked per 50 ms window:
    /// one cut per window with such a wait, and no growth until a window
    /// without one). Why: an auction that queues for a worker also wakes
    /// late from its fan-out timer, so the queue is the earliest sign that
    /// the limit lets in more than the CPU finishes by the deadline; late
    /// answers come only after the harm. 0 (the default) disables it; see
    /// perf/RESULTS.md for what it costs and gains.
    pub max_queue_delay_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_in_flight: 4096,
            max_body_bytes: 256 * 1024,
            drain_timeout_ms: 5_000,
            max_scheduling_lag_ms: 20,
            // A publisher's request is a few kilobytes sent at once; 100 ms
            // covers a retransmission on a slow link and is well under a
            // typical tmax, so a trickling body cannot hold a slot for long.
            body_timeout_ms: 100,
            // Generous for a TLS-terminating proxy's cold start, short enough
            // that idle sockets cannot pile up.
            first_request_timeout_ms: 3_000,
            header_read_timeout_ms: 5_000,
            idle_timeout_ms: 60_000,
            h2_keep_alive_interval_ms: 20_000,
            h2_keep_alive_timeout_ms: 10_000,
            max_concurrent_streams: 256,
            max_connections: 10_000,
            max_header_bytes: 16 * 1024,
            auction_runtime: true,
            auction_threads: 0,
            pace_refusals: true,
            max_refusals_per_sec: 0,
            // Off: on the 2-vCPU rig (perf/RESULTS.md, "The auction
            // runtime's queue") a 5 ms target cut the tail past saturation
            // but shed more than half of a load that was answered in time.
            // 5 (half the default response margin) is the value measured.
            max_queue_delay_ms: 0,
        }
    }
}

impl ServerConfig {
    /// Checks the connection limits; the error names the key.
    fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("server.body_timeout_ms", self.body_timeout_ms),
            (
                "server.first_request_timeout_ms",
                self.first_request_timeout_ms,
            ),
            ("server.header_read_timeout_ms", self.header_read_timeout_ms),
            ("server.idle_timeout_ms", self.idle_timeout_ms),
            (
                "server.max_concurrent_streams",
                u64::from(self.max_concurrent_streams),
            ),
            ("server.max_connections", self.max_connections as u64),
            ("server.max_header_bytes", self.max_header_bytes as u64),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(invalid(*key, "must be > 0"));
        }
        if self.h2_keep_alive_interval_ms > 0 && self.h2_keep_alive_timeout_ms == 0 {
            return Err(invalid(
                "server.h2_keep_alive_timeout_ms",
                "must be > 0 while h2_keep_alive_interval_ms is set",
            ));
        }
        // hyper needs room for a request line and a few headers.
        if self.max_header_bytes < 1024 {
            return Err(invalid("server.max_header_bytes", "must be at least 1024"));
        }
        Ok(())
    }

    /// See [`ServerConfig::body_timeout_ms`].
    pub fn body_timeout(&self) -> Duration {
        Duration::from_millis(self.body_timeout_ms)
    }
}

/// Default `auction.max_bid_price`: 1,000 CPM (no real bid comes near it;
/// a million such wins still sum far below `i64::MAX` micros).
pub const DEFAULT_MAX_BID_PRICE: rtb_proto::Micros = rtb_proto::Micros(1_000 * 1_000_000);

/// Largest `auction.max_bid_price` accepted: 1e9 currency units.
pub const MAX_BID_PRICE_LIMIT: rtb_proto::Micros = rtb_proto::Micros(1_000_000_000 * 1_000_000);

/// Deadline and auction settings.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuctionConfig {
    /// tmax used when the request has none.
    pub default_tmax_ms: u64,
    /// A larger tmax is clamped to this.
    pub max_tmax_ms: u64,
    /// Time reserved, out of tmax, for the auction, encoding and the trip back
    /// to the publisher: the fan-out ends this long before tmax is up.
    pub response_margin_ms: u64,
    /// Time reserved for the network between exchange and bidder: bidders are
    /// told a `tmax` this much smaller than what the fan-out will wait.
    pub bidder_network_margin_ms: u64,
    /// Largest bidder response body read; a larger one is an invalid answer.
    pub max_bidder_response_bytes: usize,
    /// Fire the winner's `nurl` from the exchange after answering (and leave it
    /// out of the publisher's response, so it is not fired twice).
    pub fire_nurl: bool,
    /// Highest valid bid price, in currency units (CPM) in the file, micros
    /// here. A bid above it is invalid (loss reason 3). Why: a bid of 9e12
    /// is a bug or an attack, and prices that large overflow sums of micros.
    pub max_bid_price: rtb_proto::Micros,
    /// Most imps one request may hold; more is a 400 naming `imp`. Why: the
    /// auction's work, the bidders' and the answer's size grow with imps.
    pub max_imps_per_request: usize,
    /// Most bids one bidder may make on one imp; its bids past that (in the
    /// order of its answer) are invalid. Why: every bid costs the auction
    /// and the seat-non-bid, and a few are enough for a seat's deals.
    pub max_bids_per_seat_per_imp: usize,
    /// Most bids one bidder answer may hold; bids past that (in the order of
    /// the answer) are invalid. Why: bounds the auction's work per bidder
    /// whatever the answer's size.
    pub max_bids_per_response: usize,
    /// `[auction.adaptive_wait]`: stop waiting for bidders unlikely to
    /// answer in time (see [`AdaptiveWait`]).
    pub adaptive_wait: AdaptiveWait,
}

/// `[auction.adaptive_wait]`: the fan-out stops waiting once every bidder
/// still out is unlikely to answer before the deadline, judged from that
/// bidder's own recent latencies (`fanout::patience`). Each bidder given up
/// on is a seat-non-bid (502, "unlikely to answer in time").
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdaptiveWait {
    /// On by default; `false` waits for every bidder to the deadline.
    pub enabled: bool,
    /// "Unlikely": a bidder still out is given up on when, of its recent
    /// calls still out at that point, fewer than `1 - quantile` answered in
    /// time. So at most `1 - quantile` of its in-time answers are lost.
    pub quantile: f64,
    /// Share of auctions that wait for everybody to the deadline anyway and
    /// record what they saw: the estimate's only source once it is in use
    /// (a cut-short wait hides the late answers it is about).
    pub explore: f64,
    /// Recorded calls a bidder needs (over the last one to two windows)
    /// before its wait is cut at all.
    pub min_samples: u32,
    /// Length of one recording window; the estimate uses the current window
    /// and the one before, so it follows a bidder whose latency changes
    /// within two windows.
    pub window_ms: u64,
}

impl Default for AdaptiveWait {
    fn default() -> Self {
        Self {
            enabled: true,
            quantile: 0.99,
            // 1 auction in 200: under the 1 % a publisher's p99 looks at.
            explore: 0.005,
            min_samples: 200,
            window_ms: 60_000,
        }
    }
}

impl AdaptiveWait {
    /// One auction in this many explores (see [`AdaptiveWait::explore`]).
    pub fn explore_every(&self) -> u64 {
        if self.explore <= 0.0 {
            return u64::MAX;
        }
        (1.0 / self.explore).round().max(1.0) as u64
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let key = |k: &str| format!("auction.adaptive_wait.{k}");
        if !(self.quantile > 0.0 && self.quantile < 1.0) {
            return Err(invalid(key("quantile"), "must be > 0 and < 1"));
        }
        if !(self.explore > 0.0 && self.explore <= 1.0) {
            return Err(invalid(
                key("explore"),
                "must be > 0 and <= 1 (without exploring, the estimate could never follow a bidder that got faster or slower)",
            ));
        }
        if self.min_samples == 0 {
            return Err(invalid(key("min_samples"), "must be > 0"));
        }
        if self.window_ms == 0 || self.window_ms > 86_400_000 {
            return Err(invalid(key("window_ms"), "must be between 1 and 86400000"));
        }
        Ok(())
    }
}

impl Default for AuctionConfig {
    fn default() -> Self {
        Self {
            default_tmax_ms: 120,
            max_tmax_ms: 500,
            response_margin_ms: 10,
            bidder_network_margin_ms: 5,
            max_bidder_response_bytes: 1024 * 1024,
            fire_nurl: true,
            max_bid_price: DEFAULT_MAX_BID_PRICE,
            max_imps_per_request: 100,
            max_bids_per_seat_per_imp: 5,
            max_bids_per_response: 200,
            adaptive_wait: AdaptiveWait::default(),
        }
    }
}

impl AuctionConfig {
    /// The time budget granted to a request: its tmax (or the default) clamped
    /// to `max_tmax_ms`.
    pub fn budget(&self, tmax_ms: Option<u32>) -> Duration {
        let ms = match tmax_ms {
            Some(t) if t > 0 => u64::from(t).min(self.max_tmax_ms),
            _ => self.default_tmax_ms,
        };
        Duration::from_millis(ms)
    }

    /// See [`AuctionConfig::response_margin_ms`].
    pub fn response_margin(&self) -> Duration {
        Duration::from_millis(self.response_margin_ms)
    }

    /// See [`AuctionConfig::bidder_network_margin_ms`].
    pub fn bidder_network_margin(&self) -> Duration {
        Duration::from_millis(self.bidder_network_margin_ms)
    }
}

impl Config {
    /// Parses and validates a TOML document.
    pub fn from_toml_str(s: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(s).map_err(|e| ConfigError::Parse(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates a TOML file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_str(&text)
    }

    /// Applies the environment overrides (`EXCHANGE_ADMIN_TOKEN`,
    /// `DATABASE_URL`) and checks what needs them: an admin API without a
    /// token is refused.
    pub fn apply_env(&mut self) -> Result<(), ConfigError> {
        if let Ok(t) = std::env::var(ENV_ADMIN_TOKEN) {
            if !t.is_empty() {
                self.admin_token = Some(t);
            }
        }
        if let Ok(u) = std::env::var(ENV_DATABASE_URL) {
            if !u.is_empty() {
                self.database_url = Some(u);
            }
        }
        if let Ok(u) = std::env::var(ENV_LEDGER_DATABASE_URL) {
            if !u.is_empty() {
                self.ledger.database_url = Some(u);
            }
        }
        // Budgets (leases) live in the ledger's database, which every replica
        // must share: a PostgreSQL DATABASE_URL serves for it too when no
        // ledger database is named, as it does for `exchange ledger`.
        if let Ok(u) = std::env::var(ENV_DATABASE_URL) {
            if u.starts_with("postgres://") || u.starts_with("postgresql://") {
                self.ledger.apply_env_database_url(Some(u))?;
            }
        }
        self.validate()?;
        self.check_admin()
    }

    /// An admin API needs a token.
    pub fn check_admin(&self) -> Result<(), ConfigError> {
        if self.admin_listen.is_some() && self.admin_token.is_none() {
            return Err(invalid(
                "admin_token",
                format!("required when admin_listen is set (or set {ENV_ADMIN_TOKEN})"),
            ));
        }
        Ok(())
    }

    /// The registry database URL, if the registry is persisted: the
    /// configured URL, else the SQLite file (`sqlite_path`, or the default
    /// file when the admin API is on).
    pub fn registry_database(&self) -> Option<String> {
        if let Some(url) = &self.database_url {
            return Some(url.clone());
        }
        let path = match (&self.sqlite_path, self.admin_listen) {
            (Some(p), _) => p.clone(),
            (None, Some(_)) => PathBuf::from(DEFAULT_SQLITE_PATH),
            (None, None) => return None,
        };
        Some(format!("sqlite://{}?mode=rwc", path.display()))
    }

    /// Checks values and the relations between keys.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let a = &self.auction;
        if a.default_tmax_ms == 0 {
            return Err(invalid("auction.default_tmax_ms", "must be > 0"));
        }
        if a.max_tmax_ms < a.default_tmax_ms {
            return Err(invalid(
                "auction.max_tmax_ms",
                format!("must be >= auction.default_tmax_ms ({})", a.default_tmax_ms),
            ));
        }
        if a.response_margin_ms + a.bidder_network_margin_ms >= a.default_tmax_ms {
            return Err(invalid(
                "auction.response_margin_ms",
                "response_margin_ms + bidder_network_margin_ms must be < default_tmax_ms",
            ));
        }
        if a.max_bidder_response_bytes == 0 {
            return Err(invalid("auction.max_bidder_response_bytes", "must be > 0"));
        }
        // Up to 1e9 CPM: well inside i64 micros (9.2e12 units), so a sum of
        // many such prices is still checked arithmetic, not an overflow.
        if a.max_bid_price.0 <= 0 || a.max_bid_price.0 > MAX_BID_PRICE_LIMIT.0 {
            return Err(invalid(
                "auction.max_bid_price",
                format!("must be > 0 and at most {MAX_BID_PRICE_LIMIT} (currency units)"),
            ));
        }
        for (key, v) in [
            ("auction.max_imps_per_request", a.max_imps_per_request),
            (
                "auction.max_bids_per_seat_per_imp",
                a.max_bids_per_seat_per_imp,
            ),
            ("auction.max_bids_per_response", a.max_bids_per_response),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be > 0"));
            }
        }
        a.adaptive_wait.validate()?;
        if self.server.max_in_flight == 0 {
            return Err(invalid("server.max_in_flight", "must be > 0"));
        }
        if self.server.max_body_bytes == 0 {
            return Err(invalid("server.max_body_bytes", "must be > 0"));
        }
        self.server.validate()?;
        let b = &self.metrics.buckets_ms;
        if b.is_empty()
            || b.iter().any(|v| !v.is_finite() || *v <= 0.0)
            || b.windows(2).any(|w| w[0] >= w[1])
        {
            return Err(invalid(
                "metrics.buckets_ms",
                "must be a non-empty list of increasing positive numbers",
            ));
        }
        let r = &self.registry;
        if r.poll_interval_ms == 0 || r.poll_interval_ms > 1000 {
            // Above a second, replicas would miss the one-second promise.
            return Err(invalid(
                "registry.poll_interval_ms",
                "must be between 1 and 1000",
            ));
        }
        EndpointPolicy::new(r).map_err(|(k, m)| invalid(k, m))?;
        if let Some(url) = &self.database_url {
            if !["postgres://", "postgresql://", "sqlite:"]
                .iter()
                .any(|p| url.starts_with(p))
            {
                return Err(invalid(
                    "database_url",
                    "must start with postgres://, postgresql:// or sqlite:",
                ));
            }
        }
        if matches!(&self.admin_token, Some(t) if t.is_empty()) {
            return Err(invalid("admin_token", "must not be empty"));
        }
        rtb_ledger::config::validate(&self.kafka, &self.ledger)?;
        self.budget.validate()?;
        let mut names = HashSet::new();
        for (i, b) in self.bidders.iter().enumerate() {
            b.check()
                .map_err(|(k, m)| invalid(format!("bidders[{i}].{k}"), m))?;
            if !names.insert(b.name.as_str()) {
                return Err(invalid(
                    format!("bidders[{i}].name"),
                    format!("duplicate bidder name {:?}", b.name),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
listen = "127.0.0.1:8080"
[auction]
default_tmax_ms = 120
max_tmax_ms = 500
[[bidders]]
name = "alpha"
endpoints = ["http://127.0.0.1:9001", "http://127.0.0.1:9011"]
protocol = "h2c"
"#;

    #[test]
    fn issue_shape_parses() {
        let c = Config::from_toml_str(SAMPLE).unwrap();
        assert_eq!(c.bidders[0].endpoints.len(), 2);
        assert_eq!(c.bidders[0].protocol, Protocol::H2c);
        assert_eq!(c.auction.budget(None), Duration::from_millis(120));
        assert_eq!(c.auction.budget(Some(900)), Duration::from_millis(500));
        assert_eq!(c.auction.budget(Some(80)), Duration::from_millis(80));
        assert_eq!(c.auction.max_bid_price, rtb_proto::Micros(1_000_000_000));
        assert_eq!(c.auction.max_imps_per_request, 100);
        assert_eq!(c.auction.max_bids_per_seat_per_imp, 5);
        assert_eq!(c.auction.max_bids_per_response, 200);
        // Currency units in the file, integer or decimal.
        let text = SAMPLE.replace(
            "max_tmax_ms = 500",
            "max_tmax_ms = 500\nmax_bid_price = 2.5",
        );
        let c = Config::from_toml_str(&text).unwrap();
        assert_eq!(c.auction.max_bid_price, rtb_proto::Micros(2_500_000));
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::from_toml_str("[auction]\ndefault_tmax = 3\n").unwrap_err();
        assert!(err.to_string().contains("default_tmax"), "{err}");
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases = [
            (
                SAMPLE.replace("9011\"", "9011\", \"ftp://x\""),
                "bidders[0].endpoints[2]",
            ),
            (
                SAMPLE.replace("\"h2c\"", "\"h2\""),
                "bidders[0].endpoints[0]",
            ),
            (
                SAMPLE.replace("max_tmax_ms = 500", "max_tmax_ms = 50"),
                "auction.max_tmax_ms",
            ),
            (
                SAMPLE.replace(
                    "endpoints = [\"http://127.0.0.1:9001\", \"http://127.0.0.1:9011\"]",
                    "endpoints = []",
                ),
                "bidders[0].endpoints",
            ),
            (
                format!("{SAMPLE}\n[[bidders]]\nname = \"alpha\"\nendpoints = [\"http://a\"]\n"),
                "bidders[1].name",
            ),
            (
                SAMPLE.replace("max_tmax_ms = 500", "max_tmax_ms = 500\nmax_bid_price = 0"),
                "auction.max_bid_price",
            ),
            (
                SAMPLE.replace(
                    "max_tmax_ms = 500",
                    "max_tmax_ms = 500\nmax_bid_price = 2e9",
                ),
                "auction.max_bid_price",
            ),
            (
                SAMPLE.replace(
                    "max_tmax_ms = 500",
                    "max_tmax_ms = 500\nmax_imps_per_request = 0",
                ),
                "auction.max_imps_per_request",
            ),
            (
                SAMPLE.replace(
                    "max_tmax_ms = 500",
                    "max_tmax_ms = 500\nmax_bids_per_seat_per_imp = 0",
                ),
                "auction.max_bids_per_seat_per_imp",
            ),
            (
                SAMPLE.replace(
                    "max_tmax_ms = 500",
                    "max_tmax_ms = 500\nmax_bids_per_response = 0",
                ),
                "auction.max_bids_per_response",
            ),
            (
                format!("{SAMPLE}\n[auction.adaptive_wait]\nquantile = 1.0\n"),
                "auction.adaptive_wait.quantile",
            ),
            (
                format!("{SAMPLE}\n[auction.adaptive_wait]\nexplore = 0.0\n"),
                "auction.adaptive_wait.explore",
            ),
            (
                format!("{SAMPLE}\n[auction.adaptive_wait]\nwindow_ms = 0\n"),
                "auction.adaptive_wait.window_ms",
            ),
        ];
        for (text, key) in cases {
            let err = Config::from_toml_str(&text).unwrap_err().to_string();
            assert!(err.contains(key), "expected {key} in {err}");
        }
        let err = Config::from_toml_str(&SAMPLE.replace("\"h2c\"", "\"spdy\"")).unwrap_err();
        assert!(err.to_string().contains("spdy"), "{err}");
    }

    #[test]
    fn registry_keys_are_checked_and_named() {
        let cases = [
            ("[registry]\npoll_interval_ms = 5000\n", "registry.poll_interval_ms"),
            ("[registry]\nallowed_networks = [\"10.0.0.0/40\"]\n", "registry.allowed_networks[0]"),
            ("database_url = \"mysql://x\"\n", "database_url"),
            ("admin_token = \"\"\n", "admin_token"),
            ("[registry]\nallow_all = true\n", "allow_all"),
            (
                "[[bidders]]\nname = \"a\"\nendpoints = [\"http://x\"]\nmax_concurrency = 0\n",
                "bidders[0].max_concurrency",
            ),
            (
                "[[bidders]]\nname = \"a\"\nendpoints = [\"http://x\"]\ncircuit = { cooldown_ms = 0 }\n",
                "bidders[0].circuit.cooldown_ms",
            ),
            (
                "[[bidders]]\nname = \"a\"\nendpoints = [\"http://x\"]\ntmax_deduction_ms = 60001\n",
                "bidders[0].tmax_deduction_ms",
            ),
        ];
        for (text, key) in cases {
            let err = Config::from_toml_str(text).unwrap_err().to_string();
            assert!(err.contains(key), "expected {key} in {err}");
        }
    }

    #[test]
    fn an_admin_api_needs_a_token_and_a_database() {
        let c = Config::from_toml_str("admin_listen = \"127.0.0.1:0\"\n").unwrap();
        let err = c.check_admin().unwrap_err().to_string();
        assert!(err.contains("admin_token"), "{err}");
        assert_eq!(
            c.registry_database().as_deref(),
            Some("sqlite://exchange.db?mode=rwc")
        );
        // No admin API and no database keys: the file's bidders, unstored.
        assert_eq!(Config::default().registry_database(), None);
        let pg = Config::from_toml_str("database_url = \"postgres://u@h/db\"\n").unwrap();
        assert_eq!(pg.registry_database().as_deref(), Some("postgres://u@h/db"));
    }
}

#[cfg(test)]
mod kafka_ledger_tests {
    //! The `[kafka]` and `[ledger]` sections (their types live in
    //! `rtb_ledger::config`), read through the whole file.
    use crate::config::Config;

    #[test]
    fn defaults_are_embedded() {
        let c = Config::from_toml_str("").unwrap();
        assert!(c.kafka.brokers.is_none());
        assert!(c.ledger.runs_embedded(&c.kafka));
        assert_eq!(
            c.ledger.metrics_addr,
            rtb_ledger::config::DEFAULT_METRICS_ADDR
        );
        let c = Config::from_toml_str("[kafka]\nbrokers = \"k:9092\"\n").unwrap();
        assert!(!c.ledger.runs_embedded(&c.kafka));
        let c = Config::from_toml_str("[kafka]\nbrokers = \"k:9092\"\n[ledger]\nembedded = true\n")
            .unwrap();
        assert!(c.ledger.runs_embedded(&c.kafka));
    }

    #[test]
    fn env_database_url_fills_only_a_missing_key() {
        let mut c = Config::from_toml_str("").unwrap().ledger;
        c.apply_env_database_url(Some("postgres://env/db".into()))
            .unwrap();
        assert_eq!(c.database_url.as_deref(), Some("postgres://env/db"));
        c.apply_env_database_url(Some("postgres://other/db".into()))
            .unwrap();
        assert_eq!(c.database_url.as_deref(), Some("postgres://env/db"));
        let mut c = Config::from_toml_str("").unwrap().ledger;
        let err = c
            .apply_env_database_url(Some("mysql://x".into()))
            .unwrap_err();
        assert!(err.to_string().contains("DATABASE_URL"), "{err}");
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases = [
            ("[kafka]\nqueue_capacity = 0\n", "kafka.queue_capacity"),
            (
                "[kafka]\ndlq_topic = \"auction-results\"\n",
                "kafka.dlq_topic",
            ),
            ("[kafka]\nbrokers = \" \"\n", "kafka.brokers"),
            (
                "[ledger]\ndatabase_url = \"mysql://x\"\n",
                "ledger.database_url",
            ),
            ("[ledger]\nbatch_max = 0\n", "ledger.batch_max"),
            ("[ledger]\nbatchmax = 3\n", "batchmax"),
            (
                "[ledger]\nmetrics_addr = \"localhost\"\n",
                "ledger.metrics_addr",
            ),
            ("[ledger]\nmetrics_addr = 9091\n", "metrics_addr"),
        ];
        for (text, key) in cases {
            let err = Config::from_toml_str(text).unwrap_err().to_string();
            assert!(err.contains(key), "expected {key} in {err}");
        }
    }
}
