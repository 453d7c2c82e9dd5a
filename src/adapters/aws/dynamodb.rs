//! [`StateStore`] on one DynamoDB table (partition key `pk`, sort key `sk`, both strings),
//! laid out by [`ItemKey`]. Every write is conditional, so a lease can only be held by one
//! attempt and an outcome can only be recorded by the attempt holding it. Reading is strict:
//! an item missing a field, or holding one this version cannot decode, is
//! [`ErrorKind::Unreadable`], never a default value.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::error::classify;
use crate::domain::checkpoint::Checkpoint;
use crate::domain::record::{CommandRecord, CommandStatus, ItemKey, Outcome};
use crate::domain::{CommandError, CommandResult, IdempotencyKey};
use crate::ports::{CreateOutcome, ErrorKind, PortError, StateStore};

type Item = HashMap<String, AttributeValue>;

/// Command records in DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoStateStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoStateStore {
    /// Uses `table` through the DynamoDB client of `clients`.
    pub fn new(clients: &super::AwsClients, table: impl Into<String>) -> Self {
        Self { client: clients.dynamodb.clone(), table: table.into() }
    }

    fn key(key: &IdempotencyKey) -> Item {
        item_key(&ItemKey::command(key))
    }
}

fn item_key(key: &ItemKey) -> Item {
    HashMap::from([("pk".to_owned(), s(&key.pk)), ("sk".to_owned(), s(&key.sk))])
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn to_item(r: &CommandRecord) -> Result<Item, PortError> {
    let mut item = item_key(&ItemKey::command(&r.idempotency_key));
    item.extend([
        ("idempotencyKey".to_owned(), s(r.idempotency_key.as_str())),
        ("commandType".to_owned(), s(r.command_type.as_str())),
        ("payloadHash".to_owned(), s(&r.payload_hash)),
        ("status".to_owned(), s(r.status.as_str())),
        ("leaseExpiresAt".to_owned(), n(r.lease_expires_at_ms)),
        ("attempts".to_owned(), n(r.attempts)),
        ("eventPublished".to_owned(), AttributeValue::Bool(r.event_published)),
        ("createdAt".to_owned(), n(r.created_at_ms)),
        ("updatedAt".to_owned(), n(r.updated_at_ms)),
        ("expiresAt".to_owned(), n(r.expires_at)),
        ("checkpoints".to_owned(), AttributeValue::M(r.checkpoints.iter().map(|(k, v)| (k.clone(), s(v))).collect())),
    ]);
    if let Some(subject) = &r.subject {
        item.insert("subject".into(), s(subject));
    }
    if let Some(token) = &r.lease_token {
        item.insert("leaseToken".into(), s(token));
    }
    if let Some(result) = &r.result {
        item.insert("result".into(), s(json(result)?));
    }
    if let Some(error) = &r.error {
        item.insert("error".into(), s(json(error)?));
    }
    Ok(item)
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, PortError> {
    serde_json::to_string(value).map_err(|e| PortError::new(ErrorKind::Permanent, "dynamodb:encode", e.to_string()))
}

fn decoded<T: serde::de::DeserializeOwned>(raw: &Option<String>) -> Result<Option<T>, serde_json::Error> {
    raw.as_deref().map(serde_json::from_str).transpose()
}

/// Reads a record item; every field but the optional ones must be present and well formed.
fn from_item(item: &Item) -> Result<CommandRecord, PortError> {
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
        lease_token: optional_text("leaseToken")?,
        lease_expires_at_ms: number("leaseExpiresAt")?,
        attempts: u32::try_from(number("attempts")?).map_err(|_| bad("attempts"))?,
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
        created_at_ms: number("createdAt")?,
        updated_at_ms: number("updatedAt")?,
        expires_at: number("expiresAt")?,
    })
}

fn record_of(op: &'static str, attributes: Option<&Item>) -> Result<CommandRecord, PortError> {
    attributes
        .map(from_item)
        .unwrap_or_else(|| Err(PortError::new(ErrorKind::Transient, op, "response carried no attributes")))
}

/// Largest result kept inside the record item. A larger one (a thing with hundreds of
/// certificates) is stored in chunk items beside the record, in the same partition, so that
/// no item nears DynamoDB's 400 KB limit whatever a result's size.
const INLINE_RESULT_BYTES: usize = 64 * 1024;
/// Size of one result chunk item's data.
const RESULT_CHUNK_BYTES: usize = 256 * 1024;

/// Where a result stored in chunks is: the attempt that wrote it, and how many chunks.
fn result_chunks(item: &Item) -> Result<Option<(String, usize)>, PortError> {
    let unreadable = || PortError::new(ErrorKind::Unreadable, "dynamodb:decode", "result chunk reference is malformed");
    let Some(count) = item.get("resultChunks") else { return Ok(None) };
    let count = count.as_n().ok().and_then(|c| c.parse().ok()).ok_or_else(unreadable)?;
    let token = item.get("resultToken").and_then(|t| t.as_s().ok()).ok_or_else(unreadable)?;
    Ok(Some((token.clone(), count)))
}

/// Sort key prefix of the result chunks one attempt wrote: chunks of a stale attempt can never
/// be mistaken for the holder's.
fn chunk_prefix(token: &str) -> String {
    format!("result#{token}#")
}

/// `text` cut into pieces of at most `max` bytes, at character boundaries.
fn pieces(text: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut cut = rest.len().min(max);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (piece, tail) = rest.split_at(cut);
        out.push(piece);
        rest = tail;
    }
    out
}

impl DynamoStateStore {
    /// Decodes a record item, reading its result from the chunk items when it is not inline.
    async fn load(&self, item: &Item) -> Result<CommandRecord, PortError> {
        let mut record = from_item(item)?;
        if let Some((token, count)) = result_chunks(item)? {
            record.result = Some(self.read_result(&record.idempotency_key, &token, count).await?);
        }
        Ok(record)
    }

    async fn read_result(&self, key: &IdempotencyKey, token: &str, count: usize) -> Result<CommandResult, PortError> {
        const OP: &str = "dynamodb:Query(result)";
        let unreadable = |why: String| PortError::new(ErrorKind::Unreadable, OP, why);
        let items: Vec<Item> = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(ItemKey::command(key).pk))
            .expression_attribute_values(":prefix", s(chunk_prefix(token)))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| classify(OP, e))?;
        if items.len() != count {
            return Err(unreadable(format!("{} of {count} result chunks found", items.len())));
        }
        // Items come sorted by sort key, and chunk numbers are zero-padded.
        let mut text = String::new();
        for item in &items {
            let data =
                item.get("data").and_then(|d| d.as_s().ok()).ok_or_else(|| unreadable("chunk without data".into()))?;
            text.push_str(data);
        }
        serde_json::from_str(&text).map_err(|e| unreadable(format!("result does not decode: {e}")))
    }

    /// Writes a large result as chunk items carrying the record's expiry; returns their count.
    async fn write_result_chunks(&self, key: &IdempotencyKey, token: &str, text: &str) -> Result<usize, PortError> {
        const OP: &str = "dynamodb:PutItem(result chunk)";
        let record_key = ItemKey::command(key);
        let expires_at = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key)))
            .projection_expression("expiresAt")
            .send()
            .await
            .map_err(|e| classify("dynamodb:GetItem(expiry)", e))?
            .item()
            .and_then(|i| i.get("expiresAt").cloned())
            .ok_or_else(|| PortError::new(ErrorKind::ConditionFailed, OP, "the record is gone"))?;
        let pieces = pieces(text, RESULT_CHUNK_BYTES);
        for (i, piece) in pieces.iter().enumerate() {
            let item = HashMap::from([
                ("pk".to_owned(), s(&record_key.pk)),
                ("sk".to_owned(), s(format!("{}{i:05}", chunk_prefix(token)))),
                ("data".to_owned(), s(*piece)),
                ("expiresAt".to_owned(), expires_at.clone()),
            ]);
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .send()
                .await
                .map_err(|e| classify(OP, e))?;
        }
        Ok(pieces.len())
    }
}

#[async_trait]
impl StateStore for DynamoStateStore {
    async fn create(&self, record: &CommandRecord) -> Result<CreateOutcome, PortError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(record)?))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(CreateOutcome::Created),
            Err(err) => {
                if let Some(PutItemError::ConditionalCheckFailedException(failed)) = err.as_service_error() {
                    if let Some(item) = failed.item() {
                        return Ok(CreateOutcome::Exists(Box::new(self.load(item).await?)));
                    }
                    // Not every implementation returns the old item: read it.
                    return match self.get(&record.idempotency_key).await? {
                        Some(existing) => Ok(CreateOutcome::Exists(Box::new(existing))),
                        None => Err(PortError::new(ErrorKind::ConditionFailed, "dynamodb:PutItem", "record vanished")),
                    };
                }
                Err(classify("dynamodb:PutItem", err))
            }
        }
    }

    async fn take_over(
        &self,
        key: &IdempotencyKey,
        expected_token: Option<&str>,
        new_token: &str,
        lease_expires_at_ms: i64,
        now_ms: i64,
    ) -> Result<CommandRecord, PortError> {
        const OP: &str = "dynamodb:UpdateItem(take_over)";
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key)))
            .update_expression("SET #tok = :new, #lease = :lease, #att = #att + :one, #upd = :now")
            .expression_attribute_names("#tok", "leaseToken")
            .expression_attribute_names("#lease", "leaseExpiresAt")
            .expression_attribute_names("#att", "attempts")
            .expression_attribute_names("#upd", "updatedAt")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":new", s(new_token))
            .expression_attribute_values(":lease", n(lease_expires_at_ms))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":running", s(CommandStatus::InProgress.as_str()))
            .return_values(ReturnValue::AllNew);
        request = match expected_token {
            Some(token) => request
                .condition_expression("#st = :running AND #tok = :expected")
                .expression_attribute_values(":expected", s(token)),
            None => request.condition_expression("#st = :running AND attribute_not_exists(#tok)"),
        };
        let out = request.send().await.map_err(|e| classify(OP, e))?;
        record_of(OP, out.attributes())
    }

    async fn renew_lease(&self, key: &IdempotencyKey, token: &str, lease_expires_at_ms: i64) -> Result<(), PortError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key)))
            .update_expression("SET #lease = :lease")
            .condition_expression("#st = :running AND #tok = :token")
            .expression_attribute_names("#lease", "leaseExpiresAt")
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#tok", "leaseToken")
            .expression_attribute_values(":lease", n(lease_expires_at_ms))
            .expression_attribute_values(":running", s(CommandStatus::InProgress.as_str()))
            .expression_attribute_values(":token", s(token))
            .send()
            .await
            .map_err(|e| classify("dynamodb:UpdateItem(renew_lease)", e))?;
        Ok(())
    }

    async fn finish(
        &self,
        key: &IdempotencyKey,
        token: &str,
        outcome: &Outcome,
        now_ms: i64,
    ) -> Result<CommandRecord, PortError> {
        const OP: &str = "dynamodb:UpdateItem(finish)";
        let (status, field, value) = match outcome {
            Outcome::Succeeded(result) => (CommandStatus::Succeeded, "result", json(result)?),
            Outcome::Failed(error) => (CommandStatus::Failed, "error", json(error)?),
        };
        if let Outcome::Succeeded(result) = outcome
            && value.len() > INLINE_RESULT_BYTES
        {
            return self.finish_with_chunks(key, token, result, &value, now_ms).await;
        }
        let clear = if field == "result" { ", #other" } else { "" };
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key)))
            .update_expression(format!("SET #st = :done, #out = :value, #upd = :now REMOVE #tok{clear}"))
            .condition_expression("#st = :running AND #tok = :token")
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#out", field)
            .expression_attribute_names("#upd", "updatedAt")
            .expression_attribute_names("#tok", "leaseToken")
            .expression_attribute_values(":done", s(status.as_str()))
            .expression_attribute_values(":value", s(value))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":running", s(CommandStatus::InProgress.as_str()))
            .expression_attribute_values(":token", s(token))
            .return_values(ReturnValue::AllNew);
        if !clear.is_empty() {
            // A success clears the retryable error an earlier attempt left.
            request = request.expression_attribute_names("#other", "error");
        }
        let out = request.send().await.map_err(|e| classify(OP, e))?;
        record_of(OP, out.attributes())
    }

    async fn release(
        &self,
        key: &IdempotencyKey,
        token: &str,
        error: &CommandError,
        now_ms: i64,
    ) -> Result<(), PortError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key)))
            .update_expression("SET #lease = :now, #err = :error, #upd = :now")
            .condition_expression("#st = :running AND #tok = :token")
            .expression_attribute_names("#lease", "leaseExpiresAt")
            .expression_attribute_names("#err", "error")
            .expression_attribute_names("#upd", "updatedAt")
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#tok", "leaseToken")
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":error", s(json(error)?))
            .expression_attribute_values(":running", s(CommandStatus::InProgress.as_str()))
            .expression_attribute_values(":token", s(token))
            .send()
            .await
            .map_err(|e| classify("dynamodb:UpdateItem(release)", e))?;
        Ok(())
    }

    async fn checkpoint(&self, key: &IdempotencyKey, token: &str, checkpoint: &Checkpoint) -> Result<(), PortError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key)))
            .update_expression("SET #cp.#step = :value")
            .condition_expression("#st = :running AND #tok = :token")
            .expression_attribute_names("#cp", "checkpoints")
            .expression_attribute_names("#step", checkpoint.slot())
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#tok", "leaseToken")
            .expression_attribute_values(":value", s(checkpoint.encode()))
            .expression_attribute_values(":running", s(CommandStatus::InProgress.as_str()))
            .expression_attribute_values(":token", s(token))
            .send()
            .await
            .map_err(|e| classify("dynamodb:UpdateItem(checkpoint)", e))?;
        Ok(())
    }

    async fn mark_event_published(&self, key: &IdempotencyKey) -> Result<(), PortError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key)))
            .update_expression("SET #pub = :yes")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#pub", "eventPublished")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .send()
            .await
            .map_err(|e| classify("dynamodb:UpdateItem(mark_event_published)", e))?;
        Ok(())
    }

    async fn get(&self, key: &IdempotencyKey) -> Result<Option<CommandRecord>, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("dynamodb:GetItem", e))?;
        match out.item() {
            None => Ok(None),
            Some(item) => self.load(item).await.map(Some),
        }
    }
}

impl DynamoStateStore {
    /// Records a success whose result is too large for the record item: the chunks first,
    /// then the record (conditionally on the lease) pointing at them.
    async fn finish_with_chunks(
        &self,
        key: &IdempotencyKey,
        token: &str,
        result: &CommandResult,
        text: &str,
        now_ms: i64,
    ) -> Result<CommandRecord, PortError> {
        const OP: &str = "dynamodb:UpdateItem(finish)";
        let count = self.write_result_chunks(key, token, text).await?;
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key)))
            .update_expression("SET #st = :done, #chunks = :count, #rtok = :token, #upd = :now REMOVE #tok, #err")
            .condition_expression("#st = :running AND #tok = :token")
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#chunks", "resultChunks")
            .expression_attribute_names("#rtok", "resultToken")
            .expression_attribute_names("#upd", "updatedAt")
            .expression_attribute_names("#tok", "leaseToken")
            .expression_attribute_names("#err", "error")
            .expression_attribute_values(":done", s(CommandStatus::Succeeded.as_str()))
            .expression_attribute_values(":count", n(count))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":running", s(CommandStatus::InProgress.as_str()))
            .expression_attribute_values(":token", s(token))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| classify(OP, e))?;
        let mut record = record_of(OP, out.attributes())?;
        record.result = Some(result.clone());
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::registry::ThingDeleted;
    use crate::domain::{CommandType, ErrorCode};

    #[test]
    fn records_round_trip_through_items() {
        let mut record = CommandRecord::start(
            IdempotencyKey::new("k1"),
            CommandType::DeleteThing,
            Some("t1".into()),
            "abc".into(),
            "tok".into(),
            1_700_000_000_000,
            60_000,
            86_400,
        );
        assert_eq!(from_item(&to_item(&record).unwrap()).unwrap(), record);
        record.status = CommandStatus::Failed;
        record.lease_token = None;
        record.error = Some(CommandError::new(ErrorCode::ThingNotFound, "gone").at("/payload/thingName"));
        record.result =
            Some(CommandResult::DeleteThing(ThingDeleted { thing_name: "t1".into(), ..Default::default() }));
        record.event_published = true;
        let step = Checkpoint::Groups;
        record.checkpoints.insert(step.slot(), step.encode());
        assert_eq!(from_item(&to_item(&record).unwrap()).unwrap(), record);
    }

    #[test]
    fn a_missing_or_malformed_field_is_unreadable_not_a_default() {
        let record = CommandRecord::start(
            IdempotencyKey::new("k1"),
            CommandType::GetThing,
            None,
            "abc".into(),
            "tok".into(),
            1_700_000_000_000,
            60_000,
            86_400,
        );
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
