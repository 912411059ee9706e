//! `POST .../pods/{name}/eviction`: the Eviction body, checked as the API server checks it,
//! then the eviction itself ([`crate::objects::eviction`]), answered 201 Created.

use crate::objects::eviction;
use crate::objects::pods::DeleteOpts;
use crate::objects::status::{self, ApiError};
use crate::Shared;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};
use std::sync::Arc;

/// Evict a pod. A dry run (`?dryRun=All`, or `deleteOptions.dryRun: ["All"]` in the body, as
/// `kubectl drain --dry-run=server` sends it) makes every check, the budget's included, and
/// answers as the real eviction would, but spends no budget and deletes nothing.
pub fn serve(shared: &Arc<Shared>, ns: &str, name: &str, body: &[u8], dry_run: bool) -> Result<Response, ApiError> {
    let eviction: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the Eviction body is not valid JSON: {e}")))?
    };
    if let Some(k) = eviction["kind"].as_str() {
        if k != "Eviction" {
            return Err(ApiError::bad_request(format!("expected kind Eviction, got {k}")));
        }
    }
    if let Some(av) = eviction["apiVersion"].as_str() {
        if av != "policy/v1" && av != "policy/v1beta1" {
            return Err(ApiError::bad_request(format!(
                "unsupported Eviction apiVersion {av}: use policy/v1"
            )));
        }
    }
    if let Some(n) = eviction["metadata"]["name"].as_str().filter(|n| !n.is_empty()) {
        if n != name {
            return Err(ApiError::bad_request(format!(
                "name in URL does not match name in Eviction object ({n} != {name})"
            )));
        }
    }
    let opts = DeleteOpts {
        grace: eviction["deleteOptions"]["gracePeriodSeconds"].as_i64(),
        uid: eviction["deleteOptions"]["preconditions"]["uid"]
            .as_str()
            .map(str::to_string),
        resource_version: eviction["deleteOptions"]["preconditions"]["resourceVersion"]
            .as_str()
            .map(str::to_string),
        dry_run: dry_run || super::body_dry_run(&eviction["deleteOptions"])?,
    };
    eviction::evict(shared, ns, name, opts)?;
    Ok(status::json_response(StatusCode::CREATED, &status::success(201)))
}
