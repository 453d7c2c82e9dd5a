//! Step checkpoints of a running command: decoded from its record when an attempt resumes,
//! written back (conditionally on the lease) as each step completes. Without a record (the
//! REST facade's synchronous path) they live only in memory.

use crate::domain::checkpoint::{Checkpoint, Checkpoints};
use crate::domain::{CommandError, ErrorCode, IdempotencyKey};
use crate::ports::StateStore;

/// The checkpoints of one attempt.
pub struct Progress<'a> {
    saved: Checkpoints,
    durable: Option<(&'a dyn StateStore, &'a IdempotencyKey, &'a str)>,
    /// Whether an earlier attempt of the same command may have acted.
    pub is_retry: bool,
    /// Whether this is the command's last delivery: a failure that could pass later is final
    /// now, and is compensated like any permanent failure.
    pub final_attempt: bool,
}

impl<'a> Progress<'a> {
    /// Checkpoints kept in the command's record.
    pub fn durable(
        state: &'a dyn StateStore,
        key: &'a IdempotencyKey,
        token: &'a str,
        saved: Checkpoints,
        is_retry: bool,
    ) -> Self {
        Self { saved, durable: Some((state, key, token)), is_retry, final_attempt: false }
    }

    /// Checkpoints kept in memory only.
    pub fn volatile() -> Self {
        Self { saved: Checkpoints::default(), durable: None, is_retry: false, final_attempt: false }
    }

    /// The steps completed so far.
    pub fn saved(&self) -> &Checkpoints {
        &self.saved
    }

    /// Saves a completed step; fails (retryably) when the lease was lost or the write failed.
    pub async fn save(&mut self, checkpoint: Checkpoint) -> Result<(), CommandError> {
        if let Some((state, key, token)) = self.durable {
            state.checkpoint(key, token, &checkpoint).await.map_err(|e| {
                CommandError::new(ErrorCode::Transient, format!("checkpoint {} not saved: {e}", checkpoint.slot()))
            })?;
        }
        self.saved.apply(checkpoint);
        Ok(())
    }
}
