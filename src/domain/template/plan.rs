//! The plan a template evaluates to: the resources to make, with every value resolved.
//! Executing it is the application layer's job; this is pure data.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What to do when a resource already exists (AWS `OverrideSettings`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Override {
    /// Keep the existing value (the default).
    #[default]
    DoNothing,
    /// Replace it with the template's.
    Replace,
    /// Fail the provisioning.
    Fail,
    /// Merge (thing attributes and groups only).
    Merge,
}

/// Per-property override settings of a thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ThingOverrides {
    /// `AttributePayload`.
    pub attribute_payload: Override,
    /// `ThingTypeName`.
    pub thing_type_name: Override,
    /// `ThingGroups`.
    pub thing_groups: Override,
}

/// The thing to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThingSpec {
    /// Logical name in the template.
    pub logical_name: String,
    /// Thing name.
    pub thing_name: String,
    /// Attributes.
    pub attributes: BTreeMap<String, String>,
    /// Thing type (must exist).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thing_type: Option<String>,
    /// Static thing groups to join (must exist).
    pub thing_groups: Vec<String>,
    /// Billing group (must exist).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub billing_group: Option<String>,
    /// What to do when the thing exists.
    pub overrides: ThingOverrides,
}

/// Key algorithm of keys generated here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KeyAlgorithm {
    /// ECDSA on P-256 with SHA-256 (the default).
    #[default]
    EcdsaP256,
    /// RSA 2048 with SHA-256 (CDF's choice).
    Rsa2048,
}

/// Subject and validity of a certificate made here (`cdfProvisioningParameters.certInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertInfo {
    /// CN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_name: Option<String>,
    /// O.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// OU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organizational_unit: Option<String>,
    /// L.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality: Option<String>,
    /// ST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_name: Option<String>,
    /// C (two letters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// emailAddress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_address: Option<String>,
    /// Validity in days (default: the deployment's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days_expiry: Option<u32>,
}

/// Where the device certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum CertificateSource {
    /// `CertificateSigningRequest`: AWS signs the device's CSR (`CreateCertificateFromCsr`).
    Csr {
        /// The CSR, PEM.
        csr: String,
    },
    /// `CertificateId`: an already registered certificate.
    Existing {
        /// Its id.
        certificate_id: String,
    },
    /// `CertificatePem` (+ `CACertificatePem`): register a certificate signed by a CA
    /// registered in IoT (`RegisterCertificate`).
    Register {
        /// The device certificate, PEM.
        certificate_pem: String,
        /// The CA certificate, when several registered CAs share a subject.
        #[serde(skip_serializing_if = "Option::is_none")]
        ca_certificate_pem: Option<String>,
    },
    /// CDF `createDeviceCertificate`: key and CSR made here, signed by a CA registered in IoT
    /// whose private key this deployment holds, then registered.
    CaSigned {
        /// IoT CA certificate id.
        ca_id: String,
        /// Subject and validity.
        cert_info: CertInfo,
        /// Key algorithm.
        key_algorithm: KeyAlgorithm,
    },
    /// CDF `createDeviceAWSCertificate`: an AWS-issued certificate.
    AwsIssued {
        /// Key made here (then `CreateCertificateFromCsr`), or by AWS when `None`
        /// (`CreateKeysAndCertificate`).
        key_algorithm: Option<KeyAlgorithm>,
        /// Subject of the CSR made here.
        cert_info: CertInfo,
    },
    /// CDF `registerDeviceCertificateWithoutCA`.
    WithoutCa {
        /// The device certificate, PEM.
        certificate_pem: String,
    },
}

impl std::fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::EcdsaP256 => "ECDSA_P256",
            Self::Rsa2048 => "RSA_2048",
        })
    }
}

impl CertificateSource {
    /// Whether this source makes a private key that must be delivered to the caller.
    pub fn generates_key(&self) -> bool {
        matches!(self, Self::CaSigned { .. } | Self::AwsIssued { .. })
    }
}

/// Status a certificate is created with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InitialStatus {
    /// Usable at once.
    Active,
    /// Registered disabled.
    Inactive,
}

/// The certificate to obtain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateSpec {
    /// Logical name in the template.
    pub logical_name: String,
    /// Where it comes from.
    pub source: CertificateSource,
    /// Status to give it.
    pub status: InitialStatus,
    /// What to do when it exists with another status.
    pub status_override: Override,
}

/// A policy to attach to the certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicySpec {
    /// Logical name in the template (or `attachAdditionalPolicies[i]`).
    pub logical_name: String,
    /// Policy name.
    pub policy_name: String,
    /// The document, when the policy is created here (skipped if it exists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<String>,
}

impl PolicySpec {
    /// Whether the policy comes from the `CDF` section rather than a template resource.
    pub fn is_cdf_extension(&self) -> bool {
        self.logical_name.starts_with("attachAdditionalPolicies[") || self.logical_name == "clientIdMustMatchThingName"
    }
}

/// Everything a provisioning request resolves to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// The thing, if the template has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thing: Option<ThingSpec>,
    /// The certificate, if the template has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertificateSpec>,
    /// Policies to attach to the certificate: the template's, then CDF's additional ones and
    /// the client-id policy.
    pub policies: Vec<PolicySpec>,
    /// Request parameters the template does not declare (ignored, as IoT does).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored_parameters: Vec<String>,
}

impl Plan {
    /// The steps in execution order, as short human-readable lines (dry runs, logs).
    pub fn describe_steps(&self) -> Vec<String> {
        let mut steps = Vec::new();
        if let Some(cert) = &self.certificate {
            let how = match &cert.source {
                CertificateSource::Csr { .. } => "CreateCertificateFromCsr with the request's CSR".to_owned(),
                CertificateSource::Existing { certificate_id } => format!("use existing certificate {certificate_id}"),
                CertificateSource::Register { .. } => "RegisterCertificate (CA registered in IoT)".to_owned(),
                CertificateSource::CaSigned { ca_id, key_algorithm, .. } => {
                    format!("generate a {key_algorithm} key and CSR, sign with CA {ca_id}, RegisterCertificate")
                }
                CertificateSource::AwsIssued { key_algorithm: Some(alg), .. } => {
                    format!("generate a {alg} key and CSR, CreateCertificateFromCsr")
                }
                CertificateSource::AwsIssued { key_algorithm: None, .. } => "CreateKeysAndCertificate".to_owned(),
                CertificateSource::WithoutCa { .. } => "RegisterCertificateWithoutCA".to_owned(),
            };
            steps.push(format!("certificate '{}': {how}, status {:?}", cert.logical_name, cert.status));
            if cert.source.generates_key() {
                steps.push("store the private key in the secret sink".to_owned());
            }
        }
        if let Some(thing) = &self.thing {
            steps.push(format!("CreateThing '{}'", thing.thing_name));
            for group in &thing.thing_groups {
                steps.push(format!("AddThingToThingGroup '{group}'"));
            }
            if let Some(billing) = &thing.billing_group {
                steps.push(format!("AddThingToBillingGroup '{billing}'"));
            }
        }
        for policy in &self.policies {
            if policy.document.is_some() {
                steps.push(format!("CreatePolicy '{}' (if absent)", policy.policy_name));
            }
            if self.certificate.is_some() {
                steps.push(format!("AttachPolicy '{}' to the certificate", policy.policy_name));
            }
        }
        if self.thing.is_some() && self.certificate.is_some() {
            steps.push("AttachThingPrincipal".to_owned());
        }
        steps
    }
}
