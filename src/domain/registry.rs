//! What the IoT registry knows about things, certificates, policies and groups, in the
//! shapes the CDF v1.0.0 API returns them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::thing::{Arn, CertificateId, CertificateStatus};
use super::time::Timestamp;

/// A thing as the registry describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThingInfo {
    /// Thing name.
    pub thing_name: String,
    /// Thing ARN.
    pub arn: String,
    /// Thing type, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thing_type: Option<String>,
    /// Searchable attributes.
    pub attributes: BTreeMap<String, String>,
}

/// A certificate (the seed's `Certificate` schema, with IoT's real status).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateInfo {
    /// Certificate id (SHA-256 of the DER on AWS).
    pub certificate_id: CertificateId,
    /// Certificate ARN.
    pub arn: Arn,
    /// Current status; REVOKED stays REVOKED (CDF collapsed it to INACTIVE).
    pub certificate_status: CertificateStatus,
    /// The certificate itself (public).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_pem: Option<String>,
    /// When IoT made or registered it (its `creationDate`), if the registry said: what tells
    /// the certificate a command requested from one the device had before. Not part of the
    /// API's answers.
    #[serde(skip)]
    pub created_at: Option<Timestamp>,
}

/// An IoT policy (the seed's `IotPolicy` schema).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyInfo {
    /// Policy name.
    pub policy_name: String,
    /// Policy ARN.
    pub arn: String,
    /// The default version's document, as IoT stores it (a JSON string).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_document: Option<String>,
}

/// A thing group (the seed's `IotGroup` schema).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupInfo {
    /// Group name.
    pub group_name: String,
    /// Group ARN.
    pub arn: String,
    /// The group's attributes (CDF always returned `{}` here by mistake).
    pub attributes: BTreeMap<String, String>,
}

/// The result of `getThing`: the seed's `Thing` schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThingDescription {
    /// Thing name.
    pub thing_name: String,
    /// Thing ARN.
    pub arn: String,
    /// Thing type, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thing_type: Option<String>,
    /// Thing attributes.
    pub attributes: BTreeMap<String, String>,
    /// Every certificate attached to the thing.
    pub certificates: Vec<CertificateInfo>,
    /// Every policy attached to those certificates, once each.
    pub policies: Vec<PolicyInfo>,
    /// The groups the thing belongs to directly.
    pub groups: Vec<GroupInfo>,
}

/// The result of `deleteThing`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThingDeleted {
    /// Thing name.
    pub thing_name: String,
    /// True when a redelivered command found the thing already gone.
    pub already_deleted: bool,
    /// Principals detached from the thing.
    pub detached_principals: Vec<Arn>,
    /// Certificates deactivated and deleted.
    pub deleted_certificates: Vec<CertificateId>,
    /// Certificates left in place (used by another thing, or deletion turned off).
    pub kept_certificates: Vec<CertificateId>,
    /// Policies deleted because nothing else used them.
    pub deleted_policies: Vec<String>,
}

/// One certificate's change in `updateThingCertificates`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateChange {
    /// Certificate id.
    pub certificate_id: CertificateId,
    /// Status before the command.
    pub previous_status: CertificateStatus,
    /// False when the certificate already had the requested status.
    pub changed: bool,
}

/// The result of `updateThingCertificates`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificatesUpdated {
    /// Thing name.
    pub thing_name: String,
    /// The status every attached certificate now has.
    pub certificate_status: CertificateStatus,
    /// Per certificate, what changed.
    pub certificates: Vec<CertificateChange>,
}

/// A certificate IoT created or registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuedCertificate {
    /// IoT's id, for status changes and deletion.
    pub certificate_id: CertificateId,
    /// Its ARN: what policies and things are attached to.
    pub arn: Arn,
    /// The certificate itself, returned to the caller and matched against a CSR's key when
    /// an interrupted attempt's certificate is looked for.
    pub certificate_pem: String,
}

/// What RegisterThing returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Registration {
    /// The certificate PEM, if IoT returned one.
    pub certificate_pem: Option<String>,
    /// IoT's `resourceArns` map.
    pub resource_arns: BTreeMap<String, String>,
}
