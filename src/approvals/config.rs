//! The `[admin]`, `[approvals]` (with `[approvals.webhook]`) and
//! `[[approvers]]` configuration sections, and their validation.

use std::{
    collections::HashSet,
    net::SocketAddr,
    path::{Path, PathBuf},
    str::FromStr,
};

use serde::Deserialize;

use crate::{
    admin::client::HttpUrl,
    auth::token::ScramVerifier,
    config::{ConfigError, TlsSection},
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminEntry {
    listen: String,
    #[serde(default)]
    cert_file: Option<PathBuf>,
    #[serde(default)]
    key_file: Option<PathBuf>,
    #[serde(default = "defaults::connections_max")]
    connections_max: usize,
    #[serde(default = "defaults::request_bytes_max")]
    request_bytes_max: usize,
    #[serde(default = "defaults::headers_max")]
    headers_max: usize,
    #[serde(default = "defaults::request_timeout_ms")]
    request_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalsEntry {
    #[serde(default = "defaults::pending_max")]
    pending_max: usize,
    #[serde(default = "defaults::wait_ms_max")]
    wait_ms_max: u64,
    #[serde(default)]
    webhook: Option<WebhookEntry>,
}

impl Default for ApprovalsEntry {
    fn default() -> Self {
        ApprovalsEntry {
            pending_max: defaults::pending_max(),
            wait_ms_max: defaults::wait_ms_max(),
            webhook: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookEntry {
    url: String,
    #[serde(default = "defaults::webhook_timeout_ms")]
    timeout_ms: u64,
    #[serde(default = "defaults::webhook_queue_max")]
    queue_max: usize,
    #[serde(default)]
    ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproverEntry {
    name: String,
    #[serde(default)]
    groups: Vec<String>,
    token_hash: String,
}

mod defaults {
    pub fn connections_max() -> usize {
        32
    }
    pub fn request_bytes_max() -> usize {
        64 * 1024
    }
    pub fn headers_max() -> usize {
        32
    }
    pub fn request_timeout_ms() -> u64 {
        10_000
    }
    pub fn pending_max() -> usize {
        1024
    }
    pub fn wait_ms_max() -> u64 {
        3_600_000
    }
    pub fn webhook_timeout_ms() -> u64 {
        5_000
    }
    pub fn webhook_queue_max() -> usize {
        256
    }
}

/// The validated admin listener settings.
#[derive(Debug, Clone)]
pub struct AdminSettings {
    pub listen: SocketAddr,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Admin connections served at once; more are closed at accept.
    pub connections_max: usize,
    /// Bound on one request (head and body together).
    pub request_bytes_max: usize,
    pub headers_max: usize,
    /// Bound on reading one request and on writing its response.
    pub request_timeout_ms: u64,
}

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub url: HttpUrl,
    pub timeout_ms: u64,
    pub queue_max: usize,
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Approver {
    pub name: String,
    pub groups: Vec<String>,
    pub token: ScramVerifier,
}

impl Approver {
    /// Whether this approver may decide for `group` (None: any approver).
    pub fn may_approve(&self, group: Option<&str>) -> bool {
        group.is_none_or(|group| self.groups.iter().any(|g| g == group))
    }
}

#[derive(Debug, Clone)]
pub struct ApprovalSettings {
    /// Statements held at once across all workers; more are refused.
    pub pending_max: usize,
    /// Cap on any rule's `timeout_ms`.
    pub wait_ms_max: u64,
    pub webhook: Option<WebhookSettings>,
    pub approvers: Vec<Approver>,
}

/// Everything the approval service needs; present when `[admin]` is.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub admin: AdminSettings,
    pub approvals: ApprovalSettings,
}

pub mod bounds {
    pub const CONNECTIONS_MAX: usize = 4096;
    pub const REQUEST_BYTES_MIN: usize = 1024;
    pub const REQUEST_BYTES_MAX: usize = 16 * 1024 * 1024;
    pub const HEADERS_MAX: usize = 256;
    pub const PENDING_MAX: usize = 1_000_000;
    pub const QUEUE_MAX: usize = 1_000_000;
}

fn error(key_path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key_path: key_path.into(),
        message: message.into(),
    }
}

fn resolve(base_dir: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base_dir.join(path)
    }
}

/// Validates the three sections together. `approver_groups` are the
/// groups the policy's approve rules name: each must have an approver.
pub fn validate(
    admin: Option<AdminEntry>,
    approvals: Option<ApprovalsEntry>,
    approvers: Vec<ApproverEntry>,
    tls: &TlsSection,
    approver_groups: &[String],
    base_dir: &Path,
) -> Result<Option<AdminConfig>, ConfigError> {
    let Some(admin) = admin else {
        if approvals.is_some() {
            return Err(error(
                "approvals",
                "requires an [admin] section (approvers decide through the admin listener)",
            ));
        }
        if !approvers.is_empty() {
            return Err(error(
                "approvers",
                "requires an [admin] section (approvers decide through the admin listener)",
            ));
        }
        return Ok(None);
    };
    let listen: SocketAddr = admin
        .listen
        .parse()
        .map_err(|e| error("admin.listen", format!("not an IP:port address: {e}")))?;
    let cert_file = admin
        .cert_file
        .as_deref()
        .map(|p| resolve(base_dir, p))
        .unwrap_or_else(|| tls.cert_file.clone());
    let key_file = admin
        .key_file
        .as_deref()
        .map(|p| resolve(base_dir, p))
        .unwrap_or_else(|| tls.key_file.clone());
    if admin.cert_file.is_some() != admin.key_file.is_some() {
        return Err(error(
            "admin.cert_file",
            "set both cert_file and key_file, or neither (the [tls] pair is used)",
        ));
    }
    for (key, path) in [
        ("admin.cert_file", &cert_file),
        ("admin.key_file", &key_file),
    ] {
        if !path.is_file() {
            return Err(error(key, format!("cannot read {}", path.display())));
        }
    }
    crate::config::check_range(
        "admin.connections_max",
        admin.connections_max,
        1,
        bounds::CONNECTIONS_MAX,
    )?;
    crate::config::check_range(
        "admin.request_bytes_max",
        admin.request_bytes_max,
        bounds::REQUEST_BYTES_MIN,
        bounds::REQUEST_BYTES_MAX,
    )?;
    crate::config::check_range(
        "admin.headers_max",
        admin.headers_max,
        4,
        bounds::HEADERS_MAX,
    )?;
    crate::config::check_range(
        "admin.request_timeout_ms",
        admin.request_timeout_ms,
        100,
        3_600_000,
    )?;

    let approvals = approvals.unwrap_or_default();
    crate::config::check_range(
        "approvals.pending_max",
        approvals.pending_max,
        1,
        bounds::PENDING_MAX,
    )?;
    crate::config::check_range(
        "approvals.wait_ms_max",
        approvals.wait_ms_max,
        1000,
        crate::config::bounds::TIMEOUT_MS_MAX,
    )?;
    let webhook = match approvals.webhook {
        None => None,
        Some(entry) => {
            let url = HttpUrl::from_str(&entry.url)
                .map_err(|e| error("approvals.webhook.url", e.to_string()))?;
            crate::config::check_range(
                "approvals.webhook.timeout_ms",
                entry.timeout_ms,
                100,
                600_000,
            )?;
            crate::config::check_range(
                "approvals.webhook.queue_max",
                entry.queue_max,
                1,
                bounds::QUEUE_MAX,
            )?;
            let ca_file = match entry.ca_file {
                Some(path) => {
                    let path = resolve(base_dir, &path);
                    if !path.is_file() {
                        return Err(error(
                            "approvals.webhook.ca_file",
                            format!("cannot read {}", path.display()),
                        ));
                    }
                    Some(path)
                }
                None => None,
            };
            Some(WebhookSettings {
                url,
                timeout_ms: entry.timeout_ms,
                queue_max: entry.queue_max,
                ca_file,
            })
        }
    };

    let mut names = HashSet::new();
    let mut list = Vec::with_capacity(approvers.len());
    for (index, entry) in approvers.into_iter().enumerate() {
        let key = |field: &str| format!("approvers[{index}].{field}");
        if entry.name.is_empty()
            || entry.name.len() > crate::config::bounds::NAME_BYTES_MAX
            || entry.name.chars().any(|c| c.is_control())
        {
            return Err(error(
                key("name"),
                format!(
                    "must be 1 to {} bytes without control characters",
                    crate::config::bounds::NAME_BYTES_MAX
                ),
            ));
        }
        if !names.insert(entry.name.clone()) {
            return Err(error(
                key("name"),
                format!("duplicate approver name {:?}", entry.name),
            ));
        }
        for (group_index, group) in entry.groups.iter().enumerate() {
            if group.is_empty() || group.len() > crate::config::bounds::NAME_BYTES_MAX {
                return Err(error(
                    format!("approvers[{index}].groups[{group_index}]"),
                    "must be 1 to 63 bytes long",
                ));
            }
        }
        let token = ScramVerifier::from_str(&entry.token_hash).map_err(|e| {
            error(
                key("token_hash"),
                format!("not a verifier from `sluice hash-token`: {e}"),
            )
        })?;
        list.push(Approver {
            name: entry.name,
            groups: entry.groups,
            token,
        });
    }
    if list.is_empty() {
        return Err(error(
            "approvers",
            "[admin] needs at least one [[approvers]] entry with a token_hash",
        ));
    }
    for group in approver_groups {
        if !list.iter().any(|a| a.groups.iter().any(|g| g == group)) {
            return Err(error(
                "approvers",
                format!("no approver is in group {group:?}, which the policy names as approver_group: such statements could never be approved"),
            ));
        }
    }
    Ok(Some(AdminConfig {
        admin: AdminSettings {
            listen,
            cert_file,
            key_file,
            connections_max: admin.connections_max,
            request_bytes_max: admin.request_bytes_max,
            headers_max: admin.headers_max,
            request_timeout_ms: admin.request_timeout_ms,
        },
        approvals: ApprovalSettings {
            pending_max: approvals.pending_max,
            wait_ms_max: approvals.wait_ms_max,
            webhook,
            approvers: list,
        },
    }))
}
