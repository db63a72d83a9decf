//! Throughput of the PostgreSQL codec on realistic streams.
//!
//! The corpora are generated deterministically with the codec's own builders
//! (a fixed-seed xorshift drives value sizes), so every run measures the same
//! bytes without storing binary files in the repository:
//!
//! * `backend_result_set`: RowDescription, 2,000 DataRows of mixed column
//!   types (integers, timestamps, text of varying length, NULLs),
//!   CommandComplete and ReadyForQuery — the shape of a typical SELECT.
//! * `frontend_pipeline`: 500 extended-protocol round trips
//!   (Parse/Bind/Describe/Execute/Sync) with a few parameters each, the shape
//!   of a driver using prepared statements.
//!
//! Each corpus is measured twice: framing alone, and framing plus typed
//! parsing with every value visited (what the session does when it inspects
//! traffic). Throughput is reported in bytes per second; the `messages`
//! groups report the same work in messages per second.

use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice::protocol::pg::build;
use sluice::protocol::pg::{
    frames, parse_backend, parse_frontend, BackendMessage, FieldDescription, FormatCode,
    FrontendMessage, TargetKind, TransactionStatus,
};
use sluice_bench::XorShift;

const MESSAGE_BYTES_MAX: usize = 1 << 20;

fn backend_result_set() -> (BytesMut, usize) {
    let mut rng = XorShift(0x5eed_0001);
    let mut out = BytesMut::new();
    let column = |name: &'static str, attr: i16, type_oid: u32, type_size: i16| FieldDescription {
        name: name.as_bytes(),
        table_oid: 16_384,
        column_attribute: attr,
        type_oid,
        type_size,
        type_modifier: -1,
        format: FormatCode::Text,
    };
    build::row_description(
        &mut out,
        &[
            column("id", 1, 20, 8),
            column("created_at", 2, 1184, 8),
            column("email", 3, 25, -1),
            column("status", 4, 25, -1),
            column("amount", 5, 1700, -1),
            column("note", 6, 25, -1),
        ],
    );
    let rows = 2_000;
    let text =
        "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor ".repeat(4);
    for i in 0..rows {
        let id = (1_000_000 + i).to_string();
        let ts = format!(
            "2025-01-{:02} 12:{:02}:{:02}.123456+00",
            1 + i % 28,
            i % 60,
            (i * 7) % 60
        );
        let email = format!("user{}@example.com", rng.below(100_000));
        let amount = format!("{}.{:02}", rng.below(10_000), rng.below(100));
        let note_len = rng.below(text.len() as u64) as usize;
        let note = if rng.below(5) == 0 {
            None
        } else {
            Some(&text.as_bytes()[..note_len])
        };
        let status: &[u8] = if i % 3 == 0 { b"active" } else { b"archived" };
        build::data_row(
            &mut out,
            &[
                Some(id.as_bytes()),
                Some(ts.as_bytes()),
                Some(email.as_bytes()),
                Some(status),
                Some(amount.as_bytes()),
                note,
            ],
        );
    }
    build::command_complete(&mut out, format!("SELECT {rows}"));
    build::ready_for_query(&mut out, TransactionStatus::Idle);
    (out, rows + 3)
}

fn frontend_pipeline() -> (BytesMut, usize) {
    let mut rng = XorShift(0x5eed_0002);
    let mut out = BytesMut::new();
    let round_trips = 500;
    for i in 0..round_trips {
        let statement = format!("s{}", i % 16);
        build::parse(
            &mut out,
            &statement,
            "SELECT id, email, amount FROM orders WHERE customer_id = $1 AND created_at > $2 LIMIT $3",
            &[20, 1184, 23],
        );
        let customer = rng.below(1_000_000).to_string();
        let since = "2025-01-01 00:00:00+00";
        let limit = (1 + rng.below(100)).to_be_bytes();
        build::bind(
            &mut out,
            "",
            &statement,
            &[FormatCode::Text, FormatCode::Text, FormatCode::Binary],
            &[
                Some(customer.as_bytes()),
                Some(since.as_bytes()),
                Some(&limit[4..]),
            ],
            &[FormatCode::Text],
        );
        build::describe(&mut out, TargetKind::Portal, "");
        build::execute(&mut out, "", 0);
        build::sync(&mut out);
    }
    (out, round_trips * 5)
}

fn frame_only(input: &[u8]) -> usize {
    let mut it = frames(input, MESSAGE_BYTES_MAX);
    let mut n = 0;
    for frame in it.by_ref() {
        n += black_box(frame.expect("valid corpus")).body.len();
    }
    assert_eq!(it.consumed(), input.len());
    n
}

fn parse_backend_stream(input: &[u8]) -> usize {
    let mut acc = 0usize;
    for frame in frames(input, MESSAGE_BYTES_MAX) {
        match parse_backend(frame.expect("valid corpus")).expect("valid message") {
            BackendMessage::DataRow { values } => {
                for v in values {
                    acc += v.map_or(0, <[u8]>::len);
                }
            }
            BackendMessage::RowDescription { fields } => acc += fields.count(),
            other => {
                black_box(other);
                acc += 1;
            }
        }
    }
    acc
}

fn parse_frontend_stream(input: &[u8]) -> usize {
    let mut acc = 0usize;
    for frame in frames(input, MESSAGE_BYTES_MAX) {
        match parse_frontend(frame.expect("valid corpus")).expect("valid message") {
            FrontendMessage::Bind { parameters, .. } => {
                for v in parameters {
                    acc += v.map_or(0, <[u8]>::len);
                }
            }
            FrontendMessage::Parse { sql, .. } => acc += sql.len(),
            other => {
                black_box(other);
                acc += 1;
            }
        }
    }
    acc
}

fn bench_codec(c: &mut Criterion) {
    let (backend, backend_messages) = backend_result_set();
    let (frontend, frontend_messages) = frontend_pipeline();
    // Sanity: the parsers accept the whole corpus.
    assert!(parse_backend_stream(&backend) > 0);
    assert!(parse_frontend_stream(&frontend) > 0);

    let mut group = c.benchmark_group("pg_codec_bytes");
    group.throughput(Throughput::Bytes(backend.len() as u64));
    group.bench_function(BenchmarkId::new("frame", "backend_result_set"), |b| {
        b.iter(|| frame_only(black_box(&backend)))
    });
    group.bench_function(BenchmarkId::new("frame_parse", "backend_result_set"), |b| {
        b.iter(|| parse_backend_stream(black_box(&backend)))
    });
    group.throughput(Throughput::Bytes(frontend.len() as u64));
    group.bench_function(BenchmarkId::new("frame", "frontend_pipeline"), |b| {
        b.iter(|| frame_only(black_box(&frontend)))
    });
    group.bench_function(BenchmarkId::new("frame_parse", "frontend_pipeline"), |b| {
        b.iter(|| parse_frontend_stream(black_box(&frontend)))
    });
    group.finish();

    let mut group = c.benchmark_group("pg_codec_messages");
    group.throughput(Throughput::Elements(backend_messages as u64));
    group.bench_function(BenchmarkId::new("frame_parse", "backend_result_set"), |b| {
        b.iter(|| parse_backend_stream(black_box(&backend)))
    });
    group.throughput(Throughput::Elements(frontend_messages as u64));
    group.bench_function(BenchmarkId::new("frame_parse", "frontend_pipeline"), |b| {
        b.iter(|| parse_frontend_stream(black_box(&frontend)))
    });
    group.finish();
}

criterion_group!(benches, bench_codec);
criterion_main!(benches);
