//! Strategies for impressions and their media, deal and floor objects.

use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;
use rtb_proto::openrtb::*;

use super::{decimal, ext, micros, text, texts};

pub(crate) fn format() -> BoxedStrategy<Format> {
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

pub(crate) fn banner() -> BoxedStrategy<Banner> {
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

pub(crate) fn durfloors() -> BoxedStrategy<Vec<DurFloors>> {
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

pub(crate) fn video() -> BoxedStrategy<Video> {
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

pub(crate) fn audio() -> BoxedStrategy<Audio> {
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

pub(crate) fn native() -> BoxedStrategy<Native> {
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

pub(crate) fn pmp() -> BoxedStrategy<Pmp> {
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

pub(crate) fn imp() -> BoxedStrategy<Imp> {
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
