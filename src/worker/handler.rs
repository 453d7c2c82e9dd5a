//! One message's journey: decode, run with a heartbeat, then delete, retry later, or
//! dead-letter with the reason and a `command.rejected` event.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tracing::Instrument;

use super::Shared;
use super::outcome::{Handled, Measured};
use crate::app::{Disposition, RetryReason};
use crate::domain::command::Rejected;
use crate::domain::{CommandEnvelope, IdempotencyKey, LeaseToken};
use crate::ports::QueueMessage;

pub(super) async fn handle(shared: &Shared, message: QueueMessage) {
    let span = tracing::info_span!(
        "message",
        message_id = %message.message_id,
        receive_count = message.receive_count,
        idempotency_key = tracing::field::Empty,
        command = tracing::field::Empty,
        subject = tracing::field::Empty,
    );
    async {
        let envelope = match CommandEnvelope::read_message(&message.body, &message.message_id) {
            Ok(envelope) => envelope,
            Err(rejected) => {
                Handled::Rejected(&rejected.error).log();
                return reject(shared, &message, rejected).await;
            }
        };
        let span = tracing::Span::current();
        span.record("idempotency_key", envelope.idempotency_key.as_str());
        span.record("command", envelope.command.command_type().as_str());
        if let Some(subject) = envelope.command.subject() {
            span.record("subject", crate::domain::command::bounded(&subject));
        }

        let token = LeaseToken::fresh();
        // The queue's last delivery: a failure that could pass later must end the command now.
        let last = shared.queue.max_deliveries().is_some_and(|max| message.receive_count >= max);
        let work = shared.app.handle_delivery(&envelope, &token, last);
        let heartbeat = heartbeat(shared, &message, &envelope.idempotency_key, &token);
        let measured = Measured::start(&shared.metrics, envelope.command.command_type());
        let disposition = tokio::select! {
            d = work => d,
            () = heartbeat => {
                // The lease went to another attempt: this one stops calling AWS at once.
                tracing::warn!("the command's lease was taken over; this attempt stops");
                Disposition::Retry { after: None, reason: RetryReason::LeaseLost }
            }
            () = shared.abandon.cancelled() => {
                measured.finish(&Handled::Abandoned);
                return;
            }
        };
        match disposition {
            Disposition::Done => {
                measured.finish(&Handled::Done);
                if shared.acks.send(message.receipt_handle).await.is_err() {
                    tracing::error!("ack channel closed; the message will be redelivered");
                }
            }
            Disposition::Retry { after, reason } => {
                let delay = after.unwrap_or_else(|| backoff(message.receive_count, shared.settings.max_retry_delay));
                measured.finish(&Handled::Retried { reason: &reason, delay });
                if let Err(e) = shared.queue.change_visibility(&message.receipt_handle, delay).await {
                    tracing::warn!(error = %e, "could not set the retry delay; the visibility timeout applies");
                }
            }
            Disposition::Reject(error) => {
                measured.finish(&Handled::Rejected(&error));
                reject(shared, &message, Rejected::of(&envelope, error)).await;
            }
        }
    }
    .instrument(span)
    .await;
}

/// Keeps the lease alive and the message invisible while the command runs; returns only when
/// this attempt must stop (another attempt holds the lease, or it ran out unrenewed). The
/// message's visibility is extended only after a renewal that succeeded: a message stays
/// hidden no longer than its lease lives.
async fn heartbeat(shared: &Shared, message: &QueueMessage, key: &IdempotencyKey, token: &LeaseToken) {
    let period = (shared.settings.visibility_timeout / 3).max(Duration::from_secs(1));
    let ended = shared
        .app
        .keep_lease(key, token, period, || async {
            tracing::debug!("lease renewed; extending visibility");
            if let Err(e) =
                shared.queue.change_visibility(&message.receipt_handle, shared.settings.visibility_timeout).await
            {
                tracing::warn!(error = %e, "could not extend visibility");
            }
        })
        .await;
    tracing::debug!(?ended, "the heartbeat ended");
}

/// Dead-letters a message that can never run (its rejection already logged): event first,
/// then the DLQ copy, then the delete. A failure at any step leaves the message for another
/// try.
async fn reject(shared: &Shared, message: &QueueMessage, rejected: Rejected) {
    let Rejected { idempotency_key: key, thing_name, error } = rejected;
    if let Err(e) = shared.app.publish_rejection(&key, &message.message_id, thing_name, &error).await {
        tracing::warn!(error = %e, "could not publish command.rejected; will retry");
        return;
    }
    if let Err(e) = shared.queue.dead_letter(message, &error).await {
        tracing::warn!(error = %e, "could not dead-letter; will retry");
        return;
    }
    shared.metrics.dead_lettered(error.code);
    if shared.acks.send(message.receipt_handle.clone()).await.is_err() {
        tracing::error!("ack channel closed; the message will be redelivered");
    }
}

/// Exponential backoff by delivery count: 2, 4, 8 ... seconds up to `cap`, each with up to as
/// much again of random jitter, so that the retries of a throttled burst spread out.
fn backoff(receive_count: u32, cap: Duration) -> Duration {
    let mut delays = ExponentialBuilder::new()
        .with_min_delay(Duration::from_secs(2))
        .with_max_delay(cap)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build();
    let nth = usize::try_from(receive_count.clamp(1, 32) - 1).unwrap_or(0);
    delays.nth(nth).unwrap_or(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let cap = Duration::from_secs(60);
        for _ in 0..50 {
            let first = backoff(1, cap);
            assert!(first >= Duration::from_secs(2) && first < Duration::from_secs(4), "{first:?}");
            assert!(backoff(3, cap) >= Duration::from_secs(8));
            let late = backoff(30, cap);
            assert!(late >= cap && late < cap * 2, "{late:?}");
        }
    }
}
