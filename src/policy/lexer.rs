//! A PostgreSQL lexer that follows the server's own scanner (`scan.l`) and
//! the "Lexical Structure" chapter of the PostgreSQL documentation.
//!
//! The policy engine only works if it sees the same token boundaries as the
//! server: a string literal that the server ends one byte earlier than we do
//! would hide a statement from the classifier. The rules below are therefore
//! copied from the server scanner rather than approximated, including its
//! less known corners: nested block comments, string continuation across a
//! newline, `$tag$` dollar quoting (with `$1` being a parameter), operators
//! that stop before `--` and `/*`, identifiers that may contain `$`, and the
//! `standard_conforming_strings` setting that decides whether a backslash
//! escapes a quote inside `'...'`.
//!
//! The lexer borrows from its input and never allocates. Every byte of the
//! input belongs to exactly one token, so concatenating the token texts gives
//! the input back; the property tests check this. It never panics: input the
//! server would reject produces [`TokenKind::Other`] or one of the
//! `Unterminated*` kinds, which the classifier treats as unknown SQL.

/// Nesting depth of `/* /* */ */` comments beyond which the lexer stops
/// following the comment and reports the rest of the input as an
/// unterminated comment. The server has no such limit; stopping early makes
/// the classifier answer "unknown", which is the safe direction.
pub const BLOCK_COMMENT_DEPTH_MAX: u32 = 1024;

/// What a token is. Keywords are not told apart from identifiers here: the
/// server decides that from the grammar, and the classifier compares
/// [`TokenKind::Ident`] texts case-insensitively where a keyword is expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// Spaces, tabs, newlines, carriage returns, form and vertical feeds.
    Whitespace,
    /// `-- ...` up to (not including) the end of the line.
    LineComment,
    /// `/* ... */`, possibly nested.
    BlockComment,
    /// An unquoted identifier or keyword (`select`, `Foo`, `a$b`, `été`).
    Ident,
    /// `"..."` with `""` standing for one double quote.
    QuotedIdent,
    /// `U&"..."`, whose escapes are decoded with the following `UESCAPE`.
    UnicodeIdent,
    /// `'...'`; with `standard_conforming_strings` off, backslashes escape.
    String,
    /// `E'...'` with backslash escapes.
    EscapeString,
    /// `U&'...'`.
    UnicodeString,
    /// `B'...'`.
    BitString,
    /// `X'...'`.
    HexString,
    /// `N'...'`, a national character string (a standard string otherwise).
    NationalString,
    /// `$$...$$` or `$tag$...$tag$`.
    DollarString,
    /// Integer, decimal or real literal, including `0x`, `0o`, `0b` forms.
    Number,
    /// A positional parameter such as `$1`.
    Param,
    /// An operator such as `=`, `<>`, `||`, `->>`, `+`.
    Operator,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Semicolon,
    Dot,
    /// `..`, used by PL/pgSQL integer FOR loops.
    DotDot,
    Colon,
    /// `::`, the typecast operator.
    DoubleColon,
    /// `:=`, used for named arguments and PL/pgSQL assignment.
    ColonEquals,
    /// A character the server does not accept outside quotes (`\`, `{`, a
    /// lone `$`, control characters). The server answers a syntax error.
    Other,
    /// `/*` without its matching `*/` (or nested deeper than
    /// [`BLOCK_COMMENT_DEPTH_MAX`]); runs to the end of the input.
    UnterminatedBlockComment,
    /// A quoted identifier without its closing quote.
    UnterminatedQuotedIdent,
    /// A quoted string of any kind without its closing quote.
    UnterminatedString,
    /// A dollar-quoted string without its closing delimiter.
    UnterminatedDollarString,
}

impl TokenKind {
    /// Whitespace and comments: tokens the grammar never sees.
    pub fn is_trivia(self) -> bool {
        matches!(
            self,
            TokenKind::Whitespace | TokenKind::LineComment | TokenKind::BlockComment
        )
    }

    /// Tokens that run to the end of the input because their closing
    /// delimiter is missing.
    pub fn is_unterminated(self) -> bool {
        matches!(
            self,
            TokenKind::UnterminatedBlockComment
                | TokenKind::UnterminatedQuotedIdent
                | TokenKind::UnterminatedString
                | TokenKind::UnterminatedDollarString
        )
    }

    /// String constants of every flavour (not identifiers).
    pub fn is_string(self) -> bool {
        matches!(
            self,
            TokenKind::String
                | TokenKind::EscapeString
                | TokenKind::UnicodeString
                | TokenKind::BitString
                | TokenKind::HexString
                | TokenKind::NationalString
                | TokenKind::DollarString
        )
    }

    /// Identifiers in any of their three spellings.
    pub fn is_identifier(self) -> bool {
        matches!(
            self,
            TokenKind::Ident | TokenKind::QuotedIdent | TokenKind::UnicodeIdent
        )
    }
}

/// One token: its kind, its text (a slice of the input) and where it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'a> {
    pub kind: TokenKind,
    pub text: &'a str,
    /// Byte offset of `text` in the input.
    pub start: usize,
}

impl Token<'_> {
    /// Byte offset just past the token.
    pub fn end(&self) -> usize {
        self.start + self.text.len()
    }
}

/// Settings that change how the server lexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LexOptions {
    /// The session's `standard_conforming_strings` (on by default since
    /// PostgreSQL 9.1, and reported by the server in ParameterStatus). When
    /// off, a backslash inside `'...'` escapes the next character, so
    /// `'\''` is one string rather than a string followed by an open quote.
    pub standard_conforming_strings: bool,
}

impl Default for LexOptions {
    fn default() -> Self {
        LexOptions {
            standard_conforming_strings: true,
        }
    }
}

/// An iterator over the tokens of a SQL text.
#[derive(Debug, Clone)]
pub struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    options: LexOptions,
}

/// Lexes `src` with default options (`standard_conforming_strings` on).
pub fn tokens(src: &str) -> Lexer<'_> {
    Lexer::new(src, LexOptions::default())
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0c | 0x0b)
}

/// `ident_start` in scan.l: ASCII letters, underscore and every byte with
/// the high bit set (so any non-ASCII character in UTF-8).
pub(crate) fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

/// `ident_cont`: an identifier may also contain digits and `$`.
pub(crate) fn is_ident_cont(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit() || b == b'$'
}

/// `dolq_cont`: dollar-quote tags are identifiers without `$`.
fn is_tag_cont(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit()
}

/// `op_chars` in scan.l.
fn is_op_char(b: u8) -> bool {
    matches!(
        b,
        b'~' | b'!'
            | b'@'
            | b'#'
            | b'^'
            | b'&'
            | b'|'
            | b'`'
            | b'?'
            | b'+'
            | b'-'
            | b'*'
            | b'/'
            | b'%'
            | b'<'
            | b'>'
            | b'='
    )
}

impl<'a> Lexer<'a> {
    pub fn new(src: &'a str, options: LexOptions) -> Self {
        Lexer {
            src,
            pos: 0,
            options,
        }
    }

    fn byte(&self, at: usize) -> Option<u8> {
        self.src.as_bytes().get(at).copied()
    }

    /// Scans one token starting at `self.pos` and returns its kind, leaving
    /// `self.pos` just past it. Every branch advances by at least one byte
    /// and stops on an ASCII byte or the end of input, so token boundaries
    /// always fall on character boundaries.
    fn scan(&mut self) -> TokenKind {
        let bytes = self.src.as_bytes();
        let start = self.pos;
        let b = bytes[start];
        let next = self.byte(start + 1);
        match b {
            _ if is_space(b) => {
                let mut i = start + 1;
                while i < bytes.len() && is_space(bytes[i]) {
                    i += 1;
                }
                self.pos = i;
                TokenKind::Whitespace
            }
            b'-' if next == Some(b'-') => {
                let mut i = start + 2;
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
                self.pos = i;
                TokenKind::LineComment
            }
            b'/' if next == Some(b'*') => self.block_comment(),
            b'\'' => {
                let escapes = !self.options.standard_conforming_strings;
                self.quoted_string(start, escapes, true, TokenKind::String)
            }
            b'"' => self.quoted_ident(start + 1, TokenKind::QuotedIdent),
            b'$' => self.dollar(),
            b'0'..=b'9' => {
                self.number();
                TokenKind::Number
            }
            b'.' if next.is_some_and(|c| c.is_ascii_digit()) => {
                self.number();
                TokenKind::Number
            }
            b'(' => self.single(TokenKind::LParen),
            b')' => self.single(TokenKind::RParen),
            b'[' => self.single(TokenKind::LBracket),
            b']' => self.single(TokenKind::RBracket),
            b',' => self.single(TokenKind::Comma),
            b';' => self.single(TokenKind::Semicolon),
            b'.' if next == Some(b'.') => {
                self.pos = start + 2;
                TokenKind::DotDot
            }
            b'.' => self.single(TokenKind::Dot),
            b':' => match next {
                Some(b':') => {
                    self.pos = start + 2;
                    TokenKind::DoubleColon
                }
                Some(b'=') => {
                    self.pos = start + 2;
                    TokenKind::ColonEquals
                }
                _ => self.single(TokenKind::Colon),
            },
            _ if is_op_char(b) => self.operator(),
            _ if is_ident_start(b) => self.ident_or_prefixed_string(),
            _ => self.single(TokenKind::Other),
        }
    }

    fn single(&mut self, kind: TokenKind) -> TokenKind {
        self.pos += 1;
        kind
    }

    /// `/* ... */` with nesting. Inside a comment the server recognises `/*`
    /// (one level deeper) and `*+/` (one level out); everything else is
    /// skipped one byte at a time, which finds the same boundaries.
    fn block_comment(&mut self) -> TokenKind {
        let bytes = self.src.as_bytes();
        let mut i = self.pos + 2;
        let mut depth: u32 = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'/' if bytes.get(i + 1) == Some(&b'*') => {
                    depth += 1;
                    if depth > BLOCK_COMMENT_DEPTH_MAX {
                        self.pos = bytes.len();
                        return TokenKind::UnterminatedBlockComment;
                    }
                    i += 2;
                }
                b'*' if bytes.get(i + 1) == Some(&b'/') => {
                    i += 2;
                    if depth == 0 {
                        self.pos = i;
                        return TokenKind::BlockComment;
                    }
                    depth -= 1;
                }
                _ => i += 1,
            }
        }
        self.pos = bytes.len();
        TokenKind::UnterminatedBlockComment
    }

    /// A single-quoted string whose opening quote is at `quote`. With
    /// `escapes`, a backslash takes the next byte literally (E'' strings,
    /// and '' strings when `standard_conforming_strings` is off). With
    /// `doubled`, `''` stands for one quote; bit and hex strings do not
    /// have that rule in the server scanner. After the closing quote, a
    /// run of whitespace containing a newline followed by another quote
    /// continues the same literal (SQL's string continuation).
    fn quoted_string(
        &mut self,
        quote: usize,
        escapes: bool,
        doubled: bool,
        kind: TokenKind,
    ) -> TokenKind {
        let bytes = self.src.as_bytes();
        let mut i = quote + 1;
        loop {
            match bytes.get(i) {
                None => {
                    self.pos = bytes.len();
                    return TokenKind::UnterminatedString;
                }
                Some(b'\\') if escapes => i += 2,
                Some(b'\'') => {
                    if doubled && bytes.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    i += 1;
                    match continuation(bytes, i) {
                        Some(next_quote) => i = next_quote + 1,
                        None => {
                            self.pos = i;
                            return kind;
                        }
                    }
                }
                Some(_) => i += 1,
            }
        }
    }

    /// A double-quoted identifier whose body starts at `body`; `""` is an
    /// escaped quote.
    fn quoted_ident(&mut self, body: usize, kind: TokenKind) -> TokenKind {
        let bytes = self.src.as_bytes();
        let mut i = body;
        loop {
            match memchr::memchr(b'"', &bytes[i.min(bytes.len())..]) {
                None => {
                    self.pos = bytes.len();
                    return TokenKind::UnterminatedQuotedIdent;
                }
                Some(offset) => {
                    i += offset + 1;
                    if bytes.get(i) == Some(&b'"') {
                        i += 1;
                        continue;
                    }
                    self.pos = i;
                    return kind;
                }
            }
        }
    }

    /// `$` starts a parameter (`$1`), a dollar-quoted string (`$$`,
    /// `$tag$`) or, failing both, is a lone `$` the server rejects.
    fn dollar(&mut self) -> TokenKind {
        let bytes = self.src.as_bytes();
        let start = self.pos;
        match self.byte(start + 1) {
            Some(d) if d.is_ascii_digit() => {
                let mut i = start + 1;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                self.pos = i;
                TokenKind::Param
            }
            Some(b'$') => self.dollar_body(start, start + 2),
            Some(c) if is_ident_start(c) => {
                let mut i = start + 2;
                while i < bytes.len() && is_tag_cont(bytes[i]) {
                    i += 1;
                }
                if bytes.get(i) == Some(&b'$') {
                    self.dollar_body(start, i + 1)
                } else {
                    // `$abc` without a closing `$` is not a delimiter: the
                    // server gives back everything but the `$`.
                    self.single(TokenKind::Other)
                }
            }
            _ => self.single(TokenKind::Other),
        }
    }

    /// The body of a dollar-quoted string whose opening delimiter spans
    /// `start..body`; it ends at the first occurrence of the same
    /// delimiter, compared byte for byte (tags are case-sensitive).
    fn dollar_body(&mut self, start: usize, body: usize) -> TokenKind {
        let bytes = self.src.as_bytes();
        let delimiter = &bytes[start..body];
        match memchr::memmem::find(&bytes[body..], delimiter) {
            Some(offset) => {
                self.pos = body + offset + delimiter.len();
                TokenKind::DollarString
            }
            None => {
                self.pos = bytes.len();
                TokenKind::UnterminatedDollarString
            }
        }
    }

    /// Numeric literals as in PostgreSQL 16: decimal integers with single
    /// underscores between digits, `0x`/`0o`/`0b` integers, decimals and
    /// exponents. `1..2` stops before `..`. Trailing letters are left for
    /// the next token (PostgreSQL 16 rejects them as "trailing junk";
    /// older servers read them as an alias).
    fn number(&mut self) {
        let bytes = self.src.as_bytes();
        let mut i = self.pos;
        if bytes[i] == b'0' {
            let radix_digit: Option<fn(u8) -> bool> = match bytes.get(i + 1) {
                Some(b'x' | b'X') => Some(|c: u8| c.is_ascii_hexdigit()),
                Some(b'o' | b'O') => Some(|c: u8| (b'0'..=b'7').contains(&c)),
                Some(b'b' | b'B') => Some(|c: u8| c == b'0' || c == b'1'),
                _ => None,
            };
            if let Some(is_digit) = radix_digit {
                let mut j = i + 2;
                let mut any = false;
                loop {
                    match bytes.get(j) {
                        Some(&c) if is_digit(c) => {
                            any = true;
                            j += 1;
                        }
                        Some(b'_') if bytes.get(j + 1).is_some_and(|&c| is_digit(c)) => j += 1,
                        _ => break,
                    }
                }
                if any {
                    self.pos = j;
                    return;
                }
            }
        }
        i = digits(bytes, i);
        if bytes.get(i) == Some(&b'.') && bytes.get(i + 1) != Some(&b'.') {
            i = digits(bytes, i + 1);
        }
        if matches!(bytes.get(i), Some(b'e' | b'E')) {
            let mut j = i + 1;
            if matches!(bytes.get(j), Some(b'+' | b'-')) {
                j += 1;
            }
            if bytes.get(j).is_some_and(|c| c.is_ascii_digit()) {
                i = digits(bytes, j);
            }
        }
        self.pos = i.max(self.pos + 1);
    }

    /// An operator: a run of operator characters that stops before `--` or
    /// `/*` (those start comments), and that may not end in `+` or `-`
    /// unless it contains one of `~ ! @ # % ^ & | \` ?` (so `=-1` lexes as
    /// `=` then `-`), exactly as the server does it.
    fn operator(&mut self) -> TokenKind {
        let bytes = self.src.as_bytes();
        let start = self.pos;
        let mut end = start;
        while end < bytes.len() && is_op_char(bytes[end]) {
            if end > start
                && ((bytes[end] == b'-' && bytes.get(end + 1) == Some(&b'-'))
                    || (bytes[end] == b'/' && bytes.get(end + 1) == Some(&b'*')))
            {
                break;
            }
            end += 1;
        }
        let mut len = end - start;
        if len > 1 && matches!(bytes[start + len - 1], b'+' | b'-') {
            let special = bytes[start..start + len - 1].iter().any(|c| {
                matches!(
                    c,
                    b'~' | b'!' | b'@' | b'#' | b'^' | b'&' | b'|' | b'`' | b'?' | b'%'
                )
            });
            if !special {
                while len > 1 && matches!(bytes[start + len - 1], b'+' | b'-') {
                    len -= 1;
                }
            }
        }
        self.pos = start + len;
        TokenKind::Operator
    }

    /// Identifiers, and the one-letter prefixes that turn a following quote
    /// into a special literal: `E'`, `B'`, `X'`, `N'`, `U&'` and `U&"`.
    fn ident_or_prefixed_string(&mut self) -> TokenKind {
        let bytes = self.src.as_bytes();
        let start = self.pos;
        let next = self.byte(start + 1);
        match (bytes[start], next) {
            (b'e' | b'E', Some(b'\'')) => {
                return self.quoted_string(start + 1, true, true, TokenKind::EscapeString)
            }
            (b'b' | b'B', Some(b'\'')) => {
                return self.quoted_string(start + 1, false, false, TokenKind::BitString)
            }
            (b'x' | b'X', Some(b'\'')) => {
                return self.quoted_string(start + 1, false, false, TokenKind::HexString)
            }
            (b'n' | b'N', Some(b'\'')) => {
                let escapes = !self.options.standard_conforming_strings;
                return self.quoted_string(start + 1, escapes, true, TokenKind::NationalString);
            }
            (b'u' | b'U', Some(b'&')) => match self.byte(start + 2) {
                Some(b'\'') => {
                    return self.quoted_string(start + 2, false, true, TokenKind::UnicodeString)
                }
                Some(b'"') => return self.quoted_ident(start + 3, TokenKind::UnicodeIdent),
                _ => {}
            },
            _ => {}
        }
        let mut i = start + 1;
        while i < bytes.len() && is_ident_cont(bytes[i]) {
            i += 1;
        }
        self.pos = i;
        TokenKind::Ident
    }
}

fn digits(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() {
        // A digit, or an underscore between two digits.
        let digit_or_separator = bytes[i].is_ascii_digit()
            || (bytes[i] == b'_'
                && i > 0
                && bytes[i - 1].is_ascii_digit()
                && bytes.get(i + 1).is_some_and(|c| c.is_ascii_digit()));
        if !digit_or_separator {
            break;
        }
        i += 1;
    }
    i
}

/// Where a string literal continues after its closing quote: whitespace
/// (and `--` comments) containing at least one newline, then a quote.
/// Returns the index of that quote.
pub(crate) fn continuation(bytes: &[u8], mut i: usize) -> Option<usize> {
    let mut newline = false;
    loop {
        match bytes.get(i)? {
            b' ' | b'\t' | 0x0c | 0x0b => i += 1,
            b'\n' | b'\r' => {
                newline = true;
                i += 1;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            b'\'' if newline => return Some(i),
            _ => return None,
        }
    }
}

impl<'a> Iterator for Lexer<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        let start = self.pos;
        if start >= self.src.len() {
            return None;
        }
        let kind = self.scan();
        // Escapes may step past the end of the input by one byte.
        if self.pos > self.src.len() {
            self.pos = self.src.len();
        }
        Some(Token {
            kind,
            text: &self.src[start..self.pos],
            start,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<(TokenKind, &str)> {
        tokens(src)
            .filter(|t| t.kind != TokenKind::Whitespace)
            .map(|t| (t.kind, t.text))
            .collect()
    }

    fn tile(src: &str, options: LexOptions) {
        let mut rebuilt = std::string::String::new();
        let mut at = 0;
        for t in Lexer::new(src, options) {
            assert_eq!(t.start, at);
            assert!(!t.text.is_empty());
            rebuilt.push_str(t.text);
            at = t.end();
        }
        assert_eq!(rebuilt, src);
    }

    use TokenKind::*;

    #[test]
    fn comments_nest_and_lines_end() {
        assert_eq!(
            kinds("a /* x /* y */ z */ b -- c\nd"),
            vec![
                (Ident, "a"),
                (BlockComment, "/* x /* y */ z */"),
                (Ident, "b"),
                (LineComment, "-- c"),
                (Ident, "d")
            ]
        );
        assert_eq!(kinds("/* /* */ x")[0].0, UnterminatedBlockComment);
        assert_eq!(
            kinds("/*/ x */ y"),
            vec![(BlockComment, "/*/ x */"), (Ident, "y")]
        );
        assert_eq!(kinds("/* /*/ */ y")[0].0, UnterminatedBlockComment);
        assert_eq!(kinds("/* **/ y")[0], (BlockComment, "/* **/"));
        assert_eq!(kinds("/**/x"), vec![(BlockComment, "/**/"), (Ident, "x")]);
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(kinds("'it''s'"), vec![(String, "'it''s'")]);
        assert_eq!(
            kinds(r"'a\'; drop"),
            vec![(String, r"'a\'"), (Semicolon, ";"), (Ident, "drop")]
        );
        assert_eq!(
            kinds(r"E'a\'; drop'"),
            vec![(EscapeString, r"E'a\'; drop'")]
        );
        let off = LexOptions {
            standard_conforming_strings: false,
        };
        let t: Vec<_> = Lexer::new(r"'a\'; x'", off).map(|t| t.kind).collect();
        assert_eq!(t, vec![String]);
        assert_eq!(kinds("U&'d\\0061t'"), vec![(UnicodeString, "U&'d\\0061t'")]);
        assert_eq!(kinds("B'101' X'ff'")[1], (HexString, "X'ff'"));
        assert_eq!(kinds("B'1''0'"), vec![(BitString, "B'1'"), (String, "'0'")]);
        assert_eq!(kinds("'a'\n  'b' c")[0], (String, "'a'\n  'b'"));
        assert_eq!(kinds("'a' 'b'").len(), 2);
        assert_eq!(kinds("'a' -- x\n'b'")[0], (String, "'a' -- x\n'b'"));
        assert_eq!(kinds("'open")[0].0, UnterminatedString);
        assert_eq!(kinds("N'x'")[0].0, NationalString);
        assert_eq!(kinds("une'x'")[0], (Ident, "une"));
    }

    #[test]
    fn identifiers() {
        assert_eq!(kinds(r#""a""b""#), vec![(QuotedIdent, r#""a""b""#)]);
        assert_eq!(kinds(r#"U&"d\0061t""#)[0].0, UnicodeIdent);
        assert_eq!(kinds("a$b$ été_1")[0], (Ident, "a$b$"));
        assert_eq!(kinds("a$b$ été_1")[1], (Ident, "été_1"));
        assert_eq!(kinds("U & x")[0], (Ident, "U"));
        assert_eq!(kinds(r#""open"#)[0].0, UnterminatedQuotedIdent);
    }

    #[test]
    fn dollar_quotes_and_params() {
        assert_eq!(kinds("$$a;b$$ x")[0], (DollarString, "$$a;b$$"));
        assert_eq!(
            kinds("$f$ $g$ $F$ $f$")[0],
            (DollarString, "$f$ $g$ $F$ $f$")
        );
        assert_eq!(kinds("$1 $23")[1], (Param, "$23"));
        assert_eq!(kinds("$a x")[0], (Other, "$"));
        assert_eq!(kinds("$")[0], (Other, "$"));
        assert_eq!(kinds("$q$ open")[0].0, UnterminatedDollarString);
        assert_eq!(kinds("$a$x$$a$")[0], (DollarString, "$a$x$$a$"));
    }

    #[test]
    fn numbers_and_operators() {
        assert_eq!(
            kinds("1.5e-3 .5 1_000 0xFF 1..2"),
            vec![
                (Number, "1.5e-3"),
                (Number, ".5"),
                (Number, "1_000"),
                (Number, "0xFF"),
                (Number, "1"),
                (DotDot, ".."),
                (Number, "2")
            ]
        );
        assert_eq!(kinds("a+--x\nb")[1], (Operator, "+"));
        assert_eq!(kinds("a*/*x*/b")[1], (Operator, "*"));
        assert_eq!(kinds("=-1")[0], (Operator, "="));
        assert_eq!(kinds("@-1")[0], (Operator, "@-"));
        assert_eq!(kinds("x::int := 1")[1], (DoubleColon, "::"));
        assert_eq!(kinds("x::int := 1")[3], (ColonEquals, ":="));
        assert_eq!(kinds("->> <>")[0], (Operator, "->>"));
    }

    #[test]
    fn tiling_on_awkward_inputs() {
        let off = LexOptions {
            standard_conforming_strings: false,
        };
        for src in [
            "",
            "e",
            "E'\\",
            "'\\",
            "U&",
            "U&'",
            "$1$",
            "0x",
            "1e+",
            "/*",
            "-",
            "\u{1F600}$$\u{e9}",
            "é'x'",
            "'a'\n",
            "--\r\n'",
            "\\\u{0}",
        ] {
            tile(src, LexOptions::default());
            tile(src, off);
        }
    }
}
