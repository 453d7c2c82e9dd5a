//! [`DeviceRegistry`] on the AWS IoT control plane. Every list call is read to its last page.

use async_trait::async_trait;
use aws_sdk_iot::types::CertificateStatus as IotStatus;

use super::error::classify;
use std::collections::BTreeMap;

use aws_sdk_iot::types::AttributePayload;

use crate::crypto::Secret;
use crate::domain::registry::{CertificateInfo, GroupInfo, PolicyInfo, ThingInfo};
use crate::domain::{CertificateStatus, ThingName};
use crate::ports::{DeviceRegistry, ErrorKind, IssuedCertificate, NewThing, PortError};

/// The IoT registry.
#[derive(Debug, Clone)]
pub struct IotRegistry {
    client: aws_sdk_iot::Client,
}

impl IotRegistry {
    /// Uses the IoT client of `clients`.
    pub fn new(clients: &super::AwsClients) -> Self {
        Self { client: clients.iot.clone() }
    }
}

/// Reads every page of a list call: `page` gets the token (or marker) of the page to read
/// and returns its items and the next token; an empty or absent token ends the list.
async fn all_pages<F, Fut>(mut page: F) -> Result<Vec<String>, PortError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<(Vec<String>, Option<String>), PortError>>,
{
    let mut all = Vec::new();
    let mut token = None;
    loop {
        let (items, next) = page(token).await?;
        all.extend(items);
        token = next.filter(|t| !t.is_empty());
        if token.is_none() {
            return Ok(all);
        }
    }
}

fn to_iot(status: CertificateStatus) -> IotStatus {
    IotStatus::from(status.as_str())
}

#[async_trait]
impl DeviceRegistry for IotRegistry {
    async fn describe_thing(&self, thing: &ThingName) -> Result<ThingInfo, PortError> {
        let out = self
            .client
            .describe_thing()
            .thing_name(thing.as_str())
            .send()
            .await
            .map_err(|e| classify("iot:DescribeThing", e))?;
        Ok(ThingInfo {
            thing_name: out.thing_name().unwrap_or(thing.as_str()).to_owned(),
            arn: out.thing_arn().unwrap_or_default().to_owned(),
            thing_type: out.thing_type_name().map(str::to_owned),
            attributes: out.attributes().cloned().unwrap_or_default().into_iter().collect(),
        })
    }

    async fn list_thing_principals(&self, thing: &ThingName) -> Result<Vec<String>, PortError> {
        all_pages(|token| async move {
            let out = self
                .client
                .list_thing_principals()
                .thing_name(thing.as_str())
                .set_next_token(token)
                .max_results(100)
                .send()
                .await
                .map_err(|e| classify("iot:ListThingPrincipals", e))?;
            Ok((out.principals().to_vec(), out.next_token().map(str::to_owned)))
        })
        .await
    }

    async fn list_principal_things(&self, principal: &str) -> Result<Vec<String>, PortError> {
        all_pages(|token| async move {
            let out = self
                .client
                .list_principal_things()
                .principal(principal)
                .set_next_token(token)
                .max_results(100)
                .send()
                .await
                .map_err(|e| classify("iot:ListPrincipalThings", e))?;
            Ok((out.things().to_vec(), out.next_token().map(str::to_owned)))
        })
        .await
    }

    async fn list_thing_groups_for_thing(&self, thing: &ThingName) -> Result<Vec<String>, PortError> {
        all_pages(|token| async move {
            let out = self
                .client
                .list_thing_groups_for_thing()
                .thing_name(thing.as_str())
                .set_next_token(token)
                .max_results(100)
                .send()
                .await
                .map_err(|e| classify("iot:ListThingGroupsForThing", e))?;
            let names = out.thing_groups().iter().filter_map(|g| g.group_name().map(str::to_owned)).collect();
            Ok((names, out.next_token().map(str::to_owned)))
        })
        .await
    }

    async fn describe_thing_group(&self, group: &str) -> Result<GroupInfo, PortError> {
        let out = self
            .client
            .describe_thing_group()
            .thing_group_name(group)
            .send()
            .await
            .map_err(|e| classify("iot:DescribeThingGroup", e))?;
        let attributes = out
            .thing_group_properties()
            .and_then(|p| p.attribute_payload())
            .and_then(|a| a.attributes())
            .cloned()
            .unwrap_or_default();
        Ok(GroupInfo {
            group_name: out.thing_group_name().unwrap_or(group).to_owned(),
            arn: out.thing_group_arn().unwrap_or_default().to_owned(),
            attributes: attributes.into_iter().collect(),
        })
    }

    async fn describe_certificate(&self, certificate_id: &str) -> Result<CertificateInfo, PortError> {
        const OP: &str = "iot:DescribeCertificate";
        let out = self
            .client
            .describe_certificate()
            .certificate_id(certificate_id)
            .send()
            .await
            .map_err(|e| classify(OP, e))?;
        let description = out
            .certificate_description()
            .ok_or_else(|| PortError::new(ErrorKind::Transient, OP, "response has no certificate description"))?;
        let status_text = description.status().map(|s| s.as_str()).unwrap_or_default();
        let status = CertificateStatus::from_iot(status_text).ok_or_else(|| {
            PortError::new(ErrorKind::Permanent, OP, format!("unknown certificate status {status_text:?}"))
        })?;
        Ok(CertificateInfo {
            certificate_id: description.certificate_id().unwrap_or(certificate_id).to_owned(),
            arn: description.certificate_arn().unwrap_or_default().to_owned(),
            certificate_status: status,
            certificate_pem: description.certificate_pem().map(str::to_owned),
        })
    }

    async fn update_certificate_status(
        &self,
        certificate_id: &str,
        status: CertificateStatus,
    ) -> Result<(), PortError> {
        self.client
            .update_certificate()
            .certificate_id(certificate_id)
            .new_status(to_iot(status))
            .send()
            .await
            .map_err(|e| classify("iot:UpdateCertificate", e))?;
        Ok(())
    }

    async fn delete_certificate(&self, certificate_id: &str) -> Result<(), PortError> {
        self.client
            .delete_certificate()
            .certificate_id(certificate_id)
            .force_delete(false)
            .send()
            .await
            .map_err(|e| classify("iot:DeleteCertificate", e))?;
        Ok(())
    }

    async fn list_attached_policies(&self, target: &str) -> Result<Vec<String>, PortError> {
        all_pages(|marker| async move {
            let out = self
                .client
                .list_attached_policies()
                .target(target)
                .recursive(false)
                .set_marker(marker)
                .page_size(100)
                .send()
                .await
                .map_err(|e| classify("iot:ListAttachedPolicies", e))?;
            let names = out.policies().iter().filter_map(|p| p.policy_name().map(str::to_owned)).collect();
            Ok((names, out.next_marker().map(str::to_owned)))
        })
        .await
    }

    async fn list_policy_targets(&self, policy: &str) -> Result<Vec<String>, PortError> {
        all_pages(|marker| async move {
            let out = self
                .client
                .list_targets_for_policy()
                .policy_name(policy)
                .set_marker(marker)
                .page_size(100)
                .send()
                .await
                .map_err(|e| classify("iot:ListTargetsForPolicy", e))?;
            Ok((out.targets().to_vec(), out.next_marker().map(str::to_owned)))
        })
        .await
    }

    async fn get_policy(&self, policy: &str) -> Result<PolicyInfo, PortError> {
        let out =
            self.client.get_policy().policy_name(policy).send().await.map_err(|e| classify("iot:GetPolicy", e))?;
        Ok(PolicyInfo {
            policy_name: out.policy_name().unwrap_or(policy).to_owned(),
            arn: out.policy_arn().unwrap_or_default().to_owned(),
            policy_document: out.policy_document().map(str::to_owned),
        })
    }

    async fn detach_policy(&self, policy: &str, target: &str) -> Result<(), PortError> {
        self.client
            .detach_policy()
            .policy_name(policy)
            .target(target)
            .send()
            .await
            .map_err(|e| classify("iot:DetachPolicy", e))?;
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
            .map_err(|e| classify("iot:ListPolicyVersions", e))?;
        for version in versions.policy_versions().iter().filter(|v| !v.is_default_version()) {
            if let Some(id) = version.version_id() {
                let deleted = self
                    .client
                    .delete_policy_version()
                    .policy_name(policy)
                    .policy_version_id(id)
                    .send()
                    .await
                    .map_err(|e| classify("iot:DeletePolicyVersion", e));
                match deleted {
                    Err(e) if e.kind != ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
        }
        self.client.delete_policy().policy_name(policy).send().await.map_err(|e| classify("iot:DeletePolicy", e))?;
        Ok(())
    }

    async fn detach_thing_principal(&self, thing: &ThingName, principal: &str) -> Result<(), PortError> {
        self.client
            .detach_thing_principal()
            .thing_name(thing.as_str())
            .principal(principal)
            .send()
            .await
            .map_err(|e| classify("iot:DetachThingPrincipal", e))?;
        Ok(())
    }

    async fn delete_thing(&self, thing: &ThingName) -> Result<(), PortError> {
        self.client
            .delete_thing()
            .thing_name(thing.as_str())
            .send()
            .await
            .map_err(|e| classify("iot:DeleteThing", e))?;
        Ok(())
    }
    async fn create_thing(&self, thing: &NewThing) -> Result<String, PortError> {
        let payload =
            AttributePayload::builder().set_attributes(Some(thing.attributes.clone().into_iter().collect())).build();
        let out = self
            .client
            .create_thing()
            .thing_name(thing.name.as_str())
            .set_thing_type_name(thing.thing_type.clone())
            .attribute_payload(payload)
            .send()
            .await
            .map_err(|e| classify("iot:CreateThing", e))?;
        Ok(out.thing_arn().unwrap_or_default().to_owned())
    }

    async fn update_thing(
        &self,
        thing: &ThingName,
        thing_type: Option<&str>,
        attributes: &BTreeMap<String, String>,
        merge: bool,
    ) -> Result<(), PortError> {
        let payload = AttributePayload::builder()
            .set_attributes(Some(attributes.clone().into_iter().collect()))
            .merge(merge)
            .build();
        self.client
            .update_thing()
            .thing_name(thing.as_str())
            .set_thing_type_name(thing_type.map(str::to_owned))
            .attribute_payload(payload)
            .send()
            .await
            .map_err(|e| classify("iot:UpdateThing", e))?;
        Ok(())
    }

    async fn add_thing_to_thing_group(&self, thing: &ThingName, group: &str) -> Result<(), PortError> {
        self.client
            .add_thing_to_thing_group()
            .thing_name(thing.as_str())
            .thing_group_name(group)
            .send()
            .await
            .map_err(|e| classify("iot:AddThingToThingGroup", e))?;
        Ok(())
    }

    async fn remove_thing_from_thing_group(&self, thing: &ThingName, group: &str) -> Result<(), PortError> {
        self.client
            .remove_thing_from_thing_group()
            .thing_name(thing.as_str())
            .thing_group_name(group)
            .send()
            .await
            .map_err(|e| classify("iot:RemoveThingFromThingGroup", e))?;
        Ok(())
    }

    async fn add_thing_to_billing_group(&self, thing: &ThingName, group: &str) -> Result<(), PortError> {
        self.client
            .add_thing_to_billing_group()
            .thing_name(thing.as_str())
            .billing_group_name(group)
            .send()
            .await
            .map_err(|e| classify("iot:AddThingToBillingGroup", e))?;
        Ok(())
    }

    async fn create_certificate_from_csr(&self, csr_pem: &str, active: bool) -> Result<IssuedCertificate, PortError> {
        const OP: &str = "iot:CreateCertificateFromCsr";
        let out = self
            .client
            .create_certificate_from_csr()
            .certificate_signing_request(csr_pem)
            .set_as_active(active)
            .send()
            .await
            .map_err(|e| classify(OP, e))?;
        issued(OP, out.certificate_id(), out.certificate_arn(), out.certificate_pem())
    }

    async fn create_keys_and_certificate(
        &self,
        active: bool,
    ) -> Result<(IssuedCertificate, Secret, String), PortError> {
        const OP: &str = "iot:CreateKeysAndCertificate";
        let out = self
            .client
            .create_keys_and_certificate()
            .set_as_active(active)
            .send()
            .await
            .map_err(|e| classify(OP, e))?;
        let certificate = issued(OP, out.certificate_id(), out.certificate_arn(), out.certificate_pem())?;
        let keys =
            out.key_pair().ok_or_else(|| PortError::new(ErrorKind::Transient, OP, "no key pair in the response"))?;
        let private = Secret::new(keys.private_key().unwrap_or_default().to_owned());
        Ok((certificate, private, keys.public_key().unwrap_or_default().to_owned()))
    }

    async fn register_certificate(
        &self,
        certificate_pem: &str,
        ca_certificate_pem: Option<&str>,
        active: bool,
    ) -> Result<IssuedCertificate, PortError> {
        const OP: &str = "iot:RegisterCertificate";
        let status = if active { IotStatus::Active } else { IotStatus::Inactive };
        let out = self
            .client
            .register_certificate()
            .certificate_pem(certificate_pem)
            .set_ca_certificate_pem(ca_certificate_pem.map(str::to_owned))
            .status(status)
            .send()
            .await
            .map_err(|e| classify(OP, e))?;
        issued(OP, out.certificate_id(), out.certificate_arn(), Some(certificate_pem))
    }

    async fn register_certificate_without_ca(
        &self,
        certificate_pem: &str,
        active: bool,
    ) -> Result<IssuedCertificate, PortError> {
        const OP: &str = "iot:RegisterCertificateWithoutCA";
        let status = if active { IotStatus::Active } else { IotStatus::Inactive };
        let out = self
            .client
            .register_certificate_without_ca()
            .certificate_pem(certificate_pem)
            .status(status)
            .send()
            .await
            .map_err(|e| classify(OP, e))?;
        issued(OP, out.certificate_id(), out.certificate_arn(), Some(certificate_pem))
    }

    async fn ca_certificate_pem(&self, ca_certificate_id: &str) -> Result<String, PortError> {
        const OP: &str = "iot:DescribeCACertificate";
        let out = self
            .client
            .describe_ca_certificate()
            .certificate_id(ca_certificate_id)
            .send()
            .await
            .map_err(|e| classify(OP, e))?;
        out.certificate_description()
            .and_then(|d| d.certificate_pem())
            .map(str::to_owned)
            .ok_or_else(|| PortError::new(ErrorKind::Transient, OP, "no certificate PEM in the response"))
    }

    async fn create_policy(&self, policy: &str, document: &str) -> Result<(), PortError> {
        self.client
            .create_policy()
            .policy_name(policy)
            .policy_document(document)
            .send()
            .await
            .map_err(|e| classify("iot:CreatePolicy", e))?;
        Ok(())
    }

    async fn attach_policy(&self, policy: &str, target: &str) -> Result<(), PortError> {
        self.client
            .attach_policy()
            .policy_name(policy)
            .target(target)
            .send()
            .await
            .map_err(|e| classify("iot:AttachPolicy", e))?;
        Ok(())
    }

    async fn attach_thing_principal(&self, thing: &ThingName, principal: &str) -> Result<(), PortError> {
        self.client
            .attach_thing_principal()
            .thing_name(thing.as_str())
            .principal(principal)
            .send()
            .await
            .map_err(|e| classify("iot:AttachThingPrincipal", e))?;
        Ok(())
    }

    async fn recent_inactive_certificates(&self, since_ms: i64) -> Result<Vec<CertificateInfo>, PortError> {
        let mut found = Vec::new();
        let mut marker = None;
        // Newest first; stop at the first page that reaches back before `since_ms`.
        loop {
            let out = self
                .client
                .list_certificates()
                .ascending_order(false)
                .page_size(50)
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| classify("iot:ListCertificates", e))?;
            let mut reached_older = false;
            for cert in out.certificates() {
                let created_ms = cert.creation_date().map_or(i64::MAX, |d| d.to_millis().unwrap_or(i64::MAX));
                if created_ms < since_ms {
                    reached_older = true;
                    continue;
                }
                if cert.status() == Some(&IotStatus::Inactive)
                    && let Some(id) = cert.certificate_id()
                {
                    found.push(self.describe_certificate(id).await?);
                }
            }
            marker = out.next_marker().filter(|m| !m.is_empty()).map(str::to_owned);
            if reached_older || marker.is_none() {
                return Ok(found);
            }
        }
    }

    async fn register_thing(
        &self,
        template_body: &str,
        parameters: &BTreeMap<String, String>,
    ) -> Result<(Option<String>, BTreeMap<String, String>), PortError> {
        let out = self
            .client
            .register_thing()
            .template_body(template_body)
            .set_parameters(Some(parameters.clone().into_iter().collect()))
            .send()
            .await
            .map_err(|e| classify("iot:RegisterThing", e))?;
        let arns = out.resource_arns().cloned().unwrap_or_default().into_iter().collect();
        Ok((out.certificate_pem().map(str::to_owned), arns))
    }
}

impl IotRegistry {
    /// A registry on an explicit client (tests of request shapes).
    pub fn with_client(client: aws_sdk_iot::Client) -> Self {
        Self { client }
    }
}

fn issued(
    op: &'static str,
    id: Option<&str>,
    arn: Option<&str>,
    pem: Option<&str>,
) -> Result<IssuedCertificate, PortError> {
    match (id, arn, pem) {
        (Some(id), Some(arn), Some(pem)) => Ok(IssuedCertificate {
            certificate_id: id.to_owned(),
            arn: arn.to_owned(),
            certificate_pem: pem.to_owned(),
        }),
        _ => Err(PortError::new(ErrorKind::Transient, op, "incomplete certificate in the response")),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use aws_sdk_iot::config::{BehaviorVersion, Credentials, Region};
    use axum::Router;
    use axum::body::Bytes;
    use axum::http::Uri;
    use axum::routing::post;

    use super::*;

    /// RegisterThing's request on the wire, checked against a local HTTP endpoint (the
    /// emulator does not implement RegisterThing).
    #[tokio::test]
    async fn register_thing_sends_the_template_and_parameters() {
        type Captured = Arc<Mutex<Vec<(String, Vec<u8>)>>>;
        let seen: Captured = Arc::default();
        let capture = seen.clone();
        let app = Router::new().route(
            "/things",
            post(move |uri: Uri, body: Bytes| {
                let capture = capture.clone();
                async move {
                    capture.lock().unwrap().push((uri.path().to_owned(), body.to_vec()));
                    r#"{"certificatePem":"PEM","resourceArns":{"thing":"arn:aws:iot:us-east-1:1:thing/t1","certificate":"arn:aws:iot:us-east-1:1:cert/c1"}}"#
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let config = aws_sdk_iot::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::for_tests())
            .endpoint_url(format!("http://{address}"))
            .build();
        let registry = IotRegistry::with_client(aws_sdk_iot::Client::from_conf(config));
        let template = r#"{"Parameters":{"ThingName":{"Type":"String"}},"Resources":{}}"#;
        let parameters = BTreeMap::from([("ThingName".to_owned(), "t1".to_owned())]);
        let (pem, arns) = registry.register_thing(template, &parameters).await.unwrap();

        assert_eq!(pem.as_deref(), Some("PEM"));
        assert_eq!(arns["certificate"], "arn:aws:iot:us-east-1:1:cert/c1");
        let requests = seen.lock().unwrap().clone();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].0, "/things");
        let body: serde_json::Value = serde_json::from_slice(&requests[0].1).unwrap();
        assert_eq!(body, serde_json::json!({"templateBody": template, "parameters": {"ThingName": "t1"}}));
    }
}
