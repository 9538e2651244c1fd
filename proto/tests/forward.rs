//! Forwarding the publisher's bytes: [`patch_tmax`] changes only the top-level
//! `tmax` of any JSON object, however it is written (property tests over
//! random objects, random whitespace and random escapes), and the typed
//! decoder refuses the duplicate keys that would let a bidder read a
//! different request from the one the exchange validated.

use proptest::collection::vec;
use proptest::prelude::*;
use rtb_proto::openrtb::BidRequest;
use rtb_proto::{decode_request, patch_tmax, PATCH_HEADROOM};
use serde_json::{json, Map, Value};

/// What a JSON parser must read from the patched body: `v` with every
/// top-level key equal to `tmax` but for ASCII case set to `tmax`, and a
/// `tmax` added when there was none.
fn expected(v: &Value, tmax: u32) -> Value {
    let mut map = v.as_object().expect("an object").clone();
    for (k, value) in map.iter_mut() {
        if k.eq_ignore_ascii_case("tmax") {
            *value = json!(tmax);
        }
    }
    map.entry("tmax").or_insert(json!(tmax));
    Value::Object(map)
}

fn patch(body: &[u8], tmax: u32) -> Result<Vec<u8>, TestCaseError> {
    let mut out = Vec::with_capacity(body.len() + PATCH_HEADROOM);
    patch_tmax(body, tmax, &mut out)
        .map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(body))))?;
    Ok(out)
}

fn parse(body: &[u8]) -> Result<Value, TestCaseError> {
    serde_json::from_slice(body).map_err(|e| {
        TestCaseError::fail(format!(
            "patched body is not JSON ({e}): {}",
            String::from_utf8_lossy(body)
        ))
    })
}

/// Keys that are, or nearly are, `tmax`, and some that are not.
fn key() -> BoxedStrategy<String> {
    prop_oneof![
        3 => Just("tmax".to_owned()),
        1 => Just("TMAX".to_owned()),
        1 => Just("tMaX".to_owned()),
        1 => Just("tma".to_owned()),
        1 => Just("tmaxx".to_owned()),
        1 => Just("tmax ".to_owned()),
        1 => Just("\"tmax\"".to_owned()),
        1 => Just("id".to_owned()),
        1 => Just("ext".to_owned()),
        4 => "[a-zA-Z0-9 _\"\\\\/{}\\[\\],:\u{0}\u{1f}\u{e9}\u{1F600}-]{0,8}",
    ]
    .boxed()
}

fn leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1_000_000i64..1_000_000).prop_map(|x| Value::from(x as f64 / 1000.0)),
        "[a-z\"\\\\{}\\[\\]:,\u{0}\n\u{e9}\u{1F600}]{0,8}".prop_map(Value::String),
    ]
    .boxed()
}

fn value() -> BoxedStrategy<Value> {
    leaf()
        .prop_recursive(4, 32, 5, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..5).prop_map(Value::Array),
                vec((key(), inner), 0..5).prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
        .boxed()
}

fn object() -> BoxedStrategy<Value> {
    vec((key(), value()), 0..8)
        .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>()))
        .boxed()
}

/// xorshift64*: the writer's choices of whitespace and escapes.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// Writes JSON as a publisher might: whitespace between any two tokens,
/// and any character of a string (keys too) possibly escaped.
struct Writer {
    rng: Rng,
    out: String,
}

impl Writer {
    fn ws(&mut self) {
        for _ in 0..self.rng.below(4).saturating_sub(1) {
            let c = [' ', '\n', '\t', '\r'][self.rng.below(4) as usize];
            self.out.push(c);
        }
    }

    fn unit(&mut self, u: u16) {
        let hex = format!("{u:04x}");
        let hex = if self.rng.below(2) == 0 {
            hex
        } else {
            hex.to_uppercase()
        };
        self.out.push_str("\\u");
        self.out.push_str(&hex);
    }

    fn string(&mut self, s: &str) {
        self.out.push('"');
        for c in s.chars() {
            let short = match c {
                '"' => Some("\\\""),
                '\\' => Some("\\\\"),
                '\n' => Some("\\n"),
                '/' => Some("\\/"),
                _ => None,
            };
            let must = c == '"' || c == '\\' || (c as u32) < 0x20;
            if must || self.rng.below(4) == 0 {
                match short {
                    Some(e) if self.rng.below(2) == 0 => self.out.push_str(e),
                    _ => {
                        let mut buf = [0u16; 2];
                        for u in c.encode_utf16(&mut buf) {
                            self.unit(*u);
                        }
                    }
                }
            } else {
                self.out.push(c);
            }
        }
        self.out.push('"');
    }

    fn value(&mut self, v: &Value) {
        match v {
            Value::Object(map) => {
                self.out.push('{');
                self.ws();
                for (i, (k, v)) in map.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                        self.ws();
                    }
                    self.string(k);
                    self.ws();
                    self.out.push(':');
                    self.ws();
                    self.value(v);
                    self.ws();
                }
                self.out.push('}');
            }
            Value::Array(items) => {
                self.out.push('[');
                self.ws();
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                        self.ws();
                    }
                    self.value(v);
                    self.ws();
                }
                self.out.push(']');
            }
            Value::String(s) => self.string(s),
            other => self.out.push_str(&other.to_string()),
        }
    }
}

fn written(v: &Value, seed: u64) -> String {
    let mut w = Writer {
        rng: Rng(seed | 1),
        out: String::new(),
    };
    w.ws();
    w.value(v);
    w.ws();
    w.out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn patching_changes_only_the_top_level_tmax(v in object(), seed in any::<u64>(), tmax in any::<u32>()) {
        let body = written(&v, seed);
        // The writer's output is JSON for `v` (else the test proves nothing).
        prop_assert_eq!(&parse(body.as_bytes())?, &v, "{}", body);
        let out = patch(body.as_bytes(), tmax)?;
        prop_assert_eq!(parse(&out)?, expected(&v, tmax), "{} -> {}", body, String::from_utf8_lossy(&out));
        let map = v.as_object().unwrap();
        let like_tmax = map.keys().filter(|k| k.eq_ignore_ascii_case("tmax")).count();
        if like_tmax == 0 || (like_tmax == 1 && map.contains_key("tmax")) {
            prop_assert!(out.len() <= body.len() + PATCH_HEADROOM);
        }
    }

    #[test]
    fn compact_serde_json_output_is_patched_too(v in object(), tmax in any::<u32>()) {
        let body = serde_json::to_vec(&v).unwrap();
        let out = patch(&body, tmax)?;
        prop_assert_eq!(parse(&out)?, expected(&v, tmax));
    }

    #[test]
    fn any_bytes_return_and_an_error_leaves_the_output_alone(body in vec(any::<u8>(), 0..64), tmax in any::<u32>()) {
        let mut out = b"kept".to_vec();
        if patch_tmax(&body, tmax, &mut out).is_err() {
            prop_assert_eq!(&out, b"kept");
        }
        // serde_json reading a top-level object means the patcher must too.
        if let Ok(v @ Value::Object(_)) = serde_json::from_slice::<Value>(&body) {
            prop_assert_eq!(parse(&patch(&body, tmax)?)?, expected(&v, tmax));
        }
    }

    #[test]
    fn mangled_objects_never_panic(v in object(), seed in any::<u64>(), cut in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut body = written(&v, seed).into_bytes();
        let at = cut.index(body.len() + 1);
        let mut out = Vec::new();
        let truncated = &body[..at];
        let _ = patch_tmax(truncated, 1, &mut out);
        if at < body.len() {
            body[at] = byte;
        }
        out.clear();
        if patch_tmax(&body, 1, &mut out).is_err() {
            prop_assert!(out.is_empty());
        }
    }
}

/// A request the typed model accepts, with every top-level field the model
/// knows that validation reads.
fn base() -> Value {
    json!({
        "id": "r1",
        "imp": [{"id": "1", "banner": {"w": 300, "h": 250}, "bidfloor": 0.5, "bidfloorcur": "USD"}],
        "site": {"id": "s1", "domain": "pub.example"},
        "device": {"ua": "ua", "ip": "192.0.2.1"},
        "user": {"id": "u1"},
        "test": 0,
        "at": 2,
        "tmax": 120,
        "wseat": ["a"],
        "bseat": ["b"],
        "allimps": 0,
        "cur": ["USD"],
        "wlang": ["en"],
        "acat": ["IAB1"],
        "bcat": ["IAB2"],
        "cattax": 1,
        "badv": ["bad.example"],
        "bapp": ["com.bad"],
        "source": {"tid": "t"},
        "regs": {"coppa": 0},
        "ext": {"vendor": 1}
    })
}

/// `body` (an object's JSON) with `member` written first.
fn with_first(body: &str, member: &str) -> String {
    format!("{{{member},{}", &body[1..])
}

#[test]
fn the_base_request_decodes() {
    let body = serde_json::to_string(&base()).unwrap();
    let req = decode_request(body.as_bytes()).unwrap();
    assert_eq!(req.tmax, Some(120));
    rtb_proto::validate_request(&req).unwrap();
}

#[test]
fn a_duplicate_tmax_is_refused_by_both_decoders() {
    let body = serde_json::to_string(&base()).unwrap();
    for member in [
        r#""tmax":5000"#,
        r#""t\u006dax":5000"#,
        r#""\u0074max":120"#,
    ] {
        let dup = with_first(&body, member);
        let err = decode_request(dup.as_bytes()).expect_err(&dup);
        assert!(
            err.message.contains("duplicate field `tmax`"),
            "{dup}: {err}"
        );
        // serde_json, the fallback that explains errors, agrees.
        let slow = serde_json::from_str::<BidRequest>(&dup).expect_err(&dup);
        assert!(
            slow.to_string().contains("duplicate field `tmax`"),
            "{slow}"
        );
    }
}

#[test]
fn every_known_top_level_field_seen_twice_is_refused() {
    let v = base();
    let body = serde_json::to_string(&v).unwrap();
    for (k, value) in v.as_object().unwrap() {
        // The same key and value again: still refused, a field is read once.
        let dup = with_first(&body, &format!("{}:{value}", json!(k)));
        let err = decode_request(dup.as_bytes()).expect_err(&dup);
        assert!(
            err.message.contains(&format!("duplicate field `{k}`")),
            "{k}: {err}"
        );
    }
}

#[test]
fn nested_known_fields_seen_twice_are_refused() {
    for (path, body) in [
        (
            "imp[0].bidfloor",
            r#"{"id":"r","imp":[{"id":"1","bidfloor":0.5,"banner":{},"bidfloor":0}]}"#,
        ),
        (
            "imp[0].id",
            r#"{"id":"r","imp":[{"id":"1","banner":{},"i\u0064":"2"}]}"#,
        ),
        (
            "site.id",
            r#"{"id":"r","imp":[{"id":"1","banner":{}}],"site":{"id":"a","id":"b"}}"#,
        ),
    ] {
        let err = decode_request(body.as_bytes()).expect_err(path);
        assert!(err.message.contains("duplicate field"), "{path}: {err}");
    }
}

#[test]
fn an_escaped_tmax_key_is_tmax_to_the_decoder_and_to_the_patcher() {
    let body = r#"{"id":"r","imp":[{"id":"1","banner":{}}],"t\u006dax":500}"#;
    assert_eq!(decode_request(body.as_bytes()).unwrap().tmax, Some(500));
    let mut out = Vec::new();
    patch_tmax(body.as_bytes(), 80, &mut out).unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["tmax"], 80);
    assert_eq!(v.as_object().unwrap().len(), 3, "no second tmax: {v}");
    assert_eq!(decode_request(&out).unwrap().tmax, Some(80));
}

#[test]
fn a_case_variant_of_tmax_is_ignored_by_the_decoder_but_patched() {
    let body = r#"{"id":"r","imp":[{"id":"1","banner":{}}],"TMAX":5000}"#;
    assert_eq!(decode_request(body.as_bytes()).unwrap().tmax, None);
    let mut out = Vec::new();
    patch_tmax(body.as_bytes(), 80, &mut out).unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!((&v["tmax"], &v["TMAX"]), (&json!(80), &json!(80)), "{v}");
}

/// Duplicate keys inside an opaque `ext` are kept by both decoders (the last
/// copy wins) and forwarded as they came: the exchange reads nothing from a
/// request's `ext`, so no bidder can read one the exchange acted on.
#[test]
fn duplicate_keys_inside_ext_are_opaque_and_the_last_wins() {
    let body = r#"{"id":"r","imp":[{"id":"1","banner":{}}],"ext":{"a":1,"a":2}}"#;
    let req = decode_request(body.as_bytes()).unwrap();
    assert_eq!(req.ext.unwrap().0["a"], 2);
    let slow: BidRequest = serde_json::from_str(body).unwrap();
    assert_eq!(slow.ext.unwrap().0["a"], 2);
    let mut out = Vec::new();
    patch_tmax(body.as_bytes(), 80, &mut out).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{"tmax":80,"id":"r","imp":[{"id":"1","banner":{}}],"ext":{"a":1,"a":2}}"#
    );
}

/// serde's derived decoders also read a struct from an array of its fields
/// in order; a bidder handed the publisher's bytes would see an array where
/// OpenRTB has an object. Requests are decoded without that form.
#[test]
fn structs_written_as_arrays_are_refused_at_any_depth() {
    for (path, body) in [
        ("", r#"["r1",[{"id":"1","banner":{}}]]"#),
        (
            "site",
            r#"{"id":"r","imp":[{"id":"1","banner":{}}],"site":["s1"]}"#,
        ),
        ("imp[0]", r#"{"id":"r","imp":[["1"]]}"#),
        (
            "imp[0].banner",
            r#"{"id":"r","imp":[{"id":"1","banner":[[],300,250]}]}"#,
        ),
        (
            "user.eids[0]",
            r#"{"id":"r","imp":[{"id":"1","banner":{}}],"user":{"eids":[["ins.example"]]}}"#,
        ),
    ] {
        let err = decode_request(body.as_bytes()).expect_err(body);
        assert_eq!(err.path, path, "{body}: {err}");
        assert!(err.message.contains("invalid type: sequence"), "{err}");
    }
    // Free-form JSON keeps its arrays.
    let body =
        r#"{"id":"r","imp":[{"id":"1","banner":{},"ext":{"a":[["x"]]}}],"ext":{"b":[1,[2]]}}"#;
    assert!(decode_request(body.as_bytes()).is_ok());
}
