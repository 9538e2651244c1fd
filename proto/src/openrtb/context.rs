//! Distribution channel objects (OpenRTB 2.6 sections 3.2.13-3.2.17, 3.2.23-3.2.24, 3.2.30): `Site`, `App`, `Dooh`, `Publisher`, `Content`, `Producer`, `Network`, `Channel`.

use serde::{Deserialize, Serialize};

use super::{Data, Ext};

/// Website on which the impressions are shown (section 3.2.13).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Site {
    /// Exchange-specific site id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Site name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Site domain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Taxonomy of `cat`, `sectioncat` and `pagecat`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cattax: Option<i32>,
    /// Content categories of the site.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cat: Vec<String>,
    /// Content categories of the current section.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sectioncat: Vec<String>,
    /// Content categories of the current page.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pagecat: Vec<String>,
    /// URL of the page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
    /// Referrer URL.
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub r#ref: Option<String>,
    /// Search string that led to the page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<String>,
    /// 1 when the site is mobile optimised.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mobile: Option<u8>,
    /// 1 when the site has a privacy policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub privacypolicy: Option<u8>,
    /// Publisher of the site.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publisher: Option<Publisher>,
    /// Content of the site.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    /// Comma-separated keywords.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keywords: Option<String>,
    /// Keywords as an array.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kwarray: Vec<String>,
    /// Domain of the inventory partner (ads.txt/app-ads.txt).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inventorypartnerdomain: Option<String>,
    /// Exchange-specific extensions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext: Option<Ext>,
}

/// Application in which the impressions are shown (section 3.2.14).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct App {
    /// Exchange-specific app id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// App name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Store bundle or package name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
    /// App domain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// App store URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storeurl: Option<String>,
    /// Taxonomy of `cat`, `sectioncat` and `pagecat`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cattax: Option<i32>,
    /// Content categories of the app.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cat: Vec<String>,
    /// Content categories of the current section.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sectioncat: Vec<String>,
    /// Content categories of the current view.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pagecat: Vec<String>,
    /// App version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ver: Option<String>,
    /// 1 when the app has a privacy policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub privacypolicy: Option<u8>,
    /// 1 when the app is a paid version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paid: Option<u8>,
    /// Publisher of the app.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publisher: Option<Publisher>,
    /// Content of the app.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    /// Comma-separated keywords.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keywords: Option<String>,
    /// Keywords as an array.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kwarray: Vec<String>,
    /// Domain of the inventory partner (ads.txt/app-ads.txt).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inventorypartnerdomain: Option<String>,
    /// Exchange-specific extensions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext: Option<Ext>,
}

/// Digital out-of-home venue (section 3.2.30).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Dooh {
    /// Exchange-specific placement id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Placement name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Venue types.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub venuetype: Vec<String>,
    /// Taxonomy of `venuetype`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub venuetypetax: Option<i32>,
    /// Publisher of the placement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publisher: Option<Publisher>,
    /// Domain of the placement owner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Comma-separated keywords.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keywords: Option<String>,
    /// Content shown in the venue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    /// Exchange-specific extensions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext: Option<Ext>,
}

/// Publisher of the site, app or venue (section 3.2.15).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Publisher {
    /// Exchange-specific publisher id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Publisher name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Taxonomy of `cat`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cattax: Option<i32>,
    /// Content categories of the publisher.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cat: Vec<String>,
    /// Publisher domain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Exchange-specific extensions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext: Option<Ext>,
}

/// Content in which the impression appears (section 3.2.16).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Content {
    /// Content id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Episode number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub episode: Option<u32>,
    /// Content title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Content series.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series: Option<String>,
    /// Content season.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub season: Option<String>,
    /// Artist credited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artist: Option<String>,
    /// Genre.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub genre: Option<String>,
    /// Taxonomy of `genres`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gtax: Option<i32>,
    /// Genre ids.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub genres: Vec<String>,
    /// Album.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub album: Option<String>,
    /// International Standard Recording Code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub isrc: Option<String>,
    /// Producer of the content.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub producer: Option<Producer>,
    /// URL of the content.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Taxonomy of `cat`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cattax: Option<i32>,
    /// Content categories.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cat: Vec<String>,
    /// Production quality.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prodq: Option<i32>,
    /// Type of content.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<i32>,
    /// Content rating.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contentrating: Option<String>,
    /// User rating.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub userrating: Option<String>,
    /// Media rating per IQG guidelines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qagmediarating: Option<i32>,
    /// Comma-separated keywords.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keywords: Option<String>,
    /// Keywords as an array.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kwarray: Vec<String>,
    /// 1 when the content is live.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub livestream: Option<u8>,
    /// 1 when the source is direct.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sourcerelationship: Option<u8>,
    /// Length of the content in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub len: Option<u32>,
    /// Content language (ISO-639-1-alpha-2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Content language (IETF BCP 47).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub langb: Option<String>,
    /// 1 when the content is embeddable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embeddable: Option<u8>,
    /// Additional content data.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<Data>,
    /// Network the content is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
    /// Channel the content is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    /// Exchange-specific extensions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext: Option<Ext>,
}

/// Producer of the content (section 3.2.17).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Producer {
    /// Producer id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Producer name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Taxonomy of `cat`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cattax: Option<i32>,
    /// Content categories of the producer.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cat: Vec<String>,
    /// Producer domain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Exchange-specific extensions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext: Option<Ext>,
}

/// Network the content is on, e.g. a TV network (section 3.2.23).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Network {
    /// Network id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Network name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Network domain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Exchange-specific extensions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext: Option<Ext>,
}

/// Channel the content is on, e.g. a TV channel (section 3.2.24).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Channel {
    /// Channel id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Channel name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Channel domain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Exchange-specific extensions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext: Option<Ext>,
}
