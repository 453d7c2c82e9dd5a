//! The REST facade against in-memory fakes, through the router (no socket).

use crate::support::{Fixture, examples};
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use cdf_provisioning::adapters::memory::IotOp;
use cdf_provisioning::api::{MEDIA_TYPE, router};
use cdf_provisioning::domain::CertificateStatus;
use cdf_provisioning::ports::{CommandQueue, ErrorKind};
use tower::ServiceExt;

async fn call(f: &Fixture, method: &str, uri: &str, body: Option<&str>) -> (StatusCode, String, Option<String>) {
    let mut request = Request::builder().method(method).uri(uri).header(header::ACCEPT, MEDIA_TYPE);
    if body.is_some() {
        request = request.header(header::CONTENT_TYPE, MEDIA_TYPE);
    }
    let request = request.body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned()))).unwrap();
    let response = router(f.app.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned());
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap(), content_type)
}

#[tokio::test]
async fn get_thing_answers_200_with_the_thing() {
    let f = Fixture::new();
    f.registry.add_thing("t1", Some("sensor"), &[("a", "b")]);
    let cert = f.registry.add_certificate(CertificateStatus::Revoked);
    f.registry.attach_thing_principal("t1", &cert);
    let (status, body, content_type) = call(&f, "GET", "/things/t1", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type.as_deref(), Some(MEDIA_TYPE));
    let thing: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(thing["thingName"], "t1");
    assert_eq!(thing["thingType"], "sensor");
    // The seed's two statuses; IoT's own in the added field.
    assert_eq!(thing["certificates"][0]["certificateStatus"], "INACTIVE");
    assert_eq!(thing["certificates"][0]["iotCertificateStatus"], "REVOKED");
}

#[tokio::test]
async fn unknown_things_answer_404_with_cdfs_body() {
    let f = Fixture::new();
    for (method, uri, body) in [
        ("GET", "/things/ghost", None),
        ("DELETE", "/things/ghost", None),
        ("PATCH", "/things/ghost/certificates", Some(r#"{"certificateStatus":"ACTIVE"}"#)),
    ] {
        let (status, body, _) = call(&f, method, uri, body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {uri}");
        assert_eq!(body, r#"{"message":"thing 'ghost' does not exist"}"#);
    }
}

#[tokio::test]
async fn delete_and_patch_answer_204() {
    let f = Fixture::new();
    f.registry.add_thing("t1", None, &[]);
    let cert = f.registry.add_certificate(CertificateStatus::Active);
    f.registry.attach_thing_principal("t1", &cert);
    let (status, _, _) =
        call(&f, "PATCH", "/things/t1/certificates", Some(r#"{"certificateStatus":"INACTIVE"}"#)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(f.registry.certificate_status(&cert), Some(CertificateStatus::Inactive));
    let (status, _, _) = call(&f, "DELETE", "/things/t1", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(!f.registry.has_thing("t1"));
    assert_eq!(f.registry.certificate_status(&cert), None, "secure default: the certificate is gone too");
}

#[tokio::test]
async fn invalid_input_answers_400_before_any_aws_call() {
    let f = Fixture::new();
    f.registry.add_thing("t1", None, &[]);
    for body in [r#"{"certificateStatus":"IN_ACTIVE"}"#, r#"{}"#, "not json"] {
        let (status, text, _) = call(&f, "PATCH", "/things/t1/certificates", Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {text}");
    }
    let (status, text, _) = call(&f, "GET", "/things/bad%20name", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(f.registry.faults.calls().is_empty(), "{:?}", f.registry.faults.calls());
}

#[tokio::test]
async fn a_missing_or_foreign_accept_header_answers_415() {
    let f = Fixture::new();
    for accept in [None, Some("application/json")] {
        let mut request = Request::builder().uri("/things/t1");
        if let Some(a) = accept {
            request = request.header(header::ACCEPT, a);
        }
        let response = router(f.app.clone()).oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    // Plain JSON in both headers, with a body: 415 before anything about the body, as CDF.
    let request = Request::builder()
        .method("POST")
        .uri("/things")
        .header(header::ACCEPT, "application/json")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"provisioningTemplateId":"x"}"#))
        .unwrap();
    let response = router(f.app.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn post_things_provisions_and_returns_the_generated_key_inline() {
    let f = Fixture::new().with_examples(&["aws-issued"]);
    let body = r#"{"provisioningTemplateId":"aws-issued","parameters":{"ThingName":"rest-1"}}"#;
    let (status, text, content_type) = call(&f, "POST", "/things", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    assert_eq!(content_type.as_deref(), Some(MEDIA_TYPE));
    let response: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(response["privateKey"].as_str().unwrap().starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(response.get("privateKeySecret").is_none());
    assert!(response["resourceArns"]["thing"].as_str().unwrap().ends_with("thing/rest-1"));
    assert!(f.secrets.names().is_empty(), "a key returned inline is stored nowhere");
    assert!(f.registry.has_thing("rest-1"));

    let (status, text, _) = call(&f, "POST", "/things", Some(r#"{"parameters":{}}"#)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    let (status, _, _) = call(&f, "POST", "/things", Some(r#"{"provisioningTemplateId":"nope"}"#)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn errors_answer_by_whose_fault_they_are() {
    let f = Fixture::new();
    f.templates.put("csr", &examples::template("csr"));
    let body = examples::request("csr").to_string();

    // IoT refusing the template's policy document (MalformedPolicyException) is the caller's fault.
    f.registry.faults.fail_next(IotOp::CreatePolicy, ErrorKind::Invalid, 1);
    let (status, text, _) = call(&f, "POST", "/things", Some(&body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");

    // Access denied or a misconfigured deployment is the server's.
    f.registry.faults.fail_next(IotOp::CreatePolicy, ErrorKind::Permanent, 1);
    let (status, text, _) = call(&f, "POST", "/things", Some(&body)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{text}");

    // Throttling is neither: try again later.
    f.registry.faults.fail_next(IotOp::CreatePolicy, ErrorKind::Throttled, 1);
    let (status, text, _) = call(&f, "POST", "/things", Some(&body)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
}

#[tokio::test]
async fn bulk_tasks_are_accepted_read_paged_and_unknown_ones_answer_404() {
    let f = Fixture::new();
    f.templates.put("add_thing_to_group", &examples::template("add_thing_to_group"));
    f.registry.add_group("g", &[]);
    let body = serde_json::json!({"provisioningTemplateId": "add_thing_to_group", "parameters": [
        {"ThingName": "b-1", "ThingGroupName": "g"}, {"ThingName": "b 2", "ThingGroupName": "g"}
    ]})
    .to_string();
    let (status, text, content_type) = call(&f, "POST", "/bulkthings", Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    assert_eq!(content_type.as_deref(), Some(MEDIA_TYPE));
    let task: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(task["status"], "InProgress");
    assert_eq!((task["failureCount"].as_u64(), task["totalRows"].as_u64()), (Some(1), Some(2)));
    let id = task["taskId"].as_str().unwrap().to_owned();

    // The worker's part: the one chunk waiting in the queue.
    let messages = f.queue.receive(10, std::time::Duration::ZERO).await.unwrap();
    assert_eq!(messages.len(), 1);
    let chunk = cdf_provisioning::domain::CommandEnvelope::decode(&messages[0].body, "m").unwrap();
    f.app.handle(&chunk, "t").await;

    let (status, text, _) = call(&f, "GET", &format!("/bulkthings/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    let task: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!((task["status"].as_str(), task["successCount"].as_u64()), (Some("Completed"), Some(1)));
    assert_eq!(task["percentageProgress"], 100);

    let (status, text, _) = call(&f, "GET", &format!("/bulkthings/{id}/rows?outcome=FAILED"), None).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let page: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(page["rows"][0]["row"], 1);
    assert_eq!(page["rows"][0]["error"]["path"], "/parameters/1/ThingName");

    for uri in ["/bulkthings/6c1b4f0e-8d2a-5e3b-9f7c-1a2b3c4d5e6f", "/bulkthings/not-a-task"] {
        let (status, _, _) = call(&f, "GET", uri, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
    }
}

#[tokio::test]
async fn every_failure_is_the_seeds_json_error_and_unknown_fields_are_ignored() {
    let f = Fixture::new();
    f.registry.add_thing("t1", None, &[]);
    let cert = f.registry.add_certificate(CertificateStatus::Active);
    f.registry.attach_thing_principal("t1", &cert);
    // The framework's own rejections are JSON too.
    for (method, uri, body, status) in [
        ("GET", "/nowhere", None, StatusCode::NOT_FOUND),
        ("PUT", "/things/t1", None, StatusCode::METHOD_NOT_ALLOWED),
        ("PATCH", "/things/t1/certificates", Some(r#"["INACTIVE"]"#), StatusCode::BAD_REQUEST),
        ("POST", "/things", Some(r#"{"provisioningTemplateId":""}"#), StatusCode::BAD_REQUEST),
        ("POST", "/things", Some(r#"{"provisioningTemplateId":"../secrets/x"}"#), StatusCode::BAD_REQUEST),
    ] {
        let (got, text, content_type) = call(&f, method, uri, body).await;
        assert_eq!(got, status, "{method} {uri}: {text}");
        assert_eq!(content_type.as_deref(), Some(MEDIA_TYPE), "{method} {uri}");
        let error: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(error["message"].is_string(), "{method} {uri}: {text}");
    }
    let (_, text, _) = call(&f, "POST", "/things", Some(r#"{"provisioningTemplateId":""}"#)).await;
    assert!(text.contains(r#""path":"/provisioningTemplateId""#), "{text}");
    let huge = format!(r#"{{"provisioningTemplateId":"{}"}}"#, "x".repeat(3 << 20));
    let (status, text, content_type) = call(&f, "POST", "/things", Some(&huge)).await;
    assert_eq!((status, content_type.as_deref()), (StatusCode::PAYLOAD_TOO_LARGE, Some(MEDIA_TYPE)), "{text}");
    assert!(text.len() < 200, "the answer does not repeat the body");
    assert_eq!(f.registry.certificate_status(&cert), Some(CertificateStatus::Active), "the array body changed nothing");

    // Fields the seed does not name are ignored, as CDF does.
    let (status, text, _) =
        call(&f, "POST", "/things", Some(r#"{"provisioningTemplateId":"missing","clientRef":"x"}"#)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{text}");
    assert_eq!(text, r#"{"message":"template \"missing\" does not exist"}"#);

    // CDF's detach-only delete, per request.
    let (status, _, _) = call(&f, "DELETE", "/things/t1?deleteCertificates=false&deletePolicies=false", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(f.registry.certificate_status(&cert), Some(CertificateStatus::Active), "kept");
}

#[tokio::test]
async fn metrics_are_served_in_the_prometheus_text_format_without_the_media_type() {
    let f = Fixture::new();
    let request = Request::builder().uri("/metrics").body(Body::empty()).unwrap();
    let response = router(f.app.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = String::from_utf8(to_bytes(response.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap();
    assert!(text.contains("# TYPE cdf_commands_in_flight gauge"), "{text}");
}

#[tokio::test]
async fn health_answers_without_the_media_type_and_ready_names_the_dependency_at_fault() {
    let f = Fixture::new();
    let get = |uri: &str| Request::builder().uri(uri).body(Body::empty()).unwrap();
    let response = router(f.app.clone()).oneshot(get("/health")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = router(f.app.clone()).oneshot(get("/ready")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    f.registry.faults.fail_next(IotOp::DescribeThing, ErrorKind::Transient, 1);
    let response = router(f.app.clone()).oneshot(get("/ready")).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value =
        serde_json::from_slice(&to_bytes(response.into_body(), 1 << 20).await.unwrap()).unwrap();
    assert_eq!(body["message"], "not ready: iot unavailable");
    assert_eq!(body["checks"][0], serde_json::json!({"dependency": "records"}));
}

/// The response schema the OpenAPI document gives for `method` on `template` with `status`.
fn documented(
    doc: &serde_json::Value,
    template: &str,
    method: &str,
    status: StatusCode,
) -> Option<jsonschema::Validator> {
    let media = &doc["paths"][template][method]["responses"][status.as_str()]["content"][MEDIA_TYPE]["schema"];
    let reference = media["$ref"].as_str()?;
    let mut schema = doc.clone();
    schema["$ref"] = serde_json::Value::String(reference.to_owned());
    Some(jsonschema::validator_for(&schema).unwrap())
}

#[tokio::test]
async fn every_answer_conforms_to_the_openapi_document_it_is_served_with() {
    let f = Fixture::new().with_examples(&["aws-issued", "add_thing_to_group"]);
    f.registry.add_group("g", &[("region", "eu")]);
    f.registry.add_thing("t1", Some("sensor"), &[("a", "b")]);
    let cert = f.registry.add_certificate(CertificateStatus::Active);
    f.registry.attach_thing_principal("t1", &cert);

    let request = Request::builder().uri("/openapi.json").body(Body::empty()).unwrap();
    let served = router(f.app.clone()).oneshot(request).await.unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&to_bytes(served.into_body(), 1 << 20).await.unwrap()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let error_schema = documented(&doc, "/things/{thingName}", "get", StatusCode::NOT_FOUND).unwrap();
    assert!(!error_schema.is_valid(&serde_json::json!({"error": "x"})), "the check can fail");

    let bulk = r#"{"provisioningTemplateId":"add_thing_to_group","parameters":[{"ThingName":"b1","ThingGroupName":"g"},{"ThingName":"b 2","ThingGroupName":"g"}]}"#;
    let (_, accepted, _) = call(&f, "POST", "/bulkthings", Some(bulk)).await;
    let task: serde_json::Value = serde_json::from_str(&accepted).unwrap();
    let id = task["taskId"].as_str().unwrap().to_owned();
    let calls: Vec<(&str, String, &str, Option<&str>)> = vec![
        ("get", "/things/t1".into(), "/things/{thingName}", None),
        ("get", "/things/ghost".into(), "/things/{thingName}", None),
        ("get", "/things/a%20b".into(), "/things/{thingName}", None),
        (
            "patch",
            "/things/t1/certificates".into(),
            "/things/{thingName}/certificates",
            Some(r#"{"certificateStatus":"BOGUS"}"#),
        ),
        (
            "post",
            "/things".into(),
            "/things",
            Some(r#"{"provisioningTemplateId":"aws-issued","parameters":{"ThingName":"oa-1"}}"#),
        ),
        ("post", "/things".into(), "/things", Some(r#"{"provisioningTemplateId":"nope"}"#)),
        (
            "post",
            "/things".into(),
            "/things",
            Some(r#"{"provisioningTemplateId":"aws-issued","parameters":{"ThingName":"bad name"}}"#),
        ),
        ("post", "/bulkthings".into(), "/bulkthings", Some(bulk)),
        ("post", "/bulkthings".into(), "/bulkthings", Some(r#"{"provisioningTemplateId":"add_thing_to_group"}"#)),
        ("get", format!("/bulkthings/{id}"), "/bulkthings/{taskId}", None),
        ("get", "/bulkthings/6c1b4f0e-8d2a-5e3b-9f7c-1a2b3c4d5e6f".into(), "/bulkthings/{taskId}", None),
        ("get", format!("/bulkthings/{id}/rows?outcome=FAILED"), "/bulkthings/{taskId}/rows", None),
        ("post", format!("/bulkthings/{id}/cancel"), "/bulkthings/{taskId}/cancel", None),
        ("delete", "/things/t1?deleteCertificates=false".into(), "/things/{thingName}", None),
        ("get", "/health".into(), "/health", None),
        ("get", "/ready".into(), "/ready", None),
    ];
    for (method, uri, template, body) in calls {
        let (status, text, _) = call(&f, &method.to_uppercase(), &uri, body).await;
        let responses = &doc["paths"][template][method]["responses"];
        assert!(responses.get(status.as_str()).is_some(), "{method} {uri}: status {status} is not documented");
        if let Some(schema) = documented(&doc, template, method, status) {
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            let errors: Vec<String> = schema.iter_errors(&value).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{method} {uri} {status}: {errors:?}\n{text}");
        }
    }
}

async fn post_with_key(f: &Fixture, key: &str, body: &str) -> (StatusCode, serde_json::Value) {
    let request = Request::builder()
        .method("POST")
        .uri("/things")
        .header(header::ACCEPT, MEDIA_TYPE)
        .header(header::CONTENT_TYPE, MEDIA_TYPE)
        .header("idempotency-key", key)
        .body(Body::from(body.to_owned()))
        .unwrap();
    let response = router(f.app.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

fn keyed_fixture() -> Fixture {
    Fixture::on_tokio_time().with_examples(&["aws-issued"])
}

#[tokio::test]
async fn an_idempotency_key_makes_post_things_run_once_and_answer_the_same_each_time() {
    let f = keyed_fixture();
    let body = r#"{"provisioningTemplateId":"aws-issued","parameters":{"ThingName":"keyed-1"}}"#;
    let (status, first) = post_with_key(&f, "order-17", body).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert!(first["privateKey"].as_str().unwrap().starts_with("-----BEGIN PRIVATE KEY-----"));
    let (status, again) = post_with_key(&f, "order-17", body).await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_eq!(again, first, "the same answer, the generated key included");
    assert_eq!(f.registry.certificates().len(), 1, "provisioned once");
    let events = f.events.published();
    assert_eq!(events.len(), 1, "announced once");
    assert_eq!(events[0].event_type, "thing.provisioned");
    let record = f.state.records().into_iter().next().unwrap();
    assert!(!serde_json::to_string(&record).unwrap().contains("PRIVATE KEY"), "the record holds a reference only");

    // The same key for another request is refused; a malformed key too.
    let other = r#"{"provisioningTemplateId":"aws-issued","parameters":{"ThingName":"keyed-2"}}"#;
    let (status, error) = post_with_key(&f, "order-17", other).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    let (status, error) = post_with_key(&f, "has space", other).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(error["message"].as_str().unwrap().contains("Idempotency-Key"));
    assert!(!f.registry.has_thing("keyed-2"));
}

#[tokio::test]
async fn a_rest_replay_of_a_queued_commands_key_gets_no_private_key() {
    use cdf_provisioning::app::Disposition;
    let f = keyed_fixture();
    let payload = serde_json::json!({"provisioningTemplateId": "aws-issued", "parameters": {"ThingName": "queued-1"}});
    // A queued provisionThing: its generated key goes to the secret sink, for S3 readers only.
    let queued = crate::support::envelope(serde_json::json!({
        "schemaVersion": 1, "type": "provisionThing", "idempotencyKey": "provision-queued-1", "payload": payload,
    }));
    assert_eq!(f.app.handle(&queued, "t").await, Disposition::Done);
    let stored: Vec<String> =
        f.secrets.names().iter().map(|name| f.secrets.get(name).unwrap().expose().to_owned()).collect();
    assert_eq!(stored.len(), 1);

    // The same key and body over REST is another request in the caller's own namespace: it
    // never reads the queued command's key back.
    let (status, answer) = post_with_key(&f, "provision-queued-1", &payload.to_string()).await;
    if let Some(key) = answer["privateKey"].as_str() {
        assert!(!stored.iter().any(|s| s == key), "{status}: the queued command's private key over REST");
    }
    let queued_record = f.record("provision-queued-1");
    assert!(f.state.records().iter().any(|r| r.idempotency_key.as_str() == "rest:anonymous:provision-queued-1"));
    assert_eq!(queued_record.attempts, 1, "the queued command's record is untouched");
}

#[tokio::test]
async fn keyed_rest_requests_are_scoped_to_the_bearer_tokens_holder() {
    use cdf_provisioning::api::{ApiSettings, router_with};
    let f = keyed_fixture();
    let body = r#"{"provisioningTemplateId":"aws-issued","parameters":{"ThingName":"scoped-1"}}"#;
    let settings = |token: &str| ApiSettings {
        bearer_token: Some(cdf_provisioning::domain::secret::Secret::new(token.into()).into()),
        ..ApiSettings::default()
    };
    let post = |token: &str| {
        Request::builder()
            .method("POST")
            .uri("/things")
            .header(header::ACCEPT, MEDIA_TYPE)
            .header(header::CONTENT_TYPE, MEDIA_TYPE)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header("idempotency-key", "order-1")
            .body(Body::from(body))
            .unwrap()
    };
    let first = "first-token-0123456789";
    let (status, _, answer) = send(router_with(f.app.clone(), settings(first)), post(first)).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let keys: Vec<String> = f.state.records().iter().map(|r| r.idempotency_key.to_string()).collect();
    assert_eq!(keys.len(), 1);
    assert!(keys[0].starts_with("rest:token-") && keys[0].ends_with(":order-1"), "{keys:?}");
    assert!(!keys[0].contains(first), "the record names the caller without its token");

    // After the token changes hands (rotated), its holder cannot replay the old holder's key.
    let second = "second-token-0123456789";
    let (_, _, again) = send(router_with(f.app.clone(), settings(second)), post(second)).await;
    let secret = serde_json::from_str::<serde_json::Value>(&answer).unwrap()["privateKey"].as_str().unwrap().to_owned();
    assert!(!again.contains(&secret), "another caller's private key");
    assert_eq!(f.state.records().len(), 2, "a record of its own");
}

#[tokio::test]
async fn a_queued_command_may_not_use_the_rest_key_prefix() {
    let message = serde_json::json!({
        "schemaVersion": 1, "type": "getThing", "idempotencyKey": "rest:anonymous:order-1",
        "payload": {"thingName": "t1"},
    });
    let error = cdf_provisioning::domain::CommandEnvelope::from_value(&message, "m").unwrap_err();
    assert_eq!(error.path.unwrap().to_string(), "/idempotencyKey");
}

#[tokio::test(start_paused = true)]
async fn a_keyed_request_cut_short_is_resumed_by_its_repeat_without_a_second_certificate() {
    let f = keyed_fixture();
    let body = r#"{"provisioningTemplateId":"aws-issued","parameters":{"ThingName":"keyed-3"}}"#;
    // The first request dies after the certificate exists (the client went away mid-way).
    f.registry.faults.delay_next(IotOp::AttachThingPrincipal, std::time::Duration::from_secs(3_600), 1);
    let cut = tokio::time::timeout(std::time::Duration::from_secs(5), post_with_key(&f, "order-18", body)).await;
    assert!(cut.is_err(), "the first request should hang");
    assert_eq!(f.registry.certificates().len(), 1);

    // A repeat while the first attempt's lease lives is told to come back.
    let (status, _) = post_with_key(&f, "order-18", body).await;
    assert_eq!(status, StatusCode::CONFLICT);

    tokio::time::sleep(crate::support::LEASE).await;
    let (status, answer) = post_with_key(&f, "order-18", body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(f.registry.certificates().len(), 1, "the certificate of the first attempt was resumed");
    assert!(answer["privateKey"].as_str().unwrap().starts_with("-----BEGIN PRIVATE KEY-----"));
    let certificate = f.registry.certificates().into_iter().next().unwrap();
    assert_eq!(answer["certificateId"], certificate.certificate_id.as_str());
    assert_eq!(certificate.certificate_status, CertificateStatus::Active);
}

async fn send(router: axum::Router, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let response = router.oneshot(request).await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn a_bearer_token_when_set_guards_every_route_but_the_probes() {
    use cdf_provisioning::api::{ApiSettings, router_with};
    let f = Fixture::new();
    f.registry.add_thing("t1", None, &[]);
    let settings = ApiSettings {
        bearer_token: Some(cdf_provisioning::domain::secret::Secret::new("s3cret".into()).into()),
        ..ApiSettings::default()
    };
    let get = |auth: Option<&str>| {
        let mut request = Request::builder().uri("/things/t1").header(header::ACCEPT, MEDIA_TYPE);
        if let Some(auth) = auth {
            request = request.header(header::AUTHORIZATION, auth);
        }
        request.body(Body::empty()).unwrap()
    };
    for auth in [None, Some("Bearer wrong"), Some("s3cret"), Some("Basic czNjcmV0")] {
        let (status, headers, body) = send(router_with(f.app.clone(), settings.clone()), get(auth)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
        assert!(body.contains("bearer token"), "{body}");
    }
    for auth in ["Bearer s3cret", "bearer s3cret", "BEARER  s3cret"] {
        let (status, _, _) = send(router_with(f.app.clone(), settings.clone()), get(Some(auth))).await;
        assert_eq!(status, StatusCode::OK, "{auth}: the scheme is case-insensitive");
    }
    let probe = Request::builder().uri("/health").body(Body::empty()).unwrap();
    assert_eq!(send(router_with(f.app.clone(), settings), probe).await.0, StatusCode::OK);
}

#[tokio::test]
async fn template_writes_need_the_admin_token_when_one_is_configured() {
    use cdf_provisioning::api::{ApiSettings, router_with};
    use cdf_provisioning::domain::secret::Secret;
    let f = Fixture::new().with_examples(&["csr"]);
    let (caller, admin) = ("Bearer a-caller-token-0123", "Bearer an-admin-token-0123");
    let guarded = ApiSettings {
        bearer_token: Some(Secret::new("a-caller-token-0123".into()).into()),
        admin_token: Some(Secret::new("an-admin-token-0123".into()).into()),
        ..ApiSettings::default()
    };
    let loopback_only = ApiSettings { bearer_token: None, ..guarded.clone() };
    let call = |method: &str, uri: &str, auth: Option<&str>| {
        let mut request = Request::builder().method(method).uri(uri).header(header::ACCEPT, MEDIA_TYPE);
        if let Some(auth) = auth {
            request = request.header(header::AUTHORIZATION, auth);
        }
        let body = if method == "PUT" { examples::template("csr") } else { String::new() };
        request.header(header::CONTENT_TYPE, MEDIA_TYPE).body(Body::from(body)).unwrap()
    };
    for settings in [&guarded, &loopback_only] {
        for (method, uri) in [("PUT", "/templates/new-one"), ("DELETE", "/templates/csr")] {
            for auth in [Some(caller), None] {
                let (status, _, body) =
                    send(router_with(f.app.clone(), settings.clone()), call(method, uri, auth)).await;
                let expected = if auth.is_none() && settings.bearer_token.is_some() {
                    StatusCode::UNAUTHORIZED
                } else {
                    StatusCode::FORBIDDEN
                };
                assert_eq!(status, expected, "{method} {uri} {auth:?}: {body}");
            }
        }
        // Reading templates is every caller's; the admin token is good everywhere.
        let (status, _, _) =
            send(router_with(f.app.clone(), settings.clone()), call("GET", "/templates/csr", Some(caller))).await;
        assert_eq!(status, StatusCode::OK);
    }
    let stored = |id: &'static str| {
        let templates = f.templates.clone();
        async move { cdf_provisioning::ports::TemplateStore::template(templates.as_ref(), id).await.is_ok() }
    };
    assert!(!stored("new-one").await, "a caller without the admin scope wrote a template");
    assert!(stored("csr").await, "a caller without the admin scope deleted a template");
    let (status, _, body) =
        send(router_with(f.app.clone(), guarded.clone()), call("PUT", "/templates/new-one", Some(admin))).await;
    assert!(status.is_success(), "{status}: {body}");
    let (status, _, _) =
        send(router_with(f.app.clone(), guarded.clone()), call("GET", "/things/none", Some(admin))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the admin token is good for every route");
    let (status, _, _) = send(router_with(f.app.clone(), guarded), call("DELETE", "/templates/csr", Some(admin))).await;
    assert!(status.is_success(), "{status}");
    assert!(stored("new-one").await && !stored("csr").await);
}

#[test]
fn the_api_command_refuses_to_start_open_on_all_interfaces() {
    let run = |extra: &[(&str, &str)]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cdf-provisioning"));
        command.args(["api", "--bind", "0.0.0.0:0"]).env_remove("CDF_API_BEARER_TOKEN").env_remove("CDF_API_INSECURE");
        command.env("AWS_REGION", "us-east-1").env("AWS_EC2_METADATA_DISABLED", "true");
        command.envs(extra.iter().copied()).output().unwrap()
    };
    let open = run(&[]);
    let stderr = String::from_utf8_lossy(&open.stderr);
    assert!(!open.status.success(), "{stderr}");
    assert!(stderr.contains("refusing to serve the REST API") && stderr.contains("CDF_API_INSECURE"), "{stderr}");
    let short = run(&[("CDF_API_BEARER_TOKEN", "short")]);
    let stderr = String::from_utf8_lossy(&short.stderr);
    assert!(!short.status.success() && stderr.contains("16 characters"), "{stderr}");
}

#[tokio::test]
async fn cors_is_off_by_default_and_answers_only_configured_origins() {
    use cdf_provisioning::api::{ApiSettings, router_with};
    let f = Fixture::new();
    f.registry.add_thing("t1", None, &[]);
    let preflight = |origin: &str| {
        Request::builder()
            .method("OPTIONS")
            .uri("/things/t1")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
            .body(Body::empty())
            .unwrap()
    };
    let (_, headers, _) = send(router(f.app.clone()), preflight("https://ops.example")).await;
    assert!(!headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN), "off by default");

    let settings = ApiSettings { cors_origins: vec!["https://ops.example".into()], ..ApiSettings::default() };
    let (status, headers, _) =
        send(router_with(f.app.clone(), settings.clone()), preflight("https://ops.example")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "https://ops.example");
    let allowed = |name| -> Vec<String> {
        headers[name].to_str().unwrap().split(',').map(|m| m.trim().to_ascii_lowercase()).collect()
    };
    for method in ["get", "post", "put", "patch", "delete"] {
        assert!(allowed(header::ACCESS_CONTROL_ALLOW_METHODS).contains(&method.to_owned()), "{method}");
    }
    for name in ["authorization", "content-type", "accept", "idempotency-key", "if-match", "if-none-match"] {
        assert!(allowed(header::ACCESS_CONTROL_ALLOW_HEADERS).contains(&name.to_owned()), "{name}");
    }
    let (_, headers, _) = send(router_with(f.app.clone(), settings.clone()), preflight("https://evil.example")).await;
    assert!(!headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
    let get = Request::builder()
        .uri("/things/t1")
        .header(header::ACCEPT, MEDIA_TYPE)
        .header(header::ORIGIN, "https://ops.example")
        .body(Body::empty())
        .unwrap();
    let (status, headers, _) = send(router_with(f.app.clone(), settings), get).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "https://ops.example");
}

#[tokio::test(start_paused = true)]
async fn a_request_over_the_timeout_answers_503_in_json() {
    use cdf_provisioning::api::{ApiSettings, router_with};
    let f = Fixture::on_tokio_time();
    f.registry.add_thing("t1", None, &[]);
    f.registry.faults.delay_next(IotOp::DescribeThing, std::time::Duration::from_secs(60), 1);
    let settings = ApiSettings { request_timeout: std::time::Duration::from_secs(5), ..ApiSettings::default() };
    let request = Request::builder().uri("/things/t1").header(header::ACCEPT, MEDIA_TYPE).body(Body::empty()).unwrap();
    let (status, headers, body) = send(router_with(f.app.clone(), settings), request).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers[header::RETRY_AFTER], "1");
    assert!(body.contains("within 5 s"), "{body}");
}

#[tokio::test]
async fn templates_are_uploaded_only_when_valid_then_read_listed_used_and_deleted() {
    let f = Fixture::new();
    f.registry.add_policy(examples::DEVICE_POLICY);
    let template = examples::template("aws-issued");
    let mut broken: serde_json::Value = serde_json::from_str(&template).unwrap();
    broken["Resources"]["thing"]["Properties"]["ThingName"] = serde_json::json!({"Ref": "Nope"});
    broken["Resources"]["certificate"]["Properties"]["Status"] = serde_json::json!("REVOKED");

    let (status, text, _) = call(&f, "PUT", "/templates/fleet/sensor", Some(&broken.to_string())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    let refused: serde_json::Value = serde_json::from_str(&text).unwrap();
    let errors = refused["errors"].as_array().unwrap();
    let paths: Vec<_> = errors.iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        ["/Resources/certificate/Properties/Status", "/Resources/thing/Properties/ThingName/Ref"],
        "every error, found without parameters"
    );
    assert!(refused["message"].as_str().unwrap().starts_with("the template has 2 error(s)"));
    let (status, _, _) = call(&f, "GET", "/templates/fleet/sensor", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing stored");

    let put = |body: &str| {
        Request::builder()
            .method("PUT")
            .uri("/templates/fleet/sensor")
            .header(header::ACCEPT, MEDIA_TYPE)
            .header(header::CONTENT_TYPE, MEDIA_TYPE)
            .body(Body::from(body.to_owned()))
            .unwrap()
    };
    let created = router(f.app.clone()).oneshot(put(&template)).await.unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let etag = created.headers()[header::ETAG].to_str().unwrap().to_owned();
    let replaced = router(f.app.clone()).oneshot(put(&template)).await.unwrap();
    assert_eq!(replaced.status(), StatusCode::OK);
    assert_eq!(replaced.headers()[header::ETAG], etag.as_str(), "the same text, the same version");

    let (status, text, _) = call(&f, "GET", "/templates/fleet/sensor", None).await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, template.as_str()));
    let (status, text, _) = call(&f, "GET", "/templates", None).await;
    assert_eq!(status, StatusCode::OK);
    let listed: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(listed["templates"][0], serde_json::json!({"templateId": "fleet/sensor", "version": etag}));

    let body = r#"{"provisioningTemplateId":"fleet/sensor","parameters":{"ThingName":"uploaded-1"}}"#;
    let (status, text, _) = call(&f, "POST", "/things", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{text}");

    for (method, uri, expected) in [
        ("DELETE", "/templates/fleet/sensor", StatusCode::NO_CONTENT),
        ("DELETE", "/templates/fleet/sensor", StatusCode::NOT_FOUND),
        ("GET", "/templates/fleet/sensor", StatusCode::NOT_FOUND),
        ("GET", "/templates/fleet/../secrets", StatusCode::BAD_REQUEST),
    ] {
        let (status, text, _) = call(&f, method, uri, None).await;
        assert_eq!(status, expected, "{method} {uri}: {text}");
    }
}

#[tokio::test]
async fn a_template_upload_with_a_precondition_that_does_not_hold_is_refused_412_and_changes_nothing() {
    let f = Fixture::new();
    let template = examples::template("aws-issued");
    let other = examples::template("csr");
    let put = |body: &str, condition: Option<(header::HeaderName, &str)>| {
        let mut request = Request::builder()
            .method("PUT")
            .uri("/templates/guarded")
            .header(header::ACCEPT, MEDIA_TYPE)
            .header(header::CONTENT_TYPE, MEDIA_TYPE);
        if let Some((name, value)) = condition {
            request = request.header(name, value);
        }
        request.body(Body::from(body.to_owned())).unwrap()
    };
    let stored = |f: &Fixture| {
        let app = f.app.clone();
        async move { app.template("guarded").await.map(|(text, _)| text).ok() }
    };

    // If-Match on an id without a template: 412, nothing created.
    let (status, _, text) = send(router(f.app.clone()), put(&template, Some((header::IF_MATCH, "\"deadbeef\"")))).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{text}");
    let (status, _, _) = send(router(f.app.clone()), put(&template, Some((header::IF_MATCH, "*")))).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(stored(&f).await, None);

    // If-None-Match: * creates once; on an existing id, 412.
    let (status, headers, _) = send(router(f.app.clone()), put(&template, Some((header::IF_NONE_MATCH, "*")))).await;
    assert_eq!(status, StatusCode::CREATED);
    let etag = headers[header::ETAG].to_str().unwrap().to_owned();
    let (status, _, text) = send(router(f.app.clone()), put(&other, Some((header::IF_NONE_MATCH, "*")))).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{text}");
    assert!(text.contains("If-None-Match"), "{text}");

    // A stale If-Match: 412, the template unchanged.
    let (status, _, text) = send(router(f.app.clone()), put(&other, Some((header::IF_MATCH, "\"deadbeef\"")))).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{text}");
    assert_eq!(stored(&f).await.as_deref(), Some(template.as_str()));

    // The stored version: replaced, 200 with the new version; the old one is stale now.
    let (status, headers, _) = send(router(f.app.clone()), put(&other, Some((header::IF_MATCH, &etag)))).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(headers[header::ETAG], etag.as_str());
    let (status, _, _) = send(router(f.app.clone()), put(&template, Some((header::IF_MATCH, &etag)))).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(stored(&f).await.as_deref(), Some(other.as_str()));
    let (status, _, _) = send(router(f.app.clone()), put(&template, Some((header::IF_MATCH, "*")))).await;
    assert_eq!(status, StatusCode::OK, "If-Match: * replaces whatever is stored");

    // Conditions this facade does not evaluate: 400.
    for (name, value) in [(header::IF_NONE_MATCH, "\"abc\""), (header::IF_MATCH, "\"a\", \"b\"")] {
        let (status, _, text) = send(router(f.app.clone()), put(&template, Some((name.clone(), value)))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {value}: {text}");
    }
}

#[tokio::test]
async fn when_the_operator_requires_it_a_template_upload_without_a_precondition_is_refused_428() {
    use cdf_provisioning::api::{ApiSettings, router_with};
    let f = Fixture::new();
    let settings = ApiSettings { template_precondition: true, ..ApiSettings::default() };
    let template = examples::template("aws-issued");
    let put = |condition: Option<(header::HeaderName, &str)>| {
        let mut request = Request::builder()
            .method("PUT")
            .uri("/templates/required")
            .header(header::ACCEPT, MEDIA_TYPE)
            .header(header::CONTENT_TYPE, MEDIA_TYPE);
        if let Some((name, value)) = condition {
            request = request.header(name, value);
        }
        request.body(Body::from(template.clone())).unwrap()
    };
    let (status, _, text) = send(router_with(f.app.clone(), settings.clone()), put(None)).await;
    assert_eq!(status, StatusCode::PRECONDITION_REQUIRED, "{text}");
    assert!(f.app.template("required").await.is_err(), "nothing stored");
    let (status, headers, _) =
        send(router_with(f.app.clone(), settings.clone()), put(Some((header::IF_NONE_MATCH, "*")))).await;
    assert_eq!(status, StatusCode::CREATED);
    let etag = headers[header::ETAG].to_str().unwrap().to_owned();
    let (status, _, _) = send(router_with(f.app.clone(), settings), put(Some((header::IF_MATCH, &etag)))).await;
    assert_eq!(status, StatusCode::OK);
    // Not required by default.
    let (status, _, _) = send(router(f.app.clone()), put(None)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn ready_answers_from_its_last_probe_for_the_cache_window() {
    use cdf_provisioning::api::{ApiSettings, router_with};
    let f = Fixture::on_tokio_time();
    let settings = ApiSettings { ready_cache: std::time::Duration::from_secs(5), ..ApiSettings::default() };
    let router = router_with(f.app.clone(), settings);
    let ready = || Request::builder().uri("/ready").body(Body::empty()).unwrap();
    let probes = || f.registry.faults.count(IotOp::DescribeThing);

    let answers = futures::future::join_all((0..5).map(|_| send(router.clone(), ready()))).await;
    assert!(answers.iter().all(|(status, _, _)| *status == StatusCode::OK));
    for _ in 0..5 {
        assert_eq!(send(router.clone(), ready()).await.0, StatusCode::OK);
    }
    assert_eq!(probes(), 1, "ten requests within the window make one round of dependency calls");

    // A failure is kept as long: a flood of probes while AWS struggles adds no calls.
    tokio::time::advance(std::time::Duration::from_secs(6)).await;
    f.registry.faults.fail_next(IotOp::DescribeThing, ErrorKind::Transient, 1);
    assert_eq!(send(router.clone(), ready()).await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(send(router.clone(), ready()).await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(probes(), 2);
    tokio::time::advance(std::time::Duration::from_secs(6)).await;
    assert_eq!(send(router.clone(), ready()).await.0, StatusCode::OK);
    assert_eq!(probes(), 3);

    // Zero: every request probes.
    let settings = ApiSettings { ready_cache: std::time::Duration::ZERO, ..ApiSettings::default() };
    let router = router_with(f.app.clone(), settings);
    for _ in 0..3 {
        send(router.clone(), ready()).await;
    }
    assert_eq!(probes(), 6);
}

#[tokio::test]
async fn on_a_loopback_address_requests_naming_another_host_are_refused_with_421() {
    use cdf_provisioning::api::{ApiSettings, router_with};
    let f = Fixture::new();
    f.registry.add_thing("t1", None, &[]);
    let settings = ApiSettings { loopback_port: Some(3004), ..ApiSettings::default() };
    let get = |uri: &str, host: Option<&str>| {
        let mut request = Request::builder().uri(uri).header(header::ACCEPT, MEDIA_TYPE);
        if let Some(host) = host {
            request = request.header(header::HOST, host);
        }
        request.body(Body::empty()).unwrap()
    };
    for host in ["rebound.example:3004", "rebound.example", "localhost:8080", "10.0.0.7:3004"] {
        for uri in ["/things/t1", "/ready", "/templates"] {
            let (status, headers, body) =
                send(router_with(f.app.clone(), settings.clone()), get(uri, Some(host))).await;
            assert_eq!(status, StatusCode::MISDIRECTED_REQUEST, "{host} {uri}");
            assert_eq!(headers[header::CONTENT_TYPE], MEDIA_TYPE);
            let body: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert!(body["message"].as_str().unwrap().contains("localhost:3004"), "{body}");
        }
    }
    for host in [Some("localhost:3004"), Some("127.0.0.1:3004"), Some("[::1]:3004"), Some("localhost"), None] {
        let (status, _, _) = send(router_with(f.app.clone(), settings.clone()), get("/things/t1", host)).await;
        assert_eq!(status, StatusCode::OK, "{host:?}");
    }
    // Off unless the facade listens on a loopback address.
    let (status, _, _) = send(router(f.app.clone()), get("/things/t1", Some("rebound.example:3004"))).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_keyed_bulk_submission_never_meets_a_queued_bulk_commands_task() {
    use cdf_provisioning::domain::bulk::TaskId;
    let f = Fixture::new();
    f.templates.put("add_thing_to_group", &examples::template("add_thing_to_group"));
    f.registry.add_group("g", &[]);
    let request = serde_json::json!({"provisioningTemplateId": "add_thing_to_group", "parameters": [
        {"ThingName": "b-1", "ThingGroupName": "g"}
    ]});
    let queued = crate::support::envelope(serde_json::json!({
        "schemaVersion": 1, "type": "bulkProvisionThings", "idempotencyKey": "bulk-key", "payload": request,
    }));
    f.app.handle(&queued, "t").await;
    let queued_task = TaskId::for_key(&cdf_provisioning::domain::IdempotencyKey::new("bulk-key"));
    assert!(f.app.bulk_task(&queued_task).await.is_ok(), "the queued command made its task");

    let post = || {
        Request::builder()
            .method("POST")
            .uri("/bulkthings")
            .header(header::ACCEPT, MEDIA_TYPE)
            .header(header::CONTENT_TYPE, MEDIA_TYPE)
            .header("idempotency-key", "bulk-key")
            .body(Body::from(request.to_string()))
            .unwrap()
    };
    let (status, _, first) = send(router(f.app.clone()), post()).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let first: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_ne!(first["taskId"], queued_task.to_string(), "a REST caller reached a queued command's task");
    let (_, _, again) = send(router(f.app.clone()), post()).await;
    let again: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(again["taskId"], first["taskId"], "the same caller's resubmission is the same task");
}

fn post_bulk(body: &str, key: Option<&str>) -> Request<Body> {
    let mut request = Request::builder()
        .method("POST")
        .uri("/bulkthings")
        .header(header::ACCEPT, MEDIA_TYPE)
        .header(header::CONTENT_TYPE, MEDIA_TYPE);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    request.body(Body::from(body.to_owned())).unwrap()
}

#[tokio::test]
async fn bulk_bodies_are_read_as_cdf_reads_them() {
    let f = Fixture::new();
    f.templates.put("add_thing_to_group", &examples::template("add_thing_to_group"));
    f.registry.add_group("g", &[]);

    // A field the seed does not name is ignored, as on POST /things.
    let extra = serde_json::json!({"provisioningTemplateId": "add_thing_to_group", "clientNote": "x",
        "parameters": [{"ThingName": "b-1", "ThingGroupName": "g"}]});
    let (status, _, text) = send(router(f.app.clone()), post_bulk(&extra.to_string(), None)).await;
    assert_eq!(status, StatusCode::CREATED, "{text}");

    // Rows in an object of the bucket, without inline parameters.
    f.rows.put("rows/two.ndjson", "{\"ThingName\":\"b-2\",\"ThingGroupName\":\"g\"}\n");
    let object = serde_json::json!({"provisioningTemplateId": "add_thing_to_group", "rowsObject": "rows/two.ndjson"});
    let (status, _, text) = send(router(f.app.clone()), post_bulk(&object.to_string(), None)).await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    let task: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(task["totalRows"], 1, "{text}");

    // A rows object that is not there: 404 naming it, and no task left behind.
    let missing = serde_json::json!({"provisioningTemplateId": "add_thing_to_group", "rowsObject": "rows/none.ndjson"});
    let (status, _, text) = send(router(f.app.clone()), post_bulk(&missing.to_string(), Some("missing-rows"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{text}");
    assert!(text.contains("rows/none.ndjson"), "{text}");
    let tasks = f.bulk.tasks();
    assert_eq!(tasks.len(), 2, "a task was stored for a missing rows object: {tasks:?}");
}

#[tokio::test]
async fn a_bulk_idempotency_key_reused_with_another_body_answers_422() {
    let f = Fixture::new();
    f.templates.put("add_thing_to_group", &examples::template("add_thing_to_group"));
    f.registry.add_group("g", &[]);
    let body = |thing: &str| {
        serde_json::json!({"provisioningTemplateId": "add_thing_to_group",
            "parameters": [{"ThingName": thing, "ThingGroupName": "g"}]})
        .to_string()
    };
    let (status, _, first) = send(router(f.app.clone()), post_bulk(&body("b-1"), Some("k"))).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, _, again) = send(router(f.app.clone()), post_bulk(&body("b-1"), Some("k"))).await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    let (first, again): (serde_json::Value, serde_json::Value) =
        (serde_json::from_str(&first).unwrap(), serde_json::from_str(&again).unwrap());
    assert_eq!(first["taskId"], again["taskId"]);
    let (status, _, other) = send(router(f.app.clone()), post_bulk(&body("b-2"), Some("k"))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{other}");
    assert_eq!(f.bulk.tasks().len(), 1);
}
