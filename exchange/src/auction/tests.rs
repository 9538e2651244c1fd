//! Unit and property tests of the auction rules.

use super::*;
use proptest::prelude::*;

fn m(x: f64) -> Micros {
    Micros::from_decimal(x).unwrap()
}

fn imp(id: &str, floor: f64) -> ImpRule<'_> {
    ImpRule {
        id,
        floor: m(floor),
        private_auction: false,
        deals: Vec::new(),
    }
}

fn offer(seat: &str, arrival: u32, imp: usize, price: f64) -> Offer<'_> {
    Offer {
        seat,
        arrival,
        imp: Some(imp),
        price: m(price),
        currency_ok: true,
        adomain: &[],
        cat: &[],
        bundle: None,
        dealid: None,
        affordable: true,
    }
}

fn rules<'a>(at: AuctionType, imps: Vec<ImpRule<'a>>) -> Rules<'a> {
    Rules {
        auction_type: at,
        imps,
        bcat: &[],
        badv: &[],
        bapp: &[],
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
            LossReason::InvalidBidResponse,
            LossReason::InvalidBidResponse,
            LossReason::InvalidBidResponse,
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
            affordable: false,
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
        affordable: false,
        ..offer("rich", 0, 0, 0.1)
    }];
    let out = run(
        &rules(AuctionType::SecondPrice, vec![imp("1", 0.5)]),
        &below,
    );
    assert_eq!(out.reasons[0], LossReason::BelowAuctionFloor);
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
