//! The command line: one subcommand per concern, dispatched once. Offline commands
//! (`offline`: check a template, plan a request) need no configuration and touch no AWS;
//! every other command loads the configuration and the AWS clients (`context`), the one
//! place that picks concrete adapters for the ports.

mod bulk;
mod commands;
mod context;
mod offline;
mod records;
mod serve;
mod stack;
mod templates;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use serde_json::Value;

pub use stack::OUTPUT_VARIABLES;

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
    Submit(commands::SubmitArgs),
    /// Print a command's record (status, attempts, result or error).
    Status {
        /// The command's idempotency key.
        key: String,
    },
    /// Command records: `stale` lists those left in progress with no delivery of their message
    /// coming (dead-lettered or deleted).
    Records {
        #[command(subcommand)]
        action: records::RecordsAction,
    },
    /// Bulk provisioning tasks.
    Bulk {
        #[command(subcommand)]
        action: bulk::BulkAction,
    },
    /// Deploy or delete the service's CloudFormation stack.
    Stack {
        #[command(subcommand)]
        action: stack::StackAction,
    },
    /// Provisioning templates: `validate` checks a file offline; `upload`, `list`, `get` and
    /// `delete` work on the templates stored in the deployment's bucket.
    Template {
        #[command(subcommand)]
        action: templates::TemplateAction,
    },
    /// Show what a provisioning request would do: the plan, or every error in the template and
    /// the request. Offline: reads two files, touches no AWS resource.
    Plan(offline::PlanArgs),
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        CliCommand::Plan(args) => offline::plan(&args),
        CliCommand::Template { action } => templates::run(action).await,
        CliCommand::Worker => serve::worker(&context::Aws::load().await?).await,
        CliCommand::Api { bind } => serve::api(&context::Aws::load().await?, bind).await,
        CliCommand::Submit(args) => commands::submit(&context::Aws::load().await?, args).await,
        CliCommand::Status { key } => commands::status(&context::Aws::load().await?, key).await,
        CliCommand::Records { action } => records::run(&context::Aws::load().await?, action).await,
        CliCommand::Bulk { action } => bulk::run(&context::Aws::load().await?.app().await?, action).await,
        CliCommand::Stack { action } => stack::run(&context::Aws::load().await?, action).await,
    }
}

/// A JSON file.
fn read_json(path: &PathBuf) -> anyhow::Result<Value> {
    let text = read_text(path)?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// A text file, naming it when it cannot be read.
fn read_text(path: &PathBuf) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}
