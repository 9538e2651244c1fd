//! Forwarding a publisher's request: `patch_tmax` on any bytes must return
//! (an error or a body), never panic, and leave its output alone on error.
//! For a body `decode_request` accepts it must succeed, and the patched body
//! must decode to the same request with only `tmax` changed (and stay valid
//! when it was): what bidders receive is what the exchange validated.
//!
//! The body of the fuzz target; `fuzz_targets/forward.rs` hands it libFuzzer's
//! inputs, and `exchange/tests/fuzz_smoke.rs` runs it on stable in CI.

/// One input: must return, never panic (the checks above).
pub(crate) fn run(data: &[u8]) {
    // The last input byte picks the tmax written, so both short and long
    // numbers replace the publisher's.
    let tmax = match data.last() {
        Some(&b) if b % 2 == 0 => u32::from(b),
        Some(&b) => u32::MAX - u32::from(b),
        None => 0,
    };
    let mut out = b"kept".to_vec();
    let patched = rtb_proto::patch_tmax(data, tmax, &mut out);
    if patched.is_err() {
        assert_eq!(out, b"kept", "an error leaves the output as it was");
    }
    let Ok(req) = rtb_proto::decode_request(data) else {
        return;
    };
    patched.expect("a body that decodes is patched");
    let again = rtb_proto::decode_request(&out[4..]).expect("a patched request decodes");
    let mut expected = req.clone();
    expected.tmax = Some(tmax);
    assert_eq!(again, expected, "only tmax changes");
    if rtb_proto::validate_request(&req).is_ok() {
        rtb_proto::validate_request(&again).expect("a valid request stays valid once patched");
    }
}
