//! Bulk provisioning on the same engine as `provisionThing`.
//!
//! - Accepting a task ([`App::accept_bulk`]) checks the template and every row before any
//!   device is made, stores the task with a snapshot of the template, counts the invalid rows,
//!   and sends the valid ones to the command queue in chunks, in batches. It is idempotent:
//!   the task id comes from the idempotency key, and each chunk message has its own key, so a
//!   repeated acceptance sends nothing that runs twice.
//! - A chunk ([`App::run_chunk`]) runs each row once per row key, with the same checkpoints
//!   and compensation as a queued `provisionThing`, then records the row's result and counts
//!   it in one conditional write. The row that completes the task announces it, once.
//! - Cancelling ([`App::cancel_bulk`]) moves the task to `Cancelling`; rows not started yet are
//!   then skipped, and the task ends `Cancelled`.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use super::commands::{App, Disposition, Once, Work};
use super::provision::{load_template, validation_error};
use super::{fail, missing_as};
use crate::domain::IdempotencyKey;
use std::collections::BTreeMap;

use futures::StreamExt;
use futures::stream::BoxStream;

use crate::domain::bulk::{
    BulkRow, BulkTask, ROWS_PER_CHUNK, RowOutcome, RowReader, RowResult, RowsFormat, TaskId, TaskStatus, chunk_key,
    row_key,
};
use crate::domain::command::{BulkChunk, BulkRequest, ProvisionRequest, bounded, fingerprint};
use crate::domain::record::Outcome;
use crate::domain::result::ChunkReport;
use crate::domain::template::Template;
use crate::domain::thing::THING_NAME_PARAMETER;
use crate::domain::{CloudEvent, Command, CommandEnvelope, CommandError, CommandResult, CommandType, ErrorCode};
use crate::ports::{MAX_SEND_BATCH, PortError};

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

/// How many invalid rows a `strict` refusal lists.
const LISTED_INVALID_ROWS: usize = 5;
/// Send attempts per batch of chunk messages before the acceptance is retried as a whole.
const SEND_ATTEMPTS: usize = 3;

impl App {
    /// Accepts a bulk task submitted with idempotency key `key`; returns it as stored.
    pub async fn accept_bulk(&self, key: &IdempotencyKey, request: &BulkRequest) -> Result<BulkTask, CommandError> {
        let task_id = TaskId::for_key(key);
        let source = match (&request.rows_object, request.parameters.is_empty()) {
            (None, false) => RowsInput::Inline(&request.parameters),
            (Some(object), true) => RowsInput::Object(object),
            _ => {
                return Err(CommandError::new(
                    ErrorCode::ValidationFailed,
                    "give the rows either inline (parameters, at least one) or as rowsObject, not both",
                )
                .at("/payload/parameters"));
            }
        };
        let text = load_template(self.ports.templates.as_ref(), &request.provisioning_template_id).await?;
        // A template error fails every row alike: the task is refused whole, before anything.
        let template = Template::parse(&text).map_err(|errors| validation_error(&errors, "/payload"))?;
        let problems = template.check_static();
        if !problems.is_empty() {
            return Err(validation_error(&problems, "/payload"));
        }
        if request.strict {
            // Strict: a pass that only checks, so that nothing is stored for a refused task.
            let mut invalid = Vec::new();
            let mut rows = self.read_rows(&source, &template, request).await?;
            while let Some(row) = rows.next().await {
                if let Err(result) = row? {
                    invalid.push(*result);
                }
            }
            if !invalid.is_empty() {
                return Err(strict_refusal(&invalid));
            }
        }

        let now = self.now_ms();
        let fresh = BulkTask {
            task_id: task_id.clone(),
            idempotency_key: key.clone(),
            provisioning_template_id: request.provisioning_template_id.clone(),
            template: text,
            cdf_provisioning_parameters: request.cdf_provisioning_parameters.clone(),
            row_events: request.row_events,
            status: TaskStatus::InProgress,
            total_rows: 0,
            invalid_rows: 0,
            success_count: 0,
            failure_count: 0,
            skipped_count: 0,
            chunks: 0,
            created_at_ms: now,
            updated_at_ms: now,
            accepted: false,
            event_published: false,
            expires_at: now / 1000 + i64::try_from(self.settings().record_retention.as_secs()).unwrap_or(i64::MAX),
        };
        // A task accepted before (the same key again) keeps its snapshot and counters.
        let task = self.ports.bulk.create_task(&fresh).await.map_err(fail)?;
        if task.accepted {
            return Ok(task);
        }
        // One pass: invalid rows are counted as they come, valid ones leave in chunks of
        // ROWS_PER_CHUNK, sent ten at a time; memory holds one batch whatever the task's size.
        // Run again after a crash, it sends nothing that runs twice (each chunk has its key).
        let mut fan = FanOut { task: &task, chunk: Vec::new(), pending: Vec::new(), chunks: 0, total: 0, invalid: 0 };
        let mut rows = self.read_rows(&source, &template, request).await?;
        while let Some(row) = rows.next().await {
            fan.total += 1;
            match row? {
                Ok(row) => fan.chunk.push(row),
                Err(invalid) => {
                    fan.invalid += 1;
                    self.ports.bulk.record_row(&task, &invalid, self.now_ms()).await.map_err(fail)?;
                }
            }
            if fan.chunk.len() >= ROWS_PER_CHUNK
                && let Some(batch) = fan.seal()
            {
                self.send_chunks(&batch).await?;
            }
        }
        for batch in fan.seal_all() {
            self.send_chunks(&batch).await?;
        }
        let accepted = self
            .ports
            .bulk
            .finish_acceptance(&task_id, fan.total, fan.invalid, fan.chunks, self.now_ms())
            .await
            .map_err(fail)?;
        self.complete_if_done(&task_id).await?;
        Ok(self.ports.bulk.get_task(&task_id).await.map_err(fail)?.unwrap_or(accepted))
    }

    /// The rows in order, each planned against the template: `Ok` in its chunk form, or `Err`
    /// with its failed result. A stream, so that a rows file of any size is read in constant
    /// memory.
    async fn read_rows<'a>(
        &self,
        source: &RowsInput<'a>,
        template: &'a Template,
        request: &'a BulkRequest,
    ) -> Result<BoxStream<'a, Result<Result<BulkRow, Box<RowResult>>, CommandError>>, CommandError> {
        let check = move |row: u32, parameters: BTreeMap<String, String>| match template
            .plan(&parameters, &request.cdf_provisioning_parameters)
        {
            Ok(_) => Ok(BulkRow { row, parameters }),
            Err(errors) => Err(Box::new(invalid_row(row, &parameters, &errors))),
        };
        match *source {
            RowsInput::Inline(rows) => Ok(futures::stream::iter(
                rows.iter().enumerate().map(move |(i, p)| Ok(check(u32::try_from(i).unwrap_or(u32::MAX), p.clone()))),
            )
            .boxed()),
            RowsInput::Object(key) => {
                let lines = self.ports.rows.lines(key).await.map_err(missing_as(|_| {
                    CommandError::new(ErrorCode::NotFound, format!("rows file {key:?} not found"))
                        .at("/payload/rowsObject")
                }))?;
                let mut reader = RowReader::new(RowsFormat::of(key));
                let mut row = 0u32;
                Ok(lines
                    .filter_map(move |line: Result<String, PortError>| {
                        let parsed = match line {
                            Err(e) => Some(Err(fail(e))),
                            Ok(line) => match reader.row(&line) {
                                Ok(None) => None,
                                Ok(Some(parameters)) => Some(Ok(check(row, parameters))),
                                Err(why) => Some(Ok(Err(Box::new(unreadable_row(row, &why))))),
                            },
                        };
                        if matches!(parsed, Some(Ok(_))) {
                            row += 1;
                        }
                        std::future::ready(parsed)
                    })
                    .boxed())
            }
        }
    }

    /// Sends chunk messages in one batch; a chunk sent twice runs once (its key).
    async fn send_chunks(&self, bodies: &[String]) -> Result<(), CommandError> {
        let mut pending: Vec<String> = bodies.to_vec();
        for _ in 0..SEND_ATTEMPTS {
            let failures = self.ports.commands.send_batch(&pending).await.map_err(fail)?;
            if let Some(refused) = failures.iter().find(|f| !f.retryable) {
                return Err(CommandError::new(
                    ErrorCode::PermanentFailure,
                    format!("the command queue refused a chunk message: {}", refused.message),
                ));
            }
            pending = failures.iter().filter_map(|f| pending.get(f.index).cloned()).collect();
            if pending.is_empty() {
                return Ok(());
            }
        }
        Err(CommandError::new(
            ErrorCode::Transient,
            format!("{} chunk messages were not accepted by the queue", pending.len()),
        ))
    }

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
                    let counted = self.ports.bulk.record_row(&task, &result, self.now_ms()).await.map_err(fail)?;
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
        self.complete_if_done(&chunk.task_id).await?;
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
        let token = uuid::Uuid::new_v4().to_string();
        let work = Work::Row { task, row: row.row, request: &request };
        // Boxed: a row runs through the same dispatch that runs this chunk.
        let (ran, record) = match Box::pin(self.run_once(&key, work, &hash, &token, last)).await {
            Once::RowCounted(result) => (RowRun::Counted(*result), None),
            Once::Finished(record) => {
                let result = row_result(row.row, request.thing_name().map(str::to_owned), record.outcome().as_ref())?;
                (RowRun::Finished(result), Some(record))
            }
            Once::Pending(disposition) => {
                return Err(CommandError::new(
                    ErrorCode::Transient,
                    format!("row {} of task {} is not finished: {disposition:?}", row.row, task.task_id),
                ));
            }
        };
        // A row announced on its own is counted after its event went out (see `finish_row`).
        if let Some(record) = record
            && task.row_events
            && record.status == crate::domain::CommandStatus::Succeeded
            && let Disposition::Retry { reason, .. } = self.publish_owed(&record).await
        {
            return Err(CommandError::new(ErrorCode::Transient, reason.to_string()));
        }
        Ok(ran)
    }

    /// Records a row's outcome and counts it on the task in one write (unless the row has an
    /// event of its own to publish first); when that fails (the
    /// lease is gone, the row was counted before, the outcome too large for one write, an
    /// outage, a lost answer), records the outcome alone and leaves the counting to
    /// [`BulkStore::record_row`], which counts a row once.
    ///
    /// [`BulkStore::record_row`]: crate::ports::BulkStore::record_row
    pub(super) async fn finish_row(
        &self,
        key: &IdempotencyKey,
        lease_token: &str,
        outcome: Outcome,
        task: &BulkTask,
        row: u32,
        thing_name: Option<String>,
    ) -> Once {
        // A row with an event of its own is counted once the event went out, so that the
        // task's completion is never announced before one of its rows.
        let result = match row_result(row, thing_name, Some(&outcome)) {
            Ok(result) if !task.row_events => result,
            _ => return self.finish(key, lease_token, &outcome).await,
        };
        match self.ports.bulk.finish_row(key, lease_token, &outcome, task, &result, self.now_ms()).await {
            Ok(()) => Once::RowCounted(Box::new(result)),
            // Whether it failed or only its answer was lost, the record tells: finishing it
            // alone fails if the write took place, and succeeds (still holding the lease) if not.
            Err(e) => {
                tracing::debug!(idempotency_key = %key, error = %e, "row outcome and count not written together");
                self.finish(key, lease_token, &outcome).await
            }
        }
    }

    /// Completes the task once every row is counted, and announces it once: the attempt whose
    /// conditional update finishes the task publishes; a later one publishes what is still owed.
    async fn complete_if_done(&self, task_id: &TaskId) -> Result<(), CommandError> {
        let Some(mut task) = self.ports.bulk.get_task(task_id).await.map_err(fail)? else { return Ok(()) };
        if matches!(task.status, TaskStatus::InProgress | TaskStatus::Cancelling) && task.all_rows_counted() {
            let done = self
                .ports
                .bulk
                .transition(task_id, task.status, task.final_status(), self.now_ms())
                .await
                .map_err(fail)?;
            match done {
                Some(finished) => task = finished,
                None => return Ok(()), // another attempt finished it and announces it
            }
        }
        if matches!(task.status, TaskStatus::Completed | TaskStatus::Cancelled) && !task.event_published {
            let event = CloudEvent::bulk_completed(
                &self.settings().event_source,
                &task.idempotency_key,
                &task.view(),
                self.now_ms(),
            );
            self.ports.events.publish(&event).await.map_err(fail)?;
            self.ports.bulk.mark_task_event_published(task_id).await.map_err(fail)?;
        }
        Ok(())
    }

    /// Cancels a task: rows not yet started are skipped.
    pub async fn cancel_bulk(&self, task_id: &TaskId) -> Result<BulkTask, CommandError> {
        let moved = self
            .ports
            .bulk
            .transition(task_id, TaskStatus::InProgress, TaskStatus::Cancelling, self.now_ms())
            .await
            .map_err(fail)?;
        if moved.is_some() {
            self.complete_if_done(task_id).await?;
        }
        self.bulk_task(task_id).await
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

/// Where a task's rows come from.
enum RowsInput<'a> {
    /// In the request.
    Inline(&'a [BTreeMap<String, String>]),
    /// A rows file, by key.
    Object(&'a str),
}

/// The chunks being filled while a task is read.
struct FanOut<'a> {
    task: &'a BulkTask,
    /// Rows of the chunk being filled.
    chunk: Vec<BulkRow>,
    /// Sealed chunk messages not sent yet (at most one batch).
    pending: Vec<String>,
    chunks: u32,
    total: u32,
    invalid: u32,
}

impl FanOut<'_> {
    /// Seals the current chunk into a message; returns a full batch to send, if there is one.
    fn seal(&mut self) -> Option<Vec<String>> {
        if !self.chunk.is_empty() {
            let command = Command::ProvisionBulkChunk(BulkChunk {
                task_id: self.task.task_id.clone(),
                chunk: self.chunks,
                rows: std::mem::take(&mut self.chunk),
            });
            let key = chunk_key(&self.task.task_id, self.chunks);
            self.pending.push(CommandEnvelope::to_message(Some(key.as_str()), &command).to_string());
            self.chunks += 1;
        }
        (self.pending.len() >= MAX_SEND_BATCH).then(|| std::mem::take(&mut self.pending))
    }

    /// Seals what is left into the last batches.
    fn seal_all(&mut self) -> Vec<Vec<String>> {
        let full = self.seal();
        let rest = std::mem::take(&mut self.pending);
        full.into_iter().chain(std::iter::once(rest)).filter(|b| !b.is_empty()).collect()
    }
}

/// The refusal of a strict task, listing its first invalid rows.
fn strict_refusal(invalid: &[RowResult]) -> CommandError {
    let listed: Vec<String> = invalid
        .iter()
        .take(LISTED_INVALID_ROWS)
        .filter_map(|r| r.error.as_ref().map(|e| format!("row {}: {}", r.row, e.message)))
        .collect();
    CommandError::new(
        ErrorCode::ValidationFailed,
        format!("{} rows are invalid and the task is strict: {}", invalid.len(), listed.join("; ")),
    )
    .at(invalid[0].error.as_ref().and_then(|e| e.path.clone()).unwrap_or_else(|| "/parameters".into()))
}

/// The result of a line of a rows file that holds no readable row.
fn unreadable_row(row: u32, why: &str) -> RowResult {
    RowResult {
        row,
        outcome: RowOutcome::Failed,
        thing_name: None,
        certificate_id: None,
        certificate_arn: None,
        private_key_secret: None,
        error: Some(
            CommandError::new(ErrorCode::ValidationFailed, format!("row {row}: {why}")).at(format!("/rows/{row}")),
        ),
    }
}

/// The result of a row that does not plan: its errors, with the path into the request.
fn invalid_row(
    row: u32,
    parameters: &std::collections::BTreeMap<String, String>,
    errors: &[crate::domain::template::TemplateError],
) -> RowResult {
    // A request path starts with `/parameters`: the row's parameters are `/parameters/<row>`.
    let mut error = validation_error(errors, "");
    if let Some(rest) = error.path.as_deref().and_then(|p| p.strip_prefix("/parameters")) {
        error.path = Some(format!("/parameters/{row}{rest}"));
    }
    RowResult {
        row,
        outcome: RowOutcome::Failed,
        thing_name: parameters.get(THING_NAME_PARAMETER).map(|n| bounded(n)),
        certificate_id: None,
        certificate_arn: None,
        private_key_secret: None,
        error: Some(error),
    }
}
