//! OpenRTB substitution macros (`${AUCTION_PRICE}` and friends) in adm, nurl, burl and lurl.
//!
//! One left-to-right pass; a string without `${` is returned borrowed, so the
//! common case of markup without macros costs a scan and no allocation.
//! Unknown macros are left as they are (a bidder may use its own).
//!
//! Two modes. [`substitute`] inserts values as they are: for `adm`, whose
//! markup the bidder escapes as it needs. [`substitute_url`] is for `nurl`,
//! `burl` and `lurl`: every value is percent-encoded as a URL component
//! (RFC 3986 unreserved characters `A-Za-z0-9-._~` kept, every other UTF-8
//! byte written `%XX`), so a request id like `x&price=9` cannot add a query
//! parameter, and one with a space cannot make the URL unparseable.

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

/// Expands every known macro in `text`, values raw (for `adm`).
pub fn substitute<'t>(text: &'t str, v: &MacroValues<'_>) -> Cow<'t, str> {
    expand(text, v, false)
}

/// Expands every known macro in the URL `text`, each value percent-encoded
/// as a URL component (for `nurl`, `burl`, `lurl`).
pub fn substitute_url<'t>(text: &'t str, v: &MacroValues<'_>) -> Cow<'t, str> {
    expand(text, v, true)
}

/// Appends `value` to `out`, percent-encoded when `url` is set.
fn push(out: &mut String, value: &str, url: bool) {
    if !url {
        out.push_str(value);
        return;
    }
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            // Writing into a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
}

fn expand<'t>(text: &'t str, v: &MacroValues<'_>, url: bool) -> Cow<'t, str> {
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
        // Numbers print with digits, '.' and '-' only: nothing to encode.
        match name {
            "AUCTION_ID" => push(&mut out, v.auction_id, url),
            "AUCTION_BID_ID" => push(&mut out, v.bid_id, url),
            "AUCTION_IMP_ID" => push(&mut out, v.imp_id, url),
            "AUCTION_SEAT_ID" => push(&mut out, v.seat_id, url),
            "AUCTION_AD_ID" => push(&mut out, v.ad_id, url),
            "AUCTION_CURRENCY" => push(&mut out, v.currency, url),
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

    #[test]
    fn url_mode_percent_encodes_values() {
        let mut v = values();
        v.auction_id = "x&price=9";
        v.imp_id = "a b/c?d#e";
        v.seat_id = "é";
        let url = "https://dsp.example/win?a=${AUCTION_ID}&i=${AUCTION_IMP_ID}&s=${AUCTION_SEAT_ID}&p=${AUCTION_PRICE}";
        assert_eq!(
            substitute_url(url, &v),
            "https://dsp.example/win?a=x%26price%3D9&i=a%20b%2Fc%3Fd%23e&s=%C3%A9&p=2.01"
        );
        // Unreserved characters stay; the markup gets values raw.
        v.auction_id = "Az09-._~";
        assert_eq!(substitute_url("${AUCTION_ID}", &v), "Az09-._~");
        v.auction_id = "x&price=9";
        assert_eq!(substitute("${AUCTION_ID}", &v), "x&price=9");
        // The template itself is not touched, unknown macros neither.
        assert_eq!(
            substitute_url("http://d.example/a b?${OTHER}&${AUCTION_ID}", &v),
            "http://d.example/a b?${OTHER}&x%26price%3D9"
        );
        assert!(matches!(
            substitute_url("http://d.example/", &v),
            Cow::Borrowed(_)
        ));
        // Templates with macros parse as URLs (`$`, `{`, `}` are accepted),
        // so the property below is not vacuous.
        assert!("https://d.example/w?a=${AUCTION_ID}"
            .parse::<http::Uri>()
            .is_ok());
    }

    /// Decodes `%XX` escapes (the test's own inverse of the encoding).
    fn percent_decode(s: &str) -> Vec<u8> {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        out
    }

    proptest::proptest! {
        /// Any value (any Unicode, any length) substituted into a URL that
        /// parses gives a URL that parses, and decoding the component gives
        /// the value back.
        #[test]
        fn substituted_urls_round_trip(
            id in ".{0,40}",
            imp in "\\PC{0,20}",
            path in "[a-z0-9/._-]{0,12}",
            price in 0i64..1_000_000_000_000,
        ) {
            let mut v = values();
            v.auction_id = &id;
            v.imp_id = &imp;
            v.price = Micros(price);
            let template = format!(
                "https://dsp.example/{path}?id=${{AUCTION_ID}}&imp=${{AUCTION_IMP_ID}}&p=${{AUCTION_PRICE}}"
            );
            let plain = template.replace("${", "").replace('}', "");
            proptest::prop_assume!(plain.parse::<http::Uri>().is_ok());
            let url = substitute_url(&template, &v).into_owned();
            let uri: http::Uri = url.parse().map_err(|e| {
                proptest::test_runner::TestCaseError::fail(format!("{url:?}: {e}"))
            })?;
            let query = uri.query().unwrap_or("");
            let parts: Vec<&str> = query.split('&').collect();
            proptest::prop_assert_eq!(parts.len(), 3, "{}", url);
            proptest::prop_assert_eq!(percent_decode(&parts[0]["id=".len()..]), id.as_bytes());
            proptest::prop_assert_eq!(percent_decode(&parts[1]["imp=".len()..]), imp.as_bytes());
            proptest::prop_assert_eq!(&parts[2]["p=".len()..], Micros(price).to_string());
        }

        /// When a template with macros parses as a URL, so does any
        /// substitution of it, whatever the values.
        #[test]
        fn parseable_templates_stay_parseable(
            template in "(https?://[a-z]{1,8}(:[0-9]{1,4})?)?(/|[a-zA-Z0-9%?=&._~-]|\\$\\{AUCTION_(ID|PRICE|IMP_ID|SEAT_ID|AD_ID|BID_ID|CURRENCY|LOSS)\\})*",
            value in "\\PC{0,30}",
        ) {
            let v = MacroValues {
                auction_id: &value,
                bid_id: &value,
                imp_id: &value,
                seat_id: &value,
                ad_id: &value,
                currency: &value,
                ..values()
            };
            proptest::prop_assume!(template.parse::<http::Uri>().is_ok());
            let url = substitute_url(&template, &v);
            proptest::prop_assert!(url.parse::<http::Uri>().is_ok(), "{:?} from {:?}", url, template);
        }
    }
}
