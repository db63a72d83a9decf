//! Every size and count the ledger accepts is bounded here, by name.

/// Longest log origin (the first line of a checkpoint), in bytes.
pub const ORIGIN_BYTES_MAX: usize = 255;
/// Longest key name in a signed note, in bytes.
pub const KEY_NAME_BYTES_MAX: usize = 255;
/// Longest signed note accepted by the parser (text plus signatures), in bytes.
pub const NOTE_BYTES_MAX: usize = 64 * 1024;
/// Most signature lines a signed note may carry (the spec asks verifiers to accept at least 16).
pub const NOTE_SIGNATURES_MAX: usize = 64;
/// Longest tlog-proof file accepted by the parser, in bytes.
pub const PROOF_BYTES_MAX: usize = 128 * 1024;
/// Most hashes in one inclusion or consistency proof (a tree of 2^63 leaves needs at most 2*63).
pub const PROOF_HASHES_MAX: usize = 128;
/// Longest text field (identity, address, reason, ...) inside a record, in bytes.
pub const TEXT_FIELD_BYTES_MAX: usize = 64 * 1024;
/// Largest message body (client or server bytes) stored in one record, in bytes.
pub const MESSAGE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Largest encoded record payload, in bytes (a message plus room for its fields).
pub const PAYLOAD_BYTES_MAX: usize = MESSAGE_BYTES_MAX + 64 * 1024;
/// Largest uncompressed block (the records of one block frame), in bytes.
pub const BLOCK_UNCOMPRESSED_BYTES_MAX: usize = PAYLOAD_BYTES_MAX + 64 * 1024;
/// Most records in one block.
pub const BLOCK_RECORDS_MAX: usize = 1 << 20;
/// Largest frame body, in bytes (a block that did not compress is stored raw).
pub const FRAME_BODY_BYTES_MAX: usize = BLOCK_UNCOMPRESSED_BYTES_MAX + 1024;
/// Largest segment file the reader accepts, in bytes.
pub const SEGMENT_BYTES_MAX: u64 = 16 * 1024 * 1024 * 1024;
/// Most segments in one ledger directory.
pub const SEGMENTS_MAX: u64 = 10_000_000;
/// Largest private-key or verifier-key file, in bytes.
pub const KEY_FILE_BYTES_MAX: u64 = 4096;
/// Largest `checkpoint` file, in bytes.
pub const CHECKPOINT_FILE_BYTES_MAX: u64 = NOTE_BYTES_MAX as u64;
/// Most bytes moved to the quarantine folder by one recovery.
pub const QUARANTINE_BYTES_MAX: u64 = 2 * FRAME_BODY_BYTES_MAX as u64;
/// Most zero bytes the writer keeps ahead of a segment's last frame.
pub const PREALLOCATE_BYTES_MAX: u64 = 256 * 1024 * 1024;
