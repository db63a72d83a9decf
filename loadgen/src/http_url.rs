//! `http://` and `https://` targets.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HttpUrlError {
    #[error("unsupported scheme in {0:?}: use http:// or https://")]
    Scheme(String),
    #[error("the host is empty in {0:?}")]
    EmptyHost(String),
    #[error("port {0:?} is not a number between 1 and 65535")]
    Port(String),
    #[error("the URL {0:?} contains a space or control character")]
    Character(String),
    #[error("user information in URLs is not supported ({0:?})")]
    UserInfo(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Path and query, as sent in the request line.
    pub path: String,
}

impl HttpUrl {
    pub fn parse(url: &str) -> Result<HttpUrl, HttpUrlError> {
        if url.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(HttpUrlError::Character(url.to_string()));
        }
        let (tls, rest) = if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else {
            return Err(HttpUrlError::Scheme(url.to_string()));
        };
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.contains('@') {
            return Err(HttpUrlError::UserInfo(url.to_string()));
        }
        let path = match path {
            "" => "/".to_string(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_string(),
        };
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| HttpUrlError::EmptyHost(url.to_string()))?;
            (host.to_string(), after.strip_prefix(':'))
        } else {
            match authority.split_once(':') {
                Some((host, port)) => (host.to_string(), Some(port)),
                None => (authority.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(HttpUrlError::EmptyHost(url.to_string()));
        }
        let port = match port {
            None => default_port,
            Some(text) => match text.parse::<u16>() {
                Ok(port) if port > 0 => port,
                _ => return Err(HttpUrlError::Port(text.to_string())),
            },
        };
        Ok(HttpUrl {
            tls,
            host,
            port,
            path,
        })
    }

    /// The Host header value.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default_port = if self.tls { 443 } else { 80 };
        if self.port == default_port {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let url = HttpUrl::parse("http://127.0.0.1:8080/a/b?c=d").unwrap();
        assert_eq!(
            url,
            HttpUrl {
                tls: false,
                host: "127.0.0.1".into(),
                port: 8080,
                path: "/a/b?c=d".into()
            }
        );
        assert_eq!(url.host_header(), "127.0.0.1:8080");
        let url = HttpUrl::parse("https://example.com").unwrap();
        assert_eq!((url.port, url.path.as_str(), url.tls), (443, "/", true));
        assert_eq!(url.host_header(), "example.com");
        let url = HttpUrl::parse("http://[::1]:81?q").unwrap();
        assert_eq!(
            (url.host.as_str(), url.port, url.path.as_str()),
            ("::1", 81, "/?q")
        );
    }

    #[test]
    fn bad_urls_are_named() {
        for (url, expected) in [
            ("ftp://h/", "scheme"),
            ("http:///x", "host is empty"),
            ("http://h:70000/", "port"),
            ("http://h/a b", "space"),
            ("http://u:p@h/", "user information"),
        ] {
            let error = HttpUrl::parse(url).unwrap_err().to_string();
            assert!(error.contains(expected), "{url}: {error}");
        }
    }
}
