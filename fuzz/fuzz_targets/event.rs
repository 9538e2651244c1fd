//! libFuzzer entry of the `event` target; the body is `../targets/event.rs`.
#![no_main]

#[path = "../targets/event.rs"]
mod target;

libfuzzer_sys::fuzz_target!(|data: &[u8]| target::run(data));
