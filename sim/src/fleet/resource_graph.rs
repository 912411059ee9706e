//! Azure Resource Graph: `POST /providers/Microsoft.ResourceGraph/resources`, the `resources`
//! table over the fleet's managed clusters and fleets, queried in the KQL subset of
//! [`super::kql`] and paged with `$skipToken`.
//!
//! Request: `{subscriptions, query, options: {$top, $skip, $skipToken, resultFormat}}`.
//! Answer: `{totalRecords, count, resultTruncated, $skipToken?, data, facets: []}`, `data` an
//! array of objects (`objectArray`, the default) or `{columns, rows}` (`table`). As the
//! service does: `type` and `resourceGroup` are lower-case; rows are paged only when the
//! result has an `id` column (else a result larger than a page is truncated:
//! `resultTruncated: "true"`, no `$skipToken`); subscriptions the credential cannot see are
//! left out; a query outside the subset is a 400 `BadRequest` whose details say
//! `InvalidQuery` and where (`line`, `characterPositionInLine`, `token`).

use super::arm::Front;
use super::kql::{self, ErrorKind, QueryError};
use crate::arm::{arm_error, managed_cluster_json, ok, ArmRequest};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{json, Value};

/// Rows per page when the request gives no `$top` (the service's default), and its most.
const DEFAULT_TOP: usize = 100;
const MAX_TOP: usize = 1000;

/// The columns of the `resources` table.
const COLUMNS: &[&str] = &[
    "id",
    "name",
    "type",
    "tenantId",
    "kind",
    "location",
    "resourceGroup",
    "subscriptionId",
    "managedBy",
    "sku",
    "plan",
    "properties",
    "tags",
    "identity",
    "zones",
    "extendedLocation",
];

/// The `resources` rows of subscriptions `subs`, by id.
fn rows(front: &Front, subs: &[String], api_version: &str) -> Vec<Value> {
    let tenant = &front.scenario.tenant_id;
    let mut out: Vec<Value> = vec![];
    let mut row = |arm: Value, sub: &str, rg: &str| {
        let get = |k: &str| arm.get(k).cloned().unwrap_or(Value::Null);
        out.push(json!({
            "id": get("id"),
            "name": get("name"),
            "type": get("type").as_str().unwrap_or_default().to_ascii_lowercase(),
            "tenantId": tenant,
            "kind": "",
            "location": get("location"),
            "resourceGroup": rg.to_ascii_lowercase(),
            "subscriptionId": sub,
            "managedBy": "",
            "sku": get("sku"),
            "plan": null,
            "properties": get("properties"),
            "tags": get("tags"),
            "identity": get("identity"),
            "zones": null,
            "extendedLocation": null,
        }));
    };
    let wanted = |s: &str| subs.iter().any(|w| w.eq_ignore_ascii_case(s));
    for (s, _) in &front.clusters {
        let sc = &s.scenario;
        if wanted(&sc.subscription_id) {
            row(
                managed_cluster_json(s, api_version),
                &sc.subscription_id,
                &sc.resource_group,
            );
        }
    }
    for f in front.scenario.fleets.iter().filter(|f| wanted(&f.subscription_id)) {
        row(
            super::fleet_manager::fleet_json(front, f),
            &f.subscription_id,
            &f.resource_group,
        );
    }
    out.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    out
}

fn bad_request(details: Value) -> Response {
    let now = jiff::Timestamp::now();
    arm_error_with_details(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        format!(
            "Please provide below info when asking for support: timestamp = {now}, correlationId = {}.",
            uuid::Uuid::new_v4()
        ),
        details,
    )
}

fn arm_error_with_details(status: StatusCode, code: &str, message: String, details: Value) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": code, "message": message, "details": details}})),
    )
        .into_response()
}

fn query_error(e: &QueryError) -> Response {
    let (code, message) = match e.kind {
        ErrorKind::Syntax => ("ParserFailure", format!("ParserFailure: {}", e.message)),
        ErrorKind::Unsupported => ("NotSupportedByAksSim", e.message.clone()),
        ErrorKind::UnknownColumn => ("FailedToResolveScalarExpression", e.message.clone()),
    };
    bad_request(json!([
        {
            "code": "InvalidQuery",
            "message": "Query is invalid. Please refer to the documentation for the Azure Resource Graph service and fix the error before retrying."
        },
        {
            "code": code,
            "message": message,
            "line": e.line,
            "characterPositionInLine": e.position,
            "token": e.token,
        }
    ]))
}

fn invalid_option(message: String) -> Response {
    bad_request(json!([{"code": "InvalidQueryOptions", "message": message}]))
}

/// The skip token of the page starting at `offset` of `query` over `subs`.
fn skip_token(offset: usize, fingerprint: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(json!({"offset": offset, "query": fingerprint}).to_string())
}

fn read_skip_token(token: &str, fingerprint: &str) -> Option<usize> {
    let raw = base64::engine::general_purpose::STANDARD.decode(token).ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    (v["query"] == fingerprint).then(|| v["offset"].as_u64().map(|n| n as usize))?
}

/// Spend one query of the per-user quota: the queries left in the window and the time until
/// it resets, or `None` when the quota was already spent (the time until it resets then).
fn spend_quota(front: &Front) -> Result<(u32, std::time::Duration), std::time::Duration> {
    let spec = front.scenario.resource_graph_quota;
    let window = std::time::Duration::from_secs_f64(spec.window_seconds);
    let mut q = front.graph_quota.lock().unwrap_or_else(|p| p.into_inner());
    let now = std::time::Instant::now();
    if now.duration_since(q.0) >= window {
        *q = (now, 0);
    }
    let left = window.saturating_sub(now.duration_since(q.0));
    if q.1 >= spec.queries {
        return Err(left);
    }
    q.1 += 1;
    Ok((spec.queries - q.1, left))
}

/// `hh:mm:ss`, as `x-ms-user-quota-resets-after` gives it (rounded up to a second).
fn hms(d: std::time::Duration) -> String {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// `POST /providers/Microsoft.ResourceGraph/resources`, within the per-user quota (its
/// `x-ms-user-quota-remaining` and `x-ms-user-quota-resets-after` on every answer; beyond
/// it, 429 `RateLimiting`).
pub(super) fn resources(front: &Front, req: &ArmRequest) -> Response {
    if req.method != axum::http::Method::POST {
        return arm_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "Resource Graph queries are POST requests.",
        );
    }
    let (mut resp, remaining, resets) = match spend_quota(front) {
        Ok((remaining, resets)) => (answer(front, req), remaining, resets),
        Err(resets) => (throttled(), 0, resets),
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&remaining.to_string()) {
        h.insert("x-ms-user-quota-remaining", v);
    }
    if let Ok(v) = HeaderValue::from_str(&hms(resets)) {
        h.insert("x-ms-user-quota-resets-after", v);
    }
    resp
}

/// Resource Graph's 429 for a spent quota.
fn throttled() -> Response {
    let now = jiff::Timestamp::now();
    arm_error_with_details(
        StatusCode::TOO_MANY_REQUESTS,
        "RateLimiting",
        format!(
            "Please provide below info when asking for support: timestamp = {now}, correlationId = {}.",
            uuid::Uuid::new_v4()
        ),
        json!([{
            "code": "RateLimiting",
            "message": "Client application has been throttled and should not attempt to repeat the request until an amount of time has elapsed. Please see https://aka.ms/resourcegraph-throttling for help."
        }]),
    )
}

fn answer(front: &Front, req: &ArmRequest) -> Response {
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return arm_error(
                StatusCode::BAD_REQUEST,
                "InvalidRequestContent",
                "The request content was invalid and could not be deserialized: a JSON object {subscriptions, query, options} is expected.",
            )
        }
    };
    let Some(text) = body["query"].as_str().filter(|q| !q.trim().is_empty()) else {
        return invalid_option("The 'query' property is required.".into());
    };
    let visible = front.scenario.subscriptions();
    let subs: Vec<String> = match body["subscriptions"].as_array() {
        Some(asked) if !asked.is_empty() => asked
            .iter()
            .filter_map(Value::as_str)
            .filter(|s| visible.iter().any(|v| v.eq_ignore_ascii_case(s)))
            .map(str::to_string)
            .collect(),
        _ => visible,
    };
    let query = match kql::parse(text, COLUMNS) {
        Ok(q) => q,
        Err(e) => return query_error(&e),
    };
    let options = &body["options"];
    let top = match &options["$top"] {
        Value::Null => DEFAULT_TOP,
        v => match v.as_u64() {
            Some(n) if (1..=MAX_TOP as u64).contains(&n) => n as usize,
            _ => return invalid_option(format!("$top must be between 1 and {MAX_TOP}, not {v}.")),
        },
    };
    let page_size = top.min(front.scenario.resource_graph_page_size.max(1));
    let mut sorted_subs: Vec<String> = subs.iter().map(|s| s.to_ascii_lowercase()).collect();
    sorted_subs.sort();
    let fingerprint = crate::ids::stable_hex(&format!("{text}\n{}", sorted_subs.join(",")))[..16].to_string();
    let offset = match (&options["$skipToken"], &options["$skip"]) {
        (Value::String(t), _) => match read_skip_token(t, &fingerprint) {
            Some(n) => n,
            None => {
                return invalid_option(format!(
                    "The $skipToken '{t}' is invalid: pass the $skipToken of the previous page of the same query unchanged."
                ))
            }
        },
        (Value::Null, Value::Null) => 0,
        (Value::Null, v) => match v.as_u64() {
            Some(n) => n as usize,
            None => return invalid_option(format!("$skip must be a number ≥ 0, not {v}.")),
        },
        (v, _) => return invalid_option(format!("$skipToken must be a string, not {v}.")),
    };
    let table = match options["resultFormat"].as_str() {
        None => false,
        Some(f) if f.eq_ignore_ascii_case("objectArray") => false,
        Some(f) if f.eq_ignore_ascii_case("table") => true,
        Some(f) => return invalid_option(format!("resultFormat '{f}' is not one of objectArray, table.")),
    };

    // The clusters' properties as the newest AKS api-version shows them.
    let newest = crate::api_versions::CONTAINER_SERVICE
        .iter()
        .rev()
        .find(|v| !v.ends_with("-preview"))
        .copied()
        .unwrap_or("2025-10-01");
    let result = query.run(rows(front, &subs, newest));
    let total = result.len();
    let columns: Vec<String> = query
        .projected()
        .unwrap_or_else(|| COLUMNS.iter().map(|c| c.to_string()).collect());
    let pageable = columns.iter().any(|c| c == "id");
    let page: Vec<Value> = result.iter().skip(offset).take(page_size).cloned().collect();
    let more = offset + page.len() < total;
    let data = if table {
        let rows: Vec<Value> = page
            .iter()
            .map(|r| {
                Value::Array(
                    columns
                        .iter()
                        .map(|c| r.get(c).cloned().unwrap_or(Value::Null))
                        .collect(),
                )
            })
            .collect();
        let cols: Vec<Value> = columns
            .iter()
            .map(|c| json!({"name": c, "type": column_type(c, &page)}))
            .collect();
        json!({"columns": cols, "rows": rows})
    } else {
        Value::Array(page.clone())
    };
    let mut answer = json!({
        "totalRecords": total,
        "count": page.len(),
        "resultTruncated": if more && !pageable { "true" } else { "false" },
        "data": data,
        "facets": [],
    });
    if more && pageable {
        answer["$skipToken"] = json!(skip_token(offset + page.len(), &fingerprint));
    }
    ok(answer)
}

/// A `table` result's column type, from its first non-null value.
fn column_type(c: &str, rows: &[Value]) -> &'static str {
    match rows.iter().map(|r| &r[c]).find(|v| !v.is_null()) {
        Some(Value::String(_)) | None => "string",
        Some(Value::Number(_)) => "integer",
        Some(Value::Bool(_)) => "boolean",
        Some(_) => "object",
    }
}
