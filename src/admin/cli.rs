//! `sluice approvals list|show|approve|deny`: the approvers' command line,
//! a client of the admin API. Settings come from the environment:
//!
//! - `SLUICE_ADMIN_URL`: the admin listener, e.g. `https://127.0.0.1:9443`
//! - `SLUICE_ADMIN_TOKEN`: the approver's bearer token
//! - `SLUICE_ADMIN_CA`: PEM file of the CA that signed the admin
//!   certificate (default: the system trust store)

use std::{path::PathBuf, str::FromStr, time::Duration};

use super::client::{self, ClientTls, HttpUrl};

/// Bound on one CLI request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Statement characters shown per row by `list`.
const LIST_STATEMENT_CHARS_MAX: usize = 60;

#[derive(Debug, Clone)]
pub enum ApprovalsCommand {
    List {
        json: bool,
    },
    Show {
        id: String,
    },
    Approve {
        id: String,
        reason: Option<String>,
        window: Option<Duration>,
    },
    Deny {
        id: String,
        reason: Option<String>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0} is not set (see `sluice approvals --help`)")]
    MissingVariable(&'static str),
    #[error("SLUICE_ADMIN_URL: {0}")]
    Url(client::UrlError),
    #[error("SLUICE_ADMIN_CA: {0}")]
    Tls(crate::tls::TlsSetupError),
    #[error("{0}")]
    Request(client::ClientError),
    #[error("the admin API answered {status}: {message}")]
    Api { status: u16, message: String },
    #[error("unexpected answer from the admin API: {0}")]
    Response(String),
    #[error("an approval id contains only letters, digits, '-' and '_'")]
    InvalidId,
}

impl CliError {
    /// 2 for local usage problems, 1 for everything the server said or
    /// could not say.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::MissingVariable(_)
            | CliError::Url(_)
            | CliError::Tls(_)
            | CliError::InvalidId => 2,
            _ => 1,
        }
    }
}

/// Parses `10m`, `90s`, `1h`, `500ms`, `1h30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let mut total_ms: u64 = 0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(format!("{text:?}: expected a number, e.g. 10m, 90s, 1h"));
        }
        let value: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("{text:?}: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let unit_ms = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => return Err(format!("{text:?}: missing unit (ms, s, m, h or d)")),
            other => return Err(format!("{text:?}: unknown unit {other:?}")),
        };
        rest = &rest[unit_len..];
        total_ms = value
            .checked_mul(unit_ms)
            .and_then(|v| total_ms.checked_add(v))
            .ok_or_else(|| format!("{text:?}: too long"))?;
    }
    Ok(Duration::from_millis(total_ms))
}

struct Target {
    url: HttpUrl,
    token: String,
    tls: Option<ClientTls>,
}

fn target_from_env() -> Result<Target, CliError> {
    let url = std::env::var("SLUICE_ADMIN_URL")
        .map_err(|_| CliError::MissingVariable("SLUICE_ADMIN_URL"))?;
    let url = HttpUrl::from_str(url.trim()).map_err(CliError::Url)?;
    let token = std::env::var("SLUICE_ADMIN_TOKEN")
        .map_err(|_| CliError::MissingVariable("SLUICE_ADMIN_TOKEN"))?;
    let tls = if url.https {
        let ca = std::env::var_os("SLUICE_ADMIN_CA").map(PathBuf::from);
        Some(ClientTls::new(ca.as_deref()).map_err(CliError::Tls)?)
    } else {
        None
    };
    Ok(Target {
        url,
        token: token.trim().to_string(),
        tls,
    })
}

fn call(
    target: &Target,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<serde_json::Value, CliError> {
    let mut url = target.url.clone();
    url.path = format!("{}{}", url.path.trim_end_matches('/'), path);
    let authorization = format!("Bearer {}", target.token);
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut headers = vec![("Authorization", authorization.as_str())];
    if !body.is_empty() {
        headers.push(("Content-Type", "application/json"));
    }
    let response = client::request(
        &url,
        method,
        &headers,
        body.as_bytes(),
        REQUEST_TIMEOUT,
        target.tls.as_ref(),
        client::RESPONSE_BYTES_MAX,
    )
    .map_err(CliError::Request)?;
    let value: serde_json::Value = serde_json::from_slice(&response.body).map_err(|e| {
        CliError::Response(format!(
            "HTTP {} with a body that is not JSON: {e}",
            response.status
        ))
    })?;
    if response.status != 200 {
        let message = value["error"]["message"]
            .as_str()
            .unwrap_or("(no message)")
            .to_string();
        return Err(CliError::Api {
            status: response.status,
            message,
        });
    }
    Ok(value)
}

fn check_id(id: &str) -> Result<(), CliError> {
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(CliError::InvalidId);
    }
    Ok(())
}

fn one_line(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let flat = flat.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > max {
        let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    } else {
        flat
    }
}

fn describe(view: &serde_json::Value) -> String {
    let field = |name: &str| match &view[name] {
        serde_json::Value::Null => "-".to_string(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut out = String::new();
    for name in [
        "id",
        "status",
        "agent",
        "target",
        "session",
        "rule",
        "approver_group",
        "class",
        "age_ms",
        "timeout_ms",
        "statement_sha256",
        "decided_by",
        "reason",
        "window_ms",
    ] {
        out.push_str(&format!("{name:>17}: {}\n", field(name)));
    }
    out.push_str(&format!("{:>17}:\n{}\n", "statement", field("statement")));
    out
}

/// Runs one command; Ok is what to print.
pub fn run(command: ApprovalsCommand) -> Result<String, CliError> {
    let target = target_from_env()?;
    match command {
        ApprovalsCommand::List { json } => {
            let value = call(&target, "GET", "/v1/approvals", None)?;
            if json {
                return Ok(serde_json::to_string_pretty(&value).unwrap_or_default());
            }
            let list = value["approvals"].as_array().cloned().unwrap_or_default();
            if list.is_empty() {
                return Ok("no pending approvals".into());
            }
            let mut out = format!(
                "{:<12}  {:>6}  {:<16}  {:<12}  {:<24}  STATEMENT\n",
                "ID", "AGE", "AGENT", "TARGET", "RULE"
            );
            for view in list {
                let age_s = view["age_ms"].as_u64().unwrap_or(0) / 1000;
                out.push_str(&format!(
                    "{:<12}  {:>5}s  {:<16}  {:<12}  {:<24}  {}\n",
                    view["id"].as_str().unwrap_or("?"),
                    age_s,
                    one_line(view["agent"].as_str().unwrap_or(""), 16),
                    one_line(view["target"].as_str().unwrap_or(""), 12),
                    one_line(view["rule"].as_str().unwrap_or(""), 24),
                    one_line(
                        view["statement"].as_str().unwrap_or(""),
                        LIST_STATEMENT_CHARS_MAX
                    ),
                ));
            }
            Ok(out.trim_end().to_string())
        }
        ApprovalsCommand::Show { id } => {
            check_id(&id)?;
            let value = call(&target, "GET", &format!("/v1/approvals/{id}"), None)?;
            Ok(describe(&value).trim_end().to_string())
        }
        ApprovalsCommand::Approve { id, reason, window } => {
            check_id(&id)?;
            let mut body = serde_json::Map::new();
            if let Some(reason) = reason {
                body.insert("reason".into(), reason.into());
            }
            if let Some(window) = window {
                body.insert("window_ms".into(), (window.as_millis() as u64).into());
            }
            let value = call(
                &target,
                "POST",
                &format!("/v1/approvals/{id}/approve"),
                Some(body.into()),
            )?;
            Ok(format!(
                "approved {id} ({} by {})",
                value["status"].as_str().unwrap_or("?"),
                value["decided_by"].as_str().unwrap_or("?")
            ))
        }
        ApprovalsCommand::Deny { id, reason } => {
            check_id(&id)?;
            let mut body = serde_json::Map::new();
            if let Some(reason) = reason {
                body.insert("reason".into(), reason.into());
            }
            let value = call(
                &target,
                "POST",
                &format!("/v1/approvals/{id}/deny"),
                Some(body.into()),
            )?;
            Ok(format!(
                "denied {id} ({} by {})",
                value["status"].as_str().unwrap_or("?"),
                value["decided_by"].as_str().unwrap_or("?")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("5y").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
    }

    #[test]
    fn ids_are_checked_before_they_reach_a_url() {
        assert!(check_id("0a1b2c").is_ok());
        assert!(check_id("../x").is_err());
        assert!(check_id("a b").is_err());
        assert!(check_id("").is_err());
    }
}
