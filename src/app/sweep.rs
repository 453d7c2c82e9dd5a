//! The sweep for stale command records: `IN_PROGRESS`, with a lease that expired longer ago
//! than the command's message could still come back from the command queue.
//!
//! Every delivery of a command's message takes an expired lease over (and so renews it), so a
//! lease left expired for longer than the message's deliveries could take means that no
//! delivery is coming: the message is in the dead-letter queue (moved there by the redrive
//! policy after the worker was killed on each delivery), or it was deleted by hand. The
//! service cannot cheaply tell which, nor look into the dead-letter queue; the operator can
//! (see the runbook in `docs/operations.md`).

use std::time::Duration;

use serde::Serialize;

use super::core::App;
use crate::domain::error::bounded;
use crate::domain::{CommandRecord, CommandType, ErrorCode, IdempotencyKey, Timestamp};
use crate::ports::PortError;

/// How long after its lease expired a record in progress is stale when no message may still
/// bring it back: each of the message's `max_deliveries` deliveries comes back within the
/// longest the queue keeps it hidden (the visibility timeout after a crash, the retry backoff
/// after a failure).
pub fn stale_after(visibility_timeout: Duration, max_retry_delay: Duration, max_deliveries: u32) -> Duration {
    visibility_timeout.max(max_retry_delay).saturating_mul(max_deliveries.max(1))
}

/// What the sweep tells of one stale record: enough to find its message, not its payload.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StaleRecord {
    /// The command's idempotency key.
    pub idempotency_key: IdempotencyKey,
    /// Which command.
    pub command_type: CommandType,
    /// What it is about (cut to 64 characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Attempts started.
    pub attempts: u32,
    /// Attempts that ended in a retryable failure.
    pub failures: u32,
    /// The last retryable failure's code, if an attempt saw one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error_code: Option<ErrorCode>,
    /// When the lease expired (RFC 3339).
    pub lease_expired_at: String,
    /// How long ago, in whole seconds.
    pub lease_expired_for_secs: u64,
    /// When the store may forget the record (RFC 3339).
    pub expires_at: String,
}

impl StaleRecord {
    /// The report of `record` at `now`.
    pub fn of(record: &CommandRecord, now: Timestamp) -> Self {
        Self {
            idempotency_key: record.idempotency_key.clone(),
            command_type: record.command_type,
            subject: record.subject.as_deref().map(bounded),
            attempts: record.attempts,
            failures: record.failures,
            last_error_code: record.error.as_ref().map(|e| e.code),
            lease_expired_at: record.lease_expires_at_ms.to_rfc3339(),
            lease_expired_for_secs: now.saturating_since(record.lease_expires_at_ms).as_secs(),
            expires_at: Timestamp::from_millis(record.expires_at.saturating_mul(1_000)).to_rfc3339(),
        }
    }
}

/// What a sweep found.
#[derive(Debug, Clone, PartialEq)]
pub struct StaleRecords {
    /// The stale records, at most the limit asked.
    pub records: Vec<StaleRecord>,
    /// Whether there were more than the limit.
    pub truncated: bool,
    /// Records whose lease expired before this instant were looked for.
    pub lease_expired_before: Timestamp,
}

impl App {
    /// Command records in progress whose lease expired more than `older_than` ago, at most
    /// `limit`. Scans the whole table.
    pub async fn stale_records(&self, older_than: Duration, limit: usize) -> Result<StaleRecords, PortError> {
        let now = self.now();
        let lease_expired_before = now - older_than;
        // One more than asked tells whether there are more.
        let mut found = self.ports.state.stale_in_progress(lease_expired_before, limit.saturating_add(1)).await?;
        let truncated = found.len() > limit;
        found.truncate(limit);
        let records = found.iter().map(|r| StaleRecord::of(r, now)).collect();
        Ok(StaleRecords { records, truncated, lease_expired_before })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_means_longer_than_every_delivery_could_take() {
        let minute = Duration::from_secs(60);
        assert_eq!(stale_after(minute, 5 * minute, 20), 100 * minute, "the retry backoff hides a message longer");
        assert_eq!(stale_after(10 * minute, 5 * minute, 3), 30 * minute);
        assert_eq!(stale_after(minute, minute, 0), minute, "at least one delivery");
    }
}
