//! Typed views of frontend (client to server) messages after startup.
//!
//! [`parse_frontend`] validates the whole body of one frame and returns a
//! view borrowing from it. Strings that PostgreSQL interprets in the client
//! encoding (SQL text, statement and portal names) are returned as bytes;
//! deciding how to decode them is the caller's business.

use super::cursor::Cursor;
use super::error::ParseError;
use super::frame::Frame;
use super::types::{FormatCode, FormatCodes, Oids, TargetKind, Values};

/// One frontend message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontendMessage<'a> {
    /// Simple query; `sql` excludes the trailing NUL.
    Query {
        sql: &'a [u8],
    },
    Parse {
        /// Empty for the unnamed statement.
        statement: &'a [u8],
        sql: &'a [u8],
        /// Type OIDs the client pre-specifies; 0 leaves a type unspecified.
        parameter_types: Oids<'a>,
    },
    Bind {
        /// Empty for the unnamed portal.
        portal: &'a [u8],
        statement: &'a [u8],
        /// Empty (all text), one (applies to all), or one per parameter;
        /// use [`FormatCodes::for_value`] to resolve.
        parameter_formats: FormatCodes<'a>,
        /// Parameter values; `None` is SQL NULL.
        parameters: Values<'a>,
        result_formats: FormatCodes<'a>,
    },
    Describe {
        kind: TargetKind,
        name: &'a [u8],
    },
    /// `row_limit` 0 (or negative, which PostgreSQL treats alike) means no
    /// limit.
    Execute {
        portal: &'a [u8],
        row_limit: i32,
    },
    Close {
        kind: TargetKind,
        name: &'a [u8],
    },
    Sync,
    Flush,
    Terminate,
    CopyData {
        data: &'a [u8],
    },
    CopyDone,
    CopyFail {
        message: &'a [u8],
    },
    FunctionCall {
        function_oid: u32,
        argument_formats: FormatCodes<'a>,
        arguments: Values<'a>,
        result_format: FormatCode,
    },
    /// A `p` message. Its meaning depends on the authentication exchange in
    /// progress (PasswordMessage, SASLInitialResponse, SASLResponse or
    /// GSSResponse), which only the session knows; see
    /// [`parse_sasl_initial_response`] and [`parse_password`].
    Password {
        data: &'a [u8],
    },
}

fn target(cur: &mut Cursor<'_>) -> Result<TargetKind, ParseError> {
    let kind = cur.u8("target kind")?;
    TargetKind::from_byte(kind).ok_or(ParseError::InvalidTargetKind {
        tag: cur.tag(),
        kind,
    })
}

/// Reads an Int16 format count, the formats, an Int16 value count and the
/// values, and checks the format count against the value count.
fn formats_and_values<'a>(
    cur: &mut Cursor<'a>,
) -> Result<(FormatCodes<'a>, Values<'a>), ParseError> {
    let format_count = cur.u16("format code count")?;
    let formats = FormatCodes::read(cur, format_count, "format codes")?;
    let value_count = cur.u16("value count")?;
    let values = Values::read(cur, value_count, "value")?;
    // PostgreSQL rejects any other combination, so a mismatch is a
    // protocol violation, not something to pass through.
    if format_count > 1 && format_count != value_count {
        return Err(if cur.tag() == b'B' {
            ParseError::BindParameterCountMismatch {
                formats: format_count,
                parameters: value_count,
            }
        } else {
            ParseError::FunctionCallArgumentCountMismatch {
                formats: format_count,
                arguments: value_count,
            }
        });
    }
    Ok((formats, values))
}

/// Parses one frontend frame.
///
/// Int16 counts are read as unsigned, as PostgreSQL reads them
/// (`pq_getmsgint(msg, 2)`; libpq allows up to 65535 parameters), so sluice
/// and the server always agree on where values start and end.
pub fn parse_frontend(frame: Frame<'_>) -> Result<FrontendMessage<'_>, ParseError> {
    let mut cur = Cursor::new(frame.tag, frame.body);
    let msg = match frame.tag {
        b'Q' => FrontendMessage::Query {
            sql: cur.cstr("query string")?,
        },
        b'P' => {
            let statement = cur.cstr("statement name")?;
            let sql = cur.cstr("query string")?;
            let count = cur.u16("parameter type count")?;
            FrontendMessage::Parse {
                statement,
                sql,
                parameter_types: Oids::read(&mut cur, count, "parameter type oids")?,
            }
        }
        b'B' => {
            let portal = cur.cstr("portal name")?;
            let statement = cur.cstr("statement name")?;
            let (parameter_formats, parameters) = formats_and_values(&mut cur)?;
            let result_count = cur.u16("result format count")?;
            let result_formats = FormatCodes::read(&mut cur, result_count, "result format codes")?;
            FrontendMessage::Bind {
                portal,
                statement,
                parameter_formats,
                parameters,
                result_formats,
            }
        }
        b'D' => FrontendMessage::Describe {
            kind: target(&mut cur)?,
            name: cur.cstr("name")?,
        },
        b'E' => FrontendMessage::Execute {
            portal: cur.cstr("portal name")?,
            row_limit: cur.i32("row limit")?,
        },
        b'C' => FrontendMessage::Close {
            kind: target(&mut cur)?,
            name: cur.cstr("name")?,
        },
        b'S' => FrontendMessage::Sync,
        b'H' => FrontendMessage::Flush,
        b'X' => FrontendMessage::Terminate,
        b'd' => FrontendMessage::CopyData { data: cur.rest() },
        b'c' => FrontendMessage::CopyDone,
        b'f' => FrontendMessage::CopyFail {
            message: cur.cstr("error message")?,
        },
        b'F' => {
            let function_oid = cur.u32("function oid")?;
            let (argument_formats, arguments) = formats_and_values(&mut cur)?;
            let code = cur.i16("result format")?;
            let result_format = FormatCode::from_i16(code)
                .ok_or(ParseError::InvalidFormatCode { tag: b'F', code })?;
            FrontendMessage::FunctionCall {
                function_oid,
                argument_formats,
                arguments,
                result_format,
            }
        }
        b'p' => FrontendMessage::Password { data: cur.rest() },
        tag => return Err(ParseError::UnknownTag { tag }),
    };
    cur.finish()?;
    Ok(msg)
}

/// Splits the body of a `p` message sent as SASLInitialResponse into the
/// mechanism name and the initial response (`None` when the length is -1).
pub fn parse_sasl_initial_response(body: &[u8]) -> Result<(&str, Option<&[u8]>), ParseError> {
    let mut cur = Cursor::new(b'p', body);
    let mechanism = cur.cstr_utf8("SASL mechanism")?;
    let mut values = Values::read(&mut cur, 1, "SASL initial response")?;
    cur.finish()?;
    Ok((mechanism, values.next().flatten()))
}

/// The password of a `p` message sent as PasswordMessage (cleartext or MD5),
/// without its NUL terminator.
pub fn parse_password(body: &[u8]) -> Result<&[u8], ParseError> {
    let mut cur = Cursor::new(b'p', body);
    let password = cur.cstr("password")?;
    cur.finish()?;
    Ok(password)
}
