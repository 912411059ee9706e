//! `POST /api/v1/namespaces/{ns}/serviceaccounts/{name}/token`: the TokenRequest API
//! (authentication.k8s.io/v1), what `kubectl create token` and the kubelet's projected
//! volumes call. The answer carries a ServiceAccount token (a JWT the emulator signs) for the
//! requested audiences and lifetime, bound to the ServiceAccount's uid and optionally to a
//! Pod or Secret; the API server accepts it until it expires or what it is bound to goes.

use super::validation::{self, ErrorType, FieldError};
use crate::events::kinds;
use crate::objects::status::{json_response, ApiError};
use crate::store;
use crate::tokens::{self, BoundObject, ServiceAccountClaims};
use crate::Shared;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

/// The shortest lifetime a token may be asked for (`MinTokenAgeSec`).
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
/// The longest (`MaxTokenAgeSec`, 2^32).
pub const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;
/// The lifetime of a token when the request names none (`SetDefaults_TokenRequestSpec`).
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;

fn invalid(name: &str, errs: &[FieldError]) -> ApiError {
    validation::invalid("authentication.k8s.io", "TokenRequest", name, errs)
}

/// Issue a token for ServiceAccount `ns/name`, answered 201 Created with the TokenRequest
/// and its `status.token`. A dry run checks everything and issues no token.
pub fn serve(s: &Shared, ns: &str, name: &str, body: &[u8], dry_run: bool) -> Result<Response, ApiError> {
    let mut req: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the body of the request is not a valid TokenRequest: {e}")))?
    };
    if let Some(k) = req["kind"].as_str().filter(|k| !k.is_empty()) {
        if k != "TokenRequest" {
            return Err(ApiError::bad_request(format!("expected kind TokenRequest, got {k}")));
        }
    }
    if let Some(n) = req["metadata"]["name"].as_str().filter(|n| !n.is_empty() && *n != name) {
        return Err(invalid(
            name,
            &[FieldError::invalid(
                "metadata.name",
                n,
                "must match the service account name if specified",
            )],
        ));
    }
    if let Some(n) = req["metadata"]["namespace"]
        .as_str()
        .filter(|n| !n.is_empty() && *n != ns)
    {
        return Err(invalid(
            name,
            &[FieldError::invalid(
                "metadata.namespace",
                n,
                "must match the service account namespace if specified",
            )],
        ));
    }
    let sa = s
        .store
        .get(store::SERVICEACCOUNTS, Some(ns), name)
        .ok_or_else(|| ApiError::not_found(&store::SERVICEACCOUNTS, name))?;
    let kube_url = s.endpoints().kube_url.clone();
    let spec = &req["spec"];
    let mut audiences: Vec<String> = spec["audiences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    if audiences.is_empty() {
        audiences = tokens::api_audiences(&kube_url);
    }
    let expiration = match &spec["expirationSeconds"] {
        Value::Null => DEFAULT_EXPIRATION_SECONDS,
        v => v
            .as_i64()
            .ok_or_else(|| ApiError::bad_request("spec.expirationSeconds must be an integer"))?,
    };
    let mut errs = vec![];
    if expiration < MIN_EXPIRATION_SECONDS {
        errs.push(FieldError {
            ty: ErrorType::Invalid,
            field: "spec.expirationSeconds".into(),
            value: Some(expiration.to_string()),
            detail: "may not specify a duration less than 10 minutes".into(),
        });
    }
    if expiration > MAX_EXPIRATION_SECONDS {
        errs.push(FieldError {
            ty: ErrorType::Invalid,
            field: "spec.expirationSeconds".into(),
            value: Some(expiration.to_string()),
            detail: "may not specify a duration larger than 2^32 seconds".into(),
        });
    }
    if !errs.is_empty() {
        return Err(invalid(name, &errs));
    }
    let bound = match spec["boundObjectRef"].as_object() {
        None => None,
        Some(r) => Some(bound_object(s, ns, r)?),
    };
    let now = jiff::Timestamp::now();
    let claims = ServiceAccountClaims {
        namespace: ns.to_string(),
        name: name.to_string(),
        uid: sa["metadata"]["uid"].as_str().unwrap_or("").to_string(),
        audiences: audiences.clone(),
        issued_at: now.as_second(),
        expires_at: now.as_second() + expiration,
        jti: uuid::Uuid::new_v4().to_string(),
        bound,
    };
    let token = if dry_run {
        String::new()
    } else {
        s.events.record(
            kinds::KUBE_TOKEN,
            None,
            None,
            format!(
                "issued serviceaccount token {} of {ns}/{name} for {audiences:?} (expires at {})",
                claims.jti, claims.expires_at
            ),
        );
        s.tokens
            .sign_service_account_token(&tokens::service_account_issuer(&kube_url), &claims)
    };
    let expires = jiff::Timestamp::from_second(claims.expires_at).unwrap_or(now);
    req["apiVersion"] = json!("authentication.k8s.io/v1");
    req["kind"] = json!("TokenRequest");
    req["metadata"] = json!({
        "name": name,
        "namespace": ns,
        "creationTimestamp": crate::time::rfc3339(now),
    });
    req["spec"]["audiences"] = json!(audiences);
    req["spec"]["expirationSeconds"] = json!(expiration);
    if req["spec"]["boundObjectRef"].is_null() {
        req["spec"]["boundObjectRef"] = Value::Null;
    }
    req["status"] = json!({"token": token, "expirationTimestamp": crate::time::rfc3339(expires)});
    Ok(json_response(StatusCode::CREATED, &req))
}

/// The object `spec.boundObjectRef` names, which must exist (404) with the uid given (409).
fn bound_object(s: &Shared, ns: &str, r: &serde_json::Map<String, Value>) -> Result<BoundObject, ApiError> {
    let get = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let (kind, api_version, name, uid) = (get("kind"), get("apiVersion"), get("name"), get("uid"));
    let res = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Pod") => store::PODS,
        ("v1", "Secret") => store::SECRETS,
        _ => {
            let gvk = match api_version.split_once('/') {
                Some((g, v)) => format!("{g}/{v}, Kind={kind}"),
                None => format!("/{api_version}, Kind={kind}"),
            };
            return Err(ApiError::bad_request(format!(
                "cannot bind token for object of type {gvk}"
            )));
        }
    };
    let obj = s
        .store
        .get(res, Some(ns), &name)
        .ok_or_else(|| ApiError::not_found(&res, &name))?;
    let actual = obj["metadata"]["uid"].as_str().unwrap_or("").to_string();
    if !uid.is_empty() && uid != actual {
        return Err(ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {kind} \"{name}\": the UID in the bound object reference ({uid}) does not match the UID in record. The object might have been deleted and then recreated"
            ),
        )
        .with_details(json!({"name": name, "kind": kind})));
    }
    Ok(BoundObject {
        kind,
        name,
        uid: actual,
    })
}
