//! Device and audience objects (OpenRTB 2.6 sections 3.2.18-3.2.22, 3.2.27-3.2.29): `Device`, `Geo`, `User`, `Data`, `Segment`, `UserAgent`, `BrandVersion`, `Eid`, `Uid`.

use serde::{Deserialize, Serialize};

use super::Ext;

/// Device through which the user interacts (section 3.2.18).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Device {
    /// Location of the device.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub geo: Option<Geo>,
    /// Do Not Track flag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dnt: Option<u8>,
    /// Limit Ad Tracking flag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lmt: Option<u8>,
    /// Browser user agent string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ua: Option<String>,
    /// Structured user agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sua: Option<UserAgent>,
    /// IPv4 address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// IPv6 address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<String>,
    /// General type of device.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub devicetype: Option<i32>,
    /// Device make.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub make: Option<String>,
    /// Device model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Operating system.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// Operating system version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub osv: Option<String>,
    /// Hardware version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hwv: Option<String>,
    /// Physical screen height in pixels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub h: Option<u32>,
    /// Physical screen width in pixels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub w: Option<u32>,
    /// Screen size in pixels per linear inch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ppi: Option<u32>,
    /// Ratio of physical to device-independent pixels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pxratio: Option<f64>,
    /// 1 when JavaScript is supported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub js: Option<u8>,
    /// 1 when the geolocation API is available.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub geofetch: Option<u8>,
    /// Flash version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flashver: Option<String>,
    /// Browser language (ISO-639-1-alpha-2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Browser language (IETF BCP 47).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub langb: Option<String>,
    /// Carrier or ISP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    /// Mobile carrier code (MCC-MNC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mccmnc: Option<String>,
    /// Network connection type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connectiontype: Option<i32>,
    /// Advertising id; may be empty when tracking is limited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ifa: Option<String>,
    /// Exchange-specific extensions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext: Option<Ext>,
}

/// Geographic location (section 3.2.19).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Geo {
    /// Latitude, -90.0 to 90.0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lat: Option<f64>,
    /// Longitude, -180.0 to 180.0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lon: Option<f64>,
    /// Source of the location data.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub r#type: Option<i32>,
    /// Estimated accuracy in metres.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<u32>,
    /// Seconds since the location was established.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lastfix: Option<u32>,
    /// Service used for IP geolocation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipservice: Option<i32>,
    /// Country code (ISO-3166-1-alpha-3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Region code (ISO-3166-2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Region code (FIPS 10-4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regionfips104: Option<String>,
    /// Metro code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metro: Option<String>,
    /// City name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// Postal code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zip: Option<String>,
    /// Local offset from UTC in minutes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utcoffset: Option<i32>,
    /// Exchange-specific extensions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext: Option<Ext>,
}

/// Human user of the device (section 3.2.20).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct User {
    /// Exchange-specific user id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Buyer-specific user id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buyeruid: Option<String>,
    /// Deprecated year of birth.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub yob: Option<u32>,
    /// Deprecated gender.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    /// Comma-separated keywords.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keywords: Option<String>,
    /// Keywords as an array.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kwarray: Vec<String>,
    /// Bidder data stored in the exchange cookie.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customdata: Option<String>,
    /// Home location of the user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub geo: Option<Geo>,
    /// Additional user data.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<Data>,
    /// GDPR consent string; opaque, not validated here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consent: Option<String>,
    /// Extended identifiers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub eids: Vec<Eid>,
    /// Exchange-specific extensions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext: Option<Ext>,
}

/// Additional audience data from a provider (section 3.2.21).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Data {
    /// Data provider id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Data provider name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Data segments.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub segment: Vec<Segment>,
    /// Exchange-specific extensions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext: Option<Ext>,
}

/// One data segment (section 3.2.22).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Segment {
    /// Segment id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Segment name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Segment value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Exchange-specific extensions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext: Option<Ext>,
}

/// Structured user agent, as in User-Agent Client Hints (section 3.2.29).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct UserAgent {
    /// Browser brands and versions.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub browsers: Vec<BrandVersion>,
    /// Platform brand and version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<BrandVersion>,
    /// 1 when a mobile experience is preferred.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mobile: Option<u8>,
    /// Device architecture.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// Device bitness.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bitness: Option<String>,
    /// Device model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Source of the data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<i32>,
    /// Exchange-specific extensions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext: Option<Ext>,
}

/// One brand and its version components (section 3.2.30).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BrandVersion {
    /// Brand name (required).
    pub brand: String,
    /// Version components, major first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub version: Vec<String>,
    /// Exchange-specific extensions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext: Option<Ext>,
}

/// Extended identifiers from one source (section 3.2.27); every field is optional.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Eid {
    /// Canonical domain of the entity that inserted the ids.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inserter: Option<String>,
    /// Canonical domain of the id source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Canonical domain of the entity that matched the ids.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matcher: Option<String>,
    /// Match method.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mm: Option<i32>,
    /// User ids from this source.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub uids: Vec<Uid>,
    /// Exchange-specific extensions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext: Option<Ext>,
}

/// One user id of an extended identifier (section 3.2.28).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Uid {
    /// The identifier; may be empty.
    pub id: String,
    /// Type of user agent the id comes from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub atype: Option<i32>,
    /// Exchange-specific extensions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext: Option<Ext>,
}
