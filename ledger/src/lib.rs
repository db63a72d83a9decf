//! `sluice-ledger`: the append-only, tamper-evident ledger that records every
//! session the sluice appliance proxies.
//!
//! * Records are grouped into zstd-compressed blocks inside CRC-protected
//!   frames inside segment files (see `FORMAT.md`).
//! * Every record is a leaf of one RFC 6962 Merkle tree; checkpoints of that
//!   tree are C2SP `tlog-checkpoint` bodies signed as C2SP `signed-note`s
//!   with Ed25519.
//! * Inclusion proofs are emitted in the C2SP `tlog-proof` format, and
//!   consistency proofs between two tree sizes as RFC 6962 hash lists.
//!
//! This crate does not depend on the appliance: an auditor can build and run
//! the verifier alone.

#![forbid(unsafe_code)]

pub mod codec;
pub mod error;
pub mod fuzz;
pub mod json;
pub mod keys;
pub mod limits;
pub mod merkle;
pub mod note;
pub mod proof;
pub mod reader;
pub mod record;
pub mod redact;
pub mod segment;
pub mod storage;
pub mod verify;
pub mod writer;

pub use error::{Error, Result};
pub use keys::{SignerKey, VerifierKey};
pub use reader::{LedgerReader, StoredRecord};
pub use record::{Record, RecordBody, SessionId};
pub use storage::{FsStorage, SimStorage, Storage};
pub use writer::{LedgerWriter, OpenReport, WriterConfig};
