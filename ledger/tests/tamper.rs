//! Tamper corpus: truncation at every byte, every single-bit flip, deleted /
//! swapped / duplicated / renamed segments, a segment from another log,
//! rollback, a wrong key. Each is detected and named.

mod common;

use common::*;
use sluice_ledger::error::Error;
use sluice_ledger::reader::{scan, ScanOptions, CHECKPOINT_FILE};
use sluice_ledger::segment::segment_file_name;
use sluice_ledger::storage::{SimStorage, Storage};
use sluice_ledger::verify::{verify_ledger, VerifySummary};
use sluice_ledger::{LedgerWriter, SignerKey, WriterConfig};

fn build(config: WriterConfig, signer: SignerKey, sessions: u8) -> SimStorage {
    let storage = SimStorage::new();
    let (mut writer, _) = LedgerWriter::open(Box::new(storage.clone()), signer, config).unwrap();
    for s in 0..sessions {
        for record in every_kind(s + 1, 0, 30) {
            writer.append(&record).unwrap();
        }
        writer.barrier().unwrap();
    }
    writer.close().unwrap();
    storage
}

/// One segment, one signed checkpoint at the end (signatures are slow in debug builds).
fn single_segment_ledger() -> SimStorage {
    let mut config = WriterConfig::new(ORIGIN);
    config.block_bytes_target = 300;
    // Small, so that every byte of the preallocated tail is tampered with too.
    config.preallocate_bytes = 256;
    build(config, key(), 1)
}

/// Several sealed segments.
fn multi_segment_ledger(origin: &str, signer: SignerKey) -> SimStorage {
    let mut config = WriterConfig::new(origin);
    config.segment_bytes_max = 800;
    config.block_bytes_target = 300;
    config.preallocate_bytes = 256;
    build(config, signer, 4)
}

fn verify(storage: &SimStorage) -> Result<VerifySummary, Error> {
    verify_ledger(storage, &[key().verifier()], None, &mut |_, _| {})
}

fn structural(storage: &SimStorage) -> Result<(), Error> {
    scan(
        storage,
        &ScanOptions::default(),
        &mut |r| sluice_ledger::StoredRecord::from_scanned(r).map(|_| ()),
        &mut |_, _| {},
    )
    .map(|_| ())
}

fn files(storage: &SimStorage) -> Vec<String> {
    storage.list("").unwrap()
}

#[test]
fn truncation_at_every_byte_is_detected() {
    let ledger = single_segment_ledger();
    let intact = verify(&ledger).unwrap();
    // The open segment ends with zeros the writer preallocated; cutting
    // some of them loses nothing, so only cuts into the frames must fail.
    let tail = scan(
        &ledger,
        &ScanOptions::default(),
        &mut |_| Ok(()),
        &mut |_, _| {},
    )
    .unwrap()
    .preallocated_tail
    .expect("the open segment has preallocated space");
    assert!(tail.file_length_bytes > tail.offset);
    let mut checked = 0;
    let mut harmless = 0;
    for name in files(&ledger) {
        let original = ledger.read(&name).unwrap();
        for length in 0..original.len() {
            let copy = ledger.snapshot();
            copy.tamper_replace(&name, original[..length].to_vec());
            if name == tail.file && length as u64 >= tail.offset {
                let summary = verify(&copy).unwrap_or_else(|e| {
                    panic!("{name} cut to {length} bytes inside the zeros was refused: {e}")
                });
                assert_eq!(summary.records, intact.records);
                harmless += 1;
                continue;
            }
            let error = verify(&copy)
                .expect_err(&format!("{name} truncated to {length} bytes was accepted"));
            assert!(!error.to_string().is_empty());
            checked += 1;
        }
    }
    assert_eq!(harmless as u64, tail.file_length_bytes - tail.offset);
    println!("{checked} truncations detected, {harmless} cuts of preallocated zeros accepted");
}

#[test]
fn every_single_bit_flip_is_detected() {
    let ledger = single_segment_ledger();
    let mut checked = 0;
    for name in files(&ledger) {
        let original = ledger.read(&name).unwrap();
        for bit in 0..original.len() * 8 {
            let copy = ledger.snapshot();
            copy.tamper_write(
                &name,
                (bit / 8) as u64,
                &[original[bit / 8] ^ (1 << (bit % 8))],
            );
            let error = verify(&copy).expect_err(&format!("{name} bit {bit} flip was accepted"));
            if name != CHECKPOINT_FILE {
                let location = error
                    .location()
                    .unwrap_or_else(|| panic!("bit {bit}: no location in {error}"));
                assert_eq!(location.file, name);
            }
            checked += 1;
        }
    }
    println!("{checked} bit flips detected");
}

#[test]
fn every_bit_flip_and_truncation_in_sealed_segments_is_detected() {
    let ledger = multi_segment_ledger(ORIGIN, key());
    let segments: Vec<String> = files(&ledger)
        .into_iter()
        .filter(|n| n.starts_with("segment-"))
        .collect();
    assert!(segments.len() >= 3, "{segments:?}");
    verify(&ledger).unwrap();
    for name in &segments {
        let original = ledger.read(name).unwrap();
        // Every 5th bit (5 is coprime with 8, so every bit position of a byte is hit);
        // the single-segment test flips every bit.
        for bit in (0..original.len() * 8).step_by(5) {
            let copy = ledger.snapshot();
            copy.tamper_write(
                name,
                (bit / 8) as u64,
                &[original[bit / 8] ^ (1 << (bit % 8))],
            );
            let error =
                structural(&copy).expect_err(&format!("{name} bit {bit} flip was accepted"));
            assert_eq!(
                error.location().map(|l| l.file.as_str()),
                Some(name.as_str()),
                "{error}"
            );
        }
        for length in (0..original.len()).step_by(3) {
            let copy = ledger.snapshot();
            copy.tamper_replace(name, original[..length].to_vec());
            let result = if length.is_multiple_of(97) {
                verify(&copy).map(|_| ())
            } else {
                structural(&copy)
            };
            // Truncating the last segment at a frame boundary is structurally valid; verify catches it.
            if result.is_ok() {
                verify(&copy).expect_err(&format!("{name} truncated to {length} accepted"));
            }
        }
    }
}

fn expect_tampered(storage: &SimStorage, needle: &str) {
    let error = verify(storage).expect_err("tampering accepted");
    assert!(
        needle.split('|').any(|n| error.to_string().contains(n)),
        "expected {needle:?} in: {error}"
    );
    // The writer refuses to open it as well (never silently truncates).
    assert!(
        LedgerWriter::open(
            Box::new(storage.snapshot()),
            key(),
            WriterConfig::new(ORIGIN)
        )
        .is_err(),
        "writer opened a tampered ledger ({needle})"
    );
}

#[test]
fn deleted_segments_are_detected() {
    let ledger = multi_segment_ledger(ORIGIN, key());
    let count = files(&ledger)
        .iter()
        .filter(|n| n.starts_with("segment-"))
        .count() as u64;
    for sequence in 1..=count {
        let copy = ledger.snapshot();
        copy.tamper_remove(&segment_file_name(sequence));
        let needle = if sequence == count {
            "does not appear in the log"
        } else {
            "missing"
        };
        expect_tampered(&copy, needle);
    }
}

#[test]
fn swapped_duplicated_and_renamed_segments_are_detected() {
    let ledger = multi_segment_ledger(ORIGIN, key());
    let count = files(&ledger)
        .iter()
        .filter(|n| n.starts_with("segment-"))
        .count();
    assert!(count >= 3, "{count} segments");
    let (one, two, three) = (
        segment_file_name(1),
        segment_file_name(2),
        segment_file_name(3),
    );
    // Swap the contents of segments 1 and 2.
    let copy = ledger.snapshot();
    let (a, b) = (copy.read(&one).unwrap(), copy.read(&two).unwrap());
    copy.tamper_replace(&one, b);
    copy.tamper_replace(&two, a);
    expect_tampered(&copy, "renamed");
    // Segment 2 duplicated over segment 3.
    let copy = ledger.snapshot();
    copy.tamper_replace(&three, copy.read(&two).unwrap());
    expect_tampered(&copy, "renamed");
    // A segment renamed to a non-segment-looking name leaves a gap.
    let copy = ledger.snapshot();
    copy.tamper_rename(&two, "old-segment.bak");
    expect_tampered(&copy, "segment 2 is missing");
    // A segment renamed to a malformed segment name.
    let copy = ledger.snapshot();
    copy.tamper_rename(&two, "segment-2.log");
    expect_tampered(&copy, "named like a segment");
    // A copy of a whole segment appended as the next one.
    let copy = ledger.snapshot();
    copy.tamper_replace(
        &segment_file_name(count as u64 + 1),
        copy.read(&one).unwrap(),
    );
    expect_tampered(&copy, "renamed|not sealed");
}

#[test]
fn a_segment_from_another_log_is_detected() {
    let ours = multi_segment_ledger(ORIGIN, key());
    // Same origin and key, different records: caught by the link.
    let twin = {
        let mut config = WriterConfig::new(ORIGIN);
        config.segment_bytes_max = 800;
        config.block_bytes_target = 300;
        build(config, key(), 3)
    };
    let copy = ours.snapshot();
    copy.tamper_replace(
        &segment_file_name(2),
        twin.read(&segment_file_name(2)).unwrap(),
    );
    expect_tampered(&copy, "link to the previous segment");
    // Another origin altogether.
    let other = multi_segment_ledger("other.example/log", key());
    let copy = ours.snapshot();
    copy.tamper_replace(
        &segment_file_name(2),
        other.read(&segment_file_name(2)).unwrap(),
    );
    expect_tampered(&copy, "another log");
}

#[test]
fn rollback_is_caught_with_a_trusted_checkpoint() {
    let storage = SimStorage::new();
    let mut config = WriterConfig::new(ORIGIN);
    config.segment_bytes_max = 800;
    let (mut writer, _) =
        LedgerWriter::open(Box::new(storage.clone()), key(), config.clone()).unwrap();
    for record in every_kind(1, 0, 30) {
        writer.append(&record).unwrap();
    }
    writer.close().unwrap();
    let old_state = storage.snapshot();
    let old_checkpoint = storage.read(CHECKPOINT_FILE).unwrap();
    let (mut writer, _) =
        LedgerWriter::open(Box::new(storage.clone()), key(), config.clone()).unwrap();
    for record in every_kind(2, 0, 30) {
        writer.append(&record).unwrap();
    }
    writer.close().unwrap();
    let new_checkpoint = storage.read(CHECKPOINT_FILE).unwrap();
    let keys = [key().verifier()];
    // The current log is consistent with the old checkpoint.
    let summary = verify_ledger(&storage, &keys, Some(&old_checkpoint), &mut |_, _| {}).unwrap();
    assert_eq!(summary.trusted_size, Some(8));
    // The old state alone looks intact; against the newer trusted checkpoint it is a rollback.
    verify_ledger(&old_state, &keys, None, &mut |_, _| {}).unwrap();
    let error =
        verify_ledger(&old_state, &keys, Some(&new_checkpoint), &mut |_, _| {}).unwrap_err();
    assert!(error.to_string().contains("rollback"), "{error}");
    // A rewritten history of the same size is a fork.
    let forked = SimStorage::new();
    let (mut writer, _) = LedgerWriter::open(Box::new(forked.clone()), key(), config).unwrap();
    for record in every_kind(9, 0, 31) {
        writer.append(&record).unwrap();
    }
    for record in every_kind(2, 0, 30) {
        writer.append(&record).unwrap();
    }
    writer.close().unwrap();
    let error = verify_ledger(&forked, &keys, Some(&old_checkpoint), &mut |_, _| {}).unwrap_err();
    assert!(error.to_string().contains("not consistent"), "{error}");
    // A trusted checkpoint that does not verify is a usage error, not a pass.
    let mut bad = old_checkpoint.clone();
    let last = bad.len() - 3;
    bad[last] ^= 1;
    assert!(verify_ledger(&storage, &keys, Some(&bad), &mut |_, _| {}).is_err());
}

#[test]
fn a_wrong_key_is_detected() {
    let ledger = multi_segment_ledger(ORIGIN, key());
    let error =
        verify_ledger(&ledger, &[other_key().verifier()], None, &mut |_, _| {}).unwrap_err();
    assert!(error.to_string().contains("key"), "{error}");
    // Another key under another name: no signature by it at all.
    let stranger = SignerKey::from_seed("stranger.example", [1; 32])
        .unwrap()
        .verifier();
    assert!(verify_ledger(&ledger, &[stranger], None, &mut |_, _| {}).is_err());
    // Both keys given (as after a key rotation): passes.
    verify_ledger(
        &ledger,
        &[other_key().verifier(), key().verifier()],
        None,
        &mut |_, _| {},
    )
    .unwrap();
}

#[test]
fn key_rotation_verifies_with_both_keys() {
    let storage = SimStorage::new();
    let (mut writer, _) =
        LedgerWriter::open(Box::new(storage.clone()), key(), small_config()).unwrap();
    for record in every_kind(1, 0, 30) {
        writer.append(&record).unwrap();
    }
    writer.rotate_key(other_key(), 5).unwrap();
    for record in every_kind(2, 0, 30) {
        writer.append(&record).unwrap();
    }
    writer.close().unwrap();
    verify_ledger(
        &storage,
        &[key().verifier(), other_key().verifier()],
        None,
        &mut |_, _| {},
    )
    .unwrap();
    assert!(verify_ledger(&storage, &[key().verifier()], None, &mut |_, _| {}).is_err());
}

#[test]
fn a_deleted_or_replaced_checkpoint_file_is_detected() {
    let ledger = single_segment_ledger();
    let copy = ledger.snapshot();
    copy.tamper_remove(CHECKPOINT_FILE);
    assert!(verify(&copy)
        .unwrap_err()
        .to_string()
        .contains("checkpoint file is missing"));
    // A validly signed checkpoint that is not in the log (e.g. from another ledger with the same key).
    let other = multi_segment_ledger(ORIGIN, key());
    let copy = ledger.snapshot();
    copy.tamper_replace(CHECKPOINT_FILE, other.read(CHECKPOINT_FILE).unwrap());
    assert!(verify(&copy).is_err());
}
