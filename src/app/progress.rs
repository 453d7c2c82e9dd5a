//! Step checkpoints of a running command: read from its record when an attempt resumes,
//! written back (conditionally on the lease) as each step completes. Without a record (the
//! REST facade's synchronous path) they live only in memory.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::domain::{CommandError, ErrorCode, IdempotencyKey};
use crate::ports::StateStore;

/// The checkpoints of one attempt.
pub struct Progress<'a> {
    saved: BTreeMap<String, Value>,
    durable: Option<(&'a dyn StateStore, &'a IdempotencyKey, &'a str)>,
    /// Whether an earlier attempt of the same command may have acted.
    pub is_retry: bool,
}

impl<'a> Progress<'a> {
    /// Checkpoints kept in the command's record.
    pub fn durable(
        state: &'a dyn StateStore,
        key: &'a IdempotencyKey,
        token: &'a str,
        saved: BTreeMap<String, Value>,
        is_retry: bool,
    ) -> Self {
        Self { saved, durable: Some((state, key, token)), is_retry }
    }

    /// Checkpoints kept in memory only.
    pub fn volatile() -> Self {
        Self { saved: BTreeMap::new(), durable: None, is_retry: false }
    }

    /// A step's saved result.
    pub fn get<T: DeserializeOwned>(&self, step: &str) -> Option<T> {
        self.saved.get(step).and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    /// Whether a step is done.
    pub fn done(&self, step: &str) -> bool {
        self.saved.contains_key(step)
    }

    /// Every saved step, for compensation.
    pub fn steps(&self) -> &BTreeMap<String, Value> {
        &self.saved
    }

    /// Saves a step's result; fails (retryably) when the lease was lost.
    pub async fn save<T: Serialize>(&mut self, step: &str, value: &T) -> Result<(), CommandError> {
        let value = serde_json::to_value(value).map_err(|e| CommandError::new(ErrorCode::Rejected, e.to_string()))?;
        if let Some((state, key, token)) = self.durable {
            state
                .checkpoint(key, token, step, &value)
                .await
                .map_err(|e| CommandError::new(ErrorCode::Transient, format!("checkpoint {step} not saved: {e}")))?;
        }
        self.saved.insert(step.to_owned(), value);
        Ok(())
    }
}
