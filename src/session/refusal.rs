//! Refusing frontend messages without breaking the protocol (sans-IO).
//!
//! When sluice must not forward a statement (its record cannot be made
//! durable, or, later, a policy blocks it), the agent must still get exactly
//! the responses PostgreSQL would give for a failed statement: one
//! ErrorResponse in the right place of a pipeline, the rest of an extended
//! batch skipped until Sync, and, inside a transaction block, the block in
//! the failed state. Emulating those rules in the proxy is fragile, so sluice
//! lets PostgreSQL apply them: the refused message is replaced by a *probe*
//! that fails harmlessly in the same position (a syntax error on a unique
//! marker, or a CopyFail carrying it), and the ErrorResponse that comes back
//! with the marker is rewritten into sluice's own error before the agent sees
//! it. The probe touches no data and names no object.
//!
//! Messages after a refused extended-protocol message, up to the next Sync,
//! are not forwarded at all (PostgreSQL would skip them anyway), so nothing
//! of a refused batch reaches the server.

use std::collections::VecDeque;

use bytes::BytesMut;

use crate::protocol::pg::{
    backend::{parse_backend, BackendMessage},
    build::{self, Severity},
    frame::Frame,
};

/// Refusals awaiting their probe's error; older ones are forgotten (their
/// probe was skipped by the server because an earlier error came first).
pub const PENDING_REFUSALS_MAX: usize = 64;
const MARKER_PREFIX: &str = "sluice_refused_";

struct Pending {
    marker: String,
    sqlstate: &'static str,
    message: String,
    hint: Option<String>,
}

/// Per-session refusal state, shared by both directions of a session.
pub struct Refusals {
    session_nonce: String,
    counter: u64,
    pending: VecDeque<Pending>,
    /// A refused extended-protocol message was replaced by a probe: drop the
    /// agent's messages up to (not including) the next Sync.
    discarding_until_sync: bool,
    /// A refused COPY: drop CopyData/CopyDone/CopyFail until another message.
    discarding_copy: bool,
    pub refused_messages: u64,
}

/// Why and how to refuse.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub sqlstate: &'static str,
    pub message: String,
    pub hint: Option<String>,
}

impl Refusals {
    pub fn new(session_nonce: u64) -> Self {
        Refusals {
            session_nonce: format!("{session_nonce:016x}"),
            counter: 0,
            pending: VecDeque::new(),
            discarding_until_sync: false,
            discarding_copy: false,
            refused_messages: 0,
        }
    }

    fn marker(&mut self, refusal: &Refusal) -> String {
        self.counter += 1;
        let marker = format!("{MARKER_PREFIX}{}_{}", self.session_nonce, self.counter);
        if self.pending.len() == PENDING_REFUSALS_MAX {
            self.pending.pop_front();
        }
        self.pending.push_back(Pending {
            marker: marker.clone(),
            sqlstate: refusal.sqlstate,
            message: refusal.message.clone(),
            hint: refusal.hint.clone(),
        });
        marker
    }

    /// True while earlier refusals require dropping the agent's messages.
    pub fn is_discarding(&self) -> bool {
        self.discarding_until_sync || self.discarding_copy
    }

    /// Passes one forwardable frame through the discard state: returns
    /// whether it may be forwarded. Use for frames that are not refused.
    pub fn admit(&mut self, frame: Frame<'_>) -> bool {
        if self.discarding_copy {
            if matches!(frame.tag, b'd' | b'c' | b'f') {
                return false;
            }
            self.discarding_copy = false;
        }
        if self.discarding_until_sync {
            if frame.tag == b'S' {
                self.discarding_until_sync = false;
                return true;
            }
            // Terminate always goes through: the agent is leaving.
            return frame.tag == b'X';
        }
        true
    }

    /// Appends to `out` what replaces `frame`, which must not be forwarded.
    pub fn refuse(&mut self, frame: Frame<'_>, refusal: &Refusal, out: &mut BytesMut) {
        if !self.admit(frame) {
            return;
        }
        self.plan_refusal(frame.tag);
        self.emit_probe(frame, refusal, out);
    }

    /// The discard state, to restore if a planned chunk is abandoned.
    pub fn discard_flags(&self) -> (bool, bool) {
        (self.discarding_until_sync, self.discarding_copy)
    }

    pub fn restore_discard_flags(&mut self, flags: (bool, bool)) {
        (self.discarding_until_sync, self.discarding_copy) = flags;
    }

    /// Advances the discard state for an admitted frame that will be
    /// refused, as [`refuse`](Self::refuse) does, without emitting anything.
    pub fn plan_refusal(&mut self, tag: u8) {
        match tag {
            b'Q' | b'F' | b'S' | b'X' => {}
            b'd' | b'c' | b'f' => self.discarding_copy = true,
            _ => self.discarding_until_sync = true,
        }
    }

    /// Appends the probe that replaces an admitted, planned refusal. The tag
    /// of what is sent: a probe Query for Query and FunctionCall (the server
    /// answers ReadyForQuery after it), a probe Parse for the extended
    /// protocol (a named statement, so the agent's unnamed statement
    /// survives; the server then skips everything to Sync), a CopyFail for
    /// COPY data; Sync and Terminate carry no statement and pass unchanged.
    pub fn emit_probe(&mut self, frame: Frame<'_>, refusal: &Refusal, out: &mut BytesMut) {
        match frame.tag {
            b'S' | b'X' => out.extend_from_slice(&frame.to_wire()),
            b'Q' | b'F' => {
                self.refused_messages += 1;
                let marker = self.marker(refusal);
                build::query(out, &marker);
            }
            b'd' | b'c' | b'f' => {
                self.refused_messages += 1;
                let marker = self.marker(refusal);
                build::copy_fail(out, &marker);
            }
            _ => {
                self.refused_messages += 1;
                let marker = self.marker(refusal);
                build::parse(out, &marker, &marker, &[]);
            }
        }
    }

    /// Whether any probe is outstanding (the response side can skip parsing
    /// ErrorResponses otherwise).
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// If `frame` is the error a probe provoked, returns sluice's error to
    /// deliver instead.
    pub fn rewrite_error(&mut self, frame: Frame<'_>) -> Option<BytesMut> {
        if frame.tag != b'E' || self.pending.is_empty() {
            return None;
        }
        let Ok(BackendMessage::ErrorResponse(fields)) = parse_backend(frame) else {
            return None;
        };
        // Bytes, not text: the marker is ASCII in every server encoding,
        // and the message around it may not be UTF-8.
        let message = fields.message()?;
        let position = self
            .pending
            .iter()
            .position(|p| contains_marker(message, p.marker.as_bytes()))?;
        let pending = self.pending.remove(position)?;
        // Probes older than this one were skipped by the server.
        self.pending.drain(..position);
        let mut out = BytesMut::new();
        build::error_response(
            &mut out,
            Severity::Error,
            pending.sqlstate,
            &pending.message,
            None,
            pending.hint.as_deref(),
        );
        Some(out)
    }
}

/// The marker must match as a whole token: `_1` must not match `_12`.
fn contains_marker(text: &[u8], marker: &[u8]) -> bool {
    memchr::memmem::find_iter(text, marker).any(|at| {
        text.get(at + marker.len())
            .is_none_or(|&c| !c.is_ascii_alphanumeric() && c != b'_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::pg::{frames, parse_frontend, FrontendMessage};

    fn refusal() -> Refusal {
        Refusal {
            sqlstate: "53100",
            message: "ledger disk full".into(),
            hint: None,
        }
    }

    fn frontend_tags(bytes: &[u8]) -> Vec<u8> {
        frames(bytes, 1 << 20).map(|f| f.unwrap().tag).collect()
    }

    #[test]
    fn simple_query_becomes_a_probe_query() {
        let mut r = Refusals::new(7);
        let mut input = BytesMut::new();
        build::query(&mut input, "DROP TABLE t");
        let frame = frames(&input, 1 << 20).next().unwrap().unwrap();
        let mut out = BytesMut::new();
        r.refuse(frame, &refusal(), &mut out);
        let probe = frames(&out, 1 << 20).next().unwrap().unwrap();
        match parse_frontend(probe).unwrap() {
            FrontendMessage::Query { sql } => {
                let sql = std::str::from_utf8(sql).unwrap();
                assert!(sql.starts_with("sluice_refused_0000000000000007_"), "{sql}");
                assert!(!sql.contains("DROP"));
            }
            other => panic!("{other:?}"),
        }
        assert!(!r.is_discarding());
        assert_eq!(r.refused_messages, 1);
    }

    #[test]
    fn extended_batch_is_replaced_until_sync() {
        let mut r = Refusals::new(1);
        let mut input = BytesMut::new();
        build::parse(&mut input, "", "DELETE FROM t", &[]);
        build::bind(&mut input, "", "", &[], &[], &[]);
        build::execute(&mut input, "", 0);
        build::sync(&mut input);
        build::query(&mut input, "SELECT 1");
        let mut out = BytesMut::new();
        let mut framed = frames(&input, 1 << 20);
        // Refuse the Parse; the rest passes through the discard state.
        r.refuse(framed.next().unwrap().unwrap(), &refusal(), &mut out);
        for frame in framed {
            let frame = frame.unwrap();
            if r.admit(frame) {
                out.extend_from_slice(&frame.to_wire());
            }
        }
        assert_eq!(frontend_tags(&out), vec![b'P', b'S', b'Q']);
        assert!(!r.is_discarding());
    }

    #[test]
    fn probe_error_is_rewritten_and_others_are_not() {
        let mut r = Refusals::new(0xabc);
        let mut input = BytesMut::new();
        build::query(&mut input, "SELECT 1");
        let frame = frames(&input, 1 << 20).next().unwrap().unwrap();
        let mut out = BytesMut::new();
        r.refuse(frame, &refusal(), &mut out);
        let marker = "sluice_refused_0000000000000abc_1";
        // An unrelated error passes untouched.
        let mut other = BytesMut::new();
        build::error_response(
            &mut other,
            Severity::Error,
            "42601",
            "syntax error at or near \"sluice_refused_0000000000000abc_12\"",
            None,
            None,
        );
        assert!(r
            .rewrite_error(frames(&other, 1 << 20).next().unwrap().unwrap())
            .is_none());
        let mut server = BytesMut::new();
        build::error_response(
            &mut server,
            Severity::Error,
            "42601",
            &format!("syntax error at or near \"{marker}\""),
            None,
            None,
        );
        let rewritten = r
            .rewrite_error(frames(&server, 1 << 20).next().unwrap().unwrap())
            .expect("probe error must be rewritten");
        let frame = frames(&rewritten, 1 << 20).next().unwrap().unwrap();
        match parse_backend(frame).unwrap() {
            BackendMessage::ErrorResponse(fields) => {
                assert_eq!(fields.sqlstate(), Some("53100"));
                assert_eq!(fields.message(), Some(&b"ledger disk full"[..]));
            }
            other => panic!("{other:?}"),
        }
        assert!(!r.has_pending());
    }

    #[test]
    fn copy_data_becomes_copy_fail_and_the_rest_is_dropped() {
        let mut r = Refusals::new(3);
        let mut input = BytesMut::new();
        build::copy_data(&mut input, b"1\tx\n");
        build::copy_data(&mut input, b"2\ty\n");
        build::copy_done(&mut input);
        build::query(&mut input, "SELECT 1");
        let mut out = BytesMut::new();
        let mut framed = frames(&input, 1 << 20);
        r.refuse(framed.next().unwrap().unwrap(), &refusal(), &mut out);
        for frame in framed {
            let frame = frame.unwrap();
            if r.admit(frame) {
                out.extend_from_slice(&frame.to_wire());
            }
        }
        assert_eq!(frontend_tags(&out), vec![b'f', b'Q']);
    }

    #[test]
    fn pending_refusals_are_bounded() {
        let mut r = Refusals::new(9);
        let mut input = BytesMut::new();
        build::query(&mut input, "SELECT 1");
        let frame = frames(&input, 1 << 20).next().unwrap().unwrap();
        for _ in 0..(PENDING_REFUSALS_MAX * 3) {
            let mut out = BytesMut::new();
            r.refuse(frame, &refusal(), &mut out);
        }
        assert_eq!(r.pending.len(), PENDING_REFUSALS_MAX);
    }
}
