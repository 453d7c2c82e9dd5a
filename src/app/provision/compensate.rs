//! Compensation: after a permanent failure, what this command made is undone, newest first.

use super::Provisioner;
use crate::app::progress::Progress;
use crate::domain::template::plan::Plan;
use crate::domain::{CertificateStatus, ThingName};
use crate::ports::{ErrorKind, PortError};

impl Provisioner<'_> {
    /// Undoes what this command made, newest first. Returns what was undone; failures are
    /// logged (certificates stay INACTIVE until the last step, so none is left ACTIVE).
    pub(super) async fn compensate(&self, plan: &Plan, secret_name: &str, progress: &Progress<'_>) -> Vec<String> {
        let mut undone = Vec::new();
        let mut note = |what: String, result: Result<(), PortError>| match result {
            Ok(()) => undone.push(what),
            Err(e) if e.kind == ErrorKind::NotFound => undone.push(what),
            Err(e) => tracing::warn!(error = %e, step = %what, "compensation step failed"),
        };
        let saved = progress.saved();
        let certificate = &saved.certificate;
        let thing = &saved.thing;
        let name = plan.thing.as_ref().and_then(|t| ThingName::parse(&t.thing_name).ok());
        if let (Some(cert), Some(name)) = (certificate, &name)
            && saved.attached
        {
            note(
                format!("detached {}", cert.certificate.certificate_id),
                self.registry.detach_thing_principal(name, &cert.certificate.arn).await,
            );
        }
        if let Some(cert) = certificate {
            for policy in &plan.policies {
                let Some(step) = saved.policies.get(&policy.policy_name) else { continue };
                note(
                    format!("detached policy {}", policy.policy_name),
                    self.registry.detach_policy(&policy.policy_name, &cert.certificate.arn).await,
                );
                if step.created {
                    let unused = self
                        .registry
                        .list_policy_targets(&policy.policy_name)
                        .await
                        .map(|t| t.is_empty())
                        .unwrap_or(false);
                    if unused {
                        note(
                            format!("deleted policy {}", policy.policy_name),
                            self.registry.delete_policy(&policy.policy_name).await,
                        );
                    }
                }
            }
            if cert.created {
                let id = &cert.certificate.certificate_id;
                let _ = self.registry.update_certificate_status(id, CertificateStatus::Inactive).await;
                note(format!("deleted certificate {id}"), self.registry.delete_certificate(id).await);
            }
        }
        if let (Some(step), Some(name)) = (thing, &name)
            && step.created
        {
            note(format!("deleted thing {name}"), self.registry.delete_thing(name).await);
        }
        if saved.key.is_some() {
            note("deleted the generated key".into(), self.secrets.delete(secret_name).await);
        }
        undone
    }
}
