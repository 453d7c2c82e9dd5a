//! The product's wiring: every port on its AWS adapter, as the configuration names them. The
//! command line, and the end-to-end tests against the emulator, build their core with exactly
//! this.

use std::sync::Arc;

use anyhow::{Context, bail};

use super::{
    AwsClients, DynamoStateStore, IotRegistry, S3CaKeyStore, S3RowSource, S3SecretSink, S3TemplateStore,
    SnsEventPublisher, SqsCommandQueue, SqsEventPublisher,
};
use crate::adapters::cached_ca_keys::CachedCaKeys;
use crate::adapters::file::FileCaKeyStore;
use crate::adapters::rate_limited::{RateLimitedRegistry, RateLimits};
use crate::app::Ports;
use crate::config::{Config, EventsDestination};
use crate::ports::{CaKeyStore, CommandSender, ErrorKind, EventPublisher, PortError, SendFailure, SystemClock};

/// The ports on AWS: IoT behind this process's share of the IoT quotas, command records and
/// bulk tasks in DynamoDB, templates, rows, generated keys and CA keys in S3 (CA keys in a
/// directory when `CDF_CA_KEYS_DIR` is set), events to SQS or SNS, bulk chunks to the command
/// queue. Fails naming the variable when one the core cannot run without is missing, or when
/// a queue cannot be resolved.
pub async fn ports(config: &Config, clients: &AwsClients) -> anyhow::Result<Ports> {
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
    Ok(Ports {
        registry: Arc::new(RateLimitedRegistry::new(Arc::new(IotRegistry::new(clients)), limits)),
        state: Arc::new(store.clone()),
        bulk: Arc::new(store),
        rows: Arc::new(S3RowSource::new(clients, bucket)),
        commands,
        events,
        templates: Arc::new(S3TemplateStore::new(clients, bucket, &config.templates_prefix, &config.templates_suffix)),
        secrets: Arc::new(S3SecretSink::new(clients, bucket, &config.secrets_prefix, config.secrets_kms_key.clone())),
        ca_keys: {
            let store: Arc<dyn CaKeyStore> = match &config.ca_keys_dir {
                Some(dir) => Arc::new(FileCaKeyStore::new(dir)),
                None => Arc::new(S3CaKeyStore::new(clients, bucket, &config.ca_keys_prefix)),
            };
            if config.ca_key_cache.is_zero() { store } else { Arc::new(CachedCaKeys::new(store, config.ca_key_cache)) }
        },
        clock: Arc::new(SystemClock),
    })
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
