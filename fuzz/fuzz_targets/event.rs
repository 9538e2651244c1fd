//! Auction-result events as the ledger reads them from Kafka:
//! `AuctionResult::from_json` on any bytes must return, never panic, and an
//! event it accepts must encode and decode back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtb_proto::events::AuctionResult;

fuzz_target!(|data: &[u8]| {
    let Ok(event) = AuctionResult::from_json(data) else {
        return;
    };
    let _ = event.key();
    let again = AuctionResult::from_json(&event.to_json()).expect("an encoded event decodes");
    assert_eq!(again, event, "an event survives a round trip");
});
