//! In-memory templates, secret sink and CA key store.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::Faults;
use crate::crypto::Secret;
use crate::ports::{
    CaKeyStore, ErrorKind, PortError, RowLines, RowSource, SecretSink, TemplateStore, TemplateVersion, WriteCondition,
};

/// The object store operations of the fakes, for failure injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum ObjectOp {
    /// Reading a template.
    Template,
    /// Storing a secret.
    Store,
    /// Deleting a secret.
    Delete,
    /// Reading a secret back.
    Read,
}

/// Templates by id.
#[derive(Debug, Default)]
pub struct MemoryTemplates {
    templates: Mutex<BTreeMap<String, String>>,
    /// Failure injection ([`ObjectOp::Template`]).
    pub faults: Faults<ObjectOp>,
}

impl MemoryTemplates {
    /// Stores a template.
    pub fn put(&self, id: &str, text: &str) {
        self.templates.lock().expect("templates lock").insert(id.to_owned(), text.to_owned());
    }
}

#[async_trait]
impl TemplateStore for MemoryTemplates {
    async fn template(&self, template_id: &str) -> Result<String, PortError> {
        self.faults.enter(ObjectOp::Template).await?;
        self.templates
            .lock()
            .expect("templates lock")
            .get(template_id)
            .cloned()
            .ok_or_else(|| PortError::new(ErrorKind::NotFound, "template", format!("no template {template_id}")))
    }

    async fn template_version(&self, template_id: &str) -> Result<(String, TemplateVersion), PortError> {
        let text = self.template(template_id).await?;
        let version = version_of(template_id, &text);
        Ok((text, version))
    }

    async fn put_template(
        &self,
        template_id: &str,
        text: &str,
        condition: &WriteCondition,
    ) -> Result<TemplateVersion, PortError> {
        self.faults.enter(ObjectOp::Template).await?;
        let mut templates = self.templates.lock().expect("templates lock");
        let stored = templates.get(template_id).map(|t| version_of(template_id, t).version);
        let holds = match (condition, &stored) {
            (WriteCondition::Always, _) | (WriteCondition::IfAbsent, None) => true,
            // As S3: quotes around an ETag do not matter.
            (WriteCondition::IfMatch(expected), Some(stored)) => expected.trim_matches('"') == stored.trim_matches('"'),
            (WriteCondition::IfMatch(_), None) | (WriteCondition::IfAbsent, Some(_)) => false,
        };
        if !holds {
            return Err(PortError::new(
                ErrorKind::ConditionFailed,
                "template",
                format!("template {template_id}: the precondition does not hold"),
            ));
        }
        templates.insert(template_id.to_owned(), text.to_owned());
        Ok(version_of(template_id, text))
    }

    async fn list_templates(&self) -> Result<Vec<TemplateVersion>, PortError> {
        self.faults.enter(ObjectOp::Template).await?;
        let templates = self.templates.lock().expect("templates lock");
        Ok(templates.iter().map(|(id, text)| version_of(id, text)).collect())
    }

    async fn delete_template(&self, template_id: &str) -> Result<(), PortError> {
        self.faults.enter(ObjectOp::Template).await?;
        match self.templates.lock().expect("templates lock").remove(template_id) {
            Some(_) => Ok(()),
            None => Err(PortError::new(ErrorKind::NotFound, "template", format!("no template {template_id}"))),
        }
    }
}

/// A version that changes with the text, as S3's ETag does.
fn version_of(template_id: &str, text: &str) -> TemplateVersion {
    use sha2::{Digest, Sha256};
    let digest = hex::encode(Sha256::digest(text.as_bytes()));
    TemplateVersion { template_id: template_id.to_owned(), version: format!("\"{}\"", &digest[..32]) }
}

/// Secrets by name.
#[derive(Debug, Default)]
pub struct MemorySecrets {
    secrets: Mutex<BTreeMap<String, Secret>>,
    /// Failure injection ([`ObjectOp::Store`], [`ObjectOp::Delete`]).
    pub faults: Faults<ObjectOp>,
}

impl MemorySecrets {
    /// Every stored secret name.
    pub fn names(&self) -> Vec<String> {
        self.secrets.lock().expect("secrets lock").keys().cloned().collect()
    }

    /// A stored secret.
    pub fn get(&self, name: &str) -> Option<Secret> {
        self.secrets.lock().expect("secrets lock").get(name).map(Secret::duplicate)
    }
}

#[async_trait]
impl SecretSink for MemorySecrets {
    async fn store(&self, name: &str, secret: &Secret) -> Result<String, PortError> {
        self.faults.enter(ObjectOp::Store).await?;
        self.secrets.lock().expect("secrets lock").insert(name.to_owned(), secret.duplicate());
        Ok(format!("memory://secrets/{name}"))
    }

    async fn delete(&self, name: &str) -> Result<(), PortError> {
        self.faults.enter(ObjectOp::Delete).await?;
        self.secrets.lock().expect("secrets lock").remove(name);
        Ok(())
    }

    async fn read(&self, name: &str) -> Result<Secret, PortError> {
        self.faults.enter(ObjectOp::Read).await?;
        self.secrets
            .lock()
            .expect("secrets lock")
            .get(name)
            .map(Secret::duplicate)
            .ok_or_else(|| PortError::new(ErrorKind::NotFound, "secrets:read", format!("no secret {name}")))
    }
}

/// CA keys by CA certificate id.
#[derive(Debug, Default)]
pub struct MemoryCaKeys {
    keys: Mutex<BTreeMap<String, Secret>>,
    reads: std::sync::atomic::AtomicUsize,
}

impl MemoryCaKeys {
    /// How many times a CA key was asked for (found or not).
    pub fn reads(&self) -> usize {
        self.reads.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stores a CA key.
    pub fn put(&self, ca_id: &str, key: Secret) {
        self.keys.lock().expect("ca keys lock").insert(ca_id.to_owned(), key);
    }
}

#[async_trait]
impl CaKeyStore for MemoryCaKeys {
    async fn ca_private_key(&self, ca_certificate_id: &str) -> Result<Arc<Secret>, PortError> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.keys.lock().expect("ca keys lock").get(ca_certificate_id).map(|k| Arc::new(k.duplicate())).ok_or_else(
            || PortError::new(ErrorKind::NotFound, "ca_private_key", format!("no key for CA {ca_certificate_id}")),
        )
    }
}

/// Rows files by key, as text.
#[derive(Debug, Default)]
pub struct MemoryRowSource {
    files: Mutex<BTreeMap<String, String>>,
    reads: std::sync::atomic::AtomicUsize,
}

impl MemoryRowSource {
    /// Stores a rows file.
    pub fn put(&self, key: &str, text: &str) {
        self.files.lock().expect("rows lock").insert(key.to_owned(), text.to_owned());
    }

    /// How many times a rows file was asked for (found or not).
    pub fn reads(&self) -> usize {
        self.reads.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait]
impl RowSource for MemoryRowSource {
    async fn lines(&self, key: &str) -> Result<RowLines, PortError> {
        use futures::StreamExt;
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let text = self
            .files
            .lock()
            .expect("rows lock")
            .get(key)
            .cloned()
            .ok_or_else(|| PortError::new(ErrorKind::NotFound, "rows", format!("no rows file {key}")))?;
        let lines: Vec<Result<String, PortError>> = text.lines().map(|l| Ok(l.to_owned())).collect();
        Ok(futures::stream::iter(lines).boxed())
    }
}
