//! The session's side of a hold: what the agent is told, how the wait ends,
//! and what each outcome becomes on the wire and in the ledger. The session
//! loop (`session::pg`) strings these together; everything here is small
//! and testable without a network.

use std::{
    os::fd::RawFd,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::BytesMut;
use sluice_ledger::RecordBody;

use super::{ApprovalRegistry, Outcome, Request, Ticket};
use crate::{
    protocol::pg::{build, sqlstate},
    session::{policy::HoldRequest, refusal::Refusal},
};

/// How often a waiting session checks that its agent is still connected.
/// The wait itself is a timer and a waker: no CPU is used in between.
pub const PEER_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// What a session needs to hold statements.
pub struct HoldContext {
    pub registry: Arc<ApprovalRegistry>,
    pub agent: String,
    pub target: String,
    /// The ledger session id (hex).
    pub session: String,
    pub process_id: u32,
    pub worker: usize,
}

impl HoldContext {
    /// Registers the held statement; a full registry refuses it at once.
    pub fn submit(&self, held: &HoldRequest) -> Result<(Ticket, u64), Refusal> {
        let wait_ms = self.registry.wait_ms(held.timeout_ms);
        let request = Request {
            agent: self.agent.clone(),
            target: self.target.clone(),
            session: self.session.clone(),
            process_id: self.process_id,
            worker: self.worker,
            statement: held.statement.clone(),
            statement_sha256: held.statement_sha256.clone(),
            rule: held.rule.clone(),
            approver_group: held.approver_group.clone(),
            class: held.class.map(|c| c.name().to_string()),
            timeout_ms: wait_ms,
        };
        match self.registry.submit(request) {
            Ok(ticket) => Ok((ticket, wait_ms)),
            Err(e) => Err(Refusal {
                sqlstate: sqlstate::CONFIGURATION_LIMIT_EXCEEDED,
                message: format!(
                    "this statement needs a human approval (rule {}), but {e}; it was not run",
                    held.rule
                ),
                hint: Some("retry later".into()),
            }),
        }
    }
}

/// The NoticeResponse that tells the agent its statement is held.
pub fn notice(id: &str, held: &HoldRequest, wait_ms: u64) -> BytesMut {
    let mut out = BytesMut::new();
    let group = held
        .approver_group
        .as_deref()
        .map(|g| format!(", approver group {g}"))
        .unwrap_or_default();
    build::notice_response(
        &mut out,
        // 01000: warning. The statement is waiting, not failing.
        "01000",
        &format!(
            "sluice is holding this statement for human approval: approval id {id} (rule {}{group}); waiting up to {} s",
            held.rule,
            wait_ms.div_ceil(1000)
        ),
        Some(&format!(
            "An approver runs `sluice approvals approve {id}` or `sluice approvals deny {id}`. Cancel the statement to withdraw the request."
        )),
    );
    out
}

/// Whether the agent's side of the connection has closed (or the session
/// was aborted by shutdown, which shuts the socket down).
pub fn peer_gone(fd: RawFd) -> bool {
    let mut poll = libc::pollfd {
        fd,
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd; a zero timeout never blocks.
    let ready = unsafe { libc::poll(&mut poll, 1, 0) };
    ready > 0
        && poll.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0
}

/// Withdraws the request if the waiting future is dropped unfinished (the
/// session task ended), so no approval can run a statement nobody awaits.
struct WithdrawOnDrop<'a> {
    registry: &'a ApprovalRegistry,
    ticket: &'a Ticket,
    armed: bool,
}

impl Drop for WithdrawOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.registry.withdraw(
                self.ticket,
                Outcome::Withdrawn {
                    why: "the session ended".into(),
                },
            );
        }
    }
}

/// Waits for the outcome: an approver's decision, a cancel, the deadline,
/// or the agent leaving, whichever comes first.
pub async fn wait(
    registry: &ApprovalRegistry,
    mut ticket: Ticket,
    wait_ms: u64,
    client_fd: RawFd,
) -> Outcome {
    let deadline = Instant::now() + Duration::from_millis(wait_ms);
    let ticket_ref = Ticket {
        id: ticket.id.clone(),
        slot: ticket.slot.clone(),
    };
    let mut guard = WithdrawOnDrop {
        registry,
        ticket: &ticket_ref,
        armed: true,
    };
    let outcome = loop {
        let now = Instant::now();
        if now >= deadline {
            break registry.withdraw(&ticket, Outcome::TimedOut);
        }
        let step = (deadline - now).min(PEER_CHECK_INTERVAL);
        match monoio::time::timeout(step, &mut ticket).await {
            Ok(outcome) => break outcome,
            Err(_) => {
                if peer_gone(client_fd) {
                    break registry.withdraw(
                        &ticket,
                        Outcome::Withdrawn {
                            why: "the agent closed the connection".into(),
                        },
                    );
                }
            }
        }
    };
    guard.armed = false;
    approved_only_if_present(outcome, || peer_gone(client_fd))
}

/// The agent's departure is polled every `PEER_CHECK_INTERVAL`, so an
/// approval can land after the agent has gone but before the poll saw it.
/// Checked once more here: a statement nobody awaits any more is not run,
/// whoever approved it.
fn approved_only_if_present(outcome: Outcome, gone: impl FnOnce() -> bool) -> Outcome {
    match outcome {
        Outcome::Approved { approver, .. } if gone() => Outcome::Withdrawn {
            why: format!(
                "approved by {approver}, but the agent had closed the connection: not run"
            ),
        },
        other => other,
    }
}

/// What the agent gets instead of the statement, for every outcome but
/// `approved`.
pub fn refusal(id: &str, held: &HoldRequest, outcome: &Outcome, wait_ms: u64) -> Option<Refusal> {
    let because = |reason: &Option<String>| {
        reason
            .as_deref()
            .filter(|r| !r.is_empty())
            .map(|r| format!(": {r}"))
            .unwrap_or_default()
    };
    let (code, message) = match outcome {
        Outcome::Approved { .. } => return None,
        Outcome::Denied { approver, reason } => (
            sqlstate::INSUFFICIENT_PRIVILEGE,
            format!(
                "approver {approver} denied this statement (approval {id}, rule {}){}; it was not run",
                held.rule,
                because(reason)
            ),
        ),
        Outcome::TimedOut => (
            sqlstate::INSUFFICIENT_PRIVILEGE,
            format!(
                "no approver decided within the approval timeout of {wait_ms} ms (approval {id}, rule {}); the statement was not run",
                held.rule
            ),
        ),
        // The words PostgreSQL uses for a cancelled statement, so drivers
        // recognise it.
        Outcome::Cancelled => (
            sqlstate::QUERY_CANCELED,
            "canceling statement due to user request".to_string(),
        ),
        Outcome::Withdrawn { why } => (
            sqlstate::INSUFFICIENT_PRIVILEGE,
            format!("approval {id} was withdrawn ({why}); the statement was not run"),
        ),
    };
    Some(Refusal {
        sqlstate: code,
        message,
        hint: None,
    })
}

fn detail(fields: &[(&str, String)]) -> String {
    fields
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The ledger record of a new request (outcome `requested`).
pub fn requested_record(id: &str, held: &HoldRequest, wait_ms: u64) -> RecordBody {
    RecordBody::ApprovalEvent {
        approval_id: id.to_string(),
        approver: String::new(),
        outcome: "requested".into(),
        detail: detail(&[
            ("rule", held.rule.clone()),
            (
                "approver_group",
                held.approver_group.clone().unwrap_or_default(),
            ),
            (
                "class",
                held.class.map(|c| c.name().to_string()).unwrap_or_default(),
            ),
            ("timeout_ms", wait_ms.to_string()),
            ("statement_sha256", held.statement_sha256.clone()),
        ]),
    }
}

/// The ledger record of how a request ended, with both times.
pub fn decided_record(
    id: &str,
    held: &HoldRequest,
    outcome: &Outcome,
    requested_ns: u64,
    decided_ns: u64,
) -> RecordBody {
    let window_ms = match outcome {
        Outcome::Approved {
            window_ms: Some(w), ..
        } => w.to_string(),
        _ => String::new(),
    };
    RecordBody::ApprovalEvent {
        approval_id: id.to_string(),
        approver: outcome.approver().unwrap_or("").to_string(),
        outcome: outcome.result().as_str().to_string(),
        detail: detail(&[
            ("rule", held.rule.clone()),
            ("reason", outcome.reason().unwrap_or("").to_string()),
            ("requested_ns", requested_ns.to_string()),
            ("decided_ns", decided_ns.to_string()),
            ("window_ms", window_ms),
            ("statement_sha256", held.statement_sha256.clone()),
        ]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held() -> HoldRequest {
        HoldRequest {
            statement: "DELETE FROM t".into(),
            statement_sha256: "ab".into(),
            rule: "approve-unbounded-writes".into(),
            approver_group: Some("dba".into()),
            class: None,
            timeout_ms: 1000,
            portal_approved: None,
        }
    }

    #[test]
    fn outcomes_become_refusals_naming_who_or_what() {
        let h = held();
        let approved = Outcome::Approved {
            approver: "a".into(),
            reason: None,
            window_ms: None,
        };
        assert!(refusal("x", &h, &approved, 1).is_none());
        let denied = refusal(
            "x",
            &h,
            &Outcome::Denied {
                approver: "alice".into(),
                reason: Some("too broad".into()),
            },
            1,
        )
        .unwrap();
        assert_eq!(denied.sqlstate, "42501");
        assert!(denied.message.contains("alice") && denied.message.contains("too broad"));
        let timeout = refusal("x", &h, &Outcome::TimedOut, 1500).unwrap();
        assert!(timeout.message.contains("1500 ms"), "{}", timeout.message);
        let cancelled = refusal("x", &h, &Outcome::Cancelled, 1).unwrap();
        assert_eq!(cancelled.sqlstate, "57014");
    }

    #[test]
    fn records_carry_rule_times_and_approver() {
        let h = held();
        let outcome = Outcome::Approved {
            approver: "alice".into(),
            reason: Some("ok".into()),
            window_ms: Some(60_000),
        };
        match decided_record("x", &h, &outcome, 10, 20) {
            RecordBody::ApprovalEvent {
                approver,
                outcome,
                detail,
                ..
            } => {
                assert_eq!((approver.as_str(), outcome.as_str()), ("alice", "approved"));
                assert_eq!(
                    detail,
                    "rule=approve-unbounded-writes; reason=ok; requested_ns=10; decided_ns=20; window_ms=60000; statement_sha256=ab"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_approval_for_a_departed_agent_is_not_run() {
        let approved = || Outcome::Approved {
            approver: "dba-alice".into(),
            reason: None,
            window_ms: None,
        };
        match approved_only_if_present(approved(), || true) {
            Outcome::Withdrawn { why } => assert!(why.contains("dba-alice"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            approved_only_if_present(approved(), || false),
            Outcome::Approved { .. }
        ));
        // Other outcomes stand as they are (and never poll the socket).
        assert!(matches!(
            approved_only_if_present(Outcome::TimedOut, || panic!("not asked")),
            Outcome::TimedOut
        ));
    }

    #[test]
    fn a_closed_socket_is_seen_as_gone() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        use std::os::fd::AsRawFd;
        assert!(!peer_gone(a.as_raw_fd()));
        drop(b);
        assert!(peer_gone(a.as_raw_fd()));
    }
}
