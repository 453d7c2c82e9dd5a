//! The step mode: the plan's resources made one by one with IoT's primitive APIs, each step
//! checkpointed; the certificate is activated last.

use super::resource_at;
use super::{Provisioned, Provisioner, arn_prefix, fail, missing_as, thing_name_of};
use crate::app::progress::Progress;
use crate::domain::checkpoint::{Checkpoint, KeyStep, PolicyStep};
use crate::domain::result::{ProvisionResult, ResourceArns};
use crate::domain::template::plan::{InitialStatus, Plan};
use crate::domain::{CertificateStatus, CommandError, ErrorCode};
use crate::ports::ErrorKind;

impl Provisioner<'_> {
    /// Runs the plan step by step (the default mode).
    pub(super) async fn run(
        &self,
        plan: &Plan,
        secret_name: &str,
        progress: &mut Progress<'_>,
    ) -> Result<Provisioned, CommandError> {
        let thing_name = plan.thing.as_ref().map(|t| t.thing_name.clone());
        let mut private_key = None;
        let certificate = match &plan.certificate {
            None => None,
            Some(spec) => Some(
                self.certificate(&spec.source, thing_name.as_deref(), secret_name, progress, &mut private_key).await?,
            ),
        };
        let key: Option<KeyStep> = progress.saved().key.clone();

        let thing = match &plan.thing {
            None => None,
            Some(spec) => Some(self.thing(spec, progress).await?),
        };

        let mut attached = Vec::new();
        if let Some(cert) = &certificate {
            for policy in &plan.policies {
                if !progress.saved().policies.contains_key(&policy.policy_name) {
                    let mut created = false;
                    if let Some(document) = &policy.document {
                        match self.registry.create_policy(&policy.policy_name, document).await {
                            Ok(()) => created = true,
                            Err(e) if e.kind == ErrorKind::AlreadyExists => {}
                            Err(e) => return Err(fail(e)),
                        }
                    }
                    self.registry.attach_policy(&policy.policy_name, &cert.certificate.arn).await.map_err(
                        missing_as(|_| {
                            CommandError::new(
                                ErrorCode::NotFound,
                                format!("policy {:?} does not exist", policy.policy_name),
                            )
                            .at(resource_at(&policy.logical_name))
                        }),
                    )?;
                    let step = Checkpoint::Policy(PolicyStep { name: policy.policy_name.clone(), created });
                    if created {
                        // Compensation must know to delete it, even after a crash.
                        progress.save(step).await?;
                    } else {
                        // Attaching again is harmless.
                        progress.defer(step);
                    }
                }
                attached.push(policy.policy_name.clone());
            }
            if let (Some(spec), Some(_)) = (&plan.thing, &thing)
                && !progress.saved().attached
            {
                let name = thing_name_of(spec)?;
                self.registry.attach_thing_principal(&name, &cert.certificate.arn).await.map_err(fail)?;
                progress.defer(Checkpoint::Attached);
            }
            // The last step, and idempotent: a resumed attempt simply activates again.
            let wanted = plan.certificate.as_ref().map(|c| c.status);
            if cert.created && wanted == Some(InitialStatus::Active) {
                self.registry
                    .update_certificate_status(&cert.certificate.certificate_id, CertificateStatus::Active)
                    .await
                    .map_err(fail)?;
            }
        }

        // A thing made here is in exactly the template's groups; only an existing one needs a look.
        let thing_groups = match (&plan.thing, &thing) {
            (Some(spec), Some(step)) if step.created => spec.thing_groups.clone(),
            (Some(spec), Some(_)) => {
                self.registry.list_thing_groups_for_thing(&thing_name_of(spec)?).await.map_err(fail)?
            }
            _ => Vec::new(),
        };
        let policy_arn = plan.policies.iter().find(|p| !p.is_cdf_extension()).map(|p| {
            let account = certificate.as_ref().map(|c| arn_prefix(c.certificate.arn.as_str())).unwrap_or_default();
            format!("{account}:policy/{}", p.policy_name)
        });
        Ok(Provisioned {
            result: ProvisionResult {
                certificate_pem: certificate.as_ref().map(|c| c.certificate.certificate_pem.clone()),
                public_key: key.as_ref().map(|k| k.public_key_pem.clone()),
                private_key_secret: key.map(|k| k.secret),
                resource_arns: ResourceArns {
                    thing: thing.map(|t| t.arn),
                    certificate: certificate.as_ref().map(|c| c.certificate.arn.to_string()),
                    policy_logical_name: policy_arn,
                },
                thing_name,
                certificate_id: certificate.map(|c| c.certificate.certificate_id),
                policies: attached,
                thing_groups,
            },
            private_key: private_key.take(),
        })
    }
}
