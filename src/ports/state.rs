//! Durable command records.

use async_trait::async_trait;

use super::PortError;
use crate::domain::checkpoint::Checkpoint;
use crate::domain::record::{CommandRecord, Outcome};
use crate::domain::{CommandError, IdempotencyKey, LeaseToken, Timestamp};

/// Result of trying to create a command record.
#[derive(Debug, Clone, PartialEq)]
pub enum CreateOutcome {
    /// The record was created: this attempt holds the lease.
    Created,
    /// A record with this key exists; here it is.
    Exists(Box<CommandRecord>),
}

/// A new attempt taking a record's lease over ([`StateStore::take_over`]).
#[derive(Debug, Clone, Copy)]
pub struct TakeOver<'a> {
    /// The token the record held when it was read (`None`: no holder); the take-over fails if
    /// the record holds another one by now.
    pub expected: Option<&'a LeaseToken>,
    /// The lease version the record held when it was read; the take-over fails if the lease
    /// changed since (a late renewal by the holder).
    pub seen_version: u64,
    /// The new attempt's token.
    pub token: &'a LeaseToken,
    /// Until when the new lease protects the attempt.
    pub lease_until: Timestamp,
    /// The time of the take-over.
    pub now: Timestamp,
    /// When the store may forget the record now (unix seconds, as
    /// [`CommandRecord::expires_at`]): every attempt pushes it out, so that the record outlives
    /// the message that may still bring the command back (from the dead-letter queue).
    pub expires_at: i64,
}

/// Durable command records (DynamoDB). Every write is conditional.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// Creates the record if no record has its key.
    async fn create(&self, record: &CommandRecord) -> Result<CreateOutcome, PortError>;
    /// Moves the lease from the token and version seen to the new attempt's, counting an
    /// attempt and growing the version. `ConditionFailed` when the record changed meanwhile or
    /// its lease has not expired by `now`.
    async fn take_over(&self, key: &IdempotencyKey, take_over: TakeOver<'_>) -> Result<CommandRecord, PortError>;
    /// Extends the lease held by `token` to `lease_until`, growing its version.
    async fn renew_lease(
        &self,
        key: &IdempotencyKey,
        token: &LeaseToken,
        lease_until: Timestamp,
    ) -> Result<(), PortError>;
    /// Records the outcome, if `token` still holds the lease; the record keeps the token, so
    /// that the attempt can tell its own finish from another's.
    async fn finish(
        &self,
        key: &IdempotencyKey,
        token: &LeaseToken,
        outcome: &Outcome,
        now: Timestamp,
    ) -> Result<CommandRecord, PortError>;
    /// Gives the lease up after a retryable failure, keeping the error for operators and
    /// counting the failure against the command's retry budget.
    async fn release(
        &self,
        key: &IdempotencyKey,
        token: &LeaseToken,
        error: &CommandError,
        now: Timestamp,
    ) -> Result<(), PortError>;
    /// Saves completed steps, each in its slot (distinct slots), in one write, if `token` still
    /// holds the lease.
    async fn checkpoint(
        &self,
        key: &IdempotencyKey,
        token: &LeaseToken,
        checkpoints: &[Checkpoint],
    ) -> Result<(), PortError>;
    /// Notes that the completion event went out.
    async fn mark_event_published(&self, key: &IdempotencyKey) -> Result<(), PortError>;
    /// Reads a record.
    async fn get(&self, key: &IdempotencyKey) -> Result<Option<CommandRecord>, PortError>;
    /// Command records still `IN_PROGRESS` whose lease expired before `lease_expired_before`,
    /// at most `limit` of them, in no particular order. Reads the whole table (a scan): for the
    /// operator's sweep, not for the path of a command.
    async fn stale_in_progress(
        &self,
        lease_expired_before: Timestamp,
        limit: usize,
    ) -> Result<Vec<CommandRecord>, PortError>;
}
