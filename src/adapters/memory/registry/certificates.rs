//! [`Certificates`] in memory: Certificates, with IoT's refusals (deleting an ACTIVE or attached certificate,
//! re-activating a revoked one), and real certificates for real CSRs.

use async_trait::async_trait;

use super::{IotOp, MemoryRegistry, not_found};
use crate::domain::registry::{CertificateInfo, IssuedCertificate};
use crate::domain::secret::Secret;
use crate::domain::{CertificateId, CertificateStatus, Timestamp};
use crate::ports::{AwsGeneratedKey, Certificates, ErrorKind, PortError};

#[async_trait]
impl Certificates for MemoryRegistry {
    async fn describe_certificate(&self, id: &CertificateId) -> Result<CertificateInfo, PortError> {
        self.enter(IotOp::DescribeCertificate).await?;
        self.with(|r| {
            r.certificates.get(id.as_str()).cloned().ok_or_else(|| not_found(IotOp::DescribeCertificate, id.as_str()))
        })
    }

    async fn update_certificate_status(&self, id: &CertificateId, status: CertificateStatus) -> Result<(), PortError> {
        self.enter(IotOp::UpdateCertificate).await?;
        self.with(|r| {
            let cert =
                r.certificates.get_mut(id.as_str()).ok_or_else(|| not_found(IotOp::UpdateCertificate, id.as_str()))?;
            if !cert.certificate_status.can_become(status) {
                return Err(PortError::new(
                    ErrorKind::Conflict,
                    IotOp::UpdateCertificate.into(),
                    "certificate is revoked",
                ));
            }
            cert.certificate_status = status;
            Ok(())
        })
    }

    async fn delete_certificate(&self, id: &CertificateId) -> Result<(), PortError> {
        self.enter(IotOp::DeleteCertificate).await?;
        self.with(|r| {
            let cert =
                r.certificates.get(id.as_str()).ok_or_else(|| not_found(IotOp::DeleteCertificate, id.as_str()))?;
            let arn = cert.arn.to_string();
            if cert.certificate_status == CertificateStatus::Active {
                return Err(PortError::new(
                    ErrorKind::Conflict,
                    IotOp::DeleteCertificate.into(),
                    "certificate must be deactivated",
                ));
            }
            if r.thing_principals.iter().any(|(_, p)| *p == arn) || r.policy_targets.iter().any(|(_, t)| *t == arn) {
                return Err(PortError::new(
                    ErrorKind::Conflict,
                    IotOp::DeleteCertificate.into(),
                    "certificate is attached",
                ));
            }
            r.certificates.remove(id.as_str());
            Ok(())
        })
    }

    async fn create_certificate_from_csr(&self, csr_pem: &str, active: bool) -> Result<IssuedCertificate, PortError> {
        self.enter(IotOp::CreateCertificateFromCsr).await?;
        if !csr_pem.contains("CERTIFICATE REQUEST") {
            return Err(PortError::new(ErrorKind::Invalid, IotOp::CreateCertificateFromCsr.into(), "invalid CSR"));
        }
        // A real certificate for a real CSR (so its public key can be matched); a stand-in otherwise.
        let (ca, key) = self.ca.get_or_init(|| crate::crypto::test_ca("Memory CA").expect("a CA can be made"));
        let signed = crate::crypto::sign_csr(csr_pem, ca, key, 365, self.clock.now().to_datetime()).ok();
        let now = self.clock.now();
        Ok(self.with(|r| {
            let pem = signed.unwrap_or_else(|| {
                format!("-----BEGIN CERTIFICATE-----\nFAKE{}\n-----END CERTIFICATE-----\n", r.next_id)
            });
            r.new_certificate(None, pem, active, now)
        }))
    }

    async fn create_keys_and_certificate(&self, active: bool) -> Result<AwsGeneratedKey, PortError> {
        self.enter(IotOp::CreateKeysAndCertificate).await?;
        let now = self.clock.now();
        let cert = self.with(|r| {
            let pem = format!("-----BEGIN CERTIFICATE-----\nFAKE{}\n-----END CERTIFICATE-----\n", r.next_id);
            r.new_certificate(None, pem, active, now)
        });
        Ok(AwsGeneratedKey {
            certificate: cert,
            private_key: Secret::new("-----BEGIN RSA PRIVATE KEY-----\nFAKE\n".into()),
            public_key_pem: "-----BEGIN PUBLIC KEY-----".into(),
        })
    }

    async fn register_certificate(
        &self,
        certificate_pem: &str,
        ca_certificate_pem: Option<&str>,
        active: bool,
    ) -> Result<IssuedCertificate, PortError> {
        self.enter(IotOp::RegisterCertificate).await?;
        let id = crate::domain::certificate::certificate_id(certificate_pem)
            .map_err(|e| PortError::new(ErrorKind::Invalid, IotOp::RegisterCertificate.into(), e.to_string()))?;
        let now = self.clock.now();
        self.with(|r| {
            if let Some(ca) = ca_certificate_pem
                && !r.cas.values().any(|p| p == ca)
            {
                return Err(PortError::new(
                    ErrorKind::Invalid,
                    IotOp::RegisterCertificate.into(),
                    "CA is not registered",
                ));
            }
            if r.certificates.contains_key(id.as_str()) {
                return Err(PortError::new(
                    ErrorKind::AlreadyExists,
                    IotOp::RegisterCertificate.into(),
                    "certificate exists",
                ));
            }
            Ok(r.new_certificate(Some(id.to_string()), certificate_pem.to_owned(), active, now))
        })
    }

    async fn register_certificate_without_ca(
        &self,
        certificate_pem: &str,
        active: bool,
    ) -> Result<IssuedCertificate, PortError> {
        self.enter(IotOp::RegisterCertificateWithoutCA).await?;
        let id = crate::domain::certificate::certificate_id(certificate_pem).map_err(|e| {
            PortError::new(ErrorKind::Invalid, IotOp::RegisterCertificateWithoutCA.into(), e.to_string())
        })?;
        let now = self.clock.now();
        self.with(|r| {
            if r.certificates.contains_key(id.as_str()) {
                return Err(PortError::new(
                    ErrorKind::AlreadyExists,
                    IotOp::RegisterCertificateWithoutCA.into(),
                    "certificate exists",
                ));
            }
            Ok(r.new_certificate(Some(id.to_string()), certificate_pem.to_owned(), active, now))
        })
    }

    async fn ca_certificate_pem(&self, ca_certificate_id: &str) -> Result<String, PortError> {
        self.enter(IotOp::DescribeCACertificate).await?;
        self.with(|r| {
            r.cas
                .get(ca_certificate_id)
                .cloned()
                .ok_or_else(|| not_found(IotOp::DescribeCACertificate, ca_certificate_id))
        })
    }

    async fn recent_inactive_certificates(&self, since: Timestamp) -> Result<Vec<CertificateInfo>, PortError> {
        self.enter(IotOp::ListCertificates).await?;
        Ok(self.with(|r| {
            r.certificates
                .values()
                .filter(|c| c.certificate_status == CertificateStatus::Inactive)
                .filter(|c| c.created_at.is_some_and(|at| at >= since))
                .cloned()
                .collect()
        }))
    }
}
