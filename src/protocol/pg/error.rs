//! Errors of the typed message parsers.
//!
//! Each variant names one exact violation so that logs and tests can tell a
//! truncated message from a bad count or an unknown code without parsing the
//! display string. Tags are reported as the raw byte; [`ParseError`] is
//! `Copy` so the hot path never allocates, even on error.

/// A frame that is complete but whose body does not follow the documented
/// layout of its message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The tag byte does not name any message of this direction.
    #[error("unknown message tag {tag:#04x}")]
    UnknownTag { tag: u8 },
    /// The body ended before the named field.
    #[error("message {tag:#04x} ends before its {field} field")]
    UnexpectedEnd { tag: u8, field: &'static str },
    /// A string field has no NUL terminator inside the body.
    #[error("message {tag:#04x}: {field} is not NUL-terminated")]
    MissingNulTerminator { tag: u8, field: &'static str },
    /// Bytes remain after the last field of the message.
    #[error("message {tag:#04x} has {count} trailing bytes after its last field")]
    TrailingBytes { tag: u8, count: usize },
    /// Bind: the number of parameter format codes is neither 0, 1 nor the
    /// number of parameters.
    #[error("Bind has {formats} parameter format codes for {parameters} parameters")]
    BindParameterCountMismatch { formats: u16, parameters: u16 },
    /// FunctionCall: the number of argument format codes is neither 0, 1
    /// nor the number of arguments.
    #[error("FunctionCall has {formats} argument format codes for {arguments} arguments")]
    FunctionCallArgumentCountMismatch { formats: u16, arguments: u16 },
    /// A format code other than 0 (text) or 1 (binary).
    #[error("message {tag:#04x} has invalid format code {code}")]
    InvalidFormatCode { tag: u8, code: i16 },
    /// A CopyInResponse/CopyOutResponse/CopyBothResponse overall format other
    /// than 0 or 1.
    #[error("message {tag:#04x} has invalid overall copy format {format}")]
    InvalidCopyFormat { tag: u8, format: i8 },
    /// A value length that is negative but not -1 (NULL).
    #[error("message {tag:#04x} has invalid value length {length}")]
    InvalidValueLength { tag: u8, length: i32 },
    /// A negative element count in a field whose count is an Int32.
    #[error("message {tag:#04x} has negative {field} {count}")]
    NegativeCount {
        tag: u8,
        field: &'static str,
        count: i32,
    },
    /// Describe/Close target other than 'S' (statement) or 'P' (portal).
    #[error("message {tag:#04x} has invalid target kind {kind:#04x}")]
    InvalidTargetKind { tag: u8, kind: u8 },
    /// ReadyForQuery status other than 'I', 'T' or 'E'.
    #[error("ReadyForQuery has invalid transaction status {status:#04x}")]
    InvalidTransactionStatus { status: u8 },
    /// An Authentication request code this codec does not know.
    #[error("unknown authentication request code {code}")]
    UnknownAuthenticationCode { code: i32 },
    /// AuthenticationSASL without any mechanism.
    #[error("AuthenticationSASL lists no mechanism")]
    EmptySaslMechanismList,
    /// A field that must be UTF-8 is not.
    #[error("message {tag:#04x}: {field} is not valid UTF-8")]
    InvalidUtf8 { tag: u8, field: &'static str },
    /// A cancellation secret key shorter than 4 or longer than 256 bytes.
    #[error("secret key of {length} bytes is outside 4..=256")]
    SecretKeyLengthOutOfRange { length: usize },
}
