//! The facade's HTTP guards, around every route: a request timeout, CORS for configured
//! origins (off by default), and an optional bearer token (CDF's API had none and relied on
//! API Gateway in front; either way works).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::cdf_json;
use crate::domain::secret::Secret;

/// How the guards are set.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Longest a request may take before it is answered 503.
    pub request_timeout: Duration,
    /// Origins browsers may call from (`*` for any); empty: CORS off.
    pub cors_origins: Vec<String>,
    /// When set, every request but the probes must carry `Authorization: Bearer <token>`.
    pub bearer_token: Option<Secret>,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self { request_timeout: Duration::from_secs(30), cors_origins: Vec::new(), bearer_token: None }
    }
}

/// Who sent a request, as far as the facade can tell: the holder of the bearer token (known by
/// a fingerprint of it, never the token itself), or anonymous when no token is configured. Keyed
/// REST requests are scoped to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Caller(String);

impl Caller {
    /// A caller without a token.
    pub(super) fn anonymous() -> Self {
        Self("anonymous".to_owned())
    }

    /// The holder of `token`: `token-` and 16 hex digits of a SHA-256 of it.
    pub(super) fn holding(token: &Secret) -> Self {
        let digest = Sha256::new().chain_update(b"cdf-provisioning caller\0").chain_update(token.expose()).finalize();
        Self(format!("token-{}", &hex::encode(digest)[..16]))
    }

    /// The caller's name in record keys.
    pub(super) fn as_str(&self) -> &str {
        &self.0
    }
}

/// Paths that answer without a token: the orchestrator's probes.
const OPEN_PATHS: [&str; 2] = ["/health", "/ready"];

/// Answers 503 when a request takes longer than the timeout. A keyed `POST /things` cut short
/// this way resumes when repeated; an unkeyed one leaves at most an INACTIVE certificate.
pub(super) async fn timeout(State(settings): State<Arc<ApiSettings>>, request: Request, next: Next) -> Response {
    let limit = settings.request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let message = format!("the request did not finish within {} s; retry it", limit.as_secs());
            let mut response = cdf_json(StatusCode::SERVICE_UNAVAILABLE, &json!({"message": message}));
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
    }
}

/// Refuses a request without the configured bearer token with 401 (probes and CORS
/// preflights excepted). Tokens are compared by their SHA-256, so the comparison takes the
/// same time whatever the guess.
///
/// The request then carries its [`Caller`]: the token's fingerprint, or anonymous without a
/// token.
pub(super) async fn bearer(State(settings): State<Arc<ApiSettings>>, mut request: Request, next: Next) -> Response {
    let Some(token) = &settings.bearer_token else {
        request.extensions_mut().insert(Caller::anonymous());
        return next.run(request).await;
    };
    if request.method() == Method::OPTIONS || OPEN_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if Sha256::digest(given.as_bytes()) == Sha256::digest(token.expose().as_bytes()) {
        request.extensions_mut().insert(Caller::holding(token));
        return next.run(request).await;
    }
    let mut response = cdf_json(StatusCode::UNAUTHORIZED, &json!({"message": "a valid bearer token is required"}));
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// CORS for the configured origins: preflights answered here, other answers marked.
pub(super) async fn cors(State(settings): State<Arc<ApiSettings>>, request: Request, next: Next) -> Response {
    let origin = request.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let allowed = origin.filter(|o| settings.cors_origins.iter().any(|a| a == "*" || a == o));
    let Some(origin) = allowed else { return next.run(request).await };
    let allow_origin = if settings.cors_origins.iter().any(|a| a == "*") { "*".to_owned() } else { origin };
    let preflight =
        request.method() == Method::OPTIONS && request.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = if preflight {
        let mut response = Response::new(axum::body::Body::empty());
        *response.status_mut() = StatusCode::NO_CONTENT;
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, PATCH, DELETE"));
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("accept, content-type, authorization, idempotency-key"),
        );
        headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        response
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&allow_origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
    headers.insert(header::VARY, HeaderValue::from_static("origin"));
    headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("content-type, retry-after"));
    response
}
