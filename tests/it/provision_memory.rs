//! provisionThing against the in-memory fakes: every example template, crash after each step
//! with resume, compensation of permanent failures, secrets kept out of records and events.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::support::{Fixture, examples, provisioned};
use cdf_provisioning::adapters::memory::{IotOp, StoreOp};
use cdf_provisioning::app::Disposition;
use cdf_provisioning::crypto;
use cdf_provisioning::domain::record::CommandStatus;
use cdf_provisioning::domain::{CertificateStatus, CommandEnvelope, ErrorCode};
use cdf_provisioning::ports::ErrorKind;
use serde_json::{Value, json};

const CA_ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A fixture with every example template and what the templates expect to exist.
fn fixture() -> Fixture {
    prepare(Fixture::new())
}

fn prepare(f: Fixture) -> Fixture {
    let f = f.with_examples(&examples::NAMES);
    for group in examples::GROUPS {
        f.registry.add_group(group, &[]);
    }
    f.registry.add_thing_type(examples::THING_TYPE);
    let (ca_pem, ca_key) = crypto::test_ca("Example Device CA").unwrap();
    f.registry.add_ca(CA_ID, &ca_pem);
    f.ca_keys.put(CA_ID, ca_key);
    f
}

fn provision(key: &str, request: &Value) -> CommandEnvelope {
    let body = json!({"schemaVersion": 1, "type": "provisionThing", "idempotencyKey": key, "payload": request});
    CommandEnvelope::from_value(&body, "m").unwrap()
}

/// What every successful provisioning must leave behind.
fn assert_provisioned(f: &Fixture, name: &str, key: &str) {
    let record = f.record(key);
    assert_eq!(record.status, CommandStatus::Succeeded, "{name}: {:?}", record.error);
    let result = provisioned(&record);
    let thing = result.thing_name.as_deref().unwrap();
    assert!(f.registry.has_thing(thing), "{name}: thing missing");
    let certificates = f.registry.certificates();
    if name == "add_thing_to_group" {
        assert!(certificates.is_empty());
        assert_eq!(f.registry.groups_of(thing), ["cdf-example-eu"]);
        return;
    }
    assert_eq!(certificates.len(), 1, "{name}: exactly one certificate: {certificates:?}");
    let cert = &certificates[0];
    assert_eq!(cert.certificate_status, CertificateStatus::Active, "{name}");
    assert_eq!(f.registry.principals_of(thing), [cert.arn.to_string()], "{name}: attached");
    assert!(
        f.registry.policies_of(cert.arn.as_str()).contains(&"cdf-example-device".to_owned()) || name == "csr",
        "{name}"
    );
    assert_eq!(result.resource_arns.certificate.as_deref(), Some(cert.arn.as_str()));
    let text = serde_json::to_string(&record).unwrap() + &serde_json::to_string(&f.events.published()).unwrap();
    assert!(!text.contains("PRIVATE KEY"), "{name}: a private key leaked into the record or an event");
    let generates_key = matches!(name, "aws-issued" | "ca-signed");
    assert_eq!(result.private_key_secret.is_some(), generates_key, "{name}: {result:?}");
    assert_eq!(f.secrets.names().len(), usize::from(generates_key), "{name}");
}

#[tokio::test]
async fn every_example_template_provisions() {
    for name in examples::NAMES {
        let f = fixture();
        let request = examples::request(name);
        assert_eq!(f.app.handle(&provision("k", &request), "t").await, Disposition::Done, "{name}");
        assert_provisioned(&f, name, "k");
        let events = f.events.published();
        assert_eq!(events[0].event_type, "thing.provisioned", "{name}");
    }
}

#[tokio::test]
async fn ca_signed_certificates_carry_the_requested_subject_and_validity() {
    let f = fixture();
    let request = examples::request("ca-signed");
    assert_eq!(f.app.handle(&provision("k", &request), "t").await, Disposition::Done);
    let pem = f.registry.certificates()[0].certificate_pem.clone().unwrap();
    let der = pem::parse_der(&pem);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert_eq!(cert.subject().to_string(), "C=DE, O=Example Corp, CN=sensor-0102");
    assert_eq!(cert.issuer().to_string(), "CN=Example Device CA");
    let days = (cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp()) / 86_400;
    assert_eq!(days, 365);
    let key = f.secrets.get(&f.secrets.names()[0]).unwrap();
    assert!(key.expose().starts_with("-----BEGIN PRIVATE KEY-----"));
}

mod pem {
    pub(crate) fn parse_der(text: &str) -> Vec<u8> {
        use base64::Engine;
        let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD.decode(body).unwrap()
    }
}

/// Runs `envelope` until its `k`-th checkpoint write, then lets the attempt die there: every
/// fake hangs from then on and the attempt is dropped, as if the process had been killed.
async fn die_after_checkpoint(f: &Fixture, envelope: &CommandEnvelope, k: usize) {
    let gate = Arc::new(AtomicBool::new(false));
    f.state.faults.shut_after(Some(StoreOp::Checkpoint), k, gate.clone());
    f.die_at(envelope, "t1", gate, &format!("checkpoint write {k}")).await;
}

/// Runs `envelope` until its `k`-th call to IoT has run, then lets the attempt die there:
/// whatever that call made exists, what the attempt meant to write about it is lost.
async fn die_after_iot_call(f: &Fixture, envelope: &CommandEnvelope, k: usize) {
    let gate = Arc::new(AtomicBool::new(false));
    f.registry.faults.shut_after(None, k, gate.clone());
    f.die_at(envelope, "t1", gate, &format!("IoT call {k}")).await;
}

/// How many IoT calls provisioning example `name` makes when nothing goes wrong.
async fn iot_calls_of_a_clean_run(name: &str) -> usize {
    let clean = fixture();
    clean.app.handle(&provision("k", &examples::request(name)), "t").await;
    clean.registry.faults.calls().len()
}

async fn crash_after(name: &str, k: usize) {
    let f = fixture();
    let request = examples::request(name);
    die_after_checkpoint(&f, &provision("k", &request), k).await;
    assert_eq!(f.app.handle(&provision("k", &request), "t2").await, Disposition::Done, "{name} after {k}");
    assert_provisioned(&f, name, "k");
    // Dying before the first checkpoint may be dying before the record existed.
    if k > 0 {
        assert_eq!(f.record("k").attempts, 2, "{name} after {k}");
    }
}

#[tokio::test]
async fn a_crash_after_any_step_resumes_to_exactly_one_certificate() {
    for name in examples::NAMES {
        // How many checkpoint writes a clean run makes.
        let clean = fixture();
        clean.app.handle(&provision("k", &examples::request(name)), "t").await;
        let writes = clean.state.faults.count(StoreOp::Checkpoint);
        assert!(writes >= 1, "{name}: {writes} checkpoint writes");
        for k in 0..=writes {
            crash_after(name, k).await;
        }
    }
}

/// Steps whose checkpoints wait for the next write (a thing made, groups, an attached policy or
/// principal) are redone harmlessly by a resumed attempt: a crash right after any IoT call,
/// with what it made not yet noted, still ends in exactly one device.
#[tokio::test]
async fn a_crash_right_after_any_iot_call_resumes_to_exactly_one_device() {
    for name in examples::NAMES {
        for k in 1..=iot_calls_of_a_clean_run(name).await {
            let f = fixture();
            let request = examples::request(name);
            die_after_iot_call(&f, &provision("k", &request), k).await;
            assert_eq!(f.app.handle(&provision("k", &request), "t2").await, Disposition::Done, "{name} after {k}");
            assert_provisioned(&f, name, "k");
        }
    }
}

/// A resumed attempt that then fails for good still undoes what its predecessor made, even
/// the steps whose checkpoints died with it.
#[tokio::test]
async fn a_crash_then_a_permanent_failure_leaves_nothing_behind() {
    let name = "aws-issued";
    for k in 1..=iot_calls_of_a_clean_run(name).await {
        let f = fixture();
        let request = examples::request(name);
        die_after_iot_call(&f, &provision("k", &request), k).await;
        // The resumed attempt cannot activate the certificate, ever.
        f.registry.faults.fail_next(IotOp::UpdateCertificate, ErrorKind::Invalid, 1);
        assert_eq!(f.app.handle(&provision("k", &request), "t2").await, Disposition::Done, "after {k}");
        let record = f.record("k");
        assert_eq!(record.status, CommandStatus::Failed, "after {k}");
        let thing = request["parameters"]["ThingName"].as_str().unwrap();
        assert!(!f.registry.has_thing(thing), "after {k}: the thing was undone");
        assert!(f.registry.certificates().is_empty(), "after {k}: the certificate was undone");
        assert!(f.secrets.names().is_empty(), "after {k}: the key was undone");
    }
}

#[tokio::test]
async fn an_unreadable_checkpoint_stops_the_command_without_a_second_certificate() {
    let f = fixture();
    let request = examples::request("aws-issued");
    let envelope = provision("k", &request);
    // Writes: plan; key with certificateRequested; then IoT makes the certificate (INACTIVE).
    let gate = Arc::new(AtomicBool::new(false));
    f.registry.faults.shut_after(Some(IotOp::CreateCertificateFromCsr), 1, gate.clone());
    f.die_at(&envelope, "t1", gate, "the certificate request").await;
    assert_eq!(f.registry.certificates().len(), 1);
    let key = envelope.idempotency_key.clone();
    // As a deploy of a version with another checkpoint format would leave it: the note that
    // a certificate was requested, which is what keeps a resumed attempt from a second one.
    let stored = f.record("k").checkpoints["certificateRequested"].replace(r#""v":1"#, r#""v":2"#);
    f.state.overwrite_checkpoint(&key, "certificateRequested", &stored);

    assert_eq!(f.app.handle(&envelope, "t2").await, Disposition::Done);
    let record = f.record("k");
    assert_eq!(record.status, CommandStatus::Failed);
    let error = record.error.unwrap();
    assert_eq!(error.code, ErrorCode::CheckpointUnreadable);
    assert!(error.message.contains(r#"checkpoint "certificateRequested""#), "{}", error.message);
    assert!(error.message.contains("format version 2"), "{}", error.message);
    assert_eq!(f.registry.certificates().len(), 1, "no second certificate");
    assert_eq!(f.registry.faults.count(IotOp::CreateCertificateFromCsr), 1);
    let events = f.events.published();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, "command.failed");
    assert_eq!(events[0].data["error"]["code"], "CHECKPOINT_UNREADABLE");
}

#[tokio::test]
async fn a_failed_checkpoint_leaves_no_orphan_certificate() {
    for name in ["csr", "aws-issued", "ca-signed", "additional-policies"] {
        let clean = fixture();
        clean.app.handle(&provision("k", &examples::request(name)), "t").await;
        let writes = clean.state.faults.count(StoreOp::Checkpoint);
        for k in 1..=writes {
            let f = fixture();
            let request = examples::request(name);
            f.state.faults.fail_nth(StoreOp::Checkpoint, ErrorKind::Transient, k);
            assert!(matches!(f.app.handle(&provision("k", &request), "t1").await, Disposition::Retry { .. }));
            assert_eq!(f.app.handle(&provision("k", &request), "t2").await, Disposition::Done, "{name} at {k}");
            let active: Vec<_> = f
                .registry
                .certificates()
                .into_iter()
                .filter(|c| c.certificate_status == CertificateStatus::Active)
                .collect();
            assert_eq!(active.len(), 1, "{name} at {k}: one ACTIVE certificate");
            // Even a certificate obtained but not recorded is found again and adopted.
            assert_eq!(f.registry.certificates().len(), 1, "{name} at {k}: no orphan");
            let thing = provisioned(&f.record("k")).thing_name.unwrap();
            assert_eq!(f.registry.principals_of(&thing), [active[0].arn.to_string()]);
        }
    }
}

#[tokio::test]
async fn a_permanent_failure_is_compensated() {
    let f = fixture();
    let template = examples::template("additional-policies");
    let mut request = examples::request("additional-policies");
    // The template's policy does not exist: found only after the certificate and thing were made.
    f.templates.put("broken", &template.replace("cdf-example-device", "no-such-policy"));
    request["provisioningTemplateId"] = json!("broken");
    assert_eq!(f.app.handle(&provision("k", &request), "t").await, Disposition::Done);
    let record = f.record("k");
    assert_eq!(record.status, CommandStatus::Failed);
    let error = record.error.unwrap();
    assert_eq!(error.code, ErrorCode::NotFound);
    assert!(error.message.contains("no-such-policy") && error.message.contains("undone"), "{}", error.message);
    assert!(f.registry.certificates().is_empty(), "certificate deleted");
    assert!(!f.registry.has_thing("sensor-0103"), "thing deleted");
    assert!(!f.registry.has_policy("clientIdEnforcementPolicy_sensor-0103"), "created policy deleted");
    assert_eq!(f.events.published()[0].event_type, "command.failed");
}

/// An `aws-issued` command (key `k`) that fails permanently at its last step, whose
/// compensation then meets `failures` transient failures of `DeleteCertificate`.
async fn failed_with_undo_failures(failures: usize) -> Fixture {
    let f = fixture();
    let request = examples::request("aws-issued");
    f.registry.faults.fail_next(IotOp::UpdateCertificate, ErrorKind::Invalid, 1);
    f.registry.faults.fail_next(IotOp::DeleteCertificate, ErrorKind::Transient, failures);
    assert_eq!(f.app.handle(&provision("k", &request), "t").await, Disposition::Done);
    f
}

/// An undo step that fails in a way that could pass (a 5xx) is repeated: the failed command
/// still leaves nothing behind.
#[tokio::test(start_paused = true)]
async fn compensation_repeats_an_undo_step_that_fails_transiently() {
    let f = failed_with_undo_failures(3).await;
    let error = f.record("k").error.unwrap();
    assert!(
        error.message.contains("deleted certificate") && !error.message.contains("could not undo"),
        "{}",
        error.message
    );
    assert!(f.registry.certificates().is_empty(), "the certificate was deleted on the 4th try");
    assert_eq!(f.registry.faults.count(IotOp::DeleteCertificate), 4);
    assert!(!f.registry.has_thing("sensor-0101"));
}

/// What compensation still cannot undo after its repeats is named in the command's error.
#[tokio::test(start_paused = true)]
async fn what_compensation_cannot_undo_is_named_in_the_error() {
    let f = failed_with_undo_failures(100).await;
    let record = f.record("k");
    assert_eq!(record.status, CommandStatus::Failed);
    let certificate = f.registry.certificates()[0].certificate_id.to_string();
    let message = record.error.unwrap().message;
    assert!(message.contains(&format!("could not undo: deleted certificate {certificate}")), "{message}");
    assert!(!f.registry.has_thing("sensor-0101"), "the rest was undone: {message}");
}

#[tokio::test]
async fn template_errors_fail_before_any_aws_call() {
    let f = fixture();
    f.templates.put(
        "bad",
        r#"{"Resources": {"thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Ref": "Nope"}}}}}"#,
    );
    let request = json!({"provisioningTemplateId": "bad", "parameters": {}});
    assert_eq!(f.app.handle(&provision("k", &request), "t").await, Disposition::Done);
    let error = f.record("k").error.unwrap();
    assert_eq!(error.code, ErrorCode::ValidationFailed);
    assert_eq!(error.path.as_deref(), Some("template:/Resources/thing/Properties/ThingName/Ref"));
    assert!(f.registry.faults.calls().is_empty(), "{:?}", f.registry.faults.calls());

    let missing = json!({"provisioningTemplateId": "nope"});
    assert_eq!(f.app.handle(&provision("k2", &missing), "t").await, Disposition::Done);
    let error = f.record("k2").error.unwrap();
    assert_eq!(error.code, ErrorCode::NotFound);
    assert_eq!(error.message, "template \"nope\" does not exist");
}

#[tokio::test]
async fn provisioning_the_same_device_twice_acts_once() {
    let f = fixture();
    let request = examples::request("aws-issued");
    for t in ["t1", "t2", "t3"] {
        assert_eq!(f.app.handle(&provision("k", &request), t).await, Disposition::Done);
    }
    assert_eq!(f.registry.certificates().len(), 1);
    assert_eq!(f.registry.faults.count(IotOp::CreateCertificateFromCsr), 1);
}

#[tokio::test]
async fn register_thing_mode_hands_the_template_to_iot_and_adds_cdfs_policies() {
    use cdf_provisioning::app::provision::ProvisioningMode;
    let f = prepare(Fixture::with_settings(|s| s.provision.mode = ProvisioningMode::RegisterThing));
    let template = examples::template("aws-issued");
    let with_extras = template.replace(
        "\"createDeviceAWSCertificate\": true",
        "\"createDeviceAWSCertificate\": true, \"attachAdditionalPolicies\": [{\"name\": \"extra\", \"document\": \"{\\\"Statement\\\": []}\"}]",
    );
    f.templates.put("aws-issued", &with_extras);
    let request = examples::request("aws-issued");
    assert_eq!(f.app.handle(&provision("k", &request), "t").await, Disposition::Done);
    let record = f.record("k");
    assert_eq!(record.status, CommandStatus::Succeeded, "{:?}", record.error);

    let calls = f.registry.register_thing_calls();
    assert_eq!(calls.len(), 1);
    let (body, parameters) = &calls[0];
    assert!(!body.contains("CDF"), "the CDF section is not sent to IoT: {body}");
    let cert = &f.registry.certificates()[0];
    assert_eq!(parameters["CertificateId"], cert.certificate_id.as_str());
    assert_eq!(parameters["ThingName"], "sensor-0101");
    let result = provisioned(&record);
    assert_eq!(result.resource_arns.certificate.as_deref(), Some(cert.arn.as_str()));
    let extra = &result.policies[0];
    assert!(extra.starts_with("extra_"), "{result:?}");
    assert!(f.registry.policies_of(cert.arn.as_str()).contains(&extra.to_owned()));
}

/// A thing-only template with the given attribute override, provisioned over an existing thing.
async fn provision_over_existing(setting: &str) -> (Fixture, cdf_provisioning::domain::CommandRecord) {
    let f = fixture();
    f.registry.add_thing("dev-9", None, &[("old", "1"), ("site", "paris")]);
    let template = json!({
        "Parameters": {"ThingName": {"Type": "String"}},
        "Resources": {"thing": {
            "Type": "AWS::IoT::Thing",
            "Properties": {"ThingName": {"Ref": "ThingName"}, "AttributePayload": {"site": "berlin"}},
            "OverrideSettings": {"AttributePayload": setting}
        }}
    });
    f.templates.put("t", &template.to_string());
    let request = json!({"provisioningTemplateId": "t", "parameters": {"ThingName": "dev-9"}});
    assert_eq!(f.app.handle(&provision("k", &request), "t").await, Disposition::Done);
    let record = f.record("k");
    (f, record)
}

#[tokio::test]
async fn override_settings_decide_what_happens_to_an_existing_thing() {
    let attributes = |f: &Fixture| f.registry.thing("dev-9").unwrap().attributes.into_iter().collect::<Vec<_>>();
    let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());

    let (f, record) = provision_over_existing("MERGE").await;
    assert_eq!(record.status, CommandStatus::Succeeded);
    assert_eq!(attributes(&f), [pair("old", "1"), pair("site", "berlin")]);

    let (f, _) = provision_over_existing("REPLACE").await;
    assert_eq!(attributes(&f), [pair("site", "berlin")]);

    let (f, _) = provision_over_existing("DO_NOTHING").await;
    assert_eq!(attributes(&f), [pair("old", "1"), pair("site", "paris")]);

    let (f, record) = provision_over_existing("FAIL").await;
    assert_eq!(record.status, CommandStatus::Failed);
    assert_eq!(record.error.unwrap().code, ErrorCode::InvalidState);
    assert!(f.registry.has_thing("dev-9"), "an existing thing is never compensated away");
}

#[tokio::test]
async fn the_last_delivery_gives_a_failing_command_up_compensated_and_announced() {
    let f = fixture();
    let request = examples::request("aws-issued");
    // The certificate is made, then the thing cannot be (an outage that outlasts the deliveries).
    f.registry.faults.fail_next(IotOp::CreateThing, ErrorKind::Transient, 1);
    let envelope = provision("k", &request);
    assert!(matches!(f.app.handle(&envelope, "t1").await, Disposition::Retry { .. }), "not the last: left for later");
    assert_eq!(f.registry.certificates().len(), 1);

    f.registry.faults.fail_next(IotOp::CreateThing, ErrorKind::Transient, 1);
    assert_eq!(f.app.handle_delivery(&envelope, "t2", true).await, Disposition::Done);
    let record = f.record("k");
    assert_eq!(record.status, CommandStatus::Failed);
    let error = record.error.unwrap();
    assert_eq!(error.code, ErrorCode::RetriesExhausted);
    assert!(error.message.contains("undone"), "{}", error.message);
    assert!(f.registry.certificates().is_empty(), "the certificate it made is deleted");
    assert!(f.secrets.names().is_empty(), "and its key");
    assert_eq!(f.events.published()[0].event_type, "command.failed");
}

#[tokio::test]
async fn days_expiry_above_the_maximum_or_beyond_the_cas_validity_is_refused_before_any_certificate() {
    let at = "/payload/cdfProvisioningParameters/certInfo/daysExpiry";
    let with_days = |days: u32| {
        let mut request = examples::request("ca-signed");
        request["cdfProvisioningParameters"]["certInfo"]["daysExpiry"] = json!(days);
        request
    };

    // Above CDF_MAX_CERTIFICATE_DAYS (3650 by default): refused before any IoT call.
    let f = fixture();
    assert_eq!(f.app.handle(&provision("k", &with_days(3651)), "t").await, Disposition::Done);
    let error = f.record("k").error.unwrap();
    assert_eq!((error.code, error.path.unwrap().to_string()), (ErrorCode::ValidationFailed, at.to_owned()));
    assert!(error.message.contains("3650"), "{}", error.message);
    assert!(f.registry.faults.calls().is_empty(), "{:?}", f.registry.faults.calls());
    assert_eq!(f.app.handle(&provision("k2", &with_days(3650)), "t").await, Disposition::Done);
    assert_eq!(f.record("k2").status, CommandStatus::Succeeded);

    // Beyond the CA's own notAfter: refused, and no certificate is left.
    let f = fixture();
    let now = time::OffsetDateTime::from_unix_timestamp(1_764_000_000).unwrap();
    let (ca_pem, ca_key) = crypto::test_ca_until("Short CA", Some(now + time::Duration::days(100))).unwrap();
    f.registry.add_ca(CA_ID, &ca_pem);
    f.ca_keys.put(CA_ID, ca_key);
    assert_eq!(f.app.handle(&provision("k", &with_days(365)), "t").await, Disposition::Done);
    let error = f.record("k").error.unwrap();
    assert_eq!((error.code, error.path.unwrap().to_string()), (ErrorCode::ValidationFailed, at.to_owned()));
    assert!(error.message.contains("outlast CA"), "{}", error.message);
    assert!(f.registry.certificates().is_empty());
    assert_eq!(f.app.handle(&provision("k2", &with_days(90)), "t").await, Disposition::Done);
    assert_eq!(f.record("k2").status, CommandStatus::Succeeded, "{:?}", f.record("k2").error);
}

/// Where the first attempt of an adoption test dies.
#[derive(Debug, Clone, Copy)]
enum Interrupted {
    /// Right after the note that precedes the certificate request, before the request.
    AfterNote,
    /// Right after `CreateCertificateFromCsr` made its certificate, before anything noted it.
    AfterRequest,
}

/// Runs `envelope` until the point `at`, then lets the attempt die there.
async fn interrupt(f: &Fixture, envelope: &CommandEnvelope, at: Interrupted) {
    match at {
        // Writes: the plan, then the note.
        Interrupted::AfterNote => die_after_checkpoint(f, envelope, 2).await,
        Interrupted::AfterRequest => {
            let gate = Arc::new(AtomicBool::new(false));
            f.registry.faults.shut_after(Some(IotOp::CreateCertificateFromCsr), 1, gate.clone());
            f.die_at(envelope, "t1", gate, "the certificate request").await;
        }
    }
}

/// The `csr` example's request, for thing `thing`.
fn csr_request(thing: &str) -> Value {
    let mut request = examples::request("csr");
    request["parameters"]["ThingName"] = json!(thing);
    request
}

/// The certificate a succeeded command's record names.
fn certificate_of(f: &Fixture, key: &str) -> String {
    let record = f.record(key);
    assert_eq!(record.status, CommandStatus::Succeeded, "{key}: {:?}", record.error);
    provisioned(&record).certificate_id.unwrap().to_string()
}

/// A device that keeps its key pair already has an ACTIVE certificate for it, made before the
/// command and attached to its thing. Re-provisioning it from a CSR with that key, interrupted
/// after the note (before or after the request), never takes that certificate as made here: the
/// resumed attempt obtains its own, and a compensation never detaches, deactivates or deletes
/// the device's certificate.
#[tokio::test]
async fn a_resumed_attempt_never_adopts_the_devices_earlier_certificate_with_the_same_key() {
    use cdf_provisioning::ports::Certificates;
    for at in [Interrupted::AfterNote, Interrupted::AfterRequest] {
        for fails_at_the_end in [false, true] {
            let case = format!("{at:?}, failing at the end: {fails_at_the_end}");
            let f = fixture();
            let request = examples::request("csr");
            let thing = request["parameters"]["ThingName"].as_str().unwrap();
            let csr = request["parameters"]["CSR"].as_str().unwrap();
            f.registry.add_thing(thing, None, &[]);
            let production = f.registry.create_certificate_from_csr(csr, true).await.unwrap();
            f.registry.attach_thing_principal(thing, production.arn.as_str());
            f.clock.advance_ms(3_600_000);

            let envelope = provision("k", &request);
            interrupt(&f, &envelope, at).await;
            if fails_at_the_end {
                // The resumed attempt cannot activate its certificate: it is compensated.
                f.registry.faults.fail_next(IotOp::UpdateCertificate, ErrorKind::Invalid, 1);
            }
            assert_eq!(f.app.handle(&envelope, "t2").await, Disposition::Done, "{case}");

            let record = f.record("k");
            if fails_at_the_end {
                assert_eq!(record.status, CommandStatus::Failed, "{case}");
                let message = record.error.unwrap().message;
                assert!(!message.contains(production.certificate_id.as_str()), "{case}: {message}");
            } else {
                assert_ne!(certificate_of(&f, "k"), production.certificate_id.as_str(), "{case}");
            }
            assert_eq!(
                f.registry.certificate_status(production.arn.as_str()),
                Some(CertificateStatus::Active),
                "{case}: the device's certificate is untouched"
            );
            assert!(
                f.registry.principals_of(thing).contains(&production.arn.to_string()),
                "{case}: and still attached"
            );
        }
    }
}

/// Two commands carry one CSR (one key pair, for two things or the same one). Each is
/// interrupted around its certificate request, one after the other; neither resumed attempt
/// adopts the certificate the other one requested.
#[tokio::test]
async fn two_commands_with_one_csr_never_adopt_each_others_certificate() {
    for same_thing in [false, true] {
        let f = fixture();
        let a = csr_request("sensor-0100");
        let b = csr_request(if same_thing { "sensor-0100" } else { "sensor-0200" });
        // A dies after its note, before asking; B asks, then dies before noting the answer.
        interrupt(&f, &provision("a", &a), Interrupted::AfterNote).await;
        interrupt(&f, &provision("b", &b), Interrupted::AfterRequest).await;
        let bs = f.registry.certificates()[0].certificate_id.to_string();

        assert_eq!(f.app.handle(&provision("a", &a), "t2").await, Disposition::Done);
        assert_ne!(certificate_of(&f, "a"), bs, "same thing: {same_thing}: A took B's certificate");
        assert_eq!(f.app.handle(&provision("b", &b), "t2").await, Disposition::Done);
        assert_eq!(certificate_of(&f, "b"), bs, "same thing: {same_thing}: B finds its own again");
        assert_eq!(f.registry.certificates().len(), 2, "same thing: {same_thing}: one each, no orphan");
    }
}

/// Two commands with one CSR ask within moments of each other and both die before noting the
/// answer: two certificates for the key fit each one's note, and which one is whose cannot be
/// told. Neither adopts either; each obtains a new one (the two left INACTIVE cannot connect).
#[tokio::test]
async fn two_certificates_that_fit_one_note_are_both_left_alone() {
    let f = fixture();
    let a = csr_request("sensor-0100");
    let b = csr_request("sensor-0200");
    interrupt(&f, &provision("a", &a), Interrupted::AfterRequest).await;
    // B asks at the same moment as A.
    f.clock.advance_ms(-61_000);
    interrupt(&f, &provision("b", &b), Interrupted::AfterRequest).await;
    let interrupted: Vec<String> = f.registry.certificates().iter().map(|c| c.certificate_id.to_string()).collect();
    assert_eq!(interrupted.len(), 2);

    for (key, request) in [("a", &a), ("b", &b)] {
        assert_eq!(f.app.handle(&provision(key, request), "t2").await, Disposition::Done);
        let certificate = certificate_of(&f, key);
        assert!(!interrupted.contains(&certificate), "{key} adopted {certificate}, one of {interrupted:?}");
    }
    assert_ne!(certificate_of(&f, "a"), certificate_of(&f, "b"));
    for id in &interrupted {
        let cert = f.registry.certificates().into_iter().find(|c| c.certificate_id.as_str() == id).unwrap();
        assert_eq!(cert.certificate_status, CertificateStatus::Inactive, "{id}");
    }
}

/// A certificate request that answers later than the note's window made a certificate a resumed
/// attempt would not recognise as this command's: it is saved at once, one write more than when
/// it answers in time (its checkpoint then waits for the next write).
#[tokio::test(start_paused = true)]
async fn a_certificate_that_answers_after_the_notes_window_is_saved_at_once() {
    let mut writes = Vec::new();
    for delay in [std::time::Duration::from_secs(1), std::time::Duration::from_secs(40)] {
        let f = prepare(Fixture::on_tokio_time());
        f.registry.faults.delay_next(IotOp::CreateCertificateFromCsr, delay, 1);
        assert_eq!(f.app.handle(&provision("k", &examples::request("csr")), "t").await, Disposition::Done);
        assert_provisioned(&f, "csr", "k");
        writes.push(f.state.faults.count(StoreOp::Checkpoint));
    }
    assert_eq!(writes[1], writes[0] + 1, "{writes:?}");
}
