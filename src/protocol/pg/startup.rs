//! The untagged packets of the startup phase.
//!
//! Before authentication a client sends packets that have no tag byte:
//! `Int32 length, Int32 code, body`. The code tells an SSLRequest,
//! GSSENCRequest or CancelRequest apart from a StartupMessage, whose code is
//! the protocol version. PostgreSQL 17 clients may also skip all of this and
//! open with a TLS ClientHello ("direct TLS"), which
//! [`looks_like_tls_client_hello`] detects.

/// Largest startup packet accepted, the same bound PostgreSQL applies
/// (`MAX_STARTUP_PACKET_LENGTH`), so sluice never accepts what the server
/// would refuse.
pub const STARTUP_PACKET_BYTES_MAX: usize = 10_000;

/// Most parameters accepted in one StartupMessage. PostgreSQL sets no limit,
/// but real clients send about ten, and a bound keeps the duplicate check
/// (quadratic, to avoid allocating) cheap for hostile input.
pub const STARTUP_PARAMETERS_MAX: usize = 128;

/// The smallest packet: the length word and the request code.
const STARTUP_PACKET_BYTES_MIN: usize = 8;

/// Request code of a CancelRequest (1234.5678).
pub const CANCEL_REQUEST_CODE: u32 = (1234 << 16) | 5678;
/// Request code of an SSLRequest (1234.5679).
pub const SSL_REQUEST_CODE: u32 = (1234 << 16) | 5679;
/// Request code of a GSSENCRequest (1234.5680).
pub const GSS_ENC_REQUEST_CODE: u32 = (1234 << 16) | 5680;
/// Protocol version 3.0 as sent in a StartupMessage.
pub const PROTOCOL_VERSION_3_0: u32 = 3 << 16;

/// Shortest and longest cancellation secret key. Protocol 3.0 uses 4 bytes;
/// protocol 3.2 allows up to 256.
pub const SECRET_KEY_BYTES_MIN: usize = 4;
pub const SECRET_KEY_BYTES_MAX: usize = 256;

/// One startup-phase packet, borrowing from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartupPacket<'a> {
    SslRequest,
    GssEncRequest,
    CancelRequest {
        process_id: u32,
        secret_key: &'a [u8],
    },
    Startup {
        /// `major << 16 | minor`; the major version is always 3.
        protocol_version: u32,
        parameters: StartupParameters<'a>,
    },
}

/// Violations of the startup packet layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StartupError {
    /// The length word is below 8 or above [`STARTUP_PACKET_BYTES_MAX`].
    #[error("startup packet length {length} is outside 8..=10000")]
    LengthOutOfRange { length: i32 },
    /// A StartupMessage with a major version other than 3, or an unknown
    /// 1234.x request code.
    #[error("unsupported frontend protocol {major}.{minor}")]
    UnsupportedProtocolVersion { major: u16, minor: u16 },
    /// An SSLRequest or GSSENCRequest carrying a body.
    #[error("request code {code} with unexpected packet length {length}")]
    UnexpectedRequestLength { code: u32, length: usize },
    /// A CancelRequest whose secret key is shorter than 4 or longer than
    /// 256 bytes (or which is too short to hold the process ID).
    #[error("CancelRequest secret key of {length} bytes is outside 4..=256")]
    CancelKeyLengthOutOfRange { length: usize },
    /// The parameter list does not end with the empty-name terminator.
    #[error("startup parameter list is not terminated")]
    MissingTerminator,
    /// The list terminator appears before the last byte of the packet.
    #[error("startup packet has data after the parameter list terminator")]
    DataAfterTerminator,
    /// A parameter name is not followed by a NUL-terminated value.
    #[error("startup parameter has a name but no value")]
    MissingParameterValue,
    /// A name or value is not valid UTF-8.
    #[error("startup parameter is not valid UTF-8")]
    InvalidUtf8,
    /// The same parameter name appears twice. Rejected because sluice and
    /// PostgreSQL could otherwise act on different values (for example a
    /// policy reading the first `user` while the server uses the last).
    #[error("startup parameter {name:?} appears more than once")]
    DuplicateParameter { name: String },
    /// More than [`STARTUP_PARAMETERS_MAX`] parameters.
    #[error("startup packet has more than {max} parameters")]
    TooManyParameters { max: usize },
}

/// The validated `name, value` pairs of a StartupMessage.
///
/// Holds the pair list (without its terminator) as one `&str`: UTF-8
/// validity, pairing, uniqueness and termination were all checked by
/// [`next_startup_packet`], so iteration is a plain split on NUL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartupParameters<'a> {
    raw: &'a str,
}

impl<'a> StartupParameters<'a> {
    /// All pairs in wire order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let mut rest = self.raw;
        std::iter::from_fn(move || {
            let (name, after) = rest.split_once('\0')?;
            let (value, after) = after.split_once('\0')?;
            rest = after;
            Some((name, value))
        })
    }

    /// The value of `name`, if present (names are unique).
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    pub fn len(&self) -> usize {
        self.iter().count()
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The pair list as sent, each string followed by its NUL, without the
    /// final terminator.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// Validates a StartupMessage body after the protocol version.
    fn parse(body: &'a [u8]) -> Result<Self, StartupError> {
        // The terminator must be the last byte; PostgreSQL rejects anything
        // after it, and so do we so that both see the same parameters.
        let Some((&0, list)) = body.split_last() else {
            return Err(StartupError::MissingTerminator);
        };
        let raw = std::str::from_utf8(list).map_err(|_| StartupError::InvalidUtf8)?;
        let mut rest = raw;
        let mut count = 0usize;
        while !rest.is_empty() {
            let Some((name, after)) = rest.split_once('\0') else {
                // The packet's last NUL ended this name: no value follows.
                return Err(StartupError::MissingParameterValue);
            };
            if name.is_empty() {
                return Err(StartupError::DataAfterTerminator);
            }
            let Some((_, after)) = after.split_once('\0') else {
                // The packet's last NUL ended this value, so the list itself
                // has no terminator.
                return Err(StartupError::MissingTerminator);
            };
            count += 1;
            if count > STARTUP_PARAMETERS_MAX {
                return Err(StartupError::TooManyParameters {
                    max: STARTUP_PARAMETERS_MAX,
                });
            }
            rest = after;
        }
        let parameters = Self { raw };
        for (i, (name, _)) in parameters.iter().enumerate() {
            if parameters
                .iter()
                .take(i)
                .any(|(earlier, _)| earlier == name)
            {
                return Err(StartupError::DuplicateParameter {
                    name: name.to_owned(),
                });
            }
        }
        Ok(parameters)
    }
}

/// Whether the client opened with a TLS handshake record (PostgreSQL 17
/// direct TLS) instead of a startup packet.
///
/// The first byte of a startup packet is the top byte of its length, which
/// is 0 for every legal length, so a first byte of 0x16 (TLS content type
/// "handshake") cannot be a startup packet.
pub fn looks_like_tls_client_hello(input: &[u8]) -> bool {
    input.first() == Some(&0x16)
}

fn be_u32(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let (head, rest) = bytes.split_first_chunk::<4>()?;
    Some((u32::from_be_bytes(*head), rest))
}

/// The next startup packet at the start of `input` and the bytes it
/// occupies, or `Ok(None)` if more bytes are needed.
///
/// The length is range-checked as soon as its four bytes are present, so a
/// bogus length is rejected before anything is buffered for it.
pub fn next_startup_packet(
    input: &[u8],
) -> Result<Option<(StartupPacket<'_>, usize)>, StartupError> {
    let Some((head, _)) = input.split_first_chunk::<4>() else {
        return Ok(None);
    };
    let length = i32::from_be_bytes(*head);
    let packet_len = match usize::try_from(length) {
        Ok(n) if (STARTUP_PACKET_BYTES_MIN..=STARTUP_PACKET_BYTES_MAX).contains(&n) => n,
        _ => return Err(StartupError::LengthOutOfRange { length }),
    };
    let Some(packet) = input.get(..packet_len) else {
        return Ok(None);
    };
    let Some((code, body)) = packet.get(4..).and_then(be_u32) else {
        // Unreachable: the packet holds at least eight bytes.
        return Err(StartupError::LengthOutOfRange { length });
    };
    let parsed = match code {
        SSL_REQUEST_CODE | GSS_ENC_REQUEST_CODE => {
            if !body.is_empty() {
                return Err(StartupError::UnexpectedRequestLength {
                    code,
                    length: packet_len,
                });
            }
            if code == SSL_REQUEST_CODE {
                StartupPacket::SslRequest
            } else {
                StartupPacket::GssEncRequest
            }
        }
        CANCEL_REQUEST_CODE => {
            let Some((process_id, secret_key)) = be_u32(body) else {
                return Err(StartupError::CancelKeyLengthOutOfRange { length: 0 });
            };
            if !(SECRET_KEY_BYTES_MIN..=SECRET_KEY_BYTES_MAX).contains(&secret_key.len()) {
                return Err(StartupError::CancelKeyLengthOutOfRange {
                    length: secret_key.len(),
                });
            }
            StartupPacket::CancelRequest {
                process_id,
                secret_key,
            }
        }
        _ => {
            let major = (code >> 16) as u16;
            let minor = (code & 0xffff) as u16;
            if major != 3 {
                return Err(StartupError::UnsupportedProtocolVersion { major, minor });
            }
            StartupPacket::Startup {
                protocol_version: code,
                parameters: StartupParameters::parse(body)?,
            }
        }
    };
    Ok(Some((parsed, packet_len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(code: u32, body: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((8 + body.len()) as i32).to_be_bytes());
        v.extend_from_slice(&code.to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn parses_startup_parameters() {
        let p = packet(PROTOCOL_VERSION_3_0, b"user\0alice\0database\0db\0\0");
        let (pkt, n) = next_startup_packet(&p).unwrap().unwrap();
        assert_eq!(n, p.len());
        let StartupPacket::Startup {
            protocol_version,
            parameters,
        } = pkt
        else {
            panic!("expected Startup, got {pkt:?}");
        };
        assert_eq!(protocol_version, PROTOCOL_VERSION_3_0);
        assert_eq!(parameters.get("user"), Some("alice"));
        assert_eq!(parameters.get("database"), Some("db"));
        assert_eq!(parameters.get("nope"), None);
        assert_eq!(parameters.len(), 2);
    }

    #[test]
    fn rejects_layout_violations() {
        let cases: &[(&[u8], StartupError)] = &[
            (b"", StartupError::MissingTerminator),
            (b"user\0alice\0", StartupError::MissingTerminator),
            (b"user\0\0", StartupError::MissingTerminator),
            (b"user\0", StartupError::MissingParameterValue),
            (b"a\0b\0\0c\0d\0\0", StartupError::DataAfterTerminator),
            (b"a\0\xff\0\0", StartupError::InvalidUtf8),
            (
                b"user\0a\0user\0b\0\0",
                StartupError::DuplicateParameter {
                    name: "user".into(),
                },
            ),
        ];
        for (body, want) in cases {
            let p = packet(PROTOCOL_VERSION_3_0, body);
            assert_eq!(next_startup_packet(&p).unwrap_err(), *want, "body {body:?}");
        }
    }

    #[test]
    fn rejects_too_many_parameters() {
        let mut body = Vec::new();
        for i in 0..=STARTUP_PARAMETERS_MAX {
            body.extend_from_slice(format!("p{i}\0v\0").as_bytes());
        }
        body.push(0);
        let p = packet(PROTOCOL_VERSION_3_0, &body);
        assert_eq!(
            next_startup_packet(&p).unwrap_err(),
            StartupError::TooManyParameters {
                max: STARTUP_PARAMETERS_MAX
            }
        );
    }
}
