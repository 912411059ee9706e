//! The self-review APIs: `SelfSubjectAccessReview` (`kubectl auth can-i`),
//! `SelfSubjectRulesReview` (`kubectl auth can-i --list`) and `SelfSubjectReview`
//! (`kubectl auth whoami`). Created, answered, never stored.

use crate::objects::status::{json_response, ApiError};
use crate::rbac::{self, Identity};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Review {
    Access,
    Rules,
    Subject,
}

/// The review a path names (the v1 APIs; v1beta1 SelfSubjectReview too).
pub fn route(path: &str) -> Option<Review> {
    match path.trim_end_matches('/') {
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews" => Some(Review::Access),
        "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews" => Some(Review::Rules),
        "/apis/authentication.k8s.io/v1/selfsubjectreviews" => Some(Review::Subject),
        _ => None,
    }
}

fn body_object(body: &[u8], kind: &str) -> Result<Value, ApiError> {
    let v: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the body of the request is not a valid {kind}: {e}")))?
    };
    if let Some(k) = v["kind"].as_str().filter(|k| !k.is_empty()) {
        if k != kind {
            return Err(ApiError::bad_request(format!("expected kind {kind}, got {k}")));
        }
    }
    Ok(v)
}

pub fn review(id: &Identity, kind: Review, body: &[u8]) -> Result<Response, ApiError> {
    match kind {
        Review::Access => {
            let mut v = body_object(body, "SelfSubjectAccessReview")?;
            let spec = &v["spec"];
            let attrs = if let Some(r) = spec["resourceAttributes"].as_object() {
                let get = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                rbac::Attributes {
                    verb: get("verb"),
                    resource: Some(rbac::ResourceAttrs {
                        group: get("group"),
                        resource: get("resource"),
                        subresource: get("subresource"),
                        namespace: get("namespace"),
                        name: get("name"),
                    }),
                    path: String::new(),
                }
            } else if let Some(n) = spec["nonResourceAttributes"].as_object() {
                rbac::Attributes {
                    verb: n.get("verb").and_then(Value::as_str).unwrap_or("").to_string(),
                    resource: None,
                    path: n.get("path").and_then(Value::as_str).unwrap_or("").to_string(),
                }
            } else {
                return Err(ApiError::new(
                    422,
                    "Invalid",
                    "SelfSubjectAccessReview.authorization.k8s.io \"\" is invalid: spec.resourceAttributes: Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified",
                ));
            };
            let (allowed, reason) = rbac::authorize(id, &attrs);
            let mut status = json!({"allowed": allowed});
            if !reason.is_empty() {
                status["reason"] = json!(reason);
            }
            v["apiVersion"] = json!("authorization.k8s.io/v1");
            v["kind"] = json!("SelfSubjectAccessReview");
            v["metadata"] = json!({"creationTimestamp": null});
            v["status"] = status;
            Ok(json_response(StatusCode::CREATED, &v))
        }
        Review::Rules => {
            let mut v = body_object(body, "SelfSubjectRulesReview")?;
            let ns = v["spec"]["namespace"].as_str().unwrap_or("").to_string();
            v["apiVersion"] = json!("authorization.k8s.io/v1");
            v["kind"] = json!("SelfSubjectRulesReview");
            v["metadata"] = json!({"creationTimestamp": null});
            v["status"] = rbac::rules_review(id, &ns);
            Ok(json_response(StatusCode::CREATED, &v))
        }
        Review::Subject => {
            body_object(body, "SelfSubjectReview")?;
            Ok(json_response(
                StatusCode::CREATED,
                &json!({
                    "kind": "SelfSubjectReview",
                    "apiVersion": "authentication.k8s.io/v1",
                    "metadata": {"creationTimestamp": null},
                    "status": {"userInfo": {"username": id.username, "groups": id.groups}},
                }),
            ))
        }
    }
}
