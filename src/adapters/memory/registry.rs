//! An in-memory IoT registry: things, certificates, policies, groups and their attachments,
//! with IoT's refusals (deleting an attached thing, an ACTIVE certificate, a policy in use,
//! re-activating a revoked certificate) so that the use cases meet them in tests.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;

use super::Faults;
use std::collections::BTreeMap as Map;

use crate::crypto::Secret;
use crate::domain::registry::{CertificateInfo, GroupInfo, PolicyInfo, ThingInfo};
use crate::domain::{CertificateStatus, ThingName};
use crate::ports::{DeviceRegistry, ErrorKind, IssuedCertificate, NewThing, PortError};

const ARN_PREFIX: &str = "arn:aws:iot:us-east-1:123456789012";

#[derive(Debug, Default)]
struct Registry {
    things: BTreeMap<String, ThingInfo>,
    certificates: BTreeMap<String, CertificateInfo>,
    policies: BTreeMap<String, PolicyInfo>,
    groups: BTreeMap<String, GroupInfo>,
    /// (thing, principal ARN)
    thing_principals: BTreeSet<(String, String)>,
    /// (policy, target ARN)
    policy_targets: BTreeSet<(String, String)>,
    /// (thing, group)
    memberships: BTreeSet<(String, String)>,
    thing_types: BTreeSet<String>,
    billing_groups: BTreeSet<String>,
    /// (thing, billing group)
    billing: BTreeSet<(String, String)>,
    /// CA certificate id → PEM
    cas: BTreeMap<String, String>,
    /// RegisterThing calls: (template body, parameters)
    registered: Vec<(String, BTreeMap<String, String>)>,
    next_id: u64,
}

impl Registry {
    fn new_certificate(&mut self, id: Option<String>, pem: String, active: bool) -> IssuedCertificate {
        self.next_id += 1;
        let id = id.unwrap_or_else(|| format!("{:064x}", self.next_id));
        let arn = format!("{ARN_PREFIX}:cert/{id}");
        let status = if active { CertificateStatus::Active } else { CertificateStatus::Inactive };
        self.certificates.insert(
            id.clone(),
            CertificateInfo {
                certificate_id: id.clone(),
                arn: arn.clone(),
                certificate_status: status,
                certificate_pem: Some(pem.clone()),
            },
        );
        IssuedCertificate { certificate_id: id, arn, certificate_pem: pem }
    }
}

/// The fake registry.
#[derive(Debug, Default)]
pub struct MemoryRegistry {
    inner: Mutex<Registry>,
    /// Failure injection; operations are named after the IoT API (`DeleteThing`, ...).
    pub faults: Faults,
    /// The CA that signs CSRs, made once.
    ca: std::sync::OnceLock<(String, Secret)>,
}

fn not_found(op: &'static str, what: &str) -> PortError {
    PortError::new(ErrorKind::NotFound, op, format!("{what} does not exist"))
}

impl MemoryRegistry {
    fn with<T>(&self, f: impl FnOnce(&mut Registry) -> T) -> T {
        f(&mut self.inner.lock().expect("registry lock"))
    }

    /// Creates a thing.
    pub fn add_thing(&self, name: &str, thing_type: Option<&str>, attributes: &[(&str, &str)]) -> String {
        self.with(|r| {
            let arn = format!("{ARN_PREFIX}:thing/{name}");
            r.things.insert(
                name.to_owned(),
                ThingInfo {
                    thing_name: name.to_owned(),
                    arn: arn.clone(),
                    thing_type: thing_type.map(str::to_owned),
                    attributes: attributes.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
                },
            );
            arn
        })
    }

    /// Creates a certificate; returns its ARN.
    pub fn add_certificate(&self, status: CertificateStatus) -> String {
        self.with(|r| {
            r.next_id += 1;
            let id = format!("{:064x}", r.next_id);
            let arn = format!("{ARN_PREFIX}:cert/{id}");
            r.certificates.insert(
                id.clone(),
                CertificateInfo {
                    certificate_id: id,
                    arn: arn.clone(),
                    certificate_status: status,
                    certificate_pem: Some("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into()),
                },
            );
            arn
        })
    }

    /// Creates a policy.
    pub fn add_policy(&self, name: &str) {
        self.with(|r| {
            r.policies.insert(
                name.to_owned(),
                PolicyInfo {
                    policy_name: name.to_owned(),
                    arn: format!("{ARN_PREFIX}:policy/{name}"),
                    policy_document: Some(r#"{"Version":"2012-10-17","Statement":[]}"#.into()),
                },
            );
        });
    }

    /// Creates a thing group.
    pub fn add_group(&self, name: &str, attributes: &[(&str, &str)]) {
        self.with(|r| {
            r.groups.insert(
                name.to_owned(),
                GroupInfo {
                    group_name: name.to_owned(),
                    arn: format!("{ARN_PREFIX}:thinggroup/{name}"),
                    attributes: attributes.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
                },
            );
        });
    }

    /// Attaches a principal to a thing.
    pub fn attach_thing_principal(&self, thing: &str, principal: &str) {
        self.with(|r| r.thing_principals.insert((thing.to_owned(), principal.to_owned())));
    }

    /// Attaches a policy to a target.
    pub fn attach_policy(&self, policy: &str, target: &str) {
        self.with(|r| r.policy_targets.insert((policy.to_owned(), target.to_owned())));
    }

    /// Adds a thing to a group.
    pub fn add_thing_to_group(&self, thing: &str, group: &str) {
        self.with(|r| r.memberships.insert((thing.to_owned(), group.to_owned())));
    }

    /// Creates a thing type.
    pub fn add_thing_type(&self, name: &str) {
        self.with(|r| r.thing_types.insert(name.to_owned()));
    }

    /// Creates a billing group.
    pub fn add_billing_group(&self, name: &str) {
        self.with(|r| r.billing_groups.insert(name.to_owned()));
    }

    /// Registers a CA certificate under `id`.
    pub fn add_ca(&self, id: &str, pem: &str) {
        self.with(|r| r.cas.insert(id.to_owned(), pem.to_owned()));
    }

    /// Every RegisterThing call: (template body, parameters).
    pub fn register_thing_calls(&self) -> Vec<(String, BTreeMap<String, String>)> {
        self.with(|r| r.registered.clone())
    }

    /// Every certificate, for assertions.
    pub fn certificates(&self) -> Vec<CertificateInfo> {
        self.with(|r| r.certificates.values().cloned().collect())
    }

    /// A thing as stored.
    pub fn thing(&self, name: &str) -> Option<ThingInfo> {
        self.with(|r| r.things.get(name).cloned())
    }

    /// The groups a thing belongs to.
    pub fn groups_of(&self, thing: &str) -> Vec<String> {
        self.with(|r| r.memberships.iter().filter(|(t, _)| t == thing).map(|(_, g)| g.clone()).collect())
    }

    /// The principals attached to a thing.
    pub fn principals_of(&self, thing: &str) -> Vec<String> {
        self.with(|r| r.thing_principals.iter().filter(|(t, _)| t == thing).map(|(_, p)| p.clone()).collect())
    }

    /// The policies attached to a target.
    pub fn policies_of(&self, target: &str) -> Vec<String> {
        self.with(|r| r.policy_targets.iter().filter(|(_, t)| t == target).map(|(p, _)| p.clone()).collect())
    }

    /// Whether a thing exists.
    pub fn has_thing(&self, name: &str) -> bool {
        self.with(|r| r.things.contains_key(name))
    }

    /// Whether a policy exists.
    pub fn has_policy(&self, name: &str) -> bool {
        self.with(|r| r.policies.contains_key(name))
    }

    /// A certificate's status, if it exists.
    pub fn certificate_status(&self, arn: &str) -> Option<CertificateStatus> {
        let id = arn.rsplit('/').next().unwrap_or_default().to_owned();
        self.with(|r| r.certificates.get(&id).map(|c| c.certificate_status))
    }
}

#[async_trait]
impl DeviceRegistry for MemoryRegistry {
    async fn describe_thing(&self, thing: &ThingName) -> Result<ThingInfo, PortError> {
        self.faults.enter("DescribeThing").await?;
        self.with(|r| r.things.get(thing.as_str()).cloned().ok_or_else(|| not_found("DescribeThing", thing.as_str())))
    }

    async fn list_thing_principals(&self, thing: &ThingName) -> Result<Vec<String>, PortError> {
        self.faults.enter("ListThingPrincipals").await?;
        self.with(|r| {
            if !r.things.contains_key(thing.as_str()) {
                return Err(not_found("ListThingPrincipals", thing.as_str()));
            }
            Ok(r.thing_principals.iter().filter(|(t, _)| t == thing.as_str()).map(|(_, p)| p.clone()).collect())
        })
    }

    async fn list_principal_things(&self, principal: &str) -> Result<Vec<String>, PortError> {
        self.faults.enter("ListPrincipalThings").await?;
        self.with(|r| Ok(r.thing_principals.iter().filter(|(_, p)| p == principal).map(|(t, _)| t.clone()).collect()))
    }

    async fn list_thing_groups_for_thing(&self, thing: &ThingName) -> Result<Vec<String>, PortError> {
        self.faults.enter("ListThingGroupsForThing").await?;
        self.with(|r| Ok(r.memberships.iter().filter(|(t, _)| t == thing.as_str()).map(|(_, g)| g.clone()).collect()))
    }

    async fn describe_thing_group(&self, group: &str) -> Result<GroupInfo, PortError> {
        self.faults.enter("DescribeThingGroup").await?;
        self.with(|r| r.groups.get(group).cloned().ok_or_else(|| not_found("DescribeThingGroup", group)))
    }

    async fn describe_certificate(&self, certificate_id: &str) -> Result<CertificateInfo, PortError> {
        self.faults.enter("DescribeCertificate").await?;
        self.with(|r| {
            r.certificates.get(certificate_id).cloned().ok_or_else(|| not_found("DescribeCertificate", certificate_id))
        })
    }

    async fn update_certificate_status(
        &self,
        certificate_id: &str,
        status: CertificateStatus,
    ) -> Result<(), PortError> {
        self.faults.enter("UpdateCertificate").await?;
        self.with(|r| {
            let cert =
                r.certificates.get_mut(certificate_id).ok_or_else(|| not_found("UpdateCertificate", certificate_id))?;
            if !cert.certificate_status.can_become(status) {
                return Err(PortError::new(ErrorKind::Conflict, "UpdateCertificate", "certificate is revoked"));
            }
            cert.certificate_status = status;
            Ok(())
        })
    }

    async fn delete_certificate(&self, certificate_id: &str) -> Result<(), PortError> {
        self.faults.enter("DeleteCertificate").await?;
        self.with(|r| {
            let cert =
                r.certificates.get(certificate_id).ok_or_else(|| not_found("DeleteCertificate", certificate_id))?;
            let arn = cert.arn.clone();
            if cert.certificate_status == CertificateStatus::Active {
                return Err(PortError::new(
                    ErrorKind::Conflict,
                    "DeleteCertificate",
                    "certificate must be deactivated",
                ));
            }
            if r.thing_principals.iter().any(|(_, p)| *p == arn) || r.policy_targets.iter().any(|(_, t)| *t == arn) {
                return Err(PortError::new(ErrorKind::Conflict, "DeleteCertificate", "certificate is attached"));
            }
            r.certificates.remove(certificate_id);
            Ok(())
        })
    }

    async fn list_attached_policies(&self, target: &str) -> Result<Vec<String>, PortError> {
        self.faults.enter("ListAttachedPolicies").await?;
        self.with(|r| Ok(r.policy_targets.iter().filter(|(_, t)| t == target).map(|(p, _)| p.clone()).collect()))
    }

    async fn list_policy_targets(&self, policy: &str) -> Result<Vec<String>, PortError> {
        self.faults.enter("ListTargetsForPolicy").await?;
        self.with(|r| {
            if !r.policies.contains_key(policy) {
                return Err(not_found("ListTargetsForPolicy", policy));
            }
            Ok(r.policy_targets.iter().filter(|(p, _)| p == policy).map(|(_, t)| t.clone()).collect())
        })
    }

    async fn get_policy(&self, policy: &str) -> Result<PolicyInfo, PortError> {
        self.faults.enter("GetPolicy").await?;
        self.with(|r| r.policies.get(policy).cloned().ok_or_else(|| not_found("GetPolicy", policy)))
    }

    async fn detach_policy(&self, policy: &str, target: &str) -> Result<(), PortError> {
        self.faults.enter("DetachPolicy").await?;
        self.with(|r| {
            r.policy_targets.remove(&(policy.to_owned(), target.to_owned()));
            Ok(())
        })
    }

    async fn delete_policy(&self, policy: &str) -> Result<(), PortError> {
        self.faults.enter("DeletePolicy").await?;
        self.with(|r| {
            if !r.policies.contains_key(policy) {
                return Err(not_found("DeletePolicy", policy));
            }
            if r.policy_targets.iter().any(|(p, _)| p == policy) {
                return Err(PortError::new(ErrorKind::Conflict, "DeletePolicy", "policy is attached"));
            }
            r.policies.remove(policy);
            Ok(())
        })
    }

    async fn detach_thing_principal(&self, thing: &ThingName, principal: &str) -> Result<(), PortError> {
        self.faults.enter("DetachThingPrincipal").await?;
        self.with(|r| {
            r.thing_principals.remove(&(thing.to_string(), principal.to_owned()));
            Ok(())
        })
    }

    async fn delete_thing(&self, thing: &ThingName) -> Result<(), PortError> {
        self.faults.enter("DeleteThing").await?;
        self.with(|r| {
            if r.thing_principals.iter().any(|(t, _)| t == thing.as_str()) {
                return Err(PortError::new(
                    ErrorKind::Conflict,
                    "DeleteThing",
                    "thing is still attached to one or more principals",
                ));
            }
            r.memberships.retain(|(t, _)| t != thing.as_str());
            // IoT answers success for a thing that does not exist.
            r.things.remove(thing.as_str());
            Ok(())
        })
    }
    async fn create_thing(&self, thing: &NewThing) -> Result<String, PortError> {
        self.faults.enter("CreateThing").await?;
        self.with(|r| {
            if let Some(t) = &thing.thing_type
                && !r.thing_types.contains(t)
            {
                return Err(not_found("CreateThing", &format!("thing type {t}")));
            }
            if let Some(existing) = r.things.get(thing.name.as_str()) {
                if existing.attributes == thing.attributes && existing.thing_type == thing.thing_type {
                    return Ok(existing.arn.clone());
                }
                return Err(PortError::new(
                    ErrorKind::AlreadyExists,
                    "CreateThing",
                    "thing exists with other properties",
                ));
            }
            let arn = format!("{ARN_PREFIX}:thing/{}", thing.name);
            r.things.insert(
                thing.name.to_string(),
                ThingInfo {
                    thing_name: thing.name.to_string(),
                    arn: arn.clone(),
                    thing_type: thing.thing_type.clone(),
                    attributes: thing.attributes.clone(),
                },
            );
            Ok(arn)
        })
    }

    async fn update_thing(
        &self,
        thing: &ThingName,
        thing_type: Option<&str>,
        attributes: &Map<String, String>,
        merge: bool,
    ) -> Result<(), PortError> {
        self.faults.enter("UpdateThing").await?;
        self.with(|r| {
            let t = r.things.get_mut(thing.as_str()).ok_or_else(|| not_found("UpdateThing", thing.as_str()))?;
            if let Some(tt) = thing_type {
                t.thing_type = Some(tt.to_owned());
            }
            if !merge {
                t.attributes.clear();
            }
            t.attributes.extend(attributes.iter().map(|(k, v)| (k.clone(), v.clone())));
            Ok(())
        })
    }

    async fn add_thing_to_thing_group(&self, thing: &ThingName, group: &str) -> Result<(), PortError> {
        self.faults.enter("AddThingToThingGroup").await?;
        self.with(|r| {
            if !r.groups.contains_key(group) {
                return Err(not_found("AddThingToThingGroup", &format!("thing group {group}")));
            }
            r.memberships.insert((thing.to_string(), group.to_owned()));
            Ok(())
        })
    }

    async fn remove_thing_from_thing_group(&self, thing: &ThingName, group: &str) -> Result<(), PortError> {
        self.faults.enter("RemoveThingFromThingGroup").await?;
        self.with(|r| {
            r.memberships.remove(&(thing.to_string(), group.to_owned()));
            Ok(())
        })
    }

    async fn add_thing_to_billing_group(&self, thing: &ThingName, group: &str) -> Result<(), PortError> {
        self.faults.enter("AddThingToBillingGroup").await?;
        self.with(|r| {
            if !r.billing_groups.contains(group) {
                return Err(not_found("AddThingToBillingGroup", &format!("billing group {group}")));
            }
            r.billing.insert((thing.to_string(), group.to_owned()));
            Ok(())
        })
    }

    async fn create_certificate_from_csr(&self, csr_pem: &str, active: bool) -> Result<IssuedCertificate, PortError> {
        self.faults.enter("CreateCertificateFromCsr").await?;
        if !csr_pem.contains("CERTIFICATE REQUEST") {
            return Err(PortError::new(ErrorKind::Invalid, "CreateCertificateFromCsr", "invalid CSR"));
        }
        // A real certificate for a real CSR (so its public key can be matched); a stand-in otherwise.
        let (ca, key) = self.ca.get_or_init(|| crate::crypto::test_ca("Memory CA").expect("a CA can be made"));
        let signed = crate::crypto::sign_csr(csr_pem, ca, key, 365, time::OffsetDateTime::now_utc()).ok();
        Ok(self.with(|r| {
            let pem = signed.unwrap_or_else(|| {
                format!("-----BEGIN CERTIFICATE-----\nFAKE{}\n-----END CERTIFICATE-----\n", r.next_id)
            });
            r.new_certificate(None, pem, active)
        }))
    }

    async fn recent_inactive_certificates(&self, _since_ms: i64) -> Result<Vec<CertificateInfo>, PortError> {
        self.faults.enter("ListCertificates").await?;
        Ok(self.with(|r| {
            r.certificates.values().filter(|c| c.certificate_status == CertificateStatus::Inactive).cloned().collect()
        }))
    }

    async fn create_keys_and_certificate(
        &self,
        active: bool,
    ) -> Result<(IssuedCertificate, Secret, String), PortError> {
        self.faults.enter("CreateKeysAndCertificate").await?;
        let cert = self.with(|r| {
            let pem = format!("-----BEGIN CERTIFICATE-----\nFAKE{}\n-----END CERTIFICATE-----\n", r.next_id);
            r.new_certificate(None, pem, active)
        });
        Ok((cert, Secret::new("-----BEGIN RSA PRIVATE KEY-----\nFAKE\n".into()), "-----BEGIN PUBLIC KEY-----".into()))
    }

    async fn register_certificate(
        &self,
        certificate_pem: &str,
        ca_certificate_pem: Option<&str>,
        active: bool,
    ) -> Result<IssuedCertificate, PortError> {
        self.faults.enter("RegisterCertificate").await?;
        let id = crate::crypto::certificate_id(certificate_pem)
            .map_err(|e| PortError::new(ErrorKind::Invalid, "RegisterCertificate", e.to_string()))?;
        self.with(|r| {
            if let Some(ca) = ca_certificate_pem
                && !r.cas.values().any(|p| p == ca)
            {
                return Err(PortError::new(ErrorKind::Invalid, "RegisterCertificate", "CA is not registered"));
            }
            if r.certificates.contains_key(&id) {
                return Err(PortError::new(ErrorKind::AlreadyExists, "RegisterCertificate", "certificate exists"));
            }
            Ok(r.new_certificate(Some(id.clone()), certificate_pem.to_owned(), active))
        })
    }

    async fn register_certificate_without_ca(
        &self,
        certificate_pem: &str,
        active: bool,
    ) -> Result<IssuedCertificate, PortError> {
        self.faults.enter("RegisterCertificateWithoutCA").await?;
        let id = crate::crypto::certificate_id(certificate_pem)
            .map_err(|e| PortError::new(ErrorKind::Invalid, "RegisterCertificateWithoutCA", e.to_string()))?;
        self.with(|r| {
            if r.certificates.contains_key(&id) {
                return Err(PortError::new(
                    ErrorKind::AlreadyExists,
                    "RegisterCertificateWithoutCA",
                    "certificate exists",
                ));
            }
            Ok(r.new_certificate(Some(id.clone()), certificate_pem.to_owned(), active))
        })
    }

    async fn ca_certificate_pem(&self, ca_certificate_id: &str) -> Result<String, PortError> {
        self.faults.enter("DescribeCACertificate").await?;
        self.with(|r| {
            r.cas.get(ca_certificate_id).cloned().ok_or_else(|| not_found("DescribeCACertificate", ca_certificate_id))
        })
    }

    async fn create_policy(&self, policy: &str, document: &str) -> Result<(), PortError> {
        self.faults.enter("CreatePolicy").await?;
        self.with(|r| {
            if r.policies.contains_key(policy) {
                return Err(PortError::new(ErrorKind::AlreadyExists, "CreatePolicy", "policy exists"));
            }
            r.policies.insert(
                policy.to_owned(),
                PolicyInfo {
                    policy_name: policy.to_owned(),
                    arn: format!("{ARN_PREFIX}:policy/{policy}"),
                    policy_document: Some(document.to_owned()),
                },
            );
            Ok(())
        })
    }

    async fn attach_policy(&self, policy: &str, target: &str) -> Result<(), PortError> {
        self.faults.enter("AttachPolicy").await?;
        self.with(|r| {
            if !r.policies.contains_key(policy) {
                return Err(not_found("AttachPolicy", &format!("policy {policy}")));
            }
            r.policy_targets.insert((policy.to_owned(), target.to_owned()));
            Ok(())
        })
    }

    async fn attach_thing_principal(&self, thing: &ThingName, principal: &str) -> Result<(), PortError> {
        self.faults.enter("AttachThingPrincipal").await?;
        self.with(|r| {
            if !r.things.contains_key(thing.as_str()) {
                return Err(not_found("AttachThingPrincipal", thing.as_str()));
            }
            r.thing_principals.insert((thing.to_string(), principal.to_owned()));
            Ok(())
        })
    }

    async fn register_thing(
        &self,
        template_body: &str,
        parameters: &Map<String, String>,
    ) -> Result<(Option<String>, Map<String, String>), PortError> {
        self.faults.enter("RegisterThing").await?;
        self.with(|r| {
            r.registered.push((template_body.to_owned(), parameters.clone()));
            let mut arns = Map::new();
            if let Some(name) = parameters.get("ThingName") {
                let arn = format!("{ARN_PREFIX}:thing/{name}");
                r.things.entry(name.clone()).or_insert_with(|| ThingInfo {
                    thing_name: name.clone(),
                    arn: arn.clone(),
                    thing_type: None,
                    attributes: Map::new(),
                });
                arns.insert("thing".to_owned(), arn);
            }
            let pem = parameters.get("CertificateId").and_then(|id| r.certificates.get(id)).map(|c| {
                arns.insert("certificate".to_owned(), c.arn.clone());
                c.certificate_pem.clone().unwrap_or_default()
            });
            Ok((pem, arns))
        })
    }
}
