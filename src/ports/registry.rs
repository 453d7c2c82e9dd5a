//! AWS IoT's registry, split by what it manages, so that a use case names what it touches
//! and a fake implements one small trait at a time:
//!
//! - [`Things`]: things, their principals and their groups.
//! - [`Certificates`]: certificates and the CAs registered in IoT.
//! - [`Policies`]: policies and their attachments.
//! - [`ThingRegistration`]: `RegisterThing`, IoT's own evaluation of a template.
//!
//! [`DeviceRegistry`] is all four, for the places that need the whole registry.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use async_trait::async_trait;

use super::PortError;
use crate::domain::registry::{CertificateInfo, GroupInfo, IssuedCertificate, PolicyInfo, Registration, ThingInfo};
use crate::domain::secret::Secret;
use crate::domain::{Arn, CertificateId, CertificateStatus, ThingName, Timestamp};

/// Things, their principals and their groups.
#[async_trait]
pub trait Things: Send + Sync {
    /// Describes a thing; `NotFound` when it does not exist.
    async fn describe_thing(&self, thing: &ThingName) -> Result<ThingInfo, PortError>;
    /// Creates a thing; returns its ARN. `AlreadyExists` when it exists with other properties.
    async fn create_thing(&self, thing: &NewThing) -> Result<String, PortError>;
    /// Replaces or merges a thing's attributes and sets its type (`None`: unchanged).
    async fn update_thing(
        &self,
        thing: &ThingName,
        thing_type: Option<&str>,
        attributes: &BTreeMap<String, String>,
        merge: bool,
    ) -> Result<(), PortError>;
    /// Deletes a thing; `Conflict` while principals are (still) attached.
    async fn delete_thing(&self, thing: &ThingName) -> Result<(), PortError>;
    /// Every principal (certificate ARN, ...) attached to the thing, all pages.
    async fn list_thing_principals(&self, thing: &ThingName) -> Result<Vec<Arn>, PortError>;
    /// Every thing a principal is attached to, all pages.
    async fn list_principal_things(&self, principal: &Arn) -> Result<Vec<String>, PortError>;
    /// Attaches a principal to a thing (idempotent).
    async fn attach_thing_principal(&self, thing: &ThingName, principal: &Arn) -> Result<(), PortError>;
    /// Detaches a principal from a thing.
    async fn detach_thing_principal(&self, thing: &ThingName, principal: &Arn) -> Result<(), PortError>;
    /// The thing groups the thing belongs to directly, all pages (names).
    async fn list_thing_groups_for_thing(&self, thing: &ThingName) -> Result<Vec<String>, PortError>;
    /// Describes a thing group.
    async fn describe_thing_group(&self, group: &str) -> Result<GroupInfo, PortError>;
    /// Adds a thing to a static thing group (idempotent).
    async fn add_thing_to_thing_group(&self, thing: &ThingName, group: &str) -> Result<(), PortError>;
    /// Removes a thing from a static thing group.
    async fn remove_thing_from_thing_group(&self, thing: &ThingName, group: &str) -> Result<(), PortError>;
    /// Adds a thing to a billing group.
    async fn add_thing_to_billing_group(&self, thing: &ThingName, group: &str) -> Result<(), PortError>;
}

/// Certificates, and the CA certificates registered in IoT.
#[async_trait]
pub trait Certificates: Send + Sync {
    /// Describes a certificate.
    async fn describe_certificate(&self, id: &CertificateId) -> Result<CertificateInfo, PortError>;
    /// Sets a certificate's status.
    async fn update_certificate_status(&self, id: &CertificateId, status: CertificateStatus) -> Result<(), PortError>;
    /// Deletes an inactive, detached certificate.
    async fn delete_certificate(&self, id: &CertificateId) -> Result<(), PortError>;
    /// `CreateCertificateFromCsr`: AWS signs the CSR. Not idempotent.
    async fn create_certificate_from_csr(&self, csr_pem: &str, active: bool) -> Result<IssuedCertificate, PortError>;
    /// `CreateKeysAndCertificate`: AWS makes the key too (and shows it once). Not idempotent.
    async fn create_keys_and_certificate(&self, active: bool) -> Result<AwsGeneratedKey, PortError>;
    /// `RegisterCertificate`: a certificate signed by a CA registered in IoT; `AlreadyExists`
    /// when it is registered already (its id is the DER's hash).
    async fn register_certificate(
        &self,
        certificate_pem: &str,
        ca_certificate_pem: Option<&str>,
        active: bool,
    ) -> Result<IssuedCertificate, PortError>;
    /// `RegisterCertificateWithoutCA`.
    async fn register_certificate_without_ca(
        &self,
        certificate_pem: &str,
        active: bool,
    ) -> Result<IssuedCertificate, PortError>;
    /// The PEM of a CA certificate registered in IoT.
    async fn ca_certificate_pem(&self, ca_certificate_id: &str) -> Result<String, PortError>;
    /// INACTIVE certificates created at or after `since`, with their PEMs and creation dates:
    /// the candidates when a resumed attempt looks for the certificate its crashed predecessor
    /// requested but never recorded. Costs a read of every certificate made since `since`, so
    /// `since` is the note before the request, not earlier.
    async fn recent_inactive_certificates(&self, since: Timestamp) -> Result<Vec<CertificateInfo>, PortError>;
}

/// Policies and what they are attached to.
#[async_trait]
pub trait Policies: Send + Sync {
    /// Reads a policy and its default document.
    async fn get_policy(&self, policy: &str) -> Result<PolicyInfo, PortError>;
    /// Creates a policy; `AlreadyExists` when the name is taken.
    async fn create_policy(&self, policy: &str, document: &str) -> Result<(), PortError>;
    /// Deletes a policy (and its non-default versions).
    async fn delete_policy(&self, policy: &str) -> Result<(), PortError>;
    /// Attaches a policy to a target (idempotent).
    async fn attach_policy(&self, policy: &str, target: &Arn) -> Result<(), PortError>;
    /// Detaches a policy from a target.
    async fn detach_policy(&self, policy: &str, target: &Arn) -> Result<(), PortError>;
    /// Names of the policies attached to a target, all pages.
    async fn list_attached_policies(&self, target: &Arn) -> Result<Vec<String>, PortError>;
    /// Every target a policy is attached to, all pages.
    async fn list_policy_targets(&self, policy: &str) -> Result<Vec<Arn>, PortError>;
}

/// `RegisterThing`: IoT evaluates a template itself (the `registerThing` execution mode).
#[async_trait]
pub trait ThingRegistration: Send + Sync {
    /// Registers what `template_body` describes with `parameters`.
    async fn register_thing(
        &self,
        template_body: &str,
        parameters: &BTreeMap<String, String>,
    ) -> Result<Registration, PortError>;
}

/// The whole registry.
pub trait DeviceRegistry: Things + Certificates + Policies + ThingRegistration {}

impl<T: Things + Certificates + Policies + ThingRegistration> DeviceRegistry for T {}

/// The IoT API operations the registry ports call: the unit of AWS's rate quotas.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    strum::IntoStaticStr,
    strum::VariantArray,
    strum::EnumString,
)]
#[allow(missing_docs)] // the API names say it
pub enum IotOperation {
    DescribeThing,
    CreateThing,
    UpdateThing,
    DeleteThing,
    ListThingPrincipals,
    ListPrincipalThings,
    AttachThingPrincipal,
    DetachThingPrincipal,
    ListThingGroupsForThing,
    DescribeThingGroup,
    AddThingToThingGroup,
    RemoveThingFromThingGroup,
    AddThingToBillingGroup,
    DescribeCertificate,
    UpdateCertificate,
    DeleteCertificate,
    CreateCertificateFromCsr,
    CreateKeysAndCertificate,
    RegisterCertificate,
    RegisterCertificateWithoutCA,
    DescribeCACertificate,
    ListCertificates,
    GetPolicy,
    CreatePolicy,
    DeletePolicy,
    AttachPolicy,
    DetachPolicy,
    ListAttachedPolicies,
    ListTargetsForPolicy,
    /// Called by `DeletePolicy`'s adapter before the delete (rate-limited with it).
    ListPolicyVersions,
    /// Called by `DeletePolicy`'s adapter before the delete (rate-limited with it).
    DeletePolicyVersion,
    RegisterThing,
}

impl IotOperation {
    /// Every operation.
    pub const ALL: &'static [IotOperation] = <Self as strum::VariantArray>::VARIANTS;

    /// The operation's API name (`CreateThing`): how quotas are configured.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The operation as port errors and the throttle metric name it: `iot:CreateThing`.
    pub fn op(self) -> &'static str {
        static QUALIFIED: LazyLock<Vec<String>> =
            LazyLock::new(|| IotOperation::ALL.iter().map(|op| format!("iot:{}", op.as_str())).collect());
        &QUALIFIED[self as usize]
    }

    /// AWS IoT's default quota for the operation, in calls per second per account (AWS IoT
    /// Core endpoints and quotas, as listed by the service's documentation and the Thingpress
    /// project's audit, 2025). Operations without a published figure get a conservative 10.
    pub fn default_rate(self) -> u32 {
        match self {
            Self::DescribeThing => 350,
            Self::CreateThing | Self::AttachThingPrincipal | Self::AddThingToThingGroup => 100,
            Self::DeleteThing
            | Self::DetachThingPrincipal
            | Self::DetachPolicy
            | Self::AttachPolicy
            | Self::CreateCertificateFromCsr
            | Self::ListAttachedPolicies => 15,
            _ => 10,
        }
    }
}

/// A thing to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewThing {
    /// Name.
    pub name: ThingName,
    /// Type (must exist).
    pub thing_type: Option<String>,
    /// Attributes.
    pub attributes: BTreeMap<String, String>,
}

/// What `CreateKeysAndCertificate` returns: the only time AWS shows the private key.
#[derive(Debug)]
pub struct AwsGeneratedKey {
    /// The certificate.
    pub certificate: IssuedCertificate,
    /// Its private key.
    pub private_key: Secret,
    /// Its public key (PEM).
    pub public_key_pem: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_named_from_its_variant() {
        for &op in IotOperation::ALL {
            assert_eq!(op.op(), format!("iot:{}", op.as_str()));
            assert_eq!(op.as_str().parse::<IotOperation>().ok(), Some(op));
        }
    }
}
