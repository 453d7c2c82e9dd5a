//! Template management: upload (checked in full without parameters first, never stored when
//! invalid), read, list, delete. CDF kept templates out of band in S3 with no checks.

use super::{App, missing_as};
use crate::domain::template::{Template, TemplateError};
use crate::domain::{CommandError, ErrorCode, Location, TemplateId};
use crate::ports::{ErrorKind, PortError, TemplateVersion};

/// Why an upload was refused.
#[derive(Debug)]
pub enum UploadRefused {
    /// The template is invalid: every static error, with its JSON path.
    Invalid(Vec<TemplateError>),
    /// The id is malformed, or the store failed.
    Failed(CommandError),
}

fn not_found(id: &str) -> impl Fn(PortError) -> CommandError + '_ {
    missing_as(move |_| CommandError::new(ErrorCode::NotFound, format!("template {id:?} does not exist")))
}

fn checked_id(id: &str) -> Result<TemplateId, CommandError> {
    TemplateId::parse(id).map_err(|e| e.at(Location::message().child("templateId")))
}

impl App {
    /// Stores `text` as template `id` once it has no static error; the new version, and
    /// whether the id is new.
    pub async fn upload_template(&self, id: &str, text: &str) -> Result<(TemplateVersion, bool), UploadRefused> {
        let id = checked_id(id).map_err(UploadRefused::Failed)?;
        let id = id.as_str();
        let template = Template::parse(text).map_err(UploadRefused::Invalid)?;
        let errors = template.check_static();
        if !errors.is_empty() {
            return Err(UploadRefused::Invalid(errors));
        }
        let existed = match self.ports.templates.template_version(id).await {
            Ok(_) => true,
            Err(e) if e.kind == ErrorKind::NotFound => false,
            Err(e) => return Err(UploadRefused::Failed(e.to_command_error())),
        };
        let version = self
            .ports
            .templates
            .put_template(id, text)
            .await
            .map_err(|e| UploadRefused::Failed(e.to_command_error()))?;
        Ok((version, !existed))
    }

    /// Template `id`'s text and version.
    pub async fn template(&self, id: &str) -> Result<(String, TemplateVersion), CommandError> {
        let id = checked_id(id)?;
        self.ports.templates.template_version(id.as_str()).await.map_err(not_found(id.as_str()))
    }

    /// Every stored template.
    pub async fn templates(&self) -> Result<Vec<TemplateVersion>, CommandError> {
        self.ports.templates.list_templates().await.map_err(|e| e.to_command_error())
    }

    /// Deletes template `id`.
    pub async fn delete_template(&self, id: &str) -> Result<(), CommandError> {
        let id = checked_id(id)?;
        self.ports.templates.delete_template(id.as_str()).await.map_err(not_found(id.as_str()))
    }
}
