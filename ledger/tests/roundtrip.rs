mod common;

use common::*;
use sluice_ledger::reader::LedgerReader;
use sluice_ledger::record::{Record, RecordBody};
use sluice_ledger::storage::SimStorage;
use sluice_ledger::verify::verify_ledger;
use sluice_ledger::{FsStorage, LedgerWriter};

fn write_all(storage: &SimStorage, records: &[Record]) {
    let (mut writer, report) =
        LedgerWriter::open(Box::new(storage.clone()), key(), small_config()).unwrap();
    assert!(report.created);
    for (i, record) in records.iter().enumerate() {
        assert_eq!(writer.append(record).unwrap(), i as u64);
        if i % 3 == 0 {
            writer.barrier().unwrap();
        }
    }
    writer.close().unwrap();
}

#[test]
fn every_record_kind_round_trips() {
    let storage = SimStorage::new();
    let mut records = every_kind(1, 0, 100);
    records.extend(every_kind(2, 0, 0));
    records.extend(every_kind(1, 8, 5000));
    write_all(&storage, &records);
    let read = LedgerReader::new(&storage).records().unwrap();
    assert_eq!(read.len(), records.len());
    for (stored, original) in read.iter().zip(&records) {
        assert_eq!(stored.body.as_ref(), Some(&original.body));
        assert_eq!(stored.descriptor.session, original.session);
        assert_eq!(stored.descriptor.sequence, original.sequence);
        assert_eq!(stored.descriptor.timestamp_ns, original.timestamp_ns);
    }
    let summary = verify_ledger(&storage, &[key().verifier()], None, &mut |_, _| {}).unwrap();
    assert_eq!(summary.records, records.len() as u64);
    assert_eq!(summary.sessions, 2);
    assert!(summary.segments > 1, "small segments rotate");
    assert_eq!(summary.unsigned_records, 0);
}

#[test]
fn messages_from_empty_to_many_mebibytes_round_trip() {
    let storage = SimStorage::new();
    let sizes = [0usize, 1, 255, 4096, 1 << 20, 5 << 20, 20 << 20];
    let records: Vec<Record> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| Record {
            session: session(7),
            sequence: i as u64,
            timestamp_ns: i as u64,
            body: RecordBody::ClientMessage {
                bytes: (0..n).map(|j| (j * 31 % 256) as u8).collect(),
            },
        })
        .collect();
    write_all(&storage, &records);
    let read = LedgerReader::new(&storage).records().unwrap();
    assert_eq!(read.len(), records.len());
    for (stored, original) in read.iter().zip(&records) {
        assert_eq!(stored.body.as_ref(), Some(&original.body));
    }
    verify_ledger(&storage, &[key().verifier()], None, &mut |_, _| {}).unwrap();
}

#[test]
fn reopening_continues_the_same_log() {
    let dir = tempfile::tempdir().unwrap();
    let records = every_kind(3, 0, 300);
    for round in 0..3u64 {
        let (mut writer, report) =
            LedgerWriter::open(Box::new(FsStorage::new(dir.path())), key(), small_config())
                .unwrap();
        assert_eq!(report.tree_size, round * records.len() as u64);
        assert!(report.recovery.is_none());
        for record in &records {
            writer.append(record).unwrap();
        }
        writer.barrier().unwrap();
        writer.close().unwrap();
    }
    let storage = FsStorage::new(dir.path());
    let summary = verify_ledger(&storage, &[key().verifier()], None, &mut |_, _| {}).unwrap();
    assert_eq!(summary.records, 3 * records.len() as u64);
}
