//! Retrying IoT's eventual-consistency conflicts ("still attached to one or more principals"
//! right after a detach), which the SDK's own retry does not cover.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use crate::ports::{ErrorKind, PortError};

/// How long to keep retrying a call that IoT refuses with a conflict.
#[derive(Debug, Clone, Copy)]
pub struct ConflictRetry {
    /// First delay.
    pub first_delay: Duration,
    /// Longest delay between two attempts.
    pub max_delay: Duration,
    /// Retries after the first attempt.
    pub max_retries: usize,
}

impl Default for ConflictRetry {
    /// About 15 s in all: 0.25, 0.5, 1, 2, 4, 4, 4 s.
    fn default() -> Self {
        Self { first_delay: Duration::from_millis(250), max_delay: Duration::from_secs(4), max_retries: 7 }
    }
}

impl ConflictRetry {
    /// Runs `call` until it succeeds, fails with something other than a conflict, or the
    /// retries run out.
    pub async fn run<T, F, Fut>(&self, call: F) -> Result<T, PortError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, PortError>>,
    {
        let policy = ExponentialBuilder::default()
            .with_min_delay(self.first_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_retries)
            .with_jitter();
        call.retry(policy)
            .when(|e: &PortError| e.kind == ErrorKind::Conflict)
            .notify(|e, delay| tracing::debug!(op = e.op, delay_ms = delay.as_millis() as u64, "conflict, retrying"))
            .await
    }
}
