//! OpenRTB substitution macros (`${AUCTION_PRICE}` and friends) in adm, nurl, burl and lurl.
//!
//! One left-to-right pass; a string without `${` is returned borrowed, so the
//! common case of markup without macros costs a scan and no allocation.
//! Unknown macros are left as they are (a bidder may use its own).

use std::borrow::Cow;
use std::fmt::Write as _;

use rtb_proto::Micros;

/// The values macros expand to, for one winning bid.
#[derive(Debug, Clone)]
pub struct MacroValues<'a> {
    /// `${AUCTION_ID}`: the bid request id.
    pub auction_id: &'a str,
    /// `${AUCTION_BID_ID}`: the bidder's `BidResponse.bidid` (empty when absent).
    pub bid_id: &'a str,
    /// `${AUCTION_IMP_ID}`.
    pub imp_id: &'a str,
    /// `${AUCTION_SEAT_ID}`.
    pub seat_id: &'a str,
    /// `${AUCTION_AD_ID}`: `Bid.adid` (empty when absent).
    pub ad_id: &'a str,
    /// `${AUCTION_PRICE}`: the clearing price.
    pub price: Micros,
    /// `${AUCTION_CURRENCY}`.
    pub currency: &'a str,
    /// `${AUCTION_LOSS}`: the loss reason code (0 for the winner).
    pub loss: u16,
    /// `${AUCTION_MIN_TO_WIN}`: the lowest price that would have won.
    pub min_to_win: Micros,
}

/// Expands every known macro in `text`.
pub fn substitute<'t>(text: &'t str, v: &MacroValues<'_>) -> Cow<'t, str> {
    let Some(first) = text.find("${") else {
        return Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len() + 16);
    out.push_str(&text[..first]);
    let mut rest = &text[first..];
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            // An unterminated `${`: keep the rest verbatim.
            out.push_str(&rest[start..]);
            return Cow::Owned(out);
        };
        let name = &after[..end];
        match name {
            "AUCTION_ID" => out.push_str(v.auction_id),
            "AUCTION_BID_ID" => out.push_str(v.bid_id),
            "AUCTION_IMP_ID" => out.push_str(v.imp_id),
            "AUCTION_SEAT_ID" => out.push_str(v.seat_id),
            "AUCTION_AD_ID" => out.push_str(v.ad_id),
            "AUCTION_CURRENCY" => out.push_str(v.currency),
            // Writing into a String cannot fail.
            "AUCTION_PRICE" => {
                let _ = write!(out, "{}", v.price);
            }
            "AUCTION_LOSS" => {
                let _ = write!(out, "{}", v.loss);
            }
            "AUCTION_MIN_TO_WIN" => {
                let _ = write!(out, "{}", v.min_to_win);
            }
            _ => {
                out.push_str(&rest[start..start + 2 + end + 1]);
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> MacroValues<'static> {
        MacroValues {
            auction_id: "req-1",
            bid_id: "bidid-9",
            imp_id: "imp-2",
            seat_id: "alpha",
            ad_id: "ad-7",
            price: Micros(2_010_000),
            currency: "USD",
            loss: 0,
            min_to_win: Micros(2_010_000),
        }
    }

    #[test]
    fn every_macro_expands() {
        let text = "p=${AUCTION_PRICE}&a=${AUCTION_ID}&b=${AUCTION_BID_ID}&i=${AUCTION_IMP_ID}\
                    &s=${AUCTION_SEAT_ID}&ad=${AUCTION_AD_ID}&c=${AUCTION_CURRENCY}\
                    &l=${AUCTION_LOSS}&m=${AUCTION_MIN_TO_WIN}";
        assert_eq!(
            substitute(text, &values()),
            "p=2.01&a=req-1&b=bidid-9&i=imp-2&s=alpha&ad=ad-7&c=USD&l=0&m=2.01"
        );
    }

    #[test]
    fn text_without_macros_is_borrowed() {
        assert!(matches!(
            substitute("<div>ad</div>", &values()),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn unknown_and_unterminated_macros_stay() {
        assert_eq!(
            substitute("${AUCTION_MULTIPLIER}-${AUCTION_PRICE}-${OOPS", &values()),
            "${AUCTION_MULTIPLIER}-2.01-${OOPS"
        );
        assert_eq!(substitute("é${AUCTION_ID}é", &values()), "éreq-1é");
    }
}
