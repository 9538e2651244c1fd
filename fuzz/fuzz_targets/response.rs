//! libFuzzer entry of the `response` target; the body is `../targets/response.rs`.
#![no_main]

#[path = "../targets/response.rs"]
mod target;

libfuzzer_sys::fuzz_target!(|data: &[u8]| target::run(data));
