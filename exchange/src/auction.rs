//! The auction: plain functions over plain data, no I/O, no clock.
//!
//! Per impression the highest eligible bid wins. Under `at=2` (the default) it
//! pays `min(its bid, max(second-highest eligible bid, floor) + 0.01)`; under
//! `at=1` it pays its bid. Ties break deterministically: the earlier answer
//! first, then the seat name. Every offer that does not win gets an OpenRTB
//! loss reason, so bidders and operators can see why.

use rtb_proto::Micros;

/// One cent (0.01 currency units) in micros: the second-price increment.
pub const INCREMENT: Micros = Micros(10_000);

/// OpenRTB 2.6 loss reason codes (list "Loss Reason Codes") used by the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LossReason {
    /// 0: the bid won.
    Won,
    /// 3: the bid was invalid (unknown impid, price <= 0, wrong currency).
    InvalidBidResponse,
    /// 4: the deal id is not offered on this imp, or a private auction needs one.
    InvalidDealId,
    /// 100: the bid was below the imp's floor.
    BelowAuctionFloor,
    /// 101: the bid was below its deal's floor.
    BelowDealFloor,
    /// 102: another bid was higher.
    LostToHigherBid,
    /// 104: the deal does not allow this seat.
    BuyerSeatBlocked,
    /// 205: the advertiser domain is in `badv`.
    AdvertiserExclusions,
    /// 206: the app bundle is in `bapp`.
    AppBundleExclusions,
    /// 209: a category is in `bcat`.
    CategoryExclusions,
    /// 1000 (exchange-specific, as OpenRTB allows from 1000 up): the budget
    /// the win would be charged to (the bidder's or its campaign's) has no
    /// room for the bid on this exchange instance.
    BudgetExhausted,
}

impl LossReason {
    /// The numeric code from the OpenRTB list.
    pub fn code(self) -> u16 {
        match self {
            LossReason::Won => 0,
            LossReason::InvalidBidResponse => 3,
            LossReason::InvalidDealId => 4,
            LossReason::BelowAuctionFloor => 100,
            LossReason::BelowDealFloor => 101,
            LossReason::LostToHigherBid => 102,
            LossReason::BuyerSeatBlocked => 104,
            LossReason::AdvertiserExclusions => 205,
            LossReason::AppBundleExclusions => 206,
            LossReason::CategoryExclusions => 209,
            LossReason::BudgetExhausted => 1000,
        }
    }
}

/// First or second price (`BidRequest.at`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuctionType {
    /// `at=1`: the winner pays its bid.
    FirstPrice,
    /// `at=2` (default) and exchange-specific values: second price plus 0.01.
    SecondPrice,
}

impl AuctionType {
    /// Maps `BidRequest.at` (absent means 2).
    pub fn from_at(at: Option<u8>) -> Self {
        match at {
            Some(1) => AuctionType::FirstPrice,
            _ => AuctionType::SecondPrice,
        }
    }
}

/// A deal offered on an impression.
#[derive(Debug, Clone)]
pub struct DealRule<'a> {
    /// Deal id.
    pub id: &'a str,
    /// Deal floor; zero means the imp floor applies.
    pub floor: Micros,
    /// Seats allowed to bid on the deal; empty means all.
    pub wseat: &'a [String],
}

/// What the auction needs to know about one impression.
#[derive(Debug, Clone)]
pub struct ImpRule<'a> {
    /// Imp id.
    pub id: &'a str,
    /// Floor in the auction currency.
    pub floor: Micros,
    /// Only deal bids may win (`pmp.private_auction = 1`).
    pub private_auction: bool,
    /// Deals offered.
    pub deals: Vec<DealRule<'a>>,
}

/// Request-wide rules.
#[derive(Debug, Clone)]
pub struct Rules<'a> {
    /// Pricing rule.
    pub auction_type: AuctionType,
    /// Impressions, in request order.
    pub imps: Vec<ImpRule<'a>>,
    /// Blocked categories.
    pub bcat: &'a [String],
    /// Blocked advertiser domains (a block on `a.com` also blocks `x.a.com`).
    pub badv: &'a [String],
    /// Blocked app bundles.
    pub bapp: &'a [String],
}

/// One bid as the auction sees it.
#[derive(Debug, Clone)]
pub struct Offer<'a> {
    /// Seat (bidder) name.
    pub seat: &'a str,
    /// Order in which the bidder's answer arrived (0 first); ties go to the earlier.
    pub arrival: u32,
    /// Index into [`Rules::imps`], or `None` when the bid's impid is unknown.
    pub imp: Option<usize>,
    /// Bid price in the auction currency.
    pub price: Micros,
    /// False when the answer's currency is not one the request allows.
    pub currency_ok: bool,
    /// Advertiser domains.
    pub adomain: &'a [String],
    /// Creative categories.
    pub cat: &'a [String],
    /// App bundle advertised.
    pub bundle: Option<&'a str>,
    /// Deal the bid is for.
    pub dealid: Option<&'a str>,
    /// The budget lease the win would be charged to can pay the bid price
    /// (always true for bidders without a budget).
    pub affordable: bool,
}

/// The result for one impression that has a winner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Win {
    /// Index of the winning offer.
    pub offer: usize,
    /// What the winner pays.
    pub clearing: Micros,
}

/// The auction's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Per imp (same order as [`Rules::imps`]): the winner, if any.
    pub wins: Vec<Option<Win>>,
    /// Per offer (same order as the input): why it won or lost.
    pub reasons: Vec<LossReason>,
}

/// Runs the auction for every impression.
pub fn run(rules: &Rules<'_>, offers: &[Offer<'_>]) -> Outcome {
    let mut reasons = Vec::with_capacity(offers.len());
    // (offer index, effective floor) of eligible offers, grouped later per imp.
    let mut eligible: Vec<(usize, Micros)> = Vec::with_capacity(offers.len());
    for (i, offer) in offers.iter().enumerate() {
        match check(rules, offer) {
            Ok(floor) => {
                eligible.push((i, floor));
                reasons.push(LossReason::LostToHigherBid);
            }
            Err(reason) => reasons.push(reason),
        }
    }
    // Highest price first; ties: earlier answer, then seat name.
    eligible.sort_by(|&(a, _), &(b, _)| {
        let (a, b) = (&offers[a], &offers[b]);
        b.price
            .cmp(&a.price)
            .then(a.arrival.cmp(&b.arrival))
            .then(a.seat.cmp(b.seat))
    });
    let mut wins = vec![None; rules.imps.len()];
    for (imp, win) in wins.iter_mut().enumerate() {
        let mut ranked = eligible
            .iter()
            .filter(|&&(i, _)| offers[i].imp == Some(imp));
        let Some(&(first, floor)) = ranked.next() else {
            continue;
        };
        let price = offers[first].price;
        let clearing = match rules.auction_type {
            AuctionType::FirstPrice => price,
            AuctionType::SecondPrice => {
                let second = ranked
                    .next()
                    .map_or(Micros::ZERO, |&(i, _)| offers[i].price);
                let base = second.max(floor);
                Micros(price.0.min(base.0.saturating_add(INCREMENT.0)))
            }
        };
        reasons[first] = LossReason::Won;
        *win = Some(Win {
            offer: first,
            clearing,
        });
    }
    Outcome { wins, reasons }
}

/// Eligibility of one offer; on success, the floor that applies to it.
fn check(rules: &Rules<'_>, offer: &Offer<'_>) -> Result<Micros, LossReason> {
    let imp = offer
        .imp
        .and_then(|i| rules.imps.get(i))
        .ok_or(LossReason::InvalidBidResponse)?;
    if offer.price <= Micros::ZERO || !offer.currency_ok {
        return Err(LossReason::InvalidBidResponse);
    }
    if offer.adomain.iter().any(|d| domain_blocked(d, rules.badv)) {
        return Err(LossReason::AdvertiserExclusions);
    }
    if offer.cat.iter().any(|c| rules.bcat.iter().any(|b| b == c)) {
        return Err(LossReason::CategoryExclusions);
    }
    if let Some(bundle) = offer.bundle {
        if rules.bapp.iter().any(|b| b.eq_ignore_ascii_case(bundle)) {
            return Err(LossReason::AppBundleExclusions);
        }
    }
    let (floor, below) = match offer.dealid {
        Some(dealid) => {
            let deal = imp
                .deals
                .iter()
                .find(|d| d.id == dealid)
                .ok_or(LossReason::InvalidDealId)?;
            if !deal.wseat.is_empty() && !deal.wseat.iter().any(|s| s == offer.seat) {
                return Err(LossReason::BuyerSeatBlocked);
            }
            if deal.floor > Micros::ZERO {
                (deal.floor, LossReason::BelowDealFloor)
            } else {
                (imp.floor, LossReason::BelowAuctionFloor)
            }
        }
        None if imp.private_auction => return Err(LossReason::InvalidDealId),
        None => (imp.floor, LossReason::BelowAuctionFloor),
    };
    if offer.price < floor {
        return Err(below);
    }
    // Last: a bid that fails an earlier rule gets that rule's reason.
    if !offer.affordable {
        return Err(LossReason::BudgetExhausted);
    }
    Ok(floor)
}

/// True when `domain` equals a blocked domain or is a subdomain of one.
fn domain_blocked(domain: &str, blocked: &[String]) -> bool {
    // Bytes, not str slicing: a non-ASCII domain must not split a character.
    let d = domain.as_bytes();
    blocked.iter().any(|b| {
        let b = b.as_bytes();
        d.len() >= b.len()
            && d[d.len() - b.len()..].eq_ignore_ascii_case(b)
            && (d.len() == b.len() || d[d.len() - b.len() - 1] == b'.')
    })
}

#[cfg(test)]
mod tests;
