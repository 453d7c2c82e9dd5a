//! What every AWS-backed command starts from: the configuration (read once from the
//! environment), logging, the AWS clients, and the app on the production wiring
//! ([`aws::ports`], [`wiring::app_settings`]).

use anyhow::Context as _;

use crate::adapters::aws::{self, AwsClients, SqsCommandQueue};
use crate::app::App;
use crate::config::Config;
use crate::{telemetry, wiring};

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
        Ok(App::new(aws::ports(&self.config, &self.clients).await?, wiring::app_settings(&self.config)))
    }
}
