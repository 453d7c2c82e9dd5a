//! [`StateStore`] on one DynamoDB table (partition key `pk`, sort key `sk`, both strings),
//! laid out by [`ItemKey`]. Every write is conditional, so a lease can only be held by one
//! attempt and an outcome can only be recorded by the attempt holding it. Reading is strict:
//! an item missing a field, or holding one this version cannot decode, is
//! [`ErrorKind::Unreadable`], never a default value.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::error::{classify, counted, failed};
use crate::domain::checkpoint::Checkpoint;
use crate::domain::record::{CommandRecord, CommandStatus, ItemKey, Outcome};
use crate::domain::{CommandError, CommandResult, IdempotencyKey, LeaseToken, Timestamp};
use crate::ports::state::TakeOver;
use crate::ports::{CreateOutcome, ErrorKind, PortError, StateStore};

mod bulk;
mod chunks;
mod item;

use self::chunks::INLINE_RESULT_BYTES;
use self::item::{Item, item_key, json, n, record_of, s, to_item};

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

/// The conditional update that records an outcome on a command record, held by `token`.
struct FinishUpdate {
    expression: String,
    names: HashMap<String, String>,
    values: Item,
}

/// How an outcome is recorded.
enum Finishing<'a> {
    /// In the record item, by one update.
    Inline(FinishUpdate),
    /// A success whose result needs chunk items beside the record.
    TooLarge { result: &'a CommandResult, text: String },
}

impl FinishUpdate {
    /// Only the attempt holding the lease records the outcome, once.
    const CONDITION: &'static str = "#st = :running AND #tok = :token";

    fn of<'a>(token: &LeaseToken, outcome: &'a Outcome, now: Timestamp) -> Result<Finishing<'a>, PortError> {
        let (status, field, value) = match outcome {
            Outcome::Succeeded(result) => (CommandStatus::Succeeded, "result", json(result)?),
            Outcome::Failed(error) => (CommandStatus::Failed, "error", json(error)?),
        };
        if let Outcome::Succeeded(result) = outcome
            && value.len() > INLINE_RESULT_BYTES
        {
            return Ok(Finishing::TooLarge { result, text: value });
        }
        let mut names = HashMap::from([
            ("#st".to_owned(), "status".to_owned()),
            ("#out".to_owned(), field.to_owned()),
            ("#upd".to_owned(), "updatedAt".to_owned()),
            ("#tok".to_owned(), "leaseToken".to_owned()),
        ]);
        let mut expression = "SET #st = :done, #out = :value, #upd = :now".to_owned();
        if field == "result" {
            // A success clears the retryable error an earlier attempt left.
            expression.push_str(" REMOVE #other");
            names.insert("#other".to_owned(), "error".to_owned());
        }
        let values = HashMap::from([
            (":done".to_owned(), s(status.as_str())),
            (":value".to_owned(), s(value)),
            (":now".to_owned(), n(now.as_millis())),
            (":running".to_owned(), s(CommandStatus::InProgress.as_str())),
            (":token".to_owned(), s(token.as_str())),
        ]);
        Ok(Finishing::Inline(Self { expression, names, values }))
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
                Err(counted(classify("dynamodb:PutItem", err)))
            }
        }
    }

    async fn take_over(&self, key: &IdempotencyKey, take_over: TakeOver<'_>) -> Result<CommandRecord, PortError> {
        let TakeOver { expected, seen_version, token, lease_until, now, expires_at } = take_over;
        const OP: &str = "dynamodb:UpdateItem(take_over)";
        // The lease must be the one read (token and version: no renewal landed since) and
        // expired by the taker's clock when the write lands.
        let holder = if expected.is_some() { "#tok = :expected" } else { "attribute_not_exists(#tok)" };
        let version = if seen_version == 0 { "(attribute_not_exists(#ver) OR #ver = :seen)" } else { "#ver = :seen" };
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key)))
            .update_expression(
                "SET #tok = :new, #lease = :lease, #att = #att + :one, #upd = :now, #ver = :next, #exp = :exp",
            )
            .condition_expression(format!("#st = :running AND {holder} AND {version} AND #lease <= :now"))
            .expression_attribute_names("#tok", "leaseToken")
            .expression_attribute_names("#lease", "leaseExpiresAt")
            .expression_attribute_names("#ver", "leaseVersion")
            .expression_attribute_names("#att", "attempts")
            .expression_attribute_names("#upd", "updatedAt")
            .expression_attribute_names("#exp", "expiresAt")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":new", s(token.as_str()))
            .expression_attribute_values(":exp", n(expires_at))
            .expression_attribute_values(":lease", n(lease_until.as_millis()))
            .expression_attribute_values(":seen", n(seen_version))
            .expression_attribute_values(":next", n(seen_version + 1))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", n(now.as_millis()))
            .expression_attribute_values(":running", s(CommandStatus::InProgress.as_str()))
            .return_values(ReturnValue::AllNew);
        if let Some(expected) = expected {
            request = request.expression_attribute_values(":expected", s(expected.as_str()));
        }
        let out = request.send().await.map_err(failed(OP))?;
        record_of(OP, out.attributes())
    }

    async fn renew_lease(
        &self,
        key: &IdempotencyKey,
        token: &LeaseToken,
        lease_until: Timestamp,
    ) -> Result<(), PortError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key)))
            .update_expression("SET #lease = :lease ADD #ver :one")
            .condition_expression("#st = :running AND #tok = :token")
            .expression_attribute_names("#lease", "leaseExpiresAt")
            .expression_attribute_names("#ver", "leaseVersion")
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#tok", "leaseToken")
            .expression_attribute_values(":lease", n(lease_until.as_millis()))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":running", s(CommandStatus::InProgress.as_str()))
            .expression_attribute_values(":token", s(token.as_str()))
            .send()
            .await
            .map_err(failed("dynamodb:UpdateItem(renew_lease)"))?;
        Ok(())
    }

    async fn finish(
        &self,
        key: &IdempotencyKey,
        token: &LeaseToken,
        outcome: &Outcome,
        now: Timestamp,
    ) -> Result<CommandRecord, PortError> {
        const OP: &str = "dynamodb:UpdateItem(finish)";
        let finish = match FinishUpdate::of(token, outcome, now)? {
            Finishing::Inline(finish) => finish,
            Finishing::TooLarge { result, text } => {
                return self.finish_with_chunks(key, token, result, &text, now).await;
            }
        };
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key)))
            .update_expression(finish.expression)
            .condition_expression(FinishUpdate::CONDITION)
            .set_expression_attribute_names(Some(finish.names))
            .set_expression_attribute_values(Some(finish.values))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(failed(OP))?;
        record_of(OP, out.attributes())
    }

    async fn release(
        &self,
        key: &IdempotencyKey,
        token: &LeaseToken,
        error: &CommandError,
        now: Timestamp,
    ) -> Result<(), PortError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key)))
            .update_expression("SET #lease = :now, #err = :error, #upd = :now ADD #fail :one, #ver :one")
            .expression_attribute_names("#ver", "leaseVersion")
            .condition_expression("#st = :running AND #tok = :token")
            .expression_attribute_names("#fail", "failures")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_names("#lease", "leaseExpiresAt")
            .expression_attribute_names("#err", "error")
            .expression_attribute_names("#upd", "updatedAt")
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#tok", "leaseToken")
            .expression_attribute_values(":now", n(now.as_millis()))
            .expression_attribute_values(":error", s(json(error)?))
            .expression_attribute_values(":running", s(CommandStatus::InProgress.as_str()))
            .expression_attribute_values(":token", s(token.as_str()))
            .send()
            .await
            .map_err(failed("dynamodb:UpdateItem(release)"))?;
        Ok(())
    }

    async fn checkpoint(
        &self,
        key: &IdempotencyKey,
        token: &LeaseToken,
        checkpoints: &[Checkpoint],
    ) -> Result<(), PortError> {
        if checkpoints.is_empty() {
            return Ok(());
        }
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key)))
            .condition_expression("#st = :running AND #tok = :token")
            .expression_attribute_names("#cp", "checkpoints")
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#tok", "leaseToken")
            .expression_attribute_values(":running", s(CommandStatus::InProgress.as_str()))
            .expression_attribute_values(":token", s(token.as_str()));
        let mut sets = Vec::with_capacity(checkpoints.len());
        for (i, checkpoint) in checkpoints.iter().enumerate() {
            sets.push(format!("#cp.#s{i} = :v{i}"));
            update = update
                .expression_attribute_names(format!("#s{i}"), checkpoint.slot())
                .expression_attribute_values(format!(":v{i}"), s(checkpoint.encode()));
        }
        update
            .update_expression(format!("SET {}", sets.join(", ")))
            .send()
            .await
            .map_err(failed("dynamodb:UpdateItem(checkpoint)"))?;
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
            .map_err(failed("dynamodb:UpdateItem(mark_event_published)"))?;
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
            .map_err(failed("dynamodb:GetItem"))?;
        match out.item() {
            None => Ok(None),
            Some(item) => self.load(item).await.map(Some),
        }
    }

    async fn stale_in_progress(
        &self,
        lease_expired_before: Timestamp,
        limit: usize,
    ) -> Result<Vec<CommandRecord>, PortError> {
        const OP: &str = "dynamodb:Scan(stale_in_progress)";
        let mut stale = Vec::new();
        let mut start: Option<Item> = None;
        // A scan's page limit applies before its filter: page on until enough match or the
        // table ends.
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("#sk = :cmd AND #st = :running AND #lease < :before")
                .expression_attribute_names("#sk", "sk")
                .expression_attribute_names("#st", "status")
                .expression_attribute_names("#lease", "leaseExpiresAt")
                .expression_attribute_values(":cmd", s(ItemKey::COMMAND_SORT_KEY))
                .expression_attribute_values(":running", s(CommandStatus::InProgress.as_str()))
                .expression_attribute_values(":before", n(lease_expired_before.as_millis()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(failed(OP))?;
            for item in out.items() {
                if stale.len() >= limit {
                    return Ok(stale);
                }
                stale.push(self.load(item).await?);
            }
            match out.last_evaluated_key() {
                Some(last) if stale.len() < limit => start = Some(last.clone()),
                _ => return Ok(stale),
            }
        }
    }
}
