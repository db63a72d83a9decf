//! Every builder's output framed and parsed back, field by field.

use bytes::BytesMut;
use sluice::protocol::pg::build::{self, Severity};
use sluice::protocol::pg::frontend::parse_password;
use sluice::protocol::pg::sqlstate;
use sluice::protocol::pg::{
    next_frame, next_startup_packet, parse_backend, parse_frontend, parse_sasl_initial_response,
    Authentication, BackendMessage, FieldDescription, FormatCode, FrontendMessage, StartupPacket,
    TargetKind, TransactionStatus,
};

const MAX: usize = 1 << 20;

/// A builder that takes no arguments besides the output buffer.
type Builder = Box<dyn Fn(&mut BytesMut)>;

/// Builds one message, checks it is exactly one complete frame, and parses
/// it as a backend message.
fn backend(f: impl FnOnce(&mut BytesMut)) -> (BytesMut, BackendMessage<'static>) {
    let mut out = BytesMut::new();
    f(&mut out);
    let bytes: &'static [u8] = Box::leak(out.to_vec().into_boxed_slice());
    let frame = next_frame(bytes, MAX).unwrap().expect("complete frame");
    assert_eq!(
        frame.wire_len(),
        bytes.len(),
        "builder wrote exactly one message"
    );
    (out, parse_backend(frame).unwrap())
}

fn frontend(f: impl FnOnce(&mut BytesMut)) -> FrontendMessage<'static> {
    let mut out = BytesMut::new();
    f(&mut out);
    let bytes: &'static [u8] = Box::leak(out.to_vec().into_boxed_slice());
    let frame = next_frame(bytes, MAX).unwrap().expect("complete frame");
    assert_eq!(
        frame.wire_len(),
        bytes.len(),
        "builder wrote exactly one message"
    );
    parse_frontend(frame).unwrap()
}

#[test]
fn error_response_writes_all_fields() {
    let (_, msg) = backend(|o| {
        build::error_response(
            o,
            Severity::Fatal,
            sqlstate::INVALID_PASSWORD,
            "password authentication failed",
            Some("detail text"),
            Some("hint text"),
        )
    });
    let BackendMessage::ErrorResponse(fields) = msg else {
        panic!("got {msg:?}");
    };
    assert_eq!(fields.get(b'S'), Some(b"FATAL".as_slice()));
    assert_eq!(fields.get(b'V'), Some(b"FATAL".as_slice()));
    assert_eq!(fields.sqlstate(), Some("28P01"));
    assert_eq!(
        fields.message(),
        Some(b"password authentication failed".as_slice())
    );
    assert_eq!(fields.detail(), Some(b"detail text".as_slice()));
    assert_eq!(fields.hint(), Some(b"hint text".as_slice()));
    assert_eq!(fields.iter().count(), 6);
}

#[test]
fn error_response_without_optional_fields() {
    for severity in [Severity::Error, Severity::Fatal, Severity::Panic] {
        let (_, msg) = backend(|o| build::error_response(o, severity, "08P01", "bad", None, None));
        let BackendMessage::ErrorResponse(fields) = msg else {
            panic!("got {msg:?}");
        };
        assert_eq!(fields.severity(), Some(severity.as_str().as_bytes()));
        assert_eq!(fields.detail(), None);
        assert_eq!(fields.hint(), None);
        assert_eq!(fields.iter().count(), 4);
    }
}

#[test]
fn notice_response_round_trips() {
    let (_, msg) = backend(|o| build::notice_response(o, "01000", "heads up", Some("d")));
    let BackendMessage::NoticeResponse(fields) = msg else {
        panic!("got {msg:?}");
    };
    assert_eq!(fields.severity(), Some(b"NOTICE".as_slice()));
    assert_eq!(fields.sqlstate(), Some("01000"));
    assert_eq!(fields.message(), Some(b"heads up".as_slice()));
    assert_eq!(fields.detail(), Some(b"d".as_slice()));
}

#[test]
fn fields_message_skips_zero_codes() {
    let (_, msg) =
        backend(|o| build::fields_message(o, b'E', &[(b'M', b"m"), (0, b"x"), (b'C', b"XX000")]));
    let BackendMessage::ErrorResponse(fields) = msg else {
        panic!("got {msg:?}");
    };
    let all: Vec<_> = fields.iter().collect();
    assert_eq!(
        all,
        vec![(b'M', b"m".as_slice()), (b'C', b"XX000".as_slice())]
    );
}

#[test]
fn interior_nul_is_replaced_not_truncated() {
    let (_, msg) =
        backend(|o| build::error_response(o, Severity::Error, "XX000", "a\0b", None, None));
    let BackendMessage::ErrorResponse(fields) = msg else {
        panic!("got {msg:?}");
    };
    assert_eq!(fields.message(), Some("a\u{FFFD}b".as_bytes()));
    let msg = frontend(|o| build::query(o, "SELECT 1\0; DROP TABLE t"));
    assert_eq!(
        msg,
        FrontendMessage::Query {
            sql: "SELECT 1\u{FFFD}; DROP TABLE t".as_bytes()
        }
    );
}

#[test]
fn authentication_requests_round_trip() {
    let cases: Vec<(Builder, Authentication<'static>)> = vec![
        (Box::new(build::authentication_ok), Authentication::Ok),
        (
            Box::new(build::authentication_kerberos_v5),
            Authentication::KerberosV5,
        ),
        (
            Box::new(build::authentication_cleartext_password),
            Authentication::CleartextPassword,
        ),
        (
            Box::new(|o| build::authentication_md5_password(o, [1, 2, 3, 4])),
            Authentication::Md5Password { salt: [1, 2, 3, 4] },
        ),
        (Box::new(build::authentication_gss), Authentication::Gss),
        (
            Box::new(|o| build::authentication_gss_continue(o, b"tok")),
            Authentication::GssContinue { data: b"tok" },
        ),
        (Box::new(build::authentication_sspi), Authentication::Sspi),
        (
            Box::new(|o| build::authentication_sasl_continue(o, b"r=abc,s=xyz,i=4096")),
            Authentication::SaslContinue {
                data: b"r=abc,s=xyz,i=4096",
            },
        ),
        (
            Box::new(|o| build::authentication_sasl_final(o, b"v=sig")),
            Authentication::SaslFinal { data: b"v=sig" },
        ),
    ];
    for (build_fn, want) in cases {
        let (_, msg) = backend(|o| build_fn(o));
        assert_eq!(msg, BackendMessage::Authentication(want));
    }
}

#[test]
fn authentication_sasl_lists_mechanisms() {
    let (_, msg) =
        backend(|o| build::authentication_sasl(o, &["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]));
    let BackendMessage::Authentication(Authentication::Sasl { mechanisms }) = msg else {
        panic!("got {msg:?}");
    };
    assert_eq!(mechanisms.len(), 2);
    assert_eq!(
        mechanisms.collect::<Vec<_>>(),
        vec!["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]
    );
}

#[test]
fn session_setup_messages_round_trip() {
    let (_, msg) = backend(|o| build::parameter_status(o, "server_version", "17.2"));
    assert_eq!(
        msg,
        BackendMessage::ParameterStatus {
            name: "server_version",
            value: "17.2"
        }
    );
    for key in [&[1u8, 2, 3, 4][..], &[7u8; 32][..], &[9u8; 256][..]] {
        let (_, msg) = backend(|o| build::backend_key_data(o, 4242, key));
        assert_eq!(
            msg,
            BackendMessage::BackendKeyData {
                process_id: 4242,
                secret_key: key
            }
        );
    }
    for status in [
        TransactionStatus::Idle,
        TransactionStatus::InTransaction,
        TransactionStatus::Failed,
    ] {
        let (_, msg) = backend(|o| build::ready_for_query(o, status));
        assert_eq!(msg, BackendMessage::ReadyForQuery { status });
    }
    let (_, msg) = backend(|o| build::negotiate_protocol_version(o, 0, &["_pq_.a", "_pq_.b"]));
    let BackendMessage::NegotiateProtocolVersion {
        newest_minor,
        unrecognized,
    } = msg
    else {
        panic!("got {msg:?}");
    };
    assert_eq!(newest_minor, 0);
    assert_eq!(unrecognized.collect::<Vec<_>>(), vec!["_pq_.a", "_pq_.b"]);
    let (_, msg) = backend(|o| build::negotiate_protocol_version(o, 2, &[]));
    assert!(matches!(
        msg,
        BackendMessage::NegotiateProtocolVersion { newest_minor: 2, unrecognized } if unrecognized.len() == 0
    ));
}

#[test]
fn query_result_messages_round_trip() {
    let fields = [
        FieldDescription {
            name: b"id",
            table_oid: 16384,
            column_attribute: 1,
            type_oid: 23,
            type_size: 4,
            type_modifier: -1,
            format: FormatCode::Text,
        },
        FieldDescription {
            name: b"payload",
            table_oid: 0,
            column_attribute: 0,
            type_oid: 17,
            type_size: -1,
            type_modifier: -1,
            format: FormatCode::Binary,
        },
    ];
    let (_, msg) = backend(|o| build::row_description(o, &fields));
    let BackendMessage::RowDescription { fields: got } = msg else {
        panic!("got {msg:?}");
    };
    assert_eq!(got.collect::<Vec<_>>(), fields.to_vec());

    let values: [Option<&[u8]>; 3] = [Some(b"1"), None, Some(b"")];
    let (_, msg) = backend(|o| build::data_row(o, &values));
    let BackendMessage::DataRow { values: got } = msg else {
        panic!("got {msg:?}");
    };
    assert_eq!(got.len(), 3);
    assert_eq!(got.collect::<Vec<_>>(), values.to_vec());

    let (_, msg) = backend(|o| build::command_complete(o, "INSERT 0 5"));
    assert_eq!(msg, BackendMessage::CommandComplete { tag: b"INSERT 0 5" });

    let (_, msg) = backend(|o| build::parameter_description(o, &[23, 25, 0]));
    let BackendMessage::ParameterDescription { parameter_types } = msg else {
        panic!("got {msg:?}");
    };
    assert_eq!(parameter_types.iter().collect::<Vec<_>>(), vec![23, 25, 0]);
    assert_eq!(parameter_types.get(1), Some(25));
    assert_eq!(parameter_types.get(3), None);

    for (value, want) in [
        (Some(b"42".as_slice()), Some(b"42".as_slice())),
        (None, None),
    ] {
        let (_, msg) = backend(|o| build::function_call_response(o, value));
        assert_eq!(msg, BackendMessage::FunctionCallResponse { value: want });
    }
    let (_, msg) = backend(|o| build::notification_response(o, 77, "jobs", "{\"id\":1}"));
    assert_eq!(
        msg,
        BackendMessage::NotificationResponse {
            process_id: 77,
            channel: b"jobs",
            payload: b"{\"id\":1}"
        }
    );
}

#[test]
fn empty_backend_messages_round_trip() {
    let cases: [(Builder, BackendMessage<'static>); 7] = [
        (
            Box::new(build::empty_query_response),
            BackendMessage::EmptyQueryResponse,
        ),
        (
            Box::new(build::parse_complete),
            BackendMessage::ParseComplete,
        ),
        (Box::new(build::bind_complete), BackendMessage::BindComplete),
        (
            Box::new(build::close_complete),
            BackendMessage::CloseComplete,
        ),
        (Box::new(build::no_data), BackendMessage::NoData),
        (
            Box::new(build::portal_suspended),
            BackendMessage::PortalSuspended,
        ),
        (Box::new(build::copy_done), BackendMessage::CopyDone),
    ];
    for (f, want) in cases {
        let (bytes, msg) = backend(f);
        assert_eq!(bytes.len(), 5);
        assert_eq!(msg, want);
    }
}

#[test]
fn copy_messages_round_trip() {
    let formats = [FormatCode::Binary, FormatCode::Binary];
    type CopyBuilder = fn(&mut BytesMut, FormatCode, &[FormatCode]);
    let builders: [(CopyBuilder, u8); 3] = [
        (build::copy_in_response, b'G'),
        (build::copy_out_response, b'H'),
        (build::copy_both_response, b'W'),
    ];
    for (f, tag) in builders {
        let (bytes, msg) = backend(|o| f(o, FormatCode::Binary, &formats));
        assert_eq!(bytes[0], tag);
        let (overall, columns) = match msg {
            BackendMessage::CopyInResponse {
                overall_format,
                column_formats,
            }
            | BackendMessage::CopyOutResponse {
                overall_format,
                column_formats,
            }
            | BackendMessage::CopyBothResponse {
                overall_format,
                column_formats,
            } => (overall_format, column_formats),
            other => panic!("got {other:?}"),
        };
        assert_eq!(overall, FormatCode::Binary);
        assert_eq!(columns.iter().collect::<Vec<_>>(), formats.to_vec());
    }
    let (_, msg) = backend(|o| build::copy_data(o, b"1\tfoo\n"));
    assert_eq!(msg, BackendMessage::CopyData { data: b"1\tfoo\n" });
    assert_eq!(
        frontend(|o| build::copy_data(o, b"x")),
        FrontendMessage::CopyData { data: b"x" }
    );
    assert_eq!(frontend(build::copy_done), FrontendMessage::CopyDone);
    assert_eq!(
        frontend(|o| build::copy_fail(o, "client gave up")),
        FrontendMessage::CopyFail {
            message: b"client gave up"
        }
    );
}

#[test]
fn simple_and_control_frontend_messages_round_trip() {
    assert_eq!(
        frontend(|o| build::query(o, "SELECT 1")),
        FrontendMessage::Query { sql: b"SELECT 1" }
    );
    assert_eq!(frontend(build::sync), FrontendMessage::Sync);
    assert_eq!(frontend(build::flush), FrontendMessage::Flush);
    assert_eq!(frontend(build::terminate), FrontendMessage::Terminate);
}

#[test]
fn extended_protocol_messages_round_trip() {
    let msg = frontend(|o| build::parse(o, "s1", "SELECT $1, $2", &[23, 0]));
    let FrontendMessage::Parse {
        statement,
        sql,
        parameter_types,
    } = msg
    else {
        panic!("got {msg:?}");
    };
    assert_eq!(
        (statement, sql),
        (b"s1".as_slice(), b"SELECT $1, $2".as_slice())
    );
    assert_eq!(parameter_types.iter().collect::<Vec<_>>(), vec![23, 0]);

    let params: [Option<&[u8]>; 3] = [Some(b"\x00\x00\x00\x07"), None, Some(b"text")];
    let pf = [FormatCode::Binary, FormatCode::Text, FormatCode::Text];
    let msg = frontend(|o| build::bind(o, "p1", "s1", &pf, &params, &[FormatCode::Binary]));
    let FrontendMessage::Bind {
        portal,
        statement,
        parameter_formats,
        parameters,
        result_formats,
    } = msg
    else {
        panic!("got {msg:?}");
    };
    assert_eq!((portal, statement), (b"p1".as_slice(), b"s1".as_slice()));
    assert_eq!(parameter_formats.iter().collect::<Vec<_>>(), pf.to_vec());
    assert_eq!(parameter_formats.for_value(0), FormatCode::Binary);
    assert_eq!(parameter_formats.for_value(2), FormatCode::Text);
    assert_eq!(parameters.collect::<Vec<_>>(), params.to_vec());
    assert_eq!(
        result_formats.for_value(5),
        FormatCode::Binary,
        "one code applies to all"
    );

    for kind in [TargetKind::Statement, TargetKind::Portal] {
        assert_eq!(
            frontend(|o| build::describe(o, kind, "x")),
            FrontendMessage::Describe { kind, name: b"x" }
        );
        assert_eq!(
            frontend(|o| build::close(o, kind, "")),
            FrontendMessage::Close { kind, name: b"" }
        );
    }
    assert_eq!(
        frontend(|o| build::execute(o, "p1", 100)),
        FrontendMessage::Execute {
            portal: b"p1",
            row_limit: 100
        }
    );
}

#[test]
fn function_call_round_trips() {
    let args: [Option<&[u8]>; 2] = [Some(b"1"), None];
    let msg =
        frontend(|o| build::function_call(o, 1598, &[FormatCode::Text], &args, FormatCode::Binary));
    let FrontendMessage::FunctionCall {
        function_oid,
        argument_formats,
        arguments,
        result_format,
    } = msg
    else {
        panic!("got {msg:?}");
    };
    assert_eq!(function_oid, 1598);
    assert_eq!(argument_formats.len(), 1);
    assert_eq!(arguments.collect::<Vec<_>>(), args.to_vec());
    assert_eq!(result_format, FormatCode::Binary);
}

#[test]
fn password_messages_round_trip() {
    let msg = frontend(|o| build::password_message(o, b"hunter2"));
    let FrontendMessage::Password { data } = msg else {
        panic!("got {msg:?}");
    };
    assert_eq!(data, b"hunter2\0");
    assert_eq!(parse_password(data).unwrap(), b"hunter2");

    let msg = frontend(|o| build::sasl_initial_response(o, "SCRAM-SHA-256", Some(b"n,,n=,r=abc")));
    let FrontendMessage::Password { data } = msg else {
        panic!("got {msg:?}");
    };
    assert_eq!(
        parse_sasl_initial_response(data).unwrap(),
        ("SCRAM-SHA-256", Some(b"n,,n=,r=abc".as_slice()))
    );

    let msg = frontend(|o| build::sasl_initial_response(o, "SCRAM-SHA-256", None));
    let FrontendMessage::Password { data } = msg else {
        panic!("got {msg:?}");
    };
    assert_eq!(
        parse_sasl_initial_response(data).unwrap(),
        ("SCRAM-SHA-256", None)
    );

    let msg = frontend(|o| build::sasl_response(o, b"c=biws,r=abc,p=xyz"));
    assert_eq!(
        msg,
        FrontendMessage::Password {
            data: b"c=biws,r=abc,p=xyz"
        }
    );
}

#[test]
fn startup_packets_round_trip() {
    let mut out = BytesMut::new();
    build::startup_message(
        &mut out,
        0x0003_0000,
        &[("user", "alice"), ("database", "db"), ("options", "")],
    );
    let (packet, n) = next_startup_packet(&out).unwrap().unwrap();
    assert_eq!(n, out.len());
    let StartupPacket::Startup {
        protocol_version,
        parameters,
    } = packet
    else {
        panic!("got {packet:?}");
    };
    assert_eq!(protocol_version, 0x0003_0000);
    assert_eq!(
        parameters.iter().collect::<Vec<_>>(),
        vec![("user", "alice"), ("database", "db"), ("options", "")]
    );

    let mut out = BytesMut::new();
    build::startup_message(&mut out, 0x0003_0002, &[("user", "u"), ("_pq_.x", "1")]);
    let (packet, _) = next_startup_packet(&out).unwrap().unwrap();
    assert!(matches!(
        packet,
        StartupPacket::Startup {
            protocol_version: 0x0003_0002,
            ..
        }
    ));

    let mut out = BytesMut::new();
    build::ssl_request(&mut out);
    assert_eq!(
        next_startup_packet(&out).unwrap(),
        Some((StartupPacket::SslRequest, 8))
    );

    let mut out = BytesMut::new();
    build::gss_enc_request(&mut out);
    assert_eq!(
        next_startup_packet(&out).unwrap(),
        Some((StartupPacket::GssEncRequest, 8))
    );

    for key in [&[1u8, 2, 3, 4][..], &[5u8; 256][..]] {
        let mut out = BytesMut::new();
        build::cancel_request(&mut out, 99, key);
        assert_eq!(
            next_startup_packet(&out).unwrap(),
            Some((
                StartupPacket::CancelRequest {
                    process_id: 99,
                    secret_key: key
                },
                12 + key.len()
            ))
        );
    }
}

#[test]
fn builders_append_without_clobbering() {
    let mut out = BytesMut::from(&b"prefix"[..]);
    build::query(&mut out, "SELECT 1");
    build::sync(&mut out);
    assert_eq!(&out[..6], b"prefix");
    let frame = next_frame(&out[6..], MAX).unwrap().unwrap();
    assert_eq!(frame.tag, b'Q');
    let frame2 = next_frame(&out[6 + frame.wire_len()..], MAX)
        .unwrap()
        .unwrap();
    assert_eq!(frame2.tag, b'S');
    assert_eq!(6 + frame.wire_len() + frame2.wire_len(), out.len());
}
