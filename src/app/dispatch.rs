//! The use cases as the core offers them, and the one dispatch from a piece of work to its
//! handler. The synchronous paths (the REST facade's) call the use cases directly; queued
//! commands and bulk rows reach them through the [engine](super::engine).

use super::certificates::update_thing_certificates;
use super::core::App;
use super::delete::{DeleteOptions, delete_thing};
use super::describe::describe_thing;
use super::engine::{Delivery, Pending, RetryReason, legacy_secret_name};
use super::fence::{FencedRegistry, FencedSecrets};
use super::progress::Progress;
use super::provision::{InlineSecret, Provisioned, Provisioner};
use crate::domain::bulk::BulkTask;
use crate::domain::checkpoint::Checkpoints;
use crate::domain::command::{DeleteThing, ProvisionRequest, UpdateThingCertificates};
use crate::domain::record::{CommandRecord, Outcome};
use crate::domain::registry::{CertificatesUpdated, ThingDeleted, ThingDescription};
use crate::domain::{
    Command, CommandError, CommandResult, CommandType, ErrorCode, IdempotencyKey, Location, ThingName,
};
use crate::ports::DeviceRegistry;

/// What a record runs: a queued command, or one row of a bulk task.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Work<'a> {
    /// A command from the queue.
    Command(&'a Command),
    /// A bulk row: provisioning from the task's template snapshot.
    Row {
        /// The task.
        task: &'a BulkTask,
        /// The row as a provisioning request.
        request: &'a ProvisionRequest,
    },
}

impl Work<'_> {
    pub(super) fn command_type(&self) -> CommandType {
        match self {
            Self::Command(command) => command.command_type(),
            Self::Row { .. } => CommandType::ProvisionThing,
        }
    }

    /// Whether the work may generate a private key (and store it in the secret sink).
    pub(super) fn makes_keys(&self) -> bool {
        matches!(self, Self::Row { .. } | Self::Command(Command::ProvisionThing(_)))
    }

    pub(super) fn subject(&self) -> Option<String> {
        match self {
            Self::Command(command) => command.subject(),
            Self::Row { request, .. } => request.thing_name().map(str::to_owned),
        }
    }
}

/// Where a generated private key goes.
#[derive(Debug, Clone, Copy)]
pub(super) enum KeyTo<'a> {
    /// Back to a synchronous caller, inline, and nowhere else.
    Caller,
    /// To the secret sink, under this name; results carry only the reference.
    Sink(&'a str),
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

/// The name the winning attempt of a finished command stored its generated key under: its
/// `key` checkpoint says (the command's one legacy name when the checkpoint predates names).
fn key_name(key: &IdempotencyKey, record: &CommandRecord) -> String {
    Checkpoints::decode(&record.checkpoints)
        .ok()
        .and_then(|saved| saved.key)
        .and_then(|step| step.name)
        .unwrap_or_else(|| legacy_secret_name(key, record.subject.as_deref()))
}

impl App {
    /// `getThing`, directly (the REST facade's synchronous path).
    pub async fn describe(&self, thing: &ThingName) -> Result<ThingDescription, CommandError> {
        describe_thing(self.ports.registry.as_ref(), thing).await
    }

    /// `deleteThing`. `resumed` says whether an earlier attempt may already have deleted it.
    pub async fn delete(&self, command: &DeleteThing, resumed: bool) -> Result<ThingDeleted, CommandError> {
        self.delete_in(self.ports.registry.as_ref(), command, resumed).await
    }

    async fn delete_in(
        &self,
        registry: &dyn DeviceRegistry,
        command: &DeleteThing,
        resumed: bool,
    ) -> Result<ThingDeleted, CommandError> {
        let options = DeleteOptions {
            delete_certificates: command.delete_certificates.unwrap_or(self.settings.delete_certificates),
            delete_policies: command.delete_policies.unwrap_or(self.settings.delete_policies),
        };
        let retry = &self.settings.conflict_retry;
        delete_thing(registry, retry, &command.thing_name, options, resumed).await
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
        self.provision(request, None, KeyTo::Caller, &mut Progress::volatile()).await
    }

    /// `POST /things` with an `Idempotency-Key`: through the command record, as a queued
    /// `provisionThing` with that key (exactly once, resumed from its checkpoints after a crash,
    /// compensated, announced). The generated key goes to the secret sink like a queued
    /// command's and is read back for the answer, so a repeated request gets it too.
    /// `payload` is the request body as a queue payload (it fingerprints the request).
    ///
    /// The record's key is `key` in the REST namespace of `caller` ([`IdempotencyKey::rest`]):
    /// a request meets only the records of its own caller's keyed requests, never a queued
    /// command's (whose key went to the secret sink for someone else) nor a bulk row's, so the
    /// key read back from the secret sink is only ever the one this caller's request generated.
    pub async fn provision_keyed(
        &self,
        caller: &str,
        key: &IdempotencyKey,
        request: &ProvisionRequest,
        payload: &serde_json::Value,
    ) -> KeyedProvision {
        let key = &IdempotencyKey::rest(caller, key.as_str());
        let command = Command::ProvisionThing(request.clone());
        let hash = crate::domain::command::fingerprint(CommandType::ProvisionThing, payload);
        let token = crate::domain::LeaseToken::fresh();
        let delivery = Delivery { key, payload_hash: &hash, lease_token: &token, last: false };
        // Held like a queued command's: a provisioning slower than the lease (throttling) is
        // not taken over by the client's own retry, and stops if it is taken over anyway.
        let period = (self.settings.lease / 3).max(std::time::Duration::from_secs(1));
        let ran = tokio::select! {
            ran = self.run_once(&command, &delivery) => ran,
            _ = self.keep_lease(key, &token, period, || async {}) => {
                Err(Pending::Retry { after: None, reason: RetryReason::LeaseLost })
            }
        };
        let record = match ran {
            Ok(record) => record,
            // Another request with the key runs it (or took it over from this one).
            Err(Pending::Retry { reason: RetryReason::LeaseHeld | RetryReason::LeaseLost, .. }) => {
                return KeyedProvision::InProgress;
            }
            Err(Pending::Retry { reason: RetryReason::Failed(error), .. } | Pending::Reject(error)) => {
                return KeyedProvision::Failed(error);
            }
            Err(Pending::Retry { reason, .. }) => {
                return KeyedProvision::Failed(CommandError::new(ErrorCode::Transient, reason.to_string()));
            }
        };
        if let Err(Pending::Retry { reason, .. }) = self.publish_owed(&record).await {
            return KeyedProvision::Failed(CommandError::new(ErrorCode::Transient, reason.to_string()));
        }
        match (record.outcome(), record.command_type) {
            // The record is this caller's own (its key is in the caller's REST namespace).
            (Some(Outcome::Succeeded(CommandResult::ProvisionThing(result))), CommandType::ProvisionThing)
                if record.idempotency_key.is_rest() =>
            {
                let private_key = match &result.private_key_secret {
                    None => None,
                    Some(_) => match self.ports.secrets.read(&key_name(key, &record)).await {
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
                .at(Location::message().child("idempotencyKey")),
            ),
        }
    }

    /// `POST /bulkthings` with an `Idempotency-Key`: through the command record of `key` in
    /// `caller`'s REST namespace, as a queued `bulkProvisionThings`: the same body again is the
    /// same task (read afresh), the key with another body is refused
    /// (`IDEMPOTENCY_KEY_REUSED`). `payload` is the request body (it fingerprints the request).
    pub async fn accept_bulk_keyed(
        &self,
        caller: &str,
        key: &IdempotencyKey,
        request: &crate::domain::command::BulkRequest,
        payload: &serde_json::Value,
    ) -> Result<BulkTask, CommandError> {
        let key = &IdempotencyKey::rest(caller, key.as_str());
        let command = Command::BulkProvisionThings(request.clone());
        let hash = crate::domain::command::fingerprint(CommandType::BulkProvisionThings, payload);
        let token = crate::domain::LeaseToken::fresh();
        let delivery = Delivery { key, payload_hash: &hash, lease_token: &token, last: false };
        let record = match self.run_once(&command, &delivery).await {
            Ok(record) => record,
            Err(Pending::Reject(error) | Pending::Retry { reason: RetryReason::Failed(error), .. }) => {
                return Err(error);
            }
            Err(Pending::Retry { reason, .. }) => {
                return Err(CommandError::new(ErrorCode::Transient, format!("{reason}; retry later")));
            }
        };
        if let Err(Pending::Retry { reason, .. }) = self.publish_owed(&record).await {
            return Err(CommandError::new(ErrorCode::Transient, reason.to_string()));
        }
        match (record.outcome(), record.command_type) {
            (Some(Outcome::Succeeded(CommandResult::BulkProvisionThings(view))), _) => {
                self.bulk_task(&view.task_id).await
            }
            (Some(Outcome::Failed(error)), CommandType::BulkProvisionThings) => Err(error),
            (_, other) => Err(CommandError::new(
                ErrorCode::IdempotencyKeyReused,
                format!("idempotency key '{key}' was already used by a {other} command"),
            )
            .at(Location::message().child("idempotencyKey"))),
        }
    }

    /// Provisions from `template` when given (a bulk task's snapshot), else from the store.
    pub(super) async fn provision(
        &self,
        request: &ProvisionRequest,
        template: Option<&str>,
        key_to: KeyTo<'_>,
        progress: &mut Progress<'_>,
    ) -> Result<Provisioned, CommandError> {
        let fence = progress.fence();
        let sink = FencedSecrets::new(self.ports.secrets.as_ref(), fence);
        let (secrets, secret_name): (&dyn crate::ports::SecretSink, &str) = match key_to {
            // Returned inline to a synchronous caller, the key needs no copy anywhere.
            KeyTo::Caller => (&InlineSecret, "inline"),
            KeyTo::Sink(name) => (&sink, name),
        };
        let provisioner = Provisioner {
            registry: &FencedRegistry::new(self.ports.registry.as_ref(), fence),
            templates: self.ports.templates.as_ref(),
            secrets,
            ca_keys: self.ports.ca_keys.as_ref(),
            settings: &self.settings.provision,
            clock: self.ports.clock.as_ref(),
            template,
        };
        provisioner.provision(request, secret_name, progress).await
    }

    /// Runs one piece of work: the one dispatch from a command to its handler.
    pub(super) async fn run(
        &self,
        key: &IdempotencyKey,
        work: Work<'_>,
        secret_name: &str,
        progress: &mut Progress<'_>,
    ) -> Result<CommandResult, CommandError> {
        let command = match work {
            Work::Command(command) => command,
            Work::Row { task, request, .. } => {
                let provisioned =
                    self.provision(request, Some(&task.template), KeyTo::Sink(secret_name), progress).await?;
                return Ok(CommandResult::ProvisionThing(provisioned.result));
            }
        };
        // Every change this attempt makes in IoT is fenced by its lease.
        let registry = FencedRegistry::new(self.ports.registry.as_ref(), progress.fence());
        Ok(match command {
            Command::GetThing(c) => CommandResult::GetThing(self.describe(&c.thing_name).await?),
            Command::DeleteThing(c) => {
                CommandResult::DeleteThing(self.delete_in(&registry, c, progress.attempt.resumed).await?)
            }
            Command::UpdateThingCertificates(c) => CommandResult::UpdateThingCertificates(
                update_thing_certificates(&registry, &c.thing_name, c.certificate_status).await?,
            ),
            Command::ProvisionThing(request) => {
                // The key went to the secret sink; the result carries only its reference.
                let Provisioned { result, private_key: _ } =
                    self.provision(request, None, KeyTo::Sink(secret_name), progress).await?;
                CommandResult::ProvisionThing(result)
            }
            Command::BulkProvisionThings(request) => {
                CommandResult::BulkProvisionThings(self.accept_bulk(key, request).await?.view())
            }
            Command::ProvisionBulkChunk(chunk) => {
                CommandResult::ProvisionBulkChunk(self.run_chunk(chunk, progress.attempt.last).await?)
            }
            Command::CancelBulkTask(c) => CommandResult::CancelBulkTask(self.cancel_bulk(&c.task_id).await?.view()),
        })
    }
}
