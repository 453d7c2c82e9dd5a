//! Property-based tests of the two parsers that take untrusted input: the command decoder and
//! the template evaluator. Whatever they are given, they answer (no panic), and an error is
//! specific and bounded: it never repeats an unbounded input.

use std::collections::BTreeMap;

use cdf_provisioning::domain::CommandEnvelope;
use cdf_provisioning::domain::template::Template;
use proptest::prelude::*;
use serde_json::{Value, json};

/// Arbitrary JSON, a few levels deep, with strings that may be long.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        ".{0,40}".prop_map(Value::String),
        "[a-z]{1,5}".prop_map(|s| Value::String(s.repeat(2_000))),
        prop::sample::select(vec![
            "Ref",
            "Fn::Join",
            "Fn::Sub",
            "Fn::Select",
            "Fn::Split",
            "Fn::FindInMap",
            "ThingName"
        ])
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    ".{0,12}",
                    prop::sample::select(vec![
                        "type",
                        "payload",
                        "schemaVersion",
                        "thingName",
                        "Resources",
                        "Parameters",
                        "Properties",
                        "Type",
                        "AWS::IoT::Thing",
                        "AWS::IoT::Certificate",
                        "Ref",
                        "Fn::Join",
                        "CDF",
                    ])
                    .prop_map(str::to_owned),
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn command_type() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "getThing",
            "deleteThing",
            "updateThingCertificates",
            "provisionThing",
            "bulkProvisionThings",
            "provisionBulkChunk",
            "cancelBulkTask",
        ])
        .prop_map(str::to_owned),
        ".{0,20}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn any_message_body_is_decoded_or_refused_with_a_bounded_error(body in ".{0,200}") {
        if let Err(e) = CommandEnvelope::decode(&body, "m") {
            prop_assert!(e.message.len() <= 2_100);
        }
    }

    #[test]
    fn any_envelope_is_decoded_or_refused_with_a_bounded_error(kind in command_type(), payload in json_value(), key in ".{0,300}") {
        let body = json!({"schemaVersion": 1, "type": kind, "idempotencyKey": key, "payload": payload}).to_string();
        match CommandEnvelope::decode(&body, "m") {
            Ok(envelope) => prop_assert!(!envelope.payload_hash.is_empty()),
            Err(e) => {
                prop_assert!(e.message.len() <= 2_100, "{} bytes", e.message.len());
                prop_assert!(e.path.as_ref().is_none_or(|p| p.len() <= 400));
            }
        }
    }

    #[test]
    fn any_template_is_planned_or_refused_with_bounded_errors(template in json_value(), parameters in prop::collection::btree_map("[A-Za-z]{1,8}", ".{0,30}", 0..4)) {
        let text = template.to_string();
        let parameters: BTreeMap<String, String> = parameters;
        let outcome = Template::parse(&text).and_then(|t| t.plan(&parameters, &Value::Null));
        if let Err(errors) = outcome {
            prop_assert!(!errors.is_empty());
            for e in errors {
                prop_assert!(e.message.len() <= 4_500, "{} bytes", e.message.len());
            }
        }
    }
}
