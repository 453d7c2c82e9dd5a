//! Step checkpoints of a running command: decoded from its record when an attempt resumes,
//! written back (conditionally on the lease) as steps complete. Without a record (the REST
//! facade's synchronous path) they live only in memory.
//!
//! A step whose checkpoint a resumed attempt can do without (it redoes the step harmlessly, or
//! derives the same result again) is *deferred*: kept in memory and written together with the
//! next step that must be saved. That saves DynamoDB writes on every device (a bulk row's
//! checkpoints take one write) without weakening what a crash can leave behind.

use super::fence::Fence;
use crate::domain::checkpoint::{Checkpoint, Checkpoints};
use crate::domain::{CommandError, ErrorCode};
use crate::ports::ErrorKind;

/// The checkpoints of one attempt.
pub struct Progress<'a> {
    saved: Checkpoints,
    /// Deferred steps not written yet (applied to `saved` already).
    unwritten: Vec<Checkpoint>,
    /// The lease the steps are written under (none: in memory only).
    durable: Option<Fence<'a>>,
    /// Which attempt this is.
    pub attempt: Attempt,
}

/// Which attempt at a piece of work is running.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attempt {
    /// An earlier attempt of the same work may have acted: this one resumes.
    pub resumed: bool,
    /// The work's last chance (its last delivery, or its failure budget spent): a failure that
    /// could pass later is final now, and is compensated like any permanent failure.
    pub last: bool,
}

impl<'a> Progress<'a> {
    /// Checkpoints kept in the command's record, written under `fence`'s lease.
    pub fn durable(fence: Fence<'a>, saved: Checkpoints, attempt: Attempt) -> Self {
        Self { saved, unwritten: Vec::new(), durable: Some(fence), attempt }
    }

    /// The lease this attempt's effects are fenced by (none without a record).
    pub fn fence(&self) -> Option<Fence<'a>> {
        self.durable
    }

    /// Checkpoints kept in memory only.
    pub fn volatile() -> Self {
        Self { saved: Checkpoints::default(), unwritten: Vec::new(), durable: None, attempt: Attempt::default() }
    }

    /// The steps completed so far.
    pub fn saved(&self) -> &Checkpoints {
        &self.saved
    }

    /// Saves a completed step, with the deferred ones, in one write; fails with `LEASE_LOST`
    /// when another attempt holds the lease, retryably when the write failed.
    pub async fn save(&mut self, checkpoint: Checkpoint) -> Result<(), CommandError> {
        if let Some(fence) = self.durable {
            self.hold(&checkpoint);
            fence.state.checkpoint(fence.key, fence.token, &self.unwritten).await.map_err(|e| {
                let code =
                    if e.kind == ErrorKind::ConditionFailed { ErrorCode::LeaseLost } else { ErrorCode::Transient };
                CommandError::new(code, format!("checkpoint {} not saved: {e}", checkpoint.slot()))
            })?;
            self.unwritten.clear();
        }
        self.saved.apply(checkpoint);
        Ok(())
    }

    /// Notes a completed step whose checkpoint a resumed attempt can do without: it is written
    /// with the next [`save`](Self::save), or never if the attempt ends first (the outcome then
    /// makes it moot, or a later attempt redoes the step).
    pub fn defer(&mut self, checkpoint: Checkpoint) {
        if self.durable.is_some() {
            self.hold(&checkpoint);
        }
        self.saved.apply(checkpoint);
    }

    /// Adds a step to those the next write carries; one slot appears once per write (DynamoDB
    /// refuses overlapping paths), the newest wins.
    fn hold(&mut self, checkpoint: &Checkpoint) {
        self.unwritten.retain(|c| c.slot() != checkpoint.slot());
        self.unwritten.push(checkpoint.clone());
    }
}
