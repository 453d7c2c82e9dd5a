//! The REST facade over HTTP on the product's wiring: every route, with IoT and S3 changed as
//! it says, and the `registerThing` mode.

use serde_json::{Value, json};

use crate::http::{Exchange, http, serve};
use crate::stack::{Stack, grouped_device_template};
use crate::support::examples;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_over_http_with_iot_changed_as_it_says() {
    use cdf_provisioning::api::MEDIA_TYPE;
    let s = Stack::deploy().await;
    let ca_id = s.examples().await;
    let address = serve(s.app().await).await;
    let cdf = [("Accept", MEDIA_TYPE), ("Content-Type", MEDIA_TYPE)];
    let thing = s.thing("rest");
    let body = json!({"provisioningTemplateId": "aws-issued", "parameters": {"ThingName": thing}}).to_string();

    // Probes, outside the media type rule.
    assert_eq!(http(address, "GET", "/health", &[], "").await.0, 200);
    let (status, ready) = http(address, "GET", "/ready", &[], "").await;
    assert_eq!(status, 200, "{ready}");

    // POST /things without a key: 201, the key inline, an ACTIVE certificate on the thing.
    let (status, text) = http(address, "POST", "/things", &cdf, &body).await;
    assert_eq!(status, 201, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert!(answer["privateKey"].as_str().unwrap().starts_with("-----BEGIN PRIVATE KEY-----"));
    let certificate = answer["certificateId"].as_str().unwrap().to_owned();
    assert_eq!(s.certificate_status(&certificate).await.as_deref(), Some("ACTIVE"));

    // With an Idempotency-Key: once, the same answer twice, the key read back from S3.
    let keyed = s.thing("rest-keyed");
    let keyed_body = json!({"provisioningTemplateId": "aws-issued", "parameters": {"ThingName": keyed}}).to_string();
    let key = [("Accept", MEDIA_TYPE), ("Content-Type", MEDIA_TYPE), ("Idempotency-Key", "rest-order-1")];
    let (status, first) = http(address, "POST", "/things", &key, &keyed_body).await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = http(address, "POST", "/things", &key, &keyed_body).await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(serde_json::from_str::<Value>(&first).unwrap(), serde_json::from_str::<Value>(&again).unwrap());
    let principals = s.iot.list_thing_principals().thing_name(&keyed).send().await.unwrap();
    assert_eq!(principals.principals().len(), 1, "one certificate for two requests");
    let (status, _) = http(address, "POST", "/things", &key, &body).await;
    assert_eq!(status, 422, "the key with another body");

    // GET, PATCH, DELETE.
    let (status, text) = http(address, "GET", &format!("/things/{thing}"), &cdf, "").await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["certificates"][0]["certificateStatus"], "ACTIVE");
    let path = format!("/things/{thing}/certificates");
    let (status, text) = http(address, "PATCH", &path, &cdf, r#"{"certificateStatus":"INACTIVE"}"#).await;
    assert_eq!(status, 204, "{text}");
    assert_eq!(s.certificate_status(&certificate).await.as_deref(), Some("INACTIVE"));
    // A revoked certificate reads INACTIVE, the seed's status, with IoT's own beside it.
    let (status, text) = http(address, "PATCH", &path, &cdf, r#"{"certificateStatus":"REVOKED"}"#).await;
    assert_eq!(status, 204, "{text}");
    let (_, text) = http(address, "GET", &format!("/things/{thing}"), &cdf, "").await;
    let described = &serde_json::from_str::<Value>(&text).unwrap()["certificates"][0];
    assert_eq!(
        (&described["certificateStatus"], &described["iotCertificateStatus"]),
        (&json!("INACTIVE"), &json!("REVOKED"))
    );
    let (status, _) = http(address, "DELETE", &format!("/things/{thing}?deletePolicies=false"), &cdf, "").await;
    assert_eq!(status, 204);
    assert!(s.iot.describe_thing().thing_name(&thing).send().await.is_err(), "the thing is gone");
    assert_eq!(s.certificate_status(&certificate).await, None, "its certificate too");

    // What goes wrong answers in the seed's JSON, with the status of whose fault it is.
    let unknown = json!({"provisioningTemplateId": "nope", "parameters": {"ThingName": "x"}}).to_string();
    let bad_name = json!({"provisioningTemplateId": "aws-issued", "parameters": {"ThingName": "a b"}}).to_string();
    let huge = format!(r#"{{"provisioningTemplateId":"{}"}}"#, "x".repeat(3 << 20));
    // Longer than the queue schema allows for a template id (512): the same limit on this path.
    let long_id = json!({"provisioningTemplateId": "t".repeat(600), "parameters": {"ThingName": "x"}}).to_string();
    let failures: [Exchange<'_>; 14] = [
        ("GET", format!("/things/{thing}"), &cdf, "", 404),
        ("GET", "/things/a%20b".into(), &cdf, "", 400),
        ("GET", "/things/%FF".into(), &cdf, "", 400),
        ("GET", "/things/t".into(), &[], "", 415),
        ("GET", "/nowhere".into(), &cdf, "", 404),
        ("PUT", "/things/t".into(), &cdf, "{}", 405),
        ("POST", "/things".into(), &cdf, &unknown, 404),
        ("POST", "/things".into(), &cdf, &bad_name, 400),
        ("POST", "/things".into(), &cdf, r#"{"provisioningTemplateId":"../secrets/x"}"#, 400),
        ("POST", "/things".into(), &cdf, &huge, 413),
        ("POST", "/things".into(), &cdf, &long_id, 400),
        ("POST", "/things".into(), &cdf, "[]", 400),
        ("PATCH", format!("/things/{keyed}/certificates"), &cdf, r#"["INACTIVE"]"#, 400),
        ("GET", "/bulkthings/6c1b4f0e-8d2a-5e3b-9f7c-1a2b3c4d5e6f".into(), &cdf, "", 404),
    ];
    for (method, path, headers, body, expected) in failures {
        let (status, text) = http(address, method, &path, headers, body).await;
        let shown: String = path.chars().take(60).collect();
        assert_eq!(status, expected, "{method} {shown}: {text}");
        let error: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{method} {shown}: not JSON: {text}"));
        assert!(error["message"].is_string(), "{method} {shown}: {text}");
        assert!(!text.contains("arn:aws") && !text.contains("RequestId"), "{method} {shown}: internals in {text}");
    }
    let principals = s.iot.list_thing_principals().thing_name(&keyed).send().await.unwrap();
    assert_eq!(principals.principals().len(), 1, "the array body changed nothing");

    // Templates through the API, stored in S3 where the commands read them.
    let template = examples::template("aws-issued");
    let broken = template.replace(r#"{ "Ref": "ThingName" }"#, r#"{ "Fn::Join": ["-"] }"#);
    assert_ne!(broken, template);
    let (status, text) = http(address, "PUT", "/templates/e2e/uploaded", &cdf, &broken).await;
    assert_eq!(status, 400, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["errors"][0]["path"],
        "/Resources/thing/Properties/ThingName/Fn::Join"
    );
    assert_eq!(http(address, "GET", "/templates/e2e/uploaded", &cdf, "").await.0, 404, "nothing stored");
    let (status, text) = http(address, "PUT", "/templates/e2e/uploaded", &cdf, &template).await;
    assert_eq!(status, 201, "{text}");
    let version = serde_json::from_str::<Value>(&text).unwrap()["version"].as_str().unwrap().to_owned();
    let (status, text) = http(address, "GET", "/templates", &cdf, "").await;
    assert_eq!(status, 200);
    assert!(text.contains(r#""templateId":"e2e/uploaded""#) && text.contains(&version.replace('"', "\\\"")), "{text}");
    let (status, text) = http(address, "GET", "/templates/e2e/uploaded", &cdf, "").await;
    assert_eq!((status, text.as_str()), (200, template.as_str()));
    let uploaded = s.thing("rest-uploaded");
    let body = json!({"provisioningTemplateId": "e2e/uploaded", "parameters": {"ThingName": uploaded}}).to_string();
    let (status, text) = http(address, "POST", "/things", &cdf, &body).await;
    assert_eq!(status, 201, "{text}");
    assert_eq!(http(address, "DELETE", "/templates/e2e/uploaded", &cdf, "").await.0, 204);
    assert_eq!(http(address, "DELETE", "/templates/e2e/uploaded", &cdf, "").await.0, 404);

    // Whose fault, said precisely: what the caller names but does not exist is 404 saying
    // which; the server's own misconfiguration (a CA whose key is not in its store) is 500.
    let (keyless, _) = s.register_test_ca("keyless CA").await;
    let ca_signed = |name: &str, ca: &str| {
        json!({"provisioningTemplateId": "ca-signed", "parameters": {"ThingName": s.thing(name)},
               "cdfProvisioningParameters": {"caId": ca, "certInfo": {"commonName": name, "country": "DE"}}})
        .to_string()
    };
    let (status, text) = http(address, "POST", "/things", &cdf, &ca_signed("ca-ok", &ca_id)).await;
    assert_eq!(status, 201, "{text}");
    let unknown_ca = "0".repeat(64);
    let (status, text) = http(address, "POST", "/things", &cdf, &ca_signed("ca-unknown", &unknown_ca)).await;
    assert_eq!(status, 404, "{text}");
    assert!(text.contains(&format!("CA certificate {unknown_ca} is not registered")), "{text}");
    let (status, text) = http(address, "POST", "/things", &cdf, &ca_signed("ca-keyless", &keyless)).await;
    assert_eq!((status, text.as_str()), (500, r#"{"message":"internal error"}"#));
    let no_policy = template
        .replace("cdf-example-device", "no-such-policy")
        .replace(r#""ThingName": { "Type": "String" }"#, r#""Device.Name": { "Type": "String" }"#)
        .replace(r#"{ "Ref": "ThingName" }"#, r#"{ "Ref": "Device.Name" }"#);
    assert_eq!(http(address, "PUT", "/templates/e2e/no-policy", &cdf, &no_policy).await.0, 201);
    let missing_policy = s.thing("no-policy");
    let body = json!({"provisioningTemplateId": "e2e/no-policy", "parameters": {"Device.Name": missing_policy}, "clientRef": "ignored"}).to_string();
    let (status, text) = http(address, "POST", "/things", &cdf, &body).await;
    assert_eq!(status, 404, "{text}");
    assert!(text.contains("no-such-policy"), "{text}");
    assert!(s.iot.describe_thing().thing_name(&missing_policy).send().await.is_err(), "nothing left behind");
    let body = json!({"provisioningTemplateId": "e2e/no-policy", "parameters": {"Device.Name": "a b"}}).to_string();
    let (status, text) = http(address, "POST", "/things", &cdf, &body).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains(r#""path":"/parameters/Device.Name""#), "one segment, no /payload: {text}");
    let (status, text) = http(address, "POST", "/things", &cdf, r#"{"provisioningTemplateId":""}"#).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains(r#""path":"/provisioningTemplateId""#), "{text}");
    let extra = json!({"provisioningTemplateId": "aws-issued", "parameters": {"ThingName": s.thing("extra")}, "clientRef": "x"}).to_string();
    assert_eq!(http(address, "POST", "/things", &cdf, &extra).await.0, 201, "unknown fields are ignored, as in CDF");

    // A policy document IoT refuses (MalformedPolicyException) is the caller's 400; what was
    // made before is undone.
    let malformed = template.replace(
        r#""PolicyName": "cdf-example-device""#,
        r#""PolicyDocument": "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Maybe\",\"Action\":\"iot:Connect\",\"Resource\":\"*\"}]}""#,
    );
    assert_ne!(malformed, template);
    assert_eq!(
        http(address, "PUT", "/templates/e2e/malformed", &cdf, &malformed).await.0,
        201,
        "valid JSON with a Statement"
    );
    let refused = s.thing("malformed");
    let body = json!({"provisioningTemplateId": "e2e/malformed", "parameters": {"ThingName": refused}}).to_string();
    let (status, text) = http(address, "POST", "/things", &cdf, &body).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("MalformedPolicyException"), "{text}");
    assert!(s.iot.describe_thing().thing_name(&refused).send().await.is_err(), "nothing left behind");

    // Bulk over HTTP (the rows run on workers; none runs here, so the task is cancelled).
    let rows = json!({"provisioningTemplateId": "aws-issued", "parameters": [{"ThingName": s.thing("bulk-1")}, {"ThingName": "bad name"}]}).to_string();
    let (status, text) = http(address, "POST", "/bulkthings", &cdf, &rows).await;
    assert_eq!(status, 201, "{text}");
    let task = serde_json::from_str::<Value>(&text).unwrap()["taskId"].as_str().unwrap().to_owned();
    assert_eq!(http(address, "GET", &format!("/bulkthings/{task}"), &cdf, "").await.0, 200);
    let (status, text) = http(address, "GET", &format!("/bulkthings/{task}/rows?outcome=FAILED"), &cdf, "").await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["rows"][0]["row"], 1, "{text}");
    assert_eq!(http(address, "POST", &format!("/bulkthings/{task}/cancel"), &cdf, "").await.0, 200);
    assert_eq!(http(address, "GET", "/metrics", &[], "").await.0, 200);
    let (status, text) = http(address, "GET", "/openapi.json", &[], "").await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["openapi"], "3.1.0");
}

/// The `registerThing` mode over HTTP: IoT (the test emulator's RegisterThing) evaluates the
/// template. A registration IoT refuses answers 400 saying why, not 500, and what this service
/// made before registering (the key and certificate of `createDeviceAWSCertificate`) is undone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_thing_mode_over_http_provisions_or_answers_400_leaving_nothing_behind() {
    use cdf_provisioning::api::MEDIA_TYPE;
    use cdf_provisioning::app::provision::ProvisioningMode;
    let s = Stack::deploy().await;
    s.examples().await;
    let mut settings = s.settings();
    settings.provision.mode = ProvisioningMode::RegisterThing;
    let address = serve(s.app_with(settings).await).await;
    let cdf = [("Accept", MEDIA_TYPE), ("Content-Type", MEDIA_TYPE)];

    let template = grouped_device_template().to_string();
    let (status, text) = http(address, "PUT", "/templates/e2e-register-thing", &cdf, &template).await;
    assert_eq!(status, 201, "{text}");

    // Registered by IoT: 201, the certificate ACTIVE on the thing, the thing in its group.
    let good = s.thing("rt-good");
    let body = json!({"provisioningTemplateId": "e2e-register-thing", "parameters": {"ThingName": good, "Group": "cdf-example-eu"}});
    let (status, text) = http(address, "POST", "/things", &cdf, &body.to_string()).await;
    assert_eq!(status, 201, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    let certificate = answer["certificateId"].as_str().unwrap().to_owned();
    assert_eq!(s.certificate_status(&certificate).await.as_deref(), Some("ACTIVE"));
    let principals = s.iot.list_thing_principals().thing_name(&good).send().await.unwrap();
    assert_eq!(principals.principals().len(), 1);
    let groups = s.iot.list_thing_groups_for_thing().thing_name(&good).send().await.unwrap();
    assert_eq!(groups.thing_groups()[0].group_name(), Some("cdf-example-eu"));

    // Refused by IoT (a group that does not exist): 400 naming it, and nothing left behind.
    let bad = s.thing("rt-bad");
    let body = json!({"provisioningTemplateId": "e2e-register-thing", "parameters": {"ThingName": bad, "Group": "no-such-group"}});
    let (status, text) = http(address, "POST", "/things", &cdf, &body.to_string()).await;
    assert_eq!(status, 400, "{text}");
    let error: Value = serde_json::from_str(&text).unwrap();
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("IoT refused the registration") && message.contains("no-such-group"), "{message}");
    assert!(!text.contains("arn:aws") && !text.contains("RequestId"), "internals in {text}");
    assert!(s.iot.describe_thing().thing_name(&bad).send().await.is_err(), "no thing");
    let undone = message.split("deleted certificate ").nth(1).expect("the certificate was undone");
    let undone: String = undone.chars().take_while(char::is_ascii_hexdigit).collect();
    assert_eq!(undone.len(), 64, "{message}");
    assert_eq!(s.certificate_status(&undone).await, None, "the certificate made before registering is gone");
    assert!(message.contains("deleted the generated key"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_binary_on_loopback_answers_only_requests_naming_this_host() {
    let s = Stack::deploy().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let bind = format!("127.0.0.1:{port}");
    let mut child = s.spawn_binary(&["api", "--bind", &bind], &[]);
    let address: std::net::SocketAddr = bind.parse().unwrap();
    let local = format!("localhost:{port}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let up = tokio::net::TcpStream::connect(address).await.is_ok();
        if up && http(address, "GET", "/health", &[("Host", &local)], "").await.0 == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the api never answered on {bind}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let rebound = format!("rebound.example:{port}");
    let (status, text) = http(address, "GET", "/health", &[("Host", &rebound)], "").await;
    child.kill().unwrap();
    let _ = child.wait();
    assert_eq!(status, 421, "{text}");
    assert!(text.contains("message"), "{text}");
}
