//! Masking styles and the masking summary.
//!
//! Same-length styles rewrite bytes in place: message framing stays valid
//! and nothing is copied. They only ever turn ASCII letters and digits
//! into `*` (punctuation, whitespace and escape sequences survive), so the
//! result stays valid UTF-8, a COPY row keeps its tabs and newlines, a CSV
//! row its commas and quotes, and a JSON document its structure.
//! [`Style::Redact`] replaces the whole span by a label and changes the
//! length; only the message layer can apply it, by re-framing.

use super::{DetectorId, DETECTORS_MAX};

/// How one detector's findings are masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Style {
    /// Letters and digits become `*`; punctuation stays
    /// (`jane.doe@example.com` becomes `****.***@*******.***`).
    #[default]
    Stars,
    /// Like [`Style::Stars`] but the last four digits stay
    /// (`4111-1111-1111-1111` becomes `****-****-****-1111`).
    KeepLast4,
    /// The span is replaced by the detector's label (`[EMAIL]`); the value
    /// changes length and the message is re-framed.
    Redact,
}

impl Style {
    /// The style to use where the length must not change.
    pub fn same_length(self) -> Style {
        match self {
            Style::Redact => Style::Stars,
            s => s,
        }
    }

    pub fn from_name(name: &str) -> Option<Style> {
        match name {
            "stars" => Some(Style::Stars),
            "keep_last4" => Some(Style::KeepLast4),
            "redact" => Some(Style::Redact),
            _ => None,
        }
    }
}

/// Masks `value[start..end]` in place with a same-length style.
///
/// A backslash and the byte after it are kept, so JSON and COPY escape
/// sequences (`\n`, `\t`, `\"`) stay escape sequences; the four hex digits
/// of a JSON `\uXXXX` escape become `002a` (an escaped `*`), which keeps
/// the document valid without revealing the character.
pub fn mask_span(value: &mut [u8], start: usize, end: usize, style: Style) {
    let end = end.min(value.len());
    if start >= end {
        return;
    }
    // Without a backslash in the span (the usual case) and without digits
    // to keep, masking is a per-byte select the compiler turns into SIMD:
    // a long token or key used to cost a branch per byte here.
    if style != Style::KeepLast4 && memchr::memchr(b'\\', &value[start..end]).is_none() {
        for b in &mut value[start..end] {
            let lower = *b | 0x20;
            let alphanumeric = lower.wrapping_sub(b'a') < 26 || b.wrapping_sub(b'0') < 10;
            *b = if alphanumeric { b'*' } else { *b };
        }
        return;
    }
    mask_span_naive(value, start, end, style);
}

/// [`mask_span`] one byte at a time, escapes included: the definition the
/// fast path is property-tested against, and the path for spans holding a
/// backslash or keeping their last digits.
pub fn mask_span_naive(value: &mut [u8], start: usize, end: usize, style: Style) {
    let end = end.min(value.len());
    if start >= end {
        return;
    }
    let mut keep_digits = if style == Style::KeepLast4 { 4usize } else { 0 };
    // With KeepLast4, walk backwards so that the last digits are the kept
    // ones; escapes do not occur in card numbers, so the backward walk does
    // not need to recognise them.
    if keep_digits > 0 {
        for b in value[start..end].iter_mut().rev() {
            if b.is_ascii_digit() && keep_digits > 0 {
                keep_digits -= 1;
            } else if b.is_ascii_alphanumeric() {
                *b = b'*';
            }
        }
        return;
    }
    let mut i = start;
    while i < end {
        let b = value[i];
        if b == b'\\' {
            if value.get(i + 1) == Some(&b'u') {
                let hex_end = (i + 6).min(value.len());
                if value[i + 2..hex_end].iter().all(u8::is_ascii_hexdigit) && hex_end == i + 6 {
                    value[i + 2..i + 6].copy_from_slice(b"002a");
                }
                i += 6;
            } else {
                i += 2;
            }
            continue;
        }
        if b.is_ascii_alphanumeric() {
            value[i] = b'*';
        }
        i += 1;
    }
}

/// Masks a whole value: every letter and digit becomes `*`.
pub fn fill(value: &mut [u8]) {
    let n = value.len();
    mask_span(value, 0, n, Style::Stars);
}

/// Appends `value` to `out` with every finding replaced by its label.
///
/// `style` gives each detector's style: [`Style::Redact`] spans become
/// `label(detector)`, the others are masked in place in the copy.
pub fn redact_into<'a>(
    value: &[u8],
    findings: &[super::Finding],
    style: impl Fn(DetectorId) -> Style,
    label: impl Fn(DetectorId) -> &'a [u8],
    out: &mut Vec<u8>,
) {
    let mut at = 0;
    for f in findings {
        out.extend_from_slice(&value[at..f.start]);
        match style(f.detector) {
            Style::Redact => out.extend_from_slice(label(f.detector)),
            other => {
                let from = out.len();
                out.extend_from_slice(&value[f.start..f.end]);
                let to = out.len();
                mask_span(out, from, to, other);
            }
        }
        at = f.end;
    }
    out.extend_from_slice(&value[at..]);
}

/// Most (column, detector) pairs a summary keeps apart; further pairs are
/// only counted in `columns_dropped` (the per-detector totals stay exact).
pub const SUMMARY_COLUMNS_MAX: usize = 64;

/// The detector id under which whole-value masks are counted per column.
pub const WHOLE_VALUE: DetectorId = DetectorId::MAX;

/// What was masked, never what the values were: counts per detector and
/// per (column, detector). Fixed-size, so recording allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskSummary {
    /// Findings masked, by detector id.
    pub by_detector: [u64; DETECTORS_MAX],
    /// Values masked whole (column rules, or a bound reached in a scan).
    pub whole_values: u64,
    /// Values re-framed because a redaction changed their length.
    pub reframed_messages: u64,
    columns: [(u16, DetectorId, u64); SUMMARY_COLUMNS_MAX],
    columns_len: usize,
    /// Increments that did not fit in the per-column table.
    pub columns_dropped: u64,
}

impl Default for MaskSummary {
    fn default() -> Self {
        MaskSummary {
            by_detector: [0; DETECTORS_MAX],
            whole_values: 0,
            reframed_messages: 0,
            columns: [(0, 0, 0); SUMMARY_COLUMNS_MAX],
            columns_len: 0,
            columns_dropped: 0,
        }
    }
}

impl MaskSummary {
    pub fn clear(&mut self) {
        *self = MaskSummary::default();
    }

    /// Total findings and whole-value masks.
    pub fn total(&self) -> u64 {
        self.by_detector.iter().sum::<u64>() + self.whole_values
    }

    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }

    /// Counts one finding of `detector` in `column` (if any).
    pub fn record(&mut self, detector: DetectorId, column: Option<u16>) {
        if let Some(slot) = self.by_detector.get_mut(usize::from(detector)) {
            *slot += 1;
        }
        if let Some(c) = column {
            self.bump(c, detector, 1);
        }
    }

    /// Counts one value masked whole.
    pub fn record_whole(&mut self, column: Option<u16>) {
        self.whole_values += 1;
        if let Some(c) = column {
            self.bump(c, WHOLE_VALUE, 1);
        }
    }

    fn bump(&mut self, column: u16, detector: DetectorId, n: u64) {
        let used = &mut self.columns[..self.columns_len];
        if let Some(e) = used.iter_mut().find(|e| e.0 == column && e.1 == detector) {
            e.2 += n;
            return;
        }
        if self.columns_len == SUMMARY_COLUMNS_MAX {
            self.columns_dropped += n;
            return;
        }
        self.columns[self.columns_len] = (column, detector, n);
        self.columns_len += 1;
    }

    /// `(column index, detector id or [`WHOLE_VALUE`], count)` entries.
    pub fn columns(&self) -> &[(u16, DetectorId, u64)] {
        &self.columns[..self.columns_len]
    }

    /// Adds `other` into `self` (e.g. per-message summaries into the
    /// session's).
    pub fn merge(&mut self, other: &MaskSummary) {
        for (a, b) in self.by_detector.iter_mut().zip(other.by_detector.iter()) {
            *a += b;
        }
        self.whole_values += other.whole_values;
        self.reframed_messages += other.reframed_messages;
        self.columns_dropped += other.columns_dropped;
        for &(c, d, n) in other.columns() {
            self.bump(c, d, n);
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        /// The select loop masks exactly what the byte-wise walk masks, on
        /// any bytes, spans and styles (escapes take the walk).
        #[test]
        fn mask_span_matches_naive(
            value in proptest::collection::vec(
                proptest::sample::select(b"aZz09@.-_\\u0f\"*\x80\xff ".to_vec()), 0..80),
            start in 0usize..90,
            len in 0usize..90,
            style in proptest::sample::select(vec![super::Style::Stars, super::Style::KeepLast4]),
        ) {
            let mut fast = value.clone();
            let mut naive = value;
            super::mask_span(&mut fast, start, start + len, style);
            super::mask_span_naive(&mut naive, start, start + len, style);
            prop_assert_eq!(fast, naive);
        }
    }

    use super::*;

    #[test]
    fn styles() {
        let mut v = b"mail jane.doe@example.com now".to_vec();
        mask_span(&mut v, 5, 25, Style::Stars);
        assert_eq!(&v, b"mail ****.***@*******.*** now");
        let mut v = b"4111-1111-1111-1111".to_vec();
        mask_span(&mut v, 0, 19, Style::KeepLast4);
        assert_eq!(&v, b"****-****-****-1111");
        let mut v = br"KEY\nabc\u00e9z".to_vec();
        let n = v.len();
        mask_span(&mut v, 0, n, Style::Stars);
        assert_eq!(&v, br"***\n***\u002a*");
    }
}
