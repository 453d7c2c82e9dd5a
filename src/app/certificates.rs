//! `updateThingCertificates`: set one status on every certificate attached to a thing.
//!
//! All certificates are read first and the whole request is refused if any transition is
//! impossible (a revoked certificate cannot come back), so the command never stops half-way
//! for that reason. Certificates already in the requested state are left untouched, which
//! makes a re-run cheap and harmless.

use super::{ignore_not_found, thing_error};
use crate::domain::registry::{CertificateChange, CertificatesUpdated};
use crate::domain::{CertificateStatus, CommandError, ErrorCode, Location, ThingName};
use crate::ports::{Certificates, Things};

/// Sets `status` on every certificate attached to `thing`: reads the thing's principals, reads
/// and updates certificates.
pub async fn update_thing_certificates<R: Things + Certificates + ?Sized>(
    registry: &R,
    thing: &ThingName,
    status: CertificateStatus,
) -> Result<CertificatesUpdated, CommandError> {
    if !CertificateStatus::SETTABLE.contains(&status) {
        return Err(CommandError::new(
            ErrorCode::ValidationFailed,
            format!("certificate status {status} cannot be set; use ACTIVE, INACTIVE or REVOKED"),
        )
        .at(Location::payload().child("certificateStatus")));
    }
    let principals = registry.list_thing_principals(thing).await.map_err(thing_error(thing))?;
    let mut certificates = Vec::new();
    for id in principals.iter().filter_map(|p| p.certificate_id()) {
        certificates.push(registry.describe_certificate(&id).await.map_err(|e| e.to_command_error())?);
    }
    if let Some(stuck) = certificates.iter().find(|c| !c.certificate_status.can_become(status)) {
        return Err(CommandError::new(
            ErrorCode::InvalidState,
            format!(
                "certificate {} is {} and cannot become {status}; no certificate was changed",
                stuck.certificate_id, stuck.certificate_status
            ),
        ));
    }
    let mut changes = Vec::with_capacity(certificates.len());
    for cert in certificates {
        let changed = cert.certificate_status != status;
        if changed {
            ignore_not_found(registry.update_certificate_status(&cert.certificate_id, status).await)
                .map_err(|e| e.to_command_error())?;
        }
        changes.push(CertificateChange {
            certificate_id: cert.certificate_id,
            previous_status: cert.certificate_status,
            changed,
        });
    }
    Ok(CertificatesUpdated { thing_name: thing.to_string(), certificate_status: status, certificates: changes })
}
