//! `sluice-loadgen http`: HTTP/1.1 keep-alive load, plaintext or TLS
//! (verified against `--cacert`).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use monoio::net::TcpStream;
use rustls::pki_types::ServerName;

use crate::{
    cli::HttpPlan,
    driver::{Connection, Outcome, Requests, Responses},
    http_wire::ResponseScanner,
    load::{self, Protocol, RunLabels},
};

/// Per-connection read buffer.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// The same request, again and again.
pub struct HttpRequests {
    request: Bytes,
}

impl Requests for HttpRequests {
    fn append(&mut self, out: &mut BytesMut) {
        out.extend_from_slice(&self.request);
    }
}

/// Builds the request bytes once per run.
pub fn build_request(plan: &HttpPlan) -> Bytes {
    let mut out = Vec::new();
    out.extend_from_slice(
        format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\n",
            plan.method,
            plan.url.path,
            plan.url.host_header()
        )
        .as_bytes(),
    );
    let mut has_user_agent = false;
    for (name, value) in &plan.headers {
        has_user_agent |= name.eq_ignore_ascii_case("user-agent");
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    if !has_user_agent {
        out.extend_from_slice(b"User-Agent: sluice-loadgen\r\n");
    }
    if !plan.body.is_empty() || matches!(plan.method.as_str(), "POST" | "PUT" | "PATCH") {
        out.extend_from_slice(format!("Content-Length: {}\r\n", plan.body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&plan.body);
    Bytes::from(out)
}

/// Responses with status 400 and above count as errors.
pub struct HttpResponses {
    scanner: ResponseScanner,
}

impl Responses for HttpResponses {
    fn feed(&mut self, input: &[u8], done: &mut dyn FnMut(Outcome)) -> Result<(), String> {
        self.scanner
            .scan(input, &mut |status| {
                done(if status >= 400 {
                    Outcome::Failure(format!("HTTP {status}"))
                } else {
                    Outcome::Success
                })
            })
            .map_err(|e| e.to_string())
    }
}

pub struct HttpProtocol {
    plan: HttpPlan,
    request: Bytes,
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
}

impl HttpProtocol {
    pub fn new(plan: HttpPlan) -> Result<HttpProtocol, String> {
        let tls = match &plan.cacert {
            None => None,
            Some(path) => {
                let certificates = sluice::tls::load_certificates(path)
                    .map_err(|e| format!("--cacert {}: {e}", path.display()))?;
                let mut roots = rustls::RootCertStore::empty();
                for certificate in certificates {
                    roots
                        .add(certificate)
                        .map_err(|e| format!("--cacert {}: {e}", path.display()))?;
                }
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| format!("TLS set-up: {e}"))?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                let name = ServerName::try_from(plan.url.host.clone())
                    .map_err(|_| format!("{:?} is not a valid TLS server name", plan.url.host))?;
                Some((Arc::new(config), name))
            }
        };
        let request = build_request(&plan);
        Ok(HttpProtocol { plan, request, tls })
    }
}

impl Protocol for HttpProtocol {
    type Requests = HttpRequests;
    type Responses = HttpResponses;

    async fn connect(&self, _index: usize) -> Result<Connection, String> {
        let address = format!("{}:{}", self.plan.url.host, self.plan.url.port);
        let stream = TcpStream::connect(address.as_str())
            .await
            .map_err(|e| format!("cannot connect to {address}: {e}"))?;
        stream
            .set_nodelay(true)
            .map_err(|e| format!("TCP_NODELAY: {e}"))?;
        let (mut reader, writer) = sluice::transport::plain(stream, READ_BUFFER_BYTES);
        if let Some((config, name)) = &self.tls {
            let connection = rustls::ClientConnection::new(config.clone(), name.clone())
                .map_err(|e| format!("TLS: {e}"))?;
            reader
                .handshake(&writer, connection.into(), &[])
                .await
                .map_err(|e| format!("TLS handshake with {address}: {e}"))?;
        }
        Ok(Connection {
            reader,
            writer,
            leftover: BytesMut::new(),
        })
    }

    fn requests(&self, _index: usize) -> HttpRequests {
        HttpRequests {
            request: self.request.clone(),
        }
    }

    fn responses(&self) -> HttpResponses {
        HttpResponses {
            scanner: ResponseScanner::new(
                self.plan.response_head_bytes_max,
                self.plan.method == "HEAD",
            ),
        }
    }

    fn goodbye(&self) -> Option<Bytes> {
        None
    }
}

/// `sluice-loadgen http`.
pub fn run(plan: HttpPlan) -> Result<(), String> {
    let labels = RunLabels {
        protocol: "http",
        target: format!(
            "{}://{}{}",
            if plan.url.tls { "https" } else { "http" },
            plan.url.host_header(),
            plan.url.path
        ),
        workload: format!("{} with a {} byte body", plan.method, plan.body.len()),
    };
    let load_settings = plan.load.clone();
    let protocol = Arc::new(HttpProtocol::new(plan)?);
    let summary = load::run_load(protocol, &load_settings, labels)?;
    load::finish(&summary, load_settings.json)
}
