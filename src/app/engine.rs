//! Runs work exactly once per idempotency key.
//!
//! For each delivery: create the work's record (or meet the existing one), hold its lease
//! while the work runs, record the outcome with a conditional write, publish the completion
//! event, and only then let the worker delete the message. Any crash between those steps is
//! survived: the message comes back, the record says how far it got.

use std::fmt;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::core::App;
use super::dispatch::Work;
use super::fence::{Fence, FencedSecrets};
use super::progress::{Attempt, Progress};
use crate::domain::checkpoint::Checkpoints;
use crate::domain::record::{BeginDecision, CommandRecord, NewRecord, Outcome};
use crate::domain::{
    CloudEvent, Command, CommandEnvelope, CommandError, ErrorCode, IdempotencyKey, LeaseToken, Location,
};
use crate::ports::state::TakeOver;
use crate::ports::{CreateOutcome, ErrorKind, PortError, SecretSink};

/// One delivery of a piece of work: whose it is, what it is, which attempt, and whether it is
/// the last chance.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Delivery<'a> {
    /// The work's idempotency key.
    pub(crate) key: &'a IdempotencyKey,
    /// Fingerprint of the work's type and payload.
    pub(crate) payload_hash: &'a str,
    /// Identifies this attempt; the lease is held and renewed with it.
    pub(crate) lease_token: &'a LeaseToken,
    /// The queue's last delivery: a failure that could pass later is final now.
    pub(crate) last: bool,
}

/// What the worker should do with the message after [`App::handle`].
#[derive(Debug, Clone, PartialEq)]
pub enum Disposition {
    /// The outcome is recorded and published: delete the message.
    Done,
    /// Not finished: keep the message and let it come back after `after`.
    Retry {
        /// Suggested delay; `None` lets the worker back off by receive count.
        after: Option<Duration>,
        /// Why.
        reason: RetryReason,
    },
    /// The message can never run: dead-letter it with this reason.
    Reject(CommandError),
}

/// Work that did not reach a recorded and published outcome on this delivery.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Pending {
    /// Keep the message and let it come back after `after` (`None`: the worker's backoff).
    Retry {
        /// Suggested delay.
        after: Option<Duration>,
        /// Why.
        reason: RetryReason,
    },
    /// The message can never run.
    Reject(CommandError),
}

impl Pending {
    fn retry(reason: RetryReason) -> Self {
        Self::Retry { after: None, reason }
    }
}

impl From<Pending> for Disposition {
    fn from(pending: Pending) -> Self {
        match pending {
            Pending::Retry { after, reason } => Self::Retry { after, reason },
            Pending::Reject(error) => Self::Reject(error),
        }
    }
}

/// Why a command is left for a later delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum RetryReason {
    /// The command's record could not be created, read or taken over.
    RecordUnavailable(PortError),
    /// Another attempt holds a live lease on the command.
    LeaseHeld,
    /// The lease was taken over before this attempt recorded its outcome.
    LeaseLost,
    /// The command failed in a way that may pass later (throttling, an outage).
    Failed(CommandError),
    /// The outcome is known but could not be recorded.
    OutcomeNotRecorded(PortError),
    /// The outcome is recorded but its event could not be published.
    EventNotPublished(PortError),
}

impl fmt::Display for RetryReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RecordUnavailable(e) => write!(f, "the command's record is unavailable: {e}"),
            Self::LeaseHeld => f.write_str("another attempt holds the command's lease"),
            Self::LeaseLost => {
                f.write_str("the lease was lost before the outcome was recorded; the new holder finishes")
            }
            Self::Failed(e) => write!(f, "{e}"),
            Self::OutcomeNotRecorded(e) => write!(f, "cannot record the outcome: {e}"),
            Self::EventNotPublished(e) => write!(f, "cannot publish the completion event: {e}"),
        }
    }
}

/// How an attempt at a record's work ended, before its outcome is written.
#[derive(Debug)]
pub(crate) enum Ran {
    /// This attempt ran the work to this outcome; it still holds the lease.
    Outcome(Box<Outcome>),
    /// An earlier attempt recorded the outcome.
    AlreadyFinished(Box<CommandRecord>),
}

/// The generated key's name in the secret sink for attempt `attempt` of a command: one name per
/// attempt, so that an attempt that lost its lease can never overwrite the key of the attempt
/// that won; the result names the winner's (its `key` checkpoint too).
pub(super) fn secret_name(key: &IdempotencyKey, subject: Option<&str>, attempt: u32) -> String {
    format!("{}/{attempt}", legacy_secret_name(key, subject))
}

/// The one name per command earlier versions stored a generated key under, for a `key`
/// checkpoint written before keys were named per attempt.
pub(super) fn legacy_secret_name(key: &IdempotencyKey, subject: Option<&str>) -> String {
    format!("{}/{}", subject.unwrap_or_default(), &hex::encode(Sha256::digest(key.as_str().as_bytes()))[..24])
}

impl App {
    /// Runs a queued command once per idempotency key. `lease_token` identifies this attempt
    /// (the worker renews the lease with it while the command runs): a [`LeaseToken::fresh`],
    /// or any text that no other attempt uses (a test's or a benchmark's own).
    pub async fn handle(&self, envelope: &CommandEnvelope, lease_token: impl Into<LeaseToken>) -> Disposition {
        self.handle_delivery(envelope, lease_token, false).await
    }

    /// [`App::handle`] for a delivery that may be the message's last (`last`): a failure that
    /// could pass later is then final, compensated, recorded and announced, so that no command
    /// ends half-done in the dead-letter queue with its record silent.
    pub async fn handle_delivery(
        &self,
        envelope: &CommandEnvelope,
        lease_token: impl Into<LeaseToken>,
        last: bool,
    ) -> Disposition {
        let lease_token = &lease_token.into();
        let delivery =
            Delivery { key: &envelope.idempotency_key, payload_hash: &envelope.payload_hash, lease_token, last };
        let published = match self.run_once(&envelope.command, &delivery).await {
            Ok(record) => self.publish_owed(&record).await,
            Err(pending) => Err(pending),
        };
        published.map_or_else(Disposition::from, |()| Disposition::Done)
    }

    /// Runs `command` once per key and records its outcome: the finished record, now or from
    /// an earlier attempt.
    pub(crate) async fn run_once(
        &self,
        command: &Command,
        delivery: &Delivery<'_>,
    ) -> Result<Box<CommandRecord>, Pending> {
        match self.attempt(Work::Command(command), delivery).await? {
            Ran::AlreadyFinished(record) => Ok(record),
            Ran::Outcome(outcome) => self.finish(delivery.key, delivery.lease_token, &outcome).await,
        }
    }

    /// Runs `work` once per key: create the record (or meet the existing one), hold its
    /// lease, and run from the saved checkpoints. The outcome is left to the caller to record.
    pub(crate) async fn attempt(&self, work: Work<'_>, delivery: &Delivery<'_>) -> Result<Ran, Pending> {
        let Delivery { key, payload_hash, lease_token, last } = *delivery;
        let now = self.now();
        let lease_until = now + self.settings.lease;
        let fresh = CommandRecord::start(NewRecord {
            key: key.clone(),
            command_type: work.command_type(),
            subject: work.subject(),
            payload_hash: payload_hash.to_owned(),
            lease_token: lease_token.clone(),
            now,
            lease: self.settings.lease,
            retention: self.settings.record_retention,
        });
        let (attempt, failures, checkpoints) = match self.ports.state.create(&fresh).await {
            Err(e) if e.kind == ErrorKind::Unreadable => {
                return Err(Pending::Reject(CommandError::new(
                    ErrorCode::RecordUnreadable,
                    format!("the record of command '{key}' cannot be read by this version: {e}"),
                )));
            }
            Err(e) => return Err(Pending::retry(RetryReason::RecordUnavailable(e))),
            Ok(CreateOutcome::Created) => (1, 0, Default::default()),
            Ok(CreateOutcome::Exists(existing)) => match existing.decide(payload_hash, now) {
                BeginDecision::PayloadMismatch => {
                    return Err(Pending::Reject(
                        CommandError::new(
                            ErrorCode::IdempotencyKeyReused,
                            format!(
                                "idempotency key '{key}' was already used by a {} command with a different payload",
                                existing.command_type
                            ),
                        )
                        .at(Location::message().child("idempotencyKey")),
                    ));
                }
                BeginDecision::AlreadyDone => return Ok(Ran::AlreadyFinished(existing)),
                BeginDecision::Busy { retry_after } => {
                    return Err(Pending::Retry { after: Some(retry_after), reason: RetryReason::LeaseHeld });
                }
                BeginDecision::TakeOver => {
                    let take_over = TakeOver {
                        expected: existing.lease_token.as_ref(),
                        seen_version: existing.lease_version,
                        token: lease_token,
                        lease_until,
                        now,
                        // Counted from this attempt, as at creation: the record outlives the message.
                        expires_at: now.expiry(self.settings.record_retention),
                    };
                    match self.ports.state.take_over(key, take_over).await {
                        Ok(record) => (record.attempts, record.failures, record.checkpoints),
                        // Renewed by its holder, or taken by another attempt, since it was read.
                        Err(e) if e.kind == ErrorKind::ConditionFailed => {
                            return Err(Pending::retry(RetryReason::LeaseHeld));
                        }
                        Err(e) => return Err(Pending::retry(RetryReason::RecordUnavailable(e))),
                    }
                }
            },
        };

        let secret_name = secret_name(key, work.subject().as_deref(), attempt);
        // The last chance: the queue's last delivery, or the retry budget's last failure. A bulk
        // row is retried in place within its chunk's delivery; the chunk's budget governs it.
        let budget_spent =
            matches!(work, Work::Command(_)) && failures.saturating_add(1) >= self.settings.max_failed_attempts;
        let last = last || budget_spent;
        let outcome = match Checkpoints::decode(&checkpoints) {
            // Fail closed: a step this version cannot see might be repeated.
            Err(unreadable) => Outcome::Failed(unreadable.into()),
            Ok(saved) => {
                let number = attempt;
                let attempt = Attempt { resumed: attempt > 1, last };
                let fence = Fence::new(
                    self.ports.state.as_ref(),
                    key,
                    lease_token,
                    self.ports.clock.as_ref(),
                    self.settings.lease,
                );
                let mut progress = Progress::durable(fence, saved, attempt);
                let ran = self.run(key, work, &secret_name, &mut progress).await;
                let outcome_reached = match &ran {
                    Ok(_) => true,
                    Err(e) => e.code != ErrorCode::LeaseLost && (!e.is_retryable() || last),
                };
                if number > 1 && work.makes_keys() && outcome_reached {
                    let kept = progress.saved().key.as_ref().and_then(|step| step.name.clone());
                    self.forget_stale_keys(&fence, work.subject().as_deref(), number, kept.as_deref()).await?;
                }
                match ran {
                    Ok(result) => Outcome::Succeeded(result),
                    // Another attempt holds the command now: stop without a word, it finishes.
                    Err(error) if error.code == ErrorCode::LeaseLost => {
                        tracing::warn!(idempotency_key = %key, %error, "the lease was lost; this attempt stops");
                        return Err(Pending::retry(RetryReason::LeaseLost));
                    }
                    Err(error) if error.is_retryable() && last => Outcome::Failed(error.exhausted()),
                    Err(error) if error.is_retryable() => {
                        if let Err(e) = self.ports.state.release(key, lease_token, &error, self.now()).await {
                            tracing::warn!(idempotency_key = %key, error = %e, "could not release the lease");
                        }
                        return Err(Pending::retry(RetryReason::Failed(error)));
                    }
                    Err(error) => Outcome::Failed(error),
                }
            }
        };
        Ok(Ran::Outcome(Box::new(outcome)))
    }

    /// Deletes the keys earlier attempts of a command may have stored under their own names
    /// and that its outcome does not name (`kept`): an attempt that died or lost its lease
    /// between storing a key and recording it leaves one behind. Fenced like every effect; a
    /// key that cannot be deleted now is left to the bucket's lifecycle rule.
    async fn forget_stale_keys(
        &self,
        fence: &Fence<'_>,
        subject: Option<&str>,
        attempt: u32,
        kept: Option<&str>,
    ) -> Result<(), Pending> {
        let secrets = FencedSecrets::new(self.ports.secrets.as_ref(), Some(*fence));
        let earlier = (1..attempt).map(|n| secret_name(fence.key, subject, n));
        for name in std::iter::once(legacy_secret_name(fence.key, subject)).chain(earlier) {
            if Some(name.as_str()) == kept {
                continue;
            }
            match secrets.delete(&name).await {
                Ok(()) => {}
                Err(e) if e.kind == ErrorKind::LeaseLost => return Err(Pending::retry(RetryReason::LeaseLost)),
                Err(e) if e.kind == ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(idempotency_key = %fence.key, error = %e, "could not delete a stale key"),
            }
        }
        Ok(())
    }

    /// Records the outcome on the record, if this attempt still holds its lease.
    pub(super) async fn finish(
        &self,
        key: &IdempotencyKey,
        lease_token: &LeaseToken,
        outcome: &Outcome,
    ) -> Result<Box<CommandRecord>, Pending> {
        match self.ports.state.finish(key, lease_token, outcome, self.now()).await {
            Ok(record) => Ok(Box::new(record)),
            Err(e) if e.kind == ErrorKind::ConditionFailed => Err(Pending::retry(RetryReason::LeaseLost)),
            Err(e) => Err(Pending::retry(RetryReason::OutcomeNotRecorded(e))),
        }
    }

    /// Publishes the completion event of a finished command unless that already happened.
    pub(super) async fn publish_owed(&self, record: &CommandRecord) -> Result<(), Pending> {
        if record.event_published {
            return Ok(());
        }
        let Some(outcome) = record.outcome() else {
            return Err(Pending::Reject(CommandError::new(
                ErrorCode::RecordUnreadable,
                format!("the record of command '{}' is finished but holds no outcome", record.idempotency_key),
            )));
        };
        let event = CloudEvent::for_outcome(
            &self.settings.event_source,
            &record.idempotency_key,
            record.command_type,
            record.subject.as_deref(),
            &outcome,
            self.now(),
        );
        // An outcome that is not announced (a bulk chunk's) owes nothing.
        if let Some(event) = event
            && let Err(e) = self.ports.events.publish(&event).await
        {
            return Err(Pending::retry(RetryReason::EventNotPublished(e)));
        }
        if let Err(e) = self.ports.state.mark_event_published(&record.idempotency_key).await {
            // The event went out; at worst a redelivery publishes it again with the same id.
            tracing::warn!(idempotency_key = %record.idempotency_key, error = %e, "could not mark the event published");
        }
        Ok(())
    }

    /// Publishes `command.rejected` for a refused message.
    pub async fn publish_rejection(
        &self,
        key: &IdempotencyKey,
        message_id: &str,
        subject: Option<String>,
        error: &CommandError,
    ) -> Result<(), PortError> {
        let event = CloudEvent::rejected(&self.settings.event_source, key, message_id, subject, error, self.now());
        self.ports.events.publish(&event).await
    }

    /// Extends the lease of a running attempt (the worker's heartbeat).
    pub async fn renew_lease(&self, key: &IdempotencyKey, lease_token: &LeaseToken) -> Result<(), PortError> {
        self.ports.state.renew_lease(key, lease_token, self.now() + self.settings.lease).await
    }

    /// Reads a command's record (the `status` CLI command).
    pub async fn record(&self, key: &IdempotencyKey) -> Result<Option<CommandRecord>, PortError> {
        self.ports.state.get(key).await
    }
}
