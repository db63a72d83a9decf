//! Entry points for the fuzz targets (`fuzz/fuzz_targets/ledger_*.rs`).
//! Each must return without panicking on any input.

use crate::keys::{SignerKey, VerifierKey};
use crate::note::{Checkpoint, SignedCheckpoint, SignedNote};
use crate::proof::{ConsistencyProof, TlogProof};
use crate::reader::{scan, ScanOptions, StoredRecord};
use crate::segment::segment_file_name;
use crate::storage::SimStorage;

fn fixed_key() -> SignerKey {
    SignerKey::from_seed("fuzz.example/log", [7u8; 32]).expect("valid fuzz key")
}

/// Reads `data` as segment 1 of a ledger, with and without torn-tail tolerance.
pub fn parse_segment(data: &[u8]) {
    let storage = SimStorage::new();
    storage.tamper_replace(&segment_file_name(1), data.to_vec());
    let verifier = [fixed_key().verifier()];
    for allow_torn_tail in [false, true] {
        let options = ScanOptions {
            verifiers: Some(&verifier),
            allow_torn_tail,
            keep_leaves: true,
            ..ScanOptions::default()
        };
        let _ = scan(
            &storage,
            &options,
            &mut |r| StoredRecord::from_scanned(r).map(|_| ()),
            &mut |_, _| {},
        );
    }
}

/// Parses `data` as a signed note, a checkpoint and a verifier key.
pub fn parse_signed_note(data: &[u8]) {
    let verifier = fixed_key().verifier();
    if let Ok(note) = SignedNote::parse(data) {
        let _ = note.verify(&verifier);
        let _ = Checkpoint::parse(&note.text);
    }
    let _ = SignedCheckpoint::open(data, &verifier);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Checkpoint::parse(text);
        let _ = VerifierKey::parse(text);
        let _ = SignerKey::parse_private(text);
    }
}

/// Parses `data` as a tlog-proof and a consistency proof, and verifies them.
pub fn parse_tlog_proof(data: &[u8]) {
    let verifier = fixed_key().verifier();
    if let Ok(proof) = TlogProof::parse(data) {
        let _ = proof.verify(&verifier, b"leaf");
        let _ = TlogProof::parse(proof.encode().as_bytes());
    }
    if let Ok(proof) = ConsistencyProof::parse(data) {
        if let Ok(old) = SignedCheckpoint::parse_unverified(&proof.checkpoint) {
            let _ = proof.verify(&verifier, &old);
        }
    }
}
