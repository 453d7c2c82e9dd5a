//! Template management routes (this service's addition to the seed): `PUT`, `GET` and
//! `DELETE /templates/{templateId}`, `GET /templates`. An upload is checked in full without
//! parameters and refused with every error; templates are stored where the workers read them.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::json;

use super::{ApiError, cdf_json};
use crate::app::App;
use crate::app::templates::UploadRefused;
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

/// PUT /templates/{templateId}: 201 (new) or 200 (replaced) with the version; 400 with every
/// error when the template is invalid (nothing stored).
pub(super) async fn upload(State(app): State<App>, Path(id): Path<String>, body: Bytes) -> Result<Response, ApiError> {
    let text = String::from_utf8(body.to_vec()).map_err(|_| {
        ApiError(crate::domain::CommandError::new(
            crate::domain::ErrorCode::ValidationFailed,
            "the template is not UTF-8",
        ))
    })?;
    match app.upload_template(&id, &text).await {
        Ok((version, created)) => {
            let status = if created { StatusCode::CREATED } else { StatusCode::OK };
            Ok(with_etag(cdf_json(status, &version), &version))
        }
        Err(UploadRefused::Failed(error)) => Err(ApiError(error)),
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
