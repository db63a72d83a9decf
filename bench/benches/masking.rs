//! Masking throughput: the Hyperscan-anchored engine against the
//! straightforward `regex` implementation of the same detectors, on
//! deterministically generated log-like rows (PII-dense: two sensitive
//! values per row among timestamps, ids, prices and words; PII-free: the
//! same rows with look-alikes only). 16 MiB each, scanned row by row as
//! DataRow values would be, and as 1 MiB chunks as COPY data would be.
//! Criterion reports bytes per second on one core (the bench is single
//! threaded).

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice::masking::corpus::rows;
use sluice::masking::reference::{Reference, RegexBaseline};
use sluice::masking::{DetectorSet, Engine};

const CORPUS_BYTES: usize = 16 * 1024 * 1024;
const CHUNK_BYTES: usize = 1024 * 1024;
/// Rows of each corpus also scanned by the naive reference before timing
/// (the reference is quadratic, so only a sample).
const REFERENCE_ROWS: usize = 300;

fn lines(corpus: &[u8]) -> Vec<&[u8]> {
    corpus
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect()
}

/// The byte ranges of the rows of `corpus` (as [`lines`] splits them).
fn row_ranges(corpus: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, &b) in corpus.iter().enumerate() {
        if b == b'\n' {
            if i > start {
                out.push(start..i);
            }
            start = i + 1;
        }
    }
    if start < corpus.len() {
        out.push(start..corpus.len());
    }
    out
}

/// Scans every row once; a separate function so that callgrind can count
/// only the scans (`--toggle-collect='*scan_rows*'`).
#[inline(never)]
fn scan_rows(scanner: &mut sluice::masking::Scanner, rows_of: &[&[u8]]) -> usize {
    let mut n = 0usize;
    for r in rows_of {
        n += scanner.scan(r, DetectorSet::ALL).findings.len();
    }
    n
}

/// Instruction counting under callgrind: with `SLUICE_MASKING_CALLGRIND`
/// set to `pii_dense` or `pii_free`, the bench scans 2 MiB of that corpus
/// row by row once and exits, without criterion. Instructions per byte are
/// the `scan_rows` total divided by the corpus size printed on stderr:
///
/// ```text
/// SLUICE_MASKING_CALLGRIND=pii_dense valgrind --tool=callgrind \
///   --toggle-collect='*scan_rows*' target/release/deps/masking-HASH --bench
/// ```
fn callgrind_mode() -> bool {
    let Ok(which) = std::env::var("SLUICE_MASKING_CALLGRIND") else {
        return false;
    };
    let corpus = rows(0xC0FFEE, 2 * 1024 * 1024, which == "pii_dense");
    let rows_of = lines(&corpus);
    let engine = Arc::new(Engine::builtin().expect("engine"));
    let mut scanner = engine.scanner().expect("scanner");
    let found = scan_rows(&mut scanner, &rows_of);
    eprintln!(
        "{which}: {} bytes, {} rows, {found} findings",
        corpus.len(),
        rows_of.len()
    );
    true
}

fn bench(c: &mut Criterion) {
    if callgrind_mode() {
        return;
    }
    let engine = Arc::new(Engine::builtin().expect("engine"));
    let mut scanner = engine.scanner().expect("scanner");
    let mut baseline = RegexBaseline::new();
    let reference = Reference::new(engine.detectors());
    for (name, dense) in [("pii_dense", true), ("pii_free", false)] {
        let corpus = rows(0xC0FFEE, CORPUS_BYTES, dense);
        let rows_of = lines(&corpus);
        // The engine must find exactly what the naive reference finds; a
        // fast engine with different findings would not be worth timing.
        for r in rows_of.iter().step_by(rows_of.len() / REFERENCE_ROWS) {
            let fast = scanner.scan(r, DetectorSet::ALL).findings.to_vec();
            assert_eq!(
                fast,
                reference.scan(r, DetectorSet::ALL),
                "engine and reference disagree on {:?}",
                String::from_utf8_lossy(r)
            );
        }
        // Agreement between the engine and the regex baseline (which can
        // differ in corner cases, see `reference`).
        let (mut fast_n, mut base_n, mut same_rows) = (0usize, 0usize, 0usize);
        for r in &rows_of {
            let f = scanner.scan(r, DetectorSet::ALL).findings.to_vec();
            let b = baseline.scan(r, DetectorSet::ALL);
            fast_n += f.len();
            base_n += b.len();
            same_rows += usize::from(f.as_slice() == b);
        }
        eprintln!(
            "{name}: {} bytes, {} rows (avg {} B), findings engine {fast_n}, regex {base_n}, rows with identical findings {same_rows}",
            corpus.len(),
            rows_of.len(),
            corpus.len() / rows_of.len()
        );
        let mut g = c.benchmark_group(format!("masking_{name}"));
        g.throughput(Throughput::Bytes(corpus.len() as u64));
        g.sample_size(10);
        g.bench_function(BenchmarkId::new("engine", "rows"), |b| {
            b.iter(|| {
                let mut n = 0usize;
                for r in &rows_of {
                    n += scanner.scan(r, DetectorSet::ALL).findings.len();
                }
                n
            })
        });
        g.bench_function(BenchmarkId::new("engine", "1MiB_chunks"), |b| {
            b.iter(|| {
                let mut n = 0usize;
                for chunk in corpus.chunks(CHUNK_BYTES) {
                    n += scanner.scan(chunk, DetectorSet::ALL).findings.len();
                }
                n
            })
        });
        g.bench_function(BenchmarkId::new("engine_mask_in_place", "rows"), |b| {
            // As the data path does: one summary for many values (a
            // summary per value would time zeroing a 1.5 KiB table).
            // The rows' ranges are found once, outside the timing (the
            // split itself cost as much as the masking); each iteration
            // restores the corpus (a 16 MiB copy, counted) and masks it.
            let mut copy = corpus.clone();
            let mut summary = sluice::masking::MaskSummary::default();
            let ranges = row_ranges(&corpus);
            b.iter(|| {
                copy.copy_from_slice(&corpus);
                let mut n = 0usize;
                for r in &ranges {
                    n += scanner.mask_value(
                        &mut copy[r.clone()],
                        DetectorSet::ALL,
                        None,
                        &mut summary,
                    );
                }
                n
            })
        });
        g.bench_function(BenchmarkId::new("regex_baseline", "rows"), |b| {
            b.iter(|| {
                let mut n = 0usize;
                for r in &rows_of {
                    n += baseline.scan(r, DetectorSet::ALL).len();
                }
                n
            })
        });
        g.bench_function(BenchmarkId::new("regex_baseline", "1MiB_chunks"), |b| {
            b.iter(|| {
                let mut n = 0usize;
                for chunk in corpus.chunks(CHUNK_BYTES) {
                    n += baseline.scan(chunk, DetectorSet::ALL).len();
                }
                n
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
