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
mod extensions;
pub mod overrides;
pub mod plan;
pub mod policy_allow;
mod policy_guard;
mod resources;

use self::resources::{certificate_spec, policy_spec, resource_parts, thing_spec};

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

use self::cdf::{CdfSection, PreStep};
use self::eval::{Scope, UNKNOWN_MARK, child, kind};
use self::plan::{CertificateSpec, Plan};

/// Longest template body IoT accepts (characters).
pub const MAX_TEMPLATE_CHARS: usize = 10_240;
/// Longest parameter name IoT accepts.
pub const MAX_PARAMETER_NAME: usize = 2_048;
/// Longest parameter value IoT accepts.
pub const MAX_PARAMETER_VALUE: usize = 4_096;

const SECTIONS: [&str; 6] =
    ["AWSTemplateFormatVersion", "Description", "Parameters", "Mappings", "Resources", "DeviceConfiguration"];

/// How templates are executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProvisioningMode {
    /// Evaluated here, executed with IoT's step APIs, checkpointed (the default).
    #[default]
    Steps,
    /// Validated here, then handed to `iot:RegisterThing` for AWS's own evaluation (CDF's
    /// way; 10 TPS, and a crash mid-call cannot be resumed step by step).
    RegisterThing,
}

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
    /// What each declared parameter admits (`AllowedPattern`, `AllowedValues`).
    pub rules: BTreeMap<String, ParameterRules>,
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
        let (parameters, rules) = parse_parameters(body.get("Parameters"), &mut errors);
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
        if errors.is_empty() { Ok(Self { body, parameters, rules, cdf }) } else { Err(errors) }
    }

    /// The template body IoT's RegisterThing would receive (no `CDF` section, and no
    /// `AllowedPattern` or `AllowedValues`, which this service checks and IoT does not know).
    pub fn body_text(&self) -> String {
        let mut body = self.body.clone();
        if let Some(Value::Object(parameters)) = body.get_mut("Parameters") {
            for declaration in parameters.values_mut().filter_map(Value::as_object_mut) {
                declaration.remove("AllowedPattern");
                declaration.remove("AllowedValues");
            }
        }
        Value::Object(body).to_string()
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
            // Control characters (newlines and tabs aside, which PEM values carry) are never
            // meaningful in a parameter, and one of them marks values CDF fills in itself.
            if let Some(bad) = value.chars().find(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
                errors.push(TemplateError::request(
                    &at,
                    format!("parameter values may not contain control characters (found U+{:04X})", u32::from(bad)),
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
        for (name, rules) in &self.rules {
            let Some(value) = values.get(name).filter(|_| !injected.contains(&name.as_str())) else { continue };
            if rules.admits(value) == Some(false) {
                errors.push(TemplateError::request(&child("/parameters", name), rules.refusal(value)));
            }
        }
        let ignored_parameters: Vec<String> =
            request_parameters.keys().filter(|k| !self.parameters.contains_key(*k)).cloned().collect();
        if !errors.is_empty() {
            return Err(errors);
        }
        self.resolve(&values, &missing, ignored_parameters, cdf_parameters)
    }

    /// Every error the template has whatever the parameters: undeclared `Ref`s, function
    /// arity and argument types, unknown functions, resource types and properties, literal
    /// values IoT would refuse, `Fn::Select` and `Fn::FindInMap` on literals, the CDF section.
    /// What depends on a parameter's value (or on `cdfProvisioningParameters`) is left for the
    /// request: every declared parameter is taken as unknown.
    pub fn check_static(&self) -> Vec<TemplateError> {
        let values: BTreeMap<String, String> = self
            .parameters
            .keys()
            .map(|name| (name.clone(), format!("{UNKNOWN_MARK}parameter:{name}{UNKNOWN_MARK}")))
            .chain(
                self.cdf
                    .pre_step
                    .map_or(&[][..], PreStep::injected_parameters)
                    .iter()
                    .map(|n| ((*n).to_owned(), placeholder(n))),
            )
            .collect();
        match self.resolve(&values, &BTreeSet::new(), Vec::new(), &Value::Object(Map::new())) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.into_iter().filter(|e| e.culprit == Culprit::Template).collect(),
        }
    }

    /// Evaluates the resources with `values` into a plan.
    fn resolve(
        &self,
        values: &BTreeMap<String, String>,
        missing: &BTreeSet<String>,
        ignored_parameters: Vec<String>,
        cdf_parameters: &Value,
    ) -> Result<Plan, Vec<TemplateError>> {
        let mut errors = Vec::new();
        let empty = Map::new();
        let mappings = self.body.get("Mappings").and_then(Value::as_object).unwrap_or(&empty);
        let scope = Scope { parameters: values, mappings, missing };
        let resources = self.body.get("Resources").and_then(Value::as_object).unwrap_or(&empty);
        let mut thing = None;
        let mut certificate: Option<CertificateSpec> = None;
        let mut policies = Vec::new();
        let guard = policy_guard::Guard {
            declared: &self.parameters,
            rules: &self.rules,
            injected: self.cdf.pre_step.map_or(&[], PreStep::injected_parameters),
        };
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
                    policy_spec(&scope, &guard, logical, properties, overrides, &at).map(|p| policies.push(p))
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
            && t.thing_name.contains(&placeholder_prefix())
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
}

/// A parameter CDF fills in once the certificate exists: unknown while the plan is made.
fn placeholder(name: &str) -> String {
    format!("{}{name}{UNKNOWN_MARK}", placeholder_prefix())
}

fn placeholder_prefix() -> String {
    format!("{UNKNOWN_MARK}cdf:")
}

/// Declared parameters and what they admit.
type Parameters = (BTreeMap<String, Option<String>>, BTreeMap<String, ParameterRules>);

fn parse_parameters(value: Option<&Value>, errors: &mut Vec<TemplateError>) -> Parameters {
    let mut out = BTreeMap::new();
    let mut all_rules = BTreeMap::new();
    let Some(value) = value else { return (out, all_rules) };
    let Value::Object(map) = value else {
        errors.push(TemplateError::new("/Parameters", format!("Parameters must be an object, not {}", kind(value))));
        return (out, all_rules);
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
        let known = ["Type", "Default", "Description", "AllowedPattern", "AllowedValues"];
        for key in decl.keys().filter(|k| !known.contains(&k.as_str())) {
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
        let rules = parameter_rules(decl, &at, errors);
        if let Some(d) = &default
            && rules.admits(d) == Some(false)
        {
            errors.push(TemplateError::new(&child(&at, "Default"), rules.refusal(d)));
        }
        if rules.allowed_pattern.is_some() || rules.allowed_values.is_some() {
            all_rules.insert(name.clone(), rules);
        }
        out.insert(name.clone(), default);
    }
    (out, all_rules)
}

fn parameter_rules(decl: &Map<String, Value>, at: &str, errors: &mut Vec<TemplateError>) -> ParameterRules {
    let allowed_pattern = match decl.get("AllowedPattern") {
        None => None,
        Some(Value::String(p)) => match ParameterRules::compile(p) {
            Ok(_) => Some(p.clone()),
            Err(e) => {
                errors.push(TemplateError::new(
                    &child(at, "AllowedPattern"),
                    format!("AllowedPattern is not a valid regular expression: {}", crate::domain::error::bounded(&e)),
                ));
                None
            }
        },
        Some(other) => {
            errors.push(TemplateError::new(
                &child(at, "AllowedPattern"),
                format!("AllowedPattern must be a string, not {}", kind(other)),
            ));
            None
        }
    };
    let allowed_values = match decl.get("AllowedValues") {
        None => None,
        Some(Value::Array(items)) if !items.is_empty() && items.iter().all(Value::is_string) => {
            Some(items.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        }
        Some(_) => {
            errors.push(TemplateError::new(
                &child(at, "AllowedValues"),
                "AllowedValues must be a non-empty list of strings",
            ));
            None
        }
    };
    ParameterRules { allowed_pattern, allowed_values }
}

/// What a parameter admits, as its declaration says (CloudFormation's attributes): a value
/// must be one of `AllowedValues` and match `AllowedPattern` in full. A value pasted into a
/// policy document beyond letters, digits and `_.,:@=-` needs one of them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParameterRules {
    /// A regular expression the whole value must match.
    pub allowed_pattern: Option<String>,
    /// The only values accepted.
    pub allowed_values: Option<Vec<String>>,
}

impl ParameterRules {
    /// Compiles a pattern anchored at both ends.
    fn compile(pattern: &str) -> Result<regex::Regex, String> {
        regex::RegexBuilder::new(&format!("^(?:{pattern})$")).size_limit(1 << 20).build().map_err(|e| e.to_string())
    }

    /// Whether `value` is admitted; `None` when nothing is declared.
    pub fn admits(&self, value: &str) -> Option<bool> {
        if self.allowed_pattern.is_none() && self.allowed_values.is_none() {
            return None;
        }
        let in_values = self.allowed_values.as_ref().is_none_or(|v| v.iter().any(|a| a == value));
        let matches = self.allowed_pattern.as_ref().is_none_or(|p| Self::compile(p).is_ok_and(|r| r.is_match(value)));
        Some(in_values && matches)
    }

    fn refusal(&self, value: &str) -> String {
        let got = crate::domain::error::bounded(value);
        match (&self.allowed_values, &self.allowed_pattern) {
            (Some(values), _) if !values.iter().any(|a| a == value) => {
                let listed: Vec<String> = values.iter().take(10).map(|v| crate::domain::error::bounded(v)).collect();
                format!("the value {got:?} is not one of the template's AllowedValues ({})", listed.join(", "))
            }
            (_, Some(pattern)) => format!(
                "the value {got:?} does not match the template's AllowedPattern {:?}",
                crate::domain::error::bounded(pattern)
            ),
            _ => format!("the value {got:?} is not admitted by the template"),
        }
    }
}

/// A resource's type, properties and override settings.
type ResourceParts<'r> = (String, &'r Map<String, Value>, Option<&'r Map<String, Value>>);
