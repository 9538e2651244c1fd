//! Bidder responses: `decode_response` then `validate_response` on any bytes
//! must return (an error or a response), never panic. A response that decodes
//! must survive a round trip through the encoder.
//!
//! The body of the fuzz target; `fuzz_targets/response.rs` hands it libFuzzer's
//! inputs, and `exchange/tests/fuzz_smoke.rs` runs it on stable in CI.

/// One input: must return, never panic (the checks above).
pub(crate) fn run(data: &[u8]) {
    let Ok(resp) = rtb_proto::decode_response(data) else {
        return;
    };
    let valid = rtb_proto::validate_response(&resp).is_ok();
    let mut out = Vec::new();
    rtb_proto::encode_response(&resp, &mut out);
    let again = rtb_proto::decode_response(&out).expect("an encoded response decodes");
    if valid {
        rtb_proto::validate_response(&again)
            .expect("a valid response stays valid after a round trip");
    }
}
