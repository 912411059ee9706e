//! Emulated Azure Resource Manager, with the Entra ID token endpoint ([`crate::entra`]) on
//! the same server.
//!
//! One fallback handler parses the path itself, so that provider namespaces, resource
//! types, resource group and cluster names match case-insensitively as ARM's do, and so
//! that every miss gets ARM's own error code (`SubscriptionNotFound`,
//! `ResourceGroupNotFound`, `ResourceNotFound`, ...). Bodies follow the shapes of the
//! public REST API examples (../shared/fixtures/azure-rest-api-examples).
//!
//! Order of checks for an ARM call: bearer token (401), injected faults (429/5xx),
//! `api-version` (400), then the resource path (404).
//!
//! Tokens: the Entra endpoint (`POST /{tenant}/oauth2/v2.0/token`) and the `az` stand-in
//! ([`crate::state_dir::az`]) hand them out.
//!
//! The parts: the request's routing inside the subscription (`routes.rs`); managed
//! clusters, agent pools and their profiles (`clusters.rs`); scale sets and their
//! instances (`compute.rs`); the node image upgrade, a long-running operation
//! (`node_image.rs`); run commands and restarts (`run_command.rs`).

mod clusters;
mod compute;
mod node_image;
mod routes;
pub mod run_command;

use crate::entra;
use crate::Shared;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use clusters::list_subscriptions;
use routes::Ctx;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// What ARM operations change: the node image each pool runs, and the long-running
/// operations (`upgradeNodeImageVersion`) by id.
#[derive(Default)]
pub struct ArmState {
    pool_images: std::sync::Mutex<std::collections::HashMap<String, String>>,
    operations: std::sync::Mutex<std::collections::HashMap<String, node_image::Operation>>,
    /// VM scale set run commands and restarts (Microsoft.Compute operations).
    pub run_commands: run_command::RunCommands,
}

struct Arm {
    shared: Arc<Shared>,
    quota: Quota,
}

pub fn router(shared: Arc<Shared>) -> axum::Router {
    let arm = Arc::new(Arm {
        shared,
        quota: Quota::default(),
    });
    axum::Router::new().fallback(handle).with_state(arm)
}

/// An error in ARM's shape: `{"error":{"code","message"}}`.
pub(crate) fn arm_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": code, "message": message.into()}})),
    )
        .into_response()
}

fn not_found_fix(what: &str) -> String {
    format!("{what} For more details please go to https://aka.ms/ARMResourceNotFoundFix")
}

pub(crate) fn resource_not_found(rtype: &str, name: &str, rg: &str) -> Response {
    arm_error(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        not_found_fix(&format!(
            "The Resource '{rtype}/{name}' under resource group '{rg}' was not found."
        )),
    )
}

async fn handle(State(arm): State<Arc<Arm>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let req = ArmRequest::parse(method, &uri, headers, body);
    // Entra ID lives on the same server (AZURE_AUTHORITY_HOST = the ARM URL).
    let entra = entra_call(&arm.shared, &req);
    let is_entra = entra.is_some();
    let resp = match entra {
        Some(r) => r,
        None => arm_call(
            &arm,
            &req.method,
            &req.segs,
            &req.lower,
            &req.query,
            &req.headers,
            &req.body,
        ),
    };
    let quota = (!is_entra).then_some(&arm.quota);
    finish(resp, &req, &arm.shared.scenario.cluster.location, quota)
}

/// An ARM (or Entra) request, its path in segments as sent and lower-cased.
pub(crate) struct ArmRequest {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) segs: Vec<String>,
    pub(crate) lower: Vec<String>,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl ArmRequest {
    pub(crate) fn parse(method: Method, uri: &Uri, headers: HeaderMap, body: Bytes) -> ArmRequest {
        let segs: Vec<String> = uri
            .path()
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned())
            .collect();
        let lower = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
        ArmRequest {
            method,
            path: uri.path().to_string(),
            segs,
            lower,
            query: parse_pairs(uri.query().unwrap_or("")),
            headers,
            body,
        }
    }

    pub(crate) fn lower_refs(&self) -> Vec<&str> {
        self.lower.iter().map(String::as_str).collect()
    }

    /// The `api-version` query parameter, when given (else answer [`missing_api_version`]).
    pub(crate) fn api_version(&self) -> Option<&str> {
        api_version_of(&self.query)
    }
}

/// What is left of the subscription's request quota (ARM's `x-ms-ratelimit-remaining-*` headers).
pub(crate) struct Quota {
    reads_left: AtomicU32,
    writes_left: AtomicU32,
}

impl Default for Quota {
    fn default() -> Quota {
        Quota {
            reads_left: AtomicU32::new(12000),
            writes_left: AtomicU32::new(1200),
        }
    }
}

/// The Entra ID endpoints' answer, when the request is for one of them.
pub(crate) fn entra_call(shared: &Shared, req: &ArmRequest) -> Option<Response> {
    match req.lower_refs().as_slice() {
        [_, "oauth2", "v2.0", "token"] => Some(if req.method == Method::POST {
            entra::token_endpoint(shared, &req.segs[0], &req.body)
        } else {
            entra::entra_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request",
                900561,
                "The endpoint only accepts POST requests.",
            )
        }),
        [_, "v2.0", ".well-known", "openid-configuration"] => Some(entra::openid_configuration(shared, &req.segs[0])),
        _ => None,
    }
}

/// ARM's response headers on `resp`: request ids, routing, and (with a quota) the
/// remaining reads or writes.
pub(crate) fn finish(mut resp: Response, req: &ArmRequest, location: &str, quota: Option<&Quota>) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let correlation = req
        .headers
        .get("x-ms-correlation-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| uuid::Uuid::parse_str(v).is_ok())
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    tracing::debug!("ARM {} {} -> {}", req.method, req.path, resp.status().as_u16());
    let h = resp.headers_mut();
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(HeaderName::from_static(name), v);
        }
    };
    put("x-ms-request-id", request_id.clone());
    put("x-ms-correlation-request-id", correlation);
    put(
        "x-ms-routing-request-id",
        format!(
            "{}:{}:{request_id}",
            location.to_ascii_uppercase(),
            jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ")
        ),
    );
    put("cache-control", "no-cache".into());
    if let Some(q) = quota {
        let (name, counter) = if req.method == Method::GET {
            ("x-ms-ratelimit-remaining-subscription-reads", &q.reads_left)
        } else {
            ("x-ms-ratelimit-remaining-subscription-writes", &q.writes_left)
        };
        let left = counter
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| Some(n.saturating_sub(1)))
            .unwrap_or(0);
        put(name, left.saturating_sub(1).to_string());
    }
    resp
}

/// The `api-version` query parameter, when given (else answer [`missing_api_version`]).
pub(crate) fn api_version_of(query: &[(String, String)]) -> Option<&str> {
    query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("api-version"))
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// ARM's 400 for a request without `api-version`.
pub(crate) fn missing_api_version() -> Response {
    arm_error(
        StatusCode::BAD_REQUEST,
        "MissingApiVersionParameter",
        "The api-version query parameter (?api-version=) is required for all requests.",
    )
}

fn arm_call(
    arm: &Arm,
    method: &Method,
    segs: &[String],
    lower: &[String],
    query: &[(String, String)],
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let shared = &arm.shared;
    if let Some(r) = check_token(shared, headers) {
        return r;
    }
    match shared.faults.take_arm() {
        Some(crate::faults::ArmFault::Throttle { retry_after }) => {
            let mut r = arm_error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                format!(
                    "The request is being throttled as the limit has been reached for operation type - Read_ObservationWindow_00:05:00. For more information, see - https://aka.ms/srpthrottlinglimits. Retry after {retry_after} seconds."
                ),
            );
            r.headers_mut().insert("retry-after", HeaderValue::from(retry_after));
            return r;
        }
        Some(crate::faults::ArmFault::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let (code, msg) = match status.as_u16() {
                500 => (
                    "InternalServerError",
                    "Encountered internal server error. Please try again.",
                ),
                502 => (
                    "BadGateway",
                    "The gateway did not receive a response within the specified time period.",
                ),
                504 => (
                    "GatewayTimeout",
                    "The gateway did not receive a response within the specified time period.",
                ),
                _ => (
                    "ServiceUnavailable",
                    "The service is currently unavailable. Please try again later.",
                ),
            };
            return arm_error(status, code, msg);
        }
        None => {}
    }
    let Some(api_version) = api_version_of(query) else {
        return missing_api_version();
    };
    let l: Vec<&str> = lower.iter().map(String::as_str).collect();
    if let Some(r) = check_api_version(shared, &l, api_version) {
        return r;
    }
    let ctx = Ctx {
        shared,
        method,
        segs,
        query,
        api_version,
        body,
    };
    match l.as_slice() {
        ["subscriptions"] => ctx.get(|| list_subscriptions(shared)),
        ["subscriptions", _, rest @ ..] => {
            if !segs[1].eq_ignore_ascii_case(&shared.scenario.subscription_id) {
                return arm_error(
                    StatusCode::NOT_FOUND,
                    "SubscriptionNotFound",
                    format!("The subscription '{}' could not be found.", segs[1]),
                );
            }
            ctx.in_subscription(rest)
        }
        _ => arm_error(
            StatusCode::NOT_FOUND,
            "NoRegisteredProviderFound",
            format!("No registered resource provider found for path '/{}'.", segs.join("/")),
        ),
    }
}

/// ARM's answer when `version` is not one the resource type at `path` publishes (see
/// [`crate::api_versions`]): for ARM's own resources (and any malformed version) 400
/// `InvalidApiVersionParameter` listing ARM's versions; for a provider's type 400
/// `NoRegisteredProviderFound` naming the location, the type and its versions.
pub(crate) fn check_api_version(shared: &Shared, path: &[&str], version: &str) -> Option<Response> {
    use crate::api_versions::{ApiType, RESOURCES};
    let t = ApiType::of(path);
    if valid_api_version(version) && t.is_none_or(|t| t.accepts(version)) {
        return None;
    }
    Some(match t {
        Some(ApiType::Provider { rtype, versions, .. }) if valid_api_version(version) => arm_error(
            StatusCode::BAD_REQUEST,
            "NoRegisteredProviderFound",
            format!(
                "No registered resource provider found for location '{loc}' and API version '{version}' for type '{rtype}'. The supported api-versions are '{}'. The supported locations are '{loc}'.",
                versions.list().join(", "),
                loc = shared.scenario.cluster.location,
            ),
        ),
        _ => arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidApiVersionParameter",
            format!(
                "The api-version '{version}' is invalid. The supported versions are '{}'.",
                RESOURCES.join(",")
            ),
        ),
    })
}

fn valid_api_version(v: &str) -> bool {
    let date = v.strip_suffix("-preview").unwrap_or(v);
    let b = date.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

/// Authenticate the bearer token as ARM does.
/// `None` when the token is good, else ARM's 401.
pub(crate) fn check_token(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    let fail = |code: &str, message: String, desc: &str| {
        let mut r = arm_error(StatusCode::UNAUTHORIZED, code, message);
        let www = format!(
            "Bearer authorization_uri=\"{}/{}\", error=\"invalid_token\", error_description=\"{desc}\"",
            shared.endpoints().arm_url,
            shared.scenario.tenant_id
        );
        if let Ok(v) = HeaderValue::from_str(&www) {
            r.headers_mut().insert("www-authenticate", v);
        }
        r
    };
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Some(fail(
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.".into(),
            "The authentication failed because of missing 'Authorization' header.",
        ));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return Some(fail(
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is provided in an invalid format.".into(),
            "The authentication failed because of invalid 'Authorization' header.",
        ));
    };
    if shared.tokens.arm_valid(token) {
        return None;
    }
    if shared.faults.expired_token() && token.starts_with("sim-arm-") {
        let now = jiff::Timestamp::now();
        let fmt = |t: jiff::Timestamp| t.strftime("%-m/%-d/%Y %-I:%M:%S %p").to_string();
        return Some(fail(
            "ExpiredAuthenticationToken",
            format!(
                "The access token expiry UTC time '{}' is earlier than current UTC time '{}'.",
                fmt(now - jiff::SignedDuration::from_mins(5)),
                fmt(now)
            ),
            "The access token has expired.",
        ));
    }
    Some(fail(
        "InvalidAuthenticationToken",
        "The access token is invalid.".into(),
        "The access token is invalid.",
    ))
}

/// One managed cluster as ARM shows it (`GET managedClusters/{name}`), for a fleet's lists.
pub(crate) fn managed_cluster_json(shared: &Arc<Shared>, api_version: &str) -> Value {
    ctx_for(shared, api_version, |ctx| ctx.cluster_json(routes::Cluster::Main))
}

/// The resource groups of a cluster (its own and its node resource group), by name, as ARM
/// shows them.
pub(crate) fn resource_groups_json(shared: &Arc<Shared>, api_version: &str) -> Vec<(String, Value)> {
    ctx_for(shared, api_version, |ctx| {
        ctx.resource_groups()
            .into_iter()
            .map(|rg| {
                let v = ctx.rg_json(&rg);
                (rg, v)
            })
            .collect()
    })
}

fn ctx_for<T>(shared: &Arc<Shared>, api_version: &str, f: impl FnOnce(&Ctx) -> T) -> T {
    f(&Ctx {
        shared,
        method: &Method::GET,
        segs: &[],
        query: &[],
        api_version,
        body: &[],
    })
}

pub(crate) fn ok(body: Value) -> Response {
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// `application/x-www-form-urlencoded` pairs (a query string or a form body).
fn parse_pairs(s: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(s.as_bytes()).into_owned().collect()
}

/// A page of an ARM list (`{value, nextLink}`): the items of `all` from the request's
/// `$skipToken` on, `page_size` of them, and a `nextLink` to the same path while more are
/// left. A token that is not one of ours is ARM's 400 `InvalidSkipToken`.
pub(crate) fn list_page(
    query: &[(String, String)],
    all: Vec<Value>,
    page_size: usize,
    arm_url: &str,
    segs: &[String],
    api_version: &str,
) -> Response {
    let token = query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("$skipToken"))
        .map(|(_, v)| v);
    let offset = match token {
        None => 0,
        Some(tok) => match decode_skip_token(tok) {
            Some(n) => n,
            None => {
                return arm_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidSkipToken",
                    format!("The $skipToken '{tok}' is invalid: pass the nextLink of the previous page unchanged."),
                )
            }
        },
    };
    let size = page_size.max(1);
    let value: Vec<Value> = all.into_iter().skip(offset).take(size + 1).collect();
    let more = value.len() > size;
    let mut body = json!({ "value": value.into_iter().take(size).collect::<Vec<_>>() });
    if more {
        use base64::Engine as _;
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("offset={}", offset + size));
        body["nextLink"] = json!(format!(
            "{arm_url}/{}?api-version={api_version}&$skipToken={token}",
            segs.join("/"),
        ));
    }
    ok(body)
}

fn decode_skip_token(tok: &str) -> Option<usize> {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(tok).ok()?;
    String::from_utf8(raw).ok()?.strip_prefix("offset=")?.parse().ok()
}
