//! The REST facade: the CDF Provisioning v1.0.0 API over the same application core as the
//! worker. Paths, bodies, status codes and the `application/vnd.aws-cdf-v1.0+json` media type
//! follow the seed; errors are mapped in one place ([`ApiError`]).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use serde::{Deserialize, Serialize};
use serde_json::json;

mod bulk;

use crate::app::App;
use crate::app::provision::Provisioned;
use crate::domain::command::{DeleteThing, ProvisionRequest, UpdateThingCertificates, json_pointer};
use crate::domain::result::{ProvisionResult, ResourceArns};
use crate::domain::{CertificateId, CertificateStatus, CommandError, ErrorCode, ThingName};

/// The media type of every request and response body.
pub const MEDIA_TYPE: &str = "application/vnd.aws-cdf-v1.0+json";

/// Builds the router.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/things/{thing_name}", get(get_thing).delete(delete_thing))
        .route("/things/{thing_name}/certificates", patch(update_certificates))
        .route("/things", post(provision_thing))
        .route("/bulkthings", post(bulk::submit))
        .route("/bulkthings/{task_id}", get(bulk::task))
        .route("/bulkthings/{task_id}/rows", get(bulk::rows))
        .route("/bulkthings/{task_id}/cancel", post(bulk::cancel))
        .layer(middleware::from_fn(media_type_gate))
        .with_state(app)
}

/// CDF answers 415 unless `Accept` names the versioned media type (OPTIONS excepted).
async fn media_type_gate(request: Request, next: Next) -> Response {
    if request.method() != Method::OPTIONS {
        let accepted = request
            .headers()
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|range| range.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case(MEDIA_TYPE)));
        if !accepted {
            return StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response();
        }
    }
    next.run(request).await
}

/// A command error as an HTTP answer.
#[derive(Debug)]
pub struct ApiError(pub(crate) CommandError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        let (status, body) = match e.code {
            // CDF's exact 404 body; clients branch on the status.
            ErrorCode::ThingNotFound | ErrorCode::NotFound => {
                (StatusCode::NOT_FOUND, json!({"error": "Resource does not exist"}))
            }
            ErrorCode::Throttled | ErrorCode::Transient => {
                let mut response =
                    cdf_json(StatusCode::SERVICE_UNAVAILABLE, &json!({"error": "Service busy, retry later"}));
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return response;
            }
            ErrorCode::PermanentFailure | ErrorCode::CheckpointUnreadable | ErrorCode::RecordUnreadable => {
                (StatusCode::INTERNAL_SERVER_ERROR, json!({"error": "Internal error"}))
            }
            _ => (StatusCode::BAD_REQUEST, json!({"error": e.message, "path": e.path})),
        };
        if status.is_server_error() {
            tracing::error!(error = %e, "request failed");
        }
        cdf_json(status, &body)
    }
}

pub(crate) fn cdf_json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    let text = serde_json::to_string(body).unwrap_or_else(|_| r#"{"error":"Internal error"}"#.to_owned());
    let mut response = (status, text).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
    response
}

fn thing(name: &str) -> Result<ThingName, ApiError> {
    ThingName::parse_at(name, "/thingName").map_err(ApiError)
}

async fn get_thing(State(app): State<App>, Path(thing_name): Path<String>) -> Result<Response, ApiError> {
    let thing = app.describe(&thing(&thing_name)?).await.map_err(ApiError)?;
    Ok(cdf_json(StatusCode::OK, &thing))
}

async fn delete_thing(State(app): State<App>, Path(thing_name): Path<String>) -> Result<StatusCode, ApiError> {
    let command = DeleteThing { thing_name: thing(&thing_name)?, delete_certificates: None, delete_policies: None };
    app.delete(&command, false).await.map_err(ApiError)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PatchCertificateRequest {
    certificate_status: Option<String>,
}

async fn update_certificates(
    State(app): State<App>,
    Path(thing_name): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let thing_name = thing(&thing_name)?;
    let request: PatchCertificateRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError(CommandError::new(ErrorCode::ValidationFailed, format!("body is not a PatchCertificateRequest: {e}")))
    })?;
    let raw = request.certificate_status.unwrap_or_default();
    let certificate_status = CertificateStatus::settable(&raw)
        .map_err(|m| ApiError(CommandError::new(ErrorCode::ValidationFailed, m).at("/certificateStatus")))?;
    app.update_certificates(&UpdateThingCertificates { thing_name, certificate_status }).await.map_err(ApiError)?;
    Ok(StatusCode::NO_CONTENT)
}

/// The seed's ProvisionResponse: the result with the generated private key inline, as CDF
/// returned it (and stored nowhere).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ProvisionResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate_pem: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    public_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    private_key: Option<String>,
    resource_arns: ResourceArns,
    #[serde(skip_serializing_if = "Option::is_none")]
    thing_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate_id: Option<CertificateId>,
    policies: Vec<String>,
    thing_groups: Vec<String>,
}

impl From<Provisioned> for ProvisionResponse {
    fn from(provisioned: Provisioned) -> Self {
        let ProvisionResult {
            certificate_pem,
            public_key,
            private_key_secret: _,
            resource_arns,
            thing_name,
            certificate_id,
            policies,
            thing_groups,
        } = provisioned.result;
        Self {
            certificate_pem,
            public_key,
            private_key: provisioned.private_key.map(|key| key.expose().to_owned()),
            resource_arns,
            thing_name,
            certificate_id,
            policies,
            thing_groups,
        }
    }
}

/// POST /things: 201 with the seed's ProvisionResponse.
async fn provision_thing(State(app): State<App>, body: Bytes) -> Result<Response, ApiError> {
    let request: ProvisionRequest = serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(&body))
        .map_err(|e| {
            ApiError(
                CommandError::new(
                    ErrorCode::ValidationFailed,
                    format!("body is not a ProvisionRequest: {}", e.inner()),
                )
                .at(json_pointer(e.path())),
            )
        })?;
    let provisioned = app.provision_inline(&request).await.map_err(ApiError)?;
    Ok(cdf_json(StatusCode::CREATED, &ProvisionResponse::from(provisioned)))
}
