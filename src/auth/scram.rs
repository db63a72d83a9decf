//! SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802, RFC 7677) in PostgreSQL's
//! dialect, as sans-IO state machines for both roles.
//!
//! PostgreSQL specifics: the client sends an empty user name (`n=,`) because
//! the role comes from the startup packet; authorization identities (`a=`)
//! are not supported; the only channel binding type is
//! `tls-server-end-point` (RFC 5929), whose data is the hash of the server
//! certificate, computed by the caller.
//!
//! Nothing here logs, and neither errors nor `Debug` output ever contain
//! passwords, tokens, proofs, signatures or keys.

use std::borrow::Cow;
use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::token::{ScramVerifier, MAX_ITERATIONS, MAX_SALT_LEN, MIN_ITERATIONS};

/// SASL mechanism name for SCRAM-SHA-256 without channel binding.
pub const SCRAM_SHA_256: &str = "SCRAM-SHA-256";
/// SASL mechanism name for SCRAM-SHA-256 with channel binding.
pub const SCRAM_SHA_256_PLUS: &str = "SCRAM-SHA-256-PLUS";
/// The only channel binding type PostgreSQL (and sluice) supports.
pub const TLS_SERVER_END_POINT: &str = "tls-server-end-point";

/// Longest client-first or client-final message the server accepts. Real
/// clients send well under 200 bytes; the bound stops memory and CPU abuse.
pub const MAX_CLIENT_MESSAGE_LEN: usize = 1024;
/// Longest server-first or server-final message the client accepts.
pub const MAX_SERVER_MESSAGE_LEN: usize = 1024;
/// Longest client nonce the server accepts.
pub const MAX_NONCE_LEN: usize = 256;
/// Longest combined (client + server) nonce the client accepts from a server.
pub const MAX_COMBINED_NONCE_LEN: usize = 2 * MAX_NONCE_LEN;
/// Random bytes in each nonce we generate; PostgreSQL uses the same 18 bytes
/// (144 bits), which base64-encode to 24 characters without padding.
pub const NONCE_RANDOM_BYTES: usize = 18;
/// Largest channel binding datum accepted (a SHA-512 certificate hash).
pub const MAX_CHANNEL_BINDING_LEN: usize = 64;
/// A server `e=` error value is truncated to this many characters before it
/// is surfaced, since it is attacker-controlled text that may end up in logs.
pub const MAX_SERVER_ERROR_LEN: usize = 128;

const CLIENT_KEY_LABEL: &[u8] = b"Client Key";
const SERVER_KEY_LABEL: &[u8] = b"Server Key";

type HmacSha256 = Hmac<Sha256>;

/// Channel binding data for the current connection.
#[derive(Clone, PartialEq, Eq)]
pub enum ChannelBinding {
    /// No TLS on this connection, or the caller chooses not to bind.
    None,
    /// RFC 5929 `tls-server-end-point`: the hash of the server's certificate
    /// (SHA-256 unless the certificate's signature uses SHA-384/512).
    TlsServerEndPoint(Vec<u8>),
}

impl fmt::Debug for ChannelBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChannelBinding::None => f.write_str("None"),
            ChannelBinding::TlsServerEndPoint(d) => {
                write!(f, "TlsServerEndPoint({} bytes)", d.len())
            }
        }
    }
}

impl ChannelBinding {
    fn validate(&self) -> Result<(), ScramError> {
        match self {
            ChannelBinding::TlsServerEndPoint(d)
                if d.is_empty() || d.len() > MAX_CHANNEL_BINDING_LEN =>
            {
                Err(ScramError::InvalidChannelBindingData)
            }
            _ => Ok(()),
        }
    }

    fn is_available(&self) -> bool {
        matches!(self, ChannelBinding::TlsServerEndPoint(_))
    }
}

/// Mechanisms the server should advertise in `AuthenticationSASL`, in
/// preference order, given the channel binding it will pass to
/// [`ScramServer::new`]. Advertising PLUS exactly when binding data exists is
/// what makes the downgrade check in [`ScramServer`] sound.
pub fn advertised_mechanisms(channel_binding: &ChannelBinding) -> &'static [&'static str] {
    if channel_binding.is_available() {
        &[SCRAM_SHA_256_PLUS, SCRAM_SHA_256]
    } else {
        &[SCRAM_SHA_256]
    }
}

/// Picks the mechanism a client should use from a server's advertised list:
/// PLUS when both sides can bind, otherwise plain SCRAM-SHA-256. Returns
/// `None` when the server offers neither.
pub fn select_mechanism<'a, I>(offered: I, channel_binding: &ChannelBinding) -> Option<&'static str>
where
    I: IntoIterator<Item = &'a str>,
{
    let (mut plain, mut plus) = (false, false);
    for m in offered {
        plain |= m == SCRAM_SHA_256;
        plus |= m == SCRAM_SHA_256_PLUS;
    }
    if plus && channel_binding.is_available() {
        Some(SCRAM_SHA_256_PLUS)
    } else if plain {
        Some(SCRAM_SHA_256)
    } else {
        None
    }
}

/// Errors from either side of the exchange. None of them carries secret
/// material; [`ScramError::ServerError`] carries the (truncated) text an
/// upstream server sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("unsupported SASL mechanism")]
    UnsupportedMechanism,
    #[error("SCRAM-SHA-256-PLUS requires channel binding data, but none is available")]
    ChannelBindingUnavailable,
    #[error("channel binding data is empty or longer than {MAX_CHANNEL_BINDING_LEN} bytes")]
    InvalidChannelBindingData,
    #[error("unsupported SCRAM channel binding type")]
    UnsupportedChannelBindingType,
    #[error(
        "client supports channel binding but believes the server does not, although the server offers SCRAM-SHA-256-PLUS (possible downgrade attack)"
    )]
    ClientRequiresChannelBinding,
    #[error("SCRAM channel binding check failed")]
    ChannelBindingMismatch,
    #[error("SCRAM nonce mismatch")]
    NonceMismatch,
    #[error("malformed SCRAM message: {what}")]
    Malformed { what: &'static str },
    #[error("SCRAM message longer than {max} bytes")]
    MessageTooLong { max: usize },
    #[error("SCRAM iteration count {iterations} outside {MIN_ITERATIONS}..={MAX_ITERATIONS}")]
    IterationCountOutOfRange { iterations: u32 },
    #[error("invalid SCRAM client proof")]
    InvalidProof,
    #[error("invalid SCRAM server signature")]
    InvalidServerSignature,
    #[error("server reported SCRAM error: {0}")]
    ServerError(String),
    #[error("SCRAM message received out of order")]
    OutOfOrder,
}

impl ScramError {
    /// SQLSTATE the gateway should answer an agent with when its own
    /// [`ScramServer`] fails: 28P01 (invalid_password) for a wrong token,
    /// 08P01 (protocol_violation) for everything else, as PostgreSQL does.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            ScramError::InvalidProof => "28P01",
            _ => "08P01",
        }
    }
}

fn malformed(what: &'static str) -> ScramError {
    ScramError::Malformed { what }
}

// ---------------------------------------------------------------------------
// Primitives (RFC 5802 §3). Public so that tests and tools can check them
// against published vectors; everything else should use the state machines.
// ---------------------------------------------------------------------------

/// HMAC-SHA-256 over the concatenation of `parts`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac =
        <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// SaltedPassword := Hi(Normalize(password), salt, i), i.e. PBKDF2-HMAC-SHA-256.
pub fn salted_password(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
    out
}

/// ClientKey := HMAC(SaltedPassword, "Client Key").
pub fn client_key(salted_password: &[u8; 32]) -> [u8; 32] {
    hmac_sha256(salted_password, &[CLIENT_KEY_LABEL])
}

/// ServerKey := HMAC(SaltedPassword, "Server Key").
pub fn server_key(salted_password: &[u8; 32]) -> [u8; 32] {
    hmac_sha256(salted_password, &[SERVER_KEY_LABEL])
}

/// StoredKey := H(ClientKey).
pub fn stored_key(client_key: &[u8; 32]) -> [u8; 32] {
    Sha256::digest(client_key).into()
}

/// The SASLprep step of SCRAM's Normalize().
///
/// ASCII passwords are returned unchanged, which is exactly what PostgreSQL's
/// `pg_saslprep` does for them (and sluice's own tokens are ASCII). For
/// non-ASCII input full SASLprep (RFC 4013: NFKC plus mapping and prohibited
/// character checks) would need a Unicode table crate; we use the raw UTF-8
/// bytes, which is PostgreSQL's own fallback when SASLprep fails and matches
/// SASLprep for passwords that are already NFKC-normalized and contain no
/// mapped characters.
pub fn normalize_password(password: &str) -> Cow<'_, [u8]> {
    Cow::Borrowed(password.as_bytes())
}

fn xor32(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (o, (x, y)) in out.iter_mut().zip(a.iter().zip(b)) {
        *o = x ^ y;
    }
    out
}

fn random_nonce() -> String {
    let mut raw = [0u8; NONCE_RANDOM_BYTES];
    OsRng.fill_bytes(&mut raw);
    STANDARD.encode(raw)
}

/// RFC 5802 `printable`: %x21-2B / %x2D-7E (visible ASCII except ',').
fn is_valid_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// Splits off `<name>=` from an attribute, returning its value.
fn attr<'a>(part: &'a str, name: u8, what: &'static str) -> Result<&'a str, ScramError> {
    match part.as_bytes() {
        [n, b'=', ..] if *n == name => Ok(&part[2..]),
        _ => Err(malformed(what)),
    }
}

/// Checks that an attribute we do not interpret is at least `x=value`
/// shaped, as RFC 5802 extensions must be; a mandatory extension (`m=`)
/// cannot be honoured and aborts the exchange.
fn check_extension(part: &str) -> Result<(), ScramError> {
    match part.as_bytes() {
        [b'm', b'=', ..] => Err(malformed("unsupported mandatory extension")),
        [n, b'=', ..] if n.is_ascii_alphabetic() => Ok(()),
        _ => Err(malformed("attribute")),
    }
}

fn as_message(bytes: &[u8], max: usize) -> Result<&str, ScramError> {
    if bytes.len() > max {
        return Err(ScramError::MessageTooLong { max });
    }
    std::str::from_utf8(bytes).map_err(|_| malformed("not UTF-8"))
}

/// The `c=` value: the gs2 header, followed by the binding data for `p=`.
fn cbind_input(gs2_header: &str, binding: Option<&[u8]>) -> Vec<u8> {
    let mut v = gs2_header.as_bytes().to_vec();
    if let Some(data) = binding {
        v.extend_from_slice(data);
    }
    v
}

// ---------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------

enum ServerState {
    AwaitingClientFirst,
    AwaitingClientFinal {
        client_first_bare: String,
        server_first: String,
        combined_nonce: String,
        expected_cbind_input: Vec<u8>,
    },
    Authenticated,
    Failed,
}

/// The SCRAM server role: sluice verifying an agent's token.
///
/// Any error moves the machine to a terminal failed state, so a failed
/// exchange cannot be resumed.
pub struct ScramServer {
    verifier: ScramVerifier,
    plus: bool,
    channel_binding: ChannelBinding,
    state: ServerState,
    /// Fixed server nonce part for test vectors; random otherwise.
    fixed_server_nonce: Option<String>,
}

impl fmt::Debug for ScramServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            ServerState::AwaitingClientFirst => "awaiting client-first",
            ServerState::AwaitingClientFinal { .. } => "awaiting client-final",
            ServerState::Authenticated => "authenticated",
            ServerState::Failed => "failed",
        };
        f.debug_struct("ScramServer")
            .field(
                "mechanism",
                &if self.plus {
                    SCRAM_SHA_256_PLUS
                } else {
                    SCRAM_SHA_256
                },
            )
            .field("channel_binding", &self.channel_binding)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl ScramServer {
    /// Starts an exchange for the mechanism the client chose in its
    /// SASLInitialResponse. `channel_binding` must be the connection's data
    /// whenever the server advertised SCRAM-SHA-256-PLUS (see
    /// [`advertised_mechanisms`]): its presence is what the downgrade check
    /// compares the client's `y` flag against.
    pub fn new(
        verifier: ScramVerifier,
        mechanism: &str,
        channel_binding: ChannelBinding,
    ) -> Result<Self, ScramError> {
        channel_binding.validate()?;
        let plus = match mechanism {
            SCRAM_SHA_256 => false,
            SCRAM_SHA_256_PLUS if channel_binding.is_available() => true,
            SCRAM_SHA_256_PLUS => return Err(ScramError::ChannelBindingUnavailable),
            _ => return Err(ScramError::UnsupportedMechanism),
        };
        Ok(ScramServer {
            verifier,
            plus,
            channel_binding,
            state: ServerState::AwaitingClientFirst,
            fixed_server_nonce: None,
        })
    }

    /// True once a client-final-message carried a valid proof.
    pub fn is_authenticated(&self) -> bool {
        matches!(self.state, ServerState::Authenticated)
    }

    /// Processes the client-first-message (the SASLInitialResponse data) and
    /// returns the server-first-message.
    pub fn handle_client_first(&mut self, client_first: &[u8]) -> Result<Vec<u8>, ScramError> {
        if !matches!(self.state, ServerState::AwaitingClientFirst) {
            self.state = ServerState::Failed;
            return Err(ScramError::OutOfOrder);
        }
        let result = self.client_first_inner(client_first);
        match result {
            Ok((server_first, next)) => {
                self.state = next;
                Ok(server_first)
            }
            Err(e) => {
                self.state = ServerState::Failed;
                Err(e)
            }
        }
    }

    fn client_first_inner(&self, msg: &[u8]) -> Result<(Vec<u8>, ServerState), ScramError> {
        let msg = as_message(msg, MAX_CLIENT_MESSAGE_LEN)?;

        // gs2-header = gs2-cbind-flag "," [ authzid ] ","
        let (flag, rest) = msg.split_once(',').ok_or(malformed("gs2 header"))?;
        let (authzid, bare) = rest.split_once(',').ok_or(malformed("gs2 header"))?;
        let gs2_header = &msg[..msg.len() - bare.len()];

        let binding = match flag {
            "n" => {
                if self.plus {
                    // The client picked PLUS but then declined to bind.
                    return Err(ScramError::ChannelBindingMismatch);
                }
                None
            }
            "y" => {
                if self.plus {
                    return Err(ScramError::ChannelBindingMismatch);
                }
                if self.channel_binding.is_available() {
                    // RFC 5802 §6: the client could bind and we offered PLUS,
                    // so somebody removed PLUS from the list it saw.
                    return Err(ScramError::ClientRequiresChannelBinding);
                }
                None
            }
            _ => {
                let name = flag
                    .strip_prefix("p=")
                    .ok_or(malformed("channel binding flag"))?;
                if name != TLS_SERVER_END_POINT {
                    return Err(ScramError::UnsupportedChannelBindingType);
                }
                if !self.plus {
                    // Binding data with plain SCRAM-SHA-256 is a protocol error.
                    return Err(ScramError::ChannelBindingMismatch);
                }
                match &self.channel_binding {
                    ChannelBinding::TlsServerEndPoint(d) => Some(d.as_slice()),
                    ChannelBinding::None => return Err(ScramError::ChannelBindingUnavailable),
                }
            }
        };
        if !authzid.is_empty() {
            return Err(if authzid.starts_with("a=") {
                malformed("authorization identity is not supported")
            } else {
                malformed("gs2 header")
            });
        }

        // client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
        let mut parts = bare.split(',');
        let user = parts.next().unwrap_or("");
        if user.starts_with("m=") {
            return Err(malformed("unsupported mandatory extension"));
        }
        // The user name is ignored, as in PostgreSQL: the role was fixed by
        // the startup packet, and libpq sends it empty.
        attr(user, b'n', "username attribute")?;
        let nonce = attr(parts.next().unwrap_or(""), b'r', "nonce attribute")?;
        if nonce.len() > MAX_NONCE_LEN {
            return Err(malformed("nonce too long"));
        }
        if !is_valid_nonce(nonce) {
            return Err(malformed("nonce"));
        }
        for ext in parts {
            check_extension(ext)?;
        }

        let server_part = self.fixed_server_nonce.clone().unwrap_or_else(random_nonce);
        let combined_nonce = format!("{nonce}{server_part}");
        let server_first = format!(
            "r={combined_nonce},s={},i={}",
            STANDARD.encode(&self.verifier.salt),
            self.verifier.iterations
        );
        let next = ServerState::AwaitingClientFinal {
            client_first_bare: bare.to_owned(),
            expected_cbind_input: cbind_input(gs2_header, binding),
            server_first: server_first.clone(),
            combined_nonce,
        };
        Ok((server_first.into_bytes(), next))
    }

    /// Processes the client-final-message and, if the proof is valid, returns
    /// the server-final-message (`v=<ServerSignature>`). A wrong token yields
    /// [`ScramError::InvalidProof`].
    pub fn handle_client_final(&mut self, client_final: &[u8]) -> Result<Vec<u8>, ScramError> {
        let state = std::mem::replace(&mut self.state, ServerState::Failed);
        let ServerState::AwaitingClientFinal {
            client_first_bare,
            server_first,
            combined_nonce,
            expected_cbind_input,
        } = state
        else {
            return Err(ScramError::OutOfOrder);
        };
        let msg = as_message(client_final, MAX_CLIENT_MESSAGE_LEN)?;

        // client-final-message = channel-binding "," nonce ["," extensions] "," proof
        let proof_at = msg.rfind(",p=").ok_or(malformed("missing proof"))?;
        let without_proof = &msg[..proof_at];
        let proof_b64 = &msg[proof_at + 3..];

        let mut parts = without_proof.split(',');
        let cbind_b64 = attr(
            parts.next().unwrap_or(""),
            b'c',
            "channel binding attribute",
        )?;
        let nonce = attr(parts.next().unwrap_or(""), b'r', "nonce attribute")?;
        for ext in parts {
            check_extension(ext)?;
        }

        let cbind = STANDARD
            .decode(cbind_b64)
            .map_err(|_| malformed("channel binding base64"))?;
        if !bool::from(cbind.ct_eq(&expected_cbind_input)) {
            return Err(ScramError::ChannelBindingMismatch);
        }
        if nonce != combined_nonce {
            return Err(ScramError::NonceMismatch);
        }
        let proof: [u8; 32] = STANDARD
            .decode(proof_b64)
            .ok()
            .and_then(|p| p.try_into().ok())
            .ok_or(malformed("proof"))?;

        let auth_message = [
            client_first_bare.as_bytes(),
            b",",
            server_first.as_bytes(),
            b",",
            without_proof.as_bytes(),
        ];
        let client_signature = hmac_sha256(&self.verifier.stored_key, &auth_message);
        let client_key = xor32(&proof, &client_signature);
        if !bool::from(stored_key(&client_key).ct_eq(&self.verifier.stored_key)) {
            return Err(ScramError::InvalidProof);
        }
        let server_signature = hmac_sha256(&self.verifier.server_key, &auth_message);
        self.state = ServerState::Authenticated;
        Ok(format!("v={}", STANDARD.encode(server_signature)).into_bytes())
    }
}

// ---------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------

enum ClientState {
    Initial,
    AwaitingServerFirst,
    AwaitingServerFinal { server_signature: [u8; 32] },
    Done,
    Failed,
}

/// The SCRAM client role: sluice authenticating to the upstream PostgreSQL
/// with credentials the agent never sees.
///
/// Authentication is only complete once [`ScramClient::handle_server_final`]
/// returned `Ok`: that is where the server proves it knows the verifier.
pub struct ScramClient {
    password: Vec<u8>,
    gs2_header: String,
    binding: Option<Vec<u8>>,
    client_nonce: String,
    client_first_bare: String,
    state: ClientState,
}

impl fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            ClientState::Initial => "initial",
            ClientState::AwaitingServerFirst => "awaiting server-first",
            ClientState::AwaitingServerFinal { .. } => "awaiting server-final",
            ClientState::Done => "done",
            ClientState::Failed => "failed",
        };
        f.debug_struct("ScramClient")
            .field("gs2_header", &self.gs2_header)
            .field("password", &"<redacted>")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl Drop for ScramClient {
    /// Best-effort scrubbing of the upstream password from memory.
    fn drop(&mut self) {
        for b in self.password.iter_mut() {
            // SAFETY: `b` is a valid, aligned, exclusive reference to a u8.
            // The volatile write keeps the compiler from eliding the store.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

impl ScramClient {
    /// Prepares an exchange for the mechanism chosen from the server's list
    /// (see [`select_mechanism`]). With plain SCRAM-SHA-256 and binding data
    /// available the client sends `y`, telling a PLUS-capable server that a
    /// downgrade may have happened.
    pub fn new(
        password: &str,
        mechanism: &str,
        channel_binding: ChannelBinding,
    ) -> Result<Self, ScramError> {
        Self::with_params(password, mechanism, channel_binding, "", random_nonce())
    }

    /// Full constructor; the user name and nonce are fixed only by tests
    /// reproducing RFC vectors (PostgreSQL wants an empty user name).
    fn with_params(
        password: &str,
        mechanism: &str,
        channel_binding: ChannelBinding,
        username: &str,
        client_nonce: String,
    ) -> Result<Self, ScramError> {
        channel_binding.validate()?;
        let (gs2_header, binding) = match (mechanism, channel_binding) {
            (SCRAM_SHA_256, ChannelBinding::None) => ("n,,".to_owned(), None),
            (SCRAM_SHA_256, ChannelBinding::TlsServerEndPoint(_)) => ("y,,".to_owned(), None),
            (SCRAM_SHA_256_PLUS, ChannelBinding::TlsServerEndPoint(d)) => {
                (format!("p={TLS_SERVER_END_POINT},,"), Some(d))
            }
            (SCRAM_SHA_256_PLUS, ChannelBinding::None) => {
                return Err(ScramError::ChannelBindingUnavailable)
            }
            _ => return Err(ScramError::UnsupportedMechanism),
        };
        // RFC 5802 saslname escaping, so a test user name cannot inject attributes.
        let username = username.replace('=', "=3D").replace(',', "=2C");
        let client_first_bare = format!("n={username},r={client_nonce}");
        Ok(ScramClient {
            password: normalize_password(password).into_owned(),
            gs2_header,
            binding,
            client_nonce,
            client_first_bare,
            state: ClientState::Initial,
        })
    }

    /// Returns the client-first-message (the SASLInitialResponse data).
    /// Calling it again returns the same message without changing state.
    pub fn client_first(&mut self) -> Vec<u8> {
        if matches!(self.state, ClientState::Initial) {
            self.state = ClientState::AwaitingServerFirst;
        }
        format!("{}{}", self.gs2_header, self.client_first_bare).into_bytes()
    }

    /// Processes the server-first-message and returns the client-final-message.
    pub fn handle_server_first(&mut self, server_first: &[u8]) -> Result<Vec<u8>, ScramError> {
        if !matches!(self.state, ClientState::AwaitingServerFirst) {
            self.state = ClientState::Failed;
            return Err(ScramError::OutOfOrder);
        }
        match self.server_first_inner(server_first) {
            Ok((client_final, server_signature)) => {
                self.state = ClientState::AwaitingServerFinal { server_signature };
                Ok(client_final)
            }
            Err(e) => {
                self.state = ClientState::Failed;
                Err(e)
            }
        }
    }

    fn server_first_inner(&self, msg: &[u8]) -> Result<(Vec<u8>, [u8; 32]), ScramError> {
        let msg = as_message(msg, MAX_SERVER_MESSAGE_LEN)?;
        if let Some(err) = msg.strip_prefix("e=") {
            return Err(server_error(err));
        }
        // server-first-message = [reserved-mext ","] nonce "," salt "," iteration-count ["," extensions]
        let mut parts = msg.split(',');
        let first = parts.next().unwrap_or("");
        if first.starts_with("m=") {
            return Err(malformed("unsupported mandatory extension"));
        }
        let nonce = attr(first, b'r', "nonce attribute")?;
        let salt_b64 = attr(parts.next().unwrap_or(""), b's', "salt attribute")?;
        let iterations = attr(
            parts.next().unwrap_or(""),
            b'i',
            "iteration count attribute",
        )?;
        for ext in parts {
            check_extension(ext)?;
        }

        if nonce.len() > MAX_COMBINED_NONCE_LEN || !is_valid_nonce(nonce) {
            return Err(malformed("nonce"));
        }
        // The server must extend our nonce with its own non-empty part.
        if nonce.len() <= self.client_nonce.len() || !nonce.starts_with(&self.client_nonce) {
            return Err(ScramError::NonceMismatch);
        }
        let salt = STANDARD
            .decode(salt_b64)
            .map_err(|_| malformed("salt base64"))?;
        if salt.is_empty() || salt.len() > MAX_SALT_LEN {
            return Err(malformed("salt length"));
        }
        if iterations.is_empty() || !iterations.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed("iteration count"));
        }
        let iterations: u32 =
            iterations
                .parse()
                .map_err(|_| ScramError::IterationCountOutOfRange {
                    iterations: u32::MAX,
                })?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(ScramError::IterationCountOutOfRange { iterations });
        }

        let channel_binding =
            STANDARD.encode(cbind_input(&self.gs2_header, self.binding.as_deref()));
        let without_proof = format!("c={channel_binding},r={nonce}");
        let auth_message = [
            self.client_first_bare.as_bytes(),
            b",",
            msg.as_bytes(),
            b",",
            without_proof.as_bytes(),
        ];

        let salted = salted_password(&self.password, &salt, iterations);
        let client_key = client_key(&salted);
        let client_signature = hmac_sha256(&stored_key(&client_key), &auth_message);
        let proof = xor32(&client_key, &client_signature);
        let server_signature = hmac_sha256(&server_key(&salted), &auth_message);

        let client_final = format!("{without_proof},p={}", STANDARD.encode(proof));
        Ok((client_final.into_bytes(), server_signature))
    }

    /// Processes the server-final-message. Returns `Ok(())` only if the
    /// server's signature proves it holds the verifier for our password.
    pub fn handle_server_final(&mut self, server_final: &[u8]) -> Result<(), ScramError> {
        let state = std::mem::replace(&mut self.state, ClientState::Failed);
        let ClientState::AwaitingServerFinal { server_signature } = state else {
            return Err(ScramError::OutOfOrder);
        };
        let msg = as_message(server_final, MAX_SERVER_MESSAGE_LEN)?;
        if let Some(err) = msg.strip_prefix("e=") {
            return Err(server_error(err));
        }
        let mut parts = msg.split(',');
        let verifier = attr(parts.next().unwrap_or(""), b'v', "verifier attribute")?;
        for ext in parts {
            check_extension(ext)?;
        }
        let got = STANDARD
            .decode(verifier)
            .map_err(|_| malformed("verifier base64"))?;
        if !bool::from(got.ct_eq(&server_signature[..])) {
            return Err(ScramError::InvalidServerSignature);
        }
        self.state = ClientState::Done;
        Ok(())
    }

    /// True once the server's signature has been verified.
    pub fn is_authenticated(&self) -> bool {
        matches!(self.state, ClientState::Done)
    }
}

/// Converts a server `e=` value into an error, keeping only a bounded run of
/// printable ASCII so it is safe to log.
fn server_error(value: &str) -> ScramError {
    let value = value.split(',').next().unwrap_or("");
    let clean: String = value
        .chars()
        .take(MAX_SERVER_ERROR_LEN)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    ScramError::ServerError(clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7677 §3 test vector.
    const RFC_CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
    const RFC_SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const RFC_CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    const RFC_SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const RFC_CLIENT_FINAL: &str =
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const RFC_SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn rfc_verifier() -> ScramVerifier {
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        ScramVerifier::derive("pencil", &salt, 4096).unwrap()
    }

    fn rfc_client() -> ScramClient {
        ScramClient::with_params(
            "pencil",
            SCRAM_SHA_256,
            ChannelBinding::None,
            "user",
            RFC_CLIENT_NONCE.into(),
        )
        .unwrap()
    }

    fn rfc_server() -> ScramServer {
        let mut s = ScramServer::new(rfc_verifier(), SCRAM_SHA_256, ChannelBinding::None).unwrap();
        s.fixed_server_nonce = Some(RFC_SERVER_NONCE.into());
        s
    }

    #[test]
    fn rfc7677_client() {
        let mut c = rfc_client();
        assert_eq!(c.client_first(), RFC_CLIENT_FIRST.as_bytes());
        let fin = c.handle_server_first(RFC_SERVER_FIRST.as_bytes()).unwrap();
        assert_eq!(std::str::from_utf8(&fin).unwrap(), RFC_CLIENT_FINAL);
        c.handle_server_final(RFC_SERVER_FINAL.as_bytes()).unwrap();
        assert!(c.is_authenticated());
    }

    #[test]
    fn rfc7677_server() {
        let mut s = rfc_server();
        let first = s.handle_client_first(RFC_CLIENT_FIRST.as_bytes()).unwrap();
        assert_eq!(std::str::from_utf8(&first).unwrap(), RFC_SERVER_FIRST);
        let fin = s.handle_client_final(RFC_CLIENT_FINAL.as_bytes()).unwrap();
        assert_eq!(std::str::from_utf8(&fin).unwrap(), RFC_SERVER_FINAL);
        assert!(s.is_authenticated());
    }

    #[test]
    fn rfc7677_wrong_password_is_invalid_proof() {
        let mut c = ScramClient::with_params(
            "pencil2",
            SCRAM_SHA_256,
            ChannelBinding::None,
            "user",
            RFC_CLIENT_NONCE.into(),
        )
        .unwrap();
        let mut s = rfc_server();
        let first = s.handle_client_first(&c.client_first()).unwrap();
        let fin = c.handle_server_first(&first).unwrap();
        assert_eq!(s.handle_client_final(&fin), Err(ScramError::InvalidProof));
        assert_eq!(ScramError::InvalidProof.sqlstate(), "28P01");
        assert!(!s.is_authenticated());
    }

    #[test]
    fn client_rejects_bad_server_signature() {
        let mut c = rfc_client();
        c.client_first();
        c.handle_server_first(RFC_SERVER_FIRST.as_bytes()).unwrap();
        let tampered = "v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
        assert_eq!(
            c.handle_server_final(tampered.as_bytes()),
            Err(ScramError::InvalidServerSignature)
        );
        assert!(!c.is_authenticated());
    }

    #[test]
    fn client_checks_server_first() {
        let run = |server_first: &str| {
            let mut c = rfc_client();
            c.client_first();
            c.handle_server_first(server_first.as_bytes())
        };
        // Nonce not extending ours, or not extending it at all.
        assert_eq!(
            run("r=XOprNGfwEbeRWgbNEkqOabc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"),
            Err(ScramError::NonceMismatch)
        );
        assert_eq!(
            run("r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"),
            Err(ScramError::NonceMismatch)
        );
        assert_eq!(
            run("r=rOprNGfwEbeRWgbNEkqOabc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4095"),
            Err(ScramError::IterationCountOutOfRange { iterations: 4095 })
        );
        assert_eq!(
            run("r=rOprNGfwEbeRWgbNEkqOabc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1000001"),
            Err(ScramError::IterationCountOutOfRange {
                iterations: 1_000_001
            })
        );
        assert!(matches!(
            run("r=rOprNGfwEbeRWgbNEkqOabc,s=!!,i=4096"),
            Err(ScramError::Malformed { .. })
        ));
        assert!(matches!(
            run("m=x,r=rOprNGfwEbeRWgbNEkqOabc,s=AA==,i=4096"),
            Err(ScramError::Malformed { .. })
        ));
        assert!(matches!(
            run("r=rOprNGfwEbeRWgbNEkqOabc,i=4096"),
            Err(ScramError::Malformed { .. })
        ));
        assert_eq!(
            run("e=other-error"),
            Err(ScramError::ServerError("other-error".into()))
        );
        assert!(matches!(
            run(&"x".repeat(MAX_SERVER_MESSAGE_LEN + 1)),
            Err(ScramError::MessageTooLong { .. })
        ));
    }

    #[test]
    fn server_error_in_final_is_reported_and_sanitised() {
        let mut c = rfc_client();
        c.client_first();
        c.handle_server_first(RFC_SERVER_FIRST.as_bytes()).unwrap();
        assert_eq!(
            c.handle_server_final(b"e=invalid-proof"),
            Err(ScramError::ServerError("invalid-proof".into()))
        );
        let mut c = rfc_client();
        c.client_first();
        c.handle_server_first(RFC_SERVER_FIRST.as_bytes()).unwrap();
        let long = format!("e={}\x07", "a".repeat(500));
        match c.handle_server_final(long.as_bytes()) {
            Err(ScramError::ServerError(s)) => assert_eq!(s.len(), MAX_SERVER_ERROR_LEN),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn server_nonce_tampering() {
        let mut s = rfc_server();
        s.handle_client_first(RFC_CLIENT_FIRST.as_bytes()).unwrap();
        let tampered = RFC_CLIENT_FINAL.replace("$k0", "$k1");
        assert_eq!(
            s.handle_client_final(tampered.as_bytes()),
            Err(ScramError::NonceMismatch)
        );
        // The failed machine stays failed.
        assert_eq!(
            s.handle_client_final(RFC_CLIENT_FINAL.as_bytes()),
            Err(ScramError::OutOfOrder)
        );
    }

    #[test]
    fn state_machine_order() {
        let mut s = rfc_server();
        assert_eq!(
            s.handle_client_final(RFC_CLIENT_FINAL.as_bytes()),
            Err(ScramError::OutOfOrder)
        );
        let mut s = rfc_server();
        s.handle_client_first(RFC_CLIENT_FIRST.as_bytes()).unwrap();
        assert_eq!(
            s.handle_client_first(RFC_CLIENT_FIRST.as_bytes()),
            Err(ScramError::OutOfOrder)
        );

        let mut c = rfc_client();
        assert_eq!(
            c.handle_server_first(RFC_SERVER_FIRST.as_bytes()),
            Err(ScramError::OutOfOrder)
        );
        let mut c = rfc_client();
        assert_eq!(
            c.handle_server_final(RFC_SERVER_FINAL.as_bytes()),
            Err(ScramError::OutOfOrder)
        );
        let mut c = rfc_client();
        c.client_first();
        c.handle_server_first(RFC_SERVER_FIRST.as_bytes()).unwrap();
        c.handle_server_final(RFC_SERVER_FINAL.as_bytes()).unwrap();
        assert_eq!(
            c.handle_server_final(RFC_SERVER_FINAL.as_bytes()),
            Err(ScramError::OutOfOrder)
        );
    }

    #[test]
    fn server_rejects_malformed_client_first() {
        let cases: &[&str] = &[
            "",
            "n",
            "n,",
            "x,,n=,r=abc",
            "n,a=admin,n=,r=abc",
            "n,,r=abc",
            "n,,n=,r=",
            "n,,n=,r=a b",
            "n,,m=ext,n=,r=abc",
            "n,,n=,r=abc,m=mandatory",
            "n,,n=,r=abc,,",
        ];
        for c in cases {
            let mut s = rfc_server();
            let e = s.handle_client_first(c.as_bytes()).unwrap_err();
            assert!(
                matches!(e, ScramError::Malformed { .. }),
                "{c:?} gave {e:?}"
            );
            assert_eq!(e.sqlstate(), "08P01");
        }
        let mut s = rfc_server();
        let long_nonce = format!("n,,n=,r={}", "a".repeat(MAX_NONCE_LEN + 1));
        assert!(matches!(
            s.handle_client_first(long_nonce.as_bytes()),
            Err(ScramError::Malformed { .. })
        ));
        let mut s = rfc_server();
        let huge = vec![b'a'; MAX_CLIENT_MESSAGE_LEN + 1];
        assert_eq!(
            s.handle_client_first(&huge),
            Err(ScramError::MessageTooLong {
                max: MAX_CLIENT_MESSAGE_LEN
            })
        );
        let mut s = rfc_server();
        assert!(matches!(
            s.handle_client_first(b"n,,n=,r=\xff"),
            Err(ScramError::Malformed { .. })
        ));
        // Extensions after the nonce are allowed and ignored, as in PostgreSQL.
        let mut s = rfc_server();
        s.handle_client_first(b"n,,n=whoever,r=abc,x=ext").unwrap();
    }

    #[test]
    fn server_rejects_malformed_client_final() {
        let cases: &[&str] = &[
            "",
            "c=biws",
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA",
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=!!",
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,c=biws,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            "c=%%%,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        ];
        for c in cases {
            let mut s = rfc_server();
            s.handle_client_first(RFC_CLIENT_FIRST.as_bytes()).unwrap();
            let e = s.handle_client_final(c.as_bytes()).unwrap_err();
            assert!(
                matches!(e, ScramError::Malformed { .. }),
                "{c:?} gave {e:?}"
            );
        }
        // The gs2 header echoed in c= must be the one sent in client-first.
        let mut s = rfc_server();
        s.handle_client_first(RFC_CLIENT_FIRST.as_bytes()).unwrap();
        let wrong_cb = RFC_CLIENT_FINAL.replace("c=biws", "c=eSws");
        assert_eq!(
            s.handle_client_final(wrong_cb.as_bytes()),
            Err(ScramError::ChannelBindingMismatch)
        );
    }

    #[test]
    fn mechanism_and_binding_arguments() {
        let v = rfc_verifier();
        let cb = ChannelBinding::TlsServerEndPoint(vec![1; 32]);
        assert_eq!(
            ScramServer::new(v.clone(), "SCRAM-SHA-1", ChannelBinding::None).unwrap_err(),
            ScramError::UnsupportedMechanism
        );
        assert_eq!(
            ScramServer::new(v.clone(), SCRAM_SHA_256_PLUS, ChannelBinding::None).unwrap_err(),
            ScramError::ChannelBindingUnavailable
        );
        assert_eq!(
            ScramServer::new(v, SCRAM_SHA_256, ChannelBinding::TlsServerEndPoint(vec![]))
                .unwrap_err(),
            ScramError::InvalidChannelBindingData
        );
        assert_eq!(
            ScramClient::new("pw", SCRAM_SHA_256_PLUS, ChannelBinding::None).unwrap_err(),
            ScramError::ChannelBindingUnavailable
        );
        assert_eq!(
            ScramClient::new("pw", "PLAIN", cb.clone()).unwrap_err(),
            ScramError::UnsupportedMechanism
        );

        assert_eq!(
            advertised_mechanisms(&cb),
            &[SCRAM_SHA_256_PLUS, SCRAM_SHA_256]
        );
        assert_eq!(
            advertised_mechanisms(&ChannelBinding::None),
            &[SCRAM_SHA_256]
        );
        let both = [SCRAM_SHA_256_PLUS, SCRAM_SHA_256];
        assert_eq!(select_mechanism(both, &cb), Some(SCRAM_SHA_256_PLUS));
        assert_eq!(
            select_mechanism(both, &ChannelBinding::None),
            Some(SCRAM_SHA_256)
        );
        assert_eq!(select_mechanism([SCRAM_SHA_256], &cb), Some(SCRAM_SHA_256));
        assert_eq!(
            select_mechanism([SCRAM_SHA_256_PLUS], &ChannelBinding::None),
            None
        );
    }

    #[test]
    fn debug_output_is_redacted() {
        let c = ScramClient::new("hunter2-secret", SCRAM_SHA_256, ChannelBinding::None).unwrap();
        let s = rfc_server();
        let dbg = format!("{c:?} {s:?}");
        assert!(!dbg.contains("hunter2"));
        assert!(!dbg.contains("WG5d8o"));
        let cb = format!("{:?}", ChannelBinding::TlsServerEndPoint(vec![0xab; 32]));
        assert_eq!(cb, "TlsServerEndPoint(32 bytes)");
    }
}
