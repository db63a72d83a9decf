//! Typed ledger records, their canonical payload encoding, and Merkle leaves.

use crate::codec::{Decoder, Encoder};
use crate::error::{Error, Result};
use crate::limits::{MESSAGE_BYTES_MAX, PAYLOAD_BYTES_MAX, TEXT_FIELD_BYTES_MAX};
use crate::merkle::{leaf_hash, Hash};
use sha2::{Digest, Sha256};

/// 16-byte session identifier, shown as 32 lowercase hex digits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub [u8; 16]);

impl SessionId {
    pub fn parse(text: &str) -> Result<Self> {
        if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::invalid(
                "session id",
                "expected 32 hexadecimal digits",
            ));
        }
        let mut out = [0u8; 16];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
                .map_err(|_| Error::invalid("session id", "bad hex"))?;
        }
        Ok(SessionId(out))
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// What a record says. The numbering is part of the format (`FORMAT.md`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordBody {
    SessionOpened {
        agent_identity: String,
        auth_method: String,
        client_address: String,
        tls_version: String,
        tls_cipher: String,
        client_certificate_fingerprint: String,
        target: String,
    },
    ClientMessage {
        bytes: Vec<u8>,
    },
    ServerMessage {
        bytes: Vec<u8>,
    },
    ServerMessageDigest {
        length_bytes: u64,
        sha256: [u8; 32],
    },
    PolicyDecision {
        statement: String,
        decision: String,
        rule: String,
        reason: String,
    },
    ApprovalEvent {
        approval_id: String,
        approver: String,
        outcome: String,
        detail: String,
    },
    MaskingSummary {
        values_masked: u64,
        rules: String,
    },
    SessionClosed {
        statements: u64,
        client_messages: u64,
        server_messages: u64,
        client_bytes: u64,
        server_bytes: u64,
        denied_statements: u64,
        reason: String,
    },
    KeyRotation {
        previous_key: String,
        next_key: String,
    },
    Recovery {
        segment_sequence: u64,
        truncated_at_offset: u64,
        quarantined_bytes: u64,
        quarantine_file: String,
        reason: String,
    },
}

/// Record kind bytes.
pub mod kind {
    pub const SESSION_OPENED: u8 = 1;
    pub const CLIENT_MESSAGE: u8 = 2;
    pub const SERVER_MESSAGE: u8 = 3;
    pub const SERVER_MESSAGE_DIGEST: u8 = 4;
    pub const POLICY_DECISION: u8 = 5;
    pub const APPROVAL_EVENT: u8 = 6;
    pub const MASKING_SUMMARY: u8 = 7;
    pub const SESSION_CLOSED: u8 = 8;
    pub const KEY_ROTATION: u8 = 9;
    pub const RECOVERY: u8 = 10;
}

impl RecordBody {
    pub fn kind(&self) -> u8 {
        match self {
            RecordBody::SessionOpened { .. } => kind::SESSION_OPENED,
            RecordBody::ClientMessage { .. } => kind::CLIENT_MESSAGE,
            RecordBody::ServerMessage { .. } => kind::SERVER_MESSAGE,
            RecordBody::ServerMessageDigest { .. } => kind::SERVER_MESSAGE_DIGEST,
            RecordBody::PolicyDecision { .. } => kind::POLICY_DECISION,
            RecordBody::ApprovalEvent { .. } => kind::APPROVAL_EVENT,
            RecordBody::MaskingSummary { .. } => kind::MASKING_SUMMARY,
            RecordBody::SessionClosed { .. } => kind::SESSION_CLOSED,
            RecordBody::KeyRotation { .. } => kind::KEY_ROTATION,
            RecordBody::Recovery { .. } => kind::RECOVERY,
        }
    }

    pub fn kind_name(kind: u8) -> &'static str {
        match kind {
            kind::SESSION_OPENED => "session_opened",
            kind::CLIENT_MESSAGE => "client_message",
            kind::SERVER_MESSAGE => "server_message",
            kind::SERVER_MESSAGE_DIGEST => "server_message_digest",
            kind::POLICY_DECISION => "policy_decision",
            kind::APPROVAL_EVENT => "approval_event",
            kind::MASKING_SUMMARY => "masking_summary",
            kind::SESSION_CLOSED => "session_closed",
            kind::KEY_ROTATION => "key_rotation",
            kind::RECOVERY => "recovery",
            _ => "unknown",
        }
    }

    /// Appends the canonical payload encoding.
    pub fn encode_payload(&self, out: &mut Vec<u8>) -> Result<()> {
        let start = out.len();
        let mut e = Encoder::new(out);
        let text = |e: &mut Encoder, field: &'static str, value: &str| -> Result<()> {
            if value.len() > TEXT_FIELD_BYTES_MAX {
                return Err(Error::limit(
                    field,
                    value.len() as u64,
                    TEXT_FIELD_BYTES_MAX as u64,
                ));
            }
            e.sized(value.as_bytes());
            Ok(())
        };
        match self {
            RecordBody::SessionOpened {
                agent_identity,
                auth_method,
                client_address,
                tls_version,
                tls_cipher,
                client_certificate_fingerprint,
                target,
            } => {
                text(&mut e, "agent identity length in bytes", agent_identity)?;
                text(&mut e, "auth method length in bytes", auth_method)?;
                text(&mut e, "client address length in bytes", client_address)?;
                text(&mut e, "TLS version length in bytes", tls_version)?;
                text(&mut e, "TLS cipher length in bytes", tls_cipher)?;
                text(
                    &mut e,
                    "client certificate fingerprint length in bytes",
                    client_certificate_fingerprint,
                )?;
                text(&mut e, "target length in bytes", target)?;
            }
            RecordBody::ClientMessage { bytes } | RecordBody::ServerMessage { bytes } => {
                if bytes.len() > MESSAGE_BYTES_MAX {
                    return Err(Error::limit(
                        "message length in bytes",
                        bytes.len() as u64,
                        MESSAGE_BYTES_MAX as u64,
                    ));
                }
                e.bytes(bytes);
            }
            RecordBody::ServerMessageDigest {
                length_bytes,
                sha256,
            } => {
                e.u64(*length_bytes);
                e.bytes(sha256);
            }
            RecordBody::PolicyDecision {
                statement,
                decision,
                rule,
                reason,
            } => {
                text(&mut e, "statement length in bytes", statement)?;
                text(&mut e, "decision length in bytes", decision)?;
                text(&mut e, "rule length in bytes", rule)?;
                text(&mut e, "reason length in bytes", reason)?;
            }
            RecordBody::ApprovalEvent {
                approval_id,
                approver,
                outcome,
                detail,
            } => {
                text(&mut e, "approval id length in bytes", approval_id)?;
                text(&mut e, "approver length in bytes", approver)?;
                text(&mut e, "outcome length in bytes", outcome)?;
                text(&mut e, "detail length in bytes", detail)?;
            }
            RecordBody::MaskingSummary {
                values_masked,
                rules,
            } => {
                e.u64(*values_masked);
                text(&mut e, "rules length in bytes", rules)?;
            }
            RecordBody::SessionClosed {
                statements,
                client_messages,
                server_messages,
                client_bytes,
                server_bytes,
                denied_statements,
                reason,
            } => {
                for value in [
                    statements,
                    client_messages,
                    server_messages,
                    client_bytes,
                    server_bytes,
                    denied_statements,
                ] {
                    e.u64(*value);
                }
                text(&mut e, "reason length in bytes", reason)?;
            }
            RecordBody::KeyRotation {
                previous_key,
                next_key,
            } => {
                text(&mut e, "previous key length in bytes", previous_key)?;
                text(&mut e, "next key length in bytes", next_key)?;
            }
            RecordBody::Recovery {
                segment_sequence,
                truncated_at_offset,
                quarantined_bytes,
                quarantine_file,
                reason,
            } => {
                e.u64(*segment_sequence);
                e.u64(*truncated_at_offset);
                e.u64(*quarantined_bytes);
                text(&mut e, "quarantine file length in bytes", quarantine_file)?;
                text(&mut e, "reason length in bytes", reason)?;
            }
        }
        let written = out.len() - start;
        if written > PAYLOAD_BYTES_MAX {
            out.truncate(start);
            return Err(Error::limit(
                "record payload length in bytes",
                written as u64,
                PAYLOAD_BYTES_MAX as u64,
            ));
        }
        Ok(())
    }

    /// Decodes a payload of the given kind; the payload must be consumed exactly.
    pub fn decode_payload(kind_byte: u8, payload: &[u8]) -> Result<Self> {
        if payload.len() > PAYLOAD_BYTES_MAX {
            return Err(Error::limit(
                "record payload length in bytes",
                payload.len() as u64,
                PAYLOAD_BYTES_MAX as u64,
            ));
        }
        let mut d = Decoder::new(payload, "record payload");
        let t = TEXT_FIELD_BYTES_MAX;
        let body = match kind_byte {
            kind::SESSION_OPENED => RecordBody::SessionOpened {
                agent_identity: d.text("agent identity length in bytes", t)?,
                auth_method: d.text("auth method length in bytes", t)?,
                client_address: d.text("client address length in bytes", t)?,
                tls_version: d.text("TLS version length in bytes", t)?,
                tls_cipher: d.text("TLS cipher length in bytes", t)?,
                client_certificate_fingerprint: d
                    .text("client certificate fingerprint length in bytes", t)?,
                target: d.text("target length in bytes", t)?,
            },
            kind::CLIENT_MESSAGE | kind::SERVER_MESSAGE => {
                if payload.len() > MESSAGE_BYTES_MAX {
                    return Err(Error::limit(
                        "message length in bytes",
                        payload.len() as u64,
                        MESSAGE_BYTES_MAX as u64,
                    ));
                }
                let bytes = d.take(payload.len())?.to_vec();
                if kind_byte == kind::CLIENT_MESSAGE {
                    RecordBody::ClientMessage { bytes }
                } else {
                    RecordBody::ServerMessage { bytes }
                }
            }
            kind::SERVER_MESSAGE_DIGEST => RecordBody::ServerMessageDigest {
                length_bytes: d.u64()?,
                sha256: d.array()?,
            },
            kind::POLICY_DECISION => RecordBody::PolicyDecision {
                statement: d.text("statement length in bytes", t)?,
                decision: d.text("decision length in bytes", t)?,
                rule: d.text("rule length in bytes", t)?,
                reason: d.text("reason length in bytes", t)?,
            },
            kind::APPROVAL_EVENT => RecordBody::ApprovalEvent {
                approval_id: d.text("approval id length in bytes", t)?,
                approver: d.text("approver length in bytes", t)?,
                outcome: d.text("outcome length in bytes", t)?,
                detail: d.text("detail length in bytes", t)?,
            },
            kind::MASKING_SUMMARY => RecordBody::MaskingSummary {
                values_masked: d.u64()?,
                rules: d.text("rules length in bytes", t)?,
            },
            kind::SESSION_CLOSED => RecordBody::SessionClosed {
                statements: d.u64()?,
                client_messages: d.u64()?,
                server_messages: d.u64()?,
                client_bytes: d.u64()?,
                server_bytes: d.u64()?,
                denied_statements: d.u64()?,
                reason: d.text("reason length in bytes", t)?,
            },
            kind::KEY_ROTATION => RecordBody::KeyRotation {
                previous_key: d.text("previous key length in bytes", t)?,
                next_key: d.text("next key length in bytes", t)?,
            },
            kind::RECOVERY => RecordBody::Recovery {
                segment_sequence: d.u64()?,
                truncated_at_offset: d.u64()?,
                quarantined_bytes: d.u64()?,
                quarantine_file: d.text("quarantine file length in bytes", t)?,
                reason: d.text("reason length in bytes", t)?,
            },
            other => {
                return Err(Error::invalid(
                    "record kind",
                    format!("unknown kind {other}"),
                ))
            }
        };
        d.finish()?;
        Ok(body)
    }
}

/// One record as the appliance writes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub session: SessionId,
    /// Sequence number within its session.
    pub sequence: u64,
    /// Unix time in nanoseconds.
    pub timestamp_ns: u64,
    pub body: RecordBody,
}

/// Version byte at the start of every leaf.
pub const LEAF_VERSION: u8 = 1;
/// Bytes of the record descriptor: kind, session, sequence, timestamp, payload length.
pub const DESCRIPTOR_BYTES: usize = 1 + 16 + 8 + 8 + 4;
/// Bytes of a Merkle leaf: version, descriptor, salted payload hash.
pub const LEAF_BYTES: usize = 1 + DESCRIPTOR_BYTES + 32;
/// Bytes of the per-record salt.
pub const SALT_BYTES: usize = 16;

/// The canonical descriptor of a record: what its leaf commits to besides the payload hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Descriptor {
    pub kind: u8,
    pub session: SessionId,
    pub sequence: u64,
    pub timestamp_ns: u64,
    pub payload_length_bytes: u32,
}

impl Descriptor {
    /// The fixed 37-byte encoding (no allocation: this is on the append path).
    pub fn to_bytes(&self) -> [u8; DESCRIPTOR_BYTES] {
        let mut out = [0u8; DESCRIPTOR_BYTES];
        out[0] = self.kind;
        out[1..17].copy_from_slice(&self.session.0);
        out[17..25].copy_from_slice(&self.sequence.to_le_bytes());
        out[25..33].copy_from_slice(&self.timestamp_ns.to_le_bytes());
        out[33..37].copy_from_slice(&self.payload_length_bytes.to_le_bytes());
        out
    }
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_bytes());
    }
    pub fn decode(d: &mut Decoder) -> Result<Self> {
        Ok(Descriptor {
            kind: d.u8()?,
            session: SessionId(d.array()?),
            sequence: d.u64()?,
            timestamp_ns: d.u64()?,
            payload_length_bytes: d.u32()?,
        })
    }
}

/// SHA-256(salt || payload).
pub fn payload_hash(salt: &[u8; SALT_BYTES], payload: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(salt);
    hasher.update(payload);
    hasher.finalize().into()
}

/// The exact leaf bytes: LEAF_VERSION || descriptor || payload hash.
pub fn leaf_bytes(descriptor: &Descriptor, payload_hash: &Hash) -> [u8; LEAF_BYTES] {
    let mut out = [0u8; LEAF_BYTES];
    out[0] = LEAF_VERSION;
    out[1..1 + DESCRIPTOR_BYTES].copy_from_slice(&descriptor.to_bytes());
    out[1 + DESCRIPTOR_BYTES..].copy_from_slice(payload_hash);
    out
}

pub fn record_leaf_hash(descriptor: &Descriptor, payload_hash: &Hash) -> Hash {
    leaf_hash(&leaf_bytes(descriptor, payload_hash))
}
