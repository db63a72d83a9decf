//! Just-in-time human approval of held statements.
//!
//! A statement whose policy decision is `approve` is held by its session
//! (it is not forwarded) and submitted here. The registry is the one place
//! where workers and the admin listener meet: a session on any worker
//! submits a request and awaits its [`Ticket`]; an approver's decision
//! arrives on the admin listener's thread, is written into the ticket's
//! slot and wakes the session's task through monoio's cross-thread waker
//! (the `sync` feature). A held session therefore costs no CPU while it
//! waits and never blocks its worker: it is just a task that is not ready.
//!
//! The registry is a `std::sync::Mutex` around a map: it is touched when an
//! approval is created, listed or resolved, never per statement on the
//! allow path.
//!
//! Outcomes, named once and used in logs, the ledger and metrics:
//! `approved`, `denied`, `timeout` (the wait ended), `cancelled` (the agent
//! sent a CancelRequest) and `withdrawn` (the agent left or the gateway is
//! shutting down).

pub mod config;
pub mod hold;
pub mod webhook;

use std::{
    collections::{HashMap, VecDeque},
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll, Waker},
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use serde::Serialize;

pub use config::{AdminConfig, Approver};

use crate::metrics::ApprovalResult;

/// Decided approvals kept for `GET /v1/approvals/{id}` and for answering a
/// second decision with 409; older ones are forgotten.
pub const DECIDED_REMEMBERED_MAX: usize = 1024;
/// Bound on a reason an approver gives (longer ones are refused with 400).
pub const REASON_BYTES_MAX: usize = 1024;

/// What a session submits when it holds a statement.
#[derive(Debug, Clone)]
pub struct Request {
    pub agent: String,
    pub target: String,
    /// The ledger session id (hex), so approvers can find the recording.
    pub session: String,
    /// The agent-visible process id of the session (for cancels).
    pub process_id: u32,
    pub worker: usize,
    /// The full statement text as the agent sent it (lossy UTF-8).
    pub statement: String,
    /// SHA-256 (hex) of exactly what will run if approved.
    pub statement_sha256: String,
    pub rule: String,
    pub approver_group: Option<String>,
    pub class: Option<String>,
    pub timeout_ms: u64,
}

/// How a held statement ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Approved {
        approver: String,
        reason: Option<String>,
        /// The approver also allowed statements of the same class in this
        /// session for this long.
        window_ms: Option<u64>,
    },
    Denied {
        approver: String,
        reason: Option<String>,
    },
    TimedOut,
    Cancelled,
    Withdrawn {
        why: String,
    },
}

impl Outcome {
    pub fn result(&self) -> ApprovalResult {
        match self {
            Outcome::Approved { .. } => ApprovalResult::Approved,
            Outcome::Denied { .. } => ApprovalResult::Denied,
            Outcome::TimedOut => ApprovalResult::TimedOut,
            Outcome::Cancelled => ApprovalResult::Cancelled,
            Outcome::Withdrawn { .. } => ApprovalResult::Withdrawn,
        }
    }

    pub fn approver(&self) -> Option<&str> {
        match self {
            Outcome::Approved { approver, .. } | Outcome::Denied { approver, .. } => Some(approver),
            _ => None,
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            Outcome::Approved { reason, .. } | Outcome::Denied { reason, .. } => reason.as_deref(),
            Outcome::Withdrawn { why } => Some(why),
            _ => None,
        }
    }
}

/// An approver's decision as the admin API receives it.
#[derive(Debug, Clone)]
pub enum Verdict {
    Approve {
        reason: Option<String>,
        window_ms: Option<u64>,
    },
    Deny {
        reason: Option<String>,
    },
}

/// A request as approvers see it.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalView {
    pub id: String,
    /// `pending`, or the outcome.
    pub status: String,
    pub agent: String,
    pub target: String,
    pub session: String,
    pub statement: String,
    pub statement_sha256: String,
    pub rule: String,
    pub approver_group: Option<String>,
    pub class: Option<String>,
    pub requested_at_unix_ms: u64,
    pub age_ms: u64,
    pub timeout_ms: u64,
    pub decided_by: Option<String>,
    pub reason: Option<String>,
    pub window_ms: Option<u64>,
}

#[derive(Default)]
struct SlotState {
    outcome: Option<Outcome>,
    waker: Option<Waker>,
}

/// Where the decision for one request is delivered.
#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
}

impl Slot {
    fn fill(&self, outcome: Outcome) {
        let waker = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if state.outcome.is_some() {
                return;
            }
            state.outcome = Some(outcome);
            state.waker.take()
        };
        // Woken outside the lock: the waker may run scheduling code.
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The session's handle on its request: a future of the outcome.
pub struct Ticket {
    pub id: String,
    slot: Arc<Slot>,
}

impl Future for Ticket {
    type Output = Outcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let mut state = self.slot.state.lock().unwrap_or_else(|e| e.into_inner());
        match &state.outcome {
            Some(outcome) => Poll::Ready(outcome.clone()),
            None => {
                let replace = state
                    .waker
                    .as_ref()
                    .is_none_or(|w| !w.will_wake(cx.waker()));
                if replace {
                    state.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

struct Pending {
    request: Request,
    requested: Instant,
    requested_at_unix_ms: u64,
    slot: Arc<Slot>,
}

struct Decided {
    view: ApprovalView,
}

#[derive(Default)]
struct Inner {
    pending: HashMap<String, Pending>,
    decided: VecDeque<Decided>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubmitError {
    #[error("{max} statements are already waiting for approval (approvals.pending_max)")]
    PendingLimitReached { max: usize },
}

#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error("no approval with id {0:?}")]
    NotFound(String),
    #[error("approval {} was already decided: {}", .0.id, .0.status)]
    AlreadyDecided(Box<ApprovalView>),
    #[error("approver {approver:?} is not in group {group:?}, which this approval requires")]
    NotInApproverGroup { approver: String, group: String },
    #[error("the reason is longer than {REASON_BYTES_MAX} bytes")]
    ReasonTooLong,
    #[error("window_ms {0} exceeds the longest allowed window ({1} ms)")]
    WindowTooLong(u64, u64),
}

/// The registry shared by every worker and the admin listener.
pub struct ApprovalRegistry {
    pending_max: usize,
    wait_ms_max: u64,
    inner: Mutex<Inner>,
    webhook: Option<webhook::WebhookSender>,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn new_id() -> String {
    let mut bytes = [0u8; 6];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl ApprovalRegistry {
    pub fn new(
        pending_max: usize,
        wait_ms_max: u64,
        webhook: Option<webhook::WebhookSender>,
    ) -> Self {
        ApprovalRegistry {
            pending_max,
            wait_ms_max,
            inner: Mutex::new(Inner::default()),
            webhook,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long a request may wait: its rule's timeout, capped by
    /// `approvals.wait_ms_max`.
    pub fn wait_ms(&self, rule_timeout_ms: u64) -> u64 {
        rule_timeout_ms.min(self.wait_ms_max)
    }

    /// The longest time window an approver may grant.
    pub fn window_ms_max(&self) -> u64 {
        self.wait_ms_max
    }

    /// Registers a held statement; the ticket resolves with its outcome.
    pub fn submit(&self, request: Request) -> Result<Ticket, SubmitError> {
        let slot = Arc::new(Slot::default());
        let (id, view) = {
            let mut inner = self.lock();
            if inner.pending.len() >= self.pending_max {
                return Err(SubmitError::PendingLimitReached {
                    max: self.pending_max,
                });
            }
            let mut id = new_id();
            while inner.pending.contains_key(&id) || inner.decided.iter().any(|d| d.view.id == id) {
                id = new_id();
            }
            let pending = Pending {
                request,
                requested: Instant::now(),
                requested_at_unix_ms: unix_ms(),
                slot: slot.clone(),
            };
            let view = pending_view(&id, &pending);
            inner.pending.insert(id.clone(), pending);
            (id, view)
        };
        if let Some(webhook) = &self.webhook {
            webhook.notify(&view);
        }
        Ok(Ticket { id, slot })
    }

    pub fn pending_count(&self) -> usize {
        self.lock().pending.len()
    }

    /// Pending requests, oldest first.
    pub fn list(&self) -> Vec<ApprovalView> {
        let inner = self.lock();
        let mut views: Vec<ApprovalView> = inner
            .pending
            .iter()
            .map(|(id, p)| pending_view(id, p))
            .collect();
        views.sort_by_key(|v| std::cmp::Reverse(v.age_ms));
        views
    }

    /// A pending or recently decided request.
    pub fn get(&self, id: &str) -> Option<ApprovalView> {
        let inner = self.lock();
        if let Some(p) = inner.pending.get(id) {
            return Some(pending_view(id, p));
        }
        inner
            .decided
            .iter()
            .find(|d| d.view.id == id)
            .map(|d| d.view.clone())
    }

    /// An approver's decision on a pending request.
    pub fn decide(
        &self,
        id: &str,
        approver: &Approver,
        verdict: Verdict,
    ) -> Result<ApprovalView, DecideError> {
        let reason = match &verdict {
            Verdict::Approve { reason, .. } | Verdict::Deny { reason } => reason.clone(),
        };
        if reason.as_ref().is_some_and(|r| r.len() > REASON_BYTES_MAX) {
            return Err(DecideError::ReasonTooLong);
        }
        if let Verdict::Approve {
            window_ms: Some(window),
            ..
        } = verdict
        {
            if window > self.wait_ms_max {
                return Err(DecideError::WindowTooLong(window, self.wait_ms_max));
            }
        }
        let mut inner = self.lock();
        let Some(pending) = inner.pending.get(id) else {
            return match inner.decided.iter().find(|d| d.view.id == id) {
                Some(decided) => Err(DecideError::AlreadyDecided(Box::new(decided.view.clone()))),
                None => Err(DecideError::NotFound(id.to_string())),
            };
        };
        if !approver.may_approve(pending.request.approver_group.as_deref()) {
            return Err(DecideError::NotInApproverGroup {
                approver: approver.name.clone(),
                group: pending.request.approver_group.clone().unwrap_or_default(),
            });
        }
        let outcome = match verdict {
            Verdict::Approve { reason, window_ms } => Outcome::Approved {
                approver: approver.name.clone(),
                reason,
                window_ms,
            },
            Verdict::Deny { reason } => Outcome::Denied {
                approver: approver.name.clone(),
                reason,
            },
        };
        let pending = inner.pending.remove(id).expect("checked above");
        let view = Self::retire(&mut inner, id, &pending, &outcome);
        drop(inner);
        pending.slot.fill(outcome);
        Ok(view)
    }

    fn retire(inner: &mut Inner, id: &str, pending: &Pending, outcome: &Outcome) -> ApprovalView {
        let mut view = pending_view(id, pending);
        view.status = outcome.result().as_str().to_string();
        view.decided_by = outcome.approver().map(str::to_string);
        view.reason = outcome.reason().map(str::to_string);
        if let Outcome::Approved { window_ms, .. } = outcome {
            view.window_ms = *window_ms;
        }
        if inner.decided.len() >= DECIDED_REMEMBERED_MAX {
            inner.decided.pop_front();
        }
        inner.decided.push_back(Decided { view: view.clone() });
        view
    }

    /// Ends a request from the session's side (timeout, cancel, the agent
    /// left). Returns the final outcome, which is an approver's decision if
    /// one arrived first: the session must honour that one.
    pub fn withdraw(&self, ticket: &Ticket, outcome: Outcome) -> Outcome {
        let mut inner = self.lock();
        if let Some(pending) = inner.pending.remove(&ticket.id) {
            Self::retire(&mut inner, &ticket.id, &pending, &outcome);
            drop(inner);
            pending.slot.fill(outcome.clone());
        } else {
            drop(inner);
        }
        let state = ticket.slot.state.lock().unwrap_or_else(|e| e.into_inner());
        state.outcome.clone().unwrap_or(outcome)
    }

    /// A CancelRequest for session `process_id`: cancels its pending
    /// request, if it has one. Returns whether it had.
    pub fn cancel_process(&self, process_id: u32) -> bool {
        let mut inner = self.lock();
        let Some(id) = inner
            .pending
            .iter()
            .find(|(_, p)| p.request.process_id == process_id)
            .map(|(id, _)| id.clone())
        else {
            return false;
        };
        let pending = inner.pending.remove(&id).expect("found above");
        Self::retire(&mut inner, &id, &pending, &Outcome::Cancelled);
        drop(inner);
        pending.slot.fill(Outcome::Cancelled);
        true
    }
}

fn pending_view(id: &str, pending: &Pending) -> ApprovalView {
    let request = &pending.request;
    ApprovalView {
        id: id.to_string(),
        status: "pending".into(),
        agent: request.agent.clone(),
        target: request.target.clone(),
        session: request.session.clone(),
        statement: request.statement.clone(),
        statement_sha256: request.statement_sha256.clone(),
        rule: request.rule.clone(),
        approver_group: request.approver_group.clone(),
        class: request.class.clone(),
        requested_at_unix_ms: pending.requested_at_unix_ms,
        age_ms: pending.requested.elapsed().as_millis() as u64,
        timeout_ms: request.timeout_ms,
        decided_by: None,
        reason: None,
        window_ms: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(process_id: u32, group: Option<&str>) -> Request {
        Request {
            agent: "bot".into(),
            target: "app".into(),
            session: "00".into(),
            process_id,
            worker: 0,
            statement: "DELETE FROM t".into(),
            statement_sha256: "ab".into(),
            rule: "r".into(),
            approver_group: group.map(str::to_string),
            class: Some("delete_no_where".into()),
            timeout_ms: 1000,
        }
    }

    fn approver(name: &str, groups: &[&str]) -> Approver {
        Approver {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            token: crate::auth::token::hash_token("x", 4096),
        }
    }

    fn ready(ticket: &mut Ticket) -> Option<Outcome> {
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        match Pin::new(ticket).poll(&mut cx) {
            Poll::Ready(o) => Some(o),
            Poll::Pending => None,
        }
    }

    #[test]
    fn approve_resolves_once_and_a_second_decision_conflicts() {
        let registry = ApprovalRegistry::new(4, 60_000, None);
        let mut ticket = registry.submit(request(1, Some("dba"))).unwrap();
        assert!(ready(&mut ticket).is_none());
        assert_eq!(registry.list().len(), 1);
        let outsider = approver("eve", &["ops"]);
        assert!(matches!(
            registry.decide(&ticket.id, &outsider, Verdict::Deny { reason: None }),
            Err(DecideError::NotInApproverGroup { .. })
        ));
        let dba = approver("alice", &["dba"]);
        let view = registry
            .decide(
                &ticket.id,
                &dba,
                Verdict::Approve {
                    reason: Some("ok".into()),
                    window_ms: None,
                },
            )
            .unwrap();
        assert_eq!(view.status, "approved");
        assert!(matches!(
            ready(&mut ticket),
            Some(Outcome::Approved { ref approver, .. }) if approver == "alice"
        ));
        assert!(matches!(
            registry.decide(&ticket.id, &dba, Verdict::Deny { reason: None }),
            Err(DecideError::AlreadyDecided(_))
        ));
        assert!(matches!(
            registry.decide("nope", &dba, Verdict::Deny { reason: None }),
            Err(DecideError::NotFound(_))
        ));
        assert_eq!(registry.get(&ticket.id).unwrap().status, "approved");
        assert_eq!(registry.pending_count(), 0);
    }

    #[test]
    fn withdraw_loses_to_an_earlier_decision() {
        let registry = ApprovalRegistry::new(4, 60_000, None);
        let ticket = registry.submit(request(1, None)).unwrap();
        registry
            .decide(
                &ticket.id,
                &approver("a", &[]),
                Verdict::Deny { reason: None },
            )
            .unwrap();
        let final_outcome = registry.withdraw(&ticket, Outcome::TimedOut);
        assert!(matches!(final_outcome, Outcome::Denied { .. }));
        let other = registry.submit(request(2, None)).unwrap();
        assert_eq!(
            registry.withdraw(&other, Outcome::TimedOut),
            Outcome::TimedOut
        );
    }

    #[test]
    fn pending_is_bounded_and_cancel_finds_the_session() {
        let registry = ApprovalRegistry::new(2, 60_000, None);
        let mut a = registry.submit(request(7, None)).unwrap();
        let _b = registry.submit(request(8, None)).unwrap();
        assert_eq!(
            registry.submit(request(9, None)).err(),
            Some(SubmitError::PendingLimitReached { max: 2 })
        );
        assert!(registry.cancel_process(7));
        assert!(!registry.cancel_process(7));
        assert_eq!(ready(&mut a), Some(Outcome::Cancelled));
        assert!(registry.submit(request(9, None)).is_ok());
    }

    #[test]
    fn a_decision_wakes_a_waiter_on_another_thread() {
        let registry = Arc::new(ApprovalRegistry::new(4, 60_000, None));
        let ticket = registry.submit(request(1, None)).unwrap();
        let id = ticket.id.clone();
        let deciding = registry.clone();
        let decider = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            deciding
                .decide(
                    &id,
                    &approver("a", &[]),
                    Verdict::Deny {
                        reason: Some("no".into()),
                    },
                )
                .unwrap();
        });
        let mut runtime = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        let outcome = runtime.block_on(ticket);
        decider.join().unwrap();
        assert!(matches!(outcome, Outcome::Denied { reason: Some(ref r), .. } if r == "no"));
    }
}
