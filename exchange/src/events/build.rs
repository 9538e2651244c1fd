//! Building the `auction-results` event from what the auction produced.
//!
//! Takes exactly what `outcome::build` takes, so the event and the
//! publisher's answer describe the same auction: the clearing price in the
//! event is the `price` the publisher was sent.

use rtb_proto::events::{
    account_key, AuctionResult, BidResult, BidderCallStatus, BidderResult, ImpResult, Leased,
    Winner, AUCTION_RESULT_SCHEMA_VERSION,
};

use crate::outcome::{
    BidderStatus, Input, NONBID_ERROR, NONBID_INVALID, NONBID_NOT_AWAITED, NONBID_TIMEOUT,
};

/// Builds the event of one auction; `leased` says per imp which budget
/// leases paid for its win (empty when the exchange keeps no budgets: then
/// every win is marked as paid from none), `ts_ms` is the settle time (ms since epoch),
/// `auction_id` the exchange's id for it, `instance` the exchange instance
/// whose budget leases paid for its wins.
///
/// Auctions with no winner produce an event too (with no winners), so the
/// stream is a complete record of auctions; the ledger skips imps without one.
pub fn auction_result(
    input: &Input<'_>,
    leased: &[Leased],
    ts_ms: i64,
    auction_id: String,
    instance: &str,
) -> AuctionResult {
    let request = input.request;
    let (site_id, app_id, publisher) = match (&request.site, &request.app) {
        (Some(s), _) => (s.id.clone(), None, s.publisher.as_ref()),
        (None, Some(a)) => (None, a.id.clone(), a.publisher.as_ref()),
        (None, None) => (None, None, None),
    };
    let mut imps: Vec<ImpResult> = request
        .imp
        .iter()
        .map(|imp| ImpResult {
            imp_id: imp.id.clone(),
            winner: None,
            bids: Vec::new(),
        })
        .collect();
    // The auction grouped the offers by imp; bids for unknown imps are in
    // no group (the response's seatnonbid has them).
    for (i, imp) in imps.iter_mut().enumerate() {
        let group = input.result.offers_of(i);
        imp.bids.reserve_exact(group.len());
        for &offer in group {
            let (d, s, b) = input.sources[offer];
            let BidderStatus::Bids(resp) = &input.decoded[d].status else {
                continue;
            };
            imp.bids.push(BidResult {
                seat: input.bidder_names[input.decoded[d].bidder].to_owned(),
                price_micros: resp.seatbid[s].bid[b].price,
                loss_reason: input.result.reasons[offer].code(),
            });
        }
    }
    for (i, (imp, win)) in imps.iter_mut().zip(&input.result.wins).enumerate() {
        let Some(win) = win else { continue };
        let (d, s, b) = input.sources[win.offer];
        let BidderStatus::Bids(resp) = &input.decoded[d].status else {
            continue;
        };
        let bid = &resp.seatbid[s].bid[b];
        let seat = input.bidder_names[input.decoded[d].bidder];
        imp.winner = Some(Winner {
            seat: seat.to_owned(),
            cid: bid.cid.clone(),
            crid: bid.crid.clone(),
            account: account_key(seat, bid.cid.as_deref()),
            bid_micros: bid.price,
            clearing_micros: win.clearing,
            leased: Some(leased.get(i).copied().unwrap_or(Leased::NONE)),
        });
    }
    let bidders = input
        .decoded
        .iter()
        .map(|d| {
            let (status, nonbid_code) = match &d.status {
                BidderStatus::Bids(_) => (BidderCallStatus::Bids, None),
                BidderStatus::NoBid => (BidderCallStatus::NoBid, None),
                BidderStatus::Timeout => (BidderCallStatus::Timeout, Some(NONBID_TIMEOUT)),
                BidderStatus::NotAwaited(_) => {
                    (BidderCallStatus::NotAwaited, Some(NONBID_NOT_AWAITED))
                }
                BidderStatus::Invalid(_) => (BidderCallStatus::Invalid, Some(NONBID_INVALID)),
                BidderStatus::Error(_) => (BidderCallStatus::Error, Some(NONBID_ERROR)),
                BidderStatus::Skipped(skip) => (BidderCallStatus::NotCalled, Some(skip.code())),
            };
            BidderResult {
                seat: input.bidder_names[d.bidder].to_owned(),
                status,
                latency_ms: d.latency.as_millis() as u64,
                nonbid_code,
            }
        })
        .collect();
    let account = imps
        .iter()
        .find_map(|i| i.winner.as_ref().map(|w| w.account.clone()));
    AuctionResult {
        schema_version: AUCTION_RESULT_SCHEMA_VERSION,
        auction_id,
        request_id: Some(request.id.clone()),
        exchange_instance: Some(instance.to_owned()),
        ts_ms,
        publisher_id: publisher.and_then(|p| p.id.clone()),
        site_id,
        app_id,
        currency: input.currency.to_owned(),
        account,
        imps,
        bidders,
    }
}

pub use rtb_ledger::store::now_ms;
