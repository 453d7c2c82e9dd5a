//! [`Certificates`] on IoT: certificates and the CA certificates registered with it.

use async_trait::async_trait;
use aws_sdk_iot::types::CertificateStatus as IotStatus;

use super::IotRegistry;
use crate::adapters::aws::error::failed;
use crate::domain::registry::{CertificateInfo, IssuedCertificate};
use crate::domain::secret::Secret;
use crate::domain::{Arn, CertificateId, CertificateStatus, Timestamp};
use crate::ports::{AwsGeneratedKey, Certificates, ErrorKind, IotOperation, PortError};

/// For calls that are not idempotent (each makes a new certificate): no retry by the SDK. A
/// timed-out call may have made its certificate; the command's next attempt adopts it (a CSR's)
/// rather than asking for a second one.
fn no_retry() -> aws_sdk_iot::config::Builder {
    aws_sdk_iot::config::Builder::default().retry_config(aws_sdk_iot::config::retry::RetryConfig::disabled())
}

fn to_iot(status: CertificateStatus) -> IotStatus {
    IotStatus::from(status.as_str())
}

fn initial_status(active: bool) -> IotStatus {
    if active { IotStatus::Active } else { IotStatus::Inactive }
}

/// An issued certificate from a response's fields, all of which IoT always returns.
fn issued(
    op: &'static str,
    id: Option<&str>,
    arn: Option<&str>,
    pem: Option<&str>,
) -> Result<IssuedCertificate, PortError> {
    match (id, arn, pem) {
        (Some(id), Some(arn), Some(pem)) => Ok(IssuedCertificate {
            certificate_id: CertificateId::new(id),
            arn: Arn::new(arn),
            certificate_pem: pem.to_owned(),
        }),
        _ => Err(PortError::new(ErrorKind::Transient, op, "incomplete certificate in the response")),
    }
}

/// IoT's `creationDate` as a timestamp.
fn timestamp(date: &aws_sdk_iot::primitives::DateTime) -> Option<Timestamp> {
    date.to_millis().ok().map(Timestamp::from_millis)
}

#[async_trait]
impl Certificates for IotRegistry {
    async fn describe_certificate(&self, id: &CertificateId) -> Result<CertificateInfo, PortError> {
        let op = IotOperation::DescribeCertificate.op();
        let out = self.client.describe_certificate().certificate_id(id.as_str()).send().await.map_err(failed(op))?;
        let description = out
            .certificate_description()
            .ok_or_else(|| PortError::new(ErrorKind::Transient, op, "response has no certificate description"))?;
        let status_text = description.status().map(|s| s.as_str()).unwrap_or_default();
        let status = CertificateStatus::from_iot(status_text).ok_or_else(|| {
            PortError::new(ErrorKind::Permanent, op, format!("unknown certificate status {status_text:?}"))
        })?;
        Ok(CertificateInfo {
            certificate_id: description.certificate_id().map_or_else(|| id.clone(), CertificateId::new),
            arn: Arn::new(description.certificate_arn().unwrap_or_default()),
            certificate_status: status,
            certificate_pem: description.certificate_pem().map(str::to_owned),
            created_at: description.creation_date().and_then(timestamp),
        })
    }

    async fn update_certificate_status(&self, id: &CertificateId, status: CertificateStatus) -> Result<(), PortError> {
        self.client
            .update_certificate()
            .certificate_id(id.as_str())
            .new_status(to_iot(status))
            .send()
            .await
            .map_err(failed(IotOperation::UpdateCertificate.op()))?;
        Ok(())
    }

    async fn delete_certificate(&self, id: &CertificateId) -> Result<(), PortError> {
        self.client
            .delete_certificate()
            .certificate_id(id.as_str())
            .force_delete(false)
            .send()
            .await
            .map_err(failed(IotOperation::DeleteCertificate.op()))?;
        Ok(())
    }

    async fn create_certificate_from_csr(&self, csr_pem: &str, active: bool) -> Result<IssuedCertificate, PortError> {
        let op = IotOperation::CreateCertificateFromCsr.op();
        let out = self
            .client
            .create_certificate_from_csr()
            .certificate_signing_request(csr_pem)
            .set_as_active(active)
            .customize()
            .config_override(no_retry())
            .send()
            .await
            .map_err(failed(op))?;
        issued(op, out.certificate_id(), out.certificate_arn(), out.certificate_pem())
    }

    async fn create_keys_and_certificate(&self, active: bool) -> Result<AwsGeneratedKey, PortError> {
        let op = IotOperation::CreateKeysAndCertificate.op();
        let out = self
            .client
            .create_keys_and_certificate()
            .set_as_active(active)
            .customize()
            .config_override(no_retry())
            .send()
            .await
            .map_err(failed(op))?;
        let certificate = issued(op, out.certificate_id(), out.certificate_arn(), out.certificate_pem())?;
        let keys =
            out.key_pair().ok_or_else(|| PortError::new(ErrorKind::Transient, op, "no key pair in the response"))?;
        Ok(AwsGeneratedKey {
            certificate,
            private_key: Secret::new(keys.private_key().unwrap_or_default().to_owned()),
            public_key_pem: keys.public_key().unwrap_or_default().to_owned(),
        })
    }

    async fn register_certificate(
        &self,
        certificate_pem: &str,
        ca_certificate_pem: Option<&str>,
        active: bool,
    ) -> Result<IssuedCertificate, PortError> {
        let op = IotOperation::RegisterCertificate.op();
        let out = self
            .client
            .register_certificate()
            .certificate_pem(certificate_pem)
            .set_ca_certificate_pem(ca_certificate_pem.map(str::to_owned))
            .status(initial_status(active))
            .send()
            .await
            .map_err(failed(op))?;
        issued(op, out.certificate_id(), out.certificate_arn(), Some(certificate_pem))
    }

    async fn register_certificate_without_ca(
        &self,
        certificate_pem: &str,
        active: bool,
    ) -> Result<IssuedCertificate, PortError> {
        let op = IotOperation::RegisterCertificateWithoutCA.op();
        let out = self
            .client
            .register_certificate_without_ca()
            .certificate_pem(certificate_pem)
            .status(initial_status(active))
            .send()
            .await
            .map_err(failed(op))?;
        issued(op, out.certificate_id(), out.certificate_arn(), Some(certificate_pem))
    }

    async fn ca_certificate_pem(&self, ca_certificate_id: &str) -> Result<String, PortError> {
        let op = IotOperation::DescribeCACertificate.op();
        let out =
            self.client.describe_ca_certificate().certificate_id(ca_certificate_id).send().await.map_err(failed(op))?;
        out.certificate_description()
            .and_then(|d| d.certificate_pem())
            .map(str::to_owned)
            .ok_or_else(|| PortError::new(ErrorKind::Transient, op, "no certificate PEM in the response"))
    }

    async fn recent_inactive_certificates(&self, since: Timestamp) -> Result<Vec<CertificateInfo>, PortError> {
        let op = IotOperation::ListCertificates.op();
        let mut pages = self.client.list_certificates().ascending_order(false).page_size(50).into_paginator().send();
        let mut found = Vec::new();
        // Newest first: the first page that reaches back before `since` is the last one read.
        // One page per 50 certificates made since, and one DescribeCertificate (the listing has
        // no PEM) per INACTIVE one among them.
        while let Some(page) = pages.next().await {
            let page = page.map_err(failed(op))?;
            let mut reached_older = false;
            for cert in page.certificates() {
                // A certificate without a date is read (its description may have one).
                let created_at = cert.creation_date().and_then(timestamp);
                if created_at.is_some_and(|at| at < since) {
                    reached_older = true;
                } else if cert.status() == Some(&IotStatus::Inactive)
                    && let Some(id) = cert.certificate_id()
                {
                    // The listing has no PEM: the public key is only in the description.
                    let mut described = self.describe_certificate(&CertificateId::new(id)).await?;
                    described.created_at = described.created_at.or(created_at);
                    found.push(described);
                }
            }
            if reached_older {
                break;
            }
        }
        Ok(found)
    }
}
