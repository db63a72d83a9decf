//! Inline masking of sensitive values (issue 6), sans-IO.
//!
//! Nothing here performs I/O or depends on the runtime: the session loop
//! hands complete backend messages to [`message::mask_backend_message`]
//! (or single values to [`Scanner::mask_in_place`]) and forwards what comes
//! back.
//!
//! # Layers
//!
//! - [`detectors`] and [`validate`]: what every built-in detector matches,
//!   exactly (shape, boundaries, validator, length bounds).
//! - [`engine`]: the fast path. The literal anchors of the token-like
//!   detectors (`@`, `AKIA`, `ghp_`, `eyJ`, …) are found by [`anchors`]
//!   with AVX2 table lookups 32 bytes at a time and an exact check of each
//!   hit; custom detectors' patterns go to one Hyperscan block database,
//!   compiled once and shared read-only through an `Arc<Engine>`, without
//!   start-of-match tracking. Digit-led detectors (cards, SSNs, phones,
//!   IPv4) are not given to Hyperscan at all: on digit-dense text they made
//!   it slower than the `regex` crate (stack facts), so the engine walks the
//!   runs of digits and `[ ().+-]` itself. Every anchor is then confirmed
//!   in a small window by a hand-written recogniser and the validators.
//!   Each worker owns a [`Scanner`] (Hyperscan scratch space and reusable
//!   candidate buffers).
//! - [`reference`]: the naive scanner (one `regex` per detector, every
//!   candidate span checked) that defines the expected findings, and the
//!   straightforward `regex` baseline used by the bench.
//! - [`style`]: same-length masking in place and length-changing redaction.
//! - [`message`]: PostgreSQL messages: result shapes from RowDescription,
//!   DataRow, CopyData, ErrorResponse/NoticeResponse and
//!   NotificationResponse, with re-framing when redaction changes lengths.
//! - [`config`]: the serde shape of the `[masking]` configuration section.
//!
//! # Speed
//!
//! Measured with `cargo bench -p sluice-bench --bench masking -- --warm-up-time
//! 2 --measurement-time 5` (criterion, one core, 16 MiB corpora from
//! `corpus::rows(0xC0FFEE, ..)`, the engine and the `regex` baseline side by
//! side in one run, load average 1.6 to 1.9 on the two-core machine):
//!
//! | corpus, granularity   | engine     | regex baseline | ratio |
//! |-----------------------|------------|----------------|-------|
//! | PII-dense, rows       | 0.593 GB/s | 0.026 GB/s     | 23.1x |
//! | PII-dense, 1 MiB      | 0.515 GB/s | 0.029 GB/s     | 18.1x |
//! | PII-free, rows        | 0.978 GB/s | 0.028 GB/s     | 34.4x |
//! | PII-free, 1 MiB       | 1.163 GB/s | 0.035 GB/s     | 33.3x |
//!
//! Masking in place (scan plus rewrite, one summary for all values as in
//! the data path) ran at 0.443 GB/s on dense rows in the same run. Wall
//! clock on this shared machine moves by a fifth between runs, so builds
//! are compared side by side: `bench/scripts/masking-levels.sh` runs
//! `masking-rows` (best of seven passes) under each `SLUICE_SIMD_MAX`
//! level in turn (dense rows: 0.19 GB/s portable, 0.59 with AVX2, 0.61
//! with the AVX-512 classification; PII-free rows 0.26, 1.05 and 1.08),
//! and the engine is tracked by instructions per byte, counted by
//! callgrind (repeatable whatever the load) over 2 MiB of rows:
//!
//! ```text
//! SLUICE_MASKING_CALLGRIND=pii_dense valgrind --tool=callgrind \
//!     --toggle-collect='*scan_rows*' target/release/deps/masking-HASH --bench
//! ```
//!
//! 15.31 on dense rows and 11.16 on PII-free rows (18.1 and 13.0 in the
//! previous version, 21.2 and 15.3 in the one before, 34.0 and 22.3 before
//! that). Valgrind hides AVX-512 from the program, so these counts are the
//! AVX2 build's. What changed last: the numeric walk has its own copy for
//! the usual case of every detector wanted (choices folded as constants),
//! and checks a North American number's first group per start instead of
//! as a mask over every start;
//! e-mail candidates are read from nibble-table classes of the 32 bytes on
//! each side of the `@`; IPv6 candidates are judged on colon and dot bits
//! read once; `+` phone shapes are told from separator bits; boundaries
//! are one table load; where the CPU has AVX-512, the numeric
//! classification reads each block with one load (the last one masked)
//! and gets each class word from one bit test.
//!
//! The issue's target of 1 GB/s per core on PII-dense rows is not reached
//! (PII-free rows are at about 1 GB/s); the 5x ratio to the regex baseline
//! is. Half the time per PII-dense row is mispredicted branches, not work:
//! the same number of rows cycling through 64 distinct ones, which the
//! branch predictor learns, scans at 131 ns per row (1.23 GB/s) against
//! 260 ns over the varied rows (`bench/scripts/masking-branches.sh`, which
//! also splits the difference by part: about 87 ns in the numeric pass, of
//! which 26 in its site loop, 33 in the anchored detectors, 6 in IPv6).
//! Trading branches for work has not paid so far (masks for every numeric
//! run without early exits, one loop over the run starts of several
//! blocks; see `bench/README.md`). In instructions: this core retires
//! about 10 G per second on this code, so 1 GB/s allows about 10
//! instructions per byte, against 15.3 today:
//! about 9.5 for the numeric pass with its confirmations (classification
//! about 2.5 in the AVX2 build, the walk over about four numeric runs per
//! 158-byte row, where timestamps, ids and prices sit beside the two
//! sensitive values, about 4.5, and card, phone, IPv4 and IBAN
//! confirmations the rest) and about 6 for the anchor
//! search, e-mail and token confirmations, IPv6, per-scan setup and overlap
//! resolution. Tried and dropped, measured: one classification pass for
//! the numeric, anchor and colon searches together (129 instructions per
//! 64-byte block, the sum of the two it replaced, and no change in wall
//! clock); AVX-512 for the anchor search (slower than AVX2 in alternating
//! runs); keeping colon masks per block for the IPv6 search; a
//! table-driven mod-97 and branch-free octet checks (more instructions).

//! # Findings
//!
//! A finding is a detector and a byte range of one value. The findings of a
//! value never overlap; among overlapping candidates the leftmost wins, then
//! the longest, then the detector listed first. The result is deterministic
//! and identical between the fast engine and the reference (property-tested
//! in `tests/masking_equivalence.rs`).

pub mod anchors;
pub mod config;
pub mod corpus;
pub mod detectors;
pub mod engine;
pub mod fuzz;
pub mod message;
pub mod numeric;
pub mod reference;
pub mod setup;
pub mod style;
pub mod validate;

pub use config::{ConfigError, MaskingConfig};
pub use detectors::Builtin;
pub use engine::{DetectorDef, DetectorKind, Engine, Scan, Scanner};
pub use message::{
    mask_backend_message, ColumnPlan, ColumnRule, MaskError, MaskingState, Outcome, ResultShape,
};
pub use style::{MaskSummary, Style};

/// Most detectors an engine holds (built-ins and custom ones together): a
/// [`DetectorSet`] is one 64-bit mask.
pub const DETECTORS_MAX: usize = 64;
/// Most candidates collected for one value before the scan gives up and
/// the value is masked whole. A value can only reach this by being packed
/// with overlapping look-alikes, and masking it whole is the safe answer.
pub const CANDIDATES_MAX: usize = 16 * 1024;
/// Most findings reported for one value; beyond it the value is masked
/// whole, for the same reason.
pub const FINDINGS_MAX: usize = 4 * 1024;
/// Largest value scanned. Larger values (which only a huge text column or
/// COPY chunk can produce) are masked whole rather than scanned partially:
/// a partial scan would let the unscanned tail through.
pub const VALUE_SCAN_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Longest match of a custom detector; it bounds the confirmation window.
pub const CUSTOM_MATCH_BYTES_MAX: usize = 256;
/// Longest redaction label.
pub const LABEL_BYTES_MAX: usize = 32;

/// Index of a detector in its [`Engine`]. Built-ins come first, in the
/// order of [`Builtin::ALL`], so their ids never depend on configuration.
pub type DetectorId = u16;

/// A set of detectors (one bit per [`DetectorId`]), chosen per profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DetectorSet(pub u64);

impl DetectorSet {
    pub const EMPTY: DetectorSet = DetectorSet(0);
    pub const ALL: DetectorSet = DetectorSet(u64::MAX);

    pub fn contains(self, id: DetectorId) -> bool {
        usize::from(id) < DETECTORS_MAX && self.0 & (1u64 << id) != 0
    }

    pub fn with(self, id: DetectorId) -> Self {
        if usize::from(id) < DETECTORS_MAX {
            DetectorSet(self.0 | (1u64 << id))
        } else {
            self
        }
    }

    pub fn without(self, id: DetectorId) -> Self {
        if usize::from(id) < DETECTORS_MAX {
            DetectorSet(self.0 & !(1u64 << id))
        } else {
            self
        }
    }

    pub fn builtin(b: Builtin) -> Self {
        DetectorSet(1u64 << (b as u8))
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// One sensitive value inside a scanned byte string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Finding {
    pub start: usize,
    pub end: usize,
    pub detector: DetectorId,
}

/// What a profile masks for one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    /// Content detectors applied to every text value.
    pub detectors: DetectorSet,
    /// Whether the column rules (whole-value masks) apply.
    pub column_rules: bool,
}

impl Profile {
    /// Every detector and every column rule: the default for agents.
    pub fn all() -> Self {
        Profile {
            name: "default".to_owned(),
            detectors: DetectorSet::ALL,
            column_rules: true,
        }
    }

    /// Nothing masked (e.g. a trusted operator's profile).
    pub fn none() -> Self {
        Profile {
            name: "none".to_owned(),
            detectors: DetectorSet::EMPTY,
            column_rules: false,
        }
    }
}

/// The order in which overlapping candidates are resolved: leftmost, then
/// longest, then lowest detector id.
#[inline]
fn resolution_order(a: &Finding, b: &Finding) -> std::cmp::Ordering {
    a.start
        .cmp(&b.start)
        .then(b.end.cmp(&a.end))
        .then(a.detector.cmp(&b.detector))
}

/// Resolves overlapping candidates into findings: leftmost, then longest,
/// then lowest detector id. Shared by the engine (through
/// [`resolve_in_place`], property-tested equal) and the reference so that
/// both apply exactly the same rule. Returns false when more than
/// [`FINDINGS_MAX`] findings remain (the caller then masks the whole
/// value).
pub fn resolve(candidates: &mut [Finding], out: &mut Vec<Finding>) -> bool {
    candidates.sort_unstable_by(resolution_order);
    let mut cursor = 0usize;
    for c in candidates.iter() {
        if c.start < cursor {
            continue;
        }
        if out.len() == FINDINGS_MAX {
            return false;
        }
        out.push(*c);
        cursor = c.end;
    }
    true
}

/// [`resolve`] without a second vector: the candidates are turned into
/// the findings where they are. Returns false when more than
/// [`FINDINGS_MAX`] findings remain.
///
/// The scan passes report their candidates left to right, so a value with
/// a few findings usually has them in order already and without overlap:
/// then every candidate is a finding (each one starts at or after the end
/// of the one before, which is where the cursor of [`resolve`] stands),
/// and one comparison per pair replaces the sort and the copy.
#[inline]
pub fn resolve_in_place(candidates: &mut Vec<Finding>) -> bool {
    let in_order = candidates
        .windows(2)
        .all(|w| w[0].start < w[1].start && w[0].end <= w[1].start);
    if !in_order {
        candidates.sort_unstable_by(resolution_order);
        let mut kept = 0usize;
        let mut cursor = 0usize;
        for i in 0..candidates.len() {
            let c = candidates[i];
            if c.start < cursor {
                continue;
            }
            candidates[kept] = c;
            kept += 1;
            cursor = c.end;
        }
        candidates.truncate(kept);
    }
    candidates.len() <= FINDINGS_MAX
}
