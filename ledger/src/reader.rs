//! Reading and checking a ledger directory: one scanner shared by the
//! writer's recovery, the verifier and the listing commands.

use crate::codec::Decoder;
use crate::error::{Error, Location, Result};
use crate::keys::VerifierKey;
use crate::limits::{CHECKPOINT_FILE_BYTES_MAX, SEGMENTS_MAX, SEGMENT_BYTES_MAX};
use crate::merkle::{Frontier, Hash};
use crate::note::SignedCheckpoint;
use crate::record::{record_leaf_hash, Descriptor, RecordBody};
use crate::segment::{
    decode_block, decode_entry, frame_kind, header_hash, intact_frame_after,
    parse_segment_file_name, read_frame, segment_file_name, tombstone_message, Seal, SealStatement,
    SegmentHeader, StoredPayload, Tombstone, HEADER_BYTES, SEGMENT_PREFIX,
};
use crate::storage::Storage;

/// Name of the file holding the latest signed checkpoint.
pub const CHECKPOINT_FILE: &str = "checkpoint";
pub const CHECKPOINT_TEMPORARY_FILE: &str = "checkpoint.tmp";
pub const QUARANTINE_DIRECTORY: &str = "quarantine";

/// One record as the scanner hands it to a visitor.
pub struct ScannedRecord<'a> {
    pub index: u64,
    pub descriptor: Descriptor,
    pub payload: &'a StoredPayload<'a>,
    pub leaf_hash: Hash,
    pub location: &'a Location,
}

/// The tail of the last segment that does not hold complete frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    pub file: String,
    pub segment_sequence: u64,
    /// Offset of the end of the last complete frame (0: the header itself is incomplete).
    pub offset: u64,
    pub file_length_bytes: u64,
    pub reason: String,
}

/// Space the writer reserved with zeros at the end of the last segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreallocatedTail {
    pub file: String,
    /// Where the zeros start: the end of the last complete frame.
    pub offset: u64,
    pub file_length_bytes: u64,
}

/// Whether every byte is zero. Zero bytes carry no information, so a run of
/// them at the end of the last segment cannot hide or alter a record: a
/// truncation disguised as preallocated space is caught exactly like any
/// other truncation, by the checkpoints.
pub fn all_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0)
}

/// Where the damage of a torn tail ends: after its last non-zero byte
/// (zeros after it are preallocated space, not damage).
pub fn damaged_end(bytes: &[u8], from: usize) -> usize {
    bytes[from..]
        .iter()
        .rposition(|&b| b != 0)
        .map_or(from, |last| from + last + 1)
}

#[derive(Clone, Debug)]
pub struct SegmentSummary {
    pub file: String,
    pub header: SegmentHeader,
    pub record_count: u64,
    pub length_bytes: u64,
    pub seal: Option<SealStatement>,
}

#[derive(Default)]
pub struct ScanOptions<'a> {
    /// Check every checkpoint, seal and tombstone signature against these keys.
    pub verifiers: Option<&'a [VerifierKey]>,
    /// Keep every leaf hash (needed for proofs).
    pub keep_leaves: bool,
    /// The origin every segment must carry (otherwise the first segment's).
    pub expected_origin: Option<&'a str>,
    /// Report a torn tail of the last segment instead of failing.
    pub allow_torn_tail: bool,
    /// Record the tree root when the tree reaches this size (for consistency with an older checkpoint).
    pub capture_root_at: Option<u64>,
}

#[derive(Debug, Default)]
pub struct ScanResult {
    pub origin: Option<String>,
    pub segments: Vec<SegmentSummary>,
    pub frontier: Frontier,
    pub leaves: Vec<Hash>,
    /// (tree size, root) of every checkpoint frame, in log order.
    pub checkpoints: Vec<(u64, Hash)>,
    pub last_checkpoint: Option<SignedCheckpoint>,
    /// SHA-256 of every checkpoint frame's note, to match the checkpoint file.
    pub checkpoint_note_hashes: std::collections::HashSet<Hash>,
    pub torn_tail: Option<TornTail>,
    /// Zero bytes preallocated after the last frame of the last segment
    /// (the writer keeps space ahead of its writes so that a durability
    /// barrier does not also have to commit a file-size change).
    pub preallocated_tail: Option<PreallocatedTail>,
    pub bytes: u64,
    pub first_timestamp_ns: Option<u64>,
    pub last_timestamp_ns: Option<u64>,
    /// Link the next segment must carry (if the last segment is sealed).
    pub next_link: Option<Hash>,
    /// The root at `ScanOptions::capture_root_at`, if the tree reached that size.
    pub captured_root: Option<Hash>,
}

/// Segment file names in sequence order; refuses stray segment-like files.
pub fn list_segments(storage: &dyn Storage) -> Result<Vec<(u64, String)>> {
    let names = storage
        .list("")
        .map_err(|e| Error::io(format!("listing {}", storage.describe()), e))?;
    let mut segments = Vec::new();
    for name in names {
        if let Some(sequence) = parse_segment_file_name(&name) {
            segments.push((sequence, name));
        } else if name.starts_with(SEGMENT_PREFIX) {
            return Err(Error::tampered(
                &name,
                0,
                "a file named like a segment that is not one (renamed segment?)",
            ));
        }
    }
    segments.sort();
    if segments.len() as u64 > SEGMENTS_MAX {
        return Err(Error::limit(
            "segment count",
            segments.len() as u64,
            SEGMENTS_MAX,
        ));
    }
    Ok(segments)
}

fn hash_bytes(bytes: &[u8]) -> Hash {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

fn find_key<'k>(verifiers: &'k [VerifierKey], key_id: &[u8; 4]) -> Option<&'k VerifierKey> {
    verifiers.iter().find(|k| &k.id == key_id)
}

fn open_checkpoint(bytes: &[u8], verifiers: Option<&[VerifierKey]>) -> Result<SignedCheckpoint> {
    match verifiers {
        None => SignedCheckpoint::parse_unverified(bytes),
        Some(keys) => {
            let mut last_error = None;
            for key in keys {
                match SignedCheckpoint::open(bytes, key) {
                    Ok(checkpoint) => return Ok(checkpoint),
                    Err(e @ Error::SignatureInvalid { .. }) => return Err(e),
                    Err(e) => last_error = Some(e),
                }
            }
            Err(last_error.unwrap_or_else(|| Error::Usage {
                reason: "no verifier key given".into(),
            }))
        }
    }
}

/// Scans every segment in order, checking structure, CRCs, links, indices,
/// checkpoint roots and (when keys are given) signatures.
pub fn scan(
    storage: &dyn Storage,
    options: &ScanOptions,
    visitor: &mut dyn FnMut(&ScannedRecord) -> Result<()>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ScanResult> {
    let segments = list_segments(storage)?;
    let mut result = ScanResult {
        origin: options.expected_origin.map(str::to_string),
        ..ScanResult::default()
    };
    let mut total_bytes = 0u64;
    for (_, name) in &segments {
        total_bytes += storage
            .size(name)
            .map_err(|e| Error::io(format!("reading {name}"), e))?;
    }
    let mut scratch = Vec::new();
    let mut decompressor = None;
    if options.capture_root_at == Some(0) {
        result.captured_root = Some(crate::merkle::empty_root());
    }
    let mut expected_link = [0u8; 32];
    for (position, (sequence, name)) in segments.iter().enumerate() {
        let is_last = position + 1 == segments.len();
        let expected_sequence = position as u64 + 1;
        if *sequence != expected_sequence {
            let reason = if *sequence > expected_sequence {
                format!("segment {expected_sequence} is missing (deleted?)")
            } else {
                format!("duplicate segment {sequence}")
            };
            return Err(Error::tampered(name, 0, reason));
        }
        let size = storage
            .size(name)
            .map_err(|e| Error::io(format!("reading {name}"), e))?;
        if size > SEGMENT_BYTES_MAX {
            return Err(Error::limit(
                "segment size in bytes",
                size,
                SEGMENT_BYTES_MAX,
            ));
        }
        let bytes = storage
            .read(name)
            .map_err(|e| Error::io(format!("reading {name}"), e))?;
        let header = match SegmentHeader::decode(&bytes, name) {
            Ok(header) => header,
            Err(error) => {
                if is_last
                    && options.allow_torn_tail
                    && intact_frame_after(&bytes, *sequence, HEADER_BYTES.saturating_sub(1))
                        .is_none()
                {
                    result.torn_tail = Some(TornTail {
                        file: name.clone(),
                        segment_sequence: *sequence,
                        offset: 0,
                        file_length_bytes: bytes.len() as u64,
                        reason: format!("the segment header is incomplete: {error}"),
                    });
                    break;
                }
                return Err(error);
            }
        };
        let header_bytes: [u8; HEADER_BYTES] =
            bytes[..HEADER_BYTES].try_into().expect("decoded header");
        if header.sequence != *sequence {
            return Err(Error::tampered(
                name,
                16,
                format!(
                    "the header says segment {} but the file name says {sequence} (renamed?)",
                    header.sequence
                ),
            ));
        }
        match &result.origin {
            Some(origin) if origin != &header.origin => {
                return Err(Error::tampered(
                    name,
                    72,
                    format!(
                        "segment from another log: origin {:?}, expected {:?}",
                        header.origin, origin
                    ),
                ));
            }
            None => result.origin = Some(header.origin.clone()),
            _ => {}
        }
        if header.first_index != result.frontier.size() {
            return Err(Error::tampered(
                name,
                24,
                format!(
                    "the segment starts at record {} but the previous segments end at {}",
                    header.first_index,
                    result.frontier.size()
                ),
            ));
        }
        if header.previous_link != expected_link {
            return Err(Error::tampered(name, 40, "the link to the previous segment does not match (segments swapped, replaced or from another log)"));
        }
        let origin = header.origin.clone();
        let mut offset = HEADER_BYTES;
        let mut seal: Option<SealStatement> = None;
        let mut valid_length = bytes.len();
        while offset < bytes.len() {
            let location = Location {
                file: name.clone(),
                offset: offset as u64,
            };
            if is_last && all_zero(&bytes[offset..]) {
                // Preallocated space (also after a seal, when a crash came
                // between writing the seal and trimming the file).
                result.preallocated_tail = Some(PreallocatedTail {
                    file: name.clone(),
                    offset: offset as u64,
                    file_length_bytes: bytes.len() as u64,
                });
                valid_length = offset;
                break;
            }
            if seal.is_some() {
                return Err(Error::Tampered {
                    location,
                    reason: "data after the segment's seal".into(),
                });
            }
            let (kind, body) = match read_frame(&bytes, *sequence, offset) {
                Ok(frame) => frame,
                Err(defect) => {
                    // Frames cannot start inside the zeros after the damage.
                    let end = damaged_end(&bytes, offset);
                    if let Some(next) = intact_frame_after(&bytes[..end], *sequence, offset) {
                        return Err(Error::Tampered { location, reason: format!("{defect}, yet an intact frame follows at offset {next}: damage inside the log") });
                    }
                    if is_last && options.allow_torn_tail {
                        result.torn_tail = Some(TornTail {
                            file: name.clone(),
                            segment_sequence: *sequence,
                            offset: offset as u64,
                            file_length_bytes: bytes.len() as u64,
                            reason: defect.to_string(),
                        });
                        valid_length = offset;
                        break;
                    }
                    let reason = if is_last {
                        format!("torn or damaged tail: {defect}")
                    } else {
                        format!("{defect} (in a segment that is not the last)")
                    };
                    return Err(Error::Tampered { location, reason });
                }
            };
            match kind {
                frame_kind::RECORD_BLOCK => {
                    let (block, entries) =
                        decode_block(body, &location, &mut scratch, &mut decompressor)?;
                    if block.first_index != result.frontier.size() {
                        return Err(Error::Tampered { location, reason: format!("block starts at record {} but {} records precede it (gap, duplicate or reorder)", block.first_index, result.frontier.size()) });
                    }
                    let mut d = Decoder::new(entries, "block entries");
                    for _ in 0..block.record_count {
                        let entry = decode_entry(&mut d).map_err(|e| Error::Tampered {
                            location: location.clone(),
                            reason: format!("bad record entry: {e}"),
                        })?;
                        let index = result.frontier.size();
                        let leaf = record_leaf_hash(&entry.descriptor, &entry.payload_hash());
                        if let (StoredPayload::Redacted(tombstone), Some(keys)) =
                            (&entry.payload, options.verifiers)
                        {
                            check_tombstone(&origin, index, &leaf, tombstone, keys, &location)?;
                        }
                        visitor(&ScannedRecord {
                            index,
                            descriptor: entry.descriptor,
                            payload: &entry.payload,
                            leaf_hash: leaf,
                            location: &location,
                        })?;
                        result.frontier.push(leaf);
                        if options.capture_root_at == Some(result.frontier.size()) {
                            result.captured_root = Some(result.frontier.root());
                        }
                        if options.keep_leaves {
                            result.leaves.push(leaf);
                        }
                        let ts = entry.descriptor.timestamp_ns;
                        result.first_timestamp_ns =
                            Some(result.first_timestamp_ns.map_or(ts, |t| t.min(ts)));
                        result.last_timestamp_ns =
                            Some(result.last_timestamp_ns.map_or(ts, |t| t.max(ts)));
                    }
                    if d.remaining() != 0 {
                        return Err(Error::Tampered {
                            location,
                            reason: format!(
                                "{} bytes after the block's last record",
                                d.remaining()
                            ),
                        });
                    }
                }
                frame_kind::CHECKPOINT => {
                    let checkpoint =
                        open_checkpoint(body, options.verifiers).map_err(|e| Error::Tampered {
                            location: location.clone(),
                            reason: format!("checkpoint: {e}"),
                        })?;
                    check_checkpoint_matches(&checkpoint, &origin, &result.frontier, &location)?;
                    result
                        .checkpoints
                        .push((checkpoint.checkpoint.size, checkpoint.checkpoint.root));
                    result.checkpoint_note_hashes.insert(hash_bytes(body));
                    result.last_checkpoint = Some(checkpoint);
                }
                frame_kind::SEAL => {
                    let decoded = Seal::decode(body).map_err(|e| Error::Tampered {
                        location: location.clone(),
                        reason: format!("seal: {e}"),
                    })?;
                    let statement = &decoded.statement;
                    let expected = SealStatement {
                        segment_sequence: *sequence,
                        first_index: header.first_index,
                        record_count: result.frontier.size() - header.first_index,
                        tree_size: result.frontier.size(),
                        root: result.frontier.root(),
                        header_hash: header_hash(&header_bytes),
                        sealed_at_ns: statement.sealed_at_ns,
                    };
                    if statement != &expected {
                        return Err(Error::Tampered {
                            location,
                            reason: "the seal does not match the segment's header and records"
                                .into(),
                        });
                    }
                    if let Some(keys) = options.verifiers {
                        let Some(key) = find_key(keys, &decoded.key_id) else {
                            return Err(Error::Tampered {
                                location,
                                reason: "the seal is signed by a key that is not trusted".into(),
                            });
                        };
                        if !key.verify(&statement.signed_message(&origin), &decoded.signature) {
                            return Err(Error::Tampered {
                                location,
                                reason: "the seal's signature does not verify".into(),
                            });
                        }
                    }
                    let checkpoint = open_checkpoint(&decoded.checkpoint_note, options.verifiers)
                        .map_err(|e| Error::Tampered {
                        location: location.clone(),
                        reason: format!("seal checkpoint: {e}"),
                    })?;
                    check_checkpoint_matches(&checkpoint, &origin, &result.frontier, &location)?;
                    result
                        .checkpoints
                        .push((checkpoint.checkpoint.size, checkpoint.checkpoint.root));
                    result
                        .checkpoint_note_hashes
                        .insert(hash_bytes(&decoded.checkpoint_note));
                    result.last_checkpoint = Some(checkpoint);
                    seal = Some(decoded.statement);
                }
                other => unreachable!("read_frame rejects frame kind {other}"),
            }
            offset += crate::segment::FRAME_HEADER_BYTES + body.len();
            progress(result.bytes + offset as u64, total_bytes);
        }
        if !is_last && seal.is_none() {
            return Err(Error::tampered(
                name,
                bytes.len() as u64,
                "the segment is not sealed although later segments exist (truncated?)",
            ));
        }
        expected_link = match &seal {
            Some(statement) => statement.link(),
            None => [0u8; 32],
        };
        result.next_link = seal.as_ref().map(SealStatement::link);
        result.bytes += valid_length as u64;
        result.segments.push(SegmentSummary {
            file: name.clone(),
            record_count: result.frontier.size() - header.first_index,
            header,
            length_bytes: valid_length as u64,
            seal,
        });
    }
    Ok(result)
}

fn check_checkpoint_matches(
    checkpoint: &SignedCheckpoint,
    origin: &str,
    frontier: &Frontier,
    location: &Location,
) -> Result<()> {
    let body = &checkpoint.checkpoint;
    if body.origin != origin {
        return Err(Error::Tampered {
            location: location.clone(),
            reason: format!(
                "checkpoint for origin {:?} inside log {:?}",
                body.origin, origin
            ),
        });
    }
    if body.size != frontier.size() {
        return Err(Error::Tampered {
            location: location.clone(),
            reason: format!(
                "checkpoint for {} records after {} records",
                body.size,
                frontier.size()
            ),
        });
    }
    if body.root != frontier.root() {
        return Err(Error::Tampered {
            location: location.clone(),
            reason: format!(
                "the records do not hash to the root of the signed checkpoint at size {}",
                body.size
            ),
        });
    }
    Ok(())
}

fn check_tombstone(
    origin: &str,
    index: u64,
    leaf: &Hash,
    tombstone: &Tombstone,
    keys: &[VerifierKey],
    location: &Location,
) -> Result<()> {
    let Some(key) = find_key(keys, &tombstone.key_id) else {
        return Err(Error::Tampered {
            location: location.clone(),
            reason: format!("the tombstone of record {index} is signed by an untrusted key"),
        });
    };
    let message = tombstone_message(
        origin,
        index,
        leaf,
        tombstone.redacted_at_ns,
        &tombstone.reason,
    );
    if !key.verify(&message, &tombstone.signature) {
        return Err(Error::Tampered {
            location: location.clone(),
            reason: format!("the tombstone signature of record {index} does not verify"),
        });
    }
    Ok(())
}

/// Reads the `checkpoint` file, if present (not verified).
pub fn read_checkpoint_file(storage: &dyn Storage) -> Result<Option<Vec<u8>>> {
    if !storage
        .exists(CHECKPOINT_FILE)
        .map_err(|e| Error::io("reading the checkpoint file", e))?
    {
        return Ok(None);
    }
    let size = storage
        .size(CHECKPOINT_FILE)
        .map_err(|e| Error::io("reading the checkpoint file", e))?;
    if size > CHECKPOINT_FILE_BYTES_MAX {
        return Err(Error::limit(
            "checkpoint file size in bytes",
            size,
            CHECKPOINT_FILE_BYTES_MAX,
        ));
    }
    Ok(Some(storage.read(CHECKPOINT_FILE).map_err(|e| {
        Error::io("reading the checkpoint file", e)
    })?))
}

/// A record read back from the ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    pub index: u64,
    pub descriptor: Descriptor,
    /// `None` when the payload was redacted.
    pub body: Option<RecordBody>,
    pub tombstone: Option<Tombstone>,
    pub leaf_hash: Hash,
}

impl StoredRecord {
    pub fn from_scanned(record: &ScannedRecord) -> Result<Self> {
        let (body, tombstone) =
            match record.payload {
                StoredPayload::Present { payload, .. } => {
                    let body = RecordBody::decode_payload(record.descriptor.kind, payload)
                        .map_err(|e| Error::Tampered {
                            location: record.location.clone(),
                            reason: format!("record {} has a malformed payload: {e}", record.index),
                        })?;
                    (Some(body), None)
                }
                StoredPayload::Redacted(tombstone) => (None, Some(tombstone.clone())),
            };
        Ok(StoredRecord {
            index: record.index,
            descriptor: record.descriptor,
            body,
            tombstone,
            leaf_hash: record.leaf_hash,
        })
    }
}

/// A record's leaf inputs.
pub struct LeafRecord {
    pub index: u64,
    pub descriptor: Descriptor,
    pub payload_hash: Hash,
}

/// Read-only access for the listing, replay, export and proof commands.
pub struct LedgerReader<'s> {
    storage: &'s dyn Storage,
}

impl<'s> LedgerReader<'s> {
    pub fn new(storage: &'s dyn Storage) -> Self {
        LedgerReader { storage }
    }

    /// Calls `visit` with every record in order (structure and CRCs are checked; signatures are not).
    pub fn for_each_record(
        &self,
        visit: &mut dyn FnMut(StoredRecord) -> Result<()>,
    ) -> Result<ScanResult> {
        let options = ScanOptions::default();
        scan(
            self.storage,
            &options,
            &mut |r| visit(StoredRecord::from_scanned(r)?),
            &mut |_, _| {},
        )
    }

    pub fn records(&self) -> Result<Vec<StoredRecord>> {
        let mut out = Vec::new();
        self.for_each_record(&mut |r| {
            out.push(r);
            Ok(())
        })?;
        Ok(out)
    }

    /// Like `for_each_record`, keeping every leaf hash; records are given with their payload hash.
    pub fn for_each_record_with_leaves(
        &self,
        visit: &mut dyn FnMut(LeafRecord) -> Result<()>,
    ) -> Result<ScanResult> {
        let options = ScanOptions {
            keep_leaves: true,
            ..ScanOptions::default()
        };
        scan(
            self.storage,
            &options,
            &mut |r| {
                let payload_hash = match r.payload {
                    StoredPayload::Present { salt, payload } => {
                        crate::record::payload_hash(salt, payload)
                    }
                    StoredPayload::Redacted(tombstone) => tombstone.payload_hash,
                };
                visit(LeafRecord {
                    index: r.index,
                    descriptor: r.descriptor,
                    payload_hash,
                })
            },
            &mut |_, _| {},
        )
    }

    /// Every leaf hash and the scan summary.
    pub fn leaves(&self) -> Result<ScanResult> {
        let options = ScanOptions {
            keep_leaves: true,
            ..ScanOptions::default()
        };
        scan(self.storage, &options, &mut |_| Ok(()), &mut |_, _| {})
    }

    /// The latest signed checkpoint: the `checkpoint` file, or else the last one in the log.
    pub fn latest_checkpoint(&self, scanned: &ScanResult) -> Result<SignedCheckpoint> {
        let file = read_checkpoint_file(self.storage)?;
        let from_file = match file {
            Some(bytes) => Some(SignedCheckpoint::parse_unverified(&bytes)?),
            None => None,
        };
        let candidates = [from_file, scanned.last_checkpoint.clone()];
        candidates
            .into_iter()
            .flatten()
            .max_by_key(|c| c.checkpoint.size)
            .ok_or_else(|| Error::NotFound {
                what: "a signed checkpoint".into(),
            })
    }

    pub fn segment_file_name(sequence: u64) -> String {
        segment_file_name(sequence)
    }
}
