//! Impression-level objects (OpenRTB 2.6 sections 3.2.4-3.2.5, 3.2.11-3.2.12, 3.2.31-3.2.35): `Imp`, `Metric`, `Pmp`, `Deal`, `Qty`, `DurFloors`, `Refresh`, `RefSettings`.

use serde::{Deserialize, Serialize};

use super::{Audio, Banner, Ext, Native, Video};
use crate::Micros;

/// One ad placement or impression being auctioned (section 3.2.4).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Imp {
    /// Identifier of the impression, unique within the request (required).
    pub id: String,
    /// Metrics known about the impression.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metric: Vec<Metric>,
    /// Banner offer, when banner is allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub banner: Option<Banner>,
    /// Video offer, when video is allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video: Option<Video>,
    /// Audio offer, when audio is allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio: Option<Audio>,
    /// Native offer, when native is allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub native: Option<Native>,
    /// Private marketplace deals for this impression.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pmp: Option<Pmp>,
    /// Name of the ad mediation partner or SDK.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub displaymanager: Option<String>,
    /// Version of the display manager.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub displaymanagerver: Option<String>,
    /// 1 when the ad is interstitial or full screen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instl: Option<u8>,
    /// Identifier of the ad placement or tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tagid: Option<String>,
    /// Minimum bid for this impression, CPM in micros (absent means zero).
    #[serde(skip_serializing_if = "Micros::is_zero")]
    pub bidfloor: Micros,
    /// Currency of `bidfloor` (absent means USD).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bidfloorcur: Option<String>,
    /// Browser used on click: 0 embedded, 1 native.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clickbrowser: Option<u8>,
    /// 1 when secure HTTPS creative assets are required.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secure: Option<u8>,
    /// Supported iframe buster names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub iframebuster: Vec<String>,
    /// 1 when the user receives a reward for viewing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rwdd: Option<u8>,
    /// Server-side ad insertion mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssai: Option<u8>,
    /// Seconds between auction and impression.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<u32>,
    /// Impression multiplier for DOOH.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qty: Option<Qty>,
    /// Timestamp of the impression in milliseconds since epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dt: Option<f64>,
    /// Ad slot refresh details.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh: Option<Refresh>,
    /// Exchange-specific extensions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext: Option<Ext>,
}

/// Metric associated with an impression (section 3.2.5).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Metric {
    /// Type of metric (required).
    #[serde(rename = "type", default)]
    pub r#type: String,
    /// Value of the metric, probabilities in 0.0..=1.0 (required).
    pub value: f64,
    /// Source of the value.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub vendor: Option<String>,
    /// Exchange-specific extensions.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ext: Option<Ext>,
}

/// Private marketplace container (section 3.2.11).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Pmp {
    /// 1 when only the listed deals may bid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_auction: Option<u8>,
    /// Deals that apply to this impression.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deals: Vec<Deal>,
    /// Exchange-specific extensions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext: Option<Ext>,
}

/// A specific deal between buyer and seller (section 3.2.12).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Deal {
    /// Deal identifier (required).
    pub id: String,
    /// Minimum bid for this deal, CPM in micros.
    #[serde(skip_serializing_if = "Micros::is_zero")]
    pub bidfloor: Micros,
    /// Currency of `bidfloor` (absent means USD).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bidfloorcur: Option<String>,
    /// Auction type override for this deal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<u32>,
    /// Buyer seats allowed on this deal.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub wseat: Vec<String>,
    /// Advertiser domains allowed on this deal.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub wadomain: Vec<String>,
    /// 1 for a guaranteed deal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guar: Option<u8>,
    /// Minimum CPM per second of creative duration, in micros.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mincpmpersec: Option<Micros>,
    /// Duration-based floors for this deal.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub durfloors: Vec<DurFloors>,
    /// Exchange-specific extensions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext: Option<Ext>,
}

/// Impression multiplier for DOOH inventory (section 3.2.31).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Qty {
    /// Number of people or impressions represented by one ad play (required).
    pub multiplier: f64,
    /// Source of the multiplier.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sourcetype: Option<i32>,
    /// Vendor of the measurement.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub vendor: Option<String>,
    /// Exchange-specific extensions.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ext: Option<Ext>,
}

/// Floor price for a range of creative durations (section 3.2.35).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DurFloors {
    /// Low end of the duration range in seconds (inclusive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mindur: Option<u32>,
    /// High end of the duration range in seconds (exclusive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maxdur: Option<u32>,
    /// Floor for creatives in this range, CPM in micros.
    #[serde(skip_serializing_if = "Micros::is_zero")]
    pub bidfloor: Micros,
    /// Exchange-specific extensions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext: Option<Ext>,
}

/// Refresh behaviour of an ad slot (section 3.2.33).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Refresh {
    /// Refresh triggers and intervals.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refsettings: Vec<RefSettings>,
    /// Number of times the slot has refreshed since page load.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Exchange-specific extensions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext: Option<Ext>,
}

/// One refresh trigger of an ad slot (section 3.2.34).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RefSettings {
    /// Type of refresh trigger.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reftype: Option<i32>,
    /// Minimum seconds between refreshes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minint: Option<u32>,
    /// Exchange-specific extensions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext: Option<Ext>,
}
