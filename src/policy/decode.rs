//! Decoding identifiers and string constants to the values the server sees.
//!
//! The classifier compares names (`pg_terminate_backend`, `role`) and reads
//! procedural bodies (`DO $$ ... $$`, `AS '...'`). Both can be spelled in
//! many ways — `"pg_terminate_backend"`, `U&"pg\005Fterminate_backend"`,
//! `E'DROP\x20TABLE t'` — so they are decoded exactly as the server decodes
//! them before being looked at. Anything that does not decode cleanly is
//! reported as `None`, and the caller treats the statement as unknown.

use std::borrow::Cow;

use super::lexer::{continuation, TokenKind};

/// Names longer than this are never equal to any name the classifier looks
/// for (the server truncates identifiers to 63 bytes, and every name we
/// compare with is much shorter), so they are not decoded.
pub const NAME_BYTES_MAX: usize = 64;

/// A decoded identifier held on the stack, so comparing names never
/// allocates.
#[derive(Clone, Copy)]
pub struct Name {
    buf: [u8; NAME_BYTES_MAX],
    len: usize,
}

impl Name {
    pub fn as_str(&self) -> &str {
        // Only whole characters are ever pushed, so this cannot fail; an
        // empty name is returned rather than panicking if it somehow did.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    fn push(&mut self, c: char) -> Option<()> {
        let mut tmp = [0u8; 4];
        let s = c.encode_utf8(&mut tmp);
        if self.len + s.len() > NAME_BYTES_MAX {
            return None;
        }
        self.buf[self.len..self.len + s.len()].copy_from_slice(s.as_bytes());
        self.len += s.len();
        Some(())
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        self.as_str() == other.as_str()
    }
}

impl std::fmt::Debug for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// Decodes an identifier token: unquoted names are folded to lower case
/// (ASCII only, as the server does for multi-byte encodings), quoted names
/// are taken verbatim with `""` meaning `"`, and `U&"..."` names have their
/// escapes decoded with `escape` (the `UESCAPE` character, `\` by default).
pub fn ident_name(kind: TokenKind, text: &str, escape: char) -> Option<Name> {
    let mut name = Name {
        buf: [0; NAME_BYTES_MAX],
        len: 0,
    };
    match kind {
        TokenKind::Ident => {
            if text.len() > NAME_BYTES_MAX {
                return None;
            }
            for c in text.chars() {
                name.push(c.to_ascii_lowercase())?;
            }
        }
        TokenKind::QuotedIdent => {
            let inner = text.get(1..text.len().checked_sub(1)?)?;
            let mut chars = inner.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '"' {
                    chars.next();
                }
                name.push(c)?;
            }
        }
        TokenKind::UnicodeIdent => {
            let inner = text.get(3..text.len().checked_sub(1)?)?;
            let mut out = String::new();
            unicode_unescape(inner, '"', escape, &mut out)?;
            for c in out.chars() {
                name.push(c)?;
            }
        }
        _ => return None,
    }
    Some(name)
}

/// The value of a string constant token. `escape` is the `UESCAPE`
/// character for `U&'...'` strings; `standard_conforming_strings` decides
/// whether backslashes escape in `'...'` and `N'...'`. Bit and hex strings
/// are not text and return `None`, as does anything malformed.
pub fn string_value(
    kind: TokenKind,
    text: &str,
    standard_conforming_strings: bool,
    escape: char,
) -> Option<Cow<'_, str>> {
    match kind {
        TokenKind::DollarString => {
            let tag_len = text.get(1..)?.find('$')? + 2;
            let body = text.get(tag_len..text.len().checked_sub(tag_len)?)?;
            Some(Cow::Borrowed(body))
        }
        TokenKind::String | TokenKind::NationalString => {
            let prefix = usize::from(kind == TokenKind::NationalString);
            quoted(text, prefix, Flavour::plain(standard_conforming_strings))
        }
        TokenKind::EscapeString => quoted(text, 1, Flavour::Backslash),
        TokenKind::UnicodeString => quoted(text, 2, Flavour::Unicode(escape)),
        _ => None,
    }
}

#[derive(Clone, Copy)]
enum Flavour {
    Standard,
    Backslash,
    Unicode(char),
}

impl Flavour {
    fn plain(standard_conforming_strings: bool) -> Flavour {
        if standard_conforming_strings {
            Flavour::Standard
        } else {
            Flavour::Backslash
        }
    }
}

/// Decodes a quoted literal that starts after `prefix` bytes, following
/// string continuation (`'a'\n'b'` is `ab`).
fn quoted(text: &str, prefix: usize, flavour: Flavour) -> Option<Cow<'_, str>> {
    let bytes = text.as_bytes();
    if bytes.get(prefix) != Some(&b'\'') {
        return None;
    }
    // Fast path: a single segment without any escape is its own value.
    let inner = text.get(prefix + 1..text.len().checked_sub(1)?)?;
    if text.ends_with('\'')
        && !inner.contains('\'')
        && match flavour {
            Flavour::Standard => true,
            Flavour::Backslash => !inner.contains('\\'),
            Flavour::Unicode(_) => false,
        }
    {
        return Some(Cow::Borrowed(inner));
    }
    let mut raw = Vec::with_capacity(text.len());
    let mut i = prefix + 1;
    let mut segment_start = i;
    let mut out = String::with_capacity(text.len());
    loop {
        let b = *bytes.get(i)?;
        match b {
            b'\\' if matches!(flavour, Flavour::Backslash) => {
                i = backslash_escape(bytes, i, &mut raw)?;
                continue;
            }
            b'\'' if bytes.get(i + 1) == Some(&b'\'') => {
                raw.push(b'\'');
                i += 2;
                continue;
            }
            b'\'' => {
                if let Flavour::Unicode(escape) = flavour {
                    let segment = std::str::from_utf8(&bytes[segment_start..i]).ok()?;
                    unicode_unescape(segment, '\'', escape, &mut out)?;
                } else {
                    out.push_str(std::str::from_utf8(&raw).ok()?);
                    raw.clear();
                }
                match continuation(bytes, i + 1) {
                    Some(q) => {
                        i = q + 1;
                        segment_start = i;
                    }
                    None => {
                        if i + 1 != bytes.len() {
                            return None;
                        }
                        return Some(Cow::Owned(out));
                    }
                }
            }
            _ => {
                raw.push(b);
                i += 1;
            }
        }
    }
}

/// One backslash escape of an `E'...'` string at `i`; appends the bytes it
/// stands for and returns the index after it.
fn backslash_escape(bytes: &[u8], i: usize, out: &mut Vec<u8>) -> Option<usize> {
    let c = *bytes.get(i + 1)?;
    let hex = |from: usize, max: usize| -> (u32, usize) {
        let mut value = 0u32;
        let mut n = 0;
        while n < max {
            match bytes.get(from + n).and_then(|b| (*b as char).to_digit(16)) {
                Some(d) => {
                    value = value * 16 + d;
                    n += 1;
                }
                None => break,
            }
        }
        (value, n)
    };
    let simple = |b: u8, out: &mut Vec<u8>| {
        out.push(b);
        Some(i + 2)
    };
    match c {
        b'b' => simple(8, out),
        b'f' => simple(12, out),
        b'n' => simple(b'\n', out),
        b'r' => simple(b'\r', out),
        b't' => simple(b'\t', out),
        b'0'..=b'7' => {
            let mut value = 0u32;
            let mut n = 0;
            while n < 3 {
                match bytes.get(i + 1 + n) {
                    Some(d @ b'0'..=b'7') => {
                        value = value * 8 + u32::from(d - b'0');
                        n += 1;
                    }
                    _ => break,
                }
            }
            if value == 0 || value > 255 {
                return None;
            }
            out.push(value as u8);
            Some(i + 1 + n)
        }
        b'x' => {
            let (value, n) = hex(i + 2, 2);
            if n == 0 {
                // `\x` without hex digits is just `x`.
                return simple(b'x', out);
            }
            if value == 0 {
                return None;
            }
            out.push(value as u8);
            Some(i + 2 + n)
        }
        b'u' | b'U' => {
            let digits = if c == b'u' { 4 } else { 8 };
            let (value, n) = hex(i + 2, digits);
            if n != digits {
                return None;
            }
            let ch = char::from_u32(value).filter(|&ch| ch != '\0')?;
            let mut tmp = [0u8; 4];
            out.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
            Some(i + 2 + n)
        }
        _ => {
            // Any other character stands for itself; copy the whole
            // (possibly multi-byte) character.
            let len = utf8_len(c);
            out.extend_from_slice(bytes.get(i + 1..i + 1 + len)?);
            Some(i + 1 + len)
        }
    }
}

fn utf8_len(lead: u8) -> usize {
    match lead {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

/// Decodes the body of a `U&` literal: `quote` doubled is one quote,
/// `escape` doubled is one escape, `escape` + 4 hex digits or `escape` `+`
/// 6 hex digits is a code point (surrogate pairs combined).
fn unicode_unescape(body: &str, quote: char, escape: char, out: &mut String) -> Option<()> {
    let chars: Vec<char> = body.chars().collect();
    let mut i = 0;
    let mut high: Option<u32> = None;
    while i < chars.len() {
        let c = chars[i];
        if c == escape {
            if chars.get(i + 1) == Some(&escape) {
                if high.is_some() {
                    return None;
                }
                out.push(escape);
                i += 2;
                continue;
            }
            let (start, digits) = if chars.get(i + 1) == Some(&'+') {
                (i + 2, 6)
            } else {
                (i + 1, 4)
            };
            let mut value = 0u32;
            for k in 0..digits {
                value = value * 16 + chars.get(start + k)?.to_digit(16)?;
            }
            i = start + digits;
            match (high.take(), value) {
                (None, 0xD800..=0xDBFF) => high = Some(value),
                (Some(h), 0xDC00..=0xDFFF) => {
                    let combined = 0x10000 + ((h - 0xD800) << 10) + (value - 0xDC00);
                    out.push(char::from_u32(combined)?);
                }
                (None, _) => out.push(char::from_u32(value).filter(|&ch| ch != '\0')?),
                (Some(_), _) => return None,
            }
            continue;
        }
        if high.is_some() {
            return None;
        }
        out.push(c);
        i += if c == quote && chars.get(i + 1) == Some(&quote) {
            2
        } else {
            1
        };
    }
    if high.is_some() {
        return None;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_decode_like_the_server() {
        let n = |k, t| ident_name(k, t, '\\').map(|n| n.as_str().to_owned());
        assert_eq!(n(TokenKind::Ident, "PG_Sleep").as_deref(), Some("pg_sleep"));
        assert_eq!(
            n(TokenKind::QuotedIdent, "\"A\"\"b\"").as_deref(),
            Some("A\"b")
        );
        assert_eq!(
            n(TokenKind::UnicodeIdent, r#"U&"pg\005Fsleep""#).as_deref(),
            Some("pg_sleep")
        );
        assert_eq!(
            ident_name(TokenKind::UnicodeIdent, r#"U&"!+00005F!!""#, '!')
                .unwrap()
                .as_str(),
            "_!"
        );
        assert!(n(TokenKind::UnicodeIdent, r#"U&"\12""#).is_none());
        assert!(n(TokenKind::Ident, &"a".repeat(65)).is_none());
    }

    #[test]
    fn strings_decode_like_the_server() {
        let v = |k, t, scs| string_value(k, t, scs, '\\').map(|c| c.into_owned());
        assert_eq!(
            v(TokenKind::String, "'it''s'", true).as_deref(),
            Some("it's")
        );
        assert_eq!(
            v(TokenKind::String, r"'a\n'", true).as_deref(),
            Some(r"a\n")
        );
        assert_eq!(
            v(TokenKind::String, r"'a\n'", false).as_deref(),
            Some("a\n")
        );
        assert_eq!(
            v(TokenKind::EscapeString, r"E'\x44ROP\047\u0020\101'", true).as_deref(),
            Some("DROP' A")
        );
        assert_eq!(v(TokenKind::EscapeString, r"E'\0'", true), None);
        assert_eq!(
            v(TokenKind::String, "'a'\n 'b'", true).as_deref(),
            Some("ab")
        );
        assert_eq!(
            v(TokenKind::UnicodeString, r"U&'\0044ROP'", true).as_deref(),
            Some("DROP")
        );
        assert_eq!(
            v(TokenKind::DollarString, "$x$ body $$ $x$", true).as_deref(),
            Some(" body $$ ")
        );
        assert_eq!(
            v(TokenKind::DollarString, "$$$$", true).as_deref(),
            Some("")
        );
        assert_eq!(v(TokenKind::HexString, "X'00'", true), None);
    }
}
