#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stationflow_fuzz::context(data));
