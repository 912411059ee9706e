//! `events.k8s.io/v1` Events: the same objects as core/v1 Events, served in a second API
//! group as kube-apiserver serves them (one storage, converted on the way in and out):
//! `involvedObject` is `regarding`, `message` is `note`, `reportingComponent` is
//! `reportingController`, `source`, `firstTimestamp`, `lastTimestamp` and `count` are the
//! `deprecated*` fields. Every request is carried out on the core/v1 side; objects in bodies,
//! lists and watch streams are converted. Creates and updates through this group are checked
//! as the API server checks them there (`eventTime`, `reportingController`,
//! `reportingInstance`, `action`, `reason` are required, `type` is Normal or Warning).

use super::{Query, Target};
use crate::objects::status::ApiError;
use crate::store::{self, EVENTS};
use crate::Shared;
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{json, Map, Value};
use std::sync::Arc;

const API_VERSION: &str = "events.k8s.io/v1";

/// (v1 name, core name) of the fields that only change their name.
const RENAMED: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];
/// Fields with the same name in both.
const SAME: &[&str] = &[
    "metadata",
    "eventTime",
    "series",
    "reportingInstance",
    "action",
    "reason",
    "related",
    "type",
];

fn empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Number(n) => n.as_i64() == Some(0),
        _ => false,
    }
}

/// A core/v1 Event as events.k8s.io/v1 shows it.
pub fn to_v1(core: &Value) -> Value {
    let mut out = Map::new();
    out.insert("kind".into(), json!("Event"));
    out.insert("apiVersion".into(), json!(API_VERSION));
    for f in SAME {
        if let Some(v) = core.get(*f).filter(|v| !empty(v)) {
            out.insert(f.to_string(), v.clone());
        }
    }
    // eventTime is not optional in events.k8s.io/v1: null for events recorded without one.
    out.entry("eventTime").or_insert(Value::Null);
    for (v1, c) in RENAMED {
        if let Some(v) = core.get(*c).filter(|v| !empty(v)) {
            out.insert(v1.to_string(), v.clone());
        }
    }
    Value::Object(out)
}

/// An events.k8s.io/v1 Event as core/v1 stores it.
pub fn to_core(v1: &Value) -> Value {
    let mut out = Map::new();
    out.insert("kind".into(), json!("Event"));
    out.insert("apiVersion".into(), json!("v1"));
    for f in SAME {
        if let Some(v) = v1.get(*f).filter(|v| !v.is_null()) {
            out.insert(f.to_string(), v.clone());
        }
    }
    for (n, c) in RENAMED {
        if let Some(v) = v1.get(*n).filter(|v| !v.is_null()) {
            out.insert(c.to_string(), v.clone());
        }
    }
    // The unknown rest goes through unchanged (field validation on the core side sees it).
    if let Some(o) = v1.as_object() {
        for (k, v) in o {
            let known =
                SAME.contains(&k.as_str()) || RENAMED.iter().any(|(n, _)| n == k) || k == "kind" || k == "apiVersion";
            if !known {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

const QUALIFIED: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

/// `ValidateQualifiedName`: an optional DNS-subdomain prefix and `/`, then a name part.
fn qualified_name_errors(v: &str) -> Vec<String> {
    let (prefix, name) = match v.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, v),
    };
    let mut out = vec![];
    if name.is_empty() {
        out.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        out.push("name part must be no more than 63 characters".to_string());
    }
    let ok = |c: char| c.is_ascii_alphanumeric();
    if !(name.starts_with(ok) && name.ends_with(ok) && name.chars().all(|c| ok(c) || "-_.".contains(c))) {
        out.push(QUALIFIED.to_string());
    }
    if let Some(p) = prefix {
        let sub = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && l.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && l.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            });
        if !sub {
            out.push("prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".to_string());
        }
    }
    out
}

/// The API server's checks of an Event written through events.k8s.io/v1
/// (`ValidateEventCreate` / `ValidateEventUpdate` for that group): the legacy checks, then on
/// create the strict ones, on update the series when it changed.
fn validate(v1: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    let name = v1["metadata"]["name"].as_str().unwrap_or("");
    let ns = v1["metadata"]["namespace"].as_str().unwrap_or("");
    let text = |f: &str| v1[f].as_str().unwrap_or("").to_string();
    // (field, message, reason)
    let mut errs: Vec<(String, String, &str)> = vec![];
    let required = |errs: &mut Vec<(String, String, &str)>, f: &str| {
        errs.push((f.into(), "Required value".into(), "FieldValueRequired"))
    };
    let invalid = |errs: &mut Vec<(String, String, &str)>, f: &str, value: &str, why: &str| {
        errs.push((
            f.into(),
            format!("Invalid value: {value:?}: {why}"),
            "FieldValueInvalid",
        ))
    };
    if v1["regarding"]["namespace"].as_str().unwrap_or("").is_empty() && ns != "default" && ns != "kube-system" {
        invalid(
            &mut errs,
            "involvedObject.namespace",
            "",
            "does not match event.namespace",
        );
    }
    let rc = text("reportingController");
    if rc.is_empty() {
        required(&mut errs, "reportingController");
    }
    for why in qualified_name_errors(&rc) {
        invalid(&mut errs, "reportingController", &rc, &why);
    }
    for (f, max) in [("reportingInstance", 128), ("action", 128), ("reason", 128)] {
        let v = text(f);
        if v.is_empty() {
            required(&mut errs, f);
        }
        if v.len() > max {
            invalid(&mut errs, f, "", &format!("can have at most {max} characters"));
        }
    }
    if text("note").len() > 1024 {
        invalid(&mut errs, "note", "", "can have at most 1024 characters");
    }
    let series_changed = old.is_none_or(|o| o["series"] != v1["series"]);
    if series_changed && !v1["series"].is_null() {
        if v1["series"]["count"].as_i64().unwrap_or(0) < 2 {
            invalid(&mut errs, "series.count", "", "should be at least 2");
        }
        if v1["series"]["lastObservedTime"].as_str().is_none_or(str::is_empty) {
            required(&mut errs, "series.lastObservedTime");
        }
    }
    if old.is_none() {
        if v1["eventTime"].as_str().is_none_or(str::is_empty) {
            required(&mut errs, "eventTime");
        }
        let t = text("type");
        if t != "Normal" && t != "Warning" {
            invalid(&mut errs, "type", "", &format!("has invalid value: {t}"));
        }
        for (f, core) in [
            ("deprecatedFirstTimestamp", "firstTimestamp"),
            ("deprecatedLastTimestamp", "lastTimestamp"),
            ("deprecatedCount", "count"),
        ] {
            if !empty(&v1[f]) {
                invalid(&mut errs, core, "", "needs to be unset");
            }
        }
        if !empty(&v1["deprecatedSource"]["component"]) || !empty(&v1["deprecatedSource"]["host"]) {
            invalid(&mut errs, "source", "", "needs to be unset");
        }
    }
    if errs.is_empty() {
        return Ok(());
    }
    let msgs: Vec<String> = errs.iter().map(|(f, m, _)| format!("{f}: {m}")).collect();
    let msg = if msgs.len() == 1 {
        msgs[0].clone()
    } else {
        format!("[{}]", msgs.join(", "))
    };
    Err(ApiError::new(
        422,
        "Invalid",
        format!("Event.events.k8s.io \"{name}\" is invalid: {msg}"),
    )
    .with_details(json!({
        "name": name, "group": "events.k8s.io", "kind": "Event",
        "causes": errs.iter().map(|(f, m, r)| json!({"reason": r, "message": m, "field": f})).collect::<Vec<_>>(),
    })))
}

/// Field selectors in this group's names, as the core side knows them.
fn core_query(q: &Query) -> Query {
    Query(
        q.0.iter()
            .map(|(k, v)| {
                if k != "fieldSelector" {
                    return (k.clone(), v.clone());
                }
                let mapped = v
                    .split(',')
                    .map(|term| {
                        let t = term.trim();
                        for (n, c) in RENAMED {
                            if let Some(rest) = t.strip_prefix(n) {
                                if rest.starts_with(['.', '=', '!']) {
                                    return format!("{c}{rest}");
                                }
                            }
                        }
                        t.to_string()
                    })
                    .collect::<Vec<_>>()
                    .join(",");
                (k.clone(), mapped)
            })
            .collect(),
    )
}

fn json_headers(headers: &HeaderMap) -> HeaderMap {
    let mut h = headers.clone();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h
}

/// Serve a request on `events.k8s.io/v1` events through the core side.
pub(super) async fn serve(
    s: &Arc<Shared>,
    method: &Method,
    t: Target,
    q: &Query,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    serve_core(s, method, t, q, headers, body).await.map_err(convert_error)
}

async fn serve_core(
    s: &Arc<Shared>,
    method: &Method,
    t: Target,
    q: &Query,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let core_t = Target {
        res: EVENTS,
        ns: t.ns.clone(),
        name: t.name.clone(),
        sub: t.sub.clone(),
        watch_path: t.watch_path,
    };
    let cq = core_query(q);
    let watching = t.watch_path || q.flag("watch");
    let resp = match (method.clone(), t.name.as_deref()) {
        (Method::POST, None) | (Method::PUT, Some(_)) => {
            let mut v1: Value = serde_json::from_slice(&body)
                .map_err(|e| ApiError::bad_request(format!("the body is not an events.k8s.io/v1 Event: {e}")))?;
            if v1["metadata"]["namespace"].is_null() {
                v1["metadata"]["namespace"] = json!(t.ns.clone().unwrap_or_default());
            }
            let old = match t.name.as_deref() {
                Some(n) => s.store.get(EVENTS, t.ns.as_deref(), n).map(|o| to_v1(&o)),
                None => None,
            };
            validate(&v1, old.as_ref())?;
            let core = to_core(&v1);
            super::resource(
                s,
                method,
                core_t,
                &cq,
                &json_headers(headers),
                Bytes::from(core.to_string()),
            )
            .await?
        }
        (Method::PATCH, Some(name)) => {
            let ct = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let pt =
                super::patch::PatchType::from_content_type(ct).ok_or_else(|| ApiError::unsupported_media_type(ct))?;
            let cur = s
                .store
                .get(EVENTS, t.ns.as_deref(), name)
                .ok_or_else(|| not_found(name))?;
            let patch = super::patch::decode(pt, &body).map_err(ApiError::bad_request)?;
            let old = to_v1(&cur);
            let mut v1 = old.clone();
            super::patch::apply(pt, &mut v1, &patch).map_err(|e| ApiError::new(422, "Invalid", e))?;
            if v1["metadata"]["resourceVersion"].as_str().is_none_or(str::is_empty) {
                v1["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"].clone();
            }
            validate(&v1, Some(&old))?;
            let core = to_core(&v1);
            let mut pq = Query(
                cq.0.iter()
                    .filter(|(k, _)| k != "fieldManager" && k != "force")
                    .cloned()
                    .collect(),
            );
            if let Some(m) = q.get("fieldManager") {
                pq.0.push(("fieldManager".into(), m.into()));
            }
            super::resource(
                s,
                &Method::PUT,
                core_t,
                &pq,
                &json_headers(headers),
                Bytes::from(core.to_string()),
            )
            .await?
        }
        _ => super::resource(s, method, core_t, &cq, headers, body).await?,
    };
    Ok(if watching && *method == Method::GET {
        convert_stream(resp)
    } else {
        convert_body(resp).await
    })
}

fn not_found(name: &str) -> ApiError {
    ApiError::new(404, "NotFound", format!("events.events.k8s.io \"{name}\" not found"))
        .with_details(json!({"name": name, "group": "events.k8s.io", "kind": "events"}))
}

/// An error from the core side, in this group's words.
pub fn convert_error(mut e: ApiError) -> ApiError {
    e.message = e.message.replacen("events \"", "events.events.k8s.io \"", 1);
    if let Some(d) = e.details.as_mut() {
        if d["kind"] == "events" {
            d["group"] = json!("events.k8s.io");
        }
    }
    e
}

fn convert_value(v: &mut Value) {
    match v["kind"].as_str() {
        Some("Event") if v["apiVersion"] == "v1" => *v = to_v1(v),
        Some("EventList") => {
            v["apiVersion"] = json!(API_VERSION);
            for i in v["items"].as_array_mut().into_iter().flatten() {
                *i = to_v1(i);
            }
        }
        Some("Status") => {
            if let Some(m) = v["message"].as_str() {
                v["message"] = json!(m.replacen("events \"", "events.events.k8s.io \"", 1));
            }
            if v["details"]["kind"] == "events" {
                v["details"]["group"] = json!("events.k8s.io");
            }
        }
        _ => {
            if v["object"].is_object() && v["type"].is_string() {
                convert_value(&mut v["object"]);
            }
        }
    }
}

async fn convert_body(resp: Response) -> Response {
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, super::MAX_BODY * 4).await else {
        return ApiError::new(500, "InternalError", "cannot read the events list").into_response();
    };
    let Ok(mut v) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    convert_value(&mut v);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(v.to_string()))
}

/// A watch stream, one JSON event per line, converted line by line.
fn convert_stream(resp: Response) -> Response {
    let (mut parts, body) = resp.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let mut pending: Vec<u8> = Vec::new();
    let stream = body.into_data_stream().map(move |chunk| {
        let chunk = chunk.map_err(std::io::Error::other)?;
        pending.extend_from_slice(&chunk);
        let mut out = Vec::new();
        while let Some(i) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=i).collect();
            match serde_json::from_slice::<Value>(&line) {
                Ok(mut v) => {
                    convert_value(&mut v);
                    out.extend_from_slice(v.to_string().as_bytes());
                    out.push(b'\n');
                }
                Err(_) => out.extend_from_slice(&line),
            }
        }
        Ok::<_, std::io::Error>(Bytes::from(out))
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

/// events.k8s.io/v1 is served from the core events' storage.
pub fn is_alias(res: &store::Resource) -> bool {
    *res == store::EVENTS_V1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_groups_are_the_same_object() {
        let core = json!({"kind": "Event", "apiVersion": "v1", "metadata": {"name": "e", "namespace": "default"},
            "involvedObject": {"kind": "Node", "name": "n"}, "reason": "Rebooted", "message": "m",
            "source": {"component": "kubelet"}, "count": 2, "firstTimestamp": "2026-01-01T00:00:00Z",
            "lastTimestamp": "2026-01-01T00:01:00Z", "type": "Warning", "reportingComponent": "", "reportingInstance": ""});
        let v1 = to_v1(&core);
        assert_eq!(v1["apiVersion"], API_VERSION);
        assert_eq!(v1["regarding"]["name"], "n");
        assert_eq!(v1["note"], "m");
        assert_eq!(v1["deprecatedCount"], 2);
        assert!(v1["eventTime"].is_null() && v1.get("eventTime").is_some());
        assert!(v1.get("reportingController").is_none());
        let back = to_core(&v1);
        assert_eq!(back["involvedObject"], core["involvedObject"]);
        assert_eq!(back["message"], "m");
    }

    #[test]
    fn creates_need_what_the_new_recorders_always_set() {
        let e = validate(
            &json!({"metadata": {"name": "x", "namespace": "default"}, "type": "Normal", "reason": "R"}),
            None,
        )
        .unwrap_err();
        let msg = e.message;
        assert!(
            msg.starts_with("Event.events.k8s.io \"x\" is invalid: [reportingController: Required value"),
            "{msg}"
        );
        assert!(msg.contains("eventTime: Required value"), "{msg}");
        let good = json!({"metadata": {"name": "x", "namespace": "default"}, "type": "Normal", "reason": "R", "action": "A",
            "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "example.com/c", "reportingInstance": "i"});
        assert!(validate(&good, None).is_ok());
        let mut bad = good.clone();
        bad["reportingController"] = json!("Bad Controller");
        assert!(validate(&bad, None)
            .unwrap_err()
            .message
            .contains("reportingController: Invalid value: \"Bad Controller\""));
    }
}
