//! Minimal JSON rendering for `export` and `replay --json` (no dependency).

use crate::reader::StoredRecord;
use crate::record::RecordBody;

/// Appends `value` as a JSON string literal.
pub fn string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn field_string(out: &mut String, name: &str, value: &str) {
    out.push(',');
    string(out, name);
    out.push(':');
    string(out, value);
}

fn field_number(out: &mut String, name: &str, value: u64) {
    out.push(',');
    string(out, name);
    out.push(':');
    out.push_str(&value.to_string());
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Message bytes as text when they are UTF-8, otherwise base64.
fn field_bytes(out: &mut String, name: &str, bytes: &[u8]) {
    use base64::Engine;
    match std::str::from_utf8(bytes) {
        Ok(text) => field_string(out, name, text),
        Err(_) => field_string(
            out,
            &format!("{name}_base64"),
            &base64::engine::general_purpose::STANDARD.encode(bytes),
        ),
    }
    field_number(out, &format!("{name}_length_bytes"), bytes.len() as u64);
}

/// One record as a single-line JSON object.
pub fn record(stored: &StoredRecord) -> String {
    let d = &stored.descriptor;
    let mut out = String::with_capacity(256);
    out.push_str("{\"index\":");
    out.push_str(&stored.index.to_string());
    field_string(&mut out, "type", RecordBody::kind_name(d.kind));
    field_string(&mut out, "session", &d.session.to_string());
    field_number(&mut out, "sequence", d.sequence);
    field_number(&mut out, "timestamp_ns", d.timestamp_ns);
    field_string(&mut out, "leaf_hash", &hex(&stored.leaf_hash));
    match &stored.body {
        None => {
            let tombstone = stored
                .tombstone
                .as_ref()
                .expect("a record without body has a tombstone");
            out.push_str(",\"redacted\":true");
            field_number(&mut out, "redacted_at_ns", tombstone.redacted_at_ns);
            field_string(&mut out, "redaction_reason", &tombstone.reason);
            field_string(&mut out, "payload_hash", &hex(&tombstone.payload_hash));
        }
        Some(body) => match body {
            RecordBody::SessionOpened {
                agent_identity,
                auth_method,
                client_address,
                tls_version,
                tls_cipher,
                client_certificate_fingerprint,
                target,
            } => {
                field_string(&mut out, "agent_identity", agent_identity);
                field_string(&mut out, "auth_method", auth_method);
                field_string(&mut out, "client_address", client_address);
                field_string(&mut out, "tls_version", tls_version);
                field_string(&mut out, "tls_cipher", tls_cipher);
                field_string(
                    &mut out,
                    "client_certificate_fingerprint",
                    client_certificate_fingerprint,
                );
                field_string(&mut out, "target", target);
            }
            RecordBody::ClientMessage { bytes } | RecordBody::ServerMessage { bytes } => {
                field_bytes(&mut out, "message", bytes)
            }
            RecordBody::ServerMessageDigest {
                length_bytes,
                sha256,
            } => {
                field_number(&mut out, "length_bytes", *length_bytes);
                field_string(&mut out, "sha256", &hex(sha256));
            }
            RecordBody::PolicyDecision {
                statement,
                decision,
                rule,
                reason,
            } => {
                field_string(&mut out, "statement", statement);
                field_string(&mut out, "decision", decision);
                field_string(&mut out, "rule", rule);
                field_string(&mut out, "reason", reason);
            }
            RecordBody::ApprovalEvent {
                approval_id,
                approver,
                outcome,
                detail,
            } => {
                field_string(&mut out, "approval_id", approval_id);
                field_string(&mut out, "approver", approver);
                field_string(&mut out, "outcome", outcome);
                field_string(&mut out, "detail", detail);
            }
            RecordBody::MaskingSummary {
                values_masked,
                rules,
            } => {
                field_number(&mut out, "values_masked", *values_masked);
                field_string(&mut out, "rules", rules);
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
                field_number(&mut out, "statements", *statements);
                field_number(&mut out, "client_messages", *client_messages);
                field_number(&mut out, "server_messages", *server_messages);
                field_number(&mut out, "client_bytes", *client_bytes);
                field_number(&mut out, "server_bytes", *server_bytes);
                field_number(&mut out, "denied_statements", *denied_statements);
                field_string(&mut out, "reason", reason);
            }
            RecordBody::KeyRotation {
                previous_key,
                next_key,
            } => {
                field_string(&mut out, "previous_key", previous_key);
                field_string(&mut out, "next_key", next_key);
            }
            RecordBody::Recovery {
                segment_sequence,
                truncated_at_offset,
                quarantined_bytes,
                quarantine_file,
                reason,
            } => {
                field_number(&mut out, "segment_sequence", *segment_sequence);
                field_number(&mut out, "truncated_at_offset", *truncated_at_offset);
                field_number(&mut out, "quarantined_bytes", *quarantined_bytes);
                field_string(&mut out, "quarantine_file", quarantine_file);
                field_string(&mut out, "reason", reason);
            }
        },
    }
    out.push('}');
    out
}
