//! Pure domain types and rules: commands, their records, outcomes, errors and events.
//!
//! Nothing here performs I/O or knows about the AWS SDK; every function is deterministic
//! given its inputs (time is passed in), which keeps this layer cheap to test exhaustively.

pub mod bulk;
pub mod certificate;
pub mod checkpoint;
pub mod command;
pub mod error;
pub mod event;
pub mod ids;
pub mod record;
pub mod registry;
pub mod result;
pub mod schema;
pub mod secret;
pub mod template;
pub mod thing;

pub use command::{Command, CommandEnvelope, CommandType};
pub use error::{CommandError, ErrorCode};
pub use event::CloudEvent;
pub use ids::{IdempotencyKey, TaskId};
pub use record::{BeginDecision, CommandRecord, CommandStatus, ItemKey};
pub use result::CommandResult;
pub use thing::{Arn, CertificateId, CertificateStatus, ThingName};
