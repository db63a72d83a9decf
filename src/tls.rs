//! TLS configuration for both sides of the gateway: the agent-facing server
//! (TLS 1.3 by default, optional mTLS) and the upstream client (with the
//! libpq-like modes require / verify-ca / verify-full).

use std::{fs::File, io::BufReader, path::Path, sync::Arc};

use rustls::{
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime},
    server::WebPkiClientVerifier,
    ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme,
};

use crate::config::{Config, Target, TlsVersion, UpstreamTlsMode};

/// ALPN protocol name PostgreSQL 17 requires for direct TLS connections.
pub const ALPN_POSTGRESQL: &[u8] = b"postgresql";

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: String },
    #[error("{path} holds no PEM private key")]
    NoPrivateKey { path: String },
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client CA verifier: {0}")]
    Verifier(String),
    #[error("invalid upstream TLS server name {0:?}")]
    ServerName(String),
}

pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let file = File::open(path).map_err(|source| TlsSetupError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let certs = rustls_pemfile::certs(&mut BufReader::new(file))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsSetupError::Read {
            path: path.display().to_string(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsSetupError::NoCertificate {
            path: path.display().to_string(),
        });
    }
    Ok(certs)
}

pub(crate) fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsSetupError> {
    let file = File::open(path).map_err(|source| TlsSetupError::Read {
        path: path.display().to_string(),
        source,
    })?;
    rustls_pemfile::private_key(&mut BufReader::new(file))
        .map_err(|source| TlsSetupError::Read {
            path: path.display().to_string(),
            source,
        })?
        .ok_or_else(|| TlsSetupError::NoPrivateKey {
            path: path.display().to_string(),
        })
}

pub(crate) fn load_roots(path: &Path) -> Result<RootCertStore, TlsSetupError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certificates(path)? {
        roots.add(cert)?;
    }
    Ok(roots)
}

/// Builds the agent-facing TLS server configuration.
pub fn server_config(config: &Config) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let versions: &[&'static rustls::SupportedProtocolVersion] = match config.tls.min_version {
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(TlsSetupError::Rustls)?;
    let builder = match &config.tls.client_ca_file {
        Some(ca) => {
            let roots = Arc::new(load_roots(ca)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider());
            let verifier = if config.tls.client_cert_required {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            let verifier = verifier
                .build()
                .map_err(|e| TlsSetupError::Verifier(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let certs = load_certificates(&config.tls.cert_file)?;
    let key = load_private_key(&config.tls.key_file)?;
    let mut server = builder.with_single_cert(certs, key)?;
    // libpq 17 sends ALPN "postgresql" on every TLS connection; older clients
    // send none, which rustls accepts. Direct TLS additionally requires it,
    // which the session checks after the handshake.
    server.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
    // Session tickets would let a stolen ticket resume an mTLS identity
    // without the client key; agents reconnect rarely enough to do without.
    server.send_tls13_tickets = 0;
    Ok(Arc::new(server))
}

/// Upstream TLS: the client configuration plus the name to present and check.
#[derive(Clone)]
pub struct UpstreamTls {
    pub config: Arc<ClientConfig>,
    pub server_name: ServerName<'static>,
}

/// Builds the upstream client configuration for a target, or None for `disable`.
pub fn upstream_config(target: &Target) -> Result<Option<UpstreamTls>, TlsSetupError> {
    let server_name = ServerName::try_from(target.tls_server_name.clone())
        .map_err(|_| TlsSetupError::ServerName(target.tls_server_name.clone()))?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let config = match target.tls {
        UpstreamTlsMode::Disable => return Ok(None),
        UpstreamTlsMode::VerifyFull => {
            let ca = target
                .tls_ca_file
                .as_ref()
                .expect("validated: verify-full has a CA file");
            builder
                .with_root_certificates(load_roots(ca)?)
                .with_no_client_auth()
        }
        UpstreamTlsMode::VerifyCa => {
            let ca = target
                .tls_ca_file
                .as_ref()
                .expect("validated: verify-ca has a CA file");
            let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(load_roots(ca)?),
                provider(),
            )
            .build()
            .map_err(|e| TlsSetupError::Verifier(e.to_string()))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnlyVerifier { inner }))
                .with_no_client_auth()
        }
        UpstreamTlsMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnlyVerifier {
                provider: provider(),
            }))
            .with_no_client_auth(),
    };
    Ok(Some(UpstreamTls {
        config: Arc::new(config),
        server_name,
    }))
}

/// verify-ca: the chain must lead to the configured CA, but the name is not
/// checked (libpq's semantics for this mode).
#[derive(Debug)]
struct ChainOnlyVerifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnlyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// require: encrypt without authenticating the server (libpq's sslmode=require).
/// Handshake signatures are still checked so the key exchange is sound.
#[derive(Debug)]
struct EncryptOnlyVerifier {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for EncryptOnlyVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Does the verified client certificate name this identity (DNS SAN)?
/// The chain was already verified during the handshake; this checks only
/// the name binding.
pub fn certificate_names(end_entity: &CertificateDer<'_>, identity: &str) -> bool {
    let Ok(cert) = webpki::EndEntityCert::try_from(end_entity) else {
        return false;
    };
    let Ok(name) = ServerName::try_from(identity) else {
        return false;
    };
    cert.verify_is_valid_for_subject_name(&name).is_ok()
}

/// The RFC 5929 `tls-server-end-point` channel-binding value for a server
/// certificate: its hash with the certificate's signature hash algorithm,
/// SHA-256 for MD5/SHA-1 signatures. None when the algorithm names no single
/// hash (Ed25519, RSA-PSS with parameters), in which case sluice does not
/// offer SCRAM-SHA-256-PLUS, as PostgreSQL does not.
pub fn server_end_point(certificate_der: &[u8]) -> Option<Vec<u8>> {
    use sha2::{Digest, Sha256, Sha384, Sha512};
    let oid = signature_algorithm_oid(certificate_der)?;
    // OID contents (without tag and length) of the signature algorithms.
    const SHA256_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
    const SHA384_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c];
    const SHA512_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d];
    const SHA1_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05];
    const MD5_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x04];
    const ECDSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
    const ECDSA_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
    const ECDSA_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04];
    const ECDSA_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01];
    match oid {
        SHA256_RSA | ECDSA_SHA256 | SHA1_RSA | MD5_RSA | ECDSA_SHA1 => {
            Some(Sha256::digest(certificate_der).to_vec())
        }
        SHA384_RSA | ECDSA_SHA384 => Some(Sha384::digest(certificate_der).to_vec()),
        SHA512_RSA | ECDSA_SHA512 => Some(Sha512::digest(certificate_der).to_vec()),
        _ => None,
    }
}

/// Reads one DER element (tag, contents) from the front of `input`.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let count = (first & 0x7f) as usize;
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let length = rest[..count]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | b as usize);
        (length, &rest[count..])
    };
    if rest.len() < length {
        return None;
    }
    Some((tag, &rest[..length], &rest[length..]))
}

/// Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm
/// AlgorithmIdentifier ::= SEQUENCE { algorithm OID, ... }, signature }.
fn signature_algorithm_oid(certificate_der: &[u8]) -> Option<&[u8]> {
    const SEQUENCE: u8 = 0x30;
    const OID: u8 = 0x06;
    let (tag, certificate, _) = der_element(certificate_der)?;
    if tag != SEQUENCE {
        return None;
    }
    let (_, _, rest) = der_element(certificate)?; // tbsCertificate
    let (tag, algorithm, _) = der_element(rest)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, oid, _) = der_element(algorithm)?;
    (tag == OID).then_some(oid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_point_hash_follows_the_signature_algorithm() {
        // rcgen's default (ECDSA P-256 with SHA-256): SHA-256 of the DER.
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = cert.der().to_vec();
        use sha2::Digest;
        assert_eq!(
            server_end_point(&der).unwrap(),
            sha2::Sha256::digest(&der).to_vec()
        );
        // Ed25519 names no hash: no channel binding is offered.
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        assert!(server_end_point(cert.der()).is_none());
        // Garbage never panics.
        assert!(server_end_point(&[0x30, 0x84, 0xff]).is_none());
        assert!(server_end_point(&[]).is_none());
    }
}
