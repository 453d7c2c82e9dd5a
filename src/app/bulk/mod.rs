//! Bulk provisioning on the same engine as `provisionThing`, in three parts:
//!
//! - `accept`: accepting a task ([`App::accept_bulk`]) checks the template and every row before any
//!   device is made, stores the task with a snapshot of the template, counts the invalid rows,
//!   and sends the valid ones to the command queue in chunks, in batches. It is idempotent:
//!   the task id comes from the idempotency key, and each chunk message has its own key, so a
//!   repeated acceptance sends nothing that runs twice.
//! - `chunk`: a chunk ([`App::run_chunk`]) runs each row once per row key, with the same checkpoints
//!   and compensation as a queued `provisionThing`, then records the row's result and counts
//!   it in one conditional write. The row that completes the task announces it, once.
//! - `cancel`: cancelling ([`App::cancel_bulk`]) moves the task to `Cancelling`; rows not started yet are
//!   then skipped, and the task ends `Cancelled`.
//!
//! Here: what they share (completing and announcing a task) and the reads of tasks and rows.

mod accept;
mod cancel;
mod chunk;

use super::core::App;
use super::fail;
use crate::domain::CloudEvent;
use crate::domain::CommandError;
use crate::domain::ErrorCode;
use crate::domain::IdempotencyKey;
use crate::domain::bulk::{BulkTask, RowOutcome, TaskId, TaskStatus};

impl App {
    /// Completes the task once every row is counted, and announces it once. Chunks often finish
    /// together, so the announcement still owed is claimed first (a conditional write, for a
    /// lease): one claimant publishes; the others leave it. `claimant` is the caller's stable
    /// key, so its own retry takes its claim up again, and a claimant that died loses it when the
    /// lease runs out.
    pub(super) async fn complete_if_done(
        &self,
        task_id: &TaskId,
        claimant: &IdempotencyKey,
    ) -> Result<(), CommandError> {
        let Some(mut task) = self.ports.bulk.get_task(task_id).await.map_err(fail)? else { return Ok(()) };
        if matches!(task.status, TaskStatus::InProgress | TaskStatus::Cancelling) && task.all_rows_counted() {
            let done = self
                .ports
                .bulk
                .transition(task_id, task.status, task.final_status(), self.now())
                .await
                .map_err(fail)?;
            match done {
                Some(finished) => task = finished,
                None => return Ok(()), // another attempt finished it and announces it
            }
        }
        if matches!(task.status, TaskStatus::Completed | TaskStatus::Cancelled) && !task.event_published {
            let now = self.now();
            let claimed = self
                .ports
                .bulk
                .claim_task_announcement(task_id, claimant, now + self.settings.lease, now)
                .await
                .map_err(fail)?;
            if !claimed {
                return Ok(()); // another attempt announces it
            }
            let event = CloudEvent::bulk_completed(
                &self.settings().event_source,
                &task.idempotency_key,
                &task.view(),
                self.now(),
            );
            self.ports.events.publish(&event).await.map_err(fail)?;
            self.ports.bulk.mark_task_event_published(task_id).await.map_err(fail)?;
        }
        Ok(())
    }

    /// A task as stored; `NotFound` for an unknown one.
    pub async fn bulk_task(&self, task_id: &TaskId) -> Result<BulkTask, CommandError> {
        self.ports
            .bulk
            .get_task(task_id)
            .await
            .map_err(fail)?
            .ok_or_else(|| CommandError::new(ErrorCode::NotFound, format!("bulk task {task_id} does not exist")))
    }

    /// A page of a task's row results.
    pub async fn bulk_rows(
        &self,
        task_id: &TaskId,
        after: Option<u32>,
        limit: usize,
        outcome: Option<RowOutcome>,
    ) -> Result<crate::ports::RowPage, CommandError> {
        self.bulk_task(task_id).await?;
        self.ports.bulk.rows(task_id, after, limit, outcome).await.map_err(fail)
    }
}
