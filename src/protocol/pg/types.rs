//! Small value types and the borrowing iterators shared by the frontend and
//! backend parsers.
//!
//! The iterators are produced only after the parser has walked and validated
//! the region they cover, so their `next` never fails in practice; should the
//! invariant ever break they stop early instead of panicking.

use super::cursor::Cursor;
use super::error::ParseError;

/// Reads a big-endian Int16 from the start of a chunk that the caller knows
/// holds at least two bytes (`chunks_exact(2)`); returns 0 otherwise.
fn be_i16(chunk: &[u8]) -> i16 {
    chunk
        .split_first_chunk::<2>()
        .map_or(0, |(head, _)| i16::from_be_bytes(*head))
}

/// Format of a parameter, column or function value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FormatCode {
    Text,
    Binary,
}

impl FormatCode {
    pub fn from_i16(code: i16) -> Option<Self> {
        match code {
            0 => Some(Self::Text),
            1 => Some(Self::Binary),
            _ => None,
        }
    }

    pub fn as_i16(self) -> i16 {
        match self {
            Self::Text => 0,
            Self::Binary => 1,
        }
    }
}

/// Target of Describe and Close.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetKind {
    Statement,
    Portal,
}

impl TargetKind {
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            b'S' => Some(Self::Statement),
            b'P' => Some(Self::Portal),
            _ => None,
        }
    }

    pub fn as_byte(self) -> u8 {
        match self {
            Self::Statement => b'S',
            Self::Portal => b'P',
        }
    }
}

/// Transaction status carried by ReadyForQuery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransactionStatus {
    /// `I`: not in a transaction block.
    Idle,
    /// `T`: in a transaction block.
    InTransaction,
    /// `E`: in a failed transaction block; queries are rejected until the
    /// block ends.
    Failed,
}

impl TransactionStatus {
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            b'I' => Some(Self::Idle),
            b'T' => Some(Self::InTransaction),
            b'E' => Some(Self::Failed),
            _ => None,
        }
    }

    pub fn as_byte(self) -> u8 {
        match self {
            Self::Idle => b'I',
            Self::InTransaction => b'T',
            Self::Failed => b'E',
        }
    }
}

/// A validated array of Int16 format codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormatCodes<'a> {
    raw: &'a [u8],
}

impl<'a> FormatCodes<'a> {
    /// Reads `count` format codes and rejects any code other than 0 or 1.
    pub(crate) fn read(
        cur: &mut Cursor<'a>,
        count: u16,
        field: &'static str,
    ) -> Result<Self, ParseError> {
        let raw = cur.bytes(usize::from(count) * 2, field)?;
        for pair in raw.chunks_exact(2) {
            let code = be_i16(pair);
            if FormatCode::from_i16(code).is_none() {
                return Err(ParseError::InvalidFormatCode {
                    tag: cur.tag(),
                    code,
                });
            }
        }
        Ok(Self { raw })
    }

    pub fn len(&self) -> usize {
        self.raw.len() / 2
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    pub fn get(&self, index: usize) -> Option<FormatCode> {
        let start = index.checked_mul(2)?;
        let pair = self.raw.get(start..start.checked_add(2)?)?;
        let (head, _) = pair.split_first_chunk::<2>()?;
        FormatCode::from_i16(i16::from_be_bytes(*head))
    }

    /// The format that applies to value `index` under the Bind/FunctionCall
    /// rule: no codes means all text, one code applies to every value,
    /// otherwise there is one code per value.
    pub fn for_value(&self, index: usize) -> FormatCode {
        match self.len() {
            0 => FormatCode::Text,
            1 => self.get(0).unwrap_or(FormatCode::Text),
            _ => self.get(index).unwrap_or(FormatCode::Text),
        }
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = FormatCode> + 'a {
        let raw = self.raw;
        raw.chunks_exact(2).map(|pair| {
            let code = be_i16(pair);
            FormatCode::from_i16(code).unwrap_or(FormatCode::Text)
        })
    }

    /// The raw wire bytes (2 per code).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }
}

/// A validated array of Int32 type OIDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Oids<'a> {
    raw: &'a [u8],
}

impl<'a> Oids<'a> {
    pub(crate) fn read(
        cur: &mut Cursor<'a>,
        count: u16,
        field: &'static str,
    ) -> Result<Self, ParseError> {
        let raw = cur.bytes(usize::from(count) * 4, field)?;
        Ok(Self { raw })
    }

    pub fn len(&self) -> usize {
        self.raw.len() / 4
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    pub fn get(&self, index: usize) -> Option<u32> {
        let start = index.checked_mul(4)?;
        let quad = self.raw.get(start..start.checked_add(4)?)?;
        let (head, _) = quad.split_first_chunk::<4>()?;
        Some(u32::from_be_bytes(*head))
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = u32> + 'a {
        self.raw
            .chunks_exact(4)
            .map(|quad| match quad.split_first_chunk::<4>() {
                Some((head, _)) => u32::from_be_bytes(*head),
                None => 0,
            })
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }
}

/// Length-prefixed values (Bind parameters, FunctionCall arguments, DataRow
/// columns). A length of -1 is SQL NULL and yields `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Values<'a> {
    raw: &'a [u8],
    remaining: u16,
}

impl<'a> Values<'a> {
    /// Walks `count` values once, checking every length against the bytes
    /// actually present, so that iteration afterwards cannot go out of
    /// bounds.
    pub(crate) fn read(
        cur: &mut Cursor<'a>,
        count: u16,
        field: &'static str,
    ) -> Result<Self, ParseError> {
        let start = cur.remaining();
        for _ in 0..count {
            let length = cur.i32(field)?;
            if length == -1 {
                continue;
            }
            let Ok(length) = usize::try_from(length) else {
                return Err(ParseError::InvalidValueLength {
                    tag: cur.tag(),
                    length,
                });
            };
            cur.bytes(length, field)?;
        }
        let used = start.len() - cur.remaining().len();
        let raw = start.get(..used).unwrap_or_default();
        Ok(Self {
            raw,
            remaining: count,
        })
    }

    /// An empty list, used for messages that carry no values.
    pub fn empty() -> Self {
        Self {
            raw: &[],
            remaining: 0,
        }
    }

    /// The raw wire bytes of all values (length words included).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }
}

impl<'a> Iterator for Values<'a> {
    type Item = Option<&'a [u8]>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        let (len, rest) = self.raw.split_first_chunk::<4>()?;
        let len = i32::from_be_bytes(*len);
        self.remaining -= 1;
        if len < 0 {
            self.raw = rest;
            return Some(None);
        }
        let (value, rest) = rest.split_at_checked(usize::try_from(len).ok()?)?;
        self.raw = rest;
        Some(Some(value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::from(self.remaining);
        (n, Some(n))
    }
}

impl ExactSizeIterator for Values<'_> {}

/// A validated list of NUL-terminated UTF-8 strings (SASL mechanisms,
/// unrecognized protocol options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StrList<'a> {
    /// The strings, each followed by its NUL; UTF-8 checked at parse time.
    raw: &'a str,
    remaining: usize,
}

impl<'a> StrList<'a> {
    pub(crate) fn new(raw: &'a str, count: usize) -> Self {
        Self {
            raw,
            remaining: count,
        }
    }

    pub fn as_str(&self) -> &'a str {
        self.raw
    }
}

impl<'a> Iterator for StrList<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.remaining == 0 {
            return None;
        }
        let (s, rest) = self.raw.split_once('\0')?;
        self.raw = rest;
        self.remaining -= 1;
        Some(s)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for StrList<'_> {}
