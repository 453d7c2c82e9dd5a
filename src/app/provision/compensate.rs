//! Compensation: after a permanent failure, what this command made is undone, newest first.
//! Each undo step is idempotent (what is already gone counts as undone) and is repeated while
//! it fails in a way that could pass; what still cannot be undone is named in the command's
//! error, so that nothing is left behind silently.

use super::Provisioner;
use crate::app::progress::Progress;
use crate::app::retry::RetrySchedule;

const UNDO: RetrySchedule = RetrySchedule::UNDO;
use crate::domain::template::plan::Plan;
use crate::domain::{CertificateStatus, ThingName};
use crate::ports::{ErrorKind, PortError};

impl Provisioner<'_> {
    /// Undoes what this command made, newest first. Returns what was undone and what could
    /// not be (certificates stay INACTIVE until the last step, so none is left ACTIVE). Every
    /// undo step is fenced like any other effect: once the lease is lost compensation stops,
    /// since what it would undo may be the new holder's.
    pub(super) async fn compensate(&self, plan: &Plan, legacy_secret_name: &str, progress: &Progress<'_>) -> Undone {
        let mut undone = Undone::default();
        let saved = progress.saved();
        let certificate = &saved.certificate;
        let thing = &saved.thing;
        let name = plan.thing.as_ref().and_then(|t| ThingName::parse(&t.thing_name).ok());
        if let (Some(cert), Some(name)) = (certificate, &name)
            && saved.attached
        {
            let result =
                UNDO.run_when(could_pass, || self.registry.detach_thing_principal(name, &cert.certificate.arn)).await;
            undone.note(format!("detached {}", cert.certificate.certificate_id), result);
        }
        if let Some(cert) = certificate {
            for policy in &plan.policies {
                let Some(step) = saved.policies.get(&policy.policy_name) else { continue };
                if undone.lost {
                    return undone;
                }
                let result = UNDO
                    .run_when(could_pass, || self.registry.detach_policy(&policy.policy_name, &cert.certificate.arn))
                    .await;
                undone.note(format!("detached policy {}", policy.policy_name), result);
                if step.created && !undone.lost {
                    let unused = UNDO
                        .run_when(could_pass, || self.registry.list_policy_targets(&policy.policy_name))
                        .await
                        .map(|t| t.is_empty())
                        .unwrap_or(false);
                    if unused {
                        let result =
                            UNDO.run_when(could_pass, || self.registry.delete_policy(&policy.policy_name)).await;
                        undone.note(format!("deleted policy {}", policy.policy_name), result);
                    }
                }
            }
            if cert.created && !undone.lost {
                let id = &cert.certificate.certificate_id;
                let inactive = UNDO
                    .run_when(could_pass, || self.registry.update_certificate_status(id, CertificateStatus::Inactive))
                    .await;
                if inactive.as_ref().is_err_and(|e| e.kind == ErrorKind::LeaseLost) {
                    undone.lost = true;
                    return undone;
                }
                let result = UNDO.run_when(could_pass, || self.registry.delete_certificate(id)).await;
                undone.note(format!("deleted certificate {id}"), result);
            }
        }
        if let (Some(step), Some(name)) = (thing, &name)
            && step.created
            && !undone.lost
        {
            let result = UNDO.run_when(could_pass, || self.registry.delete_thing(name)).await;
            undone.note(format!("deleted thing {name}"), result);
        }
        if let Some(key) = &saved.key
            && !undone.lost
        {
            // The attempt that made the key named it; a checkpoint from before keys were named
            // per attempt names none, and the key lies under the command's one legacy name.
            let name = key.name.as_deref().unwrap_or(legacy_secret_name);
            let result = UNDO.run_when(could_pass, || self.secrets.delete(name)).await;
            undone.note("deleted the generated key".into(), result);
        }
        undone
    }
}

/// Whether an undo step that failed this way could pass if repeated: a 5xx or throttling, or a
/// conflict while a detach propagates.
fn could_pass(e: &PortError) -> bool {
    e.is_retryable() || e.kind == ErrorKind::Conflict
}

/// What compensation undid, and what it could not.
#[derive(Debug, Default)]
pub(super) struct Undone {
    /// Steps undone (or found undone already).
    pub done: Vec<String>,
    /// Steps that still failed after their repeats: left behind, named in the command's error.
    pub left: Vec<String>,
    /// The lease was lost: compensation stopped, and the attempt stops too.
    pub lost: bool,
}

impl Undone {
    fn note(&mut self, what: String, result: Result<(), PortError>) {
        match result {
            Ok(()) => self.done.push(what),
            Err(e) if e.kind == ErrorKind::NotFound => self.done.push(what),
            Err(e) if e.kind == ErrorKind::LeaseLost => self.lost = true,
            Err(e) => {
                tracing::warn!(error = %e, step = %what, "compensation step failed");
                self.left.push(what);
            }
        }
    }
}
