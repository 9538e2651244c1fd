//! The small slice of OpenRTB 2.6 a simulated DSP reads and writes: tolerant request structs
//! (unknown fields are ignored) and the bid response encoder.

use serde::{Deserialize, Serialize};

/// Size of the padding added to `adm` by [`crate::Fault::Oversized`]: 10 MiB, so the whole
/// body is over 10 MB whichever way megabytes are counted.
pub const OVERSIZED_ADM_BYTES: usize = 10 * 1024 * 1024;

/// The parts of a bid request the bidder looks at.
#[derive(Deserialize, Debug)]
pub(crate) struct BidRequest {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) imp: Vec<Imp>,
    #[serde(default)]
    pub(crate) tmax: Option<u64>,
}

/// The parts of an impression the bidder looks at.
#[derive(Deserialize, Debug)]
pub(crate) struct Imp {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) bidfloor: Option<f64>,
    #[serde(default)]
    pub(crate) banner: Option<Banner>,
    #[serde(default)]
    pub(crate) video: Option<Sized>,
    #[serde(default)]
    pub(crate) audio: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    pub(crate) native: Option<serde::de::IgnoredAny>,
}

/// A banner object: an explicit size or a list of formats.
#[derive(Deserialize, Debug)]
pub(crate) struct Banner {
    #[serde(default)]
    w: Option<u32>,
    #[serde(default)]
    h: Option<u32>,
    #[serde(default)]
    format: Vec<Sized>,
}

/// Anything with an optional width and height (a banner format, a video player).
#[derive(Deserialize, Debug)]
pub(crate) struct Sized {
    #[serde(default)]
    w: Option<u32>,
    #[serde(default)]
    h: Option<u32>,
}

impl Imp {
    /// The creative size to answer with: banner w/h, else banner format[0], else the video player.
    fn size(&self) -> Option<(u32, u32)> {
        if let Some(b) = &self.banner {
            if let (Some(w), Some(h)) = (b.w, b.h) {
                return Some((w, h));
            }
            if let Some(Sized {
                w: Some(w),
                h: Some(h),
            }) = b.format.first()
            {
                return Some((*w, *h));
            }
        }
        match &self.video {
            Some(Sized {
                w: Some(w),
                h: Some(h),
            }) => Some((*w, *h)),
            _ => None,
        }
    }

    /// OpenRTB `mtype` of the markup this bidder would return for the imp.
    fn mtype(&self) -> Option<u8> {
        if self.banner.is_some() {
            Some(1)
        } else if self.video.is_some() {
            Some(2)
        } else if self.audio.is_some() {
            Some(3)
        } else if self.native.is_some() {
            Some(4)
        } else {
            None
        }
    }
}

#[derive(Serialize)]
struct BidResponse<'a> {
    id: &'a str,
    cur: &'static str,
    seatbid: [SeatBid<'a>; 1],
}

#[derive(Serialize)]
struct SeatBid<'a> {
    seat: &'a str,
    bid: Vec<Bid<'a>>,
}

#[derive(Serialize)]
struct Bid<'a> {
    id: String,
    impid: String,
    price: f64,
    adm: String,
    nurl: String,
    burl: String,
    adomain: [&'a str; 1],
    cid: &'a str,
    crid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    w: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    h: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mtype: Option<u8>,
}

/// One bid the bidder decided to make.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PlannedBid {
    /// Index into the request's `imp` array.
    pub(crate) imp: usize,
    /// Final price, already rounded.
    pub(crate) price: f64,
    /// Sequence number making the bid id unique within this bidder.
    pub(crate) serial: u64,
}

/// Everything that shapes the encoded response besides the request and the bids.
pub(crate) struct Encoding<'a> {
    pub(crate) seat: &'a str,
    pub(crate) cid: &'a str,
    pub(crate) crid: &'a str,
    pub(crate) adomain: &'a str,
    /// `http://host:port` the notice URLs point at.
    pub(crate) base_url: &'a str,
    pub(crate) wrong_impid: bool,
    pub(crate) oversized: bool,
}

/// An impression id guaranteed not to occur in the request.
fn foreign_impid(req: &BidRequest, imp: &Imp) -> String {
    let mut id = format!("not-{}", imp.id);
    while req.imp.iter().any(|i| i.id == id) {
        id.insert_str(0, "not-");
    }
    id
}

/// Stands in `adm` for the oversized padding until the response is encoded.
const OVERSIZED_MARKER: &str = "@@oversized-padding@@";

/// Replaces every marker with `<!--` + [`OVERSIZED_ADM_BYTES`] × `x` + `-->`.
fn pad_oversized(json: Vec<u8>) -> Vec<u8> {
    let marker = OVERSIZED_MARKER.as_bytes();
    let mut out = Vec::with_capacity(json.len() + OVERSIZED_ADM_BYTES + 7);
    let mut rest = &json[..];
    while let Some(at) = rest.windows(marker.len()).position(|w| w == marker) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(b"<!--");
        out.extend_from_slice(padding());
        out.extend_from_slice(b"-->");
        rest = &rest[at + marker.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// The padding, built once (`vec![b'x'; n]` is a memset).
fn padding() -> &'static [u8] {
    static PADDING: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    PADDING.get_or_init(|| vec![b'x'; OVERSIZED_ADM_BYTES])
}

/// Encodes the bid response for `bids` (which must not be empty) as JSON.
pub(crate) fn encode_response(
    req: &BidRequest,
    bids: &[PlannedBid],
    enc: &Encoding<'_>,
) -> Vec<u8> {
    let bid = bids
        .iter()
        .map(|b| {
            let imp = &req.imp[b.imp];
            let size = imp.size();
            let mut adm = format!(
                r#"<div data-seat="{}" data-price="${{AUCTION_PRICE}}" data-auction="${{AUCTION_ID}}"></div>"#,
                enc.seat
            );
            if enc.oversized {
                // A marker that the padding replaces after encoding: escaping
                // 10 MB through serde_json takes most of a second in a debug
                // build, a plain copy of bytes that need no escaping does not.
                adm.push_str(OVERSIZED_MARKER);
            }
            let notice = |path: &str| {
                format!(
                    "{}/{path}?price=${{AUCTION_PRICE}}&auction=${{AUCTION_ID}}&imp=${{AUCTION_IMP_ID}}",
                    enc.base_url
                )
            };
            Bid {
                id: format!("{}-{}", enc.seat, b.serial),
                impid: if enc.wrong_impid {
                    foreign_impid(req, imp)
                } else {
                    imp.id.clone()
                },
                price: b.price,
                adm,
                nurl: notice("win"),
                burl: notice("bill"),
                adomain: [enc.adomain],
                cid: enc.cid,
                crid: enc.crid,
                w: size.map(|s| s.0),
                h: size.map(|s| s.1),
                mtype: imp.mtype(),
            }
        })
        .collect();
    let resp = BidResponse {
        id: &req.id,
        cur: "USD",
        seatbid: [SeatBid {
            seat: enc.seat,
            bid,
        }],
    };
    // Serializing plain strings and finite numbers into a Vec cannot fail.
    let json = serde_json::to_vec(&resp).unwrap_or_default();
    if enc.oversized {
        return pad_oversized(json);
    }
    json
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerant_request_parsing_and_sizes() {
        let req: BidRequest = serde_json::from_str(
            r#"{"id":"r1","tmax":120,"unknown":{"x":1},"site":{"domain":"a.example"},
                "imp":[{"id":"1","bidfloor":0.5,"banner":{"format":[{"w":300,"h":250}]}},
                       {"id":"2","banner":{"w":728,"h":90}},
                       {"id":"3","video":{"w":640,"h":480,"mimes":["video/mp4"]}},
                       {"id":"4","native":{"request":"{}"}}]}"#,
        )
        .unwrap();
        assert_eq!(req.tmax, Some(120));
        let sizes: Vec<_> = req.imp.iter().map(Imp::size).collect();
        assert_eq!(
            sizes,
            [Some((300, 250)), Some((728, 90)), Some((640, 480)), None]
        );
        let mtypes: Vec<_> = req.imp.iter().map(Imp::mtype).collect();
        assert_eq!(mtypes, [Some(1), Some(1), Some(2), Some(4)]);
    }

    #[test]
    fn foreign_impid_avoids_collisions() {
        let req: BidRequest =
            serde_json::from_str(r#"{"id":"r","imp":[{"id":"a"},{"id":"not-a"}]}"#).unwrap();
        assert_eq!(foreign_impid(&req, &req.imp[0]), "not-not-a");
    }
}
