//! Webhook notification of new approval requests.
//!
//! Sessions never wait on the webhook: [`WebhookSender::notify`] puts the
//! JSON body on a bounded queue (`approvals.webhook.queue_max`) without
//! blocking, and one background thread POSTs each body with a timeout
//! (`approvals.webhook.timeout_ms`). A full queue drops the notification; a
//! failed POST is logged; both are counted in `/metrics`. The body is
//! Slack-compatible (`text`) and carries the request's fields as well.

use std::{
    sync::{
        mpsc::{sync_channel, Receiver, SyncSender, TrySendError},
        Arc,
    },
    time::Duration,
};

use super::{config::WebhookSettings, ApprovalView};
use crate::{
    admin::client::{self, ClientTls},
    metrics::{Metrics, ServiceMetrics},
};

/// Statement text included in the human-readable `text` field; the full
/// statement is in the structured `approval.statement` field.
const TEXT_STATEMENT_CHARS_MAX: usize = 500;

pub struct WebhookSender {
    queue: SyncSender<String>,
    metrics: Arc<Metrics>,
}

impl WebhookSender {
    /// Starts the sending thread.
    pub fn start(settings: WebhookSettings, metrics: Arc<Metrics>) -> std::io::Result<Self> {
        let tls = if settings.url.https {
            Some(
                ClientTls::new(settings.ca_file.as_deref())
                    .map_err(|e| std::io::Error::other(e.to_string()))?,
            )
        } else {
            None
        };
        let (queue, receiver) = sync_channel(settings.queue_max);
        let thread_metrics = metrics.clone();
        std::thread::Builder::new()
            .name("sluice-webhook".into())
            .spawn(move || send_loop(receiver, settings, tls, thread_metrics))?;
        Ok(WebhookSender { queue, metrics })
    }

    /// Queues a notification of a new request; never blocks.
    pub fn notify(&self, view: &ApprovalView) {
        match self.queue.try_send(body(view)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                ServiceMetrics::bump(&self.metrics.service.webhook_dropped);
                tracing::warn!(
                    phase = "approval",
                    source = "internal",
                    approval = %view.id,
                    "webhook queue full (approvals.webhook.queue_max): notification dropped"
                );
            }
            Err(TrySendError::Disconnected(_)) => {
                ServiceMetrics::bump(&self.metrics.service.webhook_dropped);
            }
        }
    }
}

/// The JSON body for one request.
pub fn body(view: &ApprovalView) -> String {
    let mut statement: String = view
        .statement
        .chars()
        .take(TEXT_STATEMENT_CHARS_MAX)
        .collect();
    if statement.len() < view.statement.len() {
        statement.push('…');
    }
    let text = format!(
        "sluice: approval {} requested by agent {} on target {} (rule {}{}): {}\nApprove with `sluice approvals approve {}` or deny with `sluice approvals deny {}`.",
        view.id,
        view.agent,
        view.target,
        view.rule,
        view.approver_group
            .as_deref()
            .map(|g| format!(", approver group {g}"))
            .unwrap_or_default(),
        statement,
        view.id,
        view.id
    );
    serde_json::json!({ "text": text, "approval": view }).to_string()
}

fn send_loop(
    receiver: Receiver<String>,
    settings: WebhookSettings,
    tls: Option<ClientTls>,
    metrics: Arc<Metrics>,
) {
    let timeout = Duration::from_millis(settings.timeout_ms);
    while let Ok(body) = receiver.recv() {
        let outcome = client::request(
            &settings.url,
            "POST",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
            timeout,
            tls.as_ref(),
            client::RESPONSE_BYTES_MAX,
        );
        match outcome {
            Ok(response) if (200..300).contains(&response.status) => {
                ServiceMetrics::bump(&metrics.service.webhook_sent);
            }
            Ok(response) => {
                ServiceMetrics::bump(&metrics.service.webhook_failed);
                tracing::warn!(
                    phase = "approval",
                    source = "upstream",
                    status = response.status,
                    "webhook answered with HTTP {}",
                    response.status
                );
            }
            Err(e) => {
                ServiceMetrics::bump(&metrics.service.webhook_failed);
                tracing::warn!(
                    phase = "approval",
                    source = "upstream",
                    "webhook failed: {e}"
                );
            }
        }
    }
}
