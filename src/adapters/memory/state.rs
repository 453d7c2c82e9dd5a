//! A command-record store with the same conditional semantics as the DynamoDB adapter.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::Faults;
use crate::domain::checkpoint::Checkpoint;
use crate::domain::record::{CommandRecord, CommandStatus, Outcome};
use crate::domain::{CommandError, IdempotencyKey, LeaseToken, Timestamp};
use crate::ports::state::TakeOver;
use crate::ports::{CreateOutcome, ErrorKind, PortError, StateStore};

/// The state store operations of the fake, for failure injection and call counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum StoreOp {
    /// `create`.
    Create,
    /// `take_over`.
    TakeOver,
    /// `renew_lease`.
    RenewLease,
    /// `finish`.
    Finish,
    /// `release`.
    Release,
    /// `checkpoint`.
    Checkpoint,
    /// `mark_event_published`.
    MarkEventPublished,
    /// `get`.
    Get,
    /// `stale_in_progress`.
    StaleInProgress,
}

/// Command records in a map.
#[derive(Debug, Default)]
pub struct MemoryStateStore {
    records: Mutex<HashMap<String, CommandRecord>>,
    /// Failure injection, by operation.
    pub faults: Faults<StoreOp>,
}

impl MemoryStateStore {
    /// Every record, for assertions.
    pub fn records(&self) -> Vec<CommandRecord> {
        self.records.lock().expect("records lock").values().cloned().collect()
    }

    /// Replaces a stored checkpoint's text, as a deploy of another version (or damage) would
    /// leave it; for tests of what resuming does with state it cannot read.
    pub fn overwrite_checkpoint(&self, key: &IdempotencyKey, slot: &str, text: &str) {
        if let Some(record) = self.records.lock().expect("records lock").get_mut(key.as_str()) {
            record.checkpoints.insert(slot.to_owned(), text.to_owned());
        }
    }

    /// Records the outcome if `token` holds the lease; the fake's `finish` without its faults,
    /// for a write that also changes another store.
    pub(super) fn finish_now(
        &self,
        key: &IdempotencyKey,
        token: &LeaseToken,
        outcome: &Outcome,
        now: Timestamp,
    ) -> Result<CommandRecord, PortError> {
        self.update("finish", key, Some(token), |r| {
            match outcome {
                Outcome::Succeeded(result) => {
                    r.status = CommandStatus::Succeeded;
                    r.result = Some(result.clone());
                    r.error = None;
                }
                Outcome::Failed(error) => {
                    r.status = CommandStatus::Failed;
                    r.error = Some(error.clone());
                }
            }
            r.updated_at_ms = now;
            r.clone()
        })
    }

    fn update<T>(
        &self,
        op: &'static str,
        key: &IdempotencyKey,
        token: Option<&LeaseToken>,
        change: impl FnOnce(&mut CommandRecord) -> T,
    ) -> Result<T, PortError> {
        let mut records = self.records.lock().expect("records lock");
        let record = records
            .get_mut(key.as_str())
            .ok_or_else(|| PortError::new(ErrorKind::ConditionFailed, op, "no such record"))?;
        if let Some(token) = token
            && (record.lease_token.as_ref() != Some(token) || record.status.is_terminal())
        {
            return Err(PortError::new(ErrorKind::ConditionFailed, op, "lease not held"));
        }
        Ok(change(record))
    }
}

#[async_trait]
impl StateStore for MemoryStateStore {
    async fn create(&self, record: &CommandRecord) -> Result<CreateOutcome, PortError> {
        self.faults.enter(StoreOp::Create).await?;
        let mut records = self.records.lock().expect("records lock");
        if let Some(existing) = records.get(record.idempotency_key.as_str()) {
            return Ok(CreateOutcome::Exists(Box::new(existing.clone())));
        }
        records.insert(record.idempotency_key.as_str().to_owned(), record.clone());
        Ok(CreateOutcome::Created)
    }

    async fn take_over(&self, key: &IdempotencyKey, take_over: TakeOver<'_>) -> Result<CommandRecord, PortError> {
        self.faults.enter(StoreOp::TakeOver).await?;
        let TakeOver { expected, seen_version, token, lease_until, now, expires_at } = take_over;
        let mut records = self.records.lock().expect("records lock");
        let record = records
            .get_mut(key.as_str())
            .filter(|r| {
                r.lease_token.as_ref() == expected
                    && r.lease_version == seen_version
                    && r.lease_expires_at_ms <= now
                    && r.status == CommandStatus::InProgress
            })
            .ok_or_else(|| PortError::new(ErrorKind::ConditionFailed, "take_over", "record changed"))?;
        record.lease_token = Some(token.clone());
        record.lease_expires_at_ms = lease_until;
        record.lease_version = seen_version + 1;
        record.attempts += 1;
        record.updated_at_ms = now;
        record.expires_at = expires_at;
        Ok(record.clone())
    }

    async fn renew_lease(
        &self,
        key: &IdempotencyKey,
        token: &LeaseToken,
        lease_until: Timestamp,
    ) -> Result<(), PortError> {
        self.faults.enter(StoreOp::RenewLease).await?;
        self.update("renew_lease", key, Some(token), |r| {
            r.lease_expires_at_ms = lease_until;
            r.lease_version += 1;
        })
    }

    async fn finish(
        &self,
        key: &IdempotencyKey,
        token: &LeaseToken,
        outcome: &Outcome,
        now: Timestamp,
    ) -> Result<CommandRecord, PortError> {
        self.faults.enter(StoreOp::Finish).await?;
        self.finish_now(key, token, outcome, now)
    }

    async fn release(
        &self,
        key: &IdempotencyKey,
        token: &LeaseToken,
        error: &CommandError,
        now: Timestamp,
    ) -> Result<(), PortError> {
        self.faults.enter(StoreOp::Release).await?;
        self.update("release", key, Some(token), |r| {
            r.lease_expires_at_ms = now;
            r.lease_version += 1;
            r.failures += 1;
            r.error = Some(error.clone());
            r.updated_at_ms = now;
        })
    }

    async fn checkpoint(
        &self,
        key: &IdempotencyKey,
        token: &LeaseToken,
        checkpoints: &[Checkpoint],
    ) -> Result<(), PortError> {
        self.faults.enter(StoreOp::Checkpoint).await?;
        // Stored in the encoded form, as in DynamoDB, so resuming decodes the same text.
        self.update("checkpoint", key, Some(token), |r| {
            for checkpoint in checkpoints {
                r.checkpoints.insert(checkpoint.slot(), checkpoint.encode());
            }
        })?;
        Ok(())
    }

    async fn mark_event_published(&self, key: &IdempotencyKey) -> Result<(), PortError> {
        self.faults.enter(StoreOp::MarkEventPublished).await?;
        self.update("mark_event_published", key, None, |r| r.event_published = true)
    }

    async fn get(&self, key: &IdempotencyKey) -> Result<Option<CommandRecord>, PortError> {
        self.faults.enter(StoreOp::Get).await?;
        Ok(self.records.lock().expect("records lock").get(key.as_str()).cloned())
    }

    async fn stale_in_progress(
        &self,
        lease_expired_before: Timestamp,
        limit: usize,
    ) -> Result<Vec<CommandRecord>, PortError> {
        self.faults.enter(StoreOp::StaleInProgress).await?;
        let records = self.records.lock().expect("records lock");
        let mut stale: Vec<CommandRecord> = records
            .values()
            .filter(|r| r.status == CommandStatus::InProgress && r.lease_expires_at_ms < lease_expired_before)
            .cloned()
            .collect();
        // The map's order is arbitrary; tests read the same order every time.
        stale.sort_by(|a, b| a.idempotency_key.as_str().cmp(b.idempotency_key.as_str()));
        stale.truncate(limit);
        Ok(stale)
    }
}
