//! Bulk tasks and row results in memory, with the DynamoDB adapter's conditional semantics.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{Faults, MemoryStateStore};
use crate::domain::bulk::{BulkTask, RowOutcome, RowResult, TaskId, TaskStatus};
use crate::domain::{IdempotencyKey, Timestamp};
use crate::ports::bulk::{Acceptance, FinishedRow};
use crate::ports::{BulkStore, ErrorKind, PortError, RowPage};

/// The bulk store operations of the fake, for failure injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
#[allow(missing_docs)] // the port's method names
pub enum BulkOp {
    CreateTask,
    GetTask,
    RecordRow,
    FinishRow,
    Transition,
    FinishAcceptance,
    ClaimTaskAnnouncement,
    MarkTaskEventPublished,
    Rows,
}

/// A task and its row results by row.
type StoredTask = (BulkTask, BTreeMap<u32, RowResult>);

/// Tasks and their rows in maps.
#[derive(Debug, Default)]
pub struct MemoryBulkStore {
    tasks: Mutex<HashMap<TaskId, StoredTask>>,
    /// Who announces a finished task, until when.
    announcements: Mutex<HashMap<TaskId, (IdempotencyKey, Timestamp)>>,
    /// The command records a row's outcome is recorded in (`finish_row`), as DynamoDB keeps
    /// both in one table.
    records: Option<Arc<MemoryStateStore>>,
    /// Failure injection, by operation.
    pub faults: Faults<BulkOp>,
}

impl MemoryBulkStore {
    /// A store whose `finish_row` records outcomes in `records`.
    pub fn sharing(records: Arc<MemoryStateStore>) -> Self {
        Self { records: Some(records), ..Self::default() }
    }

    /// Every stored task, for assertions.
    pub fn tasks(&self) -> Vec<BulkTask> {
        self.with(|tasks| tasks.values().map(|(task, _)| task.clone()).collect())
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<TaskId, StoredTask>) -> T) -> T {
        f(&mut self.tasks.lock().expect("bulk store lock"))
    }
}

/// Counts `row` in `stored`.
fn count(stored: &mut BulkTask, row: RowOutcome, now: Timestamp) {
    match row {
        RowOutcome::Succeeded => stored.success_count += 1,
        RowOutcome::Failed => stored.failure_count += 1,
        RowOutcome::Skipped => stored.skipped_count += 1,
    }
    stored.updated_at_ms = now;
}

#[async_trait]
impl BulkStore for MemoryBulkStore {
    async fn create_task(&self, task: &BulkTask) -> Result<BulkTask, PortError> {
        self.faults.enter(BulkOp::CreateTask).await?;
        Ok(self.with(|tasks| {
            tasks.entry(task.task_id.clone()).or_insert_with(|| (task.clone(), BTreeMap::new())).0.clone()
        }))
    }

    async fn get_task(&self, task: &TaskId) -> Result<Option<BulkTask>, PortError> {
        self.faults.enter(BulkOp::GetTask).await?;
        Ok(self.with(|tasks| tasks.get(task).map(|(t, _)| t.clone())))
    }

    async fn record_row(&self, task: &BulkTask, row: &RowResult, now: Timestamp) -> Result<bool, PortError> {
        self.faults.enter(BulkOp::RecordRow).await?;
        self.with(|tasks| {
            let (stored, rows) = tasks
                .get_mut(&task.task_id)
                .ok_or_else(|| PortError::new(ErrorKind::ConditionFailed, "record_row", "no such task"))?;
            if rows.contains_key(&row.row) {
                return Ok(false);
            }
            rows.insert(row.row, row.clone());
            count(stored, row.outcome, now);
            Ok(true)
        })
    }

    async fn finish_row(&self, task: &BulkTask, row: FinishedRow<'_>, now: Timestamp) -> Result<(), PortError> {
        self.faults.enter(BulkOp::FinishRow).await?;
        let FinishedRow { key, token, outcome, result: row } = row;
        let records = self
            .records
            .as_ref()
            .ok_or_else(|| PortError::new(ErrorKind::Permanent, "finish_row", "no record store shared"))?;
        // The bulk lock is held throughout: the three changes are seen together or not at all.
        self.with(|tasks| {
            let (stored, rows) =
                tasks.get_mut(&task.task_id).filter(|(_, rows)| !rows.contains_key(&row.row)).ok_or_else(|| {
                    PortError::new(ErrorKind::ConditionFailed, "finish_row", "no such task, or row counted")
                })?;
            records.finish_now(key, token, outcome, now)?;
            rows.insert(row.row, row.clone());
            count(stored, row.outcome, now);
            Ok(())
        })
    }

    async fn transition(
        &self,
        task: &TaskId,
        from: TaskStatus,
        to: TaskStatus,
        now: Timestamp,
    ) -> Result<Option<BulkTask>, PortError> {
        self.faults.enter(BulkOp::Transition).await?;
        Ok(self.with(|tasks| {
            let (stored, _) = tasks.get_mut(task)?;
            (stored.status == from).then(|| {
                stored.status = to;
                stored.updated_at_ms = now;
                stored.clone()
            })
        }))
    }

    async fn finish_acceptance(
        &self,
        task: &TaskId,
        totals: Acceptance,
        now: Timestamp,
    ) -> Result<BulkTask, PortError> {
        self.faults.enter(BulkOp::FinishAcceptance).await?;
        let Acceptance { total_rows, invalid_rows, chunks } = totals;
        self.with(|tasks| {
            let (stored, _) = tasks
                .get_mut(task)
                .ok_or_else(|| PortError::new(ErrorKind::ConditionFailed, "finish_acceptance", "no such task"))?;
            stored.total_rows = total_rows;
            stored.invalid_rows = invalid_rows;
            stored.chunks = chunks;
            stored.accepted = true;
            stored.updated_at_ms = now;
            Ok(stored.clone())
        })
    }

    async fn claim_task_announcement(
        &self,
        task: &TaskId,
        claimant: &IdempotencyKey,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<bool, PortError> {
        self.faults.enter(BulkOp::ClaimTaskAnnouncement).await?;
        // The task's lock is held throughout, so a claim and the marking of the announcement
        // are one step apart, as DynamoDB's conditional update makes them.
        let tasks = self.tasks.lock().expect("bulk store lock");
        let Some((stored, _)) = tasks.get(task) else {
            return Err(PortError::new(ErrorKind::NotFound, "claim_task_announcement", "no such task"));
        };
        if stored.event_published {
            return Ok(false);
        }
        let mut claims = self.announcements.lock().expect("announcement lock");
        let free = claims.get(task).is_none_or(|(by, expires)| *expires < now || by == claimant);
        if free {
            claims.insert(task.clone(), (claimant.clone(), until));
        }
        Ok(free)
    }

    async fn mark_task_event_published(&self, task: &TaskId) -> Result<(), PortError> {
        self.faults.enter(BulkOp::MarkTaskEventPublished).await?;
        self.with(|tasks| {
            if let Some((stored, _)) = tasks.get_mut(task) {
                stored.event_published = true;
            }
        });
        Ok(())
    }

    async fn rows(
        &self,
        task: &TaskId,
        after: Option<u32>,
        limit: usize,
        outcome: Option<RowOutcome>,
    ) -> Result<RowPage, PortError> {
        self.faults.enter(BulkOp::Rows).await?;
        Ok(self.with(|tasks| {
            let Some((_, rows)) = tasks.get(task) else { return RowPage::default() };
            let start = after.map_or(0, |a| a.saturating_add(1));
            let mut matching = rows.range(start..).map(|(_, r)| r).filter(|r| outcome.is_none_or(|o| r.outcome == o));
            let page: Vec<RowResult> = matching.by_ref().take(limit).cloned().collect();
            let next = if matching.next().is_some() { page.last().map(|r| r.row) } else { None };
            RowPage { rows: page, next }
        }))
    }
}
