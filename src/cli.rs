//! The command line: run the worker or the REST facade, submit commands and read their
//! records, deploy the CloudFormation stack. This is the composition root: the one place
//! that picks concrete adapters for the ports.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde_json::Value;

use crate::adapters::aws::{self, AwsClients, SqsCommandQueue, StackDeployer};
use crate::app::App;
use crate::app::templates::UploadRefused;
use crate::config::Config;
use crate::domain::bulk::{RowOutcome, TaskId, TaskStatus};
use crate::domain::command::BulkRequest;
use crate::domain::template::{Template, TemplateError};
use crate::domain::{CommandEnvelope, CommandStatus, IdempotencyKey};
use crate::ports::CommandSender;
use crate::worker::Worker;
use crate::{api, shutdown, telemetry, wiring};

/// Event-driven AWS IoT provisioning (CDF Provisioning v1.0.0 compatible).
#[derive(Debug, Parser)]
#[command(name = "cdf-provisioning", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: CliCommand,
}

#[derive(Debug, Subcommand)]
enum CliCommand {
    /// Run the queue worker until SIGTERM or SIGINT.
    Worker,
    /// Serve the CDF Provisioning v1.0.0 REST API.
    Api {
        /// Address to listen on (default: CDF_API_BIND).
        #[arg(long)]
        bind: Option<String>,
    },
    /// Validate a command message and put it on the command queue.
    Submit {
        /// JSON file holding one command envelope (see schemas/command.v1.json).
        file: PathBuf,
        /// Idempotency key to use instead of the file's.
        #[arg(long)]
        key: Option<String>,
        /// Wait for the outcome and print the command's record.
        #[arg(long)]
        wait: bool,
        /// How long --wait waits.
        #[arg(long, default_value_t = 120)]
        timeout_secs: u64,
    },
    /// Print a command's record (status, attempts, result or error).
    Status {
        /// The command's idempotency key.
        key: String,
    },
    /// Bulk provisioning tasks.
    Bulk {
        #[command(subcommand)]
        action: BulkAction,
    },
    /// Deploy or delete the service's CloudFormation stack.
    Stack {
        #[command(subcommand)]
        action: StackAction,
    },
    /// Work with provisioning templates, without touching AWS.
    Template {
        #[command(subcommand)]
        action: TemplateAction,
    },
    /// Show what a provisioning request would do: the plan, or every error in the template and
    /// the request. Touches no AWS resource.
    Provision {
        /// A provisioning request (the CDF POST /things body: provisioningTemplateId,
        /// parameters, cdfProvisioningParameters).
        request: PathBuf,
        /// The template file to evaluate.
        #[arg(long)]
        template: PathBuf,
        /// Required: this version only plans.
        #[arg(long, required = true)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
enum TemplateAction {
    /// Check a template; with --parameters, evaluate it and print the plan. Exit 1 and every
    /// error (with its JSON path) when something is wrong.
    Validate {
        /// Template file.
        file: PathBuf,
        /// JSON object of parameter values.
        #[arg(long)]
        parameters: Option<PathBuf>,
        /// JSON object of cdfProvisioningParameters.
        #[arg(long)]
        cdf_parameters: Option<PathBuf>,
    },
    /// Store a template where the workers read it, once it has no error (checked without
    /// parameters first); prints its version.
    Upload {
        /// Template id (its key in the bucket, without prefix and suffix).
        id: String,
        /// Template file.
        file: PathBuf,
    },
    /// List the stored templates with their versions.
    List,
    /// Print a stored template.
    Get {
        /// Template id.
        id: String,
    },
    /// Delete a stored template.
    Delete {
        /// Template id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum BulkAction {
    /// Check every row, store the task and send its rows to the command queue; prints the task.
    Submit {
        /// Template id every row is provisioned from.
        #[arg(long)]
        template: String,
        /// Rows: NDJSON (one JSON object of parameters per line) or CSV (a header of parameter
        /// names, then one row per thing), by the file's extension.
        #[arg(long, required_unless_present = "rows_object", conflicts_with = "rows_object")]
        rows: Option<PathBuf>,
        /// Rows from a file in the deployment's bucket (its key), read by the service as a
        /// stream: for imports too large for memory.
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

#[derive(Debug, Subcommand)]
enum StackAction {
    /// Create or update the stack, wait, and print its outputs as CDF_* environment lines.
    Deploy {
        /// Stack name; resource names derive from it.
        #[arg(long)]
        name: String,
        /// Template file.
        #[arg(long, default_value = "infra/cloudformation.yaml")]
        template: PathBuf,
        /// Template parameter as KEY=VALUE (repeatable).
        #[arg(long = "param")]
        params: Vec<String>,
    },
    /// Delete the stack.
    Delete {
        /// Stack name.
        #[arg(long)]
        name: String,
    },
}

/// Maps stack outputs to the variables the service reads.
pub const OUTPUT_VARIABLES: [(&str, &str); 5] = [
    ("CommandQueueUrl", "CDF_COMMAND_QUEUE"),
    ("DeadLetterQueueUrl", "CDF_DEAD_LETTER_QUEUE"),
    ("EventsQueueUrl", "CDF_EVENTS_DESTINATION"),
    ("TableName", "CDF_TABLE"),
    ("BucketName", "CDF_BUCKET"),
];

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        CliCommand::Template { action: TemplateAction::Validate { file, parameters, cdf_parameters } } => {
            let parameters = parameters.map(|p| read_json(&p)).transpose()?;
            let cdf_parameters = cdf_parameters.map(|p| read_json(&p)).transpose()?;
            let template = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            return Ok(print_plan(&template, parameters.as_ref(), cdf_parameters.as_ref().unwrap_or(&Value::Null)));
        }
        CliCommand::Provision { request, template, dry_run: _ } => {
            let request = read_json(&request)?;
            let template =
                std::fs::read_to_string(&template).with_context(|| format!("reading {}", template.display()))?;
            let parameters = request.get("parameters").cloned().unwrap_or_else(|| Value::Object(Default::default()));
            let cdf = request.get("cdfProvisioningParameters").cloned().unwrap_or(Value::Null);
            return Ok(print_plan(&template, Some(&parameters), &cdf));
        }
        _ => {}
    }
    let config = Config::from_env()?;
    telemetry::init(config.log_format, &config.log_level);
    let clients = AwsClients::load(config.aws_max_attempts, config.wait_time).await;
    match cli.command {
        CliCommand::Template { action } => return manage_templates(&build_app(&config, &clients).await?, action).await,
        CliCommand::Worker => {
            let queue_name = Config::require(&config.command_queue, "CDF_COMMAND_QUEUE", "to run the worker")?;
            let queue = SqsCommandQueue::connect(&clients, queue_name, config.dead_letter_queue.as_deref())
                .await
                .context("resolving the command queue")?;
            tracing::info!(queue = queue.url(), dead_letter_queue = queue.dead_letter_url(), "using queues");
            let app = build_app(&config, &clients).await?;
            let token = shutdown::on_signal();
            if let Some(bind) = &config.metrics_bind {
                let listener =
                    tokio::net::TcpListener::bind(bind).await.with_context(|| format!("binding {bind} for metrics"))?;
                tracing::info!(address = %listener.local_addr()?, "metrics at /metrics");
                let router = axum::Router::new().route("/metrics", axum::routing::get(crate::metrics::handler));
                let stop = token.clone();
                tokio::spawn(async move {
                    if let Err(e) = axum::serve(listener, router).with_graceful_shutdown(stop.cancelled_owned()).await {
                        tracing::error!(error = %e, "the metrics server stopped");
                    }
                });
            }
            Worker::new(app, Arc::new(queue), wiring::worker_settings(&config)).run(token).await;
        }
        CliCommand::Api { bind } => {
            let app = build_app(&config, &clients).await?;
            let bind = bind.unwrap_or_else(|| config.api_bind.clone());
            let listener = tokio::net::TcpListener::bind(&bind).await.with_context(|| format!("binding {bind}"))?;
            tracing::info!(address = %listener.local_addr()?, "REST facade listening");
            let token = shutdown::on_signal();
            let router = api::router_with(app, wiring::api_settings(&config));
            axum::serve(listener, router).with_graceful_shutdown(token.cancelled_owned()).await?;
        }
        CliCommand::Submit { file, key, wait, timeout_secs } => {
            return submit(&config, &clients, &file, key, wait, Duration::from_secs(timeout_secs)).await;
        }
        CliCommand::Status { key } => {
            let app = build_app(&config, &clients).await?;
            match app.record(&IdempotencyKey::new(key.clone())).await? {
                Some(record) => println!("{}", serde_json::to_string_pretty(&record)?),
                None => bail!("no command with idempotency key {key:?}"),
            }
        }
        CliCommand::Stack { action } => stack(&clients, action).await?,
        CliCommand::Bulk { action } => return bulk(&build_app(&config, &clients).await?, action).await,
        CliCommand::Provision { .. } => unreachable!("handled without AWS above"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `template upload|list|get|delete`.
async fn manage_templates(app: &App, action: TemplateAction) -> anyhow::Result<ExitCode> {
    match action {
        TemplateAction::Validate { .. } => unreachable!("validated without AWS above"),
        TemplateAction::Upload { id, file } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            match app.upload_template(&id, &text).await {
                Ok((version, created)) => {
                    eprintln!("{} {id}", if created { "created" } else { "replaced" });
                    println!("{}", serde_json::to_string(&version)?);
                }
                Err(UploadRefused::Invalid(errors)) => {
                    for e in &errors {
                        eprintln!("error: {e}");
                    }
                    eprintln!("{} error(s); nothing stored", errors.len());
                    return Ok(ExitCode::from(1));
                }
                Err(UploadRefused::Failed(error)) => bail!("{error}"),
            }
        }
        TemplateAction::List => {
            for template in app.templates().await? {
                println!("{}", serde_json::to_string(&template)?);
            }
        }
        TemplateAction::Get { id } => print!("{}", app.template(&id).await?.0),
        TemplateAction::Delete { id } => app.delete_template(&id).await?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn build_app(config: &Config, clients: &AwsClients) -> anyhow::Result<App> {
    Ok(App::new(aws::ports(config, clients).await?, wiring::app_settings(config)))
}

async fn submit(
    config: &Config,
    clients: &AwsClients,
    file: &PathBuf,
    key: Option<String>,
    wait: bool,
    timeout: Duration,
) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let mut message: Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))?;
    if let Some(key) = key {
        message["idempotencyKey"] = Value::String(key);
    }
    // Refuse locally what the worker would dead-letter.
    CommandEnvelope::from_value(&message, "local").map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let queue_name = Config::require(&config.command_queue, "CDF_COMMAND_QUEUE", "to submit")?;
    let queue = SqsCommandQueue::connect(clients, queue_name, config.dead_letter_queue.as_deref()).await?;
    let message_id = queue.send(&message.to_string()).await?;
    let key = message["idempotencyKey"].as_str().map_or_else(|| message_id.clone(), str::to_owned);
    println!("{}", serde_json::json!({"messageId": message_id, "idempotencyKey": key}));
    if !wait {
        return Ok(ExitCode::SUCCESS);
    }
    let app = build_app(config, clients).await?;
    let key = IdempotencyKey::new(key);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(record) = app.record(&key).await?
            && record.status.is_terminal()
        {
            println!("{}", serde_json::to_string_pretty(&record)?);
            let ok = record.status == CommandStatus::Succeeded;
            return Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) });
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("no outcome for {key} after {}s (is a worker running?)", timeout.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn stack(clients: &AwsClients, action: StackAction) -> anyhow::Result<()> {
    let deployer = StackDeployer::new(clients);
    match action {
        StackAction::Deploy { name, template, params } => {
            let body = std::fs::read_to_string(&template).with_context(|| format!("reading {}", template.display()))?;
            let params = params
                .iter()
                .map(|p| {
                    p.split_once('=')
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .with_context(|| format!("--param {p:?} is not KEY=VALUE"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let outputs = deployer.deploy(&name, &body, &params, Duration::from_secs(900)).await?;
            for (output, var) in OUTPUT_VARIABLES {
                if let Some(value) = outputs.get(output) {
                    println!("{var}={value}");
                }
            }
        }
        StackAction::Delete { name } => deployer.delete(&name).await?,
    }
    Ok(())
}

async fn bulk(app: &App, action: BulkAction) -> anyhow::Result<ExitCode> {
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

fn read_json(path: &PathBuf) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// Prints the plan (JSON, then its steps) or every error; exit code 1 on errors.
fn print_plan(template: &str, parameters: Option<&Value>, cdf_parameters: &Value) -> ExitCode {
    let report = |errors: Vec<TemplateError>| {
        for e in &errors {
            eprintln!("error: {e}");
        }
        eprintln!("{} error(s)", errors.len());
        ExitCode::from(1)
    };
    let template = match Template::parse(template) {
        Ok(t) => t,
        Err(errors) => return report(errors),
    };
    let Some(parameters) = parameters else {
        // Without parameters: every error that does not depend on their values.
        let errors = template.check_static();
        if !errors.is_empty() {
            return report(errors);
        }
        let declared: Vec<_> = template.parameters.keys().cloned().collect();
        println!("template is valid; parameters: {}", declared.join(", "));
        return ExitCode::SUCCESS;
    };
    let parameters = match parameters {
        Value::Object(map) => {
            let mut values = BTreeMap::new();
            for (k, v) in map {
                match v {
                    Value::String(s) => {
                        values.insert(k.clone(), s.clone());
                    }
                    other => {
                        return report(vec![TemplateError::request(
                            &format!("/parameters/{k}"),
                            format!("parameter values must be strings, not {other}"),
                        )]);
                    }
                }
            }
            values
        }
        _ => return report(vec![TemplateError::request("/parameters", "parameters must be an object")]),
    };
    match template.plan(&parameters, cdf_parameters) {
        Ok(plan) => {
            println!("{}", serde_json::to_string_pretty(&plan).unwrap_or_default());
            for (i, step) in plan.describe_steps().iter().enumerate() {
                println!("{:>2}. {step}", i + 1);
            }
            ExitCode::SUCCESS
        }
        Err(errors) => report(errors),
    }
}
