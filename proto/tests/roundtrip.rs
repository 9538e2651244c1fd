//! Property tests: encode then decode is the identity for generated requests and responses.

use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;
use rtb_proto::openrtb::*;
use rtb_proto::{decode_request, decode_response, encode_request, encode_response, Micros};
use serde_json::{Map, Value};

fn text() -> impl Strategy<Value = String> {
    // Quotes, backslashes, control and non-ASCII characters exercise string escaping.
    "[a-zA-Z0-9 _./:\"\\\\\n\u{e9}\u{1F600}-]{0,10}"
}

fn texts() -> impl Strategy<Value = Vec<String>> {
    vec(text(), 0..3)
}

fn micros() -> impl Strategy<Value = Micros> {
    prop_oneof![Just(Micros::ZERO), (-1_000_000_000_000i64..1_000_000_000_000).prop_map(Micros)]
}

/// Decimal-looking floats, which every JSON parser reads back to the same f64.
fn decimal() -> impl Strategy<Value = f64> {
    (-10_000_000i64..10_000_000).prop_map(|x| x as f64 / 1000.0)
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        decimal().prop_map(Value::from),
        text().prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            vec((text(), inner), 0..4).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn ext() -> impl Strategy<Value = Option<Ext>> {
    of(vec((text(), json_value()), 0..4).prop_map(|kv| Ext(kv.into_iter().collect::<Map<_, _>>())))
}

fn format() -> impl Strategy<Value = Format> {
    (of(any::<u32>()), of(any::<u32>()), of(1u32..20), of(1u32..20), of(any::<u32>()), ext())
        .prop_map(|(w, h, wratio, hratio, wmin, ext)| Format { w, h, wratio, hratio, wmin, ext })
}

fn banner() -> impl Strategy<Value = Banner> {
    (vec(format(), 0..3), of(any::<u32>()), of(any::<u32>()), vec(any::<i32>(), 0..3), of(any::<i32>()), texts(), of(text()), ext())
        .prop_map(|(format, w, h, battr, pos, mimes, id, ext)| Banner { format, w, h, battr, pos, mimes, id, ext, ..Banner::default() })
}

fn durfloors() -> impl Strategy<Value = Vec<DurFloors>> {
    vec(
        (of(any::<u32>()), of(any::<u32>()), micros(), ext())
            .prop_map(|(mindur, maxdur, bidfloor, ext)| DurFloors { mindur, maxdur, bidfloor, ext }),
        0..3,
    )
}

fn video() -> impl Strategy<Value = Video> {
    (
        texts(),
        (of(any::<u32>()), of(any::<u32>()), of(any::<i32>()), of(any::<u32>())),
        (vec(any::<i32>(), 0..3), of(any::<u32>()), of(any::<u32>()), of(text()), vec(any::<u32>(), 0..3)),
        (of(any::<i32>()), of(any::<u8>()), of(micros()), of(any::<u32>()), vec(banner(), 0..2)),
        durfloors(),
        ext(),
    )
        .prop_map(|(mimes, (minduration, maxduration, startdelay, poddur), (protocols, w, h, podid, rqddurs), (plcmt, skip, mincpmpersec, maxbitrate, companionad), durfloors, ext)| Video {
            mimes, minduration, maxduration, startdelay, poddur, protocols, w, h, podid, rqddurs, plcmt, skip,
            mincpmpersec, maxbitrate, companionad, durfloors, ext, ..Video::default()
        })
}

fn audio() -> impl Strategy<Value = Audio> {
    (texts(), of(any::<u32>()), of(any::<u32>()), vec(any::<i32>(), 0..3), of(any::<i32>()), of(any::<u8>()), durfloors(), ext())
        .prop_map(|(mimes, minduration, maxseq, api, feed, stitched, durfloors, ext)| Audio {
            mimes, minduration, maxseq, api, feed, stitched, durfloors, ext, ..Audio::default()
        })
}

fn native() -> impl Strategy<Value = Native> {
    (text(), of(text()), vec(any::<i32>(), 0..3), ext()).prop_map(|(request, ver, api, ext)| Native { request, ver, api, ext, ..Native::default() })
}

fn pmp() -> impl Strategy<Value = Pmp> {
    let deal = (text(), micros(), of(text()), of(any::<u32>()), texts(), texts(), of(any::<u8>()), durfloors(), ext())
        .prop_map(|(id, bidfloor, bidfloorcur, at, wseat, wadomain, guar, durfloors, ext)| Deal {
            id, bidfloor, bidfloorcur, at, wseat, wadomain, guar, durfloors, ext, ..Deal::default()
        });
    (of(any::<u8>()), vec(deal, 0..3), ext()).prop_map(|(private_auction, deals, ext)| Pmp { private_auction, deals, ext })
}

fn imp() -> impl Strategy<Value = Imp> {
    let metric = (text(), decimal(), of(text()), ext()).prop_map(|(r#type, value, vendor, ext)| Metric { r#type, value, vendor, ext });
    let qty = (decimal(), of(any::<i32>()), of(text()), ext()).prop_map(|(multiplier, sourcetype, vendor, ext)| Qty { multiplier, sourcetype, vendor, ext });
    let refresh = (vec((of(any::<i32>()), of(any::<u32>()), ext()).prop_map(|(reftype, minint, ext)| RefSettings { reftype, minint, ext }), 0..2), of(any::<u32>()), ext())
        .prop_map(|(refsettings, count, ext)| Refresh { refsettings, count, ext });
    (
        (text(), vec(metric, 0..2), of(banner()), of(video()), of(audio()), of(native()), of(pmp())),
        (micros(), of(text()), of(any::<u8>()), of(text()), of(any::<u8>()), of(any::<u32>())),
        (of(qty), of(decimal()), of(refresh), texts(), ext()),
    )
        .prop_map(|((id, metric, banner, video, audio, native, pmp), (bidfloor, bidfloorcur, instl, tagid, secure, exp), (qty, dt, refresh, iframebuster, ext))| Imp {
            id, metric, banner, video, audio, native, pmp, bidfloor, bidfloorcur, instl, tagid, secure, exp, qty, dt, refresh, iframebuster, ext,
            ..Imp::default()
        })
}

fn publisher() -> impl Strategy<Value = Publisher> {
    (of(text()), of(text()), texts(), of(text()), ext()).prop_map(|(id, name, cat, domain, ext)| Publisher { id, name, cat, domain, ext, ..Publisher::default() })
}

fn content() -> impl Strategy<Value = Content> {
    let producer = (of(text()), of(text()), ext()).prop_map(|(id, name, ext)| Producer { id, name, ext, ..Producer::default() });
    let network = (of(text()), of(text()), of(text()), ext()).prop_map(|(id, name, domain, ext)| Network { id, name, domain, ext });
    let channel = (of(text()), of(text()), of(text()), ext()).prop_map(|(id, name, domain, ext)| Channel { id, name, domain, ext });
    (of(text()), of(any::<u32>()), of(text()), texts(), of(producer), of(network), of(channel), of(any::<u32>()), vec(data(), 0..2), ext())
        .prop_map(|(id, episode, title, genres, producer, network, channel, len, data, ext)| Content {
            id, episode, title, genres, producer, network, channel, len, data, ext, ..Content::default()
        })
}

fn site() -> impl Strategy<Value = Site> {
    (of(text()), of(text()), texts(), of(text()), of(text()), of(publisher()), of(content()), of(text()), ext())
        .prop_map(|(id, domain, cat, page, r#ref, publisher, content, inventorypartnerdomain, ext)| Site {
            id, domain, cat, page, r#ref, publisher, content, inventorypartnerdomain, ext, ..Site::default()
        })
}

fn app() -> impl Strategy<Value = App> {
    (of(text()), of(text()), of(text()), of(any::<u8>()), of(publisher()), ext())
        .prop_map(|(id, bundle, storeurl, paid, publisher, ext)| App { id, bundle, storeurl, paid, publisher, ext, ..App::default() })
}

fn dooh() -> impl Strategy<Value = Dooh> {
    (of(text()), texts(), of(any::<i32>()), of(publisher()), of(content()), ext())
        .prop_map(|(id, venuetype, venuetypetax, publisher, content, ext)| Dooh { id, venuetype, venuetypetax, publisher, content, ext, ..Dooh::default() })
}

fn geo() -> impl Strategy<Value = Geo> {
    (of(decimal()), of(decimal()), of(any::<i32>()), of(any::<u32>()), of(text()), of(any::<i32>()), ext())
        .prop_map(|(lat, lon, r#type, accuracy, country, utcoffset, ext)| Geo { lat, lon, r#type, accuracy, country, utcoffset, ext, ..Geo::default() })
}

fn data() -> impl Strategy<Value = Data> {
    let segment = (of(text()), of(text()), of(text()), ext()).prop_map(|(id, name, value, ext)| Segment { id, name, value, ext });
    (of(text()), of(text()), vec(segment, 0..3), ext()).prop_map(|(id, name, segment, ext)| Data { id, name, segment, ext })
}

fn brand_version() -> impl Strategy<Value = BrandVersion> {
    (text(), texts(), ext()).prop_map(|(brand, version, ext)| BrandVersion { brand, version, ext })
}

fn device() -> impl Strategy<Value = Device> {
    let sua = (vec(brand_version(), 0..3), of(brand_version()), of(any::<u8>()), of(text()), of(any::<i32>()), ext())
        .prop_map(|(browsers, platform, mobile, model, source, ext)| UserAgent { browsers, platform, mobile, model, source, ext, ..UserAgent::default() });
    (
        (of(geo()), of(any::<u8>()), of(text()), of(sua), of(text()), of(text())),
        (of(any::<u32>()), of(any::<u32>()), of(any::<u32>()), of(decimal()), of(text()), ext()),
    )
        .prop_map(|((geo, dnt, ua, sua, ip, ifa), (w, h, ppi, pxratio, os, ext))| Device { geo, dnt, ua, sua, ip, ifa, w, h, ppi, pxratio, os, ext, ..Device::default() })
}

fn user() -> impl Strategy<Value = User> {
    let uid = (text(), of(any::<i32>()), ext()).prop_map(|(id, atype, ext)| Uid { id, atype, ext });
    let eid = (of(text()), of(text()), of(any::<i32>()), vec(uid, 0..3), ext())
        .prop_map(|(inserter, source, mm, uids, ext)| Eid { inserter, source, mm, uids, ext, ..Eid::default() });
    (of(text()), of(text()), of(any::<u32>()), of(geo()), vec(data(), 0..2), of(text()), vec(eid, 0..3), ext())
        .prop_map(|(id, buyeruid, yob, geo, data, consent, eids, ext)| User { id, buyeruid, yob, geo, data, consent, eids, ext, ..User::default() })
}

fn source() -> impl Strategy<Value = Source> {
    let node = (text(), text(), of(text()), of(any::<u8>()), ext()).prop_map(|(asi, sid, rid, hp, ext)| SupplyChainNode { asi, sid, rid, hp, ext, ..SupplyChainNode::default() });
    let schain = (of(any::<u8>()), vec(node, 0..3), text(), ext()).prop_map(|(complete, nodes, ver, ext)| SupplyChain { complete, nodes, ver, ext });
    (of(any::<u8>()), of(text()), of(schain), ext()).prop_map(|(fd, tid, schain, ext)| Source { fd, tid, schain, ext, ..Source::default() })
}

fn regs() -> impl Strategy<Value = Regs> {
    (of(any::<u8>()), of(any::<u8>()), of(text()), of(text()), vec(any::<i32>(), 0..3), ext())
        .prop_map(|(coppa, gdpr, us_privacy, gpp, gpp_sid, ext)| Regs { coppa, gdpr, us_privacy, gpp, gpp_sid, ext })
}

fn bid_request() -> impl Strategy<Value = BidRequest> {
    (
        (text(), vec(imp(), 0..3), of(site()), of(app()), of(dooh()), of(device()), of(user())),
        (of(any::<u8>()), of(any::<u32>()), of(any::<u32>()), texts(), texts(), texts(), texts()),
        (of(source()), of(regs()), of(any::<i32>()), texts(), ext()),
    )
        .prop_map(|((id, imp, site, app, dooh, device, user), (test, at, tmax, wseat, cur, bcat, badv), (source, regs, cattax, wlang, ext))| BidRequest {
            id, imp, site, app, dooh, device, user, test, at, tmax, wseat, cur, bcat, badv, source, regs, cattax, wlang, ext,
            ..BidRequest::default()
        })
}

fn bid() -> impl Strategy<Value = Bid> {
    (
        (text(), text(), micros(), of(text()), of(text()), of(text()), of(text()), of(text())),
        (texts(), of(text()), of(text()), of(text()), vec(any::<i32>(), 0..3), vec(any::<i32>(), 0..3), of(text())),
        (of(any::<u32>()), of(any::<u32>()), of(any::<u32>()), of(any::<u32>()), of(any::<i32>()), of(any::<i32>()), ext()),
    )
        .prop_map(|((id, impid, price, nurl, burl, lurl, adm, adid), (adomain, cid, crid, dealid, attr, apis, language), (w, h, exp, dur, mtype, slotinpod, ext))| Bid {
            id, impid, price, nurl, burl, lurl, adm, adid, adomain, cid, crid, dealid, attr, apis, language, w, h, exp, dur, mtype, slotinpod, ext,
            ..Bid::default()
        })
}

fn bid_response() -> impl Strategy<Value = BidResponse> {
    let seatbid = (vec(bid(), 0..4), of(text()), of(any::<u8>()), ext()).prop_map(|(bid, seat, group, ext)| SeatBid { bid, seat, group, ext });
    (text(), vec(seatbid, 0..3), of(text()), of(text()), of(text()), of(any::<u32>()), ext())
        .prop_map(|(id, seatbid, bidid, cur, customdata, nbr, ext)| BidResponse { id, seatbid, bidid, cur, customdata, nbr, ext })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn request_encode_decode_is_identity(req in bid_request()) {
        let mut out = Vec::new();
        encode_request(&req, &mut out);
        let back = decode_request(&out).map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&out))))?;
        prop_assert_eq!(back, req);
    }

    #[test]
    fn response_encode_decode_is_identity(resp in bid_response()) {
        let mut out = Vec::new();
        encode_response(&resp, &mut out);
        let back = decode_response(&out).map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&out))))?;
        prop_assert_eq!(back, resp);
    }

    #[test]
    fn micros_json_round_trip(m in micros()) {
        let json = serde_json::to_string(&m).unwrap();
        let back: Micros = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, m);
        let decimal: f64 = m.to_string().parse().unwrap();
        prop_assert_eq!(Micros::from_decimal(decimal), Some(m));
    }
}
