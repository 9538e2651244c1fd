//! Decode error reporting and agreement between the simd-json fast path and serde_json.

use rtb_proto::openrtb::BidRequest;
use rtb_proto::{decode_request, decode_response, encode_request, DecodeError, Micros};

const MINIMAL: &str = r#"{"id":"r1","imp":[{"id":"1","banner":{"w":300,"h":250}}]}"#;

#[test]
fn decodes_minimal_request() {
    let req = decode_request(MINIMAL.as_bytes()).expect("minimal request decodes");
    assert_eq!(req.id, "r1");
    assert_eq!(req.imp[0].banner.as_ref().and_then(|b| b.w), Some(300));
    assert_eq!(req.imp[0].bidfloor, Micros::ZERO);
}

#[test]
fn negative_banner_width_names_the_field() {
    let body = br#"{"id":"r1","imp":[{"id":"1","banner":{"w":-1,"h":250}}]}"#;
    let err = decode_request(body).unwrap_err();
    assert_eq!(err.path, "imp[0].banner.w");
    assert_eq!(err.message, "invalid value: integer `-1`, expected u32");
    assert_eq!(
        err.to_string(),
        "imp[0].banner.w: invalid value: integer `-1`, expected u32"
    );
}

#[test]
fn nested_paths_are_reported() {
    let body = br#"{"id":"r1","imp":[{"id":"1","banner":{}},{"id":"2","banner":{"format":[{"w":1},{"wmin":-5}]}}]}"#;
    let err = decode_request(body).unwrap_err();
    assert_eq!(err.path, "imp[1].banner.format[1].wmin");
    let body = br#"{"id":"r1","imp":[],"regs":{"ext":"x"}}"#;
    assert_eq!(decode_request(body).unwrap_err().path, "regs.ext");
    let body = br#"{"id":"r1","imp":[],"device":{"geo":{"accuracy":-3}}}"#;
    assert_eq!(
        decode_request(body).unwrap_err().path,
        "device.geo.accuracy"
    );
}

#[test]
fn non_json_body_has_empty_path_and_position() {
    let err = decode_request(b"<html></html>").unwrap_err();
    assert_eq!(err.path, "");
    assert!(err.message.starts_with("body is not valid JSON"), "{err}");
    assert!(err.message.contains("line 1 column 1"), "{err}");
    assert_eq!(err.to_string(), err.message);
}

#[test]
fn response_errors_name_the_field() {
    let err =
        decode_response(br#"{"id":"x","seatbid":[{"bid":[{"id":"1","impid":"1"}]}]}"#).unwrap_err();
    assert_eq!(err.path, "seatbid[0].bid[0]");
    assert!(err.message.contains("missing field `price`"), "{err}");
    let err = decode_response(br#"{"seatbid":[{"bid":[{"id":"1","impid":"1","price":"1.0"}]}]}"#)
        .unwrap_err();
    assert_eq!(err.path, "seatbid[0].bid[0].price");
    assert!(err.message.contains("expected a number"), "{err}");
}

#[test]
fn decode_error_display_without_path() {
    let err = DecodeError {
        path: String::new(),
        message: "boom".into(),
    };
    assert_eq!(err.to_string(), "boom");
}

#[test]
fn unknown_fields_are_ignored_and_ext_passes_through() {
    let body = br#"{"id":"r1","zzz":{"a":[1,2]},"imp":[{"id":"1","native":{"request":"{}","x":1}}],"ext":{"k":[true,null,"s",1.5]}}"#;
    let req = decode_request(body).expect("decodes");
    let mut out = Vec::new();
    encode_request(&req, &mut out);
    let again = decode_request(&out).expect("re-decodes");
    assert_eq!(req, again);
    assert!(String::from_utf8(out)
        .unwrap()
        .contains(r#""ext":{"k":[true,null,"s",1.5]}"#));
}

#[test]
fn prices_decode_to_exact_micros() {
    let body = br#"{"id":"r1","imp":[{"id":"1","banner":{},"bidfloor":0.03,"pmp":{"deals":[{"id":"d","bidfloor":9.43}]}}]}"#;
    let req = decode_request(body).unwrap();
    assert_eq!(req.imp[0].bidfloor, Micros(30_000));
    assert_eq!(
        req.imp[0].pmp.as_ref().unwrap().deals[0].bidfloor,
        Micros(9_430_000)
    );
}

#[test]
fn fast_and_slow_parsers_agree() {
    let cases: &[&[u8]] = &[
        MINIMAL.as_bytes(),
        br#"{"id":"r1","imp":[]} x"#,
        br#"{"id":"r1","imp":[]}}"#,
        br#"{"id":"r1","imp":[],}"#,
        br#"{"id":"r1","tmax":01}"#,
        br#"{"id":"r1","tmax":1.0}"#,
        br#"{"id":"\ud800"}"#,
        br#"{"id":"\ud83d\ude00"}"#,
        b"{\"id\":\"\xff\"}",
        b"{\"id\":\"a\x01b\"}",
        br#"{'id':'r1'}"#,
        br#"{"id":"r1","tmax":NaN}"#,
        br#"{"id":"r1","ext":{"big":1e400}}"#,
        br#"{"id":"r1","ext":{"big":123456789012345678901234567890}}"#,
        br#"{"id":"r1","ext":{"m":18446744073709551615,"e":1E5}}"#,
        br#"{"id":"r1","id":"r2"}"#,
        br#"  {"id":"r1"}  "#,
        b"",
        b"   ",
        br#"{"id":"r1","imp":[{"id":"1","bidfloor":1e-7}]}"#,
        br#"{"id":"r1","imp":[{"id":"1","bidfloor":-0.5}]}"#,
        br#"{"id":"r1","tmax":4294967296}"#,
        br#"{"id":"r1","test":256}"#,
        br#"{"id":"r1","device":{"lmt":null,"geo":null}}"#,
        br#"{"id":"r1","imp":null}"#,
    ];
    for body in cases {
        assert_agree(body);
    }
}

/// The fast path may be stricter than serde_json (then its own message is reported), never laxer.
fn assert_agree(body: &[u8]) {
    {
        let fast = decode_request(body);
        let slow = serde_json::from_slice::<BidRequest>(body);
        if let (Err(e), Ok(_)) = (&fast, &slow) {
            assert!(
                e.message.starts_with("body rejected by the json parser"),
                "{e}"
            );
            return;
        }
        assert_eq!(
            fast.is_ok(),
            slow.is_ok(),
            "parsers disagree on {:?}: fast {:?}, slow {:?}",
            String::from_utf8_lossy(body),
            fast.err(),
            slow.err()
        );
        if let (Ok(a), Ok(b)) = (&fast, &slow) {
            assert_eq!(
                a,
                b,
                "different values for {:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
}

#[test]
fn deep_nesting_in_ext_is_handled_alike() {
    for depth in (100usize..140).chain([200, 1000]) {
        let body = format!(
            r#"{{"id":"r1","ext":{{"a":{}1{}}}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let fast = decode_request(body.as_bytes());
        let slow = serde_json::from_slice::<BidRequest>(body.as_bytes());
        assert_eq!(
            fast.is_ok(),
            slow.is_ok(),
            "depth {depth}: fast {:?} slow {:?}",
            fast.err(),
            slow.err()
        );
    }
}
