//! `template`: `validate` checks a template file offline; `upload`, `list`, `get` and `delete`
//! work on the templates stored in the deployment's bucket, where the workers read them.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::Subcommand;

use super::context::Aws;
use super::offline;
use crate::app::App;
use crate::app::templates::{UploadCondition, UploadRefused};

#[derive(Debug, Subcommand)]
pub(super) enum TemplateAction {
    /// Check a template file (offline); with --parameters, evaluate it and print the plan.
    /// Exit 1 and every error (with its JSON path) when something is wrong.
    Validate {
        /// Template file.
        file: PathBuf,
        /// JSON object of parameter values.
        #[arg(long)]
        parameters: Option<PathBuf>,
        /// JSON object of cdfProvisioningParameters.
        #[arg(long)]
        cdf_parameters: Option<PathBuf>,
    },
    /// Store a template in the deployment's bucket, once it has no error (checked without
    /// parameters first); prints its version.
    Upload {
        /// Template id (its key in the bucket, without prefix and suffix).
        id: String,
        /// Template file.
        file: PathBuf,
        /// Replace only this stored version (the version `template list` or `get` shows);
        /// refused, nothing stored, when another is stored or none.
        #[arg(long, conflicts_with = "if_absent")]
        if_match: Option<String>,
        /// Create only: refused, nothing stored, when the id already has a template.
        #[arg(long)]
        if_absent: bool,
    },
    /// List the stored templates with their versions.
    List,
    /// Print a stored template.
    Get {
        /// Template id.
        id: String,
    },
    /// Delete a stored template.
    Delete {
        /// Template id.
        id: String,
    },
}

pub(super) async fn run(action: TemplateAction) -> anyhow::Result<ExitCode> {
    match action {
        TemplateAction::Validate { file, parameters, cdf_parameters } => {
            offline::validate(&file, parameters.as_ref(), cdf_parameters.as_ref())
        }
        TemplateAction::Upload { id, file, if_match, if_absent } => {
            let condition = match (if_match, if_absent) {
                (Some(version), _) => UploadCondition::IfMatch(version),
                (None, true) => UploadCondition::IfAbsent,
                (None, false) => UploadCondition::None,
            };
            upload(&bucket_app().await?, &id, &file, &condition).await
        }
        TemplateAction::List => {
            for template in bucket_app().await?.templates().await? {
                println!("{}", serde_json::to_string(&template)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        TemplateAction::Get { id } => {
            print!("{}", bucket_app().await?.template(&id).await?.0);
            Ok(ExitCode::SUCCESS)
        }
        TemplateAction::Delete { id } => {
            bucket_app().await?.delete_template(&id).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The app of the commands that work on the stored templates.
async fn bucket_app() -> anyhow::Result<App> {
    Aws::load().await?.app().await
}

/// `template upload`: stores `file` as template `id` unless it has errors (exit 1, each listed).
async fn upload(app: &App, id: &str, file: &PathBuf, condition: &UploadCondition) -> anyhow::Result<ExitCode> {
    let text = super::read_text(file)?;
    match app.upload_template(id, &text, condition).await {
        Ok((version, created)) => {
            eprintln!("{} {id}", if created { "created" } else { "replaced" });
            println!("{}", serde_json::to_string(&version)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(UploadRefused::Invalid(errors)) => {
            for e in &errors {
                eprintln!("error: {e}");
            }
            eprintln!("{} error(s); nothing stored", errors.len());
            Ok(ExitCode::from(1))
        }
        Err(UploadRefused::PreconditionFailed(message)) => {
            eprintln!("{message}");
            Ok(ExitCode::from(1))
        }
        Err(UploadRefused::Failed(error)) => bail!("{error}"),
    }
}
