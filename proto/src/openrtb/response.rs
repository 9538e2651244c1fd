//! Bid response objects (OpenRTB 2.6 section 4): `BidResponse`, `SeatBid`, `Bid`.

use serde::{Deserialize, Serialize};

use super::Ext;
use crate::Micros;

/// Top-level bid response (section 4.2.1); `{}` is a valid no-bid.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BidResponse {
    /// Id of the bid request this responds to.
    pub id: String,
    /// Bids, grouped by seat.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub seatbid: Vec<SeatBid>,
    /// Bidder-generated response id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bidid: Option<String>,
    /// Currency of the bids (absent means USD).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cur: Option<String>,
    /// Data to store in the exchange cookie.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customdata: Option<String>,
    /// Reason for not bidding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbr: Option<u32>,
    /// Bidder-specific extensions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext: Option<Ext>,
}

/// Bids of one buyer seat (section 4.2.2).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SeatBid {
    /// Bids, each for an impression of the request.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bid: Vec<Bid>,
    /// Id of the buyer seat.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seat: Option<String>,
    /// 1 when the impressions must be won as a group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<u8>,
    /// Bidder-specific extensions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext: Option<Ext>,
}

/// One bid for one impression (section 4.2.3); `price` is required at decode.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Bid {
    /// Bidder-generated bid id (required).
    #[serde(default)]
    pub id: String,
    /// Id of the impression bid on (required).
    #[serde(default)]
    pub impid: String,
    /// Bid price, CPM in micros (required).
    pub price: Micros,
    /// Win notice URL.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub nurl: Option<String>,
    /// Billing notice URL.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub burl: Option<String>,
    /// Loss notice URL.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub lurl: Option<String>,
    /// Ad markup.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub adm: Option<String>,
    /// Id of a preloaded ad.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub adid: Option<String>,
    /// Advertiser domains.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub adomain: Vec<String>,
    /// App bundle or package name of the advertiser.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bundle: Option<String>,
    /// URL of an image representing the campaign.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub iurl: Option<String>,
    /// Campaign id.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cid: Option<String>,
    /// Creative id.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub crid: Option<String>,
    /// Tactic id.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tactic: Option<String>,
    /// Taxonomy of `cat`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cattax: Option<i32>,
    /// Content categories of the creative.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub cat: Vec<String>,
    /// Attributes of the creative.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub attr: Vec<i32>,
    /// API frameworks required by the markup.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub apis: Vec<i32>,
    /// Deprecated single API framework (use `apis`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub api: Option<i32>,
    /// Video response protocol of the markup.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub protocol: Option<i32>,
    /// Creative media rating per IQG guidelines.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub qagmediarating: Option<i32>,
    /// Creative language (ISO-639-1-alpha-2).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub language: Option<String>,
    /// Creative language (IETF BCP 47).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub langb: Option<String>,
    /// Id of the deal this bid is for.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dealid: Option<String>,
    /// Creative width in device-independent pixels.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub w: Option<u32>,
    /// Creative height in device-independent pixels.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub h: Option<u32>,
    /// Relative width for flexible sizes.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub wratio: Option<u32>,
    /// Relative height for flexible sizes.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub hratio: Option<u32>,
    /// Seconds the bidder is willing to wait between auction and impression.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub exp: Option<u32>,
    /// Duration of the creative in seconds.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dur: Option<u32>,
    /// Type of the creative markup.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mtype: Option<i32>,
    /// Slot of the pod this bid is for.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub slotinpod: Option<i32>,
    /// Bidder-specific extensions.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ext: Option<Ext>,
}
