//! The PostgreSQL target: a `postgresql://` URL, completed by the standard
//! PG* environment variables the way libpq completes it (URL first, then
//! the environment, then defaults).

use std::path::PathBuf;

/// How the client uses TLS, with libpq's names and meanings.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    /// TLS if the server accepts it, plaintext otherwise.
    Prefer,
    /// TLS without verifying the server certificate.
    Require,
    /// TLS; the chain must lead to `sslrootcert`, the name is not checked.
    VerifyCa,
    /// TLS; chain and host name are verified.
    VerifyFull,
}

impl SslMode {
    fn parse(text: &str) -> Result<SslMode, PgUrlError> {
        Ok(match text {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return Err(PgUrlError::SslMode(text.to_string())),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PgUrlError {
    #[error("unsupported scheme in {0:?}: use postgresql:// or postgres://")]
    Scheme(String),
    #[error("port {0:?} is not a number between 1 and 65535")]
    Port(String),
    #[error("invalid percent-encoding in {0:?}")]
    PercentEncoding(String),
    #[error("unknown URL parameter {0:?} (known: sslmode, sslrootcert, sslnegotiation, host, port, user, password, dbname, application_name)")]
    UnknownParameter(String),
    #[error("sslmode {0:?} is not one of disable, prefer, require, verify-ca, verify-full")]
    SslMode(String),
    #[error(
        "sslmode={0} needs sslrootcert=FILE (or PGSSLROOTCERT): no system trust store is used"
    )]
    RootCertMissing(&'static str),
    #[error("several hosts in one URL are not supported")]
    MultipleHosts,
    #[error("unterminated [IPv6] host in {0:?}")]
    Ipv6Host(String),
    #[error("the host is empty")]
    EmptyHost,
    #[error("sslnegotiation {0:?} is not one of postgres, direct")]
    SslNegotiation(String),
    #[error("sslnegotiation=direct needs sslmode=require, verify-ca or verify-full")]
    DirectWithoutTls,
}

/// Where and how to connect.
#[derive(Clone, PartialEq, Eq)]
pub struct PgTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub database: String,
    pub sslmode: SslMode,
    pub sslrootcert: Option<PathBuf>,
    /// `sslnegotiation=direct` (libpq 17): TLS from the first byte, with
    /// ALPN "postgresql", instead of an SSLRequest. What TLS-terminating
    /// TCP proxies (HAProxy) need.
    pub direct_tls: bool,
    pub application_name: String,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display())
    }
}

impl PgTarget {
    /// The target without its password, for summaries and errors.
    pub fn display(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!(
            "postgresql://{}@{}:{}/{}?sslmode={}",
            self.user,
            host,
            self.port,
            self.database,
            self.sslmode.name()
        )
    }

    /// Resolves the target from an optional URL and the environment.
    pub fn resolve(
        url: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<PgTarget, PgUrlError> {
        let mut parts = match url {
            Some(url) => parse_url(url)?,
            None => UrlParts::default(),
        };
        let from_env = |value: &mut Option<String>, name: &str| {
            if value.is_none() {
                *value = env(name).filter(|v| !v.is_empty());
            }
        };
        from_env(&mut parts.host, "PGHOST");
        from_env(&mut parts.port, "PGPORT");
        from_env(&mut parts.user, "PGUSER");
        from_env(&mut parts.password, "PGPASSWORD");
        from_env(&mut parts.database, "PGDATABASE");
        from_env(&mut parts.sslmode, "PGSSLMODE");
        from_env(&mut parts.sslrootcert, "PGSSLROOTCERT");
        from_env(&mut parts.sslnegotiation, "PGSSLNEGOTIATION");
        let host = parts.host.unwrap_or_else(|| "localhost".to_string());
        if host.is_empty() {
            return Err(PgUrlError::EmptyHost);
        }
        if host.contains(',') {
            return Err(PgUrlError::MultipleHosts);
        }
        let port = match parts.port {
            None => 5432,
            Some(text) => match text.parse::<u16>() {
                Ok(port) if port > 0 => port,
                _ => return Err(PgUrlError::Port(text)),
            },
        };
        let user = parts
            .user
            .or_else(|| env("USER"))
            .unwrap_or_else(|| "postgres".to_string());
        let database = parts.database.unwrap_or_else(|| user.clone());
        let sslmode = match parts.sslmode {
            None => SslMode::Prefer,
            Some(text) => SslMode::parse(&text)?,
        };
        let sslrootcert = parts.sslrootcert.map(PathBuf::from);
        if matches!(sslmode, SslMode::VerifyCa | SslMode::VerifyFull) && sslrootcert.is_none() {
            return Err(PgUrlError::RootCertMissing(sslmode.name()));
        }
        let direct_tls = match parts.sslnegotiation.as_deref() {
            None | Some("postgres") => false,
            Some("direct") => true,
            Some(other) => return Err(PgUrlError::SslNegotiation(other.to_string())),
        };
        if direct_tls && matches!(sslmode, SslMode::Disable | SslMode::Prefer) {
            return Err(PgUrlError::DirectWithoutTls);
        }
        Ok(PgTarget {
            direct_tls,
            host,
            port,
            user,
            password: parts.password,
            database,
            sslmode,
            sslrootcert,
            application_name: parts
                .application_name
                .unwrap_or_else(|| "sluice-loadgen".to_string()),
        })
    }
}

#[derive(Default, Debug)]
struct UrlParts {
    host: Option<String>,
    port: Option<String>,
    user: Option<String>,
    password: Option<String>,
    database: Option<String>,
    sslmode: Option<String>,
    sslrootcert: Option<String>,
    sslnegotiation: Option<String>,
    application_name: Option<String>,
}

/// Decodes `%XX` escapes (and nothing else: `+` stays `+`, as in libpq).
pub fn percent_decode(text: &str) -> Result<String, PgUrlError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&b) = bytes.get(index) {
        if b == b'%' {
            let hex = bytes
                .get(index + 1..index + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| PgUrlError::PercentEncoding(text.to_string()))?;
            out.push(hex);
            index += 3;
        } else {
            out.push(b);
            index += 1;
        }
    }
    String::from_utf8(out).map_err(|_| PgUrlError::PercentEncoding(text.to_string()))
}

fn non_empty(text: &str) -> Result<Option<String>, PgUrlError> {
    if text.is_empty() {
        Ok(None)
    } else {
        percent_decode(text).map(Some)
    }
}

fn parse_url(url: &str) -> Result<UrlParts, PgUrlError> {
    let rest = url
        .strip_prefix("postgresql://")
        .or_else(|| url.strip_prefix("postgres://"))
        .ok_or_else(|| PgUrlError::Scheme(url.split("://").next().unwrap_or("").to_string()))?;
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, Some(query)),
        None => (rest, None),
    };
    let (authority, path) = match rest.split_once('/') {
        Some((authority, path)) => (authority, path),
        None => (rest, ""),
    };
    let mut parts = UrlParts::default();
    // The user information ends at the last '@': a password may contain
    // an unescaped '@', a host never does.
    let host_port = match authority.rsplit_once('@') {
        Some((userinfo, host_port)) => {
            match userinfo.split_once(':') {
                Some((user, password)) => {
                    parts.user = non_empty(user)?;
                    parts.password = Some(percent_decode(password)?);
                }
                None => parts.user = non_empty(userinfo)?,
            }
            host_port
        }
        None => authority,
    };
    if host_port.contains(',') {
        return Err(PgUrlError::MultipleHosts);
    }
    if let Some(bracketed) = host_port.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| PgUrlError::Ipv6Host(host_port.to_string()))?;
        parts.host = Some(host.to_string());
        if let Some(port) = after.strip_prefix(':') {
            parts.port = non_empty(port)?;
        } else if !after.is_empty() {
            return Err(PgUrlError::Ipv6Host(host_port.to_string()));
        }
    } else {
        match host_port.split_once(':') {
            Some((host, port)) => {
                parts.host = non_empty(host)?;
                parts.port = non_empty(port)?;
            }
            None => parts.host = non_empty(host_port)?,
        }
    }
    parts.database = non_empty(path)?;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = Some(percent_decode(value)?);
        match name {
            "sslmode" => parts.sslmode = value,
            "sslrootcert" => parts.sslrootcert = value,
            "sslnegotiation" => parts.sslnegotiation = value,
            "host" => parts.host = value,
            "port" => parts.port = value,
            "user" => parts.user = value,
            "password" => parts.password = value,
            "dbname" => parts.database = value,
            "application_name" => parts.application_name = value,
            other => return Err(PgUrlError::UnknownParameter(other.to_string())),
        }
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn a_full_url_is_parsed() {
        let target = PgTarget::resolve(
            Some("postgresql://agent:p%40ss@db.example:6543/app?sslmode=verify-full&sslrootcert=/tmp/ca.crt"),
            &none,
        )
        .unwrap();
        assert_eq!(target.host, "db.example");
        assert_eq!(target.port, 6543);
        assert_eq!(target.user, "agent");
        assert_eq!(target.password.as_deref(), Some("p@ss"));
        assert_eq!(target.database, "app");
        assert_eq!(target.sslmode, SslMode::VerifyFull);
        assert_eq!(target.sslrootcert, Some(PathBuf::from("/tmp/ca.crt")));
        assert!(
            !target.display().contains("p@ss"),
            "summaries never show the password"
        );
    }

    #[test]
    fn the_environment_fills_what_the_url_leaves_out() {
        let env = |name: &str| match name {
            "PGHOST" => Some("10.0.0.1".to_string()),
            "PGPORT" => Some("7000".to_string()),
            "PGUSER" => Some("envuser".to_string()),
            "PGPASSWORD" => Some("secret".to_string()),
            "PGSSLMODE" => Some("require".to_string()),
            _ => None,
        };
        let target = PgTarget::resolve(Some("postgres://urluser@/db"), &env).unwrap();
        assert_eq!(target.host, "10.0.0.1");
        assert_eq!(target.port, 7000);
        assert_eq!(target.user, "urluser");
        assert_eq!(target.password.as_deref(), Some("secret"));
        assert_eq!(target.database, "db");
        assert_eq!(target.sslmode, SslMode::Require);
        let target = PgTarget::resolve(None, &env).unwrap();
        assert_eq!(target.user, "envuser");
        assert_eq!(target.database, "envuser");
    }

    #[test]
    fn ipv6_hosts_and_defaults() {
        let target = PgTarget::resolve(Some("postgresql://[::1]:5433"), &none).unwrap();
        assert_eq!(target.host, "::1");
        assert_eq!(target.port, 5433);
        assert_eq!(target.sslmode, SslMode::Prefer);
        let target = PgTarget::resolve(Some("postgresql://h"), &none).unwrap();
        assert_eq!(target.port, 5432);
    }

    #[test]
    fn bad_urls_are_named() {
        let cases = [
            ("http://h/db", "unsupported scheme"),
            ("postgresql://h:0/db", "port \"0\""),
            ("postgresql://h:x/db", "port \"x\""),
            ("postgresql://h/db?sslmode=maybe", "sslmode \"maybe\""),
            ("postgresql://h/db?sslmode=verify-full", "needs sslrootcert"),
            (
                "postgresql://h/db?colour=blue",
                "unknown URL parameter \"colour\"",
            ),
            ("postgresql://u%zz@h/db", "percent-encoding"),
            ("postgresql://h1,h2/db", "several hosts"),
            ("postgresql://[::1/db", "IPv6"),
            (
                "postgresql://h/db?sslnegotiation=direct",
                "needs sslmode=require",
            ),
            (
                "postgresql://h/db?sslmode=require&sslnegotiation=fast",
                "sslnegotiation \"fast\"",
            ),
        ];
        for (url, expected) in cases {
            let error = PgTarget::resolve(Some(url), &none).unwrap_err().to_string();
            assert!(
                error.contains(expected),
                "{url}: {error:?} lacks {expected:?}"
            );
        }
    }
}
