//! Errors name the exact violation.

use std::fmt;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where in the ledger a problem was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// File name inside the ledger directory.
    pub file: String,
    /// Byte offset inside that file.
    pub offset: u64,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte offset {}", self.file, self.offset)
    }
}

#[derive(Debug)]
pub enum Error {
    /// An operating-system error outside of fsync.
    Io {
        context: String,
        source: std::io::Error,
    },
    /// fsync (or fdatasync) failed: fatal, never retried.
    SyncFailed {
        context: String,
        source: std::io::Error,
    },
    /// The writer saw a fatal error earlier and refuses to continue.
    WriterPoisoned { first_error: String },
    /// A value exceeded one of the bounds in `limits`.
    LimitExceeded {
        what: &'static str,
        value: u64,
        max: u64,
    },
    /// Input ended before a complete value.
    Truncated {
        what: &'static str,
        needed: u64,
        available: u64,
    },
    /// Bytes left over after a complete value that must fill its container.
    TrailingBytes { what: &'static str, count: u64 },
    /// A field holds a value the format does not allow.
    InvalidField { what: &'static str, reason: String },
    /// The segment header's magic bytes are wrong.
    BadMagic { location: Location },
    /// The segment's format version is not one this build reads.
    UnsupportedVersion { location: Location, version: u16 },
    /// A CRC did not match.
    CrcMismatch {
        location: Location,
        what: &'static str,
        stored: u32,
        computed: u32,
    },
    /// A zstd block is malformed or its size is not the declared one.
    Decompression { location: Location, reason: String },
    /// A text is not a well-formed signed note / checkpoint / proof.
    Parse { what: &'static str, reason: String },
    /// No signature by the trusted key verified.
    SignatureMissing { key_name: String },
    /// A signature by the trusted key was present and did not verify.
    SignatureInvalid { what: String },
    /// A key file is readable by users other than its owner.
    KeyPermissions { path: String, mode: u32 },
    /// Structural tampering or corruption: the ledger must not be opened.
    Tampered { location: Location, reason: String },
    /// The directory is missing the parts of a ledger.
    NotALedger { reason: String },
    /// A Merkle proof did not verify, or was asked for impossible sizes.
    Proof { reason: String },
    /// A record index or session was not found.
    NotFound { what: String },
    /// Bad command-line usage.
    Usage { reason: String },
}

impl Error {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
    pub fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidField {
            what,
            reason: reason.into(),
        }
    }
    pub fn parse(what: &'static str, reason: impl Into<String>) -> Self {
        Error::Parse {
            what,
            reason: reason.into(),
        }
    }
    pub fn tampered(file: &str, offset: u64, reason: impl Into<String>) -> Self {
        Error::Tampered {
            location: Location {
                file: file.to_string(),
                offset,
            },
            reason: reason.into(),
        }
    }
    pub fn limit(what: &'static str, value: u64, max: u64) -> Self {
        Error::LimitExceeded { what, value, max }
    }
    /// The location of the damage, when the error is about ledger bytes.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Error::BadMagic { location }
            | Error::UnsupportedVersion { location, .. }
            | Error::CrcMismatch { location, .. }
            | Error::Decompression { location, .. }
            | Error::Tampered { location, .. } => Some(location),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { context, source } => write!(f, "{context}: {source}"),
            Error::SyncFailed { context, source } => {
                write!(f, "fsync failed ({context}): {source}; the ledger writer stops (fsync errors are never retried)")
            }
            Error::WriterPoisoned { first_error } => {
                write!(f, "the ledger writer stopped after a fatal error: {first_error}")
            }
            Error::LimitExceeded { what, value, max } => write!(f, "{what} is {value}, above the limit of {max}"),
            Error::Truncated { what, needed, available } => {
                write!(f, "{what} is truncated: needs {needed} bytes, {available} available")
            }
            Error::TrailingBytes { what, count } => write!(f, "{count} unexpected bytes after {what}"),
            Error::InvalidField { what, reason } => write!(f, "invalid {what}: {reason}"),
            Error::BadMagic { location } => write!(f, "{location}: not a sluice ledger segment (bad magic)"),
            Error::UnsupportedVersion { location, version } => {
                write!(f, "{location}: unsupported segment format version {version}")
            }
            Error::CrcMismatch { location, what, stored, computed } => {
                write!(f, "{location}: {what} CRC mismatch (stored {stored:08x}, computed {computed:08x})")
            }
            Error::Decompression { location, reason } => write!(f, "{location}: bad compressed block: {reason}"),
            Error::Parse { what, reason } => write!(f, "malformed {what}: {reason}"),
            Error::SignatureMissing { key_name } => {
                write!(f, "no signature by the trusted key {key_name:?}")
            }
            Error::SignatureInvalid { what } => write!(f, "signature does not verify: {what}"),
            Error::KeyPermissions { path, mode } => write!(
                f,
                "private key {path} has mode {mode:04o}: it must not be readable or writable by group or others (chmod 600)"
            ),
            Error::Tampered { location, reason } => write!(f, "{location}: {reason}"),
            Error::NotALedger { reason } => write!(f, "not a ledger: {reason}"),
            Error::Proof { reason } => write!(f, "proof: {reason}"),
            Error::NotFound { what } => write!(f, "{what} not found"),
            Error::Usage { reason } => write!(f, "{reason}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } | Error::SyncFailed { source, .. } => Some(source),
            _ => None,
        }
    }
}
