//! Objects the core reads and writes: templates, generated private keys, CA private keys.

use std::sync::Arc;

use async_trait::async_trait;

use super::PortError;
use crate::domain::secret::Secret;

/// A stored template's id and version (S3's ETag: it changes with every upload).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateVersion {
    /// The template id.
    pub template_id: String,
    /// The stored version.
    pub version: String,
}

/// When a template write may happen: S3's conditional writes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum WriteCondition {
    /// Whatever is stored.
    #[default]
    Always,
    /// Only over the stored version given (an ETag, quoted or not); not when there is none.
    IfMatch(String),
    /// Only when nothing is stored under the id.
    IfAbsent,
}

/// Provisioning templates by id (S3 `<prefix><id><suffix>`): read by the commands, managed
/// through the REST facade and the CLI.
#[async_trait]
pub trait TemplateStore: Send + Sync {
    /// The template's text; `NotFound` when there is none.
    async fn template(&self, template_id: &str) -> Result<String, PortError>;
    /// The template's text and version; `NotFound` when there is none.
    async fn template_version(&self, template_id: &str) -> Result<(String, TemplateVersion), PortError>;
    /// Stores (or replaces) a template when `condition` holds; its new version.
    /// `ConditionFailed` when it does not (the condition is checked and the write done as one
    /// step).
    async fn put_template(
        &self,
        template_id: &str,
        text: &str,
        condition: &WriteCondition,
    ) -> Result<TemplateVersion, PortError>;
    /// Every stored template, by id.
    async fn list_templates(&self) -> Result<Vec<TemplateVersion>, PortError>;
    /// Deletes a template; `NotFound` when there is none.
    async fn delete_template(&self, template_id: &str) -> Result<(), PortError>;
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
    /// Shared, not copied: one plaintext copy per key in memory, however many signings use it.
    async fn ca_private_key(&self, ca_certificate_id: &str) -> Result<Arc<Secret>, PortError>;
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
