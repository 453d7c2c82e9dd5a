//! Bulk tasks and their row results. Counting is the store's job: a row's result and the
//! counter it changes are written together or not at all, once per row.

use async_trait::async_trait;

use super::PortError;
use crate::domain::bulk::{BulkTask, RowOutcome, RowResult, TaskId, TaskStatus};
use crate::domain::record::Outcome;
use crate::domain::{IdempotencyKey, LeaseToken, Timestamp};

/// A page of a task's row results.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowPage {
    /// Rows in row order.
    pub rows: Vec<RowResult>,
    /// Pass as `after` for the next page; `None` on the last one.
    pub next: Option<u32>,
}

/// A row run to its end, recorded and counted in one write ([`BulkStore::finish_row`]).
#[derive(Debug, Clone, Copy)]
pub struct FinishedRow<'a> {
    /// The row's command record.
    pub key: &'a IdempotencyKey,
    /// The attempt that must still hold the record's lease.
    pub token: &'a LeaseToken,
    /// The outcome recorded on the record.
    pub outcome: &'a Outcome,
    /// The row's result, stored under its task and counted in it.
    pub result: &'a RowResult,
}

/// The final totals of a task whose every row is read and fanned out
/// ([`BulkStore::finish_acceptance`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acceptance {
    /// Rows in the request.
    pub total_rows: u32,
    /// Rows refused before any device was made.
    pub invalid_rows: u32,
    /// Chunk messages the valid rows were sent in.
    pub chunks: u32,
}

/// Durable bulk tasks (DynamoDB: the task item and one item per row, in one partition).
#[async_trait]
pub trait BulkStore: Send + Sync {
    /// Creates `task` unless a task with its id exists; returns the stored task either way.
    async fn create_task(&self, task: &BulkTask) -> Result<BulkTask, PortError>;
    /// Reads a task.
    async fn get_task(&self, task: &TaskId) -> Result<Option<BulkTask>, PortError>;
    /// Stores a row's result and counts it in the task, both or neither. `false` when the row
    /// was counted before (its first result stays). The row item expires with its task.
    async fn record_row(&self, task: &BulkTask, row: &RowResult, now: Timestamp) -> Result<bool, PortError>;
    /// Records a row's outcome on its command record (if its token still holds the lease),
    /// stores the row's result and counts it in the task, all three or none, in one write.
    /// `ConditionFailed` when any condition does not hold (the lease is gone, or the row was
    /// counted before) or the outcome does not fit one write; the caller then finishes and
    /// counts apart, which tells which.
    async fn finish_row(&self, task: &BulkTask, row: FinishedRow<'_>, now: Timestamp) -> Result<(), PortError>;
    /// Moves the task from `from` to `to` if it is still `from`: the task after the change, or
    /// `None` when it was not in `from` (someone else moved it first).
    async fn transition(
        &self,
        task: &TaskId,
        from: TaskStatus,
        to: TaskStatus,
        now: Timestamp,
    ) -> Result<Option<BulkTask>, PortError>;
    /// Records that every row is read and fanned out, with the final totals.
    async fn finish_acceptance(&self, task: &TaskId, totals: Acceptance, now: Timestamp)
    -> Result<BulkTask, PortError>;
    /// Claims the announcement of a finished task for `claimant` until `until`: true when it is
    /// still owed and unclaimed, its claim has run out by `now`, or `claimant` holds it already
    /// (its own retry). One claimant at a time publishes `bulk.completed`.
    async fn claim_task_announcement(
        &self,
        task: &TaskId,
        claimant: &IdempotencyKey,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<bool, PortError>;
    /// Notes that `bulk.completed` went out.
    async fn mark_task_event_published(&self, task: &TaskId) -> Result<(), PortError>;
    /// A page of at most `limit` row results after row `after`, only those with `outcome`
    /// when given.
    async fn rows(
        &self,
        task: &TaskId,
        after: Option<u32>,
        limit: usize,
        outcome: Option<RowOutcome>,
    ) -> Result<RowPage, PortError>;
}
