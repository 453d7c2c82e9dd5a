//! Repeating a call that failed in one known, passing way: IoT's eventual-consistency
//! conflicts ("still attached to one or more principals" right after a detach), which the SDK's
//! own retry does not cover, throttled IoT calls (a throttled call did not run, so it is safe to
//! repeat whatever it does), and the idempotent steps of undoing a failed command.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use crate::ports::{ErrorKind, PortError};

/// How long, and how often, a call is repeated.
#[derive(Debug, Clone, Copy)]
pub struct RetrySchedule {
    /// First delay.
    pub first_delay: Duration,
    /// Longest delay between two attempts.
    pub max_delay: Duration,
    /// Retries after the first attempt.
    pub max_retries: usize,
}

impl RetrySchedule {
    /// IoT's conflicts: about 15 s in all (0.25, 0.5, 1, 2, 4, 4, 4 s).
    pub const CONFLICTS: Self =
        Self { first_delay: Duration::from_millis(250), max_delay: Duration::from_secs(4), max_retries: 7 };

    /// Throttled calls: 50 ms doubling to 2 s, eight times (about 6 s in all), before the
    /// throttling is left to the command's retry.
    pub const THROTTLING: Self =
        Self { first_delay: Duration::from_millis(50), max_delay: Duration::from_secs(2), max_retries: 8 };

    /// Undoing what a failed command made: a step that failed in a way that could pass (a 5xx,
    /// throttling, a conflict while a detach propagates) is repeated for about 20 s (0.25, 0.5,
    /// 1, 2, 4, 4, 4, 4 s) before compensation gives it up. Undo steps are idempotent.
    pub const UNDO: Self =
        Self { first_delay: Duration::from_millis(250), max_delay: Duration::from_secs(4), max_retries: 8 };

    /// Runs `call` until it succeeds, fails with something other than `kind`, or the retries
    /// run out; the delays are jittered so that the repeats of a burst spread out.
    pub async fn run_while<T, F, Fut>(&self, kind: ErrorKind, call: F) -> Result<T, PortError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, PortError>>,
    {
        self.run_when(|e| e.kind == kind, call).await
    }

    /// Runs `call` until it succeeds, fails in a way `repeat` does not accept, or the retries
    /// run out.
    pub async fn run_when<T, F, Fut>(&self, repeat: impl Fn(&PortError) -> bool, call: F) -> Result<T, PortError>
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
            .when(|e: &PortError| repeat(e))
            .notify(|e, delay| tracing::debug!(op = e.op, delay_ms = delay.as_millis() as u64, "repeating the call"))
            .await
    }

    /// [`RetrySchedule::run_while`] for IoT's conflicts.
    pub async fn run<T, F, Fut>(&self, call: F) -> Result<T, PortError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, PortError>>,
    {
        self.run_while(ErrorKind::Conflict, call).await
    }
}
