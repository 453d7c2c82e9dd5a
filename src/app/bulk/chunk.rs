//! Running a chunk of a task: each row once per row key, with the checkpoints and
//! compensation of a queued `provisionThing`, its result recorded and counted in one write.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use super::super::core::App;
use super::super::dispatch::Work;
use super::super::engine::{Delivery, Pending, Ran};
use super::super::fail;
use crate::domain::bulk::{BulkRow, BulkTask, RowOutcome, RowResult, chunk_key, row_key};
use crate::domain::command::{BulkChunk, ProvisionRequest, fingerprint};
use crate::domain::record::{CommandRecord, Outcome};
use crate::domain::result::ChunkReport;
use crate::domain::{CommandError, CommandResult, CommandType, ErrorCode, LeaseToken};
use crate::ports::bulk::FinishedRow;

/// Retries of a row that failed retryably: 0.5 s doubling to 8 s, with jitter, for about a
/// minute in all; then the chunk is left for a later delivery.
fn row_retry() -> ExponentialBuilder {
    ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(8))
        .with_jitter()
        .with_total_delay(Some(Duration::from_secs(60)))
        .without_max_times()
}

/// Rows a chunk runs between two reads of its task's status (how soon a cancel takes effect).
const CANCEL_CHECK_ROWS: usize = 10;

impl App {
    /// Runs the rows of one chunk, each once, and counts each once.
    /// On the chunk's last delivery (`last`) a row that still fails retryably is given up:
    /// compensated and counted as failed, so the task still completes.
    pub async fn run_chunk(&self, chunk: &BulkChunk, last: bool) -> Result<ChunkReport, CommandError> {
        let mut report = ChunkReport { task_id: chunk.task_id.to_string(), chunk: chunk.chunk, ..Default::default() };
        let mut task = self.bulk_task(&chunk.task_id).await?;
        for (done, row) in chunk.rows.iter().enumerate() {
            // Read again every few rows, so that a cancel stops the rows not started yet
            // without a read per row.
            if done > 0 && done % CANCEL_CHECK_ROWS == 0 {
                task = self.bulk_task(&chunk.task_id).await?;
            }
            let ran = if task.status.accepts_rows() || self.started(&task, row).await? {
                // A throttled or briefly failing row is retried here, within the chunk's
                // visibility (the heartbeat keeps it), rather than by redelivering the chunk:
                // a throttle is never a failed row, and costs no delivery.
                let patient = (|| self.run_row(&task, row, false))
                    .retry(row_retry())
                    .when(CommandError::is_retryable)
                    .notify(|e, delay| {
                        tracing::info!(row = row.row, error = %e, retry_in_ms = delay.as_millis() as u64, "row will be retried")
                    })
                    .await;
                match patient {
                    // The chunk's last delivery: one more try, which gives the row up (compensated,
                    // counted failed) if it still cannot pass, so that the task completes.
                    Err(e) if e.is_retryable() && last => self.run_row(&task, row, true).await?,
                    other => other?,
                }
            } else {
                RowRun::Finished(RowResult {
                    row: row.row,
                    outcome: RowOutcome::Skipped,
                    thing_name: row.thing_name().map(str::to_owned),
                    certificate_id: None,
                    certificate_arn: None,
                    private_key_secret: None,
                    error: None,
                })
            };
            let (result, counted) = match ran {
                RowRun::Counted(result) => (result, true),
                RowRun::Finished(result) => {
                    let counted = self.ports.bulk.record_row(&task, &result, self.now()).await.map_err(fail)?;
                    (result, counted)
                }
            };
            if counted {
                crate::metrics::global().bulk_row(result.outcome);
                match result.outcome {
                    RowOutcome::Succeeded => report.succeeded += 1,
                    RowOutcome::Failed => report.failed += 1,
                    RowOutcome::Skipped => report.skipped += 1,
                }
            }
        }
        self.complete_if_done(&chunk.task_id, &chunk_key(&chunk.task_id, chunk.chunk)).await?;
        Ok(report)
    }

    /// Whether an earlier attempt started `row` (its record exists). A task being cancelled
    /// skips only rows never started: one started is finished, or its outcome counted, so that
    /// no row is counted skipped while its device exists.
    async fn started(&self, task: &BulkTask, row: &BulkRow) -> Result<bool, CommandError> {
        Ok(self.ports.state.get(&row_key(&task.task_id, row.row)).await.map_err(fail)?.is_some())
    }

    /// Provisions one row through the record machinery of a queued command: once per row key,
    /// resumable from its checkpoints, compensated on a permanent failure. A row run to its
    /// end here is counted in the write that records its outcome.
    #[tracing::instrument(level = "info", skip_all, fields(task = %task.task_id, row = row.row))]
    async fn run_row(&self, task: &BulkTask, row: &BulkRow, last: bool) -> Result<RowRun, CommandError> {
        let request = ProvisionRequest {
            provisioning_template_id: task.provisioning_template_id.clone(),
            parameters: row.parameters.clone(),
            cdf_provisioning_parameters: task.cdf_provisioning_parameters.clone(),
        };
        let key = row_key(&task.task_id, row.row);
        let payload = serde_json::to_value(&request).unwrap_or_default();
        let hash = fingerprint(CommandType::ProvisionThing, &payload);
        let token = LeaseToken::fresh();
        let work = Work::Row { task, request: &request };
        let delivery = Delivery { key: &key, payload_hash: &hash, lease_token: &token, last };
        let thing_name = request.thing_name().map(str::to_owned);
        // Boxed: a row runs through the same dispatch that runs this chunk.
        let finished = match Box::pin(self.attempt(work, &delivery)).await {
            Ok(Ran::Outcome(outcome)) => self.finish_row(&delivery, *outcome, task, row.row, thing_name.clone()).await,
            Ok(Ran::AlreadyFinished(record)) => Ok(RowFinish::Recorded(record)),
            Err(pending) => Err(pending),
        };
        let record = match finished {
            Ok(RowFinish::Counted(result)) => return Ok(RowRun::Counted(result)),
            Ok(RowFinish::Recorded(record)) => record,
            Err(pending) => {
                return Err(CommandError::new(
                    ErrorCode::Transient,
                    format!("row {} of task {} is not finished: {pending:?}", row.row, task.task_id),
                ));
            }
        };
        let result = row_result(row.row, thing_name, record.outcome().as_ref())?;
        // A row announced on its own is counted after its event went out (see `finish_row`).
        if task.row_events
            && record.status == crate::domain::CommandStatus::Succeeded
            && let Err(Pending::Retry { reason, .. }) = self.publish_owed(&record).await
        {
            return Err(CommandError::new(ErrorCode::Transient, reason.to_string()));
        }
        Ok(RowRun::Finished(result))
    }

    /// Records a row's outcome and counts it on the task in one write (unless the row has an
    /// event of its own to publish first); when that fails (the
    /// lease is gone, the row was counted before, the outcome too large for one write, an
    /// outage, a lost answer), records the outcome alone and leaves the counting to
    /// [`BulkStore::record_row`], which counts a row once.
    ///
    /// [`BulkStore::record_row`]: crate::ports::BulkStore::record_row
    async fn finish_row(
        &self,
        delivery: &Delivery<'_>,
        outcome: Outcome,
        task: &BulkTask,
        row: u32,
        thing_name: Option<String>,
    ) -> Result<RowFinish, Pending> {
        let Delivery { key, lease_token, .. } = *delivery;
        // A row with an event of its own is counted once the event went out, so that the
        // task's completion is never announced before one of its rows.
        let result = match row_result(row, thing_name, Some(&outcome)) {
            Ok(result) if !task.row_events => result,
            _ => return self.finish(key, lease_token, &outcome).await.map(RowFinish::Recorded),
        };
        let finished = FinishedRow { key, token: lease_token, outcome: &outcome, result: &result };
        match self.ports.bulk.finish_row(task, finished, self.now()).await {
            Ok(()) => Ok(RowFinish::Counted(result)),
            // Whether it failed or only its answer was lost, the record tells: finishing it
            // alone fails if the write took place, and succeeds (still holding the lease) if not.
            Err(e) => {
                tracing::debug!(idempotency_key = %key, error = %e, "row outcome and count not written together");
                self.finish(key, lease_token, &outcome).await.map(RowFinish::Recorded)
            }
        }
    }
}

/// How a row's outcome was written.
enum RowFinish {
    /// With its count on the task, in one write.
    Counted(RowResult),
    /// On its record alone; counting it is left to the caller.
    Recorded(Box<CommandRecord>),
}

/// A row run to its end.
enum RowRun {
    /// Its result, counted on the task already.
    Counted(RowResult),
    /// Its result, to be counted.
    Finished(RowResult),
}

/// The result of a row whose record holds `outcome`.
fn row_result(row: u32, thing_name: Option<String>, outcome: Option<&Outcome>) -> Result<RowResult, CommandError> {
    Ok(match outcome {
        Some(Outcome::Succeeded(CommandResult::ProvisionThing(done))) => RowResult {
            row,
            outcome: RowOutcome::Succeeded,
            thing_name: done.thing_name.clone().or(thing_name),
            certificate_id: done.certificate_id.clone(),
            certificate_arn: done.resource_arns.certificate.clone().map(crate::domain::Arn::new),
            private_key_secret: done.private_key_secret.clone(),
            error: None,
        },
        Some(Outcome::Failed(error)) => RowResult {
            row,
            outcome: RowOutcome::Failed,
            thing_name,
            certificate_id: None,
            certificate_arn: None,
            private_key_secret: None,
            error: Some(error.clone()),
        },
        other => {
            return Err(CommandError::new(
                ErrorCode::RecordUnreadable,
                format!("the record of row {row} holds {other:?}"),
            ));
        }
    })
}
