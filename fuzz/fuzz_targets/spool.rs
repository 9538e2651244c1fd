//! libFuzzer entry of the `spool` target; the body is `../targets/spool.rs`.
#![no_main]

#[path = "../targets/spool.rs"]
mod target;

libfuzzer_sys::fuzz_target!(|data: &[u8]| target::run(data));
