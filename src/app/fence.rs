//! Fencing: an attempt at a command acts only while it holds the command's lease.
//!
//! The lease guards the command's record; the fence guards everything else the attempt does.
//! Before every call that creates, changes or deletes something in AWS IoT or the secret store,
//! the attempt reads its record (strongly consistent) and goes on only if the record is still
//! in progress under this attempt's token. Otherwise the call fails with
//! [`ErrorKind::LeaseLost`] and the attempt stops: it neither compensates nor records
//! anything, the attempt holding the lease finishes the command. A lease that has run out
//! but is still this attempt's (no one took it over) is renewed before the call.
//!
//! What a check cannot close is a call already on its way when the lease moves: the overlap of
//! a stale attempt and its successor is at most that one call, never a sequence of steps.
//! Reads pass through unchecked.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use crate::domain::record::CommandStatus;
use crate::domain::registry::{CertificateInfo, GroupInfo, IssuedCertificate, PolicyInfo, Registration, ThingInfo};
use crate::domain::secret::Secret;
use crate::domain::{Arn, CertificateId, CertificateStatus, IdempotencyKey, LeaseToken, ThingName, Timestamp};
use crate::ports::registry::{Certificates, Policies, ThingRegistration, Things};
use crate::ports::{AwsGeneratedKey, Clock, DeviceRegistry, ErrorKind, NewThing, PortError, SecretSink, StateStore};

/// The lease an attempt holds, checked before each of its effects.
#[derive(Clone, Copy)]
pub struct Fence<'a> {
    pub(crate) state: &'a dyn StateStore,
    pub(crate) key: &'a IdempotencyKey,
    pub(crate) token: &'a LeaseToken,
    clock: &'a dyn Clock,
    lease: Duration,
}

impl<'a> Fence<'a> {
    /// The fence of the attempt holding `key`'s lease with `token`, for `lease` at a time.
    pub fn new(
        state: &'a dyn StateStore,
        key: &'a IdempotencyKey,
        token: &'a LeaseToken,
        clock: &'a dyn Clock,
        lease: Duration,
    ) -> Self {
        Self { state, key, token, clock, lease }
    }

    /// Succeeds while this attempt holds the lease; [`ErrorKind::LeaseLost`] once another
    /// attempt holds it or the command is finished. `op` names the call about to be made.
    pub async fn check(&self, op: &'static str) -> Result<(), PortError> {
        let record = self.state.get(self.key).await?;
        let held = record
            .as_ref()
            .is_some_and(|r| r.status == CommandStatus::InProgress && r.lease_token.as_ref() == Some(self.token));
        if !held {
            return Err(lost(op));
        }
        let now = self.clock.now();
        if record.is_some_and(|r| r.lease_expires_at_ms <= now) {
            // Run out (a pause, a slow call) but not taken over: take it up again before
            // acting, so no successor can start while this call runs.
            self.state
                .renew_lease(self.key, self.token, now + self.lease)
                .await
                .map_err(|e| if e.kind == ErrorKind::ConditionFailed { lost(op) } else { e })?;
        }
        Ok(())
    }
}

/// [`Fence::check`] when there is a fence; a call without a record is unfenced.
async fn check_if_fenced(fence: Option<&Fence<'_>>, op: &'static str) -> Result<(), PortError> {
    match fence {
        Some(fence) => fence.check(op).await,
        None => Ok(()),
    }
}

/// The error of an effect refused because the attempt no longer holds the lease.
pub fn lost(op: &'static str) -> PortError {
    PortError::new(ErrorKind::LeaseLost, op, "this attempt no longer holds the command's lease; it stops")
}

/// The registry as an attempt sees it: every call that changes something is fenced first.
pub struct FencedRegistry<'a> {
    inner: &'a dyn DeviceRegistry,
    fence: Option<Fence<'a>>,
}

impl<'a> FencedRegistry<'a> {
    /// `inner`, fenced by `fence` (`None`: a synchronous call without a record, unfenced).
    pub fn new(inner: &'a dyn DeviceRegistry, fence: Option<Fence<'a>>) -> Self {
        Self { inner, fence }
    }

    async fn check(&self, op: &'static str) -> Result<(), PortError> {
        check_if_fenced(self.fence.as_ref(), op).await
    }
}

#[async_trait]
impl Things for FencedRegistry<'_> {
    async fn describe_thing(&self, thing: &ThingName) -> Result<ThingInfo, PortError> {
        self.inner.describe_thing(thing).await
    }

    async fn create_thing(&self, thing: &NewThing) -> Result<String, PortError> {
        self.check("iot:CreateThing").await?;
        self.inner.create_thing(thing).await
    }

    async fn update_thing(
        &self,
        thing: &ThingName,
        thing_type: Option<&str>,
        attributes: &BTreeMap<String, String>,
        merge: bool,
    ) -> Result<(), PortError> {
        self.check("iot:UpdateThing").await?;
        self.inner.update_thing(thing, thing_type, attributes, merge).await
    }

    async fn delete_thing(&self, thing: &ThingName) -> Result<(), PortError> {
        self.check("iot:DeleteThing").await?;
        self.inner.delete_thing(thing).await
    }

    async fn list_thing_principals(&self, thing: &ThingName) -> Result<Vec<Arn>, PortError> {
        self.inner.list_thing_principals(thing).await
    }

    async fn list_principal_things(&self, principal: &Arn) -> Result<Vec<String>, PortError> {
        self.inner.list_principal_things(principal).await
    }

    async fn attach_thing_principal(&self, thing: &ThingName, principal: &Arn) -> Result<(), PortError> {
        self.check("iot:AttachThingPrincipal").await?;
        self.inner.attach_thing_principal(thing, principal).await
    }

    async fn detach_thing_principal(&self, thing: &ThingName, principal: &Arn) -> Result<(), PortError> {
        self.check("iot:DetachThingPrincipal").await?;
        self.inner.detach_thing_principal(thing, principal).await
    }

    async fn list_thing_groups_for_thing(&self, thing: &ThingName) -> Result<Vec<String>, PortError> {
        self.inner.list_thing_groups_for_thing(thing).await
    }

    async fn describe_thing_group(&self, group: &str) -> Result<GroupInfo, PortError> {
        self.inner.describe_thing_group(group).await
    }

    async fn add_thing_to_thing_group(&self, thing: &ThingName, group: &str) -> Result<(), PortError> {
        self.check("iot:AddThingToThingGroup").await?;
        self.inner.add_thing_to_thing_group(thing, group).await
    }

    async fn remove_thing_from_thing_group(&self, thing: &ThingName, group: &str) -> Result<(), PortError> {
        self.check("iot:RemoveThingFromThingGroup").await?;
        self.inner.remove_thing_from_thing_group(thing, group).await
    }

    async fn add_thing_to_billing_group(&self, thing: &ThingName, group: &str) -> Result<(), PortError> {
        self.check("iot:AddThingToBillingGroup").await?;
        self.inner.add_thing_to_billing_group(thing, group).await
    }
}

#[async_trait]
impl Certificates for FencedRegistry<'_> {
    async fn describe_certificate(&self, id: &CertificateId) -> Result<CertificateInfo, PortError> {
        self.inner.describe_certificate(id).await
    }

    async fn update_certificate_status(&self, id: &CertificateId, status: CertificateStatus) -> Result<(), PortError> {
        self.check("iot:UpdateCertificate").await?;
        self.inner.update_certificate_status(id, status).await
    }

    async fn delete_certificate(&self, id: &CertificateId) -> Result<(), PortError> {
        self.check("iot:DeleteCertificate").await?;
        self.inner.delete_certificate(id).await
    }

    async fn create_certificate_from_csr(&self, csr_pem: &str, active: bool) -> Result<IssuedCertificate, PortError> {
        self.check("iot:CreateCertificateFromCsr").await?;
        self.inner.create_certificate_from_csr(csr_pem, active).await
    }

    async fn create_keys_and_certificate(&self, active: bool) -> Result<AwsGeneratedKey, PortError> {
        self.check("iot:CreateKeysAndCertificate").await?;
        self.inner.create_keys_and_certificate(active).await
    }

    async fn register_certificate(
        &self,
        certificate_pem: &str,
        ca_certificate_pem: Option<&str>,
        active: bool,
    ) -> Result<IssuedCertificate, PortError> {
        self.check("iot:RegisterCertificate").await?;
        self.inner.register_certificate(certificate_pem, ca_certificate_pem, active).await
    }

    async fn register_certificate_without_ca(
        &self,
        certificate_pem: &str,
        active: bool,
    ) -> Result<IssuedCertificate, PortError> {
        self.check("iot:RegisterCertificateWithoutCA").await?;
        self.inner.register_certificate_without_ca(certificate_pem, active).await
    }

    async fn ca_certificate_pem(&self, ca_certificate_id: &str) -> Result<String, PortError> {
        self.inner.ca_certificate_pem(ca_certificate_id).await
    }

    async fn recent_inactive_certificates(&self, since: Timestamp) -> Result<Vec<CertificateInfo>, PortError> {
        self.inner.recent_inactive_certificates(since).await
    }
}

#[async_trait]
impl Policies for FencedRegistry<'_> {
    async fn get_policy(&self, policy: &str) -> Result<PolicyInfo, PortError> {
        self.inner.get_policy(policy).await
    }

    async fn create_policy(&self, policy: &str, document: &str) -> Result<(), PortError> {
        self.check("iot:CreatePolicy").await?;
        self.inner.create_policy(policy, document).await
    }

    async fn delete_policy(&self, policy: &str) -> Result<(), PortError> {
        self.check("iot:DeletePolicy").await?;
        self.inner.delete_policy(policy).await
    }

    async fn attach_policy(&self, policy: &str, target: &Arn) -> Result<(), PortError> {
        self.check("iot:AttachPolicy").await?;
        self.inner.attach_policy(policy, target).await
    }

    async fn detach_policy(&self, policy: &str, target: &Arn) -> Result<(), PortError> {
        self.check("iot:DetachPolicy").await?;
        self.inner.detach_policy(policy, target).await
    }

    async fn list_attached_policies(&self, target: &Arn) -> Result<Vec<String>, PortError> {
        self.inner.list_attached_policies(target).await
    }

    async fn list_policy_targets(&self, policy: &str) -> Result<Vec<Arn>, PortError> {
        self.inner.list_policy_targets(policy).await
    }
}

#[async_trait]
impl ThingRegistration for FencedRegistry<'_> {
    async fn register_thing(
        &self,
        template_body: &str,
        parameters: &BTreeMap<String, String>,
    ) -> Result<Registration, PortError> {
        self.check("iot:RegisterThing").await?;
        self.inner.register_thing(template_body, parameters).await
    }
}

/// The secret store as an attempt sees it: writes and deletes are fenced first.
pub struct FencedSecrets<'a> {
    inner: &'a dyn SecretSink,
    fence: Option<Fence<'a>>,
}

impl<'a> FencedSecrets<'a> {
    /// `inner`, fenced by `fence` (`None`: unfenced).
    pub fn new(inner: &'a dyn SecretSink, fence: Option<Fence<'a>>) -> Self {
        Self { inner, fence }
    }

    async fn check(&self, op: &'static str) -> Result<(), PortError> {
        check_if_fenced(self.fence.as_ref(), op).await
    }
}

#[async_trait]
impl SecretSink for FencedSecrets<'_> {
    async fn store(&self, name: &str, secret: &Secret) -> Result<String, PortError> {
        self.check("secrets:store").await?;
        self.inner.store(name, secret).await
    }

    async fn delete(&self, name: &str) -> Result<(), PortError> {
        self.check("secrets:delete").await?;
        self.inner.delete(name).await
    }

    async fn read(&self, name: &str) -> Result<Secret, PortError> {
        self.inner.read(name).await
    }
}
