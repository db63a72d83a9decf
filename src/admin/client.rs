//! A small blocking HTTP/1.1 client (plain or TLS), for the `sluice
//! approvals` CLI and the webhook. One request per connection
//! (`Connection: close`), every read and write bounded by a timeout, and
//! the response bounded in size.

use std::{
    io::{Read, Write},
    net::{TcpStream, ToSocketAddrs},
    path::Path,
    str::FromStr,
    sync::Arc,
    time::Duration,
};

use rustls::{pki_types::ServerName, ClientConfig, ClientConnection, StreamOwned};

/// Largest response the client reads (head and body).
pub const RESPONSE_BYTES_MAX: usize = 16 * 1024 * 1024;
/// The system's trust store, for https webhooks without a configured CA.
const SYSTEM_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// An `http://` or `https://` URL: scheme, host, port and path (with query).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    pub https: bool,
    pub host: String,
    pub port: u16,
    pub path: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("the URL must start with http:// or https://")]
    UnsupportedScheme,
    #[error("the URL has no host")]
    MissingHost,
    #[error("the URL's port is not a number from 1 to 65535")]
    InvalidPort,
    #[error("the URL contains whitespace or control characters")]
    InvalidCharacter,
    #[error("user information (user:password@) in the URL is not supported")]
    UserInfo,
}

impl FromStr for HttpUrl {
    type Err = UrlError;

    fn from_str(text: &str) -> Result<Self, UrlError> {
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(UrlError::InvalidCharacter);
        }
        let (https, rest) = if let Some(rest) = text.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(UrlError::UnsupportedScheme);
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(at) if rest[at..].starts_with('/') => (&rest[..at], rest[at..].to_string()),
            Some(at) => (&rest[..at], format!("/{}", &rest[at..])),
            None => (rest, "/".to_string()),
        };
        if authority.contains('@') {
            return Err(UrlError::UserInfo);
        }
        let default_port = if https { 443 } else { 80 };
        let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
            // [IPv6]:port
            let Some((host, after)) = inner.split_once(']') else {
                return Err(UrlError::MissingHost);
            };
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse::<u16>().map_err(|_| UrlError::InvalidPort)?,
                None if after.is_empty() => default_port,
                None => return Err(UrlError::InvalidPort),
            };
            (host.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (
                    host.to_string(),
                    port.parse::<u16>().map_err(|_| UrlError::InvalidPort)?,
                ),
                None => (authority.to_string(), default_port),
            }
        };
        if host.is_empty() {
            return Err(UrlError::MissingHost);
        }
        if port == 0 {
            return Err(UrlError::InvalidPort);
        }
        Ok(HttpUrl {
            https,
            host,
            port,
            path,
        })
    }
}

impl std::fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}{}", self.host, self.port, self.path)
        } else {
            write!(f, "{scheme}://{}:{}{}", self.host, self.port, self.path)
        }
    }
}

/// TLS settings of the client: the roots it trusts.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
}

impl ClientTls {
    /// Trusts the certificates in `ca_file`, or the system store if None.
    pub fn new(ca_file: Option<&Path>) -> Result<Self, crate::tls::TlsSetupError> {
        let roots = crate::tls::load_roots(ca_file.unwrap_or(Path::new(SYSTEM_CA_FILE)))?;
        let config = ClientConfig::builder_with_provider(crate::tls::provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(ClientTls {
            config: Arc::new(config),
        })
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        host: String,
        source: std::io::Error,
    },
    #[error("cannot connect to {address}: {source}")]
    Connect {
        address: String,
        source: std::io::Error,
    },
    #[error("an https URL needs TLS settings")]
    TlsRequired,
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("I/O with the server: {0}")]
    Io(#[from] std::io::Error),
    #[error("the response is larger than {0} bytes")]
    ResponseTooLarge(usize),
    #[error("malformed HTTP response: {0}")]
    MalformedResponse(String),
}

/// Sends one request and reads the whole response.
pub fn request(
    url: &HttpUrl,
    method: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
    tls: Option<&ClientTls>,
    response_bytes_max: usize,
) -> Result<Response, ClientError> {
    let addresses: Vec<_> = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|source| ClientError::Resolve {
            host: url.host.clone(),
            source,
        })?
        .collect();
    let mut last_error = None;
    let mut stream = None;
    for address in &addresses {
        match TcpStream::connect_timeout(address, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(source) => {
                last_error = Some(ClientError::Connect {
                    address: address.to_string(),
                    source,
                })
            }
        }
    }
    let Some(stream) = stream else {
        return Err(last_error.unwrap_or_else(|| ClientError::Resolve {
            host: url.host.clone(),
            source: std::io::Error::other("no addresses"),
        }));
    };
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let _ = stream.set_nodelay(true);

    let host_header = if url.host.contains(':') {
        format!("[{}]:{}", url.host, url.port)
    } else {
        format!("{}:{}", url.host, url.port)
    };
    let mut head = format!(
        "{method} {} HTTP/1.1\r\nHost: {host_header}\r\nConnection: close\r\nUser-Agent: sluice/{}\r\nContent-Length: {}\r\n",
        url.path,
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    for (name, value) in headers {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut message = head.into_bytes();
    message.extend_from_slice(body);

    if url.https {
        let tls = tls.ok_or(ClientError::TlsRequired)?;
        let name = ServerName::try_from(url.host.clone())
            .map_err(|_| ClientError::ServerName(url.host.clone()))?;
        let connection = ClientConnection::new(tls.config.clone(), name)?;
        let mut stream = StreamOwned::new(connection, stream);
        stream.write_all(&message)?;
        stream.flush()?;
        read_response(&mut stream, response_bytes_max)
    } else {
        let mut stream = stream;
        stream.write_all(&message)?;
        read_response(&mut stream, response_bytes_max)
    }
}

fn read_response(stream: &mut impl Read, limit: usize) -> Result<Response, ClientError> {
    let mut data = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    let (status, head_len, content_length) = loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&data) {
            Ok(httparse::Status::Complete(head_len)) => {
                let status = response.code.unwrap_or(0);
                let content_length = response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .map(|h| {
                        std::str::from_utf8(h.value)
                            .ok()
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .ok_or_else(|| {
                                ClientError::MalformedResponse("invalid Content-Length".into())
                            })
                    })
                    .transpose()?;
                break (status, head_len, content_length);
            }
            Ok(httparse::Status::Partial) => {}
            Err(e) => return Err(ClientError::MalformedResponse(e.to_string())),
        }
        let n = read_some(stream, &mut chunk)?;
        if n == 0 {
            return Err(ClientError::MalformedResponse(
                "the connection closed before the response head".into(),
            ));
        }
        if data.len() + n > limit {
            return Err(ClientError::ResponseTooLarge(limit));
        }
        data.extend_from_slice(&chunk[..n]);
    };
    if let Some(length) = content_length {
        if head_len + length > limit {
            return Err(ClientError::ResponseTooLarge(limit));
        }
        while data.len() < head_len + length {
            let n = read_some(stream, &mut chunk)?;
            if n == 0 {
                return Err(ClientError::MalformedResponse(
                    "the connection closed inside the body".into(),
                ));
            }
            data.extend_from_slice(&chunk[..n]);
        }
        data.truncate(head_len + length);
    } else {
        loop {
            let n = read_some(stream, &mut chunk)?;
            if n == 0 {
                break;
            }
            if data.len() + n > limit {
                return Err(ClientError::ResponseTooLarge(limit));
            }
            data.extend_from_slice(&chunk[..n]);
        }
    }
    Ok(Response {
        status,
        body: data.split_off(head_len),
    })
}

/// A read where a TLS peer closing without close_notify counts as the end.
fn read_some(stream: &mut impl Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    match stream.read(buffer) {
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let url: HttpUrl = "https://127.0.0.1:9443".parse().unwrap();
        assert_eq!(
            url,
            HttpUrl {
                https: true,
                host: "127.0.0.1".into(),
                port: 9443,
                path: "/".into()
            }
        );
        let url: HttpUrl = "http://hooks.example.com/services/a?b=c".parse().unwrap();
        assert_eq!((url.port, url.path.as_str()), (80, "/services/a?b=c"));
        let url: HttpUrl = "http://[::1]:8080/x".parse().unwrap();
        assert_eq!((url.host.as_str(), url.port), ("::1", 8080));
        assert_eq!(url.to_string(), "http://[::1]:8080/x");
        assert_eq!(
            "ftp://x".parse::<HttpUrl>(),
            Err(UrlError::UnsupportedScheme)
        );
        assert_eq!("http://:80/".parse::<HttpUrl>(), Err(UrlError::MissingHost));
        assert_eq!("http://h:0/".parse::<HttpUrl>(), Err(UrlError::InvalidPort));
        assert_eq!(
            "http://h:99999".parse::<HttpUrl>(),
            Err(UrlError::InvalidPort)
        );
        assert_eq!("http://u:p@h/".parse::<HttpUrl>(), Err(UrlError::UserInfo));
        assert_eq!(
            "http://h/a b".parse::<HttpUrl>(),
            Err(UrlError::InvalidCharacter)
        );
    }

    #[test]
    fn responses_are_read_to_their_length_and_bounded() {
        let raw = b"HTTP/1.1 409 Conflict\r\nContent-Length: 5\r\n\r\nhelloEXTRA";
        let response = read_response(&mut &raw[..], 1024).unwrap();
        assert_eq!(
            (response.status, response.body.as_slice()),
            (409, &b"hello"[..])
        );
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n";
        assert!(matches!(
            read_response(&mut &raw[..], 1024),
            Err(ClientError::ResponseTooLarge(1024))
        ));
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
        assert!(matches!(
            read_response(&mut &raw[..], 1024),
            Err(ClientError::MalformedResponse(_))
        ));
        assert!(matches!(
            read_response(&mut &b"NOT HTTP\r\n\r\n"[..], 1024),
            Err(ClientError::MalformedResponse(_))
        ));
    }
}
