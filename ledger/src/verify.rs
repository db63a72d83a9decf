//! Full verification of a ledger directory, as the auditor runs it.

use crate::error::{Error, Result};
use crate::keys::VerifierKey;
use crate::merkle::Hash;
use crate::note::SignedCheckpoint;
use crate::reader::{read_checkpoint_file, scan, ScanOptions, CHECKPOINT_FILE};
use crate::storage::Storage;
use sha2::{Digest, Sha256};
use std::collections::HashSet;

/// What an intact ledger holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifySummary {
    pub origin: String,
    pub segments: u64,
    pub records: u64,
    pub sessions: u64,
    pub bytes: u64,
    pub checkpoints: u64,
    pub first_timestamp_ns: Option<u64>,
    pub last_timestamp_ns: Option<u64>,
    pub root: Hash,
    /// Size of the latest signed checkpoint.
    pub signed_size: u64,
    /// Records after the latest signed checkpoint (not yet covered by a signature).
    pub unsigned_records: u64,
    /// The trusted checkpoint's size, when one was given and is consistent.
    pub trusted_size: Option<u64>,
}

/// Checks CRCs, segment order and links, record indices, the Merkle root
/// behind every checkpoint and seal, every signature, the `checkpoint` file,
/// and consistency with a checkpoint the auditor kept from before.
pub fn verify_ledger(
    storage: &dyn Storage,
    keys: &[VerifierKey],
    trusted_checkpoint: Option<&[u8]>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<VerifySummary> {
    if keys.is_empty() {
        return Err(Error::Usage {
            reason: "at least one verifier key is needed".into(),
        });
    }
    let trusted = match trusted_checkpoint {
        Some(bytes) => Some(open_with_any(bytes, keys).map_err(|e| Error::Usage {
            reason: format!("the trusted checkpoint does not verify: {e}"),
        })?),
        None => None,
    };
    let options = ScanOptions {
        verifiers: Some(keys),
        capture_root_at: trusted.as_ref().map(|t| t.checkpoint.size),
        ..ScanOptions::default()
    };
    let mut sessions = HashSet::new();
    let scanned = scan(
        storage,
        &options,
        &mut |record| {
            if record.descriptor.session.0 != [0u8; 16] {
                sessions.insert(record.descriptor.session);
            }
            Ok(())
        },
        progress,
    )?;
    if scanned.segments.is_empty() {
        return Err(Error::NotALedger {
            reason: format!("no segment files in {}", storage.describe()),
        });
    }
    let origin = scanned.origin.clone().unwrap_or_default();
    let size = scanned.frontier.size();
    let checkpoint_file = read_checkpoint_file(storage)?;
    match &checkpoint_file {
        Some(bytes) => {
            // Cheap check first: the file must repeat a checkpoint the log holds (and whose signature was checked).
            let digest: Hash = Sha256::digest(bytes).into();
            if !scanned.checkpoint_note_hashes.contains(&digest) {
                return Err(Error::tampered(
                    CHECKPOINT_FILE,
                    0,
                    "the checkpoint file's checkpoint does not appear in the log: the file was altered, or the log truncated or replaced",
                ));
            }
            let checkpoint = open_with_any(bytes, keys).map_err(|e| {
                Error::tampered(
                    CHECKPOINT_FILE,
                    0,
                    format!("the checkpoint file does not verify: {e}"),
                )
            })?;
            if checkpoint.checkpoint.origin != origin {
                return Err(Error::tampered(
                    CHECKPOINT_FILE,
                    0,
                    format!(
                        "the checkpoint file is for origin {:?}, the log is {:?}",
                        checkpoint.checkpoint.origin, origin
                    ),
                ));
            }
            if checkpoint.checkpoint.size > size {
                return Err(Error::tampered(
                    CHECKPOINT_FILE,
                    0,
                    format!("the checkpoint file covers {} records but the log holds {size}: the log was truncated", checkpoint.checkpoint.size),
                ));
            }
            let digest: Hash = Sha256::digest(bytes).into();
            if !scanned.checkpoint_note_hashes.contains(&digest) {
                return Err(Error::tampered(CHECKPOINT_FILE, 0, "the checkpoint file's checkpoint does not appear in the log: the log was truncated or replaced"));
            }
        }
        None if !scanned.checkpoints.is_empty() => {
            return Err(Error::NotALedger {
                reason: "the checkpoint file is missing".into(),
            });
        }
        None => {}
    }
    let mut trusted_size = None;
    if let Some(trusted) = &trusted {
        let t = &trusted.checkpoint;
        if t.origin != origin {
            return Err(Error::Tampered {
                location: crate::error::Location {
                    file: "(trusted checkpoint)".into(),
                    offset: 0,
                },
                reason: format!(
                    "the trusted checkpoint is for origin {:?}, the log is {:?}",
                    t.origin, origin
                ),
            });
        }
        let last_file = scanned
            .segments
            .last()
            .map(|s| s.file.clone())
            .unwrap_or_default();
        if t.size > size {
            return Err(Error::tampered(
                &last_file,
                scanned.segments.last().map_or(0, |s| s.length_bytes),
                format!("rollback or truncation: the trusted checkpoint has {} records, the log only {size}", t.size),
            ));
        }
        if scanned.captured_root != Some(t.root) {
            return Err(Error::tampered(
                &last_file,
                0,
                format!("the log is not consistent with the trusted checkpoint: the first {} records hash to a different root (history rewritten)", t.size),
            ));
        }
        trusted_size = Some(t.size);
    }
    let signed_size = scanned
        .last_checkpoint
        .as_ref()
        .map_or(0, |c| c.checkpoint.size);
    Ok(VerifySummary {
        origin,
        segments: scanned.segments.len() as u64,
        records: size,
        sessions: sessions.len() as u64,
        bytes: scanned.bytes,
        checkpoints: scanned.checkpoints.len() as u64,
        first_timestamp_ns: scanned.first_timestamp_ns,
        last_timestamp_ns: scanned.last_timestamp_ns,
        root: scanned.frontier.root(),
        signed_size,
        unsigned_records: size - signed_size,
        trusted_size,
    })
}

fn open_with_any(bytes: &[u8], keys: &[VerifierKey]) -> Result<SignedCheckpoint> {
    let mut last = None;
    for key in keys {
        match SignedCheckpoint::open(bytes, key) {
            Ok(c) => return Ok(c),
            Err(e @ Error::SignatureInvalid { .. }) => return Err(e),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("keys is not empty"))
}
