//! The `registerThing` mode: CDF's certificate extensions run here, IoT evaluates the template
//! (`RegisterThing`), CDF's extra policies are attached afterwards.

use super::{Provisioned, Provisioner, fail};
use crate::app::progress::Progress;
use crate::domain::checkpoint::{Checkpoint, KeyStep, Registration};
use crate::domain::command::ProvisionRequest;
use crate::domain::result::{ProvisionResult, ResourceArns};
use crate::domain::template::plan::{CertificateSource, Plan};
use crate::domain::{Arn, CommandError, ErrorCode};
use crate::ports::ErrorKind;

impl Provisioner<'_> {
    /// `RegisterThing` mode: CDF's certificate extensions run here, IoT evaluates the template,
    /// CDF's extra policies are attached afterwards.
    pub(super) async fn register_thing(
        &self,
        plan: &Plan,
        request: &ProvisionRequest,
        secret_name: &str,
        progress: &mut Progress<'_>,
    ) -> Result<Provisioned, CommandError> {
        let mut parameters = request.parameters.clone();
        let mut private_key = None;
        let thing_name = plan.thing.as_ref().map(|t| t.thing_name.clone());
        if let Some(spec) = &plan.certificate {
            match &spec.source {
                CertificateSource::CaSigned { ca_id, cert_info, key_algorithm } => {
                    let (pem, ca_pem) = self
                        .ca_signed(
                            ca_id,
                            cert_info,
                            *key_algorithm,
                            thing_name.as_deref(),
                            secret_name,
                            progress,
                            &mut private_key,
                        )
                        .await?;
                    parameters.insert("CertificatePem".into(), pem);
                    parameters.insert("CaCertificatePem".into(), ca_pem);
                }
                CertificateSource::AwsIssued { .. } | CertificateSource::WithoutCa { .. } => {
                    let cert = self
                        .certificate(&spec.source, thing_name.as_deref(), secret_name, progress, &mut private_key)
                        .await?;
                    parameters.insert("CertificateId".into(), cert.certificate.certificate_id.to_string());
                    parameters.insert("CertificateArn".into(), cert.certificate.arn.to_string());
                    // CDF passed the device certificate under this name too.
                    parameters.insert("CaCertificatePem".into(), cert.certificate.certificate_pem);
                }
                _ => {}
            }
        }
        let Registration { certificate_pem, resource_arns: arns } = match progress.saved().registered.clone() {
            Some(done) => done,
            None => {
                let body = progress.saved().template_body.clone().unwrap_or_default();
                let done = self.registry.register_thing(&body, &parameters).await.map_err(|e| {
                    if e.is_retryable() || e.kind == ErrorKind::Permanent {
                        fail(e)
                    } else {
                        CommandError::new(ErrorCode::InvalidRequest, format!("IoT refused the registration: {e}"))
                    }
                })?;
                progress.save(Checkpoint::Registered(done.clone())).await?;
                done
            }
        };
        let find = |shape: &str| arns.values().find(|a| a.contains(shape)).cloned();
        let certificate_arn = find(":cert/");
        let mut attached = Vec::new();
        if let Some(cert_arn) = &certificate_arn {
            // The template's own policies were attached by IoT; CDF's extras are ours.
            for policy in plan.policies.iter().filter(|p| p.is_cdf_extension()) {
                if let Some(document) = &policy.document {
                    match self.registry.create_policy(&policy.policy_name, document).await {
                        Ok(()) => {}
                        Err(e) if e.kind == ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(fail(e)),
                    }
                }
                self.registry.attach_policy(&policy.policy_name, &Arn::new(cert_arn)).await.map_err(fail)?;
                attached.push(policy.policy_name.clone());
            }
        }
        let key: Option<KeyStep> = progress.saved().key.clone();
        Ok(Provisioned {
            result: ProvisionResult {
                certificate_pem,
                public_key: key.as_ref().map(|k| k.public_key_pem.clone()),
                private_key_secret: key.map(|k| k.secret),
                resource_arns: ResourceArns {
                    thing: find(":thing/"),
                    certificate: certificate_arn.clone(),
                    policy_logical_name: arns.get("PolicyLogicalName").cloned().or_else(|| find(":policy/")),
                },
                thing_name,
                certificate_id: certificate_arn.and_then(|a| Arn::new(a).certificate_id()),
                policies: attached,
                thing_groups: Vec::new(),
            },
            private_key,
        })
    }
}
