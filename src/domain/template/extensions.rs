//! CDF's template extensions applied to a plan: the certificate a `CDF` pre-step makes, the
//! additional policies, and the policy that makes the client id match the thing name.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::cdf::PreStep;
use super::plan::{CertificateSource, CertificateSpec, InitialStatus, PolicySpec, ThingSpec};
use super::*;

impl Template {
    /// Whether the template declares a resource of `type_name`, whether or not it reads.
    fn has_resource(&self, type_name: &str) -> bool {
        self.body
            .get("Resources")
            .and_then(Value::as_object)
            .is_some_and(|r| r.values().any(|v| v.get("Type").and_then(Value::as_str) == Some(type_name)))
    }

    pub(super) fn apply_cdf(
        &self,
        params: &Value,
        thing: &mut Option<ThingSpec>,
        certificate: &mut Option<CertificateSpec>,
        policies: &mut Vec<PolicySpec>,
        errors: &mut Vec<TemplateError>,
    ) {
        if !params.is_null() && !params.is_object() {
            errors.push(TemplateError::request(
                "/cdfProvisioningParameters",
                "cdfProvisioningParameters must be an object",
            ));
            return;
        }
        if let Some(step) = self.cdf.pre_step {
            let source = match step {
                PreStep::CreateDeviceCertificate => CertificateSource::CaSigned {
                    ca_id: cdf::required_string(params, "caId", step.key(), errors),
                    cert_info: cdf::cert_info(params, true, errors),
                    key_algorithm: self.cdf.key_algorithm,
                },
                PreStep::CreateDeviceAwsCertificate => CertificateSource::AwsIssued {
                    key_algorithm: (!self.cdf.aws_generated_key).then_some(self.cdf.key_algorithm),
                    cert_info: cdf::cert_info(params, false, errors),
                },
                PreStep::RegisterWithoutCa => {
                    let pem = cdf::required_string(params, "certificatePem", step.key(), errors);
                    if !pem.is_empty() && !pem.trim_start().starts_with("-----BEGIN CERTIFICATE-----") {
                        errors.push(TemplateError::request(
                            "/cdfProvisioningParameters/certificatePem",
                            "certificatePem must be a PEM certificate",
                        ));
                    }
                    CertificateSource::WithoutCa { certificate_pem: pem }
                }
            };
            match certificate.as_mut() {
                Some(cert) if matches!(&cert.source, CertificateSource::Existing { certificate_id } if certificate_id == &placeholder("CertificateId"))
                    || matches!(&cert.source, CertificateSource::Register { certificate_pem, .. } if certificate_pem == &placeholder("CertificatePem")) =>
                {
                    if step == PreStep::RegisterWithoutCa {
                        let status = cdf::required_string(params, "certificateStatus", step.key(), errors);
                        match status.as_str() {
                            "ACTIVE" => cert.status = InitialStatus::Active,
                            "INACTIVE" => cert.status = InitialStatus::Inactive,
                            "" => {}
                            _ => errors.push(TemplateError::request("/cdfProvisioningParameters/certificateStatus", "certificateStatus must be ACTIVE or INACTIVE")),
                        }
                    }
                    cert.source = source;
                }
                Some(cert) => errors.push(TemplateError::new(
                    &format!("/Resources/{}/Properties", cert.logical_name),
                    format!(
                        "CDF.{} makes the certificate: its CertificateId must be {{\"Ref\": \"CertificateId\"}} (or CertificatePem {{\"Ref\": \"CertificatePem\"}})",
                        step.key()
                    ),
                )),
                // A certificate resource that failed to read has its own errors already.
                None if self.has_resource("AWS::IoT::Certificate") => {}
                None => errors.push(TemplateError::new(
                    "/Resources",
                    format!("CDF.{} needs an AWS::IoT::Certificate resource to register the certificate", step.key()),
                )),
            }
        }
        let needs_certificate = !self.cdf.additional_policies.is_empty() || self.cdf.client_id_must_match_thing_name;
        if needs_certificate && certificate.is_none() && !self.has_resource("AWS::IoT::Certificate") {
            errors.push(TemplateError::new(
                "/CDF",
                "attachAdditionalPolicies and clientIdMustMatchThingName need an AWS::IoT::Certificate resource",
            ));
        }
        for (i, extra) in self.cdf.additional_policies.iter().enumerate() {
            let policy_name = match &extra.document {
                // Named after the document, so a retry finds the policy it made instead of a second one.
                Some(doc) => format!("{}_{}", extra.name, &hex::encode(Sha256::digest(doc.as_bytes()))[..12]),
                None => extra.name.clone(),
            };
            policies.push(PolicySpec {
                logical_name: format!("attachAdditionalPolicies[{i}]"),
                policy_name,
                document: extra.document.clone(),
            });
        }
        if self.cdf.client_id_must_match_thing_name {
            match thing {
                Some(t) => policies.push(PolicySpec {
                    logical_name: "clientIdMustMatchThingName".into(),
                    policy_name: format!("clientIdEnforcementPolicy_{}", t.thing_name),
                    document: Some(client_id_policy(&t.thing_name)),
                }),
                None => errors.push(TemplateError::new(
                    "/CDF/clientIdMustMatchThingName",
                    "clientIdMustMatchThingName needs an AWS::IoT::Thing resource",
                )),
            }
        }
    }
}

/// CDF's client-id enforcement policy: the device may connect only with its thing name as
/// MQTT client id, and only while its certificate is attached to that thing.
pub(super) fn client_id_policy(thing_name: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Action": "iot:Connect",
            "Resource": format!("arn:aws:iot:*:*:client/{thing_name}"),
            "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}
        }]
    })
    .to_string()
}
