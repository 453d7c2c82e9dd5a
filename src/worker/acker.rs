//! Deletes processed messages in batches of up to 10 (`DeleteMessageBatch`), retrying the
//! entries SQS reports as failed when retrying can help.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::sync::mpsc;

use crate::ports::CommandQueue;

/// How long the first handle of a batch waits for company.
const LINGER: Duration = Duration::from_millis(50);
/// Retries per batch before the handles are given up (the messages then come back and are
/// recognised as done by their records).
const RETRIES: usize = 3;

/// Runs until the channel closes, then flushes what is left.
pub(super) async fn run(queue: Arc<dyn CommandQueue>, mut handles: mpsc::Receiver<String>) {
    while let Some(first) = handles.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + LINGER;
        while batch.len() < 10 {
            match tokio::time::timeout_at(deadline, handles.recv()).await {
                Ok(Some(h)) => batch.push(h),
                Ok(None) | Err(_) => break,
            }
        }
        delete(queue.as_ref(), batch).await;
    }
}

async fn delete(queue: &dyn CommandQueue, mut batch: Vec<String>) {
    // The batch shrinks to the retryable failures between attempts, so the delays come from
    // backon's schedule and the loop stays here.
    let mut pauses = ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(100))
        .with_jitter()
        .with_max_times(RETRIES)
        .build();
    for attempt in 1.. {
        match queue.delete_batch(&batch).await {
            Ok(failures) => {
                for f in failures.iter().filter(|f| !f.retryable) {
                    tracing::warn!(reason = %f.message, "delete refused; the message will be redelivered and recognised as done");
                }
                batch = failures.into_iter().filter(|f| f.retryable).map(|f| f.receipt_handle).collect();
            }
            Err(e) if e.is_retryable() => tracing::warn!(error = %e, attempt, "delete batch failed"),
            Err(e) => {
                tracing::error!(error = %e, "delete batch failed permanently");
                return;
            }
        }
        if batch.is_empty() {
            return;
        }
        let Some(pause) = pauses.next() else { break };
        tokio::time::sleep(pause).await;
    }
    tracing::warn!(count = batch.len(), "gave up deleting; those messages will be redelivered and recognised as done");
}
