//! Where completion events go.

use async_trait::async_trait;

use super::PortError;
use crate::domain::CloudEvent;

/// Where completion events go (an SQS queue, an SNS topic).
#[async_trait]
pub trait EventPublisher: Send + Sync {
    /// Publishes one event.
    async fn publish(&self, event: &CloudEvent) -> Result<(), PortError>;
}
