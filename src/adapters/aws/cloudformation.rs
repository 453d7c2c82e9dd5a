//! Deploys `infra/cloudformation.yaml` (create or update, then the SDK's waiter), so the local
//! emulator and AWS are built from the same template by the same code.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_cloudformation::client::Waiters;
use aws_sdk_cloudformation::types::{Capability, Parameter, StackStatus};

use super::error::{classify, counted, failed};
use crate::ports::{ErrorKind, PortError};

/// A stack's outputs, by output key.
pub type StackOutputs = BTreeMap<String, String>;

/// Creates, updates and deletes CloudFormation stacks.
#[derive(Debug, Clone)]
pub struct StackDeployer {
    client: aws_sdk_cloudformation::Client,
}

impl StackDeployer {
    /// Uses the CloudFormation client of `clients`.
    pub fn new(clients: &super::AwsClients) -> Self {
        Self { client: clients.cloudformation.clone() }
    }

    /// Creates `stack` from `template`, or updates it when it exists, waits for the result
    /// (at most `timeout`) and returns its outputs.
    pub async fn deploy(
        &self,
        stack: &str,
        template: &str,
        parameters: &[(String, String)],
        timeout: Duration,
    ) -> Result<StackOutputs, PortError> {
        let params: Vec<Parameter> =
            parameters.iter().map(|(k, v)| Parameter::builder().parameter_key(k).parameter_value(v).build()).collect();
        let exists = self.status(stack).await?.is_some();
        if exists {
            let updated = self
                .client
                .update_stack()
                .stack_name(stack)
                .template_body(template)
                .set_parameters(Some(params))
                .capabilities(Capability::CapabilityNamedIam)
                .send()
                .await;
            if let Err(e) = updated {
                let e = counted(classify("cloudformation:UpdateStack", e));
                // CloudFormation has no error code for "nothing changed", only this message.
                if !e.message.contains("No updates are to be performed") {
                    return Err(e);
                }
            }
        } else {
            self.client
                .create_stack()
                .stack_name(stack)
                .template_body(template)
                .set_parameters(Some(params))
                .capabilities(Capability::CapabilityNamedIam)
                .send()
                .await
                .map_err(failed("cloudformation:CreateStack"))?;
        }
        let waited = if exists {
            self.client.wait_until_stack_update_complete().stack_name(stack).wait(timeout).await.err()
        } else {
            self.client.wait_until_stack_create_complete().stack_name(stack).wait(timeout).await.err()
        };
        let (status, outputs, reason) = self.status(stack).await?.ok_or_else(|| {
            PortError::new(ErrorKind::NotFound, "cloudformation:DescribeStacks", format!("stack {stack} disappeared"))
        })?;
        match waited {
            None => Ok(outputs),
            Some(e) => Err(PortError::new(
                ErrorKind::Permanent,
                "cloudformation:wait",
                format!("stack {stack} is {}: {reason} ({e})", status.as_str()),
            )),
        }
    }

    /// Deletes `stack` (without waiting).
    pub async fn delete(&self, stack: &str) -> Result<(), PortError> {
        self.client.delete_stack().stack_name(stack).send().await.map_err(failed("cloudformation:DeleteStack"))?;
        Ok(())
    }

    async fn status(&self, stack: &str) -> Result<Option<(StackStatus, StackOutputs, String)>, PortError> {
        let out = match self.client.describe_stacks().stack_name(stack).send().await {
            Ok(out) => out,
            Err(e) => {
                let e = counted(classify("cloudformation:DescribeStacks", e));
                // A missing stack is a ValidationError "Stack with id X does not exist".
                if e.message.contains("does not exist") {
                    return Ok(None);
                }
                return Err(e);
            }
        };
        let Some(found) = out.stacks().first() else { return Ok(None) };
        let Some(status) = found.stack_status().cloned() else { return Ok(None) };
        if status == StackStatus::DeleteComplete {
            return Ok(None);
        }
        let outputs = found
            .outputs()
            .iter()
            .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
            .collect();
        Ok(Some((status, outputs, found.stack_status_reason().unwrap_or_default().to_owned())))
    }
}
