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
//! - [`reference`](mod@reference): the naive scanner (one `regex` per detector, every
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
//! side in one run on the two-core machine):
//!
//! | corpus, granularity   | engine     | regex baseline | ratio |
//! |-----------------------|------------|----------------|-------|
//! | PII-dense, rows       | 0.653 GB/s | 0.025 GB/s     | 25.6x |
//! | PII-dense, 1 MiB      | 0.567 GB/s | 0.030 GB/s     | 18.7x |
//! | PII-free, rows        | 1.013 GB/s | 0.029 GB/s     | 35.3x |
//! | PII-free, 1 MiB       | 1.156 GB/s | 0.034 GB/s     | 33.8x |
//!
//! Masking in place (scan plus rewrite, one summary for all values as in
//! the data path) ran at 0.478 GB/s on dense rows and 0.925 on PII-free
//! rows in the same run. Wall clock on this shared machine moves by a fifth
//! between runs, so builds are compared side by side with `masking-rows`
//! (best of seven passes over 16 MiB of rows): `bench/scripts/masking-levels.sh`
//! runs it under each `SLUICE_SIMD_MAX` level in turn (dense rows: 0.19
//! GB/s portable, 0.59 with AVX2, 0.61 with the AVX-512 classification, as
//! last measured; PII-free rows 0.26, 1.05 and 1.08). Instructions per byte
//! are counted by callgrind (repeatable whatever the load) over 2 MiB of
//! rows:
//!
//! ```text
//! SLUICE_MASKING_CALLGRIND=pii_dense valgrind --tool=callgrind \
//!     --toggle-collect='*scan_rows*' target/release/deps/masking-HASH --bench
//! ```
//!
//! 15.08 on dense rows and 11.53 on PII-free rows (15.31 and 11.16 in the
//! previous version, 18.1 and 13.0 before, 21.2 and 15.3 before that,
//! 34.0 and 22.3 at first). Valgrind hides AVX-512 from the program, so
//! these counts are the AVX2 build's.
//!
//! # Why 1 GB/s on PII-dense rows is not reached
//!
//! The issue's target of 1 GB/s per core on PII-dense rows is not reached
//! (0.65 to 0.67 GB/s; PII-free rows are at about 1 GB/s); the 5x ratio to
//! the regex baseline is. The limit is mispredicted branches, not work: the
//! same number of rows cycling through 64 distinct ones, which the branch
//! predictor learns, scans at 134 ns per row (1.2 GB/s) against 239 ns
//! over the varied rows. `bench/scripts/masking-branches.sh` splits the
//! difference by part: about 79 ns in the numeric pass (20 of them in its
//! site loop and IBAN checks), 19 in the anchored detectors, 6 in IPv6.
//! Each value's kind decides its path through the scan, and on varied rows
//! every decision is a coin toss for the predictor.
//!
//! What paid, measured side by side: the anchor search gathers the trigger
//! positions of a row's blocks and checks them in one loop, each literal
//! calling its confirmation directly (260 to 248 ns per row); IBAN sites
//! need both check digits, which drops five in six of the sites in random
//! tokens (260 to 254.5); the AVX-512 classification loads every block
//! masked, with no branch on the last one (255 to 252); the mod-97, token,
//! e-mail and IPv6 walks pick their windows by selects instead of branches
//! (about 1% together). Together, 260.6 to 235.7 ns per dense row (0.60 to
//! 0.67 GB/s), with PII-free rows 2% slower (the anchor search now
//! classifies a whole window for a short last block).
//!
//! A profile-guided build (`-Cprofile-generate`, trained on rows from
//! another seed, `masking-rows --seed 7`; then `-Cprofile-use`) scanned
//! dense rows in 230.5 against 238.2 ns per row (medians of five
//! alternating runs, 3.5% faster): the profile lays out the common paths
//! but cannot make a coin toss predictable. Not adopted: every release
//! would need a training run and its profile kept in step with the code,
//! for a gain smaller than a day's drift on this machine.
//!
//! What did not pay, measured: trading branches for work in the numeric
//! pass. Masks for every numeric run without early exits on its digit
//! counts (simulated mispredictions -16%, instructions +10%, wall clock
//! 258 against 265 ns per row); one loop over the run starts of several
//! blocks, with the starts gathered as the anchor search does (the site
//! loop's mispredictions went from 31 to 13 ns per row, its work from 36
//! to 61); the run starts visited from per-block words with a branch-free
//! advance; the first North American start of a run checked before the
//! loop; the card chain's separators checked as masks; a branch-free
//! overlap resolution; the North American phone walk (`nanp_end`) as a
//! chain of selects and flags instead of a branch per optional part (243
//! to 250 against 238 ns per dense row, 131 against 125 with the phone
//! detector alone: its branches were not the mispredicted ones). Earlier, in instructions: one classification pass
//! for the numeric, anchor and colon searches together (the sum of the
//! two it replaced); AVX-512 for the anchor search (slower than AVX2); a
//! table-driven mod-97 and branch-free octet checks.

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
