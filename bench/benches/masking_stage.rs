//! The masking stage of the data path as a whole: `SessionMasking::
//! mask_chunk` over the backend messages of a result (RowDescription,
//! DataRows of four text columns holding the rows of the masking corpus,
//! CommandComplete, ReadyForQuery), in 64 KiB chunks as the session hands
//! them over. This is what the engine benchmark (`masking`) leaves out:
//! message parsing, result shapes, the per-value hex-run check and the
//! portal pairing. Criterion reports bytes of messages per second on one
//! core.
//!
//! Instruction counting under callgrind, to compare two builds on this
//! noisy machine (counts are repeatable whatever the load):
//!
//! ```text
//! SLUICE_MASKING_STAGE_CALLGRIND=pii_dense valgrind --tool=callgrind \
//!   --toggle-collect='*mask_stream*' target/release/deps/masking_stage-HASH --bench
//! ```

use std::sync::Arc;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice::masking::corpus::rows;
use sluice::masking::setup::MaskingSetup;
use sluice::masking::{MaskingConfig, Profile};
use sluice::protocol::pg::{build, FieldDescription, FormatCode, TransactionStatus};
use sluice::session::masking::SessionMasking;

const CORPUS_BYTES: usize = 8 * 1024 * 1024;
const CHUNK_BYTES: usize = 64 * 1024;

/// The result's messages, cut into chunks at message boundaries.
fn chunks(corpus: &[u8]) -> Vec<BytesMut> {
    let names = [b"a".as_slice(), b"b", b"c", b"d"];
    let fields: Vec<FieldDescription<'_>> = names
        .iter()
        .enumerate()
        .map(|(i, n)| FieldDescription {
            name: n,
            table_oid: 0,
            column_attribute: i as i16,
            type_oid: 25,
            type_size: -1,
            type_modifier: -1,
            format: FormatCode::Text,
        })
        .collect();
    let mut out = Vec::new();
    let mut current = BytesMut::new();
    build::row_description(&mut current, &fields);
    let lines: Vec<&[u8]> = corpus
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    for row in lines.chunks(4) {
        let values: Vec<Option<&[u8]>> = row.iter().map(|v| Some(*v)).collect();
        if values.len() < 4 {
            break;
        }
        build::data_row(&mut current, &values);
        if current.len() >= CHUNK_BYTES {
            out.push(std::mem::take(&mut current));
        }
    }
    build::command_complete(&mut current, "SELECT 1");
    build::ready_for_query(&mut current, TransactionStatus::Idle);
    out.push(current);
    out
}

/// Masks every chunk once (a fresh copy of each, since masking is in
/// place); a separate function so that callgrind can count only this.
#[inline(never)]
fn mask_stream(stage: &mut SessionMasking, chunks: &[BytesMut]) -> usize {
    let mut n = 0;
    for c in chunks {
        n += stage.mask_chunk(c.clone()).expect("masking").len();
    }
    n
}

fn setup() -> Arc<MaskingSetup> {
    let config = MaskingConfig::default();
    Arc::new(MaskingSetup::new(config).expect("setup"))
}

fn bench(c: &mut Criterion) {
    if let Ok(which) = std::env::var("SLUICE_MASKING_STAGE_CALLGRIND") {
        let corpus = rows(0xC0FFEE, 2 * 1024 * 1024, which == "pii_dense");
        let chunks = chunks(&corpus);
        let setup = setup();
        let mut stage = SessionMasking::new(&setup, Profile::all(), Vec::new(), 1 << 30);
        let bytes = mask_stream(&mut stage, &chunks);
        eprintln!("{which}: {bytes} bytes of messages");
        return;
    }
    let setup = setup();
    for (name, dense) in [("pii_dense", true), ("pii_free", false)] {
        let corpus = rows(0xC0FFEE, CORPUS_BYTES, dense);
        let chunks = chunks(&corpus);
        let total: usize = chunks.iter().map(|c| c.len()).sum();
        let mut g = c.benchmark_group(format!("masking_stage_{name}"));
        g.throughput(Throughput::Bytes(total as u64));
        g.sample_size(10);
        g.bench_function("mask_chunk", |b| {
            let mut stage = SessionMasking::new(&setup, Profile::all(), Vec::new(), 1 << 30);
            b.iter(|| mask_stream(&mut stage, &chunks))
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
