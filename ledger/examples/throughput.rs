//! Quick release-mode figures: append throughput (batched and strict) and verify speed.
//! `cargo run --release -p sluice-ledger --example throughput`

use sluice_ledger::record::{Record, RecordBody, SessionId};
use sluice_ledger::verify::verify_ledger;
use sluice_ledger::{FsStorage, LedgerWriter, SignerKey, WriterConfig};
use std::time::Instant;

fn message(i: u64, bytes: usize) -> Vec<u8> {
    let mut text = format!(
        "SELECT id, email, created_at FROM customers WHERE id = {i} AND region = 'eu-{}' ",
        i % 7
    )
    .into_bytes();
    while text.len() < bytes {
        let more = format!(
            "/* {} */ OR id = {} ",
            i.wrapping_mul(2654435761) % 100_000,
            i + text.len() as u64
        );
        text.extend_from_slice(more.as_bytes());
    }
    text.truncate(bytes);
    text
}

/// CPU time of this thread in seconds (Linux schedstat), robust to other load on the machine.
fn thread_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|t| {
            t.split_whitespace()
                .next()
                .and_then(|n| n.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |ns| ns / 1e9)
}

fn run(label: &str, records: u64, payload_bytes: usize, batch: u64) {
    let directory = tempfile::tempdir().expect("temporary directory");
    let key = SignerKey::from_seed("bench.example/log", [1; 32]).expect("key");
    let verifier = key.verifier();
    let mut config = WriterConfig::new("bench.example/log");
    config.checkpoint_interval_ms = 1_000;
    let (mut writer, _) =
        LedgerWriter::open(Box::new(FsStorage::new(directory.path())), key, config).expect("open");
    let messages: Vec<Vec<u8>> = (0..64).map(|i| message(i, payload_bytes)).collect();
    let bodies: Vec<RecordBody> = messages
        .into_iter()
        .map(|bytes| RecordBody::ClientMessage { bytes })
        .collect();
    let start = Instant::now();
    let cpu_start = thread_cpu_seconds();
    for i in 0..records {
        let record = Record {
            session: SessionId([(i % 251) as u8; 16]),
            sequence: i,
            timestamp_ns: i,
            body: bodies[(i % 64) as usize].clone(),
        };
        writer.append(&record).expect("append");
        if (i + 1) % batch == 0 {
            writer.barrier().expect("barrier");
        }
    }
    writer.close().expect("close");
    let seconds = start.elapsed().as_secs_f64();
    let cpu_seconds = thread_cpu_seconds() - cpu_start;
    let payload_mb = (records * payload_bytes as u64) as f64 / 1e6;
    let storage = FsStorage::new(directory.path());
    let on_disk: u64 = std::fs::read_dir(directory.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let verify_start = Instant::now();
    let verify_cpu_start = thread_cpu_seconds();
    let summary = verify_ledger(&storage, &[verifier], None, &mut |_, _| {}).expect("verify");
    let verify_seconds = verify_start.elapsed().as_secs_f64();
    let verify_cpu_seconds = thread_cpu_seconds() - verify_cpu_start;
    assert_eq!(summary.records, records);
    println!(
        "{label}: {records} records of {payload_bytes} B, barrier every {batch}: wall {:.0} records/s, {:.0} MB/s payload; \
         per CPU-second {:.0} records/s, {:.0} MB/s; verify per CPU-second {:.0} records/s, {:.0} MB/s; \
         {:.1} MB on disk (ratio {:.1}), {} segments; verify wall {:.0} records/s, {:.0} MB/s payload",
        records as f64 / seconds,
        payload_mb / seconds,
        records as f64 / cpu_seconds,
        payload_mb / cpu_seconds,
        records as f64 / verify_cpu_seconds,
        payload_mb / verify_cpu_seconds,
        on_disk as f64 / 1e6,
        payload_mb * 1e6 / on_disk as f64,
        summary.segments,
        records as f64 / verify_seconds,
        payload_mb / verify_seconds,
    );
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("small") {
        run("batched small", 2_000_000, 100, 1_000);
        return;
    }
    run("batched small", 2_000_000, 100, 1_000);
    run("batched large", 8_000, 64 * 1024, 100);
    run("batched 1 KiB", 500_000, 1024, 1_000);
    run("strict (fsync per record)", 2_000, 200, 1);
}
