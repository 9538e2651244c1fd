//! Unit and property tests of the auction rules.

use super::*;
use proptest::prelude::*;

thread_local! {
    /// Offers looked at by `price_imp` on this thread: the auction's work.
    pub(super) static VISITS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn visits() -> usize {
    VISITS.with(|v| v.replace(0))
}

const BAD_IMP: LossReason = LossReason::InvalidBidResponse(Invalid::UnknownImp);

fn m(x: f64) -> Micros {
    Micros::from_decimal(x).unwrap()
}

fn imp(id: &str, floor: f64) -> ImpRule<'_> {
    ImpRule {
        id,
        floor: m(floor),
        private_auction: false,
        deals: Vec::new(),
        battr: [&[]; 4],
    }
}

fn offer(seat: &str, arrival: u32, imp: usize, price: f64) -> Offer<'_> {
    Offer {
        seat,
        claimed_seat: None,
        arrival,
        imp: Some(imp),
        price: m(price),
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

fn rules<'a>(at: AuctionType, imps: Vec<ImpRule<'a>>) -> Rules<'a> {
    Rules {
        auction_type: at,
        imps,
        bcat: &[],
        badv: &[],
        bapp: &[],
        bseat: &[],
        wseat: &[],
        max_bid_price: m(1000.0),
    }
}

fn three(floor: f64, at: AuctionType) -> Outcome {
    let offers = [
        offer("c", 0, 0, 1.0),
        offer("a", 1, 0, 3.0),
        offer("b", 2, 0, 2.0),
    ];
    run(&rules(at, vec![imp("1", floor)]), &offers)
}

#[test]
fn second_price_plus_a_cent() {
    let out = three(0.5, AuctionType::SecondPrice);
    assert_eq!(
        out.wins[0],
        Some(Win {
            offer: 1,
            clearing: m(2.01)
        })
    );
    assert_eq!(
        out.reasons,
        vec![
            LossReason::LostToHigherBid,
            LossReason::Won,
            LossReason::LostToHigherBid
        ]
    );
}

#[test]
fn floor_sets_the_price_when_above_second_bid() {
    let out = three(2.5, AuctionType::SecondPrice);
    assert_eq!(
        out.wins[0],
        Some(Win {
            offer: 1,
            clearing: m(2.51)
        })
    );
    assert_eq!(out.reasons[0], LossReason::BelowAuctionFloor);
    assert_eq!(out.reasons[2], LossReason::BelowAuctionFloor);
}

#[test]
fn floor_above_every_bid_means_no_winner() {
    let out = three(3.5, AuctionType::SecondPrice);
    assert_eq!(out.wins, vec![None]);
    assert!(out
        .reasons
        .iter()
        .all(|r| *r == LossReason::BelowAuctionFloor));
}

#[test]
fn first_price_pays_the_bid() {
    let out = three(0.5, AuctionType::FirstPrice);
    assert_eq!(
        out.wins[0],
        Some(Win {
            offer: 1,
            clearing: m(3.0)
        })
    );
}

#[test]
fn lone_bid_pays_floor_plus_a_cent_never_more_than_its_bid() {
    let offers = [offer("a", 0, 0, 1.005)];
    let out = run(
        &rules(AuctionType::SecondPrice, vec![imp("1", 1.0)]),
        &offers,
    );
    assert_eq!(out.wins[0].unwrap().clearing, m(1.005));
    let out = run(
        &rules(AuctionType::SecondPrice, vec![imp("1", 0.0)]),
        &offers,
    );
    assert_eq!(out.wins[0].unwrap().clearing, m(0.01));
}

#[test]
fn ties_break_by_arrival_then_seat() {
    let offers = [
        offer("b", 1, 0, 2.0),
        offer("a", 1, 0, 2.0),
        offer("z", 0, 0, 2.0),
    ];
    let out = run(
        &rules(AuctionType::SecondPrice, vec![imp("1", 0.0)]),
        &offers,
    );
    assert_eq!(
        out.wins[0],
        Some(Win {
            offer: 2,
            clearing: m(2.0)
        })
    );
    let offers = [offer("b", 0, 0, 2.0), offer("a", 0, 0, 2.0)];
    let out = run(
        &rules(AuctionType::SecondPrice, vec![imp("1", 0.0)]),
        &offers,
    );
    assert_eq!(out.wins[0].unwrap().offer, 1);
}

#[test]
fn each_imp_has_its_own_auction() {
    let offers = [
        offer("a", 0, 0, 3.0),
        offer("b", 1, 1, 5.0),
        offer("a", 0, 1, 4.0),
        offer("b", 1, 0, 1.0),
    ];
    let out = run(
        &rules(AuctionType::SecondPrice, vec![imp("1", 0.0), imp("2", 0.0)]),
        &offers,
    );
    assert_eq!(
        out.wins[0],
        Some(Win {
            offer: 0,
            clearing: m(1.01)
        })
    );
    assert_eq!(
        out.wins[1],
        Some(Win {
            offer: 1,
            clearing: m(4.01)
        })
    );
}

#[test]
fn exclusions_and_invalid_offers_have_reasons() {
    let badv = vec!["blocked.com".to_string()];
    let bcat = vec!["IAB25".to_string()];
    let bapp = vec!["com.bad.app".to_string()];
    let sub = vec!["ads.blocked.com".to_string()];
    let near = vec!["notblocked.com".to_string()];
    let cat = vec!["IAB25".to_string()];
    let mut r = rules(AuctionType::SecondPrice, vec![imp("1", 0.0)]);
    r.badv = &badv;
    r.bcat = &bcat;
    r.bapp = &bapp;
    let mut offers = vec![offer("a", 0, 0, 9.0); 7];
    offers[0].adomain = &sub;
    offers[1].cat = &cat;
    offers[2].bundle = Some("COM.BAD.APP");
    offers[3].imp = None;
    offers[4].currency_ok = false;
    offers[5].price = Micros::ZERO;
    offers[6].adomain = &near;
    offers[6].price = m(1.0);
    let out = run(&r, &offers);
    assert_eq!(
        out.reasons,
        vec![
            LossReason::AdvertiserExclusions,
            LossReason::CategoryExclusions,
            LossReason::AppBundleExclusions,
            BAD_IMP,
            LossReason::InvalidBidResponse(Invalid::Currency),
            LossReason::InvalidBidResponse(Invalid::NonPositivePrice),
            LossReason::Won,
        ]
    );
    assert_eq!(out.wins[0].unwrap().clearing, m(0.01));
}

#[test]
fn deals_are_respected() {
    let wseat = vec!["a".to_string()];
    let mut i = imp("1", 1.0);
    i.private_auction = true;
    i.deals = vec![DealRule {
        id: "d1",
        floor: m(4.0),
        wseat: &wseat,
        wadomain: &[],
        at: None,
    }];
    let r = rules(AuctionType::SecondPrice, vec![i]);
    let mut offers = vec![
        offer("a", 0, 0, 5.0),
        offer("a", 1, 0, 3.0),
        offer("b", 2, 0, 6.0),
        offer("a", 3, 0, 9.0),
        offer("c", 4, 0, 9.0),
    ];
    offers[0].dealid = Some("d1");
    offers[1].dealid = Some("d1");
    offers[2].dealid = Some("d1");
    offers[3].dealid = Some("nope");
    let out = run(&r, &offers);
    assert_eq!(
        out.reasons,
        vec![
            LossReason::Won,
            LossReason::BelowDealFloor,
            LossReason::BuyerSeatBlocked,
            LossReason::InvalidDealId,
            LossReason::InvalidDealId,
        ]
    );
    assert_eq!(out.wins[0].unwrap().clearing, m(4.01));
}

/// A bid the budget cannot pay loses with code 1000 and the next one wins,
/// priced against the bids that remain eligible.
#[test]
fn a_bid_over_budget_loses_and_the_next_wins() {
    let offers = [
        Offer {
            unpaid: Some(LossReason::BudgetExhausted),
            ..offer("rich", 0, 0, 5.0)
        },
        offer("mid", 1, 0, 3.0),
        offer("low", 2, 0, 1.0),
    ];
    let out = run(
        &rules(AuctionType::SecondPrice, vec![imp("1", 0.5)]),
        &offers,
    );
    assert_eq!(out.reasons[0], LossReason::BudgetExhausted);
    assert_eq!(LossReason::BudgetExhausted.code(), 1000);
    let w = out.wins[0].unwrap();
    assert_eq!(w.offer, 1);
    assert_eq!(w.clearing, m(1.01));
    // A rule that fails earlier names its own reason, not the budget.
    let below = [Offer {
        unpaid: Some(LossReason::BudgetExhausted),
        ..offer("rich", 0, 0, 0.1)
    }];
    let out = run(
        &rules(AuctionType::SecondPrice, vec![imp("1", 0.5)]),
        &below,
    );
    assert_eq!(out.reasons[0], LossReason::BelowAuctionFloor);
}

/// Seat A bids 10 and 9, B bids 2: A wins and pays 2.01, B's bid plus a
/// cent; its own second bid does not set its price.
#[test]
fn the_runner_up_is_another_seat() {
    let offers = [
        offer("a", 0, 0, 10.0),
        offer("a", 0, 0, 9.0),
        offer("b", 1, 0, 2.0),
    ];
    let out = run(
        &rules(AuctionType::SecondPrice, vec![imp("1", 0.5)]),
        &offers,
    );
    assert_eq!(
        out.wins[0],
        Some(Win {
            offer: 0,
            clearing: m(2.01)
        })
    );
    assert_eq!(out.reasons[1], LossReason::LostToHigherBid);
    // Alone on the imp, a seat pays the floor plus a cent, whatever else it bid.
    let out = run(
        &rules(AuctionType::SecondPrice, vec![imp("1", 0.5)]),
        &offers[..2],
    );
    assert_eq!(out.wins[0].unwrap().clearing, m(0.51));
    // The floor still applies when another seat's bid is below it.
    let out = run(
        &rules(AuctionType::SecondPrice, vec![imp("1", 3.0)]),
        &offers,
    );
    assert_eq!(out.wins[0].unwrap().clearing, m(3.01));
    // B ahead of A's best: the order of the bids does not matter.
    let offers = [
        offer("a", 0, 0, 9.0),
        offer("b", 1, 0, 2.0),
        offer("a", 0, 0, 10.0),
    ];
    let out = run(
        &rules(AuctionType::SecondPrice, vec![imp("1", 0.5)]),
        &offers,
    );
    assert_eq!(out.wins[0].unwrap().offer, 2);
    assert_eq!(out.wins[0].unwrap().clearing, m(2.01));
}

#[test]
fn a_price_above_the_max_is_invalid() {
    let mut r = rules(AuctionType::FirstPrice, vec![imp("1", 0.0)]);
    r.max_bid_price = m(100.0);
    let offers = [
        offer("a", 0, 0, 9e12),
        offer("b", 1, 0, 100.0),
        offer("c", 2, 0, 100.000001),
    ];
    let out = run(&r, &offers);
    let above = LossReason::InvalidBidResponse(Invalid::AboveMaxPrice);
    assert_eq!(out.reasons, vec![above, LossReason::Won, above]);
    assert_eq!(above.code(), 3);
    assert!(above.text().contains("auction.max_bid_price"));
    assert_eq!(out.wins[0].unwrap().clearing, m(100.0));
}

#[test]
fn rejected_offers_lose_with_their_reason_first() {
    let offers = [
        Offer {
            rejected: Some(Invalid::TooManyBidsOnImp),
            ..offer("a", 0, 0, 9.0)
        },
        Offer {
            rejected: Some(Invalid::TooManyBidsInResponse),
            imp: None,
            ..offer("a", 0, 0, 9.0)
        },
        offer("b", 1, 0, 1.0),
    ];
    let out = run(
        &rules(AuctionType::SecondPrice, vec![imp("1", 0.0)]),
        &offers,
    );
    assert_eq!(
        out.reasons,
        vec![
            LossReason::InvalidBidResponse(Invalid::TooManyBidsOnImp),
            LossReason::InvalidBidResponse(Invalid::TooManyBidsInResponse),
            LossReason::Won
        ]
    );
    assert_eq!(out.wins[0].unwrap().clearing, m(0.01));
}

#[test]
fn blocked_attributes_follow_the_creative_type() {
    let banner_battr = [3];
    let video_battr = [6];
    let mut i = imp("1", 0.0);
    i.battr = [&banner_battr, &video_battr, &[], &[]];
    let r = rules(AuctionType::SecondPrice, vec![i]);
    let a3 = [1, 3];
    let a6 = [6];
    let offers = [
        Offer {
            attr: &a3,
            mtype: Some(1),
            ..offer("a", 0, 0, 9.0)
        },
        // Attribute 6 is blocked for video only: fine on a banner.
        Offer {
            attr: &a6,
            mtype: Some(1),
            ..offer("b", 1, 0, 8.0)
        },
        Offer {
            attr: &a6,
            mtype: Some(2),
            ..offer("c", 2, 0, 7.0)
        },
        // Unknown creative type: any of the imp's blocks counts.
        Offer {
            attr: &a6,
            ..offer("d", 3, 0, 6.0)
        },
    ];
    let out = run(&r, &offers);
    let attr = LossReason::CreativeAttributeExclusions;
    assert_eq!(out.reasons, vec![attr, LossReason::Won, attr, attr]);
    assert_eq!(attr.code(), 210);
}

#[test]
fn seat_rules_use_the_bidder_name_and_block_claimed_seats() {
    let bseat = vec!["bad".to_string(), "claimed-bad".to_string()];
    let wseat = vec!["good".to_string(), "claimed-good".to_string()];
    let mut r = rules(AuctionType::SecondPrice, vec![imp("1", 0.0)]);
    r.bseat = &bseat;
    let offers = [
        offer("bad", 0, 0, 9.0),
        Offer {
            claimed_seat: Some("claimed-bad"),
            ..offer("x", 1, 0, 8.0)
        },
        offer("good", 2, 0, 1.0),
    ];
    let out = run(&r, &offers);
    let blocked = LossReason::BuyerSeatBlocked;
    assert_eq!(out.reasons, vec![blocked, blocked, LossReason::Won]);
    assert_eq!(blocked.code(), 104);
    // wseat: a claimed seat cannot let a bidder in.
    let mut r = rules(AuctionType::SecondPrice, vec![imp("1", 0.0)]);
    r.wseat = &wseat;
    let offers = [
        Offer {
            claimed_seat: Some("claimed-good"),
            ..offer("x", 0, 0, 9.0)
        },
        offer("good", 1, 0, 1.0),
    ];
    let out = run(&r, &offers);
    assert_eq!(out.reasons, vec![blocked, LossReason::Won]);
}

#[test]
fn deal_wadomain_and_auction_types() {
    let wadomain = vec!["ok.example".to_string()];
    let deal = |id, floor: f64, at| DealRule {
        id,
        floor: m(floor),
        wseat: &[],
        wadomain: &wadomain,
        at,
    };
    let mut i = imp("1", 0.5);
    i.deals = vec![
        deal("first", 2.0, Some(AuctionType::FirstPrice)),
        deal("fixed", 3.0, Some(AuctionType::FixedPrice)),
        deal("open", 2.0, None),
    ];
    i.deals.sort_by(|a, b| a.id.cmp(b.id));
    let r = rules(AuctionType::SecondPrice, vec![i.clone(), i.clone(), i]);
    let sub = vec!["ads.ok.example".to_string()];
    let mixed = vec!["ok.example".to_string(), "evil.example".to_string()];
    let ok = vec!["ok.example".to_string()];
    let on = |imp, price, dealid, adomain| Offer {
        dealid: Some(dealid),
        adomain,
        ..offer("a", 0, imp, price)
    };
    let offers = [
        on(0, 5.0, "open", &sub),
        on(0, 9.0, "open", &mixed),
        on(0, 9.0, "open", &[]),
        on(1, 5.0, "first", &ok),
        offer("b", 1, 1, 4.0),
        on(2, 5.0, "fixed", &ok),
        offer("b", 1, 2, 4.5),
    ];
    let out = run(&r, &offers);
    let not_allowed = LossReason::NotAllowedInDeal;
    assert_eq!(not_allowed.code(), 213);
    assert_eq!(
        &out.reasons[..3],
        &[LossReason::Won, not_allowed, not_allowed]
    );
    // Second price on the open deal: the deal floor, plus a cent.
    assert_eq!(out.wins[0].unwrap().clearing, m(2.01));
    // The deal's at=1 overrides the request's second price.
    assert_eq!(out.wins[1].unwrap().clearing, m(5.0));
    // at=3: the deal floor is the price, whatever the other bids.
    assert_eq!(out.wins[2].unwrap().clearing, m(3.0));
}

/// Offers are grouped per imp once; each imp looks only at its own, and a
/// rerun of one imp looks only at that imp's.
#[test]
fn work_is_linear_in_imps_and_offers() {
    let ids: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
    let imps: Vec<ImpRule<'_>> = ids.iter().map(|id| imp(id, 0.0)).collect();
    let r = rules(AuctionType::SecondPrice, imps);
    let offers: Vec<Offer<'_>> = (0..3000)
        .map(|i| {
            offer(
                ["a", "b", "c"][i % 3],
                (i % 3) as u32,
                i / 3,
                1.0 + (i % 3) as f64,
            )
        })
        .collect();
    visits();
    let mut out = run(&r, &offers);
    assert_eq!(visits(), 3000);
    assert_eq!(out.offers_of(7), &[21, 22, 23]);
    assert_eq!(out.wins[7].unwrap().offer, 23);
    let mut offers = offers;
    offers[23].unpaid = Some(LossReason::BudgetExhausted);
    out.rerun(&r, &offers, 7);
    assert_eq!(visits(), 3);
    assert_eq!(out.wins[7].unwrap().offer, 22);
    assert_eq!(out.reasons[23], LossReason::BudgetExhausted);
    assert_eq!(out.wins[8].unwrap().offer, 26);
}

#[test]
fn an_expired_win_loses_with_code_2() {
    let offers = [offer("a", 0, 0, 2.0), offer("b", 1, 1, 2.0)];
    let mut out = run(
        &rules(AuctionType::SecondPrice, vec![imp("1", 0.0), imp("2", 0.0)]),
        &offers,
    );
    out.expire(0);
    assert_eq!(out.wins[0], None);
    assert_eq!(out.reasons[0], LossReason::Expired);
    assert_eq!(LossReason::Expired.code(), 2);
    assert_eq!(out.reasons[1], LossReason::Won);
}

proptest! {
    /// With bids from a few seats, the winner is a highest bid, and under
    /// second price it pays the best bid of another seat (or the floor)
    /// plus a cent, capped at its bid: computed here the slow way.
    #[test]
    fn second_price_comes_from_another_seat(
        bids in proptest::collection::vec((0usize..3, 1i64..10_000_000), 0..12),
        floor in 0i64..5_000_000,
    ) {
        let seats = ["s0", "s1", "s2"];
        let offers: Vec<Offer<'_>> = bids.iter().map(|&(s, p)| Offer {
            price: Micros(p),
            ..offer(seats[s], s as u32, 0, 1.0)
        }).collect();
        let mut i = imp("1", 0.0);
        i.floor = Micros(floor);
        let out = run(&rules(AuctionType::SecondPrice, vec![i]), &offers);
        let eligible: Vec<&Offer<'_>> = offers.iter().filter(|o| o.price.0 >= floor).collect();
        match out.wins[0] {
            None => prop_assert!(eligible.is_empty()),
            Some(w) => {
                let winner = &offers[w.offer];
                prop_assert!(eligible.iter().all(|o| o.price <= winner.price));
                let runner = eligible
                    .iter()
                    .filter(|o| o.seat != winner.seat)
                    .map(|o| o.price.0)
                    .max()
                    .unwrap_or(0);
                let expect = winner.price.0.min(runner.max(floor) + INCREMENT.0);
                prop_assert_eq!(w.clearing.0, expect);
            }
        }
    }
}

proptest! {
    /// Whatever the bids, the winner is a highest eligible bid, pays no more
    /// than it bid and no less than the floor, and every offer has a reason.
    #[test]
    fn clearing_price_is_bounded(
        prices in proptest::collection::vec(1i64..10_000_000, 0..12),
        floor in 0i64..5_000_000,
        first in any::<bool>(),
    ) {
        let seats: Vec<String> = (0..prices.len()).map(|i| format!("s{i}")).collect();
        let offers: Vec<Offer<'_>> = prices.iter().enumerate().map(|(i, &p)| Offer {
            price: Micros(p),
            ..offer(&seats[i], i as u32, 0, 1.0)
        }).collect();
        let at = if first { AuctionType::FirstPrice } else { AuctionType::SecondPrice };
        let mut i = imp("1", 0.0);
        i.floor = Micros(floor);
        let out = run(&rules(at, vec![i]), &offers);
        prop_assert_eq!(out.reasons.len(), offers.len());
        let best = prices.iter().copied().filter(|&p| p >= floor).max();
        match (out.wins[0], best) {
            (None, None) => {}
            (Some(w), Some(best)) => {
                prop_assert_eq!(offers[w.offer].price.0, best);
                prop_assert!(w.clearing.0 <= best);
                prop_assert!(w.clearing.0 >= floor.min(best));
                if first { prop_assert_eq!(w.clearing.0, best); }
                prop_assert_eq!(out.reasons.iter().filter(|r| **r == LossReason::Won).count(), 1);
            }
            (w, b) => prop_assert!(false, "winner {:?} but best eligible {:?}", w, b),
        }
    }
}
