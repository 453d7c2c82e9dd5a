//! The device certificate: from a CSR, AWS-issued, registered (with or without a CA), or signed
//! here with the deployment's CA; and the key made here when the source needs one.
//!
//! `CreateCertificateFromCsr` is not idempotent, takes no request token and makes a certificate
//! that cannot be tagged, with a serial IoT picks: nothing this command could write before the
//! request names the certificate it gets. So the command notes its request first (the public
//! key, and when), and a resumed attempt that finds the note *adopts* a certificate as made here
//! only when the note identifies it, which takes all of:
//!
//! - the CSR's public key;
//! - IoT's creation date within the note's window: from [`CLOCK_ALLOWANCE`] before the note
//!   to [`REQUEST_WINDOW`] after it (and the allowance again). A certificate the device had before the command (its
//!   production certificate, for a device that keeps its key pair) is older and never fits;
//! - attached to no thing, or only to this command's own thing (the last step attaches it
//!   before it activates it): a certificate another command attached elsewhere is not ours;
//! - the only certificate that fits: two that fit (two commands with one CSR asking at
//!   nearly the same moment) cannot be told apart, so neither is adopted and a new one is
//!   requested; the two are left as they are (INACTIVE, unable to connect, unless the command
//!   that made one activated it) and logged.
//!
//! A certificate that does not qualify is never taken as made here, so compensation never
//! detaches, deactivates or deletes it. For a key made here (`createDeviceAWSCertificate`) the
//! public key alone is this command's; for a caller's CSR it is not, and the window is what
//! separates commands: two commands with one CSR whose notes fall within one window, one of which
//! died before its request was sent, can still take the other's certificate.

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

/// How long before its note a certificate's IoT creation date may be and still be the one the
/// note announced. The note is written before the request, so only the difference between this
/// host's clock and IoT's (both synchronised) and IoT's whole-second dates can put it earlier:
/// seconds. Not minutes: a certificate the device already had for the same key, made shortly
/// before the command, must fall outside.
const CLOCK_ALLOWANCE: Duration = Duration::from_secs(5);

/// How long after its note the request may make its certificate and still be found again: the
/// wait for a token of `CreateCertificateFromCsr`'s quota, throttled repeats and the call itself.
/// An attempt whose request answers later saves the certificate at once instead of deferring
/// it, since a resumed attempt would not recognise it. Short, because it is also how close two
/// commands with one CSR may ask and still be told apart.
const REQUEST_WINDOW: Duration = Duration::from_secs(30);

/// A certificate obtained from a CSR, and whether a resumed attempt would find it again by the
/// note (so its checkpoint may wait for the next write).
struct FromCsr {
    step: CertificateStep,
    found_again: bool,
}

impl Provisioner<'_> {
    /// Obtains the certificate (checkpoint `certificate`), making and delivering a key first
    /// when the source needs one (checkpoint `key`).
    ///
    /// One obtained here from a CSR for a thing is deferred: a resumed attempt finds it again
    /// by the note before its request (see the module's documentation); any other certificate
    /// is saved at once.
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
        let mut found_again = false;
        let issued = match source {
            CertificateSource::Csr { csr } => {
                let obtained = self.certificate_from_csr(csr, thing_name, progress).await?;
                found_again = obtained.found_again;
                obtained.step
            }
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
                let obtained = self.certificate_from_csr(&csr, thing_name, progress).await?;
                found_again = obtained.found_again;
                obtained.step
            }
            CertificateSource::CaSigned { ca_id, cert_info, key_algorithm } => {
                let (pem, ca_pem) = self
                    .ca_signed(ca_id, cert_info, *key_algorithm, thing_name, secret_name, progress, private_key)
                    .await?;
                self.register(&pem, Some(&ca_pem), true).await?
            }
        };
        if found_again && thing_name.is_some() {
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
    /// the note identifies (see the module's documentation) instead of asking again.
    async fn certificate_from_csr(
        &self,
        csr: &str,
        thing_name: Option<&str>,
        progress: &mut Progress<'_>,
    ) -> Result<FromCsr, CommandError> {
        let public_key = certificate::csr_public_key(csr).ok().map(hex::encode);
        if let (Some(requested), Some(public_key)) = (progress.saved().certificate_requested.clone(), &public_key)
            && &requested.public_key == public_key
            && let Some(cert) = self.obtained_before(public_key, requested.at_ms, thing_name).await?
        {
            tracing::info!(certificate_id = %cert.certificate_id, "adopting the certificate an interrupted attempt obtained");
            let step = created(IssuedCertificate {
                certificate_id: cert.certificate_id,
                arn: cert.arn,
                certificate_pem: cert.certificate_pem.unwrap_or_default(),
            });
            return Ok(FromCsr { step, found_again: true });
        }
        let Some(public_key) = public_key else {
            // Nothing to recognise it by: saved at once.
            let issued = self.registry.create_certificate_from_csr(csr, false).await.map_err(fail)?;
            return Ok(FromCsr { step: created(issued), found_again: false });
        };
        let at_ms = self.clock.now();
        progress.save(Checkpoint::CertificateRequested(CertificateRequested { public_key, at_ms })).await?;
        let issued = self.registry.create_certificate_from_csr(csr, false).await.map_err(fail)?;
        // Made no later than it answered: within the window if it answered within it.
        let found_again = self.clock.now() <= at_ms + REQUEST_WINDOW;
        Ok(FromCsr { step: created(issued), found_again })
    }

    /// The certificate the note at `noted_at` for `public_key` (hex of its DER) identifies, if
    /// exactly one does: made within the note's window, with that key, INACTIVE (not yet
    /// attached) or among `thing_name`'s principals (attached, maybe activated), and attached
    /// to no other thing.
    async fn obtained_before(
        &self,
        public_key: &str,
        noted_at: crate::domain::Timestamp,
        thing_name: Option<&str>,
    ) -> Result<Option<CertificateInfo>, CommandError> {
        // IoT's clock may differ from this host's either way: the allowance applies at both ends.
        let (from, until) = (noted_at - CLOCK_ALLOWANCE, noted_at + REQUEST_WINDOW + CLOCK_ALLOWANCE);
        let fits = |c: &CertificateInfo| {
            c.created_at.is_some_and(|at| from <= at && at <= until)
                && c.certificate_pem
                    .as_deref()
                    .and_then(|pem| certificate::certificate_public_key(pem).ok())
                    .is_some_and(|key| hex::encode(key) == public_key)
        };
        let mut candidates: Vec<CertificateInfo> =
            self.registry.recent_inactive_certificates(from).await.map_err(fail)?.into_iter().filter(fits).collect();
        // Activated already: then attached to the thing first.
        let thing = thing_name.and_then(|name| ThingName::parse(name).ok());
        if let Some(thing) = &thing {
            let principals = match self.registry.list_thing_principals(thing).await {
                Err(e) if e.kind == ErrorKind::NotFound => Vec::new(),
                other => other.map_err(fail)?,
            };
            for id in principals.iter().filter_map(Arn::certificate_id) {
                if candidates.iter().any(|c| c.certificate_id == id) {
                    continue;
                }
                let cert = self.registry.describe_certificate(&id).await.map_err(fail)?;
                let usable = matches!(cert.certificate_status, CertificateStatus::Inactive | CertificateStatus::Active);
                if usable && fits(&cert) {
                    candidates.push(cert);
                }
            }
        }
        let mut qualifying = Vec::new();
        for cert in candidates {
            let things = match self.registry.list_principal_things(&cert.arn).await {
                Err(e) if e.kind == ErrorKind::NotFound => continue,
                other => other.map_err(fail)?,
            };
            if things.iter().all(|t| thing.as_ref().is_some_and(|ours| ours.as_str() == t)) {
                qualifying.push(cert);
            }
        }
        if qualifying.len() > 1 {
            let ids: Vec<&str> = qualifying.iter().map(|c| c.certificate_id.as_str()).collect();
            tracing::warn!(
                certificates = ?ids,
                "more than one certificate fits the note before the certificate request: none is \
                 adopted, a new one is requested; an INACTIVE one left is for an operator to delete"
            );
            return Ok(None);
        }
        Ok(qualifying.pop())
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
