//! The queue worker: long-polling receivers, bounded concurrency, a visibility heartbeat,
//! batched deletes after the outcome is recorded, and graceful shutdown.
//!
//! No business rules live here: a message is decoded, handed to [`App::handle`], and the
//! [`Disposition`](crate::app::Disposition) decides between delete, retry later, and dead-letter.

mod acker;
mod handler;
mod outcome;

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::App;
use crate::metrics::{CommandOutcome, Metrics};
use crate::ports::CommandQueue;

/// How the worker polls and paces itself.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Concurrent long-polling receivers.
    pub receivers: usize,
    /// Commands processed at once, across receivers.
    pub concurrency: usize,
    /// Long-poll wait per receive (≤ 20 s).
    pub wait_time: Duration,
    /// Visibility timeout the heartbeat keeps extending while a command runs.
    pub visibility_timeout: Duration,
    /// Time in-flight commands get to finish after a shutdown signal.
    pub shutdown_grace: Duration,
    /// Longest delay before a retried command comes back.
    pub max_retry_delay: Duration,
}

/// What a worker did, for its shutdown line and tests: a view of its [`Metrics`].
#[derive(Debug, Clone)]
pub struct WorkerStats {
    metrics: Arc<Metrics>,
}

impl WorkerStats {
    /// Messages received.
    pub fn received(&self) -> u64 {
        self.metrics.received.get()
    }

    /// Messages whose outcome was recorded and that were deleted (or queued for deletion).
    pub fn completed(&self) -> u64 {
        self.metrics.commands_ended(CommandOutcome::Done)
    }

    /// Messages left for a later attempt.
    pub fn retried(&self) -> u64 {
        self.metrics.commands_ended(CommandOutcome::Retried)
    }

    /// Messages dead-lettered with a reason.
    pub fn rejected(&self) -> u64 {
        self.metrics.dead_lettered_total()
    }

    /// Messages abandoned at shutdown (they come back after the visibility timeout).
    pub fn abandoned(&self) -> u64 {
        self.metrics.commands_ended(CommandOutcome::Abandoned)
    }
}

/// What every message task shares.
struct Shared {
    app: App,
    queue: Arc<dyn CommandQueue>,
    settings: WorkerSettings,
    metrics: Arc<Metrics>,
    acks: mpsc::Sender<String>,
    /// Fired when the grace period is over: unfinished handlers stop without acking.
    abandon: CancellationToken,
}

/// The worker.
pub struct Worker {
    app: App,
    queue: Arc<dyn CommandQueue>,
    settings: WorkerSettings,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker over `queue` running commands with `app`, counting in the process's metrics.
    pub fn new(app: App, queue: Arc<dyn CommandQueue>, settings: WorkerSettings) -> Self {
        Self { app, queue, settings, metrics: Arc::clone(crate::metrics::global()) }
    }

    /// The same counting in `metrics` instead (a test's own, say).
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// What the worker did (live while it runs).
    pub fn stats(&self) -> WorkerStats {
        WorkerStats { metrics: Arc::clone(&self.metrics) }
    }

    /// Runs until `shutdown` fires, then stops receiving, gives in-flight commands
    /// `shutdown_grace` to finish, flushes pending deletes and returns. Messages not finished
    /// by then are not deleted: SQS redelivers them after their visibility timeout.
    pub async fn run(self, shutdown: CancellationToken) {
        let permits = Arc::new(Semaphore::new(self.settings.concurrency.max(1)));
        let tracker = TaskTracker::new();
        let (acks, ack_rx) = mpsc::channel(1024);
        let acker = tokio::spawn(acker::run(Arc::clone(&self.queue), ack_rx));
        let stats = self.stats();
        let shared = Arc::new(Shared {
            app: self.app,
            queue: self.queue,
            settings: self.settings.clone(),
            metrics: self.metrics,
            acks,
            abandon: CancellationToken::new(),
        });

        tracing::info!(receivers = self.settings.receivers, concurrency = self.settings.concurrency, "worker started");
        let mut receivers = JoinSet::new();
        for _ in 0..self.settings.receivers.max(1) {
            receivers.spawn(receive_loop(Arc::clone(&shared), Arc::clone(&permits), tracker.clone(), shutdown.clone()));
        }
        while let Some(joined) = receivers.join_next().await {
            // A receiver that panicked must not leave the process half alive.
            if let Err(e) = joined
                && e.is_panic()
            {
                std::panic::resume_unwind(e.into_panic());
            }
        }

        tracker.close();
        tracing::info!(in_flight = tracker.len(), grace_secs = self.settings.shutdown_grace.as_secs(), "draining");
        if tokio::time::timeout(self.settings.shutdown_grace, tracker.wait()).await.is_err() {
            tracing::warn!(in_flight = tracker.len(), "grace period over; abandoning unfinished commands");
            shared.abandon.cancel();
            tracker.wait().await;
        }
        drop(shared); // closes the ack channel once every handler is gone
        if let Err(e) = acker.await {
            tracing::error!(error = %e, "ack task failed");
        }
        tracing::info!(
            received = stats.received(),
            completed = stats.completed(),
            retried = stats.retried(),
            rejected = stats.rejected(),
            abandoned = stats.abandoned(),
            "worker stopped"
        );
    }
}

/// Pause after failed receives: 0.4 s doubling to 25.6 s, with jitter, reset by a success.
fn receive_backoff() -> ExponentialBackoff {
    ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(400))
        .with_max_delay(Duration::from_millis(25_600))
        .with_jitter()
        .without_max_times()
        .build()
}

async fn receive_loop(shared: Arc<Shared>, permits: Arc<Semaphore>, tracker: TaskTracker, shutdown: CancellationToken) {
    let mut pauses = receive_backoff();
    loop {
        // Hold capacity before receiving, so no message waits invisible for a free slot.
        let first = tokio::select! {
            () = shutdown.cancelled() => return,
            p = Arc::clone(&permits).acquire_owned() => match p { Ok(p) => p, Err(_) => return },
        };
        let mut slots = vec![first];
        while slots.len() < 10 {
            match Arc::clone(&permits).try_acquire_owned() {
                Ok(p) => slots.push(p),
                Err(_) => break,
            }
        }
        let received = tokio::select! {
            () = shutdown.cancelled() => return,
            r = shared.queue.receive(slots.len(), shared.settings.wait_time) => r,
        };
        match received {
            Ok(messages) => {
                pauses = receive_backoff();
                for (message, permit) in messages.into_iter().zip(slots.drain(..)) {
                    shared.metrics.received.inc();
                    let shared = Arc::clone(&shared);
                    tracker.spawn(async move {
                        handler::handle(&shared, message).await;
                        drop(permit);
                    });
                }
            }
            Err(e) => {
                let delay = pauses.next().unwrap_or(Duration::from_millis(25_600));
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "receive failed");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}
