//! The optional top-level `CDF` section of a template and the request's
//! `cdfProvisioningParameters`, with the field names CDF's code reads.

use serde_json::{Map, Value};

use super::TemplateError;
use super::eval::{child, kind};
use super::plan::{CertInfo, KeyAlgorithm};

/// The one certificate-making extension a template may choose, spelled as CDF's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "camelCase")]
pub enum PreStep {
    /// `createDeviceCertificate`: key + CSR here, signed by the deployment's CA.
    CreateDeviceCertificate,
    /// `createDeviceAWSCertificate`: AWS-issued certificate.
    #[strum(serialize = "createDeviceAWSCertificate")]
    CreateDeviceAwsCertificate,
    /// `registerDeviceCertificateWithoutCA`: register the caller's certificate.
    #[strum(serialize = "registerDeviceCertificateWithoutCA")]
    RegisterWithoutCa,
}

impl PreStep {
    /// The CDF key that selects it.
    pub fn key(self) -> &'static str {
        self.into()
    }

    /// Parameters CDF fills in for the template, as RegisterThing would have received them.
    pub fn injected_parameters(self) -> &'static [&'static str] {
        match self {
            Self::CreateDeviceCertificate => &["CertificatePem", "CaCertificatePem"],
            Self::CreateDeviceAwsCertificate => &["CertificateId", "CertificateArn", "CaCertificatePem"],
            Self::RegisterWithoutCa => &["CertificateId", "CertificateArn"],
        }
    }
}

/// An extra policy to attach (`attachAdditionalPolicies[i]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdditionalPolicy {
    /// Name of an existing policy, or the base name of one made from `document`.
    pub name: String,
    /// Policy document (JSON text) to create the policy from.
    pub document: Option<String>,
}

/// The parsed `CDF` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CdfSection {
    /// The certificate-making extension, if any.
    pub pre_step: Option<PreStep>,
    /// Key algorithm of keys made here.
    pub key_algorithm: KeyAlgorithm,
    /// With `createDeviceAWSCertificate`: let AWS generate the key (`CreateKeysAndCertificate`).
    pub aws_generated_key: bool,
    /// `attachAdditionalPolicies`.
    pub additional_policies: Vec<AdditionalPolicy>,
    /// `clientIdMustMatchThingName` (deprecated in CDF; still honoured).
    pub client_id_must_match_thing_name: bool,
}

const KEYS: [&str; 8] = [
    "createDeviceCertificate",
    "createDeviceAWSCertificate",
    "registerDeviceCertificateWithoutCA",
    "acmpca",
    "attachAdditionalPolicies",
    "clientIdMustMatchThingName",
    "keyAlgorithm",
    "awsGeneratedKey",
];

fn flag(map: &Map<String, Value>, key: &str, path: &str, errors: &mut Vec<TemplateError>) -> bool {
    match map.get(key) {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            errors.push(TemplateError::new(
                &child(path, key),
                format!("{key} must be true or false, not {}", kind(other)),
            ));
            false
        }
    }
}

/// Parses the `CDF` section found at `/CDF`.
pub fn parse_section(value: &Value, errors: &mut Vec<TemplateError>) -> CdfSection {
    let path = "/CDF";
    let Value::Object(map) = value else {
        errors.push(TemplateError::new(path, format!("the CDF section must be an object, not {}", kind(value))));
        return CdfSection::default();
    };
    for key in map.keys().filter(|k| !KEYS.contains(&k.as_str())) {
        errors.push(TemplateError::new(
            &child(path, key),
            format!("unknown CDF extension {key:?}; known: {}", KEYS.join(", ")),
        ));
    }
    if map.contains_key("acmpca") {
        errors.push(TemplateError::new(
            &child(path, "acmpca"),
            "ACM Private CA (CDF.acmpca) is not supported; use createDeviceCertificate with a CA registered in IoT",
        ));
    }
    let chosen: Vec<PreStep> = <PreStep as strum::VariantArray>::VARIANTS
        .iter()
        .copied()
        .filter(|step| flag(map, step.key(), path, errors))
        .collect();
    if chosen.len() > 1 {
        let names: Vec<_> = chosen.iter().map(|s| s.key()).collect();
        errors.push(TemplateError::new(
            path,
            format!("only one certificate extension may be true; found {}", names.join(", ")),
        ));
    }
    let key_algorithm = match map.get("keyAlgorithm") {
        None => KeyAlgorithm::EcdsaP256,
        Some(Value::String(s)) if s == "ECDSA_P256" => KeyAlgorithm::EcdsaP256,
        Some(Value::String(s)) if s == "RSA_2048" => KeyAlgorithm::Rsa2048,
        Some(other) => {
            errors.push(TemplateError::new(
                &child(path, "keyAlgorithm"),
                format!("keyAlgorithm must be \"ECDSA_P256\" or \"RSA_2048\", not {other}"),
            ));
            KeyAlgorithm::EcdsaP256
        }
    };
    let aws_generated_key = flag(map, "awsGeneratedKey", path, errors);
    if aws_generated_key && chosen.first() != Some(&PreStep::CreateDeviceAwsCertificate) {
        errors.push(TemplateError::new(
            &child(path, "awsGeneratedKey"),
            "awsGeneratedKey only applies to createDeviceAWSCertificate",
        ));
    }
    let additional_policies = match map.get("attachAdditionalPolicies") {
        None => Vec::new(),
        Some(value) => additional_policies(value, &child(path, "attachAdditionalPolicies"), errors),
    };
    CdfSection {
        pre_step: chosen.first().copied(),
        key_algorithm,
        aws_generated_key,
        additional_policies,
        client_id_must_match_thing_name: flag(map, "clientIdMustMatchThingName", path, errors),
    }
}

fn additional_policies(value: &Value, path: &str, errors: &mut Vec<TemplateError>) -> Vec<AdditionalPolicy> {
    let Value::Array(items) = value else {
        errors.push(TemplateError::new(path, "attachAdditionalPolicies must be a list of {name, document?}"));
        return Vec::new();
    };
    if items.is_empty() {
        errors.push(TemplateError::new(path, "attachAdditionalPolicies must not be empty"));
    }
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = child(path, &i.to_string());
        let Value::Object(entry) = item else {
            errors.push(TemplateError::new(&at, "each additional policy must be an object {name, document?}"));
            continue;
        };
        for key in entry.keys().filter(|k| *k != "name" && *k != "document") {
            errors
                .push(TemplateError::new(&child(&at, key), format!("unknown field {key:?}; expected name, document")));
        }
        let name = match entry.get("name") {
            Some(Value::String(n)) if !n.is_empty() => n.clone(),
            _ => {
                errors.push(TemplateError::new(&child(&at, "name"), "name is required and must be a non-empty string"));
                continue;
            }
        };
        let document = match entry.get("document") {
            None => None,
            Some(doc) => super::resources::policy_document(doc, &child(&at, "document"), errors),
        };
        out.push(AdditionalPolicy { name, document });
    }
    out
}

/// Reads `cdfProvisioningParameters.certInfo` (at `/cdfProvisioningParameters/certInfo`).
pub fn cert_info(params: &Value, required: bool, errors: &mut Vec<TemplateError>) -> CertInfo {
    let path = "/cdfProvisioningParameters/certInfo";
    match params.get("certInfo") {
        None if required => {
            errors.push(TemplateError::request(path, "certInfo is required by createDeviceCertificate"));
            CertInfo::default()
        }
        None => CertInfo::default(),
        Some(value) => match serde_path_to_error::deserialize::<_, CertInfo>(known_cert_info(value)) {
            Ok(info) => {
                if let Some(country) = &info.country
                    && (country.len() != 2 || !country.chars().all(|c| c.is_ascii_alphabetic()))
                {
                    errors.push(TemplateError::request(&child(path, "country"), "country must be a two-letter code"));
                }
                if let Some(days) = info.days_expiry
                    && !(1..=36_500).contains(&days)
                {
                    errors
                        .push(TemplateError::request(&child(path, "daysExpiry"), "daysExpiry must be from 1 to 36500"));
                }
                if required && info == CertInfo::default() {
                    errors.push(TemplateError::request(path, "certInfo must not be empty"));
                }
                info
            }
            Err(e) => {
                let field = e.path().to_string();
                let at = if field == "." { path.to_owned() } else { child(path, &field) };
                errors.push(TemplateError::request(&at, e.inner().to_string()));
                CertInfo::default()
            }
        },
    }
}

/// The `certInfo` fields CDF reads; others are ignored, as CDF ignored them
/// (`cdfProvisioningParameters` is free-form in the seed).
const CERT_INFO_FIELDS: [&str; 8] = [
    "commonName",
    "organization",
    "organizationalUnit",
    "locality",
    "stateName",
    "country",
    "emailAddress",
    "daysExpiry",
];

/// `certInfo` without the fields CDF does not read.
fn known_cert_info(value: &Value) -> Value {
    match value {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .filter(|(k, _)| CERT_INFO_FIELDS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A required non-empty string of `cdfProvisioningParameters`.
pub fn required_string(params: &Value, key: &str, purpose: &str, errors: &mut Vec<TemplateError>) -> String {
    match params.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        _ => {
            errors.push(TemplateError::request(
                &child("/cdfProvisioningParameters", key),
                format!("{key} is required by {purpose} and must be a non-empty string"),
            ));
            String::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cert_info_fields_cdf_does_not_read_are_ignored_and_known_ones_still_checked() {
        let mut errors = Vec::new();
        let params =
            serde_json::json!({"certInfo": {"commonName": "dev", "subjectAltName": "x", "includeChain": true}});
        let info = cert_info(&params, true, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(info.common_name.as_deref(), Some("dev"));
        let bad = serde_json::json!({"certInfo": {"commonName": "dev", "daysExpiry": "soon"}});
        cert_info(&bad, true, &mut errors);
        assert_eq!(errors.len(), 1, "{errors:?}");
    }

    #[test]
    fn pre_steps_are_spelled_as_cdf_keys() {
        let keys: Vec<_> = <PreStep as strum::VariantArray>::VARIANTS.iter().map(|s| s.key()).collect();
        assert_eq!(
            keys,
            ["createDeviceCertificate", "createDeviceAWSCertificate", "registerDeviceCertificateWithoutCA"]
        );
    }
}
