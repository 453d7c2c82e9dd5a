//! The JSON Schemas in `schemas/` are the contract with producers; this module compiles
//! them once and turns the first violation into a [`CommandError`] naming the JSON path.

use std::sync::LazyLock;

use serde_json::Value;

use super::error::{CommandError, ErrorCode};
use super::location::Location;

/// Text of `schemas/command.v1.json`, embedded so the binary and the docs cannot drift.
pub const COMMAND_SCHEMA_V1: &str = include_str!("../../schemas/command.v1.json");
/// Text of `schemas/event.v1.json`.
pub const EVENT_SCHEMA_V1: &str = include_str!("../../schemas/event.v1.json");
/// Text of `schemas/result.v1.json`.
pub const RESULT_SCHEMA_V1: &str = include_str!("../../schemas/result.v1.json");

/// A compiled schema.
#[derive(Debug)]
pub struct Schema {
    validator: jsonschema::Validator,
}

impl Schema {
    /// Compiles schema text; the embedded schemas are checked by tests, so a failure here
    /// is a build defect, reported as such.
    pub fn compile(text: &str) -> Result<Self, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| format!("schema is not JSON: {e}"))?;
        let validator = jsonschema::validator_for(&value).map_err(|e| format!("invalid schema: {e}"))?;
        Ok(Self { validator })
    }

    /// Every violation of the schema, as (JSON pointer, message) pairs, most specific first.
    pub fn violations(&self, instance: &Value) -> Vec<(String, String)> {
        let mut found: Vec<(String, String)> =
            self.validator.iter_errors(instance).map(|e| (e.instance_path().to_string(), e.to_string())).collect();
        // Deeper paths name the field at fault more precisely than the payload itself does.
        found.sort_by_key(|(path, _)| std::cmp::Reverse(path.matches('/').count()));
        found
    }

    /// The first (most specific) violation as a validation error.
    pub fn check(&self, instance: &Value) -> Result<(), CommandError> {
        match self.violations(instance).into_iter().next() {
            None => Ok(()),
            Some((path, message)) => {
                Err(CommandError::new(ErrorCode::ValidationFailed, message).at(Location::parse(&path)))
            }
        }
    }
}

/// The compiled command envelope schema.
pub fn command_schema() -> &'static Schema {
    static SCHEMA: LazyLock<Schema> = LazyLock::new(|| {
        Schema::compile(COMMAND_SCHEMA_V1).expect("schemas/command.v1.json is valid (checked by tests)")
    });
    &SCHEMA
}

/// The compiled result schema, against which tests check every result they produce.
pub fn result_schema() -> &'static Schema {
    static SCHEMA: LazyLock<Schema> = LazyLock::new(|| {
        Schema::compile(RESULT_SCHEMA_V1).expect("schemas/result.v1.json is valid (checked by tests)")
    });
    &SCHEMA
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_schemas_compile() {
        for text in [COMMAND_SCHEMA_V1, EVENT_SCHEMA_V1, RESULT_SCHEMA_V1] {
            Schema::compile(text).unwrap();
        }
    }

    #[test]
    fn violations_point_at_the_deepest_field() {
        let msg = serde_json::json!({
            "schemaVersion": 1, "type": "updateThingCertificates",
            "payload": {"thingName": "t1", "certificateStatus": "BOGUS"}
        });
        let err = command_schema().check(&msg).unwrap_err();
        assert_eq!(err.path, Some(Location::payload().child("certificateStatus")));
        assert!(err.message.contains("BOGUS"), "{}", err.message);
    }
}
