//! proptest strategies for the OpenRTB model, shared by the round-trip tests.

mod context;
mod imp;

pub(crate) use context::bid_request;

use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;
use rtb_proto::openrtb::*;
use rtb_proto::Micros;
use serde_json::{Map, Value};

pub(crate) fn text() -> BoxedStrategy<String> {
    // Quotes, backslashes, control and non-ASCII characters exercise string escaping.
    "[a-zA-Z0-9 _./:\"\\\\\n\u{e9}\u{1F600}-]{0,10}".boxed()
}

pub(crate) fn texts() -> BoxedStrategy<Vec<String>> {
    vec(text(), 0..3).boxed()
}

pub(crate) fn micros() -> BoxedStrategy<Micros> {
    prop_oneof![
        Just(Micros::ZERO),
        (-1_000_000_000_000i64..1_000_000_000_000).prop_map(Micros)
    ]
    .boxed()
}

/// Decimal-looking floats, which every JSON parser reads back to the same f64.
pub(crate) fn decimal() -> BoxedStrategy<f64> {
    (-10_000_000i64..10_000_000)
        .prop_map(|x| x as f64 / 1000.0)
        .boxed()
}

pub(crate) fn json_leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        decimal().prop_map(Value::from),
        text().prop_map(Value::String),
    ]
    .boxed()
}

pub(crate) fn json_value() -> BoxedStrategy<Value> {
    json_leaf()
        .prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..4).prop_map(Value::Array),
                vec((text(), inner), 0..4).prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
        .boxed()
}

pub(crate) fn ext() -> BoxedStrategy<Option<Ext>> {
    of(vec((text(), json_value()), 0..4).prop_map(|kv| Ext(kv.into_iter().collect::<Map<_, _>>())))
        .boxed()
}

pub(crate) fn bid() -> BoxedStrategy<Bid> {
    (
        (
            text(),
            text(),
            micros(),
            of(text()),
            of(text()),
            of(text()),
            of(text()),
            of(text()),
        ),
        (
            texts(),
            of(text()),
            of(text()),
            of(text()),
            vec(any::<i32>(), 0..3),
            vec(any::<i32>(), 0..3),
            of(text()),
        ),
        (
            of(any::<u32>()),
            of(any::<u32>()),
            of(any::<u32>()),
            of(any::<u32>()),
            of(any::<i32>()),
            of(any::<i32>()),
            ext(),
        ),
    )
        .prop_map(
            |(
                (id, impid, price, nurl, burl, lurl, adm, adid),
                (adomain, cid, crid, dealid, attr, apis, language),
                (w, h, exp, dur, mtype, slotinpod, ext),
            )| Bid {
                id,
                impid,
                price,
                nurl,
                burl,
                lurl,
                adm,
                adid,
                adomain,
                cid,
                crid,
                dealid,
                attr,
                apis,
                language,
                w,
                h,
                exp,
                dur,
                mtype,
                slotinpod,
                ext,
                ..Bid::default()
            },
        )
        .boxed()
}

pub(crate) fn bid_response() -> BoxedStrategy<BidResponse> {
    let seatbid = (vec(bid(), 0..4), of(text()), of(any::<u8>()), ext()).prop_map(
        |(bid, seat, group, ext)| SeatBid {
            bid,
            seat,
            group,
            ext,
        },
    );
    (
        text(),
        vec(seatbid, 0..3),
        of(text()),
        of(text()),
        of(text()),
        of(any::<u32>()),
        ext(),
    )
        .prop_map(
            |(id, seatbid, bidid, cur, customdata, nbr, ext)| BidResponse {
                id,
                seatbid,
                bidid,
                cur,
                customdata,
                nbr,
                ext,
            },
        )
        .boxed()
}
