//! Error locations: how records, events and the REST facade spell where the input is at
//! fault, and the locations the decoder names.

use cdf_provisioning::domain::command::Rejected;
use cdf_provisioning::domain::location::Document;
use cdf_provisioning::domain::{CommandEnvelope, CommandError, ErrorCode, IdempotencyKey, Location};

#[test]
fn spells_each_document_as_records_and_events_store_it() {
    assert_eq!(&*Location::payload().child("thingName"), "/payload/thingName");
    assert_eq!(&*Location::message().child("idempotencyKey"), "/idempotencyKey");
    assert_eq!(&*Location::message(), "/");
    assert_eq!(&*Location::payload(), "/payload");
    assert_eq!(&*Location::template().child("Resources").child("thing"), "template:/Resources/thing");
    assert_eq!(&*Location::message().child("parameters").child(3).child("ThingName"), "/parameters/3/ThingName");
}

#[test]
fn a_segment_is_escaped_so_it_stays_one_segment() {
    let at = Location::payload().child("parameters").child("a.b/c~d");
    assert_eq!(&*at, "/payload/parameters/a.b~1c~0d");
    assert_eq!(at.pointer(), "/parameters/a.b~1c~0d");
}

#[test]
fn the_pointer_is_the_part_inside_the_document() {
    assert_eq!(Location::payload().child("certificateStatus").pointer(), "/certificateStatus");
    assert_eq!(Location::payload().pointer(), "/");
    assert_eq!(Location::template().child("Resources").pointer(), "/Resources");
    assert_eq!(Location::message().child("type").pointer(), "/type");
}

#[test]
fn a_stored_spelling_reads_back_to_the_same_location() {
    for location in [
        Location::payload().child("parameters").child("x/y"),
        Location::payload(),
        Location::template().child("Resources").child("cert"),
        Location::message().child("idempotencyKey"),
        Location::message().child("rows").child(230),
    ] {
        let stored = serde_json::to_string(&location).unwrap();
        assert_eq!(serde_json::from_str::<Location>(&stored).unwrap(), location, "{stored}");
    }
    // A first segment that only starts like `payload` is not the payload.
    assert_eq!(Location::parse("/payloads/x").document(), Document::Message);
    assert_eq!(Location::parse("/payload/x").document(), Document::Payload);
    assert_eq!(Location::parse("template:/Resources").document(), Document::Template);
}

#[test]
fn a_huge_segment_is_cut() {
    let error = CommandError::new(ErrorCode::ValidationFailed, "bad").at(Location::payload().child("x".repeat(10_000)));
    let at = error.path.unwrap();
    assert!(at.chars().count() < 340, "{}", at.len());
    assert!(at.starts_with("/payload/xxx"));
    assert!(at.ends_with("(cut from 10009 bytes)"), "{}", &at[at.len() - 30..]);
}

#[test]
fn errors_name_the_code_and_path_at_fault() {
    let cases = [
        ("not json", ErrorCode::InvalidMessage, None),
        ("[1,2]", ErrorCode::InvalidMessage, Some("/")),
        (r#"{"schemaVersion":1,"payload":{}}"#, ErrorCode::InvalidMessage, Some("/type")),
        (r#"{"schemaVersion":1,"type":7,"payload":{}}"#, ErrorCode::InvalidMessage, Some("/type")),
        (r#"{"schemaVersion":1,"type":"rebootThing","payload":{}}"#, ErrorCode::UnsupportedCommand, Some("/type")),
        (
            r#"{"schemaVersion":2,"type":"getThing","payload":{"thingName":"t"}}"#,
            ErrorCode::ValidationFailed,
            Some("/schemaVersion"),
        ),
        (r#"{"schemaVersion":1,"type":"getThing","payload":{}}"#, ErrorCode::ValidationFailed, Some("/payload")),
        (
            r#"{"schemaVersion":1,"type":"getThing","payload":{"thingName":"a b"}}"#,
            ErrorCode::ValidationFailed,
            Some("/payload/thingName"),
        ),
        (
            r#"{"schemaVersion":1,"type":"getThing","payload":{"thingName":"t","extra":1}}"#,
            ErrorCode::ValidationFailed,
            Some("/payload"),
        ),
        (
            r#"{"schemaVersion":1,"type":"deleteThing","payload":{"thingName":"t","deleteCertificates":"yes"}}"#,
            ErrorCode::ValidationFailed,
            Some("/payload/deleteCertificates"),
        ),
        (
            r#"{"schemaVersion":1,"type":"updateThingCertificates","payload":{"thingName":"t","certificateStatus":"IN_ACTIVE"}}"#,
            ErrorCode::ValidationFailed,
            Some("/payload/certificateStatus"),
        ),
        (
            r#"{"schemaVersion":1,"type":"updateThingCertificates","payload":{"thingName":"t"}}"#,
            ErrorCode::ValidationFailed,
            Some("/payload"),
        ),
        (
            r#"{"schemaVersion":1,"type":"getThing","idempotencyKey":"","payload":{"thingName":"t"}}"#,
            ErrorCode::ValidationFailed,
            Some("/idempotencyKey"),
        ),
    ];
    for (body, code, path) in cases {
        let err = CommandEnvelope::decode(body, "msg-1").unwrap_err();
        assert_eq!(err.code, code, "{body}: {err}");
        assert_eq!(err.path.as_deref(), path, "{body}: {err}");
    }
}

#[test]
fn a_parameter_name_with_a_dot_stays_one_path_segment() {
    let err = CommandEnvelope::decode(
        r#"{"schemaVersion":1,"type":"provisionThing","payload":{"provisioningTemplateId":"t","parameters":{"a.b/c":7}}}"#,
        "msg-1",
    )
    .unwrap_err();
    assert_eq!(err.path.as_deref(), Some("/payload/parameters/a.b~1c"), "{err}");
}

#[test]
fn a_rejected_message_keeps_its_key_and_thing_name() {
    let body = r#"{"schemaVersion":1,"type":"getThing","idempotencyKey":"k-1","payload":{"thingName":"a b"}}"#;
    let Rejected { idempotency_key, thing_name, error } = CommandEnvelope::read_message(body, "m-1").unwrap_err();
    assert_eq!(idempotency_key, IdempotencyKey::new("k-1"));
    assert_eq!(thing_name.as_deref(), Some("a b"));
    assert_eq!(error.path.as_deref(), Some("/payload/thingName"));

    let Rejected { idempotency_key, thing_name, error } = CommandEnvelope::read_message("not json", "m-2").unwrap_err();
    assert_eq!(idempotency_key, IdempotencyKey::new("m-2"), "the message id stands in for a key");
    assert_eq!(thing_name, None);
    assert_eq!(error.code, ErrorCode::InvalidMessage);
}
