//! The template's `Resources`: each `AWS::IoT::Thing`, `AWS::IoT::Certificate` and
//! `AWS::IoT::Policy` read into its spec, with its `OverrideSettings`, and every property
//! IoT would refuse reported with its path.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::eval::{Scope, UNKNOWN_MARK, child, is_unknown, kind};
use super::plan::{CertificateSource, CertificateSpec, InitialStatus, Override, PolicySpec, ThingOverrides, ThingSpec};
use super::*;
use crate::domain::thing::ThingName;

/// An error about a value: the request's when the property takes it as it is from a
/// parameter, the template's otherwise.
fn at_input(value: Option<&Value>, at: &str, message: &str) -> TemplateError {
    match value.and_then(|v| v.get("Ref")).and_then(Value::as_str) {
        Some(parameter) => {
            TemplateError::request(&child("/parameters", parameter), format!("{message} (used at {at})"))
        }
        None => TemplateError::new(at, message),
    }
}

pub(super) fn resource_parts<'r>(
    resource: &'r Value,
    at: &str,
    errors: &mut Vec<TemplateError>,
) -> Option<ResourceParts<'r>> {
    let Value::Object(r) = resource else {
        errors.push(TemplateError::new(at, "a resource must be an object with Type and Properties"));
        return None;
    };
    for key in r.keys().filter(|k| !["Type", "Properties", "OverrideSettings"].contains(&k.as_str())) {
        errors.push(TemplateError::new(&child(at, key), format!("unknown resource attribute {key:?}")));
    }
    let Some(Value::String(type_name)) = r.get("Type") else {
        errors.push(TemplateError::new(&child(at, "Type"), "the resource has no Type string"));
        return None;
    };
    let Some(Value::Object(properties)) = r.get("Properties") else {
        errors.push(TemplateError::new(&child(at, "Properties"), "the resource has no Properties object"));
        return None;
    };
    let overrides = match r.get("OverrideSettings") {
        None => None,
        Some(Value::Object(o)) => Some(o),
        Some(_) => {
            errors.push(TemplateError::new(&child(at, "OverrideSettings"), "OverrideSettings must be an object"));
            return None;
        }
    };
    Some((type_name.clone(), properties, overrides))
}

pub(super) fn unknown_properties(
    properties: &Map<String, Value>,
    allowed: &[&str],
    at: &str,
    errors: &mut Vec<TemplateError>,
) {
    for key in properties.keys().filter(|k| !allowed.contains(&k.as_str())) {
        errors.push(TemplateError::new(
            &child(&child(at, "Properties"), key),
            format!("unknown property {key:?}; expected one of {}", allowed.join(", ")),
        ));
    }
}

pub(super) fn override_setting(
    overrides: Option<&Map<String, Value>>,
    key: &str,
    allowed: &[Override],
    at: &str,
    errors: &mut Vec<TemplateError>,
) -> Override {
    let Some(value) = overrides.and_then(|o| o.get(key)) else { return Override::DoNothing };
    let path = child(&child(at, "OverrideSettings"), key);
    match serde_json::from_value::<Override>(value.clone()) {
        Ok(o) if allowed.contains(&o) => o,
        _ => {
            let names: Vec<String> =
                allowed.iter().filter_map(|o| serde_json::to_value(o).ok()).map(|v| v.to_string()).collect();
            errors.push(TemplateError::new(
                &path,
                format!("{key} override must be one of {}, not {value}", names.join(", ")),
            ));
            Override::DoNothing
        }
    }
}

pub(super) fn check_override_keys(
    overrides: Option<&Map<String, Value>>,
    allowed: &[&str],
    at: &str,
    errors: &mut Vec<TemplateError>,
) {
    for key in overrides.into_iter().flat_map(|o| o.keys()).filter(|k| !allowed.contains(&k.as_str())) {
        let message = if allowed.is_empty() {
            "this resource type takes no OverrideSettings".to_owned()
        } else {
            format!("no override setting {key:?}; expected {}", allowed.join(", "))
        };
        errors.push(TemplateError::new(&child(&child(at, "OverrideSettings"), key), message));
    }
}

pub(super) const ALL_OVERRIDES: [Override; 4] =
    [Override::DoNothing, Override::Replace, Override::Fail, Override::Merge];
pub(super) const NO_MERGE: [Override; 3] = [Override::DoNothing, Override::Replace, Override::Fail];

pub(super) fn thing_spec(
    scope: &Scope<'_>,
    logical: &str,
    properties: &Map<String, Value>,
    overrides: Option<&Map<String, Value>>,
    at: &str,
) -> Result<ThingSpec, Vec<TemplateError>> {
    let mut errors = Vec::new();
    let props = child(at, "Properties");
    unknown_properties(
        properties,
        &["ThingName", "AttributePayload", "ThingTypeName", "ThingGroups", "BillingGroup"],
        at,
        &mut errors,
    );
    let thing_name = match properties.get("ThingName") {
        None => {
            errors.push(TemplateError::new(&child(&props, "ThingName"), "ThingName is required"));
            String::new()
        }
        Some(v) => match scope.string(v, &child(&props, "ThingName"), "ThingName") {
            Ok(name) => {
                if let Err(m) = ThingName::parse(&name)
                    && !name.contains(UNKNOWN_MARK)
                {
                    let at = child(&props, "ThingName");
                    // A name taken as it is from a parameter is the request's fault, not the template's.
                    let error = match v.get("Ref").and_then(Value::as_str) {
                        Some(parameter) => TemplateError::request(
                            &child("/parameters", parameter),
                            format!("{m} (used at {at}; got {:?})", crate::domain::command::bounded(&name)),
                        ),
                        None => {
                            TemplateError::new(&at, format!("{m} (got {:?})", crate::domain::command::bounded(&name)))
                        }
                    };
                    errors.push(error);
                }
                name
            }
            Err(e) => {
                errors.push(e);
                String::new()
            }
        },
    };
    let thing_type = optional_string(scope, properties, "ThingTypeName", &props, &mut errors);
    let billing_group = optional_string(scope, properties, "BillingGroup", &props, &mut errors);
    let mut attributes = BTreeMap::new();
    if let Some(v) = properties.get("AttributePayload") {
        let path = child(&props, "AttributePayload");
        match scope.eval(v, &path) {
            Ok(Value::Object(map)) => {
                for (k, v) in map {
                    let at = child(&path, &k);
                    if k.is_empty()
                        || k.len() > 128
                        || !k.chars().all(|c| c.is_ascii_alphanumeric() || "_.,@/:#-".contains(c))
                    {
                        errors.push(TemplateError::new(
                            &at,
                            "attribute names are 1-128 characters of letters, digits and _.,@/:#-",
                        ));
                    }
                    match v {
                        // Checked when the value is known.
                        Value::String(s) if s.contains(UNKNOWN_MARK) => {
                            attributes.insert(k, s);
                        }
                        Value::String(s)
                            if s.chars().count() <= 800
                                && s.chars().all(|c| c.is_ascii_alphanumeric() || "_.,@/:#=[]-".contains(c)) =>
                        {
                            attributes.insert(k, s);
                        }
                        Value::String(_) => errors.push(TemplateError::new(
                            &at,
                            "attribute values are up to 800 characters of letters, digits and _.,@/:#=[]- (AWS IoT's pattern)",
                        )),
                        other => errors.push(TemplateError::new(
                            &at,
                            format!("attribute values must be strings, not {}", kind(&other)),
                        )),
                    }
                }
            }
            Ok(unknown) if is_unknown(&unknown) => {}
            Ok(other) => errors
                .push(TemplateError::new(&path, format!("AttributePayload must be an object, not {}", kind(&other)))),
            Err(e) => errors.push(e),
        }
    }
    let limit = if thing_type.is_some() { 50 } else { 3 };
    if attributes.len() > limit {
        errors.push(TemplateError::new(
            &child(&props, "AttributePayload"),
            format!(
                "a thing {} has at most {limit} attributes; this one has {}",
                if limit == 3 { "without a thing type" } else { "with a thing type" },
                attributes.len()
            ),
        ));
    }
    let thing_groups = match properties.get("ThingGroups") {
        None => Vec::new(),
        Some(v) => {
            let path = child(&props, "ThingGroups");
            match scope.eval(v, &path) {
                Ok(Value::Array(items)) => items
                    .into_iter()
                    .enumerate()
                    .filter_map(|(i, g)| match g {
                        Value::String(s) if !s.is_empty() => Some(s),
                        other => {
                            errors.push(TemplateError::new(
                                &child(&path, &i.to_string()),
                                format!("a thing group name must be a non-empty string, not {}", kind(&other)),
                            ));
                            None
                        }
                    })
                    .collect(),
                Ok(unknown) if is_unknown(&unknown) => Vec::new(),
                Ok(other) => {
                    errors.push(TemplateError::new(&path, format!("ThingGroups must be a list, not {}", kind(&other))));
                    Vec::new()
                }
                Err(e) => {
                    errors.push(e);
                    Vec::new()
                }
            }
        }
    };
    check_override_keys(overrides, &["AttributePayload", "ThingTypeName", "ThingGroups"], at, &mut errors);
    let overrides = ThingOverrides {
        attribute_payload: override_setting(overrides, "AttributePayload", &ALL_OVERRIDES, at, &mut errors),
        thing_type_name: override_setting(overrides, "ThingTypeName", &NO_MERGE, at, &mut errors),
        thing_groups: override_setting(overrides, "ThingGroups", &ALL_OVERRIDES, at, &mut errors),
    };
    if errors.is_empty() {
        Ok(ThingSpec {
            logical_name: logical.to_owned(),
            thing_name,
            attributes,
            thing_type,
            thing_groups,
            billing_group,
            overrides,
        })
    } else {
        Err(errors)
    }
}

pub(super) fn optional_string(
    scope: &Scope<'_>,
    properties: &Map<String, Value>,
    key: &str,
    props: &str,
    errors: &mut Vec<TemplateError>,
) -> Option<String> {
    let value = properties.get(key)?;
    match scope.string(value, &child(props, key), key) {
        Ok(s) if !s.is_empty() => Some(s),
        Ok(_) => {
            errors.push(TemplateError::new(&child(props, key), format!("{key} must not be empty")));
            None
        }
        Err(e) => {
            errors.push(e);
            None
        }
    }
}

pub(super) fn certificate_spec(
    scope: &Scope<'_>,
    logical: &str,
    properties: &Map<String, Value>,
    overrides: Option<&Map<String, Value>>,
    at: &str,
) -> Result<CertificateSpec, Vec<TemplateError>> {
    let mut errors = Vec::new();
    let props = child(at, "Properties");
    unknown_properties(
        properties,
        &["CertificateSigningRequest", "CertificateId", "CertificatePem", "CACertificatePem", "Status"],
        at,
        &mut errors,
    );
    let csr = optional_string(scope, properties, "CertificateSigningRequest", &props, &mut errors);
    let id = optional_string(scope, properties, "CertificateId", &props, &mut errors);
    let pem = optional_string(scope, properties, "CertificatePem", &props, &mut errors);
    let ca_pem = optional_string(scope, properties, "CACertificatePem", &props, &mut errors);
    let given = [csr.is_some(), id.is_some(), pem.is_some()].iter().filter(|g| **g).count();
    if given != 1 && errors.is_empty() {
        errors.push(TemplateError::new(
            &props,
            format!("a certificate needs exactly one of CertificateSigningRequest, CertificateId, CertificatePem; found {given}"),
        ));
    }
    if ca_pem.is_some() && pem.is_none() {
        errors
            .push(TemplateError::new(&child(&props, "CACertificatePem"), "CACertificatePem goes with CertificatePem"));
    }
    // Checked in full here, so that a broken CSR or certificate is the caller's 400, not an
    // AWS error later (or a 500 from an emulator).
    if let Some(csr) = &csr
        && !csr.contains(UNKNOWN_MARK)
        && let Err(e) = crate::domain::certificate::check_csr(csr)
    {
        errors.push(at_input(
            properties.get("CertificateSigningRequest"),
            &child(&props, "CertificateSigningRequest"),
            &format!("CertificateSigningRequest is {e}"),
        ));
    }
    if let Some(pem) = &pem
        && !pem.contains(UNKNOWN_MARK)
        && let Err(e) = crate::domain::certificate::check_certificate(pem)
    {
        errors.push(at_input(
            properties.get("CertificatePem"),
            &child(&props, "CertificatePem"),
            &format!("CertificatePem is {e}"),
        ));
    }
    let status = match properties.get("Status").map(|s| scope.string(s, &child(&props, "Status"), "Status")) {
        None => InitialStatus::Active,
        Some(Ok(s)) if s == "ACTIVE" => InitialStatus::Active,
        Some(Ok(s)) if s == "INACTIVE" => InitialStatus::Inactive,
        Some(Ok(s)) if s.contains(UNKNOWN_MARK) => InitialStatus::Active,
        Some(Ok(s)) => {
            errors.push(TemplateError::new(
                &child(&props, "Status"),
                format!("Status must be ACTIVE or INACTIVE, not {s:?}"),
            ));
            InitialStatus::Active
        }
        Some(Err(e)) => {
            errors.push(e);
            InitialStatus::Active
        }
    };
    check_override_keys(overrides, &["Status"], at, &mut errors);
    let status_override = override_setting(overrides, "Status", &NO_MERGE, at, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    let source = match (csr, id, pem) {
        (Some(csr), _, _) => CertificateSource::Csr { csr },
        (_, Some(certificate_id), _) => CertificateSource::Existing { certificate_id },
        (_, _, Some(certificate_pem)) => CertificateSource::Register { certificate_pem, ca_certificate_pem: ca_pem },
        _ => unreachable!("exactly one source was checked above"),
    };
    Ok(CertificateSpec { logical_name: logical.to_owned(), source, status, status_override })
}

pub(super) fn policy_spec(
    scope: &Scope<'_>,
    guard: &super::policy_guard::Guard<'_>,
    logical: &str,
    properties: &Map<String, Value>,
    overrides: Option<&Map<String, Value>>,
    at: &str,
) -> Result<PolicySpec, Vec<TemplateError>> {
    let mut errors = Vec::new();
    let props = child(at, "Properties");
    unknown_properties(properties, &["PolicyName", "PolicyDocument"], at, &mut errors);
    check_override_keys(overrides, &[], at, &mut errors);
    if let Some(v) = properties.get("PolicyName") {
        errors.extend(guard.policy_name(v, &child(&props, "PolicyName")));
    }
    let name = optional_string(scope, properties, "PolicyName", &props, &mut errors);
    let document = match properties.get("PolicyDocument") {
        None => None,
        Some(v) => match scope.eval(v, &child(&props, "PolicyDocument")) {
            Ok(doc) => {
                // Refused values are reported as the request's, before what they did to the document.
                let refused = guard.policy_document(scope, v, &child(&props, "PolicyDocument"));
                if refused.is_empty() {
                    policy_document(&doc, &child(&props, "PolicyDocument"), &mut errors)
                } else {
                    errors.extend(refused);
                    None
                }
            }
            Err(e) => {
                errors.push(e);
                None
            }
        },
    };
    let spec = match (name, document) {
        (Some(_), Some(_)) => {
            errors.push(TemplateError::new(&props, "give PolicyName (an existing policy) or PolicyDocument, not both"));
            None
        }
        (Some(policy_name), None) => Some(PolicySpec { logical_name: logical.to_owned(), policy_name, document: None }),
        // IoT names a policy made from a document after the document's hash.
        (None, Some(doc)) => Some(PolicySpec {
            logical_name: logical.to_owned(),
            policy_name: hex::encode(Sha256::digest(doc.as_bytes())),
            document: Some(doc),
        }),
        (None, None) if errors.is_empty() => {
            errors.push(TemplateError::new(&props, "a policy needs PolicyName or PolicyDocument"));
            None
        }
        (None, None) => None,
    };
    match spec {
        Some(spec) if errors.is_empty() => Ok(spec),
        _ => Err(errors),
    }
}

/// A policy document given as JSON text (or as an object, serialized), checked to be a
/// JSON object with a `Statement`.
pub(super) fn policy_document(value: &Value, path: &str, errors: &mut Vec<TemplateError>) -> Option<String> {
    let text = match value {
        // A document made from a parameter is checked when the parameter is known.
        unknown if is_unknown(unknown) => return Some(unknown.to_string()),
        Value::String(s) => s.clone(),
        Value::Object(_) => value.to_string(),
        other => {
            errors.push(TemplateError::new(
                path,
                format!("a policy document must be JSON text or an object, not {}", kind(other)),
            ));
            return None;
        }
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(doc)) if doc.contains_key("Statement") => Some(text),
        Ok(_) => {
            errors.push(TemplateError::new(path, "a policy document must be an object with a Statement"));
            None
        }
        Err(e) => {
            errors.push(TemplateError::new(path, format!("the policy document is not valid JSON: {e}")));
            None
        }
    }
}
