//! The auction: plain functions over plain data, no I/O, no clock.
//!
//! Per impression the highest eligible bid wins. What it pays depends on the
//! auction type: the deal's `at` when it won on a deal that has one, else
//! the request's.
//!
//! - Second price (`at=2`, the default): `min(its bid, max(runner-up,
//!   floor) + 0.01)`, where the runner-up is the best eligible bid of
//!   *another* seat, so a seat's own second bid never sets its price.
//! - First price (`at=1`): its bid.
//! - Fixed price (a deal's `at=3`): the deal's floor.
//!
//! Ties break deterministically: the earlier answer first, then the seat
//! name, then the order of the bids. Every offer that does not win gets an
//! OpenRTB loss reason (and a text for the seat-non-bid), so bidders and
//! operators can see why.
//!
//! Cost is linear in imps + offers: offers are grouped per imp once (a
//! counting sort), each imp's winner and runner-up are found in one pass
//! over its own offers, and one imp can be priced again alone
//! ([`Outcome::rerun`]) when its winner could not pay.

use rtb_proto::Micros;

/// One cent (0.01 currency units) in micros: the second-price increment.
pub const INCREMENT: Micros = Micros(10_000);

/// Why a bid is an invalid bid response (loss reason 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Invalid {
    /// The bid's impid is not an imp of the request.
    UnknownImp,
    /// The price is zero or negative.
    NonPositivePrice,
    /// The answer's currency is not the auction currency.
    Currency,
    /// The price is above `auction.max_bid_price`.
    AboveMaxPrice,
    /// The seat already made `auction.max_bids_per_seat_per_imp` bids on this imp.
    TooManyBidsOnImp,
    /// The answer already held `auction.max_bids_per_response` bids.
    TooManyBidsInResponse,
    /// A field of the bid is over its size bound ([`BidField`] says which).
    TooLong(BidField),
}

/// The bid fields with a size bound, checked before the auction: ids and
/// URLs end up in the auction-result event, in win notices and in metric
/// labels, and an event Kafka refuses as too large would otherwise never
/// leave the spool. The bounds are far above any real value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BidField {
    /// `bid.id`, at most [`MAX_BID_ID_BYTES`] (as are the next five).
    Id,
    /// `bid.cid`.
    Cid,
    /// `bid.crid`.
    Crid,
    /// `bid.adid`.
    Adid,
    /// `bid.dealid`.
    Dealid,
    /// `bid.bundle`.
    Bundle,
    /// `bid.nurl`, at most [`MAX_BID_URL_BYTES`] (as are the next three).
    Nurl,
    /// `bid.burl`.
    Burl,
    /// `bid.lurl`.
    Lurl,
    /// `bid.iurl`.
    Iurl,
    /// `bid.adomain`: at most [`MAX_BID_LIST_ITEMS`] entries of at most
    /// [`MAX_BID_ID_BYTES`] each (as is `bid.cat`).
    Adomain,
    /// `bid.cat`.
    Cat,
}

/// Bound of an id-like bid field (`cid`, `crid`, ...), in bytes.
pub const MAX_BID_ID_BYTES: usize = 1024;
/// Bound of a URL a bid carries (`nurl`, `burl`, ...), in bytes: the size
/// most HTTP servers accept in a request line.
pub const MAX_BID_URL_BYTES: usize = 8 * 1024;
/// Bound of the entries of a list a bid carries (`adomain`, `cat`).
pub const MAX_BID_LIST_ITEMS: usize = 64;

/// The first field of `bid` over its bound, if any.
pub fn oversized(bid: &rtb_proto::openrtb::Bid) -> Option<BidField> {
    let long = |v: Option<&String>, max: usize| v.is_some_and(|v| v.len() > max);
    let ids = [
        (BidField::Id, Some(&bid.id)),
        (BidField::Cid, bid.cid.as_ref()),
        (BidField::Crid, bid.crid.as_ref()),
        (BidField::Adid, bid.adid.as_ref()),
        (BidField::Dealid, bid.dealid.as_ref()),
        (BidField::Bundle, bid.bundle.as_ref()),
    ];
    let urls = [
        (BidField::Nurl, bid.nurl.as_ref()),
        (BidField::Burl, bid.burl.as_ref()),
        (BidField::Lurl, bid.lurl.as_ref()),
        (BidField::Iurl, bid.iurl.as_ref()),
    ];
    let lists = [(BidField::Adomain, &bid.adomain), (BidField::Cat, &bid.cat)];
    let id = ids.iter().find(|(_, v)| long(*v, MAX_BID_ID_BYTES));
    let url = urls.iter().find(|(_, v)| long(*v, MAX_BID_URL_BYTES));
    let list = lists.iter().find(|(_, v)| {
        v.len() > MAX_BID_LIST_ITEMS || v.iter().any(|e| e.len() > MAX_BID_ID_BYTES)
    });
    id.or(url).map(|(f, _)| *f).or(list.map(|(f, _)| *f))
}

impl BidField {
    /// The seat-non-bid reason, naming the field and its bound.
    pub fn text(self) -> &'static str {
        match self {
            BidField::Id => "invalid bid: bid.id is longer than 1024 bytes",
            BidField::Cid => "invalid bid: bid.cid is longer than 1024 bytes",
            BidField::Crid => "invalid bid: bid.crid is longer than 1024 bytes",
            BidField::Adid => "invalid bid: bid.adid is longer than 1024 bytes",
            BidField::Dealid => "invalid bid: bid.dealid is longer than 1024 bytes",
            BidField::Bundle => "invalid bid: bid.bundle is longer than 1024 bytes",
            BidField::Nurl => "invalid bid: bid.nurl is longer than 8192 bytes",
            BidField::Burl => "invalid bid: bid.burl is longer than 8192 bytes",
            BidField::Lurl => "invalid bid: bid.lurl is longer than 8192 bytes",
            BidField::Iurl => "invalid bid: bid.iurl is longer than 8192 bytes",
            BidField::Adomain => {
                "invalid bid: bid.adomain has more than 64 entries or one longer than 1024 bytes"
            }
            BidField::Cat => {
                "invalid bid: bid.cat has more than 64 entries or one longer than 1024 bytes"
            }
        }
    }
}

/// OpenRTB 2.6 loss reason codes (list "Loss Reason Codes") used by the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LossReason {
    /// 0: the bid won.
    Won,
    /// 2: the bid would have won, but the auction's deadline had passed
    /// before the win could be awarded.
    Expired,
    /// 3: the bid was invalid; the [`Invalid`] says which rule it broke.
    InvalidBidResponse(Invalid),
    /// 4: the deal id is not offered on this imp, or a private auction needs one.
    InvalidDealId,
    /// 100: the bid was below the imp's floor.
    BelowAuctionFloor,
    /// 101: the bid was below its deal's floor.
    BelowDealFloor,
    /// 102: another bid was higher.
    LostToHigherBid,
    /// 104: the request's `bseat`/`wseat` or the deal's `wseat` does not allow this seat.
    BuyerSeatBlocked,
    /// 205: the advertiser domain is in `badv`.
    AdvertiserExclusions,
    /// 206: the app bundle is in `bapp` (OpenRTB 2.6: "App Store ID Exclusions").
    AppBundleExclusions,
    /// 209: a category is in `bcat`.
    CategoryExclusions,
    /// 210: a creative attribute (`bid.attr`) is in the imp's `battr`.
    CreativeAttributeExclusions,
    /// 213: the advertiser domain is not in the deal's `wadomain`.
    NotAllowedInDeal,
    /// 1000 (exchange-specific, as OpenRTB allows from 1000 up): the budget
    /// the win would be charged to (the bidder's or its campaign's) has no
    /// room for the bid on this exchange instance.
    BudgetExhausted,
    /// 1001 (exchange-specific): the budget the win would be charged to is
    /// outside its flight (before its `start`, or from its `end` on).
    OutOfFlight,
    /// 1002 (exchange-specific): the budget is paced `even` and its spend
    /// is ahead of the ideal line: the win was held back.
    Paced,
    /// 1 (Internal Error): the bid won, but the auction's event could not
    /// be written to the journal (its disk full), so its debit could be
    /// lost: the win is withdrawn and nothing is awarded.
    Unrecorded,
}

impl LossReason {
    /// The numeric code from the OpenRTB list.
    pub fn code(self) -> u16 {
        match self {
            LossReason::Won => 0,
            LossReason::Expired => 2,
            LossReason::InvalidBidResponse(_) => 3,
            LossReason::InvalidDealId => 4,
            LossReason::BelowAuctionFloor => 100,
            LossReason::BelowDealFloor => 101,
            LossReason::LostToHigherBid => 102,
            LossReason::BuyerSeatBlocked => 104,
            LossReason::AdvertiserExclusions => 205,
            LossReason::AppBundleExclusions => 206,
            LossReason::CategoryExclusions => 209,
            LossReason::CreativeAttributeExclusions => 210,
            LossReason::NotAllowedInDeal => 213,
            LossReason::BudgetExhausted => 1000,
            LossReason::OutOfFlight => 1001,
            LossReason::Paced => 1002,
            LossReason::Unrecorded => 1,
        }
    }

    /// What the seat-non-bid entry says (lowercase, naming the rule or key).
    pub fn text(self) -> &'static str {
        match self {
            LossReason::Won => "won",
            LossReason::Expired => "the auction's deadline passed before the win was awarded",
            LossReason::InvalidBidResponse(why) => match why {
                Invalid::UnknownImp => "invalid bid: impid is not an imp of the request",
                Invalid::NonPositivePrice => "invalid bid: price must be > 0",
                Invalid::Currency => "invalid bid: currency is not the auction currency",
                Invalid::AboveMaxPrice => "invalid bid: price is above auction.max_bid_price",
                Invalid::TooManyBidsOnImp => {
                    "invalid bid: the seat is over auction.max_bids_per_seat_per_imp on this imp"
                }
                Invalid::TooManyBidsInResponse => {
                    "invalid bid: the answer is over auction.max_bids_per_response"
                }
                Invalid::TooLong(field) => field.text(),
            },
            LossReason::InvalidDealId => "deal not offered on this imp, or a deal is required",
            LossReason::BelowAuctionFloor => "below the imp's floor",
            LossReason::BelowDealFloor => "below the deal's floor",
            LossReason::LostToHigherBid => "lost to a higher bid",
            LossReason::BuyerSeatBlocked => "seat not allowed (bseat, wseat or the deal's wseat)",
            LossReason::AdvertiserExclusions => "advertiser domain blocked (badv)",
            LossReason::AppBundleExclusions => "app bundle blocked (bapp)",
            LossReason::CategoryExclusions => "category blocked (bcat)",
            LossReason::CreativeAttributeExclusions => "creative attribute blocked (battr)",
            LossReason::NotAllowedInDeal => "advertiser domain not allowed on the deal (wadomain)",
            LossReason::BudgetExhausted => "budget exhausted",
            LossReason::OutOfFlight => "campaign outside its flight (budget start/end)",
            LossReason::Paced => "held back by even pacing (spend ahead of the ideal line)",
            LossReason::Unrecorded => {
                "the win's event could not be written (the exchange's disk is full): not awarded"
            }
        }
    }
}

/// How the winner's price is set (`BidRequest.at`, `Deal.at`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuctionType {
    /// `at=1`: the winner pays its bid.
    FirstPrice,
    /// `at=2` (default) and exchange-specific values: second price plus 0.01.
    SecondPrice,
    /// A deal's `at=3`: the deal's floor is the price.
    FixedPrice,
}

impl AuctionType {
    /// Maps `BidRequest.at` (absent means 2; validation allows only 1, 2 and >500).
    pub fn from_at(at: Option<u8>) -> Self {
        match at {
            Some(1) => AuctionType::FirstPrice,
            _ => AuctionType::SecondPrice,
        }
    }

    /// Maps `Deal.at`: `None` when absent or not 1, 2 or 3 (the request's applies).
    pub fn from_deal_at(at: Option<u32>) -> Option<Self> {
        match at {
            Some(1) => Some(AuctionType::FirstPrice),
            Some(2) => Some(AuctionType::SecondPrice),
            Some(3) => Some(AuctionType::FixedPrice),
            _ => None,
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
    /// Advertiser domains allowed on the deal (a subdomain of one is
    /// allowed too); empty means all.
    pub wadomain: &'a [String],
    /// The deal's own auction type, overriding the request's.
    pub at: Option<AuctionType>,
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
    /// Deals offered, sorted by id (looked up by binary search).
    pub deals: Vec<DealRule<'a>>,
    /// Blocked creative attributes of the banner, video, audio and native
    /// offers (in that order, as `bid.mtype` 1 to 4 names them).
    pub battr: [&'a [i32]; 4],
}

impl ImpRule<'_> {
    /// True when `attr` is blocked for a creative of type `mtype`; without
    /// a known `mtype`, a block on any of the imp's media counts.
    fn blocks(&self, mtype: Option<i32>, attr: i32) -> bool {
        match mtype {
            Some(m @ 1..=4) => self.battr[(m - 1) as usize].contains(&attr),
            _ => self.battr.iter().any(|b| b.contains(&attr)),
        }
    }
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
    /// Blocked seats: an offer whose bidder name or claimed seat is listed loses.
    pub bseat: &'a [String],
    /// Allowed seats (empty: all): only the bidder name counts, because a
    /// claimed `seatbid.seat` is the bidder's word and could name any seat.
    pub wseat: &'a [String],
    /// Highest valid price (`auction.max_bid_price`).
    pub max_bid_price: Micros,
}

/// One bid as the auction sees it.
#[derive(Debug, Clone)]
pub struct Offer<'a> {
    /// Seat: the exchange's name of the bidder (its identity for every seat rule).
    pub seat: &'a str,
    /// `seatbid.seat` as the bidder sent it, if any.
    pub claimed_seat: Option<&'a str>,
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
    /// Creative attributes (`bid.attr`).
    pub attr: &'a [i32],
    /// Creative type (`bid.mtype`: 1 banner, 2 video, 3 audio, 4 native).
    pub mtype: Option<i32>,
    /// App bundle advertised.
    pub bundle: Option<&'a str>,
    /// Deal the bid is for.
    pub dealid: Option<&'a str>,
    /// Set when the exchange found the bid invalid before the auction (a
    /// cap on bids per answer or per imp); it loses with this reason.
    pub rejected: Option<Invalid>,
    /// Set when the budget the win would be charged to refused it: its
    /// lease cannot pay the price (1000), its flight does not include now
    /// (1001), or even pacing held it back (1002). `None` for bidders
    /// without a budget, and before a win is asked for.
    pub unpaid: Option<LossReason>,
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
    /// Offer indices grouped by imp, in input order within an imp: imp `i`'s
    /// are `by_imp[starts[i]..starts[i + 1]]`.
    by_imp: Vec<usize>,
    starts: Vec<usize>,
}

impl Outcome {
    /// The offers for imp `imp` (indices into the offers), in input order.
    pub fn offers_of(&self, imp: usize) -> &[usize] {
        match (self.starts.get(imp), self.starts.get(imp + 1)) {
            (Some(&a), Some(&b)) => &self.by_imp[a..b],
            _ => &[],
        }
    }

    /// Prices imp `imp` again from its own offers (after one of them changed,
    /// e.g. became unaffordable); the other imps are left as they are.
    pub fn rerun(&mut self, rules: &Rules<'_>, offers: &[Offer<'_>], imp: usize) {
        let (a, b) = (self.starts[imp], self.starts[imp + 1]);
        self.wins[imp] = price_imp(rules, offers, &self.by_imp[a..b], &mut self.reasons);
    }

    /// Withdraws imp `imp`'s win because the deadline passed before it could
    /// be awarded: the would-be winner loses with [`LossReason::Expired`].
    pub fn expire(&mut self, imp: usize) {
        if let Some(win) = self.wins.get_mut(imp).and_then(Option::take) {
            self.reasons[win.offer] = LossReason::Expired;
        }
    }
}

/// Runs the auction for every impression.
pub fn run(rules: &Rules<'_>, offers: &[Offer<'_>]) -> Outcome {
    let n = rules.imps.len();
    // Counting sort of the offers by imp: one pass to count, one to place.
    let mut starts = vec![0usize; n + 1];
    let mut reasons = vec![LossReason::LostToHigherBid; offers.len()];
    for (i, offer) in offers.iter().enumerate() {
        match offer.imp.filter(|&imp| imp < n) {
            Some(imp) => starts[imp + 1] += 1,
            // Never in an imp's group: its reason is final now.
            None => reasons[i] = check(rules, offer).err().unwrap_or(UNKNOWN_IMP),
        }
    }
    for i in 0..n {
        starts[i + 1] += starts[i];
    }
    let mut next = starts.clone();
    let mut by_imp = vec![0usize; starts[n]];
    for (i, offer) in offers.iter().enumerate() {
        if let Some(imp) = offer.imp.filter(|&imp| imp < n) {
            by_imp[next[imp]] = i;
            next[imp] += 1;
        }
    }
    let mut out = Outcome {
        wins: vec![None; n],
        reasons,
        by_imp,
        starts,
    };
    for imp in 0..n {
        out.rerun(rules, offers, imp);
    }
    out
}

const UNKNOWN_IMP: LossReason = LossReason::InvalidBidResponse(Invalid::UnknownImp);

/// True when `a` ranks before `b`: higher price, then earlier answer, then
/// seat name (equal on all three: the one met first stays ahead).
fn ahead(a: &Offer<'_>, b: &Offer<'_>) -> bool {
    b.price
        .cmp(&a.price)
        .then(a.arrival.cmp(&b.arrival))
        .then(a.seat.cmp(b.seat))
        .is_lt()
}

/// Finds the winner of one imp among `group` (its offers) in one pass and
/// prices it; sets the reason of every offer in the group.
fn price_imp(
    rules: &Rules<'_>,
    offers: &[Offer<'_>],
    group: &[usize],
    reasons: &mut [LossReason],
) -> Option<Win> {
    // The best eligible offer, and the best eligible offer of another seat.
    let mut best: Option<(usize, Eligible)> = None;
    let mut runner: Option<usize> = None;
    for &i in group {
        #[cfg(test)]
        tests::VISITS.with(|v| v.set(v.get() + 1));
        let offer = &offers[i];
        let eligible = match check(rules, offer) {
            Ok(e) => e,
            Err(reason) => {
                reasons[i] = reason;
                continue;
            }
        };
        reasons[i] = LossReason::LostToHigherBid;
        let Some((b, _)) = best else {
            best = Some((i, eligible));
            continue;
        };
        if ahead(offer, &offers[b]) {
            // The old best is of another seat than the new one, and ahead of
            // every other offer: the new runner-up. Of the same seat, the
            // runner-up (of another seat than both) stays.
            if offers[b].seat != offer.seat {
                runner = Some(b);
            }
            best = Some((i, eligible));
        } else if offers[b].seat != offer.seat && runner.is_none_or(|r| ahead(offer, &offers[r])) {
            runner = Some(i);
        }
    }
    let (winner, eligible) = best?;
    reasons[winner] = LossReason::Won;
    let price = offers[winner].price;
    let clearing = match eligible.pricing {
        AuctionType::FirstPrice => price,
        // A fixed price without a floor would give the imp away: priced as
        // second price instead (the pipeline refuses such deals anyway).
        AuctionType::FixedPrice if eligible.floor > Micros::ZERO => eligible.floor.min(price),
        AuctionType::FixedPrice | AuctionType::SecondPrice => {
            let second = runner.map_or(Micros::ZERO, |r| offers[r].price);
            let base = second.max(eligible.floor);
            Micros(price.0.min(base.0.saturating_add(INCREMENT.0)))
        }
    };
    Some(Win {
        offer: winner,
        clearing,
    })
}

/// What an eligible offer is priced by.
#[derive(Debug, Clone, Copy)]
struct Eligible {
    /// The floor that applies (the deal's, or the imp's).
    floor: Micros,
    /// Its auction type (the deal's, or the request's).
    pricing: AuctionType,
}

/// Eligibility of one offer; on success, the floor and pricing that apply.
fn check(rules: &Rules<'_>, offer: &Offer<'_>) -> Result<Eligible, LossReason> {
    use LossReason::InvalidBidResponse as Bad;
    if let Some(why) = offer.rejected {
        return Err(Bad(why));
    }
    let imp = offer
        .imp
        .and_then(|i| rules.imps.get(i))
        .ok_or(UNKNOWN_IMP)?;
    if offer.price <= Micros::ZERO {
        return Err(Bad(Invalid::NonPositivePrice));
    }
    if !offer.currency_ok {
        return Err(Bad(Invalid::Currency));
    }
    if offer.price > rules.max_bid_price {
        return Err(Bad(Invalid::AboveMaxPrice));
    }
    if seat_blocked(rules, offer) {
        return Err(LossReason::BuyerSeatBlocked);
    }
    if offer.adomain.iter().any(|d| domain_listed(d, rules.badv)) {
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
    if offer.attr.iter().any(|&a| imp.blocks(offer.mtype, a)) {
        return Err(LossReason::CreativeAttributeExclusions);
    }
    let pricing = rules.auction_type;
    let (floor, below, pricing) = match offer.dealid {
        Some(dealid) => {
            let deal = imp
                .deals
                .binary_search_by(|d| d.id.cmp(dealid))
                .map(|at| &imp.deals[at])
                .map_err(|_| LossReason::InvalidDealId)?;
            if !deal.wseat.is_empty() && !deal.wseat.iter().any(|s| s == offer.seat) {
                return Err(LossReason::BuyerSeatBlocked);
            }
            // Every domain the bid names must be allowed, and it must name one.
            if !deal.wadomain.is_empty()
                && (offer.adomain.is_empty()
                    || !offer
                        .adomain
                        .iter()
                        .all(|d| domain_listed(d, deal.wadomain)))
            {
                return Err(LossReason::NotAllowedInDeal);
            }
            let pricing = deal.at.unwrap_or(pricing);
            if deal.floor > Micros::ZERO {
                (deal.floor, LossReason::BelowDealFloor, pricing)
            } else {
                (imp.floor, LossReason::BelowAuctionFloor, pricing)
            }
        }
        None if imp.private_auction => return Err(LossReason::InvalidDealId),
        None => (imp.floor, LossReason::BelowAuctionFloor, pricing),
    };
    if offer.price < floor {
        return Err(below);
    }
    // Last: a bid that fails an earlier rule gets that rule's reason.
    if let Some(why) = offer.unpaid {
        return Err(why);
    }
    Ok(Eligible { floor, pricing })
}

/// True when the request's seat rules refuse the offer: its bidder name or
/// its claimed seat is in `bseat`, or `wseat` is set and does not list its
/// bidder name.
fn seat_blocked(rules: &Rules<'_>, offer: &Offer<'_>) -> bool {
    let listed = |list: &[String], seat: &str| list.iter().any(|s| s == seat);
    listed(rules.bseat, offer.seat)
        || offer.claimed_seat.is_some_and(|c| listed(rules.bseat, c))
        || (!rules.wseat.is_empty() && !listed(rules.wseat, offer.seat))
}

/// True when `domain` equals a listed domain or is a subdomain of one
/// (ASCII case-insensitive).
fn domain_listed(domain: &str, list: &[String]) -> bool {
    // Bytes, not str slicing: a non-ASCII domain must not split a character.
    let d = domain.as_bytes();
    list.iter().any(|b| {
        let b = b.as_bytes();
        d.len() >= b.len()
            && d[d.len() - b.len()..].eq_ignore_ascii_case(b)
            && (d.len() == b.len() || d[d.len() - b.len() - 1] == b'.')
    })
}

#[cfg(test)]
mod tests;
