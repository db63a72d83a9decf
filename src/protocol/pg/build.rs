//! Builders that append complete wire messages to a caller's `BytesMut`.
//!
//! Each builder writes the tag, a placeholder length word and the body, then
//! patches the length, so a message is never assembled in a temporary
//! buffer.
//!
//! # Strings and NUL bytes
//!
//! Protocol strings are NUL-terminated, so an interior NUL would end the
//! string early and turn the rest into garbage (or into another message's
//! worth of fields). Builders therefore replace every interior NUL of a
//! string argument with U+FFFD (the UTF-8 replacement character) rather than
//! returning an error or truncating:
//!
//! * the builders stay infallible, which matters on error paths (sending a
//!   FATAL must not itself fail);
//! * nothing after the NUL is silently dropped: an error message keeps its
//!   detail, and a query containing NUL does not quietly become its prefix —
//!   U+FFFD outside a string literal is a syntax error, so the statement
//!   fails closed instead of running something shorter than what was sent.
//!
//! Raw byte payloads (CopyData, SASL data, parameter values) are
//! length-prefixed and are written unchanged.
//!
//! Frontend builders take `impl AsRef<[u8]>` for names and SQL so callers can
//! pass `&str` as well as bytes taken from a parsed message.
//!
//! # Panics
//!
//! Builders panic only if a message would exceed the protocol's own limits
//! (a body over `i32::MAX` bytes, or more than 65535 elements in an Int16
//! counted list); such a message cannot be encoded at all.

use bytes::{BufMut, BytesMut};

use super::backend::FieldDescription;
use super::startup::{CANCEL_REQUEST_CODE, GSS_ENC_REQUEST_CODE, SSL_REQUEST_CODE};
use super::types::{FormatCode, TargetKind, TransactionStatus};

/// Severity of an ErrorResponse that sluice sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    /// The statement failed; the session continues.
    Error,
    /// The session ends after this message.
    Fatal,
    /// All sessions end (not used by sluice itself, kept for completeness).
    Panic,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "ERROR",
            Self::Fatal => "FATAL",
            Self::Panic => "PANIC",
        }
    }
}

const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();

/// Starts a tagged message and returns the offset of its tag.
fn begin(out: &mut BytesMut, tag: u8) -> usize {
    let start = out.len();
    out.put_u8(tag);
    out.put_i32(0);
    start
}

/// Patches the length word of the message (tagged or not) whose length word
/// starts at `length_at`.
fn finish_at(out: &mut BytesMut, length_at: usize) {
    let length = i32::try_from(out.len() - length_at).expect("message longer than i32::MAX bytes");
    if let Some(word) = out.get_mut(length_at..length_at + 4) {
        word.copy_from_slice(&length.to_be_bytes());
    }
}

fn finish(out: &mut BytesMut, start: usize) {
    finish_at(out, start + 1);
}

/// Appends a tagged message with an empty body.
fn empty(out: &mut BytesMut, tag: u8) {
    out.put_u8(tag);
    out.put_i32(4);
}

/// Writes a protocol string: interior NULs become U+FFFD, then the
/// terminator.
fn put_cstr(out: &mut BytesMut, s: &[u8]) {
    let mut rest = s;
    while let Some(nul) = memchr::memchr(0, rest) {
        let (head, tail) = rest.split_at(nul);
        out.extend_from_slice(head);
        out.extend_from_slice(REPLACEMENT);
        rest = tail.get(1..).unwrap_or_default();
    }
    out.extend_from_slice(rest);
    out.put_u8(0);
}

fn count_u16(n: usize) -> u16 {
    u16::try_from(n).expect("more than 65535 elements in an Int16-counted list")
}

fn put_formats(out: &mut BytesMut, formats: &[FormatCode]) {
    out.put_u16(count_u16(formats.len()));
    for f in formats {
        out.put_i16(f.as_i16());
    }
}

fn put_value(out: &mut BytesMut, value: Option<&[u8]>) {
    match value {
        None => out.put_i32(-1),
        Some(v) => {
            out.put_i32(i32::try_from(v.len()).expect("value longer than i32::MAX bytes"));
            out.extend_from_slice(v);
        }
    }
}

fn put_values(out: &mut BytesMut, values: &[Option<&[u8]>]) {
    out.put_u16(count_u16(values.len()));
    for v in values {
        put_value(out, *v);
    }
}

// ---------------------------------------------------------------------------
// Backend messages.
// ---------------------------------------------------------------------------

/// ErrorResponse with severity (both the localized `S` and the
/// never-translated `V` field), SQLSTATE, message and optional detail and
/// hint.
pub fn error_response(
    out: &mut BytesMut,
    severity: Severity,
    sqlstate: &str,
    message: &str,
    detail: Option<&str>,
    hint: Option<&str>,
) {
    let start = begin(out, b'E');
    for code in [b'S', b'V'] {
        out.put_u8(code);
        put_cstr(out, severity.as_str().as_bytes());
    }
    out.put_u8(b'C');
    put_cstr(out, sqlstate.as_bytes());
    out.put_u8(b'M');
    put_cstr(out, message.as_bytes());
    if let Some(detail) = detail {
        out.put_u8(b'D');
        put_cstr(out, detail.as_bytes());
    }
    if let Some(hint) = hint {
        out.put_u8(b'H');
        put_cstr(out, hint.as_bytes());
    }
    out.put_u8(0);
    finish(out, start);
}

/// NoticeResponse with severity NOTICE.
pub fn notice_response(out: &mut BytesMut, sqlstate: &str, message: &str, detail: Option<&str>) {
    let start = begin(out, b'N');
    for code in [b'S', b'V'] {
        out.put_u8(code);
        put_cstr(out, b"NOTICE");
    }
    out.put_u8(b'C');
    put_cstr(out, sqlstate.as_bytes());
    out.put_u8(b'M');
    put_cstr(out, message.as_bytes());
    if let Some(detail) = detail {
        out.put_u8(b'D');
        put_cstr(out, detail.as_bytes());
    }
    out.put_u8(0);
    finish(out, start);
}

/// ErrorResponse (`tag` b'E') or NoticeResponse (b'N') with arbitrary
/// fields, in order. A field code of 0 would end the list early, so such
/// fields are skipped.
pub fn fields_message(out: &mut BytesMut, tag: u8, fields: &[(u8, &[u8])]) {
    let start = begin(out, tag);
    for (code, value) in fields {
        if *code == 0 {
            continue;
        }
        out.put_u8(*code);
        put_cstr(out, value);
    }
    out.put_u8(0);
    finish(out, start);
}

fn authentication(out: &mut BytesMut, code: i32, data: &[u8]) {
    let start = begin(out, b'R');
    out.put_i32(code);
    out.extend_from_slice(data);
    finish(out, start);
}

pub fn authentication_ok(out: &mut BytesMut) {
    authentication(out, 0, &[]);
}

pub fn authentication_kerberos_v5(out: &mut BytesMut) {
    authentication(out, 2, &[]);
}

pub fn authentication_cleartext_password(out: &mut BytesMut) {
    authentication(out, 3, &[]);
}

pub fn authentication_md5_password(out: &mut BytesMut, salt: [u8; 4]) {
    authentication(out, 5, &salt);
}

pub fn authentication_gss(out: &mut BytesMut) {
    authentication(out, 7, &[]);
}

pub fn authentication_gss_continue(out: &mut BytesMut, data: &[u8]) {
    authentication(out, 8, data);
}

pub fn authentication_sspi(out: &mut BytesMut) {
    authentication(out, 9, &[]);
}

/// AuthenticationSASL listing `mechanisms` (for example `SCRAM-SHA-256`).
pub fn authentication_sasl(out: &mut BytesMut, mechanisms: &[&str]) {
    let start = begin(out, b'R');
    out.put_i32(10);
    for m in mechanisms {
        put_cstr(out, m.as_bytes());
    }
    out.put_u8(0);
    finish(out, start);
}

pub fn authentication_sasl_continue(out: &mut BytesMut, data: &[u8]) {
    authentication(out, 11, data);
}

pub fn authentication_sasl_final(out: &mut BytesMut, data: &[u8]) {
    authentication(out, 12, data);
}

pub fn parameter_status(out: &mut BytesMut, name: &str, value: &str) {
    let start = begin(out, b'S');
    put_cstr(out, name.as_bytes());
    put_cstr(out, value.as_bytes());
    finish(out, start);
}

/// BackendKeyData; `secret_key` is 4 bytes in protocol 3.0 and up to 256
/// in 3.2.
pub fn backend_key_data(out: &mut BytesMut, process_id: u32, secret_key: &[u8]) {
    let start = begin(out, b'K');
    out.put_u32(process_id);
    out.extend_from_slice(secret_key);
    finish(out, start);
}

pub fn ready_for_query(out: &mut BytesMut, status: TransactionStatus) {
    out.put_u8(b'Z');
    out.put_i32(5);
    out.put_u8(status.as_byte());
}

/// NegotiateProtocolVersion: the newest minor version the server supports
/// and the `_pq_.` options it did not recognise.
pub fn negotiate_protocol_version(out: &mut BytesMut, newest_minor: u32, unrecognized: &[&str]) {
    let start = begin(out, b'v');
    out.put_u32(newest_minor);
    out.put_i32(i32::try_from(unrecognized.len()).expect("more than i32::MAX options"));
    for option in unrecognized {
        put_cstr(out, option.as_bytes());
    }
    finish(out, start);
}

pub fn row_description(out: &mut BytesMut, fields: &[FieldDescription<'_>]) {
    let start = begin(out, b'T');
    out.put_u16(count_u16(fields.len()));
    for f in fields {
        put_cstr(out, f.name);
        out.put_u32(f.table_oid);
        out.put_i16(f.column_attribute);
        out.put_u32(f.type_oid);
        out.put_i16(f.type_size);
        out.put_i32(f.type_modifier);
        out.put_i16(f.format.as_i16());
    }
    finish(out, start);
}

/// DataRow; `None` is SQL NULL.
pub fn data_row(out: &mut BytesMut, values: &[Option<&[u8]>]) {
    let start = begin(out, b'D');
    put_values(out, values);
    finish(out, start);
}

pub fn command_complete(out: &mut BytesMut, tag: impl AsRef<[u8]>) {
    let start = begin(out, b'C');
    put_cstr(out, tag.as_ref());
    finish(out, start);
}

pub fn empty_query_response(out: &mut BytesMut) {
    empty(out, b'I');
}

pub fn parse_complete(out: &mut BytesMut) {
    empty(out, b'1');
}

pub fn bind_complete(out: &mut BytesMut) {
    empty(out, b'2');
}

pub fn close_complete(out: &mut BytesMut) {
    empty(out, b'3');
}

pub fn no_data(out: &mut BytesMut) {
    empty(out, b'n');
}

pub fn portal_suspended(out: &mut BytesMut) {
    empty(out, b's');
}

pub fn parameter_description(out: &mut BytesMut, parameter_types: &[u32]) {
    let start = begin(out, b't');
    out.put_u16(count_u16(parameter_types.len()));
    for oid in parameter_types {
        out.put_u32(*oid);
    }
    finish(out, start);
}

fn copy_response(
    out: &mut BytesMut,
    tag: u8,
    overall_format: FormatCode,
    column_formats: &[FormatCode],
) {
    let start = begin(out, tag);
    // The overall format is an Int8; both codes fit.
    out.put_i8(overall_format.as_i16() as i8);
    put_formats(out, column_formats);
    finish(out, start);
}

pub fn copy_in_response(
    out: &mut BytesMut,
    overall_format: FormatCode,
    column_formats: &[FormatCode],
) {
    copy_response(out, b'G', overall_format, column_formats);
}

pub fn copy_out_response(
    out: &mut BytesMut,
    overall_format: FormatCode,
    column_formats: &[FormatCode],
) {
    copy_response(out, b'H', overall_format, column_formats);
}

pub fn copy_both_response(
    out: &mut BytesMut,
    overall_format: FormatCode,
    column_formats: &[FormatCode],
) {
    copy_response(out, b'W', overall_format, column_formats);
}

pub fn notification_response(
    out: &mut BytesMut,
    process_id: u32,
    channel: impl AsRef<[u8]>,
    payload: impl AsRef<[u8]>,
) {
    let start = begin(out, b'A');
    out.put_u32(process_id);
    put_cstr(out, channel.as_ref());
    put_cstr(out, payload.as_ref());
    finish(out, start);
}

pub fn function_call_response(out: &mut BytesMut, value: Option<&[u8]>) {
    let start = begin(out, b'V');
    put_value(out, value);
    finish(out, start);
}

// ---------------------------------------------------------------------------
// Messages sent in both directions.
// ---------------------------------------------------------------------------

pub fn copy_data(out: &mut BytesMut, data: &[u8]) {
    let start = begin(out, b'd');
    out.extend_from_slice(data);
    finish(out, start);
}

pub fn copy_done(out: &mut BytesMut) {
    empty(out, b'c');
}

// ---------------------------------------------------------------------------
// Startup-phase packets (untagged).
// ---------------------------------------------------------------------------

/// StartupMessage; `protocol_version` is `major << 16 | minor`.
pub fn startup_message(out: &mut BytesMut, protocol_version: u32, parameters: &[(&str, &str)]) {
    let start = out.len();
    out.put_i32(0);
    out.put_u32(protocol_version);
    for (name, value) in parameters {
        put_cstr(out, name.as_bytes());
        put_cstr(out, value.as_bytes());
    }
    out.put_u8(0);
    finish_at(out, start);
}

pub fn ssl_request(out: &mut BytesMut) {
    out.put_i32(8);
    out.put_u32(SSL_REQUEST_CODE);
}

pub fn gss_enc_request(out: &mut BytesMut) {
    out.put_i32(8);
    out.put_u32(GSS_ENC_REQUEST_CODE);
}

pub fn cancel_request(out: &mut BytesMut, process_id: u32, secret_key: &[u8]) {
    let start = out.len();
    out.put_i32(0);
    out.put_u32(CANCEL_REQUEST_CODE);
    out.put_u32(process_id);
    out.extend_from_slice(secret_key);
    finish_at(out, start);
}

// ---------------------------------------------------------------------------
// Frontend messages.
// ---------------------------------------------------------------------------

/// PasswordMessage carrying a cleartext or MD5 password; adds the NUL.
pub fn password_message(out: &mut BytesMut, password: &[u8]) {
    let start = begin(out, b'p');
    put_cstr(out, password);
    finish(out, start);
}

/// SASLInitialResponse; `data` of `None` is sent as length -1 (no initial
/// response).
pub fn sasl_initial_response(out: &mut BytesMut, mechanism: &str, data: Option<&[u8]>) {
    let start = begin(out, b'p');
    put_cstr(out, mechanism.as_bytes());
    put_value(out, data);
    finish(out, start);
}

/// SASLResponse (also used to re-encode any `p` message body verbatim).
pub fn sasl_response(out: &mut BytesMut, data: &[u8]) {
    let start = begin(out, b'p');
    out.extend_from_slice(data);
    finish(out, start);
}

pub fn query(out: &mut BytesMut, sql: impl AsRef<[u8]>) {
    let start = begin(out, b'Q');
    put_cstr(out, sql.as_ref());
    finish(out, start);
}

pub fn parse(
    out: &mut BytesMut,
    statement: impl AsRef<[u8]>,
    sql: impl AsRef<[u8]>,
    parameter_types: &[u32],
) {
    let start = begin(out, b'P');
    put_cstr(out, statement.as_ref());
    put_cstr(out, sql.as_ref());
    out.put_u16(count_u16(parameter_types.len()));
    for oid in parameter_types {
        out.put_u32(*oid);
    }
    finish(out, start);
}

/// Bind; `None` parameters are SQL NULL. The format lists follow the
/// protocol rule (empty = all text, one = applies to all, else one each);
/// this builder writes them as given.
pub fn bind(
    out: &mut BytesMut,
    portal: impl AsRef<[u8]>,
    statement: impl AsRef<[u8]>,
    parameter_formats: &[FormatCode],
    parameters: &[Option<&[u8]>],
    result_formats: &[FormatCode],
) {
    let start = begin(out, b'B');
    put_cstr(out, portal.as_ref());
    put_cstr(out, statement.as_ref());
    put_formats(out, parameter_formats);
    put_values(out, parameters);
    put_formats(out, result_formats);
    finish(out, start);
}

pub fn describe(out: &mut BytesMut, kind: TargetKind, name: impl AsRef<[u8]>) {
    let start = begin(out, b'D');
    out.put_u8(kind.as_byte());
    put_cstr(out, name.as_ref());
    finish(out, start);
}

/// Execute; a `row_limit` of 0 means no limit.
pub fn execute(out: &mut BytesMut, portal: impl AsRef<[u8]>, row_limit: i32) {
    let start = begin(out, b'E');
    put_cstr(out, portal.as_ref());
    out.put_i32(row_limit);
    finish(out, start);
}

pub fn close(out: &mut BytesMut, kind: TargetKind, name: impl AsRef<[u8]>) {
    let start = begin(out, b'C');
    out.put_u8(kind.as_byte());
    put_cstr(out, name.as_ref());
    finish(out, start);
}

pub fn sync(out: &mut BytesMut) {
    empty(out, b'S');
}

pub fn flush(out: &mut BytesMut) {
    empty(out, b'H');
}

pub fn terminate(out: &mut BytesMut) {
    empty(out, b'X');
}

pub fn copy_fail(out: &mut BytesMut, message: impl AsRef<[u8]>) {
    let start = begin(out, b'f');
    put_cstr(out, message.as_ref());
    finish(out, start);
}

pub fn function_call(
    out: &mut BytesMut,
    function_oid: u32,
    argument_formats: &[FormatCode],
    arguments: &[Option<&[u8]>],
    result_format: FormatCode,
) {
    let start = begin(out, b'F');
    out.put_u32(function_oid);
    put_formats(out, argument_formats);
    put_values(out, arguments);
    out.put_i16(result_format.as_i16());
    finish(out, start);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interior_nul_is_replaced() {
        let mut out = BytesMut::new();
        query(&mut out, "SELECT 1\0; DROP TABLE t");
        assert_eq!(
            &out[..],
            b"Q\0\0\0\x1eSELECT 1\xef\xbf\xbd; DROP TABLE t\0".as_slice()
        );
    }

    #[test]
    fn fixed_messages_match_the_documentation() {
        let mut out = BytesMut::new();
        ssl_request(&mut out);
        sync(&mut out);
        ready_for_query(&mut out, TransactionStatus::Idle);
        authentication_ok(&mut out);
        assert_eq!(
            &out[..],
            b"\0\0\0\x08\x04\xd2\x16\x2fS\0\0\0\x04Z\0\0\0\x05IR\0\0\0\x08\0\0\0\0".as_slice()
        );
    }
}
