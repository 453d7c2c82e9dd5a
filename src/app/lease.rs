//! The heartbeat of a running attempt: its lease renewed while the work runs, and the signal to
//! stop once the lease is no longer this attempt's. The worker runs it beside every command
//! (and extends the message's visibility with each renewal); the keyed REST path beside its
//! provisioning.

use std::future::Future;
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};

use super::core::App;
use crate::domain::{IdempotencyKey, LeaseToken};
use crate::ports::ErrorKind;

/// Why a heartbeat ended: the attempt must stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseEnded {
    /// The record is held by another attempt's token (or gone).
    TakenOver,
    /// No renewal succeeded before the lease ran out: another attempt may hold it by now.
    RanOut,
}

impl App {
    /// Renews the lease `token` holds on `key` every `period` while the attempt runs, and calls
    /// `renewed` after each renewal that succeeded, never after one that failed (the worker
    /// extends the message's visibility there, so the message is hidden only while the lease
    /// lives). Returns when the attempt must stop; never when it is this very attempt that
    /// recorded the outcome (the renewal is refused then too).
    pub async fn keep_lease<F, Fut>(
        &self,
        key: &IdempotencyKey,
        token: &LeaseToken,
        period: Duration,
        mut renewed: F,
    ) -> LeaseEnded
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ()>,
    {
        let lease = self.settings.lease;
        // Measured on this process's monotonic clock, so no other clock can stretch it.
        let mut held_until = Instant::now() + lease;
        let mut ticks = tokio::time::interval_at(Instant::now() + period, period);
        // After a pause, one renewal at once rather than a burst of them.
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let asked = Instant::now();
            match self.renew_lease(key, token).await {
                Ok(()) => {
                    held_until = asked + lease;
                    renewed().await;
                }
                Err(e) if e.kind == ErrorKind::ConditionFailed => {
                    let record = self.record(key).await.ok().flatten();
                    let finished_here = record
                        .as_ref()
                        .is_some_and(|r| r.status.is_terminal() && r.lease_token.as_ref() == Some(token));
                    if finished_here {
                        std::future::pending::<()>().await;
                    }
                    return LeaseEnded::TakenOver;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not renew the lease; trying again next beat");
                    if Instant::now() >= held_until {
                        return LeaseEnded::RanOut;
                    }
                }
            }
        }
    }
}
