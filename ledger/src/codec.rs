//! Little-endian byte encoding helpers with bounds checks.

use crate::error::{Error, Result};

/// Appends little-endian values to a byte vector.
pub struct Encoder<'a> {
    pub out: &'a mut Vec<u8>,
}

impl<'a> Encoder<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Encoder { out }
    }
    pub fn u8(&mut self, value: u8) {
        self.out.push(value);
    }
    pub fn u16(&mut self, value: u16) {
        self.out.extend_from_slice(&value.to_le_bytes());
    }
    pub fn u32(&mut self, value: u32) {
        self.out.extend_from_slice(&value.to_le_bytes());
    }
    pub fn u64(&mut self, value: u64) {
        self.out.extend_from_slice(&value.to_le_bytes());
    }
    pub fn bytes(&mut self, value: &[u8]) {
        self.out.extend_from_slice(value);
    }
    /// u32 length then the bytes. The caller has checked the bound.
    pub fn sized(&mut self, value: &[u8]) {
        assert!(
            value.len() <= u32::MAX as usize,
            "sized field longer than u32::MAX"
        );
        self.u32(value.len() as u32);
        self.bytes(value);
    }
}

/// Reads little-endian values from a byte slice, never panicking.
pub struct Decoder<'a> {
    bytes: &'a [u8],
    position: usize,
    what: &'static str,
}

impl<'a> Decoder<'a> {
    pub fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Decoder {
            bytes,
            position: 0,
            what,
        }
    }
    pub fn position(&self) -> usize {
        self.position
    }
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.position
    }
    pub fn take(&mut self, count: usize) -> Result<&'a [u8]> {
        if self.remaining() < count {
            return Err(Error::Truncated {
                what: self.what,
                needed: count as u64,
                available: self.remaining() as u64,
            });
        }
        let slice = &self.bytes[self.position..self.position + count];
        self.position += count;
        Ok(slice)
    }
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let slice = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    /// u32 length (bounded by `bytes_max`) then that many bytes.
    pub fn sized(&mut self, field: &'static str, bytes_max: usize) -> Result<&'a [u8]> {
        let length = self.u32()? as usize;
        if length > bytes_max {
            return Err(Error::limit(field, length as u64, bytes_max as u64));
        }
        self.take(length)
    }
    pub fn text(&mut self, field: &'static str, bytes_max: usize) -> Result<String> {
        let raw = self.sized(field, bytes_max)?;
        String::from_utf8(raw.to_vec()).map_err(|_| Error::invalid(field, "not valid UTF-8"))
    }
    pub fn finish(&self) -> Result<()> {
        if self.remaining() != 0 {
            return Err(Error::TrailingBytes {
                what: self.what,
                count: self.remaining() as u64,
            });
        }
        Ok(())
    }
}
