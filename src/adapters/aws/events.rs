//! [`EventPublisher`]s: an SQS queue (the default) or an SNS topic. The event type travels
//! as a message attribute too, so subscribers can filter without parsing the body.

use async_trait::async_trait;

use super::error::failed;
use crate::domain::CloudEvent;
use crate::ports::{ErrorKind, EventPublisher, PortError};

fn body(event: &CloudEvent) -> Result<String, PortError> {
    serde_json::to_string(event).map_err(|e| PortError::new(ErrorKind::Permanent, "events:encode", e.to_string()))
}

/// Publishes events to an SQS queue.
#[derive(Debug, Clone)]
pub struct SqsEventPublisher {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsEventPublisher {
    /// Resolves the events queue (URL, name or ARN).
    pub async fn connect(clients: &super::AwsClients, queue: &str) -> Result<Self, PortError> {
        let queue_url = super::sqs::resolve_queue_url(&clients.sqs, queue).await?;
        Ok(Self { client: clients.sqs.clone(), queue_url })
    }
}

#[async_trait]
impl EventPublisher for SqsEventPublisher {
    async fn publish(&self, event: &CloudEvent) -> Result<(), PortError> {
        let attribute = aws_sdk_sqs::types::MessageAttributeValue::builder()
            .data_type("String")
            .string_value(&event.event_type)
            .build()
            .map_err(|e| PortError::new(ErrorKind::Permanent, "sqs:SendMessage(event)", e.to_string()))?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body(event)?)
            .message_attributes("ce-type", attribute)
            .send()
            .await
            .map_err(failed("sqs:SendMessage(event)"))?;
        Ok(())
    }
}

/// Publishes events to an SNS topic.
#[derive(Debug, Clone)]
pub struct SnsEventPublisher {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl SnsEventPublisher {
    /// Publishes to `topic_arn`.
    pub fn new(clients: &super::AwsClients, topic_arn: impl Into<String>) -> Self {
        Self { client: clients.sns.clone(), topic_arn: topic_arn.into() }
    }
}

#[async_trait]
impl EventPublisher for SnsEventPublisher {
    async fn publish(&self, event: &CloudEvent) -> Result<(), PortError> {
        let attribute = aws_sdk_sns::types::MessageAttributeValue::builder()
            .data_type("String")
            .string_value(&event.event_type)
            .build()
            .map_err(|e| PortError::new(ErrorKind::Permanent, "sns:Publish", e.to_string()))?;
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .message(body(event)?)
            .message_attributes("ce-type", attribute)
            .send()
            .await
            .map_err(failed("sns:Publish"))?;
        Ok(())
    }
}
