//! The traits the application core needs from the outside world, in domain types only.
//!
//! Adapters implement them for AWS (`adapters::aws`) and in memory (`adapters::memory`).
//! Every failure is a [`PortError`] whose [`ErrorKind`] says what to do next, never which
//! SDK produced it.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use crate::crypto::Secret;
use crate::domain::checkpoint::Checkpoint;
use crate::domain::record::{CommandRecord, Outcome};
pub use crate::domain::registry::IssuedCertificate;
use crate::domain::registry::{CertificateInfo, GroupInfo, PolicyInfo, ThingInfo};
use crate::domain::{CertificateStatus, CloudEvent, CommandError, ErrorCode, IdempotencyKey, ThingName};

/// What kind of failure a port call met, sorted by what the caller should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The resource does not exist.
    NotFound,
    /// The resource exists already.
    AlreadyExists,
    /// The resource is in use or in a state that forbids the call; may clear up shortly
    /// (IoT's eventual consistency after a detach).
    Conflict,
    /// A conditional write lost: someone else changed the record.
    ConditionFailed,
    /// The service throttled us: retry later.
    Throttled,
    /// Network fault, timeout, 5xx: retry later.
    Transient,
    /// The request is wrong and will stay wrong.
    Invalid,
    /// Anything else that retrying will not fix (access denied, misconfiguration).
    Permanent,
    /// Stored state this version cannot decode (written by another version, or damaged).
    Unreadable,
}

/// A failed port call: its kind, the operation, and the service's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PortError {
    /// What to do next.
    pub kind: ErrorKind,
    /// The operation that failed, e.g. `iot:DeleteThing`.
    pub op: &'static str,
    /// The service's explanation.
    pub message: String,
}

impl fmt::Display for PortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed ({:?}): {}", self.op, self.kind, self.message)
    }
}

impl PortError {
    /// Builds an error.
    pub fn new(kind: ErrorKind, op: &'static str, message: impl Into<String>) -> Self {
        Self { kind, op, message: message.into() }
    }

    /// Whether a later attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, ErrorKind::Throttled | ErrorKind::Transient)
    }

    /// The command error this becomes when a command cannot proceed.
    pub fn to_command_error(&self) -> CommandError {
        let code = match self.kind {
            ErrorKind::NotFound => ErrorCode::NotFound,
            ErrorKind::Throttled => ErrorCode::Throttled,
            ErrorKind::Transient | ErrorKind::ConditionFailed => ErrorCode::Transient,
            ErrorKind::Conflict | ErrorKind::AlreadyExists => ErrorCode::InvalidState,
            ErrorKind::Invalid => ErrorCode::InvalidRequest,
            ErrorKind::Permanent => ErrorCode::PermanentFailure,
            ErrorKind::Unreadable => ErrorCode::RecordUnreadable,
        };
        CommandError::new(code, self.to_string())
    }
}

/// The AWS IoT registry (control plane).
#[async_trait]
pub trait DeviceRegistry: Send + Sync {
    /// Describes a thing; `NotFound` when it does not exist.
    async fn describe_thing(&self, thing: &ThingName) -> Result<ThingInfo, PortError>;
    /// Every principal (certificate ARN, ...) attached to the thing, all pages.
    async fn list_thing_principals(&self, thing: &ThingName) -> Result<Vec<String>, PortError>;
    /// Every thing a principal is attached to, all pages.
    async fn list_principal_things(&self, principal: &str) -> Result<Vec<String>, PortError>;
    /// The thing groups the thing belongs to directly, all pages (names).
    async fn list_thing_groups_for_thing(&self, thing: &ThingName) -> Result<Vec<String>, PortError>;
    /// Describes a thing group.
    async fn describe_thing_group(&self, group: &str) -> Result<GroupInfo, PortError>;
    /// Describes a certificate by id.
    async fn describe_certificate(&self, certificate_id: &str) -> Result<CertificateInfo, PortError>;
    /// Sets a certificate's status.
    async fn update_certificate_status(&self, certificate_id: &str, status: CertificateStatus)
    -> Result<(), PortError>;
    /// Deletes an inactive, detached certificate.
    async fn delete_certificate(&self, certificate_id: &str) -> Result<(), PortError>;
    /// Names of the policies attached to a target (certificate ARN), all pages.
    async fn list_attached_policies(&self, target: &str) -> Result<Vec<String>, PortError>;
    /// Every target a policy is attached to, all pages.
    async fn list_policy_targets(&self, policy: &str) -> Result<Vec<String>, PortError>;
    /// Reads a policy and its default document.
    async fn get_policy(&self, policy: &str) -> Result<PolicyInfo, PortError>;
    /// Detaches a policy from a target.
    async fn detach_policy(&self, policy: &str, target: &str) -> Result<(), PortError>;
    /// Deletes a policy (and its non-default versions).
    async fn delete_policy(&self, policy: &str) -> Result<(), PortError>;
    /// Detaches a principal from a thing.
    async fn detach_thing_principal(&self, thing: &ThingName, principal: &str) -> Result<(), PortError>;
    /// Deletes a thing; `Conflict` while principals are (still) attached.
    async fn delete_thing(&self, thing: &ThingName) -> Result<(), PortError>;

    /// Creates a thing; `AlreadyExists` when it exists with other properties.
    async fn create_thing(&self, thing: &NewThing) -> Result<String, PortError>;
    /// Replaces or merges a thing's attributes and sets its type (`None`: unchanged).
    async fn update_thing(
        &self,
        thing: &ThingName,
        thing_type: Option<&str>,
        attributes: &BTreeMap<String, String>,
        merge: bool,
    ) -> Result<(), PortError>;
    /// Adds a thing to a static thing group (idempotent).
    async fn add_thing_to_thing_group(&self, thing: &ThingName, group: &str) -> Result<(), PortError>;
    /// Removes a thing from a static thing group.
    async fn remove_thing_from_thing_group(&self, thing: &ThingName, group: &str) -> Result<(), PortError>;
    /// Adds a thing to a billing group.
    async fn add_thing_to_billing_group(&self, thing: &ThingName, group: &str) -> Result<(), PortError>;
    /// `CreateCertificateFromCsr`: AWS signs the CSR.
    async fn create_certificate_from_csr(&self, csr_pem: &str, active: bool) -> Result<IssuedCertificate, PortError>;
    /// `CreateKeysAndCertificate`: AWS makes the key too.
    async fn create_keys_and_certificate(&self, active: bool)
    -> Result<(IssuedCertificate, Secret, String), PortError>;
    /// `RegisterCertificate`: a certificate signed by a CA registered in IoT.
    async fn register_certificate(
        &self,
        certificate_pem: &str,
        ca_certificate_pem: Option<&str>,
        active: bool,
    ) -> Result<IssuedCertificate, PortError>;
    /// `RegisterCertificateWithoutCA`.
    async fn register_certificate_without_ca(
        &self,
        certificate_pem: &str,
        active: bool,
    ) -> Result<IssuedCertificate, PortError>;
    /// The PEM of a CA certificate registered in IoT.
    async fn ca_certificate_pem(&self, ca_certificate_id: &str) -> Result<String, PortError>;
    /// Creates a policy; `AlreadyExists` when the name is taken.
    async fn create_policy(&self, policy: &str, document: &str) -> Result<(), PortError>;
    /// Attaches a policy to a target (idempotent).
    async fn attach_policy(&self, policy: &str, target: &str) -> Result<(), PortError>;
    /// Attaches a principal to a thing (idempotent).
    async fn attach_thing_principal(&self, thing: &ThingName, principal: &str) -> Result<(), PortError>;
    /// INACTIVE certificates created at or after `since_ms` (unix ms), with their PEMs: the
    /// candidates when a resumed attempt looks for the certificate its crashed predecessor
    /// requested but never recorded.
    async fn recent_inactive_certificates(&self, since_ms: i64) -> Result<Vec<CertificateInfo>, PortError>;
    /// `RegisterThing`: IoT evaluates the template itself. Returns the certificate PEM (if
    /// any) and IoT's `resourceArns` map.
    async fn register_thing(
        &self,
        template_body: &str,
        parameters: &BTreeMap<String, String>,
    ) -> Result<(Option<String>, BTreeMap<String, String>), PortError>;
}

/// A thing to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewThing {
    /// Name.
    pub name: ThingName,
    /// Type (must exist).
    pub thing_type: Option<String>,
    /// Attributes.
    pub attributes: BTreeMap<String, String>,
}

/// Provisioning templates by id (S3 `<prefix><id><suffix>`).
#[async_trait]
pub trait TemplateStore: Send + Sync {
    /// The template's text; `NotFound` when there is none.
    async fn template(&self, template_id: &str) -> Result<String, PortError>;
}

/// Where generated private keys go, so that they never reach records, events or logs.
#[async_trait]
pub trait SecretSink: Send + Sync {
    /// Stores `secret` under `name` (overwriting); returns a reference for the caller.
    async fn store(&self, name: &str, secret: &Secret) -> Result<String, PortError>;
    /// Deletes what `store` put under `name` (compensation).
    async fn delete(&self, name: &str) -> Result<(), PortError>;
}

/// Private keys of the CAs this deployment signs device certificates with.
#[async_trait]
pub trait CaKeyStore: Send + Sync {
    /// The private key (PEM) of the CA registered in IoT as `ca_certificate_id`.
    async fn ca_private_key(&self, ca_certificate_id: &str) -> Result<Secret, PortError>;
}

/// Result of trying to create a command record.
#[derive(Debug, Clone, PartialEq)]
pub enum CreateOutcome {
    /// The record was created: this attempt holds the lease.
    Created,
    /// A record with this key exists; here it is.
    Exists(Box<CommandRecord>),
}

/// Durable command records (DynamoDB). Every write is conditional.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// Creates the record if no record has its key.
    async fn create(&self, record: &CommandRecord) -> Result<CreateOutcome, PortError>;
    /// Moves the lease from `expected_token` (the one seen) to `new_token`, counting an
    /// attempt. `ConditionFailed` when the record changed meanwhile.
    async fn take_over(
        &self,
        key: &IdempotencyKey,
        expected_token: Option<&str>,
        new_token: &str,
        lease_expires_at_ms: i64,
        now_ms: i64,
    ) -> Result<CommandRecord, PortError>;
    /// Extends the lease held by `token`.
    async fn renew_lease(&self, key: &IdempotencyKey, token: &str, lease_expires_at_ms: i64) -> Result<(), PortError>;
    /// Records the outcome, if `token` still holds the lease.
    async fn finish(
        &self,
        key: &IdempotencyKey,
        token: &str,
        outcome: &Outcome,
        now_ms: i64,
    ) -> Result<CommandRecord, PortError>;
    /// Gives the lease up after a retryable failure, keeping the error for operators.
    async fn release(
        &self,
        key: &IdempotencyKey,
        token: &str,
        error: &CommandError,
        now_ms: i64,
    ) -> Result<(), PortError>;
    /// Saves a completed step in its slot, if `token` still holds the lease.
    async fn checkpoint(&self, key: &IdempotencyKey, token: &str, checkpoint: &Checkpoint) -> Result<(), PortError>;
    /// Notes that the completion event went out.
    async fn mark_event_published(&self, key: &IdempotencyKey) -> Result<(), PortError>;
    /// Reads a record.
    async fn get(&self, key: &IdempotencyKey) -> Result<Option<CommandRecord>, PortError>;
}

/// Where completion events go (an SQS queue, an SNS topic).
#[async_trait]
pub trait EventPublisher: Send + Sync {
    /// Publishes one event.
    async fn publish(&self, event: &CloudEvent) -> Result<(), PortError>;
}

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
    /// Long-polls for up to `max` (≤ 10) messages, waiting at most `wait`.
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<QueueMessage>, PortError>;
    /// Deletes up to 10 messages; returns those that could not be deleted.
    async fn delete_batch(&self, receipt_handles: &[String]) -> Result<Vec<DeleteFailure>, PortError>;
    /// Hides a message for `timeout` from now (0: visible again at once).
    async fn change_visibility(&self, receipt_handle: &str, timeout: Duration) -> Result<(), PortError>;
    /// Sends a message; returns its id.
    async fn send(&self, body: &str) -> Result<String, PortError>;
    /// Copies a refused message to the dead-letter queue with the reason attached.
    async fn dead_letter(&self, message: &QueueMessage, reason: &CommandError) -> Result<(), PortError>;
}

/// The time, injected so that tests control it.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        let now = time::OffsetDateTime::now_utc();
        i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
    }
}
