//! PATCH bodies: JSON merge patch (RFC 7386), strategic merge patch (a merge patch that
//! merges the lists Kubernetes declares with a merge key, honours `$patch` and
//! `$deleteFromPrimitiveList` directives and replaces every other list), JSON patch
//! (RFC 6902) and server-side apply (treated as a merge patch of the applied object).

use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Merge,
    Strategic,
    Json,
    Apply,
}

impl PatchType {
    /// From the request's Content-Type (None: not a patch type we take).
    pub fn from_content_type(ct: &str) -> Option<PatchType> {
        let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match mime.as_str() {
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/json-patch+json" => Some(PatchType::Json),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Some(PatchType::Apply),
            _ => None,
        }
    }
}

/// Decode a patch body (JSON, or YAML for apply).
pub fn decode(pt: PatchType, body: &[u8]) -> Result<Value, String> {
    match pt {
        PatchType::Apply => serde_yaml_ng::from_slice::<Value>(body).map_err(|e| format!("error decoding YAML: {e}")),
        _ => serde_json::from_slice::<Value>(body).map_err(|e| format!("error decoding patch: {e}")),
    }
}

/// Apply a decoded patch to `target`.
pub fn apply(pt: PatchType, target: &mut Value, patch: &Value) -> Result<(), String> {
    match pt {
        PatchType::Merge | PatchType::Apply => {
            if !patch.is_object() {
                return Err("a merge patch must be a JSON object".into());
            }
            json_patch::merge(target, patch);
            Ok(())
        }
        PatchType::Strategic => {
            if !patch.is_object() {
                return Err("a strategic merge patch must be a JSON object".into());
            }
            strategic_merge(target, patch, "");
            Ok(())
        }
        PatchType::Json => {
            let p: json_patch::Patch =
                serde_json::from_value(patch.clone()).map_err(|e| format!("invalid JSON patch: {e}"))?;
            json_patch::patch(target, &p).map_err(|e| format!("the JSON patch could not be applied: {e}"))
        }
    }
}

/// The merge key of the lists Kubernetes merges in strategic merge patches, which are also
/// the lists it declares as maps (`+listType=map`) for server-side apply.
pub fn merge_key(field: &str) -> Option<&'static str> {
    Some(match field {
        "containers" | "initContainers" | "ephemeralContainers" | "volumes" | "env" | "imagePullSecrets" => "name",
        "volumeMounts" => "mountPath",
        "ports" => "containerPort",
        "conditions" | "addresses" => "type",
        "ownerReferences" => "uid",
        _ => return None,
    })
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

fn strategic_merge(target: &mut Value, patch: &Value, _field: &str) {
    let Value::Object(p) = patch else {
        *target = strip_directives(patch);
        return;
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        *target = strip_directives(patch);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("made an object above");
    for (k, v) in p {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Value::Array(del)) = (t.get_mut(field), v) {
                list.retain(|x| !del.contains(x));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        if v.is_null() || v.get("$patch").and_then(Value::as_str) == Some("delete") {
            t.remove(k);
            continue;
        }
        match (t.get_mut(k), v) {
            (Some(Value::Array(cur)), Value::Array(items)) if merge_key(k).is_some() => {
                let key = merge_key(k).expect("checked");
                for item in items {
                    let id = item.get(key).cloned();
                    let pos = id
                        .as_ref()
                        .and_then(|id| cur.iter().position(|c| c.get(key) == Some(id)));
                    let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                    match (pos, delete) {
                        (Some(i), true) => {
                            cur.remove(i);
                        }
                        (None, true) => {}
                        (Some(i), false) => strategic_merge(&mut cur[i], item, k),
                        (None, false) => cur.push(strip_directives(item)),
                    }
                }
            }
            (Some(Value::Array(cur)), Value::Array(items)) if k == "finalizers" => {
                for item in items {
                    if !cur.contains(item) {
                        cur.push(item.clone());
                    }
                }
            }
            (Some(cur @ Value::Object(_)), Value::Object(_)) => strategic_merge(cur, v, k),
            _ => {
                t.insert(k.clone(), strip_directives(v));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cordon_and_uncordon_by_strategic_patch() {
        let mut node = json!({"metadata": {"name": "n"}, "spec": {"podCIDR": "10.244.1.0/24"}});
        apply(
            PatchType::Strategic,
            &mut node,
            &json!({"spec": {"unschedulable": true}}),
        )
        .unwrap();
        assert_eq!(node["spec"]["unschedulable"], true);
        assert_eq!(node["spec"]["podCIDR"], "10.244.1.0/24");
        apply(
            PatchType::Strategic,
            &mut node,
            &json!({"spec": {"unschedulable": null}}),
        )
        .unwrap();
        assert!(node["spec"].get("unschedulable").is_none());
    }

    #[test]
    fn strategic_lists_merge_by_key_and_directives_vanish() {
        let mut pod = json!({"spec": {"containers": [{"name": "a", "image": "x:1"}, {"name": "b", "image": "y:1"}], "tolerations": [{"key": "k"}]},
                             "metadata": {"finalizers": ["f1"]}});
        let patch = json!({"spec": {"$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                                     "containers": [{"name": "b", "image": "y:2"}, {"name": "a", "$patch": "delete"}],
                                     "tolerations": [{"key": "other"}]},
                           "metadata": {"finalizers": ["f2"], "labels": {"x": "1", "$patch": "replace"}}});
        apply(PatchType::Strategic, &mut pod, &patch).unwrap();
        assert_eq!(pod["spec"]["containers"], json!([{"name": "b", "image": "y:2"}]));
        assert_eq!(pod["spec"]["tolerations"], json!([{"key": "other"}]));
        assert_eq!(pod["metadata"]["finalizers"], json!(["f1", "f2"]));
        assert_eq!(pod["metadata"]["labels"], json!({"x": "1"}));
        assert!(pod["spec"].get("$setElementOrder/containers").is_none());
        apply(
            PatchType::Strategic,
            &mut pod,
            &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["f1"]}}),
        )
        .unwrap();
        assert_eq!(pod["metadata"]["finalizers"], json!(["f2"]));
    }

    #[test]
    fn merge_and_json_patch() {
        let mut o = json!({"metadata": {"annotations": {"a": "1", "b": "2"}}, "spec": {"list": [1, 2]}});
        apply(
            PatchType::Merge,
            &mut o,
            &json!({"metadata": {"annotations": {"a": null, "c": "3"}}, "spec": {"list": [3]}}),
        )
        .unwrap();
        assert_eq!(o["metadata"]["annotations"], json!({"b": "2", "c": "3"}));
        assert_eq!(o["spec"]["list"], json!([3]));
        let p = json!([{"op": "test", "path": "/spec/list/0", "value": 3}, {"op": "add", "path": "/spec/x", "value": true}]);
        apply(PatchType::Json, &mut o, &p).unwrap();
        assert_eq!(o["spec"]["x"], true);
        let bad = json!([{"op": "test", "path": "/spec/list/0", "value": 4}]);
        assert!(apply(PatchType::Json, &mut o, &bad).is_err());
        assert!(apply(PatchType::Json, &mut o, &json!({"op": "add"})).is_err());
        assert!(apply(PatchType::Merge, &mut o, &json!([1])).is_err());
    }

    #[test]
    fn content_types() {
        assert_eq!(
            PatchType::from_content_type("application/strategic-merge-patch+json; charset=utf-8"),
            Some(PatchType::Strategic)
        );
        assert_eq!(PatchType::from_content_type("application/json"), None);
    }
}
