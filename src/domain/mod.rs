//! Pure domain types and rules: commands, their records, outcomes, errors and events.
//!
//! Nothing here performs I/O or knows about the AWS SDK; every function is deterministic
//! given its inputs (time is passed in as a [`Timestamp`]; the one random value is a fresh
//! [`LeaseToken`]), which keeps this layer cheap to test exhaustively.

pub mod bulk;
pub mod certificate;
pub mod checkpoint;
pub mod command;
pub mod error;
pub mod event;
pub mod ids;
pub mod location;
pub mod record;
pub mod registry;
pub mod result;
pub mod schema;
pub mod secret;
pub mod template;
pub mod thing;
pub mod time;

pub use self::time::Timestamp;
pub use command::{Command, CommandEnvelope, CommandType};
pub use error::{CommandError, ErrorCode};
pub use event::CloudEvent;
pub use ids::{IdempotencyKey, LeaseToken, REST_KEY_PREFIX, TaskId, TemplateId};
pub use location::Location;
pub use record::{BeginDecision, CommandRecord, CommandStatus, ItemKey};
pub use result::CommandResult;
pub use thing::{Arn, CertificateId, CertificateStatus, ThingName};

/// Every enum stored or sent by name is spelled by strum (`as_str`, `parse`) and by serde
/// alike: one spelling per variant, whichever way it is written or read.
#[cfg(test)]
mod spellings {
    use std::fmt::Debug;
    use std::str::FromStr;

    use serde::Serialize;
    use serde::de::DeserializeOwned;
    use strum::VariantArray;

    use super::bulk::{RowOutcome, TaskStatus};
    use super::{CertificateStatus, CommandStatus, CommandType, ErrorCode};

    fn agree<T>()
    where
        T: VariantArray + Copy + Debug + PartialEq + Serialize + DeserializeOwned + FromStr + Into<&'static str>,
    {
        for &variant in T::VARIANTS {
            let spelling: &'static str = variant.into();
            assert_eq!(serde_json::to_value(variant).unwrap(), spelling, "{variant:?} serialized");
            assert_eq!(serde_json::from_value::<T>(spelling.into()).unwrap(), variant, "{spelling} deserialized");
            assert_eq!(spelling.parse::<T>().ok(), Some(variant), "{spelling} parsed");
        }
    }

    #[test]
    fn command_types_agree() {
        agree::<CommandType>();
    }

    #[test]
    fn command_statuses_agree() {
        agree::<CommandStatus>();
    }

    #[test]
    fn error_codes_agree() {
        agree::<ErrorCode>();
    }

    #[test]
    fn certificate_statuses_agree() {
        agree::<CertificateStatus>();
    }

    #[test]
    fn task_statuses_agree() {
        agree::<TaskStatus>();
    }

    #[test]
    fn row_outcomes_agree() {
        agree::<RowOutcome>();
    }
}
