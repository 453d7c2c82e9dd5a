//! Bulk provisioning: a task is a template plus rows of parameters, fanned out through the
//! command queue in chunks and run row by row through the same engine as `provisionThing`.
//!
//! The task item holds the counters. Each row's outcome is a row item, written together with
//! the counter it changes in one transaction that is conditional on the row item not existing
//! yet, so a row counts exactly once however often it runs. The task completes when every row
//! is counted; the one attempt whose conditional update moves it to `Completed` (or
//! `Cancelled`) announces it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::CommandError;
use super::ids::IdempotencyKey;
pub use super::ids::TaskId;
use super::thing::{Arn, CertificateId, THING_NAME_PARAMETER};
use super::time::Timestamp;

/// Rows per chunk message: 100 rows keep a message far below SQS's 256 KiB and a chunk's run
/// well inside a visibility timeout, and make a 100,000-row task about a thousand messages.
pub const ROWS_PER_CHUNK: usize = 100;

/// Where a task stands, in AWS's vocabulary (`DescribeThingRegistrationTask`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
pub enum TaskStatus {
    /// Rows are being provisioned.
    InProgress,
    /// Every row is counted.
    Completed,
    /// The task could not be run (its template vanished, say).
    Failed,
    /// Cancelled by a caller; rows already running finish, pending ones are skipped.
    Cancelling,
    /// Cancelled, and every row is counted (done, failed or skipped).
    Cancelled,
}

impl TaskStatus {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Parses the stored spelling.
    pub fn parse(text: &str) -> Option<Self> {
        text.parse().ok()
    }

    /// Whether rows may still start.
    pub fn accepts_rows(self) -> bool {
        self == Self::InProgress
    }
}

/// A bulk task: the seed's `BulkRegistrationTask` plus the row total and invalid-row count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkTask {
    /// The task.
    pub task_id: TaskId,
    /// The key it was submitted with, which producers correlate its events by.
    pub idempotency_key: IdempotencyKey,
    /// Template every row is provisioned from.
    pub provisioning_template_id: String,
    /// The template's text when the task was accepted: every row runs the same template, even
    /// if the object in S3 changes while the task runs.
    pub template: String,
    /// CDF extension parameters for every row.
    #[serde(default)]
    pub cdf_provisioning_parameters: serde_json::Value,
    /// Whether each provisioned row is announced with its own `thing.provisioned`.
    #[serde(default)]
    pub row_events: bool,
    /// Where the task stands.
    pub status: TaskStatus,
    /// Rows in the request.
    pub total_rows: u32,
    /// Rows refused before any device was made (counted in `failureCount` too).
    pub invalid_rows: u32,
    /// Rows provisioned.
    pub success_count: u32,
    /// Rows that failed, invalid ones included.
    pub failure_count: u32,
    /// Rows skipped because the task was cancelled.
    pub skipped_count: u32,
    /// Chunk messages the rows were fanned out in.
    pub chunks: u32,
    /// Creation time.
    pub created_at_ms: Timestamp,
    /// Last change.
    pub updated_at_ms: Timestamp,
    /// Whether every row has been read and fanned out, so that `total_rows` and
    /// `invalid_rows` are final; the task cannot complete before.
    pub accepted: bool,
    /// Whether `bulk.completed` went out.
    pub event_published: bool,
    /// When the store may forget the task and its rows (unix seconds; see [`Timestamp::expiry`]).
    pub expires_at: i64,
}

impl BulkTask {
    /// Rows counted so far.
    pub fn counted(&self) -> u32 {
        self.success_count + self.failure_count + self.skipped_count
    }

    /// Whether every row is read and counted.
    pub fn all_rows_counted(&self) -> bool {
        self.accepted && self.counted() >= self.total_rows
    }

    /// Share of rows counted, 0 to 100.
    pub fn percentage_progress(&self) -> u32 {
        (self.counted().min(self.total_rows) * 100).checked_div(self.total_rows).unwrap_or(100)
    }

    /// The status a finished task takes: `Cancelled` after a cancel, else `Completed`.
    pub fn final_status(&self) -> TaskStatus {
        if self.status == TaskStatus::Cancelling { TaskStatus::Cancelled } else { TaskStatus::Completed }
    }

    /// The seed's `BulkRegistrationTask` view, plus this service's counters.
    pub fn view(&self) -> BulkTaskView {
        BulkTaskView {
            task_id: self.task_id.clone(),
            status: self.status,
            percentage_progress: self.percentage_progress(),
            success_count: self.success_count,
            failure_count: self.failure_count,
            creation_date: self.created_at_ms.whole_seconds().to_rfc3339(),
            last_modified_date: self.updated_at_ms.whole_seconds().to_rfc3339(),
            total_rows: self.total_rows,
            invalid_rows: self.invalid_rows,
            skipped_count: self.skipped_count,
        }
    }
}

/// The seed's `BulkRegistrationTask` (what REST answers and what results carry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkTaskView {
    /// The task.
    pub task_id: TaskId,
    /// AWS's vocabulary.
    pub status: TaskStatus,
    /// Share of rows counted, 0 to 100.
    pub percentage_progress: u32,
    /// Rows provisioned.
    pub success_count: u32,
    /// Rows failed, invalid ones included.
    pub failure_count: u32,
    /// RFC 3339.
    pub creation_date: String,
    /// RFC 3339.
    pub last_modified_date: String,
    /// Rows in the request.
    pub total_rows: u32,
    /// Rows refused before any device was made.
    pub invalid_rows: u32,
    /// Rows skipped by a cancel.
    pub skipped_count: u32,
}

/// How one row ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[derive(strum::IntoStaticStr, strum::EnumString, strum::VariantArray)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum RowOutcome {
    /// The device was provisioned.
    Succeeded,
    /// The row failed (see its error); whatever it made was undone.
    Failed,
    /// The task was cancelled before the row started.
    Skipped,
}

impl RowOutcome {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One row's result, stored under its task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RowResult {
    /// Position of the row in the request (0-based).
    pub row: u32,
    /// How it ended.
    pub outcome: RowOutcome,
    /// The thing, when the row names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thing_name: Option<String>,
    /// The certificate made for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_id: Option<CertificateId>,
    /// Its ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_arn: Option<Arn>,
    /// Where its generated private key was delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_secret: Option<String>,
    /// Why it failed, with the path at fault (`/parameters/<row>/<field>` for an invalid row).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<CommandError>,
}

/// One row of a chunk: its position and its parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BulkRow {
    /// Position of the row in the request (0-based).
    pub row: u32,
    /// Template parameters.
    pub parameters: BTreeMap<String, String>,
}

impl BulkRow {
    /// The thing the row names: its `ThingName` parameter, if it has one.
    pub fn thing_name(&self) -> Option<&str> {
        self.parameters.get(THING_NAME_PARAMETER).map(String::as_str)
    }
}

/// How a rows file is written, told by its name: `.csv` is CSV with a header row naming the
/// parameters; anything else is NDJSON, a JSON object of string parameters per line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowsFormat {
    /// One JSON object per line.
    Ndjson,
    /// A header line, then one record per line (a quoted field may not span lines).
    Csv,
}

impl RowsFormat {
    /// The format of the file named `key`.
    pub fn of(key: &str) -> Self {
        if key.to_ascii_lowercase().ends_with(".csv") { Self::Csv } else { Self::Ndjson }
    }
}

/// Reads a rows file line by line, in constant memory.
#[derive(Debug)]
pub struct RowReader {
    format: RowsFormat,
    header: Option<Vec<String>>,
}

impl RowReader {
    /// A reader of a file in `format`.
    pub fn new(format: RowsFormat) -> Self {
        Self { format, header: None }
    }

    /// The parameters on `line`; `Ok(None)` for a line that holds no row (blank, the CSV
    /// header). An error says what is wrong with the line, without repeating it.
    pub fn row(&mut self, line: &str) -> Result<Option<BTreeMap<String, String>>, String> {
        if line.trim().is_empty() {
            return Ok(None);
        }
        match self.format {
            RowsFormat::Ndjson => serde_json::from_str(line)
                .map(Some)
                // The parser's message quotes the line: it is not repeated.
                .map_err(|_| "not a JSON object of string parameters".to_owned()),
            RowsFormat::Csv => {
                let record = csv::ReaderBuilder::new()
                    .has_headers(false)
                    .from_reader(line.as_bytes())
                    .records()
                    .next()
                    .transpose()
                    .map_err(|_| "not valid CSV".to_owned())?
                    .unwrap_or_default();
                let fields: Vec<String> = record.iter().map(str::to_owned).collect();
                let Some(header) = &self.header else {
                    self.header = Some(fields);
                    return Ok(None);
                };
                if fields.len() != header.len() {
                    return Err(format!("{} fields where the header names {}", fields.len(), header.len()));
                }
                Ok(Some(header.iter().cloned().zip(fields).filter(|(_, v)| !v.is_empty()).collect()))
            }
        }
    }
}

/// Why the rows file `key` may not be read, when it may not: it must lie under `prefix` (the
/// whole key is given, prefix included), be relative and take no `..` step, so that a task
/// reads nothing else of the bucket (CA keys, generated secrets, templates).
pub fn rows_key_refusal(key: &str, prefix: &str) -> Option<String> {
    if key.starts_with('/') || key.starts_with('\\') {
        return Some("a rows file key is relative to the bucket, not absolute".to_owned());
    }
    if key.split(['/', '\\']).any(|step| step == "..") {
        return Some("a rows file key may not take a `..` step".to_owned());
    }
    match key.strip_prefix(prefix) {
        Some(name) if !name.is_empty() => None,
        _ => Some(format!("a rows file must lie under {prefix:?} (its key starts with it)")),
    }
}

/// The idempotency key of a row's own command record: a row is provisioned once per task.
pub fn row_key(task: &TaskId, row: u32) -> IdempotencyKey {
    IdempotencyKey::new(format!("bulk:{task}:row:{row}"))
}

/// Who cancelled a task, as the claimant of its announcement.
pub fn cancel_key(task: &TaskId) -> IdempotencyKey {
    IdempotencyKey::new(format!("bulk:{task}:cancel"))
}

/// The idempotency key of a chunk message: a chunk sent twice runs once.
pub fn chunk_key(task: &TaskId, chunk: u32) -> IdempotencyKey {
    IdempotencyKey::new(format!("bulk:{task}:chunk:{chunk}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> BulkTask {
        BulkTask {
            task_id: TaskId::for_key(&IdempotencyKey::new("k")),
            idempotency_key: IdempotencyKey::new("k"),
            provisioning_template_id: "t".into(),
            template: "{}".into(),
            cdf_provisioning_parameters: serde_json::Value::Null,
            row_events: false,
            status: TaskStatus::InProgress,
            total_rows: 10,
            invalid_rows: 2,
            success_count: 5,
            failure_count: 2,
            skipped_count: 0,
            chunks: 1,
            created_at_ms: Timestamp::from_millis(1_764_000_000_123),
            updated_at_ms: Timestamp::from_millis(1_764_000_060_000),
            accepted: true,
            event_published: false,
            expires_at: 0,
        }
    }

    #[test]
    fn a_rows_key_lies_under_the_prefix_relative_and_without_dot_dot() {
        assert_eq!(rows_key_refusal("rows/berlin.csv", "rows/"), None);
        assert_eq!(rows_key_refusal("rows/a/b..c.ndjson", "rows/"), None);
        assert_eq!(rows_key_refusal("anything.csv", ""), None);
        for key in ["ca-keys/ca.pem", "rows/", "rowsx/a.csv", "/rows/a.csv", "rows/../ca-keys/ca.pem", "rows\\..\\x"] {
            assert!(rows_key_refusal(key, "rows/").is_some(), "{key}");
        }
        assert!(rows_key_refusal("../x.csv", "").is_some());
    }

    #[test]
    fn rows_files_are_read_line_by_line() {
        let mut csv = RowReader::new(RowsFormat::of("import/rows.CSV"));
        assert_eq!(csv.row("ThingName,Firmware").unwrap(), None);
        let row = csv.row(r#"dev-1,"1.2, beta""#).unwrap().unwrap();
        assert_eq!(row["Firmware"], "1.2, beta");
        assert_eq!(csv.row("dev-2,").unwrap().unwrap().len(), 1, "an empty field is no parameter");
        assert!(csv.row("dev-3,a,b").unwrap_err().contains("3 fields"));
        let mut ndjson = RowReader::new(RowsFormat::of("rows.ndjson"));
        assert_eq!(ndjson.row("").unwrap(), None);
        assert_eq!(ndjson.row(r#"{"ThingName":"d"}"#).unwrap().unwrap()["ThingName"], "d");
        assert!(ndjson.row(r#"{"ThingName":7}"#).is_err());
    }

    #[test]
    fn row_outcomes_are_stored_as_serialized() {
        for outcome in [RowOutcome::Succeeded, RowOutcome::Failed, RowOutcome::Skipped] {
            assert_eq!(serde_json::to_value(outcome).unwrap(), outcome.as_str());
        }
    }

    #[test]
    fn the_same_key_is_the_same_task() {
        let a = TaskId::for_key(&IdempotencyKey::new("import-42"));
        assert_eq!(a, TaskId::for_key(&IdempotencyKey::new("import-42")));
        assert_ne!(a, TaskId::for_key(&IdempotencyKey::new("import-43")));
        assert_eq!(TaskId::parse(a.as_str()), Some(a));
        assert_eq!(TaskId::parse("../etc"), None);
    }

    #[test]
    fn progress_counts_every_ended_row() {
        let mut t = task();
        assert_eq!(t.percentage_progress(), 70);
        assert!(!t.all_rows_counted());
        t.success_count = 8;
        assert!(t.all_rows_counted());
        t.accepted = false;
        assert!(!t.all_rows_counted(), "not before every row is read");
        t.accepted = true;
        assert_eq!(t.final_status(), TaskStatus::Completed);
        t.status = TaskStatus::Cancelling;
        assert_eq!(t.final_status(), TaskStatus::Cancelled);
        let view = serde_json::to_value(t.view()).unwrap();
        assert_eq!(view["status"], "Cancelling");
        assert_eq!(view["creationDate"], "2025-11-24T16:00:00Z");
        assert_eq!(view["percentageProgress"], 100);
    }
}
