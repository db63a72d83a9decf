//! Redaction keeps every leaf, root, checkpoint, seal and proof valid.

mod common;

use common::*;
use sluice_ledger::merkle::inclusion_proof;
use sluice_ledger::reader::LedgerReader;
use sluice_ledger::redact::redact_session;
use sluice_ledger::storage::{SimStorage, Storage};
use sluice_ledger::verify::verify_ledger;
use sluice_ledger::LedgerWriter;

#[test]
fn redacting_a_session_keeps_proofs_and_checkpoints_valid() {
    let storage = SimStorage::new();
    let (mut writer, _) =
        LedgerWriter::open(Box::new(storage.clone()), key(), small_config()).unwrap();
    for s in 1..=4u8 {
        for record in every_kind(s, 0, 200) {
            writer.append(&record).unwrap();
        }
        writer.barrier().unwrap();
    }
    writer.rotate().unwrap();
    writer.close().unwrap();
    let reader = LedgerReader::new(&storage);
    let before = reader.leaves().unwrap();
    let checkpoint_before = storage.read("checkpoint").unwrap();
    let proof_before = inclusion_proof(9, &before.leaves).unwrap();

    let report = redact_session(&storage, &key(), session(2), "retention: 30 days", 77).unwrap();
    assert_eq!(report.records_redacted, 8);
    assert!(report.segments_rewritten >= 1);
    assert_eq!(report.records_left_in_open_segment, 0);

    let after = reader.leaves().unwrap();
    assert_eq!(after.leaves, before.leaves, "leaves unchanged");
    assert_eq!(storage.read("checkpoint").unwrap(), checkpoint_before);
    assert_eq!(inclusion_proof(9, &after.leaves).unwrap(), proof_before);
    verify_ledger(
        &storage,
        &[key().verifier()],
        Some(&checkpoint_before),
        &mut |_, _| {},
    )
    .unwrap();
    for record in reader.records().unwrap() {
        if record.descriptor.session == session(2) {
            assert!(record.body.is_none());
            let tombstone = record.tombstone.unwrap();
            assert_eq!(tombstone.reason, "retention: 30 days");
        } else {
            assert!(record.body.is_some());
        }
    }
    // Idempotent; a tombstone signed by an untrusted key is refused by the verifier.
    assert_eq!(
        redact_session(&storage, &key(), session(2), "again", 78)
            .unwrap()
            .records_redacted,
        0
    );
    let forged = storage.snapshot();
    redact_session(&forged, &other_key(), session(3), "forged", 79).unwrap();
    let error = verify_ledger(&forged, &[key().verifier()], None, &mut |_, _| {}).unwrap_err();
    assert!(error.to_string().contains("tombstone"), "{error}");
    // The writer reopens a redacted ledger and continues.
    let (mut writer, report) =
        LedgerWriter::open(Box::new(storage.clone()), key(), small_config()).unwrap();
    assert!(report.recovery.is_none());
    writer.append(&every_kind(5, 0, 10)[0]).unwrap();
    writer.close().unwrap();
    verify_ledger(
        &storage,
        &[key().verifier()],
        Some(&checkpoint_before),
        &mut |_, _| {},
    )
    .unwrap();
}
