//! Events the exchange publishes about auctions (topic `auction-results`).
//!
//! The schema is versioned ([`AuctionResult::schema_version`]) and evolves by
//! addition only: new fields are optional, new enum values are read as
//! `Unknown` by older readers, and unknown fields are ignored (no
//! `deny_unknown_fields` here, on purpose). That is what lets a ledger built
//! against version N keep reading the events of an exchange at version N+1.
//!
//! Money is integer micros in JSON too (`*_micros` fields), never decimal, so a
//! debit is exactly the clearing price the auction computed. No I/O and no
//! clock: the caller supplies the timestamp.

use serde::{Deserialize, Serialize};

use crate::Micros;

/// The schema version this crate writes.
pub const AUCTION_RESULT_SCHEMA_VERSION: u32 = 3;

/// Why an event could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// Not JSON, or not shaped like an `AuctionResult`.
    #[error("invalid auction-result event: {0}")]
    Json(#[from] serde_json::Error),
    /// The JSON is well formed but breaks a rule of the schema.
    #[error("invalid auction-result event: {0}")]
    Invalid(String),
}

/// One auction's result: what the ledger debits and what analytics read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuctionResult {
    /// Schema version of the writer ([`AUCTION_RESULT_SCHEMA_VERSION`] today).
    pub schema_version: u32,
    /// The exchange's own id for this auction, unique across replicas and
    /// restarts (version 1 wrote `BidRequest.id` here). Debits are keyed by
    /// it with the imp id, so a publisher that reuses request ids cannot
    /// collapse two auctions into one debit.
    pub auction_id: String,
    /// `BidRequest.id`, as the publisher sent it (version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The exchange instance that ran the auction and holds the budget
    /// lease its wins were awarded from (version 2). The ledger charges the
    /// debit to that lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange_instance: Option<String>,
    /// When the auction settled, in milliseconds since the Unix epoch (UTC).
    pub ts_ms: i64,
    /// `site.publisher.id` or `app.publisher.id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publisher_id: Option<String>,
    /// `site.id`, when the request came from a site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_id: Option<String>,
    /// `app.id`, when the request came from an app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// The auction currency (`cur[0]`); every amount in the event is in it.
    pub currency: String,
    /// The budget account the event is keyed by in Kafka: the first winner's
    /// account, or `None` when nothing won.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// One entry per impression of the request, in request order.
    pub imps: Vec<ImpResult>,
    /// One entry per bidder called.
    #[serde(default)]
    pub bidders: Vec<BidderResult>,
}

/// The result of one impression.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImpResult {
    /// `Imp.id`.
    pub imp_id: String,
    /// The winning bid, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub winner: Option<Winner>,
    /// Every bid made for this impression, with its loss reason.
    #[serde(default)]
    pub bids: Vec<BidResult>,
}

/// The winning bid of an impression: what the ledger debits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Winner {
    /// The winning seat (bidder name).
    pub seat: String,
    /// `Bid.cid`, the campaign.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
    /// `Bid.crid`, the creative.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crid: Option<String>,
    /// The budget account debited: see [`account_key`].
    pub account: String,
    /// The price bid, in micros.
    #[serde(with = "micros_int")]
    pub bid_micros: Micros,
    /// The price paid (clearing price), in micros.
    #[serde(with = "micros_int")]
    pub clearing_micros: Micros,
    /// Which of the exchange instance's budget leases paid for the win
    /// (schema v3). `None` in older events: the ledger then debits every
    /// lease of the instance for the accounts, as v2 readers did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leased: Option<Leased>,
}

/// The budget leases a win was awarded from, as the exchange reserved it.
///
/// A lease row's outstanding amount is what was granted minus what was
/// debited from it. A win awarded while its account had no budget (before
/// one was created, after it was deleted) was never taken from a lease, so
/// the ledger must not debit one for it: that would shrink what the
/// database believes is still held by the instance and let a later grant
/// hand it out twice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leased {
    /// Taken from the bidder's own (seat) lease.
    #[serde(default)]
    pub seat: bool,
    /// Taken from the campaign's (`seat/cid`) lease.
    #[serde(default)]
    pub campaign: bool,
}

impl Leased {
    /// Paid from no lease: the account had no budget when the win was awarded.
    pub const NONE: Leased = Leased {
        seat: false,
        campaign: false,
    };
}

/// One bid for an impression and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BidResult {
    /// The bidding seat.
    pub seat: String,
    /// The price bid, in micros.
    #[serde(with = "micros_int")]
    pub price_micros: Micros,
    /// OpenRTB loss reason (0 = won).
    pub loss_reason: u16,
}

/// What one bidder did in the auction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BidderResult {
    /// Seat (bidder name).
    pub seat: String,
    /// The outcome of the call.
    pub status: BidderCallStatus,
    /// Response time in milliseconds (the deadline for timeouts).
    pub latency_ms: u64,
    /// Seat-non-bid code for calls that produced no usable answer
    /// (101 timeout, 3 invalid, 1 error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonbid_code: Option<u16>,
}

/// The outcome of one bidder call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BidderCallStatus {
    /// A valid answer with bids.
    Bids,
    /// 204 or no bids.
    NoBid,
    /// No answer before the deadline.
    Timeout,
    /// An answer that was not a valid BidResponse.
    Invalid,
    /// The call failed (connection refused, reset).
    Error,
    /// Not called: circuit open, or its concurrency or QPS limit reached.
    NotCalled,
    /// Called, but the auction stopped waiting before its answer came (a
    /// secondary bidder, or the adaptive wait); `nonbid_code` 502.
    NotAwaited,
    /// A status added by a newer schema version; old readers see this.
    #[serde(other)]
    Unknown,
}

/// The budget account a win is charged to: `seat/cid` when the bid names a
/// campaign, else the seat. Also the Kafka key, so one account's events stay
/// in one partition, in order.
pub fn account_key(seat: &str, cid: Option<&str>) -> String {
    match cid {
        Some(cid) if !cid.is_empty() => format!("{seat}/{cid}"),
        _ => seat.to_owned(),
    }
}

impl AuctionResult {
    /// Encodes the event as JSON.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain structs with string keys cannot fail.
        serde_json::to_vec(self).expect("AuctionResult serializes")
    }

    /// Decodes and checks an event of any schema version >= 1.
    pub fn from_json(bytes: &[u8]) -> Result<Self, EventError> {
        let event: AuctionResult = serde_json::from_slice(bytes)?;
        event.check()?;
        Ok(event)
    }

    /// The rules a reader relies on: a version, an id, winners with an
    /// account and amounts that are not negative nor above the bid.
    pub fn check(&self) -> Result<(), EventError> {
        if self.schema_version == 0 {
            return Err(EventError::Invalid("schema_version: must be >= 1".into()));
        }
        if self.auction_id.is_empty() {
            return Err(EventError::Invalid("auction_id: must not be empty".into()));
        }
        for (i, imp) in self.imps.iter().enumerate() {
            let Some(w) = &imp.winner else { continue };
            let at = |field: &str| format!("imps[{i}].winner.{field}");
            if w.account.is_empty() || w.seat.is_empty() {
                return Err(EventError::Invalid(format!(
                    "{}: seat and account must not be empty",
                    at("account")
                )));
            }
            if w.clearing_micros.0 < 0 || w.clearing_micros > w.bid_micros {
                return Err(EventError::Invalid(format!(
                    "{}: {} is negative or above the bid {}",
                    at("clearing_micros"),
                    w.clearing_micros.0,
                    w.bid_micros.0
                )));
            }
        }
        Ok(())
    }

    /// The Kafka key: the budget account, or the auction id when nothing won
    /// (those events carry no money, so any partition will do).
    pub fn key(&self) -> &str {
        self.account.as_deref().unwrap_or(&self.auction_id)
    }
}

/// Serde for [`Micros`] as a plain integer number of micros.
mod micros_int {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::Micros;

    pub(super) fn serialize<S: Serializer>(m: &Micros, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(m.0)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Micros, D::Error> {
        i64::deserialize(d).map(Micros)
    }
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
