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

use http::Uri;
use serde::Deserialize;

/// Exit code for a bad configuration (`EX_USAGE` from sysexits.h).
pub const EXIT_CONFIG: i32 = 64;

/// Environment variable that overrides `listen` (handy in containers).
pub const ENV_LISTEN: &str = "EXCHANGE_LISTEN";

/// A configuration error; the text names the key (or the file) at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML did not parse or did not match the schema (unknown key, wrong type).
    #[error("config: {0}")]
    Parse(String),
    /// A key has a value that is not allowed.
    #[error("config: {key}: {message}")]
    Invalid {
        /// Dotted path of the key, e.g. `bidders[1].endpoints[0]`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

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
    /// The bidders requests are fanned out to.
    pub bidders: Vec<BidderEntry>,
    /// Auction-result events: Kafka, the spool (see `events`).
    pub kafka: crate::events::KafkaConfig,
    /// The ledger consuming those events (see `ledger`).
    pub ledger: crate::events::LedgerConfig,
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
            kafka: Default::default(),
            ledger: Default::default(),
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
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_in_flight: 4096,
            max_body_bytes: 256 * 1024,
            drain_timeout_ms: 5_000,
        }
    }
}

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

/// How the exchange talks to a bidder's instances.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// HTTP/2 over cleartext with prior knowledge (`http://` endpoints).
    H2c,
    /// HTTP/2 over TLS, negotiated with ALPN (`https://` endpoints).
    H2,
    /// HTTP/1.1 with keep-alive, the fallback for bidders without HTTP/2.
    Http1,
}

impl Protocol {
    /// The URL scheme this protocol requires.
    pub fn scheme(self) -> &'static str {
        match self {
            Protocol::H2 => "https",
            Protocol::H2c | Protocol::Http1 => "http",
        }
    }
}

/// One bidder (a seat) and its instances.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BidderEntry {
    /// Seat name; unique; used in responses, logs and metrics.
    pub name: String,
    /// Instances of this bidder; requests go to one chosen by power-of-two-choices.
    pub endpoints: Vec<String>,
    /// Wire protocol.
    #[serde(default = "default_protocol")]
    pub protocol: Protocol,
    /// A bidder can be configured but left out of auctions.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// PEM file of extra CA certificates trusted for this bidder's `h2`
    /// endpoints (for private CAs); the public web roots are always trusted.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn default_protocol() -> Protocol {
    Protocol::H2c
}

fn default_true() -> bool {
    true
}

impl BidderEntry {
    /// A bidder entry with defaults for the optional keys.
    pub fn new(name: impl Into<String>, endpoints: Vec<String>, protocol: Protocol) -> Self {
        Self {
            name: name.into(),
            endpoints,
            protocol,
            enabled: true,
            ca_file: None,
        }
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
        if self.server.max_in_flight == 0 {
            return Err(invalid("server.max_in_flight", "must be > 0"));
        }
        if self.server.max_body_bytes == 0 {
            return Err(invalid("server.max_body_bytes", "must be > 0"));
        }
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
        crate::events::config::validate(&self.kafka, &self.ledger)?;
        let mut names = HashSet::new();
        for (i, b) in self.bidders.iter().enumerate() {
            validate_bidder(i, b)?;
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

fn validate_bidder(i: usize, b: &BidderEntry) -> Result<(), ConfigError> {
    if b.name.is_empty()
        || !b
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(invalid(
            format!("bidders[{i}].name"),
            "must be non-empty and use only letters, digits, '-', '_' and '.'",
        ));
    }
    if b.endpoints.is_empty() {
        return Err(invalid(
            format!("bidders[{i}].endpoints"),
            "at least one endpoint is required",
        ));
    }
    for (j, e) in b.endpoints.iter().enumerate() {
        let key = format!("bidders[{i}].endpoints[{j}]");
        let uri: Uri = e
            .parse()
            .map_err(|err| invalid(&key, format!("not a URL: {err}")))?;
        let scheme = uri.scheme_str().unwrap_or("");
        if scheme != b.protocol.scheme() {
            return Err(invalid(
                &key,
                format!(
                    "protocol {:?} needs a {}:// URL, got {e:?}",
                    b.protocol,
                    b.protocol.scheme()
                ),
            ));
        }
        if uri.host().is_none() {
            return Err(invalid(&key, "URL has no host"));
        }
    }
    Ok(())
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
        ];
        for (text, key) in cases {
            let err = Config::from_toml_str(&text).unwrap_err().to_string();
            assert!(err.contains(key), "expected {key} in {err}");
        }
        let err = Config::from_toml_str(&SAMPLE.replace("\"h2c\"", "\"spdy\"")).unwrap_err();
        assert!(err.to_string().contains("spdy"), "{err}");
    }
}
