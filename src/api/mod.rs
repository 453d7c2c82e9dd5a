//! The REST facade: the CDF Provisioning v1.0.0 API over the same application core as the
//! worker. Paths, bodies, status codes and the `application/vnd.aws-cdf-v1.0+json` media type
//! follow the seed; errors are mapped in one place ([`ApiError`]) to the seed's
//! `{"message": ...}` (with the JSON `path` at fault when the input is to blame), and every
//! failure the server produces is JSON, the framework's own rejections included.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use serde::{Deserialize, Serialize};
use serde_json::json;

mod bulk;
mod guard;
pub mod openapi;
mod templates;

pub use guard::{ApiSettings, Exposure, MIN_TOKEN_CHARS, admin_token_check, startup_check};

use crate::app::provision::Provisioned;
use crate::app::{App, KeyedProvision};
use crate::domain::command::{DeleteThing, ProvisionRequest, UpdateThingCertificates};
use crate::domain::location::Document;
use crate::domain::result::{ProvisionResult, ResourceArns};
use crate::domain::{CertificateId, CertificateStatus, CommandError, ErrorCode, IdempotencyKey, Location, ThingName};

/// The media type of every request and response body.
pub const MEDIA_TYPE: &str = "application/vnd.aws-cdf-v1.0+json";

/// Builds the router with the default guards (30 s timeout, no CORS, no token).
pub fn router(app: App) -> Router {
    router_with(app, ApiSettings::default())
}

/// Builds the router with `settings` for its guards.
pub fn router_with(app: App, settings: ApiSettings) -> Router {
    let readiness = std::sync::Arc::new(ReadyCache::new(settings.ready_cache));
    let settings = std::sync::Arc::new(settings);
    Router::new()
        .route("/things/{thing_name}", get(get_thing).delete(delete_thing))
        .route("/things/{thing_name}/certificates", patch(update_certificates))
        .route("/things", post(provision_thing))
        .route("/bulkthings", post(bulk::submit))
        .route("/bulkthings/{task_id}", get(bulk::task))
        .route("/bulkthings/{task_id}/rows", get(bulk::rows))
        .route("/bulkthings/{task_id}/cancel", post(bulk::cancel))
        .route("/templates", get(templates::list))
        .route("/templates/{*template_id}", get(templates::get).put(templates::upload).delete(templates::delete))
        .fallback(no_route)
        .layer(axum::Extension(templates::Preconditions { required: settings.template_precondition }))
        .layer(middleware::from_fn(media_type_gate))
        // Scraped by Prometheus, which sends its own Accept: outside the media type gate.
        .route("/metrics", get(crate::metrics::handler))
        .route("/openapi.json", get(openapi))
        // Probes of orchestrators and load balancers, which send no CDF Accept header.
        .route("/health", get(health))
        .route(
            "/ready",
            get(move |State(app): State<App>| {
                let readiness = readiness.clone();
                async move { ready(&app, &readiness).await }
            }),
        )
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn_with_state(settings.clone(), guard::timeout))
        .layer(middleware::from_fn_with_state(settings.clone(), guard::bearer))
        .layer(middleware::from_fn_with_state(settings.clone(), guard::cors))
        .layer(middleware::from_fn_with_state(settings, guard::host))
        .with_state(app)
}

/// The contract of this facade (`schemas/openapi.yaml`), as JSON.
async fn openapi() -> Response {
    match openapi::json() {
        Ok(text) => ([(header::CONTENT_TYPE, "application/json")], text).into_response(),
        Err(why) => {
            tracing::error!(error = why, "the OpenAPI document does not read");
            cdf_json(StatusCode::INTERNAL_SERVER_ERROR, &json!({"message": "the OpenAPI document is unavailable"}))
        }
    }
}

/// Liveness: the process answers.
async fn health() -> Response {
    cdf_json(StatusCode::OK, &json!({"status": "ok"}))
}

/// The last readiness answer and when it was probed. `/ready` is unauthenticated and each
/// probe makes three AWS calls: within `keep` of a probe, requests are answered from it, and
/// concurrent requests wait for the one probe under way rather than each starting their own.
struct ReadyCache {
    keep: std::time::Duration,
    last: tokio::sync::Mutex<Option<(tokio::time::Instant, crate::app::health::Readiness)>>,
}

impl ReadyCache {
    fn new(keep: std::time::Duration) -> Self {
        Self { keep, last: tokio::sync::Mutex::new(None) }
    }

    /// The last answer if it is recent enough, else a new probe's (remembered).
    async fn get(&self, app: &App) -> crate::app::health::Readiness {
        let mut last = self.last.lock().await;
        if let Some((at, readiness)) = last.as_ref()
            && at.elapsed() < self.keep
        {
            return readiness.clone();
        }
        let readiness = app.readiness().await;
        *last = Some((tokio::time::Instant::now(), readiness.clone()));
        readiness
    }
}

/// Readiness: 200 when the record table, the template store and AWS IoT answer, else 503 with
/// the dependency at fault; a probe's answer is kept for `CDF_API_READY_CACHE_SECS`.
async fn ready(app: &App, cache: &ReadyCache) -> Response {
    let readiness = cache.get(app).await;
    if readiness.ready() {
        cdf_json(StatusCode::OK, &json!({"status": "ready", "checks": readiness.checks}))
    } else {
        let failing: Vec<_> = readiness.checks.iter().filter(|c| c.problem.is_some()).map(|c| c.dependency).collect();
        let message = format!("not ready: {} unavailable", failing.join(", "));
        cdf_json(StatusCode::SERVICE_UNAVAILABLE, &json!({"message": message, "checks": readiness.checks}))
    }
}

async fn no_route() -> ApiError {
    ApiError(CommandError::new(ErrorCode::NotFound, "no such resource"))
}

/// Turns the framework's plain-text rejections (405, 413, a path that is not UTF-8, ...) into
/// the seed's JSON error body, so that a client never has to parse anything else.
async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let ours = response.headers().get(header::CONTENT_TYPE).is_some_and(|t| t == MEDIA_TYPE);
    if !status.is_client_error() && !status.is_server_error() || ours {
        return response;
    }
    let reason = status.canonical_reason().unwrap_or("request failed").to_lowercase();
    // The framework's own text says what was wrong (a query that does not parse, ...): kept
    // for client errors, cut short, never for server errors.
    let (parts, body) = response.into_parts();
    let detail = match axum::body::to_bytes(body, 4_096).await {
        Ok(bytes) if status.is_client_error() => String::from_utf8_lossy(&bytes).trim().to_owned(),
        _ => String::new(),
    };
    let message = if detail.is_empty() {
        reason
    } else {
        format!("{reason}: {}", crate::domain::command::bounded_to(&detail, 300))
    };
    let mut json = cdf_json(status, &json!({"message": message}));
    if let Some(allow) = parts.headers.get(header::ALLOW) {
        json.headers_mut().insert(header::ALLOW, allow.clone());
    }
    json
}

/// CDF answers 415 unless `Accept` names the versioned media type (OPTIONS excepted), and reads
/// a body only when its `Content-Type` is that media type (CDF then validates an empty object,
/// so a body of another type ends in 400 there too; here the 400 says why).
async fn media_type_gate(request: Request, next: Next) -> Response {
    use axum::body::HttpBody;
    // Accept first, as CDF's gate did: a client sending plain JSON everywhere hears 415, the
    // answer that says what the API speaks, before anything about its body.
    if request.method() != Method::OPTIONS {
        let accepted = request
            .headers()
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|range| range.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case(MEDIA_TYPE)));
        if !accepted {
            return cdf_json(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &json!({"message": format!("Accept must name {MEDIA_TYPE}")}),
            );
        }
    }
    let has_body = request.body().size_hint().lower() > 0 || request.headers().contains_key(header::TRANSFER_ENCODING);
    let typed = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(MEDIA_TYPE));
    if has_body && !typed {
        return cdf_json(
            StatusCode::BAD_REQUEST,
            &json!({"message": format!("a request body must be sent with Content-Type {MEDIA_TYPE}")}),
        );
    }
    next.run(request).await
}

/// A command error as an HTTP answer.
#[derive(Debug)]
pub struct ApiError(pub(crate) CommandError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        // A REST body is the payload itself: a location in the payload is shown as the
        // pointer into the body.
        let path = e.path.as_ref().map(|at| match at.document() {
            Document::Payload => at.pointer().to_owned(),
            Document::Message | Document::Template => at.to_string(),
        });
        let (status, body) = match e.code {
            ErrorCode::ThingNotFound | ErrorCode::NotFound => (StatusCode::NOT_FOUND, json!({"message": e.message})),
            ErrorCode::IdempotencyKeyReused => (StatusCode::UNPROCESSABLE_ENTITY, json!({"message": e.message})),
            ErrorCode::Throttled | ErrorCode::Transient | ErrorCode::RetriesExhausted => {
                let body = json!({"message": "the service or AWS is busy; retry later"});
                let mut response = cdf_json(StatusCode::SERVICE_UNAVAILABLE, &body);
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return response;
            }
            // The server's own fault: logged in full, answered without internals.
            ErrorCode::PermanentFailure | ErrorCode::CheckpointUnreadable | ErrorCode::RecordUnreadable => {
                (StatusCode::INTERNAL_SERVER_ERROR, json!({"message": "internal error"}))
            }
            _ => match path {
                Some(path) => (StatusCode::BAD_REQUEST, json!({"message": e.message, "path": path})),
                None => (StatusCode::BAD_REQUEST, json!({"message": e.message})),
            },
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
    ThingName::parse_at(name, Location::message().child("thingName")).map_err(ApiError)
}

async fn get_thing(State(app): State<App>, Path(thing_name): Path<String>) -> Result<Response, ApiError> {
    let thing = app.describe(&thing(&thing_name)?).await.map_err(ApiError)?;
    Ok(cdf_json(StatusCode::OK, &seed_statuses(&thing)))
}

/// The thing as the seed describes it: a certificate's `certificateStatus` is `ACTIVE` or
/// `INACTIVE` (CDF reported every status but ACTIVE as INACTIVE, and clients switch on the
/// two); IoT's own status (`REVOKED`, `PENDING_TRANSFER`, ...) is kept in the added
/// `iotCertificateStatus`. The queued `getThing` result keeps IoT's status as it is.
fn seed_statuses(thing: &crate::domain::registry::ThingDescription) -> serde_json::Value {
    let mut value = serde_json::to_value(thing).unwrap_or_default();
    if let Some(certificates) = value.get_mut("certificates").and_then(serde_json::Value::as_array_mut) {
        for certificate in certificates.iter_mut().filter_map(serde_json::Value::as_object_mut) {
            let Some(status) = certificate.get("certificateStatus").cloned() else { continue };
            let seed = if status == "ACTIVE" { "ACTIVE" } else { "INACTIVE" };
            certificate.insert("certificateStatus".to_owned(), seed.into());
            certificate.insert("iotCertificateStatus".to_owned(), status);
        }
    }
    value
}

/// `DELETE /things/{thingName}` options: both `false` is CDF's detach-only behaviour.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteQuery {
    delete_certificates: Option<bool>,
    delete_policies: Option<bool>,
}

async fn delete_thing(
    State(app): State<App>,
    Path(thing_name): Path<String>,
    Query(options): Query<DeleteQuery>,
) -> Result<StatusCode, ApiError> {
    let command = DeleteThing {
        thing_name: thing(&thing_name)?,
        delete_certificates: options.delete_certificates,
        delete_policies: options.delete_policies,
    };
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
    let request: PatchCertificateRequest = serde_json::from_value(object_body(&body)?).map_err(|e| {
        ApiError(CommandError::new(ErrorCode::ValidationFailed, format!("body is not a PatchCertificateRequest: {e}")))
    })?;
    let raw = request.certificate_status.unwrap_or_default();
    let certificate_status = CertificateStatus::settable(&raw).map_err(|m| {
        ApiError(CommandError::new(ErrorCode::ValidationFailed, m).at(Location::payload().child("certificateStatus")))
    })?;
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

/// A request body that must be a JSON object; fields the seed does not name are dropped, as
/// CDF ignores them.
fn object_body(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    match serde_json::from_slice(body) {
        Ok(value @ serde_json::Value::Object(_)) => Ok(value),
        Ok(_) => Err(ApiError(
            CommandError::new(ErrorCode::ValidationFailed, "the body must be a JSON object").at(Location::message()),
        )),
        Err(e) => Err(ApiError(CommandError::new(ErrorCode::ValidationFailed, format!("the body is not JSON: {e}")))),
    }
}

/// Keeps the fields a request type knows.
fn known_fields(mut body: serde_json::Value, fields: &[&str]) -> serde_json::Value {
    if let Some(object) = body.as_object_mut() {
        object.retain(|k, _| fields.contains(&k.as_str()));
    }
    body
}

/// The `Idempotency-Key` header, checked as a queued command's key is (1-256 printable ASCII
/// characters); `None` when absent.
pub(super) fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    let text = value.to_str().unwrap_or_default();
    if text.is_empty() || text.len() > 256 || !text.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(ApiError(CommandError::new(
            ErrorCode::ValidationFailed,
            "the Idempotency-Key header must be 1-256 printable ASCII characters without spaces",
        )));
    }
    Ok(Some(IdempotencyKey::new(text)))
}

/// POST /things: 201 with the seed's ProvisionResponse. With an `Idempotency-Key` header the
/// request runs through a command record, once per key: a repeat answers 201 with the same
/// result (the generated key included), 409 while the first is still running, 422 if the key
/// was used for another request.
///
/// Keys are the caller's own ([`guard::Caller`]): the record is `rest:<caller>:<key>`, apart
/// from queued commands' and other callers' records.
async fn provision_thing(
    State(app): State<App>,
    caller: Option<Extension<guard::Caller>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let body =
        known_fields(object_body(&body)?, &["provisioningTemplateId", "parameters", "cdfProvisioningParameters"]);
    let request: ProvisionRequest = serde_path_to_error::deserialize(body.clone()).map_err(|e| {
        ApiError(
            CommandError::new(ErrorCode::ValidationFailed, format!("body is not a ProvisionRequest: {}", e.inner()))
                .at(Location::of_serde_path(Location::payload(), e.path())),
        )
    })?;
    let provisioned = match key {
        None => app.provision_inline(&request).await.map_err(ApiError)?,
        Some(key) => {
            let caller = caller.map_or_else(guard::Caller::anonymous, |Extension(caller)| caller);
            match app.provision_keyed(caller.as_str(), &key, &request, &body).await {
                KeyedProvision::Provisioned(provisioned) => *provisioned,
                KeyedProvision::InProgress => {
                    let message = "a request with this Idempotency-Key is still running; retry later";
                    let mut response = cdf_json(StatusCode::CONFLICT, &json!({"message": message}));
                    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                    return Ok(response);
                }
                KeyedProvision::Failed(error) => return Err(ApiError(error)),
            }
        }
    };
    Ok(cdf_json(StatusCode::CREATED, &ProvisionResponse::from(provisioned)))
}
