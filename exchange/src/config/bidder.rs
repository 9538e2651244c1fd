//! One bidder's settings: where it is, how to talk to it, and how it is
//! protected (concurrency, QPS, circuit breaker, instance ejection).
//!
//! The same type is read from the config file, stored in the registry's
//! database (as JSON) and shown by the admin API, so the three never drift.

use std::path::PathBuf;

use http::Uri;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How the exchange talks to a bidder's instances.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, ToSchema)]
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

/// Circuit breaker and instance ejection settings of one bidder.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitConfig {
    /// Consecutive failed calls (timeouts, transport errors, 5xx) that open
    /// the circuit: the bidder is then not called at all.
    #[schema(minimum = 1, maximum = 1000000)]
    pub failure_threshold: u32,
    /// How long an open circuit waits before one probe call (half-open).
    #[schema(minimum = 1, maximum = 3600000)]
    pub cooldown_ms: u64,
    /// Consecutive failures of one instance that eject it from its pool.
    #[schema(minimum = 1, maximum = 1000000)]
    pub eject_after: u32,
    /// How long an ejected instance stays out of its pool.
    #[schema(minimum = 1, maximum = 3600000)]
    pub eject_ms: u64,
}

impl Default for CircuitConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            cooldown_ms: 5_000,
            eject_after: 5,
            eject_ms: 10_000,
        }
    }
}

/// Largest accepted value of the millisecond circuit settings (one hour).
const MAX_CIRCUIT_MS: u64 = 3_600_000;
/// Largest accepted count-valued setting.
const MAX_COUNT: u32 = 1_000_000;
/// Longest bidder name.
const MAX_NAME_LEN: usize = 64;
/// Most endpoints one bidder may list.
const MAX_ENDPOINTS: usize = 64;

/// One bidder (a seat) and its instances.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
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
    /// Config file only: the admin API cannot point the exchange at files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Calls to this bidder in flight at once; an auction beyond it skips the
    /// bidder (a seat-non-bid) instead of queueing behind it.
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: u32,
    /// Calls per second allowed; beyond it the bidder is skipped. None: no cap.
    #[serde(default)]
    pub qps_limit: Option<u32>,
    /// Circuit breaker and instance ejection.
    #[serde(default)]
    pub circuit: CircuitConfig,
    /// Milliseconds taken off the `tmax` this bidder is told, on top of
    /// `auction.bidder_network_margin_ms`: for a bidder far away, whose
    /// answer spends longer on the way back. The auction still waits for it
    /// to the deadline; a deduction that leaves no time skips the bidder
    /// (seat-non-bid 500, "no time left after tmax_deduction_ms").
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tmax_deduction_ms: u32,
    /// A secondary bidder is called like any other, but the auction does not
    /// wait for it once every primary (not secondary) bidder has answered:
    /// its bid counts only if it is already in (else seat-non-bid 502,
    /// "secondary: not awaited"). An auction with no primary bidder waits
    /// for its secondaries as for primaries.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub secondary: bool,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// Largest accepted `tmax_deduction_ms` (one minute: far beyond any tmax).
const MAX_TMAX_DEDUCTION_MS: u32 = 60_000;

fn default_protocol() -> Protocol {
    Protocol::H2c
}

fn default_true() -> bool {
    true
}

/// Default of [`BidderEntry::max_concurrency`].
pub const DEFAULT_MAX_CONCURRENCY: u32 = 1024;

fn default_max_concurrency() -> u32 {
    DEFAULT_MAX_CONCURRENCY
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
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            qps_limit: None,
            circuit: CircuitConfig::default(),
            tmax_deduction_ms: 0,
            secondary: false,
        }
    }

    /// True when `other` needs the same connections (endpoints, protocol,
    /// trust): its pooled client and health state can then be kept.
    pub fn same_transport(&self, other: &BidderEntry) -> bool {
        self.endpoints == other.endpoints
            && self.protocol == other.protocol
            && self.ca_file == other.ca_file
    }

    /// Checks the entry; the error names the field relative to the entry
    /// (`endpoints[1]`) and says what is wrong.
    pub fn check(&self) -> Result<(), (String, String)> {
        let bad = |k: &str, m: &str| Err((k.to_owned(), m.to_owned()));
        if self.name.is_empty()
            || self.name.len() > MAX_NAME_LEN
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return bad(
                "name",
                "must be 1 to 64 characters of letters, digits, '-', '_' and '.'",
            );
        }
        if self.endpoints.is_empty() {
            return bad("endpoints", "at least one endpoint is required");
        }
        if self.endpoints.len() > MAX_ENDPOINTS {
            return bad("endpoints", "at most 64 endpoints");
        }
        for (j, e) in self.endpoints.iter().enumerate() {
            let key = format!("endpoints[{j}]");
            let uri: Uri = e
                .parse()
                .map_err(|err| (key.clone(), format!("not a URL: {err}")))?;
            let scheme = uri.scheme_str().unwrap_or("");
            if scheme != "http" && scheme != "https" {
                return Err((key, format!("scheme must be http or https, got {e:?}")));
            }
            if scheme != self.protocol.scheme() {
                return Err((
                    key,
                    format!(
                        "protocol {:?} needs a {}:// URL, got {e:?}",
                        self.protocol,
                        self.protocol.scheme()
                    ),
                ));
            }
            if uri.host().is_none_or(str::is_empty) {
                return Err((key, "URL has no host".into()));
            }
        }
        if self.max_concurrency == 0 || self.max_concurrency > MAX_COUNT {
            return bad("max_concurrency", "must be between 1 and 1000000");
        }
        if matches!(self.qps_limit, Some(q) if q == 0 || q > MAX_COUNT) {
            return bad("qps_limit", "must be between 1 and 1000000 (or absent)");
        }
        let c = &self.circuit;
        if c.failure_threshold == 0 || c.failure_threshold > MAX_COUNT {
            return bad("circuit.failure_threshold", "must be between 1 and 1000000");
        }
        if c.eject_after == 0 || c.eject_after > MAX_COUNT {
            return bad("circuit.eject_after", "must be between 1 and 1000000");
        }
        if c.cooldown_ms == 0 || c.cooldown_ms > MAX_CIRCUIT_MS {
            return bad("circuit.cooldown_ms", "must be between 1 and 3600000");
        }
        if c.eject_ms == 0 || c.eject_ms > MAX_CIRCUIT_MS {
            return bad("circuit.eject_ms", "must be between 1 and 3600000");
        }
        if self.tmax_deduction_ms > MAX_TMAX_DEDUCTION_MS {
            return bad("tmax_deduction_ms", "must be between 0 and 60000");
        }
        Ok(())
    }
}
