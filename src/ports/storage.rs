//! Objects the core reads and writes: templates, generated private keys, CA private keys.

use async_trait::async_trait;

use super::PortError;
use crate::domain::secret::Secret;

/// Provisioning templates by id (S3 `<prefix><id><suffix>`).
#[async_trait]
pub trait TemplateStore: Send + Sync {
    /// The template's text; `NotFound` when there is none.
    async fn template(&self, template_id: &str) -> Result<String, PortError>;
}

/// Where generated private keys go, so that they never reach records, events or logs.
#[async_trait]
pub trait SecretSink: Send + Sync {
    /// Stores `secret` under `name` (overwriting); returns a reference for the caller.
    async fn store(&self, name: &str, secret: &Secret) -> Result<String, PortError>;
    /// Deletes what `store` put under `name` (compensation).
    async fn delete(&self, name: &str) -> Result<(), PortError>;
    /// Reads back what `store` put under `name` (the answer to a repeated keyed REST request);
    /// `NotFound` when there is nothing.
    async fn read(&self, name: &str) -> Result<Secret, PortError>;
}

/// Private keys of the CAs this deployment signs device certificates with.
#[async_trait]
pub trait CaKeyStore: Send + Sync {
    /// The private key (PEM) of the CA registered in IoT as `ca_certificate_id`.
    async fn ca_private_key(&self, ca_certificate_id: &str) -> Result<Secret, PortError>;
}

/// The lines of a stored rows file (NDJSON or CSV), one at a time, so that a task of any
/// size is read in constant memory.
pub type RowLines = futures::stream::BoxStream<'static, Result<String, PortError>>;

/// Rows files of large bulk tasks (S3 objects in the deployment's bucket).
#[async_trait]
pub trait RowSource: Send + Sync {
    /// The lines of the object at `key`; `NotFound` when there is none.
    async fn lines(&self, key: &str) -> Result<RowLines, PortError>;
}
