//! AWS IoT provisioning templates, evaluated here rather than by `iot:RegisterThing`: every
//! mistake in a template or its parameters is found before any AWS call and reported with
//! the JSON path at fault, and the result is a [`Plan`] of resources whose creation the
//! application layer can checkpoint step by step.
//!
//! - [`eval`]: `Ref` and the intrinsic functions.
//! - [`cdf`]: the `CDF` section and `cdfProvisioningParameters`.
//! - [`plan`]: the resolved resources.

pub mod cdf;
pub mod eval;
pub mod overrides;
pub mod plan;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use self::cdf::{CdfSection, PreStep};
use self::eval::{Scope, child, kind};
use self::plan::{
    CertificateSource, CertificateSpec, InitialStatus, Override, Plan, PolicySpec, ThingOverrides, ThingSpec,
};
use super::thing::ThingName;

/// Longest template body IoT accepts (characters).
pub const MAX_TEMPLATE_CHARS: usize = 10_240;
/// Longest parameter name IoT accepts.
pub const MAX_PARAMETER_NAME: usize = 2_048;
/// Longest parameter value IoT accepts.
pub const MAX_PARAMETER_VALUE: usize = 4_096;

const SECTIONS: [&str; 6] =
    ["AWSTemplateFormatVersion", "Description", "Parameters", "Mappings", "Resources", "DeviceConfiguration"];

/// Whose input is at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Culprit {
    /// The template (paths point into it).
    Template,
    /// The provisioning request (paths point into its body).
    Request,
}

/// One problem, located.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemplateError {
    /// Template or request.
    pub culprit: Culprit,
    /// JSON pointer into the culprit.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl TemplateError {
    /// A problem in the template.
    pub fn new(path: &str, message: impl Into<String>) -> Self {
        Self {
            culprit: Culprit::Template,
            path: if path.is_empty() { "/".into() } else { path.into() },
            message: message.into(),
        }
    }

    /// A problem in the request.
    pub fn request(path: &str, message: impl Into<String>) -> Self {
        Self { culprit: Culprit::Request, ..Self::new(path, message) }
    }
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whose = match self.culprit {
            Culprit::Template => "template",
            Culprit::Request => "request",
        };
        write!(f, "{whose} {}: {}", self.path, self.message)
    }
}

/// A parsed template: its sections checked, its `CDF` section split off.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// The template without `CDF`, as IoT would receive it.
    pub body: Map<String, Value>,
    /// Declared parameters: name → default.
    pub parameters: BTreeMap<String, Option<String>>,
    /// The CDF extensions.
    pub cdf: CdfSection,
}

impl Template {
    /// Parses and checks a template's structure.
    pub fn parse(text: &str) -> Result<Self, Vec<TemplateError>> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| vec![TemplateError::new("/", format!("the template is not JSON: {e}"))])?;
        let Value::Object(mut body) = value else {
            return Err(vec![TemplateError::new("/", format!("the template must be an object, not {}", kind(&value)))]);
        };
        let mut errors = Vec::new();
        let cdf = body.remove("CDF").map(|c| cdf::parse_section(&c, &mut errors)).unwrap_or_default();
        let size = Value::Object(body.clone()).to_string().chars().count();
        if size > MAX_TEMPLATE_CHARS {
            errors.push(TemplateError::new(
                "/",
                format!("the template is {size} characters without its CDF section; IoT allows {MAX_TEMPLATE_CHARS}"),
            ));
        }
        for key in body.keys().filter(|k| !SECTIONS.contains(&k.as_str())) {
            errors.push(TemplateError::new(
                &child("", key),
                format!("unknown section {key:?}; expected Parameters, Mappings, Resources"),
            ));
        }
        let parameters = parse_parameters(body.get("Parameters"), &mut errors);
        match body.get("Mappings") {
            None => {}
            Some(Value::Object(maps)) => {
                for (name, map) in maps {
                    let ok = map.as_object().is_some_and(|m| m.values().all(Value::is_object));
                    if !ok {
                        errors.push(TemplateError::new(
                            &child("/Mappings", name),
                            "a mapping must be an object of objects",
                        ));
                    }
                }
            }
            Some(other) => {
                errors.push(TemplateError::new("/Mappings", format!("Mappings must be an object, not {}", kind(other))))
            }
        }
        match body.get("Resources") {
            Some(Value::Object(r)) if !r.is_empty() => {}
            Some(Value::Object(_)) => errors.push(TemplateError::new("/Resources", "Resources must not be empty")),
            Some(other) => errors
                .push(TemplateError::new("/Resources", format!("Resources must be an object, not {}", kind(other)))),
            None => errors.push(TemplateError::new("/Resources", "the template has no Resources section")),
        }
        if errors.is_empty() { Ok(Self { body, parameters, cdf }) } else { Err(errors) }
    }

    /// The template body IoT's RegisterThing would receive (no `CDF` section).
    pub fn body_text(&self) -> String {
        Value::Object(self.body.clone()).to_string()
    }

    /// Resolves parameters and resources into a [`Plan`]; reports every problem found.
    pub fn plan(
        &self,
        request_parameters: &BTreeMap<String, String>,
        cdf_parameters: &Value,
    ) -> Result<Plan, Vec<TemplateError>> {
        let mut errors = Vec::new();
        let mut values = BTreeMap::new();
        for (name, value) in request_parameters {
            let at = child("/parameters", name);
            if name.len() > MAX_PARAMETER_NAME {
                errors.push(TemplateError::request(
                    &at,
                    format!("parameter names are limited to {MAX_PARAMETER_NAME} characters"),
                ));
            }
            if value.chars().count() > MAX_PARAMETER_VALUE {
                errors.push(TemplateError::request(
                    &at,
                    format!("parameter values are limited to {MAX_PARAMETER_VALUE} characters"),
                ));
            }
        }
        // CDF fills some parameters itself once the certificate exists; stand-ins mark them.
        let injected: &[&str] = self.cdf.pre_step.map_or(&[], PreStep::injected_parameters);
        let mut missing = BTreeSet::new();
        for (name, default) in &self.parameters {
            if injected.contains(&name.as_str()) {
                values.insert(name.clone(), placeholder(name));
            } else if let Some(v) = request_parameters.get(name).or(default.as_ref()) {
                values.insert(name.clone(), v.clone());
            } else {
                missing.insert(name.clone());
            }
        }
        for name in injected {
            values.entry((*name).to_owned()).or_insert_with(|| placeholder(name));
        }
        let ignored_parameters: Vec<String> =
            request_parameters.keys().filter(|k| !self.parameters.contains_key(*k)).cloned().collect();
        if !errors.is_empty() {
            return Err(errors);
        }

        let empty = Map::new();
        let mappings = self.body.get("Mappings").and_then(Value::as_object).unwrap_or(&empty);
        let scope = Scope { parameters: &values, mappings, missing: &missing };
        let resources = self.body.get("Resources").and_then(Value::as_object).unwrap_or(&empty);
        let mut thing = None;
        let mut certificate: Option<CertificateSpec> = None;
        let mut policies = Vec::new();
        for (logical, resource) in resources {
            let at = child("/Resources", logical);
            let Some((kind_name, properties, overrides)) = resource_parts(resource, &at, &mut errors) else { continue };
            let result = match kind_name.as_str() {
                "AWS::IoT::Thing" => thing_spec(&scope, logical, properties, overrides, &at).map(|t| {
                    if thing.is_some() {
                        errors.push(TemplateError::new(&at, "a template may have only one AWS::IoT::Thing resource"));
                    }
                    thing = Some(t);
                }),
                "AWS::IoT::Certificate" => certificate_spec(&scope, logical, properties, overrides, &at).map(|c| {
                    if certificate.is_some() {
                        errors.push(TemplateError::new(
                            &at,
                            "a template may have only one AWS::IoT::Certificate resource",
                        ));
                    }
                    certificate = Some(c);
                }),
                "AWS::IoT::Policy" => {
                    policy_spec(&scope, logical, properties, overrides, &at).map(|p| policies.push(p))
                }
                other => Err(vec![TemplateError::new(
                    &child(&at, "Type"),
                    format!(
                        "resource type {other:?} is not supported; use AWS::IoT::Thing, AWS::IoT::Certificate or AWS::IoT::Policy"
                    ),
                )]),
            };
            if let Err(mut e) = result {
                errors.append(&mut e);
            }
        }

        self.apply_cdf(cdf_parameters, &mut thing, &mut certificate, &mut policies, &mut errors);
        if let Some(t) = &thing
            && t.thing_name.contains(PLACEHOLDER_MARK)
        {
            errors.push(TemplateError::new(
                &format!("/Resources/{}", t.logical_name),
                "the thing may not use parameters CDF fills in after the certificate is made",
            ));
        }
        // A policy named twice (template and attachAdditionalPolicies) is attached once.
        let mut names = BTreeSet::new();
        policies.retain(|p| names.insert(p.policy_name.clone()));
        if errors.is_empty() {
            Ok(Plan { thing, certificate, policies, ignored_parameters })
        } else {
            let mut seen = BTreeSet::new();
            errors.retain(|e| seen.insert((e.path.clone(), e.message.clone())));
            Err(errors)
        }
    }

    fn apply_cdf(
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
                None => errors.push(TemplateError::new(
                    "/Resources",
                    format!("CDF.{} needs an AWS::IoT::Certificate resource to register the certificate", step.key()),
                )),
            }
        }
        let needs_certificate = !self.cdf.additional_policies.is_empty() || self.cdf.client_id_must_match_thing_name;
        if needs_certificate && certificate.is_none() {
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
fn client_id_policy(thing_name: &str) -> String {
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

const PLACEHOLDER_MARK: char = '\u{1}';

fn placeholder(name: &str) -> String {
    format!("{PLACEHOLDER_MARK}cdf:{name}{PLACEHOLDER_MARK}")
}

fn parse_parameters(value: Option<&Value>, errors: &mut Vec<TemplateError>) -> BTreeMap<String, Option<String>> {
    let mut out = BTreeMap::new();
    let Some(value) = value else { return out };
    let Value::Object(map) = value else {
        errors.push(TemplateError::new("/Parameters", format!("Parameters must be an object, not {}", kind(value))));
        return out;
    };
    for (name, declaration) in map {
        let at = child("/Parameters", name);
        let Value::Object(decl) = declaration else {
            errors.push(TemplateError::new(&at, "a parameter must be an object like {\"Type\": \"String\"}"));
            continue;
        };
        match decl.get("Type") {
            Some(Value::String(t)) if t == "String" => {}
            Some(other) => errors.push(TemplateError::new(
                &child(&at, "Type"),
                format!("parameter type {other} is not supported; IoT templates use \"String\""),
            )),
            None => errors.push(TemplateError::new(&child(&at, "Type"), "the parameter has no Type")),
        }
        for key in decl.keys().filter(|k| !["Type", "Default", "Description"].contains(&k.as_str())) {
            errors.push(TemplateError::new(&child(&at, key), format!("unknown parameter attribute {key:?}")));
        }
        let default = match decl.get("Default") {
            None => None,
            Some(Value::String(d)) => Some(d.clone()),
            Some(other) => {
                errors.push(TemplateError::new(
                    &child(&at, "Default"),
                    format!("Default must be a string, not {}", kind(other)),
                ));
                None
            }
        };
        out.insert(name.clone(), default);
    }
    out
}

/// A resource's type, properties and override settings.
type ResourceParts<'r> = (String, &'r Map<String, Value>, Option<&'r Map<String, Value>>);

fn resource_parts<'r>(resource: &'r Value, at: &str, errors: &mut Vec<TemplateError>) -> Option<ResourceParts<'r>> {
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

fn unknown_properties(properties: &Map<String, Value>, allowed: &[&str], at: &str, errors: &mut Vec<TemplateError>) {
    for key in properties.keys().filter(|k| !allowed.contains(&k.as_str())) {
        errors.push(TemplateError::new(
            &child(&child(at, "Properties"), key),
            format!("unknown property {key:?}; expected one of {}", allowed.join(", ")),
        ));
    }
}

fn override_setting(
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

fn check_override_keys(
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

const ALL_OVERRIDES: [Override; 4] = [Override::DoNothing, Override::Replace, Override::Fail, Override::Merge];
const NO_MERGE: [Override; 3] = [Override::DoNothing, Override::Replace, Override::Fail];

fn thing_spec(
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
                    && !name.contains(PLACEHOLDER_MARK)
                {
                    errors.push(TemplateError::new(&child(&props, "ThingName"), format!("{m} (got {name:?})")));
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
                        Value::String(s) if s.chars().count() <= 800 => {
                            attributes.insert(k, s);
                        }
                        Value::String(_) => {
                            errors.push(TemplateError::new(&at, "attribute values are limited to 800 characters"))
                        }
                        other => errors.push(TemplateError::new(
                            &at,
                            format!("attribute values must be strings, not {}", kind(&other)),
                        )),
                    }
                }
            }
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

fn optional_string(
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

fn certificate_spec(
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
    if let Some(csr) = &csr
        && !csr.contains("CERTIFICATE REQUEST")
    {
        errors.push(TemplateError::new(
            &child(&props, "CertificateSigningRequest"),
            "CertificateSigningRequest must be a PEM certificate signing request",
        ));
    }
    let status = match properties.get("Status").map(|s| scope.string(s, &child(&props, "Status"), "Status")) {
        None => InitialStatus::Active,
        Some(Ok(s)) if s == "ACTIVE" => InitialStatus::Active,
        Some(Ok(s)) if s == "INACTIVE" => InitialStatus::Inactive,
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

fn policy_spec(
    scope: &Scope<'_>,
    logical: &str,
    properties: &Map<String, Value>,
    overrides: Option<&Map<String, Value>>,
    at: &str,
) -> Result<PolicySpec, Vec<TemplateError>> {
    let mut errors = Vec::new();
    let props = child(at, "Properties");
    unknown_properties(properties, &["PolicyName", "PolicyDocument"], at, &mut errors);
    check_override_keys(overrides, &[], at, &mut errors);
    let name = optional_string(scope, properties, "PolicyName", &props, &mut errors);
    let document = match properties.get("PolicyDocument") {
        None => None,
        Some(v) => match scope.eval(v, &child(&props, "PolicyDocument")) {
            Ok(doc) => policy_document(&doc, &child(&props, "PolicyDocument"), &mut errors),
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
fn policy_document(value: &Value, path: &str, errors: &mut Vec<TemplateError>) -> Option<String> {
    let text = match value {
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
