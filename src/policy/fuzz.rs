//! Fuzzing entry point for the policy engine.
//!
//! `fuzz/fuzz_targets/policy_classify.rs` only forwards its input here, so
//! the harness is compiled, linted and unit-tested with the library. It
//! panics (through `assert!`) only when an invariant breaks:
//!
//! * the lexer never panics and its tokens tile the input exactly, with
//!   both settings of `standard_conforming_strings`;
//! * statement ranges are in bounds, on character boundaries, ordered and
//!   non-overlapping, and agree with [`split_statements`];
//! * every statement has at least one class, its `class` is the most
//!   severe of its `ops`, and its relation ranges lie inside it;
//! * deciding under a fixed policy never panics.

use super::classify::{classify_with, split_statements, ClassifyOptions, NoPreparedStatements};
use super::config::PolicyConfig;
use super::lexer::{LexOptions, Lexer};

/// Runs every check on `data` (non-UTF-8 input is decoded lossily so the
/// fuzzer still explores the lexer).
pub fn classify(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let sql: &str = &text;
    for scs in [true, false] {
        let lex = LexOptions {
            standard_conforming_strings: scs,
        };
        let mut at = 0;
        for t in Lexer::new(sql, lex) {
            assert_eq!(t.start, at, "tokens must be contiguous");
            assert!(!t.text.is_empty(), "tokens must not be empty");
            at = t.end();
        }
        assert_eq!(at, sql.len(), "tokens must cover the input");

        let options = ClassifyOptions { lex };
        let statements = classify_with(sql, &options, &NoPreparedStatements);
        let mut previous_end = 0;
        for s in &statements {
            assert!(
                s.range.start >= previous_end,
                "statements overlap or are unordered"
            );
            assert!(s.range.start < s.range.end, "statements are not empty");
            assert!(s.range.end <= sql.len(), "statement out of bounds");
            assert!(sql.is_char_boundary(s.range.start) && sql.is_char_boundary(s.range.end));
            assert!(!s.ops.is_empty(), "every statement has a class");
            assert!(s.ops.contains(s.class));
            assert_eq!(s.class, s.ops.most_severe());
            for r in &s.relations {
                assert!(r.start >= s.range.start && r.end <= s.range.end);
            }
            previous_end = s.range.end;
        }
        let split = split_statements(sql, lex);
        let ranges: Vec<_> = statements.iter().map(|s| s.range.clone()).collect();
        assert_eq!(split, ranges, "splitter and classifier disagree");

        let policy = PolicyConfig::default();
        let none: &[&str] = &[];
        let compiled = policy
            .validate(none, none, none)
            .expect("default policy is valid");
        let _ = compiled.decide("agent", none, "target", &statements);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn awkward_inputs_hold_the_invariants() {
        for input in [
            &b""[..],
            b";;;",
            b"SELECT 1; DELETE FROM t",
            b"$$",
            b"E'\\",
            b"\xff\xfe;select",
            b"CREATE FUNCTION f() BEGIN ATOMIC ; END; x",
            b"DO $$ DO $b$ x $b$ $$",
            b"(((((((",
            b")))))) ; DELETE FROM t WHERE",
        ] {
            super::classify(input);
        }
    }
}
