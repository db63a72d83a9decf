//! The `[policy]` configuration section and its validation.
//!
//! ```toml
//! [policy]
//! default = "allow"            # action when no rule matches a known class
//! unknown = "approve"          # action when no rule matches unknown SQL
//! approver_group = "dba"       # approvers for approve decisions (optional)
//! approval_timeout_ms = 300000 # how long a held statement waits
//! block_message = "blocked by policy"
//!
//! [[policy.rules]]
//! id = "no-destructive-ddl"
//! agents = ["report-bot"]      # agent names ("*" or empty: any agent)
//! agent_groups = ["bots"]      # or groups the agent belongs to
//! targets = ["analytics"]      # target names ("*" or empty: any target)
//! classes = ["drop", "truncate", "alter"]  # classes or aliases (empty: all known)
//! action = "block"
//! message = "DDL is not allowed for agents"
//! ```
//!
//! Rules are evaluated in order, first match wins, for every class a
//! statement touches; the statement's decision is the strictest of those,
//! and a Query's decision the strictest over its statements.
//!
//! A rule with empty `classes` matches every class except `unknown`:
//! unknown SQL only meets rules that name it, and otherwise gets the
//! `unknown` action, so a broad "allow" rule cannot wave through SQL the
//! classifier did not understand.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use serde::Deserialize;

use super::classify::{Class, ClassSet};
use super::rules::{Action, CompiledPolicy, CompiledRule};

/// Longest approval wait a rule may ask for (one day).
pub const APPROVAL_TIMEOUT_MS_MAX: u64 = 24 * 60 * 60 * 1000;
/// Default approval wait (five minutes).
pub const APPROVAL_TIMEOUT_MS_DEFAULT: u64 = 5 * 60 * 1000;
/// Rules per policy; beyond this the configuration is refused.
pub const RULES_MAX: usize = 1024;
/// Longest rule id, message or group name accepted.
pub const POLICY_TEXT_BYTES_MAX: usize = 1024;

/// The `[policy]` section as written.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    #[serde(default = "default_action")]
    pub default: Action,
    #[serde(default = "unknown_action")]
    pub unknown: Action,
    #[serde(default)]
    pub approver_group: Option<String>,
    #[serde(default = "default_timeout")]
    pub approval_timeout_ms: u64,
    #[serde(default)]
    pub block_message: Option<String>,
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            default: default_action(),
            unknown: unknown_action(),
            approver_group: None,
            approval_timeout_ms: default_timeout(),
            block_message: None,
            rules: Vec::new(),
        }
    }
}

fn default_action() -> Action {
    Action::Allow
}

fn unknown_action() -> Action {
    Action::Approve
}

fn default_timeout() -> u64 {
    APPROVAL_TIMEOUT_MS_DEFAULT
}

/// One `[[policy.rules]]` entry as written.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub id: String,
    #[serde(default)]
    pub agents: Vec<String>,
    #[serde(default)]
    pub agent_groups: Vec<String>,
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub classes: Vec<String>,
    pub action: Action,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub approver_group: Option<String>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// Names usable in `classes` besides the class names themselves.
pub const CLASS_ALIASES: &[(&str, &[Class])] = &[
    ("update", &[Class::UpdateWhere, Class::UpdateNoWhere]),
    ("delete", &[Class::DeleteWhere, Class::DeleteNoWhere]),
    (
        "write",
        &[
            Class::Insert,
            Class::UpdateWhere,
            Class::UpdateNoWhere,
            Class::DeleteWhere,
            Class::DeleteNoWhere,
            Class::Merge,
            Class::CopyFrom,
        ],
    ),
    (
        "ddl",
        &[
            Class::Create,
            Class::CreateFunction,
            Class::Alter,
            Class::Drop,
            Class::Truncate,
            Class::Comment,
        ],
    ),
    ("privileges", &[Class::Privilege, Class::Role]),
    (
        "copy",
        &[
            Class::CopyTo,
            Class::CopyFrom,
            Class::CopyProgram,
            Class::CopyFile,
        ],
    ),
];

/// The classes a `classes` entry stands for.
pub fn classes_named(name: &str) -> Option<ClassSet> {
    if let Some(c) = Class::from_name(name) {
        return Some(ClassSet::of(&[c]));
    }
    CLASS_ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map(|(_, classes)| ClassSet::of(classes))
}

/// Exactly what is wrong with a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyConfigErrorKind {
    EmptyRuleId,
    DuplicateRuleId(String),
    UnknownAgent(String),
    UnknownAgentGroup(String),
    UnknownTarget(String),
    UnknownClass(String),
    /// `message` on a rule whose action is not `block`.
    MessageWithoutBlock,
    /// `approver_group` or `timeout_ms` on a rule whose action is not
    /// `approve`.
    ApprovalFieldWithoutApprove(&'static str),
    TimeoutOutOfRange(u64),
    EmptyText(&'static str),
    TextTooLong(&'static str),
    TooManyRules(usize),
}

impl fmt::Display for PolicyConfigErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyRuleId => f.write_str("rule id must not be empty"),
            Self::DuplicateRuleId(id) => write!(f, "rule id {id:?} is used by an earlier rule"),
            Self::UnknownAgent(a) => write!(f, "no agent named {a:?}"),
            Self::UnknownAgentGroup(g) => write!(f, "no agent group named {g:?}"),
            Self::UnknownTarget(t) => write!(f, "no target named {t:?}"),
            Self::UnknownClass(c) => {
                let names: Vec<&str> = Class::ALL
                    .iter()
                    .map(|c| c.name())
                    .chain(CLASS_ALIASES.iter().map(|(a, _)| *a))
                    .collect();
                write!(
                    f,
                    "unknown statement class {c:?} (known: {})",
                    names.join(", ")
                )
            }
            Self::MessageWithoutBlock => f.write_str("message is only used by block rules"),
            Self::ApprovalFieldWithoutApprove(field) => {
                write!(f, "{field} is only used by approve rules")
            }
            Self::TimeoutOutOfRange(ms) => write!(
                f,
                "{ms} is out of range (1..={APPROVAL_TIMEOUT_MS_MAX} milliseconds)"
            ),
            Self::EmptyText(field) => write!(f, "{field} must not be empty"),
            Self::TextTooLong(field) => {
                write!(f, "{field} is longer than {POLICY_TEXT_BYTES_MAX} bytes")
            }
            Self::TooManyRules(n) => write!(f, "{n} rules; at most {RULES_MAX} are allowed"),
        }
    }
}

/// A policy configuration problem, with the key path it concerns
/// (`policy.rules[2].classes[0]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyConfigError {
    pub key_path: String,
    pub kind: PolicyConfigErrorKind,
    /// `kind` as a sentence, for `sluice check-config`.
    pub message: String,
}

impl PolicyConfigError {
    fn new(key_path: String, kind: PolicyConfigErrorKind) -> Self {
        PolicyConfigError {
            key_path,
            message: kind.to_string(),
            kind,
        }
    }
}

impl fmt::Display for PolicyConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key_path, self.message)
    }
}

impl std::error::Error for PolicyConfigError {}

fn text(
    value: &str,
    key_path: impl FnOnce() -> String,
    field: &'static str,
) -> Result<Arc<str>, PolicyConfigError> {
    if value.is_empty() {
        return Err(PolicyConfigError::new(
            key_path(),
            PolicyConfigErrorKind::EmptyText(field),
        ));
    }
    if value.len() > POLICY_TEXT_BYTES_MAX {
        return Err(PolicyConfigError::new(
            key_path(),
            PolicyConfigErrorKind::TextTooLong(field),
        ));
    }
    Ok(Arc::from(value))
}

fn timeout(ms: u64, key_path: impl FnOnce() -> String) -> Result<u64, PolicyConfigError> {
    if ms == 0 || ms > APPROVAL_TIMEOUT_MS_MAX {
        return Err(PolicyConfigError::new(
            key_path(),
            PolicyConfigErrorKind::TimeoutOutOfRange(ms),
        ));
    }
    Ok(ms)
}

impl PolicyConfig {
    /// Checks every rule against the configured agents, agent groups and
    /// targets and compiles the policy. The first problem found is
    /// returned with its key path.
    pub fn validate<A, G, T>(
        &self,
        agent_names: &[A],
        group_names: &[G],
        target_names: &[T],
    ) -> Result<CompiledPolicy, PolicyConfigError>
    where
        A: AsRef<str>,
        G: AsRef<str>,
        T: AsRef<str>,
    {
        let agents: HashSet<&str> = agent_names.iter().map(|a| a.as_ref()).collect();
        let groups: HashSet<&str> = group_names.iter().map(|g| g.as_ref()).collect();
        let targets: HashSet<&str> = target_names.iter().map(|t| t.as_ref()).collect();

        let approver_group = match &self.approver_group {
            Some(g) => Some(text(
                g,
                || "policy.approver_group".into(),
                "approver_group",
            )?),
            None => None,
        };
        let approval_timeout_ms = timeout(self.approval_timeout_ms, || {
            "policy.approval_timeout_ms".into()
        })?;
        let block_message = match &self.block_message {
            Some(m) => Some(text(m, || "policy.block_message".into(), "block_message")?),
            None => None,
        };
        if self.rules.len() > RULES_MAX {
            return Err(PolicyConfigError::new(
                "policy.rules".into(),
                PolicyConfigErrorKind::TooManyRules(self.rules.len()),
            ));
        }

        let mut ids = HashSet::new();
        let mut rules = Vec::with_capacity(self.rules.len());
        for (index, rule) in self.rules.iter().enumerate() {
            let key = |field: &str| format!("policy.rules[{index}].{field}");
            if rule.id.is_empty() {
                return Err(PolicyConfigError::new(
                    key("id"),
                    PolicyConfigErrorKind::EmptyRuleId,
                ));
            }
            let id = text(&rule.id, || key("id"), "id")?;
            if !ids.insert(rule.id.as_str()) {
                return Err(PolicyConfigError::new(
                    key("id"),
                    PolicyConfigErrorKind::DuplicateRuleId(rule.id.clone()),
                ));
            }
            let mut any_agent = rule.agents.is_empty() && rule.agent_groups.is_empty();
            for (n, agent) in rule.agents.iter().enumerate() {
                if agent == "*" {
                    any_agent = true;
                } else if !agents.contains(agent.as_str()) {
                    return Err(PolicyConfigError::new(
                        format!("policy.rules[{index}].agents[{n}]"),
                        PolicyConfigErrorKind::UnknownAgent(agent.clone()),
                    ));
                }
            }
            for (n, group) in rule.agent_groups.iter().enumerate() {
                if !groups.contains(group.as_str()) {
                    return Err(PolicyConfigError::new(
                        format!("policy.rules[{index}].agent_groups[{n}]"),
                        PolicyConfigErrorKind::UnknownAgentGroup(group.clone()),
                    ));
                }
            }
            let mut any_target = rule.targets.is_empty();
            for (n, target) in rule.targets.iter().enumerate() {
                if target == "*" {
                    any_target = true;
                } else if !targets.contains(target.as_str()) {
                    return Err(PolicyConfigError::new(
                        format!("policy.rules[{index}].targets[{n}]"),
                        PolicyConfigErrorKind::UnknownTarget(target.clone()),
                    ));
                }
            }
            let mut classes = ClassSet::EMPTY;
            for (n, name) in rule.classes.iter().enumerate() {
                match classes_named(name) {
                    Some(set) => classes = classes.union(set),
                    None => {
                        return Err(PolicyConfigError::new(
                            format!("policy.rules[{index}].classes[{n}]"),
                            PolicyConfigErrorKind::UnknownClass(name.clone()),
                        ))
                    }
                }
            }
            if rule.classes.is_empty() {
                classes = ClassSet::all_known();
            }
            if rule.message.is_some() && rule.action != Action::Block {
                return Err(PolicyConfigError::new(
                    key("message"),
                    PolicyConfigErrorKind::MessageWithoutBlock,
                ));
            }
            if rule.action != Action::Approve {
                if rule.approver_group.is_some() {
                    return Err(PolicyConfigError::new(
                        key("approver_group"),
                        PolicyConfigErrorKind::ApprovalFieldWithoutApprove("approver_group"),
                    ));
                }
                if rule.timeout_ms.is_some() {
                    return Err(PolicyConfigError::new(
                        key("timeout_ms"),
                        PolicyConfigErrorKind::ApprovalFieldWithoutApprove("timeout_ms"),
                    ));
                }
            }
            let message = match &rule.message {
                Some(m) => Some(text(m, || key("message"), "message")?),
                None => None,
            };
            let rule_approver = match &rule.approver_group {
                Some(g) => Some(text(g, || key("approver_group"), "approver_group")?),
                None => None,
            };
            let timeout_ms = match rule.timeout_ms {
                Some(ms) => timeout(ms, || key("timeout_ms"))?,
                None => approval_timeout_ms,
            };
            rules.push(CompiledRule {
                id,
                any_agent,
                agents: rule
                    .agents
                    .iter()
                    .filter(|a| *a != "*")
                    .map(|a| Box::from(a.as_str()))
                    .collect(),
                agent_groups: rule
                    .agent_groups
                    .iter()
                    .map(|g| Box::from(g.as_str()))
                    .collect(),
                any_target,
                targets: rule
                    .targets
                    .iter()
                    .filter(|t| *t != "*")
                    .map(|t| Box::from(t.as_str()))
                    .collect(),
                classes,
                action: rule.action,
                message: message.or_else(|| block_message.clone()),
                approver_group: rule_approver.or_else(|| approver_group.clone()),
                timeout_ms,
            });
        }
        Ok(CompiledPolicy {
            default: self.default,
            unknown: self.unknown,
            approver_group,
            approval_timeout_ms,
            block_message,
            rules,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> PolicyConfig {
        #[derive(Deserialize)]
        struct File {
            policy: PolicyConfig,
        }
        toml::from_str::<File>(s).unwrap().policy
    }

    const NONE: &[&str] = &[];

    #[test]
    fn defaults_are_allow_and_approve_unknown() {
        let p = parse("[policy]\n");
        assert_eq!(p.default, Action::Allow);
        assert_eq!(p.unknown, Action::Approve);
        p.validate(NONE, NONE, NONE).unwrap();
    }

    #[test]
    fn errors_name_the_key_and_the_violation() {
        let p = parse(
            r#"
            [policy]
            [[policy.rules]]
            id = "a"
            classes = ["drop", "explode"]
            action = "block"
            "#,
        );
        let e = p.validate(NONE, NONE, NONE).unwrap_err();
        assert_eq!(e.key_path, "policy.rules[0].classes[1]");
        assert_eq!(
            e.kind,
            PolicyConfigErrorKind::UnknownClass("explode".into())
        );

        let p = parse(
            r#"
            [policy]
            [[policy.rules]]
            id = "a"
            action = "allow"
            [[policy.rules]]
            id = "a"
            action = "allow"
            "#,
        );
        let e = p.validate(NONE, NONE, NONE).unwrap_err();
        assert_eq!(e.key_path, "policy.rules[1].id");

        let p = parse(
            r#"
            [policy]
            [[policy.rules]]
            id = "a"
            agents = ["ghost"]
            action = "allow"
            "#,
        );
        let e = p.validate(&["bot"], NONE, NONE).unwrap_err();
        assert_eq!(e.kind, PolicyConfigErrorKind::UnknownAgent("ghost".into()));
        assert_eq!(
            e.to_string(),
            "policy.rules[0].agents[0]: no agent named \"ghost\""
        );

        let p = parse(
            r#"
            [policy]
            [[policy.rules]]
            id = "a"
            action = "allow"
            timeout_ms = 5
            "#,
        );
        let e = p.validate(NONE, NONE, NONE).unwrap_err();
        assert_eq!(e.key_path, "policy.rules[0].timeout_ms");

        let p = parse(
            r#"
            [policy]
            [[policy.rules]]
            id = "a"
            action = "approve"
            timeout_ms = 0
            "#,
        );
        let e = p.validate(NONE, NONE, NONE).unwrap_err();
        assert_eq!(e.kind, PolicyConfigErrorKind::TimeoutOutOfRange(0));
    }

    #[test]
    fn unknown_fields_are_refused() {
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct File {
            policy: PolicyConfig,
        }
        assert!(toml::from_str::<File>("[policy]\ndefualt = \"allow\"\n").is_err());
        assert!(toml::from_str::<File>("[policy]\ndefault = \"maybe\"\n").is_err());
    }
}
