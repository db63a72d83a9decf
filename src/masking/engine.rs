//! The fast scanner: a Hyperscan anchor pass, a numeric-cluster walk, and
//! confirmation of every anchor in a small window.
//!
//! # Why this shape
//!
//! Hyperscan is fastest when it only has to find literals and it does not
//! track where matches start. Given full detector regexes with
//! start-of-match reporting it ran at 0.09 GB/s on PII-dense text here
//! (stack facts), because the digit-led patterns (cards, phones, SSNs)
//! turn into large NFAs that fire at every digit. So the database only
//! holds anchors: the literal prefixes of API tokens, `@` for e-mail,
//! `-----BEGIN `, the AWS secret keyword, IBAN country codes followed by two
//! digits and `:hex:` for IPv6. From an anchor the start is known (a fixed
//! distance back, or the start of a run of allowed bytes) and the end is
//! found by walking the allowed bytes forward, then each possible end is
//! checked, longest first, with the detector's hand-written recogniser and
//! validator.
//!
//! Numbers are handled without Hyperscan: one pass finds runs of digits
//! and `[ ().+-]` (every card, SSN, phone number and IPv4 address lies
//! inside such a run), and only runs long enough to hold one are examined.
//!
//! # Completeness
//!
//! For every detector, each candidate of the definition in
//! [`super::detectors`] contains an anchor from which the engine reaches
//! it: token candidates begin with their literal, e-mail candidates contain
//! `@` and start where the run of local-part bytes before it starts, IPv6
//! candidates contain `:hex{0,4}:` and start where their run of hex, `:`
//! and `.` starts, and so on. The property test in
//! `tests/masking_equivalence.rs` checks the consequence: identical
//! findings to the reference scanner.

use std::sync::Arc;

use hyperscan::prelude::*;

use super::detectors::{is_email_local, is_token, Builtin};
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
    anchors: Vec<(DetectorId, Anchor)>,
    database: Option<BlockDatabase>,
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
                DetectorKind::Builtin(b) => match b {
                    Builtin::PemPrivateKey => add("-----BEGIN ", none, id, Anchor::Pem)?,
                    Builtin::Jwt => add("eyJ", none, id, Anchor::Prefix(*b, 3))?,
                    Builtin::AwsSecretKey => add(
                        "secret_?(?:access_?)?key",
                        CompileFlags::CASELESS,
                        id,
                        Anchor::AwsSecretKeyword,
                    )?,
                    Builtin::AwsAccessKeyId => {
                        add("AKIA", none, id, Anchor::Prefix(*b, 4))?;
                        add("ASIA", none, id, Anchor::Prefix(*b, 4))?;
                    }
                    Builtin::GithubToken => {
                        add("gh[opsur]_", none, id, Anchor::Prefix(*b, 4))?;
                        add("github_pat_", none, id, Anchor::Prefix(*b, 11))?;
                    }
                    Builtin::SlackToken => add("xox[baprs]-", none, id, Anchor::Prefix(*b, 5))?,
                    Builtin::StripeKey => add("[sr]k_live_", none, id, Anchor::Prefix(*b, 8))?,
                    Builtin::GoogleApiKey => add("AIza", none, id, Anchor::Prefix(*b, 4))?,
                    Builtin::Email => add("@", none, id, Anchor::Email)?,
                    // Found by the engine's own walks: numbers and IBANs
                    // from runs of digits, IPv6 from colons (as Hyperscan
                    // anchors, `[A-Z]{2}[0-9]{2}` and `:[0-9A-Fa-f]{0,4}:`
                    // each cost about 1 ns per byte; the walks cost a
                    // fraction of that).
                    Builtin::Iban
                    | Builtin::Ipv6
                    | Builtin::Card
                    | Builtin::Ssn
                    | Builtin::Phone
                    | Builtin::Ipv4 => {}
                },
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
        Ok(Engine {
            detectors,
            anchors,
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
            starts: Vec::with_capacity(64),
            ends: Vec::with_capacity(64),
            digits_before: Vec::with_capacity(64),
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
    starts: Vec<usize>,
    ends: Vec<usize>,
    digits_before: Vec<u16>,
}

impl std::fmt::Debug for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanner")
            .field("engine", &self.engine)
            .finish()
    }
}

/// Bytes of the runs the numeric detectors live in.
const fn numeric_class() -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = b'0';
    while b <= b'9' {
        t[b as usize] = true;
        b += 1;
    }
    t[b' ' as usize] = true;
    t[b'(' as usize] = true;
    t[b')' as usize] = true;
    t[b'.' as usize] = true;
    t[b'+' as usize] = true;
    t[b'-' as usize] = true;
    t
}
static NUMERIC: [bool; 256] = numeric_class();

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

/// Index of the first ASCII digit at or after `from`, eight bytes at a time.
#[inline]
fn next_digit(text: &[u8], from: usize) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut i = from;
    while i + 8 <= text.len() {
        let mut w = [0u8; 8];
        w.copy_from_slice(&text[i..i + 8]);
        let x = u64::from_le_bytes(w);
        // A byte is a digit when (b ^ 0x30) < 10; for ASCII bytes that is
        // "(b ^ 0x30) + 0x76 has no bit 7 and b has no bit 7".
        let y = x ^ (0x30 * LO);
        let t = (y & !HI).wrapping_add(0x76 * LO);
        let digits = !(t | y | x) & HI;
        if digits != 0 {
            return Some(i + (digits.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    text[i..].iter().position(u8::is_ascii_digit).map(|p| i + p)
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
        if !text.is_empty() {
            let numeric = Builtin::ALL
                .iter()
                .filter(|b| b.is_numeric() || **b == Builtin::Iban)
                .any(|&b| set.contains(b as DetectorId));
            if complete && numeric {
                complete = self.scan_numeric(text, set);
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

    /// Walks the runs of digits and `[ ().+-]` and checks the numeric
    /// detectors on every start/end pair that sits on boundaries.
    fn scan_numeric(&mut self, text: &[u8], set: DetectorSet) -> bool {
        let numeric: [(Builtin, bool); 4] = [
            (Builtin::Card, set.contains(Builtin::Card as DetectorId)),
            (Builtin::Ssn, set.contains(Builtin::Ssn as DetectorId)),
            (Builtin::Phone, set.contains(Builtin::Phone as DetectorId)),
            (Builtin::Ipv4, set.contains(Builtin::Ipv4 as DetectorId)),
        ];
        let any_numeric = numeric.iter().any(|&(_, on)| on);
        let iban = set.contains(Builtin::Iban as DetectorId);
        let n = text.len();
        let mut i = 0usize;
        while let Some(d) = next_digit(text, i) {
            let mut cs = d;
            while cs > i && NUMERIC[usize::from(text[cs - 1])] {
                cs -= 1;
            }
            let mut ce = d + 1;
            let mut digits = 1usize;
            let mut dots = 0usize;
            while ce < n && NUMERIC[usize::from(text[ce])] {
                digits += usize::from(text[ce].is_ascii_digit());
                dots += usize::from(text[ce] == b'.');
                ce += 1;
            }
            i = ce;
            // An IBAN's check digits start a run of digits right after the
            // two capitals of its country code.
            if iban
                && cs == d
                && d >= 2
                && text[d - 2].is_ascii_uppercase()
                && text[d - 1].is_ascii_uppercase()
                && validate::iban_length(&text[d - 2..d]).is_some()
            {
                scan_iban(text, d - 2, &mut self.candidates);
            }
            if !any_numeric {
                continue;
            }
            // The shortest numeric candidate is an IPv4 address: seven
            // bytes, four digits.
            if ce - cs < 7 || digits < 4 {
                continue;
            }
            // Cards, SSNs and phone numbers have at least eight digits; with
            // fewer, only an IPv4 address (three dots) can be inside.
            let want_ipv4_only = digits < 8;
            if want_ipv4_only && (dots < 3 || !numeric[3].1) {
                continue;
            }
            // Digits before each position of the cluster, so that every
            // detector's digit count is checked before its shape.
            self.digits_before.clear();
            let mut acc = 0u16;
            for &b in &text[cs..ce] {
                self.digits_before.push(acc);
                acc += u16::from(b.is_ascii_digit());
            }
            self.digits_before.push(acc);
            self.starts.clear();
            self.ends.clear();
            for p in cs..ce {
                let b = text[p];
                if (b.is_ascii_digit() || b == b'+' || b == b'(') && Builtin::Card.left_ok(text, p)
                {
                    self.starts.push(p);
                }
                if b.is_ascii_digit() && Builtin::Card.right_ok(text, p + 1) {
                    self.ends.push(p + 1);
                }
            }
            for &s in &self.starts {
                let first_digit = text[s].is_ascii_digit();
                for &(b, enabled) in &numeric {
                    if !enabled
                        || (!first_digit && b != Builtin::Phone)
                        || (want_ipv4_only && b != Builtin::Ipv4)
                    {
                        continue;
                    }
                    let (lo_d, hi_d) = match b {
                        Builtin::Card => (13, 19),
                        Builtin::Ssn => (9, 9),
                        Builtin::Phone => (8, 15),
                        _ => (4, 12),
                    };
                    let (min_len, max_len) = b.len_range();
                    let hi = self.ends.partition_point(|&e| e <= s + max_len);
                    for &e in self.ends[..hi].iter().rev() {
                        if e < s + min_len {
                            break;
                        }
                        let nd =
                            usize::from(self.digits_before[e - cs] - self.digits_before[s - cs]);
                        if nd < lo_d || nd > hi_d {
                            continue;
                        }
                        if b.shape(&text[s..e]) && b.validate(text, s, e) {
                            self.candidates.push(Finding {
                                start: s,
                                end: e,
                                detector: b as DetectorId,
                            });
                            break;
                        }
                    }
                }
                if self.candidates.len() >= CANDIDATES_MAX {
                    return false;
                }
            }
        }
        true
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
        let engine = Arc::clone(&self.engine);
        let scan = self.scan(value, set);
        if !scan.complete {
            super::style::fill(value);
            summary.record_whole(column);
            return 1;
        }
        for f in scan.findings {
            let style = engine.detectors[usize::from(f.detector)]
                .style
                .same_length();
            super::style::mask_span(value, f.start, f.end, style);
            summary.record(f.detector, column);
        }
        scan.findings.len()
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
            let mut e = to;
            if b == Builtin::Jwt {
                while e < limit && (is_token(text[e]) || text[e] == b'.') {
                    e += 1;
                }
            } else {
                while e < limit && is_token(text[e]) {
                    e += 1;
                }
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

/// The IBAN candidate starting at `s` (country code), if any.
fn scan_iban(text: &[u8], s: usize, out: &mut Vec<Finding>) {
    let b = Builtin::Iban;
    if !b.left_ok(text, s) {
        return;
    }
    let limit = text.len().min(s + b.len_range().1);
    let mut e = s + 2;
    while e < limit && (text[e].is_ascii_uppercase() || text[e].is_ascii_digit() || text[e] == b' ')
    {
        e += 1;
    }
    confirm_longest(text, b, b as DetectorId, s, e, out);
}

/// IPv6 candidates: every run of hex digits, `:` and `.` that holds at
/// least two colons is tried from its start (a candidate cannot start
/// inside such a run: its left boundary excludes all of those bytes).
fn scan_ipv6(text: &[u8], out: &mut Vec<Finding>) {
    let b = Builtin::Ipv6;
    let is_v6 = |c: u8| c.is_ascii_hexdigit() || c == b':' || c == b'.';
    let max_len = b.len_range().1;
    let mut done = 0usize;
    for p in memchr::memchr_iter(b':', text) {
        if p < done {
            continue;
        }
        let mut s = p;
        while s > 0 && is_v6(text[s - 1]) {
            s -= 1;
        }
        let mut e = p + 1;
        let mut colons = 1;
        while e < text.len() && is_v6(text[e]) {
            colons += usize::from(text[e] == b':');
            e += 1;
        }
        done = e;
        if colons >= 2 && b.left_ok(text, s) {
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
