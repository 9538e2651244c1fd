//! OpenRTB 2.6 object model: every object of sections 3 (bid request) and 4 (bid response).
//!
//! Fields follow the spec names. Optional fields are `Option` or possibly empty `Vec`s and
//! are omitted when encoding; unknown fields are ignored on decode. Quantities that cannot be
//! negative are unsigned so a negative value fails decoding; money is [`crate::Micros`].

mod context;
mod device;
mod imp;
mod media;
mod request;
mod response;

pub use context::{App, Channel, Content, Dooh, Network, Producer, Publisher, Site};
pub use device::{BrandVersion, Data, Device, Eid, Geo, Segment, Uid, User, UserAgent};
pub use imp::{Deal, DurFloors, Imp, Metric, Pmp, Qty, RefSettings, Refresh};
pub use media::{Audio, Banner, Format, Native, Video};
pub use request::{BidRequest, Regs, Source, SupplyChain, SupplyChainNode};
pub use response::{Bid, BidResponse, SeatBid};

use serde::{Deserialize, Serialize};

/// Opaque extension object (`ext`), kept as parsed JSON and passed through on encode.
///
/// Must be a JSON object: any other JSON type fails decoding.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Ext(pub serde_json::Map<String, serde_json::Value>);
