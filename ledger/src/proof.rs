//! Proof formats: C2SP `tlog-proof` (inclusion) and this crate's consistency-proof text.

use crate::error::{Error, Result};
use crate::keys::VerifierKey;
use crate::limits::{PROOF_BYTES_MAX, PROOF_HASHES_MAX};
use crate::merkle::{leaf_hash, verify_consistency, verify_inclusion, Hash};
use crate::note::{parse_decimal, SignedCheckpoint};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

pub const TLOG_PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";
pub const CONSISTENCY_PROOF_HEADER: &str = "sluice-ledger/consistency-proof@v1";

/// An offline inclusion proof (C2SP tlog-proof).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlogProof {
    pub extra: Option<Vec<u8>>,
    pub index: u64,
    pub hashes: Vec<Hash>,
    /// The signed checkpoint, verbatim.
    pub checkpoint: Vec<u8>,
}

fn hash_lines(lines: &mut std::str::Split<'_, char>, what: &'static str) -> Result<Vec<Hash>> {
    let mut hashes = Vec::new();
    loop {
        let Some(line) = lines.next() else {
            return Err(Error::parse(what, "no blank line before the checkpoint"));
        };
        if line.is_empty() {
            return Ok(hashes);
        }
        if hashes.len() == PROOF_HASHES_MAX {
            return Err(Error::limit(
                "proof hash count",
                PROOF_HASHES_MAX as u64 + 1,
                PROOF_HASHES_MAX as u64,
            ));
        }
        let raw = STANDARD
            .decode(line)
            .map_err(|_| Error::parse(what, "a proof hash is not standard base64"))?;
        hashes.push(
            raw.try_into()
                .map_err(|_| Error::parse(what, "a proof hash is not 32 bytes"))?,
        );
    }
}

fn rest_after_blank(text: &str, consumed_lines: usize) -> &str {
    let mut position = 0;
    for _ in 0..consumed_lines {
        position += text[position..]
            .find('\n')
            .map_or(text.len() - position, |i| i + 1);
    }
    &text[position..]
}

impl TlogProof {
    pub fn encode(&self) -> String {
        let mut out = format!("{TLOG_PROOF_HEADER}\n");
        if let Some(extra) = &self.extra {
            out.push_str(&format!("extra {}\n", STANDARD.encode(extra)));
        }
        out.push_str(&format!("index {}\n", self.index));
        for hash in &self.hashes {
            out.push_str(&STANDARD.encode(hash));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(std::str::from_utf8(&self.checkpoint).expect("checkpoints are UTF-8"));
        out
    }

    pub fn parse(bytes: &[u8]) -> Result<Self> {
        const WHAT: &str = "tlog-proof";
        if bytes.len() > PROOF_BYTES_MAX {
            return Err(Error::limit(
                "tlog-proof size in bytes",
                bytes.len() as u64,
                PROOF_BYTES_MAX as u64,
            ));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| Error::parse(WHAT, "not valid UTF-8"))?;
        let mut lines = text.split('\n');
        if lines.next() != Some(TLOG_PROOF_HEADER) {
            return Err(Error::parse(
                WHAT,
                format!("the first line is not {TLOG_PROOF_HEADER}"),
            ));
        }
        let mut consumed = 1;
        let mut line = lines
            .next()
            .ok_or_else(|| Error::parse(WHAT, "no index line"))?;
        consumed += 1;
        let mut extra = None;
        if let Some(encoded) = line.strip_prefix("extra ") {
            extra = Some(
                STANDARD
                    .decode(encoded)
                    .map_err(|_| Error::parse(WHAT, "the extra data is not standard base64"))?,
            );
            line = lines
                .next()
                .ok_or_else(|| Error::parse(WHAT, "no index line"))?;
            consumed += 1;
        }
        let index = line
            .strip_prefix("index ")
            .and_then(parse_decimal)
            .ok_or_else(|| Error::parse(WHAT, "expected \"index <decimal>\""))?;
        let hashes = hash_lines(&mut lines, WHAT)?;
        consumed += hashes.len() + 1;
        let checkpoint = rest_after_blank(text, consumed);
        if checkpoint.is_empty() {
            return Err(Error::parse(WHAT, "no checkpoint after the blank line"));
        }
        // The checkpoint must itself be a well-formed signed checkpoint.
        SignedCheckpoint::parse_unverified(checkpoint.as_bytes())?;
        Ok(TlogProof {
            extra,
            index,
            hashes,
            checkpoint: checkpoint.as_bytes().to_vec(),
        })
    }

    /// Verifies the checkpoint signature and that `leaf` (the leaf bytes) is at `index`.
    pub fn verify(&self, verifier: &VerifierKey, leaf: &[u8]) -> Result<SignedCheckpoint> {
        let checkpoint = SignedCheckpoint::open(&self.checkpoint, verifier)?;
        verify_inclusion(
            self.index,
            checkpoint.checkpoint.size,
            &leaf_hash(leaf),
            &self.hashes,
            &checkpoint.checkpoint.root,
        )?;
        Ok(checkpoint)
    }
}

/// A consistency proof from an old tree size to the tree of a signed checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsistencyProof {
    pub old_size: u64,
    pub hashes: Vec<Hash>,
    pub checkpoint: Vec<u8>,
}

impl ConsistencyProof {
    pub fn encode(&self) -> String {
        let mut out = format!("{CONSISTENCY_PROOF_HEADER}\nold {}\n", self.old_size);
        for hash in &self.hashes {
            out.push_str(&STANDARD.encode(hash));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(std::str::from_utf8(&self.checkpoint).expect("checkpoints are UTF-8"));
        out
    }

    pub fn parse(bytes: &[u8]) -> Result<Self> {
        const WHAT: &str = "consistency proof";
        if bytes.len() > PROOF_BYTES_MAX {
            return Err(Error::limit(
                "consistency proof size in bytes",
                bytes.len() as u64,
                PROOF_BYTES_MAX as u64,
            ));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| Error::parse(WHAT, "not valid UTF-8"))?;
        let mut lines = text.split('\n');
        if lines.next() != Some(CONSISTENCY_PROOF_HEADER) {
            return Err(Error::parse(
                WHAT,
                format!("the first line is not {CONSISTENCY_PROOF_HEADER}"),
            ));
        }
        let old_size = lines
            .next()
            .and_then(|l| l.strip_prefix("old "))
            .and_then(parse_decimal)
            .ok_or_else(|| Error::parse(WHAT, "expected \"old <decimal>\""))?;
        let hashes = hash_lines(&mut lines, WHAT)?;
        let checkpoint = rest_after_blank(text, 2 + hashes.len() + 1);
        if checkpoint.is_empty() {
            return Err(Error::parse(WHAT, "no checkpoint after the blank line"));
        }
        SignedCheckpoint::parse_unverified(checkpoint.as_bytes())?;
        Ok(ConsistencyProof {
            old_size,
            hashes,
            checkpoint: checkpoint.as_bytes().to_vec(),
        })
    }

    /// Verifies the new checkpoint's signature and that the old checkpoint's tree is its prefix.
    pub fn verify(
        &self,
        verifier: &VerifierKey,
        old: &SignedCheckpoint,
    ) -> Result<SignedCheckpoint> {
        let new = SignedCheckpoint::open(&self.checkpoint, verifier)?;
        if old.checkpoint.origin != new.checkpoint.origin {
            return Err(Error::Proof {
                reason: "the two checkpoints are for different logs".into(),
            });
        }
        if old.checkpoint.size != self.old_size {
            return Err(Error::Proof {
                reason: format!(
                    "the proof starts at size {} but the old checkpoint has size {}",
                    self.old_size, old.checkpoint.size
                ),
            });
        }
        verify_consistency(
            old.checkpoint.size,
            new.checkpoint.size,
            &old.checkpoint.root,
            &new.checkpoint.root,
            &self.hashes,
        )?;
        Ok(new)
    }
}
