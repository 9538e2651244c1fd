//! Publisher bid requests: `decode_request` then `validate_request` on any
//! bytes must return (an error or a request), never panic. A request that
//! decodes must survive a round trip through the encoder.
//!
//! The body of the fuzz target; `fuzz_targets/request.rs` hands it libFuzzer's
//! inputs, and `exchange/tests/fuzz_smoke.rs` runs it on stable in CI.

/// One input: must return, never panic (the checks above).
pub(crate) fn run(data: &[u8]) {
    let Ok(req) = rtb_proto::decode_request(data) else {
        return;
    };
    let valid = rtb_proto::validate_request(&req).is_ok();
    let mut out = Vec::new();
    rtb_proto::encode_request(&req, &mut out);
    let again = rtb_proto::decode_request(&out).expect("an encoded request decodes");
    if valid {
        rtb_proto::validate_request(&again)
            .expect("a valid request stays valid after a round trip");
    }
}
