//! What a command produced, as types: one variant per command, tagged like the command so
//! that a record or event says which command a result belongs to. Serialized only at the
//! edges (the record, the event, the HTTP body), checked against `schemas/result.v1.json`.

use serde::{Deserialize, Serialize};

use super::bulk::BulkTaskView;
use super::registry::{CertificatesUpdated, ThingDeleted, ThingDescription};
use super::thing::CertificateId;

/// A successful command's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "commandType", content = "result", rename_all = "camelCase")]
pub enum CommandResult {
    /// `getThing`.
    GetThing(ThingDescription),
    /// `deleteThing`.
    DeleteThing(ThingDeleted),
    /// `updateThingCertificates`.
    UpdateThingCertificates(CertificatesUpdated),
    /// `provisionThing`.
    ProvisionThing(ProvisionResult),
    /// `bulkProvisionThings`: the accepted task.
    BulkProvisionThings(BulkTaskView),
    /// `provisionBulkChunk`: what the chunk's rows came to.
    ProvisionBulkChunk(ChunkReport),
    /// `cancelBulkTask`: the task after the cancel.
    CancelBulkTask(BulkTaskView),
}

impl CommandResult {
    /// The CloudEvents type announcing this result; `None` for the service's own internal
    /// commands (a task's chunks), whose progress shows in the task instead.
    pub fn event_type(&self) -> Option<&'static str> {
        Some(match self {
            Self::GetThing(_) => "thing.described",
            Self::DeleteThing(_) => "thing.deleted",
            Self::UpdateThingCertificates(_) => "thing.certificates.updated",
            Self::ProvisionThing(_) => "thing.provisioned",
            Self::BulkProvisionThings(_) => "bulk.accepted",
            Self::ProvisionBulkChunk(_) => return None,
            Self::CancelBulkTask(_) => "bulk.cancelling",
        })
    }

    /// The result document alone (`schemas/result.v1.json`), without its tag.
    pub fn document(&self) -> serde_json::Value {
        let mut tagged = serde_json::to_value(self).unwrap_or_default();
        tagged.get_mut("result").map(serde_json::Value::take).unwrap_or_default()
    }
}

/// What one chunk of a bulk task came to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChunkReport {
    /// The task.
    pub task_id: String,
    /// Position of the chunk in the task.
    pub chunk: u32,
    /// Rows provisioned.
    pub succeeded: u32,
    /// Rows failed.
    pub failed: u32,
    /// Rows skipped by a cancel.
    pub skipped: u32,
}

/// The seed's `resourceArns`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceArns {
    /// Thing ARN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thing: Option<String>,
    /// Certificate ARN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// ARN of the template's (first) policy; CDF's name for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_logical_name: Option<String>,
}

/// `provisionThing`'s result: the seed's ProvisionResponse without the private key (which
/// never leaves through a record or an event), plus what was made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProvisionResult {
    /// The device certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_pem: Option<String>,
    /// The device's public key, when the key was made here or by AWS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// Where the generated private key was delivered (a reference, never the key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key_secret: Option<String>,
    /// ARNs, as CDF returned them.
    pub resource_arns: ResourceArns,
    /// Thing name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thing_name: Option<String>,
    /// Certificate id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_id: Option<CertificateId>,
    /// Policies attached to the certificate.
    pub policies: Vec<String>,
    /// Thing groups the thing is in after provisioning.
    pub thing_groups: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_tagged_with_their_command_type() {
        let result = CommandResult::DeleteThing(ThingDeleted { thing_name: "t".into(), ..ThingDeleted::default() });
        let value = serde_json::to_value(&result).unwrap();
        assert_eq!(value["commandType"], "deleteThing");
        assert_eq!(value["result"]["thingName"], "t");
        assert_eq!(result.document()["thingName"], "t");
        assert_eq!(serde_json::from_value::<CommandResult>(value).unwrap(), result);
    }
}
