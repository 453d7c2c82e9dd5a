//! Typed access to command results in tests; every result read is first checked against
//! `schemas/result.v1.json`, so no test can produce a result the schema does not describe.
#![allow(dead_code, unreachable_pub)]

use cdf_provisioning::domain::CommandRecord;
use cdf_provisioning::domain::registry::{CertificatesUpdated, ThingDeleted, ThingDescription};
use cdf_provisioning::domain::result::{CommandResult, ProvisionResult};
use cdf_provisioning::domain::schema::result_schema;

/// The record's result, checked against the published schema.
pub fn result_of(record: &CommandRecord) -> CommandResult {
    let result = record.result.clone().unwrap_or_else(|| panic!("{} has no result", record.idempotency_key));
    assert_matches_schema(&result);
    result
}

/// Panics with every violation when `result` breaks `schemas/result.v1.json`.
pub fn assert_matches_schema(result: &CommandResult) {
    let document = result.document();
    let violations = result_schema().violations(&document);
    assert!(violations.is_empty(), "result breaks schemas/result.v1.json: {violations:?}\n{document}");
}

/// A `getThing` result.
pub fn described(record: &CommandRecord) -> ThingDescription {
    match result_of(record) {
        CommandResult::GetThing(thing) => thing,
        other => panic!("expected a getThing result, got {other:?}"),
    }
}

/// A `deleteThing` result.
pub fn deleted(record: &CommandRecord) -> ThingDeleted {
    match result_of(record) {
        CommandResult::DeleteThing(deleted) => deleted,
        other => panic!("expected a deleteThing result, got {other:?}"),
    }
}

/// An `updateThingCertificates` result.
pub fn certificates_updated(record: &CommandRecord) -> CertificatesUpdated {
    match result_of(record) {
        CommandResult::UpdateThingCertificates(updated) => updated,
        other => panic!("expected an updateThingCertificates result, got {other:?}"),
    }
}

/// A `provisionThing` result.
pub fn provisioned(record: &CommandRecord) -> ProvisionResult {
    match result_of(record) {
        CommandResult::ProvisionThing(provisioned) => provisioned,
        other => panic!("expected a provisionThing result, got {other:?}"),
    }
}
