//! Writer behaviour: rotation by size and age, periodic checkpoints, group
//! commit, limits, and refusal of a ledger of another origin.

mod common;

use common::*;
use sluice_ledger::error::Error;
use sluice_ledger::reader::{LedgerReader, CHECKPOINT_FILE};
use sluice_ledger::record::{Record, RecordBody};
use sluice_ledger::storage::{SimStorage, Storage};
use sluice_ledger::{LedgerWriter, WriterConfig};

fn message(n: usize) -> Record {
    Record {
        session: session(1),
        sequence: n as u64,
        timestamp_ns: n as u64,
        body: RecordBody::ClientMessage {
            bytes: vec![b'x'; n],
        },
    }
}

#[test]
fn rotation_by_age_and_checkpoints_by_time() {
    let storage = SimStorage::new();
    let clock = ManualClock::new();
    let mut config = WriterConfig::new(ORIGIN);
    config.segment_age_ms_max = 60_000;
    config.checkpoint_interval_ms = 1_000;
    config.checkpoint_interval_records = u64::MAX;
    let (mut writer, report) = LedgerWriter::open_with_clock(
        Box::new(storage.clone()),
        key(),
        config,
        Box::new(clock.clone()),
    )
    .unwrap();
    assert!(report.created);
    writer.append(&message(10)).unwrap();
    assert_eq!(writer.barrier().unwrap(), 1);
    assert!(
        !storage.exists(CHECKPOINT_FILE).unwrap(),
        "no checkpoint before the interval"
    );
    clock.advance_ms(1_001);
    writer.tick().unwrap();
    assert_eq!(writer.last_checkpoint().unwrap().checkpoint.size, 1);
    assert!(storage.exists(CHECKPOINT_FILE).unwrap());
    writer.append(&message(20)).unwrap();
    clock.advance_ms(60_000);
    writer.barrier().unwrap();
    // Sealed by age; the next segment appears with the next record.
    let scanned = LedgerReader::new(&storage).leaves().unwrap();
    assert_eq!(scanned.segments.len(), 1);
    assert!(scanned.segments[0].seal.is_some());
    writer.append(&message(30)).unwrap();
    writer.close().unwrap();
    let scanned = LedgerReader::new(&storage).leaves().unwrap();
    assert_eq!(scanned.segments.len(), 2);
    assert_eq!(scanned.segments[1].header.first_index, 2);
    assert_eq!(scanned.frontier.size(), 3);
}

#[test]
fn rotation_by_size_and_group_commit() {
    let storage = SimStorage::new();
    let mut config = WriterConfig::new(ORIGIN);
    config.segment_bytes_max = 2048;
    config.block_bytes_target = 1024;
    let (mut writer, _) = LedgerWriter::open(Box::new(storage.clone()), key(), config).unwrap();
    for i in 0..50 {
        assert_eq!(writer.append(&message(100 + i)).unwrap(), i as u64);
        // Not durable until the barrier.
        assert!(writer.durable_size() <= i as u64);
        if i % 10 == 9 {
            assert_eq!(writer.barrier().unwrap(), i as u64 + 1);
        }
    }
    writer.close().unwrap();
    let scanned = LedgerReader::new(&storage).leaves().unwrap();
    assert!(scanned.segments.len() >= 2);
    assert!(scanned
        .segments
        .iter()
        .rev()
        .skip(1)
        .all(|s| s.seal.is_some()));
}

#[test]
fn oversized_records_are_refused_without_poisoning() {
    let storage = SimStorage::new();
    let (mut writer, _) =
        LedgerWriter::open(Box::new(storage.clone()), key(), small_config()).unwrap();
    let huge = Record {
        session: session(1),
        sequence: 0,
        timestamp_ns: 0,
        body: RecordBody::ClientMessage {
            bytes: vec![0; sluice_ledger::limits::MESSAGE_BYTES_MAX + 1],
        },
    };
    assert!(matches!(
        writer.append(&huge),
        Err(Error::LimitExceeded { .. })
    ));
    assert!(!writer.is_poisoned());
    assert_eq!(writer.append(&message(5)).unwrap(), 0);
    writer.close().unwrap();
    assert_eq!(LedgerReader::new(&storage).records().unwrap().len(), 1);
}

#[test]
fn bad_configuration_and_foreign_ledgers_are_refused() {
    let storage = SimStorage::new();
    for mutate in [
        (|c: &mut WriterConfig| c.origin = String::new()) as fn(&mut WriterConfig),
        |c| c.origin = "a\nb".into(),
        |c| c.segment_bytes_max = 10,
        |c| c.zstd_level = 0,
        |c| c.block_records_max = 0,
    ] {
        let mut config = WriterConfig::new(ORIGIN);
        mutate(&mut config);
        assert!(LedgerWriter::open(Box::new(storage.clone()), key(), config).is_err());
    }
    let (writer, _) =
        LedgerWriter::open(Box::new(storage.clone()), key(), WriterConfig::new(ORIGIN)).unwrap();
    writer.close().unwrap();
    let error = LedgerWriter::open(
        Box::new(storage.clone()),
        key(),
        WriterConfig::new("other.example/log"),
    )
    .unwrap_err();
    assert!(
        error.to_string().contains("another log") || error.to_string().contains("origin"),
        "{error}"
    );
}

#[test]
fn the_writer_can_move_to_its_own_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<LedgerWriter>();
    let storage = SimStorage::new();
    let (writer, _) = LedgerWriter::open(Box::new(storage.clone()), key(), small_config()).unwrap();
    let handle = std::thread::spawn(move || {
        let mut writer = writer;
        writer.append(&message(3)).unwrap();
        writer.close().unwrap().checkpoint.size
    });
    assert_eq!(handle.join().unwrap(), 1);
}

fn preallocating_config() -> WriterConfig {
    let mut config = WriterConfig::new(ORIGIN);
    config.preallocate_bytes = 4096;
    config
}

fn verify(storage: &SimStorage) -> Result<sluice_ledger::verify::VerifySummary, Error> {
    sluice_ledger::verify::verify_ledger(storage, &[key().verifier()], None, &mut |_, _| {})
}

#[test]
fn preallocated_zeros_stay_ahead_while_open_and_are_trimmed_at_the_seal() {
    let storage = SimStorage::new();
    let (mut writer, _) =
        LedgerWriter::open(Box::new(storage.clone()), key(), preallocating_config()).unwrap();
    for n in 1..=20 {
        writer.append(&message(n)).unwrap();
        writer.barrier().unwrap();
    }
    let scanned = LedgerReader::new(&storage).leaves().unwrap();
    let segment = &scanned.segments[0];
    let tail = scanned.preallocated_tail.clone().expect("zeros ahead");
    assert_eq!(tail.offset, segment.length_bytes);
    assert!(tail.file_length_bytes >= segment.length_bytes + 4096 / 4);
    assert_eq!(storage.size(&segment.file).unwrap(), tail.file_length_bytes);
    verify(&storage).unwrap();
    writer.rotate().unwrap();
    let scanned = LedgerReader::new(&storage).leaves().unwrap();
    assert!(scanned.segments[0].seal.is_some());
    assert_eq!(
        scanned.preallocated_tail, None,
        "a sealed segment ends with its seal"
    );
    assert_eq!(
        storage.size(&scanned.segments[0].file).unwrap(),
        scanned.segments[0].length_bytes
    );
    writer.append(&message(5)).unwrap();
    writer.close().unwrap();
    assert_eq!(verify(&storage).unwrap().records, 21);
}

#[test]
fn zeros_left_after_a_seal_by_a_crash_are_trimmed_when_reopened() {
    let storage = SimStorage::new();
    let (mut writer, _) =
        LedgerWriter::open(Box::new(storage.clone()), key(), preallocating_config()).unwrap();
    writer.append(&message(10)).unwrap();
    writer.rotate().unwrap();
    drop(writer);
    // A crash between writing the seal and trimming leaves zeros after it.
    let name = LedgerReader::new(&storage).leaves().unwrap().segments[0]
        .file
        .clone();
    let sealed_length = storage.size(&name).unwrap();
    storage.tamper_write(&name, sealed_length, &[0u8; 1000]);
    assert_eq!(
        verify(&storage).unwrap().records,
        1,
        "the last segment may end in zeros"
    );
    let (mut writer, _) =
        LedgerWriter::open(Box::new(storage.clone()), key(), preallocating_config()).unwrap();
    assert_eq!(
        storage.size(&name).unwrap(),
        sealed_length,
        "trimmed on open"
    );
    writer.append(&message(20)).unwrap();
    writer.close().unwrap();
    assert_eq!(verify(&storage).unwrap().records, 2);
}

#[test]
fn zeros_after_the_seal_of_an_earlier_segment_are_refused() {
    let storage = SimStorage::new();
    let (mut writer, _) =
        LedgerWriter::open(Box::new(storage.clone()), key(), preallocating_config()).unwrap();
    writer.append(&message(10)).unwrap();
    writer.rotate().unwrap();
    writer.append(&message(20)).unwrap();
    writer.close().unwrap();
    let first = LedgerReader::new(&storage).leaves().unwrap().segments[0]
        .file
        .clone();
    let length = storage.size(&first).unwrap();
    storage.tamper_write(&first, length, &[0u8; 64]);
    let error = verify(&storage).expect_err("zeros inside the log were accepted");
    assert!(
        error.to_string().contains("after the segment's seal"),
        "{error}"
    );
}

#[test]
fn a_torn_write_into_preallocated_space_quarantines_only_the_damage() {
    let storage = SimStorage::new();
    let (mut writer, _) =
        LedgerWriter::open(Box::new(storage.clone()), key(), preallocating_config()).unwrap();
    writer.append(&message(10)).unwrap();
    writer.barrier().unwrap();
    drop(writer);
    let scanned = LedgerReader::new(&storage).leaves().unwrap();
    let tail = scanned.preallocated_tail.expect("zeros ahead");
    // Part of a frame reached the disk: non-zero bytes, then zeros again.
    storage.tamper_write(&tail.file, tail.offset, &[0xA5; 10]);
    assert!(verify(&storage).is_err(), "damage in the tail is reported");
    let (writer, report) =
        LedgerWriter::open(Box::new(storage.clone()), key(), preallocating_config()).unwrap();
    let recovery = report.recovery.expect("recovered");
    assert_eq!(recovery.truncated_at_offset, tail.offset);
    assert_eq!(
        recovery.quarantined_bytes, 10,
        "the zeros are not quarantined"
    );
    writer.close().unwrap();
    // The one record plus the recovery record.
    assert_eq!(verify(&storage).unwrap().records, 2);
}

#[test]
fn a_full_disk_stops_preallocation_but_not_the_records_that_still_fit() {
    // Room for the header and a few records, but not for 4 KiB of zeros.
    let storage =
        sluice_ledger::storage::SimStorage::with_faults(sluice_ledger::storage::FaultPlan {
            space_bytes_max: Some(1500),
            ..Default::default()
        });
    let (mut writer, _) =
        LedgerWriter::open(Box::new(storage.clone()), key(), preallocating_config()).unwrap();
    writer.append(&message(10)).unwrap();
    assert_eq!(
        writer.barrier().unwrap(),
        1,
        "the record fits without the zeros"
    );
    assert!(!writer.is_poisoned());
    writer.append(&message(20)).unwrap();
    assert_eq!(writer.barrier().unwrap(), 2);
    // Once the records themselves do not fit, the writer fails (closed).
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let noise: Vec<u8> = (0..4000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    writer
        .append(&Record {
            body: RecordBody::ClientMessage { bytes: noise },
            ..message(3)
        })
        .unwrap();
    let error = writer
        .barrier()
        .expect_err("a record beyond the disk was acknowledged");
    assert!(
        error.to_string().contains("space") || error.to_string().contains("28"),
        "{error}"
    );
    assert!(writer.is_poisoned());
    drop(writer);
    let (writer, _) = LedgerWriter::open(
        Box::new(storage.crash(sluice_ledger::storage::CrashMode::LoseUnsynced)),
        key(),
        preallocating_config(),
    )
    .unwrap();
    assert_eq!(writer.tree_size(), 2);
}
