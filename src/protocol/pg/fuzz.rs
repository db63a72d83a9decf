//! Fuzzing entry points.
//!
//! The cargo-fuzz targets in `fuzz/fuzz_targets/pg_*.rs` only forward their
//! input here. Keeping the harness in the library means it is compiled,
//! linted and unit-tested with the codec, and the invariants live next to the
//! code they describe.
//!
//! These functions panic (through `assert!`) when an invariant breaks; that
//! is how a fuzzer learns about a finding. They never panic on malformed
//! input that the codec correctly rejects.
//!
//! Invariants checked:
//!
//! * framing never claims more bytes than it was given, frames are
//!   contiguous, and iterating with [`frames`] agrees with repeated
//!   [`next_frame`] calls and with [`needed_bytes`];
//! * every strict prefix of a complete frame is reported incomplete;
//! * the size limit is applied exactly: a smaller limit rejects precisely the
//!   frames that exceed it;
//! * every message that parses is re-encoded by the builders into exactly the
//!   bytes it was parsed from, which checks both the parser's view (nothing
//!   dropped, nothing invented) and the builders.

use bytes::BytesMut;

use super::backend::{parse_backend, Authentication, BackendMessage, FieldDescription};
use super::build;
use super::frame::{frames, needed_bytes, next_frame, Frame, FrameError, HEADER_BYTES};
use super::frontend::{
    parse_frontend, parse_password, parse_sasl_initial_response, FrontendMessage,
};
use super::startup::{looks_like_tls_client_hello, next_startup_packet, StartupPacket};
use super::types::FormatCode;

/// Limit used for the parsing pass; large enough that realistic fuzz
/// inputs are never rejected for size.
const FUZZ_MESSAGE_BYTES_MAX: usize = 1 << 20;

/// Frames `data` and checks the framing invariants, returning the complete
/// frames with their offsets.
fn check_framing(data: &[u8]) -> Vec<(usize, Frame<'_>)> {
    let mut out = Vec::new();
    let mut it = frames(data, FUZZ_MESSAGE_BYTES_MAX);
    let mut offset = 0usize;
    while let Some(item) = it.next() {
        let rest = &data[offset..];
        match item {
            Ok(frame) => {
                assert_eq!(next_frame(rest, FUZZ_MESSAGE_BYTES_MAX), Ok(Some(frame)));
                assert_eq!(needed_bytes(rest), Some(frame.wire_len()));
                assert_eq!(rest[0], frame.tag);
                assert_eq!(&rest[HEADER_BYTES..frame.wire_len()], frame.body);
                // Strict prefixes of a complete frame are incomplete. Only
                // the first few and last few are tried to keep runs fast.
                let n = frame.wire_len();
                for cut in (0..n.min(16)).chain(n.saturating_sub(16)..n) {
                    assert_eq!(next_frame(&rest[..cut], FUZZ_MESSAGE_BYTES_MAX), Ok(None));
                }
                // A limit one byte short rejects it; an exact limit does not.
                assert!(matches!(
                    next_frame(rest, n - 1),
                    Err(FrameError::MessageTooLarge { length, max, .. }) if length == n && max == n - 1
                ));
                assert_eq!(next_frame(rest, n), Ok(Some(frame)));
                out.push((offset, frame));
                offset += n;
                assert_eq!(it.consumed(), offset);
            }
            Err(e) => {
                assert_eq!(next_frame(rest, FUZZ_MESSAGE_BYTES_MAX), Err(e));
                assert!(it.next().is_none(), "iterator continued after an error");
                break;
            }
        }
    }
    assert_eq!(it.consumed(), offset);
    assert!(offset <= data.len());
    if let Ok(None) = next_frame(&data[offset..], FUZZ_MESSAGE_BYTES_MAX) {
        if let Some(needed) = needed_bytes(&data[offset..]) {
            assert!(needed > data.len() - offset);
        }
    }
    out
}

fn formats(codes: impl Iterator<Item = FormatCode>) -> Vec<FormatCode> {
    codes.collect()
}

/// Re-encodes a parsed frontend message.
fn encode_frontend(out: &mut BytesMut, msg: FrontendMessage<'_>) {
    match msg {
        FrontendMessage::Query { sql } => build::query(out, sql),
        FrontendMessage::Parse {
            statement,
            sql,
            parameter_types,
        } => {
            let oids: Vec<u32> = parameter_types.iter().collect();
            assert_eq!(oids.len(), parameter_types.len());
            build::parse(out, statement, sql, &oids);
        }
        FrontendMessage::Bind {
            portal,
            statement,
            parameter_formats,
            parameters,
            result_formats,
        } => {
            let values: Vec<Option<&[u8]>> = parameters.collect();
            assert_eq!(values.len(), parameters.len());
            for i in 0..values.len() {
                // Resolving a value's format must never fail after parsing.
                let _ = parameter_formats.for_value(i);
            }
            build::bind(
                out,
                portal,
                statement,
                &formats(parameter_formats.iter()),
                &values,
                &formats(result_formats.iter()),
            );
        }
        FrontendMessage::Describe { kind, name } => build::describe(out, kind, name),
        FrontendMessage::Execute { portal, row_limit } => build::execute(out, portal, row_limit),
        FrontendMessage::Close { kind, name } => build::close(out, kind, name),
        FrontendMessage::Sync => build::sync(out),
        FrontendMessage::Flush => build::flush(out),
        FrontendMessage::Terminate => build::terminate(out),
        FrontendMessage::CopyData { data } => build::copy_data(out, data),
        FrontendMessage::CopyDone => build::copy_done(out),
        FrontendMessage::CopyFail { message } => build::copy_fail(out, message),
        FrontendMessage::FunctionCall {
            function_oid,
            argument_formats,
            arguments,
            result_format,
        } => {
            let values: Vec<Option<&[u8]>> = arguments.collect();
            assert_eq!(values.len(), arguments.len());
            build::function_call(
                out,
                function_oid,
                &formats(argument_formats.iter()),
                &values,
                result_format,
            );
        }
        FrontendMessage::Password { data } => build::sasl_response(out, data),
    }
}

/// Re-encodes a parsed backend message.
fn encode_backend(out: &mut BytesMut, msg: BackendMessage<'_>) {
    match msg {
        BackendMessage::Authentication(auth) => match auth {
            Authentication::Ok => build::authentication_ok(out),
            Authentication::KerberosV5 => build::authentication_kerberos_v5(out),
            Authentication::CleartextPassword => build::authentication_cleartext_password(out),
            Authentication::Md5Password { salt } => build::authentication_md5_password(out, salt),
            Authentication::Gss => build::authentication_gss(out),
            Authentication::GssContinue { data } => build::authentication_gss_continue(out, data),
            Authentication::Sspi => build::authentication_sspi(out),
            Authentication::Sasl { mechanisms } => {
                let list: Vec<&str> = mechanisms.collect();
                assert_eq!(list.len(), mechanisms.len());
                assert!(!list.is_empty());
                build::authentication_sasl(out, &list);
            }
            Authentication::SaslContinue { data } => build::authentication_sasl_continue(out, data),
            Authentication::SaslFinal { data } => build::authentication_sasl_final(out, data),
        },
        BackendMessage::BackendKeyData {
            process_id,
            secret_key,
        } => build::backend_key_data(out, process_id, secret_key),
        BackendMessage::ParameterStatus { name, value } => {
            build::parameter_status(out, name, value)
        }
        BackendMessage::ReadyForQuery { status } => build::ready_for_query(out, status),
        BackendMessage::RowDescription { fields } => {
            let list: Vec<FieldDescription<'_>> = fields.collect();
            assert_eq!(list.len(), fields.len());
            build::row_description(out, &list);
        }
        BackendMessage::DataRow { values } => {
            let list: Vec<Option<&[u8]>> = values.collect();
            assert_eq!(list.len(), values.len());
            build::data_row(out, &list);
        }
        BackendMessage::CommandComplete { tag } => build::command_complete(out, tag),
        BackendMessage::EmptyQueryResponse => build::empty_query_response(out),
        BackendMessage::ErrorResponse(fields) | BackendMessage::NoticeResponse(fields) => {
            let tag = if matches!(msg, BackendMessage::ErrorResponse(_)) {
                b'E'
            } else {
                b'N'
            };
            // Exercise the accessors; they must agree with iteration.
            let list: Vec<(u8, &[u8])> = fields.iter().collect();
            assert_eq!(
                fields.message(),
                list.iter().find(|(c, _)| *c == b'M').map(|(_, v)| *v)
            );
            let _ = (
                fields.sqlstate(),
                fields.severity(),
                fields.detail(),
                fields.hint(),
            );
            build::fields_message(out, tag, &list);
        }
        BackendMessage::ParseComplete => build::parse_complete(out),
        BackendMessage::BindComplete => build::bind_complete(out),
        BackendMessage::CloseComplete => build::close_complete(out),
        BackendMessage::NoData => build::no_data(out),
        BackendMessage::PortalSuspended => build::portal_suspended(out),
        BackendMessage::ParameterDescription { parameter_types } => {
            let oids: Vec<u32> = parameter_types.iter().collect();
            build::parameter_description(out, &oids);
        }
        BackendMessage::CopyInResponse {
            overall_format,
            column_formats,
        } => build::copy_in_response(out, overall_format, &formats(column_formats.iter())),
        BackendMessage::CopyOutResponse {
            overall_format,
            column_formats,
        } => build::copy_out_response(out, overall_format, &formats(column_formats.iter())),
        BackendMessage::CopyBothResponse {
            overall_format,
            column_formats,
        } => build::copy_both_response(out, overall_format, &formats(column_formats.iter())),
        BackendMessage::CopyData { data } => build::copy_data(out, data),
        BackendMessage::CopyDone => build::copy_done(out),
        BackendMessage::NotificationResponse {
            process_id,
            channel,
            payload,
        } => build::notification_response(out, process_id, channel, payload),
        BackendMessage::FunctionCallResponse { value } => build::function_call_response(out, value),
        BackendMessage::NegotiateProtocolVersion {
            newest_minor,
            unrecognized,
        } => {
            let list: Vec<&str> = unrecognized.collect();
            assert_eq!(list.len(), unrecognized.len());
            build::negotiate_protocol_version(out, newest_minor, &list);
        }
    }
}

/// Frames and parses `data` as a frontend stream after startup.
pub fn frontend(data: &[u8]) {
    let mut out = BytesMut::new();
    for (offset, frame) in check_framing(data) {
        let wire = &data[offset..offset + frame.wire_len()];
        if let Ok(msg) = parse_frontend(frame) {
            out.clear();
            encode_frontend(&mut out, msg);
            assert_eq!(&out[..], wire, "re-encoding {msg:?}");
        }
        if frame.tag == b'p' {
            if let Ok((mechanism, initial)) = parse_sasl_initial_response(frame.body) {
                out.clear();
                build::sasl_initial_response(&mut out, mechanism, initial);
                assert_eq!(&out[..], wire);
            }
            if let Ok(password) = parse_password(frame.body) {
                out.clear();
                build::password_message(&mut out, password);
                assert_eq!(&out[..], wire);
            }
        }
    }
}

/// Frames and parses `data` as a backend stream.
pub fn backend(data: &[u8]) {
    let mut out = BytesMut::new();
    for (offset, frame) in check_framing(data) {
        let wire = &data[offset..offset + frame.wire_len()];
        if let Ok(msg) = parse_backend(frame) {
            out.clear();
            encode_backend(&mut out, msg);
            assert_eq!(&out[..], wire, "re-encoding {msg:?}");
        }
    }
}

/// Parses `data` as a startup packet followed by a frontend stream.
pub fn startup(data: &[u8]) {
    let result = next_startup_packet(data);
    if looks_like_tls_client_hello(data) && data.len() >= 4 {
        // 0x16 as the top length byte is far beyond the packet limit.
        assert!(result.is_err(), "TLS record accepted as a startup packet");
    }
    let Ok(Some((packet, consumed))) = result else {
        return;
    };
    assert!(consumed <= data.len());
    assert_eq!(
        usize::try_from(i32::from_be_bytes([data[0], data[1], data[2], data[3]])).ok(),
        Some(consumed)
    );
    for cut in 0..consumed {
        assert_eq!(next_startup_packet(&data[..cut]), Ok(None), "prefix {cut}");
    }
    let mut out = BytesMut::new();
    match packet {
        StartupPacket::SslRequest => build::ssl_request(&mut out),
        StartupPacket::GssEncRequest => build::gss_enc_request(&mut out),
        StartupPacket::CancelRequest {
            process_id,
            secret_key,
        } => build::cancel_request(&mut out, process_id, secret_key),
        StartupPacket::Startup {
            protocol_version,
            parameters,
        } => {
            let list: Vec<(&str, &str)> = parameters.iter().collect();
            assert_eq!(list.len(), parameters.len());
            for (name, value) in &list {
                assert_eq!(parameters.get(name), Some(*value));
            }
            build::startup_message(&mut out, protocol_version, &list);
        }
    }
    assert_eq!(&out[..], &data[..consumed], "re-encoding {packet:?}");
    frontend(&data[consumed..]);
}

#[cfg(test)]
mod tests {
    #[test]
    fn entry_points_accept_arbitrary_bytes() {
        let samples: &[&[u8]] = &[
            b"",
            b"Q\0\0\0\x09SEL\0",
            b"\0\0\0\x08\x04\xd2\x16\x2f",
            b"\0\0\0\x10\x04\xd2\x16\x2e\0\0\0\x01\0\0\0\x02",
            b"D\0\0\0\x0a\0\x01\xff\xff\xff\xff",
            b"\x16\x03\x01\0\0",
        ];
        for s in samples {
            super::frontend(s);
            super::backend(s);
            super::startup(s);
        }
    }
}
