//! The fuzz entry points on their seeds and on every truncation and many
//! bit flips of them: no panic (the fuzz targets run the same functions).

use sluice_ledger::fuzz::{parse_segment, parse_signed_note, parse_tlog_proof, seed_corpus};

#[test]
fn seeds_and_their_mutations_never_panic() {
    let seeds = seed_corpus();
    assert!(seeds.iter().any(|(t, _, _)| *t == "ledger_segment"));
    assert!(seeds.iter().any(|(t, _, _)| *t == "ledger_signed_note"));
    assert!(seeds.iter().any(|(t, _, _)| *t == "ledger_tlog_proof"));
    for (target, _, bytes) in seeds {
        let run = |data: &[u8]| match target {
            "ledger_segment" => parse_segment(data),
            "ledger_signed_note" => parse_signed_note(data),
            _ => parse_tlog_proof(data),
        };
        run(&bytes);
        for length in (0..bytes.len()).step_by(7) {
            run(&bytes[..length]);
        }
        for bit in (0..bytes.len() * 8).step_by(13) {
            let mut mutated = bytes.clone();
            mutated[bit / 8] ^= 1 << (bit % 8);
            run(&mutated);
        }
    }
}
