//! C2SP signed-note and tlog-checkpoint.

use crate::error::{Error, Result};
use crate::keys::{SignerKey, VerifierKey};
use crate::limits::{NOTE_BYTES_MAX, NOTE_SIGNATURES_MAX, ORIGIN_BYTES_MAX};
use crate::merkle::Hash;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// The em dash (U+2014) that starts every signature line.
pub const SIGNATURE_PREFIX: &str = "\u{2014} ";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    pub key_name: String,
    pub key_id: [u8; 4],
    /// The signature bytes after the key ID.
    pub signature: Vec<u8>,
}

/// A parsed signed note: the signed text and its signature lines (not yet verified).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedNote {
    /// The text, ending in `\n`, exactly as signed.
    pub text: String,
    pub signatures: Vec<NoteSignature>,
}

impl SignedNote {
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        const WHAT: &str = "signed note";
        if bytes.len() > NOTE_BYTES_MAX {
            return Err(Error::limit(
                "signed note size in bytes",
                bytes.len() as u64,
                NOTE_BYTES_MAX as u64,
            ));
        }
        let all = std::str::from_utf8(bytes).map_err(|_| Error::parse(WHAT, "not valid UTF-8"))?;
        if all.chars().any(|c| c.is_control() && c != '\n') {
            return Err(Error::parse(
                WHAT,
                "contains a control character other than newline",
            ));
        }
        let Some(split) = all.rfind("\n\n") else {
            return Err(Error::parse(
                WHAT,
                "no blank line between the text and the signatures",
            ));
        };
        let text = &all[..split + 1];
        let block = &all[split + 2..];
        if !block.ends_with('\n') {
            return Err(Error::parse(
                WHAT,
                "the signature block does not end with a newline",
            ));
        }
        let mut signatures = Vec::new();
        for line in block[..block.len() - 1].split('\n') {
            if signatures.len() == NOTE_SIGNATURES_MAX {
                return Err(Error::limit(
                    "signature lines in a note",
                    NOTE_SIGNATURES_MAX as u64 + 1,
                    NOTE_SIGNATURES_MAX as u64,
                ));
            }
            let Some(rest) = line.strip_prefix(SIGNATURE_PREFIX) else {
                return Err(Error::parse(
                    WHAT,
                    "a signature line does not start with an em dash and a space",
                ));
            };
            let Some((name, b64)) = rest.split_once(' ') else {
                return Err(Error::parse(
                    WHAT,
                    "a signature line has no space between key name and signature",
                ));
            };
            crate::keys::check_key_name(name)
                .map_err(|_| Error::parse(WHAT, "a signature line has an invalid key name"))?;
            let raw = STANDARD
                .decode(b64)
                .map_err(|_| Error::parse(WHAT, "a signature is not standard base64"))?;
            if raw.len() < 5 {
                return Err(Error::parse(
                    WHAT,
                    "a signature is shorter than a key ID plus one byte",
                ));
            }
            signatures.push(NoteSignature {
                key_name: name.to_string(),
                key_id: [raw[0], raw[1], raw[2], raw[3]],
                signature: raw[4..].to_vec(),
            });
        }
        if signatures.is_empty() {
            return Err(Error::parse(WHAT, "no signature lines"));
        }
        Ok(SignedNote {
            text: text.to_string(),
            signatures,
        })
    }

    /// Signs `text` (which must end in a newline) with each key.
    pub fn sign(text: &str, keys: &[&SignerKey]) -> Result<String> {
        check_text(text)?;
        let mut out = String::with_capacity(text.len() + 128 * keys.len());
        out.push_str(text);
        out.push('\n');
        for key in keys {
            let mut raw = key.id.to_vec();
            raw.extend_from_slice(&key.sign(text.as_bytes()));
            out.push_str(SIGNATURE_PREFIX);
            out.push_str(&key.name);
            out.push(' ');
            out.push_str(&STANDARD.encode(raw));
            out.push('\n');
        }
        debug_assert!(SignedNote::parse(out.as_bytes()).is_ok());
        Ok(out)
    }

    /// Checks the signature by `verifier`: signatures by other keys are
    /// ignored, a bad signature by this key rejects the note.
    pub fn verify(&self, verifier: &VerifierKey) -> Result<()> {
        let mut verified = false;
        for signature in &self.signatures {
            if signature.key_name != verifier.name || signature.key_id != verifier.id {
                continue;
            }
            if !verifier.verify(self.text.as_bytes(), &signature.signature) {
                return Err(Error::SignatureInvalid {
                    what: format!("the note's signature by {}", verifier.name),
                });
            }
            verified = true;
        }
        if !verified {
            return Err(Error::SignatureMissing {
                key_name: verifier.name.clone(),
            });
        }
        Ok(())
    }
}

fn check_text(text: &str) -> Result<()> {
    if !text.ends_with('\n') {
        return Err(Error::parse("note text", "does not end with a newline"));
    }
    if text.contains("\n\n") || text.starts_with('\n') {
        return Err(Error::parse("note text", "contains a blank line"));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(Error::parse(
            "note text",
            "contains a control character other than newline",
        ));
    }
    Ok(())
}

/// A C2SP tlog-checkpoint body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    pub extensions: Vec<String>,
}

impl Checkpoint {
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        );
        for line in &self.extensions {
            text.push_str(line);
            text.push('\n');
        }
        text
    }

    pub fn parse(text: &str) -> Result<Self> {
        const WHAT: &str = "checkpoint";
        let Some(body) = text.strip_suffix('\n') else {
            return Err(Error::parse(WHAT, "does not end with a newline"));
        };
        let mut lines = body.split('\n');
        let origin = lines.next().unwrap_or("");
        check_origin(origin)?;
        let size_text = lines
            .next()
            .ok_or_else(|| Error::parse(WHAT, "no tree size line"))?;
        let size = parse_decimal(size_text).ok_or_else(|| {
            Error::parse(
                WHAT,
                "the tree size is not a decimal number without leading zeros",
            )
        })?;
        let root_text = lines
            .next()
            .ok_or_else(|| Error::parse(WHAT, "no root hash line"))?;
        let root_raw = STANDARD
            .decode(root_text)
            .map_err(|_| Error::parse(WHAT, "the root hash is not standard base64"))?;
        let root: Hash = root_raw
            .try_into()
            .map_err(|_| Error::parse(WHAT, "the root hash is not 32 bytes"))?;
        let mut extensions = Vec::new();
        for line in lines {
            if line.is_empty() {
                return Err(Error::parse(WHAT, "empty extension line"));
            }
            extensions.push(line.to_string());
        }
        Ok(Checkpoint {
            origin: origin.to_string(),
            size,
            root,
            extensions,
        })
    }
}

/// Checks a log origin: non-empty, bounded, printable, no newline.
pub fn check_origin(origin: &str) -> Result<()> {
    if origin.is_empty() {
        return Err(Error::parse("checkpoint", "empty origin"));
    }
    if origin.len() > ORIGIN_BYTES_MAX {
        return Err(Error::limit(
            "origin length in bytes",
            origin.len() as u64,
            ORIGIN_BYTES_MAX as u64,
        ));
    }
    if origin.chars().any(|c| c.is_control()) {
        return Err(Error::parse(
            "checkpoint",
            "the origin contains a control character",
        ));
    }
    Ok(())
}

/// Decimal without sign or leading zeros ("0" alone is fine).
pub fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if text.len() > 1 && text.starts_with('0') {
        return None;
    }
    text.parse().ok()
}

/// A checkpoint together with the exact signed note it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub note: String,
    pub checkpoint: Checkpoint,
}

impl SignedCheckpoint {
    pub fn create(checkpoint: Checkpoint, key: &SignerKey) -> Result<Self> {
        let note = SignedNote::sign(&checkpoint.to_text(), &[key])?;
        Ok(SignedCheckpoint { note, checkpoint })
    }

    /// Parses a signed checkpoint without verifying its signature.
    pub fn parse_unverified(bytes: &[u8]) -> Result<Self> {
        let note = SignedNote::parse(bytes)?;
        let checkpoint = Checkpoint::parse(&note.text)?;
        Ok(SignedCheckpoint {
            note: String::from_utf8(bytes.to_vec()).expect("parse checked UTF-8"),
            checkpoint,
        })
    }

    /// Parses and verifies a signed checkpoint.
    pub fn open(bytes: &[u8], verifier: &VerifierKey) -> Result<Self> {
        let note = SignedNote::parse(bytes)?;
        note.verify(verifier)?;
        let checkpoint = Checkpoint::parse(&note.text)?;
        Ok(SignedCheckpoint {
            note: String::from_utf8(bytes.to_vec()).expect("parse checked UTF-8"),
            checkpoint,
        })
    }
}
