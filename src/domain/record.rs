//! The per-command record behind idempotency: its states, its lease, and the decision a
//! worker makes when it meets a record that already exists.
//!
//! States: `IN_PROGRESS` (leased by one attempt) → `SUCCEEDED` | `FAILED` (terminal).
//! A lease expires so that a crashed worker's command can be taken over; every transition is
//! a conditional write in the state store, so two workers can never both hold the lease.
//!
//! The table is shared (single-table design): every item has a partition key `pk` and a sort
//! key `sk`, laid out by [`ItemKey`]. A command record is `cmd#<key>` / `cmd`; other kinds of
//! items (bulk tasks and their rows) get their own prefixes, so a partition can be queried
//! for everything that belongs to one command or task.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::checkpoint::StoredCheckpoints;
use super::command::CommandType;
use super::error::CommandError;
use super::ids::{IdempotencyKey, LeaseToken, TaskId};
use super::result::CommandResult;
use super::time::Timestamp;

/// Where an item lives in the table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ItemKey {
    /// Partition key: what the item belongs to.
    pub pk: String,
    /// Sort key: which item of that partition.
    pub sk: String,
}

impl ItemKey {
    /// The sort key of every command record (and of nothing else).
    pub const COMMAND_SORT_KEY: &'static str = "cmd";

    /// The record of the command with this idempotency key.
    pub fn command(key: &IdempotencyKey) -> Self {
        Self { pk: format!("cmd#{}", key.as_str()), sk: Self::COMMAND_SORT_KEY.into() }
    }

    /// A bulk task's item.
    pub fn task(task: &TaskId) -> Self {
        Self { pk: Self::task_partition(task), sk: "task".into() }
    }

    /// The result of row `row` of a bulk task, beside the task in its partition.
    pub fn row(task: &TaskId, row: u32) -> Self {
        Self { pk: Self::task_partition(task), sk: Self::row_sort_key(row) }
    }

    /// The partition of a task and its rows.
    pub fn task_partition(task: &TaskId) -> String {
        format!("task#{task}")
    }

    /// A row's sort key: zero-padded, so that the sort order is the rows' order.
    pub fn row_sort_key(row: u32) -> String {
        format!("row#{row:010}")
    }
}

/// Where a command stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[derive(strum::IntoStaticStr, strum::EnumString, strum::VariantArray)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum CommandStatus {
    /// An attempt holds (or held) the lease and has not recorded an outcome.
    InProgress,
    /// Finished with a result.
    Succeeded,
    /// Finished with a permanent error.
    Failed,
}

impl CommandStatus {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Parses the stored spelling.
    pub fn parse(value: &str) -> Option<Self> {
        value.parse().ok()
    }

    /// Whether the command has an outcome.
    pub fn is_terminal(self) -> bool {
        self != Self::InProgress
    }
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The command's result.
    Succeeded(CommandResult),
    /// The permanent error.
    Failed(CommandError),
}

/// The stored record of one command (one idempotency key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandRecord {
    /// The idempotency key; the record's identity.
    pub idempotency_key: IdempotencyKey,
    /// Which command.
    pub command_type: CommandType,
    /// What the command is about (a thing name), when it names something; the event subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Fingerprint of the payload that first used this key.
    pub payload_hash: String,
    /// Where the command stands.
    pub status: CommandStatus,
    /// Token of the attempt holding the lease; on a finished record, of the attempt that
    /// recorded the outcome.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_token: Option<LeaseToken>,
    /// Until when the lease protects the attempt.
    pub lease_expires_at_ms: Timestamp,
    /// Grows with every change of the lease (take-over, renewal, release). A take-over is
    /// conditional on the version it read, so a renewal that lands between the read and the
    /// take-over defeats it: an attempt that was only slow is never run beside its successor.
    #[serde(default)]
    pub lease_version: u64,
    /// How many attempts have started (crashed ones included).
    pub attempts: u32,
    /// How many attempts ended in a failure that may pass later (throttling, an outage): the
    /// command's retry budget is spent by these, not by crashes or redeliveries.
    #[serde(default)]
    pub failures: u32,
    /// The result, once succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<CommandResult>,
    /// The error: the permanent one once failed, the last retryable one while in progress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<CommandError>,
    /// The steps done so far, as stored; decoded (strictly) when an attempt resumes.
    #[serde(default, skip_serializing_if = "StoredCheckpoints::is_empty")]
    pub checkpoints: StoredCheckpoints,
    /// Whether the completion event has been published.
    pub event_published: bool,
    /// Creation time.
    pub created_at_ms: Timestamp,
    /// Last change.
    pub updated_at_ms: Timestamp,
    /// When the store may forget the record (unix seconds; DynamoDB TTL; see [`Timestamp::expiry`]).
    pub expires_at: i64,
}

/// What to do with a command whose key already has a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BeginDecision {
    /// No live attempt: take the lease over (conditionally on the token and version seen) and
    /// run.
    TakeOver,
    /// An outcome is recorded: do not run again; publish the event if it is still owed.
    AlreadyDone,
    /// Another attempt holds a live lease: try again after its time left.
    Busy {
        /// Time left on the other attempt's lease.
        retry_after: Duration,
    },
    /// The key was used with another payload: refuse this message.
    PayloadMismatch,
}

/// What the first attempt of a command starts its record with.
#[derive(Debug, Clone)]
pub struct NewRecord {
    /// The command's idempotency key.
    pub key: IdempotencyKey,
    /// Which command.
    pub command_type: CommandType,
    /// What the command is about, when it names something.
    pub subject: Option<String>,
    /// Fingerprint of the command's type and payload.
    pub payload_hash: String,
    /// The attempt's token: it holds the lease from the start.
    pub lease_token: LeaseToken,
    /// The time of the attempt.
    pub now: Timestamp,
    /// How long the lease protects the attempt.
    pub lease: Duration,
    /// How long the store keeps the record.
    pub retention: Duration,
}

impl CommandRecord {
    /// A fresh record for the first attempt of a command.
    pub fn start(new: NewRecord) -> Self {
        let NewRecord { key, command_type, subject, payload_hash, lease_token, now, lease, retention } = new;
        Self {
            idempotency_key: key,
            command_type,
            subject,
            payload_hash,
            status: CommandStatus::InProgress,
            lease_token: Some(lease_token),
            lease_expires_at_ms: now + lease,
            lease_version: 0,
            attempts: 1,
            failures: 0,
            result: None,
            error: None,
            checkpoints: StoredCheckpoints::new(),
            event_published: false,
            created_at_ms: now,
            updated_at_ms: now,
            expires_at: now.expiry(retention),
        }
    }

    /// Decides what a new attempt carrying `payload_hash` may do with this record at `now`.
    pub fn decide(&self, payload_hash: &str, now: Timestamp) -> BeginDecision {
        if self.payload_hash != payload_hash {
            BeginDecision::PayloadMismatch
        } else if self.status.is_terminal() {
            BeginDecision::AlreadyDone
        } else if self.lease_expires_at_ms > now {
            BeginDecision::Busy { retry_after: self.lease_expires_at_ms.saturating_since(now) }
        } else {
            BeginDecision::TakeOver
        }
    }

    /// The outcome, once terminal.
    pub fn outcome(&self) -> Option<Outcome> {
        match self.status {
            CommandStatus::InProgress => None,
            CommandStatus::Succeeded => self.result.clone().map(Outcome::Succeeded),
            CommandStatus::Failed => self.error.clone().map(Outcome::Failed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::error::ErrorCode;

    fn record(now: i64) -> CommandRecord {
        CommandRecord::start(NewRecord {
            key: IdempotencyKey::new("k"),
            command_type: CommandType::GetThing,
            subject: Some("t".into()),
            payload_hash: "h1".into(),
            lease_token: LeaseToken::new("tok"),
            now: Timestamp::from_millis(now),
            lease: Duration::from_millis(30_000),
            retention: Duration::from_secs(86_400),
        })
    }

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn a_live_lease_makes_others_wait() {
        let r = record(1_000);
        assert_eq!(r.decide("h1", at(11_000)), BeginDecision::Busy { retry_after: Duration::from_millis(20_000) });
        assert_eq!(r.decide("h1", at(31_000)), BeginDecision::TakeOver);
        assert_eq!(r.expires_at, 1 + 86_400);
    }

    #[test]
    fn another_payload_is_refused_before_anything_else() {
        let mut r = record(0);
        assert_eq!(r.decide("h2", at(0)), BeginDecision::PayloadMismatch);
        r.status = CommandStatus::Succeeded;
        assert_eq!(r.decide("h2", at(0)), BeginDecision::PayloadMismatch);
    }

    #[test]
    fn terminal_records_are_done() {
        let mut r = record(0);
        r.status = CommandStatus::Failed;
        r.error = Some(CommandError::new(ErrorCode::ThingNotFound, "gone"));
        assert_eq!(r.decide("h1", at(0)), BeginDecision::AlreadyDone);
        assert!(matches!(r.outcome(), Some(Outcome::Failed(e)) if e.code == ErrorCode::ThingNotFound));
    }
}
