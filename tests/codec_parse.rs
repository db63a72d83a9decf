//! Typed parsers on malformed input: each violation maps to its own error.

use sluice::protocol::pg::{
    parse_backend, parse_frontend, parse_sasl_initial_response, Frame, ParseError,
};

fn fe(tag: u8, body: &[u8]) -> Result<sluice::protocol::pg::FrontendMessage<'_>, ParseError> {
    parse_frontend(Frame { tag, body })
}

fn be(tag: u8, body: &[u8]) -> Result<sluice::protocol::pg::BackendMessage<'_>, ParseError> {
    parse_backend(Frame { tag, body })
}

/// Body of a Bind with the given raw format and value sections.
fn bind_body(formats: &[i16], values: &[i32], result_formats: &[i16]) -> Vec<u8> {
    let mut b = b"\0\0".to_vec();
    b.extend_from_slice(&(formats.len() as u16).to_be_bytes());
    for f in formats {
        b.extend_from_slice(&f.to_be_bytes());
    }
    b.extend_from_slice(&(values.len() as u16).to_be_bytes());
    for &len in values {
        b.extend_from_slice(&len.to_be_bytes());
        if len > 0 {
            b.resize(b.len() + len as usize, b'x');
        }
    }
    b.extend_from_slice(&(result_formats.len() as u16).to_be_bytes());
    for f in result_formats {
        b.extend_from_slice(&f.to_be_bytes());
    }
    b
}

#[test]
fn unknown_tags_are_errors() {
    assert_eq!(fe(b'Z', b"I"), Err(ParseError::UnknownTag { tag: b'Z' }));
    assert_eq!(be(b'Q', b"x\0"), Err(ParseError::UnknownTag { tag: b'Q' }));
    assert_eq!(fe(0, b""), Err(ParseError::UnknownTag { tag: 0 }));
}

#[test]
fn query_violations() {
    assert_eq!(
        fe(b'Q', b"SELECT 1"),
        Err(ParseError::MissingNulTerminator {
            tag: b'Q',
            field: "query string"
        })
    );
    assert_eq!(
        fe(b'Q', b"SELECT 1\0x"),
        Err(ParseError::TrailingBytes {
            tag: b'Q',
            count: 1
        })
    );
    assert_eq!(
        fe(b'S', b"\0"),
        Err(ParseError::TrailingBytes {
            tag: b'S',
            count: 1
        })
    );
}

#[test]
fn bind_format_count_must_match() {
    assert!(fe(b'B', &bind_body(&[], &[1, 1], &[])).is_ok());
    assert!(fe(b'B', &bind_body(&[1], &[1, 1], &[])).is_ok());
    assert!(fe(b'B', &bind_body(&[1, 0], &[1, 1], &[])).is_ok());
    assert_eq!(
        fe(b'B', &bind_body(&[1, 0], &[1, 1, 1], &[])),
        Err(ParseError::BindParameterCountMismatch {
            formats: 2,
            parameters: 3
        })
    );
    assert_eq!(
        fe(b'B', &bind_body(&[0, 0], &[], &[])),
        Err(ParseError::BindParameterCountMismatch {
            formats: 2,
            parameters: 0
        })
    );
}

#[test]
fn bind_value_violations() {
    assert_eq!(
        fe(b'B', &bind_body(&[], &[-2], &[])),
        Err(ParseError::InvalidValueLength {
            tag: b'B',
            length: -2
        })
    );
    assert_eq!(
        fe(b'B', &bind_body(&[2], &[1], &[])),
        Err(ParseError::InvalidFormatCode { tag: b'B', code: 2 })
    );
    assert_eq!(
        fe(b'B', &bind_body(&[], &[], &[-1])),
        Err(ParseError::InvalidFormatCode {
            tag: b'B',
            code: -1
        })
    );
    // A value length pointing past the end of the body.
    let mut body = bind_body(&[], &[5], &[]);
    body.truncate(body.len() - 4);
    assert!(matches!(
        fe(b'B', &body),
        Err(ParseError::UnexpectedEnd { tag: b'B', .. })
    ));
    // A huge declared count with no data behind it.
    let body = [0, 0, 0xff, 0xff];
    assert!(matches!(
        fe(b'B', &body),
        Err(ParseError::UnexpectedEnd { tag: b'B', .. })
    ));
}

#[test]
fn counts_are_unsigned_like_postgresql() {
    // 40000 NULL parameters: more than i16::MAX, as libpq allows.
    let n: u16 = 40_000;
    let mut body = b"\0\0\0\0".to_vec();
    body.extend_from_slice(&n.to_be_bytes());
    for _ in 0..n {
        body.extend_from_slice(&(-1i32).to_be_bytes());
    }
    body.extend_from_slice(&0u16.to_be_bytes());
    let Ok(sluice::protocol::pg::FrontendMessage::Bind { parameters, .. }) = fe(b'B', &body) else {
        panic!("Bind with 40000 parameters rejected");
    };
    assert_eq!(parameters.len(), 40_000);
    assert!(parameters.clone().all(|v| v.is_none()));
}

#[test]
fn describe_close_target_kind() {
    assert_eq!(
        fe(b'D', b"X\0"),
        Err(ParseError::InvalidTargetKind {
            tag: b'D',
            kind: b'X'
        })
    );
    assert_eq!(
        fe(b'C', b"s\0"),
        Err(ParseError::InvalidTargetKind {
            tag: b'C',
            kind: b's'
        })
    );
    assert_eq!(
        fe(b'D', b""),
        Err(ParseError::UnexpectedEnd {
            tag: b'D',
            field: "target kind"
        })
    );
}

#[test]
fn execute_truncated_row_limit() {
    assert_eq!(
        fe(b'E', b"\0\0\0"),
        Err(ParseError::UnexpectedEnd {
            tag: b'E',
            field: "row limit"
        })
    );
}

#[test]
fn function_call_violations() {
    let mut body = 1598u32.to_be_bytes().to_vec();
    body.extend_from_slice(&[0, 2, 0, 0, 0, 0]); // two formats
    body.extend_from_slice(&[0, 1, 0xff, 0xff, 0xff, 0xff]); // one NULL argument
    body.extend_from_slice(&[0, 0]);
    assert_eq!(
        fe(b'F', &body),
        Err(ParseError::FunctionCallArgumentCountMismatch {
            formats: 2,
            arguments: 1
        })
    );
    let mut body = 1598u32.to_be_bytes().to_vec();
    body.extend_from_slice(&[0, 0, 0, 0, 0, 7]);
    assert_eq!(
        fe(b'F', &body),
        Err(ParseError::InvalidFormatCode { tag: b'F', code: 7 })
    );
}

#[test]
fn sasl_initial_response_violations() {
    assert_eq!(
        parse_sasl_initial_response(b"SCRAM-SHA-256\0\xff\xff\xff\xfe"),
        Err(ParseError::InvalidValueLength {
            tag: b'p',
            length: -2
        })
    );
    assert_eq!(
        parse_sasl_initial_response(b"SCRAM-SHA-256\0\0\0\0\x05abc"),
        Err(ParseError::UnexpectedEnd {
            tag: b'p',
            field: "SASL initial response"
        })
    );
    assert_eq!(
        parse_sasl_initial_response(b"\xff\0\0\0\0\0"),
        Err(ParseError::InvalidUtf8 {
            tag: b'p',
            field: "SASL mechanism"
        })
    );
    assert_eq!(
        parse_sasl_initial_response(b"M\0\0\0\0\x01ab"),
        Err(ParseError::TrailingBytes {
            tag: b'p',
            count: 1
        })
    );
}

#[test]
fn authentication_violations() {
    assert_eq!(
        be(b'R', &6i32.to_be_bytes()),
        Err(ParseError::UnknownAuthenticationCode { code: 6 })
    );
    assert_eq!(
        be(b'R', &[0, 0, 0, 5, 1, 2, 3]),
        Err(ParseError::UnexpectedEnd {
            tag: b'R',
            field: "salt"
        })
    );
    assert_eq!(
        be(b'R', &[0, 0, 0, 0, 0]),
        Err(ParseError::TrailingBytes {
            tag: b'R',
            count: 1
        })
    );
    assert_eq!(
        be(b'R', &[0, 0, 0, 10, 0]),
        Err(ParseError::EmptySaslMechanismList)
    );
    assert_eq!(
        be(b'R', b"\0\0\0\x0aSCRAM-SHA-256\0"),
        Err(ParseError::MissingNulTerminator {
            tag: b'R',
            field: "SASL mechanism"
        })
    );
}

#[test]
fn backend_key_data_key_length() {
    assert_eq!(
        be(b'K', &[0, 0, 0, 1, 9, 9, 9]),
        Err(ParseError::SecretKeyLengthOutOfRange { length: 3 })
    );
    let mut body = vec![0, 0, 0, 1];
    body.extend_from_slice(&[7; 257]);
    assert_eq!(
        be(b'K', &body),
        Err(ParseError::SecretKeyLengthOutOfRange { length: 257 })
    );
    body.pop();
    assert!(be(b'K', &body).is_ok());
}

#[test]
fn ready_for_query_status() {
    assert_eq!(
        be(b'Z', b"X"),
        Err(ParseError::InvalidTransactionStatus { status: b'X' })
    );
    assert_eq!(
        be(b'Z', b"II"),
        Err(ParseError::TrailingBytes {
            tag: b'Z',
            count: 1
        })
    );
}

#[test]
fn row_description_violations() {
    // Declares two fields but carries one.
    let mut body = vec![0, 2];
    body.extend_from_slice(b"id\0");
    body.extend_from_slice(&[0; 18]);
    assert!(matches!(
        be(b'T', &body),
        Err(ParseError::UnexpectedEnd { tag: b'T', .. })
    ));
    // Bad format code in the only field.
    let mut body = vec![0, 1];
    body.extend_from_slice(b"id\0");
    body.extend_from_slice(&[0; 16]);
    body.extend_from_slice(&3i16.to_be_bytes());
    assert_eq!(
        be(b'T', &body),
        Err(ParseError::InvalidFormatCode { tag: b'T', code: 3 })
    );
}

#[test]
fn data_row_violations() {
    assert_eq!(
        be(b'D', &[0, 1, 0xff, 0xff, 0xff, 0x00]),
        Err(ParseError::InvalidValueLength {
            tag: b'D',
            length: -256
        })
    );
    assert!(matches!(
        be(b'D', &[0, 1, 0, 0, 0, 9, 1]),
        Err(ParseError::UnexpectedEnd { tag: b'D', .. })
    ));
    assert_eq!(
        be(b'D', &[0, 0, 1]),
        Err(ParseError::TrailingBytes {
            tag: b'D',
            count: 1
        })
    );
}

#[test]
fn error_fields_need_terminator() {
    assert_eq!(
        be(b'E', b"SERROR\0"),
        Err(ParseError::UnexpectedEnd {
            tag: b'E',
            field: "field list terminator"
        })
    );
    assert_eq!(
        be(b'N', b"SNOTICE"),
        Err(ParseError::MissingNulTerminator {
            tag: b'N',
            field: "field value"
        })
    );
    assert_eq!(
        be(b'E', b"\0\0"),
        Err(ParseError::TrailingBytes {
            tag: b'E',
            count: 1
        })
    );
}

#[test]
fn copy_response_violations() {
    assert_eq!(
        be(b'G', &[2, 0, 0]),
        Err(ParseError::InvalidCopyFormat {
            tag: b'G',
            format: 2
        })
    );
    assert_eq!(
        be(b'H', &[0, 0, 1, 0, 5]),
        Err(ParseError::InvalidFormatCode { tag: b'H', code: 5 })
    );
}

#[test]
fn negotiate_protocol_version_violations() {
    assert_eq!(
        be(b'v', &[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]),
        Err(ParseError::NegativeCount {
            tag: b'v',
            field: "option count",
            count: -1
        })
    );
    assert_eq!(
        be(b'v', &[0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff]),
        Err(ParseError::MissingNulTerminator {
            tag: b'v',
            field: "unrecognized option"
        })
    );
}

#[test]
fn parameter_status_must_be_utf8() {
    assert_eq!(
        be(b'S', b"application_name\0caf\xe9\0"),
        Err(ParseError::InvalidUtf8 {
            tag: b'S',
            field: "parameter value"
        })
    );
}

#[test]
fn function_call_response_length() {
    assert_eq!(
        be(b'V', &[0xff, 0xff, 0xff, 0xfe]),
        Err(ParseError::InvalidValueLength {
            tag: b'V',
            length: -2
        })
    );
}
