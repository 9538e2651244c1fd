//! The admin API's JSON types, their validation, and the OpenAPI document
//! derived from them and from the handlers' annotations.

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::config::{BidderEntry, CircuitConfig, Protocol, DEFAULT_MAX_CONCURRENCY};
use crate::fanout::Bidder;
use crate::registry::Stored;

/// A bidder to register (`POST /v1/bidders`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "name": "delta",
    "endpoints": ["http://192.0.2.10:9004", "http://192.0.2.11:9004"],
    "protocol": "h2c",
    "max_concurrency": 200,
    "qps_limit": 500,
    "enabled": true
}))]
pub struct NewBidder {
    /// Seat name: unique, used in responses, logs and metrics.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$", min_length = 1, max_length = 64)]
    pub name: String,
    /// Instance URLs (`http://` for h2c and http1, `https://` for h2).
    #[schema(min_items = 1, max_items = 64)]
    pub endpoints: Vec<String>,
    /// Wire protocol.
    pub protocol: Protocol,
    /// Calls in flight at once before auctions skip the bidder (default 1024).
    #[schema(minimum = 1, maximum = 1000000)]
    #[serde(default)]
    pub max_concurrency: Option<u32>,
    /// Calls per second before auctions skip the bidder (default: no cap).
    #[schema(minimum = 1, maximum = 1000000)]
    #[serde(default)]
    pub qps_limit: Option<u32>,
    /// Whether auctions call it (default true).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Circuit breaker and instance ejection (defaults for absent keys).
    #[serde(default)]
    pub circuit: Option<CircuitConfig>,
    /// Milliseconds taken off the tmax this bidder is told (default 0).
    #[schema(minimum = 0, maximum = 60000)]
    #[serde(default)]
    pub tmax_deduction_ms: Option<u32>,
    /// Secondary: auctions do not wait for it once every primary bidder has
    /// answered (default false).
    #[serde(default)]
    pub secondary: Option<bool>,
}

impl NewBidder {
    /// The entry to store.
    pub fn into_entry(self) -> BidderEntry {
        let mut e = BidderEntry::new(self.name, self.endpoints, self.protocol);
        e.max_concurrency = self.max_concurrency.unwrap_or(DEFAULT_MAX_CONCURRENCY);
        e.qps_limit = self.qps_limit;
        e.enabled = self.enabled.unwrap_or(true);
        e.circuit = self.circuit.unwrap_or_default();
        e.tmax_deduction_ms = self.tmax_deduction_ms.unwrap_or(0);
        e.secondary = self.secondary.unwrap_or(false);
        e
    }
}

/// A change to a bidder (`PATCH /v1/bidders/{name}`): absent keys keep their
/// value; `qps_limit: null` removes the cap.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BidderPatch {
    /// New instance URLs.
    #[schema(min_items = 1, max_items = 64)]
    #[serde(default)]
    pub endpoints: Option<Vec<String>>,
    /// New wire protocol.
    #[serde(default)]
    pub protocol: Option<Protocol>,
    /// New concurrency limit.
    #[schema(minimum = 1, maximum = 1000000)]
    #[serde(default)]
    pub max_concurrency: Option<u32>,
    /// New QPS cap; `null` removes it.
    #[schema(minimum = 1, maximum = 1000000, value_type = Option<u32>)]
    #[serde(default, deserialize_with = "some")]
    pub qps_limit: Option<Option<u32>>,
    /// Pause (`false`) or resume (`true`).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// New circuit settings (defaults for absent keys).
    #[serde(default)]
    pub circuit: Option<CircuitConfig>,
    /// New tmax deduction.
    #[schema(minimum = 0, maximum = 60000)]
    #[serde(default)]
    pub tmax_deduction_ms: Option<u32>,
    /// Make it secondary (`true`) or primary (`false`).
    #[serde(default)]
    pub secondary: Option<bool>,
}

/// Tells a present `null` apart from an absent key.
fn some<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u32>>, D::Error> {
    Option::<u32>::deserialize(d).map(Some)
}

impl BidderPatch {
    /// Applies the change.
    pub fn apply(self, e: &mut BidderEntry) {
        if let Some(v) = self.endpoints {
            e.endpoints = v;
        }
        if let Some(v) = self.protocol {
            e.protocol = v;
        }
        if let Some(v) = self.max_concurrency {
            e.max_concurrency = v;
        }
        if let Some(v) = self.qps_limit {
            e.qps_limit = v;
        }
        if let Some(v) = self.enabled {
            e.enabled = v;
        }
        if let Some(v) = self.circuit {
            e.circuit = v;
        }
        if let Some(v) = self.tmax_deduction_ms {
            e.tmax_deduction_ms = v;
        }
        if let Some(v) = self.secondary {
            e.secondary = v;
        }
    }
}

/// Circuit state of a bidder.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    /// Calls go through.
    Closed,
    /// The bidder is not called.
    Open,
    /// One probe call decides.
    HalfOpen,
}

/// One instance's live state on this replica.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceState {
    /// The instance URL.
    pub endpoint: String,
    /// Calls in flight to it now.
    pub in_flight: u64,
    /// Calls sent to it since this replica started using it.
    pub sent: u64,
    /// Consecutive failed calls.
    pub consecutive_failures: u32,
    /// Unix milliseconds until which it is ejected from the pool; absent
    /// when it is in the pool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ejected_until: Option<u64>,
}

/// A bidder's live state on the replica that answered.
#[derive(Debug, Serialize, ToSchema)]
pub struct LiveState {
    /// Circuit breaker state.
    pub circuit: CircuitState,
    /// Calls in flight now.
    pub in_flight: u32,
    /// Consecutive failed calls.
    pub consecutive_failures: u32,
    /// Share of calls that timed out over the last 10 to 20 seconds.
    pub recent_timeout_rate: f64,
    /// Per instance.
    pub instances: Vec<InstanceState>,
}

impl LiveState {
    /// Reads a bidder's state.
    pub fn of(b: &Bidder) -> Self {
        let h = b.health();
        Self {
            circuit: match h.circuit() {
                crate::fanout::Circuit::Closed => CircuitState::Closed,
                crate::fanout::Circuit::Open => CircuitState::Open,
                crate::fanout::Circuit::HalfOpen => CircuitState::HalfOpen,
            },
            in_flight: h.in_flight(),
            consecutive_failures: h.consecutive_failures(),
            recent_timeout_rate: h.recent_timeout_rate(),
            instances: b
                .instances()
                .iter()
                .map(|i| InstanceState {
                    endpoint: i.uri.to_string(),
                    in_flight: i.in_flight() as u64,
                    sent: i.sent(),
                    consecutive_failures: i.consecutive_failures(),
                    ejected_until: i.ejected_until_unix_ms(),
                })
                .collect(),
        }
    }
}

/// A registered bidder as stored, with its live state.
#[derive(Debug, Serialize, ToSchema)]
pub struct BidderView {
    /// Seat name.
    pub name: String,
    /// Instance URLs.
    pub endpoints: Vec<String>,
    /// Wire protocol.
    pub protocol: Protocol,
    /// Whether auctions call it.
    pub enabled: bool,
    /// Concurrency limit.
    pub max_concurrency: u32,
    /// QPS cap; absent when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qps_limit: Option<u32>,
    /// Circuit breaker and ejection settings.
    pub circuit: CircuitConfig,
    /// Milliseconds taken off the tmax this bidder is told.
    pub tmax_deduction_ms: u32,
    /// Whether auctions stop waiting for it once every primary bidder answered.
    pub secondary: bool,
    /// Unix milliseconds of registration.
    pub created_at: i64,
    /// Unix milliseconds of the last change.
    pub updated_at: i64,
    /// Live state on this replica; absent until it has loaded the bidder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<LiveState>,
}

impl BidderView {
    /// The view of a stored bidder, with the live bidder if loaded.
    pub fn new(s: Stored, live: Option<&Bidder>) -> Self {
        let e = s.entry;
        Self {
            name: e.name,
            endpoints: e.endpoints,
            protocol: e.protocol,
            enabled: e.enabled,
            max_concurrency: e.max_concurrency,
            qps_limit: e.qps_limit,
            circuit: e.circuit,
            tmax_deduction_ms: e.tmax_deduction_ms,
            secondary: e.secondary,
            created_at: s.created_at,
            updated_at: s.updated_at,
            state: live.map(LiveState::of),
        }
    }
}

/// An error: what is wrong and, for a validation error, which field.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiError {
    /// Lowercase description.
    pub error: String,
    /// Path of the bad field (`endpoints[0]`), for validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// The OpenAPI document of the admin API.
#[derive(OpenApi)]
#[openapi(
    info(title = "rtb-exchange admin API", description = "Registers, changes, pauses and removes bidders at run time, and sets their budgets."),
    paths(
        super::handlers::create_bidder,
        super::handlers::list_bidders,
        super::handlers::get_bidder,
        super::handlers::patch_bidder,
        super::handlers::delete_bidder,
        super::budgets::put_bidder_budget,
        super::budgets::get_bidder_budget,
        super::budgets::delete_bidder_budget,
        super::budgets::put_campaign_budget,
        super::budgets::get_campaign_budget,
        super::budgets::delete_campaign_budget,
        super::handlers::openapi_json,
    ),
    components(schemas(NewBidder, BidderPatch, BidderView, LiveState, InstanceState, CircuitState, ApiError, Protocol, CircuitConfig,
        super::budgets::BudgetSpec, super::budgets::BudgetView, super::budgets::BudgetState)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
pub struct AdminApi;

/// Declares the bearer-token scheme every operation requires.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
