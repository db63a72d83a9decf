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
