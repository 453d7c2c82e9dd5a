//! Completion events in the CloudEvents 1.0 JSON format (`schemas/event.v1.json`).
//!
//! The `id` is a UUIDv5 of the idempotency key and the event type: a re-published event has
//! the same id, so consumers can drop duplicates by `source` + `id` as the spec allows.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::bulk::BulkTaskView;
use super::command::CommandType;
use super::error::CommandError;
use super::ids::IdempotencyKey;
use super::record::Outcome;
use super::time::Timestamp;

/// Namespace of event ids (a UUIDv5 of this crate's name under the URL namespace).
const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f1b_5e3a_9c2d_5b7e_8a41_2f0c_d3e9_b871);

/// Type of the event published when a command fails permanently.
pub const COMMAND_FAILED: &str = "command.failed";
/// Type of the event published once when every row of a bulk task is counted.
pub const BULK_COMPLETED: &str = "bulk.completed";
/// Type of the event published when a message is refused and dead-lettered.
pub const COMMAND_REJECTED: &str = "command.rejected";

/// A CloudEvents 1.0 event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent {
    /// Always "1.0".
    pub specversion: String,
    /// Deterministic per idempotency key and type.
    pub id: String,
    /// This deployment (`CDF_EVENT_SOURCE`).
    pub source: String,
    /// Event type, e.g. `thing.deleted`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The thing name, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// When the event was made (RFC 3339).
    pub time: String,
    /// Always `application/json`.
    pub datacontenttype: String,
    /// The event payload.
    pub data: Value,
}

impl CloudEvent {
    fn new(
        source: &str,
        event_type: &str,
        key: &IdempotencyKey,
        subject: Option<String>,
        data: Value,
        now: Timestamp,
    ) -> Self {
        let id = Uuid::new_v5(&EVENT_ID_NAMESPACE, format!("{}\n{}", key.as_str(), event_type).as_bytes());
        Self {
            specversion: "1.0".into(),
            id: id.to_string(),
            source: source.to_owned(),
            event_type: event_type.to_owned(),
            subject,
            time: now.to_rfc3339(),
            datacontenttype: "application/json".into(),
            data,
        }
    }

    /// The event announcing a command's outcome; `None` when the outcome is not announced
    /// (a bulk task's internal chunks).
    pub fn for_outcome(
        source: &str,
        key: &IdempotencyKey,
        command_type: CommandType,
        subject: Option<&str>,
        outcome: &Outcome,
        now: Timestamp,
    ) -> Option<Self> {
        let (event_type, data) = match outcome {
            Outcome::Succeeded(result) => {
                // The result's own tag is the `commandType` field; its document is `result`.
                let mut data = serde_json::to_value(result).unwrap_or_else(|_| json!({}));
                data["idempotencyKey"] = Value::String(key.as_str().to_owned());
                (result.event_type()?, data)
            }
            Outcome::Failed(error) => (
                COMMAND_FAILED,
                json!({"idempotencyKey": key.as_str(), "commandType": command_type.as_str(), "error": error}),
            ),
        };
        Some(Self::new(source, event_type, key, subject.map(str::to_owned), data, now))
    }

    /// The event announcing that every row of a bulk task is counted, with the counts;
    /// `key` is the idempotency key the task was submitted with.
    pub fn bulk_completed(source: &str, key: &IdempotencyKey, task: &BulkTaskView, now: Timestamp) -> Self {
        let mut data = serde_json::to_value(task).unwrap_or_else(|_| json!({}));
        data["idempotencyKey"] = Value::String(key.as_str().to_owned());
        let key = IdempotencyKey::new(format!("task:{}", task.task_id));
        Self::new(source, BULK_COMPLETED, &key, Some(format!("task/{}", task.task_id)), data, now)
    }

    /// The event announcing that a message was refused and moved to the dead-letter queue.
    pub fn rejected(
        source: &str,
        key: &IdempotencyKey,
        sqs_message_id: &str,
        subject: Option<String>,
        error: &CommandError,
        now: Timestamp,
    ) -> Self {
        let data = json!({"idempotencyKey": key.as_str(), "sqsMessageId": sqs_message_id, "error": error});
        // A refused duplicate key must not collide with the original command's events.
        let id_key = IdempotencyKey::new(format!("{}\nrejected:{}", key.as_str(), sqs_message_id));
        let mut event = Self::new(source, COMMAND_REJECTED, &id_key, subject, data, now);
        event.data["idempotencyKey"] = Value::String(key.as_str().to_owned());
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::error::ErrorCode;
    use crate::domain::registry::ThingDeleted;
    use crate::domain::result::CommandResult;
    use crate::domain::schema::{EVENT_SCHEMA_V1, Schema};

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    fn deleted() -> Outcome {
        Outcome::Succeeded(CommandResult::DeleteThing(ThingDeleted { thing_name: "t".into(), ..Default::default() }))
    }

    #[test]
    fn ids_are_stable_per_key_and_type() {
        let key = IdempotencyKey::new("k1");
        let ok = deleted();
        let a = CloudEvent::for_outcome("src", &key, CommandType::DeleteThing, Some("t"), &ok, at(1_000)).unwrap();
        let b = CloudEvent::for_outcome("src", &key, CommandType::DeleteThing, Some("t"), &ok, at(9_000)).unwrap();
        assert_eq!(a.id, b.id);
        assert_eq!(a.event_type, "thing.deleted");
        let failed = Outcome::Failed(CommandError::new(ErrorCode::ThingNotFound, "x"));
        let c = CloudEvent::for_outcome("src", &key, CommandType::DeleteThing, Some("t"), &failed, at(1_000)).unwrap();
        assert_ne!(a.id, c.id);
        assert_eq!(c.event_type, COMMAND_FAILED);
    }

    #[test]
    fn events_match_the_published_schema() {
        let schema = Schema::compile(EVENT_SCHEMA_V1).unwrap();
        let key = IdempotencyKey::new("k1");
        let err = CommandError::new(ErrorCode::ValidationFailed, "bad")
            .at(crate::domain::Location::payload().child("thingName"));
        let events = [
            CloudEvent::for_outcome("src", &key, CommandType::DeleteThing, Some("t"), &deleted(), at(0)).unwrap(),
            CloudEvent::for_outcome("src", &key, CommandType::GetThing, None, &Outcome::Failed(err.clone()), at(0))
                .unwrap(),
            CloudEvent::rejected("src", &key, "m-1", None, &err, at(1_764_000_000_000)),
        ];
        assert_eq!(events[0].data["commandType"], "deleteThing");
        assert_eq!(events[0].data["result"]["thingName"], "t");
        assert_eq!(events[0].data["idempotencyKey"], "k1");
        for event in events {
            let value = serde_json::to_value(&event).unwrap();
            assert_eq!(schema.violations(&value), Vec::<(String, String)>::new(), "{value}");
        }
    }
}
