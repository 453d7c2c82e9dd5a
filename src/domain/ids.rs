//! The ids commands, tasks and templates are known by, in one place: a command's idempotency
//! key, the bulk task id derived from it, a template's id, and the token of the attempt
//! holding a command's lease.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::{CommandError, ErrorCode};

/// The producer's idempotency key (or the SQS message id when the producer gave none).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Wraps a key; the schema has already checked its shape for keys from messages.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key of the record of a keyed REST request: `rest:<caller>:<key>`. REST keys have
    /// their own namespace, scoped to the caller, so that a REST request can never meet the
    /// record of a queued command (whose generated private key went to the secret sink for
    /// someone else) nor another caller's; queue keys may not start with [`REST_KEY_PREFIX`].
    pub fn rest(caller: &str, key: &str) -> Self {
        Self(format!("{REST_KEY_PREFIX}{caller}:{key}"))
    }

    /// Whether this is the key of a keyed REST request's record (see [`IdempotencyKey::rest`]).
    pub fn is_rest(&self) -> bool {
        self.0.starts_with(REST_KEY_PREFIX)
    }

    /// The key text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The prefix reserved for the records of keyed REST requests; a queued command's key that
/// starts with it is refused.
pub const REST_KEY_PREFIX: &str = "rest:";

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Namespace of task ids (UUIDv5 of the producer's idempotency key).
const TASK_ID_NAMESPACE: Uuid = Uuid::from_u128(0x3c4d_1f0a_7b2e_5d9c_a1e8_44f0_6b2d_90c3);

/// A bulk task's id: derived from the producer's idempotency key, so the same key is the same
/// task wherever it is submitted (queue or REST).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(String);

impl TaskId {
    /// The task of the command with idempotency key `key`.
    pub fn for_key(key: &IdempotencyKey) -> Self {
        Self(Uuid::new_v5(&TASK_ID_NAMESPACE, key.as_str().as_bytes()).to_string())
    }

    /// Parses a task id given by a caller; `None` unless it is a UUID.
    pub fn parse(text: &str) -> Option<Self> {
        Uuid::parse_str(text).ok().map(|id| Self(id.to_string()))
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A well-formed template id: 1 to 512 letters, digits, `_`, `.`, `-` in `/`-separated
/// names, none empty or `..` (an id is a key in the bucket).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TemplateId(String);

impl TemplateId {
    /// Longest id.
    pub const MAX_LEN: usize = 512;

    /// Checks a template id given by a caller; the error has no path (the caller knows where
    /// the id was).
    pub fn parse(id: &str) -> Result<Self, CommandError> {
        let well_formed = !id.is_empty()
            && id.len() <= Self::MAX_LEN
            && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/'))
            && !id.split('/').any(|segment| segment.is_empty() || segment == "..");
        if !well_formed {
            return Err(CommandError::new(
                ErrorCode::ValidationFailed,
                "a template id is 1 to 512 letters, digits, '_', '.', '-' and '/'-separated names (no empty or '..' names)",
            ));
        }
        Ok(Self(id.to_owned()))
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TemplateId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Identifies one attempt at a command: the attempt holding a record's lease proves it with
/// this token on every conditional write (renew, checkpoint, finish, release).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LeaseToken(String);

impl LeaseToken {
    /// A token no other attempt has: a random UUID (v4). The one random value of the domain.
    pub fn fresh() -> Self {
        Self(Uuid::new_v4().to_string())
    }

    /// A token as stored (read back from a record).
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// The token text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&LeaseToken> for LeaseToken {
    fn from(token: &LeaseToken) -> Self {
        token.clone()
    }
}

impl From<&str> for LeaseToken {
    fn from(token: &str) -> Self {
        Self::new(token)
    }
}

impl From<&String> for LeaseToken {
    fn from(token: &String) -> Self {
        Self::new(token.as_str())
    }
}

impl fmt::Display for LeaseToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_ids_are_bucket_keys_without_traversal() {
        for ok in ["t", "fleet/sensors.v2", "a-b_c.d", &"x".repeat(512)] {
            assert_eq!(TemplateId::parse(ok).map(|id| id.to_string()).ok().as_deref(), Some(ok));
        }
        for bad in ["", "a//b", "../t", "a/../b", "/t", "t/", "t?x", "t t", &"x".repeat(513)] {
            let e = TemplateId::parse(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::ValidationFailed, "{bad}");
            assert!(e.path.is_none());
        }
    }
}
