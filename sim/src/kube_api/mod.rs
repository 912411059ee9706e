//! The emulated Kubernetes API server: discovery, CRUD, list (selectors, paging),
//! watch, patch (merge, strategic merge, JSON patch, apply), server-side Tables for
//! kubectl, graceful pod deletion and the `pods/eviction` subresource, all answering
//! with real `Status` objects and resourceVersions. Every request first consumes a
//! pending `kube-error` fault, then needs a valid bearer token.

pub mod attach;
mod auth;
pub mod defaults;
mod delete;
pub mod discovery;
pub mod events_v1;
pub mod eviction;
pub mod exec;
pub mod logs;
pub mod managed;
pub mod openapi;
pub mod patch;
pub mod printers;
mod read;
mod request;
pub mod reviews;
mod route;
mod scale;
mod shape;
pub mod token_request;
pub mod validation;
pub mod watch;
mod write;

pub use auth::authorize_subresource;
use auth::*;
use delete::*;
use read::*;
use request::*;
pub use request::{body_dry_run, Output, Query};
use route::*;
use scale::*;
use shape::*;
use write::*;

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
    let id = match authenticate(&s, &parts.headers) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    if let Some((ns, pod)) = pod_subresource(&path, "log") {
        return logs::handle(&s, &id, &parts.method, &parts.uri, ns, pod).await;
    }
    if let Some((ns, pod)) = pod_subresource(&path, "attach") {
        return attach::handle(&s, &id, parts, ns, pod).await;
    }
    if let Some((ns, pod)) = pod_subresource(&path, "exec") {
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
        (Method::POST, Some(name), Some("token")) => {
            token_request::serve(s, ns.unwrap_or("default"), name, &body, q.dry_run())
        }
        (Method::PUT, Some(name), None | Some("status")) => update(s, &t, name, q, headers, &body),
        (Method::PATCH, Some(name), None | Some("status")) => patch(s, &t, name, q, headers, &body),
        (Method::PUT | Method::PATCH, Some(name), Some("scale")) => scale_write(s, &t, name, method, q, headers, &body),
        (Method::DELETE, Some(name), None) => delete(s, &t, name, q, &body),
        (Method::DELETE, None, None) => delete_collection(s, &t, q, &body),
        _ => Err(ApiError::method_not_allowed(method.as_str())),
    }
}
