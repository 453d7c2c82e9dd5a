//! Cancelling a task: it moves to `Cancelling`; rows not started yet are then skipped, and
//! the task ends `Cancelled` once every row is counted.

use super::super::core::App;
use super::super::fail;
use crate::domain::CommandError;
use crate::domain::bulk::{BulkTask, TaskId, TaskStatus, cancel_key};

impl App {
    /// Cancels a task: rows not yet started are skipped.
    pub async fn cancel_bulk(&self, task_id: &TaskId) -> Result<BulkTask, CommandError> {
        let moved = self
            .ports
            .bulk
            .transition(task_id, TaskStatus::InProgress, TaskStatus::Cancelling, self.now())
            .await
            .map_err(fail)?;
        if moved.is_some() {
            self.complete_if_done(task_id, &cancel_key(task_id)).await?;
        }
        self.bulk_task(task_id).await
    }
}
