//! Nanoseconds per row of the masking engine on the generated PII-dense
//! (or PII-free) rows, best of a few passes: a quick, low-noise reading for
//! side-by-side comparisons on a shared machine, where criterion's full
//! run takes minutes. `bench/scripts/masking-levels.sh` runs it under each
//! `SLUICE_SIMD_MAX` level in alternation.
//!
//! ```text
//! masking-rows [pii_dense|pii_free] [MiB] [passes] [--distinct-rows N] [--detectors a,b,...]
//!              [--scanner engine|regex|regex-alternation] [--seed N]
//! ```
//!
//! Prints one line: the corpus, its size, the rows, the findings of one
//! pass and the best pass in nanoseconds per row and GB/s.
//!
//! `--distinct-rows N` scans as many rows, but only the first `N` distinct
//! ones, over and over (each occurrence a copy at its own address, so the
//! memory traffic is the same). With a few dozen, the branch predictor
//! learns every branch of the scan; the difference from the full corpus is
//! the cost of mispredicted branches on varied rows, which no instruction
//! count shows. `--detectors` scans with the named built-in detectors only
//! (names as in the configuration, such as `card,ssn` or `email`), to tell
//! the parts of the scan apart.
//!
//! `--scanner` picks what scans: the engine (the default); `regex`, the
//! criterion bench's baseline (one `regex` per detector, then boundaries,
//! validators and overlap resolution); or `regex-alternation`, every
//! built-in pattern in one alternation run with `find_iter`, counting
//! matches with no boundary, validator or resolution step after them. The
//! last finds different (and wrong) spans, so it is no implementation of
//! the detectors; it is the cheapest way anyone could use the `regex`
//! crate on these patterns, to show that the baseline is not a strawman.
//!
//! `--seed` generates the rows from another seed than the bench's
//! (`0xC0FFEE`): other rows of the same kinds, to check that a change is
//! not tuned to one draw of rows, or to train a profile-guided build on
//! rows it is not measured on.

use std::sync::Arc;
use std::time::Instant;

use regex::bytes::Regex;
use sluice::masking::corpus::rows;
use sluice::masking::detectors::Builtin;
use sluice::masking::reference::RegexBaseline;
use sluice::masking::{DetectorSet, Engine};

/// Most passes allowed, so that a typo cannot start an endless run.
const PASSES_MAX: usize = 100;
/// Largest corpus allowed in MiB.
const CORPUS_MIB_MAX: usize = 256;

fn usage(message: &str) -> ! {
    eprintln!("masking-rows: {message}");
    eprintln!(
        "usage: masking-rows [pii_dense|pii_free] [MiB] [passes] [--distinct-rows N] [--detectors a,b,...] [--scanner engine|regex|regex-alternation] [--seed N]"
    );
    std::process::exit(2);
}

/// What scans the rows (`--scanner`).
enum Scanner {
    Engine(sluice::masking::Scanner),
    Regex(RegexBaseline),
    RegexAlternation(Regex),
}

impl Scanner {
    /// The findings (for the alternation: the matches) of one row.
    fn count(&mut self, row: &[u8], detectors: DetectorSet) -> usize {
        match self {
            Scanner::Engine(scanner) => scanner.scan(row, detectors).findings.len(),
            Scanner::Regex(baseline) => baseline.scan(row, detectors).len(),
            Scanner::RegexAlternation(regex) => regex.find_iter(row).count(),
        }
    }
}

fn main() {
    let mut args: Vec<String> = Vec::new();
    let mut scanner_name = String::from("engine");
    let mut seed: u64 = 0xC0FFEE;
    let mut distinct_rows: Option<usize> = None;
    let mut detectors = DetectorSet::ALL;
    let mut given = std::env::args().skip(1);
    while let Some(arg) = given.next() {
        match arg.as_str() {
            "--distinct-rows" => {
                let value = given
                    .next()
                    .unwrap_or_else(|| usage("--distinct-rows needs a count"));
                match value.parse::<usize>() {
                    Ok(n) if n >= 1 => distinct_rows = Some(n),
                    _ => usage("--distinct-rows must be a count of at least 1"),
                }
            }
            "--detectors" => {
                let value = given
                    .next()
                    .unwrap_or_else(|| usage("--detectors needs names"));
                detectors = DetectorSet::EMPTY;
                for name in value.split(',') {
                    let Some(b) = Builtin::ALL.iter().find(|b| b.name() == name) else {
                        usage(&format!("unknown detector {name:?}"));
                    };
                    detectors = detectors.with(*b as u16);
                }
            }
            "--seed" => {
                seed = given
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage("--seed needs a number"));
            }
            "--scanner" => {
                scanner_name = given
                    .next()
                    .unwrap_or_else(|| usage("--scanner needs a name"));
            }
            _ => args.push(arg),
        }
    }
    let which = args.first().map(String::as_str).unwrap_or("pii_dense");
    let dense = match which {
        "pii_dense" => true,
        "pii_free" => false,
        other => usage(&format!("unknown corpus {other:?} (pii_dense or pii_free)")),
    };
    let number = |i: usize, default: usize, max: usize| -> usize {
        match args.get(i).map(|a| a.parse::<usize>()) {
            None => default,
            Some(Ok(n)) if (1..=max).contains(&n) => n,
            Some(_) => usage(&format!("argument {} must be 1 to {max}", i + 1)),
        }
    };
    let mib = number(1, 16, CORPUS_MIB_MAX);
    let passes = number(2, 7, PASSES_MAX);
    let corpus = rows(seed, mib << 20, dense);
    let distinct: Vec<&[u8]> = corpus
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let copies: Vec<Vec<u8>> = match distinct_rows {
        Some(n) => (0..distinct.len())
            .map(|i| distinct[i % n.min(distinct.len())].to_vec())
            .collect(),
        None => Vec::new(),
    };
    let rows_of: Vec<&[u8]> = match distinct_rows {
        Some(_) => copies.iter().map(Vec::as_slice).collect(),
        None => distinct,
    };
    let bytes: usize = rows_of.iter().map(|r| r.len()).sum();
    let mut scanner = match scanner_name.as_str() {
        "engine" => {
            let engine = Arc::new(Engine::builtin().expect("the built-in detectors compile"));
            Scanner::Engine(engine.scanner().expect("a scanner"))
        }
        "regex" => Scanner::Regex(RegexBaseline::new()),
        "regex-alternation" => {
            if detectors != DetectorSet::ALL {
                usage("--detectors applies to the engine and the regex baseline only");
            }
            let alternation = Builtin::ALL
                .iter()
                .map(|b| format!("(?:{})", b.pattern()))
                .collect::<Vec<_>>()
                .join("|");
            Scanner::RegexAlternation(
                Regex::new(&format!("(?-u){alternation}")).expect("the patterns compile"),
            )
        }
        other => usage(&format!(
            "unknown scanner {other:?} (engine, regex or regex-alternation)"
        )),
    };
    let mut best_seconds = f64::MAX;
    let mut findings = 0usize;
    for _ in 0..passes {
        let started = Instant::now();
        let mut found = 0usize;
        for row in &rows_of {
            found += scanner.count(row, detectors);
        }
        best_seconds = best_seconds.min(started.elapsed().as_secs_f64());
        findings = std::hint::black_box(found);
    }
    let distinct = distinct_rows.map_or(String::new(), |n| format!(" ({n} distinct)"));
    println!(
        "{which} {scanner_name} {bytes} bytes {} rows{distinct} {findings} findings: {:.1} ns/row {:.3} GB/s",
        rows_of.len(),
        best_seconds * 1e9 / rows_of.len() as f64,
        bytes as f64 / best_seconds / 1e9
    );
}
