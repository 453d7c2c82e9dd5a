//! S3: provisioning templates (cached by ETag), the secret sink for generated private keys
//! (server-side encrypted objects), and CA private keys.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;

use super::error::{classify, counted, failed};
use crate::crypto::Secret;
use crate::ports::{
    CaKeyStore, ErrorKind, PortError, RowLines, RowSource, SecretSink, TemplateStore, TemplateVersion, WriteCondition,
};

/// Reads an object's body as UTF-8 text (strictly: CDF read bulk files as Latin-1).
async fn read_text(op: &'static str, body: ByteStream) -> Result<String, PortError> {
    let bytes = body.collect().await.map_err(|e| PortError::new(ErrorKind::Transient, op, e.to_string()))?.into_bytes();
    String::from_utf8(bytes.to_vec())
        .map_err(|_| PortError::new(ErrorKind::Invalid, op, "the object is not UTF-8 text"))
}

/// An object as UTF-8 text, with its ETag.
async fn get_text(
    client: &aws_sdk_s3::Client,
    op: &'static str,
    bucket: &str,
    key: &str,
) -> Result<(String, Option<String>), PortError> {
    let out = client.get_object().bucket(bucket).key(key).send().await.map_err(failed(op))?;
    let etag = out.e_tag().map(str::to_owned);
    Ok((read_text(op, out.body).await?, etag))
}

/// Templates at `s3://<bucket>/<prefix><id><suffix>`, re-read only when their ETag changes.
#[derive(Debug)]
pub struct S3TemplateStore {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    suffix: String,
    cache: Mutex<HashMap<String, (String, String)>>,
}

impl S3TemplateStore {
    /// Templates in `bucket` under `prefix`, named `<id><suffix>`.
    pub fn new(clients: &super::AwsClients, bucket: &str, prefix: &str, suffix: &str) -> Self {
        Self {
            client: clients.s3.clone(),
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            suffix: suffix.to_owned(),
            cache: Mutex::default(),
        }
    }
}

#[async_trait]
impl TemplateStore for S3TemplateStore {
    async fn template(&self, template_id: &str) -> Result<String, PortError> {
        const OP: &str = "s3:GetObject(template)";
        let key = self.key(template_id);
        let cached = self.cache.lock().expect("template cache lock").get(&key).cloned();
        let result = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .set_if_none_match(cached.as_ref().map(|(etag, _)| etag.clone()))
            .send()
            .await;
        match result {
            Ok(out) => {
                let etag = out.e_tag().map(str::to_owned);
                let text = read_text(OP, out.body).await?;
                if let Some(etag) = etag {
                    self.cache.lock().expect("template cache lock").insert(key, (etag, text.clone()));
                }
                Ok(text)
            }
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 304) => {
                Ok(cached.map(|(_, text)| text).unwrap_or_default())
            }
            Err(e) => {
                let mut e = counted(classify(OP, e));
                if e.kind == ErrorKind::NotFound {
                    e.message = format!("no template s3://{}/{key}", self.bucket);
                }
                Err(e)
            }
        }
    }

    async fn template_version(&self, template_id: &str) -> Result<(String, TemplateVersion), PortError> {
        let (text, etag) =
            get_text(&self.client, "s3:GetObject(template)", &self.bucket, &self.key(template_id)).await?;
        Ok((text, TemplateVersion { template_id: template_id.to_owned(), version: etag.unwrap_or_default() }))
    }

    async fn put_template(
        &self,
        template_id: &str,
        text: &str,
        condition: &WriteCondition,
    ) -> Result<TemplateVersion, PortError> {
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.key(template_id))
            .body(ByteStream::from(text.as_bytes().to_vec()))
            .content_type("application/json");
        // S3's conditional writes: the check and the write are one step. S3 answers 412
        // PreconditionFailed, 409 ConditionalRequestConflict (a concurrent conditional write)
        // or, for If-Match on a missing object, 404 NoSuchKey.
        let request = match condition {
            WriteCondition::Always => request,
            WriteCondition::IfMatch(etag) => request.if_match(etag),
            WriteCondition::IfAbsent => request.if_none_match("*"),
        };
        let out = request.send().await.map_err(failed("s3:PutObject(template)")).map_err(|mut e| {
            if matches!(condition, WriteCondition::IfMatch(_)) && e.kind == ErrorKind::NotFound {
                e.kind = ErrorKind::ConditionFailed;
            }
            e
        })?;
        Ok(TemplateVersion { template_id: template_id.to_owned(), version: out.e_tag().unwrap_or_default().to_owned() })
    }

    async fn list_templates(&self) -> Result<Vec<TemplateVersion>, PortError> {
        let mut pages = self.client.list_objects_v2().bucket(&self.bucket).prefix(&self.prefix).into_paginator().send();
        let mut templates = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(failed("s3:ListObjectsV2(templates)"))?;
            for object in page.contents() {
                let id =
                    object.key().and_then(|k| k.strip_prefix(&self.prefix)).and_then(|k| k.strip_suffix(&self.suffix));
                if let Some(id) = id.filter(|id| !id.is_empty()) {
                    let version = object.e_tag().unwrap_or_default().to_owned();
                    templates.push(TemplateVersion { template_id: id.to_owned(), version });
                }
            }
        }
        Ok(templates)
    }

    async fn delete_template(&self, template_id: &str) -> Result<(), PortError> {
        let key = self.key(template_id);
        // S3 deletes a missing key without complaint; the caller is told it was not there.
        self.client
            .head_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
            .map_err(failed("s3:HeadObject(template)"))?;
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
            .map_err(failed("s3:DeleteObject(template)"))?;
        Ok(())
    }
}

impl S3TemplateStore {
    fn key(&self, template_id: &str) -> String {
        format!("{}{template_id}{}", self.prefix, self.suffix)
    }
}

/// Private keys as server-side encrypted objects under a prefix that expires by lifecycle rule.
#[derive(Debug, Clone)]
pub struct S3SecretSink {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    /// The KMS key each secret is encrypted with; `None`: S3's own keys (SSE-S3).
    kms_key: Option<String>,
}

impl S3SecretSink {
    /// Secrets in `bucket` under `prefix`, encrypted with `kms_key` when given.
    pub fn new(clients: &super::AwsClients, bucket: &str, prefix: &str, kms_key: Option<String>) -> Self {
        Self { client: clients.s3.clone(), bucket: bucket.to_owned(), prefix: prefix.to_owned(), kms_key }
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}.pem", self.prefix)
    }
}

#[async_trait]
impl SecretSink for S3SecretSink {
    async fn store(&self, name: &str, secret: &Secret) -> Result<String, PortError> {
        let key = self.key(name);
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .body(ByteStream::from(secret.expose().as_bytes().to_vec()))
            .content_type("application/x-pem-file");
        let request = match &self.kms_key {
            // A key of the deployment's own: its use is logged in CloudTrail and can be revoked.
            Some(kms_key) => request.server_side_encryption(ServerSideEncryption::AwsKms).ssekms_key_id(kms_key),
            None => request.server_side_encryption(ServerSideEncryption::Aes256),
        };
        // Not repeated by the SDK: a repeat is sent later than the lease check before the call
        // (after a pause, when another attempt may hold the command); a failed write fails the
        // attempt, and the next one checks its lease again first.
        request
            .customize()
            .config_override(
                aws_sdk_s3::config::Builder::default().retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled()),
            )
            .send()
            .await
            .map_err(failed("s3:PutObject(secret)"))?;
        Ok(format!("s3://{}/{key}", self.bucket))
    }

    async fn delete(&self, name: &str) -> Result<(), PortError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.key(name))
            .send()
            .await
            .map_err(failed("s3:DeleteObject(secret)"))?;
        Ok(())
    }

    async fn read(&self, name: &str) -> Result<Secret, PortError> {
        let (text, _) = get_text(&self.client, "s3:GetObject(secret)", &self.bucket, &self.key(name)).await?;
        Ok(Secret::new(text))
    }
}

/// CA private keys at `s3://<bucket>/<prefix><CA certificate id>.pem`.
#[derive(Debug, Clone)]
pub struct S3CaKeyStore {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

impl S3CaKeyStore {
    /// CA keys in `bucket` under `prefix`.
    pub fn new(clients: &super::AwsClients, bucket: &str, prefix: &str) -> Self {
        Self { client: clients.s3.clone(), bucket: bucket.to_owned(), prefix: prefix.to_owned() }
    }
}

#[async_trait]
impl CaKeyStore for S3CaKeyStore {
    async fn ca_private_key(&self, ca_certificate_id: &str) -> Result<Arc<Secret>, PortError> {
        let key = format!("{}{ca_certificate_id}.pem", self.prefix);
        let (text, _) = get_text(&self.client, "s3:GetObject(CA key)", &self.bucket, &key).await.map_err(|mut e| {
            if e.kind == ErrorKind::NotFound {
                e.message = format!("no private key for CA {ca_certificate_id} at s3://{}/{key}", self.bucket);
            }
            e
        })?;
        Ok(Arc::new(Secret::new(text)))
    }
}

/// Rows files of bulk tasks: objects in the deployment's bucket, read as a stream of lines.
#[derive(Debug, Clone)]
pub struct S3RowSource {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3RowSource {
    /// Rows files in `bucket`.
    pub fn new(clients: &super::AwsClients, bucket: &str) -> Self {
        Self { client: clients.s3.clone(), bucket: bucket.to_owned() }
    }
}

#[async_trait]
impl RowSource for S3RowSource {
    async fn lines(&self, key: &str) -> Result<RowLines, PortError> {
        const OP: &str = "s3:GetObject(rows)";
        use futures::StreamExt;
        use tokio::io::AsyncBufReadExt;
        let out = self.client.get_object().bucket(&self.bucket).key(key).send().await.map_err(failed(OP))?;
        // `None` once the object is read or a read failed: nothing follows an error.
        let reader = Some(out.body.into_async_read().lines());
        let stream = futures::stream::unfold(reader, |reader| async move {
            let mut reader = reader?;
            match reader.next_line().await {
                Ok(Some(line)) => Some((Ok(line), Some(reader))),
                Ok(None) => None,
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    Some((Err(PortError::new(ErrorKind::Invalid, OP, "the rows file is not UTF-8 text")), None))
                }
                Err(e) => Some((Err(PortError::new(ErrorKind::Transient, OP, e.to_string())), None)),
            }
        });
        Ok(stream.boxed())
    }
}
