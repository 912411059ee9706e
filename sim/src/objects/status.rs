//! Kubernetes `Status` objects: every error the emulated API server returns is one,
//! with the HTTP code, `reason` and `details` the real kube-apiserver uses.

use crate::store::{Resource, StoreError};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// An API error, answered as a `Status` object.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    /// The machine-readable reason (`NotFound`, `Conflict`, ...); empty for none.
    pub reason: String,
    pub message: String,
    /// Boxed: it is rare, and keeps the error small.
    pub details: Option<Box<Value>>,
    /// Sent as the `Retry-After` header.
    pub retry_after: Option<u32>,
}

/// `pods`, `deployments.apps`: the resource as the API server names it in messages.
pub fn qualified(res: &Resource) -> String {
    if res.group.is_empty() {
        res.plural.to_string()
    } else {
        format!("{}.{}", res.plural, res.group)
    }
}

fn details(res: &Resource, name: &str) -> Value {
    let mut d = json!({"name": name});
    if !res.group.is_empty() {
        d["group"] = json!(res.group);
    }
    d["kind"] = json!(res.plural);
    d
}

impl ApiError {
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason: reason.to_string(),
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    pub fn with_details(mut self, d: Value) -> ApiError {
        self.details = Some(Box::new(d));
        self
    }

    pub fn not_found(res: &Resource, name: &str) -> ApiError {
        ApiError::new(404, "NotFound", format!("{} \"{name}\" not found", qualified(res)))
            .with_details(details(res, name))
    }

    pub fn already_exists(res: &Resource, name: &str) -> ApiError {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", qualified(res)),
        )
        .with_details(details(res, name))
    }

    pub fn conflict(res: &Resource, name: &str, why: &str) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {} \"{name}\": {why}", qualified(res)),
        )
        .with_details(details(res, name))
    }

    pub fn invalid(res: &Resource, name: &str, why: &str) -> ApiError {
        let kind = res.kind;
        ApiError::new(422, "Invalid", format!("{kind} \"{name}\" is invalid: {why}")).with_details(json!({
            "name": name,
            "group": res.group,
            "kind": kind,
            "causes": [{"reason": "FieldValueInvalid", "message": why}],
        }))
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    /// An unknown path or resource.
    pub fn path_not_found() -> ApiError {
        ApiError::new(404, "NotFound", "the server could not find the requested resource")
            .with_details(json!({"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]}))
    }

    pub fn method_not_allowed(method: &str) -> ApiError {
        ApiError::new(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({method})"),
        )
    }

    pub fn unsupported_media_type(ct: &str) -> ApiError {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json, application/merge-patch+json, application/strategic-merge-patch+json, application/json-patch+json, application/apply-patch+yaml (got `{ct}`)"),
        )
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(401, "Unauthorized", "Unauthorized")
    }

    /// A 5xx (or other) status injected by a `kube-error` fault.
    pub fn injected(code: u16) -> ApiError {
        let (reason, message) = match code {
            429 => ("TooManyRequests", "the server has received too many requests and has asked us to try again later"),
            500 => ("InternalError", "Internal error occurred: injected fault (aks-sim kube-error)"),
            503 => ("ServiceUnavailable", "the server is currently unable to handle the request"),
            504 => (
                "Timeout",
                "the server was unable to return a response in the time allotted, but may still be processing the request",
            ),
            _ => ("", "an error on the server (\"injected fault (aks-sim kube-error)\") has prevented the request from succeeding"),
        };
        let mut e = ApiError::new(code, reason, message);
        if code == 503 || code == 429 {
            e.retry_after = Some(1);
            e.details = Some(Box::new(json!({"retryAfterSeconds": 1})));
        }
        e
    }

    /// Map a store error on `res`/`name` to the API server's answer.
    pub fn from_store(res: &Resource, name: &str, e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound { .. } => ApiError::not_found(res, name),
            StoreError::AlreadyExists { .. } => ApiError::already_exists(res, name),
            StoreError::Conflict { .. } => ApiError::conflict(
                res,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ),
            StoreError::Invalid(m) => ApiError::invalid(res, name, &m),
        }
    }

    /// The `Status` object.
    pub fn body(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
        });
        if !self.reason.is_empty() {
            v["reason"] = json!(self.reason);
        }
        if let Some(d) = &self.details {
            v["details"] = (**d).clone();
        }
        v["code"] = json!(self.code);
        v
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.code, self.reason, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = json_response(code, &self.body());
        if let Some(s) = self.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}

/// A `Status` with `status: Success`.
pub fn success(code: u16) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code})
}

pub const JSON: &str = "application/json";

/// A JSON answer with the given content type.
pub fn typed_response(code: StatusCode, content_type: &str, v: &Value) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let mut resp = (code, body).into_response();
    if let Ok(ct) = HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    resp
}

pub fn json_response(code: StatusCode, v: &Value) -> Response {
    typed_response(code, JSON, v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store;

    #[test]
    fn not_found_names_the_group_qualified_resource() {
        let e = ApiError::not_found(&store::DEPLOYMENTS, "web");
        let b = e.body();
        assert_eq!(b["message"], "deployments.apps \"web\" not found");
        assert_eq!(
            b["details"],
            json!({"name": "web", "group": "apps", "kind": "deployments"})
        );
        assert_eq!(b["code"], 404);
        assert_eq!(b["reason"], "NotFound");
    }

    #[test]
    fn unauthorized_is_the_apiserver_body() {
        assert_eq!(
            ApiError::unauthorized().body(),
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401})
        );
    }

    #[test]
    fn conflict_message_is_the_apiserver_one() {
        let e = ApiError::from_store(
            &store::LEASES,
            "l",
            StoreError::Conflict {
                plural: "leases".into(),
                name: "l".into(),
            },
        );
        assert_eq!(e.code, 409);
        assert_eq!(
            e.message,
            "Operation cannot be fulfilled on leases.coordination.k8s.io \"l\": the object has been modified; please apply your changes to the latest version and try again"
        );
    }
}
