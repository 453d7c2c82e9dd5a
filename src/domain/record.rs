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

use serde::{Deserialize, Serialize};

use super::checkpoint::StoredCheckpoints;
use super::command::CommandType;
use super::error::CommandError;
use super::ids::{IdempotencyKey, TaskId};
use super::result::CommandResult;

/// Where an item lives in the table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ItemKey {
    /// Partition key: what the item belongs to.
    pub pk: String,
    /// Sort key: which item of that partition.
    pub sk: String,
}

impl ItemKey {
    /// The record of the command with this idempotency key.
    pub fn command(key: &IdempotencyKey) -> Self {
        Self { pk: format!("cmd#{}", key.as_str()), sk: "cmd".into() }
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
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
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
    /// Token of the attempt holding the lease.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_token: Option<String>,
    /// Until when the lease protects the attempt (unix ms).
    pub lease_expires_at_ms: i64,
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
    /// Creation time (unix ms).
    pub created_at_ms: i64,
    /// Last change (unix ms).
    pub updated_at_ms: i64,
    /// When the store may forget the record (unix seconds; DynamoDB TTL).
    pub expires_at: i64,
}

/// What to do with a command whose key already has a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BeginDecision {
    /// No live attempt: take the lease over (conditionally on the token seen) and run.
    TakeOver,
    /// An outcome is recorded: do not run again; publish the event if it is still owed.
    AlreadyDone,
    /// Another attempt holds a live lease: try again after this many milliseconds.
    Busy {
        /// Time left on the other attempt's lease.
        retry_after_ms: i64,
    },
    /// The key was used with another payload: refuse this message.
    PayloadMismatch,
}

impl CommandRecord {
    /// A fresh record for the first attempt of a command.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        idempotency_key: IdempotencyKey,
        command_type: CommandType,
        subject: Option<String>,
        payload_hash: String,
        lease_token: String,
        now_ms: i64,
        lease_ms: i64,
        retention_secs: i64,
    ) -> Self {
        Self {
            idempotency_key,
            command_type,
            subject,
            payload_hash,
            status: CommandStatus::InProgress,
            lease_token: Some(lease_token),
            lease_expires_at_ms: now_ms + lease_ms,
            attempts: 1,
            failures: 0,
            result: None,
            error: None,
            checkpoints: StoredCheckpoints::new(),
            event_published: false,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
            expires_at: now_ms / 1000 + retention_secs,
        }
    }

    /// Decides what a new attempt carrying `payload_hash` may do with this record at `now_ms`.
    pub fn decide(&self, payload_hash: &str, now_ms: i64) -> BeginDecision {
        if self.payload_hash != payload_hash {
            BeginDecision::PayloadMismatch
        } else if self.status.is_terminal() {
            BeginDecision::AlreadyDone
        } else if self.lease_expires_at_ms > now_ms {
            BeginDecision::Busy { retry_after_ms: self.lease_expires_at_ms - now_ms }
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
        CommandRecord::start(
            IdempotencyKey::new("k"),
            CommandType::GetThing,
            Some("t".into()),
            "h1".into(),
            "tok".into(),
            now,
            30_000,
            86_400,
        )
    }

    #[test]
    fn a_live_lease_makes_others_wait() {
        let r = record(1_000);
        assert_eq!(r.decide("h1", 11_000), BeginDecision::Busy { retry_after_ms: 20_000 });
        assert_eq!(r.decide("h1", 31_000), BeginDecision::TakeOver);
        assert_eq!(r.expires_at, 1 + 86_400);
    }

    #[test]
    fn another_payload_is_refused_before_anything_else() {
        let mut r = record(0);
        assert_eq!(r.decide("h2", 0), BeginDecision::PayloadMismatch);
        r.status = CommandStatus::Succeeded;
        assert_eq!(r.decide("h2", 0), BeginDecision::PayloadMismatch);
    }

    #[test]
    fn terminal_records_are_done() {
        let mut r = record(0);
        r.status = CommandStatus::Failed;
        r.error = Some(CommandError::new(ErrorCode::ThingNotFound, "gone"));
        assert_eq!(r.decide("h1", 0), BeginDecision::AlreadyDone);
        assert!(matches!(r.outcome(), Some(Outcome::Failed(e)) if e.code == ErrorCode::ThingNotFound));
    }
}
