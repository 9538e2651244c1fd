//! The exchange's TOML configuration: `Config::from_toml_str` on any UTF-8
//! text must return a config or an error naming the problem, never panic.
//!
//! The body of the fuzz target; `fuzz_targets/config.rs` hands it libFuzzer's
//! inputs, and `exchange/tests/fuzz_smoke.rs` runs it on stable in CI.

use rtb_exchange::config::Config;

/// One input: must return, never panic (the checks above).
pub(crate) fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = Config::from_toml_str(text) {
        // Everything derived from a validated config must be computable too.
        let _ = config.auction.budget(None);
        let _ = config.auction.budget(Some(u32::MAX));
        let _ = config.auction.response_margin();
        let _ = config.auction.bidder_network_margin();
    }
}
