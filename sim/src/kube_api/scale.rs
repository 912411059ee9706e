//! The `scale` subresource of Deployments, ReplicaSets and StatefulSets.

use super::*;

/// The autoscaling/v1 Scale of a Deployment or ReplicaSet.
pub(super) fn scale_of(obj: &Value) -> Value {
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

pub(super) fn scale_write(
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
