//! libFuzzer entry of the `forward` target; the body is `../targets/forward.rs`.
#![no_main]

#[path = "../targets/forward.rs"]
mod target;

libfuzzer_sys::fuzz_target!(|data: &[u8]| target::run(data));
