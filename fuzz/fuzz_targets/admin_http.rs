#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice::admin::fuzz::http_request(data));
