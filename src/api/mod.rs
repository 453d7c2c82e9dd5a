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
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::domain::{CertificateStatus, Command, CommandError, ErrorCode, ThingName};

/// The media type of every request and response body.
pub const MEDIA_TYPE: &str = "application/vnd.aws-cdf-v1.0+json";

/// Builds the router.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/things/{thing_name}", get(get_thing).delete(delete_thing))
        .route("/things/{thing_name}/certificates", patch(update_certificates))
        .route("/things", post(provision_thing))
        .route("/bulkthings", post(not_yet))
        .route("/bulkthings/{task_id}", get(not_yet))
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
pub struct ApiError(CommandError);

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
            ErrorCode::Rejected => (StatusCode::INTERNAL_SERVER_ERROR, json!({"error": "Internal error"})),
            _ => (StatusCode::BAD_REQUEST, json!({"error": e.message, "path": e.path})),
        };
        if status.is_server_error() {
            tracing::error!(error = %e, "request failed");
        }
        cdf_json(status, &body)
    }
}

fn cdf_json(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
    response
}

fn thing(name: &str) -> Result<ThingName, ApiError> {
    ThingName::parse_at(name, "/thingName").map_err(ApiError)
}

async fn get_thing(State(app): State<App>, Path(thing_name): Path<String>) -> Result<Response, ApiError> {
    let command = Command::GetThing { thing_name: thing(&thing_name)? };
    let (result, _) = app.execute(&command).await.map_err(ApiError)?;
    Ok(cdf_json(StatusCode::OK, &result))
}

async fn delete_thing(State(app): State<App>, Path(thing_name): Path<String>) -> Result<StatusCode, ApiError> {
    let command =
        Command::DeleteThing { thing_name: thing(&thing_name)?, delete_certificates: None, delete_policies: None };
    app.execute(&command).await.map_err(ApiError)?;
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
    let status = CertificateStatus::settable(&raw)
        .map_err(|m| ApiError(CommandError::new(ErrorCode::ValidationFailed, m).at("/certificateStatus")))?;
    app.execute(&Command::UpdateThingCertificates { thing_name, status }).await.map_err(ApiError)?;
    Ok(StatusCode::NO_CONTENT)
}

/// POST /things: 201 with the seed's ProvisionResponse; a generated private key is
/// returned inline (and nowhere else), as CDF did.
async fn provision_thing(State(app): State<App>, body: Bytes) -> Result<Response, ApiError> {
    let request: crate::domain::command::ProvisionRequest =
        serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(&body)).map_err(|e| {
            ApiError(
                CommandError::new(
                    ErrorCode::ValidationFailed,
                    format!("body is not a ProvisionRequest: {}", e.inner()),
                )
                .at(format!("/{}", e.path().to_string().replace('.', "/"))),
            )
        })?;
    let (mut result, key) = app.execute(&Command::ProvisionThing(request)).await.map_err(ApiError)?;
    if let (Some(key), Some(object)) = (key, result.as_object_mut()) {
        object.remove("privateKeySecret");
        object.insert("privateKey".into(), Value::String(key.expose().to_owned()));
    }
    Ok(cdf_json(StatusCode::CREATED, &result))
}

async fn not_yet() -> Response {
    cdf_json(StatusCode::NOT_IMPLEMENTED, &json!({"error": "bulk provisioning is not available in this version"}))
}
