//! `records stale`: the operator's sweep for command records left in progress with no
//! delivery of their message coming ([`crate::app::sweep`]; what to do with them is in the
//! runbook, `docs/operations.md`).

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::context::Aws;
use crate::ports::CommandQueue as _;
use crate::wiring;

#[derive(Debug, Subcommand)]
pub(super) enum RecordsAction {
    /// Print the command records IN_PROGRESS whose lease expired longer ago than their message
    /// could still come back (one JSON line each; their count on stderr). Exit 1 when there are
    /// any. Scans the whole table.
    Stale(StaleArgs),
}

/// `records stale`'s arguments.
#[derive(Debug, Args)]
pub(super) struct StaleArgs {
    /// Report records whose lease expired more than SECS ago (default: the longer of
    /// CDF_VISIBILITY_TIMEOUT_SECS and CDF_MAX_RETRY_DELAY_SECS, times the command queue's
    /// maxReceiveCount, read from CDF_COMMAND_QUEUE).
    #[arg(long = "older-than", value_name = "SECS")]
    older_than: Option<u64>,
    /// Report at most this many records.
    #[arg(long, default_value_t = 1000)]
    limit: usize,
}

pub(super) async fn run(aws: &Aws, action: RecordsAction) -> anyhow::Result<ExitCode> {
    match action {
        RecordsAction::Stale(args) => stale(aws, args).await,
    }
}

async fn stale(aws: &Aws, args: StaleArgs) -> anyhow::Result<ExitCode> {
    let older_than = match args.older_than {
        Some(secs) => Duration::from_secs(secs),
        None => {
            let queue = aws.command_queue("to tell how long its messages may take (or pass --older-than)").await?;
            wiring::stale_after(&aws.config, queue.max_deliveries())
        }
    };
    let found = aws.app().await?.stale_records(older_than, args.limit).await?;
    for record in &found.records {
        println!("{}", serde_json::to_string(record)?);
    }
    eprintln!(
        "{}",
        serde_json::json!({
            "stale": found.records.len(),
            "truncated": found.truncated,
            "olderThanSecs": older_than.as_secs(),
            "leaseExpiredBefore": found.lease_expired_before.to_rfc3339(),
        })
    );
    Ok(if found.records.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
