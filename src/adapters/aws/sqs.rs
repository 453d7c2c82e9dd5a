//! The command queue on SQS: as [`CommandQueue`], long-poll receive, batched delete,
//! visibility changes and the dead-letter copy of refused messages with their reason in
//! message attributes; as [`CommandSender`], single and batched sends.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};

use super::error::failed;
use crate::domain::CommandError;
use crate::ports::{CommandQueue, CommandSender, DeleteFailure, ErrorKind, PortError, QueueMessage, SendFailure};

/// Message attribute naming the rejection code on a dead-lettered message.
pub const REJECTION_CODE_ATTRIBUTE: &str = "cdf-rejection-code";
/// Message attribute carrying the rejection reason.
pub const REJECTION_REASON_ATTRIBUTE: &str = "cdf-rejection-reason";
/// Message attribute carrying the JSON path at fault.
pub const REJECTION_PATH_ATTRIBUTE: &str = "cdf-rejection-path";
/// Message attribute carrying the original message id.
pub const SOURCE_MESSAGE_ID_ATTRIBUTE: &str = "cdf-source-message-id";

/// The command queue and its dead-letter queue.
#[derive(Debug, Clone)]
pub struct SqsCommandQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    dead_letter_url: String,
    /// The redrive policy's maxReceiveCount: the delivery after which SQS gives the message up.
    max_deliveries: Option<u32>,
}

/// Resolves a queue given by URL or by name to its URL.
pub(crate) async fn resolve_queue_url(client: &aws_sdk_sqs::Client, queue: &str) -> Result<String, PortError> {
    if queue.starts_with("https://") || queue.starts_with("http://") {
        return Ok(queue.to_owned());
    }
    let name = queue.rsplit(':').next().unwrap_or(queue); // accepts an ARN too
    let out = client.get_queue_url().queue_name(name).send().await.map_err(failed("sqs:GetQueueUrl"))?;
    out.queue_url()
        .map(str::to_owned)
        .ok_or_else(|| PortError::new(ErrorKind::NotFound, "sqs:GetQueueUrl", format!("no URL for queue {name}")))
}

fn text(value: &str) -> Result<MessageAttributeValue, PortError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| PortError::new(ErrorKind::Permanent, "sqs:SendMessage", e.to_string()))
}

impl SqsCommandQueue {
    /// Resolves the command queue (URL, name or ARN) and its dead-letter queue: the given
    /// one, else the target of the queue's redrive policy. Fails when there is neither,
    /// since refused messages must be kept somewhere.
    pub async fn connect(
        clients: &super::AwsClients,
        queue: &str,
        dead_letter: Option<&str>,
    ) -> Result<Self, PortError> {
        let client = clients.sqs.clone();
        let queue_url = resolve_queue_url(&client, queue).await?;
        let attributes = client
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(QueueAttributeName::RedrivePolicy)
            .send()
            .await
            .map_err(failed("sqs:GetQueueAttributes"))?;
        let policy = attributes
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::RedrivePolicy))
            .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok());
        // SQS writes maxReceiveCount as a number or as a string, depending on who set it.
        let max_deliveries = policy.as_ref().and_then(|p| {
            let count = &p["maxReceiveCount"];
            count.as_u64().or_else(|| count.as_str().and_then(|c| c.parse().ok())).and_then(|c| u32::try_from(c).ok())
        });
        let dead_letter_url = match dead_letter {
            Some(dlq) => resolve_queue_url(&client, dlq).await?,
            None => {
                let arn = policy.as_ref().and_then(|p| p["deadLetterTargetArn"].as_str()).ok_or_else(|| {
                    PortError::new(
                        ErrorKind::Permanent,
                        "sqs:GetQueueAttributes",
                        format!("queue {queue_url} has no redrive policy; set CDF_DEAD_LETTER_QUEUE"),
                    )
                })?;
                resolve_queue_url(&client, arn).await?
            }
        };
        Ok(Self { client, queue_url, dead_letter_url, max_deliveries })
    }

    /// The command queue's URL.
    pub fn url(&self) -> &str {
        &self.queue_url
    }

    /// The dead-letter queue's URL.
    pub fn dead_letter_url(&self) -> &str {
        &self.dead_letter_url
    }
}

#[async_trait]
impl CommandQueue for SqsCommandQueue {
    fn max_deliveries(&self) -> Option<u32> {
        self.max_deliveries
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<QueueMessage>, PortError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(i32::try_from(max.clamp(1, 10)).unwrap_or(10))
            .wait_time_seconds(i32::try_from(wait.as_secs().min(20)).unwrap_or(20))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(failed("sqs:ReceiveMessage"))?;
        Ok(out
            .messages()
            .iter()
            .filter_map(|m| {
                let receive_count = m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1);
                Some(QueueMessage {
                    message_id: m.message_id()?.to_owned(),
                    receipt_handle: m.receipt_handle()?.to_owned(),
                    body: m.body().unwrap_or_default().to_owned(),
                    receive_count,
                })
            })
            .collect())
    }

    async fn delete_batch(&self, receipt_handles: &[String]) -> Result<Vec<DeleteFailure>, PortError> {
        const OP: &str = "sqs:DeleteMessageBatch";
        let entries = receipt_handles
            .iter()
            .enumerate()
            .map(|(i, h)| DeleteMessageBatchRequestEntry::builder().id(i.to_string()).receipt_handle(h).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PortError::new(ErrorKind::Permanent, OP, e.to_string()))?;
        let out = self
            .client
            .delete_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(failed(OP))?;
        Ok(out
            .failed()
            .iter()
            .map(|f| DeleteFailure {
                receipt_handle: f
                    .id()
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| receipt_handles.get(i))
                    .cloned()
                    .unwrap_or_default(),
                // SenderFault entries (stale handle) will fail again; the rest may not.
                retryable: !f.sender_fault(),
                message: format!("{}: {}", f.code(), f.message().unwrap_or_default()),
            })
            .collect())
    }

    async fn change_visibility(&self, receipt_handle: &str, timeout: Duration) -> Result<(), PortError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(i32::try_from(timeout.as_secs().min(43_200)).unwrap_or(43_200))
            .send()
            .await
            .map_err(failed("sqs:ChangeMessageVisibility"))?;
        Ok(())
    }

    async fn dead_letter(&self, message: &QueueMessage, reason: &CommandError) -> Result<(), PortError> {
        let mut reason_text = crate::domain::error::bounded_to(&reason.message, 1024);
        if reason_text.is_empty() {
            reason_text.push('-');
        }
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.dead_letter_url)
            .message_body(&message.body)
            .message_attributes(REJECTION_CODE_ATTRIBUTE, text(&reason.code.to_string())?)
            .message_attributes(REJECTION_REASON_ATTRIBUTE, text(&reason_text)?)
            .message_attributes(SOURCE_MESSAGE_ID_ATTRIBUTE, text(&message.message_id)?);
        if let Some(path) = &reason.path {
            request = request.message_attributes(REJECTION_PATH_ATTRIBUTE, text(path)?);
        }
        request.send().await.map_err(failed("sqs:SendMessage(dead-letter)"))?;
        Ok(())
    }
}

#[async_trait]
impl CommandSender for SqsCommandQueue {
    async fn send(&self, body: &str) -> Result<String, PortError> {
        let out = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(failed("sqs:SendMessage"))?;
        Ok(out.message_id().unwrap_or_default().to_owned())
    }

    async fn send_batch(&self, bodies: &[String]) -> Result<Vec<SendFailure>, PortError> {
        const OP: &str = "sqs:SendMessageBatch";
        if bodies.is_empty() {
            return Ok(Vec::new());
        }
        let entries = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .build()
                    .map_err(|e| PortError::new(ErrorKind::Invalid, OP, e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(failed(OP))?;
        Ok(out
            .failed()
            .iter()
            .map(|f| SendFailure {
                index: f.id().parse().unwrap_or(usize::MAX),
                // SQS says whether the sender was at fault; only its own faults are worth a retry.
                retryable: !f.sender_fault(),
                message: format!("{}: {}", f.code(), f.message().unwrap_or_default()),
            })
            .collect())
    }
}
