//! Bulk provisioning against the in-memory fakes: acceptance, fan-out through the queue,
//! exactly-once counting, completion announced once, cancellation, crashes mid-chunk.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::support::{Fixture, envelope, examples, result_of};
use cdf_provisioning::adapters::memory::{BulkOp, EventsOp, IotOp, StoreOp};
use cdf_provisioning::app::Disposition;
use cdf_provisioning::domain::bulk::{RowOutcome, TaskId, TaskStatus};
use cdf_provisioning::domain::{CertificateStatus, CommandEnvelope, CommandResult, ErrorCode, IdempotencyKey};
use cdf_provisioning::ports::{CommandQueue, ErrorKind, QueueMessage};
use serde_json::{Value, json};

fn fixture() -> Fixture {
    let f = Fixture::new().with_examples(&["aws-issued", "add_thing_to_group"]);
    f.registry.add_group(examples::GROUPS[0], &[]);
    f
}

/// `good` valid rows (things `dev-0`...), with invalid rows at the positions in `bad`.
fn rows(good: usize, bad: &[usize]) -> Vec<Value> {
    let mut out: Vec<Value> = (0..good).map(|i| json!({"ThingName": format!("dev-{i}")})).collect();
    for &at in bad {
        out.insert(at, json!({"ThingName": "has spaces"}));
    }
    out
}

fn bulk(key: &str, template: &str, rows: Vec<Value>) -> CommandEnvelope {
    envelope(json!({
        "schemaVersion": 1, "type": "bulkProvisionThings", "idempotencyKey": key,
        "payload": {"provisioningTemplateId": template, "parameters": rows}
    }))
}

async fn queued(f: &Fixture) -> Vec<QueueMessage> {
    let mut all = Vec::new();
    loop {
        let batch = f.queue.receive(10, Duration::ZERO).await.unwrap();
        if batch.is_empty() {
            return all;
        }
        all.extend(batch);
    }
}

/// Runs every chunk message waiting in the queue, each as the worker would.
async fn run_chunks(f: &Fixture) -> usize {
    let messages = queued(f).await;
    for m in &messages {
        let envelope = CommandEnvelope::decode(&m.body, &m.message_id).unwrap();
        assert_eq!(f.app.handle(&envelope, &format!("tok-{}", m.message_id)).await, Disposition::Done);
    }
    messages.len()
}

fn task_of(key: &str) -> TaskId {
    TaskId::for_key(&IdempotencyKey::new(key))
}

#[tokio::test]
async fn a_task_provisions_its_valid_rows_counts_every_row_once_and_announces_completion_once() {
    let f = fixture();
    let command = bulk("import-1", "aws-issued", rows(250, &[3, 100]));
    assert_eq!(f.app.handle(&command, "t").await, Disposition::Done);
    let accepted = match result_of(&f.record("import-1")) {
        CommandResult::BulkProvisionThings(view) => view,
        other => panic!("{other:?}"),
    };
    assert_eq!(accepted.task_id, task_of("import-1"));
    assert_eq!((accepted.total_rows, accepted.invalid_rows, accepted.failure_count), (252, 2, 2));
    assert_eq!(accepted.status, TaskStatus::InProgress);
    assert_eq!(f.registry.faults.calls().len(), 0, "nothing is made while a task is accepted");

    assert_eq!(run_chunks(&f).await, 3, "250 valid rows are three chunks of 100");
    let task = f.app.bulk_task(&task_of("import-1")).await.unwrap();
    assert_eq!(task.status, TaskStatus::Completed);
    assert_eq!((task.success_count, task.failure_count, task.percentage_progress()), (250, 2, 100));
    let certificates = f.registry.certificates();
    assert_eq!(certificates.len(), 250, "one certificate per good row");
    assert!(certificates.iter().all(|c| c.certificate_status == CertificateStatus::Active));
    assert!(f.registry.has_thing("dev-249"));

    let failed = f.app.bulk_rows(&task.task_id, None, 10, Some(RowOutcome::Failed)).await.unwrap();
    assert_eq!(failed.rows.iter().map(|r| r.row).collect::<Vec<_>>(), [3, 100]);
    let error = failed.rows[0].error.as_ref().unwrap();
    assert_eq!(error.code, ErrorCode::ValidationFailed);
    assert_eq!(error.path.as_deref(), Some("/parameters/3/ThingName"), "{error:?}");
    let first = f.app.bulk_rows(&task.task_id, None, 2, None).await.unwrap();
    assert_eq!(first.rows[0].outcome, RowOutcome::Succeeded);
    assert!(first.rows[0].private_key_secret.is_some(), "each generated key is delivered, one object per device");
    assert_eq!(first.next, Some(1));

    let events = f.events.published();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types.iter().filter(|t| **t == "bulk.completed").count(), 1, "{types:?}");
    assert_eq!(types.iter().filter(|t| **t == "bulk.accepted").count(), 1, "{types:?}");
    assert_eq!(events.len(), 2, "no event per chunk or row: {types:?}");
    let completed = events.iter().find(|e| e.event_type == "bulk.completed").unwrap();
    assert_eq!(completed.data["successCount"], 250);
    assert_eq!(completed.data["idempotencyKey"], "import-1");

    // The same command again, and every chunk delivered again: nothing changes.
    assert_eq!(f.app.handle(&command, "t2").await, Disposition::Done);
    assert_eq!(run_chunks(&f).await, 0, "an accepted task is not fanned out again");
    let again = f.app.bulk_task(&task.task_id).await.unwrap();
    assert_eq!((again.success_count, again.failure_count), (250, 2));
    assert_eq!(f.registry.certificates().len(), 250);
    assert_eq!(f.events.published().len(), 2);
}

#[tokio::test]
async fn a_chunk_delivered_twice_counts_its_rows_once() {
    let f = fixture();
    f.app.handle(&bulk("k", "add_thing_to_group", group_rows(5)), "t").await;
    let messages = queued(&f).await;
    assert_eq!(messages.len(), 1);
    let chunk = CommandEnvelope::decode(&messages[0].body, "m").unwrap();
    assert_eq!(f.app.handle(&chunk, "a").await, Disposition::Done);
    // A second delivery after the record was lost would run the rows again: they are counted once.
    let task = f.app.bulk_task(&task_of("k")).await.unwrap();
    let rerun = cdf_provisioning::domain::command::BulkChunk {
        task_id: task.task_id.clone(),
        chunk: 0,
        rows: match &chunk.command {
            cdf_provisioning::domain::Command::ProvisionBulkChunk(c) => c.rows.clone(),
            other => panic!("{other:?}"),
        },
    };
    let report = f.app.run_chunk(&rerun, false).await.unwrap();
    assert_eq!((report.succeeded, report.failed), (0, 0), "nothing counted twice");
    let task = f.app.bulk_task(&task.task_id).await.unwrap();
    assert_eq!((task.success_count, task.status), (5, TaskStatus::Completed));
    assert_eq!(f.events.published().iter().filter(|e| e.event_type == "bulk.completed").count(), 1);
}

fn group_rows(n: usize) -> Vec<Value> {
    (0..n).map(|i| json!({"ThingName": format!("g-{i}"), "ThingGroupName": "cdf-example-eu"})).collect()
}

#[tokio::test]
async fn cancelling_skips_pending_rows_and_ends_cancelled() {
    let f = fixture();
    f.app.handle(&bulk("c", "add_thing_to_group", group_rows(250)), "t").await;
    let messages = queued(&f).await;
    assert_eq!(messages.len(), 3);
    let first = CommandEnvelope::decode(&messages[0].body, "m0").unwrap();
    assert_eq!(f.app.handle(&first, "a").await, Disposition::Done);

    let cancel = envelope(json!({
        "schemaVersion": 1, "type": "cancelBulkTask", "idempotencyKey": "cancel-c",
        "payload": {"taskId": task_of("c").to_string()}
    }));
    assert_eq!(f.app.handle(&cancel, "x").await, Disposition::Done);
    assert_eq!(f.app.bulk_task(&task_of("c")).await.unwrap().status, TaskStatus::Cancelling);
    for (i, m) in messages[1..].iter().enumerate() {
        let chunk = CommandEnvelope::decode(&m.body, &format!("m{i}")).unwrap();
        assert_eq!(f.app.handle(&chunk, &format!("b{i}")).await, Disposition::Done);
    }
    let task = f.app.bulk_task(&task_of("c")).await.unwrap();
    assert_eq!(task.status, TaskStatus::Cancelled);
    assert_eq!((task.success_count, task.skipped_count, task.counted()), (100, 150, 250));
    assert!(!f.registry.has_thing("g-100"), "a skipped row made nothing");
    assert!(f.registry.has_thing("g-99"), "a finished row stays");
    let events = f.events.published();
    assert_eq!(events.iter().filter(|e| e.event_type == "bulk.completed").count(), 1);
    assert_eq!(events.iter().find(|e| e.event_type == "bulk.completed").unwrap().data["status"], "Cancelled");
}

#[tokio::test]
async fn a_strict_task_with_an_invalid_row_is_refused_whole() {
    let f = fixture();
    let command = envelope(json!({
        "schemaVersion": 1, "type": "bulkProvisionThings", "idempotencyKey": "s",
        "payload": {"provisioningTemplateId": "add_thing_to_group", "strict": true,
                    "parameters": [{"ThingName": "ok", "ThingGroupName": "g"}, {"ThingName": "not ok"}]}
    }));
    assert_eq!(f.app.handle(&command, "t").await, Disposition::Done);
    let error = f.record("s").error.unwrap();
    assert_eq!(error.code, ErrorCode::ValidationFailed);
    assert!(error.message.contains("row 1"), "{}", error.message);
    assert_eq!(error.path.as_deref(), Some("/parameters/1/ThingName"));
    assert!(f.app.bulk_task(&task_of("s")).await.is_err(), "no task");
    assert!(queued(&f).await.is_empty());
}

/// A template error would fail every row alike: the task is refused whole, with every error.
#[tokio::test]
async fn a_task_whose_template_has_an_error_is_refused_whole() {
    let f = fixture();
    // A certificate with no source at all: wrong whatever the parameters.
    f.templates.put(
        "no-source",
        r#"{"Parameters": {"ThingName": {"Type": "String"}}, "Resources": {
            "thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Ref": "ThingName"}}},
            "certificate": {"Type": "AWS::IoT::Certificate", "Properties": {"Status": "ACTIVE"}}}}"#,
    );
    f.app.handle(&bulk("t", "no-source", rows(5, &[])), "t").await;
    let error = f.record("t").error.unwrap();
    assert_eq!(error.code, ErrorCode::ValidationFailed);
    assert_eq!(error.path.as_deref(), Some("template:/Resources/certificate/Properties"), "{}", error.message);
    assert!(f.app.bulk_task(&task_of("t")).await.is_err(), "no task");
    assert!(queued(&f).await.is_empty());
}

#[tokio::test]
async fn a_worker_dying_mid_chunk_leaves_no_duplicate_and_no_lost_row() {
    let f = fixture();
    f.app.handle(&bulk("d", "aws-issued", rows(20, &[])), "t").await;
    let messages = queued(&f).await;
    let chunk = CommandEnvelope::decode(&messages[0].body, "m").unwrap();

    // The first attempt dies right after the 13th checkpoint (a row's one checkpoint, before
    // its certificate request): twelve rows done, one half-made.
    let gate = Arc::new(AtomicBool::new(false));
    f.state.faults.shut_after(Some(StoreOp::Checkpoint), 13, gate.clone());
    f.die_at(&chunk, "first", gate, "checkpoint write 13").await;
    let half = f.app.bulk_task(&task_of("d")).await.unwrap();
    assert_eq!(half.success_count, 12, "{half:?}");

    // The redelivery, after the leases ran out, finishes the task.
    assert_eq!(f.app.handle(&chunk, "second").await, Disposition::Done);
    let task = f.app.bulk_task(&task_of("d")).await.unwrap();
    assert_eq!((task.success_count, task.failure_count, task.status), (20, 0, TaskStatus::Completed));
    let certificates = f.registry.certificates();
    assert_eq!(certificates.len(), 20, "no second certificate for the half-made row");
    assert!(certificates.iter().all(|c| c.certificate_status == CertificateStatus::Active));
    assert_eq!(f.registry.faults.count(IotOp::CreateCertificateFromCsr), 20);
}

/// A row run to its end costs one write for its outcome, its result and its count together.
#[tokio::test]
async fn a_rows_outcome_result_and_count_are_one_write() {
    let f = fixture();
    f.app.handle(&bulk("w", "aws-issued", rows(5, &[2])), "t").await;
    run_chunks(&f).await;
    let task = f.app.bulk_task(&task_of("w")).await.unwrap();
    assert_eq!((task.success_count, task.failure_count, task.status), (5, 1, TaskStatus::Completed));
    assert_eq!(f.bulk.faults.count(BulkOp::FinishRow), 5, "one write per row run");
    assert_eq!(f.bulk.faults.count(BulkOp::RecordRow), 1, "only the invalid row, counted at acceptance");
    assert_eq!(f.state.faults.count(StoreOp::Finish), 2, "the task's command and its chunk's, no row's");
    let rows = f.app.bulk_rows(&task.task_id, None, 10, Some(RowOutcome::Succeeded)).await.unwrap();
    for row in &rows.rows {
        let record = f.record(cdf_provisioning::domain::bulk::row_key(&task.task_id, row.row).as_str());
        assert_eq!(record.status, cdf_provisioning::domain::CommandStatus::Succeeded, "row {}", row.row);
    }
}

/// When the one write cannot be made (the lease changed hands, a transaction conflict, a
/// lost answer), the row is still recorded and counted exactly once.
#[tokio::test]
async fn a_row_whose_one_write_fails_is_still_counted_once() {
    let f = fixture();
    f.app.handle(&bulk("x", "aws-issued", rows(6, &[])), "t").await;
    f.bulk.faults.fail_nth(BulkOp::FinishRow, ErrorKind::ConditionFailed, 1);
    f.bulk.faults.fail_nth(BulkOp::FinishRow, ErrorKind::Transient, 3);
    run_chunks(&f).await;
    let task = f.app.bulk_task(&task_of("x")).await.unwrap();
    assert_eq!((task.success_count, task.failure_count, task.status), (6, 0, TaskStatus::Completed));
    assert_eq!(f.registry.certificates().len(), 6, "one device per row");
    assert_eq!(f.bulk.faults.count(BulkOp::RecordRow), 2, "the two rows counted apart");

    // The write commits and the worker dies before it hears so: the redelivery counts nothing twice.
    let f = fixture();
    f.app.handle(&bulk("y", "aws-issued", rows(6, &[])), "t").await;
    let chunk = CommandEnvelope::decode(&queued(&f).await[0].body, "m").unwrap();
    let gate = Arc::new(AtomicBool::new(false));
    f.bulk.faults.shut_after(Some(BulkOp::FinishRow), 3, gate.clone());
    f.die_at(&chunk, "first", gate, "the third row's write").await;
    assert_eq!(f.app.bulk_task(&task_of("y")).await.unwrap().success_count, 3);
    assert_eq!(f.app.handle(&chunk, "second").await, Disposition::Done);
    let task = f.app.bulk_task(&task_of("y")).await.unwrap();
    assert_eq!((task.success_count, task.failure_count, task.status), (6, 0, TaskStatus::Completed));
    assert_eq!(f.registry.certificates().len(), 6);
}

/// A row's plan, thing, policy and attachment are noted only with its next write: a worker
/// dying right after any IoT call of a chunk, before it noted what the call made, still ends
/// with every row counted once and exactly one device per row.
#[tokio::test]
async fn a_worker_dying_right_after_any_iot_call_leaves_exactly_one_device_per_row() {
    let clean = fixture();
    clean.app.handle(&bulk("c", "aws-issued", rows(3, &[])), "t").await;
    let chunk = CommandEnvelope::decode(&queued(&clean).await[0].body, "m").unwrap();
    clean.app.handle(&chunk, "clean").await;
    let calls = clean.registry.faults.calls().len();
    for k in 1..=calls {
        let f = fixture();
        f.app.handle(&bulk("c", "aws-issued", rows(3, &[])), "t").await;
        let chunk = CommandEnvelope::decode(&queued(&f).await[0].body, "m").unwrap();
        let gate = Arc::new(AtomicBool::new(false));
        f.registry.faults.shut_after(None, k, gate.clone());
        f.die_at(&chunk, "first", gate, &format!("IoT call {k}")).await;
        assert_eq!(f.app.handle(&chunk, "second").await, Disposition::Done, "after {k}");
        let task = f.app.bulk_task(&task_of("c")).await.unwrap();
        assert_eq!((task.success_count, task.failure_count, task.status), (3, 0, TaskStatus::Completed), "after {k}");
        let certificates = f.registry.certificates();
        assert_eq!(certificates.len(), 3, "after {k}: one certificate per row");
        assert!(certificates.iter().all(|c| c.certificate_status == CertificateStatus::Active), "after {k}");
        for row in 0..3 {
            let thing = f.registry.principals_of(&format!("dev-{row}"));
            assert_eq!(thing.len(), 1, "after {k}: row {row} has its certificate attached");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_throttled_row_is_retried_in_place_never_failed() {
    let f = fixture();
    f.app.handle(&bulk("th", "add_thing_to_group", group_rows(10)), "t").await;
    f.registry.faults.fail_next(IotOp::CreateThing, ErrorKind::Throttled, 4);
    let messages = queued(&f).await;
    let chunk = CommandEnvelope::decode(&messages[0].body, "m").unwrap();
    assert_eq!(f.app.handle(&chunk, "a").await, Disposition::Done, "one delivery is enough");
    let task = f.app.bulk_task(&task_of("th")).await.unwrap();
    assert_eq!((task.success_count, task.failure_count, task.status), (10, 0, TaskStatus::Completed));
    assert_eq!(f.registry.faults.count(IotOp::CreateThing), 14, "4 throttled calls, then 10 that went through");
}

#[tokio::test]
async fn a_rows_file_is_read_as_a_stream_with_unreadable_lines_reported_by_row() {
    let f = fixture();
    let mut csv = String::from("ThingName,ThingGroupName\n");
    for i in 0..230 {
        csv.push_str(&format!("f-{i},cdf-example-eu\n"));
    }
    csv.push_str("f-broken,cdf-example-eu,surplus\n\n");
    f.rows.put("rows/berlin.csv", &csv);
    let command = envelope(json!({
        "schemaVersion": 1, "type": "bulkProvisionThings", "idempotencyKey": "file",
        "payload": {"provisioningTemplateId": "add_thing_to_group", "rowsObject": "rows/berlin.csv"}
    }));
    assert_eq!(f.app.handle(&command, "t").await, Disposition::Done);
    let accepted = f.app.bulk_task(&task_of("file")).await.unwrap();
    assert!(accepted.accepted);
    assert_eq!((accepted.total_rows, accepted.invalid_rows, accepted.chunks), (231, 1, 3));
    assert_eq!(run_chunks(&f).await, 3);
    let task = f.app.bulk_task(&task_of("file")).await.unwrap();
    assert_eq!((task.success_count, task.failure_count, task.status), (230, 1, TaskStatus::Completed));
    let failed = f.app.bulk_rows(&task.task_id, None, 10, Some(RowOutcome::Failed)).await.unwrap();
    assert_eq!(failed.rows[0].row, 230);
    assert_eq!(failed.rows[0].error.as_ref().unwrap().path.as_deref(), Some("/rows/230"));

    // Neither rows nor a file, or both: refused with the field at fault.
    let both = envelope(json!({
        "schemaVersion": 1, "type": "bulkProvisionThings", "idempotencyKey": "both",
        "payload": {"provisioningTemplateId": "add_thing_to_group", "rowsObject": "x.csv", "parameters": [{"ThingName": "a"}]}
    }));
    f.app.handle(&both, "t").await;
    assert_eq!(f.record("both").error.unwrap().code, ErrorCode::ValidationFailed);
    let missing = envelope(json!({
        "schemaVersion": 1, "type": "bulkProvisionThings", "idempotencyKey": "missing",
        "payload": {"provisioningTemplateId": "add_thing_to_group", "rowsObject": "rows/nope.ndjson"}
    }));
    f.app.handle(&missing, "t").await;
    let error = f.record("missing").error.unwrap();
    assert_eq!((error.code, error.path.as_deref()), (ErrorCode::NotFound, Some("/payload/rowsObject")));
}

#[tokio::test(start_paused = true)]
async fn on_a_chunks_last_delivery_rows_that_cannot_pass_are_failed_so_the_task_completes() {
    let f = fixture();
    f.app.handle(&bulk("last", "add_thing_to_group", group_rows(3)), "t").await;
    let messages = queued(&f).await;
    let chunk = CommandEnvelope::decode(&messages[0].body, "m").unwrap();
    // An outage that outlasts every retry of every row.
    f.registry.faults.fail_next(IotOp::CreateThing, ErrorKind::Transient, 10_000);
    assert!(matches!(f.app.handle(&chunk, "a").await, Disposition::Retry { .. }), "not the last delivery: later");
    assert_eq!(f.app.handle_delivery(&chunk, "b", true).await, Disposition::Done);
    let task = f.app.bulk_task(&task_of("last")).await.unwrap();
    assert_eq!((task.status, task.failure_count), (TaskStatus::Completed, 3), "{task:?}");
    let failed = f.app.bulk_rows(&task.task_id, None, 10, Some(RowOutcome::Failed)).await.unwrap();
    assert_eq!(failed.rows[0].error.as_ref().unwrap().code, ErrorCode::RetriesExhausted);
    assert_eq!(f.events.published().iter().filter(|e| e.event_type == "bulk.completed").count(), 1);
}

/// A task of `n` rows in groups, each row announced with its own `thing.provisioned`.
fn announced_rows(key: &str, n: usize) -> CommandEnvelope {
    envelope(json!({
        "schemaVersion": 1, "type": "bulkProvisionThings", "idempotencyKey": key,
        "payload": {"provisioningTemplateId": "add_thing_to_group", "parameters": group_rows(n), "rowEvents": true}
    }))
}

#[tokio::test]
async fn row_events_are_published_only_when_the_task_asks() {
    let f = fixture();
    f.app.handle(&announced_rows("ev", 4), "t").await;
    run_chunks(&f).await;
    let types: Vec<String> = f.events.published().iter().map(|e| e.event_type.clone()).collect();
    assert_eq!(types.iter().filter(|t| *t == "thing.provisioned").count(), 4, "{types:?}");
    assert_eq!(types.last().map(String::as_str), Some("bulk.completed"), "{types:?}");
    assert_eq!(types.iter().filter(|t| *t == "bulk.completed").count(), 1, "{types:?}");
}

/// A row announced on its own is counted only once its event went out: the task's completion
/// is never announced before one of its rows.
#[tokio::test(start_paused = true)]
async fn a_row_with_its_own_event_is_counted_only_once_the_event_went_out() {
    let f = fixture();
    f.app.handle(&announced_rows("ev1", 1), "t").await;
    let chunk = CommandEnvelope::decode(&queued(&f).await[0].body, "m").unwrap();
    f.events.faults.fail_next(EventsOp::Publish, ErrorKind::Transient, 1_000);
    assert!(matches!(f.app.handle(&chunk, "first").await, Disposition::Retry { .. }));
    let task = f.app.bulk_task(&task_of("ev1")).await.unwrap();
    assert_eq!((task.success_count, task.status), (0, TaskStatus::InProgress), "provisioned, not yet counted");
    assert!(f.registry.has_thing("g-0"));
    assert!(!f.events.published().iter().any(|e| e.event_type == "bulk.completed"));
}

/// A row whose device was made but whose count was lost, in a task cancelled before the chunk
/// came back: the redelivery counts the row's real outcome, not `Skipped`.
#[tokio::test]
async fn a_started_row_of_a_cancelled_task_is_counted_as_it_ended_not_skipped() {
    let f = fixture();
    f.app.handle(&bulk("z", "aws-issued", rows(5, &[])), "t").await;
    let chunk = CommandEnvelope::decode(&queued(&f).await[0].body, "m").unwrap();
    // Row 0 is provisioned and its outcome recorded, but counting it fails: the chunk comes back.
    f.bulk.faults.fail_next(BulkOp::FinishRow, ErrorKind::ConditionFailed, 1);
    f.bulk.faults.fail_next(BulkOp::RecordRow, ErrorKind::Transient, 1);
    assert!(matches!(f.app.handle(&chunk, "first").await, Disposition::Retry { .. }));
    assert!(f.registry.has_thing("dev-0"));
    f.app.cancel_bulk(&task_of("z")).await.unwrap();

    assert_eq!(f.app.handle(&chunk, "second").await, Disposition::Done);
    let task = f.app.bulk_task(&task_of("z")).await.unwrap();
    assert_eq!((task.success_count, task.skipped_count, task.status), (1, 4, TaskStatus::Cancelled));
    let done = f.app.bulk_rows(&task.task_id, None, 1, None).await.unwrap();
    assert_eq!(done.rows[0].outcome, RowOutcome::Succeeded, "{:?}", done.rows[0]);
    assert_eq!(f.registry.certificates().len(), 1, "only the started row has a device");
}

#[tokio::test]
async fn a_rows_object_outside_the_rows_prefix_is_refused_before_anything_is_read() {
    let f = fixture();
    f.rows.put("ca-keys/ca-1.pem", "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n");
    f.rows.put("rows/../ca-keys/ca-1.pem", "{\"ThingName\":\"x\"}\n");
    f.rows.put("/rows/a.ndjson", "{\"ThingName\":\"x\"}\n");
    for (key, object) in [
        ("outside", "ca-keys/ca-1.pem"),
        ("dotdot", "rows/../ca-keys/ca-1.pem"),
        ("absolute", "/rows/a.ndjson"),
        ("bare", "rows/"),
    ] {
        let command = envelope(json!({
            "schemaVersion": 1, "type": "bulkProvisionThings", "idempotencyKey": key,
            "payload": {"provisioningTemplateId": "add_thing_to_group", "rowsObject": object}
        }));
        f.app.handle(&command, "t").await;
        let error = f.record(key).error.unwrap();
        assert_eq!(
            (error.code, error.path.as_deref()),
            (ErrorCode::ValidationFailed, Some("/payload/rowsObject")),
            "{object}"
        );
    }
    assert_eq!(f.rows.reads(), 0, "nothing was read");
    assert!(f.app.bulk_task(&task_of("outside")).await.is_err(), "no task was stored");
}

#[tokio::test]
async fn an_unreadable_rows_line_is_reported_without_its_content() {
    let f = fixture();
    f.rows.put(
        "rows/mixed.ndjson",
        "{\"ThingName\":\"m-0\",\"ThingGroupName\":\"cdf-example-eu\"}\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n\"SECRET-4711\"\n{\"ThingName\": 4711}\n",
    );
    f.rows.put("rows/mixed.csv", "ThingName,ThingGroupName\n\"SECRET-4711,cdf-example-eu\nc-0,cdf-example-eu\n");
    for (key, object, unreadable) in [("ndjson", "rows/mixed.ndjson", 3), ("csv", "rows/mixed.csv", 1)] {
        let command = envelope(json!({
            "schemaVersion": 1, "type": "bulkProvisionThings", "idempotencyKey": key,
            "payload": {"provisioningTemplateId": "add_thing_to_group", "rowsObject": object}
        }));
        assert_eq!(f.app.handle(&command, "t").await, Disposition::Done);
        let task = f.app.bulk_task(&task_of(key)).await.unwrap();
        assert_eq!(task.invalid_rows, unreadable, "{object}");
        let failed = f.app.bulk_rows(&task.task_id, None, 10, Some(RowOutcome::Failed)).await.unwrap();
        assert_eq!(failed.rows.len(), unreadable as usize);
        for row in &failed.rows {
            let message = &row.error.as_ref().unwrap().message;
            for content in ["MIIE", "SECRET", "4711", "line", "column", "expected", "invalid"] {
                assert!(!message.contains(content), "{object}: {message:?} repeats {content:?}");
            }
            assert!(
                key == "csv" || message == &format!("row {}: not a JSON object of string parameters", row.row),
                "{message:?}"
            );
        }
    }
}
