#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| a2a_bench::route::fuzz::messages(data));
