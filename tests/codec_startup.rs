//! Startup-phase packets: boundaries, request codes and direct TLS.

use bytes::BytesMut;
use sluice::protocol::pg::build;
use sluice::protocol::pg::startup::{CANCEL_REQUEST_CODE, SSL_REQUEST_CODE};
use sluice::protocol::pg::{
    looks_like_tls_client_hello, next_startup_packet, StartupError, StartupPacket,
    STARTUP_PACKET_BYTES_MAX,
};

fn packet(code: u32, body: &[u8]) -> Vec<u8> {
    let mut v = ((8 + body.len()) as i32).to_be_bytes().to_vec();
    v.extend_from_slice(&code.to_be_bytes());
    v.extend_from_slice(body);
    v
}

#[test]
fn length_boundaries() {
    for length in [
        i32::MIN,
        -1,
        0,
        3,
        4,
        7,
        STARTUP_PACKET_BYTES_MAX as i32 + 1,
        i32::MAX,
    ] {
        assert_eq!(
            next_startup_packet(&length.to_be_bytes()),
            Err(StartupError::LengthOutOfRange { length }),
            "length {length}"
        );
    }
    // Exactly the maximum: a legal StartupMessage padded with one long value.
    let filler = "x".repeat(STARTUP_PACKET_BYTES_MAX - 8 - 2 - 1 - 1);
    let mut out = BytesMut::new();
    build::startup_message(&mut out, 3 << 16, &[("o", filler.as_str())]);
    assert_eq!(out.len(), STARTUP_PACKET_BYTES_MAX);
    let (_, n) = next_startup_packet(&out).unwrap().unwrap();
    assert_eq!(n, STARTUP_PACKET_BYTES_MAX);
    // The length is checked before the packet is complete.
    assert_eq!(next_startup_packet(&out[..4]), Ok(None));
}

#[test]
fn every_prefix_is_incomplete() {
    let mut out = BytesMut::new();
    build::startup_message(&mut out, 3 << 16, &[("user", "alice"), ("database", "db")]);
    for cut in 0..out.len() {
        assert_eq!(next_startup_packet(&out[..cut]), Ok(None), "cut {cut}");
    }
    // Bytes after the packet are not consumed.
    let mut more = out.to_vec();
    more.extend_from_slice(b"Q\0\0\0\x05\0");
    assert_eq!(next_startup_packet(&more).unwrap().unwrap().1, out.len());
}

#[test]
fn protocol_versions() {
    let body = b"user\0u\0\0";
    for minor in [0u16, 1, 2, 0xffff] {
        let p = packet((3 << 16) | u32::from(minor), body);
        assert!(
            matches!(next_startup_packet(&p), Ok(Some((StartupPacket::Startup { protocol_version, .. }, _))) if protocol_version & 0xffff == u32::from(minor))
        );
    }
    for (major, minor) in [(2u16, 0u16), (4, 0), (1234, 5677), (1234, 5681), (0, 0)] {
        let p = packet((u32::from(major) << 16) | u32::from(minor), body);
        assert_eq!(
            next_startup_packet(&p),
            Err(StartupError::UnsupportedProtocolVersion { major, minor })
        );
    }
}

#[test]
fn request_packets_have_fixed_layouts() {
    assert_eq!(
        next_startup_packet(&packet(SSL_REQUEST_CODE, b"x")),
        Err(StartupError::UnexpectedRequestLength {
            code: SSL_REQUEST_CODE,
            length: 9
        })
    );
    for key_len in [0usize, 3, 257] {
        let mut body = 7u32.to_be_bytes().to_vec();
        body.resize(body.len() + key_len, 1);
        assert_eq!(
            next_startup_packet(&packet(CANCEL_REQUEST_CODE, &body)),
            Err(StartupError::CancelKeyLengthOutOfRange { length: key_len })
        );
    }
    assert_eq!(
        next_startup_packet(&packet(CANCEL_REQUEST_CODE, &[0, 0])),
        Err(StartupError::CancelKeyLengthOutOfRange { length: 0 })
    );
}

#[test]
fn direct_tls_is_recognised() {
    let client_hello = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01];
    assert!(looks_like_tls_client_hello(&client_hello));
    assert!(next_startup_packet(&client_hello).is_err());
    let mut out = BytesMut::new();
    build::ssl_request(&mut out);
    assert!(!looks_like_tls_client_hello(&out));
    assert!(!looks_like_tls_client_hello(&[]));
}

#[test]
fn parameters_lookup_and_order() {
    let p = packet(
        3 << 16,
        b"user\0alice\0database\0\0application_name\0caf\xc3\xa9\0\0",
    );
    let Ok(Some((StartupPacket::Startup { parameters, .. }, _))) = next_startup_packet(&p) else {
        panic!("rejected");
    };
    assert_eq!(parameters.get("database"), Some(""));
    assert_eq!(parameters.get("application_name"), Some("café"));
    assert_eq!(parameters.get("User"), None, "names are case-sensitive");
    assert_eq!(
        parameters.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        vec!["user", "database", "application_name"]
    );
}

#[test]
fn negotiate_protocol_version_builder() {
    let mut out = BytesMut::new();
    build::negotiate_protocol_version(&mut out, 0, &["_pq_.compression"]);
    assert_eq!(
        &out[..],
        b"v\0\0\0\x1d\0\0\0\0\0\0\0\x01_pq_.compression\0".as_slice()
    );
}
