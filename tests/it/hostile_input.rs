//! A corpus of hostile queue messages, across every family of input (envelope, keys, names,
//! statuses, templates, the CDF section, CSRs and PEMs, injection through parameter values,
//! sizes). Each must end in a specific, bounded error: refused at decoding (dead-lettered with
//! its reason) or recorded as a permanent failure with a `command.failed` event. None may be
//! retried as if transient, none may echo an unbounded input, and no key material may appear in
//! any record or event afterwards.

use crate::support::Fixture;
use axum::body::{Body, to_bytes};
use axum::http::{Request, header};
use cdf_provisioning::api::{MEDIA_TYPE, router};
use cdf_provisioning::app::Disposition;
use cdf_provisioning::domain::{CommandEnvelope, ErrorCode};
use serde_json::{Value, json};
use tower::ServiceExt;

/// The longest an error message may be (the domain caps it at 2,000 characters).
const MAX_ERROR: usize = 2_100;

fn message(kind: &str, payload: Value) -> String {
    json!({"schemaVersion": 1, "type": kind, "idempotencyKey": "k", "payload": payload}).to_string()
}

fn corpus() -> Vec<(String, String)> {
    let huge = "x".repeat(300_000);
    let mut cases: Vec<(String, String)> = Vec::new();
    let mut add = |name: &str, body: String| cases.push((name.to_owned(), body));

    // Envelope.
    for (name, body) in [
        ("empty", String::new()),
        ("not json", "{{{".into()),
        ("a number", "42".into()),
        ("null", "null".into()),
        ("an array", "[]".into()),
        ("a string", r#""getThing""#.into()),
        ("no type", r#"{"schemaVersion":1,"payload":{}}"#.into()),
        ("type null", r#"{"schemaVersion":1,"type":null,"payload":{}}"#.into()),
        ("type object", r#"{"schemaVersion":1,"type":{"a":1},"payload":{}}"#.into()),
        ("unknown type", message("rebootThing", json!({}))),
        ("huge type", message(&huge, json!({}))),
        ("no version", r#"{"type":"getThing","payload":{"thingName":"t"}}"#.into()),
        ("version 2", r#"{"schemaVersion":2,"type":"getThing","payload":{"thingName":"t"}}"#.into()),
        ("version string", r#"{"schemaVersion":"1","type":"getThing","payload":{"thingName":"t"}}"#.into()),
        ("no payload", r#"{"schemaVersion":1,"type":"getThing"}"#.into()),
        ("payload array", message("getThing", json!([1]))),
        ("payload string", message("getThing", json!("t"))),
        ("extra envelope field", r#"{"schemaVersion":1,"type":"getThing","payload":{"thingName":"t"},"x":1}"#.into()),
        ("deeply nested", format!("{}{}", "[".repeat(10_000), "]".repeat(10_000))),
    ] {
        add(name, body);
    }
    // Idempotency keys.
    for (name, key) in [
        ("empty key", json!("")),
        ("key with space", json!("a b")),
        ("key with newline", json!("a\nb")),
        ("key of 257", json!("k".repeat(257))),
        ("huge key", json!(huge)),
        ("numeric key", json!(7)),
        ("unicode key", json!("ключ")),
    ] {
        add(
            name,
            json!({"schemaVersion": 1, "type": "getThing", "idempotencyKey": key, "payload": {"thingName": "t"}})
                .to_string(),
        );
    }
    // Thing names.
    for (name, thing) in [
        ("empty name", json!("")),
        ("name with space", json!("a b")),
        ("name with slash", json!("a/b")),
        ("name with dots", json!("../x")),
        ("name 129", json!("n".repeat(129))),
        ("huge name", json!(huge)),
        ("unicode name", json!("ñame")),
        ("control char name", json!("a\u{1}b")),
        ("numeric name", json!(12)),
        ("null name", json!(null)),
        ("name object", json!({"$ne": ""})),
        ("sql in name", json!("t' OR '1'='1")),
    ] {
        for kind in ["getThing", "deleteThing"] {
            add(&format!("{kind}: {name}"), message(kind, json!({"thingName": thing})));
        }
    }
    // Statuses and delete flags.
    for (name, status) in [
        ("lower case", json!("active")),
        ("pending", json!("PENDING_TRANSFER")),
        ("empty status", json!("")),
        ("numeric status", json!(1)),
        ("huge status", json!(huge)),
    ] {
        add(name, message("updateThingCertificates", json!({"thingName": "t", "certificateStatus": status})));
    }
    add("delete flag string", message("deleteThing", json!({"thingName": "t", "deleteCertificates": "yes"})));
    add("extra delete field", message("deleteThing", json!({"thingName": "t", "force": true})));
    // Templates.
    for (name, id) in [
        ("empty template id", json!("")),
        ("template traversal", json!("../secrets/key")),
        ("template absolute", json!("/etc/passwd")),
        ("template double slash", json!("a//b")),
        ("template unicode", json!("tëmplate")),
        ("huge template id", json!(huge)),
        ("template id number", json!(5)),
        ("missing template", json!("does-not-exist")),
    ] {
        add(name, message("provisionThing", json!({"provisioningTemplateId": id, "parameters": {"ThingName": "t"}})));
    }
    // Parameters: injection, sizes, types.
    for (name, value) in [
        ("sub injection", json!("${AWS::AccountId}")),
        ("ref injection", json!("{\"Ref\":\"AWS::Region\"}")),
        ("json fragment", json!("\"},\"Resources\":{")),
        ("newline in name", json!("a\nb")),
        ("control char", json!("a\u{1}cdf:CertificateId\u{1}")),
        ("value 4097", json!("v".repeat(4097))),
        ("huge value", json!(huge)),
        ("number value", json!(3)),
        ("object value", json!({"a": 1})),
        ("null value", json!(null)),
    ] {
        add(
            &format!("parameter: {name}"),
            message(
                "provisionThing",
                json!({"provisioningTemplateId": "aws-issued", "parameters": {"ThingName": value}}),
            ),
        );
    }
    add(
        "parameters array",
        message("provisionThing", json!({"provisioningTemplateId": "aws-issued", "parameters": ["ThingName"]})),
    );
    add(
        "huge parameter name",
        message("provisionThing", json!({"provisioningTemplateId": "aws-issued", "parameters": {huge.clone(): "v"}})),
    );
    // CSRs and PEMs.
    let csr = |value: Value| {
        message(
            "provisionThing",
            json!({"provisioningTemplateId": "csr", "parameters": {"ThingName": "dev-1", "CSR": value}}),
        )
    };
    for (name, value) in [
        ("no csr", json!("")),
        ("csr text", json!("hello")),
        ("csr header only", json!("-----BEGIN CERTIFICATE REQUEST-----\n-----END CERTIFICATE REQUEST-----")),
        ("csr broken base64", json!("-----BEGIN CERTIFICATE REQUEST-----\nM*I*B\n-----END CERTIFICATE REQUEST-----")),
        ("csr not a csr", json!("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----")),
        ("csr is a private key", json!("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----")),
        ("huge csr", json!(format!("-----BEGIN CERTIFICATE REQUEST-----\n{huge}\n-----END CERTIFICATE REQUEST-----"))),
    ] {
        add(name, csr(value));
    }
    let without_ca = |pem: &str| {
        message(
            "provisionThing",
            json!({"provisioningTemplateId": "without-ca", "parameters": {"ThingName": "dev-2"},
                   "cdfProvisioningParameters": {"certificatePem": pem}}),
        )
    };
    for (name, pem) in [
        ("pem text", "hello"),
        ("pem broken base64", "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----"),
        ("pem not a certificate", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"),
    ] {
        add(name, without_ca(pem));
    }
    // The CDF section's parameters.
    for (name, cdf) in [
        ("cdf params array", json!([1])),
        ("cdf params string", json!("x")),
        ("ca id missing", json!({"certInfo": {"commonName": "x"}})),
        ("ca id number", json!({"caId": 7})),
        ("cert info not object", json!({"caId": "abc", "certInfo": "x"})),
        ("days expiry negative", json!({"caId": "abc", "certInfo": {"daysExpiry": -1}})),
        ("country of three", json!({"caId": "abc", "certInfo": {"country": "DEU"}})),
        ("unknown cert info field", json!({"caId": "abc", "certInfo": {"shoeSize": "44"}})),
    ] {
        add(
            &format!("cdf: {name}"),
            message(
                "provisionThing",
                json!({"provisioningTemplateId": "ca-signed", "parameters": {"ThingName": "dev-3"}, "cdfProvisioningParameters": cdf}),
            ),
        );
    }
    // Bulk.
    for (name, payload) in [
        ("bulk no rows", json!({"provisioningTemplateId": "aws-issued", "parameters": []})),
        ("bulk rows not maps", json!({"provisioningTemplateId": "aws-issued", "parameters": [1, 2]})),
        (
            "bulk both sources",
            json!({"provisioningTemplateId": "aws-issued", "parameters": [{"ThingName": "a"}], "rowsObject": "x.csv"}),
        ),
        (
            "bulk rows object traversal",
            json!({"provisioningTemplateId": "aws-issued", "rowsObject": "../../etc/passwd"}),
        ),
        ("bulk missing rows file", json!({"provisioningTemplateId": "aws-issued", "rowsObject": "rows/nope.ndjson"})),
        (
            "bulk strict invalid",
            json!({"provisioningTemplateId": "aws-issued", "strict": true, "parameters": [{"ThingName": "a b"}]}),
        ),
        ("cancel bad id", json!({"taskId": "not-a-uuid"})),
    ] {
        let kind = if name.starts_with("cancel") { "cancelBulkTask" } else { "bulkProvisionThings" };
        add(name, message(kind, payload));
    }
    add("cancel unknown task", message("cancelBulkTask", json!({"taskId": "6c1b4f0e-8d2a-5e3b-9f7c-1a2b3c4d5e6f"})));
    add(
        "chunk for unknown task",
        message(
            "provisionBulkChunk",
            json!({"taskId": "6c1b4f0e-8d2a-5e3b-9f7c-1a2b3c4d5e6f", "chunk": 0, "rows": [{"row": 0, "parameters": {}}]}),
        ),
    );
    cases
}

fn fixture() -> Fixture {
    let f = Fixture::new().with_examples(&["aws-issued", "csr", "ca-signed"]);
    f.templates.put(
        "without-ca",
        r#"{"Parameters":{"ThingName":{"Type":"String"},"CertificateId":{"Type":"String"}},
            "Resources":{"thing":{"Type":"AWS::IoT::Thing","Properties":{"ThingName":{"Ref":"ThingName"}}},
                         "certificate":{"Type":"AWS::IoT::Certificate","Properties":{"CertificateId":{"Ref":"CertificateId"}}}},
            "CDF":{"registerDeviceCertificateWithoutCA":true}}"#,
    );
    f
}

#[tokio::test]
async fn every_hostile_message_ends_in_a_specific_bounded_error() {
    let cases = corpus();
    assert_eq!(cases.len(), 104, "docs/testing.md counts them");
    for (i, (name, body)) in cases.iter().enumerate() {
        let f = fixture();
        let error = match CommandEnvelope::decode(body, &format!("m-{i}")) {
            // Refused at the door: dead-lettered with this reason.
            Err(error) => error,
            Ok(envelope) => {
                let disposition = f.app.handle(&envelope, "t").await;
                match disposition {
                    Disposition::Done => {}
                    Disposition::Reject(error) => {
                        assert!(error.message.len() <= MAX_ERROR, "{name}: {} bytes", error.message.len());
                        continue;
                    }
                    other => panic!("{name}: retried as if the input could pass later: {other:?}"),
                }
                let record = f.state.records().into_iter().next().unwrap();
                let error = record.error.unwrap_or_else(|| panic!("{name}: accepted ({:?})", record.result));
                let events = f.events.published();
                assert_eq!(events.len(), 1, "{name}");
                assert_eq!(events[0].event_type, "command.failed", "{name}");
                let event = serde_json::to_string(&events[0]).unwrap();
                assert!(event.len() < 8_192, "{name}: an event of {} bytes", event.len());
                error
            }
        };
        assert!(!error.is_retryable(), "{name}: {error:?}");
        assert_ne!(
            error.code,
            ErrorCode::PermanentFailure,
            "{name}: the caller's input is not the server's fault: {error}"
        );
        assert!(error.message.len() <= MAX_ERROR, "{name}: a message of {} bytes", error.message.len());
        assert!(error.path.as_ref().is_none_or(|p| p.len() < 400), "{name}: {:?}", error.path);
        // Nothing the registry made is left behind.
        assert!(f.registry.certificates().is_empty(), "{name}: a certificate was left");
        let stored = serde_json::to_string(&f.state.records()).unwrap();
        assert!(!stored.contains("PRIVATE KEY-----\nM"), "{name}: key material in a record");
    }
}

/// A hostile REST request.
struct RestCase {
    /// What it tries, for the failure message.
    name: String,
    method: &'static str,
    uri: String,
    /// The `Content-Type` it claims, if any.
    content_type: Option<&'static str>,
    body: String,
}

/// Hostile REST requests.
fn rest_corpus() -> Vec<RestCase> {
    const JSON: Option<&str> = Some(MEDIA_TYPE);
    let huge = "x".repeat(300_000);
    let provision =
        |parameters: Value| json!({"provisioningTemplateId": "aws-issued", "parameters": parameters}).to_string();
    let mut cases = Vec::new();
    let mut add = |name: &str, method: &'static str, uri: String, content_type, body: String| {
        cases.push(RestCase { name: name.to_owned(), method, uri, content_type, body });
    };
    // Paths.
    for (name, path) in [
        ("encoded slash in name", "/things/a%2Fb"),
        ("dot-dot name", "/things/.."),
        ("encoded dot-dot", "/things/%2E%2E%2Fsecrets"),
        ("control char in name", "/things/a%01b"),
        ("newline in name", "/things/a%0Ab"),
        ("space in name", "/things/a%20b"),
        ("unicode name", "/things/%C3%B1ame"),
        ("invalid utf-8 in name", "/things/%FF%FE"),
        (
            "name of 129",
            "/things/nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn",
        ),
        ("unknown route", "/admin"),
        ("trailing segments", "/things/t1/certificates/extra"),
        ("bulk task id not a uuid", "/bulkthings/not-a-uuid"),
        ("bulk rows of a bad id", "/bulkthings/%27%20OR%201%3D1/rows"),
        ("bulk unknown task", "/bulkthings/6c1b4f0e-8d2a-5e3b-9f7c-1a2b3c4d5e6f"),
    ] {
        add(name, "GET", path.to_owned(), None, String::new());
    }
    add("huge name in path", "GET", format!("/things/{}", "n".repeat(8_000)), None, String::new());
    add(
        "bulk rows bad page token",
        "GET",
        "/bulkthings/6c1b4f0e-8d2a-5e3b-9f7c-1a2b3c4d5e6f/rows?nextToken=%00%FF".into(),
        None,
        String::new(),
    );
    add(
        "bulk rows negative limit",
        "GET",
        "/bulkthings/6c1b4f0e-8d2a-5e3b-9f7c-1a2b3c4d5e6f/rows?limit=-1".into(),
        None,
        String::new(),
    );
    // Methods and query options.
    add("PUT on a thing", "PUT", "/things/t1".into(), JSON, "{}".into());
    add("POST on a thing", "POST", "/things/t1".into(), JSON, "{}".into());
    add("DELETE on the collection", "DELETE", "/things".into(), None, String::new());
    add("delete option not a bool", "DELETE", "/things/t1?deleteCertificates=maybe".into(), None, String::new());
    add(
        "delete option repeated",
        "DELETE",
        "/things/t1?deletePolicies=true&deletePolicies=false".into(),
        None,
        String::new(),
    );
    add("delete of a bad name", "DELETE", "/things/a%20b".into(), None, String::new());
    // Bodies of PATCH /things/{name}/certificates.
    for (name, body) in [
        ("patch not json", "not json".to_owned()),
        ("patch empty", String::new()),
        ("patch array", r#"["ACTIVE"]"#.to_owned()),
        ("patch lower-case status", r#"{"certificateStatus":"active"}"#.to_owned()),
        ("patch unknown status", r#"{"certificateStatus":"PENDING_TRANSFER"}"#.to_owned()),
        ("patch status number", r#"{"certificateStatus":1}"#.to_owned()),
        ("patch huge status", json!({"certificateStatus": huge}).to_string()),
        ("patch deep nesting", format!("{}{}", "[".repeat(10_000), "]".repeat(10_000))),
    ] {
        add(name, "PATCH", "/things/t1/certificates".into(), JSON, body);
    }
    add(
        "patch without content type",
        "PATCH",
        "/things/t1/certificates".into(),
        None,
        r#"{"certificateStatus":"ACTIVE"}"#.into(),
    );
    add(
        "patch as form",
        "PATCH",
        "/things/t1/certificates".into(),
        Some("application/x-www-form-urlencoded"),
        "certificateStatus=ACTIVE".into(),
    );
    // Bodies of POST /things.
    for (name, body) in [
        ("post not json", "{{".to_owned()),
        ("post null", "null".to_owned()),
        ("post no template", r#"{"parameters":{"ThingName":"a"}}"#.to_owned()),
        ("post template traversal", r#"{"provisioningTemplateId":"../../secrets/k"}"#.to_owned()),
        ("post template absolute", r#"{"provisioningTemplateId":"/etc/passwd"}"#.to_owned()),
        ("post huge template id", json!({"provisioningTemplateId": huge}).to_string()),
        ("post unknown template", r#"{"provisioningTemplateId":"nope"}"#.to_owned()),
        ("post parameters array", r#"{"provisioningTemplateId":"aws-issued","parameters":["a"]}"#.to_owned()),
        ("post parameter number", provision(json!({"ThingName": 7}))),
        ("post parameter object", provision(json!({"ThingName": {"Fn::Join": ["", ["a"]]}}))),
        ("post missing parameter", provision(json!({}))),
        ("post name with space", provision(json!({"ThingName": "a b"}))),
        ("post name with slash", provision(json!({"ThingName": "a/b"}))),
        ("post name injection", provision(json!({"ThingName": "a\",\"x\":\"y"}))),
        ("post huge name", provision(json!({"ThingName": huge}))),
        ("post parameter null", provision(json!({"ThingName": null}))),
        ("post cdf parameters wrong type", r#"{"provisioningTemplateId":"aws-issued","parameters":{"ThingName":"ok-2"},"cdfProvisioningParameters":"x"}"#.to_owned()),
        ("post csr garbage", json!({"provisioningTemplateId": "csr", "parameters": {"ThingName": "c-1", "CSR": "-----BEGIN CERTIFICATE REQUEST-----\n!!!\n-----END CERTIFICATE REQUEST-----"}}).to_string()),
        ("post csr huge", json!({"provisioningTemplateId": "csr", "parameters": {"ThingName": "c-2", "CSR": huge}}).to_string()),
        ("post csr a private key", json!({"provisioningTemplateId": "csr", "parameters": {"ThingName": "c-3", "CSR": "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----"}}).to_string()),
        ("post ca-signed without ca", json!({"provisioningTemplateId": "ca-signed", "parameters": {"ThingName": "s-1"}}).to_string()),
        ("post body too large", json!({"provisioningTemplateId": "x".repeat(3 << 20)}).to_string()),
    ] {
        add(name, "POST", "/things".into(), JSON, body);
    }
    add("post as text", "POST", "/things".into(), Some("text/plain"), provision(json!({"ThingName": "ok-3"})));
    // Bulk.
    for (name, body) in [
        ("bulk not json", "[".to_owned()),
        ("bulk no rows", r#"{"provisioningTemplateId":"aws-issued"}"#.to_owned()),
        (
            "bulk rows not a list",
            r#"{"provisioningTemplateId":"aws-issued","parameters":{"ThingName":"a"}}"#.to_owned(),
        ),
        ("bulk rows object traversal", r#"{"provisioningTemplateId":"aws-issued","rowsObject":"../../x"}"#.to_owned()),
        ("bulk unknown template", r#"{"provisioningTemplateId":"nope","parameters":[{"ThingName":"a"}]}"#.to_owned()),
        (
            "bulk strict with a bad row",
            r#"{"provisioningTemplateId":"aws-issued","strict":true,"parameters":[{"ThingName":"a b"}]}"#.to_owned(),
        ),
    ] {
        add(name, "POST", "/bulkthings".into(), JSON, body);
    }
    add("cancel a bad task id", "POST", "/bulkthings/x/cancel".into(), JSON, String::new());
    add(
        "cancel an unknown task",
        "POST",
        "/bulkthings/6c1b4f0e-8d2a-5e3b-9f7c-1a2b3c4d5e6f/cancel".into(),
        JSON,
        String::new(),
    );
    cases
}

#[tokio::test]
async fn every_hostile_rest_request_answers_a_bounded_client_error_in_the_seeds_json() {
    let cases = rest_corpus();
    assert_eq!(cases.len(), 64, "docs/testing.md counts them");
    for RestCase { name, method, uri, content_type, body } in cases {
        let f = fixture();
        f.registry.add_thing("t1", None, &[]);
        let mut request = Request::builder().method(method).uri(&uri).header(header::ACCEPT, MEDIA_TYPE);
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let response = router(f.app.clone()).oneshot(request.body(Body::from(body)).unwrap()).await.unwrap();
        let status = response.status();
        let answer_type = response.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned());
        let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(status.is_client_error(), "{name}: {method} answered {status}: {text}");
        assert_eq!(answer_type.as_deref(), Some(MEDIA_TYPE), "{name}");
        let error: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {text}"));
        assert!(error["message"].is_string(), "{name}: {text}");
        assert!(bytes.len() <= MAX_ERROR + 400, "{name}: an answer of {} bytes", bytes.len());
        assert!(!text.contains("PRIVATE KEY"), "{name}: key material in the answer");
        assert!(f.registry.certificates().is_empty(), "{name}: a certificate was made");
        assert!(f.registry.has_thing("t1"), "{name}: the existing thing was touched");
    }
}
