//! `stack deploy|delete`: the service's CloudFormation stack, and the environment lines its
//! outputs give the service.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Subcommand;

use super::context::Aws;
use crate::adapters::aws::StackDeployer;

/// Maps stack outputs to the variables the service reads.
pub const OUTPUT_VARIABLES: [(&str, &str); 6] = [
    ("CommandQueueUrl", "CDF_COMMAND_QUEUE"),
    ("DeadLetterQueueUrl", "CDF_DEAD_LETTER_QUEUE"),
    ("EventsQueueUrl", "CDF_EVENTS_DESTINATION"),
    ("TableName", "CDF_TABLE"),
    ("BucketName", "CDF_BUCKET"),
    ("SecretsKeyArn", "CDF_SECRETS_KMS_KEY"),
];

#[derive(Debug, Subcommand)]
pub(super) enum StackAction {
    /// Create or update the stack, wait, and print its outputs as CDF_* environment lines.
    Deploy {
        /// Stack name; resource names derive from it.
        #[arg(long)]
        name: String,
        /// Template file.
        #[arg(long, default_value = "infra/cloudformation.yaml")]
        template: PathBuf,
        /// Template parameter as KEY=VALUE (repeatable).
        #[arg(long = "param")]
        params: Vec<String>,
    },
    /// Delete the stack.
    Delete {
        /// Stack name.
        #[arg(long)]
        name: String,
    },
}

pub(super) async fn run(aws: &Aws, action: StackAction) -> anyhow::Result<ExitCode> {
    let deployer = StackDeployer::new(&aws.clients);
    match action {
        StackAction::Deploy { name, template, params } => {
            let body = super::read_text(&template)?;
            let params = params
                .iter()
                .map(|p| {
                    p.split_once('=')
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .with_context(|| format!("--param {p:?} is not KEY=VALUE"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let outputs = deployer.deploy(&name, &body, &params, Duration::from_secs(900)).await?;
            for (output, var) in OUTPUT_VARIABLES {
                if let Some(value) = outputs.get(output) {
                    println!("{var}={value}");
                }
            }
        }
        StackAction::Delete { name } => deployer.delete(&name).await?,
    }
    Ok(ExitCode::SUCCESS)
}
