//! Redaction for retention: replace the payloads of one session's records in
//! sealed segments by signed tombstones. Leaves (descriptor + payload hash)
//! do not change, so every root, checkpoint, seal, link and proof stays valid.
//!
//! Run it while no writer has the ledger open (it rewrites whole sealed
//! segments: write a temporary file, fsync, rename over, fsync the directory).

use crate::codec::Decoder;
use crate::error::{Error, Location, Result};
use crate::keys::SignerKey;
use crate::merkle::Hash;
use crate::reader::list_segments;
use crate::record::{payload_hash, record_leaf_hash, SessionId};
use crate::segment::{
    compression, decode_block, decode_entry, encode_block_header, encode_entry_present,
    encode_entry_redacted, encode_frame, frame_kind, read_frame, tombstone_message, BlockHeader,
    Seal, SegmentHeader, StoredPayload, Tombstone, HEADER_BYTES,
};
use crate::storage::Storage;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RedactionReport {
    pub segments_rewritten: u64,
    pub records_redacted: u64,
    /// Records of the session in the last, unsealed segment (not redacted yet).
    pub records_left_in_open_segment: u64,
}

fn temporary_name(sequence: u64) -> String {
    format!("redact-{sequence:020}.tmp")
}

/// Redacts every payload of `session` in sealed segments.
pub fn redact_session(
    storage: &dyn Storage,
    key: &SignerKey,
    session: SessionId,
    reason: &str,
    now_ns: u64,
) -> Result<RedactionReport> {
    if reason.len() > crate::limits::TEXT_FIELD_BYTES_MAX {
        return Err(Error::limit(
            "redaction reason length in bytes",
            reason.len() as u64,
            crate::limits::TEXT_FIELD_BYTES_MAX as u64,
        ));
    }
    let mut report = RedactionReport::default();
    for (sequence, name) in list_segments(storage)? {
        let bytes = storage
            .read(&name)
            .map_err(|e| Error::io(format!("reading {name}"), e))?;
        let header = SegmentHeader::decode(&bytes, &name)?;
        let mut output = bytes[..HEADER_BYTES].to_vec();
        let mut offset = HEADER_BYTES;
        let mut redacted_here = 0u64;
        let mut sealed = false;
        let mut scratch = Vec::new();
        let mut decompressor = None;
        let mut compressor = zstd::bulk::Compressor::new(1)
            .map_err(|e| Error::io("creating the zstd compressor", e))?;
        while offset < bytes.len() {
            if crate::reader::all_zero(&bytes[offset..]) {
                // Preallocated space at the end of the open segment: the
                // rewritten file simply ends with its last frame.
                break;
            }
            let location = Location {
                file: name.clone(),
                offset: offset as u64,
            };
            let (kind, body) =
                read_frame(&bytes, sequence, offset).map_err(|defect| Error::Tampered {
                    location: location.clone(),
                    reason: defect.to_string(),
                })?;
            let new_offset = output.len() as u64;
            if kind == frame_kind::RECORD_BLOCK {
                let (block, entries) =
                    decode_block(body, &location, &mut scratch, &mut decompressor)?;
                let mut decoder = Decoder::new(entries, "block entries");
                let mut rebuilt = Vec::with_capacity(entries.len());
                let mut changed = false;
                for i in 0..block.record_count as u64 {
                    let entry = decode_entry(&mut decoder)?;
                    let index = block.first_index + i;
                    match &entry.payload {
                        StoredPayload::Present { salt, payload }
                            if entry.descriptor.session == session =>
                        {
                            let hash: Hash = payload_hash(salt, payload);
                            let leaf = record_leaf_hash(&entry.descriptor, &hash);
                            let message =
                                tombstone_message(&header.origin, index, &leaf, now_ns, reason);
                            let tombstone = Tombstone {
                                payload_hash: hash,
                                redacted_at_ns: now_ns,
                                reason: reason.to_string(),
                                key_id: key.id,
                                signature: key.sign(&message),
                            };
                            encode_entry_redacted(&mut rebuilt, &entry.descriptor, &tombstone);
                            assert_eq!(
                                record_leaf_hash(&entry.descriptor, &tombstone.payload_hash),
                                leaf,
                                "redaction keeps the leaf"
                            );
                            changed = true;
                            redacted_here += 1;
                        }
                        StoredPayload::Present { salt, payload } => {
                            encode_entry_present(&mut rebuilt, &entry.descriptor, salt, payload)
                        }
                        StoredPayload::Redacted(tombstone) => {
                            encode_entry_redacted(&mut rebuilt, &entry.descriptor, tombstone)
                        }
                    }
                }
                decoder.finish()?;
                if changed {
                    let compressed = compressor
                        .compress(&rebuilt)
                        .map_err(|e| Error::io("compressing a block", e))?;
                    let use_zstd = compressed.len() < rebuilt.len();
                    let mut new_body = Vec::new();
                    encode_block_header(
                        &mut new_body,
                        &BlockHeader {
                            first_index: block.first_index,
                            record_count: block.record_count,
                            uncompressed_bytes: rebuilt.len() as u32,
                            compression: if use_zstd {
                                compression::ZSTD
                            } else {
                                compression::NONE
                            },
                        },
                    );
                    new_body.extend_from_slice(if use_zstd { &compressed } else { &rebuilt });
                    encode_frame(&mut output, sequence, new_offset, kind, &new_body);
                } else {
                    encode_frame(&mut output, sequence, new_offset, kind, body);
                }
            } else {
                if kind == frame_kind::SEAL {
                    Seal::decode(body)?;
                    sealed = true;
                }
                encode_frame(&mut output, sequence, new_offset, kind, body);
            }
            offset += crate::segment::FRAME_HEADER_BYTES + body.len();
        }
        if !sealed {
            report.records_left_in_open_segment += redacted_here;
            continue;
        }
        if redacted_here == 0 {
            continue;
        }
        let temporary = temporary_name(sequence);
        if storage
            .exists(&temporary)
            .map_err(|e| Error::io(format!("checking {temporary}"), e))?
        {
            storage
                .remove(&temporary)
                .map_err(|e| Error::io(format!("removing {temporary}"), e))?;
        }
        let mut file = storage
            .create_new(&temporary)
            .map_err(|e| Error::io(format!("creating {temporary}"), e))?;
        file.write_at(0, &output)
            .map_err(|e| Error::io(format!("writing {temporary}"), e))?;
        file.sync().map_err(|e| Error::SyncFailed {
            context: temporary.clone(),
            source: e,
        })?;
        storage
            .rename(&temporary, &name)
            .map_err(|e| Error::io(format!("renaming {temporary} to {name}"), e))?;
        storage.sync_directory("").map_err(|e| Error::SyncFailed {
            context: "ledger directory".into(),
            source: e,
        })?;
        report.segments_rewritten += 1;
        report.records_redacted += redacted_here;
    }
    Ok(report)
}
