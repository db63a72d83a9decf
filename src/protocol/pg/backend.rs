//! Typed views of backend (server to client) messages.
//!
//! [`parse_backend`] validates the whole body of one frame, then returns a
//! view that borrows from it. Lists (row fields, column values, error
//! fields, SASL mechanisms) are returned as iterators over the already
//! validated region, so nothing is copied or allocated.

use super::cursor::Cursor;
use super::error::ParseError;
use super::frame::Frame;
use super::startup::{SECRET_KEY_BYTES_MAX, SECRET_KEY_BYTES_MIN};
use super::types::{FormatCode, FormatCodes, Oids, StrList, TransactionStatus, Values};

/// An Authentication request (`R`), discriminated by its Int32 code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authentication<'a> {
    /// 0: authentication succeeded.
    Ok,
    /// 2: Kerberos V5 (unsupported since PostgreSQL 9.4, still defined).
    KerberosV5,
    /// 3: send the password in clear text.
    CleartextPassword,
    /// 5: send the MD5-hashed password, salted with `salt`.
    Md5Password { salt: [u8; 4] },
    /// 7: GSSAPI.
    Gss,
    /// 8: GSSAPI or SSPI continuation data.
    GssContinue { data: &'a [u8] },
    /// 9: SSPI.
    Sspi,
    /// 10: SASL, with the mechanisms the server offers.
    Sasl { mechanisms: StrList<'a> },
    /// 11: SASL challenge.
    SaslContinue { data: &'a [u8] },
    /// 12: SASL outcome (server signature for SCRAM).
    SaslFinal { data: &'a [u8] },
}

/// One column of a RowDescription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldDescription<'a> {
    /// Column name, in the client encoding.
    pub name: &'a [u8],
    /// OID of the source table, or 0.
    pub table_oid: u32,
    /// Attribute number of the source column, or 0.
    pub column_attribute: i16,
    pub type_oid: u32,
    /// `pg_type.typlen`; negative for variable-width types.
    pub type_size: i16,
    /// `pg_attribute.atttypmod`; type-specific.
    pub type_modifier: i32,
    pub format: FormatCode,
}

/// Bytes after the name of each RowDescription field.
const FIELD_FIXED_BYTES: usize = 4 + 2 + 4 + 2 + 4 + 2;

fn read_field<'a>(cur: &mut Cursor<'a>) -> Result<FieldDescription<'a>, ParseError> {
    let name = cur.cstr("field name")?;
    let table_oid = cur.u32("table oid")?;
    let column_attribute = cur.i16("column attribute")?;
    let type_oid = cur.u32("type oid")?;
    let type_size = cur.i16("type size")?;
    let type_modifier = cur.i32("type modifier")?;
    let code = cur.i16("format code")?;
    let format = FormatCode::from_i16(code).ok_or(ParseError::InvalidFormatCode {
        tag: cur.tag(),
        code,
    })?;
    Ok(FieldDescription {
        name,
        table_oid,
        column_attribute,
        type_oid,
        type_size,
        type_modifier,
        format,
    })
}

/// The validated fields of a RowDescription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowFields<'a> {
    raw: &'a [u8],
    remaining: u16,
}

impl<'a> RowFields<'a> {
    fn read(cur: &mut Cursor<'a>, count: u16) -> Result<Self, ParseError> {
        let start = cur.remaining();
        // A cheap lower bound first: every field needs its fixed part and a
        // NUL, so an absurd count fails before the walk.
        if start.len() < usize::from(count) * (FIELD_FIXED_BYTES + 1) {
            return Err(ParseError::UnexpectedEnd {
                tag: cur.tag(),
                field: "field description",
            });
        }
        for _ in 0..count {
            read_field(cur)?;
        }
        let used = start.len() - cur.remaining().len();
        Ok(Self {
            raw: start.get(..used).unwrap_or_default(),
            remaining: count,
        })
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }
}

impl<'a> Iterator for RowFields<'a> {
    type Item = FieldDescription<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        let mut cur = Cursor::new(b'T', self.raw);
        let field = read_field(&mut cur).ok()?;
        self.raw = cur.remaining();
        self.remaining -= 1;
        Some(field)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::from(self.remaining);
        (n, Some(n))
    }
}

impl ExactSizeIterator for RowFields<'_> {}

/// The fields of an ErrorResponse or NoticeResponse: a one-byte code and a
/// string value each (PostgreSQL docs, "Error and Notice Message Fields").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fields<'a> {
    /// The fields without the final terminator.
    raw: &'a [u8],
}

impl<'a> Fields<'a> {
    fn read(cur: &mut Cursor<'a>) -> Result<Self, ParseError> {
        let start = cur.remaining();
        loop {
            let code = cur.u8("field list terminator")?;
            if code == 0 {
                break;
            }
            cur.cstr("field value")?;
        }
        // Everything before the terminator byte just read.
        let used = start.len() - cur.remaining().len() - 1;
        Ok(Self {
            raw: start.get(..used).unwrap_or_default(),
        })
    }

    /// All `(code, value)` pairs in wire order.
    pub fn iter(&self) -> impl Iterator<Item = (u8, &'a [u8])> + 'a {
        let mut cur = Cursor::new(b'E', self.raw);
        std::iter::from_fn(move || {
            let code = cur.u8("field code").ok()?;
            let value = cur.cstr("field value").ok()?;
            Some((code, value))
        })
    }

    /// The first value of field `code`.
    pub fn get(&self, code: u8) -> Option<&'a [u8]> {
        self.iter().find(|(c, _)| *c == code).map(|(_, v)| v)
    }

    /// The SQLSTATE (`C`), if present and ASCII-clean.
    pub fn sqlstate(&self) -> Option<&'a str> {
        self.get(b'C').and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The primary message (`M`).
    pub fn message(&self) -> Option<&'a [u8]> {
        self.get(b'M')
    }

    /// The severity, preferring the never-localized `V` over `S`.
    pub fn severity(&self) -> Option<&'a [u8]> {
        self.get(b'V').or_else(|| self.get(b'S'))
    }

    pub fn detail(&self) -> Option<&'a [u8]> {
        self.get(b'D')
    }

    pub fn hint(&self) -> Option<&'a [u8]> {
        self.get(b'H')
    }

    /// The fields as sent, without the final terminator.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }
}

/// One backend message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendMessage<'a> {
    Authentication(Authentication<'a>),
    BackendKeyData {
        process_id: u32,
        secret_key: &'a [u8],
    },
    /// Names and values must be UTF-8 or parsing fails with
    /// [`ParseError::InvalidUtf8`]. The server sends them in the client
    /// encoding, so a session whose client_encoding is not UTF8 and whose
    /// values contain non-ASCII characters (say, an application_name) would
    /// be rejected; sluice is expected to run with UTF8.
    ParameterStatus {
        name: &'a str,
        value: &'a str,
    },
    ReadyForQuery {
        status: TransactionStatus,
    },
    RowDescription {
        fields: RowFields<'a>,
    },
    DataRow {
        values: Values<'a>,
    },
    CommandComplete {
        tag: &'a [u8],
    },
    EmptyQueryResponse,
    ErrorResponse(Fields<'a>),
    NoticeResponse(Fields<'a>),
    ParseComplete,
    BindComplete,
    CloseComplete,
    NoData,
    PortalSuspended,
    ParameterDescription {
        parameter_types: Oids<'a>,
    },
    CopyInResponse {
        overall_format: FormatCode,
        column_formats: FormatCodes<'a>,
    },
    CopyOutResponse {
        overall_format: FormatCode,
        column_formats: FormatCodes<'a>,
    },
    CopyBothResponse {
        overall_format: FormatCode,
        column_formats: FormatCodes<'a>,
    },
    CopyData {
        data: &'a [u8],
    },
    CopyDone,
    NotificationResponse {
        process_id: u32,
        channel: &'a [u8],
        payload: &'a [u8],
    },
    FunctionCallResponse {
        value: Option<&'a [u8]>,
    },
    NegotiateProtocolVersion {
        newest_minor: u32,
        unrecognized: StrList<'a>,
    },
}

fn authentication<'a>(cur: &mut Cursor<'a>) -> Result<Authentication<'a>, ParseError> {
    let code = cur.i32("authentication code")?;
    Ok(match code {
        0 => Authentication::Ok,
        2 => Authentication::KerberosV5,
        3 => Authentication::CleartextPassword,
        5 => {
            let salt = cur.bytes(4, "salt")?;
            let mut out = [0u8; 4];
            out.copy_from_slice(salt);
            Authentication::Md5Password { salt: out }
        }
        7 => Authentication::Gss,
        8 => Authentication::GssContinue { data: cur.rest() },
        9 => Authentication::Sspi,
        10 => {
            let start = cur.remaining();
            let mut count = 0usize;
            while !cur.cstr("SASL mechanism")?.is_empty() {
                count += 1;
            }
            if count == 0 {
                return Err(ParseError::EmptySaslMechanismList);
            }
            // The mechanisms and their NULs, without the empty terminator.
            let used = start.len() - cur.remaining().len() - 1;
            let raw = start.get(..used).unwrap_or_default();
            let raw = std::str::from_utf8(raw).map_err(|_| ParseError::InvalidUtf8 {
                tag: b'R',
                field: "SASL mechanism",
            })?;
            Authentication::Sasl {
                mechanisms: StrList::new(raw, count),
            }
        }
        11 => Authentication::SaslContinue { data: cur.rest() },
        12 => Authentication::SaslFinal { data: cur.rest() },
        _ => return Err(ParseError::UnknownAuthenticationCode { code }),
    })
}

fn copy_response<'a>(cur: &mut Cursor<'a>) -> Result<(FormatCode, FormatCodes<'a>), ParseError> {
    let format = cur.i8("overall format")?;
    let overall_format =
        FormatCode::from_i16(i16::from(format)).ok_or(ParseError::InvalidCopyFormat {
            tag: cur.tag(),
            format,
        })?;
    let count = cur.u16("column format count")?;
    let column_formats = FormatCodes::read(cur, count, "column format codes")?;
    Ok((overall_format, column_formats))
}

/// Parses one backend frame.
///
/// Int16 counts are read as unsigned, as PostgreSQL itself reads them
/// (`pq_getmsgint(msg, 2)`), so sluice and the server agree on every count.
pub fn parse_backend(frame: Frame<'_>) -> Result<BackendMessage<'_>, ParseError> {
    let mut cur = Cursor::new(frame.tag, frame.body);
    let msg = match frame.tag {
        b'R' => BackendMessage::Authentication(authentication(&mut cur)?),
        b'K' => {
            let process_id = cur.u32("process id")?;
            let secret_key = cur.rest();
            if !(SECRET_KEY_BYTES_MIN..=SECRET_KEY_BYTES_MAX).contains(&secret_key.len()) {
                return Err(ParseError::SecretKeyLengthOutOfRange {
                    length: secret_key.len(),
                });
            }
            BackendMessage::BackendKeyData {
                process_id,
                secret_key,
            }
        }
        b'S' => BackendMessage::ParameterStatus {
            name: cur.cstr_utf8("parameter name")?,
            value: cur.cstr_utf8("parameter value")?,
        },
        b'Z' => {
            let status = cur.u8("transaction status")?;
            BackendMessage::ReadyForQuery {
                status: TransactionStatus::from_byte(status)
                    .ok_or(ParseError::InvalidTransactionStatus { status })?,
            }
        }
        b'T' => {
            let count = cur.u16("field count")?;
            BackendMessage::RowDescription {
                fields: RowFields::read(&mut cur, count)?,
            }
        }
        b'D' => {
            let count = cur.u16("column count")?;
            BackendMessage::DataRow {
                values: Values::read(&mut cur, count, "column value")?,
            }
        }
        b'C' => BackendMessage::CommandComplete {
            tag: cur.cstr("command tag")?,
        },
        b'I' => BackendMessage::EmptyQueryResponse,
        b'E' => BackendMessage::ErrorResponse(Fields::read(&mut cur)?),
        b'N' => BackendMessage::NoticeResponse(Fields::read(&mut cur)?),
        b'1' => BackendMessage::ParseComplete,
        b'2' => BackendMessage::BindComplete,
        b'3' => BackendMessage::CloseComplete,
        b'n' => BackendMessage::NoData,
        b's' => BackendMessage::PortalSuspended,
        b't' => {
            let count = cur.u16("parameter count")?;
            BackendMessage::ParameterDescription {
                parameter_types: Oids::read(&mut cur, count, "parameter type oids")?,
            }
        }
        b'G' => {
            let (overall_format, column_formats) = copy_response(&mut cur)?;
            BackendMessage::CopyInResponse {
                overall_format,
                column_formats,
            }
        }
        b'H' => {
            let (overall_format, column_formats) = copy_response(&mut cur)?;
            BackendMessage::CopyOutResponse {
                overall_format,
                column_formats,
            }
        }
        b'W' => {
            let (overall_format, column_formats) = copy_response(&mut cur)?;
            BackendMessage::CopyBothResponse {
                overall_format,
                column_formats,
            }
        }
        b'd' => BackendMessage::CopyData { data: cur.rest() },
        b'c' => BackendMessage::CopyDone,
        b'A' => BackendMessage::NotificationResponse {
            process_id: cur.u32("process id")?,
            channel: cur.cstr("channel")?,
            payload: cur.cstr("payload")?,
        },
        b'V' => {
            let mut values = Values::read(&mut cur, 1, "result value")?;
            BackendMessage::FunctionCallResponse {
                value: values.next().flatten(),
            }
        }
        b'v' => {
            let newest_minor = cur.u32("newest minor version")?;
            let count = cur.i32("option count")?;
            let Ok(count) = usize::try_from(count) else {
                return Err(ParseError::NegativeCount {
                    tag: b'v',
                    field: "option count",
                    count,
                });
            };
            let start = cur.remaining();
            for _ in 0..count {
                cur.cstr("unrecognized option")?;
            }
            let used = start.len() - cur.remaining().len();
            let raw = std::str::from_utf8(start.get(..used).unwrap_or_default()).map_err(|_| {
                ParseError::InvalidUtf8 {
                    tag: b'v',
                    field: "unrecognized option",
                }
            })?;
            BackendMessage::NegotiateProtocolVersion {
                newest_minor,
                unrecognized: StrList::new(raw, count),
            }
        }
        tag => return Err(ParseError::UnknownTag { tag }),
    };
    cur.finish()?;
    Ok(msg)
}
