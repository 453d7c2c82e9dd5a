//! The example messages in `schemas/examples/` are valid commands, against both the JSON
//! Schema and the decoder the worker uses.

use cdf_provisioning::domain::CommandEnvelope;
use cdf_provisioning::domain::schema::{COMMAND_SCHEMA_V1, Schema};

#[test]
fn every_example_message_is_a_valid_command() {
    let schema = Schema::compile(COMMAND_SCHEMA_V1).unwrap();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(schema.violations(&value), Vec::<(String, String)>::new(), "{}", path.display());
        CommandEnvelope::decode(&text, "m").unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} examples found");
}
