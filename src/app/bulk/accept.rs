//! Accepting a task: the template and every row are checked before any device is made, the
//! task is stored with a snapshot of the template, and its valid rows are sent to the command
//! queue in chunks. Idempotent: the task id comes from the idempotency key and each chunk
//! message has its own key.

use futures::StreamExt;
use futures::stream::BoxStream;
use std::collections::BTreeMap;

use super::super::core::App;
use super::super::provision::{in_payload, load_template, validation_error};
use super::super::{fail, missing_as};
use crate::domain::bulk::{
    BulkRow, BulkTask, ROWS_PER_CHUNK, RowOutcome, RowReader, RowResult, RowsFormat, TaskId, TaskStatus, chunk_key,
    rows_key_refusal,
};
use crate::domain::command::{BulkChunk, BulkRequest, bounded};
use crate::domain::template::Template;
use crate::domain::thing::THING_NAME_PARAMETER;
use crate::domain::{Command, CommandEnvelope, CommandError, ErrorCode, IdempotencyKey, Location};
use crate::ports::bulk::Acceptance;
use crate::ports::{MAX_SEND_BATCH, PortError};

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
            (Some(object), true) => {
                // Refused before anything is read: a rows file lies under the rows prefix.
                if let Some(why) = rows_key_refusal(object, &self.settings().rows_prefix) {
                    return Err(
                        CommandError::new(ErrorCode::ValidationFailed, why).at(Location::payload().child("rowsObject"))
                    );
                }
                RowsInput::Object(object)
            }
            _ => {
                return Err(CommandError::new(
                    ErrorCode::ValidationFailed,
                    "give the rows either inline (parameters, at least one) or as rowsObject, not both",
                )
                .at(Location::payload().child("parameters")));
            }
        };
        if let RowsInput::Object(object) = &source {
            // A rows file that is not there is the request's mistake: 404, and no task stored.
            drop(self.ports.rows.lines(object).await.map_err(missing_as(|_| {
                CommandError::new(ErrorCode::NotFound, format!("rows object {:?} does not exist", bounded(object)))
                    .at(Location::payload().child("rowsObject"))
            }))?);
        }
        let text = load_template(self.ports.templates.as_ref(), &request.provisioning_template_id).await?;
        // A template error fails every row alike: the task is refused whole, before anything.
        let template = Template::parse(&text).map_err(|errors| validation_error(&errors, in_payload))?;
        let problems = template.check_static();
        if !problems.is_empty() {
            return Err(validation_error(&problems, in_payload));
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

        let now = self.now();
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
            expires_at: now.expiry(self.settings().record_retention),
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
                    self.ports.bulk.record_row(&task, &invalid, self.now()).await.map_err(fail)?;
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
            .finish_acceptance(
                &task_id,
                Acceptance { total_rows: fan.total, invalid_rows: fan.invalid, chunks: fan.chunks },
                self.now(),
            )
            .await
            .map_err(fail)?;
        self.complete_if_done(&task_id, key).await?;
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
                        .at(Location::payload().child("rowsObject"))
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
    .at(invalid[0]
        .error
        .as_ref()
        .and_then(|e| e.path.clone())
        .unwrap_or_else(|| Location::message().child("parameters")))
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
            CommandError::new(ErrorCode::ValidationFailed, format!("row {row}: {why}"))
                .at(Location::message().child("rows").child(row)),
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
    let error = validation_error(errors, |pointer| match pointer.strip_prefix("/parameters") {
        Some(rest) => Location::message().child("parameters").child(row).join(rest),
        None => Location::message().join(pointer),
    });
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
