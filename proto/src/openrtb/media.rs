//! Media offer objects of an impression (OpenRTB 2.6 sections 3.2.6-3.2.10): `Banner`, `Format`, `Video`, `Audio`, `Native`.

use serde::{Deserialize, Serialize};

use super::{DurFloors, Ext};
use crate::Micros;

/// Banner or rich-media offer (section 3.2.6); an empty banner is valid.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Banner {
    /// Allowed sizes, in order of preference.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub format: Vec<Format>,
    /// Exact width in device-independent pixels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub w: Option<u32>,
    /// Exact height in device-independent pixels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub h: Option<u32>,
    /// Blocked banner types.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub btype: Vec<i32>,
    /// Blocked creative attributes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub battr: Vec<i32>,
    /// Ad position on screen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pos: Option<i32>,
    /// Supported content MIME types.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mimes: Vec<String>,
    /// 1 when the banner is in the top frame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topframe: Option<u8>,
    /// Allowed expansion directions.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expdir: Vec<i32>,
    /// Supported API frameworks.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub api: Vec<i32>,
    /// Banner id, to tie companions to a video.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Companion rendering mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vcm: Option<u8>,
    /// Exchange-specific extensions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext: Option<Ext>,
}

/// One allowed banner size (section 3.2.10).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Format {
    /// Width in device-independent pixels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub w: Option<u32>,
    /// Height in device-independent pixels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub h: Option<u32>,
    /// Relative width for flexible sizes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wratio: Option<u32>,
    /// Relative height for flexible sizes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hratio: Option<u32>,
    /// Minimum width for flexible sizes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wmin: Option<u32>,
    /// Exchange-specific extensions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext: Option<Ext>,
}

/// Video offer (section 3.2.7).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Video {
    /// Supported MIME types (required, non-empty).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mimes: Vec<String>,
    /// Minimum duration in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minduration: Option<u32>,
    /// Maximum duration in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maxduration: Option<u32>,
    /// Start delay in seconds, or a generic position code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub startdelay: Option<i32>,
    /// Maximum number of ads in a dynamic pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maxseq: Option<u32>,
    /// Total pod duration in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub poddur: Option<u32>,
    /// Supported video protocols.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub protocols: Vec<i32>,
    /// Player width in device-independent pixels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub w: Option<u32>,
    /// Player height in device-independent pixels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub h: Option<u32>,
    /// Pod identifier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub podid: Option<String>,
    /// Sequence of the pod within the content stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub podseq: Option<i32>,
    /// Exact acceptable durations in seconds.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rqddurs: Vec<u32>,
    /// Deprecated placement type (use `plcmt`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<i32>,
    /// Video placement type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plcmt: Option<i32>,
    /// Linearity of the impression.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linearity: Option<i32>,
    /// 1 when the player allows skipping.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip: Option<u8>,
    /// Minimum duration for skippability in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipmin: Option<u32>,
    /// Seconds before skipping is enabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipafter: Option<u32>,
    /// Deprecated sequence number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence: Option<i32>,
    /// Slot position within the pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slotinpod: Option<i32>,
    /// Minimum CPM per second, in micros.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mincpmpersec: Option<Micros>,
    /// Blocked creative attributes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub battr: Vec<i32>,
    /// Maximum extended duration in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maxextended: Option<i32>,
    /// Minimum bit rate in Kbps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minbitrate: Option<u32>,
    /// Maximum bit rate in Kbps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maxbitrate: Option<u32>,
    /// 1 when letter-boxing is allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boxingallowed: Option<u8>,
    /// Allowed playback methods.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub playbackmethod: Vec<i32>,
    /// Event that ends playback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub playbackend: Option<i32>,
    /// Supported delivery methods.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub delivery: Vec<i32>,
    /// Ad position on screen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pos: Option<i32>,
    /// Companion banners.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub companionad: Vec<Banner>,
    /// Supported API frameworks.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub api: Vec<i32>,
    /// Supported companion types.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub companiontype: Vec<i32>,
    /// De-duplication signals for the pod.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub poddedupe: Vec<i32>,
    /// Duration-based floors.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub durfloors: Vec<DurFloors>,
    /// Exchange-specific extensions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext: Option<Ext>,
}

/// Audio offer (section 3.2.8).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Audio {
    /// Supported MIME types (required, non-empty).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mimes: Vec<String>,
    /// Minimum duration in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minduration: Option<u32>,
    /// Maximum duration in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maxduration: Option<u32>,
    /// Total pod duration in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub poddur: Option<u32>,
    /// Supported audio protocols.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub protocols: Vec<i32>,
    /// Start delay in seconds, or a generic position code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub startdelay: Option<i32>,
    /// Exact acceptable durations in seconds.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rqddurs: Vec<u32>,
    /// Pod identifier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub podid: Option<String>,
    /// Sequence of the pod within the content stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub podseq: Option<i32>,
    /// Deprecated sequence number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence: Option<i32>,
    /// Slot position within the pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slotinpod: Option<i32>,
    /// Minimum CPM per second, in micros.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mincpmpersec: Option<Micros>,
    /// Blocked creative attributes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub battr: Vec<i32>,
    /// Maximum extended duration in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maxextended: Option<i32>,
    /// Minimum bit rate in Kbps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minbitrate: Option<u32>,
    /// Maximum bit rate in Kbps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maxbitrate: Option<u32>,
    /// Supported delivery methods.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub delivery: Vec<i32>,
    /// Companion banners.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub companionad: Vec<Banner>,
    /// Supported API frameworks.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub api: Vec<i32>,
    /// Supported companion types.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub companiontype: Vec<i32>,
    /// Maximum number of ads in a dynamic pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maxseq: Option<u32>,
    /// Type of audio feed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feed: Option<i32>,
    /// 1 when the ad is stitched with content.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stitched: Option<u8>,
    /// Volume normalisation mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nvol: Option<i32>,
    /// Duration-based floors.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub durfloors: Vec<DurFloors>,
    /// Exchange-specific extensions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext: Option<Ext>,
}

/// Native offer (section 3.2.9).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Native {
    /// Native markup request, a JSON document carried as a string (required).
    pub request: String,
    /// Version of the Native Ad Specification.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ver: Option<String>,
    /// Supported API frameworks.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub api: Vec<i32>,
    /// Blocked creative attributes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub battr: Vec<i32>,
    /// Exchange-specific extensions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext: Option<Ext>,
}
