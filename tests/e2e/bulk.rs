//! Bulk tasks through the queue: fan-out, exactly-once counting, rows files, bad rows of every
//! kind, a thousand rows, cancellation mid-way.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use cdf_provisioning::domain::IdempotencyKey;
use cdf_provisioning::domain::bulk::{RowOutcome, TaskId, TaskStatus};
use cdf_provisioning::ports::BulkStore;
use serde_json::{Value, json};

use crate::stack::{Stack, command, grouped_device_template};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_task_runs_through_the_queue_and_counts_every_row_once() {
    let s = Stack::deploy().await;
    s.examples().await;
    let state = s.state();
    // 24 devices with AWS-issued certificates; an invalid row; a row IoT refuses (no such group).
    let mut rows: Vec<Value> = (0..24).map(|i| json!({"ThingName": s.thing(&format!("bulk-{i}"))})).collect();
    rows.insert(5, json!({"ThingName": "not a thing name"}));
    let devices = json!({"provisioningTemplateId": "aws-issued", "parameters": rows});
    let grouped = json!({"provisioningTemplateId": "add_thing_to_group", "parameters": [
        {"ThingName": s.thing("in-group"), "ThingGroupName": "cdf-example-eu"},
        {"ThingName": s.thing("no-group"), "ThingGroupName": s.thing("missing-group")},
    ]});
    // A rows file in the bucket, read as a stream (NDJSON).
    let ndjson: String = (0..3)
        .map(|i| {
            json!({"ThingName": s.thing(&format!("file-{i}")), "ThingGroupName": "cdf-example-eu"}).to_string() + "\n"
        })
        .collect();
    let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    s.s3(&config)
        .put_object()
        .bucket(s.output("BucketName"))
        .key("rows/rows.ndjson")
        .body(ndjson.into_bytes().into())
        .send()
        .await
        .unwrap();
    let from_file = json!({"provisioningTemplateId": "add_thing_to_group", "rowsObject": "rows/rows.ndjson"});
    let (stop, worker) = s.start_worker().await;
    s.send(&command("bulk-devices", "bulkProvisionThings", devices.clone())).await;
    s.send(&command("bulk-groups", "bulkProvisionThings", grouped)).await;
    s.send(&command("bulk-file", "bulkProvisionThings", from_file)).await;
    let devices_task = TaskId::for_key(&IdempotencyKey::new("bulk-devices"));
    let groups_task = TaskId::for_key(&IdempotencyKey::new("bulk-groups"));
    let finished = |task: TaskId| {
        let state = state.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                if let Some(t) = state.get_task(&task).await.unwrap()
                    && t.status == TaskStatus::Completed
                    && t.event_published
                {
                    return t;
                }
                assert!(Instant::now() < deadline, "task {task} did not complete");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    };
    let devices_done = finished(devices_task.clone()).await;
    let groups_done = finished(groups_task.clone()).await;
    let file_done = finished(TaskId::for_key(&IdempotencyKey::new("bulk-file"))).await;
    assert_eq!((file_done.total_rows, file_done.success_count), (3, 3));
    assert_eq!((devices_done.total_rows, devices_done.success_count, devices_done.failure_count), (25, 24, 1));
    assert_eq!(devices_done.invalid_rows, 1);
    assert_eq!((groups_done.success_count, groups_done.failure_count), (1, 1));

    // Each good row: one thing, one ACTIVE certificate; the refused row left nothing behind.
    for i in 0..24 {
        let thing = s.thing(&format!("bulk-{i}"));
        let principals = s.iot.list_thing_principals().thing_name(&thing).send().await.unwrap().principals().to_vec();
        assert_eq!(principals.len(), 1, "{thing}");
        let id = principals[0].rsplit('/').next().unwrap();
        let cert = s.iot.describe_certificate().certificate_id(id).send().await.unwrap();
        assert_eq!(cert.certificate_description().unwrap().status().unwrap().as_str(), "ACTIVE");
    }
    assert!(s.iot.describe_thing().thing_name(s.thing("no-group")).send().await.is_err(), "compensated");
    let failed = state.rows(&groups_task, None, 10, Some(RowOutcome::Failed)).await.unwrap();
    assert_eq!(failed.rows.len(), 1);
    assert_eq!(failed.rows[0].error.as_ref().unwrap().code, cdf_provisioning::domain::ErrorCode::NotFound);
    let invalid = state.rows(&devices_task, None, 10, Some(RowOutcome::Failed)).await.unwrap();
    assert_eq!(invalid.rows[0].row, 5);
    assert_eq!(invalid.rows[0].error.as_ref().unwrap().path.as_deref(), Some("/parameters/5/ThingName"));

    // Submitted again: the same task, nothing new.
    s.send(&command("bulk-devices", "bulkProvisionThings", devices)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.cancel();
    worker.await.unwrap();
    let again = state.get_task(&devices_task).await.unwrap().unwrap();
    assert_eq!((again.success_count, again.failure_count), (24, 1));
    let events = s.events(9).await;
    let completed: Vec<&Value> = events.iter().filter(|e| e["type"] == "bulk.completed").collect();
    assert_eq!(completed.len(), 3, "one bulk.completed per task: {events:?}");
    assert!(events.iter().all(|e| e["type"] != "thing.provisioned"), "no event per row");
    assert_eq!(s.queue_depth(s.output("DeadLetterQueueUrl")).await, 0);
}
/// A 1,000-row task from a rows file, with bad rows of each kind: invalid parameters and names
/// IoT would refuse (both refused before any call, with the row and field at fault), and a
/// group that does not exist (refused by IoT mid-row, the row undone). Every good row ends
/// with exactly one thing and one ACTIVE certificate, no certificate is left over, the task is
/// announced once, and submitting it again changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_row_task_with_bad_rows_counts_each_row_once_and_makes_one_device_per_good_row() {
    const ROWS: usize = 1000;
    let s = Stack::deploy().await;
    s.examples().await;
    let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let s3 = s.s3(&config);
    let template = grouped_device_template();
    let bucket = s.output("BucketName");
    let put = |key: String, body: String| s3.put_object().bucket(bucket).key(key).body(body.into_bytes().into()).send();
    let fleet = format!("{}fleet{}", s.config.templates_prefix, s.config.templates_suffix);
    put(fleet, template.to_string()).await.unwrap();
    let missing_group = s.thing("no-such-group");
    let mut invalid = Vec::new();
    let mut refused_by_iot = Vec::new();
    let mut rows = String::new();
    for i in 0..ROWS {
        let thing = s.thing(&format!("m-{i}"));
        let row = if i % 100 == 7 {
            invalid.push(i);
            json!({"ThingName": format!("not a thing name {i}")})
        } else if i % 250 == 11 {
            invalid.push(i); // longer than IoT's 128 characters
            json!({"ThingName": format!("{thing}-{}", "x".repeat(128)), "Group": "cdf-example-eu"})
        } else if i % 200 == 13 {
            refused_by_iot.push(i);
            json!({"ThingName": thing, "Group": missing_group})
        } else {
            json!({"ThingName": thing, "Group": "cdf-example-eu"})
        };
        rows.push_str(&(row.to_string() + "\n"));
    }
    put("rows/fleet.ndjson".to_owned(), rows).await.unwrap();
    let submit = command(
        "fleet",
        "bulkProvisionThings",
        json!({"provisioningTemplateId": "fleet", "rowsObject": "rows/fleet.ndjson"}),
    );
    let task_id = TaskId::for_key(&IdempotencyKey::new("fleet"));
    let (stop, worker) = s.start_worker().await;
    s.send(&submit).await;
    let task = s.finished_task(&task_id, Duration::from_secs(900)).await;
    let failed_rows = invalid.len() + refused_by_iot.len();
    assert_eq!(task.status, TaskStatus::Completed);
    assert_eq!(task.total_rows as usize, ROWS);
    assert_eq!(task.invalid_rows as usize, invalid.len());
    assert_eq!((task.success_count as usize, task.failure_count as usize), (ROWS - failed_rows, failed_rows));

    // Per-row results: each failure with its row, code and path; each success with its device.
    let failed = s.all_rows(&task_id, RowOutcome::Failed).await;
    assert_eq!(failed.len(), failed_rows);
    for row in &failed {
        let i = row.row as usize;
        let error = row.error.as_ref().unwrap();
        if invalid.contains(&i) {
            assert_eq!(error.code, cdf_provisioning::domain::ErrorCode::ValidationFailed, "row {i}");
            assert_eq!(error.path.as_deref(), Some(format!("/parameters/{i}/ThingName").as_str()), "row {i}");
        } else {
            assert!(refused_by_iot.contains(&i), "row {i} failed: {error:?}");
            assert_eq!(error.code, cdf_provisioning::domain::ErrorCode::NotFound, "row {i}");
            assert!(error.message.contains(&missing_group), "row {i}: {}", error.message);
            let thing = s.thing(&format!("m-{i}"));
            assert!(s.iot.describe_thing().thing_name(&thing).send().await.is_err(), "row {i} was undone");
        }
    }
    let succeeded = s.all_rows(&task_id, RowOutcome::Succeeded).await;
    assert_eq!(succeeded.len(), ROWS - failed_rows);
    let mut certificates = HashSet::new();
    for row in &succeeded {
        let thing = s.thing(&format!("m-{}", row.row));
        assert_eq!(row.thing_name.as_deref(), Some(thing.as_str()));
        let certificate = row.certificate_id.clone().unwrap().to_string();
        let principals = s.iot.list_thing_principals().thing_name(&thing).send().await.unwrap().principals().to_vec();
        assert_eq!(principals, [row.certificate_arn.clone().unwrap().to_string()], "row {}", row.row);
        assert_eq!(s.certificate_status(&certificate).await.as_deref(), Some("ACTIVE"), "row {}", row.row);
        assert!(certificates.insert(certificate), "row {}: a certificate shared", row.row);
    }
    assert_eq!(
        s.orphan_certificates(&s.thing("m-"), &certificates).await,
        Vec::<String>::new(),
        "no orphan certificate"
    );

    // Submitted again: the same task, nothing new; announced once.
    s.send(&submit).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.cancel();
    worker.await.unwrap();
    let again = s.state().get_task(&task_id).await.unwrap().unwrap();
    assert_eq!(
        (again.success_count, again.failure_count, again.status),
        (task.success_count, task.failure_count, TaskStatus::Completed)
    );
    let events = s.events(2).await;
    let completed: Vec<&Value> = events.iter().filter(|e| e["type"] == "bulk.completed").collect();
    assert_eq!(completed.len(), 1, "one bulk.completed");
    assert_eq!(completed[0]["data"]["successCount"], json!(ROWS - failed_rows));
    assert_eq!(s.queue_depth(s.output("DeadLetterQueueUrl")).await, 0);
}

/// Cancelled mid-task: rows already done stay done, the others are skipped, the counts add up,
/// and no row is left half-made (a thing without its certificate, or the reverse).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_cancelled_mid_way_ends_with_consistent_counts_and_no_half_made_device() {
    const ROWS: u32 = 300;
    let s = Stack::deploy().await;
    s.examples().await;
    let rows: Vec<Value> = (0..ROWS).map(|i| json!({"ThingName": s.thing(&format!("c-{i}"))})).collect();
    let task_id = TaskId::for_key(&IdempotencyKey::new("cancelled"));
    let (stop, worker) = s.start_worker().await;
    s.send(&command(
        "cancelled",
        "bulkProvisionThings",
        json!({"provisioningTemplateId": "aws-issued", "parameters": rows}),
    ))
    .await;
    let state = s.state();
    let deadline = Instant::now() + Duration::from_secs(120);
    while state.get_task(&task_id).await.unwrap().map_or(0, |t| t.success_count) < 20 {
        assert!(Instant::now() < deadline, "the task never got going");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    s.send(&command("cancel-it", "cancelBulkTask", json!({"taskId": task_id.to_string()}))).await;
    let task = s.finished_task(&task_id, Duration::from_secs(300)).await;
    stop.cancel();
    worker.await.unwrap();
    assert_eq!(task.status, TaskStatus::Cancelled);
    assert!(task.skipped_count > 0, "cancelled too late to prove anything: {task:?}");
    assert_eq!(task.success_count + task.failure_count + task.skipped_count, ROWS, "{task:?}");
    assert_eq!(task.failure_count, 0);
    let succeeded: HashSet<u32> = s.all_rows(&task_id, RowOutcome::Succeeded).await.iter().map(|r| r.row).collect();
    let skipped = s.all_rows(&task_id, RowOutcome::Skipped).await;
    assert_eq!(skipped.len() as u32, task.skipped_count);
    let mut certificates = HashSet::new();
    for i in 0..ROWS {
        let thing = s.thing(&format!("c-{i}"));
        let exists = s.iot.describe_thing().thing_name(&thing).send().await.is_ok();
        assert_eq!(exists, succeeded.contains(&i), "row {i}: a thing exactly when the row succeeded");
        if exists {
            let principals =
                s.iot.list_thing_principals().thing_name(&thing).send().await.unwrap().principals().to_vec();
            assert_eq!(principals.len(), 1, "row {i}");
            let id = principals[0].rsplit('/').next().unwrap().to_owned();
            assert_eq!(s.certificate_status(&id).await.as_deref(), Some("ACTIVE"), "row {i}");
            certificates.insert(id);
        }
    }
    assert_eq!(
        s.orphan_certificates(&s.thing("c-"), &certificates).await,
        Vec::<String>::new(),
        "no orphan certificate"
    );
    let events = s.events(2).await;
    assert_eq!(events.iter().filter(|e| e["type"] == "bulk.completed").count(), 1, "announced once");
}
