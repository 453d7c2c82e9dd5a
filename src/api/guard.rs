//! The facade's HTTP guards, around every route: a request timeout, CORS for configured
//! origins (off by default), and a bearer token (CDF's API had none and relied on API Gateway
//! in front; either way works). Without a token the facade starts only on a loopback address,
//! unless the operator says otherwise ([`startup_check`]).

use std::net::SocketAddr;
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
    pub bearer_token: Option<Arc<Secret>>,
    /// When set, template writes (`PUT` and `DELETE /templates/...`) need this token, the admin
    /// scope: a template decides what every device made from it may do. It is good for every
    /// other route too. Unset: whoever may call the API may write templates.
    pub admin_token: Option<Arc<Secret>>,
    /// A template upload must carry `If-Match` or `If-None-Match` (428 otherwise).
    pub template_precondition: bool,
    /// How long `/ready` answers from its last probe (zero: every request probes).
    pub ready_cache: Duration,
    /// When the facade listens on a loopback address, its port: requests must then name this
    /// host (`localhost`, `127.0.0.1` or `[::1]`) in `Host`, or are answered 421, so a page
    /// that rebinds its own name to 127.0.0.1 cannot call the API ([`host`]). `None`: no check.
    pub loopback_port: Option<u16>,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            cors_origins: Vec::new(),
            bearer_token: None,
            admin_token: None,
            template_precondition: false,
            ready_cache: Duration::from_secs(5),
            loopback_port: None,
        }
    }
}

/// The shortest bearer token the facade accepts.
pub const MIN_TOKEN_CHARS: usize = 16;

/// How the facade is exposed, as [`startup_check`] found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposure {
    /// Every route but the probes needs the bearer token.
    Guarded,
    /// No token, on a loopback address: reachable from this host only.
    Loopback,
    /// No token on an address others reach, allowed by `CDF_API_INSECURE=true`: every route is
    /// open to whoever reaches it (to be logged loudly).
    Insecure,
}

/// The check before the facade starts serving on `address` with `token`: closed by default.
/// Without a token it may only listen on a loopback address, unless `insecure` (the operator's
/// explicit `CDF_API_INSECURE=true`, for a facade behind its own authorizer); a token shorter
/// than [`MIN_TOKEN_CHARS`] is refused. The error says what to configure.
pub fn startup_check(address: SocketAddr, token: Option<&Secret>, insecure: bool) -> Result<Exposure, String> {
    check_token_length("CDF_API_BEARER_TOKEN", token)?;
    match token {
        Some(_) => Ok(Exposure::Guarded),
        None if address.ip().to_canonical().is_loopback() => Ok(Exposure::Loopback),
        None if insecure => Ok(Exposure::Insecure),
        None => Err(format!(
            "refusing to serve the REST API on {address} without a bearer token: every route, template \
             uploads included, would be open to whoever reaches it. Set CDF_API_BEARER_TOKEN (at least \
             {MIN_TOKEN_CHARS} characters), bind a loopback address (CDF_API_BIND=127.0.0.1:3004), or, \
             behind an authorizer of your own, set CDF_API_INSECURE=true"
        )),
    }
}

/// Refuses a token shorter than [`MIN_TOKEN_CHARS`], naming the variable it came from.
fn check_token_length(variable: &str, token: Option<&Secret>) -> Result<(), String> {
    match token {
        Some(token) if token.expose().chars().count() < MIN_TOKEN_CHARS => {
            Err(format!("{variable} is shorter than {MIN_TOKEN_CHARS} characters; use a long random token"))
        }
        _ => Ok(()),
    }
}

/// The check of the admin token before the facade starts: long enough, and not the bearer
/// token itself (the scope would mean nothing).
pub fn admin_token_check(admin: Option<&Secret>, bearer: Option<&Secret>) -> Result<(), String> {
    check_token_length("CDF_API_ADMIN_TOKEN", admin)?;
    match (admin, bearer) {
        (Some(admin), Some(bearer)) if admin.expose() == bearer.expose() => {
            Err("CDF_API_ADMIN_TOKEN must differ from CDF_API_BEARER_TOKEN".to_owned())
        }
        _ => Ok(()),
    }
}

/// What a request may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    /// Every route, template writes included.
    Admin,
    /// Every route but template writes (when an admin token is configured).
    Caller,
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

/// Whether `host` (a `Host` header's value) names this host on `port`: `localhost`,
/// `127.0.0.1` or `[::1]`, without a port or with `port`.
fn names_loopback(host: &str, port: u16) -> bool {
    let (name, given) = match host.rsplit_once(':') {
        Some((name, given)) if !given.contains(']') => (name, Some(given)),
        _ => (host, None),
    };
    let name_ok = name.eq_ignore_ascii_case("localhost") || name == "127.0.0.1" || name == "[::1]";
    name_ok && given.is_none_or(|given| given.parse::<u16>() == Ok(port))
}

/// DNS rebinding guard of a facade on a loopback address: a request whose `Host` names
/// another host (a page's own name rebound to 127.0.0.1) is answered 421. A request without
/// `Host` (not from a browser) passes.
pub(super) async fn host(State(settings): State<Arc<ApiSettings>>, request: Request, next: Next) -> Response {
    let Some(port) = settings.loopback_port else { return next.run(request).await };
    let host = match request.headers().get(header::HOST) {
        Some(value) => Some(value.to_str().unwrap_or("").to_owned()),
        None => request.uri().authority().map(|a| a.as_str().to_owned()),
    };
    match host {
        Some(host) if !names_loopback(&host, port) => cdf_json(
            StatusCode::MISDIRECTED_REQUEST,
            &json!({"message": format!("this API answers only requests to localhost:{port}, 127.0.0.1:{port} or [::1]:{port}")}),
        ),
        _ => next.run(request).await,
    }
}

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
/// preflights excepted), and a template write without the admin token, when one is
/// configured, with 403. The scheme is case-insensitive (`Bearer`, `bearer`). Tokens are
/// compared by their SHA-256, so the comparison takes the same time whatever the guess.
///
/// The request then carries its [`Caller`]: the token's fingerprint, or anonymous without a
/// token.
pub(super) async fn bearer(State(settings): State<Arc<ApiSettings>>, mut request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map_or("", |(_, token)| token.trim_start_matches(' '));
    let holds = |token: &Secret| Sha256::digest(given.as_bytes()) == Sha256::digest(token.expose().as_bytes());
    let admin = settings.admin_token.as_deref();
    // Without an admin token every caller has every scope, as before scopes existed.
    let (caller, scope) = match (admin, settings.bearer_token.as_deref()) {
        (Some(admin), _) if holds(admin) => (Caller::holding(admin), Scope::Admin),
        (_, Some(token)) if holds(token) => (Caller::holding(token), scope_of_callers(admin)),
        (_, None) => (Caller::anonymous(), scope_of_callers(admin)),
        (_, Some(_)) if request.method() == Method::OPTIONS || OPEN_PATHS.contains(&request.uri().path()) => {
            return next.run(request).await;
        }
        (_, Some(_)) => {
            let mut response =
                cdf_json(StatusCode::UNAUTHORIZED, &json!({"message": "a valid bearer token is required"}));
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    };
    if scope != Scope::Admin && writes_templates(&request) {
        return cdf_json(
            StatusCode::FORBIDDEN,
            &json!({"message": "template uploads and deletes need the admin token (CDF_API_ADMIN_TOKEN)"}),
        );
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

fn scope_of_callers(admin: Option<&Secret>) -> Scope {
    if admin.is_some() { Scope::Caller } else { Scope::Admin }
}

/// Whether a request uploads or deletes a template.
fn writes_templates(request: &Request) -> bool {
    request.uri().path().starts_with("/templates/") && matches!(*request.method(), Method::PUT | Method::DELETE)
}

/// Every method a route answers to.
const CORS_METHODS: &str = "GET, POST, PUT, PATCH, DELETE";

/// Every request header a client of the facade sends (conditional template writes included).
const CORS_HEADERS: &str = "accept, content-type, authorization, idempotency-key, if-match, if-none-match";

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
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(CORS_METHODS));
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(CORS_HEADERS));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(address: &str) -> SocketAddr {
        address.parse().unwrap()
    }

    #[test]
    fn the_api_does_not_start_open_on_an_address_others_reach() {
        for address in ["0.0.0.0:3004", "[::]:3004", "10.0.0.7:3004", "192.168.1.2:80"] {
            let refused = startup_check(at(address), None, false).unwrap_err();
            assert!(refused.contains("CDF_API_BEARER_TOKEN") && refused.contains("CDF_API_INSECURE"), "{refused}");
            assert_eq!(startup_check(at(address), None, true), Ok(Exposure::Insecure), "{address}");
        }
        for address in ["127.0.0.1:3004", "127.0.0.2:0", "[::1]:3004", "[::ffff:127.0.0.1]:3004"] {
            assert_eq!(startup_check(at(address), None, false), Ok(Exposure::Loopback), "{address}");
        }
        let token = Secret::new("0123456789abcdef".into());
        assert_eq!(startup_check(at("0.0.0.0:3004"), Some(&token), false), Ok(Exposure::Guarded));
    }

    #[test]
    fn a_token_shorter_than_the_minimum_is_refused_wherever_the_api_listens() {
        let short = Secret::new("0123456789abcde".into());
        for address in ["0.0.0.0:3004", "127.0.0.1:3004"] {
            for insecure in [false, true] {
                let refused = startup_check(at(address), Some(&short), insecure).unwrap_err();
                assert!(refused.contains("16 characters"), "{refused}");
            }
        }
    }

    #[test]
    fn only_names_of_this_host_with_its_port_pass_the_loopback_host_check() {
        for host in
            ["localhost", "localhost:3004", "LocalHost:3004", "127.0.0.1:3004", "127.0.0.1", "[::1]:3004", "[::1]"]
        {
            assert!(names_loopback(host, 3004), "{host}");
        }
        for host in [
            "evil.example:3004",
            "localhost:3005",
            "127.0.0.1:80",
            "[::1]:1",
            "localhost.evil.example:3004",
            "127.0.0.2:3004",
            "",
            "localhost:",
            "[::1]x",
        ] {
            assert!(!names_loopback(host, 3004), "{host}");
        }
    }

    #[test]
    fn the_admin_token_is_long_and_not_the_bearer_token() {
        let admin = Secret::new("an-admin-token-of-some-length".into());
        let bearer = Secret::new("a-caller-token-of-some-length".into());
        assert_eq!(admin_token_check(Some(&admin), Some(&bearer)), Ok(()));
        assert_eq!(admin_token_check(Some(&admin), None), Ok(()));
        assert_eq!(admin_token_check(None, Some(&bearer)), Ok(()));
        let same = Secret::new("a-caller-token-of-some-length".into());
        assert!(admin_token_check(Some(&same), Some(&bearer)).unwrap_err().contains("must differ"));
        let short = Secret::new("short".into());
        assert!(admin_token_check(Some(&short), None).unwrap_err().contains("CDF_API_ADMIN_TOKEN"));
    }

    #[test]
    fn callers_are_named_by_a_fingerprint_of_their_token_never_the_token() {
        let token = Secret::new("a-long-enough-token-1".into());
        let caller = Caller::holding(&token);
        assert_eq!(caller, Caller::holding(&Secret::new("a-long-enough-token-1".into())));
        assert_ne!(caller, Caller::holding(&Secret::new("a-long-enough-token-2".into())));
        assert!(caller.as_str().starts_with("token-") && caller.as_str().len() == 22, "{}", caller.as_str());
        assert!(!caller.as_str().contains(token.expose()));
        assert_eq!(Caller::anonymous().as_str(), "anonymous");
    }
}
