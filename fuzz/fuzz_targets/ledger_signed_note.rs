#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_ledger::fuzz::parse_signed_note(data));
