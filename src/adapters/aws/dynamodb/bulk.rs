//! [`BulkStore`] in the command table: a task is the item `task#<id>` / `task`, each row
//! result the item `task#<id>` / `row#<n>` beside it, so one `Query` pages through a task's
//! rows. A row result and its counter change in one `TransactWriteItems`, conditional on the
//! row item not existing yet: a row counts once, however often it runs. A row that runs here
//! also records its command record's outcome in that transaction (one write instead of two).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValue, TransactWriteItem, Update};

use super::item::{Item, item_key, n, s};
use super::{DynamoStateStore, FinishUpdate, Finishing};
use crate::adapters::aws::error::{classify, counted, failed};
use crate::domain::bulk::{BulkTask, RowOutcome, RowResult, TaskId, TaskStatus};
use crate::domain::record::ItemKey;
use crate::domain::{IdempotencyKey, Timestamp};
use crate::ports::bulk::{Acceptance, FinishedRow};
use crate::ports::{BulkStore, ErrorKind, PortError, RowPage};

fn task_pk(task: &TaskId) -> String {
    ItemKey::task_partition(task)
}

fn row_sk(row: u32) -> String {
    ItemKey::row_sort_key(row)
}

fn task_key(task: &TaskId) -> Item {
    item_key(&ItemKey::task(task))
}

fn task_item(t: &BulkTask) -> Result<Item, PortError> {
    let mut item = task_key(&t.task_id);
    item.extend([
        ("taskId".to_owned(), s(t.task_id.as_str())),
        ("idempotencyKey".to_owned(), s(t.idempotency_key.as_str())),
        ("provisioningTemplateId".to_owned(), s(&t.provisioning_template_id)),
        ("template".to_owned(), s(&t.template)),
        ("cdfProvisioningParameters".to_owned(), s(t.cdf_provisioning_parameters.to_string())),
        ("rowEvents".to_owned(), AttributeValue::Bool(t.row_events)),
        ("status".to_owned(), s(t.status.as_str())),
        ("totalRows".to_owned(), n(t.total_rows)),
        ("invalidRows".to_owned(), n(t.invalid_rows)),
        ("successCount".to_owned(), n(t.success_count)),
        ("failureCount".to_owned(), n(t.failure_count)),
        ("skippedCount".to_owned(), n(t.skipped_count)),
        ("chunks".to_owned(), n(t.chunks)),
        ("createdAt".to_owned(), n(t.created_at_ms.as_millis())),
        ("updatedAt".to_owned(), n(t.updated_at_ms.as_millis())),
        ("accepted".to_owned(), AttributeValue::Bool(t.accepted)),
        ("eventPublished".to_owned(), AttributeValue::Bool(t.event_published)),
        ("expiresAt".to_owned(), n(t.expires_at)),
    ]);
    Ok(item)
}

fn unreadable(field: &str) -> PortError {
    PortError::new(ErrorKind::Unreadable, "dynamodb:decode", format!("task field {field} is missing or malformed"))
}

fn task_from_item(item: &Item) -> Result<BulkTask, PortError> {
    let text = |f: &str| item.get(f).and_then(|v| v.as_s().ok()).cloned().ok_or_else(|| unreadable(f));
    let int = |f: &str| -> Result<i64, PortError> {
        item.get(f).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).ok_or_else(|| unreadable(f))
    };
    let count = |f: &str| -> Result<u32, PortError> { u32::try_from(int(f)?).map_err(|_| unreadable(f)) };
    Ok(BulkTask {
        task_id: TaskId::parse(&text("taskId")?).ok_or_else(|| unreadable("taskId"))?,
        idempotency_key: IdempotencyKey::new(text("idempotencyKey")?),
        provisioning_template_id: text("provisioningTemplateId")?,
        template: text("template")?,
        cdf_provisioning_parameters: serde_json::from_str(&text("cdfProvisioningParameters")?)
            .map_err(|_| unreadable("cdfProvisioningParameters"))?,
        row_events: item
            .get("rowEvents")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .ok_or_else(|| unreadable("rowEvents"))?,
        status: TaskStatus::parse(&text("status")?).ok_or_else(|| unreadable("status"))?,
        total_rows: count("totalRows")?,
        invalid_rows: count("invalidRows")?,
        success_count: count("successCount")?,
        failure_count: count("failureCount")?,
        skipped_count: count("skippedCount")?,
        chunks: count("chunks")?,
        created_at_ms: Timestamp::from_millis(int("createdAt")?),
        updated_at_ms: Timestamp::from_millis(int("updatedAt")?),
        accepted: item.get("accepted").and_then(|v| v.as_bool().ok()).copied().ok_or_else(|| unreadable("accepted"))?,
        event_published: item
            .get("eventPublished")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .ok_or_else(|| unreadable("eventPublished"))?,
        expires_at: int("expiresAt")?,
    })
}

fn row_from_item(item: &Item) -> Result<RowResult, PortError> {
    let text = item.get("result").and_then(|v| v.as_s().ok()).ok_or_else(|| unreadable("result"))?;
    serde_json::from_str(text).map_err(|_| unreadable("result"))
}

fn counter(outcome: RowOutcome) -> &'static str {
    match outcome {
        RowOutcome::Succeeded => "successCount",
        RowOutcome::Failed => "failureCount",
        RowOutcome::Skipped => "skippedCount",
    }
}

fn build<T, E: std::fmt::Display>(op: &'static str, built: Result<T, E>) -> Result<T, PortError> {
    built.map_err(|e| PortError::new(ErrorKind::Permanent, op, e.to_string()))
}

#[async_trait]
impl BulkStore for DynamoStateStore {
    async fn create_task(&self, task: &BulkTask) -> Result<BulkTask, PortError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(task_item(task)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(task.clone()),
            Err(e) => {
                let e = counted(classify("dynamodb:PutItem(task)", e));
                if e.kind != ErrorKind::ConditionFailed {
                    return Err(e);
                }
                self.get_task(&task.task_id).await?.ok_or_else(|| {
                    PortError::new(ErrorKind::ConditionFailed, "dynamodb:PutItem(task)", "task vanished")
                })
            }
        }
    }

    async fn get_task(&self, task: &TaskId) -> Result<Option<BulkTask>, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(task_key(task)))
            .consistent_read(true)
            .send()
            .await
            .map_err(failed("dynamodb:GetItem(task)"))?;
        out.item().map(task_from_item).transpose()
    }

    async fn record_row(&self, bulk_task: &BulkTask, row: &RowResult, now: Timestamp) -> Result<bool, PortError> {
        const OP: &str = "dynamodb:TransactWriteItems(row)";
        let written = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(self.row_put(OP, bulk_task, row)?).build())
            .transact_items(TransactWriteItem::builder().update(self.count_update(OP, bulk_task, row, now)?).build())
            .send()
            .await;
        match written {
            Ok(_) => Ok(true),
            Err(e) => {
                let e = counted(classify(OP, e));
                // The row item exists: this row was counted by an earlier attempt.
                if e.kind == ErrorKind::ConditionFailed && self.row_exists(&bulk_task.task_id, row.row).await? {
                    Ok(false)
                } else {
                    Err(e)
                }
            }
        }
    }

    async fn finish_row(&self, bulk_task: &BulkTask, row: FinishedRow<'_>, now: Timestamp) -> Result<(), PortError> {
        let FinishedRow { key, token, outcome, result: row } = row;
        const OP: &str = "dynamodb:TransactWriteItems(finish row)";
        let finish = match FinishUpdate::of(token, outcome, now)? {
            Finishing::Inline(finish) => finish,
            // Too large for one item: the caller records the outcome and the row apart.
            Finishing::TooLarge { .. } => {
                return Err(PortError::new(ErrorKind::ConditionFailed, OP, "the outcome needs chunk items"));
            }
        };
        let record = build(
            OP,
            Update::builder()
                .table_name(&self.table)
                .set_key(Some(Self::key(key)))
                .update_expression(finish.expression)
                .condition_expression(FinishUpdate::CONDITION)
                .set_expression_attribute_names(Some(finish.names))
                .set_expression_attribute_values(Some(finish.values))
                .build(),
        )?;
        self.client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(record).build())
            .transact_items(TransactWriteItem::builder().put(self.row_put(OP, bulk_task, row)?).build())
            .transact_items(TransactWriteItem::builder().update(self.count_update(OP, bulk_task, row, now)?).build())
            .send()
            .await
            .map_err(failed(OP))?;
        Ok(())
    }

    async fn transition(
        &self,
        task: &TaskId,
        from: TaskStatus,
        to: TaskStatus,
        now: Timestamp,
    ) -> Result<Option<BulkTask>, PortError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(task_key(task)))
            .update_expression("SET #st = :to, #upd = :now")
            .condition_expression("#st = :from")
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#upd", "updatedAt")
            .expression_attribute_values(":to", s(to.as_str()))
            .expression_attribute_values(":from", s(from.as_str()))
            .expression_attribute_values(":now", n(now.as_millis()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match out {
            Ok(out) => out.attributes().map(task_from_item).transpose(),
            Err(e) => {
                let e = counted(classify("dynamodb:UpdateItem(task status)", e));
                if e.kind == ErrorKind::ConditionFailed { Ok(None) } else { Err(e) }
            }
        }
    }

    async fn finish_acceptance(
        &self,
        task: &TaskId,
        totals: Acceptance,
        now: Timestamp,
    ) -> Result<BulkTask, PortError> {
        let Acceptance { total_rows, invalid_rows, chunks } = totals;
        const OP: &str = "dynamodb:UpdateItem(task accepted)";
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(task_key(task)))
            .update_expression("SET #total = :total, #invalid = :invalid, #chunks = :chunks, #acc = :yes, #upd = :now")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#total", "totalRows")
            .expression_attribute_names("#invalid", "invalidRows")
            .expression_attribute_names("#chunks", "chunks")
            .expression_attribute_names("#acc", "accepted")
            .expression_attribute_names("#upd", "updatedAt")
            .expression_attribute_values(":total", n(total_rows))
            .expression_attribute_values(":invalid", n(invalid_rows))
            .expression_attribute_values(":chunks", n(chunks))
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .expression_attribute_values(":now", n(now.as_millis()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(failed(OP))?;
        out.attributes()
            .map(task_from_item)
            .unwrap_or_else(|| Err(PortError::new(ErrorKind::Transient, OP, "response carried no attributes")))
    }

    async fn claim_task_announcement(
        &self,
        task: &TaskId,
        claimant: &IdempotencyKey,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<bool, PortError> {
        const OP: &str = "dynamodb:UpdateItem(task announcement)";
        let claimed = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(task_key(task)))
            .update_expression("SET #by = :me, #until = :until")
            .condition_expression(
                "attribute_exists(pk) AND #pub = :no AND (attribute_not_exists(#until) OR #until < :now OR #by = :me)",
            )
            .expression_attribute_names("#pub", "eventPublished")
            .expression_attribute_names("#by", "announcedBy")
            .expression_attribute_names("#until", "announceUntilMs")
            .expression_attribute_values(":no", AttributeValue::Bool(false))
            .expression_attribute_values(":me", s(claimant.as_str()))
            .expression_attribute_values(":until", n(until.as_millis()))
            .expression_attribute_values(":now", n(now.as_millis()))
            .send()
            .await;
        match claimed.map_err(|e| counted(classify(OP, e))) {
            Ok(_) => Ok(true),
            Err(e) if e.kind == ErrorKind::ConditionFailed => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn mark_task_event_published(&self, task: &TaskId) -> Result<(), PortError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(task_key(task)))
            .update_expression("SET #pub = :yes")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#pub", "eventPublished")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .send()
            .await
            .map_err(failed("dynamodb:UpdateItem(task event)"))?;
        Ok(())
    }

    async fn rows(
        &self,
        task: &TaskId,
        after: Option<u32>,
        limit: usize,
        outcome: Option<RowOutcome>,
    ) -> Result<RowPage, PortError> {
        const OP: &str = "dynamodb:Query(rows)";
        let mut rows = Vec::new();
        let mut start = after.map_or_else(|| row_sk(0), |a| row_sk(a.saturating_add(1)));
        // Pages of the query are read until `limit` matching rows (and one more, to know
        // whether there is a next page) are found or the rows run out.
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                .expression_attribute_values(":pk", s(task_pk(task)))
                .expression_attribute_values(":from", s(&start))
                .expression_attribute_values(":to", s("row#~"))
                .limit(i32::try_from(limit + 1).unwrap_or(i32::MAX));
            if let Some(outcome) = outcome {
                query = query
                    .filter_expression("#out = :out")
                    .expression_attribute_names("#out", "outcome")
                    .expression_attribute_values(":out", s(outcome.as_str()));
            }
            let out = query.send().await.map_err(failed(OP))?;
            for item in out.items() {
                rows.push(row_from_item(item)?);
            }
            let last = out.last_evaluated_key().and_then(|k| k.get("sk")).and_then(|v| v.as_s().ok()).cloned();
            match last {
                Some(sk) if rows.len() <= limit => start = format!("{sk}\u{0}"),
                _ => break,
            }
        }
        let next = (rows.len() > limit).then(|| rows[limit - 1].row);
        rows.truncate(limit);
        Ok(RowPage { rows, next })
    }
}

impl DynamoStateStore {
    /// The row's result item, written only if the row has none yet.
    fn row_put(&self, op: &'static str, bulk_task: &BulkTask, row: &RowResult) -> Result<Put, PortError> {
        let task = &bulk_task.task_id;
        let result = serde_json::to_string(row).map_err(|e| PortError::new(ErrorKind::Permanent, op, e.to_string()))?;
        let row_item = HashMap::from([
            ("pk".to_owned(), s(task_pk(task))),
            ("sk".to_owned(), s(row_sk(row.row))),
            ("row".to_owned(), n(row.row)),
            ("outcome".to_owned(), s(row.outcome.as_str())),
            ("result".to_owned(), s(result)),
            ("expiresAt".to_owned(), n(bulk_task.expires_at)),
        ]);
        build(
            op,
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(row_item))
                .condition_expression("attribute_not_exists(pk)")
                .build(),
        )
    }

    /// One more row with the row's outcome on the task's counter.
    fn count_update(
        &self,
        op: &'static str,
        bulk_task: &BulkTask,
        row: &RowResult,
        now: Timestamp,
    ) -> Result<Update, PortError> {
        build(
            op,
            Update::builder()
                .table_name(&self.table)
                .set_key(Some(task_key(&bulk_task.task_id)))
                .update_expression("ADD #count :one SET #upd = :now")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_names("#count", counter(row.outcome))
                .expression_attribute_names("#upd", "updatedAt")
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":now", n(now.as_millis()))
                .build(),
        )
    }

    async fn row_exists(&self, task: &TaskId, row: u32) -> Result<bool, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(item_key(&ItemKey::row(task, row))))
            .consistent_read(true)
            .projection_expression("pk")
            .send()
            .await
            .map_err(failed("dynamodb:GetItem(row)"))?;
        Ok(out.item().is_some())
    }
}
