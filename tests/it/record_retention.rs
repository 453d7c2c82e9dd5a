//! A command's record outlives its message: every attempt pushes the record's expiry out by
//! the retention (never shorter than the dead-letter queue's), so a message redriven from the
//! dead-letter queue days later still finds its record and runs once. And the sweep for
//! records left in progress with no delivery coming.

use std::time::Duration;

use crate::support::*;
use cdf_provisioning::adapters::memory::IotOp;
use cdf_provisioning::app::{Disposition, RetryReason};
use cdf_provisioning::config::Config;
use cdf_provisioning::domain::record::CommandStatus;
use cdf_provisioning::domain::{CertificateStatus, ErrorCode, IdempotencyKey};
use cdf_provisioning::ports::{Clock, ErrorKind};

const DAY_MS: i64 = 86_400_000;

fn seed(f: &Fixture) {
    f.registry.add_thing("sensor-1", None, &[]);
    let certificate = f.registry.add_certificate(CertificateStatus::Active);
    f.registry.attach_thing_principal("sensor-1", &certificate);
}

/// One attempt that fails in a way that may pass later: the record stays in progress, its
/// lease released.
async fn fail_retryably(f: &Fixture, key: &str, token: &str) {
    f.registry.faults.fail_next(IotOp::ListThingPrincipals, ErrorKind::Throttled, 1);
    match f.app.handle(&update_certificates(key, "sensor-1", "INACTIVE"), token).await {
        Disposition::Retry { reason: RetryReason::Failed(e), .. } => assert_eq!(e.code, ErrorCode::Throttled),
        other => panic!("expected a retry, got {other:?}"),
    }
    assert_eq!(f.record(key).status, CommandStatus::InProgress);
}

#[tokio::test]
async fn a_take_over_days_later_pushes_the_records_expiry_out() {
    let f = Fixture::new();
    seed(&f);
    let config = Config::default();
    let created = f.clock.now();
    fail_retryably(&f, "k1", "t1").await;
    assert_eq!(f.record("k1").expires_at, created.expiry(config.record_retention));

    // The message comes back ten days later (redriven from the dead-letter queue, say).
    f.clock.advance_ms(10 * DAY_MS);
    let taken_over = f.clock.now();
    fail_retryably(&f, "k1", "t2").await;
    let record = f.record("k1");
    assert_eq!(record.attempts, 2);
    assert_eq!(record.expires_at, taken_over.expiry(config.record_retention), "counted from the last attempt");
    assert!(
        record.expires_at >= taken_over.expiry(config.dead_letter_retention),
        "the record outlives a message dead-lettered after this attempt"
    );

    // Another ten days on, past the first expiry: the record is still there, and the command
    // finishes once, on its checkpoints.
    f.clock.advance_ms(10 * DAY_MS);
    assert!(f.clock.now().expiry(Duration::ZERO) > created.expiry(config.record_retention));
    assert_eq!(f.app.handle(&update_certificates("k1", "sensor-1", "INACTIVE"), "t3").await, Disposition::Done);
    let record = f.record("k1");
    assert_eq!((record.status, record.attempts, record.failures), (CommandStatus::Succeeded, 3, 2));
    assert_eq!(record.expires_at, f.clock.now().expiry(config.record_retention));
}

#[tokio::test]
async fn the_sweep_reports_records_in_progress_whose_lease_expired_long_ago() {
    let f = Fixture::new();
    seed(&f);
    let hour = Duration::from_secs(3_600);
    fail_retryably(&f, "stuck", "t1").await;
    f.clock.advance_ms(60_000);
    assert_eq!(f.app.handle(&update_certificates("done", "sensor-1", "ACTIVE"), "t2").await, Disposition::Done);
    fail_retryably(&f, "later", "t3").await;

    // Within the threshold: nothing is stale yet.
    let found = f.app.stale_records(hour, 10).await.unwrap();
    assert!(found.records.is_empty() && !found.truncated, "{found:?}");

    f.clock.advance_ms(2 * 3_600_000);
    let found = f.app.stale_records(hour, 10).await.unwrap();
    let keys: Vec<&str> = found.records.iter().map(|r| r.idempotency_key.as_str()).collect();
    assert_eq!(keys, ["later", "stuck"], "in progress, lease expired over an hour ago; not the finished one");
    assert!(!found.truncated);
    assert_eq!(found.lease_expired_before, f.clock.now() - hour);
    let stuck = &found.records[1];
    assert_eq!((stuck.attempts, stuck.failures), (1, 1));
    assert_eq!(stuck.last_error_code, Some(ErrorCode::Throttled));
    assert_eq!(stuck.subject.as_deref(), Some("sensor-1"));
    assert_eq!(stuck.lease_expired_for_secs, 2 * 3_600 + 60);
    let line = serde_json::to_value(stuck).unwrap();
    assert_eq!(line["idempotencyKey"], "stuck");
    assert_eq!(line["commandType"], "updateThingCertificates");
    assert_eq!(line["lastErrorCode"], "THROTTLED");
    assert_eq!(line["leaseExpiredAt"], f.record("stuck").lease_expires_at_ms.to_rfc3339());

    let first = f.app.stale_records(hour, 1).await.unwrap();
    assert_eq!((first.records.len(), first.truncated), (1, true), "more than the limit: said so");

    // Its message comes back (redriven): taken over, no longer stale.
    assert_eq!(f.app.handle(&update_certificates("stuck", "sensor-1", "INACTIVE"), "t4").await, Disposition::Done);
    let found = f.app.stale_records(hour, 10).await.unwrap();
    assert_eq!(
        found.records.iter().map(|r| r.idempotency_key.clone()).collect::<Vec<_>>(),
        [IdempotencyKey::new("later")]
    );
}
