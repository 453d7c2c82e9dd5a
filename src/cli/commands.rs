//! Single commands from the command line: `submit` puts one on the queue (and can wait for
//! its outcome); `status` prints a command's record.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::Args;
use serde_json::Value;

use super::context::Aws;
use crate::domain::{CommandEnvelope, CommandStatus, IdempotencyKey};
use crate::ports::CommandSender;

/// `submit`'s arguments.
#[derive(Debug, Args)]
pub(super) struct SubmitArgs {
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
}

/// `submit`: validates the message as the worker would, sends it, and with `--wait` polls its
/// record until it ends; exit 1 when it failed.
pub(super) async fn submit(aws: &Aws, args: SubmitArgs) -> anyhow::Result<ExitCode> {
    let SubmitArgs { file, key, wait, timeout_secs } = args;
    let mut message = super::read_json(&file)?;
    if let Some(key) = key {
        message["idempotencyKey"] = Value::String(key);
    }
    // Refuse locally what the worker would dead-letter.
    CommandEnvelope::from_value(&message, "local").map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let queue = aws.command_queue("to submit").await?;
    let message_id = queue.send(&message.to_string()).await?;
    let key = message["idempotencyKey"].as_str().map_or_else(|| message_id.clone(), str::to_owned);
    println!("{}", serde_json::json!({"messageId": message_id, "idempotencyKey": key}));
    if !wait {
        return Ok(ExitCode::SUCCESS);
    }
    let app = aws.app().await?;
    let key = IdempotencyKey::new(key);
    let timeout = Duration::from_secs(timeout_secs);
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

/// `status`: prints the record of the command with idempotency key `key`.
pub(super) async fn status(aws: &Aws, key: String) -> anyhow::Result<ExitCode> {
    match aws.app().await?.record(&IdempotencyKey::new(key.clone())).await? {
        Some(record) => println!("{}", serde_json::to_string_pretty(&record)?),
        None => bail!("no command with idempotency key {key:?}"),
    }
    Ok(ExitCode::SUCCESS)
}
