//! libFuzzer entry of the `request` target; the body is `../targets/request.rs`.
#![no_main]

#[path = "../targets/request.rs"]
mod target;

libfuzzer_sys::fuzz_target!(|data: &[u8]| target::run(data));
