//! The shape of an object in a request body: what the API server's decoding and schema
//! would refuse, and the namespace the path gives it.

use super::*;

/// Fields that must be JSON objects when present (the controllers and the store write
/// into them).
pub(super) const OBJECT_FIELDS: &[&str] = &[
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
pub(super) const OBJECT_LIST_FIELDS: &[&str] = &[
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
pub(super) fn validate_shape(obj: &Value) -> Result<(), String> {
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

pub(super) fn parse_object(body: &[u8], res: &Resource) -> Result<Value, ApiError> {
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

pub(super) fn set_namespace(obj: &mut Value, ns: Option<&str>, res: &Resource) -> Result<(), ApiError> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
