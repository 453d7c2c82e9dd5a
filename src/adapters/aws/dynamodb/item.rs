//! Command records as DynamoDB items, and back. Reading is strict: a missing or malformed
//! field is [`ErrorKind::Unreadable`], never a default (a missing lease expiry read as 0 would
//! be an expired lease).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::domain::record::{CommandRecord, CommandStatus, ItemKey};
use crate::domain::{CommandError, CommandResult, IdempotencyKey, LeaseToken, Timestamp};
use crate::ports::{ErrorKind, PortError};

/// A DynamoDB item.
pub(super) type Item = HashMap<String, AttributeValue>;

pub(super) fn item_key(key: &ItemKey) -> Item {
    HashMap::from([("pk".to_owned(), s(&key.pk)), ("sk".to_owned(), s(&key.sk))])
}

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(super) fn n(v: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(super) fn to_item(r: &CommandRecord) -> Result<Item, PortError> {
    let mut item = item_key(&ItemKey::command(&r.idempotency_key));
    item.extend([
        ("idempotencyKey".to_owned(), s(r.idempotency_key.as_str())),
        ("commandType".to_owned(), s(r.command_type.as_str())),
        ("payloadHash".to_owned(), s(&r.payload_hash)),
        ("status".to_owned(), s(r.status.as_str())),
        ("leaseExpiresAt".to_owned(), n(r.lease_expires_at_ms.as_millis())),
        ("leaseVersion".to_owned(), n(r.lease_version)),
        ("attempts".to_owned(), n(r.attempts)),
        ("failures".to_owned(), n(r.failures)),
        ("eventPublished".to_owned(), AttributeValue::Bool(r.event_published)),
        ("createdAt".to_owned(), n(r.created_at_ms.as_millis())),
        ("updatedAt".to_owned(), n(r.updated_at_ms.as_millis())),
        ("expiresAt".to_owned(), n(r.expires_at)),
        ("checkpoints".to_owned(), AttributeValue::M(r.checkpoints.iter().map(|(k, v)| (k.clone(), s(v))).collect())),
    ]);
    if let Some(subject) = &r.subject {
        item.insert("subject".into(), s(subject));
    }
    if let Some(token) = &r.lease_token {
        item.insert("leaseToken".into(), s(token.as_str()));
    }
    if let Some(result) = &r.result {
        item.insert("result".into(), s(json(result)?));
    }
    if let Some(error) = &r.error {
        item.insert("error".into(), s(json(error)?));
    }
    Ok(item)
}

pub(super) fn json<T: serde::Serialize>(value: &T) -> Result<String, PortError> {
    serde_json::to_string(value).map_err(|e| PortError::new(ErrorKind::Permanent, "dynamodb:encode", e.to_string()))
}

pub(super) fn decoded<T: serde::de::DeserializeOwned>(raw: &Option<String>) -> Result<Option<T>, serde_json::Error> {
    raw.as_deref().map(serde_json::from_str).transpose()
}

/// Reads a record item; every field but the optional ones must be present and well formed.
pub(super) fn from_item(item: &Item) -> Result<CommandRecord, PortError> {
    let bad = |field: &str| {
        PortError::new(
            ErrorKind::Unreadable,
            "dynamodb:decode",
            format!("record field {field} is missing or malformed"),
        )
    };
    let optional_text = |field: &str| -> Result<Option<String>, PortError> {
        item.get(field).map(|v| v.as_s().cloned().map_err(|_| bad(field))).transpose()
    };
    let text = |field: &str| optional_text(field)?.ok_or_else(|| bad(field));
    let number = |field: &str| -> Result<i64, PortError> {
        item.get(field).and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<i64>().ok()).ok_or_else(|| bad(field))
    };
    let instant = |field: &str| number(field).map(Timestamp::from_millis);
    let command_type =
        serde_json::from_value(serde_json::Value::String(text("commandType")?)).map_err(|_| bad("commandType"))?;
    let status = CommandStatus::parse(&text("status")?).ok_or_else(|| bad("status"))?;
    let result: Option<CommandResult> = decoded(&optional_text("result")?).map_err(|_| bad("result"))?;
    let error: Option<CommandError> = decoded(&optional_text("error")?).map_err(|_| bad("error"))?;
    Ok(CommandRecord {
        idempotency_key: IdempotencyKey::new(text("idempotencyKey")?),
        command_type,
        subject: optional_text("subject")?,
        payload_hash: text("payloadHash")?,
        status,
        lease_token: optional_text("leaseToken")?.map(LeaseToken::new),
        lease_expires_at_ms: instant("leaseExpiresAt")?,
        // Absent from records written before leases had versions: version 0, which the
        // take-over's condition treats as "no version yet".
        lease_version: match item.get("leaseVersion") {
            None => 0,
            Some(_) => u64::try_from(number("leaseVersion")?).map_err(|_| bad("leaseVersion"))?,
        },
        attempts: u32::try_from(number("attempts")?).map_err(|_| bad("attempts"))?,
        // Absent from records written before the count existed: none counted then.
        failures: match item.get("failures") {
            None => 0,
            Some(_) => u32::try_from(number("failures")?).map_err(|_| bad("failures"))?,
        },
        result,
        error,
        checkpoints: match item.get("checkpoints") {
            None => Default::default(),
            Some(value) => value
                .as_m()
                .map_err(|_| bad("checkpoints"))?
                .iter()
                .map(|(k, v)| Ok((k.clone(), v.as_s().map_err(|_| bad("checkpoints"))?.clone())))
                .collect::<Result<_, PortError>>()?,
        },
        event_published: item
            .get("eventPublished")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .ok_or_else(|| bad("eventPublished"))?,
        created_at_ms: instant("createdAt")?,
        updated_at_ms: instant("updatedAt")?,
        expires_at: number("expiresAt")?,
    })
}

pub(super) fn record_of(op: &'static str, attributes: Option<&Item>) -> Result<CommandRecord, PortError> {
    attributes
        .map(from_item)
        .unwrap_or_else(|| Err(PortError::new(ErrorKind::Transient, op, "response carried no attributes")))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::checkpoint::Checkpoint;
    use crate::domain::record::NewRecord;
    use crate::domain::registry::ThingDeleted;
    use crate::domain::{CommandType, ErrorCode};

    #[test]
    fn records_round_trip_through_items() {
        let mut record = CommandRecord::start(NewRecord {
            key: IdempotencyKey::new("k1"),
            command_type: CommandType::DeleteThing,
            subject: Some("t1".into()),
            payload_hash: "abc".into(),
            lease_token: LeaseToken::new("tok"),
            now: Timestamp::from_millis(1_700_000_000_000),
            lease: Duration::from_millis(60_000),
            retention: Duration::from_secs(86_400),
        });
        assert_eq!(from_item(&to_item(&record).unwrap()).unwrap(), record);
        record.status = CommandStatus::Failed;
        record.lease_token = None;
        record.error = Some(
            CommandError::new(ErrorCode::ThingNotFound, "gone")
                .at(crate::domain::Location::payload().child("thingName")),
        );
        record.result =
            Some(CommandResult::DeleteThing(ThingDeleted { thing_name: "t1".into(), ..Default::default() }));
        record.event_published = true;
        let step = Checkpoint::Groups;
        record.checkpoints.insert(step.slot(), step.encode());
        assert_eq!(from_item(&to_item(&record).unwrap()).unwrap(), record);
    }

    #[test]
    fn a_missing_or_malformed_field_is_unreadable_not_a_default() {
        let record = CommandRecord::start(NewRecord {
            key: IdempotencyKey::new("k1"),
            command_type: CommandType::GetThing,
            subject: None,
            payload_hash: "abc".into(),
            lease_token: LeaseToken::new("tok"),
            now: Timestamp::from_millis(1_700_000_000_000),
            lease: Duration::from_millis(60_000),
            retention: Duration::from_secs(86_400),
        });
        for field in ["leaseExpiresAt", "attempts", "status", "eventPublished", "createdAt"] {
            let mut item = to_item(&record).unwrap();
            item.remove(field);
            let err = from_item(&item).unwrap_err();
            assert_eq!(err.kind, ErrorKind::Unreadable, "{field}");
            assert!(err.message.contains(field), "{field}: {err}");
        }
        let mut item = to_item(&record).unwrap();
        item.insert("result".into(), s(r#"{"commandType":"rebootThing","result":{}}"#));
        assert_eq!(from_item(&item).unwrap_err().kind, ErrorKind::Unreadable);
    }
}
