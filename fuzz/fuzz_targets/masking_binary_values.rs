#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice::masking::fuzz::binary_values(data));
