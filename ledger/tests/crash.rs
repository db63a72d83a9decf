//! Crash states from the fault-injecting storage: every record acknowledged
//! by the durability barrier survives, recovery is idempotent, and fsync /
//! ENOSPC / misdirected-write faults never pass silently.

mod common;

use common::*;
use sluice_ledger::error::Error;
use sluice_ledger::reader::LedgerReader;
use sluice_ledger::record::{kind, Record};
use sluice_ledger::storage::{CrashMode, FaultPlan, SimStorage, Storage};
use sluice_ledger::verify::verify_ledger;
use sluice_ledger::LedgerWriter;

/// Segments of a few KiB and a checkpoint every 12 records: rotation, seals and
/// checkpoints all happen, with few signatures to check (debug builds verify slowly).
fn crash_config() -> sluice_ledger::WriterConfig {
    let mut config = small_config();
    config.segment_bytes_max = 3000;
    config.checkpoint_interval_records = 12;
    config
}

fn workload_records() -> Vec<Record> {
    let mut records = Vec::new();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for s in 0..5u8 {
        let mut session = common::every_kind(s + 1, 0, 0);
        // Incompressible client messages so blocks and segments fill up.
        let noise: Vec<u8> = (0..200 + 150 * s as usize)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        session[1].body = sluice_ledger::record::RecordBody::ClientMessage { bytes: noise };
        records.extend(session);
    }
    records
}

/// Runs the workload until the storage fails; returns (records appended, acknowledged durable size).
fn run_workload(storage: &SimStorage, records: &[Record]) -> (usize, u64) {
    let (appended, acknowledged, _) = run_workload_reporting(storage, records);
    (appended, acknowledged)
}

/// Like `run_workload`, also returning the writer's first error.
fn run_workload_reporting(
    storage: &SimStorage,
    records: &[Record],
) -> (usize, u64, Option<String>) {
    let clock = ManualClock::new();
    let Ok((mut writer, report)) = LedgerWriter::open_with_clock(
        Box::new(storage.clone()),
        key(),
        crash_config(),
        Box::new(clock.clone()),
    ) else {
        return (0, 0, Some("open failed".into()));
    };
    let base = report.tree_size;
    assert_eq!(base, 0);
    let mut acknowledged = 0;
    let mut appended = 0;
    for (i, record) in records.iter().enumerate() {
        match writer.append(record) {
            Ok(index) => {
                assert_eq!(index, i as u64);
                appended += 1;
            }
            Err(e) => return (appended, acknowledged, Some(e.to_string())),
        }
        if i % 5 == 4 {
            clock.advance_ms(10);
            match writer.barrier() {
                Ok(durable) => {
                    assert!(durable >= acknowledged);
                    acknowledged = durable;
                }
                Err(e) => return (appended, acknowledged, Some(e.to_string())),
            }
        }
    }
    match writer.close() {
        Ok(checkpoint) => acknowledged = checkpoint.checkpoint.size,
        Err(e) => return (appended, acknowledged, Some(e.to_string())),
    }
    (appended, acknowledged, None)
}

/// Opens a crashed disk, checks what survived, then checks that a second open changes nothing.
fn recover_and_check(
    crashed: &SimStorage,
    records: &[Record],
    appended: usize,
    acknowledged: u64,
    context: &str,
) {
    recover_and_check_with(crashed, records, appended, acknowledged, context, true)
}

/// `signatures`: also run the full verifier (Ed25519 is slow in debug builds, so the
/// exhaustive enumeration checks signatures on a subset; structure and roots are always checked).
fn recover_and_check_with(
    crashed: &SimStorage,
    records: &[Record],
    appended: usize,
    acknowledged: u64,
    context: &str,
    signatures: bool,
) {
    // What recovery shows its observer must be exactly what the ledger
    // holds before opening appends its own recovery records.
    let mut observed = Vec::new();
    let (writer, report) = LedgerWriter::open_observing(
        Box::new(crashed.clone()),
        key(),
        crash_config(),
        Box::new(sluice_ledger::writer::SystemClock),
        &mut |record| observed.push((record.index, record.descriptor)),
    )
    .unwrap_or_else(|e| panic!("{context}: recovery refused: {e}"));
    let size_after_recovery = writer.tree_size();
    let appended_by_open = u64::from(report.recovery.is_some()) + report.late_recovery_records;
    assert_eq!(
        observed.len() as u64 + appended_by_open,
        size_after_recovery,
        "{context}: observed records plus those opening appended"
    );
    writer
        .close()
        .unwrap_or_else(|e| panic!("{context}: close after recovery: {e}"));
    let read = LedgerReader::new(crashed).records().unwrap();
    let data: Vec<_> = read
        .iter()
        .filter(|r| r.descriptor.kind != kind::RECOVERY)
        .collect();
    assert!(
        data.len() as u64 >= acknowledged,
        "{context}: {} records survive, {acknowledged} were acknowledged",
        data.len()
    );
    assert!(
        data.len() <= appended,
        "{context}: more records than appended"
    );
    for ((index, descriptor), stored) in observed.iter().zip(&read) {
        assert_eq!(
            (*index, descriptor),
            (stored.index, &stored.descriptor),
            "{context}: observed record differs from the one read back"
        );
    }
    for (stored, original) in data.iter().zip(records) {
        assert_eq!(
            stored.body.as_ref(),
            Some(&original.body),
            "{context}: record {} differs",
            stored.index
        );
    }
    if report.recovery.is_some() || report.late_recovery_records > 0 {
        assert_eq!(
            read.last().unwrap().descriptor.kind,
            kind::RECOVERY,
            "{context}: recovery record appended last"
        );
    }
    // Every quarantined tail is named by a recovery record in the log.
    let quarantined = if crashed.exists("quarantine").unwrap() {
        crashed.list("quarantine").unwrap()
    } else {
        Vec::new()
    };
    let recovery_records = read
        .iter()
        .filter(|r| r.descriptor.kind == kind::RECOVERY)
        .count();
    assert!(
        recovery_records >= quarantined.len(),
        "{context}: {} quarantine files, {recovery_records} recovery records",
        quarantined.len()
    );
    if signatures {
        verify_ledger(crashed, &[key().verifier()], None, &mut |_, _| {})
            .unwrap_or_else(|e| panic!("{context}: verify after recovery: {e}"));
    }
    // Idempotent: a second open finds nothing to recover and the same records.
    let (writer, report) =
        LedgerWriter::open(Box::new(crashed.clone()), key(), crash_config()).unwrap();
    assert!(
        report.recovery.is_none() && report.late_recovery_records == 0,
        "{context}: second recovery"
    );
    assert_eq!(writer.tree_size(), size_after_recovery);
}

const MODES: [CrashMode; 7] = [
    CrashMode::LoseUnsynced,
    CrashMode::KeepUnsynced,
    CrashMode::KeepPrefix(1),
    CrashMode::TornLastWrite { sector_bytes: 512 },
    CrashMode::TornLastWrite { sector_bytes: 4096 },
    CrashMode::TornLastWriteZeroFilled { sector_bytes: 512 },
    CrashMode::TornLastWriteZeroFilled { sector_bytes: 4096 },
];

#[test]
fn every_crash_point_keeps_acknowledged_records() {
    let records = workload_records();
    let reference = SimStorage::new();
    let (appended, acknowledged) = run_workload(&reference, &records);
    assert_eq!(
        (appended, acknowledged),
        (records.len(), records.len() as u64)
    );
    let total_operations = reference.operations();
    let segments = LedgerReader::new(&reference)
        .leaves()
        .unwrap()
        .segments
        .len();
    assert!(
        segments >= 3,
        "the workload exercises rotation ({segments} segments, {total_operations} operations)"
    );
    let mut states = 0;
    for crash_after in 0..=total_operations {
        let storage = SimStorage::with_faults(FaultPlan {
            crash_after_operations: Some(crash_after),
            ..FaultPlan::default()
        });
        let (appended, acknowledged) = run_workload(&storage, &records);
        for (m, mode) in MODES.into_iter().enumerate() {
            let crashed = storage.crash(mode);
            let context = format!("crash after {crash_after} operations, {mode:?}");
            recover_and_check_with(
                &crashed,
                &records,
                appended,
                acknowledged,
                &context,
                (crash_after as usize + m).is_multiple_of(4),
            );
            states += 1;
        }
    }
    println!("checked {states} crash states over {total_operations} operations");
}

#[test]
fn crashes_during_recovery_are_recoverable() {
    let records = workload_records();
    let reference = SimStorage::new();
    run_workload(&reference, &records);
    let total = reference.operations();
    // A crash mid-way leaves a torn tail; then crash the recovery itself at every point.
    for crash_after in (total / 3..total).step_by(7) {
        let storage = SimStorage::with_faults(FaultPlan {
            crash_after_operations: Some(crash_after),
            ..FaultPlan::default()
        });
        let (appended, acknowledged) = run_workload(&storage, &records);
        let torn = storage.crash(CrashMode::TornLastWrite { sector_bytes: 512 });
        let probe = torn.snapshot();
        let _ = LedgerWriter::open(Box::new(probe.clone()), key(), crash_config());
        let recovery_operations = probe.operations();
        for recovery_crash in 0..=recovery_operations {
            let disk = torn.snapshot();
            disk.set_faults(FaultPlan {
                crash_after_operations: Some(recovery_crash),
                ..FaultPlan::default()
            });
            let _ = LedgerWriter::open(Box::new(disk.clone()), key(), crash_config());
            for mode in [
                CrashMode::LoseUnsynced,
                CrashMode::KeepUnsynced,
                CrashMode::TornLastWrite { sector_bytes: 512 },
            ] {
                let context = format!(
                    "crash after {crash_after}, recovery crash after {recovery_crash}, {mode:?}"
                );
                recover_and_check_with(
                    &disk.crash(mode),
                    &records,
                    appended,
                    acknowledged,
                    &context,
                    recovery_crash.is_multiple_of(4),
                );
            }
        }
    }
}

#[test]
fn fsync_errors_are_fatal_and_never_retried() {
    let records = workload_records();
    let reference = SimStorage::new();
    run_workload(&reference, &records);
    for failing_sync in 0..40u64 {
        let storage = SimStorage::with_faults(FaultPlan {
            failing_sync: Some(failing_sync),
            ..FaultPlan::default()
        });
        let opened = LedgerWriter::open(Box::new(storage.clone()), key(), crash_config());
        let mut acknowledged = 0;
        let mut appended = 0;
        let mut saw_failure = opened.is_err();
        if let Ok((mut writer, _)) = opened {
            for (i, record) in records.iter().enumerate() {
                if writer.append(record).is_err() {
                    saw_failure = true;
                    break;
                }
                appended += 1;
                if i % 5 == 4 {
                    match writer.barrier() {
                        Ok(durable) => acknowledged = durable,
                        Err(error) => {
                            assert!(
                                matches!(error, Error::SyncFailed { .. }),
                                "first failure is the fsync error: {error}"
                            );
                            saw_failure = true;
                            // Poisoned: no retry, every later call fails.
                            assert!(writer.is_poisoned());
                            assert!(matches!(
                                writer.barrier(),
                                Err(Error::WriterPoisoned { .. })
                            ));
                            assert!(matches!(
                                writer.append(record),
                                Err(Error::WriterPoisoned { .. })
                            ));
                            break;
                        }
                    }
                }
            }
            if !saw_failure {
                saw_failure = writer.close().is_err();
            }
        }
        if !saw_failure {
            continue;
        }
        for mode in [CrashMode::LoseUnsynced, CrashMode::KeepUnsynced] {
            recover_and_check(
                &storage.crash(mode),
                &records,
                appended,
                acknowledged,
                &format!("sync {failing_sync} failed, {mode:?}"),
            );
        }
    }
}

#[test]
fn enospc_poisons_the_writer_and_keeps_acknowledged_records() {
    let records = workload_records();
    for space in (500..12_000).step_by(379) {
        let storage = SimStorage::with_faults(FaultPlan {
            space_bytes_max: Some(space),
            ..FaultPlan::default()
        });
        let (appended, acknowledged) = run_workload(&storage, &records);
        for mode in [CrashMode::LoseUnsynced, CrashMode::KeepUnsynced] {
            recover_and_check(
                &storage.crash(mode),
                &records,
                appended,
                acknowledged,
                &format!("ENOSPC at {space} bytes, {mode:?}"),
            );
        }
    }
}

#[test]
fn misdirected_writes_are_never_taken_for_valid_data() {
    let records = workload_records();
    let mut refused = 0;
    let mut recovered = 0;
    let mut caught_by_writer = 0;
    for write in 0..30u64 {
        for distance in [16u64, 200, 4096] {
            let storage = SimStorage::with_faults(FaultPlan {
                misdirected_write: Some((write, distance)),
                ..FaultPlan::default()
            });
            let (appended, _, error) = run_workload_reporting(&storage, &records);
            if error.is_some_and(|e| e.contains("read-back after sealing")) {
                caught_by_writer += 1;
            }
            let crashed = storage.crash(CrashMode::KeepUnsynced);
            match LedgerWriter::open(Box::new(crashed.clone()), key(), crash_config()) {
                Err(error) => {
                    assert!(
                        matches!(
                            error,
                            Error::Tampered { .. }
                                | Error::CrcMismatch { .. }
                                | Error::Decompression { .. }
                        ),
                        "named: {error}"
                    );
                    refused += 1;
                }
                Ok((writer, _)) => {
                    drop(writer);
                    // Whatever opens holds only records that were written, in order.
                    let read = LedgerReader::new(&crashed).records().unwrap();
                    let data: Vec<_> = read
                        .iter()
                        .filter(|r| r.descriptor.kind != kind::RECOVERY)
                        .collect();
                    assert!(data.len() <= appended);
                    for (stored, original) in data.iter().zip(&records) {
                        assert_eq!(stored.body.as_ref(), Some(&original.body));
                    }
                    recovered += 1;
                }
            }
        }
    }
    println!(
        "misdirected writes: {caught_by_writer} caught by the writer's read-back at a seal, {refused} refused as damage at open, {recovered} opened with intact records"
    );
    assert!(refused > 0);
    assert!(caught_by_writer > 0);
}
