//! The fast scanner: a literal anchor pass, a bitmask pass for numbers,
//! and confirmation of every anchor in a small window.
//!
//! # Why this shape
//!
//! Given full detector regexes with start-of-match reporting, Hyperscan ran
//! at 0.09 GB/s on PII-dense text here (stack facts), because the
//! digit-led patterns (cards, phones, SSNs) turn into large NFAs that fire
//! at every digit. So only anchors are searched for: the literal prefixes
//! of API tokens, `@` for e-mail, `-----BEGIN ` and the AWS secret
//! keyword. The built-in anchors are found by [`super::anchors`] (two
//! table lookups per 32 bytes, then an exact byte check of each trigger),
//! because a Hyperscan call costs about 540 instructions however short the
//! value, more than the whole search on a row-sized value; Hyperscan only
//! searches the patterns of custom detectors, when there are any. From an
//! anchor the start is known (a fixed distance back, or the start of a run
//! of allowed bytes) and the end is found by walking the allowed bytes
//! forward, then each possible end is checked, longest first, with the
//! detector's hand-written recogniser and validator (JSON Web Tokens have
//! a single possible end, found by one walk).
//!
//! Numbers, IBANs and IPv6 addresses are handled without Hyperscan. Cards,
//! SSNs, phone numbers and IPv4 addresses (and the places where IBANs
//! start) come from the numeric pass in [`super::numeric`], which works on
//! bitmasks of the text's byte classes. IPv6 candidates start from colons
//! found 64 bytes at a time, and runs without `::` or six colons are
//! skipped (the validator would refuse them).
//!
//! # Completeness
//!
//! For every detector, each candidate of the definition in
//! [`super::detectors`] contains an anchor from which the engine reaches
//! it: token candidates begin with their literal, e-mail candidates contain
//! `@` and start where the run of local-part bytes before it starts, IPv6
//! candidates contain a colon and start where their run of hex, `:` and `.`
//! starts, numeric candidates lie in a numeric run, and so on. Every
//! shortcut (a digit count, a first digit, a single possible end) is a
//! necessary condition of the definition, never a heuristic. The property
//! tests in `tests/masking_equivalence.rs` check the consequence (identical
//! findings to the reference scanner) and each bitmask primitive against a
//! byte-by-byte walk.

use std::sync::Arc;

use hyperscan::prelude::*;

use super::anchors::{self, Literal};
use super::detectors::{is_email_local, is_token, Builtin};
use super::numeric::{self, BLOCK_BYTES, NUMERIC_SITE_DETECTORS};
use super::style::Style;
use super::{
    resolve, DetectorId, DetectorSet, Finding, CANDIDATES_MAX, CUSTOM_MATCH_BYTES_MAX,
    DETECTORS_MAX, VALUE_SCAN_BYTES_MAX,
};
use crate::masking::validate;

/// Validators that a custom detector may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomValidator {
    /// The digits pass the Luhn check.
    Luhn,
    /// A known IBAN country, its length and mod-97 (spaces ignored).
    Mod97,
    /// Exactly nine digits (separators ignored) in issued SSN ranges.
    SsnRanges,
}

impl CustomValidator {
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "luhn" => Some(CustomValidator::Luhn),
            "mod97" | "iban" => Some(CustomValidator::Mod97),
            "ssn" | "ssn_ranges" => Some(CustomValidator::SsnRanges),
            _ => None,
        }
    }

    pub fn check(self, c: &[u8]) -> bool {
        match self {
            CustomValidator::Luhn => validate::luhn(c),
            CustomValidator::Mod97 => validate::iban(c),
            CustomValidator::SsnRanges => {
                let mut d = [0u8; 11];
                let mut n = 0;
                for &b in c.iter().filter(|b| b.is_ascii_digit()) {
                    if n == 9 {
                        return false;
                    }
                    d[n] = b;
                    n += 1;
                }
                if n != 9 {
                    return false;
                }
                d[9] = d[8];
                d[10] = d[8];
                // Re-lay the nine digits as AAA-GG-SSSS for the range check.
                let laid = [
                    d[0], d[1], d[2], b'-', d[3], d[4], b'-', d[5], d[6], d[7], d[8],
                ];
                validate::ssn(&laid)
            }
        }
    }
}

/// A custom detector from the configuration.
#[derive(Debug, Clone)]
pub struct CustomDetector {
    pub pattern: String,
    pub validator: Option<CustomValidator>,
    /// `^(?:pattern)$` over bytes, for confirming a candidate span.
    full: regex::bytes::Regex,
}

impl CustomDetector {
    /// Compiles the confirmation regex. Anchors and word-boundary
    /// assertions are refused because a candidate is judged on its own
    /// bytes, without context, and Hyperscan (which sees the context) would
    /// then disagree with the confirmation.
    pub fn new(pattern: &str, validator: Option<CustomValidator>) -> Result<Self, String> {
        for forbidden in ["^", "$", "\\b", "\\B", "\\A", "\\z", "\\Z"] {
            if pattern.contains(forbidden) {
                return Err(format!(
                    "contains `{forbidden}`: anchors and boundary assertions are not supported"
                ));
            }
        }
        if !pattern.is_ascii() {
            return Err("must be ASCII".to_owned());
        }
        let full = regex::bytes::Regex::new(&format!("(?-u)^(?:{pattern})$"))
            .map_err(|e| format!("does not compile: {e}"))?;
        if full.is_match(b"") {
            return Err("matches the empty string".to_owned());
        }
        Ok(CustomDetector {
            pattern: pattern.to_owned(),
            validator,
            full,
        })
    }

    /// Does `c` (a whole candidate) match and validate?
    pub fn accepts(&self, c: &[u8]) -> bool {
        self.full.is_match(c) && self.validator.is_none_or(|v| v.check(c))
    }
}

/// What a detector is.
#[derive(Debug, Clone)]
pub enum DetectorKind {
    Builtin(Builtin),
    Custom(CustomDetector),
}

/// A detector as the engine holds it: what it matches and how it masks.
#[derive(Debug, Clone)]
pub struct DetectorDef {
    pub name: String,
    pub kind: DetectorKind,
    pub style: Style,
    /// Replacement text of the [`Style::Redact`] style.
    pub label: String,
}

/// How a Hyperscan anchor leads to candidates.
#[derive(Debug, Clone, Copy)]
enum Anchor {
    /// A literal prefix of this length starts the candidate.
    Prefix(Builtin, usize),
    Email,
    Pem,
    AwsSecretKeyword,
    Custom(DetectorId),
}

/// The shared, read-only part: detector definitions and the compiled
/// Hyperscan database. Build it once and share it behind an `Arc`.
pub struct Engine {
    detectors: Vec<DetectorDef>,
    /// Anchors of the custom detectors, by Hyperscan pattern id.
    anchors: Vec<(DetectorId, Anchor)>,
    /// Anchors of the built-in detectors, by [`Literal`].
    builtin_anchors: [Option<(DetectorId, Anchor)>; LITERALS],
    /// The detectors that have a built-in anchor.
    builtin_anchor_set: DetectorSet,
    /// The custom detectors' patterns (none when there are none).
    database: Option<BlockDatabase>,
}

/// Number of [`Literal`]s.
const LITERALS: usize = Literal::AwsSecretKeyword as usize + 1;

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("detectors", &self.detectors.len())
            .field("anchors", &self.anchors.len())
            .finish()
    }
}

/// Engine construction failures.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{count} detectors exceed the maximum of {max}")]
    TooManyDetectors { count: usize, max: usize },
    #[error("custom detector `{name}`: pattern {reason}")]
    CustomPattern { name: String, reason: String },
    #[error("Hyperscan refused the anchor database: {0}")]
    Hyperscan(String),
}

/// The built-in detectors with their default styles and labels.
pub fn builtin_detectors() -> Vec<DetectorDef> {
    Builtin::ALL
        .iter()
        .map(|&b| DetectorDef {
            name: b.name().to_owned(),
            kind: DetectorKind::Builtin(b),
            style: b.default_style(),
            label: b.default_label(),
        })
        .collect()
}

impl Engine {
    /// An engine with only the built-in detectors and default styles.
    pub fn builtin() -> Result<Self, EngineError> {
        Self::new(builtin_detectors())
    }

    /// Compiles the anchor database for `detectors`. Built-ins must come
    /// first, in [`Builtin::ALL`] order (see [`DetectorId`]); use
    /// [`builtin_detectors`] and append custom ones.
    pub fn new(detectors: Vec<DetectorDef>) -> Result<Self, EngineError> {
        if detectors.len() > DETECTORS_MAX {
            return Err(EngineError::TooManyDetectors {
                count: detectors.len(),
                max: DETECTORS_MAX,
            });
        }
        let mut anchors: Vec<(DetectorId, Anchor)> = Vec::new();
        let mut builtin_anchors: [Option<(DetectorId, Anchor)>; LITERALS] = [None; LITERALS];
        let mut patterns: Vec<Pattern> = Vec::new();
        let mut add = |expr: &str,
                       flags: CompileFlags,
                       id: DetectorId,
                       anchor: Anchor|
         -> Result<(), EngineError> {
            let mut p = Pattern::with_flags(expr, flags)
                .map_err(|e| EngineError::Hyperscan(e.to_string()))?;
            p.id = Some(anchors.len());
            patterns.push(p);
            anchors.push((id, anchor));
            Ok(())
        };
        for (i, d) in detectors.iter().enumerate() {
            let id = i as DetectorId;
            let none = CompileFlags::empty();
            match &d.kind {
                DetectorKind::Builtin(b) => {
                    // Built-in anchors are found by [`anchors::find`]
                    // without Hyperscan; numbers, IBANs and IPv6 addresses
                    // by the engine's own walks.
                    let anchor = match b {
                        Builtin::PemPrivateKey => Some((Literal::PemBegin, Anchor::Pem)),
                        Builtin::Jwt => Some((Literal::Jwt, Anchor::Prefix(*b, 3))),
                        Builtin::AwsSecretKey => {
                            Some((Literal::AwsSecretKeyword, Anchor::AwsSecretKeyword))
                        }
                        Builtin::AwsAccessKeyId => {
                            Some((Literal::AwsAccessKeyId, Anchor::Prefix(*b, 4)))
                        }
                        Builtin::GithubToken => {
                            builtin_anchors[Literal::GithubPat as usize] =
                                Some((id, Anchor::Prefix(*b, 11)));
                            Some((Literal::GithubShort, Anchor::Prefix(*b, 4)))
                        }
                        Builtin::SlackToken => Some((Literal::Slack, Anchor::Prefix(*b, 5))),
                        Builtin::StripeKey => Some((Literal::Stripe, Anchor::Prefix(*b, 8))),
                        Builtin::GoogleApiKey => Some((Literal::Google, Anchor::Prefix(*b, 4))),
                        Builtin::Email => Some((Literal::At, Anchor::Email)),
                        Builtin::Iban
                        | Builtin::Ipv6
                        | Builtin::Card
                        | Builtin::Ssn
                        | Builtin::Phone
                        | Builtin::Ipv4 => None,
                    };
                    if let Some((literal, anchor)) = anchor {
                        builtin_anchors[literal as usize] = Some((id, anchor));
                    }
                }
                DetectorKind::Custom(c) => {
                    add(&c.pattern, none, id, Anchor::Custom(id)).map_err(|e| {
                        EngineError::CustomPattern {
                            name: d.name.clone(),
                            reason: e.to_string(),
                        }
                    })?;
                }
            }
        }
        // Hyperscan refuses an empty pattern list; an engine with only the
        // walked detectors simply has no database.
        let database: Option<BlockDatabase> = if patterns.is_empty() {
            None
        } else {
            Some(
                Patterns(patterns)
                    .build()
                    .map_err(|e| EngineError::Hyperscan(e.to_string()))?,
            )
        };
        let builtin_anchor_set = builtin_anchors
            .iter()
            .flatten()
            .fold(DetectorSet::EMPTY, |set, &(id, _)| set.with(id));
        Ok(Engine {
            detectors,
            anchors,
            builtin_anchors,
            builtin_anchor_set,
            database,
        })
    }

    pub fn detectors(&self) -> &[DetectorDef] {
        &self.detectors
    }

    pub fn detector(&self, id: DetectorId) -> Option<&DetectorDef> {
        self.detectors.get(usize::from(id))
    }

    /// The id of the detector called `name`.
    pub fn detector_id(&self, name: &str) -> Option<DetectorId> {
        self.detectors
            .iter()
            .position(|d| d.name == name)
            .map(|i| i as DetectorId)
    }

    /// A scanner for the calling worker (Hyperscan scratch space and
    /// reusable buffers). Scanners are `Send` but not shared.
    pub fn scanner(self: &Arc<Self>) -> Result<Scanner, EngineError> {
        let scratch = match &self.database {
            Some(db) => Some(
                db.alloc_scratch()
                    .map_err(|e| EngineError::Hyperscan(e.to_string()))?,
            ),
            None => None,
        };
        Ok(Scanner {
            engine: Arc::clone(self),
            scratch,
            candidates: Vec::with_capacity(256),
            findings: Vec::with_capacity(64),
            blocks: Vec::with_capacity(64),
        })
    }
}

/// The findings of one scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scan<'a> {
    pub findings: &'a [Finding],
    /// False when a bound ([`VALUE_SCAN_BYTES_MAX`], [`CANDIDATES_MAX`],
    /// [`super::FINDINGS_MAX`]) stopped the scan: the value must then be
    /// masked whole.
    pub complete: bool,
}

/// A worker's scanner: Hyperscan scratch space plus reusable buffers, so
/// that scanning allocates nothing once the buffers have grown.
pub struct Scanner {
    engine: Arc<Engine>,
    scratch: Option<Scratch>,
    candidates: Vec<Finding>,
    findings: Vec<Finding>,
    /// Scratch space of the numeric pass's classification.
    blocks: Vec<numeric::BlockClasses>,
}

impl std::fmt::Debug for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanner")
            .field("engine", &self.engine)
            .finish()
    }
}

/// Pushes the candidate `(s, e)` for the longest `e` in `min_e..=max_e`
/// (descending) that sits on a boundary, has the shape and validates.
#[inline]
fn confirm_longest(
    text: &[u8],
    b: Builtin,
    id: DetectorId,
    s: usize,
    max_e: usize,
    out: &mut Vec<Finding>,
) {
    let (min_len, max_len) = b.len_range();
    let hi = max_e.min(s + max_len).min(text.len());
    let lo = s + min_len;
    let mut e = hi;
    while e >= lo {
        // Every boundary but PEM's (which is never confirmed here) needs a
        // byte other than a letter or digit after the candidate; testing
        // that first keeps the walk over long runs cheap.
        let cheap_ok = e == text.len() || !text[e].is_ascii_alphanumeric();
        if cheap_ok && b.right_ok(text, e) && b.shape(&text[s..e]) && b.validate(text, s, e) {
            out.push(Finding {
                start: s,
                end: e,
                detector: id,
            });
            return;
        }
        e -= 1;
    }
}

/// A maximal run of digits and `[ ().+-]` at least [`RUN_BYTES_MIN`]
/// bytes long that holds at least one digit: every card, SSN, phone number
impl Scanner {
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Scans `text` with the detectors in `set`. The findings are sorted,
    /// non-overlapping, and borrow the scanner until the next scan.
    pub fn scan(&mut self, text: &[u8], set: DetectorSet) -> Scan<'_> {
        self.findings.clear();
        if text.len() > VALUE_SCAN_BYTES_MAX {
            return Scan {
                findings: &self.findings,
                complete: false,
            };
        }
        self.candidates.clear();
        let engine = &*self.engine;
        let mut complete = true;
        if let (false, Some(db), Some(scratch)) = (text.is_empty(), &engine.database, &self.scratch)
        {
            let candidates = &mut self.candidates;
            let result = db.scan(
                text,
                scratch,
                |pattern: u32, _from: u64, to: u64, _flags: u32| {
                    let Some(&(id, anchor)) = engine.anchors.get(pattern as usize) else {
                        return Matching::Continue;
                    };
                    if !set.contains(id) {
                        return Matching::Continue;
                    }
                    anchored(engine, text, id, anchor, to as usize, candidates);
                    if candidates.len() >= CANDIDATES_MAX {
                        return Matching::Terminate;
                    }
                    Matching::Continue
                },
            );
            // Terminate is reported as an error by the crate; either way the
            // candidate list may be cut short.
            if result.is_err() || self.candidates.len() >= CANDIDATES_MAX {
                complete = false;
            }
        }
        if complete && !text.is_empty() && set.0 & engine.builtin_anchor_set.0 != 0 {
            let candidates = &mut self.candidates;
            anchors::find(text, |hit| {
                if let Some((id, anchor)) = engine.builtin_anchors[hit.literal as usize] {
                    if set.contains(id) && candidates.len() < CANDIDATES_MAX {
                        anchored(engine, text, id, anchor, hit.end, candidates);
                    }
                }
            });
            complete = self.candidates.len() < CANDIDATES_MAX;
        }
        if !text.is_empty() {
            let numeric = set.0 & NUMERIC_SITE_DETECTORS.0 != 0;
            if complete && numeric {
                complete =
                    numeric::scan(text, set, &mut self.blocks, &mut self.candidates, scan_iban);
            }
            if complete && set.contains(Builtin::Ipv6 as DetectorId) {
                scan_ipv6(text, &mut self.candidates);
                complete = self.candidates.len() < CANDIDATES_MAX;
            }
        }
        if complete {
            complete = resolve(&mut self.candidates, &mut self.findings);
        }
        if !complete {
            self.findings.clear();
        }
        Scan {
            findings: &self.findings,
            complete,
        }
    }

    /// Scans `value` and masks its findings in place with each detector's
    /// same-length style (a detector configured to redact falls back to
    /// [`Style::Stars`] here, since the length must not change). Returns
    /// the counts; allocates nothing.
    pub fn mask_in_place(&mut self, value: &mut [u8], set: DetectorSet) -> super::MaskSummary {
        let mut summary = super::MaskSummary::default();
        self.mask_value(value, set, None, &mut summary);
        summary
    }

    /// Like [`Scanner::mask_in_place`], adding to `summary` under `column`.
    /// Returns the number of findings masked (a whole-value mask counts
    /// as one).
    pub fn mask_value(
        &mut self,
        value: &mut [u8],
        set: DetectorSet,
        column: Option<u16>,
        summary: &mut super::MaskSummary,
    ) -> usize {
        if !self.scan(value, set).complete {
            super::style::fill(value);
            summary.record_whole(column);
            return 1;
        }
        // The findings and the engine are read through separate fields, so
        // no reference count is touched per value.
        for f in &self.findings {
            let style = self.engine.detectors[usize::from(f.detector)]
                .style
                .same_length();
            super::style::mask_span(value, f.start, f.end, style);
            summary.record(f.detector, column);
        }
        self.findings.len()
    }
}

/// Turns one Hyperscan anchor ending at `to` into candidates.
fn anchored(
    engine: &Engine,
    text: &[u8],
    id: DetectorId,
    anchor: Anchor,
    to: usize,
    out: &mut Vec<Finding>,
) {
    let n = text.len();
    match anchor {
        Anchor::Prefix(b, len) => {
            let s = to - len;
            if !b.left_ok(text, s) {
                return;
            }
            let (_, max_len) = b.len_range();
            let limit = n.min(s + max_len);
            if b == Builtin::Jwt {
                if let Some(e) = jwt_end(text, s, limit) {
                    out.push(Finding {
                        start: s,
                        end: e,
                        detector: id,
                    });
                }
                return;
            }
            let mut e = to;
            while e < limit && is_token(text[e]) {
                e += 1;
            }
            confirm_longest(text, b, id, s, e, out);
        }
        Anchor::Email => {
            let at = to - 1;
            let mut s = at;
            while s > 0 && at - s <= 64 && is_email_local(text[s - 1]) {
                s -= 1;
            }
            if s == at || !Builtin::Email.left_ok(text, s) {
                return;
            }
            let limit = n.min(s + Builtin::Email.len_range().1);
            let mut e = to;
            while e < limit
                && (text[e].is_ascii_alphanumeric() || text[e] == b'-' || text[e] == b'.')
            {
                e += 1;
            }
            confirm_longest(text, Builtin::Email, id, s, e, out);
        }
        Anchor::Pem => {
            let s = to - b"-----BEGIN ".len();
            if let Some(e) = pem_end(text, s) {
                if Builtin::PemPrivateKey.shape(&text[s..e]) {
                    out.push(Finding {
                        start: s,
                        end: e,
                        detector: id,
                    });
                }
            }
        }
        Anchor::AwsSecretKeyword => {
            let b = Builtin::AwsSecretKey;
            for s in to..=n.min(to + validate::AWS_SECRET_GAP_MAX) {
                let e = s + 40;
                if e <= n
                    && b.left_ok(text, s)
                    && b.right_ok(text, e)
                    && b.shape(&text[s..e])
                    && b.validate(text, s, e)
                {
                    out.push(Finding {
                        start: s,
                        end: e,
                        detector: id,
                    });
                }
            }
        }
        Anchor::Custom(cid) => {
            let DetectorKind::Custom(c) = &engine.detectors[usize::from(cid)].kind else {
                return;
            };
            let e = to;
            for s in e.saturating_sub(CUSTOM_MATCH_BYTES_MAX)..e {
                if c.accepts(&text[s..e]) {
                    out.push(Finding {
                        start: s,
                        end: e,
                        detector: id,
                    });
                }
            }
        }
    }
}

/// The JSON Web Token candidate from `s` (its `eyJ`), if any, within
/// `limit`. Header, payload and signature are runs of token bytes
/// separated by single dots, and the right boundary excludes a token byte
/// after the end, so the only possible end is the end of the run after the
/// second dot: one forward walk instead of trying every end.
fn jwt_end(text: &[u8], s: usize, limit: usize) -> Option<usize> {
    // The shape, checked part by part while walking: each part has at
    // least eight token bytes and the first two start with `eyJ`.
    let mut e = s;
    for part in 0..3 {
        let from = e;
        e = token_run_end(text, e, limit);
        if e - from < 8 || (part < 2 && !text[from..].starts_with(b"eyJ")) {
            return None;
        }
        if part < 2 {
            if e >= limit || text[e] != b'.' {
                return None;
            }
            e += 1;
        }
    }
    let b = Builtin::Jwt;
    (b.right_ok(text, e) && b.validate(text, s, e)).then_some(e)
}

/// The end of the run of token bytes (`[A-Za-z0-9_-]`) from `from`, at
/// most `limit`: 32 bytes per step with AVX2 (JSON Web Tokens run to a few
/// hundred bytes), one at a time otherwise and near the end of the text.
#[inline]
fn token_run_end(text: &[u8], from: usize, limit: usize) -> usize {
    let mut e = from;
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 was just detected.
        e = unsafe { token_run_end_avx2(text, from, limit) };
    }
    while e < limit && TOKEN[usize::from(text[e])] {
        e += 1;
    }
    e
}

/// Whole 32-byte steps of [`token_run_end`]; returns where the byte-wise
/// walk takes over (a non-token byte, or fewer than 32 bytes before
/// `limit`).
///
/// # Safety
///
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,bmi1")]
unsafe fn token_run_end_avx2(text: &[u8], from: usize, limit: usize) -> usize {
    use std::arch::x86_64::{
        __m256i, _mm256_and_si256, _mm256_cmpeq_epi8, _mm256_cmpgt_epi8, _mm256_loadu_si256,
        _mm256_movemask_epi8, _mm256_or_si256, _mm256_set1_epi8,
    };
    let limit = limit.min(text.len());
    let mut e = from;
    while e + 32 <= limit {
        // SAFETY: `e + 32 <= limit <= text.len()`, so the load stays inside
        // `text`.
        let bits = unsafe {
            let v = _mm256_loadu_si256(text.as_ptr().add(e).cast::<__m256i>());
            // Signed compares: bytes of 0x80 and above are negative and fall
            // in no range.
            let within = |x: __m256i, lo: u8, hi: u8| {
                _mm256_and_si256(
                    _mm256_cmpgt_epi8(x, _mm256_set1_epi8(lo as i8 - 1)),
                    _mm256_cmpgt_epi8(_mm256_set1_epi8(hi as i8 + 1), x),
                )
            };
            let lower = _mm256_or_si256(v, _mm256_set1_epi8(0x20));
            let token = _mm256_or_si256(
                _mm256_or_si256(within(lower, b'a', b'z'), within(v, b'0', b'9')),
                _mm256_or_si256(
                    _mm256_cmpeq_epi8(v, _mm256_set1_epi8(b'_' as i8)),
                    _mm256_cmpeq_epi8(v, _mm256_set1_epi8(b'-' as i8)),
                ),
            );
            _mm256_movemask_epi8(token) as u32
        };
        if bits != u32::MAX {
            return e + (!bits).trailing_zeros() as usize;
        }
        e += 32;
    }
    e
}

/// Bytes of API tokens and JWT parts: `[A-Za-z0-9_-]`.
const fn token_class() -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = 0usize;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || c == b'_' || c == b'-';
        b += 1;
    }
    t
}
static TOKEN: [bool; 256] = token_class();

/// The IBAN candidate starting at `s` (country code), if any. The
/// validator wants exactly the country's length without spaces, and the
/// shape only allows a space before each group of four after the check
/// digits, so one end is possible: `s` plus that length, plus one space per
/// group when the byte after the check digits is a space.
fn scan_iban(text: &[u8], s: usize, out: &mut Vec<Finding>) {
    let b = Builtin::Iban;
    if s + 4 >= text.len() || !b.left_ok(text, s) {
        return;
    }
    let Some(length) = validate::iban_length(&text[s..s + 2]) else {
        return;
    };
    let after_check = length - 4;
    let e = if text[s + 4] == b' ' {
        s + length + after_check.div_ceil(4)
    } else {
        s + length
    };
    if e <= text.len() && b.shape(&text[s..e]) && b.right_ok(text, e) && b.validate(text, s, e) {
        out.push(Finding {
            start: s,
            end: e,
            detector: b as DetectorId,
        });
    }
}

/// Bytes of IPv6 candidates: hex digits, `:` and `.`.
const fn ipv6_class() -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = 0usize;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_hexdigit() || c == b':' || c == b'.';
        b += 1;
    }
    t
}
static IPV6: [bool; 256] = ipv6_class();

/// Positions of `:` in a text, left to right, found 64 bytes at a time
/// (a colon per time of day makes a general-purpose `memchr` call per
/// match cost more than the search itself).
#[derive(Debug, Clone)]
pub struct Colons<'a> {
    text: &'a [u8],
    at: usize,
    left: u64,
}

impl<'a> Colons<'a> {
    pub fn new(text: &'a [u8]) -> Self {
        Colons {
            text,
            at: 0,
            left: colon_mask(text, 0),
        }
    }
}

impl Iterator for Colons<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        while self.left == 0 {
            self.at += BLOCK_BYTES;
            if self.at >= self.text.len() {
                return None;
            }
            self.left = colon_mask(self.text, self.at);
        }
        let bit = self.left.trailing_zeros();
        self.left &= self.left - 1;
        Some(self.at + bit as usize)
    }
}

/// One bit per `:` in the block of `text` at `at` (zero past the end).
#[inline]
fn colon_mask(text: &[u8], at: usize) -> u64 {
    let n = text.len();
    if at >= n {
        return 0;
    }
    if let Some(full) = text.get(at..at + BLOCK_BYTES) {
        return colon_bits(full);
    }
    if let Some(last) = n.checked_sub(BLOCK_BYTES) {
        // The last, partial block: the last 64 bytes, shifted (see
        // `classify_at`).
        return colon_bits(&text[last..]) >> (at - last);
    }
    let mut block = [0u8; BLOCK_BYTES];
    block[..n - at].copy_from_slice(&text[at..]);
    colon_bits(&block)
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn colon_bits(bytes: &[u8]) -> u64 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
    };
    let mut mask = 0u64;
    for (lane, chunk) in bytes.chunks_exact(16).enumerate() {
        // SAFETY: SSE2 is part of the x86-64 baseline, and `chunk` holds
        // exactly the 16 bytes the unaligned load reads.
        let bits = unsafe {
            let v = _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>());
            _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b':' as i8))) as u16
        };
        mask |= u64::from(bits) << (lane * 16);
    }
    mask
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn colon_bits(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .enumerate()
        .fold(0u64, |m, (i, &b)| m | (u64::from(b == b':') << i))
}

/// Whether `text` holds `::` or at least six colons: without either, no
/// run of hex digits, `:` and `.` does, and [`scan_ipv6`] would skip every
/// run. Most values (times of day, `host:port`) are refused here by a
/// count over the colon bitmasks, without walking any run.
fn may_hold_ipv6(text: &[u8]) -> bool {
    let mut colons = 0u32;
    let mut at = 0usize;
    let mut carry = 0u64;
    while at < text.len() {
        let mask = colon_mask(text, at);
        // `::` within the block, or across its first byte.
        if mask & ((mask << 1) | carry) != 0 {
            return true;
        }
        carry = mask >> 63;
        colons += mask.count_ones();
        at += BLOCK_BYTES;
    }
    colons >= 6
}

/// IPv6 candidates: every run of hex digits, `:` and `.` that holds at
/// least two colons is tried from its start (a candidate cannot start
/// inside such a run: its left boundary excludes all of those bytes).
fn scan_ipv6(text: &[u8], out: &mut Vec<Finding>) {
    let b = Builtin::Ipv6;
    let is_v6 = |c: u8| IPV6[usize::from(c)];
    let max_len = b.len_range().1;
    if !may_hold_ipv6(text) {
        return;
    }
    let mut done = 0usize;
    for p in Colons::new(text) {
        if p < done {
            continue;
        }
        let mut s = p;
        while s > 0 && is_v6(text[s - 1]) {
            s -= 1;
        }
        let mut e = p + 1;
        let mut colons = 1;
        let mut double_colon = false;
        while e < text.len() && is_v6(text[e]) {
            let colon = text[e] == b':';
            colons += usize::from(colon);
            double_colon |= colon && text[e - 1] == b':';
            e += 1;
        }
        done = e;
        // The validator wants `::` or at least six colons; a run with
        // neither (times of day, `host:port`) holds no address. The run
        // before `p` holds no colon: `p` is the first one after `done`.
        if (colons >= 6 || double_colon) && b.left_ok(text, s) {
            confirm_longest(text, b, b as DetectorId, s, e.min(s + max_len), out);
        }
        if out.len() >= CANDIDATES_MAX {
            return;
        }
    }
}

/// The end of the PEM private key block whose `-----BEGIN ` starts at `s`,
/// if its shape can hold (the body has no `--`, so the end marker starts at
/// the first `--` after the header).
fn pem_end(text: &[u8], s: usize) -> Option<usize> {
    let limit = text.len().min(s + super::detectors::PEM_BYTES_MAX);
    let window = &text[s..limit];
    let header = 11 + window[11..].iter().position(|&b| b == b'-')?;
    let body = header + 5;
    if body > window.len() {
        return None;
    }
    let p = body + memchr::memmem::find(&window[body..], b"--")?;
    let after_end = p + b"-----END ".len();
    if after_end > window.len() {
        return None;
    }
    let q = after_end + window[after_end..].iter().position(|&b| b == b'-')?;
    let e = q + 5;
    (e <= window.len()).then_some(s + e)
}
