//! SQLSTATE codes that sluice reports in its own ErrorResponse messages.
//!
//! Clients and drivers branch on these codes (for example to retry on
//! `53300` or to stop on `28P01`), so sluice uses the same codes PostgreSQL
//! would use for the equivalent condition (PostgreSQL docs, appendix
//! "PostgreSQL Error Codes").

/// Class 08: the peer broke the protocol.
pub const PROTOCOL_VIOLATION: &str = "08P01";
pub const CONNECTION_FAILURE: &str = "08006";
pub const SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION: &str = "08001";
/// Class 28: authentication.
pub const INVALID_PASSWORD: &str = "28P01";
pub const INVALID_AUTHORIZATION_SPECIFICATION: &str = "28000";
/// Class 3D: the requested database does not exist.
pub const INVALID_CATALOG_NAME: &str = "3D000";
/// Class 53: insufficient resources.
pub const TOO_MANY_CONNECTIONS: &str = "53300";
pub const DISK_FULL: &str = "53100";
pub const CONFIGURATION_LIMIT_EXCEEDED: &str = "53400";
/// Class 58: system error.
pub const IO_ERROR: &str = "58030";
/// Class 42: a policy denied the statement.
pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
/// Class 57: operator intervention.
pub const QUERY_CANCELED: &str = "57014";
pub const ADMIN_SHUTDOWN: &str = "57P01";
pub const CANNOT_CONNECT_NOW: &str = "57P03";
pub const IDLE_SESSION_TIMEOUT: &str = "57P05";
/// Class 54: a configured limit (such as the message size) was exceeded.
pub const PROGRAM_LIMIT_EXCEEDED: &str = "54000";
/// Class 0A: sluice does not support the requested feature.
pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
/// Class XX: a bug in sluice.
pub const INTERNAL_ERROR: &str = "XX000";

#[cfg(test)]
mod tests {
    #[test]
    fn codes_are_five_alphanumerics() {
        for code in [
            super::PROTOCOL_VIOLATION,
            super::CONNECTION_FAILURE,
            super::SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
            super::INVALID_PASSWORD,
            super::INVALID_AUTHORIZATION_SPECIFICATION,
            super::INVALID_CATALOG_NAME,
            super::TOO_MANY_CONNECTIONS,
            super::DISK_FULL,
            super::IO_ERROR,
            super::INSUFFICIENT_PRIVILEGE,
            super::QUERY_CANCELED,
            super::ADMIN_SHUTDOWN,
            super::CANNOT_CONNECT_NOW,
            super::IDLE_SESSION_TIMEOUT,
            super::PROGRAM_LIMIT_EXCEEDED,
            super::FEATURE_NOT_SUPPORTED,
            super::INTERNAL_ERROR,
        ] {
            assert_eq!(code.len(), 5, "{code}");
            assert!(
                code.bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()),
                "{code}"
            );
        }
    }
}
