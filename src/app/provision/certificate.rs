//! The device certificate: from a CSR, AWS-issued, registered (with or without a CA), or signed
//! here with the deployment's CA; and the key made here when the source needs one.

use std::time::Duration;

use super::{Provisioner, created, fail, missing_as};
use crate::app::progress::Progress;
use crate::crypto::{self, Secret};
use crate::domain::certificate;
use crate::domain::checkpoint::{CertificateRequested, CertificateStep, Checkpoint, KeyStep};
use crate::domain::registry::CertificateInfo;
use crate::domain::template::plan::CertificateSource;
use crate::domain::{Arn, CertificateId, CertificateStatus, CommandError, ErrorCode, Location, ThingName};
use crate::ports::{AwsGeneratedKey, ErrorKind, IssuedCertificate};

impl Provisioner<'_> {
    /// Obtains the certificate (checkpoint `certificate`), making and delivering a key first
    /// when the source needs one (checkpoint `key`).
    ///
    /// One obtained here from a CSR for a thing is deferred: a resumed attempt finds it again
    /// by its public key; any other certificate is saved at once.
    pub(super) async fn certificate(
        &self,
        source: &CertificateSource,
        thing_name: Option<&str>,
        secret_name: &str,
        progress: &mut Progress<'_>,
        private_key: &mut Option<Secret>,
    ) -> Result<CertificateStep, CommandError> {
        if let Some(done) = progress.saved().certificate.clone() {
            return Ok(done);
        }
        let issued = match source {
            CertificateSource::Csr { csr } => self.certificate_from_csr(csr, thing_name, progress).await?,
            CertificateSource::Existing { certificate_id } => {
                let info = self.registry.describe_certificate(&CertificateId::new(certificate_id)).await.map_err(
                    missing_as(|_| {
                        CommandError::new(ErrorCode::NotFound, format!("certificate {certificate_id} does not exist"))
                    }),
                )?;
                CertificateStep {
                    certificate: IssuedCertificate {
                        certificate_id: info.certificate_id,
                        arn: info.arn,
                        certificate_pem: info.certificate_pem.unwrap_or_default(),
                    },
                    created: false,
                }
            }
            CertificateSource::Register { certificate_pem, ca_certificate_pem } => {
                self.register(certificate_pem, ca_certificate_pem.as_deref(), true).await?
            }
            CertificateSource::WithoutCa { certificate_pem } => self.register(certificate_pem, None, false).await?,
            CertificateSource::AwsIssued { key_algorithm: None, .. } => {
                let AwsGeneratedKey { certificate, private_key: key, public_key_pem } =
                    self.registry.create_keys_and_certificate(false).await.map_err(fail)?;
                // AWS shows this key once: deliver it before anything else can fail.
                let secret = self.secrets.store(secret_name, &key).await.map_err(fail)?;
                let step = KeyStep { public_key_pem, csr_pem: None, secret, name: Some(secret_name.to_owned()) };
                progress.save(Checkpoint::Key(step)).await?;
                *private_key = Some(key);
                created(certificate)
            }
            CertificateSource::AwsIssued { key_algorithm: Some(algorithm), cert_info } => {
                let key = self.key(*algorithm, cert_info, thing_name, secret_name, progress, private_key).await?;
                let csr = key.csr_pem.unwrap_or_default();
                self.certificate_from_csr(&csr, thing_name, progress).await?
            }
            CertificateSource::CaSigned { ca_id, cert_info, key_algorithm } => {
                let (pem, ca_pem) = self
                    .ca_signed(ca_id, cert_info, *key_algorithm, thing_name, secret_name, progress, private_key)
                    .await?;
                self.register(&pem, Some(&ca_pem), true).await?
            }
        };
        let from_csr = matches!(
            source,
            CertificateSource::Csr { .. } | CertificateSource::AwsIssued { key_algorithm: Some(_), .. }
        );
        if from_csr && issued.created && thing_name.is_some() {
            // Found again without its checkpoint (see `certificate_from_csr`): written with
            // the next step that must be saved, or never if the command ends first.
            progress.defer(Checkpoint::Certificate(issued.clone()));
        } else {
            progress.save(Checkpoint::Certificate(issued.clone())).await?;
        }
        Ok(issued)
    }

    /// CDF `createDeviceCertificate`: a key and CSR made here, signed with the deployment's CA
    /// (checkpoint `signedCertificate`). Returns the device and CA certificates (PEM).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn ca_signed(
        &self,
        ca_id: &str,
        cert_info: &crate::domain::template::plan::CertInfo,
        key_algorithm: crate::domain::template::plan::KeyAlgorithm,
        thing_name: Option<&str>,
        secret_name: &str,
        progress: &mut Progress<'_>,
        private_key: &mut Option<Secret>,
    ) -> Result<(String, String), CommandError> {
        let ca_pem = self.registry.ca_certificate_pem(ca_id).await.map_err(missing_as(|_| {
            CommandError::new(ErrorCode::NotFound, format!("CA certificate {ca_id} is not registered in IoT"))
                .at(Location::payload().child("cdfProvisioningParameters").child("caId"))
        }))?;
        if let Some(pem) = progress.saved().signed_certificate.clone() {
            return Ok((pem, ca_pem));
        }
        // The CA is registered in IoT but its key is not in this deployment's store: the
        // server's misconfiguration, not the caller's fault.
        let ca_key = self.ca_keys.ca_private_key(ca_id).await.map_err(missing_as(|e| {
            CommandError::new(ErrorCode::PermanentFailure, format!("the server has no private key for CA {ca_id}: {e}"))
        }))?;
        let key = self.key(key_algorithm, cert_info, thing_name, secret_name, progress, private_key).await?;
        let days = cert_info.days_expiry.unwrap_or(self.settings.certificate_days);
        // Never beyond the CA's own validity: such a certificate would outlive its chain.
        if let Ok(ca_not_after) = crate::domain::certificate::certificate_not_after(&ca_pem) {
            let not_after = self.now() + time::Duration::days(i64::from(days));
            if not_after > ca_not_after {
                let message = format!(
                    "a certificate valid for {days} days would outlast CA {ca_id}, valid until {}",
                    ca_not_after.date()
                );
                return Err(if cert_info.days_expiry.is_some() {
                    CommandError::new(ErrorCode::ValidationFailed, message).at(super::days_expiry_at())
                } else {
                    CommandError::new(ErrorCode::PermanentFailure, format!("{message} (CDF_CERTIFICATE_EXPIRY_DAYS)"))
                });
            }
        }
        let csr = key.csr_pem.unwrap_or_default();
        let pem = crypto::sign_csr(&csr, &ca_pem, &ca_key, days, self.now())
            .map_err(|e| CommandError::new(ErrorCode::PermanentFailure, format!("cannot sign with CA {ca_id}: {e}")))?;
        // Registering is idempotent by certificate id, so a resumed attempt registers this very
        // certificate instead of signing a second one.
        progress.save(Checkpoint::SignedCertificate(pem.clone())).await?;
        Ok((pem, ca_pem))
    }

    /// `CreateCertificateFromCsr` is not idempotent: the request is noted first (checkpoint
    /// `certificateRequested`), and a resumed attempt that finds the note adopts the certificate
    /// its predecessor obtained for the same public key instead of asking again. That one is
    /// INACTIVE until the device's last step, which activates it after attaching it to the
    /// thing: so it is among the recent INACTIVE certificates, or among the thing's principals.
    pub(super) async fn certificate_from_csr(
        &self,
        csr: &str,
        thing_name: Option<&str>,
        progress: &mut Progress<'_>,
    ) -> Result<CertificateStep, CommandError> {
        let public_key = certificate::csr_public_key(csr).ok().map(hex::encode);
        if let (Some(requested), Some(public_key)) = (progress.saved().certificate_requested.clone(), &public_key)
            && &requested.public_key == public_key
            && let Some(cert) = self.obtained_before(public_key, requested.at_ms, thing_name).await?
        {
            tracing::info!(certificate_id = %cert.certificate_id, "adopting the certificate an interrupted attempt obtained");
            return Ok(created(IssuedCertificate {
                certificate_id: cert.certificate_id,
                arn: cert.arn,
                certificate_pem: cert.certificate_pem.unwrap_or_default(),
            }));
        }
        if let Some(public_key) = public_key {
            let at_ms = self.clock.now();
            progress.save(Checkpoint::CertificateRequested(CertificateRequested { public_key, at_ms })).await?;
        }
        Ok(created(self.registry.create_certificate_from_csr(csr, false).await.map_err(fail)?))
    }

    /// The certificate for `public_key` (hex of its DER) an earlier attempt obtained after its
    /// note at `noted_at`, if any.
    async fn obtained_before(
        &self,
        public_key: &str,
        noted_at: crate::domain::Timestamp,
        thing_name: Option<&str>,
    ) -> Result<Option<CertificateInfo>, CommandError> {
        let ours = |c: &CertificateInfo| {
            c.certificate_pem
                .as_deref()
                .and_then(|pem| certificate::certificate_public_key(pem).ok())
                .is_some_and(|key| hex::encode(key) == public_key)
        };
        // Certificates listed a little before the note still count: clocks differ.
        let recent =
            self.registry.recent_inactive_certificates(noted_at - Duration::from_secs(300)).await.map_err(fail)?;
        if let Some(cert) = recent.into_iter().find(ours) {
            return Ok(Some(cert));
        }
        // Activated already: then attached to the thing first.
        let Some(thing) = thing_name.and_then(|name| ThingName::parse(name).ok()) else { return Ok(None) };
        let principals = match self.registry.list_thing_principals(&thing).await {
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
            other => other.map_err(fail)?,
        };
        for id in principals.iter().filter_map(Arn::certificate_id) {
            let cert = self.registry.describe_certificate(&id).await.map_err(fail)?;
            if ours(&cert) {
                return Ok(Some(cert));
            }
        }
        Ok(None)
    }

    /// Makes a key and CSR and delivers the key to the secret sink (checkpoint `key`).
    pub(super) async fn key(
        &self,
        algorithm: crate::domain::template::plan::KeyAlgorithm,
        info: &crate::domain::template::plan::CertInfo,
        thing_name: Option<&str>,
        secret_name: &str,
        progress: &mut Progress<'_>,
        private_key: &mut Option<Secret>,
    ) -> Result<KeyStep, CommandError> {
        if let Some(step) = progress.saved().key.clone() {
            return Ok(step);
        }
        let info = info.clone();
        let cn = thing_name.unwrap_or("device").to_owned();
        // RSA key generation takes tens of milliseconds: keep it off the async workers.
        let key = tokio::task::spawn_blocking(move || crypto::generate_key_and_csr(algorithm, &info, &cn))
            .await
            .map_err(|e| CommandError::new(ErrorCode::Transient, e.to_string()))?
            .map_err(|e| CommandError::new(ErrorCode::PermanentFailure, format!("cannot make a key: {e}")))?;
        let secret = self.secrets.store(secret_name, &key.private_key).await.map_err(fail)?;
        let step = KeyStep {
            public_key_pem: key.public_key_pem,
            csr_pem: Some(key.csr_pem),
            secret,
            name: Some(secret_name.to_owned()),
        };
        // Written with the note that precedes the certificate request (or the signed
        // certificate): until then a resumed attempt makes a new key under the same name.
        progress.defer(Checkpoint::Key(step.clone()));
        *private_key = Some(key.private_key);
        Ok(step)
    }

    /// Registers a certificate (with its CA, or without one); one an earlier attempt registered
    /// is found again by its id, the hash of its DER.
    pub(super) async fn register(
        &self,
        pem: &str,
        ca_pem: Option<&str>,
        with_ca: bool,
    ) -> Result<CertificateStep, CommandError> {
        let result = if with_ca {
            self.registry.register_certificate(pem, ca_pem, false).await
        } else {
            self.registry.register_certificate_without_ca(pem, false).await
        };
        match result {
            Ok(cert) => Ok(created(cert)),
            Err(e) if e.kind == ErrorKind::AlreadyExists => {
                // Registered by an earlier attempt (or before): the id is the DER's hash.
                let id = certificate::certificate_id(pem)
                    .map_err(|e| CommandError::new(ErrorCode::ValidationFailed, e.to_string()))?;
                let info = self.registry.describe_certificate(&id).await.map_err(fail)?;
                Ok(CertificateStep {
                    certificate: IssuedCertificate {
                        certificate_id: id,
                        arn: info.arn,
                        certificate_pem: pem.to_owned(),
                    },
                    created: info.certificate_status != CertificateStatus::Active,
                })
            }
            Err(e) => Err(fail(e)),
        }
    }
}
