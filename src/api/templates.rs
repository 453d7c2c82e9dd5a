//! Template management routes (this service's addition to the seed): `PUT`, `GET` and
//! `DELETE /templates/{templateId}`, `GET /templates`. An upload is checked in full without
//! parameters and refused with every error; templates are stored where the workers read them.

use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::json;

use super::{ApiError, cdf_json};
use crate::app::App;
use crate::app::templates::{UploadCondition, UploadRefused};
use crate::domain::command::bounded;
use crate::ports::TemplateVersion;

/// At most this many errors are listed in an answer (a template has at most 10,240 characters,
/// so rarely more).
const MAX_LISTED: usize = 100;

fn with_etag(mut response: Response, version: &TemplateVersion) -> Response {
    if let Ok(value) = HeaderValue::from_str(&version.version) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// Whether template uploads must carry a precondition.
#[derive(Debug, Clone, Copy)]
pub(super) struct Preconditions {
    /// `If-Match` or `If-None-Match` is required (428 without).
    pub(super) required: bool,
}

/// The upload's precondition from `If-Match` (one ETag, or `*`) and `If-None-Match` (`*` only).
fn upload_condition(headers: &HeaderMap) -> Result<UploadCondition, ApiError> {
    let value = |name: header::HeaderName| -> Result<Option<String>, ApiError> {
        headers
            .get(&name)
            .map(|v| {
                v.to_str().map(|v| v.trim().to_owned()).map_err(|_| invalid(format!("{name} is not visible ASCII")))
            })
            .transpose()
    };
    match (value(header::IF_MATCH)?, value(header::IF_NONE_MATCH)?) {
        (None, None) => Ok(UploadCondition::None),
        (Some(m), None) if m == "*" => Ok(UploadCondition::IfExists),
        (Some(m), None) if !m.is_empty() && !m.contains(',') => Ok(UploadCondition::IfMatch(m)),
        (Some(_), None) => Err(invalid("If-Match takes one ETag (as GET answers it) or *".to_owned())),
        (None, Some(n)) if n == "*" => Ok(UploadCondition::IfAbsent),
        (None, Some(_)) => Err(invalid("If-None-Match on PUT /templates takes only *".to_owned())),
        (Some(_), Some(_)) => Err(invalid("give If-Match or If-None-Match, not both".to_owned())),
    }
}

fn invalid(message: String) -> ApiError {
    ApiError(crate::domain::CommandError::new(crate::domain::ErrorCode::ValidationFailed, message))
}

/// PUT /templates/{templateId}: 201 (new) or 200 (replaced) with the version; 400 with every
/// error when the template is invalid (nothing stored); 412 when `If-Match` names another
/// version than the stored one (or there is none) or `If-None-Match: *` finds one; 428 without
/// either when the operator requires one.
pub(super) async fn upload(
    State(app): State<App>,
    Path(id): Path<String>,
    Extension(preconditions): Extension<Preconditions>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let condition = upload_condition(&headers)?;
    if preconditions.required && condition == UploadCondition::None {
        let message = "a template upload must carry If-Match: <version> (or *) or If-None-Match: *";
        return Ok(cdf_json(StatusCode::PRECONDITION_REQUIRED, &json!({"message": message})));
    }
    let text = String::from_utf8(body.to_vec()).map_err(|_| {
        ApiError(crate::domain::CommandError::new(
            crate::domain::ErrorCode::ValidationFailed,
            "the template is not UTF-8",
        ))
    })?;
    match app.upload_template(&id, &text, &condition).await {
        Ok((version, created)) => {
            let status = if created { StatusCode::CREATED } else { StatusCode::OK };
            Ok(with_etag(cdf_json(status, &version), &version))
        }
        Err(UploadRefused::Failed(error)) => Err(ApiError(error)),
        Err(UploadRefused::PreconditionFailed(message)) => {
            Ok(cdf_json(StatusCode::PRECONDITION_FAILED, &json!({"message": bounded(&message)})))
        }
        Err(UploadRefused::Invalid(errors)) => {
            let listed: Vec<_> = errors
                .iter()
                .take(MAX_LISTED)
                .map(|e| json!({"path": bounded(&e.path), "message": e.message}))
                .collect();
            let first = errors.first().map_or_else(String::new, |e| format!(": {} {}", e.path, e.message));
            let message = format!("the template has {} error(s){}", errors.len(), bounded(&first));
            Ok(cdf_json(StatusCode::BAD_REQUEST, &json!({"message": message, "errors": listed})))
        }
    }
}

/// GET /templates/{templateId}: the template as stored, with its version as ETag.
pub(super) async fn get(State(app): State<App>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let (text, version) = app.template(&id).await.map_err(ApiError)?;
    let mut response = cdf_json(StatusCode::OK, &serde_json::Value::Null);
    *response.body_mut() = axum::body::Body::from(text);
    Ok(with_etag(response, &version))
}

/// GET /templates: every stored template with its version.
pub(super) async fn list(State(app): State<App>) -> Result<Response, ApiError> {
    let templates = app.templates().await.map_err(ApiError)?;
    Ok(cdf_json(StatusCode::OK, &json!({"templates": templates})))
}

/// DELETE /templates/{templateId}: 204, or 404 when there is none.
pub(super) async fn delete(State(app): State<App>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    app.delete_template(&id).await.map_err(ApiError)?;
    Ok(StatusCode::NO_CONTENT)
}
