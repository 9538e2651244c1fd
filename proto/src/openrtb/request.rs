//! Top-level bid request objects (OpenRTB 2.6 sections 3.2.1-3.2.3): `BidRequest`, `Source`, `SupplyChain`, `Regs`.

use serde::{Deserialize, Serialize};

use super::{App, Device, Dooh, Ext, Imp, Site, User};

/// Top-level bid request (OpenRTB 2.6 section 3.2.1).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BidRequest {
    /// Unique id of the bid request, provided by the exchange (required).
    pub id: String,
    /// Impressions offered; at least one is required.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub imp: Vec<Imp>,
    /// Website the impressions are on (at most one of site/app/dooh).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<Site>,
    /// Application the impressions are in (at most one of site/app/dooh).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<App>,
    /// Digital out-of-home venue (at most one of site/app/dooh).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dooh: Option<Dooh>,
    /// Device the impression will be shown on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<Device>,
    /// Human user of the device.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<User>,
    /// Test mode flag: 1 means no billing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<u8>,
    /// Auction type: 1 first price, 2 second price plus, >500 exchange specific; absent means 2.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<u32>,
    /// Maximum time in milliseconds the exchange allows for bids.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmax: Option<u32>,
    /// Allowed buyer seats.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub wseat: Vec<String>,
    /// Blocked buyer seats.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bseat: Vec<String>,
    /// 1 when all impressions in the context are offered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allimps: Option<u8>,
    /// Allowed currencies (ISO-4217 alpha codes).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cur: Vec<String>,
    /// Allowed creative languages (ISO-639-1-alpha-2).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub wlang: Vec<String>,
    /// Allowed creative languages (IETF BCP 47).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub wlangb: Vec<String>,
    /// Allowed advertiser categories.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub acat: Vec<String>,
    /// Blocked advertiser categories.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bcat: Vec<String>,
    /// Taxonomy used for `bcat` and `acat`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cattax: Option<i32>,
    /// Blocked advertiser domains.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub badv: Vec<String>,
    /// Blocked app bundles or package names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bapp: Vec<String>,
    /// Source of the request and its supply chain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// Regulations in force for this request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regs: Option<Regs>,
    /// Exchange-specific extensions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext: Option<Ext>,
}

/// Nature and behaviour of the entity that is the source of the request (section 3.2.2).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Source {
    /// 1 when the exchange makes the final sale decision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fd: Option<u8>,
    /// Transaction id common to all participants.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tid: Option<String>,
    /// Payment id chain (TAG Payment ID Protocol).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pchain: Option<String>,
    /// Supply chain of the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schain: Option<SupplyChain>,
    /// Exchange-specific extensions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext: Option<Ext>,
}

/// Supply chain of entities involved in the sale (SupplyChain object).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SupplyChain {
    /// 1 when the chain contains all nodes back to the owner of the site or app.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub complete: Option<u8>,
    /// Nodes in order, first being the initial seller.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<SupplyChainNode>,
    /// Version of the supply chain specification.
    pub ver: String,
    /// Exchange-specific extensions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext: Option<Ext>,
}

/// One participant of a supply chain.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SupplyChainNode {
    /// Canonical domain of the SSP or exchange.
    pub asi: String,
    /// Seller or reseller account id in the `asi` system.
    pub sid: String,
    /// Request id issued by this node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rid: Option<String>,
    /// Business name of the entity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Business domain of the entity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// 1 when this node is involved in the flow of payment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hp: Option<u8>,
    /// Exchange-specific extensions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext: Option<Ext>,
}

/// Legal, governmental or industry regulations in force (section 3.2.3).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Regs {
    /// 1 when the request is subject to COPPA.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coppa: Option<u8>,
    /// 1 when the request is subject to GDPR.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gdpr: Option<u8>,
    /// US privacy string (CCPA); opaque, not validated here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub us_privacy: Option<String>,
    /// Global Privacy Platform consent string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpp: Option<String>,
    /// GPP section ids in force.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gpp_sid: Vec<i32>,
    /// Exchange-specific extensions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext: Option<Ext>,
}
