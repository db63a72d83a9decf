#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_loadgen::fuzz::pg_mock_session(data));
