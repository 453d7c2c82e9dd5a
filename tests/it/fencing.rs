//! Fencing: an attempt that lost its command's lease (it was paused, frozen, or only slow past
//! its lease, and another attempt took the command over) never acts again: not on the secret
//! store, not on IoT, not by compensating. Each test runs a first attempt `A` that stalls in a
//! call past its lease beside a second attempt `B` that takes over, on tokio's paused time.

use std::sync::Arc;
use std::time::Duration;

use crate::support::{Fixture, LEASE, examples, get_thing, provisioned};
use cdf_provisioning::adapters::memory::{IotOp, ObjectOp, StoreOp, TokioClock};
use cdf_provisioning::app::{App, AppSettings, Disposition, KeyedProvision, RetryReason};
use cdf_provisioning::config::Config;
use cdf_provisioning::crypto;
use cdf_provisioning::domain::command::ProvisionRequest;
use cdf_provisioning::domain::record::CommandStatus;
use cdf_provisioning::domain::{CertificateStatus, CommandEnvelope, IdempotencyKey, LeaseToken};
use cdf_provisioning::wiring;
use serde_json::{Value, json};

const CA_ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// When the first attempt's clock starts (the fixture's tokio clock).
const START_MS: i64 = 1_764_000_000_000;
/// Longer than a lease: how long a stalled call of `A` takes.
const STALL: Duration = Duration::from_secs(150);

fn fixture() -> Fixture {
    let f = Fixture::on_tokio_time().with_examples(&examples::NAMES);
    for group in examples::GROUPS {
        f.registry.add_group(group, &[]);
    }
    let (ca_pem, ca_key) = crypto::test_ca("Example Device CA").unwrap();
    f.registry.add_ca(CA_ID, &ca_pem);
    f.ca_keys.put(CA_ID, ca_key);
    f
}

fn provision(key: &str, template: &str) -> CommandEnvelope {
    let body = json!({
        "schemaVersion": 1, "type": "provisionThing", "idempotencyKey": key,
        "payload": examples::request(template),
    });
    CommandEnvelope::from_value(&body, "m").unwrap()
}

/// Runs attempt `token` of `envelope` in the background (the first attempt, `A`).
fn spawn_attempt(
    app: &App,
    envelope: &CommandEnvelope,
    token: &'static str,
    last: bool,
) -> tokio::task::JoinHandle<Disposition> {
    let (app, envelope) = (app.clone(), envelope.clone());
    tokio::spawn(async move { app.handle_delivery(&envelope, token, last).await })
}

/// Past `A`'s lease: a second attempt may take the command over.
async fn past_the_lease() {
    tokio::time::sleep(LEASE + Duration::from_secs(1)).await;
}

fn lost(disposition: &Disposition) -> bool {
    matches!(disposition, Disposition::Retry { reason: RetryReason::LeaseLost, .. })
}

/// The stored private key the command's result names belongs to the certificate it names.
fn assert_key_matches_certificate(f: &Fixture, key: &str) {
    let result = provisioned(&f.record(key));
    let reference = result.private_key_secret.expect("a key was stored");
    let name = reference.strip_prefix("memory://secrets/").expect("a memory secret");
    let secret = f.secrets.get(name).expect("the key the result names exists");
    let key_pair = rcgen::KeyPair::from_pem(secret.expose()).expect("a PEM private key");
    let arn = result.resource_arns.certificate.expect("a certificate");
    let certificate = f.registry.certificates().into_iter().find(|c| c.arn.as_str() == arn).expect("it exists");
    assert_eq!(certificate.certificate_status, CertificateStatus::Active);
    let public = cdf_provisioning::domain::certificate::certificate_public_key(
        certificate.certificate_pem.as_deref().expect("its PEM"),
    )
    .unwrap();
    use rcgen::PublicKeyData;
    assert_eq!(key_pair.subject_public_key_info(), public, "the stored key is not the certificate's");
}

/// The calls among `calls` that change something in IoT. The fakes log a stalled call when it
/// returns: the call a stale attempt had in flight when it lost its lease is among them, the one
/// call a check before it cannot stop.
fn changes(calls: &[IotOp]) -> Vec<IotOp> {
    calls
        .iter()
        .copied()
        .filter(|op| !["Describe", "List", "Get"].iter().any(|read| op.as_str().starts_with(read)))
        .collect()
}

/// Finding 1: a stale attempt's key write lands after the winner finished.
#[tokio::test(start_paused = true)]
async fn a_stale_attempts_late_key_write_never_replaces_the_winners_key() {
    let f = fixture();
    let envelope = provision("k", "ca-signed");
    f.secrets.faults.delay_next(ObjectOp::Store, STALL, 1);
    let a = spawn_attempt(&f.app, &envelope, "A", false);
    past_the_lease().await;
    assert_eq!(f.app.handle(&envelope, "B").await, Disposition::Done);
    let calls = f.registry.faults.calls().len();

    let a = a.await.unwrap();
    assert_key_matches_certificate(&f, "k");
    assert_eq!(f.registry.faults.calls().len(), calls, "A called IoT after B finished");
    assert_eq!(f.record("k").status, CommandStatus::Succeeded);
    assert_eq!(f.registry.certificates().len(), 1);
    assert!(lost(&a), "{a:?}");
}

/// Finding 2: a stale attempt on its last chance meets a refused checkpoint and must not
/// compensate: what it would undo is the winner's.
#[tokio::test(start_paused = true)]
async fn a_superseded_last_attempt_never_undoes_the_winners_device() {
    let f = fixture();
    let envelope = provision("k", "ca-signed");
    f.secrets.faults.delay_next(ObjectOp::Store, STALL, 1);
    let a = spawn_attempt(&f.app, &envelope, "A", true);
    past_the_lease().await;
    assert_eq!(f.app.handle(&envelope, "B").await, Disposition::Done);

    let a = a.await.unwrap();
    assert!(lost(&a), "{a:?}");
    assert_eq!(f.registry.faults.count(IotOp::DeleteCertificate), 0, "A deleted a certificate");
    assert_eq!(f.record("k").status, CommandStatus::Succeeded);
    assert_key_matches_certificate(&f, "k");
}

/// Finding 2, where the stale attempt's own checkpoints cover the certificate: it must not
/// deactivate the certificate the winner went on with and activated.
#[tokio::test(start_paused = true)]
async fn a_superseded_last_attempt_never_deactivates_the_certificate_the_winner_activated() {
    let f = fixture();
    let envelope = provision("k", "ca-signed");
    f.registry.faults.delay_next(IotOp::CreateThing, STALL, 1);
    let a = spawn_attempt(&f.app, &envelope, "A", true);
    past_the_lease().await;
    assert_eq!(f.app.handle(&envelope, "B").await, Disposition::Done);
    let calls = f.registry.faults.calls().len();

    let a = a.await.unwrap();
    assert!(lost(&a), "{a:?}");
    let after = changes(&f.registry.faults.calls()[calls..]);
    assert_eq!(after, [IotOp::CreateThing], "A changed IoT after B finished, beyond its call in flight");
    assert_key_matches_certificate(&f, "k");
    let thing = provisioned(&f.record("k")).thing_name.unwrap();
    assert!(f.registry.has_thing(&thing));
}

/// Finding 3: once another attempt holds (or finished) the command, the heartbeat tells this
/// attempt to stop, whatever the record's status; the message's visibility is extended only
/// after renewals that succeeded.
#[tokio::test(start_paused = true)]
async fn the_heartbeat_stops_an_attempt_whose_command_another_attempt_finished() {
    let f = fixture();
    f.registry.add_thing("t1", None, &[]);
    let envelope = get_thing("k", "t1");
    f.registry.faults.delay_next(IotOp::DescribeThing, STALL, 1);
    let a = spawn_attempt(&f.app, &envelope, "A", false);
    past_the_lease().await;
    assert_eq!(f.app.handle(&envelope, "B").await, Disposition::Done);

    let key = IdempotencyKey::new("k");
    let renewed = std::sync::atomic::AtomicUsize::new(0);
    let ended = tokio::time::timeout(
        Duration::from_secs(60),
        f.app.keep_lease(&key, &LeaseToken::new("A"), Duration::from_secs(1), || async {
            renewed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }),
    )
    .await
    .expect("the heartbeat of a superseded attempt ends");
    assert_eq!(ended, cdf_provisioning::app::lease::LeaseEnded::TakenOver);
    assert_eq!(renewed.load(std::sync::atomic::Ordering::SeqCst), 0);
    a.abort();
}

/// Finding 3: renewals that keep failing never extend the message; the heartbeat gives up
/// when the lease has run out.
#[tokio::test(start_paused = true)]
async fn a_heartbeat_whose_renewals_fail_gives_up_when_the_lease_runs_out() {
    let f = fixture();
    f.registry.add_thing("t1", None, &[]);
    let envelope = get_thing("k", "t1");
    f.registry.faults.delay_next(IotOp::DescribeThing, STALL, 1);
    let a = spawn_attempt(&f.app, &envelope, "A", false);
    tokio::time::sleep(Duration::from_millis(10)).await;
    f.state.faults.fail_next(StoreOp::RenewLease, cdf_provisioning::ports::ErrorKind::Transient, 1_000);
    let renewed = std::sync::atomic::AtomicUsize::new(0);
    let started = tokio::time::Instant::now();
    let ended = f
        .app
        .keep_lease(&IdempotencyKey::new("k"), &LeaseToken::new("A"), Duration::from_secs(20), || async {
            renewed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        })
        .await;
    assert_eq!(ended, cdf_provisioning::app::lease::LeaseEnded::RanOut);
    assert_eq!(renewed.load(std::sync::atomic::Ordering::SeqCst), 0, "visibility extended without a renewal");
    assert!(started.elapsed() <= LEASE + Duration::from_secs(20), "{:?}", started.elapsed());
    a.abort();
}

/// Finding 4: a take-over decided on an expired lease loses to a renewal that lands before it.
#[tokio::test(start_paused = true)]
async fn a_renewal_landing_between_the_read_and_the_take_over_defeats_the_take_over() {
    let f = fixture();
    f.registry.add_thing("t1", None, &[]);
    let envelope = get_thing("k", "t1");
    f.registry.faults.delay_next(IotOp::DescribeThing, STALL, 1);
    let a = spawn_attempt(&f.app, &envelope, "A", false);
    past_the_lease().await;
    // B reads the expired lease, then its take-over is slow to land ...
    f.state.faults.delay_next(StoreOp::TakeOver, Duration::from_secs(1), 1);
    let b = spawn_attempt(&f.app, &envelope, "B", false);
    tokio::time::sleep(Duration::from_millis(100)).await;
    // ... and A's late renewal lands first.
    f.app.renew_lease(&IdempotencyKey::new("k"), &LeaseToken::new("A")).await.unwrap();

    let b = b.await.unwrap();
    assert!(matches!(b, Disposition::Retry { reason: RetryReason::LeaseHeld, .. }), "{b:?}");
    let record = f.record("k");
    assert_eq!(record.lease_token, Some(LeaseToken::new("A")), "B took over a live lease");
    assert_eq!(record.attempts, 1);
    assert_eq!(a.await.unwrap(), Disposition::Done);
    assert_eq!(f.registry.faults.count(IotOp::DescribeThing), 1, "both attempts ran");
}

fn keyed_request() -> (ProvisionRequest, Value) {
    let payload = examples::request("csr");
    (serde_json::from_value(payload.clone()).unwrap(), payload)
}

/// Finding 5: a keyed `POST /things` slower than its lease keeps it; the client's retry meets
/// a running request instead of taking it over.
#[tokio::test(start_paused = true)]
async fn a_keyed_rest_provisioning_slower_than_its_lease_keeps_it() {
    let f = fixture();
    f.registry.faults.delay_next(IotOp::CreateThing, STALL, 1);
    let (request, payload) = keyed_request();
    let key = IdempotencyKey::new("rest-key");
    let first = {
        let (app, request, payload, key) = (f.app.clone(), request.clone(), payload.clone(), key.clone());
        tokio::spawn(async move { app.provision_keyed("caller", &key, &request, &payload).await })
    };
    past_the_lease().await;
    let retry = f.app.provision_keyed("caller", &key, &request, &payload).await;
    assert!(matches!(retry, KeyedProvision::InProgress), "{retry:?}");

    let first = first.await.unwrap();
    assert!(matches!(first, KeyedProvision::Provisioned(_)), "{first:?}");
    assert_eq!(f.registry.certificates().len(), 1);
    assert_eq!(f.registry.faults.count(IotOp::CreateCertificateFromCsr), 1);
}

/// An App on the same fakes whose clock runs `skew_ms` apart from the fixture's.
fn app_with_skew(f: &Fixture, skew_ms: i64) -> App {
    let mut ports = f.fakes.ports();
    ports.clock = Arc::new(TokioClock::starting_at(START_MS + skew_ms));
    let settings =
        AppSettings { event_source: "urn:test".into(), lease: LEASE, ..wiring::app_settings(&Config::default()) };
    App::new(ports, settings)
}

/// Clocks 30 s apart: the attempt whose clock runs ahead takes a lease over early, and the
/// one it took it from stops at its next effect; the one whose clock runs behind waits.
#[tokio::test(start_paused = true)]
async fn two_attempts_with_clocks_30_s_apart_never_both_act() {
    let f = fixture();
    let ahead = app_with_skew(&f, 30_000);
    let behind = app_with_skew(&f, -30_000);
    let envelope = provision("k", "ca-signed");
    // A is slow in a call for 40 s: healthy by its own clock (lease 60 s) ...
    f.registry.faults.delay_next(IotOp::CreateThing, Duration::from_secs(40), 1);
    let a = spawn_attempt(&f.app, &envelope, "A", false);
    tokio::time::sleep(Duration::from_secs(31)).await;
    // ... an attempt whose clock is behind sees the lease live and waits ...
    let waited = behind.handle(&envelope, "C").await;
    assert!(matches!(waited, Disposition::Retry { reason: RetryReason::LeaseHeld, .. }), "{waited:?}");
    // ... one whose clock is ahead sees it expired, takes over and finishes.
    assert_eq!(ahead.handle(&envelope, "B").await, Disposition::Done);
    let calls = f.registry.faults.calls().len();
    let secrets = f.secrets.names().len();

    let a = a.await.unwrap();
    let after = changes(&f.registry.faults.calls()[calls..]);
    assert_eq!(after, [IotOp::CreateThing], "A changed IoT after B took over, beyond its call in flight");
    assert_eq!(f.secrets.names().len(), secrets);
    assert_key_matches_certificate(&f, "k");
    assert!(lost(&a), "{a:?}");
    let active = f.registry.certificates().iter().filter(|c| c.certificate_status == CertificateStatus::Active).count();
    assert_eq!(active, 1);
}

/// Keys are named per attempt: the key an earlier attempt stored but never recorded is deleted
/// by the attempt that records the outcome, so no key without a certificate is left behind.
#[tokio::test(start_paused = true)]
async fn the_attempt_that_finishes_deletes_the_keys_earlier_attempts_left() {
    let f = fixture();
    let envelope = provision("k", "ca-signed");
    // The first attempt stores its key, then cannot save the step that records it.
    f.state.faults.fail_nth(StoreOp::Checkpoint, cdf_provisioning::ports::ErrorKind::Transient, 2);
    let first = f.app.handle(&envelope, "A").await;
    assert!(matches!(first, Disposition::Retry { reason: RetryReason::Failed(_), .. }), "{first:?}");
    assert_eq!(f.secrets.names().len(), 1);

    assert_eq!(f.app.handle(&envelope, "B").await, Disposition::Done);
    assert_key_matches_certificate(&f, "k");
    let result = provisioned(&f.record("k"));
    let kept = result.private_key_secret.unwrap().replace("memory://secrets/", "");
    assert_eq!(f.secrets.names(), [kept], "the first attempt's key is left behind");
}
