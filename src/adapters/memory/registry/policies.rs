//! [`Policies`] in memory: Policies and their attachments, with IoT's refusal to delete a policy in use.

use async_trait::async_trait;

use super::{IotOp, MemoryRegistry, not_found};
use crate::domain::Arn;
use crate::domain::registry::PolicyInfo;
use crate::ports::{ErrorKind, Policies, PortError};

use super::ARN_PREFIX;

#[async_trait]
impl Policies for MemoryRegistry {
    async fn get_policy(&self, policy: &str) -> Result<PolicyInfo, PortError> {
        self.enter(IotOp::GetPolicy).await?;
        self.with(|r| r.policies.get(policy).cloned().ok_or_else(|| not_found(IotOp::GetPolicy, policy)))
    }

    async fn create_policy(&self, policy: &str, document: &str) -> Result<(), PortError> {
        self.enter(IotOp::CreatePolicy).await?;
        self.with(|r| {
            if r.policies.contains_key(policy) {
                return Err(PortError::new(ErrorKind::AlreadyExists, IotOp::CreatePolicy.into(), "policy exists"));
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

    async fn delete_policy(&self, policy: &str) -> Result<(), PortError> {
        self.enter(IotOp::DeletePolicy).await?;
        self.with(|r| {
            if !r.policies.contains_key(policy) {
                return Err(not_found(IotOp::DeletePolicy, policy));
            }
            if r.policy_targets.iter().any(|(p, _)| p == policy) {
                return Err(PortError::new(ErrorKind::Conflict, IotOp::DeletePolicy.into(), "policy is attached"));
            }
            r.policies.remove(policy);
            Ok(())
        })
    }

    async fn attach_policy(&self, policy: &str, target: &Arn) -> Result<(), PortError> {
        self.enter(IotOp::AttachPolicy).await?;
        self.with(|r| {
            if !r.policies.contains_key(policy) {
                return Err(not_found(IotOp::AttachPolicy, &format!("policy {policy}")));
            }
            r.policy_targets.insert((policy.to_owned(), target.to_string()));
            Ok(())
        })
    }

    async fn detach_policy(&self, policy: &str, target: &Arn) -> Result<(), PortError> {
        self.enter(IotOp::DetachPolicy).await?;
        self.with(|r| {
            r.policy_targets.remove(&(policy.to_owned(), target.to_string()));
            Ok(())
        })
    }

    async fn list_attached_policies(&self, target: &Arn) -> Result<Vec<String>, PortError> {
        self.enter(IotOp::ListAttachedPolicies).await?;
        self.with(|r| {
            Ok(r.policy_targets.iter().filter(|(_, t)| t == target.as_str()).map(|(p, _)| p.clone()).collect())
        })
    }

    async fn list_policy_targets(&self, policy: &str) -> Result<Vec<Arn>, PortError> {
        self.enter(IotOp::ListTargetsForPolicy).await?;
        self.with(|r| {
            if !r.policies.contains_key(policy) {
                return Err(not_found(IotOp::ListTargetsForPolicy, policy));
            }
            Ok(r.policy_targets.iter().filter(|(p, _)| p == policy).map(|(_, t)| Arn::new(t)).collect())
        })
    }
}
