//! The worker loop against the in-memory queue and fakes, in paused tokio time:
//! delete-after-record, duplicates, dead-lettering, retries, graceful shutdown.

use cdf_provisioning::adapters::memory::{IotOp, QueueOp, StoreOp};

use std::sync::Arc;
use std::time::Duration;

use crate::support::Fixture;
use cdf_provisioning::adapters::memory::MemoryQueue;
use cdf_provisioning::domain::record::CommandStatus;
use cdf_provisioning::domain::{CertificateStatus, ErrorCode};
use cdf_provisioning::ports::{CommandSender, ErrorKind};
use cdf_provisioning::worker::{Worker, WorkerSettings};
use tokio_util::sync::CancellationToken;

const VISIBILITY: Duration = Duration::from_secs(30);

fn settings() -> WorkerSettings {
    WorkerSettings {
        receivers: 2,
        concurrency: 4,
        wait_time: Duration::from_secs(1),
        visibility_timeout: VISIBILITY,
        shutdown_grace: Duration::from_secs(5),
        max_retry_delay: Duration::from_secs(10),
    }
}

struct Running {
    queue: Arc<MemoryQueue>,
    stop: CancellationToken,
    done: tokio::task::JoinHandle<()>,
    worker_stats: cdf_provisioning::worker::WorkerStats,
}

fn start(f: &Fixture, settings: WorkerSettings) -> Running {
    let queue = Arc::new(MemoryQueue::new(VISIBILITY, 5));
    let metrics = Arc::new(cdf_provisioning::metrics::Metrics::new());
    let worker = Worker::new(f.app.clone(), queue.clone(), settings).with_metrics(metrics);
    let worker_stats = worker.stats();
    let stop = CancellationToken::new();
    let done = tokio::spawn(worker.run(stop.clone()));
    Running { queue, stop, done, worker_stats }
}

async fn settle(queue: &MemoryQueue, until: impl Fn(&MemoryQueue) -> bool) {
    for _ in 0..6000 {
        if until(queue) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("condition not reached in 600 s of (paused) time: pending {}, deleted {}", queue.pending(), queue.deleted());
}

fn body(key: &str, kind: &str, payload: serde_json::Value) -> String {
    serde_json::json!({"schemaVersion": 1, "type": kind, "idempotencyKey": key, "payload": payload}).to_string()
}

#[tokio::test(start_paused = true)]
async fn three_copies_of_one_command_act_once_and_are_all_deleted() {
    let f = Fixture::on_tokio_time();
    f.registry.add_thing("t1", None, &[]);
    let cert = f.registry.add_certificate(CertificateStatus::Active);
    f.registry.attach_thing_principal("t1", &cert);
    let run = start(&f, settings());
    let msg = body(
        "same-key",
        "updateThingCertificates",
        serde_json::json!({"thingName": "t1", "certificateStatus": "INACTIVE"}),
    );
    for _ in 0..3 {
        run.queue.send(&msg).await.unwrap();
    }
    settle(&run.queue, |q| q.pending() == 0).await;
    run.stop.cancel();
    run.done.await.unwrap();

    assert_eq!(run.queue.deleted(), 3);
    assert_eq!(f.state.records().len(), 1);
    assert_eq!(f.registry.faults.count(IotOp::UpdateCertificate), 1);
    assert_eq!(f.events.published().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_malformed_message_is_dead_lettered_with_its_reason_and_the_worker_goes_on() {
    let f = Fixture::on_tokio_time();
    f.registry.add_thing("t1", None, &[]);
    let run = start(&f, settings());
    run.queue.send("{not json").await.unwrap();
    run.queue
        .send(&body(
            "bad-status",
            "updateThingCertificates",
            serde_json::json!({"thingName": "t1", "certificateStatus": "IN_ACTIVE"}),
        ))
        .await
        .unwrap();
    run.queue.send(&body("good", "getThing", serde_json::json!({"thingName": "t1"}))).await.unwrap();
    settle(&run.queue, |q| q.pending() == 0).await;
    run.stop.cancel();
    run.done.await.unwrap();

    let dead = run.queue.dead_letters();
    assert_eq!(dead.len(), 2);
    let reasons: Vec<_> = dead.iter().map(|(_, r)| r.clone().expect("reason attached")).collect();
    assert!(reasons.iter().any(|r| r.code == ErrorCode::InvalidMessage));
    assert!(reasons.iter().any(|r| r.path.as_deref() == Some("/payload/certificateStatus")));
    let events = f.events.published();
    assert_eq!(events.iter().filter(|e| e.event_type == "command.rejected").count(), 2);
    assert_eq!(events.iter().filter(|e| e.event_type == "thing.described").count(), 1);
    assert_eq!(f.record("good").status, CommandStatus::Succeeded);
}

#[tokio::test(start_paused = true)]
async fn a_throttled_command_stays_on_the_queue_and_succeeds_later() {
    let f = Fixture::on_tokio_time();
    f.registry.add_thing("t1", None, &[]);
    f.registry.faults.fail_next(IotOp::DescribeThing, ErrorKind::Throttled, 2);
    let run = start(&f, settings());
    run.queue.send(&body("k", "getThing", serde_json::json!({"thingName": "t1"}))).await.unwrap();
    settle(&run.queue, |q| q.pending() == 0).await;
    run.stop.cancel();
    run.done.await.unwrap();

    let record = f.record("k");
    assert_eq!(record.status, CommandStatus::Succeeded);
    assert_eq!(record.attempts, 3);
    assert_eq!(run.worker_stats.retried(), 2, "two retries");
    assert!(run.queue.dead_letters().is_empty());
}

#[tokio::test(start_paused = true)]
async fn shutdown_mid_command_exits_within_the_grace_period_and_loses_nothing() {
    let f = Fixture::on_tokio_time();
    f.registry.add_thing("t1", None, &[]);
    // The first DescribeThing takes far longer than the grace period.
    f.registry.faults.delay_next(IotOp::DescribeThing, Duration::from_secs(600), 1);
    let run = start(&f, settings());
    run.queue.send(&body("slow", "getThing", serde_json::json!({"thingName": "t1"}))).await.unwrap();
    run.queue.send(&body("quick", "getThing", serde_json::json!({"thingName": "t1"}))).await.unwrap();
    settle(&run.queue, |q| q.deleted() == 1).await;

    let signalled = tokio::time::Instant::now();
    run.stop.cancel();
    run.done.await.unwrap();
    let took = signalled.elapsed();
    assert!(took <= Duration::from_secs(5) + Duration::from_millis(200), "took {took:?}");
    assert_eq!(run.worker_stats.abandoned(), 1, "one command abandoned");
    assert_eq!(run.queue.pending(), 1, "the unfinished message was not deleted");

    // It comes back after its visibility timeout and a new worker finishes it.
    let settings = WorkerSettings { receivers: 1, ..settings() };
    let worker = Worker::new(f.app.clone(), run.queue.clone(), settings);
    let stop = CancellationToken::new();
    let done = tokio::spawn(worker.run(stop.clone()));
    settle(&run.queue, |q| q.pending() == 0).await;
    stop.cancel();
    done.await.unwrap();
    assert_eq!(f.record("slow").status, CommandStatus::Succeeded);
}

#[tokio::test(start_paused = true)]
async fn the_heartbeat_keeps_a_long_command_invisible() {
    let f = Fixture::on_tokio_time();
    f.registry.add_thing("t1", None, &[]);
    // Three visibility timeouts long: without a heartbeat the message would be redelivered.
    f.registry.faults.delay_next(IotOp::DescribeThing, VISIBILITY * 3, 1);
    let run = start(&f, settings());
    run.queue.send(&body("long", "getThing", serde_json::json!({"thingName": "t1"}))).await.unwrap();
    settle(&run.queue, |q| q.pending() == 0).await;
    run.stop.cancel();
    run.done.await.unwrap();
    assert_eq!(run.worker_stats.received(), 1, "received once: never redelivered");
    assert_eq!(f.record("long").attempts, 1);
}

#[tokio::test(start_paused = true)]
async fn failed_deletes_are_retried() {
    let f = Fixture::on_tokio_time();
    f.registry.add_thing("t1", None, &[]);
    let run = start(&f, settings());
    run.queue.faults.fail_next(QueueOp::DeleteBatch, ErrorKind::Transient, 2);
    run.queue.send(&body("k", "getThing", serde_json::json!({"thingName": "t1"}))).await.unwrap();
    settle(&run.queue, |q| q.pending() == 0).await;
    run.stop.cancel();
    run.done.await.unwrap();
    assert_eq!(run.queue.faults.count(QueueOp::DeleteBatch), 3);
    assert_eq!(run.worker_stats.received(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_attempt_that_loses_its_lease_stops_at_once() {
    let f = Fixture::on_tokio_time();
    f.registry.add_thing("t1", None, &[]);
    // A long IoT call; meanwhile another attempt takes the command over (its renewal is refused).
    f.registry.faults.delay_next(IotOp::DescribeThing, Duration::from_secs(600), 1);
    f.state.faults.fail_next(StoreOp::RenewLease, ErrorKind::ConditionFailed, 1);
    let run = start(&f, WorkerSettings { receivers: 1, ..settings() });
    run.queue.send(&body("taken", "getThing", serde_json::json!({"thingName": "t1"}))).await.unwrap();
    // The first heartbeat (a third of the visibility timeout) finds the lease lost.
    tokio::time::sleep(VISIBILITY / 3 + Duration::from_secs(1)).await;
    assert_eq!(run.worker_stats.retried(), 1, "the attempt stopped and left the message for later");
    assert_eq!(f.record("taken").status, CommandStatus::InProgress, "it recorded nothing");
    assert_eq!(run.queue.deleted(), 0);
    run.stop.cancel();
    run.done.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_command_failing_on_every_delivery_ends_failed_not_silent_in_the_dead_letter_queue() {
    let f = Fixture::on_tokio_time();
    f.registry.add_thing("t1", None, &[]);
    f.registry.faults.fail_next(IotOp::DescribeThing, ErrorKind::Transient, 100);
    let queue = Arc::new(MemoryQueue::new(VISIBILITY, 3));
    let worker = Worker::new(f.app.clone(), queue.clone(), WorkerSettings { receivers: 1, ..settings() });
    let stop = CancellationToken::new();
    let done = tokio::spawn(worker.run(stop.clone()));
    queue.send(&body("doomed", "getThing", serde_json::json!({"thingName": "t1"}))).await.unwrap();
    settle(&queue, |q| q.deleted() == 1).await;
    stop.cancel();
    done.await.unwrap();
    let record = f.record("doomed");
    assert_eq!(record.status, CommandStatus::Failed);
    assert_eq!(record.error.unwrap().code, ErrorCode::RetriesExhausted);
    assert!(queue.dead_letters().is_empty(), "nothing dead-lettered without a reason");
    assert_eq!(f.events.published()[0].event_type, "command.failed");
    assert_eq!(f.registry.faults.count(IotOp::DescribeThing), 3, "one call per delivery");
}
