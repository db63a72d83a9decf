//! Ed25519 keys in the C2SP signed-note forms.
//!
//! * verifier key: `<name>+<hex key ID>+<base64(0x01 || public key)>`
//! * private key:  `PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || 32-byte seed)>`
//!
//! Key ID = first 4 bytes of SHA-256(name || 0x0A || 0x01 || public key).

use crate::error::{Error, Result};
use crate::limits::{KEY_FILE_BYTES_MAX, KEY_NAME_BYTES_MAX};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use std::path::Path;

/// Signature algorithm byte for Ed25519 in signed-note keys.
pub const ALGORITHM_ED25519: u8 = 0x01;

/// Checks a key name: non-empty, bounded, no '+', no whitespace, no control characters.
pub fn check_key_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid("key name", "empty"));
    }
    if name.len() > KEY_NAME_BYTES_MAX {
        return Err(Error::limit(
            "key name length in bytes",
            name.len() as u64,
            KEY_NAME_BYTES_MAX as u64,
        ));
    }
    if name
        .chars()
        .any(|c| c == '+' || c.is_whitespace() || c.is_control())
    {
        return Err(Error::invalid(
            "key name",
            "contains '+', whitespace or a control character",
        ));
    }
    Ok(())
}

/// The 4-byte key ID of an Ed25519 key.
pub fn key_id(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update([b'\n', ALGORITHM_ED25519]);
    hasher.update(public);
    let digest = hasher.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

fn hex4(id: &[u8; 4]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex4(text: &str, what: &'static str) -> Result<[u8; 4]> {
    if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::parse(
            "key",
            "the key ID is not 8 hexadecimal digits",
        ));
    }
    let mut out = [0u8; 4];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
            .map_err(|_| Error::parse(what, "bad key ID"))?;
    }
    Ok(out)
}

/// A public key that verifies signed notes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifierKey {
    pub name: String,
    pub id: [u8; 4],
    pub public: VerifyingKey,
}

impl VerifierKey {
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim_end_matches(['\n', '\r']);
        if text.starts_with("PRIVATE+KEY+") {
            return Err(Error::parse(
                "verifier key",
                "this is a private key; give the verifier key (the .vkey file)",
            ));
        }
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::parse(
                "verifier key",
                "expected <name>+<hex key ID>+<base64 key>",
            ));
        };
        check_key_name(name)?;
        let id = parse_hex4(id_hex, "verifier key")?;
        let raw = STANDARD
            .decode(key_b64)
            .map_err(|_| Error::parse("verifier key", "the key is not standard base64"))?;
        if raw.len() != 33 || raw[0] != ALGORITHM_ED25519 {
            return Err(Error::parse(
                "verifier key",
                "not an Ed25519 key (expected 0x01 and 32 bytes)",
            ));
        }
        let mut public_bytes = [0u8; 32];
        public_bytes.copy_from_slice(&raw[1..]);
        let public = VerifyingKey::from_bytes(&public_bytes).map_err(|_| {
            Error::parse(
                "verifier key",
                "the Ed25519 public key is not a valid point",
            )
        })?;
        if key_id(name, &public_bytes) != id {
            return Err(Error::parse(
                "verifier key",
                "the key ID does not match the name and key",
            ));
        }
        Ok(VerifierKey {
            name: name.to_string(),
            id,
            public,
        })
    }

    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(signature) = Signature::from_slice(signature) else {
            return false;
        };
        self.public.verify_strict(message, &signature).is_ok()
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = read_small_file(path, "verifier key")?;
        Self::parse(&text)
    }
}

impl std::fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut raw = vec![ALGORITHM_ED25519];
        raw.extend_from_slice(self.public.as_bytes());
        write!(
            f,
            "{}+{}+{}",
            self.name,
            hex4(&self.id),
            STANDARD.encode(raw)
        )
    }
}

/// A private Ed25519 key that signs checkpoints.
#[derive(Clone)]
pub struct SignerKey {
    pub name: String,
    pub id: [u8; 4],
    signing: SigningKey,
}

impl SignerKey {
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self> {
        check_key_name(name)?;
        let signing = SigningKey::from_bytes(&seed);
        let id = key_id(name, signing.verifying_key().as_bytes());
        Ok(SignerKey {
            name: name.to_string(),
            id,
            signing,
        })
    }

    pub fn generate(name: &str) -> Result<Self> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(|e| {
            Error::io(
                "reading the system random source",
                std::io::Error::other(e.to_string()),
            )
        })?;
        Self::from_seed(name, seed)
    }

    pub fn verifier(&self) -> VerifierKey {
        VerifierKey {
            name: self.name.clone(),
            id: self.id,
            public: self.signing.verifying_key(),
        }
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }

    /// `PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>`
    pub fn to_private_string(&self) -> String {
        let mut raw = vec![ALGORITHM_ED25519];
        raw.extend_from_slice(&self.signing.to_bytes());
        format!(
            "PRIVATE+KEY+{}+{}+{}",
            self.name,
            hex4(&self.id),
            STANDARD.encode(raw)
        )
    }

    pub fn parse_private(text: &str) -> Result<Self> {
        let text = text.trim_end_matches(['\n', '\r']);
        let Some(rest) = text.strip_prefix("PRIVATE+KEY+") else {
            return Err(Error::parse(
                "private key",
                "does not start with PRIVATE+KEY+",
            ));
        };
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::parse(
                "private key",
                "expected PRIVATE+KEY+<name>+<hex key ID>+<base64 key>",
            ));
        };
        let id = parse_hex4(id_hex, "private key")?;
        let raw = STANDARD
            .decode(key_b64)
            .map_err(|_| Error::parse("private key", "the key is not standard base64"))?;
        if raw.len() != 33 || raw[0] != ALGORITHM_ED25519 {
            return Err(Error::parse(
                "private key",
                "not an Ed25519 key (expected 0x01 and a 32-byte seed)",
            ));
        }
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&raw[1..]);
        let key = Self::from_seed(name, seed)?;
        if key.id != id {
            return Err(Error::parse(
                "private key",
                "the key ID does not match the name and key",
            ));
        }
        Ok(key)
    }

    /// Loads a private key file, refusing one that group or others may read or write.
    pub fn load(path: &Path) -> Result<Self> {
        check_private_permissions(path)?;
        let text = read_small_file(path, "private key")?;
        Self::parse_private(&text)
    }
}

impl std::fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SignerKey({}+{})", self.name, hex4(&self.id))
    }
}

#[cfg(unix)]
fn check_private_permissions(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let metadata =
        std::fs::metadata(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(Error::KeyPermissions {
            path: path.display().to_string(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private_permissions(_path: &Path) -> Result<()> {
    Ok(())
}

fn read_small_file(path: &Path, what: &'static str) -> Result<String> {
    let metadata = std::fs::metadata(path)
        .map_err(|e| Error::io(format!("reading {what} {}", path.display()), e))?;
    if metadata.len() > KEY_FILE_BYTES_MAX {
        return Err(Error::limit(
            "key file size in bytes",
            metadata.len(),
            KEY_FILE_BYTES_MAX,
        ));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| Error::io(format!("reading {what} {}", path.display()), e))?;
    String::from_utf8(bytes).map_err(|_| Error::parse(what, "the file is not UTF-8"))
}

/// Writes a new private key (mode 0600, created exclusively) and its verifier key.
pub fn write_key_pair(key: &SignerKey, private_path: &Path, verifier_path: &Path) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(private_path)
        .map_err(|e| Error::io(format!("creating {}", private_path.display()), e))?;
    file.write_all(format!("{}\n", key.to_private_string()).as_bytes())
        .map_err(|e| Error::io(format!("writing {}", private_path.display()), e))?;
    file.sync_all().map_err(|e| Error::SyncFailed {
        context: private_path.display().to_string(),
        source: e,
    })?;
    let mut public = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(verifier_path)
        .map_err(|e| Error::io(format!("creating {}", verifier_path.display()), e))?;
    public
        .write_all(format!("{}\n", key.verifier()).as_bytes())
        .map_err(|e| Error::io(format!("writing {}", verifier_path.display()), e))?;
    public.sync_all().map_err(|e| Error::SyncFailed {
        context: verifier_path.display().to_string(),
        source: e,
    })?;
    if let Some(parent) = private_path.parent() {
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        if let Ok(dir) = std::fs::File::open(parent) {
            dir.sync_all().map_err(|e| Error::SyncFailed {
                context: parent.display().to_string(),
                source: e,
            })?;
        }
    }
    Ok(())
}
