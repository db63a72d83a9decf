#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice::session::masking::fuzz_stage(data));
