//! A bounds-checked reader over one message body.
//!
//! Every read either returns the requested bytes or a [`ParseError`] naming
//! the message tag and the field that did not fit, so parsers never index
//! into input and can never panic on malformed data.

use super::error::ParseError;

pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    tag: u8,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(tag: u8, buf: &'a [u8]) -> Self {
        Self { buf, tag }
    }

    pub(crate) fn tag(&self) -> u8 {
        self.tag
    }

    /// The bytes not read yet.
    pub(crate) fn remaining(&self) -> &'a [u8] {
        self.buf
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], ParseError> {
        match self.buf.split_first_chunk::<N>() {
            Some((head, rest)) => {
                self.buf = rest;
                Ok(*head)
            }
            None => Err(ParseError::UnexpectedEnd {
                tag: self.tag,
                field,
            }),
        }
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, ParseError> {
        self.array::<1>(field).map(|[b]| b)
    }

    pub(crate) fn i8(&mut self, field: &'static str) -> Result<i8, ParseError> {
        self.array::<1>(field).map(i8::from_be_bytes)
    }

    pub(crate) fn i16(&mut self, field: &'static str) -> Result<i16, ParseError> {
        self.array::<2>(field).map(i16::from_be_bytes)
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, ParseError> {
        self.array::<2>(field).map(u16::from_be_bytes)
    }

    pub(crate) fn i32(&mut self, field: &'static str) -> Result<i32, ParseError> {
        self.array::<4>(field).map(i32::from_be_bytes)
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, ParseError> {
        self.array::<4>(field).map(u32::from_be_bytes)
    }

    pub(crate) fn bytes(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], ParseError> {
        match self.buf.split_at_checked(n) {
            Some((head, rest)) => {
                self.buf = rest;
                Ok(head)
            }
            None => Err(ParseError::UnexpectedEnd {
                tag: self.tag,
                field,
            }),
        }
    }

    /// A NUL-terminated string, returned without its terminator.
    pub(crate) fn cstr(&mut self, field: &'static str) -> Result<&'a [u8], ParseError> {
        let Some(nul) = memchr::memchr(0, self.buf) else {
            return Err(ParseError::MissingNulTerminator {
                tag: self.tag,
                field,
            });
        };
        let (s, rest) = self
            .buf
            .split_at_checked(nul)
            .ok_or(ParseError::MissingNulTerminator {
                tag: self.tag,
                field,
            })?;
        // `rest` starts with the NUL found above; skip it.
        self.buf = rest.get(1..).unwrap_or_default();
        Ok(s)
    }

    /// A NUL-terminated string that must be valid UTF-8.
    pub(crate) fn cstr_utf8(&mut self, field: &'static str) -> Result<&'a str, ParseError> {
        let raw = self.cstr(field)?;
        std::str::from_utf8(raw).map_err(|_| ParseError::InvalidUtf8 {
            tag: self.tag,
            field,
        })
    }

    /// Everything left; the message ends here.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    /// Checks that the whole body was consumed. PostgreSQL rejects trailing
    /// bytes too (`pq_getmsgend`), and accepting them here would let a peer
    /// hide data that sluice never inspects but a later parser might.
    pub(crate) fn finish(self) -> Result<(), ParseError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(ParseError::TrailingBytes {
                tag: self.tag,
                count: self.buf.len(),
            })
        }
    }
}
