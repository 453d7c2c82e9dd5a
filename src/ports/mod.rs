//! The traits the application core needs from the outside world, in domain types only.
//!
//! Adapters implement them for AWS (`adapters::aws`) and in memory (`adapters::memory`).
//! Every failure is a [`PortError`] whose [`ErrorKind`] says what to do next, never which
//! SDK produced it.
//!
//! - [`registry`]: AWS IoT, split by what it manages: [`Things`], [`Certificates`],
//!   [`Policies`], and [`ThingRegistration`] (RegisterThing).
//! - [`state`]: command records ([`StateStore`]); [`bulk`]: bulk tasks and their rows.
//! - [`queue`]: the command queue, as a consumer ([`CommandQueue`]) and as a producer
//!   ([`CommandSender`]).
//! - [`storage`]: templates, generated keys and CA keys in S3 (or a directory).
//! - [`events`]: where completion events go.

pub mod bulk;
pub mod events;
pub mod queue;
pub mod registry;
pub mod state;
pub mod storage;

use std::fmt;

pub use bulk::{BulkStore, RowPage};
pub use events::EventPublisher;
pub use queue::{CommandQueue, CommandSender, DeleteFailure, MAX_SEND_BATCH, QueueMessage, SendFailure};
pub use registry::{
    AwsGeneratedKey, Certificates, DeviceRegistry, IotOperation, NewThing, Policies, ThingRegistration, Things,
};
pub use state::{CreateOutcome, StateStore};
pub use storage::{CaKeyStore, RowLines, RowSource, SecretSink, TemplateStore, TemplateVersion, WriteCondition};

pub use crate::domain::registry::IssuedCertificate;
use crate::domain::{CommandError, ErrorCode, Timestamp};

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
    /// The attempt no longer holds its command's lease (see `app::fence`): it stops.
    LeaseLost,
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
            ErrorKind::LeaseLost => ErrorCode::LeaseLost,
        };
        CommandError::new(code, self.to_string())
    }
}

/// The time, injected so that tests control it.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_datetime(time::OffsetDateTime::now_utc())
    }
}
