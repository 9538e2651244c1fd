//! Auction-result events as the ledger reads them from Kafka:
//! `AuctionResult::from_json` on any bytes must return, never panic, and an
//! event it accepts must encode and decode back to itself.
//!
//! The body of the fuzz target; `fuzz_targets/event.rs` hands it libFuzzer's
//! inputs, and `exchange/tests/fuzz_smoke.rs` runs it on stable in CI.

use rtb_proto::events::AuctionResult;

/// One input: must return, never panic (the checks above).
pub(crate) fn run(data: &[u8]) {
    let Ok(event) = AuctionResult::from_json(data) else {
        return;
    };
    let _ = event.key();
    let again = AuctionResult::from_json(&event.to_json()).expect("an encoded event decodes");
    assert_eq!(again, event, "an event survives a round trip");
}
