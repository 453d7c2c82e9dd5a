//! Results too large for the record item, stored as chunk items in the command's partition
//! (`sk` = `result#<attempt token>#<n>`), so no item nears DynamoDB's 400 KB limit.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::ReturnValue;

use super::DynamoStateStore;
use super::item::{Item, from_item, n, record_of, s};
use crate::adapters::aws::error::failed;
use crate::domain::record::{CommandRecord, CommandStatus, ItemKey};
use crate::domain::{CommandResult, IdempotencyKey, LeaseToken, Timestamp};
use crate::ports::{ErrorKind, PortError};

/// Largest result kept inside the record item. A larger one (a thing with hundreds of
/// certificates) is stored in chunk items beside the record, in the same partition, so that
/// no item nears DynamoDB's 400 KB limit whatever a result's size.
pub(super) const INLINE_RESULT_BYTES: usize = 64 * 1024;
/// Size of one result chunk item's data.
pub(super) const RESULT_CHUNK_BYTES: usize = 256 * 1024;

/// Where a result stored in chunks is: the attempt that wrote it, and how many chunks.
fn result_chunks(item: &Item) -> Result<Option<(LeaseToken, usize)>, PortError> {
    let unreadable = || PortError::new(ErrorKind::Unreadable, "dynamodb:decode", "result chunk reference is malformed");
    let Some(count) = item.get("resultChunks") else { return Ok(None) };
    let count = count.as_n().ok().and_then(|c| c.parse().ok()).ok_or_else(unreadable)?;
    let token = item.get("resultToken").and_then(|t| t.as_s().ok()).ok_or_else(unreadable)?;
    Ok(Some((LeaseToken::new(token), count)))
}

/// Sort key prefix of the result chunks one attempt wrote: chunks of a stale attempt can never
/// be mistaken for the holder's.
fn chunk_prefix(token: &LeaseToken) -> String {
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
    pub(super) async fn load(&self, item: &Item) -> Result<CommandRecord, PortError> {
        let mut record = from_item(item)?;
        if let Some((token, count)) = result_chunks(item)? {
            record.result = Some(self.read_result(&record.idempotency_key, &token, count).await?);
        }
        Ok(record)
    }

    async fn read_result(
        &self,
        key: &IdempotencyKey,
        token: &LeaseToken,
        count: usize,
    ) -> Result<CommandResult, PortError> {
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
            .map_err(failed(OP))?;
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
    async fn write_result_chunks(
        &self,
        key: &IdempotencyKey,
        token: &LeaseToken,
        text: &str,
    ) -> Result<usize, PortError> {
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
            .map_err(failed("dynamodb:GetItem(expiry)"))?
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
            self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await.map_err(failed(OP))?;
        }
        Ok(pieces.len())
    }
}

impl DynamoStateStore {
    /// Records a success whose result is too large for the record item: the chunks first,
    /// then the record (conditionally on the lease) pointing at them.
    pub(super) async fn finish_with_chunks(
        &self,
        key: &IdempotencyKey,
        token: &LeaseToken,
        result: &CommandResult,
        text: &str,
        now: Timestamp,
    ) -> Result<CommandRecord, PortError> {
        const OP: &str = "dynamodb:UpdateItem(finish)";
        let count = self.write_result_chunks(key, token, text).await?;
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key)))
            .update_expression("SET #st = :done, #chunks = :count, #rtok = :token, #upd = :now REMOVE #err")
            .condition_expression("#st = :running AND #tok = :token")
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#chunks", "resultChunks")
            .expression_attribute_names("#rtok", "resultToken")
            .expression_attribute_names("#upd", "updatedAt")
            .expression_attribute_names("#tok", "leaseToken")
            .expression_attribute_names("#err", "error")
            .expression_attribute_values(":done", s(CommandStatus::Succeeded.as_str()))
            .expression_attribute_values(":count", n(count))
            .expression_attribute_values(":now", n(now.as_millis()))
            .expression_attribute_values(":running", s(CommandStatus::InProgress.as_str()))
            .expression_attribute_values(":token", s(token.as_str()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(failed(OP))?;
        let mut record = record_of(OP, out.attributes())?;
        record.result = Some(result.clone());
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cut_at_character_boundaries_and_rejoin() {
        let text = "aé€😀".repeat(1_000);
        for max in [4, 5, 7, 1_000] {
            let parts = pieces(&text, max);
            assert!(parts.iter().all(|p| p.len() <= max && !p.is_empty()), "{max}");
            assert_eq!(parts.concat(), text);
        }
        assert!(pieces("", 10).is_empty());
    }
}
