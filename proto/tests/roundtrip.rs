//! Property tests: encode then decode is the identity for generated requests and responses.

use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;
use rtb_proto::openrtb::*;
use rtb_proto::{decode_request, decode_response, encode_request, encode_response, Micros};
use serde_json::{Map, Value};

fn text() -> BoxedStrategy<String> {
    // Quotes, backslashes, control and non-ASCII characters exercise string escaping.
    "[a-zA-Z0-9 _./:\"\\\\\n\u{e9}\u{1F600}-]{0,10}".boxed()
}

fn texts() -> BoxedStrategy<Vec<String>> {
    vec(text(), 0..3).boxed()
}

fn micros() -> BoxedStrategy<Micros> {
    prop_oneof![
        Just(Micros::ZERO),
        (-1_000_000_000_000i64..1_000_000_000_000).prop_map(Micros)
    ]
    .boxed()
}

/// Decimal-looking floats, which every JSON parser reads back to the same f64.
fn decimal() -> BoxedStrategy<f64> {
    (-10_000_000i64..10_000_000)
        .prop_map(|x| x as f64 / 1000.0)
        .boxed()
}

fn json_leaf() -> BoxedStrategy<Value> {
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

fn json_value() -> BoxedStrategy<Value> {
    json_leaf()
        .prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..4).prop_map(Value::Array),
                vec((text(), inner), 0..4).prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
        .boxed()
}

fn ext() -> BoxedStrategy<Option<Ext>> {
    of(vec((text(), json_value()), 0..4).prop_map(|kv| Ext(kv.into_iter().collect::<Map<_, _>>())))
        .boxed()
}

fn format() -> BoxedStrategy<Format> {
    (
        of(any::<u32>()),
        of(any::<u32>()),
        of(1u32..20),
        of(1u32..20),
        of(any::<u32>()),
        ext(),
    )
        .prop_map(|(w, h, wratio, hratio, wmin, ext)| Format {
            w,
            h,
            wratio,
            hratio,
            wmin,
            ext,
        })
        .boxed()
}

fn banner() -> BoxedStrategy<Banner> {
    (
        vec(format(), 0..3),
        of(any::<u32>()),
        of(any::<u32>()),
        vec(any::<i32>(), 0..3),
        of(any::<i32>()),
        texts(),
        of(text()),
        ext(),
    )
        .prop_map(|(format, w, h, battr, pos, mimes, id, ext)| Banner {
            format,
            w,
            h,
            battr,
            pos,
            mimes,
            id,
            ext,
            ..Banner::default()
        })
        .boxed()
}

fn durfloors() -> BoxedStrategy<Vec<DurFloors>> {
    vec(
        (of(any::<u32>()), of(any::<u32>()), micros(), ext()).prop_map(
            |(mindur, maxdur, bidfloor, ext)| DurFloors {
                mindur,
                maxdur,
                bidfloor,
                ext,
            },
        ),
        0..3,
    )
    .boxed()
}

fn video() -> BoxedStrategy<Video> {
    (
        texts(),
        (
            of(any::<u32>()),
            of(any::<u32>()),
            of(any::<i32>()),
            of(any::<u32>()),
        ),
        (
            vec(any::<i32>(), 0..3),
            of(any::<u32>()),
            of(any::<u32>()),
            of(text()),
            vec(any::<u32>(), 0..3),
        ),
        (
            of(any::<i32>()),
            of(any::<u8>()),
            of(micros()),
            of(any::<u32>()),
            vec(banner(), 0..2),
        ),
        durfloors(),
        ext(),
    )
        .prop_map(
            |(
                mimes,
                (minduration, maxduration, startdelay, poddur),
                (protocols, w, h, podid, rqddurs),
                (plcmt, skip, mincpmpersec, maxbitrate, companionad),
                durfloors,
                ext,
            )| Video {
                mimes,
                minduration,
                maxduration,
                startdelay,
                poddur,
                protocols,
                w,
                h,
                podid,
                rqddurs,
                plcmt,
                skip,
                mincpmpersec,
                maxbitrate,
                companionad,
                durfloors,
                ext,
                ..Video::default()
            },
        )
        .boxed()
}

fn audio() -> BoxedStrategy<Audio> {
    (
        texts(),
        of(any::<u32>()),
        of(any::<u32>()),
        vec(any::<i32>(), 0..3),
        of(any::<i32>()),
        of(any::<u8>()),
        durfloors(),
        ext(),
    )
        .prop_map(
            |(mimes, minduration, maxseq, api, feed, stitched, durfloors, ext)| Audio {
                mimes,
                minduration,
                maxseq,
                api,
                feed,
                stitched,
                durfloors,
                ext,
                ..Audio::default()
            },
        )
        .boxed()
}

fn native() -> BoxedStrategy<Native> {
    (text(), of(text()), vec(any::<i32>(), 0..3), ext())
        .prop_map(|(request, ver, api, ext)| Native {
            request,
            ver,
            api,
            ext,
            ..Native::default()
        })
        .boxed()
}

fn pmp() -> BoxedStrategy<Pmp> {
    let deal = (
        text(),
        micros(),
        of(text()),
        of(any::<u32>()),
        texts(),
        texts(),
        of(any::<u8>()),
        durfloors(),
        ext(),
    )
        .prop_map(
            |(id, bidfloor, bidfloorcur, at, wseat, wadomain, guar, durfloors, ext)| Deal {
                id,
                bidfloor,
                bidfloorcur,
                at,
                wseat,
                wadomain,
                guar,
                durfloors,
                ext,
                ..Deal::default()
            },
        );
    (of(any::<u8>()), vec(deal, 0..3), ext())
        .prop_map(|(private_auction, deals, ext)| Pmp {
            private_auction,
            deals,
            ext,
        })
        .boxed()
}

fn imp() -> BoxedStrategy<Imp> {
    let metric =
        (text(), decimal(), of(text()), ext()).prop_map(|(r#type, value, vendor, ext)| Metric {
            r#type,
            value,
            vendor,
            ext,
        });
    let qty = (decimal(), of(any::<i32>()), of(text()), ext()).prop_map(
        |(multiplier, sourcetype, vendor, ext)| Qty {
            multiplier,
            sourcetype,
            vendor,
            ext,
        },
    );
    let refresh = (
        vec(
            (of(any::<i32>()), of(any::<u32>()), ext()).prop_map(|(reftype, minint, ext)| {
                RefSettings {
                    reftype,
                    minint,
                    ext,
                }
            }),
            0..2,
        ),
        of(any::<u32>()),
        ext(),
    )
        .prop_map(|(refsettings, count, ext)| Refresh {
            refsettings,
            count,
            ext,
        });
    (
        (
            text(),
            vec(metric, 0..2),
            of(banner()),
            of(video()),
            of(audio()),
            of(native()),
            of(pmp()),
        ),
        (
            micros(),
            of(text()),
            of(any::<u8>()),
            of(text()),
            of(any::<u8>()),
            of(any::<u32>()),
        ),
        (of(qty), of(decimal()), of(refresh), texts(), ext()),
    )
        .prop_map(
            |(
                (id, metric, banner, video, audio, native, pmp),
                (bidfloor, bidfloorcur, instl, tagid, secure, exp),
                (qty, dt, refresh, iframebuster, ext),
            )| Imp {
                id,
                metric,
                banner,
                video,
                audio,
                native,
                pmp,
                bidfloor,
                bidfloorcur,
                instl,
                tagid,
                secure,
                exp,
                qty,
                dt,
                refresh,
                iframebuster,
                ext,
                ..Imp::default()
            },
        )
        .boxed()
}

fn publisher() -> BoxedStrategy<Publisher> {
    (of(text()), of(text()), texts(), of(text()), ext())
        .prop_map(|(id, name, cat, domain, ext)| Publisher {
            id,
            name,
            cat,
            domain,
            ext,
            ..Publisher::default()
        })
        .boxed()
}

fn content() -> BoxedStrategy<Content> {
    let producer = (of(text()), of(text()), ext()).prop_map(|(id, name, ext)| Producer {
        id,
        name,
        ext,
        ..Producer::default()
    });
    let network =
        (of(text()), of(text()), of(text()), ext()).prop_map(|(id, name, domain, ext)| Network {
            id,
            name,
            domain,
            ext,
        });
    let channel =
        (of(text()), of(text()), of(text()), ext()).prop_map(|(id, name, domain, ext)| Channel {
            id,
            name,
            domain,
            ext,
        });
    (
        of(text()),
        of(any::<u32>()),
        of(text()),
        texts(),
        of(producer),
        of(network),
        of(channel),
        of(any::<u32>()),
        vec(data(), 0..2),
        ext(),
    )
        .prop_map(
            |(id, episode, title, genres, producer, network, channel, len, data, ext)| Content {
                id,
                episode,
                title,
                genres,
                producer,
                network,
                channel,
                len,
                data,
                ext,
                ..Content::default()
            },
        )
        .boxed()
}

fn site() -> BoxedStrategy<Site> {
    (
        of(text()),
        of(text()),
        texts(),
        of(text()),
        of(text()),
        of(publisher()),
        of(content()),
        of(text()),
        ext(),
    )
        .prop_map(
            |(id, domain, cat, page, r#ref, publisher, content, inventorypartnerdomain, ext)| {
                Site {
                    id,
                    domain,
                    cat,
                    page,
                    r#ref,
                    publisher,
                    content,
                    inventorypartnerdomain,
                    ext,
                    ..Site::default()
                }
            },
        )
        .boxed()
}

fn app() -> BoxedStrategy<App> {
    (
        of(text()),
        of(text()),
        of(text()),
        of(any::<u8>()),
        of(publisher()),
        ext(),
    )
        .prop_map(|(id, bundle, storeurl, paid, publisher, ext)| App {
            id,
            bundle,
            storeurl,
            paid,
            publisher,
            ext,
            ..App::default()
        })
        .boxed()
}

fn dooh() -> BoxedStrategy<Dooh> {
    (
        of(text()),
        texts(),
        of(any::<i32>()),
        of(publisher()),
        of(content()),
        ext(),
    )
        .prop_map(
            |(id, venuetype, venuetypetax, publisher, content, ext)| Dooh {
                id,
                venuetype,
                venuetypetax,
                publisher,
                content,
                ext,
                ..Dooh::default()
            },
        )
        .boxed()
}

fn geo() -> BoxedStrategy<Geo> {
    (
        of(decimal()),
        of(decimal()),
        of(any::<i32>()),
        of(any::<u32>()),
        of(text()),
        of(any::<i32>()),
        ext(),
    )
        .prop_map(
            |(lat, lon, r#type, accuracy, country, utcoffset, ext)| Geo {
                lat,
                lon,
                r#type,
                accuracy,
                country,
                utcoffset,
                ext,
                ..Geo::default()
            },
        )
        .boxed()
}

fn data() -> BoxedStrategy<Data> {
    let segment =
        (of(text()), of(text()), of(text()), ext()).prop_map(|(id, name, value, ext)| Segment {
            id,
            name,
            value,
            ext,
        });
    (of(text()), of(text()), vec(segment, 0..3), ext())
        .prop_map(|(id, name, segment, ext)| Data {
            id,
            name,
            segment,
            ext,
        })
        .boxed()
}

fn brand_version() -> BoxedStrategy<BrandVersion> {
    (text(), texts(), ext())
        .prop_map(|(brand, version, ext)| BrandVersion {
            brand,
            version,
            ext,
        })
        .boxed()
}

fn device() -> BoxedStrategy<Device> {
    let sua = (
        vec(brand_version(), 0..3),
        of(brand_version()),
        of(any::<u8>()),
        of(text()),
        of(any::<i32>()),
        ext(),
    )
        .prop_map(
            |(browsers, platform, mobile, model, source, ext)| UserAgent {
                browsers,
                platform,
                mobile,
                model,
                source,
                ext,
                ..UserAgent::default()
            },
        );
    (
        (
            of(geo()),
            of(any::<u8>()),
            of(text()),
            of(sua),
            of(text()),
            of(text()),
        ),
        (
            of(any::<u32>()),
            of(any::<u32>()),
            of(any::<u32>()),
            of(decimal()),
            of(text()),
            ext(),
        ),
    )
        .prop_map(
            |((geo, dnt, ua, sua, ip, ifa), (w, h, ppi, pxratio, os, ext))| Device {
                geo,
                dnt,
                ua,
                sua,
                ip,
                ifa,
                w,
                h,
                ppi,
                pxratio,
                os,
                ext,
                ..Device::default()
            },
        )
        .boxed()
}

fn user() -> BoxedStrategy<User> {
    let uid = (text(), of(any::<i32>()), ext()).prop_map(|(id, atype, ext)| Uid { id, atype, ext });
    let eid = (
        of(text()),
        of(text()),
        of(any::<i32>()),
        vec(uid, 0..3),
        ext(),
    )
        .prop_map(|(inserter, source, mm, uids, ext)| Eid {
            inserter,
            source,
            mm,
            uids,
            ext,
            ..Eid::default()
        });
    (
        of(text()),
        of(text()),
        of(any::<u32>()),
        of(geo()),
        vec(data(), 0..2),
        of(text()),
        vec(eid, 0..3),
        ext(),
    )
        .prop_map(|(id, buyeruid, yob, geo, data, consent, eids, ext)| User {
            id,
            buyeruid,
            yob,
            geo,
            data,
            consent,
            eids,
            ext,
            ..User::default()
        })
        .boxed()
}

fn source() -> BoxedStrategy<Source> {
    let node = (text(), text(), of(text()), of(any::<u8>()), ext()).prop_map(
        |(asi, sid, rid, hp, ext)| SupplyChainNode {
            asi,
            sid,
            rid,
            hp,
            ext,
            ..SupplyChainNode::default()
        },
    );
    let schain = (of(any::<u8>()), vec(node, 0..3), text(), ext()).prop_map(
        |(complete, nodes, ver, ext)| SupplyChain {
            complete,
            nodes,
            ver,
            ext,
        },
    );
    (of(any::<u8>()), of(text()), of(schain), ext())
        .prop_map(|(fd, tid, schain, ext)| Source {
            fd,
            tid,
            schain,
            ext,
            ..Source::default()
        })
        .boxed()
}

fn regs() -> BoxedStrategy<Regs> {
    (
        of(any::<u8>()),
        of(any::<u8>()),
        of(text()),
        of(text()),
        vec(any::<i32>(), 0..3),
        ext(),
    )
        .prop_map(|(coppa, gdpr, us_privacy, gpp, gpp_sid, ext)| Regs {
            coppa,
            gdpr,
            us_privacy,
            gpp,
            gpp_sid,
            ext,
        })
        .boxed()
}

fn bid_request() -> BoxedStrategy<BidRequest> {
    (
        (
            text(),
            vec(imp(), 0..3),
            of(site()),
            of(app()),
            of(dooh()),
            of(device()),
            of(user()),
        ),
        (
            of(any::<u8>()),
            of(any::<u32>()),
            of(any::<u32>()),
            texts(),
            texts(),
            texts(),
            texts(),
        ),
        (of(source()), of(regs()), of(any::<i32>()), texts(), ext()),
    )
        .prop_map(
            |(
                (id, imp, site, app, dooh, device, user),
                (test, at, tmax, wseat, cur, bcat, badv),
                (source, regs, cattax, wlang, ext),
            )| BidRequest {
                id,
                imp,
                site,
                app,
                dooh,
                device,
                user,
                test,
                at,
                tmax,
                wseat,
                cur,
                bcat,
                badv,
                source,
                regs,
                cattax,
                wlang,
                ext,
                ..BidRequest::default()
            },
        )
        .boxed()
}

fn bid() -> BoxedStrategy<Bid> {
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

fn bid_response() -> BoxedStrategy<BidResponse> {
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
