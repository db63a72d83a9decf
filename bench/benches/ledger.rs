//! Ledger append as the appliance drives it: a deterministic corpus of the
//! records one recorded session produces (SessionOpened, then per statement
//! a ClientMessage, a PolicyDecision and a ServerMessage of varying size,
//! and SessionClosed), appended through `sluice_ledger::LedgerWriter` on the
//! real file system with a barrier (fsync) per group, as the recorder's
//! group commit does:
//!
//! * `group_64`: 64 records per barrier, the shape of strict durability
//!   with a few concurrent sessions (the fsync dominates).
//! * `group_4096`: 4,096 records per barrier, batched durability.
//!
//! Throughput is reported in records per second and in bytes per second
//! (payload bytes of the corpus). `cargo bench -p sluice-bench --bench ledger`

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice_bench::XorShift;
use sluice_ledger::record::{Record, RecordBody, SessionId};
use sluice_ledger::{FsStorage, LedgerWriter, SignerKey, WriterConfig};

/// One session's records (bodies only) and their payload bytes.
fn session_corpus(statements: usize) -> (Vec<RecordBody>, u64) {
    let mut random = XorShift(0x1ed6_e500);
    let mut bodies = vec![RecordBody::SessionOpened {
        agent_identity: "bench-agent".into(),
        auth_method: "scram-sha-256".into(),
        client_address: "127.0.0.1:50000".into(),
        tls_version: "TLSv1.3".into(),
        tls_cipher: "TLS13_AES_256_GCM_SHA384".into(),
        client_certificate_fingerprint: String::new(),
        target: "bench".into(),
    }];
    for i in 0..statements {
        let id = random.next_u64() % 100_000;
        let statement = format!("select abalance from pgbench_accounts where aid = {id} /* {i} */");
        let mut query = vec![b'Q'];
        query.extend_from_slice(&((statement.len() + 5) as u32).to_be_bytes());
        query.extend_from_slice(statement.as_bytes());
        query.push(0);
        bodies.push(RecordBody::ClientMessage { bytes: query });
        bodies.push(RecordBody::PolicyDecision {
            statement: statement.clone(),
            decision: "allow".into(),
            rule: "default".into(),
            reason: "read".into(),
        });
        // Server answers: mostly small, sometimes a larger result set.
        let rows = if random.next_u64() & 15 == 0 { 200 } else { 1 };
        let mut answer = Vec::new();
        for row in 0..rows {
            let value = format!(
                "{:>12}|customer-{row}@example.com|{}",
                random.next_u64() % 1_000_000,
                i
            );
            answer.push(b'D');
            answer.extend_from_slice(&((value.len() + 10) as u32).to_be_bytes());
            answer.extend_from_slice(&1u16.to_be_bytes());
            answer.extend_from_slice(&(value.len() as u32).to_be_bytes());
            answer.extend_from_slice(value.as_bytes());
        }
        answer.extend_from_slice(b"C\x00\x00\x00\x0dSELECT 1\x00Z\x00\x00\x00\x05I");
        bodies.push(RecordBody::ServerMessage { bytes: answer });
    }
    bodies.push(RecordBody::SessionClosed {
        statements: statements as u64,
        client_messages: statements as u64,
        server_messages: statements as u64,
        client_bytes: 0,
        server_bytes: 0,
        denied_statements: 0,
        reason: "terminate".into(),
    });
    let bytes = bodies.iter().map(payload_bytes).sum();
    (bodies, bytes)
}

fn payload_bytes(body: &RecordBody) -> u64 {
    match body {
        RecordBody::ClientMessage { bytes } | RecordBody::ServerMessage { bytes } => {
            bytes.len() as u64
        }
        RecordBody::PolicyDecision { statement, .. } => statement.len() as u64 + 16,
        _ => 64,
    }
}

fn bench_group(c: &mut Criterion, name: &str, group_records: usize) {
    let (bodies, corpus_bytes) = session_corpus(1000);
    let directory = tempfile::tempdir().expect("temporary directory");
    let key = SignerKey::from_seed("bench.sluice/ledger", [7; 32]).expect("key");
    let mut config = WriterConfig::new("bench.sluice/ledger");
    config.checkpoint_interval_ms = 1_000;
    let (mut writer, _) =
        LedgerWriter::open(Box::new(FsStorage::new(directory.path())), key, config).expect("open");
    let per_record_bytes = corpus_bytes / bodies.len() as u64;
    let mut sequence = 0u64;
    for (unit, throughput) in [
        ("records", Throughput::Elements(group_records as u64)),
        (
            "bytes",
            Throughput::Bytes(per_record_bytes * group_records as u64),
        ),
    ] {
        let mut group = c.benchmark_group(format!("ledger_append_{unit}"));
        group.throughput(throughput);
        group.measurement_time(Duration::from_secs(4));
        group.sample_size(15);
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| {
                let start = Instant::now();
                for _ in 0..iterations {
                    for _ in 0..group_records {
                        let body = bodies[(sequence % bodies.len() as u64) as usize].clone();
                        sequence += 1;
                        let record = Record {
                            session: SessionId([(sequence / bodies.len() as u64 % 251) as u8; 16]),
                            sequence,
                            timestamp_ns: sequence,
                            body,
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
}

fn benches(c: &mut Criterion) {
    bench_group(c, "group_64", 64);
    bench_group(c, "group_4096", 4096);
}

criterion_group!(ledger, benches);
criterion_main!(ledger);
