//! Turning the auction's result into the publisher's BidResponse.
//!
//! The one place where bidder outcomes (timeouts, invalid answers, lost bids)
//! become OpenRTB codes: winners are returned with `price` set to the clearing
//! price and their macros substituted; everybody else appears in
//! `ext.seatnonbid` with a status code, and every bidder's response time in
//! `ext.responsetimemillis`.

use std::time::Duration;

use rtb_proto::encode_response;
use rtb_proto::openrtb::{BidRequest, BidResponse, Ext, SeatBid};
use serde_json::{json, Map, Value};

use crate::auction::{LossReason, Outcome};
use crate::macros::{substitute, MacroValues};

/// Seat-non-bid status for a bidder that did not answer before the deadline
/// (Prebid's seat-non-bid code for "timed out").
pub const NONBID_TIMEOUT: u16 = 101;
/// Seat-non-bid status for a bidder whose answer is not a valid BidResponse
/// (OpenRTB loss reason 3, "invalid bid response"; the `reason` says why).
pub const NONBID_INVALID: u16 = 3;
/// Seat-non-bid status for an unreachable bidder or a broken connection
/// (OpenRTB loss reason 1, "internal error").
pub const NONBID_ERROR: u16 = 1;

/// Seat-non-bid status for a bidder the exchange did not call because its
/// circuit is open or it is at its concurrency or QPS limit. OpenRTB leaves
/// loss reasons from 500 up to the exchange; the `reason` says which.
pub const NONBID_NOT_CALLED: u16 = 500;
/// Seat-non-bid status for a bidder the exchange did not call because its
/// budget lease on this instance is empty (exchange-specific, like 500).
pub const NONBID_BUDGET: u16 = 501;

/// Seat-non-bid status for a bidder the auction stopped waiting for before
/// the deadline: a secondary bidder once every primary had answered, or one
/// the adaptive wait judged unlikely to answer in time (exchange-specific,
/// like 500; the `reason` says which).
pub const NONBID_NOT_AWAITED: u16 = 502;

/// What became of one bidder's call.
#[derive(Debug)]
pub enum BidderStatus {
    /// A valid response with at least one bid.
    Bids(BidResponse),
    /// 204, or a response with no bids.
    NoBid,
    /// No answer in time.
    Timeout,
    /// An answer that is not a valid BidResponse (loss reason 3); the text says why.
    Invalid(String),
    /// The call failed (connection refused, reset); the text says why.
    Error(String),
    /// Not called (circuit open, concurrency or QPS limit, budget).
    Skipped(crate::fanout::Skip),
    /// Called, but the auction stopped waiting before its answer came.
    NotAwaited(crate::fanout::NotAwaited),
}

/// A bidder's answer after decoding.
#[derive(Debug)]
pub struct Decoded {
    /// Index of the bidder.
    pub bidder: usize,
    /// Arrival order.
    pub arrival: u32,
    /// Response time (the deadline for timeouts).
    pub latency: Duration,
    /// The call failed in a way that counts against the bidder's circuit
    /// (no answer, transport error, 5xx).
    pub failed: bool,
    /// The outcome.
    pub status: BidderStatus,
}

/// Everything [`build`] needs.
#[derive(Debug)]
pub struct Input<'a> {
    /// The publisher's request.
    pub request: &'a BidRequest,
    /// Auction currency.
    pub currency: &'a str,
    /// The request's time budget (tmax after clamping).
    pub budget: Duration,
    /// Bidder names by index.
    pub bidder_names: &'a [&'a str],
    /// Every bidder's answer.
    pub decoded: &'a [Decoded],
    /// For each offer given to the auction: (decoded index, seatbid index, bid index).
    pub sources: &'a [(usize, usize, usize)],
    /// The auction's result.
    pub result: &'a Outcome,
    /// Leave `nurl` out of the response and return it as a notice to fire instead.
    pub strip_nurl: bool,
}

/// The publisher's response and the win notices to fire.
#[derive(Debug)]
pub struct Built {
    /// BidResponse JSON, or `None` when nothing won (204).
    pub response: Option<Vec<u8>>,
    /// Substituted `nurl`s of the winners, to fire after answering.
    pub notices: Vec<String>,
    /// Time spent encoding the response JSON.
    pub encode_time: Duration,
}

/// Builds the response.
pub fn build(input: Input<'_>) -> Built {
    let Input {
        request,
        currency,
        decoded,
        sources,
        result,
        ..
    } = input;
    let mut notices = Vec::new();
    let mut seatbids: Vec<SeatBid> = Vec::new();
    // Bidder index → its seatbid's index in `seatbids`: one lookup per win.
    let mut seatbid_of: Vec<Option<usize>> = vec![None; input.bidder_names.len()];
    for win in result.wins.iter().flatten() {
        let (d, s, b) = sources[win.offer];
        let BidderStatus::Bids(resp) = &decoded[d].status else {
            continue;
        };
        let seat = input.bidder_names[decoded[d].bidder];
        let bid = &resp.seatbid[s].bid[b];
        let values = MacroValues {
            auction_id: &request.id,
            bid_id: resp.bidid.as_deref().unwrap_or(""),
            imp_id: &bid.impid,
            seat_id: seat,
            ad_id: bid.adid.as_deref().unwrap_or(""),
            price: win.clearing,
            currency,
            loss: LossReason::Won.code(),
            min_to_win: win.clearing,
        };
        let sub = |field: &Option<String>| {
            field
                .as_deref()
                .map(|t| substitute(t, &values).into_owned())
        };
        let mut out = bid.clone();
        out.price = win.clearing;
        out.adm = sub(&bid.adm);
        // URLs get their values percent-encoded; adm gets them raw.
        let sub_url = |f: &Option<String>| {
            f.as_deref()
                .map(|t| crate::macros::substitute_url(t, &values).into_owned())
        };
        out.burl = sub_url(&bid.burl);
        out.lurl = sub_url(&bid.lurl);
        out.nurl = sub_url(&bid.nurl);
        if input.strip_nurl {
            notices.extend(out.nurl.take());
        }
        match seatbid_of[decoded[d].bidder] {
            Some(at) => seatbids[at].bid.push(out),
            None => {
                seatbid_of[decoded[d].bidder] = Some(seatbids.len());
                seatbids.push(SeatBid {
                    bid: vec![out],
                    seat: Some(seat.to_owned()),
                    ..SeatBid::default()
                });
            }
        }
    }
    if seatbids.is_empty() {
        return Built {
            response: None,
            notices,
            encode_time: Duration::ZERO,
        };
    }
    let response = BidResponse {
        id: request.id.clone(),
        seatbid: seatbids,
        cur: Some(currency.to_owned()),
        ext: Some(ext(&input)),
        ..BidResponse::default()
    };
    let started = std::time::Instant::now();
    let mut out = Vec::with_capacity(1024);
    encode_response(&response, &mut out);
    Built {
        response: Some(out),
        notices,
        encode_time: started.elapsed(),
    }
}

/// `ext.responsetimemillis`, `ext.seatnonbid` and `ext.tmaxrequest`.
fn ext(input: &Input<'_>) -> Ext {
    let mut times = Map::new();
    // Bidder index → its non-bids; `order` lists the bidders in the order
    // of their first non-bid, the order of `ext.seatnonbid`.
    let mut nonbids: Vec<Vec<Value>> = vec![Vec::new(); input.bidder_names.len()];
    let mut order: Vec<usize> = Vec::new();
    let mut push = |bidder: usize, entry: Value| {
        if nonbids[bidder].is_empty() {
            order.push(bidder);
        }
        nonbids[bidder].push(entry);
    };
    for d in input.decoded {
        let name = input.bidder_names[d.bidder];
        if !matches!(d.status, BidderStatus::Skipped(_)) {
            times.insert(name.to_owned(), json!(d.latency.as_millis() as u64));
        }
        let (code, reason) = match &d.status {
            BidderStatus::Skipped(why) => (why.code(), why.reason()),
            BidderStatus::Timeout => (NONBID_TIMEOUT, "timeout"),
            BidderStatus::NotAwaited(why) => (NONBID_NOT_AWAITED, why.reason()),
            BidderStatus::Invalid(why) => (NONBID_INVALID, why.as_str()),
            BidderStatus::Error(why) => (NONBID_ERROR, why.as_str()),
            BidderStatus::Bids(_) | BidderStatus::NoBid => continue,
        };
        for imp in &input.request.imp {
            push(
                d.bidder,
                json!({"impid": imp.id, "statuscode": code, "reason": reason}),
            );
        }
    }
    for (offer, reason) in input.result.reasons.iter().enumerate() {
        if *reason == LossReason::Won {
            continue;
        }
        let (d, s, b) = input.sources[offer];
        let BidderStatus::Bids(resp) = &input.decoded[d].status else {
            continue;
        };
        let bid = &resp.seatbid[s].bid[b];
        push(
            input.decoded[d].bidder,
            json!({"impid": bid.impid, "statuscode": reason.code(), "price": bid.price,
                   "reason": reason.text()}),
        );
    }
    let seatnonbid: Vec<Value> = order
        .into_iter()
        .map(|b| json!({"seat": input.bidder_names[b], "nonbid": std::mem::take(&mut nonbids[b])}))
        .collect();
    let mut ext = Map::new();
    ext.insert("responsetimemillis".into(), Value::Object(times));
    ext.insert("seatnonbid".into(), Value::Array(seatnonbid));
    ext.insert("tmaxrequest".into(), json!(input.budget.as_millis() as u64));
    Ext(ext)
}
