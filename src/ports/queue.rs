//! The command queue: consumed by the worker, fed by producers (the CLI, the REST facade,
//! bulk fan-out).

use std::time::Duration;

use async_trait::async_trait;

use super::PortError;
use crate::domain::CommandError;

/// A message received from the command queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage {
    /// The queue's id for the message.
    pub message_id: String,
    /// Handle for delete / visibility calls on this delivery.
    pub receipt_handle: String,
    /// The body as sent.
    pub body: String,
    /// How often the message has been received, this delivery included.
    pub receive_count: u32,
}

/// A receipt handle the queue refused to delete, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteFailure {
    /// The handle.
    pub receipt_handle: String,
    /// Whether deleting again may work (false: the handle is stale, the message will return).
    pub retryable: bool,
    /// The queue's explanation.
    pub message: String,
}

/// The command queue (SQS).
#[async_trait]
pub trait CommandQueue: Send + Sync {
    /// How many deliveries a message gets before the queue moves it to its dead-letter queue
    /// (SQS's `maxReceiveCount`), when known: the last one must not leave a command half-done.
    fn max_deliveries(&self) -> Option<u32>;
    /// Long-polls for up to `max` (≤ 10) messages, waiting at most `wait`.
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<QueueMessage>, PortError>;
    /// Deletes up to 10 messages; returns those that could not be deleted.
    async fn delete_batch(&self, receipt_handles: &[String]) -> Result<Vec<DeleteFailure>, PortError>;
    /// Hides a message for `timeout` from now (0: visible again at once).
    async fn change_visibility(&self, receipt_handle: &str, timeout: Duration) -> Result<(), PortError>;
    /// Copies a refused message to the dead-letter queue with the reason attached.
    async fn dead_letter(&self, message: &QueueMessage, reason: &CommandError) -> Result<(), PortError>;
}

/// A message of a batch the queue did not accept, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendFailure {
    /// Position of the message in the batch.
    pub index: usize,
    /// Whether sending it again may work.
    pub retryable: bool,
    /// The queue's explanation.
    pub message: String,
}

/// Largest batch [`CommandSender::send_batch`] takes (SQS: 10 messages, 256 KiB in all).
pub const MAX_SEND_BATCH: usize = 10;

/// The producer side of the command queue.
#[async_trait]
pub trait CommandSender: Send + Sync {
    /// Sends one message; returns the queue's id for it.
    async fn send(&self, body: &str) -> Result<String, PortError>;

    /// Sends up to [`MAX_SEND_BATCH`] message bodies in one call; returns those that were
    /// not accepted. Message ids of the accepted ones are not needed: commands are tracked
    /// by their idempotency keys.
    async fn send_batch(&self, bodies: &[String]) -> Result<Vec<SendFailure>, PortError>;
}
