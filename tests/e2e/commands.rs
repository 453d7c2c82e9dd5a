//! The queued commands through SQS on an in-process worker: `getThing`, `deleteThing`,
//! `updateThingCertificates`, duplicates, malformed messages, events to SNS.

use aws_config::BehaviorVersion;
use cdf_provisioning::adapters::aws::{
    self, REJECTION_CODE_ATTRIBUTE, REJECTION_PATH_ATTRIBUTE, REJECTION_REASON_ATTRIBUTE,
};
use cdf_provisioning::app::App;
use cdf_provisioning::config::{Config, EventsDestination};
use cdf_provisioning::domain::record::CommandStatus;
use cdf_provisioning::wiring;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

use crate::stack::{Stack, command};
use crate::support::results;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_thing_describes_everything_through_sqs() {
    let s = Stack::deploy().await;
    let thing = s.thing("sensor");
    s.iot.create_thing_type().thing_type_name(s.thing("type")).send().await.unwrap();
    let attributes = aws_sdk_iot::types::AttributePayload::builder().attributes("site", "berlin").build();
    s.iot
        .create_thing()
        .thing_name(&thing)
        .thing_type_name(s.thing("type"))
        .attribute_payload(attributes)
        .send()
        .await
        .unwrap();
    let group = s.thing("fleet");
    let group_props = aws_sdk_iot::types::ThingGroupProperties::builder()
        .attribute_payload(aws_sdk_iot::types::AttributePayload::builder().attributes("region", "eu").build())
        .build();
    s.iot.create_thing_group().thing_group_name(&group).thing_group_properties(group_props).send().await.unwrap();
    s.iot.add_thing_to_thing_group().thing_name(&thing).thing_group_name(&group).send().await.unwrap();
    let (active_id, active_arn) = s.thing_with_certificate(&thing).await;
    let (revoked_id, _) = s.thing_with_certificate(&thing).await;
    s.iot
        .update_certificate()
        .certificate_id(&revoked_id)
        .new_status(aws_sdk_iot::types::CertificateStatus::Revoked)
        .send()
        .await
        .unwrap();
    s.policy(&s.thing("policy"), &active_arn).await;

    let (stop, worker) = s.start_worker().await;
    s.send(&command("get-1", "getThing", json!({"thingName": thing}))).await;
    let record = s.wait_for_outcome("get-1").await;
    stop.cancel();
    worker.await.unwrap();

    assert_eq!(record.status, CommandStatus::Succeeded, "{record:?}");
    let result = results::described(&record);
    assert_eq!(result.thing_name, thing.as_str());
    assert_eq!(result.thing_type, Some(s.thing("type")));
    assert_eq!(result.attributes, [("site".to_owned(), "berlin".to_owned())].into());
    let mut statuses: Vec<(String, String)> = result
        .certificates
        .iter()
        .map(|c| (c.certificate_id.to_string(), c.certificate_status.as_str().to_owned()))
        .collect();
    statuses.sort();
    let mut expected = vec![(active_id, "ACTIVE".to_owned()), (revoked_id, "REVOKED".to_owned())];
    expected.sort();
    assert_eq!(statuses, expected);
    assert_eq!(result.policies[0].policy_name, s.thing("policy"));
    assert_eq!(result.groups[0].group_name, group);
    assert_eq!(result.groups[0].attributes, [("region".to_owned(), "eu".to_owned())].into());

    let events = s.events(1).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "thing.described");
    assert_eq!(events[0]["specversion"], "1.0");
    assert_eq!(events[0]["subject"], thing.as_str());
    assert_eq!(events[0]["data"]["idempotencyKey"], "get-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_thing_removes_what_only_it_used() {
    let s = Stack::deploy().await;
    let (doomed, survivor) = (s.thing("doomed"), s.thing("survivor"));
    let (own_id, own_arn) = s.thing_with_certificate(&doomed).await;
    let (shared_id, shared_arn) = s.thing_with_certificate(&doomed).await;
    s.iot.create_thing().thing_name(&survivor).send().await.unwrap();
    s.iot.attach_thing_principal().thing_name(&survivor).principal(&shared_arn).send().await.unwrap();
    s.policy(&s.thing("own-policy"), &own_arn).await;
    s.policy(&s.thing("shared-policy"), &own_arn).await;
    s.policy(&s.thing("shared-policy"), &shared_arn).await;

    let (stop, worker) = s.start_worker().await;
    s.send(&command("del-1", "deleteThing", json!({"thingName": doomed}))).await;
    let record = s.wait_for_outcome("del-1").await;
    // A second, different command for the same thing: it is gone, so "not found".
    s.send(&command("del-2", "deleteThing", json!({"thingName": doomed}))).await;
    let second = s.wait_for_outcome("del-2").await;
    stop.cancel();
    worker.await.unwrap();

    assert_eq!(record.status, CommandStatus::Succeeded, "{record:?}");
    let err = s.iot.describe_thing().thing_name(&doomed).send().await.unwrap_err();
    assert!(err.into_service_error().is_resource_not_found_exception());
    assert_eq!(s.certificate_status(&own_id).await, None, "own certificate deleted");
    assert_eq!(s.certificate_status(&shared_id).await.as_deref(), Some("ACTIVE"), "shared certificate kept");
    assert!(s.iot.get_policy().policy_name(s.thing("own-policy")).send().await.is_err(), "own policy deleted");
    assert!(s.iot.get_policy().policy_name(s.thing("shared-policy")).send().await.is_ok(), "shared policy kept");
    let principals = s.iot.list_thing_principals().thing_name(&survivor).send().await.unwrap();
    assert_eq!(principals.principals(), [shared_arn]);

    assert_eq!(second.status, CommandStatus::Failed);
    assert_eq!(second.error.unwrap().code, cdf_provisioning::domain::ErrorCode::ThingNotFound);
    let types: Vec<_> = s.events(2).await.iter().map(|e| e["type"].as_str().unwrap().to_owned()).collect();
    assert_eq!(types, ["thing.deleted", "command.failed"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_certificates_three_times_acts_once() {
    let s = Stack::deploy().await;
    let thing = s.thing("t");
    let (first, _) = s.thing_with_certificate(&thing).await;
    let (second, _) = s.thing_with_certificate(&thing).await;
    let message =
        command("suspend-1", "updateThingCertificates", json!({"thingName": thing, "certificateStatus": "INACTIVE"}));
    for _ in 0..3 {
        s.send(&message).await;
    }
    let (stop, worker) = s.start_worker().await;
    let record = s.wait_for_outcome("suspend-1").await;
    // Copies received while the first held the lease come back after it and are deleted as done.
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.queue_depth(s.output("CommandQueueUrl")).await > 0 {
        assert!(Instant::now() < deadline, "duplicates still queued");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop.cancel();
    worker.await.unwrap();

    assert_eq!(record.status, CommandStatus::Succeeded, "{record:?}");
    assert_eq!(record.attempts, 1, "acted once");
    assert_eq!(s.certificate_status(&first).await.as_deref(), Some("INACTIVE"));
    assert_eq!(s.certificate_status(&second).await.as_deref(), Some("INACTIVE"));
    let events = s.events(1).await;
    assert_eq!(events.len(), 1, "one event for three deliveries: {events:?}");
    assert_eq!(events[0]["type"], "thing.certificates.updated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_go_to_the_dead_letter_queue_with_their_reason() {
    let s = Stack::deploy().await;
    let thing = s.thing("t");
    s.thing_with_certificate(&thing).await;
    let (stop, worker) = s.start_worker().await;
    let garbage_id = s.send("this is not json").await;
    s.send(&command(
        "bad-status",
        "updateThingCertificates",
        json!({"thingName": thing, "certificateStatus": "IN_ACTIVE"}),
    ))
    .await;
    s.send(&command("good", "getThing", json!({"thingName": thing}))).await;
    let good = s.wait_for_outcome("good").await;
    let dead = s.drain(s.output("DeadLetterQueueUrl"), 2).await;
    stop.cancel();
    worker.await.unwrap();

    assert_eq!(good.status, CommandStatus::Succeeded, "the worker kept going");
    assert_eq!(dead.len(), 2, "{dead:?}");
    let garbage = dead.iter().find(|(b, _)| b == &Value::String("this is not json".into())).expect("garbage kept");
    assert_eq!(garbage.1[REJECTION_CODE_ATTRIBUTE], "INVALID_MESSAGE");
    assert!(garbage.1[REJECTION_REASON_ATTRIBUTE].contains("not JSON"));
    let bad = dead.iter().find(|(b, _)| b["idempotencyKey"] == "bad-status").expect("bad status kept");
    assert_eq!(bad.1[REJECTION_CODE_ATTRIBUTE], "VALIDATION_FAILED");
    assert_eq!(bad.1[REJECTION_PATH_ATTRIBUTE], "/payload/certificateStatus");

    let events = s.events(3).await;
    let rejected: Vec<_> = events.iter().filter(|e| e["type"] == "command.rejected").collect();
    assert_eq!(rejected.len(), 2, "{events:?}");
    assert!(rejected.iter().any(|e| e["data"]["sqsMessageId"] == garbage_id.as_str()));
    assert!(events.iter().any(|e| e["type"] == "thing.described"));
    assert_eq!(s.queue_depth(s.output("CommandQueueUrl")).await, 0);
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_can_go_to_an_sns_topic() {
    let s = Stack::deploy().await;
    let thing = s.thing("t");
    s.thing_with_certificate(&thing).await;
    let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let sns = aws_sdk_sns::Client::new(&config);
    let topic = sns.create_topic().name(s.thing("events")).send().await.unwrap().topic_arn().unwrap().to_owned();
    let events_url = s.output("EventsQueueUrl");
    let queue_arn = s
        .sqs
        .get_queue_attributes()
        .queue_url(events_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(queue_arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .unwrap();

    let config = Config { events: Some(EventsDestination::Sns(topic)), ..s.config.clone() };
    let app = App::new(aws::ports(&config, &s.clients).await.unwrap(), wiring::app_settings(&config));
    let envelope = cdf_provisioning::domain::CommandEnvelope::decode(
        &command("sns-1", "getThing", json!({"thingName": thing})),
        "m-1",
    )
    .unwrap();
    assert_eq!(app.handle(&envelope, "token").await, cdf_provisioning::app::Disposition::Done);
    let events = s.drain(events_url, 1).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0["type"], "thing.described");
    assert_eq!(events[0].0["data"]["idempotencyKey"], "sns-1");
    assert_eq!(events[0].1["ce-type"], "thing.described", "the type travels as a message attribute");
}
