//! Property tests: encode then decode is the identity for generated requests and responses.

mod strategies;

use proptest::prelude::*;
use rtb_proto::{decode_request, decode_response, encode_request, encode_response, Micros};
use strategies::{bid_request, bid_response, micros};

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
