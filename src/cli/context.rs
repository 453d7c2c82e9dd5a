//! What every AWS-backed command starts from: the configuration (read once from the
//! environment), logging, the AWS clients, and the app wired to the AWS adapters.

use std::sync::Arc;

use anyhow::{Context as _, bail};

use crate::adapters::aws::{
    AwsClients, DynamoStateStore, IotRegistry, S3CaKeyStore, S3RowSource, S3SecretSink, S3TemplateStore,
    SnsEventPublisher, SqsCommandQueue, SqsEventPublisher,
};
use crate::adapters::file::FileCaKeyStore;
use crate::adapters::rate_limited::{RateLimitedRegistry, RateLimits};
use crate::app::{App, Ports};
use crate::config::{Config, EventsDestination};
use crate::ports::{CommandSender, ErrorKind, EventPublisher, PortError, SendFailure, SystemClock};
use crate::telemetry;

/// The configuration and AWS clients of a command that talks to AWS.
pub(super) struct Aws {
    pub(super) config: Config,
    pub(super) clients: AwsClients,
}

impl Aws {
    /// Reads the configuration, starts logging and loads the AWS clients.
    pub(super) async fn load() -> anyhow::Result<Self> {
        let config = Config::from_env()?;
        telemetry::init(config.log_format, &config.log_level);
        let clients = AwsClients::load(config.aws_max_attempts, config.wait_time).await;
        Ok(Self { config, clients })
    }

    /// The command queue, for the worker and for `submit`.
    pub(super) async fn command_queue(&self, purpose: &str) -> anyhow::Result<SqsCommandQueue> {
        let queue_name = Config::require(&self.config.command_queue, "CDF_COMMAND_QUEUE", purpose)?;
        SqsCommandQueue::connect(&self.clients, queue_name, self.config.dead_letter_queue.as_deref())
            .await
            .context("resolving the command queue")
    }

    /// The app on the AWS adapters.
    pub(super) async fn app(&self) -> anyhow::Result<App> {
        build_app(&self.config, &self.clients).await
    }
}

async fn build_app(config: &Config, clients: &AwsClients) -> anyhow::Result<App> {
    let table = Config::require(&config.table, "CDF_TABLE", "for command records")?;
    let events: Arc<dyn EventPublisher> = match &config.events {
        Some(EventsDestination::Sns(topic)) => Arc::new(SnsEventPublisher::new(clients, topic)),
        Some(EventsDestination::Sqs(queue)) => {
            Arc::new(SqsEventPublisher::connect(clients, queue).await.context("resolving the events queue")?)
        }
        None => bail!("CDF_EVENTS_DESTINATION is required (an SQS queue or an SNS topic ARN)"),
    };
    let bucket = Config::require(&config.bucket, "CDF_BUCKET", "for templates, generated keys and CA keys")?;
    // The producer side of the command queue fans bulk tasks out; without a queue they are
    // refused with a message saying so, and everything else works.
    let commands: Arc<dyn CommandSender> = match &config.command_queue {
        Some(queue) => Arc::new(
            SqsCommandQueue::connect(clients, queue, config.dead_letter_queue.as_deref())
                .await
                .context("resolving the command queue")?,
        ),
        None => Arc::new(NoCommandQueue),
    };
    let store = DynamoStateStore::new(clients, table);
    let limits = Arc::new(RateLimits::new(config.iot_rate_share, &config.iot_rate_limits));
    let ports = Ports {
        registry: Arc::new(RateLimitedRegistry::new(Arc::new(IotRegistry::new(clients)), limits)),
        state: Arc::new(store.clone()),
        bulk: Arc::new(store),
        rows: Arc::new(S3RowSource::new(clients, bucket)),
        commands,
        events,
        templates: Arc::new(S3TemplateStore::new(clients, bucket, &config.templates_prefix, &config.templates_suffix)),
        secrets: Arc::new(S3SecretSink::new(clients, bucket, &config.secrets_prefix)),
        ca_keys: match &config.ca_keys_dir {
            Some(dir) => Arc::new(FileCaKeyStore::new(dir)),
            None => Arc::new(S3CaKeyStore::new(clients, bucket, &config.ca_keys_prefix)),
        },
        clock: Arc::new(SystemClock),
    };
    Ok(App::new(ports, config.app_settings()))
}

/// The command queue of a process started without `CDF_COMMAND_QUEUE`.
#[derive(Debug)]
struct NoCommandQueue;

#[async_trait::async_trait]
impl CommandSender for NoCommandQueue {
    async fn send(&self, _body: &str) -> Result<String, PortError> {
        Err(PortError::new(
            ErrorKind::Permanent,
            "sqs:SendMessage",
            "CDF_COMMAND_QUEUE is not set, so bulk tasks cannot be fanned out",
        ))
    }

    async fn send_batch(&self, _bodies: &[String]) -> Result<Vec<SendFailure>, PortError> {
        self.send("").await.map(|_| Vec::new())
    }
}
