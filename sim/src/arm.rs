//! Emulated Azure Resource Manager, and the Entra ID token endpoint beside it.
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
//! Tokens: the Entra endpoint (`POST /{tenant}/oauth2/v2.0/token`, client secret or the
//! federated token written to the state dir) issues them; the `az` stand-in
//! (`<state-dir>/bin/az`) prints the one in `<state-dir>/az/access-token`, which
//! [`refresh_az_token`] rewrites whenever the expired-token fault retires the old ones.

use crate::ids::{stable_hex, stable_uuid};
use crate::model::{self, NodeSpec};
use crate::scenario::OsType;
use crate::Shared;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// The display name of the emulated subscription.
pub const SUBSCRIPTION_NAME: &str = "aks-sim";
/// The signed-in user the `az` stand-in reports.
pub const CLI_USER: &str = "operator@aks-sim.example";
/// Scopes (or v1 resources) the token endpoint and the `az` stand-in accept: ARM's.
const ARM_AUDIENCES: [&str; 2] = ["https://management.azure.com", "https://management.core.windows.net"];
const SECONDS_PER_TOKEN: i64 = 3599;

/// What ARM operations change: the node image each pool runs, and the long-running
/// operations (`upgradeNodeImageVersion`) by id.
#[derive(Default)]
pub struct ArmState {
    pool_images: std::sync::Mutex<std::collections::HashMap<String, String>>,
    operations: std::sync::Mutex<std::collections::HashMap<String, Operation>>,
    /// VM scale set run commands and restarts (Microsoft.Compute operations).
    pub run_commands: crate::runcmd::RunCommands,
}

#[derive(Debug, Clone)]
struct Operation {
    pool: String,
    started: String,
    ended: Option<String>,
    /// `InProgress`, `Succeeded` or `Failed`.
    status: String,
    error: Option<String>,
    /// Nodes reimaged so far, of `total`.
    done: usize,
    total: usize,
}

impl ArmState {
    fn image(&self, pool: &str) -> Option<String> {
        self.pool_images
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(pool)
            .cloned()
    }

    fn running(&self, pool: &str) -> bool {
        self.operations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .any(|o| o.pool == pool && o.status == "InProgress")
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut Operation)) {
        if let Some(o) = self.operations.lock().unwrap_or_else(|p| p.into_inner()).get_mut(id) {
            f(o);
        }
    }

    /// One more node of the operation reimaged.
    pub(crate) fn progress(&self, id: &str) {
        self.update(id, |o| o.done += 1);
    }

    /// The operation ended: with the pool on `image`, or failed with `error`.
    pub(crate) fn finish(&self, id: &str, pool: &str, image: Option<&str>, error: Option<String>) {
        if let Some(i) = image {
            self.pool_images
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(pool.to_string(), i.to_string());
        }
        let now = crate::time::now_rfc3339_millis();
        self.update(id, |o| {
            o.status = if error.is_some() { "Failed" } else { "Succeeded" }.into();
            o.ended = Some(now);
            o.error = error;
        });
    }

    fn get(&self, id: &str) -> Option<Operation> {
        self.operations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }
}

struct Arm {
    shared: Arc<Shared>,
    reads_left: AtomicU32,
    writes_left: AtomicU32,
}

pub fn router(shared: Arc<Shared>) -> axum::Router {
    let arm = Arc::new(Arm {
        shared,
        reads_left: AtomicU32::new(12000),
        writes_left: AtomicU32::new(1200),
    });
    axum::Router::new().fallback(handle).with_state(arm)
}

/// An error in ARM's shape: `{"error":{"code","message"}}`.
fn arm_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": code, "message": message.into()}})),
    )
        .into_response()
}

fn not_found_fix(what: &str) -> String {
    format!("{what} For more details please go to https://aka.ms/ARMResourceNotFoundFix")
}

fn resource_not_found(rtype: &str, name: &str, rg: &str) -> Response {
    arm_error(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        not_found_fix(&format!(
            "The Resource '{rtype}/{name}' under resource group '{rg}' was not found."
        )),
    )
}

async fn handle(State(arm): State<Arc<Arm>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let correlation = headers
        .get("x-ms-correlation-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| uuid::Uuid::parse_str(v).is_ok())
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let segs: Vec<String> = uri
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let lower: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
    let query = parse_pairs(uri.query().unwrap_or(""));

    // Entra ID lives on the same server (AZURE_AUTHORITY_HOST = the ARM URL).
    let entra = match lower.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [_, "oauth2", "v2.0", "token"] => Some(if method == Method::POST {
            token_endpoint(&arm.shared, &segs[0], &body)
        } else {
            entra_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request",
                900561,
                "The endpoint only accepts POST requests.",
            )
        }),
        [_, "v2.0", ".well-known", "openid-configuration"] => Some(openid_configuration(&arm.shared, &segs[0])),
        _ => None,
    };
    let is_entra = entra.is_some();
    let mut resp = match entra {
        Some(r) => r,
        None => arm_call(&arm, &method, &segs, &lower, &query, &headers, &body),
    };
    tracing::debug!("ARM {} {} -> {}", method, uri.path(), resp.status().as_u16());
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
            arm.shared.scenario.cluster.location.to_ascii_uppercase(),
            jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ")
        ),
    );
    put("cache-control", "no-cache".into());
    if !is_entra {
        let (name, counter) = if method == Method::GET {
            ("x-ms-ratelimit-remaining-subscription-reads", &arm.reads_left)
        } else {
            ("x-ms-ratelimit-remaining-subscription-writes", &arm.writes_left)
        };
        let left = counter
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| Some(n.saturating_sub(1)))
            .unwrap_or(0);
        put(name, left.saturating_sub(1).to_string());
    }
    resp
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
    let api_version = query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("api-version"))
        .map(|(_, v)| v.as_str());
    let api_version = match api_version {
        None | Some("") => {
            return arm_error(
                StatusCode::BAD_REQUEST,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        }
        Some(v) => v,
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
fn check_api_version(shared: &Shared, path: &[&str], version: &str) -> Option<Response> {
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
fn check_token(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
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

/// A request inside the emulated subscription.
struct Ctx<'a> {
    shared: &'a Arc<Shared>,
    method: &'a Method,
    segs: &'a [String],
    query: &'a [(String, String)],
    api_version: &'a str,
    body: &'a [u8],
}

/// One of the clusters the emulator lists: the scenario's, or an empty (stopped) extra one.
#[derive(Clone, Copy)]
enum Cluster {
    Main,
    Extra(u32),
}

impl<'a> Ctx<'a> {
    fn get(&self, f: impl FnOnce() -> Response) -> Response {
        self.only(Method::GET, f)
    }

    fn only(&self, m: Method, f: impl FnOnce() -> Response) -> Response {
        if *self.method == m {
            f()
        } else {
            arm_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!(
                    "The method '{}' is not supported by aks-sim on '/{}' (it emulates {m} only).",
                    self.method,
                    self.segs.join("/")
                ),
            )
        }
    }

    fn sub(&self) -> &str {
        &self.shared.scenario.subscription_id
    }

    /// Everything under `/subscriptions/{sub}`; `rest` is lower-cased.
    fn in_subscription(&self, rest: &[&str]) -> Response {
        let s = self.shared;
        match rest {
            [] => self.get(|| ok(subscription_json(s))),
            ["resourcegroups"] => self.get(|| {
                let value: Vec<Value> = self.resource_groups().iter().map(|rg| self.rg_json(rg)).collect();
                ok(json!({"value": value}))
            }),
            ["providers", "microsoft.containerservice", "managedclusters"] => {
                self.get(|| self.list_clusters(self.clusters()))
            }
            ["providers", "microsoft.containerservice", "locations", _, kind @ ("operations" | "operationresults"), _] =>
            {
                let id = &self.segs[7];
                let results = *kind == "operationresults";
                self.get(|| self.operation(id, results))
            }
            ["providers", "microsoft.compute", "locations", _, "operations", _] => {
                let id = &self.segs[7];
                let monitor = self
                    .query
                    .iter()
                    .any(|(k, v)| k.eq_ignore_ascii_case("monitor") && v.eq_ignore_ascii_case("true"));
                self.get(|| self.shared.arm_state.run_commands.operation(id, monitor))
            }
            ["providers", ns, t, ..] => self.unknown_type(ns, t),
            ["resourcegroups", _, rest @ ..] => {
                let rg_name = &self.segs[3];
                let Some(rg) = self
                    .resource_groups()
                    .into_iter()
                    .find(|r| r.eq_ignore_ascii_case(rg_name))
                else {
                    return arm_error(
                        StatusCode::NOT_FOUND,
                        "ResourceGroupNotFound",
                        format!("Resource group '{rg_name}' could not be found."),
                    );
                };
                self.in_resource_group(&rg, rest)
            }
            _ => self.no_route(),
        }
    }

    fn in_resource_group(&self, rg: &str, rest: &[&str]) -> Response {
        if *self.method != Method::GET
            && self.shared.faults.nrg_lockdown()
            && self
                .clusters()
                .into_iter()
                .any(|c| self.node_rg(c).eq_ignore_ascii_case(rg))
        {
            return self.denied_by_lockdown(rg, rest);
        }
        match rest {
            [] => self.get(|| ok(self.rg_json(rg))),
            ["providers", "microsoft.containerservice", "managedclusters"] => self.get(|| {
                let here: Vec<Cluster> = self
                    .clusters()
                    .into_iter()
                    .filter(|c| self.cluster_rg(*c).eq_ignore_ascii_case(rg))
                    .collect();
                self.list_clusters(here)
            }),
            ["providers", "microsoft.containerservice", "managedclusters", _, rest @ ..] => {
                let name = &self.segs[7];
                let found = self.clusters().into_iter().find(|c| {
                    self.cluster_rg(*c).eq_ignore_ascii_case(rg) && self.cluster_name(*c).eq_ignore_ascii_case(name)
                });
                match found {
                    Some(c) => self.in_cluster(c, rest),
                    None => resource_not_found("Microsoft.ContainerService/managedClusters", name, rg),
                }
            }
            ["providers", "microsoft.compute", "virtualmachinescalesets"] => self.get(|| {
                let value: Vec<Value> = self
                    .vmss_in(rg)
                    .iter()
                    .map(|(vmss, nodes)| self.vmss_json(rg, vmss, nodes))
                    .collect();
                ok(json!({"value": value}))
            }),
            ["providers", "microsoft.compute", "virtualmachinescalesets", _, rest @ ..] => {
                let name = &self.segs[7];
                let Some((vmss, nodes)) = self.vmss_in(rg).into_iter().find(|(v, _)| v.eq_ignore_ascii_case(name))
                else {
                    return resource_not_found("Microsoft.Compute/virtualMachineScaleSets", name, rg);
                };
                match rest {
                    [] => self.get(|| ok(self.vmss_json(rg, &vmss, &nodes))),
                    ["virtualmachines"] => self.get(|| {
                        let value: Vec<Value> = nodes.iter().map(|n| self.vmss_vm_json(rg, &vmss, n)).collect();
                        ok(json!({"value": value}))
                    }),
                    ["virtualmachines", _, rest @ ..] => {
                        let id = &self.segs[9];
                        match nodes.iter().find(|n| n.instance.to_string() == *id) {
                            Some(n) => self.in_instance(rg, &vmss, n, rest),
                            None => arm_error(
                                StatusCode::NOT_FOUND,
                                "NotFound",
                                format!(
                                    "The entity was not found in this Azure location. VM instance '{id}' of '{vmss}'."
                                ),
                            ),
                        }
                    }
                    _ => self.no_route(),
                }
            }
            ["providers", ns, t, ..] => self.unknown_type(ns, t),
            _ => self.no_route(),
        }
    }

    fn in_cluster(&self, c: Cluster, rest: &[&str]) -> Response {
        let s = self.shared;
        let pools = self.pools(c);
        let find_pool = |name: &str| {
            pools
                .iter()
                .position(|p| s.scenario.pools[*p].name.eq_ignore_ascii_case(name))
        };
        let pool_missing = |name: &str| {
            arm_error(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!(
                    "Could not find agent pool '{name}' in managed cluster '{}'. Get the list with `az aks nodepool list`.",
                    self.cluster_name(c)
                ),
            )
        };
        match rest {
            [] => self.get(|| ok(self.cluster_json(c))),
            ["upgradeprofiles", "default"] => self.get(|| ok(self.cluster_upgrade_profile(c))),
            ["upgradeprofiles"] => self.get(|| ok(json!({"value": [self.cluster_upgrade_profile(c)]}))),
            ["availableagentpoolversions"] => self.get(|| ok(self.available_versions(c))),
            ["agentpools"] => self.get(|| {
                let value: Vec<Value> = pools.iter().map(|p| self.agent_pool_json(c, *p)).collect();
                ok(json!({"value": value}))
            }),
            ["agentpools", _, rest @ ..] => {
                let name = &self.segs[9];
                let Some(p) = find_pool(name).map(|i| pools[i]) else {
                    return pool_missing(name);
                };
                match rest {
                    [] => self.get(|| ok(self.agent_pool_json(c, p))),
                    ["upgradenodeimageversion"] => self.only(Method::POST, || self.upgrade_node_image(c, p)),
                    ["upgradeprofiles", "default"] => self.get(|| ok(self.upgrade_profile_json(c, p))),
                    ["upgradeprofiles"] => self.get(|| ok(json!({"value": [self.upgrade_profile_json(c, p)]}))),
                    ["machines"] => self.get(|| {
                        let value: Vec<Value> = self.pool_nodes(c, p).iter().map(|n| self.machine_json(c, n)).collect();
                        ok(json!({"value": value}))
                    }),
                    ["machines", _] => {
                        let m = &self.segs[11];
                        match self
                            .pool_nodes(c, p)
                            .into_iter()
                            .find(|n| n.name.eq_ignore_ascii_case(m))
                        {
                            Some(n) => self.get(|| ok(self.machine_json(c, n))),
                            None => arm_error(
                                StatusCode::NOT_FOUND,
                                "NotFound",
                                format!("Could not find machine '{m}' in agent pool '{name}'."),
                            ),
                        }
                    }
                    _ => self.no_route(),
                }
            }
            ["maintenanceconfigurations"] => self.get(|| {
                let value: Vec<Value> = self.maintenance_configs(c);
                ok(json!({"value": value}))
            }),
            ["maintenanceconfigurations", _] => {
                let name = &self.segs[9];
                match self
                    .maintenance_configs(c)
                    .into_iter()
                    .find(|m| m["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
                {
                    Some(m) => self.get(|| ok(m)),
                    None => arm_error(
                        StatusCode::NOT_FOUND,
                        "NotFound",
                        format!(
                            "Maintenance configuration '{name}' was not found in managed cluster '{}'.",
                            self.cluster_name(c)
                        ),
                    ),
                }
            }
            [op @ ("listclusterusercredential" | "listclusteradmincredential")] => {
                let admin = *op == "listclusteradmincredential";
                self.only(Method::POST, || self.credentials(c, admin))
            }
            _ => self.no_route(),
        }
    }

    /// A write under `.../virtualMachines/{i}`: run commands, restart, instance view.
    fn in_instance(&self, rg: &str, vmss: &str, n: &NodeSpec, rest: &[&str]) -> Response {
        let rc = &self.shared.arm_state.run_commands;
        let target = crate::runcmd::Target {
            node: &n.name,
            linux: n.is_linux(),
            vm_id: format!(
                "/subscriptions/{}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachineScaleSets/{vmss}/virtualMachines/{}",
                self.sub(),
                n.instance
            ),
        };
        let urls = crate::runcmd::Urls {
            base: self.shared.endpoints().arm_url.clone(),
            sub: self.sub().to_string(),
            location: self.shared.scenario.cluster.location.clone(),
            api_version: self.api_version.to_string(),
        };
        let expand = self
            .query
            .iter()
            .any(|(k, val)| k.eq_ignore_ascii_case("$expand") && val.eq_ignore_ascii_case("instanceView"));
        match rest {
            [] => self.get(|| ok(self.vmss_vm_json(rg, vmss, n))),
            ["instanceview"] => self.get(|| ok(crate::runcmd::instance_view(self.shared, &n.name, &n.os_image))),
            ["runcommand"] => self.only(Method::POST, || rc.action(self.shared, &target, self.body, &urls)),
            ["restart"] => self.only(Method::POST, || rc.restart(self.shared, &target, &urls)),
            ["runcommands"] => self.get(|| rc.list_managed(&target, expand)),
            ["runcommands", _] => {
                let name = &self.segs[11];
                match *self.method {
                    Method::PUT => rc.put_managed(self.shared, &target, name, self.body, &urls),
                    Method::GET => rc.get_managed(&target, name, expand),
                    Method::DELETE => rc.delete_managed(self.shared, &target, name),
                    _ => self.only(Method::GET, || self.no_route()),
                }
            }
            _ => self.no_route(),
        }
    }

    /// 403 from the deny assignment of a node resource group lockdown, naming the action.
    fn denied_by_lockdown(&self, rg: &str, rest: &[&str]) -> Response {
        let m = self.method.as_str();
        let action = match rest.last().copied() {
            Some("runcommand") => {
                "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/runCommand/action".to_string()
            }
            Some("restart") => "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/restart/action".to_string(),
            _ if rest.contains(&"runcommands") => format!(
                "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/runCommands/{}",
                if m == "DELETE" { "delete" } else { "write" }
            ),
            _ => format!(
                "Microsoft.Resources/resourceGroups/{}",
                if m == "DELETE" { "delete" } else { "write" }
            ),
        };
        let scope = format!(
            "/subscriptions/{}/resourceGroups/{rg}/{}",
            self.sub(),
            self.segs[4..].join("/")
        );
        arm_error(
            StatusCode::FORBIDDEN,
            "AuthorizationFailed",
            format!(
                "The client 'operator@aks-sim.example' with object id '{}' has permission to perform action '{action}' on scope '{scope}'; however, the access is denied because of the deny assignment with name 'AKS Node Resource Group Deny Assignment' and Id '{}' at scope '/subscriptions/{}/resourceGroups/{rg}'.",
                stable_uuid("operator"),
                stable_uuid(&format!("{rg}/deny")),
                self.sub()
            ),
        )
    }

    fn unknown_type(&self, ns: &str, t: &str) -> Response {
        match ns {
            "microsoft.containerservice" | "microsoft.compute" => arm_error(
                StatusCode::NOT_FOUND,
                "InvalidResourceType",
                format!(
                    "The resource type '{t}' could not be found in the namespace '{ns}' for api version '{}'.",
                    self.api_version
                ),
            ),
            _ => arm_error(
                StatusCode::NOT_FOUND,
                "NoRegisteredProviderFound",
                format!("No registered resource provider found for namespace '{ns}' (aks-sim emulates Microsoft.ContainerService and Microsoft.Compute)."),
            ),
        }
    }

    fn no_route(&self) -> Response {
        arm_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("aks-sim does not emulate '/{}'.", self.segs.join("/")),
        )
    }

    // ----- the model -----

    fn clusters(&self) -> Vec<Cluster> {
        std::iter::once(Cluster::Main)
            .chain((0..self.shared.scenario.extra_clusters).map(Cluster::Extra))
            .collect()
    }

    fn cluster_name(&self, c: Cluster) -> String {
        match c {
            Cluster::Main => self.shared.scenario.cluster.name.clone(),
            Cluster::Extra(i) => format!("aks-extra-{:02}", i + 1),
        }
    }

    fn cluster_rg(&self, _c: Cluster) -> &str {
        &self.shared.scenario.resource_group
    }

    fn node_rg(&self, c: Cluster) -> String {
        match c {
            Cluster::Main => model::node_resource_group(&self.shared.scenario),
            Cluster::Extra(_) => format!(
                "MC_{}_{}_{}",
                self.cluster_rg(c),
                self.cluster_name(c),
                self.shared.scenario.cluster.location
            ),
        }
    }

    fn resource_groups(&self) -> Vec<String> {
        let mut v = vec![self.shared.scenario.resource_group.clone()];
        v.extend(self.clusters().into_iter().map(|c| self.node_rg(c)));
        v
    }

    fn rg_json(&self, rg: &str) -> Value {
        let mut v = json!({
            "id": format!("/subscriptions/{}/resourceGroups/{rg}", self.sub()),
            "name": rg,
            "type": "Microsoft.Resources/resourceGroups",
            "location": self.shared.scenario.cluster.location,
            "properties": {"provisioningState": "Succeeded"},
        });
        if let Some(c) = self.clusters().into_iter().find(|c| self.node_rg(*c) == rg) {
            v["managedBy"] = json!(self.cluster_id(c));
            v["tags"] =
                json!({"aks-managed-cluster-name": self.cluster_name(c), "aks-managed-cluster-rg": self.cluster_rg(c)});
        }
        v
    }

    fn cluster_id(&self, c: Cluster) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.ContainerService/managedClusters/{}",
            self.sub(),
            self.cluster_rg(c),
            self.cluster_name(c)
        )
    }

    /// Indexes into `scenario.pools` of the cluster's pools; an extra cluster has the
    /// scenario's first (system) pool's shape, with no node running (it is stopped).
    fn pools(&self, c: Cluster) -> Vec<usize> {
        match c {
            Cluster::Main => (0..self.shared.scenario.pools.len()).collect(),
            Cluster::Extra(_) => vec![0],
        }
    }

    fn pool_nodes(&self, c: Cluster, pool: usize) -> Vec<&NodeSpec> {
        match c {
            Cluster::Main => self.shared.nodes.iter().filter(|n| n.pool_index == pool).collect(),
            Cluster::Extra(_) => vec![],
        }
    }

    fn dns_prefix(&self, c: Cluster) -> String {
        let name: String = self.cluster_name(c).chars().take(10).collect();
        let rg: String = self.cluster_rg(c).chars().take(16).collect();
        let sub: String = self.sub().chars().take(6).collect();
        format!("{name}-{rg}-{sub}")
    }

    fn list_clusters(&self, all: Vec<Cluster>) -> Response {
        let skip_param = self
            .query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("$skipToken"))
            .map(|(_, v)| v);
        let offset = match skip_param {
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
        let page_size = self.shared.scenario.arm_page_size.max(1);
        let page: Vec<Value> = all
            .iter()
            .skip(offset)
            .take(page_size)
            .map(|c| self.cluster_json(*c))
            .collect();
        let mut body = json!({"value": page});
        if offset + page_size < all.len() {
            let token =
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("offset={}", offset + page_size));
            body["nextLink"] = json!(format!(
                "{}/{}?api-version={}&$skipToken={token}",
                self.shared.endpoints().arm_url,
                self.segs.join("/"),
                self.api_version
            ));
        }
        ok(body)
    }

    fn cluster_json(&self, c: Cluster) -> Value {
        let s = &self.shared.scenario;
        let name = self.cluster_name(c);
        let dns = self.dns_prefix(c);
        let hash = &stable_hex(&format!("{}/{}", self.cluster_rg(c), name))[..8];
        let loc = &s.cluster.location;
        let running = matches!(c, Cluster::Main);
        let pools: Vec<Value> = self
            .pools(c)
            .into_iter()
            .map(|p| {
                let mut v = self.agent_pool_json(c, p)["properties"].clone();
                if let Some(o) = v.as_object_mut() {
                    let mut m = serde_json::Map::new();
                    m.insert("name".into(), json!(s.pools[p].name));
                    m.extend(std::mem::take(o));
                    *o = m;
                }
                v
            })
            .collect();
        let has_windows = self.pools(c).iter().any(|p| s.pools[*p].os_type == OsType::Windows);
        let public_keys: Vec<Value> = ssh_public_key(&self.shared.state_dir)
            .into_iter()
            .map(|k| json!({"keyData": k}))
            .collect();
        let node_rg = self.node_rg(c);
        let mut props = json!({
            "provisioningState": "Succeeded",
            "powerState": {"code": if running { "Running" } else { "Stopped" }},
            "kubernetesVersion": s.cluster.kubernetes_version,
            "currentKubernetesVersion": s.cluster.kubernetes_version,
            "dnsPrefix": dns,
            "fqdn": format!("{dns}-{hash}.hcp.{loc}.azmk8s.io"),
            "azurePortalFQDN": format!("{dns}-{hash}.portal.hcp.{loc}.azmk8s.io"),
            "agentPoolProfiles": pools,
            "linuxProfile": {
                "adminUsername": s.cluster.admin_username,
                "ssh": {"publicKeys": public_keys},
            },
            "servicePrincipalProfile": {"clientId": "msi"},
            "addonProfiles": {
                "azureKeyvaultSecretsProvider": {"enabled": false, "config": null},
                "azurepolicy": {"enabled": false, "config": null},
            },
            "nodeResourceGroup": node_rg,
            "enableRBAC": true,
            "supportPlan": "KubernetesOfficial",
            "networkProfile": {
                "networkPlugin": "azure",
                "networkPluginMode": "overlay",
                "networkPolicy": "none",
                "networkDataplane": "azure",
                "loadBalancerSku": "standard",
                "loadBalancerProfile": {
                    "managedOutboundIPs": {"count": 1},
                    "effectiveOutboundIPs": [{
                        "id": format!("/subscriptions/{}/resourceGroups/{node_rg}/providers/Microsoft.Network/publicIPAddresses/{}", self.sub(), stable_uuid(&format!("{name}/outbound-ip")))
                    }],
                    "backendPoolType": "nodeIPConfiguration",
                },
                "podCidr": "10.244.0.0/16",
                "serviceCidr": "10.0.0.0/16",
                "dnsServiceIP": "10.0.0.10",
                "outboundType": "loadBalancer",
                "podCidrs": ["10.244.0.0/16"],
                "serviceCidrs": ["10.0.0.0/16"],
                "ipFamilies": ["IPv4"],
            },
            "maxAgentPools": 100,
            "identityProfile": {
                "kubeletidentity": {
                    "resourceId": format!("/subscriptions/{}/resourcegroups/{node_rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}-agentpool", self.sub()),
                    "clientId": stable_uuid(&format!("{name}/kubelet-client")),
                    "objectId": stable_uuid(&format!("{name}/kubelet-object")),
                }
            },
            "autoUpgradeProfile": {
                "upgradeChannel": "none",
                "nodeOSUpgradeChannel": s.cluster.node_os_upgrade_channel.as_str(),
            },
            "disableLocalAccounts": running && s.cluster.disable_local_accounts,
            "securityProfile": {},
            "storageProfile": {
                "diskCSIDriver": {"enabled": true, "version": "v1"},
                "fileCSIDriver": {"enabled": true},
                "snapshotController": {"enabled": true},
            },
            "oidcIssuerProfile": {"enabled": false},
            "workloadAutoScalerProfile": {},
            "resourceUID": stable_hex(&format!("{name}/uid"))[..24].to_string(),
        });
        if let Some(aad) = s.cluster.aad_profile.filter(|_| running) {
            props["aadProfile"] = json!({
                "managed": aad.managed,
                "enableAzureRBAC": aad.enable_azure_rbac,
                "adminGroupObjectIDs": [stable_uuid(&format!("{name}/admin-group"))],
                "tenantID": s.tenant_id,
            });
        }
        if has_windows {
            props["windowsProfile"] = json!({"adminUsername": s.cluster.admin_username, "enableCSIProxy": true});
        }
        json!({
            "id": self.cluster_id(c),
            "location": loc,
            "name": name,
            "type": "Microsoft.ContainerService/ManagedClusters",
            "tags": {"environment": "aks-sim"},
            "eTag": &stable_hex(&format!("{name}/etag"))[..8],
            "properties": props,
            "identity": {
                "type": "SystemAssigned",
                "principalId": stable_uuid(&format!("{name}/principal")),
                "tenantId": s.tenant_id,
            },
            "sku": {"name": "Base", "tier": "Free"},
        })
    }

    fn agent_pool_json(&self, c: Cluster, p: usize) -> Value {
        let s = &self.shared.scenario;
        let spec = &s.pools[p];
        let linux = spec.os_type == OsType::Linux;
        let nodes = self.pool_nodes(c, p);
        let first = nodes.first();
        let os_sku = first
            .map(|n| n.os_sku.clone())
            .or_else(|| spec.os_sku.clone())
            .unwrap_or_else(|| if linux { "Ubuntu" } else { "Windows2022" }.into());
        let mut props = json!({
            "count": spec.count,
            "vmSize": spec.vm_size,
            "osDiskSizeGB": 128,
            "osDiskType": "Managed",
            "kubeletDiskType": "OS",
            "maxPods": if linux { 110 } else { 30 },
            "type": "VirtualMachineScaleSets",
            "enableAutoScaling": false,
            "scaleDownMode": "Delete",
            "provisioningState": if self.shared.arm_state.running(&spec.name) && matches!(c, Cluster::Main) {
                "UpgradingNodeImageVersion"
            } else {
                "Succeeded"
            },
            "powerState": {"code": if matches!(c, Cluster::Main) { "Running" } else { "Stopped" }},
            "orchestratorVersion": s.cluster.kubernetes_version,
            "currentOrchestratorVersion": s.cluster.kubernetes_version,
            "enableNodePublicIP": false,
            "mode": spec.mode,
            "osType": if linux { "Linux" } else { "Windows" },
            "osSKU": os_sku,
            "nodeImageVersion": self.pool_image(c, p),
            "upgradeSettings": {"maxSurge": "10%", "maxUnavailable": "0"},
            "enableFIPS": false,
            "securityProfile": {"sshAccess": spec.ssh_access, "enableVTPM": false, "enableSecureBoot": false},
            "eTag": &stable_hex(&format!("{}/{}/etag", self.cluster_name(c), spec.name))[..8],
        });
        if !spec.zones.is_empty() {
            props["availabilityZones"] = json!(spec.zones);
        }
        if spec.mode == "System" {
            props["nodeTaints"] = json!([]);
        }
        json!({
            "id": format!("{}/agentPools/{}", self.cluster_id(c), spec.name),
            "name": spec.name,
            "type": "Microsoft.ContainerService/managedClusters/agentPools",
            "properties": props,
        })
    }

    /// The node image a pool runs now (after any `upgradeNodeImageVersion`).
    fn pool_image(&self, c: Cluster, p: usize) -> String {
        let spec = &self.shared.scenario.pools[p];
        let first = self.pool_nodes(c, p).first().copied();
        match c {
            Cluster::Main => self
                .shared
                .arm_state
                .image(&spec.name)
                .unwrap_or_else(|| pool_node_image(spec, first)),
            Cluster::Extra(_) => pool_node_image(spec, first),
        }
    }

    /// `managedClusters/{c}/upgradeProfiles/default`: the control plane's and every pool's
    /// Kubernetes version and the versions they can go to.
    fn cluster_upgrade_profile(&self, c: Cluster) -> Value {
        let s = &self.shared.scenario;
        let v = &s.cluster.kubernetes_version;
        let upgrades: Vec<Value> = upgrade_targets(v)
            .into_iter()
            .map(|u| json!({"kubernetesVersion": u, "isPreview": null}))
            .collect();
        let pools: Vec<Value> = self
            .pools(c)
            .into_iter()
            .map(|p| {
                let spec = &s.pools[p];
                json!({"name": spec.name, "kubernetesVersion": v,
                       "osType": if spec.os_type == OsType::Linux { "Linux" } else { "Windows" },
                       "upgrades": upgrades})
            })
            .collect();
        json!({
            "id": format!("{}/upgradeprofiles/default", self.cluster_id(c)),
            "name": "default",
            "type": "Microsoft.ContainerService/managedClusters/upgradeprofiles",
            "properties": {
                "controlPlaneProfile": {"kubernetesVersion": v, "name": null, "osType": "Linux", "upgrades": upgrades},
                "agentPoolProfiles": pools,
            },
        })
    }

    /// `managedClusters/{c}/availableAgentPoolVersions`: the cluster's version (default) and
    /// the supported ones around it.
    fn available_versions(&self, c: Cluster) -> Value {
        let v = &self.shared.scenario.cluster.kubernetes_version;
        let mut versions: Vec<Value> = previous_minor(v)
            .into_iter()
            .map(|p| json!({"kubernetesVersion": p, "isPreview": null}))
            .collect();
        versions.push(json!({"default": true, "kubernetesVersion": v, "isPreview": null}));
        versions.extend(
            upgrade_targets(v)
                .into_iter()
                .map(|u| json!({"kubernetesVersion": u, "isPreview": null})),
        );
        json!({
            "id": format!("{}/availableagentpoolversions", self.cluster_id(c)),
            "name": "default",
            "type": "Microsoft.ContainerService/managedClusters/availableAgentpoolVersions",
            "properties": {"agentPoolVersions": versions},
        })
    }

    /// `POST .../agentPools/{p}/upgradeNodeImageVersion` (`az aks nodepool upgrade
    /// --node-image-only`): a long-running operation that reimages the pool's nodes one at a
    /// time (cordon, drain respecting budgets, reimage to the latest node image, which has the
    /// pending updates in it, uncordon) and answers 202 with `Azure-AsyncOperation` and
    /// `Location`.
    fn upgrade_node_image(&self, c: Cluster, p: usize) -> Response {
        let s = self.shared;
        let spec = &s.scenario.pools[p];
        if !matches!(c, Cluster::Main) {
            return arm_error(
                StatusCode::CONFLICT,
                "OperationNotAllowed",
                format!(
                    "Operation is not allowed: the managed cluster '{}' is stopped.",
                    self.cluster_name(c)
                ),
            );
        }
        if s.arm_state.running(&spec.name) {
            return arm_error(
                StatusCode::CONFLICT,
                "OperationNotAllowed",
                format!(
                    "Operation is not allowed because there's an in progress upgrade node image version operation on agent pool '{}'. Please wait for it to finish before starting a new operation.",
                    spec.name
                ),
            );
        }
        let shared = self.shared.clone();
        let id = uuid::Uuid::new_v4().to_string();
        let nodes: Vec<String> = self.pool_nodes(c, p).iter().map(|n| n.name.clone()).collect();
        s.arm_state.operations.lock().unwrap_or_else(|p| p.into_inner()).insert(
            id.clone(),
            Operation {
                pool: spec.name.clone(),
                started: crate::time::now_rfc3339_millis(),
                ended: None,
                status: "InProgress".into(),
                error: None,
                done: 0,
                total: nodes.len(),
            },
        );
        let latest = spec
            .latest_node_image_version
            .clone()
            .unwrap_or_else(|| self.pool_image(c, p));
        tokio::spawn(crate::reimage::upgrade_pool(
            shared,
            id.clone(),
            spec.name.clone(),
            nodes,
            latest,
        ));
        let base = self.shared.endpoints().arm_url.clone();
        let loc = &s.scenario.cluster.location;
        let sub = self.sub();
        let api = self.api_version;
        let mut body = self.agent_pool_json(c, p);
        body["properties"]["provisioningState"] = json!("UpgradingNodeImageVersion");
        let mut r = (StatusCode::ACCEPTED, axum::Json(body)).into_response();
        let h = r.headers_mut();
        for (name, kind) in [("azure-asyncoperation", "operations"), ("location", "operationresults")] {
            let url = format!(
                "{base}/subscriptions/{sub}/providers/Microsoft.ContainerService/locations/{loc}/{kind}/{id}?api-version={api}"
            );
            if let Ok(v) = HeaderValue::from_str(&url) {
                h.insert(HeaderName::from_static(name), v);
            }
        }
        h.insert("retry-after", HeaderValue::from(1));
        r
    }

    /// An operation's status (`Azure-AsyncOperation`), or its result (`Location`: 202 while
    /// it runs, then the agent pool).
    fn operation(&self, id: &str, results: bool) -> Response {
        let Some(op) = self.shared.arm_state.get(id) else {
            return arm_error(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("Operation '{id}' was not found."),
            );
        };
        if results {
            if op.status == "InProgress" {
                let mut r = StatusCode::ACCEPTED.into_response();
                r.headers_mut().insert("retry-after", HeaderValue::from(1));
                return r;
            }
            let p = self
                .shared
                .scenario
                .pools
                .iter()
                .position(|x| x.name == op.pool)
                .unwrap_or(0);
            return ok(self.agent_pool_json(Cluster::Main, p));
        }
        let mut v = json!({
            "id": format!("/subscriptions/{}/providers/Microsoft.ContainerService/locations/{}/operations/{id}", self.sub(), self.shared.scenario.cluster.location),
            "name": id,
            "status": op.status,
            "startTime": op.started,
            "percentComplete": if op.total == 0 { 100.0 } else { 100.0 * op.done as f64 / op.total as f64 },
        });
        if let Some(e) = &op.ended {
            v["endTime"] = json!(e);
        }
        if let Some(e) = &op.error {
            v["error"] = json!({"code": "UpgradeFailed", "message": e});
        }
        let mut r = ok(v);
        if op.status == "InProgress" {
            r.headers_mut().insert("retry-after", HeaderValue::from(1));
        }
        r
    }

    fn upgrade_profile_json(&self, c: Cluster, p: usize) -> Value {
        let s = &self.shared.scenario;
        let spec = &s.pools[p];
        let first = self.pool_nodes(c, p).first().copied();
        let latest = spec
            .latest_node_image_version
            .clone()
            .unwrap_or_else(|| pool_node_image(spec, first));
        json!({
            "id": format!("{}/agentPools/{}/upgradeProfiles/default", self.cluster_id(c), spec.name),
            "name": "default",
            "type": "Microsoft.ContainerService/managedClusters/agentPools/upgradeProfiles",
            "properties": {
                "kubernetesVersion": s.cluster.kubernetes_version,
                "osType": if spec.os_type == OsType::Linux { "Linux" } else { "Windows" },
                "latestNodeImageVersion": latest,
                "upgrades": next_minor(&s.cluster.kubernetes_version).map(|v| vec![json!({"kubernetesVersion": v})]).unwrap_or_default(),
            },
        })
    }

    fn vm_resource_id(&self, c: Cluster, n: &NodeSpec) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Compute/virtualMachineScaleSets/{}/virtualMachines/{}",
            self.sub(),
            self.node_rg(c),
            model::vmss_name(&self.shared.scenario, n),
            n.instance
        )
    }

    fn machine_json(&self, c: Cluster, n: &NodeSpec) -> Value {
        let mut v = json!({
            "id": format!("{}/agentPools/{}/machines/{}", self.cluster_id(c), n.pool, n.name),
            "name": n.name,
            "type": "Microsoft.ContainerService/managedClusters/agentPools/machines",
            "properties": {
                "network": {"ipAddresses": [{"family": "IPv4", "ip": n.ip.to_string()}]},
                "resourceId": self.vm_resource_id(c, n),
            },
        });
        if let Some(z) = &n.zone {
            v["zones"] = json!([z]);
        }
        v
    }

    fn maintenance_configs(&self, c: Cluster) -> Vec<Value> {
        if !matches!(c, Cluster::Main) {
            return vec![];
        }
        if let Some(configs) = &self.shared.scenario.cluster.maintenance_configurations {
            return configs
                .iter()
                .map(|m| {
                    json!({
                        "id": format!("{}/maintenanceConfigurations/{}", self.cluster_id(c), m.name),
                        "name": m.name,
                        "type": "Microsoft.ContainerService/managedClusters/maintenanceConfigurations",
                        "properties": {"maintenanceWindow": m.maintenance_window},
                    })
                })
                .collect();
        }
        let start = crate::time::days_ago(self.shared.scenario.cluster.age_days)
            .strftime("%Y-%m-%d")
            .to_string();
        vec![json!({
            "id": format!("{}/maintenanceConfigurations/aksManagedNodeOSUpgradeSchedule", self.cluster_id(c)),
            "name": "aksManagedNodeOSUpgradeSchedule",
            "type": "Microsoft.ContainerService/managedClusters/maintenanceConfigurations",
            "properties": {
                "maintenanceWindow": {
                    "schedule": {"weekly": {"intervalWeeks": 1, "dayOfWeek": "Sunday"}},
                    "durationHours": 4,
                    "utcOffset": "+00:00",
                    "startDate": start,
                    "startTime": "02:00",
                    "notAllowedDates": [],
                }
            },
        })]
    }

    fn credentials(&self, c: Cluster, admin: bool) -> Response {
        if !matches!(c, Cluster::Main) {
            return arm_error(
                StatusCode::BAD_REQUEST,
                "OperationNotAllowed",
                format!(
                    "Managed cluster '{}' is stopped: start it with `az aks start` before getting its credentials.",
                    self.cluster_name(c)
                ),
            );
        }
        let s = &self.shared.scenario;
        if admin && s.cluster.disable_local_accounts {
            return arm_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "Getting static credential is not allowed because this cluster is set to disable local accounts.",
            );
        }
        let format = self
            .query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("format"))
            .map(|(_, v)| v.as_str());
        let kubeconfig = match format {
            Some(f) if !f.eq_ignore_ascii_case("exec") && !f.eq_ignore_ascii_case("azure") => {
                return arm_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidParameter",
                    format!("The value '{f}' of parameter 'format' is invalid: it must be 'azure' or 'exec'."),
                )
            }
            // `format` applies to Entra ID clusters only; the admin credential is always static.
            _ if admin || !s.is_entra() => crate::kubeconfig(self.shared, admin),
            // Kubernetes ≥ 1.24: exec (kubelogin) is the default.
            Some(f) if f.eq_ignore_ascii_case("azure") => crate::entra_kubeconfig(self.shared, false),
            _ => crate::entra_kubeconfig(self.shared, true),
        };
        let value = base64::engine::general_purpose::STANDARD.encode(kubeconfig);
        ok(json!({"kubeconfigs": [{"name": if admin { "clusterAdmin" } else { "clusterUser" }, "value": value}]}))
    }

    /// The scale sets in a (node) resource group, with their machines.
    fn vmss_in(&self, rg: &str) -> Vec<(String, Vec<&'a NodeSpec>)> {
        let mut out: Vec<(String, Vec<&NodeSpec>)> = vec![];
        if !rg.eq_ignore_ascii_case(&self.node_rg(Cluster::Main)) {
            return out;
        }
        for n in &self.shared.nodes {
            let v = model::vmss_name(&self.shared.scenario, n);
            match out.iter_mut().find(|(name, _)| *name == v) {
                Some((_, list)) => list.push(n),
                None => out.push((v, vec![n])),
            }
        }
        out
    }

    fn vmss_json(&self, rg: &str, vmss: &str, nodes: &[&NodeSpec]) -> Value {
        let s = &self.shared.scenario;
        let spec = nodes.first().map(|n| &s.pools[n.pool_index]);
        json!({
            "id": format!("/subscriptions/{}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachineScaleSets/{vmss}", self.sub()),
            "name": vmss,
            "type": "Microsoft.Compute/virtualMachineScaleSets",
            "location": s.cluster.location,
            "sku": {"name": spec.map(|p| p.vm_size.clone()), "tier": "Standard", "capacity": nodes.len()},
            "tags": {"aks-managed-poolName": spec.map(|p| p.name.clone()), "aks-managed-orchestrator": format!("Kubernetes:{}", s.cluster.kubernetes_version)},
            "properties": {
                "provisioningState": "Succeeded",
                "orchestrationMode": "Uniform",
                "upgradePolicy": {"mode": "Manual"},
                "uniqueId": stable_uuid(&format!("{rg}/{vmss}")),
                "singlePlacementGroup": false,
                "overprovision": false,
                "doNotRunExtensionsOnOverprovisionedVMs": false,
                "platformFaultDomainCount": 1,
                "virtualMachineProfile": nodes.first().map(|n| self.vmss_model(rg, vmss, n)),
                "timeCreated": crate::time::rfc3339_millis(crate::time::days_ago(s.cluster.age_days)),
            },
        })
    }

    /// The scale set's model (`properties.virtualMachineProfile`): what each instance is
    /// built from. `osProfile.computerNamePrefix` is the node names' prefix (a node's name is
    /// the prefix and its instance number in six digits), so clients map node names to
    /// instances with it; the rest is the instance's own profile without per-VM fields.
    fn vmss_model(&self, rg: &str, vmss: &str, n: &NodeSpec) -> Value {
        let vm = self.vmss_vm_json(rg, vmss, n);
        let p = &vm["properties"];
        let mut os = p["osProfile"].clone();
        if let Some(o) = os.as_object_mut() {
            o.remove("computerName");
            o.remove("requireGuestProvisionSignal");
            o.insert(
                "computerNamePrefix".into(),
                json!(model::vmss_name(&self.shared.scenario, n)),
            );
        }
        let mut storage = p["storageProfile"].clone();
        if let Some(d) = storage["osDisk"].as_object_mut() {
            d.remove("name");
        }
        let nics = &p["networkProfileConfiguration"]["networkInterfaceConfigurations"];
        json!({
            "osProfile": os,
            "storageProfile": storage,
            "networkProfile": {"networkInterfaceConfigurations": nics},
            "extensionProfile": {"extensions": []},
            "priority": "Regular",
            "securityProfile": {"encryptionAtHost": false},
        })
    }

    fn vmss_vm_json(&self, rg: &str, vmss: &str, n: &NodeSpec) -> Value {
        let s = &self.shared.scenario;
        let linux = n.is_linux();
        let base = format!(
            "/subscriptions/{}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachineScaleSets/{vmss}/virtualMachines/{}",
            self.sub(),
            n.instance
        );
        let (gallery, image) = if linux {
            ("AKSUbuntu", "2204gen2containerd")
        } else {
            ("AKSWindows", "windows-2022-containerd")
        };
        let image_version = n.node_image_version.rsplit('-').next().unwrap_or_default().to_string();
        let os_profile = if linux {
            json!({
                "computerName": n.name,
                "adminUsername": s.cluster.admin_username,
                "linuxConfiguration": {
                    "disablePasswordAuthentication": true,
                    "ssh": {"publicKeys": ssh_public_key(&self.shared.state_dir).into_iter().map(|k| json!({
                        "path": format!("/home/{}/.ssh/authorized_keys", s.cluster.admin_username),
                        "keyData": k,
                    })).collect::<Vec<_>>()},
                    "provisionVMAgent": true,
                    "enableVMAgentPlatformUpdates": false,
                },
                "secrets": [],
                "allowExtensionOperations": true,
                "requireGuestProvisionSignal": true,
            })
        } else {
            json!({
                "computerName": n.name,
                "adminUsername": s.cluster.admin_username,
                "windowsConfiguration": {"provisionVMAgent": true, "enableAutomaticUpdates": false, "enableVMAgentPlatformUpdates": false},
                "secrets": [],
                "allowExtensionOperations": true,
                "requireGuestProvisionSignal": true,
            })
        };
        let mut v = json!({
            "id": base,
            "name": format!("{vmss}_{}", n.instance),
            "type": "Microsoft.Compute/virtualMachineScaleSets/virtualMachines",
            "location": s.cluster.location,
            "instanceId": n.instance.to_string(),
            "sku": {"name": n.vm_size, "tier": "Standard"},
            "tags": {"aks-managed-poolName": n.pool},
            "properties": {
                "latestModelApplied": true,
                "modelDefinitionApplied": "VirtualMachineScaleSet",
                "vmId": stable_uuid(&format!("{}/vmid", n.name)),
                "hardwareProfile": {"vmSize": n.vm_size},
                "storageProfile": {
                    "imageReference": {
                        "id": format!("/subscriptions/109a5e88-712a-48ae-9078-9ca8b3c81345/resourceGroups/AKS-{gallery}/providers/Microsoft.Compute/galleries/{gallery}/images/{image}/versions/{image_version}"),
                    },
                    "osDisk": {
                        "osType": if linux { "Linux" } else { "Windows" },
                        "name": format!("{vmss}_{}_OsDisk_1_{}", n.instance, &stable_hex(&n.name)[..32]),
                        "createOption": "FromImage",
                        "caching": "ReadOnly",
                        "managedDisk": {"storageAccountType": "Premium_LRS"},
                        "diskSizeGB": 128,
                    },
                    "dataDisks": [],
                },
                "osProfile": os_profile,
                "networkProfile": {
                    "networkInterfaces": [{
                        "id": format!("{base}/networkInterfaces/{vmss}"),
                        "properties": {"primary": true},
                    }]
                },
                "networkProfileConfiguration": {
                    "networkInterfaceConfigurations": [{
                        "name": vmss,
                        "properties": {
                            "primary": true,
                            "enableAcceleratedNetworking": linux,
                            "enableIPForwarding": true,
                            "ipConfigurations": [{
                                "name": "ipconfig1",
                                "properties": {
                                    "primary": true,
                                    "privateIPAddressVersion": "IPv4",
                                    "subnet": {"id": format!("/subscriptions/{}/resourceGroups/{rg}/providers/Microsoft.Network/virtualNetworks/aks-vnet-{}/subnets/aks-subnet", self.sub(), &stable_hex(rg)[..8])},
                                }
                            }],
                        }
                    }]
                },
                "provisioningState": "Succeeded",
                "timeCreated": crate::time::rfc3339_millis(crate::time::days_ago(s.cluster.age_days)),
            },
        });
        if let Some(z) = &n.zone {
            v["zones"] = json!([z]);
        }
        let expand = self
            .query
            .iter()
            .any(|(k, val)| k.eq_ignore_ascii_case("$expand") && val.eq_ignore_ascii_case("instanceView"));
        if expand {
            v["properties"]["instanceView"] = crate::runcmd::instance_view(self.shared, &n.name, &n.os_image);
        }
        v
    }
}

fn ok(body: Value) -> Response {
    (StatusCode::OK, axum::Json(body)).into_response()
}

fn subscription_json(s: &Shared) -> Value {
    json!({
        "id": format!("/subscriptions/{}", s.scenario.subscription_id),
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "subscriptionId": s.scenario.subscription_id,
        "tenantId": s.scenario.tenant_id,
        "displayName": SUBSCRIPTION_NAME,
        "state": "Enabled",
        "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01", "quotaId": "PayAsYouGo_2014-09-01", "spendingLimit": "Off"},
    })
}

fn list_subscriptions(s: &Shared) -> Response {
    ok(json!({"value": [subscription_json(s)], "count": {"type": "Total", "value": 1}}))
}

/// The node image a pool runs: from its nodes (which follow the scenario), else the spec.
fn pool_node_image(spec: &crate::scenario::PoolSpec, first: Option<&NodeSpec>) -> String {
    first
        .map(|n| n.node_image_version.clone())
        .or_else(|| spec.node_image_version.clone())
        .unwrap_or_else(|| "AKSUbuntu-2204gen2containerd-202501.12.0".into())
}

/// The versions a cluster can upgrade to: the newest patches of its minor and the next one.
fn upgrade_targets(version: &str) -> Vec<String> {
    let mut it = version.split('.');
    let (Some(Ok(major)), Some(Ok(minor)), Some(Ok(patch))) = (
        it.next().map(str::parse::<u32>),
        it.next().map(str::parse::<u32>),
        it.next().map(str::parse::<u32>),
    ) else {
        return vec![];
    };
    vec![
        format!("{major}.{minor}.{}", patch + 2),
        format!("{major}.{}.2", minor + 1),
        format!("{major}.{}.5", minor + 1),
    ]
}

fn previous_minor(version: &str) -> Option<String> {
    let mut it = version.split('.');
    let major: u32 = it.next()?.parse().ok()?;
    let minor: u32 = it.next()?.parse().ok()?;
    Some(format!("{major}.{}.9", minor.checked_sub(1)?))
}

fn next_minor(version: &str) -> Option<String> {
    let mut it = version.split('.');
    let major: u32 = it.next()?.parse().ok()?;
    let minor: u32 = it.next()?.parse().ok()?;
    Some(format!("{major}.{}.0", minor + 1))
}

fn ssh_public_key(state_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(state_dir.join("ssh").join("id_ed25519.pub")).ok()?;
    let key = text.trim();
    (!key.is_empty()).then(|| key.to_string())
}

fn decode_skip_token(tok: &str) -> Option<usize> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(tok).ok()?;
    String::from_utf8(raw).ok()?.strip_prefix("offset=")?.parse().ok()
}

/// `application/x-www-form-urlencoded` pairs (a query string or a form body).
fn parse_pairs(s: &str) -> Vec<(String, String)> {
    match reqwest::Url::parse(&format!("http://x/?{s}")) {
        Ok(u) => u.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect(),
        Err(_) => vec![],
    }
}

// ----- Entra ID -----

fn entra_error(status: StatusCode, error: &str, code: u32, description: &str) -> Response {
    let now = jiff::Timestamp::now();
    let trace = uuid::Uuid::new_v4();
    let correlation = uuid::Uuid::new_v4();
    (
        status,
        axum::Json(json!({
            "error": error,
            "error_description": format!(
                "AADSTS{code}: {description} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {}",
                now.strftime("%Y-%m-%d %H:%M:%SZ")
            ),
            "error_codes": [code],
            "timestamp": now.strftime("%Y-%m-%d %H:%M:%SZ").to_string(),
            "trace_id": trace.to_string(),
            "correlation_id": correlation.to_string(),
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        })),
    )
        .into_response()
}

fn is_arm_audience(scope: &str) -> bool {
    let s = scope.trim_end_matches("/.default").trim_end_matches('/');
    ARM_AUDIENCES.iter().any(|a| s.eq_ignore_ascii_case(a))
}

/// `6dae42f8-…/.default` (or its `api://` form): the AKS Entra server application.
fn is_aks_audience(scope: &str) -> bool {
    let s = scope.trim_end_matches("/.default").trim_end_matches('/');
    let s = s.strip_prefix("api://").unwrap_or(s);
    s.eq_ignore_ascii_case(crate::AKS_SERVER_APP)
}

/// `POST /{tenant}/oauth2/v2.0/token` with the client credentials grant.
fn token_endpoint(shared: &Shared, tenant: &str, body: &[u8]) -> Response {
    let form = parse_pairs(&String::from_utf8_lossy(body));
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if !tenant.eq_ignore_ascii_case(&shared.scenario.tenant_id) {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
        );
    }
    if field("grant_type") != Some("client_credentials") {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type: aks-sim supports client_credentials only.",
        );
    }
    let Some(client_id) = field("client_id").filter(|c| !c.is_empty()) else {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        );
    };
    let Some(scope) = field("scope").filter(|c| !c.is_empty()) else {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.",
        );
    };
    if !scope.ends_with("/.default") {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            &format!("The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."),
        );
    }
    if !client_id.eq_ignore_ascii_case(&shared.tokens.client_id) {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant."),
        );
    }
    match (field("client_secret"), field("client_assertion")) {
        (Some(secret), _) => {
            if secret != shared.tokens.client_secret {
                return entra_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    7000215,
                    &format!("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."),
                );
            }
        }
        (None, Some(assertion)) => {
            let expected = federated_token(shared);
            if field("client_assertion_type") != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
                || assertion.trim() != expected
            {
                return entra_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    700211,
                    "No matching federated identity record found for presented assertion issuer. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion.",
                );
            }
        }
        (None, None) => {
            return entra_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            )
        }
    }
    if scope.split(' ').count() == 1 && is_aks_audience(scope) {
        let lifetime = shared.scenario.timing.token_lifetime_seconds;
        let (token, _) = shared.tokens.issue_entra(crate::AKS_SERVER_APP, client_id, lifetime);
        return ok(json!({
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": token,
        }));
    }
    if scope.split(' ').any(|s| !is_arm_audience(s)) {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            500011,
            &format!("The resource principal named {scope} was not found in the tenant named {tenant}. aks-sim issues tokens for Azure Resource Manager (https://management.azure.com/.default) and the AKS server application (6dae42f8-4368-4678-94ff-3960e28e3630/.default) only."),
        );
    }
    ok(json!({
        "token_type": "Bearer",
        "expires_in": SECONDS_PER_TOKEN,
        "ext_expires_in": SECONDS_PER_TOKEN,
        "access_token": shared.tokens.issue_arm(),
    }))
}

fn openid_configuration(shared: &Shared, tenant: &str) -> Response {
    let base = &shared.endpoints().arm_url;
    ok(json!({
        "token_endpoint": format!("{base}/{tenant}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{base}/{tenant}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{base}/{}/v2.0", shared.scenario.tenant_id),
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{base}/{tenant}/oauth2/v2.0/logout"),
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "tid"],
        "tenant_region_scope": "EU",
        "cloud_instance_name": "aks-sim.local",
    }))
}

// ----- the state dir: az stand-in, service principal, federated token -----

/// The workload identity's federated (service account) token the Entra endpoint accepts as
/// `client_assertion`. Derived from the client secret so it needs no state of its own.
fn federated_token(shared: &Shared) -> String {
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
        json!({
            "aud": ["api://AzureADTokenExchange"],
            "iss": format!("{}/oidc", shared.endpoints().kube_url),
            "sub": "system:serviceaccount:kube-system:aks-patch",
        })
        .to_string(),
    );
    let sig = &stable_hex(&shared.tokens.client_secret)[..43];
    format!("{header}.{claims}.{sig}")
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    // Write beside, then rename: a reader never sees a half-written file.
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn az_dir(shared: &Shared) -> std::path::PathBuf {
    shared.state_dir.join("az")
}

/// Write the current ARM token where the `az` stand-in reads it, issuing a fresh one when
/// none is valid (after the expired-token fault). Called by [`crate::Shared::apply_fault`].
pub fn refresh_az_token(shared: &Shared) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::os::unix::fs::PermissionsExt;
    let mut token = shared.tokens.current_arm();
    if token.is_empty() {
        token = shared.tokens.issue_arm();
    }
    let dir = az_dir(shared);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    let path = dir.join("access-token");
    write_private(&path, &token).with_context(|| format!("cannot write {}", path.display()))
}

/// Keep a valid token for the AKS server application where the `az` stand-in reads it
/// (`<state-dir>/az/aks-token`: `TOKEN EXPIRES_ON`), issuing a new one, as the Azure CLI does,
/// once the current one has lived half its lifetime. Returns whether it issued one.
pub fn refresh_az_aks_token(shared: &Shared) -> anyhow::Result<bool> {
    use anyhow::Context;
    let lifetime = shared.scenario.timing.token_lifetime_seconds;
    let now = crate::time::unix_now();
    let mut slot = shared.tokens.cli_aks.lock().unwrap_or_else(|p| p.into_inner());
    if slot.as_ref().is_some_and(|(_, exp)| exp - now > (lifetime / 2) as i64) {
        return Ok(false);
    }
    let (token, exp) = shared.tokens.issue_entra(crate::AKS_SERVER_APP, CLI_USER, lifetime);
    let dir = az_dir(shared);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("aks-token");
    write_private(&path, &format!("{token} {exp}\n")).with_context(|| format!("cannot write {}", path.display()))?;
    *slot = Some((token, exp));
    Ok(true)
}

/// Renew the `az` stand-in's AKS token for as long as the emulator runs.
pub async fn run_az_aks_token(shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.clone();
    loop {
        if let Err(e) = refresh_az_aks_token(&shared) {
            tracing::warn!("cannot renew the az stand-in's AKS token: {e:#}");
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Write the stand-in `az` into `<state-dir>/bin/az`, its token file, the service
/// principal (`<state-dir>/sp.json`) and the federated token (`<state-dir>/federated-token`).
pub fn write_az_standin(shared: &Shared) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::os::unix::fs::PermissionsExt;
    let d = &shared.state_dir;
    refresh_az_token(shared)?;
    refresh_az_aks_token(shared)?;

    let fed = d.join("federated-token");
    write_private(&fed, &federated_token(shared)).with_context(|| format!("cannot write {}", fed.display()))?;
    let ep = shared.endpoints();
    let sp = json!({
        "clientId": shared.tokens.client_id,
        "clientSecret": shared.tokens.client_secret,
        "tenantId": shared.scenario.tenant_id,
        "subscriptionId": shared.scenario.subscription_id,
        "authorityHost": ep.arm_url,
        "federatedTokenFile": fed.display().to_string(),
    });
    let sp_path = d.join("sp.json");
    write_private(&sp_path, &serde_json::to_string_pretty(&sp)?)
        .with_context(|| format!("cannot write {}", sp_path.display()))?;

    let bin = d.join("bin");
    std::fs::create_dir_all(&bin).with_context(|| format!("cannot create {}", bin.display()))?;
    let script = AZ_SCRIPT
        .replace(
            "@TOKEN_FILE@",
            &sh_quote(&az_dir(shared).join("access-token").display().to_string()),
        )
        .replace(
            "@AKS_TOKEN_FILE@",
            &sh_quote(&az_dir(shared).join("aks-token").display().to_string()),
        )
        .replace("@SUB@", &sh_quote(&shared.scenario.subscription_id))
        .replace("@SUB_NAME@", &sh_quote(SUBSCRIPTION_NAME))
        .replace("@TENANT@", &sh_quote(&shared.scenario.tenant_id))
        .replace("@USER@", &sh_quote(CLI_USER));
    let az = bin.join("az");
    let tmp = bin.join("az.tmp");
    std::fs::write(&tmp, script).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&tmp, &az).with_context(|| format!("cannot write {}", az.display()))?;
    Ok(())
}

/// The Azure CLI stand-in. Values in `@...@` are filled in shell-quoted.
const AZ_SCRIPT: &str = r#"#!/bin/sh
# Stand-in for the Azure CLI, written by aks-sim: it knows one signed-in account (the
# emulator's subscription) and two commands, `az account get-access-token` and
# `az account show`. Anything else fails as the real CLI does for an unknown command.
TOKEN_FILE=@TOKEN_FILE@
AKS_TOKEN_FILE=@AKS_TOKEN_FILE@
SUB=@SUB@
SUB_NAME=@SUB_NAME@
TENANT=@TENANT@
USER_NAME=@USER@

err() { echo "ERROR: $*" >&2; exit 1; }

if [ $# -lt 2 ] || [ "$1" != account ]; then
    err "'$*' is misspelled or not recognized by the system. aks-sim's az stand-in knows 'az account get-access-token' and 'az account show'."
fi
cmd=$2
shift 2
case "$cmd" in get-access-token|show) ;; *)
    err "'account $cmd' is misspelled or not recognized by the system." ;;
esac

output=json query= scope= resource= tenant= subscription=
while [ $# -gt 0 ]; do
    case "$1" in
        --only-show-errors|--verbose|--debug) shift; continue ;;
    esac
    [ $# -ge 2 ] || err "argument $1: expected one argument"
    case "$1" in
        -o|--output) output=$2 ;;
        --query) query=$2 ;;
        --scope|--scopes) scope=$2 ;;
        --resource) resource=$2 ;;
        -t|--tenant) tenant=$2 ;;
        -s|--subscription|--name|-n) subscription=$2 ;;
        *) err "unrecognized arguments: $1" ;;
    esac
    shift 2
done

case "$output" in json|jsonc|tsv) ;; *) err "argument --output/-o: invalid choice: '$output' (aks-sim's stand-in supports json and tsv)" ;; esac
if [ -n "$subscription" ] && [ "$subscription" != "$SUB" ] && [ "$subscription" != "$SUB_NAME" ]; then
    err "Subscription '$subscription' not found. Check the spelling and casing and try again."
fi
[ -r "$TOKEN_FILE" ] || err "Please run 'az login' to setup account."

# print NAME VALUE-AS-JSON VALUE-AS-TSV: the whole object (json), or the field --query names.
emit() {
    if [ -z "$query" ]; then
        [ "$output" = tsv ] && err "aks-sim's stand-in prints tsv only with --query FIELD"
        printf '%s\n' "$1"
        return
    fi
    shift
    while [ $# -ge 3 ]; do
        if [ "$1" = "$query" ]; then
            if [ "$output" = tsv ]; then printf '%s\n' "$3"; else printf '%s\n' "$2"; fi
            return
        fi
        shift 3
    done
    err "aks-sim's stand-in cannot evaluate --query '$query' (only a top-level field name)"
}

case "$cmd" in
get-access-token)
    if [ -n "$tenant" ] && [ "$tenant" != "$TENANT" ]; then
        err "AADSTS90002: Tenant '$tenant' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Run 'az login --tenant $tenant' to sign in to it."
    fi
    aud=${scope:-${resource:-https://management.core.windows.net/}}
    aud=${aud%/.default}
    aud=${aud%/}
    now=$(date +%s)
    case "$aud" in
        https://management.azure.com|https://management.core.windows.net)
            token=$(cat "$TOKEN_FILE") || err "Please run 'az login' to setup account."
            exp=$((now + 3599)) ;;
        6dae42f8-4368-4678-94ff-3960e28e3630|api://6dae42f8-4368-4678-94ff-3960e28e3630)
            read -r token exp < "$AKS_TOKEN_FILE" || err "Please run 'az login' to setup account." ;;
        *) err "AADSTS500011: The resource principal named $aud was not found in the tenant named $TENANT. aks-sim issues tokens for Azure Resource Manager and the AKS server application only." ;;
    esac
    [ -n "$token" ] || err "Please run 'az login' to setup account."
    local_exp=$(date -d "@$exp" '+%Y-%m-%d %H:%M:%S.000000' 2>/dev/null || date '+%Y-%m-%d %H:%M:%S.000000')
    emit "{
  \"accessToken\": \"$token\",
  \"expiresOn\": \"$local_exp\",
  \"expires_on\": $exp,
  \"subscription\": \"$SUB\",
  \"tenant\": \"$TENANT\",
  \"tokenType\": \"Bearer\"
}" \
        accessToken "\"$token\"" "$token" \
        expiresOn "\"$local_exp\"" "$local_exp" \
        expires_on "$exp" "$exp" \
        subscription "\"$SUB\"" "$SUB" \
        tenant "\"$TENANT\"" "$TENANT" \
        tokenType '"Bearer"' Bearer
    ;;
show)
    emit "{
  \"environmentName\": \"AzureCloud\",
  \"homeTenantId\": \"$TENANT\",
  \"id\": \"$SUB\",
  \"isDefault\": true,
  \"managedByTenants\": [],
  \"name\": \"$SUB_NAME\",
  \"state\": \"Enabled\",
  \"tenantId\": \"$TENANT\",
  \"user\": {
    \"name\": \"$USER_NAME\",
    \"type\": \"user\"
  }
}" \
        id "\"$SUB\"" "$SUB" \
        name "\"$SUB_NAME\"" "$SUB_NAME" \
        tenantId "\"$TENANT\"" "$TENANT" \
        homeTenantId "\"$TENANT\"" "$TENANT" \
        isDefault true true \
        state '"Enabled"' Enabled \
        environmentName '"AzureCloud"' AzureCloud
    ;;
esac
"#;
