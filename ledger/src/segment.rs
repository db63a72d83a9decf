//! Segment files: header, frames, record blocks, seals. Byte layouts are in `FORMAT.md`.

use crate::codec::{Decoder, Encoder};
use crate::error::{Error, Location, Result};
use crate::limits::{
    BLOCK_RECORDS_MAX, BLOCK_UNCOMPRESSED_BYTES_MAX, FRAME_BODY_BYTES_MAX, ORIGIN_BYTES_MAX,
    TEXT_FIELD_BYTES_MAX,
};
use crate::merkle::Hash;
use crate::record::{payload_hash, Descriptor, SALT_BYTES};
use sha2::{Digest, Sha256};

pub const MAGIC: &[u8; 8] = b"SLUICELG";
pub const FORMAT_VERSION: u16 = 1;
pub const HEADER_BYTES: usize = 384;
const HEADER_ORIGIN_OFFSET: usize = 72;
const HEADER_CRC_OFFSET: usize = HEADER_BYTES - 4;
pub const FRAME_HEADER_BYTES: usize = 16;

/// Frame kinds.
pub mod frame_kind {
    pub const RECORD_BLOCK: u8 = 1;
    pub const CHECKPOINT: u8 = 2;
    pub const SEAL: u8 = 3;
}

/// Block compression methods.
pub mod compression {
    pub const NONE: u8 = 0;
    pub const ZSTD: u8 = 1;
}

/// Record storage forms inside a block.
pub mod storage_form {
    pub const PAYLOAD: u8 = 0;
    pub const REDACTED: u8 = 1;
}

pub const SEGMENT_PREFIX: &str = "segment-";
pub const SEGMENT_SUFFIX: &str = ".log";

/// `segment-<20-digit sequence>.log`
pub fn segment_file_name(sequence: u64) -> String {
    format!("{SEGMENT_PREFIX}{sequence:020}{SEGMENT_SUFFIX}")
}

/// The sequence number in a segment file name, if it is one.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name
        .strip_prefix(SEGMENT_PREFIX)?
        .strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    pub sequence: u64,
    pub first_index: u64,
    pub created_at_ns: u64,
    pub previous_link: Hash,
    pub origin: String,
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; HEADER_BYTES] {
        assert!(
            !self.origin.is_empty() && self.origin.len() <= ORIGIN_BYTES_MAX,
            "origin length out of bounds"
        );
        assert!(self.sequence >= 1, "segment sequence numbers start at 1");
        let mut out = [0u8; HEADER_BYTES];
        out[0..8].copy_from_slice(MAGIC);
        out[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[10..12].copy_from_slice(&(HEADER_BYTES as u16).to_le_bytes());
        // 12..16 flags: zero
        out[16..24].copy_from_slice(&self.sequence.to_le_bytes());
        out[24..32].copy_from_slice(&self.first_index.to_le_bytes());
        out[32..40].copy_from_slice(&self.created_at_ns.to_le_bytes());
        out[40..72].copy_from_slice(&self.previous_link);
        out[HEADER_ORIGIN_OFFSET] = self.origin.len() as u8;
        out[HEADER_ORIGIN_OFFSET + 1..HEADER_ORIGIN_OFFSET + 1 + self.origin.len()]
            .copy_from_slice(self.origin.as_bytes());
        let crc = crc32fast::hash(&out[..HEADER_CRC_OFFSET]);
        out[HEADER_CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8], file: &str) -> Result<Self> {
        let location = Location {
            file: file.to_string(),
            offset: 0,
        };
        if bytes.len() < HEADER_BYTES {
            return Err(Error::Tampered {
                location,
                reason: format!(
                    "segment header is truncated ({} of {HEADER_BYTES} bytes)",
                    bytes.len()
                ),
            });
        }
        let header = &bytes[..HEADER_BYTES];
        let stored = u32::from_le_bytes(header[HEADER_CRC_OFFSET..].try_into().unwrap());
        let computed = crc32fast::hash(&header[..HEADER_CRC_OFFSET]);
        if stored != computed {
            return Err(Error::CrcMismatch {
                location,
                what: "segment header",
                stored,
                computed,
            });
        }
        if &header[0..8] != MAGIC {
            return Err(Error::BadMagic { location });
        }
        let version = u16::from_le_bytes([header[8], header[9]]);
        if version != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion { location, version });
        }
        let header_length = u16::from_le_bytes([header[10], header[11]]);
        if header_length as usize != HEADER_BYTES || header[12..16] != [0; 4] {
            return Err(Error::Tampered {
                location,
                reason: "segment header length or flags are not the version 1 values".into(),
            });
        }
        let u64_at = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().unwrap());
        let origin_length = header[HEADER_ORIGIN_OFFSET] as usize;
        let origin_bytes =
            &header[HEADER_ORIGIN_OFFSET + 1..HEADER_ORIGIN_OFFSET + 1 + origin_length];
        let padding = &header[HEADER_ORIGIN_OFFSET + 1 + origin_length..HEADER_CRC_OFFSET];
        if origin_length == 0 || padding.iter().any(|&b| b != 0) {
            return Err(Error::Tampered {
                location,
                reason: "segment header origin is empty or its padding is not zero".into(),
            });
        }
        let origin = std::str::from_utf8(origin_bytes).map_err(|_| Error::Tampered {
            location: location.clone(),
            reason: "segment header origin is not UTF-8".into(),
        })?;
        let sequence = u64_at(16);
        if sequence == 0 {
            return Err(Error::Tampered {
                location,
                reason: "segment sequence number 0".into(),
            });
        }
        Ok(SegmentHeader {
            sequence,
            first_index: u64_at(24),
            created_at_ns: u64_at(32),
            previous_link: header[40..72].try_into().unwrap(),
            origin: origin.to_string(),
        })
    }
}

/// Hash of a header's bytes, committed to by the seal.
pub fn header_hash(header: &[u8; HEADER_BYTES]) -> Hash {
    Sha256::digest(header).into()
}

fn crc_seed(segment_sequence: u64, offset: u64) -> crc32fast::Hasher {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&segment_sequence.to_le_bytes());
    hasher.update(&offset.to_le_bytes());
    hasher
}

/// Appends a frame (16-byte header then body) that will sit at `offset` of segment `segment_sequence`.
pub fn encode_frame(out: &mut Vec<u8>, segment_sequence: u64, offset: u64, kind: u8, body: &[u8]) {
    assert!(
        body.len() <= FRAME_BODY_BYTES_MAX,
        "frame body above FRAME_BODY_BYTES_MAX"
    );
    let mut header = [0u8; FRAME_HEADER_BYTES];
    header[0..4].copy_from_slice(&(body.len() as u32).to_le_bytes());
    header[4] = kind;
    let mut hasher = crc_seed(segment_sequence, offset);
    hasher.update(&header[0..8]);
    header[8..12].copy_from_slice(&hasher.finalize().to_le_bytes());
    let mut hasher = crc_seed(segment_sequence, offset);
    hasher.update(&header[0..12]);
    hasher.update(body);
    header[12..16].copy_from_slice(&hasher.finalize().to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(body);
}

/// Why a frame could not be read at an offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameDefect {
    /// Fewer than 16 bytes remain.
    HeaderTruncated,
    HeaderCrc {
        stored: u32,
        computed: u32,
    },
    /// Length, kind or reserved bytes are invalid although the header CRC matched.
    HeaderInvalid(String),
    BodyTruncated {
        needed: u64,
        available: u64,
    },
    FrameCrc {
        stored: u32,
        computed: u32,
    },
}

impl std::fmt::Display for FrameDefect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameDefect::HeaderTruncated => write!(f, "frame header is truncated"),
            FrameDefect::HeaderCrc { stored, computed } => {
                write!(
                    f,
                    "frame header CRC mismatch (stored {stored:08x}, computed {computed:08x})"
                )
            }
            FrameDefect::HeaderInvalid(reason) => write!(f, "frame header is invalid: {reason}"),
            FrameDefect::BodyTruncated { needed, available } => {
                write!(
                    f,
                    "frame body is truncated (needs {needed} bytes, {available} available)"
                )
            }
            FrameDefect::FrameCrc { stored, computed } => {
                write!(
                    f,
                    "frame CRC mismatch (stored {stored:08x}, computed {computed:08x})"
                )
            }
        }
    }
}

/// Reads the frame at `offset` of `segment` (the whole file). Checks the header CRC before trusting the length.
pub fn read_frame(
    segment: &[u8],
    segment_sequence: u64,
    offset: usize,
) -> std::result::Result<(u8, &[u8]), FrameDefect> {
    let remaining = segment.len().saturating_sub(offset);
    if remaining < FRAME_HEADER_BYTES {
        return Err(FrameDefect::HeaderTruncated);
    }
    let header = &segment[offset..offset + FRAME_HEADER_BYTES];
    let mut hasher = crc_seed(segment_sequence, offset as u64);
    hasher.update(&header[0..8]);
    let computed = hasher.finalize();
    let stored = u32::from_le_bytes(header[8..12].try_into().unwrap());
    if stored != computed {
        return Err(FrameDefect::HeaderCrc { stored, computed });
    }
    let length = u32::from_le_bytes(header[0..4].try_into().unwrap()) as usize;
    let kind = header[4];
    if length > FRAME_BODY_BYTES_MAX {
        return Err(FrameDefect::HeaderInvalid(format!(
            "body length {length} above the limit {FRAME_BODY_BYTES_MAX}"
        )));
    }
    if !(frame_kind::RECORD_BLOCK..=frame_kind::SEAL).contains(&kind) {
        return Err(FrameDefect::HeaderInvalid(format!(
            "unknown frame kind {kind}"
        )));
    }
    if header[5..8] != [0, 0, 0] {
        return Err(FrameDefect::HeaderInvalid(
            "flags or reserved bytes are not zero".into(),
        ));
    }
    let available = remaining - FRAME_HEADER_BYTES;
    if length > available {
        return Err(FrameDefect::BodyTruncated {
            needed: length as u64,
            available: available as u64,
        });
    }
    let body = &segment[offset + FRAME_HEADER_BYTES..offset + FRAME_HEADER_BYTES + length];
    let mut hasher = crc_seed(segment_sequence, offset as u64);
    hasher.update(&header[0..12]);
    hasher.update(body);
    let computed = hasher.finalize();
    let stored = u32::from_le_bytes(header[12..16].try_into().unwrap());
    if stored != computed {
        return Err(FrameDefect::FrameCrc { stored, computed });
    }
    Ok((kind, body))
}

/// Is there any intact frame starting after `offset`? (Distinguishes a torn tail from damage in the middle.)
pub fn intact_frame_after(segment: &[u8], segment_sequence: u64, offset: usize) -> Option<usize> {
    (offset + 1..segment.len().saturating_sub(FRAME_HEADER_BYTES - 1))
        .find(|&q| read_frame(segment, segment_sequence, q).is_ok())
}

pub const BLOCK_HEADER_BYTES: usize = 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockHeader {
    pub first_index: u64,
    pub record_count: u32,
    pub uncompressed_bytes: u32,
    pub compression: u8,
}

pub fn encode_block_header(out: &mut Vec<u8>, header: &BlockHeader) {
    let mut e = Encoder::new(out);
    e.u64(header.first_index);
    e.u32(header.record_count);
    e.u32(header.uncompressed_bytes);
    e.u8(header.compression);
    e.bytes(&[0, 0, 0]);
}

/// Decodes a block frame body into its header and uncompressed entries, enforcing the declared size.
pub fn decode_block<'a>(
    body: &'a [u8],
    location: &Location,
    scratch: &'a mut Vec<u8>,
    decompressor: &mut Option<zstd::bulk::Decompressor<'static>>,
) -> Result<(BlockHeader, &'a [u8])> {
    let bad = |reason: String| Error::Decompression {
        location: location.clone(),
        reason,
    };
    let mut d = Decoder::new(body, "block header");
    let header = BlockHeader {
        first_index: d.u64()?,
        record_count: d.u32()?,
        uncompressed_bytes: d.u32()?,
        compression: d.u8()?,
    };
    if d.array::<3>()? != [0, 0, 0] {
        return Err(bad("reserved bytes are not zero".into()));
    }
    if header.record_count == 0 || header.record_count as usize > BLOCK_RECORDS_MAX {
        return Err(bad(format!(
            "record count {} outside 1..={BLOCK_RECORDS_MAX}",
            header.record_count
        )));
    }
    let declared = header.uncompressed_bytes as usize;
    if declared > BLOCK_UNCOMPRESSED_BYTES_MAX {
        return Err(bad(format!(
            "declared size {declared} above the limit {BLOCK_UNCOMPRESSED_BYTES_MAX}"
        )));
    }
    let data = &body[BLOCK_HEADER_BYTES..];
    match header.compression {
        compression::NONE => {
            if data.len() != declared {
                return Err(bad(format!(
                    "stored size {} differs from the declared size {declared}",
                    data.len()
                )));
            }
            Ok((header, data))
        }
        compression::ZSTD => {
            // Exactly one zstd frame, whose own content size equals the declared size.
            let frame_size = zstd::zstd_safe::find_frame_compressed_size(data)
                .map_err(|_| bad("not a zstd frame".into()))?;
            if frame_size != data.len() {
                return Err(bad("trailing bytes after the zstd frame".into()));
            }
            match zstd::zstd_safe::get_frame_content_size(data) {
                Ok(Some(size)) if size == declared as u64 => {}
                Ok(Some(size)) => {
                    return Err(bad(format!(
                        "zstd frame declares {size} bytes, block header declares {declared}"
                    )))
                }
                _ => return Err(bad("zstd frame does not declare its content size".into())),
            }
            scratch.clear();
            scratch.reserve_exact(declared);
            if decompressor.is_none() {
                *decompressor =
                    Some(zstd::bulk::Decompressor::new().map_err(|e| bad(format!("zstd: {e}")))?);
            }
            let z = decompressor.as_mut().expect("created above");
            let written = z
                .decompress_to_buffer(data, scratch)
                .map_err(|e| bad(format!("zstd: {e}")))?;
            if written != declared {
                return Err(bad(format!(
                    "decompressed {written} bytes, declared {declared}"
                )));
            }
            Ok((header, &scratch[..]))
        }
        other => Err(bad(format!("unknown compression method {other}"))),
    }
}

/// One record entry of a block, borrowed from the decompressed bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoredPayload<'a> {
    Present {
        salt: [u8; SALT_BYTES],
        payload: &'a [u8],
    },
    Redacted(Tombstone),
}

/// What remains of a redacted payload: its hash and a signed statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tombstone {
    pub payload_hash: Hash,
    pub redacted_at_ns: u64,
    pub reason: String,
    pub key_id: [u8; 4],
    pub signature: [u8; 64],
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    pub descriptor: Descriptor,
    pub payload: StoredPayload<'a>,
}

impl Entry<'_> {
    pub fn payload_hash(&self) -> Hash {
        match &self.payload {
            StoredPayload::Present { salt, payload } => payload_hash(salt, payload),
            StoredPayload::Redacted(tombstone) => tombstone.payload_hash,
        }
    }
}

/// Bytes of an entry's fixed part before the payload: length, form, descriptor, salt.
pub const ENTRY_PREFIX_BYTES: usize = 4 + 1 + crate::record::DESCRIPTOR_BYTES + SALT_BYTES;

/// Decodes the next entry.
pub fn decode_entry<'a>(d: &mut Decoder<'a>) -> Result<Entry<'a>> {
    let length = d.u32()? as usize;
    let raw = d.take(length)?;
    let mut e = Decoder::new(raw, "record entry");
    let form = e.u8()?;
    let descriptor = Descriptor::decode(&mut e)?;
    let payload = match form {
        storage_form::PAYLOAD => {
            let salt = e.array()?;
            let payload = e.take(descriptor.payload_length_bytes as usize)?;
            StoredPayload::Present { salt, payload }
        }
        storage_form::REDACTED => StoredPayload::Redacted(Tombstone {
            payload_hash: e.array()?,
            redacted_at_ns: e.u64()?,
            reason: e.text("redaction reason length in bytes", TEXT_FIELD_BYTES_MAX)?,
            key_id: e.array()?,
            signature: e.array()?,
        }),
        other => {
            return Err(Error::invalid(
                "record storage form",
                format!("unknown form {other}"),
            ))
        }
    };
    e.finish()?;
    Ok(Entry {
        descriptor,
        payload,
    })
}

/// Encodes an entry with its payload present; returns the payload's byte range inside `out`.
pub fn encode_entry_present(
    out: &mut Vec<u8>,
    descriptor: &Descriptor,
    salt: &[u8; SALT_BYTES],
    payload: &[u8],
) {
    let length = 1 + crate::record::DESCRIPTOR_BYTES + SALT_BYTES + payload.len();
    let mut e = Encoder::new(out);
    e.u32(length as u32);
    e.u8(storage_form::PAYLOAD);
    descriptor.encode(e.out);
    out.extend_from_slice(salt);
    out.extend_from_slice(payload);
}

pub fn encode_entry_redacted(out: &mut Vec<u8>, descriptor: &Descriptor, tombstone: &Tombstone) {
    let mut body = Vec::new();
    body.push(storage_form::REDACTED);
    descriptor.encode(&mut body);
    let mut e = Encoder::new(&mut body);
    e.bytes(&tombstone.payload_hash);
    e.u64(tombstone.redacted_at_ns);
    e.sized(tombstone.reason.as_bytes());
    e.bytes(&tombstone.key_id);
    e.bytes(&tombstone.signature);
    Encoder::new(out).sized(&body);
}

/// The message a tombstone's signature covers.
pub fn tombstone_message(
    origin: &str,
    index: u64,
    leaf_hash: &Hash,
    redacted_at_ns: u64,
    reason: &str,
) -> Vec<u8> {
    let mut out = b"sluice-ledger/tombstone/v1\n".to_vec();
    let mut e = Encoder::new(&mut out);
    e.sized(origin.as_bytes());
    e.u64(index);
    e.bytes(leaf_hash);
    e.u64(redacted_at_ns);
    e.sized(reason.as_bytes());
    out
}

/// The fixed, signed part of a seal frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealStatement {
    pub segment_sequence: u64,
    pub first_index: u64,
    pub record_count: u64,
    pub tree_size: u64,
    pub root: Hash,
    pub header_hash: Hash,
    pub sealed_at_ns: u64,
}

pub const SEAL_STATEMENT_BYTES: usize = 8 * 4 + 32 + 32 + 8;

impl SealStatement {
    pub fn encode(&self) -> [u8; SEAL_STATEMENT_BYTES] {
        let mut out = Vec::with_capacity(SEAL_STATEMENT_BYTES);
        let mut e = Encoder::new(&mut out);
        e.u64(self.segment_sequence);
        e.u64(self.first_index);
        e.u64(self.record_count);
        e.u64(self.tree_size);
        e.bytes(&self.root);
        e.bytes(&self.header_hash);
        e.u64(self.sealed_at_ns);
        out.try_into().expect("seal statement size")
    }
    pub fn decode(d: &mut Decoder) -> Result<Self> {
        Ok(SealStatement {
            segment_sequence: d.u64()?,
            first_index: d.u64()?,
            record_count: d.u64()?,
            tree_size: d.u64()?,
            root: d.array()?,
            header_hash: d.array()?,
            sealed_at_ns: d.u64()?,
        })
    }
    /// The message the seal signature covers.
    pub fn signed_message(&self, origin: &str) -> Vec<u8> {
        let mut out = b"sluice-ledger/seal/v1\n".to_vec();
        Encoder::new(&mut out).sized(origin.as_bytes());
        out.extend_from_slice(&self.encode());
        out
    }
    /// The link the next segment's header carries.
    pub fn link(&self) -> Hash {
        let mut hasher = Sha256::new();
        hasher.update(b"sluice-ledger/segment-link/v1\n");
        hasher.update(self.encode());
        hasher.finalize().into()
    }
}

/// A decoded seal frame body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seal {
    pub statement: SealStatement,
    pub key_id: [u8; 4],
    pub signature: [u8; 64],
    /// The signed checkpoint at the seal, verbatim.
    pub checkpoint_note: Vec<u8>,
}

impl Seal {
    pub fn encode(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(SEAL_STATEMENT_BYTES + 68 + 4 + self.checkpoint_note.len());
        out.extend_from_slice(&self.statement.encode());
        out.extend_from_slice(&self.key_id);
        out.extend_from_slice(&self.signature);
        Encoder::new(&mut out).sized(&self.checkpoint_note);
        out
    }
    pub fn decode(body: &[u8]) -> Result<Self> {
        let mut d = Decoder::new(body, "seal");
        let statement = SealStatement::decode(&mut d)?;
        let key_id = d.array()?;
        let signature = d.array()?;
        let checkpoint_note = d
            .sized(
                "seal checkpoint length in bytes",
                crate::limits::NOTE_BYTES_MAX,
            )?
            .to_vec();
        d.finish()?;
        Ok(Seal {
            statement,
            key_id,
            signature,
            checkpoint_note,
        })
    }
}
