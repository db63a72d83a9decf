//! Property tests for the policy engine:
//!
//! * the lexer never panics and its tokens tile the input exactly;
//! * the statement splitter agrees with a naive character-by-character
//!   reference written independently below;
//! * the classifier never says "read" for generated data-modifying
//!   statements, however they are disguised (case, whitespace, comments,
//!   CTEs, EXPLAIN ANALYZE, PREPARE, surrounding statements).

use proptest::prelude::*;
use sluice::policy::{classify, split_statements, Class, LexOptions, Lexer};

// ---------------------------------------------------------------------------
// Lexer tiling

fn tiles(sql: &str, scs: bool) {
    let options = LexOptions {
        standard_conforming_strings: scs,
    };
    let mut rebuilt = String::with_capacity(sql.len());
    let mut at = 0;
    for t in Lexer::new(sql, options) {
        assert_eq!(t.start, at);
        assert!(!t.text.is_empty());
        rebuilt.push_str(t.text);
        at = t.end();
    }
    assert_eq!(rebuilt, sql);
}

/// SQL-flavoured fragments, so that generated text is dense in the
/// lexer's interesting cases (quotes, dollar tags, comments, prefixes).
const FRAGMENTS: &[&str] = &[
    "SELECT",
    "select",
    "x",
    "e",
    "E",
    "b",
    "X",
    "N",
    "U",
    "&",
    "u&",
    "'",
    "''",
    "\"",
    "\"\"",
    "$",
    "$$",
    "$a$",
    "$A$",
    "$1",
    "1",
    "1e1",
    "/*",
    "*/",
    "--",
    "-",
    "*",
    "/",
    "+",
    ";",
    "(",
    ")",
    " ",
    "\n",
    "\r",
    "\t",
    "\\",
    "'a;b'",
    "E'\\';'",
    "$$;$$",
    "$a$;$a$",
    "/* ; /* ; */ */",
    "-- ;\n",
    "BEGIN",
    "ATOMIC",
    "END",
    "CASE",
    "begin atomic",
    "CREATE FUNCTION f() ",
    "CREATE OR REPLACE PROCEDURE p() ",
    "é",
    "=",
    "<>",
    ":",
    "::",
    ".",
    ",",
];

fn fragments() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..40).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn lexer_tiles_arbitrary_text(sql in any::<String>(), scs in any::<bool>()) {
        tiles(&sql, scs);
    }

    #[test]
    fn lexer_tiles_sql_like_text(sql in fragments(), scs in any::<bool>()) {
        tiles(&sql, scs);
        // The classifier must not panic either.
        let _ = classify(&sql);
    }

    #[test]
    fn splitter_matches_the_reference(sql in fragments()) {
        let fast = split_statements(&sql, LexOptions::default());
        let slow = reference_split(&sql);
        prop_assert_eq!(fast, slow, "{:?}", sql);
    }
}

// ---------------------------------------------------------------------------
// Naive reference splitter
//
// A character-at-a-time state machine that follows the same rules as the
// documentation describes them, without sharing any code with the lexer.
// It marks which characters are significant (not whitespace, not inside a
// comment, not a statement-ending semicolon) and cuts statements at
// semicolons outside quotes, comments, parentheses and BEGIN ATOMIC bodies.

fn ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || !c.is_ascii()
}

fn ident_cont(c: char) -> bool {
    ident_start(c) || c.is_ascii_digit() || c == '$'
}

fn space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\u{0c}' | '\u{0b}')
}

/// After a closing quote at `i`, the index of a continuing quote: only
/// whitespace and `--` comments, including a newline, in between.
fn continues(chars: &[char], mut i: usize) -> Option<usize> {
    let mut newline = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' || c == '\r' {
            newline = true;
            i += 1;
        } else if space(c) {
            i += 1;
        } else if c == '-' && chars.get(i + 1) == Some(&'-') {
            while i < chars.len() && chars[i] != '\n' && chars[i] != '\r' {
                i += 1;
            }
        } else if c == '\'' && newline {
            return Some(i);
        } else {
            return None;
        }
    }
    None
}

/// Returns the index after a quoted string whose opening quote is at `i`.
fn skip_string(chars: &[char], mut i: usize, backslash: bool, doubled: bool) -> usize {
    i += 1;
    loop {
        match chars.get(i) {
            None => return chars.len(),
            Some('\\') if backslash => i += 2,
            Some('\'') => {
                if doubled && chars.get(i + 1) == Some(&'\'') {
                    i += 2;
                } else if let Some(q) = continues(chars, i + 1) {
                    i = q + 1;
                } else {
                    return i + 1;
                }
            }
            Some(_) => i += 1,
        }
    }
}

fn reference_split(sql: &str) -> Vec<std::ops::Range<usize>> {
    let chars: Vec<char> = sql.chars().collect();
    let mut offsets: Vec<usize> = sql.char_indices().map(|(o, _)| o).collect();
    offsets.push(sql.len());
    let mut out = Vec::new();
    // Per statement state.
    let mut first: Option<usize> = None;
    let mut last_end = 0usize;
    let mut depth = 0usize;
    let mut begin_depth = 0usize;
    let mut words: Vec<Option<String>> = Vec::new(); // significant tokens: Some(word) or None
    let mut last_word_depth = 0usize;
    let mut i = 0;
    let mut in_word = false;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let mut token_word: Option<String> = None;
        let mut significant = true;
        let mut statement_end = false;
        if space(c) {
            i += 1;
            significant = false;
        } else if c == '-' && chars.get(i + 1) == Some(&'-') {
            while i < chars.len() && chars[i] != '\n' && chars[i] != '\r' {
                i += 1;
            }
            significant = false;
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            let mut nest = 0usize;
            i += 2;
            loop {
                if i >= chars.len() {
                    // An unterminated comment is significant (the
                    // classifier must see it).
                    break;
                }
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    nest += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    i += 2;
                    if nest == 0 {
                        significant = false;
                        break;
                    }
                    nest -= 1;
                } else {
                    i += 1;
                }
            }
        } else if !in_word && (c == 'e' || c == 'E') && chars.get(i + 1) == Some(&'\'') {
            i = skip_string(&chars, i + 1, true, true);
        } else if !in_word && matches!(c, 'b' | 'B' | 'x' | 'X') && chars.get(i + 1) == Some(&'\'')
        {
            i = skip_string(&chars, i + 1, false, false);
        } else if !in_word && matches!(c, 'n' | 'N') && chars.get(i + 1) == Some(&'\'') {
            i = skip_string(&chars, i + 1, false, true);
        } else if !in_word
            && matches!(c, 'u' | 'U')
            && chars.get(i + 1) == Some(&'&')
            && matches!(chars.get(i + 2), Some('\'') | Some('"'))
        {
            if chars[i + 2] == '\'' {
                i = skip_string(&chars, i + 2, false, true);
            } else {
                i = skip_quoted_ident(&chars, i + 2);
            }
        } else if !in_word && ident_start(c) {
            while i < chars.len() && ident_cont(chars[i]) {
                i += 1;
            }
            token_word = Some(
                chars[start..i]
                    .iter()
                    .collect::<String>()
                    .to_ascii_lowercase(),
            );
        } else if c == '\'' {
            i = skip_string(&chars, i, false, true);
        } else if c == '"' {
            i = skip_quoted_ident(&chars, i);
        } else if c == '$' && !in_word {
            i = skip_dollar(&chars, i);
        } else if c.is_ascii_digit() && !in_word {
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            if matches!(chars.get(i), Some('e' | 'E')) {
                let mut j = i + 1;
                if matches!(chars.get(j), Some('+' | '-')) {
                    j += 1;
                }
                if chars.get(j).is_some_and(|d| d.is_ascii_digit()) {
                    i = j;
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
        } else {
            i += 1;
            match c {
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                ';' if depth == 0 && begin_depth == 0 => {
                    statement_end = true;
                    significant = false;
                }
                _ => {}
            }
        }
        // Identifier continuation only applies within one identifier.
        in_word = token_word.is_some() && i < chars.len() && ident_cont(chars[i]);
        debug_assert!(!in_word);
        if statement_end {
            if let Some(f) = first.take() {
                out.push(offsets[f]..offsets[last_end]);
            }
            depth = 0;
            begin_depth = 0;
            words.clear();
            continue;
        }
        if !significant {
            continue;
        }
        if first.is_none() {
            first = Some(start);
        }
        last_end = i;
        let token_depth = if c == '(' { depth - 1 } else { depth };
        if let Some(w) = &token_word {
            if token_depth == 0 {
                let prev_begin =
                    matches!(words.last(), Some(Some(p)) if p == "begin") && last_word_depth == 0;
                let opens_atomic = w == "atomic" && prev_begin && starts_routine(&words);
                if opens_atomic || (w == "case" && begin_depth > 0) {
                    begin_depth += 1;
                } else if w == "end" && begin_depth > 0 {
                    begin_depth -= 1;
                }
            }
            last_word_depth = token_depth;
        }
        words.push(token_word);
    }
    if let Some(f) = first {
        out.push(offsets[f]..offsets[last_end]);
    }
    out
}

fn starts_routine(words: &[Option<String>]) -> bool {
    let w = |i: usize, s: &str| matches!(words.get(i), Some(Some(x)) if x == s);
    let routine = |i: usize| w(i, "function") || w(i, "procedure");
    w(0, "create") && (routine(1) || (w(1, "or") && w(2, "replace") && routine(3)))
}

fn skip_quoted_ident(chars: &[char], mut i: usize) -> usize {
    i += 1;
    loop {
        match chars.get(i) {
            None => return chars.len(),
            Some('"') if chars.get(i + 1) == Some(&'"') => i += 2,
            Some('"') => return i + 1,
            Some(_) => i += 1,
        }
    }
}

/// `$n`, `$tag$...$tag$`, or a lone `$`.
fn skip_dollar(chars: &[char], i: usize) -> usize {
    if chars.get(i + 1).is_some_and(|c| c.is_ascii_digit()) {
        let mut j = i + 1;
        while j < chars.len() && chars[j].is_ascii_digit() {
            j += 1;
        }
        return j;
    }
    let mut j = i + 1;
    if chars.get(j).is_some_and(|&c| ident_start(c)) {
        while j < chars.len() && (ident_start(chars[j]) || chars[j].is_ascii_digit()) {
            j += 1;
        }
    }
    if chars.get(j) != Some(&'$') {
        return i + 1;
    }
    let tag: Vec<char> = chars[i..=j].to_vec();
    let mut k = j + 1;
    while k + tag.len() <= chars.len() {
        if chars[k..k + tag.len()] == tag[..] {
            return k + tag.len();
        }
        k += 1;
    }
    chars.len()
}

// ---------------------------------------------------------------------------
// Disguised modifying statements

/// Modifying statements with the class each must at least produce.
/// `true` marks DML that may be wrapped in a CTE, EXPLAIN ANALYZE or
/// PREPARE.
const MODIFYING: &[(&str, Class, bool)] = &[
    ("INSERT INTO t VALUES ( 1 )", Class::Insert, true),
    ("INSERT INTO t SELECT * FROM u", Class::Insert, true),
    ("UPDATE t SET a = 1", Class::UpdateNoWhere, true),
    ("UPDATE t SET a = 1 WHERE id = 2", Class::UpdateWhere, true),
    ("UPDATE t SET a = 1 WHERE 1 = 1", Class::UpdateNoWhere, true),
    ("DELETE FROM t", Class::DeleteNoWhere, true),
    ("DELETE FROM t WHERE id = 3", Class::DeleteWhere, true),
    ("DELETE FROM t WHERE true", Class::DeleteNoWhere, true),
    ("DELETE FROM ONLY t WHERE x = x", Class::DeleteNoWhere, true),
    (
        "MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN DELETE",
        Class::Merge,
        true,
    ),
    ("DROP TABLE t", Class::Drop, false),
    ("DROP TABLE IF EXISTS t , u CASCADE", Class::Drop, false),
    ("TRUNCATE t", Class::Truncate, false),
    ("ALTER TABLE t DROP COLUMN a", Class::Alter, false),
    ("CREATE TABLE n ( a int )", Class::Create, false),
    ("GRANT ALL ON t TO PUBLIC", Class::Privilege, false),
    ("REVOKE ALL ON t FROM bob", Class::Privilege, false),
    ("CREATE ROLE r", Class::Role, false),
    ("SET ROLE r", Class::Role, false),
    ("COPY t FROM STDIN", Class::CopyFrom, false),
    ("COPY t TO PROGRAM 'x'", Class::CopyProgram, false),
    (
        "DO $$BEGIN DELETE FROM t; END$$",
        Class::DeleteNoWhere,
        false,
    ),
    ("DO $$BEGIN DROP TABLE t; END$$", Class::Drop, false),
    (
        "CREATE FUNCTION f ( ) RETURNS void LANGUAGE sql AS $$DELETE FROM t$$",
        Class::DeleteNoWhere,
        false,
    ),
    ("SELECT pg_terminate_backend ( 1 )", Class::Admin, false),
    ("SELECT * INTO n FROM t", Class::Create, false),
    ("VACUUM t", Class::Maintenance, false),
    ("LOCK TABLE t", Class::Lock, false),
];

const SEPARATORS: &[&str] = &[
    " ",
    "  ",
    "\n",
    "\t",
    "\r\n",
    "/**/",
    "/* c */",
    " /* a /* nested */ b */ ",
    " -- c\n",
    "\u{0b}",
    "\u{0c}",
];

fn disguise(base: &str, cases: Vec<bool>, seps: Vec<usize>, wrapper: usize, dml: bool) -> String {
    let mut out = String::new();
    for (n, word) in base.split(' ').enumerate() {
        if n > 0 {
            out.push_str(SEPARATORS[seps[n % seps.len()] % SEPARATORS.len()]);
        }
        if word.chars().all(|c| c.is_ascii_alphabetic() || c == '_') {
            for (k, c) in word.chars().enumerate() {
                if cases[(n + k) % cases.len()] {
                    out.push(c.to_ascii_uppercase());
                } else {
                    out.push(c.to_ascii_lowercase());
                }
            }
        } else {
            out.push_str(word);
        }
    }
    match (wrapper, dml) {
        (0, _) => out,
        (1, _) => format!("SELECT 1; {out}"),
        (2, _) => format!("SELECT $q$ {out} $q$; {out}; SELECT 'x'"),
        (3, true) => format!("WITH x AS ({out} RETURNING 1) SELECT * FROM x"),
        (4, true) => format!("EXPLAIN ANALYZE {out}"),
        (5, true) => format!("EXPLAIN (ANALYZE, COSTS false) {out}"),
        (6, true) => format!("PREPARE p AS {out}"),
        (7, true) => format!("WITH x AS (SELECT 1) {out}"),
        _ => format!("-- leading comment\n{out};"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn modifying_statements_are_never_read(
        index in 0..MODIFYING.len(),
        cases in prop::collection::vec(any::<bool>(), 1..8),
        seps in prop::collection::vec(0..SEPARATORS.len(), 1..8),
        wrapper in 0usize..9,
    ) {
        let (base, class, dml) = MODIFYING[index];
        let sql = disguise(base, cases, seps, wrapper, dml);
        let statements = classify(&sql);
        prop_assert!(
            statements.iter().any(|s| s.ops.contains(class)),
            "{:?} should touch {:?}: {:?}", sql, class, statements
        );
        // Whatever statement touches the class is not classified as a read.
        for s in statements.iter().filter(|s| s.ops.contains(class)) {
            prop_assert!(s.class != Class::Read && s.class != Class::LockingRead, "{:?}", sql);
        }
    }
}
