//! The writer the appliance records through.
//!
//! One writer owns one ledger directory and runs on one thread (the
//! appliance gives it its own). `append` encodes a record into the current
//! block and returns its index; `barrier` writes what is pending and fsyncs
//! once (group commit). Every I/O error is fatal: the writer poisons itself
//! and the appliance must reopen the ledger (which recovers).

use crate::error::{Error, Result};
use crate::keys::SignerKey;
use crate::limits::BLOCK_RECORDS_MAX;
use crate::merkle::{Frontier, Hash};
use crate::note::{check_origin, Checkpoint, SignedCheckpoint};
use crate::reader::{
    read_checkpoint_file, scan, ScanOptions, ScannedRecord, CHECKPOINT_FILE,
    CHECKPOINT_TEMPORARY_FILE, QUARANTINE_DIRECTORY,
};
use crate::record::{
    payload_hash, record_leaf_hash, Descriptor, Record, RecordBody, SessionId, DESCRIPTOR_BYTES,
    SALT_BYTES,
};
use crate::segment::{
    compression, encode_block_header, encode_frame, frame_kind, header_hash, segment_file_name,
    storage_form, BlockHeader, Seal, SealStatement, SegmentHeader, ENTRY_PREFIX_BYTES,
    HEADER_BYTES,
};
use crate::storage::{Storage, StorageFile};
use sha2::{Digest, Sha256};

/// Source of the current time (tests inject one).
pub trait Clock: Send {
    /// Unix time in nanoseconds.
    fn now_ns(&self) -> u64;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ns(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    }
}

/// Writer settings. Every size and age is bounded by name.
#[derive(Clone, Debug)]
pub struct WriterConfig {
    /// The log origin: first line of every checkpoint.
    pub origin: String,
    /// Seal the segment and start a new one once it holds this many bytes.
    pub segment_bytes_max: u64,
    /// ... or once it is this old (and holds at least one record).
    pub segment_age_ms_max: u64,
    /// Compress and frame the current block once its records reach this many bytes.
    pub block_bytes_target: usize,
    /// ... or this many records.
    pub block_records_max: usize,
    /// Write frames to the file once this many bytes are pending, even before a barrier.
    pub pending_bytes_max: usize,
    /// Sign a checkpoint at a barrier once this many records arrived since the last one.
    pub checkpoint_interval_records: u64,
    /// ... or once the last one is this old (and records arrived since).
    pub checkpoint_interval_ms: u64,
    /// zstd level for record blocks.
    pub zstd_level: i32,
    /// Zero bytes kept written ahead of the end of the segment (0: none).
    /// A durability barrier that only overwrites space already allocated
    /// and written needs no file-system journal commit for a size change,
    /// which on ext4 makes fdatasync markedly faster (measured in
    /// ledger/README.md). The zeros are trimmed when the segment is sealed.
    pub preallocate_bytes: u64,
}

impl WriterConfig {
    pub fn new(origin: impl Into<String>) -> Self {
        WriterConfig {
            origin: origin.into(),
            segment_bytes_max: 64 * 1024 * 1024,
            segment_age_ms_max: 60 * 60 * 1000,
            block_bytes_target: 256 * 1024,
            block_records_max: 16 * 1024,
            pending_bytes_max: 4 * 1024 * 1024,
            checkpoint_interval_records: 1_000_000,
            checkpoint_interval_ms: 10_000,
            zstd_level: 1,
            preallocate_bytes: 4 * 1024 * 1024,
        }
    }

    fn check(&self) -> Result<()> {
        check_origin(&self.origin)?;
        if self.segment_bytes_max < HEADER_BYTES as u64 * 2 {
            return Err(Error::invalid(
                "segment_bytes_max",
                "below twice the segment header size",
            ));
        }
        if self.block_bytes_target == 0
            || self.block_records_max == 0
            || self.block_records_max > BLOCK_RECORDS_MAX
        {
            return Err(Error::invalid("block size", format!("block_bytes_target must be positive and block_records_max in 1..={BLOCK_RECORDS_MAX}")));
        }
        if self.preallocate_bytes > crate::limits::PREALLOCATE_BYTES_MAX {
            return Err(Error::invalid(
                "preallocate_bytes",
                format!("must be at most {}", crate::limits::PREALLOCATE_BYTES_MAX),
            ));
        }
        if !(1..=19).contains(&self.zstd_level) {
            return Err(Error::invalid("zstd_level", "must be in 1..=19"));
        }
        Ok(())
    }
}

/// What `open` found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// The directory held no segment: a new ledger was started.
    pub created: bool,
    pub tree_size: u64,
    pub segments: u64,
    pub recovery: Option<RecoveryReport>,
    /// Quarantine files found without a recovery record (a crash interrupted
    /// an earlier recovery) and recorded now.
    pub late_recovery_records: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveryReport {
    pub file: String,
    pub truncated_at_offset: u64,
    pub quarantined_bytes: u64,
    pub quarantine_file: String,
    /// Index of the recovery record appended to the log.
    pub recovery_record_index: u64,
    pub reason: String,
}

/// Salts from SHA-256 in counter mode over a random seed.
struct SaltGenerator {
    seed: [u8; 32],
    counter: u64,
    spare: Option<[u8; SALT_BYTES]>,
}

impl SaltGenerator {
    fn new() -> Result<Self> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(|e| {
            Error::io(
                "reading the system random source",
                std::io::Error::other(e.to_string()),
            )
        })?;
        Ok(SaltGenerator {
            seed,
            counter: 0,
            spare: None,
        })
    }
    fn next(&mut self) -> [u8; SALT_BYTES] {
        if let Some(salt) = self.spare.take() {
            return salt;
        }
        let mut hasher = Sha256::new();
        hasher.update(self.seed);
        hasher.update(self.counter.to_le_bytes());
        self.counter += 1;
        let digest: [u8; 32] = hasher.finalize().into();
        self.spare = Some(digest[16..].try_into().unwrap());
        digest[..16].try_into().unwrap()
    }
}

enum FrameBody {
    /// The block body in `LedgerWriter::body`.
    Block,
    Bytes(Vec<u8>),
}

struct ActiveSegment {
    sequence: u64,
    name: String,
    file: Box<dyn StorageFile>,
    header: [u8; HEADER_BYTES],
    first_index: u64,
    created_at_ns: u64,
    /// Bytes written to the file (frames pending in memory not included).
    length_bytes: u64,
    /// The file's length: `length_bytes` plus zeros written ahead.
    allocated_bytes: u64,
    /// CRC32 of every byte written, in order: checked against a read-back at the seal.
    written_crc: crc32fast::Hasher,
}

pub struct LedgerWriter {
    storage: Box<dyn Storage>,
    key: SignerKey,
    config: WriterConfig,
    clock: Box<dyn Clock>,
    /// The segment being written; `None` after a seal until the next frame is needed
    /// (so no empty segment ever follows a sealed one).
    segment: Option<ActiveSegment>,
    /// Sequence number and previous-segment link of the next segment to create.
    next_segment: (u64, Hash),
    frontier: Frontier,
    /// Uncompressed entries of the block being filled.
    block: Vec<u8>,
    block_first_index: u64,
    block_count: u32,
    /// Frames built but not yet written to the file.
    pending: Vec<u8>,
    compressed: Vec<u8>,
    body: Vec<u8>,
    compressor: zstd::bulk::Compressor<'static>,
    salts: SaltGenerator,
    /// Records in frames written to the file (not necessarily synced).
    written_size: u64,
    /// Records made durable by a successful fsync.
    durable_size: u64,
    unsynced: bool,
    last_checkpoint_size: u64,
    last_checkpoint_ns: u64,
    last_checkpoint: Option<SignedCheckpoint>,
    poisoned: Option<String>,
}

impl std::fmt::Debug for LedgerWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerWriter")
            .field("origin", &self.config.origin)
            .field("segment", &self.segment.as_ref().map(|s| s.name.clone()))
            .field("tree_size", &self.frontier.size())
            .field("durable_size", &self.durable_size)
            .field("poisoned", &self.poisoned)
            .finish()
    }
}

fn quarantine_name(file: &str, offset: u64, now_ns: u64) -> String {
    format!("{QUARANTINE_DIRECTORY}/{file}.at-{offset}.{now_ns}.torn")
}

impl LedgerWriter {
    /// Opens (or creates) the ledger, recovering a torn tail of the last segment.
    pub fn open(
        storage: Box<dyn Storage>,
        key: SignerKey,
        config: WriterConfig,
    ) -> Result<(Self, OpenReport)> {
        Self::open_with_clock(storage, key, config, Box::new(SystemClock))
    }

    pub fn open_with_clock(
        storage: Box<dyn Storage>,
        key: SignerKey,
        config: WriterConfig,
        clock: Box<dyn Clock>,
    ) -> Result<(Self, OpenReport)> {
        Self::open_observing(storage, key, config, clock, &mut |_| {})
    }

    /// [`LedgerWriter::open_with_clock`], showing `observe` every record the
    /// ledger holds once it is open, in log order. Recovery reads the whole
    /// log anyway; a caller that needs something from every record (the
    /// appliance, after an outage, needs each session's highest sequence
    /// number) gets it from that one pass instead of reading the log again.
    /// Records in a torn tail are not shown: recovery cuts them off. The
    /// recovery records that opening itself appends are not shown either;
    /// [`OpenReport`] counts them.
    pub fn open_observing(
        storage: Box<dyn Storage>,
        key: SignerKey,
        config: WriterConfig,
        clock: Box<dyn Clock>,
        observe: &mut dyn FnMut(&ScannedRecord),
    ) -> Result<(Self, OpenReport)> {
        config.check()?;
        storage
            .create_directory("")
            .map_err(|e| Error::io(format!("creating {}", storage.describe()), e))?;
        let options = ScanOptions {
            expected_origin: Some(&config.origin),
            allow_torn_tail: true,
            ..ScanOptions::default()
        };
        // Quarantine files already named by a recovery record in the log.
        let mut recorded_quarantine = std::collections::HashSet::new();
        let scanned = scan(
            storage.as_ref(),
            &options,
            &mut |record| {
                observe(record);
                if record.descriptor.kind == crate::record::kind::RECOVERY {
                    if let crate::segment::StoredPayload::Present { payload, .. } = record.payload {
                        if let Ok(RecordBody::Recovery {
                            quarantine_file, ..
                        }) = RecordBody::decode_payload(record.descriptor.kind, payload)
                        {
                            recorded_quarantine.insert(quarantine_file);
                        }
                    }
                }
                Ok(())
            },
            &mut |_, _| {},
        )?;

        // The checkpoint file must name a checkpoint the log holds, at or below its size.
        if let Some(bytes) = read_checkpoint_file(storage.as_ref())? {
            let checkpoint = SignedCheckpoint::parse_unverified(&bytes).map_err(|e| {
                Error::tampered(
                    CHECKPOINT_FILE,
                    0,
                    format!("the checkpoint file is damaged: {e}"),
                )
            })?;
            if checkpoint.checkpoint.origin != config.origin {
                return Err(Error::tampered(
                    CHECKPOINT_FILE,
                    0,
                    format!(
                        "the checkpoint file is for origin {:?}",
                        checkpoint.checkpoint.origin
                    ),
                ));
            }
            if checkpoint.checkpoint.size > scanned.frontier.size() {
                return Err(Error::tampered(
                    CHECKPOINT_FILE,
                    0,
                    format!("the signed checkpoint covers {} records but only {} are in the log: records were lost or removed", checkpoint.checkpoint.size, scanned.frontier.size()),
                ));
            }
            let digest: Hash = Sha256::digest(&bytes).into();
            if !scanned.checkpoint_note_hashes.contains(&digest) {
                return Err(Error::tampered(CHECKPOINT_FILE, 0, "the checkpoint file's checkpoint does not appear in the log (truncated or replaced log)"));
            }
        }

        let now = clock.now_ns();
        let mut report = OpenReport {
            created: scanned.segments.is_empty() && scanned.torn_tail.is_none(),
            ..OpenReport::default()
        };
        let mut recovery: Option<(String, u64, u64, String, String)> = None;
        let mut removed_torn_segment = false;
        if let Some(tail) = &scanned.torn_tail {
            let bytes = storage
                .read(&tail.file)
                .map_err(|e| Error::io(format!("reading {}", tail.file), e))?;
            // Zeros after the damage are preallocated space, not damage.
            let end = crate::reader::damaged_end(&bytes, tail.offset as usize);
            let cut = &bytes[tail.offset as usize..end];
            if cut.len() as u64 > crate::limits::QUARANTINE_BYTES_MAX {
                return Err(Error::tampered(
                    &tail.file,
                    tail.offset,
                    format!(
                        "{} damaged bytes at the tail: more than a torn write can leave",
                        cut.len()
                    ),
                ));
            }
            let quarantine_file = quarantine_name(&tail.file, tail.offset, now);
            write_durable_file(storage.as_ref(), &quarantine_file, cut)?;
            if tail.offset == 0 {
                storage
                    .remove(&tail.file)
                    .map_err(|e| Error::io(format!("removing {}", tail.file), e))?;
                storage.sync_directory("").map_err(|e| Error::SyncFailed {
                    context: "ledger directory".into(),
                    source: e,
                })?;
                removed_torn_segment = true;
            } else {
                let mut file = storage
                    .open_write(&tail.file)
                    .map_err(|e| Error::io(format!("opening {}", tail.file), e))?;
                file.set_len(tail.offset)
                    .map_err(|e| Error::io(format!("truncating {}", tail.file), e))?;
                file.sync().map_err(|e| Error::SyncFailed {
                    context: tail.file.clone(),
                    source: e,
                })?;
            }
            recovery = Some((
                tail.file.clone(),
                tail.offset,
                cut.len() as u64,
                quarantine_file,
                tail.reason.clone(),
            ));
        }

        // A crash between writing a seal and trimming the preallocated zeros
        // after it leaves them in a sealed segment; trim them now, before a
        // later segment makes this one "not the last".
        if let (Some(tail), Some(summary)) = (&scanned.preallocated_tail, scanned.segments.last()) {
            if summary.seal.is_some() && summary.file == tail.file && !removed_torn_segment {
                let mut file = storage
                    .open_write(&tail.file)
                    .map_err(|e| Error::io(format!("opening {}", tail.file), e))?;
                file.set_len(tail.offset)
                    .map_err(|e| Error::io(format!("trimming {}", tail.file), e))?;
                file.sync().map_err(|e| Error::SyncFailed {
                    context: tail.file.clone(),
                    source: e,
                })?;
            }
        }
        let last = scanned.segments.last();
        let segment = match last {
            Some(summary) if summary.seal.is_none() && !removed_torn_segment => {
                let file = storage
                    .open_write(&summary.file)
                    .map_err(|e| Error::io(format!("opening {}", summary.file), e))?;
                let existing = storage
                    .read(&summary.file)
                    .map_err(|e| Error::io(format!("reading {}", summary.file), e))?;
                let mut written_crc = crc32fast::Hasher::new();
                written_crc
                    .update(&existing[..(summary.length_bytes as usize).min(existing.len())]);
                Some(ActiveSegment {
                    sequence: summary.header.sequence,
                    name: summary.file.clone(),
                    file,
                    header: summary.header.clone().encode(),
                    first_index: summary.header.first_index,
                    created_at_ns: summary.header.created_at_ns,
                    length_bytes: summary.length_bytes,
                    allocated_bytes: (existing.len() as u64).max(summary.length_bytes),
                    written_crc,
                })
            }
            _ => None,
        };
        let next_segment = (
            scanned.segments.len() as u64 + 1,
            scanned.next_link.unwrap_or([0u8; 32]),
        );
        let scanned_last_file = scanned.segments.last().map(|s| s.file.clone());
        let size = scanned.frontier.size();
        let (last_checkpoint_size, last_checkpoint) = match &scanned.last_checkpoint {
            Some(c) => (c.checkpoint.size, Some(c.clone())),
            None => (0, None),
        };
        let mut writer = LedgerWriter {
            compressor: zstd::bulk::Compressor::new(config.zstd_level)
                .map_err(|e| Error::io("creating the zstd compressor", e))?,
            storage,
            key,
            clock,
            segment,
            next_segment,
            frontier: scanned.frontier,
            block: Vec::with_capacity(config.block_bytes_target + 4096),
            block_first_index: size,
            block_count: 0,
            pending: Vec::new(),
            compressed: Vec::new(),
            body: Vec::new(),
            salts: SaltGenerator::new()?,
            written_size: size,
            durable_size: size,
            unsynced: false,
            last_checkpoint_size,
            last_checkpoint_ns: now,
            last_checkpoint,
            poisoned: None,
            config,
        };
        // A crash between a checkpoint frame and the checkpoint file leaves the file behind the log:
        // make the segment durable as read, then publish the log's latest checkpoint.
        if let Some(latest) = writer.last_checkpoint.clone() {
            let current = read_checkpoint_file(writer.storage.as_ref())?;
            if current.as_deref() != Some(latest.note.as_bytes()) {
                if let Some(last) = scanned_last_file
                    .as_ref()
                    .filter(|_| writer.segment.is_none())
                {
                    let mut file = writer
                        .storage
                        .open_write(last)
                        .map_err(|e| Error::io(format!("opening {last}"), e))?;
                    file.sync().map_err(|e| Error::SyncFailed {
                        context: last.clone(),
                        source: e,
                    })?;
                } else {
                    writer.unsynced = writer.segment.is_some();
                }
                writer.written_size = writer.frontier.size();
                writer.sync_segment()?;
                writer.durable_size = writer.frontier.size();
                writer.publish_checkpoint(&latest)?;
            }
        }
        if let Some((file, offset, quarantined_bytes, quarantine_file, reason)) = recovery {
            let segment_sequence = crate::segment::parse_segment_file_name(&file).unwrap_or(0);
            let index = writer.append(&Record {
                session: SessionId::default(),
                sequence: 0,
                timestamp_ns: now,
                body: RecordBody::Recovery {
                    segment_sequence,
                    truncated_at_offset: offset,
                    quarantined_bytes,
                    quarantine_file: quarantine_file.clone(),
                    reason: reason.clone(),
                },
            })?;
            writer.checkpoint()?;
            report.recovery = Some(RecoveryReport {
                file,
                truncated_at_offset: offset,
                quarantined_bytes,
                quarantine_file,
                recovery_record_index: index,
                reason,
            });
        }
        // A crash between cutting a torn tail and recording it leaves a quarantine
        // file that no recovery record names: record it now.
        if let Some(recovery) = &report.recovery {
            recorded_quarantine.insert(recovery.quarantine_file.clone());
        }
        let quarantined = if writer
            .storage
            .exists(QUARANTINE_DIRECTORY)
            .map_err(|e| Error::io("checking the quarantine folder", e))?
        {
            writer
                .storage
                .list(QUARANTINE_DIRECTORY)
                .map_err(|e| Error::io("listing the quarantine folder", e))?
        } else {
            Vec::new()
        };
        for file in quarantined {
            let name = format!("{QUARANTINE_DIRECTORY}/{file}");
            if recorded_quarantine.contains(&name) {
                continue;
            }
            let bytes = writer
                .storage
                .size(&name)
                .map_err(|e| Error::io(format!("reading {name}"), e))?;
            let (segment, offset) = match file.split_once(".at-") {
                Some((segment, rest)) => (
                    crate::segment::parse_segment_file_name(segment).unwrap_or(0),
                    rest.split('.')
                        .next()
                        .and_then(|o| o.parse().ok())
                        .unwrap_or(0),
                ),
                None => (0, 0),
            };
            writer.append(&Record {
                session: SessionId::default(),
                sequence: 0,
                timestamp_ns: now,
                body: RecordBody::Recovery {
                    segment_sequence: segment,
                    truncated_at_offset: offset,
                    quarantined_bytes: bytes,
                    quarantine_file: name.clone(),
                    reason: "recorded late: a crash interrupted the recovery that cut these bytes"
                        .into(),
                },
            })?;
            writer.checkpoint()?;
            report.late_recovery_records += 1;
        }
        report.tree_size = writer.frontier.size();
        report.segments = writer
            .segment
            .as_ref()
            .map_or(writer.next_segment.0 - 1, |s| s.sequence);
        Ok((writer, report))
    }

    /// Records appended so far (the tree size once all are written).
    pub fn tree_size(&self) -> u64 {
        self.frontier.size()
    }

    /// Records that survive a crash (acknowledged by a barrier).
    pub fn durable_size(&self) -> u64 {
        self.durable_size
    }

    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    pub fn origin(&self) -> &str {
        &self.config.origin
    }

    pub fn last_checkpoint(&self) -> Option<&SignedCheckpoint> {
        self.last_checkpoint.as_ref()
    }

    pub fn is_poisoned(&self) -> bool {
        self.poisoned.is_some()
    }

    fn check_alive(&self) -> Result<()> {
        match &self.poisoned {
            Some(first_error) => Err(Error::WriterPoisoned {
                first_error: first_error.clone(),
            }),
            None => Ok(()),
        }
    }

    fn poison(&mut self, error: Error) -> Error {
        if self.poisoned.is_none() {
            self.poisoned = Some(error.to_string());
        }
        error
    }

    /// Appends a record and returns its index. It is durable once a barrier returns a size above the index.
    pub fn append(&mut self, record: &Record) -> Result<u64> {
        self.check_alive()?;
        let start = self.block.len();
        self.block.resize(start + ENTRY_PREFIX_BYTES, 0);
        if let Err(e) = record.body.encode_payload(&mut self.block) {
            self.block.truncate(start);
            return Err(e);
        }
        let payload_length = self.block.len() - start - ENTRY_PREFIX_BYTES;
        let descriptor = Descriptor {
            kind: record.body.kind(),
            session: record.session,
            sequence: record.sequence,
            timestamp_ns: record.timestamp_ns,
            payload_length_bytes: payload_length as u32,
        };
        let salt = self.salts.next();
        let entry_length = (1 + DESCRIPTOR_BYTES + SALT_BYTES + payload_length) as u32;
        let prefix = &mut self.block[start..start + ENTRY_PREFIX_BYTES];
        prefix[0..4].copy_from_slice(&entry_length.to_le_bytes());
        prefix[4] = storage_form::PAYLOAD;
        prefix[5..5 + DESCRIPTOR_BYTES].copy_from_slice(&descriptor.to_bytes());
        prefix[5 + DESCRIPTOR_BYTES..].copy_from_slice(&salt);
        let hash = payload_hash(&salt, &self.block[start + ENTRY_PREFIX_BYTES..]);
        let index = self.frontier.size();
        self.frontier.push(record_leaf_hash(&descriptor, &hash));
        self.block_count += 1;
        if self.block.len() >= self.config.block_bytes_target
            || self.block_count as usize >= self.config.block_records_max
        {
            self.flush_block()?;
        }
        Ok(index)
    }

    /// Compresses the current block into a frame in the pending buffer.
    fn flush_block(&mut self) -> Result<()> {
        if self.block_count == 0 {
            return Ok(());
        }
        assert_eq!(
            self.block_first_index + self.block_count as u64,
            self.frontier.size(),
            "block indices match the tree"
        );
        self.compressed.clear();
        self.compressed
            .reserve(zstd::zstd_safe::compress_bound(self.block.len()));
        let compressed_length = self
            .compressor
            .compress_to_buffer(&self.block, &mut self.compressed)
            .map_err(|e| Error::io("compressing a block", e));
        let compressed_length = match compressed_length {
            Ok(n) => n,
            Err(e) => return Err(self.poison(e)),
        };
        let use_zstd = compressed_length < self.block.len();
        self.body.clear();
        encode_block_header(
            &mut self.body,
            &BlockHeader {
                first_index: self.block_first_index,
                record_count: self.block_count,
                uncompressed_bytes: self.block.len() as u32,
                compression: if use_zstd {
                    compression::ZSTD
                } else {
                    compression::NONE
                },
            },
        );
        if use_zstd {
            self.body
                .extend_from_slice(&self.compressed[..compressed_length]);
        } else {
            self.body.extend_from_slice(&self.block);
        }
        let first_index = self.block_first_index;
        self.append_frame(first_index, frame_kind::RECORD_BLOCK, FrameBody::Block)?;
        self.block.clear();
        self.block_first_index = self.frontier.size();
        self.block_count = 0;
        if self.pending.len() >= self.config.pending_bytes_max {
            self.write_pending()?;
        }
        Ok(())
    }

    /// Creates the next segment if none is open. `first_index`: index of the first record it will hold.
    fn ensure_segment(&mut self, first_index: u64) -> Result<()> {
        if self.segment.is_some() {
            return Ok(());
        }
        assert!(
            self.pending.is_empty(),
            "no frames are pending without a segment"
        );
        let (sequence, link) = self.next_segment;
        let now = self.clock.now_ns();
        match create_segment(
            self.storage.as_ref(),
            &self.config.origin,
            sequence,
            first_index,
            link,
            now,
        ) {
            Ok(segment) => {
                self.segment = Some(segment);
                Ok(())
            }
            Err(e) => Err(self.poison(e)),
        }
    }

    /// Frames the block body (or the given body) into the pending buffer at the next offset.
    fn append_frame(&mut self, first_index: u64, kind: u8, body: FrameBody) -> Result<()> {
        self.ensure_segment(first_index)?;
        let segment = self.segment.as_ref().expect("ensured above");
        let offset = segment.length_bytes + self.pending.len() as u64;
        let bytes: &[u8] = match &body {
            FrameBody::Block => &self.body,
            FrameBody::Bytes(bytes) => bytes,
        };
        encode_frame(&mut self.pending, segment.sequence, offset, kind, bytes);
        Ok(())
    }

    /// Writes the pending frames to the segment file (no fsync).
    fn write_pending(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let segment = self
            .segment
            .as_mut()
            .expect("pending frames belong to an open segment");
        let result = segment.file.write_at(segment.length_bytes, &self.pending);
        if let Err(e) = result {
            let error = Error::io(format!("writing {}", segment.name), e);
            return Err(self.poison(error));
        }
        segment.length_bytes += self.pending.len() as u64;
        if segment.length_bytes > segment.allocated_bytes {
            segment.allocated_bytes = segment.length_bytes;
        }
        let chunk = self.config.preallocate_bytes;
        if chunk > 0 && segment.allocated_bytes - segment.length_bytes < chunk / 4 {
            // Refill the zeros ahead in one go when they run low, so that
            // only one barrier in many pays for a size change.
            let target = segment.length_bytes + chunk;
            let (reached, result) =
                write_zeros(segment.file.as_mut(), segment.allocated_bytes, target);
            segment.allocated_bytes = reached;
            match result {
                Ok(()) => {}
                // Preallocation is only an optimisation: on a full disk the
                // records themselves may still fit (and when they do not, the
                // next write says so). No record was touched, so the writer
                // stays healthy; the attempt repeats with the next write.
                Err(e) if e.raw_os_error() == Some(libc_enospc()) => {}
                Err(e) => {
                    let error = Error::io(format!("preallocating {}", segment.name), e);
                    return Err(self.poison(error));
                }
            }
        }
        segment.written_crc.update(&self.pending);
        self.pending.clear();
        self.written_size = self.block_first_index;
        self.unsynced = true;
        Ok(())
    }

    fn sync_segment(&mut self) -> Result<()> {
        if !self.unsynced {
            return Ok(());
        }
        let segment = self
            .segment
            .as_mut()
            .expect("unsynced writes belong to an open segment");
        if let Err(e) = segment.file.sync() {
            let error = Error::SyncFailed {
                context: segment.name.clone(),
                source: e,
            };
            return Err(self.poison(error));
        }
        self.unsynced = false;
        assert!(
            self.written_size >= self.durable_size,
            "durable size never decreases"
        );
        self.durable_size = self.written_size;
        Ok(())
    }

    /// Group commit: writes every appended record and fsyncs once. Returns
    /// the durable tree size (every index below it survives a crash). Also
    /// signs a checkpoint or rotates the segment when one is due.
    pub fn barrier(&mut self) -> Result<u64> {
        self.check_alive()?;
        self.flush_block()?;
        self.write_pending()?;
        self.sync_segment()?;
        self.tick()?;
        Ok(self.durable_size)
    }

    /// Time-driven duties: rotation by size or age, periodic checkpoints. Call it regularly.
    pub fn tick(&mut self) -> Result<()> {
        self.check_alive()?;
        let now = self.clock.now_ns();
        if let Some(segment) = &self.segment {
            let has_records = self.frontier.size() > segment.first_index;
            let age_ms = now.saturating_sub(segment.created_at_ns) / 1_000_000;
            let length = segment.length_bytes + self.pending.len() as u64 + self.block.len() as u64;
            if has_records
                && (length >= self.config.segment_bytes_max
                    || age_ms >= self.config.segment_age_ms_max)
            {
                return self.rotate();
            }
        }
        let since = self.frontier.size() - self.last_checkpoint_size;
        let checkpoint_age_ms = now.saturating_sub(self.last_checkpoint_ns) / 1_000_000;
        if since > 0
            && (since >= self.config.checkpoint_interval_records
                || checkpoint_age_ms >= self.config.checkpoint_interval_ms)
        {
            self.checkpoint()?;
        }
        Ok(())
    }

    fn sign_checkpoint(&self) -> Result<SignedCheckpoint> {
        SignedCheckpoint::create(
            Checkpoint {
                origin: self.config.origin.clone(),
                size: self.frontier.size(),
                root: self.frontier.root(),
                extensions: Vec::new(),
            },
            &self.key,
        )
    }

    /// Writes every record, signs a checkpoint into the log, fsyncs, and replaces the `checkpoint` file.
    pub fn checkpoint(&mut self) -> Result<SignedCheckpoint> {
        self.check_alive()?;
        self.flush_block()?;
        if self.segment.is_none() {
            // Nothing since the last seal: its checkpoint is current.
            if let Some(last) = &self.last_checkpoint {
                if last.checkpoint.size == self.frontier.size()
                    && last.checkpoint.root == self.frontier.root()
                {
                    return Ok(last.clone());
                }
            }
        }
        let checkpoint = self.sign_checkpoint()?;
        self.append_frame(
            self.frontier.size(),
            frame_kind::CHECKPOINT,
            FrameBody::Bytes(checkpoint.note.clone().into_bytes()),
        )?;
        self.write_pending()?;
        self.sync_segment()?;
        self.publish_checkpoint(&checkpoint)?;
        Ok(checkpoint)
    }

    fn publish_checkpoint(&mut self, checkpoint: &SignedCheckpoint) -> Result<()> {
        assert!(
            checkpoint.checkpoint.size <= self.durable_size,
            "only durable records are checkpointed"
        );
        if let Err(e) = replace_file_atomically(
            self.storage.as_ref(),
            CHECKPOINT_TEMPORARY_FILE,
            CHECKPOINT_FILE,
            checkpoint.note.as_bytes(),
        ) {
            return Err(self.poison(e));
        }
        self.last_checkpoint_size = checkpoint.checkpoint.size;
        self.last_checkpoint_ns = self.clock.now_ns();
        self.last_checkpoint = Some(checkpoint.clone());
        Ok(())
    }

    /// Seals the current segment with a signed footer holding a checkpoint.
    /// The next segment is created when the next frame needs it.
    pub fn rotate(&mut self) -> Result<()> {
        self.check_alive()?;
        self.flush_block()?;
        let Some(segment) = &self.segment else {
            return Ok(());
        };
        let now = self.clock.now_ns();
        let checkpoint = self.sign_checkpoint()?;
        let statement = SealStatement {
            segment_sequence: segment.sequence,
            first_index: segment.first_index,
            record_count: self.frontier.size() - segment.first_index,
            tree_size: self.frontier.size(),
            root: self.frontier.root(),
            header_hash: header_hash(&segment.header),
            sealed_at_ns: now,
        };
        let sequence = segment.sequence;
        let seal = Seal {
            signature: self
                .key
                .sign(&statement.signed_message(&self.config.origin)),
            key_id: self.key.id,
            checkpoint_note: checkpoint.note.clone().into_bytes(),
            statement,
        };
        self.append_frame(
            self.frontier.size(),
            frame_kind::SEAL,
            FrameBody::Bytes(seal.encode()),
        )?;
        self.write_pending()?;
        self.trim_preallocated()?;
        self.sync_segment()?;
        self.check_read_back()?;
        self.segment = None;
        self.next_segment = (sequence + 1, seal.statement.link());
        self.publish_checkpoint(&checkpoint)?;
        Ok(())
    }

    /// Cuts the zeros written ahead: a sealed segment ends with its seal.
    fn trim_preallocated(&mut self) -> Result<()> {
        let segment = self.segment.as_mut().expect("a segment is being sealed");
        if self.config.preallocate_bytes == 0 && segment.allocated_bytes == segment.length_bytes {
            return Ok(());
        }
        // Always cut when preallocating: a zero write that failed part of
        // the way may have left zeros beyond `allocated_bytes`.
        if let Err(e) = segment.file.set_len(segment.length_bytes) {
            let error = Error::io(format!("trimming {}", segment.name), e);
            return Err(self.poison(error));
        }
        segment.allocated_bytes = segment.length_bytes;
        self.unsynced = true;
        Ok(())
    }

    /// Reads the sealed segment back and compares it with what was written
    /// (catches lost and misdirected writes before the segment is left behind).
    fn check_read_back(&mut self) -> Result<()> {
        let segment = self.segment.as_ref().expect("a segment is being sealed");
        let name = segment.name.clone();
        let expected_length = segment.length_bytes;
        let expected_crc = segment.written_crc.clone().finalize();
        let bytes = match self.storage.read(&name) {
            Ok(bytes) => bytes,
            Err(e) => return Err(self.poison(Error::io(format!("reading back {name}"), e))),
        };
        let crc = crc32fast::hash(&bytes);
        if bytes.len() as u64 != expected_length || crc != expected_crc {
            let error = Error::tampered(
                &name,
                0,
                format!(
                    "read-back after sealing differs from what was written ({} bytes, CRC {crc:08x}; wrote {expected_length} bytes, CRC {expected_crc:08x}): lost or misdirected write",
                    bytes.len()
                ),
            );
            return Err(self.poison(error));
        }
        Ok(())
    }

    /// Switches to a new signing key: a key-rotation record and a checkpoint
    /// are signed by the old key, then a checkpoint by the new one.
    pub fn rotate_key(&mut self, next: SignerKey, timestamp_ns: u64) -> Result<()> {
        self.append(&Record {
            session: SessionId::default(),
            sequence: 0,
            timestamp_ns,
            body: RecordBody::KeyRotation {
                previous_key: self.key.verifier().to_string(),
                next_key: next.verifier().to_string(),
            },
        })?;
        self.checkpoint()?;
        self.key = next;
        self.checkpoint()?;
        Ok(())
    }

    /// Shutdown: writes everything and signs a final checkpoint.
    pub fn close(mut self) -> Result<SignedCheckpoint> {
        self.check_alive()?;
        if self.last_checkpoint_size == self.frontier.size()
            && self.block_count == 0
            && self.pending.is_empty()
            && !self.unsynced
        {
            if let Some(checkpoint) = &self.last_checkpoint {
                return Ok(checkpoint.clone());
            }
        }
        self.checkpoint()
    }
}

fn create_segment(
    storage: &dyn Storage,
    origin: &str,
    sequence: u64,
    first_index: u64,
    previous_link: Hash,
    now_ns: u64,
) -> Result<ActiveSegment> {
    let name = segment_file_name(sequence);
    let header = SegmentHeader {
        sequence,
        first_index,
        created_at_ns: now_ns,
        previous_link,
        origin: origin.to_string(),
    };
    let bytes = header.encode();
    debug_assert_eq!(
        SegmentHeader::decode(&bytes, &name).ok().as_ref(),
        Some(&header)
    );
    let mut file = storage
        .create_new(&name)
        .map_err(|e| Error::io(format!("creating {name}"), e))?;
    file.write_at(0, &bytes)
        .map_err(|e| Error::io(format!("writing {name}"), e))?;
    file.sync().map_err(|e| Error::SyncFailed {
        context: name.clone(),
        source: e,
    })?;
    storage.sync_directory("").map_err(|e| Error::SyncFailed {
        context: "ledger directory".into(),
        source: e,
    })?;
    let mut written_crc = crc32fast::Hasher::new();
    written_crc.update(&bytes);
    Ok(ActiveSegment {
        sequence,
        name,
        file,
        header: bytes,
        first_index,
        created_at_ns: now_ns,
        length_bytes: HEADER_BYTES as u64,
        allocated_bytes: HEADER_BYTES as u64,
        written_crc,
    })
}

/// Writes zeros to `[from, to)` in pieces of a fixed size (no allocation
/// proportional to the range). Returns how far the zeros reached, also when
/// a write fails part of the way.
fn write_zeros(file: &mut dyn StorageFile, from: u64, to: u64) -> (u64, std::io::Result<()>) {
    const PIECE_BYTES: usize = 64 * 1024;
    static ZEROS: [u8; PIECE_BYTES] = [0u8; PIECE_BYTES];
    let mut offset = from;
    while offset < to {
        let length = (to - offset).min(PIECE_BYTES as u64) as usize;
        if let Err(e) = file.write_at(offset, &ZEROS[..length]) {
            return (offset, Err(e));
        }
        offset += length as u64;
    }
    (offset, Ok(()))
}

/// ENOSPC, the "no space left on device" error number on Linux (the only
/// platform sluice supports), without a libc dependency in the ledger.
const fn libc_enospc() -> i32 {
    28
}

/// Write to `temporary`, fsync, rename over `target`, fsync the directory.
fn replace_file_atomically(
    storage: &dyn Storage,
    temporary: &str,
    target: &str,
    content: &[u8],
) -> Result<()> {
    if storage
        .exists(temporary)
        .map_err(|e| Error::io(format!("checking {temporary}"), e))?
    {
        storage
            .remove(temporary)
            .map_err(|e| Error::io(format!("removing {temporary}"), e))?;
    }
    let mut file = storage
        .create_new(temporary)
        .map_err(|e| Error::io(format!("creating {temporary}"), e))?;
    file.write_at(0, content)
        .map_err(|e| Error::io(format!("writing {temporary}"), e))?;
    file.sync().map_err(|e| Error::SyncFailed {
        context: temporary.to_string(),
        source: e,
    })?;
    storage
        .rename(temporary, target)
        .map_err(|e| Error::io(format!("renaming {temporary} to {target}"), e))?;
    storage.sync_directory("").map_err(|e| Error::SyncFailed {
        context: "ledger directory".into(),
        source: e,
    })?;
    Ok(())
}

/// Creates a new file durably (used for quarantine files).
fn write_durable_file(storage: &dyn Storage, name: &str, content: &[u8]) -> Result<()> {
    let directory = match name.rfind('/') {
        Some(i) => &name[..i],
        None => "",
    };
    if !directory.is_empty()
        && !storage
            .exists(directory)
            .map_err(|e| Error::io(format!("checking {directory}"), e))?
    {
        storage
            .create_directory(directory)
            .map_err(|e| Error::io(format!("creating {directory}"), e))?;
        storage.sync_directory("").map_err(|e| Error::SyncFailed {
            context: "ledger directory".into(),
            source: e,
        })?;
    }
    let mut file = storage
        .create_new(name)
        .map_err(|e| Error::io(format!("creating {name}"), e))?;
    file.write_at(0, content)
        .map_err(|e| Error::io(format!("writing {name}"), e))?;
    file.sync().map_err(|e| Error::SyncFailed {
        context: name.to_string(),
        source: e,
    })?;
    storage
        .sync_directory(directory)
        .map_err(|e| Error::SyncFailed {
            context: directory.to_string(),
            source: e,
        })?;
    Ok(())
}
