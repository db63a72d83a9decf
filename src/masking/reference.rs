//! The naive reference scanner and the `regex` baseline.
//!
//! [`Reference`] is the definition of the findings made executable in the
//! most direct way: for every detector, every start and every end that sit
//! on boundaries, ask the detector's regular expression (anchored at both
//! ends) whether the span matches, then validate; keep the longest span
//! per start and resolve overlaps. It is quadratic and only meant for the
//! property tests on short strings.
//!
//! [`RegexBaseline`] is what a straightforward implementation with the
//! `regex` crate looks like: one unanchored regex per detector run over the
//! whole value with `find_iter`, then the same boundaries, validators and
//! overlap resolution. Its findings can differ from the definition in
//! corner cases (leftmost-first matching does not try every end), which
//! the bench reports; it exists to measure what the engine is compared to.

use regex::bytes::Regex;

use super::detectors::Builtin;
use super::engine::{DetectorDef, DetectorKind};
use super::{resolve, DetectorId, DetectorSet, Finding, CUSTOM_MATCH_BYTES_MAX};

enum Matcher {
    Builtin(Builtin, Regex),
    Custom(super::engine::CustomDetector),
}

/// The reference scanner (see the module documentation).
pub struct Reference {
    matchers: Vec<Matcher>,
}

impl Reference {
    /// The reference for the same detectors as an engine.
    pub fn new(detectors: &[DetectorDef]) -> Self {
        let matchers = detectors
            .iter()
            .map(|d| match &d.kind {
                DetectorKind::Builtin(b) => Matcher::Builtin(
                    *b,
                    Regex::new(&format!("(?-u)^(?:{})$", b.pattern()))
                        .expect("built-in patterns compile"),
                ),
                DetectorKind::Custom(c) => Matcher::Custom(c.clone()),
            })
            .collect();
        Reference { matchers }
    }

    /// Findings of `text` under `set`, sorted and non-overlapping.
    pub fn scan(&self, text: &[u8], set: DetectorSet) -> Vec<Finding> {
        let mut candidates = Vec::new();
        let n = text.len();
        for (i, m) in self.matchers.iter().enumerate() {
            let id = i as DetectorId;
            if !set.contains(id) {
                continue;
            }
            match m {
                Matcher::Builtin(b, re) => {
                    let (min_len, max_len) = b.len_range();
                    for s in 0..n {
                        if !b.left_ok(text, s) {
                            continue;
                        }
                        let hi = n.min(s + max_len);
                        let mut e = hi;
                        while e >= s + min_len {
                            if b.right_ok(text, e)
                                && re.is_match(&text[s..e])
                                && b.validate(text, s, e)
                            {
                                candidates.push(Finding {
                                    start: s,
                                    end: e,
                                    detector: id,
                                });
                                break;
                            }
                            e -= 1;
                        }
                    }
                }
                Matcher::Custom(c) => {
                    for s in 0..n {
                        let hi = n.min(s + CUSTOM_MATCH_BYTES_MAX);
                        for e in (s + 1..=hi).rev() {
                            if c.accepts(&text[s..e]) {
                                candidates.push(Finding {
                                    start: s,
                                    end: e,
                                    detector: id,
                                });
                                break;
                            }
                        }
                    }
                }
            }
        }
        let mut out = Vec::new();
        resolve(&mut candidates, &mut out);
        out
    }
}

/// The straightforward `regex` implementation (see the module
/// documentation). Custom detectors are not part of it.
pub struct RegexBaseline {
    matchers: Vec<(DetectorId, Builtin, Regex)>,
    candidates: Vec<Finding>,
    findings: Vec<Finding>,
}

impl RegexBaseline {
    pub fn new() -> Self {
        let matchers = Builtin::ALL
            .iter()
            .map(|&b| {
                (
                    b as DetectorId,
                    b,
                    Regex::new(&format!("(?-u){}", b.pattern()))
                        .expect("built-in patterns compile"),
                )
            })
            .collect();
        RegexBaseline {
            matchers,
            candidates: Vec::new(),
            findings: Vec::new(),
        }
    }

    /// Findings of `text` under `set`.
    pub fn scan(&mut self, text: &[u8], set: DetectorSet) -> &[Finding] {
        self.candidates.clear();
        self.findings.clear();
        for (id, b, re) in &self.matchers {
            if !set.contains(*id) {
                continue;
            }
            for m in re.find_iter(text) {
                let (s, e) = (m.start(), m.end());
                if b.left_ok(text, s) && b.right_ok(text, e) && b.validate(text, s, e) {
                    self.candidates.push(Finding {
                        start: s,
                        end: e,
                        detector: *id,
                    });
                }
            }
        }
        resolve(&mut self.candidates, &mut self.findings);
        &self.findings
    }
}

impl Default for RegexBaseline {
    fn default() -> Self {
        Self::new()
    }
}
