//! Strategies for the request top level, distribution channels, device and user.

use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;
use rtb_proto::openrtb::*;

use super::imp::imp;
use super::{decimal, ext, text, texts};

pub(crate) fn publisher() -> BoxedStrategy<Publisher> {
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

pub(crate) fn content() -> BoxedStrategy<Content> {
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

pub(crate) fn site() -> BoxedStrategy<Site> {
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

pub(crate) fn app() -> BoxedStrategy<App> {
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

pub(crate) fn dooh() -> BoxedStrategy<Dooh> {
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

pub(crate) fn geo() -> BoxedStrategy<Geo> {
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

pub(crate) fn data() -> BoxedStrategy<Data> {
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

pub(crate) fn brand_version() -> BoxedStrategy<BrandVersion> {
    (text(), texts(), ext())
        .prop_map(|(brand, version, ext)| BrandVersion {
            brand,
            version,
            ext,
        })
        .boxed()
}

pub(crate) fn device() -> BoxedStrategy<Device> {
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

pub(crate) fn user() -> BoxedStrategy<User> {
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

pub(crate) fn source() -> BoxedStrategy<Source> {
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

pub(crate) fn regs() -> BoxedStrategy<Regs> {
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

pub(crate) fn bid_request() -> BoxedStrategy<BidRequest> {
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
