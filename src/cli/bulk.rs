//! `bulk submit|watch|results|cancel`: bulk provisioning tasks from the command line, with
//! rows read from an NDJSON or CSV file (or a rows file in the bucket).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Subcommand;
use serde_json::Value;

use crate::app::App;
use crate::domain::IdempotencyKey;
use crate::domain::bulk::{RowOutcome, TaskId, TaskStatus};
use crate::domain::command::BulkRequest;

#[derive(Debug, Subcommand)]
pub(super) enum BulkAction {
    /// Check every row, store the task and send its rows to the command queue; prints the task.
    Submit {
        /// Template id every row is provisioned from.
        #[arg(long)]
        template: String,
        /// Rows: NDJSON (one JSON object of parameters per line) or CSV (a header of parameter
        /// names, then one row per thing), by the file's extension.
        #[arg(long, required_unless_present = "rows_object", conflicts_with = "rows_object")]
        rows: Option<PathBuf>,
        /// Rows from a file in the deployment's bucket (its whole key, under the rows prefix,
        /// e.g. `rows/berlin.csv`), read by the service as a stream: for imports too large for
        /// memory.
        #[arg(long)]
        rows_object: Option<String>,
        /// Idempotency key: the same key is the same task (default: a new one).
        #[arg(long)]
        key: Option<String>,
        /// Refuse the whole task when any row is invalid.
        #[arg(long)]
        strict: bool,
    },
    /// Follow a task's progress until it ends: done, failed, rate, time left.
    Watch {
        /// The task id.
        task_id: String,
    },
    /// Print a task's row results as NDJSON.
    Results {
        /// The task id.
        task_id: String,
        /// Only the rows that failed.
        #[arg(long)]
        failed: bool,
    },
    /// Cancel a task: rows not started yet are skipped.
    Cancel {
        /// The task id.
        task_id: String,
    },
}

pub(super) async fn run(app: &App, action: BulkAction) -> anyhow::Result<ExitCode> {
    let task_id = |text: &str| TaskId::parse(text).with_context(|| format!("{text:?} is not a task id"));
    match action {
        BulkAction::Submit { template, rows, rows_object, key, strict } => {
            let request = BulkRequest {
                provisioning_template_id: template,
                parameters: rows.as_ref().map(read_rows).transpose()?.unwrap_or_default(),
                rows_object,
                cdf_provisioning_parameters: Value::Null,
                strict,
                row_events: false,
            };
            let key = IdempotencyKey::new(key.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()));
            let task = app.accept_bulk(&key, &request).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", serde_json::to_string_pretty(&task.view())?);
        }
        BulkAction::Watch { task_id: id } => return watch(app, &task_id(&id)?).await,
        BulkAction::Results { task_id: id, failed } => {
            let id = task_id(&id)?;
            let outcome = failed.then_some(RowOutcome::Failed);
            let mut after = None;
            loop {
                let page = app.bulk_rows(&id, after, 1_000, outcome).await.map_err(|e| anyhow::anyhow!("{e}"))?;
                for row in &page.rows {
                    println!("{}", serde_json::to_string(row)?);
                }
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
        BulkAction::Cancel { task_id: id } => {
            let task = app.cancel_bulk(&task_id(&id)?).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", serde_json::to_string_pretty(&task.view())?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Rows from an NDJSON or CSV file, streamed line by line.
fn read_rows(path: &PathBuf) -> anyhow::Result<Vec<BTreeMap<String, String>>> {
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let csv = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let mut rows = Vec::new();
    if csv {
        let mut reader = csv::Reader::from_reader(file);
        for (i, record) in reader.deserialize().enumerate() {
            rows.push(record.with_context(|| format!("{} row {}", path.display(), i + 1))?);
        }
    } else {
        use std::io::BufRead;
        for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.with_context(|| format!("reading {}", path.display()))?;
            if line.trim().is_empty() {
                continue;
            }
            rows.push(serde_json::from_str(&line).with_context(|| {
                format!("{} line {}: not a JSON object of string parameters", path.display(), i + 1)
            })?);
        }
    }
    anyhow::ensure!(!rows.is_empty(), "{} holds no rows", path.display());
    Ok(rows)
}

/// Prints a task's progress until it ends; exit 1 unless every row succeeded.
async fn watch(app: &App, id: &TaskId) -> anyhow::Result<ExitCode> {
    use std::io::{IsTerminal, Write};
    let live = std::io::stderr().is_terminal();
    let started = tokio::time::Instant::now();
    let mut first: Option<u32> = None;
    loop {
        let task = app.bulk_task(id).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let counted = task.counted();
        let base = *first.get_or_insert(counted);
        let elapsed = started.elapsed().as_secs_f64().max(0.001);
        let rate = f64::from(counted - base) / elapsed;
        let left = task.total_rows.saturating_sub(counted);
        let eta = if rate > 0.0 { format!("{:.0}s", f64::from(left) / rate) } else { "-".into() };
        let filled = usize::try_from(task.percentage_progress() / 5).unwrap_or(20);
        let line = format!(
            "[{}{}] {:>3}% {}/{} rows: {} succeeded, {} failed, {} skipped | {:.1} rows/s | ETA {eta} | {}",
            "#".repeat(filled),
            "-".repeat(20 - filled.min(20)),
            task.percentage_progress(),
            counted,
            task.total_rows,
            task.success_count,
            task.failure_count,
            task.skipped_count,
            rate,
            task.status.as_str(),
        );
        let finished = !matches!(task.status, TaskStatus::InProgress | TaskStatus::Cancelling);
        if live {
            eprint!("\r{line}");
            let _ = std::io::stderr().flush();
        } else {
            eprintln!("{line}");
        }
        if finished {
            if live {
                eprintln!();
            }
            println!("{}", serde_json::to_string_pretty(&task.view())?);
            let clean = task.status == TaskStatus::Completed && task.failure_count == 0;
            return Ok(if clean { ExitCode::SUCCESS } else { ExitCode::from(1) });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
