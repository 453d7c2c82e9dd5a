//! What became of a message, written once: each outcome's log line and its counters go
//! together, so the log and `/metrics` cannot tell different stories.

use std::time::Duration;

use tokio::time::Instant;

use crate::app::RetryReason;
use crate::domain::{CommandError, CommandType};
use crate::metrics::{CommandOutcome, Metrics};

/// What became of a message.
#[derive(Debug)]
pub(super) enum Handled<'a> {
    /// Its outcome is recorded; the message is deleted.
    Done,
    /// Left on the queue for another attempt after `delay`.
    Retried {
        /// Why.
        reason: &'a RetryReason,
        /// When the message comes back.
        delay: Duration,
    },
    /// Refused for good: dead-lettered with its reason.
    Rejected(&'a CommandError),
    /// Abandoned at shutdown; the queue redelivers it after its visibility timeout.
    Abandoned,
}

impl Handled<'_> {
    /// The `outcome` label it is counted under.
    fn outcome(&self) -> CommandOutcome {
        match self {
            Self::Done => CommandOutcome::Done,
            Self::Retried { .. } => CommandOutcome::Retried,
            Self::Rejected(_) => CommandOutcome::Rejected,
            Self::Abandoned => CommandOutcome::Abandoned,
        }
    }

    /// Its log line. A message that does not decode is only logged: it has no command type to
    /// count it under (it is counted when dead-lettered).
    pub(super) fn log(&self) {
        match self {
            Self::Done => tracing::info!("command done"),
            Self::Retried { reason, delay } => {
                tracing::warn!(%reason, retry_in_secs = delay.as_secs(), "command will be retried");
            }
            Self::Rejected(error) => tracing::warn!(
                code = %error.code,
                path = error.path.as_deref().unwrap_or(""),
                reason = %error.message,
                "message rejected"
            ),
            Self::Abandoned => tracing::warn!("abandoned at shutdown; it will be redelivered"),
        }
    }
}

/// One command's handling as the metrics see it: in flight from [`Measured::start`] until
/// dropped, and ended by one [`Handled`], logged and counted with the time it took.
pub(super) struct Measured<'m> {
    metrics: &'m Metrics,
    command: CommandType,
    started: Instant,
}

impl<'m> Measured<'m> {
    /// A command starts being handled.
    pub(super) fn start(metrics: &'m Metrics, command: CommandType) -> Self {
        metrics.in_flight.inc();
        Self { metrics, command, started: Instant::now() }
    }

    /// Logs and counts what became of it.
    pub(super) fn finish(&self, handled: &Handled<'_>) {
        self.metrics.command(self.command, handled.outcome(), self.started.elapsed());
        handled.log();
    }
}

impl Drop for Measured<'_> {
    /// The in-flight gauge comes down however the handling ends.
    fn drop(&mut self) {
        self.metrics.in_flight.dec();
    }
}
