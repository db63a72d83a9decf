//! Append throughput in batched mode (group commit: one fsync per batch, zstd
//! level 1, signed checkpoints every second), on the real file system.
//! Small records are counted in records/s, large ones in payload bytes/s.
//! `cargo bench -p sluice-ledger --bench append`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice_ledger::record::{Record, RecordBody, SessionId};
use sluice_ledger::{FsStorage, LedgerWriter, SignerKey, WriterConfig};
use std::time::{Duration, Instant};

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

/// `batch_records` per barrier (one fsync); throughput in records (small) or payload bytes (large).
fn bench_append(
    c: &mut Criterion,
    name: &str,
    payload_bytes: usize,
    batch_records: u64,
    count_records: bool,
) {
    let directory = tempfile::tempdir().expect("temporary directory");
    let key = SignerKey::from_seed("bench.example/log", [1; 32]).expect("key");
    let mut config = WriterConfig::new("bench.example/log");
    config.checkpoint_interval_records = 1_000_000;
    config.checkpoint_interval_ms = 1_000;
    config.zstd_level = 1;
    let (mut writer, _) =
        LedgerWriter::open(Box::new(FsStorage::new(directory.path())), key, config).expect("open");
    let messages: Vec<Vec<u8>> = (0..64).map(|i| message(i, payload_bytes)).collect();
    let mut group = c.benchmark_group("append");
    group.throughput(if count_records {
        Throughput::Elements(batch_records)
    } else {
        Throughput::Bytes(payload_bytes as u64 * batch_records)
    });
    group.measurement_time(Duration::from_secs(5));
    group.sample_size(20);
    let mut counter = 0u64;
    group.bench_function(name, |b| {
        b.iter_custom(|iterations| {
            let start = Instant::now();
            for _ in 0..iterations {
                for _ in 0..batch_records {
                    counter += 1;
                    let record = Record {
                        session: SessionId([(counter % 251) as u8; 16]),
                        sequence: counter,
                        timestamp_ns: counter,
                        body: RecordBody::ClientMessage {
                            bytes: messages[(counter % 64) as usize].clone(),
                        },
                    };
                    writer.append(&record).expect("append");
                }
                writer.barrier().expect("barrier");
            }
            start.elapsed()
        })
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    bench_append(c, "small_100B_records_batch10000", 100, 10_000, true);
    bench_append(c, "large_64KiB_records_batch256", 64 * 1024, 256, false);
}

criterion_group!(append, benches);
criterion_main!(append);
