//! Nanoseconds per row of the masking engine on the generated PII-dense
//! (or PII-free) rows, best of a few passes: a quick, low-noise reading for
//! side-by-side comparisons on a shared machine, where criterion's full
//! run takes minutes. `bench/scripts/masking-levels.sh` runs it under each
//! `SLUICE_SIMD_MAX` level in alternation.
//!
//! ```text
//! masking-rows [pii_dense|pii_free] [MiB] [passes]
//! ```
//!
//! Prints one line: the corpus, its size, the rows, the findings of one
//! pass and the best pass in nanoseconds per row and GB/s.

use std::sync::Arc;
use std::time::Instant;

use sluice::masking::corpus::rows;
use sluice::masking::{DetectorSet, Engine};

/// Most passes allowed, so that a typo cannot start an endless run.
const PASSES_MAX: usize = 100;
/// Largest corpus allowed in MiB.
const CORPUS_MIB_MAX: usize = 256;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let which = args.first().map(String::as_str).unwrap_or("pii_dense");
    let dense = match which {
        "pii_dense" => true,
        "pii_free" => false,
        other => {
            eprintln!("masking-rows: unknown corpus {other:?} (pii_dense or pii_free)");
            std::process::exit(2);
        }
    };
    let number = |i: usize, default: usize, max: usize| -> usize {
        match args.get(i).map(|a| a.parse::<usize>()) {
            None => default,
            Some(Ok(n)) if (1..=max).contains(&n) => n,
            Some(_) => {
                eprintln!("masking-rows: argument {} must be 1 to {max}", i + 1);
                std::process::exit(2);
            }
        }
    };
    let mib = number(1, 16, CORPUS_MIB_MAX);
    let passes = number(2, 7, PASSES_MAX);
    let corpus = rows(0xC0FFEE, mib << 20, dense);
    let rows_of: Vec<&[u8]> = corpus
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let engine = Arc::new(Engine::builtin().expect("the built-in detectors compile"));
    let mut scanner = engine.scanner().expect("a scanner");
    let mut best_seconds = f64::MAX;
    let mut findings = 0usize;
    for _ in 0..passes {
        let started = Instant::now();
        let mut found = 0usize;
        for row in &rows_of {
            found += scanner.scan(row, DetectorSet::ALL).findings.len();
        }
        best_seconds = best_seconds.min(started.elapsed().as_secs_f64());
        findings = std::hint::black_box(found);
    }
    println!(
        "{which} {} bytes {} rows {findings} findings: {:.1} ns/row {:.3} GB/s",
        corpus.len(),
        rows_of.len(),
        best_seconds * 1e9 / rows_of.len() as f64,
        corpus.len() as f64 / best_seconds / 1e9
    );
}
