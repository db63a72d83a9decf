//! Throw-away PKI for the demo and the tests: one CA, one server certificate
//! and any number of mTLS client certificates, all generated with rcgen.
//!
//! Keys are ECDSA P-256 (rcgen's default), which rustls, OpenSSL (libpq,
//! psql, PostgreSQL's own server side) and Python's ssl module all accept.

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};

use super::write_secret_file;

/// Paths of everything [`generate`] wrote.
#[derive(Clone, Debug)]
pub struct GeneratedCerts {
    /// The CA certificate (PEM); what clients pass as `sslrootcert`.
    pub ca_cert: PathBuf,
    /// The CA private key (PEM, mode 0600).
    pub ca_key: PathBuf,
    /// Server certificate followed by the CA certificate (full chain, PEM).
    pub server_cert: PathBuf,
    /// Server private key (PEM, mode 0600).
    pub server_key: PathBuf,
    /// One entry per requested client name, in the order given.
    pub clients: Vec<ClientCert>,
}

impl GeneratedCerts {
    /// The client certificate generated for `name`, if any.
    pub fn client(&self, name: &str) -> Option<&ClientCert> {
        self.clients.iter().find(|c| c.name == name)
    }
}

/// An mTLS client certificate whose subject CN and DNS SAN are both `name`.
#[derive(Clone, Debug)]
pub struct ClientCert {
    pub name: String,
    /// `client-NAME.crt` (PEM, leaf only).
    pub cert: PathBuf,
    /// `client-NAME.key` (PEM, mode 0600).
    pub key: PathBuf,
}

fn to_io(e: rcgen::Error) -> io::Error {
    io::Error::other(format!("certificate generation failed: {e}"))
}

fn random_serial() -> SerialNumber {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    // Keep the serial positive and non-zero as RFC 5280 requires.
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    SerialNumber::from_slice(&bytes)
}

fn san_for(name: &str) -> io::Result<SanType> {
    Ok(match name.parse::<IpAddr>() {
        Ok(ip) => SanType::IpAddress(ip),
        Err(_) => SanType::DnsName(name.to_string().try_into().map_err(to_io)?),
    })
}

/// Generates a CA, a server certificate valid for `server_names` (IP
/// addresses become IP SANs, everything else DNS SANs) and one client
/// certificate per entry of `client_names`, writing them into `out_dir`:
/// `ca.crt`, `ca.key`, `server.crt` (leaf + CA), `server.key`,
/// `client-NAME.crt`, `client-NAME.key`. Private keys get mode 0600.
///
/// Each call makes a new CA: certificates from different calls do not
/// verify against each other, which the tests use for "wrong CA" cases.
pub fn generate(
    out_dir: &Path,
    server_names: &[&str],
    client_names: &[&str],
) -> io::Result<GeneratedCerts> {
    std::fs::create_dir_all(out_dir)?;

    // The CA. Its name includes a random suffix so that two generated CAs
    // never share a subject (which would confuse chain building).
    let ca_key = KeyPair::generate().map_err(to_io)?;
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = rcgen::DistinguishedName::new();
    ca_params.distinguished_name.push(
        DnType::CommonName,
        format!("sluice dev CA {}", super::random_alphanumeric(8)),
    );
    ca_params
        .distinguished_name
        .push(DnType::OrganizationName, "sluice development");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.serial_number = Some(random_serial());
    let ca_key_pem = ca_key.serialize_pem();
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(to_io)?;
    let ca_pem = ca.pem();

    // The server certificate.
    let server_key = KeyPair::generate().map_err(to_io)?;
    let mut server_params = CertificateParams::default();
    server_params.distinguished_name = rcgen::DistinguishedName::new();
    server_params.distinguished_name.push(
        DnType::CommonName,
        server_names.first().copied().unwrap_or("localhost"),
    );
    server_params.subject_alt_names = server_names
        .iter()
        .map(|n| san_for(n))
        .collect::<io::Result<_>>()?;
    server_params.is_ca = IsCa::ExplicitNoCa;
    // ECDSA keys only sign; KeyEncipherment would be wrong for them.
    server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server_params.use_authority_key_identifier_extension = true;
    server_params.serial_number = Some(random_serial());
    let server_cert = server_params.signed_by(&server_key, &ca).map_err(to_io)?;

    let out = GeneratedCerts {
        ca_cert: out_dir.join("ca.crt"),
        ca_key: out_dir.join("ca.key"),
        server_cert: out_dir.join("server.crt"),
        server_key: out_dir.join("server.key"),
        clients: Vec::new(),
    };
    std::fs::write(&out.ca_cert, &ca_pem)?;
    write_secret_file(&out.ca_key, ca_key_pem.as_bytes())?;
    // Full chain so that clients which only know the CA can build the path.
    std::fs::write(&out.server_cert, format!("{}{}", server_cert.pem(), ca_pem))?;
    write_secret_file(&out.server_key, server_key.serialize_pem().as_bytes())?;

    let mut out = out;
    for name in client_names {
        let key = KeyPair::generate().map_err(to_io)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, *name);
        params.subject_alt_names = vec![san_for(name)?];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial());
        let cert = params.signed_by(&key, &ca).map_err(to_io)?;
        let client = ClientCert {
            name: name.to_string(),
            cert: out_dir.join(format!("client-{name}.crt")),
            key: out_dir.join(format!("client-{name}.key")),
        };
        std::fs::write(&client.cert, cert.pem())?;
        write_secret_file(&client.key, key.serialize_pem().as_bytes())?;
        out.clients.push(client);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_all_files_with_private_keys_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let g = generate(dir.path(), &["localhost", "127.0.0.1"], &["bot-a"]).unwrap();
        for p in [&g.ca_cert, &g.server_cert, &g.client("bot-a").unwrap().cert] {
            let text = std::fs::read_to_string(p).unwrap();
            assert!(text.starts_with("-----BEGIN CERTIFICATE-----"), "{p:?}");
        }
        // The server file carries the chain: leaf then CA.
        let chain = std::fs::read_to_string(&g.server_cert).unwrap();
        assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2);
        for p in [&g.ca_key, &g.server_key, &g.client("bot-a").unwrap().key] {
            let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{p:?}");
            let text = std::fs::read_to_string(p).unwrap();
            assert!(text.contains("PRIVATE KEY"), "{p:?}");
        }
    }
}
