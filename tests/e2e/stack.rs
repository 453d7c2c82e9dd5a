//! One deployed stack per test: `infra/cloudformation.yaml` deployed into the emulator under a
//! name of its own, the configuration a process of that deployment runs with, the core and
//! worker on the product's wiring, and SDK clients for set-up and assertions.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use cdf_provisioning::adapters::aws::{self, AwsClients, DynamoStateStore, SqsCommandQueue, StackDeployer};
use cdf_provisioning::app::{App, AppSettings};
use cdf_provisioning::cli::OUTPUT_VARIABLES;
use cdf_provisioning::config::Config;
use cdf_provisioning::domain::bulk::{BulkTask, RowOutcome, RowResult, TaskId, TaskStatus};
use cdf_provisioning::domain::{CommandRecord, IdempotencyKey};
use cdf_provisioning::ports::{BulkStore, CommandSender, StateStore};
use cdf_provisioning::wiring;
use cdf_provisioning::worker::{Worker, WorkerSettings};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::support::{binary, examples};

pub(crate) const VISIBILITY_SECS: u64 = 5;

/// One deployed stack with SDK clients for set-up and assertions.
pub(crate) struct Stack {
    pub(crate) name: String,
    pub(crate) outputs: HashMap<String, String>,
    pub(crate) clients: AwsClients,
    /// The configuration of a process of this deployment: the stack's outputs, every other
    /// variable at its default.
    pub(crate) config: Config,
    pub(crate) iot: aws_sdk_iot::Client,
    pub(crate) sqs: aws_sdk_sqs::Client,
}

impl Stack {
    pub(crate) async fn deploy() -> Self {
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
        let outputs: HashMap<String, String> = StackDeployer::new(&clients)
            .deploy(&name, &template, &params, Duration::from_secs(60))
            .await
            .expect("the stack deploys into the emulator")
            .into_iter()
            .collect();
        let variables = Self::variables_of(&outputs);
        let config =
            Config::from_lookup(&|var| variables.iter().find(|(v, _)| *v == var).map(|(_, value)| value.clone()))
                .expect("the stack's outputs are a valid configuration");
        let sdk = aws_config::defaults(BehaviorVersion::latest()).load().await;
        let (iot, sqs) = (aws_sdk_iot::Client::new(&sdk), aws_sdk_sqs::Client::new(&sdk));
        Self { name, outputs, clients, config, iot, sqs }
    }

    /// The variables a process of this deployment runs with: the stack's outputs as
    /// `stack deploy` prints them, but for the dead-letter queue, which the worker finds through
    /// the command queue's redrive policy.
    fn variables_of(outputs: &HashMap<String, String>) -> Vec<(&'static str, String)> {
        OUTPUT_VARIABLES
            .iter()
            .filter(|(_, var)| *var != "CDF_DEAD_LETTER_QUEUE")
            .map(|(output, var)| {
                (*var, outputs.get(*output).unwrap_or_else(|| panic!("stack output {output} missing")).clone())
            })
            .collect()
    }

    /// Starts the real binary's worker on this stack, with the tests' worker settings and
    /// `env` on top; the caller stops it.
    pub(crate) fn spawn_worker(&self, env: &[(&str, &str)]) -> std::process::Child {
        self.spawn_binary(&["worker"], env)
    }

    /// Starts `cdf-provisioning <args>` on this stack (its outputs as the configuration, the
    /// tests' worker settings), with `env` on top; the caller stops it.
    pub(crate) fn spawn_binary(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Child {
        let variables = self.binary_variables();
        let mut variables: Vec<(&str, &str)> = variables.iter().map(|(var, value)| (*var, value.as_str())).collect();
        variables.extend(env);
        binary::spawn(args, &variables)
    }

    /// Runs `cdf-provisioning <args>` on this stack, as [`Stack::spawn_binary`], to its end.
    pub(crate) fn run_binary(&self, args: &[&str]) -> std::process::Output {
        let variables = self.binary_variables();
        let variables: Vec<(&str, &str)> = variables.iter().map(|(var, value)| (*var, value.as_str())).collect();
        binary::run(args, &variables)
    }

    /// The stack's outputs as the configuration, with the tests' worker settings.
    fn binary_variables(&self) -> Vec<(&'static str, String)> {
        let mut variables = Self::variables_of(&self.outputs);
        variables.extend([
            ("CDF_WAIT_TIME_SECS", "1".to_owned()),
            ("CDF_VISIBILITY_TIMEOUT_SECS", VISIBILITY_SECS.to_string()),
            ("CDF_CONCURRENCY", "4".to_owned()),
            ("CDF_LOG_LEVEL", "warn".to_owned()),
        ]);
        variables
    }

    pub(crate) fn output(&self, key: &str) -> &str {
        self.outputs.get(key).unwrap_or_else(|| panic!("stack output {key} missing"))
    }

    pub(crate) fn thing(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.name)
    }

    /// The command queue, resolved as the worker resolves it.
    pub(crate) async fn queue(&self) -> SqsCommandQueue {
        let queue = self.config.command_queue.as_deref().unwrap();
        SqsCommandQueue::connect(&self.clients, queue, self.config.dead_letter_queue.as_deref()).await.unwrap()
    }

    pub(crate) fn state(&self) -> DynamoStateStore {
        DynamoStateStore::new(&self.clients, self.output("TableName"))
    }

    pub(crate) async fn app(&self) -> App {
        self.app_with(self.settings()).await
    }

    /// The settings of this deployment, with the tests' lease and event source.
    pub(crate) fn settings(&self) -> AppSettings {
        AppSettings {
            event_source: "urn:e2e".into(),
            lease: Duration::from_secs(VISIBILITY_SECS),
            ..wiring::app_settings(&self.config)
        }
    }

    /// A core on the product's wiring of this deployment.
    pub(crate) async fn app_with(&self, settings: AppSettings) -> App {
        App::new(aws::ports(&self.config, &self.clients).await.unwrap(), settings)
    }

    /// Starts an in-process worker; cancel the token and await the handle to stop it.
    pub(crate) async fn start_worker(&self) -> (CancellationToken, tokio::task::JoinHandle<()>) {
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

    pub(crate) async fn send(&self, body: &str) -> String {
        self.queue().await.send(body).await.unwrap()
    }

    pub(crate) async fn wait_for_outcome(&self, key: &str) -> CommandRecord {
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
    pub(crate) async fn drain(&self, url: &str, expected: usize) -> Vec<(Value, HashMap<String, String>)> {
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

    pub(crate) async fn events(&self, expected: usize) -> Vec<Value> {
        self.drain(self.output("EventsQueueUrl"), expected).await.into_iter().map(|(b, _)| b).collect()
    }

    pub(crate) async fn queue_depth(&self, url: &str) -> usize {
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
    pub(crate) async fn thing_with_certificate(&self, thing: &str) -> (String, String) {
        if self.iot.describe_thing().thing_name(thing).send().await.is_err() {
            self.iot.create_thing().thing_name(thing).send().await.unwrap();
        }
        let cert = self.iot.create_keys_and_certificate().set_as_active(true).send().await.unwrap();
        let (id, arn) = (cert.certificate_id().unwrap().to_owned(), cert.certificate_arn().unwrap().to_owned());
        self.iot.attach_thing_principal().thing_name(thing).principal(&arn).send().await.unwrap();
        (id, arn)
    }

    pub(crate) async fn policy(&self, name: &str, target: &str) {
        if self.iot.get_policy().policy_name(name).send().await.is_err() {
            self.iot.create_policy().policy_name(name).policy_document(examples::ALLOW_CONNECT).send().await.unwrap();
        }
        self.iot.attach_policy().policy_name(name).target(target).send().await.unwrap();
    }

    /// Certificates IoT holds for things whose names start with `prefix` (read from each
    /// certificate's subject) that are not in `known`: the orphans. Oldest first, so that the
    /// certificates other tests create meanwhile do not shift the pages.
    pub(crate) async fn orphan_certificates(&self, prefix: &str, known: &HashSet<String>) -> Vec<String> {
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
    pub(crate) async fn finished_task(&self, task: &TaskId, within: Duration) -> BulkTask {
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
    pub(crate) async fn all_rows(&self, task: &TaskId, outcome: RowOutcome) -> Vec<RowResult> {
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

    pub(crate) async fn certificate_status(&self, id: &str) -> Option<String> {
        let out = self.iot.describe_certificate().certificate_id(id).send().await.ok()?;
        Some(out.certificate_description()?.status()?.as_str().to_owned())
    }

    pub(crate) fn s3(&self, config: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(config).force_path_style(true).build())
    }

    /// Uploads the shipped example templates and creates what they refer to; returns the
    /// id of a CA registered in IoT whose key is in the bucket.
    pub(crate) async fn examples(&self) -> String {
        let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
        let s3 = self.s3(&config);
        let bucket = self.output("BucketName");
        for (name, template) in examples::all() {
            let key = format!("{}{name}{}", self.config.templates_prefix, self.config.templates_suffix);
            s3.put_object().bucket(bucket).key(key).body(template.into_bytes().into()).send().await.unwrap();
        }
        let policy = self.iot.create_policy().policy_name(examples::DEVICE_POLICY);
        let _ = policy.policy_document(examples::ALLOW_CONNECT).send().await;
        for group in examples::GROUPS {
            let _ = self.iot.create_thing_group().thing_group_name(group).send().await;
        }
        let _ = self.iot.create_thing_type().thing_type_name(examples::THING_TYPE).send().await;
        let (ca_id, ca_key) = self.register_test_ca("CA").await;
        s3.put_object()
            .bucket(bucket)
            .key(format!("{}{ca_id}.pem", self.config.ca_keys_prefix))
            .body(ca_key.expose().as_bytes().to_vec().into())
            .send()
            .await
            .unwrap();
        ca_id
    }

    /// Registers a new ACTIVE test CA in IoT; its id and private key.
    pub(crate) async fn register_test_ca(&self, label: &str) -> (String, cdf_provisioning::crypto::Secret) {
        let (ca_pem, ca_key) = cdf_provisioning::crypto::test_ca(&format!("{} {label}", self.name)).unwrap();
        let registered = self
            .iot
            .register_ca_certificate()
            .ca_certificate(&ca_pem)
            .verification_certificate(&ca_pem)
            .set_as_active(true)
            .send()
            .await
            .unwrap();
        (registered.certificate_id().unwrap().to_owned(), ca_key)
    }
}

pub(crate) fn command(key: &str, kind: &str, payload: Value) -> String {
    json!({"schemaVersion": 1, "type": kind, "idempotencyKey": key, "payload": payload}).to_string()
}

/// A device with an AWS-issued certificate (its key made here) in the group the request names.
pub(crate) fn grouped_device_template() -> Value {
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

pub(crate) fn subject_of(pem: &str) -> String {
    use base64::Engine;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD.decode(body).unwrap_or_default();
    x509_parser::parse_x509_certificate(&der).map(|(_, c)| c.subject().to_string()).unwrap_or_default()
}
