//! Keeps request values from widening a policy. A value pasted into a `PolicyDocument` (text
//! or object form, through `Ref`, `Fn::Sub`, `Fn::Join`, `Fn::Split` or `Fn::Select`) must be
//! inert (letters, digits and `_.,:@=-`) unless its parameter declares an `AllowedPattern` or
//! `AllowedValues` that admits it; the evaluated document must keep the template's statements,
//! effects and actions (only resource and condition values are filled in); a `PolicyName`
//! made from a parameter needs that parameter's `AllowedValues`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::eval::{Scope, UNKNOWN_MARK, child};
use super::{ParameterRules, TemplateError};
use crate::domain::error::bounded;

/// Stand-ins for parameter values while a document's structure is worked out.
const STAND_INS: [&str; 2] = ["cdfparametera", "cdfparameterb"];

/// What the guard knows of the template's parameters.
#[derive(Debug)]
pub(super) struct Guard<'a> {
    /// Declared parameters (name → default).
    pub(super) declared: &'a BTreeMap<String, Option<String>>,
    /// `AllowedPattern` and `AllowedValues` declarations.
    pub(super) rules: &'a BTreeMap<String, ParameterRules>,
    /// Parameters CDF fills in itself (not the caller's input).
    pub(super) injected: &'a [&'static str],
}

/// Whether `value` may be pasted into a policy without any declaration.
pub(super) fn inert(value: &str) -> bool {
    value.chars().all(|c| c.is_ascii_alphanumeric() || "_.,:@=-".contains(c))
}

impl Guard<'_> {
    fn caller_given(&self, name: &str) -> bool {
        self.declared.contains_key(name) && !self.injected.contains(&name)
    }

    /// Whether the template itself admits `value` for `name`: its `AllowedValues` or
    /// `AllowedPattern`, or its own `Default`.
    fn declared_admits(&self, name: &str, value: &str) -> bool {
        self.rules.get(name).is_some_and(|r| r.admits(value) == Some(true))
            || self.declared.get(name).is_some_and(|d| d.as_deref() == Some(value))
    }

    /// Checks a `PolicyName` expression: a caller's parameter in it needs `AllowedValues`.
    pub(super) fn policy_name(&self, expression: &Value, path: &str) -> Vec<TemplateError> {
        flowing(expression)
            .into_iter()
            .filter(|name| self.caller_given(name))
            .filter(|name| self.rules.get(name).is_none_or(|r| r.allowed_values.is_none()))
            .map(|name| {
                TemplateError::new(
                    path,
                    format!(
                        "PolicyName is made from parameter {name:?}, which would let a caller attach any existing policy; declare AllowedValues for {name:?}"
                    ),
                )
            })
            .collect()
    }

    /// Checks a `PolicyDocument` expression evaluated in `scope`.
    pub(super) fn policy_document(&self, scope: &Scope<'_>, expression: &Value, path: &str) -> Vec<TemplateError> {
        let mut errors = Vec::new();
        if let Some(name) = expression.get("Ref").and_then(Value::as_str)
            && self.caller_given(name)
        {
            errors.push(TemplateError::new(
                &child(path, "Ref"),
                format!("the policy document is parameter {name:?} as a whole, which would let a caller write the policy; write the document in the template and fill in only resource values"),
            ));
            return errors;
        }
        // In a document written as JSON text, a quote or a backslash can only change its structure.
        let text_form = matches!(scope.eval(expression, path), Ok(Value::String(_)));
        let names: BTreeSet<String> =
            flowing(expression).into_iter().filter(|n| scope.parameters.contains_key(n)).collect();
        if names.is_empty() {
            return errors;
        }
        // Values of the caller's that the template did not admit explicitly must be inert.
        let mut widened = Vec::new();
        for name in names.iter().filter(|n| self.caller_given(n)) {
            let Some(value) = scope.parameters.get(name).filter(|v| !v.contains(UNKNOWN_MARK)) else { continue };
            if inert(value) {
                continue;
            }
            if text_form && value.contains(['"', '\\']) {
                errors.push(TemplateError::request(
                    &child("/parameters", name),
                    format!(
                        "parameter {name:?} is pasted into the policy document written as JSON text at {path}, where quotes and backslashes are never allowed (got {:?})",
                        bounded(value)
                    ),
                ));
            } else if self.declared_admits(name, value) {
                widened.push(name.clone());
            } else {
                errors.push(TemplateError::request(
                    &child("/parameters", name),
                    format!(
                        "parameter {name:?} is pasted into the policy document at {path}, where only letters, digits and _.,:@=- are allowed (got {:?}); a template that means to allow more declares an AllowedPattern for it",
                        bounded(value)
                    ),
                ));
            }
        }
        if !errors.is_empty() {
            return errors;
        }
        // Statements, effects and actions must not depend on any parameter.
        let with = |stand_in: &str, keep: &dyn Fn(&str, &str) -> bool| {
            let values: BTreeMap<String, String> = scope
                .parameters
                .iter()
                .map(|(k, v)| {
                    let keep = !v.contains(UNKNOWN_MARK) && keep(k, v);
                    (k.clone(), if keep { v.clone() } else { stand_in.to_owned() })
                })
                .collect();
            let inner = Scope { parameters: &values, mappings: scope.mappings, missing: scope.missing };
            inner.eval(expression, path).ok().as_ref().and_then(shape)
        };
        let a = with(STAND_INS[0], &|k, _| !names.contains(k));
        let b = with(STAND_INS[1], &|k, _| !names.contains(k));
        if let (Some(a), Some(b)) = (&a, &b)
            && a != b
        {
            errors.push(TemplateError::new(
                path,
                "the policy document's statements, effects or actions depend on a parameter; parameters may fill in only resource and condition values",
            ));
            return errors;
        }
        if widened.is_empty() {
            return errors;
        }
        // A value the template admits, though not inert, may still fill in values only.
        let baseline = with(STAND_INS[0], &|k, _| !widened.contains(&k.to_owned()));
        let actual = with(STAND_INS[0], &|_, _| true);
        if baseline.is_none() || baseline != actual {
            let name = &widened[0];
            let value = scope.parameters.get(name).map(String::as_str).unwrap_or_default();
            errors.push(TemplateError::request(
                &child("/parameters", name),
                format!(
                    "parameter {name:?} changes the statements, effects or actions of the policy document at {path} (got {:?}); it may fill in only resource and condition values",
                    bounded(value)
                ),
            ));
        }
        errors
    }
}

/// The parameters whose values an expression pastes into its result (not those that only
/// pick among the template's own values, such as `Fn::FindInMap` keys or `Fn::Select` indexes).
pub(super) fn flowing(expression: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    collect(expression, &mut out);
    out
}

fn collect(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) if map.len() == 1 => {
            let (key, arg) = map.iter().next().expect("one entry");
            match (key.as_str(), arg) {
                ("Ref", Value::String(name)) => {
                    out.insert(name.clone());
                }
                ("Fn::Sub", Value::String(text)) => sub_names(text, &Map::new(), out),
                ("Fn::Sub", Value::Array(items)) => {
                    let empty = Map::new();
                    let variables = items.get(1).and_then(Value::as_object).unwrap_or(&empty);
                    if let Some(Value::String(text)) = items.first() {
                        sub_names(text, variables, out);
                    }
                    variables.values().for_each(|v| collect(v, out));
                }
                ("Fn::FindInMap", _) => {}
                ("Fn::Select", Value::Array(items)) => items.iter().skip(1).for_each(|v| collect(v, out)),
                _ => collect(arg, out),
            }
        }
        Value::Object(map) => map.values().for_each(|v| collect(v, out)),
        Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
        _ => {}
    }
}

fn sub_names(text: &str, variables: &Map<String, Value>, out: &mut BTreeSet<String>) {
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { return };
        let name = &after[..end];
        if !name.starts_with('!') && !variables.contains_key(name) {
            out.insert(name.to_owned());
        }
        rest = &after[end + 1..];
    }
}

/// What a policy document must keep whatever the parameters: its keys, each statement's keys,
/// effect, actions and principals, how many resources it names and which condition operators
/// and keys it tests. `None` when the document is not a JSON object.
fn shape(document: &Value) -> Option<Value> {
    let parsed;
    let document = match document {
        Value::String(text) => {
            parsed = serde_json::from_str::<Value>(text).ok()?;
            &parsed
        }
        other => other,
    };
    let Value::Object(doc) = document else { return None };
    let mut out = Map::new();
    for (key, value) in doc {
        let kept = match key.as_str() {
            "Statement" => match value {
                Value::Array(statements) => Value::Array(statements.iter().map(statement_shape).collect()),
                single => Value::Array(vec![statement_shape(single)]),
            },
            _ => value.clone(),
        };
        out.insert(key.clone(), kept);
    }
    Some(Value::Object(out))
}

fn statement_shape(statement: &Value) -> Value {
    let Value::Object(s) = statement else { return statement.clone() };
    let mut out = Map::new();
    for (key, value) in s {
        let kept = match key.as_str() {
            "Resource" | "NotResource" => count(value),
            "Sid" => Value::Null,
            "Condition" => match value {
                Value::Object(operators) => Value::Object(
                    operators
                        .iter()
                        .map(|(op, tests)| {
                            let tests = match tests {
                                Value::Object(keys) => {
                                    Value::Object(keys.iter().map(|(k, v)| (k.clone(), count(v))).collect())
                                }
                                other => other.clone(),
                            };
                            (op.clone(), tests)
                        })
                        .collect(),
                ),
                other => other.clone(),
            },
            _ => value.clone(),
        };
        out.insert(key.clone(), kept);
    }
    Value::Object(out)
}

fn count(value: &Value) -> Value {
    match value {
        Value::Array(items) => Value::from(items.len()),
        _ => Value::from(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flowing_follows_pasting_functions_only() {
        let e = json!({"a": {"Fn::Sub": ["${A}/${B}/${!C}", {"B": {"Ref": "D"}}]},
            "b": {"Fn::FindInMap": ["M", {"Ref": "E"}, "k"]},
            "c": {"Fn::Select": [{"Ref": "F"}, {"Fn::Split": [",", {"Ref": "G"}]}]},
            "d": {"Fn::Join": ["-", [{"Ref": "H"}]]}});
        let names: Vec<_> = flowing(&e).into_iter().collect();
        assert_eq!(names, ["A", "D", "G", "H"]);
    }

    #[test]
    fn inert_values_are_plain_words() {
        assert!(inert("dev-1:site_a.b@c=d,e"));
        for bad in ["*", "?", "#", "+", "\"", "/", "\\", "${x}", " ", "é"] {
            assert!(!inert(bad), "{bad}");
        }
    }
}
