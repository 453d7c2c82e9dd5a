//! [`Policies`] on IoT: policies and their attachments.

use async_trait::async_trait;

use super::IotRegistry;
use crate::adapters::aws::error::failed;
use crate::domain::Arn;
use crate::domain::registry::PolicyInfo;
use crate::ports::{ErrorKind, IotOperation, Policies, PortError};

/// Items per page of the list calls.
const PAGE: i32 = 100;

#[async_trait]
impl Policies for IotRegistry {
    async fn get_policy(&self, policy: &str) -> Result<PolicyInfo, PortError> {
        let out =
            self.client.get_policy().policy_name(policy).send().await.map_err(failed(IotOperation::GetPolicy.op()))?;
        Ok(PolicyInfo {
            policy_name: out.policy_name().unwrap_or(policy).to_owned(),
            arn: out.policy_arn().unwrap_or_default().to_owned(),
            policy_document: out.policy_document().map(str::to_owned),
        })
    }

    async fn create_policy(&self, policy: &str, document: &str) -> Result<(), PortError> {
        self.client
            .create_policy()
            .policy_name(policy)
            .policy_document(document)
            .send()
            .await
            .map_err(failed(IotOperation::CreatePolicy.op()))?;
        Ok(())
    }

    async fn delete_policy(&self, policy: &str) -> Result<(), PortError> {
        // IoT refuses to delete a policy that still has non-default versions.
        let versions = self
            .client
            .list_policy_versions()
            .policy_name(policy)
            .send()
            .await
            .map_err(failed(IotOperation::ListPolicyVersions.op()))?;
        for version in versions.policy_versions().iter().filter(|v| !v.is_default_version()) {
            if let Some(id) = version.version_id() {
                let deleted = self
                    .client
                    .delete_policy_version()
                    .policy_name(policy)
                    .policy_version_id(id)
                    .send()
                    .await
                    .map_err(failed(IotOperation::DeletePolicyVersion.op()));
                match deleted {
                    Err(e) if e.kind != ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
        }
        self.client
            .delete_policy()
            .policy_name(policy)
            .send()
            .await
            .map_err(failed(IotOperation::DeletePolicy.op()))?;
        Ok(())
    }

    async fn attach_policy(&self, policy: &str, target: &Arn) -> Result<(), PortError> {
        self.client
            .attach_policy()
            .policy_name(policy)
            .target(target.as_str())
            .send()
            .await
            .map_err(failed(IotOperation::AttachPolicy.op()))?;
        Ok(())
    }

    async fn detach_policy(&self, policy: &str, target: &Arn) -> Result<(), PortError> {
        self.client
            .detach_policy()
            .policy_name(policy)
            .target(target.as_str())
            .send()
            .await
            .map_err(failed(IotOperation::DetachPolicy.op()))?;
        Ok(())
    }

    async fn list_attached_policies(&self, target: &Arn) -> Result<Vec<String>, PortError> {
        let policies: Vec<_> = self
            .client
            .list_attached_policies()
            .target(target.as_str())
            .recursive(false)
            .page_size(PAGE)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(failed(IotOperation::ListAttachedPolicies.op()))?;
        Ok(policies.iter().filter_map(|p| p.policy_name().map(str::to_owned)).collect())
    }

    async fn list_policy_targets(&self, policy: &str) -> Result<Vec<Arn>, PortError> {
        let targets: Vec<String> = self
            .client
            .list_targets_for_policy()
            .policy_name(policy)
            .page_size(PAGE)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(failed(IotOperation::ListTargetsForPolicy.op()))?;
        Ok(targets.into_iter().map(Arn::new).collect())
    }
}
