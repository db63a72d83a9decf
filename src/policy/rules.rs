//! Turning classified statements into decisions.
//!
//! A statement is decided once per class it touches: for each class, the
//! first rule that matches the agent, the target and that class decides,
//! and when none does the policy's `default` (or, for [`Class::Unknown`],
//! its `unknown` action) applies. The statement gets the strictest of
//! those decisions, and a Query the strictest over its statements
//! (block > approve > allow; the earliest wins a tie). Deciding per class
//! is what keeps an "allow reads" rule from letting through
//! `WITH d AS (DELETE FROM t) SELECT 1`: its delete is decided on its own.

use std::fmt::Write as _;
use std::sync::Arc;

use serde::Deserialize;

use super::classify::{classify_with, Class, ClassSet, ClassifiedStatement, ClassifyOptions};
use super::classify::{PreparedStatements, WhereClause};

/// What happens to a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Forwarded to the server.
    Allow,
    /// Held until a human approves it.
    Approve,
    /// Refused with SQLSTATE 42501.
    Block,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Approve => "approve",
            Action::Block => "block",
        }
    }

    /// Block is stricter than approve, approve than allow.
    fn strictness(self) -> u8 {
        match self {
            Action::Allow => 0,
            Action::Approve => 1,
            Action::Block => 2,
        }
    }
}

/// Which policy-level setting decided, when no rule matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fallback {
    /// `policy.default`: no rule matched a known class.
    Default,
    /// `policy.unknown`: no rule matched unknown SQL.
    Unknown,
    /// The Query had no statement (only whitespace or comments); the
    /// server answers EmptyQueryResponse, which is always allowed.
    EmptyQuery,
}

/// The outcome for a Query (or one statement).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub action: Action,
    /// The rule that decided; `None` when `fallback` did.
    pub rule_id: Option<Arc<str>>,
    pub fallback: Option<Fallback>,
    /// For block: the rule's message, else `policy.block_message`; the
    /// session adds its own text when both are absent.
    pub message: Option<Arc<str>>,
    /// For approve: who may approve (`None`: any approver).
    pub approver_group: Option<Arc<str>>,
    /// For approve: how long to wait before giving up.
    pub timeout_ms: Option<u64>,
    /// Index of the statement that decided (`None` for an empty Query).
    pub statement_index: Option<usize>,
    /// The class of that statement that decided.
    pub class: Option<Class>,
}

pub(crate) struct CompiledRule {
    pub(crate) id: Arc<str>,
    pub(crate) any_agent: bool,
    pub(crate) agents: Vec<Box<str>>,
    pub(crate) agent_groups: Vec<Box<str>>,
    pub(crate) any_target: bool,
    pub(crate) targets: Vec<Box<str>>,
    pub(crate) classes: ClassSet,
    pub(crate) action: Action,
    pub(crate) message: Option<Arc<str>>,
    pub(crate) approver_group: Option<Arc<str>>,
    pub(crate) timeout_ms: u64,
}

impl CompiledRule {
    fn matches<G: AsRef<str>>(
        &self,
        agent: &str,
        groups: &[G],
        target: &str,
        class: Class,
    ) -> bool {
        self.classes.contains(class)
            && (self.any_target || self.targets.iter().any(|t| &**t == target))
            && (self.any_agent
                || self.agents.iter().any(|a| &**a == agent)
                || self
                    .agent_groups
                    .iter()
                    .any(|g| groups.iter().any(|m| m.as_ref() == &**g)))
    }
}

/// A validated policy, ready to decide. Built by
/// [`PolicyConfig::validate`](super::config::PolicyConfig::validate).
pub struct CompiledPolicy {
    pub(crate) default: Action,
    pub(crate) unknown: Action,
    pub(crate) approver_group: Option<Arc<str>>,
    pub(crate) approval_timeout_ms: u64,
    pub(crate) block_message: Option<Arc<str>>,
    pub(crate) rules: Vec<CompiledRule>,
}

impl std::fmt::Debug for CompiledPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledPolicy")
            .field("default", &self.default)
            .field("unknown", &self.unknown)
            .field(
                "rules",
                &self.rules.iter().map(|r| &*r.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl CompiledPolicy {
    /// Every approver group an `approve` decision of this policy can name
    /// (so the configuration can check that each one has an approver).
    pub fn approver_groups(&self) -> Vec<String> {
        let mut groups: Vec<String> = self
            .rules
            .iter()
            .filter(|r| r.action == Action::Approve)
            .filter_map(|r| r.approver_group.as_deref().map(str::to_string))
            .collect();
        let fallback_approves = self.default == Action::Approve || self.unknown == Action::Approve;
        if let (true, Some(group)) = (fallback_approves, &self.approver_group) {
            groups.push(group.to_string());
        }
        groups.sort_unstable();
        groups.dedup();
        groups
    }

    /// The decision for a whole Query: the strictest over its statements.
    pub fn decide<G: AsRef<str>>(
        &self,
        agent: &str,
        agent_groups: &[G],
        target: &str,
        statements: &[ClassifiedStatement],
    ) -> Decision {
        let mut best: Option<Decision> = None;
        for (index, statement) in statements.iter().enumerate() {
            let mut d = self.decide_statement(agent, agent_groups, target, statement);
            d.statement_index = Some(index);
            if stricter(&d, best.as_ref()) {
                best = Some(d);
            }
        }
        best.unwrap_or(Decision {
            action: Action::Allow,
            rule_id: None,
            fallback: Some(Fallback::EmptyQuery),
            message: None,
            approver_group: None,
            timeout_ms: None,
            statement_index: None,
            class: None,
        })
    }

    /// The decision for one statement: the strictest over its classes.
    /// `statement_index` is `Some(0)`.
    pub fn decide_statement<G: AsRef<str>>(
        &self,
        agent: &str,
        agent_groups: &[G],
        target: &str,
        statement: &ClassifiedStatement,
    ) -> Decision {
        let mut ops = statement.ops;
        if ops.is_empty() {
            ops.insert(Class::Unknown);
        }
        let mut best: Option<Decision> = None;
        for class in ops.iter() {
            let d = self.decide_class(agent, agent_groups, target, class);
            if stricter(&d, best.as_ref()) {
                best = Some(d);
            }
        }
        let mut d = best.expect("at least one class");
        d.statement_index = Some(0);
        d
    }

    /// The decision for one class of statement.
    pub fn decide_class<G: AsRef<str>>(
        &self,
        agent: &str,
        agent_groups: &[G],
        target: &str,
        class: Class,
    ) -> Decision {
        if let Some(rule) = self
            .rules
            .iter()
            .find(|r| r.matches(agent, agent_groups, target, class))
        {
            return Decision {
                action: rule.action,
                rule_id: Some(rule.id.clone()),
                fallback: None,
                message: (rule.action == Action::Block)
                    .then(|| rule.message.clone())
                    .flatten(),
                approver_group: (rule.action == Action::Approve)
                    .then(|| rule.approver_group.clone())
                    .flatten(),
                timeout_ms: (rule.action == Action::Approve).then_some(rule.timeout_ms),
                statement_index: None,
                class: Some(class),
            };
        }
        let (action, fallback) = if class == Class::Unknown {
            (self.unknown, Fallback::Unknown)
        } else {
            (self.default, Fallback::Default)
        };
        Decision {
            action,
            rule_id: None,
            fallback: Some(fallback),
            message: (action == Action::Block)
                .then(|| self.block_message.clone())
                .flatten(),
            approver_group: (action == Action::Approve)
                .then(|| self.approver_group.clone())
                .flatten(),
            timeout_ms: (action == Action::Approve).then_some(self.approval_timeout_ms),
            statement_index: None,
            class: Some(class),
        }
    }

    /// Classifies `sql` and explains, for people, what each statement does,
    /// why, which rule each of its classes meets, and the final decision.
    /// This is what `sluice policy explain` prints.
    pub fn explain<G: AsRef<str>>(
        &self,
        agent: &str,
        agent_groups: &[G],
        target: &str,
        sql: &str,
        options: &ClassifyOptions,
        prepared: &dyn PreparedStatements,
    ) -> String {
        let statements = classify_with(sql, options, prepared);
        let mut out = String::new();
        let groups: Vec<&str> = agent_groups.iter().map(|g| g.as_ref()).collect();
        let _ = writeln!(
            out,
            "agent {agent:?} (groups: {}), target {target:?}",
            if groups.is_empty() {
                "none".to_owned()
            } else {
                groups.join(", ")
            }
        );
        if statements.is_empty() {
            let _ = writeln!(out, "no statements (empty query)");
        }
        for (index, s) in statements.iter().enumerate() {
            let mut text: String = s.text(sql).chars().take(200).collect();
            if text.len() < s.range.len() {
                text.push_str(" ...");
            }
            let _ = writeln!(
                out,
                "statement {} (bytes {}..{}): {}",
                index + 1,
                s.range.start,
                s.range.end,
                text.replace('\n', " ")
            );
            let _ = write!(out, "  class: {} (touches: {})", s.class, s.ops);
            if let Some(object) = s.object {
                let _ = write!(out, ", object: {object}");
            }
            match s.where_clause {
                WhereClause::NotApplicable => {}
                w => {
                    let _ = write!(out, ", where: {w:?}");
                }
            }
            out.push('\n');
            if !s.relations.is_empty() {
                let names: Vec<&str> = s
                    .relations
                    .iter()
                    .map(|r| sql.get(r.clone()).unwrap_or("?"))
                    .collect();
                let _ = writeln!(out, "  relations: {}", names.join(", "));
            }
            for r in &s.reasons {
                let _ = writeln!(out, "  because: {r}");
            }
            for class in s.ops.iter() {
                let d = self.decide_class(agent, agent_groups, target, class);
                let _ = writeln!(out, "  {class}: {}", describe(&d));
            }
        }
        let d = self.decide(agent, agent_groups, target, &statements);
        let _ = write!(out, "decision: {}", describe(&d));
        if let Some(i) = d.statement_index {
            let _ = write!(out, " (statement {})", i + 1);
        }
        out.push('\n');
        out
    }
}

/// Whether `d` replaces `best`: strictly stricter, so the earliest of
/// equally strict decisions is kept.
fn stricter(d: &Decision, best: Option<&Decision>) -> bool {
    match best {
        None => true,
        Some(b) => d.action.strictness() > b.action.strictness(),
    }
}

fn describe(d: &Decision) -> String {
    let mut s = d.action.name().to_owned();
    match (&d.rule_id, d.fallback) {
        (Some(id), _) => {
            let _ = write!(s, " by rule {id:?}");
        }
        (None, Some(Fallback::Default)) => s.push_str(" by policy.default"),
        (None, Some(Fallback::Unknown)) => s.push_str(" by policy.unknown"),
        (None, Some(Fallback::EmptyQuery)) => s.push_str(" (empty query)"),
        (None, None) => {}
    }
    if let Some(m) = &d.message {
        let _ = write!(s, ", message {m:?}");
    }
    if d.action == Action::Approve {
        match &d.approver_group {
            Some(g) => {
                let _ = write!(s, ", approvers {g:?}");
            }
            None => s.push_str(", any approver"),
        }
        if let Some(ms) = d.timeout_ms {
            let _ = write!(s, ", timeout {ms} ms");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::classify::{classify, NoPreparedStatements};
    use crate::policy::config::PolicyConfig;

    fn policy(toml_text: &str) -> CompiledPolicy {
        #[derive(Deserialize)]
        struct File {
            policy: PolicyConfig,
        }
        toml::from_str::<File>(toml_text)
            .unwrap()
            .policy
            .validate(&["bot", "admin-bot"], &["bots"], &["prod", "dev"])
            .unwrap()
    }

    const P: &str = r#"
        [policy]
        approver_group = "dba"
        [[policy.rules]]
        id = "admin-anything"
        agents = ["admin-bot"]
        classes = ["ddl", "write"]
        action = "allow"
        [[policy.rules]]
        id = "no-drop"
        classes = ["drop", "truncate"]
        action = "block"
        message = "no"
        [[policy.rules]]
        id = "prod-writes"
        agent_groups = ["bots"]
        targets = ["prod"]
        classes = ["write"]
        action = "approve"
        timeout_ms = 1000
        [[policy.rules]]
        id = "allow-read"
        classes = ["read"]
        action = "allow"
    "#;

    const NO_GROUPS: &[&str] = &[];

    #[test]
    fn first_match_wins_per_class_and_strictest_wins_overall() {
        let p = policy(P);
        let d = p.decide("bot", NO_GROUPS, "prod", &classify("DROP TABLE t"));
        assert_eq!(d.action, Action::Block);
        assert_eq!(d.rule_id.as_deref(), Some("no-drop"));
        assert_eq!(d.message.as_deref(), Some("no"));

        let d = p.decide("admin-bot", NO_GROUPS, "prod", &classify("DROP TABLE t"));
        assert_eq!(d.action, Action::Allow);

        let d = p.decide(
            "bot",
            &["bots"],
            "prod",
            &classify("SELECT 1; UPDATE t SET a = 1 WHERE id = 1"),
        );
        assert_eq!(d.action, Action::Approve);
        assert_eq!(d.statement_index, Some(1));
        assert_eq!(d.approver_group.as_deref(), Some("dba"));
        assert_eq!(d.timeout_ms, Some(1000));

        let d = p.decide("bot", &["bots"], "dev", &classify("UPDATE t SET a = 1"));
        assert_eq!(d.action, Action::Allow);
        assert_eq!(d.fallback, Some(Fallback::Default));

        // The read rule does not hide the DELETE in the CTE.
        let d = p.decide(
            "bot",
            &["bots"],
            "prod",
            &classify("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d"),
        );
        assert_eq!(d.action, Action::Approve);
        assert_eq!(d.class, Some(Class::DeleteNoWhere));
    }

    #[test]
    fn unknown_falls_to_the_unknown_action() {
        let p = policy(P);
        let d = p.decide("admin-bot", NO_GROUPS, "dev", &classify("frobnicate"));
        assert_eq!(d.action, Action::Approve);
        assert_eq!(d.fallback, Some(Fallback::Unknown));
        let d = p.decide("bot", NO_GROUPS, "dev", &classify(" -- nothing\n"));
        assert_eq!(d.action, Action::Allow);
        assert_eq!(d.fallback, Some(Fallback::EmptyQuery));
    }

    #[test]
    fn explain_names_classes_reasons_and_rules() {
        let p = policy(P);
        let text = p.explain(
            "bot",
            &["bots"],
            "prod",
            "select 1; delete from t where 1=1",
            &ClassifyOptions::default(),
            &NoPreparedStatements,
        );
        assert!(text.contains("class: delete_no_where"), "{text}");
        assert!(text.contains("trivially true"), "{text}");
        assert!(text.contains("by rule \"prod-writes\""), "{text}");
        assert!(text.contains("decision: approve"), "{text}");
    }
}
