//! Runs queued commands exactly once per idempotency key.
//!
//! For each delivery: create the command's record (or meet the existing one), hold its lease
//! while the command runs, record the outcome with a conditional write, publish the
//! completion event, and only then let the worker delete the message. Any crash between
//! those steps is survived: the message comes back, the record says how far it got.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::certificates::update_thing_certificates;
use super::delete::{DeleteOptions, delete_thing};
use super::describe::describe_thing;
use super::progress::Progress;
use super::provision::{InlineSecret, ProvisionSettings, Provisioned, Provisioner};
use super::retry::RetrySchedule;
use crate::domain::ThingName;
use crate::domain::bulk::{BulkTask, RowResult};
use crate::domain::checkpoint::Checkpoints;
use crate::domain::command::{DeleteThing, ProvisionRequest, UpdateThingCertificates};
use crate::domain::record::{BeginDecision, CommandRecord, Outcome};
use crate::domain::registry::{CertificatesUpdated, ThingDeleted, ThingDescription};
use crate::domain::{
    CloudEvent, Command, CommandEnvelope, CommandError, CommandResult, CommandType, ErrorCode, IdempotencyKey,
};
use crate::ports::{
    BulkStore, CaKeyStore, Clock, CommandSender, CreateOutcome, DeviceRegistry, ErrorKind, EventPublisher, PortError,
    RowSource, SecretSink, StateStore, TemplateStore,
};

/// Deployment choices the use cases need.
#[derive(Debug, Clone)]
pub struct AppSettings {
    /// CloudEvents `source` of every event.
    pub event_source: String,
    /// How long an attempt's lease protects it; renewed by the worker's heartbeat.
    pub lease: Duration,
    /// How long records are kept (DynamoDB TTL).
    pub record_retention: Duration,
    /// `deleteThing` default for `deleteCertificates`.
    pub delete_certificates: bool,
    /// `deleteThing` default for `deletePolicies`.
    pub delete_policies: bool,
    /// Retry of IoT's eventual-consistency conflicts.
    pub conflict_retry: RetrySchedule,
    /// Attempts that may end in a failure that could pass later before the command is given
    /// up. Crashed attempts and redeliveries do not count: only failures the attempt saw.
    pub max_failed_attempts: u32,
    /// Provisioning settings.
    pub provision: ProvisionSettings,
}

/// The adapters the core runs on.
#[derive(Clone)]
pub struct Ports {
    /// AWS IoT: where the commands act.
    pub registry: Arc<dyn DeviceRegistry>,
    /// Command records: what makes each command run once, and resume after a crash.
    pub state: Arc<dyn StateStore>,
    /// Where completion events go, for the systems waiting on an outcome.
    pub events: Arc<dyn EventPublisher>,
    /// Provisioning templates, by id.
    pub templates: Arc<dyn TemplateStore>,
    /// Where generated private keys go, so that they never reach a record or an event.
    pub secrets: Arc<dyn SecretSink>,
    /// The private keys of the CAs that sign device certificates here.
    pub ca_keys: Arc<dyn CaKeyStore>,
    /// Bulk tasks and their row results.
    pub bulk: Arc<dyn BulkStore>,
    /// Rows files of large bulk tasks.
    pub rows: Arc<dyn RowSource>,
    /// The command queue, as a producer: where a bulk task's chunks are sent.
    pub commands: Arc<dyn CommandSender>,
    /// Time, injected so that tests move leases and retention at will.
    pub clock: Arc<dyn Clock>,
}

/// What a record runs: a queued command, or one row of a bulk task.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Work<'a> {
    /// A command from the queue.
    Command(&'a Command),
    /// A bulk row: provisioning from the task's template snapshot.
    Row {
        /// The task.
        task: &'a BulkTask,
        /// The row's number in the task.
        row: u32,
        /// The row as a provisioning request.
        request: &'a ProvisionRequest,
    },
}

impl Work<'_> {
    fn command_type(&self) -> CommandType {
        match self {
            Self::Command(command) => command.command_type(),
            Self::Row { .. } => CommandType::ProvisionThing,
        }
    }

    fn subject(&self) -> Option<String> {
        match self {
            Self::Command(command) => command.subject(),
            Self::Row { request, .. } => request.thing_name().map(str::to_owned),
        }
    }
}

/// How far [`App::run_once`] got.
#[derive(Debug)]
pub(crate) enum Once {
    /// The outcome is recorded (now, or by an earlier attempt).
    Finished(Box<CommandRecord>),
    /// A bulk row's outcome is recorded now, and its result counted on the task in the same
    /// write.
    RowCounted(Box<RowResult>),
    /// Not finished: what to do with the message that carried the work.
    Pending(Disposition),
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

impl Disposition {
    fn retry(reason: RetryReason) -> Self {
        Self::Retry { after: None, reason }
    }
}

/// The application core, shared by the worker and the REST facade.
#[derive(Clone)]
pub struct App {
    pub(super) ports: Ports,
    settings: AppSettings,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("settings", &self.settings).finish_non_exhaustive()
    }
}

/// The generated key's name in the secret sink: stable per command, so a resumed attempt
/// overwrites rather than adds, and a repeated keyed REST request finds it again.
fn secret_name(key: &IdempotencyKey, subject: Option<&str>) -> String {
    format!("{}/{}", subject.unwrap_or_default(), &hex::encode(Sha256::digest(key.as_str().as_bytes()))[..24])
}

/// How a keyed `POST /things` ended.
#[derive(Debug)]
pub enum KeyedProvision {
    /// Provisioned, now or by an earlier request with the same key; the generated key inline.
    Provisioned(Box<Provisioned>),
    /// Another request with the same key is running.
    InProgress,
    /// Refused or failed: the error to answer with.
    Failed(CommandError),
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl App {
    /// Wires the core to its ports.
    pub fn new(ports: Ports, settings: AppSettings) -> Self {
        Self { ports, settings }
    }

    /// The settings in force.
    pub fn settings(&self) -> &AppSettings {
        &self.settings
    }

    /// The time, from the clock port.
    pub(super) fn now_ms(&self) -> i64 {
        self.ports.clock.now_ms()
    }

    /// `getThing`, directly (the REST facade's synchronous path).
    pub async fn describe(&self, thing: &ThingName) -> Result<ThingDescription, CommandError> {
        describe_thing(self.ports.registry.as_ref(), thing).await
    }

    /// `deleteThing`. `is_retry` says whether an earlier attempt may already have deleted it.
    pub async fn delete(&self, command: &DeleteThing, is_retry: bool) -> Result<ThingDeleted, CommandError> {
        let options = DeleteOptions {
            delete_certificates: command.delete_certificates.unwrap_or(self.settings.delete_certificates),
            delete_policies: command.delete_policies.unwrap_or(self.settings.delete_policies),
        };
        let retry = &self.settings.conflict_retry;
        delete_thing(self.ports.registry.as_ref(), retry, &command.thing_name, options, is_retry).await
    }

    /// `updateThingCertificates`.
    pub async fn update_certificates(
        &self,
        command: &UpdateThingCertificates,
    ) -> Result<CertificatesUpdated, CommandError> {
        update_thing_certificates(self.ports.registry.as_ref(), &command.thing_name, command.certificate_status).await
    }

    /// `provisionThing` without a record: a generated private key comes back inline, as CDF
    /// returned it, and is stored nowhere.
    pub async fn provision_inline(&self, request: &ProvisionRequest) -> Result<Provisioned, CommandError> {
        self.provision(request, None, "inline", &mut Progress::volatile(), true).await
    }

    /// `POST /things` with an `Idempotency-Key`: through the command record, as a queued
    /// `provisionThing` with that key (exactly once, resumed from its checkpoints after a crash,
    /// compensated, announced). The generated key goes to the secret sink like a queued
    /// command's and is read back for the answer, so a repeated request gets it too.
    /// `payload` is the request body as a queue payload (it fingerprints the request).
    pub async fn provision_keyed(
        &self,
        key: &IdempotencyKey,
        request: &ProvisionRequest,
        payload: &serde_json::Value,
    ) -> KeyedProvision {
        let command = Command::ProvisionThing(request.clone());
        let hash = crate::domain::command::fingerprint(CommandType::ProvisionThing, payload);
        let token = uuid::Uuid::new_v4().to_string();
        let record = match self.run_once(key, Work::Command(&command), &hash, &token, false).await {
            Once::Finished(record) => record,
            Once::Pending(Disposition::Retry { reason: RetryReason::LeaseHeld, .. }) => {
                return KeyedProvision::InProgress;
            }
            Once::Pending(Disposition::Retry { reason: RetryReason::Failed(error), .. }) => {
                return KeyedProvision::Failed(error);
            }
            Once::Pending(Disposition::Retry { reason, .. }) => {
                return KeyedProvision::Failed(CommandError::new(ErrorCode::Transient, reason.to_string()));
            }
            Once::Pending(Disposition::Reject(error)) => return KeyedProvision::Failed(error),
            Once::Pending(Disposition::Done) => unreachable!("run_once never finishes without a record"),
            Once::RowCounted(_) => unreachable!("only a bulk row is counted"),
        };
        if let Disposition::Retry { reason, .. } = self.publish_owed(&record).await {
            return KeyedProvision::Failed(CommandError::new(ErrorCode::Transient, reason.to_string()));
        }
        match (record.outcome(), record.command_type) {
            (Some(Outcome::Succeeded(CommandResult::ProvisionThing(result))), CommandType::ProvisionThing) => {
                let private_key = match &result.private_key_secret {
                    None => None,
                    Some(_) => match self.ports.secrets.read(&secret_name(key, record.subject.as_deref())).await {
                        Ok(secret) => Some(secret),
                        Err(e) => return KeyedProvision::Failed(e.to_command_error()),
                    },
                };
                KeyedProvision::Provisioned(Box::new(Provisioned { result, private_key }))
            }
            (Some(Outcome::Failed(error)), CommandType::ProvisionThing) => KeyedProvision::Failed(error),
            (_, other) => KeyedProvision::Failed(
                CommandError::new(
                    ErrorCode::IdempotencyKeyReused,
                    format!("idempotency key '{key}' was already used by a {other} command"),
                )
                .at("/idempotencyKey"),
            ),
        }
    }

    /// Provisions from `template` when given (a bulk task's snapshot), else from the store.
    async fn provision(
        &self,
        request: &ProvisionRequest,
        template: Option<&str>,
        secret_name: &str,
        progress: &mut Progress<'_>,
        inline_secret: bool,
    ) -> Result<Provisioned, CommandError> {
        let provisioner = Provisioner {
            registry: self.ports.registry.as_ref(),
            templates: self.ports.templates.as_ref(),
            // Returned inline to a synchronous caller, the key needs no copy anywhere.
            secrets: if inline_secret { &InlineSecret } else { self.ports.secrets.as_ref() },
            ca_keys: self.ports.ca_keys.as_ref(),
            settings: &self.settings.provision,
            clock: self.ports.clock.as_ref(),
            template,
        };
        provisioner.provision(request, secret_name, progress).await
    }

    /// Runs one piece of work: the one dispatch from a command to its handler.
    async fn run(
        &self,
        key: &IdempotencyKey,
        work: Work<'_>,
        secret_name: &str,
        progress: &mut Progress<'_>,
    ) -> Result<CommandResult, CommandError> {
        let command = match work {
            Work::Command(command) => command,
            Work::Row { task, request, .. } => {
                let provisioned = self.provision(request, Some(&task.template), secret_name, progress, false).await?;
                return Ok(CommandResult::ProvisionThing(provisioned.result));
            }
        };
        Ok(match command {
            Command::GetThing(c) => CommandResult::GetThing(self.describe(&c.thing_name).await?),
            Command::DeleteThing(c) => CommandResult::DeleteThing(self.delete(c, progress.is_retry).await?),
            Command::UpdateThingCertificates(c) => {
                CommandResult::UpdateThingCertificates(self.update_certificates(c).await?)
            }
            Command::ProvisionThing(request) => {
                // The key went to the secret sink; the result carries only its reference.
                let Provisioned { result, private_key: _ } =
                    self.provision(request, None, secret_name, progress, false).await?;
                CommandResult::ProvisionThing(result)
            }
            Command::BulkProvisionThings(request) => {
                CommandResult::BulkProvisionThings(self.accept_bulk(key, request).await?.view())
            }
            Command::ProvisionBulkChunk(chunk) => {
                CommandResult::ProvisionBulkChunk(self.run_chunk(chunk, progress.final_attempt).await?)
            }
            Command::CancelBulkTask(c) => CommandResult::CancelBulkTask(self.cancel_bulk(&c.task_id).await?.view()),
        })
    }

    /// Runs a queued command once per idempotency key. `lease_token` identifies this attempt
    /// (the worker renews the lease with it while the command runs).
    pub async fn handle(&self, envelope: &CommandEnvelope, lease_token: &str) -> Disposition {
        self.handle_delivery(envelope, lease_token, false).await
    }

    /// [`App::handle`] for a delivery that may be the message's last (`last`): a failure that
    /// could pass later is then final, compensated, recorded and announced, so that no command
    /// ends half-done in the dead-letter queue with its record silent.
    pub async fn handle_delivery(&self, envelope: &CommandEnvelope, lease_token: &str, last: bool) -> Disposition {
        let work = Work::Command(&envelope.command);
        match self.run_once(&envelope.idempotency_key, work, &envelope.payload_hash, lease_token, last).await {
            Once::Finished(record) => self.publish_owed(&record).await,
            // Not a command's: a bulk row's outcome, which has no event of its own to owe.
            Once::RowCounted(_) => Disposition::Done,
            Once::Pending(disposition) => disposition,
        }
    }

    /// Runs `work` once per `key`: create the record (or meet the existing one), hold its
    /// lease, run from the saved checkpoints, and record the outcome with a conditional write.
    pub(crate) async fn run_once(
        &self,
        key: &IdempotencyKey,
        work: Work<'_>,
        payload_hash: &str,
        lease_token: &str,
        last: bool,
    ) -> Once {
        let now = self.ports.clock.now_ms();
        let lease_until = now + millis(self.settings.lease);
        let fresh = CommandRecord::start(
            key.clone(),
            work.command_type(),
            work.subject(),
            payload_hash.to_owned(),
            lease_token.to_owned(),
            now,
            millis(self.settings.lease),
            i64::try_from(self.settings.record_retention.as_secs()).unwrap_or(i64::MAX),
        );
        let (attempt, failures, checkpoints) = match self.ports.state.create(&fresh).await {
            Err(e) if e.kind == ErrorKind::Unreadable => {
                return Once::Pending(Disposition::Reject(CommandError::new(
                    ErrorCode::RecordUnreadable,
                    format!("the record of command '{key}' cannot be read by this version: {e}"),
                )));
            }
            Err(e) => return Once::Pending(Disposition::retry(RetryReason::RecordUnavailable(e))),
            Ok(CreateOutcome::Created) => (1, 0, Default::default()),
            Ok(CreateOutcome::Exists(existing)) => match existing.decide(payload_hash, now) {
                BeginDecision::PayloadMismatch => {
                    return Once::Pending(Disposition::Reject(
                        CommandError::new(
                            ErrorCode::IdempotencyKeyReused,
                            format!(
                                "idempotency key '{key}' was already used by a {} command with a different payload",
                                existing.command_type
                            ),
                        )
                        .at("/idempotencyKey"),
                    ));
                }
                BeginDecision::AlreadyDone => return Once::Finished(existing),
                BeginDecision::Busy { retry_after_ms } => {
                    return Once::Pending(Disposition::Retry {
                        after: Some(Duration::from_millis(u64::try_from(retry_after_ms).unwrap_or(0))),
                        reason: RetryReason::LeaseHeld,
                    });
                }
                BeginDecision::TakeOver => {
                    match self
                        .ports
                        .state
                        .take_over(key, existing.lease_token.as_deref(), lease_token, lease_until, now)
                        .await
                    {
                        Ok(record) => (record.attempts, record.failures, record.checkpoints),
                        Err(e) => return Once::Pending(Disposition::retry(RetryReason::RecordUnavailable(e))),
                    }
                }
            },
        };

        let secret_name = secret_name(key, work.subject().as_deref());
        // The last chance: the queue's last delivery, or the retry budget's last failure. A bulk
        // row is retried in place within its chunk's delivery; the chunk's budget governs it.
        let budget_spent =
            matches!(work, Work::Command(_)) && failures.saturating_add(1) >= self.settings.max_failed_attempts;
        let last = last || budget_spent;
        let outcome = match Checkpoints::decode(&checkpoints) {
            // Fail closed: a step this version cannot see might be repeated.
            Err(unreadable) => Outcome::Failed(unreadable.into()),
            Ok(saved) => {
                let mut progress = Progress::durable(self.ports.state.as_ref(), key, lease_token, saved, attempt > 1);
                progress.final_attempt = last;
                match self.run(key, work, &secret_name, &mut progress).await {
                    Ok(result) => Outcome::Succeeded(result),
                    Err(error) if error.is_retryable() && last => Outcome::Failed(error.exhausted()),
                    Err(error) if error.is_retryable() => {
                        let now = self.ports.clock.now_ms();
                        if let Err(e) = self.ports.state.release(key, lease_token, &error, now).await {
                            tracing::warn!(idempotency_key = %key, error = %e, "could not release the lease");
                        }
                        return Once::Pending(Disposition::retry(RetryReason::Failed(error)));
                    }
                    Err(error) => Outcome::Failed(error),
                }
            }
        };
        if let Work::Row { task, row, .. } = work {
            return self.finish_row(key, lease_token, outcome, task, row, work.subject()).await;
        }
        self.finish(key, lease_token, &outcome).await
    }

    /// Records the outcome on the record, if this attempt still holds its lease.
    pub(super) async fn finish(&self, key: &IdempotencyKey, lease_token: &str, outcome: &Outcome) -> Once {
        match self.ports.state.finish(key, lease_token, outcome, self.ports.clock.now_ms()).await {
            Ok(record) => Once::Finished(Box::new(record)),
            Err(e) if e.kind == ErrorKind::ConditionFailed => Once::Pending(Disposition::retry(RetryReason::LeaseLost)),
            Err(e) => Once::Pending(Disposition::retry(RetryReason::OutcomeNotRecorded(e))),
        }
    }

    /// Publishes the completion event of a finished command unless that already happened.
    pub(super) async fn publish_owed(&self, record: &CommandRecord) -> Disposition {
        if record.event_published {
            return Disposition::Done;
        }
        let Some(outcome) = record.outcome() else {
            return Disposition::Reject(CommandError::new(
                ErrorCode::RecordUnreadable,
                format!("the record of command '{}' is finished but holds no outcome", record.idempotency_key),
            ));
        };
        let event = CloudEvent::for_outcome(
            &self.settings.event_source,
            &record.idempotency_key,
            record.command_type,
            record.subject.as_deref(),
            &outcome,
            self.ports.clock.now_ms(),
        );
        // An outcome that is not announced (a bulk chunk's) owes nothing.
        if let Some(event) = event
            && let Err(e) = self.ports.events.publish(&event).await
        {
            return Disposition::retry(RetryReason::EventNotPublished(e));
        }
        if let Err(e) = self.ports.state.mark_event_published(&record.idempotency_key).await {
            // The event went out; at worst a redelivery publishes it again with the same id.
            tracing::warn!(idempotency_key = %record.idempotency_key, error = %e, "could not mark the event published");
        }
        Disposition::Done
    }

    /// Publishes `command.rejected` for a refused message.
    pub async fn publish_rejection(
        &self,
        key: &IdempotencyKey,
        message_id: &str,
        subject: Option<String>,
        error: &CommandError,
    ) -> Result<(), PortError> {
        let event = CloudEvent::rejected(
            &self.settings.event_source,
            key,
            message_id,
            subject,
            error,
            self.ports.clock.now_ms(),
        );
        self.ports.events.publish(&event).await
    }

    /// Extends the lease of a running attempt (the worker's heartbeat).
    pub async fn renew_lease(&self, key: &IdempotencyKey, lease_token: &str) -> Result<(), PortError> {
        let until = self.ports.clock.now_ms() + millis(self.settings.lease);
        self.ports.state.renew_lease(key, lease_token, until).await
    }

    /// Reads a command's record (the `status` CLI command).
    pub async fn record(&self, key: &IdempotencyKey) -> Result<Option<CommandRecord>, PortError> {
        self.ports.state.get(key).await
    }
}
