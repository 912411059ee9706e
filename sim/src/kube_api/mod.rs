//! The emulated Kubernetes API server: discovery, CRUD, list (selectors, paging),
//! watch, patch (merge, strategic merge, JSON patch, apply), server-side Tables for
//! kubectl, graceful pod deletion and the `pods/eviction` subresource, all answering
//! with real `Status` objects and resourceVersions. Every request first consumes a
//! pending `kube-error` fault, then needs a valid bearer token.

pub mod attach;
pub mod defaults;
pub mod discovery;
pub mod events_v1;
pub mod eviction;
pub mod exec;
pub mod logs;
pub mod managed;
pub mod openapi;
pub mod patch;
pub mod printers;
pub mod reviews;
pub mod validation;
pub mod watch;

use crate::events::kinds;
use crate::objects::pods::{self, DeleteOpts};
use crate::objects::{selector, status};
use crate::rbac;
use crate::server::ResetConnection;
use crate::store::{self, Resource};
use crate::tokens;
use crate::Shared;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use printers::IncludeObject;
use selector::{FieldSelector, LabelSelector};
use serde_json::{json, Value};
use status::{json_response, typed_response, ApiError};
use std::sync::Arc;
use std::time::Duration;

/// The largest request body taken.
const MAX_BODY: usize = 8 << 20;
/// Watches without `timeoutSeconds` end after this long (the apiserver's default is 30-60 min).
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

pub fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new()
        .fallback(handle)
        .with_state(shared)
        .layer(axum::middleware::from_fn(audit_id))
}

/// Every answer carries `Audit-Id`, as kube-apiserver's: the request's own `Audit-Id` when it
/// sent a valid one (clients use it to correlate), else a fresh UUID.
async fn audit_id(req: Request, next: axum::middleware::Next) -> Response {
    let id = req
        .headers()
        .get("audit-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let mut resp = next.run(req).await;
    if let Ok(v) = axum::http::HeaderValue::from_str(&id) {
        resp.headers_mut().insert("audit-id", v);
    }
    resp
}

/// How the client wants objects rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Json,
    Table {
        version: &'static str,
        include: IncludeObject,
    },
    Meta {
        version: &'static str,
    },
}

fn negotiate(headers: &HeaderMap, q: &Query) -> Output {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    for media in accept.split(',') {
        let mut parts = media.split(';').map(str::trim);
        let ty = parts.next().unwrap_or("").to_ascii_lowercase();
        let (mut as_, mut v, mut g) = ("", "", "");
        for p in parts {
            match p.split_once('=') {
                Some(("as", x)) => as_ = x,
                Some(("v", x)) => v = x,
                Some(("g", x)) => g = x,
                _ => {}
            }
        }
        let version = if v == "v1beta1" { "v1beta1" } else { "v1" };
        if ty != "application/json" && ty != "*/*" && ty != "application/*" {
            continue;
        }
        match as_ {
            "" => return Output::Json,
            "Table" if g == "meta.k8s.io" => {
                return Output::Table {
                    version,
                    include: IncludeObject::parse(q.get("includeObject")),
                }
            }
            "PartialObjectMetadata" | "PartialObjectMetadataList" if g == "meta.k8s.io" => {
                return Output::Meta { version }
            }
            _ => continue,
        }
    }
    Output::Json
}

/// Query parameters in order.
pub struct Query(pub(crate) Vec<(String, String)>);

impl Query {
    pub(crate) fn parse(uri: &axum::http::Uri) -> Result<Query, ApiError> {
        axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map(|q| Query(q.0))
            .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
    }

    fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true") | Some("1"))
    }

    fn int(&self, k: &str) -> Result<Option<i64>, ApiError> {
        match self.get(k) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ApiError::bad_request(format!("{k}: `{v}` is not an integer"))),
        }
    }

    /// `?dryRun=All`; any other value is refused as the API server refuses it.
    fn dry_run(&self) -> bool {
        self.0.iter().any(|(k, v)| k == "dryRun" && v == "All")
    }

    /// The `dryRun` query values, checked (`All` is the only one there is).
    fn check_dry_run(&self, options_kind: &str) -> Result<(), ApiError> {
        let values: Vec<&str> = self
            .0
            .iter()
            .filter(|(k, _)| k == "dryRun")
            .map(|(_, v)| v.as_str())
            .collect();
        check_dry_run_values(&values, options_kind)
    }
}

/// `dryRun` may only hold `All` (the API server's ValidateDryRun).
fn check_dry_run_values(values: &[&str], options_kind: &str) -> Result<(), ApiError> {
    if values.iter().all(|v| *v == "All") {
        return Ok(());
    }
    let list = values.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>().join(", ");
    let why = format!("Unsupported value: []string{{{list}}}: supported values: \"All\"");
    Err(ApiError::new(
        422,
        "Invalid",
        format!("{options_kind}.meta.k8s.io \"\" is invalid: dryRun: {why}"),
    )
    .with_details(json!({
        "group": "meta.k8s.io", "kind": options_kind,
        "causes": [{"reason": "FieldValueNotSupported", "message": why, "field": "dryRun"}],
    })))
}

/// `dryRun` in a DeleteOptions body (also an Eviction's `deleteOptions`): true for `["All"]`.
pub fn body_dry_run(options: &Value) -> Result<bool, ApiError> {
    match &options["dryRun"] {
        Value::Null => Ok(false),
        Value::Array(a) => {
            let values: Vec<&str> = a.iter().map(|v| v.as_str().unwrap_or("")).collect();
            check_dry_run_values(&values, "DeleteOptions")?;
            Ok(!values.is_empty())
        }
        _ => Err(ApiError::bad_request(
            "the DeleteOptions body is not valid: dryRun must be a list of strings",
        )),
    }
}

async fn handle(State(s): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    if let Some(code) = s.faults.take_kube() {
        tracing::debug!(method = %parts.method, path = parts.uri.path(), code, "kube fault injected");
        if code == 0 {
            let mut r = StatusCode::OK.into_response();
            r.extensions_mut().insert(ResetConnection);
            return r;
        }
        return ApiError::injected(code).into_response();
    }
    let path = parts.uri.path().to_string();
    if matches!(path.as_str(), "/healthz" | "/livez" | "/readyz") {
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "ok",
        )
            .into_response();
    }
    let Some(id) = identity(&s, &parts.headers) else {
        return ApiError::unauthorized().into_response();
    };
    if let Some((ns, pod)) = logs::route(&path) {
        return logs::handle(&s, &id, &parts.method, &parts.uri, ns, pod).await;
    }
    if let Some((ns, pod)) = attach::route(&path) {
        return attach::handle(&s, &id, parts, ns, pod).await;
    }
    if let Some((ns, pod)) = exec::route(&path) {
        let resp = exec::handle(&s, &id, parts, ns, pod).await;
        tracing::debug!(path = %path, status = resp.status().as_u16(), "kube api exec");
        return resp;
    }
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            return ApiError::new(
                413,
                "RequestEntityTooLarge",
                format!("cannot read the request body: {e}"),
            )
            .into_response()
        }
    };
    let resp = match dispatch(&s, &id, &parts.method, &parts.uri, &parts.headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    tracing::debug!(method = %parts.method, path = %path, status = resp.status().as_u16(), "kube api");
    resp
}

/// The identity a request's bearer token authenticates as.
fn identity(s: &Shared, headers: &HeaderMap) -> Option<rbac::Identity> {
    let v = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())?;
    let (scheme, token) = v.trim().split_once(' ')?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || s.tokens.expired_by_fault(token) {
        return None;
    }
    if let Some(checked) = s.tokens.check_entra(token) {
        return entra_identity(s, checked);
    }
    if s.tokens.arm_valid(token) {
        s.events.record(
            kinds::KUBE_UNAUTHORIZED,
            None,
            None,
            "an Azure Resource Manager token (audience https://management.azure.com), not one for the AKS server application",
        );
        return None;
    }
    s.tokens.kube_identity(token, &s.scenario.access)
}

/// Who an Entra token authenticates as, on a cluster with AKS-managed Entra ID: the
/// scenario's restricted user when `access.user` is set, else the token's principal with
/// every permission (as with `Azure Kubernetes Service RBAC Cluster Admin`). The first use of
/// each token, and every refusal, goes to the event log (by number, never the token).
fn entra_identity(
    s: &Shared,
    checked: Result<(tokens::EntraToken, bool), (tokens::EntraToken, tokens::EntraRefusal)>,
) -> Option<rbac::Identity> {
    let (t, first) = match checked {
        Ok(ok) => ok,
        Err((t, why)) => {
            let reason = match why {
                tokens::EntraRefusal::Expired => format!("entra token #{} of {} has expired", t.seq, t.principal),
                tokens::EntraRefusal::WrongAudience => {
                    format!(
                        "entra token #{} is for audience {}, not the AKS server application",
                        t.seq, t.audience
                    )
                }
            };
            s.events.record(kinds::KUBE_UNAUTHORIZED, None, None, reason);
            return None;
        }
    };
    if !s.scenario.is_entra() {
        s.events.record(
            kinds::KUBE_UNAUTHORIZED,
            None,
            None,
            format!("entra token #{}: this cluster has no Entra ID integration", t.seq),
        );
        return None;
    }
    if first {
        s.events.record(
            kinds::KUBE_TOKEN,
            None,
            None,
            format!(
                "entra token #{} of {} (expires at {})",
                t.seq, t.principal, t.expires_on
            ),
        );
    }
    Some(match &s.scenario.access.user {
        Some(u) => tokens::user_identity(u),
        None => rbac::Identity {
            username: t.principal.clone(),
            groups: vec!["system:authenticated".into()],
            role: if s.scenario.cluster.aad_profile.is_some_and(|a| a.enable_azure_rbac) {
                "Azure Kubernetes Service RBAC Cluster Admin".into()
            } else {
                "cluster-admin".into()
            },
            rules: None,
        },
    })
}

/// The authorizer attributes of a request to a resource path.
fn attributes(method: &Method, t: &Target, q: &Query) -> rbac::Attributes {
    let watching = t.watch_path || q.flag("watch");
    let verb = match (method.clone(), t.name.is_some()) {
        (Method::GET, _) if watching => "watch",
        (Method::GET, true) => "get",
        (Method::GET, false) => "list",
        (Method::POST, _) => "create",
        (Method::PUT, _) => "update",
        (Method::PATCH, _) => "patch",
        (Method::DELETE, true) => "delete",
        (Method::DELETE, false) => "deletecollection",
        (m, _) => {
            return rbac::Attributes {
                verb: m.as_str().to_lowercase(),
                ..Default::default()
            }
        }
    };
    // A namespace is its own namespace, for the authorizer.
    let namespace = match (&t.ns, t.res == store::NAMESPACES) {
        (Some(ns), _) => ns.clone(),
        (None, true) => t.name.clone().unwrap_or_default(),
        (None, false) => String::new(),
    };
    rbac::Attributes {
        verb: verb.into(),
        resource: Some(rbac::ResourceAttrs {
            group: t.res.group.into(),
            resource: t.res.plural.into(),
            subresource: t.sub.clone().unwrap_or_default(),
            namespace,
            name: t.name.clone().unwrap_or_default(),
        }),
        path: String::new(),
    }
}

/// 403 Forbidden unless the identity may do this.
fn authorize(id: &rbac::Identity, a: &rbac::Attributes) -> Result<(), ApiError> {
    if rbac::authorize(id, a).0 {
        return Ok(());
    }
    Err(ApiError::new(403, "Forbidden", rbac::forbidden_message(id, a)).with_details(rbac::forbidden_details(a)))
}

/// 403 Forbidden unless `id` may `verb` the `subresource` (exec, attach, log) of pod `ns/pod`.
pub fn authorize_subresource(
    id: &crate::rbac::Identity,
    verb: &str,
    ns: &str,
    pod: &str,
    subresource: &str,
) -> Result<(), ApiError> {
    authorize(
        id,
        &crate::rbac::Attributes {
            verb: verb.into(),
            resource: Some(crate::rbac::ResourceAttrs {
                group: String::new(),
                resource: "pods".into(),
                subresource: subresource.into(),
                namespace: ns.to_string(),
                name: pod.to_string(),
            }),
            path: String::new(),
        },
    )
}

/// What a resource path names.
#[derive(Debug)]
struct Target {
    res: Resource,
    ns: Option<String>,
    name: Option<String>,
    sub: Option<String>,
    /// `/api/v1/watch/...` (deprecated form).
    watch_path: bool,
}

enum Route {
    Version,
    ApiRoot,
    Apis,
    Group(String),
    GroupVersion(String, String),
    Target(Target),
    NotFound,
}

fn route(path: &str) -> Route {
    let segs: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    match segs.as_slice() {
        ["version"] => Route::Version,
        ["api"] => Route::ApiRoot,
        ["apis"] => Route::Apis,
        ["api", v] => Route::GroupVersion(String::new(), v.to_string()),
        ["apis", g] => Route::Group(g.to_string()),
        ["apis", g, v] => Route::GroupVersion(g.to_string(), v.to_string()),
        ["api", v, rest @ ..] => target("", v, rest),
        ["apis", g, v, rest @ ..] => target(g, v, rest),
        _ => Route::NotFound,
    }
}

fn target(group: &str, version: &str, rest: &[&str]) -> Route {
    let (watch_path, rest) = match rest {
        ["watch", r @ ..] => (true, r),
        r => (false, r),
    };
    let ns_res = match rest {
        ["namespaces", ns, plural, tail @ ..] => Resource::by_plural(group, version, plural)
            .filter(|r| r.namespaced)
            .map(|r| (r, Some(ns.to_string()), tail)),
        _ => None,
    };
    let (res, ns, tail) = match ns_res {
        Some(x) => x,
        None => match rest {
            [plural, tail @ ..] => match Resource::by_plural(group, version, plural) {
                Some(r) => (r, None, tail),
                None => return Route::NotFound,
            },
            _ => return Route::NotFound,
        },
    };
    if tail.len() > 2 || (res.namespaced && ns.is_none() && !tail.is_empty()) {
        return Route::NotFound;
    }
    Route::Target(Target {
        res,
        ns,
        name: tail.first().map(|s| s.to_string()),
        sub: tail.get(1).map(|s| s.to_string()),
        watch_path,
    })
}

async fn dispatch(
    s: &Arc<Shared>,
    id: &rbac::Identity,
    method: &Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let q = Query::parse(uri)?;
    if let Some(kind) = reviews::route(uri.path()) {
        if method != Method::POST {
            return Err(ApiError::method_not_allowed(method.as_str()));
        }
        return reviews::review(id, kind, &body);
    }
    if let Some(doc) = openapi::route(uri.path()) {
        let a = rbac::Attributes {
            verb: method.as_str().to_lowercase(),
            resource: None,
            path: uri.path().to_string(),
        };
        authorize(id, &a)?;
        if method != Method::GET {
            return Err(ApiError::method_not_allowed(method.as_str()));
        }
        let v = &s.scenario.cluster.kubernetes_version;
        return match doc {
            openapi::Doc::Index => Ok(json_response(StatusCode::OK, &openapi::index(v))),
            openapi::Doc::GroupVersion(g, ver) => openapi::group_version(&g, &ver, v)
                .map(|d| json_response(StatusCode::OK, &d))
                .ok_or_else(ApiError::path_not_found),
        };
    }
    let r = route(uri.path());
    match &r {
        Route::Target(t) => authorize(id, &attributes(method, t, &q))?,
        _ => authorize(
            id,
            &rbac::Attributes {
                verb: method.as_str().to_lowercase(),
                resource: None,
                path: uri.path().to_string(),
            },
        )?,
    }
    let get_only = |v: Option<Value>| -> Result<Response, ApiError> {
        if method != Method::GET {
            return Err(ApiError::method_not_allowed(method.as_str()));
        }
        match v {
            Some(v) => Ok(json_response(StatusCode::OK, &v)),
            None => Err(ApiError::path_not_found()),
        }
    };
    match r {
        Route::Version => get_only(Some(discovery::version(s))),
        Route::ApiRoot => get_only(Some(discovery::api_versions(s))),
        Route::Apis => get_only(Some(discovery::api_group_list())),
        Route::Group(g) => get_only(discovery::api_group(&g)),
        Route::GroupVersion(g, v) => get_only(discovery::resource_list(&g, &v)),
        Route::NotFound => Err(ApiError::path_not_found()),
        Route::Target(t) => resource(s, method, t, &q, headers, body).await,
    }
}

fn sub_allowed(res: &Resource, sub: &str) -> bool {
    match sub {
        "status" => store::has_status(res),
        "eviction" => *res == store::PODS,
        "scale" => *res == store::DEPLOYMENTS || *res == store::REPLICASETS || *res == store::STATEFULSETS,
        _ => false,
    }
}

async fn resource(
    s: &Arc<Shared>,
    method: &Method,
    t: Target,
    q: &Query,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if let Some(sub) = &t.sub {
        if !sub_allowed(&t.res, sub) {
            return Err(ApiError::path_not_found());
        }
    }
    if events_v1::is_alias(&t.res) {
        return Box::pin(events_v1::serve(s, method, t, q, headers, body)).await;
    }
    let output = negotiate(headers, q);
    let ns = t.ns.as_deref();
    let sub = t.sub.as_deref();
    match *method {
        Method::POST => q.check_dry_run("CreateOptions")?,
        Method::PUT => q.check_dry_run("UpdateOptions")?,
        Method::PATCH => q.check_dry_run("PatchOptions")?,
        Method::DELETE => q.check_dry_run("DeleteOptions")?,
        _ => {}
    }
    let watching = t.watch_path || q.flag("watch");
    match (method.clone(), t.name.as_deref(), sub) {
        (Method::GET, None, None) if watching => start_watch(s, &t, q, output, None),
        (Method::GET, None, None) => list(s, &t, q, output),
        (Method::GET, Some(name), None | Some("status")) if watching => start_watch(s, &t, q, output, Some(name)),
        (Method::GET, Some(name), None | Some("status")) => {
            let obj = s
                .store
                .get(t.res, ns, name)
                .ok_or_else(|| ApiError::not_found(&t.res, name))?;
            Ok(render_one(&t.res, &obj, output, StatusCode::OK))
        }
        (Method::GET, Some(name), Some("scale")) => {
            let obj = s
                .store
                .get(t.res, ns, name)
                .ok_or_else(|| ApiError::not_found(&t.res, name))?;
            Ok(json_response(StatusCode::OK, &scale_of(&obj)))
        }
        (Method::POST, None, None) => create(s, &t, q, headers, &body),
        (Method::POST, Some(name), Some("eviction")) => {
            let ns = ns.unwrap_or("default");
            eviction::serve(s, ns, name, &body, q.dry_run())
        }
        (Method::PUT, Some(name), None | Some("status")) => update(s, &t, name, q, headers, &body),
        (Method::PATCH, Some(name), None | Some("status")) => patch(s, &t, name, q, headers, &body),
        (Method::PUT | Method::PATCH, Some(name), Some("scale")) => scale_write(s, &t, name, method, q, headers, &body),
        (Method::DELETE, Some(name), None) => delete(s, &t, name, q, &body),
        (Method::DELETE, None, None) => delete_collection(s, &t, q, &body),
        _ => Err(ApiError::method_not_allowed(method.as_str())),
    }
}

/// One object in the negotiated form.
fn render_one(res: &Resource, obj: &Value, output: Output, code: StatusCode) -> Response {
    match output {
        Output::Json => json_response(code, obj),
        Output::Table { version, include } => {
            let rv = obj["metadata"]["resourceVersion"].clone();
            let t = printers::table(
                res,
                std::slice::from_ref(obj),
                include,
                true,
                version,
                json!({"resourceVersion": rv}),
            );
            typed_response(
                code,
                &format!("application/json;as=Table;v={version};g=meta.k8s.io"),
                &t,
            )
        }
        Output::Meta { version } => typed_response(
            code,
            &format!("application/json;as=PartialObjectMetadata;v={version};g=meta.k8s.io"),
            &printers::partial_metadata(obj, version),
        ),
    }
}

fn object_key(obj: &Value) -> (String, String) {
    (
        obj["metadata"]["namespace"].as_str().unwrap_or("").to_string(),
        obj["metadata"]["name"].as_str().unwrap_or("").to_string(),
    )
}

fn selectors(q: &Query, res: &Resource) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("invalid labelSelector: {e}")))?;
    let fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("invalid fieldSelector: {e}")))?
        .for_resource(res)
        .map_err(ApiError::bad_request)?;
    Ok((labels, fields))
}

/// A continue token as kube-apiserver's: the list's resourceVersion and the key after which
/// the next page starts. `rv` -1 (given with a 410 for a token that is too old) continues at
/// the latest state.
fn encode_continue(rv: i64, last: &(String, String)) -> String {
    let start = format!("{}/{}\u{0}", last.0, last.1);
    let token = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": start});
    base64::engine::general_purpose::STANDARD.encode(token.to_string())
}

fn decode_continue(token: &str) -> Result<(i64, (String, String)), ApiError> {
    let bad =
        |why: &str| ApiError::bad_request(format!("invalid continue token: {why}; list again without `continue`"));
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| bad("not base64"))?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad("not a continue token"))?;
    let rv = v["rv"]
        .as_i64()
        .filter(|rv| *rv == -1 || *rv > 0)
        .ok_or_else(|| bad("no resourceVersion"))?;
    let start = v["start"].as_str().ok_or_else(|| bad("no start key"))?;
    let start = start.trim_end_matches('\u{0}');
    let (ns, name) = start.split_once('/').ok_or_else(|| bad("malformed start key"))?;
    Ok((rv, (ns.to_string(), name.to_string())))
}

/// Which state a list reads, from `resourceVersion`, `resourceVersionMatch` and `continue`,
/// checked as kube-apiserver checks them (ValidateListOptions: 422 on the ListOptions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListRead {
    /// The latest state (no resourceVersion, `0`, or a continue token's -1).
    Latest,
    /// At least this fresh (`resourceVersion=N`, alone or with `NotOlderThan`).
    NotOlderThan(u64),
    /// Exactly this state (`resourceVersionMatch=Exact`, or a continue token's resourceVersion).
    Exact(u64),
}

fn list_read(q: &Query) -> Result<ListRead, ApiError> {
    let rv = q.get("resourceVersion").filter(|v| !v.is_empty());
    let matching = q.get("resourceVersionMatch").filter(|v| !v.is_empty());
    let cont = q.get("continue").filter(|v| !v.is_empty());
    if let Some(m) = matching {
        let mut why: Vec<(&str, String)> = vec![];
        if rv.is_none() {
            why.push((
                "FieldValueForbidden",
                "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided".into(),
            ));
        }
        if cont.is_some() {
            why.push((
                "FieldValueForbidden",
                "Forbidden: resourceVersionMatch is forbidden when continue is provided".into(),
            ));
        }
        if m != "Exact" && m != "NotOlderThan" {
            why.push((
                "FieldValueNotSupported",
                format!("Unsupported value: {m:?}: supported values: \"Exact\", \"NotOlderThan\", \"\""),
            ));
        }
        if m == "Exact" && rv == Some("0") {
            why.push((
                "FieldValueForbidden",
                "Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"".into(),
            ));
        }
        if !why.is_empty() {
            let errs: Vec<String> = why.iter().map(|(_, m)| format!("resourceVersionMatch: {m}")).collect();
            let joined = if errs.len() == 1 {
                errs[0].clone()
            } else {
                format!("[{}]", errs.join(", "))
            };
            let causes: Vec<Value> = why
                .iter()
                .map(|(reason, m)| json!({"reason": reason, "message": m, "field": "resourceVersionMatch"}))
                .collect();
            return Err(ApiError::new(
                422,
                "Invalid",
                format!("ListOptions.meta.k8s.io \"\" is invalid: {joined}"),
            )
            .with_details(json!({"group": "meta.k8s.io", "kind": "ListOptions", "causes": causes})));
        }
    }
    if let Some(token) = cont {
        if rv.is_some_and(|v| v != "0") {
            return Err(ApiError::bad_request(
                "specifying resource version is not allowed when using continue",
            ));
        }
        let (trv, _) = decode_continue(token)?;
        return Ok(if trv < 0 {
            ListRead::Latest
        } else {
            ListRead::Exact(trv as u64)
        });
    }
    let Some(v) = rv.filter(|v| *v != "0") else {
        return Ok(ListRead::Latest);
    };
    let n = v
        .parse::<u64>()
        .map_err(|_| ApiError::bad_request(format!("resourceVersion: `{v}` is not a valid resourceVersion")))?;
    Ok(match matching {
        Some("Exact") => ListRead::Exact(n),
        _ => ListRead::NotOlderThan(n),
    })
}

/// 410 Expired for a list at a state older than the store keeps (the compaction point): for a
/// continue token, with a token that continues at the latest state (an inconsistent list), as
/// kube-apiserver's `handleCompactedErrorForPaging`.
fn list_expired(continue_from: Option<&(String, String)>) -> Response {
    let mut body = ApiError::new(410, "Expired", "The resourceVersion for the provided list is too old.").body();
    if let Some(start) = continue_from {
        body["message"] = json!(CONTINUE_EXPIRED);
        body["metadata"]["continue"] = json!(encode_continue(-1, start));
    }
    json_response(StatusCode::GONE, &body)
}

const CONTINUE_EXPIRED: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

fn list(s: &Arc<Shared>, t: &Target, q: &Query, output: Output) -> Result<Response, ApiError> {
    let (labels, fields) = selectors(q, &t.res)?;
    let limit = q.int("limit")?.filter(|l| *l > 0).map(|l| l as usize);
    let read = list_read(q)?;
    let start = match q.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => Some(decode_continue(token)?.1),
        None => None,
    };
    let (current, current_rv) = s.store.list_at(t.res, t.ns.as_deref());
    let too_large = |n: u64| {
        ApiError::new(
            504,
            "Timeout",
            format!("Too large resource version: {n}, current: {current_rv}"),
        )
        .with_details(json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1}))
    };
    let (items, list_rv) = match read {
        ListRead::Latest => (current, current_rv),
        ListRead::NotOlderThan(n) if n > current_rv => return Err(too_large(n)),
        ListRead::NotOlderThan(_) => (current, current_rv),
        ListRead::Exact(n) if n > current_rv => return Err(too_large(n)),
        ListRead::Exact(n) => match s.store.list_exact(t.res, t.ns.as_deref(), n) {
            Some(items) => (items, n),
            None => return Ok(list_expired(start.as_ref())),
        },
    };
    let mut items: Vec<Value> = items
        .into_iter()
        .filter(|o| labels.matches(&o["metadata"]["labels"]) && fields.matches(o))
        .collect();
    if let Some(start) = &start {
        items.retain(|o| object_key(o) > *start);
    }
    let mut meta = json!({"resourceVersion": list_rv.to_string()});
    if let Some(limit) = limit {
        if items.len() > limit {
            let remaining = items.len() - limit;
            items.truncate(limit);
            let last = object_key(items.last().expect("limit > 0"));
            meta["continue"] = json!(encode_continue(list_rv as i64, &last));
            if labels.is_empty() && fields.is_empty() {
                meta["remainingItemCount"] = json!(remaining);
            }
        }
    }
    Ok(match output {
        Output::Json => json_response(
            StatusCode::OK,
            &json!({"kind": format!("{}List", t.res.kind), "apiVersion": t.res.api_version(), "metadata": meta, "items": items}),
        ),
        Output::Table { version, include } => typed_response(
            StatusCode::OK,
            &format!("application/json;as=Table;v={version};g=meta.k8s.io"),
            &printers::table(&t.res, &items, include, true, version, meta),
        ),
        Output::Meta { version } => typed_response(
            StatusCode::OK,
            &format!("application/json;as=PartialObjectMetadataList;v={version};g=meta.k8s.io"),
            &json!({
                "kind": "PartialObjectMetadataList",
                "apiVersion": format!("meta.k8s.io/{version}"),
                "metadata": meta,
                "items": items.iter().map(|o| printers::partial_metadata(o, version)).collect::<Vec<_>>(),
            }),
        ),
    })
}

fn start_watch(
    s: &Arc<Shared>,
    t: &Target,
    q: &Query,
    output: Output,
    name: Option<&str>,
) -> Result<Response, ApiError> {
    let (labels, mut fields) = selectors(q, &t.res)?;
    if let Some(name) = name {
        let extra = format!("metadata.name={name}");
        let combined = match q.get("fieldSelector").filter(|f| !f.is_empty()) {
            Some(f) => format!("{f},{extra}"),
            None => extra,
        };
        fields = FieldSelector::parse(&combined)
            .and_then(|f| f.for_resource(&t.res))
            .map_err(ApiError::bad_request)?;
    }
    let since = match q.get("resourceVersion") {
        None | Some("") | Some("0") => None,
        Some(v) => Some(
            v.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("resourceVersion: `{v}` is not a valid resourceVersion")))?,
        ),
    };
    let timeout = q
        .int("timeoutSeconds")?
        .filter(|t| *t > 0)
        .map(|t| Duration::from_secs(t as u64))
        .unwrap_or(DEFAULT_WATCH_TIMEOUT);
    let req = watch::WatchRequest {
        res: t.res,
        ns: t.ns.clone(),
        labels,
        fields,
        since,
        timeout,
        bookmarks: q.flag("allowWatchBookmarks"),
        send_initial_events: q.flag("sendInitialEvents"),
        output,
    };
    Ok(watch::serve(s.clone(), req))
}

fn check_json_body(headers: &HeaderMap) -> Result<(), ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if mime == "application/json" || mime.is_empty() || mime == "*/*" {
        Ok(())
    } else {
        Err(ApiError::unsupported_media_type(ct))
    }
}

/// Fields that must be JSON objects when present (the controllers and the store write
/// into them).
const OBJECT_FIELDS: &[&str] = &[
    "/spec",
    "/status",
    "/metadata/labels",
    "/metadata/annotations",
    "/spec/nodeSelector",
    "/spec/selector",
    "/spec/selector/matchLabels",
    "/spec/template",
    "/spec/template/metadata",
    "/spec/template/metadata/labels",
    "/spec/template/metadata/annotations",
    "/spec/template/spec",
    "/spec/template/spec/nodeSelector",
    "/status/disruptedPods",
    "/status/nodeInfo",
];
/// Fields that must be arrays of objects when present.
const OBJECT_LIST_FIELDS: &[&str] = &[
    "/metadata/ownerReferences",
    "/spec/containers",
    "/spec/tolerations",
    "/spec/taints",
    "/spec/volumes",
    "/spec/template/spec/containers",
    "/spec/template/spec/tolerations",
    "/status/conditions",
    "/status/containerStatuses",
    "/status/addresses",
];

/// Refuse object shapes the emulator cannot work with (what the API server's schema
/// validation would refuse too).
fn validate_shape(obj: &Value) -> Result<(), String> {
    if !obj.is_object() {
        return Err("the object must be a JSON object".into());
    }
    if !obj["metadata"].is_object() {
        return Err("metadata: Required value: must be an object".into());
    }
    let field = |p: &str| p.trim_start_matches('/').replace('/', ".");
    for p in OBJECT_FIELDS {
        if let Some(v) = obj.pointer(p) {
            if !v.is_object() && !v.is_null() {
                return Err(format!("{}: Invalid value: must be an object", field(p)));
            }
        }
    }
    for p in OBJECT_LIST_FIELDS {
        if let Some(v) = obj.pointer(p) {
            let ok = v.is_null() || v.as_array().is_some_and(|a| a.iter().all(Value::is_object));
            if !ok {
                return Err(format!("{}: Invalid value: must be a list of objects", field(p)));
            }
        }
    }
    if let Some(f) = obj.pointer("/metadata/finalizers") {
        if !f.is_null() && !f.as_array().is_some_and(|a| a.iter().all(Value::is_string)) {
            return Err("metadata.finalizers: Invalid value: must be a list of strings".into());
        }
    }
    Ok(())
}

fn parse_object(body: &[u8], res: &Resource) -> Result<Value, ApiError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body of the request is not a valid {} object: {e}",
            res.kind
        ))
    })?;
    if !v.is_object() {
        return Err(ApiError::bad_request(format!(
            "the body of the request must be a {} object",
            res.kind
        )));
    }
    if v.get("metadata").is_some_and(|m| !m.is_object() && !m.is_null()) {
        return Err(ApiError::bad_request("metadata must be an object"));
    }
    if let Some(k) = v["kind"].as_str().filter(|k| !k.is_empty()) {
        if k != res.kind {
            return Err(ApiError::bad_request(format!(
                "the kind of the object ({k}) does not match the resource ({}: kind {})",
                store::Resource::api_version(res),
                res.kind
            )));
        }
    }
    Ok(v)
}

fn set_namespace(obj: &mut Value, ns: Option<&str>, res: &Resource) -> Result<(), ApiError> {
    if !res.namespaced {
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        return Ok(());
    }
    let Some(ns) = ns else {
        return Err(ApiError::path_not_found());
    };
    match obj["metadata"]["namespace"].as_str() {
        Some(n) if !n.is_empty() && n != ns => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => {
            if !obj["metadata"].is_object() {
                obj["metadata"] = json!({});
            }
            obj["metadata"]["namespace"] = json!(ns);
            Ok(())
        }
    }
}

/// Defaults and status resets the API server applies to new objects.
fn prepare_for_create(res: &Resource, obj: &mut Value) {
    if let Some(m) = obj["metadata"].as_object_mut() {
        for k in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            m.remove(k);
        }
    }
    match res.plural {
        "pods" => {
            let spec = &mut obj["spec"];
            for (k, v) in [
                ("restartPolicy", json!("Always")),
                ("terminationGracePeriodSeconds", json!(30)),
                ("dnsPolicy", json!("ClusterFirst")),
                ("schedulerName", json!("default-scheduler")),
                ("serviceAccountName", json!("default")),
                ("securityContext", json!({})),
                ("enableServiceLinks", json!(true)),
                ("priority", json!(0)),
                ("preemptionPolicy", json!("PreemptLowerPriority")),
            ] {
                if spec.get(k).is_none() {
                    spec[k] = v;
                }
            }
            let mut tol = spec["tolerations"].as_array().cloned().unwrap_or_default();
            for key in ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"] {
                if !tol.iter().any(|t| t["key"] == key) {
                    tol.push(
                        json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}),
                    );
                }
            }
            spec["tolerations"] = json!(tol);
            obj["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
        }
        "namespaces" => {
            let name = obj["metadata"]["name"].clone();
            if !obj["metadata"]["labels"].is_object() {
                obj["metadata"]["labels"] = json!({});
            }
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
            obj["status"] = json!({"phase": "Active"});
        }
        "deployments" | "replicasets" | "daemonsets" | "poddisruptionbudgets" | "cronjobs" => {
            obj["status"] = json!({});
        }
        "statefulsets" => {
            let spec = &mut obj["spec"];
            for (k, v) in [
                ("replicas", json!(1)),
                ("podManagementPolicy", json!("OrderedReady")),
                (
                    "updateStrategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
                ),
                ("revisionHistoryLimit", json!(10)),
            ] {
                if spec.get(k).is_none() {
                    spec[k] = v;
                }
            }
            obj["status"] = json!({"replicas": 0, "availableReplicas": 0});
        }
        "jobs" => {
            // The API server selects the Job's pods by its uid, which it assigns now.
            let uid = uuid::Uuid::new_v4().to_string();
            let name = obj["metadata"]["name"].clone();
            obj["metadata"]["uid"] = json!(uid);
            let spec = &mut obj["spec"];
            for (k, v) in [
                ("completions", json!(1)),
                ("parallelism", json!(1)),
                ("backoffLimit", json!(6)),
                ("completionMode", json!("NonIndexed")),
                ("suspend", json!(false)),
            ] {
                if spec.get(k).is_none() {
                    spec[k] = v;
                }
            }
            if spec["selector"].is_null() {
                spec["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
                if !spec["template"]["metadata"]["labels"].is_object() {
                    spec["template"]["metadata"]["labels"] = json!({});
                }
                let labels = &mut spec["template"]["metadata"]["labels"];
                labels["batch.kubernetes.io/controller-uid"] = json!(uid);
                labels["controller-uid"] = json!(uid);
                labels["batch.kubernetes.io/job-name"] = name.clone();
                labels["job-name"] = name;
            }
            obj["status"] = json!({});
        }
        "secrets" if obj["type"].is_null() => obj["type"] = json!("Opaque"),
        "services" => {
            let spec = &mut obj["spec"];
            if spec["type"].is_null() {
                spec["type"] = json!("ClusterIP");
            }
            if spec["clusterIP"].is_null() {
                let ip = service_ip();
                spec["clusterIP"] = json!(ip);
                spec["clusterIPs"] = json!([ip]);
            }
            for (k, v) in [
                ("sessionAffinity", json!("None")),
                ("ipFamilies", json!(["IPv4"])),
                ("ipFamilyPolicy", json!("SingleStack")),
                ("internalTrafficPolicy", json!("Cluster")),
            ] {
                if spec.get(k).is_none() {
                    spec[k] = v;
                }
            }
            if let Some(ports) = spec["ports"].as_array_mut() {
                for p in ports {
                    if p["protocol"].is_null() {
                        p["protocol"] = json!("TCP");
                    }
                    if p["targetPort"].is_null() {
                        p["targetPort"] = p["port"].clone();
                    }
                }
            }
            obj["status"] = json!({"loadBalancer": {}});
        }
        _ => {}
    }
}

/// A ClusterIP from AKS's default service CIDR (10.0.0.0/16; 10.0.0.10 is kube-dns).
fn service_ip() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = 20 + NEXT.fetch_add(1, Ordering::Relaxed) % 65000;
    format!("10.0.{}.{}", n / 250, 1 + n % 250)
}

fn record_lease(s: &Shared, obj: &Value, verb: &str) {
    let holder = obj["spec"]["holderIdentity"].as_str().unwrap_or("");
    s.events.record(
        kinds::LEASE,
        None,
        Some(&pods::key(obj)),
        format!("{verb} holder={holder}"),
    );
}

/// Who writes, for `metadata.managedFields`.
fn writer(q: &Query, headers: &HeaderMap, t: &Target) -> managed::Writer {
    let ua = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok());
    managed::Writer::of(q.get("fieldManager"), ua, &t.res, t.sub.as_deref())
}

/// `ValidatePatchOptions`: apply needs a field manager, `force` is for apply only.
fn check_patch_options(pt: patch::PatchType, q: &Query) -> Result<(), ApiError> {
    let mut errs = vec![];
    if pt == patch::PatchType::Apply {
        if q.get("fieldManager").unwrap_or("").is_empty() {
            errs.push(validation::FieldError::required(
                "fieldManager",
                "is required for apply patch",
            ));
        }
    } else if q.get("force").is_some() {
        errs.push(validation::FieldError::forbidden(
            "force",
            "may not be specified for non-apply patch",
        ));
    }
    if errs.is_empty() {
        return Ok(());
    }
    Err(validation::invalid("meta.k8s.io", "PatchOptions", "", &errs))
}

/// The managedFields `cur` had before a write (clients cannot set them directly here).
fn keep_managed_fields(old: Option<&Value>, cur: &mut Value) {
    let Some(meta) = cur["metadata"].as_object_mut() else {
        return;
    };
    match old.map(|o| &o["metadata"]["managedFields"]).filter(|m| !m.is_null()) {
        Some(m) => {
            meta.insert("managedFields".into(), m.clone());
        }
        None => {
            meta.remove("managedFields");
        }
    }
}

fn create(s: &Arc<Shared>, t: &Target, q: &Query, headers: &HeaderMap, body: &[u8]) -> Result<Response, ApiError> {
    check_json_body(headers)?;
    let obj = parse_object(body, &t.res)?;
    create_object(s, t, q, headers, obj, None)
}

/// Create `obj`; `applied`: by server-side apply of this writer (else an `Update`).
fn create_object(
    s: &Arc<Shared>,
    t: &Target,
    q: &Query,
    headers: &HeaderMap,
    mut obj: Value,
    applied: Option<&managed::Writer>,
) -> Result<Response, ApiError> {
    set_namespace(&mut obj, t.ns.as_deref(), &t.res)?;
    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
    if t.res.namespaced {
        let ns = t.ns.as_deref().unwrap_or("default");
        match s.store.get(store::NAMESPACES, None, ns) {
            None => return Err(ApiError::not_found(&store::NAMESPACES, ns)),
            Some(n) if n["metadata"]["deletionTimestamp"].is_string() => {
                return Err(ApiError::new(
                    403,
                    "Forbidden",
                    format!(
                        "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                        status::qualified(&t.res)
                    ),
                )
                .with_details(json!({"name": name, "group": t.res.group, "kind": t.res.plural,
                    "causes": [{"reason": "NamespaceTerminating", "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace"}]})))
            }
            Some(_) => {}
        }
    }
    validate_shape(&obj).map_err(|e| ApiError::invalid(&t.res, &name, &e))?;
    let warnings = validate_fields(q, &t.res, &mut obj)?;
    keep_managed_fields(None, &mut obj);
    if let Some(w) = applied {
        obj = managed::apply(&t.res, None, &obj, w, false).map_err(|c| managed::conflict_error(&c))?;
    }
    prepare_for_create(&t.res, &mut obj);
    defaults::apply(t.res.plural, &mut obj);
    if applied.is_none() {
        managed::record_update(&t.res, None, &mut obj, &writer(q, headers, t));
    }
    validation::check(&t.res, &obj)?;
    if q.dry_run() {
        if !name.is_empty() && s.store.get(t.res, t.ns.as_deref(), &name).is_some() {
            return Err(ApiError::already_exists(&t.res, &name));
        }
        obj["apiVersion"] = json!(t.res.api_version());
        obj["kind"] = json!(t.res.kind);
        return Ok(with_warnings(json_response(StatusCode::CREATED, &obj), &warnings));
    }
    let created = s
        .store
        .create(t.res, obj)
        .map_err(|e| ApiError::from_store(&t.res, &name, e))?;
    if t.res == store::LEASES {
        record_lease(s, &created, "created");
    }
    Ok(with_warnings(json_response(StatusCode::CREATED, &created), &warnings))
}

/// Keep what a write to the main resource (or to `/status`) may not change.
fn merge_for_subresource(res: &Resource, sub: Option<&str>, old: &Value, new: &mut Value) {
    if sub == Some("status") {
        let st = new.get("status").cloned();
        *new = old.clone();
        match st {
            Some(st) => new["status"] = st,
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        }
        return;
    }
    if store::has_status(res) {
        match old.get("status") {
            Some(st) => new["status"] = st.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        }
    }
    // Only the API server sets these.
    for k in ["deletionTimestamp", "deletionGracePeriodSeconds", "generation"] {
        match old["metadata"].get(k) {
            Some(v) => new["metadata"][k] = v.clone(),
            None => {
                if let Some(m) = new["metadata"].as_object_mut() {
                    m.remove(k);
                }
            }
        }
    }
}

fn update(
    s: &Arc<Shared>,
    t: &Target,
    name: &str,
    q: &Query,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    check_json_body(headers)?;
    let mut obj = parse_object(body, &t.res)?;
    set_namespace(&mut obj, t.ns.as_deref(), &t.res)?;
    match obj["metadata"]["name"].as_str() {
        Some(n) if !n.is_empty() && n != name => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )))
        }
        _ => obj["metadata"]["name"] = json!(name),
    }
    validate_shape(&obj).map_err(|e| ApiError::invalid(&t.res, name, &e))?;
    let warnings = if t.sub.is_none() {
        validate_fields(q, &t.res, &mut obj)?
    } else {
        vec![]
    };
    let expected = obj["metadata"]["resourceVersion"]
        .as_str()
        .filter(|r| !r.is_empty())
        .map(str::to_string);
    let ns = t.ns.as_deref();
    let sub = t.sub.as_deref();
    if s.store.get(t.res, ns, name).is_none() {
        // Leases and events may be created by an update, as the API server allows.
        if (t.res == store::LEASES || t.res == store::EVENTS) && expected.is_none() && sub.is_none() {
            return create(s, t, q, headers, body);
        }
        return Err(ApiError::not_found(&t.res, name));
    }
    if expected.is_none() && !allows_unconditional_update(&t.res) {
        return Err(must_specify_resource_version(&t.res, name));
    }
    let w = writer(q, headers, t);
    if q.dry_run() {
        let cur = s
            .store
            .get(t.res, ns, name)
            .ok_or_else(|| ApiError::not_found(&t.res, name))?;
        if expected
            .as_deref()
            .is_some_and(|e| cur["metadata"]["resourceVersion"].as_str() != Some(e))
        {
            return Err(ApiError::from_store(
                &t.res,
                name,
                store::StoreError::Conflict {
                    plural: String::new(),
                    name: name.into(),
                },
            ));
        }
        merge_for_subresource(&t.res, sub, &cur, &mut obj);
        keep_managed_fields(Some(&cur), &mut obj);
        managed::record_update(&t.res, Some(&cur), &mut obj, &w);
        validation::check(&t.res, &obj)?;
        return Ok(with_warnings(json_response(StatusCode::OK, &obj), &warnings));
    }
    let refused = std::cell::RefCell::new(None);
    let updated = s
        .store
        .update_with(t.res, ns, name, expected.as_deref(), |cur| {
            let old = cur.clone();
            *cur = obj;
            merge_for_subresource(&t.res, sub, &old, cur);
            validate_shape(cur).map_err(store::StoreError::Invalid)?;
            keep_managed_fields(Some(&old), cur);
            managed::record_update(&t.res, Some(&old), cur, &w);
            refuse_invalid(&t.res, cur, &refused)
        })
        .map_err(|e| refused.take().unwrap_or_else(|| ApiError::from_store(&t.res, name, e)))?;
    if t.res == store::LEASES {
        record_lease(s, &updated, "updated");
    }
    Ok(with_warnings(json_response(StatusCode::OK, &updated), &warnings))
}

/// Validate an object inside a store update: the refusal is kept in `refused` (the
/// store's error only says that the closure failed).
fn refuse_invalid(
    res: &Resource,
    obj: &Value,
    refused: &std::cell::RefCell<Option<ApiError>>,
) -> Result<(), store::StoreError> {
    validation::check(res, obj).map_err(|e| {
        let msg = e.message.clone();
        *refused.borrow_mut() = Some(e);
        store::StoreError::Invalid(msg)
    })
}

/// Server-side field validation (`?fieldValidation=`, default `Warn`): unknown fields are
/// dropped from `obj`; with `Strict` they are a 400, with `Warn` warnings (returned, for
/// `Warning` headers). Strategic-merge directives (`$patch`, `$setElementOrder/...`) are
/// not fields.
fn validate_fields(q: &Query, res: &Resource, obj: &mut Value) -> Result<Vec<String>, ApiError> {
    let mode = q.get("fieldValidation").unwrap_or("Warn");
    if !matches!(mode, "Ignore" | "Warn" | "Strict") {
        return Err(ApiError::bad_request(format!(
            "fieldValidation: Unsupported value: \"{mode}\": supported values: \"Ignore\", \"Strict\", \"Warn\""
        )));
    }
    let unknown: Vec<String> = openapi::unknown_fields(res, obj)
        .into_iter()
        .filter(|f| !f.rsplit('.').next().unwrap_or("").starts_with('$'))
        .collect();
    if unknown.is_empty() || mode == "Ignore" {
        for f in &unknown {
            prune(obj, f);
        }
        return Ok(vec![]);
    }
    if mode == "Strict" {
        let list = unknown
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(ApiError::bad_request(format!(
            "{kind} in version \"{v}\" cannot be handled as a {kind}: strict decoding error: {list}",
            kind = res.kind,
            v = res.version
        )));
    }
    for f in &unknown {
        prune(obj, f);
    }
    Ok(unknown.iter().map(|f| format!("unknown field \"{f}\"")).collect())
}

/// Remove `a.b[0].c` from an object.
fn prune(obj: &mut Value, field: &str) {
    let mut pointer = String::new();
    for part in field.split('.') {
        match part.split_once('[') {
            Some((k, idx)) => {
                pointer.push('/');
                pointer.push_str(k);
                pointer.push('/');
                pointer.push_str(idx.trim_end_matches(']'));
            }
            None => {
                pointer.push('/');
                pointer.push_str(part);
            }
        }
    }
    let Some((parent, key)) = pointer.rsplit_once('/') else {
        return;
    };
    if let Some(m) = obj.pointer_mut(parent).and_then(Value::as_object_mut) {
        m.remove(key);
    }
}

/// Add `Warning: 299 - "..."` headers, as the API server does.
fn with_warnings(mut resp: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let v = format!("299 - {}", serde_json::Value::String(w.clone()));
        if let Ok(h) = axum::http::HeaderValue::from_str(&v) {
            resp.headers_mut().append("Warning", h);
        }
    }
    resp
}

/// Kinds whose update strategy refuses a PUT without `metadata.resourceVersion`
/// (`AllowUnconditionalUpdate() == false` in kube-apiserver): Leases, so that two lock
/// holders can never silently overwrite each other.
fn allows_unconditional_update(res: &Resource) -> bool {
    *res != store::LEASES
}

/// What the generic registry answers to such an update.
fn must_specify_resource_version(res: &Resource, name: &str) -> ApiError {
    let why = "Invalid value: 0x0: must be specified for an update";
    let qualified = status::qualified(res);
    ApiError::new(
        422,
        "Invalid",
        format!("{qualified} \"{name}\" is invalid: metadata.resourceVersion: {why}"),
    )
    .with_details(json!({
        "name": name, "group": res.group, "kind": res.plural,
        "causes": [{"reason": "FieldValueInvalid", "message": why, "field": "metadata.resourceVersion"}],
    }))
}

fn patch(
    s: &Arc<Shared>,
    t: &Target,
    name: &str,
    q: &Query,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let pt = patch::PatchType::from_content_type(ct).ok_or_else(|| ApiError::unsupported_media_type(ct))?;
    check_patch_options(pt, q)?;
    let mut p = patch::decode(pt, body).map_err(ApiError::bad_request)?;
    let warnings = if pt != patch::PatchType::Json && t.sub.is_none() && p.is_object() {
        validate_fields(q, &t.res, &mut p)?
    } else {
        vec![]
    };
    let ns = t.ns.as_deref();
    let sub = t.sub.as_deref();
    let w = writer(q, headers, t);
    let apply = pt == patch::PatchType::Apply;
    let force = q.flag("force");
    let expected = if pt == patch::PatchType::Json {
        None
    } else {
        p["metadata"]["resourceVersion"]
            .as_str()
            .filter(|r| !r.is_empty())
            .map(str::to_string)
    };
    if s.store.get(t.res, ns, name).is_none() {
        if apply && sub.is_none() {
            let mut obj = p.clone();
            if !obj.is_object() || !(obj["metadata"].is_object() || obj["metadata"].is_null()) {
                return Err(ApiError::bad_request(
                    "an applied configuration must be an object with object metadata",
                ));
            }
            obj["metadata"]["name"] = json!(name);
            return create_object(s, t, q, headers, obj, Some(&w));
        }
        return Err(ApiError::not_found(&t.res, name));
    }
    if apply && !p.is_object() {
        return Err(ApiError::bad_request("an applied configuration must be an object"));
    }
    let refused = std::cell::RefCell::new(None);
    let compute = |cur: &mut Value| -> Result<(), store::StoreError> {
        let old = cur.clone();
        if apply {
            match managed::apply(&t.res, Some(&old), &p, &w, force) {
                Ok(v) => *cur = v,
                Err(c) => {
                    let e = managed::conflict_error(&c);
                    let msg = e.message.clone();
                    *refused.borrow_mut() = Some(e);
                    return Err(store::StoreError::Invalid(msg));
                }
            }
        } else {
            patch::apply(pt, cur, &p).map_err(store::StoreError::Invalid)?;
        }
        validate_shape(cur).map_err(store::StoreError::Invalid)?;
        let recorded = cur["metadata"]["managedFields"].clone();
        merge_for_subresource(&t.res, sub, &old, cur);
        validate_shape(cur).map_err(store::StoreError::Invalid)?;
        if apply {
            cur["metadata"]["managedFields"] = recorded;
        } else {
            keep_managed_fields(Some(&old), cur);
            managed::record_update(&t.res, Some(&old), cur, &w);
        }
        refuse_invalid(&t.res, cur, &refused)
    };
    let fail = |e| refused.take().unwrap_or_else(|| ApiError::from_store(&t.res, name, e));
    if q.dry_run() {
        let mut cur = s
            .store
            .get(t.res, ns, name)
            .ok_or_else(|| ApiError::not_found(&t.res, name))?;
        compute(&mut cur).map_err(fail)?;
        return Ok(with_warnings(json_response(StatusCode::OK, &cur), &warnings));
    }
    let updated = s
        .store
        .update_with(t.res, ns, name, expected.as_deref(), compute)
        .map_err(fail)?;
    if t.res == store::LEASES {
        record_lease(s, &updated, "patched");
    }
    Ok(with_warnings(json_response(StatusCode::OK, &updated), &warnings))
}

/// The autoscaling/v1 Scale of a Deployment or ReplicaSet.
fn scale_of(obj: &Value) -> Value {
    let m = &obj["metadata"];
    let selector = selector::LabelSelector::from_object(&obj["spec"]["selector"])
        .map(|s| s.to_string_form())
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
            "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"],
        },
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
    })
}

fn scale_write(
    s: &Arc<Shared>,
    t: &Target,
    name: &str,
    method: &Method,
    q: &Query,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let ns = t.ns.as_deref();
    let cur = s
        .store
        .get(t.res, ns, name)
        .ok_or_else(|| ApiError::not_found(&t.res, name))?;
    let mut scale = scale_of(&cur);
    if method == Method::PUT {
        check_json_body(headers)?;
        scale = serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid Scale: {e}")))?;
    } else {
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let pt = patch::PatchType::from_content_type(ct).ok_or_else(|| ApiError::unsupported_media_type(ct))?;
        let p = patch::decode(pt, body).map_err(ApiError::bad_request)?;
        patch::apply(pt, &mut scale, &p).map_err(|e| ApiError::invalid(&t.res, name, &e))?;
    }
    let replicas = scale["spec"]["replicas"]
        .as_i64()
        .filter(|r| *r >= 0)
        .ok_or_else(|| ApiError::invalid(&t.res, name, "spec.replicas: must be a non-negative integer"))?;
    let expected = scale["metadata"]["resourceVersion"]
        .as_str()
        .filter(|r| !r.is_empty())
        .map(str::to_string);
    if q.dry_run() {
        let mut out = scale_of(&cur);
        out["spec"]["replicas"] = json!(replicas);
        return Ok(json_response(StatusCode::OK, &out));
    }
    let w = writer(q, headers, t);
    let updated = s
        .store
        .update_with(t.res, ns, name, expected.as_deref(), |o| {
            let old = o.clone();
            o["spec"]["replicas"] = json!(replicas);
            managed::record_update(&t.res, Some(&old), o, &w);
            Ok(())
        })
        .map_err(|e| ApiError::from_store(&t.res, name, e))?;
    Ok(json_response(StatusCode::OK, &scale_of(&updated)))
}

fn delete_opts(q: &Query, body: &[u8]) -> Result<DeleteOpts, ApiError> {
    let mut opts = DeleteOpts {
        grace: q.int("gracePeriodSeconds")?,
        ..Default::default()
    };
    if !body.iter().all(u8::is_ascii_whitespace) {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the DeleteOptions body is not valid JSON: {e}")))?;
        if let Some(g) = v["gracePeriodSeconds"].as_i64() {
            opts.grace = Some(g);
        }
        opts.uid = v["preconditions"]["uid"].as_str().map(str::to_string);
        opts.resource_version = v["preconditions"]["resourceVersion"].as_str().map(str::to_string);
        opts.dry_run = body_dry_run(&v)?;
    }
    opts.dry_run |= q.dry_run();
    Ok(opts)
}

fn delete_one(
    s: &Arc<Shared>,
    res: &Resource,
    ns: Option<&str>,
    name: &str,
    opts: &DeleteOpts,
) -> Result<Value, ApiError> {
    if *res == store::PODS {
        return pods::delete_pod(s, ns.unwrap_or("default"), name, opts);
    }
    let cur = s
        .store
        .get(*res, ns, name)
        .ok_or_else(|| ApiError::not_found(res, name))?;
    pods::check_preconditions(res, &cur, opts)?;
    if *res == store::NAMESPACES {
        // Terminating until the namespace controller has emptied it (controllers.rs).
        return s
            .store
            .update_with(*res, None, name, None, |o| {
                if o["metadata"]["deletionTimestamp"].is_null() {
                    o["metadata"]["deletionTimestamp"] = json!(crate::time::now_rfc3339());
                    o["metadata"]["deletionGracePeriodSeconds"] = json!(0);
                }
                o["status"]["phase"] = json!("Terminating");
                Ok(())
            })
            .map_err(|e| ApiError::from_store(res, name, e));
    }
    let removed = s
        .store
        .remove(*res, ns, name)
        .map_err(|e| ApiError::from_store(res, name, e))?;
    if *res == store::LEASES {
        record_lease(s, &removed, "deleted");
    }
    Ok(removed)
}

fn delete(s: &Arc<Shared>, t: &Target, name: &str, q: &Query, body: &[u8]) -> Result<Response, ApiError> {
    let opts = delete_opts(q, body)?;
    let ns = t.ns.as_deref();
    if opts.dry_run {
        let cur = s
            .store
            .get(t.res, ns, name)
            .ok_or_else(|| ApiError::not_found(&t.res, name))?;
        pods::check_preconditions(&t.res, &cur, &opts)?;
        return Ok(json_response(StatusCode::OK, &cur));
    }
    let obj = delete_one(s, &t.res, ns, name, &opts)?;
    Ok(json_response(StatusCode::OK, &obj))
}

fn delete_collection(s: &Arc<Shared>, t: &Target, q: &Query, body: &[u8]) -> Result<Response, ApiError> {
    let opts = delete_opts(q, body)?;
    let (labels, fields) = selectors(q, &t.res)?;
    let items: Vec<Value> = s
        .store
        .list(t.res, t.ns.as_deref())
        .into_iter()
        .filter(|o| labels.matches(&o["metadata"]["labels"]) && fields.matches(o))
        .collect();
    let mut deleted = vec![];
    for o in &items {
        let (ns, name) = object_key(o);
        let ns = if t.res.namespaced { Some(ns.as_str()) } else { None };
        if opts.dry_run {
            deleted.push(o.clone());
            continue;
        }
        match delete_one(s, &t.res, ns, &name, &opts) {
            Ok(v) => deleted.push(v),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({"kind": format!("{}List", t.res.kind), "apiVersion": t.res.api_version(),
                "metadata": {"resourceVersion": s.store.resource_version().to_string()}, "items": deleted}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(path: &str) -> Target {
        match route(path) {
            Route::Target(t) => t,
            _ => panic!("{path} is not a resource path"),
        }
    }

    #[test]
    fn routes() {
        let x = t("/api/v1/namespaces/kube-system/pods/p1/eviction");
        assert_eq!(x.res, store::PODS);
        assert_eq!(x.ns.as_deref(), Some("kube-system"));
        assert_eq!(x.name.as_deref(), Some("p1"));
        assert_eq!(x.sub.as_deref(), Some("eviction"));
        let x = t("/api/v1/namespaces/kube-system");
        assert_eq!(x.res, store::NAMESPACES);
        assert_eq!(x.name.as_deref(), Some("kube-system"));
        let x = t("/api/v1/namespaces/kube-system/status");
        assert_eq!(x.res, store::NAMESPACES);
        assert_eq!(x.sub.as_deref(), Some("status"));
        let x = t("/api/v1/pods");
        assert!(x.ns.is_none() && x.name.is_none());
        let x = t("/apis/coordination.k8s.io/v1/namespaces/default/leases/l");
        assert_eq!(x.res, store::LEASES);
        let x = t("/api/v1/nodes/n1/status");
        assert_eq!(x.sub.as_deref(), Some("status"));
        let x = t("/api/v1/namespaces/default/pods/a%3Ab");
        assert_eq!(x.name.as_deref(), Some("a:b"), "path segments are percent-decoded");
        let x = t("/api/v1/namespaces/default/pods/50%");
        assert_eq!(x.name.as_deref(), Some("50%"), "a lone % stays");
        let x = t("/api/v1/watch/nodes");
        assert!(x.watch_path);
        assert!(matches!(route("/api/v1/pods/p1"), Route::NotFound));
        assert!(matches!(route("/api/v1/widgets"), Route::NotFound));
        assert!(matches!(route("/apis/apps/v1"), Route::GroupVersion(..)));
        assert!(matches!(route("/version"), Route::Version));
        assert!(matches!(route("/foo"), Route::NotFound));
    }

    #[test]
    fn shapes_the_controllers_rely_on_are_enforced() {
        assert!(validate_shape(&json!({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "c"}]}})).is_ok());
        assert!(validate_shape(&json!({"metadata": "x"})).is_err());
        assert!(validate_shape(&json!(5)).is_err());
        let e = validate_shape(&json!({"metadata": {}, "spec": "x"})).unwrap_err();
        assert!(e.starts_with("spec:"), "{e}");
        let e = validate_shape(&json!({"metadata": {}, "status": {"conditions": ["Ready"]}})).unwrap_err();
        assert!(e.starts_with("status.conditions:"), "{e}");
        assert!(validate_shape(&json!({"metadata": {"labels": ["a"]}})).is_err());
        assert!(validate_shape(&json!({"metadata": {"finalizers": [1]}})).is_err());
    }

    #[test]
    fn continue_tokens_round_trip() {
        let k = ("kube-system".to_string(), "coredns-1".to_string());
        let tok = encode_continue(1234, &k);
        assert_eq!(decode_continue(&tok).unwrap(), (1234, k));
        assert_eq!(decode_continue("!!").unwrap_err().code, 400);
    }

    #[test]
    fn accept_negotiation() {
        let q = Query(vec![]);
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT,
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
                .parse()
                .unwrap(),
        );
        assert_eq!(
            negotiate(&h, &q),
            Output::Table {
                version: "v1",
                include: IncludeObject::Metadata
            }
        );
        h.insert(
            header::ACCEPT,
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
                .parse()
                .unwrap(),
        );
        assert_eq!(negotiate(&h, &q), Output::Json);
        h.insert(
            header::ACCEPT,
            "application/vnd.kubernetes.protobuf, */*".parse().unwrap(),
        );
        assert_eq!(negotiate(&h, &q), Output::Json);
    }
}
