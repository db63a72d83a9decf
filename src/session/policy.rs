//! Policy on the wire: per-session state that turns frontend messages into
//! verdicts (forward, or refuse with the rule's message).
//!
//! Simple protocol: a Query is classified and decided as a whole (the
//! strictest decision over its statements). Extended protocol: a statement
//! is classified at Parse, the decision follows it to every portal bound
//! from it, and it is enforced at Execute, so a blocked statement can be
//! prepared (nothing runs) but never executed.
//!
//! The state must follow what the *server* did, not what the agent asked
//! for: after an error the server skips every message up to Sync, so a
//! Parse or Close the agent sent may never have happened. Changes to a
//! statement or portal name are therefore kept per batch (the messages up
//! to a Sync) and settled when that batch's ReadyForQuery arrives: a batch
//! without an error applies them; a batch with an error keeps, for every
//! name it touched, the strictest decision that might now be in force.
//! Within the batch being sent, the latest change is used directly (if the
//! server skipped it because of an earlier error, it skips the Bind or
//! Execute that depends on it too). A name sluice cannot account for is
//! decided as unknown SQL: fail closed.
//!
//! Lexing depends on `standard_conforming_strings` and on the client
//! encoding, both of which a statement can change while later statements
//! are already in flight. Every statement is therefore classified under
//! both `standard_conforming_strings` settings (the stricter decision
//! wins), client encodings whose multibyte characters can contain ASCII
//! bytes (SJIS, BIG5, GBK, UHC, GB18030, JOHAB) are refused at startup, and
//! statements that could switch to one are blocked.

use std::{
    collections::HashMap,
    rc::Rc,
    sync::Arc,
    time::{Duration, Instant},
};

use std::cell::{Cell, RefCell};

use sha2::{Digest, Sha256};

use sluice_ledger::RecordBody;

use super::refusal::Refusal;
use crate::{
    policy::{
        classify_bytes, Action, Class, ClassifiedStatement, ClassifyOptions, CompiledPolicy,
        Decision, LexOptions, PreparedStatements, Summary,
    },
    protocol::pg::{sqlstate, FrontendMessage, TargetKind},
};

/// Statements and portals remembered per session; a client that creates
/// more is refused rather than letting the maps grow without bound.
pub const NAMED_STATEMENTS_MAX: usize = 10_000;
/// Statement text kept in a decision record (the full text is in the
/// ClientMessage record next to it).
const DECISION_TEXT_BYTES_MAX: usize = 4096;

/// Client encodings in which a multibyte character can contain bytes below
/// 0x80 (notably `\` and `'`): sluice's lexer, which reads UTF-8, would see
/// different statement boundaries than the server. Lower case, without
/// separators.
const UNSAFE_CLIENT_ENCODINGS: &[&str] = &[
    "sjis",
    "shiftjis",
    "mskanji",
    "win932",
    "windows932",
    "cp932",
    "big5",
    "win950",
    "windows950",
    "cp950",
    "gbk",
    "win936",
    "windows936",
    "cp936",
    "uhc",
    "win949",
    "windows949",
    "cp949",
    "gb18030",
    "johab",
    "shiftjis2004",
];

fn normalized_encoding(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Whether the client encoding lexes like UTF-8 for ASCII bytes.
pub fn client_encoding_is_safe(name: &str) -> bool {
    let name = normalized_encoding(name);
    !UNSAFE_CLIENT_ENCODINGS.contains(&name.as_str())
}

/// What the session does with one frontend message.
pub enum Verdict {
    Forward,
    Refuse(Refusal),
    /// Hold the message until a human decides (see `crate::approvals`).
    Hold(HoldRequest),
}

/// A statement to hold for approval: what approvers see and what the
/// approval binds to.
#[derive(Debug, Clone)]
pub struct HoldRequest {
    /// The full statement text (lossy UTF-8); for an Execute, the prepared
    /// statement's text and the Bind parameters.
    pub statement: String,
    /// SHA-256 (hex) of exactly what runs: the Query text, or the Parse text
    /// with the Bind parameters and their formats.
    pub statement_sha256: String,
    pub rule: String,
    pub approver_group: Option<String>,
    pub class: Option<Class>,
    pub timeout_ms: u64,
    /// For an Execute: set once the portal's statement is approved, so that
    /// continuing the same portal (after PortalSuspended) needs no new
    /// approval. A new Bind makes a new portal state.
    pub portal_approved: Option<Rc<Cell<bool>>>,
}

impl HoldRequest {
    /// Called when the held statement was approved and will run.
    pub fn approved(&self) {
        if let Some(flag) = &self.portal_approved {
            flag.set(true);
        }
    }
}

/// A decision and the statement it was taken on, remembered per name so an
/// Execute can show approvers what it would run.
struct Decided {
    decision: Decision,
    sql: Rc<[u8]>,
    /// For portals: the Bind parameter formats and values, as on the wire.
    bind: Option<(Vec<u8>, Vec<u8>)>,
    /// For portals: an approver approved this portal's execution.
    approved: Rc<Cell<bool>>,
}

/// Decisions a name may carry: what the server confirmed, and changes from
/// batches whose outcome is not known yet (`None` = closed).
#[derive(Default)]
struct NameState {
    confirmed: Option<Rc<Decided>>,
    pending: Vec<(u64, Option<Rc<Decided>>)>,
}

/// Names (statements or portals) and their decisions.
#[derive(Default)]
struct Names {
    map: HashMap<Vec<u8>, NameState>,
}

fn stricter(a: Option<Rc<Decided>>, b: Option<Rc<Decided>>) -> Option<Rc<Decided>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.decision.action > a.decision.action {
            b
        } else {
            a
        }),
        (a, None) => a,
        (None, b) => b,
    }
}

impl Names {
    fn set(&mut self, name: &[u8], batch: u64, decision: Option<Rc<Decided>>) -> bool {
        if !self.map.contains_key(name) && self.map.len() >= NAMED_STATEMENTS_MAX {
            return false;
        }
        let state = self.map.entry(name.to_vec()).or_default();
        state.pending.push((batch, decision));
        true
    }

    /// The decision in force for `name` as seen from batch `batch`, or None
    /// when sluice cannot account for the name.
    fn lookup(&self, name: &[u8], batch: u64) -> Option<Rc<Decided>> {
        let state = self.map.get(name)?;
        if let Some((_, latest)) = state.pending.iter().rev().find(|(b, _)| *b == batch) {
            return latest.clone();
        }
        // Earlier batches still unsettled: any of their outcomes may hold.
        // A close (None) may or may not have happened: it never loosens.
        let mut result = state.confirmed.clone();
        for (_, change) in state.pending.iter().filter(|(b, _)| *b < batch) {
            result = stricter(result, change.clone());
        }
        result
    }

    /// Settles batch `batch`: applied if the server reported no error,
    /// otherwise each touched name keeps the strictest possibility.
    fn settle(&mut self, batch: u64, had_error: bool) {
        self.map.retain(|_, state| {
            let changes: Vec<Option<Rc<Decided>>> = state
                .pending
                .iter()
                .filter(|(b, _)| *b <= batch)
                .map(|(_, d)| d.clone())
                .collect();
            state.pending.retain(|(b, _)| *b > batch);
            if !changes.is_empty() {
                if had_error {
                    for change in changes {
                        state.confirmed = stricter(state.confirmed.take(), change);
                    }
                } else {
                    state.confirmed = changes.into_iter().last().flatten();
                }
            }
            state.confirmed.is_some() || !state.pending.is_empty()
        });
    }

    fn clear_confirmed(&mut self) {
        self.map.retain(|_, state| {
            state.confirmed = None;
            !state.pending.is_empty()
        });
    }
}

/// SQL-level prepared statement names (`PREPARE`, and protocol statements
/// share the namespace) for classifying `EXECUTE name`. A name defined
/// twice is ambiguous (the second definition may have failed on the
/// server), so it resolves to nothing, which classifies as unknown.
#[derive(Default)]
struct Prepared {
    summaries: HashMap<String, Option<Summary>>,
}

impl Prepared {
    fn define(&mut self, name: &str, summary: Summary) {
        if let Some(existing) = self.summaries.get_mut(name) {
            if *existing != Some(summary) {
                *existing = None;
            }
        } else if self.summaries.len() < NAMED_STATEMENTS_MAX {
            self.summaries.insert(name.to_string(), Some(summary));
        }
    }
}

impl PreparedStatements for Prepared {
    fn lookup(&self, name: &str) -> Option<Summary> {
        self.summaries.get(name).copied().flatten()
    }
}

pub struct PolicySession {
    policy: Arc<CompiledPolicy>,
    agent: String,
    groups: Vec<String>,
    target: String,
    statements: RefCell<Names>,
    portals: RefCell<Names>,
    prepared: RefCell<Prepared>,
    /// Batches (Query, FunctionCall or Sync cycles) sent to the server.
    batches_sent: Cell<u64>,
    /// Batches whose ReadyForQuery has arrived.
    batches_settled: Cell<u64>,
    /// Whether extended-protocol messages were sent since the last Sync.
    extended_open: Cell<bool>,
    /// Extended-protocol messages of the batch being sent (since the last
    /// Query, FunctionCall or Sync) whose completion (ParseComplete,
    /// BindComplete, CloseComplete, RowDescription or NoData of a Describe,
    /// the end of an Execute) has not arrived yet. Completions count only
    /// once every earlier batch is settled: before that, they are earlier
    /// batches' answers.
    extended_unanswered: Cell<u64>,
    /// An ErrorResponse arrived since the last ReadyForQuery.
    error_seen: Cell<bool>,
    /// The server's client_encoding is one sluice cannot lex.
    unsafe_encoding: Cell<bool>,
    /// Whether an approval service runs; without one, `approve` refuses.
    approvals: bool,
    /// Time windows approvers granted in this session: statements of the
    /// class run without a new approval until the instant.
    windows: RefCell<Vec<(Option<Class>, Instant)>>,
}

impl PolicySession {
    pub fn new(policy: Arc<CompiledPolicy>, agent: &str, groups: &[String], target: &str) -> Self {
        PolicySession {
            policy,
            agent: agent.to_string(),
            groups: groups.to_vec(),
            target: target.to_string(),
            statements: RefCell::new(Names::default()),
            portals: RefCell::new(Names::default()),
            prepared: RefCell::new(Prepared::default()),
            batches_sent: Cell::new(0),
            batches_settled: Cell::new(0),
            extended_open: Cell::new(false),
            extended_unanswered: Cell::new(0),
            error_seen: Cell::new(false),
            unsafe_encoding: Cell::new(false),
            approvals: false,
            windows: RefCell::new(Vec::new()),
        }
    }

    /// Turns on holding for `approve` decisions (an approval service runs).
    pub fn with_approvals(mut self, enabled: bool) -> Self {
        self.approvals = enabled;
        self
    }

    /// An approver granted a window: statements of `class` run without a
    /// new approval in this session for `window`.
    pub fn grant_window(&self, class: Option<Class>, window: Duration) {
        let until = Instant::now() + window;
        let mut windows = self.windows.borrow_mut();
        windows.retain(|(c, end)| *c != class && *end > Instant::now());
        windows.push((class, until));
    }

    fn window_covers(&self, class: Option<Class>) -> bool {
        let now = Instant::now();
        self.windows
            .borrow()
            .iter()
            .any(|(c, end)| *c == class && *end > now)
    }

    fn classify(&self, sql: &[u8], standard_conforming_strings: bool) -> Vec<ClassifiedStatement> {
        let options = ClassifyOptions {
            lex: LexOptions {
                standard_conforming_strings,
            },
        };
        classify_bytes(sql, &options, &*self.prepared.borrow())
    }

    /// Classifies and decides `sql` under both lexing modes (the stricter
    /// wins); also returns the first statement's summary (a Parse holds
    /// exactly one statement) and the names `PREPARE` defines.
    fn decide_sql(&self, sql: &[u8]) -> (Decision, Option<Summary>, Vec<(String, Summary)>) {
        let on = self.classify(sql, true);
        let off = self.classify(sql, false);
        let decide = |statements: &[ClassifiedStatement]| {
            self.policy
                .decide(&self.agent, &self.groups, &self.target, statements)
        };
        let decision_on = decide(&on);
        let decision_off = decide(&off);
        let (mut decision, statements) = if decision_off.action > decision_on.action {
            (decision_off, off)
        } else {
            (decision_on, on)
        };
        if self.unsafe_encoding.get() {
            decision = self.unknown_decision();
        } else if switches_encoding(sql) {
            decision = Decision {
                action: Action::Block,
                message: Some(
                    "sluice does not allow changing client_encoding after connecting (it must be able to lex every statement as the server does)"
                        .into(),
                ),
                rule_id: Some("sluice.client_encoding".into()),
                ..decision
            };
        }
        let prepared = statements
            .iter()
            .filter_map(|s| s.prepared_name.clone().map(|n| (n, s.summary())))
            .collect();
        (decision, statements.first().map(|s| s.summary()), prepared)
    }

    fn unknown_decision(&self) -> Decision {
        self.policy
            .decide_class(&self.agent, &self.groups, &self.target, Class::Unknown)
    }

    /// Decides one message that will be forwarded (not one the refusal
    /// logic drops); `records` receives the ledger records of decisions.
    pub fn verdict(&self, message: &FrontendMessage<'_>, records: &mut Vec<RecordBody>) -> Verdict {
        let batch = self.batches_sent.get();
        match message {
            FrontendMessage::Query { sql } => {
                if self.extended_open.get() && !self.extended_settled() {
                    // The server silently skips a Query sent inside a
                    // failed extended batch, which would make batches
                    // uncountable. A batch whose every message has been
                    // answered without an error can no longer fail: the
                    // server runs the Query, and its ReadyForQuery ends
                    // the batch. asyncpg does exactly this (Parse,
                    // Describe and Flush to learn a table's columns, then
                    // COPY FROM STDIN as a Query).
                    return Verdict::Refuse(Refusal {
                        sqlstate: sqlstate::PROTOCOL_VIOLATION,
                        message: "sluice does not accept a Query message inside an extended-protocol batch whose messages have not all been answered; send Sync first, or wait for the answers".into(),
                        hint: None,
                    });
                }
                let (decision, _, prepared) = self.decide_sql(sql);
                records.push(decision_record(sql, &decision));
                let verdict = self.enforce(&decision, sql, None);
                if matches!(verdict, Verdict::Forward) {
                    let mut names = self.prepared.borrow_mut();
                    for (name, summary) in prepared {
                        names.define(&name, summary);
                    }
                }
                verdict
            }
            FrontendMessage::Parse { statement, sql, .. } => {
                self.extended_open.set(true);
                let (decision, summary, _) = self.decide_sql(sql);
                records.push(decision_record(sql, &decision));
                let decided = Decided {
                    decision,
                    sql: Rc::from(*sql),
                    bind: None,
                    approved: Rc::default(),
                };
                if !self
                    .statements
                    .borrow_mut()
                    .set(statement, batch, Some(Rc::new(decided)))
                {
                    return Verdict::Refuse(limit_refusal("prepared statements"));
                }
                if let (Ok(name), Some(summary)) = (std::str::from_utf8(statement), summary) {
                    if !name.is_empty() {
                        self.prepared.borrow_mut().define(name, summary);
                    }
                }
                // Parsing runs nothing: the decision is enforced at Execute.
                Verdict::Forward
            }
            FrontendMessage::Bind {
                portal,
                statement,
                parameter_formats,
                parameters,
                ..
            } => {
                self.extended_open.set(true);
                let parsed = self.statements.borrow().lookup(statement, batch);
                let decided = match parsed {
                    Some(parsed) => Decided {
                        decision: parsed.decision.clone(),
                        sql: parsed.sql.clone(),
                        bind: Some((
                            parameter_formats.as_bytes().to_vec(),
                            parameters.as_bytes().to_vec(),
                        )),
                        approved: Rc::default(),
                    },
                    None => Decided {
                        decision: self.unknown_decision(),
                        sql: Rc::from(&b"<bind of an unknown statement>"[..]),
                        bind: None,
                        approved: Rc::default(),
                    },
                };
                if !self
                    .portals
                    .borrow_mut()
                    .set(portal, batch, Some(Rc::new(decided)))
                {
                    return Verdict::Refuse(limit_refusal("portals"));
                }
                Verdict::Forward
            }
            FrontendMessage::Execute { portal, .. } => {
                self.extended_open.set(true);
                let decided = self.portals.borrow().lookup(portal, batch);
                match decided {
                    // This portal's execution was approved; an Execute
                    // continuing it runs the same approved statement.
                    Some(decided)
                        if decided.approved.get() && decided.decision.action == Action::Approve =>
                    {
                        Verdict::Forward
                    }
                    Some(decided) => match self.enforce(
                        &decided.decision,
                        &decided.sql,
                        decided.bind.as_ref().map(|(f, v)| (&f[..], &v[..])),
                    ) {
                        Verdict::Hold(mut request) => {
                            request.portal_approved = Some(decided.approved.clone());
                            Verdict::Hold(request)
                        }
                        other => other,
                    },
                    // A portal sluice cannot account for: fail closed.
                    None => {
                        let decision = self.unknown_decision();
                        let text = b"<execute of an unknown portal>";
                        records.push(decision_record(text, &decision));
                        self.enforce(&decision, text, None)
                    }
                }
            }
            FrontendMessage::Close { kind, name } => {
                self.extended_open.set(true);
                match kind {
                    TargetKind::Statement => {
                        self.statements.borrow_mut().set(name, batch, None);
                    }
                    TargetKind::Portal => {
                        self.portals.borrow_mut().set(name, batch, None);
                    }
                }
                Verdict::Forward
            }
            FrontendMessage::Describe { .. } => {
                self.extended_open.set(true);
                Verdict::Forward
            }
            // A Flush cannot fail, so it cannot put the server into the
            // skip-to-Sync state: libpq's pipeline mode sends one after its
            // Sync, and a Query may follow.
            FrontendMessage::Flush => Verdict::Forward,
            // A fast-path function call names a function by OID: sluice
            // cannot tell what it does, so it is decided as unknown SQL.
            FrontendMessage::FunctionCall { .. } => {
                let decision = self.unknown_decision();
                records.push(decision_record(b"<function call>", &decision));
                self.enforce(&decision, b"<function call>", None)
            }
            _ => Verdict::Forward,
        }
    }

    /// Counts what was actually sent upstream: a Query, FunctionCall or
    /// Sync (the original or its probe replacement) starts a new batch.
    pub fn sent(&self, tag: u8) {
        match tag {
            b'Q' | b'F' | b'S' => {
                self.batches_sent.set(self.batches_sent.get() + 1);
                self.extended_unanswered.set(0);
                // A Query is only accepted inside an extended batch that
                // can no longer fail, and then it ends that batch too.
                if tag != b'F' {
                    self.extended_open.set(false);
                }
            }
            b'P' | b'B' | b'D' | b'E' | b'C' => {
                self.extended_unanswered
                    .set(self.extended_unanswered.get() + 1);
            }
            _ => {}
        }
    }

    /// Whether every earlier batch is settled and every extended-protocol
    /// message of the batch being sent has been answered, without an
    /// error: that batch cannot fail any more.
    fn extended_settled(&self) -> bool {
        self.batches_settled.get() == self.batches_sent.get()
            && self.extended_unanswered.get() == 0
            && !self.error_seen.get()
    }

    /// Follows the server's responses: errors, ReadyForQuery, and changes
    /// of client_encoding.
    pub fn observe_backend(&self, tag: u8, body: &[u8]) {
        match tag {
            b'E' => self.error_seen.set(true),
            // The completion of one extended-protocol message of the batch
            // being sent, once every earlier batch is settled (the server
            // answers in order): ParseComplete, BindComplete,
            // CloseComplete, a Describe's RowDescription or NoData (its
            // ParameterDescription comes first and is not counted), and
            // the end of an Execute.
            b'1' | b'2' | b'3' | b'T' | b'n' | b'C' | b's' | b'I'
                if self.batches_settled.get() == self.batches_sent.get() =>
            {
                let unanswered = self.extended_unanswered.get();
                self.extended_unanswered.set(unanswered.saturating_sub(1));
            }
            b'Z' => {
                let settled = self.batches_settled.get();
                let had_error = self.error_seen.replace(false);
                // ReadyForQuery n settles batch n (numbered from 0).
                self.statements.borrow_mut().settle(settled, had_error);
                self.portals.borrow_mut().settle(settled, had_error);
                self.batches_settled.set(settled + 1);
                // Outside a transaction block every protocol portal is gone.
                if body.first() == Some(&b'I') {
                    self.portals.borrow_mut().clear_confirmed();
                }
            }
            b'S' => {
                let mut parts = body.split(|&b| b == 0);
                if parts.next() == Some(b"client_encoding") {
                    let value = parts.next().unwrap_or_default();
                    let safe = std::str::from_utf8(value).is_ok_and(client_encoding_is_safe);
                    self.unsafe_encoding.set(!safe);
                }
            }
            _ => {}
        }
    }

    /// The verdict for a decision on `sql` (with Bind formats and values
    /// for an Execute).
    fn enforce(&self, decision: &Decision, sql: &[u8], bind: Option<(&[u8], &[u8])>) -> Verdict {
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
            Action::Approve if self.approvals => {
                if self.window_covers(decision.class) {
                    return Verdict::Forward;
                }
                Verdict::Hold(hold_request(decision, sql, bind))
            }
            // No approval service is configured: fail closed.
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

/// Whether a statement could change the client encoding: `SET
/// client_encoding`, `SET NAMES`, `set_config('client_encoding', ...)`, or
/// a Unicode-escaped identifier in a SET (which could spell either).
/// Deliberately broad: sluice refuses such statements outright.
fn switches_encoding(sql: &[u8]) -> bool {
    let lower: Vec<u8> = sql.iter().map(u8::to_ascii_lowercase).collect();
    let words: Vec<&[u8]> = lower
        .split(|b| !(b.is_ascii_alphanumeric() || *b == b'_' || *b == b'&'))
        .filter(|w| !w.is_empty())
        .collect();
    let contains = |needle: &[u8]| lower.windows(needle.len()).any(|w| w == needle);
    let sets = words.iter().any(|w| {
        matches!(
            *w,
            b"set" | b"reset" | b"set_config" | b"pg_catalog.set_config"
        )
    }) || contains(b"set_config");
    sets && (contains(b"client_encoding") || contains(b"u&"))
        || words.windows(2).any(|w| w[0] == b"set" && w[1] == b"names")
}

fn hold_request(decision: &Decision, sql: &[u8], bind: Option<(&[u8], &[u8])>) -> HoldRequest {
    let mut hash = Sha256::new();
    let mut statement = String::from_utf8_lossy(sql).into_owned();
    match bind {
        None => {
            hash.update(b"query\0");
            hash.update(sql);
        }
        Some((formats, values)) => {
            // Length-prefixed so no two (text, formats, values) collide.
            hash.update(b"execute\0");
            for part in [sql, formats, values] {
                hash.update((part.len() as u64).to_be_bytes());
                hash.update(part);
            }
            if !values.is_empty() {
                statement.push_str(&format!(
                    "\n-- bind parameters (wire format): {}",
                    describe_parameters(values)
                ));
            }
        }
    }
    HoldRequest {
        statement,
        statement_sha256: hash.finalize().iter().map(|b| format!("{b:02x}")).collect(),
        rule: rule_name(decision),
        approver_group: decision.approver_group.as_deref().map(str::to_string),
        class: decision.class,
        // Every approve decision carries a timeout; without one the
        // registry's cap (approvals.wait_ms_max) applies.
        timeout_ms: decision.timeout_ms.unwrap_or(u64::MAX),
        portal_approved: None,
    }
}

/// Bind values for approvers: text values quoted, NULLs and binary values
/// described (binary by length; the hash covers their bytes).
fn describe_parameters(values: &[u8]) -> String {
    let mut parts = Vec::new();
    let mut at = 0;
    while at + 4 <= values.len() {
        let length =
            i32::from_be_bytes([values[at], values[at + 1], values[at + 2], values[at + 3]]);
        at += 4;
        let number = parts.len() + 1;
        if length < 0 {
            parts.push(format!("${number}=NULL"));
            continue;
        }
        let end = (at + length as usize).min(values.len());
        let value = &values[at..end];
        at = end;
        match std::str::from_utf8(value) {
            Ok(text) if !text.chars().any(char::is_control) => {
                parts.push(format!("${number}='{}'", text.replace('\'', "''")))
            }
            _ => parts.push(format!("${number}=<{} bytes>", value.len())),
        }
    }
    parts.join(", ")
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

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(action: Action) -> Option<Rc<Decided>> {
        Some(Rc::new(Decided {
            sql: Rc::from(&b""[..]),
            bind: None,
            approved: Rc::default(),
            decision: Decision {
                action,
                rule_id: None,
                fallback: None,
                message: None,
                approver_group: None,
                timeout_ms: None,
                statement_index: None,
                class: None,
            },
        }))
    }

    fn action(d: Option<Rc<Decided>>) -> Option<Action> {
        d.map(|d| d.decision.action)
    }

    #[test]
    fn a_batch_without_error_applies_its_changes() {
        let mut names = Names::default();
        names.set(b"", 0, decision(Action::Block));
        names.settle(0, false);
        names.set(b"", 1, decision(Action::Allow));
        assert_eq!(
            action(names.lookup(b"", 1)),
            Some(Action::Allow),
            "same batch: latest"
        );
        names.settle(1, false);
        assert_eq!(action(names.lookup(b"", 2)), Some(Action::Allow));
    }

    #[test]
    fn a_batch_with_an_error_keeps_the_strictest() {
        let mut names = Names::default();
        names.set(b"s1", 0, decision(Action::Block));
        names.settle(0, false);
        // Re-Parse of s1 that the server rejected ("already exists").
        names.set(b"s1", 1, decision(Action::Allow));
        names.settle(1, true);
        assert_eq!(action(names.lookup(b"s1", 2)), Some(Action::Block));
        // A Close that the server skipped after an error changes nothing.
        names.set(b"s1", 2, None);
        names.settle(2, true);
        assert_eq!(action(names.lookup(b"s1", 3)), Some(Action::Block));
    }

    #[test]
    fn unsettled_batches_count_with_their_strictest_outcome() {
        let mut names = Names::default();
        names.set(b"", 0, decision(Action::Block));
        names.settle(0, false);
        // Batch 1 replaces the statement but its outcome is unknown when
        // batch 2 is being decided.
        names.set(b"", 1, decision(Action::Allow));
        assert_eq!(action(names.lookup(b"", 2)), Some(Action::Block));
        assert_eq!(action(names.lookup(b"unknown", 2)), None);
    }

    fn demo_session() -> PolicySession {
        #[derive(serde::Deserialize)]
        struct File {
            policy: crate::policy::PolicyConfig,
        }
        let file: File = toml::from_str(include_str!("../../deploy/policy.demo.toml")).unwrap();
        let none: &[&str] = &[];
        let policy = file.policy.validate(none, none, none).unwrap();
        PolicySession::new(Arc::new(policy), "agent", &[], "app")
    }

    /// Sends one frontend message through the session as the proxy does:
    /// verdict, then `sent` for what was forwarded.
    fn send(session: &PolicySession, message: &FrontendMessage<'_>, tag: u8) -> Verdict {
        let verdict = session.verdict(message, &mut Vec::new());
        session.sent(tag);
        verdict
    }

    fn is_protocol_violation(verdict: &Verdict) -> bool {
        matches!(verdict, Verdict::Refuse(r) if r.sqlstate == sqlstate::PROTOCOL_VIOLATION)
    }

    /// asyncpg's copy_records_to_table: Parse, Describe and Flush (no
    /// Sync), then, once answered, COPY FROM STDIN as a Query. Accepted
    /// only when every extended message has been answered without an
    /// error; the Query's ReadyForQuery then ends the batch.
    #[test]
    fn a_query_after_a_fully_answered_extended_batch_is_accepted() {
        use crate::protocol::pg::{build, frames, parse_frontend};
        let session = demo_session();
        let mut wire = bytes::BytesMut::new();
        build::parse(
            &mut wire,
            "__asyncpg_stmt_1__",
            "SELECT id FROM items_in LIMIT 0",
            &[],
        );
        build::describe(&mut wire, TargetKind::Statement, "__asyncpg_stmt_1__");
        build::query(&mut wire, "COPY items_in (id) FROM STDIN (FORMAT binary)");
        let messages: Vec<FrontendMessage<'_>> = frames(&wire, usize::MAX)
            .map(|f| parse_frontend(f.unwrap()).unwrap())
            .collect();
        let [parse, describe, copy] = &messages[..] else {
            panic!("three messages");
        };
        assert!(matches!(send(&session, parse, b'P'), Verdict::Forward));
        assert!(matches!(send(&session, describe, b'D'), Verdict::Forward));
        send(&session, &FrontendMessage::Flush, b'H');
        // Not answered yet: the batch could still fail, and the server
        // would then skip the Query.
        assert!(is_protocol_violation(
            &session.verdict(copy, &mut Vec::new())
        ));
        session.observe_backend(b'1', b"");
        session.observe_backend(b't', b"");
        assert!(is_protocol_violation(
            &session.verdict(copy, &mut Vec::new())
        ));
        session.observe_backend(b'T', b"");
        assert!(matches!(send(&session, copy, b'Q'), Verdict::Forward));
        session.observe_backend(b'G', b"");
        session.observe_backend(b'C', b"");
        session.observe_backend(b'Z', b"I");
        // The Query ended the batch: the next one starts clean, and the
        // statement parsed before it is settled as allowed.
        assert_eq!(session.batches_settled.get(), session.batches_sent.get());
        assert!(!session.extended_open.get());

        // Pipelined: a batch ended by Sync, then a Parse without one. The
        // first batch's answers and ReadyForQuery do not answer the Parse.
        send(&session, parse, b'P');
        send(&session, &FrontendMessage::Sync, b'S');
        send(&session, parse, b'P');
        send(&session, &FrontendMessage::Flush, b'H');
        session.observe_backend(b'1', b"");
        assert!(is_protocol_violation(
            &session.verdict(copy, &mut Vec::new())
        ));
        session.observe_backend(b'Z', b"I");
        assert!(is_protocol_violation(
            &session.verdict(copy, &mut Vec::new())
        ));
        session.observe_backend(b'1', b"");
        assert!(matches!(send(&session, copy, b'Q'), Verdict::Forward));
        session.observe_backend(b'Z', b"I");

        // An error in the batch: the Query is refused until a Sync.
        assert!(matches!(send(&session, parse, b'P'), Verdict::Forward));
        send(&session, &FrontendMessage::Flush, b'H');
        session.observe_backend(b'E', b"");
        assert!(is_protocol_violation(
            &session.verdict(copy, &mut Vec::new())
        ));
        send(&session, &FrontendMessage::Sync, b'S');
        session.observe_backend(b'Z', b"I");
        assert!(matches!(send(&session, copy, b'Q'), Verdict::Forward));
    }

    #[test]
    fn encodings() {
        assert!(client_encoding_is_safe("UTF8"));
        assert!(client_encoding_is_safe("latin1"));
        assert!(!client_encoding_is_safe("SJIS"));
        assert!(!client_encoding_is_safe("Shift_JIS"));
        assert!(!client_encoding_is_safe("gb18030"));
        assert!(switches_encoding(b"SET client_encoding = 'SJIS'"));
        assert!(switches_encoding(b"set  NAMES 'big5'"));
        assert!(switches_encoding(
            b"select set_config('CLIENT_ENCODING', 'gbk', false)"
        ));
        assert!(switches_encoding(
            b"SET U&\"\\0063lient_encoding\" TO 'sjis'"
        ));
        assert!(!switches_encoding(b"SELECT names FROM people"));
        assert!(!switches_encoding(b"SHOW client_encoding"));
        assert!(!switches_encoding(
            b"SELECT current_setting('client_encoding')"
        ));
    }
}
