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
//! of allowed bytes). For API tokens, e-mail and JSON Web Tokens the
//! boundaries leave a single possible end, found by one forward walk that
//! checks the shape on the way: the end of the run of token bytes
//! ([`token_end`]), the end of the last domain label ([`email_around`]),
//! the end of the signature. Each candidate is then read once, not once
//! per possible end. PEM blocks end at their end marker, and AWS secret
//! keys are forty bytes from one of the few starts after their keyword.
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

use super::anchors::{self, Cpu, Literal};
// The walks test byte classes with one table load per byte.
use super::detectors::{byte_class as class, in_class as is, is_email_local, Builtin};
use super::numeric::{self, bits_below, BLOCK_BYTES, NUMERIC_SITE_DETECTORS};
use super::style::Style;
use super::{
    resolve_in_place, DetectorId, DetectorSet, Finding, CANDIDATES_MAX, CUSTOM_MATCH_BYTES_MAX,
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
    /// The detector of each built-in anchor [`Literal`], when the engine
    /// has it (how the anchor leads to candidates is [`literal_anchor`]).
    builtin_anchors: [Option<DetectorId>; LITERALS],
    /// The detectors that have a built-in anchor.
    builtin_anchor_set: DetectorSet,
    /// The custom detectors' patterns (none when there are none).
    database: Option<BlockDatabase>,
}

/// Number of [`Literal`]s.
const LITERALS: usize = Literal::AwsSecretKeyword as usize + 1;

/// Every [`Literal`], in order.
const ALL_LITERALS: [Literal; LITERALS] = [
    Literal::At,
    Literal::Jwt,
    Literal::AwsAccessKeyId,
    Literal::GithubShort,
    Literal::GithubPat,
    Literal::Slack,
    Literal::Stripe,
    Literal::Google,
    Literal::PemBegin,
    Literal::AwsSecretKeyword,
];

/// The built-in detector whose candidates contain the anchor `literal`.
const fn literal_detector(literal: Literal) -> Builtin {
    match literal {
        Literal::At => Builtin::Email,
        Literal::Jwt => Builtin::Jwt,
        Literal::AwsAccessKeyId => Builtin::AwsAccessKeyId,
        Literal::GithubShort | Literal::GithubPat => Builtin::GithubToken,
        Literal::Slack => Builtin::SlackToken,
        Literal::Stripe => Builtin::StripeKey,
        Literal::Google => Builtin::GoogleApiKey,
        Literal::PemBegin => Builtin::PemPrivateKey,
        Literal::AwsSecretKeyword => Builtin::AwsSecretKey,
    }
}

/// How the built-in anchor `literal` leads to candidates. A function of
/// the literal alone (not a table entry), so that where the anchor search
/// reports a literal known at compile time the dispatch on the anchor kind
/// is resolved by the compiler: the search already branched on the
/// trigger byte, and a second, table-driven dispatch mispredicted as often
/// as the first.
#[inline(always)]
const fn literal_anchor(literal: Literal) -> Anchor {
    match literal {
        Literal::At => Anchor::Email,
        Literal::Jwt => Anchor::Prefix(Builtin::Jwt, 3),
        Literal::AwsAccessKeyId => Anchor::Prefix(Builtin::AwsAccessKeyId, 4),
        Literal::GithubShort => Anchor::Prefix(Builtin::GithubToken, 4),
        Literal::GithubPat => Anchor::Prefix(Builtin::GithubToken, 11),
        Literal::Slack => Anchor::Prefix(Builtin::SlackToken, 5),
        Literal::Stripe => Anchor::Prefix(Builtin::StripeKey, 8),
        Literal::Google => Anchor::Prefix(Builtin::GoogleApiKey, 4),
        Literal::PemBegin => Anchor::Pem,
        Literal::AwsSecretKeyword => Anchor::AwsSecretKeyword,
    }
}

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
        let mut builtin_anchors: [Option<DetectorId>; LITERALS] = [None; LITERALS];
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
                    for literal in ALL_LITERALS {
                        if literal_detector(literal) == *b {
                            builtin_anchors[literal as usize] = Some(id);
                        }
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
            .fold(DetectorSet::EMPTY, |set, &id| set.with(id));
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
            cpu: Cpu::detect(),
            candidates: Vec::with_capacity(256),
            findings: Vec::with_capacity(64),
            blocks: numeric::Classes::with_capacity(64),
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
    /// The CPU's features, detected once when the scanner is made rather
    /// than on every scan.
    cpu: Cpu,
    candidates: Vec<Finding>,
    findings: Vec<Finding>,
    /// Scratch space of the numeric pass's classification.
    blocks: numeric::Classes,
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
        let cpu = self.cpu;
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
                    anchored(engine, text, id, anchor, to as usize, cpu, candidates);
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
        // Whether the text holds `::` or six colons, as every IPv6 address
        // does: told by the anchor search when it runs (most rows hold a
        // time of day but no address), found by the IPv6 search otherwise.
        let mut ipv6_possible = true;
        let mut ipv6_told = false;
        if complete && !text.is_empty() && set.0 & engine.builtin_anchor_set.0 != 0 {
            let mut sink = BuiltinAnchors {
                engine,
                text,
                set,
                cpu,
                candidates: &mut self.candidates,
            };
            ipv6_possible = anchors::find_into(text, cpu, &mut sink);
            ipv6_told = true;
            complete = self.candidates.len() < CANDIDATES_MAX;
        }
        if !text.is_empty() {
            let numeric = set.0 & NUMERIC_SITE_DETECTORS.0 != 0;
            if complete && numeric {
                complete =
                    numeric::scan(text, set, &mut self.blocks, &mut self.candidates, scan_iban);
            }
            if complete && ipv6_possible && set.contains(Builtin::Ipv6 as DetectorId) {
                scan_ipv6(text, cpu, ipv6_told, &mut self.candidates);
                complete = self.candidates.len() < CANDIDATES_MAX;
            }
        }
        if complete {
            // The candidates become the findings where they are; the
            // vectors are swapped rather than copied (the candidates are
            // cleared at the next scan, the findings were cleared above).
            complete = resolve_in_place(&mut self.candidates);
            if !self.candidates.is_empty() {
                std::mem::swap(&mut self.candidates, &mut self.findings);
            }
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

/// The anchor search's hits turned into candidates: the built-in anchors
/// of a scan.
struct BuiltinAnchors<'a> {
    engine: &'a Engine,
    text: &'a [u8],
    set: DetectorSet,
    cpu: Cpu,
    candidates: &'a mut Vec<Finding>,
}

impl anchors::AnchorSink for BuiltinAnchors<'_> {
    /// Always inlined, so that the literal of each branch of the anchor
    /// search selects its confirmation at compile time.
    #[inline(always)]
    fn hit(&mut self, hit: anchors::AnchorHit) {
        if let Some(id) = self.engine.builtin_anchors[hit.literal as usize] {
            if self.set.contains(id) && self.candidates.len() < CANDIDATES_MAX {
                let anchor = literal_anchor(hit.literal);
                anchored(
                    self.engine,
                    self.text,
                    id,
                    anchor,
                    hit.end,
                    self.cpu,
                    self.candidates,
                );
            }
        }
    }
}

/// Turns one anchor ending at `to` into candidates. Inlined, so that the
/// match on `anchor` folds away where the anchor is known (each literal's
/// branch of the anchor search); the confirmations it calls stay out of
/// line.
#[inline(always)]
fn anchored(
    engine: &Engine,
    text: &[u8],
    id: DetectorId,
    anchor: Anchor,
    to: usize,
    cpu: Cpu,
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
                if let Some(e) = jwt_end(text, s, limit, cpu) {
                    out.push(Finding {
                        start: s,
                        end: e,
                        detector: id,
                    });
                }
                return;
            }
            if let Some(e) = token_end(text, s, to, b, cpu) {
                out.push(Finding {
                    start: s,
                    end: e,
                    detector: id,
                });
            }
        }
        Anchor::Email => {
            if let Some((s, e)) = email_around_using(text, to - 1, cpu) {
                out.push(Finding {
                    start: s,
                    end: e,
                    detector: id,
                });
            }
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

/// The candidate of the token detector `b` whose literal `text[s..to]`
/// (as [`anchors::find`] reports it) starts at `s`, if any. Every byte the
/// token shapes allow after their literal is a token byte
/// (`[A-Za-z0-9_-]`), and the right boundary excludes a token byte after
/// the candidate, so the only possible end is the end of the run of token
/// bytes: one walk, then the shape is checked once (instead of at every end
/// from the longest down).
#[inline]
pub fn token_end(text: &[u8], s: usize, to: usize, b: Builtin, cpu: Cpu) -> Option<usize> {
    let (min_len, max_len) = b.len_range();
    // One byte past the longest candidate: a run that reaches it is too
    // long for any end to sit on the boundary.
    let limit = text.len().min(s + max_len + 1);
    let e = token_run_end(text, to, limit, cpu);
    let len = e - s;
    if !(min_len..=max_len).contains(&len) || !b.right_ok(text, e) {
        return None;
    }
    let shaped = match token_body(b, to - s, len) {
        // Every byte of the body is a token byte (the run says so), so the
        // body is in `class` exactly when it holds none of the token bytes
        // that `class` leaves out.
        Some(class) => token_bytes_present(&text[to..e]) & token_bytes_outside(class) == 0,
        None => b.shape(&text[s..e]),
    };
    (shaped && b.validate(text, s, e)).then_some(e)
}

/// The byte class that the shape of token detector `b` allows after a
/// literal of `literal_len` bytes in a candidate of `len` bytes, when the
/// shape is that class and those lengths only: the literal itself was
/// matched exactly by the anchor search, so the shape check is reduced to
/// one table lookup per byte of the body. `None` when the shape needs more
/// (the caller then checks the whole shape). [`Builtin::shape`] is the
/// definition; the property test `token_walk_matches_definition` holds
/// the two equal.
#[inline]
fn token_body(b: Builtin, literal_len: usize, len: usize) -> Option<u16> {
    match (b, literal_len, len) {
        // `(?:AKIA|ASIA)[A-Z0-9]{16}`
        (Builtin::AwsAccessKeyId, 4, 20) => Some(class::UPPER_DIGIT),
        // `gh[opsur]_[A-Za-z0-9]{36}` and `github_pat_[A-Za-z0-9_]{82}`
        (Builtin::GithubToken, 4, 40) => Some(class::ALNUM),
        (Builtin::GithubToken, 11, 93) => Some(class::WORD),
        // `xox[baprs]-[A-Za-z0-9-]{10,100}`
        (Builtin::SlackToken, 5, 15..=105) => Some(class::LABEL),
        // `[sr]k_live_[A-Za-z0-9]{16,100}`
        (Builtin::StripeKey, 8, 24..=108) => Some(class::ALNUM),
        // `AIza[A-Za-z0-9_-]{35}`
        (Builtin::GoogleApiKey, 4, 39) => Some(class::TOKEN),
        _ => None,
    }
}

/// The token bytes that some body class of `token_body` leaves out: a
/// set of these flags.
pub mod token_byte {
    /// `_`.
    pub const UNDERSCORE: u8 = 1;
    /// `-`.
    pub const DASH: u8 = 2;
    /// `[a-z]`.
    pub const LOWER: u8 = 4;
}

/// The [`token_byte`] flags of the token bytes (`[A-Za-z0-9_-]`) outside
/// `class`, one of the body classes of [`token_body`].
#[inline]
fn token_bytes_outside(class: u16) -> u8 {
    use token_byte::{DASH, LOWER, UNDERSCORE};
    match class {
        class::TOKEN => 0,
        class::WORD => DASH,
        class::LABEL => UNDERSCORE,
        class::ALNUM => UNDERSCORE | DASH,
        class::UPPER_DIGIT => UNDERSCORE | DASH | LOWER,
        // Not a body class: every byte counts as outside, so the caller's
        // check fails closed.
        _ => UNDERSCORE | DASH | LOWER,
    }
}

/// Which of `_`, `-` and `[a-z]` ([`token_byte`] flags) occur in `body`,
/// a run of token bytes (`[A-Za-z0-9_-]`), eight bytes at a time: a token
/// body is 10 to 100 bytes long, and a table lookup per byte was most of
/// the cost of confirming one.
///
/// Each 8-byte word is tested whole: a byte equal to `_` is a zero byte
/// of the word XOR eight `_`s, and "some byte is zero" is exactly
/// `(x - 0x01..01) & !x & 0x80..80 != 0`; a token byte is a lowercase
/// letter exactly when it is at least `a` (0x61), i.e. when adding 0x1f
/// sets its top bit, and no token byte (at most `z`, 0x7a) carries into
/// the next one. The last word overlaps the one before when the length is
/// not a multiple of eight, which only reads some bytes twice.
/// [`token_bytes_present_naive`] is the definition (property-tested).
///
/// Bodies of 16 bytes or more are read 16 bytes at a time with SSE2 (part
/// of every x86-64 CPU) instead: three compares per step, the last step
/// overlapping the one before in the same way; a token byte is lowercase
/// exactly when it is above `` ` `` (0x60) in a signed compare.
pub fn token_bytes_present(body: &[u8]) -> u8 {
    #[cfg(target_arch = "x86_64")]
    if body.len() >= 16 {
        return token_bytes_present_sse2(body);
    }
    token_bytes_present_words(body)
}

/// The 16-byte steps of [`token_bytes_present`] (`body` holds at least
/// 16 bytes).
#[cfg(target_arch = "x86_64")]
#[inline]
fn token_bytes_present_sse2(body: &[u8]) -> u8 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_cmpgt_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8, _mm_setzero_si128,
    };
    let n = body.len();
    debug_assert!(n >= 16);
    // SAFETY: SSE2 is part of the x86-64 baseline, and every load reads
    // the 16 bytes from `step <= n - 16`, inside `body`.
    unsafe {
        let underscore = _mm_set1_epi8(b'_' as i8);
        let dash = _mm_set1_epi8(b'-' as i8);
        let before_a = _mm_set1_epi8(b'`' as i8);
        let (mut found_underscore, mut found_dash, mut found_lower) = (
            _mm_setzero_si128(),
            _mm_setzero_si128(),
            _mm_setzero_si128(),
        );
        let mut at = 0usize;
        loop {
            let step = at.min(n - 16);
            let v = _mm_loadu_si128(body.as_ptr().add(step).cast::<__m128i>());
            found_underscore = _mm_or_si128(found_underscore, _mm_cmpeq_epi8(v, underscore));
            found_dash = _mm_or_si128(found_dash, _mm_cmpeq_epi8(v, dash));
            found_lower = _mm_or_si128(found_lower, _mm_cmpgt_epi8(v, before_a));
            if step + 16 >= n {
                break;
            }
            at += 16;
        }
        (u8::from(_mm_movemask_epi8(found_underscore) != 0) * token_byte::UNDERSCORE)
            | (u8::from(_mm_movemask_epi8(found_dash) != 0) * token_byte::DASH)
            | (u8::from(_mm_movemask_epi8(found_lower) != 0) * token_byte::LOWER)
    }
}

/// [`token_bytes_present`] eight bytes at a time (bodies shorter than 16
/// bytes, and CPUs other than x86-64; public for the property test).
pub fn token_bytes_present_words(body: &[u8]) -> u8 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let n = body.len();
    if n < 8 {
        return token_bytes_present_naive(body);
    }
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let (mut underscore, mut dash, mut lower) = (0u64, 0u64, 0u64);
    let mut at = 0usize;
    loop {
        let word = at.min(n - 8);
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&body[word..word + 8]);
        let v = u64::from_le_bytes(bytes);
        underscore |= has_zero(v ^ (ONES * u64::from(b'_')));
        dash |= has_zero(v ^ (ONES * u64::from(b'-')));
        lower |= v.wrapping_add(ONES * 0x1f) & HIGH;
        if word + 8 >= n {
            break;
        }
        at += 8;
    }
    (u8::from(underscore != 0) * token_byte::UNDERSCORE)
        | (u8::from(dash != 0) * token_byte::DASH)
        | (u8::from(lower != 0) * token_byte::LOWER)
}

/// [`token_bytes_present`] byte by byte: the definition.
pub fn token_bytes_present_naive(body: &[u8]) -> u8 {
    body.iter().fold(0u8, |flags, &c| {
        flags
            | match c {
                b'_' => token_byte::UNDERSCORE,
                b'-' => token_byte::DASH,
                b'a'..=b'z' => token_byte::LOWER,
                _ => 0,
            }
    })
}

/// [`token_end`] by the definition: the longest end from the literal on
/// that sits on the boundary, has the shape and validates, tried from the
/// longest down. The reference of the property test.
pub fn token_end_naive(text: &[u8], s: usize, b: Builtin) -> Option<usize> {
    let mut out = Vec::new();
    let max_e = text.len().min(s + b.len_range().1);
    confirm_longest(text, b, b as DetectorId, s, max_e, &mut out);
    out.first().map(|f| f.end)
}

/// Longest e-mail local part (RFC 5321).
const EMAIL_LOCAL_BYTES_MAX: usize = 64;
/// Longest e-mail domain label (RFC 1035).
const EMAIL_LABEL_BYTES_MAX: usize = 63;
/// Most labels before the top-level domain, as the shape allows.
const EMAIL_LABELS_MAX: usize = 8;
/// Shortest and longest top-level domain, as the shape allows.
const EMAIL_TLD_BYTES: std::ops::RangeInclusive<usize> = 2..=24;

/// The e-mail candidate around the `@` at `at`, if any, found in one walk
/// back over the local part and one walk forward over the domain labels.
///
/// The start is fixed: the left boundary excludes a local-part byte
/// before the candidate, so the local part is the whole run of local-part
/// bytes before `@`. The end is fixed too: the right boundary excludes a
/// label byte after the candidate, and a `.` followed by one, which is
/// exactly what continues the domain with another label; so the only
/// possible end is the end of the last label of the walk, and the shape
/// (label lengths, label count, an alphabetic top-level domain) is checked
/// on the way instead of at every end from the longest down.
pub fn email_around(text: &[u8], at: usize) -> Option<(usize, usize)> {
    let n = text.len();
    if at >= n {
        return None;
    }
    // The local part: at most 64 bytes; one more byte of the run means the
    // start would be inside the run, which the boundary forbids.
    let floor = at.saturating_sub(EMAIL_LOCAL_BYTES_MAX + 1);
    let local = text[floor..at]
        .iter()
        .rev()
        .take_while(|&&c| is(c, class::EMAIL_LOCAL))
        .count();
    let s = at - local;
    if local == 0 || local > EMAIL_LOCAL_BYTES_MAX || (s > 0 && is(text[s - 1], class::EMAIL_LOCAL))
    {
        return None;
    }
    // The domain: labels separated by single dots.
    let mut p = at + 1;
    let mut labels_before = 0usize;
    loop {
        // A label longer than 63 bytes is refused as a label and as a
        // top-level domain alike, so the walk stops one byte past it.
        let ceiling = n.min(p + EMAIL_LABEL_BYTES_MAX + 1);
        let len = text[p..ceiling]
            .iter()
            .take_while(|&&c| is(c, class::LABEL))
            .count();
        let q = p + len;
        if len == 0 || len > EMAIL_LABEL_BYTES_MAX {
            return None;
        }
        if q + 1 < n && text[q] == b'.' && is(text[q + 1], class::LABEL) {
            labels_before += 1;
            if labels_before > EMAIL_LABELS_MAX {
                return None;
            }
            p = q + 1;
            continue;
        }
        // `text[q]` is neither a label byte nor a dot before one; of the
        // token bytes the boundary excludes, only `_` is left to check.
        let ok = labels_before >= 1
            && EMAIL_TLD_BYTES.contains(&len)
            && text[p..q].iter().all(|&c| is(c, class::ALPHA))
            && q - s <= Builtin::Email.len_range().1
            && text.get(q) != Some(&b'_');
        return ok.then_some((s, q));
    }
}

/// [`email_around`] from the byte classes of the 32 bytes before the `@`
/// and the 32 after it, with AVX2 when `cpu` has it: one table lookup
/// pair per 32 bytes instead of a table load and a branch per byte (the
/// byte walks mispredicted at the end of every run). Candidates that the
/// windows do not contain whole (a local part of 32 bytes or more, a
/// domain that runs past the window) take the byte walk.
#[inline]
pub fn email_around_using(text: &[u8], at: usize, cpu: Cpu) -> Option<(usize, usize)> {
    #[cfg(target_arch = "x86_64")]
    if cpu.avx2() {
        // SAFETY: a `Cpu` reports AVX2, `bmi1` and `popcnt` only when they
        // were detected.
        if let Some(found) = unsafe { email_around_avx2(text, at) } {
            return found;
        }
    }
    let _ = cpu;
    email_around(text, at)
}

/// E-mail byte classes as two 16-entry tables, one by a byte's low
/// nibble and one by its high nibble: a byte is in class bit `k` when both
/// of its entries hold `k`. Each bit is a rectangle of low and high
/// nibbles, and the e-mail classes are unions of those bits
/// ([`email_nibble::LOCAL`] and the others). The unit test
/// `email_nibble_tables_match_byte_classes` holds them equal to
/// the byte-class table ([`super::detectors::in_class`]).
mod email_nibble {
    /// `0`-`9`: high nibble 3, low 0 to 9.
    pub const DIGIT: u8 = 1;
    /// `A`-`O` and `a`-`o`: high nibble 4 or 6, low 1 to 15.
    pub const LETTER_LOW: u8 = 2;
    /// `P`-`Z` and `p`-`z`: high nibble 5 or 7, low 0 to 10.
    pub const LETTER_HIGH: u8 = 4;
    /// `-`.
    pub const DASH: u8 = 8;
    /// `.`.
    pub const DOT: u8 = 16;
    /// `_`.
    pub const UNDERSCORE: u8 = 32;
    /// `%` and `+`: high nibble 2, low 5 or 11.
    pub const PERCENT_PLUS: u8 = 64;
    /// `[A-Za-z]`.
    pub const ALPHA: u8 = LETTER_LOW | LETTER_HIGH;
    /// `[A-Za-z0-9-]`: domain labels.
    pub const LABEL: u8 = DIGIT | ALPHA | DASH;
    /// `[A-Za-z0-9._%+-]`: local parts (every bit).
    pub const LOCAL: u8 = LABEL | DOT | UNDERSCORE | PERCENT_PLUS;

    const fn low(nibble: u8) -> u8 {
        let mut bits = 0;
        if nibble <= 9 {
            bits |= DIGIT;
        }
        if nibble >= 1 {
            bits |= LETTER_LOW;
        }
        if nibble <= 10 {
            bits |= LETTER_HIGH;
        }
        match nibble {
            0xd => bits | DASH,
            0xe => bits | DOT,
            0xf => bits | UNDERSCORE,
            0x5 | 0xb => bits | PERCENT_PLUS,
            _ => bits,
        }
    }

    const fn high(nibble: u8) -> u8 {
        match nibble {
            2 => DASH | DOT | PERCENT_PLUS,
            3 => DIGIT,
            4 | 6 => LETTER_LOW,
            5 => LETTER_HIGH | UNDERSCORE,
            7 => LETTER_HIGH,
            _ => 0,
        }
    }

    const fn tables() -> ([u8; 16], [u8; 16]) {
        let (mut low_table, mut high_table) = ([0u8; 16], [0u8; 16]);
        let mut i = 0;
        while i < 16 {
            low_table[i] = low(i as u8);
            high_table[i] = high(i as u8);
            i += 1;
        }
        (low_table, high_table)
    }

    const TABLES: ([u8; 16], [u8; 16]) = tables();
    pub static LOW: [u8; 16] = TABLES.0;
    pub static HIGH: [u8; 16] = TABLES.1;

    /// The class bits of one byte, as the vector code computes them.
    #[cfg(test)]
    pub fn of(b: u8) -> u8 {
        LOW[usize::from(b & 0xf)] & HIGH[usize::from(b >> 4)]
    }
}

/// [`email_around_using`] with AVX2: `None` when the windows do not
/// decide (the caller then walks the bytes), else the answer.
///
/// # Safety
///
/// The CPU must support AVX2, `bmi1` and `popcnt`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,bmi1,popcnt")]
unsafe fn email_around_avx2(text: &[u8], at: usize) -> Option<Option<(usize, usize)>> {
    use email_nibble::{ALPHA, DOT, LABEL, LOCAL};
    use std::arch::x86_64::{
        __m256i, _mm256_and_si256, _mm256_broadcastsi128_si256, _mm256_cmpeq_epi8,
        _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_set1_epi8, _mm256_setzero_si256,
        _mm256_shuffle_epi8, _mm256_srli_epi16, _mm_loadu_si128,
    };
    let n = text.len();
    if at >= n {
        return Some(None);
    }
    // The 32 bytes from `from` (which may lie before the text), zero
    // where the text has no byte: zero is in no class, as the text's ends
    // are outside every run. Only for texts shorter than 32 bytes; longer
    // ones are read from windows inside the text and the bits shifted.
    let padded_window = |from: isize| -> __m256i {
        let mut padded = [0u8; 32];
        let first = from.max(0) as usize;
        let last = (from + 32).clamp(0, n as isize) as usize;
        if first < last {
            let to = (first as isize - from) as usize;
            padded[to..to + (last - first)].copy_from_slice(&text[first..last]);
        }
        // SAFETY: `padded` holds the 32 bytes read.
        unsafe { _mm256_loadu_si256(padded.as_ptr().cast::<__m256i>()) }
    };
    // The 32 bytes from `from`; every caller has `from + 32 <= n`.
    let load = |from: usize| -> __m256i {
        debug_assert!(from + 32 <= n);
        // SAFETY: the 32 bytes from `from` lie inside `text`.
        unsafe { _mm256_loadu_si256(text.as_ptr().add(from).cast::<__m256i>()) }
    };
    // SAFETY: both tables hold 16 bytes.
    let (low_table, high_table) = unsafe {
        (
            _mm256_broadcastsi128_si256(_mm_loadu_si128(email_nibble::LOW.as_ptr().cast())),
            _mm256_broadcastsi128_si256(_mm_loadu_si128(email_nibble::HIGH.as_ptr().cast())),
        )
    };
    let nibble = _mm256_set1_epi8(0x0f);
    let classes = |v: __m256i| {
        _mm256_and_si256(
            _mm256_shuffle_epi8(low_table, _mm256_and_si256(v, nibble)),
            _mm256_shuffle_epi8(
                high_table,
                _mm256_and_si256(_mm256_srli_epi16::<4>(v), nibble),
            ),
        )
    };
    // Bit `i` set when byte `i` has a bit of `class`.
    let member = |c: __m256i, class: u8| {
        let none = _mm256_cmpeq_epi8(
            _mm256_and_si256(c, _mm256_set1_epi8(class as i8)),
            _mm256_setzero_si256(),
        );
        !(_mm256_movemask_epi8(none) as u32)
    };
    // The local part: the run of local-part bytes that ends at the `@`
    // (bit 31 is the byte before it). In a text of 32 bytes or more the
    // window is the 32 bytes before the `@`, or the first 32 when the `@`
    // is nearer the start, shifted so that bit 31 is the byte before the
    // `@` (the bytes from the `@` on are shifted out, zeros come in for
    // the bytes before the text): a select rather than a branch on where
    // the `@` lies, which mispredicted.
    let local_bits = if n >= 32 {
        let from = at.max(32) - 32;
        let shift = from + 32 - at;
        (u64::from(member(classes(load(from)), LOCAL)) << shift) as u32
    } else {
        member(classes(padded_window(at as isize - 32)), LOCAL)
    };
    let local = (!local_bits).leading_zeros() as usize;
    if local == 32 {
        return None;
    }
    if local == 0 {
        return Some(None);
    }
    // The domain, bit 0 at the byte after the `@`: the 32 bytes after it,
    // or near the end of the text its last 32 bytes, shifted so that bit 0
    // is the byte after the `@` (zeros come in past the end).
    let (label, dot, alpha) = if n >= 32 {
        let start = at + 1;
        let from = start.min(n - 32);
        let shift = start - from;
        let after = classes(load(from));
        let cut = |bits: u32| (u64::from(bits) >> shift) as u32;
        (
            cut(member(after, LABEL)),
            cut(member(after, DOT)),
            cut(member(after, ALPHA)),
        )
    } else {
        let after = classes(padded_window(at as isize + 1));
        (
            member(after, LABEL),
            member(after, DOT),
            member(after, ALPHA),
        )
    };
    let run = (!(label | dot)).trailing_zeros();
    if run == 32 {
        return None;
    }
    if label & 1 == 0 {
        return Some(None);
    }
    // The walk goes on past a dot only into another label, so it stops at
    // the first dot not followed by a label byte, or at the end of the run
    // of label bytes and dots. Before that every dot lies between two
    // labels.
    let stops = (dot & !(label >> 1)) | (1u32 << run);
    let q = stops.trailing_zeros();
    let dots_before = dot & ((1u32 << q) - 1);
    let labels_before = dots_before.count_ones() as usize;
    if labels_before == 0 || labels_before > EMAIL_LABELS_MAX {
        return Some(None);
    }
    // The top-level domain: after the last dot before the stop.
    let tld_from = 32 - dots_before.leading_zeros();
    let tld = ((1u32 << q) - 1) & !((1u32 << tld_from) - 1);
    let e = at + 1 + q as usize;
    let ok = EMAIL_TLD_BYTES.contains(&((q - tld_from) as usize))
        && alpha & tld == tld
        && text.get(e) != Some(&b'_');
    Some(ok.then_some((at - local, e)))
}

/// [`email_around`] by the definition: the start after the run of
/// local-part bytes, then every end from the longest down checked for the
/// boundary and the shape. The reference of the property test.
pub fn email_around_naive(text: &[u8], at: usize) -> Option<(usize, usize)> {
    let mut s = at;
    while s > 0 && at - s <= EMAIL_LOCAL_BYTES_MAX && is_email_local(text[s - 1]) {
        s -= 1;
    }
    if s == at || !Builtin::Email.left_ok(text, s) {
        return None;
    }
    let limit = text.len().min(s + Builtin::Email.len_range().1);
    let mut e = at + 1;
    while e < limit && (text[e].is_ascii_alphanumeric() || text[e] == b'-' || text[e] == b'.') {
        e += 1;
    }
    let mut out = Vec::new();
    confirm_longest(text, Builtin::Email, 0, s, e, &mut out);
    out.first().map(|f| (f.start, f.end))
}

/// The JSON Web Token candidate from `s` (its `eyJ`), if any, within
/// `limit`. Header, payload and signature are runs of token bytes
/// separated by single dots, and the right boundary excludes a token byte
/// after the end, so the only possible end is the end of the run after the
/// second dot: one forward walk instead of trying every end.
fn jwt_end(text: &[u8], s: usize, limit: usize, cpu: Cpu) -> Option<usize> {
    // The shape, checked part by part while walking: each part has at
    // least eight token bytes and the first two start with `eyJ`.
    let mut e = s;
    for part in 0..3 {
        let from = e;
        e = token_run_end(text, e, limit, cpu);
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
/// most `limit`: 32 bytes per step with AVX2 (JSON Web Tokens run to a
/// few hundred bytes), one at a time otherwise and near the end of the
/// text.
#[inline]
fn token_run_end(text: &[u8], from: usize, limit: usize, cpu: Cpu) -> usize {
    let mut e = from;
    #[cfg(target_arch = "x86_64")]
    if cpu.avx2() {
        // SAFETY: a `Cpu` reports AVX2 only when it was detected.
        e = unsafe { token_run_end_avx2(text, from, limit) };
    }
    let _ = cpu;
    while e < limit && is(text[e], class::TOKEN) {
        e += 1;
    }
    e
}

/// The vector steps of [`token_run_end`] (64 bytes, or 32 in a text
/// shorter than 64 bytes); returns where the byte-wise walk takes over (a
/// non-token byte, `limit`, or `from` itself in a text shorter than 32
/// bytes).
///
/// A step near the end of the text loads the last bytes instead and
/// shifts the positions before `e` out, so that a short run (most token
/// bodies and JSON Web Token parts end within 32 bytes of the end of a
/// row) is not finished byte by byte: past the end of the text the bits
/// are zero, which ends the run there, and a run reaching past `limit` is
/// cut at `limit`.
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
    let n = text.len();
    let limit = limit.min(n);
    if n < 32 {
        return from;
    }
    // Bit `i` set when `text[at + i]` is a token byte (`at + 32 <= n`).
    let token_bits = |at: usize| {
        // SAFETY: `at + 32 <= n`, so the load stays inside `text`; AVX2 is
        // enabled in this function.
        unsafe {
            let v = _mm256_loadu_si256(text.as_ptr().add(at).cast::<__m256i>());
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
        }
    };
    let mut e = from;
    if n < 64 {
        // Too short for a 64-byte window: 32 bytes per step.
        while e < limit {
            let last = n - 32;
            let start = e.min(last);
            let bits = token_bits(start) >> (e - start);
            if bits != u32::MAX {
                return (e + (!bits).trailing_zeros() as usize).min(limit);
            }
            e += 32;
        }
        return limit;
    }
    // 64 bytes per step, the last step from the last 64 bytes of the text
    // shifted so that bit 0 is `e` (past the end of the text the bits are
    // zero, which ends the run there): a window of a fixed place chosen by
    // a select, and a step that usually covers the whole run, instead of a
    // branch on the place of the window and a second step that both
    // depended on the length of the run.
    let last = n - 64;
    while e < limit {
        let start = e.min(last);
        let bits = (u64::from(token_bits(start)) | (u64::from(token_bits(start + 32)) << 32))
            >> (e - start);
        if bits != u64::MAX {
            return (e + (!bits).trailing_zeros() as usize).min(limit);
        }
        e += 64;
    }
    limit
}

/// Pushes the IBAN candidate whose country code starts at `s`, if any.
fn scan_iban(text: &[u8], s: usize, out: &mut Vec<Finding>) {
    if let Some(e) = iban_end(text, s) {
        out.push(Finding {
            start: s,
            end: e,
            detector: Builtin::Iban as DetectorId,
        });
    }
}

/// The end of the IBAN candidate whose country code starts at `s`, if
/// any, found in one walk that checks the shape and computes the mod-97
/// remainder on the way.
///
/// The validator wants exactly the country's length without spaces, and
/// the shape only allows a space before each group of four after the check
/// digits, so one end is possible: `s` plus that length, plus one space per
/// group when the byte after the check digits is a space. The walk reads
/// each byte once: the bytes after the check digits go straight into the
/// remainder (ISO 7064 moves the country code and check digits behind
/// them), then the four leading bytes.
pub fn iban_end(text: &[u8], s: usize) -> Option<usize> {
    let n = text.len();
    if s + 4 >= n || !Builtin::Iban.left_ok(text, s) {
        return None;
    }
    // Also checks that the country code is two capitals.
    let length = validate::iban_length(&text[s..s + 2])?;
    let (check_high, check_low) = (text[s + 2], text[s + 3]);
    if !check_high.is_ascii_digit() || !check_low.is_ascii_digit() {
        return None;
    }
    let rest = length - 4;
    let spaced = text[s + 4] == b' ';
    let e = if spaced {
        // `(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?`
        if !(2..=7).contains(&(rest / 4)) {
            return None;
        }
        s + length + rest.div_ceil(4)
    } else {
        // `[A-Z0-9]{11,30}`
        if !(11..=30).contains(&rest) {
            return None;
        }
        s + length
    };
    if e > n || (e < n && is(text[e], class::WORD)) {
        return None;
    }
    // The bytes after the check digits, four per group: the shape and
    // the remainder are computed without a branch per byte (whether a
    // byte is a digit or a capital, and whether a space leads its group,
    // differ from one IBAN to the next and mispredicted), and judged once
    // at the end. Reducing modulo 97 once per group commutes with the
    // multiply-adds and keeps the remainder small: below 99 times 100^4
    // within a group (even where a refused byte counts 128), and so also
    // after the four bytes of country code and check digits.
    let mut ok = true;
    let mut invalid = 0u8;
    let mut acc = 0u64;
    let mut p = s + 4;
    // One group of `len` bytes (four, or fewer in the last), after its
    // space when the IBAN is spaced.
    let mut group = |len: usize| {
        ok &= !spaced | (text[p] == b' ');
        p += usize::from(spaced);
        for &b in &text[p..p + len] {
            let (next, bad) = mod97_step(acc, b);
            acc = next;
            invalid |= bad;
        }
        acc %= 97;
        p += len;
    };
    for _ in 0..rest / 4 {
        group(4);
    }
    if rest % 4 != 0 {
        group(rest % 4);
    }
    // ISO 7064 moves the country code and the check digits behind the
    // rest; the country code was checked to be two capitals, the check
    // digits to be digits.
    for &b in &text[s..s + 4] {
        acc = mod97_step(acc, b).0;
    }
    (ok && invalid == 0 && acc % 97 == 1).then_some(e)
}

/// Marks a byte that is neither a digit nor a capital in
/// [`MOD97_VALUE`]: above every value, and a bit of its own.
const MOD97_INVALID: u8 = 0x80;

/// Per byte, its value in the ISO 7064 mod 97-10 remainder of
/// [`validate::mod97`] (digits 0 to 9, capitals A = 10 ... Z = 35), or
/// [`MOD97_INVALID`].
static MOD97_VALUE: [u8; 256] = {
    let mut t = [MOD97_INVALID; 256];
    let mut b = 0;
    while b < 10 {
        t[b'0' as usize + b] = b as u8;
        b += 1;
    }
    let mut l = 0;
    while l < 26 {
        t[b'A' as usize + l] = 10 + l as u8;
        l += 1;
    }
    t
};

/// Per byte, the factor that makes room for its value: 10 for a digit
/// (one decimal digit), 100 for a capital (two); any value for other
/// bytes, which [`MOD97_VALUE`] refuses.
static MOD97_SCALE: [u8; 256] = {
    let mut t = [100u8; 256];
    let mut b = 0;
    while b < 10 {
        t[b'0' as usize + b] = 10;
        b += 1;
    }
    t
};

/// One byte of the mod 97-10 remainder: `acc` times the byte's factor
/// plus its value, and the byte's [`MOD97_INVALID`] bit. Two table loads
/// rather than a branch on digit or capital, since the two mix in no
/// predictable way.
#[inline(always)]
fn mod97_step(acc: u64, b: u8) -> (u64, u8) {
    let value = MOD97_VALUE[usize::from(b)];
    (
        acc * u64::from(MOD97_SCALE[usize::from(b)]) + u64::from(value),
        value & MOD97_INVALID,
    )
}

/// [`iban_end`] by the definition: the one possible end, then the shape,
/// the boundary and the validator on the candidate. The reference of the
/// property test.
pub fn iban_end_naive(text: &[u8], s: usize) -> Option<usize> {
    let b = Builtin::Iban;
    if s + 4 >= text.len() || !b.left_ok(text, s) {
        return None;
    }
    let length = validate::iban_length(&text[s..s + 2])?;
    let after_check = length - 4;
    let e = if text[s + 4] == b' ' {
        s + length + after_check.div_ceil(4)
    } else {
        s + length
    };
    (e <= text.len() && b.shape(&text[s..e]) && b.right_ok(text, e) && b.validate(text, s, e))
        .then_some(e)
}

/// Positions of `:` in a text, left to right, from the same 64-byte colon
/// masks the IPv6 search reads (a colon per time of day makes a
/// general-purpose `memchr` call per match cost more than the search
/// itself). The scan reads the masks directly; this iterator is how the
/// property tests check them against a byte-by-byte walk.
#[derive(Debug, Clone)]
pub struct Colons<'a> {
    text: &'a [u8],
    at: usize,
    left: u64,
    cpu: Cpu,
}

impl<'a> Colons<'a> {
    /// The colons of `text`, found with AVX2 when `cpu` has it (so that
    /// the property tests can run both ways).
    pub fn with_cpu(text: &'a [u8], cpu: Cpu) -> Self {
        Colons {
            text,
            at: 0,
            left: colon_mask_using(text, 0, cpu),
            cpu,
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
            self.left = colon_mask_using(self.text, self.at, self.cpu);
        }
        let bit = self.left.trailing_zeros();
        self.left &= self.left - 1;
        Some(self.at + bit as usize)
    }
}

/// [`colon_mask`] with AVX2 when `cpu` has it.
fn colon_mask_using(text: &[u8], at: usize, cpu: Cpu) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if cpu.avx2() {
        // SAFETY: a `Cpu` reports AVX2 only when it was detected.
        return unsafe { colon_mask_avx2(text, at) };
    }
    let _ = cpu;
    colon_mask(text, at, colon_bits)
}

/// [`colon_mask`] compiled with AVX2.
///
/// # Safety
///
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn colon_mask_avx2(text: &[u8], at: usize) -> u64 {
    // SAFETY: AVX2 is enabled in this function (the caller detected it).
    colon_mask(text, at, |b| unsafe { colon_bits_avx2(b) })
}

/// One bit per `:` in the block of `text` at `at` (zero past the end),
/// from `bits`, which gives the colon bits of 64 bytes.
#[inline(always)]
fn colon_mask(text: &[u8], at: usize, bits: impl Fn(&[u8; BLOCK_BYTES]) -> u64) -> u64 {
    let n = text.len();
    if at >= n {
        return 0;
    }
    if let Some(last) = n.checked_sub(BLOCK_BYTES) {
        // The block's 64 bytes, or near the end the last 64 bytes of the
        // text shifted (as `numeric::classify_text` does): the place of
        // the window is a select, not a branch on the block's place. `at`
        // is below `n`, so the shift is below 64.
        let from = at.min(last);
        if let Ok(window) = <&[u8; BLOCK_BYTES]>::try_from(&text[from..from + BLOCK_BYTES]) {
            return bits(window) >> (at - from);
        }
    }
    let mut block = [0u8; BLOCK_BYTES];
    let tail = &text[at..];
    block[..tail.len()].copy_from_slice(tail);
    bits(&block)
}

/// The colon bits of 64 bytes with AVX2: two compares of 32 bytes.
///
/// # Safety
///
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn colon_bits_avx2(bytes: &[u8; BLOCK_BYTES]) -> u64 {
    use std::arch::x86_64::{
        __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_set1_epi8,
    };
    // SAFETY: both unaligned loads read 32 bytes inside the 64 of `bytes`.
    unsafe {
        let colon = _mm256_set1_epi8(b':' as i8);
        let low = _mm256_loadu_si256(bytes.as_ptr().cast::<__m256i>());
        let high = _mm256_loadu_si256(bytes.as_ptr().add(32).cast::<__m256i>());
        let low = _mm256_movemask_epi8(_mm256_cmpeq_epi8(low, colon)) as u32;
        let high = _mm256_movemask_epi8(_mm256_cmpeq_epi8(high, colon)) as u32;
        u64::from(low) | (u64::from(high) << 32)
    }
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn colon_bits(bytes: &[u8; BLOCK_BYTES]) -> u64 {
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
fn colon_bits(bytes: &[u8; BLOCK_BYTES]) -> u64 {
    bytes
        .iter()
        .enumerate()
        .fold(0u64, |m, (i, &b)| m | (u64::from(b == b':') << i))
}

/// Bits of the colon window that [`scan_ipv6`] checks from the first
/// colon of a run: an IPv6 candidate is at most 45 bytes long and starts
/// at or before that colon, so all of its colons lie in the 45 bytes from
/// it.
const IPV6_WINDOW: u64 = (1 << 45) - 1;

/// Most 64-byte blocks whose colon masks [`scan_ipv6`] keeps on the
/// stack (rows are usually one to three blocks): for those texts the
/// colons of the whole text are counted first, and a text without `::` or
/// six colons is refused at once.
const IPV6_CACHED_BLOCKS: usize = 8;

/// Whether colon masks (one per 64-byte block, in order) hold `::` or at
/// least six colons: without either, no IPv6 candidate can validate.
#[inline(always)]
fn colons_may_hold_ipv6(masks: &[u64]) -> bool {
    let mut colons = 0u32;
    let mut carry = 0u64;
    for &mask in masks {
        // `::` within the block, or across its first byte.
        if mask & ((mask << 1) | carry) != 0 {
            return true;
        }
        carry = mask >> 63;
        colons += mask.count_ones();
    }
    colons >= 6
}

/// IPv6 candidates: every run of hex digits, `:` and `.` around a colon
/// is tried from its start (a candidate cannot start inside such a run:
/// its left boundary excludes all of those bytes).
///
/// The validator wants `::` or at least six colons (six groups and an
/// embedded IPv4 address). Row-sized texts without either are refused by
/// a count over their colon masks. Then, for each run, every colon of a
/// candidate lies in the 45 bytes from the first colon of the run, so the
/// colon bitmask of those bytes decides, with a few shifts and a bit count,
/// whether the run is worth walking at all, and the same test on the
/// colons of the run decides whether its ends are worth reading: times of
/// day and `host:port` are refused without reading their bytes.
///
/// `told` says that the caller already knows the text to hold `::` or six
/// colons (the anchor search counts them), so the count is not repeated.
fn scan_ipv6(text: &[u8], cpu: Cpu, told: bool, out: &mut Vec<Finding>) {
    #[cfg(target_arch = "x86_64")]
    if cpu.avx2() {
        // SAFETY: a `Cpu` reports AVX2, `bmi1` and `popcnt` only when they
        // were detected.
        unsafe { scan_ipv6_avx2(text, told, out) };
        return;
    }
    let _ = cpu;
    scan_ipv6_with(text, told, out, colon_bits);
}

/// [`scan_ipv6`] compiled with AVX2 (colon masks 32 bytes per compare),
/// `bmi1` and `popcnt` (the colon counts in one instruction each).
///
/// # Safety
///
/// The CPU must support AVX2, `bmi1` and `popcnt`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,bmi1,popcnt")]
unsafe fn scan_ipv6_avx2(text: &[u8], told: bool, out: &mut Vec<Finding>) {
    // SAFETY: AVX2 is enabled in this function (the caller detected it).
    scan_ipv6_with(text, told, out, |b| unsafe { colon_bits_avx2(b) });
}

#[inline(always)]
fn scan_ipv6_with(
    text: &[u8],
    told: bool,
    out: &mut Vec<Finding>,
    bits: impl Fn(&[u8; BLOCK_BYTES]) -> u64 + Copy,
) {
    let blocks = text.len().div_ceil(BLOCK_BYTES);
    if blocks <= IPV6_CACHED_BLOCKS {
        // One more, zero, mask: the block after the last one.
        let mut masks = [0u64; IPV6_CACHED_BLOCKS + 1];
        for (k, m) in masks[..blocks].iter_mut().enumerate() {
            *m = colon_mask(text, k * BLOCK_BYTES, bits);
        }
        if told || colons_may_hold_ipv6(&masks[..blocks]) {
            ipv6_runs(text, blocks, |k| masks[k], out);
        }
    } else {
        ipv6_runs(
            text,
            blocks,
            |k| colon_mask(text, k * BLOCK_BYTES, bits),
            out,
        );
    }
}

/// Whether a colon bitmask (bit 0 at the first colon of a run) holds six
/// colons or `::`.
#[inline(always)]
fn six_colons_or_double(colons: u64) -> bool {
    colons.count_ones() >= 6 || colons & (colons >> 1) != 0
}

/// The run walks of [`scan_ipv6`] over `blocks` blocks whose colon masks
/// `mask_of` gives (zero past the last block).
#[inline(always)]
fn ipv6_runs(text: &[u8], blocks: usize, mask_of: impl Fn(usize) -> u64, out: &mut Vec<Finding>) {
    let b = Builtin::Ipv6;
    let mut current = mask_of(0);
    // End of the last run walked: its later colons are skipped.
    let mut done = 0usize;
    for k in 0..blocks {
        let following = mask_of(k + 1);
        let at = k * BLOCK_BYTES;
        // The colons of a run walked already are dropped from the mask
        // rather than tested one by one (whether a colon is one of them
        // depends on the text).
        let mut mask = current & !bits_below(done.saturating_sub(at).min(BLOCK_BYTES) as u32);
        while mask != 0 {
            let bit = mask.trailing_zeros();
            mask &= mask - 1;
            let p = at + bit as usize;
            let window = if bit == 0 {
                current
            } else {
                (current >> bit) | (following << (64 - bit))
            } & IPV6_WINDOW;
            if !six_colons_or_double(window) {
                // If `p` is the first colon of its run, no candidate of the
                // run can validate; if not, the run's first colon was
                // refused the same way already.
                continue;
            }
            let run = ipv6_run(text, p);
            done = run.end;
            // `run.end` is past `p`, so the cut is 1 to 64 bits.
            mask &= !bits_below((done - at).min(BLOCK_BYTES) as u32);
            // The same test on the colons of the run only (those after it
            // belong to no candidate of this run).
            let reach = run.end - p;
            let in_run = if reach < 64 {
                window & ((1u64 << reach) - 1)
            } else {
                window
            };
            if !six_colons_or_double(in_run) || !b.left_ok(text, run.start) {
                continue;
            }
            if let Some(e) = ipv6_end(text, run.start, run.end, run.dotted) {
                out.push(Finding {
                    start: run.start,
                    end: e,
                    detector: b as DetectorId,
                });
                if out.len() >= CANDIDATES_MAX {
                    return;
                }
            }
        }
        current = following;
    }
}

/// A maximal run of hex digits, `:` and `.` holding a colon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ipv6Run {
    start: usize,
    end: usize,
    /// The run holds a `.`.
    dotted: bool,
}

/// The run around the colon at `p`.
#[inline]
fn ipv6_run(text: &[u8], p: usize) -> Ipv6Run {
    let mut start = p;
    let mut dotted = false;
    while start > 0 && is(text[start - 1], class::IPV6) {
        start -= 1;
        dotted |= text[start] == b'.';
    }
    let (end, dotted_after) = ipv6_run_end(text, p + 1);
    Ipv6Run {
        start,
        end,
        dotted: dotted || dotted_after,
    }
}

/// The end of the run of hex digits, `:` and `.` from `from`, and whether
/// it holds a `.`: 16 bytes per step (SSE2, part of every x86-64 CPU),
/// since the walk over an address is most of the cost of finding it; one
/// byte at a time near the end of the text and on other CPUs.
/// [`ipv6_run_end_naive`] is the definition (property-tested).
#[inline]
pub fn ipv6_run_end(text: &[u8], from: usize) -> (usize, bool) {
    let mut end = from;
    let mut dotted = false;
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_and_si128, _mm_cmpeq_epi8, _mm_cmpgt_epi8, _mm_loadu_si128,
            _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        };
        while end + 16 <= text.len() {
            // SAFETY: SSE2 is part of the x86-64 baseline, and the load
            // reads the 16 bytes from `end`, inside `text`.
            let (run, dots) = unsafe {
                let v = _mm_loadu_si128(text.as_ptr().add(end).cast::<__m128i>());
                // Signed compares: bytes of 0x80 and above are negative and
                // fall in no range.
                let within = |x: __m128i, lo: u8, hi: u8| {
                    _mm_and_si128(
                        _mm_cmpgt_epi8(x, _mm_set1_epi8(lo as i8 - 1)),
                        _mm_cmpgt_epi8(_mm_set1_epi8(hi as i8 + 1), x),
                    )
                };
                let dot = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'.' as i8));
                // `0`-`9` and `:` are adjacent (0x30 to 0x3a); `| 0x20`
                // folds `A`-`F` onto `a`-`f` and moves no other byte there.
                let lower = _mm_or_si128(v, _mm_set1_epi8(0x20));
                let class = _mm_or_si128(
                    _mm_or_si128(within(v, b'0', b':'), within(lower, b'a', b'f')),
                    dot,
                );
                (
                    _mm_movemask_epi8(class) as u32,
                    _mm_movemask_epi8(dot) as u32,
                )
            };
            if run != 0xffff {
                let len = (!run).trailing_zeros();
                dotted |= dots & ((1u32 << len) - 1) != 0;
                return (end + len as usize, dotted);
            }
            dotted |= dots != 0;
            end += 16;
        }
    }
    while end < text.len() && is(text[end], class::IPV6) {
        dotted |= text[end] == b'.';
        end += 1;
    }
    (end, dotted)
}

/// [`ipv6_run_end`] byte by byte: the definition.
pub fn ipv6_run_end_naive(text: &[u8], from: usize) -> (usize, bool) {
    let mut end = from;
    while end < text.len() && (text[end].is_ascii_hexdigit() || matches!(text[end], b':' | b'.')) {
        end += 1;
    }
    (end, text[from.min(end)..end].contains(&b'.'))
}

/// The longest IPv6 candidate from `s`, the start of a run of hex digits,
/// `:` and `.` that ends at `run_end` (`dotted` when it holds a `.`).
///
/// Inside the run the right boundary excludes every byte but a `.` that
/// is not followed by a letter or digit, so the possible ends are the end
/// of the run and those dots, and without a dot only the end of the run:
/// the grammar is read once per possible end, longest first, instead of
/// every end being tried. The shape holds by construction (every byte is
/// in the run, and the length is bounded here).
///
/// Inlined into the IPv6 search, so that the bit counts of the grammar
/// compile to one instruction each there.
#[inline(always)]
pub fn ipv6_end(text: &[u8], s: usize, run_end: usize, dotted: bool) -> Option<usize> {
    let (min_len, max_len) = Builtin::Ipv6.len_range();
    // Every candidate lies in the 45 bytes from `s`: their colons and dots
    // are read once, and each end is then judged on those bits.
    let (colons, dots) = colon_dot_bits(text, s);
    let hi = run_end.min(s + max_len);
    if hi == run_end && hi >= s + min_len && ipv6_accepts(text, s, hi, colons, dots) {
        return Some(hi);
    }
    if !dotted {
        return None;
    }
    // The dots inside the run within reach (the end of the run was tried
    // above, and the bits stop at 45 bytes, well inside the 64 read), from
    // the last one down.
    let reach = (hi - s) as u32;
    let within = if hi == run_end {
        bits_below(reach)
    } else {
        bits_below(reach + 1)
    };
    let mut ends = dots & within & !bits_below(min_len as u32);
    while ends != 0 {
        let p = 63 - ends.leading_zeros();
        ends &= !(1u64 << p);
        let e = s + p as usize;
        if ipv6_accepts(text, s, e, colons, dots) {
            return Some(e);
        }
    }
    None
}

/// Whether `text[s..e]`, inside a run of hex digits, `:` and `.`, is an
/// IPv6 candidate that sits on its right boundary and validates (`colons`
/// and `dots`: [`colon_dot_bits`] from `s`).
#[inline(always)]
fn ipv6_accepts(text: &[u8], s: usize, e: usize, colons: u64, dots: u64) -> bool {
    // An address ends in a hex digit or a colon, never in a dot.
    text[e - 1] != b'.'
        && Builtin::Ipv6.right_ok(text, e)
        && validate::ipv6_in_run(&text[s..e], colons, dots)
}

/// The colons and the dots of the 64 bytes from `s` as bits (bit 0 is
/// `text[s]`; zero past the end of the text): four 16-byte compares with
/// SSE2, part of every x86-64 CPU, and a byte at a time elsewhere.
/// [`colon_dot_bits_naive`] is the definition (property-tested).
#[inline]
pub fn colon_dot_bits(text: &[u8], s: usize) -> (u64, u64) {
    #[cfg(target_arch = "x86_64")]
    {
        let n = text.len();
        if s >= n {
            return (0, 0);
        }
        if let Some(window) = text.get(s..s + BLOCK_BYTES) {
            return colon_dot_bits_sse2(window);
        }
        if n >= BLOCK_BYTES {
            // The last 64 bytes, shifted so that bit 0 is `s` (the shift is
            // 1 to 63: `s` is past `n - 64`), which leaves zeros past the
            // end of the text.
            let last = n - BLOCK_BYTES;
            let (colons, dots) = colon_dot_bits_sse2(&text[last..]);
            let shift = s - last;
            return (colons >> shift, dots >> shift);
        }
        // A text shorter than 64 bytes (a column value holding just an
        // address): its bytes from `s`, padded with zeros.
        let mut padded = [0u8; BLOCK_BYTES];
        let rest = &text[s..];
        padded[..rest.len()].copy_from_slice(rest);
        colon_dot_bits_sse2(&padded)
    }
    #[cfg(not(target_arch = "x86_64"))]
    colon_dot_bits_naive(text, s)
}

/// The 64-byte compares of [`colon_dot_bits`] (`window` holds at least 64
/// bytes; the first 64 are read).
#[cfg(target_arch = "x86_64")]
#[inline]
fn colon_dot_bits_sse2(window: &[u8]) -> (u64, u64) {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
    };
    assert!(window.len() >= BLOCK_BYTES);
    let (mut colons, mut dots) = (0u64, 0u64);
    for lane in 0..BLOCK_BYTES / 16 {
        // SAFETY: SSE2 is part of the x86-64 baseline, and the load reads
        // the 16 bytes from `16 * lane`, inside the 64 that `window` holds
        // (asserted above).
        let (colon, dot) = unsafe {
            let v = _mm_loadu_si128(window.as_ptr().add(16 * lane).cast::<__m128i>());
            (
                _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b':' as i8))) as u16,
                _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'.' as i8))) as u16,
            )
        };
        colons |= u64::from(colon) << (16 * lane);
        dots |= u64::from(dot) << (16 * lane);
    }
    (colons, dots)
}

/// [`colon_dot_bits`] byte by byte: the definition.
pub fn colon_dot_bits_naive(text: &[u8], s: usize) -> (u64, u64) {
    let window = &text[s.min(text.len())..text.len().min(s + BLOCK_BYTES)];
    window
        .iter()
        .enumerate()
        .fold((0u64, 0u64), |(colons, dots), (i, &b)| {
            (
                colons | (u64::from(b == b':') << i),
                dots | (u64::from(b == b'.') << i),
            )
        })
}

/// [`ipv6_end`] by the definition: every end from the longest down that
/// sits on the boundary, has the shape and validates. The reference of
/// the property test.
pub fn ipv6_end_naive(text: &[u8], s: usize, run_end: usize) -> Option<usize> {
    let mut out = Vec::new();
    let max_e = run_end.min(s + Builtin::Ipv6.len_range().1);
    confirm_longest(text, Builtin::Ipv6, 0, s, max_e, &mut out);
    out.first().map(|f| f.end)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The nibble tables of the vector e-mail walk give every byte the
    /// classes that the byte-class table gives it.
    #[test]
    fn email_nibble_tables_match_byte_classes() {
        for b in 0..=255u8 {
            let bits = email_nibble::of(b);
            let has = |class: u8| bits & class != 0;
            assert_eq!(
                has(email_nibble::LOCAL),
                is(b, class::EMAIL_LOCAL),
                "{b:#x}"
            );
            assert_eq!(has(email_nibble::LABEL), is(b, class::LABEL), "{b:#x}");
            assert_eq!(has(email_nibble::ALPHA), is(b, class::ALPHA), "{b:#x}");
            assert_eq!(has(email_nibble::DOT), b == b'.', "{b:#x}");
        }
    }
}
