//! From bidder answers to awarded wins: the request's rules for the auction,
//! the offers (with the caps on bids per answer and per imp), and awarding
//! the wins — paid from budget leases, and only before the deadline.
//!
//! Everything here is linear in imps + bids: imps are looked up by id in a
//! map built once, and a win its leases cannot pay reprices only its imp.

use std::collections::HashMap;

use rtb_proto::openrtb::{BidRequest, Imp};
use rtb_proto::Micros;
use tokio::time::Instant;

use super::DEFAULT_CURRENCY;
use crate::auction::{
    oversized, AuctionType, DealRule, ImpRule, Invalid, LossReason, Offer, Outcome, Rules,
};
use crate::config::AuctionConfig;
use crate::outcome::{BidderStatus, Decoded};

/// Requests and answers (bytes, together) from this size on are decoded,
/// patched for the bidders, auctioned and encoded under [`off_worker`]. Why
/// 64 KiB: a debug build takes tens of milliseconds over that much JSON, an
/// optimized one about a tenth of a millisecond, so below it handing the
/// worker over would cost more than it saves.
pub(crate) const HEAVY_BYTES: usize = 64 * 1024;

/// Runs `f` (CPU work) on this thread, but when `heavy` first hands this
/// runtime worker's other tasks to another thread (`block_in_place`): a
/// 10,000-imp auction would otherwise hold up the auctions queued behind it
/// on its worker (including the one in the worker's LIFO slot, which other
/// workers cannot steal) past their deadlines. A current-thread runtime has
/// no other worker: there `f` just runs.
pub(crate) fn off_worker<T>(heavy: bool, f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let multi =
        Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread);
    if heavy && multi {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

/// The auction's rules for `request`.
pub(crate) fn rules<'a>(request: &'a BidRequest, config: &AuctionConfig) -> Rules<'a> {
    Rules {
        auction_type: AuctionType::from_at(request.at.and_then(|at| u8::try_from(at).ok())),
        imps: request.imp.iter().map(imp_rule).collect(),
        bcat: &request.bcat,
        badv: &request.badv,
        bapp: &request.bapp,
        bseat: &request.bseat,
        wseat: &request.wseat,
        max_bid_price: config.max_bid_price,
    }
}

fn imp_rule(imp: &Imp) -> ImpRule<'_> {
    let pmp = imp.pmp.as_ref();
    let mut deals: Vec<DealRule<'_>> = pmp
        .map(|p| {
            p.deals
                .iter()
                .map(|d| DealRule {
                    id: &d.id,
                    floor: d.bidfloor,
                    wseat: &d.wseat,
                    wadomain: &d.wadomain,
                    at: AuctionType::from_deal_at(d.at),
                })
                .collect()
        })
        .unwrap_or_default();
    // Sorted for the auction's binary search; stable, so of two deals with
    // one id the first stays first.
    deals.sort_by(|a, b| a.id.cmp(b.id));
    ImpRule {
        id: &imp.id,
        floor: imp.bidfloor,
        private_auction: pmp.and_then(|p| p.private_auction) == Some(1),
        deals,
        battr: [
            imp.banner.as_ref().map_or(&[][..], |b| &b.battr),
            imp.video.as_ref().map_or(&[][..], |v| &v.battr),
            imp.audio.as_ref().map_or(&[][..], |a| &a.battr),
            imp.native.as_ref().map_or(&[][..], |n| &n.battr),
        ],
    }
}

/// Floors (the imps' and their deals') must be in the auction currency: the
/// exchange has no conversion rates. A floor without a currency is in USD,
/// except a deal's, which is in its imp's `bidfloorcur` when the imp has one
/// (as the IAB's own examples write deals: a GBP imp with deals that name no
/// currency). A fixed-price deal (`at=3`) needs a floor: it is the price.
pub(crate) fn check_floors(request: &BidRequest, currency: &str) -> Result<(), String> {
    /// The floor's currency when it is set and not the auction's.
    fn other<'c>(cur: Option<&'c str>, floor: Micros, currency: &str) -> Option<&'c str> {
        let cur = cur.unwrap_or(DEFAULT_CURRENCY);
        (floor.0 > 0 && !cur.eq_ignore_ascii_case(currency)).then_some(cur)
    }
    let differs = |field: String, cur: &str| {
        format!(
            "{field}: floor currency {cur} differs from the auction currency {currency} \
             (cur[0]) and the exchange has no conversion rates"
        )
    };
    for (i, imp) in request.imp.iter().enumerate() {
        if let Some(cur) = other(imp.bidfloorcur.as_deref(), imp.bidfloor, currency) {
            return Err(differs(format!("imp[{i}].bidfloorcur"), cur));
        }
        let deals = imp.pmp.iter().flat_map(|p| p.deals.iter());
        for (j, deal) in deals.enumerate() {
            if let Some(cur) = other(
                deal.bidfloorcur.as_deref().or(imp.bidfloorcur.as_deref()),
                deal.bidfloor,
                currency,
            ) {
                return Err(differs(format!("imp[{i}].pmp.deals[{j}].bidfloorcur"), cur));
            }
            if deal.at == Some(3) && deal.bidfloor.0 <= 0 {
                return Err(format!(
                    "imp[{i}].pmp.deals[{j}].bidfloor: a fixed-price deal (at=3) needs a floor, \
                     which is its price"
                ));
            }
        }
    }
    Ok(())
}

/// Where an offer's bid is: (decoded answer, seatbid, bid) indices.
pub(crate) type Source = (usize, usize, usize);

/// Turns every bid of the answers into an offer, in answer order. An
/// answer's bids past `max_bids_per_response`, and a bidder's bids on one
/// imp past `max_bids_per_seat_per_imp`, are offers the auction rejects
/// (loss reason 3, with the cap's name); the first ones in the answer count.
pub(crate) fn offers<'a>(
    request: &BidRequest,
    currency: &str,
    names: &[&'a str],
    decoded: &'a [Decoded],
    config: &AuctionConfig,
) -> (Vec<Offer<'a>>, Vec<Source>) {
    let index: HashMap<&str, usize> = request
        .imp
        .iter()
        .enumerate()
        .map(|(i, imp)| (imp.id.as_str(), i))
        .collect();
    // Bids of the current answer per imp; `touched` resets them after it.
    let mut per_imp = vec![0usize; request.imp.len()];
    let mut touched = Vec::new();
    let mut offers = Vec::new();
    let mut sources = Vec::new();
    for (d, answer) in decoded.iter().enumerate() {
        let BidderStatus::Bids(resp) = &answer.status else {
            continue;
        };
        let seat = names[answer.bidder];
        let currency_ok = resp.cur.as_deref().unwrap_or(DEFAULT_CURRENCY) == currency;
        let mut count = 0usize;
        for (s, seatbid) in resp.seatbid.iter().enumerate() {
            for (b, bid) in seatbid.bid.iter().enumerate() {
                count += 1;
                let imp = index.get(bid.impid.as_str()).copied();
                let rejected = if count > config.max_bids_per_response {
                    Some(Invalid::TooManyBidsInResponse)
                } else if let Some(field) = oversized(bid) {
                    Some(Invalid::TooLong(field))
                } else if let Some(i) = imp {
                    per_imp[i] += 1;
                    if per_imp[i] == 1 {
                        touched.push(i);
                    }
                    (per_imp[i] > config.max_bids_per_seat_per_imp)
                        .then_some(Invalid::TooManyBidsOnImp)
                } else {
                    None
                };
                offers.push(Offer {
                    seat,
                    claimed_seat: seatbid.seat.as_deref(),
                    arrival: answer.arrival,
                    imp,
                    price: bid.price,
                    currency_ok,
                    adomain: &bid.adomain,
                    cat: &bid.cat,
                    attr: &bid.attr,
                    mtype: bid.mtype,
                    bundle: bid.bundle.as_deref(),
                    dealid: bid.dealid.as_deref(),
                    rejected,
                    unpaid: None,
                });
                sources.push((d, s, b));
            }
        }
        for i in touched.drain(..) {
            per_imp[i] = 0;
        }
    }
    (offers, sources)
}

/// Awards the auction's wins, imp by imp, each only if the deadline has not
/// passed (`now()` is read before each) and `pay` (the budget leases) takes
/// its clearing price. A winner `pay` refuses loses with the reason `pay`
/// gives (1000 budget exhausted, 1001 out of flight, 1002 paced) and
/// its imp alone is priced again, so the next bid wins, priced against
/// what is left; each refusal removes one offer, so this ends. Once the
/// deadline has passed, this win and every later one are withdrawn (loss
/// reason 2): nothing is awarded, debited or notified late. Wins awarded
/// before stand.
pub(crate) fn award(
    rules: &Rules<'_>,
    offers: &mut [Offer<'_>],
    result: &mut Outcome,
    deadline: Instant,
    now: impl Fn() -> Instant,
    mut pay: impl FnMut(usize, &Offer<'_>, Micros) -> Result<(), LossReason>,
) {
    for imp in 0..result.wins.len() {
        while let Some(win) = result.wins[imp] {
            if now() >= deadline {
                for late in imp..result.wins.len() {
                    result.expire(late);
                }
                return;
            }
            match pay(win.offer, &offers[win.offer], win.clearing) {
                Ok(()) => break,
                Err(why) => offers[win.offer].unpaid = Some(why),
            }
            result.rerun(rules, offers, imp);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::time::Duration;

    use super::*;
    use crate::auction::{run, LossReason};

    fn offer(seat: &str, imp: usize, price: i64) -> Offer<'_> {
        Offer {
            seat,
            claimed_seat: None,
            arrival: 0,
            imp: Some(imp),
            price: Micros(price),
            currency_ok: true,
            adomain: &[],
            cat: &[],
            attr: &[],
            mtype: None,
            bundle: None,
            dealid: None,
            rejected: None,
            unpaid: None,
        }
    }

    fn rules(imps: usize) -> Rules<'static> {
        Rules {
            auction_type: AuctionType::SecondPrice,
            imps: (0..imps)
                .map(|_| ImpRule {
                    id: "i",
                    floor: Micros::ZERO,
                    private_auction: false,
                    deals: Vec::new(),
                    battr: [&[]; 4],
                })
                .collect(),
            bcat: &[],
            badv: &[],
            bapp: &[],
            bseat: &[],
            wseat: &[],
            max_bid_price: Micros(1_000_000_000),
        }
    }

    /// A refused win reprices its imp only, and the next bid is paid for.
    #[test]
    fn a_refused_win_reprices_its_imp() {
        let r = rules(2);
        let mut offers = vec![
            offer("rich", 0, 5_000_000),
            offer("mid", 0, 3_000_000),
            offer("low", 0, 1_000_000),
            offer("rich", 1, 2_000_000),
        ];
        let mut result = run(&r, &offers);
        let far = Instant::now() + Duration::from_secs(60);
        let mut asked = Vec::new();
        award(
            &r,
            &mut offers,
            &mut result,
            far,
            Instant::now,
            |i, o, price| {
                asked.push((i, price.0));
                if o.seat == "rich" && i == 0 {
                    Err(LossReason::BudgetExhausted)
                } else {
                    Ok(())
                }
            },
        );
        assert_eq!(asked, vec![(0, 3_010_000), (1, 1_010_000), (3, 10_000)]);
        assert_eq!(result.wins[0].unwrap().offer, 1);
        assert_eq!(result.reasons[0], LossReason::BudgetExhausted);
        assert_eq!(result.wins[1].unwrap().offer, 3);
    }

    /// The deadline passes after the first win: it stands, the others are
    /// withdrawn with loss reason 2 and never paid for.
    #[test]
    fn nothing_is_awarded_once_the_deadline_passed() {
        let r = rules(3);
        let mut offers = vec![offer("a", 0, 1), offer("a", 1, 1), offer("a", 2, 1)];
        let mut result = run(&r, &offers);
        let start = Instant::now();
        let deadline = start + Duration::from_millis(10);
        // Each reading of the clock is 6 ms after the previous one.
        let ticks = Cell::new(0u32);
        let now = || {
            ticks.set(ticks.get() + 1);
            start + Duration::from_millis(6) * (ticks.get() - 1)
        };
        let mut paid = 0;
        award(&r, &mut offers, &mut result, deadline, now, |_, _, _| {
            paid += 1;
            Ok(())
        });
        assert_eq!(paid, 2);
        assert!(result.wins[0].is_some() && result.wins[1].is_some());
        assert_eq!(result.wins[2], None);
        assert_eq!(result.reasons[2], LossReason::Expired);
        // Past the deadline from the start: nothing at all.
        let mut result = run(&r, &offers);
        award(
            &r,
            &mut offers,
            &mut result,
            start,
            || start,
            |_, _, _| unreachable!("paid after the deadline"),
        );
        assert!(result.wins.iter().all(Option::is_none));
    }

    #[test]
    fn caps_reject_the_excess_bids_in_answer_order() {
        let request: BidRequest = serde_json::from_value(serde_json::json!({
            "id": "r", "imp": [{"id": "1", "banner": {}}, {"id": "2", "banner": {}}]
        }))
        .unwrap();
        let bids: Vec<serde_json::Value> = ["1", "1", "1", "2", "x", "2"]
            .iter()
            .enumerate()
            .map(|(i, imp)| serde_json::json!({"id": i.to_string(), "impid": imp, "price": 1}))
            .collect();
        let resp: rtb_proto::openrtb::BidResponse = serde_json::from_value(serde_json::json!({
            "id": "r", "seatbid": [{"bid": bids[..3]}, {"seat": "s", "bid": bids[3..]}]
        }))
        .unwrap();
        let decoded = |bidder| Decoded {
            bidder,
            arrival: bidder as u32,
            latency: Duration::ZERO,
            failed: false,
            status: BidderStatus::Bids(resp.clone()),
        };
        let decoded = [decoded(0), decoded(1)];
        let config = AuctionConfig {
            max_bids_per_seat_per_imp: 2,
            max_bids_per_response: 5,
            ..AuctionConfig::default()
        };
        let (offers, sources) = offers(&request, "USD", &["a", "b"], &decoded, &config);
        let rejected: Vec<Option<Invalid>> = offers.iter().map(|o| o.rejected).collect();
        let (on_imp, in_answer) = (
            Some(Invalid::TooManyBidsOnImp),
            Some(Invalid::TooManyBidsInResponse),
        );
        // Per answer: the third bid on imp 1 is over 2 per imp, the sixth
        // bid over 5 per answer; the second answer starts counting anew.
        let one = [None, None, on_imp, None, None, in_answer];
        assert_eq!(rejected, [one, one].concat());
        assert_eq!(offers[4].imp, None);
        assert_eq!(offers[3].claimed_seat, Some("s"));
        assert_eq!(offers[6].seat, "b");
        assert_eq!(sources[9], (1, 1, 0));
    }

    #[test]
    fn deal_floors_in_another_currency_and_fixed_deals_without_floor_are_refused() {
        let req = |deal: serde_json::Value| -> BidRequest {
            serde_json::from_value(serde_json::json!({
                "id": "r", "imp": [{"id": "1", "banner": {}},
                                   {"id": "2", "banner": {}, "pmp": {"deals": [{"id": "a"}, deal]}}]
            }))
            .unwrap()
        };
        let eur = req(serde_json::json!({"id": "d", "bidfloor": 1.0, "bidfloorcur": "EUR"}));
        let err = check_floors(&eur, "USD").unwrap_err();
        assert!(err.starts_with("imp[1].pmp.deals[1].bidfloorcur:"), "{err}");
        assert!(check_floors(&eur, "EUR").is_ok());
        let fixed = req(serde_json::json!({"id": "d", "at": 3}));
        let err = check_floors(&fixed, "USD").unwrap_err();
        assert!(err.starts_with("imp[1].pmp.deals[1].bidfloor:"), "{err}");
        let ok = req(serde_json::json!({"id": "d", "at": 3, "bidfloor": 2.0}));
        assert!(check_floors(&ok, "USD").is_ok());
        // A deal floor without a currency is in its imp's.
        let gbp: BidRequest = serde_json::from_value(serde_json::json!({
            "id": "r", "cur": ["GBP"], "imp": [{"id": "1", "banner": {}, "bidfloor": 5.0,
                "bidfloorcur": "GBP", "pmp": {"deals": [{"id": "d", "bidfloor": 4.5}]}}]
        }))
        .unwrap();
        assert!(check_floors(&gbp, "GBP").is_ok());
        assert!(check_floors(&gbp, "USD").is_err());
    }
}
