//! The appliance configuration: parsed from TOML, validated as a whole, and
//! then frozen. Every bound the data path enforces is named here, with its unit
//! last, so operators can find and tune it (`deploy/sluice.example.toml`).
//!
//! Validation errors carry the key path (`agents[1].token_hash`) so that
//! `sluice check-config` can say exactly what is wrong and where.

use std::{
    collections::HashSet,
    fmt,
    net::SocketAddr,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    str::FromStr,
};

use serde::Deserialize;

use crate::auth::token::ScramVerifier;
use crate::recording::{CopyData, Durability, LedgerSettings, ServerMessages};

/// A configuration problem, with the key path it concerns.
#[derive(Debug)]
pub struct ConfigError {
    /// Dotted key path such as `limits.message_bytes_max`; empty for file-level errors.
    pub key_path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key_path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.key_path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

fn error(key_path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key_path: key_path.into(),
        message: message.into(),
    }
}

/// Which io driver each worker runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IoDriver {
    /// Detect io_uring at start and fall back to the legacy (epoll) driver.
    Auto,
    /// Refuse to start without io_uring.
    IoUring,
    /// Always use the legacy (epoll) driver.
    Legacy,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    #[serde(default = "defaults::listen")]
    pub listen: String,
    #[serde(default)]
    pub workers: usize,
    #[serde(default = "defaults::truth")]
    pub pin_workers: bool,
    #[serde(default = "defaults::io_driver")]
    pub io_driver: IoDriver,
    #[serde(default = "defaults::shutdown_drain_timeout_ms")]
    pub shutdown_drain_timeout_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum TlsVersion {
    #[serde(rename = "1.2")]
    Tls12,
    #[serde(rename = "1.3")]
    Tls13,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    #[serde(default = "defaults::min_version")]
    pub min_version: TlsVersion,
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    #[serde(default)]
    pub client_cert_required: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default = "defaults::message_bytes_max")]
    pub message_bytes_max: usize,
    #[serde(default = "defaults::server_message_bytes_max")]
    pub server_message_bytes_max: usize,
    #[serde(default = "defaults::startup_timeout_ms")]
    pub startup_timeout_ms: u64,
    #[serde(default = "defaults::idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    #[serde(default = "defaults::upstream_connect_timeout_ms")]
    pub upstream_connect_timeout_ms: u64,
    #[serde(default = "defaults::connections_per_worker_max")]
    pub connections_per_worker_max: usize,
    #[serde(default = "defaults::auth_failure_delay_ms")]
    pub auth_failure_delay_ms: u64,
    #[serde(default = "defaults::read_buffer_bytes")]
    pub read_buffer_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            message_bytes_max: defaults::message_bytes_max(),
            server_message_bytes_max: defaults::server_message_bytes_max(),
            startup_timeout_ms: defaults::startup_timeout_ms(),
            idle_timeout_ms: defaults::idle_timeout_ms(),
            upstream_connect_timeout_ms: defaults::upstream_connect_timeout_ms(),
            connections_per_worker_max: defaults::connections_per_worker_max(),
            auth_failure_delay_ms: defaults::auth_failure_delay_ms(),
            read_buffer_bytes: defaults::read_buffer_bytes(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentEntry {
    name: String,
    #[serde(default)]
    token_hash: Option<String>,
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    cert_identities: Vec<String>,
    /// Groups the agent belongs to, for policy rules (`agent_groups`).
    #[serde(default)]
    groups: Vec<String>,
    /// Masking profile (`[masking.profiles.NAME]`, or "default"/"none");
    /// the section's `default_profile` when absent.
    #[serde(default)]
    masking_profile: Option<String>,
}

/// How sluice protects its connection to an upstream database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpstreamTlsMode {
    /// Plaintext; only sensible on loopback or a trusted segment.
    Disable,
    /// Encrypt without verifying the server certificate.
    Require,
    /// Verify the certificate chain against `tls_ca_file`, not the name.
    VerifyCa,
    /// Verify the chain and that the certificate names the server.
    VerifyFull,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetEntry {
    name: String,
    host: String,
    #[serde(default = "defaults::pg_port")]
    port: u16,
    database: String,
    user: String,
    #[serde(default)]
    password_file: Option<PathBuf>,
    #[serde(default)]
    password_env: Option<String>,
    #[serde(default = "defaults::upstream_tls")]
    tls: UpstreamTlsMode,
    #[serde(default)]
    tls_ca_file: Option<PathBuf>,
    #[serde(default)]
    tls_server_name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    server: Option<ServerSection>,
    tls: TlsSection,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    agents: Vec<AgentEntry>,
    #[serde(default)]
    targets: Vec<TargetEntry>,
    #[serde(default)]
    ledger: Option<LedgerEntry>,
    #[serde(default)]
    policy: Option<crate::policy::PolicyConfig>,
    #[serde(default)]
    masking: Option<crate::masking::MaskingConfig>,
    /// Approval service: see `crate::approvals::config`.
    #[serde(default)]
    admin: Option<crate::approvals::config::AdminEntry>,
    #[serde(default)]
    approvals: Option<crate::approvals::config::ApprovalsEntry>,
    #[serde(default)]
    approvers: Vec<crate::approvals::config::ApproverEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct LedgerEntry {
    directory: PathBuf,
    key_file: PathBuf,
    origin: String,
    #[serde(default = "defaults::durability")]
    durability: Durability,
    #[serde(default = "defaults::batch_interval_ms")]
    batch_interval_ms: u64,
    #[serde(default = "defaults::server_messages")]
    server_messages: ServerMessages,
    #[serde(default = "defaults::copy_data")]
    copy_data: CopyData,
    #[serde(default = "defaults::records_per_worker_max")]
    records_per_worker_max: usize,
    #[serde(default = "defaults::queued_bytes_per_worker_max")]
    queued_bytes_per_worker_max: usize,
    #[serde(default = "defaults::segment_bytes_max")]
    segment_bytes_max: u64,
    #[serde(default = "defaults::segment_age_ms_max")]
    segment_age_ms_max: u64,
    #[serde(default = "defaults::checkpoint_interval_ms")]
    checkpoint_interval_ms: u64,
    #[serde(default = "defaults::preallocate_bytes")]
    preallocate_bytes: u64,
    #[serde(default = "defaults::writer_nice")]
    writer_nice: i32,
}

/// A secret read from a file or the environment. Its Debug and Display never
/// show the value, so it cannot leak through logs or error messages.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Debug, Clone)]
pub struct Agent {
    pub name: String,
    pub token: Option<ScramVerifier>,
    /// Target names this agent may use; `None` means every target.
    pub targets: Option<HashSet<String>>,
    pub cert_identities: Vec<String>,
    pub groups: Vec<String>,
    /// The agent's masking profile name; None means the default profile.
    pub masking_profile: Option<String>,
}

impl Agent {
    pub fn may_use(&self, target: &str) -> bool {
        match &self.targets {
            None => true,
            Some(allowed) => allowed.contains(target),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    pub password: Option<Secret>,
    pub tls: UpstreamTlsMode,
    pub tls_ca_file: Option<PathBuf>,
    pub tls_server_name: String,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerSection,
    pub listen: SocketAddr,
    pub tls: TlsSection,
    pub limits: Limits,
    pub agents: Vec<Agent>,
    pub targets: Vec<Target>,
    /// Recording settings; None when the `[ledger]` section is absent.
    pub ledger: Option<LedgerSettings>,
    /// The statement policy; None when the `[policy]` section is absent
    /// (every statement is forwarded).
    pub policy: Option<std::sync::Arc<crate::policy::CompiledPolicy>>,
    /// Masking of responses; None when the `[masking]` section is absent or
    /// disables it (responses are forwarded as the upstream sent them).
    pub masking: Option<std::sync::Arc<crate::masking::setup::MaskingSetup>>,
    /// The admin listener and approval service; None when `[admin]` is
    /// absent (then `approve` decisions are refused).
    pub admin: Option<crate::approvals::AdminConfig>,
    /// Directory of the configuration file; relative paths are resolved against it.
    pub base_dir: PathBuf,
}

/// Upper bounds that keep a typo from configuring something absurd.
pub mod bounds {
    pub const WORKERS_MAX: usize = 1024;
    pub const MESSAGE_BYTES_MIN: usize = 8 * 1024;
    /// PostgreSQL's own limit for a single message.
    pub const MESSAGE_BYTES_MAX: usize = 1024 * 1024 * 1024;
    pub const READ_BUFFER_BYTES_MIN: usize = 4096;
    pub const READ_BUFFER_BYTES_MAX: usize = 16 * 1024 * 1024;
    pub const CONNECTIONS_PER_WORKER_MAX: usize = 1_000_000;
    pub const TIMEOUT_MS_MAX: u64 = 7 * 24 * 3600 * 1000;
    pub const AUTH_FAILURE_DELAY_MS_MAX: u64 = 60_000;
    pub const NAME_BYTES_MAX: usize = 63;
}

mod defaults {
    use super::{IoDriver, TlsVersion, UpstreamTlsMode};
    pub fn listen() -> String {
        "0.0.0.0:6432".into()
    }
    pub fn truth() -> bool {
        true
    }
    pub fn io_driver() -> IoDriver {
        IoDriver::Auto
    }
    pub fn shutdown_drain_timeout_ms() -> u64 {
        30_000
    }
    pub fn min_version() -> TlsVersion {
        TlsVersion::Tls13
    }
    pub fn message_bytes_max() -> usize {
        16 * 1024 * 1024
    }
    pub fn server_message_bytes_max() -> usize {
        super::bounds::MESSAGE_BYTES_MAX
    }
    pub fn startup_timeout_ms() -> u64 {
        10_000
    }
    pub fn idle_timeout_ms() -> u64 {
        3_600_000
    }
    pub fn upstream_connect_timeout_ms() -> u64 {
        5_000
    }
    pub fn connections_per_worker_max() -> usize {
        4096
    }
    pub fn auth_failure_delay_ms() -> u64 {
        1000
    }
    pub fn read_buffer_bytes() -> usize {
        32 * 1024
    }
    pub fn pg_port() -> u16 {
        5432
    }
    pub fn upstream_tls() -> UpstreamTlsMode {
        UpstreamTlsMode::VerifyFull
    }
    pub fn durability() -> super::Durability {
        super::Durability::Strict
    }
    pub fn batch_interval_ms() -> u64 {
        10
    }
    pub fn server_messages() -> super::ServerMessages {
        super::ServerMessages::Full
    }
    pub fn copy_data() -> super::CopyData {
        super::CopyData::Full
    }
    pub fn records_per_worker_max() -> usize {
        65_536
    }
    pub fn queued_bytes_per_worker_max() -> usize {
        64 * 1024 * 1024
    }
    pub fn segment_bytes_max() -> u64 {
        64 * 1024 * 1024
    }
    pub fn segment_age_ms_max() -> u64 {
        3_600_000
    }
    pub fn checkpoint_interval_ms() -> u64 {
        10_000
    }
    pub fn preallocate_bytes() -> u64 {
        4 * 1024 * 1024
    }
    pub fn writer_nice() -> i32 {
        -10
    }
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: defaults::listen(),
            workers: 0,
            pin_workers: true,
            io_driver: IoDriver::Auto,
            shutdown_drain_timeout_ms: defaults::shutdown_drain_timeout_ms(),
        }
    }
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| error("", format!("cannot read {}: {e}", path.display())))?;
        let base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let base_dir = if base_dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base_dir
        };
        Config::from_toml(&text, &base_dir)
    }

    /// Parses and validates configuration text; relative paths resolve against `base_dir`.
    pub fn from_toml(text: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        let deserializer = toml::Deserializer::new(text);
        let file: FileConfig = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let message = inner.message().to_string();
            let location = inner
                .span()
                .map(|span| {
                    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                    format!(" (line {line})")
                })
                .unwrap_or_default();
            error(
                if path == "." { String::new() } else { path },
                format!("{message}{location}"),
            )
        })?;
        validate(file, base_dir)
    }

    pub fn agent(&self, name: &str) -> Option<&Agent> {
        self.agents.iter().find(|a| a.name == name)
    }

    pub fn target(&self, name: &str) -> Option<&Target> {
        self.targets.iter().find(|t| t.name == name)
    }

    /// The number of workers to run: the configured count, or one per core.
    pub fn worker_count(&self) -> usize {
        if self.server.workers > 0 {
            self.server.workers
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        }
    }

    pub fn resolve(&self, path: &Path) -> PathBuf {
        resolve(&self.base_dir, path)
    }
}

fn resolve(base_dir: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base_dir.join(path)
    }
}

fn check_readable_file(key_path: &str, path: &Path) -> Result<(), ConfigError> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(_) => Err(error(
            key_path,
            format!("{} is not a regular file", path.display()),
        )),
        Err(e) => Err(error(
            key_path,
            format!("cannot read {}: {e}", path.display()),
        )),
    }
}

/// Secrets on disk must not be readable by every user of the machine.
fn check_secret_file(key_path: &str, path: &Path) -> Result<(), ConfigError> {
    check_readable_file(key_path, path)?;
    let meta = std::fs::metadata(path)
        .map_err(|e| error(key_path, format!("cannot stat {}: {e}", path.display())))?;
    if meta.permissions().mode() & 0o004 != 0 {
        return Err(error(
            key_path,
            format!(
                "{} is readable by every user (mode {:o}); chmod 600 it",
                path.display(),
                meta.permissions().mode() & 0o777
            ),
        ));
    }
    Ok(())
}

pub(crate) fn check_range<T: PartialOrd + fmt::Display>(
    key_path: &str,
    value: T,
    min: T,
    max: T,
) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(error(
            key_path,
            format!("{value} is out of range (allowed {min} to {max})"),
        ));
    }
    Ok(())
}

fn check_name(key_path: &str, name: &str) -> Result<(), ConfigError> {
    if name.is_empty() || name.len() > bounds::NAME_BYTES_MAX {
        return Err(error(
            key_path,
            format!("must be 1 to {} bytes long", bounds::NAME_BYTES_MAX),
        ));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(error(key_path, "must not contain control characters"));
    }
    Ok(())
}

fn validate(file: FileConfig, base_dir: &Path) -> Result<Config, ConfigError> {
    let server = file.server.unwrap_or_default();
    let listen: SocketAddr = server
        .listen
        .parse()
        .map_err(|e| error("server.listen", format!("not an IP:port address: {e}")))?;
    check_range("server.workers", server.workers, 0, bounds::WORKERS_MAX)?;
    check_range(
        "server.shutdown_drain_timeout_ms",
        server.shutdown_drain_timeout_ms,
        0,
        bounds::TIMEOUT_MS_MAX,
    )?;

    let mut tls = file.tls;
    tls.cert_file = resolve(base_dir, &tls.cert_file);
    tls.key_file = resolve(base_dir, &tls.key_file);
    check_readable_file("tls.cert_file", &tls.cert_file)?;
    check_secret_file("tls.key_file", &tls.key_file)?;
    if let Some(ca) = &tls.client_ca_file {
        let ca = resolve(base_dir, ca);
        check_readable_file("tls.client_ca_file", &ca)?;
        tls.client_ca_file = Some(ca);
    } else if tls.client_cert_required {
        return Err(error(
            "tls.client_cert_required",
            "requires tls.client_ca_file (the CA that signs agent certificates)",
        ));
    }

    let limits = file.limits;
    check_range(
        "limits.message_bytes_max",
        limits.message_bytes_max,
        bounds::MESSAGE_BYTES_MIN,
        bounds::MESSAGE_BYTES_MAX,
    )?;
    check_range(
        "limits.server_message_bytes_max",
        limits.server_message_bytes_max,
        bounds::MESSAGE_BYTES_MIN,
        bounds::MESSAGE_BYTES_MAX,
    )?;
    for (key, value) in [
        ("limits.startup_timeout_ms", limits.startup_timeout_ms),
        ("limits.idle_timeout_ms", limits.idle_timeout_ms),
        (
            "limits.upstream_connect_timeout_ms",
            limits.upstream_connect_timeout_ms,
        ),
    ] {
        check_range(key, value, 1, bounds::TIMEOUT_MS_MAX)?;
    }
    check_range(
        "limits.connections_per_worker_max",
        limits.connections_per_worker_max,
        1,
        bounds::CONNECTIONS_PER_WORKER_MAX,
    )?;
    check_range(
        "limits.auth_failure_delay_ms",
        limits.auth_failure_delay_ms,
        0,
        bounds::AUTH_FAILURE_DELAY_MS_MAX,
    )?;
    check_range(
        "limits.read_buffer_bytes",
        limits.read_buffer_bytes,
        bounds::READ_BUFFER_BYTES_MIN,
        bounds::READ_BUFFER_BYTES_MAX,
    )?;

    let mut targets = Vec::with_capacity(file.targets.len());
    let mut target_names = HashSet::new();
    for (index, entry) in file.targets.into_iter().enumerate() {
        let key = |field: &str| format!("targets[{index}].{field}");
        check_name(&key("name"), &entry.name)?;
        if !target_names.insert(entry.name.clone()) {
            return Err(error(
                key("name"),
                format!("duplicate target name {:?}", entry.name),
            ));
        }
        if entry.host.is_empty() {
            return Err(error(key("host"), "must not be empty"));
        }
        if entry.port == 0 {
            return Err(error(key("port"), "must not be 0"));
        }
        check_name(&key("database"), &entry.database)?;
        check_name(&key("user"), &entry.user)?;
        let password = match (&entry.password_file, &entry.password_env) {
            (Some(_), Some(_)) => {
                return Err(error(
                    key("password_env"),
                    "set only one of password_file and password_env",
                ))
            }
            (Some(path), None) => {
                let path = resolve(base_dir, path);
                check_secret_file(&key("password_file"), &path)?;
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    error(
                        key("password_file"),
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                // Files conventionally end with a newline that is not part of the secret.
                let value = text.trim_end_matches(['\n', '\r']).to_string();
                if value.is_empty() {
                    return Err(error(key("password_file"), "the file is empty"));
                }
                Some(Secret::new(value))
            }
            (None, Some(variable)) => match std::env::var(variable) {
                Ok(value) if !value.is_empty() => Some(Secret::new(value)),
                Ok(_) => {
                    return Err(error(
                        key("password_env"),
                        format!("environment variable {variable} is empty"),
                    ))
                }
                Err(_) => {
                    return Err(error(
                        key("password_env"),
                        format!("environment variable {variable} is not set"),
                    ))
                }
            },
            (None, None) => None,
        };
        let tls_ca_file = match &entry.tls_ca_file {
            Some(path) => {
                let path = resolve(base_dir, path);
                check_readable_file(&key("tls_ca_file"), &path)?;
                Some(path)
            }
            None => None,
        };
        if matches!(
            entry.tls,
            UpstreamTlsMode::VerifyCa | UpstreamTlsMode::VerifyFull
        ) && tls_ca_file.is_none()
        {
            return Err(error(
                key("tls_ca_file"),
                "required when tls is verify-ca or verify-full",
            ));
        }
        targets.push(Target {
            tls_server_name: entry.tls_server_name.unwrap_or_else(|| entry.host.clone()),
            name: entry.name,
            host: entry.host,
            port: entry.port,
            database: entry.database,
            user: entry.user,
            password,
            tls: entry.tls,
            tls_ca_file,
        });
    }

    let masking = validate_masking(file.masking)?;
    let mut agents = Vec::with_capacity(file.agents.len());
    let mut agent_names = HashSet::new();
    for (index, entry) in file.agents.into_iter().enumerate() {
        let key = |field: &str| format!("agents[{index}].{field}");
        check_name(&key("name"), &entry.name)?;
        if !agent_names.insert(entry.name.clone()) {
            return Err(error(
                key("name"),
                format!("duplicate agent name {:?}", entry.name),
            ));
        }
        let token = match &entry.token_hash {
            Some(text) => Some(ScramVerifier::from_str(text).map_err(|e| {
                error(
                    key("token_hash"),
                    format!("not a verifier from `sluice hash-token`: {e}"),
                )
            })?),
            None => None,
        };
        if !entry.cert_identities.is_empty() && tls.client_ca_file.is_none() {
            return Err(error(
                key("cert_identities"),
                "requires tls.client_ca_file so client certificates can be verified",
            ));
        }
        if token.is_none() && entry.cert_identities.is_empty() {
            return Err(error(
                key("token_hash"),
                "the agent has no way to authenticate: set token_hash, cert_identities or both",
            ));
        }
        let targets_allowed = if entry.targets.iter().any(|t| t == "*") {
            None
        } else {
            for (target_index, name) in entry.targets.iter().enumerate() {
                if !target_names.contains(name) {
                    return Err(error(
                        format!("agents[{index}].targets[{target_index}]"),
                        format!("no target named {name:?}"),
                    ));
                }
            }
            Some(entry.targets.iter().cloned().collect())
        };
        for (group_index, group) in entry.groups.iter().enumerate() {
            check_name(&format!("agents[{index}].groups[{group_index}]"), group)?;
        }
        if let Some(profile) = &entry.masking_profile {
            match &masking {
                None => {
                    return Err(error(
                        key("masking_profile"),
                        "requires an enabled [masking] section",
                    ))
                }
                Some(m) if !m.config.has_profile(profile) => {
                    return Err(error(
                        key("masking_profile"),
                        format!("no masking profile is called {profile:?} (define [masking.profiles.{profile}], or use \"default\" or \"none\")"),
                    ))
                }
                Some(_) => {}
            }
        }
        agents.push(Agent {
            name: entry.name,
            token,
            targets: targets_allowed,
            cert_identities: entry.cert_identities,
            groups: entry.groups,
            masking_profile: entry.masking_profile,
        });
    }

    let policy = match &file.policy {
        None => None,
        Some(policy) => {
            let agent_names: Vec<&str> = agents.iter().map(|a| a.name.as_str()).collect();
            let mut group_names: Vec<&str> = agents
                .iter()
                .flat_map(|a| a.groups.iter().map(String::as_str))
                .collect();
            group_names.sort_unstable();
            group_names.dedup();
            let target_names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
            let compiled = policy
                .validate(&agent_names, &group_names, &target_names)
                .map_err(|e| error(e.key_path.clone(), e.message.clone()))?;
            Some(std::sync::Arc::new(compiled))
        }
    };
    let ledger = match file.ledger {
        None => None,
        Some(entry) => Some(validate_ledger(entry, base_dir)?),
    };
    let approver_groups = policy
        .as_ref()
        .map(|p| p.approver_groups())
        .unwrap_or_default();
    let admin = crate::approvals::config::validate(
        file.admin,
        file.approvals,
        file.approvers,
        &tls,
        &approver_groups,
        base_dir,
    )?;

    Ok(Config {
        server,
        listen,
        tls,
        limits,
        agents,
        targets,
        ledger,
        policy,
        masking,
        admin,
        base_dir: base_dir.to_path_buf(),
    })
}

/// Validates `[masking]` and compiles its engine once, for every worker.
/// All violations are reported, the first with its key path.
fn validate_masking(
    section: Option<crate::masking::MaskingConfig>,
) -> Result<Option<std::sync::Arc<crate::masking::setup::MaskingSetup>>, ConfigError> {
    let Some(section) = section else {
        return Ok(None);
    };
    let enabled = section.enabled;
    let setup = crate::masking::setup::MaskingSetup::new(section).map_err(|errors| {
        let first = &errors[0];
        let mut message = first.message.clone();
        for other in &errors[1..] {
            message.push_str(&format!("; also {}: {}", other.path, other.message));
        }
        error(first.path.clone(), message)
    })?;
    Ok(enabled.then(|| std::sync::Arc::new(setup)))
}

fn validate_ledger(entry: LedgerEntry, base_dir: &Path) -> Result<LedgerSettings, ConfigError> {
    let directory = resolve(base_dir, &entry.directory);
    let key_file = resolve(base_dir, &entry.key_file);
    // Loading the key checks its permissions too (a key readable by other
    // users is refused), so check-config catches that before a start.
    sluice_ledger::SignerKey::load(&key_file)
        .map_err(|e| error("ledger.key_file", format!("{}: {e}", key_file.display())))?;
    if entry.origin.is_empty() || entry.origin.contains(char::is_whitespace) {
        return Err(error(
            "ledger.origin",
            "must be a non-empty name without spaces, e.g. \"sluice.example.com/ledger\"",
        ));
    }
    check_range(
        "ledger.batch_interval_ms",
        entry.batch_interval_ms,
        1,
        60_000,
    )?;
    check_range(
        "ledger.records_per_worker_max",
        entry.records_per_worker_max,
        16,
        16 * 1024 * 1024,
    )?;
    check_range(
        "ledger.queued_bytes_per_worker_max",
        entry.queued_bytes_per_worker_max,
        1024 * 1024,
        64 * 1024 * 1024 * 1024,
    )?;
    check_range(
        "ledger.segment_bytes_max",
        entry.segment_bytes_max,
        64 * 1024,
        64 * 1024 * 1024 * 1024,
    )?;
    check_range(
        "ledger.segment_age_ms_max",
        entry.segment_age_ms_max,
        1000,
        bounds::TIMEOUT_MS_MAX,
    )?;
    check_range(
        "ledger.checkpoint_interval_ms",
        entry.checkpoint_interval_ms,
        100,
        bounds::TIMEOUT_MS_MAX,
    )?;
    check_range(
        "ledger.preallocate_bytes",
        entry.preallocate_bytes,
        0,
        sluice_ledger::limits::PREALLOCATE_BYTES_MAX,
    )?;
    check_range("ledger.writer_nice", entry.writer_nice, -20, 19)?;
    Ok(LedgerSettings {
        directory,
        key_file,
        origin: entry.origin,
        durability: entry.durability,
        batch_interval_ms: entry.batch_interval_ms,
        server_messages: entry.server_messages,
        copy_data: entry.copy_data,
        records_per_worker_max: entry.records_per_worker_max,
        queued_bytes_per_worker_max: entry.queued_bytes_per_worker_max,
        segment_bytes_max: entry.segment_bytes_max,
        segment_age_ms_max: entry.segment_age_ms_max,
        checkpoint_interval_ms: entry.checkpoint_interval_ms,
        preallocate_bytes: entry.preallocate_bytes,
        writer_nice: entry.writer_nice,
    })
}
