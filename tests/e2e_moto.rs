//! End to end against the local AWS emulator (moto server): each test deploys
//! `infra/cloudformation.yaml` as its own stack, runs the worker (in-process, or the real
//! binary for the SIGTERM test) and drives commands through SQS, checking IoT, DynamoDB,
//! the events queue and the dead-letter queue.
//!
//! Run through `scripts/test.sh`, which starts moto and sets `AWS_ENDPOINT_URL`.
#![cfg(feature = "e2e")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::needless_pass_by_value)]

#[path = "common/contract.rs"]
mod contract;
#[path = "common/results.rs"]
mod results;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use cdf_provisioning::adapters::aws::{
    AwsClients, DynamoStateStore, IotRegistry, REJECTION_CODE_ATTRIBUTE, REJECTION_PATH_ATTRIBUTE,
    REJECTION_REASON_ATTRIBUTE, S3CaKeyStore, S3SecretSink, S3TemplateStore, SqsCommandQueue, SqsEventPublisher,
    StackDeployer,
};
use cdf_provisioning::app::{App, AppSettings, Ports};
use cdf_provisioning::config::Config;
use cdf_provisioning::domain::bulk::{RowOutcome, TaskId, TaskStatus};
use cdf_provisioning::domain::record::CommandStatus;
use cdf_provisioning::domain::{CommandRecord, IdempotencyKey};
use cdf_provisioning::ports::{BulkStore, Clock, CommandSender, StateStore, SystemClock};
use cdf_provisioning::worker::{Worker, WorkerSettings};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const VISIBILITY_SECS: u64 = 5;

/// One deployed stack with SDK clients for set-up and assertions.
struct Stack {
    name: String,
    outputs: HashMap<String, String>,
    clients: AwsClients,
    iot: aws_sdk_iot::Client,
    sqs: aws_sdk_sqs::Client,
}

impl Stack {
    async fn deploy() -> Self {
        assert!(
            std::env::var("AWS_ENDPOINT_URL").is_ok(),
            "AWS_ENDPOINT_URL must point at the emulator; run the e2e tests through scripts/test.sh"
        );
        let name = format!("e2e-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let clients = AwsClients::load(1, Duration::from_secs(1)).await;
        let template =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/infra/cloudformation.yaml")).unwrap();
        let params = vec![
            ("VisibilityTimeoutSecs".to_owned(), VISIBILITY_SECS.to_string()),
            ("MaxReceiveCount".to_owned(), "4".to_owned()),
        ];
        let outputs = StackDeployer::new(&clients)
            .deploy(&name, &template, &params, Duration::from_secs(60))
            .await
            .expect("the stack deploys into the emulator")
            .into_iter()
            .collect();
        let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
        Self { name, outputs, clients, iot: aws_sdk_iot::Client::new(&config), sqs: aws_sdk_sqs::Client::new(&config) }
    }

    fn output(&self, key: &str) -> &str {
        self.outputs.get(key).unwrap_or_else(|| panic!("stack output {key} missing"))
    }

    fn thing(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.name)
    }

    async fn queue(&self) -> SqsCommandQueue {
        SqsCommandQueue::connect(&self.clients, self.output("CommandQueueUrl"), None).await.unwrap()
    }

    fn state(&self) -> DynamoStateStore {
        DynamoStateStore::new(&self.clients, self.output("TableName"))
    }

    async fn app(&self) -> App {
        self.app_with(Self::settings()).await
    }

    fn settings() -> AppSettings {
        AppSettings {
            event_source: "urn:e2e".into(),
            lease: Duration::from_secs(VISIBILITY_SECS),
            ..Config::default().app_settings()
        }
    }

    async fn app_with(&self, settings: AppSettings) -> App {
        let events = SqsEventPublisher::connect(&self.clients, self.output("EventsQueueUrl")).await.unwrap();
        App::new(self.ports(Arc::new(events)).await, settings)
    }

    async fn ports(&self, events: Arc<dyn cdf_provisioning::ports::EventPublisher>) -> Ports {
        let bucket = self.output("BucketName");
        Ports {
            registry: Arc::new(IotRegistry::new(&self.clients)),
            state: Arc::new(self.state()),
            bulk: Arc::new(self.state()),
            rows: Arc::new(cdf_provisioning::adapters::aws::S3RowSource::new(&self.clients, bucket)),
            commands: Arc::new(self.queue().await),
            events,
            templates: Arc::new(S3TemplateStore::new(&self.clients, bucket, "templates/", ".json")),
            secrets: Arc::new(S3SecretSink::new(&self.clients, bucket, "secrets/")),
            ca_keys: Arc::new(S3CaKeyStore::new(&self.clients, bucket, "ca-keys/")),
            clock: Arc::new(SystemClock),
        }
    }

    /// Starts an in-process worker; cancel the token and await the handle to stop it.
    async fn start_worker(&self) -> (CancellationToken, tokio::task::JoinHandle<()>) {
        let settings = WorkerSettings {
            receivers: 2,
            concurrency: 8,
            wait_time: Duration::from_secs(1),
            visibility_timeout: Duration::from_secs(VISIBILITY_SECS),
            shutdown_grace: Duration::from_secs(5),
            max_retry_delay: Duration::from_secs(2),
        };
        let worker = Worker::new(self.app().await, Arc::new(self.queue().await), settings);
        let stop = CancellationToken::new();
        let handle = tokio::spawn(worker.run(stop.clone()));
        (stop, handle)
    }

    async fn send(&self, body: &str) -> String {
        self.queue().await.send(body).await.unwrap()
    }

    async fn wait_for_outcome(&self, key: &str) -> CommandRecord {
        let state = self.state();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(record) = state.get(&IdempotencyKey::new(key)).await.unwrap()
                && record.status.is_terminal()
                && record.event_published
            {
                return record;
            }
            assert!(Instant::now() < deadline, "no outcome for {key}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Drains a queue: every message body with its string attributes, until `expected`
    /// arrived or nothing came for a while.
    async fn drain(&self, url: &str, expected: usize) -> Vec<(Value, HashMap<String, String>)> {
        let mut found = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let out = self
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .message_attribute_names("All")
                .send()
                .await
                .unwrap();
            for m in out.messages() {
                let attributes = m
                    .message_attributes()
                    .map(|a| {
                        a.iter().map(|(k, v)| (k.clone(), v.string_value().unwrap_or_default().to_owned())).collect()
                    })
                    .unwrap_or_default();
                let body = serde_json::from_str(m.body().unwrap())
                    .unwrap_or_else(|_| Value::String(m.body().unwrap().to_owned()));
                found.push((body, attributes));
                self.sqs
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
            if found.len() >= expected && out.messages().is_empty() {
                break;
            }
        }
        found
    }

    async fn events(&self, expected: usize) -> Vec<Value> {
        self.drain(self.output("EventsQueueUrl"), expected).await.into_iter().map(|(b, _)| b).collect()
    }

    async fn queue_depth(&self, url: &str) -> usize {
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap();
        out.attributes().unwrap().values().map(|v| v.parse::<usize>().unwrap()).sum()
    }

    /// A thing with a new ACTIVE certificate; returns the certificate (id, arn).
    async fn thing_with_certificate(&self, thing: &str) -> (String, String) {
        if self.iot.describe_thing().thing_name(thing).send().await.is_err() {
            self.iot.create_thing().thing_name(thing).send().await.unwrap();
        }
        let cert = self.iot.create_keys_and_certificate().set_as_active(true).send().await.unwrap();
        let (id, arn) = (cert.certificate_id().unwrap().to_owned(), cert.certificate_arn().unwrap().to_owned());
        self.iot.attach_thing_principal().thing_name(thing).principal(&arn).send().await.unwrap();
        (id, arn)
    }

    async fn policy(&self, name: &str, target: &str) {
        if self.iot.get_policy().policy_name(name).send().await.is_err() {
            let document =
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}"#;
            self.iot.create_policy().policy_name(name).policy_document(document).send().await.unwrap();
        }
        self.iot.attach_policy().policy_name(name).target(target).send().await.unwrap();
    }

    /// Certificates IoT holds for things whose names start with `prefix` (read from each
    /// certificate's subject) that are not in `known`: the orphans. Oldest first, so that the
    /// certificates other tests create meanwhile do not shift the pages.
    async fn orphan_certificates(&self, prefix: &str, known: &HashSet<String>) -> Vec<String> {
        let mut found = Vec::new();
        let mut marker = None;
        loop {
            let page = self
                .iot
                .list_certificates()
                .ascending_order(true)
                .page_size(250)
                .set_marker(marker)
                .send()
                .await
                .unwrap();
            for cert in page.certificates() {
                let id = cert.certificate_id().unwrap().to_owned();
                if known.contains(&id) {
                    continue;
                }
                let described = self.iot.describe_certificate().certificate_id(&id).send().await.unwrap();
                let pem = described.certificate_description().unwrap().certificate_pem().unwrap_or_default().to_owned();
                if subject_of(&pem).contains(prefix) {
                    found.push(id);
                }
            }
            marker = page.next_marker().map(str::to_owned);
            if marker.is_none() {
                return found;
            }
        }
    }

    /// Waits until `task` ended (Completed or Cancelled) and announced it.
    async fn finished_task(&self, task: &TaskId, within: Duration) -> cdf_provisioning::domain::bulk::BulkTask {
        let state = self.state();
        let deadline = Instant::now() + within;
        loop {
            let t = state.get_task(task).await.unwrap();
            if let Some(t) = &t
                && matches!(t.status, TaskStatus::Completed | TaskStatus::Cancelled)
                && t.event_published
            {
                return t.clone();
            }
            assert!(Instant::now() < deadline, "task {task} did not end: {t:?}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Every row result of `task` with `outcome`, all pages.
    async fn all_rows(&self, task: &TaskId, outcome: RowOutcome) -> Vec<cdf_provisioning::domain::bulk::RowResult> {
        let state = self.state();
        let mut rows = Vec::new();
        let mut after = None;
        loop {
            let page = state.rows(task, after, 100, Some(outcome)).await.unwrap();
            rows.extend(page.rows);
            match page.next {
                Some(next) => after = Some(next),
                None => return rows,
            }
        }
    }

    async fn certificate_status(&self, id: &str) -> Option<String> {
        let out = self.iot.describe_certificate().certificate_id(id).send().await.ok()?;
        Some(out.certificate_description()?.status()?.as_str().to_owned())
    }
}

fn command(key: &str, kind: &str, payload: Value) -> String {
    json!({"schemaVersion": 1, "type": kind, "idempotencyKey": key, "payload": payload}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_adapters_keep_the_port_contracts() {
    let s = Stack::deploy().await;
    contract::state_store_contract(&s.state(), &s.name).await;
    contract::bulk_store_contract(&s.state(), &s.state(), &s.name).await;
    let key = cdf_provisioning::crypto::generate_key_and_csr(
        cdf_provisioning::domain::template::plan::KeyAlgorithm::EcdsaP256,
        &Default::default(),
        &s.thing("contract"),
    )
    .unwrap();
    let registry = IotRegistry::new(&s.clients);
    contract::certificate_window_contract(&registry, &key.csr_pem, SystemClock.now()).await;
    let queue = s.queue().await;
    contract::queue_contract(&queue, &queue).await;
}

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
async fn sigterm_stops_the_binary_within_the_grace_period_and_loses_nothing() {
    let s = Stack::deploy().await;
    let thing = s.thing("t");
    s.thing_with_certificate(&thing).await;
    const COMMANDS: usize = 60;
    for i in 0..COMMANDS {
        s.send(&command(&format!("get-{i}"), "getThing", json!({"thingName": thing}))).await;
    }
    let grace = 3;
    // Per-service endpoints win over AWS_ENDPOINT_URL, which here points at nothing.
    let emulator = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cdf-provisioning"))
        .arg("worker")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_ENDPOINT_URL_SQS", &emulator)
        .env("AWS_ENDPOINT_URL_DYNAMODB", &emulator)
        .env("AWS_ENDPOINT_URL_IOT", &emulator)
        .env("CDF_COMMAND_QUEUE", s.output("CommandQueueUrl"))
        .env("CDF_TABLE", s.output("TableName"))
        .env("CDF_EVENTS_DESTINATION", s.output("EventsQueueUrl"))
        .env("CDF_BUCKET", s.output("BucketName"))
        .env("AWS_ENDPOINT_URL_S3", &emulator)
        .env("CDF_WAIT_TIME_SECS", "1")
        .env("CDF_VISIBILITY_TIMEOUT_SECS", VISIBILITY_SECS.to_string())
        .env("CDF_SHUTDOWN_GRACE_SECS", grace.to_string())
        .env("CDF_CONCURRENCY", "4")
        .env("CDF_LOG_LEVEL", "warn")
        .spawn()
        .unwrap();
    // Wait until the worker is busy, then signal it mid-stream.
    let state = s.state();
    let deadline = Instant::now() + Duration::from_secs(30);
    while state.get(&IdempotencyKey::new("get-0")).await.unwrap().is_none() {
        assert!(Instant::now() < deadline, "the worker never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let signalled = Instant::now();
    let kill = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    let took = signalled.elapsed();
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(grace + 2), "took {took:?} for a {grace}s grace period");

    // Whatever was not finished comes back; a new worker completes every command.
    let (stop, worker) = s.start_worker().await;
    for i in 0..COMMANDS {
        let record = s.wait_for_outcome(&format!("get-{i}")).await;
        assert_eq!(record.status, CommandStatus::Succeeded);
    }
    stop.cancel();
    worker.await.unwrap();
    let events = s.events(COMMANDS).await;
    let mut keys: Vec<_> = events.iter().map(|e| e["data"]["idempotencyKey"].as_str().unwrap().to_owned()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), COMMANDS, "every command published its event");
    assert_eq!(s.queue_depth(s.output("CommandQueueUrl")).await, 0, "nothing left behind");
    assert_eq!(s.queue_depth(s.output("DeadLetterQueueUrl")).await, 0, "nothing dead-lettered");
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

    let app = App::new(
        s.ports(Arc::new(cdf_provisioning::adapters::aws::SnsEventPublisher::new(&s.clients, topic))).await,
        Config::default().app_settings(),
    );
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

impl Stack {
    fn s3(&self, config: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(config).force_path_style(true).build())
    }

    /// Uploads the shipped example templates and creates what they refer to; returns the
    /// id of a CA registered in IoT whose key is in the bucket.
    async fn examples(&self) -> String {
        let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
        let s3 = self.s3(&config);
        let bucket = self.output("BucketName");
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/infra/templates");
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let key = format!("templates/{}", path.file_name().unwrap().to_str().unwrap());
                let body = std::fs::read(&path).unwrap();
                s3.put_object().bucket(bucket).key(key).body(body.into()).send().await.unwrap();
            }
        }
        let document =
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}"#;
        let _ = self.iot.create_policy().policy_name("cdf-example-device").policy_document(document).send().await;
        for group in ["cdf-example-eu", "cdf-example-us"] {
            let _ = self.iot.create_thing_group().thing_group_name(group).send().await;
        }
        let _ = self.iot.create_thing_type().thing_type_name("cdf-example-thermometer").send().await;
        let (ca_pem, ca_key) = cdf_provisioning::crypto::test_ca(&format!("{} CA", self.name)).unwrap();
        let ca = self
            .iot
            .register_ca_certificate()
            .ca_certificate(&ca_pem)
            .verification_certificate(&ca_pem)
            .set_as_active(true)
            .send()
            .await
            .unwrap();
        let ca_id = ca.certificate_id().unwrap().to_owned();
        s3.put_object()
            .bucket(bucket)
            .key(format!("ca-keys/{ca_id}.pem"))
            .body(ca_key.expose().as_bytes().to_vec().into())
            .send()
            .await
            .unwrap();
        ca_id
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_template_provisions_through_sqs() {
    let s = Stack::deploy().await;
    let ca_id = s.examples().await;
    let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let s3 = s.s3(&config);
    let names = ["csr", "aws-issued", "ca-signed", "additional-policies", "group-and-type", "add_thing_to_group"];
    let (stop, worker) = s.start_worker().await;
    for name in names {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/infra/templates/requests");
        let mut request: Value =
            serde_json::from_str(&std::fs::read_to_string(format!("{dir}/{name}.json")).unwrap()).unwrap();
        // Thing names unique to this stack; the CA registered above.
        let thing = s.thing(name.replace('_', "-").as_str());
        request["parameters"]["ThingName"] = json!(thing);
        if name == "ca-signed" {
            request["cdfProvisioningParameters"]["caId"] = json!(ca_id);
            request["cdfProvisioningParameters"]["certInfo"]["commonName"] = json!(thing);
        }
        if name != "aws-issued" && name != "ca-signed" && name != "add_thing_to_group" {
            let key = cdf_provisioning::crypto::generate_key_and_csr(
                cdf_provisioning::domain::template::plan::KeyAlgorithm::EcdsaP256,
                &Default::default(),
                &thing,
            )
            .unwrap();
            request["parameters"]["CSR"] = json!(key.csr_pem);
        }
        s.send(&command(&format!("prov-{name}"), "provisionThing", request)).await;
    }
    let mut records = Vec::new();
    for name in names {
        records.push((name, s.wait_for_outcome(&format!("prov-{name}")).await));
    }
    stop.cancel();
    worker.await.unwrap();

    for (name, record) in &records {
        assert_eq!(record.status, CommandStatus::Succeeded, "{name}: {:?}", record.error);
        let result = results::provisioned(record);
        let thing = result.thing_name.as_deref().unwrap();
        assert_eq!(result.resource_arns.thing.as_deref().unwrap().rsplit('/').next(), Some(thing), "{name}");
        let groups = s.iot.list_thing_groups_for_thing().thing_name(thing).send().await.unwrap();
        let groups: Vec<_> = groups.thing_groups().iter().filter_map(|g| g.group_name()).collect();
        let principals = s.iot.list_thing_principals().thing_name(thing).send().await.unwrap().principals().to_vec();
        if *name == "add_thing_to_group" {
            assert!(principals.is_empty());
            assert_eq!(groups, ["cdf-example-eu"]);
            continue;
        }
        assert_eq!(principals.len(), 1, "{name}: exactly one certificate");
        let id = principals[0].rsplit('/').next().unwrap();
        let cert = s.iot.describe_certificate().certificate_id(id).send().await.unwrap();
        let description = cert.certificate_description().unwrap();
        assert_eq!(description.status().unwrap().as_str(), "ACTIVE", "{name}");
        let policies = s.iot.list_attached_policies().target(&principals[0]).send().await.unwrap();
        let policies: Vec<_> = policies.policies().iter().filter_map(|p| p.policy_name()).collect();
        match *name {
            "csr" => assert_eq!(policies.len(), 1, "{name}: the document policy"),
            "additional-policies" => {
                assert!(policies.contains(&"cdf-example-device"), "{policies:?}");
                assert!(policies.iter().any(|p| p.starts_with("cdf-example-telemetry_")), "{policies:?}");
                assert!(policies.contains(&format!("clientIdEnforcementPolicy_{thing}").as_str()), "{policies:?}");
            }
            _ => assert!(policies.contains(&"cdf-example-device"), "{name}: {policies:?}"),
        }
        if *name == "group-and-type" {
            let described = s.iot.describe_thing().thing_name(thing).send().await.unwrap();
            assert_eq!(described.thing_type_name(), Some("cdf-example-thermometer"));
            let attributes = described.attributes().unwrap();
            assert_eq!(attributes["region"], "us-south");
            assert_eq!(attributes["label"], "thermometer@austin");
            assert_eq!(groups, ["cdf-example-us"]);
        }
        let pem = description.certificate_pem().unwrap();
        let der: Vec<u8> = {
            use base64::Engine;
            let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            base64::engine::general_purpose::STANDARD.decode(body).unwrap()
        };
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
        let expected =
            if *name == "ca-signed" { format!("C=DE, O=Example Corp, CN={thing}") } else { format!("CN={thing}") };
        assert_eq!(parsed.subject().to_string(), expected, "{name}: certificate subject");
        let generated = matches!(*name, "aws-issued" | "ca-signed");
        assert_eq!(result.private_key_secret.is_some(), generated, "{name}: {result:?}");
        if generated {
            let uri = result.private_key_secret.as_deref().unwrap();
            let key = uri.strip_prefix(&format!("s3://{}/", s.output("BucketName"))).unwrap();
            let object = s3.get_object().bucket(s.output("BucketName")).key(key).send().await.unwrap();
            assert_eq!(object.server_side_encryption().map(|e| e.as_str()), Some("AES256"));
            let text = String::from_utf8(object.body.collect().await.unwrap().into_bytes().to_vec()).unwrap();
            assert!(text.contains("PRIVATE KEY"), "{name}: the secret holds the key");
        }
    }
    let events = s.events(names.len()).await;
    assert_eq!(events.iter().filter(|e| e["type"] == "thing.provisioned").count(), names.len(), "{events:?}");
    assert!(!serde_json::to_string(&events).unwrap().contains("PRIVATE KEY"), "no key in any event");
}

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
        .key("imports/rows.ndjson")
        .body(ndjson.into_bytes().into())
        .send()
        .await
        .unwrap();
    let from_file = json!({"provisioningTemplateId": "add_thing_to_group", "rowsObject": "imports/rows.ndjson"});
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_task_loses_no_row_and_doubles_none() {
    let s = Stack::deploy().await;
    s.examples().await;
    const ROWS: u32 = 40;
    let rows: Vec<Value> = (0..ROWS).map(|i| json!({"ThingName": s.thing(&format!("k-{i}"))})).collect();
    s.send(&command(
        "killed",
        "bulkProvisionThings",
        json!({"provisioningTemplateId": "aws-issued", "parameters": rows}),
    ))
    .await;
    let task_id = TaskId::for_key(&IdempotencyKey::new("killed"));
    let emulator = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cdf-provisioning"))
        .arg("worker")
        .env("CDF_COMMAND_QUEUE", s.output("CommandQueueUrl"))
        .env("CDF_TABLE", s.output("TableName"))
        .env("CDF_EVENTS_DESTINATION", s.output("EventsQueueUrl"))
        .env("CDF_BUCKET", s.output("BucketName"))
        .env("AWS_ENDPOINT_URL", &emulator)
        .env("CDF_WAIT_TIME_SECS", "1")
        .env("CDF_VISIBILITY_TIMEOUT_SECS", VISIBILITY_SECS.to_string())
        .env("CDF_CONCURRENCY", "4")
        .env("CDF_LOG_LEVEL", "warn")
        .spawn()
        .unwrap();
    // Killed (SIGKILL, no goodbye) once some rows are done and others are running.
    let state = s.state();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = state.get_task(&task_id).await.unwrap().map_or(0, |t| t.success_count);
        if done >= 5 {
            break;
        }
        assert!(Instant::now() < deadline, "the worker never got going");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let at_kill = state.get_task(&task_id).await.unwrap().unwrap();
    assert!(at_kill.success_count < ROWS, "killed too late to prove anything: {at_kill:?}");

    // Two workers share what is left.
    let (stop_a, worker_a) = s.start_worker().await;
    let (stop_b, worker_b) = s.start_worker().await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let task = loop {
        let task = state.get_task(&task_id).await.unwrap().unwrap();
        if task.status == TaskStatus::Completed && task.event_published {
            break task;
        }
        assert!(Instant::now() < deadline, "the task did not complete: {task:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    stop_a.cancel();
    stop_b.cancel();
    worker_a.await.unwrap();
    worker_b.await.unwrap();
    assert_eq!((task.success_count, task.failure_count), (ROWS, 0), "no lost row, none counted twice");

    // Exactly one ACTIVE certificate per thing, and no certificate for our things beyond those.
    let mut ours = Vec::new();
    for i in 0..ROWS {
        let thing = s.thing(&format!("k-{i}"));
        let principals = s.iot.list_thing_principals().thing_name(&thing).send().await.unwrap().principals().to_vec();
        assert_eq!(principals.len(), 1, "{thing}");
        ours.push(principals[0].rsplit('/').next().unwrap().to_owned());
    }
    let ours: HashSet<String> = ours.into_iter().collect();
    assert_eq!(ours.len(), ROWS as usize, "one certificate per row");
    assert_eq!(s.orphan_certificates(&s.thing("k-"), &ours).await, Vec::<String>::new(), "no orphan certificate");
    assert_eq!(s.queue_depth(s.output("DeadLetterQueueUrl")).await, 0);
}

/// Serves `app`'s REST facade on a local port; returns its address.
async fn serve(app: App) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = cdf_provisioning::api::router(app);
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    address
}

/// A device with an AWS-issued certificate (its key made here) in the group the request names.
fn grouped_device_template() -> Value {
    json!({
        "Parameters": {
            "ThingName": {"Type": "String"}, "CertificateId": {"Type": "String"}, "Group": {"Type": "String"}
        },
        "Resources": {
            "thing": {"Type": "AWS::IoT::Thing", "Properties": {
                "ThingName": {"Ref": "ThingName"}, "ThingGroups": [{"Ref": "Group"}]
            }},
            "certificate": {"Type": "AWS::IoT::Certificate", "Properties": {
                "CertificateId": {"Ref": "CertificateId"}, "Status": "ACTIVE"
            }},
            "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "cdf-example-device"}}
        },
        "CDF": {"createDeviceAWSCertificate": true}
    })
}

fn subject_of(pem: &str) -> String {
    use base64::Engine;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD.decode(body).unwrap_or_default();
    x509_parser::parse_x509_certificate(&der).map(|(_, c)| c.subject().to_string()).unwrap_or_default()
}

/// A request and the status it must get: method, path, headers, body, status.
type Exchange<'a> = (&'a str, String, &'a [(&'a str, &'a str)], &'a str, u16);

/// One HTTP/1.1 exchange over a plain socket (the tests need no HTTP client crate):
/// status and body.
async fn http(
    address: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

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
    let template =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/infra/templates/aws-issued.json")).unwrap();
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
    let (ca_pem, _) = cdf_provisioning::crypto::test_ca(&format!("{} keyless CA", s.name)).unwrap();
    let keyless = s
        .iot
        .register_ca_certificate()
        .ca_certificate(&ca_pem)
        .verification_certificate(&ca_pem)
        .set_as_active(true)
        .send()
        .await
        .unwrap();
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
    let (status, text) =
        http(address, "POST", "/things", &cdf, &ca_signed("ca-keyless", keyless.certificate_id().unwrap())).await;
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
    let mut settings = Stack::settings();
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
    let put =
        |key: &'static str, body: String| s3.put_object().bucket(bucket).key(key).body(body.into_bytes().into()).send();
    put("templates/fleet.json", template.to_string()).await.unwrap();
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
    put("imports/fleet.ndjson", rows).await.unwrap();
    let submit = command(
        "fleet",
        "bulkProvisionThings",
        json!({"provisioningTemplateId": "fleet", "rowsObject": "imports/fleet.ndjson"}),
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
