//! The application core against in-memory fakes: idempotency, leases, crash points,
//! failure injection, and the three commands' rules.

use crate::support::*;
use cdf_provisioning::adapters::memory::{EventsOp, IotOp, StoreOp};
use cdf_provisioning::app::{Disposition, RetryReason};
use cdf_provisioning::domain::record::CommandStatus;
use cdf_provisioning::domain::{CertificateStatus, ErrorCode};
use cdf_provisioning::ports::ErrorKind;
use serde_json::json;

fn seed_sensor(f: &Fixture) -> (String, String) {
    f.registry.add_thing("sensor-1", Some("thermometer"), &[("site", "berlin")]);
    let active = f.registry.add_certificate(CertificateStatus::Active);
    let revoked = f.registry.add_certificate(CertificateStatus::Revoked);
    f.registry.attach_thing_principal("sensor-1", &active);
    f.registry.attach_thing_principal("sensor-1", &revoked);
    f.registry.add_policy("device-policy");
    f.registry.attach_policy("device-policy", &active);
    f.registry.attach_policy("device-policy", &revoked);
    f.registry.add_group("fleet-a", &[("region", "eu")]);
    f.registry.add_thing_to_group("sensor-1", "fleet-a");
    (active, revoked)
}

#[tokio::test]
async fn get_thing_reports_real_statuses_policies_once_and_group_attributes() {
    let f = Fixture::new();
    seed_sensor(&f);
    assert_eq!(f.app.handle(&get_thing("k1", "sensor-1"), "t1").await, Disposition::Done);

    let record = f.record("k1");
    assert_eq!(record.status, CommandStatus::Succeeded);
    let result = described(&record);
    assert_eq!(result.thing_type.as_deref(), Some("thermometer"));
    assert_eq!(result.attributes, [("site".to_owned(), "berlin".to_owned())].into());
    let statuses: Vec<_> = result.certificates.iter().map(|c| c.certificate_status).collect();
    assert_eq!(statuses, [CertificateStatus::Active, CertificateStatus::Revoked], "REVOKED must not collapse");
    assert_eq!(result.policies.len(), 1, "a policy on two certificates is listed once");
    assert_eq!(result.groups[0].attributes, [("region".to_owned(), "eu".to_owned())].into());

    let events = f.events.published();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, "thing.described");
    assert_eq!(events[0].subject.as_deref(), Some("sensor-1"));
    assert!(record.event_published);
}

#[tokio::test]
async fn unknown_thing_is_a_recorded_not_found_failure() {
    let f = Fixture::new();
    assert_eq!(f.app.handle(&get_thing("k1", "ghost"), "t1").await, Disposition::Done);
    let record = f.record("k1");
    assert_eq!(record.status, CommandStatus::Failed);
    assert_eq!(record.error.unwrap().code, ErrorCode::ThingNotFound);
    let events = f.events.published();
    assert_eq!(events[0].event_type, "command.failed");
    assert_eq!(events[0].data["error"]["code"], "THING_NOT_FOUND");
}

#[tokio::test]
async fn the_same_command_three_times_acts_once() {
    let f = Fixture::new();
    seed_sensor(&f);
    let command = update_certificates("k1", "sensor-1", "REVOKED");
    for attempt in 0..3 {
        assert_eq!(f.app.handle(&command, &format!("token-{attempt}")).await, Disposition::Done);
    }
    assert_eq!(f.state.records().len(), 1);
    assert_eq!(f.registry.faults.count(IotOp::UpdateCertificate), 1, "only the ACTIVE certificate changes, once");
    assert_eq!(f.events.published().len(), 1, "the event is not re-published once marked");
    assert_eq!(f.record("k1").attempts, 1);
}

#[tokio::test]
async fn the_same_key_with_another_payload_is_rejected_and_the_record_kept() {
    let f = Fixture::new();
    seed_sensor(&f);
    assert_eq!(f.app.handle(&get_thing("k1", "sensor-1"), "t1").await, Disposition::Done);
    let before = f.record("k1");
    match f.app.handle(&delete_thing("k1", "sensor-1"), "t2").await {
        Disposition::Reject(e) => {
            assert_eq!(e.code, ErrorCode::IdempotencyKeyReused);
            assert_eq!(e.path.as_deref(), Some("/idempotencyKey"));
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(f.record("k1"), before);
    assert!(f.registry.has_thing("sensor-1"), "nothing was deleted");
}

#[tokio::test]
async fn a_crash_before_the_outcome_is_recorded_resumes_after_the_lease() {
    let f = Fixture::new();
    seed_sensor(&f);
    // The thing is deleted in IoT, then recording the outcome fails (a crash, in effect).
    f.state.faults.fail_next(StoreOp::Finish, ErrorKind::Transient, 1);
    assert!(matches!(f.app.handle(&delete_thing("k1", "sensor-1"), "t1").await, Disposition::Retry { .. }));
    assert!(!f.registry.has_thing("sensor-1"));

    // Redelivered while the first attempt's lease is live: wait, do nothing.
    match f.app.handle(&delete_thing("k1", "sensor-1"), "t2").await {
        Disposition::Retry { after: Some(after), .. } => assert!(after <= LEASE),
        other => panic!("expected a wait, got {other:?}"),
    }
    // After the lease: taken over, and the missing thing is this command's own work.
    f.clock.advance_ms(61_000);
    assert_eq!(f.app.handle(&delete_thing("k1", "sensor-1"), "t3").await, Disposition::Done);
    let record = f.record("k1");
    assert_eq!(record.status, CommandStatus::Succeeded);
    assert_eq!(record.attempts, 2);
    assert!(deleted(&record).already_deleted);
    assert_eq!(f.events.published().len(), 1);
}

#[tokio::test]
async fn an_event_lost_after_the_outcome_is_published_on_redelivery() {
    let f = Fixture::new();
    seed_sensor(&f);
    f.events.faults.fail_next(EventsOp::Publish, ErrorKind::Transient, 1);
    assert!(matches!(f.app.handle(&get_thing("k1", "sensor-1"), "t1").await, Disposition::Retry { .. }));
    assert_eq!(f.record("k1").status, CommandStatus::Succeeded);
    assert!(!f.record("k1").event_published);

    assert_eq!(f.app.handle(&get_thing("k1", "sensor-1"), "t2").await, Disposition::Done);
    assert_eq!(f.registry.faults.count(IotOp::DescribeThing), 1, "the command itself did not run again");
    assert_eq!(f.events.published().len(), 1);
    assert!(f.record("k1").event_published);
}

#[tokio::test]
async fn throttling_releases_the_lease_so_the_retry_runs_at_once() {
    let f = Fixture::new();
    seed_sensor(&f);
    f.registry.faults.fail_next(IotOp::ListThingPrincipals, ErrorKind::Throttled, 1);
    match f.app.handle(&update_certificates("k1", "sensor-1", "REVOKED"), "t1").await {
        Disposition::Retry { after: None, reason: RetryReason::Failed(e) } => assert_eq!(e.code, ErrorCode::Throttled),
        other => panic!("expected a retry, got {other:?}"),
    }
    let record = f.record("k1");
    assert_eq!(record.status, CommandStatus::InProgress);
    assert_eq!(record.error.unwrap().code, ErrorCode::Throttled);

    assert_eq!(f.app.handle(&update_certificates("k1", "sensor-1", "REVOKED"), "t2").await, Disposition::Done);
    let record = f.record("k1");
    assert_eq!(record.status, CommandStatus::Succeeded);
    assert_eq!(record.attempts, 2);
}

#[tokio::test]
async fn delete_cleans_up_what_only_this_thing_used_and_keeps_the_rest() {
    let f = Fixture::new();
    f.registry.add_thing("t1", None, &[]);
    f.registry.add_thing("t2", None, &[]);
    let own = f.registry.add_certificate(CertificateStatus::Active);
    let shared = f.registry.add_certificate(CertificateStatus::Active);
    let other = f.registry.add_certificate(CertificateStatus::Active);
    f.registry.attach_thing_principal("t1", &own);
    f.registry.attach_thing_principal("t1", &shared);
    f.registry.attach_thing_principal("t2", &shared);
    f.registry.attach_thing_principal("t2", &other);
    f.registry.add_policy("only-t1");
    f.registry.add_policy("fleet");
    f.registry.attach_policy("only-t1", &own);
    f.registry.attach_policy("fleet", &own);
    f.registry.attach_policy("fleet", &other);

    assert_eq!(f.app.handle(&delete_thing("k1", "t1"), "tok").await, Disposition::Done);
    let result = deleted(&f.record("k1"));
    assert!(!f.registry.has_thing("t1"));
    assert_eq!(f.registry.certificate_status(&own), None, "own certificate deleted");
    assert_eq!(f.registry.certificate_status(&shared), Some(CertificateStatus::Active), "shared one kept");
    assert!(!f.registry.has_policy("only-t1"));
    assert!(f.registry.has_policy("fleet"), "still attached to t2's certificate");
    assert_eq!(result.deleted_policies, ["only-t1"]);
    assert_eq!(result.kept_certificates.len(), 1);
    assert_eq!(f.events.published()[0].event_type, "thing.deleted");
}

#[tokio::test]
async fn detach_only_delete_keeps_certificates_and_policies() {
    let f = Fixture::new();
    let (active, _) = seed_sensor(&f);
    let command = envelope(json!({"schemaVersion": 1, "type": "deleteThing", "idempotencyKey": "k1",
        "payload": {"thingName": "sensor-1", "deleteCertificates": false, "deletePolicies": false}}));
    assert_eq!(f.app.handle(&command, "tok").await, Disposition::Done);
    assert!(!f.registry.has_thing("sensor-1"));
    assert_eq!(f.registry.certificate_status(&active), Some(CertificateStatus::Active));
    assert!(f.registry.has_policy("device-policy"));
    assert_eq!(f.registry.faults.count(IotOp::DetachPolicy), 0);
}

#[tokio::test]
async fn delete_retries_the_still_attached_conflict() {
    let f = Fixture::new();
    seed_sensor(&f);
    f.registry.faults.fail_next(IotOp::DeleteThing, ErrorKind::Conflict, 3);
    f.registry.faults.fail_next(IotOp::DeleteCertificate, ErrorKind::Conflict, 2);
    assert_eq!(f.app.handle(&delete_thing("k1", "sensor-1"), "tok").await, Disposition::Done);
    assert_eq!(f.record("k1").status, CommandStatus::Succeeded);
    assert_eq!(f.registry.faults.count(IotOp::DeleteThing), 4);
    assert!(!f.registry.has_thing("sensor-1"));
}

#[tokio::test]
async fn a_first_delete_of_a_missing_thing_is_not_found() {
    let f = Fixture::new();
    assert_eq!(f.app.handle(&delete_thing("k1", "ghost"), "tok").await, Disposition::Done);
    assert_eq!(f.record("k1").error.unwrap().code, ErrorCode::ThingNotFound);
}

#[tokio::test]
async fn certificates_update_skips_unchanged_and_refuses_to_revive_revoked() {
    let f = Fixture::new();
    let (active, revoked) = seed_sensor(&f);
    assert_eq!(f.app.handle(&update_certificates("k1", "sensor-1", "ACTIVE"), "t").await, Disposition::Done);
    let record = f.record("k1");
    assert_eq!(record.status, CommandStatus::Failed);
    let error = record.error.unwrap();
    assert_eq!(error.code, ErrorCode::InvalidState);
    assert!(error.message.contains("REVOKED"), "{}", error.message);
    assert_eq!(f.registry.faults.count(IotOp::UpdateCertificate), 0, "refused before any change");

    assert_eq!(f.app.handle(&update_certificates("k2", "sensor-1", "REVOKED"), "t").await, Disposition::Done);
    let result = certificates_updated(&f.record("k2"));
    assert!(result.certificates[0].changed);
    assert!(!result.certificates[1].changed);
    assert_eq!(f.registry.certificate_status(&active), Some(CertificateStatus::Revoked));
    assert_eq!(f.registry.certificate_status(&revoked), Some(CertificateStatus::Revoked));
    assert_eq!(f.events.published()[1].event_type, "thing.certificates.updated");
}

#[tokio::test]
async fn a_lost_lease_does_not_record_a_second_outcome() {
    let f = Fixture::new();
    seed_sensor(&f);
    f.state.faults.fail_next(StoreOp::Finish, ErrorKind::ConditionFailed, 1);
    match f.app.handle(&get_thing("k1", "sensor-1"), "t1").await {
        Disposition::Retry { reason, .. } => assert_eq!(reason, RetryReason::LeaseLost),
        other => panic!("{other:?}"),
    }
    assert!(f.events.published().is_empty());
}

#[tokio::test]
async fn a_record_this_version_cannot_read_dead_letters_the_message_with_the_reason() {
    let f = Fixture::new();
    seed_sensor(&f);
    f.state.faults.fail_next(StoreOp::Create, ErrorKind::Unreadable, 1);
    match f.app.handle(&get_thing("k1", "sensor-1"), "t1").await {
        Disposition::Reject(error) => {
            assert_eq!(error.code, ErrorCode::RecordUnreadable);
            assert!(error.message.contains("k1"), "{}", error.message);
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(f.registry.faults.count(IotOp::DescribeThing), 0, "nothing ran");
}

#[tokio::test(start_paused = true)]
async fn the_retry_budget_is_spent_by_failures_not_by_crashes() {
    let f = Fixture::on_tokio_time();
    seed_sensor(&f);
    let command = update_certificates("k1", "sensor-1", "REVOKED");
    // Six attempts crash (the worker is killed mid-call: the future is dropped, the lease kept).
    f.registry.faults.delay_next(IotOp::ListThingPrincipals, std::time::Duration::from_secs(3_600), 6);
    for attempt in 0..6 {
        let token = format!("c{attempt}");
        let crashed = tokio::time::timeout(std::time::Duration::from_secs(1), f.app.handle(&command, &token)).await;
        assert!(crashed.is_err(), "attempt {attempt} should hang");
        tokio::time::sleep(LEASE + std::time::Duration::from_secs(1)).await;
    }
    let record = f.record("k1");
    assert_eq!((record.attempts, record.failures), (6, 0), "crashes are attempts, not failures");

    // Then four retryable failures: each leaves the command to a later delivery.
    f.registry.faults.fail_next(IotOp::ListThingPrincipals, ErrorKind::Throttled, 100);
    for attempt in 0..4 {
        match f.app.handle(&command, &format!("f{attempt}")).await {
            Disposition::Retry { reason: RetryReason::Failed(e), .. } => assert_eq!(e.code, ErrorCode::Throttled),
            other => panic!("attempt {attempt}: expected a retry, got {other:?}"),
        }
    }
    assert_eq!(f.record("k1").failures, 4);
    // The fifth failure spends the budget (CDF_MAX_FAILED_ATTEMPTS = 5): given up, explicitly.
    assert_eq!(f.app.handle(&command, "f4").await, Disposition::Done);
    let record = f.record("k1");
    assert_eq!(record.status, CommandStatus::Failed);
    assert_eq!(record.error.unwrap().code, ErrorCode::RetriesExhausted);
    assert_eq!(f.events.published()[0].event_type, "command.failed");
}
