//! Template management: upload (checked in full without parameters first, never stored when
//! invalid), read, list, delete. CDF kept templates out of band in S3 with no checks.

use super::{App, missing_as};
use crate::domain::template::{Template, TemplateError};
use crate::domain::{CommandError, ErrorCode, Location, TemplateId};
use crate::ports::{ErrorKind, PortError, TemplateVersion, WriteCondition};

/// Why an upload was refused.
#[derive(Debug)]
pub enum UploadRefused {
    /// The template is invalid: every static error, with its JSON path.
    Invalid(Vec<TemplateError>),
    /// The precondition does not hold (`If-Match`: another version is stored, or none;
    /// `If-None-Match: *`: one is stored). Nothing was written.
    PreconditionFailed(String),
    /// The id is malformed, or the store failed.
    Failed(CommandError),
}

/// What an upload requires of the stored template (HTTP's `If-Match` / `If-None-Match`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum UploadCondition {
    /// Nothing: create or replace.
    #[default]
    None,
    /// Replace only this stored version (an ETag as `GET` answers it).
    IfMatch(String),
    /// Replace only if a template is stored, whatever its version (`If-Match: *`).
    IfExists,
    /// Create only: refuse if a template is stored (`If-None-Match: *`).
    IfAbsent,
}

fn not_found(id: &str) -> impl Fn(PortError) -> CommandError + '_ {
    missing_as(move |_| CommandError::new(ErrorCode::NotFound, format!("template {id:?} does not exist")))
}

fn checked_id(id: &str) -> Result<TemplateId, CommandError> {
    TemplateId::parse(id).map_err(|e| e.at(Location::message().child("templateId")))
}

impl App {
    /// Stores `text` as template `id` once it has no static error and `condition` holds; the
    /// new version, and whether the id is new. The condition is checked by the store in the
    /// same step as the write, so two racing uploads of the same version cannot both win.
    pub async fn upload_template(
        &self,
        id: &str,
        text: &str,
        condition: &UploadCondition,
    ) -> Result<(TemplateVersion, bool), UploadRefused> {
        let id = checked_id(id).map_err(UploadRefused::Failed)?;
        let id = id.as_str();
        let template = Template::parse(text).map_err(UploadRefused::Invalid)?;
        let errors = template.check_static();
        if !errors.is_empty() {
            return Err(UploadRefused::Invalid(errors));
        }
        let stored = match self.ports.templates.template_version(id).await {
            Ok((_, version)) => Some(version.version),
            Err(e) if e.kind == ErrorKind::NotFound => None,
            Err(e) => return Err(UploadRefused::Failed(e.to_command_error())),
        };
        let refused =
            |why: &str| UploadRefused::PreconditionFailed(format!("template {id:?}: {why}; nothing was stored"));
        let write = match (condition, &stored) {
            (UploadCondition::None, _) => WriteCondition::Always,
            (UploadCondition::IfMatch(etag), _) => WriteCondition::IfMatch(etag.clone()),
            (UploadCondition::IfExists, Some(version)) => WriteCondition::IfMatch(version.clone()),
            (UploadCondition::IfExists, None) => return Err(refused("If-Match is set and there is no template")),
            (UploadCondition::IfAbsent, _) => WriteCondition::IfAbsent,
        };
        let version = self.ports.templates.put_template(id, text, &write).await.map_err(|e| match e.kind {
            ErrorKind::ConditionFailed => match condition {
                UploadCondition::IfAbsent => refused("If-None-Match: * is set and a template exists"),
                _ if stored.is_none() => refused("If-Match is set and there is no template"),
                _ => refused("If-Match does not name the stored version"),
            },
            _ => UploadRefused::Failed(e.to_command_error()),
        })?;
        Ok((version, stored.is_none()))
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
