//! One test per validation rule, asserting on the reported paths and messages.

use rtb_proto::openrtb::{
    App, Audio, Banner, Bid, BidRequest, BidResponse, Deal, Dooh, Imp, Metric, Native, Pmp,
    SeatBid, Site, Video,
};
use rtb_proto::{validate_request, validate_response, Micros, Violation, Violations};

fn banner_imp(id: &str) -> Imp {
    Imp {
        id: id.into(),
        banner: Some(Banner::default()),
        ..Imp::default()
    }
}

fn request() -> BidRequest {
    BidRequest {
        id: "r1".into(),
        imp: vec![banner_imp("1")],
        site: Some(Site::default()),
        ..BidRequest::default()
    }
}

fn violations(req: &BidRequest) -> Vec<String> {
    validate_request(req)
        .err()
        .map(|v| v.0.iter().map(ToString::to_string).collect())
        .unwrap_or_default()
}

fn resp_violations(resp: &BidResponse) -> Vec<String> {
    validate_response(resp)
        .err()
        .map(|v| v.0.iter().map(ToString::to_string).collect())
        .unwrap_or_default()
}

#[test]
fn baseline_request_is_valid() {
    assert_eq!(validate_request(&request()), Ok(()));
}

#[test]
fn empty_id_and_missing_imps_are_both_reported() {
    let req = BidRequest::default();
    assert_eq!(
        violations(&req),
        ["id: must not be empty", "imp: at least one imp is required"]
    );
}

#[test]
fn imp_id_must_be_present_and_unique() {
    let mut req = request();
    req.imp = vec![
        banner_imp("a"),
        banner_imp("a"),
        banner_imp(""),
        banner_imp("a"),
    ];
    assert_eq!(
        violations(&req),
        [
            "imp[1].id: duplicate of imp[0].id",
            "imp[2].id: must not be empty",
            "imp[3].id: duplicate of imp[0].id"
        ]
    );
}

#[test]
fn imp_must_offer_a_media_type() {
    let mut req = request();
    req.imp[0].banner = None;
    assert_eq!(
        violations(&req),
        ["imp[0]: at least one of banner, video, audio or native is required"]
    );
    req.imp[0].native = Some(Native {
        request: "{}".into(),
        ..Native::default()
    });
    assert_eq!(validate_request(&req), Ok(()));
}

#[test]
fn video_and_audio_need_mimes() {
    let mut req = request();
    req.imp[0].video = Some(Video::default());
    req.imp[0].audio = Some(Audio::default());
    assert_eq!(
        violations(&req),
        [
            "imp[0].video.mimes: at least one mime type is required",
            "imp[0].audio.mimes: at least one mime type is required"
        ]
    );
    req.imp[0].video = Some(Video {
        mimes: vec!["video/mp4".into()],
        ..Video::default()
    });
    req.imp[0].audio = Some(Audio {
        mimes: vec!["audio/mp4".into()],
        ..Audio::default()
    });
    assert_eq!(validate_request(&req), Ok(()));
}

#[test]
fn native_needs_a_request() {
    let mut req = request();
    req.imp[0].native = Some(Native::default());
    assert_eq!(
        violations(&req),
        ["imp[0].native.request: must not be empty"]
    );
}

#[test]
fn deal_needs_an_id_and_non_negative_floor() {
    let mut req = request();
    req.imp[0].pmp = Some(Pmp {
        deals: vec![
            Deal {
                id: "d1".into(),
                ..Deal::default()
            },
            Deal {
                bidfloor: Micros(-1),
                ..Deal::default()
            },
        ],
        ..Pmp::default()
    });
    assert_eq!(
        violations(&req),
        [
            "imp[0].pmp.deals[1].id: must not be empty",
            "imp[0].pmp.deals[1].bidfloor: must not be negative"
        ]
    );
}

#[test]
fn metric_needs_type_and_probability_value() {
    let mut req = request();
    req.imp[0].metric = vec![
        Metric {
            r#type: "viewability".into(),
            value: 0.5,
            vendor: None,
            ext: None,
        },
        Metric {
            r#type: String::new(),
            value: 1.5,
            vendor: None,
            ext: None,
        },
        Metric {
            r#type: "x".into(),
            value: -0.1,
            vendor: None,
            ext: None,
        },
    ];
    assert_eq!(
        violations(&req),
        [
            "imp[0].metric[1].type: must not be empty",
            "imp[0].metric[1].value: 1.5 is outside 0.0..=1.0",
            "imp[0].metric[2].value: -0.1 is outside 0.0..=1.0",
        ]
    );
}

#[test]
fn at_most_one_of_site_app_dooh() {
    let mut req = request();
    req.app = Some(App::default());
    assert_eq!(
        violations(&req),
        ["app: at most one of site, app and dooh is allowed (found site, app)"]
    );
    req.site = None;
    req.dooh = Some(Dooh::default());
    assert_eq!(
        violations(&req),
        ["dooh: at most one of site, app and dooh is allowed (found app, dooh)"]
    );
    req.app = None;
    assert_eq!(validate_request(&req), Ok(()));
}

#[test]
fn bidfloor_must_not_be_negative() {
    let mut req = request();
    req.imp[0].bidfloor = Micros(-10);
    assert_eq!(violations(&req), ["imp[0].bidfloor: must not be negative"]);
}

#[test]
fn auction_type_is_1_2_or_exchange_specific() {
    let mut req = request();
    for ok in [1, 2, 501, 1000] {
        req.at = Some(ok);
        assert_eq!(validate_request(&req), Ok(()), "at={ok}");
    }
    for bad in [0, 3, 500] {
        req.at = Some(bad);
        assert_eq!(
            violations(&req),
            [format!(
                "at: auction type {bad} is not 1, 2 or exchange specific (>500)"
            )]
        );
    }
}

#[test]
fn currencies_are_three_letter_codes() {
    let mut req = request();
    req.cur = vec!["USD".into(), "usd".into(), "EURO".into(), "".into()];
    assert_eq!(
        violations(&req),
        [
            "cur[1]: \"usd\" is not a 3-letter currency code",
            "cur[2]: \"EURO\" is not a 3-letter currency code",
            "cur[3]: \"\" is not a 3-letter currency code",
        ]
    );
}

#[test]
fn violations_display_joins_with_semicolons() {
    let v = Violations(vec![
        Violation {
            path: "imp[1].id".into(),
            message: "duplicate of imp[0].id".into(),
        },
        Violation {
            path: "id".into(),
            message: "must not be empty".into(),
        },
    ]);
    assert_eq!(
        v.to_string(),
        "imp[1].id: duplicate of imp[0].id; id: must not be empty"
    );
    let _: &dyn std::error::Error = &v;
}

fn bid(id: &str, impid: &str, price: i64) -> Bid {
    Bid {
        id: id.into(),
        impid: impid.into(),
        price: Micros(price),
        ..Bid::default()
    }
}

#[test]
fn no_bid_responses_are_valid() {
    assert_eq!(validate_response(&BidResponse::default()), Ok(()));
    let resp = BidResponse {
        id: "x".into(),
        nbr: Some(2),
        ..BidResponse::default()
    };
    assert_eq!(validate_response(&resp), Ok(()));
}

#[test]
fn bids_need_ids_impids_and_non_negative_prices() {
    let resp = BidResponse {
        id: "x".into(),
        seatbid: vec![
            SeatBid {
                bid: vec![bid("1", "1", 1), bid("", "", -1)],
                ..SeatBid::default()
            },
            SeatBid {
                bid: vec![bid("2", "1", 0)],
                ..SeatBid::default()
            },
        ],
        ..BidResponse::default()
    };
    assert_eq!(
        resp_violations(&resp),
        [
            "seatbid[0].bid[1].id: must not be empty",
            "seatbid[0].bid[1].impid: must not be empty",
            "seatbid[0].bid[1].price: must not be negative"
        ]
    );
}

#[test]
fn duplicate_bid_ids_are_reported_across_seats() {
    let resp = BidResponse {
        seatbid: vec![
            SeatBid {
                bid: vec![bid("1", "1", 1)],
                ..SeatBid::default()
            },
            SeatBid {
                bid: vec![bid("1", "2", 1)],
                ..SeatBid::default()
            },
        ],
        ..BidResponse::default()
    };
    assert_eq!(
        resp_violations(&resp),
        ["seatbid[1].bid[0].id: duplicate of seatbid[0].bid[0].id"]
    );
}
