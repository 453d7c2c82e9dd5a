//! `deleteThing`: detach everything from a thing, clean up what only it used, delete it.
//!
//! Secure by default: a certificate that no other thing uses is detached from its policies,
//! deactivated and deleted, so no ACTIVE certificate outlives its thing; a policy left with
//! no target is deleted. With both options off this is CDF's detach-only behaviour.
//! Every step treats "already gone" as done, so a re-run after a crash finishes the job, and
//! IoT's eventual-consistency conflicts after a detach are retried.

use std::collections::BTreeSet;

use super::retry::RetrySchedule;
use super::{ignore_not_found, thing_error};
use crate::domain::registry::ThingDeleted;
use crate::domain::{CertificateStatus, CommandError, ThingName};
use crate::ports::{Certificates, ErrorKind, Policies, PortError, Things};

/// What to clean up besides the thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeleteOptions {
    /// Deactivate and delete certificates no other thing uses.
    pub delete_certificates: bool,
    /// Delete policies left attached to nothing.
    pub delete_policies: bool,
}

/// Deletes `thing`. `resumed` says whether an earlier attempt of the same command may
/// already have deleted it, in which case a missing thing is success, not "not found".
pub async fn delete_thing<R: Things + Certificates + Policies + ?Sized>(
    registry: &R,
    retry: &RetrySchedule,
    thing: &ThingName,
    options: DeleteOptions,
    resumed: bool,
) -> Result<ThingDeleted, CommandError> {
    let mut report = ThingDeleted { thing_name: thing.to_string(), ..ThingDeleted::default() };
    let principals = match registry.list_thing_principals(thing).await {
        Err(e) if e.kind == ErrorKind::NotFound && resumed => {
            report.already_deleted = true;
            return Ok(report);
        }
        other => other.map_err(thing_error(thing))?,
    };
    let fail = |e: PortError| e.to_command_error();
    let cleanup = options.delete_certificates || options.delete_policies;
    let mut orphan_candidates = BTreeSet::new();

    for principal in &principals {
        let cert_id = principal.certificate_id();
        // Another thing sharing this certificate keeps it, with its policies, untouched.
        let shared = if cleanup && cert_id.is_some() {
            let users = registry.list_principal_things(principal).await.map_err(fail)?;
            // Right after a detach IoT may still list this thing: it does not count.
            users.iter().any(|t| t != thing.as_str())
        } else {
            true
        };
        let remove_certificate = options.delete_certificates && !shared;
        if remove_certificate || (options.delete_policies && !shared) {
            for policy in registry.list_attached_policies(principal).await.map_err(fail)? {
                ignore_not_found(registry.detach_policy(&policy, principal).await).map_err(fail)?;
                if options.delete_policies {
                    orphan_candidates.insert(policy);
                }
            }
        }
        ignore_not_found(registry.detach_thing_principal(thing, principal).await).map_err(fail)?;
        report.detached_principals.push(principal.clone());

        let Some(cert_id) = cert_id else { continue };
        if remove_certificate {
            // IoT deletes only non-ACTIVE certificates; a REVOKED one cannot become INACTIVE.
            match registry.describe_certificate(&cert_id).await {
                Ok(cert) if cert.certificate_status == CertificateStatus::Active => {
                    ignore_not_found(registry.update_certificate_status(&cert_id, CertificateStatus::Inactive).await)
                        .map_err(fail)?;
                }
                Ok(_) => {}
                Err(e) if e.kind == ErrorKind::NotFound => {}
                Err(e) => return Err(fail(e)),
            }
            ignore_not_found(retry.run(|| registry.delete_certificate(&cert_id)).await).map_err(fail)?;
            report.deleted_certificates.push(cert_id);
        } else {
            report.kept_certificates.push(cert_id);
        }
    }

    for policy in orphan_candidates {
        let targets = match registry.list_policy_targets(&policy).await {
            Err(e) if e.kind == ErrorKind::NotFound => continue,
            other => other.map_err(fail)?,
        };
        if targets.is_empty() {
            ignore_not_found(retry.run(|| registry.delete_policy(&policy)).await).map_err(fail)?;
            report.deleted_policies.push(policy);
        }
    }

    ignore_not_found(retry.run(|| registry.delete_thing(thing)).await).map_err(fail)?;
    Ok(report)
}
