//! Policy on the wire: per-session state that turns frontend messages into
//! verdicts (forward, or refuse with the rule's message).
//!
//! Simple protocol: a Query is classified and decided as a whole (the
//! strictest decision over its statements). Extended protocol: a statement
//! is classified at Parse, the decision follows it to every portal bound
//! from it, and it is enforced at Execute, so a blocked statement can be
//! prepared (nothing runs) but never executed. `PREPARE name AS ...` and
//! named protocol statements share one namespace, so `EXECUTE name` is
//! decided by what `name` was prepared as.

use std::{cell::RefCell, collections::HashMap, rc::Rc, sync::Arc};

use sluice_ledger::RecordBody;

use super::refusal::Refusal;
use crate::{
    policy::{
        classify_bytes, Action, ClassifyOptions, CompiledPolicy, Decision, LexOptions,
        PreparedStatements, Summary,
    },
    protocol::pg::{sqlstate, FrontendMessage},
};

/// Statements and portals remembered per session; a client that creates
/// more is refused rather than letting the maps grow without bound.
pub const NAMED_STATEMENTS_MAX: usize = 10_000;
/// Statement text kept in a decision record (the full text is in the
/// ClientMessage record next to it).
const DECISION_TEXT_BYTES_MAX: usize = 4096;

/// What the session does with one frontend message.
pub enum Verdict {
    Forward,
    Refuse(Refusal),
}

struct Prepared {
    summaries: HashMap<String, Summary>,
}

impl PreparedStatements for Prepared {
    fn lookup(&self, name: &str) -> Option<Summary> {
        self.summaries.get(name).copied()
    }
}

pub struct PolicySession {
    policy: Arc<CompiledPolicy>,
    agent: String,
    groups: Vec<String>,
    target: String,
    /// Decision per protocol statement name ("" is the unnamed statement).
    statements: RefCell<HashMap<Vec<u8>, Rc<Decision>>>,
    /// Decision per portal, copied from its statement at Bind.
    portals: RefCell<HashMap<Vec<u8>, Rc<Decision>>>,
    prepared: RefCell<Prepared>,
    /// Mirrors the server's standard_conforming_strings (from ParameterStatus),
    /// which changes how backslashes in '' strings lex.
    pub standard_conforming_strings: std::cell::Cell<bool>,
}

impl PolicySession {
    pub fn new(policy: Arc<CompiledPolicy>, agent: &str, groups: &[String], target: &str) -> Self {
        PolicySession {
            policy,
            agent: agent.to_string(),
            groups: groups.to_vec(),
            target: target.to_string(),
            statements: RefCell::new(HashMap::new()),
            portals: RefCell::new(HashMap::new()),
            prepared: RefCell::new(Prepared {
                summaries: HashMap::new(),
            }),
            standard_conforming_strings: std::cell::Cell::new(true),
        }
    }

    /// Classifies and decides `sql`; also returns the first statement's
    /// summary (a Parse holds exactly one statement).
    fn decide_sql(&self, sql: &[u8]) -> (Decision, Option<Summary>) {
        let options = ClassifyOptions {
            lex: LexOptions {
                standard_conforming_strings: self.standard_conforming_strings.get(),
            },
        };
        let prepared = self.prepared.borrow();
        let statements = classify_bytes(sql, &options, &*prepared);
        drop(prepared);
        // PREPARE name AS ... : remember what `name` is for later EXECUTEs.
        let mut prepared = self.prepared.borrow_mut();
        for statement in &statements {
            if let Some(name) = &statement.prepared_name {
                if prepared.summaries.len() < NAMED_STATEMENTS_MAX {
                    prepared.summaries.insert(name.clone(), statement.summary());
                }
            }
        }
        let decision = self
            .policy
            .decide(&self.agent, &self.groups, &self.target, &statements);
        (decision, statements.first().map(|s| s.summary()))
    }

    /// Decides one message; `records` receives the ledger records of the
    /// decisions taken.
    pub fn verdict(&self, message: &FrontendMessage<'_>, records: &mut Vec<RecordBody>) -> Verdict {
        match message {
            FrontendMessage::Query { sql } => {
                let (decision, _) = self.decide_sql(sql);
                records.push(decision_record(sql, &decision));
                self.enforce(&decision)
            }
            FrontendMessage::Parse { statement, sql, .. } => {
                let (decision, summary) = self.decide_sql(sql);
                records.push(decision_record(sql, &decision));
                let mut statements = self.statements.borrow_mut();
                if statements.len() >= NAMED_STATEMENTS_MAX && !statements.contains_key(*statement)
                {
                    return Verdict::Refuse(limit_refusal("prepared statements"));
                }
                if let (Ok(name), Some(summary)) = (std::str::from_utf8(statement), summary) {
                    let mut prepared = self.prepared.borrow_mut();
                    if !name.is_empty() && prepared.summaries.len() < NAMED_STATEMENTS_MAX {
                        prepared.summaries.insert(name.to_string(), summary);
                    }
                }
                statements.insert(statement.to_vec(), Rc::new(decision));
                // Parsing runs nothing: the decision is enforced at Execute.
                Verdict::Forward
            }
            FrontendMessage::Bind {
                portal, statement, ..
            } => {
                let decision = self.statements.borrow().get(*statement).cloned();
                let mut portals = self.portals.borrow_mut();
                if portals.len() >= NAMED_STATEMENTS_MAX && !portals.contains_key(*portal) {
                    return Verdict::Refuse(limit_refusal("portals"));
                }
                match decision {
                    Some(decision) => {
                        portals.insert(portal.to_vec(), decision);
                    }
                    // A statement sluice never saw parsed cannot be judged;
                    // the server rejects the Bind anyway.
                    None => {
                        portals.remove(*portal);
                    }
                }
                Verdict::Forward
            }
            FrontendMessage::Execute { portal, .. } => {
                match self.portals.borrow().get(*portal) {
                    Some(decision) => self.enforce(decision),
                    // No known portal: the server answers "portal does not
                    // exist"; nothing can run.
                    None => Verdict::Forward,
                }
            }
            FrontendMessage::Close { kind, name } => {
                match kind {
                    crate::protocol::pg::TargetKind::Statement => {
                        self.statements.borrow_mut().remove(*name);
                        if let Ok(name) = std::str::from_utf8(name) {
                            self.prepared.borrow_mut().summaries.remove(name);
                        }
                    }
                    crate::protocol::pg::TargetKind::Portal => {
                        self.portals.borrow_mut().remove(*name);
                    }
                }
                Verdict::Forward
            }
            // A fast-path function call names a function by OID: sluice
            // cannot tell what it does, so it is decided as unknown SQL.
            FrontendMessage::FunctionCall { .. } => {
                let decision = self.policy.decide_class(
                    &self.agent,
                    &self.groups,
                    &self.target,
                    crate::policy::Class::Unknown,
                );
                records.push(decision_record(b"<function call>", &decision));
                self.enforce(&decision)
            }
            _ => Verdict::Forward,
        }
    }

    fn enforce(&self, decision: &Decision) -> Verdict {
        match decision.action {
            Action::Allow => Verdict::Forward,
            Action::Block => Verdict::Refuse(Refusal {
                sqlstate: sqlstate::INSUFFICIENT_PRIVILEGE,
                message: decision
                    .message
                    .as_deref()
                    .map(str::to_string)
                    .unwrap_or_else(|| {
                        format!(
                            "sluice policy blocked this statement (rule {})",
                            rule_name(decision)
                        )
                    }),
                hint: None,
            }),
            // Human approval is not available in this build: fail closed.
            Action::Approve => Verdict::Refuse(Refusal {
                sqlstate: sqlstate::INSUFFICIENT_PRIVILEGE,
                message: format!(
                    "this statement needs a human approval (rule {}), and this sluice has no approval service; it was not run",
                    rule_name(decision)
                ),
                hint: Some("ask an operator to run it, or to change the policy".into()),
            }),
        }
    }
}

fn rule_name(decision: &Decision) -> String {
    match (&decision.rule_id, decision.fallback) {
        (Some(id), _) => id.to_string(),
        (None, Some(fallback)) => format!("policy.{fallback:?}").to_lowercase(),
        (None, None) => "none".into(),
    }
}

fn limit_refusal(what: &str) -> Refusal {
    Refusal {
        sqlstate: sqlstate::PROGRAM_LIMIT_EXCEEDED,
        message: format!("too many {what} in this session (limit {NAMED_STATEMENTS_MAX})"),
        hint: Some("close statements and portals you no longer use".into()),
    }
}

fn decision_record(sql: &[u8], decision: &Decision) -> RecordBody {
    let text = &sql[..sql.len().min(DECISION_TEXT_BYTES_MAX)];
    RecordBody::PolicyDecision {
        statement: String::from_utf8_lossy(text).into_owned(),
        decision: decision.action.name().to_string(),
        rule: rule_name(decision),
        reason: match (decision.class, &decision.message) {
            (Some(class), Some(message)) => format!("{}: {message}", class.name()),
            (Some(class), None) => class.name().to_string(),
            (None, _) => String::new(),
        },
    }
}
